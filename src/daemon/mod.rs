//! The daemon: owns the store and the kernel state of its network namespace, and carries
//! out every operation as validate → commit to the store → apply to the kernel, rolling the
//! kernel and the records back when a step fails.

mod cleanup;
mod containers;
mod discovery;
mod drivers;
pub mod error;
pub mod events;
mod networks;
mod ports;
mod reconcile;
mod supervise;
pub use ports::{ports_map, ProxyMode};

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use tokio::sync::{broadcast, Mutex};

pub use containers::{ContainerCreate, ExecRequest, Stdio};
pub use error::{Error, Result};
pub use networks::{IpamConfigReq, NetworkCreate};

use crate::model::{Container, Network};
use crate::netlink::Netlink;
use crate::store::{Op, RedbStore, Store};

#[derive(Debug, Clone)]
pub struct Options {
    pub root: PathBuf,
    pub run: PathBuf,
    pub socket: PathBuf,
    /// Where the host's resolver configuration is read from (containers get a filtered copy).
    pub resolv_conf: PathBuf,
    pub userland_proxy: ProxyMode,
    /// Ephemeral host ports; `None`: the kernel's `ip_local_port_range`.
    pub port_range: Option<berth_ports::PortRange>,
    /// The embedded resolver's listener for the host itself.
    pub dns_host_address: Option<std::net::SocketAddr>,
    pub dns_upstream_timeout: std::time::Duration,
    /// Log size caps of containers that set none (`--log-opt` of the daemon).
    pub log_defaults: crate::logs::LogOptions,
}

#[derive(Default)]
pub struct Inner {
    pub networks: BTreeMap<String, Network>,
    pub containers: BTreeMap<String, Container>,
    /// Every published host port, held by its socket.
    pub(crate) ports: std::collections::HashMap<ports::PortKey, ports::Holder>,
    /// Where the next ephemeral port search starts (no immediate reuse, as Docker).
    pub(crate) port_cursor: u16,
    /// The DNAT elements in the kernel, per container (removal needs their exact values).
    pub(crate) installed: std::collections::HashMap<String, Vec<berth_firewall::PortMapping>>,
    /// Elements the kernel still has although their container's ports were released.
    pub(crate) stale: cleanup::Stale,
}

/// Something that changed, for waiters (and, later, the event stream).
#[derive(Debug, Clone)]
pub enum Event {
    Exited { id: String, code: i64 },
    Removed { id: String },
}

pub struct Daemon {
    pub opts: Options,
    store: Arc<dyn Store>,
    pub(crate) state: Mutex<Inner>,
    host: Netlink,
    nft: berth_firewall::Nft,
    events: broadcast::Sender<Event>,
    /// Veth deletions still running in the background, per container: the sandbox end
    /// (`ethN`) exists until they finish, so a new attach to that container waits for them.
    pending_detach:
        std::sync::Mutex<std::collections::HashMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    /// A netlink socket inside each running sandbox's namespace, opened when the namespace
    /// is made: a later `network connect` needs no thread to enter the namespace.
    ns_links: std::sync::Mutex<std::collections::HashMap<String, Netlink>>,
    /// What each network driver does in the kernel (shared with background detaches).
    drivers: Arc<drivers::Drivers>,
    pub started: DateTime<Utc>,
    /// The embedded resolver; its index follows every attach and detach.
    pub dns: Arc<crate::dns::Resolver>,
    /// The public event stream and the catalog's change index.
    pub journal: events::Journal,
    /// The host resolv.conf's modification time when its resolvers were last read.
    resolv_mtime: std::sync::Mutex<Option<std::time::SystemTime>>,
}

impl Daemon {
    pub async fn open(opts: Options) -> anyhow::Result<Arc<Daemon>> {
        for d in [
            &opts.root,
            &opts.run,
            &opts.run.join("netns"),
            &opts.run.join("containers"),
        ] {
            std::fs::create_dir_all(d)?;
        }
        let store = RedbStore::open(&opts.root.join("berth.db"))?;
        let host = Netlink::current()?;
        let reaper = Netlink::current_on_own_thread()?;
        let (events, _) = broadcast::channel(4096);
        let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
        let dns = crate::dns::Resolver::start(
            berth_dns::Index::new(vec![], berth_dns::Services::parse(&services)),
            crate::dns::Config {
                upstream_timeout: opts.dns_upstream_timeout,
                host_addr: opts.dns_host_address,
            },
        )?;
        let d = Arc::new(Daemon {
            opts,
            store: Arc::new(store),
            ns_links: Default::default(),
            drivers: Arc::new(drivers::Drivers::new(host.clone(), reaper)),
            state: Mutex::new(Inner::default()),
            host,
            nft: berth_firewall::Nft::default(),
            events,
            pending_detach: Default::default(),
            started: Utc::now(),
            dns,
            journal: Default::default(),
            resolv_mtime: Default::default(),
        });
        d.load()?;
        d.reconcile().await?;
        d.dns_refresh_upstreams();
        {
            let st = d.state.lock().await;
            d.dns_rebuild(&st);
        }
        d.restart_on_boot().await;
        d.start_cleanup();
        Ok(d)
    }

    fn load(&self) -> anyhow::Result<()> {
        let mut st = self.state.try_lock().expect("no contention during load");
        for (_, v) in self.store.list("networks/")? {
            let n: Network = serde_json::from_slice(&v)?;
            st.networks.insert(n.id.clone(), n);
        }
        for (_, v) in self.store.list("containers/")? {
            let c: Container = serde_json::from_slice(&v)?;
            st.containers.insert(c.id.clone(), c);
        }
        let Inner {
            networks,
            containers,
            ..
        } = &mut *st;
        for c in containers.values() {
            for e in &c.endpoints {
                let Some(n) = networks.get_mut(&e.network_id) else {
                    continue;
                };
                for ip in e.ipv4.iter().chain(e.ipv6.iter()) {
                    if let Some(p) = n.pools.iter_mut().find(|p| p.contains(*ip)) {
                        if let Err(err) = p.allocate_static(*ip, &c.id) {
                            tracing::warn!(container = %c.name, %ip, "restoring address: {err}");
                        }
                    }
                }
            }
        }
        Ok(())
    }

    pub(crate) fn commit(&self, ops: Vec<Op>) -> Result<()> {
        Ok(self.store.commit(ops)?)
    }

    /// Starts a commit on a blocking thread, so the caller can do the kernel work while the
    /// store syncs to disk. The caller must await the result before it answers, and undo
    /// its kernel work if the commit failed.
    pub(crate) fn commit_in_background(
        &self,
        ops: Vec<Op>,
    ) -> tokio::task::JoinHandle<std::result::Result<(), crate::store::StoreError>> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || store.commit(ops))
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    pub(crate) fn container_dir(&self, id: &str) -> PathBuf {
        self.opts.run.join("containers").join(id)
    }

    pub(crate) fn netns_path(&self, id: &str) -> PathBuf {
        self.opts.run.join("netns").join(id)
    }

    pub fn host_resolv(&self) -> String {
        std::fs::read_to_string(&self.opts.resolv_conf).unwrap_or_default()
    }
}

/// A network's record holds its pools without their allocations: every address is
/// recorded by the endpoint that holds it, so committing an attach costs the same with 1 or
/// 10 000 containers, and `load` rebuilds the pools from the endpoints.
pub(crate) fn put_network(n: &Network) -> Op {
    Op::Put(
        format!("networks/{}", n.id),
        serde_json::to_vec(&without_allocations(n)).expect("serializable"),
    )
}

/// A copy of a network whose pools carry no allocations: what is stored, and a cheap
/// read-only view (copying the allocations would cost O(containers)).
pub(crate) fn without_allocations(n: &Network) -> Network {
    Network {
        id: n.id.clone(),
        name: n.name.clone(),
        driver: n.driver,
        created: n.created,
        builtin: n.builtin,
        internal: n.internal,
        attachable: n.attachable,
        ipv6: n.ipv6,
        labels: n.labels.clone(),
        options: n.options.clone(),
        bridge: n.bridge.clone(),
        mtu: n.mtu,
        icc: n.icc,
        masquerade: n.masquerade,
        pools: n.pools.iter().map(|p| p.persistable()).collect(),
        user_subnets: n.user_subnets,
    }
}

pub(crate) fn put_container(c: &Container) -> Op {
    Op::Put(
        format!("containers/{}", c.id),
        serde_json::to_vec(c).expect("serializable"),
    )
}

/// Docker's lookup order: full id, exact name, then a unique id prefix.
pub(crate) fn resolve<'a, T>(
    items: &'a BTreeMap<String, T>,
    key: &str,
    name_of: impl Fn(&T) -> &str,
) -> std::result::Result<&'a str, Option<usize>> {
    if let Some((id, _)) = items.get_key_value(key) {
        return Ok(id);
    }
    if let Some((id, _)) = items.iter().find(|(_, v)| name_of(v) == key) {
        return Ok(id);
    }
    let matches: Vec<&String> = items.keys().filter(|id| id.starts_with(key)).collect();
    match matches.len() {
        1 if !key.is_empty() => Ok(matches[0]),
        0 => Err(None),
        n => Err(Some(n)),
    }
}

impl Inner {
    pub fn network_id(&self, key: &str) -> Result<String> {
        resolve(&self.networks, key, |n| &n.name)
            .map(str::to_string)
            .map_err(|e| match e {
                Some(n) if n > 1 => Error::InvalidParameter(format!(
                    "network {key} is ambiguous ({n} matches found based on ID prefix)"
                )),
                _ => Error::NotFound(format!("network {key} not found")),
            })
    }

    pub fn container_id(&self, key: &str) -> Result<String> {
        let key = key.strip_prefix('/').unwrap_or(key);
        resolve(&self.containers, key, |c| &c.name)
            .map(str::to_string)
            .map_err(|e| match e {
                Some(n) if n > 1 => Error::InvalidParameter(format!(
                    "multiple IDs found with provided prefix: {key}"
                )),
                _ => Error::NotFound(format!("No such container: {key}")),
            })
    }

    pub fn network_by_name(&self, name: &str) -> Option<&Network> {
        self.networks.values().find(|n| n.name == name)
    }

    /// Names of the running containers attached to a network.
    pub fn active_endpoints(&self, net_id: &str) -> Vec<String> {
        self.containers
            .values()
            .filter(|c| c.endpoints.iter().any(|e| e.network_id == net_id))
            .map(|c| c.name.clone())
            .collect()
    }
}
