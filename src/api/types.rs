//! Docker Engine API shapes (API 1.50), rendered from berth's model. Maps are emitted with
//! sorted keys, as Go's encoding/json does, so output matches dockerd's byte for byte.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde_json::{json, Map, Value};

use crate::model::{Container, Endpoint, EndpointRequest, Network, NetworkMode, Status};

pub const API_VERSION: &str = "1.50";
pub const MIN_API_VERSION: &str = "1.24";

/// Go's RFC 3339 with nanoseconds, trailing zeros trimmed (time.RFC3339Nano).
pub fn go_time(t: &DateTime<Utc>) -> String {
    let s = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

pub fn go_time_opt(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref()
        .map(go_time)
        .unwrap_or_else(|| "0001-01-01T00:00:00Z".into())
}

fn sorted<V: Clone + Into<Value>>(m: &BTreeMap<String, V>) -> Value {
    Value::Object(
        m.iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect(),
    )
}

pub fn network(n: &Network, containers: &[Container], with_containers: bool) -> Value {
    let config: Vec<Value> = n
        .pools
        .iter()
        .map(|p| {
            let c = p.config();
            let mut m = Map::new();
            m.insert("Subnet".into(), json!(p.subnet().to_string()));
            if let Some(r) = &c.ip_range {
                m.insert("IPRange".into(), json!(r.to_string()));
            }
            m.insert("Gateway".into(), json!(p.gateway().to_string()));
            if !c.aux_addresses.is_empty() {
                let aux: BTreeMap<String, String> = c
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect();
                m.insert("AuxiliaryAddresses".into(), sorted(&aux));
            }
            Value::Object(m)
        })
        .collect();
    let mut ctrs: BTreeMap<String, Value> = BTreeMap::new();
    if with_containers {
        for c in containers {
            for e in c.endpoints.iter().filter(|e| e.network_id == n.id) {
                ctrs.insert(
                    c.id.clone(),
                    json!({
                        "Name": c.name,
                        "EndpointID": e.id,
                        "MacAddress": e.mac,
                        "IPv4Address": e.ipv4.map(|ip| format!("{ip}/{}", e.ipv4_prefix)).unwrap_or_default(),
                        "IPv6Address": e.ipv6.map(|ip| format!("{ip}/{}", e.ipv6_prefix)).unwrap_or_default(),
                    }),
                );
            }
        }
    }
    json!({
        "Name": n.name,
        "Id": n.id,
        "Created": go_time(&n.created),
        "Scope": "local",
        "Driver": n.driver.as_str(),
        "EnableIPv4": true,
        "EnableIPv6": n.ipv6,
        "IPAM": {
            "Driver": "default",
            "Options": if n.builtin { Value::Null } else { json!({}) },
            "Config": config,
        },
        "Internal": n.internal,
        "Attachable": n.attachable,
        "Ingress": false,
        "ConfigFrom": { "Network": "" },
        "ConfigOnly": false,
        "Containers": sorted(&ctrs),
        "Options": sorted(&n.options),
        "Labels": sorted(&n.labels),
    })
}

/// `docker network ls --format json` fields, for berth's own `--format`.
pub fn network_row(n: &Network) -> Value {
    let labels = n
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    json!({
        "CreatedAt": n.created.format("%Y-%m-%d %H:%M:%S%.f %z UTC").to_string(),
        "Driver": n.driver.as_str(),
        "ID": &n.id[..12],
        "IPv4": "true",
        "IPv6": n.ipv6.to_string(),
        "Internal": n.internal.to_string(),
        "Labels": labels,
        "Name": n.name,
        "Scope": "local",
    })
}

fn dns_names(c: &Container, e: &Endpoint, net: Option<&Network>) -> Value {
    if net.map(|n| n.is_default_bridge()).unwrap_or(true) {
        return Value::Null;
    }
    let mut names: Vec<String> = vec![c.name.clone()];
    for a in e
        .aliases
        .iter()
        .chain([&c.id[..12].to_string(), &c.config.hostname])
    {
        if !names.contains(a) {
            names.push(a.clone());
        }
    }
    json!(names)
}

fn ipam_config(r: &EndpointRequest) -> Value {
    if r.ipv4.is_none() && r.ipv6.is_none() {
        return Value::Null;
    }
    let mut m = Map::new();
    if let Some(ip) = r.ipv4 {
        m.insert("IPv4Address".into(), json!(ip.to_string()));
    }
    if let Some(ip) = r.ipv6 {
        m.insert("IPv6Address".into(), json!(ip.to_string()));
    }
    Value::Object(m)
}

fn endpoint_settings(
    c: &Container,
    req: &EndpointRequest,
    ep: Option<&Endpoint>,
    net: Option<&Network>,
) -> Value {
    let s = |o: Option<std::net::IpAddr>| o.map(|i| i.to_string()).unwrap_or_default();
    let aliases = if req.aliases.is_empty() {
        Value::Null
    } else {
        json!(req.aliases)
    };
    json!({
        "IPAMConfig": ipam_config(req),
        "Links": Value::Null,
        "Aliases": aliases,
        "MacAddress": ep.map(|e| e.mac.clone()).unwrap_or_default(),
        "DriverOpts": Value::Null,
        "GwPriority": 0,
        "NetworkID": net.map(|n| n.id.clone()).unwrap_or_default(),
        "EndpointID": ep.map(|e| e.id.clone()).unwrap_or_default(),
        "Gateway": s(ep.and_then(|e| e.gateway4)),
        "IPAddress": s(ep.and_then(|e| e.ipv4)),
        "IPPrefixLen": ep.map(|e| e.ipv4_prefix).unwrap_or(0),
        "IPv6Gateway": s(ep.and_then(|e| e.gateway6)),
        "GlobalIPv6Address": s(ep.and_then(|e| e.ipv6)),
        "GlobalIPv6PrefixLen": ep.map(|e| e.ipv6_prefix).unwrap_or(0),
        "DNSNames": ep.map(|e| dns_names(c, e, net)).unwrap_or(Value::Null),
    })
}

/// `NetworkSettings.Networks`: one entry per network the container is (or will be) on.
fn networks_map(c: &Container, nets: &[Network]) -> Value {
    let by_name = |name: &str| nets.iter().find(|n| n.name == name || n.id == name);
    let mut out: BTreeMap<String, Value> = BTreeMap::new();
    match &c.config.network_mode {
        NetworkMode::Host | NetworkMode::None => {
            let name = if c.config.network_mode == NetworkMode::Host {
                "host"
            } else {
                "none"
            };
            out.insert(
                name.into(),
                endpoint_settings(c, &EndpointRequest::default(), None, by_name(name)),
            );
        }
        NetworkMode::Container(_) => {}
        NetworkMode::Networks => {
            for (name, req) in &c.config.networks {
                let net = by_name(name);
                let ep = net.and_then(|n| c.endpoints.iter().find(|e| e.network_id == n.id));
                out.insert(name.clone(), endpoint_settings(c, req, ep, net));
            }
        }
    }
    sorted(&out)
}

pub fn command_string(c: &Container) -> String {
    c.config.cmd.join(" ")
}

pub fn container_summary(c: &Container, nets: &[Network], now: DateTime<Utc>) -> Value {
    let status = status_string(c, now);
    json!({
        "Id": c.id,
        "Names": [format!("/{}", c.name)],
        "Image": "",
        "ImageID": "",
        "Command": command_string(c),
        "Created": c.created.timestamp(),
        "Ports": summary_ports(c),
        "Labels": sorted(&c.config.labels),
        "State": c.state.status.as_str(),
        "Status": status,
        "HostConfig": { "NetworkMode": c.config.network_mode_name },
        "NetworkSettings": { "Networks": networks_map(c, nets) },
        "Mounts": [],
    })
}

/// The summary's `Ports`: one entry per binding, and exposed-only ports without address.
fn summary_ports(c: &Container) -> Value {
    let mut out: Vec<Value> = Vec::new();
    for (pp, bindings) in crate::daemon::ports_map(c) {
        match bindings {
            None => out.push(json!({"PrivatePort": pp.port, "Type": pp.proto.as_str()})),
            Some(list) => {
                for (ip, port) in list {
                    out.push(json!({
                        "IP": ip,
                        "PrivatePort": pp.port,
                        "PublicPort": port.parse::<u16>().unwrap_or(0),
                        "Type": pp.proto.as_str(),
                    }))
                }
            }
        }
    }
    Value::Array(out)
}

fn network_ports(c: &Container) -> Value {
    let mut m = serde_json::Map::new();
    for (pp, bindings) in crate::daemon::ports_map(c) {
        let v = match bindings {
            None => Value::Null,
            Some(list) => json!(list
                .into_iter()
                .map(|(ip, port)| json!({"HostIp": ip, "HostPort": port}))
                .collect::<Vec<_>>()),
        };
        m.insert(pp.to_string(), v);
    }
    Value::Object(m)
}

fn port_bindings(c: &Container) -> Value {
    let mut m = serde_json::Map::new();
    for (pp, list) in &c.config.port_bindings {
        m.insert(
            pp.to_string(),
            json!(list
                .iter()
                .map(|(ip, port)| json!({"HostIp": ip, "HostPort": port}))
                .collect::<Vec<_>>()),
        );
    }
    Value::Object(m)
}

fn exposed_ports(c: &Container) -> Value {
    if c.config.exposed_ports.is_empty() {
        return Value::Null;
    }
    Value::Object(
        c.config
            .exposed_ports
            .iter()
            .map(|pp| (pp.to_string(), json!({})))
            .collect(),
    )
}

pub fn status_string(c: &Container, now: DateTime<Utc>) -> String {
    let since = match c.state.status {
        Status::Running => c.state.started_at,
        Status::Exited => c.state.finished_at,
        Status::Created => Some(c.created),
    }
    .unwrap_or(now);
    let d = (now - since).to_std().unwrap_or_default();
    let s = berth_format::container_status(c.state.status.as_str(), c.state.exit_code, d);
    // docker's suffix: "Up 5 seconds (healthy)", "(health: starting)".
    match (&c.state.health, c.state.status) {
        (Some(h), Status::Running) if h.status == "starting" => format!("{s} (health: starting)"),
        (Some(h), Status::Running) => format!("{s} ({})", h.status),
        _ => s,
    }
}

pub struct Paths {
    pub dir: std::path::PathBuf,
    pub netns: std::path::PathBuf,
}

pub fn container_inspect(c: &Container, nets: &[Network], p: &Paths) -> Value {
    let default_ep = c.endpoints.iter().find(|e| {
        nets.iter()
            .any(|n| n.id == e.network_id && n.is_default_bridge())
    });
    let s = |o: Option<std::net::IpAddr>| o.map(|i| i.to_string()).unwrap_or_default();
    let running = c.is_running();
    let file = |n: &str| p.dir.join(n).display().to_string();
    let (hosts, resolv, hostname) = match &c.config.network_mode {
        NetworkMode::Container(t) => {
            let d = p.dir.parent().map(|d| d.join(t)).unwrap_or_default();
            (
                d.join("hosts").display().to_string(),
                d.join("resolv.conf").display().to_string(),
                d.join("hostname").display().to_string(),
            )
        }
        _ => (file("hosts"), file("resolv.conf"), file("hostname")),
    };
    let sandbox_key = match c.config.network_mode {
        NetworkMode::Networks | NetworkMode::None if running => p.netns.display().to_string(),
        _ => String::new(),
    };
    let extra_hosts: Value = if c.config.extra_hosts.is_empty() {
        Value::Null
    } else {
        json!(c
            .config
            .extra_hosts
            .iter()
            .map(|(n, ip)| format!("{n}:{ip}"))
            .collect::<Vec<_>>())
    };
    json!({
        "Id": c.id,
        "Created": go_time(&c.created),
        "Path": c.config.cmd.first().cloned().unwrap_or_default(),
        "Args": c.config.cmd.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": c.state.status.as_str(),
            "Running": running,
            "Paused": false,
            "Restarting": false,
            "OOMKilled": false,
            "Dead": false,
            "Pid": if running { c.state.pid } else { 0 },
            "ExitCode": c.state.exit_code,
            "Error": c.state.error,
            "StartedAt": go_time_opt(&c.state.started_at),
            "FinishedAt": go_time_opt(&c.state.finished_at),
            "Health": health_json(c),
        },
        "Image": "",
        "ResolvConfPath": resolv,
        "HostnamePath": hostname,
        "HostsPath": hosts,
        "LogPath": file("log"),
        "Name": format!("/{}", c.name),
        "RestartCount": c.state.restart_count,
        "Driver": "",
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": "",
        "ExecIDs": Value::Null,
        "HostConfig": {
            "NetworkMode": c.config.network_mode_name,
            "PortBindings": port_bindings(c),
            "RestartPolicy": {
                "Name": if c.config.restart.is_none() { "no" } else { c.config.restart.name.as_str() },
                "MaximumRetryCount": c.config.restart.max_retries,
            },
            "AutoRemove": c.config.auto_remove,
            "LogConfig": {
                "Type": "json-file",
                "Config": c.config.log_opts.iter().cloned().collect::<std::collections::BTreeMap<_, _>>(),
            },
            "Dns": c.config.dns.iter().map(|d| d.to_string()).collect::<Vec<_>>(),
            "DnsOptions": c.config.dns_options,
            "DnsSearch": c.config.dns_search,
            "ExtraHosts": extra_hosts,
            "Links": if c.config.links.is_empty() {
                Value::Null
            } else {
                json!(c.config.links.iter().map(|(t, a)| format!("/{t}:/{}/{a}", c.name)).collect::<Vec<_>>())
            },
            "PublishAllPorts": c.config.publish_all,
        },
        "Config": {
            "Hostname": c.config.hostname,
            "Domainname": c.config.domainname,
            "User": "",
            "AttachStdin": false,
            "AttachStdout": false,
            "AttachStderr": false,
            "Tty": c.config.tty,
            "OpenStdin": c.config.open_stdin,
            "StdinOnce": false,
            "Env": c.config.env,
            "Cmd": c.config.cmd,
            "Image": "",
            "WorkingDir": c.config.working_dir,
            "Healthcheck": c.config.healthcheck.as_ref().map(|h| json!({
                "Test": h.test,
                "Interval": h.interval_ms * 1_000_000,
                "Timeout": h.timeout_ms * 1_000_000,
                "Retries": h.retries,
                "StartPeriod": h.start_period_ms * 1_000_000,
            })),
            "Entrypoint": Value::Null,
            "Labels": sorted(&c.config.labels),
            "ExposedPorts": exposed_ports(c),
        },
        "NetworkSettings": {
            "Bridge": "",
            "SandboxID": if sandbox_key.is_empty() { String::new() } else { c.id.clone() },
            "SandboxKey": sandbox_key,
            "Ports": network_ports(c),
            "HairpinMode": false,
            "LinkLocalIPv6Address": "",
            "LinkLocalIPv6PrefixLen": 0,
            "SecondaryIPAddresses": Value::Null,
            "SecondaryIPv6Addresses": Value::Null,
            "EndpointID": default_ep.map(|e| e.id.clone()).unwrap_or_default(),
            "Gateway": s(default_ep.and_then(|e| e.gateway4)),
            "GlobalIPv6Address": s(default_ep.and_then(|e| e.ipv6)),
            "GlobalIPv6PrefixLen": default_ep.map(|e| e.ipv6_prefix).unwrap_or(0),
            "IPAddress": s(default_ep.and_then(|e| e.ipv4)),
            "IPPrefixLen": default_ep.map(|e| e.ipv4_prefix).unwrap_or(0),
            "IPv6Gateway": s(default_ep.and_then(|e| e.gateway6)),
            "MacAddress": default_ep.map(|e| e.mac.clone()).unwrap_or_default(),
            "Networks": networks_map(c, nets),
        },
    })
}

/// docker's `State.Health` (absent without a health check).
fn health_json(c: &Container) -> Value {
    match &c.state.health {
        None => Value::Null,
        Some(h) => json!({
            "Status": h.status,
            "FailingStreak": h.failing_streak,
            "Log": h.log.iter().map(|r| json!({
                "Start": go_time_opt(&Some(r.start)),
                "End": go_time_opt(&Some(r.end)),
                "ExitCode": r.exit_code,
                "Output": r.output,
            })).collect::<Vec<_>>(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_time_trims_zeros_like_rfc3339nano() {
        let t: DateTime<Utc> = "2025-01-01T10:00:00.120Z".parse().unwrap();
        assert_eq!(go_time(&t), "2025-01-01T10:00:00.12Z");
        let t: DateTime<Utc> = "2025-01-01T10:00:00Z".parse().unwrap();
        assert_eq!(go_time(&t), "2025-01-01T10:00:00Z");
    }
}
