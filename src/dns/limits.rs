//! TCP connection limits of the resolver: per listener (one network, or the host) and per
//! source address, under one overall cap on descriptors. A flood from one container costs
//! that container its TCP answers, not its network's or another network's (the audit's D5:
//! one semaphore for all listeners let one container shut TCP DNS off everywhere).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections from one address to one listener. A resolver client needs one or two
/// (glibc opens one per query when it falls back to TCP); 32 leaves room for a busy one.
pub const PER_SOURCE: usize = 32;
/// Open connections to one listener: aardvark-dns's whole budget, now per network.
pub const PER_LISTENER: usize = 256;
/// Open connections in all: bounds the resolver's descriptors however many networks exist.
pub(super) const TOTAL: usize = 2048;

#[derive(Default)]
struct Counts {
    total: usize,
    by_source: HashMap<IpAddr, usize>,
}

/// One listener's counts, sharing the overall budget with the others.
#[derive(Clone)]
pub(super) struct Limiter {
    own: Arc<Mutex<Counts>>,
    all: Arc<Mutex<usize>>,
    per_source: usize,
    per_listener: usize,
    total: usize,
}

/// A connection's place; given back when dropped.
pub(super) struct Slot {
    limiter: Limiter,
    source: IpAddr,
}

impl Limiter {
    /// The overall budget that every listener's `Limiter` shares.
    pub(super) fn budget() -> Arc<Mutex<usize>> {
        Arc::new(Mutex::new(0))
    }

    pub(super) fn new(all: Arc<Mutex<usize>>) -> Limiter {
        Limiter::with_limits(all, PER_SOURCE, PER_LISTENER, TOTAL)
    }

    pub(super) fn with_limits(
        all: Arc<Mutex<usize>>,
        per_source: usize,
        per_listener: usize,
        total: usize,
    ) -> Limiter {
        Limiter {
            own: Default::default(),
            all,
            per_source,
            per_listener,
            total,
        }
    }

    /// A slot for a new connection from `source`, or `None`: close it at once.
    pub(super) fn admit(&self, source: IpAddr) -> Option<Slot> {
        let mut own = self.own.lock().expect("lock");
        let from = own.by_source.get(&source).copied().unwrap_or(0);
        if from >= self.per_source || own.total >= self.per_listener {
            return None;
        }
        {
            let mut all = self.all.lock().expect("lock");
            if *all >= self.total {
                return None;
            }
            *all += 1;
        }
        own.total += 1;
        *own.by_source.entry(source).or_default() += 1;
        Some(Slot {
            limiter: self.clone(),
            source,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut own = self.limiter.own.lock().expect("lock");
        own.total -= 1;
        if let Some(n) = own.by_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                own.by_source.remove(&self.source);
            }
        }
        *self.limiter.all.lock().expect("lock") -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn one_source_cannot_take_its_listener_or_another() {
        let all = Limiter::budget();
        let n1 = Limiter::with_limits(all.clone(), 2, 3, 5);
        let n2 = Limiter::with_limits(all.clone(), 2, 3, 5);
        let a: Vec<Slot> = (0..5).filter_map(|_| n1.admit(ip("10.0.0.2"))).collect();
        assert_eq!(a.len(), 2, "per source");
        // Another container of the same network still gets in, up to the listener's cap.
        let b = n1.admit(ip("10.0.0.3")).expect("a neighbour");
        assert!(n1.admit(ip("10.0.0.4")).is_none(), "per listener");
        // Another network is untouched by all of that.
        let c: Vec<Slot> = (0..2).filter_map(|_| n2.admit(ip("10.1.0.2"))).collect();
        assert_eq!(c.len(), 2);
        // The overall cap (5) is reached: 3 + 2.
        assert!(n2.admit(ip("10.1.0.3")).is_none(), "total");
        drop(b);
        assert!(
            n2.admit(ip("10.1.0.3")).is_some(),
            "a slot comes back when dropped"
        );
    }

    #[test]
    fn counts_return_to_zero() {
        let all = Limiter::budget();
        let l = Limiter::new(all.clone());
        let slots: Vec<Slot> = (0..PER_SOURCE).filter_map(|_| l.admit(ip("::1"))).collect();
        assert_eq!(slots.len(), PER_SOURCE);
        assert!(l.admit(ip("::1")).is_none());
        drop(slots);
        assert_eq!(*all.lock().unwrap(), 0);
        assert!(l.own.lock().unwrap().by_source.is_empty());
    }
}
