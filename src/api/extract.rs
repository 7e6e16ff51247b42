//! Request extractors whose failures are API errors (JSON, with a message that names what
//! was wrong), in place of axum's text/plain rejections.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use serde::de::DeserializeOwned;

use super::errors::ApiError;
use crate::daemon::Error;

/// The body limit of most endpoints: far above any JSON that docker clients send.
pub(crate) const BODY_LIMIT: usize = 2 << 20;

/// `POST /containers/create`: one `PortBindings` entry per published port makes
/// `-p 1-65535 -p 1-65535/udp` about 8 MiB.
pub(crate) const CREATE_BODY_LIMIT: usize = 16 << 20;

/// How long a request's body may take to arrive, set per connection by the server.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyTimeout(pub Duration);

#[derive(Debug, thiserror::Error)]
pub(crate) enum BodyError {
    #[error(
        "request body is larger than the {} limit of {what}{}: send a smaller request \
         (fewer labels, environment variables or published ports)",
        mib(*limit as u64),
        size.map(|s| format!(" ({} sent)", mib(s))).unwrap_or_default()
    )]
    TooLarge {
        limit: usize,
        size: Option<u64>,
        what: String,
    },
    #[error("the request body of {what} did not arrive within {after:?}")]
    TimedOut { what: String, after: Duration },
    #[error("reading the request body of {what}: {source}")]
    Read {
        what: String,
        #[source]
        source: axum::Error,
    },
}

fn mib(n: u64) -> String {
    if n.is_multiple_of(1 << 20) {
        format!("{} MiB", n >> 20)
    } else {
        format!("{:.1} MiB", n as f64 / f64::from(1 << 20))
    }
}

fn content_length(h: &HeaderMap) -> Option<u64> {
    h.get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn is_length_limit(e: &axum::Error) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if err.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        cur = err.source();
    }
    false
}

/// Reads a whole request body of at most `limit` bytes. `what` names the request in errors.
pub(crate) async fn read_body(req: Request, limit: usize) -> Result<Bytes, BodyError> {
    let what = format!("{} {}", req.method(), req.uri().path());
    let size = content_length(req.headers());
    if size.is_some_and(|s| s > limit as u64) {
        return Err(BodyError::TooLarge { limit, size, what });
    }
    let timeout = req.extensions().get::<BodyTimeout>().copied();
    let read = axum::body::to_bytes(req.into_body(), limit);
    let res = match timeout {
        Some(BodyTimeout(after)) => match tokio::time::timeout(after, read).await {
            Ok(r) => r,
            Err(_) => return Err(BodyError::TimedOut { what, after }),
        },
        None => read.await,
    };
    res.map_err(|source| {
        if is_length_limit(&source) {
            BodyError::TooLarge {
                limit,
                size: None,
                what: what.clone(),
            }
        } else {
            BodyError::Read {
                what: what.clone(),
                source,
            }
        }
    })
}

/// A request body of at most `LIMIT` bytes.
pub(crate) struct ReqBody<const LIMIT: usize = BODY_LIMIT>(pub Bytes);

impl<S: Send + Sync, const LIMIT: usize> FromRequest<S> for ReqBody<LIMIT> {
    type Rejection = ApiError;

    async fn from_request(req: Request<Body>, _: &S) -> Result<Self, ApiError> {
        Ok(ReqBody(read_body(req, LIMIT).await?))
    }
}

/// The query string, deserialized; a bad parameter is a 400 that names it.
pub(crate) struct Q<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Q<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        Query::<T>::try_from_uri(&parts.uri)
            .map(|Query(q)| Q(q))
            .map_err(|e| {
                let text = e.body_text();
                let detail = text
                    .strip_prefix("Failed to deserialize query string: ")
                    .unwrap_or(&text);
                let query = parts.uri.query().unwrap_or_default();
                ApiError::from(Error::InvalidParameter(format!(
                    "invalid query parameter in {query:?}: {detail}"
                )))
            })
    }
}

/// A JSON body as `T`; errors name the offending field (`HostConfig: invalid type: …`).
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid = |msg: String| ApiError::from(Error::InvalidParameter(msg));
    let mut de = serde_json::Deserializer::from_slice(body);
    let v = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        invalid(if path.is_empty() || path == "." {
            format!("invalid JSON body: {inner}")
        } else {
            format!("invalid JSON body: {path}: {inner}")
        })
    })?;
    de.end()
        .map_err(|e| invalid(format!("invalid JSON body: {e}")))?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    use berth_api::{ContainerCreateRequest, NetworkCreateRequest};

    fn err<T: DeserializeOwned>(body: &str) -> String {
        match parse_json::<T>(body.as_bytes()) {
            Ok(_) => panic!("{body} accepted"),
            Err(e) => {
                assert_eq!(e.status, 400);
                e.message
            }
        }
    }

    #[test]
    fn errors_name_the_field() {
        let r = parse_json::<ContainerCreateRequest>(br#"{"HostConfig":{"NetworkMode":"x"}}"#);
        assert_eq!(r.unwrap().host_config.unwrap().network_mode, "x");
        parse_json::<ContainerCreateRequest>(br#"{"HostConfig":null}"#).unwrap();
        let m = err::<ContainerCreateRequest>(r#"{"HostConfig":[]}"#);
        assert!(
            m.starts_with(
                "invalid JSON body: HostConfig: invalid type: sequence, expected a JSON object"
            ),
            "{m}"
        );
        let m = err::<ContainerCreateRequest>(
            r#"{"NetworkingConfig":{"EndpointsConfig":{"front":{"IPAMConfig":[]}}}}"#,
        );
        assert!(
            m.contains("NetworkingConfig.EndpointsConfig.front.IPAMConfig: invalid type: sequence"),
            "{m}"
        );
        let m = err::<NetworkCreateRequest>(r#"{"IPAM":{"Config":[[]]}}"#);
        assert!(m.contains("IPAM.Config[0]: invalid type: sequence"), "{m}");
        assert!(err::<ContainerCreateRequest>("[]").contains("expected a JSON object"));
        assert!(err::<ContainerCreateRequest>("{} x").contains("trailing characters"));
    }

    #[test]
    fn sizes_read_as_mib() {
        assert_eq!(mib(2 << 20), "2 MiB");
        assert_eq!(mib(3 << 19), "1.5 MiB");
    }
}
