//! `explain` and the command line's messages as a user sees them: exact lines, exit codes.

mod common;

use common::dnatsim;
use std::path::Path;
use std::process::Output;

const RULES: &str = "pcaps/seed/rules.toml";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `explain` on the seed rules; asserts exit 0 and returns standard output.
fn explain(args: &[&str]) -> String {
    explain_with(RULES, args)
}

fn explain_with(rules: &str, args: &[&str]) -> String {
    let mut v = vec!["explain", "--rules", rules];
    v.extend_from_slice(args);
    let o = dnatsim(&v);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

/// The lines of `out` that start with two spaces and `head`, trimmed.
fn line<'a>(out: &'a str, head: &str) -> Vec<&'a str> {
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with(head))
        .collect()
}

#[test]
fn explain_refuses_a_port_for_a_protocol_without_ports() {
    for (args, first) in [
        (
            vec!["icmp", "203.0.113.107:80"],
            "error: icmp has no ports, but the destination `203.0.113.107:80` has one: only tcp and udp entries match ports; give the destination as 203.0.113.107",
        ),
        (
            vec!["sctp", "203.0.113.107:9"],
            "error: sctp has no ports, but the destination `203.0.113.107:9` has one: only tcp and udp entries match ports; give the destination as 203.0.113.107",
        ),
        (
            vec!["47", "203.0.113.107", "--from", "198.51.100.7:1234"],
            "error: gre has no ports, but --from `198.51.100.7:1234` has one: only tcp and udp entries match ports; give --from as 198.51.100.7",
        ),
        (
            vec!["99", "203.0.113.107:1"],
            "error: proto 99 has no ports, but the destination `203.0.113.107:1` has one: only tcp and udp entries match ports; give the destination as 203.0.113.107",
        ),
    ] {
        let mut v = vec!["explain", "--rules", RULES];
        v.extend_from_slice(&args);
        let o = dnatsim(&v);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert_eq!(err.lines().next(), Some(first), "{err}");
        assert!(
            err.contains("Usage: dnatsim explain [OPTIONS] --rules <RULES> <PROTO> <DST_IP:PORT>"),
            "{err}"
        );
        assert!(stdout(&o).is_empty());
    }
    // Without a port (and with the default client, which has one for tcp and udp) it works.
    let out = explain(&["icmp", "203.0.113.107"]);
    assert_eq!(
        out.lines().next(),
        Some("icmp 198.51.100.7 > 203.0.113.107"),
        "{out}"
    );
}

const RANGE_RULES: &str = r#"[gateway]
name = "R"
[bandwidth_package]
bandwidth_mbps = 10
public_ips = ["203.0.113.1"]
[[forward_entry]]
id = "fwd-range"
external_ip = "203.0.113.1"
external_port = "8000/8010"
ip_protocol = "udp"
internal_ip = "192.168.1.3"
internal_port = "9000/9010"
[[forward_entry]]
id = "fwd-exact"
external_ip = "203.0.113.1"
external_port = 80
ip_protocol = "tcp"
internal_ip = "192.168.1.4"
internal_port = 80
"#;

#[test]
fn explain_says_port_range_for_a_match_inside_a_range() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("range.toml");
    std::fs::write(&rules, RANGE_RULES).unwrap();
    let rules = rules.to_str().unwrap();
    let out = explain_with(rules, &["udp", "203.0.113.1:8005"]);
    assert_eq!(
        line(&out, "matched"),
        [
            "matched fwd-range by port range, offset by offset: 203.0.113.1 port 8000/8010 -> 192.168.1.3 port 9000/9010, protocol UDP"
        ],
        "{out}"
    );
    assert_eq!(
        line(&out, "=>"),
        ["=> udp 198.51.100.7:51000 > 192.168.1.3:9005"]
    );
    let out = explain_with(
        rules,
        &["udp", "198.51.100.7:5000", "--from", "192.168.1.3:9010"],
    );
    assert_eq!(
        line(&out, "outbound"),
        ["outbound: 192.168.1.3:9010 is the private side of fwd-range (port range mapping)"],
        "{out}"
    );
    // An exact port still says so.
    let out = explain_with(rules, &["tcp", "203.0.113.1:80"]);
    assert_eq!(
        line(&out, "matched"),
        [
            "matched fwd-exact by exact port (port mapping): 203.0.113.1 port 80 -> 192.168.1.4 port 80, protocol TCP"
        ],
        "{out}"
    );
}

#[test]
fn explain_says_a_server_is_mapped_for_another_protocol() {
    let out = explain(&["udp", "198.51.100.7:51000", "--from", "192.168.1.4:443"]);
    assert_eq!(
        line(&out, "foreign"),
        [
            "foreign: 198.51.100.7 is not an EIP, and 192.168.1.4 is a mapped server for tcp/443 (fwd-11cdhpjlk) only, not udp/443; passes unchanged (--foreign drop would drop it)"
        ],
        "{out}"
    );
    let out = explain(&[
        "udp",
        "198.51.100.7:51000",
        "--from",
        "192.168.1.4:443",
        "--foreign",
        "drop",
    ]);
    assert_eq!(
        line(&out, "dropped"),
        [
            "dropped (foreign): 198.51.100.7 is not an EIP, and 192.168.1.4 is a mapped server for tcp/443 (fwd-11cdhpjlk) only, not udp/443"
        ],
        "{out}"
    );
    // A host that is no server keeps the plain wording.
    let out = explain(&["udp", "198.51.100.7:51000", "--from", "192.168.1.9:443"]);
    assert_eq!(
        line(&out, "foreign"),
        [
            "foreign: neither 198.51.100.7 is an EIP nor 192.168.1.9:443 a mapped server; passes unchanged (--foreign drop would drop it)"
        ],
        "{out}"
    );
}

#[test]
fn explain_spells_foreign_as_replay_does() {
    let args = ["tcp", "198.51.100.7:80", "--from", "198.51.100.8:1234"];
    let pass = explain(&args);
    assert_eq!(line(&pass, "foreign:").len(), 1, "{pass}");
    let mut drop_args = args.to_vec();
    drop_args.extend(["--foreign", "drop"]);
    let drop = explain(&drop_args);
    assert_eq!(
        line(&drop, "dropped"),
        ["dropped (foreign): neither 198.51.100.7 is an EIP nor 198.51.100.8 a mapped server"],
        "{drop}"
    );
    // The old spelling still works, says it is deprecated and is not in the help.
    let mut v = vec!["explain", "--rules", RULES];
    v.extend_from_slice(&args);
    v.push("--foreign-drop");
    let o = dnatsim(&v);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), drop);
    assert!(
        stderr(&o).contains("dnatsim: warning: --foreign-drop is deprecated; use --foreign drop"),
        "{}",
        stderr(&o)
    );
    let help = stdout(&dnatsim(&["explain", "--help"]));
    assert!(help.contains("--foreign <FOREIGN>"), "{help}");
    assert!(!help.contains("--foreign-drop"), "{help}");
    let o = dnatsim(&[
        "explain",
        "--rules",
        RULES,
        "tcp",
        "203.0.113.79:80",
        "--foreign",
        "no",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

/// Writes `text` to `name` in a new temporary directory.
fn file(name: &str, text: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let path = path.to_str().unwrap().to_string();
    (dir, path)
}

#[test]
fn rule_diagnostics_are_printed_once_without_a_doubled_prefix() {
    let (_dir, path) = file("typo.toml", b"[gateway]\nnme = \"x\"\n");
    let o = dnatsim(&["check", "--rules", &path]);
    assert_eq!(o.status.code(), Some(1));
    let want = format!(
        "error[missing-key]: the rules file has no [bandwidth_package] (bandwidth_mbps and public_ips are required)\n \
         --> {path}\n\n\
         error[unknown-key]: unknown key `nme` in [gateway]; did you mean `name`?\n \
         --> {path}:2:1\n  |\n2 | nme = \"x\"\n  | ^^^\n\n\
         dnatsim: error: 2 errors in {path}\n"
    );
    assert_eq!(stderr(&o), want);
}

#[test]
fn an_infinite_bandwidth_must_be_finite() {
    let (_dir, path) = file(
        "inf.toml",
        b"[bandwidth_package]\nbandwidth_mbps = inf\npublic_ips = [\"203.0.113.1\"]\n",
    );
    let o = dnatsim(&["check", "--rules", &path]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert_eq!(
        err.lines().next(),
        Some("error[bandwidth]: bandwidth_mbps must be finite, not inf"),
        "{err}"
    );
    assert!(err.contains(&format!("--> {path}:2:18")), "{err}");
    let nan = std::fs::read_to_string(&path)
        .unwrap()
        .replace("inf", "nan");
    let err = dnatsim::rules::parse_str(&nan, "nan.toml")
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("bandwidth_mbps must be finite, not NaN"),
        "{err}"
    );
}

#[test]
fn a_capture_given_as_the_rules_file_is_named_as_such() {
    let pcapng = [
        0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff,
        0xff, 0xff, 0xff, 0xff, 0xff, 28, 0, 0, 0,
    ];
    let (_dir, ng) = file("capture.pcapng", &pcapng);
    for (path, format) in [("pcaps/seed/capture.pcap", "pcap"), (ng.as_str(), "pcapng")] {
        // tcpdump's habit: -r names the capture.
        let o = dnatsim(&["replay", "-r", path, RULES]);
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(
            stderr(&o),
            format!(
                "dnatsim: error: {path} is a capture ({format}), not a rules file: -r/--rules takes \
                 the rules file (TOML); a capture is replay's IN argument\n"
            )
        );
    }
}

#[test]
fn an_error_names_a_path_once() {
    let o = dnatsim(&["replay", "/nonexistent/in.pcap", "--rules", RULES]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let last = err.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("dnatsim: error: cannot open /nonexistent/in.pcap: "),
        "{err}"
    );
    assert_eq!(last.matches("/nonexistent/in.pcap").count(), 1, "{err}");
}

#[test]
fn counts_of_one_are_singular() {
    let (dir, path) = file(
        "one.toml",
        b"[bandwidth_package]\nbandwidth_mbps = 10\npublic_ips = [\"203.0.113.1\"]\n\
          [[forward_entry]]\nexternal_ip = \"203.0.113.1\"\nexternal_port = 80\n\
          ip_protocol = \"tcp\"\ninternal_ip = \"192.168.1.3\"\ninternal_port = 80\n",
    );
    let o = dnatsim(&["check", "--rules", &path]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().next(),
        Some(
            format!(
                "{path}: gateway (unnamed), profile alibaba, bandwidth package 10 Mbps with 1 public IP, 1 forward entry"
            )
            .as_str()
        )
    );
    let seed = stdout(&dnatsim(&["check", "--rules", RULES]));
    assert!(
        seed.contains("150 Mbps with 5 public IPs, 5 forward entries"),
        "{seed}"
    );

    let out = dir.path().join("one.pcap");
    let out = out.to_str().unwrap();
    let o = dnatsim(&["gen", "--rules", &path, "-o", out, "--packets", "1"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.starts_with(&format!("{out}: 1 packet, ")), "{err}");
    assert!(Path::new(out).exists());
}
