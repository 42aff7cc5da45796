//! The bundled sample mix: interleaved conversations and single packets by per-mille weight.

use super::Category;
use super::build::{
    self, ACK, ETHERTYPE_ARP, ETHERTYPE_IPV6, FIN, MF, PROTO_ICMP, PROTO_TCP, PROTO_UDP, PSH, SYN,
    mac,
};
use super::engine::{Core, Cursor, Flow, GW_PUBLIC_MAC, Side, imix};
use super::plan::{Mapped, Probe};
use crate::wire::checksum::sum;

/// Payload bytes of a fragment (1500-byte MTU minus the IPv4 header; a multiple of 8).
const FRAG_DATA: usize = 1480;
/// ICMP echo data length (the `ping` default), so an echo is 84 IP bytes.
const ECHO_DATA: usize = 56;
/// The MSS a SYN advertises on a 1500-byte path.
const MSS: u16 = 1460;

/// One packet of a conversation; returns (IP length, finished).
trait Conversation: Sized {
    fn step(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (u16, bool);
}

/// Advances a random conversation of `pool`, starting a new one with `make` in an empty slot.
///
/// Several conversations live at once so their packets interleave as on a real link.
fn run_pool<C: Conversation>(
    pool: &mut [Option<C>],
    core: &mut Core,
    buf: &mut Vec<u8>,
    make: impl FnOnce(&mut Core) -> Option<C>,
) -> Option<u16> {
    let i = core.rng.index(pool.len());
    let slot = pool.get_mut(i)?;
    if slot.is_none() {
        *slot = make(core);
    }
    let conv = slot.as_mut()?;
    let (len, done) = conv.step(core, buf);
    if done {
        *slot = None;
    }
    Some(len)
}

/// A TCP connection: handshake (the SYN-ACK from the server's private address), data both
/// ways, FIN/ACK from both ends, last ACK.
#[derive(Debug)]
struct TcpConv {
    f: Flow,
    step: u8,
    data_left: u8,
    sent_data: bool,
    c_seq: u32,
    s_seq: u32,
}

impl TcpConv {
    fn new(core: &mut Core) -> Option<TcpConv> {
        let t = core.next_target(Cursor::Tcp, true)?;
        let f = core.flow(&t)?;
        Some(TcpConv {
            f,
            step: 0,
            data_left: 3 + core.rng.below(6) as u8,
            sent_data: false,
            c_seq: core.rng.u32(),
            s_seq: core.rng.u32(),
        })
    }
}

impl Conversation for TcpConv {
    fn step(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (u16, bool) {
        let f = self.f;
        let (c, s) = (self.c_seq, self.s_seq);
        let (n, done) = match self.step {
            0 => {
                self.c_seq = c.wrapping_add(1);
                self.step = 1;
                (
                    core.tcp_flow(buf, &f, true, c, 0, SYN, Some(MSS), 0, 64),
                    false,
                )
            }
            1 => {
                self.s_seq = s.wrapping_add(1);
                self.step = 2;
                (
                    core.tcp_flow(buf, &f, false, s, c, SYN | ACK, Some(MSS), 0, 64),
                    false,
                )
            }
            2 => {
                self.step = 3;
                (core.tcp_flow(buf, &f, true, c, s, ACK, None, 0, 64), false)
            }
            3 if self.data_left > 0 => {
                // The request opens the exchange; after it the server sends most of the bytes.
                let first = !self.sent_data;
                self.sent_data = true;
                let from_client = first || core.rng.chance(3, 10);
                let size = match imix(&mut core.rng) {
                    // A request carries data: IMIX's 40-byte share becomes a 576-byte request.
                    40 if first => 576,
                    other => other,
                };
                let len = usize::from(size - 40);
                let flags = if len > 0 { ACK | PSH } else { ACK };
                self.data_left -= 1;
                let n = if from_client {
                    self.c_seq = c.wrapping_add(len as u32);
                    core.tcp_flow(buf, &f, true, c, s, flags, None, len, 64)
                } else {
                    self.s_seq = s.wrapping_add(len as u32);
                    core.tcp_flow(buf, &f, false, s, c, flags, None, len, 64)
                };
                (n, false)
            }
            3 => {
                self.c_seq = c.wrapping_add(1);
                self.step = 4;
                (
                    core.tcp_flow(buf, &f, true, c, s, FIN | ACK, None, 0, 64),
                    false,
                )
            }
            4 => {
                self.s_seq = s.wrapping_add(1);
                self.step = 5;
                (
                    core.tcp_flow(buf, &f, false, s, c, FIN | ACK, None, 0, 64),
                    false,
                )
            }
            _ => (core.tcp_flow(buf, &f, true, c, s, ACK, None, 0, 64), true),
        };
        (n, done)
    }
}

/// Request/response UDP exchanges with a matched entry (1 to 3 pairs).
#[derive(Debug)]
struct UdpConv {
    f: Flow,
    left: u8,
}

impl UdpConv {
    fn new(core: &mut Core) -> Option<UdpConv> {
        let t = core.next_target(Cursor::Udp, false)?;
        let f = core.flow(&t)?;
        Some(UdpConv {
            f,
            left: 2 * (1 + core.rng.below(3) as u8),
        })
    }
}

impl Conversation for UdpConv {
    fn step(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (u16, bool) {
        let inbound = self.left.is_multiple_of(2);
        self.left = self.left.saturating_sub(1);
        let size = imix(&mut core.rng);
        let n = core.udp_flow(buf, &self.f, inbound, usize::from(size - 28), 64, false);
        (n, self.left == 0)
    }
}

/// Pings to an IP-mapped EIP and the echo replies from its server's private address.
#[derive(Debug)]
struct EchoConv {
    m: Mapped,
    client: usize,
    ident: u16,
    seq: u16,
    left: u8,
}

impl EchoConv {
    fn new(core: &mut Core) -> Option<EchoConv> {
        let i = core.next_rr(Cursor::Mapped, core.plan.mapped.len());
        let m = *core.plan.mapped.get(i)?;
        Some(EchoConv {
            m,
            client: core.plan.client(&mut core.rng),
            ident: core.rng.u32() as u16,
            seq: 1,
            left: 2 * (1 + core.rng.below(3) as u8),
        })
    }
}

impl Conversation for EchoConv {
    fn step(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (u16, bool) {
        let request = self.left.is_multiple_of(2);
        self.left = self.left.saturating_sub(1);
        let client_ip = core.plan.ip(self.client);
        let (side, ip, kind) = if request {
            (
                Side::Public,
                core.ip(self.client, client_ip, self.m.eip, PROTO_ICMP, 64, 0),
                8,
            )
        } else {
            (
                Side::Private,
                core.ip(
                    self.m.server,
                    self.m.server_ip,
                    client_ip,
                    PROTO_ICMP,
                    64,
                    0,
                ),
                0,
            )
        };
        let id = self.ident.to_be_bytes();
        let sq = self.seq.to_be_bytes();
        if !request {
            self.seq = self.seq.wrapping_add(1);
        }
        core.start(buf, side, ip.src);
        let (data, dsum) = core.pattern.get(ECHO_DATA);
        let n = build::put_icmp(buf, &ip, kind, 0, [id[0], id[1], sq[0], sq[1]], data, dsum);
        build::pad(buf);
        (n, self.left == 0)
    }
}

/// A DNS query from an IP-mapped server (it leaves from its EIP) and the answer to that EIP.
#[derive(Debug)]
struct DnsConv {
    m: Mapped,
    sport: u16,
    txid: u16,
    answered: bool,
}

/// A query for example.com/A; the first two bytes (the id) are patched per query.
const DNS_QUERY: [u8; 29] = [
    0, 0, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c',
    b'o', b'm', 0, 0, 1, 0, 1,
];
/// The answer section appended to the query for the response: example.com A 192.0.2.80, TTL 300.
const DNS_ANSWER: [u8; 16] = [
    0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 192, 0, 2, 80,
];

impl DnsConv {
    fn new(core: &mut Core) -> Option<DnsConv> {
        let i = core.next_rr(Cursor::Mapped, core.plan.mapped.len());
        let m = *core.plan.mapped.get(i)?;
        for _ in 0..4 {
            let sport = core.ephemeral();
            // Under `permissive` a port mapping may own this port; the answer would go elsewhere.
            if core.plan.returns_to(&m, PROTO_UDP, sport) {
                return Some(DnsConv {
                    m,
                    sport,
                    txid: core.rng.u32() as u16,
                    answered: false,
                });
            }
        }
        None
    }
}

impl Conversation for DnsConv {
    fn step(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (u16, bool) {
        let mut msg = [0u8; 45];
        msg[..29].copy_from_slice(&DNS_QUERY);
        msg[..2].copy_from_slice(&self.txid.to_be_bytes());
        let dns = core.plan.dns;
        let dns_ip = core.plan.ip(dns);
        let n = if !self.answered {
            let ip = core.ip(
                self.m.server,
                self.m.server_ip,
                dns_ip,
                PROTO_UDP,
                64,
                build::DF,
            );
            core.start(buf, Side::Private, ip.src);
            let q = &msg[..29];
            build::put_udp(buf, &ip, self.sport, 53, q, sum(q), false)
        } else {
            msg[2..4].copy_from_slice(&[0x81, 0x80]);
            msg[7] = 1;
            msg[29..].copy_from_slice(&DNS_ANSWER);
            let ip = core.ip(dns, dns_ip, self.m.eip, PROTO_UDP, 57, build::DF);
            core.start(buf, Side::Public, ip.src);
            build::put_udp(buf, &ip, 53, self.sport, &msg, sum(&msg), false)
        };
        build::pad(buf);
        let done = self.answered;
        self.answered = true;
        (n, done)
    }
}

/// A UDP datagram larger than the MTU, as fragments; a third of them arrive last-first.
#[derive(Debug)]
struct FragConv {
    f: Flow,
    id: u16,
    payload: usize,
    count: usize,
    next: usize,
    reversed: bool,
}

impl FragConv {
    fn new(core: &mut Core) -> Option<FragConv> {
        let t = core.next_target(Cursor::Frag, false)?;
        let f = core.flow(&t)?;
        let payload = 1600 + core.rng.index(2400);
        let count = (8 + payload).div_ceil(FRAG_DATA);
        Some(FragConv {
            f,
            id: core.next_id(f.client),
            payload,
            count,
            next: 0,
            reversed: core.rng.chance(1, 3),
        })
    }
}

impl Conversation for FragConv {
    fn step(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (u16, bool) {
        let idx = if self.reversed {
            self.count - 1 - self.next
        } else {
            self.next
        };
        self.next += 1;
        let off = idx * FRAG_DATA;
        let total = 8 + self.payload;
        let len = FRAG_DATA.min(total.saturating_sub(off));
        let more = idx + 1 < self.count;
        let mut ip = build::Ip {
            src: core.plan.ip(self.f.client),
            dst: self.f.r.eip,
            proto: PROTO_UDP,
            ttl: 64,
            id: self.id,
            frag: 0,
        };
        core.start(buf, Side::Public, ip.src);
        let n = if idx == 0 {
            let (_, psum) = core.pattern.get(self.payload);
            let h = build::udp_header(
                &ip,
                self.f.cport,
                self.f.r.ext_port,
                self.payload,
                psum,
                false,
            );
            ip.frag = if more { MF } else { 0 };
            build::put_ipv4(buf, &ip, &[&h, core.pattern.slice(0, len - 8)])
        } else {
            ip.frag = ((off / 8) as u16) | if more { MF } else { 0 };
            build::put_ipv4(buf, &ip, &[core.pattern.slice(off - 8, off - 8 + len)])
        };
        build::pad(buf);
        (n, self.next >= self.count)
    }
}

/// The scenario's conversation pools and its category table.
#[derive(Debug)]
pub(crate) struct Scenario {
    /// Cumulative per-mille thresholds, in [`Category::ALL`] order.
    cum: [u32; Category::ALL.len()],
    tcp: Vec<Option<TcpConv>>,
    udp: Vec<Option<UdpConv>>,
    echo: Vec<Option<EchoConv>>,
    dns: Vec<Option<DnsConv>>,
    frag: Vec<Option<FragConv>>,
}

fn pool<C>(n: usize) -> Vec<Option<C>> {
    (0..n).map(|_| None).collect()
}

impl Scenario {
    /// Folds the weight of categories the rules cannot produce into one they can.
    pub(crate) fn new(core: &Core) -> Scenario {
        let p = &core.plan;
        let any = !p.tcp.is_empty() || !p.udp.is_empty();
        let available = |c: Category| match c {
            Category::TcpMatched => !p.tcp.is_empty(),
            Category::UdpMatched | Category::Fragment | Category::UdpZeroChecksum => {
                !p.udp.is_empty()
            }
            Category::ServerInitiated | Category::IcmpEcho => !p.mapped.is_empty(),
            Category::IcmpError | Category::TtlOne | Category::BadIpChecksum => any,
            Category::Unmatched => !p.probes.is_empty(),
            Category::Foreign | Category::Arp | Category::Ipv6 => true,
        };
        let sink = [
            Category::TcpMatched,
            Category::UdpMatched,
            Category::Unmatched,
            Category::Foreign,
        ]
        .into_iter()
        .find(|&c| available(c))
        .unwrap_or(Category::Foreign);
        let mut weights = [0u32; Category::ALL.len()];
        for c in Category::ALL {
            let to = if available(c) { c } else { sink };
            weights[to as usize] += c.scenario_permille();
        }
        let mut cum = [0u32; Category::ALL.len()];
        let mut acc = 0;
        for (c, w) in cum.iter_mut().zip(weights) {
            acc += w;
            *c = acc;
        }
        Scenario {
            cum,
            tcp: pool(16),
            udp: pool(4),
            echo: pool(4),
            dns: pool(4),
            frag: pool(4),
        }
    }

    /// Writes the next scenario frame; returns its category and L3 length.
    pub(crate) fn next(&mut self, core: &mut Core, buf: &mut Vec<u8>) -> (Category, u16) {
        let r = core.rng.below(1000);
        let pos = self.cum.iter().position(|&c| r < c).unwrap_or(0);
        let cat = Category::ALL.get(pos).copied().unwrap_or(Category::Foreign);
        let n = match cat {
            Category::TcpMatched => run_pool(&mut self.tcp, core, buf, TcpConv::new),
            Category::UdpMatched => run_pool(&mut self.udp, core, buf, UdpConv::new),
            Category::IcmpEcho => run_pool(&mut self.echo, core, buf, EchoConv::new),
            Category::ServerInitiated => run_pool(&mut self.dns, core, buf, DnsConv::new),
            Category::Fragment => run_pool(&mut self.frag, core, buf, FragConv::new),
            Category::IcmpError => icmp_error(core, buf),
            Category::Unmatched => probe(core, buf),
            Category::Foreign => Some(foreign(core, buf)),
            Category::Arp => Some(arp(core, buf)),
            Category::Ipv6 => Some(ipv6(core, buf)),
            Category::TtlOne | Category::BadIpChecksum | Category::UdpZeroChecksum => {
                oddity(core, buf, cat)
            }
        };
        match n {
            Some(n) => (cat, n),
            // Only when the forward table refused every port tried: still emit something valid.
            None => (Category::Foreign, foreign(core, buf)),
        }
    }
}

/// A destination-unreachable: from the upstream router about a reply the gateway sent (quoting
/// EIP:port -> client), or from a server about a datagram it got (quoting client -> server:port).
fn icmp_error(core: &mut Core, buf: &mut Vec<u8>) -> Option<u16> {
    let from_router = core.rng.chance(1, 2);
    let t = if from_router || core.plan.udp.is_empty() {
        core.next_any_target()?
    } else {
        core.next_target(Cursor::Udp, false)?
    };
    let f = core.flow(&t)?;
    let client_ip = core.plan.ip(f.client);
    // The quoted datagram as it was on the wire when the error was raised (TTL already spent).
    let quoted = if from_router {
        build::Ip {
            src: f.r.eip,
            dst: client_ip,
            proto: f.proto,
            ttl: 63,
            id: core.rng.u32() as u16,
            frag: build::DF,
        }
    } else {
        build::Ip {
            src: client_ip,
            dst: f.r.int_ip,
            proto: f.proto,
            ttl: 63,
            id: core.rng.u32() as u16,
            frag: build::DF,
        }
    };
    let (sport, dport) = if from_router {
        (f.r.ext_port, f.cport)
    } else {
        (f.cport, f.r.int_port)
    };
    let mut scratch = std::mem::take(&mut core.scratch);
    scratch.clear();
    if f.proto == PROTO_TCP {
        let t = build::Tcp {
            sport,
            dport,
            seq: core.rng.u32(),
            ack: core.rng.u32(),
            flags: ACK,
            mss: None,
        };
        build::put_tcp(&mut scratch, &quoted, &t, &[], 0);
    } else {
        let (p, s) = core.pattern.get(12);
        build::put_udp(&mut scratch, &quoted, sport, dport, p, s, false);
    }
    let (side, ip, code, rest) = if from_router {
        let router = core.plan.router;
        let router_ip = core.plan.ip(router);
        let ip = core.ip(router, router_ip, f.r.eip, PROTO_ICMP, 254, 0);
        if core.rng.chance(1, 2) {
            (Side::Public, ip, 1, [0, 0, 0, 0])
        } else {
            // Fragmentation needed, next-hop MTU 1400: path MTU discovery through the NAT.
            (Side::Public, ip, 4, [0, 0, 0x05, 0x78])
        }
    } else {
        (
            Side::Private,
            core.ip(f.r.server, f.r.int_ip, client_ip, PROTO_ICMP, 64, 0),
            3,
            [0; 4],
        )
    };
    core.start(buf, side, ip.src);
    let n = build::put_icmp(buf, &ip, 3, code, rest, &scratch, sum(&scratch));
    build::pad(buf);
    core.scratch = scratch;
    Some(n)
}

/// Traffic to an EIP that no entry covers (scans, wrong protocol, pings to port-only EIPs).
fn probe(core: &mut Core, buf: &mut Vec<u8>) -> Option<u16> {
    let i = core.next_rr(Cursor::Probe, core.plan.probes.len());
    let p = *core.plan.probes.get(i)?;
    let client = core.plan.client(&mut core.rng);
    let client_ip = core.plan.ip(client);
    let cport = core.ephemeral();
    let n = match p {
        Probe::Tcp { eip, port } => {
            let ip = core.ip(client, client_ip, eip, PROTO_TCP, 64, build::DF);
            core.start(buf, Side::Public, client_ip);
            let t = build::Tcp {
                sport: cport,
                dport: port,
                seq: core.rng.u32(),
                ack: 0,
                flags: SYN,
                mss: Some(MSS),
            };
            build::put_tcp(buf, &ip, &t, &[], 0)
        }
        Probe::Udp { eip, port } => {
            let ip = core.ip(client, client_ip, eip, PROTO_UDP, 64, build::DF);
            core.start(buf, Side::Public, client_ip);
            let (d, s) = core.pattern.get(32);
            build::put_udp(buf, &ip, cport, port, d, s, false)
        }
        Probe::Echo { eip } => {
            let ip = core.ip(client, client_ip, eip, PROTO_ICMP, 64, 0);
            core.start(buf, Side::Public, client_ip);
            let id = cport.to_be_bytes();
            let (d, s) = core.pattern.get(ECHO_DATA);
            build::put_icmp(buf, &ip, 8, 0, [id[0], id[1], 0, 1], d, s)
        }
    };
    build::pad(buf);
    Some(n)
}

/// IPv4 between hosts that are neither EIPs nor servers (a misrouted or leaked packet).
fn foreign(core: &mut Core, buf: &mut Vec<u8>) -> u16 {
    let hosts = core.plan.foreign;
    let h = hosts
        .get(core.rng.index(hosts.len()))
        .copied()
        .unwrap_or(core.plan.router);
    let src = core.plan.ip(h);
    let dst_h = core.plan.client(&mut core.rng);
    let dst = core.plan.ip(dst_h);
    let sport = core.ephemeral();
    core.start(buf, Side::Public, src);
    let n = if core.rng.chance(1, 2) {
        let ip = core.ip(h, src, dst, PROTO_TCP, 60, build::DF);
        let t = build::Tcp {
            sport,
            dport: 443,
            seq: core.rng.u32(),
            ack: core.rng.u32(),
            flags: ACK,
            mss: None,
        };
        build::put_tcp(buf, &ip, &t, &[], 0)
    } else {
        let ip = core.ip(h, src, dst, PROTO_UDP, 60, build::DF);
        let (d, s) = core.pattern.get(64);
        build::put_udp(buf, &ip, sport, 123, d, s, false)
    };
    build::pad(buf);
    n
}

/// An ARP request from the upstream router for one of the EIPs (28 L3 bytes).
fn arp(core: &mut Core, buf: &mut Vec<u8>) -> u16 {
    let eips = &core.plan.eips;
    let target = eips.get(core.rng.index(eips.len())).copied().unwrap_or(0);
    let router_ip = core.plan.ip(core.plan.router);
    let router_mac = mac(router_ip);
    build::eth(buf, [0xff; 6], router_mac, ETHERTYPE_ARP);
    build::put_arp_request(buf, router_mac, router_ip, target);
    build::pad(buf);
    28
}

/// An IPv6/UDP datagram in 2001:db8::/32 (a dual-stack neighbour the IPv4 gateway ignores).
fn ipv6(core: &mut Core, buf: &mut Vec<u8>) -> u16 {
    let mut src = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let host = core.rng.u32().to_be_bytes();
    src[12..].copy_from_slice(&host);
    let mut dst = [0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    dst[15] = 0x53;
    let router_ip = core.plan.ip(core.plan.router);
    build::eth(buf, GW_PUBLIC_MAC, mac(router_ip), ETHERTYPE_IPV6);
    let sport = core.ephemeral();
    let (d, s) = core.pattern.get(32);
    let n = build::put_ipv6_udp(buf, src, dst, sport, 53, d, s);
    build::pad(buf);
    n
}

/// A matched inbound packet with one deliberate defect.
fn oddity(core: &mut Core, buf: &mut Vec<u8>, cat: Category) -> Option<u16> {
    let t = if cat == Category::UdpZeroChecksum {
        core.next_target(Cursor::Udp, false)?
    } else {
        core.next_any_target()?
    };
    let f = core.flow(&t)?;
    let ttl = if cat == Category::TtlOne { 1 } else { 64 };
    let n = if f.proto == PROTO_TCP {
        let isn = core.rng.u32();
        core.tcp_flow(buf, &f, true, isn, 0, SYN, Some(MSS), 0, ttl)
    } else {
        core.udp_flow(buf, &f, true, 64, ttl, cat == Category::UdpZeroChecksum)
    };
    if cat == Category::BadIpChecksum {
        // Flip bits of the header checksum's second byte: the sum can no longer verify.
        if let Some(b) = buf.get_mut(build::ETH_LEN + 11) {
            *b ^= 0x5a;
        }
    }
    Some(n)
}
