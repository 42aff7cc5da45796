//! Building valid IPv4 packets into a reused buffer: probes for `explain`, the traffic
//! generator's frames, and benchmark input.
//!
//! Every header is assembled in a fixed-size array and appended with `extend_from_slice`, so
//! nothing here indexes the output buffer and nothing can panic. Payload sums are passed in
//! (`psum`), so a caller that reuses a payload sums it once.

use super::checksum::{checksum, fold, pseudo_header_sum, sum};
use super::ipv4::{PROTO_TCP, PROTO_UDP};

/// The IPv4 header fields a built packet varies.
#[derive(Debug, Clone, Copy)]
pub struct Ip {
    pub src: u32,
    pub dst: u32,
    pub proto: u8,
    pub ttl: u8,
    pub id: u16,
    /// Flags and fragment offset word (DF, MF, offset in 8-byte units).
    pub frag: u16,
}

/// An IPv4 header (no options) with its checksum.
#[inline]
pub fn ipv4_header(ip: &Ip, total_len: u16) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[0] = 0x45;
    h[2..4].copy_from_slice(&total_len.to_be_bytes());
    h[4..6].copy_from_slice(&ip.id.to_be_bytes());
    h[6..8].copy_from_slice(&ip.frag.to_be_bytes());
    h[8] = ip.ttl;
    h[9] = ip.proto;
    h[12..16].copy_from_slice(&ip.src.to_be_bytes());
    h[16..20].copy_from_slice(&ip.dst.to_be_bytes());
    let c = checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// Appends an IPv4 datagram made of `parts`; returns its total length.
#[inline]
pub fn put_ipv4(buf: &mut Vec<u8>, ip: &Ip, parts: &[&[u8]]) -> u16 {
    let body: usize = parts.iter().map(|p| p.len()).sum();
    let total = u16::try_from(20 + body).unwrap_or(u16::MAX);
    buf.extend_from_slice(&ipv4_header(ip, total));
    for p in parts {
        buf.extend_from_slice(p);
    }
    total
}

/// The TCP header fields a built segment varies.
#[derive(Debug, Clone, Copy)]
pub struct Tcp {
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    /// Adds an MSS option (SYN and SYN-ACK).
    pub mss: Option<u16>,
}

/// Appends an IPv4/TCP segment carrying `payload` (whose sum is `psum`); returns the IP length.
#[inline]
pub fn put_tcp(buf: &mut Vec<u8>, ip: &Ip, t: &Tcp, payload: &[u8], psum: u64) -> u16 {
    let mut h = [0u8; 24];
    let hlen: usize = if t.mss.is_some() { 24 } else { 20 };
    h[0..2].copy_from_slice(&t.sport.to_be_bytes());
    h[2..4].copy_from_slice(&t.dport.to_be_bytes());
    h[4..8].copy_from_slice(&t.seq.to_be_bytes());
    h[8..12].copy_from_slice(&t.ack.to_be_bytes());
    h[12] = ((hlen / 4) as u8) << 4;
    h[13] = t.flags;
    h[14..16].copy_from_slice(&64240u16.to_be_bytes());
    if let Some(mss) = t.mss {
        h[20] = 2;
        h[21] = 4;
        h[22..24].copy_from_slice(&mss.to_be_bytes());
    }
    let l4 = u16::try_from(hlen + payload.len()).unwrap_or(u16::MAX);
    // `hlen` is 20 or 24, within the array, so `get` never falls back.
    let c = !fold(
        pseudo_header_sum(ip.src, ip.dst, PROTO_TCP, l4) + sum(h.get(..hlen).unwrap_or(&h)) + psum,
    );
    h[16..18].copy_from_slice(&c.to_be_bytes());
    let hdr = h.get(..hlen).unwrap_or(&h);
    put_ipv4(buf, ip, &[hdr, payload])
}

/// The 8-byte UDP header of a datagram of `payload_len` bytes whose payload sums to `psum`.
///
/// `zero_checksum` writes 0 ("no checksum", legal over IPv4) instead of the real value.
#[inline]
pub fn udp_header(
    ip: &Ip,
    sport: u16,
    dport: u16,
    payload_len: usize,
    psum: u64,
    zero_checksum: bool,
) -> [u8; 8] {
    let l4 = u16::try_from(8 + payload_len).unwrap_or(u16::MAX);
    let mut h = [0u8; 8];
    h[0..2].copy_from_slice(&sport.to_be_bytes());
    h[2..4].copy_from_slice(&dport.to_be_bytes());
    h[4..6].copy_from_slice(&l4.to_be_bytes());
    let mut c = !fold(pseudo_header_sum(ip.src, ip.dst, PROTO_UDP, l4) + sum(&h) + psum);
    // A computed 0 is sent as all ones: 0 on the wire means "no checksum" (RFC 768).
    if c == 0 {
        c = 0xffff;
    }
    if zero_checksum {
        c = 0;
    }
    h[6..8].copy_from_slice(&c.to_be_bytes());
    h
}

/// Appends an IPv4/UDP datagram; returns the IP length.
#[inline]
pub fn put_udp(
    buf: &mut Vec<u8>,
    ip: &Ip,
    sport: u16,
    dport: u16,
    payload: &[u8],
    psum: u64,
    zero_checksum: bool,
) -> u16 {
    let h = udp_header(ip, sport, dport, payload.len(), psum, zero_checksum);
    put_ipv4(buf, ip, &[&h, payload])
}

/// Appends an IPv4/ICMP message (`rest` is the 4 bytes after the checksum); returns the IP length.
#[inline]
pub fn put_icmp(
    buf: &mut Vec<u8>,
    ip: &Ip,
    kind: u8,
    code: u8,
    rest: [u8; 4],
    data: &[u8],
    dsum: u64,
) -> u16 {
    let mut h = [kind, code, 0, 0, rest[0], rest[1], rest[2], rest[3]];
    let c = !fold(sum(&h) + dsum);
    h[2..4].copy_from_slice(&c.to_be_bytes());
    put_ipv4(buf, ip, &[&h, data])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_verify() {
        let ip = Ip {
            src: 0xc633_6407,
            dst: 0xcb00_714f,
            proto: PROTO_UDP,
            ttl: 64,
            id: 1,
            frag: 0,
        };
        let mut b = Vec::new();
        let payload = b"abc";
        let n = put_udp(&mut b, &ip, 5000, 53, payload, sum(payload), false);
        assert_eq!(usize::from(n), b.len());
        assert_eq!(fold(sum(&b[..20])), 0xffff);
        let pseudo = pseudo_header_sum(ip.src, ip.dst, PROTO_UDP, (b.len() - 20) as u16);
        assert_eq!(fold(pseudo + sum(&b[20..])), 0xffff);
    }
}
