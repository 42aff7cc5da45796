//! `dnatsim export --format terraform`: the output parsed by a real HCL parser (hcl-rs), every
//! `alicloud_forward_entry` compared with the rules file it came from.

mod common;

use dnatsim::rules::{Rules, parse_str};
use hcl::{Body, Expression};
use std::collections::BTreeMap;

/// Attribute (or variable) name -> value.
type Attrs = BTreeMap<String, String>;

/// A string attribute, or a `var.NAME` reference resolved through the variables' defaults.
fn value(expr: &Expression, vars: &BTreeMap<String, String>) -> String {
    match expr {
        Expression::String(s) => s.clone(),
        Expression::Traversal(t) => {
            let text = Expression::Traversal(t.clone()).to_string();
            let name = text
                .strip_prefix("var.")
                .unwrap_or_else(|| panic!("a reference other than var.NAME: {text}"));
            vars.get(name)
                .unwrap_or_else(|| panic!("var.{name} has no default"))
                .clone()
        }
        other => panic!("unexpected expression {other:?}"),
    }
}

/// Every `alicloud_forward_entry` as (label, attribute -> value), variables resolved.
fn entries(text: &str) -> (Vec<(String, Attrs)>, Attrs) {
    let body: Body = hcl::parse(text).expect("the export is valid HCL");
    let mut vars = BTreeMap::new();
    let mut declared = Vec::new();
    for b in body.blocks().filter(|b| b.identifier() == "variable") {
        let name = b.labels()[0].as_str().to_string();
        declared.push(name.clone());
        if let Some(a) = b.body().attributes().find(|a| a.key() == "default") {
            vars.insert(name, value(a.expr(), &BTreeMap::new()));
        }
    }
    assert!(declared.contains(&"forward_table_id".to_string()));
    let mut out = Vec::new();
    for b in body.blocks().filter(|b| b.identifier() == "resource") {
        assert_eq!(b.labels()[0].as_str(), "alicloud_forward_entry");
        let mut attrs = BTreeMap::new();
        for a in b.body().attributes() {
            let v = if a.key() == "forward_table_id" {
                // The table id has no default: it is the real gateway's; keep the reference.
                a.expr().to_string()
            } else {
                value(a.expr(), &vars)
            };
            attrs.insert(a.key().to_string(), v);
        }
        out.push((b.labels()[1].as_str().to_string(), attrs));
    }
    (out, vars)
}

fn check(rules_text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.toml");
    std::fs::write(&path, rules_text).unwrap();
    let rules: Rules = parse_str(rules_text, "rules.toml").unwrap().rules;
    let out = common::dnatsim(&[
        "export",
        "--rules",
        path.to_str().unwrap(),
        "--format",
        "terraform",
        "-q",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (got, vars) = entries(&text);
    assert_eq!(got.len(), rules.forward_entries.len(), "{text}");
    // One variable per EIP, holding that EIP.
    for (i, ip) in rules.bandwidth_package.public_ips.iter().enumerate() {
        assert_eq!(vars.get(&format!("eip_{}", i + 1)), Some(&ip.to_string()));
    }
    let mut labels: Vec<&String> = got.iter().map(|(l, _)| l).collect();
    labels.sort();
    labels.dedup();
    assert_eq!(labels.len(), got.len(), "resource labels are unique");
    for (e, (_, a)) in rules.forward_entries.iter().zip(&got) {
        let want: BTreeMap<String, String> = [
            ("forward_table_id", "var.forward_table_id".to_string()),
            ("forward_entry_name", e.id.clone()),
            ("external_ip", e.external_ip.to_string()),
            ("external_port", e.external_port.to_string()),
            ("ip_protocol", e.ip_protocol.to_string()),
            ("internal_ip", e.internal_ip.to_string()),
            ("internal_port", e.internal_port.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        assert_eq!(a, &want);
    }
}

#[test]
fn seed_table_as_terraform() {
    check(&std::fs::read_to_string("pcaps/seed/rules.toml").unwrap());
}

#[test]
fn ranges_udp_and_odd_names_as_terraform() {
    check(
        r#"
[gateway]
name = "GW \"${evil}\""
profile = "permissive"

[bandwidth_package]
bandwidth_mbps = 10
public_ips = ["198.51.100.1", "198.51.100.2"]

[[forward_entry]]
id = "9 weird.${id}"
external_ip = "198.51.100.1"
external_port = "8000/8010"
ip_protocol = "udp"
internal_ip = "10.0.0.1"
internal_port = "9000/9010"

[[forward_entry]]
external_ip = "198.51.100.2"
external_port = "any"
ip_protocol = "any"
internal_ip = "10.0.0.2"
internal_port = "any"

[[forward_entry]]
external_ip = "198.51.100.2"
external_port = 53
ip_protocol = "udp"
internal_ip = "10.0.0.3"
internal_port = 5353
"#,
    );
}
