//! ICMP errors: the outer header is translated like any packet of the conversation, and the
//! datagram it quotes in the inverse direction, so that the host it reaches recognises its own
//! packet (RFC 5508 section 4.2, RFC 3022 section 4.3).

use super::flow::Binding;
use super::flowmap::FlowKey;
use super::table::Inbound;
use super::translate::{Direction, Translator};
use super::verdict::{DropReason, Malformed, Outcome, Verdict};
use crate::wire::checksum::{update16, update32};
use crate::wire::header::{l4, write16};
use crate::wire::ipv4::{
    ICMP_CHECKSUM, Ipv4Packet, MIN_HEADER_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP, TCP_CHECKSUM,
    UDP_CHECKSUM, field,
};
use crate::wire::{Ipv4Header, is_icmp_query, read16};

impl Translator<'_> {
    /// An ICMP error: translate the outer header and, in the inverse direction, the datagram
    /// it quotes (RFC 5508 section 4.2 / RFC 3022 section 4.3).
    pub(super) fn icmp_error(
        &mut self,
        mut ip: Ipv4Packet<&mut [u8]>,
        now: u64,
        mut out: Outcome,
    ) -> Outcome {
        out.notes.icmp_error = true;
        let outer_src = out.before.src;
        let outer_dst = out.before.dst;
        let Some(q) = Quoted::parse(ip.payload()) else {
            out.verdict = Verdict::Drop(DropReason::Malformed);
            out.notes.malformed = Some(Malformed::IcmpQuoteShort);
            return out;
        };
        let dir = Direction::of(self.table.is_eip(outer_dst));
        // Inbound: the quoted datagram is one the gateway sent out from (EIP, port); outbound:
        // one it delivered to the server that now complains. Either way its flow is the one
        // the quote's reply would find.
        let binding = match dir {
            Direction::Inbound => {
                let key = FlowKey::inbound(q.proto, q.dst, q.dport, q.src, q.sport);
                self.flows.touch(key, now, u64::MAX).or_else(|| {
                    match self.table.lookup(q.src, q.proto, q.sport) {
                        Inbound::Hit(m) => Some(Binding::new(
                            m.entry,
                            m.kind,
                            (q.src, q.sport),
                            (m.ip, m.port),
                        )),
                        _ => None,
                    }
                })
            }
            Direction::Outbound => {
                let key = FlowKey::outbound(q.proto, q.dst, q.dport, q.src, q.sport);
                self.flows.touch(key, now, u64::MAX).or_else(|| {
                    let m = self.table.reverse(q.dst, q.proto, q.dport)?;
                    Some(Binding::new(
                        m.entry,
                        m.kind,
                        (m.ip, m.port),
                        (q.dst, q.dport),
                    ))
                })
            }
        };
        let Some(b) = binding else {
            out.verdict = self.unbound_verdict(dir);
            return out;
        };
        if !self.config.keep_ttl && ip.ttl() <= 1 {
            out.verdict = Verdict::Drop(DropReason::TtlExpired);
            return out;
        }
        let payload = ip.payload_mut();
        match dir {
            Direction::Inbound => {
                q.rewrite(payload, dir, b.int_ip, b.int_port);
                ip.set_dst(b.int_ip);
                out.after.dst = b.int_ip;
            }
            Direction::Outbound => {
                q.rewrite(payload, dir, b.ext_ip, b.ext_port);
                if outer_src == q.dst {
                    ip.set_src(b.ext_ip);
                    out.after.src = b.ext_ip;
                }
            }
        }
        if !self.config.keep_ttl {
            ip.decrement_ttl();
        }
        out.verdict = Self::bound_verdict(&b, dir);
        out
    }
}

/// The datagram quoted in an ICMP error, located within the ICMP message.
#[derive(Debug, Clone, Copy)]
struct Quoted {
    ip_at: usize,
    l4_at: usize,
    proto: u8,
    src: u32,
    dst: u32,
    sport: u16,
    dport: u16,
    has_ports: bool,
}

impl Quoted {
    /// Finds the quoted header after the 8-byte ICMP header; needs its whole IP header and,
    /// for TCP/UDP, at least the two ports (RFC 792 promises 8 bytes).
    fn parse(icmp: &[u8]) -> Option<Quoted> {
        let ip_at = 8;
        let ip = icmp.get(ip_at..)?;
        let h = Ipv4Header::new(ip.first_chunk::<MIN_HEADER_LEN>()?);
        let ihl = h.header_len();
        if h.version() != 4 || ihl < MIN_HEADER_LEN {
            return None;
        }
        let (proto, src, dst) = (h.protocol(), h.src(), h.dst());
        let quoted = ip.get(ihl..)?;
        let (sport, dport, has_ports) = match proto {
            PROTO_TCP | PROTO_UDP => (
                read16(quoted, l4::SRC_PORT)?,
                read16(quoted, l4::DST_PORT)?,
                true,
            ),
            PROTO_ICMP if quoted.first().is_some_and(|&t| is_icmp_query(t)) => {
                let id = read16(quoted, l4::ICMP_IDENT)?;
                (id, id, true)
            }
            _ => (0, 0, false),
        };
        Some(Quoted {
            ip_at,
            l4_at: ip_at + ihl,
            proto,
            src,
            dst,
            sport,
            dport,
            has_ports,
        })
    }

    /// Rewrites the quoted source (inbound: the error comes back to a server's public
    /// address) or destination, fixing the quoted IP and L4 checksums and the ICMP checksum.
    fn rewrite(&self, icmp: &mut [u8], dir: Direction, new_ip: u32, new_port: u16) {
        let mut icmp_sum = read16(icmp, ICMP_CHECKSUM).unwrap_or(0);
        let (addr_at, old_ip, port_at, old_port) = match dir {
            Direction::Inbound => (
                self.ip_at + field::SRC,
                self.src,
                self.l4_at + l4::SRC_PORT,
                self.sport,
            ),
            Direction::Outbound => (
                self.ip_at + field::DST,
                self.dst,
                self.l4_at + l4::DST_PORT,
                self.dport,
            ),
        };
        // Quoted IP header: the address and its header checksum.
        icmp[addr_at..addr_at + 4].copy_from_slice(&new_ip.to_be_bytes());
        icmp_sum = update32(icmp_sum, old_ip, new_ip);
        let ipsum_at = self.ip_at + field::CHECKSUM;
        let old_ipsum = read16(icmp, ipsum_at).unwrap_or(0);
        let new_ipsum = update32(old_ipsum, old_ip, new_ip);
        write16(icmp, ipsum_at, new_ipsum);
        icmp_sum = update16(icmp_sum, old_ipsum, new_ipsum);
        if !self.has_ports {
            write16(icmp, ICMP_CHECKSUM, icmp_sum);
            return;
        }
        // For a quoted ICMP query the "port" is the identifier at offset 4, and its checksum
        // does not cover addresses.
        let (port_at, l4_csum_at, pseudo) = match self.proto {
            PROTO_ICMP => (
                self.l4_at + l4::ICMP_IDENT,
                self.l4_at + ICMP_CHECKSUM,
                false,
            ),
            PROTO_TCP => (port_at, self.l4_at + TCP_CHECKSUM, true),
            _ => (port_at, self.l4_at + UDP_CHECKSUM, true),
        };
        if old_port != new_port {
            write16(icmp, port_at, new_port);
            icmp_sum = update16(icmp_sum, old_port, new_port);
        }
        // The quoted L4 checksum is present only if the quote is long enough.
        if let Some(old_l4) = read16(icmp, l4_csum_at)
            && !(self.proto == PROTO_UDP && old_l4 == 0)
        {
            let mut l4 = old_l4;
            if pseudo {
                l4 = update32(l4, old_ip, new_ip);
            }
            l4 = update16(l4, old_port, new_port);
            if self.proto == PROTO_UDP && l4 == 0 {
                l4 = 0xffff;
            }
            write16(icmp, l4_csum_at, l4);
            icmp_sum = update16(icmp_sum, old_l4, l4);
        }
        write16(icmp, ICMP_CHECKSUM, icmp_sum);
    }
}
