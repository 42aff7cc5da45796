//! `dnatsim gen`: synthetic traffic toward a rules file's EIPs, deterministic by seed.

use super::RulesArg;
use anyhow::Context;
use dnatsim::traffic::{Category, GenConfig, Generator, Mix};
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
    /// The capture to write (whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "OUT.pcap")]
    output: PathBuf,
    /// How many packets.
    #[arg(long, default_value_t = 10_000)]
    packets: u64,
    /// The offered rate (IP bytes), which spaces the timestamps.
    #[arg(long, value_name = "M", default_value_t = 100.0)]
    rate_mbps: f64,
    /// The random seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Which traffic.
    #[arg(long, value_enum, default_value = "scenario")]
    mix: MixArg,
    /// Packet size (IP bytes) for --mix udp.
    #[arg(long, default_value_t = 1500)]
    size: u16,
    /// Concurrent flows of the benchmark mixes.
    #[arg(long, default_value_t = 1024)]
    flows: u32,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let rules = super::load_rules(&args.rules.rules)?;
    let config = GenConfig {
        packets: args.packets,
        rate_mbps: args.rate_mbps,
        seed: args.seed,
        mix: match args.mix {
            MixArg::Scenario => Mix::Scenario,
            MixArg::Tcp64 => Mix::Tcp64,
            MixArg::Imix => Mix::Imix,
            MixArg::Udp => Mix::Udp { size: args.size },
        },
        flows: args.flows,
        ..GenConfig::default()
    };
    let mut generator = Generator::new(&rules, &config)?;
    let stats = generator
        .write_pcap(&args.output)
        .with_context(|| args.output.display().to_string())?;
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
