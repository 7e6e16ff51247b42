//! docker-compatible output for berth's CLI.
//!
//! * [`render`]: Go text/template (`--format`) over API JSON, as `docker inspect -f`.
//! * [`render_list`]: `--format` for ls/ps, including `table …` and `json`.
//! * [`tabwrite`]: docker's column alignment.
//! * [`human_duration`], [`container_status`]: docker's relative times.

mod duration;
mod error;
mod table;
mod template;

pub use duration::{container_status, human_duration, parse_duration};
pub use error::FormatError;
pub use table::{render_list, tabwrite};

/// Renders a Go template (docker's `--format`) against a JSON value.
///
/// Go's `text/template` semantics with docker's functions (`json`, `join`, `split`, `lower`,
/// `upper`, `title`, `pad`, `truncate`) and Go's builtins (`index`, `len`, `slice`, `eq`…,
/// `and`/`or`/`not`, `print`/`printf`/`println`, `html`, `js`, `urlquery`).
/// A missing key renders as `<no value>`, JSON null as `<nil>`, maps as `map[k:v]` with
/// sorted keys, and `range` over a map visits keys in sorted order.
/// The result has no trailing newline; `docker inspect -f` adds one per object.
pub fn render(template: &str, value: &serde_json::Value) -> Result<String, FormatError> {
    template::Template::parse(template)?.execute(value)
}
