//! `Translator`: classify a frame, find or create its binding, rewrite it in place.
//!
//! The per-packet path allocates nothing and formats nothing; the one exception is a later
//! fragment that arrives before its first fragment, whose bytes are copied aside (bounded).

use super::flow::{Binding, FlowStats, FlowTable, timeout};
use super::flowmap::FlowKey;
use super::fragment::{Event, FragAction, FragState, HeldFrag, MAX_DATAGRAM_LEN, frag_key};
use super::table::{ForwardTable, Inbound};
use super::verdict::{DropReason, Malformed, Notes, Outcome, Tuple, Verdict};
use crate::wire::checksum::{self, apply_delta};
use crate::wire::header::{l4, write16};
use crate::wire::ipv4::{
    Ipv4Packet, MIN_HEADER_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_CHECKSUM, UDP_CHECKSUM,
    header_sums_ne, rewrite_header_addr,
};
use crate::wire::{
    Frame, IcmpHeader, Ipv4Header, TcpHeader, UdpHeader, is_icmp_error, locate_ipv4, read16,
};
use ahash::AHashMap;
use std::collections::VecDeque;

/// What to do with IPv4 traffic that concerns no EIP and no mapped server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForeignPolicy {
    /// Pass it unchanged (the default).
    #[default]
    Pass,
    /// Drop it, counted as `foreign`.
    Drop,
}

/// Translator settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Leave TTL alone instead of routing (decrementing it).
    pub keep_ttl: bool,
    /// Traffic that concerns no entry.
    pub foreign: ForeignPolicy,
    /// The most flows kept at once.
    pub max_flows: usize,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            keep_ttl: false,
            foreign: ForeignPolicy::Pass,
            max_flows: DEFAULT_MAX_FLOWS,
        }
    }
}

/// At least four million concurrent flows, as a real gateway's captures hold, with no eviction.
/// The table grows with the flows it sees (about 200 bytes each), so a small capture does not
/// pay for this bound.
pub const DEFAULT_MAX_FLOWS: usize = 4 * 1024 * 1024;

/// A packet a few places ahead, as [`Translator::prefetch_key`] read it and
/// [`Translator::prefetch_binding`] looked it up: what its translation would otherwise work out
/// again ([`Translator::process_ahead`]).
#[derive(Debug, Clone, Copy)]
pub struct Lookahead {
    tuple: Tuple,
    dir: Direction,
    /// The flow key of the packet's direction, and its hash in the flow table.
    key: FlowKey,
    hash: u64,
    pending: Pending,
}

/// What the forward table says of a flow that was not bound when its packet was looked up
/// ahead: all it depends on (the tuple and the table) stays as it was, so the packet's
/// translation need not ask again if the flow is still unbound then.
#[derive(Debug, Clone, Copy)]
enum Pending {
    /// Not asked (the flow was bound, or the lookahead never got that far).
    Unknown,
    /// No entry applies.
    Unbound,
    /// The binding a new flow gets, and its other key with that key's hash.
    Bind {
        binding: Binding,
        back: FlowKey,
        back_hash: u64,
    },
}

/// Flows alive from which [`Translator::wants_prefetch`] says yes: about where the index and
/// slots (about 200 bytes a flow) outgrow a 2 MiB second-level cache.
const PREFETCH_MIN_FLOWS: usize = 16 * 1024;
/// Who a packet is, as the caller knows it; carried along with held fragments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PacketMeta {
    /// 1-based record number in the input.
    pub record: u64,
    /// Arrival time, nanoseconds.
    pub ts_ns: u64,
    /// Capture interface.
    pub interface: u32,
    /// Length on the wire.
    pub orig_len: u32,
    /// pcap link type of the frame.
    pub link_type: u16,
}

#[inline]
fn flow_timeout(proto: u8, tcp_flags: u8) -> u64 {
    match proto {
        PROTO_TCP if tcp_flags & 0x05 != 0 => timeout::TCP_TRANSITORY, // FIN or RST
        PROTO_TCP if tcp_flags & 0x02 != 0 => timeout::TCP_TRANSITORY, // SYN: not yet established
        PROTO_TCP => timeout::TCP_ESTABLISHED,
        PROTO_UDP => timeout::UDP,
        _ => timeout::OTHER,
    }
}

/// The stateful translator of one gateway.
#[derive(Debug)]
pub struct Translator<'t> {
    pub(super) table: &'t ForwardTable,
    pub(super) config: Config,
    pub(super) flows: FlowTable,
    pub(super) frags: AHashMap<u128, FragState>,
    pub(super) held: VecDeque<HeldFrag>,
    pub(super) events: VecDeque<Event>,
    pub(super) spare: Vec<Vec<u8>>,
}

/// Which way a packet crosses the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// To an EIP: the destination becomes the server.
    Inbound,
    /// From a server (or toward one's public address, for an ICMP error about it): the source
    /// becomes the EIP.
    Outbound,
}

impl Direction {
    /// Inbound when `to_eip`.
    #[inline(always)]
    pub(super) fn of(to_eip: bool) -> Direction {
        if to_eip {
            Direction::Inbound
        } else {
            Direction::Outbound
        }
    }

    /// Turns `t` into the tuple as it leaves with binding `b`: its destination or its source
    /// rewritten.
    #[inline(always)]
    fn translate(self, t: &mut Tuple, b: &Binding) {
        match self {
            Direction::Inbound => {
                t.dst = b.int_ip;
                t.dport = b.int_port;
            }
            Direction::Outbound => {
                t.src = b.ext_ip;
                t.sport = b.ext_port;
            }
        }
    }
}

/// What [`Translator::bind`] found for a packet.
#[derive(Debug, Clone, Copy)]
struct Bound {
    dir: Direction,
    /// The flow's binding; `None` when no entry applies.
    binding: Option<Binding>,
    /// The binding was made by this packet.
    new_flow: bool,
}

/// Where the transport fields of a packet lie, after checking they were captured.
#[derive(Debug, Clone, Copy)]
struct L4 {
    sport: u16,
    dport: u16,
    /// Offset of the checksum within the IP payload, when the protocol's checksum covers the
    /// pseudo-header and the field was captured.
    csum_at: Option<usize>,
    /// UDP's "no checksum" (0) must stay 0.
    udp: bool,
    tcp_flags: u8,
}

impl L4 {
    /// The fields of a TCP segment whose fixed 20-byte header was captured.
    #[inline(always)]
    fn tcp(h: TcpHeader<&[u8; 20]>) -> L4 {
        L4 {
            sport: h.src_port(),
            dport: h.dst_port(),
            csum_at: Some(TCP_CHECKSUM),
            udp: false,
            tcp_flags: h.flags(),
        }
    }

    /// The fields of a UDP datagram whose 8-byte header was captured.
    #[inline(always)]
    fn udp(h: UdpHeader<&[u8; 8]>) -> L4 {
        L4 {
            sport: h.src_port(),
            dport: h.dst_port(),
            csum_at: Some(UDP_CHECKSUM),
            udp: true,
            tcp_flags: 0,
        }
    }
}

/// A translator's state without its forward table (flows, fragments, settings), so that the
/// table can be replaced while flows are alive: [`Translator::into_state`], then
/// [`TranslatorState::rebind`] and [`Translator::with_state`] over the new table.
#[derive(Debug)]
pub struct TranslatorState {
    config: Config,
    flows: FlowTable,
    frags: AHashMap<u128, FragState>,
    held: VecDeque<HeldFrag>,
    events: VecDeque<Event>,
    spare: Vec<Vec<u8>>,
}

/// What [`TranslatorState::rebind`] did to the flows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Rebound {
    /// Flows whose entry exists in the new table (same mapping), renumbered to it.
    pub kept: u64,
    /// Flows whose entry is gone, removed.
    pub removed: u64,
}

impl TranslatorState {
    /// Fresh state: no flows.
    pub fn new(config: Config) -> TranslatorState {
        TranslatorState {
            config,
            flows: FlowTable::new(config.max_flows),
            frags: AHashMap::default(),
            held: VecDeque::new(),
            events: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// The flow table's counters.
    pub fn flow_stats(&self) -> FlowStats {
        self.flows.stats()
    }

    /// Moves the flows from `old` to `new`: a flow whose entry has a twin in `new` (same
    /// external IP, port, protocol, internal IP and port; the id may differ) keeps its binding,
    /// the others are removed. Fragment decisions are forgotten, since they name old entries.
    pub fn rebind(&mut self, old: &ForwardTable, new: &ForwardTable) -> Rebound {
        let twin = |b: &Binding| {
            let e = old.entries().get(b.entry as usize)?;
            let i = new.entries().iter().position(|n| {
                n.external_ip == e.external_ip
                    && n.external_port == e.external_port
                    && n.ip_protocol == e.ip_protocol
                    && n.internal_ip == e.internal_ip
                    && n.internal_port == e.internal_port
            })?;
            u32::try_from(i).ok()
        };
        let (kept, removed) = self.flows.rebind(twin);
        self.frags.clear();
        Rebound { kept, removed }
    }
}

impl<'t> Translator<'t> {
    /// A translator over `table`.
    pub fn new(table: &'t ForwardTable, config: Config) -> Translator<'t> {
        Translator {
            table,
            config,
            flows: FlowTable::new(config.max_flows),
            frags: AHashMap::default(),
            held: VecDeque::new(),
            events: VecDeque::new(),
            spare: Vec::new(),
        }
    }

    /// A translator over `table` that goes on from `state` (see [`TranslatorState`]).
    pub fn with_state(table: &'t ForwardTable, state: TranslatorState) -> Translator<'t> {
        Translator {
            table,
            config: state.config,
            flows: state.flows,
            frags: state.frags,
            held: state.held,
            events: state.events,
            spare: state.spare,
        }
    }

    /// Gives up the table and keeps the rest (see [`TranslatorState`]).
    pub fn into_state(self) -> TranslatorState {
        TranslatorState {
            config: self.config,
            flows: self.flows,
            frags: self.frags,
            held: self.held,
            events: self.events,
            spare: self.spare,
        }
    }

    /// Live bindings now.
    pub fn flows_alive(&self) -> usize {
        self.flows.len()
    }

    /// The forward table in use.
    pub fn table(&self) -> &'t ForwardTable {
        self.table
    }

    /// The flow table's counters.
    pub fn flow_stats(&self) -> FlowStats {
        self.flows.stats()
    }

    /// Lets a thread of the flow table's own map in the pages it grows into, ahead of use,
    /// for callers with a core to spare (see `FlowTable::prefault_in_background`).
    pub fn prefault_flows_in_background(&mut self) {
        self.flows.prefault_in_background();
    }

    /// The next consequence of held fragments, in order; drain after every packet.
    pub fn pop_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether [`Translator::pop_event`] has anything: one inlined test per packet, so the
    /// rare draining stays out of the loop.
    #[inline]
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
    }

    /// Gives a released fragment's buffer back for reuse.
    pub fn recycle(&mut self, mut buf: Vec<u8>) {
        if self.spare.len() < 64 {
            buf.clear();
            self.spare.push(buf);
        }
    }

    /// Ends the input: every fragment still held becomes an orphan event.
    pub fn finish(&mut self) {
        while let Some(h) = self.held.pop_front() {
            self.orphan(h);
        }
    }

    /// Translates `frame` in place. `meta.orig_len` is its length on the wire (more than
    /// `frame.len()` when a snap length cut it); `meta` also identifies it if it must be held.
    #[inline]
    pub fn process(&mut self, frame: &mut [u8], meta: &PacketMeta) -> Outcome {
        self.process_ahead(frame, meta, None)
    }

    /// [`Translator::process`] of a packet looked up ahead with [`Translator::prefetch_key`]
    /// (and [`Translator::prefetch_binding`]): what that found is used where it still holds,
    /// which changes nothing but the work. A lookahead of another tuple is ignored.
    #[inline]
    pub fn process_ahead(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        ahead: Option<&Lookahead>,
    ) -> Outcome {
        if let Some(out) = self.plain_tcp_udp(frame, meta, ahead) {
            return out;
        }
        self.process_general(frame, meta)
    }

    /// The fast path for the bulk of traffic: a whole, unfragmented TCP or UDP packet with a
    /// plain 20-byte header, a valid header checksum and a TTL to spare. It returns `None`,
    /// having changed nothing but the age of held fragments, whenever the packet needs anything
    /// else (link layers it does not know, options, fragments, ICMP, malformed or expiring
    /// packets), and the general path then decides; where it does apply, its result is the
    /// general path's, byte for byte (`tests::fast_path_equals_general_path`).
    #[inline(always)]
    fn plain_tcp_udp(
        &mut self,
        frame: &mut [u8],
        meta: &PacketMeta,
        ahead: Option<&Lookahead>,
    ) -> Option<Outcome> {
        // Held fragments age out before any packet is decided (the general path's first step
        // too, and then a no-op), so events keep their order.
        self.expire_held(meta.ts_ns);
        let Frame::Ipv4 { offset } = locate_ipv4(meta.link_type, frame) else {
            return None;
        };
        let (header, rest) = frame
            .get_mut(offset..)?
            .split_first_chunk_mut::<MIN_HEADER_LEN>()?;
        let h = Ipv4Header::new(&*header);
        // Version 4, no options; neither a fragment nor fragmented (MF clear, offset 0).
        if !h.is_plain() || h.is_fragment() {
            return None;
        }
        let total = usize::from(h.total_len());
        // Whole (not snapped), so the transport checksum can be verified.
        let payload = rest.get_mut(..total.checked_sub(MIN_HEADER_LEN)?)?;
        if !self.config.keep_ttl && h.ttl() <= 1 {
            return None;
        }
        let proto = h.protocol();
        let l4 = match proto {
            PROTO_TCP => {
                let tcp = TcpHeader::new(payload.first_chunk::<20>()?);
                let doff = tcp.data_offset();
                if doff < 20 || doff > payload.len() {
                    return None;
                }
                L4::tcp(tcp)
            }
            PROTO_UDP => {
                let udp = UdpHeader::new(payload.first_chunk::<8>()?);
                let ulen = usize::from(udp.length());
                if ulen < 8 || ulen > payload.len() {
                    return None;
                }
                L4::udp(udp)
            }
            _ => return None,
        };
        // Summed only now, so the packets the fast path declines on their fields alone (ICMP,
        // other protocols, expiring TTLs) are not summed here and again by the general path.
        let (header_sum, addresses_sum) = header_sums_ne(header);
        if !checksum::is_all_ones(header_sum) {
            return None;
        }
        let before = Tuple {
            proto,
            src: h.src(),
            sport: l4.sport,
            dst: h.dst(),
            dport: l4.dport,
        };
        let tmo = flow_timeout(proto, l4.tcp_flags);
        let bound = match ahead {
            Some(a) if a.tuple == before => self.bind_ahead(a, meta.ts_ns, tmo),
            _ => self.bind(before, meta.ts_ns, tmo),
        };
        let mut out = Outcome {
            verdict: Verdict::PassForeign,
            before,
            after: before,
            ip_len: total as u16,
            notes: Notes::default(),
        };
        let Some(b) = bound.binding else {
            out.verdict = self.unbound_verdict(bound.dir);
            return Some(out);
        };
        let verdict = Self::bound_verdict(&b, bound.dir);
        bound.dir.translate(&mut out.after, &b);
        out.verdict = verdict;
        out.notes.new_flow = bound.new_flow;
        out.notes.bad_l4_checksum_in = !segment_verifies(addresses_sum, proto, payload);
        let decrement_ttl = !self.config.keep_ttl;
        rewrite(header, payload, l4, bound.dir, &b, decrement_ttl);
        Some(out)
    }

    /// Whether the flow table has outgrown the caches, so that prefetching ahead pays for its
    /// own parsing; below this the lines are in cache anyway.
    #[inline]
    pub fn wants_prefetch(&self) -> bool {
        self.flows.len() >= PREFETCH_MIN_FLOWS
    }

    /// The first half of a lookup for a packet still a few packets away: reads the frame's
    /// tuple as the fast path would, starts loading the flow index's line for its key and
    /// returns what [`Translator::prefetch_binding`] needs. A hint only: nothing changes, and
    /// a frame the fast path would decline gives `None`.
    #[inline(always)]
    pub fn prefetch_key(&self, frame: &[u8], link_type: u16) -> Option<Lookahead> {
        let Frame::Ipv4 { offset } = locate_ipv4(link_type, frame) else {
            return None;
        };
        let (header, rest) = frame.get(offset..)?.split_first_chunk::<MIN_HEADER_LEN>()?;
        let h = Ipv4Header::new(header);
        if !h.is_plain() || h.is_fragment() {
            return None;
        }
        let proto = h.protocol();
        if proto != PROTO_TCP && proto != PROTO_UDP {
            return None;
        }
        let t = Tuple {
            proto,
            src: h.src(),
            sport: read16(rest, l4::SRC_PORT)?,
            dst: h.dst(),
            dport: read16(rest, l4::DST_PORT)?,
        };
        // The direction `bind` will settle: an EIP as destination is inbound.
        let dir = Direction::of(self.table.is_eip(t.dst));
        let key = match dir {
            Direction::Inbound => FlowKey::inbound(t.proto, t.src, t.sport, t.dst, t.dport),
            Direction::Outbound => FlowKey::outbound(t.proto, t.src, t.sport, t.dst, t.dport),
        };
        let hash = self.flows.hash(key);
        self.flows.prefetch_index(hash);
        Some(Lookahead {
            tuple: t,
            dir,
            key,
            hash,
            pending: Pending::Unknown,
        })
    }

    /// The second half, once the index line had time to arrive: starts loading the flow's
    /// slot or, for a flow not bound yet, asks the forward table for its binding (kept in
    /// `ahead`) and starts loading the index line its other key will be inserted at.
    #[inline(always)]
    pub fn prefetch_binding(&self, ahead: &mut Lookahead) {
        if self.flows.prefetch_slot(ahead.key, ahead.hash) {
            ahead.pending = Pending::Unknown;
            return;
        }
        ahead.pending = match self.new_binding(ahead.tuple, ahead.dir) {
            Some((binding, back)) => {
                let back_hash = self.flows.hash(back);
                self.flows.prefetch_index(back_hash);
                Pending::Bind {
                    binding,
                    back,
                    back_hash,
                }
            }
            None => Pending::Unbound,
        };
    }

    /// Every packet the fast path declines: link layers, malformed input, new flows,
    /// fragments, ICMP, drops.
    fn process_general(&mut self, frame: &mut [u8], meta: &PacketMeta) -> Outcome {
        self.expire_held(meta.ts_ns);
        let offset = match locate_ipv4(meta.link_type, frame) {
            Frame::Ipv4 { offset } => offset,
            Frame::NotIpv4 => return Outcome::new(Verdict::PassNotIpv4),
            Frame::Truncated { needed, len } => {
                return Outcome::malformed(Malformed::Link { needed, len });
            }
        };
        let wire_len = (meta.orig_len as usize).saturating_sub(offset);
        // `locate_ipv4` puts the offset within the frame; were it not, the view would find an
        // empty header and call it malformed.
        let bytes = frame.get_mut(offset..).unwrap_or_default();
        let ip = match Ipv4Packet::new_checked(bytes, wire_len) {
            Ok(ip) => ip,
            Err(e) => return Outcome::malformed(Malformed::Ip(e)),
        };
        let frag = frag_key(ip.src(), ip.dst(), ip.protocol(), ip.ident());
        let out = self.process_ip(ip, frag, meta.ts_ns);
        if out.verdict == Verdict::Held {
            self.hold(frame, meta, frag);
        }
        out
    }

    /// A located IPv4 packet with its datagram's fragment key `frag`.
    fn process_ip(&mut self, mut ip: Ipv4Packet<&mut [u8]>, frag: u128, now: u64) -> Outcome {
        let mut out = Outcome::new(Verdict::PassForeign);
        out.ip_len = ip.total_len() as u16;
        out.notes.snapped = ip.is_snapped();
        out.notes.fragment = ip.is_fragment();
        let proto = ip.protocol();
        out.before = Tuple {
            proto,
            src: ip.src(),
            sport: 0,
            dst: ip.dst(),
            dport: 0,
        };
        out.after = out.before;
        if !ip.verify_checksum() {
            out.verdict = Verdict::Drop(DropReason::BadIpChecksum);
            return out;
        }
        // RFC 791 counts the offset in 8-byte units of a datagram whose length is a 16-bit
        // field, so no real fragment ends past 65535; such a one is a lie (or an attack on
        // reassembly buffers) and is dropped alone, since this gateway does not reassemble.
        let end = usize::from(ip.frag_offset()) * 8 + (ip.total_len() - ip.header_len());
        if end > MAX_DATAGRAM_LEN {
            out.verdict = Verdict::Drop(DropReason::Malformed);
            out.notes.malformed = Some(Malformed::FragmentBeyond64k { end });
            return out;
        }
        if ip.frag_offset() != 0 {
            return self.later_fragment(ip, frag, now, out);
        }
        if proto == PROTO_ICMP
            && let Some(&t) = ip.payload().first()
            && is_icmp_error(t)
        {
            return self.icmp_error(ip, now, out);
        }
        let l4 = match self.transport(&ip) {
            Ok(l4) => l4,
            Err(why) => {
                out.verdict = Verdict::Drop(DropReason::Malformed);
                out.notes.malformed = Some(why);
                return out;
            }
        };
        out.before.sport = l4.sport;
        out.before.dport = l4.dport;
        out.after = out.before;
        let tmo = flow_timeout(proto, l4.tcp_flags);
        let bound = self.bind(out.before, now, tmo);
        // A first fragment's decision is remembered for the rest of its datagram.
        let first_fragment = ip.more_frags();
        let Some(binding) = bound.binding else {
            let v = self.unbound_verdict(bound.dir);
            out.verdict = v;
            if first_fragment {
                let action = match v {
                    Verdict::Drop(r) => FragAction::Drop(r),
                    _ => FragAction::Pass,
                };
                self.remember_fragment(frag, action, now);
            }
            return out;
        };
        if !self.config.keep_ttl && ip.ttl() <= 1 {
            out.verdict = Verdict::Drop(DropReason::TtlExpired);
            if first_fragment {
                let action = FragAction::Drop(DropReason::TtlExpired);
                self.remember_fragment(frag, action, now);
            }
            return out;
        }
        out.notes.new_flow = bound.new_flow;
        out.notes.bad_l4_checksum_in = !out.notes.fragment
            && !out.notes.snapped
            && l4.csum_at.is_some()
            && !l4_checksum_ok(&ip, proto);
        let (header, payload) = ip.split_mut();
        let decrement_ttl = !self.config.keep_ttl;
        rewrite(header, payload, l4, bound.dir, &binding, decrement_ttl);
        let verdict = Self::bound_verdict(&binding, bound.dir);
        out.verdict = verdict;
        bound.dir.translate(&mut out.after, &binding);
        if first_fragment {
            let action = FragAction::Rewrite {
                verdict,
                new_src: out.after.src,
                new_dst: out.after.dst,
            };
            self.remember_fragment(frag, action, now);
        }
        out
    }

    /// The direction of a TCP/UDP/ICMP-query packet with tuple `t` and its binding: its
    /// flow's, refreshed, or a new one made from the forward table.
    #[inline(always)]
    fn bind(&mut self, t: Tuple, now: u64, tmo: u64) -> Bound {
        // Every inbound key in the flow table has an EIP as its destination (both ways of
        // making one put it there), so a hit on the inbound key settles the direction without
        // asking the forward table; for any other destination the probe misses and changes
        // nothing.
        let in_key = FlowKey::inbound(t.proto, t.src, t.sport, t.dst, t.dport);
        if let Some(b) = self.flows.touch(in_key, now, tmo) {
            return Bound {
                dir: Direction::Inbound,
                binding: Some(b),
                new_flow: false,
            };
        }
        let (dir, key) = if self.table.is_eip(t.dst) {
            (Direction::Inbound, in_key)
        } else {
            let out_key = FlowKey::outbound(t.proto, t.src, t.sport, t.dst, t.dport);
            if let Some(b) = self.flows.touch(out_key, now, tmo) {
                return Bound {
                    dir: Direction::Outbound,
                    binding: Some(b),
                    new_flow: false,
                };
            }
            (Direction::Outbound, out_key)
        };
        let binding = self.bind_new(t, dir, key, now, tmo);
        Bound {
            dir,
            binding,
            new_flow: binding.is_some(),
        }
    }

    /// [`Translator::bind`] with what the lookahead `a` found (the same tuple's): its key, hash
    /// and direction and, for a flow that was new then, the forward table's answer.
    #[inline(always)]
    fn bind_ahead(&mut self, a: &Lookahead, now: u64, tmo: u64) -> Bound {
        // Unlike `bind`, an outbound packet does not probe its inbound key first: its
        // destination is no EIP, and every inbound key in the table has one.
        if let Some(b) = self.flows.touch_hashed(a.key, a.hash, now, tmo) {
            return Bound {
                dir: a.dir,
                binding: Some(b),
                new_flow: false,
            };
        }
        let binding = match a.pending {
            Pending::Bind {
                binding,
                back,
                back_hash,
            } => {
                let own = (a.key, a.hash);
                self.record_flow(a.dir, own, (back, back_hash), binding, now, tmo);
                Some(binding)
            }
            Pending::Unbound => None,
            Pending::Unknown => self.bind_new(a.tuple, a.dir, a.key, now, tmo),
        };
        Bound {
            dir: a.dir,
            binding,
            new_flow: binding.is_some(),
        }
    }

    /// A new flow's binding from the forward table, recorded under both of its keys.
    #[inline(never)]
    fn bind_new(
        &mut self,
        t: Tuple,
        dir: Direction,
        key: FlowKey,
        now: u64,
        tmo: u64,
    ) -> Option<Binding> {
        let (b, back) = self.new_binding(t, dir)?;
        let (own, back) = ((key, self.flows.hash(key)), (back, self.flows.hash(back)));
        self.record_flow(dir, own, back, b, now, tmo);
        Some(b)
    }

    /// Records new flow `b` under the key of its first packet, going `dir`, and its other key
    /// (each with its hash): the table takes them as (inbound, outbound).
    #[inline]
    fn record_flow(
        &mut self,
        dir: Direction,
        own: (FlowKey, u64),
        back: (FlowKey, u64),
        b: Binding,
        now: u64,
        tmo: u64,
    ) {
        let keys = match dir {
            Direction::Inbound => [own, back],
            Direction::Outbound => [back, own],
        };
        self.flows.insert_hashed(keys, b, now, tmo);
    }

    /// The binding the forward table gives a new flow of tuple `t` going `dir`, and the flow's
    /// key for the other direction; `None` when no entry applies.
    #[inline]
    fn new_binding(&self, t: Tuple, dir: Direction) -> Option<(Binding, FlowKey)> {
        let Tuple {
            proto,
            src,
            sport,
            dst,
            dport,
        } = t;
        match dir {
            Direction::Inbound => {
                let Inbound::Hit(m) = self.table.lookup(dst, proto, dport) else {
                    return None;
                };
                let b = Binding::new(m.entry, m.kind, (dst, dport), (m.ip, m.port));
                Some((b, FlowKey::outbound(proto, m.ip, m.port, src, sport)))
            }
            Direction::Outbound => {
                let m = self.table.reverse(src, proto, sport)?;
                let b = Binding::new(m.entry, m.kind, (m.ip, m.port), (src, sport));
                Some((b, FlowKey::inbound(proto, dst, dport, m.ip, m.port)))
            }
        }
    }

    /// The verdict on a packet translated with binding `b`.
    #[inline]
    pub(super) fn bound_verdict(b: &Binding, dir: Direction) -> Verdict {
        let (entry, kind) = (b.entry, b.kind);
        match dir {
            Direction::Inbound => Verdict::Inbound { entry, kind },
            Direction::Outbound => Verdict::Outbound { entry, kind },
        }
    }

    /// The verdict on a packet no entry applies to: an EIP's is dropped, other traffic is
    /// foreign.
    #[inline]
    pub(super) fn unbound_verdict(&self, dir: Direction) -> Verdict {
        match dir {
            Direction::Inbound => Verdict::Drop(DropReason::NoRule),
            Direction::Outbound => self.foreign_verdict(),
        }
    }

    fn foreign_verdict(&self) -> Verdict {
        match self.config.foreign {
            ForeignPolicy::Pass => Verdict::PassForeign,
            ForeignPolicy::Drop => Verdict::Drop(DropReason::Foreign),
        }
    }

    /// Reads and checks the transport header fields NAT needs.
    fn transport(&self, ip: &Ipv4Packet<&mut [u8]>) -> Result<L4, Malformed> {
        let p = ip.payload();
        let l4_len = ip.total_len() - ip.header_len();
        let whole = !ip.is_snapped() && !ip.is_fragment();
        let mut l4 = L4 {
            sport: 0,
            dport: 0,
            csum_at: None,
            udp: false,
            tcp_flags: 0,
        };
        match ip.protocol() {
            PROTO_TCP => {
                // RFC 1858: a first fragment must hold the whole fixed TCP header.
                let Some(fixed) = p.first_chunk::<20>() else {
                    return Err(Malformed::TcpHeaderShort { len: p.len() });
                };
                let tcp = TcpHeader::new(fixed);
                let doff = tcp.data_offset();
                if doff < 20 || (whole && doff > l4_len) {
                    return Err(Malformed::TcpDataOffset {
                        data_offset: doff,
                        len: l4_len,
                    });
                }
                l4 = L4::tcp(tcp);
            }
            PROTO_UDP => {
                let Some(fixed) = p.first_chunk::<8>() else {
                    return Err(Malformed::UdpHeaderShort { len: p.len() });
                };
                let udp = UdpHeader::new(fixed);
                let ulen = usize::from(udp.length());
                if !ip.is_fragment() && (ulen < 8 || ulen > l4_len) {
                    return Err(Malformed::UdpLength {
                        udp_len: ulen,
                        len: l4_len,
                    });
                }
                l4 = L4::udp(udp);
            }
            PROTO_ICMP => {
                let Some(fixed) = p.first_chunk::<4>() else {
                    return Err(Malformed::IcmpHeaderShort { len: p.len() });
                };
                if IcmpHeader::new(fixed).is_query() {
                    let Some(id) = read16(p, l4::ICMP_IDENT) else {
                        return Err(Malformed::IcmpQueryShort { len: p.len() });
                    };
                    l4.sport = id;
                    l4.dport = id;
                }
            }
            _ => {}
        }
        Ok(l4)
    }
}

/// Rewrites the destination (inbound) or source address and port per binding `b`, and
/// decrements the TTL when asked, updating the IP header checksum once and the transport
/// checksum once with the binding's precomputed deltas (the packet's old address and port
/// are the binding's own: its flow key holds them).
#[inline(always)]
fn rewrite(
    header: &mut [u8; MIN_HEADER_LEN],
    payload: &mut [u8],
    l4: L4,
    dir: Direction,
    b: &Binding,
    decrement_ttl: bool,
) {
    let d = &b.deltas;
    let (new_ip, new_port, addr_delta, port_delta, port_at, old_port) = match dir {
        Direction::Inbound => (
            b.int_ip,
            b.int_port,
            d.addr_in,
            d.port_in,
            l4::DST_PORT,
            l4.dport,
        ),
        Direction::Outbound => (
            b.ext_ip,
            b.ext_port,
            d.addr_out,
            d.port_out,
            l4::SRC_PORT,
            l4.sport,
        ),
    };
    let addr_delta = u64::from(addr_delta);
    let to_dst = dir == Direction::Inbound;
    rewrite_header_addr(header, to_dst, new_ip, addr_delta, decrement_ttl);
    let Some(csum_at) = l4.csum_at else {
        return;
    };
    if old_port != new_port {
        write16(payload, port_at, new_port);
    }
    let Some(field) = payload.get_mut(csum_at..csum_at + 2) else {
        return;
    };
    // In memory order, as the deltas are; 0 and 0xFFFF read the same either way.
    let old_sum = u16::from_ne_bytes([field[0], field[1]]);
    // UDP over IPv4 may omit its checksum (0); it must stay omitted.
    if l4.udp && old_sum == 0 {
        return;
    }
    let mut sum = apply_delta(old_sum, addr_delta + u64::from(port_delta));
    if l4.udp && sum == 0 {
        sum = 0xffff;
    }
    field.copy_from_slice(&sum.to_ne_bytes());
}

/// Verifies a whole, unfragmented TCP or UDP segment's checksum.
fn l4_checksum_ok(ip: &Ipv4Packet<&mut [u8]>, proto: u8) -> bool {
    segment_verifies(
        checksum::addresses_sum_ne(ip.src(), ip.dst()),
        proto,
        ip.payload(),
    )
}

/// Verifies the checksum of the TCP or UDP segment `p` (the IP payload), given the
/// native-order sum of its two addresses; UDP's omitted checksum (0) counts as valid, and UDP
/// covers only its own length.
#[inline(always)]
fn segment_verifies(addresses_sum_ne: u64, proto: u8, p: &[u8]) -> bool {
    let len = if proto == PROTO_UDP {
        usize::from(read16(p, l4::UDP_LENGTH).unwrap_or(0)).min(p.len())
    } else {
        p.len()
    };
    if proto == PROTO_UDP && read16(p, UDP_CHECKSUM) == Some(0) {
        return true;
    }
    checksum::is_all_ones(
        addresses_sum_ne
            + checksum::pseudo_header_tail_ne(proto, len as u16)
            + checksum::sum_ne(&p[..len]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::CaptureReader;
    use crate::rules::{Rules, parse_str};
    use crate::traffic::{GenConfig, Generator, Mix};

    fn seed_rules() -> Rules {
        let text = include_str!("../../pcaps/seed/rules.toml");
        parse_str(text, "rules.toml")
            .expect("the seed rules are valid")
            .rules
    }

    /// One frame of a test stream.
    struct Input {
        data: Vec<u8>,
        meta: PacketMeta,
    }

    fn seed_capture() -> Vec<Input> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/pcaps/seed/capture.pcap");
        let mut r = CaptureReader::open(std::path::Path::new(path)).expect("seed capture");
        let mut v = Vec::new();
        while let Some(p) = r.next_packet().expect("seed capture reads") {
            v.push(Input {
                data: p.data.to_vec(),
                meta: PacketMeta {
                    record: p.record,
                    ts_ns: p.ts_ns as u64,
                    interface: p.interface,
                    orig_len: p.orig_len,
                    link_type: p.link_type,
                },
            });
        }
        v
    }

    fn generated(rules: &Rules, mix: Mix, packets: u64, seed: u64) -> Vec<Input> {
        let cfg = GenConfig {
            packets,
            mix,
            seed,
            flows: 64,
            ..GenConfig::default()
        };
        let mut g = Generator::new(rules, &cfg).expect("generator");
        let mut v = Vec::new();
        let mut buf = Vec::new();
        let mut record = 0;
        while let Some(ts_ns) = g.next_packet(&mut buf) {
            record += 1;
            v.push(Input {
                meta: PacketMeta {
                    record,
                    ts_ns,
                    interface: 0,
                    orig_len: buf.len() as u32,
                    link_type: 1,
                },
                data: buf.clone(),
            });
        }
        v
    }

    /// Copies of `inputs` with bytes of the IP and transport headers changed, some frames cut
    /// short and some clocks jumped past every timeout, after a fixed xorshift sequence.
    fn mutated(inputs: &[Input], seed: u64) -> Vec<Input> {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut skew = 0u64;
        let mut v = Vec::new();
        for i in inputs {
            let mut data = i.data.clone();
            let r = next();
            match r % 8 {
                0 if data.len() > 14 => {
                    let at = 14 + (next() as usize % (data.len() - 14).min(48));
                    data[at] ^= 1 << (next() % 8);
                }
                1 if data.len() > 20 => data.truncate(14 + (next() as usize % 40)),
                2 if next() % 64 == 0 => skew += timeout::TCP_ESTABLISHED + 1,
                _ => {}
            }
            let meta = PacketMeta {
                ts_ns: i.meta.ts_ns + skew,
                ..i.meta
            };
            v.push(Input { data, meta });
        }
        v
    }

    /// How far ahead `assert_paths_agree` looks up packets, as the replay loop does.
    const AHEAD: usize = 16;

    /// Runs `inputs` through the fast path, through the fast path with lookaheads made as the
    /// replay loop makes them (some of another packet's, which must be ignored or, for the
    /// same tuple, agree), and through the general path alone, and asserts that every
    /// outcome, every output byte and every event agree.
    fn assert_paths_agree(rules: &Rules, config: Config, inputs: &[Input]) -> usize {
        let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
        let mut fast = Translator::new(&table, config);
        let mut ahead = Translator::new(&table, config);
        let mut general = Translator::new(&table, config);
        let mut fast_hits = 0;
        let mut lookaheads: Vec<Option<Lookahead>> = inputs
            .iter()
            .take(AHEAD)
            .map(|i| ahead.prefetch_key(&i.data, i.meta.link_type))
            .collect();
        for (n, i) in inputs.iter().enumerate() {
            if let Some(later) = inputs.get(n + AHEAD) {
                let key = ahead.prefetch_key(&later.data, later.meta.link_type);
                lookaheads.push(key);
            }
            if let Some(Some(l)) = lookaheads.get_mut(n + AHEAD / 2) {
                ahead.prefetch_binding(l);
            }
            let (mut a, mut b, mut c) = (i.data.clone(), i.data.clone(), i.data.clone());
            // What `process` does, with the fast path's share counted.
            let oa = match fast.plain_tcp_udp(&mut a, &i.meta, None) {
                Some(o) => {
                    fast_hits += 1;
                    o
                }
                None => fast.process_general(&mut a, &i.meta),
            };
            let ob = general.process_general(&mut b, &i.meta);
            let l = if n % 7 == 3 {
                lookaheads.get(n + 1).copied().flatten()
            } else {
                lookaheads[n]
            };
            let oc = ahead.process_ahead(&mut c, &i.meta, l.as_ref());
            assert_eq!(oa, ob, "packet {n}: outcomes differ");
            assert_eq!(a, b, "packet {n}: output bytes differ");
            assert_eq!(oc, ob, "packet {n}: outcomes differ with a lookahead");
            assert_eq!(c, b, "packet {n}: output bytes differ with a lookahead");
            loop {
                let (ea, eb, ec) = (fast.pop_event(), general.pop_event(), ahead.pop_event());
                assert_eq!(format!("{ea:?}"), format!("{eb:?}"), "packet {n}: events");
                assert_eq!(format!("{ec:?}"), format!("{eb:?}"), "packet {n}: events");
                if ea.is_none() {
                    break;
                }
            }
        }
        fast.finish();
        ahead.finish();
        general.finish();
        while let Some(e) = general.pop_event() {
            let e = format!("{:?}", Some(e));
            assert_eq!(format!("{:?}", fast.pop_event()), e);
            assert_eq!(format!("{:?}", ahead.pop_event()), e);
        }
        assert!(fast.pop_event().is_none() && ahead.pop_event().is_none());
        assert_eq!(fast.flow_stats(), general.flow_stats());
        assert_eq!(ahead.flow_stats(), general.flow_stats());
        fast_hits
    }

    #[test]
    fn fast_path_equals_general_path() {
        let rules = seed_rules();
        let seed = seed_capture();
        let mut streams = vec![
            mutated(&seed, 7),
            mutated(&seed, 99),
            generated(&rules, Mix::Imix, 4000, 3),
            generated(&rules, Mix::Tcp64, 4000, 4),
            generated(&rules, Mix::Udp { size: 200 }, 2000, 5),
        ];
        let imix = generated(&rules, Mix::Imix, 4000, 6);
        streams.push(mutated(&imix, 11));
        streams.push(seed);
        let configs = [
            Config::default(),
            Config {
                keep_ttl: true,
                foreign: ForeignPolicy::Drop,
                max_flows: 16,
            },
        ];
        for config in configs {
            for s in &streams {
                let hits = assert_paths_agree(&rules, config, s);
                // The fast path must actually carry traffic, or this test proves nothing.
                // The fast path must carry a real share, or this test would prove nothing.
                assert!(
                    hits * 20 > s.len(),
                    "{hits} fast-path packets of {}",
                    s.len()
                );
            }
        }
    }
}
