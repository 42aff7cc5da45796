//! A tiny seeded PRNG (SplitMix64): fast, reproducible on every platform, no dependency.

/// SplitMix64 (Steele, Lea, Flood 2014): one add and two multiply-xorshifts per draw.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// A generator whose whole stream is fixed by `seed`.
    pub(crate) fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[inline]
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A value in `0..n` (0 when `n` is 0).
    ///
    /// Multiply-shift instead of `%`: no division, and the bias (n / 2^32) is far below what
    /// a traffic mix can show.
    #[inline]
    pub(crate) fn below(&mut self, n: u32) -> u32 {
        (((self.next_u64() >> 32) * u64::from(n)) >> 32) as u32
    }

    /// A value in `0..n` for collection lengths.
    #[inline]
    pub(crate) fn index(&mut self, n: usize) -> usize {
        self.below(u32::try_from(n).unwrap_or(u32::MAX)) as usize
    }

    /// A value in `lo..=hi` (`lo` when `hi < lo`).
    #[inline]
    pub(crate) fn range_u16(&mut self, lo: u16, hi: u16) -> u16 {
        let span = u32::from(hi.saturating_sub(lo)) + 1;
        lo.wrapping_add(self.below(span) as u16)
    }

    /// True with probability `num / den`.
    #[inline]
    pub(crate) fn chance(&mut self, num: u32, den: u32) -> bool {
        self.below(den) < num
    }

    /// A 32-bit value.
    #[inline]
    pub(crate) fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stays_in_range_and_is_reproducible() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..10_000 {
            let x = a.below(12);
            assert!(x < 12);
            assert_eq!(x, b.below(12));
            let p = a.range_u16(1000, 1009);
            assert!((1000..=1009).contains(&p));
            b.range_u16(1000, 1009);
        }
        assert_eq!(Rng::new(1).range_u16(5, 5), 5);
        assert_eq!(Rng::new(1).below(0), 0);
    }
}
