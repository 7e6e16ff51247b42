//! Host-port allocation. The plan is pure; taking a port is delegated to [`Claims`], which in
//! the daemon checks the other containers' bindings *and* binds a real socket (so a port held
//! by a host process is found, and no process can take a published port later).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use crate::error::PortError;
use crate::spec::{PortProto, PortRange, Proto};

/// One `PortBindings` entry as the daemon receives it (from berth's CLI or docker's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingRequest {
    pub container: PortProto,
    /// `None`: all addresses (0.0.0.0, and :: when the host has IPv6).
    pub ip: Option<IpAddr>,
    /// `None`: ephemeral. A range: the first free port in it.
    pub ports: Option<PortRange>,
}

impl BindingRequest {
    /// From the API's strings: `HostIp` ("" or an address) and `HostPort` ("", "8080" or
    /// "9000-9100").
    pub fn parse(container: PortProto, host_ip: &str, host_port: &str) -> Result<Self, PortError> {
        let whole = format!("{host_ip}:{host_port}:{container}");
        let ip = crate::spec::host_ip(host_ip, &whole)?;
        let ports = if host_port.is_empty() {
            None
        } else {
            Some(PortRange::parse(host_port, &whole, "host port")?)
        };
        Ok(BindingRequest {
            container,
            ip,
            ports,
        })
    }
}

/// A binding in effect: what `docker port` prints, what the DNAT maps hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Published {
    pub container: PortProto,
    pub host_ip: IpAddr,
    pub host_port: u16,
}

/// Two bindings of one protocol and port collide when their addresses are equal or one of
/// them is the unspecified address of the same family (0.0.0.0 covers every IPv4 address;
/// `::` is bound IPv6-only, so it does not cover IPv4).
pub fn conflicts(a: (Proto, IpAddr, u16), b: (Proto, IpAddr, u16)) -> bool {
    a.0 == b.0
        && a.2 == b.2
        && a.1.is_ipv4() == b.1.is_ipv4()
        && (a.1 == b.1 || a.1.is_unspecified() || b.1.is_unspecified())
}

/// Whatever really holds host ports.
pub trait Claims {
    /// Takes the port if it is free; false if it is not.
    fn take(&mut self, proto: Proto, ip: IpAddr, port: u16) -> bool;
    /// Gives back a port taken in this plan (when its other family could not be had).
    fn give_back(&mut self, proto: Proto, ip: IpAddr, port: u16);
}

/// Allocates every request. Ephemeral ports come from `ephemeral`, walked from `*cursor`
/// (which advances, so a restarted container gets a new port, as Docker's allocator does).
/// On error, every port taken so far is given back.
pub fn plan(
    requests: &[BindingRequest],
    ephemeral: PortRange,
    cursor: &mut u16,
    ipv6: bool,
    claims: &mut dyn Claims,
) -> Result<Vec<Published>, PortError> {
    let mut out: Vec<Published> = Vec::new();
    for r in requests {
        match plan_one(r, ephemeral, cursor, ipv6, claims) {
            Ok(mut p) => out.append(&mut p),
            Err(e) => {
                for p in &out {
                    claims.give_back(p.container.proto, p.host_ip, p.host_port);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

fn plan_one(
    r: &BindingRequest,
    ephemeral: PortRange,
    cursor: &mut u16,
    ipv6: bool,
    claims: &mut dyn Claims,
) -> Result<Vec<Published>, PortError> {
    let proto = r.container.proto;
    let ips: Vec<IpAddr> = match r.ip {
        Some(ip) => vec![ip],
        None if ipv6 => vec![Ipv4Addr::UNSPECIFIED.into(), Ipv6Addr::UNSPECIFIED.into()],
        None => vec![Ipv4Addr::UNSPECIFIED.into()],
    };
    // All addresses of one binding share a port, or none is taken.
    let mut take_all = |port: u16| -> bool {
        for (i, ip) in ips.iter().enumerate() {
            if !claims.take(proto, *ip, port) {
                for back in &ips[..i] {
                    claims.give_back(proto, *back, port);
                }
                return false;
            }
        }
        true
    };
    let done = |port: u16| {
        ips.iter()
            .map(|ip| Published {
                container: r.container,
                host_ip: *ip,
                host_port: port,
            })
            .collect()
    };
    match r.ports {
        Some(range) if range.start == range.end => {
            if take_all(range.start) {
                Ok(done(range.start))
            } else {
                Err(PortError::Allocated {
                    ip: ips[0],
                    port: range.start,
                    proto,
                })
            }
        }
        Some(range) => match range.iter().find(|p| take_all(*p)) {
            Some(p) => Ok(done(p)),
            None => Err(PortError::Exhausted {
                ip: ips[0],
                start: range.start,
                end: range.end,
                proto,
            }),
        },
        None => {
            let start = if ephemeral.start <= *cursor && *cursor <= ephemeral.end {
                *cursor
            } else {
                ephemeral.start
            };
            let n = ephemeral.len();
            for i in 0..n {
                let p = (u32::from(start) - u32::from(ephemeral.start) + i) % n
                    + u32::from(ephemeral.start);
                let p = u16::try_from(p).expect("within the ephemeral range");
                if take_all(p) {
                    *cursor = if p == ephemeral.end {
                        ephemeral.start
                    } else {
                        p + 1
                    };
                    return Ok(done(p));
                }
            }
            Err(PortError::Exhausted {
                ip: ips[0],
                start: ephemeral.start,
                end: ephemeral.end,
                proto,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashSet;

    /// Claims against a model: a set of bindings, plus ports "held by host processes".
    #[derive(Default)]
    struct Model {
        held: Vec<(Proto, IpAddr, u16)>,
        host_busy: HashSet<u16>,
    }

    impl Claims for Model {
        fn take(&mut self, proto: Proto, ip: IpAddr, port: u16) -> bool {
            if self.host_busy.contains(&port)
                || self.held.iter().any(|h| conflicts(*h, (proto, ip, port)))
            {
                return false;
            }
            self.held.push((proto, ip, port));
            true
        }
        fn give_back(&mut self, proto: Proto, ip: IpAddr, port: u16) {
            self.held.retain(|h| *h != (proto, ip, port));
        }
    }

    fn req(s: &str) -> Vec<BindingRequest> {
        let spec: crate::PublishSpec = s.parse().unwrap();
        spec.bindings()
            .into_iter()
            .map(|(c, ip, port)| BindingRequest::parse(c, &ip, &port).unwrap())
            .collect()
    }

    const EPH: PortRange = PortRange {
        start: 32768,
        end: 32770,
    };

    #[test]
    fn all_addresses_means_both_families_with_one_port() {
        let mut m = Model::default();
        let mut cur = 0;
        let p = plan(&req("8080:80"), EPH, &mut cur, true, &mut m).unwrap();
        assert_eq!(p.len(), 2);
        assert_eq!(p[0].host_ip.to_string(), "0.0.0.0");
        assert_eq!(p[1].host_ip.to_string(), "::");
        assert!(p.iter().all(|b| b.host_port == 8080));
        // 127.0.0.1:8080 collides with 0.0.0.0:8080; udp does not.
        let e = plan(&req("127.0.0.1:8080:80"), EPH, &mut cur, true, &mut m).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Bind for 0.0.0.0:8080 failed: port is already allocated"
                .replace("0.0.0.0", "127.0.0.1")
        );
        plan(&req("8080:80/udp"), EPH, &mut cur, true, &mut m).unwrap();
    }

    #[test]
    fn ephemeral_ports_advance_and_wrap() {
        let mut m = Model::default();
        let mut cur = 0;
        let a = plan(&req("80"), EPH, &mut cur, false, &mut m).unwrap();
        assert_eq!(a[0].host_port, 32768);
        m.give_back(Proto::Tcp, a[0].host_ip, 32768);
        // released, but the cursor moved on: a restart gets a new port
        let b = plan(&req("80"), EPH, &mut cur, false, &mut m).unwrap();
        assert_eq!(b[0].host_port, 32769);
        m.host_busy.insert(32770);
        let c = plan(&req("80"), EPH, &mut cur, false, &mut m).unwrap();
        assert_eq!(c[0].host_port, 32768, "skips the busy port and wraps");
        let e = plan(&req("81"), EPH, &mut cur, false, &mut m).unwrap_err();
        assert!(matches!(e, PortError::Exhausted { .. }), "{e}");
    }

    #[test]
    fn host_range_takes_the_first_free_port() {
        let mut m = Model::default();
        m.host_busy.insert(9000);
        let mut cur = 0;
        let p = plan(&req("9000-9002:80"), EPH, &mut cur, false, &mut m).unwrap();
        assert_eq!(p[0].host_port, 9001);
        let p = plan(&req("9000-9002:80"), EPH, &mut cur, false, &mut m).unwrap();
        assert_eq!(p[0].host_port, 9002);
        plan(&req("9000-9002:80"), EPH, &mut cur, false, &mut m).unwrap_err();
    }

    #[test]
    fn a_failing_request_gives_everything_back() {
        let mut m = Model::default();
        m.host_busy.insert(8002);
        let mut cur = 0;
        plan(&req("8000-8002:80-82"), EPH, &mut cur, true, &mut m).unwrap_err();
        assert!(m.held.is_empty());
    }

    #[test]
    fn api_strings() {
        let c = PortProto {
            port: 80,
            proto: Proto::Tcp,
        };
        assert_eq!(
            BindingRequest::parse(c, "[::1]", "80")
                .unwrap()
                .ip
                .unwrap()
                .to_string(),
            "::1"
        );
        BindingRequest::parse(c, "nope", "80").unwrap_err();
        BindingRequest::parse(c, "", "x").unwrap_err();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]
        /// Whatever is asked, in whatever order, no two bindings in effect ever collide, and
        /// a failed plan leaves nothing taken.
        #[test]
        fn never_two_holders(asks in proptest::collection::vec(
            (0u8..3, 0u8..4, 1u16..6, prop::bool::ANY), 1..40)) {
            let mut m = Model::default();
            let mut cur = 0;
            let mut live: Vec<Published> = Vec::new();
            for (ipsel, portsel, ctr, udp) in asks {
                let ip = ["", "127.0.0.1", "::1"][ipsel as usize];
                let host = ["", "8000", "8000-8002", "32769"][portsel as usize];
                let spec = format!("{}{}{}:{ctr}{}",
                    if ip.contains(':') { format!("[{ip}]") } else { ip.to_string() },
                    if ip.is_empty() { "" } else { ":" }, host, if udp { "/udp" } else { "" });
                let Ok(spec) = spec.parse::<crate::PublishSpec>() else { continue };
                let reqs: Vec<_> = spec.bindings().into_iter()
                    .map(|(c, i, p)| BindingRequest::parse(c, &i, &p).unwrap()).collect();
                let before = m.held.len();
                match plan(&reqs, EPH, &mut cur, true, &mut m) {
                    Ok(p) => live.extend(p),
                    Err(_) => prop_assert_eq!(m.held.len(), before),
                }
            }
            for (i, a) in live.iter().enumerate() {
                for b in &live[i + 1..] {
                    prop_assert!(!conflicts(
                        (a.container.proto, a.host_ip, a.host_port),
                        (b.container.proto, b.host_ip, b.host_port)), "{:?} {:?}", a, b);
                }
            }
        }
    }
}
