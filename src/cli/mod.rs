//! The `berth` command line: docker-compatible flags and output, no logic beyond
//! presentation — every operation is a call to the daemon's API.

mod compose;
mod compose_load;
mod container;
mod deploy;
mod discovery;
mod docs;
mod network;
mod node;
mod output;
mod run;
mod service;
mod stack;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::api::client::{Client, ClientError};

pub const DEFAULT_SOCKET: &str = "/run/berth/berth.sock";

#[derive(Parser)]
#[command(
    name = "berth",
    version,
    about = "Container networking the way Docker users know it",
    disable_help_subcommand = true
)]
pub struct Cli {
    /// Daemon socket to connect to (unix:///path)
    #[arg(short = 'H', long = "host", global = true, env = "BERTH_HOST")]
    pub host: Option<String>,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Subcommand)]
pub enum Cmd {
    /// Run the daemon (as root)
    ///
    /// Example: berth daemon --root /var/lib/berth --run /run/berth
    Daemon(DaemonArgs),
    /// Manage networks
    ///
    /// Example: berth network create --subnet 10.90.0.0/24 dev
    #[command(subcommand)]
    Network(network::NetworkCmd),
    /// Manage the cluster's nodes (daemons started with --cluster-store)
    ///
    /// Example: berth node ls
    #[command(subcommand)]
    Node(node::NodeCmd),
    /// Manage services across the cluster
    ///
    /// Example: berth service ls
    #[command(subcommand)]
    Service(service::ServiceCmd),
    /// Converge the cluster to Flocker's deployment and application files
    ///
    /// Example: berth deploy deployment.yml application.yml
    Deploy(deploy::DeployArgs),
    /// Manage stacks: a Compose file's services across the cluster
    ///
    /// Example: berth stack deploy -c compose.yaml seed
    #[command(subcommand)]
    Stack(stack::StackCmd),
    /// Print the shell completion script for bash, zsh, fish, elvish or powershell
    ///
    /// Example: berth completion bash > /usr/share/bash-completion/completions/berth
    Completion { shell: clap_complete::Shell },
    /// Write the man pages (berth.1 and one per command) into a directory
    ///
    /// Example: berth man /usr/local/share/man/man1
    Man { dir: PathBuf },
    /// Create and start a container running a host program in its own network sandbox
    ///
    /// Example: berth run -d --name es --network dev -p 9200:9200 -- sleep 600
    Run(Box<run::RunArgs>),
    /// Run a command in a running container
    ///
    /// Example: berth exec es getent hosts es
    Exec(run::ExecArgs),
    /// List containers
    ///
    /// Example: berth ps -a --format "{{.Names}} {{.Status}}"
    Ps(container::PsArgs),
    /// Return low-level information on containers or networks
    ///
    /// Example: berth inspect -f "{{.NetworkSettings.IPAddress}}" es
    Inspect(container::InspectArgs),
    /// Fetch the output of a container
    ///
    /// Example: berth logs -f es
    Logs(container::LogsArgs),
    /// List port mappings or a specific mapping for the container
    ///
    /// Example: berth port es 9200/tcp
    Port(container::PortArgs),
    /// Stop one or more running containers
    ///
    /// Example: berth stop -t 5 es
    Stop(container::StopArgs),
    /// Start one or more stopped containers
    ///
    /// Example: berth start es
    Start(container::StartArgs),
    /// Restart one or more containers
    ///
    /// Example: berth restart es
    Restart(container::StopArgs),
    /// Kill one or more running containers
    ///
    /// Example: berth kill -s HUP es
    Kill(container::KillArgs),
    /// Remove one or more containers
    ///
    /// Example: berth rm -f es
    Rm(container::RmArgs),
    /// Block until one or more containers stop, then print their exit codes
    ///
    /// Example: berth wait es
    Wait(container::NamesArgs),
    /// Show the berth version information
    ///
    /// Example: berth version
    Version,
    /// Display system-wide information
    ///
    /// Example: berth info --format "{{.Swarm.LocalNodeState}}"
    Info(container::InfoArgs),
    /// Get real time events from the daemon (container and network)
    ///
    /// Example: berth events --filter type=network --since 10m
    Events(discovery::EventsArgs),
    /// The service catalog: every name with its endpoints (blocking with --index)
    ///
    /// Example: berth catalog --format json
    Catalog(discovery::CatalogArgs),
    /// Run multi-service applications from a Compose file
    ///
    /// Example: berth compose -f compose.yaml up -d
    Compose(compose::ComposeArgs),
    /// (internal) supervise one container process
    #[command(hide = true)]
    Shim {
        /// The descriptor to report "ok PID" or "err MESSAGE" on
        #[arg(long)]
        sync_fd: i32,
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct DaemonArgs {
    /// State directory (the store)
    #[arg(long, default_value = "/var/lib/berth")]
    pub root: PathBuf,
    /// Runtime directory (socket, namespaces, pid files, logs)
    #[arg(long, default_value = "/run/berth")]
    pub run: PathBuf,
    /// Host resolver configuration that sandboxes inherit
    #[arg(long, default_value = "/etc/resolv.conf")]
    pub resolv_conf: PathBuf,
    /// Log filter (tracing env-filter syntax)
    #[arg(long, default_value = "info", env = "BERTH_LOG")]
    pub log_level: String,
    /// Who serves published ports: `auto` = nftables DNAT, with the daemon's proxy for
    /// loopback clients and IPv6-to-IPv4; `always` = the proxy for everything
    #[arg(long, value_enum, default_value = "auto")]
    pub userland_proxy: crate::daemon::ProxyMode,
    /// Ephemeral host ports, START-END (default: the kernel's ip_local_port_range)
    #[arg(long, value_parser = parse_port_range)]
    pub port_range: Option<berth_ports::PortRange>,
    /// Where the host itself asks the embedded resolver for `NAME.NETWORK`
    /// (`berth info` prints it); `none` to have no host listener
    #[arg(long, default_value = "127.0.0.11:53", value_parser = parse_dns_host)]
    pub dns_host_address: DnsListen,
    /// How long the embedded resolver waits for one upstream resolver before trying the
    /// next (all failing: SERVFAIL)
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub dns_upstream_timeout: std::time::Duration,
    /// Default log limits of containers, as docker's json-file options: max-size=SIZE
    /// (default 10m; -1: none), max-file=N (default 3). Repeatable.
    #[arg(long = "log-opt", value_name = "KEY=VALUE")]
    pub log_opt: Vec<String>,
    /// How long an API connection may wait for a request, idle or with a half-sent
    /// request head, before it is closed (requests in flight, event streams and stdio
    /// sessions are never cut)
    #[arg(long, default_value = "60s", value_parser = parse_positive_duration)]
    pub api_idle_timeout: std::time::Duration,
    /// Open API connections beyond which new clients wait until one closes (default: a
    /// quarter of the descriptor limit, between 64 and 4096)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub api_max_connections: Option<u32>,
    /// Serve Consul's catalog and health HTTP API (the part discovery tools read:
    /// Prometheus' consul_sd_configs, consul-template) on this address, e.g. 127.0.0.1:8500
    #[arg(long, value_name = "ADDR:PORT")]
    pub consul_api: Option<std::net::SocketAddr>,
    /// Answer Consul's DNS names (NAME.service.consul A/SRV, TAG.NAME.service.consul,
    /// NAME.service.dc1.consul) over UDP on this address, e.g. 127.0.0.1:8600
    #[arg(long, value_name = "ADDR:PORT")]
    pub consul_dns: Option<std::net::SocketAddr>,
    /// Serve /metrics (Prometheus' text format) on this address, e.g. 127.0.0.1:9323
    /// (dockerd's metrics port); off the API socket
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Cluster mode: the etcd cluster holding the shared state (etcd://HOST:PORT[,HOST:PORT…])
    #[arg(long, value_name = "etcd://HOST:PORT")]
    pub cluster_store: Option<String>,
    /// The address other nodes reach this one at (an address of this host; with --cluster-store)
    #[arg(long, value_name = "IP", requires = "cluster_store")]
    pub advertise_addr: Option<std::net::IpAddr>,
    /// This node's name in the cluster (default: the host name)
    #[arg(long, requires = "cluster_store")]
    pub node_name: Option<String>,
    /// A label of this node, for placement constraints (repeatable)
    #[arg(
        long = "node-label",
        value_name = "KEY=VALUE",
        requires = "cluster_store"
    )]
    pub node_label: Vec<String>,
    /// How long a node that stopped answering stays Ready for the others (its tasks leave
    /// the load balancing after this; raise it for thousands of nodes or flaky links)
    #[arg(long, default_value = "2s", value_parser = parse_positive_duration)]
    pub node_ttl: std::time::Duration,
}

impl DaemonArgs {
    /// The cluster configuration, if `--cluster-store` was given.
    pub fn cluster(&self) -> Result<Option<crate::cluster::Config>, String> {
        let Some(url) = &self.cluster_store else {
            return Ok(None);
        };
        let endpoints = crate::cluster::parse_store(url).map_err(|e| e.to_string())?;
        let advertise = self.advertise_addr.ok_or(
            "--cluster-store needs --advertise-addr IP: the address other nodes reach this one at",
        )?;
        let name = match &self.node_name {
            Some(n) => n.clone(),
            None => nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .map_err(|e| format!("no --node-name and no host name: {e}"))?,
        };
        if !crate::model::valid_name(&name) {
            return Err(format!(
                "--node-name {name:?}: use letters, digits, '_', '.' and '-', starting with a letter or digit"
            ));
        }
        let mut labels = std::collections::BTreeMap::new();
        for l in &self.node_label {
            let (k, v) = l
                .split_once('=')
                .ok_or_else(|| format!("--node-label {l:?}: use KEY=VALUE"))?;
            labels.insert(k.to_string(), v.to_string());
        }
        if self.node_ttl < std::time::Duration::from_millis(1000) {
            return Err("--node-ttl: at least 1s (etcd's leases count in seconds)".into());
        }
        Ok(Some(crate::cluster::Config {
            endpoints,
            advertise,
            name,
            labels,
            ttl: self.node_ttl,
        }))
    }
}

/// An optional listen address (`none`: no listener).
#[derive(Debug, Clone, Copy)]
pub struct DnsListen(pub Option<std::net::SocketAddr>);

fn parse_dns_host(s: &str) -> Result<DnsListen, String> {
    if s == "none" || s.is_empty() {
        return Ok(DnsListen(None));
    }
    s.parse::<std::net::SocketAddr>()
        .or_else(|_| s.parse::<std::net::IpAddr>().map(|ip| (ip, 53).into()))
        .map(|a| DnsListen(Some(a)))
        .map_err(|_| format!("{s:?} is not IP[:PORT] (or `none`)"))
}

pub use berth_format::parse_duration;

fn parse_positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match parse_duration(s)? {
        d if d.is_zero() => Err(format!("{s:?}: must be more than 0")),
        d => Ok(d),
    }
}

fn parse_port_range(s: &str) -> Result<berth_ports::PortRange, String> {
    berth_ports::PortRange::parse(s, s, "port").map_err(|e| e.to_string())
}

pub fn socket_path(host: &Option<String>, run: Option<&PathBuf>) -> PathBuf {
    match host {
        Some(h) => PathBuf::from(h.strip_prefix("unix://").unwrap_or(h)),
        None => run
            .map(|r| r.join("berth.sock"))
            .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET)),
    }
}

/// Runs a client command; returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    let client = Client::new(socket_path(&cli.host, None));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let res = match cli.cmd {
        Cmd::Network(c) => rt.block_on(network::run(&client, c)),
        Cmd::Node(c) => rt.block_on(node::run(&client, c)),
        Cmd::Service(c) => rt.block_on(service::run(&client, c)),
        Cmd::Deploy(a) => rt.block_on(deploy::run(&client, a)),
        Cmd::Stack(c) => rt.block_on(stack::run(&client, c)),
        Cmd::Completion { shell } => return docs::completion(shell),
        Cmd::Man { dir } => return docs::man(&dir),
        Cmd::Run(a) => return run::run(&rt, &client, *a),
        Cmd::Exec(a) => return run::exec(&rt, &client, a),
        Cmd::Ps(a) => rt.block_on(container::ps(&client, a)),
        Cmd::Inspect(a) => rt.block_on(container::inspect(&client, a)),
        Cmd::Logs(a) => rt.block_on(container::logs(&client, a)),
        Cmd::Port(a) => rt.block_on(container::port(&client, a)),
        Cmd::Stop(a) => rt.block_on(container::stop(&client, a, "stop")),
        Cmd::Restart(a) => rt.block_on(container::stop(&client, a, "restart")),
        Cmd::Start(a) => rt.block_on(container::start(&client, a)),
        Cmd::Kill(a) => rt.block_on(container::kill(&client, a)),
        Cmd::Rm(a) => rt.block_on(container::rm(&client, a)),
        Cmd::Wait(a) => rt.block_on(container::wait(&client, a)),
        Cmd::Version => rt.block_on(container::version(&client)),
        Cmd::Info(a) => rt.block_on(container::info(&client, a)),
        Cmd::Events(a) => rt.block_on(discovery::events(&client, a)),
        Cmd::Catalog(a) => rt.block_on(discovery::catalog(&client, a)),
        Cmd::Compose(a) => return compose::main(&rt, &client, a),
        Cmd::Daemon(_) | Cmd::Shim { .. } => unreachable!("handled in main"),
    };
    match res {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            1
        }
    }
}

pub fn report(e: &ClientError) {
    eprintln!("{e}");
}

/// Runs `f` for every argument, reporting each failure and carrying on, like docker.
/// `inspect` of several objects under `prefix` (`/networks`, `/nodes`): those found are
/// printed, the others reported; 1 if any was missing.
pub(super) async fn inspect_each(
    c: &Client,
    prefix: &str,
    names: &[String],
    format: &Option<String>,
) -> Result<i32, ClientError> {
    let mut objs = Vec::new();
    let mut code = 0;
    for n in names {
        match c.get(&format!("{prefix}/{}", enc(n))).await {
            Ok(v) => objs.push(v),
            Err(e) => {
                report(&e);
                code = 1;
            }
        }
    }
    if let Err(e) = output::print_objects(&objs, format) {
        eprintln!("{e}");
        return Ok(1);
    }
    Ok(code)
}

pub async fn for_each<F, Fut>(names: &[String], mut f: F) -> Result<i32, ClientError>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<(), ClientError>>,
{
    let mut code = 0;
    for n in names {
        if let Err(e) = f(n.clone()).await {
            report(&e);
            code = 1;
        }
    }
    Ok(code)
}

/// A path segment or query value, percent-encoded.
pub use berth_api::escape as enc;
