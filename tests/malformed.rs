//! The malformed-input corpus (`tests/data/malformed/`): one small capture per kind of defect,
//! each with its exact outcome. File-level defects are errors (or warnings) naming the record
//! and offset; packet-level defects are counted under their drop reason while the run goes on.
//!
//! The files are made by [`corpus`] below. `DNATSIM_WRITE_MALFORMED=1 cargo test --test
//! malformed committed_files` rewrites them (alone: the other tests read the files);
//! otherwise a test checks that the committed files are exactly what the generator makes.

mod common;

use common::*;
use dnatsim::capture::CaptureReader;
use dnatsim::nat::{DropReason, Malformed, MatchKind, Outcome, Verdict};
use dnatsim::pipeline::{Observer, ReplayOptions, ReplayResult, replay};
use dnatsim::wire::Ipv4Error;
use dnatsim::wire::checksum;
use std::path::{Path, PathBuf};
use std::process::Command;

const DIR: &str = "tests/data/malformed";
const RULES: &str = "pcaps/seed/rules.toml";
/// Seconds of the first record; each later record is one second later.
const T0: u32 = 1_700_000_000;

// ---------------------------------------------------------------------------------------------
// The generator.

fn pcap_header(link_type: u32, snaplen: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
    v.extend_from_slice(&2u16.to_le_bytes());
    v.extend_from_slice(&4u16.to_le_bytes());
    v.extend_from_slice(&0i32.to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&snaplen.to_le_bytes());
    v.extend_from_slice(&link_type.to_le_bytes());
    v
}

/// A pcap record header (record `i`, 0-based) followed by `data`; the lengths may lie.
fn record(v: &mut Vec<u8>, i: u32, caplen: u32, orig_len: u32, data: &[u8]) {
    v.extend_from_slice(&(T0 + i).to_le_bytes());
    v.extend_from_slice(&0u32.to_le_bytes());
    v.extend_from_slice(&caplen.to_le_bytes());
    v.extend_from_slice(&orig_len.to_le_bytes());
    v.extend_from_slice(data);
}

/// An Ethernet pcap of whole frames.
fn pcap(frames: &[Vec<u8>]) -> Vec<u8> {
    let mut v = pcap_header(1, 65535);
    for (i, f) in frames.iter().enumerate() {
        record(&mut v, i as u32, f.len() as u32, f.len() as u32, f);
    }
    v
}

fn block(v: &mut Vec<u8>, block_type: u32, body: &[u8]) {
    let len = 12 + body.len() as u32;
    v.extend_from_slice(&block_type.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(body);
    v.extend_from_slice(&len.to_le_bytes());
}

/// A pcapng section header and one interface block per link type.
fn pcapng_head(link_types: &[u16]) -> Vec<u8> {
    let mut v = Vec::new();
    let mut shb = Vec::new();
    shb.extend_from_slice(&0x1a2b_3c4du32.to_le_bytes());
    shb.extend_from_slice(&1u16.to_le_bytes());
    shb.extend_from_slice(&0u16.to_le_bytes());
    shb.extend_from_slice(&(-1i64).to_le_bytes());
    block(&mut v, 0x0a0d_0d0a, &shb);
    for &lt in link_types {
        let mut idb = Vec::new();
        idb.extend_from_slice(&lt.to_le_bytes());
        idb.extend_from_slice(&0u16.to_le_bytes());
        idb.extend_from_slice(&0u32.to_le_bytes());
        block(&mut v, 1, &idb);
    }
    v
}

/// An enhanced packet block body: interface, microsecond timestamp, lengths, padded data.
fn epb_body(interface: u32, i: u32, data: &[u8]) -> Vec<u8> {
    let ts = u64::from(T0 + i) * 1_000_000;
    let mut b = Vec::new();
    b.extend_from_slice(&interface.to_le_bytes());
    b.extend_from_slice(&((ts >> 32) as u32).to_le_bytes());
    b.extend_from_slice(&(ts as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(&(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b.resize(b.len().next_multiple_of(4), 0);
    b
}

/// A valid TCP packet to IP3:80, which entry 2 sends to ECS3:80 (72 bytes on the wire).
fn good(n: u16) -> Vec<u8> {
    tcp(CLIENT, 40000 + n, IP3, 80, 64, b"GET / HTTP/1.0\r\n\r\n")
}

/// A small UDP packet to IP1:53 (46 bytes on the wire).
fn small_udp() -> Vec<u8> {
    udp(CLIENT, 5000, IP1, 53, 64, b"abcd")
}

/// Sets the IPv4 header checksum of the Ethernet frame's packet, over its IHL (at least 20).
fn set_ip_checksum(f: &mut [u8]) {
    let ihl = (usize::from(f[14] & 0x0f) * 4).max(20);
    f[24] = 0;
    f[25] = 0;
    let c = checksum::checksum(&f[14..14 + ihl]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
}

/// An Ethernet frame holding a raw IPv4 fragment of UDP from CLIENT to IP1 (ident 0x4242).
fn fragment(offset_units: u16, more: bool, payload: &[u8]) -> Vec<u8> {
    let total = 20 + payload.len() as u16;
    let flags = if more { 0x2000 } else { 0 } | offset_units;
    let mut f = Vec::new();
    f.extend_from_slice(&MAC_B);
    f.extend_from_slice(&MAC_A);
    f.extend_from_slice(&[0x08, 0x00]);
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&0x4242u16.to_be_bytes());
    f.extend_from_slice(&flags.to_be_bytes());
    f.extend_from_slice(&[64, 17, 0, 0]);
    f.extend_from_slice(&CLIENT);
    f.extend_from_slice(&IP1);
    f.extend_from_slice(payload);
    set_ip_checksum(&mut f);
    f
}

/// The 32-byte UDP datagram (CLIENT:5000 -> IP1:53) that the fragment files cut up.
fn fragmented_datagram() -> Vec<u8> {
    let mut d = Vec::new();
    d.extend_from_slice(&5000u16.to_be_bytes());
    d.extend_from_slice(&53u16.to_be_bytes());
    d.extend_from_slice(&32u16.to_be_bytes());
    d.extend_from_slice(&[0, 0]); // no checksum: it would need the whole datagram
    d.extend_from_slice(b"0123456789abcdefghijklmn");
    d
}

/// Every file of the corpus, by name.
fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let mut files = Vec::new();

    let header = pcap_header(1, 65535);
    files.push(("truncated_file_header.pcap", header[..10].to_vec()));

    let mut v = pcap(&[good(1), good(2)]);
    let third = good(3);
    record(
        &mut v,
        2,
        third.len() as u32,
        third.len() as u32,
        &third[..30],
    );
    files.push(("truncated_last_record.pcap", v));

    let mut v = pcap_header(1, 96);
    let long = tcp(CLIENT, 40002, IP3, 80, 64, &[b'x'; 74]);
    for (i, f) in [good(1), long, good(3)].iter().enumerate() {
        record(&mut v, i as u32, f.len() as u32, f.len() as u32, f);
    }
    files.push(("caplen_over_snaplen.pcap", v));

    let mut v = pcap(&[good(1)]);
    record(&mut v, 1, u32::MAX, u32::MAX, &good(2));
    files.push(("caplen_4gib.pcap", v));

    let mut v = pcapng_head(&[1]);
    block(&mut v, 6, &epb_body(0, 0, &good(1)));
    // A second packet block whose length field says 106: not a multiple of 4.
    let at = v.len();
    block(&mut v, 6, &epb_body(0, 1, &good(2)));
    v[at + 4..at + 8].copy_from_slice(&106u32.to_le_bytes());
    files.push(("pcapng_bad_block_length.pcapng", v));

    let mut v = pcapng_head(&[147, 1]);
    block(&mut v, 6, &epb_body(0, 0, &good(1)));
    block(&mut v, 6, &epb_body(1, 1, &good(2)));
    files.push(("unknown_link_type.pcapng", v));

    let mut f = good(1);
    f[14] = 0x44;
    set_ip_checksum(&mut f);
    files.push(("ipv4_ihl_below_5.pcap", pcap(&[f, good(2)])));

    let mut f = small_udp();
    f[14] = 0x4f;
    files.push(("ipv4_ihl_beyond_packet.pcap", pcap(&[f, good(2)])));

    // Record 1 claims 1000 bytes of IP in a 72-byte frame that was not snapped; record 2 is
    // snapped by the capture (54 of 72 bytes), which is not a lie.
    let mut v = pcap_header(1, 65535);
    let mut f = good(1);
    f[16..18].copy_from_slice(&1000u16.to_be_bytes());
    set_ip_checksum(&mut f);
    record(&mut v, 0, 72, 72, &f);
    record(&mut v, 1, 54, 72, &good(2)[..54]);
    record(&mut v, 2, 72, 72, &good(3));
    files.push(("ipv4_total_length_beyond_frame.pcap", v));

    // IHL 6 with a record-route option (type 7) claiming 9 bytes where 4 are left.
    let g = good(1);
    let mut f = g[..34].to_vec();
    f.extend_from_slice(&[7, 9, 4, 0]);
    f.extend_from_slice(&g[34..]);
    f[14] = 0x46;
    f[16..18].copy_from_slice(&62u16.to_be_bytes());
    set_ip_checksum(&mut f);
    files.push(("ipv4_options_overrun.pcap", pcap(&[f, good(2)])));

    // Data offset 15 words (60 bytes) in a 38-byte segment.
    let mut f = good(1);
    f[34 + 12] = 0xf0;
    files.push(("tcp_data_offset_beyond.pcap", pcap(&[f, good(2)])));

    // UDP length 200 in a 12-byte datagram.
    let mut f = small_udp();
    f[34 + 4..34 + 6].copy_from_slice(&200u16.to_be_bytes());
    files.push(("udp_length_lies.pcap", pcap(&[f, good(2)])));

    // Port unreachable to IP1 quoting only 12 bytes of the offending header.
    let quoted = &good(9)[14..26];
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(quoted);
    let c = checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    let f = other_proto(CLIENT, IP1, 1, 64, &icmp);
    files.push(("icmp_error_truncated_inner.pcap", pcap(&[f, good(2)])));

    // Bytes 0..24 of the datagram, then bytes 8..32: the second overlaps the first by 16.
    let d = fragmented_datagram();
    let a = fragment(0, true, &d[..24]);
    let b = fragment(1, false, &d[8..32]);
    files.push(("ipv4_overlapping_fragments.pcap", pcap(&[a, b, good(3)])));

    // A first fragment, a later one reaching 65512 + 32 = 65544 bytes, one ending exactly at
    // 65504 + 31 = 65535.
    let a = fragment(0, true, &d[..24]);
    let over = fragment(8189, true, &[0x55; 32]);
    let edge = fragment(8188, false, &[0x66; 31]);
    files.push((
        "ipv4_fragment_beyond_65535.pcap",
        pcap(&[a, over, edge, good(4)]),
    ));

    files
}

fn path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(DIR).join(name)
}

#[test]
fn committed_files_are_what_the_generator_makes() {
    let write = std::env::var_os("DNATSIM_WRITE_MALFORMED").is_some();
    for (name, bytes) in corpus() {
        if write {
            std::fs::write(path(name), &bytes).unwrap();
        }
        let on_disk = std::fs::read(path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(on_disk, bytes, "{name} differs from its generator");
    }
}

// ---------------------------------------------------------------------------------------------
// Running the files.

/// Collects every outcome the pipeline reports, in order.
#[derive(Default)]
struct Record(Vec<(u64, Outcome)>);

impl Observer for Record {
    fn packet(&mut self, record: u64, outcome: &Outcome) {
        self.0.push((record, *outcome));
    }
}

fn open(name: &str, lenient: bool) -> CaptureReader {
    let mut r = CaptureReader::open(&path(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    r.set_lenient_snaplen(lenient);
    r
}

fn options() -> ReplayOptions {
    let rules = dnatsim::rules::parse_file(Path::new(RULES)).unwrap().rules;
    ReplayOptions {
        bandwidth: Some(
            dnatsim::bandwidth::LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000)
                .unwrap(),
        ),
        ..ReplayOptions::default()
    }
}

/// Replays a file leniently (as the command line does) with the seed rules, with one thread;
/// two and three threads must see the same outcomes and counts.
fn run(name: &str) -> (ReplayResult, Vec<(u64, Outcome)>) {
    let table = seed_table();
    let runs = [1, 2, 3].map(|threads| {
        let mut obs = Record::default();
        let mut reader = open(name, true);
        let options = ReplayOptions {
            threads,
            ..options()
        };
        let r = replay(&mut reader, None, &table, &options, &mut obs)
            .unwrap_or_else(|e| panic!("{name}, {threads} threads: {e}"));
        let c = &r.counters;
        assert_eq!(c.packets_in, c.packets_out + c.dropped_total(), "{name}");
        (r, obs.0)
    });
    for (threads, (r, outcomes)) in [(2, &runs[1]), (3, &runs[2])] {
        assert_eq!(r.counters, runs[0].0.counters, "{name}, {threads} threads");
        assert_eq!(r.warnings, runs[0].0.warnings, "{name}, {threads} threads");
        assert_eq!(*outcomes, runs[0].1, "{name}, {threads} threads");
    }
    let [one, ..] = runs;
    one
}

/// The verdict of [`good`] packets: entry 2, a port mapping.
const WEB: Verdict = Verdict::Inbound {
    entry: 2,
    kind: MatchKind::Port,
};

const IP_ANY: Verdict = Verdict::Inbound {
    entry: 0,
    kind: MatchKind::IpAny,
};

/// Reads a file to its end, returning the packets and the error or warnings.
fn read_to_end(name: &str, lenient: bool) -> (u64, Result<Vec<String>, String>) {
    let mut r = match CaptureReader::open(&path(name)) {
        Ok(r) => r,
        Err(e) => return (0, Err(e.to_string())),
    };
    r.set_lenient_snaplen(lenient);
    let mut n = 0;
    loop {
        match r.next_packet() {
            Ok(Some(_)) => n += 1,
            Ok(None) => break,
            Err(e) => return (n, Err(e.to_string())),
        }
    }
    (n, Ok(r.warnings().iter().map(|w| w.to_string()).collect()))
}

/// One packet-level defect followed by good packets: the defect is `malformed`, with its
/// exact reason, and every later packet is translated.
fn assert_malformed_then_good(name: &str, why: Malformed) {
    let (r, outcomes) = run(name);
    let c = &r.counters;
    assert_eq!(c.packets_in, 2, "{name}");
    assert_eq!(c.dropped(DropReason::Malformed), 1, "{name}");
    assert_eq!(c.dropped_total(), 1, "{name}");
    assert_eq!(c.inbound, 1, "{name}");
    assert_eq!(c.packets_out, 1, "{name}");
    assert!(r.warnings.is_empty(), "{name}: {:?}", r.warnings);
    let (rec, first) = outcomes[0];
    assert_eq!(rec, 1);
    assert_eq!(
        first.verdict,
        Verdict::Drop(DropReason::Malformed),
        "{name}"
    );
    assert_eq!(first.notes.malformed, Some(why), "{name}");
    assert_eq!(outcomes[1].0, 2);
    assert_eq!(outcomes[1].1.verdict, WEB, "{name}: the run goes on");
}

// ---- file-level defects ----------------------------------------------------------------------

#[test]
fn truncated_file_header_is_an_error_at_offset_0() {
    let (n, res) = read_to_end("truncated_file_header.pcap", true);
    assert_eq!(n, 0);
    assert_eq!(
        res.unwrap_err(),
        "pcap file header is cut short: 10 of 24 bytes at offset 0"
    );
}

#[test]
fn truncated_last_record_is_a_warning_and_whole_packets_are_translated() {
    let (r, outcomes) = run("truncated_last_record.pcap");
    // Records 1 and 2 (88 bytes each) follow the 24-byte header; record 3 starts at 200 and
    // has its 16-byte header and 30 of its 72 data bytes.
    assert_eq!(
        r.warnings,
        ["record 3 at offset 200 is cut short: 46 of 88 bytes; the file ends there"]
    );
    assert_eq!(r.counters.packets_in, 2);
    assert_eq!(r.counters.inbound, 2);
    assert_eq!(r.counters.packets_out, 2);
    let verdicts: Vec<_> = outcomes.iter().map(|(n, o)| (*n, o.verdict)).collect();
    assert_eq!(verdicts, [(1, WEB), (2, WEB)]);
}

#[test]
fn caplen_over_snaplen_is_an_error_when_strict_and_a_warning_when_lenient() {
    let name = "caplen_over_snaplen.pcap";
    let (n, res) = read_to_end(name, false);
    assert_eq!(n, 1, "{res:?}");
    assert_eq!(
        res.unwrap_err(),
        "record 2 at offset 112: captured length 128 is larger than the snapshot length 96 \
         of the file header; the file is corrupt from here"
    );
    let (r, outcomes) = run(name);
    assert_eq!(
        r.warnings,
        [
            "record 2 at offset 112 has captured length 128, more than the snapshot length 96; \
             such packets were read whole"
        ]
    );
    assert_eq!(r.counters.packets_in, 3);
    assert_eq!(r.counters.inbound, 3);
    assert_eq!(outcomes.len(), 3);
}

#[test]
fn caplen_of_4_gib_stops_the_run_with_the_record_and_offset() {
    let name = "caplen_4gib.pcap";
    let want = "record 2 at offset 112: captured length 4294967295 is larger than the limit of \
                67108864 bytes; the file is corrupt from here";
    for lenient in [false, true] {
        let (n, res) = read_to_end(name, lenient);
        assert_eq!(n, 1, "{res:?}");
        assert_eq!(res.unwrap_err(), want);
    }
    let table = seed_table();
    for threads in [1, 2, 3] {
        let mut obs = Record::default();
        let options = ReplayOptions {
            threads,
            ..options()
        };
        let err = replay(&mut open(name, true), None, &table, &options, &mut obs).unwrap_err();
        assert_eq!(err.to_string(), want, "{threads} threads");
        assert_eq!(
            obs.0.len(),
            1,
            "{threads} threads: the packet before the garbage was processed"
        );
        assert_eq!(obs.0[0].1.verdict, WEB);
    }
}

#[test]
fn pcapng_bad_block_length_is_an_error_with_block_and_offset() {
    // Section header 28 + interface 20 + first packet block 104 = offset 152.
    let (n, res) = read_to_end("pcapng_bad_block_length.pcapng", true);
    assert_eq!(n, 1, "{res:?}");
    assert_eq!(
        res.unwrap_err(),
        "pcapng block 4 (type 0x00000006) at offset 152: length 106 is not a multiple of 4"
    );
}

#[test]
fn unknown_link_type_passes_as_not_ipv4() {
    let (r, outcomes) = run("unknown_link_type.pcapng");
    let c = &r.counters;
    assert_eq!((c.packets_in, c.passed_not_ipv4, c.inbound), (2, 1, 1));
    assert_eq!(c.packets_out, 2);
    assert_eq!(c.dropped_total(), 0);
    assert_eq!(outcomes[0].1.verdict, Verdict::PassNotIpv4);
    assert_eq!(outcomes[1].1.verdict, WEB);
}

// ---- packet-level defects --------------------------------------------------------------------

#[test]
fn ihl_below_5_is_malformed() {
    assert_malformed_then_good(
        "ipv4_ihl_below_5.pcap",
        Malformed::Ip(Ipv4Error::BadHeaderLength { header_len: 16 }),
    );
}

#[test]
fn ihl_beyond_the_packet_is_malformed() {
    assert_malformed_then_good(
        "ipv4_ihl_beyond_packet.pcap",
        Malformed::Ip(Ipv4Error::HeaderBeyondCapture {
            header_len: 60,
            len: 32,
        }),
    );
}

#[test]
fn total_length_beyond_the_wire_is_malformed_but_snapped_is_not() {
    let (r, outcomes) = run("ipv4_total_length_beyond_frame.pcap");
    let c = &r.counters;
    assert_eq!(c.packets_in, 3);
    assert_eq!(c.dropped(DropReason::Malformed), 1);
    assert_eq!((c.inbound, c.snapped, c.packets_out), (2, 1, 2));
    assert_eq!(
        outcomes[0].1.notes.malformed,
        Some(Malformed::Ip(Ipv4Error::TotalLengthBeyondFrame {
            total_len: 1000,
            len: 58
        }))
    );
    assert_eq!(outcomes[1].1.verdict, WEB);
    assert!(outcomes[1].1.notes.snapped);
    assert_eq!(outcomes[2].1.verdict, WEB);
}

#[test]
fn options_overrunning_the_header_are_malformed() {
    assert_malformed_then_good(
        "ipv4_options_overrun.pcap",
        Malformed::Ip(Ipv4Error::BadOption { offset: 20 }),
    );
}

#[test]
fn tcp_data_offset_beyond_the_segment_is_malformed() {
    assert_malformed_then_good(
        "tcp_data_offset_beyond.pcap",
        // 15 words of header in the 38 bytes of the segment.
        Malformed::TcpDataOffset {
            data_offset: 60,
            len: 38,
        },
    );
}

#[test]
fn udp_length_that_lies_is_malformed() {
    assert_malformed_then_good(
        "udp_length_lies.pcap",
        Malformed::UdpLength {
            udp_len: 200,
            len: 12,
        },
    );
}

#[test]
fn icmp_error_with_a_truncated_quote_is_malformed() {
    assert_malformed_then_good("icmp_error_truncated_inner.pcap", Malformed::IcmpQuoteShort);
}

#[test]
fn overlapping_fragments_are_each_translated_like_the_first() {
    // A gateway that does not reassemble cannot see an overlap without keeping every
    // fragment's range; it forwards each fragment with its first fragment's rewrite and the
    // destination's reassembly (Linux drops overlapping datagrams) decides.
    let name = "ipv4_overlapping_fragments.pcap";
    let (r, outcomes) = run(name);
    let c = &r.counters;
    assert_eq!((c.packets_in, c.inbound, c.packets_out), (3, 3, 3));
    assert_eq!(c.dropped_total(), 0);
    let verdicts: Vec<_> = outcomes.iter().map(|(n, o)| (*n, o.verdict)).collect();
    assert_eq!(verdicts, [(1, IP_ANY), (2, IP_ANY), (3, WEB)]);
    assert_eq!(outcomes[1].1.after.dst, u32ip(ECS[0]));
    // The bytes: each fragment's destination rewritten, its header checksum still valid.
    let table = seed_table();
    let mut t = dnatsim::nat::Translator::new(&table, dnatsim::nat::Config::default());
    let mut reader = open(name, false);
    for _ in 0..2 {
        let pkt = reader.next_packet().unwrap().unwrap();
        let mut f = pkt.data.to_vec();
        let out = run_packet(&mut t, &mut f);
        assert_eq!(out.verdict, IP_ANY);
        assert_eq!(f[30..34], ECS[0]);
        verify_checksums(&f, 14).unwrap();
    }
}

fn run_packet(t: &mut dnatsim::nat::Translator, f: &mut [u8]) -> Outcome {
    common::run(t, f, 1, 1_000)
}

#[test]
fn fragment_reaching_beyond_65535_bytes_is_malformed() {
    let (r, outcomes) = run("ipv4_fragment_beyond_65535.pcap");
    let c = &r.counters;
    assert_eq!(c.packets_in, 4);
    assert_eq!(c.dropped(DropReason::Malformed), 1);
    assert_eq!((c.inbound, c.packets_out), (3, 3));
    let verdicts: Vec<_> = outcomes.iter().map(|(n, o)| (*n, o.verdict)).collect();
    assert_eq!(
        verdicts,
        [
            (1, IP_ANY),
            (2, Verdict::Drop(DropReason::Malformed)),
            (3, IP_ANY),
            (4, WEB)
        ]
    );
    assert_eq!(
        outcomes[1].1.notes.malformed,
        Some(Malformed::FragmentBeyond64k { end: 65544 })
    );
    assert!(outcomes[1].1.notes.fragment);
}

// ---- the command line ------------------------------------------------------------------------

fn cli(input: &str, report: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dnatsim"))
        .args(["replay", input, "--rules", RULES, "--quiet", "--report"])
        .arg(report)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

#[test]
fn the_binary_reports_each_packet_defect_as_malformed() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    for name in [
        "ipv4_ihl_below_5.pcap",
        "ipv4_ihl_beyond_packet.pcap",
        "ipv4_options_overrun.pcap",
        "tcp_data_offset_beyond.pcap",
        "udp_length_lies.pcap",
        "icmp_error_truncated_inner.pcap",
    ] {
        let o = cli(&format!("{DIR}/{name}"), &report);
        assert_eq!(
            o.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let j: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
        assert_eq!(j["packets_in"], 2, "{name}");
        assert_eq!(j["packets_out"], 1, "{name}");
        assert_eq!(j["dropped"]["malformed"], 1, "{name}");
        assert_eq!(j["translated"]["inbound"], 1, "{name}");
    }
}

#[test]
fn the_binary_warns_about_a_cut_off_record_and_fails_on_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let input = format!("{DIR}/truncated_last_record.pcap");
    let o = cli(&input, &report);
    assert_eq!(o.status.code(), Some(0));
    let warning = "record 3 at offset 200 is cut short: 46 of 88 bytes; the file ends there";
    // --quiet silences warnings on stderr; the report keeps them (after the rules' own).
    assert!(!String::from_utf8_lossy(&o.stderr).contains(warning));
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let warnings = j["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    assert!(warnings[0].as_str().unwrap().contains("unused-public-ip"));
    assert_eq!(warnings[1], warning);
    let loud = Command::new(env!("CARGO_BIN_EXE_dnatsim"))
        .args(["replay", &input, "--rules", RULES])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&loud.stderr)
            .contains(&format!("dnatsim: warning: {input}: {warning}"))
    );
    assert_eq!(j["packets_out"], 2);

    let o = cli(&format!("{DIR}/caplen_4gib.pcap"), &report);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "record 2 at offset 112: captured length 4294967295 is larger than the limit"
        ),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
