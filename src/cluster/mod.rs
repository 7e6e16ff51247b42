//! Cluster mode (`--cluster-store etcd://…`): this daemon as one node of a cluster whose
//! shared state lives in etcd. Membership is a key on the node's lease, kept alive by the
//! daemon; a node whose daemon or host dies is `Down` for every other node once the lease's
//! TTL has run out, with no clock compared anywhere. Node-local state (containers, their
//! endpoints on bridges) stays in the local store.

pub(crate) mod mesh;
mod nodes;
pub(crate) mod overlay;
pub(crate) mod services;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_store::{Compare, Etcd, KeepAlive, LeaseId, Op, Store, StoreError, Txn};
use chrono::Utc;

pub use nodes::{Availability, NodeChange, NodeRecord, NodeView};
pub use overlay::{BlockClaim, EndpointRecord, View};

/// How the daemon joins the cluster.
#[derive(Debug, Clone)]
pub struct Config {
    /// etcd client URLs (`http://HOST:PORT`).
    pub endpoints: Vec<String>,
    pub advertise: IpAddr,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// The membership lease's TTL: how long a lost node stays Ready for the others.
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("--cluster-store {0:?}: use etcd://HOST:PORT[,HOST:PORT…]")]
    BadStore(String),
    #[error("--advertise-addr {addr} is not an address of this host (it has {have}); give one the other nodes can reach this host at")]
    NotOurAddress { addr: IpAddr, have: String },
    #[error("node name {name:?} is taken by a live node ({id} at {addr}); give this one another --node-name, or remove that node first")]
    NameTaken {
        name: String,
        id: String,
        addr: String,
    },
    #[error("registering node {0:?}: the cluster kept changing under us; try again")]
    Contended(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("node id file {path}: {source}")]
    IdFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// `etcd://h1:2379,h2:2379` → the client URLs.
pub fn parse_store(url: &str) -> Result<Vec<String>, ClusterError> {
    let bad = || ClusterError::BadStore(url.to_string());
    let rest = url.strip_prefix("etcd://").ok_or_else(bad)?;
    let eps: Vec<String> = rest
        .split(',')
        .map(str::trim)
        .filter(|h| !h.is_empty())
        .map(|h| {
            let (host, port) = h.rsplit_once(':').ok_or_else(bad)?;
            port.parse::<u16>().map_err(|_| bad())?;
            if host.is_empty() || host.contains('/') {
                return Err(bad());
            }
            Ok(format!("http://{h}"))
        })
        .collect::<Result<_, _>>()?;
    if eps.is_empty() {
        return Err(bad());
    }
    Ok(eps)
}

/// The addresses of this network namespace's interfaces, with the interface's name.
pub(crate) fn interface_addresses() -> Vec<(String, IpAddr)> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return vec![];
    };
    addrs
        .filter_map(|a| {
            let s = a.address?;
            let ip = s
                .as_sockaddr_in()
                .map(|v| IpAddr::V4(v.ip()))
                .or_else(|| s.as_sockaddr_in6().map(|v| IpAddr::V6(v.ip())))?;
            Some((a.interface_name, ip))
        })
        .collect()
}

fn local_addresses() -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = interface_addresses()
        .into_iter()
        .map(|(_, ip)| ip)
        .collect();
    v.sort();
    v.dedup();
    v
}

pub struct Cluster {
    store: Arc<dyn Store>,
    pub id: String,
    pub name: String,
    pub addr: IpAddr,
    ttl: Duration,
    keep: tokio::sync::Mutex<KeepAlive>,
    /// Since when, and why, etcd does not answer (`None`: it does).
    unreachable: std::sync::Mutex<Option<(chrono::DateTime<Utc>, String)>>,
}

impl Cluster {
    /// Checks the configuration, then registers this node. Nothing is written (in etcd or
    /// under `root`) unless every check passed.
    pub async fn join(cfg: &Config, root: &Path) -> Result<Arc<Cluster>, ClusterError> {
        let have = local_addresses();
        if !have.contains(&cfg.advertise) {
            return Err(ClusterError::NotOurAddress {
                addr: cfg.advertise,
                have: have
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        let store: Arc<dyn Store> = Arc::new(crate::metrics::Metered(Arc::new(
            Etcd::connect(&cfg.endpoints, Duration::from_secs(3)).await?,
        )));
        let id_path = root.join("node-id");
        let id = match std::fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_string(),
            _ => nodes::new_node_id(),
        };
        let (lease, _) = register(&*store, cfg, &id).await?;
        std::fs::create_dir_all(root)
            .and_then(|()| std::fs::write(&id_path, &id))
            .map_err(|source| ClusterError::IdFile {
                path: id_path,
                source,
            })?;
        tracing::info!(node = %cfg.name, id, addr = %cfg.advertise, "joined the cluster");
        let keep = KeepAlive::start(store.clone(), lease, cfg.ttl);
        let c = Arc::new(Cluster {
            store,
            id,
            name: cfg.name.clone(),
            addr: cfg.advertise,
            ttl: cfg.ttl,
            keep: tokio::sync::Mutex::new(keep),
            unreachable: Default::default(),
        });
        c.clone().watch_membership(cfg.clone());
        Ok(c)
    }

    /// A lease that expired while etcd was out of reach (or was revoked) is granted anew and
    /// the node registers again: it comes back `Ready` by itself.
    fn watch_membership(self: Arc<Self>, cfg: Config) {
        tokio::spawn(async move {
            let every = (self.ttl / 3).max(Duration::from_millis(100));
            loop {
                tokio::time::sleep(every).await;
                // The renewals tell whether etcd answers: no request of its own for `info`.
                let (alive, trouble) = {
                    let k = self.keep.lock().await;
                    (k.alive(), k.unreachable())
                };
                if alive {
                    self.set_unreachable(trouble.map(|(t, why)| (t.into(), why)));
                    continue;
                }
                // The lease is gone: registering again tells whether etcd answers.
                match register(&*self.store, &cfg, &self.id).await {
                    Ok((lease, _)) => {
                        tracing::info!("membership lease lost; registered again");
                        *self.keep.lock().await =
                            KeepAlive::start(self.store.clone(), lease, self.ttl);
                        self.set_unreachable(None);
                    }
                    Err(e) => {
                        tracing::warn!("registering again after losing the lease: {e}");
                        self.set_unreachable(Some((Utc::now(), e.to_string())));
                    }
                }
            }
        });
    }

    fn set_unreachable(&self, now: Option<(chrono::DateTime<Utc>, String)>) {
        let mut u = self.unreachable.lock().expect("lock");
        match (&*u, &now) {
            (None, Some((_, why))) => tracing::warn!("the cluster store does not answer: {why}"),
            (Some(_), None) => tracing::info!("the cluster store answers again"),
            _ => {}
        }
        // The first failure's time stays while the outage lasts.
        if now.is_none() || u.is_none() {
            *u = now;
        }
    }

    /// Why this node is degraded, for `info`: etcd has not answered since then.
    pub fn degraded(&self) -> Option<String> {
        self.unreachable.lock().expect("lock").as_ref().map(|(since, why)| {
            format!(
                "cluster store unreachable since {}: {why}; this node keeps its containers and data path on its last known state, and operations that need the cluster fail until it answers",
                since.format("%Y-%m-%dT%H:%M:%SZ")
            )
        })
    }

    /// Every node of the cluster, by name.
    pub async fn nodes(&self) -> Result<Vec<NodeView>, StoreError> {
        Ok(self.view().await?.nodes)
    }

    pub async fn node(&self, key: &str) -> Result<NodeView, crate::daemon::Error> {
        let all = self.nodes().await?;
        nodes::find(&all, key)
            .cloned()
            .map_err(crate::daemon::Error::NotFound)
    }

    /// `node update`: applied only to the record at `version` (the revision the caller
    /// read), as docker's `?version=` asks.
    pub async fn update(
        &self,
        key: &str,
        version: Option<i64>,
        change: &NodeChange,
    ) -> Result<(), crate::daemon::Error> {
        let n = self.node(key).await?;
        let expect = version.unwrap_or(n.revision);
        let rec = nodes::apply_change(&n.record, change, Utc::now());
        let k = nodes::node_key(&rec.id);
        let r = self
            .store
            .txn(Txn::when(
                vec![Compare::ModRevision(
                    k.clone(),
                    berth_store::Cmp::Equal,
                    expect,
                )],
                vec![Op::put(k, serde_json::to_vec(&rec).expect("serializes"))],
            ))
            .await?;
        if !r.succeeded {
            return Err(crate::daemon::Error::Conflict(format!(
                "update out of sequence: node {} changed since version {expect}; read it again",
                n.record.name
            )));
        }
        Ok(())
    }

    /// `node rm`: a Ready node only with `force` (its daemon keeps running, outside the
    /// cluster until it registers again); its blocks and endpoint records go too.
    pub async fn remove(&self, key: &str, force: bool) -> Result<(), crate::daemon::Error> {
        let n = self.node(key).await?;
        if n.ready && !force {
            return Err(crate::daemon::Error::Conflict(format!(
                "node {} is not down and can't be removed (use --force to remove it anyway)",
                n.record.name
            )));
        }
        let id = &n.record.id;
        // A Down node's address blocks and endpoint records go with it: a node removed for
        // good must not keep a part of every network's addresses. A Ready one (`--force`)
        // keeps them: its containers still hold those addresses.
        let view = if n.ready {
            View::default()
        } else {
            self.view().await?
        };
        let mut owned: Vec<Op> = view
            .blocks
            .iter()
            .filter(|b| &b.owner == id)
            .map(|b| Op::Delete(overlay::block_key(&b.network, &b.block)))
            .collect();
        owned.extend(
            view.endpoints
                .iter()
                .filter(|(_, e)| &e.node == id)
                .map(|(k, _)| Op::Delete(k.clone())),
        );
        let mut compares = vec![Compare::ModRevision(
            nodes::node_key(id),
            berth_store::Cmp::Equal,
            n.revision,
        )];
        if !n.ready {
            compares.push(Compare::Absent(nodes::alive_key(id)));
        }
        let r = self
            .store
            .txn(Txn::when(
                compares,
                [
                    Op::Delete(nodes::node_key(id)),
                    Op::Delete(nodes::alive_key(id)),
                    Op::Delete(nodes::name_key(&n.record.name)),
                    Op::Delete(nodes::index_key(n.record.index)),
                ]
                .into_iter()
                .chain(owned)
                .collect(),
            ))
            .await?;
        if !r.succeeded {
            return Err(crate::daemon::Error::Conflict(format!(
                "node {} changed meanwhile; try again",
                n.record.name
            )));
        }
        Ok(())
    }
}

/// Registers (or re-registers) node `id` under its name, on a new lease.
async fn register(
    store: &dyn Store,
    cfg: &Config,
    id: &str,
) -> Result<(LeaseId, NodeRecord), ClusterError> {
    for _ in 0..5 {
        let name_holder = store
            .get(&nodes::name_key(&cfg.name))
            .await?
            .map(|kv| String::from_utf8_lossy(&kv.value).into_owned());
        let holder_alive = match &name_holder {
            Some(h) => store
                .get(&nodes::alive_key(h))
                .await?
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
            None => None,
        };
        let holder = nodes::holder(id, name_holder.as_deref(), holder_alive.as_deref());
        if let nodes::Holder::LiveNode { id: other, addr } = &holder {
            return Err(ClusterError::NameTaken {
                name: cfg.name.clone(),
                id: other.clone(),
                addr: addr.clone(),
            });
        }
        // A restart keeps what `node update` set; the daemon's labels are added on top.
        let old: Option<NodeRecord> = store
            .get(&nodes::node_key(id))
            .await?
            .and_then(|kv| serde_json::from_slice(&kv.value).ok());
        // The node's index: its own again after a restart, else the smallest free one.
        let (indexes, _) = store.list(nodes::INDEXES).await?;
        let holders: BTreeMap<u32, String> = indexes
            .iter()
            .filter_map(|kv| {
                let n = kv.key.strip_prefix(nodes::INDEXES)?.parse().ok()?;
                Some((n, String::from_utf8_lossy(&kv.value).into_owned()))
            })
            .collect();
        let own = old
            .as_ref()
            .map(|o| o.index)
            .filter(|i| holders.get(i).map(String::as_str) == Some(id));
        let (index, claim) = match own {
            Some(i) => (i, false),
            None => (
                nodes::free_index(&holders.keys().copied().collect())
                    .ok_or_else(|| ClusterError::Contended(cfg.name.clone()))?,
                true,
            ),
        };
        let old_index = match &holder {
            nodes::Holder::DownNode(other) => {
                holders.iter().find(|(_, h)| *h == other).map(|(i, _)| *i)
            }
            _ => None,
        };
        let now = Utc::now();
        let mut labels = old.as_ref().map(|o| o.labels.clone()).unwrap_or_default();
        labels.extend(cfg.labels.clone());
        let rec = NodeRecord {
            id: id.to_string(),
            name: cfg.name.clone(),
            addr: cfg.advertise,
            labels,
            availability: old.as_ref().map(|o| o.availability).unwrap_or_default(),
            index,
            engine_version: env!("CARGO_PKG_VERSION").into(),
            created: old.as_ref().map_or(now, |o| o.created),
            updated: now,
        };
        let lease = store.grant(cfg.ttl).await?;
        let txn =
            nodes::register_txn(&rec, &holder, lease, claim, old_index).expect("not a live holder");
        if store.txn(txn).await?.succeeded {
            return Ok((lease, rec));
        }
        let _ = store.revoke(lease).await;
    }
    Err(ClusterError::Contended(cfg.name.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_store_urls() {
        assert_eq!(
            parse_store("etcd://10.0.0.1:2379").unwrap(),
            ["http://10.0.0.1:2379"]
        );
        assert_eq!(
            parse_store("etcd://a:2379, b:2379,c:22379").unwrap(),
            ["http://a:2379", "http://b:2379", "http://c:22379"]
        );
        for bad in [
            "http://a:2379",
            "etcd://",
            "etcd://a",
            "etcd://a:notaport",
            "etcd://:2379",
            "etcd://a:2379/x",
        ] {
            let e = parse_store(bad).unwrap_err().to_string();
            assert!(e.contains("use etcd://HOST:PORT"), "{bad}: {e}");
        }
    }
}
