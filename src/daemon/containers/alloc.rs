//! Endpoint addresses: allocated in every network of a container (all or none), released.

use super::*;
use crate::daemon::keys::Writes;
use crate::daemon::{without_allocations, Error, Inner, Result};
use crate::model::{
    mac_for, mac_string, new_id, Container, Driver, Endpoint, EndpointRequest, Network, NetworkMode,
};

pub(super) fn next_ifname(eps: &[Endpoint]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !eps.iter().any(|e| &e.ifname == n))
        .expect("unbounded")
}

pub(super) fn allocate_one(
    st: &mut Inner,
    owner: &str,
    net: &Network,
    req: &EndpointRequest,
    ifname: String,
) -> Result<Endpoint> {
    let owned = st.blocks.get(&net.id).cloned().unwrap_or_default();
    let n = st.networks.get_mut(&net.id).expect("exists");
    let overlay = n.driver == Driver::Overlay;
    let mut v4 = None;
    let mut v6 = None;
    let mut taken = Vec::new();
    let res = (|| -> Result<()> {
        for p in n.pools.iter_mut() {
            let is4 = p.subnet().addr().is_ipv4();
            let want = if is4 { req.ipv4 } else { req.ipv6 };
            if (is4 && v4.is_some()) || (!is4 && v6.is_some()) {
                continue;
            }
            if let Some(ip) = want {
                if !p.contains(ip) {
                    continue;
                }
                if overlay && !owned.iter().any(|b| b.contains(&ip)) {
                    return Err(Error::NoBlock {
                        network: net.id.clone(),
                        v6: !is4,
                        want: Some(ip),
                    });
                }
                p.allocate_static(ip, owner)?;
                taken.push(ip);
            } else if overlay {
                let ip = overlay_address(p, &owned).ok_or_else(|| Error::NoBlock {
                    network: net.id.clone(),
                    v6: !is4,
                    want: None,
                })?;
                p.allocate_static(ip, owner)?;
                taken.push(ip);
            } else {
                let ip = p.allocate(owner)?;
                taken.push(ip);
            }
            let ip = *taken.last().expect("just pushed");
            let entry = (ip, p.prefix_len(), p.gateway());
            if is4 {
                v4 = Some(entry);
            } else {
                v6 = Some(entry);
            }
        }
        Ok(())
    })();
    if let Err(e) = res {
        for ip in taken {
            for p in n.pools.iter_mut() {
                p.release(ip);
            }
        }
        return Err(e);
    }
    let id = new_id();
    Ok(Endpoint {
        host_ifname: format!("{HOST_VETH_PREFIX}{}", &id[..10]),
        id,
        network_id: net.id.clone(),
        network_name: net.name.clone(),
        ifname,
        mac: mac_string(&mac_for(v4.map(|v| v.0))),
        ipv4: v4.map(|v| v.0),
        ipv4_prefix: v4.map(|v| v.1).unwrap_or(0),
        gateway4: v4.map(|v| v.2),
        ipv6: v6.map(|v| v.0),
        ipv6_prefix: v6.map(|v| v.1).unwrap_or(0),
        gateway6: v6.map(|v| v.2),
        aliases: req.aliases.clone(),
        request: req.clone(),
    })
}

/// The first free address of the pool in this node's blocks (within the pool's range):
/// an overlay network's addresses come only from blocks the node owns, so nodes never
/// need to ask each other.
fn overlay_address(p: &berth_ipam::Pool, owned: &[ipnet::IpNet]) -> Option<std::net::IpAddr> {
    let subnet = p.subnet();
    let range = p.config().ip_range;
    let found = owned
        .iter()
        .filter(|b| subnet.contains(&b.network()))
        .flat_map(|b| berth_ipam::blocks::usable(&subnet, b, &[]))
        .filter(|ip| range.is_none_or(|r| r.contains(ip)))
        .find(|ip| p.owner_of(*ip).is_none() && p.reserved_reason(*ip).is_none());
    found
}

/// Addresses for every network of a container about to start (all or none), and their
/// claims in the store.
pub(super) fn allocate_endpoints(st: &mut Inner, c: &Container) -> Result<(Vec<Endpoint>, Writes)> {
    if c.config.network_mode != NetworkMode::Networks {
        return Ok((vec![], Writes::default()));
    }
    let mut eps: Vec<Endpoint> = Vec::new();
    for (i, (name, req)) in c.config.networks.iter().enumerate() {
        let res = st
            .network_by_name(name)
            .map(without_allocations)
            .ok_or_else(|| Error::NotFound(format!("network {name} not found")))
            .and_then(|net| allocate_one(st, &c.id, &net, req, format!("eth{i}")));
        match res {
            Ok(ep) => eps.push(ep),
            Err(e) => {
                for ep in &eps {
                    if let Some(n) = st.networks.get_mut(&ep.network_id) {
                        release_ep(n, ep);
                    }
                }
                return Err(e);
            }
        }
    }
    let mut w = Writes::default();
    for ep in &eps {
        w.claim(&c.id, ep);
    }
    Ok((eps, w))
}

pub(super) fn release_ep(n: &mut Network, ep: &Endpoint) {
    for ip in ep.ipv4.iter().chain(ep.ipv6.iter()) {
        for p in n.pools.iter_mut() {
            p.release(*ip);
        }
    }
}

/// Releases a container's addresses in memory; returns their deletions in the store.
pub(crate) fn release_endpoints(st: &mut Inner, c: &Container) -> Writes {
    let mut w = Writes::default();
    for ep in &c.endpoints {
        if let Some(n) = st.networks.get_mut(&ep.network_id) {
            release_ep(n, ep);
        }
        w.release(ep);
    }
    if !st.stale.elements.is_empty() {
        crate::daemon::cleanup::hold_targets(st);
    }
    w
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::daemon::networks::{plan_pools, IpamConfigReq};
    use crate::model::{ContainerConfig, Driver, State};

    /// A user bridge network on `subnet`, as `network create --subnet` would plan it.
    pub(crate) fn net(name: &str, subnet: &str) -> Network {
        let req = IpamConfigReq {
            subnet: Some(subnet.into()),
            ..Default::default()
        };
        let (pools, user_subnets) = plan_pools(&[req], false, name, &[], &[]).unwrap();
        Network {
            id: format!("id-{name}"),
            name: name.into(),
            driver: Driver::Bridge,
            created: chrono::Utc::now(),
            builtin: false,
            internal: false,
            attachable: false,
            ipv6: false,
            labels: Default::default(),
            options: Default::default(),
            bridge: Some(format!("br-{name}")),
            mtu: None,
            icc: true,
            masquerade: true,
            pools,
            user_subnets,
        }
    }

    pub(crate) fn ctr(id: &str, networks: &[(&str, Option<&str>)]) -> Container {
        Container {
            id: id.into(),
            name: id.into(),
            created: chrono::Utc::now(),
            config: ContainerConfig {
                cmd: vec!["true".into()],
                env: vec![],
                working_dir: String::new(),
                hostname: id.into(),
                domainname: String::new(),
                tty: false,
                open_stdin: false,
                dns: vec![],
                dns_search: vec![],
                dns_options: vec![],
                extra_hosts: vec![],
                auto_remove: false,
                labels: Default::default(),
                network_mode: NetworkMode::Networks,
                network_mode_name: networks[0].0.into(),
                networks: networks
                    .iter()
                    .map(|(n, ip)| {
                        (
                            n.to_string(),
                            EndpointRequest {
                                ipv4: ip.map(|i| i.parse().unwrap()),
                                ..Default::default()
                            },
                        )
                    })
                    .collect(),
                exposed_ports: Default::default(),
                port_bindings: Default::default(),
                publish_all: false,
                links: vec![],
                restart: Default::default(),
                healthcheck: None,
                log_opts: vec![],
            },
            state: State::created(),
            endpoints: vec![],
            ports: vec![],
            link_hosts: vec![],
            link_env: vec![],
        }
    }

    /// A container holding `ip` on `n`, as a start would leave it.
    pub(crate) fn container_on(n: &Network, id: &str, ip: &str) -> Container {
        let mut st = inner(std::slice::from_ref(n));
        let mut c = ctr(id, &[(&n.name, Some(ip))]);
        c.endpoints = allocate_endpoints(&mut st, &c).unwrap().0;
        c
    }

    /// A container with an endpoint on each of `nets`, addresses from their pools.
    pub(crate) fn container_across(nets: &[Network], id: &str) -> Container {
        let mut st = inner(nets);
        let spec: Vec<(&str, Option<&str>)> =
            nets.iter().map(|n| (n.name.as_str(), None)).collect();
        let mut c = ctr(id, &spec);
        c.endpoints = allocate_endpoints(&mut st, &c).unwrap().0;
        c
    }

    pub(crate) fn inner(nets: &[Network]) -> Inner {
        let mut st = Inner::default();
        for n in nets {
            st.networks.insert(n.id.clone(), n.clone());
        }
        st
    }

    #[test]
    fn every_network_or_none() {
        let mut st = inner(&[net("a", "10.1.0.0/24"), net("b", "10.2.0.0/30")]);
        // b's one address taken: a two-network container gets neither.
        let first = ctr("c1", &[("b", None)]);
        let (eps, _) = allocate_endpoints(&mut st, &first).unwrap();
        assert_eq!(eps[0].ipv4.unwrap().to_string(), "10.2.0.2");
        let both = ctr("c2", &[("a", None), ("b", None)]);
        allocate_endpoints(&mut st, &both).unwrap_err();
        // a's address went back: nobody holds it, and a's pool still hands addresses out
        // (not that one at once: no immediate reuse, as docker).
        let a = &st.networks["id-a"].pools[0];
        assert_eq!(a.owner_of("10.1.0.2".parse().unwrap()), None);
        let only_a = ctr("c3", &[("a", None)]);
        let (eps, w) = allocate_endpoints(&mut st, &only_a).unwrap();
        assert_eq!(eps[0].ipv4.unwrap().to_string(), "10.1.0.3");
        assert_eq!(eps[0].ifname, "eth0");
        // One address key claimed; the network record is not rewritten.
        assert_eq!(w.ops.len(), 1);
        assert_eq!(
            w.compares,
            vec![berth_store::Compare::Absent(
                "/berth/ipam/id-a/10.1.0.3".into()
            )]
        );
    }

    #[test]
    fn a_static_address_is_had_once_and_released_with_its_container() {
        let mut st = inner(&[net("a", "10.1.0.0/24")]);
        let one = ctr("c1", &[("a", Some("10.1.0.9"))]);
        let (eps, _) = allocate_endpoints(&mut st, &one).unwrap();
        allocate_endpoints(&mut st, &ctr("c2", &[("a", Some("10.1.0.9"))])).unwrap_err();
        let mut held = one.clone();
        held.endpoints = eps;
        release_endpoints(&mut st, &held);
        allocate_endpoints(&mut st, &ctr("c2", &[("a", Some("10.1.0.9"))])).unwrap();
    }

    #[test]
    fn interface_names_fill_the_first_gap() {
        let mut st = inner(&[net("a", "10.1.0.0/24")]);
        let c = ctr("c1", &[("a", None)]);
        let (mut eps, _) = allocate_endpoints(&mut st, &c).unwrap();
        eps[0].ifname = "eth1".into();
        assert_eq!(next_ifname(&eps), "eth0");
        eps[0].ifname = "eth0".into();
        assert_eq!(next_ifname(&eps), "eth1");
    }
}
