//! Root-only test helpers. Everything runs inside throwaway network namespaces:
//! nft state is per namespace, so the machine's own firewall is never touched.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeSet;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use berth_firewall::nftables::expr::{Expression, NamedExpression};
use berth_firewall::nftables::schema::{Chain, NfListObject, NfObject, Nftables, Rule};
use berth_firewall::{NetworkRules, Nft};

/// Why root tests cannot run here, if they cannot.
pub(crate) fn skip_reason(extra_tools: &[&str]) -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|l| l.split_whitespace().nth(1));
    if euid != Some("0") {
        return Some("not root".into());
    }
    for tool in ["ip", "nft"].iter().chain(extra_tools) {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok();
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    None
}

/// Returns early from a test (with a message) when it cannot run here.
#[macro_export]
macro_rules! require_root {
    ($($tool:expr),*) => {
        if let Some(why) = common::skip_reason(&[$($tool),*]) {
            eprintln!("skipping: {why}");
            return;
        }
    };
}

/// A network namespace deleted on drop, even when the test panics.
pub(crate) struct Netns {
    pub name: String,
}

impl Netns {
    pub(crate) fn new(tag: &str) -> Netns {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("berthfw-test-{}-{n}-{tag}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        Netns { name }
    }

    pub(crate) fn nft(&self) -> Nft {
        Nft::in_netns(&self.name)
    }

    /// Runs a command inside the namespace, panicking on failure.
    pub(crate) fn exec(&self, cmd: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(cmd);
        run(&full);
    }

    /// Runs a command inside the namespace; true if it succeeded.
    pub(crate) fn try_exec(&self, cmd: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    }

    pub(crate) fn spawn(&self, cmd: &[&str]) -> Killed {
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn in netns");
        Killed(child)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A child process killed (by its own pid) on drop.
pub(crate) struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub(crate) fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub(crate) fn network(bridge: &str, subnets: &[&str]) -> NetworkRules {
    NetworkRules {
        bridge: bridge.to_string(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        internal: false,
        masquerade: true,
        icc: true,
    }
}

fn objects<'t>(table: &'t Nftables<'static>) -> impl Iterator<Item = &'t NfListObject<'static>> {
    table.objects.iter().filter_map(|o| match o {
        NfObject::ListObject(l) => Some(l),
        NfObject::CmdObject(_) => None,
    })
}

/// A set's elements in nft's text notation, e.g. `"br-a . br-a"`, `"10.1.0.0/24"`.
pub(crate) fn elements(table: &Nftables<'static>, set: &str) -> BTreeSet<String> {
    let set = objects(table)
        .find_map(|o| match o {
            NfListObject::Set(s) if s.name == set => Some(s),
            _ => None,
        })
        .unwrap_or_else(|| panic!("set {set} missing"));
    set.elem.iter().flat_map(|e| e.iter()).map(text).collect()
}

fn text(e: &Expression) -> String {
    match e {
        Expression::String(s) => s.to_string(),
        Expression::Named(NamedExpression::Concat(parts)) => {
            parts.iter().map(text).collect::<Vec<_>>().join(" . ")
        }
        Expression::Named(NamedExpression::Prefix(p)) => format!("{}/{}", text(&p.addr), p.len),
        other => serde_json::to_string(other).unwrap(),
    }
}

pub(crate) fn set_of(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

pub(crate) fn chains<'t>(table: &'t Nftables<'static>) -> Vec<&'t Chain<'static>> {
    objects(table)
        .filter_map(|o| match o {
            NfListObject::Chain(c) => Some(c),
            _ => None,
        })
        .collect()
}

pub(crate) fn rules<'t>(table: &'t Nftables<'static>) -> Vec<&'t Rule<'static>> {
    objects(table)
        .filter_map(|o| match o {
            NfListObject::Rule(r) => Some(r),
            _ => None,
        })
        .collect()
}
