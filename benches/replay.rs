//! Replay end to end: read a capture, translate, apply the bandwidth package, write a capture.
//! Reported per packet and per byte, for the seed scenario's traffic mixes, with one thread
//! (`t1`) and with two (`t2`, the read-ahead pipeline), so their ratio comes from one run.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dnatsim::bandwidth::LimiterConfig;
use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};
use dnatsim::nat::ForwardTable;
use dnatsim::pipeline::{Quiet, ReplayOptions, replay};
use dnatsim::traffic::{GenConfig, Generator, Mix};
use std::path::Path;

const PACKETS: u64 = 200_000;

fn generate(rules: &dnatsim::rules::Rules, mix: Mix, path: &Path) -> u64 {
    generate_flows(rules, mix, PACKETS, 1024, path)
}

fn generate_flows(
    rules: &dnatsim::rules::Rules,
    mix: Mix,
    packets: u64,
    flows: u32,
    path: &Path,
) -> u64 {
    let config = GenConfig {
        packets,
        mix,
        flows,
        rate_mbps: 100.0,
        ..GenConfig::default()
    };
    let mut g = Generator::new(rules, &config).expect("the seed rules generate traffic");
    g.write_pcap(path).expect("writing the input");
    std::fs::metadata(path).map_or(0, |m| m.len())
}

fn bench(c: &mut Criterion) {
    let rules = dnatsim::rules::parse_file(Path::new("pcaps/seed/rules.toml"))
        .expect("seed rules")
        .rules;
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let dir = tempfile::tempdir().expect("temp dir");
    let mut g = c.benchmark_group("replay");
    g.sample_size(10);
    for (name, mix) in [
        ("tcp64", Mix::Tcp64),
        ("imix", Mix::Imix),
        ("scenario", Mix::Scenario),
    ] {
        let input = dir.path().join(format!("{name}.pcap"));
        let bytes = generate(&rules, mix, &input);
        let output = dir.path().join("out.pcap");
        for threads in [1, 2] {
            let options = ReplayOptions {
                bandwidth: Some(
                    LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000)
                        .expect("valid package"),
                ),
                threads,
                ..ReplayOptions::default()
            };
            let run = || {
                let mut reader = CaptureReader::open(&input).expect("input");
                let mut writer =
                    CaptureWriter::create(&output, &WriterConfig::like(&reader)).expect("output");
                let r = replay(&mut reader, Some(&mut writer), &table, &options, &mut Quiet)
                    .expect("replay");
                writer.finish().expect("finish");
                r.counters.packets_in
            };
            let id = format!("{name}/t{threads}");
            g.throughput(Throughput::Elements(PACKETS));
            g.bench_function(BenchmarkId::new(&id, "pkts"), |b| b.iter(run));
            g.throughput(Throughput::Bytes(bytes));
            g.bench_function(BenchmarkId::new(&id, "bytes"), |b| b.iter(run));
        }
    }
    g.finish();

    // Many flows: 2,000,000 packets either way; 1,000,000 flows keeps about 860,000 alive at
    // once, far past every cache.
    let mut g = c.benchmark_group("flows");
    g.sample_size(10);
    const FLOW_PACKETS: u64 = 2_000_000;
    for flows in [1024u32, 1_000_000] {
        let input = dir.path().join(format!("flows{flows}.pcap"));
        generate_flows(&rules, Mix::Tcp64, FLOW_PACKETS, flows, &input);
        let output = dir.path().join("out.pcap");
        let options = ReplayOptions {
            threads: 2,
            ..ReplayOptions::default()
        };
        let run = || {
            let mut reader = CaptureReader::open(&input).expect("input");
            let mut writer =
                CaptureWriter::create(&output, &WriterConfig::like(&reader)).expect("output");
            let r = replay(&mut reader, Some(&mut writer), &table, &options, &mut Quiet)
                .expect("replay");
            writer.finish().expect("finish");
            assert_eq!(r.flows.evicted, 0, "the default table holds every flow");
            r.counters.packets_in
        };
        g.throughput(Throughput::Elements(FLOW_PACKETS));
        g.bench_function(BenchmarkId::new(format!("tcp64/{flows}"), "pkts"), |b| {
            b.iter(run)
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
