//! `GET /version` and `GET /info`, field for field as berth's server answers.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemVersion {
    pub platform: Platform,
    pub components: Vec<Component>,
    pub version: String,
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub git_commit: String,
    pub go_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
    pub build_time: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Platform {
    pub name: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Component {
    pub name: String,
    pub version: String,
    pub details: ComponentDetails,
}

/// A map of strings in docker's API; a struct here, so the keys keep the order berth has
/// always written them in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ComponentDetails {
    pub api_version: String,
    #[serde(rename = "MinAPIVersion")]
    pub min_api_version: String,
    pub os: String,
    pub arch: String,
    pub kernel_version: String,
}

/// `GET /info`: docker's fields that apply, then berth's own (`Berth*`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SystemInfo {
    #[serde(rename = "ID")]
    pub id: String,
    pub containers: usize,
    pub containers_running: usize,
    pub containers_paused: usize,
    pub containers_stopped: usize,
    pub images: usize,
    pub driver: String,
    pub name: String,
    pub server_version: String,
    pub operating_system: String,
    #[serde(rename = "OSType")]
    pub os_type: String,
    pub architecture: String,
    pub kernel_version: String,
    #[serde(rename = "NCPU")]
    pub ncpu: usize,
    pub docker_root_dir: String,
    pub plugins: Plugins,
    pub swarm: Swarm,
    pub networks: usize,
    pub berth_run: String,
    pub berth_socket: String,
    /// Where the host asks the embedded resolver; "" without a host listener.
    #[serde(rename = "BerthDNS")]
    pub berth_dns: String,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Plugins {
    pub volume: Vec<String>,
    pub network: Vec<String>,
    pub log: Vec<String>,
}

/// Always inactive: berth has no swarm mode.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct Swarm {
    pub local_node_state: String,
    #[serde(rename = "NodeID")]
    pub node_id: String,
    pub node_addr: String,
    pub control_available: bool,
    pub error: String,
    pub remote_managers: Option<Vec<serde_json::Value>>,
}
