//! The commands as a user runs them: output, exit codes and error messages.

mod common;

use common::dnatsim;
use std::process::{Command, Output};

const RULES: &str = "pcaps/seed/rules.toml";

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn check_prints_the_tutorial_table_in_order() {
    let o = dnatsim(&["check", "--rules", RULES]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| l.starts_with("203.0.113."))
        .map(|l| l.split_whitespace().collect())
        .collect();
    let want = [
        [
            "203.0.113.107",
            "Any",
            "192.168.1.1",
            "Any",
            "Any",
            "fwd-119smw5tk",
        ],
        [
            "203.0.113.55",
            "Any",
            "192.168.1.2",
            "Any",
            "Any",
            "fwd-11dz3ly9l",
        ],
        [
            "203.0.113.79",
            "80",
            "192.168.1.3",
            "80",
            "TCP",
            "fwd-11r23r7p5",
        ],
        [
            "203.0.113.79",
            "443",
            "192.168.1.4",
            "443",
            "TCP",
            "fwd-11cdhpjlk",
        ],
        [
            "203.0.113.59",
            "22",
            "192.168.1.5",
            "22",
            "TCP",
            "fwd-11iv34uj7",
        ],
    ];
    assert_eq!(rows, want);
    assert!(out.contains("150 Mbps"), "{out}");
    assert!(
        stderr(&o).contains("203.0.113.58 is in the bandwidth package but has no forward entry")
    );
}

#[test]
fn check_rejects_a_bad_file_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("typo.toml");
    let text = std::fs::read_to_string(RULES)
        .unwrap()
        .replacen("internal_ip", "internal_ipp", 1);
    std::fs::write(&path, text).unwrap();
    let o = dnatsim(&["check", "--rules", path.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(err.contains("internal_ipp"), "{err}");
    assert!(err.contains("typo.toml:"), "{err}");
}

fn explain(args: &[&str]) -> String {
    let mut v = vec!["explain", "--rules", RULES];
    v.extend_from_slice(args);
    let o = dnatsim(&v);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn explain_answers_the_five_tutorial_cases() {
    let cases = [
        (
            ["tcp", "203.0.113.107:8080"],
            "fwd-119smw5tk as an IP mapping",
            "> 192.168.1.1:8080",
        ),
        (
            ["udp", "203.0.113.55:53"],
            "fwd-11dz3ly9l as an IP mapping",
            "> 192.168.1.2:53",
        ),
        (
            ["tcp", "203.0.113.79:80"],
            "fwd-11r23r7p5 by exact port",
            "> 192.168.1.3:80",
        ),
        (
            ["tcp", "203.0.113.79:443"],
            "fwd-11cdhpjlk by exact port",
            "> 192.168.1.4:443",
        ),
        (
            ["tcp", "203.0.113.59:22"],
            "fwd-11iv34uj7 by exact port",
            "> 192.168.1.5:22",
        ),
    ];
    for (args, matched, after) in cases {
        let out = explain(&args);
        assert!(out.contains(matched), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with("  => ") && l.ends_with(after)),
            "{out}"
        );
    }
}

#[test]
fn explain_says_why_a_miss_is_a_miss() {
    let out = explain(&["tcp", "203.0.113.59:80"]);
    assert!(
        out.contains("dropped (no_rule): 203.0.113.59 has entries for tcp/22, not tcp/80"),
        "{out}"
    );
    let out = explain(&["udp", "203.0.113.79:80"]);
    assert!(
        out.contains("203.0.113.79 has entries for tcp/80 and tcp/443, not udp/80"),
        "{out}"
    );
    let out = explain(&["tcp", "203.0.113.58:443"]);
    assert!(
        out.contains("203.0.113.58 is in the bandwidth package but has no forward entry"),
        "{out}"
    );
}

#[test]
fn explain_translates_replies_back() {
    let out = explain(&["tcp", "198.51.100.7:51000", "--from", "192.168.1.4:443"]);
    assert!(
        out.contains("192.168.1.4:443 is the private side of fwd-11cdhpjlk"),
        "{out}"
    );
    assert!(
        out.contains("=> tcp 203.0.113.79:443 > 198.51.100.7:51000"),
        "{out}"
    );
}

#[test]
fn explain_rejects_bad_arguments() {
    // A wrong command line is a usage error (exit 2), found before the rules are read.
    let o = dnatsim(&["explain", "--rules", RULES, "tcp", "203.0.113.79"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("tcp and udp need IP:PORT"),
        "{}",
        stderr(&o)
    );
    let o = dnatsim(&["explain", "--rules", RULES, "tcp", "203.0.113.999:80"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("not an IPv4 address"));
    let o = dnatsim(&["explain", "--rules", RULES, "tcp", "203.0.113.79:0"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("the port must be 1-65535"),
        "{}",
        stderr(&o)
    );
    let o = dnatsim(&["explain", "--rules", RULES, "foo", "203.0.113.79:80"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("unknown protocol `foo`"),
        "{}",
        stderr(&o)
    );
    let o = dnatsim(&[
        "explain",
        "--rules",
        "no-such.toml",
        "tcp",
        "203.0.113.79:0",
    ]);
    assert_eq!(
        o.status.code(),
        Some(2),
        "the command line is checked first"
    );
}

#[test]
fn import_of_the_tutorial_json_equals_the_seed_rules() {
    let o = dnatsim(&[
        "import",
        "tests/data/api/DescribeForwardTableEntries.json",
        "tests/data/api/DescribeBandwidthPackages.json",
        "tests/data/api/DescribeNatGateways.json",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let imported = dnatsim::rules::parse_str(&stdout(&o), "imported.toml")
        .unwrap()
        .rules;
    let seed = dnatsim::rules::parse_file(std::path::Path::new(RULES))
        .unwrap()
        .rules;
    let key = |r: &dnatsim::rules::Rules| {
        let mut v: Vec<_> = r
            .forward_entries
            .iter()
            .map(|e| {
                (
                    e.id.clone(),
                    e.external_ip,
                    e.external_port,
                    e.ip_protocol,
                    e.internal_ip,
                    e.internal_port,
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(key(&imported), key(&seed));
    assert_eq!(
        imported.bandwidth_package.public_ips,
        seed.bandwidth_package.public_ips
    );
    assert_eq!(imported.bandwidth_package.rate_bps, 150_000_000);
    assert_eq!(imported.gateway.name, "MyNatGW");
}

#[test]
fn export_nft_loads_in_nft_check_mode() {
    let o = dnatsim(&["export", "--rules", RULES, "--format", "nft"]);
    assert_eq!(o.status.code(), Some(0));
    let nft = std::process::Command::new("nft").arg("--version").output();
    if nft.is_err() {
        common::skip_or_fail("nft is not installed; .ci/run installs nftables");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dnat.nft");
    std::fs::write(&path, &o.stdout).unwrap();
    let check = Command::new("nft")
        .args(["-c", "-f"])
        .arg(&path)
        .output()
        .unwrap();
    if !check.status.success()
        && String::from_utf8_lossy(&check.stderr).contains("Operation not permitted")
    {
        common::skip_or_fail("nft -c needs CAP_NET_ADMIN here");
        return;
    }
    assert!(
        check.status.success(),
        "nft -c failed: {}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[test]
fn usage_errors_exit_2() {
    let o = dnatsim(&["explain"]);
    assert_eq!(o.status.code(), Some(2));
    let o = dnatsim(&["check", "--rules", "/nonexistent/rules.toml"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("/nonexistent/rules.toml"),
        "{}",
        stderr(&o)
    );
}
