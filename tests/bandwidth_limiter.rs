//! Behaviour of the bandwidth package limiter on generated packet sequences.

use dnatsim::bandwidth::{
    Admission, BandwidthError, Direction, Limiter, TokenBucket, VirtualClock, WallClock,
    counted_bytes, default_burst_bytes, write_svg,
};
use dnatsim::rules::{BandwidthPackage, CountMode, LimitMode};
use proptest::prelude::*;

const RATE: u64 = 150_000_000;
const SEC: u64 = 1_000_000_000;
/// 1500-byte packets at 300 Mbps: one every 40 µs.
const GAP_300: u64 = 40_000;

fn pkg(mode: LimitMode) -> BandwidthPackage {
    BandwidthPackage {
        rate_bps: RATE,
        public_ips: vec![],
        burst_bytes: None,
        mode,
        queue_limit_bytes: None,
        latency_ms: None,
        inbound: true,
        outbound: true,
        count: CountMode::L3,
    }
}

fn depart(v: Admission) -> Option<u64> {
    match v {
        Admission::Pass { depart_ns } => Some(depart_ns),
        Admission::Drop => None,
    }
}

/// Offer `n` packets of `size` every `gap` ns from `start`; carried bytes per 1 s window of departure.
fn run_constant(l: &mut Limiter, start: u64, gap: u64, n: u64, size: u32) -> Vec<u64> {
    let mut windows = vec![];
    for i in 0..n {
        let t = start + i * gap;
        if let Some(d) = depart(l.offer(Direction::Inbound, t, size)) {
            let w = ((d - start) / SEC) as usize;
            if windows.len() <= w {
                windows.resize(w + 1, 0);
            }
            windows[w] += u64::from(size);
        }
    }
    windows
}

#[test]
fn police_300_mbps_carries_150_in_every_second() {
    let mut l = Limiter::new(&pkg(LimitMode::Police)).unwrap();
    let n = 10 * SEC / GAP_300;
    let windows = run_constant(&mut l, 0, GAP_300, n, 1500);
    assert_eq!(windows.len(), 10);
    for (i, bytes) in windows.iter().enumerate().skip(1) {
        let bits = bytes * 8;
        let err = (bits as f64 - RATE as f64).abs() / RATE as f64;
        assert!(err <= 0.005, "window {i}: {bits} bits, {err}");
    }
    let s = l.stats();
    let t = &s.inbound.totals;
    let span = (n - 1) * GAP_300;
    let burst = default_burst_bytes(RATE);
    assert!(
        u128::from(t.carried_bits) * 1_000_000_000
            <= u128::from(RATE) * u128::from(span) + u128::from(burst) * 8 * 1_000_000_000
    );
    assert_eq!(t.offered_bits, n * 1500 * 8);
    assert_eq!(t.carried_bits + t.dropped_bits, t.offered_bits);
    assert!((t.drop_share - 0.5).abs() < 0.01, "{}", t.drop_share);
    assert_eq!(t.dropped_packets, t.dropped_no_credit_packets);
    // 100 ms intervals after the first carry the rate within one packet.
    assert_eq!(s.inbound.intervals.len(), 100);
    for r in &s.inbound.intervals[1..] {
        assert!(r.carried_bits.abs_diff(15_000_000) <= 12_000, "{r:?}");
        assert!(r.offered_bits.abs_diff(30_000_000) <= 12_000, "{r:?}");
        // At an interval's end: under one packet left, plus 40 µs of refill (750 bytes).
        assert!(r.bucket_fill_bytes.unwrap() < 2250, "{r:?}");
        assert_eq!(r.delay_p50_ns, None);
    }
    assert!(t.peak_offered_bps >= 299_000_000);
    assert!(s.outbound.intervals.is_empty());
}

#[test]
fn below_the_cap_nothing_drops_and_nothing_waits() {
    for mode in [LimitMode::Police, LimitMode::Shape] {
        let mut l = Limiter::new(&pkg(mode)).unwrap();
        // 100 Mbps: 1500 bytes every 120 µs, plus some small packets in between.
        for i in 0..50_000u64 {
            let t = 7 + i * 120_000;
            assert_eq!(
                l.offer(Direction::Inbound, t, 1500),
                Admission::Pass { depart_ns: t }
            );
            assert_eq!(
                l.offer(Direction::Outbound, t + 1, 64),
                Admission::Pass { depart_ns: t + 1 }
            );
        }
        let s = l.stats();
        assert_eq!(s.inbound.totals.dropped_bits, 0);
        assert_eq!(s.outbound.totals.dropped_bits, 0);
        assert_eq!(s.inbound.totals.carried_bits, s.inbound.totals.offered_bits);
        if mode == LimitMode::Shape {
            assert_eq!(s.inbound.totals.worst_queue_delay_ns, Some(0));
            assert_eq!(s.inbound.intervals[3].delay_p99_ns, Some(0));
        }
    }
}

#[test]
fn shape_with_a_large_queue_delays_instead_of_dropping() {
    let mut p = pkg(LimitMode::Shape);
    p.queue_limit_bytes = Some(1 << 30);
    p.latency_ms = Some(60_000);
    let mut l = Limiter::new(&p).unwrap();
    let n = 2 * SEC / GAP_300;
    let mut last = 0;
    let mut by_second = [0u64; 5];
    for i in 0..n {
        let t = i * GAP_300;
        let d = depart(l.offer(Direction::Inbound, t, 1500)).expect("no drops");
        assert!(d >= last && d >= t);
        last = d;
        by_second[(d / SEC) as usize] += 1500 * 8;
    }
    // Offered 2 s at twice the rate: the queue drains until about 4 s.
    assert!(last > 3_900_000_000 && last < 4 * SEC, "{last}");
    // The queue empties at 3.99 s (600 Mb offered minus the burst, at 150 Mbps).
    for (i, bits) in by_second.iter().enumerate().take(3).skip(1) {
        assert!(bits.abs_diff(RATE) <= RATE / 200, "second {i}: {bits}");
    }
    let s = l.stats();
    let t = &s.inbound.totals;
    assert_eq!(t.dropped_bits, 0);
    assert!(t.worst_queue_delay_ns.unwrap() > 1_900_000_000);
    assert!(t.peak_carried_bps <= RATE + default_burst_bytes(RATE) * 8 * 10);
    // Carried bits are placed by departure: intervals continue after the last arrival.
    let last_iv = s.inbound.intervals.last().unwrap();
    assert_eq!(last_iv.index, 39);
    assert_eq!(last_iv.offered_bits, 0);
    for r in &s.inbound.intervals[1..39] {
        assert!(r.carried_bits.abs_diff(15_000_000) <= 12_000, "{r:?}");
    }
    for r in &s.inbound.intervals[1..20] {
        let p50 = r.delay_p50_ns.unwrap();
        let p99 = r.delay_p99_ns.unwrap();
        let max = r.delay_max_ns.unwrap();
        assert!(p50 <= p99 && p99 <= max && p50 > 0, "{r:?}");
        assert!(r.backlog_bytes.unwrap() > 0);
    }
    // At twice the rate the backlog at t is rate × t minus the burst: delay = t - 10 ms
    // (p50 of interval 10 is at t = 1.05 s; the histogram reports within 0.4 %).
    let r = &s.inbound.intervals[10];
    assert!(
        r.delay_p50_ns.unwrap().abs_diff(1_040_000_000) < 5_000_000,
        "{r:?}"
    );
}

#[test]
fn shape_with_a_small_queue_tail_drops() {
    let mut p = pkg(LimitMode::Shape);
    p.queue_limit_bytes = Some(30_000);
    let mut l = Limiter::new(&p).unwrap();
    assert_eq!(l.config().latency_ms, 2); // derived: 30 KB drain in 1.6 ms, rounded up
    let n = SEC / GAP_300;
    let mut last = 0;
    let mut passed = 0u64;
    for i in 0..n {
        let t = i * GAP_300;
        if let Some(d) = depart(l.offer(Direction::Inbound, t, 1500)) {
            assert!(d >= last);
            assert!(d - t <= 30_000 * 8 * SEC / RATE + 1);
            last = d;
            passed += 1;
        }
    }
    let t = l.stats().inbound.totals;
    assert!(t.dropped_queue_full_packets > 0);
    assert_eq!(t.dropped_packets, t.dropped_queue_full_packets);
    assert_eq!(t.carried_bits + t.dropped_bits, t.offered_bits);
    assert_eq!(t.carried_packets + t.dropped_packets, t.offered_packets);
    assert_eq!(t.carried_packets, passed);

    // With the default limits (50 ms), the latency limit and queue limit agree.
    let mut l = Limiter::new(&pkg(LimitMode::Shape)).unwrap();
    for i in 0..n {
        let t = i * GAP_300;
        if let Some(d) = depart(l.offer(Direction::Inbound, t, 1500)) {
            assert!(d - t <= 50_000_000);
        }
    }
    let t = l.stats().inbound.totals;
    assert!(t.dropped_packets > 0);
    assert_eq!(t.carried_bits + t.dropped_bits, t.offered_bits);
    assert!(t.worst_queue_delay_ns.unwrap() <= 50_000_000);
}

#[test]
fn idle_refills_to_burst_and_no_more() {
    let mut p = pkg(LimitMode::Police);
    p.rate_bps = 8_000_000; // one byte per µs
    p.burst_bytes = Some(10_000);
    let mut l = Limiter::new(&p).unwrap();
    let drain = |l: &mut Limiter, t: u64| {
        let mut passed = 0;
        while l.offer(Direction::Inbound, t, 1000) != Admission::Drop {
            passed += 1;
        }
        passed
    };
    assert_eq!(drain(&mut l, 0), 10);
    assert_eq!(l.bucket_fill_bytes(Direction::Inbound, 5_000_000), 5_000);
    assert_eq!(l.bucket_fill_bytes(Direction::Inbound, 3_600 * SEC), 10_000);
    assert_eq!(drain(&mut l, 3_600 * SEC), 10);
    // Half refilled after 5 ms.
    assert_eq!(drain(&mut l, 3_600 * SEC + 5_000_000), 5);
}

#[test]
fn directions_do_not_share_credit() {
    let mut p = pkg(LimitMode::Police);
    p.burst_bytes = Some(15_000);
    let mut l = Limiter::new(&p).unwrap();
    for _ in 0..10 {
        assert!(depart(l.offer(Direction::Inbound, 100, 1500)).is_some());
    }
    assert_eq!(l.offer(Direction::Inbound, 100, 1500), Admission::Drop);
    for _ in 0..10 {
        assert!(depart(l.offer(Direction::Outbound, 100, 1500)).is_some());
    }
    assert_eq!(l.offer(Direction::Outbound, 100, 1500), Admission::Drop);

    // A direction the package does not list passes untouched, at any rate.
    p.outbound = false;
    let mut l = Limiter::new(&p).unwrap();
    for i in 0..100_000u64 {
        assert_eq!(
            l.offer(Direction::Outbound, i * 1000, 1500),
            Admission::Pass {
                depart_ns: i * 1000
            }
        );
    }
    let s = l.stats();
    assert!(!s.outbound.limited);
    assert_eq!(s.outbound.totals.dropped_bits, 0);
    assert_eq!(s.outbound.intervals[0].bucket_fill_bytes, None);
    assert_eq!(s.config.directions, vec!["inbound"]);
}

#[test]
fn time_going_backwards_mints_no_credit() {
    for mode in [LimitMode::Police, LimitMode::Shape] {
        let mut p = pkg(mode);
        p.rate_bps = 8_000_000;
        p.burst_bytes = Some(10_000);
        p.queue_limit_bytes = Some(2_000);
        let mut l = Limiter::new(&p).unwrap();
        let t0 = 1_000_000_000;
        let mut passed = 0;
        for _ in 0..20 {
            if depart(l.offer(Direction::Inbound, t0, 1000)).is_some() {
                passed += 1;
            }
        }
        assert_eq!(passed, if mode == LimitMode::Police { 10 } else { 12 });
        // Earlier timestamps are treated as arriving at t0: still no credit.
        let mut last = 0;
        for t in [t0 - 1, 500_000_000, 0, t0] {
            match l.offer(Direction::Inbound, t, 1000) {
                Admission::Drop => {}
                Admission::Pass { depart_ns } => panic!("{mode:?} passed at {t}: {depart_ns}"),
            }
            last = last.max(t);
        }
        // Credit accrues from t0, not from the earlier stamps: 1 ms is 1000 bytes.
        let t1 = t0 + 3_000_000;
        assert_eq!(
            l.bucket_fill_bytes(Direction::Inbound, t1),
            if mode == LimitMode::Police {
                3_000
            } else {
                1_000
            }
        );
        // Extremes neither panic nor break anything.
        for t in [u64::MAX, 0, u64::MAX - 1, 1, u64::MAX] {
            let _ = l.offer(Direction::Inbound, t, u32::MAX);
            let _ = l.offer(Direction::Outbound, t, 0);
            let _ = l.offer(Direction::Inbound, t, 1);
        }
        let s = l.stats();
        assert_eq!(
            s.inbound.totals.carried_bits + s.inbound.totals.dropped_bits,
            s.inbound.totals.offered_bits
        );
        let _ = serde_json::to_string(&s).unwrap();
    }
}

#[test]
fn clocks_feed_the_limiter() {
    let mut l = Limiter::new(&pkg(LimitMode::Police)).unwrap();
    let mut clock = VirtualClock::new(1_000);
    assert_eq!(
        l.offer_at(&clock, Direction::Inbound, 1500),
        Admission::Pass { depart_ns: 1_000 }
    );
    clock.advance(500);
    assert_eq!(
        l.offer_at(&clock, Direction::Inbound, 1500),
        Admission::Pass { depart_ns: 1_500 }
    );
    let wall = WallClock::new();
    let mut l = Limiter::new(&pkg(LimitMode::Shape)).unwrap();
    assert!(
        depart(l.offer_at(&wall, Direction::Outbound, 1500))
            .is_some_and(|d| d > 1_600_000_000 * SEC)
    );
}

#[test]
fn exact_rate_over_one_second() {
    // After draining the burst, one second carries exactly rate/8 bytes, give or take a packet.
    for size in [1500u32, 1337, 64] {
        let mut l = Limiter::new(&pkg(LimitMode::Police)).unwrap();
        let start = 123_456_789;
        while l.offer(Direction::Inbound, start, size) != Admission::Drop {}
        let gap = u64::from(size) * 8 * SEC / (2 * RATE); // offered at about twice the rate
        let mut carried = 0u64;
        let mut t = start;
        while t < start + SEC {
            t += gap;
            if depart(l.offer(Direction::Inbound, t, size)).is_some() {
                carried += u64::from(size);
            }
        }
        let t_end = t;
        let expected =
            u64::try_from(u128::from(RATE) * u128::from(t_end - start) / 8 / u128::from(SEC))
                .unwrap();
        assert!(
            carried.abs_diff(expected) <= u64::from(size),
            "{size}: {carried} vs {expected}"
        );
        assert!(
            carried.abs_diff(RATE / 8) <= 2 * u64::from(size),
            "{size}: {carried}"
        );
    }
}

#[test]
fn exact_rate_over_a_long_run() {
    // 100 s: rounding the rate to whole ns per byte would be 75 MB off; exact credit is within a packet.
    let mut l = Limiter::new(&pkg(LimitMode::Police)).unwrap();
    let n = 100 * SEC / GAP_300;
    let windows = run_constant(&mut l, 0, GAP_300, n, 1500);
    let carried: u64 = windows.iter().sum();
    let span = (n - 1) * GAP_300;
    let expected =
        default_burst_bytes(RATE) + RATE * (span / SEC) / 8 + RATE / 8 * (span % SEC) / SEC;
    assert!(
        carried <= expected && expected - carried <= 1500,
        "{carried} vs {expected}"
    );
}

#[test]
fn intervals_start_at_the_first_packet_and_skip_silence() {
    let mut l = Limiter::with_interval(&pkg(LimitMode::Police), 10_000_000).unwrap();
    let t0 = 5_050_000_000;
    let _ = l.offer(Direction::Outbound, t0, 100);
    let _ = l.offer(Direction::Inbound, t0 + 25_000_000, 100);
    let _ = l.offer(Direction::Inbound, t0 + 86_400 * SEC, 100);
    let s = l.stats();
    assert_eq!(s.origin_ns, Some(t0));
    assert_eq!(s.outbound.intervals[0].start_ns, t0);
    assert_eq!(s.inbound.intervals.len(), 2);
    assert_eq!(s.inbound.intervals[0].index, 2);
    assert_eq!(s.inbound.intervals[0].start_ns, t0 + 20_000_000);
    assert_eq!(s.inbound.intervals[1].index, 8_640_000);
    let v = serde_json::to_value(&s).unwrap();
    assert_eq!(v["config"]["rate_bps"], 150_000_000);
    assert_eq!(v["config"]["burst_bytes"], 187_500);
    assert_eq!(v["config"]["mode"], "police");
    assert_eq!(v["config"]["count"], "l3");
    assert_eq!(v["config"]["interval_ns"], 10_000_000);
    assert_eq!(v["inbound"]["intervals"][0]["offered_bits"], 800);
    assert_eq!(v["inbound"]["intervals"][1]["bucket_fill_bytes"], 187_500);
    assert!(v["inbound"]["intervals"][0]["delay_p99_ns"].is_null());
    assert_eq!(v["inbound"]["totals"]["carried_bits"], 1600);
}

#[test]
fn shape_queue_can_skip_intervals_and_arrivals_fill_them_in() {
    // A queued departure far ahead creates a record before later arrivals fill in the intervals between.
    let mut p = pkg(LimitMode::Shape);
    p.rate_bps = 8_000_000;
    p.burst_bytes = Some(1000);
    p.queue_limit_bytes = Some(1_000_000);
    let mut l = Limiter::with_interval(&p, 1_000_000).unwrap();
    assert_eq!(
        l.offer(Direction::Inbound, 0, 1000),
        Admission::Pass { depart_ns: 0 }
    );
    assert_eq!(
        l.offer(Direction::Inbound, 0, 50_000),
        Admission::Pass {
            depart_ns: 50_000_000
        }
    );
    assert_eq!(
        l.offer(Direction::Inbound, 20_000_000, 100),
        Admission::Pass {
            depart_ns: 50_100_000
        }
    );
    assert_eq!(
        l.offer(Direction::Inbound, 30_000_000, 100),
        Admission::Pass {
            depart_ns: 50_200_000
        }
    );
    let s = l.stats();
    let idx: Vec<u64> = s.inbound.intervals.iter().map(|r| r.index).collect();
    assert_eq!(idx, vec![0, 20, 30, 50]);
    assert_eq!(s.inbound.intervals[3].carried_bits, 50_200 * 8);
    assert_eq!(s.inbound.intervals[3].offered_bits, 0);
    assert_eq!(s.inbound.intervals[1].offered_bits, 800);
    assert_eq!(
        s.inbound.intervals[1].backlog_bytes,
        Some(50_000 + 100 - 21_000)
    );
    assert_eq!(s.inbound.intervals[0].delay_max_ns, Some(50_000_000));
    assert_eq!(s.inbound.intervals[2].delay_max_ns, Some(20_200_000));
}

#[test]
fn configuration_errors_and_defaults() {
    let mut p = pkg(LimitMode::Police);
    p.rate_bps = 0;
    assert_eq!(Limiter::new(&p).unwrap_err(), BandwidthError::ZeroRate);
    let mut p = pkg(LimitMode::Police);
    p.burst_bytes = Some(0);
    assert_eq!(Limiter::new(&p).unwrap_err(), BandwidthError::ZeroBurst);
    assert_eq!(
        Limiter::with_interval(&pkg(LimitMode::Police), 0).unwrap_err(),
        BandwidthError::ZeroInterval
    );
    let l = Limiter::new(&pkg(LimitMode::Shape)).unwrap();
    let c = l.config();
    assert_eq!(
        (c.burst_bytes, c.queue_limit_bytes, c.latency_ms),
        (187_500, 937_500, 50)
    );
    let r = c.report();
    assert_eq!(
        r.defaults_applied,
        vec!["burst_bytes", "queue_limit_bytes", "latency_ms"]
    );
    assert_eq!(default_burst_bytes(1_000_000), 3076);
    assert_eq!(counted_bytes(CountMode::L2, 1500, 1514), 1538);
}

#[test]
fn plot_shows_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bw.svg");
    let mut p = pkg(LimitMode::Police);
    p.outbound = false;
    let mut l = Limiter::new(&p).unwrap();
    let _ = run_constant(&mut l, 0, GAP_300, 3 * SEC / GAP_300, 1500);
    let _ = l.offer(Direction::Outbound, 10, 1500);
    write_svg(&l.stats(), &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    assert!(svg.starts_with("<svg"));
    assert!(svg.contains("150 Mbps cap"));
    assert!(svg.contains("rate (Mbps)"));
    assert!(svg.contains("offered") && svg.contains("carried") && svg.contains("dropped"));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );
    // An empty run still plots; a missing directory is an error, not a panic.
    let empty = Limiter::new(&pkg(LimitMode::Shape)).unwrap();
    write_svg(&empty.stats(), dir.path().join("empty.svg")).unwrap();
    assert!(write_svg(&empty.stats(), dir.path().join("no/such/dir.svg")).is_err());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn carried_never_exceeds_rate_times_time_plus_burst(
        rate in 1_000u64..10_000_000_000,
        burst in 1u64..200_000,
        shape in any::<bool>(),
        pkts in prop::collection::vec((1u32..9_000, 0u64..2_000_000, 0u64..4), 1..400),
    ) {
        let mut p = pkg(if shape { LimitMode::Shape } else { LimitMode::Police });
        p.rate_bps = rate;
        p.burst_bytes = Some(burst);
        let mut l = Limiter::new(&p).unwrap();
        let mut t = 1_000u64;
        let (mut first, mut max_t, mut last_depart) = (None, 0u64, 0u64);
        let mut carried: u128 = 0;
        for (size, gap, back) in pkts {
            t += gap;
            // One packet in four is stamped in the past.
            let stamp = if back == 0 { t.saturating_sub(gap * 3) } else { t };
            first.get_or_insert(stamp);
            max_t = max_t.max(stamp);
            if let Admission::Pass { depart_ns } = l.offer(Direction::Inbound, stamp, size) {
                carried += u128::from(size) * 8;
                if shape {
                    prop_assert!(depart_ns >= last_depart);
                    last_depart = depart_ns;
                } else {
                    prop_assert_eq!(depart_ns, stamp);
                }
            }
        }
        let end = if shape { max_t.max(last_depart) } else { max_t };
        let span = u128::from(end - first.unwrap());
        prop_assert!(carried * 1_000_000_000 <= u128::from(rate) * span + u128::from(burst) * 8 * 1_000_000_000);
        let s = l.stats();
        let tot = &s.inbound.totals;
        prop_assert_eq!(u128::from(tot.carried_bits), carried);
        prop_assert_eq!(tot.carried_bits + tot.dropped_bits, tot.offered_bits);
        let by_interval: u64 = s.inbound.intervals.iter().map(|r| r.carried_bits).sum();
        prop_assert_eq!(by_interval, tot.carried_bits);
        let offered: u64 = s.inbound.intervals.iter().map(|r| r.offered_bits).sum();
        prop_assert_eq!(offered, tot.offered_bits);
        prop_assert!(s.inbound.intervals.windows(2).all(|w| w[0].index < w[1].index));
    }

    #[test]
    fn bucket_matches_a_rational_reference(
        rate in 1u64..100_000_000_000,
        burst in 1u64..1_000_000,
        steps in prop::collection::vec((0u64..10_000_000, 0u32..100_000), 1..100),
    ) {
        // Reference: credit in bits as an exact fraction credit_n / 1e9, recomputed from scratch.
        let mut b = TokenBucket::new(rate, burst);
        let depth = i128::from(burst) * 8_000_000_000;
        let mut credit = depth;
        let mut t = 0u64;
        for (dt, bytes) in steps {
            t += dt;
            b.refill(t);
            credit = (credit + i128::from(rate) * i128::from(dt)).min(depth);
            let cost = i128::from(bytes) * 8_000_000_000;
            let ok = credit >= cost;
            if ok { credit -= cost; }
            prop_assert_eq!(b.try_take(bytes), ok);
            prop_assert_eq!(b.credit_units(), credit);
        }
    }
}
