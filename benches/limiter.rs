//! Per-packet cost of the bandwidth package limiter (police and shape), statistics included.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnatsim::bandwidth::{Direction, Limiter};
use dnatsim::rules::{BandwidthPackage, CountMode, LimitMode};

const BATCH: u64 = 1024;

fn package(mode: LimitMode) -> BandwidthPackage {
    BandwidthPackage {
        rate_bps: 150_000_000,
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

/// Offer 1500-byte packets every `gap_ns` (40 µs is 300 Mbps, twice the cap; 120 µs is 100 Mbps).
fn bench_case(c: &mut Criterion, name: &str, mode: LimitMode, gap_ns: u64) {
    let mut group = c.benchmark_group("limiter");
    group.throughput(Throughput::Elements(BATCH));
    let mut limiter = Limiter::new(&package(mode)).expect("valid package");
    let mut t: u64 = 0;
    group.bench_function(name, |b| {
        b.iter(|| {
            for i in 0..BATCH {
                t += gap_ns;
                // Alternate directions the way a mixed capture would, mostly inbound.
                let dir = if i % 4 == 3 {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let _ = black_box(limiter.offer(dir, black_box(t), black_box(1500)));
            }
        });
    });
    group.finish();
}

fn limiter(c: &mut Criterion) {
    bench_case(c, "police_over_cap_300mbps", LimitMode::Police, 40_000);
    bench_case(c, "police_under_cap_100mbps", LimitMode::Police, 120_000);
    bench_case(c, "shape_over_cap_300mbps", LimitMode::Shape, 40_000);
    bench_case(c, "shape_under_cap_100mbps", LimitMode::Shape, 120_000);
}

criterion_group!(benches, limiter);
criterion_main!(benches);
