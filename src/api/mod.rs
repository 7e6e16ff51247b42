//! The Docker-compatible HTTP API: server, typed client, and the JSON shapes.

pub mod client;
pub mod consul;
mod discovery;
mod errors;
mod extract;
pub mod fdpass;
mod routes;
pub mod server;
pub mod types;
mod version;

/// The `Upgrade` protocol of foreground starts and execs (see docs/api.md).
pub const UPGRADE_PROTO: &str = "berth-stdio";
