//! The fixed skeleton of `table inet berth`: sets, chains and rules. None of it
//! mentions a network; networks only ever appear as set elements (see rules.rs).

use std::collections::HashSet;

use ipnet::IpNet;
use nftables::batch::Batch;
use nftables::expr::{Expression, Meta, MetaKey, NamedExpression, Payload, PayloadField, Prefix};
use nftables::schema::{
    Chain, Element, NfListObject, Rule, Set, SetFlag, SetType, SetTypeValue, Table,
};
use nftables::stmt::{Match, Operator, Statement};
use nftables::types::{NfChainPolicy, NfChainType, NfFamily, NfHook};

/// The only table berth owns; nothing outside it is ever touched.
pub const TABLE: &str = "berth";

const FAMILY: NfFamily = NfFamily::INet;

pub(crate) const SET_BRIDGES: &str = "bridges";
pub(crate) const SET_INTERNAL: &str = "internal";
pub(crate) const SET_ICC: &str = "icc";
pub(crate) const SET_MASQ4: &str = "masq4";
pub(crate) const SET_MASQ6: &str = "masq6";

const FORWARD: &str = "forward";
const POSTROUTING: &str = "postrouting";

// The JSON schema only takes numeric priorities: nft's `filter` and `srcnat`.
const PRIO_FILTER: i32 = 0;
const PRIO_SRCNAT: i32 = 100;

pub(crate) fn table() -> NfListObject<'static> {
    NfListObject::Table(Table {
        family: FAMILY,
        name: TABLE.into(),
        handle: None,
    })
}

pub(crate) fn sets() -> [NfListObject<'static>; 5] {
    use SetType::{Ifname, Ipv4Addr, Ipv6Addr};
    let single = SetTypeValue::Single;
    [
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
    ]
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
    // With br_netfilter, frames bridged inside one network reach this hook with
    // iifname == oifname == its bridge: icc must be accepted before the drops.
    let pair = concat(vec![meta(Iifname), meta(Oifname)]);
    rule(batch, FORWARD, "icc", [is_in(pair, SET_ICC), Accept(None)]);
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

    // Published ports go here (later issue): maps keyed by `l4proto . dport`
    // (+ host address) -> `addr . port`, looked up by `dnat` in new `prerouting`
    // and `output` (dstnat) chains, so ports too are elements, never rules.
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
