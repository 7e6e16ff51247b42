//! `network connect` and `disconnect` of a container, running or not.

use super::*;
use crate::daemon::keys::Writes;
use crate::daemon::{without_allocations, Daemon, Error, Result};
use crate::model::{Container, Driver, EndpointRequest, NetworkMode};
use crate::netlink::{self, Netlink};

impl Daemon {
    pub async fn network_connect(
        &self,
        net_key: &str,
        ctr_key: &str,
        req: EndpointRequest,
    ) -> Result<()> {
        self.overlay_refresh_for(&[net_key]).await;
        let cid = self.state.lock().await.container_id(ctr_key)?;
        let _op = self.op_lock(&cid).await;
        let mut st = self.state.lock().await;
        let nid = st.network_id(net_key)?;
        let cid = st.container_id(&cid)?;
        let net = without_allocations(&st.networks[&nid]);
        let old = st.containers[&cid].clone();
        let mut c = old.clone();
        match &c.config.network_mode {
            NetworkMode::Host => {
                return Err(Error::InvalidParameter(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            NetworkMode::Container(_) => {
                return Err(Error::InvalidParameter(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            _ => {}
        }
        match net.driver {
            Driver::Host => {
                return Err(Error::InvalidParameter(
                    "cannot connect container to host network - container must be created in host network mode".into(),
                ))
            }
            Driver::Null => {
                return Err(Error::InvalidParameter(
                    "container cannot be disconnected from host network or connected to host network".into(),
                ))
            }
            Driver::Bridge | Driver::Overlay => {}
        }
        if c.config.network_mode == NetworkMode::None {
            return Err(Error::InvalidParameter(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
            ));
        }
        if c.config
            .networks
            .iter()
            .any(|(n, _)| n == &net.name || n == &net.id)
        {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, net.name
            )));
        }
        check_request(&net, &req)?;
        c.config.networks.push((net.name.clone(), req.clone()));
        if !c.is_running() {
            self.commit(Writes::container(&c)).await?;
            st.containers.insert(cid, c);
            return Ok(());
        }
        let ifname = next_ifname(&c.endpoints);
        let (mut st, ep) = self
            .plan_with_blocks(st, |st| allocate_one(st, &c.id, &net, &req, ifname.clone()))
            .await?;
        let claims = {
            let mut only = c.clone();
            only.endpoints = vec![ep.clone()];
            self.overlay_records(&st, &only)
        };
        c.endpoints.push(ep.clone());
        // Recorded at once, so `network rm` sees the endpoint; the kernel work and the
        // commit then run without the state lock.
        st.containers.insert(cid.clone(), c.clone());
        drop(st);
        if let Err(e) = self.claim_overlay(&claims).await {
            let mut st = self.state.lock().await;
            if let Some(n) = st.networks.get_mut(&nid) {
                release_ep(n, &ep);
            }
            st.containers.insert(cid.clone(), old.clone());
            return Err(e);
        }
        let mut w = Writes::container(&c);
        w.claim(&c.id, &ep);
        let commit = self.commit_in_background(w);
        // A detach of this container may still be deleting its veth (and so its ethN).
        let pending = self
            .pending_detach
            .lock()
            .expect("lock")
            .remove(&c.id)
            .unwrap_or_default();
        for h in pending {
            let _ = h.await;
        }
        let path = self.netns_path(&c.id);
        let cached = self.ns_links.lock().expect("lock").get(&cid).cloned();
        // The hosts file is written while the kernel works; a failure rewrites the old one.
        let hosts = {
            let (c, dir) = (c.clone(), self.container_dir(&cid));
            tokio::task::spawn_blocking(move || write_hosts(&c, &dir))
        };
        let kernel = async {
            let nsfd = netlink::open_ns(&path)?;
            let nsnl = match cached {
                Some(nl) => nl,
                None => Netlink::open_in(&path).await?,
            };
            let first = c.endpoints.len() == 1;
            self.attach_kernel(&nsfd, &nsnl, &net, &ep, first).await
        }
        .await;
        let committed = commit
            .await
            .map_err(|e| Error::Internal(format!("store commit task: {e}")))
            .and_then(|r| r);
        let res = match (kernel, committed) {
            (Ok(()), Ok(_)) => Ok(()),
            (Ok(()), Err(e)) => {
                let _ = self.host.delete_link_by_name(&ep.host_ifname).await;
                Err(e)
            }
            (Err(e), _) => Err(e),
        };
        let _ = hosts.await;
        let mut st = self.state.lock().await;
        match res {
            Ok(()) => {
                self.retarget_ports(&mut st, &c);
                self.write_resolv(&c);
                self.emit_network(&st.networks[&nid], "connect", Some(&c));
                st.containers.insert(cid.clone(), c);
                Ok(())
            }
            Err(e) => {
                let _ = write_hosts(&old, &self.container_dir(&cid));
                if let Some(n) = st.networks.get_mut(&nid) {
                    release_ep(n, &ep);
                }
                st.containers.insert(cid.clone(), old.clone());
                drop(st);
                // The claim may not have been committed: deleting an absent key is harmless.
                let mut w = Writes::container(&old);
                w.release(&ep);
                let _ = self.commit(w).await;
                self.release_overlay(&claims).await;
                Err(e)
            }
        }
    }

    pub async fn network_disconnect(
        &self,
        net_key: &str,
        ctr_key: &str,
        force: bool,
    ) -> Result<()> {
        let cid = match self.state.lock().await.container_id(ctr_key) {
            Ok(id) => id,
            Err(_) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let _op = self.op_lock(&cid).await;
        let mut st = self.state.lock().await;
        let nid = st.network_id(net_key)?;
        let net = without_allocations(&st.networks[&nid]);
        let cid = match st.container_id(&cid) {
            Ok(id) => id,
            Err(_) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut c = st.containers[&cid].clone();
        if matches!(net.driver, Driver::Host | Driver::Null) {
            return Err(Error::InvalidParameter(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let before = c.config.networks.len();
        c.config
            .networks
            .retain(|(n, _)| n != &net.name && n != &net.id);
        let pos = c.endpoints.iter().position(|e| e.network_id == nid);
        if before == c.config.networks.len() && pos.is_none() {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {}",
                c.id, net.name
            )));
        }
        let removed = pos.map(|p| c.endpoints.remove(p));
        let mut w = Writes::container(&c);
        if let Some(ep) = &removed {
            w.release(ep);
        }
        self.commit(w).await?;
        if let Some(ep) = &removed {
            let n = st.networks.get_mut(&nid).expect("resolved above");
            release_ep(n, ep);
        }
        st.containers.insert(cid.clone(), c.clone());
        if c.is_running() {
            self.retarget_ports(&mut st, &c);
        }
        if let Some(ep) = &removed {
            // The event names the address the container had there.
            let mut was = c.clone();
            was.endpoints.push(ep.clone());
            self.emit_network(&net, "disconnect", Some(&was));
        }
        if let Some(ep) = removed {
            if c.is_running() {
                let _ = write_hosts(&c, &self.container_dir(&cid));
                self.write_resolv(&c);
            }
            let h = self.leave_in_background(vec![(net.driver, ep)]);
            let mut pending = self.pending_detach.lock().expect("lock");
            let list = pending.entry(cid.clone()).or_default();
            list.retain(|h| !h.is_finished());
            list.push(h);
        }
        Ok(())
    }

    /// Rewrites a running sandbox's resolv.conf in place (its resolver addresses follow
    /// its networks).
    pub(super) fn write_resolv(&self, c: &Container) {
        if c.config.network_mode == NetworkMode::Networks {
            let path = self.container_dir(&c.id).join("resolv.conf");
            if let Err(e) = std::fs::write(&path, self.resolv_conf_for(c)) {
                tracing::warn!(container = %c.name, "rewriting resolv.conf: {e}");
            }
        }
    }
}
