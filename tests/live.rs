//! End-to-end tests of `dnatsim live` with real clients and servers, in network namespaces the
//! test creates: a client namespace, a gateway namespace where dnatsim runs and a server
//! namespace holding ECS1-ECS5. Documentation addresses only: EIPs in 203.0.113.0/24, the
//! client in 198.51.100.0/24, the servers in 192.0.2.0/24, the gateway's inside address
//! 192.0.2.254. The whole set runs twice: between veth interfaces and between TAP devices.
//!
//! Nothing is sent from the root namespace. Every wait is bounded; the `Lab` guard kills what
//! it started and deletes the namespaces (and with dnatsim gone, its TAP devices).
//! Without root (or a tool) the test prints SKIPPED and passes, except under CI or
//! DNATSIM_REQUIRE_ALL, where it fails.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NS_PREFIX: &str = "dnlive-";
const CLIENT: &str = "198.51.100.7";
const EIP: [&str; 5] = [
    "203.0.113.1",
    "203.0.113.2",
    "203.0.113.3",
    "203.0.113.4",
    "203.0.113.5",
];
const ECS: [&str; 5] = [
    "192.0.2.1",
    "192.0.2.2",
    "192.0.2.3",
    "192.0.2.4",
    "192.0.2.5",
];
const GW_INSIDE: &str = "192.0.2.254";

/// The rules: IP1 and IP2 IP-mapped to ECS1 and ECS2, IP3 tcp/80 to ECS3 and tcp/443 to ECS4,
/// IP4 tcp/22 to ECS5, IP5 no entry (until the reload adds `extra`).
fn rules_toml(extra: &str) -> String {
    let entry = |eip: &str, port: &str, proto: &str, ecs: &str, iport: &str| {
        format!(
            "[[forward_entry]]\nexternal_ip = \"{eip}\"\nexternal_port = {port}\nip_protocol = \"{proto}\"\ninternal_ip = \"{ecs}\"\ninternal_port = {iport}\n\n"
        )
    };
    let mut s = format!(
        "[gateway]\nname = \"LiveTest\"\nprivate_ip = \"{GW_INSIDE}\"\n# 100,000 Mbps (uncapped) is above what the cloud sells.\nprofile = \"permissive\"\n\n[bandwidth_package]\nbandwidth_mbps = 100000\npublic_ips = [{}]\n\n",
        EIP.map(|e| format!("\"{e}\"")).join(", ")
    );
    s += &entry(EIP[0], "\"any\"", "any", ECS[0], "\"any\"");
    s += &entry(EIP[1], "\"any\"", "any", ECS[1], "\"any\"");
    s += &entry(EIP[2], "80", "tcp", ECS[2], "80");
    s += &entry(EIP[2], "443", "tcp", ECS[3], "443");
    s += &entry(EIP[3], "22", "tcp", ECS[4], "22");
    s += extra;
    s
}

/// Runs `args` (inside namespace `ns` when given) under a timeout; stdout or a message.
fn run(ns: Option<&str>, args: &[&str]) -> Result<String, String> {
    let mut c = Command::new("timeout");
    c.arg("20");
    if let Some(ns) = ns {
        c.args(["ip", "netns", "exec", ns]);
    }
    c.args(args);
    let o = c.output().map_err(|e| format!("{args:?}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{} failed ({}): {}{}",
            args.join(" "),
            o.status,
            String::from_utf8_lossy(&o.stderr).trim(),
            String::from_utf8_lossy(&o.stdout).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&o.stdout).into_owned())
}

fn ok(ns: Option<&str>, args: &[&str]) -> String {
    match run(ns, args) {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Veth,
    Tap,
}

/// The namespaces, files and background processes of one run; dropping it removes them.
struct Lab {
    mode: Mode,
    client: String,
    gw: String,
    server: String,
    created: Vec<String>,
    dir: tempfile::TempDir,
    children: Vec<Child>,
    dnatsim: Option<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(d) = &mut self.dnatsim {
            let _ = Command::new("kill")
                .args(["-KILL", &d.id().to_string()])
                .status();
            let _ = d.wait();
        }
        for c in &mut self.children {
            let _ = Command::new("kill")
                .args(["-KILL", &c.id().to_string()])
                .status();
            let _ = c.wait();
        }
        for ns in &self.created {
            let _ = Command::new("timeout")
                .args(["10", "ip", "netns", "del", ns])
                .status();
        }
    }
}

/// Deletes namespaces left by earlier runs whose process is gone.
fn clean_leftovers() {
    let Ok(list) = run(None, &["ip", "netns", "list"]) else {
        return;
    };
    for name in list.lines().filter_map(|l| l.split_whitespace().next()) {
        let Some(rest) = name.strip_prefix(NS_PREFIX) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or("");
        if pid != std::process::id().to_string() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(None, &["ip", "netns", "del", name]);
        }
    }
}

/// Why this machine cannot run the test, if it cannot.
fn cannot_run() -> Option<String> {
    for tool in [
        "ip", "timeout", "python3", "curl", "ping", "iperf3", "ethtool", "tcpdump",
    ] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{tool} is not installed"));
        }
    }
    // Creating a namespace needs CAP_SYS_ADMIN, the interfaces CAP_NET_ADMIN.
    // Tests run in parallel: each probe gets a name of its own.
    static PROBES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let probe = format!("{NS_PREFIX}{}-probe{n}", std::process::id());
    match run(None, &["ip", "netns", "add", &probe]) {
        Ok(_) => {
            let _ = run(None, &["ip", "netns", "del", &probe]);
            None
        }
        Err(e) => Some(format!(
            "cannot create a network namespace (not root?): {e}"
        )),
    }
}

fn peers_py() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/live/peers.py")
}

impl Lab {
    /// A lab whose namespaces are named after this process and `tag` (unique per test).
    fn new(mode: Mode, tag: &str) -> Lab {
        let base = format!("{NS_PREFIX}{}-{tag}", std::process::id());
        let mut lab = Lab {
            mode,
            client: format!("{base}-c"),
            gw: format!("{base}-g"),
            server: format!("{base}-s"),
            created: Vec::new(),
            // A temporary directory is a precondition of the whole test suite.
            dir: tempfile::tempdir().expect("a temporary directory"),
            children: Vec::new(),
            dnatsim: None,
        };
        for ns in [lab.client.clone(), lab.gw.clone(), lab.server.clone()] {
            ok(None, &["ip", "netns", "add", &ns]);
            lab.created.push(ns.clone());
            ok(Some(&ns), &["ip", "link", "set", "lo", "up"]);
            ok(
                Some(&ns),
                &[
                    "sysctl",
                    "-qw",
                    "net.ipv6.conf.all.disable_ipv6=1",
                    "net.ipv6.conf.default.disable_ipv6=1",
                    "net.ipv4.ip_forward=0",
                ],
            );
        }
        lab
    }

    fn rules_path(&self) -> PathBuf {
        self.dir.path().join("rules.toml")
    }

    /// Veth mode: the links exist before dnatsim starts.
    fn veth_links(&self) {
        let (c, g, s) = (&self.client, &self.gw, &self.server);
        ok(
            None,
            &[
                "ip", "link", "add", "c0", "netns", c, "type", "veth", "peer", "name", "g0",
                "netns", g,
            ],
        );
        ok(
            None,
            &[
                "ip", "link", "add", "s0", "netns", s, "type", "veth", "peer", "name", "g1",
                "netns", g,
            ],
        );
        for dev in ["g0", "g1"] {
            ok(Some(g), &["ip", "link", "set", dev, "up"]);
            let _ = run(
                Some(g),
                &[
                    "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                ],
            );
        }
    }

    /// TAP mode: dnatsim made dn-out and dn-in in the gateway namespace; their kernel ends
    /// become the client's and the servers' interfaces.
    fn tap_links(&self) {
        let (c, g, s) = (&self.client, &self.gw, &self.server);
        for (dev, ns, name) in [("dn-out", c, "c0"), ("dn-in", s, "s0")] {
            let deadline = Instant::now() + Duration::from_secs(10);
            while run(Some(g), &["ip", "link", "show", dev]).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "dnatsim did not create {dev} within 10 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            ok(Some(g), &["ip", "link", "set", dev, "netns", ns]);
            ok(Some(ns), &["ip", "link", "set", dev, "name", name]);
        }
    }

    /// Addresses and routes of the client and the servers; offloads off (frames must carry
    /// real checksums and be at most one MTU, as on a wire).
    fn hosts(&self) {
        let (c, s) = (&self.client, &self.server);
        ok(
            Some(c),
            &["ip", "addr", "add", &format!("{CLIENT}/24"), "dev", "c0"],
        );
        ok(Some(c), &["ip", "link", "set", "c0", "up"]);
        ok(
            Some(c),
            &["ip", "route", "add", "203.0.113.0/24", "dev", "c0"],
        );
        for ecs in ECS {
            ok(
                Some(s),
                &["ip", "addr", "add", &format!("{ecs}/24"), "dev", "s0"],
            );
        }
        ok(Some(s), &["ip", "link", "set", "s0", "up"]);
        ok(
            Some(s),
            &["ip", "route", "add", "default", "via", GW_INSIDE],
        );
        for (ns, dev) in [(c, "c0"), (s, "s0")] {
            let _ = run(
                Some(ns),
                &[
                    "ethtool", "-K", dev, "tx", "off", "tso", "off", "gso", "off", "gro", "off",
                ],
            );
        }
    }

    /// Starts a background process in `ns` (killed by the guard; it also has its own timeout).
    fn spawn(&mut self, ns: &str, args: &[&str], out: &str) -> PathBuf {
        let log = self.dir.path().join(out);
        let file = std::fs::File::create(&log).expect("a log file in the temporary directory");
        let err = file.try_clone().expect("a second handle to the log");
        let child = Command::new("timeout")
            .args(["180", "ip", "netns", "exec", ns])
            .args(args)
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("timeout and ip are installed (checked)");
        self.children.push(child);
        log
    }

    fn start_dnatsim(&mut self) -> (PathBuf, PathBuf) {
        let out = self.dir.path().join("dnatsim.out");
        let err = self.dir.path().join("dnatsim.err");
        let report = self.dir.path().join("report.json");
        let rules = self.rules_path();
        let mut args: Vec<String> = vec![
            "live".into(),
            "--rules".into(),
            rules.display().to_string(),
            "--report".into(),
            report.display().to_string(),
            "--pcap-out".into(),
            self.dir.path().join("sent.pcapng").display().to_string(),
            "--stats-interval".into(),
            "2".into(),
            "--trace".into(),
            "12".into(),
        ];
        match self.mode {
            // Veth mode names the inside address; TAP mode takes the rules' private_ip.
            Mode::Veth => args.extend(
                [
                    "--outside",
                    "g0",
                    "--inside",
                    "g1",
                    "--inside-ip",
                    GW_INSIDE,
                ]
                .map(String::from),
            ),
            Mode::Tap => {
                args.extend(["--tap-outside", "dn-out", "--tap-inside", "dn-in"].map(String::from))
            }
        }
        let child = Command::new("timeout")
            .args(["300", "ip", "netns", "exec", &self.gw])
            .arg(env!("CARGO_BIN_EXE_dnatsim"))
            .args(&args)
            .stdout(std::fs::File::create(&out).expect("log file"))
            .stderr(std::fs::File::create(&err).expect("log file"))
            .spawn()
            .expect("timeout and ip are installed (checked)");
        self.dnatsim = Some(child);
        (out, err)
    }

    /// dnatsim's own pid: the child of the `timeout` that runs it (`ip netns exec` execs).
    fn dnatsim_pid(&self) -> u32 {
        let Some(d) = &self.dnatsim else {
            panic!("dnatsim was not started");
        };
        let t = d.id();
        let children =
            std::fs::read_to_string(format!("/proc/{t}/task/{t}/children")).unwrap_or_default();
        match children
            .split_whitespace()
            .next()
            .and_then(|p| p.parse().ok())
        {
            Some(pid) => pid,
            None => panic!("no child under timeout {t}"),
        }
    }

    fn dnatsim_running(&mut self) -> bool {
        self.dnatsim
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Stops dnatsim with SIGTERM (timeout passes it on) and waits for it, at most 20 s.
    fn stop_dnatsim(&mut self) -> std::process::ExitStatus {
        let Some(mut d) = self.dnatsim.take() else {
            panic!("dnatsim was not started");
        };
        let _ = Command::new("kill")
            .args(["-TERM", &d.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(st)) = d.try_wait() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = d.kill();
                panic!("dnatsim did not stop within 20 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn py(&self, ns: &str, args: &[&str]) -> String {
        let script = peers_py();
        let mut all = vec!["python3", script.to_str().expect("a UTF-8 path")];
        all.extend(args);
        ok(Some(ns), &all).trim().to_string()
    }
}

/// Waits (bounded) until `path` holds a line containing `needle`.
fn wait_for_line(path: &Path, needle: &str, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if let Ok(f) = std::fs::File::open(path)
            && BufReader::new(f)
                .lines()
                .map_while(Result::ok)
                .any(|l| l.contains(needle))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits (bounded) until `path` holds at least `n` lines containing `needle`.
fn wait_for_count(path: &Path, needle: &str, n: usize, secs: u64) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.lines().filter(|l| l.contains(needle)).count() >= n {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The gateway namespace's Ip:ForwDatagrams from /proc/net/snmp.
fn forw_datagrams(ns: &str) -> u64 {
    let snmp = ok(Some(ns), &["cat", "/proc/net/snmp"]);
    let mut ip = snmp.lines().filter(|l| l.starts_with("Ip:"));
    let (names, values) = (ip.next().unwrap_or(""), ip.next().unwrap_or(""));
    names
        .split_whitespace()
        .zip(values.split_whitespace())
        .find(|(n, _)| *n == "ForwDatagrams")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no Ip:ForwDatagrams in {ns}'s /proc/net/snmp"))
}

/// Packets in a capture file matching a tcpdump filter.
fn count_matching(pcap: &Path, filter: &str) -> usize {
    let out = ok(
        None,
        &["tcpdump", "-nn", "-r", pcap.to_str().unwrap_or(""), filter],
    );
    out.lines().count()
}

fn scenario(mode: Mode) {
    if let Some(why) = cannot_run() {
        common::skip_or_fail(&format!("live end-to-end test ({mode:?}): {why}"));
        return;
    }
    clean_leftovers();
    let tag = match mode {
        Mode::Veth => "v",
        Mode::Tap => "t",
    };
    let mut lab = Lab::new(mode, tag);
    std::fs::write(lab.rules_path(), rules_toml("")).expect("write the rules");
    let say = |s: &str| println!("[{mode:?}] {s}");
    if mode == Mode::Veth {
        lab.veth_links();
    }
    let forw_before = forw_datagrams(&lab.gw);
    let (dn_out, dn_err) = lab.start_dnatsim();
    if mode == Mode::Tap {
        lab.tap_links();
    }
    lab.hosts();
    let (client, server) = (lab.client.clone(), lab.server.clone());

    // Captures on the client's and the servers' interfaces, to look for leaks afterwards.
    let cap_c = lab.dir.path().join("client.pcap");
    let cap_s = lab.dir.path().join("server.pcap");
    let cap_c_s = cap_c.display().to_string();
    let cap_s_s = cap_s.display().to_string();
    lab.spawn(
        &client,
        &["tcpdump", "-i", "c0", "-nn", "-U", "-w", &cap_c_s],
        "tcpdump-c.log",
    );
    lab.spawn(
        &server,
        &["tcpdump", "-i", "s0", "-nn", "-U", "-w", &cap_s_s],
        "tcpdump-s.log",
    );

    // Servers: every ECS answers on the ports used below, naming itself and the peer it sees.
    let py = peers_py().display().to_string();
    let specs: Vec<String> = vec![
        format!("tcp:{}:7000:ECS1", ECS[0]),
        format!("tcp:{}:80:ECS1", ECS[0]),
        format!("udp:{}:5353:ECS2", ECS[1]),
        format!("tcp:{}:80:ECS3", ECS[2]),
        format!("tcp:{}:443:ECS4", ECS[3]),
        format!("tcp:{}:22:ECS5", ECS[4]),
        format!("tcp:{}:80:ECS5", ECS[4]),
    ];
    let mut serve: Vec<&str> = vec!["python3", &py, "serve", "--life", "170"];
    serve.extend(specs.iter().map(String::as_str));
    let srv_log = lab.spawn(&server, &serve, "servers.log");
    let client_srv = lab.spawn(
        &client,
        &[
            "python3",
            &py,
            "serve",
            "--life",
            "170",
            &format!("tcp:{CLIENT}:9000:CLIENT"),
        ],
        "client-server.log",
    );
    let iperf_log = lab.spawn(
        &server,
        &["iperf3", "-s", "-B", ECS[0], "-1"],
        "iperf3-s.log",
    );
    assert!(
        wait_for_line(&srv_log, "ready", 10),
        "servers did not start"
    );
    assert!(
        wait_for_line(&client_srv, "ready", 10),
        "client's server did not start"
    );

    // Ready when a ping through the gateway comes back (ARP both ways done): at most 20 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    while run(Some(&client), &["ping", "-c", "1", "-W", "1", EIP[0]]).is_err() {
        assert!(
            lab.dnatsim_running(),
            "dnatsim exited: {}",
            std::fs::read_to_string(&dn_err).unwrap_or_default()
        );
        assert!(
            Instant::now() < deadline,
            "no ping through dnatsim within 20 s: {}",
            std::fs::read_to_string(&dn_err).unwrap_or_default()
        );
    }

    // curl http://EIP3/ is answered by ECS3, which sees the client's real address.
    let body = ok(
        Some(&client),
        &["curl", "-sS", "-m", "5", &format!("http://{}/", EIP[2])],
    );
    say(&format!("curl http://{}/ -> {}", EIP[2], body.trim()));
    assert_eq!(body.trim(), format!("ECS3 peer={CLIENT} got=http"));

    // EIP3:443 reaches ECS4, EIP4:22 reaches ECS5.
    let r = lab.py(&client, &["tcp", EIP[2], "443"]);
    say(&format!("tcp {}:443 -> {r}", EIP[2]));
    assert_eq!(r, format!("ECS4 peer={CLIENT} got=hello"));
    let r = lab.py(&client, &["tcp", EIP[3], "22"]);
    say(&format!("tcp {}:22 -> {r}", EIP[3]));
    assert_eq!(r, format!("ECS5 peer={CLIENT} got=hello"));

    // No answer at all (no RST: "refused"; no ICMP: "unreachable") within 3 s.
    for (ip, port) in [
        (EIP[3], "80"),
        (EIP[4], "80"),
        (EIP[4], "22"),
        (EIP[4], "443"),
    ] {
        let r = lab.py(&client, &["tcp", ip, port, "--timeout", "3"]);
        say(&format!("tcp {ip}:{port} -> {r}"));
        assert_eq!(r, "timeout", "{ip}:{port} must get no answer at all");
    }
    let r = lab.py(&client, &["udp", EIP[4], "5353", "--timeout", "3"]);
    say(&format!("udp {}:5353 -> {r}", EIP[4]));
    assert_eq!(r, "timeout");
    let p = run(Some(&client), &["ping", "-c", "1", "-W", "3", EIP[4]]);
    say(&format!(
        "ping {} -> {}",
        EIP[4],
        if p.is_ok() { "answered" } else { "no answer" }
    ));
    assert!(p.is_err(), "ping to EIP5 must get no answer");

    // ping EIP1 is answered (by ECS1: its entry counts the packets in the report below).
    let ping = ok(
        Some(&client),
        &["ping", "-c", "3", "-i", "0.2", "-W", "2", EIP[0]],
    );
    let summary_line = ping
        .lines()
        .find(|l| l.contains("packets transmitted"))
        .unwrap_or("");
    say(&format!("ping -c 3 {} -> {summary_line}", EIP[0]));
    assert!(summary_line.contains("3 received"), "{ping}");

    // UDP with EIP2 reaches ECS2; the answer comes from EIP2.
    let r = lab.py(&client, &["udp", EIP[1], "5353"]);
    say(&format!("udp {}:5353 -> {r}", EIP[1]));
    assert_eq!(
        r,
        format!("from={}:5353 ECS2 peer={CLIENT} got=hello", EIP[1])
    );

    // ECS1 (IP mapping, 1:1) connects out: the client sees EIP1. ECS3 (port mapping) cannot.
    let r = lab.py(&server, &["tcp", CLIENT, "9000", "--bind", ECS[0]]);
    say(&format!("ECS1 -> {CLIENT}:9000 -> {r}"));
    assert_eq!(r, format!("CLIENT peer={} got=hello", EIP[0]));
    let r = lab.py(
        &server,
        &["tcp", CLIENT, "9000", "--bind", ECS[2], "--timeout", "3"],
    );
    say(&format!("ECS3 -> {CLIENT}:9000 -> {r}"));
    assert_eq!(r, "timeout");

    // iperf3 through the gateway for 2 seconds (throughput: scripts/bench-live.sh).
    let iperf = ok(
        Some(&client),
        &["iperf3", "-c", EIP[0], "-t", "2", "-f", "m"],
    );
    let receiver = iperf.lines().find(|l| l.contains("receiver")).unwrap_or("");
    say(&format!("iperf3 -c {} -t 2 -> {}", EIP[0], receiver.trim()));
    assert!(receiver.contains("Mbits/sec"), "{iperf}");
    let _ = iperf_log;

    // Reload: a connection through an unchanged entry (EIP1) stays up while a new entry
    // (EIP5 tcp/80 -> ECS5) is added to the file; the new entry works without a restart.
    let go = lab.dir.path().join("go");
    let hold_log = lab.spawn(
        &client,
        &[
            "python3",
            &py,
            "hold",
            EIP[0],
            "7000",
            go.to_str().unwrap_or(""),
            "--timeout",
            "10",
        ],
        "hold.log",
    );
    assert!(
        wait_for_line(&hold_log, "got=before", 10),
        "held connection did not start"
    );
    let extra = format!(
        "[[forward_entry]]\nexternal_ip = \"{}\"\nexternal_port = 80\nip_protocol = \"tcp\"\ninternal_ip = \"{}\"\ninternal_port = 80\n",
        EIP[4], ECS[4]
    );
    // Atomically, as an editor or a deployment would: a whole new file renamed over the old.
    let tmp = lab.dir.path().join("rules.toml.new");
    std::fs::write(&tmp, rules_toml(&extra)).expect("write the rules");
    std::fs::rename(&tmp, lab.rules_path()).expect("rename the rules");
    assert!(
        wait_for_line(&dn_err, "rules reloaded", 10),
        "no reload within 10 s: {}",
        std::fs::read_to_string(&dn_err).unwrap_or_default()
    );
    std::fs::write(&go, b"").expect("touch go");
    assert!(
        wait_for_line(&hold_log, "got=after", 10),
        "held connection broke: {}",
        std::fs::read_to_string(&hold_log).unwrap_or_default()
    );
    say(&format!(
        "connection held across the reload: {}",
        std::fs::read_to_string(&hold_log)
            .unwrap_or_default()
            .trim()
            .replace('\n', " / ")
    ));
    let r = lab.py(&client, &["tcp", EIP[4], "80"]);
    say(&format!("after reload: tcp {}:80 -> {r}", EIP[4]));
    assert_eq!(r, format!("ECS5 peer={CLIENT} got=hello"));
    // A broken file is refused and the table stays.
    std::fs::write(lab.rules_path(), "[gateway\nbroken").expect("write");
    assert!(
        wait_for_line(&dn_err, "rules not reloaded", 10),
        "a broken file was not reported"
    );
    let r = lab.py(&client, &["tcp", EIP[4], "80"]);
    say(&format!("after a refused reload: tcp {}:80 -> {r}", EIP[4]));
    assert_eq!(r, format!("ECS5 peer={CLIENT} got=hello"));

    // A good file again (noticed by its change), then SIGHUP with the file unchanged.
    let tmp = lab.dir.path().join("rules.toml.new");
    std::fs::write(&tmp, rules_toml(&extra)).expect("write the rules");
    std::fs::rename(&tmp, lab.rules_path()).expect("rename the rules");
    assert!(
        wait_for_count(&dn_err, "rules reloaded", 2, 10),
        "the repaired file was not reloaded"
    );
    let dn_pid = lab.dnatsim_pid();
    ok(None, &["kill", "-HUP", &dn_pid.to_string()]);
    assert!(
        wait_for_count(&dn_err, "rules reloaded", 3, 10),
        "SIGHUP did not reload"
    );
    say("SIGHUP reloaded the unchanged file");

    // The kernel routed nothing; dnatsim ran throughout and stops cleanly on SIGTERM.
    assert!(lab.dnatsim_running(), "dnatsim stopped during the test");
    let forw_after = forw_datagrams(&lab.gw);
    say(&format!(
        "gateway Ip:ForwDatagrams {forw_before} -> {forw_after}"
    ));
    assert_eq!(forw_before, forw_after, "the kernel forwarded packets");
    let st = lab.stop_dnatsim();
    assert!(
        st.success(),
        "dnatsim exit status {st}: {}",
        std::fs::read_to_string(&dn_err).unwrap_or_default()
    );
    let summary = std::fs::read_to_string(&dn_out).unwrap_or_default();
    for l in summary.lines().filter(|l| {
        l.starts_with('#')
            || l.starts_with("live")
            || l.starts_with("packets")
            || l.starts_with("dropped")
            || l.starts_with("  no_rule")
            || l.starts_with("  foreign")
    }) {
        say(&format!("dnatsim: {l}"));
    }
    for l in std::fs::read_to_string(&dn_err)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("live ") || l.contains("reload"))
    {
        say(&format!("dnatsim stderr: {l}"));
    }

    // The report: entries carried packets, drops by reason, the reload counted.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(lab.dir.path().join("report.json"))
            .expect("the report was written"),
    )
    .expect("the report is JSON");
    let entry_packets = |ip: &str, port: &str| {
        report["entries"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .find(|e| e["external_ip"] == ip && e["external_port"] == port)
            })
            .and_then(|e| e["packets"].as_u64())
            .unwrap_or(0)
    };
    assert!(
        entry_packets(EIP[0], "any") >= 6,
        "ECS1's entry counts the pings"
    );
    assert!(
        entry_packets(EIP[4], "80") > 0,
        "the reloaded entry carried the connection"
    );
    assert!(
        report["dropped"]["no_rule"].as_u64().unwrap_or(0) >= 5,
        "{report}"
    );
    assert!(
        report["dropped"]["foreign"].as_u64().unwrap_or(0) >= 1,
        "ECS3's attempt: {report}"
    );
    assert_eq!(report["live"]["reloads"]["applied"], 3);
    assert_eq!(report["live"]["reloads"]["refused"], 1);
    assert!(
        report["live"]["reloads"]["flows_kept"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    );
    let inv = report["packets_in"].as_u64().unwrap_or(0);
    let out = report["packets_out"].as_u64().unwrap_or(0);
    let dropped: u64 = report["dropped"]
        .as_object()
        .map_or(0, |m| m.values().filter_map(|v| v.as_u64()).sum());
    assert_eq!(inv, out + dropped, "packets_in == packets_out + dropped");
    say(&format!(
        "report: packets_in {inv}, packets_out {out}, dropped {}, live {}",
        report["dropped"], report["live"]["reloads"]
    ));

    // No leaks: the client saw no server address, the servers no EIP.
    std::thread::sleep(Duration::from_millis(300));
    for c in &mut lab.children {
        let _ = Command::new("kill")
            .args(["-INT", &c.id().to_string()])
            .status();
    }
    std::thread::sleep(Duration::from_millis(500));
    let leaks_c = count_matching(&cap_c, "ip and net 192.0.2.0/24");
    let leaks_s = count_matching(&cap_s, "ip and net 203.0.113.0/24");
    let seen_c = count_matching(&cap_c, "ip and src net 203.0.113.0/24");
    let seen_s = count_matching(&cap_s, &format!("ip and src host {CLIENT}"));
    say(&format!(
        "client saw {seen_c} packets from EIPs, {leaks_c} with a server address; servers saw {seen_s} from the client, {leaks_s} with an EIP"
    ));
    assert!(seen_c > 10 && seen_s > 10, "the captures saw the traffic");
    assert_eq!((leaks_c, leaks_s), (0, 0), "untranslated packets leaked");

    // The recording of what dnatsim sent is a valid pcapng with both sides.
    let sent = lab.dir.path().join("sent.pcapng");
    let sent_out = count_matching(&sent, "src net 203.0.113.0/24");
    say(&format!(
        "--pcap-out: {sent_out} packets from EIPs recorded"
    ));
    assert!(sent_out > 0);
    drop(lab);
}

#[test]
fn live_between_veth_interfaces() {
    scenario(Mode::Veth);
}

#[test]
fn live_between_tap_devices() {
    scenario(Mode::Tap);
}

#[test]
fn live_reports_a_missing_interface_and_leaves_no_tap_behind() {
    if let Some(why) = cannot_run() {
        common::skip_or_fail(&format!("live error test: {why}"));
        return;
    }
    clean_leftovers();
    let lab = Lab::new(Mode::Veth, "e");
    std::fs::write(lab.rules_path(), rules_toml("")).expect("write the rules");
    let rules = lab.rules_path().display().to_string();
    let bin = env!("CARGO_BIN_EXE_dnatsim");
    let out = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &lab.gw, bin, "live", "-r", &rules,
        ])
        .args([
            "--outside",
            "nosuch0",
            "--inside",
            "lo",
            "--inside-ip",
            GW_INSIDE,
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no interface named nosuch0"), "{err}");
    // A down interface.
    ok(
        None,
        &[
            "ip", "link", "add", "dx0", "netns", &lab.gw, "type", "veth", "peer", "name", "dx1",
            "netns", &lab.gw,
        ],
    );
    let out = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &lab.gw, bin, "live", "-r", &rules,
        ])
        .args([
            "--outside",
            "dx0",
            "--inside",
            "dx1",
            "--inside-ip",
            GW_INSIDE,
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("interface dx0 is down"), "{err}");
    // TAP: the second name is taken by an existing veth, so creation fails after the first
    // TAP was made; that one must be gone again.
    let out = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &lab.gw, bin, "live", "-r", &rules,
        ])
        .args([
            "--tap-outside",
            "dn-first",
            "--tap-inside",
            "dx0",
            "--inside-ip",
            GW_INSIDE,
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("TAP device dx0"), "{err}");
    let links = ok(Some(&lab.gw), &["ip", "link"]);
    assert!(
        !links.contains("dn-first"),
        "a TAP device was left behind: {links}"
    );
    // Without CAP_NET_RAW / CAP_NET_ADMIN (dropped from the bounding set by capsh, when it is
    // installed): a message that says so, for both kinds of device.
    let capsh = Command::new("sh")
        .args(["-c", "command -v capsh"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if capsh {
        for dev in ["dx0", "dx1"] {
            ok(Some(&lab.gw), &["ip", "link", "set", dev, "up"]);
        }
        for devices in [
            "--outside dx0 --inside dx1",
            "--tap-outside dn-p0 --tap-inside dn-p1",
        ] {
            let cmd = format!("{bin} live -r {rules} {devices} --inside-ip {GW_INSIDE}");
            let out = Command::new("timeout")
                .args(["20", "ip", "netns", "exec", &lab.gw, "capsh"])
                .args(["--drop=cap_net_raw,cap_net_admin", "--", "-c", &cmd])
                .output()
                .expect("runs");
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{err}");
            assert!(err.contains("no permission to"), "{err}");
            assert!(err.contains("CAP_NET_RAW and CAP_NET_ADMIN"), "{err}");
        }
        let links = ok(Some(&lab.gw), &["ip", "link"]);
        assert!(
            !links.contains("dn-p0"),
            "a TAP device was left behind: {links}"
        );
    } else {
        println!("(capsh is not installed: the permission errors were not checked)");
    }
    // A rules error names the file.
    std::fs::write(lab.rules_path(), "[gateway\n").expect("write");
    let out = Command::new("timeout")
        .args([
            "20", "ip", "netns", "exec", &lab.gw, bin, "live", "-r", &rules,
        ])
        .args([
            "--tap-outside",
            "dn-a",
            "--tap-inside",
            "dn-b",
            "--inside-ip",
            GW_INSIDE,
        ])
        .output()
        .expect("runs");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("rules.toml"), "{err}");
    println!(
        "errors: missing interface, down interface, TAP name taken, {}bad rules: all reported; nothing left behind",
        if capsh { "no permission, " } else { "" }
    );
}

/// The reload's core, without namespaces: flows move to a new table when their entry has a
/// twin there (renumbered), and are removed when it is gone.
#[test]
fn a_reload_keeps_the_flows_of_entries_that_remain() {
    use common::{CLIENT as C, ECS as E, IP1, IP3, seed_entries, seed_ips, tcp};
    use dnatsim::nat::{Config, ForwardTable, Translator, TranslatorState, Verdict};
    let old = ForwardTable::new(&seed_entries(), &seed_ips());
    let mut t = Translator::new(&old, Config::default());
    let to_ecs1 = common::run(&mut t, &mut tcp(C, 40000, IP1, 7000, 64, b"x"), 1, 1_000);
    let to_ecs3 = common::run(&mut t, &mut tcp(C, 40001, IP3, 80, 64, b"x"), 1, 1_000);
    assert!(matches!(to_ecs1.verdict, Verdict::Inbound { entry: 0, .. }));
    assert!(matches!(to_ecs3.verdict, Verdict::Inbound { entry: 2, .. }));
    let mut state: TranslatorState = t.into_state();
    // The new file: IP3's port 80 entry is gone, the IP1 entry moved to the end with a new id.
    let mut entries = seed_entries();
    let first = entries.remove(0);
    entries.retain(|e| {
        e.external_ip != std::net::Ipv4Addr::from(IP3)
            || e.external_port != dnatsim::rules::PortSpec::Single(80)
    });
    entries.push(dnatsim::rules::ForwardEntry {
        id: "fwd-renamed".into(),
        ..first
    });
    let new = ForwardTable::new(&entries, &seed_ips());
    let r = state.rebind(&old, &new);
    assert_eq!((r.kept, r.removed), (1, 1));
    let mut t = Translator::with_state(&new, state);
    let last = (new.entries().len() - 1) as u32;
    // ECS1's reply uses the kept binding, now numbered as the moved entry.
    let reply = common::run(&mut t, &mut tcp(E[0], 7000, C, 40000, 64, b"y"), 1, 2_000);
    assert!(
        matches!(reply.verdict, Verdict::Outbound { entry, .. } if entry == last),
        "{reply:?}"
    );
    // ECS3's flow went with its entry: the client's next segment has no rule now.
    let again = common::run(&mut t, &mut tcp(C, 40001, IP3, 80, 64, b"x"), 1, 2_000);
    assert!(
        matches!(
            again.verdict,
            Verdict::Drop(dnatsim::nat::DropReason::NoRule)
        ),
        "{again:?}"
    );
}
