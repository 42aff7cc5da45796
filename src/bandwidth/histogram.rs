//! Queue delays per interval in bounded memory: a log-linear histogram.
//!
//! Values below 512 ns get a bucket each; above, every power of two is split into 256 equal
//! buckets, so a bucket is at most 1/256 (0.4 %) of its values wide. A percentile is reported
//! as its bucket's upper edge, capped at the exact maximum: never below the true value and at
//! most 0.4 % above it. That is 14,592 counters per direction, allocated once; recording is an
//! index computation and an increment, and a reset clears only the range that was touched.

const EXACT: u64 = 512;
const EXACT_BITS: u32 = 9;
const SUB_BITS: u32 = 8;
const SUB: usize = 1 << SUB_BITS;
const BUCKETS: usize = EXACT as usize + (64 - EXACT_BITS as usize) * SUB;

/// The bucket holding `v`.
#[inline]
fn index(v: u64) -> usize {
    if v < EXACT {
        v as usize
    } else {
        let e = 63 - v.leading_zeros(); // >= EXACT_BITS
        let shift = e - SUB_BITS;
        let top = (v >> shift) as usize; // in [SUB, 2 * SUB)
        EXACT as usize + (e - EXACT_BITS) as usize * SUB + (top - SUB)
    }
}

/// The largest value bucket `i` holds.
fn upper(i: usize) -> u64 {
    if i < EXACT as usize {
        return i as u64;
    }
    let k = i - EXACT as usize;
    let e = (k / SUB) as u32 + EXACT_BITS;
    let top = (SUB + k % SUB) as u128;
    let shift = e - SUB_BITS;
    u64::try_from(((top + 1) << shift) - 1).unwrap_or(u64::MAX)
}

/// Delay counts of one interval.
#[derive(Debug, Clone)]
pub(crate) struct DelayHistogram {
    counts: Box<[u64]>,
    lo: usize,
    hi: usize,
    n: u64,
    max: u64,
}

impl DelayHistogram {
    /// An empty histogram; this is the only allocation it ever makes.
    pub(crate) fn new() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            lo: usize::MAX,
            hi: 0,
            n: 0,
            max: 0,
        }
    }

    /// How many delays are recorded.
    pub(crate) fn len(&self) -> u64 {
        self.n
    }

    /// Count one delay.
    #[inline]
    pub(crate) fn record(&mut self, v: u64) {
        let i = index(v);
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.lo = self.lo.min(i);
        self.hi = self.hi.max(i);
        self.n += 1;
        self.max = self.max.max(v);
    }

    /// The nearest-rank `pct`-th percentile (the smallest v with at least pct % of delays <= v).
    pub(crate) fn percentile(&self, pct: u64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = (u128::from(self.n) * u128::from(pct)).div_ceil(100).max(1);
        let mut seen: u128 = 0;
        for i in self.lo..=self.hi.min(BUCKETS - 1) {
            seen += u128::from(self.counts[i]);
            if seen >= rank {
                return Some(upper(i).min(self.max));
            }
        }
        Some(self.max)
    }

    /// The largest delay recorded, exactly.
    pub(crate) fn max(&self) -> Option<u64> {
        (self.n > 0).then_some(self.max)
    }

    /// Forget everything, clearing only the buckets that were used.
    pub(crate) fn reset(&mut self) {
        if self.n > 0 {
            let hi = self.hi.min(BUCKETS - 1);
            if let Some(s) = self.counts.get_mut(self.lo..=hi) {
                s.fill(0);
            }
        }
        self.lo = usize::MAX;
        self.hi = 0;
        self.n = 0;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_contiguous_and_bounded() {
        assert_eq!(index(0), 0);
        assert_eq!(index(511), 511);
        assert_eq!(index(512), 512);
        assert_eq!(index(u64::MAX), BUCKETS - 1);
        assert_eq!(upper(BUCKETS - 1), u64::MAX);
        for i in 0..BUCKETS - 1 {
            assert_eq!(index(upper(i)), i);
            assert_eq!(index(upper(i) + 1), i + 1);
        }
    }

    #[test]
    fn percentiles_within_resolution() {
        let mut h = DelayHistogram::new();
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        let p50 = h.percentile(50).unwrap();
        let p99 = h.percentile(99).unwrap();
        assert!((500_000..=500_000 + 500_000 / 256).contains(&p50), "{p50}");
        assert!((990_000..=990_000 + 990_000 / 256).contains(&p99), "{p99}");
        assert_eq!(h.max(), Some(1_000_000));
        assert_eq!(h.percentile(100), Some(1_000_000));
        h.reset();
        assert_eq!(h.percentile(50), None);
        h.record(7);
        assert_eq!(h.percentile(50), Some(7));
    }
}
