//! The self-contained HTML report of `replay --html` and `diff --html`: one file, CSS,
//! JavaScript and SVG inline, nothing fetched when it is opened, so it can be attached to a
//! ticket and read offline.
//!
//! Everything that comes from an input (ids, names, file names, tuples) is escaped on the way
//! in; the JavaScript only reads `data-` attributes and text, and never builds markup.

use super::{DropReason, Report, trace};
use crate::bandwidth::BandwidthStats;
use crate::nat::{ForwardTable, Outcome, Verdict};
use crate::pipeline::Observer;
use crate::review::{FlowDiff, TableDiff};
use std::fmt::Write as _;

/// The packet table's default size (`--html-packets`).
pub const DEFAULT_PACKETS: usize = 2_000;

/// Text escaped for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// One line of the packet table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketRow {
    /// Record number.
    pub record: u64,
    /// "tcp 198.51.100.7:51000 > 203.0.113.79:443".
    pub before: String,
    /// The same as it leaves ("" when dropped or unchanged).
    pub after: String,
    /// Entry id, or "".
    pub entry: String,
    /// "port mapping", "IP mapping", ... or "".
    pub kind: String,
    /// "inbound", "outbound", "passed", "dropped: no_rule", ...
    pub verdict: String,
}

/// An observer that keeps the first `cap` decided packets as table rows, and counts the rest.
pub struct PacketRows<'a> {
    table: &'a ForwardTable,
    cap: usize,
    /// The rows kept.
    pub rows: Vec<PacketRow>,
    /// Decided packets seen in all.
    pub total: u64,
}

impl<'a> PacketRows<'a> {
    /// Keeps at most `cap` rows.
    pub fn new(table: &'a ForwardTable, cap: usize) -> Self {
        PacketRows {
            table,
            cap,
            rows: Vec::new(),
            total: 0,
        }
    }
}

/// The verdict column's word for an outcome.
fn verdict_word(o: &Outcome, rate_limited: bool) -> String {
    let base = match o.verdict {
        Verdict::Inbound { .. } => "inbound".to_string(),
        Verdict::Outbound { .. } => "outbound".to_string(),
        Verdict::PassForeign | Verdict::PassNotIpv4 => "passed".to_string(),
        Verdict::Drop(r) => format!("dropped: {}", r.as_str()),
        Verdict::Held => "held".to_string(),
    };
    if rate_limited {
        "dropped: rate_limited".to_string()
    } else {
        base
    }
}

impl Observer for PacketRows<'_> {
    fn decided(&mut self, record: u64, o: &Outcome, _wire_len: u32, rate_limited: bool) {
        self.total += 1;
        if self.rows.len() >= self.cap {
            return;
        }
        let ipv4 = !(matches!(o.verdict, Verdict::PassNotIpv4)
            || o.before.proto == 0 && o.before.src == 0);
        let proto = trace::proto_name(o.before.proto);
        let (entry, kind, after) = match o.verdict {
            Verdict::Inbound { entry, kind } | Verdict::Outbound { entry, kind } => (
                self.table
                    .entries()
                    .get(entry as usize)
                    .map_or("?".to_string(), |e| e.id.clone()),
                kind.describe().to_string(),
                format!("{proto} {}", trace::tuple(&o.after)),
            ),
            _ => (String::new(), String::new(), String::new()),
        };
        self.rows.push(PacketRow {
            record,
            before: if ipv4 {
                format!("{proto} {}", trace::tuple(&o.before))
            } else {
                "(not IPv4)".to_string()
            },
            after,
            entry,
            kind,
            verdict: verdict_word(o, rate_limited),
        });
    }
}

/// Thousands separators: 1234567 -> "1,234,567".
fn n(v: u64) -> String {
    super::thousands(v)
}

const STYLE: &str = r#"
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 1200px; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 2px 8px; text-align: left; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.dropped td { color: #a00; }
.counters td:first-child { font-weight: 600; }
.note { color: #555; font-size: 0.9em; }
.controls { margin: 0.5em 0; display: flex; gap: 1em; align-items: center; flex-wrap: wrap; }
svg text { font-family: system-ui, sans-serif; }
.old { background: #fff3f3; } .new { background: #f1fff1; }
"#;

/// Filters the table `table` by the selects and the search box of its controls; the count of
/// rows shown goes into `count`. Reads only data attributes and text.
const SCRIPT: &str = r#"
function dnatsimFilter(tableId) {
  var t = document.getElementById(tableId);
  if (!t) return;
  var ctl = document.querySelectorAll('[data-filters="' + tableId + '"]');
  var wants = [];
  ctl.forEach(function (c) { wants.push([c.getAttribute('data-key'), c.value.toLowerCase()]); });
  var shown = 0;
  t.querySelectorAll('tbody tr').forEach(function (r) {
    var ok = wants.every(function (w) {
      if (w[1] === '') return true;
      if (w[0] === 'search') return r.textContent.toLowerCase().indexOf(w[1]) >= 0;
      return (r.getAttribute('data-' + w[0]) || '').toLowerCase() === w[1];
    });
    r.style.display = ok ? '' : 'none';
    if (ok) shown++;
  });
  var c = document.getElementById(tableId + '-count');
  if (c) c.textContent = String(shown);
}
document.querySelectorAll('[data-filters]').forEach(function (c) {
  c.addEventListener(c.tagName === 'SELECT' ? 'change' : 'input', function () {
    dnatsimFilter(c.getAttribute('data-filters'));
  });
});
document.querySelectorAll('table[data-filterable]').forEach(function (t) { dnatsimFilter(t.id); });
"#;

fn head(title: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n",
        escape(title)
    )
}

fn tail() -> String {
    format!("<script>{SCRIPT}</script>\n</body>\n</html>\n")
}

/// A `<select>` filter over `values` for the rows' `data-KEY`.
fn select(table: &str, key: &str, label: &str, values: &[String]) -> String {
    let mut s = format!(
        "<label>{} <select data-filters=\"{}\" data-key=\"{}\" id=\"{}-{}\"><option value=\"\">all</option>",
        escape(label),
        escape(table),
        escape(key),
        escape(table),
        escape(key)
    );
    for v in values {
        let _ = write!(s, "<option value=\"{0}\">{0}</option>", escape(v));
    }
    s.push_str("</select></label>");
    s
}

fn search(table: &str) -> String {
    format!(
        "<label>search <input type=\"search\" data-filters=\"{0}\" data-key=\"search\" id=\"{0}-search\" placeholder=\"address, port, id...\"></label>",
        escape(table)
    )
}

/// Distinct values in first-seen order.
fn distinct<'a>(it: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for x in it {
        if !x.is_empty() && !v.iter().any(|y| y == x) {
            v.push(x.to_string());
        }
    }
    v
}

/// The gateway as a picture: EIPs -> entries -> servers, edges labelled and sized by packets,
/// EIPs without an entry marked, and the drops by reason in a box of their own.
fn gateway_svg(report: &Report, table: &ForwardTable) -> String {
    let entries = &report.entries;
    let eips: Vec<&str> = report.eips.iter().map(|e| e.ip.as_str()).collect();
    let servers = distinct(entries.iter().map(|e| e.internal_ip.as_str()));
    let rows = eips.len().max(entries.len()).max(servers.len()).max(1);
    let row_h = 56;
    let height = rows * row_h + 80;
    let (x_eip, x_entry, x_srv) = (20, 330, 700);
    let (w_eip, w_entry, w_srv) = (200, 260, 170);
    let max_packets = entries.iter().map(|e| e.packets).max().unwrap_or(0).max(1);
    let width_of = |p: u64| 1.0 + 9.0 * (p as f64).sqrt() / (max_packets as f64).sqrt();
    let y = |i: usize, count: usize| {
        // Centre each column's nodes vertically.
        let offset = (rows - count) * row_h / 2;
        40 + offset + i * row_h
    };
    let mut s = format!(
        "<svg id=\"gateway\" xmlns=\"http://www.w3.org/2000/svg\" width=\"1100\" height=\"{height}\" viewBox=\"0 0 1100 {height}\" role=\"img\" aria-label=\"the gateway: EIPs, entries, servers\">\n"
    );
    let _ = writeln!(
        s,
        "<text x=\"{x_eip}\" y=\"22\" font-weight=\"bold\">EIPs</text><text x=\"{x_entry}\" y=\"22\" font-weight=\"bold\">forward entries</text><text x=\"{x_srv}\" y=\"22\" font-weight=\"bold\">servers</text>"
    );
    // Edges first, so that the nodes cover their ends.
    for (k, e) in entries.iter().enumerate() {
        let ye = y(k, entries.len()) + 20;
        if let Some(i) = eips.iter().position(|ip| *ip == e.external_ip) {
            let yi = y(i, eips.len()) + 20;
            let _ = writeln!(
                s,
                "<path class=\"edge\" d=\"M{} {yi} C{} {yi} {} {ye} {x_entry} {ye}\" stroke=\"#4a7ab5\" stroke-opacity=\"0.6\" fill=\"none\" stroke-width=\"{:.1}\"><title>{} packets, {} bytes</title></path>",
                x_eip + w_eip,
                x_eip + w_eip + 60,
                x_entry - 60,
                width_of(e.packets),
                n(e.packets),
                n(e.bytes)
            );
        }
        if let Some(j) = servers.iter().position(|ip| *ip == e.internal_ip) {
            let yj = y(j, servers.len()) + 20;
            let x0 = x_entry + w_entry;
            let _ = writeln!(
                s,
                "<path class=\"edge\" d=\"M{x0} {ye} C{} {ye} {} {yj} {x_srv} {yj}\" stroke=\"#4a7ab5\" stroke-opacity=\"0.6\" fill=\"none\" stroke-width=\"{:.1}\"><title>{} packets, {} bytes</title></path>",
                x0 + 60,
                x_srv - 60,
                width_of(e.packets),
                n(e.packets),
                n(e.bytes)
            );
            let _ = writeln!(
                s,
                "<text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#335\">{} pkts</text>",
                x0 + 8,
                ye - 6,
                n(e.packets)
            );
        }
    }
    for (i, eip) in report.eips.iter().enumerate() {
        let yi = y(i, eips.len());
        let unused = !entries.iter().any(|e| e.external_ip == eip.ip);
        let (fill, note) = if unused {
            (
                "#f4f4f4",
                "no entry: all its traffic is dropped (no_rule)".to_string(),
            )
        } else {
            ("#e8f0fb", format!("{} packets", n(eip.packets)))
        };
        let _ = writeln!(
            s,
            "<g class=\"eip-node{}\" data-eip=\"{}\"><rect x=\"{x_eip}\" y=\"{yi}\" width=\"{w_eip}\" height=\"40\" rx=\"6\" fill=\"{fill}\" stroke=\"#557\"{}/><text x=\"{}\" y=\"{}\" font-size=\"14\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text></g>",
            if unused { " unused" } else { "" },
            escape(&eip.ip),
            if unused {
                " stroke-dasharray=\"4 3\""
            } else {
                ""
            },
            x_eip + 8,
            yi + 17,
            escape(&eip.ip),
            x_eip + 8,
            yi + 33,
            escape(&note)
        );
    }
    for (k, e) in entries.iter().enumerate() {
        let ye = y(k, entries.len());
        let what = if e.ip_protocol == "any" {
            "any (IP mapping)".to_string()
        } else {
            format!(
                "{}/{} -> {}",
                e.ip_protocol, e.external_port, e.internal_port
            )
        };
        let _ = writeln!(
            s,
            "<g class=\"entry-node\" data-entry=\"{}\"><rect x=\"{x_entry}\" y=\"{ye}\" width=\"{w_entry}\" height=\"40\" rx=\"6\" fill=\"#fff8e6\" stroke=\"#a87\"/><text x=\"{}\" y=\"{}\" font-size=\"13\">{}</text><text x=\"{}\" y=\"{}\" font-size=\"11\" fill=\"#555\">{}</text></g>",
            escape(&e.id),
            x_entry + 8,
            ye + 16,
            escape(&e.id),
            x_entry + 8,
            ye + 32,
            escape(&what)
        );
    }
    for (j, srv) in servers.iter().enumerate() {
        let yj = y(j, servers.len());
        let _ = writeln!(
            s,
            "<g class=\"server-node\"><rect x=\"{x_srv}\" y=\"{yj}\" width=\"{w_srv}\" height=\"40\" rx=\"6\" fill=\"#eef8ee\" stroke=\"#575\"/><text x=\"{}\" y=\"{}\" font-size=\"14\">{}</text></g>",
            x_srv + 8,
            yj + 25,
            escape(srv)
        );
    }
    // Drops by reason, beside the servers.
    let x_drop = 900;
    let _ = writeln!(
        s,
        "<g class=\"drops\"><text x=\"{x_drop}\" y=\"22\" font-weight=\"bold\">dropped</text>"
    );
    let mut yd = 40;
    for r in DropReason::ALL {
        let count = report.dropped.get(r.as_str()).copied().unwrap_or(0);
        if count == 0 {
            continue;
        }
        let _ = writeln!(
            s,
            "<g class=\"drop-node\" data-reason=\"{0}\"><rect x=\"{x_drop}\" y=\"{yd}\" width=\"180\" height=\"30\" rx=\"5\" fill=\"#fdecec\" stroke=\"#a55\"/><text x=\"{1}\" y=\"{2}\" font-size=\"12\">{0}: {3}</text></g>",
            escape(r.as_str()),
            x_drop + 8,
            yd + 19,
            n(count)
        );
        yd += 38;
    }
    s.push_str("</g>\n");
    let _ = table;
    s.push_str("</svg>\n");
    s
}

fn counters_table(r: &Report) -> String {
    let mut s = String::from("<table class=\"counters\" id=\"counters\"><tbody>\n");
    let mut row = |k: &str, v: u64, id: &str| {
        let _ = writeln!(
            s,
            "<tr><td>{}</td><td class=\"num\" id=\"{}\">{}</td></tr>",
            escape(k),
            escape(id),
            n(v)
        );
    };
    row("packets in", r.packets_in, "count-packets-in");
    row("bytes in", r.bytes_in, "count-bytes-in");
    row("packets out", r.packets_out, "count-packets-out");
    row("translated inbound", r.translated.inbound, "count-inbound");
    row(
        "translated outbound",
        r.translated.outbound,
        "count-outbound",
    );
    row("passed unchanged", r.passed_unchanged, "count-passed");
    let total: u64 = r.dropped.values().sum();
    row("dropped", total, "count-dropped");
    for reason in DropReason::ALL {
        let v = r.dropped.get(reason.as_str()).copied().unwrap_or(0);
        if v > 0 {
            row(
                &format!("  dropped: {}", reason.as_str()),
                v,
                &format!("count-dropped-{}", reason.as_str()),
            );
        }
    }
    row("flows created", r.flows.created, "count-flows");
    s.push_str("</tbody></table>\n");
    s
}

fn entry_table(r: &Report) -> String {
    let mut s = String::from(
        "<table id=\"entries\"><thead><tr><th>id</th><th>external</th><th>protocol</th><th>internal</th><th class=\"num\">packets</th><th class=\"num\">bytes</th><th class=\"num\">flows</th><th class=\"num\">rate limited</th></tr></thead><tbody>\n",
    );
    for e in &r.entries {
        let _ = writeln!(
            s,
            "<tr data-entry=\"{}\"><td>{}</td><td>{}:{}</td><td>{}</td><td>{}:{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            escape(&e.id),
            escape(&e.id),
            escape(&e.external_ip),
            escape(&e.external_port),
            escape(&e.ip_protocol),
            escape(&e.internal_ip),
            escape(&e.internal_port),
            n(e.packets),
            n(e.bytes),
            n(e.flows),
            n(e.rate_limited)
        );
    }
    s.push_str("</tbody></table>\n");
    s
}

fn packet_table(rows: &PacketRows<'_>) -> String {
    let mut s = String::new();
    let entries = distinct(rows.rows.iter().map(|r| r.entry.as_str()));
    let verdicts = distinct(rows.rows.iter().map(|r| r.verdict.as_str()));
    let _ = writeln!(
        s,
        "<div class=\"controls\">{}{}{}<span><span id=\"packets-count\">{}</span> of {} rows shown</span></div>",
        select("packets", "entry", "entry", &entries),
        select("packets", "verdict", "verdict", &verdicts),
        search("packets"),
        rows.rows.len(),
        n(rows.rows.len() as u64)
    );
    if rows.total > rows.rows.len() as u64 {
        let _ = writeln!(
            s,
            "<p class=\"note\" id=\"packets-left-out\">The table holds the first {} of {} packets; {} are left out (--html-packets N keeps more).</p>",
            n(rows.rows.len() as u64),
            n(rows.total),
            n(rows.total - rows.rows.len() as u64)
        );
    }
    s.push_str("<table id=\"packets\" data-filterable=\"1\"><thead><tr><th class=\"num\">#</th><th>before</th><th>after</th><th>entry</th><th>match</th><th>verdict</th></tr></thead><tbody>\n");
    for r in &rows.rows {
        let class = if r.verdict.starts_with("dropped") {
            " class=\"dropped\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<tr{class} data-entry=\"{}\" data-verdict=\"{}\"><td class=\"num\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            escape(&r.entry),
            escape(&r.verdict),
            r.record,
            escape(&r.before),
            escape(&r.after),
            escape(&r.entry),
            escape(&r.kind),
            escape(&r.verdict)
        );
    }
    s.push_str("</tbody></table>\n");
    s
}

/// The bandwidth section: the `--plot` SVG inline, or why there is none.
fn bandwidth_section(bw: Option<&BandwidthStats>) -> String {
    let mut s = String::from("<h2>Bandwidth package</h2>\n");
    match bw.map(|b| crate::bandwidth::svg_string(b, "the HTML report's plot")) {
        Some(Ok(svg)) => {
            // The SVG backend writes no XML declaration, but be sure: it may not appear inline.
            let svg = match svg.find("<svg") {
                Some(i) => &svg[i..],
                None => svg.as_str(),
            };
            let _ = writeln!(s, "<div id=\"bandwidth-plot\">{svg}</div>");
        }
        Some(Err(e)) => {
            let _ = writeln!(
                s,
                "<p class=\"note\">The plot could not be drawn: {}</p>",
                escape(&e.to_string())
            );
        }
        None => {
            s.push_str("<p class=\"note\">No bandwidth package was applied (--no-bandwidth).</p>\n")
        }
    }
    s
}

/// The whole report of a replay.
pub fn replay_html(
    report: &Report,
    table: &ForwardTable,
    bandwidth: Option<&BandwidthStats>,
    rows: &PacketRows<'_>,
) -> String {
    let title = format!("dnatsim replay: {}", report.input);
    let mut s = head(&title);
    let _ = writeln!(
        s,
        "<h1>{}</h1>\n<p class=\"note\">rules {} &middot; written by dnatsim {}; this file is self-contained and fetches nothing.</p>",
        escape(&title),
        escape(&report.rules),
        env!("CARGO_PKG_VERSION")
    );
    s.push_str("<h2>The gateway</h2>\n<p class=\"note\">Edges are sized by the packets each entry translated (both directions); hover an edge for bytes. A dashed EIP has no entry.</p>\n");
    s.push_str(&gateway_svg(report, table));
    s.push_str("<h2>Counters</h2>\n");
    s.push_str(&counters_table(report));
    s.push_str("<h2>Entries</h2>\n");
    s.push_str(&entry_table(report));
    if !report.warnings.is_empty() {
        s.push_str("<h2>Warnings</h2>\n<ul>\n");
        for w in &report.warnings {
            let _ = writeln!(s, "<li>{}</li>", escape(w));
        }
        s.push_str("</ul>\n");
    }
    s.push_str(&bandwidth_section(bandwidth));
    s.push_str("<h2>Packets</h2>\n");
    s.push_str(&packet_table(rows));
    s.push_str(&tail());
    s
}

/// The whole report of a diff: the table diff, and the changed flows side by side (at most
/// `max_flows` of them).
pub fn diff_html(
    old_name: &str,
    new_name: &str,
    t: &TableDiff,
    traffic: Option<(&str, &FlowDiff)>,
    max_flows: usize,
) -> String {
    let title = format!("dnatsim diff: {old_name} -> {new_name}");
    let mut s = head(&title);
    let _ = writeln!(s, "<h1>{}</h1>", escape(&title));
    s.push_str("<h2>The table</h2>\n<table id=\"table-diff\"><thead><tr><th>change</th><th class=\"old\">old</th><th class=\"new\">new</th></tr></thead><tbody>\n");
    let view = |v: &crate::review::EntryView, file: &str| {
        format!(
            "{} {} ({}:{})",
            escape(&v.id),
            escape(&v.text),
            escape(file),
            v.line
        )
    };
    for e in &t.removed {
        let _ = writeln!(
            s,
            "<tr><td>removed</td><td class=\"old\">{}</td><td class=\"new\"></td></tr>",
            view(e, old_name)
        );
    }
    for e in &t.added {
        let _ = writeln!(
            s,
            "<tr><td>added</td><td class=\"old\"></td><td class=\"new\">{}</td></tr>",
            view(e, new_name)
        );
    }
    for c in &t.changed {
        let _ = writeln!(
            s,
            "<tr><td>changed</td><td class=\"old\">{}</td><td class=\"new\">{}</td></tr>",
            view(&c.old, old_name),
            view(&c.new, new_name)
        );
    }
    for ip in &t.eips_removed {
        let _ = writeln!(
            s,
            "<tr><td>EIP removed</td><td class=\"old\">{ip}</td><td class=\"new\"></td></tr>"
        );
    }
    for ip in &t.eips_added {
        let _ = writeln!(
            s,
            "<tr><td>EIP added</td><td class=\"old\"></td><td class=\"new\">{ip}</td></tr>"
        );
    }
    for b in &t.bandwidth {
        let _ = writeln!(
            s,
            "<tr><td>bandwidth_package.{}</td><td class=\"old\">{}</td><td class=\"new\">{}</td></tr>",
            escape(b.field),
            escape(&b.old),
            escape(&b.new)
        );
    }
    s.push_str("</tbody></table>\n");
    if t.is_empty() {
        s.push_str("<p>No difference in the table.</p>\n");
    }
    for w in &t.warnings {
        let _ = writeln!(s, "<p class=\"note\">warning: {}</p>", escape(w));
    }
    if let Some((capture, d)) = traffic {
        let _ = writeln!(
            s,
            "<h2>The traffic</h2>\n<p id=\"traffic-summary\">{}: {} packets; <span id=\"changed-packets\">{}</span> packets in <span id=\"changed-flows\">{}</span> flows changed; {} flows unchanged.</p>",
            escape(capture),
            n(d.packets),
            n(d.changed_packets),
            n(d.changed.len() as u64),
            n(d.unchanged_flows)
        );
        let shown = d.changed.len().min(max_flows);
        let kinds = distinct(d.changed.iter().map(|f| f.kind.describe()));
        let _ = writeln!(
            s,
            "<div class=\"controls\">{}{}<span><span id=\"flows-count\">{shown}</span> of {shown} rows shown</span></div>",
            select("flows", "kind", "change", &kinds),
            search("flows")
        );
        if d.changed.len() > shown {
            let _ = writeln!(
                s,
                "<p class=\"note\">The table holds {} of {} changed flows; {} are left out (the JSON report has them all).</p>",
                n(shown as u64),
                n(d.changed.len() as u64),
                n((d.changed.len() - shown) as u64)
            );
        }
        s.push_str("<table id=\"flows\" data-filterable=\"1\"><thead><tr><th>change</th><th>flow</th><th class=\"num\">packets</th><th class=\"num\">bytes</th><th class=\"old\">old (first changed packet)</th><th class=\"new\">new</th></tr></thead><tbody>\n");
        for f in d.changed.iter().take(shown) {
            let _ = writeln!(
                s,
                "<tr data-kind=\"{0}\"><td>{0}</td><td>{1}</td><td class=\"num\">{2}</td><td class=\"num\">{3}</td><td class=\"old\">#{4} {5}</td><td class=\"new\">{6}</td></tr>",
                escape(f.kind.describe()),
                escape(&f.flow),
                n(f.packets),
                n(f.bytes),
                f.first_record,
                escape(&f.old),
                escape(&f.new)
            );
        }
        s.push_str("</tbody></table>\n<h2>Moved, by entry</h2>\n<table id=\"moves\"><thead><tr><th>from</th><th>to</th><th class=\"num\">packets</th><th class=\"num\">bytes</th></tr></thead><tbody>\n");
        for m in &d.moves {
            let _ = writeln!(
                s,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
                escape(&m.from),
                escape(&m.to),
                n(m.packets),
                n(m.bytes)
            );
        }
        s.push_str("</tbody></table>\n");
    }
    s.push_str(&tail());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape("<script>\"a\" & 'b'</script>"),
            "&lt;script&gt;&quot;a&quot; &amp; &#39;b&#39;&lt;/script&gt;"
        );
    }
}
