//! Every capture of tcpdump's test suite (every link type, many broken packets) replays to
//! the end or fails with a clear error, never a panic, and its counts add up; with one thread
//! and with two (the command line's default on two cores), to the same bytes.

mod common;

use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};
use dnatsim::nat::ForwardTable;
use dnatsim::pipeline::{Quiet, ReplayOptions, replay};
use std::path::Path;

const CORPUS: &str = "../shared/corpus/tcpdump-tests";

#[test]
fn the_tcpdump_corpus_replays_with_conserved_counts() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS);
    let Ok(listing) = std::fs::read_dir(&dir) else {
        common::skip_or_fail(&format!("{} is not here", dir.display()));
        return;
    };
    let rules = dnatsim::rules::parse_file(Path::new("pcaps/seed/rules.toml"))
        .unwrap()
        .rules;
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let options = ReplayOptions {
        bandwidth: Some(
            dnatsim::bandwidth::LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000)
                .unwrap(),
        ),
        ..ReplayOptions::default()
    };
    let out_dir = tempfile::tempdir().unwrap();
    let (mut done, mut refused, mut packets) = (0, 0, 0u64);
    let mut paths: Vec<_> = listing.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        // Captures the reader refuses at the start are counted; the rest must replay.
        if let Err(e) = CaptureReader::open(&path) {
            let msg = e.to_string();
            assert!(
                msg.contains("offset"),
                "{}: error without a position: {msg}",
                path.display()
            );
            refused += 1;
            continue;
        }
        // One replay of the capture with `threads`, written to `out`.
        let replay_with = |threads: usize, out: &Path| {
            let mut reader = CaptureReader::open(&path).unwrap();
            reader.set_lenient_snaplen(true);
            let mut config = WriterConfig::like(&reader);
            config.lenient_snaplen = true;
            let mut writer = CaptureWriter::create(out, &config).unwrap();
            let options = ReplayOptions {
                threads,
                ..options.clone()
            };
            let result = replay(&mut reader, Some(&mut writer), &table, &options, &mut Quiet)
                .unwrap_or_else(|e| panic!("{}, {threads} threads: {e}", path.display()));
            writer.finish().unwrap();
            result
        };
        let (out, out2) = (out_dir.path().join("out"), out_dir.path().join("out2"));
        let result = replay_with(1, &out);
        let result2 = replay_with(2, &out2);
        let c = &result.counters;
        assert_eq!(&result2.counters, c, "{}: 2 threads", path.display());
        assert_eq!(result2.warnings, result.warnings, "{}", path.display());
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&out2).unwrap(),
            "{}: output differs with 2 threads",
            path.display()
        );
        assert_eq!(
            c.packets_in,
            c.packets_out + c.dropped_total(),
            "{}: packets in = out + dropped",
            path.display()
        );
        // The output holds exactly the packets counted out.
        let mut back = CaptureReader::open(&out).unwrap();
        back.set_lenient_snaplen(true);
        let mut n = 0;
        while back.next_packet().unwrap().is_some() {
            n += 1;
        }
        assert_eq!(n, c.packets_out, "{}", path.display());
        packets += c.packets_in;
        done += 1;
    }
    println!("replayed {done} captures ({packets} packets), {refused} refused with a clear error");
    assert!(done >= 800, "only {done} captures replayed");
}
