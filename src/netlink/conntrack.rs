//! Conntrack entries through ctnetlink: the flows towards a backend that died are deleted,
//! so that a client's next packet is looked up as new (to a live backend, which answers
//! with a reset) instead of going on to an address where nothing answers (moby#26060).
//! TCP and UDP alike (kube-proxy deletes only UDP; its users keep asking for TCP).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::conntrack::{ConntrackAttribute, ConntrackMessage, IPTuple, Tuple};
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use super::NetError;

fn io(op: &str) -> impl FnOnce(std::io::Error) -> NetError + '_ {
    move |source| NetError::Io {
        op: op.to_string(),
        source,
    }
}

fn send(socket: &Socket, msg: ConntrackMessage, flags: u16) -> std::io::Result<()> {
    let mut hdr = NetlinkHeader::default();
    hdr.flags = flags;
    let mut packet = NetlinkMessage::new(
        hdr,
        NetlinkPayload::from(NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
            msg,
        )),
    );
    packet.finalize();
    let mut buf = vec![0; packet.buffer_len()];
    packet.serialize(&mut buf);
    socket.send(&buf, 0).map(|_| ())
}

/// Every message of one answer, until `Done` (a dump) or the first ack or error.
fn receive(socket: &Socket, mut each: impl FnMut(&ConntrackMessage)) -> std::io::Result<()> {
    let mut buf = vec![0; 1 << 16];
    loop {
        let n = socket.recv(&mut &mut buf[..], 0)?;
        let mut off = 0;
        while off < n {
            let msg = NetlinkMessage::<NetfilterMessage>::deserialize(&buf[off..n])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            let len = msg.header.length as usize;
            match msg.payload {
                NetlinkPayload::Done(_) => return Ok(()),
                NetlinkPayload::Error(e) => {
                    return match e.code {
                        None => Ok(()),
                        Some(c) => Err(std::io::Error::from_raw_os_error(-c.get())),
                    }
                }
                NetlinkPayload::InnerMessage(NetfilterMessage {
                    inner: NetfilterMessageInner::Conntrack(m),
                    ..
                }) => each(&m),
                _ => {}
            }
            if len == 0 {
                break;
            }
            off += len;
        }
    }
}

fn attrs(m: &ConntrackMessage) -> &[ConntrackAttribute] {
    match m {
        ConntrackMessage::New(a) | ConntrackMessage::Get(a) | ConntrackMessage::Delete(a) => a,
        _ => &[],
    }
}

/// The reply direction's source: where the flow really goes, after DNAT.
fn reply_source(m: &ConntrackMessage) -> Option<IpAddr> {
    attrs(m).iter().find_map(|a| match a {
        ConntrackAttribute::CtaTupleReply(t) => t.iter().find_map(|t| match t {
            Tuple::Ip(ips) => ips.iter().find_map(|i| match i {
                IPTuple::SourceAddress(a) => Some(*a),
                _ => None,
            }),
            _ => None,
        }),
        _ => None,
    })
}

/// Deletes this namespace's IPv4 conntrack entries whose flow goes to one of `to`;
/// returns how many. Blocking: run it off the async runtime.
pub fn flush_towards(to: &BTreeSet<Ipv4Addr>) -> Result<usize, NetError> {
    if to.is_empty() {
        return Ok(0);
    }
    let mut socket = Socket::new(NETLINK_NETFILTER).map_err(io("open a ctnetlink socket"))?;
    socket
        .bind_auto()
        .map_err(io("bind the ctnetlink socket"))?;
    socket
        .connect(&SocketAddr::new(0, 0))
        .map_err(io("connect the ctnetlink socket"))?;
    send(
        &socket,
        ConntrackMessage::Get(vec![]),
        NLM_F_REQUEST | NLM_F_DUMP,
    )
    .map_err(io("list conntrack entries"))?;
    let mut doomed = Vec::new();
    receive(&socket, |m| {
        if matches!(reply_source(m), Some(IpAddr::V4(a)) if to.contains(&a)) {
            if let Some(orig) = attrs(m)
                .iter()
                .find(|a| matches!(a, ConntrackAttribute::CtaTupleOrig(_)))
            {
                doomed.push(orig.clone());
            }
        }
    })
    .map_err(io("list conntrack entries"))?;
    let mut n = 0;
    for orig in doomed {
        send(
            &socket,
            ConntrackMessage::Delete(vec![orig]),
            NLM_F_REQUEST | NLM_F_ACK,
        )
        .map_err(io("delete a conntrack entry"))?;
        match receive(&socket, |_| {}) {
            Ok(()) => n += 1,
            // Gone meanwhile (it timed out, or its flow ended).
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
            Err(e) => return Err(io("delete a conntrack entry")(e)),
        }
    }
    Ok(n)
}
