//! How the API answers failures: always `{"message": "..."}` with
//! `Content-Type: application/json`, in Docker's status classes.

use axum::body::Body;
use axum::http::{header, Response, StatusCode};
use axum::response::IntoResponse;
use serde_json::{json, Value};

use crate::daemon::Error;

pub(crate) struct ApiError(pub(crate) Error);

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        json_response(
            StatusCode::from_u16(self.0.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            &json!({ "message": self.0.to_string() }),
        )
    }
}

pub(crate) type ApiResult<T = axum::response::Response> = Result<T, ApiError>;

pub(crate) fn json_response(status: StatusCode, v: &Value) -> axum::response::Response {
    let mut body = serde_json::to_vec(v).expect("json");
    body.push(b'\n');
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body))
        .expect("response")
}

pub(crate) fn ok(v: Value) -> ApiResult {
    Ok(json_response(StatusCode::OK, &v))
}

pub(crate) fn no_content() -> ApiResult {
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) fn bad_json(e: serde_json::Error) -> ApiError {
    ApiError(Error::InvalidParameter(format!("invalid JSON body: {e}")))
}
