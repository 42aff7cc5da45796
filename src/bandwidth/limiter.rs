//! The bandwidth package: one token bucket per direction, policing or shaping.

use super::bucket::{TokenBucket, UNITS_PER_BYTE};
use super::clock::Clock;
use super::error::BandwidthError;
use super::stats::{BandwidthStats, ConfigReport, DropReason, LaneStats};
use crate::rules::{BandwidthPackage, CountMode, LimitMode};

/// The largest standard Ethernet frame as the L2 count sees it: 1514 bytes without FCS, plus
/// 24 bytes of preamble, FCS and gap. Defaults never go below two of these.
pub const MAX_FRAME_BYTES: u64 = 1538;

/// The default bucket depth, in milliseconds of the rate.
///
/// tc-tbf's rule of thumb is burst >= rate / HZ (HZ = 250: 75 KB at 150 Mbps) so the bucket
/// outlasts one timer tick; cloud policers allow on the order of tens of ms of rate so that a
/// TCP window's worth of back-to-back packets is not clipped. 10 ms (187.5 KB at 150 Mbps) is
/// 2.5× the tbf minimum and short enough that a 100 ms interval still shows the cap clearly.
pub const DEFAULT_BURST_MS: u64 = 10;

/// The default shape latency limit in ms when neither latency nor queue limit is given.
///
/// 50 ms is what tc-tbf examples and cloud shapers typically use: enough to absorb TCP bursts,
/// short enough not to bloat round trips. The default queue limit is the rate × this latency
/// (937.5 KB at 150 Mbps), so the two limits agree.
pub const DEFAULT_LATENCY_MS: u64 = 50;

/// The default statistics interval: 100 ms, fine enough to see bursts, coarse enough to plot.
pub const DEFAULT_INTERVAL_NS: u64 = 100_000_000;

/// Which way a packet travels through the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Direction {
    /// From the Internet toward a server (to an EIP).
    Inbound,
    /// From a server toward the Internet (from an EIP).
    Outbound,
}

impl Direction {
    /// Both directions, in report order.
    pub const ALL: [Direction; 2] = [Direction::Inbound, Direction::Outbound];

    /// The direction's name in reports: "inbound" or "outbound".
    pub fn name(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    fn index(self) -> usize {
        match self {
            Direction::Inbound => 0,
            Direction::Outbound => 1,
        }
    }
}

/// What the package does with one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Admission {
    /// The packet goes out at `depart_ns` (police: its arrival time; shape: when the bucket has paid for it).
    Pass {
        /// When the packet leaves the limiter, on the caller's clock.
        depart_ns: u64,
    },
    /// The packet is dropped.
    Drop,
}

/// The package's settings with every default resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimiterConfig {
    /// The rate in bit/s, shared by all EIPs, applied to each limited direction separately.
    pub rate_bps: u64,
    /// The bucket depth in bytes.
    pub burst_bytes: u64,
    /// Police or shape.
    pub mode: LimitMode,
    /// Shape: the most bytes that may wait for credit.
    pub queue_limit_bytes: u64,
    /// Shape: the longest a packet may wait, in ms.
    pub latency_ms: u64,
    /// Which length the caller counts (see [`counted_bytes`](super::counted_bytes)).
    pub count: CountMode,
    /// Whether traffic toward the servers is limited.
    pub inbound: bool,
    /// Whether traffic from the servers is limited.
    pub outbound: bool,
    /// The statistics interval in ns.
    pub interval_ns: u64,
    /// Which fields came from defaults.
    pub defaults_applied: Vec<&'static str>,
}

/// `rate × ms` in bytes, rounded up, saturating.
fn bytes_for_ms(rate_bps: u64, ms: u64) -> u64 {
    let b = (u128::from(rate_bps) * u128::from(ms)).div_ceil(8_000);
    u64::try_from(b).unwrap_or(u64::MAX)
}

/// The default burst: max(rate × [`DEFAULT_BURST_MS`], 2 × [`MAX_FRAME_BYTES`]).
///
/// The floor keeps a slow package able to pass two full frames back to back, and a policer able
/// to pass any standard frame at all (a packet costing more than the bucket never passes police).
pub fn default_burst_bytes(rate_bps: u64) -> u64 {
    bytes_for_ms(rate_bps, DEFAULT_BURST_MS).max(2 * MAX_FRAME_BYTES)
}

impl LimiterConfig {
    /// Resolve a validated package's defaults, with statistics every `interval_ns`.
    ///
    /// Shape limits: with neither given, latency is [`DEFAULT_LATENCY_MS`] and the queue holds
    /// that long at the rate; with one given, the other is derived from it so that the one the
    /// user chose is the one that binds (a user's 10 MB queue is not silently cut to 50 ms).
    /// The queue limit never goes below 2 × [`MAX_FRAME_BYTES`].
    pub fn resolve(pkg: &BandwidthPackage, interval_ns: u64) -> Result<Self, BandwidthError> {
        if pkg.rate_bps == 0 {
            return Err(BandwidthError::ZeroRate);
        }
        if pkg.burst_bytes == Some(0) {
            return Err(BandwidthError::ZeroBurst);
        }
        if interval_ns == 0 {
            return Err(BandwidthError::ZeroInterval);
        }
        let rate = pkg.rate_bps;
        let mut defaults_applied = Vec::new();
        let burst_bytes = pkg.burst_bytes.unwrap_or_else(|| {
            defaults_applied.push("burst_bytes");
            default_burst_bytes(rate)
        });
        let (queue_limit_bytes, latency_ms) = match (pkg.queue_limit_bytes, pkg.latency_ms) {
            (Some(q), Some(l)) => (q, l),
            (Some(q), None) => {
                defaults_applied.push("latency_ms");
                let ms = (u128::from(q) * 8_000).div_ceil(u128::from(rate));
                (q, u64::try_from(ms).unwrap_or(u64::MAX))
            }
            (None, l) => {
                defaults_applied.push("queue_limit_bytes");
                let l = l.unwrap_or_else(|| {
                    defaults_applied.push("latency_ms");
                    DEFAULT_LATENCY_MS
                });
                (bytes_for_ms(rate, l).max(2 * MAX_FRAME_BYTES), l)
            }
        };
        Ok(Self {
            rate_bps: rate,
            burst_bytes,
            mode: pkg.mode,
            queue_limit_bytes,
            latency_ms,
            count: pkg.count,
            inbound: pkg.inbound,
            outbound: pkg.outbound,
            interval_ns,
            defaults_applied,
        })
    }

    /// Whether the package limits `dir`.
    pub fn limits(&self, dir: Direction) -> bool {
        match dir {
            Direction::Inbound => self.inbound,
            Direction::Outbound => self.outbound,
        }
    }

    /// The configuration as the report shows it.
    pub fn report(&self) -> ConfigReport {
        let shape = self.mode == LimitMode::Shape;
        ConfigReport {
            rate_bps: self.rate_bps,
            burst_bytes: self.burst_bytes,
            mode: ConfigReport::mode_name(self.mode),
            queue_limit_bytes: shape.then_some(self.queue_limit_bytes),
            latency_ms: shape.then_some(self.latency_ms),
            count: ConfigReport::count_name(self.count),
            directions: Direction::ALL
                .into_iter()
                .filter(|d| self.limits(*d))
                .map(Direction::name)
                .collect(),
            interval_ns: self.interval_ns,
            defaults_applied: self.defaults_applied.clone(),
        }
    }
}

#[derive(Debug, Clone)]
struct Lane {
    limited: bool,
    bucket: TokenBucket,
    stats: LaneStats,
}

/// The bandwidth package limiter: feed it packets in order, read what it admits and its statistics.
///
/// Each limited direction has its own bucket at the full rate, shared by all EIPs of the
/// package. Time is the caller's `now_ns`. The limiter keeps one effective clock, the latest
/// `now_ns` seen in either direction; a packet stamped earlier is treated as arriving at that
/// effective time, so a capture that steps backwards neither mints nor destroys credit.
///
/// Drops per EIP or per forward entry are the caller's to count: the [`Admission`] says what
/// happened to each packet, and the caller already knows the packet's entry, so the limiter's
/// hot path carries no per-tag state.
#[derive(Debug, Clone)]
pub struct Limiter {
    config: LimiterConfig,
    shape: bool,
    divisor: RateDivisor,
    queue_limit_units: u128,
    latency_units: u128,
    started: bool,
    origin_ns: u64,
    clock_ns: u64,
    lanes: [Lane; 2],
}

impl Limiter {
    /// A limiter for a validated package with 100 ms statistics intervals.
    pub fn new(pkg: &BandwidthPackage) -> Result<Self, BandwidthError> {
        Self::with_interval(pkg, DEFAULT_INTERVAL_NS)
    }

    /// A limiter with statistics every `interval_ns` nanoseconds.
    pub fn with_interval(pkg: &BandwidthPackage, interval_ns: u64) -> Result<Self, BandwidthError> {
        Ok(Self::from_config(LimiterConfig::resolve(pkg, interval_ns)?))
    }

    /// A limiter for an already resolved configuration (zero rate or interval are raised to 1).
    pub fn from_config(mut config: LimiterConfig) -> Self {
        config.rate_bps = config.rate_bps.max(1);
        config.burst_bytes = config.burst_bytes.max(1);
        config.interval_ns = config.interval_ns.max(1);
        let shape = config.mode == LimitMode::Shape;
        let divisor = RateDivisor::new(config.rate_bps);
        let queue_limit_units =
            u128::from(config.queue_limit_bytes) * UNITS_PER_BYTE.unsigned_abs();
        let latency_units = u128::from(config.latency_ms)
            .saturating_mul(1_000_000)
            .saturating_mul(u128::from(config.rate_bps));
        let lane = |dir: Direction| Lane {
            limited: config.limits(dir),
            bucket: TokenBucket::new(config.rate_bps, config.burst_bytes),
            stats: LaneStats::new(config.interval_ns, config.limits(dir), shape),
        };
        let lanes = [lane(Direction::Inbound), lane(Direction::Outbound)];
        Self {
            config,
            shape,
            divisor,
            queue_limit_units,
            latency_units,
            started: false,
            origin_ns: 0,
            clock_ns: 0,
            lanes,
        }
    }

    /// The configuration in effect.
    pub fn config(&self) -> &LimiterConfig {
        &self.config
    }

    /// Offer a packet costing `bytes` (see [`counted_bytes`](super::counted_bytes)) at `now_ns`.
    ///
    /// Police passes it at `now_ns` if the bucket holds its cost, else drops it. Shape queues it
    /// FIFO behind earlier packets of its direction and passes it with the time the bucket will
    /// have paid for it, unless the queue would then exceed `queue_limit_bytes` or the wait
    /// `latency_ms` (tail drop). An unlimited direction passes everything at `now_ns`.
    ///
    /// A packet stamped before the latest time seen counts as arriving at that time: police
    /// still reports `depart_ns = now_ns`, shape departs no earlier than the latest time, and
    /// its queue delay is measured from there, so clock steps do not show up as queueing.
    #[inline]
    pub fn offer(&mut self, dir: Direction, now_ns: u64, bytes: u32) -> Admission {
        if !self.started {
            self.started = true;
            self.origin_ns = now_ns;
            self.clock_ns = now_ns;
        }
        let t = if now_ns > self.clock_ns {
            self.clock_ns = now_ns;
            now_ns
        } else {
            self.clock_ns
        };
        let origin = self.origin_ns;
        let bits = u64::from(bytes) * 8;
        let lane = &mut self.lanes[dir.index()];
        lane.stats.arrive(t, origin, bits, &lane.bucket);
        if !lane.limited {
            lane.stats.carry_now(bits);
            return Admission::Pass { depart_ns: now_ns };
        }
        lane.bucket.refill(t);
        if !self.shape {
            if lane.bucket.try_take(bytes) {
                lane.stats.carry_now(bits);
                return Admission::Pass { depart_ns: now_ns };
            }
            lane.stats.drop_packet(bits, DropReason::NoCredit);
            return Admission::Drop;
        }
        let debt = lane.bucket.debt_if_taken(bytes);
        if debt == 0 {
            lane.bucket.take_into_debt(bytes);
            lane.stats.carry_now(bits);
            lane.stats.delay(0);
            return Admission::Pass { depart_ns: t };
        }
        if debt > self.queue_limit_units {
            lane.stats.drop_packet(bits, DropReason::QueueFull);
            return Admission::Drop;
        }
        if debt > self.latency_units {
            lane.stats.drop_packet(bits, DropReason::Latency);
            return Admission::Drop;
        }
        lane.bucket.take_into_debt(bytes);
        let wait = self.divisor.wait_ns(debt);
        let depart_ns = t.saturating_add(wait);
        lane.stats.carry_at(depart_ns, origin, bits);
        lane.stats.delay(wait);
        Admission::Pass { depart_ns }
    }

    /// [`offer`](Self::offer) at the time `clock` reads now (live mode passes a [`WallClock`](super::WallClock)).
    #[inline]
    pub fn offer_at<C: Clock + ?Sized>(
        &mut self,
        clock: &C,
        dir: Direction,
        bytes: u32,
    ) -> Admission {
        self.offer(dir, clock.now_ns(), bytes)
    }

    /// Whole bytes of credit in `dir`'s bucket at `t_ns`, if nothing more is offered before.
    pub fn bucket_fill_bytes(&self, dir: Direction, t_ns: u64) -> u64 {
        self.lanes[dir.index()].bucket.fill_bytes_at(t_ns)
    }

    /// The statistics so far, as if the run ended now.
    pub fn stats(&self) -> BandwidthStats {
        let [inb, outb] = &self.lanes;
        BandwidthStats {
            config: self.config.report(),
            origin_ns: self.started.then_some(self.origin_ns),
            inbound: inb.stats.snapshot(&inb.bucket),
            outbound: outb.stats.snapshot(&outb.bucket),
        }
    }
}

/// Ceiling division by a fixed rate without a hardware divide per packet.
///
/// A 64-bit `div` costs 20-40 cycles on common x86 parts, more than the rest of a shaped
/// packet's path. With `m = floor((2^64 - 1) / rate)`, `(d × m) >> 64` undershoots `d / rate` by
/// at most 2, which two compare-and-subtract steps correct, so the quotient stays exact.
#[derive(Debug, Clone, Copy)]
struct RateDivisor {
    rate: u64,
    magic: u64,
}

impl RateDivisor {
    fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        Self {
            rate,
            magic: u64::MAX / rate,
        }
    }

    /// `ceil(debt / rate)`: nanoseconds until `debt` units are repaid, saturating at `u64::MAX`.
    #[inline]
    fn wait_ns(self, debt: u128) -> u64 {
        let Ok(d) = u64::try_from(debt) else {
            return u64::try_from(debt.div_ceil(u128::from(self.rate))).unwrap_or(u64::MAX);
        };
        let mut q = ((u128::from(d) * u128::from(self.magic)) >> 64) as u64;
        // q <= d / rate, so q × rate <= d: neither the product nor the difference overflows.
        let mut rem = d - q * self.rate;
        while rem >= self.rate {
            q += 1;
            rem -= self.rate;
        }
        q + u64::from(rem > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rate_divisor_edges() {
        for rate in [
            1,
            2,
            3,
            7,
            150_000_000,
            u64::MAX / 3,
            u64::MAX - 1,
            u64::MAX,
        ] {
            let div = RateDivisor::new(rate);
            for d in [
                0,
                1,
                rate - 1,
                rate,
                rate.saturating_add(1),
                u64::MAX - 1,
                u64::MAX,
            ] {
                assert_eq!(div.wait_ns(u128::from(d)), d.div_ceil(rate), "{d} / {rate}");
            }
        }
        assert_eq!(RateDivisor::new(1).wait_ns(u128::MAX), u64::MAX);
        assert_eq!(RateDivisor::new(1 << 40).wait_ns(1 << 100), 1 << 60);
    }

    proptest! {
        #[test]
        fn rate_divisor_matches_div_ceil(rate in 1u64.., d in any::<u64>(), small in 0u64..1 << 50) {
            let div = RateDivisor::new(rate);
            prop_assert_eq!(div.wait_ns(u128::from(d)), d.div_ceil(rate));
            prop_assert_eq!(div.wait_ns(u128::from(small)), small.div_ceil(rate));
        }
    }
}
