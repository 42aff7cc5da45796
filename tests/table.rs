//! The compiled forward table: every case of the tutorial's table, the misses, precedence,
//! and the round trip reverse(lookup(x)) == x for any valid table.

mod common;

use common::*;
use dnatsim::nat::{ForwardTable, Inbound, Match, MatchKind};
use dnatsim::rules::{ForwardEntry, PortSpec, Protocol};
use proptest::prelude::*;
use std::net::Ipv4Addr;

const TCP: u8 = 6;
const UDP: u8 = 17;
const ICMP: u8 = 1;

fn hit(entry: u32, kind: MatchKind, ip: [u8; 4], port: u16) -> Inbound {
    Inbound::Hit(Match {
        entry,
        kind,
        ip: u32ip(ip),
        port,
    })
}

#[test]
fn tutorial_table_lookups() {
    let t = seed_table();
    assert_eq!(
        t.lookup(u32ip(IP1), TCP, 8080),
        hit(0, MatchKind::IpAny, ECS[0], 8080)
    );
    assert_eq!(
        t.lookup(u32ip(IP1), ICMP, 0),
        hit(0, MatchKind::IpAny, ECS[0], 0)
    );
    assert_eq!(
        t.lookup(u32ip(IP2), UDP, 53),
        hit(1, MatchKind::IpAny, ECS[1], 53)
    );
    assert_eq!(
        t.lookup(u32ip(IP3), TCP, 80),
        hit(2, MatchKind::Port, ECS[2], 80)
    );
    assert_eq!(
        t.lookup(u32ip(IP3), TCP, 443),
        hit(3, MatchKind::Port, ECS[3], 443)
    );
    assert_eq!(
        t.lookup(u32ip(IP4), TCP, 22),
        hit(4, MatchKind::Port, ECS[4], 22)
    );
}

#[test]
fn tutorial_table_misses() {
    let t = seed_table();
    assert_eq!(
        t.lookup(u32ip(IP5), TCP, 80),
        Inbound::NoRule,
        "IP5 is a backup with no entry"
    );
    assert_eq!(
        t.lookup(u32ip(IP4), TCP, 80),
        Inbound::NoRule,
        "IP4 opens only tcp/22"
    );
    assert_eq!(
        t.lookup(u32ip(IP3), UDP, 80),
        Inbound::NoRule,
        "IP3's entries are tcp"
    );
    assert_eq!(t.lookup(u32ip(IP3), ICMP, 0), Inbound::NoRule);
    assert_eq!(t.lookup(u32ip(CLIENT), TCP, 80), Inbound::NotEip);
    assert!(t.is_eip(u32ip(IP5)));
    assert!(!t.is_eip(u32ip(ECS[0])));
}

#[test]
fn tutorial_reverse_lookups() {
    let t = seed_table();
    let m = |e, k, ip, p| {
        Some(Match {
            entry: e,
            kind: k,
            ip: u32ip(ip),
            port: p,
        })
    };
    assert_eq!(
        t.reverse(u32ip(ECS[0]), UDP, 4000),
        m(0, MatchKind::IpAny, IP1, 4000)
    );
    assert_eq!(
        t.reverse(u32ip(ECS[3]), TCP, 443),
        m(3, MatchKind::Port, IP3, 443)
    );
    assert_eq!(
        t.reverse(u32ip(ECS[4]), TCP, 22),
        m(4, MatchKind::Port, IP4, 22)
    );
    assert_eq!(t.reverse(u32ip(ECS[4]), TCP, 23), None);
    assert_eq!(t.reverse(u32ip(CLIENT), TCP, 22), None);
}

#[test]
fn port_mapping_wins_over_the_any_fallback() {
    use PortSpec::{Any, Single};
    let entries = vec![
        entry("fwd-any", IP1, Any, Protocol::Any, ECS[0], Any),
        entry(
            "fwd-80",
            IP1,
            Single(80),
            Protocol::Tcp,
            ECS[2],
            Single(8080),
        ),
    ];
    let t = ForwardTable::new(&entries, &seed_ips());
    assert_eq!(
        t.lookup(u32ip(IP1), TCP, 80),
        hit(1, MatchKind::Port, ECS[2], 8080)
    );
    assert_eq!(
        t.lookup(u32ip(IP1), UDP, 80),
        hit(0, MatchKind::IpAny, ECS[0], 80)
    );
    assert_eq!(
        t.lookup(u32ip(IP1), TCP, 81),
        hit(0, MatchKind::IpAny, ECS[0], 81)
    );
}

#[test]
fn wide_ranges_are_searched() {
    use PortSpec::Range;
    let entries = vec![
        entry(
            "a",
            IP1,
            Range(1024, 40000),
            Protocol::Udp,
            ECS[0],
            Range(11024, 50000),
        ),
        entry(
            "b",
            IP1,
            Range(50000, 65535),
            Protocol::Udp,
            ECS[1],
            Range(50000, 65535),
        ),
    ];
    let t = ForwardTable::new(&entries, &seed_ips());
    assert_eq!(
        t.lookup(u32ip(IP1), UDP, 1024),
        hit(0, MatchKind::Range, ECS[0], 11024)
    );
    assert_eq!(
        t.lookup(u32ip(IP1), UDP, 40000),
        hit(0, MatchKind::Range, ECS[0], 50000)
    );
    assert_eq!(t.lookup(u32ip(IP1), UDP, 40001), Inbound::NoRule);
    assert_eq!(
        t.lookup(u32ip(IP1), UDP, 65535),
        hit(1, MatchKind::Range, ECS[1], 65535)
    );
    assert_eq!(t.lookup(u32ip(IP1), TCP, 2000), Inbound::NoRule);
    let back = t.reverse(u32ip(ECS[0]), UDP, 11025).unwrap();
    assert_eq!((back.ip, back.port), (u32ip(IP1), 1025));
}

/// A random valid table: distinct external (ip, proto, port ranges) and distinct internal
/// endpoints, some IP mappings on their own addresses.
fn valid_table() -> impl Strategy<Value = Vec<ForwardEntry>> {
    prop::collection::vec((0u8..3, 1u16..2000, 0u16..50, 0u8..2), 1..60).prop_map(|specs| {
        let mut entries = Vec::new();
        let mut next_port = 1u32;
        for (i, (kind, gap, width, proto)) in specs.into_iter().enumerate() {
            let i = i as u8;
            let proto = if proto == 0 {
                Protocol::Tcp
            } else {
                Protocol::Udp
            };
            match kind {
                // An IP mapping on an address of its own (10.1.i.1 -> 192.0.2.i).
                0 => entries.push(entry(
                    &format!("ip{i}"),
                    [10, 1, i, 1],
                    PortSpec::Any,
                    Protocol::Any,
                    [192, 0, 2, i],
                    PortSpec::Any,
                )),
                // Port or range mappings on one shared address, never overlapping.
                _ => {
                    let lo = next_port + u32::from(gap);
                    let hi = lo + u32::from(width);
                    if hi > 60000 {
                        continue;
                    }
                    next_port = hi + 1;
                    let (ext, int) = if width == 0 {
                        (
                            PortSpec::Single(lo as u16),
                            PortSpec::Single((lo + 3000) as u16),
                        )
                    } else {
                        (
                            PortSpec::Range(lo as u16, hi as u16),
                            PortSpec::Range((lo + 3000) as u16, (hi + 3000) as u16),
                        )
                    };
                    entries.push(entry(&format!("p{i}"), IP3, ext, proto, ECS[2], int));
                }
            }
        }
        entries
    })
}

fn ports_of(p: PortSpec) -> Vec<u16> {
    match p {
        PortSpec::Any => vec![1, 80, 65535],
        PortSpec::Single(p) => vec![p],
        PortSpec::Range(lo, hi) => vec![lo, lo + (hi - lo) / 2, hi],
    }
}

proptest! {
    #[test]
    fn reverse_of_lookup_gives_the_original_back(entries in valid_table()) {
        let ips: Vec<Ipv4Addr> = entries.iter().map(|e| e.external_ip).collect();
        let t = ForwardTable::new(&entries, &ips);
        for (i, e) in entries.iter().enumerate() {
            let protos: &[u8] = match e.ip_protocol {
                Protocol::Tcp => &[TCP],
                Protocol::Udp => &[UDP],
                Protocol::Any => &[TCP, UDP, ICMP],
            };
            for &proto in protos {
                for port in ports_of(e.external_port) {
                    let ext = u32::from(e.external_ip);
                    let Inbound::Hit(m) = t.lookup(ext, proto, port) else {
                        panic!("entry {i} must match {proto}/{port}");
                    };
                    prop_assert_eq!(m.entry as usize, i);
                    let back = t.reverse(m.ip, proto, m.port).expect("reverse must exist");
                    prop_assert_eq!((back.ip, back.port), (ext, port));
                }
            }
        }
    }
}
