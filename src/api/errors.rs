//! How the API answers failures: always `{"message": "..."}` with
//! `Content-Type: application/json`, in Docker's status classes, including the answers
//! that axum and its extractors produce (405, rejections), which `json_errors` rewrites.

use axum::body::Body;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, Response, StatusCode};
use axum::middleware::Next;
use axum::response::IntoResponse;
use berth_api::ErrorResponse;
use serde::Serialize;

use crate::daemon::Error;

/// A failure as the API reports it: a status and a message for the user.
#[derive(Debug)]
pub(crate) struct ApiError {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
        }
    }
}

/// The HTTP status of a daemon error's class, as dockerd answers it.
pub(crate) fn status_of(e: &Error) -> StatusCode {
    use crate::daemon::error::Class;
    match e.class() {
        Class::NotFound => StatusCode::NOT_FOUND,
        Class::InvalidParameter => StatusCode::BAD_REQUEST,
        Class::Conflict => StatusCode::CONFLICT,
        Class::Forbidden => StatusCode::FORBIDDEN,
        Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        if e.class() == crate::daemon::error::Class::Internal {
            // The client gets the message; the log keeps the whole chain of causes.
            let mut chain = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                chain.push_str(": ");
                chain.push_str(&c.to_string());
                cause = c.source();
            }
            tracing::warn!("internal error: {chain}");
        }
        ApiError::new(status_of(&e), e.to_string())
    }
}

impl From<super::extract::BodyError> for ApiError {
    fn from(e: super::extract::BodyError) -> Self {
        use super::extract::BodyError;
        let status = match &e {
            BodyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::TimedOut { .. } => StatusCode::REQUEST_TIMEOUT,
            BodyError::Read { .. } => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        json_response(
            self.status,
            &ErrorResponse {
                message: self.message,
            },
        )
    }
}

pub(crate) type ApiResult<T = axum::response::Response> = Result<T, ApiError>;

pub(crate) fn json_response<T: Serialize>(status: StatusCode, v: &T) -> axum::response::Response {
    let mut body = serde_json::to_vec(v).expect("json");
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("response")
}

pub(crate) fn ok<T: Serialize>(v: T) -> ApiResult {
    Ok(json_response(StatusCode::OK, &v))
}

pub(crate) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The most of a non-JSON error body that is kept as the message.
const MAX_TEXT_ERROR: usize = 16 * 1024;

/// Turns every error that is not already JSON (axum's 405 with an empty body, a rejection's
/// text/plain) into `{"message"}`: clients, the docker CLI included, read only that.
pub(crate) async fn json_errors(req: Request, next: Next) -> axum::response::Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if status.as_u16() < 400 || is_json {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let text = axum::body::to_bytes(body, MAX_TEXT_ERROR)
        .await
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .unwrap_or_default();
    let allow = parts
        .headers
        .get(header::ALLOW)
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let message = text_error_message(status, &method, &path, allow.as_deref(), &text);
    let mut body = serde_json::to_vec(&ErrorResponse { message }).expect("json");
    body.push(b'\n');
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

fn text_error_message(
    status: StatusCode,
    method: &Method,
    path: &str,
    allow: Option<&str>,
    text: &str,
) -> String {
    if status == StatusCode::METHOD_NOT_ALLOWED {
        let allow = allow.filter(|a| !a.is_empty()).unwrap_or("another method");
        return format!("{method} is not allowed on {path}: use {allow}");
    }
    if !text.is_empty() {
        return text.to_string();
    }
    let reason = status.canonical_reason().unwrap_or("error");
    format!("{method} {path}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_errors_get_a_message() {
        let m = text_error_message(
            StatusCode::METHOD_NOT_ALLOWED,
            &Method::PUT,
            "/networks/x",
            Some("GET,HEAD,DELETE"),
            "",
        );
        assert_eq!(m, "PUT is not allowed on /networks/x: use GET,HEAD,DELETE");
        let m = text_error_message(StatusCode::BAD_REQUEST, &Method::GET, "/x", None, "bad");
        assert_eq!(m, "bad");
        let m = text_error_message(StatusCode::NOT_FOUND, &Method::GET, "/x", None, "");
        assert_eq!(m, "GET /x: Not Found");
    }
}
