//! `dnatsim live`: the gateway on real interfaces or TAP devices until SIGINT/SIGTERM, then
//! the same summary and JSON report as a replay.

use super::RulesArg;
use anyhow::Context;
use clap::ArgGroup;
use dnatsim::live::{self, Devices, LiveConfig, LiveObserver, LiveStats, ReloadDone};
use dnatsim::nat::DropReason;
use dnatsim::nat::{Config, DEFAULT_MAX_FLOWS, ForeignPolicy, ForwardTable, Outcome};
use dnatsim::pipeline::ReplayResult;
use dnatsim::report::{Report, trace};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Be the gateway: translate live traffic between an outside interface (clients) and an inside
/// one (servers), or between two TAP devices that dnatsim creates. Answers ARP for the EIPs
/// outside and for --inside-ip inside; drops silently what no entry allows. SIGHUP or a change
/// of the rules file reloads it; SIGINT/SIGTERM stop it with a summary and the report.
///
/// The interfaces need no address of the host, and the host must not forward between them.
#[derive(Debug, clap::Args)]
#[command(
    group(ArgGroup::new("devices").required(true).args(["outside", "tap_outside"])),
    after_long_help = "Examples:\n  \
    dnatsim live -r rules.toml --outside eth1 --inside eth2 --inside-ip 192.0.2.254\n  \
    dnatsim live -r rules.toml --tap-outside dn-out --tap-inside dn-in --inside-ip 192.0.2.254 \\\n      \
    --report live.json --pcap-out sent.pcapng --stats-interval 5\n  \
    kill -HUP $(pidof dnatsim)    # reload the rules file"
)]
pub struct Args {
    #[command(flatten)]
    rules: RulesArg,
    /// The existing interface facing the clients (attached with AF_PACKET).
    #[arg(long, value_name = "IF", requires = "inside", conflicts_with_all = ["tap_outside", "tap_inside"])]
    outside: Option<String>,
    /// The existing interface facing the servers.
    #[arg(long, value_name = "IF", requires = "outside")]
    inside: Option<String>,
    /// Create a TAP device of this name facing the clients (removed at exit).
    #[arg(long, value_name = "NAME", requires = "tap_inside")]
    tap_outside: Option<String>,
    /// Create a TAP device of this name facing the servers.
    #[arg(
        long,
        value_name = "NAME",
        requires = "tap_outside",
        conflicts_with = "inside"
    )]
    tap_inside: Option<String>,
    /// The gateway's address on the inside: the servers' default route (default: the rules
    /// file's `[gateway] private_ip`).
    #[arg(long, value_name = "ADDR")]
    inside_ip: Option<Ipv4Addr>,
    /// Write the counters as JSON here at the stop (replay's keys, plus `live`).
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Print one line for each of the first N IPv4 packets.
    #[arg(long, value_name = "N")]
    trace: Option<u64>,
    /// Record every frame dnatsim sends (pcapng: interface 0 outside, 1 inside).
    #[arg(long, value_name = "FILE.pcapng")]
    pcap_out: Option<PathBuf>,
    /// Print a statistics line on stderr every S seconds.
    #[arg(long, value_name = "S")]
    stats_interval: Option<f64>,
    /// Leave TTL alone (by default the gateway routes: TTL - 1).
    #[arg(long)]
    keep_ttl: bool,
    /// The most flows the flow table keeps.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS)]
    max_flows: usize,
    /// Do not apply the bandwidth package.
    #[arg(long)]
    no_bandwidth: bool,
    /// How frames move on --outside/--inside: `mmsg` (AF_PACKET, batches of 64 per system
    /// call) or `pnet` (pnet's datalink channel, one frame per call; it spins a core, for
    /// comparison only).
    #[arg(long, value_enum, default_value = "mmsg")]
    io: Io,
    /// After each frame, keep looking for the next one without sleeping for this many
    /// microseconds (0: sleep in poll at once). Spinning trades CPU for fewer wake-ups.
    #[arg(long, value_name = "US", default_value_t = 0)]
    spin_us: u64,
    /// No warnings about the rules file and no summary at the stop (the stats lines, the
    /// report and the exit status still tell).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The AF_PACKET path for existing interfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Io {
    /// recvmmsg/sendmmsg batches.
    Mmsg,
    /// pnet's datalink channel.
    Pnet,
}

/// Trace lines on stdout; statistics and reload news on stderr.
struct CliObserver {
    last: Option<LiveStats>,
}

impl LiveObserver for CliObserver {
    fn packet(&mut self, record: u64, outcome: &Outcome, table: &ForwardTable) {
        let _ = writeln!(
            std::io::stdout().lock(),
            "{}",
            trace::line(record, outcome, table)
        );
    }

    fn stats(&mut self, s: &LiveStats) {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{}",
            stats_line(s, self.last.as_ref())
        );
        self.last = Some(s.clone());
    }

    fn reload(&mut self, result: Result<&ReloadDone, &str>) {
        let line = match result {
            Ok(r) => format!(
                "dnatsim: rules reloaded: {} entries; {} flows kept, {} removed (their entry is gone)",
                r.entries, r.flows_kept, r.flows_removed
            ),
            Err(e) => format!("dnatsim: rules not reloaded: {e}"),
        };
        let _ = writeln!(std::io::stderr().lock(), "{line}");
    }

    fn note(&mut self, text: &str) {
        let _ = writeln!(std::io::stderr().lock(), "dnatsim: warning: {text}");
    }
}

/// `live 12.0s | in 1200 pkt 10.20 Mbit/s | out 1180 pkt 9.80 Mbit/s | dropped no_rule 3 | flows 5`;
/// rates are over the last interval.
fn stats_line(s: &LiveStats, last: Option<&LiveStats>) -> String {
    let (t0, prev) = match last {
        Some(l) => (l.elapsed_ns, l.sent),
        None => (0, [(0, 0); 2]),
    };
    let dt = (s.elapsed_ns.saturating_sub(t0)).max(1) as f64 / 1e9;
    let mut line = format!("live {:.1}s", s.elapsed_ns as f64 / 1e9);
    for (name, i) in [("in", 0), ("out", 1)] {
        let (p, b) = s.sent[i];
        let rate = (b.saturating_sub(prev[i].1)) as f64 * 8.0 / dt / 1e6;
        let pps = (p.saturating_sub(prev[i].0)) as f64 / dt;
        line.push_str(&format!(
            " | {name} {p} pkt {rate:.2} Mbit/s {pps:.0} pkt/s"
        ));
    }
    line.push_str(" | dropped");
    let mut any = false;
    for r in DropReason::ALL {
        let v = s.dropped[r as usize];
        if v > 0 {
            line.push_str(&format!(" {} {v}", r.as_str()));
            any = true;
        }
    }
    if s.unresolved > 0 {
        line.push_str(&format!(" unresolved {}", s.unresolved));
        any = true;
    }
    if !any {
        line.push_str(" 0");
    }
    line.push_str(&format!(" | flows {}", s.flows));
    line
}

/// Runs live mode; returns the exit code.
pub fn run(args: Args) -> anyhow::Result<i32> {
    super::paths::Files::new()
        .input("--rules", &args.rules.rules)
        .output("--report", args.report.as_deref())
        .output("--pcap-out", args.pcap_out.as_deref())
        .check()?;
    let (rules, rule_warnings) = super::load_rules(&args.rules.rules, args.quiet)?;
    let devices = match (
        &args.outside,
        &args.inside,
        &args.tap_outside,
        &args.tap_inside,
    ) {
        (Some(o), Some(i), None, None) => Devices::Interfaces {
            outside: o.clone(),
            inside: i.clone(),
            pnet: args.io == Io::Pnet,
        },
        (None, None, Some(o), Some(i)) => Devices::Tap {
            outside: o.clone(),
            inside: i.clone(),
        },
        // clap's group and `requires` rules admit only the two shapes above.
        _ => anyhow::bail!("give either --outside and --inside, or --tap-outside and --tap-inside"),
    };
    let stats_interval_ns = match args.stats_interval {
        Some(s) if s.is_finite() && s > 0.0 && s < 1e9 => Some((s * 1e9) as u64),
        Some(s) => anyhow::bail!("--stats-interval must be a positive number of seconds, not {s}"),
        None => None,
    };
    let Some(inside_ip) = args.inside_ip.or(rules.gateway.private_ip) else {
        anyhow::bail!(
            "the gateway needs its inside address: give --inside-ip or set private_ip under [gateway] in {}",
            args.rules.rules.display()
        );
    };
    let config = LiveConfig {
        rules_path: args.rules.rules.clone(),
        devices,
        inside_ip,
        translator: Config {
            keep_ttl: args.keep_ttl,
            // A gateway forwards only what concerns its entries.
            foreign: ForeignPolicy::Drop,
            max_flows: args.max_flows,
        },
        bandwidth: !args.no_bandwidth,
        pcap_out: args.pcap_out.clone(),
        stats_interval_ns,
        trace: args.trace.unwrap_or(0),
        spin_us: args.spin_us,
    };
    let mut observer = CliObserver { last: None };
    let done = live::run(&config, rules, &mut observer).context("live mode")?;
    let table = ForwardTable::new(
        &done.rules.forward_entries,
        &done.rules.bandwidth_package.public_ips,
    );
    let source = format!("live {} / {}", done.live.outside, done.live.inside);
    let mut report = Report::new(
        source.clone(),
        args.rules.rules.display().to_string(),
        &done.counters,
        &table,
        &done.rules.bandwidth_package.public_ips,
        done.flows,
        rule_warnings,
    );
    if let Some(bw) = &done.bandwidth {
        report.bandwidth = Some(serde_json::to_value(bw)?);
    }
    if let Some(path) = &args.report {
        let mut value = serde_json::to_value(&report)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("live".into(), serde_json::to_value(&done.live)?);
        }
        super::write_json_report(path, &value)?;
    }
    let result = ReplayResult {
        counters: done.counters,
        flows: done.flows,
        warnings: Vec::new(),
        bandwidth: done.bandwidth,
    };
    let title = format!(
        "{source}: {:.1} s; ARP: {} replies, {} requests, {} unresolved packets; reloads: {} applied, {} refused",
        done.live.seconds,
        done.live.arp_replies_sent,
        done.live.arp_outside.requests_sent + done.live.arp_inside.requests_sent,
        done.live.arp_outside.dropped_unresolved + done.live.arp_inside.dropped_unresolved,
        done.live.reloads.applied,
        done.live.reloads.refused,
    );
    let text = super::replay::summary(&title, args.max_flows, &result, &report, &done.rules);
    if !args.quiet {
        // `--report -` puts the JSON on standard output; the summary then goes to stderr.
        if args.report.as_deref().is_some_and(super::paths::is_std) {
            std::io::stderr().lock().write_all(text.as_bytes())?;
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())?;
        }
    }
    Ok(0)
}
