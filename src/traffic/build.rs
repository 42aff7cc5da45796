//! Frame writers: append Ethernet, IPv4/IPv6, TCP, UDP, ICMP and ARP headers to a reused buffer.
//!
//! Every header is assembled in a fixed-size array and appended with `extend_from_slice`,
//! so nothing here indexes the output buffer and nothing can panic. Checksums use
//! `crate::wire::checksum`; payload sums come precomputed from [`Pattern`].

pub(crate) use crate::wire::build::{Ip, Tcp, put_icmp, put_ipv4, put_tcp, put_udp, udp_header};
use crate::wire::checksum::{fold, sum};

/// Ethernet header length.
pub(crate) const ETH_LEN: usize = 14;
/// The shortest Ethernet frame without its FCS: shorter frames are zero-padded to it.
pub(crate) const MIN_FRAME: usize = 60;
/// Bytes of payload the pattern can supply: enough for the largest fragmented datagram.
pub(crate) const PATTERN_LEN: usize = 4096;

pub(crate) use crate::wire::link::ETHERTYPE_IPV4;
/// EtherType of ARP.
pub(crate) const ETHERTYPE_ARP: u16 = 0x0806;
/// EtherType of IPv6.
pub(crate) const ETHERTYPE_IPV6: u16 = 0x86DD;

/// IP protocol numbers.
pub(crate) use crate::wire::ipv4::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};

/// TCP flags.
pub(crate) const FIN: u8 = 0x01;
pub(crate) const SYN: u8 = 0x02;
pub(crate) const PSH: u8 = 0x08;
pub(crate) const ACK: u8 = 0x10;

/// IPv4 "don't fragment" and "more fragments" bits of the flags/offset word.
pub(crate) const DF: u16 = 0x4000;
pub(crate) const MF: u16 = 0x2000;

/// A locally administered MAC in 02:00:00:xx:xx:xx whose last three bytes are `low24`.
#[inline]
pub(crate) const fn mac(low24: u32) -> [u8; 6] {
    let b = low24.to_be_bytes();
    [0x02, 0x00, 0x00, b[1], b[2], b[3]]
}

/// The payload source: one fixed byte pattern and the unfolded checksum sum of each prefix.
///
/// Precomputing the prefix sums keeps per-packet checksum work to the headers, which is what
/// lets the benchmark mixes reach tens of millions of frames per second.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    bytes: Vec<u8>,
    sums: Vec<u64>,
}

impl Pattern {
    /// Printable text, so a payload in a hex dump is recognisably synthetic.
    pub(crate) fn new() -> Pattern {
        const TEXT: &[u8] = b"dnatsim synthetic payload 0123456789 abcdefghijklmnopqrstuvwxyz ";
        let bytes: Vec<u8> = TEXT.iter().copied().cycle().take(PATTERN_LEN).collect();
        let mut sums = Vec::with_capacity(PATTERN_LEN + 1);
        sums.push(0);
        // Prefix sums from 2-byte steps of the shared `sum`: an odd prefix adds its last byte as
        // a zero-padded word, exactly as `sum` over the whole prefix would.
        let mut even = 0u64;
        for pair in bytes.chunks(2) {
            if let [first, _] = pair {
                sums.push(even + sum(&[*first]));
            }
            even += sum(pair);
            sums.push(even);
        }
        Pattern { bytes, sums }
    }

    /// The first `len` pattern bytes and their sum (empty if `len` exceeds [`PATTERN_LEN`]).
    #[inline]
    pub(crate) fn get(&self, len: usize) -> (&[u8], u64) {
        match (self.bytes.get(..len), self.sums.get(len)) {
            (Some(b), Some(&s)) => (b, s),
            _ => (&[], 0),
        }
    }

    /// Bytes `from..to` of the pattern (empty when out of range), for later fragments.
    #[inline]
    pub(crate) fn slice(&self, from: usize, to: usize) -> &[u8] {
        self.bytes.get(from..to).unwrap_or(&[])
    }
}

/// Starts a frame: clears `buf` and writes the Ethernet header.
#[inline]
pub(crate) fn eth(buf: &mut Vec<u8>, dst: [u8; 6], src: [u8; 6], ethertype: u16) {
    buf.clear();
    buf.extend_from_slice(&dst);
    buf.extend_from_slice(&src);
    buf.extend_from_slice(&ethertype.to_be_bytes());
}

/// Pads a frame to the Ethernet minimum, as a capture on the receiving side shows it.
#[inline]
pub(crate) fn pad(buf: &mut Vec<u8>) {
    if buf.len() < MIN_FRAME {
        buf.resize(MIN_FRAME, 0);
    }
}

/// Appends an IPv6/UDP datagram (hop limit 64); returns the IPv6 length (header included).
pub(crate) fn put_ipv6_udp(
    buf: &mut Vec<u8>,
    src: [u8; 16],
    dst: [u8; 16],
    sport: u16,
    dport: u16,
    payload: &[u8],
    psum: u64,
) -> u16 {
    let l4 = u16::try_from(8 + payload.len()).unwrap_or(u16::MAX);
    let mut h = [0u8; 40];
    h[0] = 0x60;
    h[4..6].copy_from_slice(&l4.to_be_bytes());
    h[6] = PROTO_UDP;
    h[7] = 64;
    h[8..24].copy_from_slice(&src);
    h[24..40].copy_from_slice(&dst);
    let mut u = [0u8; 8];
    u[0..2].copy_from_slice(&sport.to_be_bytes());
    u[2..4].copy_from_slice(&dport.to_be_bytes());
    u[4..6].copy_from_slice(&l4.to_be_bytes());
    // The IPv6 pseudo-header (RFC 8200 8.1): addresses, upper-layer length, next header.
    let pseudo = sum(&src) + sum(&dst) + u64::from(l4) + u64::from(PROTO_UDP);
    let mut c = !fold(pseudo + sum(&u) + psum);
    if c == 0 {
        c = 0xffff;
    }
    u[6..8].copy_from_slice(&c.to_be_bytes());
    buf.extend_from_slice(&h);
    buf.extend_from_slice(&u);
    buf.extend_from_slice(payload);
    40u16.saturating_add(l4)
}

/// Appends an ARP request body: who has `target`, tell `sender` (at `sender_mac`).
pub(crate) fn put_arp_request(buf: &mut Vec<u8>, sender_mac: [u8; 6], sender: u32, target: u32) {
    buf.extend_from_slice(&[0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01]);
    buf.extend_from_slice(&sender_mac);
    buf.extend_from_slice(&sender.to_be_bytes());
    buf.extend_from_slice(&[0u8; 6]);
    buf.extend_from_slice(&target.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_sums_match_the_shared_sum() {
        let p = Pattern::new();
        for len in [
            0usize,
            1,
            2,
            3,
            7,
            8,
            9,
            536,
            1460,
            1461,
            PATTERN_LEN - 1,
            PATTERN_LEN,
        ] {
            let (b, s) = p.get(len);
            assert_eq!(b.len(), len);
            assert_eq!(fold(s), fold(sum(b)), "len {len}");
        }
        assert!(p.get(PATTERN_LEN + 1).0.is_empty());
    }
}
