//! Address management for berth networks: one [`Pool`] per subnet, Docker's
//! default subnet choice, and nothing else. Pure logic with no I/O so the
//! daemon can persist pools (serde) and mutate them inside its own store
//! transaction.

mod addr;
pub mod blocks;
mod defaults;
mod error;
mod pool;

pub use defaults::{
    default_overlay_pool, default_pools_v4, overlaps, pick_default_overlay, pick_default_v4,
    pick_default_v6,
};
pub use error::{ErrorKind, IpamError, Reserved};
pub use pool::{Pool, PoolConfig};
