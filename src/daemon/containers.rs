//! Container (sandbox) operations: create, start (attach + spawn), stop, kill, remove, exec,
//! connect and disconnect. Endpoint addresses are allocated and committed before the kernel
//! is touched; a failing kernel step undoes the earlier ones and releases the addresses.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use super::ports;
use super::{put_container, put_network, without_allocations, Daemon, Error, Event, Inner, Result};
use crate::model::{
    mac_for, mac_string, new_id, unique_random_name, valid_name, Container, ContainerConfig,
    Driver, Endpoint, EndpointRequest, Network, NetworkMode, State, Status,
};
use crate::netlink::{self, Netlink};
use crate::sandbox::{self, Spec};
use crate::store::Op;

#[derive(Debug, Clone, Default)]
pub struct ContainerCreate {
    pub name: Option<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub hostname: String,
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<String>,
    /// `HostConfig.Links`: "name:alias" (or docker's "/name:/container/alias").
    pub links: Vec<String>,
    pub restart: crate::model::RestartPolicy,
    pub healthcheck: Option<crate::model::Healthcheck>,
    /// `--log-opt` pairs (max-size, max-file).
    pub log_opts: Vec<(String, String)>,
    pub auto_remove: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    pub network_mode: String,
    pub endpoints: Vec<(String, EndpointRequest)>,
    /// `Config.ExposedPorts` keys ("80/tcp").
    pub exposed_ports: Vec<String>,
    /// `HostConfig.PortBindings`: "80/tcp" → (HostIp, HostPort).
    pub port_bindings: Vec<(String, Vec<(String, String)>)>,
    pub publish_all: bool,
}

/// Where a process's stdio goes.
pub enum Stdio {
    /// stdin from /dev/null, stdout and stderr to the container's log.
    Detached,
    /// The client's own descriptors (passed over the API socket).
    Fds([OwnedFd; 3]),
    /// A new pseudo-terminal; its master goes back to the client.
    Tty,
}

#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub tty: bool,
}

pub use crate::logs::LOG_FILE;
/// Host-side veth names: berth's own prefix, so leftovers are recognisable at start.
pub const HOST_VETH_PREFIX: &str = "bv";

impl Daemon {
    pub async fn container_create(&self, req: ContainerCreate) -> Result<String> {
        let mut st = self.state.lock().await;
        if req.cmd.is_empty() {
            return Err(Error::InvalidParameter(
                "No command specified: give the program to run after the options, e.g. `berth run -- sleep 60`".into(),
            ));
        }
        let name = match &req.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n).to_string();
                if !valid_name(&n) {
                    return Err(Error::InvalidParameter(format!(
                        "Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at most {} characters",
                        n.chars().take(80).collect::<String>(),
                        crate::validate::MAX_NAME_LEN
                    )));
                }
                if let Some(c) = st.containers.values().find(|c| c.name == n) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        c.id
                    )));
                }
                n
            }
            None => unique_random_name(|n| st.containers.values().any(|c| c.name == n)),
        };
        check_create(&req).map_err(Error::InvalidParameter)?;
        self.opts
            .log_defaults
            .with(&req.log_opts)
            .map_err(Error::InvalidParameter)?;
        let id = new_id();
        let mode_name = match req.network_mode.as_str() {
            "" | "default" => "bridge".to_string(),
            m => m.to_string(),
        };
        let (mode, networks) = plan_mode(&st, &mode_name, &req)?;
        let links = super::discovery::parse_links(&st, &req.links, &mode)?;
        if !req.restart.is_none() && req.auto_remove {
            return Err(Error::InvalidParameter(
                "Conflicting options: --restart and --rm (a container removed at exit cannot be restarted)".into(),
            ));
        }
        let extra_hosts = req
            .extra_hosts
            .iter()
            .map(|h| {
                let (n, ip) = h.split_once(':').ok_or_else(|| bad_host(h))?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                Ok((
                    n.to_string(),
                    ip.parse::<IpAddr>().map_err(|_| bad_host(h))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let dns = req
            .dns
            .iter()
            .map(|d| {
                d.parse::<IpAddr>().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "{d} is not an ip address (--dns takes IP addresses)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut exposed_ports = std::collections::BTreeSet::new();
        let mut port_bindings = std::collections::BTreeMap::new();
        for k in &req.exposed_ports {
            exposed_ports.insert(
                k.parse::<berth_ports::PortProto>()
                    .map_err(ports::port_error)?,
            );
        }
        for (k, list) in &req.port_bindings {
            let pp = k
                .parse::<berth_ports::PortProto>()
                .map_err(ports::port_error)?;
            for (ip, port) in list {
                berth_ports::BindingRequest::parse(pp, ip, port).map_err(ports::port_error)?;
            }
            exposed_ports.insert(pp);
            if !list.is_empty() {
                port_bindings.insert(pp, list.clone());
            }
        }
        ports::check_mode(&mode, !port_bindings.is_empty() || req.publish_all)?;
        let hostname = if req.hostname.is_empty() {
            id[..12].to_string()
        } else {
            req.hostname.clone()
        };
        let c = Container {
            id: id.clone(),
            name,
            created: Utc::now(),
            config: ContainerConfig {
                cmd: req.cmd,
                env: req.env,
                working_dir: req.working_dir,
                hostname,
                domainname: req.domainname,
                tty: req.tty,
                open_stdin: req.open_stdin,
                dns,
                dns_search: req.dns_search,
                dns_options: req.dns_options,
                extra_hosts,
                auto_remove: req.auto_remove,
                labels: req.labels,
                network_mode: mode,
                network_mode_name: mode_name,
                networks,
                exposed_ports,
                port_bindings,
                publish_all: req.publish_all,
                links,
                restart: req.restart,
                healthcheck: req.healthcheck,
                log_opts: req.log_opts,
            },
            state: State {
                status: Status::Created,
                pid: 0,
                pid_start: 0,
                shim_pid: 0,
                shim_start: 0,
                started_at: None,
                finished_at: None,
                exit_code: 0,
                error: String::new(),
                restart_count: 0,
                manually_stopped: false,
                health: None,
            },
            endpoints: vec![],
            ports: vec![],
            link_hosts: vec![],
            link_env: vec![],
        };
        self.commit(vec![put_container(&c)])?;
        self.emit_container(&c, "create", &[]);
        st.containers.insert(id.clone(), c);
        Ok(id)
    }

    /// Starts the container's process in its sandbox; with `Stdio::Tty` the pty master is
    /// returned for the client to relay.
    pub async fn container_start(
        self: &Arc<Self>,
        key: &str,
        stdio: Stdio,
    ) -> Result<Option<OwnedFd>> {
        let mut st = self.state.lock().await;
        let id = st.container_id(key)?;
        if st.containers[&id].is_running() {
            return match stdio {
                Stdio::Detached => Ok(None),
                _ => Err(Error::Conflict(format!(
                    "container {key} is already running"
                ))),
            };
        }
        let mut c = st.containers[&id].clone();
        let dir = self.container_dir(&id);
        std::fs::create_dir_all(&dir)?;
        self.dns_refresh_upstreams();
        // 1. Addresses and host ports, committed before the kernel is touched.
        let (endpoints, net_ops) = allocate_endpoints(&mut st, &c)?;
        c.endpoints = endpoints;
        match super::discovery::resolve_links(&st, &c) {
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
        let mut ops = net_ops;
        ops.push(put_container(&c));
        if let Err(e) = self.commit(ops) {
            release_endpoints(&mut st, &c);
            return Err(e);
        }
        crate::failpoint::hit("start:after-allocate");
        // 2. Kernel: the DNAT elements (harmless until the address exists), then the sandbox.
        let mapped = ports::mappings(&c, self.opts.userland_proxy);
        let kernel = match self.install_ports(&mapped) {
            Ok(()) => self.build_and_spawn(&st, &mut c, &dir, stdio).await,
            Err(e) => Err(e),
        };
        match kernel {
            Ok((shim_pid, pid, master)) => {
                self.serve_ports(&mut st, &c, taken);
                st.installed.insert(id.clone(), mapped);
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
                c.state.health = c
                    .config
                    .healthcheck
                    .as_ref()
                    .map(|_| super::supervise::starting());
                self.commit(vec![put_container(&c)])?;
                crate::failpoint::hit("start:after-commit");
                self.dns_sync(&c);
                self.emit_connects(&st, &c, "connect");
                self.emit_container(&c, "start", &[]);
                st.containers.insert(id.clone(), c.clone());
                drop(st);
                if let Some(hc) = c.config.healthcheck.clone() {
                    self.watch_health(id.clone(), pid, hc);
                }
                self.watch(id, shim_pid, c.state.shim_start);
                Ok(master)
            }
            Err(e) => {
                self.uninstall_ports(&mut st, &mapped);
                drop(taken);
                self.undo_sandbox(&c, true).await;
                let mut ops = release_endpoints(&mut st, &c);
                let mut old = st.containers[&id].clone();
                old.endpoints.clear();
                old.state.error = e.to_string();
                ops.push(put_container(&old));
                let _ = self.commit(ops);
                st.containers.insert(id, old);
                Err(e)
            }
        }
    }

    /// Namespace, links, files, then the shim. Returns (shim pid, container pid, pty master).
    async fn build_and_spawn(
        &self,
        st: &Inner,
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
                    let net = &st.networks[&ep.network_id];
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
                let t = st
                    .containers
                    .get(target)
                    .filter(|t| t.is_running())
                    .ok_or_else(|| {
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

    fn write_files(&self, c: &Container, dir: &Path) -> Result<()> {
        write_hosts(c, dir)?;
        std::fs::write(dir.join("hostname"), format!("{}\n", c.config.hostname))?;
        std::fs::write(dir.join("resolv.conf"), self.resolv_conf_for(c))?;
        Ok(())
    }

    /// Rewritten in place (same inode): the sandbox sees it through a bind mount.
    fn make_stdio(&self, stdio: Stdio) -> Result<([OwnedFd; 3], Option<OwnedFd>)> {
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

    /// One endpoint in the kernel: the veth (peer created inside the sandbox), addresses,
    /// up, and the default route for the first network. Undoes itself on failure.
    pub(crate) async fn attach_kernel(
        &self,
        nsfd: &OwnedFd,
        nsnl: &Netlink,
        net: &Network,
        ep: &Endpoint,
        default_route: bool,
    ) -> Result<()> {
        let bridge = net.bridge.as_deref().unwrap_or_default();
        let cached = self.bridge_index.lock().expect("lock").get(bridge).copied();
        let bidx = match cached {
            Some(i) => i,
            None => {
                let i = self.host.link_index(bridge).await?.ok_or_else(|| {
                    Error::Internal(format!(
                        "bridge {bridge} of network {} is missing: restart the daemon to rebuild it",
                        net.name
                    ))
                })?;
                self.bridge_index
                    .lock()
                    .expect("lock")
                    .insert(bridge.to_string(), i);
                i
            }
        };
        let mac = parse_mac(&ep.mac);
        if let Err(e) = self
            .host
            .add_veth_into(
                &ep.host_ifname,
                netlink::BridgePort {
                    bridge: bidx,
                    mtu: net.mtu,
                    isolated: !net.icc,
                },
                &ep.ifname,
                nsfd,
                mac,
            )
            .await
        {
            if let netlink::NetError::BridgeFull = e {
                return Err(Error::Unavailable(format!(
                    "network {} has no room for another container: its bridge {bridge} already has 1023 ports, the most a Linux bridge takes; connect the container to another network",
                    net.name
                )));
            }
            // Perhaps the bridge was deleted behind our back: look it up again next time.
            self.bridge_index.lock().expect("lock").remove(bridge);
            return Err(e.into());
        }
        let inner = async {
            let idx = nsnl.link_index(&ep.ifname).await?.ok_or_else(|| {
                Error::Internal(format!("{} did not appear in the sandbox", ep.ifname))
            })?;
            if ep.ipv6.is_some() {
                use std::os::fd::AsRawFd;
                netlink::sysctl_in(
                    Path::new(&format!("/proc/self/fd/{}", nsfd.as_raw_fd())),
                    format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", ep.ifname),
                    "0",
                )
                .await?;
            }
            // Pipelined: every request goes out at once and the kernel takes them in order
            // (addresses, up, then routes, whose gateways need both), one round trip in all.
            let addrs = futures::future::try_join_all(
                [(ep.ipv4, ep.ipv4_prefix), (ep.ipv6, ep.ipv6_prefix)]
                    .into_iter()
                    .filter_map(|(ip, len)| ip.map(|ip| nsnl.add_address(idx, ip, len))),
            );
            let gws: Vec<IpAddr> = if default_route && !net.internal {
                ep.gateway4
                    .iter()
                    .chain(ep.gateway6.iter())
                    .copied()
                    .collect()
            } else {
                vec![]
            };
            let routes = futures::future::try_join_all(
                gws.into_iter().map(|gw| nsnl.add_default_route(gw, idx)),
            );
            let (a, u, r) = tokio::join!(addrs, nsnl.set_up(idx), routes);
            a?;
            u?;
            r?;
            Ok::<_, Error>(())
        }
        .await;
        if inner.is_err() {
            let _ = self.host.delete_link_by_name(&ep.host_ifname).await;
        }
        inner
    }

    /// Removes what a sandbox had in the kernel. The host-side veth deletion costs the
    /// kernel tens of milliseconds, so unless `wait` it finishes in the background.
    async fn undo_sandbox(&self, c: &Container, wait: bool) {
        self.ns_links.lock().expect("lock").remove(&c.id);
        if matches!(
            c.config.network_mode,
            NetworkMode::Networks | NetworkMode::None
        ) {
            netlink::remove_netns(&self.netns_path(&c.id));
        }
        let host = self.reaper.clone();
        let names: Vec<String> = c.endpoints.iter().map(|e| e.host_ifname.clone()).collect();
        let work = async move {
            for n in names {
                if let Err(e) = host.delete_link_by_name(&n).await {
                    tracing::warn!("deleting {n}: {e}");
                }
            }
        };
        if wait {
            work.await
        } else {
            tokio::spawn(work);
        }
    }

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
                nix::unistd::Pid::from_raw(shim_pid as i32),
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
        let mut ops = release_endpoints(st, &c);
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
        if remove {
            ops.push(Op::Delete(format!("containers/{}", c.id)));
        } else {
            ops.push(put_container(&c));
        }
        if let Err(e) = self.commit(ops) {
            tracing::error!(container = %c.id, "recording exit: {e}");
        }
        self.dns_forget(&c.id);
        self.emit_connects(st, &before, "disconnect");
        self.emit_container(&c, "die", &[("exitCode", code.to_string())]);
        if remove {
            self.emit_container(&c, "destroy", &[]);
        }
        self.undo_sandbox(&before, false).await;
        let id = c.id.clone();
        if remove {
            st.containers.remove(&id);
            let _ = std::fs::remove_dir_all(self.container_dir(&id));
        } else {
            st.containers.insert(id.clone(), c);
        }
        let _ = self.events.send(Event::Exited {
            id: id.clone(),
            code,
        });
        if remove {
            let _ = self.events.send(Event::Removed { id });
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
        mut rx: tokio::sync::broadcast::Receiver<Event>,
        id: String,
    ) -> Option<i64> {
        loop {
            match rx.recv().await {
                Ok(Event::Exited { id: i, code }) if i == id => return Some(code),
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
        {
            let st = self.state.lock().await;
            let id = st.container_id(key)?;
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
        let mut ops = release_endpoints(&mut st, &held);
        ops.push(Op::Delete(format!("containers/{id}")));
        self.commit(ops)?;
        if let Some(c) = st.containers.remove(&id) {
            self.emit_container(&c, "destroy", &[]);
        }
        let _ = std::fs::remove_dir_all(self.container_dir(&id));
        let _ = self.events.send(Event::Removed { id });
        Ok(())
    }

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

    pub async fn network_connect(
        &self,
        net_key: &str,
        ctr_key: &str,
        req: EndpointRequest,
    ) -> Result<()> {
        let mut st = self.state.lock().await;
        let nid = st.network_id(net_key)?;
        let cid = st.container_id(ctr_key)?;
        let net = without_allocations(&st.networks[&nid]);
        let mut c = st.containers[&cid].clone();
        match &c.config.network_mode {
            NetworkMode::Host => {
                return Err(Error::InvalidParameter(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            NetworkMode::Container(_) => {
                return Err(Error::InvalidParameter(
                    "container sharing network namespace with another container or host cannot be connected to any other network".into(),
                ))
            }
            _ => {}
        }
        match net.driver {
            Driver::Host => {
                return Err(Error::InvalidParameter(
                    "cannot connect container to host network - container must be created in host network mode".into(),
                ))
            }
            Driver::Null => {
                return Err(Error::InvalidParameter(
                    "container cannot be disconnected from host network or connected to host network".into(),
                ))
            }
            Driver::Bridge => {}
        }
        if c.config.network_mode == NetworkMode::None {
            return Err(Error::InvalidParameter(
                "container cannot be connected to multiple networks with one of the networks in private (none) mode".into(),
            ));
        }
        if c.config
            .networks
            .iter()
            .any(|(n, _)| n == &net.name || n == &net.id)
        {
            return Err(Error::Forbidden(format!(
                "endpoint with name {} already exists in network {}",
                c.name, net.name
            )));
        }
        check_request(&net, &req)?;
        c.config.networks.push((net.name.clone(), req.clone()));
        if !c.is_running() {
            self.commit(vec![put_container(&c)])?;
            st.containers.insert(cid, c);
            return Ok(());
        }
        let ifname = next_ifname(&c.endpoints);
        let ep = allocate_one(&mut st, &c.id, &net, &req, ifname)?;
        c.endpoints.push(ep.clone());
        let undo = |st: &mut Inner| {
            if let Some(n) = st.networks.get_mut(&nid) {
                release_ep(n, &ep);
            }
        };
        let commit =
            self.commit_in_background(vec![put_network(&st.networks[&nid]), put_container(&c)]);
        // A detach of this container may still be deleting its veth (and so its ethN).
        let pending = self
            .pending_detach
            .lock()
            .expect("lock")
            .remove(&c.id)
            .unwrap_or_default();
        for h in pending {
            let _ = h.await;
        }
        let path = self.netns_path(&c.id);
        let cached = self.ns_links.lock().expect("lock").get(&cid).cloned();
        // The hosts file is written while the kernel works; a failure rewrites the old one.
        let hosts = {
            let (c, dir) = (c.clone(), self.container_dir(&cid));
            tokio::task::spawn_blocking(move || write_hosts(&c, &dir))
        };
        let kernel = async {
            let nsfd = netlink::open_ns(&path)?;
            let nsnl = match cached {
                Some(nl) => nl,
                None => Netlink::open_in(&path).await?,
            };
            let first = c.endpoints.len() == 1;
            self.attach_kernel(&nsfd, &nsnl, &st.networks[&nid], &ep, first)
                .await
        }
        .await;
        let committed = commit
            .await
            .map_err(|e| Error::Internal(format!("store commit task: {e}")))
            .and_then(|r| r.map_err(Error::from));
        let res = match (kernel, committed) {
            (Ok(()), Ok(())) => Ok(()),
            (Ok(()), Err(e)) => {
                let _ = self.host.delete_link_by_name(&ep.host_ifname).await;
                Err(e)
            }
            (Err(e), _) => Err(e),
        };
        let _ = hosts.await;
        match res {
            Ok(()) => {
                self.retarget_ports(&mut st, &c);
                self.dns_sync(&c);
                self.write_resolv(&c);
                self.emit_network(&st.networks[&nid], "connect", Some(&c));
                st.containers.insert(cid.clone(), c);
                Ok(())
            }
            Err(e) => {
                let _ = write_hosts(&st.containers[&cid], &self.container_dir(&cid));
                undo(&mut st);
                let _ = self.commit(vec![
                    put_network(&st.networks[&nid]),
                    put_container(&st.containers[&cid]),
                ]);
                Err(e)
            }
        }
    }

    pub async fn network_disconnect(
        &self,
        net_key: &str,
        ctr_key: &str,
        force: bool,
    ) -> Result<()> {
        let mut st = self.state.lock().await;
        let nid = st.network_id(net_key)?;
        let net = without_allocations(&st.networks[&nid]);
        let cid = match st.container_id(ctr_key) {
            Ok(id) => id,
            Err(_) if force => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut c = st.containers[&cid].clone();
        if matches!(net.driver, Driver::Host | Driver::Null) {
            return Err(Error::InvalidParameter(
                "container cannot be disconnected from host network or connected to host network"
                    .into(),
            ));
        }
        let before = c.config.networks.len();
        c.config
            .networks
            .retain(|(n, _)| n != &net.name && n != &net.id);
        let pos = c.endpoints.iter().position(|e| e.network_id == nid);
        if before == c.config.networks.len() && pos.is_none() {
            return Err(Error::Forbidden(format!(
                "container {} is not connected to network {}",
                c.id, net.name
            )));
        }
        let mut ops = Vec::new();
        let removed = pos.map(|p| c.endpoints.remove(p));
        if let Some(ep) = &removed {
            let n = st.networks.get_mut(&nid).expect("resolved above");
            release_ep(n, ep);
            ops.push(put_network(n));
        }
        ops.push(put_container(&c));
        self.commit(ops)?;
        st.containers.insert(cid.clone(), c.clone());
        if c.is_running() {
            self.retarget_ports(&mut st, &c);
            self.dns_sync(&c);
        }
        if let Some(ep) = &removed {
            // The event names the address the container had there.
            let mut was = c.clone();
            was.endpoints.push(ep.clone());
            self.emit_network(&net, "disconnect", Some(&was));
        }
        if let Some(ep) = removed {
            if c.is_running() {
                let _ = write_hosts(&c, &self.container_dir(&cid));
                self.write_resolv(&c);
            }
            let host = self.reaper.clone();
            let h = tokio::spawn(async move {
                if let Err(e) = host.delete_link_by_name(&ep.host_ifname).await {
                    tracing::warn!("deleting {}: {e}", ep.host_ifname);
                }
            });
            let mut pending = self.pending_detach.lock().expect("lock");
            let list = pending.entry(cid.clone()).or_default();
            list.retain(|h| !h.is_finished());
            list.push(h);
        }
        Ok(())
    }

    pub async fn snapshot(&self) -> (Vec<Network>, Vec<Container>) {
        let st = self.state.lock().await;
        (
            st.networks.values().cloned().collect(),
            st.containers.values().cloned().collect(),
        )
    }

    /// Rewrites a running sandbox's resolv.conf in place (its resolver addresses follow
    /// its networks).
    fn write_resolv(&self, c: &Container) {
        if c.config.network_mode == NetworkMode::Networks {
            let path = self.container_dir(&c.id).join("resolv.conf");
            if let Err(e) = std::fs::write(&path, self.resolv_conf_for(c)) {
                tracing::warn!(container = %c.name, "rewriting resolv.conf: {e}");
            }
        }
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(LOG_FILE)
    }
}

/// The sandbox's /etc/hosts, rewritten in place (it is bind-mounted: a rename would not
/// be seen inside).
fn write_hosts(c: &Container, dir: &Path) -> Result<()> {
    let own: Vec<IpAddr> = c
        .endpoints
        .iter()
        .flat_map(|e| e.ipv4.into_iter().chain(e.ipv6))
        .collect();
    let hosts = if matches!(c.config.network_mode, NetworkMode::Host) {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut extra = c.config.extra_hosts.clone();
        extra.extend(c.link_hosts.iter().map(|(ip, n)| (n.clone(), *ip)));
        sandbox::hosts_file(&c.config.hostname, &own, &extra)
    };
    std::fs::write(dir.join("hosts"), hosts)?;
    Ok(())
}

/// What goes into the sandbox's files and `execve`, checked before anything is recorded.
fn check_create(req: &ContainerCreate) -> std::result::Result<(), String> {
    use crate::validate::{check_dns_option, check_domain, check_hostname, check_no_nul};
    if !req.hostname.is_empty() {
        check_hostname("hostname", &req.hostname)?;
    }
    if !req.domainname.is_empty() {
        check_domain("domainname", &req.domainname)?;
    }
    for d in &req.dns_search {
        // "." alone means "no search domains", as in resolv.conf.
        if d != "." {
            check_domain("--dns-search", d)?;
        }
    }
    for o in &req.dns_options {
        check_dns_option(o)?;
    }
    for h in &req.extra_hosts {
        if let Some((name, _)) = h.split_once(':') {
            check_domain("--add-host name", name)?;
        }
    }
    for a in &req.cmd {
        check_no_nul("command argument", a)?;
    }
    for e in &req.env {
        check_no_nul("environment variable", e)?;
    }
    check_no_nul("working directory", &req.working_dir)
}

fn bad_host(h: &str) -> Error {
    Error::InvalidParameter(format!(
        "invalid argument \"{h}\" for \"--add-host\": use NAME:IP"
    ))
}

fn parse_mac(s: &str) -> [u8; 6] {
    let mut m = [0u8; 6];
    for (i, p) in s.split(':').take(6).enumerate() {
        m[i] = u8::from_str_radix(p, 16).unwrap_or(0);
    }
    m
}

fn container_env(c: &Container) -> Vec<String> {
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

fn plan_mode(
    st: &Inner,
    mode_name: &str,
    req: &ContainerCreate,
) -> Result<(NetworkMode, Vec<(String, EndpointRequest)>)> {
    let only_default = |what: &str| {
        Error::InvalidParameter(format!(
            "conflicting options: {what} and the network mode ({mode_name})"
        ))
    };
    if let Some(target) = mode_name.strip_prefix("container:") {
        let tid = st.container_id(target)?;
        if !req.endpoints.is_empty() {
            return Err(only_default("network endpoints"));
        }
        if !req.hostname.is_empty() {
            return Err(only_default("hostname"));
        }
        if !req.dns.is_empty() {
            return Err(only_default("dns"));
        }
        if !req.extra_hosts.is_empty() {
            return Err(only_default("custom host-to-IP mapping"));
        }
        return Ok((NetworkMode::Container(tid), vec![]));
    }
    let net = st
        .network_by_name(mode_name)
        .or_else(|| st.network_id(mode_name).ok().map(|id| &st.networks[&id]))
        .ok_or_else(|| Error::NotFound(format!("network {mode_name} not found")))?;
    match net.driver {
        Driver::Host | Driver::Null => {
            if req
                .endpoints
                .iter()
                .any(|(_, r)| r.ipv4.is_some() || r.ipv6.is_some())
            {
                return Err(Error::InvalidParameter(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if req.endpoints.iter().any(|(_, r)| !r.aliases.is_empty()) {
                return Err(Error::InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks".into(),
                ));
            }
            let mode = if net.driver == Driver::Host {
                NetworkMode::Host
            } else {
                NetworkMode::None
            };
            Ok((mode, vec![]))
        }
        Driver::Bridge => {
            let mut list: Vec<(String, EndpointRequest)> = Vec::new();
            let first = req
                .endpoints
                .iter()
                .find(|(n, _)| n == &net.name || n == &net.id)
                .map(|(_, r)| r.clone())
                .unwrap_or_default();
            list.push((net.name.clone(), first));
            for (n, r) in &req.endpoints {
                if n == &net.name || n == &net.id {
                    continue;
                }
                let other = st
                    .network_by_name(n)
                    .or_else(|| st.network_id(n).ok().map(|id| &st.networks[&id]))
                    .ok_or_else(|| Error::NotFound(format!("network {n} not found")))?;
                list.push((other.name.clone(), r.clone()));
            }
            for (n, r) in &list {
                let net = st.network_by_name(n).expect("checked above");
                check_request(net, r)?;
            }
            Ok((NetworkMode::Networks, list))
        }
    }
}

/// Docker's rules for `--ip`, `--ip6` and aliases on a network.
fn check_request(net: &Network, r: &EndpointRequest) -> Result<()> {
    let static_ip = r.ipv4.is_some() || r.ipv6.is_some();
    if net.is_default_bridge() {
        if static_ip {
            return Err(Error::InvalidParameter(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !r.aliases.is_empty() {
            return Err(Error::InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
    }
    if static_ip && !net.user_subnets {
        return Err(Error::InvalidParameter(
            "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
        ));
    }
    for ip in r.ipv4.iter().chain(r.ipv6.iter()) {
        if !net.pools.iter().any(|p| p.contains(*ip)) {
            return Err(Error::InvalidParameter(format!(
                "Invalid address {ip}: It does not belong to any of this network's subnets ({})",
                net.pools
                    .iter()
                    .map(|p| p.subnet().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

fn next_ifname(eps: &[Endpoint]) -> String {
    (0..)
        .map(|i| format!("eth{i}"))
        .find(|n| !eps.iter().any(|e| &e.ifname == n))
        .expect("unbounded")
}

fn allocate_one(
    st: &mut Inner,
    owner: &str,
    net: &Network,
    req: &EndpointRequest,
    ifname: String,
) -> Result<Endpoint> {
    let n = st.networks.get_mut(&net.id).expect("exists");
    let mut v4 = None;
    let mut v6 = None;
    let mut taken = Vec::new();
    let res = (|| -> Result<()> {
        for p in n.pools.iter_mut() {
            let is4 = p.subnet().addr().is_ipv4();
            let want = if is4 { req.ipv4 } else { req.ipv6 };
            if (is4 && v4.is_some()) || (!is4 && v6.is_some()) {
                continue;
            }
            if let Some(ip) = want {
                if !p.contains(ip) {
                    continue;
                }
                p.allocate_static(ip, owner)?;
                taken.push(ip);
            } else {
                let ip = p.allocate(owner)?;
                taken.push(ip);
            }
            let ip = *taken.last().expect("just pushed");
            let entry = (ip, p.prefix_len(), p.gateway());
            if is4 {
                v4 = Some(entry);
            } else {
                v6 = Some(entry);
            }
        }
        Ok(())
    })();
    if let Err(e) = res {
        for ip in taken {
            for p in n.pools.iter_mut() {
                p.release(ip);
            }
        }
        return Err(e);
    }
    let id = new_id();
    Ok(Endpoint {
        host_ifname: format!("{HOST_VETH_PREFIX}{}", &id[..10]),
        id,
        network_id: net.id.clone(),
        network_name: net.name.clone(),
        ifname,
        mac: mac_string(&mac_for(v4.map(|v| v.0))),
        ipv4: v4.map(|v| v.0),
        ipv4_prefix: v4.map(|v| v.1).unwrap_or(0),
        gateway4: v4.map(|v| v.2),
        ipv6: v6.map(|v| v.0),
        ipv6_prefix: v6.map(|v| v.1).unwrap_or(0),
        gateway6: v6.map(|v| v.2),
        aliases: req.aliases.clone(),
        request: req.clone(),
    })
}

/// Addresses for every network of a container about to start (all or none).
fn allocate_endpoints(st: &mut Inner, c: &Container) -> Result<(Vec<Endpoint>, Vec<Op>)> {
    if c.config.network_mode != NetworkMode::Networks {
        return Ok((vec![], vec![]));
    }
    let mut eps: Vec<Endpoint> = Vec::new();
    for (i, (name, req)) in c.config.networks.iter().enumerate() {
        let res = st
            .network_by_name(name)
            .map(without_allocations)
            .ok_or_else(|| Error::NotFound(format!("network {name} not found")))
            .and_then(|net| allocate_one(st, &c.id, &net, req, format!("eth{i}")));
        match res {
            Ok(ep) => eps.push(ep),
            Err(e) => {
                for ep in &eps {
                    if let Some(n) = st.networks.get_mut(&ep.network_id) {
                        release_ep(n, ep);
                    }
                }
                return Err(e);
            }
        }
    }
    let ops = eps
        .iter()
        .map(|e| put_network(&st.networks[&e.network_id]))
        .collect();
    Ok((eps, ops))
}

fn release_ep(n: &mut Network, ep: &Endpoint) {
    for ip in ep.ipv4.iter().chain(ep.ipv6.iter()) {
        for p in n.pools.iter_mut() {
            p.release(*ip);
        }
    }
}

/// Releases a container's addresses in memory; returns the network records to write.
pub(crate) fn release_endpoints(st: &mut Inner, c: &Container) -> Vec<Op> {
    let mut ops = Vec::new();
    for ep in &c.endpoints {
        if let Some(n) = st.networks.get_mut(&ep.network_id) {
            release_ep(n, ep);
            ops.push(put_network(n));
        }
    }
    if !st.stale.elements.is_empty() {
        super::cleanup::hold_targets(st);
    }
    ops
}

/// Starts `berth shim DIR` with the container's stdio and waits for its report on the sync
/// pipe: the container's pid, or why it could not start. No `pre_exec` hook, so std spawns
/// with posix_spawn (vfork): the cost does not grow with the daemon's memory.
async fn spawn_shim(dir: &Path, fds: [OwnedFd; 3]) -> Result<(u32, u32)> {
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
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(shim_pid as i32), None);
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
