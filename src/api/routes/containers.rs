//! `/containers…` except start and exec (see `stdio`): list, inspect, create, stop,
//! restart, kill, wait, remove and logs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, Response, StatusCode};
use berth_api::container::{Healthcheck, WaitResponse};
use berth_api::query::{CreateQuery, KillQuery, ListQuery, LogsQuery, RemoveQuery, StopQuery};
use berth_api::{ContainerCreateRequest, ContainerCreateResponse, ContainerSummary};

use super::networks::endpoint_request;
use super::{empty_none, label_match, parse_filters};
use crate::api::errors::{json_response, no_content, ok, ApiResult};
use crate::api::extract::{parse_json, ReqBody, CREATE_BODY_LIMIT, Q};
use crate::api::types;
use crate::daemon::{ContainerCreate, Daemon, Error};

/// The filters `ps` applies, and docker's other ones, which berth refuses rather than
/// ignores: an ignored filter would list containers it should have left out.
const PS_FILTERS: [&str; 5] = ["id", "label", "name", "network", "status"];
const DOCKER_ONLY_PS_FILTERS: [&str; 10] = [
    "ancestor",
    "before",
    "expose",
    "exited",
    "health",
    "isolation",
    "is-task",
    "publish",
    "since",
    "volume",
];
const STATUSES: [&str; 7] = [
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

fn check_ps_filters(f: &BTreeMap<String, Vec<String>>) -> Result<(), Error> {
    for k in f.keys() {
        if DOCKER_ONLY_PS_FILTERS.contains(&k.as_str()) {
            return Err(Error::InvalidParameter(format!(
                "filter '{k}' is not supported by berth (use {})",
                PS_FILTERS.join(", ")
            )));
        }
        if !PS_FILTERS.contains(&k.as_str()) {
            return Err(Error::InvalidParameter(format!("invalid filter '{k}'")));
        }
    }
    for s in f.get("status").into_iter().flatten() {
        if !STATUSES.contains(&s.as_str()) {
            return Err(Error::InvalidParameter(format!(
                "invalid filter 'status={s}' (use one of {})",
                STATUSES.join(", ")
            )));
        }
    }
    Ok(())
}

pub(super) async fn container_list(State(d): State<Arc<Daemon>>, Q(q): Q<ListQuery>) -> ApiResult {
    let f = parse_filters(q.filters.as_deref())?;
    check_ps_filters(&f)?;
    let all = q.all;
    let (nets, mut ctrs) = d.snapshot().await;
    ctrs.sort_by_key(|c| std::cmp::Reverse(c.created));
    let now = chrono::Utc::now();
    let out: Vec<ContainerSummary> = ctrs
        .iter()
        .filter(|c| all || c.is_running() || f.contains_key("status"))
        .filter(|c| {
            let any = |k: &str, pred: &dyn Fn(&str) -> bool| {
                f.get(k).is_none_or(|v| v.iter().any(|x| pred(x)))
            };
            any("name", &|x| c.name.contains(x.trim_start_matches('/')))
                && any("id", &|x| c.id.starts_with(x))
                && any("status", &|x| c.state.status.as_str() == x)
                && any("network", &|x| {
                    c.config.networks.iter().any(|(n, _)| n == x)
                        || c.endpoints
                            .iter()
                            .any(|e| e.network_name == x || e.network_id.starts_with(x))
                        || c.config.network_mode_name == x
                })
                && f.get("label")
                    .is_none_or(|v| v.iter().all(|x| label_match(&c.config.labels, x)))
        })
        .map(|c| types::container_summary(c, &nets, now))
        .collect();
    ok(out)
}

pub(super) async fn container_inspect(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    let cid = d.state.lock().await.container_id(&id)?;
    let (nets, ctrs) = d.snapshot().await;
    let c = ctrs
        .iter()
        .find(|c| c.id == cid)
        .ok_or_else(|| Error::NotFound(format!("No such container: {id}")))?;
    let paths = types::Paths {
        dir: d.opts.run.join("containers").join(&c.id),
        netns: d.opts.run.join("netns").join(&c.id),
    };
    ok(types::container_inspect(c, &nets, &paths))
}

/// `Config.Healthcheck` as the daemon keeps it: milliseconds, docker's defaults for 0.
pub(super) fn healthcheck(
    h: Option<Healthcheck>,
) -> Result<Option<crate::model::Healthcheck>, Error> {
    let Some(h) = h else { return Ok(None) };
    let test = h.test;
    match test.first().map(String::as_str) {
        None | Some("NONE") => return Ok(None),
        Some("CMD") | Some("CMD-SHELL") if test.len() > 1 => {}
        _ => {
            return Err(Error::InvalidParameter(format!(
                "invalid Healthcheck.Test {test:?}: use [\"CMD\", prog, args…], [\"CMD-SHELL\", script] or [\"NONE\"]"
            )))
        }
    }
    let ms = |ns: u64, default: u64| {
        if ns == 0 {
            default
        } else {
            (ns / 1_000_000).max(1)
        }
    };
    Ok(Some(crate::model::Healthcheck {
        test,
        interval_ms: ms(h.interval, 30_000),
        timeout_ms: ms(h.timeout, 30_000),
        retries: if h.retries == 0 { 3 } else { h.retries },
        start_period_ms: ms(h.start_period, 0),
    }))
}

pub(super) async fn container_create(
    State(d): State<Arc<Daemon>>,
    Q(q): Q<CreateQuery>,
    ReqBody(body): ReqBody<CREATE_BODY_LIMIT>,
) -> ApiResult {
    let r: ContainerCreateRequest = parse_json(&body)?;
    let hc = r.host_config.unwrap_or_default();
    let mut endpoints = Vec::new();
    for (net, ep) in r
        .networking_config
        .and_then(|n| n.endpoints_config)
        .unwrap_or_default()
    {
        endpoints.push((net, endpoint_request(Some(ep))?));
    }
    let req = ContainerCreate {
        name: empty_none(q.name),
        cmd: r
            .entrypoint
            .unwrap_or_default()
            .into_iter()
            .chain(r.cmd.unwrap_or_default())
            .collect(),
        env: r.env.unwrap_or_default(),
        working_dir: r.working_dir,
        hostname: r.hostname,
        domainname: r.domainname,
        tty: r.tty,
        open_stdin: r.open_stdin,
        dns: hc.dns.unwrap_or_default(),
        dns_search: hc.dns_search.unwrap_or_default(),
        dns_options: hc.dns_options.unwrap_or_default(),
        extra_hosts: hc.extra_hosts.unwrap_or_default(),
        links: hc.links.unwrap_or_default(),
        restart: {
            let r = hc.restart_policy;
            let spec = match (r.name.as_str(), r.maximum_retry_count) {
                ("on-failure", n) if n > 0 => format!("on-failure:{n}"),
                (name, _) => name.to_string(),
            };
            crate::model::RestartPolicy::parse(&spec).map_err(Error::InvalidParameter)?
        },
        healthcheck: healthcheck(r.healthcheck)?,
        auto_remove: hc.auto_remove,
        log_opts: match hc.log_config {
            l if !matches!(l.kind.as_str(), "" | "json-file" | "local") => {
                return Err(Error::InvalidParameter(format!(
                    "log driver {:?} is not supported: berth keeps logs in files (json-file, with max-size and max-file)",
                    l.kind
                ))
                .into())
            }
            l => l.config.unwrap_or_default().into_iter().collect(),
        },
        labels: r.labels.unwrap_or_default(),
        network_mode: hc.network_mode,
        endpoints,
        // Typed since the request was read: the keys are ports already.
        exposed_ports: r.exposed_ports.into_keys().collect(),
        port_bindings: hc
            .port_bindings
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let list = v
                    .unwrap_or_default()
                    .into_iter()
                    .map(|b| (b.host_ip, b.host_port))
                    .collect();
                (k, list)
            })
            .collect(),
        publish_all: hc.publish_all_ports,
    };
    let id = d.container_create(req).await?;
    Ok(json_response(
        StatusCode::CREATED,
        &ContainerCreateResponse {
            id,
            warnings: vec![],
        },
    ))
}

pub(super) async fn container_stop(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<StopQuery>,
) -> ApiResult {
    let t = Duration::from_secs(u64::try_from(q.t.unwrap_or(10)).unwrap_or(0));
    d.container_stop(&id, t).await?;
    no_content()
}

pub(super) async fn container_restart(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<StopQuery>,
) -> ApiResult {
    let t = Duration::from_secs(u64::try_from(q.t.unwrap_or(10)).unwrap_or(0));
    d.container_restart(&id, t).await?;
    no_content()
}

/// docker's signals: a number, or a name with or without `SIG` in any case (`HUP`,
/// `sigterm`, `RTMIN+3`). Like dockerd, only the platform's signals: 1–31 and the real-time
/// ones (glibc keeps 32 and 33 for itself).
pub(super) fn parse_signal(s: &str) -> Option<i32> {
    let (rtmin, rtmax) = (libc::SIGRTMIN(), libc::SIGRTMAX());
    let valid =
        |n: i64| (1..=31).contains(&n) || (i64::from(rtmin)..=i64::from(rtmax)).contains(&n);
    if let Ok(n) = s.parse::<i64>() {
        return valid(n).then(|| i32::try_from(n).ok()).flatten();
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    // `RTMIN`, `RTMIN+n`, `RTMAX`, `RTMAX-n`.
    let rt = |base: i32, rest: &str, sep: char, sign: i32| -> Option<i32> {
        let off = if rest.is_empty() {
            0
        } else {
            rest.strip_prefix(sep)?
                .parse::<i32>()
                .ok()
                .filter(|o| *o > 0)?
        };
        let n = base + sign * off;
        valid(i64::from(n)).then_some(n)
    };
    if let Some(rest) = name.strip_prefix("RTMIN") {
        return rt(rtmin, rest, '+', 1);
    }
    if let Some(rest) = name.strip_prefix("RTMAX") {
        return rt(rtmax, rest, '-', -1);
    }
    let sig: nix::sys::signal::Signal = format!("SIG{name}").parse().ok()?;
    Some(sig as i32)
}

pub(super) async fn container_kill(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<KillQuery>,
) -> ApiResult {
    let s = q
        .signal
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "SIGKILL".into());
    let sig = parse_signal(&s).ok_or_else(|| {
        Error::InvalidParameter(format!(
            "Invalid signal: {s} (give a name such as SIGTERM or HUP, or a number from 1 to {})",
            libc::SIGRTMAX()
        ))
    })?;
    d.container_kill(&id, sig).await?;
    no_content()
}

pub(super) async fn container_wait(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
) -> ApiResult {
    let code = d.container_wait(&id, None).await?.unwrap_or(255);
    ok(WaitResponse {
        status_code: code,
        error: None,
    })
}

pub(super) async fn container_delete(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<RemoveQuery>,
) -> ApiResult {
    d.container_remove(&id, q.force).await?;
    no_content()
}

/// The log as a raw stream (what dockerd sends for tty containers); `follow` keeps it open
/// until the container stops.
pub(super) async fn container_logs(
    State(d): State<Arc<Daemon>>,
    Path(id): Path<String>,
    Q(q): Q<LogsQuery>,
) -> ApiResult {
    let cid = d.state.lock().await.container_id(&id)?;
    let rx = log_stream(d, cid, q.follow);
    let body = Body::from_stream(tokio_stream_from(rx));
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/vnd.docker.raw-stream")
        .body(body)
        .expect("response"))
}

/// A container's log as it is read (the rotated files oldest first, then the live one);
/// with `follow`, until the container stops or the receiver goes.
pub(super) fn log_stream(
    d: Arc<Daemon>,
    cid: String,
    follow: bool,
) -> tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>> {
    let dir = d.container_dir(&cid);
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(16);
    tokio::spawn(async move {
        // The rotated files oldest first, then the live one, followed across rotations.
        let mut log = crate::logs::Follower::new(&dir);
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = log.read(&mut buf);
            if n > 0 {
                if tx
                    .send(Ok(Bytes::copy_from_slice(&buf[..n])))
                    .await
                    .is_err()
                {
                    return;
                }
                continue;
            }
            if !follow {
                return;
            }
            let running = {
                let st = d.state.lock().await;
                st.containers.get(&cid).is_some_and(|c| c.is_running())
            };
            if !running {
                // Drain what the process wrote just before it exited.
                let n = log.read(&mut buf);
                if n > 0 {
                    let _ = tx.send(Ok(Bytes::copy_from_slice(&buf[..n]))).await;
                    continue;
                }
                return;
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    rx
}

pub(super) fn tokio_stream_from(
    mut rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals() {
        assert_eq!(parse_signal("SIGTERM"), Some(15));
        assert_eq!(parse_signal("kill"), Some(9));
        assert_eq!(parse_signal("2"), Some(2));
        assert_eq!(parse_signal("BOGUS"), None);
        assert_eq!(parse_signal("hup"), Some(1));
        assert_eq!(parse_signal("SIGUSR1"), Some(10));
        assert_eq!(parse_signal("64"), Some(64));
        assert_eq!(parse_signal("RTMIN"), Some(libc::SIGRTMIN()));
        assert_eq!(parse_signal("SIGRTMIN+3"), Some(libc::SIGRTMIN() + 3));
        assert_eq!(parse_signal("rtmax-1"), Some(libc::SIGRTMAX() - 1));
        for bad in [
            "0", "-1", "32", "65", "99999", "", "RTMIN+99", "RTMINX", "RTMAX+1", "RTMIN+0",
        ] {
            assert_eq!(parse_signal(bad), None, "{bad}");
        }
    }
}
