use crate::addr::{bounds, from_u128, same_family, to_u128};
use crate::error::{IpamError, Reserved};
use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::IpAddr;

/// What the user asked for one subnet of a network (`--subnet`, `--gateway`,
/// `--ip-range`, `--aux-address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolConfig {
    pub subnet: IpNet,
    /// `None` means the first usable address (network + 1).
    #[serde(default)]
    pub gateway: Option<IpAddr>,
    /// Limits dynamic allocation only; `--ip` may pick outside it.
    #[serde(default)]
    pub ip_range: Option<IpNet>,
    /// Reserved for things outside berth's control; never handed out.
    #[serde(default)]
    pub aux_addresses: BTreeMap<String, IpAddr>,
}

impl PoolConfig {
    pub fn new(subnet: IpNet) -> PoolConfig {
        PoolConfig {
            subnet,
            gateway: None,
            ip_range: None,
            aux_addresses: BTreeMap::new(),
        }
    }
}

/// The addresses of one subnet and who holds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pool {
    config: PoolConfig,
    gateway: IpAddr,
    /// Sparse on purpose: an IPv6 /64 must cost only what is in use.
    #[serde(default)]
    allocated: BTreeMap<IpAddr, String>,
    /// Kept after that address is released: the walk resumes after it, which
    /// is what keeps a freed address unused until the pool has gone round once.
    #[serde(default)]
    last_allocated: Option<IpAddr>,
}

impl Pool {
    pub fn new(cfg: PoolConfig) -> Result<Pool, IpamError> {
        let subnet = cfg.subnet;
        check_canonical("subnet", subnet)?;
        if let Some(range) = cfg.ip_range {
            if !same_family(&subnet, &range.network()) {
                return Err(mismatch("ip-range", range, subnet));
            }
            check_canonical("ip-range", range)?;
            if range.prefix_len() < subnet.prefix_len() || !subnet.contains(&range.network()) {
                return Err(IpamError::RangeOutsideSubnet { range, subnet });
            }
        }
        let gateway = match cfg.gateway {
            None => default_gateway(&subnet),
            Some(gateway) => {
                if !same_family(&subnet, &gateway) {
                    return Err(mismatch("gateway", gateway, subnet));
                }
                if !subnet.contains(&gateway) {
                    return Err(IpamError::GatewayOutsideSubnet { gateway, subnet });
                }
                if let Some(reason) = structural_reason(&subnet, gateway) {
                    return Err(IpamError::GatewayReserved {
                        gateway,
                        subnet,
                        reason,
                    });
                }
                gateway
            }
        };
        let mut seen: BTreeMap<IpAddr, &str> = BTreeMap::new();
        for (name, &addr) in &cfg.aux_addresses {
            if !same_family(&subnet, &addr) {
                return Err(mismatch(
                    "auxiliary address",
                    format!("{name}={addr}"),
                    subnet,
                ));
            }
            if !subnet.contains(&addr) {
                return Err(IpamError::AuxOutsideSubnet {
                    name: name.clone(),
                    addr,
                    subnet,
                });
            }
            let reason = structural_reason(&subnet, addr)
                .or_else(|| (addr == gateway).then_some(Reserved::Gateway))
                .or_else(|| {
                    seen.get(&addr)
                        .map(|n| Reserved::Auxiliary((*n).to_owned()))
                });
            if let Some(reason) = reason {
                return Err(IpamError::AuxReserved {
                    name: name.clone(),
                    addr,
                    subnet,
                    reason,
                });
            }
            seen.insert(addr, name);
        }
        Ok(Pool {
            config: cfg,
            gateway,
            allocated: BTreeMap::new(),
            last_allocated: None,
        })
    }

    /// The pool without its allocations, cursor kept. A daemon that records each address
    /// with its owner elsewhere stores this, so a commit costs the same however many
    /// addresses are in use; `allocate_static` puts the addresses back at load.
    pub fn persistable(&self) -> Pool {
        Pool {
            config: self.config.clone(),
            gateway: self.gateway,
            allocated: BTreeMap::new(),
            last_allocated: self.last_allocated,
        }
    }

    pub fn config(&self) -> &PoolConfig {
        &self.config
    }

    pub fn subnet(&self) -> IpNet {
        self.config.subnet
    }

    pub fn gateway(&self) -> IpAddr {
        self.gateway
    }

    pub fn prefix_len(&self) -> u8 {
        self.config.subnet.prefix_len()
    }

    /// Serial allocation: next free address after the last one handed out,
    /// wrapping once around the ip-range (or subnet). Cost is proportional to
    /// the run of taken addresses after the cursor, never to the pool size.
    pub fn allocate(&mut self, owner: &str) -> Result<IpAddr, IpamError> {
        let net = self.dynamic_net();
        let (lo, hi) = bounds(&net);
        let reserved = self.reserved_addrs();
        let start = match self.last_allocated {
            Some(last) if net.contains(&last) && to_u128(last) < hi => to_u128(last) + 1,
            _ => lo,
        };
        let found = self
            .first_free(start, hi, &reserved)
            .or_else(|| (start > lo).then(|| self.first_free(lo, start - 1, &reserved))?);
        let Some(n) = found else {
            return Err(IpamError::Exhausted {
                subnet: self.config.subnet,
                range: self.config.ip_range,
            });
        };
        let ip = from_u128(n, self.is_v6());
        self.allocated.insert(ip, owner.to_owned());
        self.last_allocated = Some(ip);
        Ok(ip)
    }

    /// A user-chosen address. Asking again for an address the same owner
    /// already holds succeeds, so a retried request is harmless.
    pub fn allocate_static(&mut self, ip: IpAddr, owner: &str) -> Result<(), IpamError> {
        let subnet = self.config.subnet;
        if !same_family(&subnet, &ip) {
            return Err(mismatch("address", ip, subnet));
        }
        if !subnet.contains(&ip) {
            return Err(IpamError::AddressOutsideSubnet { ip, subnet });
        }
        if let Some(reason) = self.reserved_reason(ip) {
            return Err(IpamError::AddressReserved { ip, subnet, reason });
        }
        match self.allocated.get(&ip) {
            Some(held) if held == owner => Ok(()),
            Some(held) => Err(IpamError::AddressInUse {
                ip,
                owner: held.clone(),
            }),
            None => {
                self.allocated.insert(ip, owner.to_owned());
                Ok(())
            }
        }
    }

    /// Resumes the serial walk after `ip`: a restarted allocator continues where it stopped
    /// (its cursor is not written on every allocation). Ignored outside the subnet.
    pub fn resume_after(&mut self, ip: IpAddr) {
        if self.contains(ip) {
            self.last_allocated = Some(ip);
        }
    }

    pub fn release(&mut self, ip: IpAddr) -> bool {
        self.allocated.remove(&ip).is_some()
    }

    /// Returns the released addresses in ascending order.
    pub fn release_owner(&mut self, owner: &str) -> Vec<IpAddr> {
        let mine: Vec<IpAddr> = self
            .allocated
            .iter()
            .filter(|(_, o)| o.as_str() == owner)
            .map(|(ip, _)| *ip)
            .collect();
        for ip in &mine {
            self.allocated.remove(ip);
        }
        mine
    }

    pub fn owner_of(&self, ip: IpAddr) -> Option<&str> {
        self.allocated.get(&ip).map(String::as_str)
    }

    /// In ascending address order.
    pub fn allocated(&self) -> impl Iterator<Item = (IpAddr, &str)> {
        self.allocated.iter().map(|(ip, o)| (*ip, o.as_str()))
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        self.config.subnet.contains(&ip)
    }

    /// Free addresses left for [`Pool::allocate`]; static ones outside the
    /// ip-range do not count. Exact except for a whole-::/0 pool, where it saturates.
    pub fn available(&self) -> u128 {
        let net = self.dynamic_net();
        let (lo, hi) = bounds(&net);
        let reserved = self.reserved_addrs();
        let v6 = self.is_v6();
        let reserved_in = reserved.iter().filter(|&&r| lo <= r && r <= hi).count();
        let allocated_in = self
            .allocated
            .range(from_u128(lo, v6)..=from_u128(hi, v6))
            .filter(|(ip, _)| reserved.binary_search(&to_u128(**ip)).is_err())
            .count();
        let taken = (reserved_in + allocated_in) as u128;
        // hi - lo is size - 1, which fits in u128 even for ::/0.
        match taken {
            0 => (hi - lo).saturating_add(1),
            t => (hi - lo) - (t - 1),
        }
    }

    /// Why `ip` can never be handed out, if it can't.
    pub fn reserved_reason(&self, ip: IpAddr) -> Option<Reserved> {
        if !self.contains(ip) {
            return None;
        }
        structural_reason(&self.config.subnet, ip)
            .or_else(|| (ip == self.gateway).then_some(Reserved::Gateway))
            .or_else(|| {
                let (name, _) = self.config.aux_addresses.iter().find(|(_, a)| **a == ip)?;
                Some(Reserved::Auxiliary(name.clone()))
            })
    }

    fn is_v6(&self) -> bool {
        self.config.subnet.network().is_ipv6()
    }

    fn dynamic_net(&self) -> IpNet {
        self.config.ip_range.unwrap_or(self.config.subnet)
    }

    /// Sorted, for binary search during the walk.
    fn reserved_addrs(&self) -> Vec<u128> {
        let subnet = &self.config.subnet;
        let mut out = vec![to_u128(self.gateway)];
        if has_special_addrs(subnet) {
            out.push(to_u128(subnet.network()));
            if !self.is_v6() {
                out.push(to_u128(subnet.broadcast()));
            }
        }
        out.extend(self.config.aux_addresses.values().map(|a| to_u128(*a)));
        out.sort_unstable();
        out.dedup();
        out
    }

    /// First address in `a..=b` that is neither reserved nor allocated.
    fn first_free(&self, a: u128, b: u128, reserved: &[u128]) -> Option<u128> {
        let v6 = self.is_v6();
        let mut taken = self
            .allocated
            .range(from_u128(a, v6)..=from_u128(b, v6))
            .map(|(ip, _)| to_u128(*ip))
            .peekable();
        let mut pos = a;
        loop {
            while taken.next_if(|&t| t < pos).is_some() {}
            let busy = reserved.binary_search(&pos).is_ok() || taken.next_if_eq(&pos).is_some();
            if !busy {
                return Some(pos);
            }
            if pos >= b {
                return None;
            }
            pos += 1;
        }
    }
}

/// Subnets of /31 and /32 (IPv6 /127, /128) have no network or broadcast
/// address to spare (RFC 3021, RFC 6164): every address is a host.
fn has_special_addrs(subnet: &IpNet) -> bool {
    subnet.max_prefix_len() - subnet.prefix_len() >= 2
}

/// Reservations that follow from the subnet alone. IPv6 has no broadcast,
/// but its network address is the subnet-router anycast address.
fn structural_reason(subnet: &IpNet, ip: IpAddr) -> Option<Reserved> {
    if !has_special_addrs(subnet) {
        return None;
    }
    if ip == subnet.network() {
        return Some(Reserved::Network);
    }
    if ip.is_ipv4() && ip == subnet.broadcast() {
        return Some(Reserved::Broadcast);
    }
    None
}

fn default_gateway(subnet: &IpNet) -> IpAddr {
    let (lo, hi) = bounds(subnet);
    // A /32 or /128 has a single address: it can only be its own gateway.
    from_u128(
        if hi > lo { lo + 1 } else { lo },
        subnet.network().is_ipv6(),
    )
}

fn check_canonical(what: &'static str, net: IpNet) -> Result<(), IpamError> {
    let canonical = net.trunc();
    if canonical == net {
        Ok(())
    } else {
        Err(IpamError::HostBitsSet {
            what,
            given: net,
            canonical,
        })
    }
}

fn mismatch(what: &str, value: impl ToString, subnet: IpNet) -> IpamError {
    IpamError::FamilyMismatch {
        what: what.to_owned(),
        value: value.to_string(),
        subnet,
    }
}
