//! Container (sandbox) operations: create, start (attach + spawn), stop, kill, remove, exec,
//! connect and disconnect. Endpoint addresses are allocated and committed before the kernel
//! is touched; a failing kernel step undoes the earlier ones and releases the addresses.

use std::net::IpAddr;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use super::{Daemon, Result};
use crate::model::{Container, EndpointRequest, Network, NetworkMode};
use crate::sandbox::{self};

mod alloc;
mod connect;
mod create;
mod exec;
mod exit;
mod start;
mod stop;

pub(crate) use alloc::release_endpoints;
#[cfg(test)]
pub(crate) use alloc::tests as alloc_tests;
// The operations share these helpers.
use alloc::*;
use create::*;
use start::*;

#[derive(Debug, Clone, Default)]
pub struct ContainerCreate {
    pub name: Option<String>,
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub hostname: String,
    pub domainname: String,
    pub tty: bool,
    pub open_stdin: bool,
    pub dns: Vec<String>,
    pub dns_search: Vec<String>,
    pub dns_options: Vec<String>,
    pub extra_hosts: Vec<String>,
    /// `HostConfig.Links`: "name:alias" (or docker's "/name:/container/alias").
    pub links: Vec<String>,
    pub restart: crate::model::RestartPolicy,
    pub healthcheck: Option<crate::model::Healthcheck>,
    /// `--log-opt` pairs (max-size, max-file).
    pub log_opts: Vec<(String, String)>,
    pub auto_remove: bool,
    pub labels: std::collections::BTreeMap<String, String>,
    pub network_mode: String,
    pub endpoints: Vec<(String, EndpointRequest)>,
    /// `Config.ExposedPorts`.
    pub exposed_ports: Vec<berth_ports::PortProto>,
    /// `HostConfig.PortBindings`: port → (HostIp, HostPort).
    pub port_bindings: Vec<(berth_ports::PortProto, Vec<(String, String)>)>,
    pub publish_all: bool,
}

/// Where a process's stdio goes.
pub enum Stdio {
    /// stdin from /dev/null, stdout and stderr to the container's log.
    Detached,
    /// The client's own descriptors (passed over the API socket).
    Fds([OwnedFd; 3]),
    /// A new pseudo-terminal; its master goes back to the client.
    Tty,
}

#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    pub cmd: Vec<String>,
    pub env: Vec<String>,
    pub working_dir: String,
    pub tty: bool,
}

pub(super) use crate::logs::LOG_FILE;
/// Host-side veth names: berth's own prefix, so leftovers are recognisable at start.
pub(super) const HOST_VETH_PREFIX: &str = "bv";

impl Daemon {
    pub async fn snapshot(&self) -> (Vec<Network>, Vec<Container>) {
        let st = self.state.lock().await;
        (
            st.networks.values().cloned().collect(),
            st.containers.values().cloned().collect(),
        )
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.container_dir(id).join(LOG_FILE)
    }
}

/// The sandbox's /etc/hosts, rewritten in place (it is bind-mounted: a rename would not
/// be seen inside).
pub(super) fn write_hosts(c: &Container, dir: &Path) -> Result<()> {
    let own: Vec<IpAddr> = c
        .endpoints
        .iter()
        .flat_map(|e| e.ipv4.into_iter().chain(e.ipv6))
        .collect();
    let hosts = if matches!(c.config.network_mode, NetworkMode::Host) {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        let mut extra = c.config.extra_hosts.clone();
        extra.extend(c.link_hosts.iter().map(|(ip, n)| (n.clone(), *ip)));
        sandbox::hosts_file(&c.config.hostname, &own, &extra)
    };
    std::fs::write(dir.join("hosts"), hosts)?;
    Ok(())
}
