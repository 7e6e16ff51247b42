//! Pure tests: the JSON berth hands to nft, without running nft.

use berth_firewall::nftables::schema::Nftables;
use berth_firewall::{
    add_network, add_ports, delete_table, full_ruleset, remove_network, remove_ports,
    validate_bridge_name, FirewallError, NetworkRules, PortMapping,
};
use serde_json::{json, Value};

fn net(bridge: &str, subnets: &[&str]) -> NetworkRules {
    NetworkRules {
        bridge: bridge.to_string(),
        subnets: subnets.iter().map(|s| s.parse().unwrap()).collect(),
        internal: false,
        masquerade: true,
        icc: true,
    }
}

fn to_json(batch: &Nftables) -> Value {
    serde_json::to_value(batch).unwrap()
}

/// `(command, set) -> elements` for every element command in a batch.
fn element_cmds(batch: &Nftables) -> Vec<(String, String, Value)> {
    let v = to_json(batch);
    let mut out = Vec::new();
    for cmd in v["nftables"].as_array().unwrap() {
        let (verb, obj) = cmd.as_object().unwrap().iter().next().unwrap();
        if let Some(e) = obj.get("element") {
            out.push((
                verb.clone(),
                e["name"].as_str().unwrap().to_string(),
                e["elem"].clone(),
            ));
        }
    }
    out
}

fn added(batch: &Nftables, set: &str) -> Option<Value> {
    element_cmds(batch)
        .into_iter()
        .find(|(verb, name, _)| verb == "add" && name == set)
        .map(|(_, _, elem)| elem)
}

#[test]
fn full_ruleset_matches_golden() {
    let a = net("br-a", &["10.1.0.0/24", "fd00:1::/64"]);
    let b = NetworkRules {
        internal: true,
        icc: false,
        ..net("br-b", &["10.2.0.0/24"])
    };
    let ports = [
        port("0.0.0.0", 8080, "10.1.0.2:80"),
        port("::", 8080, "[fd00:1::2]:80"),
        port("127.0.0.1", 5432, "10.1.0.3:5432"),
    ];
    let mut got = to_json(&full_ruleset(&[a, b], &ports).unwrap());
    sort_flags(&mut got);
    // BLESS=1 rewrites the golden file after a deliberate change (review the diff).
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/golden/full_ruleset.json"
    );
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
    }
    let mut golden: Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("golden is JSON");
    sort_flags(&mut golden);
    assert_eq!(got, golden);
}

/// The nftables crate keeps `fib` flags in a HashSet: their JSON order changes from run to
/// run, and nft does not care.
fn sort_flags(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if k == "flags" {
                    if let Value::Array(a) = x {
                        a.sort_by_key(|f| f.to_string());
                    }
                }
                sort_flags(x);
            }
        }
        Value::Array(a) => a.iter_mut().for_each(sort_flags),
        _ => {}
    }
}

fn port(ip: &str, host_port: u16, to: &str) -> PortMapping {
    PortMapping {
        proto: berth_ports::Proto::Tcp,
        host_ip: ip.parse().unwrap(),
        host_port,
        target: to.parse().unwrap(),
    }
}

#[test]
fn published_ports_are_map_elements_in_one_batch() {
    let many: Vec<PortMapping> = (9000..10000)
        .map(|p| port("0.0.0.0", p, "10.1.0.2:80"))
        .chain([
            port("127.0.0.1", 5432, "10.1.0.3:5432"),
            port("10.0.0.1", 8443, "10.1.0.3:443"),
            port("::1", 5433, "[fd00::3]:5432"),
            port("::", 8081, "10.1.0.3:80"),
        ])
        .collect();
    let batch = add_ports(&many);
    let cmds = element_cmds(&batch);
    // one element command per map or set, however many ports
    let names: Vec<&str> = cmds.iter().map(|(_, n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "loopback4",
            "ports4_addr",
            "ports4_any_addr",
            "ports4_any_port",
            "ports4_port"
        ]
    );
    assert_eq!(
        added(&batch, "ports4_any_addr")
            .unwrap()
            .as_array()
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        added(&batch, "loopback4"),
        Some(json!([{"concat": ["127.0.0.1", "tcp", 5432]}]))
    );
    assert_eq!(
        added(&batch, "ports4_port"),
        Some(json!([[{"concat": ["10.0.0.1", "tcp", 8443]}, 443]]))
    );
    // loopback and cross-family bindings are the proxy's: not in the kernel maps
    assert!(!port("::1", 5433, "[fd00::3]:5432").in_kernel());
    assert!(!port("::", 8081, "10.1.0.3:80").in_kernel());
    assert!(port("::", 8081, "[fd00::3]:80").in_kernel());
    // but an IPv4 loopback binding has its guard element in the kernel (the daemon must
    // install it: it is what keeps neighbours out under route_localnet)
    assert!(port("127.0.0.1", 5432, "10.1.0.3:5432").has_kernel_state());
    assert!(!port("::1", 5433, "[fd00::3]:5432").has_kernel_state());
    assert!(!port("::", 8081, "10.1.0.3:80").has_kernel_state());
    assert!(port("0.0.0.0", 8081, "10.1.0.3:80").has_kernel_state());
    // removal: add then delete the same elements, in one transaction
    let rm = to_json(&remove_ports(&many));
    let verbs: Vec<&str> = rm["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| {
            c.as_object()
                .unwrap()
                .values()
                .next()
                .unwrap()
                .get("element")
                .is_some()
        })
        .map(|c| c.as_object().unwrap().keys().next().unwrap().as_str())
        .collect();
    assert_eq!(verbs.iter().filter(|v| **v == "add").count(), 5);
    assert_eq!(verbs.iter().filter(|v| **v == "delete").count(), 5);
}

#[test]
fn full_ruleset_without_networks_has_no_element_commands() {
    let batch = full_ruleset(&[], &[]).unwrap();
    assert!(element_cmds(&batch).is_empty());
    let v = to_json(&batch);
    let first: Vec<&Value> = v["nftables"].as_array().unwrap().iter().take(3).collect();
    let table = json!({"family": "inet", "name": "berth"});
    assert_eq!(
        first,
        [
            &json!({"add": {"table": table}}),
            &json!({"delete": {"table": table}}),
            &json!({"add": {"table": table}}),
        ]
    );
}

#[test]
fn add_network_splits_v4_and_v6_subnets() {
    let n = net("br-x", &["172.18.0.0/16", "fd00:dead::/64", "10.9.0.0/24"]);
    let batch = add_network(&n).unwrap();
    assert_eq!(added(&batch, "bridges"), Some(json!(["br-x"])));
    assert_eq!(
        added(&batch, "icc"),
        Some(json!([{"concat": ["br-x", "br-x"]}]))
    );
    assert_eq!(added(&batch, "internal"), None);
    assert_eq!(
        added(&batch, "masq4"),
        Some(json!([
            {"prefix": {"addr": "10.9.0.0", "len": 24}},
            {"prefix": {"addr": "172.18.0.0", "len": 16}},
        ]))
    );
    assert_eq!(
        added(&batch, "masq6"),
        Some(json!([{"prefix": {"addr": "fd00:dead::", "len": 64}}]))
    );
    // Only elements: the table/rules must already exist.
    assert_eq!(
        element_cmds(&batch).len(),
        to_json(&batch)["nftables"].as_array().unwrap().len()
    );
}

#[test]
fn subnets_are_normalized_for_interval_sets() {
    let n = net("br-x", &["10.1.0.7/24", "10.1.0.0/24", "10.1.0.128/25"]);
    let batch = add_network(&n).unwrap();
    assert_eq!(
        added(&batch, "masq4"),
        Some(json!([{"prefix": {"addr": "10.1.0.0", "len": 24}}]))
    );
}

#[test]
fn internal_network_is_not_masqueraded() {
    let n = NetworkRules {
        internal: true,
        ..net("br-int", &["10.3.0.0/24", "fd00:3::/64"])
    };
    let batch = add_network(&n).unwrap();
    assert_eq!(added(&batch, "internal"), Some(json!(["br-int"])));
    assert_eq!(added(&batch, "bridges"), Some(json!(["br-int"])));
    assert_eq!(added(&batch, "masq4"), None);
    assert_eq!(added(&batch, "masq6"), None);
}

#[test]
fn masquerade_false_is_not_masqueraded() {
    let n = NetworkRules {
        masquerade: false,
        ..net("br-nomasq", &["10.4.0.0/24", "fd00:4::/64"])
    };
    let batch = add_network(&n).unwrap();
    assert_eq!(added(&batch, "masq4"), None);
    assert_eq!(added(&batch, "masq6"), None);
    assert_eq!(added(&batch, "internal"), None);
}

#[test]
fn icc_false_has_no_icc_element() {
    let n = NetworkRules {
        icc: false,
        ..net("br-noicc", &["10.5.0.0/24"])
    };
    let batch = add_network(&n).unwrap();
    assert_eq!(added(&batch, "icc"), None);
    assert_eq!(added(&batch, "bridges"), Some(json!(["br-noicc"])));
}

#[test]
fn remove_network_adds_then_deletes_everything_the_network_could_own() {
    // Flags must not matter for removal: internal + icc=false still clears icc and masq.
    let n = NetworkRules {
        internal: true,
        icc: false,
        masquerade: false,
        ..net("br-r", &["10.6.0.0/24", "fd00:6::/64"])
    };
    let cmds = element_cmds(&remove_network(&n).unwrap());
    let sets = [
        "bridges", "hairpin4", "hairpin6", "icc", "internal", "masq4", "masq6",
    ];
    let adds: Vec<_> = cmds.iter().filter(|c| c.0 == "add").collect();
    let deletes: Vec<_> = cmds.iter().filter(|c| c.0 == "delete").collect();
    assert_eq!(adds.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(), sets);
    assert_eq!(
        deletes.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
        sets
    );
    for (a, d) in adds.iter().zip(&deletes) {
        assert_eq!(a.2, d.2, "delete must undo exactly what was added");
    }
    // Every add precedes every delete, so a present element is really gone.
    let last_add = cmds.iter().rposition(|c| c.0 == "add").unwrap();
    let first_delete = cmds.iter().position(|c| c.0 == "delete").unwrap();
    assert!(last_add < first_delete);
    let v = to_json(&remove_network(&n).unwrap());
    assert_eq!(
        v["nftables"][0],
        json!({"add": {"table": {"family": "inet", "name": "berth"}}})
    );
}

#[test]
fn delete_table_is_add_then_delete() {
    let table = json!({"family": "inet", "name": "berth"});
    assert_eq!(
        to_json(&delete_table()),
        json!({"nftables": [{"add": {"table": table}}, {"delete": {"table": table}}]})
    );
}

#[test]
fn bridge_names_are_validated() {
    for ok in [
        "br0",
        "br-0123456789ab",
        "a",
        "docker_gwbridge",
        "x.y-z_1",
        "123456789012345",
    ] {
        validate_bridge_name(ok).unwrap_or_else(|e| panic!("{ok:?} rejected: {e}"));
    }
    for bad in [
        "",
        "1234567890123456",
        ".",
        "..",
        "br 0",
        "br\"0",
        "br;0",
        "br*",
        "br/0",
        "br\\0",
        "br@0",
        "br\n",
        "brü",
    ] {
        let err = validate_bridge_name(bad).expect_err(bad);
        assert!(matches!(err, FirewallError::InvalidBridgeName { .. }));
        assert!(err.to_string().starts_with("invalid bridge name"), "{err}");
    }
}

#[test]
fn every_generator_rejects_bad_bridges() {
    let bad = net("br;drop", &["10.7.0.0/24"]);
    assert!(matches!(
        add_network(&bad),
        Err(FirewallError::InvalidBridgeName { .. })
    ));
    assert!(matches!(
        remove_network(&bad),
        Err(FirewallError::InvalidBridgeName { .. })
    ));
    assert!(matches!(
        full_ruleset(&[net("br-ok", &[]), bad], &[]),
        Err(FirewallError::InvalidBridgeName { .. })
    ));
}

#[test]
fn full_ruleset_rejects_duplicate_bridges() {
    let err = full_ruleset(
        &[net("br-d", &["10.8.0.0/24"]), net("br-d", &["10.9.0.0/24"])],
        &[],
    )
    .unwrap_err();
    assert!(matches!(err, FirewallError::DuplicateBridge { ref bridge } if bridge == "br-d"));
}

#[test]
fn full_ruleset_names_overlapping_masqueraded_networks() {
    let err = full_ruleset(
        &[
            net("br-big", &["10.0.0.0/8"]),
            net("br-mid", &["192.168.0.0/24"]),
            net("br-small", &["10.20.0.0/16"]),
        ],
        &[],
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FirewallError::OverlappingSubnets { .. }));
    assert!(msg.contains("br-big") && msg.contains("br-small"), "{msg}");

    // Non-masqueraded subnets never reach the interval sets, so they cannot clash there.
    let internal = NetworkRules {
        internal: true,
        ..net("br-int", &["10.20.0.0/16"])
    };
    full_ruleset(&[net("br-big", &["10.0.0.0/8"]), internal], &[]).unwrap();
}
