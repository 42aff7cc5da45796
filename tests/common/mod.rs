//! Helpers shared by the integration tests: the seed scenario in code, packet builders and an
//! independent checksum verifier (etherparse recomputes everything from scratch).
#![allow(dead_code)]

use dnatsim::nat::{Config, ForwardTable, Outcome, PacketMeta, Translator};
use dnatsim::rules::{ForwardEntry, PortSpec, Position, Protocol};
use etherparse::{Icmpv4Header, Ipv4Header, PacketBuilder, TcpHeader, UdpHeader};
use std::net::Ipv4Addr;

pub const CLIENT: [u8; 4] = [198, 51, 100, 7];
pub const IP1: [u8; 4] = [203, 0, 113, 107];
pub const IP2: [u8; 4] = [203, 0, 113, 55];
pub const IP3: [u8; 4] = [203, 0, 113, 79];
pub const IP4: [u8; 4] = [203, 0, 113, 59];
pub const IP5: [u8; 4] = [203, 0, 113, 58];
pub const ECS: [[u8; 4]; 5] = [
    [192, 168, 1, 1],
    [192, 168, 1, 2],
    [192, 168, 1, 3],
    [192, 168, 1, 4],
    [192, 168, 1, 5],
];
pub const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
pub const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];

pub fn entry(
    id: &str,
    ext: [u8; 4],
    ext_port: PortSpec,
    proto: Protocol,
    int: [u8; 4],
    int_port: PortSpec,
) -> ForwardEntry {
    ForwardEntry {
        id: id.to_string(),
        external_ip: Ipv4Addr::from(ext),
        external_port: ext_port,
        ip_protocol: proto,
        internal_ip: Ipv4Addr::from(int),
        internal_port: int_port,
        position: Position::default(),
    }
}

/// The tutorial's five entries (IP5 has none).
pub fn seed_entries() -> Vec<ForwardEntry> {
    use PortSpec::{Any, Single};
    vec![
        entry("fwd-119smw5tk", IP1, Any, Protocol::Any, ECS[0], Any),
        entry("fwd-11dz3ly9l", IP2, Any, Protocol::Any, ECS[1], Any),
        entry(
            "fwd-11r23r7p5",
            IP3,
            Single(80),
            Protocol::Tcp,
            ECS[2],
            Single(80),
        ),
        entry(
            "fwd-11cdhpjlk",
            IP3,
            Single(443),
            Protocol::Tcp,
            ECS[3],
            Single(443),
        ),
        entry(
            "fwd-11iv34uj7",
            IP4,
            Single(22),
            Protocol::Tcp,
            ECS[4],
            Single(22),
        ),
    ]
}

pub fn seed_ips() -> Vec<Ipv4Addr> {
    [IP1, IP2, IP3, IP4, IP5]
        .into_iter()
        .map(Ipv4Addr::from)
        .collect()
}

pub fn seed_table() -> ForwardTable {
    ForwardTable::new(&seed_entries(), &seed_ips())
}

pub fn u32ip(a: [u8; 4]) -> u32 {
    u32::from_be_bytes(a)
}

pub fn meta(link_type: u16, frame: &[u8], ts_ns: u64) -> PacketMeta {
    PacketMeta {
        record: 1,
        ts_ns,
        interface: 0,
        orig_len: frame.len() as u32,
        link_type,
    }
}

/// Runs one Ethernet frame through a fresh translator with default settings.
pub fn translate_one(table: &ForwardTable, frame: &mut [u8]) -> Outcome {
    let mut t = Translator::new(table, Config::default());
    let m = meta(1, frame, 1_000);
    t.process(frame, &m)
}

pub fn tcp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, ttl)
        .tcp(sport, dport, 0x0102_0304, 8192)
        .ack(0x0a0b_0c0d);
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("building a test packet");
    v
}

pub fn udp(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, ttl)
        .udp(sport, dport);
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("building a test packet");
    v
}

pub fn echo_request(src: [u8; 4], dst: [u8; 4], id: u16, seq: u16, ttl: u8) -> Vec<u8> {
    let b = PacketBuilder::ethernet2(MAC_A, MAC_B)
        .ipv4(src, dst, ttl)
        .icmpv4_echo_request(id, seq);
    let mut v = Vec::new();
    b.write(&mut v, b"ping payload")
        .expect("building a test packet");
    v
}

/// An IPv4 packet of any protocol in an Ethernet frame, with a valid header checksum.
pub fn other_proto(src: [u8; 4], dst: [u8; 4], proto: u8, ttl: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(
        payload.len() as u16,
        ttl,
        etherparse::IpNumber(proto),
        src,
        dst,
    )
    .expect("small payload");
    h.header_checksum = h.calc_header_checksum();
    let mut v = Vec::new();
    v.extend_from_slice(&MAC_B);
    v.extend_from_slice(&MAC_A);
    v.extend_from_slice(&[0x08, 0x00]);
    h.write(&mut v).expect("writing to a Vec");
    v.extend_from_slice(payload);
    v
}

/// Sets the IPv4 header checksum of the IP packet at `ip` to the right value.
pub fn fix_ip_checksum(frame: &mut [u8], ip: usize) {
    let ihl = usize::from(frame[ip] & 0x0f) * 4;
    frame[ip + 10] = 0;
    frame[ip + 11] = 0;
    let h = Ipv4Header::from_slice(&frame[ip..ip + ihl])
        .expect("valid header")
        .0;
    let c = h.calc_header_checksum();
    frame[ip + 10..ip + 12].copy_from_slice(&c.to_be_bytes());
}

/// Verifies, by recomputation with etherparse, the IPv4 header checksum and the TCP, UDP or
/// ICMP checksum of the IP packet starting at `ip` in `frame`. Returns a description of
/// the first wrong one.
pub fn verify_checksums(frame: &[u8], ip: usize) -> Result<(), String> {
    let (h, rest) = Ipv4Header::from_slice(&frame[ip..]).map_err(|e| e.to_string())?;
    if h.header_checksum != h.calc_header_checksum() {
        return Err(format!("IPv4 header checksum {:#06x}", h.header_checksum));
    }
    let payload_len = usize::from(h.total_len) - h.header_len();
    let l4 = &rest[..payload_len.min(rest.len())];
    if h.is_fragmenting_payload() {
        return Ok(());
    }
    match h.protocol.0 {
        6 => {
            let (t, data) = TcpHeader::from_slice(l4).map_err(|e| e.to_string())?;
            let c = t.calc_checksum_ipv4(&h, data).map_err(|e| e.to_string())?;
            if c != t.checksum {
                return Err(format!("TCP checksum {:#06x}, want {c:#06x}", t.checksum));
            }
        }
        17 => {
            let (u, data) = UdpHeader::from_slice(l4).map_err(|e| e.to_string())?;
            if u.checksum != 0 {
                let c = u.calc_checksum_ipv4(&h, data).map_err(|e| e.to_string())?;
                if c != u.checksum {
                    return Err(format!("UDP checksum {:#06x}, want {c:#06x}", u.checksum));
                }
            }
        }
        1 => {
            let (i, data) = Icmpv4Header::from_slice(l4).map_err(|e| e.to_string())?;
            let c = i.icmp_type.calc_checksum(data);
            if c != i.checksum {
                return Err(format!("ICMP checksum {:#06x}, want {c:#06x}", i.checksum));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Runs `frame` (link type `link`, arrival `ts_ns`) through `t`.
pub fn run(t: &mut Translator, frame: &mut [u8], link: u16, ts_ns: u64) -> Outcome {
    let m = meta(link, frame, ts_ns);
    t.process(frame, &m)
}

/// Runs the `dnatsim` binary from the crate root.
pub fn dnatsim(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_dnatsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

/// Writes what `config` generates for `rules` as a nanosecond pcap at `path`; returns the
/// generator's account of what it made.
pub fn generate_capture(
    rules: &dnatsim::rules::Rules,
    config: &dnatsim::traffic::GenConfig,
    path: &std::path::Path,
) -> dnatsim::traffic::GenStats {
    dnatsim::traffic::Generator::new(rules, config)
        .expect("rules that generate traffic")
        .write_pcap(path)
        .expect("a writable path")
}

/// A test that cannot run here (a tool, a privilege, a corpus missing): under CI or with
/// `DNATSIM_REQUIRE_ALL` set that is a failure, elsewhere a visible `SKIPPED` line.
pub fn skip_or_fail(reason: &str) {
    let required = ["CI", "DNATSIM_REQUIRE_ALL"]
        .iter()
        .any(|v| std::env::var_os(v).is_some_and(|x| !x.is_empty() && x != "0" && x != "false"));
    assert!(!required, "cannot run, and CI requires it: {reason}");
    println!("SKIPPED: {reason}");
}

/// Whether `tool` runs here (`tool --version` starts); otherwise skips or fails as
/// [`skip_or_fail`] says.
pub fn have_tool(tool: &str) -> bool {
    let ok = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok();
    if !ok {
        skip_or_fail(&format!("{tool} is not installed"));
    }
    ok
}

/// The report's invariant: packets_in == packets_out + every drop, by reason.
pub fn assert_counts_add_up(r: &serde_json::Value) {
    let dropped: u64 = r["dropped"]
        .as_object()
        .expect("a dropped object")
        .values()
        .map(|v| v.as_u64().expect("a count"))
        .sum();
    assert_eq!(
        r["packets_in"].as_u64().expect("packets_in"),
        r["packets_out"].as_u64().expect("packets_out") + dropped,
        "packets in = packets out + drops"
    );
}
