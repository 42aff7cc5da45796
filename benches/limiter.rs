//! Per-packet cost of the bandwidth package limiter (police and shape), statistics included.
//!
//! Each case runs twice: on wall time (criterion's default) and on the thread's CPU time, because
//! this bench often runs on a machine shared with compilers, where wall time counts the
//! preemptions too. The CPU-time figures are the ones to compare with the 10 ns budget.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnatsim::bandwidth::{Direction, Limiter};
use dnatsim::rules::{BandwidthPackage, CountMode, LimitMode};

const BATCH: u64 = 1024;

/// CPU time of the calling thread, from `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`.
struct ThreadCpuTime;

fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    (ts.tv_sec as u64) * 1_000_000_000 + ts.tv_nsec as u64
}

/// Formats CPU nanoseconds the way criterion formats wall time, minus the unit scaling.
struct NsFormatter;

impl ValueFormatter for NsFormatter {
    fn scale_values(&self, _typical: f64, _values: &mut [f64]) -> &'static str {
        "ns (cpu)"
    }

    fn scale_throughputs(
        &self,
        _typical: f64,
        throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let n = match throughput {
            Throughput::Elements(n) | Throughput::Bytes(n) | Throughput::BytesDecimal(n) => {
                *n as f64
            }
            _ => 1.0,
        };
        for v in values {
            *v = n * 1e3 / *v;
        }
        "Melem/s (cpu)"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &NsFormatter
    }
}

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

const CASES: [(&str, LimitMode, u64); 4] = [
    // 1500-byte packets every 40 µs: 300 Mbps, twice the cap; every 120 µs: 100 Mbps.
    ("police_over_cap_300mbps", LimitMode::Police, 40_000),
    ("police_under_cap_100mbps", LimitMode::Police, 120_000),
    ("shape_over_cap_300mbps", LimitMode::Shape, 40_000),
    ("shape_under_cap_100mbps", LimitMode::Shape, 120_000),
];

/// Offer batches of packets every `gap_ns`, one in four outbound as in a mixed capture.
fn run_cases<M: Measurement>(c: &mut Criterion<M>, group_name: &str) {
    let mut group = c.benchmark_group(group_name);
    group.throughput(Throughput::Elements(BATCH));
    for (name, mode, gap_ns) in CASES {
        let mut limiter = Limiter::new(&package(mode)).expect("valid package");
        let mut t: u64 = 0;
        group.bench_function(name, |b| {
            b.iter(|| {
                for i in 0..BATCH {
                    t += gap_ns;
                    let dir = if i % 4 == 3 {
                        Direction::Outbound
                    } else {
                        Direction::Inbound
                    };
                    let _ = black_box(limiter.offer(dir, black_box(t), black_box(1500)));
                }
            });
        });
    }
    group.finish();
}

fn wall(c: &mut Criterion<WallTime>) {
    run_cases(c, "limiter");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    run_cases(c, "limiter_cpu");
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
criterion_main!(wall_benches, cpu_benches);
