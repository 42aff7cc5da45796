//! `dnatsim export`: the forward table in other formats.

use super::RulesArg;
use super::paths::Files;
use std::path::PathBuf;

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Format {
    /// An nftables ruleset implementing the same DNAT on Linux (load with `nft -f`).
    Nft,
    /// JSON in the shape of the API's DescribeForwardTableEntries response.
    ApiJson,
    /// The rules file itself, normalised.
    Toml,
    /// Terraform for the Alibaba Cloud provider: `alicloud_forward_entry` resources, with the
    /// forward table id and the EIPs as variables.
    Terraform,
}

/// Write the forward table as an nftables ruleset, as API JSON, as a normalised rules file, or
/// as Terraform for the Alibaba Cloud provider.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Examples:\n  dnatsim export --rules pcaps/seed/rules.toml --format nft > dnat.nft && nft -c -f dnat.nft\n  \
    dnatsim export --rules pcaps/seed/rules.toml --format api-json -o entries.json\n  \
    dnatsim export --rules pcaps/seed/rules.toml --format terraform -o dnat.tf"
)]
pub struct Args {
    #[command(flatten)]
    rules: RulesArg,
    /// The output format.
    #[arg(long, short = 'f', value_enum)]
    format: Format,
    /// Write here (whole or not at all) instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// No warnings about the rules file.
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    Files::new()
        .input("--rules", &args.rules.rules)
        .output("-o", args.output.as_deref())
        .check()?;
    let (rules, _) = super::load_rules(&args.rules.rules, args.quiet)?;
    let text = match args.format {
        Format::Nft => dnatsim::rules::to_nft(&rules),
        Format::ApiJson => dnatsim::rules::to_api_json(&rules),
        Format::Toml => dnatsim::rules::to_toml(&rules),
        Format::Terraform => dnatsim::rules::to_terraform(&rules),
    };
    super::write_text_output(args.output.as_deref(), &text)?;
    Ok(0)
}
