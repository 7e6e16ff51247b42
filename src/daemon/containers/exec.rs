//! `exec`: a process in a running container's namespaces (its PID namespace included).

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use super::*;
use crate::daemon::{Daemon, Error, Result};
use crate::sandbox::{self, Spec};

impl Daemon {
    /// Runs a command in a running container's namespaces. Returns the pty master (for
    /// `Tty`) and a future for its exit code.
    pub async fn container_exec(
        &self,
        key: &str,
        req: ExecRequest,
        stdio: Stdio,
    ) -> Result<(Option<OwnedFd>, tokio::task::JoinHandle<i64>)> {
        let (master, _, done) = self.exec_spawn(key, req, stdio).await?;
        Ok((master, done))
    }

    /// `container_exec`, also giving the process's PID (it stays our unreaped child
    /// until the returned task waits for it, so the PID names it until then).
    pub(crate) async fn exec_spawn(
        &self,
        key: &str,
        req: ExecRequest,
        stdio: Stdio,
    ) -> Result<(Option<OwnedFd>, u32, tokio::task::JoinHandle<i64>)> {
        let (pid, mut env, cwd) = {
            let st = self.state.lock().await;
            let id = st.container_id(key)?;
            let c = &st.containers[&id];
            if !c.is_running() {
                return Err(Error::Conflict(format!("container {id} is not running")));
            }
            (c.state.pid, container_env(c), c.config.working_dir.clone())
        };
        if req.cmd.is_empty() {
            return Err(Error::InvalidParameter("No exec command specified".into()));
        }
        env.extend(req.env);
        let ns = |n: &str| Some(PathBuf::from(format!("/proc/{pid}/ns/{n}")));
        let spec = Spec {
            cmd: req.cmd,
            env,
            cwd: if req.working_dir.is_empty() {
                cwd
            } else {
                req.working_dir
            },
            netns: ns("net"),
            join_uts: ns("uts"),
            join_mnt: ns("mnt"),
            hostname: None,
            binds: vec![],
            tty: req.tty,
            log: None,
            join_pid: None,
        };
        let pidns = std::fs::File::open(format!("/proc/{pid}/ns/pid"))
            .map_err(|e| Error::Conflict(format!("container {key} is not running: {e}")))?;
        let stdio = match (stdio, req.tty) {
            (Stdio::Detached, true) => Stdio::Tty,
            (s, _) => s,
        };
        let (fds, master) = self.make_stdio(stdio)?;
        let mut cmd =
            sandbox::command(&spec).map_err(|e| Error::InvalidParameter(e.to_string()))?;
        let [i, o, e] = fds;
        cmd.stdin(i).stdout(o).stderr(e);
        // Into the container's PID namespace, so the process dies with the container. A
        // PID namespace is entered for the children of a thread: spawn from a thread of
        // its own, which ends right after.
        let mut child = std::thread::scope(|s| {
            s.spawn(|| {
                use std::os::fd::AsFd;
                nix::sched::setns(pidns.as_fd(), nix::sched::CloneFlags::CLONE_NEWPID)
                    .map_err(std::io::Error::from)?;
                cmd.spawn()
            })
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the spawning thread panicked")))
        })
        .map_err(|e| Error::Internal(format!("exec in container {key}: {e}")))?;
        drop(cmd);
        let pid = child.id();
        let h = tokio::task::spawn_blocking(move || {
            child.wait().map(sandbox::exit_code).unwrap_or(255)
        });
        Ok((master, pid, h))
    }
}
