//! Start-up reconciliation: the kernel is converged to the store. Bridges and the firewall
//! table are rebuilt, live containers are re-adopted with their networking untouched,
//! containers whose process died are marked exited (addresses released), and kernel objects
//! of berth that the store does not know are removed.

use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::Arc;

use super::containers::HOST_VETH_PREFIX;
use super::networks::DEFAULT_BRIDGE;
use super::{Daemon, Result};
use crate::model::Status;
use crate::netlink;
use crate::sandbox;

/// The routing table of the transparent proxy's return path (one local route).
const PROXY_TABLE: u32 = 0xb1;

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_hexdigit())
}

/// Names berth gives its own links; anything else on the host is never touched.
pub(crate) fn is_berth_bridge_name(name: &str) -> bool {
    name == DEFAULT_BRIDGE || (name.len() == 15 && name.starts_with("berth-") && is_hex(&name[6..]))
}

pub(crate) fn is_berth_veth_name(name: &str) -> bool {
    name.len() == 12 && name.starts_with(HOST_VETH_PREFIX) && is_hex(&name[2..])
}

impl Daemon {
    pub(crate) async fn reconcile(self: &Arc<Self>) -> Result<()> {
        netlink::sysctl("net.ipv4.ip_forward", "1")?;
        self.ensure_predefined().await?;

        // Containers first: their exit releases addresses and endpoints.
        let (nets, ctrs) = self.snapshot().await;
        // Every shim of this daemon's containers is adopted or killed, whatever state its
        // record is in: a crash between spawning a shim and recording `running` leaves one
        // that the store knows as `created`.
        let mut killed = Vec::new();
        for (id, pids) in shims_of(&self.opts.run.join("containers")) {
            let keep = ctrs
                .iter()
                .find(|c| c.id == id && c.state.status == Status::Running)
                .filter(|c| sandbox::alive(c.state.shim_pid, c.state.shim_start))
                .map(|c| c.state.shim_pid);
            for pid in pids.into_iter().filter(|p| Some(*p) != keep) {
                tracing::warn!(container = %id, shim = pid, "killing a container process the store does not know as running");
                killed.extend(kill_tree(pid));
            }
        }
        wait_gone(&killed).await;
        // A record that is not running holds no address (a crash mid-start may have left
        // some): they go back to the pools.
        for c in ctrs
            .iter()
            .filter(|c| c.state.status != Status::Running && !c.endpoints.is_empty())
        {
            tracing::info!(container = %c.name, "releasing the addresses of a container that is not running");
            let mut st = self.state.lock().await;
            let mut r = c.clone();
            let mut w = super::containers::release_endpoints(&mut st, &r);
            r.endpoints.clear();
            r.ports.clear();
            w.put_container(&r);
            self.commit(w).await?;
            st.containers.insert(r.id.clone(), r);
        }
        for c in ctrs.iter().filter(|c| c.state.status == Status::Running) {
            if sandbox::alive(c.state.shim_pid, c.state.shim_start) {
                tracing::info!(container = %c.name, "re-adopting running container");
                let mut st = self.state.lock().await;
                self.readopt_ports(&mut st, c);
                // Health is measured anew: until the first check, the replica is "starting".
                if let Some(r) = st.containers.get_mut(&c.id) {
                    r.state.health = r
                        .config
                        .healthcheck
                        .as_ref()
                        .map(|_| super::supervise::starting());
                }
                drop(st);
                if let Some(hc) = c.config.healthcheck.clone() {
                    self.watch_health(c.id.clone(), c.state.pid, hc);
                }
                self.watch(c.id.clone(), c.state.shim_pid, c.state.shim_start);
            } else {
                let code = sandbox::read_exit(&self.container_dir(&c.id))
                    .map(|r| r.code)
                    .unwrap_or(255);
                if sandbox::alive(c.state.pid, c.state.pid_start) {
                    let _ = sandbox::pidfd_signal(c.state.pid, c.state.pid_start, libc::SIGKILL);
                }
                tracing::info!(container = %c.name, code, "container exited while the daemon was down");
                let mut st = self.state.lock().await;
                self.mark_exited(&mut st, c.clone(), code).await;
            }
        }

        // Every network in the kernel as recorded: the same call as at create.
        let mut known_bridges = HashSet::new();
        for n in &nets {
            known_bridges.extend(n.bridge.clone());
            self.drivers.of(n.driver).ensure(n).await?;
        }

        // Ports of networks with icc off are isolated (also those an older berth made).
        {
            let st = self.state.lock().await;
            for c in st.containers.values().filter(|c| c.is_running()) {
                for ep in &c.endpoints {
                    if st.networks.get(&ep.network_id).is_some_and(|n| !n.icc) {
                        if let Err(e) = self.host.set_port_isolated(&ep.host_ifname, true).await {
                            tracing::warn!(container = %c.name, "isolating {}: {e}", ep.host_ifname);
                        }
                    }
                }
            }
        }

        // The firewall table, rebuilt whole in one atomic batch: no moment without rules.
        let rules: Vec<_> = nets.iter().filter_map(|n| n.firewall_rules()).collect();
        let mapped: Vec<_> = {
            let st = self.state.lock().await;
            st.installed.values().flatten().copied().collect()
        };
        self.nft
            .apply(&berth_firewall::full_ruleset(&rules, &mapped)?)?;
        self.nft.ensure_policy_table()?;
        if self.opts.userland_proxy == super::ProxyMode::Always {
            // Remote clients reach containers through the proxy: let it connect from their
            // address, with the return path through policy routing.
            match self
                .host
                .ensure_local_delivery(berth_firewall::PROXY_MARK, PROXY_TABLE)
                .await
            {
                Ok(()) => crate::proxy::set_transparent(true),
                Err(e) => tracing::warn!(
                    "transparent proxying off (containers will see the gateway as the client): {e}"
                ),
            }
        } else if let Err(e) = self.host.remove_local_delivery(PROXY_TABLE).await {
            tracing::warn!("removing the transparent proxy's policy rules: {e}");
        }

        // Leftovers.
        let (_, ctrs) = self.snapshot().await;
        let live_veths: HashSet<String> = ctrs
            .iter()
            .flat_map(|c| c.endpoints.iter().map(|e| e.host_ifname.clone()))
            .collect();
        for l in self.host.links().await? {
            let stale = match l.kind.as_deref() {
                Some("bridge") => is_berth_bridge_name(&l.name) && !known_bridges.contains(&l.name),
                Some("veth") => is_berth_veth_name(&l.name) && !live_veths.contains(&l.name),
                _ => false,
            };
            if stale {
                tracing::info!(link = %l.name, "removing leftover link");
                self.host.delete_link(l.index).await?;
            }
        }
        let running: HashSet<String> = ctrs
            .iter()
            .filter(|c| c.is_running())
            .map(|c| c.id.clone())
            .collect();
        let known: HashSet<String> = ctrs.iter().map(|c| c.id.clone()).collect();
        for entry in std::fs::read_dir(self.opts.run.join("netns"))?.flatten() {
            let id = entry.file_name().to_string_lossy().to_string();
            if !running.contains(&id) {
                tracing::info!(netns = %id, "removing leftover namespace");
                netlink::remove_netns(&entry.path());
            }
        }
        for entry in std::fs::read_dir(self.opts.run.join("containers"))?.flatten() {
            let id = entry.file_name().to_string_lossy().to_string();
            if !known.contains(&id) {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        Ok(())
    }
}

/// The shims whose container directory is under `base`, by container id (from /proc: the
/// only record that cannot be missing, whenever the daemon died).
fn shims_of(base: &Path) -> HashMap<String, Vec<u32>> {
    let mut out: HashMap<String, Vec<u32>> = HashMap::new();
    let mut found = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .collect();
        if args.get(1) != Some(&&b"shim"[..]) {
            continue;
        }
        let Some(dir) = args
            .last()
            .map(|a| Path::new(std::ffi::OsStr::from_bytes(a)))
        else {
            continue;
        };
        if dir.parent() == Some(base) {
            if let Some(id) = dir.file_name().and_then(|n| n.to_str()) {
                found.push((id.to_string(), pid, parent_of(pid)));
            }
        }
    }
    // A shim's init (and middle process) are forks of it with the same command line.
    let pids: HashSet<u32> = found.iter().map(|(_, p, _)| *p).collect();
    for (id, pid, parent) in found {
        if !parent.is_some_and(|pp| pids.contains(&pp)) {
            out.entry(id).or_default().push(pid);
        }
    }
    out
}

fn parent_of(pid: u32) -> Option<u32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    s[s.rfind(')')? + 2..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// SIGKILL to a process and every descendant, deepest first (a container's init first of
/// all ends its PID namespace). Returns what was signalled, with start times.
fn kill_tree(pid: u32) -> Vec<(u32, u64)> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(s) = std::fs::read_to_string(format!("/proc/{p}/task/{p}/children")) {
            all.extend(s.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    let mut out = Vec::new();
    for p in all.into_iter().rev() {
        if let Some(start) = sandbox::proc_start_time(p) {
            let _ = sandbox::pidfd_signal(p, start, libc::SIGKILL);
            out.push((p, start));
        }
    }
    out
}

/// Until the killed processes are gone (bounded: SIGKILL cannot be refused, but a process in
/// the kernel's D state ends only when that returns).
async fn wait_gone(procs: &[(u32, u64)]) {
    for _ in 0..200 {
        if procs.iter().all(|(p, s)| !sandbox::alive(*p, *s)) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    tracing::warn!("some killed container processes have not ended yet");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_berth_names_count_as_leftovers() {
        assert!(is_berth_bridge_name("berth0"));
        assert!(is_berth_bridge_name(
            "berth-0123456789"[..15].to_string().as_str()
        ));
        assert!(!is_berth_bridge_name("br-0123456789ab"));
        assert!(!is_berth_bridge_name("br-lan"));
        assert!(!is_berth_bridge_name("docker0"));
        assert!(is_berth_veth_name("bv0123456789"));
        assert!(!is_berth_veth_name("veth0123456"));
        assert!(!is_berth_veth_name("bvlan"));
    }
}
