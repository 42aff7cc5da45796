//! Counters of a run, the JSON report and the human summary.

pub mod html;
pub mod trace;

pub use crate::nat::DropReason;
use crate::nat::{FlowStats, ForwardTable, Outcome, Verdict};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// Per-entry traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EntryCounters {
    /// Packets translated by the entry (both directions).
    pub packets: u64,
    /// Their bytes (frame lengths on the wire).
    pub bytes: u64,
    /// Flows the entry created.
    pub flows: u64,
    /// Its packets the bandwidth package dropped.
    pub rate_limited: u64,
}

/// Everything counted in a run; updated per packet without allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records read.
    pub packets_in: u64,
    /// Their wire bytes.
    pub bytes_in: u64,
    /// Records written (or that would be written without `-o`).
    pub packets_out: u64,
    /// Their wire bytes.
    pub bytes_out: u64,
    /// Translated toward a server.
    pub inbound: u64,
    /// Translated from a server.
    pub outbound: u64,
    /// Passed without change: not IPv4.
    pub passed_not_ipv4: u64,
    /// Passed without change: IPv4 not concerning the gateway.
    pub passed_foreign: u64,
    /// Dropped, indexed like [`DropReason::ALL`].
    pub dropped: [u64; DropReason::ALL.len()],
    /// Translated packets whose TCP/UDP checksum was already wrong on input (kept wrong).
    pub bad_l4_checksum_in: u64,
    /// Packets cut by the capture's snap length (translated from their headers).
    pub snapped: u64,
    /// Fragments held until their first fragment arrived.
    pub fragments_held: u64,
    /// Per entry, indexed like the forward table.
    pub entries: Vec<EntryCounters>,
}

impl Counters {
    /// Counters for a table of `entries` entries.
    pub fn new(entries: usize) -> Counters {
        Counters {
            entries: vec![EntryCounters::default(); entries],
            ..Counters::default()
        }
    }

    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.dropped[reason as usize] += 1;
    }

    /// Drops by reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}

impl Counters {
    /// Counts a packet's translation outcome (not its output: see [`Counters::count_out`]).
    #[inline]
    pub fn count(&mut self, outcome: &Outcome, wire_len: u32) {
        let n = &mut self.entries;
        let mut per_entry = |entry: u32| {
            if let Some(c) = n.get_mut(entry as usize) {
                c.packets += 1;
                c.bytes += u64::from(wire_len);
                c.flows += u64::from(outcome.notes.new_flow);
            }
        };
        match outcome.verdict {
            Verdict::Inbound { entry, .. } => {
                self.inbound += 1;
                per_entry(entry);
            }
            Verdict::Outbound { entry, .. } => {
                self.outbound += 1;
                per_entry(entry);
            }
            Verdict::PassNotIpv4 => self.passed_not_ipv4 += 1,
            Verdict::PassForeign => self.passed_foreign += 1,
            Verdict::Drop(r) => self.drop(r),
            Verdict::Held => self.fragments_held += 1,
        }
        self.bad_l4_checksum_in += u64::from(outcome.notes.bad_l4_checksum_in);
        self.snapped += u64::from(outcome.notes.snapped);
    }

    /// Counts a translated packet that the bandwidth package then dropped.
    #[inline]
    pub fn rate_limited(&mut self, outcome: &Outcome) {
        self.drop(DropReason::RateLimited);
        if let Verdict::Inbound { entry, .. } | Verdict::Outbound { entry, .. } = outcome.verdict
            && let Some(c) = self.entries.get_mut(entry as usize)
        {
            c.rate_limited += 1;
        }
    }

    /// Counts a packet that came out.
    #[inline]
    pub fn count_out(&mut self, wire_len: u32) {
        self.packets_out += 1;
        self.bytes_out += u64::from(wire_len);
    }
}

/// Translated packets by direction.
#[derive(Debug, Clone, Serialize)]
pub struct Translated {
    /// Toward servers.
    pub inbound: u64,
    /// From servers.
    pub outbound: u64,
}

/// One entry's line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct EntryReport {
    /// Entry id.
    pub id: String,
    /// Public IP.
    pub external_ip: String,
    /// Public port ("any", "80", "8000/8010").
    pub external_port: String,
    /// "tcp", "udp" or "any".
    pub ip_protocol: String,
    /// Private IP.
    pub internal_ip: String,
    /// Private port.
    pub internal_port: String,
    /// Packets translated by it.
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Flows it created.
    pub flows: u64,
    /// Its packets dropped by the bandwidth package.
    pub rate_limited: u64,
}

/// One EIP's line of the report: the sum of its entries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EipReport {
    /// The public IP.
    pub ip: String,
    /// Packets translated by its entries (both directions).
    pub packets: u64,
    /// Their wire bytes.
    pub bytes: u64,
    /// Its entries' packets dropped by the bandwidth package.
    pub rate_limited: u64,
}

/// Sums the per-entry counters per external IP: the package's EIPs in their order (those
/// without entries with zeros), then any entry IP outside the package (only `permissive`
/// rules can have one), so the EIP lines always add up to the entry lines.
pub fn eip_reports(
    public_ips: &[Ipv4Addr],
    table: &ForwardTable,
    entries: &[EntryCounters],
) -> Vec<EipReport> {
    let mut ips: Vec<Ipv4Addr> = public_ips.to_vec();
    for e in table.entries() {
        if !ips.contains(&e.external_ip) {
            ips.push(e.external_ip);
        }
    }
    ips.iter()
        .map(|&ip| {
            let mut line = EipReport {
                ip: ip.to_string(),
                packets: 0,
                bytes: 0,
                rate_limited: 0,
            };
            // Each entry has exactly one external IP, so every entry lands in one line.
            for (e, n) in table.entries().iter().zip(entries) {
                if e.external_ip == ip {
                    line.packets += n.packets;
                    line.bytes += n.bytes;
                    line.rate_limited += n.rate_limited;
                }
            }
            line
        })
        .collect()
}

/// Flow-table figures of the run.
#[derive(Debug, Clone, Serialize)]
pub struct FlowReport {
    /// Bindings created.
    pub created: u64,
    /// Removed after their idle timeout.
    pub expired: u64,
    /// Removed early because the table was full.
    pub evicted: u64,
    /// Most alive at once.
    pub peak: u64,
}

/// The JSON report of a replay (`--report FILE.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The capture read.
    pub input: String,
    /// The rules file.
    pub rules: String,
    /// Records read.
    pub packets_in: u64,
    /// Their wire bytes.
    pub bytes_in: u64,
    /// Records out.
    pub packets_out: u64,
    /// Their wire bytes.
    pub bytes_out: u64,
    /// Translated by direction.
    pub translated: Translated,
    /// Passed without change (not IPv4 plus foreign).
    pub passed_unchanged: u64,
    /// Of those, not IPv4.
    pub passed_not_ipv4: u64,
    /// Of those, IPv4 that concerns no EIP or mapped server.
    pub passed_foreign: u64,
    /// Drops by reason; every reason is listed, zeros included.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Translated packets whose TCP/UDP checksum was already wrong on input.
    pub bad_l4_checksum_in: u64,
    /// Packets cut by the capture's snap length.
    pub snapped: u64,
    /// Fragments held until their first fragment came.
    pub fragments_held: u64,
    /// Flow table.
    pub flows: FlowReport,
    /// Per entry, in the rules file's order.
    pub entries: Vec<EntryReport>,
    /// Per EIP (the sum of its entries), in the bandwidth package's order.
    pub eips: Vec<EipReport>,
    /// Warnings about the input (e.g. a cut-off last record).
    pub warnings: Vec<String>,
    /// The bandwidth package's effect, when the run applied one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<serde_json::Value>,
}

impl Report {
    /// Assembles the report of a finished run; `public_ips` are the bandwidth package's EIPs.
    pub fn new(
        input: String,
        rules: String,
        c: &Counters,
        table: &ForwardTable,
        public_ips: &[Ipv4Addr],
        flows: FlowStats,
        warnings: Vec<String>,
    ) -> Report {
        let entries = table
            .entries()
            .iter()
            .zip(&c.entries)
            .map(|(e, n)| EntryReport {
                id: e.id.clone(),
                external_ip: e.external_ip.to_string(),
                external_port: e.external_port.to_string(),
                ip_protocol: e.ip_protocol.to_string(),
                internal_ip: e.internal_ip.to_string(),
                internal_port: e.internal_port.to_string(),
                packets: n.packets,
                bytes: n.bytes,
                flows: n.flows,
                rate_limited: n.rate_limited,
            })
            .collect();
        Report {
            input,
            rules,
            packets_in: c.packets_in,
            bytes_in: c.bytes_in,
            packets_out: c.packets_out,
            bytes_out: c.bytes_out,
            translated: Translated {
                inbound: c.inbound,
                outbound: c.outbound,
            },
            passed_unchanged: c.passed_not_ipv4 + c.passed_foreign,
            passed_not_ipv4: c.passed_not_ipv4,
            passed_foreign: c.passed_foreign,
            dropped: DropReason::ALL
                .iter()
                .map(|&r| (r.as_str(), c.dropped(r)))
                .collect(),
            bad_l4_checksum_in: c.bad_l4_checksum_in,
            snapped: c.snapped,
            fragments_held: c.fragments_held,
            flows: FlowReport {
                created: flows.created,
                expired: flows.expired,
                evicted: flows.evicted,
                peak: flows.peak,
            },
            entries,
            eips: eip_reports(public_ips, table, &c.entries),
            warnings,
            bandwidth: None,
        }
    }
}

/// A count with thousands separators, as the summaries print it: 1234567 -> "1,234,567".
pub fn thousands(v: u64) -> String {
    let s = v.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eips_sum_their_entries_in_package_order() {
        let text = include_str!("../../pcaps/seed/rules.toml");
        let rules = crate::rules::parse_str(text, "rules.toml").unwrap().rules;
        let ips = &rules.bandwidth_package.public_ips;
        let table = ForwardTable::new(&rules.forward_entries, ips);
        // Entry i gets i + 1 packets, 10 × that in bytes, and i rate-limited.
        let counters: Vec<EntryCounters> = (0..table.entries().len() as u64)
            .map(|i| EntryCounters {
                packets: i + 1,
                bytes: 10 * (i + 1),
                flows: 1,
                rate_limited: i,
            })
            .collect();
        let eips = eip_reports(ips, &table, &counters);
        let got: Vec<(&str, u64, u64, u64)> = eips
            .iter()
            .map(|e| (e.ip.as_str(), e.packets, e.bytes, e.rate_limited))
            .collect();
        // The seed: .107 and .55 one entry each, .79 entries 3 and 4, .59 entry 5, .58 none.
        assert_eq!(
            got,
            [
                ("203.0.113.107", 1, 10, 0),
                ("203.0.113.55", 2, 20, 1),
                ("203.0.113.79", 7, 70, 5),
                ("203.0.113.59", 5, 50, 4),
                ("203.0.113.58", 0, 0, 0),
            ]
        );
    }

    #[test]
    fn thousands_groups_by_three() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(u64::MAX), "18,446,744,073,709,551,615");
    }
}
