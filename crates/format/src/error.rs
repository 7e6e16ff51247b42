use thiserror::Error;

/// Template failures, worded as docker prints them. docker prefixes both parse and execution
/// errors with "template parsing error: "; the inner text is Go's own message, e.g.
/// `template: :1: function "foo" not defined` or
/// `template: :1:2: executing "" at <.Foo>: can't evaluate field Foo in type string`.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FormatError {
    /// The template does not parse.
    #[error("template parsing error: {0}")]
    Parse(String),
    /// The template parsed but failed while running against a value.
    #[error("template parsing error: {0}")]
    Exec(String),
}
