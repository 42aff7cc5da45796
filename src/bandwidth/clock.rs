//! Where `now_ns` comes from: the capture's clock in replay, the wall clock in live mode.
//!
//! The limiter itself never reads a clock; it takes `now_ns` from its caller, so the same
//! code runs deterministically on capture timestamps and in real time.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// A source of nanosecond timestamps for [`Limiter::offer`](super::Limiter::offer).
pub trait Clock {
    /// The current time in nanoseconds on this clock's scale.
    fn now_ns(&self) -> u64;
}

/// A clock that only moves when told to: replay sets it from each packet's capture timestamp.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VirtualClock {
    now_ns: u64,
}

impl VirtualClock {
    /// A virtual clock reading `start_ns`.
    pub fn new(start_ns: u64) -> Self {
        Self { now_ns: start_ns }
    }

    /// Set the time; going backwards is allowed because captures do it and the limiter copes.
    pub fn set(&mut self, now_ns: u64) {
        self.now_ns = now_ns;
    }

    /// Move the time forward, saturating rather than wrapping at the end of `u64`.
    pub fn advance(&mut self, by_ns: u64) {
        self.now_ns = self.now_ns.saturating_add(by_ns);
    }
}

impl Clock for VirtualClock {
    fn now_ns(&self) -> u64 {
        self.now_ns
    }
}

/// Nanoseconds since the Unix epoch that never go backwards, for live mode.
///
/// The epoch offset is read once and then advanced by a monotonic `Instant`, so a wall-clock
/// step (NTP, a user) cannot make the limiter see time going backwards or leaping ahead.
#[derive(Debug, Clone, Copy)]
pub struct WallClock {
    base_unix_ns: u64,
    start: Instant,
}

impl WallClock {
    /// A wall clock anchored at the current system time (0 if the system clock is before 1970).
    pub fn new() -> Self {
        let base_unix_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            .unwrap_or(0);
        Self {
            base_unix_ns,
            start: Instant::now(),
        }
    }
}

impl Default for WallClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for WallClock {
    fn now_ns(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        self.base_unix_ns.saturating_add(elapsed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_clock_moves_only_when_told() {
        let mut c = VirtualClock::new(5);
        assert_eq!(c.now_ns(), 5);
        c.advance(10);
        assert_eq!(c.now_ns(), 15);
        c.set(3);
        assert_eq!(c.now_ns(), 3);
        c.set(u64::MAX - 1);
        c.advance(10);
        assert_eq!(c.now_ns(), u64::MAX);
    }

    #[test]
    fn wall_clock_is_monotonic() {
        let c = WallClock::new();
        let a = c.now_ns();
        let b = c.now_ns();
        assert!(b >= a);
    }
}
