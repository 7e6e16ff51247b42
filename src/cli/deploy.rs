//! `berth deploy DEPLOYMENT.yml APPLICATION.yml`: Flocker's files (seed 000) carried out
//! on the cluster. `crates/deploy` plans one service per placed application; this converges
//! the cluster to the plan through the API: services made, moved (their node's constraint
//! updated, start-first, so their ports keep answering everywhere during the move) or
//! removed (those an earlier deploy made that the files no longer place), then waits until
//! every application runs on its node. The files are checked in full before anything
//! changes.

use std::time::Duration;

use berth_api::service::{Service, ServiceCreateResponse, Task};
use berth_api::Filters;
use serde_json::{json, Value};

use super::enc;
use crate::api::client::{Client, ClientError};

/// The overlay network the applications share (made by the first deploy).
const NETWORK: &str = "flocker";

#[derive(clap::Args)]
pub struct DeployArgs {
    /// Flocker's deployment file: which node runs which application
    deployment: std::path::PathBuf,
    /// Flocker's application file: what each application runs (berth's `command:` key
    /// gives the program)
    application: std::path::PathBuf,
    /// Return once the services are changed, without waiting for the tasks
    #[arg(short, long)]
    detach: bool,
}

fn bad(message: String) -> ClientError {
    ClientError::Api {
        status: 400,
        message,
    }
}

fn read(p: &std::path::Path) -> Result<(String, String), ClientError> {
    let text =
        std::fs::read_to_string(p).map_err(|e| bad(format!("cannot read {}: {e}", p.display())))?;
    Ok((p.display().to_string(), text))
}

pub(super) async fn run(c: &Client, a: DeployArgs) -> Result<i32, ClientError> {
    let (dfile, dtext) = read(&a.deployment)?;
    let (afile, atext) = read(&a.application)?;
    let nodes: Vec<berth_api::node::Node> = c.get_as("/nodes").await?;
    let nodes: Vec<berth_deploy::Node> = nodes
        .iter()
        .map(|n| berth_deploy::Node {
            name: n.description.hostname.clone(),
            addr: n.status.addr.clone(),
        })
        .collect();
    let plan = |gw: &str| {
        berth_deploy::plan((&dfile, &dtext), (&afile, &atext), &nodes, NETWORK, gw)
            .map_err(|e| bad(e.to_string()))
    };
    // Checked before anything changes; planned again with the network's gateway.
    plan("0.0.0.0")?;
    let net: Value = match c.get(&format!("/networks/{NETWORK}")).await {
        Ok(n) => n,
        Err(ClientError::Api { status: 404, .. }) => {
            let _: Value = c
                .post_json(
                    "/networks/create",
                    &json!({"Name": NETWORK, "Driver": "overlay", "Attachable": true}),
                )
                .await?;
            c.get(&format!("/networks/{NETWORK}")).await?
        }
        Err(e) => return Err(e),
    };
    let gateway = net["IPAM"]["Config"][0]["Gateway"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let plan = plan(&gateway)?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let existing: Vec<Service> = c.get_as("/services").await?;
    let ours = |s: &&Service| {
        s.spec.labels.get(berth_deploy::LABEL).map(String::as_str)
            == Some(berth_deploy::LABEL_VALUE)
    };
    for p in &plan.services {
        let name = &p.spec.name;
        match existing.iter().find(|s| &s.spec.name == name) {
            None => {
                let _: ServiceCreateResponse = c.post_json("/services/create", &p.spec).await?;
                println!("{name}: started on {}", p.node);
            }
            Some(s) if !ours(&s) => {
                return Err(bad(format!(
                    "service {name} exists and was not made by berth deploy: remove or rename it"
                )));
            }
            Some(s) => {
                let ports = |x: &berth_api::service::ServiceSpec| {
                    x.endpoint_spec
                        .as_ref()
                        .map(|e| e.ports.clone())
                        .unwrap_or_default()
                };
                if ports(&s.spec) != ports(&p.spec) {
                    // A service's published ports are fixed at create.
                    c.delete(&format!("/services/{}", enc(&s.id))).await?;
                    let _: ServiceCreateResponse = c.post_json("/services/create", &p.spec).await?;
                    println!("{name}: started again on {} (its ports changed)", p.node);
                    continue;
                }
                let was = s.spec.task_template.placement.constraints.clone();
                let path = format!(
                    "/services/{}/update?version={}",
                    enc(&s.id),
                    s.version.index
                );
                let _: Value = c.post_json(&path, &p.spec).await?;
                if was != p.spec.task_template.placement.constraints {
                    println!("{name}: moving to {}", p.node);
                } else {
                    println!("{name}: on {}", p.node);
                }
            }
        }
    }
    for s in existing.iter().filter(ours) {
        if !plan.services.iter().any(|p| p.spec.name == s.spec.name) {
            c.delete(&format!("/services/{}", enc(&s.id))).await?;
            println!("{}: stopped (no node runs it)", s.spec.name);
        }
    }
    if a.detach {
        return Ok(0);
    }
    let ids: Vec<berth_api::node::Node> = c.get_as("/nodes").await?;
    for _ in 0..600 {
        let mut done = true;
        for p in &plan.services {
            let f = Filters::default().with("service", &p.spec.name);
            let tasks: Vec<Task> = c
                .get_as(&format!("/tasks?filters={}", enc(&f.to_json())))
                .await?;
            let on = |t: &Task| {
                ids.iter()
                    .find(|n| n.id == t.node_id)
                    .is_some_and(|n| n.description.hostname == p.node)
            };
            // Its one task runs on its node, and nothing else of it is left.
            done &= tasks.len() == 1 && tasks.iter().all(|t| on(t) && t.status.state == "running");
        }
        if done {
            println!("deployed: {} applications", plan.services.len());
            return Ok(0);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(bad(
        "the applications did not all run on their nodes within 60 s: see `berth service ps`"
            .into(),
    ))
}
