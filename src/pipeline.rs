//! The replay pipeline: capture in, translation, bandwidth package, capture out, counters.
//!
//! One function drives a whole run so that the command line, the tests and the benchmarks
//! exercise the same code. It streams: memory stays flat however long the capture.

use crate::bandwidth::{self, BandwidthStats, Direction, Limiter, LimiterConfig};
use crate::capture::{CaptureError, CaptureReader, CaptureWriter, RecordMeta};
use crate::nat::{
    Config, Event, FlowStats, ForwardTable, Outcome, PacketMeta, Translator, Verdict,
};
use crate::report::{Counters, trace};
use crate::rules::{CountMode, LimitMode};
use crate::wire::link::LINKTYPE_ETHERNET;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use thiserror::Error;

/// Why a replay stopped before the end of its input.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// How a replay runs.
#[derive(Debug, Clone, Default)]
pub struct ReplayOptions {
    /// Translator settings.
    pub translator: Config,
    /// Write every packet with a comment saying what happened to it (dropped ones too,
    /// unchanged), for reading in Wireshark.
    pub annotate: bool,
    /// The bandwidth package to apply after translation, if any.
    pub bandwidth: Option<LimiterConfig>,
}

/// Sees every packet's outcome as the run goes (trace lines, progress).
pub trait Observer {
    /// Called once per input packet, and again for a held fragment when it is decided.
    fn packet(&mut self, _record: u64, _outcome: &Outcome) {}
    /// Called every few thousand packets with the input offset reached.
    fn progress(&mut self, _offset: u64) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct Quiet;

impl Observer for Quiet {}

/// What a finished run counted.
#[derive(Debug, Clone)]
pub struct ReplayResult {
    /// Packet and byte counters.
    pub counters: Counters,
    /// Flow-table counters.
    pub flows: FlowStats,
    /// Warnings about the input, e.g. a cut-off last record.
    pub warnings: Vec<String>,
    /// What the bandwidth package did, when one was applied.
    pub bandwidth: Option<BandwidthStats>,
}

#[inline]
fn forwards(v: Verdict) -> bool {
    matches!(
        v,
        Verdict::Inbound { .. }
            | Verdict::Outbound { .. }
            | Verdict::PassForeign
            | Verdict::PassNotIpv4
    )
}

/// The bandwidth package stage: which packets it limits and how their bytes count.
struct Package {
    limiter: Limiter,
    count: CountMode,
    shape: bool,
}

impl Package {
    /// Offers a translated packet; `None` means it passes untouched (not translated, or its
    /// direction is not limited), otherwise the limiter's verdict.
    #[inline]
    fn offer(&mut self, o: &Outcome, meta: &PacketMeta) -> Option<bandwidth::Verdict> {
        let dir = match o.verdict {
            Verdict::Inbound { .. } => Direction::Inbound,
            Verdict::Outbound { .. } => Direction::Outbound,
            _ => return None,
        };
        // L2 counting wants an Ethernet frame's length; other link layers get a nominal one.
        let frame_len = if meta.link_type == LINKTYPE_ETHERNET {
            meta.orig_len
        } else {
            u32::from(o.ip_len) + 14
        };
        let bytes = bandwidth::counted_bytes(self.count, o.ip_len, frame_len);
        Some(self.limiter.offer(dir, meta.ts_ns, bytes))
    }
}

/// Packets delayed by shaping, released in departure order (ties in arrival order).
#[derive(Default)]
struct Reorder {
    heap: BinaryHeap<Reverse<(u64, u64, usize)>>,
    slots: Vec<Pending>,
    free: Vec<usize>,
    seq: u64,
}

struct Pending {
    record: RecordMeta,
    data: Vec<u8>,
    comment: Option<String>,
}

impl Reorder {
    fn push(&mut self, depart_ns: u64, record: RecordMeta, bytes: &[u8], comment: Option<String>) {
        let idx = match self.free.pop() {
            Some(i) => {
                let p = &mut self.slots[i];
                p.record = record;
                p.data.clear();
                p.data.extend_from_slice(bytes);
                p.comment = comment;
                i
            }
            None => {
                self.slots.push(Pending {
                    record,
                    data: bytes.to_vec(),
                    comment,
                });
                self.slots.len() - 1
            }
        };
        self.heap.push(Reverse((depart_ns, self.seq, idx)));
        self.seq += 1;
    }

    /// Writes every packet departing at or before `until_ns` (all of them for `u64::MAX`).
    fn flush(
        &mut self,
        until_ns: u64,
        writer: &mut Option<&mut CaptureWriter>,
    ) -> Result<(), ReplayError> {
        while let Some(&Reverse((depart, _, idx))) = self.heap.peek() {
            if depart > until_ns {
                break;
            }
            self.heap.pop();
            if let Some(w) = writer.as_deref_mut() {
                let p = &self.slots[idx];
                let record = RecordMeta {
                    ts_ns: i64::try_from(depart).unwrap_or(i64::MAX),
                    ..p.record
                };
                w.write_record(&record, &p.data, p.comment.as_deref())?;
            }
            self.free.push(idx);
        }
        Ok(())
    }
}

/// Replays `reader` through `table`, writing to `writer` when given.
pub fn replay(
    reader: &mut CaptureReader,
    mut writer: Option<&mut CaptureWriter>,
    table: &ForwardTable,
    options: &ReplayOptions,
    observer: &mut impl Observer,
) -> Result<ReplayResult, ReplayError> {
    let mut translator = Translator::new(table, options.translator);
    let mut counters = Counters::new(table.entries().len());
    let mut package = options.bandwidth.clone().map(|config| Package {
        count: config.count,
        shape: config.mode == LimitMode::Shape,
        limiter: Limiter::from_config(config),
    });
    let shaping = package.as_ref().is_some_and(|p| p.shape);
    let mut reorder = Reorder::default();
    let mut scratch: Vec<u8> = Vec::with_capacity(65_536);
    let mut known_interfaces = 0usize;
    while let Some(pkt) = reader.next_packet()? {
        counters.packets_in += 1;
        counters.bytes_in += u64::from(pkt.orig_len);
        if pkt.record & 0x3fff == 0 {
            observer.progress(pkt.offset);
        }
        // A packet stamped before 1970 cannot age flows; it is treated as the epoch.
        let ts_ns = pkt.ts_ns.max(0) as u64;
        let meta = PacketMeta {
            record: pkt.record,
            ts_ns,
            interface: pkt.interface,
            orig_len: pkt.orig_len,
            link_type: pkt.link_type,
        };
        let record = pkt.meta();
        if let Some(w) = writer.as_deref_mut()
            && pkt.interfaces.len() != known_interfaces
        {
            w.sync_interfaces(pkt.interfaces)?;
            known_interfaces = pkt.interfaces.len();
        }
        if shaping {
            reorder.flush(ts_ns, &mut writer)?;
        }
        // The fast path: one copy straight into the output buffer, rewritten there.
        let fast = !options.annotate && !shaping;
        let (outcome, limited) = match writer.as_deref_mut() {
            Some(w) if fast => {
                let mut result = None;
                w.write_in_place(&record, pkt.data, |buf| {
                    let o = translator.process(buf, &meta);
                    let limited = package.as_mut().and_then(|p| p.offer(&o, &meta));
                    result = Some((o, limited));
                    forwards(o.verdict) && !matches!(limited, Some(bandwidth::Verdict::Drop))
                })?;
                match result {
                    Some(r) => r,
                    // write_in_place calls the closure exactly once when it returns Ok.
                    None => continue,
                }
            }
            w => {
                scratch.clear();
                scratch.extend_from_slice(pkt.data);
                let o = translator.process(&mut scratch, &meta);
                let limited = package.as_mut().and_then(|p| p.offer(&o, &meta));
                let passes =
                    forwards(o.verdict) && !matches!(limited, Some(bandwidth::Verdict::Drop));
                if let Some(w) = w
                    && o.verdict != Verdict::Held
                {
                    let comment = options
                        .annotate
                        .then(|| annotation(pkt.record, &o, limited, ts_ns, table));
                    let bytes = if passes { &scratch[..] } else { pkt.data };
                    if shaping && (passes || options.annotate) {
                        let depart = match limited {
                            Some(bandwidth::Verdict::Pass { depart_ns }) => depart_ns,
                            _ => ts_ns,
                        };
                        reorder.push(depart, record, bytes, comment);
                    } else if passes || options.annotate {
                        w.write_record(&record, bytes, comment.as_deref())?;
                    }
                }
                (o, limited)
            }
        };
        counters.count(&outcome, meta.orig_len);
        let rate_limited = matches!(limited, Some(bandwidth::Verdict::Drop));
        if rate_limited {
            counters.rate_limited(&outcome);
        } else if forwards(outcome.verdict) {
            counters.count_out(meta.orig_len);
        }
        observer.packet(meta.record, &outcome);
        let mut stage = Stage {
            writer: &mut writer,
            package: &mut package,
            reorder: &mut reorder,
            shaping,
        };
        drain_events(
            &mut translator,
            &mut stage,
            &mut counters,
            observer,
            options,
            table,
            ts_ns,
        )?;
    }
    translator.finish();
    let mut stage = Stage {
        writer: &mut writer,
        package: &mut package,
        reorder: &mut reorder,
        shaping,
    };
    drain_events(
        &mut translator,
        &mut stage,
        &mut counters,
        observer,
        options,
        table,
        0,
    )?;
    reorder.flush(u64::MAX, &mut writer)?;
    let warnings = reader.warnings().iter().map(|w| w.to_string()).collect();
    Ok(ReplayResult {
        counters,
        flows: translator.flow_stats(),
        warnings,
        bandwidth: package.map(|p| p.limiter.stats()),
    })
}

/// The comment `--annotate` attaches: the trace line, plus the bandwidth package's word.
fn annotation(
    record: u64,
    o: &Outcome,
    limited: Option<bandwidth::Verdict>,
    ts_ns: u64,
    table: &ForwardTable,
) -> String {
    let mut line = trace::line(record, o, table);
    match limited {
        Some(bandwidth::Verdict::Drop) => line.push_str(" then dropped: rate_limited"),
        Some(bandwidth::Verdict::Pass { depart_ns }) if depart_ns > ts_ns => {
            let us = (depart_ns - ts_ns) as f64 / 1e3;
            line.push_str(&format!(" (shaped: departs {us:.1} us later)"));
        }
        _ => {}
    }
    line
}

/// What comes after translation, borrowed together for [`drain_events`].
struct Stage<'a, 'w> {
    writer: &'a mut Option<&'w mut CaptureWriter>,
    package: &'a mut Option<Package>,
    reorder: &'a mut Reorder,
    shaping: bool,
}

/// Delivers the consequences of held fragments: a released one goes through the bandwidth
/// package and out, stamped with the time its first fragment arrived (when the gateway could
/// send it); an orphan is counted.
fn drain_events(
    translator: &mut Translator,
    stage: &mut Stage,
    counters: &mut Counters,
    observer: &mut impl Observer,
    options: &ReplayOptions,
    table: &ForwardTable,
    now_ns: u64,
) -> Result<(), ReplayError> {
    while let Some(event) = translator.pop_event() {
        match event {
            Event::Released {
                mut meta,
                data,
                outcome,
            } => {
                meta.ts_ns = meta.ts_ns.max(now_ns);
                counters.count(&outcome, meta.orig_len);
                let limited = stage
                    .package
                    .as_mut()
                    .and_then(|p| p.offer(&outcome, &meta));
                if matches!(limited, Some(bandwidth::Verdict::Drop)) {
                    counters.rate_limited(&outcome);
                } else if forwards(outcome.verdict) {
                    counters.count_out(meta.orig_len);
                    let ts_ns = i64::try_from(meta.ts_ns).unwrap_or(i64::MAX);
                    let record = RecordMeta {
                        ts_ns,
                        orig_len: meta.orig_len,
                        interface: meta.interface,
                    };
                    let comment = options
                        .annotate
                        .then(|| annotation(meta.record, &outcome, limited, meta.ts_ns, table));
                    if stage.shaping {
                        let depart = match limited {
                            Some(bandwidth::Verdict::Pass { depart_ns }) => depart_ns,
                            _ => meta.ts_ns,
                        };
                        stage.reorder.push(depart, record, &data, comment);
                    } else if let Some(w) = stage.writer.as_deref_mut() {
                        w.write_record(&record, &data, comment.as_deref())?;
                    }
                }
                observer.packet(meta.record, &outcome);
                translator.recycle(data);
            }
            Event::Orphan { meta, outcome } => {
                counters.count(&outcome, meta.orig_len);
                observer.packet(meta.record, &outcome);
            }
        }
    }
    Ok(())
}
