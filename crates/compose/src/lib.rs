//! The Compose Specification subset that berth runs: loading files (several, merged),
//! `.env` and `${VAR:-default}` interpolation, validation with clear errors (line and column
//! for YAML syntax, the key's path for everything else), a warning for every key berth does
//! not carry out, and the plan `up` follows. No I/O: the CLI feeds it files and variables and
//! turns the plan into API calls.

mod interpolate;
mod load;
pub mod model;
pub mod plan;
#[cfg(test)]
mod tests;

pub use interpolate::{interpolate, parse_env_file};
pub use load::{load, normalize, Context, Loaded, Source};
pub use model::Project;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{file}: line {line}, column {column}: {message}")]
    Syntax {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{0}")]
    Interpolation(String),
    #[error(".env: {0}")]
    EnvFile(String),
}
