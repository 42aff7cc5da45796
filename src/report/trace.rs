//! One line per packet: the teaching view of `replay --trace`, `--annotate` and `explain`.

use crate::nat::{ForwardTable, Outcome, Tuple, Verdict};
use crate::wire::ipv4::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// A protocol's short name ("tcp", "udp", "icmp", "gre", "esp", or "proto N").
pub fn proto_name(proto: u8) -> String {
    match proto {
        PROTO_ICMP => "icmp".into(),
        PROTO_TCP => "tcp".into(),
        PROTO_UDP => "udp".into(),
        47 => "gre".into(),
        50 => "esp".into(),
        51 => "ah".into(),
        132 => "sctp".into(),
        n => format!("proto {n}"),
    }
}

/// "203.0.113.79:443" for TCP/UDP, the bare address otherwise.
pub fn endpoint(proto: u8, ip: u32, port: u16) -> String {
    if proto == PROTO_TCP || proto == PROTO_UDP {
        format!("{}:{port}", Ipv4Addr::from(ip))
    } else {
        Ipv4Addr::from(ip).to_string()
    }
}

/// "198.51.100.7:51000 > 203.0.113.79:443".
pub fn tuple(t: &Tuple) -> String {
    format!(
        "{} > {}",
        endpoint(t.proto, t.src, t.sport),
        endpoint(t.proto, t.dst, t.dport)
    )
}

/// What happened, in a few words, without the tuples: "[fwd-x, port mapping]" or the reason.
pub fn verdict_text(outcome: &Outcome, table: &ForwardTable) -> String {
    let entry_text = |entry: u32, kind: crate::nat::MatchKind| {
        let id = table
            .entries()
            .get(entry as usize)
            .map(|e| e.id.as_str())
            .unwrap_or("?");
        let mut s = format!("[{id}, {}", kind.describe());
        if outcome.notes.icmp_error {
            s.push_str(", ICMP error: quoted packet translated too");
        }
        if outcome.notes.fragment {
            s.push_str(", fragment");
        }
        if outcome.notes.bad_l4_checksum_in {
            s.push_str(", L4 checksum was already wrong");
        }
        s.push(']');
        s
    };
    match outcome.verdict {
        Verdict::Inbound { entry, kind } | Verdict::Outbound { entry, kind } => {
            entry_text(entry, kind)
        }
        Verdict::PassNotIpv4 => "passed unchanged (not IPv4)".into(),
        Verdict::PassForeign => "passed unchanged (foreign: no EIP or mapped server)".into(),
        Verdict::Held => "held (a later fragment waiting for its first fragment)".into(),
        Verdict::Drop(reason) => {
            let mut s = format!("dropped: {}", reason.as_str());
            if let Some(m) = outcome.notes.malformed {
                let _ = write!(s, " ({m})");
            }
            s
        }
    }
}

/// The whole trace line for packet number `n`.
pub fn line(n: u64, outcome: &Outcome, table: &ForwardTable) -> String {
    let verdict = verdict_text(outcome, table);
    if matches!(outcome.verdict, Verdict::PassNotIpv4)
        || outcome.before.proto == 0 && outcome.before.src == 0
    {
        return format!("#{n} {verdict}");
    }
    let proto = proto_name(outcome.before.proto);
    match outcome.verdict {
        Verdict::Inbound { .. } | Verdict::Outbound { .. } => format!(
            "#{n} {proto} {} => {} {verdict}",
            packet_tuple(&outcome.before, outcome),
            packet_tuple(&outcome.after, outcome)
        ),
        _ => format!(
            "#{n} {proto} {} {verdict}",
            packet_tuple(&outcome.before, outcome)
        ),
    }
}

/// Like [`tuple`], but where no ports were read (a later fragment, or a packet dropped before
/// its transport header was looked at) it shows addresses only.
fn packet_tuple(t: &Tuple, o: &Outcome) -> String {
    let unread = o.notes.fragment || matches!(o.verdict, Verdict::Drop(_));
    if unread && t.sport == 0 && t.dport == 0 {
        format!("{} > {}", Ipv4Addr::from(t.src), Ipv4Addr::from(t.dst))
    } else {
        tuple(t)
    }
}
