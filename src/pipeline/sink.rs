//! Everything after translation, in packet order: the bandwidth package, the departure-order
//! buffer of shaping, the output capture, the counters and the observer.

use super::{Observer, ReplayError, ReplayOptions, forwards};
use crate::bandwidth::{self, BandwidthStats, Direction, Limiter};
use crate::capture::{CaptureWriter, Interface, RecordMeta};
use crate::nat::{ForwardTable, Outcome, PacketMeta, Verdict};
use crate::report::{Counters, trace};
use crate::rules::{CountMode, LimitMode};
use crate::wire::link::LINKTYPE_ETHERNET;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// The bandwidth package stage: which packets it limits and how their bytes count.
struct Package {
    limiter: Limiter,
    count: CountMode,
}

impl Package {
    /// Offers a translated packet; `None` means it passes untouched (not translated, or its
    /// direction is not limited), otherwise the limiter's verdict.
    #[inline]
    fn offer(&mut self, o: &Outcome, meta: &PacketMeta) -> Option<bandwidth::Admission> {
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
                let ts_ns = i64::try_from(depart).unwrap_or(i64::MAX);
                w.write_record(
                    &RecordMeta { ts_ns, ..p.record },
                    &p.data,
                    p.comment.as_deref(),
                )?;
            }
            self.free.push(idx);
        }
        Ok(())
    }
}

/// The stages after translation.
pub(super) struct Sink<'w> {
    writer: Option<&'w mut CaptureWriter>,
    package: Option<Package>,
    reorder: Reorder,
    shaping: bool,
    annotate: bool,
    counters: Counters,
    known_interfaces: usize,
}

impl<'w> Sink<'w> {
    pub(super) fn new(
        writer: Option<&'w mut CaptureWriter>,
        table: &ForwardTable,
        options: &ReplayOptions,
    ) -> Sink<'w> {
        let package = options.bandwidth.clone().map(|config| Package {
            count: config.count,
            limiter: Limiter::from_config(config),
        });
        let shaping = options
            .bandwidth
            .as_ref()
            .is_some_and(|c| c.mode == LimitMode::Shape);
        Sink {
            writer,
            package,
            reorder: Reorder::default(),
            shaping,
            annotate: options.annotate,
            counters: Counters::new(table.entries().len()),
            known_interfaces: 0,
        }
    }

    /// True when records can be rewritten straight in the output buffer: nothing needs the
    /// translated bytes before the decision to keep them (no comment, no departure order).
    pub(super) fn fast(&self) -> bool {
        self.writer.is_some() && !self.annotate && !self.shaping
    }

    /// Counts a record read, tells the writer of new pcapng interfaces, and releases shaped
    /// packets that depart before it arrives.
    pub(super) fn arrive(
        &mut self,
        meta: &PacketMeta,
        interfaces: &[Interface],
    ) -> Result<(), ReplayError> {
        self.counters.packets_in += 1;
        self.counters.bytes_in += u64::from(meta.orig_len);
        if let Some(w) = self.writer.as_deref_mut()
            && interfaces.len() != self.known_interfaces
        {
            w.sync_interfaces(interfaces)?;
            self.known_interfaces = interfaces.len();
        }
        if self.shaping {
            self.reorder.flush(meta.ts_ns, &mut self.writer)?;
        }
        Ok(())
    }

    /// The fast path: copies `data` into the output buffer, lets `translate` rewrite it there,
    /// and keeps it if it is forwarded and the bandwidth package lets it through.
    pub(super) fn write_in_place(
        &mut self,
        record: &RecordMeta,
        meta: &PacketMeta,
        data: &[u8],
        observer: &mut impl Observer,
        translate: impl FnOnce(&mut [u8]) -> Outcome,
    ) -> Result<(), ReplayError> {
        let Some(w) = self.writer.as_deref_mut() else {
            return Ok(());
        };
        let package = &mut self.package;
        let mut decided = None;
        w.write_in_place(record, data, |buf| {
            let o = translate(buf);
            let limited = package.as_mut().and_then(|p| p.offer(&o, meta));
            decided = Some((o, limited));
            forwards(o.verdict) && !matches!(limited, Some(bandwidth::Admission::Drop))
        })?;
        // write_in_place calls the closure exactly once when it returns Ok.
        if let Some((o, limited)) = decided {
            self.account(&o, meta, limited);
            let dropped = matches!(limited, Some(bandwidth::Admission::Drop));
            observer.decided(meta.record, &o, meta.orig_len, dropped);
            observer.packet(meta.record, &o);
        }
        Ok(())
    }

    /// Counts a decided packet.
    #[inline]
    fn account(&mut self, o: &Outcome, meta: &PacketMeta, limited: Option<bandwidth::Admission>) {
        self.counters.count(o, meta.orig_len);
        if matches!(limited, Some(bandwidth::Admission::Drop)) {
            self.counters.rate_limited(o);
        } else if forwards(o.verdict) {
            self.counters.count_out(meta.orig_len);
        }
    }

    /// A translated packet (`bytes` as it leaves the translator, unchanged when dropped):
    /// bandwidth package, output, counters, observer.
    pub(super) fn emit(
        &mut self,
        record: &RecordMeta,
        meta: &PacketMeta,
        bytes: &[u8],
        o: &Outcome,
        table: &ForwardTable,
        observer: &mut impl Observer,
    ) -> Result<(), ReplayError> {
        if o.verdict == Verdict::Held {
            self.counters.count(o, meta.orig_len);
            observer.packet(meta.record, o);
            return Ok(());
        }
        let limited = self.package.as_mut().and_then(|p| p.offer(o, meta));
        self.account(o, meta, limited);
        let rate_limited = matches!(limited, Some(bandwidth::Admission::Drop));
        let passes = forwards(o.verdict) && !rate_limited;
        if self.writer.is_some() && (passes || self.annotate) {
            let comment = self
                .annotate
                .then(|| annotation(meta.record, o, limited, meta.ts_ns, table));
            if self.shaping {
                let depart = match limited {
                    Some(bandwidth::Admission::Pass { depart_ns }) => depart_ns,
                    _ => meta.ts_ns,
                };
                self.reorder.push(depart, *record, bytes, comment);
            } else if let Some(w) = self.writer.as_deref_mut() {
                w.write_record(record, bytes, comment.as_deref())?;
            }
        }
        observer.decided(meta.record, o, meta.orig_len, rate_limited);
        observer.packet(meta.record, o);
        Ok(())
    }

    /// Writes what shaping still holds and hands back the counters.
    pub(super) fn finish(mut self) -> Result<(Counters, Option<BandwidthStats>), ReplayError> {
        self.reorder.flush(u64::MAX, &mut self.writer)?;
        Ok((self.counters, self.package.map(|p| p.limiter.stats())))
    }
}

/// The comment `--annotate` attaches: the trace line, plus the bandwidth package's word.
fn annotation(
    record: u64,
    o: &Outcome,
    limited: Option<bandwidth::Admission>,
    ts_ns: u64,
    table: &ForwardTable,
) -> String {
    let mut line = trace::line(record, o, table);
    match limited {
        Some(bandwidth::Admission::Drop) => line.push_str(" then dropped: rate_limited"),
        Some(bandwidth::Admission::Pass { depart_ns }) if depart_ns > ts_ns => {
            let us = (depart_ns - ts_ns) as f64 / 1e3;
            line.push_str(&format!(" (shaped: departs {us:.1} us later)"));
        }
        _ => {}
    }
    line
}
