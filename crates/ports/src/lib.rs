//! Published ports, the pure part: docker's `-p`/`--expose` syntax, the expansion into
//! `PortBindings` (the API shape), host-port allocation with conflict detection, and the
//! renderings `docker port` and the PORTS column print. No I/O: whatever really holds a
//! port (a listening socket) is behind the [`Claims`] trait, supplied by the daemon.

mod alloc;
mod error;
mod render;
mod service;
mod spec;

pub use alloc::{conflicts, plan, BindingRequest, Claims, Published};
pub use error::PortError;
pub use render::{displayable_ports, natural_less, port_lines, ApiPort, PortEntry};
pub use service::{PublishMode, ServicePort};
pub use spec::{parse_expose, PortProto, PortRange, Proto, PublishSpec};
