//! The replay pipeline: capture in, translation, bandwidth package, capture out, counters.
//!
//! One function drives a whole run so that the command line, the tests and the benchmarks
//! exercise the same code. It streams: memory stays flat however long the capture.

mod parallel;
mod readahead;
mod sink;

use crate::bandwidth::{BandwidthStats, LimiterConfig};
use crate::capture::{CaptureError, CaptureReader, CaptureWriter, Packet, RecordMeta};
use crate::nat::{
    Config, FlowStats, ForwardTable, Lookahead, Outcome, PacketMeta, Translator, Verdict,
};
use crate::report::Counters;
use sink::Sink;
use thiserror::Error;

/// Why a replay stopped before the end of its input.
#[derive(Debug, Error)]
pub enum ReplayError {
    /// Reading the input or writing the output failed.
    #[error(transparent)]
    Capture(#[from] CaptureError),
    /// A translation thread died (a bug: the translator does not panic on any input).
    #[error("a translation thread stopped unexpectedly")]
    Thread,
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
    /// Threads: 0 or 1 does everything on the calling thread; 2 adds a thread that makes the
    /// output's write calls (and, for a streamed input, copies records out of it) while the
    /// calling thread translates; N > 2
    /// runs a reader thread, N - 2 translation workers, and the calling thread for the
    /// bandwidth package and the writer. Output is byte-identical for every value (see the
    /// `parallel` module for the one documented exception).
    pub threads: usize,
}

/// Sees every packet's outcome as the run goes (trace lines, progress).
pub trait Observer {
    /// Called once per input packet, and again for a held fragment when it is decided.
    fn packet(&mut self, _record: u64, _outcome: &Outcome) {}
    /// Called once per decided packet (not for a fragment while it is held), right before
    /// [`Observer::packet`], with its length on the wire and whether the bandwidth package
    /// dropped it: what `diff` and the HTML report need to compare and show a packet's fate.
    fn decided(&mut self, _record: u64, _outcome: &Outcome, _wire_len: u32, _rate_limited: bool) {}
    /// Called every few thousand packets with the packets read and the input offset reached.
    fn progress(&mut self, _packets: u64, _offset: u64) {}
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

/// Whether a verdict lets the packet out (before the bandwidth package has its say).
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

/// The translator's view of a record: arrival time clamped to the epoch, because a packet
/// stamped before 1970 cannot age flows.
#[inline]
fn packet_meta(pkt: &crate::capture::Packet<'_>) -> PacketMeta {
    PacketMeta {
        record: pkt.record,
        ts_ns: pkt.ts_ns.max(0) as u64,
        interface: pkt.interface,
        orig_len: pkt.orig_len,
        link_type: pkt.link_type,
    }
}

/// Replays `reader` through `table`, writing to `writer` when given.
pub fn replay(
    reader: &mut CaptureReader,
    writer: Option<&mut CaptureWriter>,
    table: &ForwardTable,
    options: &ReplayOptions,
    observer: &mut impl Observer,
) -> Result<ReplayResult, ReplayError> {
    match options.threads {
        0 | 1 => in_order(reader, writer, table, options, observer),
        2 => readahead::replay(reader, writer, table, options, observer),
        _ => parallel::replay(reader, writer, table, options, observer),
    }
}

/// Where the in-order loop takes its packets from: the reader itself, or the batches a
/// read-ahead thread copied out of it.
trait Packets {
    /// The next packet, or `None` at the end of the input.
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReplayError>;
    /// What the reader found wrong with the input, once it is over.
    fn warnings(&self) -> Vec<String>;
    /// The frame and link type of the packet `ahead` packets after the next one, if it is
    /// already at hand (for prefetching); `None` where the source cannot look ahead.
    #[inline]
    fn peek(&mut self, _ahead: usize) -> Option<(&[u8], u16)> {
        None
    }
}

/// How far ahead the in-order loop starts loading a packet's flow index line; its slot is
/// loaded at half this distance, once the index line has had time to arrive. Sixteen packets
/// of about 100 ns each cover a DRAM miss twice over.
const PREFETCH_AHEAD: usize = 16;

impl Packets for CaptureReader {
    #[inline]
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReplayError> {
        Ok(CaptureReader::next_packet(self)?)
    }

    fn warnings(&self) -> Vec<String> {
        CaptureReader::warnings(self)
            .iter()
            .map(|w| w.to_string())
            .collect()
    }

    #[inline]
    fn peek(&mut self, ahead: usize) -> Option<(&[u8], u16)> {
        self.peek_ahead(ahead as u64)
    }
}

/// Every stage for one packet after another, on the calling thread.
fn in_order(
    packets: &mut impl Packets,
    writer: Option<&mut CaptureWriter>,
    table: &ForwardTable,
    options: &ReplayOptions,
    observer: &mut impl Observer,
) -> Result<ReplayResult, ReplayError> {
    let mut translator = Translator::new(table, options.translator);
    if options.threads >= 2 {
        // The second thread only waits on the output's writes most of the time.
        translator.prefault_flows_in_background();
    }
    let mut sink = Sink::new(writer, table, options);
    let mut scratch: Vec<u8> = Vec::with_capacity(65_536);
    // The packets whose flows are being looked up ahead, by position modulo the ring: the
    // packet at `position` is the one processed now.
    let mut ring: [Option<Lookahead>; PREFETCH_AHEAD] = [None; PREFETCH_AHEAD];
    let mut position = 0usize;
    loop {
        let slot = position % PREFETCH_AHEAD;
        let prefetching = translator.wants_prefetch();
        if prefetching {
            // The packet PREFETCH_AHEAD / 2 ahead had its index line requested that long
            // ago: its slot can be requested now.
            if let Some(ahead) = &mut ring[(position + PREFETCH_AHEAD / 2) % PREFETCH_AHEAD] {
                translator.prefetch_binding(ahead);
            }
        }
        position = position.wrapping_add(1);
        // An entry left from before prefetching paused may be of another packet: the
        // translator uses a lookahead only for a packet of the same tuple.
        let ahead = if prefetching {
            ring[slot].as_ref()
        } else {
            None
        };
        let Some(pkt) = packets.next_packet()? else {
            break;
        };
        if pkt.record & 0x3ff == 0 {
            observer.progress(pkt.record, pkt.offset);
        }
        let meta = packet_meta(&pkt);
        let record = pkt.meta();
        sink.arrive(&meta, pkt.interfaces)?;
        if sink.fast() {
            // One copy: straight into the output buffer, rewritten there.
            sink.write_in_place(&record, &meta, pkt.data, observer, |buf| {
                translator.process_ahead(buf, &meta, ahead)
            })?;
        } else {
            scratch.clear();
            scratch.extend_from_slice(pkt.data);
            let o = translator.process_ahead(&mut scratch, &meta, ahead);
            sink.emit(&record, &meta, &scratch, &o, table, observer)?;
        }
        if prefetching {
            // The packet PREFETCH_AHEAD after this one takes this position's place.
            ring[slot] = packets
                .peek(PREFETCH_AHEAD - 1)
                .and_then(|(frame, link)| translator.prefetch_key(frame, link));
        }
        if translator.has_events() {
            drain_events(&mut translator, &mut sink, table, observer, meta.ts_ns)?;
        }
    }
    translator.finish();
    drain_events(&mut translator, &mut sink, table, observer, 0)?;
    let warnings = packets.warnings();
    let (counters, bandwidth) = sink.finish()?;
    Ok(ReplayResult {
        counters,
        flows: translator.flow_stats(),
        warnings,
        bandwidth,
    })
}

/// Delivers the consequences of held fragments after the packet that caused them: a released
/// fragment goes through the bandwidth package and out, stamped with the time its first
/// fragment arrived (when the gateway could send it); an orphan is counted.
fn drain_events(
    translator: &mut Translator,
    sink: &mut Sink,
    table: &ForwardTable,
    observer: &mut impl Observer,
    now_ns: u64,
) -> Result<(), ReplayError> {
    while let Some(event) = translator.pop_event() {
        // An orphan's bytes go along too, so that `--annotate` keeps the dropped fragment.
        let (meta, data, outcome) = event.into_parts(now_ns);
        sink.emit(
            &released_record(&meta),
            &meta,
            &data,
            &outcome,
            table,
            observer,
        )?;
        translator.recycle(data);
    }
    Ok(())
}

/// The output record of a fragment released late, stamped with its (updated) time.
fn released_record(meta: &PacketMeta) -> RecordMeta {
    RecordMeta {
        ts_ns: i64::try_from(meta.ts_ns).unwrap_or(i64::MAX),
        orig_len: meta.orig_len,
        interface: meta.interface,
    }
}
