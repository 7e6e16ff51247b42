//! Published-port elements whose removal from the kernel failed (`nft` could not run: no
//! descriptors left, the binary gone, the kernel refusing). They stay in the daemon's view
//! until the kernel has them gone: a retry loop removes them (level-triggered, with
//! back-off), `info` reports them, and the addresses they lead to are not handed out in the
//! meantime, so a later container given the same address cannot be exposed by them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use berth_firewall::PortMapping;

use super::{Daemon, Inner};

/// Who holds an address in a pool while stale elements lead to it.
pub(super) const HOLDER: &str = "berth:published-port-cleanup";
const FIRST_RETRY: Duration = Duration::from_millis(500);
const LAST_RETRY: Duration = Duration::from_secs(30);

#[derive(Default)]
pub(crate) struct Stale {
    pub elements: Vec<PortMapping>,
    /// The last failure, for `info` and the log.
    pub error: Option<String>,
    /// (network id, address) held in a pool for the elements.
    holds: Vec<(String, IpAddr)>,
}

/// The next wait after a failed retry: doubling, at most `LAST_RETRY`.
pub(super) fn next_delay(d: Duration) -> Duration {
    (d * 2).min(LAST_RETRY)
}

impl Daemon {
    /// Removes published-port elements from the kernel; what cannot be removed now is kept
    /// for the retry loop, and its addresses are held.
    pub(crate) fn uninstall_ports(&self, st: &mut Inner, m: &[PortMapping]) {
        if m.is_empty() {
            return;
        }
        if let Err(e) = self.nft.apply(&berth_firewall::remove_ports(m)) {
            tracing::error!(
                elements = m.len(),
                "removing published ports failed, retrying until it works (their addresses are held meanwhile): {e}"
            );
            st.stale.elements.extend_from_slice(m);
            st.stale.error = Some(e.to_string());
            hold_targets(st);
        }
    }

    /// What `info` says of work the kernel has not taken yet.
    pub async fn warnings(&self) -> Vec<String> {
        let st = self.state.lock().await;
        if st.stale.elements.is_empty() {
            return vec![];
        }
        vec![format!(
            "{} published-port element(s) could not be removed from the kernel and are retried; their container addresses are not reused until then (last error: {})",
            st.stale.elements.len(),
            st.stale.error.as_deref().unwrap_or("unknown")
        )]
    }

    /// The retry loop: runs as long as the daemon.
    pub(crate) fn start_cleanup(self: &Arc<Self>) {
        let d = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut delay = FIRST_RETRY;
            loop {
                tokio::time::sleep(delay).await;
                let Some(d) = d.upgrade() else { return };
                let mut st = d.state.lock().await;
                if st.stale.elements.is_empty() {
                    delay = FIRST_RETRY;
                    continue;
                }
                match d
                    .nft
                    .apply(&berth_firewall::remove_ports(&st.stale.elements))
                {
                    Ok(()) => {
                        tracing::info!(
                            elements = st.stale.elements.len(),
                            "stale published-port elements removed; their addresses are free again"
                        );
                        release_holds(&mut st);
                        delay = FIRST_RETRY;
                    }
                    Err(e) => {
                        tracing::warn!(
                            elements = st.stale.elements.len(),
                            "removing stale published ports failed again, next try in {:?}: {e}",
                            next_delay(delay)
                        );
                        st.stale.error = Some(e.to_string());
                        delay = next_delay(delay);
                    }
                }
            }
        });
    }
}

/// Holds every address a stale element leads to that no endpoint holds. Called under the
/// state lock right after the failure, so no allocation can come in between.
pub(crate) fn hold_targets(st: &mut Inner) {
    let targets: Vec<IpAddr> = st.stale.elements.iter().map(|m| m.target.ip()).collect();
    for ip in targets {
        for n in st.networks.values_mut() {
            if let Some(p) = n.pools.iter_mut().find(|p| p.contains(ip)) {
                if p.owner_of(ip).is_none() && p.allocate_static(ip, HOLDER).is_ok() {
                    st.stale.holds.push((n.id.clone(), ip));
                }
            }
        }
    }
}

/// The kernel has the elements gone: their addresses go back to the pools.
pub(crate) fn release_holds(st: &mut Inner) {
    let stale = std::mem::take(&mut st.stale);
    for (net, ip) in stale.holds {
        if let Some(p) = st
            .networks
            .get_mut(&net)
            .and_then(|n| n.pools.iter_mut().find(|p| p.contains(ip)))
        {
            if p.owner_of(ip) == Some(HOLDER) {
                p.release(ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        let mut d = FIRST_RETRY;
        let mut seen = vec![];
        for _ in 0..10 {
            d = next_delay(d);
            seen.push(d);
        }
        assert_eq!(seen[0], Duration::from_secs(1));
        assert!(seen.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*seen.last().unwrap(), LAST_RETRY);
    }
}
