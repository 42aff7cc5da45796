//! Building small, valid IPv4 packets: probes for `explain` and hand-made test input.

use super::checksum::{checksum, fold, pseudo_header_sum, sum};
use super::ipv4::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// Appends an IPv4 packet (20-byte header, DF set) carrying `l4` to `buf`, and fixes the
/// transport checksum for TCP and UDP (pseudo-header included) and ICMP.
pub fn ipv4(buf: &mut Vec<u8>, src: u32, dst: u32, proto: u8, ttl: u8, ident: u16, l4: &[u8]) {
    let start = buf.len();
    let total = (20 + l4.len()).min(usize::from(u16::MAX)) as u16;
    buf.extend_from_slice(&[0x45, 0]);
    buf.extend_from_slice(&total.to_be_bytes());
    buf.extend_from_slice(&ident.to_be_bytes());
    buf.extend_from_slice(&[0x40, 0, ttl, proto, 0, 0]);
    buf.extend_from_slice(&src.to_be_bytes());
    buf.extend_from_slice(&dst.to_be_bytes());
    let c = checksum(&buf[start..start + 20]);
    buf[start + 10..start + 12].copy_from_slice(&c.to_be_bytes());
    let l4_start = buf.len();
    buf.extend_from_slice(&l4[..usize::from(total) - 20]);
    let seg = &mut buf[l4_start..];
    let at = match proto {
        PROTO_TCP if seg.len() >= 20 => 16,
        PROTO_UDP if seg.len() >= 8 => 6,
        PROTO_ICMP if seg.len() >= 4 => 2,
        _ => return,
    };
    seg[at] = 0;
    seg[at + 1] = 0;
    let pseudo = if proto == PROTO_ICMP {
        0
    } else {
        pseudo_header_sum(src, dst, proto, seg.len() as u16)
    };
    let mut c = !fold(pseudo + sum(seg));
    if proto == PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    seg[at..at + 2].copy_from_slice(&c.to_be_bytes());
}

/// A 20-byte TCP header (ACK set, checksum left for [`ipv4`]) followed by `payload`.
pub fn tcp(sport: u16, dport: u16, flags: u8, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(20 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    s.extend_from_slice(payload);
    s
}

/// A UDP header (checksum left for [`ipv4`]) followed by `payload`.
pub fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut s = Vec::with_capacity(8 + payload.len());
    s.extend_from_slice(&sport.to_be_bytes());
    s.extend_from_slice(&dport.to_be_bytes());
    s.extend_from_slice(&((8 + payload.len()).min(usize::from(u16::MAX)) as u16).to_be_bytes());
    s.extend_from_slice(&[0, 0]);
    s.extend_from_slice(payload);
    s
}

/// An ICMP echo request with identifier `id` and sequence number `seq`.
pub fn icmp_echo(id: u16, seq: u16) -> Vec<u8> {
    let mut s = vec![8, 0, 0, 0];
    s.extend_from_slice(&id.to_be_bytes());
    s.extend_from_slice(&seq.to_be_bytes());
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_packets_verify() {
        let mut b = Vec::new();
        ipv4(
            &mut b,
            0xc633_6407,
            0xcb00_714f,
            PROTO_UDP,
            64,
            1,
            &udp(5000, 53, b"abc"),
        );
        assert_eq!(fold(sum(&b[..20])), 0xffff);
        assert_eq!(
            fold(pseudo_header_sum(0xc633_6407, 0xcb00_714f, 17, 11) + sum(&b[20..])),
            0xffff
        );
    }
}
