//! Outputs that never destroy data, and a command line that behaves as its users expect
//! (issue 11): every output checked against every input and every other output before any
//! work, standard output kept a pure capture or report, interrupted runs that still finish
//! their outputs, and usage errors with exit status 2.

mod common;

use common::{assert_counts_add_up, have_tool, skip_or_fail};
use dnatsim::capture::CaptureReader;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RULES: &str = "pcaps/seed/rules.toml";
const CAPTURE: &str = "pcaps/seed/capture.pcap";
/// What the sample replays to (README "What it prints").
const SAMPLE_IN: u64 = 2500;
const SAMPLE_OUT: u64 = 2237;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dnatsim"))
}

/// Runs dnatsim in `dir`.
fn run_in(dir: &Path, args: &[&str]) -> Output {
    bin()
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A directory holding a copy of the sample as `victim.pcap` and its rules as `rules.toml`.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(root().join(CAPTURE), dir.path().join("victim.pcap")).unwrap();
    std::fs::copy(root().join(RULES), dir.path().join("rules.toml")).unwrap();
    dir
}

fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Packets in a capture, read by our reader; fails on any warning (a damaged file).
fn packets_in_file(path: &Path) -> u64 {
    let mut r = CaptureReader::open(path).unwrap();
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    assert!(
        r.warnings().is_empty(),
        "{}: {:?}",
        path.display(),
        r.warnings()
    );
    n
}

/// Packets tshark reads from `bytes` through its standard input, or `None` when tshark is
/// missing (and the test may skip).
fn tshark_count_stdin(bytes: &[u8]) -> Option<u64> {
    if !have_tool("tshark") {
        return None;
    }
    let mut tshark = Command::new("tshark");
    tshark.args(["-r", "-", "-T", "fields", "-e", "frame.number"]);
    let out = fed(tshark, bytes);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "tshark: {err}");
    assert!(
        !err.contains("damaged") && !err.contains("corrupt"),
        "tshark: {err}"
    );
    Some(String::from_utf8_lossy(&out.stdout).lines().count() as u64)
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn an_output_naming_an_input_or_another_output_is_refused_and_nothing_is_touched() {
    let dir = workdir();
    let d = dir.path();
    std::fs::hard_link(d.join("victim.pcap"), d.join("hard.pcap")).unwrap();
    std::os::unix::fs::symlink("rules.toml", d.join("link.toml")).unwrap();
    std::fs::copy(
        root().join("tests/data/api/DescribeForwardTableEntries.json"),
        d.join("entries.json"),
    )
    .unwrap();
    let victim = std::fs::read(d.join("victim.pcap")).unwrap();
    let rules = std::fs::read(d.join("rules.toml")).unwrap();
    let entries = std::fs::read(d.join("entries.json")).unwrap();
    let before = listing(d);
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "--report",
                "victim.pcap",
                "-q",
            ],
            "--report victim.pcap is the same file as the capture victim.pcap",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "--plot",
                "victim.pcap",
            ],
            "--plot victim.pcap is the same file as the capture victim.pcap",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-o",
                "rules.toml",
            ],
            "-o rules.toml is the same file as --rules rules.toml",
        ),
        (
            &["gen", "-r", "rules.toml", "-o", "rules.toml"],
            "-o rules.toml is the same file as --rules rules.toml",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-o",
                "both.pcap",
                "--report",
                "both.pcap",
            ],
            "-o and --report both name both.pcap",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-o",
                "both.pcap",
                "--plot",
                "./both.pcap",
            ],
            "-o and --plot both name ./both.pcap",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-o",
                "./hard.pcap",
                "-q",
            ],
            "-o ./hard.pcap is the same file as the capture victim.pcap",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-q",
                "--report",
                "link.toml",
            ],
            "--report link.toml is the same file as --rules rules.toml",
        ),
        (
            &[
                "export",
                "-r",
                "rules.toml",
                "-f",
                "toml",
                "-o",
                "link.toml",
            ],
            "-o link.toml is the same file as --rules rules.toml",
        ),
        (
            &["import", "entries.json", "-o", "entries.json"],
            "-o entries.json is the same file as an input entries.json",
        ),
        (
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-o",
                "-",
                "--report",
                "-",
            ],
            "-o and --report both write to standard output",
        ),
    ];
    for (args, message) in cases {
        let o = run_in(d, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(message), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?} wrote to stdout");
        assert_eq!(std::fs::read(d.join("victim.pcap")).unwrap(), victim);
        assert_eq!(std::fs::read(d.join("rules.toml")).unwrap(), rules);
        assert_eq!(std::fs::read(d.join("entries.json")).unwrap(), entries);
        assert_eq!(listing(d), before, "{args:?} created or removed a file");
    }
}

#[test]
fn standard_output_carries_only_the_capture() {
    for trace in [None, Some("5")] {
        let mut args = vec!["replay", CAPTURE, "-r", RULES, "-o", "-", "--threads", "2"];
        if let Some(n) = trace {
            args.extend(["--trace", n]);
        }
        let o = common::dnatsim(&args);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains("packets in"),
            "the summary goes to stderr: {err}"
        );
        assert!(err.contains("<stdin>") || err.contains("(standard output)"));
        if trace.is_some() {
            assert!(err.contains("\n#5 ") || err.starts_with("#1 "), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("out.pcap");
        std::fs::write(&file, &o.stdout).unwrap();
        assert_eq!(packets_in_file(&file), SAMPLE_OUT);
        if let Some(n) = tshark_count_stdin(&o.stdout) {
            assert_eq!(n, SAMPLE_OUT, "tshark -r - reads every packet");
        }
    }
    // --report - puts the JSON, and only the JSON, on standard output.
    let o = common::dnatsim(&["replay", CAPTURE, "-r", RULES, "--report", "-"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).expect("pure JSON");
    assert_eq!(r["packets_in"], SAMPLE_IN);
    assert!(stderr(&o).contains("packets in"));
}

#[test]
fn every_output_is_checked_before_any_work() {
    let dir = workdir();
    let d = dir.path();
    for (opt, path) in [("--report", "nodir/r.json"), ("--plot", "nodir/p.svg")] {
        let o = run_in(
            d,
            &[
                "replay",
                "victim.pcap",
                "-r",
                "rules.toml",
                "-o",
                "out.pcap",
                opt,
                path,
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.contains(&format!("{opt} {path}: the directory nodir does not exist")),
            "{err}"
        );
        assert!(
            !err.contains(".tmp"),
            "no temporary file name in a message: {err}"
        );
        assert!(o.stdout.is_empty(), "no summary: the run never started");
        assert!(!d.join("out.pcap").exists(), "-o was not written");
    }
    let o = run_in(d, &["replay", "victim.pcap", "-r", "rules.toml", "-o", "."]);
    assert_ne!(o.status.code(), Some(0));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    let o = run_in(d, &["gen", "-r", "rules.toml", "-o", "nodir/g.pcap"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("the directory nodir does not exist"));
}

/// Waits for `child` at most `limit`; kills it and fails past that.
fn wait_bounded(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            panic!("dnatsim did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn signal(child: &Child, sig: i32) {
    // SAFETY: kill(2) on our own child's pid.
    let r = unsafe { libc::kill(child.id() as i32, sig) };
    assert_eq!(r, 0);
}

/// Waits (10 s at most) until a run has started: its temporary output exists.
fn wait_for_temp_file(dir: &Path) {
    let start = Instant::now();
    while !listing(dir).iter().any(|n| n.contains(".tmp")) {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the run did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn no_temp_files(dir: &Path) {
    let names = listing(dir);
    assert!(
        !names.iter().any(|n| n.contains(".tmp")),
        "temporary files left: {names:?}"
    );
}

/// A stream that delivers the first `bytes` of the sample and then stays open, silent, as a
/// live `tcpdump -w -` does between packets.
fn silent_stream_after(
    child_stdin: std::process::ChildStdin,
    bytes: usize,
) -> std::thread::JoinHandle<()> {
    let data = std::fs::read(root().join(CAPTURE)).unwrap();
    std::thread::spawn(move || {
        let mut w = child_stdin;
        let _ = w.write_all(&data[..bytes]);
        let _ = w.flush();
        // Held open until the test ends the child; bounded so it cannot hang the suite.
        std::thread::sleep(Duration::from_secs(20));
        drop(w);
    })
}

#[test]
fn an_interrupted_stream_finishes_its_outputs_and_exits_128_plus_the_signal() {
    for (sig, code) in [(libc::SIGINT, 130), (libc::SIGTERM, 143)] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let mut child = bin()
            .args(["replay", "-", "-r"])
            .arg(root().join(RULES))
            .args(["-o", "out.pcap", "--report", "r.json"])
            .current_dir(d)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let feeder = silent_stream_after(child.stdin.take().unwrap(), 200_000);
        // The temporary output appears once the header is read and the run has started.
        wait_for_temp_file(d);
        std::thread::sleep(Duration::from_millis(300));
        signal(&child, sig);
        let status = wait_bounded(&mut child, Duration::from_secs(10));
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let mut out = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut out)
            .unwrap();
        assert_eq!(status.code(), Some(code), "{err}");
        assert!(out.contains("packets in"), "the summary is printed: {out}");
        assert!(err.contains("stopped the run after"), "{err}");
        let r = report(&d.join("r.json"));
        let packets_in = r["packets_in"].as_u64().unwrap();
        assert!(packets_in > 500 && packets_in < SAMPLE_IN, "{packets_in}");
        assert_counts_add_up(&r);
        assert_eq!(
            packets_in_file(&d.join("out.pcap")),
            r["packets_out"].as_u64().unwrap()
        );
        no_temp_files(d);
        drop(feeder);
    }
}

#[test]
fn a_second_signal_aborts_at_once_and_removes_the_unfinished_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // The trace goes to a pipe nobody reads: the run blocks on it, so the first signal cannot
    // finish it and the second must end it.
    let mut child = bin()
        .args(["replay"])
        .arg(root().join(CAPTURE))
        .arg("-r")
        .arg(root().join(RULES))
        .args(["-o", "out.pcap", "--trace", "100000", "--threads", "1"])
        .current_dir(d)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_temp_file(d);
    std::thread::sleep(Duration::from_millis(300));
    signal(&child, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(200));
    signal(&child, libc::SIGINT);
    let status = wait_bounded(&mut child, Duration::from_secs(10));
    assert_eq!(status.code(), Some(130));
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("SIGINT again"), "{err}");
    assert_eq!(listing(d), Vec::<String>::new(), "nothing is left behind");
}

/// Packets in an annotated output. Its input may have been damaged (records over the snap
/// length are kept, as replay reads them leniently), so this reads leniently too.
fn annotated_counts(path: &Path) -> u64 {
    let mut r = CaptureReader::open(path).unwrap();
    r.set_lenient_snaplen(true);
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    n
}

#[test]
fn annotate_keeps_every_packet_including_fragment_orphans() {
    let dir = tempfile::tempdir().unwrap();
    let mut files: Vec<PathBuf> = vec![root().join(CAPTURE)];
    for e in std::fs::read_dir(root().join("tests/data/malformed")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            files.push(p);
        }
    }
    assert!(files.len() > 10, "the malformed corpus is there");
    let mut checked = 0;
    for (i, input) in files.iter().enumerate() {
        for threads in ["1", "2", "3"] {
            let out = dir.path().join(format!("a{i}-{threads}.pcapng"));
            let rep = dir.path().join(format!("a{i}-{threads}.json"));
            let o = bin()
                .arg("replay")
                .arg(input)
                .arg("-r")
                .arg(root().join(RULES))
                .arg("--annotate")
                .arg("-o")
                .arg(&out)
                .arg("--report")
                .arg(&rep)
                .args(["-q", "--threads", threads])
                .output()
                .unwrap();
            if o.status.code() != Some(0) {
                // An unreadable capture is an error before any packet; nothing to count.
                assert!(!out.exists(), "{}: {}", input.display(), stderr(&o));
                continue;
            }
            let r = report(&rep);
            assert_eq!(
                annotated_counts(&out),
                r["packets_in"].as_u64().unwrap(),
                "{} with {threads} threads",
                input.display()
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * 10, "{checked} annotated runs checked");
    // The sample itself: all 2,500, the two fragment orphans among them, with their comments.
    let out = dir.path().join("a0-1.pcapng");
    assert_eq!(packets_in_file(&out), SAMPLE_IN);
    if have_tool("tshark") {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&out)
            .args([
                "-Y",
                "frame.comment contains \"fragment_orphan\"",
                "-T",
                "fields",
                "-e",
                "frame.number",
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
    }
}

#[test]
fn a_wrong_command_line_exits_2_before_any_work() {
    let dir = workdir();
    let d = dir.path();
    let cases: &[&[&str]] = &[
        &[
            "gen",
            "-r",
            "rules.toml",
            "-o",
            "g.pcap",
            "--mix",
            "udp",
            "--size",
            "10",
        ],
        &["gen", "-r", "rules.toml", "-o", "g.pcap", "--size", "100"],
        &[
            "gen",
            "-r",
            "rules.toml",
            "-o",
            "g.pcap",
            "--rate-mbps",
            "0",
        ],
        &[
            "gen",
            "-r",
            "rules.toml",
            "-o",
            "g.pcap",
            "--rate-mbps",
            "inf",
        ],
        &["gen", "-r", "rules.toml", "-o", "g.pcap", "--flows", "0"],
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "-o",
            "g.pcap",
            "--interval",
            "0",
        ],
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "--plot",
            "g.svg",
            "--no-bandwidth",
        ],
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "-o",
            "g.pcap",
            "--threads",
            "0",
        ],
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "-o",
            "g.pcap",
            "--max-flows",
            "0",
        ],
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "--annotate",
            "-o",
            "g.pcap",
        ],
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "--annotate",
            "-o",
            "g.pcapng",
            "--format",
            "pcap",
        ],
        &["replay", "-", "-r", "-"],
    ];
    let before = listing(d);
    for args in cases {
        let o = run_in(d, args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).is_empty());
        assert_eq!(listing(d), before, "{args:?} wrote something");
    }
    let o = run_in(
        d,
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "--annotate",
            "-o",
            "g.pcap",
        ],
    );
    assert!(stderr(&o).contains("needs pcapng"), "{}", stderr(&o));
}

/// Runs dnatsim in the sample's directory with `input` on its standard input.
fn with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut cmd = bin();
    cmd.args(args).current_dir(root());
    fed(cmd, input)
}

/// Runs `cmd` with `input` on its standard input (from a thread, so a child that writes
/// before it has read everything cannot deadlock with us), collecting its output.
fn fed(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = child.stdin.take().unwrap();
    let input = input.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = w.write_all(&input);
    });
    let o = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    o
}

#[test]
fn dash_is_standard_input_and_a_closed_standard_output_is_an_error() {
    let rules = std::fs::read(root().join(RULES)).unwrap();
    let o = with_stdin(&["check", "-r", "-"], &rules);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("fwd-11cdhpjlk"));
    let o = with_stdin(
        &["replay", CAPTURE, "-r", "-", "--report", "-", "-q"],
        &rules,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["packets_in"], SAMPLE_IN);
    let entries =
        std::fs::read(root().join("tests/data/api/DescribeForwardTableEntries.json")).unwrap();
    let o = with_stdin(
        &[
            "import",
            "-",
            "tests/data/api/DescribeBandwidthPackages.json",
            "tests/data/api/DescribeNatGateways.json",
        ],
        &entries,
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("[[forward_entry]]"));
    // Standard output closed: an error, and the capture is not written into its descriptor.
    let dir = tempfile::tempdir().unwrap();
    for cmd in [
        format!(
            "'{}' check -r '{}' >&-",
            env!("CARGO_BIN_EXE_dnatsim"),
            root().join(RULES).display()
        ),
        format!(
            "'{}' replay '{}' -r '{}' -o out.pcap >&-",
            env!("CARGO_BIN_EXE_dnatsim"),
            root().join(CAPTURE).display(),
            root().join(RULES).display()
        ),
    ] {
        let o = Command::new("sh")
            .arg("-c")
            .arg(&cmd)
            .current_dir(dir.path())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(1), "{cmd}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("standard output is closed"),
            "{}",
            stderr(&o)
        );
    }
    assert!(listing(dir.path()).is_empty());
}

fn magic(path: &Path) -> [u8; 4] {
    let b = std::fs::read(path).unwrap();
    [b[0], b[1], b[2], b[3]]
}

const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];

#[test]
fn the_output_format_follows_the_name_unless_format_says_otherwise() {
    let dir = workdir();
    let d = dir.path();
    let ok = |args: &[&str]| {
        let o = run_in(d, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    };
    ok(&[
        "replay",
        "victim.pcap",
        "-r",
        "rules.toml",
        "-q",
        "-o",
        "x.pcapng",
    ]);
    assert_eq!(magic(&d.join("x.pcapng")), PCAPNG_MAGIC);
    assert_eq!(packets_in_file(&d.join("x.pcapng")), SAMPLE_OUT);
    ok(&[
        "replay",
        "x.pcapng",
        "-r",
        "rules.toml",
        "-q",
        "-o",
        "back.pcap",
    ]);
    assert_ne!(magic(&d.join("back.pcap")), PCAPNG_MAGIC);
    assert_eq!(packets_in_file(&d.join("back.pcap")), SAMPLE_OUT);
    ok(&[
        "replay",
        "victim.pcap",
        "-r",
        "rules.toml",
        "-q",
        "-o",
        "forced.pcapng",
        "--format",
        "pcap",
    ]);
    assert_ne!(magic(&d.join("forced.pcapng")), PCAPNG_MAGIC);
    ok(&[
        "replay",
        "victim.pcap",
        "-r",
        "rules.toml",
        "-q",
        "-o",
        "plain",
        "--format",
        "pcapng",
    ]);
    assert_eq!(magic(&d.join("plain")), PCAPNG_MAGIC);
    ok(&[
        "gen",
        "-r",
        "rules.toml",
        "-q",
        "--packets",
        "50",
        "-o",
        "g.pcapng",
    ]);
    assert_eq!(magic(&d.join("g.pcapng")), PCAPNG_MAGIC);
    assert_eq!(packets_in_file(&d.join("g.pcapng")), 50);
    ok(&[
        "gen",
        "-r",
        "rules.toml",
        "-q",
        "--packets",
        "50",
        "-o",
        "g.pcap",
    ]);
    assert_ne!(magic(&d.join("g.pcap")), PCAPNG_MAGIC);
    // The same packets either way.
    ok(&[
        "replay",
        "g.pcap",
        "-r",
        "rules.toml",
        "-q",
        "--report",
        "a.json",
    ]);
    ok(&[
        "replay",
        "g.pcapng",
        "-r",
        "rules.toml",
        "-q",
        "--report",
        "b.json",
    ]);
    assert_eq!(
        report(&d.join("a.json"))["translated"],
        report(&d.join("b.json"))["translated"]
    );
}

#[test]
fn warnings_are_in_the_report_printed_once_and_silenced_by_quiet() {
    let dir = workdir();
    let d = dir.path();
    let o = run_in(
        d,
        &[
            "replay",
            "victim.pcap",
            "-r",
            "rules.toml",
            "--report",
            "r.json",
        ],
    );
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(
        stderr(&o).matches("unused-public-ip").count(),
        1,
        "{}",
        stderr(&o)
    );
    let r = report(&d.join("r.json"));
    let w = r["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].as_str()
            .unwrap()
            .starts_with("rules.toml:23:5: unused-public-ip: 203.0.113.58"),
        "{w:?}"
    );
    for args in [
        &["replay", "victim.pcap", "-r", "rules.toml", "-q"][..],
        &["check", "-r", "rules.toml", "-q"],
        &[
            "explain",
            "-r",
            "rules.toml",
            "-q",
            "tcp",
            "203.0.113.79:443",
        ],
        &[
            "gen",
            "-r",
            "rules.toml",
            "-q",
            "--packets",
            "10",
            "-o",
            "q.pcap",
        ],
        &["export", "-r", "rules.toml", "-q", "-f", "nft"],
    ] {
        let o = run_in(d, args);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
        assert_eq!(stderr(&o), "", "{args:?} printed to stderr under -q");
    }
}

/// The record numbers of trace lines (`#N ...`).
fn traced_records(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix('#')?.split_whitespace().next()?.parse().ok())
        .collect()
}

#[test]
fn trace_n_means_the_first_n_packets() {
    for n in [1u64, 2500] {
        let o = common::dnatsim(&[
            "replay",
            CAPTURE,
            "-r",
            RULES,
            "--trace",
            &n.to_string(),
            "-q",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let records = traced_records(&stdout(&o));
        let mut distinct = records.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct, (1..=n).collect::<Vec<_>>());
        if n == SAMPLE_IN {
            // Held fragments print twice: when held and when decided.
            assert!(records.len() as u64 > n);
        }
    }
}

/// Rules with the sample's table and a smaller bandwidth package.
fn rules_at(mbps: u32, dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(root().join(RULES)).unwrap();
    let text = text.replace("bandwidth_mbps = 150", &format!("bandwidth_mbps = {mbps}"));
    assert!(text.contains(&format!("bandwidth_mbps = {mbps}")));
    let p = dir.join(format!("r{mbps}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_summary_says_what_its_numbers_are() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_at(2, dir.path());
    let o = bin()
        .arg("replay")
        .arg(root().join(CAPTURE))
        .arg("-r")
        .arg(&rules)
        .arg("--report")
        .arg(dir.path().join("r.json"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let r = report(&dir.path().join("r.json"));
    let totals = &r["bandwidth"]["inbound"]["totals"];
    let dropped = totals["dropped_packets"].as_u64().unwrap();
    let offered = totals["offered_packets"].as_u64().unwrap();
    assert!(dropped > 0);
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("inbound "))
        .unwrap();
    let share = totals["drop_share"].as_f64().unwrap() * 100.0;
    let pct = dropped as f64 * 100.0 / offered as f64;
    let pct = if pct < 10.0 {
        format!("{pct:.2}")
    } else {
        format!("{pct:.0}")
    };
    let pct = pct.trim_end_matches('0').trim_end_matches('.').to_string();
    assert!(
        line.contains(&format!(
            "dropped {share:.2}% of bits ({dropped} packets, {pct}%)"
        )) || line.contains(&format!(
            "dropped {share:.2}% of bits ({} packets, {pct}%)",
            with_commas(dropped)
        )),
        "{line}"
    );
    // The carried peak exceeds 2 Mbps only by the burst, and the line says so.
    let peak = totals["peak_carried_bps"].as_u64().unwrap();
    assert_eq!(peak > 2_000_000, line.contains("(burst "), "{line}");
}

fn with_commas(v: u64) -> String {
    dnatsim::report::thousands(v)
}

#[test]
fn completions_man_page_and_colour() {
    for shell in ["bash", "zsh", "fish"] {
        let o = common::dnatsim(&["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        let text = stdout(&o);
        assert!(text.contains("replay") && text.contains("rules"), "{shell}");
    }
    if have_tool("bash") {
        let o = common::dnatsim(&["completions", "bash"]);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.bash");
        std::fs::write(&f, &o.stdout).unwrap();
        let s = Command::new("bash").arg("-n").arg(&f).status().unwrap();
        assert!(s.success(), "the bash completion script parses");
    }
    let o = common::dnatsim(&["man"]);
    assert_eq!(o.status.code(), Some(0));
    let page = stdout(&o);
    assert!(
        page.starts_with(".ie") || page.contains(".TH dnatsim"),
        "{}",
        &page[..200.min(page.len())]
    );
    for cmd in ["replay", "check", "explain", "gen", "import", "export"] {
        assert!(
            page.contains(&format!(".TH dnatsim-{cmd}")),
            "man page for {cmd}"
        );
    }
    let missing = ["check", "-r", "no-such-rules.toml"];
    let o = common::dnatsim(&[&["--color", "always"][..], &missing[..]].concat());
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("\x1b[1;31merror\x1b[0m"),
        "{}",
        stderr(&o)
    );
    let o = common::dnatsim(&[&["--color", "never"][..], &missing[..]].concat());
    assert!(!stderr(&o).contains('\x1b'));
    let o = bin()
        .args(missing)
        .current_dir(root())
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!stderr(&o).contains('\x1b'));
}

#[test]
fn the_progress_bar_on_a_stream_counts_packets_without_a_total() {
    if !have_tool("script") {
        return;
    }
    // script(1) gives dnatsim a terminal; the capture arrives through a pipe that stays
    // silent for a second after the data, long enough for the bar to be drawn.
    let cmd = format!(
        "(cat '{}'; sleep 1.5) | '{}' replay - -r '{}' --threads 1 > /dev/null",
        root().join(CAPTURE).display(),
        env!("CARGO_BIN_EXE_dnatsim"),
        root().join(RULES).display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output();
    let Ok(o) = o else {
        skip_or_fail("script(1) did not run");
        return;
    };
    let screen = stdout(&o);
    assert!(o.status.success(), "{screen}");
    assert!(screen.contains("2,048 packets"), "{screen:?}");
    assert!(screen.contains(" read"), "{screen:?}");
    assert!(!screen.contains("eta"), "no total, no estimate: {screen:?}");
    assert!(!screen.contains("0 B/0 B"), "{screen:?}");
}

#[test]
fn evictions_are_named_with_the_option_that_avoids_them() {
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let o = bin()
        .args([
            "replay",
            CAPTURE,
            "-r",
            RULES,
            "--max-flows",
            "50",
            "--threads",
            "1",
            "--report",
        ])
        .arg(&rep)
        .current_dir(root())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let evicted = report(&rep)["flows"]["evicted"].as_u64().unwrap();
    assert!(evicted > 0);
    let want = format!(
        "note: the flow table was full: {} flows were evicted before their time (--max-flows 50); a larger --max-flows keeps them",
        with_commas(evicted)
    );
    assert!(stdout(&o).contains(&want), "{}", stdout(&o));
    // The default table holds the sample's flows: no such note.
    let o = common::dnatsim(&["replay", CAPTURE, "-r", RULES]);
    assert!(!stdout(&o).contains("evicted before their time"));
    assert!(stdout(&o).contains(", 0 evicted"));
}
