//! What `up` creates, computed from the project alone: the start order, the containers'
//! names and the Docker API bodies that create them.

use std::collections::{BTreeMap, BTreeSet};

use berth_api::container::{EndpointsConfig, Healthcheck, NetworkingConfig, RestartPolicy};
use berth_api::{ContainerCreateRequest, EndpointIpamConfig, EndpointSettings, HostConfig};
use berth_ports::{PortProto, PortRange, Proto};

use crate::model::{Port, Project, Service};
use crate::Error;

/// Labels docker compose puts on what it creates; berth uses the same, so tools that read
/// them (and `docker compose ls`-style filters) work.
pub const LABEL_PROJECT: &str = "com.docker.compose.project";
pub const LABEL_SERVICE: &str = "com.docker.compose.service";
pub const LABEL_NUMBER: &str = "com.docker.compose.container-number";
pub const LABEL_HASH: &str = "com.docker.compose.config-hash";
pub const LABEL_NETWORK: &str = "com.docker.compose.network";

/// The services a service needs started first: `depends_on`, `links`, `network_mode:
/// service:X`.
pub fn needs(s: &Service) -> BTreeSet<String> {
    let mut n: BTreeSet<String> = s.depends_on.keys().cloned().collect();
    n.extend(
        s.links
            .iter()
            .map(|l| l.split(':').next().unwrap_or(l).to_string()),
    );
    if let Some(t) = s
        .network_mode
        .as_deref()
        .and_then(|m| m.strip_prefix("service:"))
    {
        n.insert(t.to_string());
    }
    n
}

/// Services in an order where each comes after what it needs (file order otherwise).
pub fn order(p: &Project) -> Result<Vec<String>, Error> {
    let mut done: Vec<String> = Vec::new();
    let mut left: Vec<&String> = p.services.keys().collect();
    while !left.is_empty() {
        let ready = left
            .iter()
            .position(|s| needs(&p.services[*s]).iter().all(|d| done.contains(d)));
        match ready {
            Some(i) => done.push(left.remove(i).clone()),
            None => {
                let names: Vec<&str> = left.iter().map(|s| s.as_str()).collect();
                return Err(Error::Invalid(format!(
                    "dependency cycle between services: {}",
                    names.join(", ")
                )));
            }
        }
    }
    Ok(done)
}

pub fn container_name(project: &str, service: &str, n: u32) -> String {
    format!("{project}-{service}-{n}")
}

/// A stable digest of what a service's containers are made from: `up` recreates a
/// container only when this changes.
pub fn config_hash(s: &Service) -> String {
    let bytes = serde_json::to_vec(s).expect("serializable");
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// The `POST /containers/create` body for replica `n` of a service. Fails on a port the
/// file names that is no port: the body carries ports typed.
pub fn create_body(p: &Project, service: &str, n: u32) -> Result<ContainerCreateRequest, Error> {
    let s = &p.services[service];
    let mut labels: BTreeMap<String, String> = s
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_PROJECT.into(), p.name.clone());
    labels.insert(LABEL_SERVICE.into(), service.to_string());
    labels.insert(LABEL_NUMBER.into(), n.to_string());
    labels.insert(LABEL_HASH.into(), config_hash(s));
    let (mode, endpoints) = match s.network_mode.as_deref() {
        Some(m) => {
            let mode = match m.strip_prefix("service:") {
                Some(t) => format!("container:{}", container_name(&p.name, t, 1)),
                None => m.to_string(),
            };
            (mode, EndpointsConfig::new())
        }
        None => {
            let mut eps = EndpointsConfig::new();
            let mut first = None;
            for (key, sn) in &s.networks {
                let real = &p.networks[key].name;
                first.get_or_insert_with(|| real.clone());
                // The service's name resolves to every replica, on each of its networks.
                let mut aliases = vec![service.to_string()];
                aliases.extend(sn.aliases.iter().cloned());
                let ipam = (sn.ipv4_address.is_some() || sn.ipv6_address.is_some()).then(|| {
                    EndpointIpamConfig {
                        ipv4_address: sn.ipv4_address.clone().unwrap_or_default(),
                        ipv6_address: sn.ipv6_address.clone().unwrap_or_default(),
                    }
                });
                eps.insert(
                    real.clone(),
                    EndpointSettings {
                        ipam_config: ipam,
                        aliases: Some(aliases),
                        ..Default::default()
                    },
                );
            }
            (first.unwrap_or_else(|| "bridge".into()), eps)
        }
    };
    let links: Vec<String> = s
        .links
        .iter()
        .map(|l| {
            let (svc, alias) = l.split_once(':').unwrap_or((l, l));
            format!("{}:{alias}", container_name(&p.name, svc, 1))
        })
        .collect();
    let hostname = if s.hostname.is_empty() || s.replicas > 1 {
        // Replicas need hostnames of their own (the seed's web app answers with it).
        String::new()
    } else {
        s.hostname.clone()
    };
    let restart = match s.restart.as_deref() {
        None | Some("no") => RestartPolicy {
            name: "no".into(),
            maximum_retry_count: 0,
        },
        Some(r) => match r.split_once(':') {
            Some((name, n)) => RestartPolicy {
                name: name.into(),
                maximum_retry_count: n.parse::<u32>().unwrap_or(0),
            },
            None => RestartPolicy {
                name: r.into(),
                maximum_retry_count: 0,
            },
        },
    };
    let ns = |d: &str| crate::duration_ns(d).unwrap_or(0);
    let health = s.healthcheck.as_ref().map(|h| Healthcheck {
        test: h.test.clone(),
        interval: ns(&h.interval),
        timeout: ns(&h.timeout),
        start_period: ns(&h.start_period),
        retries: h.retries,
    });
    let mut body = ContainerCreateRequest {
        hostname,
        healthcheck: health,
        entrypoint: Some(s.entrypoint.clone()),
        cmd: Some(s.command.clone()),
        env: Some(
            s.environment
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect(),
        ),
        working_dir: s.working_dir.clone(),
        labels: Some(labels),
        host_config: Some(HostConfig {
            network_mode: mode,
            port_bindings: Some(Default::default()),
            dns: Some(s.dns.clone()),
            extra_hosts: Some(s.extra_hosts.clone()),
            links: Some(links),
            restart_policy: restart,
            ..Default::default()
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(endpoints),
        }),
        ..Default::default()
    };
    for e in &s.expose {
        for pp in berth_ports::parse_expose(e)
            .map_err(|err| Error::Invalid(format!("services.{service}.expose: {err}")))?
        {
            body.expose(pp);
        }
    }
    for port in &s.ports {
        let bad = |err: berth_ports::PortError| {
            Error::Invalid(format!("services.{service}.ports: {err}"))
        };
        for (pp, host) in port_bindings(port).map_err(bad)? {
            body.publish(pp, port.host_ip.clone(), host);
        }
    }
    Ok(body)
}

/// A port's bindings as the docker CLI expands `-p`: one per container port, the host port
/// following a host range of the same length, else the host port (or range) as written.
fn port_bindings(port: &Port) -> Result<Vec<(PortProto, String)>, berth_ports::PortError> {
    let spec = port.spec();
    let proto: Proto = port.protocol.parse()?;
    let target = PortRange::parse(&port.target, &spec, "container port")?;
    let (h0, h1) = if port.published.is_empty() {
        (0, 0)
    } else {
        range(&port.published)
    };
    Ok(target
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let host = if h0 == 0 {
                String::new()
            } else if h1 > h0 && h1 - h0 == u32::from(target.end - target.start) {
                (h0 + u32::try_from(i).unwrap_or(u32::MAX)).to_string()
            } else {
                port.published.clone()
            };
            (PortProto { port: c, proto }, host)
        })
        .collect())
}

fn range(s: &str) -> (u32, u32) {
    match s.split_once('-') {
        Some((a, b)) => (a.parse().unwrap_or(0), b.parse().unwrap_or(0)),
        None => {
            let v = s.parse().unwrap_or(0);
            (v, v)
        }
    }
}
