//! Docker Engine API shapes (API 1.50), rendered from berth's model: through berth-api's
//! types where one exists, else (container inspect, whose every field the CLI prints) as
//! JSON built here around those types. Maps are emitted with sorted keys, as Go's
//! encoding/json does, so output matches dockerd's byte for byte.

use std::collections::BTreeMap;

use berth_api::container::{
    PortMap, PortSet, SummaryHostConfig, SummaryNetworkSettings, SummaryPort,
};
use berth_api::network::{ConfigReference, Ipam, IpamConfig, NetworkContainer};
use berth_api::{ContainerSummary, Empty, EndpointIpamConfig, EndpointSettings, PortBinding};
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::model::{Container, Endpoint, EndpointRequest, Network, NetworkMode, Status};

pub use berth_api::{API_VERSION, MIN_API_VERSION};

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

pub fn network(n: &Network, containers: &[Container], with_containers: bool) -> berth_api::Network {
    let config: Vec<IpamConfig> = n
        .pools
        .iter()
        .map(|p| {
            let c = p.config();
            IpamConfig {
                subnet: p.subnet().to_string(),
                ip_range: c.ip_range.map(|r| r.to_string()).unwrap_or_default(),
                gateway: p.gateway().to_string(),
                auxiliary_addresses: c
                    .aux_addresses
                    .iter()
                    .map(|(k, v)| (k.clone(), v.to_string()))
                    .collect(),
            }
        })
        .collect();
    let mut ctrs = BTreeMap::new();
    if with_containers {
        for c in containers {
            for e in c.endpoints.iter().filter(|e| e.network_id == n.id) {
                ctrs.insert(
                    c.id.clone(),
                    NetworkContainer {
                        name: c.name.clone(),
                        endpoint_id: e.id.clone(),
                        mac_address: e.mac.clone(),
                        ipv4_address: e
                            .ipv4
                            .map(|ip| format!("{ip}/{}", e.ipv4_prefix))
                            .unwrap_or_default(),
                        ipv6_address: e
                            .ipv6
                            .map(|ip| format!("{ip}/{}", e.ipv6_prefix))
                            .unwrap_or_default(),
                    },
                );
            }
        }
    }
    berth_api::Network {
        name: n.name.clone(),
        id: n.id.clone(),
        created: go_time(&n.created),
        scope: n.scope().into(),
        driver: n.driver.as_str().into(),
        enable_ipv4: true,
        enable_ipv6: n.ipv6,
        ipam: Ipam {
            driver: "default".into(),
            // dockerd's built-in networks have no IPAM options at all.
            options: (!n.builtin).then(BTreeMap::new),
            config: Some(config),
        },
        internal: n.internal,
        attachable: n.attachable,
        ingress: false,
        config_from: ConfigReference::default(),
        config_only: false,
        containers: ctrs,
        options: n.options.clone(),
        labels: n.labels.clone(),
    }
}

fn dns_names(c: &Container, e: &Endpoint, net: Option<&Network>) -> Option<Vec<String>> {
    if net.map(|n| n.is_default_bridge()).unwrap_or(true) {
        return None;
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
    Some(names)
}

fn ipam_config(r: &EndpointRequest) -> Option<EndpointIpamConfig> {
    if r.ipv4.is_none() && r.ipv6.is_none() {
        return None;
    }
    let s = |o: Option<std::net::IpAddr>| o.map(|i| i.to_string()).unwrap_or_default();
    Some(EndpointIpamConfig {
        ipv4_address: s(r.ipv4),
        ipv6_address: s(r.ipv6),
    })
}

fn endpoint_settings(
    c: &Container,
    req: &EndpointRequest,
    ep: Option<&Endpoint>,
    net: Option<&Network>,
) -> EndpointSettings {
    let s = |o: Option<std::net::IpAddr>| o.map(|i| i.to_string()).unwrap_or_default();
    EndpointSettings {
        ipam_config: ipam_config(req),
        links: None,
        aliases: (!req.aliases.is_empty()).then(|| req.aliases.clone()),
        mac_address: ep.map(|e| e.mac.clone()).unwrap_or_default(),
        driver_opts: None,
        gw_priority: 0,
        network_id: net.map(|n| n.id.clone()).unwrap_or_default(),
        endpoint_id: ep.map(|e| e.id.clone()).unwrap_or_default(),
        gateway: s(ep.and_then(|e| e.gateway4)),
        ip_address: s(ep.and_then(|e| e.ipv4)),
        ip_prefix_len: ep.map(|e| e.ipv4_prefix).unwrap_or(0),
        ipv6_gateway: s(ep.and_then(|e| e.gateway6)),
        global_ipv6_address: s(ep.and_then(|e| e.ipv6)),
        global_ipv6_prefix_len: ep.map(|e| e.ipv6_prefix).unwrap_or(0),
        dns_names: ep.and_then(|e| dns_names(c, e, net)),
    }
}

/// `NetworkSettings.Networks`: one entry per network the container is (or will be) on.
fn networks_map(c: &Container, nets: &[Network]) -> BTreeMap<String, EndpointSettings> {
    let by_name = |name: &str| nets.iter().find(|n| n.name == name || n.id == name);
    let mut out = BTreeMap::new();
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
    out
}

pub fn command_string(c: &Container) -> String {
    c.config.cmd.join(" ")
}

pub fn container_summary(c: &Container, nets: &[Network], now: DateTime<Utc>) -> ContainerSummary {
    ContainerSummary {
        id: c.id.clone(),
        names: vec![format!("/{}", c.name)],
        image: String::new(),
        image_id: String::new(),
        command: command_string(c),
        created: c.created.timestamp(),
        ports: summary_ports(c),
        labels: c.config.labels.clone(),
        state: c.state.status.as_str().into(),
        status: status_string(c, now),
        host_config: SummaryHostConfig {
            network_mode: c.config.network_mode_name.clone(),
        },
        network_settings: SummaryNetworkSettings {
            networks: networks_map(c, nets),
        },
        mounts: vec![],
    }
}

/// The summary's `Ports`: one entry per binding, and exposed-only ports without address.
fn summary_ports(c: &Container) -> Vec<SummaryPort> {
    let mut out = Vec::new();
    for (pp, bindings) in crate::daemon::ports_map(c) {
        match bindings {
            None => out.push(SummaryPort {
                ip: None,
                private_port: pp.port,
                public_port: None,
                proto: pp.proto.as_str().into(),
            }),
            Some(list) => {
                for (ip, port) in list {
                    out.push(SummaryPort {
                        ip: Some(ip),
                        private_port: pp.port,
                        public_port: Some(port.parse::<u16>().unwrap_or(0)),
                        proto: pp.proto.as_str().into(),
                    })
                }
            }
        }
    }
    out
}

fn bindings(list: Vec<(String, String)>) -> Vec<PortBinding> {
    list.into_iter()
        .map(|(host_ip, host_port)| PortBinding { host_ip, host_port })
        .collect()
}

fn network_ports(c: &Container) -> PortMap {
    crate::daemon::ports_map(c)
        .into_iter()
        .map(|(pp, b)| (pp, b.map(bindings)))
        .collect()
}

fn port_bindings(c: &Container) -> PortMap {
    c.config
        .port_bindings
        .iter()
        .map(|(pp, list)| (*pp, Some(bindings(list.clone()))))
        .collect()
}

/// `null` rather than `{}` when there are none, as dockerd writes an unset `PortSet`.
fn exposed_ports(c: &Container) -> Option<PortSet> {
    (!c.config.exposed_ports.is_empty()).then(|| {
        c.config
            .exposed_ports
            .iter()
            .map(|pp| (*pp, Empty))
            .collect()
    })
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
            "Labels": c.config.labels,
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
