//! Errors of daemon operations, each in one of Docker's status classes so API clients
//! (including the real docker CLI) react as they do with dockerd.

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
}

impl Error {
    pub fn status(&self) -> u16 {
        match self {
            Error::NotFound(_) => 404,
            Error::InvalidParameter(_) => 400,
            Error::Conflict(_) => 409,
            Error::Forbidden(_) => 403,
            Error::Unavailable(_) => 503,
            Error::Internal(_) => 500,
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

impl From<crate::netlink::NetError> for Error {
    fn from(e: crate::netlink::NetError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<crate::store::StoreError> for Error {
    fn from(e: crate::store::StoreError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<berth_firewall::FirewallError> for Error {
    fn from(e: berth_firewall::FirewallError) -> Self {
        Error::Internal(e.to_string())
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Internal(e.to_string())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
