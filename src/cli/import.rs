//! `dnatsim import`: turn the cloud API's JSON responses into a rules file.

use anyhow::Context;
use std::io::Write;
use std::path::PathBuf;

/// Read DescribeForwardTableEntries / DescribeBandwidthPackages / DescribeNatGateways JSON
/// responses and print an equivalent rules file (TOML) on stdout.
///
/// Each file is recognised by its keys; pass at least the forward table entries and the
/// bandwidth package. The result is validated under the `alibaba` profile.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Examples:\n  dnatsim import entries.json packages.json gateways.json > rules.toml\n  \
    dnatsim import tests/data/api/*.json | dnatsim check --rules /dev/stdin"
)]
pub struct Args {
    /// The JSON files, as the API returned them.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let mut inputs = Vec::new();
    for f in &args.files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        inputs.push((f.display().to_string(), text));
    }
    let rules = dnatsim::rules::import_api_json(&inputs).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut out = std::io::stdout().lock();
    out.write_all(dnatsim::rules::to_toml(&rules).as_bytes())?;
    Ok(0)
}
