//! Overlay networks: created and removed in etcd, and mirrored into this node's store so
//! that everything that reads networks (inspect, connect, the resolver, the firewall
//! rebuild at start) treats them as it treats bridges. The mirror follows etcd in every
//! round; an operation on this node also mirrors at once, so it reads its own write.

use berth_ipam::Pool;
use chrono::Utc;
use ipnet::IpNet;

use crate::cluster::overlay::needs_cluster;
use crate::cluster::View;
use crate::daemon::keys::Writes;
use crate::daemon::networks::{plan_pools, IpamConfigReq, NetworkCreate, OPT_MTU};
use crate::daemon::{Daemon, Error, Inner, Result};
use crate::model::{new_id, Driver, Network};

impl Daemon {
    /// `network create -d overlay`: planned against one read of the cluster and recorded
    /// with a compare on what that read saw, so two nodes creating at once never pick one
    /// subnet or one name.
    pub(crate) async fn overlay_create(
        &self,
        st: &mut Inner,
        req: NetworkCreate,
    ) -> Result<Network> {
        let Some(cluster) = self.cluster.clone() else {
            return Err(Error::Forbidden(
                "the overlay driver needs cluster mode: start the daemon with --cluster-store etcd://HOST:PORT and --advertise-addr".into(),
            ));
        };
        if req
            .options
            .contains_key(crate::daemon::networks::OPT_BRIDGE_NAME)
        {
            return Err(Error::InvalidParameter(
                "com.docker.network.bridge.name is an option of the bridge driver, not of overlay"
                    .into(),
            ));
        }
        let asked_mtu = req
            .options
            .get(OPT_MTU)
            .map(|m| {
                let m = m.parse::<u32>().map_err(|_| {
                    Error::InvalidParameter(format!("invalid MTU {m:?}: give a number"))
                })?;
                berth_overlay::mtu(cluster.underlay_mtu(), Some(m)).map_err(Error::InvalidParameter)
            })
            .transpose()?;
        for _ in 0..5 {
            let view = cluster
                .view()
                .await
                .map_err(|e| needs_cluster("network create", &e))?;
            if view.network(&req.name).is_some_and(|n| n.name == req.name) {
                return Err(Error::Conflict(format!(
                    "network with name {} already exists",
                    req.name
                )));
            }
            let net = self.plan_overlay(st, &req, asked_mtu, &view).await?;
            if cluster.create_network(&net, &view).await? {
                tracing::info!(network = %net.name, subnet = ?net.pools.iter().map(Pool::subnet).collect::<Vec<_>>(), "overlay network created");
                let local = self.local_copy(&net);
                self.mirror_add(st, local.clone()).await?;
                return Ok(local);
            }
        }
        Err(Error::Conflict(
            "networks of the cluster kept changing while creating this one; try again".into(),
        ))
    }

    async fn plan_overlay(
        &self,
        st: &Inner,
        req: &NetworkCreate,
        mtu: Option<u32>,
        view: &View,
    ) -> Result<Network> {
        let id = new_id();
        let mut taken = st.taken_subnets();
        taken.extend(view.networks.iter().flat_map(|n| {
            n.pools
                .iter()
                .map(move |p| (format!("{} (cluster)", n.name), p.subnet()))
        }));
        let ours: Vec<IpNet> = taken.iter().map(|(_, n)| *n).collect();
        let mut routes = self.host.route_destinations().await?;
        routes.retain(|n| !ours.contains(n));
        let mut ipam = req.ipam.clone();
        let user_subnets = ipam.iter().any(|c| c.subnet.is_some());
        let has_v4 = ipam.iter().any(|c| {
            c.subnet
                .as_deref()
                .and_then(|s| s.parse::<IpNet>().ok())
                .is_some_and(|n| n.addr().is_ipv4())
        });
        if !has_v4 {
            let mut used = routes.clone();
            used.extend(ours.iter().copied());
            let v4 = berth_ipam::pick_default_overlay(&used).ok_or_else(|| {
                Error::Unavailable(
                    "the cluster's default address pool (10.0.0.0/8) is fully subnetted: remove unused overlay networks or give --subnet".into(),
                )
            })?;
            // Docker's overlay IPAM takes the default pool's first free /24, gateway .1.
            ipam.insert(
                0,
                IpamConfigReq {
                    subnet: Some(v4.to_string()),
                    ..Default::default()
                },
            );
        }
        let (pools, _) = plan_pools(&ipam, req.ipv6, &id, &routes, &taken)?;
        Ok(Network {
            bridge: Some(format!("berth-{}", &id[..9])),
            id,
            name: req.name.clone(),
            driver: Driver::Overlay,
            created: Utc::now(),
            builtin: false,
            internal: req.internal,
            attachable: req.attachable,
            ipv6: req.ipv6,
            labels: req.labels.clone(),
            options: req.options.clone(),
            mtu,
            icc: true,
            masquerade: true,
            pools,
            user_subnets,
        })
    }

    /// The network as this node runs it: its links' MTU from this node's underlay.
    pub(crate) fn local_copy(&self, n: &Network) -> Network {
        let mut l = n.clone();
        let underlay = self.cluster.as_ref().map_or(1500, |c| c.underlay_mtu());
        l.mtu = Some(berth_overlay::mtu(underlay, n.mtu).unwrap_or_else(|e| {
            tracing::warn!(network = %n.name, "{e}; using the underlay's less the overhead");
            underlay.saturating_sub(berth_overlay::OVERHEAD)
        }));
        l
    }

    /// A network of the cluster, recorded here with its firewall elements.
    pub(crate) async fn mirror_add(&self, st: &mut Inner, n: Network) -> Result<()> {
        if st.networks.contains_key(&n.id) {
            return Ok(());
        }
        if let Some(local) = st.network_by_name(&n.name) {
            return Err(Error::Conflict(format!(
                "overlay network {} has the name of this node's {} network {}: rename or remove that one to use the overlay here",
                n.name,
                local.driver.as_str(),
                local.id
            )));
        }
        self.commit(Writes::network(&n)).await?;
        if let Some(rules) = n.firewall_rules() {
            if let Err(e) = self.nft.apply(&berth_firewall::add_network(&rules)?) {
                let mut w = Writes::default();
                w.delete_network(&n.id);
                let _ = self.commit(w).await;
                return Err(e.into());
            }
        }
        st.networks.insert(n.id.clone(), n);
        Ok(())
    }

    /// A network gone from the cluster, gone here (its bridge, listener and elements too).
    pub(crate) async fn mirror_remove(&self, st: &mut Inner, id: &str) -> Result<()> {
        let Some(net) = st.networks.get(id).cloned() else {
            return Ok(());
        };
        let mut w = Writes::default();
        w.delete_network(id);
        self.commit(w).await?;
        st.networks.remove(id);
        st.blocks.remove(id);
        self.dns_unlisten(id);
        let errs = self.undo_network_kernel(&net).await;
        if !errs.is_empty() {
            tracing::warn!(network = %net.name, "removing kernel state: {}", errs.join("; "));
        }
        Ok(())
    }

    /// `network rm` of an overlay: refused while a Ready node has an endpoint on it.
    pub(crate) async fn overlay_remove(&self, st: &mut Inner, net: &Network) -> Result<()> {
        let Some(cluster) = self.cluster.clone() else {
            // Left in the store by an earlier life in a cluster: only this node knows it.
            return self.mirror_remove(st, &net.id).await;
        };
        let held = super::attach::held_addresses(st);
        cluster
            .remove_network(net, |r| super::attach::stale(&held, r))
            .await?;
        self.mirror_remove(st, &net.id).await
    }
}
