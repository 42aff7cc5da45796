//! `--threads 2`: a second thread takes the copies the in-order loop would otherwise wait for.
//!
//! A file in memory (mapped, or bytes) needs no copying out: the calling thread reads its
//! records in place and rewrites each into the output buffer, and the second thread only makes
//! the output's `write` calls, the kernel's copy into the page cache. That is the same copy
//! `cp` makes, so on equal work the run takes about as long as `cp` plus whatever translation
//! does not hide behind it (README, "Threads").
//!
//! A stream (a pipe, standard input) is copied out in batches instead: a read-ahead thread
//! takes the first touch of every input byte, with the output's writes, and the calling
//! thread's copy into the output buffer is then a cache hit. So is a pcap file in memory whose
//! records are small (under 256 bytes on average over its first 4,096): there, parsing record
//! headers weighs more than copying bytes, and the batches take it off the calling thread.
//!
//! Either way everything that depends on order (flows, held fragments, the bandwidth package,
//! shaping, comments, the counters, the writer's errors) stays on one thread, in input order,
//! so the output is the same bytes as with one thread by construction.

use super::{Observer, Packets, ReplayError, ReplayOptions, ReplayResult, in_order};
use crate::capture::{CaptureError, CaptureReader, CaptureWriter, Interface, OutputDrain, Packet};
use crate::nat::ForwardTable;
use crossbeam_channel::{Receiver, Select, Sender, bounded};

/// A batch ends after this many packets...
const BATCH_PACKETS: usize = 4096;
/// ... or once its bytes pass this, whichever comes first. Each batch costs a wake-up on both
/// sides, so small batches of small packets lost the gain (512 packets: 64-byte TCP slower
/// than one thread); 1 MiB still stays in cache between the two threads (0.5 and 2 MiB measured
/// the same).
const BATCH_BYTES: usize = 1 << 20;
/// Batches in flight between the threads.
const DEPTH: usize = 4;

/// A packet's fields, its bytes at `data[start..start + len]` of its batch.
#[derive(Clone, Copy)]
struct Item {
    orig_len: u32,
    ts_ns: i64,
    link_type: u16,
    interface: u32,
    record: u64,
    offset: u64,
    /// Interfaces known when the packet was read (pcapng adds them as sections come).
    interfaces: usize,
    start: usize,
    len: usize,
}

#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    items: Vec<Item>,
    /// Every interface known at the end of the batch, when that grew during it.
    interfaces: Option<Vec<Interface>>,
}

enum Message {
    Batch(Batch),
    End { warnings: Vec<String> },
    Failed(CaptureError),
}

/// Records sampled from the start of a file in memory to choose how to read it.
const SAMPLE_RECORDS: u64 = 4096;
/// A file in memory whose sampled records are this long on average, or longer, is read in
/// place by the calling thread; one of shorter records is copied into batches like a stream.
/// With small records the calling thread's load is parsing record headers more than copying
/// bytes, and the batches move that parsing to the second thread: 64-byte TCP took 0.220 s in
/// batches against 0.255 s in place (median of 21 alternating runs, 1,024 flows), a million
/// flows 0.404 against 0.405; from 256 bytes the batches' second copy costs more than it
/// saves (README, "Threads").
const IN_PLACE_MIN_RECORD: u64 = 256;

/// Whether the calling thread reads the input in place rather than from batches.
fn reads_in_place(reader: &CaptureReader) -> bool {
    reader.in_memory()
        && reader
            .mean_record_len(SAMPLE_RECORDS)
            .is_none_or(|mean| mean >= IN_PLACE_MIN_RECORD)
}

/// Replays with a thread writing the output (and, for a stream, reading the input) beside
/// the in-order loop on the calling thread.
pub(super) fn replay(
    reader: &mut CaptureReader,
    writer: Option<&mut CaptureWriter>,
    table: &ForwardTable,
    options: &ReplayOptions,
    observer: &mut impl Observer,
) -> Result<ReplayResult, ReplayError> {
    let mut writer = writer;
    let drain = match writer.as_deref_mut() {
        Some(w) => w.write_behind()?,
        None => None,
    };
    std::thread::scope(|s| {
        let result = if reads_in_place(reader) {
            // Copying a file in memory into batches would only add a copy (README, "Threads",
            // measures both); the calling thread reads it in place.
            if let Some(d) = drain {
                s.spawn(move || d.run());
            }
            in_order(reader, writer.as_deref_mut(), table, options, observer)
        } else {
            let (tx, rx) = bounded::<Message>(DEPTH);
            let (free_tx, free_rx) = bounded::<Batch>(DEPTH + 2);
            s.spawn(move || read_ahead(reader, &tx, &free_rx, drain));
            let mut ahead = Ahead {
                rx,
                free_tx,
                batch: Batch::default(),
                next: 0,
                interfaces: Vec::new(),
                warnings: Vec::new(),
            };
            // The read-ahead thread stops reading once nobody takes its batches (`ahead` is
            // dropped here), and stops writing once write-behind ends; the scope then joins it.
            in_order(&mut ahead, writer.as_deref_mut(), table, options, observer)
        };
        let ended = writer.map_or(Ok(()), |w| w.end_write_behind());
        let result = result?;
        ended?;
        Ok(result)
    })
}

/// The read-ahead thread: copies every packet into batches until the input ends or fails,
/// and meanwhile writes the output buffers the calling thread fills, through `drain`.
fn read_ahead(
    reader: &mut CaptureReader,
    tx: &Sender<Message>,
    free_rx: &Receiver<Batch>,
    mut drain: Option<OutputDrain>,
) {
    read_batches(reader, tx, free_rx, &mut drain);
    if let Some(d) = drain {
        d.run();
    }
}

/// Sends `message`, writing output buffers while the calling thread has not taken it (it may
/// be waiting for its buffer to be written). False if the calling thread is gone.
fn send(tx: &Sender<Message>, message: Message, drain: &mut Option<OutputDrain>) -> bool {
    let Some(d) = drain else {
        return tx.send(message).is_ok();
    };
    // Writing first: the calling thread may be blocked handing over its next full buffer,
    // and `select` would otherwise pick at random.
    while let Ok(buf) = d.pending().try_recv() {
        d.write(buf);
    }
    loop {
        let mut select = Select::new();
        let to_loop = select.send(tx);
        let to_write = select.recv(d.pending());
        let op = select.select();
        if op.index() == to_loop {
            return op.send(tx, message).is_ok();
        }
        debug_assert_eq!(op.index(), to_write);
        match op.recv(d.pending()) {
            Ok(buf) => d.write(buf),
            // Write-behind is over, so the calling thread no longer reads either.
            Err(_) => return false,
        }
    }
}

fn read_batches(
    reader: &mut CaptureReader,
    tx: &Sender<Message>,
    free_rx: &Receiver<Batch>,
    drain: &mut Option<OutputDrain>,
) {
    let fresh = || free_rx.try_recv().unwrap_or_default();
    let mut batch = fresh();
    let mut known = 0;
    let end = loop {
        let pkt = match reader.next_packet() {
            Ok(Some(p)) => p,
            Ok(None) => {
                break Message::End {
                    warnings: Packets::warnings(reader),
                };
            }
            Err(e) => break Message::Failed(e),
        };
        if pkt.interfaces.len() != known {
            known = pkt.interfaces.len();
            batch.interfaces = Some(pkt.interfaces.to_vec());
        }
        let start = batch.data.len();
        batch.data.extend_from_slice(pkt.data);
        batch.items.push(Item {
            orig_len: pkt.orig_len,
            ts_ns: pkt.ts_ns,
            link_type: pkt.link_type,
            interface: pkt.interface,
            record: pkt.record,
            offset: pkt.offset,
            interfaces: known,
            start,
            len: pkt.data.len(),
        });
        if (batch.items.len() == BATCH_PACKETS || batch.data.len() >= BATCH_BYTES)
            && !send(
                tx,
                Message::Batch(std::mem::replace(&mut batch, fresh())),
                drain,
            )
        {
            return;
        }
    };
    if !batch.items.is_empty() && !send(tx, Message::Batch(batch), drain) {
        return;
    }
    send(tx, end, drain);
}

/// The calling thread's side: lends the batches' packets one at a time, in input order.
struct Ahead {
    rx: Receiver<Message>,
    free_tx: Sender<Batch>,
    batch: Batch,
    next: usize,
    interfaces: Vec<Interface>,
    warnings: Vec<String>,
}

impl Ahead {
    /// Moves to the next batch; false at the end of the input.
    #[inline(never)]
    fn refill(&mut self) -> Result<bool, ReplayError> {
        let mut done = std::mem::take(&mut self.batch);
        done.data.clear();
        done.items.clear();
        // The read-ahead thread allocates another if this one is lost.
        let _ = self.free_tx.try_send(done);
        self.next = 0;
        match self.rx.recv() {
            Ok(Message::Batch(mut b)) => {
                if let Some(i) = b.interfaces.take() {
                    self.interfaces = i;
                }
                self.batch = b;
                Ok(true)
            }
            Ok(Message::End { warnings }) => {
                self.warnings = warnings;
                Ok(false)
            }
            Ok(Message::Failed(e)) => Err(e.into()),
            Err(_) => Err(ReplayError::Thread),
        }
    }
}

impl Packets for Ahead {
    #[inline]
    fn next_packet(&mut self) -> Result<Option<Packet<'_>>, ReplayError> {
        while self.next == self.batch.items.len() {
            if !self.refill()? {
                return Ok(None);
            }
        }
        let item = self.batch.items[self.next];
        self.next += 1;
        Ok(Some(Packet {
            data: &self.batch.data[item.start..item.start + item.len],
            orig_len: item.orig_len,
            ts_ns: item.ts_ns,
            link_type: item.link_type,
            interface: item.interface,
            record: item.record,
            offset: item.offset,
            interfaces: &self.interfaces[..item.interfaces.min(self.interfaces.len())],
        }))
    }

    fn warnings(&self) -> Vec<String> {
        self.warnings.clone()
    }

    #[inline]
    fn peek(&mut self, ahead: usize) -> Option<(&[u8], u16)> {
        let item = self.batch.items.get(self.next + ahead)?;
        Some((
            self.batch.data.get(item.start..item.start + item.len)?,
            item.link_type,
        ))
    }
}
