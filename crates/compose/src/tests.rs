use crate::model::Condition;
use crate::plan::{config_hash, create_body, order};
use crate::*;

/// The create body as it goes on the wire.
fn body(p: &Project, service: &str, n: u32) -> serde_json::Value {
    serde_json::to_value(create_body(p, service, n).expect("a body")).unwrap()
}

fn env(k: &str) -> Option<String> {
    match k {
        "WEB_PORT" => Some("8080".into()),
        "FROM_SHELL" => Some("shell".into()),
        _ => None,
    }
}

fn no_files(f: &str) -> Result<String, String> {
    match f {
        "web.env" => Ok("FROM_FILE=file\nMODE=file\n".into()),
        _ => Err("no such file".into()),
    }
}

fn ctx() -> Context<'static> {
    Context {
        lookup: &env,
        read_file: &no_files,
        project_name: None,
        default_name: "Seed_Cluster!".into(),
    }
}

fn load1(text: &str) -> Result<Loaded, Error> {
    load(
        &[Source {
            path: "compose.yaml".into(),
            text: text.into(),
        }],
        &ctx(),
    )
}

const SEED: &str = r#"
services:
  proxy:
    command: ["nginx", "-c", "/etc/x.conf"]
    ports: ["${WEB_PORT:-80}:80"]
    networks: [front]
    depends_on:
      web: {condition: service_healthy}
  web:
    command: python3 app.py --port 5000
    deploy: {replicas: 3}
    environment:
      MODE: env
      FROM_SHELL:
      UNSET_ONE:
    env_file: web.env
    expose: ["5000"]
    networks:
      front: {}
      back: {aliases: [app]}
    healthcheck:
      test: curl -f http://localhost:5000/
      interval: 1s
    depends_on: [redis]
  redis:
    command: redis-server --port 6379
    networks: [back]
    restart: always
networks:
  front: {}
  back:
    internal: true
    ipam:
      config: [{subnet: 10.60.0.0/24}]
"#;

#[test]
fn the_seed_cluster_loads() {
    let l = load1(SEED).unwrap();
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let p = l.project;
    assert_eq!(p.name, "seed_cluster");
    assert_eq!(order(&p).unwrap(), ["redis", "web", "proxy"]);
    let web = &p.services["web"];
    assert_eq!(web.replicas, 3);
    assert_eq!(web.command, ["python3", "app.py", "--port", "5000"]);
    // environment wins over env_file; bare keys come from the shell or are dropped.
    assert_eq!(web.environment["MODE"], "env");
    assert_eq!(web.environment["FROM_SHELL"], "shell");
    assert_eq!(web.environment["FROM_FILE"], "file");
    assert!(!web.environment.contains_key("UNSET_ONE"));
    assert_eq!(
        web.healthcheck.as_ref().unwrap().test,
        ["CMD-SHELL", "curl -f http://localhost:5000/"]
    );
    assert_eq!(
        p.services["proxy"].depends_on["web"],
        Condition::ServiceHealthy
    );
    assert_eq!(p.services["proxy"].ports[0].spec(), "8080:80/tcp");
    assert_eq!(p.networks["back"].name, "seed_cluster_back");
    assert!(p.networks["back"].internal);
    assert!(!p.networks.contains_key("default"));
}

#[test]
fn create_bodies_carry_names_aliases_ports_and_labels() {
    let p = load1(SEED).unwrap().project;
    let b = body(&p, "web", 2);
    assert_eq!(b["Labels"]["com.docker.compose.service"], "web");
    assert_eq!(b["Labels"]["com.docker.compose.container-number"], "2");
    assert_eq!(b["HostConfig"]["NetworkMode"], "seed_cluster_front");
    let eps = b["NetworkingConfig"]["EndpointsConfig"]
        .as_object()
        .unwrap();
    assert_eq!(
        eps.keys().collect::<Vec<_>>(),
        ["seed_cluster_front", "seed_cluster_back"]
    );
    assert_eq!(
        eps["seed_cluster_back"]["Aliases"],
        serde_json::json!(["web", "app"])
    );
    assert!(b["ExposedPorts"].get("5000/tcp").is_some());
    let proxy = body(&p, "proxy", 1);
    assert_eq!(
        proxy["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"],
        "8080"
    );
    // The hash changes with the service, not with the replica.
    assert_eq!(
        body(&p, "web", 1)["Labels"][plan::LABEL_HASH],
        b["Labels"][plan::LABEL_HASH]
    );
    let mut changed = p.services["web"].clone();
    changed.command.push("--debug".into());
    assert_ne!(config_hash(&changed), config_hash(&p.services["web"]));
}

#[test]
fn default_network_and_network_modes() {
    let p = load1(
        "name: Demo\nservices:\n  a: {command: [sleep, '9']}\n  b: {command: [sleep, '9'], network_mode: 'service:a'}\n  c: {command: [sleep, '9'], network_mode: none}\n",
    )
    .unwrap()
    .project;
    assert_eq!(p.name, "demo");
    assert_eq!(p.networks["default"].name, "demo_default");
    assert_eq!(
        body(&p, "a", 1)["HostConfig"]["NetworkMode"],
        "demo_default"
    );
    assert_eq!(
        body(&p, "b", 1)["HostConfig"]["NetworkMode"],
        "container:demo-a-1"
    );
    assert_eq!(body(&p, "c", 1)["HostConfig"]["NetworkMode"], "none");
    assert_eq!(order(&p).unwrap(), ["a", "b", "c"]);
}

#[test]
fn every_unsupported_key_is_named_once() {
    let l = load1(
        "version: '3.9'\nvolumes: {data: {}}\nservices:\n  a:\n    image: nginx\n    build: .\n    volumes: [/x:/y]\n    command: [true]\n    deploy: {replicas: 2, resources: {}}\n    container_name: fixed\n    healthcheck: {test: [CMD, 'true'], bogus: 1}\n",
    )
    .unwrap();
    let w = l.warnings.join("\n");
    for k in [
        "`version`",
        "top-level `volumes`",
        "services.a.image",
        "services.a.build",
        "services.a.volumes",
        "services.a.deploy.resources",
        "services.a.container_name",
        "services.a.healthcheck.bogus",
    ] {
        assert_eq!(w.matches(k).count(), 1, "{k} in:\n{w}");
    }
    assert!(w.contains("host programs"), "{w}");
    assert_eq!(l.warnings.len(), 8);
    assert_eq!(l.project.services["a"].replicas, 2);
}

#[test]
fn malformed_files_say_where() {
    let e = load1("services:\n  a:\n    command: [sleep\n  b: {}\n").unwrap_err();
    let Error::Syntax { line, column, .. } = &e else {
        panic!("{e}")
    };
    assert!(*line >= 3 && *column > 0, "{e}");
    assert!(e.to_string().starts_with("compose.yaml: line "), "{e}");
    for (text, want) in [
        ("services:\n  a: {}\n", "`command` is required"),
        ("services:\n  a: {command: [x], depends_on: [nope]}\n", "no service \"nope\""),
        ("services:\n  a: {command: [x], networks: [nope]}\n", "network \"nope\" is not declared"),
        ("services:\n  a: {command: [x], depends_on: [b]}\n  b: {command: [x], depends_on: [a]}\n", "dependency cycle"),
        ("services:\n  a: {command: [x], ports: ['x:y']}\n", "services.a.ports[0]"),
        ("services:\n  a: {command: [x], restart: sometimes}\n", "not a restart policy"),
        ("services:\n  a: {command: '${NOPE:?set NOPE}'}\n", "set NOPE"),
        ("services:\n  a: {command: [x], network_mode: host, networks: [n]}\nnetworks: {n: {}}\n", "cannot be combined"),
        ("services:\n  a: {command: [x]}\nnetworks: {n: {driver: overlay}}\n", "bridge only"),
        ("- a\n- b\n", "top level must be a mapping"),
    ] {
        let e = load1(text).err().unwrap_or_else(|| panic!("accepted: {text}")).to_string();
        assert!(e.contains(want), "{text}: {e}");
    }
}

#[test]
fn later_files_override_earlier_ones() {
    let l = load(
        &[
            Source {
                path: "compose.yaml".into(),
                text: "services:\n  a: {command: [sleep, '1'], environment: {A: '1', B: '1'}}\n"
                    .into(),
            },
            Source {
                path: "compose.override.yaml".into(),
                text: "services:\n  a: {command: [sleep, '2'], environment: {B: '2'}}\n".into(),
            },
        ],
        &ctx(),
    )
    .unwrap();
    let a = &l.project.services["a"];
    assert_eq!(a.command, ["sleep", "2"]);
    assert_eq!(a.environment["A"], "1");
    assert_eq!(a.environment["B"], "2");
}

#[test]
fn port_forms() {
    let p = load1(
        "services:\n  a:\n    command: [x]\n    ports:\n      - '80'\n      - '127.0.0.1:5432:5432'\n      - '[::1]:53:53/udp'\n      - '9000-9001:9000-9001'\n      - '127.0.0.1::6379'\n      - {target: 443, published: '8443', host_ip: 0.0.0.0, protocol: tcp}\n",
    )
    .unwrap()
    .project;
    let specs: Vec<String> = p.services["a"].ports.iter().map(|x| x.spec()).collect();
    assert_eq!(
        specs,
        [
            "80/tcp",
            "127.0.0.1:5432:5432/tcp",
            "[::1]:53:53/udp",
            "9000-9001:9000-9001/tcp",
            "127.0.0.1::6379/tcp",
            "0.0.0.0:8443:443/tcp"
        ]
    );
    let b = body(&p, "a", 1);
    assert_eq!(
        b["HostConfig"]["PortBindings"]["9001/tcp"][0]["HostPort"],
        "9001"
    );
    assert_eq!(b["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"], "");
    // Ports go typed: what is no port fails here, naming the service.
    let bad = load1("services:\n  a:\n    command: [x]\n    ports:\n      - {target: '0'}\n")
        .unwrap()
        .project;
    let e = create_body(&bad, "a", 1).unwrap_err().to_string();
    assert!(
        e.contains("services.a.ports") && e.contains("not a valid container port"),
        "{e}"
    );
    let ranged = load1("services:\n  a:\n    command: [x]\n    expose: ['7000-7001/udp']\n")
        .unwrap()
        .project;
    let b = body(&ranged, "a", 1);
    assert_eq!(
        b["ExposedPorts"],
        serde_json::json!({"7000/udp": {}, "7001/udp": {}})
    );
}

#[test]
fn durations() {
    assert_eq!(crate::duration_ns("1m30s").unwrap(), 90_000_000_000);
    assert_eq!(crate::duration_ns("500ms").unwrap(), 500_000_000);
    assert_eq!(crate::duration_ns("2").unwrap(), 2_000_000_000);
    assert_eq!(crate::duration_ns("1.5s").unwrap(), 1_500_000_000);
    crate::duration_ns("5x").unwrap_err();
    crate::duration_ns("").unwrap_err();
    assert!(
        load1("services:\n  a: {command: [x], healthcheck: {test: 'true', interval: soon}}\n")
            .unwrap_err()
            .to_string()
            .contains("services.a.healthcheck.interval")
    );
    let p = load1(SEED).unwrap().project;
    let b = body(&p, "web", 1);
    assert_eq!(b["Healthcheck"]["Interval"], 1_000_000_000u64);
    assert_eq!(b["Healthcheck"]["Test"][0], "CMD-SHELL");
    assert_eq!(
        body(&p, "redis", 1)["HostConfig"]["RestartPolicy"]["Name"],
        "always"
    );
}

proptest::proptest! {
    /// Any text, and any mutation of a real file: a project or an error, never a panic.
    #[test]
    fn loading_never_panics(s in ".{0,200}", cut in 0usize..600, junk in "[\\[\\]{}:,'\"$ \\-\\n]{0,8}") {
        let _ = load1(&s);
        let mut seed = SEED.to_string();
        let at = cut.min(seed.len());
        if seed.is_char_boundary(at) {
            seed.insert_str(at, &junk);
        }
        let _ = load1(&seed);
    }
}
