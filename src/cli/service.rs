//! `berth service …`: services across the cluster, with docker's flags and columns.

use std::collections::BTreeMap;

use berth_api::service::{
    ContainerSpec, EndpointSpec, NetworkAttachment, Placement, PortConfig, Replicated,
    RestartPolicy, Service, ServiceCreateResponse, ServiceMode, ServiceSpec, Task, TaskTemplate,
};
use berth_api::Filters;
use clap::Subcommand;
use serde_json::{json, Value};

use super::{enc, for_each};
use crate::api::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum ServiceCmd {
    /// Create a service: its tasks run on the cluster's nodes
    ///
    /// Example: berth service create --name web --replicas 3 --network app -- socat TCP-LISTEN:80,fork SYSTEM:hostname
    Create(Box<CreateArgs>),
    /// List services
    ///
    /// Example: berth service ls --format "{{.Name}} {{.Replicas}}"
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// List the tasks of one or more services
    ///
    /// Example: berth service ps web --filter desired-state=running
    Ps {
        #[arg(short, long = "filter")]
        filters: Vec<String>,
        #[arg(long)]
        format: Option<String>,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Display detailed information on one or more services
    ///
    /// Example: berth service inspect -f "{{.Spec.UpdateConfig.Order}}" web
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        services: Vec<String>,
    },
    /// Scale one or more replicated services: NAME=REPLICAS
    ///
    /// Example: berth service scale web=5
    Scale {
        #[arg(short, long)]
        detach: bool,
        #[arg(required = true)]
        pairs: Vec<String>,
    },
    /// Update a service: its tasks are replaced one at a time
    ///
    /// Example: berth service update --update-order start-first --env-add V=2 web
    Update(Box<UpdateCmd>),
    /// Revert a service to its spec before the last update
    ///
    /// Example: berth service rollback web
    Rollback {
        /// Return at once instead of waiting for the tasks to run
        #[arg(short, long)]
        detach: bool,
        service: String,
    },
    /// The logs of every task of a service, from every node
    ///
    /// Example: berth service logs -f web
    Logs {
        /// Keep following the logs
        #[arg(short, long)]
        follow: bool,
        service: String,
    },
    /// Remove one or more services
    ///
    /// Example: berth service rm web
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        services: Vec<String>,
    },
}

#[derive(clap::Args)]
pub struct UpdateCmd {
    #[arg(long = "env-add", value_name = "K=V")]
    env_add: Vec<String>,
    #[arg(long = "env-rm", value_name = "K")]
    env_rm: Vec<String>,
    #[arg(long = "constraint-add")]
    constraint_add: Vec<String>,
    #[arg(long = "constraint-rm")]
    constraint_rm: Vec<String>,
    /// Shown, not pulled
    #[arg(long)]
    image: Option<String>,
    #[arg(long)]
    replicas: Option<u64>,
    /// The command and its arguments, as one string split as a shell would
    #[arg(long)]
    args: Option<String>,
    /// Publish a port: [PUBLISHED:]TARGET[/PROTO] or published=P,target=T[,mode=host]
    #[arg(long = "publish-add", value_parser = clap::value_parser!(berth_ports::ServicePort))]
    publish_add: Vec<berth_ports::ServicePort>,
    /// Stop publishing a port: PUBLISHED[/PROTO]
    #[arg(long = "publish-rm")]
    publish_rm: Vec<String>,
    #[command(flatten)]
    update: UpdateArgs,
    /// Back to the spec before the last update (as `service rollback`)
    #[arg(long)]
    rollback: bool,
    /// Return at once instead of waiting for the tasks to run
    #[arg(short, long)]
    detach: bool,
    service: String,
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(long)]
    name: String,
    #[arg(long)]
    replicas: Option<u32>,
    /// replicated or global
    #[arg(long, default_value = "replicated")]
    mode: String,
    #[arg(long = "network")]
    networks: Vec<String>,
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// node.hostname==X, node.labels.K!=V, …
    #[arg(long = "constraint")]
    constraints: Vec<String>,
    #[arg(short, long = "label")]
    labels: Vec<String>,
    /// any, on-failure or none
    #[arg(long = "restart-condition")]
    restart_condition: Option<String>,
    /// Shown, not pulled (berth runs host programs)
    #[arg(long)]
    image: Option<String>,
    /// vip (one virtual IP per network) or dnsrr (the name answers every task)
    #[arg(long = "endpoint-mode")]
    endpoint_mode: Option<String>,
    /// The tasks' working directory
    #[arg(short = 'w', long)]
    workdir: Option<String>,
    #[command(flatten)]
    health: super::run::HealthArgs,
    #[command(flatten)]
    update: UpdateArgs,
    /// [PUBLISHED:]TARGET[/PROTO] or published=P,target=T[,protocol=udp][,mode=host]
    #[arg(short = 'p', long = "publish", value_parser = clap::value_parser!(berth_ports::ServicePort))]
    publish: Vec<berth_ports::ServicePort>,
    /// Return at once instead of waiting for the tasks to run
    #[arg(short, long)]
    detach: bool,
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

/// How a rolling update replaces the tasks.
#[derive(clap::Args, Default)]
pub(super) struct UpdateArgs {
    /// stop-first (default) or start-first: whether a new task starts before the old stops
    #[arg(long = "update-order")]
    order: Option<String>,
    /// Tasks replaced at once (0: all; default 1)
    #[arg(long = "update-parallelism")]
    parallelism: Option<u64>,
}

impl UpdateArgs {
    fn apply(self, to: &mut Option<berth_api::service::UpdateConfig>) {
        if self.order.is_none() && self.parallelism.is_none() {
            return;
        }
        let u = to.get_or_insert_with(|| berth_api::service::UpdateConfig {
            parallelism: 1,
            order: String::new(),
        });
        if let Some(o) = self.order {
            u.order = o;
        }
        if let Some(p) = self.parallelism {
            u.parallelism = p;
        }
    }
}

fn bad(message: String) -> ClientError {
    ClientError::Api {
        status: 400,
        message,
    }
}

/// docker's update: the spec as read, changed by `f`, sent back with the version it was read
/// at (a concurrent change makes it fail rather than be lost). The service's id.
async fn update_spec(
    c: &Client,
    name: &str,
    f: impl FnOnce(&mut ServiceSpec),
) -> Result<String, ClientError> {
    let s: Service = c.get_as(&format!("/services/{}", enc(name))).await?;
    let mut spec = s.spec.clone();
    f(&mut spec);
    let path = format!(
        "/services/{}/update?version={}",
        enc(&s.id),
        s.version.index
    );
    let _: Value = c.post_json(&path, &spec).await?;
    Ok(s.id)
}

/// docker's multiplexed stream to plain output: each frame's payload (8-byte headers:
/// the stream, three zeros, the length).
struct Demux<W: std::io::Write> {
    pending: Vec<u8>,
    out: W,
}

impl<W: std::io::Write> std::io::Write for Demux<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.pending.extend_from_slice(buf);
        while self.pending.len() >= 8 {
            let len = u32::from_be_bytes([
                self.pending[4],
                self.pending[5],
                self.pending[6],
                self.pending[7],
            ]) as usize;
            if self.pending.len() < 8 + len {
                break;
            }
            self.out.write_all(&self.pending[8..8 + len])?;
            self.pending.drain(..8 + len);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// docker's rollback: an update with `rollback=previous`.
async fn rollback_service(c: &Client, name: &str, detach: bool) -> Result<i32, ClientError> {
    let s: Service = c.get_as(&format!("/services/{}", enc(name))).await?;
    let path = format!(
        "/services/{}/update?version={}&rollback=previous",
        enc(&s.id),
        s.version.index
    );
    let _: Value = c.post_json(&path, &s.spec).await?;
    println!("{name}");
    println!("rollback: manually requested rollback");
    if !detach {
        converge(c, &s.id).await?;
    }
    Ok(0)
}

/// Waits (bounded) until the service runs as many tasks as it wants, printing the count
/// when it changes, as the docker CLI's progress does.
async fn converge(c: &Client, id: &str) -> Result<(), ClientError> {
    let mut last = None;
    for _ in 0..600 {
        let s: Service = c.get_as(&format!("/services/{}", enc(id))).await?;
        let st = s.service_status.unwrap_or_default();
        if last != Some(st.running_tasks) {
            println!("{}/{} running", st.running_tasks, st.desired_tasks);
            last = Some(st.running_tasks);
        }
        // After an update, also until no task of the older spec is left (docker's CLI).
        let rolling = s
            .update_status
            .as_ref()
            .is_some_and(|u| u.state == "updating");
        if st.running_tasks == st.desired_tasks && !rolling {
            println!("verify: Service {} converged", s.spec.name);
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Err(bad(format!(
        "service {id} did not converge within 60 s: see `berth service ps {id}`"
    )))
}

pub(super) async fn run(c: &Client, cmd: ServiceCmd) -> Result<i32, ClientError> {
    match cmd {
        ServiceCmd::Create(args) => {
            let CreateArgs {
                name,
                replicas,
                mode,
                networks,
                env,
                constraints,
                labels,
                restart_condition,
                image,
                endpoint_mode,
                workdir,
                health,
                update,
                publish,
                detach,
                cmd,
            } = *args;
            let mode = match mode.as_str() {
                "replicated" => ServiceMode {
                    replicated: Some(Replicated {
                        replicas: Some(u64::from(replicas.unwrap_or(1))),
                    }),
                    global: None,
                },
                "global" => ServiceMode {
                    replicated: None,
                    global: Some(Default::default()),
                },
                m => return Err(bad(format!("invalid mode {m:?}: use replicated or global"))),
            };
            let labels: BTreeMap<String, String> = labels
                .iter()
                .map(|l| {
                    let (k, v) = l.split_once('=').unwrap_or((l, ""));
                    (k.to_string(), v.to_string())
                })
                .collect();
            let spec = ServiceSpec {
                name,
                labels,
                task_template: TaskTemplate {
                    container_spec: ContainerSpec {
                        image: image.unwrap_or_default(),
                        command: cmd,
                        args: vec![],
                        env,
                        dir: workdir.unwrap_or_default(),
                        healthcheck: super::run::healthcheck(&health)?,
                    },
                    placement: Placement { constraints },
                    restart_policy: restart_condition.map(|condition| RestartPolicy { condition }),
                    networks: networks
                        .into_iter()
                        .map(|target| NetworkAttachment {
                            target,
                            aliases: vec![],
                        })
                        .collect(),
                },
                mode,
                endpoint_spec: (endpoint_mode.is_some() || !publish.is_empty()).then(|| {
                    EndpointSpec {
                        mode: endpoint_mode.unwrap_or_default(),
                        ports: publish
                            .iter()
                            .map(|p| PortConfig {
                                protocol: p.proto.as_str().into(),
                                target_port: p.target,
                                published_port: p.published,
                                publish_mode: p.mode.as_str().into(),
                            })
                            .collect(),
                    }
                }),
                update_config: None,
            };
            let mut spec = spec;
            update.apply(&mut spec.update_config);
            let r: ServiceCreateResponse = c.post_json("/services/create", &spec).await?;
            for w in &r.warnings {
                eprintln!("warning: {w}");
            }
            println!("{}", r.id);
            if !detach {
                converge(c, &r.id).await?;
            }
            Ok(0)
        }
        ServiceCmd::Ls { quiet, format } => {
            let services: Vec<Service> = c.get_as("/services").await?;
            if quiet {
                for s in &services {
                    println!("{}", s.id);
                }
                return Ok(0);
            }
            let rows: Vec<Value> = services
                .iter()
                .map(|s| {
                    let st = s.service_status.unwrap_or_default();
                    let mode = if s.spec.mode.global.is_some() {
                        "global"
                    } else {
                        "replicated"
                    };
                    json!({
                        "ID": &s.id[..s.id.len().min(12)],
                        "Name": s.spec.name,
                        "Mode": mode,
                        "Replicas": format!("{}/{}", st.running_tasks, st.desired_tasks),
                        "Image": s.spec.task_template.container_spec.image,
                        "Ports": s.endpoint.ports.iter().map(|p| format!("*:{}->{}/{}", p.published_port, p.target_port, p.protocol)).collect::<Vec<_>>().join(", "),
                    })
                })
                .collect();
            let template = format.unwrap_or_else(|| {
                "table {{.ID}}\t{{.Name}}\t{{.Mode}}\t{{.Replicas}}\t{{.Image}}\t{{.Ports}}".into()
            });
            let headers = [
                ("ID", "ID"),
                ("Name", "NAME"),
                ("Mode", "MODE"),
                ("Replicas", "REPLICAS"),
                ("Image", "IMAGE"),
                ("Ports", "PORTS"),
            ];
            Ok(super::output::print_list(&template, &rows, &headers))
        }
        ServiceCmd::Ps {
            filters,
            format,
            services,
        } => {
            let mut f = Filters::from_flags(&filters).map_err(|e| bad(e.to_string()))?;
            for s in &services {
                f = f.with("service", s);
            }
            let tasks: Vec<Task> = c
                .get_as(&format!("/tasks?filters={}", enc(&f.to_json())))
                .await?;
            let all: Vec<Service> = c.get_as("/services").await?;
            let nodes: Vec<berth_api::node::Node> = c.get_as("/nodes").await?;
            let rows: Vec<Value> = tasks
                .iter()
                .map(|t| {
                    let svc = all
                        .iter()
                        .find(|s| s.id == t.service_id)
                        .map_or(t.service_id.clone(), |s| s.spec.name.clone());
                    let node = nodes
                        .iter()
                        .find(|n| n.id == t.node_id)
                        .map_or(t.node_id.clone(), |n| n.description.hostname.clone());
                    let name = if t.slot == 0 {
                        format!("{svc}.{}", &t.node_id[..t.node_id.len().min(10)])
                    } else {
                        format!("{svc}.{}", t.slot)
                    };
                    json!({
                        "ID": &t.id[..t.id.len().min(12)],
                        "Name": name,
                        "Image": t.spec.container_spec.image,
                        "Node": node,
                        "DesiredState": "Running",
                        "CurrentState": super::node::capital(&t.status.state),
                        "Error": t.status.err,
                        "Ports": "",
                    })
                })
                .collect();
            let template = format.unwrap_or_else(|| {
                "table {{.ID}}\t{{.Name}}\t{{.Image}}\t{{.Node}}\t{{.DesiredState}}\t{{.CurrentState}}\t{{.Error}}\t{{.Ports}}".into()
            });
            let headers = [
                ("ID", "ID"),
                ("Name", "NAME"),
                ("Image", "IMAGE"),
                ("Node", "NODE"),
                ("DesiredState", "DESIRED STATE"),
                ("CurrentState", "CURRENT STATE"),
                ("Error", "ERROR"),
                ("Ports", "PORTS"),
            ];
            Ok(super::output::print_list(&template, &rows, &headers))
        }
        ServiceCmd::Inspect {
            format, services, ..
        } => super::inspect_each(c, "/services", &services, &format).await,
        ServiceCmd::Scale { detach, pairs } => {
            for p in &pairs {
                let (name, n) = p
                    .split_once('=')
                    .and_then(|(s, n)| Some((s, n.parse::<u64>().ok()?)))
                    .ok_or_else(|| {
                        bad(format!("invalid scale specifier {p:?}: use NAME=REPLICAS"))
                    })?;
                let id = update_spec(c, name, |spec| {
                    spec.mode.replicated = Some(Replicated { replicas: Some(n) });
                })
                .await?;
                println!("{name} scaled to {n}");
                if !detach {
                    converge(c, &id).await?;
                }
            }
            Ok(0)
        }
        ServiceCmd::Update(args) => {
            let UpdateCmd {
                env_add,
                env_rm,
                constraint_add,
                constraint_rm,
                image,
                replicas,
                args,
                publish_add,
                publish_rm,
                update,
                rollback,
                detach,
                service,
            } = *args;
            if rollback {
                return rollback_service(c, &service, detach).await;
            }
            let args = args
                .map(|a| {
                    shlex::split(&a).filter(|v| !v.is_empty()).ok_or_else(|| {
                        bad(format!("--args {a:?}: no command, or unbalanced quotes"))
                    })
                })
                .transpose()?;
            let rm: Vec<(u16, String)> = publish_rm
                .iter()
                .map(|p| {
                    let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
                    port.parse::<u16>()
                        .map(|n| (n, proto.to_string()))
                        .map_err(|_| bad(format!("--publish-rm {p:?}: use PUBLISHED[/PROTO]")))
                })
                .collect::<Result<_, _>>()?;
            let id = update_spec(c, &service, |spec| {
                update.apply(&mut spec.update_config);
                if let Some(a) = args {
                    spec.task_template.container_spec.command = a;
                    spec.task_template.container_spec.args.clear();
                }
                if !publish_add.is_empty() || !rm.is_empty() {
                    let e = spec.endpoint_spec.get_or_insert_with(Default::default);
                    e.ports
                        .retain(|p| !rm.contains(&(p.published_port, p.protocol.clone())));
                    for p in &publish_add {
                        e.ports.retain(|q| {
                            (q.published_port, q.protocol.as_str())
                                != (p.published, p.proto.as_str())
                        });
                        e.ports.push(PortConfig {
                            protocol: p.proto.as_str().into(),
                            target_port: p.target,
                            published_port: p.published,
                            publish_mode: p.mode.as_str().into(),
                        });
                    }
                }
                let cs = &mut spec.task_template.container_spec;
                let key = |e: &str| e.split('=').next().unwrap_or_default().to_string();
                for e in &env_add {
                    cs.env.retain(|x| key(x) != key(e));
                    cs.env.push(e.clone());
                }
                cs.env.retain(|x| !env_rm.contains(&key(x)));
                if let Some(i) = image {
                    cs.image = i;
                }
                let k = &mut spec.task_template.placement.constraints;
                k.retain(|x| !constraint_rm.contains(x));
                k.extend(constraint_add);
                if let Some(n) = replicas {
                    spec.mode.replicated = Some(Replicated { replicas: Some(n) });
                }
            })
            .await?;
            println!("{service}");
            if !detach {
                converge(c, &id).await?;
            }
            Ok(0)
        }
        ServiceCmd::Rollback { detach, service } => rollback_service(c, &service, detach).await,
        ServiceCmd::Logs { follow, service } => {
            let path = format!(
                "/services/{}/logs?stdout=1&stderr=1&follow={}",
                enc(&service),
                u8::from(follow)
            );
            let mut out = Demux {
                pending: Vec::new(),
                out: std::io::stdout(),
            };
            c.stream(&path, &mut out).await?;
            Ok(0)
        }
        ServiceCmd::Rm { services } => {
            for_each(&services, |s| async move {
                c.delete(&format!("/services/{}", enc(&s))).await?;
                println!("{s}");
                Ok(())
            })
            .await
        }
    }
}
