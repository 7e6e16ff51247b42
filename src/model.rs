//! berth's objects (Docker's Container Network Model): networks, containers (sandboxes) and
//! their endpoints. These are what the store persists; the kernel state is derived from them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use berth_ipam::Pool;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Driver {
    Bridge,
    Host,
    /// Docker calls the driver of the `none` network `null`.
    Null,
    /// Cluster scope: one subnet across every node, on the routed VXLAN mesh.
    Overlay,
}

impl Driver {
    pub fn as_str(self) -> &'static str {
        match self {
            Driver::Bridge => "bridge",
            Driver::Host => "host",
            Driver::Null => "null",
            Driver::Overlay => "overlay",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Network {
    pub id: String,
    pub name: String,
    pub driver: Driver,
    pub created: DateTime<Utc>,
    /// Predefined networks (`bridge`, `host`, `none`) cannot be created or removed by users.
    pub builtin: bool,
    pub internal: bool,
    pub attachable: bool,
    pub ipv6: bool,
    pub labels: BTreeMap<String, String>,
    pub options: BTreeMap<String, String>,
    /// The Linux bridge carrying this network (bridge driver only).
    pub bridge: Option<String>,
    pub mtu: Option<u32>,
    pub icc: bool,
    pub masquerade: bool,
    /// One IPAM pool per subnet, IPv4 first.
    pub pools: Vec<Pool>,
    /// Whether the user gave the subnets (Docker: static IPs only on user-configured subnets).
    pub user_subnets: bool,
}

impl Network {
    /// Docker's scope: `swarm` for networks that span the cluster.
    pub fn scope(&self) -> &'static str {
        if self.driver == Driver::Overlay {
            "swarm"
        } else {
            "local"
        }
    }

    /// Drivers whose endpoints are veths on a Linux bridge of this host.
    pub fn bridged(&self) -> bool {
        matches!(self.driver, Driver::Bridge | Driver::Overlay)
    }

    pub fn is_default_bridge(&self) -> bool {
        self.builtin && self.driver == Driver::Bridge
    }

    pub fn firewall_rules(&self) -> Option<berth_firewall::NetworkRules> {
        Some(berth_firewall::NetworkRules {
            bridge: self.bridge.clone()?,
            subnets: self.pools.iter().map(|p| p.subnet()).collect(),
            internal: self.internal,
            masquerade: self.masquerade,
            icc: self.icc,
        })
    }
}

/// How a container gets its network stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "mode", content = "target")]
pub enum NetworkMode {
    /// Its own namespace, attached to networks (bridge driver, including the default `bridge`).
    Networks,
    /// Its own namespace with only `lo`.
    None,
    /// The daemon's own network namespace.
    Host,
    /// Another container's namespace (its id).
    Container(String),
}

/// What the user asked for on one network (`--ip`, `--ip6`, `--network-alias`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRequest {
    pub ipv4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub aliases: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerConfig {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub hostname: String,
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub dns: Vec<IpAddr>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<(String, IpAddr)>,
    pub auto_remove: bool,
    pub labels: BTreeMap<String, String>,
    pub network_mode: NetworkMode,
    /// The network-mode string as the user wrote it (`bridge`, `mynet`, `container:web`).
    pub network_mode_name: String,
    /// Networks to join at start, in order: the first gets eth0 and the default route.
    pub networks: Vec<(String, EndpointRequest)>,
    /// `--expose` and every `-p` container port (docker's `Config.ExposedPorts`).
    #[serde(default)]
    pub exposed_ports: std::collections::BTreeSet<berth_ports::PortProto>,
    /// `-p` as the API received it: container port → (HostIp, HostPort) strings.
    #[serde(default)]
    pub port_bindings: BTreeMap<berth_ports::PortProto, Vec<(String, String)>>,
    /// `-P`: every exposed port without a binding gets an ephemeral one.
    #[serde(default)]
    pub publish_all: bool,
    /// `--link NAME:ALIAS`: (target container name, alias).
    #[serde(default)]
    pub links: Vec<(String, String)>,
    #[serde(default)]
    pub restart: RestartPolicy,
    #[serde(default)]
    pub healthcheck: Option<Healthcheck>,
    /// `--log-opt` / `HostConfig.LogConfig.Config`, over the daemon's defaults.
    #[serde(default)]
    pub log_opts: Vec<(String, String)>,
}

/// `--restart`: carried out by the daemon when the container's process exits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// "" or "no", "always", "unless-stopped", "on-failure".
    pub name: String,
    /// on-failure only; 0 = no limit.
    pub max_retries: u32,
}

impl RestartPolicy {
    /// Docker's `--restart` syntax: `no`, `always`, `unless-stopped`, `on-failure[:N]`.
    pub fn parse(s: &str) -> Result<RestartPolicy, String> {
        let (name, max) = match s.split_once(':') {
            Some((n, m)) => (n, Some(m)),
            None => (s, None),
        };
        let max_retries = match (name, max) {
            ("on-failure", Some(m)) => m.parse::<u32>().map_err(|_| {
                format!("invalid restart policy {s:?}: the retry count must be a number")
            })?,
            (_, Some(_)) => {
                return Err(format!(
                    "invalid restart policy {s:?}: only on-failure takes a retry count"
                ))
            }
            _ => 0,
        };
        match name {
            "" | "no" | "always" | "unless-stopped" | "on-failure" => Ok(RestartPolicy {
                name: if name == "no" {
                    String::new()
                } else {
                    name.to_string()
                },
                max_retries,
            }),
            _ => Err(format!(
                "invalid restart policy {s:?}: use no, always, unless-stopped or on-failure[:N]"
            )),
        }
    }

    pub fn is_none(&self) -> bool {
        self.name.is_empty()
    }
}

/// `--health-cmd` and friends (docker's `Config.Healthcheck`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healthcheck {
    /// `["CMD", prog, args…]` or `["CMD-SHELL", "script"]`.
    pub test: Vec<String>,
    pub interval_ms: u64,
    pub timeout_ms: u64,
    pub retries: u32,
    pub start_period_ms: u64,
}

/// The latest health of a container with a health check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// "starting", "healthy" or "unhealthy".
    pub status: String,
    pub failing_streak: u32,
    /// The last five results, oldest first.
    pub log: Vec<HealthResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthResult {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub exit_code: i64,
    pub output: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Created,
    Running,
    Exited,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Created => "created",
            Status::Running => "running",
            Status::Exited => "exited",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub status: Status,
    /// The container's first process, as seen from the daemon.
    pub pid: u32,
    /// Its `starttime` from /proc/PID/stat, so a recycled PID is never mistaken for it.
    pub pid_start: u64,
    /// The shim that waits for it and records its exit status.
    pub shim_pid: u32,
    pub shim_start: u64,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: i64,
    pub error: String,
    pub restart_count: u32,
    /// Stopped or killed through the API: restart policies leave it alone.
    #[serde(default)]
    pub manually_stopped: bool,
    #[serde(default)]
    pub health: Option<Health>,
}

impl State {
    /// A container that was created and never started.
    pub fn created() -> State {
        State {
            status: Status::Created,
            pid: 0,
            pid_start: 0,
            shim_pid: 0,
            shim_start: 0,
            started_at: None,
            finished_at: None,
            exit_code: 0,
            error: String::new(),
            restart_count: 0,
            manually_stopped: false,
            health: None,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Endpoint {
    pub id: String,
    pub network_id: String,
    pub network_name: String,
    /// Name inside the sandbox: eth0, eth1, ...
    pub ifname: String,
    /// The veth end on the bridge.
    pub host_ifname: String,
    pub mac: String,
    pub ipv4: Option<IpAddr>,
    pub ipv4_prefix: u8,
    pub gateway4: Option<IpAddr>,
    pub ipv6: Option<IpAddr>,
    pub ipv6_prefix: u8,
    pub gateway6: Option<IpAddr>,
    pub aliases: Vec<String>,
    pub request: EndpointRequest,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Container {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub config: ContainerConfig,
    pub state: State,
    /// Attachments while running, in attach order (eth0 first).
    pub endpoints: Vec<Endpoint>,
    /// Host ports published while running (allocated anew at every start).
    #[serde(default)]
    pub ports: Vec<berth_ports::Published>,
    /// Legacy links on the default bridge, resolved at start: `/etc/hosts` lines
    /// (address, names) and environment variables. Static until the next start, as in Docker.
    #[serde(default)]
    pub link_hosts: Vec<(IpAddr, String)>,
    #[serde(default)]
    pub link_env: Vec<String>,
}

impl Container {
    pub fn is_running(&self) -> bool {
        self.state.status == Status::Running
    }
}

/// 64 hex characters, like Docker's ids.
pub fn new_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..32)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// Docker's name rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+` (container names), networks alike.
pub use crate::validate::valid_name;

/// Linux interface names: at most 15 bytes, no '/', whitespace or ':'.
pub fn valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Docker-style random names (`adjective_surname`) for containers started without `--name`.
pub fn random_name() -> String {
    use rand::seq::IndexedRandom;
    const LEFT: &[&str] = &[
        "admiring", "bold", "brave", "busy", "calm", "clever", "eager", "elated", "epic",
        "fervent", "festive", "gifted", "happy", "jolly", "keen", "kind", "loving", "lucid",
        "modest", "nifty", "quirky", "relaxed", "serene", "sharp", "stoic", "sweet", "vibrant",
        "wizardly", "youthful", "zealous",
    ];
    const RIGHT: &[&str] = &[
        "albattani",
        "babbage",
        "bell",
        "curie",
        "darwin",
        "dijkstra",
        "euclid",
        "fermat",
        "galileo",
        "hopper",
        "hypatia",
        "kepler",
        "knuth",
        "lamport",
        "lovelace",
        "mccarthy",
        "noether",
        "pascal",
        "ritchie",
        "shannon",
        "thompson",
        "torvalds",
        "turing",
        "wozniak",
    ];
    let mut rng = rand::rng();
    format!(
        "{}_{}",
        LEFT.choose(&mut rng).unwrap(),
        RIGHT.choose(&mut rng).unwrap()
    )
}

/// A random name no container has: Docker's way, a few random tries and then a numeric
/// suffix, so it terminates however many names are taken.
pub fn unique_random_name(taken: impl Fn(&str) -> bool) -> String {
    let base = (0..8)
        .map(|_| random_name())
        .find(|n| !taken(n))
        .unwrap_or_else(random_name);
    if !taken(&base) {
        return base;
    }
    (1..)
        .map(|i| format!("{base}{i}"))
        .find(|n| !taken(n))
        .expect("unbounded")
}

/// Docker derives the MAC of a container interface from its IPv4 address (02:42 + the 4
/// bytes), which keeps ARP caches of neighbours valid when an address moves between runs.
pub fn mac_for(ip: Option<IpAddr>) -> [u8; 6] {
    match ip {
        Some(IpAddr::V4(v4)) => {
            let o = v4.octets();
            [0x02, 0x42, o[0], o[1], o[2], o[3]]
        }
        _ => {
            use rand::Rng;
            let mut m: [u8; 6] = rand::rng().random();
            m[0] = (m[0] & 0xfe) | 0x02;
            m
        }
    }
}

pub fn mac_string(m: &[u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_name("web1"));
        assert!(valid_name("a.b-c_d"));
        assert!(!valid_name("-web"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a/b"));
    }

    #[test]
    fn ifnames() {
        assert!(valid_ifname("berth0"));
        assert!(!valid_ifname("a-very-long-name-x"));
        assert!(!valid_ifname("a b"));
    }

    #[test]
    fn random_names_never_run_out() {
        // Every plain name taken: a suffixed one comes back at once.
        let n = unique_random_name(|n| !n.chars().last().unwrap().is_ascii_digit());
        assert!(n.chars().last().unwrap().is_ascii_digit(), "{n}");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..2000 {
            let n = unique_random_name(|n| seen.contains(n));
            assert!(valid_name(&n), "{n}");
            assert!(seen.insert(n));
        }
    }

    #[test]
    fn mac_from_ipv4() {
        let m = mac_for(Some("172.17.0.2".parse().unwrap()));
        assert_eq!(mac_string(&m), "02:42:ac:11:00:02");
        let r = mac_for(None);
        assert_eq!(r[0] & 0x03, 0x02, "locally administered unicast");
    }

    #[test]
    fn ids_are_64_hex() {
        let id = new_id();
        assert_eq!(id.len(), 64);
        assert!(id.chars().all(|c| c.is_ascii_hexdigit()));
    }
}
