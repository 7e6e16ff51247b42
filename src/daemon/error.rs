//! Errors of daemon operations. Each is of one of Docker's classes (not found, invalid,
//! conflict, forbidden, unavailable, internal) so API clients, the real docker CLI among
//! them, react as they do with dockerd; the HTTP status is chosen in the API layer
//! (`api::errors`). Failures of the kernel, the firewall, the store and the file system keep
//! their cause (`source()`), for the log and for callers that tell them apart.

/// Docker's classes of errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    NotFound,
    InvalidParameter,
    Conflict,
    Forbidden,
    Unavailable,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
    /// This node owns no free address of an overlay network (for `want`, if static): the
    /// caller claims a block in the cluster and plans again.
    #[error("this node has no free address on overlay network {network}: it needs another address block")]
    NoBlock {
        network: String,
        v6: bool,
        want: Option<std::net::IpAddr>,
    },
    /// A netlink request the kernel refused (its errno is in the cause).
    #[error(transparent)]
    Kernel(#[from] crate::netlink::NetError),
    #[error(transparent)]
    Firewall(#[from] berth_firewall::FirewallError),
    #[error(transparent)]
    Store(#[from] berth_store::StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Error {
    pub fn class(&self) -> Class {
        match self {
            Error::NotFound(_) => Class::NotFound,
            Error::InvalidParameter(_) => Class::InvalidParameter,
            Error::Conflict(_) => Class::Conflict,
            Error::Forbidden(_) => Class::Forbidden,
            Error::Unavailable(_) | Error::NoBlock { .. } => Class::Unavailable,
            Error::Internal(_)
            | Error::Kernel(_)
            | Error::Firewall(_)
            | Error::Store(_)
            | Error::Io(_) => Class::Internal,
        }
    }
}

impl From<berth_ipam::IpamError> for Error {
    fn from(e: berth_ipam::IpamError) -> Self {
        use berth_ipam::ErrorKind;
        match e.kind() {
            ErrorKind::InvalidInput => Error::InvalidParameter(e.to_string()),
            ErrorKind::Conflict => Error::Forbidden(e.to_string()),
            ErrorKind::Exhausted => Error::Unavailable(e.to_string()),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_are_kept_and_classed_internal() {
        use std::error::Error as _;
        let io = std::io::Error::from_raw_os_error(libc::EMFILE);
        let e = Error::from(io);
        assert_eq!(e.class(), Class::Internal);
        assert!(e.to_string().contains("Too many open files"), "{e}");
        // transparent: the cause is the io error's own (none here), the message is its own
        assert!(e.source().is_none());
        assert_eq!(Error::Conflict("x".into()).class(), Class::Conflict);
    }
}
