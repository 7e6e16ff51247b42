use super::*;

fn nodes() -> Vec<Node> {
    vec![
        Node {
            name: "n11".into(),
            addr: "10.99.0.11".into(),
        },
        Node {
            name: "n12".into(),
            addr: "10.99.0.12".into(),
        },
    ]
}

const APP: &str = r#"
"version": 1
"applications":
  "mongodb-port-example":
    "image": "clusterhq/mongodb"
    "command": "socat TCP-LISTEN:27017,fork,reuseaddr SYSTEM:'echo mongo'"
    "environment":
      "CACHE": 64
    "ports":
    - "internal": 27017
      "external": 27017
    "restart_policy":
      "name": "always"
  "web":
    "command": ["sh", "-c", "echo web"]
    "links":
    - "local_port": 27017
      "remote_port": 27017
      "alias": "db"
"#;

fn run(dep: &str, app: &str) -> Result<Plan, Error> {
    plan(
        ("dep.yml", dep),
        ("app.yml", app),
        &nodes(),
        "flocker",
        "10.0.0.1",
    )
}

#[test]
fn the_seed_files_become_one_service_per_application() {
    let dep = "version: 1\nnodes:\n  \"10.99.0.11\": [mongodb-port-example]\n  n12: [web]\n";
    let p = run(dep, APP).unwrap();
    assert_eq!(p.services.len(), 2);
    let m = &p.services[0];
    assert_eq!(m.node, "n11", "an address names the node");
    assert_eq!(m.spec.name, "mongodb-port-example");
    assert_eq!(
        m.spec.task_template.container_spec.command,
        [
            "socat",
            "TCP-LISTEN:27017,fork,reuseaddr",
            "SYSTEM:echo mongo"
        ]
    );
    assert_eq!(m.spec.task_template.container_spec.env, ["CACHE=64"]);
    assert_eq!(
        m.spec.task_template.placement.constraints,
        ["node.hostname==n11"]
    );
    let ports = &m.spec.endpoint_spec.as_ref().unwrap().ports;
    assert_eq!(
        (
            ports[0].published_port,
            ports[0].target_port,
            ports[0].publish_mode.as_str()
        ),
        (27017, 27017, "ingress")
    );
    assert_eq!(m.spec.update_config.as_ref().unwrap().order, "start-first");
    assert_eq!(
        m.spec
            .task_template
            .restart_policy
            .as_ref()
            .unwrap()
            .condition,
        "any"
    );
    assert_eq!(m.spec.labels[LABEL], LABEL_VALUE);
    assert!(p.warnings[0].contains("image clusterhq/mongodb is not pulled"));
    let w = &p.services[1];
    assert_eq!(w.node, "n12");
    assert!(w
        .spec
        .task_template
        .container_spec
        .env
        .contains(&"DB_PORT_27017_TCP=tcp://10.0.0.1:27017".to_string()));
}

#[test]
fn an_application_on_no_node_is_not_planned() {
    let p = run("version: 1\nnodes:\n  n11: []\n  n12: [web]\n", APP).unwrap();
    assert_eq!(p.services.len(), 1);
    assert_eq!(p.services[0].spec.name, "web");
}

#[test]
fn bad_files_say_where() {
    let e = run(
        "version: 1\nnodes:\n  n11: [web]\n",
        "version: 1\napplications:\n  web:\n    command: x\n    volume: {mountpoint: /data}\n",
    )
    .unwrap_err();
    match e {
        Error::Syntax {
            file,
            line,
            message,
            ..
        } => {
            assert_eq!(file, "app.yml");
            assert_eq!(line, 5, "{message}");
            assert!(message.contains("unknown field `volume`"), "{message}");
        }
        e => panic!("{e}"),
    }
    let e = run("version: 1\nnodes:\n  n11: [web]\n  n11b: []\n", APP).unwrap_err();
    assert!(
        e.to_string()
            .contains("node \"n11b\" is not in the cluster"),
        "{e}"
    );
    let e = run("version: 1\nnodes:\n  n11: [web]\n  n12: [web]\n", APP).unwrap_err();
    assert!(e.to_string().contains("placed twice"), "{e}");
    let e = run("version: 1\nnodes:\n  n11: [nope]\n", APP).unwrap_err();
    assert!(e.to_string().contains("\"nope\" is not in app.yml"), "{e}");
    let e = run("version: 2\nnodes: {}\n", APP).unwrap_err();
    assert!(e.to_string().contains("only version 1"), "{e}");
    let e = run(
        "version: 1\nnodes:\n  n11: [a]\n",
        "version: 1\napplications:\n  a:\n    image: x\n",
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("give the program in `command:`"),
        "{e}"
    );
    let e = run("version: 1\nnodes: [\n", APP).unwrap_err();
    assert!(matches!(e, Error::Syntax { line: 2, .. }), "{e:?}");
}
