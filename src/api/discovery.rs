//! `GET /events` (docker's stream of JSON messages) and `GET /catalog` (berth's service
//! catalog with Consul-style blocking queries: `?index=N&wait=30s` returns as soon as the
//! catalog changes past N, or after the wait with the current state).

use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, Response, StatusCode};
use serde::Deserialize;

use super::errors::{ApiError, ApiResult};
use super::extract::Q;
use super::routes::parse_filters;
use crate::daemon::events::{catalog_with, matches};
use crate::daemon::{Daemon, Error};

/// The longest a blocking catalog query waits (Consul's cap too).
const MAX_WAIT: Duration = Duration::from_secs(600);

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct EventsQuery {
    since: Option<String>,
    until: Option<String>,
    filters: Option<String>,
}

/// docker's time arguments: unix seconds, possibly with a fraction.
fn unix_nanos(s: &str, what: &str) -> Result<i64, ApiError> {
    let (secs, frac) = s.split_once('.').unwrap_or((s, "0"));
    let secs: i64 = secs.parse().map_err(|_| {
        ApiError::from(Error::InvalidParameter(format!(
            "invalid {what} {s:?}: give unix seconds (the CLI converts durations and dates)"
        )))
    })?;
    let frac = format!("{frac:0<9}");
    let nanos: i64 = frac[..9].parse().unwrap_or(0);
    Ok(secs * 1_000_000_000 + nanos)
}

pub(super) async fn events(State(d): State<Arc<Daemon>>, Q(q): Q<EventsQuery>) -> ApiResult {
    tracing::debug!(since = ?q.since, until = ?q.until, filters = ?q.filters, "events follower");
    let filters = parse_filters(q.filters.as_deref())?;
    let since = q
        .since
        .as_deref()
        .map(|s| unix_nanos(s, "since"))
        .transpose()?;
    let until = q
        .until
        .as_deref()
        .map(|s| unix_nanos(s, "until"))
        .transpose()?;
    let (past, mut rx) = d.journal.subscribe(since);
    let (tx, out) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    tokio::spawn(async move {
        let line = |m: &crate::daemon::events::Message| {
            let mut b = serde_json::to_vec(m).expect("json");
            b.push(b'\n');
            Bytes::from(b)
        };
        let in_range = |t: i64| until.is_none_or(|u| t <= u);
        for m in past
            .iter()
            .filter(|m| in_range(m.time_nano) && matches(m, &filters))
        {
            if tx.send(Ok(line(m))).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            tokio::time::Instant::now() + Duration::from_nanos(u64::try_from(u - now).unwrap_or(0))
        });
        loop {
            let next = async {
                match deadline {
                    Some(dl) => tokio::time::timeout_at(dl, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            tokio::select! {
                got = next => match got {
                    None => return, // until reached
                    Some(Ok(m)) => {
                        if !in_range(m.time_nano) {
                            return;
                        }
                        if matches(&m, &filters) && tx.send(Ok(line(&m))).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => {
                        tracing::warn!("event follower too slow: {n} events dropped");
                    }
                    Some(Err(_)) => return,
                },
                _ = tx.closed() => return,
            }
        }
    });
    let mut out = out;
    let body = Body::from_stream(futures::stream::poll_fn(move |cx| out.poll_recv(cx)));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .body(body)
        .expect("response"))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CatalogQuery {
    index: Option<u64>,
    wait: Option<String>,
}

pub(super) async fn catalog_get(State(d): State<Arc<Daemon>>, Q(q): Q<CatalogQuery>) -> ApiResult {
    let mut rx = d.journal.index();
    if let Some(seen) = q.index {
        let wait = match q.wait.as_deref() {
            Some(w) => berth_format::parse_duration(w)
                .map_err(|e| ApiError::from(Error::InvalidParameter(format!("wait: {e}"))))?,
            None => Duration::from_secs(300),
        }
        .min(MAX_WAIT);
        let deadline = tokio::time::Instant::now() + wait;
        while *rx.borrow_and_update() <= seen {
            match tokio::time::timeout_at(deadline, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => break,
            }
        }
    }
    // The snapshot is swapped in before the index moves: it is at least as new.
    let index = *rx.borrow();
    let services = catalog_with(&d.feed.snapshot(), d.remote_catalog());
    let mut body =
        serde_json::to_vec(&berth_api::discovery::Catalog { index, services }).expect("json");
    body.push(b'\n');
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header("X-Berth-Index", index.to_string())
        .body(Body::from(body))
        .expect("response"))
}
