//! Template functions: Go's builtins plus docker's (cli/templates/templates.go).
//! Each declares Go's parameter types so that argument errors match Go's wording.

use std::cmp::Ordering;

use serde_json::Value as J;

use super::fmt::{sprint, sprintf, sprintln};
use super::value::{go_json, go_print, type_name, Value};

/// Go parameter types the executor checks arguments against.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Param {
    /// reflect.Value: passed through untouched, a missing value stays missing.
    Value,
    /// interface{}: a missing value becomes nil.
    Any,
    Str,
    Int,
    StrList,
}

impl Param {
    pub(crate) fn go_type(self) -> &'static str {
        match self {
            Param::Value => "reflect.Value",
            Param::Any => "interface {}",
            Param::Str => "string",
            Param::Int => "int",
            Param::StrList => "[]string",
        }
    }
}

pub(crate) type Call = fn(&[Value]) -> Result<Value, String>;

pub(crate) struct Func {
    pub name: &'static str,
    pub fixed: &'static [Param],
    pub variadic: Option<Param>,
    pub call: Call,
}

impl Func {
    pub(crate) fn param(&self, i: usize) -> Param {
        self.fixed
            .get(i)
            .copied()
            .or(self.variadic)
            .unwrap_or(Param::Any)
    }
}

const fn f(
    name: &'static str,
    fixed: &'static [Param],
    variadic: Option<Param>,
    call: Call,
) -> Func {
    Func {
        name,
        fixed,
        variadic,
        call,
    }
}

use Param::{Any, Int, Str, StrList, Value as V};

static BUILTINS: &[Func] = &[
    // and/or short-circuit in the executor; `call` only runs for a lone operand.
    f("and", &[V], Some(V), |a| Ok(a[a.len() - 1].clone())),
    f("or", &[V], Some(V), |a| Ok(a[a.len() - 1].clone())),
    f("not", &[V], None, |a| {
        Ok(Value::Json(J::Bool(!a[0].truth())))
    }),
    f("len", &[V], None, len),
    f("index", &[V], Some(V), index),
    f("slice", &[V], Some(V), slice),
    f("eq", &[V], Some(V), eq),
    f("ne", &[V, V], None, |a| Ok(bool_val(!equal(&a[0], &a[1])?))),
    f("lt", &[V, V], None, |a| Ok(bool_val(less(&a[0], &a[1])?))),
    f("le", &[V, V], None, |a| {
        Ok(bool_val(less_eq(&a[0], &a[1])?))
    }),
    f("gt", &[V, V], None, |a| {
        Ok(bool_val(!less_eq(&a[0], &a[1])?))
    }),
    f("ge", &[V, V], None, |a| Ok(bool_val(!less(&a[0], &a[1])?))),
    f("print", &[], Some(Any), |a| {
        Ok(Value::str(sprint(&jsons(a))))
    }),
    f("println", &[], Some(Any), |a| {
        Ok(Value::str(sprintln(&jsons(a))))
    }),
    f("printf", &[Str], Some(Any), |a| {
        Ok(Value::str(sprintf(s(&a[0]), &jsons(&a[1..]))))
    }),
    f("html", &[], Some(Any), |a| {
        Ok(Value::str(html(&eval_args(a))))
    }),
    f("js", &[], Some(Any), |a| Ok(Value::str(js(&eval_args(a))))),
    f("urlquery", &[], Some(Any), |a| {
        Ok(Value::str(urlquery(&eval_args(a))))
    }),
    f("call", &[V], Some(V), |a| match &a[0] {
        Value::Missing | Value::Json(J::Null) => Err("call of nil".into()),
        Value::Json(j) => Err(format!("non-function of type {}", type_name(j))),
    }),
    // docker's functions
    f("json", &[Any], None, |a| {
        Ok(Value::str(go_json(&json_of(&a[0]))))
    }),
    f("split", &[Str, Str], None, split),
    f("join", &[StrList, Str], None, join),
    f("title", &[Str], None, |a| Ok(Value::str(title(s(&a[0]))))),
    f("lower", &[Str], None, |a| {
        Ok(Value::str(s(&a[0]).to_lowercase()))
    }),
    f("upper", &[Str], None, |a| {
        Ok(Value::str(s(&a[0]).to_uppercase()))
    }),
    f("pad", &[Str, Int, Int], None, pad),
    f("truncate", &[Str, Int], None, truncate),
];

/// docker's HeaderFunctions: in a table header these return the column title untouched.
static HEADER: &[Func] = &[
    f("json", &[Str], None, first),
    f("split", &[Str, Str], None, first),
    f("join", &[Str, Str], None, first),
    f("title", &[Str], None, first),
    f("lower", &[Str], None, first),
    f("upper", &[Str], None, first),
    f("truncate", &[Str, Int], None, first),
];

pub(crate) fn lookup(name: &str, header: bool) -> Option<&'static Func> {
    let header_fn = header
        .then(|| HEADER.iter().find(|f| f.name == name))
        .flatten();
    header_fn.or_else(|| BUILTINS.iter().find(|f| f.name == name))
}

pub(crate) fn exists(name: &str) -> bool {
    lookup(name, false).is_some()
}

fn first(a: &[Value]) -> Result<Value, String> {
    Ok(a[0].clone())
}

fn bool_val(b: bool) -> Value {
    Value::Json(J::Bool(b))
}

/// The executor has already checked the type, so this only unwraps.
fn s(v: &Value) -> &str {
    match v {
        Value::Json(J::String(s)) => s,
        _ => "",
    }
}

fn i(v: &Value) -> i64 {
    match v {
        Value::Json(j) => j.as_i64().unwrap_or(0),
        Value::Missing => 0,
    }
}

fn json_of(v: &Value) -> J {
    match v {
        Value::Json(j) => j.clone(),
        Value::Missing => J::Null,
    }
}

fn jsons(a: &[Value]) -> Vec<J> {
    a.iter().map(json_of).collect()
}

fn len(a: &[Value]) -> Result<Value, String> {
    let n = match &a[0] {
        Value::Json(J::String(s)) => s.len(),
        Value::Json(J::Array(v)) => v.len(),
        Value::Json(J::Object(m)) => m.len(),
        Value::Json(J::Null) => 0,
        Value::Missing => return Err("len of nil pointer".into()),
        Value::Json(j) => return Err(format!("len of type {}", type_name(j))),
    };
    Ok(Value::int(i64::try_from(n).unwrap_or(i64::MAX)))
}

fn index_arg(idx: &Value, cap: usize) -> Result<usize, String> {
    let x = match idx {
        Value::Json(J::Number(n)) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
        Value::Missing | Value::Json(J::Null) => {
            return Err("cannot index slice/array with nil".into())
        }
        Value::Json(j) => {
            return Err(format!(
                "cannot index slice/array with type {}",
                type_name(j)
            ))
        }
    };
    match usize::try_from(x) {
        Ok(u) if u <= cap => Ok(u),
        _ => Err(format!("index out of range: {x}")),
    }
}

/// Go returns the element type's zero value for a missing key; JSON has no element type,
/// so a map of strings (docker's Labels, Options) yields "" and anything else `<no value>`.
fn missing_elem(m: &serde_json::Map<String, J>) -> Value {
    if m.values().all(J::is_string) {
        Value::str("")
    } else {
        Value::Missing
    }
}

fn index(a: &[Value]) -> Result<Value, String> {
    let mut item = a[0].clone();
    for idx in &a[1..] {
        item = match &item {
            Value::Missing => return Err("index of untyped nil".into()),
            Value::Json(J::Array(v)) => {
                let x = index_arg(idx, v.len())?;
                let e = v.get(x).ok_or(format!("index out of range: {x}"))?;
                Value::Json(e.clone())
            }
            Value::Json(J::String(s)) => {
                let x = index_arg(idx, s.len())?;
                let b = s
                    .as_bytes()
                    .get(x)
                    .ok_or(format!("index out of range: {x}"))?;
                Value::int(i64::from(*b))
            }
            Value::Json(J::Object(m)) => match idx {
                Value::Json(J::String(k)) => m
                    .get(k)
                    .cloned()
                    .map_or_else(|| missing_elem(m), Value::Json),
                Value::Missing | Value::Json(J::Null) => {
                    return Err("value is nil; should be string".into())
                }
                Value::Json(j) => {
                    return Err(format!("value has type {}; should be string", type_name(j)))
                }
            },
            // A nil map[string]string indexes to "", which is what docker shows for null Labels.
            Value::Json(J::Null) if matches!(idx, Value::Json(J::String(_))) => Value::str(""),
            Value::Json(J::Null) => return Err("index of nil pointer".into()),
            Value::Json(j) => return Err(format!("can't index item of type {}", type_name(j))),
        };
    }
    Ok(item)
}

fn slice(a: &[Value]) -> Result<Value, String> {
    let idxs = &a[1..];
    if idxs.len() > 3 {
        return Err(format!("too many slice indexes: {}", idxs.len()));
    }
    let len = match &a[0] {
        Value::Missing | Value::Json(J::Null) => return Err("slice of untyped nil".into()),
        Value::Json(J::String(_)) if idxs.len() == 3 => {
            return Err("cannot 3-index slice a string".into())
        }
        Value::Json(J::String(s)) => s.len(),
        Value::Json(J::Array(v)) => v.len(),
        Value::Json(j) => return Err(format!("can't slice item of type {}", type_name(j))),
    };
    let mut idx = [0, len, len];
    for (n, x) in idxs.iter().enumerate() {
        idx[n] = index_arg(x, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if idxs.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match &a[0] {
        Value::Json(J::String(s)) => {
            Value::str(String::from_utf8_lossy(&s.as_bytes()[idx[0]..idx[1]]).into_owned())
        }
        Value::Json(J::Array(v)) => Value::Json(J::Array(v[idx[0]..idx[1]].to_vec())),
        _ => unreachable!("checked above"),
    })
}

/// Go's comparison kinds; numbers compare across int and float (Go would refuse).
enum Basic<'a> {
    Nil,
    Bool(bool),
    Num(&'a serde_json::Number),
    Str(&'a str),
    Other(&'a J),
}

fn basic(v: &Value) -> Basic<'_> {
    match v {
        Value::Missing | Value::Json(J::Null) => Basic::Nil,
        Value::Json(J::Bool(b)) => Basic::Bool(*b),
        Value::Json(J::Number(n)) => Basic::Num(n),
        Value::Json(J::String(s)) => Basic::Str(s),
        Value::Json(j) => Basic::Other(j),
    }
}

fn num_cmp(a: &serde_json::Number, b: &serde_json::Number) -> Ordering {
    let int = |n: &serde_json::Number| n.as_i64().map(i128::from).or(n.as_u64().map(i128::from));
    match (int(a), int(b)) {
        (Some(x), Some(y)) => x.cmp(&y),
        _ => a
            .as_f64()
            .partial_cmp(&b.as_f64())
            .unwrap_or(Ordering::Equal),
    }
}

const INCOMPATIBLE: &str = "incompatible types for comparison";

fn equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (basic(a), basic(b)) {
        (Basic::Nil, Basic::Nil) => true,
        (Basic::Nil, _) | (_, Basic::Nil) => false,
        (Basic::Bool(x), Basic::Bool(y)) => x == y,
        (Basic::Num(x), Basic::Num(y)) => num_cmp(x, y) == Ordering::Equal,
        (Basic::Str(x), Basic::Str(y)) => x == y,
        (Basic::Other(j), Basic::Other(_)) => {
            return Err(format!(
                "non-comparable type {}: {}",
                go_print(j),
                type_name(j)
            ))
        }
        _ => return Err(INCOMPATIBLE.into()),
    })
}

fn eq(a: &[Value]) -> Result<Value, String> {
    if a.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    for b in &a[1..] {
        if equal(&a[0], b)? {
            return Ok(bool_val(true));
        }
    }
    Ok(bool_val(false))
}

fn less(a: &Value, b: &Value) -> Result<bool, String> {
    match (basic(a), basic(b)) {
        (Basic::Num(x), Basic::Num(y)) => Ok(num_cmp(x, y) == Ordering::Less),
        (Basic::Str(x), Basic::Str(y)) => Ok(x < y),
        (Basic::Num(_), Basic::Str(_)) | (Basic::Str(_), Basic::Num(_)) => Err(INCOMPATIBLE.into()),
        _ => Err("invalid type for comparison".into()),
    }
}

fn less_eq(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(less(a, b)? || equal(a, b)?)
}

/// text/template's evalArgs: a lone string is used as is, anything else goes through Sprint.
fn eval_args(a: &[Value]) -> String {
    match a {
        [Value::Json(J::String(s))] => s.clone(),
        _ => sprint(&jsons(a)),
    }
}

fn html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{fffd}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

fn js(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

fn urlquery(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// strings.Split: an empty separator splits after each UTF-8 character.
fn split(a: &[Value]) -> Result<Value, String> {
    let (text, sep) = (s(&a[0]), s(&a[1]));
    let parts: Vec<J> = if sep.is_empty() {
        text.chars().map(|c| J::String(c.to_string())).collect()
    } else {
        text.split(sep).map(|p| J::String(p.to_string())).collect()
    };
    Ok(Value::Json(J::Array(parts)))
}

fn join(a: &[Value]) -> Result<Value, String> {
    let parts: Vec<&str> = match &a[0] {
        Value::Json(J::Array(v)) => v.iter().filter_map(J::as_str).collect(),
        _ => Vec::new(),
    };
    Ok(Value::str(parts.join(s(&a[1]))))
}

/// strings.Title: upper-case the first letter of every word.
fn title(text: &str) -> String {
    let separator = |c: char| {
        if c.is_ascii() {
            !(c.is_ascii_alphanumeric() || c == '_')
        } else {
            c.is_whitespace()
        }
    };
    let mut prev = ' ';
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if separator(prev) {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        prev = c;
    }
    out
}

fn pad(a: &[Value]) -> Result<Value, String> {
    let (text, pre, post) = (s(&a[0]), i(&a[1]), i(&a[2]));
    if text.is_empty() {
        return Ok(Value::str(""));
    }
    let (Ok(pre), Ok(post)) = (usize::try_from(pre), usize::try_from(post)) else {
        return Err("strings: negative Repeat count".into());
    };
    let (pre, post) = (" ".repeat(pre), " ".repeat(post));
    Ok(Value::str(format!("{pre}{text}{post}")))
}

/// Go slices bytes; a cut inside a UTF-8 sequence backs off to the character start.
fn truncate(a: &[Value]) -> Result<Value, String> {
    let (text, n) = (s(&a[0]), i(&a[1]));
    let Ok(mut n) = usize::try_from(n) else {
        return Err(format!("runtime error: slice bounds out of range [:{n}]"));
    };
    if text.len() < n {
        return Ok(Value::str(text));
    }
    while !text.is_char_boundary(n) {
        n -= 1;
    }
    Ok(Value::str(&text[..n]))
}
