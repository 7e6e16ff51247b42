//! Executes a parse tree against JSON, following text/template/exec.go: missing keys give
//! `<no value>`, maps range in sorted key order, errors carry Go's location and context.

use std::collections::HashMap;

use serde_json::Value as J;

use super::funcs::{lookup, Func, Param};
use super::node::{Arg, Branch, Command, Node, Number, Pipe};
use super::value::{type_name, Value};

/// Go allows 100000 nested template calls; Rust's stack does not, so stop earlier. The
/// parser bounds nesting inside one template body, but a recursive `{{template}}` multiplies
/// it, so calls, `{{if}}`/`{{with}}`/`{{range}}` bodies and parenthesised pipelines all
/// count here together. One level takes up to ~3.5 KiB of stack in a debug build: 200 leave
/// a 3× margin on the 2 MiB threads of tests (the CLI renders on its 8 MiB main thread).
pub(crate) const MAX_DEPTH: usize = 200;

type R<T> = Result<T, String>;

enum Flow {
    Next,
    Break,
    Continue,
}

/// The node being executed, for error messages.
#[derive(Clone, Copy)]
enum At<'a> {
    Node(&'a Node),
    Pipe(&'a Pipe),
    Cmd(&'a Command),
    Arg(&'a Arg),
}

impl At<'_> {
    fn describe(self) -> (usize, String) {
        match self {
            At::Node(n) => (n.pos(), n.to_string()),
            At::Pipe(p) => (p.pos, p.to_string()),
            At::Cmd(c) => (c.pos, c.to_string()),
            At::Arg(a) => (a.pos(), a.to_string()),
        }
    }
}

pub(crate) struct Exec<'a> {
    pub src: &'a str,
    pub defs: &'a HashMap<String, Vec<Node>>,
    /// Table headers run with docker's HeaderFunctions and `.Label "x"` naming.
    pub header: bool,
    pub out: String,
    vars: Vec<(String, Value)>,
    at: Option<At<'a>>,
    depth: usize,
}

impl<'a> Exec<'a> {
    pub(crate) fn new(src: &'a str, defs: &'a HashMap<String, Vec<Node>>, header: bool) -> Self {
        Exec {
            src,
            defs,
            header,
            out: String::new(),
            vars: Vec::new(),
            at: None,
            depth: 0,
        }
    }

    pub(crate) fn run(&mut self, root: &'a [Node], dot: &Value) -> R<()> {
        self.vars = vec![("$".into(), dot.clone())];
        self.walk_list(dot, root).map(|_| ())
    }

    fn err<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        Err(match self.at {
            None => format!("template: : {msg}"),
            Some(at) => {
                let (pos, context) = at.describe();
                let before = &self.src[..pos.min(self.src.len())];
                let line = 1 + before.matches('\n').count();
                let col = before.rfind('\n').map_or(pos, |nl| pos - nl - 1);
                format!("template: :{line}:{col}: executing \"\" at <{context}>: {msg}")
            }
        })
    }

    /// Runs `f` one level deeper, refusing to go past [`MAX_DEPTH`].
    fn deeper<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.depth >= MAX_DEPTH {
            return self.err(format!(
                "exceeded maximum template depth ({MAX_DEPTH}): nested {{{{template}}}} calls \
                 (recursion without an end?), {{{{if}}}}, {{{{with}}}}, {{{{range}}}} and parentheses count together"
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn walk_list(&mut self, dot: &Value, list: &'a [Node]) -> R<Flow> {
        for node in list {
            match self.walk(dot, node)? {
                Flow::Next => {}
                flow => return Ok(flow),
            }
        }
        Ok(Flow::Next)
    }

    fn walk(&mut self, dot: &Value, node: &'a Node) -> R<Flow> {
        self.at = Some(At::Node(node));
        match node {
            Node::Text(t) => self.out.push_str(t),
            Node::Comment => {}
            Node::Action { pipe, .. } => {
                let v = self.eval_pipeline(dot, pipe)?;
                if pipe.decl.is_empty() {
                    self.out.push_str(&v.print());
                }
            }
            Node::If(b) => return self.deeper(|e| e.walk_if_or_with(dot, b, false)),
            Node::With(b) => return self.deeper(|e| e.walk_if_or_with(dot, b, true)),
            Node::Range(b) => return self.deeper(|e| e.walk_range(dot, node, b)),
            Node::Template { name, pipe, .. } => {
                self.deeper(|e| e.walk_template(dot, name, pipe.as_ref()))?
            }
            Node::Break(_) => return Ok(Flow::Break),
            Node::Continue(_) => return Ok(Flow::Continue),
        }
        Ok(Flow::Next)
    }

    fn walk_if_or_with(&mut self, dot: &Value, b: &'a Branch, with: bool) -> R<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        let flow = if val.truth() {
            self.walk_list(if with { &val } else { dot }, &b.list)?
        } else if let Some(else_list) = &b.else_list {
            self.walk_list(dot, else_list)?
        } else {
            Flow::Next
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Value, node: &'a Node, b: &'a Branch) -> R<Flow> {
        let mark = self.vars.len();
        let val = self.eval_pipeline(dot, &b.pipe)?;
        self.at = Some(At::Node(node));
        let items: Vec<(Value, Value)> = match &val {
            Value::Missing | Value::Json(J::Null) => Vec::new(),
            Value::Json(J::Array(a)) => (0..)
                .zip(a)
                .map(|(i, e)| (Value::int(i), Value::Json(e.clone())))
                .collect(),
            Value::Json(J::Object(m)) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                keys.into_iter()
                    .map(|k| (Value::str(k.as_str()), Value::Json(m[k].clone())))
                    .collect()
            }
            // Go 1.22 ranges over an integer n as 0..n.
            Value::Json(J::Number(n)) if n.as_i64().is_some() => {
                if b.pipe.decl.len() > 1 {
                    return self.err(format!(
                        "can't use {} to iterate over more than one variable",
                        val.print()
                    ));
                }
                (0..n.as_i64().unwrap_or(0))
                    .map(|i| (Value::int(i), Value::int(i)))
                    .collect()
            }
            v => return self.err(format!("range can't iterate over {}", v.print())),
        };
        if items.is_empty() {
            if let Some(else_list) = &b.else_list {
                self.walk_list(dot, else_list)?;
            }
        }
        let body_mark = self.vars.len();
        for (key, elem) in items {
            let n = self.vars.len();
            if !b.pipe.decl.is_empty() {
                self.vars[n - 1].1 = elem.clone();
            }
            if b.pipe.decl.len() > 1 {
                self.vars[n - 2].1 = key;
            }
            let flow = self.walk_list(&elem, &b.list)?;
            self.vars.truncate(body_mark);
            if let Flow::Break = flow {
                break;
            }
        }
        self.vars.truncate(mark);
        Ok(Flow::Next)
    }

    fn walk_template(&mut self, dot: &Value, name: &str, pipe: Option<&'a Pipe>) -> R<()> {
        let Some(list) = self.defs.get(name) else {
            return self.err(format!(
                "template {} not defined",
                super::value::go_quote(name)
            ));
        };
        let dot = match pipe {
            Some(p) => self.eval_pipeline(dot, p)?,
            None => Value::Missing,
        };
        // No dynamic scoping: the callee sees only `$`.
        let vars = std::mem::replace(&mut self.vars, vec![("$".into(), dot.clone())]);
        let result = self.walk_list(&dot, list);
        self.vars = vars;
        result.map(|_| ())
    }

    fn eval_pipeline(&mut self, dot: &Value, pipe: &'a Pipe) -> R<Value> {
        self.at = Some(At::Pipe(pipe));
        let mut value = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Value::Missing);
        for name in &pipe.decl {
            if pipe.is_assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(var) => var.1 = value.clone(),
                    None => return self.err(format!("undefined variable: {name}")),
                }
            } else {
                self.vars.push((name.clone(), value.clone()));
            }
        }
        Ok(value)
    }

    fn not_a_function(&self, args: &[Arg], last: &Option<Value>) -> R<()> {
        if args.len() > 1 || last.is_some() {
            return self.err(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn eval_command(&mut self, dot: &Value, cmd: &'a Command, last: Option<Value>) -> R<Value> {
        let first = &cmd.args[0];
        match first {
            Arg::Field { ident, .. } => {
                self.at = Some(At::Arg(first));
                return self.eval_field_chain(dot, dot.clone(), ident, &cmd.args, last);
            }
            Arg::Chain { .. } => return self.eval_chain(dot, first, &cmd.args, last),
            Arg::Identifier(_, name) => {
                return self.eval_function(dot, first, name, At::Cmd(cmd), &cmd.args, last)
            }
            Arg::Pipe(p) => {
                self.not_a_function(&cmd.args, &last)?;
                return self.eval_pipeline(dot, p);
            }
            Arg::Variable { .. } => return self.eval_variable(dot, first, &cmd.args, last),
            _ => {}
        }
        self.at = Some(At::Arg(first));
        self.not_a_function(&cmd.args, &last)?;
        match first {
            Arg::Bool(_, b) => Ok(Value::Json(J::Bool(*b))),
            Arg::Dot(_) => Ok(dot.clone()),
            Arg::Nil(_) => self.err("nil is not a command"),
            Arg::Number(_, n) => self.ideal_constant(n),
            Arg::String { text, .. } => Ok(Value::str(text.as_str())),
            _ => self.err(format!("can't evaluate command {first}")),
        }
    }

    /// A literal whose type the context doesn't fix: float if it looks like one, else int.
    fn ideal_constant(&self, n: &Number) -> R<Value> {
        let t = &n.text;
        let hex = t.len() > 2 && t.starts_with('0') && t[1..].starts_with(['x', 'X']);
        let looks_float = !hex && !t.starts_with('\'') && t.contains(['.', 'e', 'E', 'p', 'P']);
        match (n.int, n.float) {
            (_, Some(f)) if looks_float => Ok(serde_json::Number::from_f64(f)
                .map_or(Value::Missing, |n| Value::Json(J::Number(n)))),
            (Some(i), _) => Ok(Value::int(i)),
            _ => self.err(format!("{t} overflows int")),
        }
    }

    fn eval_chain(
        &mut self,
        dot: &Value,
        chain: &'a Arg,
        args: &'a [Arg],
        last: Option<Value>,
    ) -> R<Value> {
        let Arg::Chain { node, fields, .. } = chain else {
            return self.err("internal error: not a chain");
        };
        self.at = Some(At::Arg(chain));
        if let Arg::Nil(_) = node.as_ref() {
            return self.err(format!("indirection through explicit nil in {chain}"));
        }
        let receiver = self.eval_arg(dot, Param::Value, node)?;
        self.at = Some(At::Arg(chain));
        self.eval_field_chain(dot, receiver, fields, args, last)
    }

    fn eval_variable(
        &mut self,
        dot: &Value,
        var: &'a Arg,
        args: &'a [Arg],
        last: Option<Value>,
    ) -> R<Value> {
        let Arg::Variable { ident, .. } = var else {
            return self.err("internal error: not a variable");
        };
        self.at = Some(At::Arg(var));
        let value = match self.vars.iter().rev().find(|(n, _)| *n == ident[0]) {
            Some((_, v)) => v.clone(),
            None => return self.err(format!("undefined variable: {}", ident[0])),
        };
        if ident.len() == 1 {
            self.not_a_function(args, &last)?;
            return Ok(value);
        }
        self.eval_field_chain(dot, value, &ident[1..], args, last)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Value,
        mut receiver: Value,
        ident: &[String],
        args: &'a [Arg],
        last: Option<Value>,
    ) -> R<Value> {
        let n = ident.len();
        for name in &ident[..n - 1] {
            receiver = self.eval_field(dot, name, &[], None, receiver)?;
        }
        self.eval_field(dot, &ident[n - 1], args, last, receiver)
    }

    fn eval_field(
        &mut self,
        dot: &Value,
        name: &str,
        args: &'a [Arg],
        last: Option<Value>,
        receiver: Value,
    ) -> R<Value> {
        let Value::Json(recv) = receiver else {
            return Ok(Value::Missing);
        };
        if args.len() > 1 || last.is_some() {
            return self.eval_method(dot, name, args, last, &recv);
        }
        match recv {
            // Docker's templates name Go fields; a few of its JSON keys are lower-case
            // (`scope`, `status`, `time` of an event), and `.Scope` must still find them.
            J::Object(mut m) => Ok(m
                .remove(name)
                .or_else(|| {
                    let mut c = name.chars();
                    let first = c.next()?;
                    first
                        .is_ascii_uppercase()
                        .then(|| m.remove(&format!("{}{}", first.to_ascii_lowercase(), c.as_str())))
                        .flatten()
                })
                .map_or(Value::Missing, Value::Json)),
            J::Null => self.err(format!("nil pointer evaluating interface {{}}.{name}")),
            other => self.err(format!(
                "can't evaluate field {name} in type {}",
                type_name(&other)
            )),
        }
    }

    /// JSON has no methods; stand in for docker's `.Label "key"` by treating `.Name "key"` as a
    /// lookup in the object field `Name`, and in a header by naming the column after the key.
    fn eval_method(
        &mut self,
        dot: &Value,
        name: &str,
        args: &'a [Arg],
        last: Option<Value>,
        recv: &J,
    ) -> R<Value> {
        let lookup = match recv.get(name) {
            Some(J::Object(m)) if !self.header => Some(m),
            _ if self.header => None,
            _ => return self.err(format!("{name} is not a method but has arguments")),
        };
        let key = match (args.len(), last) {
            (2, None) => self.eval_arg(dot, Param::Str, &args[1])?,
            (1, Some(v)) => self.validate(v, Param::Str)?,
            _ => return self.err(format!("{name} is not a method but has arguments")),
        };
        let key = match &key {
            Value::Json(J::String(s)) => s.as_str(),
            _ => "",
        };
        if self.header {
            let last = key.rsplit('.').next().unwrap_or(key);
            return Ok(Value::str(last.replace(['-', '_'], " ")));
        }
        let found = lookup.and_then(|m| m.get(key)).cloned();
        Ok(Value::Json(found.unwrap_or(J::String(String::new()))))
    }

    fn eval_function(
        &mut self,
        dot: &Value,
        ident: &'a Arg,
        name: &str,
        call_site: At<'a>,
        args: &'a [Arg],
        last: Option<Value>,
    ) -> R<Value> {
        self.at = Some(At::Arg(ident));
        let Some(func) = lookup(name, self.header) else {
            return self.err(format!(
                "{} is not a defined function",
                super::value::go_quote(name)
            ));
        };
        self.eval_call(dot, func, call_site, args, last)
    }

    fn eval_call(
        &mut self,
        dot: &Value,
        func: &Func,
        call_site: At<'a>,
        args: &'a [Arg],
        last: Option<Value>,
    ) -> R<Value> {
        let args = args.get(1..).unwrap_or(&[]);
        let num_in = args.len() + usize::from(last.is_some());
        let fixed = func.fixed.len();
        let name = func.name;
        if func.variadic.is_some() && num_in < fixed {
            let got = args.len();
            return self.err(format!(
                "wrong number of args for {name}: want at least {fixed} got {got}"
            ));
        }
        if func.variadic.is_none() && num_in != fixed {
            return self.err(format!(
                "wrong number of args for {name}: want {fixed} got {num_in}"
            ));
        }
        if name == "and" || name == "or" {
            let mut v = Value::Missing;
            for a in args {
                v = self.eval_arg(dot, Param::Value, a)?;
                if v.truth() == (name == "or") {
                    return Ok(v);
                }
            }
            return Ok(last.unwrap_or(v));
        }
        let mut argv = Vec::with_capacity(num_in);
        for (i, a) in args.iter().enumerate() {
            argv.push(self.eval_arg(dot, func.param(i), a)?);
        }
        if let Some(v) = last {
            argv.push(self.validate(v, func.param(num_in - 1))?);
        }
        (func.call)(&argv).or_else(|e| {
            self.at = Some(call_site);
            self.err(format!("error calling {name}: {e}"))
        })
    }

    fn eval_arg(&mut self, dot: &Value, param: Param, arg: &'a Arg) -> R<Value> {
        self.at = Some(At::Arg(arg));
        let value = match arg {
            Arg::Dot(_) => dot.clone(),
            Arg::Nil(_) => {
                return match param {
                    Param::Str | Param::Int => {
                        self.err(format!("cannot assign nil to {}", param.go_type()))
                    }
                    _ => Ok(Value::Json(J::Null)),
                }
            }
            Arg::Field { ident, .. } => {
                self.eval_field_chain(dot, dot.clone(), ident, std::slice::from_ref(arg), None)?
            }
            Arg::Variable { .. } => self.eval_variable(dot, arg, &[], None)?,
            Arg::Pipe(p) => self.deeper(|e| e.eval_pipeline(dot, p))?,
            Arg::Identifier(_, name) => {
                self.eval_function(dot, arg, name, At::Arg(arg), &[], None)?
            }
            Arg::Chain { .. } => self.eval_chain(dot, arg, &[], None)?,
            Arg::Bool(_, b) => match param {
                Param::Value | Param::Any => return Ok(Value::Json(J::Bool(*b))),
                Param::Int => return self.err(format!("expected integer; found {arg}")),
                _ => return self.err(format!("expected string; found {arg}")),
            },
            Arg::String { text, .. } => match param {
                Param::Int => return self.err(format!("expected integer; found {arg}")),
                Param::StrList => {
                    return self.err(format!("can't handle {arg} for arg of type []string"))
                }
                _ => return Ok(Value::str(text.as_str())),
            },
            Arg::Number(_, n) => match param {
                Param::Int => {
                    return n
                        .int
                        .map(Value::int)
                        .map_or_else(|| self.err(format!("expected integer; found {arg}")), Ok)
                }
                Param::Str => return self.err(format!("expected string; found {arg}")),
                Param::StrList => {
                    return self.err(format!("can't handle {arg} for arg of type []string"))
                }
                _ => return self.ideal_constant(n),
            },
        };
        self.validate(value, param)
    }

    /// Go's validateType: check an evaluated value against a function's parameter type.
    fn validate(&self, value: Value, param: Param) -> R<Value> {
        let expected = param.go_type();
        match (param, value) {
            (Param::Value, v) => Ok(v),
            (Param::Any, Value::Missing) => Ok(Value::Json(J::Null)),
            (Param::Any, v) => Ok(v),
            (Param::StrList, Value::Missing | Value::Json(J::Null)) => {
                Ok(Value::Json(J::Array(Vec::new())))
            }
            (_, Value::Missing) => self.err(format!("invalid value; expected {expected}")),
            (Param::Str, v @ Value::Json(J::String(_))) => Ok(v),
            (Param::Int, Value::Json(J::Number(n))) if n.as_i64().is_some() => {
                Ok(Value::Json(J::Number(n)))
            }
            (Param::StrList, Value::Json(J::Array(a))) if a.iter().all(J::is_string) => {
                Ok(Value::Json(J::Array(a)))
            }
            (_, Value::Json(j)) => self.err(format!(
                "wrong type for value; expected {expected}; got {}",
                type_name(&j)
            )),
        }
    }
}
