//! `kill`, `stop`, `restart` and `rm`.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::daemon::{Daemon, Error, Result};
use crate::sandbox::{self};

impl Daemon {
    pub async fn container_kill(&self, key: &str, sig: i32) -> Result<()> {
        let mut st = self.state.lock().await;
        let id = st.container_id(key)?;
        // Stopped by someone: restart policies leave it alone (until the next start). A
        // signal that does not ask the process to end (HUP, USR1…) changes nothing.
        if matches!(
            sig,
            libc::SIGTERM | libc::SIGKILL | libc::SIGINT | libc::SIGQUIT
        ) {
            if let Some(c) = st.containers.get_mut(&id) {
                if c.is_running() {
                    c.state.manually_stopped = true;
                }
            }
        }
        let c = &st.containers[&id];
        if !c.is_running() {
            return Err(Error::Conflict(format!(
                "Cannot kill container: {key}: container {id} is not running"
            )));
        }
        sandbox::pidfd_signal(c.state.pid, c.state.pid_start, sig)
            .map_err(|e| Error::Internal(format!("signal container {key}: {e}")))?;
        self.emit_container(c, "kill", &[("signal", sig.to_string())]);
        Ok(())
    }

    /// SIGTERM, then SIGKILL after `timeout`.
    pub async fn container_stop(&self, key: &str, timeout: Duration) -> Result<()> {
        let id = self.state.lock().await.container_id(key)?;
        // A start in flight finishes first, so the stop is not lost in its window.
        let _op = self.op_lock(&id).await;
        let key = id.as_str();
        match self.container_kill(key, libc::SIGTERM).await {
            Err(Error::Conflict(_)) => {
                // Exited and waiting for its restart: stopping it cancels that.
                let mut st = self.state.lock().await;
                if let Some(c) = st
                    .container_id(key)
                    .ok()
                    .and_then(|id| st.containers.get_mut(&id))
                {
                    c.state.manually_stopped = true;
                }
                return Ok(());
            }
            r => r?,
        }
        if self.container_wait(key, Some(timeout)).await?.is_none() {
            let _ = self.container_kill(key, libc::SIGKILL).await;
            self.container_wait(key, Some(Duration::from_secs(30)))
                .await?;
        }
        let st = self.state.lock().await;
        if let Some(c) = st
            .container_id(key)
            .ok()
            .and_then(|id| st.containers.get(&id))
        {
            self.emit_container(c, "stop", &[]);
        }
        Ok(())
    }

    pub async fn container_restart(self: &Arc<Self>, key: &str, timeout: Duration) -> Result<()> {
        self.container_stop(key, timeout).await?;
        self.container_start(key, Stdio::Detached).await?;
        Ok(())
    }

    pub async fn container_remove(&self, key: &str, force: bool) -> Result<()> {
        let id = self.state.lock().await.container_id(key)?;
        // A start or connect of this container in flight finishes first.
        let _op = self.op_lock(&id).await;
        let key = id.as_str();
        {
            let st = self.state.lock().await;
            let Ok(id) = st.container_id(key) else {
                return Ok(()); // --rm got there first
            };
            if st.containers[&id].is_running() && !force {
                return Err(Error::Conflict(format!(
                    "You cannot remove a running container {id}. Stop the container before attempting removal or force remove"
                )));
            }
        }
        let _ = self.container_kill(key, libc::SIGKILL).await;
        self.container_wait(key, Some(Duration::from_secs(30)))
            .await?;
        let mut st = self.state.lock().await;
        let Ok(id) = st.container_id(key) else {
            return Ok(()); // --rm got there first
        };
        if st.containers[&id].is_running() {
            return Err(Error::Internal(format!(
                "container {key} did not stop after SIGKILL"
            )));
        }
        crate::failpoint::hit("rm:after-kill");
        // A record that is not running holds no address; one left by a crash mid-start
        // could, and the address must not stay reserved after the record is gone.
        let held = st.containers[&id].clone();
        let mut w = release_endpoints(&mut st, &held);
        w.delete_container(&id);
        self.commit(w).await?;
        st.containers.remove(&id);
        let _ = std::fs::remove_dir_all(self.container_dir(&id));
        Ok(())
    }
}
