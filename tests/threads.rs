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
    run_from(CaptureReader::open(input).unwrap(), output, rules, options)
}

/// The same input read as a stream (as from a pipe): not in memory, so one thread cannot look
/// ahead and two copy it out in batches.
fn run_streamed(
    input: &Path,
    output: &Path,
    rules: &Rules,
    options: &ReplayOptions,
) -> (Vec<u8>, ReplayResult) {
    let file = std::fs::File::open(input).unwrap();
    let reader = CaptureReader::from_reader(Box::new(file)).unwrap();
    assert!(!reader.in_memory());
    run_from(reader, output, rules, options)
}

fn run_from(
    mut reader: CaptureReader,
    output: &Path,
    rules: &Rules,
    options: &ReplayOptions,
) -> (Vec<u8>, ReplayResult) {
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
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
    for threads in [1, 2] {
        options.threads = threads;
        let (got, streamed) = run_streamed(
            input,
            &dir.path().join(format!("stream{threads}")),
            rules,
            &options,
        );
        assert!(
            got == want,
            "streamed, {threads} threads: output differs from one thread on the file"
        );
        assert_eq!(
            streamed.counters, one.counters,
            "streamed, {threads} threads"
        );
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

/// Tables past 16,384 flows are prefetched ahead when the loop can look ahead (a file in memory,
/// or a stream's batches with two threads); one thread on a stream cannot, so equal output
/// shows the prefetch changes nothing.
#[test]
fn many_flows_with_prefetching_are_identical_for_any_thread_count() {
    let rules = rules();
    let dir = tempfile::tempdir().unwrap();
    for (mix, name) in [(Mix::Tcp64, "tcp64"), (Mix::Imix, "imix")] {
        let input = dir.path().join(format!("{name}.pcap"));
        let config = GenConfig {
            packets: 200_000,
            flows: 60_000,
            mix,
            seed: 11,
            ..GenConfig::default()
        };
        generate_capture(&rules, &config, &input);
        let (_, one) = run(
            &input,
            &dir.path().join("probe"),
            &rules,
            &ReplayOptions {
                threads: 1,
                ..ReplayOptions::default()
            },
        );
        assert!(
            one.flows.peak >= 20_000,
            "{name}: {} flows at once is too few to reach the prefetching size",
            one.flows.peak
        );
        assert_eq!(one.flows.evicted, 0, "the default table holds them all");
        assert_same_for_all_thread_counts(&input, &rules, ReplayOptions::default());
    }
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

#[test]
fn zero_length_records_are_written_by_every_path() {
    // Found by the replay property test: a record with no bytes is a packet like any other
    // (under a link type dnatsim does not parse it passes as not IPv4, and must come out).
    let rules = rules();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let mut w = CaptureWriter::create(&input, &WriterConfig::pcap(147, 65535, false)).unwrap();
    let frame = common::tcp(common::CLIENT, 1000, common::IP3, 80, 64, b"x");
    for (i, data) in [&frame[..], &[], &frame[..], &[]].iter().enumerate() {
        let meta = dnatsim::capture::RecordMeta {
            ts_ns: 1_000 * i as i64,
            orig_len: data.len() as u32,
            interface: 0,
        };
        w.write_record(&meta, data, None).unwrap();
    }
    w.finish().unwrap();
    for (threads, annotate) in [1, 2, 3].into_iter().flat_map(|t| [(t, false), (t, true)]) {
        let options = ReplayOptions {
            threads,
            annotate,
            ..ReplayOptions::default()
        };
        let out = dir.path().join(format!("out-{threads}-{annotate}"));
        let (_, r) = run(&input, &out, &rules, &options);
        let mut back = CaptureReader::open(&out).unwrap();
        let mut n = 0;
        while back.next_packet().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(
            (n, r.counters.packets_out),
            (4, 4),
            "threads {threads}, annotate {annotate}"
        );
    }
}

#[test]
fn a_failing_writer_stops_every_thread() {
    // Writing to /dev/full fails once the 2 MiB buffer spills; the run must end with an error,
    // not wait forever on workers blocked behind it, or on the thread that writes (2 threads).
    // Both ways there: standard output, and `-o /dev/full` (a device, so written directly).
    let Ok(full) = std::fs::OpenOptions::new().write(true).open("/dev/full") else {
        common::skip_or_fail("/dev/full is not here");
        return;
    };
    let rules = rules();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    let config = GenConfig {
        packets: 40_000,
        mix: Mix::Imix,
        ..GenConfig::default()
    };
    generate_capture(&rules, &config, &input);
    for (threads, output) in ["1", "2", "3"]
        .into_iter()
        .flat_map(|t| [(t, "-"), (t, "/dev/full")])
    {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_dnatsim"))
            .args([
                "replay",
                input.to_str().unwrap(),
                "-r",
                "pcaps/seed/rules.toml",
                "-o",
                output,
            ])
            .args(["-q", "--threads", threads])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(full.try_clone().unwrap())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("--threads {threads}: still running after 60 s with a failed writer");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            status.code(),
            Some(1),
            "--threads {threads} -o {output}: {err}"
        );
        assert!(
            err.contains("No space left"),
            "--threads {threads} -o {output}: {err}"
        );
    }
}
