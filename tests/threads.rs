//! `--threads N`: the output is byte-identical for every N, whatever the mix (fragments out
//! of order, ICMP errors, shaping, annotations, pcapng interfaces).

mod common;

use common::generate_capture;
use dnatsim::bandwidth::LimiterConfig;
use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};
use dnatsim::nat::ForwardTable;
use dnatsim::pipeline::{Quiet, ReplayOptions, ReplayResult, replay};
use dnatsim::rules::{LimitMode, Rules};
use dnatsim::traffic::{GenConfig, Mix};
use std::path::Path;

fn rules() -> Rules {
    dnatsim::rules::parse_file(Path::new("pcaps/seed/rules.toml"))
        .unwrap()
        .rules
}

fn run(
    input: &Path,
    output: &Path,
    rules: &Rules,
    options: &ReplayOptions,
) -> (Vec<u8>, ReplayResult) {
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let mut reader = CaptureReader::open(input).unwrap();
    let config = if options.annotate {
        WriterConfig::pcapng_annotated(&reader)
    } else {
        WriterConfig::like(&reader)
    };
    let mut writer = CaptureWriter::create(output, &config).unwrap();
    let result = replay(&mut reader, Some(&mut writer), &table, options, &mut Quiet).unwrap();
    writer.finish().unwrap();
    (std::fs::read(output).unwrap(), result)
}

fn assert_same_for_all_thread_counts(input: &Path, rules: &Rules, mut options: ReplayOptions) {
    let dir = tempfile::tempdir().unwrap();
    options.threads = 1;
    let (want, one) = run(input, &dir.path().join("1"), rules, &options);
    assert!(one.counters.packets_out > 0);
    for threads in [2, 3, 4] {
        options.threads = threads;
        let (got, many) = run(
            input,
            &dir.path().join(threads.to_string()),
            rules,
            &options,
        );
        assert!(
            got == want,
            "{threads} threads: output differs from one thread"
        );
        assert_eq!(many.counters, one.counters, "{threads} threads: counters");
        assert_eq!(many.flows.created, one.flows.created);
        assert_eq!(many.flows.expired, one.flows.expired);
    }
}

#[test]
fn scenario_mix_with_police_is_identical_for_any_thread_count() {
    let rules = rules();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let config = GenConfig {
        packets: 30_000,
        rate_mbps: 400.0,
        seed: 7,
        ..GenConfig::default()
    };
    generate_capture(&rules, &config, &input);
    let options = ReplayOptions {
        bandwidth: Some(LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000).unwrap()),
        ..ReplayOptions::default()
    };
    assert_same_for_all_thread_counts(&input, &rules, options);
}

#[test]
fn shaping_and_annotations_are_identical_for_any_thread_count() {
    let mut rules = rules();
    rules.bandwidth_package.mode = LimitMode::Shape;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let config = GenConfig {
        packets: 20_000,
        rate_mbps: 300.0,
        seed: 3,
        mix: Mix::Scenario,
        ..GenConfig::default()
    };
    generate_capture(&rules, &config, &input);
    let options = ReplayOptions {
        annotate: true,
        bandwidth: Some(LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000).unwrap()),
        ..ReplayOptions::default()
    };
    assert_same_for_all_thread_counts(&input, &rules, options);
}

#[test]
fn the_bundled_sample_is_identical_for_any_thread_count() {
    let rules = rules();
    assert_same_for_all_thread_counts(
        Path::new("pcaps/seed/capture.pcap"),
        &rules,
        ReplayOptions::default(),
    );
}
