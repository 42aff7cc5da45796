//! The replay pipeline: capture in, translation, bandwidth package, capture out, counters.
//!
//! One function drives a whole run so that the command line, the tests and the benchmarks
//! exercise the same code. It streams: memory stays flat however long the capture.

use crate::capture::{CaptureError, CaptureReader, CaptureWriter, RecordMeta};
use crate::nat::{
    Config, Event, FlowStats, ForwardTable, Outcome, PacketMeta, Translator, Verdict,
};
use crate::report::{Counters, trace};
use thiserror::Error;

/// Why a replay stopped before the end of its input.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
}

/// How a replay runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReplayOptions {
    /// Translator settings.
    pub translator: Config,
    /// Write every packet with a comment saying what happened to it (dropped ones too,
    /// unchanged), for reading in Wireshark.
    pub annotate: bool,
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
        let outcome = match writer.as_deref_mut() {
            Some(w) if !options.annotate => {
                if pkt.interfaces.len() != known_interfaces {
                    w.sync_interfaces(pkt.interfaces)?;
                    known_interfaces = pkt.interfaces.len();
                }
                let mut outcome = None;
                w.write_in_place(&record, pkt.data, |buf| {
                    let o = translator.process(buf, &meta);
                    outcome = Some(o);
                    forwards(o.verdict)
                })?;
                match outcome {
                    Some(o) => o,
                    // write_in_place calls the closure exactly once when it returns Ok.
                    None => continue,
                }
            }
            w => {
                scratch.clear();
                scratch.extend_from_slice(pkt.data);
                let o = translator.process(&mut scratch, &meta);
                if let Some(w) = w {
                    if pkt.interfaces.len() != known_interfaces {
                        w.sync_interfaces(pkt.interfaces)?;
                        known_interfaces = pkt.interfaces.len();
                    }
                    if o.verdict != Verdict::Held {
                        let comment = trace::line(pkt.record, &o, table);
                        let bytes = if forwards(o.verdict) {
                            &scratch[..]
                        } else {
                            pkt.data
                        };
                        w.write_record(&record, bytes, Some(&comment))?;
                    }
                }
                o
            }
        };
        counters.count(&outcome, meta.orig_len);
        if forwards(outcome.verdict) {
            counters.count_out(meta.orig_len);
        }
        observer.packet(meta.record, &outcome);
        drain_events(
            &mut translator,
            &mut writer,
            &mut counters,
            observer,
            options,
            table,
            record.ts_ns,
        )?;
    }
    translator.finish();
    drain_events(
        &mut translator,
        &mut writer,
        &mut counters,
        observer,
        options,
        table,
        0,
    )?;
    let warnings = reader.warnings().iter().map(|w| w.to_string()).collect();
    Ok(ReplayResult {
        counters,
        flows: translator.flow_stats(),
        warnings,
    })
}

/// Delivers the consequences of held fragments: released ones are written (stamped with the
/// time their first fragment arrived, when the gateway could send them), orphans counted.
fn drain_events(
    translator: &mut Translator,
    writer: &mut Option<&mut CaptureWriter>,
    counters: &mut Counters,
    observer: &mut impl Observer,
    options: &ReplayOptions,
    table: &ForwardTable,
    now_ns: i64,
) -> Result<(), ReplayError> {
    while let Some(event) = translator.pop_event() {
        match event {
            Event::Released {
                meta,
                data,
                outcome,
            } => {
                counters.count(&outcome, meta.orig_len);
                if forwards(outcome.verdict) {
                    counters.count_out(meta.orig_len);
                    if let Some(w) = writer.as_deref_mut() {
                        let ts_ns = now_ns.max(meta.ts_ns as i64);
                        let record = RecordMeta {
                            ts_ns,
                            orig_len: meta.orig_len,
                            interface: meta.interface,
                        };
                        let comment = options
                            .annotate
                            .then(|| trace::line(meta.record, &outcome, table));
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
