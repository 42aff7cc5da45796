//! The bodies of dnatsim's fuzz targets, shared with `tests/properties.rs` (which includes this
//! file with `#[path]`), so that `cargo test` runs exactly what the fuzzer runs.
//!
//! Each body takes arbitrary bytes, drives one entry point and asserts its invariants; a
//! panic, from the code under test or from an assertion here, is a finding.

use std::io::Cursor;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use dnatsim::bandwidth::LimiterConfig;
use dnatsim::capture::{CaptureError, CaptureReader, CaptureWriter, WriterConfig};
use dnatsim::nat::{
    Config, DropReason, Event, ForwardTable, Outcome, PacketMeta, Translator, Verdict,
};
use dnatsim::pipeline::{Quiet, ReplayOptions, ReplayResult};
use dnatsim::rules::{LimitMode, Rules};
use dnatsim::wire::checksum;
use dnatsim::wire::{Frame, locate_ipv4};

/// The tutorial's rules, the table every target translates with.
pub const SEED_RULES: &str = include_str!("../../pcaps/seed/rules.toml");

/// Link types the translate target reads every input as: Ethernet, raw, SLL, SLL2, NULL.
pub const LINK_TYPES: [u16; 5] = [1, 101, 113, 276, 0];

/// The seed rules, compiled once per process.
pub struct Seed {
    /// The parsed rules.
    pub rules: Rules,
    /// Their forward table.
    pub table: ForwardTable,
    /// Their bandwidth package (police, 100 ms statistics).
    pub limiter: LimiterConfig,
}

/// The seed scenario, built on first use.
pub fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let rules = dnatsim::rules::parse_str(SEED_RULES, "pcaps/seed/rules.toml")
            .expect("the seed rules parse")
            .rules;
        let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
        let limiter = LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000)
            .expect("the seed package resolves");
        Seed {
            rules,
            table,
            limiter,
        }
    })
}

/// One delivered packet: (data, orig_len, ts_ns, link_type, interface, record, offset).
pub type ReadPacket = (Vec<u8>, u32, i64, u16, u32, u64, u64);

/// What one read of a capture produced, for comparing two ways of reading it.
#[derive(Debug, PartialEq, Eq)]
pub struct ReadSummary {
    /// The packets, in order.
    pub packets: Vec<ReadPacket>,
    /// The error that ended the read, if any.
    pub error: Option<String>,
    /// Warnings after the read.
    pub warnings: Vec<String>,
}

fn read_all(opened: Result<CaptureReader, CaptureError>, lenient: bool, len: u64) -> ReadSummary {
    let mut s = ReadSummary {
        packets: Vec::new(),
        error: None,
        warnings: Vec::new(),
    };
    let mut reader = match opened {
        Ok(r) => r,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("offset"),
                "open error without an offset: {msg}"
            );
            s.error = Some(msg);
            return s;
        }
    };
    reader.set_lenient_snaplen(lenient);
    let mut last_offset = None;
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => {
                assert_eq!(p.record, s.packets.len() as u64 + 1, "records count from 1");
                assert!(p.offset < len, "packet offset {} past the file", p.offset);
                assert!(
                    last_offset.is_none_or(|o| p.offset > o),
                    "offsets move forward"
                );
                assert!(p.data.len() as u64 <= len, "more data than the file holds");
                assert!(
                    (p.interface as usize) < p.interfaces.len(),
                    "packet on an interface the reader does not list"
                );
                last_offset = Some(p.offset);
                s.packets.push((
                    p.data.to_vec(),
                    p.orig_len,
                    p.ts_ns,
                    p.link_type,
                    p.interface,
                    p.record,
                    p.offset,
                ));
            }
            Ok(None) => break,
            Err(e) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("offset"),
                    "read error without an offset: {msg}"
                );
                s.error = Some(msg);
                // Errors are final.
                assert!(matches!(reader.next_packet(), Ok(None)));
                break;
            }
        }
    }
    assert!(
        matches!(reader.next_packet(), Ok(None)),
        "the end stays the end"
    );
    assert_eq!(reader.packets_read(), s.packets.len() as u64);
    s.warnings = reader.warnings().iter().map(|w| w.to_string()).collect();
    s
}

/// Reads `data` as a capture, strict and lenient, from memory and as a stream; both sources
/// must deliver the same packets, errors and warnings, and leniency may only add packets.
pub fn capture_reader(data: &[u8]) {
    let len = data.len() as u64;
    let mut strict = None;
    for lenient in [false, true] {
        let mem = read_all(CaptureReader::from_bytes(data.to_vec()), lenient, len);
        let stream = read_all(
            CaptureReader::from_reader(Box::new(Cursor::new(data.to_vec()))),
            lenient,
            len,
        );
        assert_eq!(mem, stream, "memory and stream readers disagree");
        match strict.take() {
            None => strict = Some(mem),
            Some(s) => {
                let s: ReadSummary = s;
                assert!(
                    mem.packets.starts_with(&s.packets),
                    "lenient reading lost packets that strict reading delivered"
                );
                if s.error.is_none() {
                    assert_eq!(s, mem, "leniency changed a file strict reading accepted");
                }
            }
        }
    }
}

/// The IPv4 header checksum verdict of the packet at `ip`, when its header was captured.
fn ip_header_ok(frame: &[u8], ip: usize) -> Option<bool> {
    let b = frame.get(ip..)?;
    let ihl = usize::from(*b.first()? & 0x0f) * 4;
    let h = b.get(..ihl.max(20))?;
    Some(checksum::fold(checksum::sum(h)) == 0xffff)
}

/// The TCP, UDP or ICMP checksum verdict of a whole, unfragmented packet at `ip`; `None`
/// when there is nothing to verify (cut short, a fragment, another protocol, no UDP checksum).
fn l4_ok(frame: &[u8], ip: usize) -> Option<bool> {
    let b = frame.get(ip..)?;
    let ihl = usize::from(*b.first()? & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([*b.get(2)?, *b.get(3)?]));
    if ihl < 20 || total < ihl || b.len() < total {
        return None;
    }
    if u16::from_be_bytes([b[6], b[7]]) & 0x3fff != 0 {
        return None;
    }
    let (proto, p) = (b[9], &b[ihl..total]);
    let src = u32::from_be_bytes([b[12], b[13], b[14], b[15]]);
    let dst = u32::from_be_bytes([b[16], b[17], b[18], b[19]]);
    let acc = match proto {
        6 if p.len() >= 20 => {
            checksum::pseudo_header_sum(src, dst, 6, p.len() as u16) + checksum::sum(p)
        }
        17 if p.len() >= 8 => {
            let ulen = usize::from(u16::from_be_bytes([p[4], p[5]]));
            if ulen < 8 || ulen > p.len() || (p[6] == 0 && p[7] == 0) {
                return None;
            }
            checksum::pseudo_header_sum(src, dst, 17, ulen as u16) + checksum::sum(&p[..ulen])
        }
        1 if p.len() >= 4 => checksum::sum(p),
        _ => return None,
    };
    Some(checksum::fold(acc) == 0xffff)
}

/// Sets the IPv4 header checksum of the packet at `ip` right, if its header was captured.
fn fix_ip_checksum(frame: &mut [u8], ip: usize) {
    let Some(&first) = frame.get(ip) else {
        return;
    };
    let ihl = (usize::from(first & 0x0f) * 4).max(20);
    let Some(h) = frame.get_mut(ip..ip + ihl) else {
        return;
    };
    h[10] = 0;
    h[11] = 0;
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
}

fn is_translated(v: Verdict) -> bool {
    matches!(v, Verdict::Inbound { .. } | Verdict::Outbound { .. })
}

/// Translates one frame and checks it: no panic, the length kept, checksums valid on input
/// stay valid, and a packet that is not translated is left byte for byte as it came.
fn check_process(t: &mut Translator, frame: &mut [u8], meta: &PacketMeta) -> Outcome {
    let before = frame.to_vec();
    let ip = match locate_ipv4(meta.link_type, frame) {
        Frame::Ipv4 { offset } => Some(offset),
        _ => None,
    };
    let ip_in = ip.and_then(|o| ip_header_ok(frame, o));
    let l4_in = ip.and_then(|o| l4_ok(frame, o));
    let out = t.process(frame, meta);
    assert_eq!(frame.len(), before.len(), "the frame length changed");
    if is_translated(out.verdict) {
        let o = ip.expect("a translated packet is IPv4");
        assert_eq!(
            ip_in,
            Some(true),
            "translated a packet with a bad header checksum"
        );
        assert_eq!(
            ip_header_ok(frame, o),
            Some(true),
            "the IPv4 header checksum broke: {out:?}"
        );
        if l4_in == Some(true) {
            assert_eq!(
                l4_ok(frame, o),
                Some(true),
                "the transport checksum broke: {out:?}"
            );
        }
    } else {
        assert_eq!(
            frame,
            &before[..],
            "an untranslated packet changed: {out:?}"
        );
    }
    if let Verdict::Drop(DropReason::Malformed) = out.verdict {
        assert!(
            out.notes.malformed.is_some(),
            "a malformed verdict without its reason"
        );
    }
    while let Some(ev) = t.pop_event() {
        match ev {
            Event::Released {
                meta: m,
                data,
                outcome,
            } => {
                if is_translated(outcome.verdict)
                    && let Frame::Ipv4 { offset } = locate_ipv4(m.link_type, &data)
                {
                    assert_eq!(
                        ip_header_ok(&data, offset),
                        Some(true),
                        "a released fragment's header checksum broke"
                    );
                }
                t.recycle(data);
            }
            Event::Orphan { outcome, .. } => {
                assert_eq!(outcome.verdict, Verdict::Drop(DropReason::FragmentOrphan));
            }
        }
    }
    out
}

/// Reads `data` as a frame of each link type in [`LINK_TYPES`] and translates it with the seed
/// table: as it is, with its IPv4 checksum fixed, aimed at an EIP and sent from a server
/// (so random bytes reach the rewrite), each whole and as if cut by a snap length.
pub fn translate(data: &[u8]) {
    let s = seed();
    let eips: Vec<u32> = s
        .rules
        .bandwidth_package
        .public_ips
        .iter()
        .map(|&a| u32::from(a))
        .collect();
    let servers: Vec<u32> = s
        .rules
        .forward_entries
        .iter()
        .map(|e| u32::from(e.internal_ip))
        .collect();
    for link_type in LINK_TYPES {
        let mut t = Translator::new(&s.table, Config::default());
        let ip = match locate_ipv4(link_type, data) {
            Frame::Ipv4 { offset } => Some(offset),
            _ => None,
        };
        let pick = data.len();
        for variant in 0..4u64 {
            let mut frame = data.to_vec();
            if variant > 0 {
                let Some(o) = ip else { break };
                if frame.len() < o + 20 {
                    break;
                }
                match variant {
                    2 => frame[o + 16..o + 20]
                        .copy_from_slice(&eips[pick % eips.len()].to_be_bytes()),
                    3 => frame[o + 12..o + 20].copy_from_slice(
                        &[
                            servers[pick % servers.len()].to_be_bytes(),
                            [198, 51, 100, 7],
                        ]
                        .concat(),
                    ),
                    _ => {}
                }
                fix_ip_checksum(&mut frame, o);
            }
            for extra in [0u32, 64] {
                let mut f = frame.clone();
                let meta = PacketMeta {
                    record: variant * 2 + u64::from(extra > 0) + 1,
                    ts_ns: 1_000 + variant,
                    interface: 0,
                    orig_len: (f.len() as u32).saturating_add(extra),
                    link_type,
                };
                check_process(&mut t, &mut f, &meta);
            }
        }
        t.finish();
        while let Some(ev) = t.pop_event() {
            if let Event::Orphan { outcome, .. } = ev {
                assert_eq!(outcome.verdict, Verdict::Drop(DropReason::FragmentOrphan));
            }
        }
    }
}

/// Asserts that a finished run's counts add up.
pub fn check_conservation(r: &ReplayResult, packets_read: u64) {
    let c = &r.counters;
    assert_eq!(
        c.packets_in, packets_read,
        "every packet read is counted in"
    );
    assert_eq!(
        c.packets_in,
        c.packets_out + c.dropped_total(),
        "packets in = out + dropped: {c:?}"
    );
    let decided = c.inbound + c.outbound + c.passed_not_ipv4 + c.passed_foreign;
    let rate_limited = c.dropped(DropReason::RateLimited);
    assert_eq!(
        decided + c.dropped_total() - rate_limited,
        c.packets_in,
        "every packet has exactly one verdict: {c:?}"
    );
    assert_eq!(c.packets_out + rate_limited, decided, "{c:?}");
    let per_entry: u64 = c.entries.iter().map(|e| e.packets).sum();
    assert_eq!(per_entry, c.inbound + c.outbound, "{c:?}");
}

static RUN: AtomicU64 = AtomicU64::new(0);

/// Replays `data` as a capture through the whole pipeline with the bandwidth package on; the
/// input's length picks the mode (no output, police, shape, annotated; one, two or four threads), so every mode is
/// fuzzed without spending input bytes. The counts must add up and the output must hold
/// exactly the packets counted out.
pub fn replay(data: &[u8]) {
    let s = seed();
    let Ok(mut reader) = CaptureReader::from_bytes(data.to_vec()) else {
        return;
    };
    reader.set_lenient_snaplen(true);
    let mode = data.len() % 4;
    let mut bandwidth = s.limiter.clone();
    if mode == 2 {
        bandwidth.mode = LimitMode::Shape;
    }
    let options = ReplayOptions {
        bandwidth: Some(bandwidth),
        annotate: mode == 3,
        // Two threads read ahead; four shard over two translation workers. The output must
        // be the same either way.
        threads: [1, 2, 4][(data.len() / 4) % 3],
        ..ReplayOptions::default()
    };
    if mode == 0 {
        match dnatsim::pipeline::replay(&mut reader, None, &s.table, &options, &mut Quiet) {
            Ok(r) => check_conservation(&r, reader.packets_read()),
            Err(e) => assert!(e.to_string().contains("offset"), "{e}"),
        }
        return;
    }
    let out = std::env::temp_dir().join(format!(
        "dnatsim-fuzz-{}-{}.out",
        std::process::id(),
        RUN.fetch_add(1, Ordering::Relaxed)
    ));
    let mut config = if options.annotate {
        WriterConfig::pcapng_annotated(&reader)
    } else {
        WriterConfig::like(&reader)
    };
    config.lenient_snaplen = true;
    let Ok(mut writer) = CaptureWriter::create(&out, &config) else {
        return;
    };
    let result = dnatsim::pipeline::replay(
        &mut reader,
        Some(&mut writer),
        &s.table,
        &options,
        &mut Quiet,
    );
    let r = match result {
        Ok(r) => r,
        // A record the output cannot hold (a timestamp out of range) stops the run cleanly.
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    check_conservation(&r, reader.packets_read());
    if writer.finish().is_err() {
        return;
    }
    let mut back = CaptureReader::open(&out).expect("the output reads back");
    back.set_lenient_snaplen(true);
    let mut n = 0u64;
    while back.next_packet().expect("the output reads back").is_some() {
        n += 1;
    }
    let _ = std::fs::remove_file(&out);
    if !options.annotate {
        assert_eq!(
            n, r.counters.packets_out,
            "the output holds the packets out"
        );
    }
}

/// Parses `data` as a rules file; valid rules must survive `to_toml` and parse back equal,
/// and every error must render.
pub fn rules_parser(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match dnatsim::rules::parse_str(text, "fuzz.toml") {
        Ok(p) => {
            let table = ForwardTable::new(
                &p.rules.forward_entries,
                &p.rules.bandwidth_package.public_ips,
            );
            assert_eq!(table.entries().len(), p.rules.forward_entries.len());
            let back = dnatsim::rules::to_toml(&p.rules);
            let again = dnatsim::rules::parse_str(&back, "roundtrip.toml")
                .unwrap_or_else(|e| panic!("to_toml wrote rules that do not parse: {e}\n{back}"));
            // Entries remember where they were written; only that may differ.
            let unplaced = |r: &Rules| {
                let mut r = r.clone();
                for e in &mut r.forward_entries {
                    e.position = Default::default();
                }
                r
            };
            assert_eq!(
                unplaced(&again.rules),
                unplaced(&p.rules),
                "to_toml changed the rules:\n{back}"
            );
            let _ = dnatsim::rules::to_nft(&p.rules);
            let _ = dnatsim::rules::to_api_json(&p.rules);
            for w in &p.warnings {
                let _ = w.to_string();
            }
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(
                msg.contains("fuzz.toml"),
                "an error that names no file: {msg}"
            );
        }
    }
}
