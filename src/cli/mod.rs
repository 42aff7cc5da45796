//! Command-line definitions and the glue from arguments to library calls.
//!
//! `main` parses, runs one command, prints any error once with its context and chooses the
//! exit code: 0 done, 1 the input was unusable, 2 the command line was wrong.

mod check;
mod explain;
mod export;
mod generate;
mod import;
mod live;
mod replay;
mod table;

use clap::{Parser, Subcommand};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// dnatsim: see exactly what a cloud NAT gateway's DNAT table does to your traffic.
#[derive(Debug, Parser)]
#[command(name = "dnatsim", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    Replay(replay::Args),
    Check(check::Args),
    Explain(explain::Args),
    Gen(generate::Args),
    Import(import::Args),
    Export(export::Args),
    Live(live::Args),
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            // Printing help or a usage error can only fail on a closed pipe; nothing to add then.
            let _ = e.print();
            return code;
        }
    };
    let result = match cli.command {
        Command::Replay(a) => replay::run(a),
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Gen(a) => generate::run(a),
        Command::Import(a) => import::run(a),
        Command::Export(a) => export::run(a),
        Command::Live(a) => live::run(a),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return 0;
            }
            let _ = writeln!(io::stderr(), "dnatsim: error: {}", describe(&e));
            1
        }
    }
}

/// The error and its causes joined by ": ", each cause once: our typed errors name their
/// operating-system reason in their own message, and anyhow's `{:#}` would repeat it.
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// A reader that went away (`dnatsim ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Reads and validates a rules file, printing its warnings to stderr.
fn load_rules(path: &Path) -> anyhow::Result<dnatsim::rules::Rules> {
    let parsed = dnatsim::rules::parse_file(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut err = io::stderr().lock();
    for w in &parsed.warnings {
        let _ = writeln!(err, "{w}");
    }
    Ok(parsed.rules)
}

/// The `--rules` argument shared by the commands.
#[derive(Debug, clap::Args)]
struct RulesArg {
    /// The rules file (TOML): gateway, bandwidth package and forward entries.
    #[arg(long, short = 'r', value_name = "RULES")]
    rules: PathBuf,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_names_each_cause_once() {
        let write = dnatsim::capture::CaptureError::Write {
            path: "out.pcap".into(),
            source: io::Error::from(io::ErrorKind::StorageFull),
        };
        let reason = io::Error::from(io::ErrorKind::StorageFull).to_string();
        let e = anyhow::Error::new(write).context("replaying in.pcap");
        assert_eq!(
            describe(&e),
            format!("replaying in.pcap: cannot write out.pcap: {reason}")
        );
        let plain = anyhow::anyhow!("bad").context("outer");
        assert_eq!(describe(&plain), "outer: bad");
    }
}
