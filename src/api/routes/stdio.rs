//! `POST /containers/{id}/start` and `/berth/containers/{id}/exec`: detached starts, and
//! the `berth-stdio` upgrade that passes a client's stdio descriptors (or a pty master) over
//! the socket so foreground processes use the client's terminal directly, with no relaying.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{header, Response, StatusCode};
use berth_api::query::StartQuery;
use berth_api::{ExecCreateRequest, StdioLine};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

use crate::api::errors::{no_content, ApiResult};
use crate::api::extract::{parse_json, read_body, BODY_LIMIT, Q};
use crate::daemon::{Daemon, Error, ExecRequest, Stdio};

/// Plain start (detached), or with `Upgrade: berth-stdio` the foreground protocol:
/// after 101 the client sends one byte carrying its stdin/stdout/stderr (`stdio=fds`) or
/// none (`stdio=tty`); the server answers one JSON line (`{"Started":true}`, carrying the
/// pty master with `tty`, or `{"message":…}`), then `{"StatusCode":N}` when the process exits.
pub(super) async fn container_start(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<StartQuery>,
    mut req: Request,
) -> ApiResult {
    if !is_upgrade(&req) {
        d.container_start(&id, Stdio::Detached).await?;
        return no_content();
    }
    let id = d.state.lock().await.container_id(&id)?;
    let tty = q.stdio.as_deref() == Some("tty");
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Some(stream) = upgraded_stream(on_upgrade).await else {
            return;
        };
        serve_stdio(stream, tty, move |stdio| async move {
            let rx = d.subscribe();
            let master = d.container_start(&id, stdio).await?;
            let wait = tokio::spawn(async move { d.wait_exit_event(rx, id).await.unwrap_or(255) });
            Ok((master, wait))
        })
        .await;
    });
    Ok(switching())
}

pub(super) async fn container_exec(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    mut req: Request,
) -> ApiResult {
    if !is_upgrade(&req) {
        return Err(Error::InvalidParameter("exec needs the berth-stdio upgrade".into()).into());
    }
    let on_upgrade = hyper::upgrade::on(&mut req);
    let body = read_body(req, BODY_LIMIT).await?;
    let r: ExecCreateRequest = parse_json(&body)?;
    {
        let st = d.state.lock().await;
        let cid = st.container_id(&id)?;
        if !st.containers[&cid].is_running() {
            return Err(Error::Conflict(format!("Container {cid} is not running")).into());
        }
    }
    let tty = r.tty;
    let er = ExecRequest {
        cmd: r.cmd.unwrap_or_default(),
        env: r.env.unwrap_or_default(),
        working_dir: r.working_dir,
        tty,
    };
    tokio::spawn(async move {
        let Some(stream) = upgraded_stream(on_upgrade).await else {
            return;
        };
        serve_stdio(stream, tty, move |stdio| async move {
            d.container_exec(&id, er, stdio).await
        })
        .await;
    });
    Ok(switching())
}

fn is_upgrade(req: &Request) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case(crate::api::UPGRADE_PROTO))
}

fn switching() -> axum::response::Response {
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "Upgrade")
        .header(header::UPGRADE, crate::api::UPGRADE_PROTO)
        .body(Body::empty())
        .expect("response")
}

async fn upgraded_stream(on: hyper::upgrade::OnUpgrade) -> Option<std::os::unix::net::UnixStream> {
    let up = on.await.ok()?;
    let parts = up.downcast::<TokioIo<UnixStream>>().ok()?;
    if !parts.read_buf.is_empty() {
        return None;
    }
    let s = parts.io.into_inner().into_std().ok()?;
    s.set_nonblocking(false).ok()?;
    Some(s)
}

async fn serve_stdio<F, Fut>(stream: std::os::unix::net::UnixStream, tty: bool, start: F)
where
    F: FnOnce(Stdio) -> Fut,
    Fut: std::future::Future<
        Output = Result<(Option<OwnedFd>, tokio::task::JoinHandle<i64>), Error>,
    >,
{
    let s2 = match stream.try_clone() {
        Ok(s) => s,
        Err(_) => return,
    };
    let fds = match tokio::task::spawn_blocking(move || crate::api::fdpass::recv_fds(&s2, 3)).await
    {
        Ok(Ok(f)) => f,
        _ => return,
    };
    let stdio = if tty {
        Stdio::Tty
    } else {
        let mut it = fds.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => Stdio::Fds([a, b, c]),
            _ => {
                let _ = crate::api::fdpass::send_line(
                    &stream,
                    &StdioLine {
                        message: Some("expected 3 descriptors (stdin, stdout, stderr)".into()),
                        ..Default::default()
                    },
                    None,
                );
                return;
            }
        }
    };
    match start(stdio).await {
        Err(e) => {
            let _ = crate::api::fdpass::send_line(
                &stream,
                &StdioLine {
                    message: Some(e.to_string()),
                    status: Some(crate::api::errors::status_of(&e).as_u16()),
                    ..Default::default()
                },
                None,
            );
        }
        Ok((master, wait)) => {
            let started = StdioLine {
                started: true,
                ..Default::default()
            };
            if crate::api::fdpass::send_line(&stream, &started, master.as_ref()).is_err() {
                return;
            }
            drop(master);
            let exit = StdioLine {
                status_code: Some(wait.await.unwrap_or(255)),
                ..Default::default()
            };
            let _ = crate::api::fdpass::send_line(&stream, &exit, None);
        }
    }
}
