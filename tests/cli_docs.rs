//! Shell completions and man pages come from the parser's own command definitions: every
//! command is in them, with its flags (no daemon, no root needed).

mod common;

use std::process::Command;

fn berth(args: &[&str]) -> String {
    let o = Command::new(common::berth_bin())
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn completions_for_each_shell_know_the_commands_and_flags() {
    let bash = berth(&["completion", "bash"]);
    assert!(
        bash.contains("_berth()"),
        "{}",
        &bash[..200.min(bash.len())]
    );
    for word in [
        "network",
        "service",
        "stack",
        "deploy",
        "--update-order",
        "--publish-add",
    ] {
        assert!(bash.contains(word), "bash completion lacks {word}");
    }
    assert!(berth(&["completion", "zsh"]).starts_with("#compdef berth"));
    assert!(berth(&["completion", "fish"]).contains("complete -c berth"));
    let o = Command::new(common::berth_bin())
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("possible values"));
}

#[test]
fn man_pages_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = berth(&["man", dir.path().to_str().unwrap()]);
    assert!(out.contains("man pages in"), "{out}");
    for page in [
        "berth.1",
        "berth-network-create.1",
        "berth-service-update.1",
        "berth-stack-deploy.1",
    ] {
        let text = std::fs::read_to_string(dir.path().join(page)).unwrap();
        assert!(text.starts_with(".ie") || text.contains(".TH"), "{page}");
    }
    let create = std::fs::read_to_string(dir.path().join("berth-service-create.1")).unwrap();
    assert!(
        create.contains("berth service create"),
        "the synopsis is the command line"
    );
    assert!(create.contains("update\\-order"), "its flags are listed");
}
