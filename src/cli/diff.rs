//! `dnatsim diff`: what an edit of the forward table changes, in the table and, given a
//! capture, in what happens to each flow.

use super::paths::{self, Files};
use super::table::{noun, render};
use anyhow::Context;
use clap::builder::RangedU64ValueParser;
use dnatsim::bandwidth::LimiterConfig;
use dnatsim::capture::CaptureReader;
use dnatsim::nat::{Config, ForwardTable};
use dnatsim::pipeline::{ReplayOptions, replay};
use dnatsim::review::{FlowDiff, Recorder, TableDiff, flow_diff, table_diff};
use dnatsim::rules::Rules;
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Compare two rules files: the entries, EIPs and bandwidth settings that differ and, given a
/// capture, what happens differently to its traffic, flow by flow (both tables replay the same
/// packets with the same options, one after the other).
///
/// Exit status as diff(1): 0 when the traffic is treated the same (without a capture: when the
/// tables are the same), 1 when something changes, 2 on trouble (unusable input, a wrong
/// command line).
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:\n  \
    dnatsim diff -r pcaps/seed/rules.toml -r pcaps/seed/edits/all.toml\n  \
    dnatsim diff -r old.toml -r new.toml pcaps/seed/capture.pcap --report diff.json\n  \
    dnatsim diff -r old.toml -r new.toml in.pcap --max-flows-shown 100 --html diff.html")]
pub struct Args {
    /// The rules files: the old one, then the new one (give `--rules` twice).
    #[arg(long, short = 'r', value_name = "RULES", required = true, num_args = 1)]
    rules: Vec<PathBuf>,
    /// A capture to replay through both tables (pcap or pcapng; read twice, so not `-`).
    #[arg(value_name = "CAPTURE")]
    capture: Option<PathBuf>,
    /// Write the differences as JSON here (`-` is standard output).
    #[arg(long, value_name = "FILE.json")]
    report: Option<PathBuf>,
    /// Write a self-contained HTML report here: the table diff and the changed flows with both
    /// outcomes side by side (at most 2,000 flows; the report has them all).
    #[arg(long, value_name = "FILE.html")]
    html: Option<PathBuf>,
    /// List at most this many changed flows (all of them go into the report).
    #[arg(long, value_name = "N", default_value_t = 20,
          value_parser = RangedU64ValueParser::<usize>::new())]
    max_flows_shown: usize,
    /// No summary and no warnings (the report and the exit status still tell).
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// The JSON report of `diff`.
#[derive(Debug, Serialize)]
struct DiffReport<'a> {
    old_rules: String,
    new_rules: String,
    capture: Option<String>,
    table: &'a TableDiff,
    traffic: Option<&'a FlowDiff>,
}

/// Runs `diff`; any failure is exit status 2, as in diff(1), since 1 means "different".
pub fn run(args: Args) -> anyhow::Result<i32> {
    match run_inner(args) {
        Ok(code) => Ok(code),
        Err(e) if e.downcast_ref::<super::Usage>().is_some() || super::is_broken_pipe(&e) => Err(e),
        Err(e) => {
            super::error(&super::describe(&e));
            Ok(2)
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<i32> {
    let [old_path, new_path] = args.rules.as_slice() else {
        return Err(super::usage(format!(
            "diff compares two rules files: give --rules twice (old, then new), not {} time{}",
            args.rules.len(),
            if args.rules.len() == 1 { "" } else { "s" }
        )));
    };
    if args.capture.as_deref().is_some_and(paths::is_std) {
        return Err(super::usage(
            "diff replays the capture twice, so it cannot read it from standard input; give a file",
        ));
    }
    let mut files = Files::new()
        .input("the old --rules", old_path)
        .input("the new --rules", new_path);
    if let Some(c) = &args.capture {
        files = files.input("the capture", c);
    }
    let files = files
        .output("--report", args.report.as_deref())
        .output("--html", args.html.as_deref());
    files.check()?;
    if args.report.as_deref().is_some_and(paths::is_std) {
        super::require_stdout("--report - writes the report")?;
    }
    if !files.writes_stdout() && !args.quiet {
        super::require_stdout("the differences")?;
    }
    let (old, _) = super::load_rules(old_path, args.quiet)?;
    let (new, _) = super::load_rules(new_path, args.quiet)?;
    let table = table_diff(&old, &new);
    let traffic = match &args.capture {
        Some(c) => Some(traffic_diff(c, &old, &new)?),
        None => None,
    };
    if let Some(path) = &args.report {
        let report = DiffReport {
            old_rules: old_path.display().to_string(),
            new_rules: new_path.display().to_string(),
            capture: args.capture.as_ref().map(|c| c.display().to_string()),
            table: &table,
            traffic: traffic.as_ref(),
        };
        super::write_json_report(path, &report)?;
    }
    if let Some(path) = &args.html {
        let capture = args.capture.as_ref().map(|c| c.display().to_string());
        let page = dnatsim::report::html::diff_html(
            &old_path.display().to_string(),
            &new_path.display().to_string(),
            &table,
            capture.as_deref().zip(traffic.as_ref()),
            dnatsim::report::html::DEFAULT_PACKETS,
        );
        super::write_text_output(Some(path), &page)?;
    }
    if !args.quiet {
        let text = summary(&args, old_path, new_path, &table, traffic.as_ref());
        if files.writes_stdout() {
            std::io::stderr().write_all(text.as_bytes())?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(text.as_bytes())?;
            out.flush()?;
        }
    }
    let changed = match &traffic {
        Some(t) => !t.is_empty(),
        None => !table.is_empty(),
    };
    Ok(i32::from(changed))
}

/// Replays `capture` through both tables, one run after the other, with replay's default
/// options (bandwidth package on, one thread so both runs see the same order), and compares
/// the fates of the same packets.
fn traffic_diff(capture: &Path, old: &Rules, new: &Rules) -> anyhow::Result<FlowDiff> {
    let old_table = ForwardTable::new(&old.forward_entries, &old.bandwidth_package.public_ips);
    let new_table = ForwardTable::new(&new.forward_entries, &new.bandwidth_package.public_ips);
    let old_fates = fates(capture, old, &old_table)?;
    let new_fates = fates(capture, new, &new_table)?;
    let mut eips = old.bandwidth_package.public_ips.clone();
    eips.extend(&new.bandwidth_package.public_ips);
    Ok(flow_diff(
        &old_fates, &new_fates, &old_table, &new_table, &eips,
    ))
}

fn fates(
    capture: &Path,
    rules: &Rules,
    table: &ForwardTable,
) -> anyhow::Result<Vec<Option<dnatsim::review::Fate>>> {
    let name = capture.display().to_string();
    let mut reader = CaptureReader::open(capture).with_context(|| name.clone())?;
    reader.set_lenient_snaplen(true);
    let options = ReplayOptions {
        translator: Config::default(),
        annotate: false,
        bandwidth: Some(LimiterConfig::resolve(
            &rules.bandwidth_package,
            100_000_000,
        )?),
        threads: 1,
    };
    let mut rec = Recorder::default();
    replay(&mut reader, None, table, &options, &mut rec)
        .with_context(|| format!("replaying {name}"))?;
    Ok(rec.fates)
}

/// Thousands separators: 1234567 -> "1,234,567".
fn n(v: u64) -> String {
    dnatsim::report::thousands(v)
}

fn summary(
    args: &Args,
    old_path: &Path,
    new_path: &Path,
    t: &TableDiff,
    traffic: Option<&FlowDiff>,
) -> String {
    let mut s = String::new();
    let (op, np) = (old_path.display(), new_path.display());
    let _ = writeln!(s, "--- {op}");
    let _ = writeln!(s, "+++ {np}");
    if t.is_empty() {
        let _ = writeln!(s, "table: no difference");
    }
    for e in &t.removed {
        let _ = writeln!(s, "- entry {} {} ({op}:{})", e.id, e.text, e.line);
    }
    for e in &t.added {
        let _ = writeln!(s, "+ entry {} {} ({np}:{})", e.id, e.text, e.line);
    }
    for c in &t.changed {
        let _ = writeln!(
            s,
            "~ entry {} {} ({op}:{})\n      now {} {} ({np}:{})",
            c.old.id, c.old.text, c.old.line, c.new.id, c.new.text, c.new.line
        );
    }
    for ip in &t.eips_removed {
        let _ = writeln!(s, "- EIP {ip} (bandwidth package)");
    }
    for ip in &t.eips_added {
        let _ = writeln!(s, "+ EIP {ip} (bandwidth package)");
    }
    for b in &t.bandwidth {
        let _ = writeln!(s, "~ bandwidth_package.{}: {} -> {}", b.field, b.old, b.new);
    }
    for w in &t.warnings {
        let _ = writeln!(s, "warning: {w}");
    }
    let Some(d) = traffic else {
        return s;
    };
    let capture = args
        .capture
        .as_ref()
        .map_or(String::new(), |c| c.display().to_string());
    let flows = d.changed.len() as u64;
    let _ = writeln!(
        s,
        "\ntraffic ({capture}, {} packets): {} {} in {} {} changed; {} {} unchanged",
        n(d.packets),
        n(d.changed_packets),
        noun(d.changed_packets, "packet", "packets"),
        n(flows),
        noun(flows, "flow", "flows"),
        n(d.unchanged_flows),
        noun(d.unchanged_flows, "flow", "flows"),
    );
    if d.changed.is_empty() {
        return s;
    }
    let kinds: Vec<String> = d
        .by_kind
        .iter()
        .map(|(k, v)| format!("{k} {}", n(*v)))
        .collect();
    let _ = writeln!(s, "  flows: {}", kinds.join(", "));
    let _ = writeln!(s);
    for f in d.changed.iter().take(args.max_flows_shown) {
        let _ = writeln!(
            s,
            "{}: {}  ({} {}, {} bytes; {} unchanged; first #{})",
            f.kind.describe(),
            f.flow,
            n(f.packets),
            noun(f.packets, "packet", "packets"),
            n(f.bytes),
            n(f.unchanged_packets),
            f.first_record
        );
        let _ = writeln!(s, "    old: {}", f.old);
        let _ = writeln!(s, "    new: {}", f.new);
    }
    if d.changed.len() > args.max_flows_shown {
        let rest = (d.changed.len() - args.max_flows_shown) as u64;
        let _ = writeln!(
            s,
            "... and {} more changed {} (--max-flows-shown N lists more; --report has them all)",
            n(rest),
            noun(rest, "flow", "flows")
        );
    }
    let _ = writeln!(s);
    let rows: Vec<Vec<String>> = d
        .moves
        .iter()
        .map(|m| vec![m.from.clone(), m.to.clone(), n(m.packets), n(m.bytes)])
        .collect();
    s.push_str(&render(&["From", "To", "Packets", "Bytes"], &rows, &[2, 3]));
    s
}
