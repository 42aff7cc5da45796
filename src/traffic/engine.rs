//! The state every mix shares: the PRNG, the plan, per-sender IPv4 ids, and flow packet writers.

use super::build::{self, ACK, DF, ETHERTYPE_IPV4, Ip, PROTO_TCP, PROTO_UDP, Pattern, Tcp, mac};
use super::plan::{Plan, Resolved, Target};
use super::rng::Rng;

/// The gateway's public-side MAC (frames from the Internet are addressed to it).
pub(crate) const GW_PUBLIC_MAC: [u8; 6] = mac(0x00_0001);
/// The gateway's private-side MAC (frames from servers are addressed to it).
pub(crate) const GW_PRIVATE_MAC: [u8; 6] = mac(0x00_0002);

/// Which side of the gateway a frame arrives on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// From the upstream router: source MAC is the router's.
    Public,
    /// From a server on the private network: source MAC derives from its address.
    Private,
}

/// A client talking to one resolved target.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Flow {
    pub client: usize,
    pub cport: u16,
    pub proto: u8,
    pub r: Resolved,
}

/// A size from the simple IMIX: 40, 576 and 1500-byte IP packets in the ratio 7:4:1.
#[inline]
pub(crate) fn imix(rng: &mut Rng) -> u16 {
    match rng.below(12) {
        0..=6 => 40,
        7..=10 => 576,
        _ => 1500,
    }
}

/// Shared generator state.
#[derive(Debug)]
pub(crate) struct Core {
    pub rng: Rng,
    pub plan: Plan,
    /// Next IPv4 id of each host (index as in `plan.hosts`).
    ids: Vec<u16>,
    pub pattern: Pattern,
    /// Holds the quoted datagram of an ICMP error while the outer one is written.
    pub scratch: Vec<u8>,
    rr: [usize; 6],
}

/// Round-robin cursors, so every entry gets traffic early in a run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Cursor {
    Tcp = 0,
    Udp = 1,
    Mapped = 2,
    Probe = 3,
    Any = 4,
    Frag = 5,
}

impl Core {
    /// Seeds the ids from the PRNG so different seeds differ from the first packet.
    pub(crate) fn new(plan: Plan, seed: u64) -> Core {
        let mut rng = Rng::new(seed);
        let ids = plan.hosts.iter().map(|_| rng.u32() as u16).collect();
        Core {
            rng,
            plan,
            ids,
            pattern: Pattern::new(),
            scratch: Vec::with_capacity(128),
            rr: [0; 6],
        }
    }

    /// The next IPv4 id of host `h` (ids increment per sender, as most stacks do).
    #[inline]
    pub(crate) fn next_id(&mut self, h: usize) -> u16 {
        match self.ids.get_mut(h) {
            Some(id) => {
                let v = *id;
                *id = v.wrapping_add(1);
                v
            }
            None => 0,
        }
    }

    /// The next index of a round-robin over `len` items.
    #[inline]
    pub(crate) fn next_rr(&mut self, c: Cursor, len: usize) -> usize {
        // `Cursor` has six variants, one per slot of `rr`.
        let slot = &mut self.rr[c as usize];
        let i = if len == 0 { 0 } else { *slot % len };
        *slot = slot.wrapping_add(1);
        i
    }

    /// The next TCP (`tcp`) or UDP target in round-robin order.
    pub(crate) fn next_target(&mut self, c: Cursor, tcp: bool) -> Option<Target> {
        let len = if tcp {
            self.plan.tcp.len()
        } else {
            self.plan.udp.len()
        };
        let i = self.next_rr(c, len);
        if tcp {
            self.plan.tcp.get(i).copied()
        } else {
            self.plan.udp.get(i).copied()
        }
    }

    /// The next target of either protocol, TCP targets first.
    pub(crate) fn next_any_target(&mut self) -> Option<Target> {
        let (nt, nu) = (self.plan.tcp.len(), self.plan.udp.len());
        let i = self.next_rr(Cursor::Any, nt + nu);
        match i.checked_sub(nt) {
            None => self.plan.tcp.get(i).copied(),
            Some(j) => self.plan.udp.get(j).copied(),
        }
    }

    /// A random ephemeral port (the Linux default range).
    #[inline]
    pub(crate) fn ephemeral(&mut self) -> u16 {
        self.rng.range_u16(32768, 60999)
    }

    /// A new flow from a random client to target `t`.
    pub(crate) fn flow(&mut self, t: &Target) -> Option<Flow> {
        let r = self.plan.resolve(t, &mut self.rng)?;
        let client = self.plan.client(&mut self.rng);
        let cport = self.ephemeral();
        Some(Flow {
            client,
            cport,
            proto: t.proto,
            r,
        })
    }

    /// An IPv4 header template from host `h` (its next id) to `dst`.
    #[inline]
    pub(crate) fn ip(&mut self, h: usize, src: u32, dst: u32, proto: u8, ttl: u8, frag: u16) -> Ip {
        let id = self.next_id(h);
        Ip {
            src,
            dst,
            proto,
            ttl,
            id,
            frag,
        }
    }

    /// Clears `buf` and writes the Ethernet header of an IPv4 frame from `src_ip` on `side`.
    #[inline]
    pub(crate) fn start(&self, buf: &mut Vec<u8>, side: Side, src_ip: u32) {
        match side {
            Side::Public => {
                let router = self.plan.ip(self.plan.router);
                build::eth(buf, GW_PUBLIC_MAC, mac(router), ETHERTYPE_IPV4);
            }
            Side::Private => build::eth(buf, GW_PRIVATE_MAC, mac(src_ip), ETHERTYPE_IPV4),
        }
    }

    /// The IP header of a flow packet: inbound (client -> EIP) or reply (server -> client).
    #[inline]
    fn flow_ip(&mut self, f: &Flow, inbound: bool, ttl: u8) -> (Side, Ip, u16, u16) {
        let client_ip = self.plan.ip(f.client);
        if inbound {
            let ip = self.ip(f.client, client_ip, f.r.eip, f.proto, ttl, DF);
            (Side::Public, ip, f.cport, f.r.ext_port)
        } else {
            let ip = self.ip(f.r.server, f.r.int_ip, client_ip, f.proto, ttl, DF);
            (Side::Private, ip, f.r.int_port, f.cport)
        }
    }

    /// A TCP segment of flow `f` with `len` payload bytes; returns the IP length.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn tcp_flow(
        &mut self,
        buf: &mut Vec<u8>,
        f: &Flow,
        inbound: bool,
        seq: u32,
        ack: u32,
        flags: u8,
        mss: Option<u16>,
        len: usize,
        ttl: u8,
    ) -> u16 {
        let mut g = *f;
        g.proto = PROTO_TCP;
        let (side, ip, sport, dport) = self.flow_ip(&g, inbound, ttl);
        self.start(buf, side, ip.src);
        let (payload, psum) = self.pattern.get(len);
        let t = Tcp {
            sport,
            dport,
            seq,
            ack,
            flags,
            mss,
        };
        let n = build::put_tcp(buf, &ip, &t, payload, psum);
        build::pad(buf);
        n
    }

    /// A UDP datagram of flow `f` with `len` payload bytes; returns the IP length.
    #[inline]
    pub(crate) fn udp_flow(
        &mut self,
        buf: &mut Vec<u8>,
        f: &Flow,
        inbound: bool,
        len: usize,
        ttl: u8,
        zero_checksum: bool,
    ) -> u16 {
        let mut g = *f;
        g.proto = PROTO_UDP;
        let (side, ip, sport, dport) = self.flow_ip(&g, inbound, ttl);
        self.start(buf, side, ip.src);
        let (payload, psum) = self.pattern.get(len);
        let n = build::put_udp(buf, &ip, sport, dport, payload, psum, zero_checksum);
        build::pad(buf);
        n
    }

    /// A flow packet of `ip_len` IP bytes in the flow's own protocol (TCP: an ACK with data).
    #[inline]
    pub(crate) fn sized_flow(
        &mut self,
        buf: &mut Vec<u8>,
        f: &Flow,
        inbound: bool,
        ip_len: u16,
        seq: u32,
        ack: u32,
    ) -> u16 {
        if f.proto == PROTO_TCP {
            let len = usize::from(ip_len.saturating_sub(40));
            let flags = if len > 0 { ACK | build::PSH } else { ACK };
            self.tcp_flow(buf, f, inbound, seq, ack, flags, None, len, 64)
        } else {
            let len = usize::from(ip_len.saturating_sub(28));
            self.udp_flow(buf, f, inbound, len, 64, false)
        }
    }
}
