//! Running `nft`: one `nft -j -f -` invocation is one atomic kernel transaction.

use std::io::Write;
use std::process::{Command, Stdio};

use nftables::schema::Nftables;

use crate::{FirewallError, TABLE};

/// How to run nft: `nft` from PATH by default; tests point it into a netns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nft {
    pub program: String,
    pub args: Vec<String>,
}

impl Default for Nft {
    fn default() -> Self {
        Nft {
            program: "nft".to_string(),
            args: Vec::new(),
        }
    }
}

impl Nft {
    /// `ip netns exec NAME nft`: nft state is per network namespace.
    pub fn in_netns(name: &str) -> Nft {
        Nft {
            program: "ip".to_string(),
            args: ["netns", "exec", name, "nft"].map(String::from).to_vec(),
        }
    }

    /// Applies `batch` atomically: either all of it takes effect or none.
    pub fn apply(&self, batch: &Nftables) -> Result<(), FirewallError> {
        let payload = serde_json::to_vec(batch).map_err(FirewallError::Encode)?;
        self.run(&["-j", "-f", "-"], Some(payload))
            .map_err(|failure| failure.into_error(|stderr| FirewallError::Rejected { stderr }))?;
        Ok(())
    }

    /// Applies nft text (`nft -f -`): one transaction, as a JSON batch is.
    pub fn apply_text(&self, text: &str) -> Result<(), FirewallError> {
        self.run(&["-f", "-"], Some(text.as_bytes().to_vec()))
            .map(|_| ())
            .map_err(|f| f.into_error(|stderr| FirewallError::Rejected { stderr }))
    }

    /// Creates the admin's policy table if it does not exist; an existing one (with the
    /// admin's elements) is left exactly as it is.
    pub fn ensure_policy_table(&self) -> Result<(), FirewallError> {
        match self.run(&["list", "table", "inet", crate::POLICY_TABLE], None) {
            Ok(_) => Ok(()),
            Err(Failure::Exit(stderr)) if stderr.contains("Error: No such file or directory") => {
                self.run(&["-f", "-"], Some(crate::policy_table_text().into_bytes()))
                    .map(|_| ())
                    .map_err(|f| f.into_error(|stderr| FirewallError::Rejected { stderr }))
            }
            Err(f) => Err(f.into_error(|stderr| FirewallError::ListFailed { stderr })),
        }
    }

    /// The current `inet berth` table, or `None` if it does not exist.
    pub fn list_table(&self) -> Result<Option<Nftables<'static>>, FirewallError> {
        match self.run(&["-j", "list", "table", "inet", TABLE], None) {
            Ok(stdout) => serde_json::from_str(&stdout)
                .map(Some)
                .map_err(FirewallError::Decode),
            // A missing table is ENOENT; "Error: " tells nft's message from
            // `ip netns exec` failing to find nft itself.
            Err(Failure::Exit(stderr)) if stderr.contains("Error: No such file or directory") => {
                Ok(None)
            }
            Err(failure) => Err(failure.into_error(|stderr| FirewallError::ListFailed { stderr })),
        }
    }

    fn run(&self, args: &[&str], stdin: Option<Vec<u8>>) -> Result<String, Failure> {
        let mut child = Command::new(&self.program)
            .args(&self.args)
            .args(args)
            // Error texts are matched below; keep them untranslated.
            .env("LC_ALL", "C")
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| Failure::Spawn(self.program.clone(), source))?;
        // Feed stdin from a thread so a chatty nft can never deadlock against us.
        let writer = match (stdin, child.stdin.take()) {
            (Some(payload), Some(mut pipe)) => {
                Some(std::thread::spawn(move || pipe.write_all(&payload)))
            }
            _ => None,
        };
        let output = child
            .wait_with_output()
            .map_err(|source| Failure::Spawn(self.program.clone(), source))?;
        let written = writer.map(|w| w.join().unwrap_or(Ok(())));
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_string();
        if !output.status.success() {
            return Err(Failure::Exit(stderr));
        }
        if let Some(Err(source)) = written {
            return Err(Failure::Spawn(self.program.clone(), source));
        }
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }
}

enum Failure {
    Spawn(String, std::io::Error),
    Exit(String),
}

impl Failure {
    fn into_error(self, otherwise: impl FnOnce(String) -> FirewallError) -> FirewallError {
        match self {
            Failure::Spawn(program, source) if source.kind() == std::io::ErrorKind::NotFound => {
                if program.ends_with("nft") {
                    FirewallError::NotInstalled
                } else {
                    FirewallError::Spawn { program, source }
                }
            }
            Failure::Spawn(program, source) => FirewallError::Spawn { program, source },
            // `ip netns exec` reports a missing nft itself.
            Failure::Exit(stderr) if stderr.contains("exec of \"nft\" failed") => {
                FirewallError::NotInstalled
            }
            Failure::Exit(stderr) if stderr.contains("Operation not permitted") => {
                FirewallError::NotPermitted { stderr }
            }
            Failure::Exit(stderr) => otherwise(stderr),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classify(stderr: &str) -> FirewallError {
        Failure::Exit(stderr.to_string()).into_error(|stderr| FirewallError::Rejected { stderr })
    }

    #[test]
    fn failures_are_classified_for_the_operator() {
        let denied =
            classify("netlink: Error: cache initialization failed: Operation not permitted");
        assert!(
            matches!(denied, FirewallError::NotPermitted { .. }),
            "{denied}"
        );
        assert!(denied.to_string().contains("run berth as root"));

        let missing = classify("exec of \"nft\" failed: No such file or directory");
        assert!(matches!(missing, FirewallError::NotInstalled), "{missing}");

        let rejected = classify("Error: interval overlaps with an existing one");
        assert_eq!(
            rejected.to_string(),
            "nft rejected berth's rules: Error: interval overlaps with an existing one"
        );

        let not_found = std::io::Error::from(std::io::ErrorKind::NotFound);
        let ip = Failure::Spawn("ip".into(), not_found).into_error(|_| unreachable!());
        assert!(matches!(ip, FirewallError::Spawn { .. }), "{ip}");
    }
}
