//! Acceptance: the real docker CLI (28.x, client only) against berth's socket gives the
//! same answers as berth's own CLI.

mod common;
use common::Host;

fn have_docker() -> bool {
    std::process::Command::new("docker")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn out(o: std::process::Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn docker_cli_networks_and_containers() {
    need_root!();
    if !have_docker() {
        eprintln!("skipping: no docker CLI on this machine");
        return;
    }
    let mut h = Host::new();
    h.start_daemon();
    // create through docker, see it through berth and vice versa
    let id = out(h.docker(&[
        "network",
        "create",
        "--subnet",
        "10.5.0.0/16",
        "--gateway",
        "10.5.0.1",
        "--ip-range",
        "10.5.1.0/24",
        "--aux-address",
        "host1=10.5.0.5",
        "--label",
        "a=b",
        "-o",
        "com.docker.network.bridge.name=br5",
        "mynet",
    ]));
    assert_eq!(id.trim().len(), 64);
    h.ok(&["network", "create", "--internal", "other"]);
    assert_eq!(out(h.docker(&["network", "ls"])), h.ok(&["network", "ls"]));
    assert_eq!(
        out(h.docker(&["network", "ls", "-q"])),
        h.ok(&["network", "ls", "-q"])
    );
    assert_eq!(
        out(h.docker(&[
            "network",
            "ls",
            "--filter",
            "label=a=b",
            "--format",
            "{{.Name}} {{.Driver}}"
        ])),
        "mynet bridge\n"
    );
    assert_eq!(
        out(h.docker(&["network", "inspect", "mynet"])),
        h.ok(&["network", "inspect", "mynet"])
    );
    let links = h.links();
    assert!(links.iter().any(|l| l == "br5"), "{links:?}");

    h.ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "mynet",
        "--",
        "sleep",
        "300",
    ]);
    h.ok(&["run", "-d", "--name", "idle", "--", "sleep", "300"]);
    out(h.docker(&[
        "network",
        "connect",
        "--ip",
        "10.5.1.77",
        "--alias",
        "db",
        "mynet",
        "idle",
    ]));
    let ip = h.ip_of("idle", "mynet");
    assert_eq!(ip, "10.5.1.77");
    let fmt = "{{.ID}} {{.Names}} {{.Status}} {{.State}}";
    assert_eq!(
        out(h.docker(&["ps", "-a", "--format", fmt])),
        h.ok(&["ps", "-a", "--format", fmt])
    );
    assert_eq!(out(h.docker(&["ps", "-q"])), h.ok(&["ps", "-q"]));
    assert_eq!(
        out(h.docker(&["inspect", "web"])),
        h.ok(&["inspect", "web"])
    );
    assert_eq!(
        out(h.docker(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "web"
        ])),
        h.ok(&[
            "inspect",
            "-f",
            "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
            "web"
        ])
    );
    let nin = out(h.docker(&[
        "network",
        "inspect",
        "-f",
        "{{range .Containers}}{{.Name}} {{end}}",
        "mynet",
    ]));
    assert!(nin.contains("web") && nin.contains("idle"), "{nin}");
    out(h.docker(&["network", "disconnect", "mynet", "idle"]));
    let e = h.docker(&["network", "rm", "mynet"]);
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("has active endpoints"),
        "{e:?}"
    );
    assert_eq!(out(h.docker(&["stop", "-t", "1", "web"])), "web\n");
    assert_eq!(out(h.docker(&["rm", "web"])), "web\n");
    assert_eq!(out(h.docker(&["rm", "-f", "idle"])), "idle\n");
    assert_eq!(out(h.docker(&["network", "rm", "mynet"])), "mynet\n");
    h.ok(&["network", "create", "third"]);
    assert_eq!(
        out(h.docker(&["network", "prune", "-f"])),
        "Deleted Networks:\nother\nthird\n\n"
    );
    h.ok(&["network", "create", "fourth"]);
    assert_eq!(
        h.ok(&["network", "prune", "-f"]),
        "Deleted Networks:\nfourth\n\n"
    );
    assert_eq!(
        out(h.docker(&["network", "ls", "--format", "{{.Name}}"])),
        "bridge\nhost\nnone\n"
    );
    let e = h.docker(&["network", "inspect", "nosuch"]);
    assert!(!e.status.success());
    assert!(
        String::from_utf8_lossy(&e.stderr).contains("network nosuch not found"),
        "{e:?}"
    );
}
