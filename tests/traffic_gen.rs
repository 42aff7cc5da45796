//! Integration tests of the synthetic traffic generator, checked against etherparse.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::Ipv4Addr;
use std::path::Path;

use dnatsim::nat::{ForwardTable, Inbound};
use dnatsim::rules::{self, Rules};
use dnatsim::traffic::{
    Category, DEFAULT_START_NS, GenConfig, GenError, Generator, Mix, TCP64_FRAME_LEN,
};
use etherparse::{Icmpv4Type, NetSlice, SlicedPacket, TransportSlice};

const ROUTER: u32 = 0xC633_6401; // 198.51.100.1
const DNS: u32 = 0xC633_6435; // 198.51.100.53

fn seed_rules() -> Rules {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/seed/rules.toml");
    rules::parse_file(&path)
        .expect("the bundled seed rules parse")
        .rules
}

fn parse(text: &str) -> Rules {
    match rules::parse_str(text, "test.toml") {
        Ok(p) => p.rules,
        Err(e) => panic!("test rules do not parse: {e}"),
    }
}

fn ip(a: &str) -> u32 {
    u32::from(a.parse::<Ipv4Addr>().expect("test address"))
}

/// What a frame is, as seen independently of the generator.
#[derive(Debug, Clone, Default)]
struct Seen {
    ethertype: u16,
    l3_len: usize,
    src: u32,
    dst: u32,
    proto: u8,
    id: u16,
    ttl: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
    icmp: Option<(u8, u8)>,
    /// (src, dst) of the datagram quoted by an ICMP error.
    quoted: Option<(u32, u32)>,
    fragment: Option<(u16, bool)>,
    bad_ip_checksum: bool,
    udp_zero: bool,
}

/// Parses `frame` with etherparse and verifies lengths, MACs and every checksum.
fn inspect(frame: &[u8]) -> Result<Seen, String> {
    if frame.len() < 60 {
        return Err(format!(
            "frame of {} bytes is below the Ethernet minimum",
            frame.len()
        ));
    }
    let pkt = SlicedPacket::from_ethernet(frame).map_err(|e| format!("etherparse: {e}"))?;
    let link = frame.get(..14).ok_or("no Ethernet header")?;
    if link[6..9] != [2, 0, 0] {
        return Err(format!("source MAC {:02x?} not in 02:00:00", &link[6..12]));
    }
    if link[0..3] != [2, 0, 0] && link[0..6] != [0xff; 6] {
        return Err(format!("destination MAC {:02x?}", &link[0..6]));
    }
    let mut s = Seen {
        ethertype: u16::from_be_bytes([link[12], link[13]]),
        ..Seen::default()
    };
    match pkt.net {
        Some(NetSlice::Arp(_)) => {
            s.l3_len = 28;
            Ok(s)
        }
        Some(NetSlice::Ipv6(v6)) => {
            s.l3_len = 40 + usize::from(v6.header().payload_length());
            if let Some(TransportSlice::Udp(u)) = &pkt.transport {
                let h = u.to_header();
                let c = h
                    .calc_checksum_ipv6_raw(
                        v6.header().source(),
                        v6.header().destination(),
                        u.payload(),
                    )
                    .map_err(|e| e.to_string())?;
                if c != h.checksum {
                    return Err("IPv6 UDP checksum".into());
                }
            } else {
                return Err("IPv6 without UDP".into());
            }
            Ok(s)
        }
        Some(NetSlice::Ipv4(v4)) => {
            let h = v4.header();
            let hdr = h.to_header();
            s.l3_len = usize::from(h.total_len());
            if s.l3_len + 14 > frame.len() {
                return Err("IPv4 total length beyond the frame".into());
            }
            s.bad_ip_checksum = hdr.calc_header_checksum() != h.header_checksum();
            s.src = u32::from(h.source_addr());
            s.dst = u32::from(h.destination_addr());
            s.proto = h.protocol().0;
            s.id = h.identification();
            s.ttl = h.ttl();
            if h.is_fragmenting_payload() {
                s.fragment = Some((h.fragments_offset().value(), h.more_fragments()));
                return Ok(s);
            }
            match &pkt.transport {
                Some(TransportSlice::Tcp(t)) => {
                    let th = t.to_header();
                    s.sport = th.source_port;
                    s.dport = th.destination_port;
                    s.tcp_flags = frame[14 + 20 + 13];
                    let c = th
                        .calc_checksum_ipv4(&hdr, t.payload())
                        .map_err(|e| e.to_string())?;
                    if c != th.checksum {
                        return Err("TCP checksum".into());
                    }
                }
                Some(TransportSlice::Udp(u)) => {
                    let uh = u.to_header();
                    s.sport = uh.source_port;
                    s.dport = uh.destination_port;
                    if uh.checksum == 0 {
                        s.udp_zero = true;
                    } else if uh
                        .calc_checksum_ipv4(&hdr, u.payload())
                        .map_err(|e| e.to_string())?
                        != uh.checksum
                    {
                        return Err("UDP checksum".into());
                    }
                }
                Some(TransportSlice::Icmpv4(i)) => {
                    let ty = i.icmp_type();
                    if ty.calc_checksum(i.payload()) != i.header().checksum {
                        return Err("ICMP checksum".into());
                    }
                    let raw = i.slice();
                    s.icmp = Some((raw[0], raw[1]));
                    if let Icmpv4Type::DestinationUnreachable(_) = ty {
                        // The quoted datagram is whole, so its own checksums must verify too.
                        let inner = SlicedPacket::from_ip(i.payload())
                            .map_err(|e| format!("quoted: {e}"))?;
                        let Some(NetSlice::Ipv4(q)) = inner.net else {
                            return Err("quoted not IPv4".into());
                        };
                        let qh = q.header().to_header();
                        if qh.calc_header_checksum() != qh.header_checksum {
                            return Err("quoted IPv4 checksum".into());
                        }
                        match &inner.transport {
                            Some(TransportSlice::Tcp(t)) => {
                                let th = t.to_header();
                                if th
                                    .calc_checksum_ipv4(&qh, t.payload())
                                    .map_err(|e| e.to_string())?
                                    != th.checksum
                                {
                                    return Err("quoted TCP checksum".into());
                                }
                            }
                            Some(TransportSlice::Udp(u)) => {
                                let uh = u.to_header();
                                if uh
                                    .calc_checksum_ipv4(&qh, u.payload())
                                    .map_err(|e| e.to_string())?
                                    != uh.checksum
                                {
                                    return Err("quoted UDP checksum".into());
                                }
                            }
                            _ => return Err("quoted datagram without TCP/UDP".into()),
                        }
                        s.quoted = Some((
                            u32::from(q.header().source_addr()),
                            u32::from(q.header().destination_addr()),
                        ));
                    }
                }
                _ => return Err("IPv4 without TCP/UDP/ICMP".into()),
            }
            Ok(s)
        }
        _ => Err("neither ARP, IPv4 nor IPv6".into()),
    }
}

/// The category a frame belongs to, decided from the rules alone.
fn classify(s: &Seen, table: &ForwardTable, servers: &BTreeSet<u32>) -> Category {
    match s.ethertype {
        0x0806 => return Category::Arp,
        0x86DD => return Category::Ipv6,
        _ => {}
    }
    if s.bad_ip_checksum {
        return Category::BadIpChecksum;
    }
    if s.ttl == 1 {
        return Category::TtlOne;
    }
    if s.udp_zero {
        return Category::UdpZeroChecksum;
    }
    if s.fragment.is_some() {
        return Category::Fragment;
    }
    if let Some((3, _)) = s.icmp {
        return Category::IcmpError;
    }
    let matched = |proto: u8| match proto {
        6 => Category::TcpMatched,
        17 => Category::UdpMatched,
        _ => Category::IcmpEcho,
    };
    if table.is_eip(s.dst) {
        if s.src == DNS && s.sport == 53 {
            return Category::ServerInitiated;
        }
        return match table.lookup(s.dst, s.proto, s.dport) {
            Inbound::Hit(_) => matched(s.proto),
            _ => Category::Unmatched,
        };
    }
    if servers.contains(&s.src) {
        if s.dst == DNS && s.dport == 53 {
            return Category::ServerInitiated;
        }
        if s.proto == 1 || table.reverse(s.src, s.proto, s.sport).is_some() {
            return matched(s.proto);
        }
    }
    Category::Foreign
}

/// One fragment: offset in 8-byte units, more-fragments flag, payload.
type Part = (u16, bool, Vec<u8>);

struct Run {
    frames: Vec<(u64, Vec<u8>, Category)>,
    stats: dnatsim::traffic::GenStats,
}

fn run(rules: &Rules, cfg: &GenConfig) -> Run {
    let mut g = Generator::new(rules, cfg).expect("generator");
    let mut frames = Vec::new();
    let mut buf = Vec::new();
    while let Some(ts) = g.next_packet(&mut buf) {
        frames.push((ts, buf.clone(), g.category()));
    }
    Run {
        frames,
        stats: g.stats().clone(),
    }
}

/// Checks every frame and its category; returns the inspected frames.
fn check_all(rules: &Rules, r: &Run) -> Vec<(Seen, Category)> {
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let servers: BTreeSet<u32> = rules
        .forward_entries
        .iter()
        .map(|e| u32::from(e.internal_ip))
        .collect();
    let mut out = Vec::new();
    let mut last_ts = 0;
    let mut last_id: HashMap<u32, u16> = HashMap::new();
    let mut frag_ids: BTreeSet<(u32, u16)> = BTreeSet::new();
    let mut datagrams: BTreeMap<(u32, u16), Vec<Part>> = BTreeMap::new();
    for (i, (ts, f, cat)) in r.frames.iter().enumerate() {
        assert!(*ts >= last_ts, "frame {i}: timestamp goes back");
        last_ts = *ts;
        let s = inspect(f).unwrap_or_else(|e| panic!("frame {i} ({cat:?}): {e}\n{f:02x?}"));
        assert_eq!(classify(&s, &table, &servers), *cat, "frame {i}: {s:?}");
        if s.ethertype == 0x0800 {
            // Ids increment per sender; the later fragments of a datagram repeat its id.
            let repeat = s.fragment.is_some() && !frag_ids.insert((s.src, s.id));
            if !repeat && let Some(prev) = last_id.insert(s.src, s.id) {
                assert_eq!(
                    s.id,
                    prev.wrapping_add(1),
                    "frame {i}: id of {}",
                    Ipv4Addr::from(s.src)
                );
            }
            if let Some((off, more)) = s.fragment {
                let payload = f[34..14 + s.l3_len].to_vec();
                datagrams
                    .entry((s.src, s.id))
                    .or_default()
                    .push((off, more, payload));
            }
        }
        out.push((s, *cat));
    }
    // Reassemble every fragmented datagram and verify its UDP checksum end to end.
    let mut complete = 0;
    for ((src, id), mut parts) in datagrams {
        parts.sort_by_key(|p| p.0);
        if parts.last().is_some_and(|p| p.1) || parts.first().is_some_and(|p| p.0 != 0) {
            // A train the end of the run cut short.
            continue;
        }
        complete += 1;
        let mut data = Vec::new();
        for (off, _, p) in &parts {
            assert_eq!(
                usize::from(*off) * 8,
                data.len(),
                "datagram {src:x}/{id}: gap"
            );
            data.extend_from_slice(p);
        }
        let (dst, _) = out
            .iter()
            .find(|(s, _)| s.src == src && s.id == id && s.fragment.is_some())
            .map(|(s, _)| (s.dst, ()))
            .expect("seen");
        let (uh, payload) =
            etherparse::UdpHeader::from_slice(&data).expect("UDP header in first fragment");
        let c = uh
            .calc_checksum_ipv4_raw(src.to_be_bytes(), dst.to_be_bytes(), payload)
            .expect("fits");
        assert_eq!(c, uh.checksum, "reassembled UDP checksum");
        assert_eq!(usize::from(uh.length), data.len());
    }
    if r.stats.count(Category::Fragment) > 20 {
        assert!(complete > 0, "no complete fragmented datagram");
    }
    for c in Category::ALL {
        let n = out.iter().filter(|(_, k)| *k == c).count() as u64;
        assert_eq!(n, r.stats.count(c), "{c:?} count");
    }
    out
}

#[test]
fn scenario_on_seed_has_every_category_and_valid_frames() {
    let rules = seed_rules();
    let cfg = GenConfig {
        packets: 20_000,
        ..GenConfig::default()
    };
    let r = run(&rules, &cfg);
    let seen = check_all(&rules, &r);
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);

    for c in Category::ALL {
        assert!(r.stats.count(c) > 0, "no {c:?}");
    }
    // Every entry gets inbound TCP.
    let mut hit = BTreeSet::new();
    for (s, c) in &seen {
        if *c == Category::TcpMatched
            && table.is_eip(s.dst)
            && let Inbound::Hit(m) = table.lookup(s.dst, 6, s.dport)
        {
            hit.insert(m.entry);
        }
    }
    assert_eq!(
        hit.len(),
        rules.forward_entries.len(),
        "entries with inbound TCP: {hit:?}"
    );
    let servers: BTreeSet<u32> = rules
        .forward_entries
        .iter()
        .map(|e| u32::from(e.internal_ip))
        .collect();
    let from_private = |c: Category, pred: &dyn Fn(&Seen) -> bool| {
        seen.iter()
            .any(|(s, k)| *k == c && servers.contains(&s.src) && pred(s))
    };
    assert!(
        from_private(Category::TcpMatched, &|s| s.tcp_flags == 0x12),
        "no SYN-ACK from a private address"
    );
    assert!(
        from_private(Category::TcpMatched, &|s| s.tcp_flags & 0x01 != 0),
        "no server FIN"
    );
    assert!(
        from_private(Category::IcmpEcho, &|s| s.icmp == Some((0, 0))),
        "no echo reply"
    );
    assert!(
        from_private(Category::ServerInitiated, &|s| s.dst == DNS),
        "no DNS query"
    );
    assert!(
        from_private(Category::IcmpError, &|s| s.icmp == Some((3, 3))),
        "no port unreachable"
    );
    assert!(
        seen.iter().any(|(s, _)| s.src == ROUTER
            && s.icmp.map(|i| i.0) == Some(3)
            && s.quoted.is_some_and(|q| table.is_eip(q.0))),
        "no router error quoting EIP -> client"
    );
    let unmatched = |pred: &dyn Fn(&Seen) -> bool| {
        seen.iter()
            .any(|(s, k)| *k == Category::Unmatched && pred(s))
    };
    assert!(unmatched(&|s| s.dst == ip("203.0.113.58")), "IP5");
    assert!(
        unmatched(&|s| s.dst == ip("203.0.113.59") && s.proto == 6 && s.dport == 80),
        "IP4 tcp/80"
    );
    assert!(
        unmatched(&|s| s.dst == ip("203.0.113.79") && s.proto == 17 && s.dport == 80),
        "IP3 udp/80"
    );
    assert!(
        unmatched(&|s| s.dst == ip("203.0.113.79") && s.icmp == Some((8, 0))),
        "ping to a port-only EIP"
    );
    // Some datagram's first arriving fragment is not its first one.
    let mut first_seen: BTreeMap<(u32, u16), u16> = BTreeMap::new();
    for (s, _) in &seen {
        if let Some((off, _)) = s.fragment {
            first_seen.entry((s.src, s.id)).or_insert(off);
        }
    }
    assert!(
        first_seen.values().any(|&o| o > 0),
        "no out-of-order fragments"
    );
    assert!(
        first_seen.values().any(|&o| o == 0),
        "no in-order fragments"
    );

    // Shares stay near the documented per-mille weights.
    for c in Category::ALL {
        let want = f64::from(c.scenario_permille()) * 20.0;
        let got = r.stats.count(c) as f64;
        assert!(
            (got - want).abs() <= 0.15 * want + 15.0,
            "{c:?}: {got} vs {want}"
        );
    }
}

#[test]
fn same_seed_same_bytes_other_seed_differs() {
    let rules = seed_rules();
    for mix in [Mix::Scenario, Mix::Tcp64, Mix::Imix, Mix::Udp { size: 512 }] {
        let cfg = GenConfig {
            packets: 3000,
            mix,
            ..GenConfig::default()
        };
        let a = run(&rules, &cfg);
        let b = run(&rules, &cfg);
        assert!(a.frames == b.frames, "{mix:?} not deterministic");
        let c = run(
            &rules,
            &GenConfig {
                seed: 2,
                ..cfg.clone()
            },
        );
        assert!(
            a.frames != c.frames,
            "{mix:?}: seeds 1 and 2 give the same frames"
        );
        assert_eq!(a.frames[0].0, DEFAULT_START_NS);
    }
}

#[test]
fn shares_are_stable_across_seeds() {
    let rules = seed_rules();
    for seed in [7, 99, 12345] {
        let mut g = Generator::new(
            &rules,
            &GenConfig {
                packets: 50_000,
                seed,
                ..GenConfig::default()
            },
        )
        .expect("gen");
        let mut buf = Vec::new();
        while g.next_packet(&mut buf).is_some() {}
        for c in Category::ALL {
            let want = f64::from(c.scenario_permille()) * 50.0;
            let got = g.stats().count(c) as f64;
            assert!(
                (got - want).abs() <= 0.1 * want + 10.0,
                "seed {seed} {c:?}: {got} vs {want}"
            );
        }
    }
}

#[test]
fn tcp64_frames_have_the_documented_length() {
    let rules = seed_rules();
    let r = run(
        &rules,
        &GenConfig {
            packets: 20_000,
            mix: Mix::Tcp64,
            ..GenConfig::default()
        },
    );
    let seen = check_all(&rules, &r);
    let clients: BTreeSet<u32> = seen.iter().map(|(s, _)| s.src).collect();
    assert!(clients.len() > 200, "only {} clients", clients.len());
    for (i, ((_, f, c), (s, _))) in r.frames.iter().zip(&seen).enumerate() {
        assert_eq!(f.len(), TCP64_FRAME_LEN, "frame {i}");
        assert_eq!(s.l3_len, 40, "frame {i}");
        assert_eq!(*c, Category::TcpMatched);
    }
}

#[test]
fn imix_offers_the_rate_in_every_second() {
    let rules = seed_rules();
    let cfg = GenConfig {
        packets: 1_200_000,
        rate_mbps: 300.0,
        mix: Mix::Imix,
        ..GenConfig::default()
    };
    let mut g = Generator::new(&rules, &cfg).expect("gen");
    let mut buf = Vec::new();
    let mut bits = [0u64; 11];
    let mut sizes = BTreeMap::new();
    while let Some(ts) = g.next_packet(&mut buf) {
        let l3 = u64::from(u16::from_be_bytes([buf[16], buf[17]]));
        *sizes.entry(l3).or_insert(0u64) += 1;
        let sec = ((ts - DEFAULT_START_NS) / 1_000_000_000) as usize;
        if let Some(b) = bits.get_mut(sec) {
            *b += l3 * 8;
        }
    }
    assert!(
        g.stats().l3_bytes * 8 > 10 * 300_000_000,
        "run shorter than 10 s"
    );
    for (sec, b) in bits.iter().take(10).enumerate() {
        let err = (*b as f64 - 300e6).abs() / 300e6;
        assert!(err < 0.01, "second {sec}: {b} bits");
    }
    assert_eq!(
        sizes.keys().copied().collect::<Vec<_>>(),
        vec![40, 576, 1500]
    );
    let (a, b, c) = (sizes[&40] as f64, sizes[&576] as f64, sizes[&1500] as f64);
    assert!(
        (a / c - 7.0).abs() < 0.3 && (b / c - 4.0).abs() < 0.2,
        "IMIX ratio {a}:{b}:{c}"
    );
}

#[test]
fn imix_and_udp_frames_verify() {
    let rules = seed_rules();
    let r = run(
        &rules,
        &GenConfig {
            packets: 20_000,
            mix: Mix::Imix,
            ..GenConfig::default()
        },
    );
    let seen = check_all(&rules, &r);
    let servers: BTreeSet<u32> = rules
        .forward_entries
        .iter()
        .map(|e| u32::from(e.internal_ip))
        .collect();
    assert!(
        seen.iter().any(|(s, _)| servers.contains(&s.src)),
        "no replies"
    );
    let r = run(
        &rules,
        &GenConfig {
            packets: 5_000,
            mix: Mix::Udp { size: 1000 },
            ..GenConfig::default()
        },
    );
    for (s, c) in check_all(&rules, &r) {
        assert_eq!((s.l3_len, s.proto, c), (1000, 17, Category::UdpMatched));
    }
}

/// 100 entries on 20 EIPs (alibaba profile): single ports, ranges, both protocols.
fn hundred_entries() -> Rules {
    let mut t = String::from(
        "[gateway]\nname = \"big\"\n[bandwidth_package]\nbandwidth_mbps = 1000\npublic_ips = [",
    );
    for i in 0..20 {
        t += &format!("\"203.0.113.{}\",", 100 + i);
    }
    t += "]\n";
    for i in 0..20 {
        let e = format!("203.0.113.{}", 100 + i);
        for (proto, ext, int, host) in [
            ("tcp", "\"80\"", "\"8080\"", 1),
            ("udp", "\"53\"", "\"53\"", 2),
            ("tcp", "\"8000/8009\"", "\"9000/9009\"", 3),
            ("udp", "\"5000/5004\"", "\"6000/6004\"", 4),
            ("tcp", "\"443\"", "\"443\"", 5),
        ] {
            t += &format!(
                "[[forward_entry]]\nexternal_ip = \"{e}\"\nexternal_port = {ext}\nip_protocol = \"{proto}\"\ninternal_ip = \"10.0.{i}.{host}\"\ninternal_port = {int}\n"
            );
        }
    }
    parse(&t)
}

fn permissive() -> Rules {
    parse(
        r#"
[gateway]
name = "mixed"
profile = "permissive"
[bandwidth_package]
bandwidth_mbps = 100
public_ips = ["192.0.2.200", "192.0.2.201", "192.0.2.202", "192.0.2.203"]
[[forward_entry]]
external_ip = "192.0.2.200"
external_port = "any"
ip_protocol = "any"
internal_ip = "10.1.0.1"
internal_port = "any"
[[forward_entry]]
external_ip = "192.0.2.200"
external_port = 443
ip_protocol = "tcp"
internal_ip = "10.1.0.2"
internal_port = 8443
[[forward_entry]]
external_ip = "192.0.2.201"
external_port = "any"
ip_protocol = "tcp"
internal_ip = "10.1.0.3"
internal_port = "any"
[[forward_entry]]
external_ip = "192.0.2.202"
external_port = "7000/7099"
ip_protocol = "udp"
internal_ip = "10.1.0.4"
internal_port = "17000/17099"
"#,
    )
}

#[test]
fn other_rules_give_valid_traffic_to_every_entry() {
    for rules in [hundred_entries(), permissive()] {
        let n = rules.forward_entries.len();
        let r = run(
            &rules,
            &GenConfig {
                packets: 30_000,
                ..GenConfig::default()
            },
        );
        let seen = check_all(&rules, &r);
        let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
        let mut hit = BTreeSet::new();
        for (s, c) in &seen {
            if matches!(c, Category::TcpMatched | Category::UdpMatched)
                && table.is_eip(s.dst)
                && let Inbound::Hit(m) = table.lookup(s.dst, s.proto, s.dport)
            {
                hit.insert(m.entry);
            }
        }
        assert_eq!(hit.len(), n, "entries reached");
        assert!(r.stats.count(Category::Unmatched) > 0);
        for mix in [Mix::Tcp64, Mix::Imix, Mix::Udp { size: 200 }] {
            let r = run(
                &rules,
                &GenConfig {
                    packets: 5_000,
                    mix,
                    ..GenConfig::default()
                },
            );
            check_all(&rules, &r);
        }
    }
}

#[test]
fn rules_without_matches_or_eips_are_refused_or_degrade() {
    let mut rules = seed_rules();
    rules.forward_entries.retain(|e| {
        e.ip_protocol == dnatsim::rules::Protocol::Tcp
            && e.external_port == dnatsim::rules::PortSpec::Single(22)
    });
    let err = Generator::new(
        &rules,
        &GenConfig {
            mix: Mix::Udp { size: 100 },
            ..GenConfig::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, GenError::NoTarget { .. }), "{err}");
    // The scenario still works: its UDP and IP-mapping shares move to matched TCP.
    let r = run(
        &rules,
        &GenConfig {
            packets: 5_000,
            ..GenConfig::default()
        },
    );
    check_all(&rules, &r);
    assert_eq!(r.stats.count(Category::Fragment), 0);

    rules.forward_entries.clear();
    let r = run(
        &rules,
        &GenConfig {
            packets: 2_000,
            ..GenConfig::default()
        },
    );
    check_all(&rules, &r);
    assert_eq!(
        r.stats.count(Category::Unmatched) + r.stats.count(Category::TcpMatched),
        r.stats.count(Category::Unmatched)
    );
    assert!(matches!(
        Generator::new(
            &rules,
            &GenConfig {
                mix: Mix::Tcp64,
                ..GenConfig::default()
            }
        ),
        Err(GenError::NoTarget { .. })
    ));

    rules.bandwidth_package.public_ips.clear();
    assert!(matches!(
        Generator::new(&rules, &GenConfig::default()),
        Err(GenError::NoPublicIps)
    ));
}

#[test]
fn bad_configs_are_typed_errors() {
    let rules = seed_rules();
    let base = GenConfig::default();
    let cases = [
        GenConfig {
            rate_mbps: 0.0,
            ..base.clone()
        },
        GenConfig {
            rate_mbps: f64::NAN,
            ..base.clone()
        },
        GenConfig {
            mix: Mix::Udp { size: 20 },
            ..base.clone()
        },
        GenConfig {
            mix: Mix::Udp { size: 1501 },
            ..base.clone()
        },
        GenConfig {
            client_prefix: 30,
            ..base.clone()
        },
        GenConfig {
            client_net: Ipv4Addr::new(192, 168, 0, 0),
            client_prefix: 16,
            ..base.clone()
        },
        GenConfig {
            flows: 0,
            ..base.clone()
        },
    ];
    for cfg in cases {
        let e = Generator::new(&rules, &cfg).unwrap_err();
        assert!(!e.to_string().is_empty());
    }
    assert!(
        Generator::new(&rules, &GenConfig { packets: 0, ..base })
            .is_ok_and(|mut g| g.next_packet(&mut Vec::new()).is_none())
    );
}

/// Generation speed; run with `cargo test --release --test traffic_gen -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn generation_speed() {
    let rules = seed_rules();
    for mix in [Mix::Tcp64, Mix::Imix, Mix::Udp { size: 512 }, Mix::Scenario] {
        let cfg = GenConfig {
            packets: 5_000_000,
            mix,
            ..GenConfig::default()
        };
        let mut g = Generator::new(&rules, &cfg).expect("gen");
        let mut buf = Vec::with_capacity(2048);
        let t = std::time::Instant::now();
        let mut x = 0u64;
        while let Some(ts) = g.next_packet(&mut buf) {
            x = x.wrapping_add(ts ^ buf.len() as u64);
        }
        let s = t.elapsed().as_secs_f64();
        println!("{mix:?}: {:.1} Mpps ({x})", cfg.packets as f64 / s / 1e6);
    }
}
