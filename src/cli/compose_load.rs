//! Loading a Compose project for `berth compose` and `berth stack deploy`: the files (the
//! default names and override file as docker compose finds them), `.env` and the shell's
//! variables for interpolation, and the services' working directories made absolute (berth
//! runs host programs, which start in the project directory).

use std::path::{Path, PathBuf};

use berth_compose::{Context, Project, Source};

use crate::api::client::ClientError;

fn usage(msg: impl Into<String>) -> ClientError {
    ClientError::Usage(msg.into())
}

const DEFAULT_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yml",
    "docker-compose.yaml",
];

/// `load` for `berth stack deploy` too (`stack`: the warnings about keys only a stack
/// uses are not printed).
pub(super) fn load_project(
    file: &[PathBuf],
    project: Option<String>,
    env_file: Option<PathBuf>,
    stack: bool,
) -> Result<Project, ClientError> {
    let files: Vec<PathBuf> = if file.is_empty() {
        let cwd = std::env::current_dir()?;
        let main = DEFAULT_FILES
            .iter()
            .map(|f| cwd.join(f))
            .find(|p| p.exists())
            .ok_or_else(|| {
                usage(format!(
                    "no configuration file provided: not found ({} in {})",
                    DEFAULT_FILES.join(", "),
                    cwd.display()
                ))
            })?;
        let mut v = vec![main.clone()];
        let stem = main
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("compose");
        for ext in ["yaml", "yml"] {
            let o = cwd.join(format!("{stem}.override.{ext}"));
            if o.exists() {
                v.push(o);
                break;
            }
        }
        v
    } else {
        file.to_vec()
    };
    let dir = files[0]
        .parent()
        .map(Path::to_path_buf)
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = std::fs::canonicalize(&dir).unwrap_or(dir);
    let env_path = env_file.clone().unwrap_or_else(|| dir.join(".env"));
    let shell = |k: &str| std::env::var(k).ok();
    let dotenv = match std::fs::read_to_string(&env_path) {
        Ok(t) => berth_compose::parse_env_file(&t, &shell)
            .map_err(|e| usage(format!("{}: {e}", env_path.display())))?,
        Err(_) if env_file.is_none() => vec![],
        Err(e) => return Err(usage(format!("{}: {e}", env_path.display()))),
    };
    // The shell's variables win over .env, as in docker compose.
    let lookup = |k: &str| {
        std::env::var(k).ok().or_else(|| {
            dotenv
                .iter()
                .rev()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
        })
    };
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| e.to_string());
    let mut sources = Vec::new();
    for f in &files {
        let text =
            std::fs::read_to_string(f).map_err(|e| usage(format!("{}: {e}", f.display())))?;
        sources.push(Source {
            path: f.display().to_string(),
            text,
        });
    }
    let ctx = Context {
        lookup: &lookup,
        read_file: &read,
        project_name: project,
        default_name: dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("default")
            .to_string(),
    };
    let mut loaded = berth_compose::load(&sources, &ctx).map_err(|e| usage(e.to_string()))?;
    for w in &loaded.warnings {
        if !(stack && w.contains(berth_compose::deploy::STACK_ONLY)) {
            eprintln!("WARN {w}");
        }
    }
    // berth runs host programs: they start in the project directory (relative paths in
    // `command` work as they do for the user), and a relative working_dir is taken from it.
    for s in loaded.project.services.values_mut() {
        let wd = if s.working_dir.is_empty() {
            dir.clone()
        } else {
            dir.join(&s.working_dir)
        };
        s.working_dir = wd.display().to_string();
    }
    Ok(loaded.project)
}
