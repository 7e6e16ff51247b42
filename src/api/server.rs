//! Serving the API on the daemon's unix socket: accepting connections (with back-off when
//! accept fails and a cap on open connections), checking the peer, and closing connections
//! that sit idle or send their request head too slowly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use super::extract::BodyTimeout;
use crate::daemon::Daemon;

/// Limits on API connections (`--api-idle-timeout`, `--api-max-connections`).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// How long a connection may wait for a request head, idle or half-sent: hyper's
    /// header read timeout, which runs only while no request is in flight, so event
    /// followers, blocking catalog queries and log streams are never cut; neither are
    /// upgraded `berth-stdio` sessions, which leave hyper altogether. Also the longest a
    /// request body may take.
    pub idle_timeout: Duration,
    /// Open connections beyond which the daemon stops accepting until one closes.
    pub max_connections: usize,
}

impl Limits {
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

    /// A quarter of the descriptor limit, between 64 and 4096: published ports, pidfds
    /// and netlink sockets need the rest.
    pub fn default_max_connections() -> usize {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, _)| soft)
            .unwrap_or(1024);
        usize::try_from(soft / 4).unwrap_or(4096).clamp(64, 4096)
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            max_connections: Self::default_max_connections(),
        }
    }
}

const MIN_BACKOFF: Duration = Duration::from_millis(10);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// Back-off after failed accepts (EMFILE above all: retrying at once spins and floods the
/// log), 10 ms doubling to 1 s, with at most one log line per `MAX_BACKOFF`.
#[derive(Debug, Default)]
struct Backoff {
    delay: Option<Duration>,
    failures: u64,
    unlogged: u64,
    last_log: Option<Instant>,
}

impl Backoff {
    /// After a failure: how long to wait, and whether to log now with how many failures
    /// since the last line.
    fn failed(&mut self, now: Instant) -> (Duration, Option<u64>) {
        let delay = self.delay.map_or(MIN_BACKOFF, |d| (d * 2).min(MAX_BACKOFF));
        self.delay = Some(delay);
        self.failures += 1;
        self.unlogged += 1;
        if self
            .last_log
            .is_some_and(|t| now.duration_since(t) < MAX_BACKOFF)
        {
            return (delay, None);
        }
        self.last_log = Some(now);
        (delay, Some(std::mem::take(&mut self.unlogged)))
    }

    /// After a success: the number of failures in the run that just ended, if any.
    fn succeeded(&mut self) -> Option<u64> {
        let failures = std::mem::take(self).failures;
        (failures > 0).then_some(failures)
    }
}

/// How often the daemon says that the connection cap holds new clients back.
const CAP_LOG_PERIOD: Duration = Duration::from_secs(60);

/// Accepts connections from root only (the socket is 0660 root:root, and the peer's
/// credentials are checked too, since containers' processes could share the filesystem).
///
/// At the cap the daemon stops accepting rather than closing new connections: clients
/// wait in the socket's backlog, holding no descriptor of the daemon, and are served as
/// soon as a connection closes, which the idle timeout guarantees for idle ones. A burst
/// of CLI calls (200 concurrent `run`s) is slowed instead of failed.
/// The peer listener of a cluster node (`routes::service_logs`): other nodes read the logs
/// of this node's tasks from it, for `service logs`. Only that route is served there.
pub async fn serve_peer(addr: std::net::IpAddr, d: Arc<Daemon>) {
    let at = std::net::SocketAddr::new(addr, super::routes::PEER_PORT);
    match tokio::net::TcpListener::bind(at).await {
        Ok(l) => {
            if let Err(e) = axum::serve(l, super::routes::peer_router(d)).await {
                tracing::warn!("the peer listener on {at}: {e}");
            }
        }
        Err(e) => tracing::warn!(
            "cannot listen on {at} for other nodes ({e}): `service logs` elsewhere will miss this node's tasks"
        ),
    }
}

pub async fn serve(listener: UnixListener, d: Arc<Daemon>, limits: Limits) {
    let app = super::routes::router(d);
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Backoff::default();
    let mut cap_logged: Option<Instant> = None;
    tracing::debug!(?limits, "serving the API");
    loop {
        let permit = match permits.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                if cap_logged.is_none_or(|t| t.elapsed() >= CAP_LOG_PERIOD) {
                    cap_logged = Some(Instant::now());
                    tracing::warn!(
                        "{} API connections are open (--api-max-connections): new ones wait until one closes",
                        limits.max_connections
                    );
                }
                permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("the semaphore is never closed")
            }
        };
        let stream = match listener.accept().await {
            Ok((s, _)) => {
                if let Some(n) = backoff.succeeded() {
                    tracing::info!("accepting API connections again after {n} failed attempts");
                }
                s
            }
            Err(e) => {
                drop(permit);
                let (delay, log) = backoff.failed(Instant::now());
                if let Some(n) = log {
                    tracing::warn!(
                        "accepting an API connection failed ({n} time(s) since the last report): {e}; retrying in {delay:?}"
                    );
                }
                tokio::time::sleep(delay).await;
                continue;
            }
        };
        let app = app.clone();
        tokio::spawn(async move {
            // Held while hyper has the connection; an upgraded stdio session leaves the
            // count, since its CLI needs new connections to forward signals.
            let _permit = permit;
            match stream.peer_cred().map(|c| c.uid()) {
                Ok(0) => serve_connection(stream, app, limits).await,
                uid => refuse(stream, uid.ok(), limits).await,
            }
        });
    }
}

fn http1(limits: Limits) -> hyper::server::conn::http1::Builder {
    let mut b = hyper::server::conn::http1::Builder::new();
    b.timer(TokioTimer::new())
        .header_read_timeout(limits.idle_timeout);
    b
}

async fn serve_connection(stream: UnixStream, app: Router, limits: Limits) {
    let svc = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let app = app.clone();
        let mut req = req.map(Body::new);
        req.extensions_mut()
            .insert(BodyTimeout(limits.idle_timeout));
        app.oneshot(req)
    });
    let _ = http1(limits)
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades()
        .await;
}

/// Answers a peer that is not root with one 403 and closes: a bare reset left clients
/// with "error writing a body to connection" and no hint of the cause.
async fn refuse(stream: UnixStream, uid: Option<u32>, limits: Limits) {
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
                &berth_api::ErrorResponse {
                    message: format!(
                        "permission denied: the berth socket is root-only (this connection is from {who}); run the command as root, e.g. with sudo"
                    ),
                },
            );
            Ok::<_, std::convert::Infallible>(resp)
        }
    });
    let conn = http1(limits)
        .keep_alive(false)
        .serve_connection(TokioIo::new(stream), svc);
    let _ = tokio::time::timeout(limits.idle_timeout, conn).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_logs_once_per_period() {
        let mut b = Backoff::default();
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Each retry fails again as soon as its delay is over.
        let (d, log) = b.failed(t0);
        assert_eq!((d, log), (ms(10), Some(1)));
        let mut now = t0;
        let mut delays = vec![d];
        let mut logged = vec![];
        for _ in 0..10 {
            now += *delays.last().unwrap();
            let (d, log) = b.failed(now);
            delays.push(d);
            if let Some(n) = log {
                logged.push((now.duration_since(t0), n));
            }
        }
        let want: Vec<Duration> = [10, 20, 40, 80, 160, 320, 640, 1000, 1000, 1000, 1000]
            .into_iter()
            .map(ms)
            .collect();
        assert_eq!(delays, want);
        // 10+20+…+640 = 1270 ms: the first line after a second reports the 7 failures
        // since the one at t0; then one line per 1 s delay, each for one failure.
        assert_eq!(
            logged,
            vec![(ms(1270), 7), (ms(2270), 1), (ms(3270), 1), (ms(4270), 1)]
        );
        assert_eq!(b.succeeded(), Some(11));
        assert_eq!(b.succeeded(), None);
        assert_eq!(b.failed(now), (ms(10), Some(1)), "a success starts over");
    }

    #[test]
    fn default_cap_is_bounded() {
        let n = Limits::default_max_connections();
        assert!((64..=4096).contains(&n), "{n}");
    }
}
