//! The resolver's query path on arbitrary bytes, over UDP and TCP framing rules, against
//! an index with names, aliases, links and an internal network: it must never panic, never
//! answer a response (no reflection loops), and never exceed the client's UDP size.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use berth_dns::{answer, Asker, Attachment, Index, Network, Proto, Reply, Sandbox, Services};
use libfuzzer_sys::fuzz_target;

fn index() -> &'static Index {
    static IX: OnceLock<Index> = OnceLock::new();
    IX.get_or_init(|| {
        let up: SocketAddr = "192.0.2.53:53".parse().unwrap();
        let mut ix = Index::new(vec![up], Services::parse("http 80/tcp www\n"));
        for (id, internal) in [("dev", false), ("back", true)] {
            ix.set_network(Network { id: id.into(), name: id.into(), internal, names: true });
        }
        for i in 0..40u8 {
            ix.upsert_sandbox(Sandbox {
                id: format!("{i:0>64}").into(),
                name: format!("c{i}"),
                hostname: format!("h{i}"),
                upstreams: vec![],
                ports: vec![(80, Proto::Tcp), (53, Proto::Udp)],
                in_service: i % 7 != 0,
                links: vec![("c1".into(), "db".into())],
                attachments: vec![Attachment {
                    network: if i % 3 == 0 { "back".into() } else { "dev".into() },
                    aliases: vec!["shared".into()],
                    v4: Some(Ipv4Addr::new(10, 0, 0, 2 + i)),
                    v6: Some(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2 + i as u16)),
                }],
            });
        }
        ix
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, query)) = data.split_first() else {
        return;
    };
    let ix = index();
    let asker = match sel % 3 {
        0 => Asker::Host,
        n => Asker::Network {
            network: if n == 1 { "dev" } else { "back" },
            source: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2 + sel % 45)),
        },
    };
    let tcp = sel & 0x80 != 0;
    match answer(ix, asker, query, tcp) {
        Reply::Answer(b) => {
            assert!(query[2] & 0x80 == 0, "answered a response");
            assert!(b.len() >= 12);
            assert_eq!(b[..2], query[..2], "the query's id");
            assert!(b[2] & 0x80 != 0, "a response");
            if !tcp {
                assert!(b.len() <= usize::from(berth_dns::UDP_PAYLOAD), "{} bytes over UDP", b.len());
            }
        }
        Reply::Drop => {}
        Reply::Forward(ups) => assert!(!ups.is_empty()),
    }
});
