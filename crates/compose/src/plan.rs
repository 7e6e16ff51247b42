//! What `up` creates, computed from the project alone: the start order, the containers'
//! names and the Docker API bodies that create them.

use std::collections::BTreeSet;

use serde_json::{json, Map, Value};

use crate::model::{Project, Service};
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

/// The `POST /containers/create` body for replica `n` of a service.
pub fn create_body(p: &Project, service: &str, n: u32) -> Value {
    let s = &p.services[service];
    let mut labels: Map<String, Value> = s
        .labels
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    labels.insert(LABEL_PROJECT.into(), json!(p.name));
    labels.insert(LABEL_SERVICE.into(), json!(service));
    labels.insert(LABEL_NUMBER.into(), json!(n.to_string()));
    labels.insert(LABEL_HASH.into(), json!(config_hash(s)));
    let mut exposed = Map::new();
    let mut bindings: Map<String, Value> = Map::new();
    for e in &s.expose {
        let key = if e.contains('/') {
            e.clone()
        } else {
            format!("{e}/tcp")
        };
        exposed.insert(key, json!({}));
    }
    for port in &s.ports {
        // Ranges expand one binding per port, as the docker CLI does.
        let (c0, c1) = range(&port.target);
        let (h0, h1) = if port.published.is_empty() {
            (0, 0)
        } else {
            range(&port.published)
        };
        for (i, c) in (c0..=c1).enumerate() {
            let key = format!("{c}/{}", port.protocol);
            exposed.insert(key.clone(), json!({}));
            let host = if h0 == 0 {
                String::new()
            } else if h1 > h0 && h1 - h0 == c1 - c0 {
                (h0 + u32::try_from(i).unwrap_or(u32::MAX)).to_string()
            } else {
                port.published.clone()
            };
            let entry = json!({"HostIp": port.host_ip, "HostPort": host});
            match bindings.get_mut(&key) {
                Some(Value::Array(a)) => a.push(entry),
                _ => {
                    bindings.insert(key, json!([entry]));
                }
            }
        }
    }
    let (mode, endpoints) = match s.network_mode.as_deref() {
        Some(m) => {
            let mode = match m.strip_prefix("service:") {
                Some(t) => format!("container:{}", container_name(&p.name, t, 1)),
                None => m.to_string(),
            };
            (mode, Map::new())
        }
        None => {
            let mut eps = Map::new();
            let mut first = None;
            for (key, sn) in &s.networks {
                let real = &p.networks[key].name;
                first.get_or_insert_with(|| real.clone());
                // The service's name resolves to every replica, on each of its networks.
                let mut aliases = vec![service.to_string()];
                aliases.extend(sn.aliases.iter().cloned());
                let mut ipam = Map::new();
                if let Some(a) = &sn.ipv4_address {
                    ipam.insert("IPv4Address".into(), json!(a));
                }
                if let Some(a) = &sn.ipv6_address {
                    ipam.insert("IPv6Address".into(), json!(a));
                }
                eps.insert(
                    real.clone(),
                    json!({"Aliases": aliases, "IPAMConfig": if ipam.is_empty() { Value::Null } else { Value::Object(ipam) }}),
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
        None | Some("no") => json!({"Name": "no", "MaximumRetryCount": 0}),
        Some(r) => match r.split_once(':') {
            Some((name, n)) => {
                json!({"Name": name, "MaximumRetryCount": n.parse::<u32>().unwrap_or(0)})
            }
            None => json!({"Name": r, "MaximumRetryCount": 0}),
        },
    };
    let ns = |d: &str| crate::duration_ns(d).unwrap_or(0);
    let health = s.healthcheck.as_ref().map(|h| {
        json!({"Test": h.test, "Interval": ns(&h.interval), "Timeout": ns(&h.timeout),
               "Retries": h.retries, "StartPeriod": ns(&h.start_period)})
    });
    json!({
        "Hostname": hostname,
        "Healthcheck": health,
        "Entrypoint": s.entrypoint,
        "Cmd": s.command,
        "Env": s.environment.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>(),
        "WorkingDir": s.working_dir,
        "Labels": labels,
        "ExposedPorts": exposed,
        "HostConfig": {
            "NetworkMode": mode,
            "PortBindings": bindings,
            "Dns": s.dns,
            "ExtraHosts": s.extra_hosts,
            "Links": links,
            "RestartPolicy": restart,
        },
        "NetworkingConfig": {"EndpointsConfig": endpoints},
    })
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
