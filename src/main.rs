use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;

use clap::Parser;

use berth::cli::{self, Cli, Cmd, DaemonArgs};
use berth::daemon::{Daemon, Options};

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Shim { sync_fd, dir } => berth::shim::shim_main(sync_fd, &dir),
        Cmd::Daemon(args) => {
            let socket = cli::socket_path(&cli.host, Some(&args.run));
            if let Err(e) = daemon(args, socket) {
                eprintln!("berth daemon: {e:#}");
                std::process::exit(1);
            }
        }
        _ => std::process::exit(cli::main(cli)),
    }
}

fn daemon(args: DaemonArgs, socket: std::path::PathBuf) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(format!(
            "{},h2=info,tonic=info,tower=info",
            args.log_level
        )))
        .with_writer(std::io::stderr)
        .init();
    if !nix::unistd::geteuid().is_root() {
        anyhow::bail!("the daemon manages network namespaces, links and nftables: run it as root");
    }
    raise_nofile();
    let limits = berth::api::server::Limits {
        idle_timeout: args.api_idle_timeout,
        max_connections: args
            .api_max_connections
            .map_or_else(berth::api::server::Limits::default_max_connections, |n| {
                n as usize
            }),
    };
    let cluster = args.cluster().map_err(anyhow::Error::msg)?;
    let consul_api = args.consul_api;
    let consul_dns = args.consul_dns;
    let metrics_addr = args.metrics_addr;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let opts = Options {
            root: args.root,
            run: args.run,
            socket: socket.clone(),
            resolv_conf: args.resolv_conf,
            userland_proxy: args.userland_proxy,
            port_range: args.port_range,
            dns_host_address: args.dns_host_address.0,
            dns_upstream_timeout: args.dns_upstream_timeout,
            log_defaults: berth::logs::LogOptions::parse_pairs(&args.log_opt)
                .and_then(|kv| berth::logs::LogOptions::default().with(&kv))
                .map_err(|e| anyhow::anyhow!("--log-opt: {e}"))?,
            cluster,
        };
        // Bound before the daemon opens: a taken or foreign address fails the start and
        // changes nothing.
        let consul = match consul_api {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.map_err(|e| {
                anyhow::anyhow!("--consul-api {at}: cannot listen there ({e}); give a free address of this host")
            })?),
            None => None,
        };
        let consul_dns = match consul_dns {
            Some(at) => Some(tokio::net::UdpSocket::bind(at).await.map_err(|e| {
                anyhow::anyhow!("--consul-dns {at}: cannot listen there ({e}); give a free address of this host")
            })?),
            None => None,
        };
        let metrics = match metrics_addr {
            Some(at) => Some(tokio::net::TcpListener::bind(at).await.map_err(|e| {
                anyhow::anyhow!("--metrics-addr {at}: cannot listen there ({e}); give a free address of this host")
            })?),
            None => None,
        };
        let d: Arc<Daemon> = Daemon::open(opts).await?;
        if let Some(l) = metrics {
            tokio::spawn(berth::metrics::serve(l, d.clone()));
        }
        if let Some(s) = consul_dns {
            tokio::spawn(berth::api::consul::serve_dns(s, d.clone()));
        }
        if let Some(l) = consul {
            tokio::spawn(berth::api::consul::serve(l, d.clone()));
        }
        if let Some(parent) = socket.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let _ = std::fs::remove_file(&socket);
        let listener = tokio::net::UnixListener::bind(&socket)?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o660))?;
        tracing::info!(socket = %socket.display(), "berth daemon ready");
        if let Some(c) = &d.cluster {
            tokio::spawn(berth::api::server::serve_peer(c.addr, d.clone()));
        }
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            _ = berth::api::server::serve(listener, d, limits) => {}
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        // Containers keep running: the next daemon re-adopts them.
        tracing::info!("berth daemon stopping; containers keep running");
        let _ = std::fs::remove_file(&socket);
        Ok(())
    })
}

/// Every published port holds a socket (two with IPv6), and every running container a
/// pidfd and a netlink socket: 10 000 published ports need more than the usual 1024
/// descriptors. Raised as dockerd does, to the kernel's maximum (capped at 2^20).
fn raise_nofile() {
    let max = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .unwrap_or(1 << 20)
        .min(1 << 20);
    let res = nix::sys::resource::Resource::RLIMIT_NOFILE;
    if nix::sys::resource::setrlimit(res, max, max).is_err() {
        if let Ok((_, hard)) = nix::sys::resource::getrlimit(res) {
            let _ = nix::sys::resource::setrlimit(res, hard, hard);
        }
    }
}
