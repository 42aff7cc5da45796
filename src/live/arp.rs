//! ARP (RFC 826) for the gateway's two sides: frames in and out, and a bounded neighbour cache
//! with timeouts, retries and a bounded queue of packets waiting for a resolution.
//!
//! Everything here is preallocated when the cache is made; the per-packet calls (`lookup`,
//! `learn`, `enqueue`) neither allocate nor format.

/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;
/// The Ethernet broadcast address.
pub const BROADCAST: [u8; 6] = [0xff; 6];
/// An Ethernet + ARP frame, padded to the 60-byte minimum (before the FCS).
pub const ARP_FRAME_LEN: usize = 60;

/// How long a resolved neighbour is trusted without being heard from (Linux's
/// `base_reachable_time` is 30 s, its stale entries live longer; a minute is in between).
pub const REACHABLE_NS: u64 = 60_000_000_000;
/// Time between ARP requests for a pending neighbour (Linux: `retrans_time` 1 s).
pub const RETRY_NS: u64 = 1_000_000_000;
/// Requests sent before a neighbour is declared unreachable (Linux: `mcast_solicit` 3).
pub const MAX_TRIES: u8 = 3;
/// How long an unreachable neighbour's packets are dropped at once instead of queued, so a dead
/// server does not cost a request per packet.
pub const FAILED_HOLD_NS: u64 = 3_000_000_000;
/// Packets queued while their neighbour resolves, over all neighbours of one side.
pub const QUEUE_SLOTS: usize = 64;
/// Packets queued for one neighbour (Linux's `unres_qlen` is about 100 KB, some 70 frames; a
/// handful is enough for a SYN and its retransmissions).
pub const QUEUE_PER_NEIGHBOUR: usize = 8;

/// ARP operation: request.
pub const OP_REQUEST: u16 = 1;
/// ARP operation: reply.
pub const OP_REPLY: u16 = 2;

/// The fields of an Ethernet/IPv4 ARP packet that the gateway uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arp {
    /// Request or reply.
    pub op: u16,
    /// Sender hardware address.
    pub sha: [u8; 6],
    /// Sender protocol address.
    pub spa: u32,
    /// Target hardware address.
    pub tha: [u8; 6],
    /// Target protocol address.
    pub tpa: u32,
}

/// Reads the ARP packet of an Ethernet frame; `None` unless it is Ethernet/IPv4 ARP, whole.
pub fn parse(frame: &[u8]) -> Option<Arp> {
    let p = frame.get(14..42)?;
    // htype 1 (Ethernet), ptype IPv4, hlen 6, plen 4.
    if p[0..6] != [0, 1, 8, 0, 6, 4] {
        return None;
    }
    let mac = |at: usize| -> [u8; 6] {
        let mut m = [0; 6];
        m.copy_from_slice(&p[at..at + 6]);
        m
    };
    let ip = |at: usize| u32::from_be_bytes([p[at], p[at + 1], p[at + 2], p[at + 3]]);
    Some(Arp {
        op: u16::from_be_bytes([p[6], p[7]]),
        sha: mac(8),
        spa: ip(14),
        tha: mac(18),
        tpa: ip(24),
    })
}

/// Writes an Ethernet + ARP frame into `out` (zero padding to 60 bytes).
pub fn build(out: &mut [u8; ARP_FRAME_LEN], eth_dst: [u8; 6], eth_src: [u8; 6], arp: &Arp) {
    out.fill(0);
    out[0..6].copy_from_slice(&eth_dst);
    out[6..12].copy_from_slice(&eth_src);
    out[12..14].copy_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    out[14..20].copy_from_slice(&[0, 1, 8, 0, 6, 4]);
    out[20..22].copy_from_slice(&arp.op.to_be_bytes());
    out[22..28].copy_from_slice(&arp.sha);
    out[28..32].copy_from_slice(&arp.spa.to_be_bytes());
    out[32..38].copy_from_slice(&arp.tha);
    out[38..42].copy_from_slice(&arp.tpa.to_be_bytes());
}

/// A request from (`mac`, `sender`) asking who has `target`, broadcast. A gratuitous ARP is a
/// request whose sender and target are the same address.
pub fn request(out: &mut [u8; ARP_FRAME_LEN], mac: [u8; 6], sender: u32, target: u32) {
    let arp = Arp {
        op: OP_REQUEST,
        sha: mac,
        spa: sender,
        tha: [0; 6],
        tpa: target,
    };
    build(out, BROADCAST, mac, &arp);
}

/// The reply to `req`: `mac` has `req.tpa`, sent to the asker only.
pub fn reply(out: &mut [u8; ARP_FRAME_LEN], mac: [u8; 6], req: &Arp) {
    let arp = Arp {
        op: OP_REPLY,
        sha: mac,
        spa: req.tpa,
        tha: req.sha,
        tpa: req.spa,
    };
    build(out, req.sha, mac, &arp);
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Empty,
    /// Known; trusted until `until_ns`.
    Resolved,
    /// Asked for; `tries` requests sent, the next at `until_ns`.
    Pending,
    /// No answer to `MAX_TRIES` requests; packets are dropped until `until_ns`.
    Failed,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    ip: u32,
    mac: [u8; 6],
    state: State,
    tries: u8,
    until_ns: u64,
    /// When it was last looked up or learned, for choosing a victim when the bucket is full.
    used_ns: u64,
    /// The address to send requests from (an EIP on the outside, the gateway's address inside).
    ask_from: u32,
}

const EMPTY: Slot = Slot {
    ip: 0,
    mac: [0; 6],
    state: State::Empty,
    tries: 0,
    until_ns: 0,
    used_ns: 0,
    ask_from: 0,
};

/// Ways per bucket: a full bucket replaces its least recently used neighbour.
const WAYS: usize = 4;

/// What [`Neighbours::resolve`] says about a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resolve {
    /// Its MAC address.
    Known([u8; 6]),
    /// Being resolved: queue the packet (a request is due if `ask` is set).
    Pending {
        /// Send a request now (first time asked).
        ask: bool,
    },
    /// Did not answer recently: drop.
    Unreachable,
}

/// A packet waiting for its neighbour.
#[derive(Debug)]
struct Queued {
    ip: u32,
    seq: u64,
    len: usize,
    data: Box<[u8]>,
}

/// What the cache counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct NeighbourStats {
    /// Requests sent (first tries and retries).
    pub requests_sent: u64,
    /// Neighbours resolved by a reply or learned from their traffic.
    pub learned: u64,
    /// Neighbours that never answered.
    pub unreachable: u64,
    /// Packets queued while resolving.
    pub queued: u64,
    /// Packets dropped because their neighbour did not answer, or the queue was full.
    pub dropped_unresolved: u64,
}

/// A bounded neighbour cache with its waiting queue, for one side of the gateway.
#[derive(Debug)]
pub struct Neighbours {
    slots: Box<[Slot]>,
    mask: usize,
    queue: Vec<Queued>,
    seq: u64,
    stats: NeighbourStats,
}

impl Neighbours {
    /// A cache of about `capacity` neighbours (rounded up to a power of two, at least 8),
    /// whose queued packets may be up to `max_frame` bytes.
    pub fn new(capacity: usize, max_frame: usize) -> Neighbours {
        let buckets = (capacity.max(8) / WAYS).next_power_of_two();
        let queue = (0..QUEUE_SLOTS)
            .map(|_| Queued {
                ip: 0,
                seq: 0,
                len: 0,
                data: vec![0; max_frame].into_boxed_slice(),
            })
            .collect();
        Neighbours {
            slots: vec![EMPTY; buckets * WAYS].into_boxed_slice(),
            mask: buckets - 1,
            queue,
            seq: 0,
            stats: NeighbourStats::default(),
        }
    }

    /// The counters.
    pub fn stats(&self) -> NeighbourStats {
        self.stats
    }

    #[inline]
    fn bucket(&self, ip: u32) -> usize {
        // Fibonacci hashing: consecutive addresses spread over buckets.
        let h = (u64::from(ip).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 32) as usize;
        (h & self.mask) * WAYS
    }

    #[inline]
    fn find(&self, ip: u32) -> Option<usize> {
        let b = self.bucket(ip);
        (b..b + WAYS).find(|&i| self.slots[i].state != State::Empty && self.slots[i].ip == ip)
    }

    /// The slot for `ip`, claiming the bucket's emptiest or least recently used way if absent.
    fn claim(&mut self, ip: u32) -> usize {
        if let Some(i) = self.find(ip) {
            return i;
        }
        let b = self.bucket(ip);
        let victim = (b..b + WAYS)
            .min_by_key(|&i| {
                let s = &self.slots[i];
                // Empty first, then failed, then the least recently used.
                let rank = match s.state {
                    State::Empty => 0u8,
                    State::Failed => 1,
                    _ => 2,
                };
                (rank, s.used_ns)
            })
            .unwrap_or(b);
        if self.slots[victim].state == State::Pending {
            let old = self.slots[victim].ip;
            self.drop_queued(old);
        }
        self.slots[victim] = Slot { ip, ..EMPTY };
        victim
    }

    /// Records that `ip` is at `mac` (from an ARP packet or a frame it sent). Returns true when
    /// packets were waiting for it: take them with [`Neighbours::take_ready`].
    #[inline]
    pub fn learn(&mut self, ip: u32, mac: [u8; 6], now_ns: u64) -> bool {
        // Nobody is at 0.0.0.0 (ARP probes use it), nor at a multicast or broadcast address.
        if ip == 0 || ip >> 28 == 0xe || ip == u32::MAX || mac[0] & 1 == 1 {
            return false;
        }
        if let Some(i) = self.find(ip) {
            let s = &mut self.slots[i];
            if s.state == State::Resolved && s.mac == mac && s.until_ns > now_ns + REACHABLE_NS / 2
            {
                // Fresh enough: skip the writes on the per-packet path.
                return false;
            }
        }
        let i = self.claim(ip);
        let s = &mut self.slots[i];
        let was_pending = s.state == State::Pending;
        if s.state != State::Resolved || s.mac != mac {
            self.stats.learned += 1;
        }
        *s = Slot {
            ip,
            mac,
            state: State::Resolved,
            tries: 0,
            until_ns: now_ns + REACHABLE_NS,
            used_ns: now_ns,
            ask_from: s.ask_from,
        };
        was_pending
    }

    /// Where to send a packet for `ip`; starts a resolution (asking from `ask_from`) when
    /// nothing is known.
    #[inline]
    pub fn resolve(&mut self, ip: u32, ask_from: u32, now_ns: u64) -> Resolve {
        if let Some(i) = self.find(ip) {
            let s = &mut self.slots[i];
            s.used_ns = now_ns;
            match s.state {
                State::Resolved if s.until_ns > now_ns => return Resolve::Known(s.mac),
                State::Pending => return Resolve::Pending { ask: false },
                State::Failed if s.until_ns > now_ns => return Resolve::Unreachable,
                // Expired: resolve again (as Linux does from STALE, but without using the old
                // address meanwhile, so a moved server is found).
                _ => {}
            }
        }
        let i = self.claim(ip);
        self.slots[i] = Slot {
            ip,
            state: State::Pending,
            tries: 1,
            until_ns: now_ns + RETRY_NS,
            used_ns: now_ns,
            ask_from,
            ..EMPTY
        };
        self.stats.requests_sent += 1;
        Resolve::Pending { ask: true }
    }

    /// Keeps a copy of `frame` until `ip` resolves; false (and counted) when the queue is full
    /// or the frame too long.
    pub fn enqueue(&mut self, ip: u32, frame: &[u8]) -> bool {
        let mine = self
            .queue
            .iter()
            .filter(|q| q.len > 0 && q.ip == ip)
            .count();
        let free = self.queue.iter_mut().find(|q| q.len == 0);
        match free {
            Some(q)
                if mine < QUEUE_PER_NEIGHBOUR
                    && frame.len() <= q.data.len()
                    && !frame.is_empty() =>
            {
                q.data[..frame.len()].copy_from_slice(frame);
                q.len = frame.len();
                q.ip = ip;
                q.seq = self.seq;
                self.seq += 1;
                self.stats.queued += 1;
                true
            }
            _ => {
                self.stats.dropped_unresolved += 1;
                false
            }
        }
    }

    /// Counts a packet dropped because its neighbour is unreachable.
    pub fn count_unreachable_drop(&mut self) {
        self.stats.dropped_unresolved += 1;
    }

    /// Hands the oldest queued packet for a resolved neighbour to `send` (with its MAC), in
    /// arrival order, one per call; false when none is left.
    pub fn take_ready(&mut self, mut send: impl FnMut(&mut [u8], [u8; 6])) -> bool {
        let mut best: Option<(usize, [u8; 6])> = None;
        for (qi, q) in self.queue.iter().enumerate() {
            if q.len == 0 || best.is_some_and(|(b, _)| self.queue[b].seq < q.seq) {
                continue;
            }
            if let Some(i) = self.find(q.ip)
                && self.slots[i].state == State::Resolved
            {
                best = Some((qi, self.slots[i].mac));
            }
        }
        let Some((qi, mac)) = best else {
            return false;
        };
        let q = &mut self.queue[qi];
        send(&mut q.data[..q.len], mac);
        q.len = 0;
        true
    }

    fn drop_queued(&mut self, ip: u32) {
        for q in self.queue.iter_mut().filter(|q| q.len > 0 && q.ip == ip) {
            q.len = 0;
            self.stats.dropped_unresolved += 1;
        }
    }

    /// Retries and gives up on pending resolutions whose time has come; `ask(sender, target)`
    /// sends a request. Call a few times a second.
    pub fn tick(&mut self, now_ns: u64, mut ask: impl FnMut(u32, u32)) {
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.state != State::Pending || s.until_ns > now_ns {
                continue;
            }
            if s.tries < MAX_TRIES {
                let s = &mut self.slots[i];
                s.tries += 1;
                s.until_ns = now_ns + RETRY_NS;
                self.stats.requests_sent += 1;
                ask(s.ask_from, s.ip);
            } else {
                self.slots[i].state = State::Failed;
                self.slots[i].until_ns = now_ns + FAILED_HOLD_NS;
                self.stats.unreachable += 1;
                self.drop_queued(s.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: u32 = 0xc000_0203; // 192.0.2.3
    const GW: u32 = 0xc000_02fe; // 192.0.2.254
    const MAC: [u8; 6] = [2, 0, 0, 0, 0, 3];

    #[test]
    fn request_and_reply_round_trip() {
        let mut f = [0u8; ARP_FRAME_LEN];
        request(&mut f, [2, 0, 0, 0, 0, 9], GW, A);
        let req = parse(&f).unwrap();
        assert_eq!((req.op, req.spa, req.tpa), (OP_REQUEST, GW, A));
        assert_eq!(&f[0..6], &BROADCAST);
        let mut r = [0u8; ARP_FRAME_LEN];
        reply(&mut r, MAC, &req);
        let rep = parse(&r).unwrap();
        assert_eq!((rep.op, rep.sha, rep.spa, rep.tpa), (OP_REPLY, MAC, A, GW));
        assert_eq!(&r[0..6], &[2, 0, 0, 0, 0, 9]);
        assert!(parse(&f[..41]).is_none());
    }

    #[test]
    fn pending_queue_is_released_in_order_after_the_reply() {
        let mut n = Neighbours::new(16, 64);
        assert_eq!(n.resolve(A, GW, 0), Resolve::Pending { ask: true });
        assert_eq!(n.resolve(A, GW, 1), Resolve::Pending { ask: false });
        assert!(n.enqueue(A, &[1; 20]));
        assert!(n.enqueue(A, &[2; 20]));
        assert!(n.learn(A, MAC, 5));
        let mut got = Vec::new();
        while n.take_ready(|f, m| got.push((f[0], m))) {}
        assert_eq!(got, [(1, MAC), (2, MAC)]);
        assert_eq!(n.resolve(A, GW, 6), Resolve::Known(MAC));
    }

    #[test]
    fn retries_then_gives_up_and_bounds_the_queue() {
        let mut n = Neighbours::new(16, 64);
        n.resolve(A, GW, 0);
        for i in 0..QUEUE_PER_NEIGHBOUR + 3 {
            let ok = n.enqueue(A, &[i as u8; 10]);
            assert_eq!(ok, i < QUEUE_PER_NEIGHBOUR);
        }
        let mut asked = Vec::new();
        for t in 1..=5u64 {
            n.tick(t * RETRY_NS, |s, tg| asked.push((s, tg)));
        }
        assert_eq!(asked, [(GW, A), (GW, A)]);
        assert_eq!(n.resolve(A, GW, 5 * RETRY_NS + 1), Resolve::Unreachable);
        let s = n.stats();
        assert_eq!(s.requests_sent, 3);
        assert_eq!(s.unreachable, 1);
        assert_eq!(s.dropped_unresolved, 3 + QUEUE_PER_NEIGHBOUR as u64);
        // After the hold, it is asked for again.
        let later = 5 * RETRY_NS + FAILED_HOLD_NS + 1;
        assert_eq!(n.resolve(A, GW, later), Resolve::Pending { ask: true });
    }

    #[test]
    fn a_full_bucket_replaces_its_least_recently_used() {
        let mut n = Neighbours::new(8, 64);
        // Far more neighbours than slots: the cache stays bounded and keeps the recent ones.
        for i in 0..1000u32 {
            n.learn(0xc000_0000 + i, MAC, u64::from(i));
        }
        assert_eq!(n.slots.len(), 8);
        assert_eq!(n.resolve(0xc000_0000 + 999, GW, 1000), Resolve::Known(MAC));
        assert!(!n.learn(0, MAC, 1), "0.0.0.0 is never learned");
    }
}
