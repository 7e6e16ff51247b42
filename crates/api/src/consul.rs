//! The subset of Consul's HTTP API that discovery tools read (Prometheus' `consul_sd_configs`,
//! consul-template, py-consul), and how berth's containers become Consul services.
//!
//! The model is Registrator's (gliderlabs/registrator, `bridge.newService`): every
//! *published* port of a running container is one service instance at the host's address
//! and the host port. Its name is `SERVICE_<port>_NAME`, else `SERVICE_NAME`, else the
//! container's name (berth runs host programs, not images, so the container's name stands
//! in for Registrator's image name); a container with several published ports names each
//! `NAME-PORT` unless a port has a name of its own. Tags come from `SERVICE_TAGS` /
//! `SERVICE_<port>_TAGS` (comma-separated) and `udp` for UDP ports; other `SERVICE_<KEY>`
//! values become the instance's `Meta`. `SERVICE_IGNORE` (or `SERVICE_<port>_IGNORE`)
//! leaves it out. Labels and environment are both read, labels winning, as Registrator does.
//! The ID is `NODE:CONTAINER:PORT[:udp]`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// What the mapping needs to know of one container.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub container_name: String,
    /// The node it runs on (Consul's node name).
    pub node: String,
    /// The address its published ports are reached at when bound to every address.
    pub node_addr: String,
    pub labels: BTreeMap<String, String>,
    /// `KEY=VALUE` pairs.
    pub env: Vec<String>,
    /// `(container port, "tcp"|"udp", host address, host port)`.
    pub published: Vec<(u16, String, String, u16)>,
    /// docker's health status (`starting`, `healthy`, `unhealthy`), none without a check.
    pub health: Option<String>,
}

/// One service instance, as the catalog and health endpoints show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub name: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub node: String,
    pub node_addr: String,
    /// Consul's check status: `passing`, `warning` (health check still starting) or
    /// `critical`.
    pub status: &'static str,
}

fn metadata(s: &Source) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    for kv in &s.env {
        if let Some((k, v)) = kv.split_once('=') {
            if let Some(key) = k.strip_prefix("SERVICE_") {
                m.insert(key.to_ascii_lowercase(), v.to_string());
            }
        }
    }
    for (k, v) in &s.labels {
        if let Some(key) = k.strip_prefix("SERVICE_") {
            m.insert(key.to_ascii_lowercase(), v.clone());
        }
    }
    m
}

fn tags(csv: Option<&String>) -> Vec<String> {
    csv.map(|t| {
        t.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(String::from)
            .collect()
    })
    .unwrap_or_default()
}

/// The service instances of one container.
pub fn instances(s: &Source) -> Vec<Instance> {
    let meta = metadata(s);
    if meta.contains_key("ignore") {
        return vec![];
    }
    let status = match s.health.as_deref() {
        None | Some("healthy") => "passing",
        Some("starting") => "warning",
        Some(_) => "critical",
    };
    let group = s.published.len() > 1;
    let mut out = Vec::new();
    for (port, proto, host_ip, host_port) in &s.published {
        let p = port.to_string();
        let own = |k: &str| meta.get(&format!("{p}_{k}"));
        if own("ignore").is_some() {
            continue;
        }
        let mut name = own("name")
            .or(meta.get("name"))
            .cloned()
            .unwrap_or_else(|| s.container_name.clone());
        if group && own("name").is_none() {
            name = format!("{name}-{p}");
        }
        let mut t = tags(own("tags").or(meta.get("tags")));
        let mut id = own("id")
            .or(meta.get("id"))
            .cloned()
            .unwrap_or_else(|| format!("{}:{}:{p}", s.node, s.container_name));
        if proto == "udp" {
            t.push("udp".into());
            id.push_str(":udp");
        }
        let attrs: BTreeMap<String, String> = meta
            .iter()
            .filter(|(k, _)| {
                !["name", "tags", "id", "ignore"].contains(&k.as_str())
                    && !k.chars().next().is_some_and(|c| c.is_ascii_digit())
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let address = if host_ip.is_empty() || host_ip == "0.0.0.0" || host_ip == "::" {
            s.node_addr.clone()
        } else {
            host_ip.clone()
        };
        out.push(Instance {
            id,
            name,
            tags: t,
            address,
            port: *host_port,
            meta: attrs,
            node: s.node.clone(),
            node_addr: s.node_addr.clone(),
            status,
        });
    }
    out
}

/// A node as `/v1/catalog/nodes` and the `Node` of health entries show it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// An entry of `/v1/catalog/service/NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CatalogService {
    #[serde(rename = "ID")]
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub node_meta: BTreeMap<String, String>,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub service_address: String,
    pub service_port: u16,
    pub service_meta: BTreeMap<String, String>,
    pub service_enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

/// The `Service` of a health entry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct AgentService {
    #[serde(rename = "ID")]
    pub id: String,
    pub service: String,
    pub tags: Vec<String>,
    pub address: String,
    pub port: u16,
    pub meta: BTreeMap<String, String>,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Check {
    pub node: String,
    #[serde(rename = "CheckID")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub output: String,
    #[serde(rename = "ServiceID")]
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// An entry of `/v1/health/service/NAME`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ServiceEntry {
    pub node: Node,
    pub service: AgentService,
    pub checks: Vec<Check>,
}

/// Consul's node id is a UUID: made from berth's node id (hex) or name, stable.
pub fn node_uuid(id: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in id.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    let x = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &x[0..8],
        &x[8..12],
        &x[12..16],
        &x[16..20],
        &x[20..32]
    )
}

pub fn node_of(name: &str, id: &str, addr: &str, dc: &str, index: u64) -> Node {
    Node {
        id: node_uuid(id),
        node: name.into(),
        address: addr.into(),
        datacenter: dc.into(),
        tagged_addresses: [
            ("lan".to_string(), addr.to_string()),
            ("wan".to_string(), addr.to_string()),
        ]
        .into(),
        meta: BTreeMap::new(),
        create_index: index,
        modify_index: index,
    }
}

impl Instance {
    pub fn catalog(&self, node: &Node) -> CatalogService {
        CatalogService {
            id: node.id.clone(),
            node: node.node.clone(),
            address: node.address.clone(),
            datacenter: node.datacenter.clone(),
            tagged_addresses: node.tagged_addresses.clone(),
            node_meta: node.meta.clone(),
            service_id: self.id.clone(),
            service_name: self.name.clone(),
            service_tags: self.tags.clone(),
            service_address: self.address.clone(),
            service_port: self.port,
            service_meta: self.meta.clone(),
            service_enable_tag_override: false,
            create_index: node.create_index,
            modify_index: node.modify_index,
        }
    }

    pub fn health(&self, node: &Node) -> ServiceEntry {
        let check = |id: &str, name: &str, status: &str, svc: bool| Check {
            node: node.node.clone(),
            check_id: id.into(),
            name: name.into(),
            status: status.into(),
            output: String::new(),
            service_id: if svc { self.id.clone() } else { String::new() },
            service_name: if svc {
                self.name.clone()
            } else {
                String::new()
            },
            service_tags: if svc { self.tags.clone() } else { vec![] },
            create_index: node.create_index,
            modify_index: node.modify_index,
        };
        ServiceEntry {
            node: node.clone(),
            service: AgentService {
                id: self.id.clone(),
                service: self.name.clone(),
                tags: self.tags.clone(),
                address: self.address.clone(),
                port: self.port,
                meta: self.meta.clone(),
                enable_tag_override: false,
                create_index: node.create_index,
                modify_index: node.modify_index,
            },
            checks: vec![
                check("serfHealth", "Serf Health Status", "passing", false),
                check(
                    &format!("service:{}", self.id),
                    &format!("Service '{}' check", self.name),
                    self.status,
                    true,
                ),
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(published: &[(u16, &str, &str, u16)]) -> Source {
        Source {
            container_name: "web".into(),
            node: "n1".into(),
            node_addr: "10.99.0.11".into(),
            published: published
                .iter()
                .map(|(p, t, ip, hp)| (*p, (*t).into(), (*ip).into(), *hp))
                .collect(),
            ..Source::default()
        }
    }

    #[test]
    fn one_port_is_the_name_several_are_name_port() {
        let one = instances(&src(&[(80, "tcp", "0.0.0.0", 8080)]));
        assert_eq!(one.len(), 1);
        assert_eq!(one[0].name, "web");
        assert_eq!(one[0].id, "n1:web:80");
        assert_eq!(one[0].address, "10.99.0.11");
        assert_eq!(one[0].port, 8080);
        assert_eq!(one[0].status, "passing");
        let two = instances(&src(&[
            (80, "tcp", "127.0.0.1", 8080),
            (53, "udp", "0.0.0.0", 5353),
        ]));
        assert_eq!(two[0].name, "web-80");
        assert_eq!(two[0].address, "127.0.0.1");
        assert_eq!(two[1].name, "web-53");
        assert_eq!(two[1].id, "n1:web:53:udp");
        assert_eq!(two[1].tags, ["udp"]);
    }

    #[test]
    fn registrator_labels_and_env() {
        let mut s = src(&[(80, "tcp", "0.0.0.0", 8080), (9100, "tcp", "0.0.0.0", 9100)]);
        s.env = vec![
            "SERVICE_NAME=shop".into(),
            "SERVICE_TAGS=a, b".into(),
            "SERVICE_9100_NAME=shop-metrics".into(),
            "SERVICE_REGION=eu".into(),
            "PATH=/bin".into(),
        ];
        s.labels.insert("SERVICE_TAGS".into(), "lbl".into());
        s.health = Some("unhealthy".into());
        let v = instances(&s);
        assert_eq!(v[0].name, "shop-80");
        assert_eq!(v[0].tags, ["lbl"], "labels win over env");
        assert_eq!(v[1].name, "shop-metrics");
        assert_eq!(v[0].meta, [("region".to_string(), "eu".to_string())].into());
        assert_eq!(v[0].status, "critical");
        s.labels.insert("SERVICE_80_IGNORE".into(), "1".into());
        assert_eq!(instances(&s).len(), 1);
        s.labels.insert("SERVICE_IGNORE".into(), "1".into());
        assert!(instances(&s).is_empty());
    }

    #[test]
    fn health_entries_in_consuls_shape() {
        let i = &instances(&src(&[(80, "tcp", "0.0.0.0", 8080)]))[0];
        let n = node_of("n1", "abc", "10.99.0.11", "dc1", 7);
        let v = serde_json::to_value(i.health(&n)).unwrap();
        assert_eq!(v["Service"]["Service"], "web");
        assert_eq!(v["Service"]["Port"], 8080);
        assert_eq!(v["Node"]["Node"], "n1");
        assert_eq!(v["Checks"][1]["ServiceID"], "n1:web:80");
        assert_eq!(v["Checks"][1]["Status"], "passing");
        let c = serde_json::to_value(i.catalog(&n)).unwrap();
        assert_eq!(c["ServiceAddress"], "10.99.0.11");
        assert_eq!(c["ServicePort"], 8080);
        assert_eq!(node_uuid("abc").len(), 36);
        assert_ne!(node_uuid("abc"), node_uuid("abd"));
    }
}
