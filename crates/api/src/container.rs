//! Containers: the create request (docker's `Config` with `HostConfig` and
//! `NetworkingConfig`), and the answers that berth's CLI and compose read.

use std::collections::BTreeMap;

use berth_ports::PortProto;
use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use crate::de::{is_zero, nullable, object_only, Empty};
use crate::network::EndpointSettings;

/// docker's `nat.PortSet` (`Config.ExposedPorts`): `{"80/tcp": {}}`.
pub type PortSet = BTreeMap<PortProto, Empty>;

/// docker's `nat.PortMap` (`HostConfig.PortBindings`, `NetworkSettings.Ports`): a port's
/// bindings, `None` (null) when it is exposed but not published.
pub type PortMap = BTreeMap<PortProto, Option<Vec<PortBinding>>>;

/// `POST /containers/create?name=…`: docker's `container.CreateRequest`, whose `Config`
/// fields sit at the top level. The fields berth acts on, in docker's order; every other
/// field docker sends is ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct ContainerCreateRequest {
    pub hostname: String,
    pub domainname: String,
    pub attach_stdin: bool,
    pub attach_stdout: bool,
    pub attach_stderr: bool,
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub exposed_ports: PortSet,
    pub tty: bool,
    pub open_stdin: bool,
    pub env: Option<Vec<String>>,
    pub cmd: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    pub image: String,
    pub working_dir: String,
    pub entrypoint: Option<Vec<String>>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_config: Option<HostConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub networking_config: Option<NetworkingConfig>,
}

impl ContainerCreateRequest {
    /// Exposes a port (`--expose`).
    pub fn expose(&mut self, port: PortProto) {
        self.exposed_ports.insert(port, Empty);
    }

    /// Exposes a port and binds it to `host_ip:host_port` ("" for every address, or for an
    /// ephemeral port), one entry of a `-p` as the docker CLI expands it.
    pub fn publish(&mut self, port: PortProto, host_ip: String, host_port: String) {
        self.expose(port);
        let hc = self.host_config.get_or_insert_with(HostConfig::default);
        hc.port_bindings
            .get_or_insert_with(PortMap::new)
            .entry(port)
            .or_default()
            .get_or_insert_with(Vec::new)
            .push(PortBinding { host_ip, host_port });
    }
}

/// `HostConfig`: the host-side settings berth carries out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct HostConfig {
    #[serde(deserialize_with = "nullable")]
    pub log_config: LogConfig,
    /// `bridge`, `host`, `none`, `container:NAME` or a network's name; "" and `default`
    /// mean `bridge`.
    #[serde(deserialize_with = "nullable")]
    pub network_mode: String,
    pub port_bindings: Option<PortMap>,
    #[serde(deserialize_with = "nullable")]
    pub restart_policy: RestartPolicy,
    pub auto_remove: bool,
    pub dns: Option<Vec<String>>,
    pub dns_options: Option<Vec<String>>,
    pub dns_search: Option<Vec<String>>,
    /// `NAME:IP` entries for /etc/hosts.
    pub extra_hosts: Option<Vec<String>>,
    /// `NAME[:ALIAS]` (or docker's `/name:/container/alias`).
    pub links: Option<Vec<String>>,
    pub publish_all_ports: bool,
}

/// One host binding of a container port. Both are strings in docker's API: `HostIp` ""
/// is every address, `HostPort` "" an ephemeral port and `"9000-9100"` the first free one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct PortBinding {
    #[serde(rename = "HostIp")]
    pub host_ip: String,
    #[serde(rename = "HostPort")]
    pub host_port: String,
}

/// `HostConfig.RestartPolicy`: `no`, `always`, `unless-stopped` or `on-failure` (with a
/// maximum retry count).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct RestartPolicy {
    pub name: String,
    pub maximum_retry_count: u32,
}

/// `HostConfig.LogConfig`: berth keeps json-file logs, so only that driver (or none named)
/// and its `max-size` / `max-file` options are accepted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct LogConfig {
    #[serde(rename = "Type")]
    pub kind: String,
    pub config: Option<BTreeMap<String, String>>,
}

/// `Config.Healthcheck`: durations in nanoseconds; 0 (omitted) means the default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct Healthcheck {
    /// `["CMD", prog, args…]`, `["CMD-SHELL", script]` or `["NONE"]`.
    #[serde(skip_serializing_if = "Vec::is_empty", deserialize_with = "nullable")]
    pub test: Vec<String>,
    #[serde(skip_serializing_if = "is_zero")]
    pub interval: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub timeout: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub start_period: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub retries: u32,
}

/// `NetworkingConfig.EndpointsConfig`: the endpoint on each network, in the order given
/// (the network mode's own first, then eth1, eth2… in this order).
pub type EndpointsConfig = IndexMap<String, EndpointSettings>;

/// `NetworkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct NetworkingConfig {
    pub endpoints_config: Option<EndpointsConfig>,
}

object_only!(
    ContainerCreateRequest,
    HostConfig,
    PortBinding,
    RestartPolicy,
    LogConfig,
    Healthcheck,
    NetworkingConfig,
);

/// The answer to `POST /containers/create` (201).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerCreateResponse {
    pub id: String,
    pub warnings: Vec<String>,
}

/// The answer to `POST /containers/{id}/wait`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitResponse {
    pub status_code: i64,
    pub error: Option<WaitError>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WaitError {
    pub message: String,
}

/// One entry of `GET /containers/json`, field for field as berth's server answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerSummary {
    pub id: String,
    /// `/name`, as docker lists them.
    pub names: Vec<String>,
    pub image: String,
    #[serde(rename = "ImageID")]
    pub image_id: String,
    pub command: String,
    /// Unix seconds.
    pub created: i64,
    pub ports: Vec<SummaryPort>,
    pub labels: BTreeMap<String, String>,
    pub state: String,
    pub status: String,
    pub host_config: SummaryHostConfig,
    pub network_settings: SummaryNetworkSettings,
    /// Always empty: berth has no volumes.
    pub mounts: Vec<serde_json::Value>,
}

impl ContainerSummary {
    /// The name without docker's leading `/`.
    pub fn name(&self) -> &str {
        self.names
            .first()
            .map(|n| n.trim_start_matches('/'))
            .unwrap_or_default()
    }

    pub fn label(&self, key: &str) -> &str {
        self.labels.get(key).map(String::as_str).unwrap_or_default()
    }

    pub fn is_running(&self) -> bool {
        self.state == "running"
    }
}

/// A summary's port: an exposed one has neither `IP` nor `PublicPort`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryPort {
    #[serde(rename = "IP", skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    pub private_port: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_port: Option<u16>,
    #[serde(rename = "Type")]
    pub proto: String,
}

impl From<&SummaryPort> for berth_ports::ApiPort {
    fn from(p: &SummaryPort) -> Self {
        berth_ports::ApiPort {
            ip: p.ip.clone().unwrap_or_default(),
            private_port: p.private_port,
            public_port: p.public_port.unwrap_or(0),
            proto: p.proto.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryHostConfig {
    pub network_mode: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SummaryNetworkSettings {
    pub networks: BTreeMap<String, EndpointSettings>,
}

/// The part of `GET /containers/{id}/json` that berth's CLI and compose read (`inspect`
/// itself prints the server's object as it came).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerInspect {
    pub id: String,
    pub name: String,
    pub state: ContainerState,
    pub network_settings: InspectNetworkSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ContainerState {
    /// `created`, `running` or `exited`.
    pub status: String,
    pub running: bool,
    pub exit_code: i64,
    /// `None` without a health check.
    pub health: Option<Health>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Health {
    /// `starting`, `healthy` or `unhealthy`.
    pub status: String,
    pub failing_streak: u32,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct InspectNetworkSettings {
    /// Every exposed or published port while the container runs.
    pub ports: PortMap,
    pub networks: BTreeMap<String, EndpointSettings>,
}
