//! Pool::new validation: every rejected configuration and its message.

use berth_ipam::{ErrorKind, IpamError, Pool, PoolConfig, Reserved};
use ipnet::IpNet;
use std::net::IpAddr;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn cfg(subnet: &str) -> PoolConfig {
    PoolConfig::new(net(subnet))
}

fn err(c: PoolConfig) -> IpamError {
    Pool::new(c).expect_err("config should be rejected")
}

#[test]
fn subnet_with_host_bits_names_canonical_form() {
    let e = err(cfg("10.1.2.3/16"));
    assert_eq!(
        e.to_string(),
        "invalid subnet 10.1.2.3/16: host bits are set (did you mean 10.1.0.0/16?)"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = err(cfg("fd00::1/64"));
    assert_eq!(
        e.to_string(),
        "invalid subnet fd00::1/64: host bits are set (did you mean fd00::/64?)"
    );
}

#[test]
fn ip_range_with_host_bits_names_canonical_form() {
    let mut c = cfg("10.1.0.0/16");
    c.ip_range = Some(net("10.1.1.5/24"));
    assert_eq!(
        err(c).to_string(),
        "invalid ip-range 10.1.1.5/24: host bits are set (did you mean 10.1.1.0/24?)"
    );
}

#[test]
fn default_gateway_is_first_address() {
    let p = Pool::new(cfg("10.1.0.0/16")).unwrap();
    assert_eq!(p.gateway(), ip("10.1.0.1"));
    assert_eq!(p.subnet(), net("10.1.0.0/16"));
    assert_eq!(p.prefix_len(), 16);
    let p = Pool::new(cfg("fd00:1::/64")).unwrap();
    assert_eq!(p.gateway(), ip("fd00:1::1"));
}

#[test]
fn explicit_gateway_is_kept() {
    let mut c = cfg("10.1.0.0/16");
    c.gateway = Some(ip("10.1.200.254"));
    let p = Pool::new(c.clone()).unwrap();
    assert_eq!(p.gateway(), ip("10.1.200.254"));
    assert_eq!(p.config(), &c);
}

#[test]
fn gateway_outside_subnet() {
    let mut c = cfg("10.1.0.0/16");
    c.gateway = Some(ip("10.2.0.1"));
    let e = err(c);
    assert!(e
        .to_string()
        .starts_with("gateway 10.2.0.1 is outside subnet 10.1.0.0/16"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn gateway_on_network_or_broadcast_address() {
    let mut c = cfg("10.1.0.0/16");
    c.gateway = Some(ip("10.1.0.0"));
    let e = err(c.clone());
    assert_eq!(
        e,
        IpamError::GatewayReserved {
            gateway: ip("10.1.0.0"),
            subnet: net("10.1.0.0/16"),
            reason: Reserved::Network
        }
    );
    assert!(e
        .to_string()
        .starts_with("gateway 10.1.0.0 is the network address of subnet 10.1.0.0/16"));
    c.gateway = Some(ip("10.1.255.255"));
    assert!(err(c)
        .to_string()
        .starts_with("gateway 10.1.255.255 is the broadcast address of subnet 10.1.0.0/16"));
}

#[test]
fn ipv6_gateway_on_subnet_router_anycast_rejected_but_last_address_fine() {
    let mut c = cfg("fd00::/64");
    c.gateway = Some(ip("fd00::"));
    assert!(matches!(
        err(c.clone()),
        IpamError::GatewayReserved {
            reason: Reserved::Network,
            ..
        }
    ));
    c.gateway = Some(ip("fd00::ffff:ffff:ffff:ffff"));
    assert!(Pool::new(c).is_ok(), "IPv6 has no broadcast address");
}

#[test]
fn ip_range_outside_subnet() {
    let mut c = cfg("10.1.0.0/16");
    c.ip_range = Some(net("10.2.0.0/24"));
    let e = err(c.clone());
    assert!(e
        .to_string()
        .starts_with("ip-range 10.2.0.0/24 is outside subnet 10.1.0.0/16"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // Larger than the subnet although it contains it.
    c.ip_range = Some(net("10.0.0.0/8"));
    assert!(matches!(err(c), IpamError::RangeOutsideSubnet { .. }));
}

#[test]
fn ip_range_equal_to_subnet_is_fine() {
    let mut c = cfg("10.1.0.0/16");
    c.ip_range = Some(net("10.1.0.0/16"));
    Pool::new(c).unwrap();
}

#[test]
fn aux_address_outside_subnet() {
    let mut c = cfg("10.1.0.0/16");
    c.aux_addresses.insert("host1".into(), ip("10.2.0.5"));
    let e = err(c);
    assert_eq!(
        e.to_string(),
        "auxiliary address host1=10.2.0.5 is outside subnet 10.1.0.0/16"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[test]
fn aux_address_colliding_with_reserved_ones() {
    let mut c = cfg("10.1.0.0/24");
    c.aux_addresses.insert("router".into(), ip("10.1.0.1"));
    let e = err(c);
    assert!(matches!(
        e,
        IpamError::AuxReserved {
            reason: Reserved::Gateway,
            ..
        }
    ));
    assert!(e
        .to_string()
        .starts_with("auxiliary address router=10.1.0.1 is the gateway of subnet 10.1.0.0/24"));

    let mut c = cfg("10.1.0.0/24");
    c.aux_addresses.insert("b".into(), ip("10.1.0.255"));
    assert!(matches!(
        err(c),
        IpamError::AuxReserved {
            reason: Reserved::Broadcast,
            ..
        }
    ));

    let mut c = cfg("10.1.0.0/24");
    c.aux_addresses.insert("a".into(), ip("10.1.0.9"));
    c.aux_addresses.insert("b".into(), ip("10.1.0.9"));
    assert_eq!(
        err(c),
        IpamError::AuxReserved {
            name: "b".into(),
            addr: ip("10.1.0.9"),
            subnet: net("10.1.0.0/24"),
            reason: Reserved::Auxiliary("a".into())
        }
    );
}

#[test]
fn families_must_match() {
    let mut c = cfg("10.1.0.0/16");
    c.gateway = Some(ip("fd00::1"));
    let e = err(c);
    assert_eq!(
        e.to_string(),
        "gateway fd00::1 is IPv6 but subnet 10.1.0.0/16 is IPv4: addresses and ranges must be of the subnet's family"
    );
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let mut c = cfg("fd00::/64");
    c.ip_range = Some(net("10.1.0.0/24"));
    assert!(err(c)
        .to_string()
        .starts_with("ip-range 10.1.0.0/24 is IPv4 but subnet fd00::/64 is IPv6"));

    let mut c = cfg("fd00::/64");
    c.aux_addresses.insert("h".into(), ip("10.0.0.1"));
    assert!(err(c)
        .to_string()
        .starts_with("auxiliary address h=10.0.0.1 is IPv4 but subnet fd00::/64 is IPv6"));
}

#[test]
fn tiny_subnets_are_accepted() {
    for s in [
        "10.1.0.0/30",
        "10.1.0.0/31",
        "10.1.0.1/32",
        "fd00::/127",
        "fd00::5/128",
    ] {
        assert!(Pool::new(cfg(s)).is_ok(), "{s}");
    }
    // In a /31 both addresses are hosts, so either may be the gateway.
    let mut c = cfg("10.1.0.0/31");
    c.gateway = Some(ip("10.1.0.0"));
    Pool::new(c).unwrap();
}

#[test]
fn config_deserializes_with_optional_fields_omitted() {
    let c: PoolConfig = serde_json::from_str(r#"{"subnet":"10.1.0.0/16"}"#).unwrap();
    assert_eq!(c, cfg("10.1.0.0/16"));
    let back: PoolConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c);
}
