//! Per-packet translation cost: parse, classify, flow table, lookup, rewrite, checksums.
//!
//! Each iteration copies a batch of 1024 frames into a work buffer (as replay copies each
//! record into its output buffer) and translates them all in place; throughput is reported
//! per packet and per byte.
//!
//! `*_established_*`: the 1024 flows are bound before the measuring starts, so every packet
//! measured finds its flow (the common case in a capture) and every batch does equal work. `*_new_flow_*`: each iteration starts
//! from an empty translator (made outside the timing), so every packet is its flow's first:
//! the forward-table lookup and the bind. `*_miss_*`: no entry matches; the packet is dropped.

use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group};
use dnatsim::nat::{Config, ForwardTable, PacketMeta, Translator};
use dnatsim::rules::{ForwardEntry, PortSpec, Position, Protocol};
use dnatsim::wire::build::{self, Ip, Tcp};
use dnatsim::wire::checksum::sum;
use std::net::Ipv4Addr;

const BATCH: usize = 1024;

fn entry(ext: [u8; 4], ep: PortSpec, proto: Protocol, int: [u8; 4], ip: PortSpec) -> ForwardEntry {
    ForwardEntry {
        id: String::new(),
        external_ip: Ipv4Addr::from(ext),
        external_port: ep,
        ip_protocol: proto,
        internal_ip: Ipv4Addr::from(int),
        internal_port: ip,
        position: Position::default(),
    }
}

/// The tutorial's table.
fn table() -> ForwardTable {
    use PortSpec::{Any, Single};
    let e = vec![
        entry(
            [203, 0, 113, 107],
            Any,
            Protocol::Any,
            [192, 168, 1, 1],
            Any,
        ),
        entry([203, 0, 113, 55], Any, Protocol::Any, [192, 168, 1, 2], Any),
        entry(
            [203, 0, 113, 79],
            Single(80),
            Protocol::Tcp,
            [192, 168, 1, 3],
            Single(80),
        ),
        entry(
            [203, 0, 113, 79],
            Single(443),
            Protocol::Tcp,
            [192, 168, 1, 4],
            Single(443),
        ),
        entry(
            [203, 0, 113, 59],
            Single(22),
            Protocol::Tcp,
            [192, 168, 1, 5],
            Single(22),
        ),
    ];
    let ips: Vec<Ipv4Addr> = [107, 55, 79, 59, 58]
        .iter()
        .map(|&d| Ipv4Addr::new(203, 0, 113, d))
        .collect();
    ForwardTable::new(&e, &ips)
}

/// `BATCH` Ethernet frames from 256 clients to `dst:dport`, each `size` bytes long.
fn batch(proto: u8, dst: [u8; 4], dport: u16, size: usize) -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let client = u32::from_be_bytes([198, 51, 100, (i % 256) as u8]);
            let sport = 10_000 + (i / 256) as u16;
            let header = 14 + 20 + if proto == 6 { 20 } else { 8 };
            let payload = vec![0x5a; size.saturating_sub(header)];
            let ip = Ip {
                src: client,
                dst: u32::from_be_bytes(dst),
                proto,
                ttl: 64,
                id: i as u16,
                frag: 0x4000,
            };
            let psum = sum(&payload);
            let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
            if proto == 6 {
                let tcp = Tcp {
                    sport,
                    dport,
                    seq: 1,
                    ack: 0,
                    flags: 0x10,
                    mss: None,
                };
                build::put_tcp(&mut f, &ip, &tcp, &payload, psum);
            } else {
                build::put_udp(&mut f, &ip, sport, dport, &payload, psum, false);
            }
            f
        })
        .collect()
}

/// Copies each frame into its work buffer and translates it there, as replay does. Kept out
/// of line so a profiler can count its calls (one per 1024 packets).
#[inline(never)]
fn run_batch(t: &mut Translator, work: &mut [Vec<u8>], frames: &[Vec<u8>], ts: &mut u64) {
    translate_all(t, work, frames, ts);
}

/// The established cases' first pass, which binds their 1024 flows: outside `run_batch`, so
/// that every batch a profiler counts there does the same work and instructions per packet
/// do not depend on how many batches the run happened to take. In line where it is called:
/// a function of its own, identical to `run_batch`, would be merged with it.
#[inline(always)]
fn bind_flows(t: &mut Translator, work: &mut [Vec<u8>], frames: &[Vec<u8>], ts: &mut u64) {
    translate_all(t, work, frames, ts);
}

#[inline(always)]
fn translate_all(t: &mut Translator, work: &mut [Vec<u8>], frames: &[Vec<u8>], ts: &mut u64) {
    for (w, f) in work.iter_mut().zip(frames) {
        w.copy_from_slice(f);
        *ts += 1000;
        let meta = PacketMeta {
            record: 0,
            ts_ns: *ts,
            interface: 0,
            orig_len: f.len() as u32,
            link_type: 1,
        };
        let out = t.process(w, &meta);
        // Opaque, so the outcome must be computed in full; by reference, as the pipeline
        // reads it where it lies rather than copying it.
        std::hint::black_box(&out);
    }
}

fn bench(c: &mut Criterion) {
    let table = table();
    let mut g = c.benchmark_group("translate");
    let cases = [
        (
            "tcp_established_64B",
            6u8,
            [203, 0, 113, 79],
            443u16,
            64usize,
        ),
        ("tcp_established_1500B", 6, [203, 0, 113, 79], 443, 1514),
        ("udp_established_64B", 17, [203, 0, 113, 55], 53, 64),
        ("udp_established_1500B", 17, [203, 0, 113, 55], 53, 1514),
        ("tcp_miss_64B", 6, [203, 0, 113, 59], 80, 64),
        ("udp_miss_1500B", 17, [203, 0, 113, 79], 80, 1514),
    ];
    for (name, proto, dst, dport, size) in cases {
        let frames = batch(proto, dst, dport, size);
        let bytes: usize = frames.iter().map(|f| f.len()).sum();
        let mut work: Vec<Vec<u8>> = frames.clone();
        let mut t = Translator::new(&table, Config::default());
        let mut ts = 0u64;
        bind_flows(&mut t, &mut work, &frames, &mut ts);
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::new(name, "pkts"), &frames, |b, frames| {
            b.iter(|| run_batch(&mut t, &mut work, frames, &mut ts))
        });
        g.throughput(Throughput::Bytes(bytes as u64));
        g.bench_with_input(BenchmarkId::new(name, "bytes"), &frames, |b, frames| {
            b.iter(|| run_batch(&mut t, &mut work, frames, &mut ts))
        });
    }
    // First packets: a fresh translator per iteration, so all 1024 flows are new each time.
    for (name, proto, dst, dport) in [
        ("tcp_new_flow_64B", 6u8, [203, 0, 113, 79], 443u16),
        ("udp_new_flow_64B", 17, [203, 0, 113, 55], 53),
    ] {
        let frames = batch(proto, dst, dport, 64);
        let mut work: Vec<Vec<u8>> = frames.clone();
        let mut ts = 0u64;
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::new(name, "pkts"), &frames, |b, frames| {
            b.iter_batched_ref(
                || Translator::new(&table, Config::default()),
                |t| run_batch(t, &mut work, frames, &mut ts),
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

/// `TRANSLATE_PROFILE_BATCHES=N`: instead of benchmarking, binds the 64-byte TCP case's flows
/// and runs exactly N batches of them through `run_batch`, for a profiler to count
/// (`scripts/profile.sh`): with a fixed amount of work the instructions per packet repeat to
/// the instruction, which criterion's own iteration count, chosen by the clock, does not allow.
fn profile_batches(batches: u64) {
    let table = table();
    let frames = batch(6, [203, 0, 113, 79], 443, 64);
    let mut work = frames.clone();
    let mut t = Translator::new(&table, Config::default());
    let mut ts = 0u64;
    bind_flows(&mut t, &mut work, &frames, &mut ts);
    for _ in 0..batches {
        run_batch(&mut t, &mut work, &frames, &mut ts);
    }
}

criterion_group!(benches, bench);

fn main() {
    if let Some(v) = std::env::var_os("TRANSLATE_PROFILE_BATCHES") {
        match v.to_str().and_then(|v| v.parse().ok()) {
            Some(n) => profile_batches(n),
            None => {
                eprintln!("TRANSLATE_PROFILE_BATCHES={v:?}: expected a number of batches");
                std::process::exit(2);
            }
        }
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
