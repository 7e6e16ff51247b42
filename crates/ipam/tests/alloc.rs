//! Dynamic and static allocation, release, edge-sized subnets, IPv6, serde.

use berth_ipam::{ErrorKind, IpamError, Pool, PoolConfig, Reserved};
use ipnet::IpNet;
use std::net::{IpAddr, Ipv6Addr};

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn pool(subnet: &str) -> Pool {
    Pool::new(PoolConfig::new(net(subnet))).unwrap()
}

fn pool_with(subnet: &str, f: impl FnOnce(&mut PoolConfig)) -> Pool {
    let mut c = PoolConfig::new(net(subnet));
    f(&mut c);
    Pool::new(c).unwrap()
}

fn alloc_n(p: &mut Pool, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| p.allocate(&format!("c{i}")).unwrap().to_string())
        .collect()
}

#[test]
fn allocates_serially_skipping_network_and_gateway() {
    let mut p = pool("10.1.0.0/24");
    assert_eq!(alloc_n(&mut p, 3), ["10.1.0.2", "10.1.0.3", "10.1.0.4"]);
    assert_eq!(p.owner_of(ip("10.1.0.3")), Some("c1"));
    assert_eq!(p.owner_of(ip("10.1.0.9")), None);
}

#[test]
fn skips_explicit_gateway_and_aux_addresses() {
    let mut p = pool_with("10.1.0.0/24", |c| {
        c.gateway = Some(ip("10.1.0.3"));
        c.aux_addresses.insert("printer".into(), ip("10.1.0.4"));
    });
    assert_eq!(alloc_n(&mut p, 3), ["10.1.0.1", "10.1.0.2", "10.1.0.5"]);
    assert_eq!(
        p.reserved_reason(ip("10.1.0.4")),
        Some(Reserved::Auxiliary("printer".into()))
    );
}

#[test]
fn freed_address_is_not_reused_before_the_pool_was_walked_once() {
    let mut p = pool("10.1.0.0/29"); // hosts .2 .. .6 after gateway .1
    let a = p.allocate("a").unwrap();
    assert!(p.release(a));
    assert_ne!(p.allocate("b").unwrap(), a, "immediate reuse");
    assert_eq!(alloc_n(&mut p, 3), ["10.1.0.4", "10.1.0.5", "10.1.0.6"]);
    // Now the walk wraps and reaches the freed address.
    assert_eq!(p.allocate("c").unwrap(), a);
    let e = p.allocate("d").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Exhausted);
}

#[test]
fn wraps_to_addresses_freed_behind_the_cursor() {
    let mut p = pool("10.1.0.0/29");
    alloc_n(&mut p, 5);
    assert!(p.release(ip("10.1.0.4")));
    assert!(p.release(ip("10.1.0.2")));
    assert_eq!(p.allocate("x").unwrap(), ip("10.1.0.2"));
    assert_eq!(p.allocate("y").unwrap(), ip("10.1.0.4"));
}

#[test]
fn exhaustion_message_names_the_pool() {
    let mut p = pool("10.1.0.0/30");
    assert_eq!(p.allocate("a").unwrap(), ip("10.1.0.2"));
    let e = p.allocate("b").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no available IP addresses on this pool: 10.1.0.0/30 (every address of the subnet is in use or reserved)"
    );
    assert_eq!(p.available(), 0);

    let mut p = pool_with("10.1.0.0/24", |c| c.ip_range = Some(net("10.1.0.0/30")));
    assert_eq!(p.allocate("a").unwrap(), ip("10.1.0.2"));
    assert_eq!(p.allocate("a").unwrap(), ip("10.1.0.3"));
    let e = p.allocate("a").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no available IP addresses on this pool: 10.1.0.0/24 (every address of the ip-range 10.1.0.0/30 is in use or reserved)"
    );
    assert_eq!(
        e,
        IpamError::Exhausted {
            subnet: net("10.1.0.0/24"),
            range: Some(net("10.1.0.0/30"))
        }
    );
}

#[test]
fn ip_range_limits_dynamic_allocation_only() {
    let mut p = pool_with("10.1.0.0/16", |c| c.ip_range = Some(net("10.1.1.0/30")));
    assert_eq!(p.available(), 4);
    assert_eq!(
        alloc_n(&mut p, 4),
        ["10.1.1.0", "10.1.1.1", "10.1.1.2", "10.1.1.3"]
    );
    p.allocate("x").unwrap_err();
    // `--ip` may still pick outside the range, as Docker allows.
    p.allocate_static(ip("10.1.7.7"), "s").unwrap();
    assert_eq!(p.owner_of(ip("10.1.7.7")), Some("s"));
}

#[test]
fn static_allocation_rules() {
    let mut p = pool_with("10.1.0.0/24", |c| {
        c.aux_addresses.insert("host1".into(), ip("10.1.0.50"));
    });
    p.allocate_static(ip("10.1.0.7"), "web").unwrap();
    // Same owner asking again is a harmless retry.
    p.allocate_static(ip("10.1.0.7"), "web").unwrap();

    let e = p.allocate_static(ip("10.1.0.7"), "db").unwrap_err();
    assert_eq!(
        e.to_string(),
        "Address already in use (10.1.0.7 is held by web)"
    );
    assert_eq!(e.kind(), ErrorKind::Conflict);

    let e = p.allocate_static(ip("10.1.0.1"), "db").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("10.1.0.1 is reserved (gateway) in subnet 10.1.0.0/24"));
    assert_eq!(e.kind(), ErrorKind::Conflict);
    for (addr, reason) in [
        ("10.1.0.0", Reserved::Network),
        ("10.1.0.255", Reserved::Broadcast),
        ("10.1.0.50", Reserved::Auxiliary("host1".into())),
    ] {
        assert_eq!(
            p.allocate_static(ip(addr), "db").unwrap_err(),
            IpamError::AddressReserved {
                ip: ip(addr),
                subnet: net("10.1.0.0/24"),
                reason
            }
        );
    }

    let e = p.allocate_static(ip("10.9.9.9"), "db").unwrap_err();
    assert!(e
        .to_string()
        .starts_with("10.9.9.9 is outside subnet 10.1.0.0/24"));
    assert_eq!(e.kind(), ErrorKind::InvalidInput);

    let e = p.allocate_static(ip("fd00::7"), "db").unwrap_err();
    assert!(matches!(e, IpamError::FamilyMismatch { .. }));
    assert!(e
        .to_string()
        .starts_with("address fd00::7 is IPv6 but subnet 10.1.0.0/24 is IPv4"));
}

#[test]
fn static_allocation_does_not_move_the_cursor_and_is_skipped() {
    let mut p = pool("10.1.0.0/24");
    p.allocate_static(ip("10.1.0.3"), "s").unwrap();
    p.allocate_static(ip("10.1.0.100"), "s").unwrap();
    assert_eq!(alloc_n(&mut p, 2), ["10.1.0.2", "10.1.0.4"]);
}

#[test]
fn dynamic_address_cannot_be_taken_statically_by_someone_else() {
    let mut p = pool("10.1.0.0/24");
    let a = p.allocate("one").unwrap();
    assert!(matches!(
        p.allocate_static(a, "two"),
        Err(IpamError::AddressInUse { .. })
    ));
}

#[test]
fn release_and_release_owner() {
    let mut p = pool("10.1.0.0/24");
    let a = p.allocate("x").unwrap();
    let b = p.allocate("y").unwrap();
    p.allocate_static(ip("10.1.0.9"), "x").unwrap();
    assert!(!p.release(ip("10.1.0.77")));
    assert_eq!(p.release_owner("x"), vec![a, ip("10.1.0.9")]);
    assert_eq!(p.release_owner("x"), Vec::<IpAddr>::new());
    assert_eq!(p.allocated().collect::<Vec<_>>(), vec![(b, "y")]);
    assert!(p.release(b));
    assert!(!p.release(b));
    assert_eq!(p.allocated().count(), 0);
}

#[test]
fn contains_is_about_the_subnet() {
    let p = pool_with("10.1.0.0/16", |c| c.ip_range = Some(net("10.1.1.0/24")));
    assert!(p.contains(ip("10.1.200.1")));
    assert!(!p.contains(ip("10.2.0.1")));
    assert!(!p.contains(ip("fd00::1")));
}

#[test]
fn available_counts_dynamic_addresses_only() {
    let mut p = pool("10.1.0.0/24");
    assert_eq!(p.available(), 253);
    p.allocate("a").unwrap();
    assert_eq!(p.available(), 252);

    let mut p = pool_with("10.1.0.0/16", |c| {
        c.ip_range = Some(net("10.1.1.0/24"));
        c.gateway = Some(ip("10.1.1.1"));
        c.aux_addresses.insert("in".into(), ip("10.1.1.2"));
        c.aux_addresses.insert("out".into(), ip("10.1.9.9"));
    });
    assert_eq!(p.available(), 254);
    p.allocate_static(ip("10.1.5.5"), "s").unwrap();
    assert_eq!(p.available(), 254);
    p.allocate_static(ip("10.1.1.5"), "s").unwrap();
    assert_eq!(p.available(), 253);
}

#[test]
fn slash_31_has_two_hosts_one_of_them_the_gateway() {
    let mut p = pool("10.1.0.0/31");
    assert_eq!(p.gateway(), ip("10.1.0.1"));
    assert_eq!(p.available(), 1);
    assert_eq!(p.allocate("a").unwrap(), ip("10.1.0.0"));
    assert_eq!(p.allocate("b").unwrap_err().kind(), ErrorKind::Exhausted);

    let mut p = pool_with("10.1.0.0/31", |c| c.gateway = Some(ip("10.1.0.0")));
    assert_eq!(p.allocate("a").unwrap(), ip("10.1.0.1"));
}

#[test]
fn slash_32_has_no_dynamic_address() {
    let mut p = pool("10.1.0.5/32");
    assert_eq!(p.gateway(), ip("10.1.0.5"));
    assert_eq!(p.available(), 0);
    let e = p.allocate("a").unwrap_err();
    assert_eq!(
        e.to_string(),
        "no available IP addresses on this pool: 10.1.0.5/32 (every address of the subnet is in use or reserved)"
    );
    assert!(matches!(
        p.allocate_static(ip("10.1.0.5"), "a"),
        Err(IpamError::AddressReserved {
            reason: Reserved::Gateway,
            ..
        })
    ));
}

#[test]
fn top_of_address_space_does_not_overflow() {
    let mut p = pool("255.255.255.252/30");
    assert_eq!(p.allocate("a").unwrap(), ip("255.255.255.254"));
    p.allocate("a").unwrap_err();
    let mut p = pool_with("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124", |c| {
        c.ip_range = Some(net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"))
    });
    assert_eq!(
        p.allocate("a").unwrap(),
        ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe")
    );
    assert_eq!(
        p.allocate("a").unwrap(),
        ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
    );
    p.allocate("a").unwrap_err();
}

#[test]
fn ipv6_skips_anycast_and_has_no_broadcast() {
    let mut p = pool("fd00::/64");
    assert_eq!(p.allocate("a").unwrap(), ip("fd00::2"));
    assert!(matches!(
        p.allocate_static(ip("fd00::"), "a"),
        Err(IpamError::AddressReserved {
            reason: Reserved::Network,
            ..
        })
    ));
    p.allocate_static(ip("fd00::ffff:ffff:ffff:ffff"), "b")
        .unwrap();

    let mut p = pool_with("fd00::/64", |c| {
        c.ip_range = Some(net("fd00::ffff:ffff:ffff:fffc/126"))
    });
    assert_eq!(
        alloc_n(&mut p, 4),
        [
            "fd00::ffff:ffff:ffff:fffc",
            "fd00::ffff:ffff:ffff:fffd",
            "fd00::ffff:ffff:ffff:fffe",
            "fd00::ffff:ffff:ffff:ffff"
        ]
    );
    p.allocate("x").unwrap_err();
}

#[test]
fn ipv6_tiny_subnets() {
    let mut p = pool("fd00::/127");
    assert_eq!(p.gateway(), ip("fd00::1"));
    assert_eq!(p.allocate("a").unwrap(), ip("fd00::"));
    assert_eq!(p.allocate("a").unwrap_err().kind(), ErrorKind::Exhausted);
    let mut p = pool("fd00::9/128");
    assert_eq!(p.available(), 0);
    p.allocate("a").unwrap_err();
}

#[test]
fn huge_ipv6_pools_are_never_enumerated() {
    let p = pool("fd00::/64");
    assert_eq!(p.available(), (1u128 << 64) - 2);
    let mut p = pool("::/0");
    assert_eq!(p.available(), u128::MAX - 1);
    assert_eq!(p.allocate("a").unwrap(), ip("::2"));
    assert_eq!(p.available(), u128::MAX - 2);

    // Walk past a long run of static holders: cost follows the run, not 2^64.
    let mut p = pool("fd00:1::/48");
    let base = u128::from("fd00:1::".parse::<Ipv6Addr>().unwrap());
    for i in 0..5_000u128 {
        let a = IpAddr::V6(Ipv6Addr::from(base + 2 + i));
        p.allocate_static(a, "s").unwrap();
    }
    assert_eq!(p.allocate("a").unwrap(), ip("fd00:1::138a"));
    for _ in 0..5_000 {
        p.allocate("a").unwrap();
    }
    assert_eq!(p.allocated().count(), 10_001);
}

#[test]
fn serde_round_trip_preserves_behaviour() {
    let mut p = pool_with("10.1.0.0/24", |c| {
        c.ip_range = Some(net("10.1.0.0/28"));
        c.aux_addresses.insert("h".into(), ip("10.1.0.4"));
    });
    alloc_n(&mut p, 5);
    p.release(ip("10.1.0.3"));
    p.allocate_static(ip("10.1.0.200"), "s").unwrap();
    let json = serde_json::to_string(&p).unwrap();
    let mut q: Pool = serde_json::from_str(&json).unwrap();
    assert_eq!(q, p);
    for i in 0..12 {
        assert_eq!(q.allocate(&i.to_string()), p.allocate(&i.to_string()));
    }
}

#[test]
fn stored_cursor_outside_the_range_is_tolerated() {
    let p = pool_with("10.1.0.0/24", |c| c.ip_range = Some(net("10.1.0.16/28")));
    let mut v = serde_json::to_value(&p).unwrap();
    v["last_allocated"] = serde_json::json!("10.1.0.200");
    let mut q: Pool = serde_json::from_value(v.clone()).unwrap();
    assert_eq!(q.allocate("a").unwrap(), ip("10.1.0.16"));
    v["last_allocated"] = serde_json::json!("fd00::3");
    let mut q: Pool = serde_json::from_value(v).unwrap();
    assert_eq!(q.allocate("a").unwrap(), ip("10.1.0.16"));
}

#[test]
fn persistable_keeps_the_cursor_and_drops_allocations() {
    use berth_ipam::{Pool, PoolConfig};
    let mut p = Pool::new(PoolConfig::new("10.7.0.0/24".parse().unwrap())).unwrap();
    let a = p.allocate("x").unwrap();
    let b = p.allocate("y").unwrap();
    p.release(b);
    let mut stored = p.persistable();
    assert_eq!(stored.allocated().count(), 0);
    // Rebuilt from the owners' records, it allocates exactly as the original does.
    stored.allocate_static(a, "x").unwrap();
    assert_eq!(stored.allocate("z").unwrap(), p.allocate("z").unwrap());
    assert_ne!(
        stored.allocate("w").unwrap(),
        b,
        "the freed address is not reused at once"
    );
}

#[test]
fn a_resumed_walk_continues_after_the_given_address() {
    let mut p = pool("10.1.0.0/24");
    p.allocate_static(ip("10.1.0.7"), "old").unwrap();
    p.resume_after(ip("10.1.0.7"));
    assert_eq!(p.allocate("new").unwrap(), ip("10.1.0.8"));
    // Outside the subnet: ignored, the walk goes on from where it was.
    p.resume_after(ip("192.168.0.1"));
    assert_eq!(p.allocate("next").unwrap(), ip("10.1.0.9"));
}
