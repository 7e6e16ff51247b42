//! Consul's DNS interface for berth's services (`--consul-dns`): `NAME.service.consul`,
//! `NAME.service.DC.consul` and `TAG.NAME.service.consul`, A/AAAA with the instances'
//! addresses and SRV with their (host) ports, the target being the instance's node
//! (`NODE.node.DC.consul.`, its address in the additional section), as Consul answers.
//! Only passing instances are answered, as Consul's DNS does. Pure: bytes in, bytes out.

use std::net::IpAddr;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, SRV};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::answer::{encode, header_only, response};

/// Consul's default DNS TTL for services is 0: answers follow changes at once.
const TTL: u32 = 0;

/// One passing service instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub name: String,
    pub tags: Vec<String>,
    pub addr: IpAddr,
    pub port: u16,
    pub node: String,
    pub node_addr: IpAddr,
}

/// The answer to `query` from `instances` of datacenter `dc`; `None` for a packet that is
/// not a query (say nothing).
pub fn answer(instances: &[Instance], dc: &str, query: &[u8]) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    let Ok(msg) = Message::from_vec(query) else {
        return Some(header_only(query, ResponseCode::FormErr));
    };
    if msg.metadata.message_type != MessageType::Query {
        return None;
    }
    if msg.metadata.op_code != OpCode::Query || msg.queries.len() != 1 {
        return Some(encode(response(&msg, ResponseCode::NotImp), &msg, false));
    }
    let q = &msg.queries[0];
    let mut lower = q.name.to_ascii();
    if lower.ends_with('.') {
        lower.pop();
    }
    lower.make_ascii_lowercase();
    let labels: Vec<&str> = lower.split('.').collect();
    // …service.consul or …service.DC.consul
    let (name, tag) = match labels.as_slice() {
        [rest @ .., "service", "consul"] => split(rest),
        [rest @ .., "service", d, "consul"] if *d == dc => split(rest),
        [.., "consul"] => {
            let mut r = response(&msg, ResponseCode::NXDomain);
            r.metadata.authoritative = true;
            return Some(encode(r, &msg, false));
        }
        _ => return Some(encode(response(&msg, ResponseCode::Refused), &msg, false)),
    };
    let Some(name) = name else {
        return Some(encode(response(&msg, ResponseCode::NXDomain), &msg, false));
    };
    let matching: Vec<&Instance> = instances
        .iter()
        .filter(|i| i.name.eq_ignore_ascii_case(name))
        .filter(|i| tag.is_none_or(|t| i.tags.iter().any(|x| x.eq_ignore_ascii_case(t))))
        .collect();
    let known = instances.iter().any(|i| i.name.eq_ignore_ascii_case(name));
    let mut r = response(
        &msg,
        if known {
            ResponseCode::NoError
        } else {
            ResponseCode::NXDomain
        },
    );
    r.metadata.authoritative = true;
    for i in matching {
        match q.query_type {
            RecordType::SRV => {
                let Ok(target) = Name::from_ascii(format!("{}.node.{dc}.consul.", i.node)) else {
                    continue;
                };
                r.answers.push(Record::from_rdata(
                    q.name.clone(),
                    TTL,
                    RData::SRV(SRV::new(1, 1, i.port, target.clone())),
                ));
                if let Some(a) = address(&target, i.node_addr) {
                    r.additionals.push(a);
                }
            }
            RecordType::A if i.addr.is_ipv4() => r.answers.extend(address(&q.name, i.addr)),
            RecordType::AAAA if i.addr.is_ipv6() => r.answers.extend(address(&q.name, i.addr)),
            RecordType::ANY => r.answers.extend(address(&q.name, i.addr)),
            _ => {}
        }
    }
    Some(encode(r, &msg, false))
}

/// `[TAG.]NAME` from the labels before `service`.
fn split<'a>(rest: &[&'a str]) -> (Option<&'a str>, Option<&'a str>) {
    match rest {
        [name] => (Some(name), None),
        [tag, name] => (Some(name), Some(tag)),
        _ => (None, None),
    }
}

fn address(name: &Name, ip: IpAddr) -> Option<Record> {
    let rdata = match ip {
        IpAddr::V4(v) => RData::A(A(v)),
        IpAddr::V6(v) => RData::AAAA(AAAA(v)),
    };
    Some(Record::from_rdata(name.clone(), TTL, rdata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn ask(name: &str, t: RecordType) -> Vec<u8> {
        let mut m = Message::query();
        m.metadata.id = 7;
        m.add_query(Query::query(Name::from_ascii(name).unwrap(), t));
        m.to_vec().unwrap()
    }

    fn inst(port: u16, tags: &[&str]) -> Instance {
        Instance {
            name: "web".into(),
            tags: tags.iter().map(|t| (*t).into()).collect(),
            addr: "203.0.113.1".parse().unwrap(),
            port,
            node: "n1".into(),
            node_addr: "203.0.113.1".parse().unwrap(),
        }
    }

    fn reply(i: &[Instance], q: &str, t: RecordType) -> Message {
        Message::from_vec(&answer(i, "dc1", &ask(q, t)).unwrap()).unwrap()
    }

    #[test]
    fn srv_a_tags_datacenter_and_unknown_names() {
        let all = [inst(8080, &["prod"]), inst(8081, &[])];
        let m = reply(&all, "web.service.consul.", RecordType::SRV);
        assert_eq!(m.metadata.response_code, ResponseCode::NoError);
        let ports: Vec<u16> = m
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::SRV(s) => Some(s.port),
                _ => None,
            })
            .collect();
        assert_eq!(ports, [8080, 8081]);
        assert_eq!(m.additionals.len(), 2);
        assert_eq!(
            reply(&all, "prod.web.service.consul.", RecordType::SRV)
                .answers
                .len(),
            1
        );
        assert_eq!(
            reply(&all, "web.service.dc1.consul.", RecordType::A)
                .answers
                .len(),
            2
        );
        assert_eq!(
            reply(&all, "nope.service.consul.", RecordType::A)
                .metadata
                .response_code,
            ResponseCode::NXDomain
        );
        assert_eq!(
            reply(&all, "web.service.eu.consul.", RecordType::A)
                .metadata
                .response_code,
            ResponseCode::NXDomain
        );
        assert_eq!(
            reply(&all, "example.com.", RecordType::A)
                .metadata
                .response_code,
            ResponseCode::Refused
        );
        assert!(answer(&all, "dc1", &[0u8; 4]).is_none());
    }
}
