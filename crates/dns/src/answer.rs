//! One query in, one decision out: an answer from the index, a relay to upstream
//! resolvers, or silence. No sockets here, so every case is unit-tested and fuzzed.

use std::net::SocketAddr;
use std::sync::Arc;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::fast::{self, Fast};
use crate::index::{Asker, Index, Member, Network, Proto, View};

/// Short: a name can move to another address at any time (a restarted replica), and
/// nothing should serve the old one for long.
pub const TTL: u32 = 5;

/// The UDP payload berth offers in EDNS (the DNS flag day 2020 value: no fragmentation).
pub const UDP_PAYLOAD: u16 = 1232;

#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// Send these bytes back.
    Answer(Vec<u8>),
    /// Relay the query bytes to these resolvers, in order; SERVFAIL if none answers.
    Forward(Arc<[SocketAddr]>),
    /// Not a query (a response, or too short to have an id): say nothing.
    Drop,
}

/// Answers `query` from whoever `asker` is. `tcp`: no size limit (2-byte length framing).
pub fn answer(index: &Index, asker: Asker<'_>, query: &[u8], tcp: bool) -> Reply {
    if let (Asker::Network { network, source }, false) = (asker, tcp) {
        let mut out = Vec::with_capacity(128);
        if let Fast::Done = fast::answer(index, network, source, query, &mut out) {
            return Reply::Answer(out);
        }
    }
    general(index, asker, query, tcp)
}

/// Every query the fast path leaves: full decoding and encoding with hickory.
pub(crate) fn general(index: &Index, asker: Asker<'_>, query: &[u8], tcp: bool) -> Reply {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return Reply::Drop;
    }
    let msg = match Message::from_vec(query) {
        Ok(m) => m,
        Err(_) => return Reply::Answer(header_only(query, ResponseCode::FormErr)),
    };
    if msg.metadata.message_type != MessageType::Query {
        return Reply::Drop;
    }
    if msg.metadata.op_code != OpCode::Query {
        return Reply::Answer(error(&msg, ResponseCode::NotImp, tcp));
    }
    if msg.queries.len() != 1 {
        return Reply::Answer(error(&msg, ResponseCode::FormErr, tcp));
    }
    let q = &msg.queries[0];
    let view = index.view(asker);
    let outside = |msg: &Message| {
        if view.refuse_outside || view.upstreams.is_empty() {
            Reply::Answer(error(msg, ResponseCode::Refused, tcp))
        } else {
            Reply::Forward(view.upstreams.clone())
        }
    };
    if q.query_class != DNSClass::IN {
        return outside(&msg);
    }
    let qname = q.name.clone();
    let lower = lower_name(&qname);
    let mut answers = Vec::new();
    let mut additionals = Vec::new();
    match q.query_type {
        RecordType::PTR => match qname
            .parse_arpa_name()
            .ok()
            .filter(|n| n.prefix_len() == n.max_prefix_len())
            .map(|n| n.addr())
        {
            Some(ip) => {
                let holders = index.reverse(&view, ip);
                if holders.is_empty() {
                    return outside(&msg);
                }
                // The first network whose name can be written with the holder's; an
                // address of ours with no such name has no PTR record, and that is said
                // here (never a root or broken name, never a question sent upstream).
                let Some(t) = holders.iter().find_map(|(net, name)| target(name, net)) else {
                    let mut resp = response(&msg, ResponseCode::NXDomain);
                    resp.metadata.authoritative = true;
                    return Reply::Answer(encode(resp, &msg, tcp));
                };
                answers.push(Record::from_rdata(qname.clone(), TTL, RData::PTR(PTR(t))));
            }
            None => return outside(&msg),
        },
        RecordType::SRV => match srv(index, &view, &qname, &lower) {
            Some((a, add)) => {
                answers = a;
                additionals = add;
            }
            None => return outside(&msg),
        },
        t => {
            let Some((_, members)) = index.find(&view, &lower) else {
                return outside(&msg);
            };
            let rot = index.next_rotation();
            for m in rotated(members, rot) {
                if let Some(r) = address(&qname, m, t) {
                    answers.push(r);
                }
                if t == RecordType::ANY {
                    if let Some(r) = address(&qname, m, RecordType::AAAA) {
                        answers.push(r);
                    }
                }
            }
            // A known name without records of this type: NOERROR with no answer (NODATA),
            // not NXDOMAIN, so the client does not give up on its other types.
        }
    }
    let mut resp = response(&msg, ResponseCode::NoError);
    resp.metadata.authoritative = true;
    resp.answers = answers;
    resp.additionals = additionals;
    Reply::Answer(encode(resp, &msg, tcp))
}

/// A reply with this code and the question echoed (for an upstream failure: SERVFAIL).
pub fn error_reply(query: &[u8], code: ResponseCode, tcp: bool) -> Option<Vec<u8>> {
    if query.len() < 12 || query[2] & 0x80 != 0 {
        return None;
    }
    Some(match Message::from_vec(query) {
        Ok(m) => error(&m, code, tcp),
        Err(_) => header_only(query, code),
    })
}

/// The id and opcode of a query too broken to parse, with the code and no sections.
pub(crate) fn header_only(query: &[u8], code: ResponseCode) -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[..2].copy_from_slice(&query[..2]);
    // QR, the opcode, RD from the query; RA.
    h[2] = 0x80 | (query[2] & 0x79);
    h[3] = 0x80 | (u16::from(code) & 0x0f).to_be_bytes()[1];
    h
}

pub(crate) fn response(q: &Message, code: ResponseCode) -> Message {
    let mut r = Message::response(q.metadata.id, q.metadata.op_code);
    r.metadata.recursion_desired = q.metadata.recursion_desired;
    r.metadata.recursion_available = true;
    r.metadata.checking_disabled = q.metadata.checking_disabled;
    r.metadata.response_code = code;
    r.queries = q.queries.clone();
    r
}

fn error(q: &Message, code: ResponseCode, tcp: bool) -> Vec<u8> {
    encode(response(q, code), q, tcp)
}

/// Encodes, with an OPT record if the query had one, and cuts answers that do not fit the
/// client's UDP size (setting TC, so it retries over TCP).
pub(crate) fn encode(mut r: Message, q: &Message, tcp: bool) -> Vec<u8> {
    let limit = match &q.edns {
        Some(e) => {
            let mut edns = Edns::new();
            edns.set_max_payload(UDP_PAYLOAD);
            edns.set_dnssec_ok(false);
            r.set_edns(edns);
            e.max_payload().clamp(512, UDP_PAYLOAD) as usize
        }
        None => 512,
    };
    let mut bytes = r.to_vec().unwrap_or_else(|_| header_only_of(&r));
    if !tcp && bytes.len() > limit {
        r.additionals.clear();
        bytes = r.to_vec().unwrap_or_else(|_| header_only_of(&r));
        while bytes.len() > limit && !r.answers.is_empty() {
            // Records are about the same size: drop in proportion, then one by one.
            let keep = (r.answers.len() * limit / bytes.len()).min(r.answers.len() - 1);
            r.answers.truncate(keep);
            r.metadata.truncation = true;
            bytes = r.to_vec().unwrap_or_else(|_| header_only_of(&r));
        }
    }
    bytes
}

fn header_only_of(r: &Message) -> Vec<u8> {
    let mut h = vec![0u8; 12];
    h[..2].copy_from_slice(&r.metadata.id.to_be_bytes());
    h[2] = 0x80 | (u8::from(r.metadata.op_code) << 3) & 0x78;
    h[3] = 0x80 | u16::from(ResponseCode::ServFail).to_be_bytes()[1];
    h
}

/// The question's labels as they came, lower-case, as the fast path reads them. The text
/// form escapes some names berth holds (a label that starts with `-`, as in a container
/// `web.-1`), which then matched nothing over TCP while UDP answered; it stays for labels
/// no held name has (a dot or a byte outside printable ASCII inside one).
fn lower_name(n: &Name) -> String {
    let mut s = String::with_capacity(n.len());
    for l in n.iter() {
        if l.iter().any(|&c| c == b'.' || !(0x21..0x7f).contains(&c)) {
            let mut s = n.to_ascii();
            if s.ends_with('.') {
                s.pop();
            }
            s.make_ascii_lowercase();
            return s;
        }
        if !s.is_empty() {
            s.push('.');
        }
        s.extend(l.iter().map(|&c| char::from(c.to_ascii_lowercase())));
    }
    s
}

/// The SRV target and PTR name of a container: `NAME.NETWORK.`, if DNS can carry it.
fn target(container: &str, net: &Network) -> Option<Name> {
    crate::name::qualified(container, &net.name)
}

fn rotated(members: &[Member], rot: usize) -> impl Iterator<Item = &Member> {
    let n = members.len().max(1);
    let k = rot % n;
    members[k..].iter().chain(members[..k].iter())
}

fn address(qname: &Name, m: &Member, t: RecordType) -> Option<Record> {
    let rdata = match t {
        RecordType::A | RecordType::ANY => RData::A(A(m.v4?)),
        RecordType::AAAA => RData::AAAA(AAAA(m.v6?)),
        _ => return None,
    };
    Some(Record::from_rdata(qname.clone(), TTL, rdata))
}

type Sections = (Vec<Record>, Vec<Record>);

/// `_PORT._PROTO.NAME` or `_SERVICE._PROTO.NAME`: one SRV record per holder of NAME that
/// exposes the port, its target `CONTAINER.NETWORK.` and that target's addresses.
/// `None`: NAME is not berth's (the question goes upstream).
fn srv(index: &Index, view: &View, qname: &Name, lower: &str) -> Option<Sections> {
    let mut labels = lower.splitn(3, '.');
    let (svc, proto, rest) = (labels.next()?, labels.next()?, labels.next()?);
    let svc = svc.strip_prefix('_')?;
    let proto = Proto::from_label(proto)?;
    let (net, members) = index.find(view, rest)?;
    let (mut answers, mut additionals) = (Vec::new(), Vec::new());
    let Some(port) = index.services.port(svc, proto) else {
        return Some((answers, additionals));
    };
    let rot = index.next_rotation();
    for m in rotated(members, rot) {
        if !m.ports.contains(&(port, proto)) {
            continue;
        }
        // A root target would mean "no such service" (RFC 2782): leave the holder out.
        let Some(t) = target(&m.name, net) else {
            continue;
        };
        answers.push(Record::from_rdata(
            qname.clone(),
            TTL,
            RData::SRV(SRV::new(0, 0, port, t.clone())),
        ));
        if let Some(v4) = m.v4 {
            additionals.push(Record::from_rdata(t.clone(), TTL, RData::A(A(v4))));
        }
        if let Some(v6) = m.v6 {
            additionals.push(Record::from_rdata(t, TTL, RData::AAAA(AAAA(v6))));
        }
    }
    Some((answers, additionals))
}
