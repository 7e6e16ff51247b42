//! The common case without building a message: one A or AAAA question for a name the
//! index holds (or an internal-only sandbox's refusal), answered by copying the question
//! and appending records that point back at it. Decoding and encoding full messages with
//! hickory costs nearly eight times more per query (864 against 112 ns on an index of
//! 10 000 names: `cargo run --release -p berth-dns --example answer_cost`); everything this
//! path does not recognise goes to the general path in `answer.rs`, which stays the
//! reference (a property test checks both give the same answers).

use std::net::IpAddr;

use crate::answer::{TTL, UDP_PAYLOAD};
use crate::index::{Index, Member};

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const TYPE_OPT: u16 = 41;
const CLASS_IN: u16 = 1;
const RCODE_REFUSED: u8 = 5;

/// What the fast path makes of a query.
pub(crate) enum Fast {
    /// The answer, written into the caller's buffer.
    Done,
    /// Not a case for the fast path (or a name that goes upstream): use the general path.
    General,
}

/// The parts of a plain query: the question's end, its type, the lower-case name and the
/// client's EDNS payload size (None without OPT).
struct Plain {
    question_end: usize,
    qtype: u16,
    name: [u8; 255],
    name_len: usize,
    edns: Option<u16>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]))
}

/// Accepts only: a query (QR 0, opcode 0), one question, no answer or authority records,
/// at most one additional record which is an OPT with no options beyond its header; a name
/// of plain labels (no compression, as every stub sends); class IN; type A or AAAA.
fn parse(q: &[u8]) -> Option<Plain> {
    if q.len() < 12
        || q[2] & 0xf8 != 0
        || u16_at(q, 4)? != 1
        || u16_at(q, 6)? != 0
        || u16_at(q, 8)? != 0
    {
        return None;
    }
    let arcount = u16_at(q, 10)?;
    let mut name = [0u8; 255];
    let mut name_len = 0;
    let mut i = 12;
    loop {
        let l = *q.get(i)? as usize;
        i += 1;
        if l == 0 {
            break;
        }
        if l > 63 || name_len + l + 1 > 255 {
            return None;
        }
        if name_len > 0 {
            name[name_len] = b'.';
            name_len += 1;
        }
        for &c in q.get(i..i + l)? {
            // Dots inside a label, or bytes outside printable ASCII, are left to hickory.
            if c == b'.' || !(0x21..0x7f).contains(&c) {
                return None;
            }
            name[name_len] = c.to_ascii_lowercase();
            name_len += 1;
        }
        i += l;
    }
    let qtype = u16_at(q, i)?;
    if u16_at(q, i + 2)? != CLASS_IN || !(qtype == TYPE_A || qtype == TYPE_AAAA) {
        return None;
    }
    let question_end = i + 4;
    let edns = match arcount {
        0 if q.len() == question_end => None,
        1 => {
            // root name, type OPT, class = payload size, TTL (extended rcode, version 0,
            // flags), RDLENGTH; options are skipped (none changes an answer of ours).
            let o = question_end;
            if *q.get(o)? != 0 || u16_at(q, o + 1)? != TYPE_OPT || *q.get(o + 6)? != 0 {
                return None;
            }
            let rdlen = u16_at(q, o + 9)? as usize;
            if q.len() != o + 11 + rdlen {
                return None;
            }
            Some(u16_at(q, o + 3)?)
        }
        _ => return None,
    };
    Some(Plain {
        question_end,
        qtype,
        name,
        name_len,
        edns,
    })
}

/// Answers `q` into `out` when it can (returns `Done`); `out` is cleared first.
pub(crate) fn answer(
    index: &Index,
    network: &str,
    source: IpAddr,
    q: &[u8],
    out: &mut Vec<u8>,
) -> Fast {
    let Some(p) = parse(q) else {
        return Fast::General;
    };
    let Ok(name) = std::str::from_utf8(&p.name[..p.name_len]) else {
        return Fast::General;
    };
    let members = match index.lookup(network, source, name) {
        Lookup::Found(m) => m,
        Lookup::Refuse => {
            header(out, q, &p, RCODE_REFUSED, false, 0);
            return Fast::Done;
        }
        Lookup::Elsewhere => return Fast::General,
    };
    let limit = match p.edns {
        Some(size) => (size as usize).clamp(512, UDP_PAYLOAD as usize),
        None => 512,
    };
    let rr = if p.qtype == TYPE_A { 16 } else { 28 };
    let opt = if p.edns.is_some() { 11 } else { 0 };
    let fits = (limit.saturating_sub(p.question_end + opt)) / rr;
    let have = |m: &Member| {
        if p.qtype == TYPE_A {
            m.v4.is_some()
        } else {
            m.v6.is_some()
        }
    };
    let total = members.iter().filter(|m| have(m)).count();
    let n = total.min(fits);
    header(
        out,
        q,
        &p,
        0,
        n < total,
        u16::try_from(n).unwrap_or(u16::MAX),
    );
    let rot = index.next_rotation();
    let k = rot % members.len().max(1);
    for m in members[k..]
        .iter()
        .chain(&members[..k])
        .filter(|m| have(m))
        .take(n)
    {
        out.extend_from_slice(&[0xc0, 0x0c]);
        out.extend_from_slice(&p.qtype.to_be_bytes());
        out.extend_from_slice(&CLASS_IN.to_be_bytes());
        out.extend_from_slice(&TTL.to_be_bytes());
        match (m.v4, m.v6) {
            (Some(a), _) if p.qtype == TYPE_A => {
                out.extend_from_slice(&4u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            (_, Some(a)) => {
                out.extend_from_slice(&16u16.to_be_bytes());
                out.extend_from_slice(&a.octets());
            }
            _ => unreachable!("filtered by have()"),
        }
    }
    if p.edns.is_some() {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
    Fast::Done
}

/// Header and question (copied), counts set; the OPT record follows the answers.
fn header(out: &mut Vec<u8>, q: &[u8], p: &Plain, rcode: u8, tc: bool, answers: u16) {
    out.clear();
    out.extend_from_slice(&q[..2]);
    // QR, opcode 0, AA (ours) unless refused, TC, RD copied; RA; rcode.
    let aa = if rcode == 0 { 0x04 } else { 0 };
    out.push(0x80 | aa | if tc { 0x02 } else { 0 } | (q[2] & 0x01));
    out.push(0x80 | (q[3] & 0x10) | rcode);
    out.extend_from_slice(&1u16.to_be_bytes());
    out.extend_from_slice(&answers.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&u16::from(p.edns.is_some()).to_be_bytes());
    out.extend_from_slice(&q[12..p.question_end]);
    if rcode != 0 && p.edns.is_some() {
        out.extend_from_slice(&[0, 0, 41]);
        out.extend_from_slice(&UDP_PAYLOAD.to_be_bytes());
        out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    }
}

/// The index's answer for a bare or `NAME.NETWORK` name, without building a view.
pub(crate) enum Lookup<'a> {
    Found(&'a [Member]),
    /// Not ours, and the asker may not go outside.
    Refuse,
    /// Not ours: upstream (or a case the general path handles).
    Elsewhere,
}
