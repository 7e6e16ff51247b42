//! Container logs on disk: DIR/log, rotated to DIR/log.1 … DIR/log.(max-file − 1) when it
//! reaches max-size, as docker's json-file driver does with `--log-opt max-size/max-file`.
//! The shim writes them (`Rotating`); the API reads them oldest first and follows the
//! current file across rotations (`Follower`).

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const LOG_FILE: &str = "log";

/// Size cap of one log file and how many files are kept. `max_size == 0`: no cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOptions {
    pub max_size: u64,
    pub max_file: u32,
}

/// The daemon's default: kubelet's per-file size, three files. docker's json-file has no
/// default cap, which is how a `yes` in a container once filled this machine's disk.
impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            max_size: 10 * 1024 * 1024,
            max_file: 3,
        }
    }
}

impl LogOptions {
    /// Applies `KEY=VALUE` options (`max-size=10m`, `max-file=3`) over `self`.
    pub fn with(mut self, opts: &[(String, String)]) -> Result<LogOptions, String> {
        for (k, v) in opts {
            match k.as_str() {
                "max-size" => {
                    self.max_size = if v == "-1" {
                        0
                    } else {
                        parse_size(v).ok_or_else(|| {
                            format!("invalid log option max-size={v:?}: use a size such as 10m, 512k or 1g (-1: no limit)")
                        })?
                    }
                }
                "max-file" => {
                    self.max_file = v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("invalid log option max-file={v:?}: use a whole number of files, at least 1")
                    })?
                }
                // json-file options that change the format, not the size: accepted, as docker.
                "compress" | "labels" | "env" | "env-regex" | "tag" | "mode" | "max-buffer-size" => {}
                _ => {
                    return Err(format!(
                        "unknown log opt '{k}' for the log driver: berth takes max-size and max-file"
                    ))
                }
            }
        }
        Ok(self)
    }

    /// `KEY=VALUE` words, as `--log-opt` takes them.
    pub fn parse_pairs(words: &[String]) -> Result<Vec<(String, String)>, String> {
        words
            .iter()
            .map(|w| {
                w.split_once('=')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .ok_or_else(|| {
                        format!("invalid log option {w:?}: use KEY=VALUE, such as max-size=10m")
                    })
            })
            .collect()
    }
}

/// docker's sizes (go-units RAMInBytes): a number with an optional b, k, m or g (binary).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "checked positive and finite; a float to integer cast saturates beyond u64"
)]
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        _ => (t, 1),
    };
    let n: f64 = num.trim().parse().ok()?;
    (n.is_finite() && n > 0.0).then_some((n * mult as f64) as u64)
}

fn rotated(dir: &Path, i: u32) -> PathBuf {
    if i == 0 {
        dir.join(LOG_FILE)
    } else {
        dir.join(format!("{LOG_FILE}.{i}"))
    }
}

/// The log's files, oldest first.
pub fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = (1..)
        .map(|i| rotated(dir, i))
        .take_while(|p| p.exists())
        .collect();
    out.reverse();
    out.push(rotated(dir, 0));
    out
}

/// The writing end: appends, and rotates before a write that would pass the cap.
pub struct Rotating {
    dir: PathBuf,
    opts: LogOptions,
    file: Option<File>,
    size: u64,
}

impl Rotating {
    pub fn open(dir: &Path, opts: LogOptions) -> Rotating {
        let file = open_append(&rotated(dir, 0));
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Rotating {
            dir: dir.to_path_buf(),
            opts,
            file,
            size,
        }
    }

    pub fn write(&mut self, data: &[u8]) {
        if self.opts.max_size > 0
            && self.size > 0
            && self.size + data.len() as u64 > self.opts.max_size
        {
            self.rotate();
        }
        if let Some(f) = &mut self.file {
            // A full disk loses output, never the container.
            if f.write_all(data).is_ok() {
                self.size += data.len() as u64;
            }
        }
    }

    fn rotate(&mut self) {
        if self.opts.max_file <= 1 {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
            self.size = 0;
            return;
        }
        for i in (1..self.opts.max_file - 1).rev() {
            let _ = std::fs::rename(rotated(&self.dir, i), rotated(&self.dir, i + 1));
        }
        let _ = std::fs::rename(rotated(&self.dir, 0), rotated(&self.dir, 1));
        self.file = open_append(&rotated(&self.dir, 0));
        self.size = 0;
    }
}

fn open_append(p: &Path) -> Option<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(p)
        .ok()
}

/// Reads a log oldest first, then follows DIR/log as it grows, is rotated (renamed away and
/// made anew) or truncated (max-file 1).
pub struct Follower {
    dir: PathBuf,
    pending: Vec<PathBuf>,
    cur: Option<(File, u64)>,
}

impl Follower {
    pub fn new(dir: &Path) -> Follower {
        let mut pending = files(dir);
        pending.reverse();
        Follower {
            dir: dir.to_path_buf(),
            pending,
            cur: None,
        }
    }

    /// The next bytes, or 0 at the current end (call again later to follow).
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        loop {
            if self.cur.is_none() {
                let Some(p) = self.pending.pop() else {
                    return 0;
                };
                let Ok(f) = File::open(&p) else { continue };
                let ino = f.metadata().map_or(0, |m| m.ino());
                self.cur = Some((f, ino));
            }
            let (f, ino) = self.cur.as_mut().expect("just set");
            match f.read(buf) {
                Ok(n) if n > 0 => return n,
                _ => {}
            }
            if !self.pending.is_empty() {
                self.cur = None;
                continue;
            }
            // At the end of the current file: has it been rotated or truncated?
            let live = std::fs::metadata(rotated(&self.dir, 0)).ok();
            match live {
                Some(m) if m.ino() != *ino => {
                    // Renamed away: its last bytes were read above; the new file is next.
                    self.pending.push(rotated(&self.dir, 0));
                    self.cur = None;
                }
                Some(m) => {
                    let pos = f.stream_position().unwrap_or(0);
                    if m.len() < pos {
                        let _ = f.seek(SeekFrom::Start(0));
                        continue;
                    }
                    return 0;
                }
                None => return 0,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_docker_reads_them() {
        assert_eq!(parse_size("10m"), Some(10 << 20));
        assert_eq!(parse_size("512k"), Some(512 << 10));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("10MB"), Some(10 << 20));
        assert_eq!(parse_size("abc"), None);
        assert_eq!(parse_size("0"), None);
        assert_eq!(parse_size(""), None);
    }

    #[test]
    fn options_over_defaults() {
        let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
        let o = LogOptions::default()
            .with(&[kv("max-size", "1k"), kv("max-file", "2")])
            .unwrap();
        assert_eq!(
            o,
            LogOptions {
                max_size: 1024,
                max_file: 2
            }
        );
        assert_eq!(
            LogOptions::default()
                .with(&[kv("max-size", "-1")])
                .unwrap()
                .max_size,
            0
        );
        LogOptions::default()
            .with(&[kv("max-file", "0")])
            .unwrap_err();
        LogOptions::default()
            .with(&[kv("max-size", "x")])
            .unwrap_err();
        LogOptions::default().with(&[kv("bogus", "1")]).unwrap_err();
        LogOptions::parse_pairs(&["max-size".into()]).unwrap_err();
    }

    #[test]
    fn rotation_keeps_max_file_files_of_at_most_max_size() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Rotating::open(
            dir.path(),
            LogOptions {
                max_size: 100,
                max_file: 3,
            },
        );
        let mut f = Follower::new(dir.path());
        let mut seen = Vec::new();
        let mut buf = [0u8; 64];
        for i in 0..50u8 {
            w.write(&[b'a' + (i % 26); 10]);
            // A follower reading as it goes sees every byte, across rotations.
            loop {
                let n = f.read(&mut buf);
                if n == 0 {
                    break;
                }
                seen.extend_from_slice(&buf[..n]);
            }
        }
        assert_eq!(seen.len(), 500);
        let fs = files(dir.path());
        assert_eq!(fs.len(), 3, "{fs:?}");
        let total: u64 = fs.iter().map(|p| std::fs::metadata(p).unwrap().len()).sum();
        assert!(fs
            .iter()
            .all(|p| std::fs::metadata(p).unwrap().len() <= 100));
        assert!(total <= 300);
        // Read from the start, the files hold the newest output in order.
        let mut all = Vec::new();
        let mut r = Follower::new(dir.path());
        loop {
            let n = r.read(&mut buf);
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert!(seen.ends_with(&all), "rotated files out of order");
    }

    #[test]
    fn one_file_is_truncated_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Rotating::open(
            dir.path(),
            LogOptions {
                max_size: 100,
                max_file: 1,
            },
        );
        for _ in 0..30 {
            w.write(&[b'x'; 10]);
        }
        assert_eq!(files(dir.path()).len(), 1);
        assert!(std::fs::metadata(dir.path().join(LOG_FILE)).unwrap().len() <= 100);
    }
}
