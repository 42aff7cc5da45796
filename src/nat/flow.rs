//! The flow table: bindings created by a flow's first packet, used by the rest of the flow and
//! by its replies, aged on the capture's own clock.

use super::flowmap::{FlowKey, FlowMap};

/// Idle timeouts in nanoseconds, after VPP's NAT defaults (and RFC 5382's 2 h 4 min floor
/// for established TCP).
pub mod timeout {
    /// TCP after the handshake.
    pub const TCP_ESTABLISHED: u64 = 7440 * 1_000_000_000;
    /// TCP after a FIN or RST was seen (or before establishment).
    pub const TCP_TRANSITORY: u64 = 240 * 1_000_000_000;
    /// UDP.
    pub const UDP: u64 = 300 * 1_000_000_000;
    /// ICMP queries and other protocols.
    pub const OTHER: u64 = 60 * 1_000_000_000;
}

/// One binding: the public and private endpoints of a flow and its entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The forward entry that created the flow.
    pub entry: u32,
    /// How the entry matched (kept for teaching views).
    pub kind: super::MatchKind,
    /// The EIP.
    pub ext_ip: u32,
    /// The public port.
    pub ext_port: u16,
    /// The server.
    pub int_ip: u32,
    /// The server's port.
    pub int_port: u16,
    /// The checksum changes of its two rewrites, summed once for the whole flow.
    pub deltas: RewriteDeltas,
}

impl Binding {
    /// A binding of public (`ext_ip`, `ext_port`) to server (`int_ip`, `int_port`).
    pub fn new(
        entry: u32,
        kind: super::MatchKind,
        (ext_ip, ext_port): (u32, u16),
        (int_ip, int_port): (u32, u16),
    ) -> Binding {
        Binding {
            entry,
            kind,
            ext_ip,
            ext_port,
            int_ip,
            int_port,
            deltas: RewriteDeltas::new((ext_ip, ext_port), (int_ip, int_port)),
        }
    }
}

/// RFC 1624's `~m + m'` terms of a binding's rewrites, over the 16-bit words as they lie in
/// memory, left unfolded: applying them gives exactly what summing the terms for each packet
/// would, so a flow's packets skip that arithmetic. Inbound rewrites the public address and
/// port to the server's; outbound the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RewriteDeltas {
    /// The address change of an inbound rewrite (IP header and pseudo-header).
    pub addr_in: u32,
    /// The port change of an inbound rewrite.
    pub port_in: u32,
    /// The address change of an outbound rewrite.
    pub addr_out: u32,
    /// The port change of an outbound rewrite.
    pub port_out: u32,
}

impl RewriteDeltas {
    /// The deltas between public (`ext_ip`, `ext_port`) and server (`int_ip`, `int_port`).
    pub fn new((ext_ip, ext_port): (u32, u16), (int_ip, int_port): (u32, u16)) -> RewriteDeltas {
        use crate::wire::checksum::{delta16, delta32};
        let (ext, int) = (ext_ip.to_be(), int_ip.to_be());
        let (ep, ip) = (ext_port.to_be(), int_port.to_be());
        // Each term is below 2^18, so u32 holds it.
        RewriteDeltas {
            addr_in: delta32(ext, int) as u32,
            port_in: delta16(ep, ip) as u32,
            addr_out: delta32(int, ext) as u32,
            port_out: delta16(ip, ep) as u32,
        }
    }
}

/// What a packet of the flow reads and writes, in one cache line of its own, with what its
/// two keys are made from (see [`Slot::keys`]).
#[derive(Debug, Clone, Copy)]
#[repr(align(64))]
struct Slot {
    binding: Binding,
    last_seen_ns: u64,
    timeout_ns: u64,
    /// The far end of the flow (the client of an inbound flow, the peer of a server's own).
    peer_ip: u32,
    peer_port: u16,
    proto: u8,
    live: bool,
}

// The peer's fields fill the line's spare bytes: the keys cost no memory of their own.
const _: () = assert!(std::mem::size_of::<Slot>() == 64);

impl Slot {
    /// The flow's (inbound, outbound) keys, needed only to remove it. Both ways of making a
    /// flow give it the keys (peer -> EIP) and (server -> peer), so the binding and the peer
    /// rebuild them; keeping them instead took 32 bytes a flow and their pages.
    fn keys(&self) -> [FlowKey; 2] {
        let b = &self.binding;
        let (proto, ip, port) = (self.proto, self.peer_ip, self.peer_port);
        [
            FlowKey::inbound(proto, ip, port, b.ext_ip, b.ext_port),
            FlowKey::outbound(proto, b.int_ip, b.int_port, ip, port),
        ]
    }
}

/// Counters the flow table keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStats {
    /// Bindings created.
    pub created: u64,
    /// Bindings removed because they were idle past their timeout.
    pub expired: u64,
    /// Bindings removed early because the table was full.
    pub evicted: u64,
    /// The most bindings alive at once.
    pub peak: u64,
}

/// The most flows a table can hold: its index packs slot numbers into 23 bits.
pub const MAX_FLOWS: usize = super::flowmap::MAX_VALUE as usize - 1;

/// Slots the slab maps in ahead at a time when prefaulting: 2 MiB of them (a huge page).
const PREFAULT_CHUNK: usize = 32_768;

/// Bindings by both of their keys, bounded in number.
#[derive(Debug)]
pub struct FlowTable {
    map: FlowMap,
    slots: Vec<Slot>,
    free: Vec<u32>,
    capacity: usize,
    live: usize,
    stats: FlowStats,
    /// Whether to start a [`Prefaulter`](super::flowmap::Prefaulter) once the slab is large.
    prefault_wanted: bool,
    prefault: Option<super::flowmap::Prefaulter>,
}

impl FlowTable {
    /// A table holding at most `capacity` flows (at least one, at most [`MAX_FLOWS`]).
    pub fn new(capacity: usize) -> FlowTable {
        FlowTable {
            map: FlowMap::for_keys(2 * capacity.clamp(1, MAX_FLOWS)),
            slots: Vec::new(),
            free: Vec::new(),
            capacity: capacity.clamp(1, MAX_FLOWS),
            live: 0,
            stats: FlowStats::default(),
            prefault_wanted: false,
            prefault: None,
        }
    }

    /// From now on, has a thread of its own map in the pages the table will grow into ahead
    /// of use (see `Prefaulter`): for callers with a core to spare, such as replay with two
    /// threads, whose second thread only waits on the output's writes. The thread starts
    /// only once the slab has reserved its room, so a small table never starts it.
    pub fn prefault_in_background(&mut self) {
        self.prefault_wanted = true;
    }

    /// The table's own counters.
    pub fn stats(&self) -> FlowStats {
        self.stats
    }

    /// Bindings alive now.
    pub fn len(&self) -> usize {
        self.live
    }

    /// True when no binding is alive.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// The hash the index files `key` under, for the `_hashed` calls: a caller that meets a
    /// key a few packets before it looks it up hashes it once.
    #[inline(always)]
    pub fn hash(&self, key: FlowKey) -> u64 {
        self.map.hash(key)
    }

    /// Starts loading the index line a lookup of the key hashed `hash` will read first (a
    /// hint).
    #[inline(always)]
    pub fn prefetch_index(&self, hash: u64) {
        self.map.prefetch(hash);
    }

    /// Starts loading the slot `key` (hashed `hash`) names, reading the index (best
    /// prefetched a few packets before); false when the key is not in the table. A hint that
    /// changes nothing.
    #[inline(always)]
    pub fn prefetch_slot(&self, key: FlowKey, hash: u64) -> bool {
        if let Some(idx) = self.map.get_hashed(key, hash)
            && let Some(slot) = self.slots.get(idx as usize)
        {
            super::flowmap::prefetch_line(slot);
            return true;
        }
        false
    }

    /// The live binding for `key`, refreshed to `now_ns`; an idle one past its timeout is
    /// removed and reported as absent.
    #[inline(always)]
    pub fn touch(&mut self, key: FlowKey, now_ns: u64, timeout_ns: u64) -> Option<Binding> {
        self.touch_hashed(key, self.hash(key), now_ns, timeout_ns)
    }

    /// [`FlowTable::touch`] of a key whose [`FlowTable::hash`] is `hash`.
    #[inline(always)]
    pub fn touch_hashed(
        &mut self,
        key: FlowKey,
        hash: u64,
        now_ns: u64,
        timeout_ns: u64,
    ) -> Option<Binding> {
        let idx = self.map.get_hashed(key, hash)?;
        let slot = &mut self.slots[idx as usize];
        // Timestamps in captures can step backwards; an earlier packet never expires a flow.
        if now_ns > slot.last_seen_ns && now_ns - slot.last_seen_ns > slot.timeout_ns {
            self.remove(idx);
            self.stats.expired += 1;
            return None;
        }
        slot.last_seen_ns = slot.last_seen_ns.max(now_ns);
        // TCP FIN/RST shortens a flow's life; nothing lengthens it back but a new flow.
        slot.timeout_ns = slot.timeout_ns.min(timeout_ns);
        Some(slot.binding)
    }

    /// [`FlowTable::insert_hashed`] of keys not hashed yet.
    #[cfg(test)]
    pub fn insert(
        &mut self,
        in_key: FlowKey,
        out_key: FlowKey,
        binding: Binding,
        now_ns: u64,
        timeout_ns: u64,
    ) {
        let keys = [(in_key, self.hash(in_key)), (out_key, self.hash(out_key))];
        self.insert_hashed(keys, binding, now_ns, timeout_ns);
    }

    /// Records a new binding under both keys, given as (inbound, outbound) with their
    /// [`FlowTable::hash`]es. They must be the keys a flow of that binding has (the inbound key
    /// from its peer to the EIP, the outbound key from its server to the peer; see
    /// `Slot::keys`). When the table is full of live flows it cannot evict, it records nothing
    /// (the packet is still translated, statelessly).
    pub fn insert_hashed(
        &mut self,
        [(in_key, in_hash), (out_key, out_hash)]: [(FlowKey, u64); 2],
        binding: Binding,
        now_ns: u64,
        timeout_ns: u64,
    ) {
        if self.live >= self.capacity {
            self.make_room(now_ns);
        }
        let (proto, peer_ip, peer_port) = in_key.source();
        let slot = Slot {
            binding,
            last_seen_ns: now_ns,
            timeout_ns,
            peer_ip,
            peer_port,
            proto,
            live: true,
        };
        // The unit tests drive every way of making a flow (the translator's among them)
        // through here; a key the slot cannot rebuild would be left behind on removal.
        #[cfg(test)]
        assert_eq!(slot.keys(), [in_key, out_key], "keys not of their binding");
        let idx = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                // The index packs slot numbers into 23 bits.
                let i = self.slots.len() as u32;
                if self.slots.len() >= MAX_FLOWS {
                    // Nothing recorded, but a stale binding under either key must not
                    // outlive the packet that replaced it.
                    for k in [in_key, out_key] {
                        if let Some(old) = self.map.get(k) {
                            self.remove(old);
                        }
                    }
                    return;
                }
                if self.slots.len() == self.slots.capacity() {
                    self.grow();
                }
                if let Some(p) = &self.prefault
                    && self.slots.len().is_multiple_of(PREFAULT_CHUNK)
                {
                    // The chunk starting here and the next; pages already mapped in are left
                    // alone, so asking for this one again costs the thread next to nothing.
                    let from = self.slots.len();
                    p.populate(&self.slots, from, from + 2 * PREFAULT_CHUNK);
                }
                self.slots.push(slot);
                i
            }
        };
        self.live += 1;
        self.stats.created += 1;
        // A stale binding under either key (e.g. the reverse key of a re-created flow) must
        // not outlive the new one. Each key's one probe both sets it and finds what it named;
        // removing that slot afterwards leaves both keys alone, as they name `idx` now.
        let stale_in = self.map.insert_hashed(in_key, in_hash, idx);
        let stale_out = self.map.insert_hashed(out_key, out_hash, idx);
        if let Some(old) = stale_in {
            self.remove(old);
        }
        if let Some(old) = stale_out {
            self.remove(old);
        }
        if let Some(p) = &self.prefault {
            self.map.prefault_next_half(p);
        }
        self.stats.peak = self.stats.peak.max(self.live as u64);
    }

    /// Doubles the slab into memory the kernel may back with huge pages (see `huge_vec`);
    /// `Vec`'s own growth would copy into memory touched before it could be asked. Once the
    /// slab is megabytes large it takes the room of the table's whole capacity instead (see
    /// `room_to_grow`) and never moves again; that is also when a wanted prefault thread
    /// starts.
    fn grow(&mut self) {
        let doubled = (self.slots.len() * 2).max(64);
        let mut slots = super::flowmap::room_to_grow(doubled, self.capacity);
        slots.extend_from_slice(&self.slots);
        self.slots = slots;
        if self.prefault_wanted && self.prefault.is_none() && self.slots.capacity() > doubled {
            self.prefault = super::flowmap::Prefaulter::start();
        }
    }

    /// Gives every live binding to `keep`: a binding for which it returns `Some(entry)` stays,
    /// renumbered to that entry; the others are removed. Returns (kept, removed). Used when the
    /// forward table is replaced while flows are alive (live mode's rules reload).
    pub fn rebind(&mut self, mut keep: impl FnMut(&Binding) -> Option<u32>) -> (u64, u64) {
        let (mut kept, mut removed) = (0, 0);
        for i in 0..self.slots.len() {
            if !self.slots[i].live {
                continue;
            }
            match keep(&self.slots[i].binding) {
                Some(entry) => {
                    self.slots[i].binding.entry = entry;
                    kept += 1;
                }
                None => {
                    // i < slots.len() <= MAX_FLOWS: insert refuses to grow past 23-bit indices.
                    self.remove(i as u32);
                    removed += 1;
                }
            }
        }
        (kept, removed)
    }

    fn remove(&mut self, idx: u32) {
        let slot = &mut self.slots[idx as usize];
        if !slot.live {
            return;
        }
        slot.live = false;
        // A key re-bound to a newer slot since (see `insert`) stays with it.
        let [a, b] = slot.keys();
        self.map.remove_if(a, idx);
        self.map.remove_if(b, idx);
        self.free.push(idx);
        self.live -= 1;
    }

    /// Frees space when full: first every idle-expired flow, then, if none was, the older half
    /// of the flows by last use. Scans the slab in index order so the result is deterministic.
    fn make_room(&mut self, now_ns: u64) {
        let mut freed = false;
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.live && now_ns > s.last_seen_ns && now_ns - s.last_seen_ns > s.timeout_ns {
                self.remove(i as u32);
                self.stats.expired += 1;
                freed = true;
            }
        }
        if freed {
            return;
        }
        let mut ages: Vec<u64> = self
            .slots
            .iter()
            .filter(|s| s.live)
            .map(|s| s.last_seen_ns)
            .collect();
        if ages.is_empty() {
            return;
        }
        let mid = ages.len() / 2;
        let (_, &mut cutoff, _) = ages.select_nth_unstable(mid);
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.live && s.last_seen_ns <= cutoff {
                self.remove(i as u32);
                self.stats.evicted += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nat::MatchKind;

    fn binding(entry: u32) -> Binding {
        Binding::new(entry, MatchKind::Port, (1, 80), (2, 8080))
    }

    /// Whether every page of `bytes` from `start` is mapped in (mincore).
    #[allow(unsafe_code)]
    fn resident(start: usize, bytes: usize) -> bool {
        const PAGE: usize = 4096;
        let (from, to) = (start.next_multiple_of(PAGE), (start + bytes) / PAGE * PAGE);
        let mut flags = vec![0u8; (to - from) / PAGE];
        // SAFETY: mincore only reads the page tables of the range (part of a live vector's
        // allocation here) and writes one byte per page into `flags`, which has that many.
        let rc = unsafe { libc::mincore(from as *mut libc::c_void, to - from, flags.as_mut_ptr()) };
        rc == 0 && flags.iter().all(|f| f & 1 == 1)
    }

    /// With prefaulting on, the slab's chunk after the next is mapped in as each chunk starts
    /// (checked with mincore, before anything is written there), and every binding is the one
    /// the same inserts give without it.
    #[test]
    fn prefault_maps_in_the_chunk_ahead_and_changes_nothing() {
        let key = |i: u32| {
            (
                FlowKey::inbound(6, i, 1000, 1, 80),
                FlowKey::outbound(6, 2, 8080, i, 1000),
            )
        };
        let mut with = FlowTable::new(300_000);
        with.prefault_in_background();
        let mut without = FlowTable::new(300_000);
        let n = 2 * PREFAULT_CHUNK as u32 + 10;
        for i in 0..n {
            let (a, b) = key(i);
            with.insert(a, b, binding(i), 0, 100);
            without.insert(a, b, binding(i), 0, 100);
        }
        assert!(with.prefault.is_some(), "the prefault thread did not start");
        assert!(without.prefault.is_none());
        // Asked for when the slab reached two chunks: slots 3 and 4 chunks in, not used yet.
        let (from, to) = (3 * PREFAULT_CHUNK, 4 * PREFAULT_CHUNK);
        assert!(with.slots.capacity() >= to && with.slots.len() < from);
        let start = with.slots.as_ptr() as usize + from * std::mem::size_of::<Slot>();
        let bytes = (to - from) * std::mem::size_of::<Slot>();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !resident(start, bytes) {
            assert!(
                std::time::Instant::now() < deadline,
                "the chunk ahead was not mapped in within 10 s"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for i in 0..n {
            let (a, b) = key(i);
            assert_eq!(with.touch(a, 1, 100), without.touch(a, 1, 100));
            assert_eq!(with.touch(b, 1, 100), Some(binding(i)));
        }
        assert_eq!(with.stats(), without.stats());
    }

    /// The default bound holds 4,000,000 concurrent flows without evicting one (issue 16's
    /// target), and every one of them is still found by both of its keys.
    #[test]
    fn the_default_table_holds_four_million_flows() {
        const FLOWS: u32 = 4_000_000;
        let mut t = FlowTable::new(crate::nat::DEFAULT_MAX_FLOWS);
        // Peers 10.0.0.0 up, each with its own address, to one EIP port.
        let keys = |i: u32| {
            let peer = 0x0a00_0000 + i;
            (
                FlowKey::inbound(6, peer, 40_000, 1, 80),
                FlowKey::outbound(6, 2, 8080, peer, 40_000),
            )
        };
        for i in 0..FLOWS {
            let (a, b) = keys(i);
            t.insert(a, b, binding(i), 0, 100);
        }
        assert_eq!(t.stats().evicted, 0);
        assert_eq!(t.len(), FLOWS as usize);
        assert_eq!(t.stats().peak, u64::from(FLOWS));
        for i in (0..FLOWS).step_by(9_973) {
            let (a, b) = keys(i);
            assert_eq!(
                t.touch(a, 1, 100).map(|b| b.entry),
                Some(i),
                "flow {i}, inbound key"
            );
            assert_eq!(
                t.touch(b, 1, 100).map(|b| b.entry),
                Some(i),
                "flow {i}, outbound key"
            );
        }
    }

    #[test]
    fn both_keys_find_the_binding_until_it_expires() {
        let mut t = FlowTable::new(8);
        let a = FlowKey::inbound(6, 10, 1000, 1, 80);
        let b = FlowKey::outbound(6, 2, 8080, 10, 1000);
        t.insert(a, b, binding(0), 0, 100);
        assert_eq!(t.touch(b, 50, 100), Some(binding(0)));
        assert_eq!(t.touch(a, 149, 100), Some(binding(0)));
        assert_eq!(t.touch(a, 250, 100), None);
        assert_eq!(t.touch(b, 250, 100), None);
        assert_eq!(t.stats().expired, 1);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_evicts_the_older_half() {
        let mut t = FlowTable::new(4);
        let binding = |entry: u32| Binding::new(entry, MatchKind::Port, (1, 53), (2, 53));
        for i in 0..4u16 {
            let a = FlowKey::inbound(17, 10, i, 1, 53);
            let b = FlowKey::outbound(17, 2, 53, 10, i);
            t.insert(a, b, binding(u32::from(i)), u64::from(i), 1_000);
        }
        let a = FlowKey::inbound(17, 10, 99, 1, 53);
        let b = FlowKey::outbound(17, 2, 53, 10, 99);
        t.insert(a, b, binding(9), 10, 1_000);
        assert_eq!(t.stats().evicted, 3);
        assert_eq!(t.len(), 2);
        assert!(
            t.touch(FlowKey::inbound(17, 10, 3, 1, 53), 11, 1_000)
                .is_some()
        );
        assert!(
            t.touch(FlowKey::inbound(17, 10, 0, 1, 53), 11, 1_000)
                .is_none()
        );
    }
}
