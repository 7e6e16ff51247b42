//! `GET /services/{id}/logs` (docker's `service logs`): the logs of every task of the
//! service, from every node. A task on this node is read here; one on another node is
//! read from that node's peer listener (`GET /peer/tasks/{task}/logs` on its advertise
//! address, port `PEER_PORT`), so the client talks to one daemon. Lines come in docker's
//! multiplexed frames; with `details`, as the docker CLI asks, each line starts with the
//! task's `com.docker.swarm.{node,service,task}.id` context (the CLI names them), else with
//! `SERVICE.SLOT.TASK@NODE    | ` as the CLI prints them.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::Response;
use http_body_util::BodyExt;
use serde::Deserialize;

use super::containers::{log_stream, tokio_stream_from};
use crate::api::errors::ApiResult;
use crate::api::extract::Q;
use crate::daemon::{Daemon, Error};

/// The port of each node's peer listener (Swarm's cluster management port).
pub(crate) const PEER_PORT: u16 = 2377;

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ServiceLogsQuery {
    follow: Option<String>,
    details: Option<String>,
}

fn on(v: &Option<String>) -> bool {
    matches!(v.as_deref(), Some("1" | "true" | "True"))
}

type Chunks = tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>;

/// One task's log from the node that runs it.
async fn remote(addr: std::net::IpAddr, task: &str, follow: bool) -> Result<Chunks, String> {
    let url = format!(
        "http://{}/peer/tasks/{task}/logs?follow={}",
        std::net::SocketAddr::new(addr, PEER_PORT),
        u8::from(follow)
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Empty<Bytes>>();
    let resp = client
        .get(url.parse().map_err(|e| format!("{url}: {e}"))?)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    if !resp.status().is_success() {
        return Err(format!("{url}: {}", resp.status()));
    }
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    let mut body = resp.into_body();
    tokio::spawn(async move {
        while let Some(f) = body.frame().await {
            let Ok(f) = f else { return };
            if let Ok(d) = f.into_data() {
                if tx.send(Ok(d)).await.is_err() {
                    return;
                }
            }
        }
    });
    Ok(rx)
}

/// docker's frame: stream 1 (stdout), the length, the payload.
fn frame(line: &[u8]) -> Bytes {
    let mut b = Vec::with_capacity(line.len() + 8);
    b.extend_from_slice(&[1, 0, 0, 0]);
    b.extend_from_slice(&u32::try_from(line.len()).unwrap_or(u32::MAX).to_be_bytes());
    b.extend_from_slice(line);
    Bytes::from(b)
}

pub(super) async fn service_logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<ServiceLogsQuery>,
) -> ApiResult {
    let (s, view) = d.service_get(&id).await?;
    let me = d
        .cluster
        .as_ref()
        .map(|c| c.id.clone())
        .ok_or_else(|| Error::Unavailable("this node is not in a cluster".into()))?;
    let follow = on(&q.follow);
    let details = on(&q.details);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(64);
    for t in view.services.tasks_of(&s.record.id) {
        let Some(st) = view.services.states.get(&t.id) else {
            continue;
        };
        let node = view.nodes.iter().find(|n| n.record.id == t.node);
        let prefix = if details {
            format!(
                "com.docker.swarm.node.id={},com.docker.swarm.service.id={},com.docker.swarm.task.id={} ",
                t.node, s.record.id, t.id
            )
        } else {
            format!(
                "{}.{}.{}@{}    | ",
                s.record.spec.name,
                t.slot,
                t.id,
                node.map_or(t.node.as_str(), |n| n.record.name.as_str())
            )
        };
        let chunks = if t.node == me {
            let cid = match d.state.lock().await.container_id(&st.container) {
                Ok(c) => c,
                Err(_) => continue,
            };
            log_stream(d.clone(), cid, follow)
        } else {
            let Some(n) = node.filter(|n| n.ready) else {
                continue;
            };
            match remote(n.record.addr, &t.id, follow).await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(task = %t.id, "the logs of a task on another node: {e}");
                    continue;
                }
            }
        };
        let tx = tx.clone();
        tokio::spawn(lines(chunks, prefix, tx));
    }
    drop(tx);
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(
            header::CONTENT_TYPE,
            "application/vnd.docker.multiplexed-stream",
        )
        .body(body)
        .expect("response"))
}

/// Splits a log into lines, each sent as one frame with `prefix` (docker's CLI reads a
/// frame as one line).
async fn lines(
    mut chunks: Chunks,
    prefix: String,
    tx: tokio::sync::mpsc::Sender<Result<Bytes, std::io::Error>>,
) {
    let mut pending: Vec<u8> = Vec::new();
    while let Some(Ok(c)) = chunks.recv().await {
        pending.extend_from_slice(&c);
        while let Some(i) = pending.iter().position(|b| *b == b'\n') {
            let mut line = prefix.clone().into_bytes();
            line.extend(pending.drain(..=i));
            if tx.send(Ok(frame(&line))).await.is_err() {
                return;
            }
        }
    }
    if !pending.is_empty() {
        let mut line = prefix.into_bytes();
        line.extend(pending);
        line.push(b'\n');
        let _ = tx.send(Ok(frame(&line))).await;
    }
}

/// `GET /peer/tasks/{task}/logs` on the peer listener: a task container's log, raw.
pub(super) async fn peer_task_logs(
    State(d): State<Arc<Daemon>>,
    Path(task): Path<String>,
    Q(q): Q<ServiceLogsQuery>,
) -> ApiResult {
    let cid = {
        let st = d.state.lock().await;
        st.containers
            .values()
            .find(|c| c.config.labels.get(crate::daemon::services::TASK_LABEL) == Some(&task))
            .map(|c| c.id.clone())
    }
    .ok_or_else(|| Error::NotFound(format!("no container of task {task} here")))?;
    let rx = log_stream(d, cid, on(&q.follow));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(Body::from_stream(tokio_stream_from(rx)))
        .expect("response"))
}

/// The peer listener's routes: task logs only.
pub(crate) fn peer_router(d: Arc<Daemon>) -> axum::Router {
    axum::Router::new()
        .route(
            "/peer/tasks/{task}/logs",
            axum::routing::get(peer_task_logs),
        )
        .with_state(d)
}
