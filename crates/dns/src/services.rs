//! Service names for SRV questions (`_http._tcp.web`), from the text of /etc/services.

use std::collections::HashMap;

use crate::index::Proto;

#[derive(Debug, Clone, Default)]
pub struct Services {
    by_name: HashMap<(String, Proto), u16>,
}

impl Services {
    /// Parses services(5): `name port/proto [aliases…] [# comment]`. Bad lines are skipped,
    /// as the C library does.
    pub fn parse(text: &str) -> Services {
        let mut by_name = HashMap::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or_default();
            let mut it = line.split_whitespace();
            let (Some(name), Some(pp)) = (it.next(), it.next()) else {
                continue;
            };
            let Some((port, proto)) = pp.split_once('/') else {
                continue;
            };
            let (Ok(port), Some(proto)) =
                (port.parse::<u16>(), Proto::from_label(&format!("_{proto}")))
            else {
                continue;
            };
            for n in std::iter::once(name).chain(it) {
                by_name
                    .entry((n.to_ascii_lowercase(), proto))
                    .or_insert(port);
            }
        }
        Services { by_name }
    }

    /// `80` or a service name (`http`) → the port.
    pub fn port(&self, label: &str, proto: Proto) -> Option<u16> {
        label
            .parse::<u16>()
            .ok()
            .or_else(|| self.by_name.get(&(label.to_string(), proto)).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_aliases_and_numbers() {
        let s = Services::parse(
            "# comment\nhttp\t\t80/tcp\t\twww\t# WorldWideWeb\nbad line\ndomain 53/udp\nredis 6379/tcp\nx 99999/tcp\n",
        );
        assert_eq!(s.port("http", Proto::Tcp), Some(80));
        assert_eq!(s.port("www", Proto::Tcp), Some(80));
        assert_eq!(s.port("http", Proto::Udp), None);
        assert_eq!(s.port("domain", Proto::Udp), Some(53));
        assert_eq!(s.port("8080", Proto::Tcp), Some(8080));
        assert_eq!(s.port("x", Proto::Tcp), None);
    }
}
