use serde_json::{json, Value};

use super::{render_list, tabwrite};

const NETWORK_LS: &str = r"table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}";
const NETWORK_HEADERS: &[(&str, &str)] = &[
    ("ID", "NETWORK ID"),
    ("Name", "NAME"),
    ("Driver", "DRIVER"),
    ("Scope", "SCOPE"),
];

fn net(id: &str, name: &str, driver: &str) -> Value {
    json!({"ID": id, "Name": name, "Driver": driver, "Scope": "local", "Labels": ""})
}

fn cells(rows: &[&[&str]]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|r| r.iter().map(|c| c.to_string()).collect())
        .collect()
}

#[test]
fn network_ls_default_table() {
    let rows = [
        net("1a2b3c4d5e6f", "bridge", "bridge"),
        net("2b3c4d5e6f7a", "host", "host"),
        net("3c4d5e6f7a8b", "none", "null"),
    ];
    // ID column: 12 + padding 3 = 15; NAME and DRIVER stay at minwidth 10; SCOPE is unpadded.
    let want = "\
NETWORK ID     NAME      DRIVER    SCOPE
1a2b3c4d5e6f   bridge    bridge    local
2b3c4d5e6f7a   host      host      local
3c4d5e6f7a8b   none      null      local
";
    assert_eq!(
        render_list(NETWORK_LS, &rows, NETWORK_HEADERS).unwrap(),
        want
    );
}

#[test]
fn wide_cells_widen_their_column() {
    let rows = [
        net("1a2b3c4d5e6f", "bridge", "bridge"),
        net("4d5e6f7a8b9c", "my-long-network-name", "macvlan"),
    ];
    let want = "\
NETWORK ID     NAME                   DRIVER    SCOPE
1a2b3c4d5e6f   bridge                 bridge    local
4d5e6f7a8b9c   my-long-network-name   macvlan   local
";
    assert_eq!(
        render_list(NETWORK_LS, &rows, NETWORK_HEADERS).unwrap(),
        want
    );
}

#[test]
fn header_only_when_no_rows() {
    assert_eq!(
        render_list(NETWORK_LS, &[], NETWORK_HEADERS).unwrap(),
        "NETWORK ID   NAME      DRIVER    SCOPE\n"
    );
}

#[test]
fn plain_format_has_no_header_or_alignment() {
    let rows = [
        net("1a2b3c4d5e6f", "bridge", "bridge"),
        net("2b3c4d5e6f7a", "host", "host"),
    ];
    assert_eq!(
        render_list(r"{{.Name}}\t{{.Driver}}", &rows, NETWORK_HEADERS).unwrap(),
        "bridge\tbridge\nhost\thost\n"
    );
    assert_eq!(
        render_list("{{.ID}}: {{.Name}}", &rows, NETWORK_HEADERS).unwrap(),
        "1a2b3c4d5e6f: bridge\n2b3c4d5e6f7a: host\n"
    );
}

#[test]
fn json_rows_have_sorted_keys() {
    let rows = [net("1a2b3c4d5e6f", "bridge", "bridge")];
    let want =
        r#"{"Driver":"bridge","ID":"1a2b3c4d5e6f","Labels":"","Name":"bridge","Scope":"local"}"#;
    assert_eq!(
        render_list("json", &rows, NETWORK_HEADERS).unwrap(),
        format!("{want}\n")
    );
    assert_eq!(
        render_list("{{json .}}", &rows, NETWORK_HEADERS).unwrap(),
        format!("{want}\n")
    );
}

#[test]
fn headers_for_unknown_fields_functions_and_labels() {
    let rows = [json!({
        "Names": "web", "Status": "Up 5 seconds", "Label": {"com.docker.compose.project": "shop"}
    })];
    let headers = [("Names", "NAMES"), ("Status", "STATUS")];
    let t = r#"table {{upper .Names}}\t{{.Custom}}\t{{.Label "com.docker.compose.project"}}\t{{.Status}}"#;
    let want = "\
NAMES     CUSTOM       project   STATUS
WEB       <no value>   shop      Up 5 seconds
";
    assert_eq!(render_list(t, &rows, &headers).unwrap(), want);
}

#[test]
fn ps_style_table() {
    let rows = [
        json!({"ID": "8f5a3e9c1b2d", "Image": "nginx:latest", "Status": "Up About a minute", "Names": "web"}),
        json!({"ID": "0123456789ab", "Image": "postgres:16", "Status": "Exited (0) 3 minutes ago", "Names": "db"}),
    ];
    let headers = [
        ("ID", "CONTAINER ID"),
        ("Image", "IMAGE"),
        ("Status", "STATUS"),
        ("Names", "NAMES"),
    ];
    let t = r"table {{.ID}}\t{{.Image}}\t{{.Status}}\t{{.Names}}";
    let want = "\
CONTAINER ID   IMAGE          STATUS                     NAMES
8f5a3e9c1b2d   nginx:latest   Up About a minute          web
0123456789ab   postgres:16    Exited (0) 3 minutes ago   db
";
    assert_eq!(render_list(t, &rows, &headers).unwrap(), want);
}

#[test]
fn template_errors_surface() {
    let rows = [net("1a2b3c4d5e6f", "bridge", "bridge")];
    let e = render_list("table {{nope .ID}}", &rows, NETWORK_HEADERS).unwrap_err();
    assert_eq!(
        e.to_string(),
        r#"template parsing error: template: :1: function "nope" not defined"#
    );
    let e = render_list("{{.ID.X}}", &rows, NETWORK_HEADERS).unwrap_err();
    assert!(
        e.to_string()
            .ends_with("can't evaluate field X in type string"),
        "{e}"
    );
}

#[test]
fn tabwrite_columns() {
    let out = tabwrite(&cells(&[&["a", "bb", "c"], &["dddd", "e", "f"]]));
    assert_eq!(out, "a         bb        c\ndddd      e         f\n");
    // The last cell is never padded, however long.
    let out = tabwrite(&cells(&[&["x", "a very long last cell"], &["y", "z"]]));
    assert_eq!(out, "x         a very long last cell\ny         z\n");
}

#[test]
fn tabwrite_line_without_tabs_ends_the_block() {
    let out = tabwrite(&cells(&[&["a", "b"], &["ccc"], &["dddddddddddd", "e"]]));
    assert_eq!(out, "a         b\nccc\ndddddddddddd   e\n");
}

#[test]
fn tabwrite_column_blocks_follow_go() {
    // Column 1 exists only in rows 0 and 1, so row 2's cell does not widen it.
    let out = tabwrite(&cells(&[
        &["a", "b", "c"],
        &["a", "bbbbbbbbbbbb", "c"],
        &["a", "cccccccccccccccccc"],
    ]));
    let want = "\
a         b              c
a         bbbbbbbbbbbb   c
a         cccccccccccccccccc
";
    assert_eq!(out, want);
    assert_eq!(tabwrite(&cells(&[&["x", ""]])), "x         \n");
    assert_eq!(tabwrite(&cells(&[&["名前", "b"]])), "名前      b\n");
}
