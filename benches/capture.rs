//! Read and read+write throughput of the capture layer on a generated 100k-packet pcap, and
//! read throughput on the same packets as pcapng.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dnatsim::capture::{CaptureReader, CaptureWriter, Interface, RecordMeta, WriterConfig};

const PACKETS: usize = 100_000;

/// A capture of `PACKETS` records of mixed sizes (64..1514 bytes), written with our writer.
fn generate(path: &Path, config: &WriterConfig) -> u64 {
    let mut w = CaptureWriter::create(path, config).unwrap();
    let frame: Vec<u8> = (0..1514u32).map(|i| i as u8).collect();
    for i in 0..PACKETS {
        let len = [64, 576, 1514, 128][i % 4];
        let meta = RecordMeta {
            ts_ns: 1_700_000_000_000_000_000 + i as i64 * 1000,
            orig_len: len as u32,
            interface: 0,
        };
        w.write_record(&meta, &frame[..len], None).unwrap();
    }
    w.finish().unwrap();
    std::fs::metadata(path).unwrap().len()
}

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let bytes = generate(&input, &WriterConfig::pcap(1, 65535, true));
    let out = dir.path().join("out.pcap");
    let input_ng = dir.path().join("in.pcapng");
    let bytes_ng = generate(
        &input_ng,
        &WriterConfig::pcapng(vec![Interface::new(1, 65535)]),
    );

    let mut g = c.benchmark_group("capture");
    g.throughput(Throughput::Bytes(bytes));
    g.sample_size(20);
    g.bench_function("read", |b| b.iter(|| black_box(read_all(&input))));
    g.bench_function("read_rewrite_write", |b| {
        b.iter(|| {
            let mut r = CaptureReader::open(&input).unwrap();
            let mut w = CaptureWriter::create(&out, &WriterConfig::like(&r)).unwrap();
            while let Some(p) = r.next_packet().unwrap() {
                w.write_in_place(&p.meta(), p.data, |d| {
                    d[0] ^= 1;
                    true
                })
                .unwrap();
            }
            w.finish().unwrap();
        })
    });
    g.finish();

    let mut g = c.benchmark_group("capture_pcapng");
    g.throughput(Throughput::Bytes(bytes_ng));
    g.sample_size(20);
    g.bench_function("read", |b| b.iter(|| black_box(read_all(&input_ng))));
    g.finish();
}

/// Reads every record of `path` and sums the captured lengths.
fn read_all(path: &Path) -> u64 {
    let mut r = CaptureReader::open(path).unwrap();
    let mut sum = 0u64;
    while let Some(p) = r.next_packet().unwrap() {
        sum += p.data.len() as u64;
    }
    sum
}

criterion_group!(benches, bench);
criterion_main!(benches);
