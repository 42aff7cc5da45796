//! `dnatsim import`: turn the cloud API's JSON responses into a rules file.

use super::paths::{self, Files};
use anyhow::Context;
use std::io::Read;
use std::path::PathBuf;

/// Read DescribeForwardTableEntries / DescribeBandwidthPackages / DescribeNatGateways JSON
/// responses and print an equivalent rules file (TOML) on stdout.
///
/// Each file is recognised by its keys; pass at least the forward table entries and the
/// bandwidth package. The result is validated under the `alibaba` profile.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Examples:\n  dnatsim import entries.json packages.json gateways.json > rules.toml\n  \
    dnatsim import tests/data/api/*.json -o rules.toml\n  \
    cat entries.json | dnatsim import - packages.json | dnatsim check --rules -"
)]
pub struct Args {
    /// The JSON files, as the API returned them (`-` reads standard input).
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Write the rules file here (whole or not at all) instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT.toml")]
    output: Option<PathBuf>,
    /// Accepted for symmetry with the other commands; import prints no warnings.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let mut files = Files::new();
    for f in &args.files {
        files = files.input("an input", f);
    }
    files.output("-o", args.output.as_deref()).check()?;
    let mut inputs = Vec::new();
    for f in &args.files {
        let text = if paths::is_std(f) {
            let mut text = String::new();
            std::io::stdin()
                .lock()
                .read_to_string(&mut text)
                .context("cannot read standard input")?;
            ("<stdin>".to_string(), text)
        } else {
            let text = std::fs::read_to_string(f)
                .with_context(|| format!("cannot read {}", f.display()))?;
            (f.display().to_string(), text)
        };
        inputs.push(text);
    }
    let rules = dnatsim::rules::import_api_json(&inputs).map_err(|e| anyhow::anyhow!("{e}"))?;
    super::write_text_output(args.output.as_deref(), &dnatsim::rules::to_toml(&rules))?;
    Ok(0)
}
