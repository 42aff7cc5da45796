//! Import of the tutorial's API responses, and the TOML / API JSON / nftables writers.

mod common;

use std::path::PathBuf;
use std::process::Command;

use dnatsim::rules::{
    ForwardEntry, PortSpec, Position, Rules, import_api_json, parse_file, parse_str, to_api_json,
    to_nft, to_toml,
};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn seed() -> Rules {
    parse_file(&root().join("pcaps/seed/rules.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .rules
}

fn api_file(name: &str) -> (String, String) {
    let path = root().join("tests/data/api").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (name.to_string(), text)
}

fn tutorial_inputs() -> Vec<(String, String)> {
    vec![
        api_file("DescribeForwardTableEntries.json"),
        api_file("DescribeBandwidthPackages.json"),
        api_file("DescribeNatGateways.json"),
    ]
}

/// Entries without positions, sorted, for comparing as sets.
fn entry_set(rules: &Rules) -> Vec<ForwardEntry> {
    let mut v: Vec<ForwardEntry> = rules
        .forward_entries
        .iter()
        .map(|e| ForwardEntry {
            position: Position::default(),
            ..e.clone()
        })
        .collect();
    v.sort_by(|a, b| a.id.cmp(&b.id));
    v
}

/// Rules with positions cleared, for whole-value comparison.
fn unplaced(rules: &Rules) -> Rules {
    let mut r = rules.clone();
    for e in &mut r.forward_entries {
        e.position = Position::default();
    }
    r
}

#[test]
fn tutorial_api_json_imports_to_the_seed_rules() {
    let imported = import_api_json(&tutorial_inputs()).unwrap_or_else(|e| panic!("{e}"));
    let seed = seed();
    assert_eq!(imported.gateway, seed.gateway);
    assert_eq!(imported.bandwidth_package, seed.bandwidth_package);
    assert_eq!(entry_set(&imported), entry_set(&seed));
    // The stray space of "203.0.113.79 " in the API output was trimmed.
    assert!(
        imported
            .forward_entries
            .iter()
            .any(|e| e.id == "fwd-11r23r7p5" && e.external_ip.to_string() == "203.0.113.79")
    );
    // Table order: by the EIP's place in the package, then port, as in the tutorial's table.
    let ids: Vec<&str> = imported
        .forward_entries
        .iter()
        .map(|e| e.id.as_str())
        .collect();
    assert_eq!(
        ids,
        [
            "fwd-119smw5tk",
            "fwd-11dz3ly9l",
            "fwd-11r23r7p5",
            "fwd-11cdhpjlk",
            "fwd-11iv34uj7"
        ]
    );
}

#[test]
fn import_order_of_files_does_not_matter() {
    let mut inputs = tutorial_inputs();
    inputs.reverse();
    let a = import_api_json(&inputs).unwrap_or_else(|e| panic!("{e}"));
    let b = import_api_json(&tutorial_inputs()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a, b);
}

#[test]
fn import_errors_name_the_file_and_json_path() {
    let (name, text) = api_file("DescribeForwardTableEntries.json");
    let broken = text.replacen(
        "\"ExternalPort\": \"443\"",
        "\"ExternalPort\": \"70000\"",
        1,
    );
    assert_ne!(broken, text);
    let mut inputs = tutorial_inputs();
    inputs[0] = (name, broken);
    let err = import_api_json(&inputs)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains(
            "--> DescribeForwardTableEntries.json at ForwardTableEntries.ForwardTableEntry[1].ExternalPort"
        ),
        "{err}"
    );
    assert!(err.contains("port 70000 is outside 1-65535"), "{err}");

    let junk = vec![("x.json".to_string(), "{\"Foo\": 1}".to_string())];
    let err = import_api_json(&junk)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("x.json") && err.contains("not a DescribeForwardTableEntries"),
        "{err}"
    );

    let bad = vec![("y.json".to_string(), "{ nope".to_string())];
    let err = import_api_json(&bad)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        err.contains("y.json") && err.contains("JSON syntax error at line 1"),
        "{err}"
    );
}

#[test]
fn to_toml_round_trips() {
    let seed = seed();
    let text = to_toml(&seed);
    let back = parse_str(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(unplaced(&back.rules), unplaced(&seed));

    // Every optional setting and odd value survives too.
    let aliases = parse_file(&root().join("tests/data/rules/api_aliases.toml"))
        .unwrap_or_else(|e| panic!("{e}"))
        .rules;
    let mut odd = aliases.clone();
    odd.gateway.name = "quote \" backslash \\ tab \t newline \n".to_string();
    odd.forward_entries[0].id = "id with \"quotes\"".to_string();
    odd.bandwidth_package.rate_bps = 1_234_567;
    odd.bandwidth_package.burst_bytes = Some(4096);
    let text = to_toml(&odd);
    let back = parse_str(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(unplaced(&back.rules), unplaced(&odd));
}

#[test]
fn imported_rules_write_a_rules_file_equal_to_the_seed() {
    let imported = import_api_json(&tutorial_inputs()).unwrap_or_else(|e| panic!("{e}"));
    let text = to_toml(&imported);
    let back = parse_str(&text, "generated.toml").unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(unplaced(&back.rules), unplaced(&seed()));
}

#[test]
fn to_api_json_round_trips() {
    let seed = seed();
    let json = to_api_json(&seed);
    let value: serde_json::Value = serde_json::from_str(&json).unwrap_or_default();
    assert_eq!(value["TotalCount"], 5);
    let first = &value["ForwardTableEntries"]["ForwardTableEntry"][0];
    assert_eq!(first["ExternalPort"], "any");
    assert_eq!(first["Status"], "Available");

    let mut inputs = tutorial_inputs();
    inputs[0] = ("exported.json".to_string(), json);
    let back = import_api_json(&inputs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entry_set(&back), entry_set(&seed));

    // Ranges use the API's "first/last" spelling and come back as ranges.
    let mut ranged = seed.clone();
    ranged.forward_entries[4].external_port = PortSpec::Range(2200, 2210);
    ranged.forward_entries[4].internal_port = PortSpec::Range(22, 32);
    let json = to_api_json(&ranged);
    assert!(json.contains("\"2200/2210\""), "{json}");
    inputs[0] = ("exported.json".to_string(), json);
    let back = import_api_json(&inputs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(entry_set(&back), entry_set(&ranged));
}

fn nft_check(ruleset: &str) {
    // PATH first; root's sbin directories too, since a user PATH often lacks them.
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs: Vec<PathBuf> = std::env::split_paths(&path).collect();
    dirs.extend(["/usr/sbin", "/sbin"].map(PathBuf::from));
    let Some(nft) = dirs.iter().map(|d| d.join("nft")).find(|p| p.is_file()) else {
        common::skip_or_fail("nft not installed");
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let file = dir.path().join("rules.nft");
    std::fs::write(&file, ruleset).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(nft)
        .arg("-c")
        .arg("-f")
        .arg(&file)
        .output()
        .unwrap_or_else(|e| panic!("running nft: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success()
        && (stderr.contains("Operation not permitted") || stderr.contains("Permission denied"))
    {
        common::skip_or_fail(&format!("nft -c needs privileges here: {stderr}"));
        return;
    }
    assert!(
        out.status.success(),
        "nft -c rejected the ruleset:\n{stderr}\n{ruleset}"
    );
}

#[test]
fn nft_export_of_the_seed() {
    let nft = to_nft(&seed());
    // Port mappings come before the IP mappings, and IP mappings get an SNAT rule.
    let port = nft.find("ip daddr 203.0.113.79 tcp dport 80 dnat to 192.168.1.3");
    let map = nft.find("ip daddr 203.0.113.107 dnat to 192.168.1.1");
    assert!(port.is_some() && map.is_some() && port < map, "{nft}");
    assert!(
        nft.contains("ip saddr 192.168.1.1 snat to 203.0.113.107"),
        "{nft}"
    );
    assert!(
        nft.contains("type nat hook prerouting priority dstnat"),
        "{nft}"
    );
    nft_check(&nft);
}

#[test]
fn nft_export_of_permissive_mix_and_shifted_ranges() {
    let text = r#"
[gateway]
profile = "permissive"
[bandwidth_package]
bandwidth_mbps = 10
public_ips = ["203.0.113.1", "203.0.113.2"]
[[forward_entry]]
id = "ipmap"
external_ip = "203.0.113.1"
external_port = "any"
ip_protocol = "any"
internal_ip = "192.168.1.1"
internal_port = "any"
[[forward_entry]]
id = "shifted"
external_ip = "203.0.113.1"
external_port = "8000/8020"
ip_protocol = "udp"
internal_ip = "192.168.1.2"
internal_port = "9000/9020"
[[forward_entry]]
id = "tcp-all"
external_ip = "203.0.113.2"
external_port = "any"
ip_protocol = "tcp"
internal_ip = "192.168.1.3"
internal_port = "any"
"#;
    let rules = parse_str(text, "mix.toml")
        .unwrap_or_else(|e| panic!("{e}"))
        .rules;
    let nft = to_nft(&rules);
    assert!(nft.contains("8000 : 9000"), "{nft}");
    assert!(nft.contains("8020 : 9020"), "{nft}");
    let shifted = nft.find("comment \"shifted\"");
    let ipmap = nft.find("comment \"ipmap\"");
    assert!(shifted < ipmap, "the port mapping must win: {nft}");
    assert!(
        nft.contains("ip daddr 203.0.113.2 meta l4proto tcp dnat to 192.168.1.3"),
        "{nft}"
    );
    nft_check(&nft);
}

#[test]
fn nft_export_drops_traffic_to_an_eip_that_no_entry_matches() {
    // dnatsim drops traffic to the backup IP5 and to unmapped ports of the port-mapped IP3 and
    // IP4 (no_rule); the exported ruleset must not accept it.
    let nft = to_nft(&seed());
    let chain = "\tchain unmatched {\n\
        \t\ttype filter hook prerouting priority dstnat + 10; policy accept;\n\
        \t\tip daddr { 203.0.113.107, 203.0.113.55, 203.0.113.79, 203.0.113.59, 203.0.113.58 } \
        drop comment \"no_rule: no entry matched\"\n\
        \t}\n";
    assert!(nft.contains(chain), "{nft}");
    // After the DNAT chain (priority dstnat), before the SNAT one.
    let (dnat, drop, snat) = (
        nft.find("chain prerouting"),
        nft.find("chain unmatched"),
        nft.find("chain postrouting"),
    );
    assert!(dnat < drop && drop < snat, "{nft}");
    nft_check(&nft);
}
