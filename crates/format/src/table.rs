//! List output: docker's `table` directive and its tabwriter
//! (cli/command/formatter: tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)).

use serde_json::Value;

use crate::template::{go_json, Template};
use crate::FormatError;

const MIN_WIDTH: usize = 10;
const PADDING: usize = 3;

/// docker's `--format` for ls/ps commands. One line per row, each ending in "\n".
///
/// * `json`: each row as compact JSON, keys sorted (docker marshals row contexts as maps).
/// * `table …`: a header row first, then columns split on tab aligned by [`tabwrite`]'s rules.
///   Header cells come from running the row template against `headers` (field → title,
///   e.g. `("ID", "NETWORK ID")`); a field without an entry is titled with its name upper-cased,
///   and `.Label "a.b-c"` is titled `b c`, as docker does.
/// * anything else: each row rendered as is, no header, no alignment.
///
/// As in docker, literal `\t` and `\n` in the template become tab and newline.
pub fn render_list(
    template: &str,
    rows: &[Value],
    headers: &[(&str, &str)],
) -> Result<String, FormatError> {
    // docker marshals a row context through a Go map, so `json .` has sorted keys.
    let rows: Vec<Value> = rows.iter().map(sort_keys).collect();
    if template == "json" {
        return Ok(rows.iter().map(|r| go_json(r) + "\n").collect());
    }
    let table = template.starts_with("table");
    let body = if table {
        &template["table".len()..]
    } else {
        template
    };
    let body = body
        .trim_matches(' ')
        .replace("\\t", "\t")
        .replace("\\n", "\n");
    let tmpl = Template::parse(&body)?;
    let mut out = String::new();
    for row in &rows {
        out.push_str(&tmpl.execute(row)?);
        out.push('\n');
    }
    if !table {
        return Ok(out);
    }
    let mut text = tmpl.execute_header(headers);
    text.push('\n');
    text.push_str(&out);
    Ok(tabwrite_text(&text))
}

fn sort_keys(row: &Value) -> Value {
    match row {
        Value::Object(m) => {
            let mut entries: Vec<(&String, &Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            )
        }
        other => other.clone(),
    }
}

/// Aligns rows of cells as docker's tabwriter does (minwidth 10, padding 3, spaces):
/// a column is as wide as its widest cell plus 3, at least 10; a row's last cell is not
/// padded. Every row ends with "\n".
pub fn tabwrite(rows: &[Vec<String>]) -> String {
    let mut text = String::new();
    for row in rows {
        text.push_str(&row.join("\t"));
        text.push('\n');
    }
    tabwrite_text(&text)
}

#[derive(Default, Clone)]
struct Cell {
    text: String,
    width: usize,
}

/// A port of Go's text/tabwriter (elastic tabstops) for flags 0 and padchar ' '.
/// Cells are tab-terminated: a line's last cell is not part of a column and is never padded.
/// A column's width is fixed per block of consecutive lines that have that column, and a
/// line without tabs ends all blocks.
struct Writer {
    lines: Vec<Vec<Cell>>,
    cell: Cell,
    widths: Vec<usize>,
    out: String,
}

pub(crate) fn tabwrite_text(text: &str) -> String {
    let mut w = Writer {
        lines: vec![Vec::new()],
        cell: Cell::default(),
        widths: Vec::new(),
        out: String::new(),
    };
    for c in text.chars() {
        match c {
            '\t' | '\u{b}' | '\n' | '\u{c}' => {
                let cell = std::mem::take(&mut w.cell);
                let line = w.lines.last_mut().expect("always one line");
                line.push(cell);
                let ncells = line.len();
                if c == '\n' || c == '\u{c}' {
                    w.lines.push(Vec::new());
                    if c == '\u{c}' || ncells == 1 {
                        w.flush();
                    }
                }
            }
            c => {
                w.cell.width += char_width(c);
                w.cell.text.push(c);
            }
        }
    }
    w.flush();
    w.out
}

impl Writer {
    fn flush(&mut self) {
        if !self.cell.text.is_empty() {
            let cell = std::mem::take(&mut self.cell);
            self.lines.last_mut().expect("always one line").push(cell);
        }
        self.format(0, self.lines.len());
        self.lines = vec![Vec::new()];
    }

    fn format(&mut self, mut line0: usize, line1: usize) {
        let column = self.widths.len();
        let mut this = line0;
        while this < line1 {
            if self.lines[this].len() <= column + 1 {
                this += 1;
                continue;
            }
            self.write_lines(line0, this);
            line0 = this;
            let mut width = MIN_WIDTH;
            while this < line1 && self.lines[this].len() > column + 1 {
                width = width.max(self.lines[this][column].width + PADDING);
                this += 1;
            }
            self.widths.push(width);
            self.format(line0, this);
            self.widths.pop();
            line0 = this;
        }
        self.write_lines(line0, line1);
    }

    fn write_lines(&mut self, line0: usize, line1: usize) {
        for i in line0..line1 {
            for (j, cell) in self.lines[i].iter().enumerate() {
                self.out.push_str(&cell.text);
                if let Some(&w) = self.widths.get(j) {
                    self.out.push_str(&" ".repeat(w - cell.width));
                }
            }
            if i + 1 == self.lines.len() {
                self.out.push_str(&self.cell.text);
            } else {
                self.out.push('\n');
            }
        }
    }
}

/// Terminal column width, roughly as go-runewidth measures it: East Asian wide
/// characters take two columns, combining marks and controls none.
fn char_width(c: char) -> usize {
    let u = c as u32;
    if c.is_control() || (0x300..=0x36f).contains(&u) || (0x200b..=0x200f).contains(&u) {
        return 0;
    }
    let wide = [
        (0x1100, 0x115f),
        (0x2e80, 0x303e),
        (0x3041, 0x33ff),
        (0x3400, 0x4dbf),
        (0x4e00, 0x9fff),
        (0xa000, 0xa4cf),
        (0xac00, 0xd7a3),
        (0xf900, 0xfaff),
        (0xfe30, 0xfe4f),
        (0xff00, 0xff60),
        (0xffe0, 0xffe6),
        (0x1f300, 0x1f64f),
        (0x1f900, 0x1f9ff),
        (0x20000, 0x3fffd),
    ];
    if wide.iter().any(|&(lo, hi)| (lo..=hi).contains(&u)) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests;
