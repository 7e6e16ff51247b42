//! The daemon: owns the store and the kernel state of its network namespace, and carries
//! out every operation as validate → commit to the store → apply to the kernel, rolling the
//! kernel and the records back when a step fails.

mod cleanup;
mod containers;
mod discovery;
mod drivers;
pub mod error;
pub mod events;
mod feed;
pub(crate) mod keys;
mod migrate;
mod networks;
mod overlay;
mod ports;
mod reconcile;
pub mod services;
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
use berth_store::{Revision, Store};
use keys::Writes;

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
    /// Cluster mode: the etcd endpoints and this node's identity.
    pub cluster: Option<crate::cluster::Config>,
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
    /// The address blocks this node owns, per overlay network (cluster mode).
    pub(crate) blocks: BTreeMap<String, Vec<ipnet::IpNet>>,
}

pub struct Daemon {
    pub opts: Options,
    store: Arc<dyn Store>,
    pub(crate) state: Mutex<Inner>,
    host: Netlink,
    nft: berth_firewall::Nft,
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
    /// The public event stream (also what waiters for an exit follow) and the catalog's
    /// change index.
    pub journal: Arc<events::Journal>,
    /// The host resolv.conf's modification time when its resolvers were last read.
    resolv_mtime: std::sync::Mutex<Option<std::time::SystemTime>>,
    /// Orders the operations on one container (start, connect, disconnect, rm): the state
    /// lock is not held across kernel work, so two of them could otherwise interleave.
    op_locks: std::sync::Mutex<std::collections::HashMap<String, Arc<Mutex<()>>>>,
    /// The store's changes, applied to the state cache and the controllers.
    pub(crate) feed: Arc<feed::Feed>,
    /// This node's membership, in cluster mode.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Other nodes' containers in this node's resolver.
    remote_names: overlay::RemoteNames,
    /// Other nodes' overlay endpoints for the catalog: (record, node name, network name).
    remote_catalog: std::sync::Mutex<Vec<(crate::cluster::EndpointRecord, String, String)>>,
    /// Other Ready nodes as the Consul API shows them: (id, name, address).
    remote_nodes: std::sync::Mutex<Vec<(String, String, String)>>,
    /// Wakes the overlay round (`overlay.rs`).
    overlay_wake: Arc<tokio::sync::Notify>,
    /// Orders making an overlay bridge for a join and removing it after the last leave.
    overlay_lock: Mutex<()>,
    /// The services' load balancing as last programmed (`services/mesh.rs`).
    lb_state: Mutex<services::LbState>,
    /// Task containers whose task left this node, and since when (`services/agent.rs`).
    draining: std::sync::Mutex<std::collections::HashMap<String, std::time::Instant>>,
}

/// The v2 store under `root`; a v1 database found there is moved into it first.
async fn open_store(root: &std::path::Path) -> anyhow::Result<Arc<dyn Store>> {
    let store = berth_store::Redb::open(&root.join("state.db")).await?;
    if let Some(w) = migrate::read_v1(root)? {
        let n = w.ops.len();
        let r = store.txn(w.into_txn()).await?;
        anyhow::ensure!(
            r.succeeded,
            "moving the old state into {}: records of both were found; move one of them away",
            root.join("state.db").display()
        );
        migrate::retire_v1(root)?;
        tracing::info!(
            records = n,
            "moved the state of an older berth into the v2 store"
        );
    }
    Ok(Arc::new(store))
}

impl Daemon {
    pub async fn open(opts: Options) -> anyhow::Result<Arc<Daemon>> {
        // First, before anything is created here: a bad cluster configuration changes
        // nothing.
        let cluster = match &opts.cluster {
            Some(cfg) => Some(crate::cluster::Cluster::join(cfg, &opts.root).await?),
            None => None,
        };
        for d in [
            &opts.root,
            &opts.run,
            &opts.run.join("netns"),
            &opts.run.join("containers"),
        ] {
            std::fs::create_dir_all(d)?;
        }
        let store = open_store(&opts.root).await?;
        let host = Netlink::current()?;
        let reaper = Netlink::current_on_own_thread()?;
        let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
        let dns = crate::dns::Resolver::start(
            berth_dns::Index::new(vec![], berth_dns::Services::parse(&services)),
            crate::dns::Config {
                upstream_timeout: opts.dns_upstream_timeout,
                host_addr: opts.dns_host_address,
            },
        )?;
        let journal = Arc::new(events::Journal::new(
            cluster.as_ref().map(|c| c.name.clone()),
        ));
        let remote_names = overlay::RemoteNames::default();
        let overlay_wake = Arc::new(tokio::sync::Notify::new());
        let feed = Arc::new(feed::Feed::new(vec![
            Arc::new(discovery::DnsController {
                dns: dns.clone(),
                remote: remote_names.clone(),
            }),
            Arc::new(overlay::OverlayKick {
                wake: overlay_wake.clone(),
            }),
            Arc::new(events::CatalogController {
                index: journal.index_sender(),
            }),
            Arc::new(events::EventsController {
                journal: journal.clone(),
            }),
        ]));
        let d = Arc::new(Daemon {
            opts,
            store,
            ns_links: Default::default(),
            drivers: Arc::new(drivers::Drivers::new(host.clone(), reaper)),
            state: Mutex::new(Inner::default()),
            host,
            nft: berth_firewall::Nft::default(),
            pending_detach: Default::default(),
            started: Utc::now(),
            dns,
            journal,
            resolv_mtime: Default::default(),
            op_locks: Default::default(),
            feed,
            cluster,
            remote_names,
            remote_catalog: Default::default(),
            remote_nodes: Default::default(),
            overlay_wake,
            overlay_lock: Mutex::new(()),
            lb_state: Mutex::new(services::LbState::default()),
            draining: Default::default(),
        });
        d.load().await?;
        d.reconcile().await?;
        d.dns_refresh_upstreams();
        {
            let st = d.state.lock().await;
            for n in st.networks.values() {
                d.dns_listen(n);
            }
        }
        // Start-up reconciliation of the controllers: a resync from the store, then the
        // watch from there on.
        d.feed.start(d.store.clone()).await?;
        d.start_overlay();
        d.restart_on_boot().await;
        d.start_cleanup();
        Ok(d)
    }

    /// The cache from the store: records, then each address key given back to its pool.
    /// A pool's walk resumes after its most recently claimed address (the cursor is not
    /// written on every claim).
    async fn load(&self) -> anyhow::Result<()> {
        let mut st = self.state.try_lock().expect("no contention during load");
        let (records, _) = self.store.list(keys::ROOT).await?;
        let mut addresses = Vec::new();
        for kv in records {
            if kv.key.starts_with(keys::NETWORKS) {
                let n: Network = serde_json::from_slice(&kv.value)?;
                st.networks.insert(n.id.clone(), n);
            } else if kv.key.starts_with(keys::CONTAINERS) {
                let c: Container = serde_json::from_slice(&kv.value)?;
                st.containers.insert(c.id.clone(), c);
            } else if kv.key.starts_with(keys::IPAM) {
                addresses.push(kv);
            }
        }
        addresses.sort_by_key(|kv| kv.create_revision);
        // Keys and records are written in one transaction, so each key's owner holds its
        // address; a key that breaks this (a store edited by hand) would keep the address
        // from everybody, so it is deleted.
        let mut orphans = Writes::default();
        for kv in addresses {
            let parsed = keys::parse_address(&kv.key);
            let owner = std::str::from_utf8(&kv.value).unwrap_or_default();
            let held = parsed.is_some_and(|(net, ip)| {
                st.containers.get(owner).is_some_and(|c| {
                    c.endpoints
                        .iter()
                        .any(|e| e.network_id == net && (e.ipv4 == Some(ip) || e.ipv6 == Some(ip)))
                })
            });
            let (Some((net, ip)), true) = (parsed, held) else {
                tracing::warn!(key = kv.key, owner, "deleting an address key nobody holds");
                orphans.ops.push(berth_store::Op::Delete(kv.key.clone()));
                continue;
            };
            let Some(n) = st.networks.get_mut(net) else {
                orphans.ops.push(berth_store::Op::Delete(kv.key.clone()));
                continue;
            };
            if let Some(p) = n.pools.iter_mut().find(|p| p.contains(ip)) {
                match p.allocate_static(ip, owner) {
                    Ok(()) => p.resume_after(ip),
                    Err(err) => tracing::warn!(%ip, owner, "restoring address: {err}"),
                }
            }
        }
        drop(st);
        if !orphans.ops.is_empty() {
            self.commit(orphans).await?;
        }
        Ok(())
    }

    /// Commits one operation's writes as one transaction, and returns once the controllers
    /// have applied it (read-your-writes). A compare that fails (an address claimed
    /// meanwhile) changes nothing and is a conflict.
    pub(crate) async fn commit(&self, w: Writes) -> Result<Revision> {
        self.commit_in_background(w)
            .await
            .map_err(|e| Error::Internal(format!("store commit task: {e}")))?
    }

    /// Starts a commit on a blocking thread (redb syncs the file before it answers), so the
    /// caller can do the kernel work meanwhile. The caller must await the result before it
    /// answers, and undo its kernel work if the commit failed.
    pub(crate) fn commit_in_background(
        &self,
        w: Writes,
    ) -> tokio::task::JoinHandle<Result<Revision>> {
        let store = self.store.clone();
        let feed = self.feed.clone();
        let rt = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let claimed: Vec<String> = w
                .compares
                .iter()
                .filter_map(|c| match c {
                    berth_store::Compare::Absent(k) => Some(k.clone()),
                    _ => None,
                })
                .collect();
            let r = rt.block_on(store.txn(w.into_txn()))?;
            if r.succeeded {
                rt.block_on(feed.settle(r.revision));
                Ok(r.revision)
            } else {
                Err(Error::Conflict(format!(
                    "the change was refused: one of {} is held already; try again",
                    claimed.join(", ")
                )))
            }
        })
    }

    /// Held for the whole of an operation on container `id`; taken before the state lock,
    /// never while holding it.
    pub(crate) async fn op_lock(&self, id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut locks = self.op_locks.lock().expect("lock");
            // Entries of containers nobody is operating on go, so the map stays small.
            locks.retain(|_, m| Arc::strong_count(m) > 1);
            locks.entry(id.to_string()).or_default().clone()
        };
        m.lock_owned().await
    }

    /// The event stream from now on (for an exit: subscribe before starting).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<events::Message>> {
        self.journal.subscribe(None).1
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
