//! berth's batches against the real kernel, each test in its own network namespace.

mod common;

use berth_firewall::nftables::types::{NfChainPolicy, NfChainType, NfHook};
use berth_firewall::{
    add_network, delete_table, full_ruleset, remove_network, FirewallError, NetworkRules, Nft,
};
use common::{chains, elements, network, rules, set_of, Netns};

const SETS: [&str; 5] = ["bridges", "internal", "icc", "masq4", "masq6"];

fn samples() -> Vec<NetworkRules> {
    vec![
        network("br-a", &["10.1.0.0/24", "fd00:1::/64"]),
        NetworkRules {
            internal: true,
            ..network("br-b", &["10.2.0.0/24"])
        },
        NetworkRules {
            icc: false,
            masquerade: false,
            ..network("br-c", &["10.3.0.0/24"])
        },
    ]
}

fn snapshot(nft: &Nft) -> Vec<(String, Vec<String>)> {
    let table = nft.list_table().unwrap().expect("table exists");
    SETS.iter()
        .map(|s| (s.to_string(), elements(&table, s).into_iter().collect()))
        .collect()
}

/// The fixed skeleton: 6 forward/postrouting rules, hairpin (v4, v6), published-port forward accept,
/// the loopback guard, 4 DNAT rules in each of prerouting and output, and 7 for the overlay
/// mesh (4 accepts and 2 drops in forward, no NAT in postrouting), and the established-flows
/// accept.
const RULES: usize = 31;

#[test]
fn full_ruleset_applies_and_lists() {
    require_root!();
    let ns = Netns::new("full");
    let nft = ns.nft();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();

    let table = nft.list_table().unwrap().expect("table exists");
    assert_eq!(
        elements(&table, "bridges"),
        set_of(&["br-a", "br-b", "br-c"])
    );
    assert_eq!(elements(&table, "internal"), set_of(&["br-b"]));
    assert_eq!(
        elements(&table, "icc"),
        set_of(&["br-a . br-a", "br-b . br-b"])
    );
    assert_eq!(elements(&table, "masq4"), set_of(&["10.1.0.0/24"]));
    assert_eq!(elements(&table, "masq6"), set_of(&["fd00:1::/64"]));

    let hooks: Vec<_> = chains(&table)
        .iter()
        .map(|c| (c.name.to_string(), c._type, c.hook, c.prio, c.policy))
        .collect();
    let accept = Some(NfChainPolicy::Accept);
    assert_eq!(
        hooks,
        [
            (
                "forward".into(),
                Some(NfChainType::Filter),
                Some(NfHook::Forward),
                Some(0),
                accept
            ),
            (
                "postrouting".into(),
                Some(NfChainType::NAT),
                Some(NfHook::Postrouting),
                Some(100),
                accept
            ),
            (
                "raw_prerouting".into(),
                Some(NfChainType::Filter),
                Some(NfHook::Prerouting),
                Some(-300),
                accept
            ),
            (
                "prerouting".into(),
                Some(NfChainType::NAT),
                Some(NfHook::Prerouting),
                Some(-100),
                accept
            ),
            (
                "output".into(),
                Some(NfChainType::NAT),
                Some(NfHook::Output),
                Some(-100),
                accept
            ),
            (
                "mark_output".into(),
                Some(NfChainType::Route),
                Some(NfHook::Output),
                Some(-150),
                accept
            ),
            (
                "mark_prerouting".into(),
                Some(NfChainType::Filter),
                Some(NfHook::Prerouting),
                Some(-150),
                accept
            ),
        ]
    );
    assert_eq!(rules(&table).len(), RULES);
}

#[test]
fn full_ruleset_twice_replaces_atomically() {
    require_root!();
    let ns = Netns::new("twice");
    let nft = ns.nft();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();
    assert_eq!(rules(&nft.list_table().unwrap().unwrap()).len(), RULES);

    let only = network("br-z", &["10.26.0.0/16"]);
    nft.apply(&full_ruleset(std::slice::from_ref(&only), &[]).unwrap())
        .unwrap();
    let table = nft.list_table().unwrap().unwrap();
    assert_eq!(elements(&table, "bridges"), set_of(&["br-z"]));
    assert_eq!(elements(&table, "internal"), set_of(&[]));
    assert_eq!(elements(&table, "masq4"), set_of(&["10.26.0.0/16"]));
    assert_eq!(elements(&table, "masq6"), set_of(&[]));
    assert_eq!(rules(&table).len(), RULES, "rules replaced, not appended");
}

#[test]
fn add_then_remove_leaves_sets_as_before() {
    require_root!();
    let ns = Netns::new("addrm");
    let nft = ns.nft();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();
    let before = snapshot(&nft);

    let d = network("br-d", &["10.4.0.0/24", "fd00:4::/64"]);
    nft.apply(&add_network(&d).unwrap()).unwrap();
    nft.apply(&add_network(&d).unwrap()).unwrap(); // adding twice is harmless
    let table = nft.list_table().unwrap().unwrap();
    assert!(elements(&table, "bridges").contains("br-d"));
    assert!(elements(&table, "icc").contains("br-d . br-d"));
    assert!(elements(&table, "masq4").contains("10.4.0.0/24"));
    assert!(elements(&table, "masq6").contains("fd00:4::/64"));

    nft.apply(&remove_network(&d).unwrap()).unwrap();
    assert_eq!(snapshot(&nft), before);

    // Removing a network that is part of the start-up ruleset works the same way.
    for n in samples() {
        nft.apply(&remove_network(&n).unwrap()).unwrap();
    }
    assert!(snapshot(&nft).iter().all(|(_, elems)| elems.is_empty()));
    assert_eq!(rules(&nft.list_table().unwrap().unwrap()).len(), RULES);
}

#[test]
fn removing_an_absent_network_succeeds() {
    require_root!();
    let ns = Netns::new("absent");
    let nft = ns.nft();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();
    let before = snapshot(&nft);

    let ghost = network("br-ghost", &["10.9.0.0/24", "fd00:9::/64"]);
    nft.apply(&remove_network(&ghost).unwrap()).unwrap();
    nft.apply(&remove_network(&ghost).unwrap()).unwrap();
    assert_eq!(snapshot(&nft), before);

    let a = &samples()[0];
    nft.apply(&remove_network(a).unwrap()).unwrap();
    nft.apply(&remove_network(a).unwrap()).unwrap();
    assert!(!elements(&nft.list_table().unwrap().unwrap(), "bridges").contains("br-a"));
}

#[test]
fn removing_without_a_table_succeeds_and_leaves_only_empty_sets() {
    require_root!();
    let ns = Netns::new("notable");
    let nft = ns.nft();
    nft.apply(&remove_network(&samples()[0]).unwrap()).unwrap();
    let table = nft.list_table().unwrap().expect("skeleton table");
    assert!(
        chains(&table).is_empty(),
        "no chains, so no effect on traffic"
    );
    assert!(snapshot(&nft).iter().all(|(_, elems)| elems.is_empty()));
}

#[test]
fn adding_without_a_table_fails_loudly() {
    require_root!();
    let ns = Netns::new("addnotable");
    let err = ns
        .nft()
        .apply(&add_network(&samples()[0]).unwrap())
        .unwrap_err();
    assert!(matches!(err, FirewallError::Rejected { .. }), "{err}");
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
}

#[test]
fn delete_table_is_idempotent_and_list_reports_absence() {
    require_root!();
    let ns = Netns::new("delete");
    let nft = ns.nft();
    assert!(nft.list_table().unwrap().is_none());
    nft.apply(&delete_table()).unwrap();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();
    assert!(nft.list_table().unwrap().is_some());
    nft.apply(&delete_table()).unwrap();
    nft.apply(&delete_table()).unwrap();
    assert!(nft.list_table().unwrap().is_none());
}

#[test]
fn rejected_batches_report_nft_stderr_and_change_nothing() {
    require_root!();
    let ns = Netns::new("reject");
    let nft = ns.nft();
    nft.apply(&full_ruleset(&samples(), &[]).unwrap()).unwrap();
    let before = snapshot(&nft);
    // Overlaps br-a's masqueraded 10.1.0.0/24: the interval set refuses it, and
    // the whole batch (including the bridge element) is rolled back.
    let clash = network("br-clash", &["10.1.0.0/16"]);
    let err = nft.apply(&add_network(&clash).unwrap()).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, FirewallError::Rejected { .. }), "{msg}");
    assert!(msg.starts_with("nft rejected berth's rules: "), "{msg}");
    assert!(msg.contains("overlap"), "{msg}");
    assert_eq!(snapshot(&nft), before);
}

#[test]
fn missing_nft_is_reported_as_not_installed() {
    // Needs no root: the program is never found.
    let nft = Nft {
        program: "/nonexistent/berth-test/nft".into(),
        args: vec![],
    };
    let err = nft.apply(&delete_table()).unwrap_err();
    assert!(matches!(err, FirewallError::NotInstalled), "{err}");
    assert_eq!(
        err.to_string(),
        "nft is not installed: install the nftables package"
    );
    assert!(matches!(nft.list_table(), Err(FirewallError::NotInstalled)));
}
