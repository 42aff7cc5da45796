//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` as big-endian 16-bit words into a wide one's-complement accumulator.
///
/// The result is not folded; pass it to [`fold`]. An odd trailing byte is padded with zero,
/// as RFC 1071 requires. See [`sum_ne`] for how; this is its result put in network order.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    u64::from(to_network(fold(sum_ne(data))))
}

/// The one's-complement sum of `data` in the machine's own byte order, not folded.
///
/// RFC 1071 section 2(B): the one's-complement sum is byte-order independent, so words can be
/// added as they lie in memory, eight bytes at a time, and one swap of the folded result
/// ([`to_network`]) gives the network-order sum. Checks that only ask whether a sum is all
/// ones need no swap at all ([`is_all_ones`]). The accumulator never overflows: short inputs
/// add fewer than 2^33 per word, long ones are folded as they go.
#[inline]
pub fn sum_ne(data: &[u8]) -> u64 {
    if data.len() < 64 {
        sum_ne_short(data)
    } else {
        sum_ne_long(data)
    }
}

/// Whether a native-order or network-order accumulator folds to 0xFFFF (a checksum that
/// verifies): that is, it is a non-zero multiple of 0xFFFF, which one multiply-based remainder
/// tells without folding.
#[inline]
pub fn is_all_ones(acc: u64) -> bool {
    acc != 0 && acc.is_multiple_of(0xffff)
}

/// A folded native-order sum in network order.
#[inline]
pub fn to_network(folded_ne: u16) -> u16 {
    u16::from_be(folded_ne)
}

/// [`sum_ne`] for headers and small segments, with no setup to amortize: sixteen bytes at a
/// time, each eight-byte word added as its two 32-bit halves so no carry is lost, then the
/// tail as at most one 8-, 4-, 2- and 1-byte piece (a shape the compiler keeps as straight
/// code rather than unrolling a loop for lengths that never come).
#[inline]
fn sum_ne_short(data: &[u8]) -> u64 {
    let mut acc = 0u64;
    let mut rest = data;
    while let Some((pair, next)) = rest.split_first_chunk::<16>() {
        let (a, b) = (word(&pair[..8]), word(&pair[8..]));
        acc += (a & 0xffff_ffff) + (a >> 32) + (b & 0xffff_ffff) + (b >> 32);
        rest = next;
    }
    if let Some((w, next)) = rest.split_first_chunk::<8>() {
        let w = u64::from_ne_bytes(*w);
        acc += (w & 0xffff_ffff) + (w >> 32);
        rest = next;
    }
    if let Some((q, next)) = rest.split_first_chunk::<4>() {
        acc += u64::from(u32::from_ne_bytes(*q));
        rest = next;
    }
    if let Some((d, next)) = rest.split_first_chunk::<2>() {
        acc += u64::from(u16::from_ne_bytes(*d));
        rest = next;
    }
    if let [last] = *rest {
        // A lone last byte is the first byte of its word, padded with zero (RFC 1071).
        acc += u64::from(u16::from_ne_bytes([last, 0]));
    }
    acc
}

/// [`sum_ne`] for long inputs: each eight-byte word added as its two 32-bit halves, a loop
/// simple enough for the compiler to vectorize (no carry chain between words; 1500-byte
/// segments verify about 15% faster than with two carry-collecting accumulators). The sum
/// grows by less than 2^33 per word, so no input a pcap can hold overflows it.
#[inline]
fn sum_ne_long(data: &[u8]) -> u64 {
    let mut words = data.chunks_exact(8);
    let mut acc = 0u64;
    for w in &mut words {
        let w = word(w);
        acc += (w & 0xffff_ffff) + (w >> 32);
    }
    acc + sum_ne_short(words.remainder())
}

/// Eight bytes in native order; callers pass exactly eight.
#[inline]
fn word(c: &[u8]) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&c[..8]);
    u64::from_ne_bytes(w)
}

/// Folds a wide accumulator to 16 bits with end-around carry.
#[inline]
pub fn fold(acc: u64) -> u16 {
    // Four fixed steps instead of a loop: below 2^33 after the first, below 2^18 after the
    // second, at most 0x10002 after the third, and at most 0xFFFF after the fourth.
    let a = (acc & 0xffff_ffff) + (acc >> 32);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    a as u16
}

/// The checksum field value for `data` (the complement of its folded sum).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !fold(sum(data))
}

/// The IPv4 pseudo-header sum for TCP/UDP (RFC 793 / RFC 768), not folded.
#[inline]
pub fn pseudo_header_sum(src: u32, dst: u32, protocol: u8, l4_len: u16) -> u64 {
    u64::from(src >> 16)
        + u64::from(src & 0xffff)
        + u64::from(dst >> 16)
        + u64::from(dst & 0xffff)
        + u64::from(protocol)
        + u64::from(l4_len)
}

/// The two addresses of a pseudo-header, summed in the machine's byte order.
#[inline]
pub fn addresses_sum_ne(src: u32, dst: u32) -> u64 {
    let (s, d) = (src.to_be(), dst.to_be());
    u64::from(s >> 16) + u64::from(s & 0xffff) + u64::from(d >> 16) + u64::from(d & 0xffff)
}

/// The rest of a pseudo-header in the machine's byte order, to add to [`addresses_sum_ne`] (or
/// the addresses' sum [`crate::wire::ipv4::header_sums_ne`] gives) and a [`sum_ne`].
#[inline]
pub fn pseudo_header_tail_ne(protocol: u8, l4_len: u16) -> u64 {
    u64::from(u16::from(protocol).to_be()) + u64::from(l4_len.to_be())
}

/// The one's-complement change of a 16-bit field from `old` to `new` (`~m + m'`), to be
/// summed with other changes and applied at once with [`apply_delta`].
#[inline]
pub fn delta16(old: u16, new: u16) -> u64 {
    u64::from(!old) + u64::from(new)
}

/// The change of a 32-bit field (an IPv4 address), as two 16-bit words.
#[inline]
pub fn delta32(old: u32, new: u32) -> u64 {
    delta16((old >> 16) as u16, (new >> 16) as u16) + delta16(old as u16, new as u16)
}

/// Applies summed field changes to checksum `hc`: RFC 1624 eqn. 3, `HC' = ~(~HC + sum(~m + m'))`.
///
/// `delta` is the sum of a few [`delta16`] terms (fewer than 32, so below 2^22), which two
/// folding steps bring to 16 bits: the first leaves at most 0xFFFF + 63, the second at most
/// 0xFFFF.
#[inline]
pub fn apply_delta(hc: u16, delta: u64) -> u16 {
    debug_assert!(delta < 1 << 22, "a checksum delta of a few fields");
    let a = u64::from(!hc) + delta;
    let a = (a & 0xffff) + (a >> 16);
    let a = (a & 0xffff) + (a >> 16);
    !(a as u16)
}

/// Updates checksum `hc` for a 16-bit field that changes from `old` to `new` (RFC 1624 eqn. 3).
///
/// Equation 3 (`HC' = ~(~HC + ~m + m')`) is used rather than eqn. 2 because it never
/// produces -0 (0xFFFF) from a +0 sum, which is what a full recomputation would give.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    apply_delta(hc, delta16(old, new))
}

/// Updates checksum `hc` for a 32-bit field (an IPv4 address) that changes from `old` to `new`.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    apply_delta(hc, delta32(old, new))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 1071 section 3's worked example: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    #[test]
    fn rfc1071_example() {
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    /// The straightforward RFC 1071 loop, to check the fast one against.
    fn reference(data: &[u8]) -> u16 {
        let mut acc = 0u64;
        for w in data.chunks(2) {
            acc += u64::from(w[0]) << 8 | u64::from(*w.get(1).unwrap_or(&0));
        }
        fold(acc)
    }

    #[test]
    fn fast_sum_matches_the_reference_for_every_length() {
        let data: Vec<u8> = (0..2000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for len in 0..data.len() {
            assert_eq!(
                fold(sum(&data[..len])),
                reference(&data[..len]),
                "length {len}"
            );
        }
        let ones = vec![0xffu8; 1501];
        assert_eq!(fold(sum(&ones)), reference(&ones));
    }

    #[test]
    fn all_ones_test_agrees_with_folding() {
        let samples = [
            0u64,
            1,
            0xfffe,
            0xffff,
            0x1_fffe,
            0x2_fffd,
            0xffff * 0xffff,
            u64::MAX,
        ];
        for acc in samples.into_iter().chain((0..100_000u64).map(|i| i * 4093)) {
            assert_eq!(is_all_ones(acc), fold(acc) == 0xffff, "acc {acc:#x}");
        }
    }

    #[test]
    fn native_pseudo_header_matches_network_order() {
        let (src, dst) = (0xc633_6401, 0xcb00_714f);
        let ne = fold(addresses_sum_ne(src, dst) + pseudo_header_tail_ne(6, 1480));
        assert_eq!(to_network(ne), fold(pseudo_header_sum(src, dst, 6, 1480)));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(fold(sum(&[0x12, 0x34, 0x56])), 0x1234 + 0x5600);
    }

    #[test]
    fn incremental_matches_recomputation() {
        let mut data: Vec<u8> = (0u8..40).map(|i| i.wrapping_mul(37)).collect();
        let before = checksum(&data);
        let old = u32::from_be_bytes([data[12], data[13], data[14], data[15]]);
        let new: u32 = 0xc0a8_0104;
        data[12..16].copy_from_slice(&new.to_be_bytes());
        assert_eq!(update32(before, old, new), checksum(&data));
        let old16 = u16::from_be_bytes([data[20], data[21]]);
        data[20..22].copy_from_slice(&443u16.to_be_bytes());
        assert_eq!(
            update16(update32(before, old, new), old16, 443),
            checksum(&data)
        );
    }
}
