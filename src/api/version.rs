//! The `/vMAJOR.MINOR` path prefix of the Docker API. Like dockerd, berth serves versions
//! from [`MIN_API_VERSION`] to [`API_VERSION`] and unprefixed paths; a version outside that
//! window is a 400 in dockerd's words, so clients (the docker CLI negotiates down to the
//! server's `Api-Version`) learn what to do.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::IntoResponse;

use super::errors::ApiError;
use super::types::{API_VERSION, MIN_API_VERSION};
use crate::daemon::Error;

/// What a path's prefix says.
#[derive(Debug, PartialEq, Eq)]
enum Prefix<'a> {
    /// No version: the path as it is (also `/v/…`, which dockerd does not route either).
    None,
    /// A supported version; the rest of the path.
    Supported(&'a str),
    Rejected(String),
}

fn parse(v: &str) -> Option<(u64, u64)> {
    let (major, minor) = v.split_once('.')?;
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    Some((num(major)?, num(minor)?))
}

fn prefix(path: &str) -> Prefix<'_> {
    let Some(rest) = path.strip_prefix("/v") else {
        return Prefix::None;
    };
    let Some(i) = rest.find('/') else {
        return Prefix::None;
    };
    let v = &rest[..i];
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Prefix::None;
    }
    let (min, max) = (
        parse(MIN_API_VERSION).expect("version"),
        parse(API_VERSION).expect("version"),
    );
    match parse(v) {
        None => Prefix::Rejected(format!(
            "malformed API version {v:?} in the path: use /vMAJOR.MINOR/, from /v{MIN_API_VERSION}/ to /v{API_VERSION}/"
        )),
        Some(want) if want > max => Prefix::Rejected(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )),
        Some(want) if want < min => Prefix::Rejected(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )),
        Some(_) => Prefix::Supported(&rest[i..]),
    }
}

/// Strips a supported version prefix before routing, and refuses the others.
pub(crate) async fn api_version(mut req: Request, next: Next) -> axum::response::Response {
    let path = req.uri().path();
    let new = match prefix(path) {
        Prefix::None => None,
        Prefix::Rejected(m) => return ApiError::from(Error::InvalidParameter(m)).into_response(),
        Prefix::Supported(rest) => Some(match req.uri().query() {
            Some(q) => format!("{rest}?{q}"),
            None => rest.to_string(),
        }),
    };
    if let Some(u) = new.and_then(|n| n.parse().ok()) {
        *req.uri_mut() = u;
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(prefix("/v1.50/networks"), Prefix::Supported("/networks"));
        assert_eq!(prefix("/v1.24/_ping"), Prefix::Supported("/_ping"));
        assert_eq!(prefix("/v1.41/x/y"), Prefix::Supported("/x/y"));
        for p in [
            "/networks",
            "/volumes/v1",
            "/v/networks",
            "/v1.50",
            "/vx/networks",
            "/",
        ] {
            assert_eq!(prefix(p), Prefix::None, "{p}");
        }
        let rejected = |p: &str| match prefix(p) {
            Prefix::Rejected(m) => m,
            other => panic!("{p}: {other:?}"),
        };
        assert_eq!(
            rejected("/v1.99/x"),
            "client version 1.99 is too new. Maximum supported API version is 1.50"
        );
        assert_eq!(
            rejected("/v2.0/x"),
            "client version 2.0 is too new. Maximum supported API version is 1.50"
        );
        assert_eq!(
            rejected("/v0.1/x"),
            "client version 0.1 is too old. Minimum supported API version is 1.24, please upgrade your client to a newer version"
        );
        assert!(rejected("/v1.23/x").contains("too old"));
        assert!(
            rejected("/v1.5/x").contains("too old"),
            "1.5 is 1.05, before 1.24"
        );
        for p in [
            "/v..../x",
            "/v1.50.1.2/x",
            "/v1/x",
            "/v1./x",
            "/v.5/x",
            "/v99999999999999999999.1/x",
        ] {
            assert!(rejected(p).starts_with("malformed API version"), "{p}");
        }
    }
}
