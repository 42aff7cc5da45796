//! `dnatsim replay` end to end: captures in every supported shape, the translated capture,
//! the summary, the report, the trace and the annotations.

mod common;

use common::*;
use dnatsim::capture::{CaptureReader, CaptureWriter, Interface, RecordMeta, WriterConfig};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const RULES: &str = "pcaps/seed/rules.toml";
const T0: i64 = 1_767_225_600_000_000_000; // 2026-01-01T00:00:00Z

/// Writes `frames` (link type, bytes) as a capture: pcap when every frame shares link type 1
/// and `pcapng` is false, otherwise pcapng with one interface per link type.
fn write_capture(path: &Path, frames: &[(u16, Vec<u8>)], pcapng: bool) {
    let mut links: Vec<u16> = Vec::new();
    for (l, _) in frames {
        if !links.contains(l) {
            links.push(*l);
        }
    }
    let config = if pcapng {
        WriterConfig::pcapng(links.iter().map(|&l| Interface::new(l, 65535)).collect())
    } else {
        assert_eq!(links, [1]);
        WriterConfig::pcap(1, 65535, false)
    };
    let mut w = CaptureWriter::create(path, &config).unwrap();
    for (i, (l, f)) in frames.iter().enumerate() {
        let iface = links.iter().position(|x| x == l).unwrap() as u32;
        let meta = RecordMeta {
            ts_ns: T0 + i as i64 * 1_000_000,
            orig_len: f.len() as u32,
            interface: iface,
        };
        w.write_record(&meta, f, None).unwrap();
    }
    w.finish().unwrap();
}

fn read_all(path: &Path) -> Vec<(u16, Vec<u8>)> {
    let mut r = CaptureReader::open(path).unwrap();
    let mut v = Vec::new();
    while let Some(p) = r.next_packet().unwrap() {
        v.push((p.link_type, p.data.to_vec()));
    }
    v
}

/// A small conversation covering the tutorial: every entry, replies, misses, foreign, ARP.
fn tutorial_frames() -> Vec<(u16, Vec<u8>)> {
    let mut arp = vec![0xffu8; 6];
    arp.extend_from_slice(&MAC_A);
    arp.extend_from_slice(&[0x08, 0x06]);
    arp.extend_from_slice(&[0; 28]);
    let frames = vec![
        tcp(CLIENT, 51000, IP3, 443, 64, b""),    // 1 in, fwd-11cdhpjlk
        tcp(ECS[3], 443, CLIENT, 51000, 64, b""), // 2 reply
        tcp(CLIENT, 51001, IP3, 80, 64, b"GET /"), // 3 in, fwd-11r23r7p5
        tcp(ECS[2], 80, CLIENT, 51001, 64, b"200 OK"), // 4 reply
        udp(CLIENT, 5353, IP2, 53, 64, b"query"), // 5 in, fwd-11dz3ly9l
        udp(ECS[1], 53, CLIENT, 5353, 64, b"answer"), // 6 reply
        tcp(CLIENT, 40000, IP4, 22, 64, b"SSH-2.0"), // 7 in, fwd-11iv34uj7
        echo_request(CLIENT, IP1, 7, 1, 64),      // 8 in, fwd-119smw5tk
        udp(ECS[0], 40001, [198, 51, 100, 53], 53, 64, b"q"), // 9 out, server's own
        tcp(CLIENT, 1, IP5, 80, 64, b""),         // 10 no_rule
        tcp(CLIENT, 1, IP4, 80, 64, b""),         // 11 no_rule
        udp(CLIENT, 1, IP3, 80, 64, b""),         // 12 no_rule
        tcp(CLIENT, 1, IP3, 443, 1, b""),         // 13 ttl_expired
        tcp(CLIENT, 2, [198, 51, 100, 8], 80, 64, b""), // 14 foreign
        arp,                                      // 15 not IPv4
    ];
    frames.into_iter().map(|f| (1, f)).collect()
}

struct Run {
    dir: tempfile::TempDir,
    input: PathBuf,
}

impl Run {
    fn new(frames: &[(u16, Vec<u8>)], pcapng: bool) -> Run {
        let dir = tempfile::tempdir().unwrap();
        let input = dir
            .path()
            .join(if pcapng { "in.pcapng" } else { "in.pcap" });
        write_capture(&input, frames, pcapng);
        Run { dir, input }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn replay(&self, extra: &[&str]) -> Output {
        let mut args = vec!["replay", self.input.to_str().unwrap(), "--rules", RULES];
        args.extend_from_slice(extra);
        dnatsim(&args)
    }
}

fn report(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

#[test]
fn translates_the_tutorial_conversation_exactly() {
    let run = Run::new(&tutorial_frames(), false);
    let out = run.path("out.pcap");
    let rep = run.path("report.json");
    let o = run.replay(&[
        "-o",
        out.to_str().unwrap(),
        "--report",
        rep.to_str().unwrap(),
        "--no-bandwidth",
    ]);
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let got: Vec<Vec<u8>> = read_all(&out).into_iter().map(|(_, f)| f).collect();
    let want = vec![
        tcp(CLIENT, 51000, ECS[3], 443, 63, b""),
        tcp(IP3, 443, CLIENT, 51000, 63, b""),
        tcp(CLIENT, 51001, ECS[2], 80, 63, b"GET /"),
        tcp(IP3, 80, CLIENT, 51001, 63, b"200 OK"),
        udp(CLIENT, 5353, ECS[1], 53, 63, b"query"),
        udp(IP2, 53, CLIENT, 5353, 63, b"answer"),
        tcp(CLIENT, 40000, ECS[4], 22, 63, b"SSH-2.0"),
        echo_request(CLIENT, ECS[0], 7, 1, 63),
        udp(IP1, 40001, [198, 51, 100, 53], 53, 63, b"q"),
        tcp(CLIENT, 2, [198, 51, 100, 8], 80, 64, b""),
        tutorial_frames()[14].1.clone(),
    ];
    assert_eq!(got.len(), want.len());
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "output packet {}", i + 1);
        if i < 10 {
            verify_checksums(g, 14).unwrap_or_else(|e| panic!("packet {}: {e}", i + 1));
        }
    }
    let r = report(&rep);
    assert_eq!(r["packets_in"], 15);
    assert_eq!(r["packets_out"], 11);
    assert_eq!(r["translated"]["inbound"], 5);
    assert_eq!(r["translated"]["outbound"], 4);
    assert_eq!(r["passed_unchanged"], 2);
    assert_eq!(r["dropped"]["no_rule"], 3);
    assert_eq!(r["dropped"]["ttl_expired"], 1);
    common::assert_counts_add_up(&r);
    let entries = r["entries"].as_array().unwrap();
    let by_id = |id: &str| entries.iter().find(|e| e["id"] == id).unwrap().clone();
    assert_eq!(by_id("fwd-11cdhpjlk")["packets"], 2);
    assert_eq!(by_id("fwd-11cdhpjlk")["flows"], 1);
    assert_eq!(by_id("fwd-119smw5tk")["packets"], 2);
    assert_eq!(by_id("fwd-119smw5tk")["flows"], 2);
    let summary = String::from_utf8_lossy(&o.stdout);
    assert!(summary.contains("no_rule"), "{summary}");
    assert!(summary.contains("fwd-11cdhpjlk"), "{summary}");
}

#[test]
fn two_runs_give_byte_identical_output() {
    let run = Run::new(&tutorial_frames(), false);
    let (a, b) = (run.path("a.pcap"), run.path("b.pcap"));
    assert!(
        run.replay(&["-o", a.to_str().unwrap(), "-q"])
            .status
            .success()
    );
    assert!(
        run.replay(&["-o", b.to_str().unwrap(), "-q"])
            .status
            .success()
    );
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

#[test]
fn pcapng_with_vlan_sll_and_sll2_keeps_its_interfaces() {
    let eth = tcp(CLIENT, 51000, IP3, 80, 64, b"hi");
    let ip = eth[14..].to_vec();
    let vlan = [&eth[..12], &[0x81, 0x00, 0x00, 0x0a, 0x08, 0x00], &ip[..]].concat();
    let sll = [
        &[0u8, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00][..],
        &ip[..],
    ]
    .concat();
    let sll2 = [
        &[
            0x08u8, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0,
        ][..],
        &ip[..],
    ]
    .concat();
    let frames = vec![(1, vlan), (113, sll), (276, sll2), (101, ip.clone())];
    let run = Run::new(&frames, true);
    let out = run.path("out.pcapng");
    let o = run.replay(&["-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read_all(&out);
    let want_ip = tcp(CLIENT, 51000, ECS[2], 80, 63, b"hi")[14..].to_vec();
    let offsets = [18usize, 16, 20, 0];
    assert_eq!(got.len(), 4);
    for ((link, frame), (off, (in_link, in_frame))) in got.iter().zip(offsets.iter().zip(&frames)) {
        assert_eq!(link, in_link);
        assert_eq!(
            &frame[..*off],
            &in_frame[..*off],
            "link header of link type {link}"
        );
        assert_eq!(&frame[*off..], &want_ip[..], "link type {link}");
    }
}

#[test]
fn trace_prints_the_teaching_line() {
    let run = Run::new(&tutorial_frames(), false);
    let o = run.replay(&["--trace", "10", "--no-bandwidth"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("#1 tcp 198.51.100.7:51000 > 203.0.113.79:443 => 198.51.100.7:51000 > 192.168.1.4:443 [fwd-11cdhpjlk, port mapping]"),
        "{out}"
    );
    assert!(
        out.contains("#10 tcp 198.51.100.7:1 > 203.0.113.58:80 dropped: no_rule"),
        "{out}"
    );
    assert!(
        !out.contains("#11 "),
        "only the first 10 packets are traced"
    );
}

fn tshark() -> bool {
    let ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip_or_fail("tshark is not installed (.ci/run installs it)");
    }
    ok
}

#[test]
fn annotations_show_in_tshark() {
    if !tshark() {
        return;
    }
    let run = Run::new(&tutorial_frames(), false);
    let out = run.path("annotated.pcapng");
    let o = run.replay(&["--annotate", "-o", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let t = Command::new("tshark")
        .args([
            "-r",
            out.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.comment",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 15, "every packet, dropped ones too: {text}");
    assert!(
        lines[0].contains("[fwd-11cdhpjlk, port mapping]"),
        "{}",
        lines[0]
    );
    assert!(lines[9].contains("dropped: no_rule"), "{}", lines[9]);
}

#[test]
fn tshark_reads_the_output_and_finds_valid_checksums() {
    if !tshark() {
        return;
    }
    let run = Run::new(&tutorial_frames(), false);
    let out = run.path("out.pcap");
    assert!(
        run.replay(&["-o", out.to_str().unwrap(), "-q"])
            .status
            .success()
    );
    let t = Command::new("tshark")
        .args([
            "-r",
            out.to_str().unwrap(),
            "-o",
            "ip.check_checksum:TRUE",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "udp.check_checksum:TRUE",
            "-T",
            "fields",
            "-e",
            "ip.dst",
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-e",
            "udp.checksum.status",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&t.stdout);
    assert_eq!(text.lines().count(), 11, "{text}");
    assert!(
        text.lines().next().unwrap().starts_with("192.168.1.4"),
        "{text}"
    );
    // tshark's checksum status: 0 bad, 1 good, 2 unverified.
    for line in text.lines().take(10) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols[1], "1", "IP checksum status in {line}");
        assert!(
            cols[2] == "1" || cols[3] == "1" || (cols[2].is_empty() && cols[3].is_empty()),
            "{line}"
        );
    }
}

#[test]
fn a_cut_off_last_record_warns_and_processes_the_rest() {
    let run = Run::new(&tutorial_frames(), false);
    let bytes = std::fs::read(&run.input).unwrap();
    let cut = run.path("cut.pcap");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let rep = run.path("r.json");
    let o = dnatsim(&[
        "replay",
        cut.to_str().unwrap(),
        "-r",
        RULES,
        "--report",
        rep.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("record 15") && err.contains("cut short"),
        "{err}"
    );
    assert_eq!(report(&rep)["packets_in"], 14);
}

#[test]
fn unusable_input_is_an_error_naming_the_file() {
    let run = Run::new(&tutorial_frames(), false);
    let garbage = run.path("garbage.pcap");
    std::fs::write(&garbage, b"this is not a capture at all").unwrap();
    let o = dnatsim(&["replay", garbage.to_str().unwrap(), "-r", RULES]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("garbage.pcap") && err.contains("offset 0"),
        "{err}"
    );
    let missing = dnatsim(&["replay", "/nonexistent.pcap", "-r", RULES]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent.pcap"));
}

#[test]
fn output_equal_to_input_is_refused_and_the_input_untouched() {
    let run = Run::new(&tutorial_frames(), false);
    let before = std::fs::read(&run.input).unwrap();
    let o = run.replay(&["-o", run.input.to_str().unwrap()]);
    // Naming an input as the output is a wrong command line: exit 2, before any work.
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("is the same file as the capture"));
    assert_eq!(std::fs::read(&run.input).unwrap(), before);
}

#[test]
fn foreign_drop_and_keep_ttl() {
    let run = Run::new(&tutorial_frames(), false);
    let rep = run.path("r.json");
    let o = run.replay(&[
        "--foreign",
        "drop",
        "--keep-ttl",
        "--report",
        rep.to_str().unwrap(),
        "-q",
    ]);
    assert!(o.status.success());
    let r = report(&rep);
    assert_eq!(r["dropped"]["foreign"], 1);
    assert_eq!(r["dropped"]["ttl_expired"], 0, "--keep-ttl forwards TTL 1");
    assert_eq!(r["translated"]["inbound"], 6);
}
