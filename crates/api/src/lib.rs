//! The Docker Engine API (1.50) as berth speaks it, in one place: the request bodies that
//! berth's CLI and compose send and its server reads, the query strings and filters, and
//! the answers the clients read. Server, CLI and compose all use these types, so a shape
//! is written once. Pure serde: no I/O.
//!
//! How Go's JSON maps onto these types, so a body from the docker CLI reads back as sent:
//! a slice, map or pointer that Go writes as `null` when unset is an `Option` (`None` is
//! `null`); a field Go leaves out when empty (`omitempty`) is a plain value skipped when
//! empty. Request structs come only from JSON objects (an array is a type error, not an
//! empty struct) and ignore fields they do not name: docker's clients send many that berth
//! has no use for. Field names and their order are docker's.
//! `consul` is Consul's HTTP API subset for discovery tools and Registrator's model of services.

mod de;

pub mod consul;
pub mod container;
pub mod discovery;
pub mod exec;
pub mod filters;
pub mod network;
pub mod node;
pub mod query;
pub mod service;
pub mod system;
#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use container::{
    ContainerCreateRequest, ContainerCreateResponse, ContainerInspect, ContainerSummary,
    HostConfig, PortBinding, PortMap, PortSet,
};
pub use de::Empty;
pub use exec::{ExecCreateRequest, StdioLine};
pub use filters::{FilterError, Filters};
pub use network::{
    EndpointIpamConfig, EndpointSettings, Network, NetworkConnectRequest, NetworkCreateRequest,
    NetworkCreateResponse, NetworkDisconnectRequest,
};
pub use query::{encode as encode_query, escape};

/// The API version berth serves (and its CLI asks for).
pub const API_VERSION: &str = "1.50";
/// The oldest version berth still answers, as dockerd 28 does.
pub const MIN_API_VERSION: &str = "1.24";

/// Every error answer: `{"message": "…"}`, served as `application/json` (the docker CLI
/// reads the message only then).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorResponse {
    pub message: String,
}
