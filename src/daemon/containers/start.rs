//! `start`: addresses and ports committed, then the sandbox built in the kernel and the shim
//! spawned; a failing step undoes the earlier ones.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;

use super::*;
use crate::daemon::keys::Writes;
use crate::daemon::ports;
use crate::daemon::{Daemon, Error, Inner, Result};
use crate::model::{Container, Endpoint, Network, NetworkMode, Status};
use crate::netlink::{self, Netlink};
use crate::sandbox::{self, Spec};

impl Daemon {
    /// Starts the container's process in its sandbox; with `Stdio::Tty` the pty master is
    /// returned for the client to relay.
    ///
    /// The state lock is held only to plan (addresses, host ports, links) and to record the
    /// outcome; the commit, the firewall elements, the namespace, the links and the shim
    /// happen without it, so starts of different containers overlap. The container's own
    /// operation lock keeps a concurrent `rm` or `connect` of the same container out.
    pub async fn container_start(
        self: &Arc<Self>,
        key: &str,
        stdio: Stdio,
    ) -> Result<Option<OwnedFd>> {
        let id = self.state.lock().await.container_id(key)?;
        let _op = self.op_lock(&id).await;
        let st = self.state.lock().await;
        let id = st.container_id(&id)?;
        if st.containers[&id].is_running() {
            return match stdio {
                Stdio::Detached => Ok(None),
                _ => Err(Error::Conflict(format!(
                    "container {key} is already running"
                ))),
            };
        }
        let old = st.containers[&id].clone();
        let mut c = old.clone();
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir)?;
        self.dns_refresh_upstreams();
        // 1. Plan: addresses and host ports, held in memory while the lock is held.
        let (mut st, (endpoints, mut writes)) = self
            .plan_with_blocks(st, |st| allocate_endpoints(st, &c))
            .await?;
        c.endpoints = endpoints;
        match crate::daemon::discovery::resolve_links(&st, &c) {
            Ok(l) => {
                c.link_hosts = l.hosts;
                c.link_env = l.env;
            }
            Err(e) => {
                release_endpoints(&mut st, &c);
                return Err(e);
            }
        }
        let taken = match self.take_ports(&mut st, &c) {
            Ok(t) => t,
            Err(e) => {
                release_endpoints(&mut st, &c);
                return Err(e);
            }
        };
        c.ports = taken.published.clone();
        // A new run's health is unknown until its first check, also while it starts.
        c.state.health = c
            .config
            .healthcheck
            .as_ref()
            .map(|_| crate::daemon::supervise::starting());
        let view = View::of(&st, &c);
        let claims = self.overlay_records(&st, &c);
        // Recorded with its endpoints at once, so `network rm` sees them in use.
        st.containers.insert(id.clone(), c.clone());
        drop(st);
        // 2. Commit (the cluster's claims first), then the kernel, with no lock held.
        writes.put_container(&c);
        let mut kernel = self.claim_overlay(&claims).await;
        let claimed = kernel.is_ok();
        if kernel.is_ok() {
            kernel = self.commit(writes).await.map(|_| ());
        }
        let mapped = ports::mappings(&c, self.opts.userland_proxy);
        if kernel.is_ok() {
            crate::failpoint::hit("start:after-allocate");
            // The DNAT elements (harmless until the address exists), then the sandbox.
            kernel = self.install_ports(&mapped);
        }
        let spawned = match kernel {
            Ok(()) => self.build_and_spawn(&view, &mut c, &dir, stdio).await,
            Err(e) => Err(e),
        };
        let spawned = match spawned {
            Ok((shim_pid, pid, master)) => {
                c.state.status = Status::Running;
                c.state.pid = pid;
                c.state.pid_start = sandbox::proc_start_time(pid).unwrap_or(0);
                c.state.shim_pid = shim_pid;
                c.state.shim_start = sandbox::proc_start_time(shim_pid).unwrap_or(0);
                c.state.started_at = Some(Utc::now());
                c.state.finished_at = None;
                c.state.exit_code = 0;
                c.state.error.clear();
                c.state.manually_stopped = false;
                match self.commit(Writes::container(&c)).await {
                    Ok(_) => Ok((pid, master)),
                    Err(e) => {
                        let _ = sandbox::pidfd_signal(pid, c.state.pid_start, libc::SIGKILL);
                        let _ = sandbox::pidfd_signal(shim_pid, c.state.shim_start, libc::SIGKILL);
                        Err(e)
                    }
                }
            }
            Err(e) => Err(e),
        };
        // 3. Record the outcome.
        let mut st = self.state.lock().await;
        match spawned {
            Ok((pid, master)) => {
                crate::failpoint::hit("start:after-commit");
                self.serve_ports(&mut st, &c, taken);
                st.installed.insert(id.clone(), mapped);
                st.containers.insert(id.clone(), c.clone());
                drop(st);
                if let Some(hc) = c.config.healthcheck.clone() {
                    self.watch_health(id.clone(), pid, hc);
                }
                self.watch(id, c.state.shim_pid, c.state.shim_start);
                Ok(master)
            }
            Err(e) => {
                self.uninstall_ports(&mut st, &mapped);
                drop(taken);
                let mut w = release_endpoints(&mut st, &c);
                let mut old = old;
                old.endpoints.clear();
                old.state.error = e.to_string();
                w.put_container(&old);
                st.containers.insert(id, old);
                drop(st);
                self.undo_sandbox(&view.nets, &c, true).await;
                let _ = self.commit(w).await;
                if claimed {
                    self.release_overlay(&claims).await;
                }
                Err(e)
            }
        }
    }

    /// Namespace, links, files, then the shim. Returns (shim pid, container pid, pty master).
    pub(super) async fn build_and_spawn(
        &self,
        view: &View,
        c: &mut Container,
        dir: &Path,
        stdio: Stdio,
    ) -> Result<(u32, u32, Option<OwnedFd>)> {
        let mut spec = Spec {
            cmd: c.config.cmd.clone(),
            env: container_env(c),
            cwd: c.config.working_dir.clone(),
            netns: None,
            join_uts: None,
            join_mnt: None,
            hostname: Some(c.config.hostname.clone()),
            binds: vec![],
            tty: matches!(stdio, Stdio::Tty),
            // Detached output goes through the shim, which caps and rotates the log.
            log: matches!(stdio, Stdio::Detached).then(|| {
                self.opts
                    .log_defaults
                    .with(&c.config.log_opts)
                    .unwrap_or(self.opts.log_defaults)
            }),
            join_pid: None,
        };
        let files_dir = match &c.config.network_mode {
            NetworkMode::Networks | NetworkMode::None => {
                let path = self.netns_path(&c.id);
                let (nsnl, nsfd) = netlink::create_netns(&path).await?;
                self.ns_links
                    .lock()
                    .expect("lock")
                    .insert(c.id.clone(), nsnl.clone());
                spec.netns = Some(path);
                let mut first = true;
                for ep in &c.endpoints {
                    let net = &view.nets[&ep.network_id];
                    self.attach_kernel(&nsfd, &nsnl, net, ep, first).await?;
                    first = false;
                }
                crate::failpoint::hit("start:after-attach");
                dir.to_path_buf()
            }
            NetworkMode::Host => {
                spec.hostname = None;
                dir.to_path_buf()
            }
            NetworkMode::Container(target) => {
                let t = view.target.as_ref().ok_or_else(|| {
                    Error::Conflict(format!(
                        "cannot join network of a non running container: {target}"
                    ))
                })?;
                spec.netns = Some(PathBuf::from(format!("/proc/{}/ns/net", t.state.pid)));
                spec.join_pid = Some(PathBuf::from(format!("/proc/{}/ns/pid", t.state.pid)));
                spec.hostname = Some(t.config.hostname.clone());
                match &t.config.network_mode {
                    NetworkMode::Host => dir.to_path_buf(),
                    _ => self.container_dir(&t.id),
                }
            }
        };
        if files_dir == dir {
            self.write_files(c, dir)?;
        }
        spec.binds = vec![
            (files_dir.join("hosts"), "/etc/hosts".into()),
            (files_dir.join("resolv.conf"), "/etc/resolv.conf".into()),
        ];
        if spec.hostname.is_some() {
            spec.binds
                .push((files_dir.join("hostname"), "/etc/hostname".into()));
        }
        std::fs::write(
            dir.join(sandbox::SPEC_FILE),
            serde_json::to_vec(&spec).expect("json"),
        )?;
        let (fds, master) = self.make_stdio(stdio)?;
        // A status left by an earlier run must go before the shim can write the new one.
        let _ = std::fs::remove_file(dir.join(sandbox::EXIT_FILE));
        let (shim, pid) = spawn_shim(dir, fds).await?;
        crate::failpoint::hit("start:after-spawn");
        Ok((shim, pid, master))
    }

    pub(super) fn write_files(&self, c: &Container, dir: &Path) -> Result<()> {
        write_hosts(c, dir)?;
        std::fs::write(dir.join("hostname"), format!("{}\n", c.config.hostname))?;
        std::fs::write(dir.join("resolv.conf"), self.resolv_conf_for(c))?;
        Ok(())
    }

    /// Rewritten in place (same inode): the sandbox sees it through a bind mount.
    pub(super) fn make_stdio(&self, stdio: Stdio) -> Result<([OwnedFd; 3], Option<OwnedFd>)> {
        Ok(match stdio {
            Stdio::Fds(fds) => (fds, None),
            // A first process's output reaches the log through the shim (`Spec::log`); a
            // detached exec's is discarded, as docker does.
            Stdio::Detached => {
                let null: OwnedFd = std::fs::OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open("/dev/null")?
                    .into();
                ([null.try_clone()?, null.try_clone()?, null], None)
            }
            Stdio::Tty => {
                let (master, slave) = sandbox::open_pty()?;
                (
                    [slave.try_clone()?, slave.try_clone()?, slave],
                    Some(master),
                )
            }
        })
    }

    /// One endpoint in the kernel, by its network's driver; all or nothing.
    pub(crate) async fn attach_kernel(
        &self,
        nsfd: &OwnedFd,
        nsnl: &Netlink,
        net: &Network,
        ep: &Endpoint,
        default_route: bool,
    ) -> Result<()> {
        if net.driver == crate::model::Driver::Overlay {
            self.overlay_bridge_up(net).await?;
        }
        let ns = crate::daemon::drivers::SandboxNs { fd: nsfd, nl: nsnl };
        self.drivers
            .of(net.driver)
            .join(ns, net, ep, default_route)
            .await
    }

    /// Endpoints leave their networks on a task of their own: a veth deletion costs the kernel
    /// tens of milliseconds, and only a later join of the same container waits for it
    /// (`pending_detach`).
    pub(super) fn leave_in_background(
        &self,
        eps: Vec<(crate::model::Driver, Endpoint)>,
    ) -> tokio::task::JoinHandle<()> {
        let drivers = self.drivers.clone();
        tokio::spawn(async move {
            for (driver, ep) in eps {
                if let Err(e) = drivers.of(driver).leave(&ep).await {
                    tracing::warn!("deleting {}: {e}", ep.host_ifname);
                }
            }
        })
    }

    /// Removes what a sandbox had in the kernel. The host-side veth deletion costs the
    /// kernel tens of milliseconds, so unless `wait` it finishes in the background.
    pub(super) async fn undo_sandbox(
        &self,
        nets: &BTreeMap<String, Network>,
        c: &Container,
        wait: bool,
    ) {
        self.ns_links.lock().expect("lock").remove(&c.id);
        if matches!(
            c.config.network_mode,
            NetworkMode::Networks | NetworkMode::None
        ) {
            netlink::remove_netns(&self.netns_path(&c.id));
        }
        let eps = c
            .endpoints
            .iter()
            .map(|ep| {
                let driver = nets
                    .get(&ep.network_id)
                    .map_or(crate::model::Driver::Bridge, |n| n.driver);
                (driver, ep.clone())
            })
            .collect();
        let done = self.leave_in_background(eps);
        if wait {
            let _ = done.await;
        }
    }
}

/// What the kernel work of a start reads, copied out of the state so that no lock is held
/// meanwhile: the container's networks (without their allocations) and, for
/// `--network container:X`, the running container it joins.
pub(super) struct View {
    pub nets: BTreeMap<String, Network>,
    pub target: Option<Container>,
}

impl View {
    pub(super) fn of(st: &Inner, c: &Container) -> View {
        let mut nets = BTreeMap::new();
        for ep in &c.endpoints {
            if let Some(n) = st.networks.get(&ep.network_id) {
                nets.insert(n.id.clone(), crate::daemon::without_allocations(n));
            }
        }
        let target = match &c.config.network_mode {
            NetworkMode::Container(t) => st.containers.get(t).filter(|t| t.is_running()).cloned(),
            _ => None,
        };
        View { nets, target }
    }
}

/// Starts `berth shim DIR` with the container's stdio and waits for its report on the sync
/// pipe: the container's pid, or why it could not start. No `pre_exec` hook, so std spawns
/// with posix_spawn (vfork): the cost does not grow with the daemon's memory.
pub(super) async fn spawn_shim(dir: &Path, fds: [OwnedFd; 3]) -> Result<(u32, u32)> {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let exe = std::env::current_exe()?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
    // The write end must survive exec in the shim. Another process spawned at this moment
    // may inherit it too; the shim and every sandboxed process close stray descriptors
    // first thing, and the daemon reads one line, not until EOF.
    nix::fcntl::fcntl(
        &w,
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
    )
    .map_err(std::io::Error::from)?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("shim")
        .arg("--sync-fd")
        .arg(w.as_raw_fd().to_string())
        .arg(dir);
    let [i, o, e] = fds;
    cmd.stdin(i).stdout(o).stderr(e);
    let child = cmd.spawn()?;
    drop(cmd);
    drop(w);
    let shim_pid = child.id();
    let report = tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::from(r);
        let mut line = Vec::new();
        let mut b = [0u8; 1];
        while line.last() != Some(&b'\n') && f.read(&mut b).unwrap_or(0) == 1 {
            line.push(b[0]);
        }
        String::from_utf8_lossy(&line).into_owned()
    })
    .await
    .map_err(|e| Error::Internal(e.to_string()))?;
    match report.trim().split_once(' ') {
        Some(("ok", pid)) => Ok((shim_pid, pid.parse().unwrap_or(0))),
        other => {
            let _ =
                nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(shim_pid.cast_signed()), None);
            let msg = other
                .map(|(_, m)| m.to_string())
                .unwrap_or_else(|| "the shim died".into());
            if msg.contains("executable file not found") || msg.contains("No such file") {
                Err(Error::InvalidParameter(msg))
            } else {
                Err(Error::Internal(format!(
                    "starting the container process: {msg}"
                )))
            }
        }
    }
}

pub(super) fn container_env(c: &Container) -> Vec<String> {
    let mut env = vec![
        format!("PATH={}", sandbox::DEFAULT_PATH),
        format!("HOSTNAME={}", c.config.hostname),
        "HOME=/root".to_string(),
    ];
    if c.config.tty {
        env.push("TERM=xterm".into());
    }
    for e in c.link_env.iter().chain(&c.config.env) {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|x| x.split('=').next() != Some(key));
        env.push(e.clone());
    }
    env
}
