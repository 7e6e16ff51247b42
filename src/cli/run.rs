//! `berth run` and `berth exec`: the foreground process gets this terminal's descriptors
//! directly (passed to the daemon over the socket), or with `-t` a pseudo-terminal whose
//! master this command relays in raw mode.

use std::io::{IsTerminal, Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;

use berth_api::container::{
    EndpointsConfig, Healthcheck, LogConfig, NetworkingConfig, RestartPolicy,
};
use berth_api::query::{encode, CreateQuery, KillQuery, RemoveQuery, StartQuery};
use berth_api::{
    ContainerCreateRequest, ContainerCreateResponse, EndpointIpamConfig, EndpointSettings,
    ExecCreateRequest, HostConfig, StdioLine,
};

use super::enc;
use crate::api::client::{Client, ClientError};
use crate::api::fdpass;

#[derive(clap::Args)]
#[command(disable_help_flag = true)]
pub struct RunArgs {
    /// Print help (-h is --hostname, as in docker)
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Run in the background and print the container ID
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Remove the container when it exits
    #[arg(long)]
    rm: bool,
    #[arg(long)]
    name: Option<String>,
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    #[arg(long)]
    domainname: Option<String>,
    /// bridge | none | host | container:NAME | NETWORK (repeatable)
    #[arg(long = "network", visible_alias = "net")]
    network: Vec<String>,
    #[arg(long)]
    ip: Option<String>,
    #[arg(long)]
    ip6: Option<String>,
    #[arg(long = "network-alias", visible_alias = "net-alias")]
    network_alias: Vec<String>,
    #[arg(long)]
    dns: Vec<String>,
    #[arg(long = "dns-search")]
    dns_search: Vec<String>,
    #[arg(long = "dns-option", alias = "dns-opt")]
    dns_option: Vec<String>,
    #[arg(long = "add-host")]
    add_host: Vec<String>,
    /// Add a link to another container (NAME[:ALIAS])
    #[arg(long = "link")]
    link: Vec<String>,
    /// Restart policy when the process exits: no, always, unless-stopped, on-failure[:N]
    #[arg(long, default_value = "no")]
    restart: String,
    /// Log limits, as docker's json-file driver: max-size=SIZE (10m, 1g; -1: none),
    /// max-file=N (files kept, rotating). Default: the daemon's
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    log_opt: Vec<String>,
    #[command(flatten)]
    health: HealthArgs,
    #[arg(short = 'e', long = "env")]
    env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    workdir: Option<String>,
    #[arg(short = 'l', long = "label")]
    label: Vec<String>,
    /// Publish a container's port(s) to the host: [IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]
    #[arg(short = 'p', long = "publish", value_parser = parse_publish)]
    publish: Vec<berth_ports::PublishSpec>,
    /// Publish all exposed ports to ephemeral host ports
    #[arg(short = 'P', long = "publish-all")]
    publish_all: bool,
    /// Expose a port or a range of ports: PORT[-END][/PROTO]
    #[arg(long = "expose", value_parser = parse_expose)]
    expose: Vec<Vec<berth_ports::PortProto>>,
    /// The host program to run, and its arguments
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(clap::Args)]
pub struct ExecArgs {
    #[arg(short, long)]
    pub(crate) interactive: bool,
    #[arg(short, long)]
    pub(crate) tty: bool,
    #[arg(short = 'e', long = "env")]
    pub(crate) env: Vec<String>,
    #[arg(short = 'w', long = "workdir")]
    pub(crate) workdir: Option<String>,
    pub(crate) container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub(crate) command: Vec<String>,
}

/// `-e NAME` takes the value from this environment, as docker does.
fn env_list(list: &[String]) -> Vec<String> {
    list.iter()
        .filter_map(|e| {
            if e.contains('=') {
                Some(e.clone())
            } else {
                std::env::var(e).ok().map(|v| format!("{e}={v}"))
            }
        })
        .collect()
}

fn parse_publish(s: &str) -> Result<berth_ports::PublishSpec, String> {
    s.parse().map_err(|e: berth_ports::PortError| e.to_string())
}

fn parse_expose(s: &str) -> Result<Vec<berth_ports::PortProto>, String> {
    berth_ports::parse_expose(s).map_err(|e| e.to_string())
}

fn usage(message: String) -> ClientError {
    ClientError::Api {
        status: 400,
        message,
    }
}

fn create_body(a: &RunArgs) -> Result<ContainerCreateRequest, ClientError> {
    let mode = a
        .network
        .first()
        .cloned()
        .unwrap_or_else(|| "bridge".into());
    let mut endpoints = EndpointsConfig::new();
    let ipam = (a.ip.is_some() || a.ip6.is_some()).then(|| EndpointIpamConfig {
        ipv4_address: a.ip.clone().unwrap_or_default(),
        ipv6_address: a.ip6.clone().unwrap_or_default(),
    });
    let aliases = (!a.network_alias.is_empty()).then(|| a.network_alias.clone());
    if ipam.is_some() || aliases.is_some() || a.network.len() > 1 {
        let first = EndpointSettings {
            ipam_config: ipam,
            aliases,
            ..Default::default()
        };
        endpoints.insert(mode.clone(), first);
    }
    for n in a.network.iter().skip(1) {
        endpoints.insert(n.clone(), EndpointSettings::default());
    }
    let labels = a
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (l.clone(), String::new()),
        })
        .collect();
    let mut req = ContainerCreateRequest {
        hostname: a.hostname.clone().unwrap_or_default(),
        domainname: a.domainname.clone().unwrap_or_default(),
        attach_stdin: a.interactive,
        attach_stdout: !a.detach,
        attach_stderr: !a.detach,
        tty: a.tty,
        open_stdin: a.interactive,
        env: Some(env_list(&a.env)),
        cmd: Some(a.command.clone()),
        healthcheck: healthcheck(&a.health)?,
        working_dir: a.workdir.clone().unwrap_or_default(),
        labels: Some(labels),
        host_config: Some(HostConfig {
            log_config: log_config(&a.log_opt)?,
            network_mode: mode,
            port_bindings: Some(Default::default()),
            restart_policy: restart_policy(&a.restart)?,
            auto_remove: a.rm,
            dns: Some(a.dns.clone()),
            dns_options: Some(a.dns_option.clone()),
            dns_search: Some(a.dns_search.clone()),
            extra_hosts: Some(a.add_host.clone()),
            links: Some(a.link.clone()),
            publish_all_ports: a.publish_all,
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };
    // -p and --expose were parsed by clap already; they go over typed, as the ports they are.
    for pp in a.expose.iter().flatten() {
        req.expose(*pp);
    }
    for spec in &a.publish {
        for (pp, ip, port) in spec.bindings() {
            req.publish(pp, ip, port);
        }
    }
    Ok(req)
}

/// `--log-opt` as the API takes it (docker's `LogConfig`; berth's one driver is json-file's
/// limits).
fn log_config(opts: &[String]) -> Result<LogConfig, ClientError> {
    let pairs = crate::logs::LogOptions::parse_pairs(opts).map_err(usage)?;
    Ok(LogConfig {
        kind: "json-file".into(),
        config: Some(pairs.into_iter().collect()),
    })
}

/// `--restart` as the API takes it.
fn restart_policy(s: &str) -> Result<RestartPolicy, ClientError> {
    let p = crate::model::RestartPolicy::parse(s).map_err(usage)?;
    Ok(RestartPolicy {
        name: p.name,
        maximum_retry_count: p.max_retries,
    })
}

/// docker's `--health-*` flags (`run`, `service create`).
#[derive(clap::Args, Debug, Clone)]
pub(super) struct HealthArgs {
    /// Command to run to check health (run by /bin/sh -c inside the sandbox)
    #[arg(long)]
    health_cmd: Option<String>,
    /// Time between health checks (ms|s|m|h)
    #[arg(long, default_value = "30s")]
    health_interval: String,
    /// Maximum time a check may take
    #[arg(long, default_value = "30s")]
    health_timeout: String,
    /// Consecutive failures needed to report unhealthy
    #[arg(long, default_value_t = 3)]
    health_retries: u32,
    /// Time to settle before failures count
    #[arg(long, default_value = "0s")]
    health_start_period: String,
}

/// `--health-*` as docker's `Config.Healthcheck` (nanoseconds).
pub(super) fn healthcheck(a: &HealthArgs) -> Result<Option<Healthcheck>, ClientError> {
    let Some(cmd) = &a.health_cmd else {
        return Ok(None);
    };
    let ns = |s: &str, what: &str| {
        super::parse_duration(s)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .map_err(|e| usage(format!("--health-{what}: {e}")))
    };
    Ok(Some(Healthcheck {
        test: vec!["CMD-SHELL".into(), cmd.clone()],
        interval: ns(&a.health_interval, "interval")?,
        timeout: ns(&a.health_timeout, "timeout")?,
        start_period: ns(&a.health_start_period, "start-period")?,
        retries: a.health_retries,
    }))
}

/// docker's exit codes for failures before the command runs.
fn start_failure_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("No such file") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

pub(super) fn run(rt: &tokio::runtime::Runtime, c: &Client, a: RunArgs) -> i32 {
    if a.tty && a.interactive && !std::io::stdin().is_terminal() {
        eprintln!("the input device is not a TTY");
        return 1;
    }
    let name = encode(&CreateQuery {
        name: a.name.clone(),
    });
    let body = match create_body(&a) {
        Ok(b) => b,
        Err(e) => {
            super::report(&e);
            return 125;
        }
    };
    let created = rt.block_on(
        c.post_json::<_, ContainerCreateResponse>(&format!("/containers/create{name}"), &body),
    );
    let id = match created {
        Ok(r) => r.id,
        Err(e) => {
            super::report(&e);
            return 125;
        }
    };
    if a.detach {
        return match rt.block_on(c.post(&format!("/containers/{id}/start"))) {
            Ok(_) => {
                println!("{id}");
                0
            }
            Err(e) => {
                super::report(&e);
                if a.rm {
                    let _ = rt.block_on(c.delete(&force_remove(&id)));
                }
                match &e {
                    ClientError::Api { message, .. } => start_failure_code(message),
                    _ => 125,
                }
            }
        };
    }
    let stdio = encode(&StartQuery {
        stdio: Some(if a.tty { "tty" } else { "fds" }.into()),
    });
    let code = attach(
        rt,
        c,
        &format!("/containers/{id}/start{stdio}"),
        None,
        a.tty,
        a.interactive,
        &id,
    );
    if code.1 && a.rm {
        let _ = rt.block_on(c.delete(&force_remove(&id)));
    }
    code.0
}

fn force_remove(id: &str) -> String {
    format!(
        "/containers/{}{}",
        enc(id),
        encode(&RemoveQuery { force: true })
    )
}

pub(super) fn exec(rt: &tokio::runtime::Runtime, c: &Client, a: ExecArgs) -> i32 {
    let body = ExecCreateRequest {
        tty: a.tty,
        attach_stdin: a.interactive,
        attach_stderr: true,
        attach_stdout: true,
        env: Some(env_list(&a.env)),
        working_dir: a.workdir.clone().unwrap_or_default(),
        cmd: Some(a.command.clone()),
    };
    attach(
        rt,
        c,
        &format!("/berth/containers/{}/exec", enc(&a.container)),
        Some(&body),
        a.tty,
        a.interactive,
        &a.container,
    )
    .0
}

/// Returns (exit code, whether the failure happened before the process started).
fn attach(
    rt: &tokio::runtime::Runtime,
    c: &Client,
    path: &str,
    body: Option<&ExecCreateRequest>,
    tty: bool,
    interactive: bool,
    ctr: &str,
) -> (i32, bool) {
    let s = match c.upgrade(path, body) {
        Ok(s) => s,
        Err(e) => {
            super::report(&e);
            let code = match &e {
                ClientError::Api { message, .. } => start_failure_code(message),
                _ => 125,
            };
            return (code, true);
        }
    };
    let null = std::fs::File::open("/dev/null").expect("/dev/null");
    let sent = if tty {
        fdpass::send_fds(&s, &[])
    } else {
        let stdin = if interactive {
            std::io::stdin().as_fd().as_raw_fd()
        } else {
            null.as_raw_fd()
        };
        fdpass::send_fds(
            &s,
            &[
                stdin,
                std::io::stdout().as_raw_fd(),
                std::io::stderr().as_raw_fd(),
            ],
        )
    };
    if let Err(e) = sent {
        eprintln!("passing the terminal to the daemon: {e}");
        return (125, true);
    }
    let (first, master) = match fdpass::recv_line::<StdioLine>(&s) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("lost the daemon: {e}");
            return (125, true);
        }
    };
    if let Some(m) = &first.message {
        eprintln!("Error response from daemon: {m}");
        return (start_failure_code(m), true);
    }
    let relay = match (tty, master) {
        (true, Some(m)) => Some(Relay::start(m, interactive)),
        _ => {
            forward_signals(rt, c, ctr);
            None
        }
    };
    let code = wait_status(&s);
    if let Some(r) = relay {
        r.finish();
    }
    (code, false)
}

fn wait_status(s: &UnixStream) -> i32 {
    match fdpass::recv_line::<StdioLine>(s) {
        Ok((v, _)) => i32::try_from(v.status_code.unwrap_or(255)).unwrap_or(255),
        Err(_) => 255,
    }
}

/// Like docker's --sig-proxy: signals to this command go to the container's process.
fn forward_signals(rt: &tokio::runtime::Runtime, c: &Client, ctr: &str) {
    let c = c.clone();
    let ctr = ctr.to_string();
    let handle = rt.handle().clone();
    std::thread::spawn(move || {
        handle.block_on(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut int), Ok(mut term), Ok(mut hup)) = (
                signal(SignalKind::interrupt()),
                signal(SignalKind::terminate()),
                signal(SignalKind::hangup()),
            ) else {
                return;
            };
            loop {
                let sig = tokio::select! {
                    _ = int.recv() => "SIGINT",
                    _ = term.recv() => "SIGTERM",
                    _ = hup.recv() => "SIGHUP",
                };
                let q = encode(&KillQuery {
                    signal: Some(sig.into()),
                });
                let _ = c.post(&format!("/containers/{}/kill{q}", enc(&ctr))).await;
            }
        });
    });
}

/// Relays this terminal (raw mode) and a pty master until the process side closes.
struct Relay {
    saved: Option<nix::sys::termios::Termios>,
    out: std::thread::JoinHandle<()>,
}

impl Relay {
    fn start(master: OwnedFd, interactive: bool) -> Relay {
        use nix::sys::termios::{cfmakeraw, tcgetattr, tcsetattr, SetArg};
        // Blocked before any relay thread exists, so only the sigwait below receives it.
        let winch = nix_sigwinch();
        let stdin = std::io::stdin();
        let saved = if stdin.is_terminal() {
            tcgetattr(stdin.as_fd()).ok().inspect(|t| {
                let mut raw = t.clone();
                cfmakeraw(&mut raw);
                let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
            })
        } else {
            None
        };
        copy_winsize(&master);
        let m_in = master.try_clone().expect("dup master");
        if interactive {
            std::thread::spawn(move || {
                let mut f = std::fs::File::from(m_in);
                let mut buf = [0u8; 4096];
                let mut stdin = std::io::stdin();
                while let Ok(n) = stdin.read(&mut buf) {
                    if n == 0 || f.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
        let m_win = master.try_clone().expect("dup master");
        std::thread::spawn(move || {
            let Ok(mut sig) = winch else { return };
            while sig.next().is_some() {
                copy_winsize(&m_win);
            }
        });
        let out = std::thread::spawn(move || {
            let mut f = std::fs::File::from(master);
            let mut buf = [0u8; 4096];
            let mut out = std::io::stdout();
            // EIO once every holder of the slave side has gone.
            while let Ok(n) = f.read(&mut buf) {
                if n == 0 || out.write_all(&buf[..n]).is_err() {
                    break;
                }
                let _ = out.flush();
            }
        });
        Relay { saved, out }
    }

    fn finish(self) {
        let _ = self.out.join();
        if let Some(t) = self.saved {
            let _ = nix::sys::termios::tcsetattr(
                std::io::stdin().as_fd(),
                nix::sys::termios::SetArg::TCSANOW,
                &t,
            );
        }
    }
}

fn copy_winsize(master: &OwnedFd) {
    // SAFETY: TIOCGWINSZ/TIOCSWINSZ read and write a winsize struct we own.
    unsafe {
        let mut ws: libc::winsize = std::mem::zeroed();
        if libc::ioctl(0, libc::TIOCGWINSZ, &mut ws) == 0 {
            libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
        }
    }
}

/// Blocking iterator over SIGWINCH deliveries.
fn nix_sigwinch() -> std::io::Result<impl Iterator<Item = ()>> {
    use nix::sys::signal::{SigSet, Signal};
    let mut set = SigSet::empty();
    set.add(Signal::SIGWINCH);
    set.thread_block().map_err(std::io::Error::from)?;
    Ok(std::iter::from_fn(move || set.wait().ok().map(|_| ())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_like_docker() {
        assert_eq!(
            start_failure_code("exec: \"x\": executable file not found in $PATH"),
            127
        );
        assert_eq!(start_failure_code("network foo not found"), 125);
    }
}
