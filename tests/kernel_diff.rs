//! Differential test against the Linux kernel: the same frames go through a network-namespace
//! gateway running `dnatsim export --format nft` and through `dnatsim replay`, and what each
//! delivers is compared packet by packet. See tests/kernel/README.md.

mod common;

use common::verify_checksums;
use dnatsim::traffic::{GenConfig, Generator, Mix};
use etherparse::{Ipv4Header, PacketBuilder, TcpHeader, TcpOptionElement};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = "pcaps/seed/rules.toml";
/// Every namespace this test creates starts with this, followed by the test's pid.
const NS_PREFIX: &str = "dnatsim-kd-";
const GW_PUB_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const GW_PRIV_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
/// The generator's upstream router (198.51.100.1): the client namespace's MAC.
const ROUTER_MAC: [u8; 6] = [2, 0, 0, 0x33, 0x64, 0x01];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0xa8, 0x01, 0xfe];
const ROUTER: [u8; 4] = [198, 51, 100, 1];
const DNS: [u8; 4] = [198, 51, 100, 53];
const IP1: [u8; 4] = [203, 0, 113, 107];
const IP2: [u8; 4] = [203, 0, 113, 55];
const IP3: [u8; 4] = [203, 0, 113, 79];
const IP4: [u8; 4] = [203, 0, 113, 59];
const IP5: [u8; 4] = [203, 0, 113, 58];
const EIPS: [[u8; 4]; 5] = [IP1, IP2, IP3, IP4, IP5];
/// The servers: the seed table's internal addresses 192.168.1.N moved to 192.0.2.N
/// (TEST-NET-1), so that nothing in the namespaces uses a non-documentation range.
const fn ecs(n: u8) -> [u8; 4] {
    [192, 0, 2, n]
}
/// The gateway's private-side address.
const GW_PRIV: [u8; 4] = [192, 0, 2, 254];

/// The seed rules with every internal address 192.168.1.N written as 192.0.2.N, in `dir`.
fn test_rules(dir: &Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(RULES).expect("the seed rules");
    assert!(
        text.contains("\"192.168.1."),
        "the seed rules' internal addresses moved"
    );
    let path = dir.join("rules.toml");
    std::fs::write(&path, text.replace("\"192.168.1.", "\"192.0.2.")).expect("writing the rules");
    path
}

/// Which side of the gateway a frame is sent from or delivered to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Side {
    Client,
    Server,
}

/// Runs `args` (inside namespace `ns` when given) under a 30 s timeout; stdout or a message.
fn run(ns: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut c = Command::new("timeout");
    c.arg("30");
    if let Some(ns) = ns {
        c.args(["ip", "netns", "exec", ns]);
    }
    c.args(args);
    let o = c.output().map_err(|e| format!("{args:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

/// The test's namespaces and background processes; dropping it kills and deletes them all.
struct Lab {
    client: String,
    gw: String,
    server: String,
    created: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        for ns in &self.created {
            let _ = Command::new("timeout")
                .args(["10", "ip", "netns", "del", ns])
                .status();
        }
    }
}

/// Deletes namespaces left by earlier runs of this test whose process is gone.
fn clean_leftovers() {
    let Ok(list) = run(None, &["ip", "netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid != std::process::id().to_string() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(None, &["ip", "netns", "del", name]);
        }
    }
}

fn mac(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

fn ip(a: [u8; 4]) -> String {
    std::net::Ipv4Addr::from(a).to_string()
}

impl Lab {
    /// Creates the namespaces (a failure to create the first is the caller's skip signal).
    fn new() -> Result<Lab, String> {
        clean_leftovers();
        let pid = std::process::id();
        let mut lab = Lab {
            client: format!("{NS_PREFIX}{pid}-client"),
            gw: format!("{NS_PREFIX}{pid}-gw"),
            server: format!("{NS_PREFIX}{pid}-server"),
            created: Vec::new(),
            children: Vec::new(),
        };
        for ns in [lab.client.clone(), lab.gw.clone(), lab.server.clone()] {
            run(None, &["ip", "netns", "add", &ns])?;
            lab.created.push(ns);
        }
        Ok(lab)
    }

    /// Builds the topology and loads the rules; returns notes about what could not be set.
    fn setup(&mut self, nft_file: &Path) -> Result<Vec<String>, String> {
        let (c, g, s) = (self.client.as_str(), self.gw.as_str(), self.server.as_str());
        let mut notes = Vec::new();
        // Both veth pairs are created inside gw, so nothing ever appears in the root namespace.
        run(
            Some(g),
            &[
                "ip",
                "link",
                "add",
                "pub",
                "address",
                &mac(GW_PUB_MAC),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &mac(ROUTER_MAC),
                "netns",
                c,
            ],
        )?;
        run(
            Some(g),
            &[
                "ip",
                "link",
                "add",
                "priv",
                "address",
                &mac(GW_PRIV_MAC),
                "type",
                "veth",
                "peer",
                "name",
                "eth0",
                "address",
                &mac(SERVER_MAC),
                "netns",
                s,
            ],
        )?;
        for ns in [c, g, s] {
            run(
                Some(ns),
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                ],
            )?;
        }
        run(
            Some(g),
            &[
                "sysctl",
                "-qw",
                "net.ipv4.ip_forward=1",
                "net.ipv4.conf.all.rp_filter=0",
                "net.ipv4.conf.default.rp_filter=0",
                "net.ipv4.conf.pub.rp_filter=0",
                "net.ipv4.conf.priv.rp_filter=0",
                "net.ipv4.conf.all.send_redirects=0",
            ],
        )?;
        for (ns, dev) in [(c, "eth0"), (g, "pub"), (g, "priv"), (s, "eth0")] {
            // Offloads would let the kernel defer or rewrite checksums on the way.
            if let Err(e) = run(
                Some(ns),
                &[
                    "ethtool", "-K", dev, "rx", "off", "tx", "off", "tso", "off", "gso", "off",
                    "gro", "off",
                ],
            ) {
                notes.push(format!("offloads left on for {dev}: {e}"));
            }
            run(Some(ns), &["ip", "link", "set", dev, "up"])?;
        }
        for ns in [c, g, s] {
            run(Some(ns), &["ip", "link", "set", "lo", "up"])?;
        }
        for eip in EIPS {
            run(
                Some(g),
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", ip(eip)),
                    "dev",
                    "pub",
                ],
            )?;
        }
        run(
            Some(g),
            &[
                "ip",
                "addr",
                "add",
                &format!("{}/24", ip(GW_PRIV)),
                "dev",
                "priv",
            ],
        )?;
        run(
            Some(g),
            &[
                "ip",
                "neigh",
                "replace",
                "203.0.113.1",
                "lladdr",
                &mac(ROUTER_MAC),
                "dev",
                "pub",
                "nud",
                "permanent",
            ],
        )?;
        run(
            Some(g),
            &[
                "ip",
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                "203.0.113.1",
                "dev",
                "pub",
            ],
        )?;
        for n in 1..=5 {
            run(
                Some(g),
                &[
                    "ip",
                    "neigh",
                    "replace",
                    &ip(ecs(n)),
                    "lladdr",
                    &mac(SERVER_MAC),
                    "dev",
                    "priv",
                    "nud",
                    "permanent",
                ],
            )?;
        }
        run(
            Some(c),
            &["ip", "addr", "add", "198.51.100.1/24", "dev", "eth0"],
        )?;
        run(
            Some(c),
            &["ip", "addr", "add", "203.0.113.1/24", "dev", "eth0"],
        )?;
        for n in 1..=5 {
            run(
                Some(s),
                &[
                    "ip",
                    "addr",
                    "add",
                    &format!("{}/24", ip(ecs(n))),
                    "dev",
                    "eth0",
                ],
            )?;
        }
        let dir = nft_file.parent().unwrap_or(Path::new("."));
        // Endpoints stay silent (a RST from a server would end the gateway's connection). The
        // gateway gets no such help: the exported ruleset itself must drop misses (traffic to
        // an EIP that no entry matches), or the gateway answers them (RST, echo reply, port
        // unreachable) and the comparison reports those answers.
        let quiet = dir.join("quiet.nft");
        std::fs::write(
            &quiet,
            "table inet kdquiet {\n\tchain input { type filter hook input priority 0; policy drop; }\n\
             \tchain output { type filter hook output priority 0; policy drop; }\n}\n",
        )
        .map_err(|e| e.to_string())?;
        let q = quiet.to_string_lossy();
        run(Some(c), &["nft", "-f", &q])?;
        run(Some(s), &["nft", "-f", &q])?;
        run(Some(g), &["nft", "-f", &nft_file.to_string_lossy()])?;
        Ok(notes)
    }

    /// Starts tcpdump on `ns`'s eth0 (frames arriving only) and waits until it listens.
    fn capture(&mut self, side: Side, out: &Path, log: &Path) -> Result<(), String> {
        let ns = match side {
            Side::Client => self.client.clone(),
            Side::Server => self.server.clone(),
        };
        let err = std::fs::File::create(log).map_err(|e| e.to_string())?;
        let child = Command::new("timeout")
            .args([
                "60", "ip", "netns", "exec", &ns, "tcpdump", "-i", "eth0", "-Q", "in",
            ])
            .args(["-U", "-n", "-s", "0", "-w"])
            .arg(out)
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .map_err(|e| format!("tcpdump: {e}"))?;
        self.children.push(child);
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(10) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            if text.contains("listening on") {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "tcpdump in {ns} did not start: {}",
            std::fs::read_to_string(log).unwrap_or_default()
        ))
    }

    /// Stops the captures (SIGTERM lets tcpdump flush its file).
    fn stop_captures(&mut self) {
        for mut c in self.children.drain(..) {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
    }

    /// Sends `pcap` from `side`'s namespace toward the gateway.
    fn replay(&self, side: Side, pcap: &Path) -> Result<(), String> {
        let ns = match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        };
        run(
            Some(ns),
            &[
                "tcpreplay",
                "-q",
                "-i",
                "eth0",
                "--pps",
                "2000",
                &pcap.to_string_lossy(),
            ],
        )
        .map(|_| ())
    }
}

/// Waits until the files at `paths` have stopped growing (see the caller).
fn settle(paths: &[&Path]) {
    let size = || -> Vec<u64> {
        paths
            .iter()
            .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
            .collect()
    };
    std::thread::sleep(Duration::from_millis(1000));
    let start = Instant::now();
    let (mut last, mut still) = (size(), 0);
    while still < 3 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(250));
        let now = size();
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
}

/// Writes frames as a classic microsecond pcap (Ethernet), timestamps 1 ms apart.
fn write_pcap(path: &Path, frames: &[Vec<u8>], first_ms: u64) {
    let mut b = Vec::new();
    for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65535, 1] {
        if v == 0x0004_0002 {
            b.extend_from_slice(&2u16.to_le_bytes());
            b.extend_from_slice(&4u16.to_le_bytes());
        } else {
            b.extend_from_slice(&v.to_le_bytes());
        }
    }
    for (i, f) in frames.iter().enumerate() {
        let ms = first_ms + i as u64;
        b.extend_from_slice(&(1_767_225_600 + (ms / 1000) as u32).to_le_bytes());
        b.extend_from_slice(&(((ms % 1000) * 1000) as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(&(f.len() as u32).to_le_bytes());
        b.extend_from_slice(f);
    }
    std::fs::write(path, b).expect("writing a pcap in the temp dir");
}

/// Reads the frames of a classic pcap in either byte order and timestamp resolution.
fn read_pcap(path: &Path) -> Result<Vec<Vec<u8>>, String> {
    let b = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if b.len() < 24 {
        return Err(format!(
            "{}: {} bytes, no pcap header",
            path.display(),
            b.len()
        ));
    }
    let le = matches!(&b[..4], [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1]);
    let be = matches!(&b[..4], [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d]);
    if !le && !be {
        return Err(format!("{}: not a classic pcap", path.display()));
    }
    let u32at = |o: usize| {
        let w = [b[o], b[o + 1], b[o + 2], b[o + 3]];
        if le {
            u32::from_le_bytes(w)
        } else {
            u32::from_be_bytes(w)
        }
    };
    let mut frames = Vec::new();
    let mut o = 24;
    while o + 16 <= b.len() {
        let cap = u32at(o + 8) as usize;
        let end = o + 16 + cap;
        if end > b.len() {
            break;
        }
        frames.push(b[o + 16..end].to_vec());
        o = end;
    }
    Ok(frames)
}

/// A deterministic source of IPv4 ids, unique across the hand-built traffic.
struct Ids(u16);

impl Ids {
    fn next(&mut self) -> u16 {
        self.0 = self.0.wrapping_add(1);
        self.0
    }
}

/// IPv4 header fields the builders do not set.
#[derive(Clone, Copy)]
struct Hdr {
    src: [u8; 4],
    dst: [u8; 4],
    ttl: u8,
    tos: u8,
    df: bool,
    id: u16,
}

fn macs(src: [u8; 4]) -> ([u8; 6], [u8; 6]) {
    if src[0] == 192 {
        (SERVER_MAC, GW_PRIV_MAC)
    } else {
        (ROUTER_MAC, GW_PUB_MAC)
    }
}

/// Sets id, TOS and DF and fixes the header checksum (none of them is in an L4 checksum).
fn patch(mut f: Vec<u8>, h: Hdr) -> Vec<u8> {
    f[15] = h.tos;
    f[18..20].copy_from_slice(&h.id.to_be_bytes());
    f[20] = if h.df { 0x40 } else { 0 };
    f[21] = 0;
    common::fix_ip_checksum(&mut f, 14);
    f
}

#[derive(Clone, Copy, Default)]
struct Tcp {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: Option<u32>,
    syn: bool,
    fin: bool,
    psh: bool,
}

fn tcp(h: Hdr, t: Tcp, payload: &[u8]) -> Vec<u8> {
    let (sm, dm) = macs(h.src);
    let mut b = PacketBuilder::ethernet2(sm, dm)
        .ipv4(h.src, h.dst, h.ttl)
        .tcp(t.sport, t.dport, t.seq, 64240);
    if t.syn {
        b = b.syn();
        b = b
            .options(&[TcpOptionElement::MaximumSegmentSize(1460)])
            .expect("MSS option fits");
    }
    if let Some(a) = t.ack {
        b = b.ack(a);
    }
    if t.fin {
        b = b.fin();
    }
    if t.psh {
        b = b.psh();
    }
    let mut v = Vec::new();
    b.write(&mut v, payload).expect("building a TCP frame");
    patch(v, h)
}

fn udp(h: Hdr, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let (sm, dm) = macs(h.src);
    let mut v = Vec::new();
    PacketBuilder::ethernet2(sm, dm)
        .ipv4(h.src, h.dst, h.ttl)
        .udp(sport, dport)
        .write(&mut v, payload)
        .expect("building a UDP frame");
    patch(v, h)
}

fn echo(h: Hdr, request: bool, ident: u16, seq: u16) -> Vec<u8> {
    let (sm, dm) = macs(h.src);
    let b = PacketBuilder::ethernet2(sm, dm).ipv4(h.src, h.dst, h.ttl);
    let b = if request {
        b.icmpv4_echo_request(ident, seq)
    } else {
        b.icmpv4_echo_reply(ident, seq)
    };
    let mut v = Vec::new();
    b.write(&mut v, b"dnatsim kernel diff ping")
        .expect("building an echo frame");
    patch(v, h)
}

/// An ICMP destination unreachable (port) quoting the first `quote` bytes of `inner`'s IP packet.
fn unreachable(h: Hdr, inner: &[u8], quote: usize) -> Vec<u8> {
    let (sm, dm) = macs(h.src);
    let ipq = &inner[14..(14 + quote).min(inner.len())];
    let mut v = Vec::new();
    PacketBuilder::ethernet2(sm, dm)
        .ipv4(h.src, h.dst, h.ttl)
        .icmpv4_raw(3, 3, [0; 4])
        .write(&mut v, ipq)
        .expect("building an ICMP error frame");
    patch(v, h)
}

/// Splits a frame's IP payload into fragments of `chunk` bytes (a multiple of 8).
fn fragment(frame: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let ihl = usize::from(frame[14] & 0x0f) * 4;
    let payload = &frame[14 + ihl..];
    let mut out = Vec::new();
    for (k, part) in payload.chunks(chunk).enumerate() {
        let mut f = frame[..14 + ihl].to_vec();
        f.extend_from_slice(part);
        let total = (ihl + part.len()) as u16;
        f[16..18].copy_from_slice(&total.to_be_bytes());
        let more = (k + 1) * chunk < payload.len();
        let field = ((k * chunk / 8) as u16) | if more { 0x2000 } else { 0 };
        f[20..22].copy_from_slice(&field.to_be_bytes());
        common::fix_ip_checksum(&mut f, 14);
        out.push(f);
    }
    out
}

/// A payload of `n` bytes whose content depends on `seed`.
fn bytes(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Frames sent in one step, all from one side, in order.
struct Phase {
    side: Side,
    frames: Vec<Vec<u8>>,
}

/// The whole exchange, as phases that alternate sides so that every packet conntrack sees is
/// valid for its connection (SYN, SYN-ACK, ACK and data, FIN in both directions).
fn traffic(rules: &Path) -> (Vec<Phase>, Marks) {
    let mut ids = Ids(0x4000);
    let mut marks = Marks::default();
    let mut p: Vec<Vec<Vec<u8>>> = vec![Vec::new(); 6];
    let hdr = |ids: &mut Ids, src, dst, ttl, tos, df| Hdr {
        src,
        dst,
        ttl,
        tos,
        df,
        id: ids.next(),
    };
    // TCP flows to every port mapping and to the IP mappings, full lifecycle.
    let targets: [([u8; 4], u16, [u8; 4], u16); 6] = [
        (IP3, 80, ecs(3), 80),
        (IP3, 443, ecs(4), 443),
        (IP4, 22, ecs(5), 22),
        (IP1, 8080, ecs(1), 8080),
        (IP2, 22, ecs(2), 22),
        (IP1, 443, ecs(1), 443),
    ];
    let mut k: u32 = 0;
    for (t, &(eip, eport, srv, sport_srv)) in targets.iter().enumerate() {
        for c in 0..3u8 {
            k += 1;
            let client = [198, 51, 100, 10 + (t as u8) * 3 + c];
            let cport = 40_000 + (k as u16) * 7;
            let (cs, ss) = (k * 1_000_003, k * 7_000_001);
            let (tos, df) = ([0u8, 0x10, 0xb8][c as usize], c != 2);
            let (n1, n2) = (50 + 97 * k as usize % 900, 30 + 211 * k as usize % 1300);
            let ct = 50 + c;
            let tin = |seq, ack, syn, fin, psh| Tcp {
                sport: cport,
                dport: eport,
                seq,
                ack,
                syn,
                fin,
                psh,
            };
            let tout = |seq, ack, syn, fin, psh| Tcp {
                sport: sport_srv,
                dport: cport,
                seq,
                ack,
                syn,
                fin,
                psh,
            };
            let h = hdr(&mut ids, client, eip, ct, tos, df);
            p[0].push(tcp(h, tin(cs, None, true, false, false), &[]));
            let h = hdr(&mut ids, srv, client, 64, tos, df);
            p[1].push(tcp(h, tout(ss, Some(cs + 1), true, false, false), &[]));
            let h = hdr(&mut ids, client, eip, ct, tos, df);
            p[2].push(tcp(h, tin(cs + 1, Some(ss + 1), false, false, false), &[]));
            let h = hdr(&mut ids, client, eip, ct, tos, df);
            let data = bytes(n1, k as u8);
            p[2].push(tcp(h, tin(cs + 1, Some(ss + 1), false, false, true), &data));
            let a1 = cs + 1 + n1 as u32;
            let h = hdr(&mut ids, srv, client, 64, tos, df);
            p[3].push(tcp(h, tout(ss + 1, Some(a1), false, false, false), &[]));
            let h = hdr(&mut ids, srv, client, 64, tos, df);
            let data = bytes(n2, 100 + k as u8);
            p[3].push(tcp(h, tout(ss + 1, Some(a1), false, false, true), &data));
            let s2 = ss + 1 + n2 as u32;
            let h = hdr(&mut ids, srv, client, 64, tos, df);
            p[3].push(tcp(h, tout(s2, Some(a1), false, true, false), &[]));
            let h = hdr(&mut ids, client, eip, ct, tos, df);
            p[4].push(tcp(h, tin(a1, Some(s2 + 1), false, false, false), &[]));
            let h = hdr(&mut ids, client, eip, ct, tos, df);
            p[4].push(tcp(h, tin(a1, Some(s2 + 1), false, true, false), &[]));
            let h = hdr(&mut ids, srv, client, 64, tos, df);
            p[5].push(tcp(h, tout(s2 + 1, Some(a1 + 1), false, false, false), &[]));
        }
    }
    // UDP request/response to the IP mappings, and ICMP echo, in two rounds each.
    for (n, (eip, srv)) in [(IP1, ecs(1)), (IP2, ecs(2))].into_iter().enumerate() {
        for c in 0..4u8 {
            let client = [198, 51, 100, 100 + (n as u8) * 10 + c];
            let (cport, port) = (
                50_000 + u16::from(c) * 11,
                [53, 5000, 123, 9999][c as usize],
            );
            for round in 0..2 {
                let h = hdr(&mut ids, client, eip, 60, 0, c % 2 == 0);
                p[round * 2].push(udp(h, cport, port, &bytes(20 + 40 * c as usize, c)));
                let h = hdr(&mut ids, srv, client, 64, 0, c % 2 == 0);
                p[round * 2 + 1].push(udp(h, port, cport, &bytes(100 + 90 * c as usize, c)));
                let h = hdr(&mut ids, client, eip, 60, 0, false);
                p[round * 2].push(echo(h, true, 0x100 + u16::from(c), round as u16));
                let h = hdr(&mut ids, srv, client, 64, 0, false);
                p[round * 2 + 1].push(echo(h, false, 0x100 + u16::from(c), round as u16));
            }
        }
    }
    // ICMP errors about live UDP flows: from the router toward an EIP (quoting what the
    // gateway sent, 8 bytes of it or all), and from a server toward a client.
    let client = [198, 51, 100, 100];
    let sent = udp(
        hdr(&mut ids, IP1, client, 63, 0, true),
        53,
        50_000,
        &bytes(100, 0),
    );
    let h = hdr(&mut ids, ROUTER, IP1, 255, 0xc0, false);
    p[2].push(unreachable(h, &sent, 28));
    let h = hdr(&mut ids, ROUTER, IP1, 255, 0xc0, false);
    p[2].push(unreachable(h, &sent, 128));
    let client = [198, 51, 100, 111];
    let got = udp(
        hdr(&mut ids, client, ecs(2), 59, 0, false),
        50_011,
        5000,
        &bytes(60, 1),
    );
    let h = hdr(&mut ids, ecs(2), client, 64, 0xc0, false);
    p[3].push(unreachable(h, &got, 88));
    // The IP-mapped servers' own DNS queries (SNAT to their EIP) and the answers.
    for (n, (srv, eip)) in [(ecs(1), IP1), (ecs(2), IP2)].into_iter().enumerate() {
        let sport = 33_000 + n as u16;
        let h = hdr(&mut ids, srv, DNS, 64, 0, false);
        p[1].push(udp(h, sport, 53, &bytes(33, 7)));
        let h = hdr(&mut ids, DNS, eip, 61, 0, false);
        p[2].push(udp(h, 53, sport, &bytes(120, 8)));
    }
    // Misses: an EIP without entries, an unmapped port, the wrong protocol, a ping to a
    // port-only EIP. Oddities: TTL 1, bad IPv4 header checksum, UDP without checksum.
    let miss = [198, 51, 100, 150];
    let syn = |dport| Tcp {
        sport: 41_000,
        dport,
        seq: 77,
        syn: true,
        ..Tcp::default()
    };
    let h = hdr(&mut ids, miss, IP5, 60, 0, true);
    marks.dropped_by_both.push(mark(6, h));
    p[0].push(tcp(h, syn(80), &[]));
    let h = hdr(&mut ids, miss, IP4, 60, 0, true);
    marks.dropped_by_both.push(mark(6, h));
    p[0].push(tcp(h, syn(80), &[]));
    let h = hdr(&mut ids, miss, IP3, 60, 0, true);
    marks.dropped_by_both.push(mark(17, h));
    p[0].push(udp(h, 41_001, 80, b"miss"));
    let h = hdr(&mut ids, miss, IP3, 60, 0, false);
    marks.dropped_by_both.push(mark(1, h));
    p[0].push(echo(h, true, 0x77, 1));
    let odd = [198, 51, 100, 151];
    let h = hdr(&mut ids, odd, IP1, 1, 0, false);
    marks.ttl_one = mark(17, h);
    p[0].push(udp(h, 42_000, 7, b"ttl one"));
    let h = hdr(&mut ids, odd, IP2, 60, 0, false);
    marks.dropped_by_both.push(mark(17, h));
    let mut f = udp(h, 42_001, 7, b"bad header checksum");
    f[24] ^= 0x55;
    p[0].push(f);
    let h = hdr(&mut ids, odd, IP1, 60, 0, false);
    let mut f = udp(h, 42_002, 7, b"no UDP checksum");
    f[40] = 0;
    f[41] = 0;
    p[0].push(f);
    // Bad L4 checksums (the kernel's conntrack refuses them; dnatsim carries them along).
    let h = hdr(&mut ids, odd, IP1, 60, 0, true);
    marks.bad_l4.push(mark(6, h));
    let mut f = tcp(h, syn(9000), &[]);
    f[50] ^= 0x01;
    p[0].push(f);
    let h = hdr(&mut ids, odd, IP2, 60, 0, false);
    marks.bad_l4.push(mark(17, h));
    let mut f = udp(h, 42_003, 7, b"bad UDP checksum");
    f[40] ^= 0x01;
    p[0].push(f);
    // Checksums that become zero after translation: UDP must say 0xffff then (RFC 768).
    let f = zero_after(&mut ids, 17, [198, 51, 100, 152], IP1, ecs(1));
    marks.udp_zero = (17, u16::from_be_bytes([f[18], f[19]]), [198, 51, 100, 152]);
    p[0].push(f);
    p[0].push(zero_after(&mut ids, 6, [198, 51, 100, 153], IP2, ecs(2)));
    // A port-mapped server's own traffic, with no connection behind it (see the README).
    let h = hdr(&mut ids, ecs(3), [198, 51, 100, 99], 64, 0, true);
    marks.static_reverse = mark(6, h);
    let t = Tcp {
        sport: 80,
        dport: 6000,
        seq: 99,
        syn: true,
        ..Tcp::default()
    };
    p[1].push(tcp(h, t, &[]));
    // Fragmented UDP datagrams to the IP mappings, in order and last fragment first.
    for (n, eip) in [IP1, IP2, IP1].into_iter().enumerate() {
        let h = hdr(&mut ids, [198, 51, 100, 160 + n as u8], eip, 60, 0, false);
        let whole = udp(h, 43_000 + n as u16, 6000, &bytes(2500 + 700 * n, n as u8));
        let mut frags = fragment(&whole, 1480);
        if n == 1 {
            frags.reverse();
        }
        p[0].extend(frags);
    }
    let mut phases: Vec<Phase> = p
        .into_iter()
        .enumerate()
        .map(|(i, frames)| Phase {
            side: if i % 2 == 0 {
                Side::Client
            } else {
                Side::Server
            },
            frames,
        })
        .collect();
    // Bulk inbound traffic from the generator: UDP datagrams, and mid-stream TCP ACKs that
    // conntrack picks up (nf_conntrack_tcp_loose, on by default).
    let rules = dnatsim::rules::parse_file(rules)
        .expect("the test rules parse")
        .rules;
    for (mix, packets, seed) in [(Mix::Udp { size: 300 }, 300, 11), (Mix::Tcp64, 150, 12)] {
        let cfg = GenConfig {
            packets,
            seed,
            mix,
            flows: 40,
            ..GenConfig::default()
        };
        let mut g = Generator::new(&rules, &cfg).expect("generator for the seed rules");
        let mut buf = Vec::new();
        while g.next_packet(&mut buf).is_some() {
            phases[0].frames.push(buf.clone());
        }
    }
    (phases, marks)
}

/// A packet as the marks name it: protocol, IPv4 id and the client's address (the source of
/// what a client sends, the destination of what a server sends). The hand-built ids are unique.
type Mark = (u8, u16, [u8; 4]);

fn mark(proto: u8, h: Hdr) -> Mark {
    let client = if h.src[0] == 198 { h.src } else { h.dst };
    (proto, h.id, client)
}

/// The packets built for each expected difference; every other packet must come out of both
/// gateways, byte-identical from the IP header on.
#[derive(Default)]
struct Marks {
    /// Misses and the bad IPv4 header checksum: neither gateway lets them through.
    dropped_by_both: Vec<Mark>,
    /// TTL 1: dnatsim drops it; the kernel answers with ICMP time exceeded quoting it.
    ttl_one: Mark,
    /// Bad TCP/UDP checksums: dnatsim translates them (still wrong), conntrack refuses them.
    bad_l4: Vec<Mark>,
    /// The port-mapped server's SYN with no connection: dnatsim reverses it statically.
    static_reverse: Mark,
    /// The UDP datagram whose checksum computes to zero once translated.
    udp_zero: Mark,
}

/// A packet to `eip` whose TCP/UDP checksum computes to zero once its destination is `srv`.
fn zero_after(ids: &mut Ids, proto: u8, client: [u8; 4], eip: [u8; 4], srv: [u8; 4]) -> Vec<u8> {
    let build = |dst, w: u16, id| {
        let h = Hdr {
            src: client,
            dst,
            ttl: 60,
            tos: 0,
            df: true,
            id,
        };
        let mut payload = b"..checksum zero after translation".to_vec();
        payload[..2].copy_from_slice(&w.to_be_bytes());
        if proto == 17 {
            udp(h, 44_000, 7777, &payload)
        } else {
            let t = Tcp {
                sport: 44_001,
                dport: 7777,
                seq: 4242,
                syn: true,
                ..Tcp::default()
            };
            tcp(h, t, &payload)
        }
    };
    let id = ids.next();
    let probe = build(srv, 0, id);
    let at = if proto == 17 { 40 } else { 50 };
    // With the payload's first word at zero the checksum is c; putting c there makes the
    // one's complement sum all ones, so the checksum of the translated packet is zero.
    let c = u16::from_be_bytes([probe[at], probe[at + 1]]);
    build(eip, c, id)
}

/// How a delivered packet is found again: side, protocol, id, the client's address and port
/// (NAT never changes them), and the fragment offset.
type Key = (Side, u8, u16, [u8; 4], u16, u16);

/// The IP packet of an Ethernet frame, without any Ethernet padding.
fn ip_of(frame: &[u8]) -> &[u8] {
    let f = &frame[14..];
    let total = usize::from(u16::from_be_bytes([f[2], f[3]])).min(f.len());
    &f[..total]
}

/// The key of an Ethernet/IPv4 frame as delivered to `side`; None for anything else.
fn key_of(side: Side, frame: &[u8]) -> Option<Key> {
    if frame.len() < 34 || frame[12..14] != [0x08, 0x00] || frame[14] >> 4 != 4 {
        return None;
    }
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let proto = ip[9];
    let id = u16::from_be_bytes([ip[4], ip[5]]);
    let frag = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
    let (addr_at, port_at) = match side {
        Side::Server => (12, 0),
        Side::Client => (16, 2),
    };
    let client: [u8; 4] = ip[addr_at..addr_at + 4].try_into().ok()?;
    let port = if frag == 0 && (proto == 6 || proto == 17) && ip.len() >= ihl + 4 {
        u16::from_be_bytes([ip[ihl + port_at], ip[ihl + port_at + 1]])
    } else {
        0
    };
    Some((side, proto, id, client, port, frag))
}

/// The side a frame dnatsim wrote leaves on: a server's address (192.0.2.0/24) is behind the
/// private side, anything else (an EIP too, should a packet pass untranslated) on the public
/// side. Every frame dnatsim wrote is compared, whatever its addresses.
fn side_of(frame: &[u8]) -> Side {
    if frame.len() >= 34 && frame[30..33] == ecs(0)[..3] {
        Side::Server
    } else {
        Side::Client
    }
}

fn mark_of(k: &Key) -> Mark {
    (k.1, k.2, k.3)
}

/// The Ethernet header (destination, source) a gateway's frame delivered to `side` carries:
/// the kernel routes (its own MAC toward the next hop); dnatsim leaves the input's alone, so
/// its frames keep the sender-to-gateway header they came with.
fn expected_eth(side: Side, kernel: bool) -> Vec<u8> {
    let (dst, src) = match (side, kernel) {
        (Side::Server, true) => (SERVER_MAC, GW_PRIV_MAC),
        (Side::Client, true) => (ROUTER_MAC, GW_PUB_MAC),
        (Side::Server, false) => (GW_PUB_MAC, ROUTER_MAC),
        (Side::Client, false) => (GW_PRIV_MAC, SERVER_MAC),
    };
    [dst, src].concat()
}

/// Whether `frame` is the gateway's ICMP time exceeded (TTL exceeded in transit) about the
/// packet `m`, sent from one of its public addresses to that packet's client.
fn time_exceeded_for(frame: &[u8], m: Mark) -> bool {
    if key_of(Side::Client, frame).is_none() {
        return false;
    }
    let ip = ip_of(frame);
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let Some(inner) = ip.get(ihl + 8..) else {
        return false;
    };
    ip[9] == 1
        && ip.get(ihl..ihl + 2) == Some(&[11, 0][..])
        && EIPS.iter().any(|e| ip[12..16] == *e)
        && ip[16..20] == m.2
        && inner.len() >= 20
        && inner[9] == m.0
        && u16::from_be_bytes([inner[4], inner[5]]) == m.1
        && inner[12..16] == m.2
}

/// True when the IPv4 header checksum is right and the TCP/UDP checksum wrong: a bad-L4 input
/// that dnatsim translated and kept exactly as wrong as it was.
fn only_l4_bad(frame: &[u8]) -> bool {
    let Ok((h, _)) = Ipv4Header::from_slice(&frame[14..]) else {
        return false;
    };
    h.header_checksum == h.calc_header_checksum() && verify_checksums(frame, 14).is_err()
}

/// `ip` (an unfragmented TCP packet) with source address `src`, both checksums recomputed.
fn with_source(ip: &[u8], src: [u8; 4]) -> Vec<u8> {
    let mut v = ip.to_vec();
    v[12..16].copy_from_slice(&src);
    let (h, _) = Ipv4Header::from_slice(&v).expect("an IPv4 header");
    let ihl = h.header_len();
    v[10..12].copy_from_slice(&h.calc_header_checksum().to_be_bytes());
    if let Ok((t, data)) = TcpHeader::from_slice(&v[ihl..])
        && let Ok(c) = t.calc_checksum_ipv4(&h, data)
    {
        v[ihl + 16..ihl + 18].copy_from_slice(&c.to_be_bytes());
    }
    v
}

/// Names the IPv4/L4 fields in which two IP packets differ.
fn differing_fields(a: &[u8], b: &[u8]) -> Vec<&'static str> {
    const FIELDS: [(&str, usize, usize); 11] = [
        ("version/ihl", 0, 1),
        ("tos", 1, 2),
        ("total length", 2, 4),
        ("id", 4, 6),
        ("flags/fragment offset", 6, 8),
        ("ttl", 8, 9),
        ("protocol", 9, 10),
        ("ip checksum", 10, 12),
        ("source address", 12, 16),
        ("destination address", 16, 20),
        ("options", 20, 20),
    ];
    let mut out = Vec::new();
    for (name, s, e) in FIELDS {
        if a.get(s..e) != b.get(s..e) {
            out.push(name);
        }
    }
    let ihl = usize::from(a[0] & 0x0f) * 4;
    let (la, lb) = (&a[ihl.min(a.len())..], &b[ihl.min(b.len())..]);
    let csum_at = match (a[9], u16::from_be_bytes([a[6], a[7]]) & 0x1fff) {
        (6, 0) => Some(16),
        (17, 0) => Some(6),
        (1, 0) => Some(2),
        _ => None,
    };
    if la.get(..4) != lb.get(..4) && csum_at.is_some() {
        out.push("ports/icmp header");
    }
    if let Some(c) = csum_at {
        if la.get(c..c + 2) != lb.get(c..c + 2) {
            out.push("l4 checksum");
        }
        let mut xa = la.to_vec();
        let mut xb = lb.to_vec();
        for x in [&mut xa, &mut xb] {
            for i in [0, 1, 2, 3, c, c + 1] {
                if let Some(v) = x.get_mut(i) {
                    *v = 0;
                }
            }
        }
        if xa != xb {
            out.push("l4 header/payload");
        }
    } else if la != lb {
        out.push("payload");
    }
    out
}

/// A frame as delivered to one side of the gateway.
type Delivered = (Side, Vec<u8>);

/// The outcome of the comparison.
#[derive(Default, Debug)]
struct Counts {
    /// Pairs found on both sides.
    compared: usize,
    /// Pairs byte-identical from the IP header on, Ethernet headers as expected.
    identical: usize,
    legit: BTreeMap<&'static str, usize>,
    /// One entry per packet that is wrong (several faults of one packet make one entry).
    real: Vec<String>,
    checksums_checked: usize,
    /// Index in the kernel's packets of each identical pair (the self-check alters one).
    identical_at: Vec<usize>,
}

const BAD_L4: &str = "kernel_dropped_bad_l4_checksum";
const TIME_EXCEEDED: &str = "kernel_icmp_time_exceeded_for_ttl_1";
const STATIC_REVERSE: &str = "port_mapping_static_reverse";

/// Compares every frame dnatsim wrote with every frame the kernel delivered to either side.
/// Only the packets `marks` names may differ, each in the one way its mark allows.
fn compare(dnatsim: &[Vec<u8>], kernel: &[(Side, Vec<u8>)], marks: &Marks) -> Counts {
    let mut counts = Counts::default();
    let mut want: HashMap<Key, Vec<&[u8]>> = HashMap::new();
    for f in dnatsim {
        match key_of(side_of(f), f) {
            Some(k) => want.entry(k).or_default().push(f),
            None => counts
                .real
                .push(format!("dnatsim wrote a frame that is not IPv4: {f:02x?}")),
        }
    }
    for (i, (side, got)) in kernel.iter().enumerate() {
        let Some(k) = key_of(*side, got) else {
            counts.real.push(format!(
                "kernel delivered a frame that is not IPv4 to the {side:?} side: {got:02x?}"
            ));
            continue;
        };
        let mine = want
            .get_mut(&k)
            .and_then(|v| (!v.is_empty()).then(|| v.remove(0)));
        let Some(mine) = mine else {
            // The gateway's own ICMP time exceeded, about the one TTL 1 packet: dnatsim drops
            // that packet and sends nothing. Any other packet of the kernel's alone is real.
            if *side == Side::Client && time_exceeded_for(got, marks.ttl_one) {
                *counts.legit.entry(TIME_EXCEEDED).or_default() += 1;
            } else {
                counts
                    .real
                    .push(format!("kernel delivered, dnatsim did not: {k:?}"));
            }
            continue;
        };
        counts.compared += 1;
        let mut faults = Vec::new();
        if got[..12] != expected_eth(*side, true) {
            faults.push(format!("kernel's Ethernet header {:02x?}", &got[..12]));
        }
        if mine[..12] != expected_eth(*side, false) {
            faults.push(format!("dnatsim's Ethernet header {:02x?}", &mine[..12]));
        }
        for (who, f) in [("kernel", got.as_slice()), ("dnatsim", mine)] {
            counts.checksums_checked += 1;
            if let Err(e) = verify_checksums(f, 14) {
                faults.push(format!("{who}'s {e}"));
            }
        }
        let (a, b) = (ip_of(got), ip_of(mine));
        let mut legit = None;
        if a != b {
            // dnatsim reverses a port mapping statically; conntrack only reverses replies of
            // connections it saw. Only the marked SYN, and only its source address (with the
            // two checksums that cover it), may differ so.
            if mark_of(&k) == marks.static_reverse
                && a[12..16] == ecs(3)
                && b[12..16] == IP3
                && with_source(a, IP3) == b
            {
                legit = Some(STATIC_REVERSE);
            } else {
                faults.push(format!("differs in {:?}", differing_fields(a, b)));
            }
        }
        if !faults.is_empty() {
            counts.real.push(format!("{k:?}: {}", faults.join("; ")));
        } else if let Some(l) = legit {
            *counts.legit.entry(l).or_default() += 1;
        } else {
            counts.identical += 1;
            counts.identical_at.push(i);
        }
    }
    let mut left: Vec<(Key, Vec<&[u8]>)> =
        want.into_iter().filter(|(_, v)| !v.is_empty()).collect();
    left.sort_by_key(|(k, _)| *k);
    for (k, v) in left {
        for f in v {
            // conntrack verifies TCP/UDP checksums and does not NAT a bad one (the ruleset then
            // drops it as a miss); dnatsim translates the marked packets and keeps them wrong.
            if k.0 == Side::Server && marks.bad_l4.contains(&mark_of(&k)) && only_l4_bad(f) {
                *counts.legit.entry(BAD_L4).or_default() += 1;
            } else {
                counts
                    .real
                    .push(format!("dnatsim delivered, kernel did not: {k:?}"));
            }
        }
    }
    counts
}

/// Why the test cannot run here, if it cannot.
fn missing_tool() -> Option<String> {
    for tool in ["ip", "nft", "tcpdump", "tcpreplay", "timeout"] {
        let ok = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if !ok {
            return Some(format!("{tool} not found"));
        }
    }
    None
}

/// The comparison checks itself on this run's packets: one field of one identical kernel
/// packet changed must make exactly one real difference, and so must one dnatsim packet
/// removed (reported missing). Returns what it found, for the log.
fn self_check(
    ours: &[Vec<u8>],
    kernel: &[(Side, Vec<u8>)],
    marks: &Marks,
    base: &Counts,
) -> String {
    // An identical unfragmented TCP packet delivered to a server: the key holds its source
    // port (the client's), so changing the destination port keeps it findable.
    let at = *base
        .identical_at
        .iter()
        .find(|&&i| {
            let (side, f) = &kernel[i];
            *side == Side::Server && f[23] == 6 && u16::from_be_bytes([f[20], f[21]]) & 0x3fff == 0
        })
        .expect("an identical TCP packet delivered to a server");
    let ihl = usize::from(kernel[at].1[14] & 0x0f) * 4;
    let l4 = 14 + ihl;
    let mut out = Vec::new();
    for (what, byte) in [
        ("ttl", 14 + 8),
        ("destination port", l4 + 3),
        ("TCP checksum byte", l4 + 17),
        ("IP checksum byte", 14 + 11),
    ] {
        let mut altered = kernel.to_vec();
        altered[at].1[byte] ^= 0x01;
        let c = compare(ours, &altered, marks);
        assert_eq!(
            c.real.len(),
            1,
            "self-check: the kernel's packet with its {what} changed must make exactly one \
             real difference, got {:?}",
            c.real
        );
        assert_eq!(
            c.legit, base.legit,
            "self-check ({what}): legitimate counts moved"
        );
        out.push(format!("{what} changed -> {}", c.real[0]));
    }
    // dnatsim's counterpart of that packet removed: the kernel's copy must be reported missing.
    let gone = ip_of(&kernel[at].1);
    let pos = ours
        .iter()
        .position(|f| ip_of(f) == gone)
        .expect("dnatsim's copy of an identical packet");
    let mut fewer = ours.to_vec();
    fewer.remove(pos);
    let c = compare(&fewer, kernel, marks);
    assert!(
        c.real.len() == 1 && c.real[0].starts_with("kernel delivered, dnatsim did not"),
        "self-check: one dnatsim packet removed must be reported missing, got {:?}",
        c.real
    );
    out.push(format!("one dnatsim packet removed -> {}", c.real[0]));
    // Each legitimate difference stays tied to its packet and to its one way of differing:
    // spoiled in another way, the packet is a real difference again.
    fn find(v: &[Delivered], want: impl Fn(&Delivered) -> bool) -> usize {
        v.iter()
            .position(want)
            .expect("the marked packet in this run")
    }
    let reverse = find(kernel, |(side, f)| {
        key_of(*side, f).is_some_and(|k| mark_of(&k) == marks.static_reverse)
    });
    let exceeded = find(kernel, |(_, f)| time_exceeded_for(f, marks.ttl_one));
    let ours_sided: Vec<(Side, Vec<u8>)> = ours.iter().map(|f| (side_of(f), f.clone())).collect();
    let bad = find(&ours_sided, |(side, f)| {
        key_of(*side, f).is_some_and(|k| marks.bad_l4.contains(&mark_of(&k)))
    });
    for (what, in_kernel, at, byte) in [
        ("static reverse with its TTL changed", true, reverse, 14 + 8),
        (
            "time exceeded turned into a port unreachable",
            true,
            exceeded,
            14 + 20,
        ),
        (
            "bad-L4 packet with a bad IPv4 header checksum too",
            false,
            bad,
            14 + 11,
        ),
    ] {
        let (mut k2, mut o2) = (kernel.to_vec(), ours.to_vec());
        if in_kernel {
            k2[at].1[byte] = if byte == 34 { 3 } else { k2[at].1[byte] ^ 0x01 };
        } else {
            o2[at][byte] ^= 0x01;
        }
        let c = compare(&o2, &k2, marks);
        assert_eq!(
            c.real.len(),
            1,
            "self-check: {what} must be exactly one real difference, got {:?}",
            c.real
        );
        out.push(format!("{what} -> {}", c.real[0]));
    }
    out.join("\n  ")
}

#[test]
fn dnatsim_translates_as_the_linux_kernel_does() {
    let started = Instant::now();
    if let Some(why) = missing_tool() {
        common::skip_or_fail(&format!("kernel differential test needs its tools ({why})"));
        return;
    }
    let mut lab = match Lab::new() {
        Ok(l) => l,
        Err(e) => {
            common::skip_or_fail(&format!(
                "kernel differential test needs CAP_NET_ADMIN ({e})"
            ));
            return;
        }
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let d = dir.path();
    let rules = test_rules(d);
    let rules_arg = rules.to_string_lossy().into_owned();
    let bin = env!("CARGO_BIN_EXE_dnatsim");
    let nft = Command::new(bin)
        .args(["export", "--rules", &rules_arg, "--format", "nft"])
        .output()
        .expect("running dnatsim export");
    assert!(nft.status.success(), "dnatsim export failed");
    let nft_file = d.join("dnat.nft");
    std::fs::write(&nft_file, &nft.stdout).expect("writing the ruleset");
    let notes = lab
        .setup(&nft_file)
        .expect("building the namespace topology");
    for n in &notes {
        println!("note: {n}");
    }

    let (phases, marks) = traffic(&rules);
    let mut all = Vec::new();
    for ph in &phases {
        all.extend(ph.frames.iter().cloned());
    }
    let input = d.join("input.pcap");
    write_pcap(&input, &all, 0);

    let (cap_c, cap_s) = (d.join("client.pcap"), d.join("server.pcap"));
    lab.capture(Side::Client, &cap_c, &d.join("client.log"))
        .expect("tcpdump on the client side");
    lab.capture(Side::Server, &cap_s, &d.join("server.log"))
        .expect("tcpdump on the server side");
    let mut first = 0;
    for (i, ph) in phases.iter().enumerate() {
        let file = d.join(format!("phase{i}.pcap"));
        write_pcap(&file, &ph.frames, first);
        first += ph.frames.len() as u64;
        lab.replay(ph.side, &file).expect("tcpreplay");
        // Let the gateway forward everything before the other side answers.
        std::thread::sleep(Duration::from_millis(300));
    }
    // tcpdump loses what it has not read from its socket when it is stopped, and on a loaded
    // machine it can lag: with 300 ms here, some runs lost the whole last phase (the servers'
    // 18 final ACKs), which the old loose "mid-stream ACK" exception had been absorbing. So
    // wait at least a second, then until neither capture has grown for 750 ms (10 s at most).
    settle(&[&cap_c, &cap_s]);
    lab.stop_captures();
    let mut kernel = Vec::new();
    for (side, file) in [(Side::Client, &cap_c), (Side::Server, &cap_s)] {
        for f in read_pcap(file).expect("reading the kernel's capture") {
            kernel.push((side, f));
        }
    }
    drop(lab);

    let out = d.join("dnatsim.pcap");
    let st = Command::new(bin)
        .args([
            "replay",
            "--rules",
            &rules_arg,
            "--no-bandwidth",
            "-q",
            "-o",
        ])
        .arg(&out)
        .arg(&input)
        .status()
        .expect("running dnatsim replay");
    assert!(st.success(), "dnatsim replay failed");
    let ours = read_pcap(&out).expect("reading dnatsim's output");

    let counts = compare(&ours, &kernel, &marks);
    println!(
        "kernel diff: {} frames sent in {} phases; kernel delivered {}; dnatsim wrote {}",
        all.len(),
        phases.len(),
        kernel.len(),
        ours.len()
    );
    println!(
        "kernel diff: compared {} / identical {} / legitimate {:?} / real differences {} / \
         {} checksums verified / {:.1} s",
        counts.compared,
        counts.identical,
        counts.legit,
        counts.real.len(),
        counts.checksums_checked,
        started.elapsed().as_secs_f64()
    );
    for r in counts.real.iter().take(40) {
        println!("  real difference: {r}");
    }
    assert!(
        counts.real.is_empty(),
        "{} real differences",
        counts.real.len()
    );
    // Every count follows from the marked packets: dnatsim drops the misses, the bad header
    // checksum and the TTL 1 packet; the kernel drops those and the bad L4 checksums and adds
    // one time exceeded; everything both delivered is identical but the static reverse.
    let expect_legit = BTreeMap::from([
        (BAD_L4, marks.bad_l4.len()),
        (TIME_EXCEEDED, 1),
        (STATIC_REVERSE, 1),
    ]);
    assert_eq!(counts.legit, expect_legit, "legitimate differences");
    assert_eq!(
        ours.len(),
        all.len() - marks.dropped_by_both.len() - 1,
        "dnatsim's output"
    );
    assert_eq!(
        kernel.len(),
        ours.len() - marks.bad_l4.len() + 1,
        "kernel's output"
    );
    assert_eq!(
        counts.compared,
        ours.len() - marks.bad_l4.len(),
        "pairs compared"
    );
    assert_eq!(counts.identical, counts.compared - 1, "identical pairs");
    // RFC 768: a UDP checksum that computes to zero is sent as 0xffff (zero means none).
    for (who, frames) in [
        ("dnatsim", ours.iter().collect::<Vec<_>>()),
        ("kernel", kernel.iter().map(|(_, f)| f).collect()),
    ] {
        let f = frames
            .iter()
            .find(|f| key_of(Side::Server, f).is_some_and(|k| mark_of(&k) == marks.udp_zero))
            .unwrap_or_else(|| panic!("{who} delivered the zero-checksum UDP datagram"));
        assert_eq!(
            f[40..42],
            [0xff, 0xff],
            "{who}: UDP checksum zero after translation"
        );
    }
    let log = self_check(&ours, &kernel, &marks, &counts);
    println!("kernel diff self-check:\n  {log}");
}
