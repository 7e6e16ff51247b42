//! The Docker-compatible HTTP API: server, typed client, and the JSON shapes.

pub mod client;
mod discovery;
pub mod fdpass;
pub mod server;
pub mod types;
