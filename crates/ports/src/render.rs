//! What `docker port` and docker's PORTS column print, reproduced so that berth's CLI and the
//! real docker CLI (reading berth's API) show the same text.

use std::cmp::Ordering;
use std::collections::HashMap;

/// One entry of the API's container summary `Ports` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPort {
    /// "" when the port is only exposed.
    pub ip: String,
    pub private_port: u16,
    /// 0 when not published.
    pub public_port: u16,
    pub proto: String,
}

fn join_host_port(host: &str, port: &str) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// docker CLI's `DisplayablePorts`: sorted, consecutive ports merged into ranges per
/// address and protocol, `IP:PUBLIC->PRIVATE/proto` where the two ports differ.
pub fn displayable_ports(ports: &[ApiPort]) -> String {
    let mut ports = ports.to_vec();
    ports.sort_by(|a, b| {
        a.private_port
            .cmp(&b.private_port)
            .then_with(|| a.ip.cmp(&b.ip))
            .then_with(|| a.public_port.cmp(&b.public_port))
            .then_with(|| a.proto.cmp(&b.proto))
    });
    let mut groups: HashMap<String, (u16, u16)> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut result: Vec<String> = Vec::new();
    let mut host_mappings: Vec<String> = Vec::new();
    for p in &ports {
        let current = p.private_port;
        let mut key = p.proto.clone();
        if !p.ip.is_empty() {
            if p.public_port != current {
                host_mappings.push(format!(
                    "{}->{}/{}",
                    join_host_port(&p.ip, &p.public_port.to_string()),
                    p.private_port,
                    p.proto
                ));
                continue;
            }
            key = format!("{}/{}", p.ip, p.proto);
        }
        match groups.get_mut(&key) {
            None => {
                groups.insert(key.clone(), (current, current));
                order.push(key);
            }
            Some(g) if u32::from(current) == u32::from(g.1) + 1 => g.1 = current,
            Some(g) => {
                result.push(form_group(&key, g.0, g.1));
                *g = (current, current);
            }
        }
    }
    for k in &order {
        let g = groups[k];
        result.push(form_group(k, g.0, g.1));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, start: u16, last: u16) -> String {
    let parts: Vec<&str> = key.split('/').collect();
    let (ip, kind) = if parts.len() > 1 {
        (parts[0], parts[1])
    } else {
        ("", parts[0])
    };
    let mut group = start.to_string();
    if start != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        group = format!("{}->{}", join_host_port(ip, &group), group);
    }
    format!("{group}/{kind}")
}

/// One entry of inspect's `NetworkSettings.Ports`: "80/tcp" → its (HostIp, HostPort)
/// bindings, `None` when the port is only exposed.
pub type PortEntry = (String, Option<Vec<(String, String)>>);

/// `docker port` from the inspect `NetworkSettings.Ports` map (key "80/tcp" → bindings as
/// (HostIp, HostPort); `None` = exposed only). With `filter` ("80" or "80/udp") only that
/// port's addresses are printed; an unpublished port is an error, in docker's words.
pub fn port_lines(
    ports: &[PortEntry],
    filter: Option<&str>,
    container: &str,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    match filter {
        Some(f) => {
            let key = if f.contains('/') {
                f.to_string()
            } else {
                format!("{f}/tcp")
            };
            match ports.iter().find(|(k, _)| *k == key) {
                Some((_, Some(b))) => {
                    out.extend(b.iter().map(|(ip, port)| join_host_port(ip, port)));
                }
                _ => {
                    return Err(format!(
                        "Error: No public port '{f}' published for {container}"
                    ))
                }
            }
        }
        None => {
            for (k, b) in ports {
                for (ip, port) in b.iter().flatten() {
                    out.push(format!("{k} -> {}", join_host_port(ip, port)));
                }
            }
        }
    }
    out.sort_by(|a, b| {
        if natural_less(a, b) {
            Ordering::Less
        } else if natural_less(b, a) {
            Ordering::Greater
        } else {
            Ordering::Equal
        }
    });
    Ok(out)
}

/// fvbommel/sortorder's `NaturalLess`, which the docker CLI sorts `port` lines with: runs
/// of digits compare as numbers (then by their count of leading zeros), the rest byte-wise.
pub fn natural_less(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        let (ca, cb) = (a[i], b[j]);
        let (da, db) = (ca.is_ascii_digit(), cb.is_ascii_digit());
        if da && db {
            // skip leading zeros
            let (za, zb) = (i, j);
            while i < a.len() && a[i] == b'0' {
                i += 1;
            }
            while j < b.len() && b[j] == b'0' {
                j += 1;
            }
            let (sa, sb) = (i, j);
            while i < a.len() && a[i].is_ascii_digit() {
                i += 1;
            }
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            let (na, nb) = (&a[sa..i], &b[sb..j]);
            if na.len() != nb.len() {
                return na.len() < nb.len();
            }
            if na != nb {
                return na < nb;
            }
            if sa - za != sb - zb {
                return sa - za < sb - zb;
            }
            continue;
        }
        if ca != cb {
            return ca < cb;
        }
        i += 1;
        j += 1;
    }
    a.len() - i < b.len() - j
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ap(ip: &str, private: u16, public: u16, proto: &str) -> ApiPort {
        ApiPort {
            ip: ip.into(),
            private_port: private,
            public_port: public,
            proto: proto.into(),
        }
    }

    #[test]
    fn ps_column_like_docker() {
        assert_eq!(
            displayable_ports(&[ap("0.0.0.0", 80, 8080, "tcp"), ap("::", 80, 8080, "tcp")]),
            "0.0.0.0:8080->80/tcp, [::]:8080->80/tcp"
        );
        assert_eq!(displayable_ports(&[ap("", 53, 0, "udp")]), "53/udp");
        assert_eq!(
            displayable_ports(&[
                ap("0.0.0.0", 8001, 8001, "tcp"),
                ap("0.0.0.0", 8000, 8000, "tcp"),
                ap("0.0.0.0", 8002, 8002, "tcp"),
            ]),
            "0.0.0.0:8000-8002->8000-8002/tcp"
        );
        assert_eq!(
            displayable_ports(&[
                ap("", 80, 0, "tcp"),
                ap("", 81, 0, "tcp"),
                ap("", 90, 0, "tcp")
            ]),
            "80-81/tcp, 90/tcp"
        );
    }

    #[test]
    fn port_command_like_docker() {
        let ports = vec![
            (
                "80/tcp".to_string(),
                Some(vec![
                    ("0.0.0.0".to_string(), "32768".to_string()),
                    ("::".to_string(), "32768".to_string()),
                ]),
            ),
            (
                "9/tcp".to_string(),
                Some(vec![("127.0.0.1".to_string(), "9".to_string())]),
            ),
            ("53/udp".to_string(), None),
        ];
        assert_eq!(
            port_lines(&ports, None, "web").unwrap(),
            vec![
                "9/tcp -> 127.0.0.1:9",
                "80/tcp -> 0.0.0.0:32768",
                "80/tcp -> [::]:32768"
            ]
        );
        assert_eq!(
            port_lines(&ports, Some("80"), "web").unwrap(),
            vec!["0.0.0.0:32768", "[::]:32768"]
        );
        assert_eq!(
            port_lines(&ports, Some("53/udp"), "web").unwrap_err(),
            "Error: No public port '53/udp' published for web"
        );
    }

    #[test]
    fn natural_order() {
        assert!(natural_less("9/tcp", "80/tcp"));
        assert!(!natural_less("80/tcp", "9/tcp"));
        assert!(natural_less("a", "b"));
        assert!(natural_less("a", "ab"));
        assert!(natural_less("x01", "x001") || natural_less("x001", "x01"));
        assert!(!natural_less("same", "same"));
    }
}
