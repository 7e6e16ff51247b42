//! `berth ps`, `inspect`, `logs`, `stop`, `start`, `restart`, `kill`, `rm`, `wait`,
//! `version`, `info`.

use berth_api::container::WaitResponse;
use berth_api::query::{encode, KillQuery, ListQuery, LogsQuery, RemoveQuery, StopQuery};
use berth_api::system::{SystemInfo, SystemVersion};
use berth_api::{ContainerInspect, ContainerSummary};
use serde_json::{json, Value};

use super::network::filters_json;
use super::output::print_objects;
use super::{enc, for_each};
use crate::api::client::{Client, ClientError};

#[derive(clap::Args)]
pub struct PsArgs {
    #[arg(short, long)]
    all: bool,
    #[arg(short, long)]
    quiet: bool,
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(long)]
    format: Option<String>,
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    #[arg(short, long)]
    format: Option<String>,
    #[arg(long = "type")]
    kind: Option<String>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct LogsArgs {
    #[arg(short, long)]
    follow: bool,
    name: String,
}

#[derive(clap::Args)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short = 't', long = "time", alias = "timeout")]
    time: Option<i64>,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct StartArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct KillArgs {
    #[arg(short, long, default_value = "KILL")]
    signal: String,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct RmArgs {
    #[arg(short, long)]
    force: bool,
    #[arg(required = true)]
    names: Vec<String>,
}

#[derive(clap::Args)]
pub struct NamesArgs {
    #[arg(required = true)]
    names: Vec<String>,
}

/// docker ps shows the command quoted and cut to 20 characters.
fn short_command(cmd: &str, no_trunc: bool) -> String {
    let chars: Vec<char> = cmd.chars().collect();
    if no_trunc || chars.len() <= 20 {
        format!("\"{cmd}\"")
    } else {
        format!("\"{}…\"", chars[..19].iter().collect::<String>())
    }
}

pub(super) async fn ps(c: &Client, a: PsArgs) -> Result<i32, ClientError> {
    let q = encode(&ListQuery {
        all: a.all,
        filters: Some(filters_json(&a.filter)?),
    });
    let list: Vec<ContainerSummary> = c.get_as(&format!("/containers/json{q}")).await?;
    let now = chrono::Utc::now().timestamp();
    // Rows for the template engine, which renders JSON values: docker's `ps` fields.
    let rows: Vec<Value> = list
        .iter()
        .map(|s| {
            let id = s.id.as_str();
            let ago = std::time::Duration::from_secs(u64::try_from(now - s.created).unwrap_or(0));
            let names: Vec<&str> = s.names.iter().map(|n| n.trim_start_matches('/')).collect();
            let nets: Vec<&str> = s.network_settings.networks.keys().map(String::as_str).collect();
            let ports: Vec<berth_ports::ApiPort> = s.ports.iter().map(Into::into).collect();
            json!({
                "ID": if a.no_trunc { id } else { &id[..id.len().min(12)] },
                "Image": s.image,
                "Command": short_command(&s.command, a.no_trunc),
                "CreatedAt": chrono::DateTime::from_timestamp(s.created, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
                "RunningFor": format!("{} ago", berth_format::human_duration(ago)),
                "Ports": berth_ports::displayable_ports(&ports),
                "State": s.state,
                "Status": s.status,
                "Names": names.join(","),
                "Labels": s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "Networks": nets.join(","),
                "Mounts": "",
                "Size": "",
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let template = a.format.unwrap_or_else(|| {
        "table {{.ID}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".into()
    });
    let headers = [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Command", "COMMAND"),
        ("CreatedAt", "CREATED AT"),
        ("RunningFor", "CREATED"),
        ("Ports", "PORTS"),
        ("State", "STATE"),
        ("Status", "STATUS"),
        ("Names", "NAMES"),
        ("Labels", "LABELS"),
        ("Networks", "NETWORKS"),
        ("Mounts", "MOUNTS"),
        ("Size", "SIZE"),
    ];
    Ok(super::output::print_list(&template, &rows, &headers))
}

#[derive(clap::Args)]
pub struct PortArgs {
    pub(crate) container: String,
    /// PRIVATE_PORT[/PROTO]
    pub(crate) port: Option<String>,
}

/// `docker port`: the container's published ports, from its inspect data.
pub(super) async fn port(c: &Client, a: PortArgs) -> Result<i32, ClientError> {
    let v: ContainerInspect = c
        .get_as(&format!("/containers/{}/json", enc(&a.container)))
        .await?;
    let ports: Vec<berth_ports::PortEntry> = v
        .network_settings
        .ports
        .into_iter()
        .map(|(k, b)| {
            let list = b.map(|l| l.into_iter().map(|x| (x.host_ip, x.host_port)).collect());
            (k.to_string(), list)
        })
        .collect();
    match berth_ports::port_lines(&ports, a.port.as_deref(), &a.container) {
        Ok(lines) => {
            for l in lines {
                println!("{l}");
            }
            Ok(0)
        }
        Err(msg) => {
            eprintln!("{msg}");
            Ok(1)
        }
    }
}

/// Containers first, then networks, like `docker inspect` without --type.
pub(super) async fn inspect(c: &Client, a: InspectArgs) -> Result<i32, ClientError> {
    let mut objs = Vec::new();
    let mut code = 0;
    for n in &a.names {
        let kinds: &[&str] = match a.kind.as_deref() {
            Some("container") => &["container"],
            Some("network") => &["network"],
            _ => &["container", "network"],
        };
        let mut found = None;
        for k in kinds {
            let path = match *k {
                "container" => format!("/containers/{}/json", enc(n)),
                _ => format!("/networks/{}", enc(n)),
            };
            match c.get(&path).await {
                Ok(v) => {
                    found = Some(v);
                    break;
                }
                Err(ClientError::Api { status: 404, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        match found {
            Some(v) => objs.push(v),
            None => {
                eprintln!("Error: No such object: {n}");
                code = 1;
            }
        }
    }
    if let Err(e) = print_objects(&objs, &a.format) {
        eprintln!("{e}");
        return Ok(1);
    }
    Ok(code)
}

pub(super) async fn logs(c: &Client, a: LogsArgs) -> Result<i32, ClientError> {
    let mut out = std::io::stdout();
    let q = encode(&LogsQuery {
        stdout: true,
        stderr: true,
        follow: a.follow,
    });
    c.stream(&format!("/containers/{}/logs{q}", enc(&a.name)), &mut out)
        .await?;
    Ok(0)
}

pub(super) async fn stop(c: &Client, a: StopArgs, verb: &str) -> Result<i32, ClientError> {
    let t = encode(&StopQuery { t: a.time });
    for_each(&a.names, |n| {
        let t = t.clone();
        async move {
            c.post(&format!("/containers/{}/{verb}{t}", enc(&n)))
                .await?;
            println!("{n}");
            Ok(())
        }
    })
    .await
}

pub(super) async fn start(c: &Client, a: StartArgs) -> Result<i32, ClientError> {
    for_each(&a.names, |n| async move {
        c.post(&format!("/containers/{}/start", enc(&n))).await?;
        println!("{n}");
        Ok(())
    })
    .await
}

pub(super) async fn kill(c: &Client, a: KillArgs) -> Result<i32, ClientError> {
    let q = encode(&KillQuery {
        signal: Some(a.signal.clone()),
    });
    for_each(&a.names, |n| {
        let q = q.clone();
        async move {
            c.post(&format!("/containers/{}/kill{q}", enc(&n))).await?;
            println!("{n}");
            Ok(())
        }
    })
    .await
}

pub(super) async fn rm(c: &Client, a: RmArgs) -> Result<i32, ClientError> {
    let q = encode(&RemoveQuery { force: a.force });
    for_each(&a.names, |n| {
        let q = q.clone();
        async move {
            c.delete(&format!("/containers/{}{q}", enc(&n))).await?;
            println!("{n}");
            Ok(())
        }
    })
    .await
}

pub(super) async fn wait(c: &Client, a: NamesArgs) -> Result<i32, ClientError> {
    for_each(&a.names, |n| async move {
        let r: WaitResponse = c.post_as(&format!("/containers/{}/wait", enc(&n))).await?;
        println!("{}", r.status_code);
        Ok(())
    })
    .await
}

pub(super) async fn version(c: &Client) -> Result<i32, ClientError> {
    println!(
        "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           linux/{}\n",
        env!("CARGO_PKG_VERSION"),
        berth_api::API_VERSION,
        std::env::consts::ARCH
    );
    let v: SystemVersion = c.get_as("/version").await?;
    println!(
        "Server: berth\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  Kernel:           {}",
        v.version, v.api_version, v.min_api_version, v.os, v.arch, v.kernel_version,
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Go template over the API's /info object (e.g. '{{.BerthDNS}}')
    #[arg(short, long)]
    format: Option<String>,
}

pub(super) async fn info(c: &Client, a: InfoArgs) -> Result<i32, ClientError> {
    let v = c.get("/info").await?;
    if a.format.is_some() {
        return Ok(match super::output::print_objects(&[v], &a.format) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("{e}");
                1
            }
        });
    }
    // --format renders the object as it came; the summary reads it typed.
    let v: SystemInfo =
        serde_json::from_value(v).map_err(|e| ClientError::Protocol(format!("/info: {e}")))?;
    println!("Server:");
    println!(" Containers: {}", v.containers);
    println!("  Running: {}", v.containers_running);
    println!("  Stopped: {}", v.containers_stopped);
    println!(" Networks: {}", v.networks);
    println!(" Server Version: {}", v.server_version);
    println!(" Network Plugins: bridge host null");
    println!(" Kernel Version: {}", v.kernel_version);
    println!(" Root Dir: {}", v.docker_root_dir);
    println!(" Run Dir: {}", v.berth_run);
    println!(" Socket: {}", v.berth_socket);
    println!(" Name: {}", v.name);
    println!(
        " Host DNS: {}",
        Some(v.berth_dns.as_str())
            .filter(|s| !s.is_empty())
            .unwrap_or("(none)")
    );
    // As docker prints them: after the facts, on stderr.
    for w in &v.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(0)
}
