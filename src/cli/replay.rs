//! `dnatsim replay`: the main job. A capture in, the gateway's translation applied, a
//! capture, a summary and a report out.

use super::interrupt::{self, Interrupt};
use super::paths::{self, Files};
use super::table::{ENTRY_HEADER, entry_cells, render};
use super::{RulesArg, usage};
use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use dnatsim::bandwidth::{BandwidthStats, LimiterConfig};
use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};
use dnatsim::nat::DropReason;
use dnatsim::nat::{
    Config, DEFAULT_MAX_FLOWS, FlowStats, ForeignPolicy, ForwardTable, MAX_FLOWS, Outcome,
};
use dnatsim::pipeline::{Observer, ReplayOptions, ReplayResult, replay};
use dnatsim::report::{Counters, Report, trace};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

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
    /// Write the translated capture here (whole or not at all; `-` is standard output, and
    /// then every human-readable line goes to standard error).
    #[arg(short = 'o', long = "output", value_name = "OUT")]
    output: Option<PathBuf>,
    /// The output's format; by default it follows OUT's name (.pcap, .pcapng), else the input's.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "output")]
    format: Option<OutFormat>,
    /// Write the counters as JSON here (`-` is standard output).
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Print one line for each of the first N packets: the tuple before and after and the
    /// entry that matched, or why it was dropped (a held fragment gets a second line when it
    /// is decided).
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
    /// The most flows the flow table keeps, 1 to 8,388,606 (oldest evicted past that,
    /// counted). The table grows with the flows it sees, about 200 bytes each.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_FLOWS,
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=MAX_FLOWS as u64))]
    max_flows: usize,
    /// Do not apply the bandwidth package (translation only).
    #[arg(long)]
    no_bandwidth: bool,
    /// The bandwidth report's interval, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100,
          value_parser = clap::value_parser!(u64).range(1..=u64::MAX / 1_000_000))]
    interval: u64,
    /// Draw offered vs carried rate over time, with the package's cap, as SVG.
    #[arg(long, value_name = "FILE.svg", conflicts_with = "no_bandwidth")]
    plot: Option<PathBuf>,
    /// Write a self-contained HTML report here: the gateway drawn with its traffic, the
    /// counters, the bandwidth plot and a packet table with filters (opens offline).
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,
    /// The most packets the HTML report's packet table lists.
    #[arg(long, value_name = "N", default_value_t = dnatsim::report::html::DEFAULT_PACKETS,
          requires = "html", value_parser = RangedU64ValueParser::<usize>::new())]
    html_packets: usize,
    /// Threads (default: the machine's cores): 1 does everything on one thread; 2 adds a thread
    /// that reads ahead and writes the output; N > 2 reads on one, translates on N - 2 and
    /// writes on the main thread. The output is byte-identical for every value.
    #[arg(long, value_name = "N",
          value_parser = RangedU64ValueParser::<usize>::new().range(1..=1024))]
    threads: Option<usize>,
    /// No progress bar, no summary, no warnings (the report and the exit status still tell).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// Container formats `--format` can ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutFormat {
    /// pcap (one link type; no packet comments).
    Pcap,
    /// pcapng.
    Pcapng,
}

/// The format an output path asks for by its extension, if it names one.
pub fn format_by_name(path: &Path) -> Option<OutFormat> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    match ext.as_str() {
        "pcap" | "cap" | "dmp" => Some(OutFormat::Pcap),
        "pcapng" | "ntar" => Some(OutFormat::Pcapng),
        _ => None,
    }
}

/// Where the human-readable lines (summary, trace) go: standard output, unless standard output
/// carries the capture or the report.
enum Human {
    Stdout(std::io::StdoutLock<'static>),
    Stderr(std::io::Stderr),
}

impl Write for Human {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Human::Stdout(o) => o.write(buf),
            Human::Stderr(e) => e.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Human::Stdout(o) => o.flush(),
            Human::Stderr(e) => e.flush(),
        }
    }
}

/// Prints trace lines and advances the progress bar.
struct CliObserver<'a> {
    table: &'a ForwardTable,
    /// Trace packets whose record number is at most this.
    trace_upto: u64,
    bar: Option<ProgressBar>,
    out: &'a mut Human,
    failed: Option<std::io::Error>,
    /// The HTML report's packet rows, with `--html`.
    rows: Option<dnatsim::report::html::PacketRows<'a>>,
}

impl Observer for CliObserver<'_> {
    fn decided(&mut self, record: u64, outcome: &Outcome, wire_len: u32, rate_limited: bool) {
        if let Some(rows) = &mut self.rows {
            rows.decided(record, outcome, wire_len, rate_limited);
        }
    }

    fn packet(&mut self, record: u64, outcome: &Outcome) {
        if record > self.trace_upto || self.failed.is_some() {
            return;
        }
        let line = trace::line(record, outcome, self.table);
        let r = match &self.bar {
            Some(bar) => bar.suspend(|| writeln!(self.out, "{line}")),
            None => writeln!(self.out, "{line}"),
        };
        if let Err(e) = r {
            self.failed = Some(e);
        }
    }

    fn progress(&mut self, packets: u64, offset: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(offset);
            if bar.length().is_none() {
                bar.set_message(format!("{} packets", n(packets)));
            }
        }
    }
}

/// The writer's format for this run, or a usage error (comments need pcapng).
fn writer_config(args: &Args, reader: &CaptureReader) -> anyhow::Result<WriterConfig> {
    let Some(out) = &args.output else {
        return Ok(WriterConfig::like(reader));
    };
    let wanted = args.format.or_else(|| format_by_name(out));
    if args.annotate && wanted == Some(OutFormat::Pcap) {
        let why = if args.format.is_some() {
            "--format pcap".to_string()
        } else {
            format!("the name {}", out.display())
        };
        return Err(usage(format!(
            "--annotate writes a comment on every packet, which needs pcapng, but {why} asks for pcap; name the output .pcapng"
        )));
    }
    let mut config = match wanted {
        _ if args.annotate => WriterConfig::pcapng_annotated(reader),
        Some(OutFormat::Pcapng) => WriterConfig::pcapng_annotated(reader),
        Some(OutFormat::Pcap) => WriterConfig::pcap_like(reader)
            .map_err(|e| anyhow::anyhow!("{}: cannot be written as pcap: {e}", out.display()))?,
        None => WriterConfig::like(reader),
    };
    config.input = Some(args.input.clone());
    // Records the reader let through past the snap length are written as they came.
    config.lenient_snaplen = true;
    Ok(config)
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    let human_to_stdout = check_files(&args)?;
    let (rules, rule_warnings) = super::load_rules(&args.rules.rules, args.quiet)?;
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let interrupt = Interrupt::install()?;
    let mut reader = match open_input(&args, &interrupt)? {
        ControlFlow::Continue(r) => r,
        ControlFlow::Break(code) => return Ok(code),
    };
    let mut writer = match &args.output {
        Some(out) => Some(CaptureWriter::create(out, &writer_config(&args, &reader)?)?),
        None => None,
    };
    let options = replay_options(&args, &rules)?;
    let mut human = if human_to_stdout {
        Human::Stdout(std::io::stdout().lock())
    } else {
        Human::Stderr(std::io::stderr())
    };
    let bar = progress_bar(&args);
    let mut observer = CliObserver {
        table: &table,
        trace_upto: args.trace.unwrap_or(0),
        bar,
        out: &mut human,
        failed: None,
        rows: args
            .html
            .as_ref()
            .map(|_| dnatsim::report::html::PacketRows::new(&table, args.html_packets)),
    };
    let result = replay(
        &mut reader,
        writer.as_mut(),
        &table,
        &options,
        &mut observer,
    )
    .with_context(|| format!("replaying {}", input_name(&args)));
    if let Some(bar) = observer.bar.take() {
        bar.finish_and_clear();
    }
    let result = result?;
    if let Some(e) = observer.failed.take() {
        return Err(e.into());
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    let stopped_by = interrupt.received().filter(|_| reader.was_stopped());
    if !args.quiet {
        for w in &result.warnings {
            super::warning(&format!("{}: {w}", input_name(&args)));
        }
    }
    let report = write_reports(
        &args,
        &result,
        &table,
        &rules,
        rule_warnings,
        observer.rows.as_ref(),
    )?;
    if !args.quiet {
        let out = match &args.output {
            Some(o) if paths::is_std(o) => "(standard output)".to_string(),
            Some(o) => o.display().to_string(),
            None => "(not written; -o OUT writes it)".to_string(),
        };
        let title = format!("{} -> {out}", input_name(&args));
        let text = summary(&title, args.max_flows, &result, &report, &rules);
        human.write_all(text.as_bytes())?;
        human.flush()?;
    }
    if let Some(sig) = stopped_by {
        // The exit status tells a quiet run why it stopped.
        if !args.quiet {
            super::warning(&format!(
                "{} stopped the run after {} packets; the outputs hold what was read until then",
                interrupt::name(sig),
                n(result.counters.packets_in)
            ));
        }
        return Ok(interrupt::exit_code(sig));
    }
    Ok(0)
}

/// Checks every file of the run and that standard output is open where something goes there;
/// returns whether the human-readable lines can go to standard output.
fn check_files(args: &Args) -> anyhow::Result<bool> {
    let files = Files::new()
        .input("the capture", &args.input)
        .input("--rules", &args.rules.rules)
        .output("-o", args.output.as_deref())
        .output("--report", args.report.as_deref())
        .output("--plot", args.plot.as_deref())
        .output("--html", args.html.as_deref());
    files.check()?;
    if args.output.as_deref().is_some_and(paths::is_std) {
        super::require_stdout("-o - writes the capture")?;
    }
    if args.report.as_deref().is_some_and(paths::is_std) {
        super::require_stdout("--report - writes the report")?;
    }
    let human_to_stdout = !files.writes_stdout();
    if human_to_stdout && (!args.quiet || args.trace.is_some()) {
        super::require_stdout("the summary")?;
    }
    Ok(human_to_stdout)
}

/// Opens the capture, leniently about snap lengths; `Break` with the exit status when an
/// interrupt arrived before its header could be read.
fn open_input(
    args: &Args,
    interrupt: &Interrupt,
) -> anyhow::Result<ControlFlow<i32, CaptureReader>> {
    let mut reader = match CaptureReader::open_stoppable(&args.input, interrupt.flag()) {
        Ok(r) => r,
        Err(e) => {
            if let Some(sig) = interrupt.received() {
                super::error(&format!(
                    "{}: {} arrived before the capture's header; nothing was written",
                    input_name(args),
                    interrupt::name(sig)
                ));
                return Ok(ControlFlow::Break(interrupt::exit_code(sig)));
            }
            return Err(anyhow::Error::new(e).context(input_name(args)));
        }
    };
    // Wireshark reads records longer than the header's snap length; so do we, with a warning.
    reader.set_lenient_snaplen(true);
    Ok(ControlFlow::Continue(reader))
}

/// The pipeline's options from the command line and the rules' bandwidth package.
fn replay_options(args: &Args, rules: &dnatsim::rules::Rules) -> anyhow::Result<ReplayOptions> {
    Ok(ReplayOptions {
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
            // The value parser bounds the interval so that this product fits.
            Some(LimiterConfig::resolve(
                &rules.bandwidth_package,
                args.interval * 1_000_000,
            )?)
        },
    })
}

/// Builds the run's report and writes the files made from it: the plot, the HTML page and the
/// JSON report, each when asked for.
fn write_reports(
    args: &Args,
    result: &ReplayResult,
    table: &ForwardTable,
    rules: &dnatsim::rules::Rules,
    rule_warnings: Vec<String>,
    rows: Option<&dnatsim::report::html::PacketRows<'_>>,
) -> anyhow::Result<Report> {
    // The report names its input, so the capture's warnings need no prefix there.
    let mut warnings = rule_warnings;
    warnings.extend(result.warnings.iter().cloned());
    let mut report = Report::new(
        input_name(args),
        args.rules.rules.display().to_string(),
        &result.counters,
        table,
        &rules.bandwidth_package.public_ips,
        result.flows,
        warnings,
    );
    if let Some(bw) = &result.bandwidth {
        report.bandwidth = Some(serde_json::to_value(bw)?);
        if let Some(plot) = &args.plot {
            dnatsim::bandwidth::write_svg(bw, plot)?;
        }
    }
    if let (Some(path), Some(rows)) = (&args.html, rows) {
        let page =
            dnatsim::report::html::replay_html(&report, table, result.bandwidth.as_ref(), rows);
        super::write_text_output(Some(path), &page)?;
    }
    if let Some(path) = &args.report {
        super::write_json_report(path, &report)?;
    }
    Ok(report)
}

/// The input as messages and the report name it.
fn input_name(args: &Args) -> String {
    if paths::is_std(&args.input) {
        "<stdin>".to_string()
    } else {
        args.input.display().to_string()
    }
}

fn progress_bar(args: &Args) -> Option<ProgressBar> {
    if args.quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    // A regular file has a size to measure progress against; a stream (standard input, a
    // FIFO) has none, so it shows what was read and how fast.
    let len = (!paths::is_std(&args.input))
        .then(|| std::fs::metadata(&args.input).ok())
        .flatten()
        .filter(|m| m.is_file())
        .map(|m| m.len());
    let (bar, template) = match len {
        Some(len) => (
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr()),
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ),
        None => (
            ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()),
            "{spinner} {msg}, {bytes} read, {bytes_per_sec}",
        ),
    };
    bar.set_style(ProgressStyle::with_template(template).ok()?);
    if len.is_none() {
        bar.set_message("0 packets");
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
    }
    Some(bar)
}

/// Thousands separators: 1234567 -> "1,234,567".
fn n(v: u64) -> String {
    dnatsim::report::thousands(v)
}

/// A share as people write it: "17%", "0.5%", "<0.01%".
fn percent(p: f64) -> String {
    if p == 0.0 {
        "0%".to_string()
    } else if p < 0.01 {
        "<0.01%".to_string()
    } else if p < 10.0 {
        let s = format!("{p:.2}");
        format!("{}%", s.trim_end_matches('0').trim_end_matches('.'))
    } else {
        format!("{p:.0}%")
    }
}

/// The human summary of a run (replay's, and live mode's at its stop), under `title`;
/// `max_flows` is the flow table's bound, named when flows were evicted.
pub(super) fn summary(
    title: &str,
    max_flows: usize,
    result: &ReplayResult,
    report: &Report,
    rules: &dnatsim::rules::Rules,
) -> String {
    let c = &result.counters;
    let mut s = String::new();
    let _ = writeln!(s, "{title}");
    packet_lines(&mut s, c, report);
    flow_lines(&mut s, &result.flows, max_flows);
    notes(&mut s, c);
    if let Some(bw) = &result.bandwidth {
        bandwidth_lines(&mut s, bw);
    }
    let _ = writeln!(s);
    s.push_str(&entry_table(c, rules));
    s
}

/// Packets in and out, and what happened to them: translated, passed, dropped by reason.
fn packet_lines(s: &mut String, c: &Counters, report: &Report) {
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
}

/// The flow table's figures, and a note when it was full.
fn flow_lines(s: &mut String, f: &FlowStats, max_flows: usize) {
    let _ = writeln!(
        s,
        "flows: {} created, {} expired, {} evicted (at most {} at once)",
        n(f.created),
        n(f.expired),
        n(f.evicted),
        n(f.peak)
    );
    if f.evicted > 0 {
        let _ = writeln!(
            s,
            "note: the flow table was full: {} flows were evicted before their time (--max-flows {}); a larger --max-flows keeps them",
            n(f.evicted),
            n(max_flows as u64)
        );
    }
}

/// Notes on packets translated as they came although something about them was off.
fn notes(s: &mut String, c: &Counters) {
    if c.bad_l4_checksum_in > 0 {
        let _ = writeln!(
            s,
            "note: {} translated {} a wrong TCP/UDP checksum on input; it stays wrong by the same amount",
            n(c.bad_l4_checksum_in),
            super::table::noun(c.bad_l4_checksum_in, "packet had", "packets had")
        );
    }
    if c.snapped > 0 {
        let _ = writeln!(
            s,
            "note: {} {}",
            n(c.snapped),
            super::table::noun(
                c.snapped,
                "packet was cut by the capture's snap length; its headers were translated",
                "packets were cut by the capture's snap length; their headers were translated"
            )
        );
    }
    if c.fragments_held > 0 {
        let _ = writeln!(
            s,
            "note: {} {}",
            n(c.fragments_held),
            super::table::noun(
                c.fragments_held,
                "fragment arrived before its first fragment and was held",
                "fragments arrived before their first fragment and were held"
            )
        );
    }
}

/// The bandwidth package's settings and, per direction, its peaks and drops.
fn bandwidth_lines(s: &mut String, bw: &BandwidthStats) {
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
        // A carried peak above the rate is the bucket's burst passing at once, not a leak.
        let burst = if t.peak_carried_bps > cfg.rate_bps {
            format!(" (burst {} bytes)", n(cfg.burst_bytes))
        } else {
            String::new()
        };
        let packet_share = if t.offered_packets == 0 {
            0.0
        } else {
            t.dropped_packets as f64 * 100.0 / t.offered_packets as f64
        };
        let mut line = format!(
            "  {name:<8} peak offered {}, peak carried {}{burst}, dropped {:.2}% of bits ({} packets, {})",
            super::check::format_rate(t.peak_offered_bps),
            super::check::format_rate(t.peak_carried_bps),
            t.drop_share * 100.0,
            n(t.dropped_packets),
            percent(packet_share),
        );
        if let Some(w) = t.worst_queue_delay_ns {
            line.push_str(&format!(", worst queue delay {:.3} ms", w as f64 / 1e6));
        }
        let _ = writeln!(s, "{line}");
    }
}

/// The forward entries in table order, each with its packets, bytes and flows.
fn entry_table(c: &Counters, rules: &dnatsim::rules::Rules) -> String {
    let mut header: Vec<&str> = ENTRY_HEADER.to_vec();
    header.extend(["Packets", "Bytes", "Flows"]);
    let rows: Vec<Vec<String>> = rules
        .table_order()
        .into_iter()
        .map(|(idx, e)| {
            let counts = c.entries.get(idx).copied().unwrap_or_default();
            let mut row = entry_cells(e);
            row.extend([n(counts.packets), n(counts.bytes), n(counts.flows)]);
            row
        })
        .collect();
    render(&header, &rows, &[6, 7, 8])
}
