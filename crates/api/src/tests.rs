//! The shapes against what the real docker CLI sends (bodies captured from docker 28.2.2
//! talking to a stand-in daemon, under testdata/), and round trips of every request type.

use std::collections::BTreeMap;

use berth_ports::{PortProto, Proto};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

use crate::container::{Healthcheck, LogConfig, NetworkingConfig, RestartPolicy};
use crate::exec::ExecStartRequest;
use crate::network::{Ipam, IpamConfig};
use crate::*;

fn docker(name: &str) -> &'static str {
    match name {
        "container-create-full" => {
            include_str!("../testdata/docker-28.2.2/container-create-full.json")
        }
        "container-create-tty" => {
            include_str!("../testdata/docker-28.2.2/container-create-tty.json")
        }
        "container-create-shared" => {
            include_str!("../testdata/docker-28.2.2/container-create-shared.json")
        }
        "network-create-full" => include_str!("../testdata/docker-28.2.2/network-create-full.json"),
        "network-create-plain" => {
            include_str!("../testdata/docker-28.2.2/network-create-plain.json")
        }
        "network-connect" => include_str!("../testdata/docker-28.2.2/network-connect.json"),
        "network-disconnect" => include_str!("../testdata/docker-28.2.2/network-disconnect.json"),
        "exec-create" => include_str!("../testdata/docker-28.2.2/exec-create.json"),
        "exec-start" => include_str!("../testdata/docker-28.2.2/exec-start.json"),
        other => panic!("no capture {other}"),
    }
}

fn tcp(port: u16) -> PortProto {
    PortProto {
        port,
        proto: Proto::Tcp,
    }
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Reads a docker body as `T`, and checks that what `T` writes back is what docker sent,
/// field for field and in docker's order, for every field `T` has. That pins the names,
/// the order and Go's null-versus-empty conventions at once.
fn from_docker<T: DeserializeOwned + Serialize>(name: &str, objects: &[&str]) -> T {
    let text = docker(name);
    let t: T = serde_json::from_str(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    let sent: Value = serde_json::from_str(text).unwrap();
    let ours = serde_json::to_value(&t).unwrap();
    same_fields(&ours, &sent, name);
    for path in objects {
        let (o, s) = (ours.pointer(path), sent.pointer(path));
        same_order(o.unwrap(), s.unwrap(), &format!("{name}{path}"));
    }
    t
}

/// Every field of `ours` is in `sent` with the same value (objects compared field by field,
/// since `sent` has docker's fields that berth does not name).
fn same_fields(ours: &Value, sent: &Value, at: &str) {
    match (ours, sent) {
        (Value::Object(o), Value::Object(s)) => {
            for (k, v) in o {
                let Some(sv) = s.get(k) else {
                    panic!("{at}.{k}: written, but docker does not send it")
                };
                same_fields(v, sv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(o), Value::Array(s)) if o.len() == s.len() => {
            for (i, (v, sv)) in o.iter().zip(s).enumerate() {
                same_fields(v, sv, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(ours, sent, "{at}: written differently"),
    }
}

fn same_order(ours: &Value, sent: &Value, at: &str) {
    let ours: Vec<&String> = ours.as_object().unwrap().keys().collect();
    let sent: Vec<&String> = sent
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| ours.contains(k))
        .collect();
    assert_eq!(ours, sent, "{at}: fields out of docker's order");
}

fn round_trip<T: DeserializeOwned + Serialize + PartialEq + std::fmt::Debug>(t: &T) {
    let text = serde_json::to_string(t).unwrap();
    let back: T = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
    assert_eq!(&back, t, "{text}");
}

#[test]
fn docker_container_create_reads_as_sent() {
    let r: ContainerCreateRequest = from_docker(
        "container-create-full",
        &[
            "",
            "/HostConfig",
            "/HostConfig/LogConfig",
            "/HostConfig/RestartPolicy",
            "/Healthcheck",
            "/NetworkingConfig/EndpointsConfig/mynet",
        ],
    );
    assert_eq!(r.hostname, "myhost");
    assert!(r.attach_stdout && !r.attach_stdin);
    assert_eq!(r.env, Some(strings(&["A=1"])));
    assert_eq!(r.cmd, Some(strings(&["sleep", "60"])));
    assert_eq!(r.entrypoint, None);
    assert_eq!(r.working_dir, "/tmp");
    assert_eq!(
        r.exposed_ports.keys().copied().collect::<Vec<_>>(),
        [
            PortProto {
                port: 53,
                proto: Proto::Udp
            },
            tcp(80),
            tcp(7000)
        ]
    );
    let h = r.healthcheck.as_ref().unwrap();
    assert_eq!(h.test, ["CMD-SHELL", "true"]);
    assert_eq!((h.interval, h.timeout, h.retries), (2_000_000_000, 0, 0));
    let hc = r.host_config.as_ref().unwrap();
    assert_eq!(hc.network_mode, "mynet");
    let pb = hc.port_bindings.as_ref().unwrap();
    assert_eq!(
        pb[&tcp(80)],
        Some(vec![PortBinding {
            host_ip: String::new(),
            host_port: "8080".into()
        }])
    );
    assert_eq!(
        pb[&PortProto {
            port: 53,
            proto: Proto::Udp
        }]
            .as_ref()
            .unwrap()[0]
            .host_ip,
        "127.0.0.1"
    );
    assert_eq!(
        hc.restart_policy,
        RestartPolicy {
            name: "on-failure".into(),
            maximum_retry_count: 3
        }
    );
    assert_eq!(hc.log_config.kind, "");
    assert_eq!(hc.log_config.config.as_ref().unwrap()["max-size"], "1m");
    assert_eq!(hc.dns, Some(strings(&["1.1.1.1"])));
    assert_eq!(hc.dns_search, Some(strings(&["corp"])));
    assert_eq!(hc.dns_options, Some(strings(&["ndots:2"])));
    assert_eq!(hc.extra_hosts, Some(strings(&["h:1.2.3.4"])));
    assert_eq!(hc.links, Some(strings(&["other:o"])));
    let eps = r.networking_config.unwrap().endpoints_config.unwrap();
    let ep = &eps["mynet"];
    assert_eq!(ep.ipam_config.as_ref().unwrap().ipv4_address, "10.5.1.9");
    assert_eq!(ep.aliases, Some(strings(&["db"])));
}

#[test]
fn docker_container_create_other_forms() {
    let r: ContainerCreateRequest =
        from_docker("container-create-tty", &["", "/Healthcheck", "/HostConfig"]);
    assert!(r.tty && r.open_stdin && r.attach_stdin);
    assert_eq!(r.entrypoint, Some(strings(&["/bin/sh"])));
    assert_eq!(r.env, None);
    let h = r.healthcheck.unwrap();
    assert_eq!(
        (h.interval, h.timeout, h.start_period, h.retries),
        (0, 3_000_000_000, 1_000_000_000, 5)
    );
    let pb = r.host_config.unwrap().port_bindings.unwrap();
    assert_eq!(pb.len(), 2);
    assert_eq!(pb[&tcp(9001)].as_ref().unwrap()[0].host_port, "9001");

    let r: ContainerCreateRequest = from_docker("container-create-shared", &["", "/HostConfig"]);
    let hc = r.host_config.unwrap();
    assert_eq!(hc.network_mode, "container:web");
    assert_eq!(hc.port_bindings, Some(PortMap::new()));
    assert_eq!((hc.links, hc.extra_hosts), (None, None));
    assert!(r.exposed_ports.is_empty());
    assert_eq!(
        r.networking_config.unwrap().endpoints_config,
        Some(Default::default())
    );
}

#[test]
fn docker_network_bodies_read_as_sent() {
    let r: NetworkCreateRequest =
        from_docker("network-create-full", &["", "/IPAM", "/IPAM/Config/0"]);
    assert_eq!((r.name.as_str(), r.driver.as_str()), ("mynet", "bridge"));
    assert_eq!(r.enable_ipv6, Some(true));
    assert!(r.internal && r.attachable);
    let c = &r.ipam.as_ref().unwrap().config.as_ref().unwrap()[0];
    assert_eq!(
        (c.subnet.as_str(), c.ip_range.as_str(), c.gateway.as_str()),
        ("10.5.0.0/16", "10.5.1.0/24", "10.5.0.1")
    );
    assert_eq!(c.auxiliary_addresses["host1"], "10.5.0.5");
    assert_eq!(r.options.unwrap()["com.docker.network.bridge.name"], "br5");
    assert_eq!(r.labels.unwrap()["a"], "b");

    let r: NetworkCreateRequest = from_docker("network-create-plain", &["", "/IPAM"]);
    assert_eq!(r.enable_ipv6, None);
    assert_eq!(r.ipam.unwrap().config, Some(vec![]));

    let r: NetworkConnectRequest = from_docker("network-connect", &["", "/EndpointConfig"]);
    assert_eq!(r.container, "web");
    let ep = r.endpoint_config.unwrap();
    assert_eq!(ep.ipam_config.unwrap().ipv4_address, "10.5.1.7");
    assert_eq!(ep.aliases, Some(strings(&["db", "pg"])));
    assert_eq!(ep.driver_opts, Some(BTreeMap::new()));

    let r: NetworkDisconnectRequest = from_docker("network-disconnect", &[""]);
    assert_eq!((r.container.as_str(), r.force), ("web", true));
}

#[test]
fn docker_exec_bodies_read_as_sent() {
    let r: ExecCreateRequest = from_docker("exec-create", &[""]);
    assert_eq!(r.cmd, Some(strings(&["ls", "-l"])));
    assert_eq!(r.env, Some(strings(&["X=1"])));
    assert_eq!(r.working_dir, "/tmp");
    assert!(!r.tty && r.attach_stdout && !r.attach_stdin);
    let s: ExecStartRequest = from_docker("exec-start", &[""]);
    assert!(!s.detach && !s.tty);
}

fn full_create() -> ContainerCreateRequest {
    let mut r = ContainerCreateRequest {
        hostname: "web".into(),
        domainname: "example.org".into(),
        attach_stdin: true,
        attach_stdout: true,
        attach_stderr: true,
        tty: true,
        open_stdin: true,
        env: Some(strings(&["A=1"])),
        cmd: Some(strings(&["sleep", "60"])),
        healthcheck: Some(Healthcheck {
            test: strings(&["CMD", "true"]),
            interval: 1,
            timeout: 2,
            start_period: 3,
            retries: 4,
        }),
        image: String::new(),
        working_dir: "/srv".into(),
        entrypoint: Some(strings(&["/bin/sh", "-c"])),
        labels: Some(BTreeMap::from([("a".into(), "b".into())])),
        host_config: Some(HostConfig {
            log_config: LogConfig {
                kind: "json-file".into(),
                config: Some(BTreeMap::from([("max-file".into(), "2".into())])),
            },
            network_mode: "front".into(),
            port_bindings: None,
            restart_policy: RestartPolicy {
                name: "on-failure".into(),
                maximum_retry_count: 2,
            },
            auto_remove: true,
            dns: Some(strings(&["1.1.1.1"])),
            dns_options: Some(strings(&["ndots:1"])),
            dns_search: Some(strings(&["corp"])),
            extra_hosts: Some(strings(&["h:1.2.3.4"])),
            links: Some(strings(&["db:d"])),
            publish_all_ports: true,
        }),
        networking_config: Some(NetworkingConfig {
            endpoints_config: Some(
                [
                    (
                        "front".to_string(),
                        EndpointSettings {
                            ipam_config: Some(EndpointIpamConfig {
                                ipv4_address: "10.0.0.9".into(),
                                ipv6_address: "fd00::9".into(),
                            }),
                            aliases: Some(strings(&["www"])),
                            ..Default::default()
                        },
                    ),
                    ("back".to_string(), EndpointSettings::default()),
                ]
                .into_iter()
                .collect(),
            ),
        }),
        ..Default::default()
    };
    r.expose(PortProto {
        port: 7000,
        proto: Proto::Sctp,
    });
    r.publish(tcp(80), String::new(), "8080".into());
    r.publish(tcp(80), "::1".into(), "8081".into());
    r.publish(
        PortProto {
            port: 53,
            proto: Proto::Udp,
        },
        "127.0.0.1".into(),
        String::new(),
    );
    r
}

#[test]
fn every_request_type_round_trips() {
    round_trip(&full_create());
    round_trip(&ContainerCreateRequest::default());
    round_trip(&NetworkCreateRequest {
        driver: "bridge".into(),
        enable_ipv6: Some(false),
        ipam: Some(Ipam {
            driver: "default".into(),
            options: Some(BTreeMap::new()),
            config: Some(vec![IpamConfig {
                subnet: "10.1.0.0/16".into(),
                ip_range: "10.1.2.0/24".into(),
                gateway: "10.1.0.1".into(),
                auxiliary_addresses: BTreeMap::from([("h".into(), "10.1.0.5".into())]),
            }]),
        }),
        internal: true,
        attachable: true,
        options: Some(BTreeMap::from([("o".into(), "v".into())])),
        labels: None,
        name: "n".into(),
    });
    round_trip(&NetworkCreateRequest::default());
    round_trip(&NetworkConnectRequest {
        container: "web".into(),
        endpoint_config: Some(EndpointSettings {
            ipam_config: Some(EndpointIpamConfig::default()),
            aliases: Some(vec![]),
            ..Default::default()
        }),
    });
    round_trip(&NetworkDisconnectRequest {
        container: "web".into(),
        force: true,
    });
    round_trip(&ExecCreateRequest {
        tty: true,
        attach_stdin: true,
        attach_stderr: true,
        attach_stdout: true,
        env: Some(strings(&["A=b"])),
        working_dir: "/".into(),
        cmd: Some(strings(&["ls"])),
    });
    round_trip(&ExecStartRequest {
        detach: true,
        tty: true,
    });
}

#[test]
fn ports_are_typed_on_the_wire_as_docker_keys() {
    let v = serde_json::to_value(full_create()).unwrap();
    assert_eq!(
        v["ExposedPorts"],
        json!({"53/udp": {}, "80/tcp": {}, "7000/sctp": {}})
    );
    assert_eq!(
        v["HostConfig"]["PortBindings"],
        json!({
            "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
            "80/tcp": [{"HostIp": "", "HostPort": "8080"}, {"HostIp": "::1", "HostPort": "8081"}],
        })
    );
    // A key without a protocol is tcp; a bad key is the client's error, named with its path.
    let r: ContainerCreateRequest = serde_json::from_str(
        r#"{"ExposedPorts":{"80":{}},"HostConfig":{"PortBindings":{"81":null}}}"#,
    )
    .unwrap();
    assert!(r.exposed_ports.contains_key(&tcp(80)));
    assert_eq!(
        r.host_config.unwrap().port_bindings.unwrap()[&tcp(81)],
        None
    );
    let e = serde_json::from_str::<ContainerCreateRequest>(r#"{"ExposedPorts":{"80/xtp":{}}}"#)
        .unwrap_err()
        .to_string();
    assert!(e.contains("invalid protocol \"xtp\""), "{e}");
}

#[test]
fn unknown_fields_and_nulls_are_taken() {
    let r: ContainerCreateRequest = serde_json::from_value(json!({
        "Cmd": ["true"],
        "Volumes": {"/data": {}},
        "StopSignal": "SIGUSR1",
        "NewField2030": [1, 2, 3],
        "HostConfig": {"Privileged": false, "ShmSize": 0, "CapAdd": null, "RestartPolicy": null,
                       "LogConfig": null, "NetworkMode": null, "PortBindings": null},
        "ExposedPorts": null,
        "Healthcheck": null,
        "NetworkingConfig": null,
    }))
    .unwrap();
    assert_eq!(r.cmd, Some(strings(&["true"])));
    assert_eq!(r.host_config.unwrap(), HostConfig::default());
    let r: NetworkCreateRequest = serde_json::from_value(json!({
        "Name": "n", "Driver": null, "CheckDuplicate": true, "Scope": "local",
        "IPAM": {"Config": [{"Subnet": null, "Gateway": null, "AuxiliaryAddresses": null}]},
    }))
    .unwrap();
    assert_eq!(r.ipam.unwrap().config.unwrap()[0], IpamConfig::default());
    let r: NetworkConnectRequest = serde_json::from_value(json!({
        "Container": "c", "EndpointConfig": {"IPAMConfig": {"IPv4Address": null, "LinkLocalIPs": []}},
    }))
    .unwrap();
    assert_eq!(
        r.endpoint_config.unwrap().ipam_config,
        Some(EndpointIpamConfig::default())
    );
}

#[test]
fn structs_come_only_as_objects() {
    let err = |body: &str| {
        serde_json::from_str::<ContainerCreateRequest>(body)
            .expect_err(body)
            .to_string()
    };
    assert!(
        err(r#"{"HostConfig":[]}"#).starts_with("invalid type: sequence, expected a JSON object")
    );
    assert!(err(r#"{"HostConfig":{"RestartPolicy":["no",0]}}"#).contains("expected a JSON object"));
    assert!(err(r#"{"NetworkingConfig":{"EndpointsConfig":{"n":[]}}}"#)
        .contains("expected a JSON object"));
    assert!(err("[]").contains("expected a JSON object"));
    assert!(
        err(r#"{"HostConfig":{"PortBindings":{"80/tcp":[["", "80"]]}}}"#)
            .contains("expected a JSON object")
    );
    serde_json::from_str::<NetworkCreateRequest>(r#"{"IPAM":{"Config":[[]]}}"#).unwrap_err();
}

#[test]
fn answers_render_as_the_server_writes_them() {
    let created = ContainerCreateResponse {
        id: "abc".into(),
        warnings: vec![],
    };
    assert_eq!(
        serde_json::to_string(&created).unwrap(),
        r#"{"Id":"abc","Warnings":[]}"#
    );
    let net = NetworkCreateResponse {
        id: "n".into(),
        warning: String::new(),
    };
    assert_eq!(
        serde_json::to_string(&net).unwrap(),
        r#"{"Id":"n","Warning":""}"#
    );
    let wait = container::WaitResponse {
        status_code: 3,
        error: None,
    };
    assert_eq!(
        serde_json::to_string(&wait).unwrap(),
        r#"{"StatusCode":3,"Error":null}"#
    );
    let exposed = container::SummaryPort {
        ip: None,
        private_port: 53,
        public_port: None,
        proto: "udp".into(),
    };
    assert_eq!(
        serde_json::to_string(&exposed).unwrap(),
        r#"{"PrivatePort":53,"Type":"udp"}"#
    );
    let e: ErrorResponse = serde_json::from_str(r#"{"message":"no","extra":1}"#).unwrap();
    assert_eq!(e.message, "no");
    let lines = [
        (
            StdioLine {
                started: true,
                ..Default::default()
            },
            r#"{"Started":true}"#,
        ),
        (
            StdioLine {
                message: Some("bad".into()),
                status: Some(404),
                ..Default::default()
            },
            r#"{"message":"bad","status":404}"#,
        ),
        (
            StdioLine {
                status_code: Some(0),
                ..Default::default()
            },
            r#"{"StatusCode":0}"#,
        ),
    ];
    for (line, text) in lines {
        assert_eq!(serde_json::to_string(&line).unwrap(), text);
        round_trip(&line);
    }
    // A list entry missing fields reads with docker's defaults (IPv4 is on).
    let n: Network = serde_json::from_str(r#"{"Name":"x"}"#).unwrap();
    assert!(n.enable_ipv4 && !n.enable_ipv6);
}

#[test]
fn queries_read_back_as_the_server_parses_them() {
    fn back<Q: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(q: Q) {
        let s = query::encode(&q);
        let parsed: Q = serde_urlencoded::from_str(s.trim_start_matches('?')).unwrap();
        assert_eq!(parsed, q, "{s}");
    }
    back(query::ListQuery {
        all: true,
        filters: Some(Filters::new().with("label", "a=b").to_json()),
    });
    back(query::ListQuery::default());
    back(query::CreateQuery {
        name: Some("web 1".into()),
    });
    back(query::StopQuery { t: Some(-1) });
    back(query::KillQuery {
        signal: Some("SIGHUP".into()),
    });
    back(query::RemoveQuery { force: true });
    back(query::LogsQuery {
        stdout: true,
        stderr: false,
        follow: true,
    });
    back(query::StartQuery {
        stdio: Some("tty".into()),
    });
    // What other clients send: `true`, and flags without a value.
    let q: query::ListQuery = serde_urlencoded::from_str("all=true&filters=").unwrap();
    assert!(q.all);
    let q: query::RemoveQuery = serde_urlencoded::from_str("force=").unwrap();
    assert!(!q.force);
}
