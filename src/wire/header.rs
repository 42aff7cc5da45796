//! Views over fixed-size headers: the 20 bytes every IPv4 header starts with, TCP's fixed 20,
//! UDP's 8 and the first 4 of ICMP. A view holds an array, so every accessor reads at a named
//! constant offset the compiler checks once, and none can panic; whoever makes the view has
//! checked that the bytes were captured (`first_chunk`).

use super::checksum;
use super::ipv4::{
    FLAG_MF, ICMP_CHECKSUM, MIN_HEADER_LEN, OFFSET_MASK, TCP_CHECKSUM, UDP_CHECKSUM, field,
};
use std::borrow::{Borrow, BorrowMut};

/// Byte offsets of the transport fields NAT reads, within their header.
pub mod l4 {
    /// TCP and UDP: the source port.
    pub const SRC_PORT: usize = 0;
    /// TCP and UDP: the destination port.
    pub const DST_PORT: usize = 2;
    /// TCP: the data offset (high nibble, in 32-bit words).
    pub const TCP_DATA_OFFSET: usize = 12;
    /// TCP: the flags.
    pub const TCP_FLAGS: usize = 13;
    /// UDP: the length of header and data.
    pub const UDP_LENGTH: usize = 4;
    /// ICMP queries: the identifier, which plays the role of a port.
    pub const ICMP_IDENT: usize = 4;
}

/// Reads a big-endian u16 at `at`, if the bytes are there.
#[inline]
pub fn read16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

/// Writes a big-endian u16 at `at` when the bytes are there; callers read the field first, so
/// nothing is skipped in practice, and nothing can panic.
#[inline]
pub(crate) fn write16(b: &mut [u8], at: usize, v: u16) {
    // A wrapped end makes an empty range, which `get_mut` refuses like any other.
    if let Some(w) = b.get_mut(at..at.wrapping_add(2)) {
        w.copy_from_slice(&v.to_be_bytes());
    }
}

/// The big-endian u16 at a constant offset of a fixed header (checked at compile time once
/// inlined); what every view's accessors read.
#[inline(always)]
fn be16_at<const N: usize>(b: &[u8; N], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

/// ICMP types that carry an offending datagram (RFC 792, RFC 1812).
#[inline]
pub fn is_icmp_error(icmp_type: u8) -> bool {
    matches!(icmp_type, 3 | 4 | 5 | 11 | 12)
}

/// ICMP query types whose identifier field plays the role of a port.
#[inline]
pub fn is_icmp_query(icmp_type: u8) -> bool {
    matches!(icmp_type, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18)
}

/// The fixed 20 bytes of an IPv4 header (options, if any, follow them unseen).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Header<T>(T);

impl<T: Borrow<[u8; MIN_HEADER_LEN]>> Ipv4Header<T> {
    /// A view over `bytes`.
    #[inline(always)]
    pub fn new(bytes: T) -> Self {
        Ipv4Header(bytes)
    }

    #[inline(always)]
    fn b(&self) -> &[u8; MIN_HEADER_LEN] {
        self.0.borrow()
    }

    #[inline(always)]
    fn u16_at(&self, at: usize) -> u16 {
        be16_at(self.b(), at)
    }

    #[inline(always)]
    fn u32_at(&self, at: usize) -> u32 {
        let b = self.b();
        u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
    }

    /// The bytes viewed.
    #[inline(always)]
    pub fn bytes(&self) -> &[u8; MIN_HEADER_LEN] {
        self.b()
    }

    /// The version nibble.
    #[inline(always)]
    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }

    /// The header length in bytes, as IHL says (options included; not checked).
    #[inline(always)]
    pub fn header_len(&self) -> usize {
        usize::from(self.b()[field::VER_IHL] & 0x0f) * 4
    }

    /// Version 4 with a plain 20-byte header (no options).
    #[inline(always)]
    pub fn is_plain(&self) -> bool {
        self.b()[field::VER_IHL] == 0x45
    }

    /// The total length field.
    #[inline(always)]
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }

    /// The identification field.
    #[inline(always)]
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }

    /// Fragment offset in 8-byte units.
    #[inline(always)]
    pub fn frag_offset(&self) -> u16 {
        self.u16_at(field::FLG_OFF) & OFFSET_MASK
    }

    /// The more-fragments flag.
    #[inline(always)]
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & FLAG_MF != 0
    }

    /// True for any fragment of a fragmented datagram (first, middle or last).
    #[inline(always)]
    pub fn is_fragment(&self) -> bool {
        self.u16_at(field::FLG_OFF) & (FLAG_MF | OFFSET_MASK) != 0
    }

    /// Time to live.
    #[inline(always)]
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }

    /// Protocol number.
    #[inline(always)]
    pub fn protocol(&self) -> u8 {
        self.b()[field::PROTOCOL]
    }

    /// The header checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }

    /// Source address as a host-order integer.
    #[inline(always)]
    pub fn src(&self) -> u32 {
        self.u32_at(field::SRC)
    }

    /// Destination address as a host-order integer.
    #[inline(always)]
    pub fn dst(&self) -> u32 {
        self.u32_at(field::DST)
    }
}

impl<T: BorrowMut<[u8; MIN_HEADER_LEN]>> Ipv4Header<T> {
    #[inline(always)]
    fn bm(&mut self) -> &mut [u8; MIN_HEADER_LEN] {
        self.0.borrow_mut()
    }

    #[inline(always)]
    fn set_u16(&mut self, at: usize, v: u16) {
        let [hi, lo] = v.to_be_bytes();
        let b = self.bm();
        b[at] = hi;
        b[at + 1] = lo;
    }

    /// Rewrites the source address, updating the header checksum incrementally.
    #[inline]
    pub fn set_src(&mut self, new: u32) {
        let sum = checksum::update32(self.checksum(), self.src(), new);
        self.bm()[field::SRC..field::SRC + 4].copy_from_slice(&new.to_be_bytes());
        self.set_u16(field::CHECKSUM, sum);
    }

    /// Rewrites the destination address, updating the header checksum incrementally.
    #[inline]
    pub fn set_dst(&mut self, new: u32) {
        let sum = checksum::update32(self.checksum(), self.dst(), new);
        self.bm()[field::DST..field::DST + 4].copy_from_slice(&new.to_be_bytes());
        self.set_u16(field::CHECKSUM, sum);
    }

    /// Decrements the TTL by one, updating the header checksum incrementally.
    #[inline]
    pub fn decrement_ttl(&mut self) {
        // The TTL shares its 16-bit word with the protocol.
        let old = self.u16_at(field::TTL);
        let new = old.wrapping_sub(0x0100);
        let sum = checksum::update16(self.checksum(), old, new);
        self.set_u16(field::TTL, new);
        self.set_u16(field::CHECKSUM, sum);
    }
}

/// TCP's fixed 20-byte header.
#[derive(Debug, Clone, Copy)]
pub struct TcpHeader<T>(T);

impl<T: Borrow<[u8; 20]>> TcpHeader<T> {
    /// A view over `bytes`.
    #[inline(always)]
    pub fn new(bytes: T) -> Self {
        TcpHeader(bytes)
    }

    #[inline(always)]
    fn u16_at(&self, at: usize) -> u16 {
        be16_at(self.0.borrow(), at)
    }

    /// The source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        self.u16_at(l4::SRC_PORT)
    }

    /// The destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(l4::DST_PORT)
    }

    /// The data offset in bytes (the header with its options).
    #[inline(always)]
    pub fn data_offset(&self) -> usize {
        usize::from(self.0.borrow()[l4::TCP_DATA_OFFSET] >> 4) * 4
    }

    /// The flags byte (CWR ... FIN).
    #[inline(always)]
    pub fn flags(&self) -> u8 {
        self.0.borrow()[l4::TCP_FLAGS]
    }

    /// The checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.u16_at(TCP_CHECKSUM)
    }
}

/// UDP's 8-byte header.
#[derive(Debug, Clone, Copy)]
pub struct UdpHeader<T>(T);

impl<T: Borrow<[u8; 8]>> UdpHeader<T> {
    /// A view over `bytes`.
    #[inline(always)]
    pub fn new(bytes: T) -> Self {
        UdpHeader(bytes)
    }

    #[inline(always)]
    fn u16_at(&self, at: usize) -> u16 {
        be16_at(self.0.borrow(), at)
    }

    /// The source port.
    #[inline(always)]
    pub fn src_port(&self) -> u16 {
        self.u16_at(l4::SRC_PORT)
    }

    /// The destination port.
    #[inline(always)]
    pub fn dst_port(&self) -> u16 {
        self.u16_at(l4::DST_PORT)
    }

    /// The length field (header and data).
    #[inline(always)]
    pub fn length(&self) -> u16 {
        self.u16_at(l4::UDP_LENGTH)
    }

    /// The checksum field (0: none).
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        self.u16_at(UDP_CHECKSUM)
    }
}

/// The 4 bytes every ICMP message starts with: type, code, checksum.
#[derive(Debug, Clone, Copy)]
pub struct IcmpHeader<T>(T);

impl<T: Borrow<[u8; 4]>> IcmpHeader<T> {
    /// A view over `bytes`.
    #[inline(always)]
    pub fn new(bytes: T) -> Self {
        IcmpHeader(bytes)
    }

    /// The message type.
    #[inline(always)]
    pub fn kind(&self) -> u8 {
        self.0.borrow()[0]
    }

    /// The code.
    #[inline(always)]
    pub fn code(&self) -> u8 {
        self.0.borrow()[1]
    }

    /// The checksum field.
    #[inline(always)]
    pub fn checksum(&self) -> u16 {
        be16_at(self.0.borrow(), ICMP_CHECKSUM)
    }

    /// Whether it carries an offending datagram.
    #[inline(always)]
    pub fn is_error(&self) -> bool {
        is_icmp_error(self.kind())
    }

    /// Whether its identifier plays the role of a port.
    #[inline(always)]
    pub fn is_query(&self) -> bool {
        is_icmp_query(self.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 192.0.2.1 -> 203.0.113.79, TCP, TTL 64, id 0x1c46, DF, total length 40.
    const HDR: [u8; 20] = [
        0x45, 0x00, 0x00, 0x28, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x00, 0x00, 192, 0, 2, 1, 203,
        0, 113, 79,
    ];

    #[test]
    fn ipv4_fields_at_their_offsets() {
        let h = Ipv4Header::new(&HDR);
        assert!(h.is_plain());
        assert_eq!((h.version(), h.header_len(), h.total_len()), (4, 20, 40));
        assert_eq!((h.ident(), h.ttl(), h.protocol()), (0x1c46, 64, 6));
        assert_eq!((h.src(), h.dst()), (0xc000_0201, 0xcb00_714f));
        assert!(!h.is_fragment() && !h.more_frags());
        let mut b = HDR;
        b[6] = 0x20; // MF
        b[7] = 3;
        let h = Ipv4Header::new(&b);
        assert!(h.is_fragment() && h.more_frags());
        assert_eq!(h.frag_offset(), 3);
    }

    #[test]
    fn setters_keep_the_header_checksum() {
        let mut b = HDR;
        let c = checksum::checksum(&b);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let mut h = Ipv4Header::new(&mut b);
        h.set_dst(0xc0a8_0104);
        h.set_src(0x0a00_0001);
        h.decrement_ttl();
        assert_eq!((h.ttl(), h.src(), h.dst()), (63, 0x0a00_0001, 0xc0a8_0104));
        assert!(checksum::is_all_ones(checksum::sum_ne(&b)));
    }

    #[test]
    fn transport_views_and_the_16_bit_helpers() {
        let mut tcp = [0u8; 20];
        tcp[..4].copy_from_slice(&[0x1f, 0x90, 0, 80]);
        tcp[12] = 0x50;
        tcp[13] = 0x12;
        let t = TcpHeader::new(&tcp);
        assert_eq!((t.src_port(), t.dst_port()), (8080, 80));
        assert_eq!((t.data_offset(), t.flags(), t.checksum()), (20, 0x12, 0));
        let udp = [0, 53, 0x13, 0x88, 0, 12, 0xab, 0xcd];
        let u = UdpHeader::new(&udp);
        assert_eq!((u.src_port(), u.dst_port()), (53, 5000));
        assert_eq!((u.length(), u.checksum()), (12, 0xabcd));
        let i = IcmpHeader::new(&[3, 3, 0x12, 0x34]);
        assert!(i.is_error() && !i.is_query());
        assert_eq!((i.kind(), i.code(), i.checksum()), (3, 3, 0x1234));
        assert!(IcmpHeader::new(&[8, 0, 0, 0]).is_query());
        assert_eq!(read16(&udp, 6), Some(0xabcd));
        assert_eq!(read16(&udp, 7), None);
        let mut b = udp;
        write16(&mut b, 6, 0x1111);
        write16(&mut b, 7, 0x2222);
        assert_eq!(b[6..], [0x11, 0x11]);
    }
}
