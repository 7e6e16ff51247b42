//! CPU cost of answering one query, fast path against the general (hickory) path, on an
//! index of 10 000 names: `cargo run --release -p berth-dns --example answer_cost`.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use berth_dns::{answer, Asker, Attachment, Index, Network, Proto, Reply, Sandbox, Services};

fn main() {
    let mut ix = Index::new(vec!["192.0.2.53:53".parse().unwrap()], Services::default());
    ix.set_network(Network {
        id: "n".into(),
        name: "n".into(),
        internal: false,
        names: true,
    });
    for i in 0..10_000u32 {
        let b = i.to_be_bytes();
        ix.upsert_sandbox(Sandbox {
            id: format!("{i:064}").into(),
            name: format!("c{i}"),
            hostname: String::new(),
            upstreams: vec![],
            ports: vec![(80, Proto::Tcp)],
            in_service: true,
            links: vec![],
            attachments: vec![Attachment {
                network: "n".into(),
                aliases: vec![],
                v4: Some(Ipv4Addr::new(10, b[1], b[2], b[3])),
                v6: None,
            }],
        });
    }
    // A plain stub query for "c4242" A with EDNS (what glibc and dig send).
    let mut q = vec![0x12, 0x34, 0x01, 0x20, 0, 1, 0, 0, 0, 0, 0, 1];
    q.extend_from_slice(b"\x05c4242\x00\x00\x01\x00\x01");
    q.extend_from_slice(&[0, 0, 41, 0x04, 0xd0, 0, 0, 0, 0, 0, 0]);
    let asker = Asker::Network {
        network: "n",
        source: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 7)),
    };
    let n = 1_000_000;
    for (label, tcp) in [
        ("fast path (UDP)", false),
        ("general path (hickory, TCP)", true),
    ] {
        let t = Instant::now();
        let mut bytes = 0;
        for _ in 0..n {
            if let Reply::Answer(b) = answer(&ix, asker, &q, tcp) {
                bytes += b.len();
            }
        }
        let ns = t.elapsed().as_nanos() as f64 / n as f64;
        println!(
            "{label:<28} {ns:7.0} ns/query ({} bytes per answer)",
            bytes / n
        );
    }
}
