//! `dnatsim api`: the local NAT Gateway API, driven end to end against the built binary on a
//! loopback port: the tutorial's walkthrough and a replay of what it built, the official Python
//! SDK, every `alibaba` rejection with its API code, durability under `kill -9`, and bad input.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dnatsim::api::client::{Client, request};
use serde_json::{Value, json};

const KEY: &str = "testid";
const SECRET: &str = "testsecret";
const REGION: &str = "cn-shanghai";

/// A running `dnatsim api serve` on 127.0.0.1 with a port the system chose.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(state: &Path, extra: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_dnatsim"))
            .args(["api", "serve", "--listen", "127.0.0.1:0", "--state"])
            .arg(state)
            .args(["--access-key-id", KEY, "--access-key-secret", SECRET])
            .args(extra)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("the server prints its address");
        let addr = line
            .trim()
            .rsplit("http://")
            .next()
            .expect("an address")
            .to_string();
        assert!(
            addr.starts_with("127.0.0.1:"),
            "listening on loopback: {line}"
        );
        Server { child, addr }
    }

    fn client(&self) -> Client {
        Client {
            addr: self.addr.clone(),
            key_id: KEY.into(),
            secret: SECRET.into(),
        }
    }

    /// Calls `action` with `params`; (HTTP status, JSON).
    fn call(&self, action: &str, params: &[(&str, &str)]) -> (u16, Value) {
        let mut p = vec![("Action".to_string(), action.to_string())];
        p.extend(params.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let r = self.client().call(&p).expect("the server answers");
        (r.status, r.json())
    }

    fn ok(&self, action: &str, params: &[(&str, &str)]) -> Value {
        let (status, v) = self.call(action, params);
        assert_eq!(status, 200, "{action} {params:?}: {v}");
        v
    }

    fn kill(&mut self) {
        // Child::kill sends SIGKILL on Unix: the server gets no chance to clean up.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts the API's error shape and returns the code.
fn error_code(status: u16, v: &Value, want_status: u16) -> String {
    assert_eq!(status, want_status, "{v}");
    for k in ["Code", "Message", "RequestId", "HostId"] {
        assert!(
            v.get(k).and_then(Value::as_str).is_some(),
            "{k} missing in {v}"
        );
    }
    v["Code"].as_str().unwrap_or_default().to_string()
}

fn dnatsim(args: &[&str]) -> std::process::Output {
    common::dnatsim(args)
}

fn wait_available(s: &Server, table: &str, id: &str) {
    let start = Instant::now();
    loop {
        let v = s.ok(
            "DescribeForwardTableEntries",
            &[
                ("RegionId", REGION),
                ("ForwardTableId", table),
                ("ForwardEntryId", id),
            ],
        );
        if v["ForwardTableEntries"]["ForwardTableEntry"][0]["Status"] == "Available" {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "{id} stays Pending"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn response_of(stdout: &str) -> Value {
    let json = stdout
        .split("====== Got Response ======")
        .nth(1)
        .expect("api call prints the response");
    serde_json::from_str(json).expect("the response is JSON")
}

/// The tutorial's DescribeForwardTableEntries response (Step 2), as printed there.
const TUTORIAL_ENTRIES: &str = r#"{
  "ForwardTableEntries": { "ForwardTableEntry": [
    { "ExternalIp": "139.xxx.xx. 107", "ExternalPort": "any", "ForwardEntryId": "fwd-119smw5tk", "ForwardTableId": "ftb-11tc6xgmv", "InternalIp": "192.168.1.1", "InternalPort": "any", "IpProtocol": "any", "Status": "Available" },
    { "ExternalIp": "139.xxx.xx. 79", "ExternalPort": "443", "ForwardEntryId": "fwd-11cdhpjlk", "ForwardTableId": "ftb-11tc6xgmv", "InternalIp": "192.168.1.4", "InternalPort": "443", "IpProtocol": "tcp", "Status": "Available" },
    { "ExternalIp": "139.xxx.xx. 55", "ExternalPort": "any", "ForwardEntryId": "fwd-11dz3ly9l", "ForwardTableId": "ftb-11tc6xgmv", "InternalIp": "192.168.1.2", "InternalPort": "any", "IpProtocol": "any", "Status": "Available" },
    { "ExternalIp": "139.xxx.xx. 59", "ExternalPort": "22", "ForwardEntryId": "fwd-11iv34uj7", "ForwardTableId": "ftb-11tc6xgmv", "InternalIp": "192.168.1.5", "InternalPort": "22", "IpProtocol": "tcp", "Status": "Available" },
    { "ExternalIp": "139.xxx.xx. 79 ", "ExternalPort": "80", "ForwardEntryId": "fwd-11r23r7p5", "ForwardTableId": "ftb-11tc6xgmv", "InternalIp": "192.168.1.3", "InternalPort": "80", "IpProtocol": "tcp", "Status": "Available" }
  ] },
  "PageNumber": 1, "PageSize": 10, "RequestId": "C84FDDCF-8550-4024-B89C-01E7459D7CF9", "TotalCount": 5
}"#;

/// The tutorial's masked EIPs in the package's order (IP1..IP5) and the sample's stand-ins.
const TUTORIAL_IPS: [&str; 5] = [
    "139.xxx.xx. 107",
    "139.xxx.xx. 55",
    "139.xxx.xx. 79",
    "139.xxx.xx. 59",
    "139.xxx.xx. 58",
];
const SEED_IPS: [&str; 5] = [
    "203.0.113.107",
    "203.0.113.55",
    "203.0.113.79",
    "203.0.113.59",
    "203.0.113.58",
];

/// Entries as comparable rows: addresses replaced by IP1..IP5 through `label`, ids dropped.
fn entry_rows(v: &Value, label: &dyn Fn(&str) -> String) -> BTreeSet<Vec<String>> {
    v["ForwardTableEntries"]["ForwardTableEntry"]
        .as_array()
        .expect("an entry list")
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or("<missing>").trim().to_string();
            let mut keys: Vec<&String> = e.as_object().expect("an object").keys().collect();
            keys.sort();
            vec![
                format!("{keys:?}"),
                label(&s("ExternalIp")),
                s("ExternalPort"),
                s("IpProtocol"),
                s("InternalIp"),
                s("InternalPort"),
                s("Status"),
            ]
        })
        .collect()
}

/// The report of a replay of the sample capture with `rules`, entry ids left out.
fn replay_report(rules: &Path, dir: &Path, name: &str) -> Value {
    let report = dir.join(format!("{name}.json"));
    let out = dnatsim(&[
        "replay",
        "pcaps/seed/capture.pcap",
        "--rules",
        rules.to_str().expect("UTF-8 path"),
        "--report",
        report.to_str().expect("UTF-8 path"),
        "-q",
    ]);
    assert!(
        out.status.success(),
        "replay: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("a report"))
        .expect("JSON report");
    // The rules file's path differs by construction, so do the locations in warnings about it
    // ("FILE:LINE:COL: rule: message"): keep the rule and the message.
    v.as_object_mut().expect("a report").remove("rules");
    if let Some(warnings) = v.get_mut("warnings").and_then(Value::as_array_mut) {
        for w in warnings {
            let text = w.as_str().unwrap_or_default();
            *w = json!(text.split_once(": ").map_or(text, |(_, rest)| rest));
        }
    }
    for e in v["entries"].as_array_mut().expect("entries") {
        e.as_object_mut().expect("an entry").remove("id");
    }
    v
}

#[test]
fn tutorial_walkthrough_then_replay_matches_the_sample_rules() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("state");
    let rules_out = dir.path().join("rules-out.toml");
    let s = Server::start(
        &state,
        &[
            "--pending-ms",
            "150",
            "--rules-out",
            &format!("MyNatGW={}", rules_out.display()),
        ],
    );
    let endpoint = format!("http://{}", s.addr);
    // The tutorial's commands, typed as they are (with its "BandwidthPackage. 1.X" spacing).
    let call = |words: &[&str]| -> Value {
        let mut args = vec![
            "api",
            "call",
            "--endpoint",
            &endpoint,
            "--access-key-id",
            KEY,
            "--access-key-secret",
            SECRET,
        ];
        args.extend_from_slice(words);
        let out = dnatsim(&args);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        println!("$ dnatsim api call {}\n{text}", words.join(" "));
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        response_of(&text)
    };
    let created = call(&[
        "CreateNatGateway",
        "RegionId=cn-shanghai",
        "VpcId=vpc-11af8lxxx",
        "BandwidthPackage.",
        "1.IpCount=5",
        "BandwidthPackage.",
        "1.Bandwidth=150",
        "BandwidthPackage.",
        "1.Zone=cn-shanghai-a",
        "Name=MyNatGW",
        "Description=My first NAT Gateway",
    ]);
    let ngw = created["NatGatewayId"]
        .as_str()
        .expect("NatGatewayId")
        .to_string();
    let ftb = created["ForwardTableIds"]["ForwardTableId"][0]
        .as_str()
        .expect("a table")
        .to_string();
    assert_eq!(
        created["BandwidthPackageIds"]["BandwidthPackageId"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let gws = call(&[
        "DescribeNatGateways",
        "RegionId=cn-shanghai",
        "VpcId=vpc-11af8lxxx",
    ]);
    let g = &gws["NatGateways"]["NatGateway"][0];
    for (k, want) in [
        ("BusinessStatus", "Normal"),
        ("Description", "My first NAT Gateway"),
        ("InstanceChargeType", "PostPaid"),
        ("Name", "MyNatGW"),
        ("RegionId", "cn-shanghai"),
        ("Spec", "Small"),
        ("Status", "Available"),
        ("VpcId", "vpc-11af8lxxx"),
    ] {
        assert_eq!(g[k], want, "DescribeNatGateways {k}");
    }
    assert_eq!(g["NatGatewayId"], ngw.as_str());
    assert_eq!(
        (
            gws["PageNumber"].as_u64(),
            gws["PageSize"].as_u64(),
            gws["TotalCount"].as_u64()
        ),
        (Some(1), Some(10), Some(1))
    );

    let pkgs = call(&[
        "DescribeBandwidthPackages",
        "RegionId=cn-shanghai",
        &format!("NatGatewayId={ngw}"),
    ]);
    let p = &pkgs["BandwidthPackages"]["BandwidthPackage"][0];
    let keys: Vec<&String> = p.as_object().expect("a package").keys().collect();
    assert_eq!(
        keys,
        [
            "Bandwidth",
            "BandwidthPackageId",
            "BusinessStatus",
            "CreationTime",
            "Description",
            "InstanceChargeType",
            "InternetChargeType",
            "IpCount",
            "Name",
            "NatGatewayId",
            "PublicIpAddresses",
            "RegionId",
            "Status",
            "ZoneId"
        ],
        "the tutorial's fields"
    );
    assert_eq!(
        (&p["Bandwidth"], &p["IpCount"], &p["ZoneId"]),
        (&json!("150"), &json!("5"), &json!("cn-shanghai-a"))
    );
    let ips: Vec<String> = p["PublicIpAddresses"]["PublicIpAddresse"]
        .as_array()
        .expect("IPs")
        .iter()
        .map(|i| i["IpAddress"].as_str().expect("an address").to_string())
        .collect();
    assert_eq!(ips.len(), 5);

    // Step 2's five entries; each waits for the previous one to be Available, as the API wants.
    let table = [
        (0, "Any", "192.168.1.1", "Any", "Any"),
        (1, "Any", "192.168.1.2", "Any", "Any"),
        (2, "80", "192.168.1.3", "80", "TCP"),
        (2, "443", "192.168.1.4", "443", "TCP"),
        (3, "22", "192.168.1.5", "22", "TCP"),
    ];
    for (ip, eport, internal, iport, proto) in table {
        let r = call(&[
            "CreateForwardEntry",
            "RegionId=cn-shanghai",
            &format!("ForwardTableId={ftb}"),
            &format!("ExternalIp={}", ips[ip]),
            &format!("ExternalPort={eport}"),
            &format!("InternalIp={internal}"),
            &format!("InternalPort={iport}"),
            &format!("IpProtocol={proto}"),
        ]);
        let id = r["ForwardEntryId"].as_str().expect("ForwardEntryId");
        wait_available(&s, &ftb, id);
    }
    let got = call(&[
        "DescribeForwardTableEntries",
        "RegionId=cn-shanghai",
        &format!("ForwardTableId={ftb}"),
    ]);

    let tutorial: Value = serde_json::from_str(TUTORIAL_ENTRIES).expect("the tutorial's JSON");
    let ours_label = |a: &str| {
        ips.iter()
            .position(|x| x == a)
            .map_or(a.to_string(), |i| format!("IP{}", i + 1))
    };
    let theirs_label = |a: &str| {
        TUTORIAL_IPS
            .iter()
            .position(|x| x.trim() == a)
            .map_or(a.to_string(), |i| format!("IP{}", i + 1))
    };
    assert_eq!(
        entry_rows(&got, &ours_label),
        entry_rows(&tutorial, &theirs_label)
    );
    for k in ["PageNumber", "PageSize", "TotalCount"] {
        assert_eq!(got[k], tutorial[k], "{k}");
    }
    for e in got["ForwardTableEntries"]["ForwardTableEntry"]
        .as_array()
        .expect("entries")
    {
        assert_eq!(e["ForwardTableId"], ftb.as_str());
    }
    // Sorted by ForwardEntryId, as the tutorial's listing is.
    let ids: Vec<&str> = got["ForwardTableEntries"]["ForwardTableEntry"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["ForwardEntryId"].as_str().expect("an id"))
        .collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted);

    // Export, and compare with the file --rules-out kept current.
    let export = dnatsim(&[
        "api",
        "export",
        "--state",
        state.to_str().expect("UTF-8"),
        "--gateway",
        "MyNatGW",
    ]);
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let exported = String::from_utf8(export.stdout).expect("UTF-8 TOML");
    println!("$ dnatsim api export --state STATE --gateway MyNatGW\n{exported}");
    assert_eq!(
        std::fs::read_to_string(&rules_out).expect("--rules-out wrote the file"),
        exported
    );

    // The pool gave 203.0.113.1-5; the sample rules use the tutorial's IP1-IP5 as 203.0.113.107,
    // .55, .79, .59 and .58. Map each allocated address to its IP's stand-in (the quotes keep
    // "203.0.113.1" from matching inside "203.0.113.107"), then both files must replay the same.
    let mut mapped = exported.clone();
    for (ours, seed) in ips.iter().zip(SEED_IPS) {
        mapped = mapped.replace(&format!("\"{ours}\""), &format!("\"{seed}\""));
    }
    let mapped_path = dir.path().join("exported-mapped.toml");
    std::fs::write(&mapped_path, &mapped).expect("writable");
    let ours = replay_report(&mapped_path, dir.path(), "ours");
    let seed = replay_report(Path::new("pcaps/seed/rules.toml"), dir.path(), "seed");
    assert_eq!(ours, seed);
    println!(
        "replay of pcaps/seed/capture.pcap: exported rules and pcaps/seed/rules.toml give the same report: packets_in {}, packets_out {}, translated {}, dropped {}",
        ours["packets_in"], ours["packets_out"], ours["translated"], ours["dropped"]
    );
}

#[test]
fn sdk_python_both_ways() {
    let Some(python) = std::env::var_os("DNATSIM_SDK_PYTHON") else {
        common::skip_or_fail(
            "DNATSIM_SDK_PYTHON is not set (the python of a venv with aliyun-python-sdk-core and aliyun-python-sdk-vpc; .ci/run makes one)",
        );
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("state");
    let s = Server::start(&state, &["--pending-ms", "200"]);
    let out = Command::new(&python)
        .arg("tests/api/sdk_test.py")
        .args([s.addr.as_str(), KEY, SECRET])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the venv's python runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "the SDK script failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("a summary line"))
        .expect("a JSON summary");
    assert_eq!(summary["wrong_secret"]["raw_code"], "SignatureDoesNotMatch");

    // Both ways built the same kind of gateway: one 150 Mbps package of two public IPs.
    let export = |gw: &str| -> String {
        let out = dnatsim(&[
            "api",
            "export",
            "--state",
            state.to_str().expect("UTF-8"),
            "--gateway",
            gw,
        ]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    };
    let package = |toml: &str, ips: &Value| -> String {
        let mut t = toml
            .split("[[forward_entry]]")
            .next()
            .expect("a head")
            .to_string();
        for (i, ip) in ips.as_array().expect("IPs").iter().enumerate() {
            t = t.replace(
                &format!("\"{}\"", ip.as_str().expect("an IP")),
                &format!("\"IP{}\"", i + 1),
            );
        }
        t.lines()
            .filter(|l| !l.starts_with("name ="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let legacy = export(summary["legacy_gateway"].as_str().expect("id"));
    let eip = export(summary["eip_gateway"].as_str().expect("id"));
    println!("legacy gateway:\n{legacy}\neip gateway:\n{eip}");
    assert_eq!(
        package(&legacy, &summary["legacy_ips"]),
        package(&eip, &summary["eip_ips"])
    );
    assert!(package(&eip, &summary["eip_ips"]).contains("bandwidth_mbps = 150"));
    // The legacy gateway kept both entries; on the other one the IP mapping was deleted and the
    // port mapping moved to 8080.
    assert_eq!(legacy.matches("[[forward_entry]]").count(), 2);
    assert_eq!(eip.matches("[[forward_entry]]").count(), 1);
    assert!(
        eip.contains("external_port = 8080") && eip.contains("internal_port = 8080"),
        "{eip}"
    );
}

/// A gateway with `n` public IPs; (forward table id, IPs).
fn gateway(s: &Server, name: &str, n: usize) -> (String, Vec<String>) {
    let count = n.to_string();
    let g = s.ok(
        "CreateNatGateway",
        &[
            ("RegionId", REGION),
            ("VpcId", "vpc-1"),
            ("Name", name),
            ("BandwidthPackage.1.IpCount", &count),
            ("BandwidthPackage.1.Bandwidth", "10"),
        ],
    );
    let ngw = g["NatGatewayId"].as_str().expect("id");
    let p = s.ok("DescribeBandwidthPackages", &[("NatGatewayId", ngw)]);
    let ips =
        p["BandwidthPackages"]["BandwidthPackage"][0]["PublicIpAddresses"]["PublicIpAddresse"]
            .as_array()
            .expect("IPs")
            .iter()
            .map(|i| i["IpAddress"].as_str().expect("an IP").to_string())
            .collect();
    (
        g["ForwardTableIds"]["ForwardTableId"][0]
            .as_str()
            .expect("a table")
            .to_string(),
        ips,
    )
}

fn entry<'a>(table: &'a str, e: [&'a str; 5]) -> Vec<(&'a str, &'a str)> {
    vec![
        ("RegionId", REGION),
        ("ForwardTableId", table),
        ("ExternalIp", e[0]),
        ("ExternalPort", e[1]),
        ("IpProtocol", e[2]),
        ("InternalIp", e[3]),
        ("InternalPort", e[4]),
    ]
}

#[test]
fn every_alibaba_rejection_has_its_api_code() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let s = Server::start(&dir.path().join("state"), &["--pending-ms", "0"]);
    let (t, ips) = gateway(&s, "v", 3);
    let (ip1, ip2, ip3) = (ips[0].as_str(), ips[1].as_str(), ips[2].as_str());
    s.ok(
        "CreateForwardEntry",
        &entry(&t, [ip1, "Any", "Any", "192.168.1.1", "Any"]),
    );
    s.ok(
        "CreateForwardEntry",
        &entry(&t, [ip2, "80", "TCP", "192.168.1.2", "80"]),
    );
    s.ok(
        "CreateForwardEntry",
        &entry(&t, [ip2, "8000/8010", "UDP", "192.168.1.2", "8000/8010"]),
    );
    let cases: Vec<(&str, [&str; 5], &str)> = vec![
        (
            "bad external IP",
            ["300.1.1.1", "80", "TCP", "192.168.1.9", "80"],
            "InvalidExternalIp.Malformed",
        ),
        (
            "bad internal IP",
            [ip3, "80", "TCP", "192.168.1.x", "80"],
            "InvalidInternalIp.Malformed",
        ),
        (
            "loopback internal IP",
            [ip3, "80", "TCP", "127.0.0.1", "80"],
            "InvalidInternalIp.Malformed",
        ),
        (
            "multicast external IP",
            ["224.0.0.1", "80", "TCP", "192.168.1.9", "80"],
            "InvalidExternalIp.Malformed",
        ),
        (
            "external port 70000",
            [ip3, "70000", "TCP", "192.168.1.9", "80"],
            "InvalidExternalPort.Malformed",
        ),
        (
            "internal port 0",
            [ip3, "80", "TCP", "192.168.1.9", "0"],
            "InvalidInternalPort.Malformed",
        ),
        (
            "protocol icmp",
            [ip3, "80", "ICMP", "192.168.1.9", "80"],
            "InvalidProtocal.ValueNotSupported",
        ),
        (
            "any protocol with ports",
            [ip3, "80", "Any", "192.168.1.9", "80"],
            "InvalidParameter.IpProtocolAnyWithPort",
        ),
        (
            "any port on one side",
            [ip3, "Any", "TCP", "192.168.1.9", "80"],
            "InvalidParameter.AnyPortMismatch",
        ),
        (
            "tcp with both ports any",
            [ip3, "Any", "TCP", "192.168.1.9", "Any"],
            "InvalidParameter.AnyPortNeedsAnyProtocol",
        ),
        (
            "ranges of unequal size",
            [ip3, "9000/9010", "TCP", "192.168.1.9", "9000/9005"],
            "InvalidParameter.PortRangeSizeMismatch",
        ),
        (
            "IP not the gateway's",
            ["198.51.100.9", "80", "TCP", "192.168.1.9", "80"],
            "InvalidIp.NotInNatgw",
        ),
        (
            "external IP = internal IP",
            [ip3, "80", "TCP", ip3, "80"],
            "InvalidParameter.ExternalIpEqualsInternalIp",
        ),
        (
            "port mapping on an IP-mapped EIP",
            [ip1, "22", "TCP", "192.168.1.9", "22"],
            "Forbidden.IpMappingInUse",
        ),
        (
            "port mapping to an IP-mapped server",
            [ip3, "22", "TCP", "192.168.1.1", "22"],
            "Forbidden.IpMappingInUse",
        ),
        (
            "duplicate external",
            [ip2, "80", "TCP", "192.168.1.9", "80"],
            "Forward.EntryConflict",
        ),
        (
            "overlapping external range",
            [ip2, "8005/8020", "UDP", "192.168.1.9", "8005/8020"],
            "Forward.EntryConflict",
        ),
        (
            "duplicate internal",
            [ip3, "81", "TCP", "192.168.1.2", "80"],
            "OperationUnsupported.ForwardEntry",
        ),
        (
            "overlapping internal range",
            [ip3, "7000/7005", "UDP", "192.168.1.2", "8010/8015"],
            "OperationUnsupported.ForwardEntry",
        ),
    ];
    for (what, e, want) in &cases {
        let (status, v) = s.call("CreateForwardEntry", &entry(&t, *e));
        let code = error_code(status, &v, 400);
        let message = v["Message"].as_str().unwrap_or_default();
        println!("{what:40} -> {code}: {message}");
        assert_eq!(&code, want, "{what}: {v}");
        // Another entry is named by its id, not by its place in the validator's input.
        assert!(!message.contains("ForwardTableEntry["), "{message}");
    }
    // Modify goes through the same checks.
    let listed = s.ok(
        "DescribeForwardTableEntries",
        &[("ForwardTableId", &t), ("ExternalPort", "80")],
    );
    let id = listed["ForwardTableEntries"]["ForwardTableEntry"][0]["ForwardEntryId"]
        .as_str()
        .expect("an id")
        .to_string();
    let (status, v) = s.call(
        "ModifyForwardEntry",
        &[
            ("ForwardTableId", &t),
            ("ForwardEntryId", &id),
            ("ExternalIp", ip1),
        ],
    );
    assert_eq!(error_code(status, &v, 400), "Forbidden.IpMappingInUse");
    // The 101st entry.
    for i in 0..97u16 {
        let port = (10_000 + i).to_string();
        s.ok(
            "CreateForwardEntry",
            &entry(&t, [ip3, &port, "TCP", "10.0.0.1", &port]),
        );
    }
    let (status, v) = s.call(
        "CreateForwardEntry",
        &entry(&t, [ip3, "20000", "TCP", "10.0.0.1", "20000"]),
    );
    let code = error_code(status, &v, 400);
    println!(
        "{:40} -> {code}: {}",
        "the 101st entry",
        v["Message"].as_str().unwrap_or_default()
    );
    assert_eq!(code, "QuotaExceeded");
    // Nothing refused was stored.
    let all = s.ok(
        "DescribeForwardTableEntries",
        &[("ForwardTableId", &t), ("PageSize", "50")],
    );
    assert_eq!(all["TotalCount"], 100);
}

#[test]
fn entries_are_pending_then_available_and_pending_blocks_changes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let s = Server::start(&dir.path().join("state"), &["--pending-ms", "1500"]);
    let (t, ips) = gateway(&s, "p", 2);
    let first = s.ok(
        "CreateForwardEntry",
        &entry(&t, [&ips[0], "80", "TCP", "192.168.1.1", "80"]),
    );
    let id = first["ForwardEntryId"].as_str().expect("an id");
    let listed = s.ok("DescribeForwardTableEntries", &[("ForwardTableId", &t)]);
    assert_eq!(
        listed["ForwardTableEntries"]["ForwardTableEntry"][0]["Status"],
        "Pending"
    );
    let (status, v) = s.call(
        "CreateForwardEntry",
        &entry(&t, [&ips[1], "80", "TCP", "192.168.1.2", "80"]),
    );
    assert_eq!(error_code(status, &v, 400), "IncorretForwardEntryStatus");
    let (status, v) = s.call(
        "DeleteForwardEntry",
        &[("ForwardTableId", &t), ("ForwardEntryId", id)],
    );
    assert_eq!(error_code(status, &v, 400), "IncorretForwardEntryStatus");
    let (status, v) = s.call(
        "ModifyForwardEntry",
        &[
            ("ForwardTableId", &t),
            ("ForwardEntryId", id),
            ("InternalPort", "81"),
            ("ExternalPort", "81"),
        ],
    );
    assert_eq!(error_code(status, &v, 400), "IncorretForwardEntryStatus");
    wait_available(&s, &t, id);
    s.ok(
        "CreateForwardEntry",
        &entry(&t, [&ips[1], "80", "TCP", "192.168.1.2", "80"]),
    );
    // Not found.
    let (status, v) = s.call(
        "DeleteForwardEntry",
        &[("ForwardTableId", &t), ("ForwardEntryId", "fwd-nope")],
    );
    assert_eq!(
        error_code(status, &v, 404),
        "InvalidForwardEntryId.NotFound"
    );
    let (status, v) = s.call(
        "DescribeForwardTableEntries",
        &[("ForwardTableId", "ftb-nope")],
    );
    assert_eq!(
        error_code(status, &v, 404),
        "InvalidForwardTableId.NotFound"
    );
}

#[test]
fn authentication_refusals_have_the_apis_codes() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let s = Server::start(&dir.path().join("state"), &[]);
    let c = s.client();
    let base = vec![
        ("Action".to_string(), "DescribeNatGateways".to_string()),
        ("RegionId".to_string(), REGION.to_string()),
    ];
    let get = |params: &[(String, String)]| -> (u16, Value) {
        let target = format!("/?{}", dnatsim::api::sign::encode_query(params));
        let (status, body) = request(&s.addr, "GET", &target, &[], None).expect("an answer");
        (status, serde_json::from_str(&body).expect("JSON"))
    };
    // Correct, by GET and by POST form.
    assert_eq!(get(&c.sign("GET", &base)).0, 200);
    assert_eq!(c.call_post(&base).expect("an answer").status, 200);
    // Wrong secret.
    let bad = Client {
        secret: "nope".into(),
        ..c.clone()
    };
    let (status, v) = get(&bad.sign("GET", &base));
    assert_eq!(error_code(status, &v, 400), "SignatureDoesNotMatch");
    // A parameter changed after signing.
    let mut tampered = c.sign("GET", &base);
    tampered[1].1 = "cn-hangzhou".into();
    let (status, v) = get(&tampered);
    assert_eq!(error_code(status, &v, 400), "SignatureDoesNotMatch");
    // Unknown key.
    let stranger = Client {
        key_id: "someone".into(),
        ..c.clone()
    };
    let (status, v) = get(&stranger.sign("GET", &base));
    assert_eq!(error_code(status, &v, 404), "InvalidAccessKeyId.NotFound");
    // Stale timestamp.
    let mut old = base.clone();
    old.push(("Timestamp".into(), "2016-05-23T03:26:21Z".into()));
    let (status, v) = get(&c.sign("GET", &old));
    assert_eq!(error_code(status, &v, 400), "InvalidTimeStamp.Expired");
    // Reused nonce: the same signed request twice.
    let once = c.sign("GET", &base);
    assert_eq!(get(&once).0, 200);
    let (status, v) = get(&once);
    assert_eq!(error_code(status, &v, 400), "SignatureNonceUsed");
    // The tutorial's api.py spelling: `action`, `TimeStamp`, Version 2014-05-26, `Format=json`.
    let ts = dnatsim::api::sign::format_timestamp(dnatsim::api::now_ms() / 1000);
    let tutorial: Vec<(String, String)> = [
        ("action", "DescribeNatGateways"),
        ("RegionId", REGION),
        ("Version", "2014-05-26"),
        ("Format", "json"),
        ("TimeStamp", ts.as_str()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (status, v) = get(&c.sign("GET", &tutorial));
    assert_eq!(status, 200, "{v}");
    // Signed for GET, sent as POST.
    let signed = c.sign("GET", &base);
    let form = dnatsim::api::sign::encode_query(&signed);
    let (status, body) = request(
        &s.addr,
        "POST",
        "/",
        form.as_bytes(),
        Some("application/x-www-form-urlencoded"),
    )
    .expect("an answer");
    assert_eq!(
        error_code(status, &serde_json::from_str(&body).expect("JSON"), 400),
        "SignatureDoesNotMatch"
    );
}

/// Sends raw bytes and returns (status, JSON body).
fn raw(addr: &str, bytes: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    // The server may answer and close before all is sent (a body it refused): not an error here.
    let _ = s.write_all(bytes);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let (status, body) = dnatsim::api::client::parse_response(&out).expect("an HTTP answer");
    (
        status,
        serde_json::from_str(&body).unwrap_or_else(|_| panic!("a JSON body: {body}")),
    )
}

#[test]
fn bad_input_gets_the_error_shape_and_the_server_lives_on() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let s = Server::start(&dir.path().join("state"), &[]);
    let a = s.addr.as_str();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("bad percent-escape", b"GET /?Action=%zz HTTP/1.1\r\n\r\n".to_vec(), 400, "InvalidParameter.Malformed"),
        ("escape to invalid UTF-8", b"GET /?Action=%ff%fe HTTP/1.1\r\n\r\n".to_vec(), 400, "InvalidParameter.Malformed"),
        ("no parameters", b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400, "MissingParameter"),
        ("duplicate parameter", b"GET /?Action=A&Action=B HTTP/1.1\r\n\r\n".to_vec(), 400, "InvalidParameter.Duplicate"),
        ("not HTTP", b"\x00\x01\x02 hello\r\n\r\n".to_vec(), 400, "InvalidRequest.Malformed"),
        ("other method", b"PUT /?Action=X HTTP/1.1\r\n\r\n".to_vec(), 405, "UnsupportedHTTPMethod"),
        ("other path", b"GET /admin HTTP/1.1\r\n\r\n".to_vec(), 404, "InvalidURI.NotFound"),
        ("chunked body", b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_vec(), 411, "MissingContentLength"),
        ("JSON body", b"POST / HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}".to_vec(), 415, "UnsupportedMediaType"),
        ("two lengths", b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab".to_vec(), 400, "InvalidRequest.Malformed"),
        ("huge head", [b"GET / HTTP/1.1\r\nX-Pad: ".to_vec(), vec![b'a'; 64 * 1024], b"\r\n\r\n".to_vec()].concat(), 431, "RequestHeaderFieldsTooLarge"),
        (
            "huge body",
            [b"POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 10485760\r\n\r\n".to_vec(), vec![b'a'; 256 * 1024]].concat(),
            413,
            "RequestEntityTooLarge",
        ),
        ("cut-off body", b"POST / HTTP/1.1\r\nContent-Length: 100\r\n\r\nAction=X".to_vec(), 400, "InvalidRequest.Incomplete"),
    ];
    for (what, bytes, want_status, want) in &cases {
        let bytes = if *what == "cut-off body" {
            // Close the sending side so the server sees the end mid-body.
            let mut st = TcpStream::connect(a).expect("connects");
            st.write_all(bytes).expect("sent");
            st.shutdown(std::net::Shutdown::Write).expect("half-close");
            let mut out = Vec::new();
            st.read_to_end(&mut out).expect("an answer");
            let (status, body) = dnatsim::api::client::parse_response(&out).expect("HTTP");
            let v: Value = serde_json::from_str(&body).expect("JSON");
            assert_eq!(error_code(status, &v, *want_status), *want, "{what}");
            println!("{what:28} -> {status} {want}");
            continue;
        } else {
            bytes
        };
        let (status, v) = raw(a, bytes);
        let code = error_code(status, &v, *want_status);
        println!("{what:28} -> {status} {code}");
        assert_eq!(&code, want, "{what}: {v}");
    }
    // Signed requests with an unknown action or missing parameters.
    let (status, v) = s.call("StartTheReactor", &[]);
    assert_eq!(error_code(status, &v, 404), "InvalidAction.NotFound");
    let (status, v) = s.call(
        "CreateForwardEntry",
        &[("RegionId", REGION), ("ForwardTableId", "ftb-x")],
    );
    assert_eq!(error_code(status, &v, 400), "MissingParameter");
    assert!(
        v["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"ExternalIp\""),
        "{v}"
    );
    let (status, v) = s.call("CreateNatGateway", &[("RegionId", REGION)]);
    assert_eq!(error_code(status, &v, 400), "MissingParameter");
    assert!(
        v["Message"]
            .as_str()
            .unwrap_or_default()
            .contains("\"VpcId\""),
        "{v}"
    );
    let (status, v) = s.call("DescribeNatGateways", &[("PageSize", "5000")]);
    assert_eq!(error_code(status, &v, 400), "InvalidParameter.PageSize");
    let (status, v) = s.call("DescribeNatGateways", &[("PageNumber", "x")]);
    assert_eq!(error_code(status, &v, 400), "InvalidParameter.PageNumber");
    let (status, v) = s.call(
        "CreateNatGateway",
        &[
            ("RegionId", REGION),
            ("VpcId", "v"),
            ("BandwidthPackage.x.IpCount", "2"),
        ],
    );
    assert_eq!(
        error_code(status, &v, 400),
        "InvalidParameter.BandwidthPackage"
    );
    let (status, v) = s.call("DescribeNatGateways", &[("Version", "1999-01-01")]);
    assert_eq!(error_code(status, &v, 400), "InvalidVersion");
    // An idle connection holds one worker; the others still answer.
    let _idle = TcpStream::connect(a).expect("connects");
    let mut slow = TcpStream::connect(a).expect("connects");
    slow.write_all(b"GET /?Act").expect("sent");
    s.ok("DescribeNatGateways", &[]);
    // Random bytes.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for _ in 0..50 {
        let len = (x % 300) as usize;
        let mut junk = Vec::with_capacity(len + 4);
        for _ in 0..len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            junk.push(x as u8);
        }
        junk.extend_from_slice(b"\r\n\r\n");
        let (status, v) = raw(a, &junk);
        assert!(status >= 400, "{v}");
        assert!(v.get("Code").is_some(), "{v}");
    }
    // Still alive and well.
    s.ok("DescribeNatGateways", &[]);
}

/// Every gateway, through paging.
fn all_gateways(s: &Server) -> Vec<Value> {
    let mut out = Vec::new();
    for page in 1.. {
        let n = page.to_string();
        let v = s.ok(
            "DescribeNatGateways",
            &[("PageSize", "50"), ("PageNumber", &n)],
        );
        let items = v["NatGateways"]["NatGateway"]
            .as_array()
            .expect("a list")
            .clone();
        if items.is_empty() {
            break;
        }
        out.extend(items);
    }
    out
}

#[test]
fn durability_kill_9_mid_burst_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("state");
    let args = ["--pending-ms", "0", "--eip-range", "198.18.0.0/15"];
    let mut s = Server::start(&state, &args);
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients = 6;
    let mut threads = Vec::new();
    for t in 0..clients {
        let (c, acked, stop) = (s.client(), Arc::clone(&acked), Arc::clone(&stop));
        threads.push(std::thread::spawn(move || {
            let mut failures = 0;
            for i in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let name = format!("c{t}-{i}");
                let params: Vec<(String, String)> = [
                    ("Action", "CreateNatGateway"),
                    ("RegionId", REGION),
                    ("VpcId", "vpc-d"),
                    ("Name", &name),
                    ("BandwidthPackage.1.IpCount", "2"),
                    ("BandwidthPackage.1.Bandwidth", "10"),
                ]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                match c.call(&params) {
                    // Acknowledged: the answer came back with the gateway's id.
                    Ok(r) if r.status == 200 => {
                        let id = r.json()["NatGatewayId"]
                            .as_str()
                            .expect("an id")
                            .to_string();
                        acked.lock().expect("not poisoned").push(id);
                    }
                    _ => {
                        failures += 1;
                        if failures > 3 {
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            }
        }));
    }
    let start = Instant::now();
    while acked.lock().expect("not poisoned").len() < 300
        && start.elapsed() < Duration::from_secs(30)
    {
        std::thread::sleep(Duration::from_millis(5));
    }
    s.kill();
    let at_kill = acked.lock().expect("not poisoned").len();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("a client thread");
    }
    let acked = acked.lock().expect("not poisoned").clone();
    assert!(
        acked.len() >= 50,
        "too few writes before the kill to mean anything: {}",
        acked.len()
    );

    let s = Server::start(&state, &args);
    let found = all_gateways(&s);
    let found_ids: BTreeSet<String> = found
        .iter()
        .map(|g| g["NatGatewayId"].as_str().expect("an id").to_string())
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !found_ids.contains(*id)).collect();
    // Whole or nothing: every gateway has its package and both IPs; no IP is given twice.
    let mut ips = BTreeMap::new();
    for g in &found {
        assert_eq!(
            g["BandwidthPackageIds"]["BandwidthPackageId"]
                .as_array()
                .map(Vec::len),
            Some(1),
            "{g}"
        );
        let list = g["IpLists"]["IpList"].as_array().expect("IPs");
        assert_eq!(list.len(), 2, "half-written gateway: {g}");
        for ip in list {
            let prev = ips.insert(
                ip["IpAddress"].as_str().expect("an IP").to_string(),
                g["NatGatewayId"].clone(),
            );
            assert!(prev.is_none(), "an IP given twice: {ip}");
        }
    }
    let pkgs = s.ok("DescribeBandwidthPackages", &[("PageSize", "1")]);
    assert_eq!(
        pkgs["TotalCount"].as_u64(),
        Some(found.len() as u64),
        "one package per gateway, no orphan"
    );
    println!(
        "durability: {} clients, kill -9 after {} acknowledged writes; acknowledged {}, found after restart {}, missing {}, committed but unacknowledged {}",
        clients,
        at_kill,
        acked.len(),
        found.len(),
        missing.len(),
        found.len() - (acked.len() - missing.len())
    );
    assert!(missing.is_empty(), "acknowledged writes lost: {missing:?}");
    // In flight at the kill, at most one request per client can have committed unacknowledged.
    assert!(
        found.len() <= acked.len() + clients,
        "{} found, {} acknowledged",
        found.len(),
        acked.len()
    );
}

#[test]
fn concurrent_entry_writes_lose_no_update() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let s = Server::start(&dir.path().join("state"), &["--pending-ms", "0"]);
    let (t, ips) = gateway(&s, "conc", 1);
    let clients = 5;
    let per = 16;
    let ids: Arc<Mutex<Vec<String>>> = Arc::default();
    let threads: Vec<_> = (0..clients)
        .map(|c| {
            let (client, ids, t, ip) = (s.client(), Arc::clone(&ids), t.clone(), ips[0].clone());
            std::thread::spawn(move || {
                for i in 0..per {
                    let port = (1000 + c * 100 + i).to_string();
                    let params: Vec<(String, String)> = [
                        ("Action", "CreateForwardEntry"),
                        ("RegionId", REGION),
                        ("ForwardTableId", &t),
                        ("ExternalIp", &ip),
                        ("ExternalPort", &port),
                        ("IpProtocol", "TCP"),
                        ("InternalIp", "10.1.1.1"),
                        ("InternalPort", &port),
                    ]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                    let r = client.call(&params).expect("an answer");
                    assert_eq!(r.status, 200, "{}", r.body);
                    ids.lock()
                        .expect("not poisoned")
                        .push(r.json()["ForwardEntryId"].as_str().expect("id").to_string());
                }
            })
        })
        .collect();
    for th in threads {
        th.join().expect("a client");
    }
    let mut stored = BTreeSet::new();
    for page in 1..=2 {
        let n = page.to_string();
        let v = s.ok(
            "DescribeForwardTableEntries",
            &[
                ("ForwardTableId", &t),
                ("PageSize", "50"),
                ("PageNumber", &n),
            ],
        );
        for e in v["ForwardTableEntries"]["ForwardTableEntry"]
            .as_array()
            .expect("entries")
        {
            stored.insert(e["ForwardEntryId"].as_str().expect("id").to_string());
        }
    }
    let acked: BTreeSet<String> = ids.lock().expect("not poisoned").iter().cloned().collect();
    assert_eq!(acked.len(), clients as usize * per as usize);
    assert_eq!(stored, acked);
}

#[test]
fn export_needs_a_state_and_a_known_gateway() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let out = dnatsim(&[
        "api",
        "export",
        "--state",
        dir.path().to_str().expect("UTF-8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("state.db"));
    let state: PathBuf = dir.path().join("state");
    let s = Server::start(&state, &[]);
    gateway(&s, "a", 1);
    gateway(&s, "b", 1);
    let st = state.to_str().expect("UTF-8");
    let out = dnatsim(&["api", "export", "--state", st]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--gateway"));
    let out = dnatsim(&["api", "export", "--state", st, "--gateway", "zzz"]);
    assert_eq!(out.status.code(), Some(1));
    let out = dnatsim(&["api", "export", "--state", st, "--gateway", "b"]);
    assert!(out.status.success());
    let check = dir.path().join("b.toml");
    std::fs::write(&check, &out.stdout).expect("writable");
    let out = dnatsim(&["check", "--rules", check.to_str().expect("UTF-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_eip_way_builds_the_same_gateway_as_the_legacy_way() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("state");
    let s = Server::start(&state, &["--pending-ms", "0"]);
    let (legacy_table, legacy_ips) = gateway(&s, "legacy", 2);
    // Today's way: a bare gateway, a shared package, two EIPs in it, associated with the gateway.
    let g = s.ok(
        "CreateNatGateway",
        &[
            ("RegionId", REGION),
            ("VpcId", "vpc-1"),
            ("Name", "current"),
        ],
    );
    let ngw = g["NatGatewayId"].as_str().expect("id");
    assert_eq!(g["BandwidthPackageIds"]["BandwidthPackageId"], json!([]));
    let table = g["ForwardTableIds"]["ForwardTableId"][0]
        .as_str()
        .expect("a table");
    let cbwp = s.ok(
        "CreateCommonBandwidthPackage",
        &[("RegionId", REGION), ("Bandwidth", "10")],
    );
    let cbwp = cbwp["BandwidthPackageId"].as_str().expect("id");
    let mut eips = Vec::new();
    for _ in 0..2 {
        let e = s.ok("AllocateEipAddress", &[("RegionId", REGION)]);
        let alloc = e["AllocationId"].as_str().expect("id");
        s.ok(
            "AddCommonBandwidthPackageIp",
            &[("BandwidthPackageId", cbwp), ("IpInstanceId", alloc)],
        );
        s.ok(
            "AssociateEipAddress",
            &[
                ("AllocationId", alloc),
                ("InstanceId", ngw),
                ("InstanceType", "Nat"),
            ],
        );
        eips.push(e["EipAddress"].as_str().expect("an IP").to_string());
    }
    // Refusals of the EIP actions.
    let (status, v) = s.call(
        "AssociateEipAddress",
        &[
            ("AllocationId", "eip-nope"),
            ("InstanceId", ngw),
            ("InstanceType", "Nat"),
        ],
    );
    assert_eq!(error_code(status, &v, 404), "InvalidAllocationId.NotFound");
    let listed = s.ok("DescribeEipAddresses", &[("AssociatedInstanceId", ngw)]);
    assert_eq!(listed["TotalCount"], 2);
    let first = listed["EipAddresses"]["EipAddress"][0].clone();
    assert_eq!(
        (
            &first["Status"],
            &first["InstanceType"],
            &first["BandwidthPackageId"]
        ),
        (&json!("InUse"), &json!("Nat"), &json!(cbwp))
    );
    let alloc = first["AllocationId"].as_str().expect("id");
    let (status, v) = s.call(
        "AssociateEipAddress",
        &[
            ("AllocationId", alloc),
            ("InstanceId", ngw),
            ("InstanceType", "Nat"),
        ],
    );
    assert_eq!(error_code(status, &v, 400), "IncorrectEipStatus");
    let (status, v) = s.call(
        "AddCommonBandwidthPackageIp",
        &[("BandwidthPackageId", cbwp), ("IpInstanceId", alloc)],
    );
    assert_eq!(
        error_code(status, &v, 400),
        "OperationFailed.IpAlreadyInBandwidthPackage"
    );
    let (status, v) = s.call(
        "AssociateEipAddress",
        &[
            ("AllocationId", alloc),
            ("InstanceId", ngw),
            ("InstanceType", "EcsInstance"),
        ],
    );
    assert_eq!(error_code(status, &v, 400), "InvalidParameter.InstanceType");
    let pkgs = s.ok(
        "DescribeCommonBandwidthPackages",
        &[("BandwidthPackageId", cbwp)],
    );
    let ips: Vec<&str> = pkgs["CommonBandwidthPackages"]["CommonBandwidthPackage"][0]["PublicIpAddresses"]["PublicIpAddresse"]
        .as_array()
        .expect("IPs")
        .iter()
        .map(|i| i["IpAddress"].as_str().expect("an IP"))
        .collect();
    assert_eq!(ips, eips);

    for (t, ips) in [(legacy_table.as_str(), &legacy_ips), (table, &eips)] {
        s.ok(
            "CreateForwardEntry",
            &entry(t, [&ips[0], "Any", "Any", "192.168.1.1", "Any"]),
        );
        s.ok(
            "CreateForwardEntry",
            &entry(t, [&ips[1], "443", "TCP", "192.168.1.4", "443"]),
        );
    }
    let st = state.to_str().expect("UTF-8");
    let export = |gw: &str, ips: &[String]| -> String {
        let out = dnatsim(&["api", "export", "--state", st, "--gateway", gw]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut t = String::from_utf8(out.stdout).expect("UTF-8");
        for (i, ip) in ips.iter().enumerate() {
            t = t.replace(&format!("\"{ip}\""), &format!("\"IP{}\"", i + 1));
        }
        // Entry ids and the names differ by construction.
        t.lines()
            .filter(|l| !l.starts_with("id =") && !l.starts_with("name ="))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let a = export("legacy", &legacy_ips);
    let b = export("current", &eips);
    assert_eq!(a, b);
    assert!(a.contains("bandwidth_mbps = 10"), "{a}");
}

#[test]
fn deleting_a_gateway_needs_force_while_it_has_entries_and_frees_its_ips() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let s = Server::start(
        &dir.path().join("state"),
        &["--pending-ms", "0", "--eip-range", "203.0.113.0/30"],
    );
    let (t, ips) = gateway(&s, "full", 2);
    s.ok(
        "CreateForwardEntry",
        &entry(&t, [&ips[0], "22", "TCP", "192.168.1.1", "22"]),
    );
    // The /30 pool has two addresses, both taken.
    let (status, v) = s.call("AllocateEipAddress", &[("RegionId", REGION)]);
    assert_eq!(error_code(status, &v, 400), "QuotaExceeded.Eip");
    let gws = s.ok("DescribeNatGateways", &[("Name", "full")]);
    let ngw = gws["NatGateways"]["NatGateway"][0]["NatGatewayId"]
        .as_str()
        .expect("id")
        .to_string();
    let (status, v) = s.call(
        "DeleteNatGateway",
        &[("RegionId", REGION), ("NatGatewayId", &ngw)],
    );
    assert_eq!(
        error_code(status, &v, 400),
        "DependencyViolation.ForwardEntries"
    );
    s.ok(
        "DeleteNatGateway",
        &[
            ("RegionId", REGION),
            ("NatGatewayId", &ngw),
            ("Force", "true"),
        ],
    );
    assert_eq!(s.ok("DescribeNatGateways", &[])["TotalCount"], 0);
    assert_eq!(s.ok("DescribeBandwidthPackages", &[])["TotalCount"], 0);
    let (status, v) = s.call("DescribeForwardTableEntries", &[("ForwardTableId", &t)]);
    assert_eq!(
        error_code(status, &v, 404),
        "InvalidForwardTableId.NotFound"
    );
    let (status, v) = s.call("DeleteNatGateway", &[("NatGatewayId", &ngw)]);
    assert_eq!(error_code(status, &v, 404), "InvalidNatGatewayId.NotFound");
    // The addresses went back to the pool.
    let e = s.ok("AllocateEipAddress", &[("RegionId", REGION)]);
    assert_eq!(e["EipAddress"], "203.0.113.1");
}

#[test]
fn a_changing_request_replayed_after_a_restart_is_refused() {
    let dir = tempfile::tempdir().expect("a temp dir");
    let state = dir.path().join("state");
    let mut s = Server::start(&state, &[]);
    let send = |s: &Server, params: &[(String, String)]| -> (u16, Value) {
        let target = format!("/?{}", dnatsim::api::sign::encode_query(params));
        let (status, body) = request(&s.addr, "GET", &target, &[], None).expect("an answer");
        (status, serde_json::from_str(&body).expect("JSON"))
    };
    let p = |action: &str| {
        vec![
            ("Action".to_string(), action.to_string()),
            ("RegionId".to_string(), REGION.to_string()),
        ]
    };
    let write = s.client().sign("GET", &p("AllocateEipAddress"));
    let read = s.client().sign("GET", &p("DescribeEipAddresses"));
    assert_eq!(send(&s, &write).0, 200);
    assert_eq!(send(&s, &read).0, 200);
    s.kill();
    let s = Server::start(&state, &[]);
    let (status, v) = send(&s, &write);
    assert_eq!(error_code(status, &v, 400), "SignatureNonceUsed");
    // Nonces of reads live in memory only (see the README): a replayed read changes nothing.
    assert_eq!(send(&s, &read).0, 200);
    assert_eq!(
        s.ok("DescribeEipAddresses", &[])["TotalCount"],
        1,
        "the replay allocated nothing"
    );
}
