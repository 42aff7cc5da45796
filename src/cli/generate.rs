//! `dnatsim gen`: synthetic traffic toward a rules file's EIPs, deterministic by seed.

use super::paths::{self, Files};
use super::replay::{OutFormat, format_by_name};
use super::{RulesArg, usage};
use anyhow::Context;
use dnatsim::traffic::{
    Category, GenConfig, Generator, MAX_FLOWS, Mix, UDP_MAX_SIZE, UDP_MIN_SIZE,
};
use std::io::Write;
use std::path::PathBuf;

/// Which traffic to make.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum MixArg {
    /// A realistic gateway mix: conversations to every entry and their replies, unmatched
    /// traffic, ICMP echo and errors, fragments (some out of order), foreign, ARP, IPv6 and a
    /// few oddities (TTL 1, bad checksums).
    Scenario,
    /// 60-byte TCP frames (64 on the wire), all matched: for throughput benchmarks.
    Tcp64,
    /// IMIX sizes (7:4:1 of 40/576/1500 bytes), matched inbound plus replies.
    Imix,
    /// Fixed-size matched UDP (see --size).
    Udp,
}

/// Generate a capture of synthetic traffic toward the EIPs of a rules file (Ethernet, pcap
/// with nanosecond timestamps). The same rules, options and seed give the same bytes.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:\n  \
    dnatsim gen -r pcaps/seed/rules.toml -o sample.pcap --packets 2000 --seed 1\n  \
    dnatsim gen -r pcaps/seed/rules.toml -o 300mbps.pcap --mix imix --rate-mbps 300 --packets 300000\n  \
    dnatsim gen -r pcaps/seed/rules.toml -o bench.pcap --mix tcp64 --packets 1000000")]
pub struct Args {
    #[command(flatten)]
    rules: RulesArg,
    /// The capture to write (whole or not at all): pcap, or pcapng when the name ends in
    /// .pcapng or --format says so.
    #[arg(short = 'o', long = "output", value_name = "OUT.pcap")]
    output: PathBuf,
    /// The output's format; by default it follows OUT's name, else pcap.
    #[arg(long, value_enum, value_name = "FORMAT")]
    format: Option<OutFormat>,
    /// How many packets.
    #[arg(long, default_value_t = 10_000)]
    packets: u64,
    /// The offered rate (IP bytes), which spaces the timestamps; a positive number.
    #[arg(long, value_name = "M", default_value_t = 100.0, value_parser = positive_rate)]
    rate_mbps: f64,
    /// The random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which traffic.
    #[arg(long, value_enum, default_value = "scenario")]
    mix: MixArg,
    /// Packet size (IP bytes) for --mix udp, 28 to 1500.
    #[arg(long, value_name = "BYTES", value_parser = clap::value_parser!(u16).range(i64::from(UDP_MIN_SIZE)..=i64::from(UDP_MAX_SIZE)))]
    size: Option<u16>,
    /// Concurrent flows of the benchmark mixes (tcp64, imix, udp), 1 to 1,048,576.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..=i64::from(MAX_FLOWS)))]
    flows: u32,
    /// No summary, no warnings.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// A rate in Mbit/s: a positive finite number.
fn positive_rate(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!(
            "{s}: the rate must be a positive finite number of Mbit/s"
        ))
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    Files::new()
        .input("--rules", &args.rules.rules)
        .output("-o", Some(&args.output))
        .check()?;
    if paths::is_std(&args.output) {
        super::require_stdout("-o - writes the capture")?;
    }
    if args.size.is_some() && !matches!(args.mix, MixArg::Udp) {
        return Err(usage(
            "--size sets the packet size of --mix udp; add --mix udp or drop --size",
        ));
    }
    let pcapng = args.format.or_else(|| format_by_name(&args.output)) == Some(OutFormat::Pcapng);
    let (rules, _) = super::load_rules(&args.rules.rules, args.quiet)?;
    let config = GenConfig {
        packets: args.packets,
        rate_mbps: args.rate_mbps,
        seed: args.seed,
        mix: match args.mix {
            MixArg::Scenario => Mix::Scenario,
            MixArg::Tcp64 => Mix::Tcp64,
            MixArg::Imix => Mix::Imix,
            MixArg::Udp => Mix::Udp {
                size: args.size.unwrap_or(1500),
            },
        },
        flows: args.flows,
        ..GenConfig::default()
    };
    let mut generator = Generator::new(&rules, &config)?;
    let stats = generator
        .write_capture(&args.output, pcapng)
        .with_context(|| args.output.display().to_string())?;
    if args.quiet {
        return Ok(0);
    }
    let mut out = std::io::stderr().lock();
    writeln!(
        out,
        "{}: {} {}, {} IP bytes",
        args.output.display(),
        stats.packets,
        super::table::noun(stats.packets, "packet", "packets"),
        stats.l3_bytes
    )?;
    for c in Category::ALL {
        let n = stats.count(c);
        if n > 0 {
            writeln!(out, "  {:<20} {n}", c.name())?;
        }
    }
    Ok(0)
}
