//! Every rejection rule of the rules file, each triggered by a small file in tests/data/rules/,
//! checked by rule name, message text and line number.

use std::path::{Path, PathBuf};

use dnatsim::rules::{
    Diagnostic, PortSpec, Profile, Protocol, RulesError, Severity, parse_file, parse_str,
};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/rules")
        .join(name)
}

/// The errors of a file that must be rejected.
fn errors_of(name: &str) -> (Vec<Diagnostic>, String) {
    match parse_file(&data(name)) {
        Ok(p) => panic!("{name} was accepted: {:?}", p.rules),
        Err(e) => (e.diagnostics().to_vec(), e.to_string()),
    }
}

/// Asserts one error with this rule, on this line, whose message contains `text`.
fn assert_error(errs: &[Diagnostic], rule: &str, line: u32, text: &str) {
    let found = errs
        .iter()
        .any(|d| d.rule == rule && d.line == line && d.message.contains(text));
    let all: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
    assert!(
        found,
        "no `{rule}` error on line {line} containing {text:?}; got:\n{}",
        all.join("\n")
    );
}

/// A file that breaks exactly one rule once.
fn single(name: &str, rule: &str, line: u32, text: &str) -> String {
    let (errs, rendered) = errors_of(name);
    assert_error(&errs, rule, line, text);
    assert_eq!(errs.len(), 1, "expected one error:\n{rendered}");
    assert!(
        rendered.ends_with(&format!("1 error in {}", data(name).display())),
        "{rendered}"
    );
    rendered
}

#[test]
fn duplicate_external_tuple() {
    let r = single(
        "duplicate_external.toml",
        "duplicate-external",
        19,
        "duplicate (external IP, external port, protocol): 203.0.113.1 port 80 tcp",
    );
    assert!(r.contains("entry at line 10"), "{r}");
}

#[test]
fn duplicate_internal_tuple() {
    let r = single(
        "duplicate_internal.toml",
        "duplicate-internal",
        22,
        "duplicate (protocol, internal IP, internal port): 192.168.1.3 port 80 tcp",
    );
    assert!(r.contains("entry at line 10"), "{r}");
}

#[test]
fn any_protocol_with_a_port() {
    single(
        "any_protocol_port.toml",
        "any-protocol-port",
        12,
        "ip_protocol \"any\" maps the whole IP, so both ports must be \"any\"",
    );
}

#[test]
fn any_port_on_one_side_only() {
    single(
        "any_port_mismatch.toml",
        "any-port-mismatch",
        15,
        "\"any\" port on one side only",
    );
}

#[test]
fn any_port_with_tcp_is_alibaba_only() {
    single(
        "any_port_tcp.toml",
        "any-port-needs-any-protocol",
        13,
        "port \"any\" needs ip_protocol \"any\"",
    );
    let text = std::fs::read_to_string(data("any_port_tcp.toml")).unwrap_or_default();
    let permissive = text.replace("name = \"T\"", "name = \"T\"\nprofile = \"permissive\"");
    let parsed = parse_str(&permissive, "p.toml").unwrap_or_else(|e| panic!("{e}"));
    let e = &parsed.rules.forward_entries[0];
    assert_eq!(
        (e.ip_protocol, e.external_port, e.internal_port),
        (Protocol::Tcp, PortSpec::Any, PortSpec::Any)
    );
    // ... but only while it overlaps no other tcp entry on the IP.
    let clash = format!(
        "{permissive}\n[[forward_entry]]\nexternal_ip = \"203.0.113.1\"\nexternal_port = 22\nip_protocol = \"tcp\"\ninternal_ip = \"192.168.1.9\"\ninternal_port = 22\n"
    );
    let err = parse_str(&clash, "p.toml").err().map(|e| e.to_string());
    assert!(
        err.as_deref()
            .is_some_and(|s| s.contains("overlap-external")),
        "{err:?}"
    );
}

#[test]
fn external_ip_outside_the_package() {
    single(
        "ip_not_in_package.toml",
        "external-ip-not-in-package",
        11,
        "external_ip 203.0.113.9 is not one of the bandwidth package's public_ips",
    );
}

#[test]
fn external_ip_equal_to_internal_ip() {
    single(
        "external_equals_internal.toml",
        "external-equals-internal",
        14,
        "internal_ip 203.0.113.1 is the same as external_ip",
    );
}

#[test]
fn ip_mapping_owns_its_eip_under_alibaba() {
    let r = single(
        "ip_mapping_with_port.toml",
        "ip-mapping-exclusive",
        18,
        "external_ip 203.0.113.1 has an IP mapping (ip_protocol \"any\") at line 10",
    );
    assert!(r.contains("permissive"), "the note names the way out: {r}");
}

#[test]
fn ip_mapping_owns_its_server_under_alibaba() {
    single(
        "ip_mapping_internal.toml",
        "ip-mapping-exclusive",
        21,
        "internal_ip 192.168.1.1 has an IP mapping",
    );
}

#[test]
fn permissive_accepts_ip_mapping_with_port_mapping() {
    for name in ["ip_mapping_with_port.toml", "ip_mapping_internal.toml"] {
        let text = std::fs::read_to_string(data(name)).unwrap_or_default();
        let text = text.replace("name = \"T\"", "name = \"T\"\nprofile = \"permissive\"");
        let parsed = parse_str(&text, name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(parsed.rules.gateway.profile, Profile::Permissive);
        assert_eq!(parsed.rules.forward_entries.len(), 2);
        assert!(parsed.rules.forward_entries[0].is_ip_mapping());
        assert!(!parsed.rules.forward_entries[1].is_ip_mapping());
    }
}

#[test]
fn permissive_still_rejects_ambiguity() {
    for (name, rule) in [
        ("duplicate_external.toml", "duplicate-external"),
        ("duplicate_internal.toml", "duplicate-internal"),
        ("overlap_external.toml", "overlap-external"),
        ("overlap_internal.toml", "overlap-internal"),
        ("range_size.toml", "range-size-mismatch"),
        ("any_protocol_port.toml", "any-protocol-port"),
        ("port_out_of_range.toml", "invalid-port"),
    ] {
        let text = std::fs::read_to_string(data(name)).unwrap_or_default();
        let text = text.replace("name = \"T\"", "name = \"T\"\nprofile = \"permissive\"");
        match parse_str(&text, name) {
            Ok(_) => panic!("permissive accepted {name}"),
            Err(e) => assert!(e.diagnostics().iter().any(|d| d.rule == rule), "{e}"),
        }
    }
}

#[test]
fn unequal_range_sizes() {
    single(
        "range_size.toml",
        "range-size-mismatch",
        15,
        "external_port 8000/8010 covers 11 ports but internal_port 9000/9005 covers 6 ports",
    );
}

#[test]
fn overlapping_external_ranges() {
    single(
        "overlap_external.toml",
        "overlap-external",
        19,
        "external port 8005 on 203.0.113.1 tcp overlaps port 8000/8010 of the entry at line 10",
    );
}

#[test]
fn overlapping_internal_ranges() {
    single(
        "overlap_internal.toml",
        "overlap-internal",
        22,
        "internal port 8010/8012 on 192.168.1.3 tcp overlaps port 8000/8010 of the entry at line 10",
    );
}

#[test]
fn ports_outside_1_to_65535() {
    let (errs, rendered) = errors_of("port_out_of_range.toml");
    assert_eq!(errs.len(), 3, "{rendered}");
    assert_error(&errs, "invalid-port", 12, "port 0 is outside 1-65535");
    assert_error(&errs, "invalid-port", 22, "port 70000 is outside 1-65535");
    assert_error(
        &errs,
        "invalid-port",
        26,
        "port \"abc\" is not a port number",
    );
    assert!(rendered.ends_with("3 errors in ") || rendered.contains("3 errors in "));
}

#[test]
fn invalid_ip() {
    single(
        "invalid_ip.toml",
        "invalid-ip",
        14,
        "internal_ip \"192.168.1.300\" is not an IPv4 address",
    );
}

#[test]
fn duplicate_id() {
    single(
        "duplicate_id.toml",
        "duplicate-id",
        18,
        "forward entry id \"fwd-aaaaaaaaa\" is already used at line 10",
    );
}

#[test]
fn duplicate_public_ip() {
    single(
        "duplicate_public_ip.toml",
        "duplicate-public-ip",
        7,
        "public IP 203.0.113.1 is listed twice",
    );
}

#[test]
fn bandwidth_must_be_positive() {
    single(
        "bandwidth_zero.toml",
        "bandwidth",
        6,
        "bandwidth_mbps must be greater than 0, not 0",
    );
    for bad in ["-1", "0.0", "\"0\"", "1e-9"] {
        let text = std::fs::read_to_string(data("bandwidth_zero.toml"))
            .unwrap_or_default()
            .replace("bandwidth_mbps = 0", &format!("bandwidth_mbps = {bad}"));
        let err = parse_str(&text, "b.toml").err().map(|e| e.to_string());
        assert!(
            err.as_deref().is_some_and(|s| s.contains("b.toml:6:")),
            "{bad}: {err:?}"
        );
    }
}

#[test]
fn unknown_enum_values() {
    let (errs, rendered) = errors_of("unknown_enum.toml");
    assert_eq!(errs.len(), 3, "{rendered}");
    assert_error(&errs, "unknown-value", 4, "unknown profile \"strict\"");
    assert_error(&errs, "unknown-value", 8, "unknown mode \"fast\"");
    assert_error(&errs, "unknown-value", 15, "unknown ip_protocol \"icmp\"");
}

#[test]
fn unknown_key_with_suggestion() {
    let (errs, rendered) = errors_of("unknown_key.toml");
    assert_error(
        &errs,
        "unknown-key",
        11,
        "unknown key `extrenal_ip` in [[forward_entry]]; did you mean `external_ip`?",
    );
    let d = errs.iter().find(|d| d.rule == "unknown-key");
    assert_eq!(d.map(|d| d.column), Some(1));
    // The rendering shows the line and underlines the key.
    assert!(
        rendered.contains("11 | extrenal_ip = \"203.0.113.1\"\n   | ^^^^^^^^^^^\n"),
        "{rendered}"
    );
}

#[test]
fn missing_key_points_at_the_entry() {
    single(
        "missing_key.toml",
        "missing-key",
        10,
        "[[forward_entry]] is missing `internal_ip`",
    );
}

#[test]
fn syntax_error_has_its_position() {
    let (errs, rendered) = errors_of("syntax_error.toml");
    assert_eq!(errs.len(), 1, "{rendered}");
    assert_eq!(errs[0].rule, "syntax");
    assert_eq!(errs[0].line, 14, "{rendered}");
    assert!(errs[0].column > 1, "{rendered}");
    assert!(
        errs[0].message.starts_with("TOML syntax error"),
        "{rendered}"
    );
    assert!(rendered.contains("syntax_error.toml:14:"), "{rendered}");
}

#[test]
fn every_error_in_a_file_is_reported() {
    let (errs, rendered) = errors_of("multiple_errors.toml");
    assert_error(&errs, "duplicate-external", 19, "203.0.113.1 port 80 tcp");
    assert_error(
        &errs,
        "any-port-mismatch",
        29,
        "\"any\" port on one side only",
    );
    assert_error(&errs, "external-ip-not-in-package", 32, "203.0.113.9");
    assert_error(
        &errs,
        "range-size-mismatch",
        36,
        "internal_port 22/23 covers 2 ports",
    );
    assert_eq!(errs.len(), 4, "{rendered}");
    assert!(rendered.trim_end().ends_with(&format!(
        "4 errors in {}",
        data("multiple_errors.toml").display()
    )));
    // Source order, so the report reads top to bottom.
    let lines: Vec<u32> = errs.iter().map(|d| d.line).collect();
    let mut sorted = lines.clone();
    sorted.sort_unstable();
    assert_eq!(lines, sorted);
}

fn entry(i: u32) -> String {
    format!(
        "\n[[forward_entry]]\nexternal_ip = \"203.0.113.1\"\nexternal_port = {p}\nip_protocol = \"udp\"\ninternal_ip = \"10.0.{a}.{b}\"\ninternal_port = {p}\n",
        p = 1000 + i,
        a = i / 250,
        b = i % 250 + 1
    )
}

#[test]
fn more_than_100_entries_is_alibaba_only() {
    let head = "[bandwidth_package]\nbandwidth_mbps = 10\npublic_ips = [\"203.0.113.1\"]\n";
    let mut text = head.to_string();
    for i in 0..101 {
        text.push_str(&entry(i));
    }
    // Each entry takes 7 lines after the 3-line header; entry 101's header is line 4 + 100 * 7 + 1.
    let err = parse_str(&text, "many.toml").err();
    let errs = err
        .as_ref()
        .map(|e| e.diagnostics().to_vec())
        .unwrap_or_default();
    assert_error(
        &errs,
        "too-many-entries",
        705,
        "101 forward entries exceed the cloud API's limit of 100",
    );
    let permissive = format!("[gateway]\nprofile = \"permissive\"\n{text}");
    let parsed = parse_str(&permissive, "many.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.rules.forward_entries.len(), 101);
}

#[test]
fn hundred_thousand_entries_validate_fast() {
    let mut text = String::from(
        "[gateway]\nprofile = \"permissive\"\n[bandwidth_package]\nbandwidth_mbps = 10\npublic_ips = [\"203.0.113.1\", \"203.0.113.2\"]\n",
    );
    for i in 0..100_000u32 {
        let ip = if i < 50_000 { 1 } else { 2 };
        let p = i % 50_000 + 1;
        text.push_str(&format!(
            "[[forward_entry]]\nexternal_ip = \"203.0.113.{ip}\"\nexternal_port = {p}\nip_protocol = \"tcp\"\ninternal_ip = \"10.{}.{}.{}\"\ninternal_port = {p}\n",
            ip,
            p / 256,
            p % 256
        ));
    }
    let start = std::time::Instant::now();
    let parsed = parse_str(&text, "big.toml").unwrap_or_else(|e| panic!("{e}"));
    let took = start.elapsed();
    assert_eq!(parsed.rules.forward_entries.len(), 100_000);
    // Quadratic checks would take minutes here; the whole parse takes well under a second in release.
    assert!(took.as_secs() < 20, "took {took:?}");
}

#[test]
fn seed_rules_parse_with_the_backup_ip_warning() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/seed/rules.toml");
    let parsed = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let r = &parsed.rules;
    assert_eq!(r.gateway.name, "MyNatGW");
    assert_eq!(r.bandwidth_package.rate_bps, 150_000_000);
    assert_eq!(r.bandwidth_package.public_ips.len(), 5);
    let ids: Vec<&str> = r.forward_entries.iter().map(|e| e.id.as_str()).collect();
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
    assert_eq!(parsed.warnings.len(), 1);
    let w = &parsed.warnings[0];
    assert_eq!(w.severity, Severity::Warning);
    assert!(
        w.message.contains(
            "203.0.113.58 is in the bandwidth package but has no forward entry (a backup IP?)"
        ),
        "{w}"
    );
    // Positions are the [[forward_entry]] headers.
    let first = &r.forward_entries[0].position;
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let line = text.lines().nth(first.line as usize - 1);
    assert_eq!(line, Some("[[forward_entry]]"));
    assert_eq!(first.column, 1);
}

#[test]
fn api_spellings_and_optional_settings() {
    let parsed = parse_file(&data("api_aliases.toml")).unwrap_or_else(|e| panic!("{e}"));
    let r = &parsed.rules;
    assert_eq!(r.gateway.name, "Pasted");
    assert_eq!(r.bandwidth_package.rate_bps, 1_500_000);
    assert!(r.bandwidth_package.inbound && !r.bandwidth_package.outbound);
    assert_eq!(r.bandwidth_package.queue_limit_bytes, Some(30_000));
    let e = &r.forward_entries;
    assert_eq!(e[0].id, "fwd-pasted001");
    assert_eq!(e[0].ip_protocol, Protocol::Udp);
    assert_eq!(e[0].external_port, PortSpec::Range(8000, 8010));
    assert_eq!(e[0].map_port(8003), Some(9003));
    assert_eq!(e[1].external_port, PortSpec::Single(443));
    assert_eq!(e[1].internal_port, PortSpec::Single(8443));
    // No id given: derived, stable, in the cloud's shape.
    assert!(
        e[1].id.starts_with("fwd-") && e[1].id.len() == 13,
        "{}",
        e[1].id
    );
    let again =
        parse_file(&data("api_aliases.toml")).map(|p| p.rules.forward_entries[1].id.clone());
    assert_eq!(again.ok().as_deref(), Some(e[1].id.as_str()));
}

#[test]
fn a_key_and_its_alias_together_is_an_error() {
    let text = "[bandwidth_package]\nbandwidth_mbps = 10\nBandwidth = 20\npublic_ips = [\"203.0.113.1\"]\n";
    let err = parse_str(text, "a.toml").err();
    let errs = err.map(|e| e.diagnostics().to_vec()).unwrap_or_default();
    assert_error(
        &errs,
        "duplicate-key",
        3,
        "`Bandwidth` in [bandwidth_package] repeats `bandwidth_mbps`",
    );
}

#[test]
fn unreadable_file_names_the_path() {
    let missing = data("no_such_file.toml");
    match parse_file(&missing) {
        Err(e @ RulesError::Read { .. }) => {
            assert!(e.to_string().contains("no_such_file.toml"), "{e}")
        }
        other => panic!("expected a read error, got {other:?}"),
    }
}

#[test]
fn missing_package_and_wrong_shapes_are_reported_together() {
    let text =
        "[gateway]\nname = \"T\"\nforward_entry = 5\n[bandwith_package]\nbandwidth_mbps = 1\n";
    let err = parse_str(text, "shape.toml").err();
    let errs = err.map(|e| e.diagnostics().to_vec()).unwrap_or_default();
    assert_error(
        &errs,
        "unknown-key",
        3,
        "unknown key `forward_entry` in [gateway]",
    );
    assert_error(
        &errs,
        "unknown-key",
        4,
        "unknown key `bandwith_package` in the rules file; did you mean `bandwidth_package`?",
    );
    assert_error(&errs, "missing-key", 0, "no [bandwidth_package]");
    assert_eq!(errs.len(), 3);

    let text = "forward_entry = 5\n[bandwidth_package]\nbandwidth_mbps = 1\npublic_ips = [\"203.0.113.1\"]\n";
    let err = parse_str(text, "shape.toml").err();
    let errs = err.map(|e| e.diagnostics().to_vec()).unwrap_or_default();
    assert_error(
        &errs,
        "type",
        1,
        "`forward_entry` must be an array of tables",
    );
}

#[test]
fn shape_options_in_police_mode_warn() {
    let text =
        "[bandwidth_package]\nbandwidth_mbps = 1\npublic_ips = [\"203.0.113.1\"]\nlatency_ms = 5\n";
    let parsed = parse_str(text, "w.toml").unwrap_or_else(|e| panic!("{e}"));
    let rules: Vec<(&str, u32)> = parsed.warnings.iter().map(|w| (w.rule, w.line)).collect();
    assert_eq!(rules, [("unused-public-ip", 3), ("shape-only-option", 4)]);
}

#[test]
fn alibaba_rejects_addresses_no_gateway_can_use() {
    let (errs, rendered) = errors_of("unusable_ips.toml");
    let got: Vec<(&str, u32, u32, &str)> = errs
        .iter()
        .map(|d| (d.rule, d.line, d.column, d.message.as_str()))
        .collect();
    let want = [
        (
            "unusable-ip",
            9,
            5,
            "public IP 0.0.0.0 is in 0.0.0.0/8 (\"this network\", RFC 1122); no gateway can use it",
        ),
        (
            "unusable-ip",
            10,
            5,
            "public IP 255.255.255.255 is the limited broadcast address; no gateway can use it",
        ),
        (
            "unusable-ip",
            17,
            15,
            "internal_ip 127.0.0.1 is a loopback address (127.0.0.0/8); no gateway can use it",
        ),
        (
            "unusable-ip",
            24,
            15,
            "internal_ip 224.0.0.5 is a multicast address (224.0.0.0/4); no gateway can use it",
        ),
        (
            "unusable-ip",
            31,
            15,
            "internal_ip 240.0.0.1 is in the reserved 240.0.0.0/4 (class E); no gateway can use it",
        ),
        (
            "unusable-ip",
            35,
            15,
            "external_ip 0.0.0.0 is in 0.0.0.0/8 (\"this network\", RFC 1122); no gateway can use it",
        ),
    ];
    assert_eq!(got, want, "{rendered}");
    assert!(
        rendered.contains("profile = \"permissive\" in [gateway] accepts it"),
        "{rendered}"
    );
    // The permissive profile is for labs, where such addresses may be wanted.
    let text = std::fs::read_to_string(data("unusable_ips.toml")).unwrap_or_default();
    let permissive = text.replace("name = \"T\"", "name = \"T\"\nprofile = \"permissive\"");
    let parsed = parse_str(&permissive, "p.toml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(parsed.rules.forward_entries.len(), 4);
}

/// `bandwidth_zero.toml` with its `bandwidth_mbps = 0` line replaced.
fn with_package_line(line: &str) -> Result<dnatsim::rules::Parsed, RulesError> {
    let text = std::fs::read_to_string(data("bandwidth_zero.toml"))
        .unwrap_or_default()
        .replace("bandwidth_mbps = 0", line);
    parse_str(&text, "b.toml")
}

/// The same under the permissive profile.
fn permissive_with_package_line(line: &str) -> Result<dnatsim::rules::Parsed, RulesError> {
    let text = std::fs::read_to_string(data("bandwidth_zero.toml"))
        .unwrap_or_default()
        .replace("bandwidth_mbps = 0", line)
        .replace("name = \"T\"", "name = \"T\"\nprofile = \"permissive\"");
    parse_str(&text, "b.toml")
}

#[test]
fn alibaba_bandwidth_is_between_1_and_5000_mbps() {
    for (line, message) in [
        (
            "bandwidth_mbps = 0.5",
            "bandwidth_mbps 0.5 is below the cloud's minimum of 1 Mbps",
        ),
        (
            "bandwidth_mbps = 5001",
            "bandwidth_mbps 5001 is above the cloud's maximum of 5000 Mbps for a bandwidth package",
        ),
    ] {
        let errs = with_package_line(line)
            .err()
            .map(|e| e.diagnostics().to_vec())
            .unwrap_or_default();
        let got: Vec<(&str, u32, u32, &str)> = errs
            .iter()
            .map(|d| (d.rule, d.line, d.column, d.message.as_str()))
            .collect();
        assert_eq!(got, [("bandwidth-range", 6, 18, message)], "{line}");
    }
    for edge in ["bandwidth_mbps = 1", "bandwidth_mbps = 5000"] {
        assert!(with_package_line(edge).is_ok(), "{edge}");
    }
    for lab in ["bandwidth_mbps = 0.5", "bandwidth_mbps = 10000"] {
        let p = permissive_with_package_line(lab);
        assert!(p.is_ok(), "{lab}: {:?}", p.err().map(|e| e.to_string()));
    }
}

#[test]
fn alibaba_rejects_a_burst_over_1_gb() {
    let errs = with_package_line("bandwidth_mbps = 10\nburst_bytes = 1000000001")
        .err()
        .map(|e| e.diagnostics().to_vec())
        .unwrap_or_default();
    let got: Vec<(&str, u32, u32, &str)> = errs
        .iter()
        .map(|d| (d.rule, d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(
        got,
        [(
            "burst-too-large",
            7,
            15,
            "burst_bytes 1000000001 is over 1 GB (1000000000 bytes); no gateway lets that much through at once"
        )]
    );
    let at_limit = with_package_line("bandwidth_mbps = 10\nburst_bytes = 1000000000");
    assert!(
        at_limit.is_ok(),
        "{:?}",
        at_limit.err().map(|e| e.to_string())
    );
    let lab = permissive_with_package_line("bandwidth_mbps = 10\nburst_bytes = 1000000001");
    assert!(lab.is_ok(), "{:?}", lab.err().map(|e| e.to_string()));
}
