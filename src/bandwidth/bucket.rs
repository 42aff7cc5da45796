//! A token bucket in exact integer arithmetic.
//!
//! Credit is kept in units of 1e-9 bit ("nanobits"): a bucket filling at `rate_bps` bit/s gains
//! exactly `rate_bps` units per elapsed nanosecond, and a byte costs `8e9` units. Nothing is
//! rounded, so a 150 Mbps bucket carries 150 Mbps over any run length; rounding the rate to
//! whole nanoseconds per byte (53 ns instead of 53.33) would carry 0.6 % too much.
//!
//! The products fit comfortably: `rate × elapsed` is at most `2^128` as `u128`, the bucket
//! depth is at most `u64::MAX × 8e9 < 2^97`, and credit is an `i128` because shape mode lets
//! it go negative (debt owed by queued packets).

/// Credit units per bit: one unit is 1e-9 bit, so `rate_bps` units accrue per nanosecond.
pub const UNITS_PER_BIT: i128 = 1_000_000_000;

/// Credit units one byte costs.
pub const UNITS_PER_BYTE: i128 = 8 * UNITS_PER_BIT;

/// What `bytes` cost in credit units (at most about `3.4e19`, far inside `i128`).
#[inline]
pub fn cost_units(bytes: u32) -> i128 {
    i128::from(bytes) * UNITS_PER_BYTE
}

/// A token bucket refilled from caller-supplied timestamps.
///
/// The bucket starts full. Timestamps at or before the last one seen add no credit and move
/// nothing back, so a capture whose clock steps backwards neither mints nor destroys credit;
/// accrual resumes only once time passes the latest timestamp seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBucket {
    rate_bps: u64,
    depth: i128,
    credit: i128,
    updated_ns: u64,
}

impl TokenBucket {
    /// A full bucket of `burst_bytes` filling at `rate_bps` bit/s, last updated at time 0.
    pub fn new(rate_bps: u64, burst_bytes: u64) -> Self {
        let depth = i128::from(burst_bytes) * UNITS_PER_BYTE;
        Self {
            rate_bps,
            depth,
            credit: depth,
            updated_ns: 0,
        }
    }

    /// The fill rate in bit/s.
    pub fn rate_bps(&self) -> u64 {
        self.rate_bps
    }

    /// The depth in credit units (burst bytes × 8e9).
    pub fn depth_units(&self) -> i128 {
        self.depth
    }

    /// The credit in units as of the last update; negative means queued packets still owe it.
    pub fn credit_units(&self) -> i128 {
        self.credit
    }

    /// The latest timestamp the bucket has been refilled to.
    pub fn updated_ns(&self) -> u64 {
        self.updated_ns
    }

    /// Credit after `dt_ns` more nanoseconds of filling, capped at the depth.
    #[inline]
    fn credit_after(&self, dt_ns: u64) -> i128 {
        if self.credit >= self.depth {
            return self.depth;
        }
        // Positive and below 2^98 because credit >= -(depth + queue limit).
        let room = self.depth.abs_diff(self.credit);
        let gained = u128::from(self.rate_bps) * u128::from(dt_ns);
        if gained >= room {
            self.depth
        } else {
            // gained < room < 2^98, so the cast and the sum are exact.
            self.credit + gained as i128
        }
    }

    /// Accrue credit up to `now_ns`; earlier or equal timestamps change nothing.
    #[inline]
    pub fn refill(&mut self, now_ns: u64) {
        if now_ns > self.updated_ns {
            self.credit = self.credit_after(now_ns - self.updated_ns);
            self.updated_ns = now_ns;
        }
    }

    /// The credit the bucket would hold at `t_ns` if nothing were taken meanwhile.
    pub fn credit_at(&self, t_ns: u64) -> i128 {
        self.credit_after(t_ns.saturating_sub(self.updated_ns))
    }

    /// Whole bytes of credit at `t_ns` (0 while in debt), rounded down.
    pub fn fill_bytes_at(&self, t_ns: u64) -> u64 {
        let c = self.credit_at(t_ns).max(0) / UNITS_PER_BYTE;
        u64::try_from(c).unwrap_or(u64::MAX)
    }

    /// Bytes still owed by queued packets at `t_ns`, rounded up (0 when not in debt).
    pub fn debt_bytes_at(&self, t_ns: u64) -> u64 {
        let debt = (-self.credit_at(t_ns)).max(0);
        let bytes = (debt + UNITS_PER_BYTE - 1) / UNITS_PER_BYTE;
        u64::try_from(bytes).unwrap_or(u64::MAX)
    }

    /// Police: take the cost of `bytes` if the credit covers it; otherwise leave the bucket as is.
    #[inline]
    pub fn try_take(&mut self, bytes: u32) -> bool {
        let cost = cost_units(bytes);
        if self.credit >= cost {
            self.credit -= cost;
            true
        } else {
            false
        }
    }

    /// Shape: the debt in units that taking `bytes` now would leave (0 if the credit covers it).
    #[inline]
    pub fn debt_if_taken(&self, bytes: u32) -> u128 {
        let after = self.credit - cost_units(bytes);
        if after >= 0 { 0 } else { after.unsigned_abs() }
    }

    /// Shape: take the cost of `bytes`, going into debt if needed; the caller bounds the debt.
    #[inline]
    pub fn take_into_debt(&mut self, bytes: u32) {
        self.credit -= cost_units(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_full_and_refills_to_depth_only() {
        let mut b = TokenBucket::new(8_000_000_000, 1000); // 1 byte per ns
        assert!(b.try_take(1000));
        assert!(!b.try_take(1));
        b.refill(500);
        assert_eq!(b.fill_bytes_at(500), 500);
        b.refill(1_000_000);
        assert_eq!(b.credit_units(), b.depth_units());
    }

    #[test]
    fn backwards_time_adds_nothing() {
        let mut b = TokenBucket::new(8_000_000_000, 1000);
        b.refill(1_000);
        assert!(b.try_take(1000));
        b.refill(10);
        assert_eq!(b.credit_units(), 0);
        b.refill(1_000);
        assert_eq!(b.credit_units(), 0);
        b.refill(1_100);
        assert_eq!(b.fill_bytes_at(1_100), 100);
    }

    #[test]
    fn extreme_values_do_not_overflow() {
        let mut b = TokenBucket::new(u64::MAX, u64::MAX);
        b.take_into_debt(u32::MAX);
        b.refill(u64::MAX);
        assert_eq!(b.credit_units(), b.depth_units());
        let mut b = TokenBucket::new(1, 1);
        b.take_into_debt(u32::MAX);
        assert!(b.debt_bytes_at(0) > 0);
        assert_eq!(b.fill_bytes_at(u64::MAX), 0);
    }

    #[test]
    fn fractional_rate_is_exact() {
        // 150 Mbps: 53.333.. ns per byte; 3 bytes take exactly 160 ns.
        let mut b = TokenBucket::new(150_000_000, 3);
        assert!(b.try_take(3));
        b.refill(159);
        assert!(!b.try_take(3));
        b.refill(160);
        assert!(b.try_take(3));
    }
}
