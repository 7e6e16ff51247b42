//! Which strings can be DNS names at all. A label is 1 to 63 bytes and a name at most 255
//! bytes on the wire (RFC 1035 2.3.4), so a container named with 64 characters and no dot
//! can never be asked for, nor be the target of an answer. Such names are left out of the
//! index, and answers that name a container use one of its names that fits, never a
//! broken or root name.

use hickory_proto::rr::Name;

/// The longest name in text form without the final dot: 255 bytes on the wire are the
/// text plus the first label's length byte and the root label.
const MAX_TEXT: usize = 253;
const MAX_LABEL: usize = 63;

/// Whether `name` (labels separated by dots, no final dot) can travel as a DNS name.
pub(crate) fn fits(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_TEXT
        && name.split('.').all(|l| (1..=MAX_LABEL).contains(&l.len()))
}

/// `NAME.NETWORK.`, the target of PTR and SRV answers; `None` when it cannot be written
/// as a DNS name. The labels are taken as they are: nothing in them is read as an escape.
pub(crate) fn qualified(name: &str, network: &str) -> Option<Name> {
    if !(fits(name) && fits(network) && name.len() + 1 + network.len() <= MAX_TEXT) {
        return None;
    }
    Name::from_labels(name.split('.').chain(network.split('.')).map(str::as_bytes)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_and_name_limits() {
        let l63 = "a".repeat(63);
        assert!(fits(&l63));
        assert!(!fits(&"a".repeat(64)));
        assert!(fits(&format!("{l63}.{l63}")));
        assert!(!fits(""));
        assert!(!fits("a..b"));
        assert!(!fits("a."));
        assert!(!fits(".a"));
        // 4 labels of 63 with their dots: 255 characters, 257 bytes on the wire.
        let four = [l63.as_str(); 4].join(".");
        assert!(!fits(&four));
        let max = format!("{}.{}", [l63.as_str(); 3].join("."), "a".repeat(61));
        assert_eq!(max.len(), MAX_TEXT);
        assert!(fits(&max));
    }

    #[test]
    fn qualified_names_are_whole_or_nothing() {
        assert_eq!(qualified("es", "dev").unwrap().to_string(), "es.dev.");
        assert_eq!(
            qualified("web.v2", "my.net").unwrap().to_string(),
            "web.v2.my.net."
        );
        assert!(qualified(&"a".repeat(64), "dev").is_none());
        assert!(qualified("es", &"n".repeat(64)).is_none());
        assert!(qualified("es.", "dev").is_none());
        // Each part fits; together they are too long.
        let l63 = "a".repeat(63);
        let half = format!("{l63}.{l63}");
        assert!(qualified(&half, &half).is_none());
        // A backslash is a byte of the label, not an escape.
        let n = qualified("a\\046b", "dev").unwrap();
        assert_eq!(n.num_labels(), 2);
    }
}
