//! Addresses as plain integers, so IPv4 and IPv6 share one arithmetic path and
//! huge IPv6 pools are walked by number instead of being enumerated.

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub(crate) fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// `v` must fit the family: callers only pass values derived from a net of that family.
pub(crate) fn from_u128(v: u128, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(v))
    } else {
        IpAddr::V4(Ipv4Addr::from(u32::try_from(v).unwrap_or(u32::MAX)))
    }
}

/// First and last address of `net`, inclusive.
pub(crate) fn bounds(net: &IpNet) -> (u128, u128) {
    (to_u128(net.network()), to_u128(net.broadcast()))
}

pub(crate) fn net_family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv4",
        IpNet::V6(_) => "IPv6",
    }
}

/// The family a value must have had to be rejected as a mismatch against `net`.
pub(crate) fn other_family(net: &IpNet) -> &'static str {
    match net {
        IpNet::V4(_) => "IPv6",
        IpNet::V6(_) => "IPv4",
    }
}

pub(crate) fn same_family(net: &IpNet, ip: &IpAddr) -> bool {
    net.network().is_ipv6() == ip.is_ipv6()
}
