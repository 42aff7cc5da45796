//! Live mode: dnatsim as the gateway itself, between two interfaces (AF_PACKET) or two TAP
//! devices it creates, on the wall clock.
//!
//! The same translator, flow table, bandwidth package and counters as a replay; this module
//! adds layer 2 as a cloud gateway does it (ARP for the EIPs outside, for the gateway's own
//! address inside, neighbour resolution both ways), the driver loop, reloads and signals.
//!
//! The per-packet path (`Engine::ipv4` and what it calls) allocates nothing, formats nothing
//! and takes no lock: buffers, the neighbour caches and their queues are made at start.

pub mod arp;
pub mod io;
pub mod shape;

use crate::bandwidth::{
    self, BandwidthError, BandwidthStats, Clock, Direction, Limiter, WallClock,
};
use crate::capture::{CaptureError, CaptureWriter, Interface, RecordMeta, WriterConfig};
use crate::nat::DropReason;
use crate::nat::{
    Config, Event, FlowStats, ForwardTable, Outcome, PacketMeta, Translator, TranslatorState,
    Verdict,
};
use crate::report::Counters;
use crate::rules::{CountMode, LimitMode, Rules};
use arp::{ARP_FRAME_LEN, ETHERTYPE_ARP, ETHERTYPE_IPV4, NeighbourStats, Neighbours, Resolve};
use io::{PacketSocket, Port, RxBatch, Tap};
use serde::Serialize;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use thiserror::Error;

/// The pcap link type of every frame here.
const LINKTYPE_ETHERNET: u16 = 1;
/// The side facing the clients (and the pcapng interface number of what leaves there).
pub const OUTSIDE: usize = 0;
/// The side facing the servers.
pub const INSIDE: usize = 1;
/// Neighbours remembered per side.
const NEIGHBOURS: usize = 4096;
/// How often timers (ARP retries, stats, the rules file's change check) are looked at.
const TICK_NS: u64 = 100_000_000;
/// How often the rules file is checked for a change.
const WATCH_NS: u64 = 1_000_000_000;
/// The bandwidth report's interval in live mode (a run can last days).
const BANDWIDTH_INTERVAL_NS: u64 = 1_000_000_000;

/// Why live mode could not start or stopped.
#[derive(Debug, Error)]
pub enum LiveError {
    /// No interface has the name.
    #[error("no interface named {0} (see `ip link`)")]
    NoInterface(String),
    /// The interface exists but is administratively down.
    #[error("interface {0} is down (`ip link set {0} up`)")]
    Down(String),
    /// The operating system refused for want of privilege.
    #[error(
        "no permission to {what} (live mode needs root, or CAP_NET_RAW and CAP_NET_ADMIN): {source}"
    )]
    Permission {
        /// What was attempted.
        what: String,
        /// The refusal.
        source: std::io::Error,
    },
    /// Another system call failed.
    #[error("cannot {what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The failure.
        source: std::io::Error,
    },
    /// A device name the kernel would not take.
    #[error("bad device name {0:?} (1 to 15 characters, no '/' or spaces)")]
    BadName(String),
    /// The two sides name the same device.
    #[error("--outside and --inside name the same device {0}")]
    SameDevice(String),
    /// The bandwidth package cannot be applied.
    #[error(transparent)]
    Bandwidth(#[from] BandwidthError),
    /// Writing `--pcap-out` failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// Writing `--pcap-out` failed during the run (the gateway went on without it).
    #[error("writing {0} failed during the run; it was not kept")]
    PcapFailed(PathBuf),
}

/// Which devices the gateway runs between.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Devices {
    /// Existing interfaces, attached with AF_PACKET.
    Interfaces {
        /// Faces the clients.
        outside: String,
        /// Faces the servers.
        inside: String,
        /// Use pnet's datalink channel (a frame per system call) instead of batches.
        pnet: bool,
    },
    /// TAP devices that dnatsim creates and removes.
    Tap {
        /// Faces the clients.
        outside: String,
        /// Faces the servers.
        inside: String,
    },
}

/// How a live run is set up.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    /// The rules file, read again on SIGHUP or when it changes.
    pub rules_path: PathBuf,
    /// The two devices.
    pub devices: Devices,
    /// The gateway's address on the inside (the servers' default route).
    pub inside_ip: Ipv4Addr,
    /// Translator settings.
    pub translator: Config,
    /// Apply the bandwidth package.
    pub bandwidth: bool,
    /// Record what is sent here (pcapng, interface 0 outside, 1 inside).
    pub pcap_out: Option<PathBuf>,
    /// Report statistics this often (nanoseconds).
    pub stats_interval_ns: Option<u64>,
    /// Report the first N IPv4 packets' outcomes.
    pub trace: u64,
    /// After a frame, keep polling without sleeping for this many microseconds (0: always
    /// sleep in poll until a frame comes).
    pub spin_us: u64,
}

/// Sees what a live run does, for printing; called outside the per-packet path except
/// `packet`, which is called for the first `trace` packets only.
pub trait LiveObserver {
    /// A traced packet's outcome (`record` counts IPv4 packets from 1).
    fn packet(&mut self, _record: u64, _outcome: &Outcome, _table: &ForwardTable) {}
    /// The periodic statistics.
    fn stats(&mut self, _stats: &LiveStats) {}
    /// The rules were reloaded (`Ok`) or the new file was refused (`Err` with the message).
    fn reload(&mut self, _result: Result<&ReloadDone, &str>) {}
    /// Something worth a warning line.
    fn note(&mut self, _text: &str) {}
}

/// A successful reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReloadDone {
    /// Entries in the new table.
    pub entries: usize,
    /// Flows kept (their entry still exists).
    pub flows_kept: u64,
    /// Flows removed (their entry is gone).
    pub flows_removed: u64,
}

/// A snapshot for the periodic statistics line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveStats {
    /// Nanoseconds since the start.
    pub elapsed_ns: u64,
    /// Packets and bytes sent toward the servers (inbound) and the clients (outbound).
    pub sent: [(u64, u64); 2],
    /// Drops by reason, indexed like [`DropReason::ALL`].
    pub dropped: [u64; 7],
    /// Packets whose next hop never answered ARP (or whose queue was full).
    pub unresolved: u64,
    /// Flows alive now.
    pub flows: usize,
}

/// Reload figures for the report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReloadReport {
    /// Reloads applied.
    pub applied: u64,
    /// New files refused (the old table stayed).
    pub refused: u64,
    /// Flows kept across reloads.
    pub flows_kept: u64,
    /// Flows removed because their entry was gone.
    pub flows_removed: u64,
}

/// What live mode counted beyond a replay's counters (the report's `live` key).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct LiveReport {
    /// The devices, as "outside" and "inside".
    pub outside: String,
    /// See `outside`.
    pub inside: String,
    /// Seconds the gateway ran.
    pub seconds: f64,
    /// ARP requests for our addresses answered.
    pub arp_replies_sent: u64,
    /// Gratuitous ARP announcements sent (at start and for EIPs a reload adds).
    pub gratuitous_arp_sent: u64,
    /// Frames that were neither IPv4 nor ARP (IPv6, LLDP, ...), or IPv4 not sent to our MAC
    /// address: not forwarded.
    pub frames_ignored: u64,
    /// Frames longer than the buffers (offloads on?): dropped.
    pub frames_too_long: u64,
    /// Packets that were translated in the wrong direction for the side they came in on
    /// (counted as `dropped.foreign` too).
    pub wrong_side: u64,
    /// Frames a device refused to send.
    pub send_errors: u64,
    /// Shape mode: frames the timed transmit queue had no room for (dropped).
    pub shape_queue_full: u64,
    /// Neighbour resolution outside (clients, from the EIPs).
    pub arp_outside: NeighbourStats,
    /// Neighbour resolution inside (servers, from the gateway's address).
    pub arp_inside: NeighbourStats,
    /// Rules reloads.
    pub reloads: ReloadReport,
}

/// What a finished live run counted.
#[derive(Debug)]
pub struct LiveResult {
    /// The same counters a replay keeps.
    pub counters: Counters,
    /// Flow-table counters.
    pub flows: FlowStats,
    /// The bandwidth package's effect, when applied.
    pub bandwidth: Option<BandwidthStats>,
    /// Live mode's own figures.
    pub live: LiveReport,
    /// The rules in force at the end (after reloads).
    pub rules: Rules,
}

/// One side of the gateway.
struct Side {
    port: Box<dyn Port>,
    mac: [u8; 6],
    neigh: Neighbours,
}

/// Why the inner loop returned.
enum Exit {
    Stop,
    Reload(Box<Rules>),
}

/// The signal flags and where they were registered (unregistered on drop).
struct Signals {
    stop: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
    ids: Vec<signal_hook::SigId>,
}

impl Signals {
    fn register() -> Result<Signals, LiveError> {
        let stop = Arc::new(AtomicBool::new(false));
        let hup = Arc::new(AtomicBool::new(false));
        let mut ids = Vec::new();
        let io_err = |source| LiveError::Io {
            what: "install signal handlers".into(),
            source,
        };
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            // Only a flag: a second signal does not cut the clean stop short, since wrappers
            // such as timeout(1) deliver one signal twice (to the child and to its group).
            ids.push(signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(io_err)?);
        }
        ids.push(
            signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
                .map_err(io_err)?,
        );
        Ok(Signals { stop, hup, ids })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        for id in self.ids.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

/// The rules file's identity, to notice a change (a rewrite or a rename over it).
fn file_stamp(path: &Path) -> Option<(std::time::SystemTime, u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len(), m.ino()))
}

/// A locally administered MAC address for dnatsim's end of a TAP device, distinct per side
/// and per process so that two gateways on one host do not collide.
fn tap_mac(side: usize) -> [u8; 6] {
    let pid = std::process::id().to_be_bytes();
    [0x02, 0x64, pid[1], pid[2], pid[3], side as u8 + 1]
}

/// Finds interface `name` in this network namespace: its index and MAC address.
fn find_interface(name: &str) -> Result<(u32, [u8; 6]), LiveError> {
    let Some(ifc) = pnet_datalink::interfaces()
        .into_iter()
        .find(|i| i.name == name)
    else {
        return Err(LiveError::NoInterface(name.to_string()));
    };
    if !ifc.is_up() {
        return Err(LiveError::Down(name.to_string()));
    }
    let mac = ifc.mac.map_or([0; 6], |m| m.octets());
    Ok((ifc.index, mac))
}

/// A side's device and dnatsim's MAC address on it.
type Opened = (Box<dyn Port>, [u8; 6]);

/// Opens the two devices: (outside, inside).
fn open_devices(devices: &Devices) -> Result<[Opened; 2], LiveError> {
    match devices {
        Devices::Interfaces {
            outside,
            inside,
            pnet,
        } => {
            if outside == inside {
                return Err(LiveError::SameDevice(outside.clone()));
            }
            let (oi, omac) = find_interface(outside)?;
            let (ii, imac) = find_interface(inside)?;
            if *pnet {
                let o = io::PnetPort::open(outside)?;
                let i = io::PnetPort::open(inside)?;
                return Ok([(Box::new(o), omac), (Box::new(i), imac)]);
            }
            let o = PacketSocket::open(outside, oi)?;
            let i = PacketSocket::open(inside, ii)?;
            Ok([(Box::new(o), omac), (Box::new(i), imac)])
        }
        Devices::Tap { outside, inside } => {
            if outside == inside {
                return Err(LiveError::SameDevice(outside.clone()));
            }
            // If the second fails, the first is dropped here, which removes it.
            let o = Tap::create(outside)?;
            let i = Tap::create(inside)?;
            Ok([
                (Box::new(o), tap_mac(OUTSIDE)),
                (Box::new(i), tap_mac(INSIDE)),
            ])
        }
    }
}

/// Runs the gateway until SIGINT or SIGTERM. `rules` is the file's content at start (the CLI
/// has printed its warnings); it is read again from `config.rules_path` on SIGHUP or change.
pub fn run(
    config: &LiveConfig,
    rules: Rules,
    observer: &mut impl LiveObserver,
) -> Result<LiveResult, LiveError> {
    let limiter = limiter_for(&rules, config.bandwidth)?;
    let signals = Signals::register()?;
    let [(out_port, out_mac), (in_port, in_mac)] = open_devices(&config.devices)?;
    let writer = match &config.pcap_out {
        Some(path) => {
            let ifc = Interface {
                tsresol: 9,
                ..Interface::new(LINKTYPE_ETHERNET, 0)
            };
            Some(CaptureWriter::create(
                path,
                &WriterConfig::pcapng(vec![ifc, ifc]),
            )?)
        }
        None => None,
    };
    let (outside, inside) = match &config.devices {
        Devices::Interfaces {
            outside, inside, ..
        }
        | Devices::Tap { outside, inside } => (outside.clone(), inside.clone()),
    };
    let clock = WallClock::new();
    let start_ns = clock.now_ns();
    let mut table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let mut engine = Engine {
        sides: [
            Side {
                port: out_port,
                mac: out_mac,
                neigh: Neighbours::new(NEIGHBOURS, io::MAX_FRAME),
            },
            Side {
                port: in_port,
                mac: in_mac,
                neigh: Neighbours::new(NEIGHBOURS, io::MAX_FRAME),
            },
        ],
        rx: Some(RxBatch::default()),
        limiter,
        counters: Counters::new(table.entries().len()),
        live: LiveReport {
            outside,
            inside,
            ..LiveReport::default()
        },
        writer,
        inside_ip: u32::from(config.inside_ip),
        clock,
        start_ns,
        trace_left: config.trace,
        record: 0,
        sent: [(0, 0); 2],
        arp_frame: [0; ARP_FRAME_LEN],
        announced: Vec::new(),
        delay: (rules.bandwidth_package.mode == LimitMode::Shape && config.bandwidth)
            .then(|| Box::new([shape::DelayLine::default(), shape::DelayLine::default()])),
    };
    engine.announce(&table, &rules);
    let mut rules = rules;
    let mut state = TranslatorState::new(config.translator);
    let result = loop {
        let mut translator = Translator::with_state(&table, state);
        let exit = engine.run(&mut translator, config, &signals, observer);
        state = translator.into_state();
        match exit {
            Err(e) => break Err(e),
            Ok(Exit::Stop) => break Ok(()),
            Ok(Exit::Reload(new)) => {
                let new_table =
                    ForwardTable::new(&new.forward_entries, &new.bandwidth_package.public_ips);
                let r = state.rebind(&table, &new_table);
                engine.counters.entries = remap_entries(&engine.counters, &table, &new_table);
                if new.bandwidth_package != rules.bandwidth_package {
                    observer.note(
                        "the reloaded file changes the bandwidth package; the running package stays until restart",
                    );
                }
                table = new_table;
                rules = *new;
                engine.announce(&table, &rules);
                let rel = &mut engine.live.reloads;
                rel.applied += 1;
                rel.flows_kept += r.kept;
                rel.flows_removed += r.removed;
                observer.reload(Ok(&ReloadDone {
                    entries: table.entries().len(),
                    flows_kept: r.kept,
                    flows_removed: r.removed,
                }));
            }
        }
    };
    // Fragments still held cannot be sent any more: they count as orphans.
    let mut translator = Translator::with_state(&table, state);
    translator.finish();
    engine.drain_events(&mut translator, observer);
    let flows = translator.flow_stats();
    drop(translator);
    engine.live.seconds = (engine.clock.now_ns() - engine.start_ns) as f64 / 1e9;
    engine.live.arp_outside = engine.sides[OUTSIDE].neigh.stats();
    engine.live.arp_inside = engine.sides[INSIDE].neigh.stats();
    engine.live.send_errors = engine.sides.iter().map(|s| s.port.send_errors()).sum();
    if let Some(path) = &config.pcap_out
        && engine.writer.is_none()
        && result.is_ok()
    {
        return Err(LiveError::PcapFailed(path.clone()));
    }
    if let Some(w) = engine.writer.take() {
        // On an error the temporary file is removed by the writer's drop instead.
        if result.is_ok() {
            w.finish()?;
        }
    }
    result?;
    Ok(LiveResult {
        counters: engine.counters,
        flows,
        bandwidth: engine.limiter.as_ref().map(|(l, _)| l.stats()),
        live: engine.live,
        rules,
    })
}

/// The limiter for the rules' bandwidth package, when it applies.
fn limiter_for(rules: &Rules, apply: bool) -> Result<Option<(Limiter, CountMode)>, LiveError> {
    if !apply {
        return Ok(None);
    }
    let pkg = &rules.bandwidth_package;
    Ok(Some((
        Limiter::with_interval(pkg, BANDWIDTH_INTERVAL_NS)?,
        pkg.count,
    )))
}

/// Per-entry counters carried to a new table: an entry with a twin (same mapping) keeps its
/// counts; a new entry starts at zero.
fn remap_entries(
    c: &Counters,
    old: &ForwardTable,
    new: &ForwardTable,
) -> Vec<crate::report::EntryCounters> {
    new.entries()
        .iter()
        .map(|n| {
            old.entries()
                .iter()
                .position(|e| {
                    e.external_ip == n.external_ip
                        && e.external_port == n.external_port
                        && e.ip_protocol == n.ip_protocol
                        && e.internal_ip == n.internal_ip
                        && e.internal_port == n.internal_port
                })
                .and_then(|i| c.entries.get(i).copied())
                .unwrap_or_default()
        })
        .collect()
}

/// The gateway's moving parts apart from the translator (which borrows the table).
struct Engine {
    sides: [Side; 2],
    /// Received frames; `None` only while a batch is being handled.
    rx: Option<RxBatch>,
    limiter: Option<(Limiter, CountMode)>,
    counters: Counters,
    live: LiveReport,
    writer: Option<CaptureWriter>,
    inside_ip: u32,
    clock: WallClock,
    start_ns: u64,
    trace_left: u64,
    record: u64,
    /// Packets and bytes sent, by egress side.
    sent: [(u64, u64); 2],
    arp_frame: [u8; ARP_FRAME_LEN],
    /// EIPs already announced with gratuitous ARP.
    announced: Vec<u32>,
    /// Shape mode: frames waiting for their departure, by egress side.
    delay: Option<Box<[shape::DelayLine; 2]>>,
}

impl Engine {
    /// The driver loop: poll both devices, handle what came, run the timers.
    fn run(
        &mut self,
        tr: &mut Translator,
        config: &LiveConfig,
        signals: &Signals,
        observer: &mut impl LiveObserver,
    ) -> Result<Exit, LiveError> {
        let fds = [self.sides[OUTSIDE].port.fd(), self.sides[INSIDE].port.fd()];
        let spin = !self.sides.iter().all(|s| s.port.pollable());
        let spin_ns = config.spin_us * 1_000;
        let mut last_frame_ns = 0;
        let mut next_tick = self.clock.now_ns() + TICK_NS;
        let mut next_watch = self.clock.now_ns() + WATCH_NS;
        let mut next_stats = config
            .stats_interval_ns
            .map(|i| self.clock.now_ns() + i.max(1));
        let mut stamp = file_stamp(&config.rules_path);
        loop {
            if signals.stop.load(Ordering::Relaxed) {
                return Ok(Exit::Stop);
            }
            // Busy for a moment after traffic (the next frame is likely microseconds away, and
            // sleeping and waking for it costs more than looking), asleep in poll otherwise.
            let now = self.clock.now_ns();
            let busy = now.saturating_sub(last_frame_ns) < spin_ns;
            // Sleep at most until the next shaped departure (poll's timeout is in ns here).
            let mut timeout_ns = if busy { 0 } else { 50_000_000 };
            if let Some(delay) = &self.delay {
                for d in delay.iter().filter_map(|l| l.next_departure()) {
                    timeout_ns = timeout_ns.min(d.saturating_sub(now));
                }
            }
            let ready = if spin {
                [true; 2]
            } else {
                io::poll_readable(fds, timeout_ns).map_err(|source| LiveError::Io {
                    what: "wait for frames".into(),
                    source,
                })?
            };
            let mut got = false;
            for (side, &r) in ready.iter().enumerate() {
                if r {
                    got |= self.receive(tr, side, observer)?;
                }
            }
            self.release_shaped();
            for s in &mut self.sides {
                s.port.flush();
            }
            let now = self.clock.now_ns();
            if got {
                last_frame_ns = now;
            }
            if now < next_tick {
                continue;
            }
            next_tick = now + TICK_NS;
            self.tick(now);
            if let Some(at) = next_stats
                && now >= at
            {
                next_stats = config.stats_interval_ns.map(|i| now + i.max(1));
                observer.stats(&self.snapshot(now, tr.flows_alive()));
            }
            let hup = signals.hup.swap(false, Ordering::Relaxed);
            if hup || now >= next_watch {
                next_watch = now + WATCH_NS;
                let new_stamp = file_stamp(&config.rules_path);
                if hup || new_stamp != stamp {
                    stamp = new_stamp;
                    match crate::rules::parse_file(&config.rules_path) {
                        Ok(parsed) => return Ok(Exit::Reload(Box::new(parsed.rules))),
                        Err(e) => {
                            self.live.reloads.refused += 1;
                            let msg = format!("{e}; the previous rules stay in force");
                            observer.reload(Err(&msg));
                        }
                    }
                }
            }
        }
    }

    fn snapshot(&self, now: u64, flows: usize) -> LiveStats {
        LiveStats {
            elapsed_ns: now - self.start_ns,
            sent: [self.sent[INSIDE], self.sent[OUTSIDE]],
            dropped: self.counters.dropped,
            unresolved: self.sides[OUTSIDE].neigh.stats().dropped_unresolved
                + self.sides[INSIDE].neigh.stats().dropped_unresolved,
            flows,
        }
    }

    /// ARP retries, and packets whose neighbour was just given up on.
    fn tick(&mut self, now: u64) {
        for side in [OUTSIDE, INSIDE] {
            let s = &mut self.sides[side];
            let (mac, frame) = (s.mac, &mut self.arp_frame);
            let port = &mut s.port;
            let writer = &mut self.writer;
            s.neigh.tick(now, |from, target| {
                arp::request(frame, mac, from, target);
                port.send(frame);
                record(writer, side, now, frame);
            });
            s.port.flush();
        }
    }

    /// Gratuitous ARP for every EIP not yet announced (all of them at start).
    fn announce(&mut self, table: &ForwardTable, rules: &Rules) {
        let now = self.clock.now_ns();
        let side = &mut self.sides[OUTSIDE];
        for ip in &rules.bandwidth_package.public_ips {
            let ip = u32::from(*ip);
            if !table.is_eip(ip) || self.announced.contains(&ip) {
                continue;
            }
            self.announced.push(ip);
            arp::request(&mut self.arp_frame, side.mac, ip, ip);
            side.port.send(&self.arp_frame);
            record(&mut self.writer, OUTSIDE, now, &self.arp_frame);
            self.live.gratuitous_arp_sent += 1;
        }
        // And the inside address, so servers that knew another gateway MAC update it.
        let side = &mut self.sides[INSIDE];
        if !self.announced.contains(&self.inside_ip) {
            self.announced.push(self.inside_ip);
            arp::request(
                &mut self.arp_frame,
                side.mac,
                self.inside_ip,
                self.inside_ip,
            );
            side.port.send(&self.arp_frame);
            record(&mut self.writer, INSIDE, now, &self.arp_frame);
            self.live.gratuitous_arp_sent += 1;
        }
        for s in &mut self.sides {
            s.port.flush();
        }
    }

    /// Shape mode: sends the delayed frames whose time has come.
    fn release_shaped(&mut self) {
        let Some(delay) = &mut self.delay else {
            return;
        };
        let now = self.clock.now_ns();
        for (side, line) in delay.iter_mut().enumerate() {
            let s = &mut self.sides[side];
            let (writer, sent) = (&mut self.writer, &mut self.sent);
            line.release(now, |f| {
                if s.port.send(f) {
                    sent[side].0 += 1;
                    sent[side].1 += f.len() as u64;
                    record(writer, side, now, f);
                }
            });
        }
    }

    /// Reads one batch from `side` and handles each frame.
    fn receive(
        &mut self,
        tr: &mut Translator,
        side: usize,
        observer: &mut impl LiveObserver,
    ) -> Result<bool, LiveError> {
        // Moved out so the frames can be handled with `self` borrowed mutably; an Option, so
        // that taking it allocates nothing (the buffers are made once, at start).
        let Some(mut rx) = self.rx.take() else {
            return Ok(false);
        };
        let got = self.sides[side].port.recv(&mut rx);
        if let Err(source) = got {
            self.rx = Some(rx);
            return Err(LiveError::Io {
                what: format!(
                    "receive on {}",
                    if side == OUTSIDE {
                        &self.live.outside
                    } else {
                        &self.live.inside
                    }
                ),
                source,
            });
        }
        let now = self.clock.now_ns();
        // The kernel stamps arrivals on CLOCK_REALTIME; our clock is the wall clock advanced
        // monotonically, so stamps are moved by the difference measured now, and never later
        // than now.
        let realtime = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        for i in 0..rx.len() {
            let at = match rx.stamp(i) {
                Some(t) => now.saturating_sub(realtime.saturating_sub(t)),
                None => now,
            };
            let truncated = rx.truncated(i);
            let frame = rx.frame_mut(i);
            self.frame(tr, side, frame, truncated, at, observer);
        }
        let got = !rx.is_empty();
        self.rx = Some(rx);
        Ok(got)
    }

    /// One received frame.
    #[inline]
    fn frame(
        &mut self,
        tr: &mut Translator,
        side: usize,
        frame: &mut [u8],
        truncated: bool,
        now: u64,
        observer: &mut impl LiveObserver,
    ) {
        if frame.len() < 14 {
            self.live.frames_ignored += 1;
            return;
        }
        match u16::from_be_bytes([frame[12], frame[13]]) {
            // A router takes only the IPv4 frames sent to its own MAC address (a veth or a
            // switch port in promiscuous mode hands over the others too).
            ETHERTYPE_IPV4 if frame[0..6] != self.sides[side].mac => self.live.frames_ignored += 1,
            ETHERTYPE_IPV4 if truncated => self.live.frames_too_long += 1,
            ETHERTYPE_IPV4 => self.ipv4(tr, side, frame, now, observer),
            ETHERTYPE_ARP => self.arp(tr.table(), side, frame, now),
            _ => self.live.frames_ignored += 1,
        }
    }

    /// An ARP frame: learn its sender, answer a request for one of our addresses.
    fn arp(&mut self, table: &ForwardTable, side: usize, frame: &[u8], now: u64) {
        let Some(a) = arp::parse(frame) else {
            self.live.frames_ignored += 1;
            return;
        };
        let ours = if side == OUTSIDE {
            table.is_eip(a.tpa)
        } else {
            a.tpa == self.inside_ip
        };
        // Learn from replies to us and from requests that ask for us (as Linux does), and
        // from any gratuitous announcement of an address we already know.
        if (ours || a.op == arp::OP_REPLY)
            && a.spa != 0
            && self.sides[side].neigh.learn(a.spa, a.sha, now)
        {
            self.flush_ready(side, now);
        }
        if a.op == arp::OP_REQUEST && ours && a.spa != a.tpa {
            let s = &mut self.sides[side];
            arp::reply(&mut self.arp_frame, s.mac, &a);
            s.port.send(&self.arp_frame);
            record(&mut self.writer, side, now, &self.arp_frame);
            self.live.arp_replies_sent += 1;
        }
    }

    /// Sends the packets that were waiting for a neighbour of `side` that just resolved.
    fn flush_ready(&mut self, side: usize, now: u64) {
        let s = &mut self.sides[side];
        let (port, writer, sent, mac) = (&mut s.port, &mut self.writer, &mut self.sent, s.mac);
        // Bounded by the queue's size: each call takes one packet out.
        while s.neigh.take_ready(|f, dst| {
            f[0..6].copy_from_slice(&dst);
            f[6..12].copy_from_slice(&mac);
            if port.send(f) {
                sent[side].0 += 1;
                sent[side].1 += f.len() as u64;
                record(writer, side, now, f);
            }
        }) {}
    }

    /// An IPv4 frame: learn its sender's MAC, translate, police, resolve the next hop, send.
    #[inline]
    fn ipv4(
        &mut self,
        tr: &mut Translator,
        side: usize,
        frame: &mut [u8],
        now: u64,
        observer: &mut impl LiveObserver,
    ) {
        if let Some(src) = frame.get(26..30) {
            let ip = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
            let mut mac = [0u8; 6];
            mac.copy_from_slice(&frame[6..12]);
            if self.sides[side].neigh.learn(ip, mac, now) {
                self.flush_ready(side, now);
            }
        }
        self.record += 1;
        let meta = PacketMeta {
            record: self.record,
            ts_ns: now,
            interface: side as u32,
            orig_len: frame.len() as u32,
            link_type: LINKTYPE_ETHERNET,
        };
        self.counters.packets_in += 1;
        self.counters.bytes_in += u64::from(meta.orig_len);
        let o = tr.process(frame, &meta);
        self.decided(tr.table(), side, frame, o, &meta, observer);
        self.drain_events(tr, observer);
    }

    /// Releases and orphans of held fragments.
    fn drain_events(&mut self, tr: &mut Translator, observer: &mut impl LiveObserver) {
        while let Some(event) = tr.pop_event() {
            match event {
                Event::Released {
                    meta,
                    mut data,
                    outcome,
                } => {
                    self.decided(
                        tr.table(),
                        meta.interface as usize,
                        &mut data,
                        outcome,
                        &meta,
                        observer,
                    );
                    tr.recycle(data);
                }
                Event::Orphan {
                    meta,
                    data,
                    outcome,
                } => {
                    self.counters.count(&outcome, meta.orig_len);
                    tr.recycle(data);
                }
            }
        }
    }

    /// A translated packet: check its direction, police it, send it on the other side.
    #[inline]
    fn decided(
        &mut self,
        table: &ForwardTable,
        side: usize,
        frame: &mut [u8],
        mut o: Outcome,
        meta: &PacketMeta,
        observer: &mut impl LiveObserver,
    ) {
        let dir = match (o.verdict, side) {
            (Verdict::Inbound { .. }, OUTSIDE) => Some(Direction::Inbound),
            (Verdict::Outbound { .. }, INSIDE) => Some(Direction::Outbound),
            (Verdict::Drop(_) | Verdict::Held, _) => None,
            _ => {
                // From a client to a server's own address, a server to an EIP (hairpin), or
                // anything the translator would pass: a cloud gateway forwards none of it.
                self.live.wrong_side += 1;
                o.verdict = Verdict::Drop(DropReason::Foreign);
                None
            }
        };
        if self.trace_left > 0 {
            self.trace_left -= 1;
            observer.packet(meta.record, &o, table);
        }
        self.counters.count(&o, meta.orig_len);
        let Some(dir) = dir else {
            return;
        };
        let mut depart_ns = meta.ts_ns;
        if let Some((limiter, count)) = &mut self.limiter {
            let bytes = bandwidth::counted_bytes(*count, o.ip_len, meta.orig_len);
            match limiter.offer(dir, meta.ts_ns, bytes) {
                bandwidth::Admission::Drop => {
                    self.counters.rate_limited(&o);
                    return;
                }
                bandwidth::Admission::Pass { depart_ns: d } => depart_ns = d,
            }
        }
        self.counters.count_out(meta.orig_len);
        let egress = 1 - side;
        let next_hop = o.after.dst;
        // Outside, a client is asked for from the EIP the packet now comes from; inside, a
        // server from the gateway's own address.
        let ask_from = if egress == OUTSIDE {
            o.after.src
        } else {
            self.inside_ip
        };
        let now = meta.ts_ns;
        let s = &mut self.sides[egress];
        frame[6..12].copy_from_slice(&s.mac);
        match s.neigh.resolve(next_hop, ask_from, now) {
            Resolve::Known(mac) => {
                frame[0..6].copy_from_slice(&mac);
                if depart_ns > now
                    && let Some(delay) = &mut self.delay
                {
                    if !delay[egress].push(frame, depart_ns) {
                        self.live.shape_queue_full += 1;
                    }
                } else if s.port.send(frame) {
                    self.sent[egress].0 += 1;
                    self.sent[egress].1 += frame.len() as u64;
                    record(&mut self.writer, egress, now, frame);
                }
            }
            Resolve::Pending { ask } => {
                s.neigh.enqueue(next_hop, frame);
                if ask {
                    arp::request(&mut self.arp_frame, s.mac, ask_from, next_hop);
                    s.port.send(&self.arp_frame);
                    record(&mut self.writer, egress, now, &self.arp_frame);
                }
            }
            Resolve::Unreachable => s.neigh.count_unreachable_drop(),
        }
    }
}

/// Writes a sent frame to `--pcap-out`; a write error stops recording (and is reported at the
/// end) rather than the gateway.
#[inline]
fn record(writer: &mut Option<CaptureWriter>, side: usize, now: u64, frame: &[u8]) {
    if let Some(w) = writer {
        let meta = RecordMeta {
            ts_ns: i64::try_from(now).unwrap_or(i64::MAX),
            orig_len: frame.len() as u32,
            interface: side as u32,
        };
        if w.write_record(&meta, frame, None).is_err() {
            *writer = None;
        }
    }
}
