//! docker's `filters` query parameter: `{"name":{"web":true}}`, written by clients from
//! `--filter k=v` flags, read by the server also in the legacy list form `{"name":["web"]}`.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error(
        "invalid filter JSON {raw:?}: {why}; expected an object such as {{\"name\":{{\"web\":true}}}}"
    )]
    Json { raw: String, why: String },
    #[error("bad format of filter (expected name=value): {0}")]
    Flag(String),
}

/// Filters as a client sends them: each key's values, each `true`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Filters(BTreeMap<String, BTreeMap<String, bool>>);

impl Filters {
    pub fn new() -> Filters {
        Filters::default()
    }

    /// Adds one value to a key (`label`, `name`, …).
    pub fn with(mut self, key: &str, value: &str) -> Filters {
        self.0
            .entry(key.to_string())
            .or_default()
            .insert(value.to_string(), true);
        self
    }

    /// From `--filter k=v` flags.
    pub fn from_flags(flags: &[String]) -> Result<Filters, FilterError> {
        flags.iter().try_fold(Filters::new(), |f, flag| {
            let (k, v) = flag
                .split_once('=')
                .ok_or_else(|| FilterError::Flag(flag.clone()))?;
            Ok(f.with(k, v))
        })
    }

    /// The query parameter's value (before URL encoding).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.0).expect("a map of strings serializes")
    }

    /// The server's side: each key with the values that are on, from either form.
    pub fn parse(raw: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, FilterError> {
        let Some(raw) = raw.filter(|s| !s.is_empty()) else {
            return Ok(BTreeMap::new());
        };
        let bad = |why: String| FilterError::Json {
            raw: raw.to_string(),
            why,
        };
        let v: Value = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let Value::Object(m) = v else {
            return Err(bad("not an object".into()));
        };
        let mut out = BTreeMap::new();
        for (k, vals) in m {
            let list = match vals {
                Value::Object(o) => {
                    let mut list = Vec::new();
                    for (v, on) in o {
                        match on {
                            Value::Bool(true) => list.push(v),
                            Value::Bool(false) => {}
                            _ => {
                                return Err(bad(format!(
                                    "the value of {k}.{v} is not true or false"
                                )))
                            }
                        }
                    }
                    list
                }
                Value::Array(a) => a
                    .into_iter()
                    .map(|s| match s {
                        Value::String(s) => Ok(s),
                        other => Err(bad(format!("{k} lists {other}, not a string"))),
                    })
                    .collect::<Result<_, _>>()?,
                other => return Err(bad(format!("{k} is {other}, not an object or a list"))),
            };
            out.insert(k, list);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_forms_and_bad_ones() {
        let f = Filters::parse(Some(r#"{"name":{"dev":true},"label":["a=b"]}"#)).unwrap();
        assert_eq!(f["name"], vec!["dev"]);
        assert_eq!(f["label"], vec!["a=b"]);
        Filters::parse(Some("{nope")).unwrap_err();
        for bad in [
            "[1]",
            "\"x\"",
            "1",
            r#"{"name":"x"}"#,
            r#"{"name":[1]}"#,
            r#"{"name":{"x":1}}"#,
        ] {
            let e = Filters::parse(Some(bad)).expect_err(bad).to_string();
            assert!(e.starts_with("invalid filter JSON"), "{e}");
        }
        let f = Filters::parse(Some(r#"{"name":{"a":true,"b":false}}"#)).unwrap();
        assert_eq!(f["name"], vec!["a"]);
        assert!(Filters::parse(None).unwrap().is_empty());
    }

    #[test]
    fn flags_become_what_the_server_reads() {
        let flags = ["label=a=b".to_string(), "name=web".into(), "name=db".into()];
        let f = Filters::from_flags(&flags).unwrap();
        assert_eq!(
            f.to_json(),
            r#"{"label":{"a=b":true},"name":{"db":true,"web":true}}"#
        );
        let back = Filters::parse(Some(&f.to_json())).unwrap();
        assert_eq!(back["name"], ["db", "web"]);
        assert_eq!(back["label"], ["a=b"]);
        assert_eq!(
            Filters::from_flags(&["bogus".into()])
                .unwrap_err()
                .to_string(),
            "bad format of filter (expected name=value): bogus"
        );
        assert_eq!(Filters::new().to_json(), "{}");
    }
}
