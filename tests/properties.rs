//! Properties: the fuzz targets' bodies on random and mutated inputs (so `cargo test` runs
//! what the fuzzer runs), and the translator's invariants on random valid traffic.
//!
//! Mutated inputs start from real captures of tcpdump's test corpus when
//! `../shared/corpus/tcpdump-tests` is there, else from captures generated here.

mod common;

#[allow(dead_code)]
#[path = "../fuzz/src/lib.rs"]
mod bodies;

use common::*;
use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};
use dnatsim::nat::{Config, DropReason, MatchKind, Translator, Verdict};
use dnatsim::pipeline::{Quiet, ReplayOptions, replay};
use dnatsim::report::Report;
use proptest::prelude::*;
use proptest::sample::Index;
use std::path::Path;
use std::sync::OnceLock;

const CORPUS: &str = "../shared/corpus/tcpdump-tests";
/// Corpus files larger than this are skipped: mutating a small file reaches its tail.
const MAX_SEED_LEN: u64 = 16 * 1024;

fn pcap_file(link_type: u32, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, link_type] {
        v.extend_from_slice(&x.to_le_bytes());
    }
    for (i, f) in frames.iter().enumerate() {
        let len = f.len() as u32;
        for x in [1_700_000_000 + i as u32, 0, len, len] {
            v.extend_from_slice(&x.to_le_bytes());
        }
        v.extend_from_slice(f);
    }
    v
}

/// Seed captures: small files of the tcpdump corpus, or generated traffic without it.
fn seed_captures() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
        let mut seeds = Vec::new();
        if let Ok(listing) = std::fs::read_dir(&dir) {
            let mut paths: Vec<_> = listing
                .filter_map(|e| e.ok())
                .filter(|e| e.metadata().is_ok_and(|m| m.len() <= MAX_SEED_LEN))
                .map(|e| e.path())
                .collect();
            paths.sort();
            seeds.extend(paths.iter().filter_map(|p| std::fs::read(p).ok()));
        }
        if seeds.is_empty() {
            // Say so: the mutation properties are weaker on seven generated frames than on the
            // corpus's few hundred small captures (and CI, which has the corpus, fails here).
            common::skip_or_fail(&format!(
                "{} is not here: mutated inputs start from generated frames, not the corpus",
                dir.display()
            ));
            seeds.push(pcap_file(1, &seed_frames()));
        } else {
            println!(
                "properties: {} corpus captures seed the mutated inputs",
                seeds.len()
            );
        }
        seeds
    })
}

/// Valid frames of every kind the translator handles, to the seed EIPs and from servers.
fn seed_frames() -> Vec<Vec<u8>> {
    vec![
        tcp(CLIENT, 40000, IP3, 80, 64, b"GET / HTTP/1.0\r\n\r\n"),
        tcp(ECS[2], 80, CLIENT, 40000, 64, b"HTTP/1.0 200 OK\r\n"),
        udp(CLIENT, 5000, IP1, 53, 64, b"query"),
        udp(ECS[1], 123, [198, 51, 100, 1], 123, 64, b"ntp"),
        echo_request(CLIENT, IP2, 7, 1, 64),
        tcp(CLIENT, 40001, IP4, 22, 1, b"SSH-2.0"),
        other_proto(CLIENT, IP1, 47, 64, b"gre payload"),
    ]
}

/// A byte-level edit: overwrite, insert or delete at a position (taken modulo the length).
#[derive(Debug, Clone)]
enum Edit {
    Set(Index, u8),
    Insert(Index, u8),
    Delete(Index),
    Cut(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        6 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        1 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        1 => any::<Index>().prop_map(Edit::Delete),
        1 => any::<Index>().prop_map(Edit::Cut),
    ]
}

fn apply(mut v: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        let n = v.len();
        match *e {
            Edit::Set(ref i, b) if n > 0 => {
                let i = i.index(n);
                v[i] = b;
            }
            Edit::Insert(ref i, b) => v.insert(i.index(n + 1), b),
            Edit::Delete(ref i) if n > 0 => {
                v.remove(i.index(n));
            }
            Edit::Cut(ref i) => v.truncate(i.index(n + 1)),
            _ => {}
        }
    }
    v
}

/// Captures: random bytes, random bytes behind a pcap or pcapng magic, or mutated seeds.
fn capture_bytes() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seed_captures();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..256),
        1 => (
            prop_oneof![
                Just(vec![0xd4u8, 0xc3, 0xb2, 0xa1]),
                Just(vec![0x0au8, 0x0d, 0x0d, 0x0a]),
            ],
            proptest::collection::vec(any::<u8>(), 0..256),
        )
            .prop_map(|(mut m, rest)| {
                m.extend(rest);
                m
            }),
        4 => (any::<Index>(), proptest::collection::vec(edit(), 0..12))
            .prop_map(move |(i, edits)| apply(seeds[i.index(seeds.len())].clone(), &edits)),
    ]
}

/// Frames: random bytes, or mutated valid frames.
fn frame_bytes() -> impl Strategy<Value = Vec<u8>> {
    let frames = seed_frames();
    prop_oneof![
        1 => proptest::collection::vec(any::<u8>(), 0..128),
        4 => (any::<Index>(), proptest::collection::vec(edit(), 0..6))
            .prop_map(move |(i, edits)| apply(frames[i.index(frames.len())].clone(), &edits)),
    ]
}

fn rules_text() -> impl Strategy<Value = Vec<u8>> {
    let mut seeds = vec![bodies::SEED_RULES.as_bytes().to_vec()];
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/rules");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    paths.sort();
    seeds.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
    prop_oneof![
        1 => ".{0,200}".prop_map(String::into_bytes),
        4 => (any::<Index>(), proptest::collection::vec(edit(), 0..8))
            .prop_map(move |(i, edits)| apply(seeds[i.index(seeds.len())].clone(), &edits)),
    ]
}

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

proptest! {
    #![proptest_config(config(4096))]

    #[test]
    fn fuzz_body_capture_reader(data in capture_bytes()) {
        bodies::capture_reader(&data);
    }

    #[test]
    fn fuzz_body_translate(data in frame_bytes()) {
        bodies::translate(&data);
    }

    #[test]
    fn fuzz_body_rules_parser(data in rules_text()) {
        bodies::rules_parser(&data);
    }
}

proptest! {
    #![proptest_config(config(2048))]

    #[test]
    fn fuzz_body_replay(data in capture_bytes()) {
        bodies::replay(&data);
    }
}

/// Where a client's packet may go and be translated: (EIP, protocol, port or any).
const TARGETS: [([u8; 4], u8, Option<u16>); 8] = [
    (IP1, 6, None),
    (IP1, 17, None),
    (IP1, 1, None),
    (IP2, 6, None),
    (IP2, 17, None),
    (IP3, 6, Some(80)),
    (IP3, 6, Some(443)),
    (IP4, 6, Some(22)),
];

fn build(proto: u8, src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, payload: &[u8]) -> Vec<u8> {
    match proto {
        6 => tcp(src, sport, dst, dport, 64, payload),
        17 => udp(src, sport, dst, dport, 64, payload),
        // An echo request; the identifier plays the port.
        _ => echo_request(src, dst, sport, 1, 64),
    }
}

fn echo_reply(src: [u8; 4], dst: [u8; 4], id: u16) -> Vec<u8> {
    let b = etherparse::PacketBuilder::ethernet2(MAC_B, MAC_A)
        .ipv4(src, dst, 64)
        .icmpv4_echo_reply(id, 1);
    let mut v = Vec::new();
    b.write(&mut v, b"ping payload").unwrap();
    v
}

/// Where the seed table sends each target, written out here rather than read from the
/// translator: (server address, server port, or the client's port for "any").
const SERVERS: [([u8; 4], Option<u16>); 8] = [
    (ECS[0], None),
    (ECS[0], None),
    (ECS[0], None),
    (ECS[1], None),
    (ECS[1], None),
    (ECS[2], Some(80)),
    (ECS[3], Some(443)),
    (ECS[4], Some(22)),
];

/// Protocol, source, source port, destination, destination port, payload.
type Parsed = (u8, [u8; 4], u16, [u8; 4], u16, Vec<u8>);

/// The addresses, "ports" (the echo identifier for ICMP) and payload of an Ethernet/IPv4
/// frame, parsed by etherparse (independently of the translator), checksums verified.
fn parsed(frame: &[u8]) -> Result<Parsed, TestCaseError> {
    verify_checksums(frame, 14).map_err(TestCaseError::fail)?;
    let p = etherparse::SlicedPacket::from_ethernet(frame)
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    let Some(etherparse::NetSlice::Ipv4(ip)) = &p.net else {
        return Err(TestCaseError::fail("not IPv4"));
    };
    let h = ip.header();
    let (src, dst, proto) = (h.source(), h.destination(), h.protocol().0);
    let (sport, dport, payload) = match &p.transport {
        Some(etherparse::TransportSlice::Tcp(t)) => {
            (t.source_port(), t.destination_port(), t.payload().to_vec())
        }
        Some(etherparse::TransportSlice::Udp(u)) => {
            (u.source_port(), u.destination_port(), u.payload().to_vec())
        }
        Some(etherparse::TransportSlice::Icmpv4(i)) => {
            let id = match i.icmp_type() {
                etherparse::Icmpv4Type::EchoRequest(e) | etherparse::Icmpv4Type::EchoReply(e) => {
                    e.id
                }
                t => return Err(TestCaseError::fail(format!("ICMP {t:?}"))),
            };
            (id, id, i.payload().to_vec())
        }
        t => return Err(TestCaseError::fail(format!("transport {t:?}"))),
    };
    Ok((proto, src, sport, dst, dport, payload))
}

/// A client address outside the gateway's own ranges.
fn client() -> impl Strategy<Value = [u8; 4]> {
    any::<[u8; 4]>().prop_filter("not an EIP or a server", |a| {
        a[0] != 0 && a[0] < 224 && a[..3] != [203, 0, 113] && a[..3] != [192, 168, 1]
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn translate_then_reply_gives_the_original_tuple_back(
        t in 0..TARGETS.len(),
        src in client(),
        sport in 1..=u16::MAX,
        any_port in 1..=u16::MAX,
        payload in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        let (eip, proto, port) = TARGETS[t];
        let dport = port.unwrap_or(if proto == 1 { sport } else { any_port });
        let table = seed_table();
        let mut tr = Translator::new(&table, Config::default());
        let mut frame = build(proto, src, sport, eip, dport, &payload);
        let sent = parsed(&frame)?;
        let there = run(&mut tr, &mut frame, 1, 1_000);
        prop_assert!(matches!(there.verdict, Verdict::Inbound { .. }), "{:?}", there);
        // The rewritten bytes, parsed by etherparse: only the destination changed, to the
        // server the table names, and the checksums are right.
        let (server, server_port) = SERVERS[t];
        let server_port = server_port.unwrap_or(dport);
        let got = parsed(&frame)?;
        prop_assert_eq!(&got, &(proto, src, sport, server, server_port, sent.5.clone()));
        // The server's reply, built from those parsed bytes, goes back as the EIP.
        let mut reply = match proto {
            1 => echo_reply(got.3, got.1, got.4),
            _ => build(proto, got.3, got.4, got.1, got.2, b"reply"),
        };
        let back = run(&mut tr, &mut reply, 1, 2_000);
        prop_assert!(matches!(back.verdict, Verdict::Outbound { .. }), "{:?}", back);
        prop_assert!(!back.notes.new_flow, "the reply uses the binding");
        let (rproto, rsrc, rsport, rdst, rdport, _) = parsed(&reply)?;
        prop_assert_eq!((rproto, rsrc, rsport, rdst, rdport), (proto, eip, dport, src, sport));
    }

    #[test]
    fn checksums_stay_valid_for_valid_packets(
        t in 0..TARGETS.len(),
        wrong_port in any::<bool>(),
        src in client(),
        sport in 1..=u16::MAX,
        any_port in 1..=u16::MAX,
        ttl in 0u8..=255,
        payload in proptest::collection::vec(any::<u8>(), 0..200),
    ) {
        let (eip, proto, port) = TARGETS[t];
        // A port mapping's EIP with another port: no rule, and the bytes must not change.
        let dport = match port {
            Some(p) if wrong_port => p.wrapping_add(1),
            Some(p) => p,
            None => any_port,
        };
        let table = seed_table();
        let mut frame = match proto {
            6 => tcp(src, sport, eip, dport, ttl, &payload),
            17 => udp(src, sport, eip, dport, ttl, &payload),
            _ => echo_request(src, eip, sport, dport, ttl),
        };
        verify_checksums(&frame, 14).map_err(TestCaseError::fail)?;
        let before = frame.clone();
        let out = translate_one(&table, &mut frame);
        // The rule lookup comes before the TTL check.
        let want = if port.is_some() && wrong_port {
            Verdict::Drop(DropReason::NoRule)
        } else if ttl <= 1 {
            Verdict::Drop(DropReason::TtlExpired)
        } else {
            let entry = table
                .entries()
                .iter()
                .position(|e| e.external_ip == std::net::Ipv4Addr::from(eip)
                    && (port.is_none() || e.external_port.to_string() == dport.to_string()))
                .unwrap() as u32;
            let kind = if port.is_some() { MatchKind::Port } else { MatchKind::IpAny };
            Verdict::Inbound { entry, kind }
        };
        prop_assert_eq!(out.verdict, want);
        verify_checksums(&frame, 14).map_err(TestCaseError::fail)?;
        if !matches!(want, Verdict::Inbound { .. }) {
            prop_assert_eq!(frame, before);
        }
    }
}

/// A random mix of traffic: valid packets both ways, garbage, fragments, other link layers.
fn traffic() -> impl Strategy<Value = Vec<Vec<u8>>> {
    let frames = seed_frames();
    let one = prop_oneof![
        4 => (any::<Index>()).prop_map({
            let frames = frames.clone();
            move |i| frames[i.index(frames.len())].clone()
        }),
        2 => frame_bytes(),
        1 => proptest::collection::vec(any::<u8>(), 0..80),
    ];
    proptest::collection::vec(one, 0..40)
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn the_report_counts_always_add_up(frames in traffic(), shape in any::<bool>()) {
        let s = bodies::seed();
        let bytes = pcap_file(1, &frames);
        let mut reader = CaptureReader::from_bytes(bytes).unwrap();
        let mut bandwidth = s.limiter.clone();
        if shape {
            bandwidth.mode = dnatsim::rules::LimitMode::Shape;
        }
        let options = ReplayOptions { bandwidth: Some(bandwidth), ..ReplayOptions::default() };
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out.pcap");
        let mut writer = CaptureWriter::create(&out, &WriterConfig::like(&reader)).unwrap();
        let r = replay(&mut reader, Some(&mut writer), &s.table, &options, &mut Quiet).unwrap();
        writer.finish().unwrap();
        prop_assert_eq!(r.counters.packets_in, frames.len() as u64);
        bodies::check_conservation(&r, frames.len() as u64);
        let report = Report::new(
            "in".into(), "rules".into(), &r.counters, &s.table, &seed_ips(), r.flows, r.warnings.clone(),
        );
        let dropped: u64 = report.dropped.values().sum();
        prop_assert_eq!(report.packets_in, report.packets_out + dropped);
        prop_assert_eq!(
            report.passed_unchanged,
            report.passed_not_ipv4 + report.passed_foreign
        );
        let entry_packets: u64 = report.entries.iter().map(|e| e.packets).sum();
        prop_assert_eq!(
            entry_packets,
            report.translated.inbound + report.translated.outbound
        );
        let out_bytes: u64 = {
            let mut back = CaptureReader::open(&out).unwrap();
            let mut n = 0u64;
            let mut b = 0u64;
            while let Some(p) = back.next_packet().unwrap() {
                n += 1;
                b += u64::from(p.orig_len);
            }
            prop_assert_eq!(n, report.packets_out);
            b
        };
        prop_assert_eq!(out_bytes, report.bytes_out);
        // Quiet replay of the same input counts the same.
        let mut again = CaptureReader::from_bytes(pcap_file(1, &frames)).unwrap();
        let r2 = replay(&mut again, None, &s.table, &options, &mut Quiet).unwrap();
        prop_assert_eq!(r2.counters, r.counters);
    }
}
