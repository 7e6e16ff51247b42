//! The name index: which names each network holds, who is asking, and where a sandbox's
//! unanswered questions go. It is an immutable value built from persistent maps, so the
//! daemon updates a copy in O(log n) per attach or detach and swaps it in whole; queries
//! read the old snapshot until then and never wait for a writer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::fast::Lookup;
use crate::name::fits;
use crate::services::Services;

pub type NetId = Arc<str>;

/// Transport of an exposed port, for SRV records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn label(self) -> &'static str {
        match self {
            Proto::Tcp => "_tcp",
            Proto::Udp => "_udp",
            Proto::Sctp => "_sctp",
        }
    }

    pub fn from_label(l: &str) -> Option<Proto> {
        match l {
            "_tcp" => Some(Proto::Tcp),
            "_udp" => Some(Proto::Udp),
            "_sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }
}

/// A network as the resolver sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub id: NetId,
    pub name: String,
    /// No route out: sandboxes whose networks are all internal get no forwarding.
    pub internal: bool,
    /// Docker's default `bridge` network has no names (links and `--add-host` only).
    pub names: bool,
}

/// One sandbox's attachment to a network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub network: NetId,
    pub aliases: Vec<String>,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// A running sandbox with its attachments in attach order (the first is eth0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sandbox {
    pub id: Arc<str>,
    pub name: String,
    pub hostname: String,
    /// `--dns`: replaces the daemon's upstream resolvers for this sandbox.
    pub upstreams: Vec<SocketAddr>,
    /// Exposed container ports, for SRV answers.
    pub ports: Vec<(u16, Proto)>,
    /// False while a health check fails: the sandbox keeps its own names out of answers.
    pub in_service: bool,
    /// `--link TARGET:ALIAS` on a user network: ALIAS names TARGET for this sandbox only.
    pub links: Vec<(String, String)>,
    pub attachments: Vec<Attachment>,
}

/// One holder of a name on one network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub sandbox: Arc<str>,
    /// The container's name, or if that cannot be a DNS name another name it holds on
    /// this network: the target of SRV and PTR answers (`NAME.NETWORK.`).
    pub name: Arc<str>,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
    pub ports: Arc<[(u16, Proto)]>,
}

#[derive(Debug, Clone)]
pub(crate) struct Table {
    pub meta: Network,
    /// Lower-case name → its holders, in attach order.
    pub names: imbl::HashMap<Arc<str>, Arc<[Member]>>,
    /// Address → the sandbox that holds it on this network and its `Member::name`.
    pub ptr: imbl::HashMap<IpAddr, (Arc<str>, Arc<str>)>,
}

/// Who a query comes from, once the listener and source address are known.
#[derive(Debug, Clone)]
pub struct Client {
    pub sandbox: Arc<str>,
    /// The sandbox's networks, in attach order.
    pub networks: Arc<[NetId]>,
    pub upstreams: Arc<[SocketAddr]>,
    pub internal_only: bool,
    /// Lower-case alias → lower-case target name, seen by this sandbox only.
    pub links: Arc<[(String, String)]>,
}

/// Where a query arrived and from whom.
#[derive(Debug, Clone, Copy)]
pub enum Asker<'a> {
    /// On the listener of a network, from an address on it.
    Network { network: &'a str, source: IpAddr },
    /// The host: only `NAME.NETWORK` names, on every network.
    Host,
}

/// The names a query may see, in the order they are searched.
#[derive(Debug, Clone)]
pub struct View {
    pub networks: Vec<NetId>,
    pub upstreams: Arc<[SocketAddr]>,
    /// Unknown names are refused rather than forwarded.
    pub refuse_outside: bool,
    pub host: bool,
    pub links: Arc<[(String, String)]>,
}

/// The clients holding one address, each on its network.
type ClientsAt = Arc<[(NetId, Arc<Client>)]>;

#[derive(Debug, Clone)]
pub struct Index {
    pub(crate) tables: imbl::HashMap<NetId, Table>,
    /// Lower-case network name → id, for `NAME.NETWORK`.
    by_name: imbl::HashMap<Arc<str>, NetId>,
    /// Source address → (network, client); one address may exist on two networks only
    /// with overlapping subnets, which the listener tells apart.
    clients: imbl::HashMap<IpAddr, ClientsAt>,
    sandboxes: imbl::HashMap<Arc<str>, Arc<Sandbox>>,
    upstreams: Arc<[SocketAddr]>,
    pub(crate) services: Arc<Services>,
    /// Shared by every snapshot: rotation continues across updates.
    rotation: Arc<AtomicUsize>,
}

impl Default for Index {
    fn default() -> Self {
        Index::new(Vec::new(), Services::default())
    }
}

impl Index {
    pub fn new(upstreams: Vec<SocketAddr>, services: Services) -> Index {
        Index {
            tables: Default::default(),
            by_name: Default::default(),
            clients: Default::default(),
            sandboxes: Default::default(),
            upstreams: upstreams.into(),
            services: Arc::new(services),
            rotation: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn set_upstreams(&mut self, upstreams: Vec<SocketAddr>) {
        self.upstreams = upstreams.into();
    }

    /// Adds a network, or updates its metadata (its names stay).
    pub fn set_network(&mut self, net: Network) {
        let key: Arc<str> = net.name.to_ascii_lowercase().into();
        self.by_name.insert(key, net.id.clone());
        match self.tables.get_mut(&net.id) {
            Some(t) => t.meta = net,
            None => {
                self.tables.insert(
                    net.id.clone(),
                    Table {
                        meta: net,
                        names: Default::default(),
                        ptr: Default::default(),
                    },
                );
            }
        }
    }

    /// Removes a network; sandboxes still attached to it lose those names.
    pub fn remove_network(&mut self, id: &str) {
        if let Some(t) = self.tables.remove(id) {
            let key = t.meta.name.to_ascii_lowercase();
            if self.by_name.get(key.as_str()).map(|i| &**i) == Some(id) {
                self.by_name.remove(key.as_str());
            }
        }
    }

    /// Puts a sandbox in (replacing what it had): its names on each network it is
    /// attached to, and its addresses as clients.
    pub fn upsert_sandbox(&mut self, s: Sandbox) {
        if self.sandboxes.get(&*s.id).map(|old| **old == s) == Some(true) {
            return;
        }
        self.remove_sandbox(&s.id);
        let s = Arc::new(s);
        let ports: Arc<[(u16, Proto)]> = s.ports.clone().into();
        let networks: Arc<[NetId]> = s
            .attachments
            .iter()
            .filter(|a| self.tables.contains_key(&a.network))
            .map(|a| a.network.clone())
            .collect();
        let internal_only = !networks.is_empty()
            && networks
                .iter()
                .all(|n| self.tables.get(n).is_some_and(|t| t.meta.internal));
        let client = Arc::new(Client {
            sandbox: s.id.clone(),
            networks,
            upstreams: if s.upstreams.is_empty() {
                self.upstreams.clone()
            } else {
                s.upstreams.clone().into()
            },
            internal_only,
            links: s
                .links
                .iter()
                .map(|(t, a)| (a.to_ascii_lowercase(), t.to_ascii_lowercase()))
                .collect(),
        });
        for a in &s.attachments {
            let Some(t) = self.tables.get_mut(&a.network) else {
                continue;
            };
            let names = names_of(&s, a);
            // Answers keep the name as it was given; if DNS cannot carry it (Docker allows
            // any length), the first name it holds here that fits. None fits: no record.
            let name: Option<Arc<str>> = if fits(&s.name) {
                Some(s.name.as_str().into())
            } else {
                names.first().map(|n| n.as_str().into())
            };
            for ip in a.v4.map(IpAddr::V4).into_iter().chain(a.v6.map(IpAddr::V6)) {
                let mut list: Vec<(NetId, Arc<Client>)> = self
                    .clients
                    .get(&ip)
                    .map(|l| l.to_vec())
                    .unwrap_or_default();
                list.retain(|(n, _)| n != &a.network);
                list.push((a.network.clone(), client.clone()));
                self.clients.insert(ip, list.into());
                if let (true, Some(name)) = (t.meta.names, &name) {
                    t.ptr.insert(ip, (s.id.clone(), name.clone()));
                }
            }
            let Some(name) = name else {
                continue;
            };
            if !t.meta.names || !s.in_service {
                continue;
            }
            let member = Member {
                sandbox: s.id.clone(),
                name,
                v4: a.v4,
                v6: a.v6,
                ports: ports.clone(),
            };
            for n in names {
                let mut holders: Vec<Member> = t
                    .names
                    .get(n.as_str())
                    .map(|h| h.to_vec())
                    .unwrap_or_default();
                holders.push(member.clone());
                t.names.insert(n.into(), holders.into());
            }
        }
        self.sandboxes.insert(s.id.clone(), s);
    }

    /// Takes a sandbox out: its names, its PTR records and its client entries.
    pub fn remove_sandbox(&mut self, id: &str) {
        let Some(s) = self.sandboxes.remove(id) else {
            return;
        };
        for a in &s.attachments {
            for ip in a.v4.map(IpAddr::V4).into_iter().chain(a.v6.map(IpAddr::V6)) {
                if let Some(list) = self.clients.get(&ip) {
                    let rest: Vec<_> = list
                        .iter()
                        .filter(|(n, c)| !(n == &a.network && &*c.sandbox == id))
                        .cloned()
                        .collect();
                    if rest.is_empty() {
                        self.clients.remove(&ip);
                    } else {
                        self.clients.insert(ip, rest.into());
                    }
                }
                if let Some(t) = self.tables.get_mut(&a.network) {
                    if t.ptr.get(&ip).is_some_and(|(holder, _)| **holder == *id) {
                        t.ptr.remove(&ip);
                    }
                }
            }
            let Some(t) = self.tables.get_mut(&a.network) else {
                continue;
            };
            for n in names_of(&s, a) {
                let Some(h) = t.names.get(n.as_str()) else {
                    continue;
                };
                let rest: Vec<Member> = h.iter().filter(|m| &*m.sandbox != id).cloned().collect();
                if rest.is_empty() {
                    t.names.remove(n.as_str());
                } else {
                    t.names.insert(n.into(), rest.into());
                }
            }
        }
    }

    /// The view of whoever asks.
    pub fn view(&self, asker: Asker<'_>) -> View {
        let (network, source) = match asker {
            Asker::Host => return self.host_view(),
            Asker::Network { network, source } => (network, source),
        };
        let client = self
            .clients
            .get(&source)
            .and_then(|l| l.iter().find(|(n, _)| &**n == network))
            .map(|(_, c)| c);
        match client {
            Some(c) => {
                // The network the question came in on is searched first.
                let mut networks = Vec::with_capacity(c.networks.len());
                networks.extend(c.networks.iter().filter(|n| &***n == network).cloned());
                networks.extend(c.networks.iter().filter(|n| &***n != network).cloned());
                View {
                    networks,
                    upstreams: c.upstreams.clone(),
                    refuse_outside: c.internal_only,
                    host: false,
                    links: c.links.clone(),
                }
            }
            None => match self.tables.get_key_value(network) {
                // An address berth did not hand out (another runtime's, or the gateway
                // itself): the listener's network only.
                Some((id, t)) => View {
                    networks: vec![id.clone()],
                    upstreams: self.upstreams.clone(),
                    refuse_outside: t.meta.internal,
                    host: false,
                    links: Arc::from(vec![]),
                },
                None => View {
                    networks: vec![],
                    upstreams: self.upstreams.clone(),
                    refuse_outside: true,
                    host: false,
                    links: Arc::from(vec![]),
                },
            },
        }
    }

    fn host_view(&self) -> View {
        View {
            networks: vec![],
            upstreams: self.upstreams.clone(),
            refuse_outside: false,
            host: true,
            links: Arc::from(vec![]),
        }
    }

    /// The holders of a lower-case name (no trailing dot) and the network they were found
    /// on: bare names on the view's networks in order, then `NAME.NETWORK`.
    pub fn find<'a>(&'a self, view: &View, name: &str) -> Option<(&'a Network, &'a [Member])> {
        // A link alias names its target, for the linking sandbox only, before anything else.
        let name = view
            .links
            .iter()
            .find(|(alias, _)| alias == name)
            .map_or(name, |(_, target)| target.as_str());
        if !view.host {
            for n in &view.networks {
                if let Some(t) = self.tables.get(n) {
                    if let Some(h) = t.names.get(name) {
                        return Some((&t.meta, h));
                    }
                }
            }
        }
        // Network names may contain dots too: try every split.
        for (i, _) in name.match_indices('.') {
            let (prefix, net) = (&name[..i], &name[i + 1..]);
            let Some(id) = self.by_name.get(net) else {
                continue;
            };
            if !view.host && !view.networks.contains(id) {
                continue;
            }
            if let Some(t) = self.tables.get(id) {
                if let Some(h) = t.names.get(prefix) {
                    return Some((&t.meta, h));
                }
            }
        }
        None
    }

    /// `find` for the fast path: the same search, straight from the listener and source,
    /// without building a view.
    pub(crate) fn lookup<'a>(&'a self, network: &str, source: IpAddr, name: &str) -> Lookup<'a> {
        let client = self
            .clients
            .get(&source)
            .and_then(|l| l.iter().find(|(n, _)| &**n == network))
            .map(|(_, c)| c);
        let name = client
            .and_then(|c| c.links.iter().find(|(alias, _)| alias == name))
            .map_or(name, |(_, target)| target.as_str());
        let in_table = |id: &str, n: &str| self.tables.get(id).and_then(|t| t.names.get(n));
        let visible = |id: &str| match client {
            Some(c) => c.networks.iter().any(|n| &**n == id),
            None => id == network,
        };
        let mut hit = None;
        if visible(network) {
            hit = in_table(network, name);
        }
        if hit.is_none() {
            if let Some(c) = client {
                hit = c
                    .networks
                    .iter()
                    .filter(|n| &***n != network)
                    .find_map(|n| in_table(n, name));
            }
        }
        if hit.is_none() {
            hit = name.match_indices('.').find_map(|(i, _)| {
                let id = self.by_name.get(&name[i + 1..])?;
                if !visible(id) {
                    return None;
                }
                in_table(id, &name[..i])
            });
        }
        if let Some(h) = hit {
            return Lookup::Found(h);
        }
        let refuse = match client {
            Some(c) => c.internal_only || c.upstreams.is_empty(),
            None => self
                .tables
                .get(network)
                .is_none_or(|t| t.meta.internal || self.upstreams.is_empty()),
        };
        if refuse {
            Lookup::Refuse
        } else {
            Lookup::Elsewhere
        }
    }

    /// The holders of an address on the networks in view, in view order: each network
    /// with the name its holder answers by there.
    pub fn reverse<'a>(&'a self, view: &View, ip: IpAddr) -> Vec<(&'a Network, &'a str)> {
        let hit = |t: &'a Table| t.ptr.get(&ip).map(|(_, n)| (&t.meta, &**n));
        if view.host {
            return self.tables.values().filter_map(hit).collect();
        }
        view.networks
            .iter()
            .filter_map(|n| self.tables.get(n))
            .filter_map(hit)
            .collect()
    }

    /// A rotation offset for round-robin order; every query takes the next one.
    pub fn next_rotation(&self) -> usize {
        self.rotation.fetch_add(1, Ordering::Relaxed)
    }

    /// The same upstreams, services and rotation, without networks or sandboxes: where a
    /// rebuild from the daemon's state starts.
    pub fn cleared(&self) -> Index {
        Index {
            tables: Default::default(),
            by_name: Default::default(),
            clients: Default::default(),
            sandboxes: Default::default(),
            upstreams: self.upstreams.clone(),
            services: self.services.clone(),
            rotation: self.rotation.clone(),
        }
    }

    /// Everything answers are made from, as sorted lines: two indexes that describe alike
    /// answer alike (holders of a name compare as a set; rotation spreads their order).
    pub fn describe(&self) -> Vec<String> {
        let mut v = Vec::new();
        for (id, t) in &self.tables {
            v.push(format!("network {id} {:?}", t.meta));
            for (name, holders) in &t.names {
                let mut h: Vec<String> = holders.iter().map(|m| format!("{m:?}")).collect();
                h.sort();
                v.push(format!("name {id} {name} {h:?}"));
            }
            for (ip, holder) in &t.ptr {
                v.push(format!("ptr {id} {ip} {holder:?}"));
            }
        }
        for (name, id) in &self.by_name {
            v.push(format!("by-name {name} {id}"));
        }
        for (ip, list) in &self.clients {
            let mut l: Vec<String> = list.iter().map(|c| format!("{c:?}")).collect();
            l.sort();
            v.push(format!("client {ip} {l:?}"));
        }
        for (id, s) in &self.sandboxes {
            v.push(format!("sandbox {id} {s:?}"));
        }
        v.sort();
        v
    }

    /// Every name a network holds, sorted (tests compare indexes with it).
    pub fn names(&self, network: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .tables
            .get(network)
            .map(|t| t.names.keys().map(|k| k.to_string()).collect())
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// The lower-case names a sandbox holds on one network: its name, its hostname, its short
/// id, and the aliases given on that network; each once, and only those a query can carry.
fn names_of(s: &Sandbox, a: &Attachment) -> Vec<String> {
    let mut v: Vec<String> = Vec::with_capacity(3 + a.aliases.len());
    let short = &s.id[..s.id.len().min(12)];
    for n in [s.name.as_str(), s.hostname.as_str(), short]
        .into_iter()
        .chain(a.aliases.iter().map(String::as_str))
    {
        let n = n.trim_end_matches('.').to_ascii_lowercase();
        if fits(&n) && !v.contains(&n) {
            v.push(n);
        }
    }
    v
}
