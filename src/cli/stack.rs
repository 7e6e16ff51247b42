//! `berth stack …`: a Compose file's services as cluster services (docker's `stack`
//! commands): `deploy -c FILE NAME` makes or updates the stack's overlay networks and
//! services (`crates/compose`'s stack planner) and removes the stack's services the file no
//! longer has; `ls`, `services`, `ps` and `rm` find a stack's services and networks by
//! docker's `com.docker.stack.namespace` label.

use std::collections::BTreeMap;

use berth_api::service::{Service, ServiceCreateResponse, Task};
use berth_api::Filters;
use berth_compose::stack::NAMESPACE;
use clap::Subcommand;
use serde_json::{json, Value};

use super::enc;
use crate::api::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum StackCmd {
    /// Deploy a new stack or update an existing one from a Compose file
    ///
    /// Example: berth stack deploy -c examples/seed-cluster/compose.yaml seed
    Deploy {
        /// The Compose file(s)
        #[arg(short = 'c', long = "compose-file", required = true)]
        files: Vec<std::path::PathBuf>,
        name: String,
    },
    /// List stacks
    ///
    /// Example: berth stack ls
    #[command(alias = "list")]
    Ls,
    /// List the services of a stack
    ///
    /// Example: berth stack services seed
    Services { name: String },
    /// List the tasks of a stack
    ///
    /// Example: berth stack ps seed
    Ps { name: String },
    /// Remove a stack: its services and its networks
    ///
    /// Example: berth stack rm seed
    #[command(alias = "remove")]
    Rm { name: String },
}

fn bad(message: String) -> ClientError {
    ClientError::Api {
        status: 400,
        message,
    }
}

fn of(stack: &str) -> impl Fn(&&Service) -> bool + '_ {
    move |s| s.spec.labels.get(NAMESPACE).map(String::as_str) == Some(stack)
}

async fn deploy(c: &Client, files: &[std::path::PathBuf], name: &str) -> Result<i32, ClientError> {
    if !crate::model::valid_name(name) {
        return Err(bad(format!("invalid stack name {name:?}")));
    }
    let project = super::compose_load::load_project(files, Some(name.to_string()), None, true)?;
    let plan = berth_compose::stack::plan(&project, name).map_err(|e| bad(e.to_string()))?;
    for w in &plan.warnings {
        eprintln!("WARN {w}");
    }
    for n in &plan.networks {
        match c.get(&format!("/networks/{}", enc(&n.name))).await {
            Ok(_) => {}
            Err(ClientError::Api { status: 404, .. }) if n.external => {
                return Err(bad(format!("external network {} not found", n.name)));
            }
            Err(ClientError::Api { status: 404, .. }) => {
                println!("Creating network {}", n.name);
                let _: Value = c
                    .post_json(
                        "/networks/create",
                        &json!({"Name": n.name, "Driver": "overlay", "Attachable": true,
                                "Internal": n.internal, "Labels": {NAMESPACE: name}}),
                    )
                    .await?;
            }
            Err(e) => return Err(e),
        }
    }
    let existing: Vec<Service> = c.get_as("/services").await?;
    for spec in &plan.services {
        match existing.iter().find(|s| s.spec.name == spec.name) {
            None => {
                println!("Creating service {}", spec.name);
                let _: ServiceCreateResponse = c.post_json("/services/create", spec).await?;
            }
            Some(s) if !of(name)(&s) => {
                return Err(bad(format!(
                    "service {} exists and is not part of stack {name}",
                    spec.name
                )));
            }
            Some(s) => {
                println!("Updating service {}", spec.name);
                let ports = |x: &berth_api::service::ServiceSpec| {
                    x.endpoint_spec
                        .as_ref()
                        .map(|e| e.ports.clone())
                        .unwrap_or_default()
                };
                if ports(&s.spec) != ports(spec) {
                    // A service's published ports are fixed at create.
                    c.delete(&format!("/services/{}", enc(&s.id))).await?;
                    let _: ServiceCreateResponse = c.post_json("/services/create", spec).await?;
                    continue;
                }
                let path = format!(
                    "/services/{}/update?version={}",
                    enc(&s.id),
                    s.version.index
                );
                let _: Value = c.post_json(&path, spec).await?;
            }
        }
    }
    for s in existing.iter().filter(of(name)) {
        if !plan.services.iter().any(|p| p.name == s.spec.name) {
            println!("Removing service {}", s.spec.name);
            c.delete(&format!("/services/{}", enc(&s.id))).await?;
        }
    }
    Ok(0)
}

pub(super) async fn run(c: &Client, cmd: StackCmd) -> Result<i32, ClientError> {
    match cmd {
        StackCmd::Deploy { files, name } => deploy(c, &files, &name).await,
        StackCmd::Ls => {
            let services: Vec<Service> = c.get_as("/services").await?;
            let mut stacks: BTreeMap<String, usize> = BTreeMap::new();
            for s in &services {
                if let Some(n) = s.spec.labels.get(NAMESPACE) {
                    *stacks.entry(n.clone()).or_default() += 1;
                }
            }
            println!("{:<20}SERVICES", "NAME");
            for (n, k) in stacks {
                println!("{n:<20}{k}");
            }
            Ok(0)
        }
        StackCmd::Services { name } => {
            let services: Vec<Service> = c.get_as("/services").await?;
            let mine: Vec<&Service> = services.iter().filter(of(&name)).collect();
            if mine.is_empty() {
                return Err(bad(format!("nothing found in stack: {name}")));
            }
            println!("{:<27}{:<24}{:<12}PORTS", "ID", "NAME", "REPLICAS");
            for s in mine {
                let st = s.service_status.unwrap_or_default();
                let ports: Vec<String> = s
                    .endpoint
                    .ports
                    .iter()
                    .map(|p| format!("*:{}->{}/{}", p.published_port, p.target_port, p.protocol))
                    .collect();
                println!(
                    "{:<27}{:<24}{:<12}{}",
                    &s.id,
                    s.spec.name,
                    format!("{}/{}", st.running_tasks, st.desired_tasks),
                    ports.join(", ")
                );
            }
            Ok(0)
        }
        StackCmd::Ps { name } => {
            let services: Vec<Service> = c.get_as("/services").await?;
            let nodes: Vec<berth_api::node::Node> = c.get_as("/nodes").await?;
            println!("{:<27}{:<28}{:<10}CURRENT STATE", "ID", "NAME", "NODE");
            for s in services.iter().filter(of(&name)) {
                let f = Filters::default().with("service", &s.spec.name);
                let tasks: Vec<Task> = c
                    .get_as(&format!("/tasks?filters={}", enc(&f.to_json())))
                    .await?;
                for t in tasks {
                    let node = nodes
                        .iter()
                        .find(|n| n.id == t.node_id)
                        .map_or(t.node_id.clone(), |n| n.description.hostname.clone());
                    println!(
                        "{:<27}{:<28}{:<10}{}",
                        t.id,
                        format!("{}.{}", s.spec.name, t.slot),
                        node,
                        super::node::capital(&t.status.state)
                    );
                }
            }
            Ok(0)
        }
        StackCmd::Rm { name } => {
            let services: Vec<Service> = c.get_as("/services").await?;
            let mine: Vec<&Service> = services.iter().filter(of(&name)).collect();
            for s in &mine {
                println!("Removing service {}", s.spec.name);
                c.delete(&format!("/services/{}", enc(&s.id))).await?;
            }
            let f = Filters::default().with("label", &format!("{NAMESPACE}={name}"));
            let nets: Vec<Value> = c
                .get_as(&format!("/networks?filters={}", enc(&f.to_json())))
                .await?;
            for n in &nets {
                let id = n["Name"].as_str().unwrap_or_default();
                println!("Removing network {id}");
                // The tasks' endpoints leave with their containers, 2 s after the service.
                let mut last = None;
                for _ in 0..100 {
                    match c.delete(&format!("/networks/{}", enc(id))).await {
                        Ok(()) => {
                            last = None;
                            break;
                        }
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                if let Some(e) = last {
                    return Err(e);
                }
            }
            if mine.is_empty() && nets.is_empty() {
                return Err(bad(format!("nothing found in stack: {name}")));
            }
            Ok(0)
        }
    }
}
