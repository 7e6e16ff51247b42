//! Output helpers shared by the commands: docker's indented JSON and templates.

use serde::Serialize;
use serde_json::Value;

/// What `docker inspect` prints: the daemon's JSON re-indented with four spaces (Go's
/// json.Indent, which keeps key order and does not HTML-escape).
pub(super) fn pretty(v: &Value) -> String {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    v.serialize(&mut ser).expect("json");
    String::from_utf8(buf).expect("utf8")
}

/// Prints objects as `inspect` does: a JSON array, or one rendered template per object.
pub(super) fn print_objects(objs: &[Value], format: &Option<String>) -> Result<(), String> {
    match format.as_deref() {
        None | Some("") | Some("json") => println!("{}", pretty(&Value::Array(objs.to_vec()))),
        Some(t) => {
            for o in objs {
                println!("{}", berth_format::render(t, o).map_err(|e| e.to_string())?);
            }
        }
    }
    Ok(())
}

/// Prints rows with a docker list template (`table …` or a row template); returns the
/// exit code.
pub(super) fn print_list(template: &str, rows: &[Value], headers: &[(&str, &str)]) -> i32 {
    match berth_format::render_list(template, rows, headers) {
        Ok(s) => {
            print!("{s}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Go's natural order (as `docker network ls` sorts names): digit runs compare by value.
pub(super) fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, String)> {
        let mut v: Vec<(bool, String)> = Vec::new();
        for c in s.chars() {
            let d = c.is_ascii_digit();
            match v.last_mut() {
                Some((ld, s)) if *ld == d => s.push(c),
                _ => v.push((d, c.to_string())),
            }
        }
        v
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for (x, y) in ca.iter().zip(cb.iter()) {
        let o = match (x.0, y.0) {
            (true, true) => {
                let (xa, ya) = (x.1.trim_start_matches('0'), y.1.trim_start_matches('0'));
                xa.len().cmp(&ya.len()).then(xa.cmp(ya))
            }
            _ => x.1.cmp(&y.1),
        };
        if o != std::cmp::Ordering::Equal {
            return o;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pretty_matches_go_indent() {
        let v: Value = serde_json::from_str(r#"[{"A":1,"B":{},"C":[],"D":"<x>"}]"#).unwrap();
        assert_eq!(
            pretty(&v),
            "[\n    {\n        \"A\": 1,\n        \"B\": {},\n        \"C\": [],\n        \"D\": \"<x>\"\n    }\n]"
        );
    }

    #[test]
    fn natural_order() {
        let mut v = vec!["net10", "net2", "bridge", "net1"];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(v, vec!["bridge", "net1", "net2", "net10"]);
    }
}
