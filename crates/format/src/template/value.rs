//! Values as Go's text/template and fmt see them: `%v` printing, truth, type names,
//! and encoding/json output (docker's `json` function).

use serde_json::Value as J;

/// `Missing` is Go's invalid reflect.Value (an absent map key); it prints as
/// `<no value>`, whereas JSON null stands for a nil pointer and prints `<nil>`.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Value {
    Missing,
    Json(J),
}

impl Value {
    pub(crate) fn str(s: impl Into<String>) -> Value {
        Value::Json(J::String(s.into()))
    }

    pub(crate) fn int(i: i64) -> Value {
        Value::Json(J::from(i))
    }

    pub(crate) fn truth(&self) -> bool {
        match self {
            Value::Missing => false,
            Value::Json(j) => match j {
                J::Null => false,
                J::Bool(b) => *b,
                J::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                J::String(s) => !s.is_empty(),
                J::Array(a) => !a.is_empty(),
                J::Object(o) => !o.is_empty(),
            },
        }
    }

    /// What fmt.Fprint would write, including text/template's `<no value>`.
    pub(crate) fn print(&self) -> String {
        match self {
            Value::Missing => "<no value>".to_string(),
            Value::Json(j) => go_print(j),
        }
    }
}

/// Go's `%v`: maps print as `map[k:v ...]` with sorted keys, slices as `[a b]`.
pub(crate) fn go_print(v: &J) -> String {
    let mut out = String::new();
    write_print(v, &mut out);
    out
}

fn write_print(v: &J, out: &mut String) {
    match v {
        J::Null => out.push_str("<nil>"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => out.push_str(&number_v(n)),
        J::String(s) => out.push_str(s),
        J::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                write_print(e, out);
            }
            out.push(']');
        }
        J::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            out.push_str("map[");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                write_print(&o[k], out);
            }
            out.push(']');
        }
    }
}

fn number_v(n: &serde_json::Number) -> String {
    if let Some(i) = n.as_i64() {
        i.to_string()
    } else if let Some(u) = n.as_u64() {
        u.to_string()
    } else {
        float_v(n.as_f64().unwrap_or(0.0))
    }
}

/// strconv.FormatFloat(f, 'g', -1, 64): shortest digits, exponent form when exp < -4 || exp >= 21
/// is JSON's rule; fmt's %v uses the 'g' rule with precision 6 for that decision.
pub(crate) fn float_v(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let (mant, exp) = split_exp(f);
    if !(-4..6).contains(&exp) {
        go_exp(&mant, exp)
    } else {
        format!("{f}")
    }
}

/// Rust's `{:e}` gives the shortest mantissa; split it from the decimal exponent.
fn split_exp(f: f64) -> (String, i32) {
    let e = format!("{f:e}");
    let (m, x) = e.split_once('e').unwrap_or((&e, "0"));
    (m.to_string(), x.parse().unwrap_or(0))
}

/// Go writes at least two exponent digits with an explicit sign: 1e+06, 1.5e-07.
fn go_exp(mant: &str, exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{mant}e{sign}{:02}", exp.abs())
}

/// The type name Go reports for a value decoded into interface{} (typed ints say `int`).
pub(crate) fn type_name(v: &J) -> &'static str {
    match v {
        J::Null => "interface {}",
        J::Bool(_) => "bool",
        J::Number(n) if n.is_f64() => "float64",
        J::Number(_) => "int",
        J::String(_) => "string",
        J::Array(_) => "[]interface {}",
        J::Object(_) => "map[string]interface {}",
    }
}

/// encoding/json with SetEscapeHTML(false), as docker's `json` template function uses.
/// Object keys keep their order: the API JSON is already in Go struct-field order.
pub(crate) fn go_json(v: &J) -> String {
    let mut out = String::new();
    write_json(v, &mut out);
    out
}

fn write_json(v: &J, out: &mut String) {
    match v {
        J::Null => out.push_str("null"),
        J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        J::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => out.push_str(&i.to_string()),
            (_, Some(u)) => out.push_str(&u.to_string()),
            _ => out.push_str(&json_float(n.as_f64().unwrap_or(0.0))),
        },
        J::String(s) => json_string(s, out),
        J::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(e, out);
            }
            out.push(']');
        }
        J::Object(o) => {
            out.push('{');
            for (i, (k, e)) in o.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                json_string(k, out);
                out.push(':');
                write_json(e, out);
            }
            out.push('}');
        }
    }
}

/// encoding/json switches to exponent form below 1e-6 and from 1e21, and trims `e-07` to `e-7`.
fn json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let (mant, exp) = split_exp(f);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mant}e{sign}{}", exp.abs())
    } else {
        format!("{f}")
    }
}

fn json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            // Go escapes the JS line separators even with HTML escaping off.
            c if (c as u32) < 0x20 || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// strconv.Quote, used in Go's error messages and `%q`.
pub(crate) fn go_quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
