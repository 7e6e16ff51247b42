use serde_json::{json, Value};

use crate::{render, FormatError};

fn container() -> Value {
    json!({
        "Id": "8f5a3e9c1b2d4e6f8a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f",
        "Created": "2024-05-01T10:00:00.000000000Z",
        "Name": "/web",
        "State": {"Status": "running", "Running": true, "Pid": 4242, "ExitCode": 0, "Health": null},
        "Config": {
            "Hostname": "8f5a3e9c1b2d",
            "Env": ["PATH=/usr/bin", "LANG=C"],
            "Labels": {"com.example.team": "web", "app": "shop"}
        },
        "NetworkSettings": {
            "IPAddress": "172.17.0.2",
            "Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}]},
            "Networks": {
                "frontend": {"IPAddress": "10.1.0.5", "Gateway": "10.1.0.1", "Aliases": ["web"]},
                "bridge": {"IPAddress": "172.17.0.2", "Gateway": "172.17.0.1", "Aliases": null}
            }
        }
    })
}

fn network() -> Value {
    json!({
        "Name": "frontend",
        "Id": "3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b",
        "Driver": "bridge",
        "Scope": "local",
        "IPAM": {"Driver": "default", "Options": {}, "Config": [
            {"Subnet": "10.1.0.0/24", "Gateway": "10.1.0.1"},
            {"Subnet": "fd00:1::/64", "Gateway": "fd00:1::1"}
        ]},
        "Containers": {
            "8f5a3e9c": {"Name": "web", "IPv4Address": "10.1.0.5/24"},
            "1a2b3c4d": {"Name": "db", "IPv4Address": "10.1.0.6/24"}
        },
        "Options": {"com.docker.network.bridge.name": "br-3c2b1a0f9e8d"},
        "Labels": {}
    })
}

fn r(t: &str) -> String {
    render(t, &container()).unwrap_or_else(|e| panic!("{t}: {e}"))
}

fn err(t: &str, v: &Value) -> String {
    render(t, v).expect_err(t).to_string()
}

#[test]
fn fields_and_nesting() {
    assert_eq!(r("{{.Name}}"), "/web");
    assert_eq!(r("{{ .NetworkSettings.IPAddress }}"), "172.17.0.2");
    assert_eq!(r("{{.State.Pid}} {{.State.Running}}"), "4242 true");
    assert_eq!(r("{{$.Config.Hostname}}"), "8f5a3e9c1b2d");
    assert_eq!(r("{{with .State}}{{.Status}}{{end}}"), "running");
    assert_eq!(r("{{(.State).Status}}"), "running");
}

#[test]
fn go_field_names_find_lower_case_json_keys() {
    let event = json!({"scope": "swarm", "Type": "network"});
    assert_eq!(
        render("{{.Scope}} {{.Type}}", &event).unwrap(),
        "swarm network"
    );
    assert_eq!(render("{{.scope}}", &event).unwrap(), "swarm");
    assert_eq!(render("{{.Nope}}", &event).unwrap(), "<no value>");
}

#[test]
fn missing_and_null() {
    assert_eq!(r("{{.Nope}}"), "<no value>");
    assert_eq!(r("{{.Config.Labels.nope}}"), "<no value>");
    assert_eq!(r("{{.Nope.Deeper}}"), "<no value>");
    assert_eq!(r("{{.State.Health}}"), "<nil>");
    assert_eq!(r("{{json .State.Health}}"), "null");
    assert_eq!(r("{{json .Nope}}"), "null");
    assert_eq!(r("{{print .Nope}}"), "<nil>");
    assert_eq!(r("{{if .State.Health}}yes{{else}}no{{end}}"), "no");
    assert_eq!(
        err("{{.State.Health.Status}}", &container()),
        "template parsing error: template: :1:8: executing \"\" at <.State.Health.Status>: \
         nil pointer evaluating interface {}.Status"
    );
}

#[test]
fn index_on_maps_and_lists() {
    assert_eq!(r(r#"{{index .Config.Labels "app"}}"#), "shop");
    assert_eq!(r(r#"{{index .Config.Labels "com.example.team"}}"#), "web");
    // Labels is a map of strings: a missing key gives "", as Go does for map[string]string.
    assert_eq!(r(r#"[{{index .Config.Labels "nope"}}]"#), "[]");
    assert_eq!(
        r(r#"{{index .NetworkSettings.Networks "frontend" "IPAddress"}}"#),
        "10.1.0.5"
    );
    assert_eq!(
        r(r#"{{(index .NetworkSettings.Networks "bridge").Gateway}}"#),
        "172.17.0.1"
    );
    assert_eq!(
        r(r#"{{index .NetworkSettings.Networks "nope"}}"#),
        "<no value>"
    );
    assert_eq!(r("{{index .Config.Env 1}}"), "LANG=C");
    assert_eq!(
        r(r#"{{(index (index .NetworkSettings.Ports "80/tcp") 0).HostPort}}"#),
        "8080"
    );
    assert!(err("{{index .Config.Env 5}}", &container())
        .ends_with("error calling index: index out of range: 5"));
}

#[test]
fn range_forms() {
    // Go visits map keys in sorted order: bridge before frontend.
    assert_eq!(
        r("{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}"),
        "172.17.0.2 10.1.0.5 "
    );
    assert_eq!(
        r("{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}"),
        "app=shop;com.example.team=web;"
    );
    assert_eq!(
        r("{{range $i, $e := .Config.Env}}{{$i}}:{{$e}} {{end}}"),
        "0:PATH=/usr/bin 1:LANG=C "
    );
    assert_eq!(
        r("{{range $name, $n := .NetworkSettings.Networks}}{{$name}} {{$n.Gateway}}\n{{end}}"),
        "bridge 172.17.0.1\nfrontend 10.1.0.1\n"
    );
    assert_eq!(
        r("{{range .NetworkSettings.Networks.bridge.Aliases}}x{{else}}none{{end}}"),
        "none"
    );
    let n = network();
    let out = render("{{range .IPAM.Config}}{{.Subnet}},{{end}}", &n).unwrap();
    assert_eq!(out, "10.1.0.0/24,fd00:1::/64,");
    let out = render(
        "{{range $id, $c := .Containers}}{{$c.Name}} {{$c.IPv4Address}}\n{{end}}",
        &n,
    )
    .unwrap();
    assert_eq!(out, "db 10.1.0.6/24\nweb 10.1.0.5/24\n");
    assert_eq!(
        r("{{range $i, $e := .Config.Env}}{{if $i}}{{break}}{{end}}{{$e}}{{end}}"),
        "PATH=/usr/bin"
    );
    assert_eq!(r("{{range 3}}{{.}}{{end}}"), "012");
}

#[test]
fn conditionals_and_comparisons() {
    assert_eq!(
        r(r#"{{if eq .State.Status "running"}}up{{else}}down{{end}}"#),
        "up"
    );
    assert_eq!(
        r(r#"{{if ne .State.ExitCode 0}}bad{{else if .State.Running}}ok{{end}}"#),
        "ok"
    );
    assert_eq!(
        r("{{if and .State.Running (gt .State.Pid 1)}}y{{end}}"),
        "y"
    );
    assert_eq!(r(r#"{{or .Nope "fallback"}}"#), "fallback");
    assert_eq!(
        r(r#"{{if not .Config.Labels}}empty{{else}}{{len .Config.Labels}}{{end}}"#),
        "2"
    );
    assert_eq!(r(r#"{{eq .State.Status "exited" "running"}}"#), "true");
    assert_eq!(r("{{lt 1 2}} {{ge 2.5 3}}"), "true false");
    assert_eq!(r(r#"{{- if .State.Running -}}  yes  {{- end }}"#), "yes");
    assert_eq!(r("a {{- /* note */ -}} b"), "ab");
    assert!(err(r#"{{eq .State.Pid "x"}}"#, &container())
        .ends_with("incompatible types for comparison"));
}

#[test]
fn json_function() {
    let v = json!({"Z": 1, "A": {"b": [1, "x<y&z", null, true]}, "M": "é\n\u{2028}"});
    assert_eq!(
        render("{{json .}}", &v).unwrap(),
        r#"{"Z":1,"A":{"b":[1,"x<y&z",null,true]},"M":"é\n\u2028"}"#
    );
    assert_eq!(r("{{json .Name}}"), r#""/web""#);
    assert_eq!(r("{{json .Config.Env}}"), r#"["PATH=/usr/bin","LANG=C"]"#);
    assert_eq!(
        r("{{json .State}}"),
        r#"{"Status":"running","Running":true,"Pid":4242,"ExitCode":0,"Health":null}"#
    );
    assert_eq!(
        render("{{json .}}", &json!({"f": 1.5, "g": 1e21, "h": 1e-7})).unwrap(),
        r#"{"f":1.5,"g":1e+21,"h":1e-7}"#
    );
}

#[test]
fn docker_string_functions() {
    assert_eq!(r(r#"{{join .Config.Env ","}}"#), "PATH=/usr/bin,LANG=C");
    assert_eq!(r(r#"{{split .Name "/"}}"#), "[ web]");
    assert_eq!(
        r(r#"{{index (split .Config.Hostname "5a") 1}}"#),
        "3e9c1b2d"
    );
    assert_eq!(r(r#"{{join (split "a-b-c" "-") "+"}}"#), "a+b+c");
    assert_eq!(
        r(r#"{{upper .State.Status}} {{lower "ABC"}} {{title "hello wide-world"}}"#),
        "RUNNING abc Hello Wide-World"
    );
    assert_eq!(
        r(r#"[{{pad .State.Status 1 2}}][{{pad "" 1 2}}]"#),
        "[ running  ][]"
    );
    assert_eq!(r("{{truncate .Id 12}}"), "8f5a3e9c1b2d");
    assert_eq!(r(r#"{{println .Name "x"}}"#), "/web x\n");
    assert_eq!(r("{{len .Config.Env}} {{len .Name}}"), "2 4");
    assert_eq!(r(r#"{{printf "%s:%d" .Name .State.Pid}}"#), "/web:4242");
    assert_eq!(
        r(r#"{{printf "%-6s|%5.2f|%x" "ab" 3.14159 255}}"#),
        "ab    | 3.14|ff"
    );
    assert_eq!(r(r#"{{print "a" 1 2 "b"}}"#), "a1 2b");
    assert_eq!(
        r(r#"{{slice .Name 1}} {{html "<a&b>"}} {{urlquery "a b/c"}}"#),
        "web &lt;a&amp;b&gt; a+b%2Fc"
    );
}

#[test]
fn go_value_printing() {
    assert_eq!(
        r("{{.Config.Labels}}"),
        "map[app:shop com.example.team:web]"
    );
    assert_eq!(r("{{.Config.Env}}"), "[PATH=/usr/bin LANG=C]");
    assert_eq!(
        render("{{.}}", &json!([1, 2.5, null, "s", 1000000.0])).unwrap(),
        "[1 2.5 <nil> s 1e+06]"
    );
    assert_eq!(
        r("{{1.0}} {{0x1F}} {{'a'}} {{-3}} {{true}}"),
        "1 31 97 -3 true"
    );
}

#[test]
fn variables_and_templates() {
    assert_eq!(r("{{$n := .Name}}{{$n}}"), "/web");
    assert_eq!(r("{{$x := 1}}{{if true}}{{$x = 2}}{{end}}{{$x}}"), "2");
    assert_eq!(
        r(r#"{{define "ip"}}[{{.IPAddress}}]{{end}}{{template "ip" .NetworkSettings}}"#),
        "[172.17.0.2]"
    );
    assert_eq!(r(r#"{{block "b" .State}}{{.Status}}{{end}}"#), "running");
}

#[test]
fn label_method_stand_in() {
    let row = json!({"Label": {"com.example.team": "web"}});
    assert_eq!(
        render(r#"{{.Label "com.example.team"}}"#, &row).unwrap(),
        "web"
    );
    assert_eq!(render(r#"[{{.Label "nope"}}]"#, &row).unwrap(), "[]");
}

#[test]
fn parse_errors_match_go() {
    let v = container();
    let cases = [
        (
            "{{foo .Name}}",
            r#"template: :1: function "foo" not defined"#,
        ),
        ("{{.Name", "template: :1: unclosed action"),
        ("{{if .Name}}x", "template: :1: unexpected EOF"),
        ("{{end}}", "template: :1: unexpected {{end}}"),
        ("{{$x}}", r#"template: :1: undefined variable "$x""#),
        ("{{range}}{{end}}", "template: :1: missing value for range"),
        (
            "a\n{{.Name | 3}}",
            "template: :2: non executable command in pipeline stage 2",
        ),
        ("{{break}}", "template: :1: {{break}} outside {{range}}"),
        ("{{.Name)}}", "template: :1: unexpected right paren"),
        ("{{\"abc}}", "template: :1: unterminated quoted string"),
    ];
    for (t, want) in cases {
        assert_eq!(render(t, &v), Err(FormatError::Parse(want.into())), "{t}");
    }
    assert_eq!(
        err("{{foo}}", &v),
        r#"template parsing error: template: :1: function "foo" not defined"#
    );
}

#[test]
fn exec_errors_match_go() {
    let v = container();
    let cases = [
        ("{{.Name.First}}", "template: :1:7: executing \"\" at <.Name.First>: can't evaluate field First in type string"),
        ("{{upper .State.Pid}}", "template: :1:14: executing \"\" at <.State.Pid>: wrong type for value; expected string; got int"),
        ("{{upper .Nope}}", "template: :1:8: executing \"\" at <.Nope>: invalid value; expected string"),
        ("{{lower}}", "template: :1:2: executing \"\" at <lower>: wrong number of args for lower: want 1 got 0"),
        ("{{truncate .Name \"x\"}}", "template: :1:17: executing \"\" at <\"x\">: expected integer; found \"x\""),
        ("{{range .Name}}{{end}}", "template: :1:8: executing \"\" at <{{range .Name}}{{end}}>: range can't iterate over /web"),
        ("{{.Name 1}}", "template: :1:2: executing \"\" at <.Name>: Name is not a method but has arguments"),
        ("{{template \"x\"}}", "template: :1:11: executing \"\" at <{{template \"x\"}}>: template \"x\" not defined"),
    ];
    for (t, want) in cases {
        assert_eq!(render(t, &v), Err(FormatError::Exec(want.into())), "{t}");
    }
}

#[test]
fn syntax_details() {
    assert_eq!(r("{{with .Nope}}x{{else with .Name}}{{.}}{{end}}"), "/web");
    assert_eq!(r("{{.Name\n}}"), "/web");
    assert_eq!(r(r#"{{"a" | printf "%s-%s" "b"}}"#), "b-a");
    assert_eq!(
        r("{{.State.Status | upper | printf \"%q\"}}"),
        r#""RUNNING""#
    );
    assert_eq!(r("x\n  {{- .Name -}}\n  y"), "x/weby");
    assert_eq!(r("{{/* gone */}}"), "");
    assert_eq!(r(r#"{{`raw\n`}}"#), "raw\\n");
    assert_eq!(r(r#"{{"tab\there"}}"#), "tab\there");
    assert_eq!(
        r("{{range $i, $e := .Config.Env}}{{if eq $i 0}}{{continue}}{{end}}{{$e}}{{end}}"),
        "LANG=C"
    );
}

fn nested(open: &str, n: usize, inner: &str, close: &str) -> String {
    format!("{}{inner}{}", open.repeat(n), close.repeat(n))
}

/// Deep nesting is refused with an error instead of overflowing the stack (which aborts
/// the whole CLI). These run on the test harness's 2 MiB threads, in debug builds.
#[test]
fn deep_nesting_is_an_error() {
    use super::parse::MAX_PARSE_DEPTH as MAX;
    let parse_err = |t: &str| match render(t, &container()) {
        Err(FormatError::Parse(m)) => m,
        other => panic!("{}…: {other:?}", &t[..40.min(t.len())]),
    };
    for (open, inner, close) in [
        ("{{with .}}", "x", "{{end}}"),
        ("{{if 1}}", "x", "{{end}}"),
        ("{{range .Nope}}", "x", "{{end}}"),
        ("(", "1", ")"),
    ] {
        let wrap = |n: usize| {
            let t = nested(open, n, inner, close);
            if open == "(" {
                format!("{{{{{t}}}}}")
            } else {
                t
            }
        };
        assert!(render(&wrap(MAX), &container()).is_ok(), "{open} × {MAX}");
        for n in [MAX + 1, 6000, 60_000] {
            let m = parse_err(&wrap(n));
            assert!(
                m.contains("max nesting depth exceeded"),
                "{open} × {n}: {m}"
            );
        }
    }
    let blocks = nested("{{block \"b\" .}}", 6000, "x", "{{end}}");
    assert!(parse_err(&blocks).contains("max nesting depth exceeded"));
    let chain = format!("{{{{if 0}}}}{}{{{{end}}}}", "{{else if 0}}".repeat(5000));
    assert!(parse_err(&chain).contains("max nesting depth exceeded"));
    // Parentheses and controls share one budget.
    let mixed = nested(
        "{{with .}}",
        60,
        &format!("{{{{{}}}}}", nested("(", 60, "1", ")")),
        "{{end}}",
    );
    assert!(parse_err(&mixed).contains("max nesting depth exceeded"));
}

/// A recursive template multiplies the nesting of its body, so calls and nested bodies
/// share the executor's depth budget.
#[test]
fn deep_execution_is_an_error() {
    for body_depth in [0, 1, 10, 98] {
        let t = format!(
            "{{{{define \"t\"}}}}{}{{{{end}}}}{{{{template \"t\" .}}}}",
            nested("{{with .}}", body_depth, "{{template \"t\" .}}", "{{end}}")
        );
        match render(&t, &container()) {
            Err(FormatError::Exec(m)) => assert!(
                m.contains(&format!(
                    "exceeded maximum template depth ({})",
                    super::exec::MAX_DEPTH
                )),
                "{m}"
            ),
            other => panic!("depth {body_depth}: {other:?}"),
        }
    }
    // 98 parentheses: the define and the action's pipeline take the other two levels.
    let parens = format!("{{{{{}}}}}", nested("(", 98, "1", ")"));
    let t = format!(
        "{{{{define \"t\"}}}}{parens}{{{{template \"t\" .}}}}{{{{end}}}}{{{{template \"t\" .}}}}"
    );
    assert!(
        matches!(render(&t, &container()), Err(FormatError::Exec(m)) if m.contains("maximum template depth"))
    );
}
