//! Start-up reconciliation: the kernel is converged to the store. Bridges and the firewall
//! table are rebuilt, live containers are re-adopted with their networking untouched,
//! containers whose process died are marked exited (addresses released), and kernel objects
//! of berth that the store does not know are removed.

use std::collections::HashSet;
use std::sync::Arc;

use super::containers::HOST_VETH_PREFIX;
use super::networks::DEFAULT_BRIDGE;
use super::{Daemon, Result};
use crate::model::{Driver, Status};
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

        // Bridges of the store, present and addressed (idempotent).
        let links = self.host.links().await?;
        let mut known_bridges = HashSet::new();
        for n in nets.iter().filter(|n| n.driver == Driver::Bridge) {
            let Some(b) = &n.bridge else { continue };
            known_bridges.insert(b.clone());
            let idx = match links.iter().find(|l| &l.name == b) {
                Some(l) => {
                    // A bridge made by an older berth gets today's settings.
                    self.host.adopt_bridge(b, netlink::bridge_mac(b)).await?;
                    l.index
                }
                None => self.host.create_bridge(b, n.mtu, &[]).await?,
            };
            if n.ipv6 {
                let _ = std::fs::write(format!("/proc/sys/net/ipv6/conf/{b}/accept_dad"), "0");
                netlink::sysctl("net.ipv6.conf.all.forwarding", "1")?;
            }
            for p in &n.pools {
                self.host
                    .add_address(idx, p.gateway(), p.prefix_len())
                    .await?;
            }
            self.host.set_up(idx).await?;
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
