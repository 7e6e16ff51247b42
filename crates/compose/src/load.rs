//! From file text to a validated `Project`: YAML (with line and column on syntax errors),
//! several files merged, interpolation, the supported keys read and every other key named
//! in a warning, references checked.

use indexmap::IndexMap;
use serde_yaml_ng::{Mapping, Value};

use crate::interpolate::{interpolate, parse_env_file};
use crate::model::*;
use crate::Error;

pub struct Source {
    pub path: String,
    pub text: String,
}

#[derive(Debug)]
pub struct Loaded {
    pub project: Project,
    /// One line per key berth does not carry out (never silently dropped).
    pub warnings: Vec<String>,
}

/// What the loader needs from outside: variables (shell, then `.env`) and `env_file`s.
pub struct Context<'a> {
    pub lookup: &'a dyn Fn(&str) -> Option<String>,
    pub read_file: &'a dyn Fn(&str) -> Result<String, String>,
    /// `-p`, or the directory's name when there is no top-level `name:`.
    pub project_name: Option<String>,
    pub default_name: String,
}

const SERVICE_KEYS: &[&str] = &[
    "command",
    "entrypoint",
    "environment",
    "env_file",
    "working_dir",
    "hostname",
    "ports",
    "expose",
    "networks",
    "network_mode",
    "dns",
    "extra_hosts",
    "links",
    "depends_on",
    "healthcheck",
    "restart",
    "deploy",
    "scale",
    "labels",
    "stop_grace_period",
    "container_name",
];

/// Keys whose absence of support deserves a reason, not just "not supported".
fn why_not(key: &str) -> &'static str {
    match key {
        "image" | "build" | "pull_policy" | "platform" => {
            "berth runs host programs, not images; give the program in `command`"
        }
        "volumes" | "tmpfs" | "devices" => "sandboxes see the host's filesystem as it is",
        "user" | "cap_add" | "cap_drop" | "privileged" | "security_opt" => {
            "sandboxes run as the daemon's user with its capabilities"
        }
        _ => "not part of what berth runs",
    }
}

pub fn load(files: &[Source], ctx: &Context<'_>) -> Result<Loaded, Error> {
    if files.is_empty() {
        return Err(Error::Invalid("no compose file given".into()));
    }
    let mut merged = Value::Mapping(Mapping::new());
    for f in files {
        let v: Value = serde_yaml_ng::from_str(&f.text).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            Error::Syntax {
                file: f.path.clone(),
                line,
                column,
                message: e.to_string(),
            }
        })?;
        if !matches!(v, Value::Mapping(_)) {
            return Err(Error::Invalid(format!(
                "{}: the top level must be a mapping",
                f.path
            )));
        }
        merge(&mut merged, v);
    }
    interpolate_tree(&mut merged, "", ctx.lookup)?;
    let mut warnings = Vec::new();
    let top = merged.as_mapping().expect("checked");
    let mut project_name = ctx.project_name.clone();
    for (k, _) in top {
        match key(k).as_str() {
            "services" | "networks" => {}
            "name" => {
                if project_name.is_none() {
                    project_name = Some(string(top.get("name").expect("present"), "name")?);
                }
            }
            "version" => {
                warnings.push("`version` is obsolete and ignored (as docker compose does)".into())
            }
            other => warnings.push(format!(
                "top-level `{other}` is not supported by berth: ignored"
            )),
        }
    }
    let name = normalize(&project_name.unwrap_or_else(|| ctx.default_name.clone()));
    if name.is_empty() {
        return Err(Error::Invalid(
            "the project name is empty: give one with -p NAME (lower-case letters, digits, - and _)".into(),
        ));
    }
    let Some(Value::Mapping(svcs)) = top.get("services") else {
        return Err(Error::Invalid(
            "no `services` mapping: nothing to run".into(),
        ));
    };
    let mut services = IndexMap::new();
    for (k, v) in svcs {
        let sname = key(k);
        if !valid_service_name(&sname) {
            return Err(Error::Invalid(format!(
                "services.{sname}: invalid service name (letters, digits, `.`, `_` and `-`)"
            )));
        }
        let s = service(&sname, v, ctx, &mut warnings)?;
        services.insert(sname, s);
    }
    let mut networks = IndexMap::new();
    if let Some(v) = top.get("networks") {
        let m = mapping(v, "networks")?;
        for (k, v) in m {
            let nkey = key(k);
            networks.insert(nkey.clone(), network(&name, &nkey, v, &mut warnings)?);
        }
    }
    // Services without networks (and without a network mode) join `default`.
    let mut uses_default = false;
    for s in services.values_mut() {
        if s.network_mode.is_none() && s.networks.is_empty() {
            s.networks
                .insert("default".into(), ServiceNetwork::default());
        }
        uses_default |= s.networks.contains_key("default");
    }
    if uses_default && !networks.contains_key("default") {
        networks.insert(
            "default".into(),
            Network {
                name: format!("{name}_default"),
                driver: "bridge".into(),
                ..Default::default()
            },
        );
    }
    let project = Project {
        name,
        services,
        networks,
    };
    check_references(&project)?;
    Ok(Loaded { project, warnings })
}

/// docker compose's normalisation: lower case, only `a-z0-9_-`.
pub fn normalize(s: &str) -> String {
    s.to_ascii_lowercase()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect()
}

fn valid_service_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Later files override earlier ones: mappings merge key by key, anything else is replaced.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            for (k, v) in o {
                match b.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        b.insert(k, v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

fn interpolate_tree(
    v: &mut Value,
    path: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<(), Error> {
    match v {
        Value::String(s) => {
            *s = interpolate(s, lookup).map_err(|e| Error::Invalid(format!("{path}: {e}")))?;
        }
        Value::Sequence(seq) => {
            for (i, x) in seq.iter_mut().enumerate() {
                interpolate_tree(x, &format!("{path}[{i}]"), lookup)?;
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m.iter_mut() {
                let p = if path.is_empty() {
                    key(k)
                } else {
                    format!("{path}.{}", key(k))
                };
                interpolate_tree(x, &p, lookup)?;
            }
        }
        Value::Tagged(t) => interpolate_tree(&mut t.value, path, lookup)?,
        _ => {}
    }
    Ok(())
}

pub(crate) fn key(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => scalar(other).unwrap_or_else(|| format!("{other:?}")),
    }
}

fn scalar(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

pub(crate) fn string(v: &Value, path: &str) -> Result<String, Error> {
    scalar(v).ok_or_else(|| Error::Invalid(format!("{path}: expected a string")))
}

pub(crate) fn mapping<'a>(v: &'a Value, path: &str) -> Result<&'a Mapping, Error> {
    v.as_mapping()
        .ok_or_else(|| Error::Invalid(format!("{path}: expected a mapping")))
}

pub(crate) fn strings(v: &Value, path: &str) -> Result<Vec<String>, Error> {
    match v {
        Value::Sequence(s) => s
            .iter()
            .enumerate()
            .map(|(i, x)| string(x, &format!("{path}[{i}]")))
            .collect(),
        Value::Null => Ok(vec![]),
        other => Ok(vec![string(other, path)?]),
    }
}

/// A command as a list, or a string split the way a shell would.
fn command(v: &Value, path: &str) -> Result<Vec<String>, Error> {
    match v {
        Value::Sequence(_) => strings(v, path),
        Value::Null => Ok(vec![]),
        other => {
            let s = string(other, path)?;
            shlex::split(&s)
                .ok_or_else(|| Error::Invalid(format!("{path}: unbalanced quotes in {s:?}")))
        }
    }
}

/// `KEY: value` mapping or `["KEY=value", …]` list (environment, labels). `None` values
/// (a bare `KEY`) come from `fill`, or are dropped when it has none.
fn key_values(
    v: &Value,
    path: &str,
    fill: &dyn Fn(&str) -> Option<String>,
) -> Result<IndexMap<String, String>, Error> {
    let mut out = IndexMap::new();
    match v {
        Value::Mapping(m) => {
            for (k, x) in m {
                let k = key(k);
                let val = match x {
                    Value::Null => fill(&k),
                    other => Some(string(other, &format!("{path}.{k}"))?),
                };
                if let Some(val) = val {
                    out.insert(k, val);
                }
            }
        }
        Value::Sequence(s) => {
            for (i, x) in s.iter().enumerate() {
                let item = string(x, &format!("{path}[{i}]"))?;
                match item.split_once('=') {
                    Some((k, val)) => {
                        out.insert(k.to_string(), val.to_string());
                    }
                    None => {
                        if let Some(val) = fill(&item) {
                            out.insert(item, val);
                        }
                    }
                }
            }
        }
        Value::Null => {}
        _ => {
            return Err(Error::Invalid(format!(
                "{path}: expected a mapping or a list of KEY=VALUE"
            )))
        }
    }
    Ok(out)
}

fn service(
    name: &str,
    v: &Value,
    ctx: &Context<'_>,
    warnings: &mut Vec<String>,
) -> Result<Service, Error> {
    let path = format!("services.{name}");
    let m = match v {
        Value::Mapping(m) => m,
        Value::Null => &Mapping::new(),
        _ => return Err(Error::Invalid(format!("{path}: expected a mapping"))),
    };
    let mut s = Service {
        replicas: 1,
        ..Default::default()
    };
    let mut env_files: IndexMap<String, String> = IndexMap::new();
    let mut scale = None;
    let mut replicas = None;
    for (k, x) in m {
        let k = key(k);
        let p = format!("{path}.{k}");
        match k.as_str() {
            "command" => s.command = command(x, &p)?,
            "entrypoint" => s.entrypoint = command(x, &p)?,
            "environment" => s.environment = key_values(x, &p, ctx.lookup)?,
            "env_file" => {
                for f in strings(x, &p)? {
                    let text = (ctx.read_file)(&f).map_err(|e| Error::Invalid(format!("{p}: {f}: {e}")))?;
                    for (ek, ev) in parse_env_file(&text, ctx.lookup).map_err(|e| Error::Invalid(format!("{p}: {f}: {e}")))? {
                        env_files.insert(ek, ev);
                    }
                }
            }
            "working_dir" => s.working_dir = string(x, &p)?,
            "hostname" => s.hostname = string(x, &p)?,
            "ports" => {
                let Value::Sequence(list) = x else {
                    return Err(Error::Invalid(format!("{p}: expected a list")));
                };
                for (i, item) in list.iter().enumerate() {
                    s.ports.push(port(item, &format!("{p}[{i}]"))?);
                }
            }
            "expose" => s.expose = strings(x, &p)?,
            "networks" => s.networks = service_networks(x, &p)?,
            "network_mode" => s.network_mode = Some(string(x, &p)?),
            "dns" => s.dns = strings(x, &p)?,
            "extra_hosts" => {
                s.extra_hosts = match x {
                    Value::Mapping(_) => key_values(x, &p, &|_| None)?
                        .into_iter()
                        .map(|(h, ip)| format!("{h}:{ip}"))
                        .collect(),
                    _ => strings(x, &p)?.into_iter().map(|h| h.replacen('=', ":", 1)).collect(),
                }
            }
            "links" => s.links = strings(x, &p)?,
            "depends_on" => s.depends_on = depends_on(x, &p, warnings)?,
            "healthcheck" => s.healthcheck = healthcheck(x, &p, warnings)?,
            "restart" => {
                let r = string(x, &p)?;
                let ok = matches!(r.as_str(), "no" | "always" | "unless-stopped" | "on-failure")
                    || r.strip_prefix("on-failure:").is_some_and(|n| n.parse::<u32>().is_ok());
                if !ok {
                    return Err(Error::Invalid(format!(
                        "{p}: {r:?} is not a restart policy (no, always, on-failure[:N], unless-stopped)"
                    )));
                }
                s.restart = Some(r);
            }
            "deploy" => {
                s.deploy = crate::deploy::parse(x, &p, warnings)?;
                replicas = s.deploy.replicas;
            }
            "scale" => scale = Some(count(x, &p)?),
            "labels" => s.labels = key_values(x, &p, &|_| None)?,
            "stop_grace_period" => {
                let g = string(x, &p)?;
                crate::duration_ns(&g).map_err(|e| Error::Invalid(format!("{p}: {e}")))?;
                s.stop_grace_period = Some(g);
            }
            "container_name" => warnings.push(format!(
                "{p}: not supported (containers are named PROJECT-SERVICE-N so replicas can scale): ignored"
            )),
            other => {
                debug_assert!(!SERVICE_KEYS.contains(&other));
                warnings.push(format!("{p}: not supported by berth ({}): ignored", why_not(other)));
            }
        }
    }
    for (k, v) in env_files {
        s.environment.entry(k).or_insert(v);
    }
    if s.command.is_empty() && s.entrypoint.is_empty() {
        return Err(Error::Invalid(format!(
            "{path}: `command` is required: berth runs host programs (e.g. command: [\"nginx\", \"-g\", \"daemon off;\"])"
        )));
    }
    if let (Some(_), Some(_)) = (&s.network_mode, m.get("networks")) {
        return Err(Error::Invalid(format!(
            "{path}: `network_mode` and `networks` cannot be combined"
        )));
    }
    if let Some(mode) = &s.network_mode {
        let ok = matches!(mode.as_str(), "none" | "host" | "bridge")
            || mode.starts_with("service:")
            || mode.starts_with("container:");
        if !ok {
            return Err(Error::Invalid(format!(
                "{path}.network_mode: {mode:?} is not none, host, bridge, service:NAME or container:NAME"
            )));
        }
    }
    s.replicas = replicas.or(scale).unwrap_or(1);
    Ok(s)
}

pub(crate) fn count(v: &Value, path: &str) -> Result<u32, Error> {
    v.as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .or_else(|| scalar(v).and_then(|s| s.parse().ok()))
        .ok_or_else(|| Error::Invalid(format!("{path}: expected a number of replicas")))
}

fn port(v: &Value, path: &str) -> Result<Port, Error> {
    match v {
        Value::Mapping(m) => {
            let get = |k: &str| {
                m.get(k)
                    .map(|x| string(x, &format!("{path}.{k}")))
                    .transpose()
            };
            for (k, _) in m {
                let k = key(k);
                if !matches!(
                    k.as_str(),
                    "target"
                        | "published"
                        | "host_ip"
                        | "protocol"
                        | "mode"
                        | "name"
                        | "app_protocol"
                ) {
                    return Err(Error::Invalid(format!("{path}.{k}: unknown port key")));
                }
            }
            Ok(Port {
                target: get("target")?
                    .ok_or_else(|| Error::Invalid(format!("{path}: `target` is required")))?,
                published: get("published")?.unwrap_or_default(),
                host_ip: get("host_ip")?.unwrap_or_default(),
                protocol: get("protocol")?.unwrap_or_else(|| "tcp".into()),
            })
        }
        other => {
            let s = string(other, path)?;
            let (rest, protocol) = match s.rsplit_once('/') {
                Some((r, p)) => (r.to_string(), p.to_string()),
                None => (s.clone(), "tcp".to_string()),
            };
            // [IP:][HOST:]CONTAINER, IPv6 in brackets.
            let (host_ip, rest) = if let Some(r) = rest.strip_prefix('[') {
                let (ip, after) = r
                    .split_once("]:")
                    .ok_or_else(|| Error::Invalid(format!("{path}: bad address in {s:?}")))?;
                (ip.to_string(), after.to_string())
            } else if rest.matches(':').count() == 2 {
                let (ip, after) = rest.split_once(':').expect("two colons");
                (ip.to_string(), after.to_string())
            } else {
                (String::new(), rest)
            };
            let (published, target) = match rest.rsplit_once(':') {
                Some((h, c)) => (h.to_string(), c.to_string()),
                None => (String::new(), rest),
            };
            if target.is_empty() || !target.chars().all(|c| c.is_ascii_digit() || c == '-') {
                return Err(Error::Invalid(format!(
                    "{path}: {s:?} is not [IP:][HOST:]CONTAINER[/PROTO]"
                )));
            }
            Ok(Port {
                target,
                published,
                host_ip,
                protocol,
            })
        }
    }
}

fn service_networks(v: &Value, path: &str) -> Result<IndexMap<String, ServiceNetwork>, Error> {
    let mut out = IndexMap::new();
    match v {
        Value::Sequence(_) => {
            for n in strings(v, path)? {
                out.insert(n, ServiceNetwork::default());
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                let n = key(k);
                let p = format!("{path}.{n}");
                let mut sn = ServiceNetwork::default();
                if let Value::Mapping(o) = x {
                    for (ok, ov) in o {
                        match key(ok).as_str() {
                            "aliases" => sn.aliases = strings(ov, &format!("{p}.aliases"))?,
                            "ipv4_address" => {
                                sn.ipv4_address = Some(string(ov, &format!("{p}.ipv4_address"))?)
                            }
                            "ipv6_address" => {
                                sn.ipv6_address = Some(string(ov, &format!("{p}.ipv6_address"))?)
                            }
                            other => {
                                return Err(Error::Invalid(format!(
                                "{p}.{other}: unknown key (aliases, ipv4_address, ipv6_address)"
                            )))
                            }
                        }
                    }
                } else if !x.is_null() {
                    return Err(Error::Invalid(format!(
                        "{p}: expected a mapping or nothing"
                    )));
                }
                out.insert(n, sn);
            }
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{path}: expected a list or a mapping"
            )))
        }
    }
    Ok(out)
}

fn depends_on(
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<IndexMap<String, Condition>, Error> {
    let mut out = IndexMap::new();
    match v {
        Value::Sequence(_) => {
            for n in strings(v, path)? {
                out.insert(n, Condition::ServiceStarted);
            }
        }
        Value::Mapping(m) => {
            for (k, x) in m {
                let n = key(k);
                let p = format!("{path}.{n}");
                let mut cond = Condition::ServiceStarted;
                for (ck, cv) in mapping(x, &p)? {
                    match key(ck).as_str() {
                        "condition" => {
                            cond = match string(cv, &format!("{p}.condition"))?.as_str() {
                                "service_started" => Condition::ServiceStarted,
                                "service_healthy" => Condition::ServiceHealthy,
                                "service_completed_successfully" => Condition::ServiceCompletedSuccessfully,
                                other => return Err(Error::Invalid(format!(
                                    "{p}.condition: {other:?} is not service_started, service_healthy or service_completed_successfully"
                                ))),
                            }
                        }
                        other => warnings.push(format!("{p}.{other}: not supported by berth: ignored")),
                    }
                }
                out.insert(n, cond);
            }
        }
        _ => {
            return Err(Error::Invalid(format!(
                "{path}: expected a list or a mapping"
            )))
        }
    }
    Ok(out)
}

fn healthcheck(
    v: &Value,
    path: &str,
    warnings: &mut Vec<String>,
) -> Result<Option<Healthcheck>, Error> {
    let m = mapping(v, path)?;
    let mut h = Healthcheck {
        test: vec![],
        interval: "30s".into(),
        timeout: "30s".into(),
        retries: 3,
        start_period: "0s".into(),
    };
    for (k, x) in m {
        let k = key(k);
        let p = format!("{path}.{k}");
        match k.as_str() {
            "test" => {
                h.test = match x {
                    Value::Sequence(_) => strings(x, &p)?,
                    other => vec!["CMD-SHELL".into(), string(other, &p)?],
                };
                if !matches!(
                    h.test.first().map(String::as_str),
                    Some("CMD" | "CMD-SHELL" | "NONE")
                ) {
                    return Err(Error::Invalid(format!(
                        "{p}: a list must start with CMD, CMD-SHELL or NONE"
                    )));
                }
            }
            "interval" => h.interval = string(x, &p)?,
            "timeout" => h.timeout = string(x, &p)?,
            "retries" => h.retries = count(x, &p)?,
            "start_period" => h.start_period = string(x, &p)?,
            "disable" => {
                if x.as_bool() == Some(true) {
                    h.test = vec!["NONE".into()];
                }
            }
            other => warnings.push(format!("{path}.{other}: not supported by berth: ignored")),
        }
    }
    if h.test.is_empty() {
        return Err(Error::Invalid(format!("{path}: `test` is required")));
    }
    for (k, d) in [
        ("interval", &h.interval),
        ("timeout", &h.timeout),
        ("start_period", &h.start_period),
    ] {
        crate::duration_ns(d).map_err(|e| Error::Invalid(format!("{path}.{k}: {e}")))?;
    }
    Ok(Some(h))
}

fn network(
    project: &str,
    nkey: &str,
    v: &Value,
    warnings: &mut Vec<String>,
) -> Result<Network, Error> {
    let path = format!("networks.{nkey}");
    let mut n = Network {
        name: format!("{project}_{nkey}"),
        driver: "bridge".into(),
        ..Default::default()
    };
    let Some(m) = v.as_mapping() else {
        if v.is_null() {
            return Ok(n);
        }
        return Err(Error::Invalid(format!("{path}: expected a mapping")));
    };
    let mut given_name = None;
    for (k, x) in m {
        let k = key(k);
        let p = format!("{path}.{k}");
        match k.as_str() {
            "driver" => {
                n.driver = string(x, &p)?;
                if n.driver != "bridge" {
                    return Err(Error::Invalid(format!(
                        "{p}: driver {:?} is not available to compose on one host (bridge only)",
                        n.driver
                    )));
                }
            }
            "internal" => n.internal = x.as_bool().unwrap_or(false),
            "attachable" => n.attachable = x.as_bool().unwrap_or(false),
            "enable_ipv6" => n.enable_ipv6 = x.as_bool().unwrap_or(false),
            "external" => n.external = x.as_bool().unwrap_or(false),
            "name" => given_name = Some(string(x, &p)?),
            "labels" => n.labels = key_values(x, &p, &|_| None)?,
            "ipam" => {
                for (ik, iv) in mapping(x, &p)? {
                    let ik = key(ik);
                    if ik != "config" {
                        warnings.push(format!(
                            "{p}.{ik}: not supported by berth (ipam.config only): ignored"
                        ));
                        continue;
                    }
                    let Value::Sequence(list) = iv else {
                        return Err(Error::Invalid(format!("{p}.config: expected a list")));
                    };
                    for (i, c) in list.iter().enumerate() {
                        let cp = format!("{p}.config[{i}]");
                        let mut cfg = IpamConfig::default();
                        for (ck, cv) in mapping(c, &cp)? {
                            match key(ck).as_str() {
                                "subnet" => cfg.subnet = Some(string(cv, &cp)?),
                                "gateway" => cfg.gateway = Some(string(cv, &cp)?),
                                "ip_range" => cfg.ip_range = Some(string(cv, &cp)?),
                                "aux_addresses" => {
                                    cfg.aux_addresses = key_values(cv, &cp, &|_| None)?
                                }
                                other => {
                                    return Err(Error::Invalid(format!(
                                        "{cp}.{other}: unknown key"
                                    )))
                                }
                            }
                        }
                        n.ipam.push(cfg);
                    }
                }
            }
            _ => warnings.push(format!("{p}: not supported by berth: ignored")),
        }
    }
    n.name = match (given_name, n.external) {
        (Some(g), _) => g,
        (None, true) => nkey.to_string(),
        (None, false) => n.name,
    };
    Ok(n)
}

fn check_references(p: &Project) -> Result<(), Error> {
    for (name, s) in &p.services {
        for n in s.networks.keys() {
            if !p.networks.contains_key(n) {
                return Err(Error::Invalid(format!(
                    "services.{name}.networks: network {n:?} is not declared under the top-level `networks`"
                )));
            }
        }
        for d in s.depends_on.keys() {
            if !p.services.contains_key(d) {
                return Err(Error::Invalid(format!(
                    "services.{name}.depends_on: no service {d:?}"
                )));
            }
        }
        for l in &s.links {
            let target = l.split(':').next().unwrap_or(l);
            if !p.services.contains_key(target) {
                return Err(Error::Invalid(format!(
                    "services.{name}.links: no service {target:?}"
                )));
            }
        }
        if let Some(t) = s
            .network_mode
            .as_deref()
            .and_then(|m| m.strip_prefix("service:"))
        {
            if !p.services.contains_key(t) {
                return Err(Error::Invalid(format!(
                    "services.{name}.network_mode: no service {t:?}"
                )));
            }
        }
    }
    crate::plan::order(p).map(|_| ())
}
