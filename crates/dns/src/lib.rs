//! berth's embedded resolver without its sockets: the name index (networks, their names
//! and who may see them) and the answer to one query. The daemon owns the listeners and the
//! upstream relay; everything that decides what a query gets lives here, free of I/O.

mod answer;
pub mod consul;
mod fast;
mod index;
mod name;
mod services;
#[cfg(test)]
mod tests;

pub use answer::{answer, error_reply, Reply, TTL, UDP_PAYLOAD};
pub use hickory_proto::op::ResponseCode;
pub use index::{Asker, Attachment, Client, Index, Member, NetId, Network, Proto, Sandbox, View};
pub use services::Services;
