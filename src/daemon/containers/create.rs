//! `create`: the request checked, the network mode planned, the record committed.

use std::net::IpAddr;

use chrono::Utc;

use super::*;
use crate::daemon::ports;
use crate::daemon::{Daemon, Error, Inner, Result};
use crate::model::{
    new_id, unique_random_name, valid_name, Container, ContainerConfig, Driver, EndpointRequest,
    Network, NetworkMode, State,
};

impl Daemon {
    pub async fn container_create(&self, req: ContainerCreate) -> Result<String> {
        let names: Vec<&str> = std::iter::once(req.network_mode.as_str())
            .chain(req.endpoints.iter().map(|(n, _)| n.as_str()))
            .collect();
        self.overlay_refresh_for(&names).await;
        let mut st = self.state.lock().await;
        if req.cmd.is_empty() {
            return Err(Error::InvalidParameter(
                "No command specified: give the program to run after the options, e.g. `berth run -- sleep 60`".into(),
            ));
        }
        let name = match &req.name {
            Some(n) => {
                let n = n.strip_prefix('/').unwrap_or(n).to_string();
                if !valid_name(&n) {
                    return Err(Error::InvalidParameter(format!(
                        "Invalid container name ({}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed, at most {} characters",
                        n.chars().take(80).collect::<String>(),
                        crate::validate::MAX_NAME_LEN
                    )));
                }
                if let Some(c) = st.containers.values().find(|c| c.name == n) {
                    return Err(Error::Conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                        c.id
                    )));
                }
                n
            }
            None => unique_random_name(|n| st.containers.values().any(|c| c.name == n)),
        };
        check_create(&req).map_err(Error::InvalidParameter)?;
        self.opts
            .log_defaults
            .with(&req.log_opts)
            .map_err(Error::InvalidParameter)?;
        let id = new_id();
        let mode_name = match req.network_mode.as_str() {
            "" | "default" => "bridge".to_string(),
            m => m.to_string(),
        };
        let (mode, networks) = plan_mode(&st, &mode_name, &req)?;
        let links = crate::daemon::discovery::parse_links(&st, &req.links, &mode)?;
        if !req.restart.is_none() && req.auto_remove {
            return Err(Error::InvalidParameter(
                "Conflicting options: --restart and --rm (a container removed at exit cannot be restarted)".into(),
            ));
        }
        let extra_hosts = req
            .extra_hosts
            .iter()
            .map(|h| {
                let (n, ip) = h.split_once(':').ok_or_else(|| bad_host(h))?;
                let ip = ip.trim_start_matches('[').trim_end_matches(']');
                Ok((
                    n.to_string(),
                    ip.parse::<IpAddr>().map_err(|_| bad_host(h))?,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let dns = req
            .dns
            .iter()
            .map(|d| {
                d.parse::<IpAddr>().map_err(|_| {
                    Error::InvalidParameter(format!(
                        "{d} is not an ip address (--dns takes IP addresses)"
                    ))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut exposed_ports: std::collections::BTreeSet<_> =
            req.exposed_ports.iter().copied().collect();
        let mut port_bindings = std::collections::BTreeMap::new();
        for (pp, list) in &req.port_bindings {
            for (ip, port) in list {
                berth_ports::BindingRequest::parse(*pp, ip, port).map_err(ports::port_error)?;
            }
            exposed_ports.insert(*pp);
            if !list.is_empty() {
                port_bindings.insert(*pp, list.clone());
            }
        }
        ports::check_mode(&mode, !port_bindings.is_empty() || req.publish_all)?;
        let hostname = if req.hostname.is_empty() {
            id[..12].to_string()
        } else {
            req.hostname.clone()
        };
        let c = Container {
            id: id.clone(),
            name,
            created: Utc::now(),
            config: ContainerConfig {
                cmd: req.cmd,
                env: req.env,
                working_dir: req.working_dir,
                hostname,
                domainname: req.domainname,
                tty: req.tty,
                open_stdin: req.open_stdin,
                dns,
                dns_search: req.dns_search,
                dns_options: req.dns_options,
                extra_hosts,
                auto_remove: req.auto_remove,
                labels: req.labels,
                network_mode: mode,
                network_mode_name: mode_name,
                networks,
                exposed_ports,
                port_bindings,
                publish_all: req.publish_all,
                links,
                restart: req.restart,
                healthcheck: req.healthcheck,
                log_opts: req.log_opts,
            },
            state: State::created(),
            endpoints: vec![],
            ports: vec![],
            link_hosts: vec![],
            link_env: vec![],
        };
        self.commit(crate::daemon::keys::Writes::container(&c))
            .await?;
        st.containers.insert(id.clone(), c);
        Ok(id)
    }
}

/// What goes into the sandbox's files and `execve`, checked before anything is recorded.
pub(super) fn check_create(req: &ContainerCreate) -> std::result::Result<(), String> {
    use crate::validate::{check_dns_option, check_domain, check_hostname, check_no_nul};
    if !req.hostname.is_empty() {
        check_hostname("hostname", &req.hostname)?;
    }
    if !req.domainname.is_empty() {
        check_domain("domainname", &req.domainname)?;
    }
    for d in &req.dns_search {
        // "." alone means "no search domains", as in resolv.conf.
        if d != "." {
            check_domain("--dns-search", d)?;
        }
    }
    for o in &req.dns_options {
        check_dns_option(o)?;
    }
    for h in &req.extra_hosts {
        if let Some((name, _)) = h.split_once(':') {
            check_domain("--add-host name", name)?;
        }
    }
    for a in &req.cmd {
        check_no_nul("command argument", a)?;
    }
    for e in &req.env {
        check_no_nul("environment variable", e)?;
    }
    check_no_nul("working directory", &req.working_dir)
}

pub(super) fn bad_host(h: &str) -> Error {
    Error::InvalidParameter(format!(
        "invalid argument \"{h}\" for \"--add-host\": use NAME:IP"
    ))
}

pub(super) fn plan_mode(
    st: &Inner,
    mode_name: &str,
    req: &ContainerCreate,
) -> Result<(NetworkMode, Vec<(String, EndpointRequest)>)> {
    let only_default = |what: &str| {
        Error::InvalidParameter(format!(
            "conflicting options: {what} and the network mode ({mode_name})"
        ))
    };
    if let Some(target) = mode_name.strip_prefix("container:") {
        let tid = st.container_id(target)?;
        if !req.endpoints.is_empty() {
            return Err(only_default("network endpoints"));
        }
        if !req.hostname.is_empty() {
            return Err(only_default("hostname"));
        }
        if !req.dns.is_empty() {
            return Err(only_default("dns"));
        }
        if !req.extra_hosts.is_empty() {
            return Err(only_default("custom host-to-IP mapping"));
        }
        return Ok((NetworkMode::Container(tid), vec![]));
    }
    let net = st
        .network_by_name(mode_name)
        .or_else(|| st.network_id(mode_name).ok().map(|id| &st.networks[&id]))
        .ok_or_else(|| Error::NotFound(format!("network {mode_name} not found")))?;
    match net.driver {
        Driver::Host | Driver::Null => {
            if req
                .endpoints
                .iter()
                .any(|(_, r)| r.ipv4.is_some() || r.ipv6.is_some())
            {
                return Err(Error::InvalidParameter(
                    "user specified IP address is supported on user defined networks only".into(),
                ));
            }
            if req.endpoints.iter().any(|(_, r)| !r.aliases.is_empty()) {
                return Err(Error::InvalidParameter(
                    "network-scoped alias is supported only for containers in user defined networks".into(),
                ));
            }
            let mode = if net.driver == Driver::Host {
                NetworkMode::Host
            } else {
                NetworkMode::None
            };
            Ok((mode, vec![]))
        }
        Driver::Bridge | Driver::Overlay => {
            let mut list: Vec<(String, EndpointRequest)> = Vec::new();
            let first = req
                .endpoints
                .iter()
                .find(|(n, _)| n == &net.name || n == &net.id)
                .map(|(_, r)| r.clone())
                .unwrap_or_default();
            list.push((net.name.clone(), first));
            for (n, r) in &req.endpoints {
                if n == &net.name || n == &net.id {
                    continue;
                }
                let other = st
                    .network_by_name(n)
                    .or_else(|| st.network_id(n).ok().map(|id| &st.networks[&id]))
                    .ok_or_else(|| Error::NotFound(format!("network {n} not found")))?;
                list.push((other.name.clone(), r.clone()));
            }
            for (n, r) in &list {
                let net = st.network_by_name(n).expect("checked above");
                check_request(net, r)?;
            }
            Ok((NetworkMode::Networks, list))
        }
    }
}

/// Docker's rules for `--ip`, `--ip6` and aliases on a network.
pub(super) fn check_request(net: &Network, r: &EndpointRequest) -> Result<()> {
    let static_ip = r.ipv4.is_some() || r.ipv6.is_some();
    if net.is_default_bridge() {
        if static_ip {
            return Err(Error::InvalidParameter(
                "user specified IP address is supported on user defined networks only".into(),
            ));
        }
        if !r.aliases.is_empty() {
            return Err(Error::InvalidParameter(
                "network-scoped alias is supported only for containers in user defined networks"
                    .into(),
            ));
        }
    }
    if static_ip && !net.user_subnets {
        return Err(Error::InvalidParameter(
            "user specified IP address is supported only when connecting to networks with user configured subnets".into(),
        ));
    }
    for ip in r.ipv4.iter().chain(r.ipv6.iter()) {
        if !net.pools.iter().any(|p| p.contains(*ip)) {
            return Err(Error::InvalidParameter(format!(
                "Invalid address {ip}: It does not belong to any of this network's subnets ({})",
                net.pools
                    .iter()
                    .map(|p| p.subnet().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::containers::alloc::tests::{ctr, inner, net};

    fn req(mode: &str) -> ContainerCreate {
        ContainerCreate {
            cmd: vec!["true".into()],
            network_mode: mode.into(),
            ..Default::default()
        }
    }

    #[test]
    fn modes_and_their_conflicts() {
        let mut st = inner(&[net("a", "10.1.0.0/24"), net("b", "10.2.0.0/24")]);
        let (mode, nets) = plan_mode(&st, "a", &req("a")).unwrap();
        assert_eq!(mode, NetworkMode::Networks);
        assert_eq!(nets.len(), 1);
        // A second network through EndpointsConfig joins after the first.
        let mut r = req("a");
        r.endpoints.push(("b".into(), EndpointRequest::default()));
        let (_, nets) = plan_mode(&st, "a", &r).unwrap();
        assert_eq!(
            nets.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert!(matches!(
            plan_mode(&st, "nope", &req("nope")),
            Err(Error::NotFound(_))
        ));
        // container: mode refuses what belongs to the joined container.
        let base = ctr("base", &[("a", None)]);
        st.containers.insert(base.id.clone(), base);
        let mut r = req("container:base");
        r.hostname = "x".into();
        assert!(matches!(
            plan_mode(&st, "container:base", &r),
            Err(Error::InvalidParameter(_))
        ));
        let (mode, _) = plan_mode(&st, "container:base", &req("container:base")).unwrap();
        assert_eq!(mode, NetworkMode::Container("base".into()));
    }

    #[test]
    fn static_addresses_follow_dockers_rules() {
        let n = net("a", "10.1.0.0/24");
        let inside = EndpointRequest {
            ipv4: Some("10.1.0.7".parse().unwrap()),
            ..Default::default()
        };
        check_request(&n, &inside).unwrap();
        let outside = EndpointRequest {
            ipv4: Some("10.9.0.7".parse().unwrap()),
            ..Default::default()
        };
        let e = check_request(&n, &outside).unwrap_err().to_string();
        assert!(
            e.contains("does not belong to any of this network's subnets"),
            "{e}"
        );
        let mut auto = n.clone();
        auto.user_subnets = false;
        assert!(
            check_request(&auto, &inside).is_err(),
            "static IPs need user subnets"
        );
    }

    #[test]
    fn create_checks_what_reaches_the_sandbox() {
        let mut r = req("a");
        check_create(&r).unwrap();
        r.dns_search = vec![".".into()];
        assert!(check_create(&r).is_ok(), "'.' means no search domains");
        r.extra_hosts = vec!["a\nb:1.2.3.4".into()];
        assert!(check_create(&r).is_err());
    }
}
