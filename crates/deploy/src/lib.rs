//! Flocker's two files (seed 000): the application file says what each application runs,
//! the deployment file which node runs which application. `plan` turns them into one berth
//! service per placed application: one task, constrained to its node, its `external` ports
//! published in ingress mode (so they answer on every node, as Flocker promised: "an
//! application is reachable on all nodes in the cluster, no matter where it is currently
//! located"), on one overlay network, updated start-first so that a move keeps the ports
//! answering. Pure: the caller reads the files, lists the nodes and carries the plan out.
//!
//! ```yaml
//! # application.yml                       # deployment.yml
//! version: 1                              version: 1
//! applications:                           nodes:
//!   mongodb-port-example:                   172.16.255.250: [mongodb-port-example]
//!     image: clusterhq/mongodb              172.16.255.251: []
//!     command: mongod --bind_ip_all
//!     ports: [{internal: 27017, external: 27017}]
//! ```
//!
//! Flocker's keys: `image`, `ports`, `environment`, `links`, `restart_policy`; berth's own:
//! `command` (berth runs host programs; the image is shown, not pulled). Any other key is
//! an error with its line and column, and nothing is planned.

use std::collections::BTreeMap;

use berth_api::service::{
    ContainerSpec, EndpointSpec, NetworkAttachment, Placement, PortConfig, Replicated,
    RestartPolicy, ServiceMode, ServiceSpec, TaskTemplate, UpdateConfig,
};
use indexmap::IndexMap;
use serde::Deserialize;

/// The label that marks a service as made by `berth deploy` (and so removed by it when the
/// files no longer place its application).
pub const LABEL: &str = "berth.deploy";
/// The label's value: the files' format.
pub const LABEL_VALUE: &str = "flocker";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("{file}: line {line}, column {column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplicationFile {
    version: u32,
    #[serde(default)]
    applications: IndexMap<String, Application>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Application {
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    command: Option<Command>,
    #[serde(default)]
    ports: Vec<Port>,
    #[serde(default)]
    environment: IndexMap<String, Scalar>,
    #[serde(default)]
    links: Vec<Link>,
    #[serde(default)]
    restart_policy: Option<Restart>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Command {
    Line(String),
    Args(Vec<String>),
}

/// An environment value: YAML gives numbers and booleans their own types.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::S(s) => s.clone(),
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Port {
    internal: u16,
    external: u16,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Link {
    local_port: u16,
    remote_port: u16,
    alias: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Restart {
    name: String,
    #[serde(default)]
    maximum_retry_count: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentFile {
    version: u32,
    #[serde(default)]
    nodes: IndexMap<String, Vec<String>>,
}

/// A cluster node as the deployment file may name it: by name or by address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub name: String,
    pub addr: String,
}

/// What the files ask: a service spec per placed application, in the application file's
/// order, and warnings for what berth does not carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub services: Vec<Placed>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placed {
    pub node: String,
    pub spec: ServiceSpec,
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, text: &str) -> Result<T, Error> {
    serde_yaml_ng::from_str(text).map_err(|e| {
        let (line, column) = e
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        Error::Syntax {
            file: file.to_string(),
            line,
            column,
            message: e.to_string(),
        }
    })
}

/// Plans the files. `deployment` and `application` are (path, text); `network` the
/// overlay the applications share and `gateway` its gateway address (the address a link
/// reaches: the mesh answers on every node's addresses, the gateway among them, so it is
/// the same on every node).
pub fn plan(
    deployment: (&str, &str),
    application: (&str, &str),
    nodes: &[Node],
    network: &str,
    gateway: &str,
) -> Result<Plan, Error> {
    let (dfile, dtext) = deployment;
    let (afile, atext) = application;
    let apps: ApplicationFile = parse(afile, atext)?;
    let dep: DeploymentFile = parse(dfile, dtext)?;
    let invalid = |file: &str, message: String| Error::Invalid {
        file: file.to_string(),
        message,
    };
    for (f, v) in [(afile, apps.version), (dfile, dep.version)] {
        if v != 1 {
            return Err(invalid(f, format!("version {v}: only version 1 is known")));
        }
    }
    // Which node runs each application.
    let mut placed: BTreeMap<&str, &Node> = BTreeMap::new();
    for (key, names) in &dep.nodes {
        let node = nodes
            .iter()
            .find(|n| &n.name == key || &n.addr == key)
            .ok_or_else(|| {
                let known: Vec<String> = nodes
                    .iter()
                    .map(|n| format!("{} ({})", n.name, n.addr))
                    .collect();
                invalid(
                    dfile,
                    format!(
                        "node {key:?} is not in the cluster (its nodes: {})",
                        known.join(", ")
                    ),
                )
            })?;
        for a in names {
            if !apps.applications.contains_key(a) {
                return Err(invalid(
                    dfile,
                    format!("node {key}: application {a:?} is not in {afile}"),
                ));
            }
            if let Some(other) = placed.insert(a, node) {
                return Err(invalid(
                    dfile,
                    format!(
                        "application {a:?} is placed twice ({} and {key})",
                        other.name
                    ),
                ));
            }
        }
    }
    // Which application publishes each external port (links name ports, not applications).
    let mut external: BTreeMap<u16, &str> = BTreeMap::new();
    for (name, a) in &apps.applications {
        for p in &a.ports {
            if let Some(other) = external.insert(p.external, name) {
                return Err(invalid(
                    afile,
                    format!(
                        "external port {} is published by {other} and by {name}",
                        p.external
                    ),
                ));
            }
        }
    }
    let mut warnings = Vec::new();
    let mut services = Vec::new();
    for (name, a) in &apps.applications {
        let Some(node) = placed.get(name.as_str()) else {
            continue;
        };
        let command = match &a.command {
            Some(Command::Line(l)) => shlex::split(l).ok_or_else(|| {
                invalid(
                    afile,
                    format!("{name}: command {l:?} has unbalanced quotes"),
                )
            })?,
            Some(Command::Args(v)) => v.clone(),
            None => vec![],
        };
        if command.is_empty() {
            return Err(invalid(
                afile,
                format!(
                    "{name}: berth runs host programs, not images: give the program in `command:`"
                ),
            ));
        }
        if let Some(i) = &a.image {
            warnings.push(format!(
                "{name}: image {i} is not pulled: berth runs `{}` on the node's filesystem",
                command.join(" ")
            ));
        }
        let mut env: Vec<String> = a
            .environment
            .iter()
            .map(|(k, v)| format!("{k}={}", v.text()))
            .collect();
        for l in &a.links {
            if !external.contains_key(&l.remote_port) {
                return Err(invalid(
                    afile,
                    format!(
                        "{name}: link {}: no application publishes external port {}",
                        l.alias, l.remote_port
                    ),
                ));
            }
            // Docker's link variables, as Flocker set them.
            let v = format!("{}_PORT_{}_TCP", l.alias.to_uppercase(), l.local_port);
            env.push(format!("{v}=tcp://{gateway}:{}", l.remote_port));
            env.push(format!("{v}_PROTO=tcp"));
            env.push(format!("{v}_ADDR={gateway}"));
            env.push(format!("{v}_PORT={}", l.remote_port));
        }
        let restart = match &a.restart_policy {
            None => None,
            Some(r) => {
                if r.maximum_retry_count.is_some() {
                    warnings.push(format!(
                        "{name}: maximum_retry_count is not kept: a failed task is replaced every time"
                    ));
                }
                Some(match r.name.as_str() {
                    "never" => "none",
                    "always" => "any",
                    "on-failure" => "on-failure",
                    o => {
                        return Err(invalid(
                            afile,
                            format!(
                                "{name}: restart_policy {o:?}: use never, always or on-failure"
                            ),
                        ))
                    }
                })
            }
        };
        let mut labels = BTreeMap::new();
        labels.insert(LABEL.to_string(), LABEL_VALUE.to_string());
        services.push(Placed {
            node: node.name.clone(),
            spec: ServiceSpec {
                name: name.clone(),
                labels,
                task_template: TaskTemplate {
                    container_spec: ContainerSpec {
                        image: a.image.clone().unwrap_or_default(),
                        command,
                        args: vec![],
                        env,
                        dir: String::new(),
                        healthcheck: None,
                    },
                    placement: Placement {
                        constraints: vec![format!("node.hostname=={}", node.name)],
                    },
                    restart_policy: restart.map(|c| RestartPolicy {
                        condition: c.into(),
                    }),
                    networks: vec![NetworkAttachment {
                        target: network.to_string(),
                        aliases: vec![],
                    }],
                },
                mode: ServiceMode {
                    replicated: Some(Replicated { replicas: Some(1) }),
                    global: None,
                },
                endpoint_spec: Some(EndpointSpec {
                    mode: "vip".into(),
                    ports: a
                        .ports
                        .iter()
                        .map(|p| PortConfig {
                            protocol: "tcp".into(),
                            target_port: p.internal,
                            published_port: p.external,
                            publish_mode: "ingress".into(),
                        })
                        .collect(),
                }),
                update_config: Some(UpdateConfig {
                    parallelism: 1,
                    order: "start-first".into(),
                }),
            },
        });
    }
    Ok(Plan { services, warnings })
}

#[cfg(test)]
mod tests;
