use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, Query, ResponseCode};
use hickory_proto::rr::{Name, RData, RecordType};
use proptest::prelude::*;

use crate::*;

fn net(id: &str, name: &str, internal: bool) -> Network {
    Network {
        id: id.into(),
        name: name.into(),
        internal,
        names: id != "bridge",
    }
}

fn sandbox(id: &str, name: &str, atts: &[(&str, &[&str], u8)]) -> Sandbox {
    Sandbox {
        id: format!("{id:0<64}").into(),
        name: name.into(),
        hostname: format!("{id:0<12}"),
        upstreams: vec![],
        ports: vec![(80, Proto::Tcp), (53, Proto::Udp)],
        in_service: true,
        links: vec![],
        attachments: atts
            .iter()
            .map(|(n, aliases, host)| Attachment {
                network: (*n).into(),
                aliases: aliases.iter().map(|a| a.to_string()).collect(),
                v4: Some(Ipv4Addr::new(10, subnet(n), 0, *host)),
                v6: (*n == "dev").then(|| Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, *host as u16)),
            })
            .collect(),
    }
}

fn subnet(n: &str) -> u8 {
    match n {
        "dev" => 1,
        "prod" => 2,
        "back" => 3,
        _ => 4,
    }
}

fn upstream() -> SocketAddr {
    "192.0.2.53:53".parse().unwrap()
}

/// dev: es (alias search), web; prod: es2 and es3 (both alias es), web (alias www);
/// back (internal): db; bridge (no names): old.
fn world() -> Index {
    let mut ix = Index::new(vec![upstream()], Services::parse("http 80/tcp www\n"));
    ix.set_network(net("dev", "dev", false));
    ix.set_network(net("prod", "prod", false));
    ix.set_network(net("back", "back", true));
    ix.set_network(net("bridge", "bridge", false));
    ix.upsert_sandbox(sandbox("a", "es", &[("dev", &["search"], 2)]));
    ix.upsert_sandbox(sandbox(
        "b",
        "web",
        &[("dev", &[], 3), ("prod", &["www"], 3)],
    ));
    ix.upsert_sandbox(sandbox("c", "es2", &[("prod", &["es"], 4)]));
    ix.upsert_sandbox(sandbox("d", "es3", &[("prod", &["es"], 5)]));
    ix.upsert_sandbox(sandbox("e", "db", &[("back", &[], 6)]));
    ix.upsert_sandbox(sandbox("f", "old", &[("bridge", &[], 7)]));
    ix
}

fn from(n: &str, host: u8) -> Asker<'_> {
    Asker::Network {
        network: n,
        source: IpAddr::V4(Ipv4Addr::new(10, subnet(n), 0, host)),
    }
}

fn query(name: &str, t: RecordType) -> Vec<u8> {
    query_with(name, t, None)
}

fn query_with(name: &str, t: RecordType, edns: Option<u16>) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
    if let Some(size) = edns {
        let mut e = Edns::new();
        e.set_max_payload(size);
        m.set_edns(e);
    }
    m.to_vec().unwrap()
}

fn ask(ix: &Index, who: Asker<'_>, name: &str, t: RecordType) -> Message {
    match answer(ix, who, &query(name, t), false) {
        Reply::Answer(b) => Message::from_vec(&b).unwrap(),
        other => panic!("{name}: expected an answer, got {other:?}"),
    }
}

fn addrs(m: &Message) -> Vec<String> {
    m.answers
        .iter()
        .map(|r| match &r.data {
            RData::A(a) => a.0.to_string(),
            RData::AAAA(a) => a.0.to_string(),
            RData::PTR(p) => p.0.to_string(),
            RData::SRV(s) => format!("{} {}", s.port, s.target),
            d => format!("{d:?}"),
        })
        .collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

#[test]
fn names_resolve_only_on_shared_networks() {
    let ix = world();
    // web is on dev and prod: it sees es (dev) — the network the query came in on first.
    let m = ask(&ix, from("dev", 3), "es.", RecordType::A);
    assert_eq!(addrs(&m), ["10.1.0.2"]);
    assert!(m.metadata.authoritative);
    assert_eq!(m.answers[0].ttl, TTL);
    // Asked on prod, `es` is prod's alias.
    let m = ask(&ix, from("prod", 3), "es.", RecordType::A);
    assert_eq!(sorted(addrs(&m)), ["10.2.0.4", "10.2.0.5"]);
    // es (dev only) cannot see prod's names: they go upstream.
    for n in ["es2.", "www.", "db.", "old."] {
        assert_eq!(
            answer(&ix, from("dev", 2), &query(n, RecordType::A), false),
            Reply::Forward(Arc::from(vec![upstream()])),
            "{n}"
        );
    }
    // The alias `search` exists on dev only.
    assert_eq!(
        addrs(&ask(&ix, from("dev", 3), "search.", RecordType::A)),
        ["10.1.0.2"]
    );
    assert!(matches!(
        answer(
            &ix,
            from("prod", 4),
            &query("search.", RecordType::A),
            false
        ),
        Reply::Forward(_)
    ));
}

#[test]
fn case_hostname_short_id_and_network_suffix() {
    let ix = world();
    for n in [
        "ES.",
        "Es.Dev.",
        "a00000000000.",
        "a00000000000.dev.",
        "es.dev",
    ] {
        assert_eq!(
            addrs(&ask(&ix, from("dev", 3), n, RecordType::A)),
            ["10.1.0.2"],
            "{n}"
        );
    }
    // NAME.NETWORK needs the network to be one of the asker's.
    assert!(matches!(
        answer(
            &ix,
            from("prod", 4),
            &query("es.dev.", RecordType::A),
            false
        ),
        Reply::Forward(_)
    ));
    // The question keeps the asker's spelling.
    let m = ask(&ix, from("dev", 3), "ES.", RecordType::A);
    assert_eq!(m.answers[0].name.to_ascii(), "ES.");
}

#[test]
fn several_holders_rotate() {
    let ix = world();
    let first: Vec<_> = (0..4)
        .map(|_| addrs(&ask(&ix, from("prod", 3), "es.", RecordType::A))[0].clone())
        .collect();
    assert!(first.contains(&"10.2.0.4".to_string()) && first.contains(&"10.2.0.5".to_string()));
}

#[test]
fn nodata_is_not_nxdomain() {
    let ix = world();
    let m = ask(&ix, from("prod", 3), "es.", RecordType::AAAA);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    let m = ask(&ix, from("prod", 3), "es.", RecordType::MX);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    let m = ask(&ix, from("dev", 3), "es.", RecordType::AAAA);
    assert_eq!(addrs(&m), ["fd00::2"]);
}

#[test]
fn internal_only_sandboxes_get_refused_outside_names() {
    let ix = world();
    let m = ask(&ix, from("back", 6), "example.com.", RecordType::A);
    assert_eq!(m.metadata.response_code, ResponseCode::Refused);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(
        addrs(&ask(&ix, from("back", 6), "db.", RecordType::A)),
        ["10.3.0.6"]
    );
}

#[test]
fn default_bridge_has_no_names_but_forwards() {
    let ix = world();
    assert!(matches!(
        answer(&ix, from("bridge", 7), &query("old.", RecordType::A), false),
        Reply::Forward(_)
    ));
    assert!(ix.names("bridge").is_empty());
}

#[test]
fn own_upstreams_replace_the_daemons() {
    let mut ix = world();
    let mut s = sandbox("g", "g", &[("dev", &[], 9)]);
    let mine: SocketAddr = "198.51.100.1:53".parse().unwrap();
    s.upstreams = vec![mine];
    ix.upsert_sandbox(s);
    assert_eq!(
        answer(
            &ix,
            from("dev", 9),
            &query("example.org.", RecordType::A),
            false
        ),
        Reply::Forward(Arc::from(vec![mine]))
    );
}

#[test]
fn host_sees_only_qualified_names_everywhere() {
    let ix = world();
    assert_eq!(
        addrs(&ask(&ix, Asker::Host, "es2.prod.", RecordType::A)),
        ["10.2.0.4"]
    );
    assert_eq!(
        addrs(&ask(&ix, Asker::Host, "db.back.", RecordType::A)),
        ["10.3.0.6"]
    );
    assert!(matches!(
        answer(&ix, Asker::Host, &query("es2.", RecordType::A), false),
        Reply::Forward(_)
    ));
}

#[test]
fn ptr_for_container_addresses() {
    let ix = world();
    let m = ask(
        &ix,
        from("prod", 3),
        "4.0.2.10.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(addrs(&m), ["es2.prod."]);
    let v6 = "2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.";
    assert_eq!(
        addrs(&ask(&ix, from("dev", 3), v6, RecordType::PTR)),
        ["es.dev."]
    );
    // Not visible from dev-only es; unknown addresses go upstream.
    assert!(matches!(
        answer(
            &ix,
            from("dev", 2),
            &query("4.0.2.10.in-addr.arpa.", RecordType::PTR),
            false
        ),
        Reply::Forward(_)
    ));
}

#[test]
fn srv_by_port_and_by_service_name() {
    let ix = world();
    let m = ask(&ix, from("prod", 3), "_80._tcp.es.", RecordType::SRV);
    assert_eq!(sorted(addrs(&m)), ["80 es2.prod.", "80 es3.prod."]);
    assert_eq!(m.additionals.len(), 2);
    let m = ask(&ix, from("prod", 3), "_http._tcp.es.", RecordType::SRV);
    assert_eq!(m.answers.len(), 2);
    // A port nobody exposes, or the wrong protocol: the name is ours, so NODATA.
    for q in ["_81._tcp.es.", "_80._udp.es.", "_nosuch._tcp.es."] {
        let m = ask(&ix, from("prod", 3), q, RecordType::SRV);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError, "{q}");
        assert!(m.answers.is_empty(), "{q}");
    }
    assert!(matches!(
        answer(
            &ix,
            from("prod", 3),
            &query("_80._tcp.nosuch.", RecordType::SRV),
            false
        ),
        Reply::Forward(_)
    ));
}

#[test]
fn link_aliases_are_private_to_the_linking_sandbox() {
    let mut ix = world();
    let mut s = sandbox("g", "linker", &[("prod", &[], 9)]);
    s.links = vec![("es2".into(), "DB".into())];
    ix.upsert_sandbox(s);
    assert_eq!(
        addrs(&ask(&ix, from("prod", 9), "db.", RecordType::A)),
        ["10.2.0.4"]
    );
    assert!(matches!(
        answer(&ix, from("prod", 3), &query("db.", RecordType::A), false),
        Reply::Forward(_)
    ));
}

#[test]
fn removal_takes_every_trace() {
    let mut ix = world();
    ix.remove_sandbox(&format!("{:0<64}", "c"));
    assert_eq!(
        addrs(&ask(&ix, from("prod", 3), "es.", RecordType::A)),
        ["10.2.0.5"]
    );
    assert!(matches!(
        answer(&ix, from("prod", 3), &query("es2.", RecordType::A), false),
        Reply::Forward(_)
    ));
    assert!(matches!(
        answer(
            &ix,
            from("prod", 3),
            &query("4.0.2.10.in-addr.arpa.", RecordType::PTR),
            false
        ),
        Reply::Forward(_)
    ));
    // Its old address is no longer a client: it gets the network-only view.
    let v = ix.view(from("prod", 4));
    assert_eq!(v.networks.len(), 1);
}

#[test]
fn out_of_service_sandboxes_keep_out_of_answers() {
    let mut ix = world();
    let mut s = sandbox("c", "es2", &[("prod", &["es"], 4)]);
    s.in_service = false;
    ix.upsert_sandbox(s);
    assert_eq!(
        addrs(&ask(&ix, from("prod", 3), "es.", RecordType::A)),
        ["10.2.0.5"]
    );
    // It still resolves the others.
    assert!(!addrs(&ask(&ix, from("prod", 4), "es3.", RecordType::A)).is_empty());
}

#[test]
fn big_answers_truncate_over_udp_and_not_over_tcp() {
    let mut ix = world();
    for i in 0..100u8 {
        ix.upsert_sandbox(sandbox(
            &format!("z{i:03}"),
            &format!("z{i:03}"),
            &[("prod", &["many"], 10 + i)],
        ));
    }
    let q = query("many.", RecordType::A);
    let Reply::Answer(udp) = answer(&ix, from("prod", 3), &q, false) else {
        panic!()
    };
    assert!(udp.len() <= 512);
    let m = Message::from_vec(&udp).unwrap();
    assert!(m.metadata.truncation);
    assert!(!m.answers.is_empty() && m.answers.len() < 100);
    let q = query_with("many.", RecordType::A, Some(4096));
    let Reply::Answer(big) = answer(&ix, from("prod", 3), &q, false) else {
        panic!()
    };
    assert!(big.len() <= UDP_PAYLOAD as usize);
    let m = Message::from_vec(&big).unwrap();
    assert!(m.edns.is_some(), "OPT answered with OPT");
    let Reply::Answer(tcp) = answer(&ix, from("prod", 3), &query("many.", RecordType::A), true)
    else {
        panic!()
    };
    let m = Message::from_vec(&tcp).unwrap();
    assert!(!m.metadata.truncation);
    assert_eq!(m.answers.len(), 100);
}

#[test]
fn garbage_gets_formerr_or_silence() {
    let ix = world();
    assert_eq!(answer(&ix, from("dev", 3), b"short", false), Reply::Drop);
    let mut junk = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff];
    let Reply::Answer(r) = answer(&ix, from("dev", 3), &junk, false) else {
        panic!()
    };
    assert_eq!(&r[..2], &[0x12, 0x34]);
    assert_eq!(r[3] & 0x0f, 1, "FORMERR");
    junk[2] |= 0x80; // a response: never answered (no reflection loops)
    assert_eq!(answer(&ix, from("dev", 3), &junk, false), Reply::Drop);
    assert!(error_reply(&query("x.", RecordType::A), ResponseCode::ServFail, false).is_some());
}

#[test]
fn servfail_echoes_the_question() {
    let q = query("example.com.", RecordType::A);
    let r = Message::from_vec(&error_reply(&q, ResponseCode::ServFail, false).unwrap()).unwrap();
    assert_eq!(r.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(r.queries[0].name.to_ascii(), "example.com.");
    assert_eq!(r.metadata.id, Message::from_vec(&q).unwrap().metadata.id);
}

proptest! {
    /// Any bytes: no panic, and never an answer to a response.
    #[test]
    fn any_bytes_are_safe(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let ix = world();
        let r = answer(&ix, from("dev", 3), &bytes, false);
        if bytes.len() >= 3 && bytes[2] & 0x80 != 0 {
            prop_assert_eq!(r, Reply::Drop);
        }
    }

    /// Updating in place gives the same index as building from nothing.
    #[test]
    fn incremental_equals_rebuilt(ops in proptest::collection::vec((0u8..6, any::<bool>(), 0u8..3), 0..40)) {
        let nets = ["dev", "prod", "back"];
        let mut ix = world();
        let mut live = std::collections::BTreeMap::new();
        for (who, add, netpick) in ops {
            let id = format!("p{who}");
            if add {
                let atts: Vec<(&str, &[&str], u8)> = vec![(nets[netpick as usize], &["shared"], 100 + who)];
                let s = sandbox(&id, &id, &atts);
                ix.upsert_sandbox(s.clone());
                live.insert(id, s);
            } else {
                ix.remove_sandbox(&format!("{id:0<64}"));
                live.remove(&id);
            }
        }
        let mut fresh = world();
        for s in live.values() {
            fresh.upsert_sandbox(s.clone());
        }
        for n in nets {
            prop_assert_eq!(ix.names(n), fresh.names(n));
            let v = ix.view(from(n, 3));
            let a = ix.find(&v, "shared").map(|(_, m)| sorted(m.iter().map(|m| m.name.to_string()).collect()));
            let b = fresh.find(&v, "shared").map(|(_, m)| sorted(m.iter().map(|m| m.name.to_string()).collect()));
            prop_assert_eq!(a, b);
        }
    }
}

proptest! {
    /// The fast path gives what the general path gives: same rcode, flags, question, OPT,
    /// and the same set of addresses (order rotates per query).
    #[test]
    fn fast_path_agrees_with_the_general_path(
        name in prop::sample::select(vec!["es", "ES", "es.dev", "es.prod", "www", "search", "db", "nosuch", "many", "es2", "web.dev", "a00000000000", "x.y.z"]),
        aaaa in any::<bool>(),
        edns in prop::option::of(0u16..5000),
        who in 0usize..6,
    ) {
        let mut ix = world();
        for i in 0..60u8 {
            ix.upsert_sandbox(sandbox(&format!("m{i:03}"), &format!("m{i:03}"), &[("prod", &["many"], 20 + i)]));
        }
        let askers = [from("dev", 3), from("prod", 3), from("prod", 4), from("back", 6), from("dev", 99), from("bridge", 7)];
        let t = if aaaa { RecordType::AAAA } else { RecordType::A };
        let q = query_with(&format!("{name}."), t, edns);
        let general = crate::answer::general(&ix, askers[who], &q, false);
        let fast = answer(&ix, askers[who], &q, false);
        match (general, fast) {
            (Reply::Answer(g), Reply::Answer(f)) => {
                let (g, f) = (Message::from_vec(&g).unwrap(), Message::from_vec(&f).unwrap());
                prop_assert_eq!(g.metadata, f.metadata);
                prop_assert_eq!(&g.queries, &f.queries);
                prop_assert_eq!(g.edns.is_some(), f.edns.is_some());
                prop_assert_eq!(sorted(addrs(&g)).len(), sorted(addrs(&f)).len());
                if !g.metadata.truncation {
                    prop_assert_eq!(sorted(addrs(&g)), sorted(addrs(&f)));
                }
            }
            (g, f) => prop_assert_eq!(g, f),
        }
    }
}

/// The PTR targets of an address, asked from `who`, over UDP and TCP alike.
fn ptr_of(ix: &Index, who: Asker<'_>, ip: Ipv4Addr) -> Message {
    let o = ip.octets();
    let q = format!("{}.{}.{}.{}.in-addr.arpa.", o[3], o[2], o[1], o[0]);
    let m = ask(ix, who, &q, RecordType::PTR);
    let Reply::Answer(tcp) = answer(ix, who, &query(&q, RecordType::PTR), true) else {
        panic!("{q} over TCP")
    };
    assert_eq!(Message::from_vec(&tcp).unwrap().answers, m.answers);
    m
}

#[test]
fn names_dns_cannot_carry_are_never_answered_as_root() {
    let mut ix = world();
    let long = "x".repeat(64);
    // Too long for one label, with a hostname that fits: PTR and SRV answer by the hostname.
    let mut s = sandbox("g", &long, &[("dev", &[], 20)]);
    s.hostname = "Long-Host".into();
    ix.upsert_sandbox(s);
    assert!(
        !ix.names("dev").contains(&long),
        "a name no query can carry"
    );
    let m = ptr_of(&ix, from("dev", 3), Ipv4Addr::new(10, 1, 0, 20));
    assert_eq!(addrs(&m), ["long-host.dev."]);
    let m = ask(&ix, from("dev", 3), "_80._tcp.long-host.", RecordType::SRV);
    assert_eq!(addrs(&m), ["80 long-host.dev."]);
    // Hostname too long as well: the short id, which every sandbox holds.
    let mut s = sandbox("h", &long, &[("dev", &[], 21)]);
    s.hostname = "h".repeat(100);
    ix.upsert_sandbox(s);
    let m = ptr_of(&ix, from("dev", 3), Ipv4Addr::new(10, 1, 0, 21));
    assert_eq!(addrs(&m), ["h00000000000.dev."]);
    assert_eq!(
        addrs(&ask(
            &ix,
            from("dev", 3),
            "h00000000000.dev.",
            RecordType::A
        )),
        ["10.1.0.21"]
    );
    // 63 characters is one label; over 63 with dots is several: both are names as given.
    let l63 = format!("C{}", "c".repeat(62));
    let dotted = format!("{}.{}", "d".repeat(40), "e".repeat(29));
    ix.upsert_sandbox(sandbox("i", &l63, &[("dev", &[], 22)]));
    ix.upsert_sandbox(sandbox("j", &dotted, &[("dev", &[], 23)]));
    let m = ptr_of(&ix, from("dev", 3), Ipv4Addr::new(10, 1, 0, 22));
    assert_eq!(addrs(&m), [format!("{l63}.dev.")]);
    assert_eq!(
        addrs(&ask(&ix, from("dev", 3), &format!("{l63}."), RecordType::A)),
        ["10.1.0.22"]
    );
    let m = ptr_of(&ix, from("dev", 3), Ipv4Addr::new(10, 1, 0, 23));
    assert_eq!(addrs(&m), [format!("{dotted}.dev.")]);
    assert_eq!(
        addrs(&ask(
            &ix,
            from("dev", 3),
            &format!("{dotted}."),
            RecordType::A
        )),
        ["10.1.0.23"]
    );
    // Removal finds the record by its holder, whatever name it answers by.
    ix.remove_sandbox(&format!("{:0<64}", "g"));
    assert!(matches!(
        answer(
            &ix,
            from("dev", 3),
            &query("20.0.1.10.in-addr.arpa.", RecordType::PTR),
            false
        ),
        Reply::Forward(_)
    ));
}

#[test]
fn a_label_that_starts_with_a_dash_answers_over_tcp_as_over_udp() {
    let mut ix = world();
    ix.upsert_sandbox(sandbox("g", "web.-1", &[("dev", &[], 20)]));
    // (hickory's text parser refuses the name; a stub sends it.)
    let name = Name::from_labels([&b"web"[..], b"-1"]).unwrap();
    let mut q = Message::query();
    q.add_query(Query::query(name, RecordType::A));
    let q = q.to_vec().unwrap();
    for tcp in [false, true] {
        let Reply::Answer(b) = answer(&ix, from("dev", 3), &q, tcp) else {
            panic!("tcp {tcp}")
        };
        assert_eq!(
            addrs(&Message::from_vec(&b).unwrap()),
            ["10.1.0.20"],
            "tcp {tcp}"
        );
    }
}

#[test]
fn a_network_name_dns_cannot_carry_has_no_ptr_record() {
    let mut ix = world();
    ix.set_network(net("long", &"n".repeat(64), false));
    ix.upsert_sandbox(sandbox("g", "ok", &[("long", &[], 20)]));
    ix.upsert_sandbox(sandbox("h", "asker", &[("long", &[], 21)]));
    let m = ptr_of(&ix, from("long", 21), Ipv4Addr::new(10, 4, 0, 20));
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert!(m.metadata.authoritative);
    assert!(m.answers.is_empty());
    // Bare names still work; SRV leaves out the holder it cannot name.
    assert_eq!(
        addrs(&ask(&ix, from("long", 21), "ok.", RecordType::A)),
        ["10.4.0.20"]
    );
    let m = ask(&ix, from("long", 21), "_80._tcp.ok.", RecordType::SRV);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
}

proptest! {
    /// Names of any length, dots anywhere (Docker's character set): a PTR or SRV answer
    /// never names the root or a malformed name, and its target resolves back to the
    /// container's address from the same asker.
    #[test]
    fn ptr_and_srv_targets_are_real_names(
        name in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,299}",
        hostname in "[a-zA-Z0-9][a-zA-Z0-9_.-]{0,99}",
        network in "[a-z0-9][a-z0-9_.-]{0,79}",
        tcp in any::<bool>(),
    ) {
        let mut ix = world();
        ix.set_network(net("pt", &network, false));
        let mut s = sandbox("g", &name, &[("pt", &[], 20)]);
        s.hostname = hostname;
        ix.upsert_sandbox(s);
        ix.upsert_sandbox(sandbox("h", "asker", &[("pt", &[], 21)]));
        let who = from("pt", 21);
        let targets = |q: String, t: RecordType| {
            let Reply::Answer(b) = answer(&ix, who, &query(&q, t), tcp) else {
                panic!("{q}: not answered")
            };
            let m = Message::from_vec(&b).unwrap();
            let names: Vec<Name> = m.answers.iter().map(|r| match &r.data {
                RData::PTR(p) => p.0.clone(),
                RData::SRV(s) => s.target.clone(),
                d => panic!("{d:?}"),
            }).collect();
            (m.metadata.response_code, names)
        };
        let (code, ptr) = targets("20.0.4.10.in-addr.arpa.".into(), RecordType::PTR);
        let (_, srv) = targets("_80._tcp.g00000000000.".into(), RecordType::SRV);
        prop_assert!(code == ResponseCode::NoError || code == ResponseCode::NXDomain);
        prop_assert_eq!(code == ResponseCode::NoError, ptr.len() == 1);
        prop_assert_eq!(ptr.len(), srv.len());
        for t in ptr.iter().chain(&srv) {
            prop_assert!(!t.is_root() && t.is_fqdn(), "{}", t);
            prop_assert!(t.iter().all(|l| (1..=63).contains(&l.len())), "{}", t);
            prop_assert!(t.len() <= 255, "{}", t);
            // Built from the name itself: hickory's text parser is stricter than the wire.
            let mut q = Message::query();
            q.add_query(Query::query(t.clone(), RecordType::A));
            let Reply::Answer(b) = answer(&ix, who, &q.to_vec().unwrap(), tcp) else {
                panic!("{t}: not answered")
            };
            let back = addrs(&Message::from_vec(&b).unwrap());
            prop_assert!(back.contains(&"10.4.0.20".to_string()), "{} → {:?}", t, back);
        }
    }
}
