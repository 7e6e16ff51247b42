//! `berth node …`: the cluster's nodes, with docker's columns and flags.

use std::collections::BTreeMap;

use berth_api::node::{Node, NodeSpec};
use clap::Subcommand;
use serde_json::{json, Value};

use super::output::natural_cmp;
use super::{enc, for_each};
use crate::api::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum NodeCmd {
    /// List the nodes of the cluster
    ///
    /// Example: berth node ls --format "{{.Hostname}} {{.Status}}"
    #[command(alias = "list")]
    Ls {
        #[arg(short, long)]
        quiet: bool,
        #[arg(long)]
        format: Option<String>,
    },
    /// Display detailed information on one or more nodes
    ///
    /// Example: berth node inspect --pretty n12
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(long)]
        pretty: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Update a node's availability or labels
    ///
    /// Example: berth node update --availability drain --label-add disk=ssd n12
    Update {
        /// active, pause or drain
        #[arg(long)]
        availability: Option<String>,
        #[arg(long = "label-add", value_name = "KEY=VALUE")]
        label_add: Vec<String>,
        #[arg(long = "label-rm", value_name = "KEY")]
        label_rm: Vec<String>,
        node: String,
    },
    /// Remove one or more nodes from the cluster
    ///
    /// Example: berth node rm --force n13
    #[command(alias = "remove")]
    Rm {
        /// Also a node that is still Ready
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        nodes: Vec<String>,
    },
}

pub(super) fn capital(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

pub(super) async fn run(c: &Client, cmd: NodeCmd) -> Result<i32, ClientError> {
    match cmd {
        NodeCmd::Ls { quiet, format } => {
            let mut nodes: Vec<Node> = c.get_as("/nodes").await?;
            nodes.sort_by(|a, b| natural_cmp(&a.description.hostname, &b.description.hostname));
            if quiet {
                for n in &nodes {
                    println!("{}", n.id);
                }
                return Ok(0);
            }
            let me = c
                .get("/info")
                .await?
                .pointer("/Swarm/NodeID")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let rows: Vec<Value> = nodes
                .iter()
                .map(|n| {
                    json!({
                        "ID": n.id,
                        "Self": n.id == me,
                        "Hostname": n.description.hostname,
                        "Status": capital(&n.status.state),
                        "Availability": capital(&n.spec.availability),
                        "ManagerStatus": match &n.manager_status {
                            Some(m) if m.leader => "Leader",
                            Some(m) if m.reachability == "reachable" => "Reachable",
                            Some(_) => "Unreachable",
                            None => "",
                        },
                        "EngineVersion": n.description.engine.engine_version,
                        "Addr": n.status.addr,
                    })
                })
                .collect();
            // docker marks the node it asks with " *" after the ID.
            let template = format.unwrap_or_else(|| {
                "table {{.ID}}{{if .Self}} *{{end}}\t{{.Hostname}}\t{{.Status}}\t{{.Availability}}\t{{.ManagerStatus}}\t{{.EngineVersion}}".into()
            });
            let headers = [
                ("ID", "ID"),
                ("Hostname", "HOSTNAME"),
                ("Status", "STATUS"),
                ("Availability", "AVAILABILITY"),
                ("ManagerStatus", "MANAGER STATUS"),
                ("EngineVersion", "ENGINE VERSION"),
                ("Addr", "ADDRESS"),
            ];
            Ok(super::output::print_list(&template, &rows, &headers))
        }
        NodeCmd::Inspect { format, nodes, .. } => {
            super::inspect_each(c, "/nodes", &nodes, &format).await
        }
        NodeCmd::Update {
            availability,
            label_add,
            label_rm,
            node,
        } => {
            let n: Node = c.get_as(&format!("/nodes/{}", enc(&node))).await?;
            let mut labels: BTreeMap<String, String> = n.spec.labels.clone();
            for l in &label_add {
                let (k, v) = l.split_once('=').unwrap_or((l, ""));
                labels.insert(k.to_string(), v.to_string());
            }
            for k in &label_rm {
                if labels.remove(k).is_none() {
                    return Err(ClientError::Api {
                        status: 400,
                        message: format!("key {k} doesn't exist in node's labels"),
                    });
                }
            }
            let spec = NodeSpec {
                labels,
                role: n.spec.role.clone(),
                availability: availability.unwrap_or(n.spec.availability.clone()),
            };
            let path = format!("/nodes/{}/update?version={}", enc(&n.id), n.version.index);
            let _: Value = c.post_json(&path, &spec).await?;
            println!("{node}");
            Ok(0)
        }
        NodeCmd::Rm { force, nodes } => {
            for_each(&nodes, |n| async move {
                let q = if force { "?force=1" } else { "" };
                c.delete(&format!("/nodes/{}{q}", enc(&n))).await?;
                println!("{n}");
                Ok(())
            })
            .await
        }
    }
}
