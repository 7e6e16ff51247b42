//! What the daemon does for a container on its own: restart it when its process exits
//! (`--restart`, with back-off, also across a daemon restart), and run its health check,
//! keeping an unhealthy replica out of its service's DNS answers until it recovers.

use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::keys::Writes;
use super::{Daemon, ExecRequest, Stdio};
use crate::model::{Container, Health, HealthResult, Healthcheck};

/// Back-off between restarts: 100 ms, doubled per restart, at most a minute; back to
/// 100 ms when the last run lasted 10 s (docker's numbers).
const BACKOFF_START: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(60);
const STEADY_RUN: Duration = Duration::from_secs(10);
/// Health check results kept, and output kept per result (docker's limits).
const HEALTH_LOG: usize = 5;
const HEALTH_OUTPUT: usize = 4096;

/// Whether the policy restarts this exited container now.
pub(crate) fn should_restart(c: &Container) -> bool {
    if c.config.auto_remove || c.state.manually_stopped {
        return false;
    }
    let p = &c.config.restart;
    match p.name.as_str() {
        "always" | "unless-stopped" => true,
        "on-failure" => {
            c.state.exit_code != 0 && (p.max_retries == 0 || c.state.restart_count < p.max_retries)
        }
        _ => false,
    }
}

fn backoff(c: &Container) -> Duration {
    let ran = match (c.state.started_at, c.state.finished_at) {
        (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
        _ => Duration::ZERO,
    };
    if ran >= STEADY_RUN {
        return BACKOFF_START;
    }
    BACKOFF_START
        .saturating_mul(1u32 << c.state.restart_count.min(10))
        .min(BACKOFF_MAX)
}

impl Daemon {
    /// After an exit: schedules the restart the policy asks for.
    pub(crate) async fn after_exit(self: &Arc<Self>, id: &str) {
        let (delay, finished) = {
            let st = self.state.lock().await;
            let Some(c) = st.containers.get(id) else {
                return;
            };
            if c.is_running() || !should_restart(c) {
                return;
            }
            (backoff(c), c.state.finished_at)
        };
        let d = self.clone();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut delay = delay;
            loop {
                tokio::time::sleep(delay).await;
                {
                    let mut st = d.state.lock().await;
                    let Some(c) = st.containers.get_mut(&id) else {
                        return;
                    };
                    // Started, stopped or removed by someone else meanwhile: not ours.
                    if c.is_running() || c.state.finished_at != finished || c.state.manually_stopped
                    {
                        return;
                    }
                    c.state.restart_count += 1;
                }
                tracing::info!(container = %id, "restarting (restart policy)");
                let Err(e) = d.container_start(&id, Stdio::Detached).await else {
                    return;
                };
                tracing::warn!(container = %id, "restart failed: {e}");
                // Still exited: again, later, while the policy allows.
                let st = d.state.lock().await;
                match st.containers.get(&id) {
                    Some(c) if !c.is_running() && should_restart(c) => delay = backoff(c),
                    _ => return,
                }
            }
        });
    }

    /// At daemon start: `always` containers start again (also after a manual stop, as
    /// with docker), `unless-stopped` ones unless they were stopped, and containers whose
    /// process died while the daemon was down get their policy applied.
    pub(crate) async fn restart_on_boot(self: &Arc<Self>) {
        let ids: Vec<String> = {
            let st = self.state.lock().await;
            st.containers
                .values()
                .filter(|c| !c.is_running() && c.state.started_at.is_some())
                .filter(|c| {
                    let died_while_down = c.state.finished_at.is_some_and(|f| f >= self.started);
                    c.config.restart.name == "always"
                        || (c.config.restart.name == "unless-stopped" && !c.state.manually_stopped)
                        || (died_while_down && should_restart(c))
                })
                .map(|c| c.id.clone())
                .collect()
        };
        for id in ids {
            tracing::info!(container = %id, "starting (restart policy, daemon start)");
            if let Err(e) = self.container_start(&id, Stdio::Detached).await {
                tracing::warn!(container = %id, "start at daemon start failed: {e}");
            }
        }
    }

    /// Runs the container's health check every interval while this run of it lasts.
    pub(crate) fn watch_health(self: &Arc<Self>, id: String, pid: u32, hc: Healthcheck) {
        let d = self.clone();
        tokio::spawn(async move {
            let began = tokio::time::Instant::now();
            let interval = Duration::from_millis(hc.interval_ms.max(1));
            let grace = Duration::from_millis(hc.start_period_ms);
            loop {
                tokio::time::sleep(interval).await;
                if !d.same_run(&id, pid).await {
                    return;
                }
                let start = Utc::now();
                let (code, output) = d.run_check(&id, &hc).await;
                let end = Utc::now();
                let mut st = d.state.lock().await;
                let Some(c) = st.containers.get_mut(&id) else {
                    return;
                };
                if !c.is_running() || c.state.pid != pid {
                    return;
                }
                let h = c.state.health.get_or_insert_with(starting);
                let before = h.status.clone();
                h.log.push(HealthResult {
                    start,
                    end,
                    exit_code: code,
                    output,
                });
                if h.log.len() > HEALTH_LOG {
                    h.log.remove(0);
                }
                if code == 0 {
                    h.failing_streak = 0;
                    h.status = "healthy".into();
                } else if began.elapsed() >= grace || h.status == "healthy" {
                    // Failures in the start period do not count, unless it was healthy.
                    h.failing_streak += 1;
                    if h.failing_streak >= hc.retries {
                        h.status = "unhealthy".into();
                    }
                }
                if h.status != before {
                    // Committed (under the state lock, so an exit's record cannot be
                    // overtaken by it): the resolver's controller follows the record.
                    let status = h.status.clone();
                    let c = c.clone();
                    if let Err(e) = d.commit(Writes::container(&c)).await {
                        tracing::warn!(container = %id, "recording health {status}: {e}");
                    }
                }
            }
        });
    }

    async fn same_run(&self, id: &str, pid: u32) -> bool {
        let st = self.state.lock().await;
        st.containers
            .get(id)
            .is_some_and(|c| c.is_running() && c.state.pid == pid)
    }

    /// One check in the sandbox: its exit code and (the start of) its output.
    async fn run_check(&self, id: &str, hc: &Healthcheck) -> (i64, String) {
        let cmd: Vec<String> = match hc.test.first().map(String::as_str) {
            Some("CMD") => hc.test[1..].to_vec(),
            Some("CMD-SHELL") => vec!["/bin/sh".into(), "-c".into(), hc.test[1..].join(" ")],
            _ => return (0, String::new()),
        };
        let (r, w) = match nix::unistd::pipe() {
            Ok(p) => p,
            Err(e) => return (-1, format!("health check: pipe: {e}")),
        };
        let null: OwnedFd = match std::fs::File::open("/dev/null") {
            Ok(f) => f.into(),
            Err(e) => return (-1, format!("health check: {e}")),
        };
        let w2 = match w.try_clone() {
            Ok(x) => x,
            Err(e) => return (-1, format!("health check: {e}")),
        };
        let req = ExecRequest {
            cmd,
            ..Default::default()
        };
        let (_, pid, done) = match self.exec_spawn(id, req, Stdio::Fds([null, w, w2])).await {
            Ok(x) => x,
            Err(e) => return (-1, e.to_string()),
        };
        let reader = tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut f = std::fs::File::from(r);
            let mut kept = Vec::new();
            let mut buf = [0u8; 4096];
            // Read to the end (a writer must never block on a full pipe), keep the start.
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let room = HEALTH_OUTPUT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
            String::from_utf8_lossy(&kept).into_owned()
        });
        match tokio::time::timeout(Duration::from_millis(hc.timeout_ms.max(1)), done).await {
            Ok(Ok(code)) => (code, reader.await.unwrap_or_default()),
            Ok(Err(_)) => (-1, "health check: lost the process".into()),
            Err(_) => {
                // Still our unreaped child (the waiting task reaps it): the PID is its own.
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid.cast_signed()),
                    nix::sys::signal::Signal::SIGKILL,
                );
                (
                    -1,
                    format!("Health check exceeded timeout ({}ms)", hc.timeout_ms),
                )
            }
        }
    }
}

pub(crate) fn starting() -> Health {
    Health {
        status: "starting".into(),
        failing_streak: 0,
        log: vec![],
    }
}
