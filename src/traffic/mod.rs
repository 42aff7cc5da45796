//! Synthetic traffic: deterministic Ethernet frames a NAT gateway would see, built from its rules.
//!
//! [`Generator`] turns a [`Rules`] and a [`GenConfig`] into a stream of Ethernet II frames
//! (pcap link type 1) with capture timestamps. The same rules and config always give the same
//! bytes and timestamps. Endpoints come from the forward entries (checked against
//! [`crate::nat::ForwardTable`], so "matched" traffic really matches), clients from the
//! configured client network (198.51.100.0/24 by default: its .1 is the upstream router,
//! its .53 a DNS server, the rest clients).
//!
//! Frames arrive on one of the gateway's two sides: inbound traffic from clients to EIPs on
//! the public side (source MAC: the router's), replies and server-initiated traffic on the
//! private side, from the server's own private address (source MAC: the server's). MACs are
//! 02:00:00 plus the low 24 bits of the sender's IPv4 address; the gateway is
//! 02:00:00:00:00:01 (public) and 02:00:00:00:00:02 (private); ARP requests go to broadcast.
//! Frames shorter than 60 bytes are zero-padded to 60, the Ethernet minimum without FCS, as
//! a capture on the receiving side shows them. IPv4 ids increment per sender.
//!
//! Timestamps pace the L3 bytes (IPv4/IPv6 total length; 28 for ARP) at
//! [`GenConfig::rate_mbps`]: a packet's timestamp is the time the bytes before it take at that
//! rate, so any window of the capture offers the configured rate to within one packet.

mod build;
mod bulk;
mod engine;
mod plan;
mod rng;
mod scenario;

use std::net::Ipv4Addr;

use crate::rules::Rules;
use bulk::{Bulk, BulkKind};
use engine::Core;
use plan::{Plan, PlanError, addr};
use scenario::Scenario;

/// Length of every [`Mix::Tcp64`] frame as captured: 14 Ethernet + 20 IPv4 + 20 TCP + 6 padding.
///
/// On the wire it is a 64-byte frame: captures omit the 4-byte FCS. The IPv4 total length is 40.
pub const TCP64_FRAME_LEN: usize = 60;
/// The default capture start: 2026-01-01T00:00:00Z in nanoseconds since the Unix epoch.
pub const DEFAULT_START_NS: u64 = 1_767_225_600_000_000_000;
/// The smallest [`Mix::Udp`] size: an IPv4 and a UDP header.
pub const UDP_MIN_SIZE: u16 = 28;
/// The largest [`Mix::Udp`] size: a 1500-byte MTU, so no datagram is fragmented.
pub const UDP_MAX_SIZE: u16 = 1500;
/// The most flows [`GenConfig::flows`] may ask for.
pub const MAX_FLOWS: u32 = 1 << 20;

/// Which traffic to generate.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Mix {
    /// The bundled sample: every kind of traffic a gateway meets, in the per-mille shares of
    /// [`Category::scenario_permille`].
    ///
    /// | category | ‰ |
    /// |---|---|
    /// | TCP connections to every entry (handshake, SYN-ACK from the private address, data both ways, FIN/ACK) | 600 |
    /// | unmatched: EIPs without entries, unmapped ports, wrong protocol, pings to port-only EIPs | 100 |
    /// | UDP request/response with matched entries | 80 |
    /// | server-initiated: DNS queries from IP-mapped servers and the answers to their EIP | 50 |
    /// | ICMP echo to IP-mapped EIPs and replies from their servers | 40 |
    /// | IP fragments of 1.6-4 KB UDP datagrams (a third of them last fragment first) | 40 |
    /// | foreign IPv4 (neither EIP nor server) | 30 |
    /// | ICMP destination unreachable (router -> EIP quoting EIP:port -> client; server port unreachable) | 20 |
    /// | ARP requests for EIPs | 20 |
    /// | IPv6 | 10 |
    /// | TTL 1 / bad IPv4 header checksum / UDP checksum 0 | 4 / 3 / 3 |
    ///
    /// Shares are drawn per packet, so they hold to within sampling noise for any seed. A
    /// category the rules cannot produce (no UDP-capable entry, no IP mapping, no unmatched
    /// port left) gives its share to matched TCP (else matched UDP, unmatched, foreign).
    /// Data sizes follow the simple IMIX; handshake and teardown segments stay at 40-44 bytes.
    #[default]
    Scenario,
    /// Inbound TCP ACKs without payload from many clients to every TCP-capable entry (all
    /// matched), each [`TCP64_FRAME_LEN`] bytes: the throughput benchmark input.
    Tcp64,
    /// Matched traffic, half inbound and half replies from the servers' private addresses, in
    /// simple IMIX sizes (40/576/1500-byte IP packets, 7:4:1): bandwidth and throughput tests.
    Imix,
    /// Inbound UDP to UDP-capable entries, every IP packet `size` bytes (28-1500): limiter tests.
    Udp {
        /// The IPv4 total length of every packet.
        size: u16,
    },
}

/// What to generate and how fast.
#[derive(Debug, Clone, PartialEq)]
pub struct GenConfig {
    /// How many frames to generate.
    pub packets: u64,
    /// The offered rate in Mbit/s of L3 bytes; timestamps are spaced to produce it.
    pub rate_mbps: f64,
    /// The PRNG seed: same seed, same frames.
    pub seed: u64,
    /// Timestamp of the first frame, in nanoseconds since the Unix epoch.
    pub start_ns: u64,
    /// Which traffic.
    pub mix: Mix,
    /// The clients' network (its .1 is the router, its .53 a DNS server); host bits are ignored.
    pub client_net: Ipv4Addr,
    /// The client network's prefix length, at most 26 (so .53 is inside it).
    pub client_prefix: u8,
    /// Concurrent flows of the benchmark mixes (Tcp64, Imix, Udp), 1 to [`MAX_FLOWS`].
    pub flows: u32,
}

impl Default for GenConfig {
    /// 10,000 scenario packets at 100 Mbit/s from 198.51.100.0/24, seed 1, 1024 flows.
    fn default() -> GenConfig {
        GenConfig {
            packets: 10_000,
            rate_mbps: 100.0,
            seed: 1,
            start_ns: DEFAULT_START_NS,
            mix: Mix::Scenario,
            client_net: Ipv4Addr::new(198, 51, 100, 0),
            client_prefix: 24,
            flows: 1024,
        }
    }
}

/// Why a generator could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GenError {
    /// The bandwidth package lists no EIP.
    #[error(
        "the rules list no public IP (bandwidth_package.public_ips is empty): nothing to generate"
    )]
    NoPublicIps,
    /// The mix needs entries of a kind the rules do not have.
    #[error("the {mix} mix needs at least one {needs} forward entry; the rules have none")]
    NoTarget {
        /// The mix's name.
        mix: &'static str,
        /// The kind of entry it needs.
        needs: &'static str,
    },
    /// The rate is not a positive finite number.
    #[error("rate {rate_mbps} Mbit/s: the rate must be a positive finite number")]
    BadRate {
        /// The rejected rate.
        rate_mbps: f64,
    },
    /// The UDP size is outside what one unfragmented IPv4/UDP packet can be.
    #[error(
        "UDP packet size {size}: must be {UDP_MIN_SIZE} to {UDP_MAX_SIZE} bytes (IPv4 total length)"
    )]
    BadUdpSize {
        /// The rejected size.
        size: u16,
    },
    /// The client network is too small to hold a router (.1), a DNS server (.53) and clients.
    #[error(
        "client network /{prefix}: the prefix must be 26 or shorter (room for .1, .53 and clients)"
    )]
    ClientNetTooSmall {
        /// The rejected prefix length.
        prefix: u8,
    },
    /// An EIP or a server address lies in the client network, which would blur the traffic's meaning.
    #[error(
        "client network {net}/{prefix} contains {addr}, an EIP or server of the rules; pick another client network"
    )]
    ClientNetOverlap {
        /// The client network.
        net: Ipv4Addr,
        /// Its prefix length.
        prefix: u8,
        /// The address inside it.
        addr: Ipv4Addr,
    },
    /// The flow count is 0 or above [`MAX_FLOWS`].
    #[error("{flows} flows: must be 1 to {MAX_FLOWS}")]
    BadFlows {
        /// The rejected count.
        flows: u32,
    },
}

/// The kind of a generated frame (what the generator meant it to be).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// TCP to an entry (client -> EIP:port) or its reply (server's private address -> client).
    TcpMatched,
    /// UDP to an entry or its reply from the server's private address.
    UdpMatched,
    /// An IP-mapped server's own DNS query (private side) or the answer to its EIP (public side).
    ServerInitiated,
    /// ICMP echo request to an IP-mapped EIP, or the echo reply from its server.
    IcmpEcho,
    /// ICMP destination unreachable about a translated flow (from the router or a server).
    IcmpError,
    /// One fragment of a fragmented UDP datagram to an entry.
    Fragment,
    /// Traffic to an EIP that no entry covers.
    Unmatched,
    /// IPv4 with neither an EIP nor a server address.
    Foreign,
    /// An ARP request.
    Arp,
    /// An IPv6 packet.
    Ipv6,
    /// Deliberate oddity: a matched inbound packet with TTL 1.
    TtlOne,
    /// Deliberate oddity: a matched inbound packet whose IPv4 header checksum is wrong.
    BadIpChecksum,
    /// Deliberate oddity: a matched inbound UDP datagram with checksum 0 ("none", legal in IPv4).
    UdpZeroChecksum,
}

impl Category {
    /// Every category, in a fixed order (the order of [`GenStats::counts`]).
    pub const ALL: [Category; 13] = [
        Category::TcpMatched,
        Category::UdpMatched,
        Category::ServerInitiated,
        Category::IcmpEcho,
        Category::IcmpError,
        Category::Fragment,
        Category::Unmatched,
        Category::Foreign,
        Category::Arp,
        Category::Ipv6,
        Category::TtlOne,
        Category::BadIpChecksum,
        Category::UdpZeroChecksum,
    ];

    /// The category's share of [`Mix::Scenario`] in per mille (before redistribution).
    pub const fn scenario_permille(self) -> u32 {
        match self {
            Category::TcpMatched => 600,
            Category::UdpMatched => 80,
            Category::ServerInitiated => 50,
            Category::IcmpEcho => 40,
            Category::IcmpError => 20,
            Category::Fragment => 40,
            Category::Unmatched => 100,
            Category::Foreign => 30,
            Category::Arp => 20,
            Category::Ipv6 => 10,
            Category::TtlOne => 4,
            Category::BadIpChecksum => 3,
            Category::UdpZeroChecksum => 3,
        }
    }

    /// True for the deliberate defects, whose checksums or TTL are wrong on purpose.
    pub const fn is_oddity(self) -> bool {
        matches!(
            self,
            Category::TtlOne | Category::BadIpChecksum | Category::UdpZeroChecksum
        )
    }

    /// A short snake_case name for reports.
    pub const fn name(self) -> &'static str {
        match self {
            Category::TcpMatched => "tcp_matched",
            Category::UdpMatched => "udp_matched",
            Category::ServerInitiated => "server_initiated",
            Category::IcmpEcho => "icmp_echo",
            Category::IcmpError => "icmp_error",
            Category::Fragment => "fragment",
            Category::Unmatched => "unmatched",
            Category::Foreign => "foreign",
            Category::Arp => "arp",
            Category::Ipv6 => "ipv6",
            Category::TtlOne => "ttl_one",
            Category::BadIpChecksum => "bad_ip_checksum",
            Category::UdpZeroChecksum => "udp_zero_checksum",
        }
    }
}

/// What a generator has produced so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GenStats {
    /// Frames generated.
    pub packets: u64,
    /// Sum of their L3 lengths (the bytes the rate paces).
    pub l3_bytes: u64,
    /// Frames per category, indexed in [`Category::ALL`] order.
    pub counts: [u64; 13],
}

impl GenStats {
    /// Frames of category `c`.
    pub fn count(&self, c: Category) -> u64 {
        self.counts.get(c as usize).copied().unwrap_or(0)
    }
}

/// The generation engine of one mix.
#[derive(Debug)]
enum Engine {
    Scenario(Box<Scenario>),
    Bulk(Bulk),
}

/// A deterministic frame generator; see the [module docs](self).
#[derive(Debug)]
pub struct Generator {
    core: Core,
    engine: Engine,
    remaining: u64,
    start_ns: u64,
    ns_per_bit: f64,
    bits: u64,
    last: Category,
    stats: GenStats,
}

impl Generator {
    /// Checks `config` against `rules` and prepares the flows; nothing is generated yet.
    pub fn new(rules: &Rules, config: &GenConfig) -> Result<Generator, GenError> {
        if !(config.rate_mbps.is_finite() && config.rate_mbps > 0.0) {
            return Err(GenError::BadRate {
                rate_mbps: config.rate_mbps,
            });
        }
        if config.client_prefix > 26 {
            return Err(GenError::ClientNetTooSmall {
                prefix: config.client_prefix,
            });
        }
        if config.flows == 0 || config.flows > MAX_FLOWS {
            return Err(GenError::BadFlows {
                flows: config.flows,
            });
        }
        if let Mix::Udp { size } = config.mix
            && !(UDP_MIN_SIZE..=UDP_MAX_SIZE).contains(&size)
        {
            return Err(GenError::BadUdpSize { size });
        }
        let plan =
            Plan::new(rules, u32::from(config.client_net), config.client_prefix).map_err(|e| {
                match e {
                    PlanError::NoEips => GenError::NoPublicIps,
                    PlanError::Overlap(ip) => GenError::ClientNetOverlap {
                        net: config.client_net,
                        prefix: config.client_prefix,
                        addr: addr(ip),
                    },
                }
            })?;
        let mut core = Core::new(plan, config.seed);
        let flows = config.flows as usize;
        let engine = match config.mix {
            Mix::Scenario => Engine::Scenario(Box::new(Scenario::new(&core))),
            Mix::Tcp64 => Bulk::new(&mut core, BulkKind::Tcp64, flows)
                .map(Engine::Bulk)
                .ok_or(GenError::NoTarget {
                    mix: "tcp64",
                    needs: "TCP-capable (tcp or any)",
                })?,
            Mix::Imix => Bulk::new(&mut core, BulkKind::Imix, flows)
                .map(Engine::Bulk)
                .ok_or(GenError::NoTarget {
                    mix: "imix",
                    needs: "tcp, udp or any",
                })?,
            Mix::Udp { size } => Bulk::new(&mut core, BulkKind::Udp(size), flows)
                .map(Engine::Bulk)
                .ok_or(GenError::NoTarget {
                    mix: "udp",
                    needs: "UDP-capable (udp or any)",
                })?,
        };
        Ok(Generator {
            core,
            engine,
            remaining: config.packets,
            start_ns: config.start_ns,
            ns_per_bit: 1000.0 / config.rate_mbps,
            bits: 0,
            last: Category::Foreign,
            stats: GenStats::default(),
        })
    }

    /// Writes the next frame into `buf` (replacing its contents, reusing its allocation) and
    /// returns its timestamp in nanoseconds, or `None` once [`GenConfig::packets`] are out.
    #[inline]
    pub fn next_packet(&mut self, buf: &mut Vec<u8>) -> Option<u64> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (cat, l3) = match &mut self.engine {
            Engine::Scenario(s) => s.next(&mut self.core, buf),
            Engine::Bulk(b) => b.next(&mut self.core, buf),
        };
        // f64 holds bit counts exactly up to 2^53 (years at 100 Gbit/s); the cast saturates.
        let ts = self
            .start_ns
            .saturating_add((self.bits as f64 * self.ns_per_bit) as u64);
        self.bits = self.bits.saturating_add(u64::from(l3) * 8);
        self.last = cat;
        self.stats.packets += 1;
        self.stats.l3_bytes += u64::from(l3);
        if let Some(c) = self.stats.counts.get_mut(cat as usize) {
            *c += 1;
        }
        Some(ts)
    }

    /// The category of the frame the last [`next_packet`](Self::next_packet) wrote.
    pub fn category(&self) -> Category {
        self.last
    }

    /// Counts of what has been generated so far.
    pub fn stats(&self) -> &GenStats {
        &self.stats
    }

    /// Frames still to come.
    pub fn remaining(&self) -> u64 {
        self.remaining
    }
}

impl Generator {
    /// Writes every remaining frame to `path` as an Ethernet pcap with nanosecond timestamps
    /// (whole or not at all) and returns the account of what was made.
    pub fn write_pcap(
        &mut self,
        path: &std::path::Path,
    ) -> Result<GenStats, crate::capture::CaptureError> {
        self.write_capture(path, false)
    }

    /// Like [`Generator::write_pcap`], or pcapng (one Ethernet interface, nanosecond
    /// timestamps) when `pcapng` is set.
    pub fn write_capture(
        &mut self,
        path: &std::path::Path,
        pcapng: bool,
    ) -> Result<GenStats, crate::capture::CaptureError> {
        use crate::capture::{CaptureWriter, Interface, RecordMeta, TSRESOL_NANO, WriterConfig};
        let config = if pcapng {
            let mut ifc = Interface::new(1, 65535);
            ifc.tsresol = TSRESOL_NANO;
            WriterConfig::pcapng(vec![ifc])
        } else {
            WriterConfig::pcap(1, 65535, true)
        };
        let mut writer = CaptureWriter::create(path, &config)?;
        let mut frame = Vec::with_capacity(2048);
        while let Some(ts_ns) = self.next_packet(&mut frame) {
            let meta = RecordMeta {
                ts_ns: i64::try_from(ts_ns).unwrap_or(i64::MAX),
                orig_len: frame.len() as u32,
                interface: 0,
            };
            writer.write_record(&meta, &frame, None)?;
        }
        writer.finish()?;
        Ok(self.stats().clone())
    }
}
