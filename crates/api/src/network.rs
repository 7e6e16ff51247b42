//! Networks: create, connect and disconnect bodies, the endpoint settings that container
//! create and inspect share, and the network object of inspect and list.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::de::{nullable, object_only};

/// `POST /networks/create`: docker's `network.CreateRequest`, the fields berth acts on in
/// docker's order (`Scope`, `Ingress`, `ConfigOnly`, `ConfigFrom` and `CheckDuplicate` are
/// ignored).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct NetworkCreateRequest {
    /// `bridge` when empty.
    #[serde(deserialize_with = "nullable")]
    pub driver: String,
    #[serde(rename = "EnableIPv6", skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
    #[serde(rename = "IPAM")]
    pub ipam: Option<Ipam>,
    pub internal: bool,
    pub attachable: bool,
    pub options: Option<BTreeMap<String, String>>,
    pub labels: Option<BTreeMap<String, String>>,
    pub name: String,
}

/// `IPAM`, in create requests and in the network object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct Ipam {
    /// Always `default`: berth has one IPAM driver.
    #[serde(deserialize_with = "nullable")]
    pub driver: String,
    pub options: Option<BTreeMap<String, String>>,
    /// One entry per subnet; none lets the server pick one from its pools.
    pub config: Option<Vec<IpamConfig>>,
}

/// One subnet of a network. Empty fields are left out, as docker does (`omitempty`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct IpamConfig {
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub subnet: String,
    #[serde(
        rename = "IPRange",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub ip_range: String,
    #[serde(
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub gateway: String,
    /// Addresses reserved by name (never handed out).
    #[serde(
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "nullable"
    )]
    pub auxiliary_addresses: BTreeMap<String, String>,
}

/// docker's `network.EndpointSettings`: what a request asks of an endpoint
/// (`NetworkingConfig.EndpointsConfig`, connect's `EndpointConfig`; berth reads
/// `IPAMConfig` and `Aliases`), and what inspect and the container list show of it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct EndpointSettings {
    /// Static addresses; `None` (null) when none were asked for.
    #[serde(rename = "IPAMConfig")]
    pub ipam_config: Option<EndpointIpamConfig>,
    pub links: Option<Vec<String>>,
    pub aliases: Option<Vec<String>>,
    pub mac_address: String,
    pub driver_opts: Option<BTreeMap<String, String>>,
    pub gw_priority: i64,
    #[serde(rename = "NetworkID")]
    pub network_id: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub gateway: String,
    #[serde(rename = "IPAddress")]
    pub ip_address: String,
    #[serde(rename = "IPPrefixLen")]
    pub ip_prefix_len: u8,
    #[serde(rename = "IPv6Gateway")]
    pub ipv6_gateway: String,
    #[serde(rename = "GlobalIPv6Address")]
    pub global_ipv6_address: String,
    #[serde(rename = "GlobalIPv6PrefixLen")]
    pub global_ipv6_prefix_len: u8,
    /// The names the embedded resolver answers for this endpoint; `None` on the default
    /// bridge, which has no resolver.
    #[serde(rename = "DNSNames")]
    pub dns_names: Option<Vec<String>>,
}

/// `EndpointSettings.IPAMConfig`: the addresses asked for ("" = any).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", default)]
pub struct EndpointIpamConfig {
    #[serde(
        rename = "IPv4Address",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub ipv4_address: String,
    #[serde(
        rename = "IPv6Address",
        skip_serializing_if = "String::is_empty",
        deserialize_with = "nullable"
    )]
    pub ipv6_address: String,
}

/// `POST /networks/{id}/connect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct NetworkConnectRequest {
    pub container: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_config: Option<EndpointSettings>,
}

/// `POST /networks/{id}/disconnect`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "PascalCase", default)]
pub struct NetworkDisconnectRequest {
    pub container: String,
    pub force: bool,
}

object_only!(
    NetworkCreateRequest,
    Ipam,
    IpamConfig,
    EndpointSettings,
    EndpointIpamConfig,
    NetworkConnectRequest,
    NetworkDisconnectRequest,
);

/// The answer to `POST /networks/create` (201).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkCreateResponse {
    pub id: String,
    pub warning: String,
}

/// The answer to `POST /networks/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkPruneResponse {
    pub networks_deleted: Vec<String>,
}

/// The network object of `GET /networks/{id}` and `GET /networks`, field for field as
/// berth's server answers (the list leaves `Containers` empty).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Network {
    pub name: String,
    pub id: String,
    /// RFC 3339 with nanoseconds, as Go prints it.
    pub created: String,
    pub scope: String,
    pub driver: String,
    #[serde(rename = "EnableIPv4")]
    pub enable_ipv4: bool,
    #[serde(rename = "EnableIPv6")]
    pub enable_ipv6: bool,
    #[serde(rename = "IPAM")]
    pub ipam: Ipam,
    pub internal: bool,
    pub attachable: bool,
    pub ingress: bool,
    pub config_from: ConfigReference,
    pub config_only: bool,
    /// Endpoints by container ID.
    pub containers: BTreeMap<String, NetworkContainer>,
    pub options: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
}

impl Default for Network {
    /// IPv4 on unless a server says otherwise: every berth network has it.
    fn default() -> Self {
        Network {
            name: String::new(),
            id: String::new(),
            created: String::new(),
            scope: String::new(),
            driver: String::new(),
            enable_ipv4: true,
            enable_ipv6: false,
            ipam: Ipam::default(),
            internal: false,
            attachable: false,
            ingress: false,
            config_from: ConfigReference::default(),
            config_only: false,
            containers: BTreeMap::new(),
            options: BTreeMap::new(),
            labels: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ConfigReference {
    pub network: String,
}

/// A container's endpoint in the network object.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct NetworkContainer {
    pub name: String,
    #[serde(rename = "EndpointID")]
    pub endpoint_id: String,
    pub mac_address: String,
    /// `ADDRESS/PREFIX`, or "".
    #[serde(rename = "IPv4Address")]
    pub ipv4_address: String,
    #[serde(rename = "IPv6Address")]
    pub ipv6_address: String,
}
