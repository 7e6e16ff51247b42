use crate::addr::{net_family, other_family};
use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// Coarse class of an [`IpamError`], stable across message changes, so the
/// daemon can pick an HTTP status without matching on text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request or configuration is wrong in itself (HTTP 400).
    InvalidInput,
    /// The address is valid but taken or reserved (Docker answers 403 "Address already in use").
    Conflict,
    /// Nothing left to hand out (Docker answers 503 "no available addresses on this pool").
    Exhausted,
}

/// Why an address of a pool can never be handed out.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Reserved {
    Network,
    Broadcast,
    Gateway,
    /// Auxiliary address, by its name.
    Auxiliary(String),
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reserved::Network => f.write_str("network address"),
            Reserved::Broadcast => f.write_str("broadcast address"),
            Reserved::Gateway => f.write_str("gateway"),
            Reserved::Auxiliary(name) => write!(f, "auxiliary address {name}"),
        }
    }
}

#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum IpamError {
    /// `what` is "subnet" or "ip-range".
    #[error("invalid {what} {given}: host bits are set (did you mean {canonical}?)")]
    HostBitsSet {
        what: &'static str,
        given: IpNet,
        canonical: IpNet,
    },

    /// `what` names the setting: "gateway", "ip-range", "auxiliary address" (value `name=ip`) or "address".
    #[error(
        "{what} {value} is {} but subnet {subnet} is {}: addresses and ranges must be of the subnet's family",
        other_family(.subnet),
        net_family(.subnet)
    )]
    FamilyMismatch {
        what: String,
        value: String,
        subnet: IpNet,
    },

    #[error(
        "gateway {gateway} is outside subnet {subnet}; choose an address inside the subnet, or leave the gateway unset to use the first one"
    )]
    GatewayOutsideSubnet { gateway: IpAddr, subnet: IpNet },

    #[error(
        "gateway {gateway} is the {reason} of subnet {subnet}; choose a host address of the subnet"
    )]
    GatewayReserved {
        gateway: IpAddr,
        subnet: IpNet,
        reason: Reserved,
    },

    #[error(
        "ip-range {range} is outside subnet {subnet}; the ip-range must be a part of the subnet"
    )]
    RangeOutsideSubnet { range: IpNet, subnet: IpNet },

    #[error("auxiliary address {name}={addr} is outside subnet {subnet}")]
    AuxOutsideSubnet {
        name: String,
        addr: IpAddr,
        subnet: IpNet,
    },

    #[error(
        "auxiliary address {name}={addr} is the {reason} of subnet {subnet}; give it an address of its own"
    )]
    AuxReserved {
        name: String,
        addr: IpAddr,
        subnet: IpNet,
        reason: Reserved,
    },

    /// `range` is the pool's ip-range when it has one.
    #[error(
        "no available IP addresses on this pool: {subnet} (every address of the {} is in use or reserved)",
        scope(.range)
    )]
    Exhausted { subnet: IpNet, range: Option<IpNet> },

    #[error("Address already in use ({ip} is held by {owner})")]
    AddressInUse { ip: IpAddr, owner: String },

    #[error("{ip} is reserved ({reason}) in subnet {subnet}; choose another address")]
    AddressReserved {
        ip: IpAddr,
        subnet: IpNet,
        reason: Reserved,
    },

    #[error(
        "{ip} is outside subnet {subnet}; a requested address must lie inside the network's subnet"
    )]
    AddressOutsideSubnet { ip: IpAddr, subnet: IpNet },
}

fn scope(range: &Option<IpNet>) -> String {
    match range {
        Some(r) => format!("ip-range {r}"),
        None => "subnet".to_owned(),
    }
}

impl IpamError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            IpamError::HostBitsSet { .. }
            | IpamError::FamilyMismatch { .. }
            | IpamError::GatewayOutsideSubnet { .. }
            | IpamError::GatewayReserved { .. }
            | IpamError::RangeOutsideSubnet { .. }
            | IpamError::AuxOutsideSubnet { .. }
            | IpamError::AuxReserved { .. }
            | IpamError::AddressOutsideSubnet { .. } => ErrorKind::InvalidInput,
            IpamError::AddressInUse { .. } | IpamError::AddressReserved { .. } => {
                ErrorKind::Conflict
            }
            IpamError::Exhausted { .. } => ErrorKind::Exhausted,
        }
    }
}
