//! A container's end: following its shim, recording the exit, releasing what it held.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::*;
use crate::daemon::events::Message;
use crate::daemon::keys::Writes;
use crate::daemon::{Daemon, Inner, Result};
use crate::model::{Container, Status};
use crate::sandbox::{self};

impl Daemon {
    /// Follows the shim; when it exits the container has exited.
    pub(crate) fn watch(self: &Arc<Self>, id: String, shim_pid: u32, shim_start: u64) {
        let d = self.clone();
        tokio::spawn(async move {
            if let Ok(fd) = sandbox::pidfd_open(shim_pid) {
                if sandbox::proc_start_time(shim_pid) == Some(shim_start) {
                    let _ = sandbox::wait_pidfd(fd).await;
                }
            }
            // Reap it if it is our child; a re-adopted shim belongs to init.
            let _ = nix::sys::wait::waitpid(
                nix::unistd::Pid::from_raw(shim_pid.cast_signed()),
                Some(nix::sys::wait::WaitPidFlag::WNOHANG),
            );
            d.on_exit(&id, shim_pid).await;
            d.after_exit(&id).await;
        });
    }

    pub(crate) async fn on_exit(&self, id: &str, shim_pid: u32) {
        let mut st = self.state.lock().await;
        let Some(c) = st.containers.get(id).cloned() else {
            return;
        };
        if !c.is_running() || c.state.shim_pid != shim_pid {
            return;
        }
        let dir = self.container_dir(id);
        let code = match sandbox::read_exit(&dir) {
            Some(r) => r.code,
            None => {
                // The shim died without recording a status: nobody supervises the process
                // any more, so it must not linger with addresses that are released now.
                let _ = sandbox::pidfd_signal(c.state.pid, c.state.pid_start, libc::SIGKILL);
                255
            }
        };
        self.mark_exited(&mut st, c, code).await;
    }

    /// Releases addresses, tears the sandbox down and records the exit (or removes the
    /// container if it was started with --rm).
    pub(crate) async fn mark_exited(&self, st: &mut Inner, mut c: Container, code: i64) {
        let before = c.clone();
        let mut w = release_endpoints(st, &c);
        self.release_ports(st, &c);
        c.ports.clear();
        c.endpoints.clear();
        c.link_hosts.clear();
        c.link_env.clear();
        c.state.status = Status::Exited;
        c.state.exit_code = code;
        c.state.finished_at = Some(Utc::now());
        c.state.pid = 0;
        c.state.shim_pid = 0;
        let remove = c.config.auto_remove;
        // Recorded even when auto-removed: the exit code reaches followers and waiters
        // (as `die`) before the record goes (`destroy`).
        w.put_container(&c);
        if let Err(e) = self.commit(w).await {
            tracing::error!(container = %c.id, "recording exit: {e}");
        }
        if remove {
            let mut w = Writes::default();
            w.delete_container(&c.id);
            if let Err(e) = self.commit(w).await {
                tracing::error!(container = %c.id, "removing the exited container: {e}");
            }
        }
        self.undo_sandbox(&st.networks, &before, false).await;
        let id = c.id.clone();
        if remove {
            st.containers.remove(&id);
            let _ = std::fs::remove_dir_all(self.container_dir(&id));
        } else {
            st.containers.insert(id.clone(), c);
        }
    }

    /// Waits until the container is not running; returns its exit code.
    pub async fn container_wait(
        &self,
        key: &str,
        timeout: Option<Duration>,
    ) -> Result<Option<i64>> {
        let rx = self.subscribe();
        let id = {
            let st = self.state.lock().await;
            let id = st.container_id(key)?;
            let c = &st.containers[&id];
            if !c.is_running() {
                return Ok(Some(c.state.exit_code));
            }
            id
        };
        let fut = self.wait_exit_event(rx, id);
        Ok(match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.ok().flatten(),
            None => fut.await,
        })
    }

    /// Waits for the exit of `id` on a receiver subscribed *before* the caller started the
    /// container, so a process that exits (and is auto-removed) at once is not missed.
    pub async fn wait_exit_event(
        &self,
        mut rx: tokio::sync::broadcast::Receiver<Arc<Message>>,
        id: String,
    ) -> Option<i64> {
        loop {
            match rx.recv().await {
                Ok(m) if m.typ == "container" && m.action == "die" && m.actor.id == id => {
                    let code = m.actor.attributes.get("exitCode");
                    return Some(code.and_then(|c| c.parse().ok()).unwrap_or(255));
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    let st = self.state.lock().await;
                    match st.containers.get(&id) {
                        Some(c) if c.is_running() => {}
                        Some(c) => return Some(c.state.exit_code),
                        None => return None,
                    }
                }
                Err(_) => return None,
            }
        }
    }
}
