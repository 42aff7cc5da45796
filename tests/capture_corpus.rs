//! Reads every capture of the tcpdump test corpus: each must either complete or fail with an
//! error that names an offset, and never panic. Where tshark is installed, packet counts of
//! files we read fully (no warning) are compared with tshark's.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};

mod common;

/// tcpdump's test captures, next to the repository (as tests/replay_corpus.rs finds them).
const CORPUS: &str = "../shared/corpus/tcpdump-tests";
/// The corpus has 830 captures; a test that checked fewer than this has lost part of it.
const AT_LEAST: usize = 800;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(CORPUS)
}

enum Outcome {
    Complete { packets: u64, warned: bool },
    Failed { packets: u64, message: String },
}

fn read_all(path: &Path, lenient: bool) -> Outcome {
    let mut reader = match CaptureReader::open(path) {
        Ok(mut r) => {
            r.set_lenient_snaplen(lenient);
            r
        }
        Err(e) => {
            return Outcome::Failed {
                packets: 0,
                message: e.to_string(),
            };
        }
    };
    let mut packets = 0;
    loop {
        match reader.next_packet() {
            Ok(Some(p)) => {
                assert_eq!(p.record, packets + 1);
                assert!(p.data.len() <= dnatsim::capture::MAX_RECORD_LEN as usize);
                packets += 1;
            }
            Ok(None) => {
                return Outcome::Complete {
                    packets,
                    warned: !reader.warnings().is_empty(),
                };
            }
            Err(e) => {
                return Outcome::Failed {
                    packets,
                    message: e.to_string(),
                };
            }
        }
    }
}

fn corpus_files() -> Option<Vec<PathBuf>> {
    let dir = corpus_dir();
    if !dir.is_dir() {
        common::skip_or_fail(&format!(
            "corpus directory {} does not exist",
            dir.display()
        ));
        return None;
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("listing the corpus")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    assert!(
        files.len() >= AT_LEAST,
        "{}: {} captures, expected at least {AT_LEAST}",
        dir.display(),
        files.len()
    );
    Some(files)
}

fn tshark_count(path: &Path) -> Option<u64> {
    let out = Command::new("tshark")
        .args(["-n", "-r"])
        .arg(path)
        .args(["-T", "fields", "-e", "frame.number"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(out.stdout.iter().filter(|&&b| b == b'\n').count() as u64)
}

/// The kind of an error, its message with the numbers taken out, for the summary.
fn error_kind(msg: &str) -> String {
    let after = msg.split_once(": ").map_or(msg, |(_, rest)| rest);
    after
        .split(|c: char| !c.is_ascii_alphabetic() && c != ' ')
        .filter(|w| !w.trim().is_empty())
        .take(6)
        .collect::<Vec<_>>()
        .join("_")
}

#[test]
fn corpus_never_panics_and_errors_name_an_offset() {
    let Some(files) = corpus_files() else { return };
    for lenient in [false, true] {
        let checked = summarize(&files, lenient);
        assert!(
            checked >= AT_LEAST,
            "only {checked} captures read (lenient {lenient})"
        );
    }
}

/// Reads every file; returns how many were read (completely or up to an error naming an offset).
fn summarize(files: &[PathBuf], lenient: bool) -> usize {
    let (mut complete, mut warned, mut failed) = (0, 0, 0);
    let mut kinds: BTreeMap<String, u32> = BTreeMap::new();
    for f in files {
        match std::panic::catch_unwind(|| read_all(f, lenient)) {
            Ok(Outcome::Complete { warned: w, .. }) => {
                complete += 1;
                if w {
                    warned += 1;
                }
            }
            Ok(Outcome::Failed { packets, message }) => {
                failed += 1;
                assert!(
                    message.contains("offset"),
                    "{}: error does not name an offset: {message}",
                    f.display()
                );
                if lenient {
                    println!("error {} after {packets} packets: {message}", f.display());
                }
                *kinds.entry(error_kind(&message)).or_default() += 1;
            }
            Err(_) => panic!("{}: reader panicked", f.display()),
        }
    }
    println!(
        "corpus ({}): {} files, {complete} complete ({warned} with a warning), {failed} errors",
        if lenient { "lenient snaplen" } else { "strict" },
        files.len()
    );
    for (k, n) in &kinds {
        println!("  {n:4} {k}");
    }
    complete + failed
}

/// Reading, then writing in the input's own format and reading back, gives the same packets.
#[test]
fn corpus_rewrites_losslessly() {
    let Some(files) = corpus_files() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut checked = 0;
    for f in &files {
        let Ok(mut reader) = CaptureReader::open(f) else {
            continue;
        };
        reader.set_lenient_snaplen(true);
        let out = dir.path().join("out");
        // The reader is lenient about records longer than the snapshot length, so the writer
        // is too: such a record is written as it was read (the file had it).
        let config = WriterConfig {
            lenient_snaplen: true,
            ..WriterConfig::like(&reader)
        };
        let mut writer = CaptureWriter::create(&out, &config).unwrap();
        let mut expected = Vec::new();
        let mut ok = true;
        loop {
            match reader.next_packet() {
                Ok(Some(p)) => {
                    writer.sync_interfaces(p.interfaces).unwrap();
                    expected.push((p.data.to_vec(), p.orig_len, p.ts_ns, p.interface));
                    if let Err(e) = writer.write_record(&p.meta(), p.data, None) {
                        // e.g. timestamps before 1970 do not fit in pcap.
                        println!("not rewritable: {}: {e}", f.display());
                        ok = false;
                        break;
                    }
                }
                Ok(None) => break,
                Err(_) => break,
            }
        }
        if !ok {
            continue;
        }
        writer.finish().unwrap();
        let mut back = CaptureReader::open(&out).unwrap();
        back.set_lenient_snaplen(true);
        for (i, (data, orig_len, ts_ns, interface)) in expected.iter().enumerate() {
            let p = back
                .next_packet()
                .unwrap()
                .unwrap_or_else(|| panic!("{}: packet {} missing", f.display(), i + 1));
            assert_eq!(p.data, &data[..], "{} packet {}", f.display(), i + 1);
            assert_eq!(
                (p.orig_len, p.ts_ns, p.interface),
                (*orig_len, *ts_ns, *interface),
                "{} packet {}",
                f.display(),
                i + 1
            );
        }
        assert!(back.next_packet().unwrap().is_none());
        checked += 1;
    }
    println!(
        "corpus: {checked} of {} files rewritten and read back identically",
        files.len()
    );
    assert!(
        checked >= AT_LEAST,
        "only {checked} captures rewritten and read back"
    );
}

/// `tshark -r F -T fields -e frame.number | wc -l` for every corpus file tshark reads without
/// complaint, and `tcpdump -r F --count` for the 14 files whose link type tshark does not know;
/// recorded once (running tshark 830 times takes about 20 minutes on 2 busy cores).
const RECORDED: &str = include_str!("data/capture/corpus_tshark_counts.tsv");

/// Packet counts match the recorded tshark (or tcpdump) counts for every file they read without
/// complaint (lenient snapshot length: tshark does not enforce it either).
#[test]
fn corpus_counts_match_recorded_tshark() {
    let Some(files) = corpus_files() else { return };
    let (mut same, mut compared) = (0, 0);
    let mut diffs = Vec::new();
    for line in RECORDED.lines().filter(|l| !l.starts_with('#')) {
        let mut f = line.split('\t');
        let (Some(name), Some(count)) = (f.next(), f.next()) else {
            continue;
        };
        let path = corpus_dir().join(name);
        if !files.contains(&path) {
            continue;
        }
        let want: u64 = count.parse().unwrap();
        compared += 1;
        match read_all(&path, true) {
            Outcome::Complete { packets, .. } if packets == want => same += 1,
            Outcome::Complete { packets, .. } => {
                diffs.push(format!("{name}: ours {packets}, tshark {want}"))
            }
            Outcome::Failed { packets, message } => diffs.push(format!(
                "{name}: we fail after {packets} packets ({message}), tshark reads {want}"
            )),
        }
    }
    println!("tshark counts: {same} of {compared} files agree");
    assert!(
        compared >= AT_LEAST,
        "only {compared} captures compared with the recorded counts"
    );
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

/// Packet counts match a live tshark for files both read fully. Slow (one tshark per file), so opt-in:
/// `cargo test --release --test capture_corpus -- --ignored --nocapture`.
#[test]
#[ignore]
fn corpus_counts_match_tshark() {
    let Some(files) = corpus_files() else { return };
    if !common::have_tool("tshark") {
        return;
    }
    let (mut same, mut differ) = (0, 0);
    for f in &files {
        let ours = read_all(f, true);
        let theirs = tshark_count(f);
        match (ours, theirs) {
            (
                Outcome::Complete {
                    packets,
                    warned: false,
                },
                Some(t),
            ) => {
                if packets == t {
                    same += 1;
                } else {
                    differ += 1;
                    println!("DIFF {}: ours {packets}, tshark {t}", f.display());
                }
            }
            (Outcome::Complete { packets, warned }, None) => {
                println!(
                    "tshark fails, we read {packets} (warned {warned}): {}",
                    f.display()
                )
            }
            (Outcome::Complete { packets, .. }, Some(t)) => {
                println!("cut off: ours {packets}, tshark {t}: {}", f.display())
            }
            (Outcome::Failed { packets, message }, t) => {
                println!(
                    "we fail after {packets} (tshark {t:?}): {}: {message}",
                    f.display()
                )
            }
        }
    }
    println!("tshark agrees on {same} fully read files, differs on {differ}");
    assert!(
        same >= AT_LEAST,
        "only {same} captures compared with tshark"
    );
    assert_eq!(differ, 0);
}
