//! The bandwidth package end to end: generated captures of the seed scenario replayed through
//! `dnatsim replay` (and `pipeline::replay`), judged by the JSON report and the output capture.
//!
//! Big captures never touch the disk: a generator is rendered as pcap on the fly and piped into
//! `dnatsim replay -`, while the feeding thread counts what it offered per direction, so the
//! report is checked against an independent count of its input.

use dnatsim::capture::{CaptureReader, CaptureWriter, RecordMeta, WriterConfig};
use dnatsim::nat::ForwardTable;
use dnatsim::pipeline::{Quiet, ReplayOptions, replay};
use dnatsim::report::Report;
use dnatsim::rules::Rules;
use dnatsim::traffic::{GenConfig, Generator, Mix};
use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};

const RULES: &str = "pcaps/seed/rules.toml";
const SEC: u64 = 1_000_000_000;
const RATE: u64 = 150_000_000;
/// The mean IPv4 total length of the simple IMIX (7 × 40 + 4 × 576 + 1 × 1500) / 12, in bits.
const IMIX_MEAN_BITS: f64 = (7.0 * 40.0 + 4.0 * 576.0 + 1500.0) / 12.0 * 8.0;
/// The largest packet of the mixes, in bits: one packet is the granularity of any rate.
const MAX_PACKET_BITS: u64 = 1500 * 8;
const DIRS: [&str; 2] = ["inbound", "outbound"];

/// What a generated capture offers in one direction.
#[derive(Debug, Default, Clone, Copy)]
struct Side {
    packets: u64,
    bits: u64,
}

/// What a generated capture offers: per direction, and its time span.
#[derive(Debug, Default, Clone, Copy)]
struct Offered {
    inbound: Side,
    outbound: Side,
    first_ns: u64,
    last_ns: u64,
}

impl Offered {
    fn side(&self, dir: &str) -> Side {
        if dir == "inbound" {
            self.inbound
        } else {
            self.outbound
        }
    }

    fn span_ns(&self) -> u64 {
        self.last_ns - self.first_ns
    }
}

/// A pcap (nanosecond, Ethernet) rendered from a generator as it is read.
struct GenPcap {
    generator: Generator,
    eips: Vec<[u8; 4]>,
    frame: Vec<u8>,
    pending: Vec<u8>,
    pos: usize,
    offered: Offered,
    /// What was offered, published when the capture ends (the reader owns the source).
    done: Arc<Mutex<Offered>>,
}

impl GenPcap {
    fn new(rules: &Rules, config: &GenConfig) -> GenPcap {
        let mut pending = Vec::with_capacity(4096);
        pending.extend_from_slice(&0xa1b2_3c4du32.to_le_bytes());
        pending.extend_from_slice(&2u16.to_le_bytes());
        pending.extend_from_slice(&4u16.to_le_bytes());
        pending.extend_from_slice(&[0; 8]);
        pending.extend_from_slice(&65535u32.to_le_bytes());
        pending.extend_from_slice(&1u32.to_le_bytes());
        GenPcap {
            generator: Generator::new(rules, config).unwrap(),
            eips: rules
                .bandwidth_package
                .public_ips
                .iter()
                .map(|ip| ip.octets())
                .collect(),
            frame: Vec::with_capacity(2048),
            pending,
            pos: 0,
            offered: Offered::default(),
            done: Arc::default(),
        }
    }

    /// Counts a generated frame: to an EIP is inbound, everything else (the IMIX and UDP mixes
    /// only make matched traffic) is a reply from a server.
    fn count(&mut self, ts_ns: u64) {
        let f = &self.frame;
        assert_eq!(&f[12..14], &[0x08, 0x00], "the mixes here are all IPv4");
        let bits = u64::from(u16::from_be_bytes([f[16], f[17]])) * 8;
        let dst: [u8; 4] = f[30..34].try_into().unwrap();
        let side = if self.eips.contains(&dst) {
            &mut self.offered.inbound
        } else {
            &mut self.offered.outbound
        };
        side.packets += 1;
        side.bits += bits;
        if self.offered.inbound.packets + self.offered.outbound.packets == 1 {
            self.offered.first_ns = ts_ns;
        }
        self.offered.last_ns = ts_ns;
    }
}

impl Read for GenPcap {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.pos == self.pending.len() {
            let Some(ts_ns) = self.generator.next_packet(&mut self.frame) else {
                if let Ok(mut done) = self.done.lock() {
                    *done = self.offered;
                }
                return Ok(0);
            };
            self.count(ts_ns);
            let len = self.frame.len() as u32;
            self.pending.clear();
            self.pos = 0;
            self.pending
                .extend_from_slice(&((ts_ns / SEC) as u32).to_le_bytes());
            self.pending
                .extend_from_slice(&((ts_ns % SEC) as u32).to_le_bytes());
            self.pending.extend_from_slice(&len.to_le_bytes());
            self.pending.extend_from_slice(&len.to_le_bytes());
            self.pending.extend_from_slice(&self.frame);
        }
        let n = out.len().min(self.pending.len() - self.pos);
        out[..n].copy_from_slice(&self.pending[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The seed rules with `extra` lines added to the bandwidth package.
fn rules_text(extra: &str) -> String {
    let seed = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES)).unwrap();
    let key = "bandwidth_mbps = 150\n";
    assert!(seed.contains(key), "the seed package is 150 Mbps");
    seed.replacen(key, &format!("{key}{extra}\n"), 1)
}

fn parse_rules(text: &str) -> Rules {
    dnatsim::rules::parse_str(text, "rules.toml").unwrap().rules
}

/// IMIX of the seed scenario at `total_mbps` (both directions together) lasting about `secs`.
fn imix(total_mbps: f64, secs: f64) -> GenConfig {
    GenConfig {
        mix: Mix::Imix,
        rate_mbps: total_mbps,
        packets: (total_mbps * 1e6 * secs / IMIX_MEAN_BITS) as u64,
        ..GenConfig::default()
    }
}

fn dnatsim(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_dnatsim"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the binary runs")
}

fn ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Pipes the generated capture into `dnatsim replay - -r RULES ARGS`; returns what was offered.
fn replay_stdin(rules: &Path, config: &GenConfig, args: &[&str]) -> Offered {
    let mut child = Command::new(env!("CARGO_BIN_EXE_dnatsim"))
        .args(["replay", "-", "-q", "-r", rules.to_str().unwrap()])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut stdin = child.stdin.take().unwrap();
    let mut source = GenPcap::new(
        &parse_rules(&std::fs::read_to_string(rules).unwrap()),
        config,
    );
    let feeder = std::thread::spawn(move || {
        std::io::copy(&mut source, &mut stdin).unwrap();
        source.offered
    });
    let o = child.wait_with_output().unwrap();
    ok(&o);
    feeder.join().unwrap()
}

fn read_report(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

/// Carried bits per whole second since the first packet, from a direction's intervals, for
/// the seconds that lie entirely before `until_ns` (relative to the first packet).
fn carried_per_second(bw: &Value, dir: &str, until_ns: u64) -> Vec<u64> {
    let interval = u(&bw["config"]["interval_ns"]);
    assert_eq!(SEC % interval, 0, "intervals tile seconds");
    let whole = (until_ns / SEC) as usize;
    let mut secs = vec![0u64; whole];
    for r in bw[dir]["intervals"].as_array().unwrap() {
        let s = (u(&r["index"]) * interval / SEC) as usize;
        if let Some(slot) = secs.get_mut(s) {
            *slot += u(&r["carried_bits"]);
        }
    }
    secs
}

/// The report's counters add up: every packet in is out or dropped, and rate-limited packets
/// are attributed to entries, and to EIPs in the package's order, summing to the total.
fn check_attribution(r: &Value, public_ips: &[std::net::Ipv4Addr]) -> u64 {
    let dropped: u64 = r["dropped"].as_object().unwrap().values().map(u).sum();
    assert_eq!(u(&r["packets_in"]), u(&r["packets_out"]) + dropped);
    let limited = u(&r["dropped"]["rate_limited"]);
    let entries = r["entries"].as_array().unwrap();
    let eips = r["eips"].as_array().unwrap();
    let sum = |rows: &[Value], key: &str| rows.iter().map(|e| u(&e[key])).sum::<u64>();
    assert_eq!(sum(entries, "rate_limited"), limited);
    assert_eq!(sum(eips, "rate_limited"), limited);
    for key in ["packets", "bytes"] {
        assert_eq!(sum(eips, key), sum(entries, key), "{key}");
    }
    let ips: Vec<String> = eips
        .iter()
        .map(|e| e["ip"].as_str().unwrap().to_string())
        .collect();
    let want: Vec<String> = public_ips.iter().map(|ip| ip.to_string()).collect();
    assert_eq!(ips, want, "the package's EIPs, in its order");
    for e in eips {
        let of_ip: Vec<&Value> = entries
            .iter()
            .filter(|x| x["external_ip"] == e["ip"])
            .collect();
        for key in ["packets", "bytes", "rate_limited"] {
            assert_eq!(
                u(&e[key]),
                of_ip.iter().map(|x| u(&x[key])).sum::<u64>(),
                "{} {key}",
                e["ip"]
            );
        }
    }
    limited
}

#[test]
fn police_holds_each_direction_at_the_cap() {
    // 600 Mbps in total is 300 Mbps per direction, twice the rate of each direction's bucket.
    let dir = tempfile::tempdir().unwrap();
    let rep = dir.path().join("r.json");
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join(RULES);
    let offered = replay_stdin(
        &rules,
        &imix(600.0, 10.0),
        &["--report", rep.to_str().unwrap()],
    );
    let r = read_report(&rep);
    let bw = &r["bandwidth"];
    assert_eq!(bw["config"]["mode"], "police");
    assert_eq!(u(&bw["config"]["rate_bps"]), RATE);
    assert_eq!(u(&bw["origin_ns"]), offered.first_ns);
    let burst_bits = u(&bw["config"]["burst_bytes"]) * 8;
    let span = offered.span_ns();
    assert!(span > 9 * SEC, "about 10 s of capture: {span} ns");
    let mut dropped_packets = 0;
    for d in DIRS {
        let side = offered.side(d);
        let t = &bw[d]["totals"];
        assert_eq!(u(&t["offered_packets"]), side.packets, "{d}");
        assert_eq!(u(&t["offered_bits"]), side.bits, "{d}");
        assert!(side.bits * SEC > 280_000_000 * span, "{d} offers ~300 Mbps");
        assert_eq!(
            u(&t["carried_bits"]) + u(&t["dropped_bits"]),
            u(&t["offered_bits"])
        );
        assert_eq!(
            u(&t["carried_packets"]) + u(&t["dropped_packets"]),
            side.packets
        );
        // Never more than the rate over the run plus one bucket.
        assert!(
            u128::from(u(&t["carried_bits"])) * u128::from(SEC)
                <= u128::from(RATE) * u128::from(span) + u128::from(burst_bits) * u128::from(SEC),
            "{d}: {t}"
        );
        // Every whole second after the first carries the rate to within 0.5 %.
        let secs = carried_per_second(bw, d, span);
        assert!(secs.len() >= 9, "{secs:?}");
        for (i, &bits) in secs.iter().enumerate().skip(1) {
            let err = (bits as f64 - RATE as f64).abs() / RATE as f64;
            assert!(err <= 0.005, "{d} second {i}: {bits} bits ({err:.5})");
        }
        dropped_packets += u(&t["dropped_packets"]);
    }
    let pkg = parse_rules(&rules_text("")).bandwidth_package;
    let limited = check_attribution(&r, &pkg.public_ips);
    assert!(limited > 0);
    assert_eq!(limited, dropped_packets);
    // The backup EIP has no entry, so nothing of it is counted or dropped.
    let ip5 = r["eips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["ip"] == "203.0.113.58")
        .unwrap();
    assert_eq!((u(&ip5["packets"]), u(&ip5["rate_limited"])), (0, 0));
    // Every entry carries traffic here, so every entry has its share of the drops.
    for e in r["entries"].as_array().unwrap() {
        assert!(u(&e["rate_limited"]) > 0, "{e}");
    }
}

#[test]
fn below_the_cap_the_package_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.pcap");
    // 50 Mbps in total: 25 Mbps per direction against a 150 Mbps bucket each.
    let rules = parse_rules(&rules_text(""));
    let mut generator = Generator::new(&rules, &imix(50.0, 2.0)).unwrap();
    let mut w = CaptureWriter::create(&input, &WriterConfig::pcap(1, 65535, true)).unwrap();
    let mut frame = Vec::new();
    while let Some(ts) = generator.next_packet(&mut frame) {
        let meta = RecordMeta {
            ts_ns: ts as i64,
            orig_len: frame.len() as u32,
            interface: 0,
        };
        w.write_record(&meta, &frame, None).unwrap();
    }
    w.finish().unwrap();
    let p = |n: &str| dir.path().join(n);
    let path = |b: &PathBuf| b.to_str().unwrap().to_string();
    let (a, b, ra, rb) = (p("a.pcap"), p("b.pcap"), p("a.json"), p("b.json"));
    let i = path(&input);
    let replay = |out: &PathBuf, report: &PathBuf, extra: &[&str]| {
        let (out, report) = (path(out), path(report));
        let mut args = vec![
            "replay", &i, "-r", RULES, "-q", "-o", &out, "--report", &report,
        ];
        args.extend_from_slice(extra);
        ok(&dnatsim(&args));
    };
    replay(&a, &ra, &[]);
    replay(&b, &rb, &["--no-bandwidth"]);
    let with = read_report(&ra);
    let without = read_report(&rb);
    assert_eq!(u(&with["dropped"]["rate_limited"]), 0);
    check_attribution(&with, &rules.bandwidth_package.public_ips);
    for d in DIRS {
        let t = &with["bandwidth"][d]["totals"];
        assert!(u(&t["offered_packets"]) > 0, "{d}");
        assert_eq!(u(&t["dropped_packets"]), 0, "{d}");
        assert!(u(&t["peak_offered_bps"]) < RATE, "{d} stays below the cap");
    }
    assert!(without.get("bandwidth").is_none());
    assert_eq!(with["packets_out"], without["packets_out"]);
    assert_eq!(with["entries"], without["entries"]);
    assert_eq!(with["eips"], without["eips"]);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
}

/// Output packets per direction, judged by the translated addresses, and whether their
/// timestamps never go backwards.
fn read_output(path: &Path, rules: &Rules) -> (u64, u64, bool) {
    let eips: Vec<[u8; 4]> = rules
        .bandwidth_package
        .public_ips
        .iter()
        .map(|ip| ip.octets())
        .collect();
    let servers: Vec<[u8; 4]> = rules
        .forward_entries
        .iter()
        .map(|e| e.internal_ip.octets())
        .collect();
    let mut r = CaptureReader::open(path).unwrap();
    let (mut inbound, mut outbound, mut ordered, mut last) = (0, 0, true, i64::MIN);
    while let Some(p) = r.next_packet().unwrap() {
        ordered &= p.ts_ns >= last;
        last = p.ts_ns;
        let src: [u8; 4] = p.data[26..30].try_into().unwrap();
        let dst: [u8; 4] = p.data[30..34].try_into().unwrap();
        if servers.contains(&dst) {
            inbound += 1;
        } else {
            assert!(
                eips.contains(&src),
                "an output packet is a reply from an EIP"
            );
            outbound += 1;
        }
    }
    (inbound, outbound, ordered)
}

#[test]
fn shape_with_a_large_queue_delays_instead_of_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        rules_text("mode = \"shape\"\nqueue_limit_bytes = 1_000_000_000\nlatency_ms = 60_000");
    let rules_path = dir.path().join("shape.toml");
    std::fs::write(&rules_path, &text).unwrap();
    let rules = parse_rules(&text);
    let (out, rep) = (dir.path().join("out.pcap"), dir.path().join("r.json"));
    // Half a second at 300 Mbps per direction: the queues drain for about half a second more.
    let offered = replay_stdin(
        &rules_path,
        &imix(600.0, 0.5),
        &[
            "-o",
            out.to_str().unwrap(),
            "--report",
            rep.to_str().unwrap(),
        ],
    );
    let r = read_report(&rep);
    assert_eq!(u(&r["dropped"]["rate_limited"]), 0);
    check_attribution(&r, &rules.bandwidth_package.public_ips);
    let bw = &r["bandwidth"];
    assert_eq!(bw["config"]["mode"], "shape");
    let burst_bits = u(&bw["config"]["burst_bytes"]) * 8;
    let (inbound, outbound, ordered) = read_output(&out, &rules);
    assert!(ordered, "shaped output leaves in departure order");
    assert_eq!(
        (inbound, outbound),
        (offered.inbound.packets, offered.outbound.packets)
    );
    for d in DIRS {
        let side = offered.side(d);
        let t = &bw[d]["totals"];
        assert_eq!(u(&t["dropped_packets"]), 0, "{d}");
        assert_eq!(u(&t["carried_bits"]), side.bits, "{d}");
        // While the queue is busy, every 100 ms interval but the first (which spends the burst)
        // and the last (the queue empties in it) carries the rate, to within a packet either side.
        let iv = bw[d]["intervals"].as_array().unwrap();
        assert!(iv.len() >= 9, "{d}: {} intervals", iv.len());
        for x in &iv[1..iv.len() - 1] {
            let bits = u(&x["carried_bits"]);
            assert!(
                bits.abs_diff(RATE / 10) <= 2 * MAX_PACKET_BITS,
                "{d} interval {}: {bits}",
                x["index"]
            );
        }
        // The last packet waits for everything offered before it, less the burst, at the rate.
        let drain_ns =
            (u128::from(side.bits - burst_bits) * u128::from(SEC) / u128::from(RATE)) as u64;
        let want = drain_ns - offered.span_ns();
        let worst = u(&t["worst_queue_delay_ns"]);
        assert!(
            worst.abs_diff(want) <= 1_000_000,
            "{d}: worst delay {worst} ns, expected about {want} ns"
        );
        let mut p50_first = None;
        for x in iv.iter().filter(|x| u(&x["offered_bits"]) > 0) {
            let (p50, p99, max) = (
                u(&x["delay_p50_ns"]),
                u(&x["delay_p99_ns"]),
                u(&x["delay_max_ns"]),
            );
            assert!(p50 <= p99 && p99 <= max && max <= worst, "{d}: {x}");
            p50_first.get_or_insert(p50);
        }
        let last = iv.iter().rev().find(|x| u(&x["offered_bits"]) > 0).unwrap();
        assert!(
            u(&last["delay_p50_ns"]) > p50_first.unwrap(),
            "{d}: the queue grows"
        );
    }
}

/// Replays a generated capture through the library, writing the output to `out` when given;
/// returns the report (as the CLI writes it) and what was offered.
fn replay_lib(rules: &Rules, config: &GenConfig, out: Option<&Path>) -> (Value, Offered) {
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let limiter =
        dnatsim::bandwidth::LimiterConfig::resolve(&rules.bandwidth_package, SEC / 10).unwrap();
    let options = ReplayOptions {
        bandwidth: Some(limiter),
        ..ReplayOptions::default()
    };
    let source = GenPcap::new(rules, config);
    let offered = source.done.clone();
    let mut reader = CaptureReader::from_reader(Box::new(source)).unwrap();
    let mut writer = out.map(|o| CaptureWriter::create(o, &WriterConfig::like(&reader)).unwrap());
    let result = replay(&mut reader, writer.as_mut(), &table, &options, &mut Quiet).unwrap();
    if let Some(w) = writer {
        w.finish().unwrap();
    }
    let mut report = Report::new(
        "-".into(),
        RULES.into(),
        &result.counters,
        &table,
        &rules.bandwidth_package.public_ips,
        result.flows,
        result.warnings,
    );
    report.bandwidth = Some(serde_json::to_value(result.bandwidth.unwrap()).unwrap());
    let offered = *offered.lock().unwrap();
    (serde_json::to_value(report).unwrap(), offered)
}

#[test]
fn shape_with_a_small_queue_tail_drops() {
    let dir = tempfile::tempdir().unwrap();
    // Shape with its defaults: 50 ms of latency, a queue of 50 ms at the rate.
    let rules = parse_rules(&rules_text("mode = \"shape\""));
    let out = dir.path().join("out.pcap");
    let (r, offered) = replay_lib(&rules, &imix(600.0, 1.0), Some(&out));
    let limited = check_attribution(&r, &rules.bandwidth_package.public_ips);
    assert!(limited > 0);
    let bw = &r["bandwidth"];
    let latency_ns = u(&bw["config"]["latency_ms"]) * 1_000_000;
    assert_eq!(latency_ns, 50_000_000, "the default");
    let (inbound, outbound, ordered) = read_output(&out, &rules);
    assert!(ordered, "shaped output leaves in departure order");
    let mut dropped = 0;
    for (d, written) in [("inbound", inbound), ("outbound", outbound)] {
        let side = offered.side(d);
        let t = &bw[d]["totals"];
        let tail = u(&t["dropped_queue_full_packets"]) + u(&t["dropped_latency_packets"]);
        assert!(tail > 0, "{d}: tail drops");
        assert_eq!(
            u(&t["dropped_packets"]),
            tail,
            "{d}: shape drops only at the tail"
        );
        assert_eq!(u(&t["offered_packets"]), side.packets, "{d}");
        assert_eq!(u(&t["carried_packets"]), written, "{d}");
        assert_eq!(
            written + tail,
            side.packets,
            "{d}: carried + dropped == offered"
        );
        assert!(u(&t["worst_queue_delay_ns"]) <= latency_ns, "{d}: {t}");
        dropped += tail;
    }
    assert_eq!(limited, dropped);
}

#[test]
fn an_inbound_only_package_never_limits_outbound() {
    let rules = parse_rules(&rules_text("directions = [\"inbound\"]"));
    let (r, offered) = replay_lib(&rules, &imix(600.0, 1.0), None);
    let bw = &r["bandwidth"];
    assert_eq!(bw["config"]["directions"], serde_json::json!(["inbound"]));
    let (i, o) = (&bw["inbound"], &bw["outbound"]);
    assert_eq!(
        (i["limited"].as_bool(), o["limited"].as_bool()),
        (Some(true), Some(false))
    );
    let ot = &o["totals"];
    assert_eq!(u(&ot["offered_packets"]), offered.outbound.packets);
    assert_eq!(u(&ot["dropped_packets"]), 0);
    assert_eq!(u(&ot["carried_bits"]), offered.outbound.bits);
    // Outbound runs at what it is offered, about twice the package's rate.
    assert!(u(&ot["peak_carried_bps"]) > RATE * 3 / 2, "{ot}");
    let inbound_drops = u(&i["totals"]["dropped_packets"]);
    assert!(inbound_drops > 0);
    assert_eq!(
        check_attribution(&r, &rules.bandwidth_package.public_ips),
        inbound_drops
    );
    assert_eq!(
        u(&r["packets_out"]),
        offered.inbound.packets + offered.outbound.packets - inbound_drops
    );
}

#[test]
fn plot_draws_the_cap_and_needs_the_package() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("plot.svg");
    let svg_arg = svg.to_str().unwrap();
    let capture = "pcaps/seed/capture.pcap";
    ok(&dnatsim(&[
        "replay", capture, "-r", RULES, "-q", "--plot", svg_arg,
    ]));
    let text = std::fs::read_to_string(&svg).unwrap();
    assert!(text.contains("<svg"), "an SVG");
    assert!(text.contains("150 Mbps cap"), "the cap is labelled");
    std::fs::remove_file(&svg).unwrap();
    let o = dnatsim(&[
        "replay",
        capture,
        "-r",
        RULES,
        "-q",
        "--plot",
        svg_arg,
        "--no-bandwidth",
    ]);
    // A command line that cannot work is a usage error, before any work.
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--no-bandwidth"));
    assert!(!svg.exists(), "no plot is written");
}
