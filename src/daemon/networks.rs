//! Network operations: create, remove, prune, and the predefined networks.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_ipam::{Pool, PoolConfig};
use chrono::Utc;
use ipnet::IpNet;

use super::keys::{self, Writes};
use super::{Daemon, Error, Result};
use crate::model::{new_id, valid_ifname, valid_name, Driver, Network};

pub(super) const DEFAULT_BRIDGE: &str = "berth0";
pub(crate) const OPT_BRIDGE_NAME: &str = "com.docker.network.bridge.name";
pub(crate) const OPT_MTU: &str = "com.docker.network.driver.mtu";
pub(super) const OPT_ICC: &str = "com.docker.network.bridge.enable_icc";
pub(super) const OPT_MASQ: &str = "com.docker.network.bridge.enable_ip_masquerade";
pub(super) const OPT_DEFAULT_BRIDGE: &str = "com.docker.network.bridge.default_bridge";

#[derive(Debug, Clone, Default)]
pub struct IpamConfigReq {
    pub subnet: Option<String>,
    pub ip_range: Option<String>,
    pub gateway: Option<String>,
    pub aux: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default)]
pub struct NetworkCreate {
    pub name: String,
    pub driver: Option<String>,
    pub ipam: Vec<IpamConfigReq>,
    pub internal: bool,
    pub attachable: bool,
    pub ipv6: bool,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

fn parse_bool_opt(opts: &BTreeMap<String, String>, key: &str, default: bool) -> Result<bool> {
    match opts.get(key).map(String::as_str) {
        None => Ok(default),
        Some("true") | Some("1") => Ok(true),
        Some("false") | Some("0") => Ok(false),
        Some(v) => Err(Error::InvalidParameter(format!(
            "invalid value {v:?} for option {key}: use true or false"
        ))),
    }
}

fn parse_net(s: &str, what: &str) -> Result<IpNet> {
    s.parse::<IpNet>().map_err(|_| {
        Error::InvalidParameter(format!(
            "invalid {what} {s:?}: expected CIDR notation such as 10.1.0.0/16 or fd00:1::/64"
        ))
    })
}

fn parse_ip(s: &str, what: &str) -> Result<IpAddr> {
    s.parse::<IpAddr>()
        .map_err(|_| Error::InvalidParameter(format!("invalid {what} {s:?}: not an IP address")))
}

/// Turns the user's IPAM request into pools (validating everything) without touching
/// anything; subnets not given are picked from the default pools avoiding `used`.
pub(crate) fn plan_pools(
    req: &[IpamConfigReq],
    ipv6: bool,
    id: &str,
    used: &[IpNet],
    taken_by_networks: &[(String, IpNet)],
) -> Result<(Vec<Pool>, bool)> {
    let mut pools = Vec::new();
    let mut user_subnets = false;
    for c in req {
        let Some(subnet) = &c.subnet else {
            if c.gateway.is_some() || c.ip_range.is_some() || !c.aux.is_empty() {
                return Err(Error::InvalidParameter(
                    "--gateway, --ip-range and --aux-address need a --subnet".into(),
                ));
            }
            continue;
        };
        let subnet = parse_net(subnet, "subnet")?;
        if subnet.addr() != subnet.network() {
            return Err(Error::InvalidParameter(format!(
                "invalid subnet {subnet}: host bits are set (did you mean {}?)",
                subnet.trunc()
            )));
        }
        crate::validate::check_subnet(&subnet).map_err(Error::InvalidParameter)?;
        let cfg = PoolConfig {
            subnet,
            gateway: c
                .gateway
                .as_deref()
                .map(|g| parse_ip(g, "gateway"))
                .transpose()?,
            ip_range: c
                .ip_range
                .as_deref()
                .map(|r| parse_net(r, "ip-range"))
                .transpose()?,
            aux_addresses: c
                .aux
                .iter()
                .map(|(k, v)| Ok((k.clone(), parse_ip(v, "auxiliary address")?)))
                .collect::<Result<_>>()?,
        };
        if subnet.addr().is_ipv6() && !ipv6 {
            return Err(Error::InvalidParameter(format!(
                "IPv6 subnet {subnet} given without --ipv6: add --ipv6 to enable IPv6 on this network"
            )));
        }
        for (name, other) in taken_by_networks {
            if berth_ipam::overlaps(&subnet, other) {
                return Err(Error::Forbidden(format!(
                    "Pool overlaps with other one on this address space: {subnet} overlaps {other} of network {name}"
                )));
            }
        }
        if pools
            .iter()
            .any(|p: &Pool| berth_ipam::overlaps(&p.subnet(), &subnet))
        {
            return Err(Error::InvalidParameter(format!(
                "subnet {subnet} is given twice or overlaps another --subnet of this network"
            )));
        }
        pools.push(Pool::new(cfg)?);
        user_subnets = true;
    }
    let mut all_used: Vec<IpNet> = used.to_vec();
    all_used.extend(taken_by_networks.iter().map(|(_, n)| *n));
    all_used.extend(pools.iter().map(|p| p.subnet()));
    if !pools.iter().any(|p| p.subnet().addr().is_ipv4()) {
        let v4 = berth_ipam::pick_default_v4(&all_used).ok_or_else(|| {
            Error::Unavailable(
                "all predefined address pools have been fully subnetted: remove unused networks or give --subnet".into(),
            )
        })?;
        pools.insert(0, Pool::new(PoolConfig::new(IpNet::V4(v4)))?);
    }
    if ipv6 && !pools.iter().any(|p| p.subnet().addr().is_ipv6()) {
        let v6 = berth_ipam::pick_default_v6(id.as_bytes(), &all_used);
        pools.push(Pool::new(PoolConfig::new(IpNet::V6(v6)))?);
    }
    pools.sort_by_key(|p| p.subnet().addr().is_ipv6());
    Ok((pools, user_subnets))
}

/// `none`, `host` (and the base of `bridge`): predefined, never removable.
fn predefined(name: &str, driver: Driver) -> Network {
    Network {
        id: new_id(),
        name: name.into(),
        driver,
        created: Utc::now(),
        builtin: true,
        internal: false,
        attachable: false,
        ipv6: false,
        labels: BTreeMap::new(),
        options: BTreeMap::new(),
        bridge: None,
        mtu: None,
        icc: false,
        masquerade: false,
        pools: vec![],
        user_subnets: false,
    }
}

impl super::Inner {
    /// Every subnet of every network, with the network's name (for overlap errors).
    pub(crate) fn taken_subnets(&self) -> Vec<(String, IpNet)> {
        self.networks
            .values()
            .flat_map(|n| n.pools.iter().map(move |p| (n.name.clone(), p.subnet())))
            .collect()
    }
}

impl Daemon {
    /// Subnets the host already routes elsewhere (not through berth's own bridges).
    async fn host_routes(&self, ours: &[IpNet]) -> Result<Vec<IpNet>> {
        let mut r = self.host.route_destinations().await?;
        r.retain(|n| !ours.contains(n));
        Ok(r)
    }

    pub async fn network_create(&self, req: NetworkCreate) -> Result<Network> {
        let mut st = self.state.lock().await;
        if !valid_name(&req.name) {
            return Err(Error::InvalidParameter(format!(
                "invalid network name {:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit, at most {} characters",
                req.name.chars().take(80).collect::<String>(),
                crate::validate::MAX_NAME_LEN
            )));
        }
        if st.network_by_name(&req.name).is_some() {
            return Err(Error::Conflict(format!(
                "network with name {} already exists",
                req.name
            )));
        }
        match req.driver.as_deref().unwrap_or("bridge") {
            "bridge" => {}
            "host" | "null" => {
                return Err(Error::Forbidden(format!(
                    "only one instance of \"{}\" network is allowed",
                    req.driver.as_deref().unwrap_or_default()
                )))
            }
            "overlay" => return self.overlay_create(&mut st, req).await,
            d => return Err(Error::NotFound(format!("plugin \"{d}\" not found"))),
        }
        let id = new_id();
        let bridge = match req.options.get(OPT_BRIDGE_NAME) {
            Some(b) => {
                if !valid_ifname(b) {
                    return Err(Error::InvalidParameter(format!(
                        "invalid bridge name {b:?}: at most 15 letters, digits, '_', '.' or '-'"
                    )));
                }
                if st
                    .networks
                    .values()
                    .any(|n| n.bridge.as_deref() == Some(b.as_str()))
                    || self.host.link_index(b).await?.is_some()
                {
                    return Err(Error::Conflict(format!(
                        "bridge name {b} is already in use: pick another com.docker.network.bridge.name"
                    )));
                }
                b.clone()
            }
            // Not Docker's br-<id>: leftover clean-up must never mistake a Docker bridge for ours.
            None => format!("berth-{}", &id[..9]),
        };
        let mtu = req
            .options
            .get(OPT_MTU)
            .map(|m| {
                m.parse::<u32>()
                    .ok()
                    .filter(|m| (68..=65535).contains(m))
                    .ok_or_else(|| {
                        Error::InvalidParameter(format!(
                            "invalid MTU {m:?}: give a number between 68 and 65535"
                        ))
                    })
            })
            .transpose()?;
        let icc = parse_bool_opt(&req.options, OPT_ICC, true)?;
        let masquerade = parse_bool_opt(&req.options, OPT_MASQ, true)?;
        let taken = st.taken_subnets();
        let ours: Vec<IpNet> = taken.iter().map(|(_, n)| *n).collect();
        let routes = self.host_routes(&ours).await?;
        let (pools, user_subnets) = plan_pools(&req.ipam, req.ipv6, &id, &routes, &taken)?;
        let net = Network {
            id,
            name: req.name,
            driver: Driver::Bridge,
            created: Utc::now(),
            builtin: false,
            internal: req.internal,
            attachable: req.attachable,
            ipv6: req.ipv6,
            labels: req.labels,
            options: req.options,
            bridge: Some(bridge),
            mtu,
            icc,
            masquerade,
            pools,
            user_subnets,
        };
        self.commit(Writes::network(&net)).await?;
        let applied = match self.apply_network(&net).await {
            Ok(()) => {
                self.dns_listen(&net);
                Ok(())
            }
            Err(e) => Err(e),
        };
        if let Err(e) = applied {
            self.dns_unlisten(&net.id);
            self.undo_network_kernel(&net).await;
            let mut w = Writes::default();
            w.delete_network(&net.id);
            let _ = self.commit(w).await;
            return Err(e);
        }
        st.networks.insert(net.id.clone(), net.clone());
        Ok(net)
    }

    /// The network in the kernel (its driver's objects), then its firewall elements.
    pub(crate) async fn apply_network(&self, net: &Network) -> Result<()> {
        self.drivers.of(net.driver).ensure(net).await?;
        if let Some(rules) = net.firewall_rules() {
            self.nft.apply(&berth_firewall::add_network(&rules)?)?;
        }
        Ok(())
    }

    /// Best effort: every step is tried, whatever failed before.
    pub(crate) async fn undo_network_kernel(&self, net: &Network) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(rules) = net.firewall_rules() {
            if let Err(e) = berth_firewall::remove_network(&rules)
                .map_err(Error::from)
                .and_then(|b| self.nft.apply(&b).map_err(Error::from))
            {
                errs.push(e.to_string());
            }
        }
        errs.extend(self.drivers.of(net.driver).remove(net).await);
        errs
    }

    pub async fn network_remove(&self, key: &str) -> Result<()> {
        self.overlay_refresh_for(&[key]).await;
        let mut st = self.state.lock().await;
        let id = st.network_id(key)?;
        let net = st.networks[&id].clone();
        if net.builtin {
            return Err(Error::Forbidden(format!(
                "{} is a pre-defined network and cannot be removed",
                net.name
            )));
        }
        // An overlay's endpoints are in etcd, this node's among them: the cluster says.
        if net.driver == Driver::Overlay {
            return self.overlay_remove(&mut st, &net).await;
        }
        let active = st.active_endpoints(&id);
        if !active.is_empty() {
            return Err(Error::Forbidden(format!(
                "error while removing network: network {} has active endpoints ({})",
                net.name,
                active.join(", ")
            )));
        }
        // No endpoint is left, so no address key should be; a leftover goes with the network.
        let mut w = Writes::default();
        w.delete_network(&id);
        w.ops.push(berth_store::Op::DeletePrefix(format!(
            "{}{id}/",
            keys::IPAM
        )));
        self.commit(w).await?;
        st.networks.remove(&id);
        self.dns_unlisten(&id);
        drop(st);
        let errs = self.undo_network_kernel(&net).await;
        if !errs.is_empty() {
            tracing::warn!(network = %net.name, "removing kernel state: {}", errs.join("; "));
        }
        Ok(())
    }

    /// Removes user networks that no container uses or refers to.
    pub async fn network_prune(&self, labels: &[(String, Option<String>)]) -> Result<Vec<String>> {
        let candidates: Vec<(String, String)> = {
            let st = self.state.lock().await;
            st.networks
                .values()
                .filter(|n| !n.builtin)
                .filter(|n| {
                    labels.iter().all(|(k, v)| match v {
                        Some(v) => n.labels.get(k) == Some(v),
                        None => n.labels.contains_key(k),
                    })
                })
                .filter(|n| {
                    !st.containers.values().any(|c| {
                        c.endpoints.iter().any(|e| e.network_id == n.id)
                            || c.config
                                .networks
                                .iter()
                                .any(|(name, _)| name == &n.name || name == &n.id)
                    })
                })
                .map(|n| (n.id.clone(), n.name.clone()))
                .collect()
        };
        let mut candidates = candidates;
        candidates.sort_by(|a, b| a.1.cmp(&b.1));
        let mut deleted = Vec::new();
        for (id, name) in candidates {
            if self.network_remove(&id).await.is_ok() {
                deleted.push(name);
            }
        }
        Ok(deleted)
    }

    /// `bridge`, `host` and `none` exist from the first start on.
    pub(crate) async fn ensure_predefined(&self) -> Result<()> {
        let mut st = self.state.lock().await;
        for (name, driver) in [("none", Driver::Null), ("host", Driver::Host)] {
            if st.network_by_name(name).is_none() {
                let n = predefined(name, driver);
                self.commit(Writes::network(&n)).await?;
                st.networks.insert(n.id.clone(), n);
            }
        }
        if st.network_by_name("bridge").is_none() {
            let id = new_id();
            let taken = st.taken_subnets();
            // A leftover berth0 from an earlier life must not make its own subnet look taken.
            let _ = self.host.delete_link_by_name(DEFAULT_BRIDGE).await;
            let routes = self.host_routes(&[]).await?;
            let (pools, _) = plan_pools(&[], false, &id, &routes, &taken)?;
            let options = BTreeMap::from([
                (OPT_DEFAULT_BRIDGE.to_string(), "true".to_string()),
                (OPT_ICC.to_string(), "true".to_string()),
                (OPT_MASQ.to_string(), "true".to_string()),
                (OPT_BRIDGE_NAME.to_string(), DEFAULT_BRIDGE.to_string()),
                (
                    "com.docker.network.bridge.host_binding_ipv4".to_string(),
                    "0.0.0.0".to_string(),
                ),
                (OPT_MTU.to_string(), "1500".to_string()),
            ]);
            let n = Network {
                id,
                options,
                bridge: Some(DEFAULT_BRIDGE.into()),
                icc: true,
                masquerade: true,
                pools,
                ..predefined("bridge", Driver::Bridge)
            };
            self.commit(Writes::network(&n)).await?;
            st.networks.insert(n.id.clone(), n);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(subnet: &str) -> IpamConfigReq {
        IpamConfigReq {
            subnet: Some(subnet.into()),
            ..Default::default()
        }
    }

    #[test]
    fn default_pool_is_picked_around_routes_and_networks() {
        let routes = vec!["172.17.0.0/16".parse().unwrap()];
        let taken = vec![("a".to_string(), "172.18.0.0/16".parse().unwrap())];
        let (pools, user) = plan_pools(&[], false, "x", &routes, &taken).unwrap();
        assert!(!user);
        assert_eq!(pools[0].subnet().to_string(), "172.19.0.0/16");
    }

    #[test]
    fn explicit_overlap_is_rejected() {
        let taken = vec![("dev".to_string(), "10.1.0.0/16".parse().unwrap())];
        let e = plan_pools(&[req("10.1.2.0/24")], false, "x", &[], &taken).unwrap_err();
        assert_eq!(e.class(), crate::daemon::error::Class::Forbidden);
        assert!(e.to_string().contains("overlaps"), "{e}");
    }

    #[test]
    fn bad_cidr_is_invalid_parameter() {
        for bad in ["10.1.0.0", "nonsense", "10.1.0.0/33"] {
            let e = plan_pools(&[req(bad)], false, "x", &[], &[]).unwrap_err();
            assert_eq!(
                e.class(),
                crate::daemon::error::Class::InvalidParameter,
                "{bad}: {e}"
            );
        }
        let e = plan_pools(&[req("10.1.2.3/16")], false, "x", &[], &[]).unwrap_err();
        assert!(e.to_string().contains("10.1.0.0/16"), "{e}");
    }

    #[test]
    fn ipv6_needs_flag_and_gets_a_default_subnet() {
        plan_pools(&[req("fd00:1::/64")], false, "x", &[], &[]).unwrap_err();
        let (pools, _) = plan_pools(&[req("10.9.0.0/24")], true, "x", &[], &[]).unwrap();
        assert_eq!(pools.len(), 2);
        assert!(pools[1].subnet().addr().is_ipv6());
    }

    #[test]
    fn gateway_without_subnet_is_rejected() {
        let r = IpamConfigReq {
            gateway: Some("10.0.0.1".into()),
            ..Default::default()
        };
        assert_eq!(
            plan_pools(&[r], false, "x", &[], &[]).unwrap_err().class(),
            crate::daemon::error::Class::InvalidParameter
        );
    }
}
