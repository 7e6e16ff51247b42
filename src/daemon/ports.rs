//! Published ports in the daemon: host ports taken (and held by a socket) before anything
//! else changes at start, DNAT map elements while the container runs, the proxy on the held
//! sockets, and all of it released when the container stops.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use berth_firewall::PortMapping;
use berth_ports::{
    conflicts, plan, BindingRequest, Claims, PortProto, PortRange, Proto, Published,
};
use tokio::sync::watch;

use super::{Daemon, Error, Inner, Result};
use crate::model::{Container, NetworkMode};
use crate::proxy::{self, Held};

/// Who serves published ports: `auto` is the kernel path, with the proxy for what it cannot
/// serve (loopback clients, IPv6 clients of IPv4-only containers); `always` is the proxy
/// for everything (hosts without nftables NAT, or to compare).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Default)]
pub enum ProxyMode {
    #[default]
    Auto,
    Always,
}

pub(super) type PortKey = (Proto, IpAddr, u16);

/// A published host port in the daemon: whose it is, and its proxy.
pub(crate) struct Holder {
    pub container: String,
    target: watch::Sender<Option<SocketAddr>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Holder {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

/// Taking ports for one container: the other containers' bindings first, then a real
/// socket (which finds ports held by host processes). Bindings are indexed by protocol and
/// port, so a container publishing 10 000 ports checks each against the few addresses
/// already on that port, not against every binding.
struct Taker {
    by_port: HashMap<(Proto, u16), Vec<IpAddr>>,
    new: Vec<(PortKey, Held)>,
    bind_error: Option<(PortKey, std::io::Error)>,
}

impl Taker {
    fn new(held: &HashMap<PortKey, Holder>) -> Taker {
        let mut by_port: HashMap<(Proto, u16), Vec<IpAddr>> = HashMap::new();
        for (proto, ip, port) in held.keys() {
            by_port.entry((*proto, *port)).or_default().push(*ip);
        }
        Taker {
            by_port,
            new: vec![],
            bind_error: None,
        }
    }
}

impl Claims for Taker {
    fn take(&mut self, proto: Proto, ip: IpAddr, port: u16) -> bool {
        let key = (proto, ip, port);
        let same_port = self.by_port.entry((proto, port)).or_default();
        if same_port
            .iter()
            .any(|other| conflicts((proto, *other, port), key))
        {
            return false;
        }
        match proxy::bind(proto, ip, port) {
            Ok(h) => {
                same_port.push(ip);
                self.new.push((key, h));
                true
            }
            Err(e) => {
                self.bind_error = Some((key, e));
                false
            }
        }
    }

    fn give_back(&mut self, proto: Proto, ip: IpAddr, port: u16) {
        if let Some(v) = self.by_port.get_mut(&(proto, port)) {
            v.retain(|i| *i != ip);
        }
        self.new.retain(|(k, _)| *k != (proto, ip, port));
    }
}

/// Ports taken for a container that is about to start; dropping it gives them back.
pub(crate) struct Taken {
    pub published: Vec<Published>,
    held: Vec<(PortKey, Held)>,
}

/// What the container asked for: its bindings, plus an ephemeral one for every exposed
/// port without a binding when `-P` was given.
pub(super) fn requests(c: &Container) -> Result<Vec<BindingRequest>> {
    let mut out = Vec::new();
    for (pp, list) in &c.config.port_bindings {
        for (ip, port) in list {
            out.push(BindingRequest::parse(*pp, ip, port).map_err(port_error)?);
        }
    }
    if c.config.publish_all {
        for pp in &c.config.exposed_ports {
            if !c.config.port_bindings.contains_key(pp) {
                out.push(BindingRequest {
                    container: *pp,
                    ip: None,
                    ports: None,
                });
            }
        }
    }
    Ok(out)
}

pub(super) fn port_error(e: berth_ports::PortError) -> Error {
    match e {
        berth_ports::PortError::Allocated { .. } | berth_ports::PortError::Exhausted { .. } => {
            Error::Conflict(e.to_string())
        }
        _ => Error::InvalidParameter(e.to_string()),
    }
}

/// Refuses port publishing where there is no address of the container's own to send to.
pub(super) fn check_mode(mode: &NetworkMode, publishing: bool) -> Result<()> {
    if !publishing {
        return Ok(());
    }
    let why = match mode {
        NetworkMode::Networks => return Ok(()),
        NetworkMode::Host => "--network host: the container already uses the host's ports, so there is nothing to publish (drop -p/-P)",
        NetworkMode::None => "--network none: the container has no address to publish a port to",
        NetworkMode::Container(_) => "conflicting options: port publishing and the container type network mode (publish on the container whose network is shared)",
    };
    Err(Error::InvalidParameter(why.to_string()))
}

/// The container's addresses that published ports lead to: its first network with an
/// address of each family (the one with the default route, as in Docker).
fn targets(c: &Container) -> (Option<IpAddr>, Option<IpAddr>) {
    let v4 = c.endpoints.iter().find_map(|e| e.ipv4);
    let v6 = c.endpoints.iter().find_map(|e| e.ipv6);
    (v4, v6)
}

/// Where a binding leads: same family if the container has one, else (proxy only) the other.
fn target_of(c: &Container, p: &Published) -> Option<SocketAddr> {
    let (v4, v6) = targets(c);
    let ip = if p.host_ip.is_ipv4() {
        v4.or(v6)
    } else {
        v6.or(v4)
    }?;
    Some(SocketAddr::new(ip, p.container.port))
}

/// What a container's ports put in the kernel: the DNAT of the kernel path, and the guard
/// of every loopback binding. The guard is there whoever serves the port (with
/// `--userland-proxy always` too): it is what keeps a neighbour out when the host routes
/// 127/8 (`route_localnet`).
pub(super) fn mappings(c: &Container, mode: ProxyMode) -> Vec<PortMapping> {
    c.ports
        .iter()
        .filter_map(|p| {
            Some(PortMapping {
                proto: p.container.proto,
                host_ip: p.host_ip,
                host_port: p.host_port,
                target: target_of(c, p)?,
            })
        })
        .filter(|m| match mode {
            ProxyMode::Auto => m.has_kernel_state(),
            ProxyMode::Always => !m.in_kernel() && m.has_kernel_state(),
        })
        .collect()
}

/// The ephemeral range: the kernel's `ip_local_port_range`, as Docker uses.
pub(super) fn ephemeral_range() -> PortRange {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|x| x.parse::<u16>());
            match (it.next(), it.next()) {
                (Some(Ok(start)), Some(Ok(end))) if start > 0 && start <= end => {
                    Some(PortRange { start, end })
                }
                _ => None,
            }
        })
        .unwrap_or(PortRange {
            start: 49153,
            end: 65535,
        })
}

/// Whether `::` bindings go with 0.0.0.0 ones (as Docker does when the host has IPv6);
/// probed once.
fn host_has_ipv6() -> bool {
    static V6: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *V6.get_or_init(|| std::net::TcpListener::bind("[::1]:0").is_ok())
}

impl Daemon {
    /// Takes every host port the container asks for, or none (with the reason).
    pub(crate) fn take_ports(&self, st: &mut Inner, c: &Container) -> Result<Taken> {
        let reqs = requests(c)?;
        if reqs.is_empty() {
            return Ok(Taken {
                published: vec![],
                held: vec![],
            });
        }
        let range = self.opts.port_range.unwrap_or_else(ephemeral_range);
        let mut taker = Taker::new(&st.ports);
        let mut cursor = st.port_cursor;
        // `-p 80` on every address holds `::` only where the container has IPv6: a holding
        // socket per family costs a descriptor per port, and on an IPv4-only network the
        // second one would double what 10 000 published ports need.
        let v6 = host_has_ipv6() && c.endpoints.iter().any(|e| e.ipv6.is_some());
        let res = plan(&reqs, range, &mut cursor, v6, &mut taker);
        match res {
            Ok(published) => {
                st.port_cursor = cursor;
                Ok(Taken {
                    published,
                    held: taker.new,
                })
            }
            Err(e) => {
                // A port no container holds but a socket could not bind: name the real cause.
                if let (
                    berth_ports::PortError::Allocated { ip, port, .. },
                    Some(((_, bip, bport), be)),
                ) = (&e, &taker.bind_error)
                {
                    if bport == port && (bip == ip || ip.is_unspecified()) {
                        let addr = SocketAddr::new(*bip, *bport);
                        if *bport == berth_firewall::RESOLVER_PORT
                            && be.kind() == std::io::ErrorKind::AddrInUse
                        {
                            return Err(Error::Conflict(format!(
                                "Bind for {addr} failed: port {bport} is where berth's embedded DNS resolver listens on the networks' gateways; publish another host port"
                            )));
                        }
                        return Err(if be.kind() == std::io::ErrorKind::AddrInUse {
                            Error::Conflict(format!(
                                "Bind for {addr} failed: {be} (a process on the host holds this port; pick another host port or stop that process)"
                            ))
                        } else {
                            Error::Internal(format!("cannot hold host port {addr}: {be}"))
                        });
                    }
                }
                Err(port_error(e))
            }
        }
    }

    /// Starts serving taken ports (the kernel elements were added before the container
    /// started): the proxy tasks begin, the ports become the container's.
    pub(crate) fn serve_ports(&self, st: &mut Inner, c: &Container, taken: Taken) {
        let by_key: HashMap<PortKey, &Published> = c
            .ports
            .iter()
            .map(|p| ((p.container.proto, p.host_ip, p.host_port), p))
            .collect();
        for (key, held) in taken.held {
            let target = by_key.get(&key).and_then(|p| target_of(c, p));
            let (tx, rx) = watch::channel(target);
            let task = match proxy::serve(held, rx) {
                Ok(t) => t,
                Err(e) => {
                    tracing::warn!("proxy for {}:{}: {e}", key.1, key.2);
                    None
                }
            };
            st.ports.insert(
                key,
                Holder {
                    container: c.id.clone(),
                    target: tx,
                    task,
                },
            );
        }
    }

    /// Adds the kernel elements of a container's ports (one nft batch however many).
    pub(crate) fn install_ports(&self, m: &[PortMapping]) -> Result<()> {
        if m.is_empty() {
            return Ok(());
        }
        self.nft.apply(&berth_firewall::add_ports(m))?;
        Ok(())
    }

    /// Releases everything of a container's published ports: kernel elements, proxies and
    /// held sockets.
    pub(crate) fn release_ports(&self, st: &mut Inner, c: &Container) {
        if let Some(m) = st.installed.remove(&c.id) {
            self.uninstall_ports(st, &m);
        }
        st.ports.retain(|_, h| h.container != c.id);
    }

    /// After connect/disconnect: the ports follow the container's (new) first address.
    pub(crate) fn retarget_ports(&self, st: &mut Inner, c: &Container) {
        if c.ports.is_empty() {
            return;
        }
        let new = mappings(c, self.opts.userland_proxy);
        let old = st.installed.remove(&c.id).unwrap_or_default();
        if old != new {
            self.uninstall_ports(st, &old);
            if let Err(e) = self.install_ports(&new) {
                tracing::warn!(container = %c.name, "re-publishing ports: {e}");
            }
        }
        st.installed.insert(c.id.clone(), new);
        for p in &c.ports {
            if let Some(h) = st.ports.get(&(p.container.proto, p.host_ip, p.host_port)) {
                let _ = h.target.send(target_of(c, p));
            }
        }
    }

    /// At start: the ports of re-adopted containers are bound and served again (the kernel
    /// elements come with the full ruleset).
    pub(crate) fn readopt_ports(&self, st: &mut Inner, c: &Container) {
        let mut held = Vec::new();
        for p in &c.ports {
            let key = (p.container.proto, p.host_ip, p.host_port);
            match proxy::bind(key.0, key.1, key.2) {
                Ok(h) => held.push((key, h)),
                Err(e) => tracing::warn!(
                    container = %c.name,
                    "published port {}:{} could not be held again: {e}",
                    key.1,
                    key.2
                ),
            }
        }
        self.serve_ports(
            st,
            c,
            Taken {
                published: c.ports.clone(),
                held,
            },
        );
        st.installed
            .insert(c.id.clone(), mappings(c, self.opts.userland_proxy));
    }
}

/// A container port and its host bindings as (HostIp, HostPort); `None`: exposed only.
pub(super) type PortState = (PortProto, Option<Vec<(String, String)>>);

/// docker's `NetworkSettings.Ports`: every exposed or published port, with its bindings
/// (null when only exposed). Empty when the container does not run.
pub fn ports_map(c: &Container) -> Vec<PortState> {
    if !c.is_running() {
        return vec![];
    }
    let mut keys: Vec<PortProto> = c.config.exposed_ports.iter().copied().collect();
    keys.extend(c.ports.iter().map(|p| p.container));
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|k| {
            let b: Vec<(String, String)> = c
                .ports
                .iter()
                .filter(|p| p.container == k)
                .map(|p| (p.host_ip.to_string(), p.host_port.to_string()))
                .collect();
            (k, if b.is_empty() { None } else { Some(b) })
        })
        .collect()
}
