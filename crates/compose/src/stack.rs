//! `berth stack deploy`: a Compose project as cluster services (docker's `stack deploy`).
//! Each Compose service becomes the service `STACK_NAME`, attached to the stack's overlay
//! networks with its short name as an alias there (so `web:5000` in a sibling's config
//! finds it, as in Compose), with `deploy:`'s replicas, mode, constraints, update order
//! and endpoint mode; ports in ingress mode unless the long syntax says `mode: host`.
//! Compose keys that mean nothing for a service spread over nodes (`depends_on`, `links`,
//! `expose`, …) are warned about.

use std::collections::BTreeMap;

use berth_api::container::Healthcheck;
use berth_api::service::{
    ContainerSpec, EndpointSpec, NetworkAttachment, Placement, PortConfig, Replicated,
    RestartPolicy, ServiceMode, ServiceSpec, TaskTemplate, UpdateConfig,
};

use crate::{Error, Project};

/// The label docker puts on a stack's services and networks.
pub const NAMESPACE: &str = "com.docker.stack.namespace";

/// A network the stack needs: made as an attachable overlay unless external.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackNetwork {
    pub name: String,
    pub internal: bool,
    pub external: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct StackPlan {
    pub networks: Vec<StackNetwork>,
    pub services: Vec<ServiceSpec>,
    pub warnings: Vec<String>,
}

/// docker's restart condition for a Compose `restart:`.
fn condition(restart: Option<&str>) -> &'static str {
    match restart {
        Some("no") => "none",
        Some(r) if r.starts_with("on-failure") => "on-failure",
        _ => "any",
    }
}

fn port(service: &str, p: &crate::model::Port) -> Result<PortConfig, Error> {
    let bad = |why: &str| Error::Invalid(format!("services.{service}.ports: {}: {why}", p.spec()));
    let target: u16 = p
        .target
        .parse()
        .map_err(|_| bad("a service publishes single ports"))?;
    let published: u16 = if p.published.is_empty() {
        return Err(bad(
            "give the published port (stack services get no random port)",
        ));
    } else {
        p.published
            .parse()
            .map_err(|_| bad("a service publishes single ports"))?
    };
    if !p.host_ip.is_empty() {
        return Err(bad(
            "a service's port answers on every address of every node",
        ));
    }
    Ok(PortConfig {
        protocol: if p.protocol.is_empty() {
            "tcp".into()
        } else {
            p.protocol.clone()
        },
        target_port: target,
        published_port: published,
        publish_mode: "ingress".into(),
    })
}

pub fn plan(project: &Project, stack: &str) -> Result<StackPlan, Error> {
    let mut warnings = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    let mut services = Vec::new();
    // Dependencies first (a proxy that resolves its upstream's name at start finds it).
    let mut order: Vec<&String> = Vec::new();
    while order.len() < project.services.len() {
        let before = order.len();
        for (name, s) in &project.services {
            if !order.contains(&name) && s.depends_on.keys().all(|d| order.contains(&d)) {
                order.push(name);
            }
        }
        if order.len() == before {
            // A cycle (the loader refuses them): the rest in file order.
            order.extend(
                project
                    .services
                    .keys()
                    .filter(|n| !order.contains(n))
                    .collect::<Vec<_>>(),
            );
        }
    }
    for name in order {
        let s = &project.services[name];
        let path = format!("services.{name}");
        if let Some(m) = &s.network_mode {
            return Err(Error::Invalid(format!(
                "{path}.network_mode: {m:?}: a stack's services are on its overlay networks"
            )));
        }
        for (k, set) in [
            ("depends_on", !s.depends_on.is_empty()),
            ("links", !s.links.is_empty()),
            ("expose", !s.expose.is_empty()),
            ("dns", !s.dns.is_empty()),
            ("extra_hosts", !s.extra_hosts.is_empty()),
            ("hostname", !s.hostname.is_empty()),
        ] {
            if set {
                warnings.push(format!(
                    "{path}.{k}: not used by a stack's services: ignored"
                ));
            }
        }
        let networks: Vec<NetworkAttachment> = s
            .networks
            .iter()
            .map(|(key, n)| {
                let real = project
                    .networks
                    .get(key)
                    .map_or_else(|| format!("{stack}_{key}"), |n| n.name.clone());
                used.insert(key.clone());
                let mut aliases = vec![name.clone()];
                aliases.extend(n.aliases.iter().cloned());
                NetworkAttachment {
                    target: real,
                    aliases,
                }
            })
            .collect();
        let ns = |d: &str| crate::duration_ns(d).unwrap_or(0);
        let mut labels: BTreeMap<String, String> = s
            .labels
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        labels.insert(NAMESPACE.into(), stack.into());
        let mut command = s.entrypoint.clone();
        command.extend(s.command.iter().cloned());
        if command.is_empty() {
            return Err(Error::Invalid(format!(
                "{path}: berth runs host programs: give the program in `command`"
            )));
        }
        let d = &s.deploy;
        services.push(ServiceSpec {
            name: format!("{stack}_{name}"),
            labels,
            task_template: TaskTemplate {
                container_spec: ContainerSpec {
                    image: String::new(),
                    command,
                    args: vec![],
                    env: s
                        .environment
                        .iter()
                        .map(|(k, v)| format!("{k}={v}"))
                        .collect(),
                    dir: s.working_dir.clone(),
                    healthcheck: s.healthcheck.as_ref().map(|h| Healthcheck {
                        test: h.test.clone(),
                        interval: ns(&h.interval),
                        timeout: ns(&h.timeout),
                        start_period: ns(&h.start_period),
                        retries: h.retries,
                    }),
                },
                placement: Placement {
                    constraints: d.constraints.clone(),
                },
                restart_policy: Some(RestartPolicy {
                    condition: condition(s.restart.as_deref()).into(),
                }),
                networks,
            },
            mode: if d.mode.as_deref() == Some("global") {
                ServiceMode {
                    replicated: None,
                    global: Some(Default::default()),
                }
            } else {
                ServiceMode {
                    replicated: Some(Replicated {
                        replicas: Some(u64::from(s.replicas)),
                    }),
                    global: None,
                }
            },
            endpoint_spec: Some(EndpointSpec {
                mode: d.endpoint_mode.clone().unwrap_or_else(|| "vip".into()),
                ports: s
                    .ports
                    .iter()
                    .map(|p| port(name, p))
                    .collect::<Result<_, _>>()?,
            }),
            update_config: (d.update_order.is_some() || d.update_parallelism.is_some()).then(
                || UpdateConfig {
                    parallelism: u64::from(d.update_parallelism.unwrap_or(1)),
                    order: d.update_order.clone().unwrap_or_default(),
                },
            ),
        });
    }
    let networks = project
        .networks
        .iter()
        .filter(|(k, _)| used.contains(*k))
        .map(|(_, n)| {
            // `bridge` is the loader's default for a network without `driver:`.
            if !["", "bridge", "overlay"].contains(&n.driver.as_str()) && !n.external {
                return Err(Error::Invalid(format!(
                    "networks.{}: driver {:?}: a stack's networks are overlays",
                    n.name, n.driver
                )));
            }
            Ok(StackNetwork {
                name: n.name.clone(),
                internal: n.internal,
                external: n.external,
            })
        })
        .collect::<Result<_, _>>()?;
    Ok(StackPlan {
        networks,
        services,
        warnings,
    })
}
