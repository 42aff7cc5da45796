//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// Adds `data` as big-endian 16-bit words into a wide one's-complement accumulator.
///
/// The result is not folded; pass it to [`fold`]. An odd trailing byte is padded with zero,
/// as RFC 1071 requires. Eight bytes are added per step: the 64-bit accumulator cannot
/// overflow before 2^32 steps, far beyond any IPv4 datagram.
#[inline]
pub fn sum(data: &[u8]) -> u64 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        // Summing 32-bit halves in host order is sound for the one's-complement sum as long
        // as the fold is done in the same order (RFC 1071 section 2(B)); we read big-endian
        // so that the folded value needs no swap.
        acc += u64::from(u32::from_be_bytes([c[0], c[1], c[2], c[3]]));
        acc += u64::from(u32::from_be_bytes([c[4], c[5], c[6], c[7]]));
    }
    let rest = chunks.remainder();
    let mut words = rest.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Folds a wide accumulator to 16 bits with end-around carry.
#[inline]
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
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

/// Updates checksum `hc` for a 16-bit field that changes from `old` to `new` (RFC 1624 eqn. 3).
///
/// Equation 3 (`HC' = ~(~HC + ~m + m')`) is used rather than eqn. 2 because it never
/// produces -0 (0xFFFF) from a +0 sum, which is what a full recomputation would give.
#[inline]
pub fn update16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = u64::from(!hc) + u64::from(!old) + u64::from(new);
    !fold(acc)
}

/// Updates checksum `hc` for a 32-bit field (an IPv4 address) that changes from `old` to `new`.
#[inline]
pub fn update32(hc: u16, old: u32, new: u32) -> u16 {
    let acc = u64::from(!hc)
        + u64::from(!(old >> 16) & 0xffff)
        + u64::from(!old & 0xffff)
        + u64::from(new >> 16)
        + u64::from(new & 0xffff);
    !fold(acc)
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
