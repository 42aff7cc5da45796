//! `dnatsim diff` on the seed sample: the four edits of the issue (IP3 tcp/443 moved from ECS4 to
//! ECS3, IP4 tcp/22 removed, an entry for the backup IP5 added, the bandwidth halved), each with
//! its flows and counts, checked against two separate `replay` runs compared packet by packet.

mod common;

use common::dnatsim;
use dnatsim::capture::CaptureReader;
use dnatsim::nat::ForwardTable;
use dnatsim::pipeline::{ReplayOptions, replay};
use dnatsim::review::{Recorder, changed_records};
use serde_json::Value;
use std::collections::BTreeMap;

const SEED: &str = "pcaps/seed/rules.toml";
const CAPTURE: &str = "pcaps/seed/capture.pcap";

/// `dnatsim diff` with the capture: (exit status, JSON report).
fn diff(new: &str) -> (i32, Value) {
    let out = dnatsim(&[
        "diff", "-q", "-r", SEED, "-r", new, CAPTURE, "--report", "-",
    ]);
    let code = out.status.code().expect("an exit status");
    let report = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    (code, report)
}

/// A separate `replay` run: its JSON report and its trace line per record (the last line of a
/// record, since a held fragment gets a second line when it is decided), without the `#N`.
fn replay_run(rules: &str) -> (Value, BTreeMap<u64, String>) {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("r.json");
    let out = dnatsim(&[
        "replay",
        CAPTURE,
        "-r",
        rules,
        "--trace",
        "1000000",
        "--threads",
        "1",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = BTreeMap::new();
    for l in String::from_utf8(out.stdout).unwrap().lines() {
        let Some(rest) = l.strip_prefix('#') else {
            continue;
        };
        let Some((n, text)) = rest.split_once(' ') else {
            continue;
        };
        if let Ok(n) = n.parse::<u64>() {
            lines.insert(n, text.to_string());
        }
    }
    let report: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    (report, lines)
}

/// Records whose trace line differs between the two separate runs.
fn differing(old: &BTreeMap<u64, String>, new: &BTreeMap<u64, String>) -> Vec<u64> {
    assert_eq!(old.len(), new.len());
    old.iter()
        .filter(|(n, l)| new.get(n) != Some(l))
        .map(|(n, _)| *n)
        .collect()
}

/// The records `dnatsim::review` finds changed, from its own two replays.
fn review_records(new: &str) -> Vec<u64> {
    let run = |path: &str| {
        let rules = dnatsim::rules::parse_file(std::path::Path::new(path))
            .unwrap()
            .rules;
        let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
        let options = ReplayOptions {
            bandwidth: Some(
                dnatsim::bandwidth::LimiterConfig::resolve(&rules.bandwidth_package, 100_000_000)
                    .unwrap(),
            ),
            threads: 1,
            ..ReplayOptions::default()
        };
        let mut reader = CaptureReader::open(std::path::Path::new(CAPTURE)).unwrap();
        let mut rec = Recorder::default();
        replay(&mut reader, None, &table, &options, &mut rec).unwrap();
        rec.fates
    };
    changed_records(&run(SEED), &run(new))
}

fn entry<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == id)
        .unwrap_or_else(|| panic!("no entry {id}"))
}

fn flows_of_kind<'a>(d: &'a Value, kind: &str) -> Vec<&'a Value> {
    d["traffic"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == kind)
        .collect()
}

fn sum(flows: &[&Value], key: &str) -> u64 {
    flows.iter().map(|f| f[key].as_u64().unwrap()).sum()
}

/// What both the diff and the two separate runs must agree on, for every edit.
fn cross_check(new: &str, d: &Value) -> (Value, Value) {
    let (old_report, old_lines) = replay_run(SEED);
    let (new_report, new_lines) = replay_run(new);
    // The bandwidth package drops nothing in either run, so the trace lines tell each fate.
    assert_eq!(old_report["dropped"]["rate_limited"], 0);
    assert_eq!(new_report["dropped"]["rate_limited"], 0);
    let by_trace = differing(&old_lines, &new_lines);
    assert_eq!(d["traffic"]["packets"], 2500);
    assert_eq!(
        d["traffic"]["changed_packets"].as_u64().unwrap(),
        by_trace.len() as u64
    );
    assert_eq!(review_records(new), by_trace, "packet by packet");
    for f in d["traffic"]["changed"].as_array().unwrap() {
        let first = f["first_record"].as_u64().unwrap();
        assert!(by_trace.contains(&first), "{f}");
    }
    (old_report, new_report)
}

#[test]
fn ip3_443_moved_from_ecs4_to_ecs3() {
    let new = "pcaps/seed/edits/ip3-443-to-ecs3.toml";
    let (code, d) = diff(new);
    assert_eq!(code, 1);
    let t = &d["table"];
    assert_eq!(t["changed"].as_array().unwrap().len(), 1);
    assert_eq!(
        t["changed"][0]["old"]["text"],
        "203.0.113.79 tcp/443 -> 192.168.1.4:443"
    );
    assert_eq!(
        t["changed"][0]["new"]["text"],
        "203.0.113.79 tcp/443 -> 192.168.1.3:443"
    );
    assert_eq!(t["changed"][0]["old"]["line"], 55);
    assert!(
        t["added"].as_array().unwrap().is_empty() && t["removed"].as_array().unwrap().is_empty()
    );
    let (old, _) = cross_check(new, &d);
    // Every packet the entry translated changes: requests now go to ECS3; the capture's
    // replies still come from ECS4, which is no longer mapped, so they pass untranslated.
    let e = entry(&old, "fwd-11cdhpjlk");
    let moved = flows_of_kind(&d, "moved");
    assert_eq!(
        d["traffic"]["changed"].as_array().unwrap().len(),
        moved.len()
    );
    // One flow per binding the entry made (28 TCP connections), plus the router's ICMP errors
    // about some of them: grouped as one ICMP flow, since an error is not part of its 5-tuple.
    let (tcp, icmp): (Vec<&Value>, Vec<&Value>) = moved
        .iter()
        .partition(|f| f["flow"].as_str().unwrap().starts_with("tcp "));
    assert_eq!(tcp.len() as u64, e["flows"].as_u64().unwrap());
    assert_eq!(tcp.len(), 28);
    assert_eq!(icmp.len(), 1);
    assert_eq!(icmp[0]["flow"], "icmp 198.51.100.1 <> 203.0.113.79");
    assert_eq!(icmp[0]["packets"], 4);
    assert!(icmp[0]["old"].as_str().unwrap().contains("ICMP error"));
    assert_eq!(sum(&moved, "packets"), e["packets"].as_u64().unwrap());
    assert_eq!(sum(&moved, "packets"), 318);
    assert_eq!(sum(&moved, "bytes"), e["bytes"].as_u64().unwrap());
    for f in &tcp {
        assert!(
            f["flow"]
                .as_str()
                .unwrap()
                .ends_with(" <> 203.0.113.79:443"),
            "{f}"
        );
        assert!(
            f["old"]
                .as_str()
                .unwrap()
                .contains(" > 192.168.1.4:443 [fwd-11cdhpjlk")
        );
        assert!(
            f["new"]
                .as_str()
                .unwrap()
                .contains(" > 192.168.1.3:443 [fwd-11cdhpjlk")
        );
        assert_eq!(f["unchanged_packets"], 0);
    }
    let moves = d["traffic"]["moves"].as_array().unwrap();
    let rows: Vec<(&str, &str, u64)> = moves
        .iter()
        .map(|m| {
            (
                m["from"].as_str().unwrap(),
                m["to"].as_str().unwrap(),
                m["packets"].as_u64().unwrap(),
            )
        })
        .collect();
    // Requests (and the router's ICMP errors about them) reach ECS3 now; the capture's replies
    // from ECS4, no longer mapped, pass unchanged.
    assert_eq!(
        rows,
        [
            (
                "fwd-11cdhpjlk (192.168.1.4)",
                "fwd-11cdhpjlk (192.168.1.3)",
                177
            ),
            ("fwd-11cdhpjlk (192.168.1.4)", "passed unchanged", 141),
        ]
    );
}

#[test]
fn ip4_ssh_removed() {
    let new = "pcaps/seed/edits/ip4-ssh-removed.toml";
    let (code, d) = diff(new);
    assert_eq!(code, 1);
    let removed = d["table"]["removed"].as_array().unwrap();
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0]["id"], "fwd-11iv34uj7");
    let (old, _) = cross_check(new, &d);
    let e = entry(&old, "fwd-11iv34uj7");
    let dropped = flows_of_kind(&d, "newly_dropped");
    let (tcp, icmp): (Vec<&Value>, Vec<&Value>) = dropped
        .iter()
        .partition(|f| f["flow"].as_str().unwrap().starts_with("tcp "));
    assert_eq!(tcp.len(), 28);
    assert_eq!(tcp.len() as u64, e["flows"].as_u64().unwrap());
    assert_eq!(icmp.len(), 1);
    assert_eq!(icmp[0]["flow"], "icmp 198.51.100.1 <> 203.0.113.59");
    assert_eq!(icmp[0]["packets"], 7);
    assert_eq!(sum(&dropped, "packets"), e["packets"].as_u64().unwrap());
    assert_eq!(sum(&dropped, "packets"), 316);
    for f in &tcp {
        assert!(
            f["flow"].as_str().unwrap().ends_with(" <> 203.0.113.59:22"),
            "{f}"
        );
        assert_eq!(f["new"], "dropped: no_rule");
    }
    // The capture's TTL-1 packet to IP4 tcp/22: the lookup now fails before the TTL check.
    let other = flows_of_kind(&d, "drop_reason");
    assert_eq!(other.len(), 1);
    assert_eq!(other[0]["old"], "dropped: ttl_expired");
    assert_eq!(other[0]["new"], "dropped: no_rule");
    assert_eq!(d["traffic"]["changed_packets"], 317);
}

#[test]
fn ip5_entry_added() {
    let new = "pcaps/seed/edits/ip5-added.toml";
    let (code, d) = diff(new);
    assert_eq!(code, 1);
    let added = d["table"]["added"].as_array().unwrap();
    assert_eq!(added.len(), 1);
    assert_eq!(added[0]["text"], "203.0.113.58 tcp/80 -> 192.168.1.6:80");
    let (old, newr) = cross_check(new, &d);
    let e = entry(&newr, "fwd-ip5web");
    let allowed = flows_of_kind(&d, "newly_allowed");
    assert_eq!(allowed.len(), 26);
    assert_eq!(allowed.len() as u64, e["flows"].as_u64().unwrap());
    assert_eq!(sum(&allowed, "packets"), e["packets"].as_u64().unwrap());
    // Each was a no_rule drop before: the old run's no_rule count falls by as many.
    assert_eq!(
        old["dropped"]["no_rule"].as_u64().unwrap() - newr["dropped"]["no_rule"].as_u64().unwrap(),
        26
    );
    for f in &allowed {
        assert!(
            f["flow"].as_str().unwrap().ends_with(" <> 203.0.113.58:80"),
            "{f}"
        );
        assert_eq!(f["old"], "dropped: no_rule");
    }
    assert_eq!(d["traffic"]["changed"].as_array().unwrap().len(), 26);
}

#[test]
fn bandwidth_halved_changes_no_flow_of_the_sample() {
    let new = "pcaps/seed/edits/bandwidth-halved.toml";
    let (code, d) = diff(new);
    let bw = d["table"]["bandwidth"].as_array().unwrap();
    assert_eq!(bw.len(), 1);
    assert_eq!(
        (&bw[0]["field"], &bw[0]["old"], &bw[0]["new"]),
        (&"bandwidth_mbps".into(), &"150".into(), &"75".into())
    );
    // The sample peaks below 75 Mbps in both directions, so halving the package drops nothing:
    // the traffic does the same, and diff says so with status 0.
    let (_, newr) = cross_check(new, &d);
    for dir in ["inbound", "outbound"] {
        let peak = newr["bandwidth"][dir]["totals"]["peak_offered_bps"]
            .as_u64()
            .unwrap();
        assert!(peak < 75_000_000, "{dir} peaks at {peak}");
    }
    assert_eq!(d["traffic"]["changed_packets"], 0);
    assert_eq!(code, 0);
    // Without the capture, the table itself differs: status 1.
    let out = dnatsim(&["diff", "-q", "-r", SEED, "-r", new]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_package_too_small_shows_rate_limit_differences() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.toml");
    let text = std::fs::read_to_string(SEED)
        .unwrap()
        .replace("bandwidth_mbps = 150", "bandwidth_mbps = 2");
    std::fs::write(&path, text).unwrap();
    let (code, d) = diff(path.to_str().unwrap());
    assert_eq!(code, 1);
    let (old, _) = replay_run(SEED);
    let (small, _) = replay_run(path.to_str().unwrap());
    let limited = small["dropped"]["rate_limited"].as_u64().unwrap();
    assert!(limited > 0);
    assert_eq!(old["dropped"]["rate_limited"], 0);
    // Only the package changed, so every changed packet is one it now drops.
    assert_eq!(d["traffic"]["changed_packets"].as_u64().unwrap(), limited);
    let all = d["traffic"]["changed"].as_array().unwrap();
    assert!(all.iter().all(|f| f["kind"] == "rate_limit"), "{all:#?}");
}

#[test]
fn identical_tables_exit_0_and_trouble_exits_2() {
    let out = dnatsim(&["diff", "-r", SEED, "-r", SEED, CAPTURE]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("table: no difference"), "{text}");
    assert!(text.contains("0 packets in 0 flows changed"), "{text}");
    let out = dnatsim(&["diff", "-r", SEED, "-r", "no/such/file.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let out = dnatsim(&["diff", "-r", SEED, "-r", SEED, "no-such.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    let out = dnatsim(&["diff", "-r", SEED]);
    assert_eq!(out.status.code(), Some(2));
    let out = dnatsim(&["diff", "-r", SEED, "-r", SEED, "-"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn permissive_shadowing_is_warned() {
    let dir = tempfile::tempdir().unwrap();
    let head = "[gateway]\nname = \"g\"\nprofile = \"permissive\"\n[bandwidth_package]\nbandwidth_mbps = 10\npublic_ips = [\"198.51.100.1\"]\n[[forward_entry]]\nid = \"map\"\nexternal_ip = \"198.51.100.1\"\nexternal_port = \"any\"\nip_protocol = \"any\"\ninternal_ip = \"10.0.0.1\"\ninternal_port = \"any\"\n";
    let port = "[[forward_entry]]\nid = \"web\"\nexternal_ip = \"198.51.100.1\"\nexternal_port = 80\nip_protocol = \"tcp\"\ninternal_ip = \"10.0.0.2\"\ninternal_port = 80\n";
    let a = dir.path().join("a.toml");
    let b = dir.path().join("b.toml");
    std::fs::write(&a, head).unwrap();
    std::fs::write(&b, format!("{head}{port}")).unwrap();
    let run = |x: &std::path::Path, y: &std::path::Path| {
        let out = dnatsim(&[
            "diff",
            "-q",
            "-r",
            x.to_str().unwrap(),
            "-r",
            y.to_str().unwrap(),
            "--report",
            "-",
        ]);
        assert_eq!(out.status.code(), Some(1));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v["table"]["warnings"].as_array().unwrap().clone()
    };
    let w = run(&a, &b);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].as_str()
            .unwrap()
            .contains("web (198.51.100.1 tcp/80) shadows IP mapping map")
    );
    let w = run(&b, &a);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].as_str().unwrap().contains("un-shadows IP mapping map"));
}

#[test]
fn readme_example_is_what_diff_prints() {
    let out = dnatsim(&[
        "diff",
        "-r",
        SEED,
        "-r",
        "pcaps/seed/edits/all.toml",
        CAPTURE,
        "--max-flows-shown",
        "3",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string("README.md").unwrap();
    assert!(
        readme.contains(&text),
        "README's diff example differs from:\n{text}"
    );
}

#[test]
fn html_and_report_outputs_are_checked_before_work() {
    let before = std::fs::read(SEED).unwrap();
    // An output that names an input is a usage error (2) for replay and diff alike.
    let out = dnatsim(&["diff", "-r", SEED, "-r", SEED, CAPTURE, "--html", SEED]);
    assert_eq!(out.status.code(), Some(2));
    let out = dnatsim(&["diff", "-r", SEED, "-r", SEED, CAPTURE, "--report", CAPTURE]);
    assert_eq!(out.status.code(), Some(2));
    let out = dnatsim(&["replay", CAPTURE, "-r", SEED, "-q", "--html", CAPTURE]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(std::fs::read(SEED).unwrap(), before);
    // --html and --report on one file.
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("x");
    let f = f.to_str().unwrap();
    let out = dnatsim(&[
        "replay", CAPTURE, "-r", SEED, "-q", "--html", f, "--report", f,
    ]);
    assert_eq!(out.status.code(), Some(2));
    // A missing directory: replay's unusable output (1); diff's trouble (2). Nothing written.
    let missing = dir.path().join("no/such/dir/r.html");
    let m = missing.to_str().unwrap();
    let out = dnatsim(&["replay", CAPTURE, "-r", SEED, "-q", "--html", m]);
    assert_eq!(out.status.code(), Some(1));
    let out = dnatsim(&["diff", "-r", SEED, "-r", SEED, "--html", m]);
    assert_eq!(out.status.code(), Some(2));
    assert!(std::fs::read_dir(dir.path()).unwrap().count() == 0);
}
