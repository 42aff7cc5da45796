//! Golden packets: exact bytes before and after translation, for every case of the
//! translation semantics. The expected bytes are built independently (etherparse computes
//! every checksum from scratch), so equality also proves the incremental checksum updates.

mod common;

use common::*;
use dnatsim::nat::{
    Config, DropReason, Event, ForeignPolicy, ForwardTable, MatchKind, Translator, Verdict,
};
use dnatsim::rules::{PortSpec, Protocol};

fn inbound(entry: u32, kind: MatchKind) -> Verdict {
    Verdict::Inbound { entry, kind }
}

fn outbound(entry: u32, kind: MatchKind) -> Verdict {
    Verdict::Outbound { entry, kind }
}

#[test]
fn tutorial_entries_inbound_exact_bytes() {
    let table = seed_table();
    // (destination EIP, protocol, port) -> (server, port, entry index, kind)
    type Case = ([u8; 4], bool, u16, [u8; 4], u16, u32, MatchKind);
    let cases: [Case; 5] = [
        (IP1, true, 5000, ECS[0], 5000, 0, MatchKind::IpAny),
        (IP2, false, 53, ECS[1], 53, 1, MatchKind::IpAny),
        (IP3, true, 80, ECS[2], 80, 2, MatchKind::Port),
        (IP3, true, 443, ECS[3], 443, 3, MatchKind::Port),
        (IP4, true, 22, ECS[4], 22, 4, MatchKind::Port),
    ];
    for (eip, is_tcp, port, server, sport, entry, kind) in cases {
        let build = |dst, dport, ttl| {
            if is_tcp {
                tcp(CLIENT, 51000, dst, dport, ttl, b"GET / HTTP/1.1\r\n\r\n")
            } else {
                udp(CLIENT, 51000, dst, dport, ttl, b"\x12\x34\x01\x00")
            }
        };
        let mut frame = build(eip, port, 64);
        let out = translate_one(&table, &mut frame);
        assert_eq!(out.verdict, inbound(entry, kind), "to {eip:?}:{port}");
        assert_eq!(
            frame,
            build(server, sport, 63),
            "bytes after translating to {server:?}"
        );
        verify_checksums(&frame, 14).unwrap();
        assert!(out.notes.new_flow);
    }
}

#[test]
fn replies_are_translated_back_through_the_binding() {
    let table = seed_table();
    let mut t = Translator::new(&table, Config::default());
    let mut syn = tcp(CLIENT, 51000, IP3, 443, 64, b"");
    let out = run(&mut t, &mut syn, 1, 1);
    assert_eq!(out.verdict, inbound(3, MatchKind::Port));
    let mut reply = tcp(ECS[3], 443, CLIENT, 51000, 64, b"HTTP/1.1 200 OK\r\n");
    let out = run(&mut t, &mut reply, 1, 2);
    assert_eq!(out.verdict, outbound(3, MatchKind::Port));
    assert!(
        !out.notes.new_flow,
        "the reply uses the inbound flow's binding"
    );
    assert_eq!(
        reply,
        tcp(IP3, 443, CLIENT, 51000, 63, b"HTTP/1.1 200 OK\r\n")
    );
    verify_checksums(&reply, 14).unwrap();
}

#[test]
fn ip_mapped_server_traffic_leaves_from_its_eip() {
    let table = seed_table();
    let mut frame = udp(ECS[0], 40000, [198, 51, 100, 53], 53, 64, b"query");
    let out = translate_one(&table, &mut frame);
    assert_eq!(out.verdict, outbound(0, MatchKind::IpAny));
    assert_eq!(frame, udp(IP1, 40000, [198, 51, 100, 53], 53, 63, b"query"));
}

#[test]
fn misses_are_dropped_no_rule() {
    let table = seed_table();
    for mut frame in [
        tcp(CLIENT, 1, IP5, 80, 64, b""),
        tcp(CLIENT, 1, IP4, 80, 64, b""),
        udp(CLIENT, 1, IP3, 80, 64, b""),
        echo_request(CLIENT, IP3, 7, 1, 64),
    ] {
        let before = frame.clone();
        let out = translate_one(&table, &mut frame);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRule));
        assert_eq!(frame, before, "a dropped packet is not modified");
    }
}

#[test]
fn foreign_traffic_passes_or_drops() {
    let table = seed_table();
    let mut frame = tcp(CLIENT, 1, [198, 51, 100, 8], 80, 64, b"x");
    let before = frame.clone();
    assert_eq!(
        translate_one(&table, &mut frame).verdict,
        Verdict::PassForeign
    );
    assert_eq!(frame, before, "passed unchanged, TTL included");
    // A port-mapped server talking from an unmapped port is not the gateway's business.
    let mut frame = tcp(ECS[2], 5555, CLIENT, 80, 64, b"x");
    assert_eq!(
        translate_one(&table, &mut frame).verdict,
        Verdict::PassForeign
    );
    let config = Config {
        foreign: ForeignPolicy::Drop,
        ..Config::default()
    };
    let mut t = Translator::new(&table, config);
    let mut frame = tcp(CLIENT, 1, [198, 51, 100, 8], 80, 64, b"x");
    let out = run(&mut t, &mut frame, 1, 0);
    assert_eq!(out.verdict, Verdict::Drop(DropReason::Foreign));
}

#[test]
fn not_ipv4_passes_unchanged() {
    let table = seed_table();
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let before = arp.clone();
    assert_eq!(
        translate_one(&table, &mut arp).verdict,
        Verdict::PassNotIpv4
    );
    assert_eq!(arp, before);
}

#[test]
fn ttl_is_decremented_checked_or_kept() {
    let table = seed_table();
    for ttl in [0u8, 1] {
        let mut frame = tcp(CLIENT, 1, IP3, 80, ttl, b"");
        let out = translate_one(&table, &mut frame);
        assert_eq!(
            out.verdict,
            Verdict::Drop(DropReason::TtlExpired),
            "ttl {ttl}"
        );
    }
    let config = Config {
        keep_ttl: true,
        ..Config::default()
    };
    let mut t = Translator::new(&table, config);
    let mut frame = tcp(CLIENT, 1, IP3, 80, 1, b"");
    let out = run(&mut t, &mut frame, 1, 0);
    assert_eq!(out.verdict, inbound(2, MatchKind::Port));
    assert_eq!(frame, tcp(CLIENT, 1, ECS[2], 80, 1, b""));
}

#[test]
fn bad_ip_checksum_is_dropped() {
    let table = seed_table();
    let mut frame = tcp(CLIENT, 1, IP3, 80, 64, b"");
    frame[14 + 10] ^= 0x01;
    assert_eq!(
        translate_one(&table, &mut frame).verdict,
        Verdict::Drop(DropReason::BadIpChecksum)
    );
}

/// One's-complement addition, to shift a checksum by a known amount.
fn ones_add(a: u16, b: u16) -> u16 {
    let s = u32::from(a) + u32::from(b);
    ((s & 0xffff) + (s >> 16)) as u16
}

#[test]
fn wrong_l4_checksum_stays_wrong_by_the_same_amount() {
    let table = seed_table();
    let csum_at = 14 + 20 + 16;
    let mut frame = tcp(CLIENT, 51000, IP3, 443, 64, b"data");
    let good_in = u16::from_be_bytes([frame[csum_at], frame[csum_at + 1]]);
    frame[csum_at..csum_at + 2].copy_from_slice(&ones_add(good_in, 0x0102).to_be_bytes());
    let out = translate_one(&table, &mut frame);
    assert_eq!(out.verdict, inbound(3, MatchKind::Port));
    assert!(out.notes.bad_l4_checksum_in);
    let want = tcp(CLIENT, 51000, ECS[3], 443, 63, b"data");
    let good_out = u16::from_be_bytes([want[csum_at], want[csum_at + 1]]);
    let got = u16::from_be_bytes([frame[csum_at], frame[csum_at + 1]]);
    assert_eq!(got, ones_add(good_out, 0x0102));
    assert!(verify_checksums(&frame, 14).is_err());
}

#[test]
fn udp_zero_checksum_stays_zero() {
    let table = seed_table();
    let mut frame = udp(CLIENT, 5000, IP2, 53, 64, b"abcd");
    frame[14 + 20 + 6] = 0;
    frame[14 + 20 + 7] = 0;
    let out = translate_one(&table, &mut frame);
    assert_eq!(out.verdict, inbound(1, MatchKind::IpAny));
    assert!(!out.notes.bad_l4_checksum_in);
    assert_eq!(&frame[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
    assert_eq!(&frame[14 + 16..14 + 20], &ECS[1]);
}

#[test]
fn udp_computed_zero_is_sent_as_ffff() {
    let table = seed_table();
    // Choose a payload word so that the translated datagram's checksum computes to 0
    // (sum 0xffff): start from payload word 0, then add the complement of the result.
    let probe = udp(CLIENT, 5000, ECS[1], 53, 63, &[0, 0]);
    let c = u16::from_be_bytes([probe[14 + 26], probe[14 + 27]]);
    let word = c.to_be_bytes();
    let mut frame = udp(CLIENT, 5000, IP2, 53, 64, &word);
    let out = translate_one(&table, &mut frame);
    assert_eq!(out.verdict, inbound(1, MatchKind::IpAny));
    assert_eq!(&frame[14 + 26..14 + 28], &[0xff, 0xff]);
    verify_checksums(&frame, 14).unwrap();
}

#[test]
fn icmp_echo_under_ip_mapping_both_ways() {
    let table = seed_table();
    let mut t = Translator::new(&table, Config::default());
    let mut req = echo_request(CLIENT, IP1, 0x1234, 1, 64);
    let out = run(&mut t, &mut req, 1, 0);
    assert_eq!(out.verdict, inbound(0, MatchKind::IpAny));
    assert_eq!(req, echo_request(CLIENT, ECS[0], 0x1234, 1, 63));
    assert_eq!((out.before.sport, out.after.dport), (0x1234, 0x1234));
    let mut reply = echo_request(ECS[0], CLIENT, 0x1234, 1, 64);
    reply[14 + 20] = 0; // echo reply
    let c = u16::from_be_bytes([reply[14 + 22], reply[14 + 23]]);
    reply[14 + 22..14 + 24].copy_from_slice(&ones_add(c, 0x0800).to_be_bytes());
    verify_checksums(&reply, 14).unwrap();
    let out = run(&mut t, &mut reply, 1, 1);
    assert_eq!(out.verdict, outbound(0, MatchKind::IpAny));
    assert!(!out.notes.new_flow);
    assert_eq!(&reply[14 + 12..14 + 16], &IP1);
    verify_checksums(&reply, 14).unwrap();
}

#[test]
fn other_protocols_get_addresses_only() {
    let table = seed_table();
    let gre = [0u8, 0, 0x08, 0x00, 1, 2, 3, 4];
    let mut frame = other_proto(CLIENT, IP2, 47, 64, &gre);
    let out = translate_one(&table, &mut frame);
    assert_eq!(out.verdict, inbound(1, MatchKind::IpAny));
    assert_eq!(frame, other_proto(CLIENT, ECS[1], 47, 63, &gre));
    // ESP to a port-mapped EIP has no entry.
    let mut esp = other_proto(CLIENT, IP3, 50, 64, &[0; 16]);
    assert_eq!(
        translate_one(&table, &mut esp).verdict,
        Verdict::Drop(DropReason::NoRule)
    );
}

/// An ICMP error (type 3 code `code`) from `src` to `dst` quoting the IP packet `quoted`
/// (the IP header plus `keep` bytes of its payload).
fn icmp_error(src: [u8; 4], dst: [u8; 4], code: u8, quoted: &[u8], keep: usize) -> Vec<u8> {
    let ihl = usize::from(quoted[0] & 0x0f) * 4;
    let q = &quoted[..(ihl + keep).min(quoted.len())];
    let mut icmp = vec![3u8, code, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(q);
    let c = dnatsim::wire::checksum::checksum(&icmp);
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    other_proto(src, dst, 1, 64, &icmp)
}

#[test]
fn icmp_error_to_an_eip_translates_the_quoted_packet() {
    let table = seed_table();
    // ECS3's reply left as IP3:80 -> client; a router says the client is unreachable.
    let sent = tcp(IP3, 80, CLIENT, 51000, 63, b"response");
    let router = [198, 51, 100, 1];
    let mut err = icmp_error(router, IP3, 1, &sent[14..], 8);
    let out = translate_one(&table, &mut err);
    assert_eq!(out.verdict, inbound(2, MatchKind::Port));
    assert!(out.notes.icmp_error);
    let original = tcp(ECS[2], 80, CLIENT, 51000, 63, b"response");
    let mut want = icmp_error(router, ECS[2], 1, &original[14..], 8);
    want[14 + 8] = 63; // the outer TTL was decremented
    fix_ip_checksum(&mut want, 14);
    assert_eq!(err, want);
    verify_checksums(&err, 14).unwrap();
}

#[test]
fn icmp_error_from_a_server_translates_back() {
    let table = seed_table();
    // The client's datagram reached ECS2 as client -> 192.168.1.2:53; ECS2 answers port
    // unreachable, quoting the whole datagram.
    let delivered = udp(CLIENT, 5353, ECS[1], 53, 63, b"q");
    let mut err = icmp_error(ECS[1], CLIENT, 3, &delivered[14..], 9);
    let out = translate_one(&table, &mut err);
    assert_eq!(out.verdict, outbound(1, MatchKind::IpAny));
    let as_sent = udp(CLIENT, 5353, IP2, 53, 63, b"q");
    let mut want = icmp_error(IP2, CLIENT, 3, &as_sent[14..], 9);
    want[14 + 8] = 63;
    fix_ip_checksum(&mut want, 14);
    assert_eq!(err, want);
    verify_checksums(&err, 14).unwrap();
}

#[test]
fn icmp_error_with_ports_only_still_translates_ports() {
    // Port-mapped server with a different internal port, quote cut 4 bytes into TCP.
    use PortSpec::Single;
    let entries = vec![entry(
        "fwd-a",
        IP3,
        Single(8080),
        Protocol::Tcp,
        ECS[2],
        Single(80),
    )];
    let table = ForwardTable::new(&entries, &seed_ips());
    let sent = tcp(IP3, 8080, CLIENT, 51000, 63, b"");
    let mut err = icmp_error([198, 51, 100, 1], IP3, 1, &sent[14..], 4);
    let out = translate_one(&table, &mut err);
    assert_eq!(out.verdict, inbound(0, MatchKind::Port));
    let original = tcp(ECS[2], 80, CLIENT, 51000, 63, b"");
    let mut want = icmp_error([198, 51, 100, 1], ECS[2], 1, &original[14..], 4);
    want[14 + 8] = 63;
    fix_ip_checksum(&mut want, 14);
    assert_eq!(err, want);
}

/// Splits an Ethernet frame's IP packet into fragments at the given 8-byte-aligned payload
/// offsets, each a whole frame with a valid header checksum.
fn fragment(frame: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let ip = &frame[14..];
    let payload = &ip[20..];
    let mut bounds = vec![0];
    bounds.extend_from_slice(cuts);
    bounds.push(payload.len());
    let mut out = Vec::new();
    for w in bounds.windows(2) {
        let mut f = frame[..14 + 20].to_vec();
        f.extend_from_slice(&payload[w[0]..w[1]]);
        let total = (20 + w[1] - w[0]) as u16;
        f[14 + 2..14 + 4].copy_from_slice(&total.to_be_bytes());
        let mf = if w[1] < payload.len() { 0x2000 } else { 0 };
        let flags = mf | (w[0] / 8) as u16;
        f[14 + 6..14 + 8].copy_from_slice(&flags.to_be_bytes());
        fix_ip_checksum(&mut f, 14);
        out.push(f);
    }
    out
}

#[test]
fn fragments_follow_the_first_fragment_in_any_order() {
    let table = seed_table();
    let payload = [0xabu8; 64];
    let whole = tcp(CLIENT, 51000, IP3, 443, 64, &payload);
    let frags = fragment(&whole, &[24, 48]);
    let want_whole = tcp(CLIENT, 51000, ECS[3], 443, 63, &payload);
    let want = fragment(&want_whole, &[24, 48]);
    let mut want: Vec<Vec<u8>> = want
        .into_iter()
        .map(|mut f| {
            // Fragmenting after translation recomputes nothing but the header checksum.
            fix_ip_checksum(&mut f, 14);
            f
        })
        .collect();
    // The TCP checksum of the whole datagram lives in the first fragment.
    want[0][14 + 20 + 16..14 + 20 + 18].copy_from_slice(&want_whole[14 + 36..14 + 38]);

    let mut t = Translator::new(&table, Config::default());
    // The last fragment arrives first and is held.
    let mut last = frags[2].clone();
    let out = run(&mut t, &mut last, 1, 10);
    assert_eq!(out.verdict, Verdict::Held);
    assert!(t.pop_event().is_none());
    let mut first = frags[0].clone();
    let out = run(&mut t, &mut first, 1, 20);
    assert_eq!(out.verdict, inbound(3, MatchKind::Port));
    assert_eq!(first, want[0]);
    match t.pop_event() {
        Some(Event::Released { data, outcome, .. }) => {
            assert_eq!(outcome.verdict, inbound(3, MatchKind::Port));
            assert_eq!(data, want[2]);
        }
        other => panic!("expected the held fragment, got {other:?}"),
    }
    let mut middle = frags[1].clone();
    let out = run(&mut t, &mut middle, 1, 30);
    assert_eq!(out.verdict, inbound(3, MatchKind::Port));
    assert_eq!(middle, want[1]);
}

#[test]
fn orphan_fragments_are_dropped_after_the_hold_time() {
    let table = seed_table();
    let whole = tcp(CLIENT, 51000, IP3, 443, 64, &[1u8; 64]);
    let frags = fragment(&whole, &[32]);
    let mut t = Translator::new(&table, Config::default());
    let mut late = frags[1].clone();
    assert_eq!(run(&mut t, &mut late, 1, 0).verdict, Verdict::Held);
    // 2.5 s later an unrelated packet arrives: the fragment has waited too long.
    let mut other = tcp(CLIENT, 1, IP3, 80, 64, b"");
    run(&mut t, &mut other, 1, 2_500_000_000);
    match t.pop_event() {
        Some(Event::Orphan { outcome, .. }) => {
            assert_eq!(outcome.verdict, Verdict::Drop(DropReason::FragmentOrphan))
        }
        other => panic!("expected an orphan, got {other:?}"),
    }
    // And at the end of the input whatever is still held is orphaned too.
    let mut late2 = frags[1].clone();
    late2[14 + 5] ^= 1; // another datagram id
    fix_ip_checksum(&mut late2, 14);
    assert_eq!(
        run(&mut t, &mut late2, 1, 3_000_000_000).verdict,
        Verdict::Held
    );
    t.finish();
    assert!(matches!(t.pop_event(), Some(Event::Orphan { .. })));
    assert!(t.pop_event().is_none());
}

#[test]
fn later_fragments_of_a_dropped_datagram_are_dropped_alike() {
    let table = seed_table();
    let whole = udp(CLIENT, 1, IP5, 53, 64, &[0u8; 48]);
    let frags = fragment(&whole, &[24]);
    let mut t = Translator::new(&table, Config::default());
    for f in frags {
        let mut f = f.clone();
        let out = run(&mut t, &mut f, 1, 0);
        assert_eq!(out.verdict, Verdict::Drop(DropReason::NoRule));
    }
}

#[test]
fn link_layers_vlan_qinq_sll_sll2_raw() {
    let table = seed_table();
    let eth = tcp(CLIENT, 51000, IP3, 80, 64, b"hi");
    let want = tcp(CLIENT, 51000, ECS[2], 80, 63, b"hi");
    let ip_in = &eth[14..];
    let ip_out = &want[14..];
    let vlan = [&eth[..12], &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00], ip_in].concat();
    let qinq = [&eth[..12], &[0x88, 0xa8, 0, 1, 0x81, 0, 0, 2, 8, 0], ip_in].concat();
    let sll = [
        &[0u8, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00][..],
        ip_in,
    ]
    .concat();
    let sll2 = [
        &[
            0x08u8, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ][..],
        ip_in,
    ]
    .concat();
    let cases: [(u16, Vec<u8>, usize); 5] = [
        (1, vlan, 18),
        (1, qinq, 22),
        (113, sll, 16),
        (276, sll2, 20),
        (101, ip_in.to_vec(), 0),
    ];
    for (link, mut frame, off) in cases {
        let head = frame[..off].to_vec();
        let mut t = Translator::new(&table, Config::default());
        let out = run(&mut t, &mut frame, link, 0);
        assert_eq!(out.verdict, inbound(2, MatchKind::Port), "link type {link}");
        assert_eq!(&frame[..off], &head[..], "link header untouched");
        assert_eq!(&frame[off..], ip_out, "link type {link}");
    }
}

#[test]
fn snapped_packets_are_translated_from_their_headers() {
    let table = seed_table();
    let full = tcp(CLIENT, 51000, IP3, 80, 64, &[7u8; 200]);
    let want = tcp(CLIENT, 51000, ECS[2], 80, 63, &[7u8; 200]);
    let mut snapped = full[..96].to_vec();
    let mut t = Translator::new(&table, Config::default());
    let mut m = meta(1, &full, 0);
    m.orig_len = full.len() as u32;
    let out = t.process(&mut snapped, &m);
    assert_eq!(out.verdict, inbound(2, MatchKind::Port));
    assert!(out.notes.snapped);
    assert_eq!(&snapped[..], &want[..96]);
}

#[test]
fn flow_binding_wins_over_the_static_reverse() {
    use PortSpec::{Any, Single};
    // Permissive: ECS1 is IP1's whole address and also IP3's tcp/8080.
    let entries = vec![
        entry("fwd-ip", IP1, Any, Protocol::Any, ECS[0], Any),
        entry(
            "fwd-port",
            IP3,
            Single(8080),
            Protocol::Tcp,
            ECS[0],
            Single(80),
        ),
    ];
    let table = ForwardTable::new(&entries, &seed_ips());
    let mut t = Translator::new(&table, Config::default());
    let mut req = tcp(CLIENT, 40000, IP1, 80, 64, b"");
    assert_eq!(
        run(&mut t, &mut req, 1, 0).verdict,
        inbound(0, MatchKind::IpAny)
    );
    let mut reply = tcp(ECS[0], 80, CLIENT, 40000, 64, b"");
    assert_eq!(
        run(&mut t, &mut reply, 1, 1).verdict,
        outbound(0, MatchKind::IpAny)
    );
    assert_eq!(reply, tcp(IP1, 80, CLIENT, 40000, 63, b""));
    // Without a flow, the exact reverse entry (port mapping) decides.
    let mut unsolicited = tcp(ECS[0], 80, [198, 51, 100, 99], 40000, 64, b"");
    let out = run(&mut t, &mut unsolicited, 1, 2);
    assert_eq!(out.verdict, outbound(1, MatchKind::Port));
    assert_eq!(
        unsolicited,
        tcp(IP3, 8080, [198, 51, 100, 99], 40000, 63, b"")
    );
}

#[test]
fn port_ranges_map_offset_by_offset() {
    use PortSpec::Range;
    let entries = vec![entry(
        "fwd-r",
        IP3,
        Range(8000, 8010),
        Protocol::Udp,
        ECS[2],
        Range(9000, 9010),
    )];
    let table = ForwardTable::new(&entries, &seed_ips());
    let mut frame = udp(CLIENT, 1234, IP3, 8005, 64, b"r");
    let out = translate_one(&table, &mut frame);
    assert_eq!(out.verdict, inbound(0, MatchKind::Port));
    assert_eq!(frame, udp(CLIENT, 1234, ECS[2], 9005, 63, b"r"));
    let mut back = udp(ECS[2], 9010, CLIENT, 1234, 64, b"r");
    assert_eq!(
        translate_one(&table, &mut back).verdict,
        outbound(0, MatchKind::Port)
    );
    assert_eq!(back, udp(IP3, 8010, CLIENT, 1234, 63, b"r"));
}

#[test]
fn a_literal_golden_packet() {
    // Hand-checked bytes: client 198.51.100.7:51000 -> IP3 203.0.113.79:443, SYN-less ACK,
    // TTL 64; checksums computed by hand (python one-liner over the header words).
    let table = seed_table();
    let mut frame = tcp(CLIENT, 51000, IP3, 443, 64, b"");
    let ip_before: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x40, 0x06, 0xd4, 0x45, 198, 51, 100, 7,
        203, 0, 113, 79,
    ];
    assert_eq!(&frame[14..34], &ip_before);
    translate_one(&table, &mut frame);
    let ip_after: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x00, 0x00, 0x40, 0x00, 0x3f, 0x06, 0x4f, 0xe9, 198, 51, 100, 7,
        192, 168, 1, 4,
    ];
    assert_eq!(&frame[14..34], &ip_after);
    verify_checksums(&frame, 14).unwrap();
}
