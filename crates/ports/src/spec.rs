//! docker's `-p [IP:][HOST:]CONTAINER[/PROTO]` and `--expose PORT[/PROTO]` syntax, and their
//! expansion into the API's `PortBindings` / `ExposedPorts` entries, as the docker CLI does.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::PortError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = PortError;
    fn from_str(s: &str) -> Result<Self, PortError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" | "" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            "sctp" => Ok(Proto::Sctp),
            _ => Err(PortError::Proto(s.to_string())),
        }
    }
}

/// A container port with its protocol: docker's `"80/tcp"` map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortProto {
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for PortProto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.port, self.proto)
    }
}

impl FromStr for PortProto {
    type Err = PortError;
    /// `"80/tcp"`, `"53/udp"`, or `"80"` (tcp).
    fn from_str(s: &str) -> Result<Self, PortError> {
        let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
        Ok(PortProto {
            port: port(p, s, "container port")?,
            proto: proto.parse()?,
        })
    }
}

impl Serialize for PortProto {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortProto {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An inclusive range of ports; a single port is `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(p: u16) -> PortRange {
        PortRange { start: p, end: p }
    }

    pub fn len(&self) -> u32 {
        u32::from(self.end - self.start) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> {
        self.start..=self.end
    }

    /// `"8000"` or `"8000-8010"`; `whole` names the argument in errors.
    pub fn parse(s: &str, whole: &str, what: &str) -> Result<PortRange, PortError> {
        let r = match s.split_once('-') {
            None => PortRange::single(port(s, whole, what)?),
            Some((a, b)) => PortRange {
                start: port(a, whole, what)?,
                end: port(b, whole, what)?,
            },
        };
        if r.start > r.end {
            return Err(spec_err(
                whole,
                format!("the {what} range {s} ends before it starts"),
            ));
        }
        Ok(r)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.start == self.end {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

fn spec_err(spec: &str, reason: impl Into<String>) -> PortError {
    PortError::Spec {
        spec: spec.to_string(),
        reason: reason.into(),
    }
}

/// A host address as docker takes it: empty for "all", brackets around IPv6 optional.
pub(crate) fn host_ip(ip: &str, whole: &str) -> Result<Option<IpAddr>, PortError> {
    if ip.is_empty() {
        return Ok(None);
    }
    let bare = ip
        .strip_prefix('[')
        .and_then(|i| i.strip_suffix(']'))
        .unwrap_or(ip);
    bare.parse()
        .map(Some)
        .map_err(|_| spec_err(whole, format!("\"{ip}\" is not an IP address")))
}

fn port(s: &str, whole: &str, what: &str) -> Result<u16, PortError> {
    match s.parse::<u16>() {
        Ok(p) if p > 0 && s.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(spec_err(
            whole,
            format!("\"{s}\" is not a valid {what} (a number from 1 to 65535)"),
        )),
    }
}

/// One `-p` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishSpec {
    /// `None`: every address of the host (0.0.0.0 and ::).
    pub host_ip: Option<IpAddr>,
    /// `None`: an ephemeral port per container port.
    pub host_ports: Option<PortRange>,
    pub container: PortRange,
    pub proto: Proto,
}

impl FromStr for PublishSpec {
    type Err = PortError;

    /// docker's rules: split on ':', the last part is the container port, the one before it
    /// the host port, everything before that the address (brackets optional for IPv6).
    fn from_str(s: &str) -> Result<Self, PortError> {
        if s.is_empty() {
            return Err(spec_err(s, "it is empty"));
        }
        let (rest, proto) = match s.rsplit_once('/') {
            Some((r, p)) => (r, p.parse::<Proto>()?),
            None => (s, Proto::Tcp),
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let n = parts.len();
        let (ip, host, ctr) = match n {
            1 => ("", "", parts[0]),
            2 => ("", parts[0], parts[1]),
            _ => (
                &rest[..rest.len() - parts[n - 1].len() - parts[n - 2].len() - 2],
                parts[n - 2],
                parts[n - 1],
            ),
        };
        let container = PortRange::parse(ctr, s, "container port")?;
        let host_ports = if host.is_empty() {
            None
        } else {
            Some(PortRange::parse(host, s, "host port")?)
        };
        let host_ip = host_ip(ip, s)?;
        if let Some(h) = host_ports {
            if h.len() != container.len() && container.len() != 1 {
                return Err(PortError::RangeMismatch {
                    container: container.to_string(),
                    host: h.to_string(),
                });
            }
        }
        Ok(PublishSpec {
            host_ip,
            host_ports,
            container,
            proto,
        })
    }
}

impl fmt::Display for PublishSpec {
    /// The canonical form, which parses back to the same spec.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            None => {}
        }
        match (self.host_ports, self.host_ip) {
            (Some(h), _) => write!(f, "{h}:")?,
            (None, Some(_)) => f.write_str(":")?,
            (None, None) => {}
        }
        write!(f, "{}/{}", self.container, self.proto)
    }
}

impl PublishSpec {
    /// docker CLI's expansion into `PortBindings` entries: one per container port, with the
    /// host address ("" for all) and host port ("" for ephemeral, "9000-9100" for "first free
    /// in that range") as strings.
    pub fn bindings(&self) -> Vec<(PortProto, String, String)> {
        let ip = match self.host_ip {
            Some(ip) => ip.to_string(),
            None => String::new(),
        };
        self.container
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let host = match self.host_ports {
                    None => String::new(),
                    Some(h) if self.container.len() == 1 && h.len() > 1 => h.to_string(),
                    Some(h) => {
                        (u32::from(h.start) + u32::try_from(i).unwrap_or(u32::MAX)).to_string()
                    }
                };
                (
                    PortProto {
                        port: p,
                        proto: self.proto,
                    },
                    ip.clone(),
                    host,
                )
            })
            .collect()
    }
}

/// `--expose 80`, `--expose 7000-7010/udp`.
pub fn parse_expose(s: &str) -> Result<Vec<PortProto>, PortError> {
    let (p, proto) = s.split_once('/').unwrap_or((s, "tcp"));
    let proto: Proto = proto.parse()?;
    let r = PortRange::parse(p, s, "port")?;
    Ok(r.iter().map(|port| PortProto { port, proto }).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> PublishSpec {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn every_docker_form() {
        let b = |s: &str| p(s).bindings();
        let tcp = |port| PortProto {
            port,
            proto: Proto::Tcp,
        };
        assert_eq!(b("5432:5432"), vec![(tcp(5432), "".into(), "5432".into())]);
        assert_eq!(
            b("127.0.0.1:5432:5432"),
            vec![(tcp(5432), "127.0.0.1".into(), "5432".into())]
        );
        assert_eq!(
            b("127.0.0.1::5432"),
            vec![(tcp(5432), "127.0.0.1".into(), "".into())]
        );
        assert_eq!(b(":80"), vec![(tcp(80), "".into(), "".into())]);
        assert_eq!(b("80"), vec![(tcp(80), "".into(), "".into())]);
        assert_eq!(
            b("8000-8002:80-82"),
            vec![
                (tcp(80), "".into(), "8000".into()),
                (tcp(81), "".into(), "8001".into()),
                (tcp(82), "".into(), "8002".into())
            ]
        );
        assert_eq!(
            b("9000-9100:80"),
            vec![(tcp(80), "".into(), "9000-9100".into())]
        );
        assert_eq!(
            b("[::1]:8080:80"),
            vec![(tcp(80), "::1".into(), "8080".into())]
        );
        assert_eq!(
            b("::1:8080:80"),
            vec![(tcp(80), "::1".into(), "8080".into())]
        );
        assert_eq!(
            b("53:53/udp"),
            vec![(
                PortProto {
                    port: 53,
                    proto: Proto::Udp
                },
                "".into(),
                "53".into()
            )]
        );
        assert_eq!(p("80-82").bindings().len(), 3);
        assert_eq!(p("1234/SCTP").proto, Proto::Sctp);
    }

    #[test]
    fn bad_input_is_named() {
        for (s, needle) in [
            ("", "empty"),
            ("0:80", "host port"),
            ("8080:0", "container port"),
            ("65536", "container port"),
            ("abc", "\"abc\""),
            ("80/icmp", "icmp"),
            ("1.2.3:80:80", "not an IP address"),
            ("8000-8010:80-81", "same length"),
            ("90-80", "ends before"),
            ("+80", "container port"),
            ("80:", "container port"),
        ] {
            let e = s.parse::<PublishSpec>().expect_err(s).to_string();
            assert!(e.contains(needle), "{s}: {e}");
        }
    }

    #[test]
    fn expose() {
        assert_eq!(parse_expose("7000-7002/udp").unwrap().len(), 3);
        assert_eq!(parse_expose("80").unwrap()[0].to_string(), "80/tcp");
        parse_expose("x").unwrap_err();
    }

    fn arb_spec() -> impl Strategy<Value = PublishSpec> {
        let ip = prop_oneof![
            Just(None),
            any::<[u8; 4]>().prop_map(|o| Some(IpAddr::from(o))),
            any::<[u16; 8]>().prop_map(|o| Some(IpAddr::from(o))),
        ];
        let proto = prop_oneof![Just(Proto::Tcp), Just(Proto::Udp), Just(Proto::Sctp)];
        (ip, 1u16..60000, 0u16..20, proto, 0u8..3).prop_map(|(host_ip, start, len, proto, mode)| {
            let container = PortRange {
                start,
                end: start + len,
            };
            let host_ports = match mode {
                0 => None,
                1 => Some(PortRange {
                    start: start + 1000,
                    end: start + 1000 + len,
                }),
                _ => Some(PortRange {
                    start: start + 2000,
                    end: start + 2000 + len + 5,
                }),
            };
            let container = if mode == 2 {
                PortRange::single(start)
            } else {
                container
            };
            PublishSpec {
                host_ip,
                host_ports,
                container,
                proto,
            }
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        #[test]
        fn round_trip(spec in arb_spec()) {
            let text = spec.to_string();
            prop_assert_eq!(text.parse::<PublishSpec>(), Ok(spec.clone()), "{}", text);
        }

        #[test]
        fn expansion_matches_the_ranges(spec in arb_spec()) {
            let b = spec.bindings();
            prop_assert_eq!(u32::try_from(b.len()).unwrap(), spec.container.len());
            for (i, (pp, _, host)) in b.iter().enumerate() {
                prop_assert_eq!(u32::from(pp.port), u32::from(spec.container.start) + u32::try_from(i).unwrap());
                if spec.host_ports.is_none() { prop_assert!(host.is_empty()); }
            }
        }

        /// The parser never panics, whatever it is given (the fuzz target's property, run
        /// on stable in every test run).
        #[test]
        fn never_panics(s in "\\PC{0,40}") {
            let _ = s.parse::<PublishSpec>();
            let _ = parse_expose(&s);
        }

        #[test]
        fn never_panics_on_near_misses(s in "[0-9:/\\[\\]a-f.-]{0,30}") {
            if let Ok(spec) = s.parse::<PublishSpec>() {
                // whatever parses renders to something that parses to the same spec
                prop_assert_eq!(spec.to_string().parse::<PublishSpec>(), Ok(spec));
            }
        }
    }
}
