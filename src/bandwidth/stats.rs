//! Per-direction, per-interval statistics of the limiter, and their JSON form.
//!
//! Intervals are numbered on the capture clock from the first packet the limiter sees (in
//! either direction, so both directions' intervals line up): interval `k` covers
//! `[origin + k × interval, origin + (k + 1) × interval)`. Offered and dropped bits count in the
//! interval a packet arrives in; carried bits count in the interval it departs in, so a shaped
//! queue shows its output rate, not its input. Queue delays belong to the arrival interval.
//!
//! Only intervals in which something happened in that direction get a record: a capture with a
//! gap of days (or a corrupt timestamp) costs one record, not millions of empty ones. Readers
//! and the plot treat a missing interval as zero traffic.

use serde::Serialize;

use super::bucket::TokenBucket;
use super::histogram::DelayHistogram;
use crate::rules::{CountMode, LimitMode};

/// Why a packet was dropped (counted per direction in [`DirectionTotals`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DropReason {
    /// Police: the bucket did not hold the packet's cost.
    NoCredit,
    /// Shape: the queue would have exceeded its byte limit.
    QueueFull,
    /// Shape: the packet would have waited longer than the latency limit.
    Latency,
}

/// One interval of one direction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IntervalStats {
    /// The interval number since the first packet (`start_ns = origin_ns + index × interval_ns`).
    pub index: u64,
    /// Where the interval starts, on the capture clock.
    pub start_ns: u64,
    /// Bits of packets that arrived in the interval.
    pub offered_bits: u64,
    /// Bits of packets that departed in the interval.
    pub carried_bits: u64,
    /// Bits of packets that arrived in the interval and were dropped.
    pub dropped_bits: u64,
    /// Whole bytes of credit in the bucket at the interval's end (`null` for an unlimited direction).
    pub bucket_fill_bytes: Option<u64>,
    /// Shape: bytes still queued at the interval's end (`null` in police mode or unlimited).
    pub backlog_bytes: Option<u64>,
    /// Shape: median queue delay of the packets that arrived in the interval and passed.
    pub delay_p50_ns: Option<u64>,
    /// Shape: 99th-percentile queue delay (nearest rank, at most 0.4 % above the true value).
    pub delay_p99_ns: Option<u64>,
    /// Shape: the longest queue delay, exactly.
    pub delay_max_ns: Option<u64>,
}

/// A direction's totals over the whole run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionTotals {
    /// Bits offered.
    pub offered_bits: u64,
    /// Bits passed (in shape mode: admitted to the queue, each departs at its `depart_ns`).
    pub carried_bits: u64,
    /// Bits dropped.
    pub dropped_bits: u64,
    /// Packets offered.
    pub offered_packets: u64,
    /// Packets passed.
    pub carried_packets: u64,
    /// Packets dropped, for any reason.
    pub dropped_packets: u64,
    /// Police drops: not enough credit.
    pub dropped_no_credit_packets: u64,
    /// Shape drops: the queue byte limit was reached.
    pub dropped_queue_full_packets: u64,
    /// Shape drops: the wait would have exceeded the latency limit.
    pub dropped_latency_packets: u64,
    /// The highest offered rate of any interval, in bit/s.
    pub peak_offered_bps: u64,
    /// The highest carried rate of any interval, in bit/s (the first may exceed the rate by the burst).
    pub peak_carried_bps: u64,
    /// Dropped bits over offered bits (0 when nothing was offered).
    pub drop_share: f64,
    /// Shape: the longest queue delay of the run.
    pub worst_queue_delay_ns: Option<u64>,
}

/// One direction's report: whether it is limited, its intervals and totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DirectionStats {
    /// Whether the package limits this direction (an unlimited one passes everything untouched).
    pub limited: bool,
    /// Intervals with any traffic, in time order.
    pub intervals: Vec<IntervalStats>,
    /// Whole-run totals.
    pub totals: DirectionTotals,
}

/// The limiter configuration in effect, as the report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigReport {
    /// The rate in bit/s.
    pub rate_bps: u64,
    /// The bucket depth in bytes.
    pub burst_bytes: u64,
    /// "police" or "shape".
    pub mode: &'static str,
    /// Shape: the queue limit in bytes (`null` in police mode).
    pub queue_limit_bytes: Option<u64>,
    /// Shape: the latency limit in ms (`null` in police mode).
    pub latency_ms: Option<u64>,
    /// "l3" (IPv4 total length) or "l2" (frame + 24 bytes of Ethernet overhead).
    pub count: &'static str,
    /// The limited directions: "inbound", "outbound".
    pub directions: Vec<&'static str>,
    /// The statistics interval in ns.
    pub interval_ns: u64,
    /// Which of burst_bytes, queue_limit_bytes, latency_ms came from defaults, not the rules file.
    pub defaults_applied: Vec<&'static str>,
}

/// The report's `bandwidth` section.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BandwidthStats {
    /// The configuration in effect.
    pub config: ConfigReport,
    /// The capture time of the first packet, where interval 0 starts (`null` if none was seen).
    pub origin_ns: Option<u64>,
    /// Traffic toward the servers.
    pub inbound: DirectionStats,
    /// Traffic from the servers.
    pub outbound: DirectionStats,
}

impl ConfigReport {
    /// Names for the report, so the rules model needs no serde of its own.
    pub(crate) fn mode_name(mode: LimitMode) -> &'static str {
        match mode {
            LimitMode::Police => "police",
            LimitMode::Shape => "shape",
        }
    }

    /// The count mode's report name.
    pub(crate) fn count_name(count: CountMode) -> &'static str {
        match count {
            CountMode::L3 => "l3",
            CountMode::L2 => "l2",
        }
    }
}

/// Per-packet counters; bit totals and the worst delay are summed from the intervals instead,
/// which keeps the per-packet path to one increment.
#[derive(Debug, Clone, Default)]
struct Running {
    offered_packets: u64,
    no_credit: u64,
    queue_full: u64,
    latency: u64,
}

/// The live statistics of one direction.
///
/// Three cursors keep the per-packet path to a comparison and an add: the arrival interval,
/// the departure interval (shape), and the first interval whose end-of-interval bucket fill
/// is not yet known. Records are sorted by interval number; a record is inserted before the
/// end only when a packet arrives in an interval skipped over by an earlier queued departure.
#[derive(Debug, Clone)]
pub(crate) struct LaneStats {
    interval_ns: u64,
    limited: bool,
    shape: bool,
    recs: Vec<IntervalStats>,
    arr_pos: usize,
    arr_end: u64,
    dep_pos: usize,
    dep_start: u64,
    dep_end: u64,
    open_pos: usize,
    open_end: u64,
    next_check: u64,
    hist: DelayHistogram,
    run: Running,
}

impl LaneStats {
    /// Statistics for a direction; `interval_ns` must be positive (the limiter checks).
    pub(crate) fn new(interval_ns: u64, limited: bool, shape: bool) -> Self {
        Self {
            interval_ns: interval_ns.max(1),
            limited,
            shape,
            recs: Vec::new(),
            arr_pos: 0,
            arr_end: 0,
            dep_pos: 0,
            dep_start: 1,
            dep_end: 0,
            open_pos: 0,
            open_end: u64::MAX,
            next_check: 0,
            hist: DelayHistogram::new(),
            run: Running::default(),
        }
    }

    fn end_of(&self, r: &IntervalStats) -> u64 {
        r.start_ns.saturating_add(self.interval_ns)
    }

    /// A packet of `bits` arrives at effective time `t` (never earlier than a previous `t`).
    ///
    /// `bucket` must be the direction's bucket before this packet touches it: intervals that
    /// ended before `t` get their end-of-interval fill projected from that state.
    #[inline]
    pub(crate) fn arrive(&mut self, t: u64, origin: u64, bits: u64, bucket: &TokenBucket) {
        if t >= self.next_check {
            self.advance(t, origin, bucket);
        }
        if let Some(r) = self.recs.get_mut(self.arr_pos) {
            r.offered_bits = r.offered_bits.saturating_add(bits);
        }
        self.run.offered_packets += 1;
    }

    /// Close intervals that ended by `t` and move the arrival cursor to `t`'s interval.
    #[cold]
    fn advance(&mut self, t: u64, origin: u64, bucket: &TokenBucket) {
        if t >= self.open_end {
            self.close_until(t, bucket);
        }
        if t >= self.arr_end {
            self.move_arrival(t, origin);
        }
        self.next_check = self.open_end.min(self.arr_end);
    }

    /// The packet just offered passes now (police, unlimited, or shape with credit to spare).
    #[inline]
    pub(crate) fn carry_now(&mut self, bits: u64) {
        if let Some(r) = self.recs.get_mut(self.arr_pos) {
            r.carried_bits = r.carried_bits.saturating_add(bits);
        }
    }

    /// The packet just offered departs at `depart` (shape).
    #[inline]
    pub(crate) fn carry_at(&mut self, depart: u64, origin: u64, bits: u64) {
        if depart < self.dep_start || depart >= self.dep_end {
            self.move_departure(depart, origin);
        }
        if let Some(r) = self.recs.get_mut(self.dep_pos) {
            r.carried_bits = r.carried_bits.saturating_add(bits);
        }
    }

    /// The packet just offered waits `delay` ns in the queue (shape).
    #[inline]
    pub(crate) fn delay(&mut self, delay: u64) {
        self.hist.record(delay);
    }

    /// The packet just offered is dropped.
    #[inline]
    pub(crate) fn drop_packet(&mut self, bits: u64, reason: DropReason) {
        if let Some(r) = self.recs.get_mut(self.arr_pos) {
            r.dropped_bits = r.dropped_bits.saturating_add(bits);
        }
        match reason {
            DropReason::NoCredit => self.run.no_credit += 1,
            DropReason::QueueFull => self.run.queue_full += 1,
            DropReason::Latency => self.run.latency += 1,
        }
    }

    #[cold]
    fn close_until(&mut self, t: u64, bucket: &TokenBucket) {
        while let Some(r) = self.recs.get(self.open_pos) {
            let end = self.end_of(r);
            if end > t {
                self.open_end = end;
                return;
            }
            let (limited, shape) = (self.limited, self.shape);
            if let Some(r) = self.recs.get_mut(self.open_pos) {
                close(r, end, bucket, limited, shape);
            }
            self.open_pos += 1;
        }
        self.open_end = u64::MAX;
    }

    #[cold]
    fn move_arrival(&mut self, t: u64, origin: u64) {
        self.flush_hist();
        let idx = t.saturating_sub(origin) / self.interval_ns;
        self.arr_pos = self.slot(idx, origin);
        self.arr_end = self
            .recs
            .get(self.arr_pos)
            .map_or(u64::MAX, |r| self.end_of(r));
    }

    #[cold]
    fn move_departure(&mut self, depart: u64, origin: u64) {
        let idx = depart.saturating_sub(origin) / self.interval_ns;
        self.dep_pos = self.slot(idx, origin);
        if let Some(r) = self.recs.get(self.dep_pos) {
            self.dep_start = r.start_ns;
            self.dep_end = self.end_of(r);
        }
    }

    /// The position of interval `idx`'s record, creating it if needed.
    fn slot(&mut self, idx: u64, origin: u64) -> usize {
        let pos = match self.recs.last() {
            None => 0,
            Some(last) if idx > last.index => self.recs.len(),
            Some(_) => match self.recs.binary_search_by_key(&idx, |r| r.index) {
                Ok(p) => return p,
                Err(p) => p,
            },
        };
        let start_ns = origin.saturating_add(idx.saturating_mul(self.interval_ns));
        self.recs.insert(
            pos,
            IntervalStats {
                index: idx,
                start_ns,
                offered_bits: 0,
                carried_bits: 0,
                dropped_bits: 0,
                bucket_fill_bytes: None,
                backlog_bytes: None,
                delay_p50_ns: None,
                delay_p99_ns: None,
                delay_max_ns: None,
            },
        );
        // Cursors pointing at records from `pos` on moved one place; the open boundary did not,
        // because a new record always lies after every closed one.
        if pos <= self.arr_pos && pos < self.recs.len() - 1 {
            self.arr_pos += 1;
        }
        if pos <= self.dep_pos && pos < self.recs.len() - 1 {
            self.dep_pos += 1;
        }
        self.open_end = self
            .recs
            .get(self.open_pos)
            .map_or(u64::MAX, |r| self.end_of(r));
        self.next_check = self.open_end.min(self.arr_end);
        pos
    }

    fn flush_hist(&mut self) {
        if self.hist.len() == 0 {
            return;
        }
        if let Some(r) = self.recs.get_mut(self.arr_pos) {
            fill_delays(r, &self.hist);
        }
        self.hist.reset();
    }

    /// The report for this direction, as if the run ended now: open intervals get the fill the
    /// bucket would have at their ends with no further packets.
    pub(crate) fn snapshot(&self, bucket: &TokenBucket) -> DirectionStats {
        let mut intervals = self.recs.clone();
        for r in intervals.iter_mut().skip(self.open_pos) {
            let end = r.start_ns.saturating_add(self.interval_ns);
            close(r, end, bucket, self.limited, self.shape);
        }
        if self.hist.len() > 0
            && let Some(r) = intervals.get_mut(self.arr_pos)
        {
            fill_delays(r, &self.hist);
        }
        let rate = |bits: u64| {
            let bps = u128::from(bits) * 1_000_000_000 / u128::from(self.interval_ns);
            u64::try_from(bps).unwrap_or(u64::MAX)
        };
        let peak_offered_bps = intervals.iter().map(|r| rate(r.offered_bits)).max();
        let peak_carried_bps = intervals.iter().map(|r| rate(r.carried_bits)).max();
        let sum = |f: fn(&IntervalStats) -> u64| {
            intervals.iter().fold(0u64, |a, r| a.saturating_add(f(r)))
        };
        let offered_bits = sum(|r| r.offered_bits);
        let carried_bits = sum(|r| r.carried_bits);
        let dropped_bits = sum(|r| r.dropped_bits);
        let worst_queue_delay_ns = intervals.iter().filter_map(|r| r.delay_max_ns).max();
        let run = &self.run;
        let dropped_packets = run.no_credit + run.queue_full + run.latency;
        let drop_share = if offered_bits == 0 {
            0.0
        } else {
            dropped_bits as f64 / offered_bits as f64
        };
        DirectionStats {
            limited: self.limited,
            intervals,
            totals: DirectionTotals {
                offered_bits,
                carried_bits,
                dropped_bits,
                offered_packets: run.offered_packets,
                carried_packets: run.offered_packets.saturating_sub(dropped_packets),
                dropped_packets,
                dropped_no_credit_packets: run.no_credit,
                dropped_queue_full_packets: run.queue_full,
                dropped_latency_packets: run.latency,
                peak_offered_bps: peak_offered_bps.unwrap_or(0),
                peak_carried_bps: peak_carried_bps.unwrap_or(0),
                drop_share,
                worst_queue_delay_ns,
            },
        }
    }
}

fn close(r: &mut IntervalStats, end: u64, bucket: &TokenBucket, limited: bool, shape: bool) {
    if limited {
        r.bucket_fill_bytes = Some(bucket.fill_bytes_at(end));
        if shape {
            r.backlog_bytes = Some(bucket.debt_bytes_at(end));
        }
    }
}

fn fill_delays(r: &mut IntervalStats, h: &DelayHistogram) {
    r.delay_p50_ns = h.percentile(50);
    r.delay_p99_ns = h.percentile(99);
    r.delay_max_ns = h.max();
}
