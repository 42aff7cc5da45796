//! `dnatsim replay`: the main job. A capture in, the gateway's translation applied, a
//! capture, a summary and a report out.

use super::RulesArg;
use super::table::{ENTRY_HEADER, entry_cells, render};
use anyhow::{Context, bail};
use dnatsim::bandwidth::LimiterConfig;
use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig, same_file};
use dnatsim::nat::{Config, DEFAULT_MAX_FLOWS, ForeignPolicy, ForwardTable, Outcome};
use dnatsim::pipeline::{Observer, ReplayOptions, ReplayResult, replay};
use dnatsim::report::{DropReason, Report, trace};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

/// What to do with traffic that concerns no EIP and no mapped server.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Foreign {
    /// Pass it unchanged.
    Pass,
    /// Drop it (counted as `foreign`).
    Drop,
}

/// Translate a capture as the gateway would: inbound packets to their servers, replies and
/// the servers' own traffic back to their EIPs. Prints a summary; `-o` writes the translated
/// capture (pcap or pcapng, as the input), `--report` a JSON report.
///
/// Exit status 0 when the run completes (drops are results, not errors), 1 when the input
/// or rules are unusable.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:\n  \
    dnatsim replay pcaps/seed/capture.pcap --rules pcaps/seed/rules.toml\n  \
    dnatsim replay in.pcap -r rules.toml -o out.pcap --report run.json\n  \
    dnatsim replay in.pcap -r rules.toml --trace 20\n  \
    dnatsim replay in.pcap -r rules.toml --annotate -o annotated.pcapng   # open in Wireshark\n  \
    tcpdump -w - -i eth0 | dnatsim replay - -r rules.toml")]
pub struct Args {
    /// The capture to translate (pcap or pcapng; `-` reads standard input).
    #[arg(value_name = "IN")]
    input: PathBuf,
    #[command(flatten)]
    rules: RulesArg,
    /// Write the translated capture here (whole or not at all).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// Write the counters as JSON here.
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Print one line per packet for the first N packets: the tuple before and after and the
    /// entry that matched, or why it was dropped.
    #[arg(long, value_name = "N")]
    trace: Option<u64>,
    /// Write pcapng with a comment on every packet (entry, before > after, or the drop
    /// reason; dropped packets are kept, unchanged, so their comment can be read).
    #[arg(long, requires = "output")]
    annotate: bool,
    /// Leave TTL alone (by default the gateway routes: TTL - 1, and TTL <= 1 is dropped).
    #[arg(long)]
    keep_ttl: bool,
    /// Traffic that concerns no EIP and no mapped server.
    #[arg(long, value_enum, default_value = "pass")]
    foreign: Foreign,
    /// The most flows the flow table keeps (oldest evicted past that, counted).
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS)]
    max_flows: usize,
    /// Do not apply the bandwidth package (translation only).
    #[arg(long)]
    no_bandwidth: bool,
    /// The bandwidth report's interval, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    interval: u64,
    /// Draw offered vs carried rate over time, with the package's cap, as SVG.
    #[arg(long, value_name = "FILE.svg")]
    plot: Option<PathBuf>,
    /// Threads (default: the machine's cores): 1 does everything on one thread; 2 adds a thread
    /// that reads ahead and writes the output; N > 2 reads on one, translates on N - 2 and
    /// writes on the main thread. The output is byte-identical for every value.
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// No progress bar, no summary (the report and the exit status still tell).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Prints trace lines and advances the progress bar.
struct CliObserver<'a> {
    table: &'a ForwardTable,
    trace_left: u64,
    bar: Option<ProgressBar>,
    out: std::io::StdoutLock<'static>,
    failed: Option<std::io::Error>,
}

impl Observer for CliObserver<'_> {
    fn packet(&mut self, record: u64, outcome: &Outcome) {
        if self.trace_left == 0 || self.failed.is_some() {
            return;
        }
        self.trace_left -= 1;
        let line = trace::line(record, outcome, self.table);
        let r = match &self.bar {
            Some(bar) => bar.suspend(|| writeln!(self.out, "{line}")),
            None => writeln!(self.out, "{line}"),
        };
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }

    fn progress(&mut self, offset: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(offset);
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let rules = super::load_rules(&args.rules.rules)?;
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    if let Some(out) = &args.output
        && same_file(&args.input, out)
    {
        bail!(
            "the output {} is the input; choose another file (the input is never modified)",
            out.display()
        );
    }
    let mut reader =
        CaptureReader::open(&args.input).with_context(|| args.input.display().to_string())?;
    // Wireshark reads records longer than the header's snap length; so do we, with a warning.
    reader.set_lenient_snaplen(true);
    let mut writer = match &args.output {
        Some(out) => {
            let mut config = if args.annotate {
                WriterConfig::pcapng_annotated(&reader)
            } else {
                WriterConfig::like(&reader)
            };
            config.input = Some(args.input.clone());
            // Records the reader let through past the snap length are written as they came.
            config.lenient_snaplen = true;
            Some(CaptureWriter::create(out, &config)?)
        }
        None => None,
    };
    let options = ReplayOptions {
        translator: Config {
            keep_ttl: args.keep_ttl,
            foreign: match args.foreign {
                Foreign::Pass => ForeignPolicy::Pass,
                Foreign::Drop => ForeignPolicy::Drop,
            },
            max_flows: args.max_flows,
        },
        annotate: args.annotate,
        threads: args
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
        bandwidth: if args.no_bandwidth {
            None
        } else {
            let interval_ns = args.interval.checked_mul(1_000_000).filter(|&n| n > 0);
            let Some(interval_ns) = interval_ns else {
                bail!(
                    "--interval must be between 1 and {} ms",
                    u64::MAX / 1_000_000
                );
            };
            Some(LimiterConfig::resolve(
                &rules.bandwidth_package,
                interval_ns,
            )?)
        },
    };
    if args.plot.is_some() && options.bandwidth.is_none() {
        bail!(
            "--plot draws the bandwidth package's effect; it cannot be combined with --no-bandwidth"
        );
    }
    let bar = progress_bar(&args);
    let mut observer = CliObserver {
        table: &table,
        trace_left: args.trace.unwrap_or(0),
        bar,
        out: std::io::stdout().lock(),
        failed: None,
    };
    let result = replay(
        &mut reader,
        writer.as_mut(),
        &table,
        &options,
        &mut observer,
    )
    .with_context(|| format!("replaying {}", args.input.display()))?;
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    if let Some(e) = observer.failed.take() {
        return Err(e.into());
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    for w in &result.warnings {
        eprintln!("dnatsim: warning: {}: {w}", args.input.display());
    }
    let report = Report::new(
        args.input.display().to_string(),
        args.rules.rules.display().to_string(),
        &result.counters,
        &table,
        &rules.bandwidth_package.public_ips,
        result.flows,
        result.warnings.clone(),
    );
    let mut report = report;
    if let Some(bw) = &result.bandwidth {
        report.bandwidth = Some(serde_json::to_value(bw)?);
        if let Some(plot) = &args.plot {
            dnatsim::bandwidth::write_svg(bw, plot)
                .with_context(|| format!("cannot draw the plot {}", plot.display()))?;
        }
    }
    if let Some(path) = &args.report {
        let mut json = serde_json::to_vec_pretty(&report)?;
        json.push(b'\n');
        dnatsim::output::write_whole(path, &json)
            .with_context(|| format!("cannot write the report {}", path.display()))?;
    }
    if !args.quiet {
        let out = match &args.output {
            Some(o) => o.display().to_string(),
            None => "(not written; -o OUT writes it)".to_string(),
        };
        let title = format!("{} -> {out}", args.input.display());
        let text = summary(&title, &result, &report, &rules);
        observer.out.write_all(text.as_bytes())?;
    }
    Ok(0)
}

fn progress_bar(args: &Args) -> Option<ProgressBar> {
    if args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let len = std::fs::metadata(&args.input).ok()?.len();
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style =
        ProgressStyle::with_template("{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
            .ok()?;
    bar.set_style(style);
    Some(bar)
}

/// Thousands separators: 1234567 -> "1,234,567".
fn n(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The human summary of a run (replay's, and live mode's at its stop), under `title`.
pub(super) fn summary(
    title: &str,
    result: &ReplayResult,
    report: &Report,
    rules: &dnatsim::rules::Rules,
) -> String {
    use std::fmt::Write as _;
    let c = &result.counters;
    let mut s = String::new();
    let _ = writeln!(s, "{title}");
    let _ = writeln!(
        s,
        "packets in   {:>12}  ({} bytes)",
        n(c.packets_in),
        n(c.bytes_in)
    );
    let _ = writeln!(
        s,
        "packets out  {:>12}  ({} bytes)",
        n(c.packets_out),
        n(c.bytes_out)
    );
    let _ = writeln!(s, "  translated inbound   {:>12}", n(c.inbound));
    let _ = writeln!(s, "  translated outbound  {:>12}", n(c.outbound));
    let _ = writeln!(
        s,
        "  passed unchanged     {:>12}  (foreign {}, not IPv4 {})",
        n(report.passed_unchanged),
        n(c.passed_foreign),
        n(c.passed_not_ipv4)
    );
    let _ = writeln!(s, "dropped      {:>12}", n(c.dropped_total()));
    for r in DropReason::ALL {
        if c.dropped(r) > 0 {
            let _ = writeln!(s, "  {:<20} {:>12}", r.as_str(), n(c.dropped(r)));
        }
    }
    let f = &result.flows;
    let _ = writeln!(
        s,
        "flows: {} created, {} expired, {} evicted (at most {} at once)",
        n(f.created),
        n(f.expired),
        n(f.evicted),
        n(f.peak)
    );
    if c.bad_l4_checksum_in > 0 {
        let _ = writeln!(
            s,
            "note: {} translated packets had a wrong TCP/UDP checksum on input; it stays wrong by the same amount",
            n(c.bad_l4_checksum_in)
        );
    }
    if c.snapped > 0 {
        let _ = writeln!(
            s,
            "note: {} packets were cut by the capture's snap length; their headers were translated",
            n(c.snapped)
        );
    }
    if c.fragments_held > 0 {
        let _ = writeln!(
            s,
            "note: {} fragments arrived before their first fragment and were held",
            n(c.fragments_held)
        );
    }
    if let Some(bw) = &result.bandwidth {
        let cfg = &bw.config;
        let _ = writeln!(
            s,
            "bandwidth package: {} {}, burst {} bytes, counting {}",
            super::check::format_rate(cfg.rate_bps),
            cfg.mode,
            n(cfg.burst_bytes),
            cfg.count
        );
        for (name, d) in [("inbound", &bw.inbound), ("outbound", &bw.outbound)] {
            if !d.limited {
                let _ = writeln!(s, "  {name:<8} not limited");
                continue;
            }
            let t = &d.totals;
            let mut line = format!(
                "  {name:<8} peak offered {}, peak carried {}, dropped {:.2}% ({} packets)",
                super::check::format_rate(t.peak_offered_bps),
                super::check::format_rate(t.peak_carried_bps),
                t.drop_share * 100.0,
                n(t.dropped_packets)
            );
            if let Some(w) = t.worst_queue_delay_ns {
                line.push_str(&format!(", worst queue delay {:.3} ms", w as f64 / 1e6));
            }
            let _ = writeln!(s, "{line}");
        }
    }
    let _ = writeln!(s);
    let mut header: Vec<&str> = ENTRY_HEADER.to_vec();
    header.extend(["Packets", "Bytes", "Flows"]);
    let order = rules.table_order();
    let rows: Vec<Vec<String>> = order
        .iter()
        .map(|e| {
            let idx = rules
                .forward_entries
                .iter()
                .position(|x| std::ptr::eq(x, *e))
                .unwrap_or(0);
            let counts = c.entries.get(idx).copied().unwrap_or_default();
            let mut row = entry_cells(e);
            row.extend([n(counts.packets), n(counts.bytes), n(counts.flows)]);
            row
        })
        .collect();
    s.push_str(&render(&header, &rows, &[6, 7, 8]));
    s
}
