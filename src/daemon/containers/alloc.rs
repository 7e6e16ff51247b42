//! Endpoint addresses: allocated in every network of a container (all or none), released.

use super::*;
use crate::daemon::{put_network, without_allocations, Error, Inner, Result};
use crate::model::{
    mac_for, mac_string, new_id, Container, Endpoint, EndpointRequest, Network, NetworkMode,
};
use crate::store::Op;

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
    let n = st.networks.get_mut(&net.id).expect("exists");
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

/// Addresses for every network of a container about to start (all or none).
pub(super) fn allocate_endpoints(
    st: &mut Inner,
    c: &Container,
) -> Result<(Vec<Endpoint>, Vec<Op>)> {
    if c.config.network_mode != NetworkMode::Networks {
        return Ok((vec![], vec![]));
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
    let ops = eps
        .iter()
        .map(|e| put_network(&st.networks[&e.network_id]))
        .collect();
    Ok((eps, ops))
}

pub(super) fn release_ep(n: &mut Network, ep: &Endpoint) {
    for ip in ep.ipv4.iter().chain(ep.ipv6.iter()) {
        for p in n.pools.iter_mut() {
            p.release(*ip);
        }
    }
}

/// Releases a container's addresses in memory; returns the network records to write.
pub(crate) fn release_endpoints(st: &mut Inner, c: &Container) -> Vec<Op> {
    let mut ops = Vec::new();
    for ep in &c.endpoints {
        if let Some(n) = st.networks.get_mut(&ep.network_id) {
            release_ep(n, ep);
            ops.push(put_network(n));
        }
    }
    if !st.stale.elements.is_empty() {
        crate::daemon::cleanup::hold_targets(st);
    }
    ops
}
