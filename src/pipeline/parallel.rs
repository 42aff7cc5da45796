//! Translation on several threads, with output byte-identical to one thread.
//!
//! A reader thread deals packets out to translation workers by *conversation*: the address of
//! the side that is not the gateway's (the client of an inbound flow, the peer of a server's
//! own traffic). Every packet of a flow, its replies, its fragments and the ICMP errors about
//! it therefore meet the same worker and the same flow table, so each worker's state evolves
//! exactly as the one translator's would for those packets. Packets travel in batches, up to
//! thousands per message; every round (of [`ROUND`] packets or 1 MiB) each worker gets one
//! batch (possibly empty), which lets the merging thread put the round back in input order by
//! sequence number before the bandwidth package (one shared bucket, in packet order) and the
//! writer see it.
//!
//! Documented exceptions to "identical for any thread count": the flow-table bound and the
//! fragment-hold bound apply per worker (each gets its share), so a run that overflows them
//! may evict or orphan differently; and `flows.peak` is the sum of the workers' peaks.

use super::sink::Sink;
use super::{Observer, Packets, ReplayError, ReplayOptions, ReplayResult, packet_meta};
use crate::capture::{CaptureError, CaptureReader, CaptureWriter, Interface, RecordMeta};
use crate::nat::{Config, FlowStats, ForwardTable, Outcome, PacketMeta, Translator};
use crate::wire::ipv4::{MIN_HEADER_LEN, PROTO_ICMP};
use crate::wire::{Frame, Ipv4Header, is_icmp_error, locate_ipv4};
use crossbeam_channel::{Receiver, Sender, bounded, unbounded};

/// At most this many packets per round, over all workers...
pub const ROUND: usize = 4096;
/// ... and a round ends once its bytes pass this: each round costs every thread a wake-up,
/// which small packets would otherwise pay every few microseconds.
const ROUND_BYTES: usize = 1 << 20;
/// Rounds in flight between the stages.
const DEPTH: usize = 4;

/// One packet (or a released fragment, or an orphan) in a batch.
#[derive(Clone, Copy)]
struct Item {
    /// Input order; a fragment released by packet `seq` follows it with `sub` 1, 2, ...
    seq: u64,
    sub: u32,
    meta: PacketMeta,
    record: RecordMeta,
    /// Interfaces known when the packet was read (pcapng grows them as sections come).
    interfaces: u32,
    start: usize,
    len: usize,
    outcome: Outcome,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
    /// Set in a worker's last batch.
    flows: Option<FlowStats>,
}

impl Batch {
    fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
        self.flows = None;
    }
}

/// What the reader tells the merger, once per round.
enum Info {
    Round {
        interfaces: Vec<Interface>,
        offset: u64,
        /// Packets read so far (for progress).
        packets: u64,
    },
    End {
        warnings: Vec<String>,
    },
    Failed(CaptureError),
}

/// The worker that translates a frame: by the conversation's non-gateway address.
fn shard(table: &ForwardTable, link_type: u16, frame: &[u8], workers: usize) -> usize {
    let Frame::Ipv4 { offset } = locate_ipv4(link_type, frame) else {
        return 0;
    };
    let Some(ip) = frame.get(offset..) else {
        return 0;
    };
    let Some(fixed) = ip.first_chunk::<MIN_HEADER_LEN>() else {
        return 0;
    };
    let h = Ipv4Header::new(fixed);
    let (src, dst) = (h.src(), h.dst());
    let mut key = if table.is_eip(dst) { src } else { dst };
    // An ICMP error belongs to the conversation of the datagram it quotes.
    if h.protocol() == PROTO_ICMP
        && let Some(icmp) = ip.get(h.header_len()..)
        && icmp.first().is_some_and(|&t| is_icmp_error(t))
        && let Some(q) = icmp
            .get(8..)
            .and_then(|q| q.first_chunk::<MIN_HEADER_LEN>())
    {
        let q = Ipv4Header::new(q);
        key = if table.is_eip(dst) { q.dst() } else { q.src() };
    }
    (u64::from(key).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize % workers
}

/// Replays with `options.threads - 2` translation workers (at least one) between the reader
/// thread and this one, so that the run has `options.threads` busy threads.
pub(super) fn replay(
    reader: &mut CaptureReader,
    writer: Option<&mut CaptureWriter>,
    table: &ForwardTable,
    options: &ReplayOptions,
    observer: &mut impl Observer,
) -> Result<ReplayResult, ReplayError> {
    let workers = options.threads.saturating_sub(2).max(1);
    let (info_tx, info_rx) = bounded::<Info>(DEPTH);
    let (free_tx, free_rx) = unbounded::<Batch>();
    let mut work_txs = Vec::new();
    let mut work_rxs = Vec::new();
    let mut done_txs = Vec::new();
    let mut done_rxs = Vec::new();
    for _ in 0..workers {
        let (t, r) = bounded::<Batch>(DEPTH);
        work_txs.push(t);
        work_rxs.push(r);
        let (t, r) = bounded::<Batch>(DEPTH);
        done_txs.push(t);
        done_rxs.push(r);
    }
    let mut config = options.translator;
    config.max_flows = (config.max_flows / workers).max(1);
    std::thread::scope(|s| {
        s.spawn(move || read(reader, table, workers, info_tx, work_txs, free_rx));
        for (work_rx, done_tx) in work_rxs.into_iter().zip(done_txs) {
            s.spawn(move || translate(table, config, work_rx, done_tx));
        }
        merge(
            writer, table, options, observer, info_rx, done_rxs, &free_tx,
        )
    })
}

/// The reader thread: deals packets to the workers' batches, one round at a time.
fn read(
    reader: &mut CaptureReader,
    table: &ForwardTable,
    workers: usize,
    info_tx: Sender<Info>,
    work_txs: Vec<Sender<Batch>>,
    free_rx: Receiver<Batch>,
) {
    let fresh = |free_rx: &Receiver<Batch>| free_rx.try_recv().unwrap_or_default();
    let mut batches: Vec<Batch> = (0..workers).map(|_| fresh(&free_rx)).collect();
    let mut in_round = 0;
    let mut round_bytes = 0;
    let mut seq = 0u64;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut offset = 0;
    loop {
        let pkt = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => break,
            Err(e) => {
                // The packets before the failure are decided first, as with one thread.
                let round = Info::Round {
                    interfaces,
                    offset,
                    packets: seq,
                };
                if in_round == 0 || send_round(&info_tx, round, &work_txs, &mut batches, &free_rx) {
                    let _ = info_tx.send(Info::Failed(e));
                }
                return;
            }
        };
        if pkt.interfaces.len() != interfaces.len() {
            interfaces = pkt.interfaces.to_vec();
        }
        offset = pkt.offset;
        let worker = if workers == 1 {
            0
        } else {
            shard(table, pkt.link_type, pkt.data, workers)
        };
        let b = &mut batches[worker];
        let start = b.data.len();
        b.data.extend_from_slice(pkt.data);
        b.items.push(Item {
            seq,
            sub: 0,
            meta: packet_meta(&pkt),
            record: pkt.meta(),
            interfaces: pkt.interfaces.len() as u32,
            start,
            len: pkt.data.len(),
            outcome: Outcome::none(),
        });
        seq += 1;
        in_round += 1;
        round_bytes += pkt.data.len();
        if in_round == ROUND || round_bytes >= ROUND_BYTES {
            in_round = 0;
            round_bytes = 0;
            let round = Info::Round {
                interfaces: interfaces.clone(),
                offset,
                packets: seq,
            };
            if !send_round(&info_tx, round, &work_txs, &mut batches, &free_rx) {
                return;
            }
        }
    }
    if in_round > 0 {
        let round = Info::Round {
            interfaces,
            offset,
            packets: seq,
        };
        if !send_round(&info_tx, round, &work_txs, &mut batches, &free_rx) {
            return;
        }
    }
    let warnings = Packets::warnings(reader);
    let _ = info_tx.send(Info::End { warnings });
    // Dropping the work senders tells the workers the input is over.
}

/// Sends a round: its info to the merger, one batch to each worker. False if a peer is gone.
fn send_round(
    info_tx: &Sender<Info>,
    info: Info,
    work_txs: &[Sender<Batch>],
    batches: &mut [Batch],
    free_rx: &Receiver<Batch>,
) -> bool {
    if info_tx.send(info).is_err() {
        return false;
    }
    for (tx, b) in work_txs.iter().zip(batches.iter_mut()) {
        let next = free_rx.try_recv().unwrap_or_default();
        if tx.send(std::mem::replace(b, next)).is_err() {
            return false;
        }
    }
    true
}

/// A worker: translates its batches in place, appending what held fragments become.
fn translate(
    table: &ForwardTable,
    config: Config,
    work_rx: Receiver<Batch>,
    done_tx: Sender<Batch>,
) {
    let mut t = Translator::new(table, config);
    let mut items: Vec<Item> = Vec::new();
    for mut batch in work_rx {
        items.clear();
        for i in 0..batch.items.len() {
            let mut item = batch.items[i];
            let frame = &mut batch.data[item.start..item.start + item.len];
            item.outcome = t.process(frame, &item.meta);
            items.push(item);
            events(&mut t, &mut batch.data, &mut items, item, item.meta.ts_ns);
        }
        std::mem::swap(&mut batch.items, &mut items);
        if done_tx.send(batch).is_err() {
            return;
        }
    }
    // The last batch: the fragments still held at the end of the input, as orphans, and the
    // flow counters.
    t.finish();
    let mut last = Batch::default();
    let end = Item {
        seq: u64::MAX,
        sub: 0,
        meta: PacketMeta::default(),
        record: RecordMeta {
            ts_ns: 0,
            orig_len: 0,
            interface: 0,
        },
        interfaces: 0,
        start: 0,
        len: 0,
        outcome: Outcome::none(),
    };
    events(&mut t, &mut last.data, &mut last.items, end, 0);
    last.flows = Some(t.flow_stats());
    let _ = done_tx.send(last);
}

/// Appends the translator's pending events after `trigger`, in order.
fn events(
    t: &mut Translator,
    data: &mut Vec<u8>,
    items: &mut Vec<Item>,
    trigger: Item,
    now_ns: u64,
) {
    let mut sub = 0;
    while let Some(event) = t.pop_event() {
        sub += 1;
        let (meta, bytes, outcome) = event.into_parts(now_ns);
        let start = data.len();
        let len = bytes.len();
        data.extend_from_slice(&bytes);
        t.recycle(bytes);
        items.push(Item {
            seq: trigger.seq,
            sub,
            meta,
            record: super::released_record(&meta),
            interfaces: trigger.interfaces,
            start,
            len,
            outcome,
        });
    }
}

/// The merging thread (the caller's): puts every round back in input order and runs the
/// stages after translation.
fn merge(
    writer: Option<&mut CaptureWriter>,
    table: &ForwardTable,
    options: &ReplayOptions,
    observer: &mut impl Observer,
    info_rx: Receiver<Info>,
    // Owned, so that an early return drops them and unblocks workers waiting to send.
    done_rxs: Vec<Receiver<Batch>>,
    free_tx: &Sender<Batch>,
) -> Result<ReplayResult, ReplayError> {
    let mut sink = Sink::new(writer, table, options);
    let mut round: Vec<Batch> = Vec::with_capacity(done_rxs.len());
    let mut heads = vec![0usize; done_rxs.len()];
    let mut interfaces: Vec<Interface> = Vec::new();
    let warnings = loop {
        let info = info_rx.recv().map_err(|_| ReplayError::Thread)?;
        match info {
            Info::Round {
                interfaces: i,
                offset,
                packets,
            } => {
                interfaces = i;
                observer.progress(packets, offset);
            }
            Info::End { warnings } => break warnings,
            Info::Failed(e) => return Err(e.into()),
        }
        round.clear();
        for rx in &done_rxs {
            round.push(rx.recv().map_err(|_| ReplayError::Thread)?);
        }
        emit_round(&mut sink, &round, &mut heads, &interfaces, table, observer)?;
        for b in round.drain(..) {
            let mut b = b;
            b.clear();
            let _ = free_tx.send(b);
        }
    };
    // Each worker's last batch: orphans left at the end of the input, and its flow counters.
    round.clear();
    for rx in &done_rxs {
        round.push(rx.recv().map_err(|_| ReplayError::Thread)?);
    }
    emit_round(&mut sink, &round, &mut heads, &interfaces, table, observer)?;
    let mut flows = FlowStats::default();
    for b in &round {
        if let Some(f) = b.flows {
            flows.created += f.created;
            flows.expired += f.expired;
            flows.evicted += f.evicted;
            flows.peak += f.peak;
        }
    }
    let (counters, bandwidth) = sink.finish()?;
    Ok(ReplayResult {
        counters,
        flows,
        warnings,
        bandwidth,
    })
}

/// Runs one round's items through the sink in (seq, sub) order: a k-way merge of the
/// workers' batches, each already in that order.
fn emit_round(
    sink: &mut Sink,
    round: &[Batch],
    heads: &mut [usize],
    interfaces: &[Interface],
    table: &ForwardTable,
    observer: &mut impl Observer,
) -> Result<(), ReplayError> {
    heads.iter_mut().for_each(|h| *h = 0);
    loop {
        let mut best: Option<(usize, (u64, u32))> = None;
        for (w, b) in round.iter().enumerate() {
            if let Some(item) = b.items.get(heads[w]) {
                let key = (item.seq, item.sub);
                if best.is_none_or(|(_, k)| key < k) {
                    best = Some((w, key));
                }
            }
        }
        let Some((w, _)) = best else {
            return Ok(());
        };
        let item = &round[w].items[heads[w]];
        heads[w] += 1;
        let bytes = &round[w].data[item.start..item.start + item.len];
        if item.sub == 0 && item.seq != u64::MAX {
            let known = (item.interfaces as usize).min(interfaces.len());
            sink.arrive(&item.meta, &interfaces[..known])?;
        }
        sink.emit(
            &item.record,
            &item.meta,
            bytes,
            &item.outcome,
            table,
            observer,
        )?;
    }
}
