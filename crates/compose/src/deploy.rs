//! A service's `deploy:` mapping. `berth compose` (one host) takes `replicas`; `berth stack
//! deploy` (the cluster) also takes `mode`, `placement.constraints`, `update_config` and
//! `endpoint_mode`. Anything else is warned about, never silently dropped.

use serde::Serialize;
use serde_yaml_ng::Value;

use crate::load::{count, key, mapping, string, strings};
use crate::Error;

/// What `deploy:` says, as far as berth carries it out.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Deploy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    /// `replicated` or `global`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_parallelism: Option<u32>,
    /// `stop-first` or `start-first`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub update_order: Option<String>,
    /// `vip` or `dnsrr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
}

/// The prefix of the warnings about keys only `stack deploy` uses (its loader drops them).
pub const STACK_ONLY: &str = "applies to `berth stack deploy`";

fn one_of(v: &Value, path: &str, allowed: &[&str]) -> Result<String, Error> {
    let s = string(v, path)?;
    if allowed.contains(&s.as_str()) {
        Ok(s)
    } else {
        Err(Error::Invalid(format!(
            "{path}: {s:?} is not one of {}",
            allowed.join(", ")
        )))
    }
}

pub(crate) fn parse(v: &Value, path: &str, warnings: &mut Vec<String>) -> Result<Deploy, Error> {
    let mut d = Deploy::default();
    let stack_only = |warnings: &mut Vec<String>, k: &str| {
        warnings.push(format!("{path}.{k}: {STACK_ONLY}, not to `berth compose`"));
    };
    for (k, x) in mapping(v, path)? {
        let k = key(k);
        let p = format!("{path}.{k}");
        match k.as_str() {
            "replicas" => d.replicas = Some(count(x, &p)?),
            "mode" => {
                d.mode = Some(one_of(x, &p, &["replicated", "global"])?);
                stack_only(warnings, &k);
            }
            "endpoint_mode" => {
                d.endpoint_mode = Some(one_of(x, &p, &["vip", "dnsrr"])?);
                stack_only(warnings, &k);
            }
            "placement" => {
                for (pk, px) in mapping(x, &p)? {
                    let pk = key(pk);
                    if pk == "constraints" {
                        d.constraints = strings(px, &format!("{p}.constraints"))?;
                    } else {
                        warnings.push(format!("{p}.{pk}: not supported by berth: ignored"));
                    }
                }
                stack_only(warnings, &k);
            }
            "update_config" => {
                for (uk, ux) in mapping(x, &p)? {
                    let uk = key(uk);
                    let up = format!("{p}.{uk}");
                    match uk.as_str() {
                        "parallelism" => d.update_parallelism = Some(count(ux, &up)?),
                        "order" => {
                            d.update_order = Some(one_of(ux, &up, &["stop-first", "start-first"])?);
                        }
                        _ => warnings.push(format!("{up}: not supported by berth: ignored")),
                    }
                }
                stack_only(warnings, &k);
            }
            _ => warnings.push(format!("{p}: not supported by berth: ignored")),
        }
    }
    Ok(d)
}
