//! What other sandboxes and tools learn about containers: the embedded resolver's index
//! (kept by its controller from the change feed, never edited by an operation) and the
//! resolv.conf that points each sandbox at it.

use std::net::{IpAddr, SocketAddr};

use berth_dns as dns;

use std::sync::Arc;

use super::feed::{Change, Controller, Snapshot};
use super::{Daemon, Error, Inner, Result};
use crate::model::{Container, Driver, Network, NetworkMode};

/// The resolver's view of a network: bridge networks only (they have gateway addresses
/// to listen on).
pub(crate) fn dns_network(n: &Network) -> Option<dns::Network> {
    (n.bridged() && n.bridge.is_some()).then(|| dns::Network {
        id: n.id.as_str().into(),
        name: n.name.clone(),
        internal: n.internal,
        names: !n.is_default_bridge(),
    })
}

/// A running container in its own namespace, as the resolver sees it.
pub(crate) fn dns_sandbox(c: &Container) -> Option<dns::Sandbox> {
    if !c.is_running() || c.config.network_mode != NetworkMode::Networks {
        return None;
    }
    Some(dns::Sandbox {
        id: c.id.as_str().into(),
        name: c.name.clone(),
        hostname: c.config.hostname.clone(),
        upstreams: c
            .config
            .dns
            .iter()
            .map(|ip| SocketAddr::new(*ip, 53))
            .collect(),
        ports: c
            .config
            .exposed_ports
            .iter()
            .map(|p| {
                let proto = match p.proto {
                    berth_ports::Proto::Tcp => dns::Proto::Tcp,
                    berth_ports::Proto::Udp => dns::Proto::Udp,
                    berth_ports::Proto::Sctp => dns::Proto::Sctp,
                };
                (p.port, proto)
            })
            .collect(),
        // A replica with a health check answers only while healthy.
        in_service: c
            .state
            .health
            .as_ref()
            .is_none_or(|h| h.status == "healthy"),
        links: c.config.links.clone(),
        attachments: c
            .endpoints
            .iter()
            .map(|e| dns::Attachment {
                network: e.network_id.as_str().into(),
                aliases: e.aliases.clone(),
                v4: match e.ipv4 {
                    Some(IpAddr::V4(a)) => Some(a),
                    _ => None,
                },
                v6: match e.ipv6 {
                    Some(IpAddr::V6(a)) => Some(a),
                    _ => None,
                },
            })
            .collect(),
    })
}

/// The gateway addresses a network's listener binds.
fn gateways(n: &Network) -> Vec<IpAddr> {
    n.pools.iter().map(|p| p.gateway()).collect()
}

/// Keeps the resolver's index in line with the records: networks and running sandboxes.
/// The listeners are not its business: binding a socket can fail, so network create and
/// rm open and close them in the operation, which can undo itself.
pub(crate) struct DnsController {
    pub dns: Arc<crate::dns::Resolver>,
    /// Other nodes' containers on overlay networks (kept by the overlay round): put back
    /// whenever the index is rebuilt or one of their networks is set anew.
    pub remote: super::overlay::RemoteNames,
}

impl Controller for DnsController {
    fn resync(&self, snap: &Snapshot) {
        let remote = self.remote.lock().expect("lock").clone();
        self.dns.update(|ix| {
            *ix = dns_index(ix, snap);
            super::overlay::reinsert_remote(ix, &remote);
        });
    }

    fn apply(&self, snap: &Snapshot, change: &Change) {
        let remote = matches!(change, Change::Network { .. })
            .then(|| self.remote.lock().expect("lock").clone());
        self.dns.update(|ix| {
            dns_apply(ix, snap, change);
            if let Some(r) = &remote {
                super::overlay::reinsert_remote(ix, r);
            }
        });
    }
}

/// The index of a whole state, keeping `base`'s upstreams, services and rotation.
pub(crate) fn dns_index(base: &dns::Index, snap: &Snapshot) -> dns::Index {
    let mut ix = base.cleared();
    for n in snap.networks.values() {
        if let Some(dn) = dns_network(n) {
            ix.set_network(dn);
        }
    }
    for c in snap.containers.values() {
        if let Some(s) = dns_sandbox(c) {
            ix.upsert_sandbox(s);
        }
    }
    ix
}

/// One change into the index; `snap` is the state after it.
pub(crate) fn dns_apply(ix: &mut dns::Index, snap: &Snapshot, change: &Change) {
    match change {
        Change::Network { prev, new, .. } => {
            match (new, prev) {
                (Some(n), _) => match dns_network(n) {
                    Some(dn) => ix.set_network(dn),
                    None => ix.remove_network(&n.id),
                },
                (None, Some(p)) => ix.remove_network(&p.id),
                (None, None) => return,
            }
            // A sandbox's client entry says which of its networks the resolver knows and
            // whether all are internal: those attached to this one are put in again.
            let id = new.as_ref().or(prev.as_ref()).map(|n| n.id.as_str());
            for c in snap.containers.values() {
                if c.endpoints
                    .iter()
                    .any(|e| Some(e.network_id.as_str()) == id)
                {
                    ix.remove_sandbox(&c.id);
                    if let Some(s) = dns_sandbox(c) {
                        ix.upsert_sandbox(s);
                    }
                }
            }
        }
        Change::Container { prev, new, .. } => match (new, prev) {
            (Some(c), _) => match dns_sandbox(c) {
                Some(s) => ix.upsert_sandbox(s),
                None => ix.remove_sandbox(&c.id),
            },
            (None, Some(p)) => ix.remove_sandbox(&p.id),
            (None, None) => {}
        },
    }
}

impl Daemon {
    /// A network's listeners. Port 53 on the gateway may be taken (a DNS server on the
    /// host bound to every address): the network still works, its sandboxes then get the
    /// host's resolvers instead, and the daemon says why.
    pub(crate) fn dns_listen(&self, n: &Network) {
        // An overlay's gateway exists here only while its bridge does (`overlay_bridge_up`).
        if n.driver == Driver::Overlay {
            return;
        }
        let Some(dn) = dns_network(n) else {
            return;
        };
        if let Err(e) = self.dns.listen(&dn.id, &gateways(n)) {
            tracing::warn!(
                network = %n.name,
                "no embedded DNS on this network ({e}): its containers get the host's resolvers; free port {} on {:?} and restart the daemon to have names",
                berth_firewall::RESOLVER_PORT,
                gateways(n)
            );
        }
    }

    pub(crate) fn dns_unlisten(&self, id: &str) {
        self.dns.unlisten(id);
    }

    /// Re-reads the host's resolvers when its resolv.conf changed (cheap: one stat).
    pub(crate) fn dns_refresh_upstreams(&self) {
        let mtime = std::fs::metadata(&self.opts.resolv_conf)
            .and_then(|m| m.modified())
            .ok();
        let mut seen = self.resolv_mtime.lock().expect("lock");
        if *seen == mtime {
            return;
        }
        *seen = mtime;
        let ups = crate::dns::upstreams_from(&self.host_resolv());
        self.dns.update(|ix| ix.set_upstreams(ups));
    }

    /// The sandbox's resolv.conf: berth's resolver on each of its networks' gateways
    /// (at most three, the C library's limit), with the host's search domains and
    /// options. `--dns` servers become that resolver's upstreams, as with Docker's
    /// 127.0.0.11 — except on the default bridge, which has no names to add, where they
    /// are written as they are.
    pub(crate) fn resolv_conf_for(&self, c: &Container) -> String {
        let host = self.host_resolv();
        let mut servers: Vec<IpAddr> = Vec::new();
        if c.config.network_mode == NetworkMode::Networks {
            let on_default_only = c.endpoints.iter().all(|e| e.network_name == "bridge");
            if !on_default_only || c.config.dns.is_empty() {
                for e in c
                    .endpoints
                    .iter()
                    .filter(|e| self.dns.listening(&e.network_id))
                {
                    if let Some(g) = e.gateway4.or(e.gateway6) {
                        if !servers.contains(&g) {
                            servers.push(g);
                        }
                    }
                }
                servers.truncate(3);
            }
        }
        if servers.is_empty() {
            servers = c.config.dns.clone();
        }
        crate::sandbox::resolv_conf(&host, &servers, &c.config.dns_search, &c.config.dns_options)
    }
}

/// `--link` values as given (`db`, `db:alias`, docker's `/db:/web/alias`) → (target's
/// name, alias), after checking the target exists.
pub(crate) fn parse_links(
    st: &Inner,
    links: &[String],
    mode: &NetworkMode,
) -> Result<Vec<(String, String)>> {
    if !links.is_empty() && *mode != NetworkMode::Networks {
        return Err(Error::InvalidParameter(
            "conflicting options: --link and the network mode (links need a network of the container's own)".into(),
        ));
    }
    links
        .iter()
        .map(|l| {
            let (target, alias) = l.split_once(':').unwrap_or((l, l));
            let target = target.trim_start_matches('/');
            let alias = alias.rsplit('/').next().unwrap_or(alias);
            if target.is_empty() || alias.is_empty() {
                return Err(Error::InvalidParameter(format!(
                    "invalid link {l:?}: use NAME or NAME:ALIAS"
                )));
            }
            // The alias becomes a line of the sandbox's /etc/hosts.
            crate::validate::check_domain("--link alias", alias)
                .map_err(Error::InvalidParameter)?;
            let id = st.container_id(target).map_err(|_| {
                Error::InvalidParameter(format!(
                    "could not get container for {target}: no container has that name or id"
                ))
            })?;
            Ok((st.containers[&id].name.clone(), alias.to_string()))
        })
        .collect()
}

/// What the links of a starting container resolve to: on the default bridge, docker's
/// legacy `/etc/hosts` lines and environment variables; on a user network nothing here
/// (the resolver answers the alias for this container only).
pub(crate) fn resolve_links(st: &Inner, c: &Container) -> Result<LinkFiles> {
    let mut files = LinkFiles::default();
    for (target, alias) in &c.config.links {
        let t = st
            .containers
            .values()
            .find(|t| &t.name == target)
            .filter(|t| t.is_running())
            .ok_or_else(|| {
                Error::Conflict(format!(
                    "Cannot link to a non running container: /{target} AS /{}/{alias}",
                    c.name
                ))
            })?;
        let shared = c
            .endpoints
            .iter()
            .find_map(|e| t.endpoints.iter().find(|te| te.network_id == e.network_id));
        let Some(te) = shared else {
            return Err(Error::InvalidParameter(format!(
                "Cannot link to /{target}, as it does not belong to a network of /{}",
                c.name
            )));
        };
        let legacy = st
            .networks
            .get(&te.network_id)
            .is_some_and(|n| n.is_default_bridge());
        let Some(ip) = te.ipv4.or(te.ipv6) else {
            continue;
        };
        if !legacy {
            continue;
        }
        let mut names = vec![alias.clone(), t.id[..12].to_string()];
        if alias != &t.name {
            names.push(t.name.clone());
        }
        files.hosts.push((ip, names.join(" ")));
        let ports: Vec<(u16, &str)> = t
            .config
            .exposed_ports
            .iter()
            .map(|p| (p.port, p.proto.as_str()))
            .collect();
        files
            .env
            .extend(link_env(alias, &c.name, ip, &ports, &t.config.env));
    }
    Ok(files)
}

#[derive(Debug, Default)]
pub(crate) struct LinkFiles {
    pub hosts: Vec<(IpAddr, String)>,
    pub env: Vec<String>,
}

/// Docker's link variables: `ALIAS_NAME`, `ALIAS_PORT` (the lowest port),
/// `ALIAS_PORT_<port>_<PROTO>{,_ADDR,_PORT,_PROTO}` per exposed port, and the target's own
/// variables as `ALIAS_ENV_<VAR>`.
pub(crate) fn link_env(
    alias: &str,
    container: &str,
    ip: IpAddr,
    ports: &[(u16, &str)],
    target_env: &[String],
) -> Vec<String> {
    let p: String = alias
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    let mut env = vec![format!("{p}_NAME=/{container}/{alias}")];
    let mut ports = ports.to_vec();
    // Docker sorts tcp before other protocols, then by port.
    ports.sort_by_key(|(port, proto)| (*proto != "tcp", *port));
    if let Some((port, proto)) = ports.first() {
        env.push(format!("{p}_PORT={proto}://{ip}:{port}"));
    }
    for (port, proto) in &ports {
        let k = format!("{p}_PORT_{port}_{}", proto.to_ascii_uppercase());
        env.push(format!("{k}={proto}://{ip}:{port}"));
        env.push(format!("{k}_ADDR={ip}"));
        env.push(format!("{k}_PORT={port}"));
        env.push(format!("{k}_PROTO={proto}"));
    }
    for e in target_env {
        let Some((k, v)) = e.split_once('=') else {
            continue;
        };
        if !matches!(k, "HOME" | "PATH" | "HOSTNAME") {
            env.push(format!("{p}_ENV_{k}={v}"));
        }
    }
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_variables_as_docker_writes_them() {
        let env = link_env(
            "my-db",
            "web",
            "172.17.0.2".parse().unwrap(),
            &[(5432, "tcp"), (53, "udp"), (80, "tcp")],
            &["POSTGRES_USER=app".into(), "PATH=/x".into()],
        );
        assert_eq!(
            env,
            [
                "MY_DB_NAME=/web/my-db",
                "MY_DB_PORT=tcp://172.17.0.2:80",
                "MY_DB_PORT_80_TCP=tcp://172.17.0.2:80",
                "MY_DB_PORT_80_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_80_TCP_PORT=80",
                "MY_DB_PORT_80_TCP_PROTO=tcp",
                "MY_DB_PORT_5432_TCP=tcp://172.17.0.2:5432",
                "MY_DB_PORT_5432_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_5432_TCP_PORT=5432",
                "MY_DB_PORT_5432_TCP_PROTO=tcp",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_ENV_POSTGRES_USER=app",
            ]
        );
    }

    /// The resolver's controller gives the same index whether it follows every change
    /// (`apply`) or rebuilds from the state reached (`resync`), after each step of a
    /// history that has starts, health changes, attaches to a network created later, exits,
    /// removals and a network changed and removed under its sandboxes.
    #[test]
    fn apply_and_resync_agree() {
        use crate::daemon::containers::alloc_tests::{container_across, container_on, net};
        use crate::daemon::feed::step;
        use crate::daemon::keys;
        use crate::model::{Health, Status};

        let running = |mut c: Container| {
            c.state.status = Status::Running;
            c.state.pid = 1;
            c
        };
        let health = |mut c: Container, status: &str| {
            c.state.health = Some(Health {
                status: status.into(),
                failing_streak: 0,
                log: vec![],
            });
            c
        };
        let (a, b) = (net("a", "10.1.0.0/24"), net("b", "10.2.0.0/24"));
        let mut internal_a = a.clone();
        internal_a.internal = true;
        let mut aliased = running(container_on(&a, "c3", "10.1.0.30"));
        aliased.endpoints[0].aliases = vec!["db".into(), "store".into()];
        let net_put = |n: &Network| (keys::network(&n.id), Some(serde_json::to_vec(n).unwrap()));
        let ctr_put =
            |c: &Container| (keys::container(&c.id), Some(serde_json::to_vec(c).unwrap()));
        let c1 = container_on(&a, "c1", "10.1.0.10");
        let c2 = running(container_on(&a, "c2", "10.1.0.20"));
        let c4 = running(container_across(&[a.clone(), b.clone()], "c4"));
        let history: Vec<(String, Option<Vec<u8>>)> = vec![
            net_put(&a),
            ctr_put(&c1),
            ctr_put(&running(c1.clone())),
            ctr_put(&health(c2.clone(), "starting")),
            ctr_put(&health(c2.clone(), "healthy")),
            ctr_put(&aliased),
            ctr_put(&c4),
            net_put(&b),
            (
                format!("{}id-a/10.1.0.10", keys::IPAM),
                Some(b"c1".to_vec()),
            ),
            ctr_put(&c1),
            ctr_put(&health(c2.clone(), "unhealthy")),
            (keys::container("c3"), None),
            net_put(&internal_a),
            (keys::network(&b.id), None),
            (keys::container("c4"), None),
        ];
        let base = dns::Index::default();
        let mut snap = Snapshot::default();
        let mut followed = base.clone();
        for (i, (key, value)) in history.iter().enumerate() {
            let revision = i64::try_from(i).unwrap() + 2;
            if let Some(change) = step(&mut snap, key, value.as_deref(), revision) {
                dns_apply(&mut followed, &snap, &change);
            }
            snap.revision = revision;
            assert_eq!(
                followed.describe(),
                dns_index(&base, &snap).describe(),
                "after step {i} ({key})"
            );
        }
        // The history did reach the index: c2 is out (unhealthy), c1 exited.
        assert!(
            followed.names("id-a").is_empty(),
            "{:?}",
            followed.names("id-a")
        );
    }
}
