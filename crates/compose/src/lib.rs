//! The Compose Specification subset that berth runs: loading files (several, merged),
//! `.env` and `${VAR:-default}` interpolation, validation with clear errors (line and column
//! for YAML syntax, the key's path for everything else), a warning for every key berth does
//! not carry out, and the plan `up` follows. No I/O: the CLI feeds it files and variables and
//! turns the plan into API calls.

pub mod deploy;
mod interpolate;
mod load;
pub mod model;
pub mod plan;
pub mod stack;
#[cfg(test)]
mod tests;

pub use interpolate::{interpolate, parse_env_file};
pub use load::{load, normalize, Context, Loaded, Source};
pub use model::Project;

/// Compose durations (`1m30s`, `10s`, `500ms`, `2h`, `1.5s`; a bare number is seconds) in
/// nanoseconds.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "float to integer casts saturate (NaN and negatives to 0), which is what a duration wants"
)]
pub fn duration_ns(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Ok((secs * 1e9) as u64);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("{s:?}: a number needs a unit (h, m, s, ms, us, ns)"))?;
        let n: f64 = rest[..n_end]
            .parse()
            .map_err(|_| format!("{s:?} is not a duration like 1m30s"))?;
        rest = &rest[n_end..];
        let u_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..u_end] {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" => 1e3,
            "ns" => 1.0,
            u => return Err(format!("{s:?}: unknown unit {u:?} (h, m, s, ms, us, ns)")),
        };
        total += n * mult;
        rest = &rest[u_end..];
    }
    Ok(total as u64)
}

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
