//! Checks of what a user may put in a sandbox's files and the kernel's names, done at create
//! so that a bad value is a 400 that changes nothing, never a 500 at start or a line smuggled
//! into `/etc/resolv.conf`, `/etc/hosts` or `/etc/hostname`. Pure.

use ipnet::IpNet;

/// Container and network names: long enough for compose's `project-service-N`, short enough
/// that names stay usable in listings, DNS answers and error messages (docker sets no limit;
/// a 10 kB name was accepted before).
pub const MAX_NAME_LEN: usize = 128;
/// Linux's `HOST_NAME_MAX`: `sethostname` refuses more (EINVAL at start otherwise).
pub const MAX_HOSTNAME_LEN: usize = 64;
/// A DNS name in presentation form (RFC 1035 §2.3.4 allows 255 octets on the wire).
const MAX_DOMAIN_LEN: usize = 253;

/// Letters, digits, '_', '.', '-', starting with a letter or digit, at most `MAX_NAME_LEN`.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= MAX_NAME_LEN
        && matches!(chars.next(), Some(c) if c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// A host name as `-h`, `--domainname` and `--add-host` take it: what /etc/hosts and
/// /etc/hostname can hold as one field.
pub fn check_hostname(what: &str, h: &str) -> Result<(), String> {
    if h.len() > MAX_HOSTNAME_LEN {
        return Err(format!(
            "invalid {what} {:?}…: it is {} bytes long, the most Linux takes is {MAX_HOSTNAME_LEN}",
            truncate(h),
            h.len()
        ));
    }
    check_domain(what, h)
}

/// A domain name (`--dns-search`, the name of an `--add-host`): labels of letters, digits,
/// '-' and '_' separated by dots. No white space or control character, so it stays one
/// word on one line of the sandbox's files.
pub fn check_domain(what: &str, d: &str) -> Result<(), String> {
    let ok = !d.is_empty()
        && d.len() <= MAX_DOMAIN_LEN
        && !d.starts_with('.')
        && !d.contains("..")
        && d.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid {what} {:?}: use letters, digits, '-', '_' and dots (at most {MAX_DOMAIN_LEN} characters, no spaces or line breaks)",
            truncate(d)
        ))
    }
}

/// One resolver option (`ndots:2`, `edns0`): one printable word.
pub fn check_dns_option(o: &str) -> Result<(), String> {
    if !o.is_empty() && o.len() <= 255 && o.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "invalid --dns-option {:?}: an option is one word of printable characters, such as ndots:2",
            truncate(o)
        ))
    }
}

/// Strings that go to `execve` (command, environment, working directory): a NUL would fail
/// there, after the container was set up.
pub fn check_no_nul(what: &str, s: &str) -> Result<(), String> {
    if s.contains('\0') {
        Err(format!(
            "invalid {what} {:?}: it contains a NUL byte, which no program can receive",
            truncate(s)
        ))
    } else {
        Ok(())
    }
}

/// Subnets a network may not use: they would break the host (loopback), mean nothing on a
/// link (multicast, "this network", the reserved class E), or leave no address for a
/// container next to the network address, the gateway and (IPv4) the broadcast address.
pub fn check_subnet(s: &IpNet) -> Result<(), String> {
    let reason = match s {
        IpNet::V4(n) => {
            let first = n.network().octets()[0];
            if first == 127 || n.network().is_loopback() {
                Some("127.0.0.0/8 is the host's loopback range")
            } else if n.network().is_multicast() || (224..240).contains(&first) {
                Some("224.0.0.0/4 is multicast")
            } else if first == 0 {
                Some("0.0.0.0/8 means \"this network\"")
            } else if first >= 240 {
                Some("240.0.0.0/4 is reserved")
            } else if n.prefix_len() > 30 {
                Some("a /31 or /32 leaves no address for a container (the network, gateway and broadcast addresses are taken); use at most /30")
            } else {
                None
            }
        }
        IpNet::V6(n) => {
            let seg0 = n.network().segments()[0];
            if n.network().is_loopback()
                || (n.prefix_len() < 128 && n.contains(&std::net::Ipv6Addr::LOCALHOST))
            {
                Some("::1 is the host's loopback address")
            } else if seg0 & 0xff00 == 0xff00 {
                Some("ff00::/8 is multicast")
            } else if n.network().is_unspecified() && n.prefix_len() < 8 {
                Some("it covers the whole IPv6 address space")
            } else if n.prefix_len() > 126 {
                Some("a /127 or /128 leaves no address for a container; use at most /126 (a /64 is usual)")
            } else {
                None
            }
        }
    };
    match reason {
        Some(r) => Err(format!("invalid subnet {s}: {r}")),
        None => Ok(()),
    }
}

/// Error messages quote at most this much of a value (a 10 kB name stays readable).
fn truncate(s: &str) -> &str {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names() {
        assert!(valid_name("web1"));
        assert!(valid_name(&"a".repeat(MAX_NAME_LEN)));
        assert!(!valid_name(&"a".repeat(MAX_NAME_LEN + 1)));
        assert!(!valid_name("-web"));
        assert!(!valid_name("a\nb"));
    }

    #[test]
    fn hostnames() {
        check_hostname("hostname", "web-1.example").unwrap();
        check_hostname("hostname", &"h".repeat(64)).unwrap();
        let e = check_hostname("hostname", &"h".repeat(65)).unwrap_err();
        assert!(e.contains("65 bytes"), "{e}");
        assert!(check_hostname("hostname", "h\nx").is_err());
        assert!(check_hostname("hostname", "").is_err());
    }

    #[test]
    fn resolver_settings() {
        check_domain("--dns-search", "corp.example").unwrap();
        assert!(check_domain("--dns-search", "x\nnameserver 6.6.6.6").is_err());
        assert!(check_domain("--dns-search", "a b").is_err());
        assert!(check_domain("--dns-search", ".a").is_err());
        check_dns_option("ndots:2").unwrap();
        assert!(check_dns_option("ndots:2\nnameserver 6.6.6.6").is_err());
        assert!(check_dns_option("a b").is_err());
        check_no_nul("env", "A=1").unwrap();
        assert!(check_no_nul("env", "A=\0").is_err());
    }

    #[test]
    fn subnets() {
        let s = |x: &str| check_subnet(&x.parse().unwrap());
        s("10.0.0.0/24").unwrap();
        s("10.0.0.0/30").unwrap();
        s("fd00::/64").unwrap();
        for bad in [
            "127.0.0.0/8",
            "127.1.0.0/16",
            "224.0.0.0/8",
            "239.1.0.0/16",
            "0.0.0.0/8",
            "240.0.0.0/8",
            "10.0.0.1/32",
            "10.0.0.0/31",
            "::1/128",
            "ff02::/16",
            "fd00::1/128",
            "fd00::/127",
            "::/0",
        ] {
            assert!(s(bad).is_err(), "{bad} must be refused");
        }
    }

    proptest! {
        /// Whatever the text, nothing accepted can break a line of the sandbox's files.
        #[test]
        fn accepted_values_are_one_word(s in ".{0,80}") {
            let one_word = !s.chars().any(|c| c.is_whitespace() || c.is_control());
            if check_domain("x", &s).is_ok() || check_hostname("x", &s).is_ok()
                || check_dns_option(&s).is_ok() || valid_name(&s) {
                prop_assert!(one_word, "{s:?}");
            }
        }
    }
}
