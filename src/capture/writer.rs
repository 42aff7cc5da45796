//! The pcap / pcapng writer: all or nothing, one copy per packet.
//!
//! Records are assembled in one large buffer (the single copy of the packet bytes), where the
//! caller may rewrite them in place; the buffer goes to a temporary file next to the
//! destination that [`CaptureWriter::finish`] renames over it, so a failed or interrupted run
//! never leaves a half-written output or destroys an earlier one.

use crate::output::{TempFile, same_file};
use crossbeam_channel::{Receiver, Sender, TryRecvError, bounded, unbounded};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use super::error::{CaptureError, MAX_RECORD_LEN, WriteProblem};
use super::reader::CaptureReader;
use super::{ByteOrder, Format, Interface, RecordMeta, TSRESOL_MICRO, TSRESOL_NANO};

/// Output buffer size: large writes keep the system call count negligible.
const BUF_CAP: usize = 2 << 20;

const OPT_COMMENT: u16 = 1;

/// How to write the output: its format and interfaces, and the input it must not overwrite.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriterConfig {
    /// Container format and byte order.
    pub format: Format,
    /// Interfaces, in global order; pcap uses the first one's link type and snaplen.
    pub interfaces: Vec<Interface>,
    /// The input file; creating the writer fails when the output is the same file.
    pub input: Option<PathBuf>,
    /// Whether `finish` fsyncs the file before renaming it into place.
    pub fsync: bool,
    /// Write records longer than the snap length as they are (the input had them too, read
    /// leniently); otherwise such a record is an error.
    pub lenient_snaplen: bool,
}

impl WriterConfig {
    /// Reproduces the reader's format: pcap with the same byte order, precision, link type and
    /// snaplen, or pcapng with the same interfaces known so far.
    pub fn like(reader: &CaptureReader) -> WriterConfig {
        WriterConfig {
            format: reader.format(),
            interfaces: reader
                .interfaces()
                .iter()
                .map(|i| Interface { section: 0, ..*i })
                .collect(),
            input: reader.path().map(Path::to_path_buf),
            fsync: false,
            lenient_snaplen: false,
        }
    }

    /// Like [`WriterConfig::like`] but always pcapng, so packets can carry comments; pcap
    /// input keeps its link type, snaplen and precision (as `if_tsresol` 6 or 9).
    pub fn pcapng_annotated(reader: &CaptureReader) -> WriterConfig {
        let mut c = WriterConfig::like(reader);
        if let Format::Pcap { byte_order, .. } = c.format {
            c.format = Format::PcapNg { byte_order };
        }
        c
    }

    /// Like [`WriterConfig::like`] but always pcap: pcapng input must have one link type so
    /// far (pcap has no per-packet interface); its precision becomes micro- or nanoseconds.
    pub fn pcap_like(reader: &CaptureReader) -> Result<WriterConfig, String> {
        let mut c = WriterConfig::like(reader);
        if let Format::PcapNg { byte_order } = c.format {
            let Some(first) = c.interfaces.first().copied() else {
                return Err("the input has no interface description yet".into());
            };
            if let Some(other) = c.interfaces.iter().find(|i| i.link_type != first.link_type) {
                return Err(format!(
                    "the input mixes link types {} and {}, which only pcapng can hold",
                    first.link_type, other.link_type
                ));
            }
            let nanosecond = first.tsresol != TSRESOL_MICRO;
            c.format = Format::Pcap {
                byte_order,
                nanosecond,
            };
            for i in &mut c.interfaces {
                if nanosecond {
                    i.tsresol = TSRESOL_NANO;
                }
            }
        }
        Ok(c)
    }

    /// A pcap output with one link type, in this machine's byte order.
    pub fn pcap(link_type: u16, snaplen: u32, nanosecond: bool) -> WriterConfig {
        let mut ifc = Interface::new(link_type, snaplen);
        if nanosecond {
            ifc.tsresol = TSRESOL_NANO;
        }
        WriterConfig {
            format: Format::Pcap {
                byte_order: ByteOrder::NATIVE,
                nanosecond,
            },
            interfaces: vec![ifc],
            input: None,
            fsync: false,
            lenient_snaplen: false,
        }
    }

    /// A pcapng output with the given interfaces, in this machine's byte order.
    pub fn pcapng(interfaces: Vec<Interface>) -> WriterConfig {
        WriterConfig {
            format: Format::PcapNg {
                byte_order: ByteOrder::NATIVE,
            },
            interfaces,
            input: None,
            fsync: false,
            lenient_snaplen: false,
        }
    }
}

/// Where the finished bytes go: a temporary file renamed over the destination, or stdout.
enum Target {
    File(TempFile),
    Stdout(io::Stdout),
}

/// Output buffers in circulation with write-behind: one being filled, one queued, one being
/// written, so the caller waits only when the writes fall behind.
const BUFFERS_IN_FLIGHT: usize = 3;

/// The writer's side of write-behind: full buffers go out, emptied ones (or the error that
/// stopped the writes) come back.
struct Behind {
    /// Closed to tell the drain the output is over.
    full_tx: Option<Sender<Vec<u8>>>,
    empty_rx: Receiver<io::Result<Vec<u8>>>,
    allocated: usize,
}

impl Behind {
    /// Queues `full` and returns an empty buffer to fill; an error is the drain's.
    fn swap(&mut self, full: Vec<u8>) -> io::Result<Vec<u8>> {
        let next = match self.empty_rx.try_recv() {
            Ok(r) => r?,
            Err(TryRecvError::Empty) if self.allocated < BUFFERS_IN_FLIGHT => {
                self.allocated += 1;
                Vec::with_capacity(BUF_CAP)
            }
            Err(TryRecvError::Empty) => self.empty_rx.recv().map_err(|_| drain_gone())??,
            Err(TryRecvError::Disconnected) => return Err(drain_gone()),
        };
        let tx = self.full_tx.as_ref().ok_or_else(drain_gone)?;
        tx.send(full).map_err(|_| drain_gone())?;
        Ok(next)
    }

    /// Closes the queue and waits until the drain has written it all; its error, if any.
    fn end(&mut self) -> io::Result<()> {
        self.full_tx.take();
        let mut result = Ok(());
        for r in self.empty_rx.iter() {
            if let Err(e) = r {
                result = Err(e);
            }
        }
        result
    }
}

fn drain_gone() -> io::Error {
    io::Error::other("the thread writing the output stopped unexpectedly")
}

/// The far end of [`CaptureWriter::write_behind`]: whoever holds it writes the full buffers
/// the writer queues, on a thread of its choosing, until the writer ends write-behind.
pub struct OutputDrain {
    out: Box<dyn Write + Send>,
    full_rx: Receiver<Vec<u8>>,
    empty_tx: Sender<io::Result<Vec<u8>>>,
    failed: bool,
}

impl OutputDrain {
    /// Where full buffers arrive; select on it to write them as they come.
    pub fn pending(&self) -> &Receiver<Vec<u8>> {
        &self.full_rx
    }

    /// Writes one buffer from [`OutputDrain::pending`] and hands it back emptied. After a
    /// failed write, later buffers are dropped unwritten; the writer reports the error.
    pub fn write(&mut self, mut buf: Vec<u8>) {
        if self.failed {
            return;
        }
        let result = self.out.write_all(&buf).map(|()| {
            buf.clear();
            buf
        });
        self.failed = result.is_err();
        // The writer holds the receiver until write-behind ends, and then nothing is sent.
        let _ = self.empty_tx.send(result);
    }

    /// Writes everything queued until the writer ends write-behind.
    pub fn run(mut self) {
        while let Ok(buf) = self.full_rx.recv() {
            self.write(buf);
        }
    }
}

/// Writes pcap or pcapng to a temporary file renamed over the destination by `finish`.
pub struct CaptureWriter {
    /// Set by [`CaptureWriter::write_behind`].
    behind: Option<Behind>,
    /// `None` once finished or failed past recovery.
    target: Option<Target>,
    dest: PathBuf,
    buf: Vec<u8>,
    format: Format,
    interfaces: Vec<Interface>,
    records: u64,
    fsync: bool,
    lenient_snaplen: bool,
}

impl std::fmt::Debug for CaptureWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("dest", &self.dest)
            .field("format", &self.format)
            .field("interfaces", &self.interfaces)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl CaptureWriter {
    /// Starts writing `path` (`-` is standard output, written directly) as `config` says.
    pub fn create(path: &Path, config: &WriterConfig) -> Result<CaptureWriter, CaptureError> {
        match config.format {
            Format::Pcap { .. } if config.interfaces.is_empty() => {
                return Err(CaptureError::BadConfig {
                    problem: "pcap output needs one interface (its link type and snaplen)",
                });
            }
            Format::PcapNg { .. }
                if !config.interfaces.iter().all(Interface::tsresol_supported) =>
            {
                return Err(CaptureError::BadConfig {
                    problem: "an interface has an if_tsresol finer than 10^-38 s",
                });
            }
            _ => {}
        }
        let dest = path.to_path_buf();
        let target = if path.as_os_str() == "-" {
            Target::Stdout(io::stdout())
        } else {
            if let Some(input) = &config.input
                && same_file(input, path)
            {
                return Err(CaptureError::OutputIsInput { path: dest });
            }
            // The user named the destination; the temporary file is our business.
            let temp = TempFile::create(path).map_err(|source| CaptureError::Open {
                path: dest.clone(),
                source,
            })?;
            Target::File(temp)
        };
        let mut w = CaptureWriter {
            target: Some(target),
            dest,
            buf: Vec::with_capacity(BUF_CAP),
            format: config.format,
            interfaces: Vec::new(),
            records: 0,
            fsync: config.fsync,
            lenient_snaplen: config.lenient_snaplen,
            behind: None,
        };
        match config.format {
            Format::Pcap {
                byte_order,
                nanosecond,
            } => {
                // Checked non-empty above.
                let ifc = config
                    .interfaces
                    .first()
                    .copied()
                    .unwrap_or(Interface::new(1, 0));
                let magic: u32 = if nanosecond { 0xA1B2_3C4D } else { 0xA1B2_C3D4 };
                w.buf.extend_from_slice(&byte_order.u32_bytes(magic));
                w.buf.extend_from_slice(&byte_order.u16_bytes(2));
                w.buf.extend_from_slice(&byte_order.u16_bytes(4));
                w.buf.extend_from_slice(&[0; 8]); // thiszone, sigfigs
                w.buf.extend_from_slice(&byte_order.u32_bytes(ifc.snaplen));
                w.buf
                    .extend_from_slice(&byte_order.u32_bytes(u32::from(ifc.link_type)));
                w.interfaces.push(Interface {
                    tsresol: if nanosecond {
                        TSRESOL_NANO
                    } else {
                        TSRESOL_MICRO
                    },
                    tsoffset: 0,
                    section: 0,
                    ..ifc
                });
            }
            Format::PcapNg { byte_order: bo } => {
                w.buf.extend_from_slice(&bo.u32_bytes(0x0A0D_0D0A));
                w.buf.extend_from_slice(&bo.u32_bytes(28));
                w.buf.extend_from_slice(&bo.u32_bytes(0x1A2B_3C4D));
                w.buf.extend_from_slice(&bo.u16_bytes(1));
                w.buf.extend_from_slice(&bo.u16_bytes(0));
                w.buf.extend_from_slice(&[0xFF; 8]); // section length unknown
                w.buf.extend_from_slice(&bo.u32_bytes(28));
                for ifc in &config.interfaces {
                    w.add_interface(*ifc)?;
                }
            }
        }
        Ok(w)
    }

    /// The interfaces of the output, in global order.
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Records written (kept) so far.
    pub fn records_written(&self) -> u64 {
        self.records
    }

    /// Adds an interface (pcapng) and returns its index; for pcap, which holds one link type,
    /// only an interface with the same link type is accepted (as index 0).
    pub fn add_interface(&mut self, ifc: Interface) -> Result<u32, CaptureError> {
        let bo = match self.format {
            Format::Pcap { .. } => {
                return match self.interfaces.first() {
                    Some(first) if first.link_type == ifc.link_type => Ok(0),
                    _ => Err(CaptureError::BadConfig {
                        problem: "pcap output holds one link type; write pcapng for several",
                    }),
                };
            }
            Format::PcapNg { byte_order } => byte_order,
        };
        if !ifc.tsresol_supported() {
            return Err(CaptureError::BadConfig {
                problem: "an interface has an if_tsresol finer than 10^-38 s",
            });
        }
        let mut opts_len = 0u32;
        if ifc.tsresol != TSRESOL_MICRO {
            opts_len += 8;
        }
        if ifc.tsoffset != 0 {
            opts_len += 12;
        }
        if opts_len > 0 {
            opts_len += 4;
        }
        let len = 20 + opts_len;
        self.buf.extend_from_slice(&bo.u32_bytes(1));
        self.buf.extend_from_slice(&bo.u32_bytes(len));
        self.buf.extend_from_slice(&bo.u16_bytes(ifc.link_type));
        self.buf.extend_from_slice(&[0; 2]);
        self.buf.extend_from_slice(&bo.u32_bytes(ifc.snaplen));
        if ifc.tsresol != TSRESOL_MICRO {
            self.buf.extend_from_slice(&bo.u16_bytes(9));
            self.buf.extend_from_slice(&bo.u16_bytes(1));
            self.buf.extend_from_slice(&[ifc.tsresol, 0, 0, 0]);
        }
        if ifc.tsoffset != 0 {
            self.buf.extend_from_slice(&bo.u16_bytes(14));
            self.buf.extend_from_slice(&bo.u16_bytes(8));
            let v = match bo {
                ByteOrder::Little => ifc.tsoffset.to_le_bytes(),
                ByteOrder::Big => ifc.tsoffset.to_be_bytes(),
            };
            self.buf.extend_from_slice(&v);
        }
        if opts_len > 0 {
            self.buf.extend_from_slice(&[0; 4]);
        }
        self.buf.extend_from_slice(&bo.u32_bytes(len));
        self.interfaces.push(Interface { section: 0, ..ifc });
        Ok(self.interfaces.len() as u32 - 1)
    }

    /// Adds the interfaces of `known` this writer does not have yet (pcapng sections later in
    /// the input), keeping interface indices equal between input and output; pass
    /// [`Packet::interfaces`](super::Packet::interfaces) or [`CaptureReader::interfaces`].
    pub fn sync_interfaces(&mut self, known: &[Interface]) -> Result<(), CaptureError> {
        let have = match self.format {
            Format::Pcap { .. } => 0,
            Format::PcapNg { .. } => self.interfaces.len(),
        };
        for ifc in known.iter().skip(have) {
            self.add_interface(*ifc)?;
        }
        Ok(())
    }

    /// Copies a record into the output buffer, lets `rewrite` change the copied data in place,
    /// and keeps the record if it returns true (otherwise the record is discarded).
    pub fn write_in_place(
        &mut self,
        meta: &RecordMeta,
        data: &[u8],
        rewrite: impl FnOnce(&mut [u8]) -> bool,
    ) -> Result<bool, CaptureError> {
        let (start, data_at) = self.append(meta, data, None)?;
        let keep = match self.buf.get_mut(data_at..data_at + data.len()) {
            Some(bytes) => rewrite(bytes),
            // append() placed exactly data.len() bytes at data_at.
            None => false,
        };
        if keep {
            self.records += 1;
        } else {
            self.buf.truncate(start);
        }
        Ok(keep)
    }

    /// Writes a record as is; `comment` becomes the pcapng `opt_comment` (refused for pcap).
    pub fn write_record(
        &mut self,
        meta: &RecordMeta,
        data: &[u8],
        comment: Option<&str>,
    ) -> Result<(), CaptureError> {
        self.append(meta, data, comment)?;
        self.records += 1;
        Ok(())
    }

    /// Appends a whole record to the buffer; returns where the record and its data start.
    fn append(
        &mut self,
        meta: &RecordMeta,
        data: &[u8],
        comment: Option<&str>,
    ) -> Result<(usize, usize), CaptureError> {
        let record = self.records + 1;
        let fail = |problem| CaptureError::Unwritable { record, problem };
        let len = data.len();
        let ifc = match self.format {
            Format::Pcap { .. } => self.interfaces.first().copied(),
            Format::PcapNg { .. } => self.interfaces.get(meta.interface as usize).copied(),
        }
        .ok_or(fail(WriteProblem::UnknownInterface {
            interface: meta.interface,
            known: self.interfaces.len() as u32,
        }))?;
        if !self.lenient_snaplen && ifc.snaplen != 0 && len > ifc.snaplen as usize {
            return Err(fail(WriteProblem::LongerThanSnaplen {
                len,
                snaplen: ifc.snaplen,
            }));
        }
        // Headroom for the block header, trailer and a comment keeps every block we write
        // under the reader's limit.
        if len > MAX_RECORD_LEN as usize - (1 << 17) {
            return Err(fail(WriteProblem::TooLong { len }));
        }
        let caplen = len as u32;
        match self.format {
            Format::Pcap {
                byte_order: bo,
                nanosecond,
            } => {
                if comment.is_some() {
                    return Err(fail(WriteProblem::CommentNeedsPcapng));
                }
                let sec = meta.ts_ns.div_euclid(1_000_000_000);
                let frac = meta.ts_ns.rem_euclid(1_000_000_000);
                let sec = u32::try_from(sec)
                    .map_err(|_| fail(WriteProblem::TimestampOutOfRange { ts_ns: meta.ts_ns }))?;
                // rem_euclid is in 0..1e9, which fits in u32.
                let frac = if nanosecond { frac } else { frac / 1000 } as u32;
                self.reserve(16 + len)?;
                let start = self.buf.len();
                put_words(&mut self.buf, bo, [sec, frac, caplen, meta.orig_len]);
                self.buf.extend_from_slice(data);
                Ok((start, start + 16))
            }
            Format::PcapNg { byte_order: bo } => {
                let units =
                    ifc.ns_to_units(meta.ts_ns)
                        .ok_or(fail(WriteProblem::TimestampOutOfRange {
                            ts_ns: meta.ts_ns,
                        }))?;
                let comment = comment.map(str::as_bytes);
                let comment_len = comment.map_or(0, <[u8]>::len);
                if comment_len > usize::from(u16::MAX) {
                    return Err(fail(WriteProblem::CommentTooLong { len: comment_len }));
                }
                let pad = |n: usize| (n + 3) & !3;
                let opts = if comment.is_some() {
                    4 + pad(comment_len) + 4
                } else {
                    0
                };
                let total = 32 + pad(len) + opts;
                self.reserve(total)?;
                // total < MAX_RECORD_LEN, checked above through len and comment_len.
                let total32 = total as u32;
                let start = self.buf.len();
                let (ts_high, ts_low) = ((units >> 32) as u32, units as u32);
                let header = [
                    6,
                    total32,
                    meta.interface,
                    ts_high,
                    ts_low,
                    caplen,
                    meta.orig_len,
                ];
                put_words(&mut self.buf, bo, header);
                self.buf.extend_from_slice(data);
                self.buf.resize(self.buf.len() + pad(len) - len, 0);
                if let Some(c) = comment {
                    self.buf.extend_from_slice(&bo.u16_bytes(OPT_COMMENT));
                    self.buf
                        .extend_from_slice(&bo.u16_bytes(comment_len as u16));
                    self.buf.extend_from_slice(c);
                    self.buf
                        .resize(self.buf.len() + pad(comment_len) - comment_len, 0);
                    self.buf.extend_from_slice(&[0; 4]);
                }
                self.buf.extend_from_slice(&bo.u32_bytes(total32));
                Ok((start, start + 28))
            }
        }
    }

    /// Flushes the buffer when `more` bytes would overflow it, so a record stays contiguous.
    fn reserve(&mut self, more: usize) -> Result<(), CaptureError> {
        if self.buf.len() + more > BUF_CAP && !self.buf.is_empty() {
            self.flush_buf()?;
        }
        Ok(())
    }

    /// From now on, full buffers go to the returned drain, which another thread runs (see
    /// [`OutputDrain`]) while this one fills the next buffer. The bytes written are the same;
    /// a write error surfaces at a later call or at [`CaptureWriter::end_write_behind`].
    /// `None` when the output cannot be written from another thread (then nothing changes).
    pub fn write_behind(&mut self) -> Result<Option<OutputDrain>, CaptureError> {
        if self.behind.is_some() {
            return Ok(None);
        }
        let out: Box<dyn Write + Send> = match &mut self.target {
            // A second handle on the same open file (and offset): only the drain writes now.
            Some(Target::File(temp)) => Box::new(
                temp.file()
                    .and_then(|f| f.try_clone())
                    .map_err(|source| self.write_err(source))?,
            ),
            Some(Target::Stdout(_)) => match stdout_handle() {
                Some(out) => out,
                // Without a handle of its own the drain would wait on the caller's lock.
                None => return Ok(None),
            },
            None => return Ok(None),
        };
        let (full_tx, full_rx) = bounded(1);
        let (empty_tx, empty_rx) = unbounded();
        self.behind = Some(Behind {
            full_tx: Some(full_tx),
            empty_rx,
            allocated: 1,
        });
        Ok(Some(OutputDrain {
            out,
            full_rx,
            empty_tx,
            failed: false,
        }))
    }

    /// Waits until the drain has written every queued buffer, then writes directly again.
    /// The drain must keep running until this returns.
    pub fn end_write_behind(&mut self) -> Result<(), CaptureError> {
        match self.behind.take() {
            Some(mut behind) => behind.end().map_err(|source| self.write_err(source)),
            None => Ok(()),
        }
    }

    fn flush_buf(&mut self) -> Result<(), CaptureError> {
        if let Some(behind) = &mut self.behind {
            let full = std::mem::take(&mut self.buf);
            return match behind.swap(full) {
                Ok(next) => {
                    self.buf = next;
                    Ok(())
                }
                Err(source) => Err(self.write_err(source)),
            };
        }
        let res = match &mut self.target {
            Some(Target::File(temp)) => temp.file().and_then(|f| f.write_all(&self.buf)),
            Some(Target::Stdout(out)) => out.lock().write_all(&self.buf),
            None => Ok(()),
        };
        self.buf.clear();
        res.map_err(|source| self.write_err(source))
    }

    fn write_err(&self, source: io::Error) -> CaptureError {
        CaptureError::Write {
            path: self.dest.clone(),
            source,
        }
    }

    /// Writes everything out and moves the file into place; without this call the output is
    /// discarded.
    pub fn finish(mut self) -> Result<(), CaptureError> {
        self.end_write_behind()?;
        self.flush_buf()?;
        match self.target.take() {
            Some(Target::File(mut temp)) => {
                let res = (|| {
                    if self.fsync {
                        temp.file()?.sync_all()?;
                    }
                    temp.commit()
                })();
                res.map_err(|source| self.write_err(source))
            }
            Some(Target::Stdout(mut out)) => out.flush().map_err(|source| self.write_err(source)),
            None => Ok(()),
        }
    }
}

/// A handle on standard output that bypasses `io::Stdout`'s lock, which the caller may hold
/// for its own lines while the drain writes the capture.
fn stdout_handle() -> Option<Box<dyn Write + Send>> {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        let fd = io::stdout().as_fd().try_clone_to_owned().ok()?;
        Some(Box::new(fs::File::from(fd)))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Appends `values` as consecutive 32-bit words in byte order `bo`, in one copy: a record
/// header written field by field cost a copy (and a capacity check) per field.
#[inline]
fn put_words<const N: usize>(buf: &mut Vec<u8>, bo: ByteOrder, values: [u32; N]) {
    let mut bytes = [[0u8; 4]; N];
    for (b, v) in bytes.iter_mut().zip(values) {
        *b = bo.u32_bytes(v);
    }
    buf.extend_from_slice(bytes.as_flattened());
}
