//! Command-line definitions and the glue from arguments to library calls.
//!
//! `main` parses, runs one command, prints any error once with its context and chooses the
//! exit code: 0 done, 1 the input was unusable, 2 the command line was wrong, 128 + N after
//! signal N stopped a run (which still finished its outputs).

mod api;
mod check;
mod diff;
mod explain;
mod export;
mod generate;
mod import;
mod interrupt;
mod live;
mod paths;
mod replay;
mod table;

use clap::{CommandFactory, Parser, Subcommand};
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// dnatsim: see exactly what a cloud NAT gateway's DNAT table does to your traffic.
#[derive(Debug, Parser)]
#[command(name = "dnatsim", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// Colour in messages: auto (when standard error is a terminal and NO_COLOR is unset),
    /// always or never.
    #[arg(
        long,
        value_enum,
        default_value = "auto",
        global = true,
        value_name = "WHEN"
    )]
    color: ColorChoice,
    /// The command to run.
    #[command(subcommand)]
    command: Command,
}

/// When messages are coloured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ColorChoice {
    /// When standard error is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

#[derive(Debug, Subcommand)]
enum Command {
    Replay(replay::Args),
    Check(check::Args),
    Explain(explain::Args),
    Diff(diff::Args),
    Gen(generate::Args),
    Api(api::Args),
    Import(import::Args),
    Export(export::Args),
    Live(live::Args),
    Completions(CompletionsArgs),
    Man(ManArgs),
}

/// Print a shell completion script for bash, zsh or fish.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:\n  \
    dnatsim completions bash > /etc/bash_completion.d/dnatsim\n  \
    dnatsim completions zsh > \"${fpath[1]}/_dnatsim\"\n  \
    dnatsim completions fish > ~/.config/fish/completions/dnatsim.fish")]
struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    shell: Shell,
}

/// The shells `completions` writes for.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Shell {
    /// bash.
    Bash,
    /// zsh.
    Zsh,
    /// fish.
    Fish,
}

/// Print the manual page (roff) for dnatsim and its commands.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:\n  dnatsim man | man -l -\n  \
    dnatsim man > /usr/local/share/man/man1/dnatsim.1")]
struct ManArgs {}

/// Whether diagnostics are coloured; decided once from `--color`, NO_COLOR and the terminal.
static COLOR: AtomicBool = AtomicBool::new(false);
/// Whether standard output was closed when the process started (`>&-`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// A command line that cannot work (exit status 2), found after clap's own checks.
#[derive(Debug)]
pub struct Usage(pub String);

impl std::fmt::Display for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Usage {}

/// A usage error (exit status 2) with this message.
pub fn usage(message: impl Into<String>) -> anyhow::Error {
    Usage(message.into()).into()
}

/// Runs the command line and returns the process exit code.
pub fn main() -> i32 {
    guard_standard_descriptors();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            if !e.use_stderr() && STDOUT_CLOSED.load(Ordering::Relaxed) {
                let _ = writeln!(io::stderr(), "dnatsim: error: standard output is closed");
                return 1;
            }
            // Printing help or a usage error can only fail on a closed pipe; nothing to add then.
            let _ = e.print();
            return code;
        }
    };
    let color = match cli.color {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && io::stderr().is_terminal()
        }
    };
    COLOR.store(color, Ordering::Relaxed);
    let result = match cli.command {
        Command::Replay(a) => replay::run(a),
        Command::Check(a) => check::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Diff(a) => diff::run(a),
        Command::Gen(a) => generate::run(a),
        Command::Api(a) => api::run(a),
        Command::Import(a) => import::run(a),
        Command::Export(a) => export::run(a),
        Command::Live(a) => live::run(a),
        Command::Completions(a) => completions(a),
        Command::Man(_) => man(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&e) {
                return 0;
            }
            if let Some(u) = e.downcast_ref::<Usage>() {
                error(&u.0);
                return 2;
            }
            error(&describe(&e));
            1
        }
    }
}

/// Prints `dnatsim: error: MESSAGE` on standard error.
pub fn error(message: &str) {
    let label = paint("error", "1;31");
    let _ = writeln!(io::stderr(), "dnatsim: {label}: {message}");
}

/// Prints `dnatsim: warning: MESSAGE` on standard error.
pub fn warning(message: &str) {
    let label = paint("warning", "1;33");
    let _ = writeln!(io::stderr(), "dnatsim: {label}: {message}");
}

/// `text` in an ANSI colour (SGR `code`) when colour is on.
fn paint(text: &str, code: &str) -> String {
    if COLOR.load(Ordering::Relaxed) {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// Notes whether standard output was closed at start (`>&-`), so a command that needs it
/// fails instead of printing into nothing. Rust's runtime reopens a closed standard
/// descriptor on /dev/null before `main` (so no file we open can take its place), opened
/// read-write; a shell's `>/dev/null` opens it write-only. So standard output that is
/// /dev/null opened read-write is taken as closed.
#[allow(unsafe_code)]
fn guard_standard_descriptors() {
    let Ok(null) = std::fs::metadata("/dev/null") else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    // SAFETY: fstat fills a plain struct for a descriptor; a failure leaves it unused.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(1, &mut st) } != 0 {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
        return;
    }
    // SAFETY: F_GETFL only reads the descriptor's status flags.
    let flags = unsafe { libc::fcntl(1, libc::F_GETFL) };
    let is_null = (st.st_mode & libc::S_IFMT) == libc::S_IFCHR && st.st_rdev == null.rdev();
    if is_null && flags >= 0 && flags & libc::O_ACCMODE == libc::O_RDWR {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    }
}

/// Fails when standard output was closed at start and `what` would be written there.
pub fn require_stdout(what: &str) -> anyhow::Result<()> {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        anyhow::bail!("standard output is closed, and {what} goes there");
    }
    Ok(())
}

fn completions(args: CompletionsArgs) -> anyhow::Result<i32> {
    require_stdout("the completion script")?;
    let shell = match args.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "dnatsim", &mut text);
    io::stdout().lock().write_all(&text)?;
    Ok(0)
}

fn man() -> anyhow::Result<i32> {
    require_stdout("the manual page")?;
    let cmd = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
    // One page for the tool, then a section per command, as git's pages do for theirs.
    for sub in cmd.get_subcommands() {
        let title = format!("dnatsim-{}", sub.get_name());
        clap_mangen::Man::new(sub.clone())
            .title(title)
            .render(&mut page)?;
    }
    io::stdout().lock().write_all(&page)?;
    Ok(0)
}

/// The error and its causes joined by ": ", each cause once: our typed errors name their
/// operating-system reason in their own message, and anyhow's `{:#}` would repeat it. A context
/// that is only the path a cause names again ("in.pcap: cannot open in.pcap: ...") is dropped.
fn describe(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.ends_with(&part) {
            continue;
        }
        if names(&part, &text) {
            text.clear();
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    text
}

/// Whether `message` names `path` as a word of its own (after a space, before ":" or the end).
fn names(message: &str, path: &str) -> bool {
    !path.is_empty()
        && message.match_indices(path).any(|(at, _)| {
            let before = message[..at].ends_with(' ');
            let rest = &message[at + path.len()..];
            before && (rest.is_empty() || rest.starts_with(':'))
        })
}

/// A reader that went away (`dnatsim ... | head`) is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// Reads and validates a rules file (`-`: standard input), printing its warnings to stderr
/// unless `quiet`; returns the rules and the warnings, one line each, for a report.
fn load_rules(path: &Path, quiet: bool) -> anyhow::Result<(dnatsim::rules::Rules, Vec<String>)> {
    use dnatsim::rules::RulesError;
    let parsed = if paths::is_std(path) {
        let mut text = String::new();
        io::Read::read_to_string(&mut io::stdin().lock(), &mut text)
            .map_err(|e| anyhow::anyhow!("cannot read the rules from standard input: {e}"))?;
        dnatsim::rules::parse_str(&text, "<stdin>")
    } else {
        dnatsim::rules::parse_file(path)
    };
    let parsed = match parsed {
        Ok(parsed) => parsed,
        // Each diagnostic has its own `error[rule]:` heading and location; printed as they
        // are, only their count is left for the one `dnatsim: error:` line.
        Err(RulesError::Invalid { file, errors, .. }) => {
            let mut err = io::stderr().lock();
            for d in &errors {
                let _ = writeln!(err, "{d}");
            }
            let n = errors.len();
            let noun = if n == 1 { "error" } else { "errors" };
            anyhow::bail!("{n} {noun} in {file}");
        }
        Err(e @ RulesError::Capture { .. }) => anyhow::bail!(
            "{e}: -r/--rules takes the rules file (TOML); a capture is replay's IN argument"
        ),
        Err(e) => return Err(e.into()),
    };
    if !quiet {
        let mut err = io::stderr().lock();
        for w in &parsed.warnings {
            let _ = writeln!(err, "{w}");
        }
    }
    let lines = parsed
        .warnings
        .iter()
        .map(|w| {
            format!(
                "{}:{}:{}: {}: {}",
                w.file, w.line, w.column, w.rule, w.message
            )
        })
        .collect();
    Ok((parsed.rules, lines))
}

/// Writes a command's result to `out` (whole or not at all) or, without one or with `-`, to
/// standard output; `what` names it in messages ("the report").
fn write_output(out: Option<&Path>, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    match out {
        Some(path) if !paths::is_std(path) => dnatsim::output::write_whole(path, bytes)
            .map_err(|e| anyhow::anyhow!("cannot write {what} {}: {e}", path.display())),
        _ => {
            require_stdout(what)?;
            let mut o = io::stdout().lock();
            o.write_all(bytes)?;
            o.flush()?;
            Ok(())
        }
    }
}

/// [`write_output`] for text.
fn write_text_output(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    write_output(out, text.as_bytes(), "the result")
}

/// Writes a JSON report, pretty-printed, to `path` (`-`: standard output).
fn write_json_report(path: &Path, report: &impl serde::Serialize) -> anyhow::Result<()> {
    let mut json = serde_json::to_vec_pretty(report)?;
    json.push(b'\n');
    write_output(Some(path), &json, "the report")
}

/// The `--rules` argument shared by the commands.
#[derive(Debug, clap::Args)]
struct RulesArg {
    /// The rules file (TOML): gateway, bandwidth package and forward entries (`-` reads
    /// standard input).
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
        let open = anyhow::anyhow!("cannot open in.pcap: gone").context("in.pcap");
        assert_eq!(describe(&open), "cannot open in.pcap: gone");
        let offset = anyhow::anyhow!("read error at offset 24: gone").context("in.pcap");
        assert_eq!(describe(&offset), "in.pcap: read error at offset 24: gone");
    }
}
