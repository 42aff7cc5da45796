//! The compiled forward table: (external IP, protocol, port) to a server, and back.
//!
//! Built once from validated entries. Lookups probe at most three hash maps and never
//! allocate; an exact port hit is a single probe.

use super::fixmap::FixMap;
use crate::rules::{ForwardEntry, PortSpec, Protocol};
use crate::wire::ipv4::{PROTO_TCP, PROTO_UDP};
use std::net::Ipv4Addr;

/// No entry in an [`IpSlot`] field.
const NONE: u32 = u32::MAX;
/// Port ranges up to this many ports are expanded into the exact map (one probe to hit);
/// wider ones are kept as intervals and searched, so that a "1/65535" entry costs no memory.
const EXPAND_RANGE_MAX: u32 = 1024;

/// How a lookup matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchKind {
    /// An entry for exactly this protocol and port (a port mapping).
    Port,
    /// A port range entry containing the port (mapped offset by offset).
    Range,
    /// The IP's `any` entry (an IP mapping), possibly as a fallback behind port mappings.
    IpAny,
}

impl MatchKind {
    /// The words the teaching views use.
    pub fn describe(self) -> &'static str {
        match self {
            MatchKind::Port => "port mapping",
            MatchKind::Range => "port range mapping",
            MatchKind::IpAny => "IP mapping",
        }
    }
}

/// A successful lookup: the entry and the translated address and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Match {
    /// Index of the entry in [`ForwardTable::entries`].
    pub entry: u32,
    /// Which kind of entry matched.
    pub kind: MatchKind,
    /// The translated address (host order).
    pub ip: u32,
    /// The translated port (unchanged for IP mappings and portless protocols).
    pub port: u16,
}

/// The outcome of an inbound lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    /// An entry applies.
    Hit(Match),
    /// The address is an EIP, but no entry covers this protocol and port.
    NoRule,
    /// The address is not one of the gateway's EIPs.
    NotEip,
}

/// Per-address facts: its `any` entries and whether wide ranges must be searched.
#[derive(Debug, Clone, Copy)]
struct IpSlot {
    any: u32,
    tcp_any: u32,
    udp_any: u32,
    wide_ranges: bool,
}

impl IpSlot {
    const EMPTY: IpSlot = IpSlot {
        any: NONE,
        tcp_any: NONE,
        udp_any: NONE,
        wide_ranges: false,
    };
}

/// The translation an entry applies, in the compact form the hot path reads.
#[derive(Debug, Clone, Copy)]
struct Compiled {
    ext_ip: u32,
    int_ip: u32,
    ext_lo: u16,
    int_lo: u16,
    /// False when either side is `any`: the port passes unchanged.
    maps_port: bool,
}

/// A port interval too wide to expand.
#[derive(Debug, Clone, Copy)]
struct Wide {
    ip: u32,
    proto: u8,
    lo: u16,
    hi: u16,
    entry: u32,
}

/// One direction's index (external side for inbound, internal side for replies).
#[derive(Debug, Default)]
struct Index {
    exact: FixMap,
    /// Address to an index into `slot_list`.
    slots: FixMap,
    slot_list: Vec<IpSlot>,
    /// Sorted by (ip, proto, lo).
    wide: Vec<Wide>,
}

#[inline]
fn key(ip: u32, proto: u8, port: u16) -> u64 {
    (u64::from(ip) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

fn proto_numbers(p: Protocol) -> &'static [u8] {
    match p {
        Protocol::Tcp => &[PROTO_TCP],
        Protocol::Udp => &[PROTO_UDP],
        Protocol::Any => &[PROTO_TCP, PROTO_UDP],
    }
}

impl Index {
    /// The slot of `ip`, created empty if needed.
    fn slot_mut(&mut self, ip: u32) -> &mut IpSlot {
        let idx = match self.slots.get(u64::from(ip)) {
            Some(i) => i as usize,
            None => {
                let i = self.slot_list.len();
                self.slot_list.push(IpSlot::EMPTY);
                self.slots.insert_first(u64::from(ip), i as u32);
                i
            }
        };
        &mut self.slot_list[idx]
    }

    fn add(&mut self, ip: u32, proto: Protocol, ports: PortSpec, entry: u32) {
        let slot = self.slot_mut(ip);
        match (ports, proto) {
            (PortSpec::Any, Protocol::Any) => keep_first(&mut slot.any, entry),
            (PortSpec::Any, Protocol::Tcp) => keep_first(&mut slot.tcp_any, entry),
            (PortSpec::Any, Protocol::Udp) => keep_first(&mut slot.udp_any, entry),
            (PortSpec::Single(p), _) => {
                for &n in proto_numbers(proto) {
                    self.exact.insert_first(key(ip, n, p), entry);
                }
            }
            (PortSpec::Range(lo, hi), _) => {
                let (lo, hi) = (lo.min(hi), lo.max(hi));
                for &n in proto_numbers(proto) {
                    if u32::from(hi - lo) < EXPAND_RANGE_MAX {
                        for p in lo..=hi {
                            self.exact.insert_first(key(ip, n, p), entry);
                        }
                    } else {
                        self.slot_mut(ip).wide_ranges = true;
                        self.wide.push(Wide {
                            ip,
                            proto: n,
                            lo,
                            hi,
                            entry,
                        });
                    }
                }
            }
        }
    }

    fn finish(&mut self) {
        self.wide.sort_by_key(|w| (w.ip, w.proto, w.lo));
    }

    /// The entry covering (ip, proto, port) and how, or whether the address is known at all.
    #[inline]
    fn find(&self, ip: u32, proto: u8, port: u16) -> Result<(u32, MatchKind), bool> {
        let ported = proto == PROTO_TCP || proto == PROTO_UDP;
        if ported && let Some(e) = self.exact.get(key(ip, proto, port)) {
            return Ok((e, MatchKind::Port));
        }
        let Some(slot_idx) = self.slots.get(u64::from(ip)) else {
            return Err(false);
        };
        let slot = self.slot_list[slot_idx as usize];
        if ported {
            if slot.wide_ranges
                && let Some(e) = self.find_wide(ip, proto, port)
            {
                return Ok((e, MatchKind::Range));
            }
            let proto_any = if proto == PROTO_TCP {
                slot.tcp_any
            } else {
                slot.udp_any
            };
            if proto_any != NONE {
                return Ok((proto_any, MatchKind::IpAny));
            }
        }
        if slot.any != NONE {
            return Ok((slot.any, MatchKind::IpAny));
        }
        Err(true)
    }

    fn find_wide(&self, ip: u32, proto: u8, port: u16) -> Option<u32> {
        // The last interval starting at or below `port` is the only one that can hold it,
        // because validated intervals of one (ip, proto) do not overlap.
        let idx = self
            .wide
            .partition_point(|w| (w.ip, w.proto, w.lo) <= (ip, proto, port));
        let w = self.wide.get(idx.checked_sub(1)?)?;
        (w.ip == ip && w.proto == proto && port <= w.hi).then_some(w.entry)
    }
}

fn keep_first(slot: &mut u32, entry: u32) {
    if *slot == NONE {
        *slot = entry;
    }
}

/// The compiled forward table of a gateway.
#[derive(Debug)]
pub struct ForwardTable {
    entries: Vec<ForwardEntry>,
    compiled: Vec<Compiled>,
    forward: Index,
    reverse: Index,
    eips: FixMap,
}

impl ForwardTable {
    /// Compiles `entries`; `public_ips` are the package's EIPs (an EIP without entries still
    /// makes traffic to it "inbound, no rule" rather than foreign).
    ///
    /// On conflicting entries (which validation rejects) the first in file order wins.
    pub fn new(entries: &[ForwardEntry], public_ips: &[Ipv4Addr]) -> ForwardTable {
        let mut forward = Index::default();
        let mut reverse = Index::default();
        let mut eips = FixMap::default();
        for &ip in public_ips {
            eips.insert_first(u64::from(u32::from(ip)), 0);
        }
        let mut compiled = Vec::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            let idx = u32::try_from(i).unwrap_or(NONE - 1);
            let ext_ip = u32::from(e.external_ip);
            let int_ip = u32::from(e.internal_ip);
            eips.insert_first(u64::from(ext_ip), 0);
            forward.add(ext_ip, e.ip_protocol, e.external_port, idx);
            reverse.add(int_ip, e.ip_protocol, e.internal_port, idx);
            let (ext_lo, int_lo, maps_port) = match (e.external_port, e.internal_port) {
                (PortSpec::Any, _) | (_, PortSpec::Any) => (0, 0, false),
                (ext, int) => (low(ext), low(int), true),
            };
            compiled.push(Compiled {
                ext_ip,
                int_ip,
                ext_lo,
                int_lo,
                maps_port,
            });
        }
        for &ip in public_ips {
            forward.slot_mut(u32::from(ip));
        }
        forward.finish();
        reverse.finish();
        ForwardTable {
            entries: entries.to_vec(),
            compiled,
            forward,
            reverse,
            eips,
        }
    }

    /// The entries in file order; [`Match::entry`] indexes this slice.
    pub fn entries(&self) -> &[ForwardEntry] {
        &self.entries
    }

    /// True when `ip` is one of the gateway's EIPs.
    #[inline]
    pub fn is_eip(&self, ip: u32) -> bool {
        self.eips.get(u64::from(ip)).is_some()
    }

    /// Inbound: where a packet to (`dst_ip`, `proto`, `dst_port`) goes.
    ///
    /// An exact (protocol, port) entry wins, then a range, then the address's `any` entry.
    /// For protocols without ports pass any port; only `any` entries apply to them.
    #[inline]
    pub fn lookup(&self, dst_ip: u32, proto: u8, dst_port: u16) -> Inbound {
        match self.forward.find(dst_ip, proto, dst_port) {
            Ok((entry, kind)) => {
                let c = self.compiled[entry as usize];
                let port = if c.maps_port {
                    c.int_lo.wrapping_add(dst_port.wrapping_sub(c.ext_lo))
                } else {
                    dst_port
                };
                Inbound::Hit(Match {
                    entry,
                    kind,
                    ip: c.int_ip,
                    port,
                })
            }
            Err(true) => Inbound::NoRule,
            Err(false) => Inbound::NotEip,
        }
    }

    /// Reverse: the public (EIP, port) of traffic from server (`src_ip`, `proto`, `src_port`).
    #[inline]
    pub fn reverse(&self, src_ip: u32, proto: u8, src_port: u16) -> Option<Match> {
        let (entry, kind) = self.reverse.find(src_ip, proto, src_port).ok()?;
        let c = self.compiled[entry as usize];
        let port = if c.maps_port {
            c.ext_lo.wrapping_add(src_port.wrapping_sub(c.int_lo))
        } else {
            src_port
        };
        Some(Match {
            entry,
            kind,
            ip: c.ext_ip,
            port,
        })
    }

    /// The entries whose external IP is `ip`, in file order (for explanations; allocates).
    pub fn entries_for_external_ip(&self, ip: Ipv4Addr) -> Vec<&ForwardEntry> {
        self.entries
            .iter()
            .filter(|e| e.external_ip == ip)
            .collect()
    }
}

fn low(p: PortSpec) -> u16 {
    match p {
        PortSpec::Any => 0,
        PortSpec::Single(p) => p,
        PortSpec::Range(lo, hi) => lo.min(hi),
    }
}
