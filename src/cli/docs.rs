//! `berth completion SHELL` and `berth man DIR`: shell completions (clap_complete) and man
//! pages (clap_mangen) generated from the same command definitions the parser uses, so they
//! never drift from the flags. Local: no daemon is asked.

use std::path::Path;

use clap::CommandFactory;

use super::Cli;

/// The completion script for `shell` on stdout.
pub(super) fn completion(shell: clap_complete::Shell) -> i32 {
    use std::io::Write;
    let mut cmd = Cli::command();
    // Into memory first: the generator panics on a write error (a closed pipe).
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "berth", &mut out);
    match std::io::stdout().write_all(&out) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            eprintln!("berth completion: {e}");
            1
        }
        _ => 0,
    }
}

/// `berth.1` and one page per subcommand (`berth-network-create.1`, …) under `dir`.
pub(super) fn man(dir: &Path) -> i32 {
    let run = || -> std::io::Result<usize> {
        std::fs::create_dir_all(dir)?;
        let mut n = 0;
        // (file name, the command line that runs it, the command)
        let mut stack = vec![(
            String::from("berth"),
            String::from("berth"),
            Cli::command().name("berth"),
        )];
        while let Some((name, line, cmd)) = stack.pop() {
            if cmd.is_hide_set() {
                continue;
            }
            for sub in cmd.get_subcommands() {
                let file = format!("{name}-{}", sub.get_name());
                let line = format!("{line} {}", sub.get_name());
                stack.push((
                    file.clone(),
                    line.clone(),
                    sub.clone().name(file).bin_name(line),
                ));
            }
            let mut out = Vec::new();
            clap_mangen::Man::new(cmd).render(&mut out)?;
            std::fs::write(dir.join(format!("{name}.1")), out)?;
            n += 1;
        }
        Ok(n)
    };
    match run() {
        Ok(n) => {
            println!("{n} man pages in {}", dir.display());
            0
        }
        Err(e) => {
            eprintln!("berth man: {}: {e}", dir.display());
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    /// Every command's `--help` shows how it is used (issue 15: "an example in every
    /// command's help").
    #[test]
    fn every_command_has_an_example() {
        let mut missing = Vec::new();
        let mut stack = vec![(String::from("berth"), super::Cli::command())];
        while let Some((name, cmd)) = stack.pop() {
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let full = format!("{name} {}", sub.get_name());
                let long = sub
                    .get_long_about()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                if !long.contains("Example: ") {
                    missing.push(full.clone());
                }
                stack.push((full, sub.clone()));
            }
        }
        assert!(missing.is_empty(), "no example in --help: {missing:?}");
    }
}
