//! Serving the API on the daemon's unix socket: accepting connections, checking the
//! peer, and the `/vX.Y` path prefix.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper_util::rt::TokioIo;
use tokio::net::UnixListener;
use tower::ServiceExt;

use crate::daemon::Daemon;

/// How long a refused peer may take to send its request head.
const REFUSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers a peer that is not root with one 403 and closes: a bare reset left clients
/// with "error writing a body to connection" and no hint of the cause.
async fn refuse(stream: tokio::net::UnixStream, uid: Option<u32>) {
    let who = uid.map_or_else(|| "an unknown user".to_string(), |u| format!("uid {u}"));
    tracing::debug!("refused an API connection from {who}");
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let who = who.clone();
        async move {
            // Reading the (small) body first lets the client finish writing it, so that it
            // reads this answer instead of failing on a closed socket.
            let _ = http_body_util::BodyExt::collect(http_body_util::Limited::new(
                req.into_body(),
                64 * 1024,
            ))
            .await;
            let resp = super::errors::json_response(
                axum::http::StatusCode::FORBIDDEN,
                &serde_json::json!({ "message": format!(
                    "permission denied: the berth socket is root-only (this connection is from {who}); run the command as root, e.g. with sudo"
                )}),
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    let _ = tokio::time::timeout(REFUSE_TIMEOUT, conn).await;
}

/// Accepts connections from root only (the socket is 0660 root:root, and the peer's
/// credentials are checked too, since containers' processes could share the filesystem).
pub async fn serve(listener: UnixListener, d: Arc<Daemon>) {
    let app = super::routes::router(d);
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!("accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        match stream.peer_cred().map(|c| c.uid()) {
            Ok(0) => {}
            uid => {
                tokio::spawn(refuse(stream, uid.ok()));
                continue;
            }
        }
        let app = app.clone();
        tokio::spawn(async move {
            let svc =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    async move {
                        let req = req.map(Body::new);
                        app.oneshot(req).await
                    }
                });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .with_upgrades()
                .await;
        });
    }
}
