//! `berth compose`: a Compose file turned into API calls, as docker compose does it — the
//! daemon knows nothing of projects; containers and networks carry compose's labels, and
//! every command finds its objects by them.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;

use berth_api::network::{Ipam, IpamConfig};
use berth_api::query::{encode, ListQuery, RemoveQuery, StopQuery};
use berth_api::{
    ContainerCreateResponse, ContainerInspect, ContainerSummary, Filters, Network,
    NetworkCreateRequest, NetworkCreateResponse,
};
use berth_compose::plan::{
    self, LABEL_HASH, LABEL_NETWORK, LABEL_NUMBER, LABEL_PROJECT, LABEL_SERVICE,
};
use berth_compose::Project;

use super::compose_load::load_project;
use super::enc;
use crate::api::client::{Client, ClientError};

#[derive(clap::Args)]
pub struct ComposeArgs {
    /// Compose file(s); later ones override earlier ones (default: compose.yaml,
    /// compose.yml, docker-compose.yml or docker-compose.yaml here, plus its override file)
    #[arg(short = 'f', long = "file")]
    file: Vec<PathBuf>,
    /// Project name (default: top-level `name:`, else the project directory's name)
    #[arg(short = 'p', long = "project-name")]
    project: Option<String>,
    /// Variables for interpolation (default: .env in the project directory)
    #[arg(long)]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    cmd: ComposeCmd,
}

#[derive(clap::Subcommand)]
enum ComposeCmd {
    /// Create and start the services' containers (and their networks)
    ///
    /// Example: berth compose up -d --scale web=3
    Up {
        #[arg(short, long)]
        detach: bool,
        /// SERVICE=N replicas (overrides deploy.replicas / scale)
        #[arg(long)]
        scale: Vec<String>,
        services: Vec<String>,
    },
    /// Stop and remove the project's containers and networks
    ///
    /// Example: berth compose down
    Down {
        /// Also remove containers of services no longer in the file
        #[arg(long)]
        remove_orphans: bool,
    },
    /// List the project's containers
    ///
    /// Example: berth compose ps
    Ps,
    /// Print the resolved file (interpolated, defaults filled in)
    ///
    /// Example: berth compose config
    Config,
    /// Print the public address of a port binding
    ///
    /// Example: berth compose port web 5000
    Port {
        service: String,
        port: String,
        #[arg(long, default_value_t = 1)]
        index: u32,
    },
    /// Show the containers' output
    ///
    /// Example: berth compose logs -f web
    Logs {
        #[arg(short, long)]
        follow: bool,
        services: Vec<String>,
    },
    /// Stop the services' containers (they are kept)
    ///
    /// Example: berth compose stop web
    Stop { services: Vec<String> },
    /// Start the services' stopped containers
    ///
    /// Example: berth compose start web
    Start { services: Vec<String> },
    /// Restart the services' containers
    ///
    /// Example: berth compose restart web
    Restart { services: Vec<String> },
    /// Run a command in a service's container
    ///
    /// Example: berth compose exec web getent hosts redis
    Exec {
        #[arg(long, default_value_t = 1)]
        index: u32,
        #[arg(short = 'T', long = "no-TTY")]
        no_tty: bool,
        service: String,
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
}

fn usage(msg: impl Into<String>) -> ClientError {
    ClientError::Usage(msg.into())
}

/// The files, the project directory, and the loaded project with its warnings printed.
fn load(a: &ComposeArgs) -> Result<Project, ClientError> {
    load_project(&a.file, a.project.clone(), a.env_file.clone(), false)
}

/// Progress as docker compose prints it, on stderr when it is a terminal.
struct Progress(bool);

impl Progress {
    fn new() -> Progress {
        Progress(std::io::stderr().is_terminal())
    }

    fn line(&self, what: &str, name: &str, state: &str) {
        if self.0 {
            eprintln!(" \u{2714} {what} {name:<30} {state}");
        }
    }
}

/// What compose made for a project: containers (all states, with `all`) or networks, found
/// by their labels.
fn by_project(project: &str, all: bool) -> String {
    encode(&ListQuery {
        all,
        filters: Some(
            Filters::new()
                .with("label", &format!("{LABEL_PROJECT}={project}"))
                .to_json(),
        ),
    })
}

async fn containers(c: &Client, project: &str) -> Result<Vec<ContainerSummary>, ClientError> {
    c.get_as(&format!("/containers/json{}", by_project(project, true)))
        .await
}

fn label<'a>(c: &'a ContainerSummary, k: &str) -> &'a str {
    c.label(k)
}

fn cname(c: &ContainerSummary) -> String {
    c.name().to_string()
}

fn running(c: &ContainerSummary) -> bool {
    c.is_running()
}

fn grace(p: &Project, service: &str) -> String {
    let secs = p
        .services
        .get(service)
        .and_then(|s| s.stop_grace_period.as_deref())
        .and_then(|g| super::parse_duration(g).ok())
        .map(|d| d.as_secs())
        .unwrap_or(10);
    encode(&StopQuery {
        t: Some(i64::try_from(secs).unwrap_or(i64::MAX)),
    })
}

fn force_remove(name: &str) -> String {
    format!(
        "/containers/{}{}",
        enc(name),
        encode(&RemoveQuery { force: true })
    )
}

async fn ensure_networks(c: &Client, p: &Project, prog: &Progress) -> Result<(), ClientError> {
    for (key, n) in &p.networks {
        let used = p.services.values().any(|s| s.networks.contains_key(key));
        if !used {
            continue;
        }
        match c.get(&format!("/networks/{}", enc(&n.name))).await {
            Ok(_) => continue,
            Err(ClientError::Api { status: 404, .. }) if !n.external => {}
            Err(ClientError::Api { status: 404, .. }) => {
                return Err(usage(format!(
                    "network {} declared as external, but could not be found: create it with `berth network create {}`",
                    n.name, n.name
                )))
            }
            Err(e) => return Err(e),
        }
        let mut labels: BTreeMap<String, String> = n
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(LABEL_PROJECT.into(), p.name.clone());
        labels.insert(LABEL_NETWORK.into(), key.clone());
        let config: Vec<IpamConfig> = n
            .ipam
            .iter()
            .map(|i| IpamConfig {
                subnet: i.subnet.clone().unwrap_or_default(),
                ip_range: i.ip_range.clone().unwrap_or_default(),
                gateway: i.gateway.clone().unwrap_or_default(),
                auxiliary_addresses: i
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect();
        let body = NetworkCreateRequest {
            driver: n.driver.clone(),
            enable_ipv6: Some(n.enable_ipv6),
            ipam: Some(Ipam {
                driver: "default".into(),
                options: None,
                config: Some(config),
            }),
            internal: n.internal,
            attachable: n.attachable,
            options: None,
            labels: Some(labels),
            name: n.name.clone(),
        };
        let _: NetworkCreateResponse = c.post_json("/networks/create", &body).await?;
        prog.line("Network", &n.name, "Created");
    }
    Ok(())
}

/// The services to act on: those named (and what they need), or all.
fn selected(p: &Project, names: &[String]) -> Result<Vec<String>, ClientError> {
    for n in names {
        if !p.services.contains_key(n) {
            return Err(usage(format!("no such service: {n}")));
        }
    }
    let order = plan::order(p).map_err(|e| usage(e.to_string()))?;
    if names.is_empty() {
        return Ok(order);
    }
    let mut want: Vec<String> = names.to_vec();
    let mut i = 0;
    while i < want.len() {
        for d in plan::needs(&p.services[&want[i]]) {
            if !want.contains(&d) {
                want.push(d);
            }
        }
        i += 1;
    }
    Ok(order.into_iter().filter(|s| want.contains(s)).collect())
}

async fn up(
    c: &Client,
    p: &Project,
    detach: bool,
    scale: &[String],
    only: &[String],
) -> Result<i32, ClientError> {
    let mut replicas: BTreeMap<String, u32> = p
        .services
        .iter()
        .map(|(k, s)| (k.clone(), s.replicas))
        .collect();
    for s in scale {
        let (svc, n) = s
            .split_once('=')
            .and_then(|(a, b)| Some((a, b.parse::<u32>().ok()?)))
            .ok_or_else(|| usage(format!("--scale {s:?}: use SERVICE=NUMBER")))?;
        if !p.services.contains_key(svc) {
            return Err(usage(format!("--scale: no such service: {svc}")));
        }
        replicas.insert(svc.to_string(), n);
    }
    let prog = Progress::new();
    ensure_networks(c, p, &prog).await?;
    let services = selected(p, only)?;
    let existing = containers(c, &p.name).await?;
    for svc in &services {
        for (dep, cond) in &p.services[svc].depends_on {
            wait_for(c, p, dep, *cond, replicas[dep], &prog).await?;
        }
        let hash = plan::config_hash(&p.services[svc]);
        let want = replicas[svc];
        let mine: Vec<&ContainerSummary> = existing
            .iter()
            .filter(|x| label(x, LABEL_SERVICE) == svc)
            .collect();
        for n in 1..=want {
            let name = plan::container_name(&p.name, svc, n);
            let have = mine
                .iter()
                .find(|x| label(x, LABEL_NUMBER) == n.to_string());
            if let Some(x) = have {
                if label(x, LABEL_HASH) == hash {
                    if !running(x) {
                        c.post(&format!("/containers/{}/start", enc(&name))).await?;
                        prog.line("Container", &name, "Started");
                    } else {
                        prog.line("Container", &name, "Running");
                    }
                    continue;
                }
                prog.line("Container", &name, "Recreate");
                remove(c, p, svc, &name).await?;
            }
            prog.line("Container", &name, "Creating");
            let body = plan::create_body(p, svc, n).map_err(|e| usage(e.to_string()))?;
            let q = encode(&berth_api::query::CreateQuery {
                name: Some(name.clone()),
            });
            let _: ContainerCreateResponse = c
                .post_json(&format!("/containers/create{q}"), &body)
                .await?;
            if let Err(e) = c.post(&format!("/containers/{}/start", enc(&name))).await {
                // Nothing half-made stays behind.
                let _ = c.delete(&force_remove(&name)).await;
                return Err(e);
            }
            prog.line("Container", &name, "Started");
        }
        // Scale down: the highest numbers go, the others are not touched.
        let mut extra: Vec<&&ContainerSummary> = mine
            .iter()
            .filter(|x| {
                label(x, LABEL_NUMBER)
                    .parse::<u32>()
                    .map_or(true, |k| k > want)
            })
            .collect();
        extra
            .sort_by_key(|x| std::cmp::Reverse(label(x, LABEL_NUMBER).parse::<u32>().unwrap_or(0)));
        for x in extra {
            let name = cname(x);
            remove(c, p, svc, &name).await?;
            prog.line("Container", &name, "Removed");
        }
    }
    if detach {
        return Ok(0);
    }
    // Attached: follow every container's output until interrupted, then stop them.
    let names: Vec<String> = containers(c, &p.name).await?.iter().map(cname).collect();
    let follow = logs(c, p, &names, true);
    tokio::select! {
        r = follow => {
            r?;
        }
        _ = tokio::signal::ctrl_c() => {
            eprintln!("Gracefully stopping... (press Ctrl+C again to force)");
        }
    }
    tokio::select! {
        r = stop_all(c, p, &[]) => r?,
        _ = tokio::signal::ctrl_c() => {
            // Again: no grace period.
            for x in containers(c, &p.name).await?.iter().filter(|x| running(x)) {
                let _ = c.post(&format!("/containers/{}/kill", enc(&cname(x)))).await;
            }
        }
    }
    Ok(0)
}

/// Stops a container within its service's grace period, then removes it.
async fn remove(c: &Client, p: &Project, svc: &str, name: &str) -> Result<(), ClientError> {
    c.post(&format!("/containers/{}/stop{}", enc(name), grace(p, svc)))
        .await?;
    c.delete(&force_remove(name)).await?;
    Ok(())
}

/// How long `up` waits for a dependency's condition before giving up.
const DEPENDENCY_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// Waits until every replica of `dep` meets the condition (healthy, or exited 0).
async fn wait_for(
    c: &Client,
    p: &Project,
    dep: &str,
    cond: berth_compose::model::Condition,
    replicas: u32,
    prog: &Progress,
) -> Result<(), ClientError> {
    use berth_compose::model::Condition;
    if cond == Condition::ServiceStarted {
        return Ok(());
    }
    if cond == Condition::ServiceHealthy && p.services[dep].healthcheck.is_none() {
        return Err(usage(format!(
            "dependency failed to start: service {dep} has no healthcheck configured (needed by condition: service_healthy)"
        )));
    }
    let deadline = std::time::Instant::now() + DEPENDENCY_WAIT;
    for n in 1..=replicas {
        let name = plan::container_name(&p.name, dep, n);
        prog.line("Container", &name, "Waiting");
        loop {
            let v: ContainerInspect = c
                .get_as(&format!("/containers/{}/json", enc(&name)))
                .await?;
            let state = &v.state;
            let health = state.health.as_ref().map(|h| h.status.as_str());
            let done = match cond {
                Condition::ServiceHealthy => {
                    if health == Some("unhealthy") {
                        return Err(usage(format!(
                            "dependency failed to start: container {name} is unhealthy"
                        )));
                    }
                    health == Some("healthy")
                }
                _ => {
                    if !state.running && state.exit_code != 0 {
                        return Err(usage(format!(
                            "service {dep} didn't complete successfully: exit {}",
                            state.exit_code
                        )));
                    }
                    !state.running && state.status == "exited"
                }
            };
            if done {
                prog.line(
                    "Container",
                    &name,
                    if cond == Condition::ServiceHealthy {
                        "Healthy"
                    } else {
                        "Exited"
                    },
                );
                break;
            }
            if std::time::Instant::now() > deadline {
                return Err(usage(format!(
                    "gave up waiting for {name} after {}s",
                    DEPENDENCY_WAIT.as_secs()
                )));
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Prefixed, interleaved output of several containers (`web-1  | …`).
async fn logs(c: &Client, p: &Project, names: &[String], follow: bool) -> Result<i32, ClientError> {
    let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
    let mut tasks = Vec::new();
    for n in names {
        let short = n
            .strip_prefix(&format!("{}-", p.name))
            .unwrap_or(n)
            .to_string();
        let prefix = format!("{short:<w$} | ", w = width.saturating_sub(p.name.len() + 1));
        let q = encode(&berth_api::query::LogsQuery {
            stdout: true,
            stderr: true,
            follow,
        });
        let path = format!("/containers/{}/logs{q}", enc(n));
        tasks.push(async move {
            let mut out = Prefixed {
                prefix,
                buf: Vec::new(),
            };
            let r = c.stream(&path, &mut out).await;
            out.flush_rest();
            r
        });
    }
    futures::future::try_join_all(tasks).await?;
    Ok(0)
}

struct Prefixed {
    prefix: String,
    buf: Vec<u8>,
}

impl Prefixed {
    fn flush_rest(&mut self) {
        if !self.buf.is_empty() {
            println!("{}{}", self.prefix, String::from_utf8_lossy(&self.buf));
            self.buf.clear();
        }
    }
}

impl std::io::Write for Prefixed {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "{}{}",
                self.prefix,
                String::from_utf8_lossy(&line[..line.len() - 1])
            )?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn stop_all(c: &Client, p: &Project, only: &[String]) -> Result<(), ClientError> {
    let prog = Progress::new();
    let mut list = containers(c, &p.name).await?;
    // Dependents first: reverse start order.
    let order = plan::order(p).unwrap_or_default();
    list.sort_by_key(|x| {
        std::cmp::Reverse(order.iter().position(|s| s == label(x, LABEL_SERVICE)))
    });
    for x in list.iter().filter(|x| running(x)) {
        let svc = label(x, LABEL_SERVICE);
        if !only.is_empty() && !only.iter().any(|s| s == svc) {
            continue;
        }
        let name = cname(x);
        c.post(&format!("/containers/{}/stop{}", enc(&name), grace(p, svc)))
            .await?;
        prog.line("Container", &name, "Stopped");
    }
    Ok(())
}

async fn down(c: &Client, p: &Project, remove_orphans: bool) -> Result<i32, ClientError> {
    let prog = Progress::new();
    let order = plan::order(p).unwrap_or_default();
    let mut list = containers(c, &p.name).await?;
    list.sort_by_key(|x| {
        std::cmp::Reverse(order.iter().position(|s| s == label(x, LABEL_SERVICE)))
    });
    let mut orphans = Vec::new();
    for x in &list {
        let svc = label(x, LABEL_SERVICE);
        let name = cname(x);
        if !p.services.contains_key(svc) && !remove_orphans {
            orphans.push(name);
            continue;
        }
        if running(x) {
            c.post(&format!("/containers/{}/stop{}", enc(&name), grace(p, svc)))
                .await?;
            prog.line("Container", &name, "Stopped");
        }
        c.delete(&force_remove(&name)).await?;
        prog.line("Container", &name, "Removed");
    }
    if !orphans.is_empty() {
        eprintln!(
            "WARN Found orphan containers ({}) for this project. If you removed or renamed this service in your compose file, you can run this command with the --remove-orphans flag to clean it up.",
            orphans.join(", ")
        );
    }
    let nets: Vec<Network> = c
        .get_as(&format!("/networks{}", by_project(&p.name, false)))
        .await?;
    for n in &nets {
        let name = n.name.as_str();
        if !orphans.is_empty() {
            // Orphans still use the networks: they stay.
            continue;
        }
        c.delete(&format!("/networks/{}", enc(name))).await?;
        prog.line("Network", name, "Removed");
    }
    Ok(0)
}

async fn ps(c: &Client, p: &Project) -> Result<i32, ClientError> {
    let mut list = containers(c, &p.name).await?;
    list.sort_by_key(cname);
    let mut rows = vec![vec![
        "NAME".to_string(),
        "SERVICE".into(),
        "STATUS".into(),
        "PORTS".into(),
    ]];
    for x in &list {
        let ports: Vec<berth_ports::ApiPort> = x.ports.iter().map(Into::into).collect();
        rows.push(vec![
            cname(x),
            label(x, LABEL_SERVICE).to_string(),
            x.status.clone(),
            berth_ports::displayable_ports(&ports),
        ]);
    }
    print!("{}", berth_format::tabwrite(&rows));
    Ok(0)
}

pub(super) fn main(rt: &tokio::runtime::Runtime, c: &Client, a: ComposeArgs) -> i32 {
    let res = (|| -> Result<i32, ClientError> {
        let p = load(&a)?;
        match &a.cmd {
            ComposeCmd::Config => {
                let text = serde_yaml_ng::to_string(&p).map_err(|e| usage(e.to_string()))?;
                print!("{text}");
                Ok(0)
            }
            ComposeCmd::Up {
                detach,
                scale,
                services,
            } => rt.block_on(up(c, &p, *detach, scale, services)),
            ComposeCmd::Down { remove_orphans } => rt.block_on(down(c, &p, *remove_orphans)),
            ComposeCmd::Ps => rt.block_on(ps(c, &p)),
            ComposeCmd::Port {
                service,
                port,
                index,
            } => rt.block_on(super::container::port(
                c,
                super::container::PortArgs {
                    container: plan::container_name(&p.name, service, *index),
                    port: Some(port.clone()),
                },
            )),
            ComposeCmd::Logs { follow, services } => rt.block_on(async {
                let names: Vec<String> = containers(c, &p.name)
                    .await?
                    .iter()
                    .filter(|x| {
                        services.is_empty() || services.iter().any(|s| s == label(x, LABEL_SERVICE))
                    })
                    .map(cname)
                    .collect();
                logs(c, &p, &names, *follow).await
            }),
            ComposeCmd::Stop { services } => rt.block_on(async {
                stop_all(c, &p, services).await?;
                Ok(0)
            }),
            ComposeCmd::Start { services } => rt.block_on(async {
                for x in containers(c, &p.name).await? {
                    let svc = label(&x, LABEL_SERVICE);
                    if (services.is_empty() || services.iter().any(|s| s == svc)) && !running(&x) {
                        c.post(&format!("/containers/{}/start", enc(&cname(&x))))
                            .await?;
                    }
                }
                Ok(0)
            }),
            ComposeCmd::Restart { services } => rt.block_on(async {
                for x in containers(c, &p.name).await? {
                    let svc = label(&x, LABEL_SERVICE);
                    if services.is_empty() || services.iter().any(|s| s == svc) {
                        c.post(&format!(
                            "/containers/{}/restart{}",
                            enc(&cname(&x)),
                            grace(&p, svc)
                        ))
                        .await?;
                    }
                }
                Ok(0)
            }),
            ComposeCmd::Exec {
                index,
                no_tty,
                service,
                command,
            } => {
                let args = super::run::ExecArgs {
                    interactive: !*no_tty && std::io::stdin().is_terminal(),
                    tty: !*no_tty && std::io::stdin().is_terminal(),
                    env: vec![],
                    workdir: None,
                    container: plan::container_name(&p.name, service, *index),
                    command: command.clone(),
                };
                Ok(super::run::exec(rt, c, args))
            }
        }
    })();
    match res {
        Ok(code) => code,
        Err(e) => {
            super::report(&e);
            1
        }
    }
}
