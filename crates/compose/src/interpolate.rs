//! `${VAR}` interpolation as the Compose Specification defines it, and `.env` files.

use crate::Error;

/// Replaces `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}`,
/// `${VAR?message}`, `${VAR:+alt}`, `${VAR+alt}`; `$$` is a literal `$`. Defaults may
/// themselves hold variables. `lookup` gives a variable's value (None: unset).
pub fn interpolate(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, Error> {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'$' {
            let next = s[i..].find('$').map_or(s.len(), |k| i + k);
            out.push_str(&s[i..next]);
            i = next;
            continue;
        }
        match b.get(i + 1) {
            Some(b'$') => {
                out.push('$');
                i += 2;
            }
            Some(b'{') => {
                let end = matching_brace(s, i + 2).ok_or_else(|| {
                    Error::Interpolation(format!("{s:?}: unclosed ${{ (use $$ for a literal $)"))
                })?;
                out.push_str(&braced(&s[i + 2..end], s, lookup)?);
                i = end + 1;
            }
            Some(c) if c.is_ascii_alphabetic() || *c == b'_' => {
                let start = i + 1;
                let mut j = start;
                while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'_') {
                    j += 1;
                }
                out.push_str(&lookup(&s[start..j]).unwrap_or_default());
                i = j;
            }
            _ => {
                return Err(Error::Interpolation(format!(
                    "{s:?}: invalid $ at position {i} (use $$ for a literal $)"
                )))
            }
        }
    }
    Ok(out)
}

/// The `}` closing the `${` whose content starts at `from`, with nested `${…}` skipped.
fn matching_brace(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 1;
    let mut i = from;
    while i < b.len() {
        match b[i] {
            b'$' if b.get(i + 1) == Some(&b'{') => {
                depth += 1;
                i += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
        i += 1;
    }
    None
}

fn braced(
    inner: &str,
    whole: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, Error> {
    let name_end = inner
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(inner.len());
    let (name, rest) = inner.split_at(name_end);
    if name.is_empty() || name.as_bytes()[0].is_ascii_digit() {
        return Err(Error::Interpolation(format!(
            "{whole:?}: invalid variable name in ${{{inner}}}"
        )));
    }
    let value = lookup(name);
    let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
    let arg = |k: usize| interpolate(&rest[k..], lookup);
    Ok(match rest {
        "" => value.unwrap_or_default(),
        r if r.starts_with(":-") => {
            if set_nonempty {
                value.unwrap_or_default()
            } else {
                arg(2)?
            }
        }
        r if r.starts_with('-') => match value {
            Some(v) => v,
            None => arg(1)?,
        },
        r if r.starts_with(":?") || r.starts_with('?') => {
            let strict = r.starts_with(":?");
            let ok = if strict {
                set_nonempty
            } else {
                value.is_some()
            };
            if !ok {
                let k = if strict { 2 } else { 1 };
                let msg = arg(k)?;
                return Err(Error::Interpolation(format!(
                    "required variable {name} is missing a value: {msg}"
                )));
            }
            value.unwrap_or_default()
        }
        r if r.starts_with(":+") => {
            if set_nonempty {
                arg(2)?
            } else {
                String::new()
            }
        }
        r if r.starts_with('+') => {
            if value.is_some() {
                arg(1)?
            } else {
                String::new()
            }
        }
        _ => {
            return Err(Error::Interpolation(format!(
                "{whole:?}: invalid interpolation format for ${{{inner}}}"
            )))
        }
    })
}

/// A `.env` file: `KEY=VALUE` lines, `#` comments, an optional `export `, single quotes
/// (literal) or double quotes (with `\n`, `\"`, `\\` escapes), and `${VAR}` references to
/// earlier lines or the environment in unquoted and double-quoted values.
pub fn parse_env_file(
    text: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, Error> {
    let mut out: Vec<(String, String)> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(Error::EnvFile(format!(
                "line {}: expected KEY=VALUE, got {line:?}",
                n + 1
            )));
        };
        let k = k.trim();
        if k.is_empty()
            || !k
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        {
            return Err(Error::EnvFile(format!(
                "line {}: invalid variable name {k:?}",
                n + 1
            )));
        }
        let v = v.trim();
        let known = |name: &str| {
            out.iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .or_else(|| lookup(name))
        };
        let value = if let Some(q) = v.strip_prefix('\'') {
            q.strip_suffix('\'').unwrap_or(q).to_string()
        } else if let Some(q) = v.strip_prefix('"') {
            let q = q.strip_suffix('"').unwrap_or(q);
            let unescaped = q
                .replace("\\n", "\n")
                .replace("\\\"", "\"")
                .replace("\\\\", "\\");
            interpolate(&unescaped, &known)?
        } else {
            let v = v.split(" #").next().unwrap_or(v).trim_end();
            interpolate(v, &known)?
        };
        out.push((k.to_string(), value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(k: &str) -> Option<String> {
        match k {
            "SET" => Some("value".into()),
            "EMPTY" => Some(String::new()),
            "PORT" => Some("8080".into()),
            _ => None,
        }
    }

    fn i(s: &str) -> String {
        interpolate(s, &env).unwrap()
    }

    #[test]
    fn every_form() {
        assert_eq!(i("plain"), "plain");
        assert_eq!(i("$SET and ${SET}"), "value and value");
        assert_eq!(i("${UNSET}"), "");
        assert_eq!(i("${UNSET:-def}"), "def");
        assert_eq!(i("${EMPTY:-def}"), "def");
        assert_eq!(i("${EMPTY-def}"), "");
        assert_eq!(i("${UNSET-def}"), "def");
        assert_eq!(i("${SET:+alt}"), "alt");
        assert_eq!(i("${EMPTY:+alt}"), "");
        assert_eq!(i("${EMPTY+alt}"), "alt");
        assert_eq!(i("${UNSET:-${PORT}}"), "8080");
        assert_eq!(i("$$SET costs $$5"), "$SET costs $5");
        assert_eq!(i("${PORT}:80"), "8080:80");
    }

    #[test]
    fn errors_name_the_problem() {
        let e = interpolate("${UNSET:?give it}", &env)
            .unwrap_err()
            .to_string();
        assert!(e.contains("UNSET") && e.contains("give it"), "{e}");
        interpolate("${EMPTY?x}", &env).unwrap();
        interpolate("${EMPTY:?x}", &env).unwrap_err();
        assert!(interpolate("${SET", &env)
            .unwrap_err()
            .to_string()
            .contains("unclosed"));
        interpolate("a $ b", &env).unwrap_err();
        interpolate("${1X}", &env).unwrap_err();
        interpolate("${SET!x}", &env).unwrap_err();
    }

    #[test]
    fn env_files() {
        let e = parse_env_file(
            "# c\nA=1\nexport B = two words # comment\nC='${A} literal'\nD=\"x\\ny ${A}\"\nE=${A}${SET}\n\n",
            &env,
        )
        .unwrap();
        assert_eq!(
            e,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "${A} literal".into()),
                ("D".into(), "x\ny 1".into()),
                ("E".into(), "1value".into()),
            ]
        );
        assert!(parse_env_file("novalue\n", &env)
            .unwrap_err()
            .to_string()
            .contains("line 1"));
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in ".{0,40}") {
            let _ = interpolate(&s, &env);
        }

        #[test]
        fn text_without_dollars_is_unchanged(s in "[^$]{0,40}") {
            proptest::prop_assert_eq!(interpolate(&s, &env).unwrap(), s);
        }
    }
}
