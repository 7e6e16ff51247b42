//! The fixed skeleton of `table inet berth`: sets, chains and rules. None of it
//! mentions a network; networks only ever appear as set elements (see rules.rs).

use std::collections::HashSet;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{
    Expression, Fib, FibFlag, FibResult, Meta, MetaKey, NamedExpression, Payload, PayloadField,
    Prefix, SetItem,
};
use nftables::schema::{
    Chain, Element, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Match, NATFamily, Operator, Statement, NAT};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

/// The only table berth owns; nothing outside it is ever touched.
pub const TABLE: &str = "berth";
/// The node's VXLAN device (`berth_overlay::DEVICE`): overlay traffic between nodes.
pub const MESH_DEVICE: &str = "berth-vx";

const FAMILY: NfFamily = NfFamily::INet;

pub(crate) const SET_BRIDGES: &str = "bridges";
pub(crate) const SET_INTERNAL: &str = "internal";
pub(crate) const SET_ICC: &str = "icc";
pub(crate) const SET_MASQ4: &str = "masq4";
pub(crate) const SET_MASQ6: &str = "masq6";
/// `bridge . subnet` of every network: DNATed traffic that leaves by a bridge to which its
/// client belongs (a container reaching a published port of its own network, or its own)
/// is masqueraded, or the answer would go straight back, un-NATed, over the bridge. Keyed
/// on the source address, not the input interface: with br_netfilter loaded, the bridge's
/// postrouting hook has no input interface.
pub(crate) const SET_HAIRPIN4: &str = "hairpin4";
pub(crate) const SET_HAIRPIN6: &str = "hairpin6";
/// `addr . proto . port` of ports published on a loopback address: dropped when they arrive
/// from anywhere but `lo`, even if the host routes 127/8 (`route_localnet`).
pub(crate) const SET_LOOPBACK4: &str = "loopback4";
/// Published ports: `[addr .] proto . port` → container address (`*_addr`) and container
/// port (`*_port`). `*_any` hold ports published on every address (0.0.0.0 / ::) and match
/// only traffic to a local address. Two maps rather than one with `addr . port` data: nft
/// 1.0.6 crashes on concatenated map data given as JSON.
pub(crate) const MAP_PORTS4: &str = "ports4";
pub(crate) const MAP_PORTS4_ANY: &str = "ports4_any";
pub(crate) const MAP_PORTS6: &str = "ports6";
pub(crate) const MAP_PORTS6_ANY: &str = "ports6_any";

const FORWARD: &str = "forward";
const POSTROUTING: &str = "postrouting";
const PREROUTING: &str = "prerouting";
const OUTPUT: &str = "output";
const RAW_PREROUTING: &str = "raw_prerouting";
const MARK_PREROUTING: &str = "mark_prerouting";
const MARK_OUTPUT: &str = "mark_output";
/// The routing mark of answers to the transparent proxy's upstream connections: policy
/// routing delivers packets with it locally, to the proxy (see the daemon's
/// `ensure_local_delivery`). Set from the conntrack mark in prerouting.
pub const PROXY_MARK: u32 = 0xb1;
/// The proxy's upstream sockets carry this mark (not `PROXY_MARK`, or their own packets would
/// be routed back to the host); `mark_output` turns it into the connection's conntrack mark.
pub const PROXY_SOCKET_MARK: u32 = 0xb2;
const PRIO_MANGLE: i32 = -150;
/// Where the embedded resolver really listens: port 53 of a gateway (and of the host's
/// 127.0.0.11) is redirected here, so that port 53 of the host stays free for a published
/// DNS server (`-p 53:53/udp` binds 0.0.0.0:53, which any socket on a host address and
/// port 53 would block).
pub const RESOLVER_PORT: u16 = 10053;
/// The host's own address for the resolver (as Docker's 127.0.0.11, here in the host).
pub const RESOLVER_HOST_ADDR: &str = "127.0.0.11";

// The JSON schema only takes numeric priorities: nft's `filter` and `srcnat`.
const PRIO_FILTER: i32 = 0;
const PRIO_SRCNAT: i32 = 100;
const PRIO_DSTNAT: i32 = -100;
const PRIO_RAW: i32 = -300;

pub(crate) fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: FAMILY,
        name: TABLE.into(),
        handle: None,
    })
}

pub(crate) fn sets() -> Vec<NfListObject<'static>> {
    use SetType::{Ifname, InetProto, InetService, Ipv4Addr, Ipv6Addr};
    let single = SetTypeValue::Single;
    let cat = |t: Vec<SetType>| SetTypeValue::Concatenated(t.into());
    let mut out = vec![
        set(SET_HAIRPIN4, cat(vec![Ifname, Ipv4Addr]), true),
        set(SET_HAIRPIN6, cat(vec![Ifname, Ipv6Addr]), true),
        set(
            SET_LOOPBACK4,
            cat(vec![Ipv4Addr, InetProto, InetService]),
            false,
        ),
    ];
    // Each kind of published port: a map to the container's address and one to its port.
    for (base, key, addr) in [
        (MAP_PORTS4, vec![Ipv4Addr, InetProto, InetService], Ipv4Addr),
        (MAP_PORTS4_ANY, vec![InetProto, InetService], Ipv4Addr),
        (MAP_PORTS6, vec![Ipv6Addr, InetProto, InetService], Ipv6Addr),
        (MAP_PORTS6_ANY, vec![InetProto, InetService], Ipv6Addr),
    ] {
        out.push(map(addr_map(base), cat(key.clone()), single(addr)));
        out.push(map(port_map(base), cat(key), single(InetService)));
    }
    out.extend([
        set(SET_BRIDGES, single(Ifname), false),
        set(SET_INTERNAL, single(Ifname), false),
        set(
            SET_ICC,
            SetTypeValue::Concatenated(vec![Ifname, Ifname].into()),
            false,
        ),
        // Interval sets hold whole subnets as one element each.
        set(SET_MASQ4, single(Ipv4Addr), true),
        set(SET_MASQ6, single(Ipv6Addr), true),
    ]);
    out
}

pub(crate) fn addr_map(base: &str) -> &'static str {
    match base {
        MAP_PORTS4 => "ports4_addr",
        MAP_PORTS4_ANY => "ports4_any_addr",
        MAP_PORTS6 => "ports6_addr",
        _ => "ports6_any_addr",
    }
}

pub(crate) fn port_map(base: &str) -> &'static str {
    match base {
        MAP_PORTS4 => "ports4_port",
        MAP_PORTS4_ANY => "ports4_any_port",
        MAP_PORTS6 => "ports6_port",
        _ => "ports6_any_port",
    }
}

fn map(
    name: &'static str,
    key: SetTypeValue<'static>,
    data: SetTypeValue<'static>,
) -> NfListObject<'static> {
    NfListObject::Map(Box::new(nftables::schema::Map {
        family: FAMILY,
        table: TABLE.into(),
        name: name.into(),
        handle: None,
        set_type: key,
        map: data,
        policy: None,
        flags: None,
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    }))
}

fn set(
    name: &'static str,
    set_type: SetTypeValue<'static>,
    interval: bool,
) -> NfListObject<'static> {
    NfListObject::Set(Box::new(Set {
        family: FAMILY,
        table: TABLE.into(),
        name: name.into(),
        handle: None,
        set_type,
        policy: None,
        flags: interval.then(|| HashSet::from([SetFlag::Interval])),
        elem: None,
        timeout: None,
        gc_interval: None,
        size: None,
        comment: None,
    }))
}

/// Base chains and their rules; every rule is a constant number of set lookups.
pub(crate) fn add_chains(batch: &mut Batch<'static>) {
    use MetaKey::{Iifname, Oifname};
    use Statement::{Accept, Drop, Masquerade};

    batch.add(base_chain(
        FORWARD,
        NfChainType::Filter,
        NfHook::Forward,
        PRIO_FILTER,
    ));
    // A flow's later packets cost one conntrack lookup instead of every set below: the
    // decision was made on its first packet (10 % more TCP throughput between containers
    // on two nodes, bench/cluster.sh). An endpoint that leaves takes its flows with its
    // veth; what a rule decides never changes for a network that exists.
    rule(
        batch,
        FORWARD,
        "established flows",
        [
            Statement::Match(Match {
                left: Expression::Named(NamedExpression::CT(nftables::expr::CT {
                    key: "state".into(),
                    family: None,
                    dir: None,
                })),
                right: Expression::List(vec![
                    Expression::String("established".into()),
                    Expression::String("related".into()),
                ]),
                op: Operator::IN,
            }),
            Accept(None),
        ],
    );
    // With br_netfilter, frames bridged inside one network reach this hook with
    // iifname == oifname == its bridge: icc must be accepted before the drops.
    let pair = concat(vec![meta(Iifname), meta(Oifname)]);
    rule(batch, FORWARD, "icc", [is_in(pair, SET_ICC), Accept(None)]);
    // The mesh carries every overlay network (one VNI, a routed layout): a packet may
    // cross it only between bridges of one network, i.e. from the mesh into the bridge
    // whose subnet holds its source, or from a bridge towards its own subnet. This comes
    // before the internal drops: an --internal overlay still spans its nodes.
    for (proto, set) in [("ip", SET_HAIRPIN4), ("ip6", SET_HAIRPIN6)] {
        let inbound = concat(vec![meta(Oifname), payload(proto, "saddr")]);
        rule(
            batch,
            FORWARD,
            "overlay: from the mesh into the network of the source",
            [
                is_if(Iifname, MESH_DEVICE),
                is_in(inbound, set),
                Accept(None),
            ],
        );
        let outbound = concat(vec![meta(Iifname), payload(proto, "daddr")]);
        rule(
            batch,
            FORWARD,
            "overlay: onto the mesh within the network",
            [
                is_if(Oifname, MESH_DEVICE),
                is_in(outbound, set),
                Accept(None),
            ],
        );
    }
    // A connection the routing mesh brought from another node, to a task of this one: its
    // source is the client, outside every overlay (`table ip berth_lb` marked it and
    // allows only the ingress backends).
    let mesh_mark = Expression::BinaryOperation(Box::new(nftables::expr::BinaryOperation::AND(
        Expression::Named(NamedExpression::CT(nftables::expr::CT {
            key: "mark".into(),
            family: None,
            dir: None,
        })),
        Expression::Number(crate::MESH_MARK),
    )));
    rule(
        batch,
        FORWARD,
        "overlay: the routing mesh's connections",
        [
            is_if(Iifname, MESH_DEVICE),
            Statement::Match(Match {
                left: mesh_mark,
                right: Expression::Number(crate::MESH_MARK),
                op: Operator::EQ,
            }),
            Accept(None),
        ],
    );
    rule(
        batch,
        FORWARD,
        "overlay: nothing else between the mesh and a network",
        [is_if(Iifname, MESH_DEVICE), Drop(None)],
    );
    rule(
        batch,
        FORWARD,
        "overlay: nothing else onto the mesh from a network",
        [
            is_if(Oifname, MESH_DEVICE),
            is_in(meta(Iifname), SET_BRIDGES),
            Drop(None),
        ],
    );
    let ii = || is_in(meta(Iifname), SET_INTERNAL);
    let oi = || is_in(meta(Oifname), SET_INTERNAL);
    rule(
        batch,
        FORWARD,
        "internal: nothing leaves",
        [ii(), Drop(None)],
    );
    rule(
        batch,
        FORWARD,
        "internal: nothing is routed in",
        [oi(), Drop(None)],
    );
    // A published port may be reached from another network through the host's address.
    rule(
        batch,
        FORWARD,
        "published ports",
        [ct_status_dnat(), Accept(None)],
    );
    let ib = is_in(meta(Iifname), SET_BRIDGES);
    let ob = is_in(meta(Oifname), SET_BRIDGES);
    rule(
        batch,
        FORWARD,
        "isolation between networks",
        [ib, ob, Drop(None)],
    );

    batch.add(base_chain(
        POSTROUTING,
        NfChainType::NAT,
        NfHook::Postrouting,
        PRIO_SRCNAT,
    ));
    // Between nodes the source stays the container's: egress is masqueraded only where
    // it leaves the cluster.
    rule(
        batch,
        POSTROUTING,
        "overlay: no NAT on the mesh",
        [is_if(Oifname, MESH_DEVICE), Accept(None)],
    );
    for (proto, set) in [("ip", SET_HAIRPIN4), ("ip6", SET_HAIRPIN6)] {
        let key = concat(vec![meta(Oifname), payload(proto, "saddr")]);
        rule(
            batch,
            POSTROUTING,
            "hairpin",
            [ct_status_dnat(), is_in(key, set), Masquerade(None)],
        );
    }
    for (proto, set) in [("ip", SET_MASQ4), ("ip6", SET_MASQ6)] {
        let from = is_in(payload(proto, "saddr"), set);
        let leaving = not_in(meta(Oifname), SET_BRIDGES);
        rule(
            batch,
            POSTROUTING,
            "masquerade egress",
            [from, leaving, Masquerade(None)],
        );
    }

    add_port_chains(batch);
    add_mark_chains(batch);
}

fn add_mark_chains(batch: &mut Batch<'static>) {
    let ct_mark = || {
        Expression::Named(NamedExpression::CT(nftables::expr::CT {
            key: "mark".into(),
            family: None,
            dir: None,
        }))
    };
    let mark = Expression::Number(PROXY_MARK);
    batch.add(base_chain(
        MARK_OUTPUT,
        NfChainType::Route,
        NfHook::Output,
        PRIO_MANGLE,
    ));
    rule(
        batch,
        MARK_OUTPUT,
        "transparent proxy: its connections remember the mark",
        [
            Statement::Match(Match {
                left: meta(MetaKey::Mark),
                right: Expression::Number(PROXY_SOCKET_MARK),
                op: Operator::EQ,
            }),
            Statement::Mangle(nftables::stmt::Mangle {
                key: ct_mark(),
                value: mark.clone(),
            }),
        ],
    );
    batch.add(base_chain(
        MARK_PREROUTING,
        NfChainType::Filter,
        NfHook::Prerouting,
        PRIO_MANGLE,
    ));
    rule(
        batch,
        MARK_PREROUTING,
        "transparent proxy: answers go back to the proxy",
        [
            Statement::Match(Match {
                left: ct_mark(),
                right: mark,
                op: Operator::EQ,
            }),
            Statement::Mangle(nftables::stmt::Mangle {
                key: meta(MetaKey::Mark),
                value: ct_mark(),
            }),
        ],
    );
}

/// Published ports: a `dnat` through a map lookup, so the 10 000th port is one more element
/// and a packet costs one hash lookup whatever the number of ports. Loopback destinations
/// are never DNATed (that needs `route_localnet`, which exposes 127/8 to the network): the
/// daemon's own listening socket on the port serves them as a proxy.
fn add_port_chains(batch: &mut Batch<'static>) {
    use MetaKey::{Iifname, L4proto, Nfproto};
    use Statement::Drop;
    batch.add(base_chain(
        RAW_PREROUTING,
        NfChainType::Filter,
        NfHook::Prerouting,
        PRIO_RAW,
    ));
    let key = concat(vec![
        payload("ip", "daddr"),
        meta(L4proto),
        payload("th", "dport"),
    ]);
    rule(
        batch,
        RAW_PREROUTING,
        "loopback-published ports are for local clients only",
        [
            Statement::Match(Match {
                left: meta(Iifname),
                right: Expression::String("lo".into()),
                op: Operator::NEQ,
            }),
            is_in(key, SET_LOOPBACK4),
            Drop(None),
        ],
    );
    for (chain, hook) in [(PREROUTING, NfHook::Prerouting), (OUTPUT, NfHook::Output)] {
        batch.add(base_chain(chain, NfChainType::NAT, hook, PRIO_DSTNAT));
        // Before any published port: a sandbox asking its gateway, or the host asking
        // 127.0.0.11, reaches the resolver even when port 53 is published.
        resolver_rule(batch, chain);
        for (fam, nfproto, nat_family, any_map, one_map, loopback) in [
            (
                "ip",
                "ipv4",
                NATFamily::IP,
                MAP_PORTS4_ANY,
                MAP_PORTS4,
                "127.0.0.0/8",
            ),
            (
                "ip6",
                "ipv6",
                NATFamily::IP6,
                MAP_PORTS6_ANY,
                MAP_PORTS6,
                "::1/128",
            ),
        ] {
            let family = Statement::Match(Match {
                left: meta(Nfproto),
                right: Expression::String(nfproto.into()),
                op: Operator::EQ,
            });
            let not_loopback = Statement::Match(Match {
                left: payload(fam, "daddr"),
                right: prefix(&loopback.parse().expect("constant")),
                op: Operator::NEQ,
            });
            let local = Statement::Match(Match {
                left: Expression::Named(NamedExpression::Fib(Fib {
                    result: FibResult::Type,
                    flags: HashSet::from([FibFlag::Daddr]),
                })),
                right: Expression::String("local".into()),
                op: Operator::EQ,
            });
            let any_key = concat(vec![meta(L4proto), payload("th", "dport")]);
            let addr_key = concat(vec![
                payload(fam, "daddr"),
                meta(L4proto),
                payload("th", "dport"),
            ]);
            let lookup = |key: Expression<'static>, map: &str| {
                Expression::Named(NamedExpression::Map(Box::new(nftables::expr::Map {
                    key,
                    data: Expression::String(format!("@{map}").into()),
                })))
            };
            let dnat = |key: Expression<'static>, base: &str| {
                Statement::DNAT(Some(NAT {
                    addr: Some(lookup(key.clone(), addr_map(base))),
                    family: Some(nat_family),
                    port: Some(lookup(key, port_map(base))),
                    flags: None,
                }))
            };
            rule(
                batch,
                chain,
                "published on every address",
                [
                    family.clone(),
                    not_loopback.clone(),
                    local,
                    dnat(any_key, any_map),
                ],
            );
            rule(
                batch,
                chain,
                "published on one address",
                [family, not_loopback, dnat(addr_key, one_map)],
            );
        }
    }
}

fn resolver_rule(batch: &mut Batch<'static>, chain: &'static str) {
    let dns = || {
        [
            Statement::Match(Match {
                left: meta(MetaKey::L4proto),
                right: Expression::Named(NamedExpression::Set(vec![
                    SetItem::Element(Expression::String("tcp".into())),
                    SetItem::Element(Expression::String("udp".into())),
                ])),
                op: Operator::EQ,
            }),
            Statement::Match(Match {
                left: payload("th", "dport"),
                right: Expression::Number(53),
                op: Operator::EQ,
            }),
        ]
    };
    let [proto, port] = dns();
    if chain == PREROUTING {
        // Only to the gateway of the bridge the query came in on.
        let gateway = Statement::Match(Match {
            left: Expression::Named(NamedExpression::Fib(Fib {
                result: FibResult::Type,
                flags: HashSet::from([FibFlag::Daddr, FibFlag::Iif]),
            })),
            right: Expression::String("local".into()),
            op: Operator::EQ,
        });
        let redirect = Statement::Redirect(Some(NAT {
            addr: None,
            family: None,
            port: Some(Expression::Number(RESOLVER_PORT.into())),
            flags: None,
        }));
        rule(
            batch,
            chain,
            "the embedded resolver on each gateway",
            [
                is_in(meta(MetaKey::Iifname), SET_BRIDGES),
                proto,
                port,
                gateway,
                redirect,
            ],
        );
    } else {
        let to_host_addr = Statement::Match(Match {
            left: payload("ip", "daddr"),
            right: Expression::String(RESOLVER_HOST_ADDR.into()),
            op: Operator::EQ,
        });
        let dnat = Statement::DNAT(Some(NAT {
            addr: Some(Expression::String(RESOLVER_HOST_ADDR.into())),
            family: Some(NATFamily::IP),
            port: Some(Expression::Number(RESOLVER_PORT.into())),
            flags: None,
        }));
        rule(
            batch,
            chain,
            "the embedded resolver for the host",
            [to_host_addr, proto, port, dnat],
        );
    }
}

fn ct_status_dnat() -> Statement<'static> {
    Statement::Match(Match {
        left: Expression::Named(NamedExpression::CT(nftables::expr::CT {
            key: "status".into(),
            family: None,
            dir: None,
        })),
        right: Expression::String("dnat".into()),
        op: Operator::IN,
    })
}

fn base_chain(
    name: &'static str,
    kind: NfChainType,
    hook: NfHook,
    prio: i32,
) -> NfListObject<'static> {
    NfListObject::Chain(Chain {
        family: FAMILY,
        table: TABLE.into(),
        name: name.into(),
        _type: Some(kind),
        hook: Some(hook),
        prio: Some(prio),
        policy: Some(NfChainPolicy::Accept),
        ..Chain::default()
    })
}

/// Comments make the rules self-explanatory in `nft list ruleset`.
fn rule<const N: usize>(
    batch: &mut Batch<'static>,
    chain: &'static str,
    comment: &str,
    expr: [Statement<'static>; N],
) {
    batch.add(NfListObject::Rule(Rule {
        family: FAMILY,
        table: TABLE.into(),
        chain: chain.into(),
        expr: Vec::from(expr).into(),
        handle: None,
        index: None,
        comment: Some(format!("berth: {comment}").into()),
    }));
}

/// One element command for a whole set keeps large batches small.
pub(crate) fn elements(set: &'static str, elem: Vec<Expression<'static>>) -> NfListObject<'static> {
    NfListObject::Element(Element {
        family: FAMILY,
        table: TABLE.into(),
        name: set.into(),
        elem: elem.into(),
    })
}

fn meta(key: MetaKey) -> Expression<'static> {
    Expression::Named(NamedExpression::Meta(Meta { key }))
}

fn payload(protocol: &'static str, field: &'static str) -> Expression<'static> {
    let field = PayloadField {
        protocol: protocol.into(),
        field: field.into(),
    };
    Expression::Named(NamedExpression::Payload(Payload::PayloadField(field)))
}

pub(crate) fn concat(parts: Vec<Expression<'static>>) -> Expression<'static> {
    Expression::Named(NamedExpression::Concat(parts))
}

pub(crate) fn ifname(name: &str) -> Expression<'static> {
    Expression::String(name.to_string().into())
}

pub(crate) fn prefix(net: &IpNet) -> Expression<'static> {
    Expression::Named(NamedExpression::Prefix(Prefix {
        addr: Box::new(Expression::String(net.network().to_string().into())),
        len: net.prefix_len().into(),
    }))
}

fn is_if(key: MetaKey, name: &str) -> Statement<'static> {
    Statement::Match(Match {
        left: meta(key),
        right: ifname(name),
        op: Operator::EQ,
    })
}

fn is_in(left: Expression<'static>, set: &str) -> Statement<'static> {
    lookup(left, set, Operator::EQ)
}

fn not_in(left: Expression<'static>, set: &str) -> Statement<'static> {
    lookup(left, set, Operator::NEQ)
}

fn lookup(left: Expression<'static>, set: &str, op: Operator) -> Statement<'static> {
    let right = Expression::String(format!("@{set}").into());
    Statement::Match(Match { left, right, op })
}
