//! Every file a command reads or writes, checked before any work starts.
//!
//! An output that names an input (through `./`, a symbolic link or a hard link) or another
//! output would destroy data, and an output into a missing directory would fail only after the
//! whole run: both are refused up front, with the options that clash named.

use super::usage;
use anyhow::bail;
use dnatsim::output::{same_file, write_location};
use std::path::Path;

/// `-` in a file argument: standard input for an input, standard output for an output.
pub fn is_std(path: &Path) -> bool {
    path.as_os_str() == "-"
}

/// The files of one command: what it reads and what it writes, each with the option that
/// names it (for messages).
#[derive(Debug, Default)]
pub struct Files<'a> {
    inputs: Vec<(&'static str, &'a Path)>,
    outputs: Vec<(&'static str, &'a Path)>,
}

impl<'a> Files<'a> {
    /// A command's files, none yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A file the command reads.
    pub fn input(mut self, what: &'static str, path: &'a Path) -> Self {
        self.inputs.push((what, path));
        self
    }

    /// A file the command writes, if given.
    pub fn output(mut self, what: &'static str, path: Option<&'a Path>) -> Self {
        if let Some(p) = path {
            self.outputs.push((what, p));
        }
        self
    }

    /// Whether some output is standard output.
    pub fn writes_stdout(&self) -> bool {
        self.outputs.iter().any(|(_, p)| is_std(p))
    }

    /// Refuses outputs that name an input or each other, two outputs on standard output, two
    /// inputs on standard input, and outputs whose directory is missing or not writable.
    pub fn check(&self) -> anyhow::Result<()> {
        let stdins: Vec<_> = self.inputs.iter().filter(|(_, p)| is_std(p)).collect();
        if let [(a, _), (b, _), ..] = stdins.as_slice() {
            return Err(usage(format!(
                "{a} and {b} both read standard input (`-`); only one of them can"
            )));
        }
        let stdouts: Vec<_> = self.outputs.iter().filter(|(_, p)| is_std(p)).collect();
        if let [(a, _), (b, _), ..] = stdouts.as_slice() {
            return Err(usage(format!(
                "{a} and {b} both write to standard output (`-`); only one of them can"
            )));
        }
        for (i, (what, out)) in self.outputs.iter().enumerate() {
            if is_std(out) {
                continue;
            }
            for (in_what, input) in &self.inputs {
                if !is_std(input) && same_file(out, input) {
                    return Err(usage(format!(
                        "{what} {} is the same file as {in_what} {}; choose another output (inputs are never modified)",
                        out.display(),
                        input.display()
                    )));
                }
            }
            for (other_what, other) in &self.outputs[..i] {
                if !is_std(other) && same_file(out, other) {
                    return Err(usage(format!(
                        "{other_what} and {what} both name {}; each output needs a file of its own",
                        out.display()
                    )));
                }
            }
            check_writable_place(what, out)?;
        }
        Ok(())
    }
}

/// The output's directory exists, is a directory and accepts new files; the output itself, if
/// it exists, is not a directory.
fn check_writable_place(what: &str, out: &Path) -> anyhow::Result<()> {
    if out.is_dir() {
        bail!("{what} {} is a directory; name a file", out.display());
    }
    if out.file_name().is_none() {
        bail!("{what} {} names no file", out.display());
    }
    // A device or FIFO is written in place; its directory needs no new file.
    if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
        return Ok(());
    }
    let target = write_location(out);
    let dir = match out.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(target) = target else {
        bail!(
            "{what} {}: the directory {} does not exist",
            out.display(),
            dir.display()
        );
    };
    let dir = target.parent().unwrap_or(Path::new("/"));
    let probe = dir.join(format!(".dnatsim-probe-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        // Left over from a killed run of a process that had our id: the directory is writable.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => bail!(
            "{what} {}: cannot create a file in {}: {e}",
            out.display(),
            dir.display(),
        ),
    }
}
