//! Query strings: what clients put after `?` and the server reads back, and their encoding.

use serde::{Deserialize, Serialize};

use crate::de::{flag, is_zero};

/// `GET /containers/json`, `GET /networks` and `POST /networks/prune`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ListQuery {
    /// Stopped containers too.
    #[serde(with = "flag", skip_serializing_if = "is_zero")]
    pub all: bool,
    /// [`crate::Filters`] as JSON.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filters: Option<String>,
}

/// `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateQuery {
    /// Without one, the server picks a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `POST /containers/{id}/stop` and `/restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StopQuery {
    /// Seconds to wait before the kill (default 10).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub t: Option<i64>,
}

/// `POST /containers/{id}/kill`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct KillQuery {
    /// A name (`SIGTERM`, `hup`) or a number; SIGKILL when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
}

/// `DELETE /containers/{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RemoveQuery {
    /// Stop it first if it runs.
    #[serde(with = "flag")]
    pub force: bool,
}

/// `GET /containers/{id}/logs`. berth's log is one stream, so `stdout` and `stderr` are
/// sent for docker's sake and not read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogsQuery {
    #[serde(with = "flag")]
    pub stdout: bool,
    #[serde(with = "flag")]
    pub stderr: bool,
    /// Keep the stream open until the container stops.
    #[serde(with = "flag")]
    pub follow: bool,
}

/// `POST /containers/{id}/start` with the `berth-stdio` upgrade: `fds` (the client's own
/// descriptors) or `tty` (a pty whose master goes back to the client).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StartQuery {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stdio: Option<String>,
}

/// Percent-encodes everything but RFC 3986's unreserved characters: for a path segment
/// or a query value.
pub fn escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?k=v&…` from one of the query structs (fields in their order, absent ones left out),
/// or "" when nothing is set.
pub fn encode<Q: Serialize>(q: &Q) -> String {
    let Ok(serde_json::Value::Object(m)) = serde_json::to_value(q) else {
        return String::new();
    };
    let pairs: Vec<String> = m
        .iter()
        .filter_map(|(k, v)| {
            let v = match v {
                serde_json::Value::Null => return None,
                serde_json::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Some(format!("{}={}", escape(k), escape(&v)))
        })
        .collect();
    if pairs.is_empty() {
        String::new()
    } else {
        format!("?{}", pairs.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries_encode_as_clients_send_them() {
        assert_eq!(encode(&StopQuery::default()), "");
        assert_eq!(encode(&StopQuery { t: Some(3) }), "?t=3");
        let q = ListQuery {
            all: true,
            filters: Some(r#"{"name":{"a b":true}}"#.into()),
        };
        assert_eq!(
            encode(&q),
            "?all=1&filters=%7B%22name%22%3A%7B%22a%20b%22%3Atrue%7D%7D"
        );
        assert_eq!(encode(&RemoveQuery { force: false }), "?force=0");
        let logs = LogsQuery {
            stdout: true,
            stderr: true,
            follow: false,
        };
        assert_eq!(encode(&logs), "?stdout=1&stderr=1&follow=0");
        assert_eq!(
            encode(&KillQuery {
                signal: Some("SIGRTMIN+3".into())
            }),
            "?signal=SIGRTMIN%2B3"
        );
        assert_eq!(escape("web/1"), "web%2F1");
    }
}
