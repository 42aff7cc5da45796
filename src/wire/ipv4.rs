//! A checked view over an IPv4 header, and the few transport-layer fields NAT touches.

use super::checksum;
use super::header::Ipv4Header;
use thiserror::Error;

/// Byte offsets of IPv4 header fields (RFC 791).
pub mod field {
    /// Version (high nibble) and IHL (low nibble).
    pub const VER_IHL: usize = 0;
    /// Total length.
    pub const LENGTH: usize = 2;
    /// Identification.
    pub const IDENT: usize = 4;
    /// Flags (3 bits) and fragment offset (13 bits).
    pub const FLG_OFF: usize = 6;
    /// Time to live.
    pub const TTL: usize = 8;
    /// Protocol.
    pub const PROTOCOL: usize = 9;
    /// Header checksum.
    pub const CHECKSUM: usize = 10;
    /// Source address.
    pub const SRC: usize = 12;
    /// Destination address.
    pub const DST: usize = 16;
}

/// IP protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// IP protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// Offset of the checksum in a TCP header.
pub const TCP_CHECKSUM: usize = 16;
/// Offset of the checksum in a UDP header.
pub const UDP_CHECKSUM: usize = 6;
/// Offset of the checksum in an ICMP header.
pub const ICMP_CHECKSUM: usize = 2;
/// The smallest IPv4 header.
pub const MIN_HEADER_LEN: usize = 20;

/// The more-fragments flag in the flags-and-offset word.
pub(crate) const FLAG_MF: u16 = 0x2000;
/// The fragment offset in the flags-and-offset word.
pub(crate) const OFFSET_MASK: u16 = 0x1fff;

/// Why bytes are not a usable IPv4 header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Ipv4Error {
    /// Fewer than 20 bytes were captured.
    #[error("IPv4 header: only {len} bytes captured, a header needs 20")]
    HeaderTruncated {
        /// Bytes available.
        len: usize,
    },
    /// The version nibble is not 4.
    #[error("IPv4 header: version is {version}, not 4")]
    NotVersion4 {
        /// The version found.
        version: u8,
    },
    /// IHL below 5 words.
    #[error("IPv4 header: header length {header_len} is below the minimum of 20")]
    BadHeaderLength {
        /// IHL times four.
        header_len: usize,
    },
    /// IHL reaches past the captured bytes.
    #[error("IPv4 header: header length {header_len} is beyond the {len} bytes captured")]
    HeaderBeyondCapture {
        /// IHL times four.
        header_len: usize,
        /// Bytes available.
        len: usize,
    },
    /// Total length below the header length.
    #[error("IPv4 header: total length {total_len} is smaller than header length {header_len}")]
    TotalLengthTooSmall {
        /// The total length field.
        total_len: usize,
        /// IHL times four.
        header_len: usize,
    },
    /// Total length beyond what the frame carried on the wire.
    #[error("IPv4 header: total length {total_len} is beyond the {len} bytes of the frame")]
    TotalLengthBeyondFrame {
        /// The total length field.
        total_len: usize,
        /// Bytes of IP the frame had on the wire.
        len: usize,
    },
    /// An option's length runs past the header or is below 2.
    #[error("IPv4 header: option at header offset {offset} overruns the header")]
    BadOption {
        /// Offset of the option within the header.
        offset: usize,
    },
}

/// A view over an IPv4 packet whose header has been checked.
///
/// After [`Ipv4Packet::new_checked`] succeeds, no accessor panics: the whole header lies within
/// the buffer. The payload may be shorter than the total length says when the capture was cut
/// by a snap length; [`Ipv4Packet::is_snapped`] tells.
#[derive(Debug)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
    header_len: usize,
    total_len: usize,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Checks `buffer` (the captured bytes from the IP header on) against `wire_len`, the bytes
    /// of IP the frame had before any snap length cut it.
    pub fn new_checked(buffer: T, wire_len: usize) -> Result<Self, Ipv4Error> {
        let b = buffer.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(Ipv4Error::HeaderTruncated { len: b.len() });
        }
        let version = b[field::VER_IHL] >> 4;
        if version != 4 {
            return Err(Ipv4Error::NotVersion4 { version });
        }
        let header_len = usize::from(b[field::VER_IHL] & 0x0f) * 4;
        if header_len < MIN_HEADER_LEN {
            return Err(Ipv4Error::BadHeaderLength { header_len });
        }
        if header_len > b.len() {
            return Err(Ipv4Error::HeaderBeyondCapture {
                header_len,
                len: b.len(),
            });
        }
        let total_len = usize::from(u16::from_be_bytes([b[field::LENGTH], b[field::LENGTH + 1]]));
        if total_len < header_len {
            return Err(Ipv4Error::TotalLengthTooSmall {
                total_len,
                header_len,
            });
        }
        let wire_len = wire_len.max(b.len());
        if total_len > wire_len {
            return Err(Ipv4Error::TotalLengthBeyondFrame {
                total_len,
                len: wire_len,
            });
        }
        if header_len > MIN_HEADER_LEN {
            check_options(&b[MIN_HEADER_LEN..header_len])?;
        }
        Ok(Ipv4Packet {
            buffer,
            header_len,
            total_len,
        })
    }

    #[inline]
    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    /// The fixed part of the header, through which every field is read.
    #[inline]
    fn header(&self) -> Ipv4Header<&[u8; MIN_HEADER_LEN]> {
        // `new_checked` found at least `MIN_HEADER_LEN` bytes of header.
        let fixed = self
            .b()
            .first_chunk()
            .expect("a checked header holds the fixed 20 bytes");
        Ipv4Header::new(fixed)
    }

    /// Header length in bytes.
    #[inline]
    pub fn header_len(&self) -> usize {
        self.header_len
    }

    /// The total length field.
    #[inline]
    pub fn total_len(&self) -> usize {
        self.total_len
    }

    /// True when the capture holds fewer bytes than the total length (snap length).
    #[inline]
    pub fn is_snapped(&self) -> bool {
        self.b().len() < self.total_len
    }

    /// The identification field.
    #[inline]
    pub fn ident(&self) -> u16 {
        self.header().ident()
    }

    /// Time to live.
    #[inline]
    pub fn ttl(&self) -> u8 {
        self.header().ttl()
    }

    /// Protocol number.
    #[inline]
    pub fn protocol(&self) -> u8 {
        self.header().protocol()
    }

    /// The header checksum field.
    #[inline]
    pub fn checksum(&self) -> u16 {
        self.header().checksum()
    }

    /// Source address as a host-order integer.
    #[inline]
    pub fn src(&self) -> u32 {
        self.header().src()
    }

    /// Destination address as a host-order integer.
    #[inline]
    pub fn dst(&self) -> u32 {
        self.header().dst()
    }

    /// Fragment offset in 8-byte units.
    #[inline]
    pub fn frag_offset(&self) -> u16 {
        self.header().frag_offset()
    }

    /// The more-fragments flag.
    #[inline]
    pub fn more_frags(&self) -> bool {
        self.header().more_frags()
    }

    /// True for any fragment of a fragmented datagram (first, middle or last).
    #[inline]
    pub fn is_fragment(&self) -> bool {
        self.header().is_fragment()
    }

    /// True when the header checksum verifies.
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        checksum::is_all_ones(checksum::sum_ne(&self.b()[..self.header_len]))
    }

    /// The captured payload bytes (up to the total length; fewer when snapped).
    #[inline]
    pub fn payload(&self) -> &[u8] {
        let b = self.b();
        &b[self.header_len..self.total_len.min(b.len())]
    }

    /// Consumes the view, returning the buffer.
    pub fn into_inner(self) -> T {
        self.buffer
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    #[inline]
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }

    /// The fixed part of the header, writable.
    #[inline]
    fn header_mut(&mut self) -> Ipv4Header<&mut [u8; MIN_HEADER_LEN]> {
        Ipv4Header::new(self.split_mut().0)
    }

    /// Rewrites the source address, updating the header checksum incrementally.
    #[inline]
    pub fn set_src(&mut self, new: u32) {
        self.header_mut().set_src(new);
    }

    /// Rewrites the destination address, updating the header checksum incrementally.
    #[inline]
    pub fn set_dst(&mut self, new: u32) {
        self.header_mut().set_dst(new);
    }

    /// The fixed 20-byte header and the captured payload, writable at once.
    #[inline]
    pub fn split_mut(&mut self) -> (&mut [u8; MIN_HEADER_LEN], &mut [u8]) {
        let (start, total) = (self.header_len, self.total_len);
        let b = self.bm();
        let end = total.min(b.len());
        let (header, payload) = b[..end].split_at_mut(start);
        // `new_checked` found at least `MIN_HEADER_LEN` bytes of header.
        let fixed = header
            .first_chunk_mut::<MIN_HEADER_LEN>()
            .expect("a checked header holds the fixed 20 bytes");
        (fixed, payload)
    }

    /// Decrements the TTL by one, updating the header checksum incrementally.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        self.header_mut().decrement_ttl();
    }

    /// The captured payload, writable.
    #[inline]
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (start, total) = (self.header_len, self.total_len);
        let b = self.bm();
        let end = total.min(b.len());
        &mut b[start..end]
    }
}

/// Rewrites the destination (`dst`) or source address of the fixed header `h` to `new` and,
/// when asked, decrements the TTL, with one incremental update of the header checksum over
/// every changed word (RFC 1624 eqn. 3, on words as they lie in memory: like the sum, the
/// update is byte-order independent). `addr_delta` is the address change,
/// `checksum::delta32(old, new)` of the addresses in memory order, which the caller holds
/// already (a flow computes it once).
#[inline(always)]
pub fn rewrite_header_addr(
    h: &mut [u8; MIN_HEADER_LEN],
    dst: bool,
    new: u32,
    addr_delta: u64,
    decrement_ttl: bool,
) {
    let at = if dst { field::DST } else { field::SRC };
    debug_assert_eq!(
        addr_delta,
        checksum::delta32(
            u32::from_ne_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]),
            new.to_be()
        ),
        "the delta of this very change"
    );
    let mut header = addr_delta;
    if decrement_ttl {
        // Taking one from the TTL byte changes its word w to w - d, d = [1, 0] in memory
        // order, so ~w + (w - d) is the constant ~d whatever the TTL, as long as it is not 0
        // (callers drop a TTL of 0 or 1 before they route).
        debug_assert!(h[field::TTL] > 0, "a TTL of 0 is never decremented");
        header += u64::from(!u16::from_ne_bytes([1, 0]));
        h[field::TTL] = h[field::TTL].wrapping_sub(1);
    }
    let hc = u16::from_ne_bytes([h[field::CHECKSUM], h[field::CHECKSUM + 1]]);
    h[at..at + 4].copy_from_slice(&new.to_be_bytes());
    let sum = checksum::apply_delta(hc, header);
    h[field::CHECKSUM..field::CHECKSUM + 2].copy_from_slice(&sum.to_ne_bytes());
}

/// The one's-complement sums of a fixed header `h` in the machine's byte order, not folded:
/// of the whole header (all ones when its checksum verifies) and of its two addresses alone,
/// the part a TCP/UDP pseudo-header shares with it.
#[inline(always)]
pub fn header_sums_ne(h: &[u8; MIN_HEADER_LEN]) -> (u64, u64) {
    let halves = |w: u64| (w & 0xffff_ffff) + (w >> 32);
    let word = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&h[at..at + 8]);
        u64::from_ne_bytes(b)
    };
    let addresses = halves(word(field::SRC));
    let rest = halves(word(0)) + u64::from(u32::from_ne_bytes([h[8], h[9], h[10], h[11]]));
    (rest + addresses, addresses)
}

/// Walks the option TLVs; RFC 791: EOL and NOP are one byte, every other option has a length
/// of at least 2 that must stay inside the header.
fn check_options(opts: &[u8]) -> Result<(), Ipv4Error> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            0 => return Ok(()),
            1 => i += 1,
            _ => {
                let len = opts.get(i + 1).copied().map(usize::from);
                match len {
                    Some(l) if l >= 2 && i + l <= opts.len() => i += l,
                    _ => {
                        return Err(Ipv4Error::BadOption {
                            offset: MIN_HEADER_LEN + i,
                        });
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // A 20-byte header: 192.0.2.1 -> 203.0.113.79, TCP, TTL 64, id 0x1c46, DF.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 0, 2, 1, 203,
        0, 113, 79,
    ];

    fn with_sum() -> Vec<u8> {
        let mut h = HDR.to_vec();
        let c = checksum::checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.resize(40, 0);
        h
    }

    #[test]
    fn accessors_and_checksum() {
        let p = Ipv4Packet::new_checked(with_sum(), 40).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 40);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.protocol(), PROTO_TCP);
        assert_eq!(p.dst(), 0xcb00_714f);
        assert!(p.verify_checksum());
        assert!(!p.is_fragment());
        assert!(!p.is_snapped());
    }

    #[test]
    fn rewrite_keeps_checksum_valid() {
        let mut p = Ipv4Packet::new_checked(with_sum(), 40).unwrap();
        p.set_dst(0xc0a8_0104);
        p.decrement_ttl();
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
        let b = p.into_inner();
        let mut recomputed = b[..20].to_vec();
        recomputed[10] = 0;
        recomputed[11] = 0;
        assert_eq!(
            checksum::checksum(&recomputed),
            u16::from_be_bytes([b[10], b[11]])
        );
    }

    #[test]
    fn rejects_malformed_headers() {
        let h = with_sum();
        assert_eq!(
            Ipv4Packet::new_checked(&h[..19], 19).unwrap_err(),
            Ipv4Error::HeaderTruncated { len: 19 }
        );
        let mut bad = h.clone();
        bad[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..], 40).unwrap_err(),
            Ipv4Error::BadHeaderLength { header_len: 16 }
        );
        bad[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&bad[..], 40).unwrap_err(),
            Ipv4Error::HeaderBeyondCapture {
                header_len: 60,
                len: 40
            }
        );
        let mut long = h.clone();
        long[3] = 41;
        assert_eq!(
            Ipv4Packet::new_checked(&long[..], 40).unwrap_err(),
            Ipv4Error::TotalLengthBeyondFrame {
                total_len: 41,
                len: 40
            }
        );
        // Snapped: 40 bytes on the wire, 30 captured.
        assert!(Ipv4Packet::new_checked(&h[..30], 40).unwrap().is_snapped());
        let mut opts = h.clone();
        opts[0] = 0x46;
        opts[20] = 7; // record route, length 9 > 4 bytes left
        opts[21] = 9;
        assert_eq!(
            Ipv4Packet::new_checked(&opts[..], 40).unwrap_err(),
            Ipv4Error::BadOption { offset: 20 }
        );
        let mut small = h;
        small[3] = 16;
        assert_eq!(
            Ipv4Packet::new_checked(&small[..], 40).unwrap_err(),
            Ipv4Error::TotalLengthTooSmall {
                total_len: 16,
                header_len: 20
            }
        );
    }
}
