//! `berth ps`, `inspect`, `logs`, `stop`, `start`, `restart`, `kill`, `rm`, `wait`,
//! `version`, `info`.

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

pub async fn ps(c: &Client, a: PsArgs) -> Result<i32, ClientError> {
    let filters = filters_json(&a.filter)?;
    let v = c
        .get(&format!(
            "/containers/json?all={}&filters={}",
            a.all as u8,
            enc(&filters)
        ))
        .await?;
    let now = chrono::Utc::now().timestamp();
    let rows: Vec<Value> = v
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|s| {
            let id = s["Id"].as_str().unwrap_or_default();
            let created = s["Created"].as_i64().unwrap_or(now);
            let ago = std::time::Duration::from_secs((now - created).max(0) as u64);
            let names: Vec<String> = s["Names"]
                .as_array()
                .map(|a| a.iter().filter_map(|n| n.as_str()).map(|n| n.trim_start_matches('/').to_string()).collect())
                .unwrap_or_default();
            let nets: Vec<String> = s["NetworkSettings"]["Networks"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            json!({
                "ID": if a.no_trunc { id } else { &id[..id.len().min(12)] },
                "Image": s["Image"],
                "Command": short_command(s["Command"].as_str().unwrap_or_default(), a.no_trunc),
                "CreatedAt": chrono::DateTime::from_timestamp(created, 0).map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string()).unwrap_or_default(),
                "RunningFor": format!("{} ago", berth_format::human_duration(ago)),
                "Ports": berth_ports::displayable_ports(&api_ports(&s["Ports"])),
                "State": s["State"],
                "Status": s["Status"],
                "Names": names.join(","),
                "Labels": s["Labels"].as_object().map(|m| m.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or(""))).collect::<Vec<_>>().join(",")).unwrap_or_default(),
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

fn api_ports(v: &Value) -> Vec<berth_ports::ApiPort> {
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|p| berth_ports::ApiPort {
                    ip: p["IP"].as_str().unwrap_or_default().to_string(),
                    private_port: p["PrivatePort"].as_u64().unwrap_or(0) as u16,
                    public_port: p["PublicPort"].as_u64().unwrap_or(0) as u16,
                    proto: p["Type"].as_str().unwrap_or("tcp").to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

#[derive(clap::Args)]
pub struct PortArgs {
    pub(crate) container: String,
    /// PRIVATE_PORT[/PROTO]
    pub(crate) port: Option<String>,
}

/// `docker port`: the container's published ports, from its inspect data.
pub async fn port(c: &Client, a: PortArgs) -> Result<i32, ClientError> {
    let v = c
        .get(&format!("/containers/{}/json", enc(&a.container)))
        .await?;
    let ports: Vec<berth_ports::PortEntry> = v["NetworkSettings"]["Ports"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, b)| {
                    let list = b.as_array().map(|l| {
                        l.iter()
                            .map(|x| {
                                (
                                    x["HostIp"].as_str().unwrap_or_default().to_string(),
                                    x["HostPort"].as_str().unwrap_or_default().to_string(),
                                )
                            })
                            .collect()
                    });
                    (k.clone(), list)
                })
                .collect()
        })
        .unwrap_or_default();
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
pub async fn inspect(c: &Client, a: InspectArgs) -> Result<i32, ClientError> {
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

pub async fn logs(c: &Client, a: LogsArgs) -> Result<i32, ClientError> {
    let mut out = std::io::stdout();
    c.stream(
        &format!(
            "/containers/{}/logs?stdout=1&stderr=1&follow={}",
            enc(&a.name),
            a.follow as u8
        ),
        &mut out,
    )
    .await?;
    Ok(0)
}

pub async fn stop(c: &Client, a: StopArgs, verb: &str) -> Result<i32, ClientError> {
    let t = a.time.map(|t| format!("?t={t}")).unwrap_or_default();
    for_each(&a.names, |n| {
        let t = t.clone();
        async move {
            c.post(&format!("/containers/{}/{verb}{t}", enc(&n)), None)
                .await?;
            println!("{n}");
            Ok(())
        }
    })
    .await
}

pub async fn start(c: &Client, a: StartArgs) -> Result<i32, ClientError> {
    for_each(&a.names, |n| async move {
        c.post(&format!("/containers/{}/start", enc(&n)), None)
            .await?;
        println!("{n}");
        Ok(())
    })
    .await
}

pub async fn kill(c: &Client, a: KillArgs) -> Result<i32, ClientError> {
    let sig = a.signal.clone();
    for_each(&a.names, |n| {
        let sig = sig.clone();
        async move {
            c.post(
                &format!("/containers/{}/kill?signal={}", enc(&n), enc(&sig)),
                None,
            )
            .await?;
            println!("{n}");
            Ok(())
        }
    })
    .await
}

pub async fn rm(c: &Client, a: RmArgs) -> Result<i32, ClientError> {
    for_each(&a.names, |n| async move {
        c.delete(&format!("/containers/{}?force={}", enc(&n), a.force as u8))
            .await?;
        println!("{n}");
        Ok(())
    })
    .await
}

pub async fn wait(c: &Client, a: NamesArgs) -> Result<i32, ClientError> {
    for_each(&a.names, |n| async move {
        let r = c
            .post(&format!("/containers/{}/wait", enc(&n)), None)
            .await?;
        println!("{}", r["StatusCode"].as_i64().unwrap_or(255));
        Ok(())
    })
    .await
}

pub async fn version(c: &Client) -> Result<i32, ClientError> {
    println!(
        "Client:\n Version:           {}\n API version:       {}\n OS/Arch:           linux/{}\n",
        env!("CARGO_PKG_VERSION"),
        crate::api::types::API_VERSION,
        std::env::consts::ARCH
    );
    let v = c.get("/version").await?;
    println!(
        "Server: berth\n Engine:\n  Version:          {}\n  API version:      {} (minimum version {})\n  OS/Arch:          {}/{}\n  Kernel:           {}",
        v["Version"].as_str().unwrap_or_default(),
        v["ApiVersion"].as_str().unwrap_or_default(),
        v["MinAPIVersion"].as_str().unwrap_or_default(),
        v["Os"].as_str().unwrap_or_default(),
        v["Arch"].as_str().unwrap_or_default(),
        v["KernelVersion"].as_str().unwrap_or_default(),
    );
    Ok(0)
}

#[derive(clap::Args)]
pub struct InfoArgs {
    /// Go template over the API's /info object (e.g. '{{.BerthDNS}}')
    #[arg(short, long)]
    format: Option<String>,
}

pub async fn info(c: &Client, a: InfoArgs) -> Result<i32, ClientError> {
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
    println!("Server:");
    println!(" Containers: {}", v["Containers"]);
    println!("  Running: {}", v["ContainersRunning"]);
    println!("  Stopped: {}", v["ContainersStopped"]);
    println!(" Networks: {}", v["Networks"]);
    println!(
        " Server Version: {}",
        v["ServerVersion"].as_str().unwrap_or_default()
    );
    println!(" Network Plugins: bridge host null");
    println!(
        " Kernel Version: {}",
        v["KernelVersion"].as_str().unwrap_or_default()
    );
    println!(
        " Root Dir: {}",
        v["DockerRootDir"].as_str().unwrap_or_default()
    );
    println!(" Run Dir: {}", v["BerthRun"].as_str().unwrap_or_default());
    println!(" Socket: {}", v["BerthSocket"].as_str().unwrap_or_default());
    println!(" Name: {}", v["Name"].as_str().unwrap_or_default());
    println!(
        " Host DNS: {}",
        v["BerthDNS"]
            .as_str()
            .filter(|s| !s.is_empty())
            .unwrap_or("(none)")
    );
    // As docker prints them: after the facts, on stderr.
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("WARNING: {}", w.as_str().unwrap_or_default());
    }
    Ok(0)
}
