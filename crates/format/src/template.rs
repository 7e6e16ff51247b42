//! Go text/template, as docker's `--format` uses it, executed against API JSON.
//!
//! gtmpl was the first candidate, but its values are HashMaps: ranging over a map comes out
//! in random order (Go sorts keys), `json .` loses field order, maps print in Rust Debug form
//! and null prints `nil`. So this is a small port of Go's lexer, parser and executor.

mod exec;
mod fmt;
mod funcs;
mod lex;
mod node;
mod parse;
mod value;

#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use crate::FormatError;
use node::{Arg, Node, Pipe};
pub(crate) use value::go_json;
use value::Value;

/// A parsed template, reusable across rows.
pub(crate) struct Template {
    src: String,
    parsed: parse::Parsed,
}

impl Template {
    pub(crate) fn parse(src: &str) -> Result<Template, FormatError> {
        let parsed = parse::parse(src, &funcs::exists).map_err(FormatError::Parse)?;
        Ok(Template {
            src: src.to_string(),
            parsed,
        })
    }

    pub(crate) fn execute(&self, value: &serde_json::Value) -> Result<String, FormatError> {
        let mut exec = exec::Exec::new(&self.src, &self.parsed.defs, false);
        exec.run(&self.parsed.root, &Value::Json(value.clone()))
            .map_err(FormatError::Exec)?;
        Ok(exec.out)
    }

    /// Renders the table header the way docker does: the row template runs against a map of
    /// field name → column title, with HeaderFunctions. Like docker, a failure mid-way
    /// is ignored and whatever was rendered so far is kept.
    pub(crate) fn execute_header(&self, headers: &[(&str, &str)]) -> String {
        let mut names = BTreeSet::new();
        collect_fields(&self.parsed.root, &mut names);
        for list in self.parsed.defs.values() {
            collect_fields(list, &mut names);
        }
        let ctx: serde_json::Map<String, serde_json::Value> = names
            .into_iter()
            .map(|name| {
                let title = headers
                    .iter()
                    .find(|(field, _)| *field == name)
                    .map_or_else(|| name.to_uppercase(), |(_, title)| title.to_string());
                (name, serde_json::Value::String(title))
            })
            .collect();
        let mut exec = exec::Exec::new(&self.src, &self.parsed.defs, true);
        let _ = exec.run(
            &self.parsed.root,
            &Value::Json(serde_json::Value::Object(ctx)),
        );
        exec.out
    }
}

/// Names of the first field in every `.Field` reference, which are the header columns.
fn collect_fields(list: &[Node], out: &mut BTreeSet<String>) {
    for node in list {
        match node {
            Node::Action { pipe, .. } => collect_pipe(pipe, out),
            Node::If(b) | Node::With(b) | Node::Range(b) => {
                collect_pipe(&b.pipe, out);
                collect_fields(&b.list, out);
                if let Some(e) = &b.else_list {
                    collect_fields(e, out);
                }
            }
            Node::Template { pipe: Some(p), .. } => collect_pipe(p, out),
            _ => {}
        }
    }
}

fn collect_pipe(pipe: &Pipe, out: &mut BTreeSet<String>) {
    for arg in pipe.cmds.iter().flat_map(|c| &c.args) {
        collect_arg(arg, out);
    }
}

fn collect_arg(arg: &Arg, out: &mut BTreeSet<String>) {
    match arg {
        Arg::Field { ident, .. } => {
            out.insert(ident[0].clone());
        }
        Arg::Pipe(p) => collect_pipe(p, out),
        Arg::Chain { node, .. } => collect_arg(node, out),
        _ => {}
    }
}
