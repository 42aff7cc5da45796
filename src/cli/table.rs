//! The tutorial's table layout, shared by `check` and the replay summary.

use dnatsim::rules::{ForwardEntry, PortSpec, Protocol};

/// The API's capitalised spelling ("Any", "TCP"), as in the tutorial's table.
pub fn proto_cell(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "TCP",
        Protocol::Udp => "UDP",
        Protocol::Any => "Any",
    }
}

/// The singular or the plural words for a count: "1 public IP", "2 public IPs".
pub fn noun<'a>(count: u64, one: &'a str, many: &'a str) -> &'a str {
    if count == 1 { one } else { many }
}

/// "Any", "80" or "8000/8010".
pub fn port_cell(p: PortSpec) -> String {
    match p {
        PortSpec::Any => "Any".to_string(),
        other => other.to_string(),
    }
}

/// The five columns of the tutorial's table plus the entry id, for one entry.
pub fn entry_cells(e: &ForwardEntry) -> Vec<String> {
    vec![
        e.external_ip.to_string(),
        port_cell(e.external_port),
        e.internal_ip.to_string(),
        port_cell(e.internal_port),
        proto_cell(e.ip_protocol).to_string(),
        e.id.clone(),
    ]
}

/// The header matching [`entry_cells`].
pub const ENTRY_HEADER: [&str; 6] = [
    "Public IP address",
    "Public port",
    "Private IP address",
    "Private port",
    "Protocol",
    "Entry",
];

/// Renders rows as a left-aligned text table with a rule under the header; columns listed in
/// `right` are right-aligned (numbers).
pub fn render(header: &[&str], rows: &[Vec<String>], right: &[usize]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: &[String], out: &mut String| {
        let mut parts = Vec::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if right.contains(&i) {
                parts.push(format!("{c:>w$}"));
            } else {
                parts.push(format!("{c:<w$}"));
            }
        }
        out.push_str(parts.join("  ").trim_end());
        out.push('\n');
    };
    let head: Vec<String> = header.iter().map(|s| s.to_string()).collect();
    line(&head, &mut out);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, &mut out);
    for r in rows {
        line(r, &mut out);
    }
    out
}
