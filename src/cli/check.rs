//! `dnatsim check`: validate a rules file and show its compiled table.

use super::RulesArg;
use super::table::{ENTRY_HEADER, entry_cells, noun, render};
use std::io::Write;

/// Validate a rules file and print its forward table as the tutorial shows it.
///
/// Every error is reported with its file, line and column; warnings (such as an EIP with no
/// entry, the tutorial's backup IP5) go to stderr. Exit status 1 when the file is invalid.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Examples:\n  dnatsim check --rules pcaps/seed/rules.toml\n  \
    dnatsim check -r my-gateway.toml && echo valid\n  \
    dnatsim import entries.json packages.json | dnatsim check -r -"
)]
pub struct Args {
    #[command(flatten)]
    rules: RulesArg,
    /// No warnings (errors are still printed).
    #[arg(long, short = 'q')]
    quiet: bool,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    super::require_stdout("the table")?;
    let (rules, _) = super::load_rules(&args.rules.rules, args.quiet)?;
    let pkg = &rules.bandwidth_package;
    let mut out = std::io::stdout().lock();
    let name = if rules.gateway.name.is_empty() {
        "(unnamed)"
    } else {
        &rules.gateway.name
    };
    writeln!(
        out,
        "{}: gateway {name}, profile {}, bandwidth package {} with {} {}, {} {}",
        args.rules.rules.display(),
        rules.gateway.profile.as_str(),
        format_rate(pkg.rate_bps),
        pkg.public_ips.len(),
        noun(pkg.public_ips.len() as u64, "public IP", "public IPs"),
        rules.forward_entries.len(),
        noun(
            rules.forward_entries.len() as u64,
            "forward entry",
            "forward entries"
        ),
    )?;
    writeln!(out)?;
    let rows: Vec<Vec<String>> = rules
        .table_order()
        .into_iter()
        .map(|(_, e)| entry_cells(e))
        .collect();
    write!(out, "{}", render(&ENTRY_HEADER, &rows, &[]))?;
    let unused: Vec<String> = pkg
        .public_ips
        .iter()
        .filter(|ip| !rules.forward_entries.iter().any(|e| e.external_ip == **ip))
        .map(|ip| ip.to_string())
        .collect();
    if !unused.is_empty() {
        writeln!(
            out,
            "\nNo entry (traffic to these EIPs is dropped as no_rule): {}",
            unused.join(", ")
        )?;
    }
    Ok(0)
}

/// "150 Mbps", "1.5 Gbps", "64 kbps": the largest unit that keeps the number readable.
pub fn format_rate(bps: u64) -> String {
    let (v, unit) = if bps >= 1_000_000_000 {
        (bps as f64 / 1e9, "Gbps")
    } else if bps >= 1_000_000 {
        (bps as f64 / 1e6, "Mbps")
    } else {
        (bps as f64 / 1e3, "kbps")
    };
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s} {unit}")
}
