//! `berth events` (docker's event stream and its text) and `berth catalog` (the service
//! catalog, optionally as a blocking query).

use std::io::Write;

use berth_api::discovery::{Catalog, Message};
use serde_json::Value;

use super::network::filters_json;
use super::{enc, output};
use crate::api::client::{Client, ClientError};

#[derive(clap::Args)]
pub struct EventsArgs {
    /// Filter output (type=container|network, event=start, container=NAME, network=NAME,
    /// label=KEY[=VALUE])
    #[arg(short, long)]
    filter: Vec<String>,
    /// Go template per event, or `json`
    #[arg(long)]
    format: Option<String>,
    /// Show events since a time (unix seconds, RFC 3339, or a duration ago like 10m)
    #[arg(long)]
    since: Option<String>,
    /// Stream events until a time (same forms as --since)
    #[arg(long)]
    until: Option<String>,
}

/// docker's time arguments, as unix seconds with nanoseconds.
fn to_unix(s: &str) -> Result<String, ClientError> {
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_string());
    }
    if let Ok(d) = super::parse_duration(s) {
        let t = chrono::Utc::now() - chrono::Duration::from_std(d).unwrap_or_default();
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    chrono::DateTime::parse_from_rfc3339(s)
        .map(|t| format!("{}.{:09}", t.timestamp(), t.timestamp_subsec_nanos()))
        .map_err(|_| ClientError::Api {
            status: 400,
            message: format!(
                "invalid time {s:?}: use unix seconds, RFC 3339 or a duration like 10m"
            ),
        })
}

/// docker's line: `TIME TYPE ACTION ID (k=v, …)`.
fn default_line(m: &Message) -> String {
    let nanos = m.time_nano;
    let t = chrono::DateTime::from_timestamp(
        nanos.div_euclid(1_000_000_000),
        u32::try_from(nanos.rem_euclid(1_000_000_000)).unwrap_or(0),
    )
    .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string())
    .unwrap_or_default();
    let attrs: Vec<String> = m
        .actor
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "{t} {} {} {} ({})",
        m.typ,
        m.action,
        m.actor.id,
        attrs.join(", ")
    )
}

/// Turns the stream's JSON lines into text as they arrive.
struct Lines {
    buf: Vec<u8>,
    format: Option<String>,
}

impl Write for Lines {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        while let Some(i) = self.buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.buf.drain(..=i).collect();
            let Ok(v) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let text = match self.format.as_deref() {
                None | Some("") => match serde_json::from_value::<Message>(v) {
                    Ok(m) => default_line(&m),
                    Err(_) => continue,
                },
                Some("json") => v.to_string(),
                Some(t) => berth_format::render(t, &v).map_err(|e| {
                    std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string())
                })?,
            };
            let mut out = std::io::stdout().lock();
            writeln!(out, "{text}")?;
            out.flush()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub(super) async fn events(c: &Client, a: EventsArgs) -> Result<i32, ClientError> {
    let mut q = vec![format!("filters={}", enc(&filters_json(&a.filter)?))];
    if let Some(s) = &a.since {
        q.push(format!("since={}", to_unix(s)?));
    }
    if let Some(u) = &a.until {
        q.push(format!("until={}", to_unix(u)?));
    }
    let mut out = Lines {
        buf: Vec::new(),
        format: a.format,
    };
    c.stream(&format!("/events?{}", q.join("&")), &mut out)
        .await?;
    Ok(0)
}

#[derive(clap::Args)]
pub struct CatalogArgs {
    /// Block until the catalog's index passes this one (from an earlier answer)
    #[arg(long)]
    index: Option<u64>,
    /// The longest to block with --index (e.g. 30s; at most 10m)
    #[arg(long, default_value = "5m")]
    wait: String,
    /// Go template over the catalog object ({{.Index}}, {{range .Services}}…), or `json`
    #[arg(long)]
    format: Option<String>,
}

pub(super) async fn catalog(c: &Client, a: CatalogArgs) -> Result<i32, ClientError> {
    let path = match a.index {
        Some(i) => format!("/catalog?index={i}&wait={}", enc(&a.wait)),
        None => "/catalog".to_string(),
    };
    let v = c.get(&path).await?;
    match a.format.as_deref() {
        None | Some("") => {
            let cat: Catalog = serde_json::from_value(v.clone()).map_err(|e| ClientError::Api {
                status: 500,
                message: format!("the catalog answer: {e}"),
            })?;
            println!("INDEX {}", cat.index);
            let mut rows = Vec::new();
            for s in &cat.services {
                for e in &s.endpoints {
                    let ports: Vec<String> = e
                        .ports
                        .iter()
                        .map(|p| match p.host_port {
                            Some(hp) => format!(
                                "{}:{hp}->{}/{}",
                                p.host_ip.as_deref().unwrap_or_default(),
                                p.private_port,
                                p.proto
                            ),
                            None => format!("{}/{}", p.private_port, p.proto),
                        })
                        .collect();
                    rows.push(vec![
                        s.name.clone(),
                        e.network.clone(),
                        e.container_name.clone(),
                        e.address.clone().unwrap_or_default(),
                        e.address_v6.clone().unwrap_or_default(),
                        ports.join(", "),
                    ]);
                }
            }
            let mut table = vec![[
                "NAME",
                "NETWORK",
                "CONTAINER",
                "ADDRESS",
                "ADDRESS6",
                "PORTS",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect::<Vec<_>>()];
            table.extend(rows);
            print!("{}", berth_format::tabwrite(&table));
        }
        Some("json") => println!("{}", output::pretty(&v)),
        Some(t) => match berth_format::render(t, &v) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("{e}");
                return Ok(1);
            }
        },
    }
    Ok(0)
}
