// Offsets into address spaces are computed in i128 and u128 and stay within a pool's
// size, so these casts cannot lose a value.
#![allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::cast_possible_truncation
)]
//! Random operation sequences checked against a naive model that enumerates
//! the (small) pool, so every answer of `Pool` is predicted independently.

use berth_ipam::{ErrorKind, IpamError, Pool, PoolConfig};
use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const V4_BASE: u128 = 0x0a01_0000; // 10.1.0.0
const V6_BASE: u128 = 0xfd00 << 112; // fd00::

/// A pool of at most 64 addresses, valid by construction.
#[derive(Debug, Clone)]
struct Shape {
    v6: bool,
    host_bits: u8,
    gateway: Option<u8>,
    range: Option<(u8, u8)>,
    aux: Vec<u8>,
}

fn arb_shape() -> impl Strategy<Value = Shape> {
    (any::<bool>(), 0u8..=6).prop_flat_map(|(v6, host_bits)| {
        let size = 1u8 << host_bits;
        (
            proptest::option::of(0..size),
            proptest::option::of((0..=host_bits, any::<u8>())),
            proptest::collection::vec(0..size, 0..4),
        )
            .prop_map(move |(gateway, range, aux)| Shape {
                v6,
                host_bits,
                gateway,
                range,
                aux,
            })
    })
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(u8),
    /// Offset from the network address; may fall outside the subnet.
    Static(i16, u8),
    /// Releases an allocated address (picked by index) or, if `false`, any address.
    Release(Index, i16, bool),
    ReleaseOwner(u8),
    RoundTrip,
}

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => any::<u8>().prop_map(Op::Alloc),
        2 => (-2i16..70, any::<u8>()).prop_map(|(o, w)| Op::Static(o, w)),
        3 => (any::<Index>(), -2i16..70, any::<bool>()).prop_map(|(i, o, p)| Op::Release(i, o, p)),
        1 => any::<u8>().prop_map(Op::ReleaseOwner),
        1 => Just(Op::RoundTrip),
    ]
}

fn addr(v6: bool, off: i128) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from((V6_BASE as i128 + off) as u128))
    } else {
        IpAddr::V4(Ipv4Addr::from((V4_BASE as i128 + off) as u32))
    }
}

fn owner(o: u8) -> String {
    format!("c{}", o % 3)
}

struct Model {
    v6: bool,
    gateway: u128,
    size: u128,
    range: (u128, u128),
    reserved: BTreeSet<u128>,
    allocated: BTreeMap<u128, String>,
    cursor: Option<u128>,
    now: u64,
    taken_at: HashMap<u128, u64>,
    freed_at: HashMap<u128, u64>,
    /// When each currently free address was last released, and where the cursor was then.
    released_at: HashMap<u128, (u64, Option<u128>)>,
}

impl Model {
    fn ip(&self, off: i128) -> IpAddr {
        addr(self.v6, off)
    }

    fn candidates(&self) -> impl Iterator<Item = u128> + '_ {
        (self.range.0..=self.range.1).filter(|o| !self.reserved.contains(o))
    }

    fn free(&self) -> Vec<u128> {
        self.candidates()
            .filter(|o| !self.allocated.contains_key(o))
            .collect()
    }

    /// Serial walk: first free candidate after the cursor, wrapping once.
    fn next(&self) -> Option<u128> {
        let free = self.free();
        let after = |o: &&u128| self.cursor.is_none_or(|c| **o > c);
        free.iter().find(after).or_else(|| free.first()).copied()
    }

    fn take(&mut self, off: u128, who: &str) {
        self.allocated.insert(off, who.to_owned());
        self.taken_at.insert(off, self.now);
        self.released_at.remove(&off);
    }

    fn release(&mut self, off: u128) -> bool {
        let held = self.allocated.remove(&off).is_some();
        if held {
            self.released_at.insert(off, (self.now, self.cursor));
            self.freed_at.insert(off, self.now);
        }
        held
    }
}

fn build(shape: &Shape) -> (PoolConfig, Model) {
    let max = if shape.v6 { 128 } else { 32 };
    let hb = shape.host_bits;
    let size = 1u128 << hb;
    let structural = |o: u128| hb >= 2 && (o == 0 || (!shape.v6 && o == size - 1));
    let mut m = Model {
        v6: shape.v6,
        gateway: 0,
        size,
        range: (0, size - 1),
        reserved: BTreeSet::new(),
        allocated: BTreeMap::new(),
        cursor: None,
        now: 0,
        taken_at: HashMap::new(),
        freed_at: HashMap::new(),
        released_at: HashMap::new(),
    };
    let net = |off: u128, bits: u8| IpNet::new(m.ip(off as i128), max - bits).unwrap();
    let mut cfg = PoolConfig::new(net(0, hb));
    let gw = match shape.gateway.map(u128::from).filter(|g| !structural(*g)) {
        Some(g) => {
            cfg.gateway = Some(m.ip(g as i128));
            g
        }
        None => u128::from(size > 1),
    };
    if let Some((rhb, idx)) = shape.range {
        let start = (u128::from(idx) % (1 << (hb - rhb))) << rhb;
        cfg.ip_range = Some(net(start, rhb));
        m.range = (start, start + (1 << rhb) - 1);
    }
    m.gateway = gw;
    m.reserved.insert(gw);
    if hb >= 2 {
        m.reserved.insert(0);
        if !shape.v6 {
            m.reserved.insert(size - 1);
        }
    }
    for (i, a) in shape.aux.iter().map(|a| u128::from(*a)).enumerate() {
        if m.reserved.insert(a) {
            cfg.aux_addresses.insert(format!("aux{i}"), m.ip(a as i128));
        }
    }
    (cfg, m)
}

/// Cyclic open interval (cursor, x) in walk order; no cursor means the walk starts at the bottom.
fn walked_before(cursor: Option<u128>, x: u128, y: u128) -> bool {
    match cursor {
        None => y < x,
        Some(c) if c < x => c < y && y < x,
        Some(c) => y != x && (y > c || y < x),
    }
}

fn step(pool: &mut Pool, m: &mut Model, op: Op) -> Result<(), TestCaseError> {
    m.now += 1;
    match op {
        Op::Alloc(o) => {
            let who = owner(o);
            match (pool.allocate(&who), m.next()) {
                (Ok(ip), Some(off)) => {
                    prop_assert_eq!(ip, m.ip(off as i128));
                    let dyn_net = pool.config().ip_range.unwrap_or(pool.subnet());
                    prop_assert!(dyn_net.contains(&ip));
                    prop_assert!(!m.reserved.contains(&off), "handed out reserved {}", ip);
                    // "Not reused before the pool was walked once": the walk from
                    // where the cursor stood at the release to this address
                    // would have taken any address that stayed free all along.
                    if let Some(&(t, c)) = m.released_at.get(&off) {
                        for y in m.candidates().filter(|y| walked_before(c, off, *y)) {
                            let held_since = m.allocated.contains_key(&y)
                                || m.taken_at.get(&y).is_some_and(|&ty| ty > t)
                                || m.freed_at.get(&y).is_some_and(|&ty| ty > t);
                            prop_assert!(
                                held_since,
                                "{} reused while {} stayed free",
                                ip,
                                m.ip(y as i128)
                            );
                        }
                    }
                    m.take(off, &who);
                    m.cursor = Some(off);
                }
                (Err(e), None) => {
                    prop_assert_eq!(e.kind(), ErrorKind::Exhausted);
                    prop_assert_eq!(pool.available(), 0);
                }
                (got, want) => {
                    prop_assert!(false, "pool gave {:?}, model expected {:?}", got, want)
                }
            }
        }
        Op::Static(off, o) => {
            let who = owner(o);
            let off = i128::from(off);
            let ip = m.ip(off);
            let got = pool.allocate_static(ip, &who);
            if off < 0 || off as u128 >= m.size {
                prop_assert!(
                    matches!(got, Err(IpamError::AddressOutsideSubnet { .. })),
                    "{:?}",
                    got
                );
                return Ok(());
            }
            let off = off as u128;
            if m.reserved.contains(&off) {
                prop_assert!(
                    matches!(got, Err(IpamError::AddressReserved { .. })),
                    "{:?}",
                    got
                );
            } else if let Some(held) = m.allocated.get(&off).filter(|h| **h != who) {
                prop_assert_eq!(
                    got,
                    Err(IpamError::AddressInUse {
                        ip,
                        owner: held.clone()
                    })
                );
            } else {
                prop_assert_eq!(got, Ok(()));
                if !m.allocated.contains_key(&off) {
                    m.take(off, &who);
                }
                prop_assert!(pool.contains(ip));
            }
        }
        Op::Release(idx, off, pick) => {
            let held: Vec<u128> = m.allocated.keys().copied().collect();
            let target = if pick && !held.is_empty() {
                *idx.get(&held) as i128
            } else {
                i128::from(off)
            };
            let expect = (0..m.size as i128).contains(&target) && m.release(target as u128);
            prop_assert_eq!(pool.release(m.ip(target)), expect);
        }
        Op::ReleaseOwner(o) => {
            let who = owner(o);
            let mine: Vec<u128> = m
                .allocated
                .iter()
                .filter(|(_, w)| **w == who)
                .map(|(k, _)| *k)
                .collect();
            for k in &mine {
                m.release(*k);
            }
            let expect: Vec<IpAddr> = mine.iter().map(|k| m.ip(*k as i128)).collect();
            prop_assert_eq!(pool.release_owner(&who), expect);
        }
        Op::RoundTrip => {
            let back: Pool = serde_json::from_str(&serde_json::to_string(pool).unwrap()).unwrap();
            prop_assert_eq!(&back, &*pool);
            *pool = back;
        }
    }
    Ok(())
}

fn check_invariants(pool: &Pool, m: &Model) -> Result<(), TestCaseError> {
    let got: Vec<(IpAddr, String)> = pool.allocated().map(|(ip, o)| (ip, o.to_owned())).collect();
    let want: Vec<(IpAddr, String)> = m
        .allocated
        .iter()
        .map(|(k, o)| (m.ip(*k as i128), o.clone()))
        .collect();
    prop_assert_eq!(got, want);
    for (ip, o) in pool.allocated() {
        prop_assert!(pool.contains(ip));
        prop_assert_eq!(pool.owner_of(ip), Some(o));
        prop_assert!(pool.reserved_reason(ip).is_none());
    }
    prop_assert_eq!(pool.available(), m.free().len() as u128);
    Ok(())
}

/// Applies `op` without a model; the outcome as text, for comparing two pools.
fn outcome(pool: &mut Pool, shape: &Shape, op: &Op) -> String {
    let at = |off: &i16| addr(shape.v6, i128::from(*off));
    match op {
        Op::Alloc(o) => format!("{:?}", pool.allocate(&owner(*o))),
        Op::Static(off, o) => format!("{:?}", pool.allocate_static(at(off), &owner(*o))),
        Op::Release(idx, off, pick) => {
            let held: Vec<IpAddr> = pool.allocated().map(|(ip, _)| ip).collect();
            let ip = if *pick && !held.is_empty() {
                *idx.get(&held)
            } else {
                at(off)
            };
            format!("{}", pool.release(ip))
        }
        Op::ReleaseOwner(o) => format!("{:?}", pool.release_owner(&owner(*o))),
        Op::RoundTrip => String::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn pool_matches_model(shape in arb_shape(), ops in proptest::collection::vec(arb_op(), 0..80)) {
        let (cfg, mut m) = build(&shape);
        let mut pool = Pool::new(cfg.clone()).map_err(|e| TestCaseError::fail(format!("{cfg:?}: {e}")))?;
        prop_assert_eq!(pool.gateway(), m.ip(m.gateway as i128));
        check_invariants(&pool, &m)?;
        for op in ops {
            step(&mut pool, &mut m, op)?;
            check_invariants(&pool, &m)?;
        }
    }

    #[test]
    fn serde_round_trip_preserves_behaviour(
        shape in arb_shape(),
        before in proptest::collection::vec(arb_op(), 0..40),
        after in proptest::collection::vec(arb_op(), 0..40),
    ) {
        let (cfg, _) = build(&shape);
        let mut kept = Pool::new(cfg).unwrap();
        for op in &before {
            outcome(&mut kept, &shape, op);
        }
        let mut restored: Pool = serde_json::from_str(&serde_json::to_string(&kept).unwrap()).unwrap();
        for op in &after {
            prop_assert_eq!(outcome(&mut kept, &shape, op), outcome(&mut restored, &shape, op));
        }
        prop_assert_eq!(kept, restored);
    }
}
