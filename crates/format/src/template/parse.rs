//! Parser for Go's text/template, following text/template/parse/parse.go so that
//! errors read like Go's (`template: :1: function "foo" not defined`).

use std::collections::HashMap;

use super::lex::{lex, Item, Kind};
use super::node::{Arg, Branch, Command, Node, Number, Pipe};
use super::value::go_quote;

pub(crate) struct Parsed {
    pub root: Vec<Node>,
    pub defs: HashMap<String, Vec<Node>>,
}

/// What ends an item list: `{{end}}` or `{{else}}`, which Go also models as nodes.
enum Step {
    Node(Node),
    End,
    Else,
}

type R<T> = Result<T, String>;

/// How deeply `{{if}}`/`{{with}}`/`{{range}}`/`{{block}}`/`{{define}}` bodies, `{{else if}}`
/// chains and parenthesised pipelines may nest, all counted together. Go caps only
/// parentheses (at 10000) and lets goroutine stacks grow for the rest; this parser recurses
/// on a fixed thread stack, where one level costs up to ~10 KiB in a debug build, so the cap
/// is far below what 2 MiB holds and far above what any `--format` template nests.
pub(crate) const MAX_PARSE_DEPTH: usize = 100;

pub(crate) fn parse(text: &str, has_func: &dyn Fn(&str) -> bool) -> R<Parsed> {
    let mut p = Parser {
        items: lex(text),
        i: 0,
        seen: 0,
        vars: vec!["$".into()],
        range_depth: 0,
        depth: 0,
        action_line: 0,
        has_func,
        defs: HashMap::new(),
    };
    let root = p.parse()?;
    Ok(Parsed { root, defs: p.defs })
}

struct Parser<'a> {
    items: Vec<Item>,
    i: usize,
    /// Furthest token looked at; Go reports the line of the latest lexed token.
    seen: usize,
    vars: Vec<String>,
    range_depth: usize,
    /// Current nesting, against [`MAX_PARSE_DEPTH`].
    depth: usize,
    action_line: usize,
    has_func: &'a dyn Fn(&str) -> bool,
    defs: HashMap<String, Vec<Node>>,
}

impl Parser<'_> {
    fn at(&mut self, i: usize) -> Item {
        let i = i.min(self.items.len() - 1);
        self.seen = self.seen.max(i);
        self.items[i].clone()
    }

    fn next(&mut self) -> Item {
        let item = self.at(self.i);
        if self.i < self.items.len() {
            self.i += 1;
        }
        item
    }

    fn backup(&mut self) {
        self.i -= 1;
    }

    fn peek(&mut self) -> Item {
        self.at(self.i)
    }

    fn next_non_space(&mut self) -> Item {
        loop {
            let item = self.next();
            if item.kind != Kind::Space {
                return item;
            }
        }
    }

    fn peek_non_space(&mut self) -> Item {
        let item = self.next_non_space();
        self.backup();
        item
    }

    fn errorf<T>(&self, msg: impl std::fmt::Display) -> R<T> {
        let line = self.items[self.seen].line;
        Err(format!("template: :{line}: {msg}"))
    }

    fn unexpected<T>(&self, item: &Item, context: &str) -> R<T> {
        if item.kind == Kind::Error {
            let mut extra = String::new();
            if self.action_line != 0 && self.action_line != item.line {
                extra = format!(" in action started at :{}", self.action_line);
                if item.val.ends_with(" action") {
                    extra = extra[" in action".len()..].to_string();
                }
            }
            return self.errorf(format!("{item}{extra}"));
        }
        self.errorf(format!("unexpected {item} in {context}"))
    }

    fn expect(&mut self, kind: Kind, context: &str) -> R<Item> {
        let item = self.next_non_space();
        if item.kind != kind {
            return self.unexpected(&item, context);
        }
        Ok(item)
    }

    /// Runs `f` one nesting level deeper, refusing to go past [`MAX_PARSE_DEPTH`].
    fn nested<T>(&mut self, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        if self.depth >= MAX_PARSE_DEPTH {
            return self.errorf(format!(
                "max nesting depth exceeded: more than {MAX_PARSE_DEPTH} levels of \
                 {{{{if}}}}, {{{{with}}}}, {{{{range}}}}, {{{{block}}}}, {{{{else if}}}} or parentheses"
            ));
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    fn parse(&mut self) -> R<Vec<Node>> {
        let mut root = Vec::new();
        while self.peek().kind != Kind::Eof {
            if self.peek().kind == Kind::LeftDelim {
                let save = self.i;
                self.next();
                if self.next_non_space().kind == Kind::Define {
                    self.definition()?;
                    continue;
                }
                self.i = save;
            }
            match self.text_or_action()? {
                Step::End => return self.errorf("unexpected {{end}}"),
                Step::Else => return self.errorf("unexpected {{else}}"),
                Step::Node(n) => root.push(n),
            }
        }
        Ok(root)
    }

    /// Parses a named template body with a fresh variable scope, as Go's separate Tree does.
    fn sub_tree(&mut self, name: String, context: &str) -> R<()> {
        self.nested(|p| p.sub_tree_body(name, context))
    }

    fn sub_tree_body(&mut self, name: String, context: &str) -> R<()> {
        let vars = std::mem::replace(&mut self.vars, vec!["$".into()]);
        let depth = std::mem::replace(&mut self.range_depth, 0);
        let (list, end) = self.item_list()?;
        if !matches!(end, Step::End) {
            return self.errorf(format!("unexpected {{{{else}}}} in {context}"));
        }
        self.vars = vars;
        self.range_depth = depth;
        // Like Go's Tree.add: a non-empty definition wins over an empty one.
        if self.defs.get(&name).is_some_and(|old| !is_empty_tree(old)) {
            if is_empty_tree(&list) {
                return Ok(());
            }
            return self.errorf(format!(
                "template: multiple definition of template {}",
                go_quote(&name)
            ));
        }
        self.defs.insert(name, list);
        Ok(())
    }

    fn definition(&mut self) -> R<()> {
        let context = "define clause";
        let item = self.next_non_space();
        if item.kind != Kind::String && item.kind != Kind::RawString {
            return self.unexpected(&item, context);
        }
        let name = self.unquote(&item.val)?;
        self.expect(Kind::RightDelim, context)?;
        self.sub_tree(name, context)
    }

    fn item_list(&mut self) -> R<(Vec<Node>, Step)> {
        let mut list = Vec::new();
        while self.peek_non_space().kind != Kind::Eof {
            match self.text_or_action()? {
                Step::Node(n) => list.push(n),
                end => return Ok((list, end)),
            }
        }
        self.errorf("unexpected EOF")
    }

    fn text_or_action(&mut self) -> R<Step> {
        let item = self.next_non_space();
        match item.kind {
            Kind::Text => Ok(Step::Node(Node::Text(item.val))),
            Kind::LeftDelim => {
                self.action_line = item.line;
                let r = self.action();
                self.action_line = 0;
                r
            }
            Kind::Comment => Ok(Step::Node(Node::Comment)),
            _ => self.unexpected(&item, "input"),
        }
    }

    fn action(&mut self) -> R<Step> {
        let item = self.next_non_space();
        let node = match item.kind {
            Kind::Block => self.block()?,
            Kind::Break | Kind::Continue => {
                let name = &item.val;
                let next = self.next_non_space();
                if next.kind != Kind::RightDelim {
                    return self.unexpected(&next, &format!("{{{{{name}}}}}"));
                }
                if self.range_depth == 0 {
                    return self.errorf(format!("{{{{{name}}}}} outside {{{{range}}}}"));
                }
                if item.kind == Kind::Break {
                    Node::Break(item.pos)
                } else {
                    Node::Continue(item.pos)
                }
            }
            Kind::Else => {
                // `else if`/`else with` leave the keyword pending for parse_control.
                let peek = self.peek_non_space();
                if peek.kind != Kind::If && peek.kind != Kind::With {
                    self.expect(Kind::RightDelim, "else")?;
                }
                return Ok(Step::Else);
            }
            Kind::End => {
                self.expect(Kind::RightDelim, "end")?;
                return Ok(Step::End);
            }
            Kind::If => Node::If(self.control("if")?),
            Kind::Range => Node::Range(self.control("range")?),
            Kind::With => Node::With(self.control("with")?),
            Kind::Template => self.template()?,
            _ => {
                self.backup();
                let pos = self.peek().pos;
                let pipe = self.pipeline("command", Kind::RightDelim)?;
                Node::Action { pos, pipe }
            }
        };
        Ok(Step::Node(node))
    }

    fn control(&mut self, context: &str) -> R<Branch> {
        self.nested(|p| p.control_body(context))
    }

    fn control_body(&mut self, context: &str) -> R<Branch> {
        let nvars = self.vars.len();
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        let in_range = usize::from(context == "range");
        self.range_depth += in_range;
        let (list, next) = self.item_list()?;
        self.range_depth -= in_range;
        let else_list = match next {
            Step::Else if context == "if" && self.peek().kind == Kind::If => {
                self.next();
                Some(vec![Node::If(self.control("if")?)])
            }
            Step::Else if context == "with" && self.peek().kind == Kind::With => {
                self.next();
                Some(vec![Node::With(self.control("with")?)])
            }
            Step::Else => {
                let (list, next) = self.item_list()?;
                if !matches!(next, Step::End) {
                    return self.errorf("expected end; found {{else}}");
                }
                Some(list)
            }
            _ => None,
        };
        self.vars.truncate(nvars);
        Ok(Branch {
            pipe,
            list,
            else_list,
        })
    }

    fn template_name(&mut self, item: &Item, context: &str) -> R<String> {
        match item.kind {
            Kind::String | Kind::RawString => self.unquote(&item.val),
            _ => self.unexpected(item, context),
        }
    }

    fn template(&mut self) -> R<Node> {
        let context = "template clause";
        let item = self.next_non_space();
        let name = self.template_name(&item, context)?;
        let pipe = if self.next_non_space().kind != Kind::RightDelim {
            self.backup();
            Some(self.pipeline(context, Kind::RightDelim)?)
        } else {
            None
        };
        Ok(Node::Template {
            pos: item.pos,
            name,
            pipe,
        })
    }

    fn block(&mut self) -> R<Node> {
        let context = "block clause";
        let item = self.next_non_space();
        let name = self.template_name(&item, context)?;
        let pipe = self.pipeline(context, Kind::RightDelim)?;
        self.sub_tree(name.clone(), context)?;
        Ok(Node::Template {
            pos: item.pos,
            name,
            pipe: Some(pipe),
        })
    }

    fn pipeline(&mut self, context: &str, end: Kind) -> R<Pipe> {
        let pos = self.peek_non_space().pos;
        let mut pipe = Pipe {
            pos,
            is_assign: false,
            decl: Vec::new(),
            cmds: Vec::new(),
        };
        loop {
            let v = self.peek_non_space();
            if v.kind != Kind::Variable {
                break;
            }
            let var_at = self.i;
            self.next();
            let next = self.peek_non_space();
            if next.kind == Kind::Assign || next.kind == Kind::Declare {
                pipe.is_assign = next.kind == Kind::Assign;
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
            } else if next.kind == Kind::Char && next.val == "," {
                self.next_non_space();
                pipe.decl.push(v.val.clone());
                self.vars.push(v.val);
                if context == "range" && pipe.decl.len() < 2 {
                    match self.peek_non_space().kind {
                        Kind::Variable | Kind::RightDelim | Kind::RightParen => continue,
                        _ => return self.errorf("range can only initialize variables"),
                    }
                }
                return self.errorf(format!("too many declarations in {context}"));
            } else {
                self.i = var_at;
            }
            break;
        }
        loop {
            let item = self.next_non_space();
            if item.kind == end {
                self.check_pipeline(&pipe, context)?;
                return Ok(pipe);
            }
            use Kind::*;
            match item.kind {
                Bool | CharConstant | Complex | Dot | Field | Identifier | Number | Nil
                | RawString | String | Variable | LeftParen => {
                    self.backup();
                    let cmd = self.command()?;
                    pipe.cmds.push(cmd);
                }
                _ => return self.unexpected(&item, context),
            }
        }
    }

    fn check_pipeline(&self, pipe: &Pipe, context: &str) -> R<()> {
        if pipe.cmds.is_empty() {
            return self.errorf(format!("missing value for {context}"));
        }
        for (i, c) in pipe.cmds.iter().enumerate().skip(1) {
            if matches!(
                c.args[0],
                Arg::Bool(..) | Arg::Dot(_) | Arg::Nil(_) | Arg::Number(..) | Arg::String { .. }
            ) {
                return self.errorf(format!(
                    "non executable command in pipeline stage {}",
                    i + 1
                ));
            }
        }
        Ok(())
    }

    fn command(&mut self) -> R<Command> {
        let pos = self.peek_non_space().pos;
        let mut args = Vec::new();
        loop {
            self.peek_non_space();
            if let Some(arg) = self.operand()? {
                args.push(arg);
            }
            let item = self.next();
            match item.kind {
                Kind::Space => continue,
                Kind::RightDelim | Kind::RightParen => self.backup(),
                Kind::Pipe => {}
                _ => return self.unexpected(&item, "operand"),
            }
            break;
        }
        if args.is_empty() {
            return self.errorf("empty command");
        }
        Ok(Command { pos, args })
    }

    fn operand(&mut self) -> R<Option<Arg>> {
        let Some(node) = self.term()? else {
            return Ok(None);
        };
        if self.peek().kind != Kind::Field {
            return Ok(Some(node));
        }
        // Go positions the merged node at the first chained field.
        let pos = self.peek().pos;
        let mut fields = Vec::new();
        while self.peek().kind == Kind::Field {
            fields.push(self.next().val[1..].to_string());
        }
        Ok(Some(match node {
            Arg::Field { mut ident, .. } => {
                ident.extend(fields);
                Arg::Field { pos, ident }
            }
            Arg::Variable { mut ident, .. } => {
                ident.extend(fields);
                Arg::Variable { pos, ident }
            }
            Arg::Bool(..) | Arg::String { .. } | Arg::Number(..) | Arg::Nil(_) | Arg::Dot(_) => {
                return self.errorf(format!(
                    "unexpected . after term {}",
                    go_quote(&node.to_string())
                ));
            }
            node => Arg::Chain {
                pos,
                node: Box::new(node),
                fields,
            },
        }))
    }

    fn term(&mut self) -> R<Option<Arg>> {
        let item = self.next_non_space();
        let pos = item.pos;
        Ok(Some(match item.kind {
            Kind::Identifier => {
                if !(self.has_func)(&item.val) {
                    return self.errorf(format!("function {} not defined", go_quote(&item.val)));
                }
                Arg::Identifier(pos, item.val)
            }
            Kind::Dot => Arg::Dot(pos),
            Kind::Nil => Arg::Nil(pos),
            Kind::Variable => {
                if !self.vars.contains(&item.val) {
                    return self.errorf(format!("undefined variable {}", go_quote(&item.val)));
                }
                Arg::Variable {
                    pos,
                    ident: vec![item.val],
                }
            }
            Kind::Field => Arg::Field {
                pos,
                ident: vec![item.val[1..].to_string()],
            },
            Kind::Bool => Arg::Bool(pos, item.val == "true"),
            Kind::CharConstant | Kind::Complex | Kind::Number => {
                Arg::Number(pos, self.number(&item)?)
            }
            Kind::LeftParen => {
                Arg::Pipe(Box::new(self.nested(|p| {
                    p.pipeline("parenthesized pipeline", Kind::RightParen)
                })?))
            }
            Kind::String | Kind::RawString => {
                let text = self.unquote(&item.val)?;
                Arg::String {
                    pos,
                    quoted: item.val,
                    text,
                }
            }
            _ => {
                self.backup();
                return Ok(None);
            }
        }))
    }

    fn number(&self, item: &Item) -> R<Number> {
        let text = item.val.clone();
        if item.kind == Kind::CharConstant {
            let c = unquote_char(&text)
                .ok_or("invalid syntax")
                .or_else(|e| self.errorf(e))?;
            let i = i64::from(u32::from(c));
            return Ok(Number {
                text,
                int: Some(i),
                float: Some(i as f64),
            });
        }
        if item.kind == Kind::Complex || text.ends_with('i') {
            return self.errorf(format!(
                "complex constants are not supported: {}",
                go_quote(&text)
            ));
        }
        if let Some(i) = parse_int(&text) {
            return Ok(Number {
                text,
                int: Some(i),
                float: Some(i as f64),
            });
        }
        match text.replace('_', "").parse::<f64>() {
            Ok(_) if !text.contains(['.', 'e', 'E', 'p', 'P']) => {
                self.errorf(format!("integer overflow: {}", go_quote(&text)))
            }
            Ok(f) => Ok(Number {
                int: exact_int(f),
                float: Some(f),
                text,
            }),
            Err(_) => self.errorf(format!("illegal number syntax: {}", go_quote(&text))),
        }
    }

    fn unquote(&self, quoted: &str) -> R<String> {
        unquote(quoted)
            .ok_or("invalid syntax")
            .or_else(|e| self.errorf(e))
    }
}

fn is_empty_tree(list: &[Node]) -> bool {
    list.iter().all(|n| match n {
        Node::Text(t) => t.trim().is_empty(),
        Node::Comment => true,
        _ => false,
    })
}

/// strconv.ParseInt(text, 0, 64): optional sign, 0x/0o/0b/0 prefixes, underscores.
fn parse_int(text: &str) -> Option<i64> {
    let (neg, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    let digits = digits.replace('_', "");
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return None;
    }
    let v = i128::from_str_radix(&digits, radix).ok()?;
    i64::try_from(if neg { -v } else { v }).ok()
}

/// strconv.Unquote for "…", `…` and '…' literals.
pub(crate) fn unquote(s: &str) -> Option<String> {
    let q = *s.as_bytes().first()?;
    if s.len() < 2 || !matches!(q, b'`' | b'"' | b'\'') || !s.ends_with(q as char) {
        return None;
    }
    let body = &s[1..s.len() - 1];
    match q {
        b'`' => (!body.contains('`')).then(|| body.replace('\r', "")),
        b'"' => {
            let mut out = Vec::new();
            let mut rest = body;
            while !rest.is_empty() {
                let (bytes, tail) = unquote_one(rest, '"')?;
                out.extend(bytes);
                rest = tail;
            }
            Some(String::from_utf8_lossy(&out).into_owned())
        }
        b'\'' => unquote_char(s).map(String::from),
        _ => None,
    }
}

fn unquote_char(s: &str) -> Option<char> {
    let body = s.strip_prefix('\'')?.strip_suffix('\'')?;
    let (bytes, tail) = unquote_one(body, '\'')?;
    if !tail.is_empty() {
        return None;
    }
    String::from_utf8(bytes).ok()?.chars().next()
}

/// One (possibly escaped) character; `\x` and octal escapes yield raw bytes, as in Go.
fn unquote_one(s: &str, quote: char) -> Option<(Vec<u8>, &str)> {
    let mut chars = s.chars();
    let c = chars.next()?;
    if c == quote && quote == '\'' {
        return None;
    }
    if c != '\\' {
        return Some((c.to_string().into_bytes(), chars.as_str()));
    }
    let e = chars.next()?;
    let rest = chars.as_str();
    let simple = match e {
        'a' => Some('\u{7}'),
        'b' => Some('\u{8}'),
        'f' => Some('\u{c}'),
        'n' => Some('\n'),
        'r' => Some('\r'),
        't' => Some('\t'),
        'v' => Some('\u{b}'),
        '\\' => Some('\\'),
        '\'' | '"' if e == quote => Some(e),
        _ => None,
    };
    if let Some(c) = simple {
        return Some((c.to_string().into_bytes(), rest));
    }
    let hex = |n: usize| -> Option<(u32, &str)> {
        let digits = rest.get(..n)?;
        Some((u32::from_str_radix(digits, 16).ok()?, &rest[n..]))
    };
    match e {
        'x' => hex(2).and_then(|(v, r)| Some((vec![u8::try_from(v).ok()?], r))),
        'u' => hex(4).and_then(|(v, r)| Some((char::from_u32(v)?.to_string().into_bytes(), r))),
        'U' => hex(8).and_then(|(v, r)| Some((char::from_u32(v)?.to_string().into_bytes(), r))),
        '0'..='7' => {
            let digits = s.get(1..4)?;
            let v = u8::try_from(u32::from_str_radix(digits, 8).ok()?).ok()?;
            Some((vec![v], &s[4..]))
        }
        _ => None,
    }
}

/// A float constant that is a whole number within i64's range, as that integer.
#[allow(
    clippy::cast_possible_truncation,
    reason = "checked: no fraction, and within ±9.2e18"
)]
fn exact_int(f: f64) -> Option<i64> {
    (f.fract() == 0.0 && f.abs() < 9.2e18).then_some(f as i64)
}
