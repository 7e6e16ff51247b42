//! The parts of Go's fmt package that templates reach: Sprint, Sprintln and a Sprintf
//! covering the common verbs (v s q d x X o b c U t e E f F g G T and %%).

use serde_json::Value as J;

use super::value::{float_v, go_print, go_quote, type_name};

/// fmt.Sprint: operands are separated by a space only when neither side is a string.
pub(crate) fn sprint(args: &[J]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, a) in args.iter().enumerate() {
        let is_string = a.is_string();
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        out.push_str(&go_print(a));
        prev_string = is_string;
    }
    out
}

pub(crate) fn sprintln(args: &[J]) -> String {
    let parts: Vec<String> = args.iter().map(go_print).collect();
    parts.join(" ") + "\n"
}

#[derive(Default)]
struct Spec {
    minus: bool,
    plus: bool,
    sharp: bool,
    zero: bool,
    space: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

pub(crate) fn sprintf(format: &str, args: &[J]) -> String {
    let mut out = String::new();
    let mut next_arg = 0;
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec::default();
        while let Some(&f) = chars.peek() {
            match f {
                '-' => spec.minus = true,
                '+' => spec.plus = true,
                '#' => spec.sharp = true,
                '0' => spec.zero = true,
                ' ' => spec.space = true,
                _ => break,
            }
            chars.next();
        }
        spec.width = digits(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.prec = Some(digits(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        match args.get(next_arg) {
            None => out.push_str(&format!("%!{verb}(MISSING)")),
            Some(arg) => out.push_str(&format_arg(&spec, verb, arg)),
        }
        next_arg += 1;
    }
    if next_arg < args.len() {
        let extra: Vec<String> = args[next_arg..]
            .iter()
            .map(|a| match a {
                J::Null => "<nil>".to_string(),
                a => format!("{}={}", type_name(a), go_print(a)),
            })
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut n: Option<usize> = None;
    while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
        n = Some(n.unwrap_or(0) * 10 + d as usize);
        chars.next();
    }
    n
}

fn bad_verb(verb: char, arg: &J) -> String {
    match arg {
        J::Null => format!("%!{verb}(<nil>)"),
        a => format!("%!{verb}({}={})", type_name(a), go_print(a)),
    }
}

fn format_arg(spec: &Spec, verb: char, arg: &J) -> String {
    if verb == 'T' {
        return pad(spec, type_name(arg).to_string(), false);
    }
    let int = arg
        .as_i64()
        .map(i128::from)
        .or(arg.as_u64().map(i128::from));
    let body = match (verb, arg) {
        ('v', J::Number(n)) if n.is_f64() => float_v(n.as_f64().unwrap_or(0.0)),
        ('v', _) => go_print(arg),
        ('s', J::String(s)) => match spec.prec {
            Some(p) => s.chars().take(p).collect(),
            None => s.clone(),
        },
        ('s', J::Array(_) | J::Object(_)) => go_print(arg),
        ('q', J::String(s)) => go_quote(s),
        ('t', J::Bool(b)) => b.to_string(),
        ('x' | 'X', J::String(s)) => {
            let hex: String = s.bytes().map(|b| format!("{b:02x}")).collect();
            if verb == 'X' {
                hex.to_uppercase()
            } else {
                hex
            }
        }
        (_, J::Number(_)) if int.is_some() => match int_verb(spec, verb, int.unwrap_or(0)) {
            Some(s) => return pad(spec, s, true),
            None => bad_verb(verb, arg),
        },
        ('e' | 'E' | 'f' | 'F' | 'g' | 'G', J::Number(n)) => {
            return pad(
                spec,
                float_verb(spec, verb, n.as_f64().unwrap_or(0.0)),
                true,
            )
        }
        _ => bad_verb(verb, arg),
    };
    pad(spec, body, false)
}

fn sign(spec: &Spec, neg: bool) -> &'static str {
    match (neg, spec.plus, spec.space) {
        (true, _, _) => "-",
        (false, true, _) => "+",
        (false, false, true) => " ",
        _ => "",
    }
}

fn int_verb(spec: &Spec, verb: char, i: i128) -> Option<String> {
    let (neg, u) = (i < 0, i.unsigned_abs());
    let digits = match verb {
        'd' | 'v' => u.to_string(),
        'x' => format!("{}{u:x}", if spec.sharp { "0x" } else { "" }),
        'X' => format!("{}{u:X}", if spec.sharp { "0X" } else { "" }),
        'o' => format!("{}{u:o}", if spec.sharp { "0" } else { "" }),
        'b' => format!("{u:b}"),
        'c' => return Some(go_char(i).to_string()),
        'q' => {
            let c = go_char(i);
            let q = go_quote(&c.to_string());
            return Some(format!("'{}'", &q[1..q.len() - 1]));
        }
        'U' => return Some(format!("U+{u:04X}")),
        _ => return None,
    };
    Some(format!("{}{digits}", sign(spec, neg)))
}

fn float_verb(spec: &Spec, verb: char, f: f64) -> String {
    let neg = f.is_sign_negative() && f != 0.0;
    let a = f.abs();
    let body = match verb {
        'f' | 'F' => format!("{a:.*}", spec.prec.unwrap_or(6)),
        'e' | 'E' => {
            let s = format!("{a:.*e}", spec.prec.unwrap_or(6));
            let (m, x) = s.split_once('e').unwrap_or((&s, "0"));
            let x: i32 = x.parse().unwrap_or(0);
            let s = format!("{m}e{}{:02}", if x < 0 { '-' } else { '+' }, x.abs());
            if verb == 'E' {
                s.to_uppercase()
            } else {
                s
            }
        }
        _ => {
            let s = float_v(a);
            if verb == 'G' {
                s.to_uppercase()
            } else {
                s
            }
        }
    };
    format!("{}{body}", sign(spec, neg))
}

fn pad(spec: &Spec, s: String, numeric: bool) -> String {
    let width = spec.width.unwrap_or(0);
    let len = s.chars().count();
    if len >= width {
        return s;
    }
    let fill = width - len;
    if spec.minus {
        s + &" ".repeat(fill)
    } else if spec.zero && numeric {
        let split = usize::from(s.starts_with(['-', '+', ' ']));
        format!("{}{}{}", &s[..split], "0".repeat(fill), &s[split..])
    } else {
        " ".repeat(fill) + &s
    }
}

/// A rune as Go prints it: an invalid code point is U+FFFD.
fn go_char(i: i128) -> char {
    u32::try_from(i)
        .ok()
        .and_then(char::from_u32)
        .unwrap_or('\u{fffd}')
}
