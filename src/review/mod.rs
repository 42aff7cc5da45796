//! Change review: what an edit of the forward table changes, in the table and in the traffic.
//!
//! [`table_diff`] compares two rules files entry by entry. [`Recorder`] is a replay
//! [`Observer`] that keeps every packet's fate; [`flow_diff`] compares the fates of the same
//! packets under two tables and groups the changes by flow.

use crate::nat::{ForwardTable, Outcome, Tuple, Verdict};
use crate::pipeline::Observer;
use crate::report::trace;
use crate::rules::{BandwidthPackage, ForwardEntry, PortSpec, Profile, Protocol, Rules};
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::Ipv4Addr;

/// One entry as the diff shows it, with the line of its `[[forward_entry]]` header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryView {
    /// The entry id.
    pub id: String,
    /// "203.0.113.79 tcp/443 -> 192.168.1.4:443".
    pub text: String,
    /// 1-based line in its file (0 when unknown).
    pub line: u32,
}

/// An entry present in both files whose mapping differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryChange {
    /// In the old file.
    pub old: EntryView,
    /// In the new file.
    pub new: EntryView,
}

/// A field of the bandwidth package that differs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldChange {
    /// The rules file's key, e.g. "bandwidth_mbps".
    pub field: &'static str,
    /// The old value.
    pub old: String,
    /// The new value.
    pub new: String,
}

/// What differs between two rules files.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TableDiff {
    /// Entries only in the new file.
    pub added: Vec<EntryView>,
    /// Entries only in the old file.
    pub removed: Vec<EntryView>,
    /// Entries in both (same id, else same external IP, protocol and port) that map differently.
    pub changed: Vec<EntryChange>,
    /// EIPs only in the new bandwidth package.
    pub eips_added: Vec<Ipv4Addr>,
    /// EIPs only in the old bandwidth package.
    pub eips_removed: Vec<Ipv4Addr>,
    /// Bandwidth package settings that differ.
    pub bandwidth: Vec<FieldChange>,
    /// Changes that shadow or un-shadow traffic (port entries and IP mappings on one EIP).
    pub warnings: Vec<String>,
}

impl TableDiff {
    /// Whether the two tables are the same (ids and file positions aside).
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.removed.is_empty()
            && self.changed.is_empty()
            && self.eips_added.is_empty()
            && self.eips_removed.is_empty()
            && self.bandwidth.is_empty()
    }
}

/// "203.0.113.79 tcp/443 -> 192.168.1.4:443", or "203.0.113.107 any -> 192.168.1.1" for an IP mapping.
pub fn entry_text(e: &ForwardEntry) -> String {
    if e.ip_protocol == Protocol::Any {
        return format!("{} any -> {}", e.external_ip, e.internal_ip);
    }
    format!(
        "{} {}/{} -> {}:{}",
        e.external_ip, e.ip_protocol, e.external_port, e.internal_ip, e.internal_port
    )
}

fn view(e: &ForwardEntry) -> EntryView {
    EntryView {
        id: e.id.clone(),
        text: entry_text(e),
        line: e.position.line,
    }
}

/// What the external side of an entry selects.
fn selector(e: &ForwardEntry) -> (Ipv4Addr, Protocol, PortSpec) {
    (e.external_ip, e.ip_protocol, e.external_port)
}

/// Where an entry sends what it selects.
fn target(e: &ForwardEntry) -> (Ipv4Addr, Protocol, PortSpec, Ipv4Addr, PortSpec) {
    (
        e.external_ip,
        e.ip_protocol,
        e.external_port,
        e.internal_ip,
        e.internal_port,
    )
}

/// Compares two rules files: entries paired by id, then the rest by external tuple.
pub fn table_diff(old: &Rules, new: &Rules) -> TableDiff {
    let mut d = TableDiff::default();
    let mut new_used = vec![false; new.forward_entries.len()];
    let mut old_pair: Vec<Option<usize>> = vec![None; old.forward_entries.len()];
    for (i, o) in old.forward_entries.iter().enumerate() {
        if let Some(j) = new.forward_entries.iter().position(|n| n.id == o.id) {
            old_pair[i] = Some(j);
            new_used[j] = true;
        }
    }
    for (i, o) in old.forward_entries.iter().enumerate() {
        if old_pair[i].is_some() {
            continue;
        }
        if let Some(j) = new
            .forward_entries
            .iter()
            .enumerate()
            .position(|(j, n)| !new_used[j] && selector(n) == selector(o))
        {
            old_pair[i] = Some(j);
            new_used[j] = true;
        }
    }
    for (i, o) in old.forward_entries.iter().enumerate() {
        match old_pair[i] {
            None => d.removed.push(view(o)),
            Some(j) => {
                let n = &new.forward_entries[j];
                if target(o) != target(n) {
                    d.changed.push(EntryChange {
                        old: view(o),
                        new: view(n),
                    });
                }
            }
        }
    }
    for (j, n) in new.forward_entries.iter().enumerate() {
        if !new_used[j] {
            d.added.push(view(n));
        }
    }
    let (oi, ni) = (
        &old.bandwidth_package.public_ips,
        &new.bandwidth_package.public_ips,
    );
    d.eips_added = ni.iter().filter(|ip| !oi.contains(ip)).copied().collect();
    d.eips_removed = oi.iter().filter(|ip| !ni.contains(ip)).copied().collect();
    d.bandwidth = bandwidth_changes(&old.bandwidth_package, &new.bandwidth_package);
    d.warnings = shadow_warnings(old, new);
    d
}

fn bandwidth_changes(o: &BandwidthPackage, n: &BandwidthPackage) -> Vec<FieldChange> {
    let opt = |v: Option<u64>| v.map_or("default".to_string(), |v| v.to_string());
    let dirs = |b: &BandwidthPackage| match (b.inbound, b.outbound) {
        (true, true) => "inbound, outbound",
        (true, false) => "inbound",
        (false, true) => "outbound",
        (false, false) => "none",
    };
    let fields: [(&'static str, String, String); 7] = [
        ("bandwidth_mbps", mbps(o.rate_bps), mbps(n.rate_bps)),
        ("burst_bytes", opt(o.burst_bytes), opt(n.burst_bytes)),
        (
            "mode",
            format!("{:?}", o.mode).to_lowercase(),
            format!("{:?}", n.mode).to_lowercase(),
        ),
        (
            "queue_limit_bytes",
            opt(o.queue_limit_bytes),
            opt(n.queue_limit_bytes),
        ),
        ("latency_ms", opt(o.latency_ms), opt(n.latency_ms)),
        ("directions", dirs(o).to_string(), dirs(n).to_string()),
        (
            "count",
            format!("{:?}", o.count).to_lowercase(),
            format!("{:?}", n.count).to_lowercase(),
        ),
    ];
    fields
        .into_iter()
        .filter(|(_, a, b)| a != b)
        .map(|(field, old, new)| FieldChange { field, old, new })
        .collect()
}

/// A rate in Mbps as the rules file writes it.
fn mbps(bps: u64) -> String {
    let (w, f) = (bps / 1_000_000, bps % 1_000_000);
    if f == 0 {
        w.to_string()
    } else {
        format!("{w}.{}", format!("{f:06}").trim_end_matches('0'))
    }
}

/// Under `permissive`, a port entry on an EIP with an IP mapping takes that port's traffic from
/// the mapping; adding one shadows the mapping, removing one hands the traffic back to it.
fn shadow_warnings(old: &Rules, new: &Rules) -> Vec<String> {
    let mut w = Vec::new();
    let ip_map = |r: &Rules, ip: Ipv4Addr| {
        r.forward_entries
            .iter()
            .find(|e| e.external_ip == ip && e.is_ip_mapping())
            .map(|e| e.id.clone())
    };
    let ported = |r: &Rules| -> Vec<(Ipv4Addr, Protocol, PortSpec, String)> {
        r.forward_entries
            .iter()
            .filter(|e| !e.is_ip_mapping())
            .map(|e| (e.external_ip, e.ip_protocol, e.external_port, e.id.clone()))
            .collect()
    };
    let (op, np) = (ported(old), ported(new));
    let has = |v: &[(Ipv4Addr, Protocol, PortSpec, String)], ip, proto, port| {
        v.iter()
            .any(|(a, b, c, _)| (*a, *b, *c) == (ip, proto, port))
    };
    for (ip, proto, port, id) in &np {
        if !has(&op, *ip, *proto, *port)
            && new.gateway.profile == Profile::Permissive
            && let Some(map) = ip_map(new, *ip)
        {
            w.push(format!(
                "{id} ({ip} {proto}/{port}) shadows IP mapping {map}: that traffic no longer reaches {map}'s server"
            ));
        }
        // A port entry that an old IP mapping used to cover, where the new table has no mapping.
        if !has(&op, *ip, *proto, *port)
            && ip_map(new, *ip).is_none()
            && let Some(map) = ip_map(old, *ip)
        {
            w.push(format!(
                "{id} ({ip} {proto}/{port}) replaces IP mapping {map} for that port; the rest of {ip} has no entry any more"
            ));
        }
    }
    for (ip, proto, port, id) in &op {
        if !has(&np, *ip, *proto, *port)
            && old.gateway.profile == Profile::Permissive
            && let Some(map) = ip_map(new, *ip)
        {
            w.push(format!(
                "removing {id} ({ip} {proto}/{port}) un-shadows IP mapping {map}: that traffic now reaches {map}'s server"
            ));
        }
    }
    w
}

/// What happened to one packet in one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fate {
    /// The translator's outcome.
    pub outcome: Outcome,
    /// Length on the wire.
    pub wire_len: u32,
    /// The bandwidth package dropped it.
    pub rate_limited: bool,
}

impl Fate {
    /// Whether it left the gateway.
    pub fn forwarded(&self) -> bool {
        !self.rate_limited
            && matches!(
                self.outcome.verdict,
                Verdict::Inbound { .. }
                    | Verdict::Outbound { .. }
                    | Verdict::PassForeign
                    | Verdict::PassNotIpv4
            )
    }

    fn entry(&self) -> Option<u32> {
        match self.outcome.verdict {
            Verdict::Inbound { entry, .. } | Verdict::Outbound { entry, .. } => Some(entry),
            _ => None,
        }
    }
}

/// An observer that keeps every decided packet's fate, by record number.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Index = record number - 1; `None` for a record never decided (none, normally).
    pub fates: Vec<Option<Fate>>,
}

impl Observer for Recorder {
    fn decided(&mut self, record: u64, outcome: &Outcome, wire_len: u32, rate_limited: bool) {
        let Some(i) = record.checked_sub(1).and_then(|i| usize::try_from(i).ok()) else {
            return;
        };
        if self.fates.len() <= i {
            self.fates.resize(i + 1, None);
        }
        self.fates[i] = Some(Fate {
            outcome: *outcome,
            wire_len,
            rate_limited,
        });
    }
}

/// How a flow's treatment changed (the most serious change among its packets).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChangeKind {
    /// Forwarded before, dropped now.
    NewlyDropped,
    /// Dropped before, forwarded now.
    NewlyAllowed,
    /// Forwarded both times, to another server or port (or no longer translated).
    Moved,
    /// Dropped both times, for another reason.
    DropReason,
    /// The bandwidth package treats it differently (and nothing else changed).
    RateLimit,
    /// Another entry, the same destination.
    OtherEntry,
}

impl ChangeKind {
    /// The words the diff prints.
    pub fn describe(self) -> &'static str {
        match self {
            ChangeKind::NewlyDropped => "newly dropped",
            ChangeKind::NewlyAllowed => "newly allowed",
            ChangeKind::Moved => "moved",
            ChangeKind::DropReason => "dropped for another reason",
            ChangeKind::RateLimit => "rate limit differs",
            ChangeKind::OtherEntry => "other entry, same destination",
        }
    }
}

/// How two fates of one packet differ, if they do.
pub fn change(old: &Fate, new: &Fate) -> Option<ChangeKind> {
    let (of, nf) = (old.forwarded(), new.forwarded());
    let same_path =
        old.outcome.verdict == new.outcome.verdict && old.outcome.after == new.outcome.after;
    let kind = match (of, nf) {
        (true, false) if new.rate_limited && same_path => ChangeKind::RateLimit,
        (true, false) => ChangeKind::NewlyDropped,
        (false, true) if old.rate_limited && same_path => ChangeKind::RateLimit,
        (false, true) => ChangeKind::NewlyAllowed,
        (true, true) => {
            if old.outcome.after != new.outcome.after || class(old) != class(new) {
                ChangeKind::Moved
            } else if old.entry() != new.entry() {
                ChangeKind::OtherEntry
            } else {
                return None;
            }
        }
        (false, false) => {
            if old.outcome.verdict == new.outcome.verdict && old.rate_limited == new.rate_limited {
                if old.outcome.after == new.outcome.after {
                    return None;
                }
                ChangeKind::DropReason
            } else if old.rate_limited != new.rate_limited && same_path {
                ChangeKind::RateLimit
            } else {
                ChangeKind::DropReason
            }
        }
    };
    Some(kind)
}

/// The kind of verdict, entry aside.
fn class(f: &Fate) -> u8 {
    match f.outcome.verdict {
        Verdict::Inbound { .. } => 0,
        Verdict::Outbound { .. } => 1,
        Verdict::PassForeign => 2,
        Verdict::PassNotIpv4 => 3,
        Verdict::Drop(_) => 4,
        Verdict::Held => 5,
    }
}

/// A packet's fate in words: "-> 192.168.1.4:443 [fwd-11cdhpjlk, port mapping]".
pub fn fate_text(f: &Fate, table: &ForwardTable) -> String {
    let o = &f.outcome;
    let mut s = match o.verdict {
        Verdict::Inbound { .. } | Verdict::Outbound { .. } => format!(
            "{} {}",
            trace::tuple(&o.after),
            trace::verdict_text(o, table)
        ),
        _ => trace::verdict_text(o, table),
    };
    if f.rate_limited {
        s.push_str(" then dropped: rate_limited");
    }
    s
}

/// Where a packet went, for the per-entry table: "ENTRY (SERVER)" (", rate_limited" added when
/// the package dropped it), "dropped: REASON" or "passed unchanged".
fn place(f: &Fate, table: &ForwardTable) -> String {
    match f.outcome.verdict {
        Verdict::Inbound { entry, .. } | Verdict::Outbound { entry, .. } => {
            let id = table
                .entries()
                .get(entry as usize)
                .map_or("?", |e| e.id.as_str());
            // The server, so that a move between servers under one entry shows.
            let server = match f.outcome.verdict {
                Verdict::Inbound { .. } => f.outcome.after.dst,
                _ => f.outcome.before.src,
            };
            let limited = if f.rate_limited { ", rate_limited" } else { "" };
            format!("{id} ({}{limited})", Ipv4Addr::from(server))
        }
        Verdict::Drop(r) => format!("dropped: {}", r.as_str()),
        Verdict::PassForeign | Verdict::PassNotIpv4 => "passed unchanged".to_string(),
        Verdict::Held => "held".to_string(),
    }
}

/// A flow, both directions together: the protocol and its two endpoints on the public side,
/// the client first when one end is an EIP.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct FlowKey {
    proto: u8,
    a: (u32, u16),
    b: (u32, u16),
}

fn flow_key(old: &Fate, new: &Fate, eips: &[u32]) -> FlowKey {
    // The public side of the packet: an inbound packet's arrival, an outbound one's departure.
    let public = |f: &Fate| -> Option<Tuple> {
        match f.outcome.verdict {
            Verdict::Inbound { .. } => Some(f.outcome.before),
            Verdict::Outbound { .. } => Some(f.outcome.after),
            _ => None,
        }
    };
    let t = public(old)
        .or_else(|| public(new))
        .unwrap_or(old.outcome.before);
    let (x, y) = ((t.src, t.sport), (t.dst, t.dport));
    let (a, b) = if eips.contains(&x.0) && !eips.contains(&y.0) {
        (y, x)
    } else if eips.contains(&y.0) && !eips.contains(&x.0) {
        (x, y)
    } else {
        (x.min(y), x.max(y))
    };
    FlowKey {
        proto: t.proto,
        a,
        b,
    }
}

/// One flow whose treatment changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FlowChange {
    /// "tcp 198.51.100.7:51000 <> 203.0.113.79:443".
    pub flow: String,
    /// The most serious change among its packets.
    pub kind: ChangeKind,
    /// Packets whose fate changed.
    pub packets: u64,
    /// Their bytes on the wire.
    pub bytes: u64,
    /// Packets of the flow whose fate did not change.
    pub unchanged_packets: u64,
    /// The first changed packet (record number).
    pub first_record: u64,
    /// Its fate under the old table.
    pub old: String,
    /// Its fate under the new table.
    pub new: String,
}

/// Packets and bytes that went from one place to another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Move {
    /// Entry id (or drop reason, or "passed unchanged") under the old table.
    pub from: String,
    /// The same under the new table.
    pub to: String,
    /// Packets.
    pub packets: u64,
    /// Bytes on the wire.
    pub bytes: u64,
}

/// What changes in the traffic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FlowDiff {
    /// Packets compared.
    pub packets: u64,
    /// Packets whose fate changed.
    pub changed_packets: u64,
    /// Flows with at least one changed packet, most changed packets first.
    pub changed: Vec<FlowChange>,
    /// Flows whose packets all kept their fate.
    pub unchanged_flows: u64,
    /// Changed flows by kind.
    pub by_kind: BTreeMap<String, u64>,
    /// Changed packets, from -> to, by entry.
    pub moves: Vec<Move>,
}

impl FlowDiff {
    /// Whether no packet's fate changed.
    pub fn is_empty(&self) -> bool {
        self.changed_packets == 0
    }
}

/// Compares two runs over the same packets. Records decided in one run only (which does not
/// happen when both read the same input) are skipped.
pub fn flow_diff(
    old: &[Option<Fate>],
    new: &[Option<Fate>],
    old_table: &ForwardTable,
    new_table: &ForwardTable,
    eips: &[Ipv4Addr],
) -> FlowDiff {
    #[derive(Default)]
    struct Acc {
        kind: Option<ChangeKind>,
        packets: u64,
        bytes: u64,
        unchanged: u64,
        first: Option<(u64, String, String)>,
    }
    let eips: Vec<u32> = eips.iter().map(|&ip| u32::from(ip)).collect();
    let mut flows: BTreeMap<FlowKey, Acc> = BTreeMap::new();
    let mut moves: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    let mut d = FlowDiff::default();
    for (i, (o, n)) in old.iter().zip(new).enumerate() {
        let (Some(o), Some(n)) = (o, n) else { continue };
        d.packets += 1;
        let acc = flows.entry(flow_key(o, n, &eips)).or_default();
        match change(o, n) {
            None => acc.unchanged += 1,
            Some(kind) => {
                d.changed_packets += 1;
                acc.packets += 1;
                acc.bytes += u64::from(o.wire_len);
                acc.kind = Some(acc.kind.map_or(kind, |k| k.min(kind)));
                if acc.first.is_none() {
                    acc.first = Some((
                        i as u64 + 1,
                        fate_text(o, old_table),
                        fate_text(n, new_table),
                    ));
                }
                let m = moves
                    .entry((place(o, old_table), place(n, new_table)))
                    .or_default();
                m.0 += 1;
                m.1 += u64::from(o.wire_len);
            }
        }
    }
    for (key, acc) in flows {
        let (Some(kind), Some((first_record, old, new))) = (acc.kind, acc.first) else {
            d.unchanged_flows += 1;
            continue;
        };
        *d.by_kind.entry(kind.describe().to_string()).or_default() += 1;
        d.changed.push(FlowChange {
            flow: format!(
                "{} {} <> {}",
                trace::proto_name(key.proto),
                trace::endpoint(key.proto, key.a.0, key.a.1),
                trace::endpoint(key.proto, key.b.0, key.b.1)
            ),
            kind,
            packets: acc.packets,
            bytes: acc.bytes,
            unchanged_packets: acc.unchanged,
            first_record,
            old,
            new,
        });
    }
    // Most serious kind first, then most packets, then the flow's text (deterministic).
    d.changed.sort_by(|x, y| {
        (x.kind, std::cmp::Reverse(x.packets), &x.flow).cmp(&(
            y.kind,
            std::cmp::Reverse(y.packets),
            &y.flow,
        ))
    });
    d.moves = moves
        .into_iter()
        .map(|((from, to), (packets, bytes))| Move {
            from,
            to,
            packets,
            bytes,
        })
        .collect();
    d.moves.sort_by(|x, y| {
        y.packets
            .cmp(&x.packets)
            .then(x.from.cmp(&y.from))
            .then(x.to.cmp(&y.to))
    });
    d
}

/// The record numbers (1-based) whose fate differs between two runs over the same packets.
pub fn changed_records(old: &[Option<Fate>], new: &[Option<Fate>]) -> Vec<u64> {
    old.iter()
        .zip(new)
        .enumerate()
        .filter_map(|(i, pair)| match pair {
            (Some(o), Some(n)) if change(o, n).is_some() => Some(i as u64 + 1),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::DropReason;
    use crate::nat::MatchKind;

    fn fate(verdict: Verdict, after_dst: u32, rate_limited: bool) -> Fate {
        let before = Tuple {
            src: 1,
            dst: 2,
            sport: 1000,
            dport: 443,
            proto: 6,
        };
        let mut outcome = Outcome::none();
        outcome.verdict = verdict;
        outcome.before = before;
        outcome.after = Tuple {
            dst: after_dst,
            ..before
        };
        Fate {
            outcome,
            wire_len: 60,
            rate_limited,
        }
    }

    fn inbound(entry: u32) -> Verdict {
        Verdict::Inbound {
            entry,
            kind: MatchKind::Port,
        }
    }

    #[test]
    fn kinds_of_change() {
        let a = fate(inbound(0), 10, false);
        assert_eq!(change(&a, &a), None);
        assert_eq!(
            change(&a, &fate(inbound(0), 11, false)),
            Some(ChangeKind::Moved)
        );
        assert_eq!(
            change(&a, &fate(inbound(1), 10, false)),
            Some(ChangeKind::OtherEntry)
        );
        let drop = fate(Verdict::Drop(DropReason::NoRule), 2, false);
        assert_eq!(change(&a, &drop), Some(ChangeKind::NewlyDropped));
        assert_eq!(change(&drop, &a), Some(ChangeKind::NewlyAllowed));
        assert_eq!(
            change(&a, &fate(inbound(0), 10, true)),
            Some(ChangeKind::RateLimit)
        );
        assert_eq!(
            change(&fate(inbound(0), 10, true), &a),
            Some(ChangeKind::RateLimit)
        );
        // Rate-limited under the old table, sent elsewhere by the new one: it is allowed now.
        assert_eq!(
            change(&fate(inbound(0), 10, true), &fate(inbound(1), 12, false)),
            Some(ChangeKind::NewlyAllowed)
        );
        let ttl = fate(Verdict::Drop(DropReason::TtlExpired), 2, false);
        assert_eq!(change(&ttl, &drop), Some(ChangeKind::DropReason));
        assert_eq!(change(&drop, &drop), None);
    }

    #[test]
    fn flows_group_both_directions() {
        // A request to the EIP and its reply from the server, translated back, are one flow.
        let eip = 0xcb00_714f;
        let client = 0xc633_6407;
        let server = 0xc0a8_0104;
        let req = Tuple {
            src: client,
            dst: eip,
            sport: 5000,
            dport: 443,
            proto: 6,
        };
        let mut o1 = Outcome::none();
        o1.verdict = inbound(0);
        o1.before = req;
        o1.after = Tuple { dst: server, ..req };
        let mut o2 = Outcome::none();
        o2.verdict = Verdict::Outbound {
            entry: 0,
            kind: MatchKind::Port,
        };
        o2.before = Tuple {
            src: server,
            dst: client,
            sport: 443,
            dport: 5000,
            proto: 6,
        };
        o2.after = Tuple {
            src: eip,
            ..o2.before
        };
        let f = |o: Outcome| Fate {
            outcome: o,
            wire_len: 60,
            rate_limited: false,
        };
        let k1 = flow_key(&f(o1), &f(o1), &[eip]);
        let k2 = flow_key(&f(o2), &f(o2), &[eip]);
        assert_eq!(k1, k2);
        assert_eq!(k1.a, (client, 5000));
    }
}
