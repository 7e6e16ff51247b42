//! `service create --publish`: docker's two forms, `[PUBLISHED:]TARGET[/PROTO]` and
//! `published=P,target=T[,protocol=tcp|udp|sctp][,mode=ingress|host]`.

use std::str::FromStr;

use crate::{PortError, Proto};

/// How a service's port is published: on every node (`ingress`, through the routing mesh)
/// or only on the nodes that run a task (`host`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PublishMode {
    Ingress,
    Host,
}

impl PublishMode {
    pub fn as_str(self) -> &'static str {
        match self {
            PublishMode::Ingress => "ingress",
            PublishMode::Host => "host",
        }
    }
}

/// One published port of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServicePort {
    pub published: u16,
    pub target: u16,
    pub proto: Proto,
    pub mode: PublishMode,
}

fn bad(spec: &str, reason: &str) -> PortError {
    PortError::Spec {
        spec: spec.to_string(),
        reason: reason.to_string(),
    }
}

fn port(spec: &str, s: &str) -> Result<u16, PortError> {
    s.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| bad(spec, &format!("{s:?} is not a port (1-65535)")))
}

impl FromStr for ServicePort {
    type Err = PortError;

    fn from_str(spec: &str) -> Result<Self, PortError> {
        if spec.contains('=') {
            let (mut published, mut target, mut proto, mut mode) =
                (None, None, Proto::Tcp, PublishMode::Ingress);
            for kv in spec.split(',') {
                let (k, v) = kv
                    .split_once('=')
                    .ok_or_else(|| bad(spec, &format!("{kv:?} is not KEY=VALUE")))?;
                match k.trim() {
                    "published" => published = Some(port(spec, v)?),
                    "target" => target = Some(port(spec, v)?),
                    "protocol" => proto = v.parse()?,
                    "mode" => {
                        mode = match v {
                            "ingress" => PublishMode::Ingress,
                            "host" => PublishMode::Host,
                            _ => return Err(bad(spec, "mode is ingress or host")),
                        }
                    }
                    other => return Err(bad(spec, &format!("unknown key {other:?}"))),
                }
            }
            let target = target.ok_or_else(|| bad(spec, "target= is required"))?;
            return Ok(ServicePort {
                published: published.unwrap_or(target),
                target,
                proto,
                mode,
            });
        }
        let (ports, proto) = match spec.split_once('/') {
            Some((p, proto)) => (p, proto.parse()?),
            None => (spec, Proto::Tcp),
        };
        let (published, target) = match ports.split_once(':') {
            Some((p, t)) => (port(spec, p)?, port(spec, t)?),
            None => {
                let t = port(spec, ports)?;
                (t, t)
            }
        };
        Ok(ServicePort {
            published,
            target,
            proto,
            mode: PublishMode::Ingress,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms() {
        let p: ServicePort = "8080:80".parse().unwrap();
        assert_eq!(
            (p.published, p.target, p.mode),
            (8080, 80, PublishMode::Ingress)
        );
        let p: ServicePort = "53:53/udp".parse().unwrap();
        assert_eq!(p.proto, Proto::Udp);
        let p: ServicePort = "published=9000,target=90,mode=host,protocol=tcp"
            .parse()
            .unwrap();
        assert_eq!(
            (p.published, p.target, p.mode),
            (9000, 90, PublishMode::Host)
        );
        let p: ServicePort = "target=80,mode=host".parse().unwrap();
        assert_eq!(p.published, 80);
        for bad in [
            "",
            "0:80",
            "80:x",
            "published=1",
            "mode=host,target=80,x=1",
            "8080:80/icmp",
        ] {
            assert!(bad.parse::<ServicePort>().is_err(), "{bad}");
        }
    }
}
