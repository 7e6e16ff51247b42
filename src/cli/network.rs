//! `berth network …`

use std::collections::BTreeMap;
use std::io::BufRead;

use berth_api::network::{Ipam, IpamConfig, NetworkPruneResponse};
use berth_api::query::{encode, ListQuery};
use berth_api::{
    EndpointIpamConfig, EndpointSettings, Filters, Network, NetworkConnectRequest,
    NetworkCreateRequest, NetworkCreateResponse, NetworkDisconnectRequest,
};
use clap::Subcommand;
use serde_json::{json, Value};

use super::output::natural_cmp;
use super::{enc, for_each};
use crate::api::client::{Client, ClientError};

#[derive(Subcommand)]
pub enum NetworkCmd {
    /// Create a network
    ///
    /// Example: berth network create --subnet 10.90.0.0/24 --gateway 10.90.0.1 dev
    Create(CreateArgs),
    /// List networks
    ///
    /// Example: berth network ls --filter driver=bridge
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks
    ///
    /// Example: berth network inspect -f "{{range .IPAM.Config}}{{.Subnet}}{{end}}" dev
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(short, long)]
        verbose: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks
    ///
    /// Example: berth network rm dev
    #[command(alias = "remove")]
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Connect a container to a network
    ///
    /// Example: berth network connect --alias db --ip 10.90.0.50 dev es
    Connect {
        #[arg(long)]
        ip: Option<String>,
        #[arg(long)]
        ip6: Option<String>,
        #[arg(long)]
        alias: Vec<String>,
        network: String,
        container: String,
    },
    /// Disconnect a container from a network
    ///
    /// Example: berth network disconnect dev es
    Disconnect {
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
    /// Remove all unused networks
    ///
    /// Example: berth network prune -f
    Prune {
        #[arg(short, long)]
        force: bool,
        #[arg(long)]
        filter: Vec<String>,
    },
}

#[derive(clap::Args)]
pub struct CreateArgs {
    #[arg(short, long, default_value = "bridge")]
    driver: String,
    #[arg(long)]
    subnet: Vec<String>,
    #[arg(long)]
    gateway: Vec<String>,
    #[arg(long = "ip-range")]
    ip_range: Vec<String>,
    #[arg(long = "aux-address")]
    aux_address: Vec<String>,
    #[arg(long)]
    internal: bool,
    #[arg(long)]
    ipv6: bool,
    #[arg(long)]
    attachable: bool,
    /// Driver options (-o com.docker.network.bridge.name=br0)
    #[arg(short = 'o', long = "opt")]
    opt: Vec<String>,
    #[arg(long)]
    label: Vec<String>,
    name: String,
}

#[derive(clap::Args)]
pub struct LsArgs {
    #[arg(short, long)]
    quiet: bool,
    #[arg(short, long)]
    filter: Vec<String>,
    #[arg(long)]
    format: Option<String>,
    #[arg(long = "no-trunc")]
    no_trunc: bool,
}

fn kv(list: &[String], what: &str) -> Result<BTreeMap<String, String>, ClientError> {
    list.iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .or_else(|| (what == "label").then(|| (s.clone(), String::new())))
                .ok_or_else(|| ClientError::Api {
                    status: 400,
                    message: format!("invalid {what} {s:?}: expected KEY=VALUE"),
                })
        })
        .collect()
}

/// docker's rule: each --ip-range/--gateway/--aux-address belongs to the --subnet that
/// contains it.
fn ipam_config(a: &CreateArgs) -> Result<Vec<IpamConfig>, ClientError> {
    let nets: Vec<ipnet::IpNet> = a.subnet.iter().filter_map(|s| s.parse().ok()).collect();
    let owner = |ip: &str, what: &str| -> Result<usize, ClientError> {
        if a.subnet.len() == 1 {
            return Ok(0);
        }
        let addr: Option<std::net::IpAddr> = ip.split('/').next().and_then(|s| s.parse().ok());
        addr.and_then(|ip| nets.iter().position(|n| n.contains(&ip)))
            .ok_or_else(|| ClientError::Api {
                status: 400,
                message: format!("no matching subnet for {what} {ip}"),
            })
    };
    if a.subnet.is_empty()
        && !(a.gateway.is_empty() && a.ip_range.is_empty() && a.aux_address.is_empty())
    {
        return Err(ClientError::Api {
            status: 400,
            message: "gateway, ip-range and aux-address need a --subnet".into(),
        });
    }
    let mut cfgs: Vec<IpamConfig> = a
        .subnet
        .iter()
        .map(|s| IpamConfig {
            subnet: s.clone(),
            ..Default::default()
        })
        .collect();
    for g in &a.gateway {
        cfgs[owner(g, "gateway")?].gateway = g.clone();
    }
    for r in &a.ip_range {
        cfgs[owner(r, "ip-range")?].ip_range = r.clone();
    }
    for (k, v) in kv(&a.aux_address, "aux-address")? {
        let i = owner(&v, "aux-address")?;
        cfgs[i].auxiliary_addresses.insert(k, v);
    }
    Ok(cfgs)
}

pub(super) async fn run(c: &Client, cmd: NetworkCmd) -> Result<i32, ClientError> {
    match cmd {
        NetworkCmd::Create(a) => {
            let body = NetworkCreateRequest {
                driver: a.driver.clone(),
                enable_ipv6: a.ipv6.then_some(true),
                ipam: Some(Ipam {
                    driver: "default".into(),
                    options: Some(BTreeMap::new()),
                    config: Some(ipam_config(&a)?),
                }),
                internal: a.internal,
                attachable: a.attachable,
                options: Some(kv(&a.opt, "option")?),
                labels: Some(kv(&a.label, "label")?),
                name: a.name,
            };
            let r: NetworkCreateResponse = c.post_json("/networks/create", &body).await?;
            println!("{}", r.id);
            Ok(0)
        }
        NetworkCmd::Ls(a) => ls(c, a).await,
        NetworkCmd::Inspect {
            format, networks, ..
        } => super::inspect_each(c, "/networks", &networks, &format).await,
        NetworkCmd::Rm { force, networks } => {
            for_each(&networks, |n| async move {
                match c.delete(&format!("/networks/{}", enc(&n))).await {
                    Ok(()) => {
                        println!("{n}");
                        Ok(())
                    }
                    Err(ClientError::Api { status: 404, .. }) if force => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await
        }
        NetworkCmd::Connect {
            ip,
            ip6,
            alias,
            network,
            container,
        } => {
            let body = NetworkConnectRequest {
                container,
                endpoint_config: Some(EndpointSettings {
                    ipam_config: Some(EndpointIpamConfig {
                        ipv4_address: ip.unwrap_or_default(),
                        ipv6_address: ip6.unwrap_or_default(),
                    }),
                    aliases: Some(alias),
                    ..Default::default()
                }),
            };
            c.post_json::<_, ()>(&format!("/networks/{}/connect", enc(&network)), &body)
                .await?;
            Ok(0)
        }
        NetworkCmd::Disconnect {
            force,
            network,
            container,
        } => {
            let body = NetworkDisconnectRequest { container, force };
            c.post_json::<_, ()>(&format!("/networks/{}/disconnect", enc(&network)), &body)
                .await?;
            Ok(0)
        }
        NetworkCmd::Prune { force, filter } => {
            if !force && !confirm("WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue? [y/N] ") {
                return Ok(0);
            }
            let q = encode(&ListQuery {
                all: false,
                filters: Some(filters_json(&filter)?),
            });
            let r: NetworkPruneResponse = c.post_as(&format!("/networks/prune{q}")).await?;
            let deleted = r.networks_deleted;
            if !deleted.is_empty() {
                println!("Deleted Networks:");
                for d in deleted {
                    println!("{d}");
                }
                // docker ends the list with an empty line.
                println!();
            }
            Ok(0)
        }
    }
}

pub(super) fn confirm(prompt: &str) -> bool {
    eprint!("{prompt}");
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    matches!(line.trim(), "y" | "Y" | "yes")
}

/// `--filter k=v` flags as docker's filter JSON.
pub(super) fn filters_json(list: &[String]) -> Result<String, ClientError> {
    Filters::from_flags(list)
        .map(|f| f.to_json())
        .map_err(|e| ClientError::Api {
            status: 400,
            message: e.to_string(),
        })
}

async fn ls(c: &Client, a: LsArgs) -> Result<i32, ClientError> {
    let q = encode(&ListQuery {
        all: false,
        filters: Some(filters_json(&a.filter)?),
    });
    let mut nets: Vec<Network> = c.get_as(&format!("/networks{q}")).await?;
    nets.sort_by(|x, y| natural_cmp(&x.name, &y.name));
    // Rows for the template engine, which renders JSON values: docker's `ls` fields.
    let rows: Vec<Value> = nets
        .iter()
        .map(|n| {
            let id = n.id.as_str();
            let labels = n
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(",");
            json!({
                "CreatedAt": n.created,
                "Driver": n.driver,
                "ID": if a.no_trunc { id } else { &id[..id.len().min(12)] },
                "IPv4": n.enable_ipv4.to_string(),
                "IPv6": n.enable_ipv6.to_string(),
                "Internal": n.internal.to_string(),
                "Labels": labels,
                "Name": n.name,
                "Scope": n.scope,
            })
        })
        .collect();
    if a.quiet {
        for r in &rows {
            println!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let template = a
        .format
        .unwrap_or_else(|| "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}".into());
    let headers = [
        ("ID", "NETWORK ID"),
        ("Name", "NAME"),
        ("Driver", "DRIVER"),
        ("Scope", "SCOPE"),
        ("CreatedAt", "CREATED AT"),
        ("IPv4", "IPV4"),
        ("IPv6", "IPV6"),
        ("Internal", "INTERNAL"),
        ("Labels", "LABELS"),
    ];
    Ok(super::output::print_list(&template, &rows, &headers))
}
