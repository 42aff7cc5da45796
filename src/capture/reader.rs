//! The pcap / pcapng reader.
//!
//! Every length read from the file is checked against the bytes present before it is used,
//! every offset is computed with checked or widened arithmetic, and the only allocations are
//! the stream buffer (bounded by [`MAX_RECORD_LEN`]), the interface list and the warnings.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::Mmap;

use super::error::{
    BlockLengthProblem, BlockProblem, CaptureError, CaptureWarning, MAX_RECORD_LEN,
};
use super::{ByteOrder, Format, Interface, RecordMeta, TSRESOL_MICRO, TSRESOL_NANO};

const PCAP_HEADER_LEN: usize = 24;
const PCAP_RECORD_HEADER_LEN: usize = 16;

const BT_SHB: u32 = 0x0A0D_0D0A;
const BT_IDB: u32 = 0x0000_0001;
const BT_PB: u32 = 0x0000_0002;
const BT_SPB: u32 = 0x0000_0003;
const BT_EPB: u32 = 0x0000_0006;
const BOM: u32 = 0x1A2B_3C4D;

const OPT_END: u16 = 0;
const OPT_IF_TSRESOL: u16 = 9;
const OPT_IF_TSOFFSET: u16 = 14;

/// More interfaces than any real capture has; the limit bounds the memory a file full of
/// interface blocks can make the reader allocate.
const MAX_INTERFACES: usize = 1 << 20;

/// Files up to this size have their pages mapped in ahead of the reader, a window at a time
/// ([`Paging`]); larger ones get the kernel's sequential read-ahead instead.
const POPULATE_LIMIT: u64 = 256 << 20;

/// The window [`Paging`] maps in at a time, a half window before the reader needs it.
const POPULATE_STEP: u64 = 8 << 20;

/// How much a stream read asks the operating system for at once.
const STREAM_CHUNK: usize = 1 << 20;

/// One packet, borrowed from the reader until the next call to [`CaptureReader::next_packet`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// The captured bytes.
    pub data: &'a [u8],
    /// Length on the wire; may be larger than `data.len()` when the capture was snapped.
    pub orig_len: u32,
    /// Nanoseconds since the epoch (0 for pcapng simple packet blocks, which carry none).
    pub ts_ns: i64,
    /// pcap `LINKTYPE_` number of the packet's interface.
    pub link_type: u16,
    /// Global interface index: interfaces of later pcapng sections follow those of earlier ones.
    pub interface: u32,
    /// 1-based packet number in the file.
    pub record: u64,
    /// Byte offset of the record (pcap record header or pcapng block) in the file.
    pub offset: u64,
    /// Every interface known so far (as [`CaptureReader::interfaces`]), so a writer can add
    /// new ones while the packet still borrows the reader.
    pub interfaces: &'a [Interface],
}

impl Packet<'_> {
    /// The fields a writer needs to reproduce this packet's record.
    pub fn meta(&self) -> RecordMeta {
        RecordMeta {
            ts_ns: self.ts_ns,
            orig_len: self.orig_len,
            interface: self.interface,
        }
    }
}

/// Where the bytes come from: a whole file in memory, or a pipe read through a window.
enum Source {
    /// A mapped file, and where the reader is with its pages.
    Mapped(Mmap, Paging),
    Owned(Vec<u8>),
    Stream(Stream),
}

/// A forward-only window over a byte stream; `buf[..filled]` holds file bytes from `base`.
struct Stream {
    rd: Box<dyn Read + Send>,
    buf: Vec<u8>,
    filled: usize,
    base: u64,
    eof: bool,
    /// The descriptor behind `rd` when it is a pipe, terminal or device, so a read can wait
    /// with a timeout and notice a stop request (a pipe may stay silent forever).
    fd: Option<i32>,
    /// Set from elsewhere (a signal) to end the input early.
    stop: Option<Arc<AtomicBool>>,
}

impl Source {
    /// Makes `n` bytes from `pos` available if the input has them; returns how many bytes
    /// from `pos` are available (fewer than `n` only at the end of the input).
    fn fill(&mut self, pos: u64, n: usize) -> Result<u64, CaptureError> {
        match self {
            Source::Mapped(m, paging) => {
                paging.follow(m, pos);
                Ok((m.len() as u64).saturating_sub(pos))
            }
            Source::Owned(v) => Ok((v.len() as u64).saturating_sub(pos)),
            Source::Stream(s) => s.fill(pos, n),
        }
    }

    /// The whole input when it is in memory (mapped or owned), `None` for a stream.
    #[inline]
    fn whole(&self) -> Option<&[u8]> {
        match self {
            Source::Mapped(m, _) => Some(m),
            Source::Owned(v) => Some(v),
            Source::Stream(_) => None,
        }
    }

    /// Up to `n` bytes from `pos`; shorter (possibly empty) past the available bytes.
    fn bytes(&self, pos: u64, n: usize) -> &[u8] {
        let (all, base): (&[u8], u64) = match self {
            Source::Mapped(m, _) => (m, 0),
            Source::Owned(v) => (v, 0),
            Source::Stream(s) => (s.buf.get(..s.filled).unwrap_or(&[]), s.base),
        };
        let Some(start) = pos.checked_sub(base).and_then(|r| usize::try_from(r).ok()) else {
            return &[];
        };
        let Some(rest) = all.get(start..) else {
            return &[];
        };
        &rest[..rest.len().min(n)]
    }
}

/// Pages of a mapped file that were read count toward the process's resident memory until
/// the kernel reclaims them; a multi-gigabyte capture would look like a multi-gigabyte process.
/// The reader only moves forward, so every `RELEASE_STEP` bytes it hands the pages more than
/// `RELEASE_STEP` behind the read position back (they stay in the page cache).
const RELEASE_STEP: u64 = 16 << 20;

/// Maps a regular file of `len` bytes for reading.
#[allow(unsafe_code)]
fn map_file(file: &File, len: u64) -> io::Result<Mmap> {
    // SAFETY: the map is read-only and private to this reader. Like every reader of a mapped
    // file we rely on no other process truncating the file while we read it (that would raise
    // SIGBUS); rewriting a capture that is still being captured to needs the streaming path
    // (`cat f | dnatsim ... -`).
    let map = unsafe { memmap2::MmapOptions::new().map(file) }?;
    if len > POPULATE_LIMIT {
        // Only a hint; a failure changes nothing but speed.
        let _ = map.advise(memmap2::Advice::Sequential);
    }
    Ok(map)
}

/// A mapped file's pages around the reader. Ahead of it, the next window is mapped in once
/// the reader is within half a window of the end of those already mapped in: one call maps a
/// whole window where a page fault maps a few pages (1.5x read throughput on a cached file,
/// measured with the whole file mapped in at open), and a window at a time, rather than the
/// whole file at open, lets the thread that reads the file pay for it as it goes (with two
/// threads and small records, the read-ahead thread, so the calling thread no longer waits
/// for it before the first packet). Behind it, pages are handed back to the kernel every
/// [`RELEASE_STEP`] bytes.
struct Paging {
    /// How far pages have been handed back.
    released: u64,
    /// How far pages have been mapped in ahead (`u64::MAX` for a file too large to be).
    populated: u64,
    /// The reader position from which either has work to do: the one check made per record.
    next: u64,
}

impl Paging {
    /// Paging for a file of `len` bytes, nothing done yet.
    fn new(len: u64) -> Paging {
        let populated = if len <= POPULATE_LIMIT { 0 } else { u64::MAX };
        Paging {
            released: 0,
            populated,
            next: 0,
        }
    }

    /// The reader is at `pos` (the start of the record it is about to read).
    #[inline]
    fn follow(&mut self, map: &Mmap, pos: u64) {
        if pos >= self.next {
            self.turn(map, pos);
        }
    }

    #[inline(never)]
    fn turn(&mut self, map: &Mmap, pos: u64) {
        let upto = pos.saturating_sub(RELEASE_STEP) & !(RELEASE_STEP - 1);
        if upto >= self.released + RELEASE_STEP {
            self.release(map, upto);
        }
        if pos.saturating_add(POPULATE_STEP / 2) >= self.populated {
            self.populate(map);
        }
        // Releasing is due once `upto` reaches `released + RELEASE_STEP`, mapping in once the
        // reader is half a window from `populated`.
        self.next = (self.released + 2 * RELEASE_STEP)
            .min(self.populated.saturating_sub(POPULATE_STEP / 2));
    }

    fn populate(&mut self, map: &Mmap) {
        let len = map.len() as u64;
        let (Ok(offset), Ok(step)) = (
            usize::try_from(self.populated),
            usize::try_from(POPULATE_STEP.min(len.saturating_sub(self.populated))),
        ) else {
            return;
        };
        if step > 0 {
            // Only a hint (kernels before 5.14 refuse it); a failure changes nothing but speed.
            let _ = map.advise_range(memmap2::Advice::PopulateRead, offset, step);
        }
        self.populated = self.populated.saturating_add(POPULATE_STEP);
    }

    #[allow(unsafe_code)]
    fn release(&mut self, map: &Mmap, upto: u64) {
        let (Ok(offset), Ok(len)) = (
            usize::try_from(self.released),
            usize::try_from(upto - self.released),
        ) else {
            return;
        };
        // SAFETY: MADV_DONTNEED on a private, read-only file mapping only drops clean pages; a
        // later access would fault them in again from the file, unchanged. Every `fill` is
        // called with the start of the record about to be read, and packets are lent one at a
        // time, so no borrowed byte lies before the read position (of which `upto` is at least
        // 16 MiB short).
        let _ =
            unsafe { map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len) };
        self.released = upto;
    }
}

/// Where the data of the pcap record whose header starts at `pos` of `whole` starts, and its
/// captured length as the header gives it (unchecked); `None` without a whole header there.
#[inline]
fn pcap_record_at(whole: &[u8], byte_order: ByteOrder, pos: u64) -> Option<(u64, u64)> {
    let start = usize::try_from(pos).ok()?;
    let header = whole.get(start..start.checked_add(PCAP_RECORD_HEADER_LEN)?)?;
    let caplen = u64::from(byte_order.u32(arr4(header, 8)));
    Some((pos + PCAP_RECORD_HEADER_LEN as u64, caplen))
}

impl Stream {
    // Out of line: the mapped source's per-record check stays a few instructions.
    #[inline(never)]
    fn fill(&mut self, pos: u64, n: usize) -> Result<u64, CaptureError> {
        let rel = pos.saturating_sub(self.base);
        if rel.saturating_add(n as u64) <= self.filled as u64 {
            return Ok(self.filled as u64 - rel);
        }
        // Drop what lies before `pos`: callers only move forward, so this bounds the buffer
        // to one record plus one read chunk.
        if rel >= self.filled as u64 {
            let skip = rel - self.filled as u64;
            self.base += self.filled as u64;
            self.filled = 0;
            if skip > 0 {
                let skipped = io::copy(&mut (&mut self.rd).take(skip), &mut io::sink()).map_err(
                    |source| CaptureError::Read {
                        offset: self.base,
                        source,
                    },
                )?;
                self.base += skipped;
                if skipped < skip {
                    self.eof = true;
                    return Ok(0);
                }
            }
        } else {
            // rel < filled <= buf.len(), so the range is in bounds.
            let rel = rel as usize;
            self.buf.copy_within(rel..self.filled, 0);
            self.filled -= rel;
            self.base = pos;
        }
        if self.buf.len() < n.max(STREAM_CHUNK) {
            self.buf.resize(n.max(STREAM_CHUNK), 0);
        }
        while self.filled < n && !self.eof {
            if !self.wait_readable() {
                // Stopped: what was read so far is the whole input.
                self.eof = true;
                break;
            }
            let spare = self.buf.get_mut(self.filled..).unwrap_or(&mut []);
            match self.rd.read(spare) {
                Ok(0) => self.eof = true,
                Ok(k) => self.filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CaptureError::Read {
                        offset: self.base + self.filled as u64,
                        source,
                    });
                }
            }
        }
        Ok(self.filled as u64)
    }
}

enum Kind {
    Pcap {
        byte_order: ByteOrder,
        snaplen: u32,
        nanosecond: bool,
    },
    PcapNg {
        /// Byte order of the current section.
        byte_order: ByteOrder,
        /// Sections seen so far.
        sections: u32,
        /// Global index of the first interface of the current section.
        section_base: u32,
    },
}

/// Where the packet found by the parser lies; turned into a [`Packet`] once parsing is over,
/// so the mutable parse and the shared borrow of the data never overlap.
struct Found {
    data_pos: u64,
    caplen: u32,
    orig_len: u32,
    ts_ns: i64,
    interface: u32,
    offset: u64,
}

/// Reads pcap and pcapng files, handing out one borrowed packet at a time.
pub struct CaptureReader {
    src: Source,
    path: Option<PathBuf>,
    format: Format,
    kind: Kind,
    interfaces: Vec<Interface>,
    warnings: Vec<CaptureWarning>,
    /// Offset of the next record or block.
    pos: u64,
    /// Packets delivered so far.
    records: u64,
    /// Set from elsewhere (a signal) to end the input after the current packet.
    stop: Option<Arc<AtomicBool>>,
    /// A second cursor for [`CaptureReader::peek_ahead`]: the offset of a pcap record and
    /// the number of records before it (so it is stale once `records` passes that).
    ahead: Option<(u64, u64)>,
    /// pcapng blocks consumed so far.
    blocks: u64,
    done: bool,
    /// Deliver records longer than the snapshot length instead of failing.
    lenient_snaplen: bool,
    /// Whether the lenient-snaplen warning was recorded already.
    warned_snaplen: bool,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("interfaces", &self.interfaces)
            .field("pos", &self.pos)
            .field("records", &self.records)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Opens a capture: regular files are memory-mapped read-only, `-` reads standard input
    /// and other files (pipes, devices) are streamed through a bounded buffer.
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        Self::open_with(path, None)
    }

    /// Like [`CaptureReader::open`], with a flag that ends the input early once set: the
    /// packets read by then are the whole input. A stream waiting for data (also for its file
    /// header) notices within 100 ms; a mapped file within 1,024 records.
    pub fn open_stoppable(
        path: &Path,
        stop: Arc<AtomicBool>,
    ) -> Result<CaptureReader, CaptureError> {
        Self::open_with(path, Some(stop))
    }

    fn open_with(
        path: &Path,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<CaptureReader, CaptureError> {
        let stream = |rd: Box<dyn Read + Send>, fd: i32| {
            let mut s = Stream::new(rd, Some(fd));
            s.stop = stop.clone();
            Source::Stream(s)
        };
        if path.as_os_str() == "-" {
            let mut r = Self::init(stream(Box::new(io::stdin()), 0))?;
            r.path = None;
            r.stop = stop;
            return Ok(r);
        }
        let open_err = |source| CaptureError::Open {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(open_err)?;
        let meta = file.metadata().map_err(open_err)?;
        if meta.is_dir() {
            return Err(open_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "it is a directory, not a capture file",
            )));
        }
        let src = if !meta.is_file() {
            let fd = std::os::fd::AsRawFd::as_raw_fd(&file);
            stream(Box::new(file), fd)
        } else if meta.len() == 0 {
            // Mapping an empty file fails on some systems; there is nothing to map anyway.
            Source::Owned(Vec::new())
        } else {
            let map = map_file(&file, meta.len()).map_err(open_err)?;
            Source::Mapped(map, Paging::new(meta.len()))
        };
        let mut r = Self::init(src)?;
        r.path = Some(path.to_path_buf());
        r.stop = stop;
        Ok(r)
    }

    /// Reads a capture held in memory (tests, small inputs).
    pub fn from_bytes(bytes: Vec<u8>) -> Result<CaptureReader, CaptureError> {
        Self::init(Source::Owned(bytes))
    }

    /// Streams a capture from any reader with bounded memory (about one record plus 1 MiB).
    pub fn from_reader(rd: Box<dyn Read + Send>) -> Result<CaptureReader, CaptureError> {
        Self::init(Source::Stream(Stream::new(rd, None)))
    }

    fn init(mut src: Source) -> Result<CaptureReader, CaptureError> {
        let avail = src.fill(0, PCAP_HEADER_LEN)?;
        if avail < 4 {
            return Err(CaptureError::TruncatedHeader {
                what: "capture file header",
                offset: 0,
                available: avail,
                needed: 4,
            });
        }
        let head = src.bytes(0, PCAP_HEADER_LEN);
        let magic_be = u32::from_be_bytes(arr4(head, 0));
        let pcap = match magic_be {
            0xA1B2_C3D4 => Some((ByteOrder::Big, false)),
            0xD4C3_B2A1 => Some((ByteOrder::Little, false)),
            0xA1B2_3C4D => Some((ByteOrder::Big, true)),
            0x4D3C_B2A1 => Some((ByteOrder::Little, true)),
            _ => None,
        };
        let mut reader = CaptureReader {
            src: Source::Owned(Vec::new()),
            ahead: None,
            path: None,
            format: Format::PcapNg {
                byte_order: ByteOrder::NATIVE,
            },
            kind: Kind::PcapNg {
                byte_order: ByteOrder::NATIVE,
                sections: 0,
                section_base: 0,
            },
            interfaces: Vec::new(),
            warnings: Vec::new(),
            pos: 0,
            records: 0,
            stop: None,
            blocks: 0,
            done: false,
            lenient_snaplen: false,
            warned_snaplen: false,
        };
        if let Some((bo, nanosecond)) = pcap {
            if head.len() < PCAP_HEADER_LEN {
                return Err(CaptureError::TruncatedHeader {
                    what: "pcap file header",
                    offset: 0,
                    available: head.len() as u64,
                    needed: PCAP_HEADER_LEN as u64,
                });
            }
            // thiszone and sigfigs are always 0 in practice and ignored by libpcap too.
            let snaplen = bo.u32(arr4(head, 16));
            // The upper bits carry FCS information; the link type is the low 16 bits.
            let link_type = (bo.u32(arr4(head, 20)) & 0xFFFF) as u16;
            reader.format = Format::Pcap {
                byte_order: bo,
                nanosecond,
            };
            reader.kind = Kind::Pcap {
                byte_order: bo,
                snaplen,
                nanosecond,
            };
            reader.interfaces.push(Interface {
                link_type,
                snaplen,
                tsresol: if nanosecond {
                    TSRESOL_NANO
                } else {
                    TSRESOL_MICRO
                },
                tsoffset: 0,
                section: 0,
            });
            reader.pos = PCAP_HEADER_LEN as u64;
            reader.src = src;
            return Ok(reader);
        }
        if magic_be != BT_SHB {
            return Err(CaptureError::UnknownMagic {
                magic: magic_be,
                offset: 0,
            });
        }
        if head.len() < 12 {
            return Err(CaptureError::TruncatedHeader {
                what: "pcapng section header block",
                offset: 0,
                available: head.len() as u64,
                needed: 28,
            });
        }
        let bo = match section_byte_order(arr4(head, 8)) {
            Ok(bo) => bo,
            Err(magic) => {
                return Err(CaptureError::BadBlock {
                    block: 1,
                    block_type: BT_SHB,
                    offset: 0,
                    problem: BlockProblem::BadByteOrderMagic { magic },
                });
            }
        };
        reader.format = Format::PcapNg { byte_order: bo };
        reader.kind = Kind::PcapNg {
            byte_order: bo,
            sections: 0,
            section_base: 0,
        };
        reader.src = src;
        // Read the blocks before the first packet, so the interfaces are known to a writer
        // built right after opening.
        reader.advance(true)?;
        Ok(reader)
    }

    /// The container format, for a writer that reproduces it.
    pub fn format(&self) -> Format {
        self.format
    }

    /// Interfaces described so far (pcapng sections later in the file add to the list).
    pub fn interfaces(&self) -> &[Interface] {
        &self.interfaces
    }

    /// Problems survived so far, such as a cut-off last record.
    pub fn warnings(&self) -> &[CaptureWarning] {
        &self.warnings
    }

    /// The file being read, `None` for standard input and in-memory captures.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Packets delivered so far.
    pub fn packets_read(&self) -> u64 {
        self.records
    }

    /// Accepts records whose captured length exceeds the snapshot length (as Wireshark does)
    /// instead of failing; the first one is reported in [`CaptureReader::warnings`].
    ///
    /// Strict is the default because such a record usually means the file is corrupt from
    /// there on; fuzzed or hand-edited files (e.g. tcpdump's test corpus) need leniency.
    pub fn set_lenient_snaplen(&mut self, lenient: bool) {
        self.lenient_snaplen = lenient;
    }

    /// Applies the snapshot-length policy: an error in strict mode, a warning once otherwise.
    fn over_snaplen(
        &mut self,
        offset: u64,
        caplen: u32,
        snaplen: u32,
        strict_err: impl FnOnce() -> CaptureError,
    ) -> Result<(), CaptureError> {
        // A snaplen of 0 is written by some tools to mean "unknown"; it cannot bound anything.
        if snaplen == 0 || caplen <= snaplen {
            return Ok(());
        }
        if !self.lenient_snaplen {
            return Err(strict_err());
        }
        if !self.warned_snaplen {
            self.warned_snaplen = true;
            self.warnings.push(CaptureWarning::CaplenOverSnaplen {
                record: self.records + 1,
                offset,
                caplen,
                snaplen,
            });
        }
        Ok(())
    }

    /// Whether the whole input is in memory (a mapped file or bytes), so reading a packet
    /// copies nothing and [`CaptureReader::peek_ahead`] can look ahead.
    pub fn in_memory(&self) -> bool {
        self.src.whole().is_some()
    }

    /// The mean captured length of up to `records` records from the next one: a pcap file in
    /// memory only, `None` otherwise or when no whole record header follows. Reads record
    /// headers only; nothing is consumed or checked.
    pub fn mean_record_len(&self, records: u64) -> Option<u64> {
        let Kind::Pcap { byte_order, .. } = self.kind else {
            return None;
        };
        let whole = self.src.whole()?;
        let (mut pos, mut seen, mut sum) = (self.pos, 0u64, 0u64);
        while seen < records {
            let Some((data, caplen)) = pcap_record_at(whole, byte_order, pos) else {
                break;
            };
            sum += caplen;
            seen += 1;
            pos = data + caplen;
        }
        sum.checked_div(seen)
    }

    /// The frame and link type of the packet `distance` packets after the next one, for
    /// prefetching: a pcap file in memory only, `None` otherwise or past the end. Called once
    /// per packet with the same `distance`, it walks one record header per call (a shorter
    /// distance than the last call's walks again from the next packet). Only a hint:
    /// the record is not checked as [`CaptureReader::next_packet`] will check it.
    #[inline]
    pub fn peek_ahead(&mut self, distance: u64) -> Option<(&[u8], u16)> {
        let Kind::Pcap { byte_order, .. } = self.kind else {
            return None;
        };
        let whole = self.src.whole()?;
        let target = self.records + distance;
        let (mut pos, mut before) = match self.ahead {
            Some((pos, before)) if (self.records..=target).contains(&before) => (pos, before),
            _ => (self.pos, self.records),
        };
        while before < target {
            let (data, caplen) = pcap_record_at(whole, byte_order, pos)?;
            pos = data + caplen;
            before += 1;
        }
        self.ahead = Some((pos, before));
        let (data, caplen) = pcap_record_at(whole, byte_order, pos)?;
        let start = usize::try_from(data).ok()?;
        let frame = whole.get(start..start.checked_add(usize::try_from(caplen).ok()?)?)?;
        let link_type = self.interfaces.first().map_or(0, |i| i.link_type);
        Some((frame, link_type))
    }

    /// The next packet, `None` at the end of the file (or after a cut-off last record).
    pub fn next_packet(&mut self) -> Result<Option<Packet<'_>>, CaptureError> {
        let Some(found) = self.advance(false)? else {
            return Ok(None);
        };
        let link_type = self
            .interfaces
            .get(found.interface as usize)
            .map_or(0, |i| i.link_type);
        let data = self.src.bytes(found.data_pos, found.caplen as usize);
        Ok(Some(Packet {
            data,
            orig_len: found.orig_len,
            ts_ns: found.ts_ns,
            link_type,
            interface: found.interface,
            record: self.records,
            offset: found.offset,
            interfaces: &self.interfaces,
        }))
    }

    /// Parses up to the next packet. With `stop_before_packet` it stops in front of the first
    /// packet block without consuming it (used to learn the interfaces at open time).
    fn advance(&mut self, stop_before_packet: bool) -> Result<Option<Found>, CaptureError> {
        // A stop request is looked at every 1,024 records (a few microseconds of a mapped
        // file); a stream also notices it while waiting for data (`Stream::wait_readable`).
        if self.done || (self.records & 0x3ff == 0 && self.stopped()) {
            return Ok(None);
        }
        let res = match self.kind {
            Kind::Pcap {
                byte_order,
                snaplen,
                nanosecond,
                ..
            } => self.next_pcap(byte_order, snaplen, nanosecond),
            Kind::PcapNg { .. } => self.next_pcapng(stop_before_packet),
        };
        match &res {
            Ok(Some(_)) => self.records += 1,
            Ok(None) => {}
            // A stream cut by a stop request can end inside a block; that is the stop, not
            // a defect of the input.
            Err(_) if self.stopped() => {
                self.done = true;
                return Ok(None);
            }
            // Errors are final: a later call must not resync on garbage.
            Err(_) => self.done = true,
        }
        res
    }

    /// Whether a stop was requested.
    #[inline]
    fn stopped(&self) -> bool {
        self.stop
            .as_ref()
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Whether the input ended because a stop was requested, not at its end.
    pub fn was_stopped(&self) -> bool {
        self.stopped()
    }

    /// Ends the input at a record cut off by its end, with a warning unless a stop request
    /// cut it; always `None`, whatever the caller was to return.
    fn cut_short<T>(&mut self, offset: u64, available: u64, needed: u64) -> Option<T> {
        self.done = true;
        // A record cut by a stop request is not a defect of the input.
        if self.stopped() {
            return None;
        }
        self.warnings.push(CaptureWarning::CutShort {
            record: self.records + 1,
            offset,
            available,
            needed,
        });
        None
    }

    /// The next record of a pcap file. Inlined into `advance`, unlike `next_pcapng`: out of
    /// line it cost a replay of 64-byte TCP packets 14 instructions a packet (callgrind,
    /// `scripts/profile.sh`'s input), its result coming back through memory.
    #[inline]
    fn next_pcap(
        &mut self,
        bo: ByteOrder,
        snaplen: u32,
        nanosecond: bool,
    ) -> Result<Option<Found>, CaptureError> {
        let pos = self.pos;
        let avail = self.src.fill(pos, PCAP_RECORD_HEADER_LEN)?;
        if avail == 0 {
            self.done = true;
            return Ok(None);
        }
        if avail < PCAP_RECORD_HEADER_LEN as u64 {
            return Ok(self.cut_short(pos, avail, PCAP_RECORD_HEADER_LEN as u64));
        }
        let h = self.src.bytes(pos, PCAP_RECORD_HEADER_LEN);
        let ts_sec = bo.u32(arr4(h, 0));
        let ts_frac = bo.u32(arr4(h, 4));
        let caplen = bo.u32(arr4(h, 8));
        let orig_len = bo.u32(arr4(h, 12));
        let record = self.records + 1;
        if caplen > MAX_RECORD_LEN {
            return Err(CaptureError::CaplenTooLarge {
                record,
                offset: pos,
                caplen,
                limit: MAX_RECORD_LEN,
            });
        }
        self.over_snaplen(pos, caplen, snaplen, || CaptureError::CaplenOverSnaplen {
            record,
            offset: pos,
            caplen,
            snaplen,
        })?;
        let needed = PCAP_RECORD_HEADER_LEN + caplen as usize;
        let avail = self.src.fill(pos, needed)?;
        if avail < needed as u64 {
            return Ok(self.cut_short(pos, avail, needed as u64));
        }
        let frac_ns = if nanosecond {
            i64::from(ts_frac)
        } else {
            i64::from(ts_frac) * 1000
        };
        self.pos = pos + needed as u64;
        Ok(Some(Found {
            data_pos: pos + PCAP_RECORD_HEADER_LEN as u64,
            caplen,
            orig_len,
            // u32 seconds * 1e9 < 4.3e18 < i64::MAX, and the fraction adds < 4.3e12.
            ts_ns: i64::from(ts_sec) * 1_000_000_000 + frac_ns,
            interface: 0,
            offset: pos,
        }))
    }

    /// The next packet of a pcapng file, reading past the blocks that carry none. The block's
    /// framing (type, length, trailer) is checked here, then its type's reader takes over.
    ///
    /// It stays a function of its own rather than inlined into `advance`, so its state does
    /// not weigh on the pcap path (callgrind on benches/capture.rs: with this function's block
    /// readers inlined into `advance`, a pcap record took 17 instructions more).
    #[inline(never)]
    fn next_pcapng(&mut self, stop_before_packet: bool) -> Result<Option<Found>, CaptureError> {
        loop {
            let Kind::PcapNg {
                byte_order,
                sections,
                section_base,
            } = self.kind
            else {
                return Ok(None);
            };
            let pos = self.pos;
            let avail = self.src.fill(pos, 12)?;
            if avail == 0 {
                self.done = true;
                return Ok(None);
            }
            let block = self.blocks + 1;
            let h = self.src.bytes(pos, 12);
            if h.len() < 8 {
                return Ok(self.cut_short(pos, avail, 8));
            }
            // The section header type is a palindrome, so it reads the same in either order.
            let block_type = byte_order.u32(arr4(h, 0));
            let mut bo = byte_order;
            if block_type == BT_SHB {
                if h.len() < 12 {
                    return Err(CaptureError::TruncatedHeader {
                        what: "pcapng section header block",
                        offset: pos,
                        available: avail,
                        needed: 28,
                    });
                }
                bo = section_byte_order(arr4(h, 8)).map_err(|magic| CaptureError::BadBlock {
                    block,
                    block_type,
                    offset: pos,
                    problem: BlockProblem::BadByteOrderMagic { magic },
                })?;
            }
            let length = bo.u32(arr4(h, 4));
            let blk = Block {
                number: block,
                block_type,
                offset: pos,
                length,
                byte_order: bo,
            };
            if let Err(problem) = blk.check_length() {
                return Err(blk.bad_length(problem));
            }
            let is_packet = matches!(block_type, BT_EPB | BT_SPB | BT_PB);
            if is_packet && stop_before_packet {
                return Ok(None);
            }
            let avail = self.src.fill(pos, length as usize)?;
            if avail < u64::from(length) {
                // A packet block cut by the end of the file is a capture that was stopped
                // mid-write; anything else running past the end is corruption.
                if is_packet {
                    return Ok(self.cut_short(pos, avail, u64::from(length)));
                }
                return Err(blk.bad_length(BlockLengthProblem::PastEndOfFile { available: avail }));
            }
            let b = self.src.bytes(pos, length as usize);
            if let Err(problem) = blk.check_trailer(b) {
                return Err(blk.bad_length(problem));
            }
            self.blocks = block;
            self.pos = pos + u64::from(length);
            match block_type {
                BT_SHB => self.section_header(&blk, sections)?,
                BT_IDB => self.interface_description(&blk, sections)?,
                BT_EPB | BT_PB => {
                    let fields = PacketFields::read(&blk, b);
                    return self.packet_block(&blk, fields, section_base);
                }
                BT_SPB => {
                    let orig_len = bo.u32(arr4(b, 8));
                    return self.simple_packet_block(&blk, orig_len, section_base);
                }
                // Name resolution, statistics, custom and unknown blocks carry no packets.
                _ => {}
            }
        }
    }

    /// A section header block: a new section, with its own byte order and interfaces.
    fn section_header(&mut self, blk: &Block, sections: u32) -> Result<(), CaptureError> {
        let bo = blk.byte_order;
        let b = self.src.bytes(blk.offset, blk.length as usize);
        let major = bo.u16(arr2(b, 12));
        let minor = bo.u16(arr2(b, 14));
        if major != 1 {
            return Err(blk.bad(BlockProblem::UnsupportedVersion { major, minor }));
        }
        self.kind = Kind::PcapNg {
            byte_order: bo,
            sections: sections.saturating_add(1),
            section_base: self.interfaces.len() as u32,
        };
        Ok(())
    }

    /// An interface description block: the next interface of the current section.
    fn interface_description(&mut self, blk: &Block, sections: u32) -> Result<(), CaptureError> {
        let bo = blk.byte_order;
        let b = self.src.bytes(blk.offset, blk.length as usize);
        let link_type = bo.u16(arr2(b, 8));
        let snaplen = bo.u32(arr4(b, 12));
        let mut ifc = Interface {
            link_type,
            snaplen,
            tsresol: TSRESOL_MICRO,
            tsoffset: 0,
            section: sections.saturating_sub(1),
        };
        for opt in Options::new(b, 16, bo) {
            let (code, value) = opt.map_err(|(at, code, len)| {
                blk.bad(BlockProblem::OptionPastBlock {
                    option_offset: blk.offset + at as u64,
                    code,
                    length: len,
                })
            })?;
            match code {
                OPT_IF_TSRESOL if !value.is_empty() => ifc.tsresol = value[0],
                OPT_IF_TSOFFSET if value.len() == 8 => {
                    let v = [
                        value[0], value[1], value[2], value[3], value[4], value[5], value[6],
                        value[7],
                    ];
                    ifc.tsoffset = match bo {
                        ByteOrder::Little => i64::from_le_bytes(v),
                        ByteOrder::Big => i64::from_be_bytes(v),
                    };
                }
                _ => {}
            }
        }
        if !ifc.tsresol_supported() {
            return Err(blk.bad(BlockProblem::UnsupportedTsresol {
                tsresol: ifc.tsresol,
            }));
        }
        if self.interfaces.len() >= MAX_INTERFACES {
            return Err(blk.bad(BlockProblem::TooManyInterfaces {
                limit: MAX_INTERFACES as u32,
            }));
        }
        self.interfaces.push(ifc);
        Ok(())
    }

    /// An enhanced packet block, or the obsolete packet block laid out like it: its fields
    /// checked against the section's interfaces, the snapshot-length policy applied.
    #[inline]
    fn packet_block(
        &mut self,
        blk: &Block,
        p: PacketFields,
        section_base: u32,
    ) -> Result<Option<Found>, CaptureError> {
        let section_ifaces = (self.interfaces.len() as u32).saturating_sub(section_base);
        if p.local >= section_ifaces {
            return Err(blk.bad(BlockProblem::UnknownInterface {
                interface: p.local,
                known: section_ifaces,
            }));
        }
        let room = blk.length - 32;
        if p.caplen > room {
            return Err(blk.bad(BlockProblem::CaplenPastBlock {
                caplen: p.caplen,
                room,
            }));
        }
        let interface = section_base + p.local;
        // local < section_ifaces, so the index is in the list.
        let Some(&ifc) = self.interfaces.get(interface as usize) else {
            return Ok(None);
        };
        self.over_snaplen(blk.offset, p.caplen, ifc.snaplen, || {
            blk.bad(BlockProblem::CaplenOverSnaplen {
                caplen: p.caplen,
                snaplen: ifc.snaplen,
            })
        })?;
        Ok(Some(Found {
            data_pos: blk.offset + 28,
            caplen: p.caplen,
            orig_len: p.orig_len,
            ts_ns: ifc.units_to_ns(p.ts_units),
            interface,
            offset: blk.offset,
        }))
    }

    /// A simple packet block: the section's first interface, no timestamp, and a captured
    /// length implied by the block's.
    #[inline]
    fn simple_packet_block(
        &mut self,
        blk: &Block,
        orig_len: u32,
        section_base: u32,
    ) -> Result<Option<Found>, CaptureError> {
        let section_ifaces = (self.interfaces.len() as u32).saturating_sub(section_base);
        if section_ifaces == 0 {
            return Err(blk.bad(BlockProblem::UnknownInterface {
                interface: 0,
                known: 0,
            }));
        }
        // The section has an interface, checked above.
        let Some(&ifc) = self.interfaces.get(section_base as usize) else {
            return Ok(None);
        };
        // The captured length is implied: the packet, cut to the snapshot length, padded to
        // fill the block.
        let mut caplen = orig_len.min(blk.length - 16);
        if ifc.snaplen != 0 {
            caplen = caplen.min(ifc.snaplen);
        }
        Ok(Some(Found {
            data_pos: blk.offset + 12,
            caplen,
            orig_len,
            ts_ns: 0,
            interface: section_base,
            offset: blk.offset,
        }))
    }
}

/// A pcapng block read so far: where it is, its type and length, its section's byte order.
struct Block {
    /// 1-based block number in the file.
    number: u64,
    block_type: u32,
    /// Where the block starts.
    offset: u64,
    length: u32,
    /// The byte order of its section (its own, for a section header block).
    byte_order: ByteOrder,
}

impl Block {
    /// The length field: a multiple of 4, at least the framing's 12 bytes, at most any real
    /// record.
    #[inline]
    fn check_length(&self) -> Result<(), BlockLengthProblem> {
        if self.length < 12 {
            return Err(BlockLengthProblem::TooShort);
        }
        if !self.length.is_multiple_of(4) {
            return Err(BlockLengthProblem::NotMultipleOf4);
        }
        if self.length > MAX_RECORD_LEN {
            return Err(BlockLengthProblem::TooLarge);
        }
        Ok(())
    }

    /// The whole block `b`: its trailer repeats the length, which is no shorter than the
    /// block's type needs.
    #[inline]
    fn check_trailer(&self, b: &[u8]) -> Result<(), BlockLengthProblem> {
        let trailer = self.byte_order.u32(arr4(b, b.len().saturating_sub(4)));
        if trailer != self.length {
            return Err(BlockLengthProblem::TrailerMismatch { trailer });
        }
        let minimum = match self.block_type {
            BT_SHB => 28,
            BT_IDB => 20,
            BT_EPB | BT_PB => 32,
            BT_SPB => 16,
            _ => 12,
        };
        if self.length < minimum {
            return Err(BlockLengthProblem::TooShortForType { minimum });
        }
        Ok(())
    }

    /// The error for a block whose length is wrong.
    fn bad_length(&self, problem: BlockLengthProblem) -> CaptureError {
        CaptureError::BadBlockLength {
            block: self.number,
            block_type: self.block_type,
            offset: self.offset,
            length: self.length,
            problem,
        }
    }

    /// The error for a block whose contents are wrong.
    fn bad(&self, problem: BlockProblem) -> CaptureError {
        CaptureError::BadBlock {
            block: self.number,
            block_type: self.block_type,
            offset: self.offset,
            problem,
        }
    }
}

/// The fixed fields of an enhanced packet block (or of an obsolete packet block, whose
/// interface id is 16 bits), as read from the block's bytes.
#[derive(Clone, Copy)]
struct PacketFields {
    /// The interface's index within its section.
    local: u32,
    /// The timestamp in the interface's units.
    ts_units: u64,
    caplen: u32,
    orig_len: u32,
}

impl PacketFields {
    /// Reads the fields of `b`, a whole packet block of at least 32 bytes.
    #[inline]
    fn read(blk: &Block, b: &[u8]) -> PacketFields {
        let bo = blk.byte_order;
        let local = if blk.block_type == BT_EPB {
            bo.u32(arr4(b, 8))
        } else {
            u32::from(bo.u16(arr2(b, 8)))
        };
        let ts_high = bo.u32(arr4(b, 12));
        let ts_low = bo.u32(arr4(b, 16));
        PacketFields {
            local,
            ts_units: (u64::from(ts_high) << 32) | u64::from(ts_low),
            caplen: bo.u32(arr4(b, 20)),
            orig_len: bo.u32(arr4(b, 24)),
        }
    }
}

impl Stream {
    fn new(rd: Box<dyn Read + Send>, fd: Option<i32>) -> Stream {
        Stream {
            rd,
            buf: Vec::new(),
            filled: 0,
            base: 0,
            eof: false,
            fd,
            stop: None,
        }
    }

    /// Waits until a read would not block; false once a stop is requested. Without a stop
    /// flag or a descriptor to poll, the read just blocks as usual.
    #[allow(unsafe_code)]
    fn wait_readable(&self) -> bool {
        let Some(stop) = &self.stop else {
            return true;
        };
        let Some(fd) = self.fd else {
            return !stop.load(Ordering::Relaxed);
        };
        loop {
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call. 100 ms bounds how long a
            // stop request waits on a silent pipe.
            let ready = unsafe { libc::poll(&mut pfd, 1, 100) };
            // Data, end of file (POLLHUP) or an error: the read reports which. A poll error
            // other than EINTR also lets the read report it.
            if ready != 0
                && !(ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted)
            {
                return true;
            }
        }
    }
}

/// The byte order of a section from its byte-order magic, or the magic (read big-endian).
fn section_byte_order(b: [u8; 4]) -> Result<ByteOrder, u32> {
    match u32::from_be_bytes(b) {
        BOM => Ok(ByteOrder::Big),
        0x4D3C_2B1A => Ok(ByteOrder::Little),
        magic => Err(magic),
    }
}

/// Four bytes at `at`, zeros past the end (callers check lengths first; zeros keep a missed
/// check from turning into a panic).
fn arr4(b: &[u8], at: usize) -> [u8; 4] {
    match b.get(at..at.saturating_add(4)) {
        Some(&[a, b, c, d]) => [a, b, c, d],
        _ => [0; 4],
    }
}

/// Two bytes at `at`, zeros past the end.
fn arr2(b: &[u8], at: usize) -> [u8; 2] {
    match b.get(at..at.saturating_add(2)) {
        Some(&[a, b]) => [a, b],
        _ => [0; 2],
    }
}

/// Iterates over the options of a pcapng block `b` starting at `at`, up to the trailer.
/// Items are `(code, value)`, or `(offset in block, code, length)` of an option that overruns.
struct Options<'a> {
    b: &'a [u8],
    at: usize,
    end: usize,
    bo: ByteOrder,
}

impl<'a> Options<'a> {
    fn new(b: &'a [u8], at: usize, bo: ByteOrder) -> Self {
        Options {
            b,
            at,
            end: b.len().saturating_sub(4),
            bo,
        }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), (usize, u16, u16)>;

    fn next(&mut self) -> Option<Self::Item> {
        // Fewer than 4 bytes left cannot hold an option header: no options (some writers
        // omit opt_endofopt).
        if self.at + 4 > self.end {
            return None;
        }
        let code = self.bo.u16(arr2(self.b, self.at));
        let len = self.bo.u16(arr2(self.b, self.at + 2));
        if code == OPT_END {
            return None;
        }
        let start = self.at + 4;
        let padded = (usize::from(len) + 3) & !3;
        if start + padded > self.end {
            let at = self.at;
            self.at = self.end;
            return Some(Err((at, code, len)));
        }
        self.at = start + padded;
        Some(Ok((code, &self.b[start..start + usize::from(len)])))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one check per record finds the work of both rules it replaced, record by record:
    /// hand pages back once `upto` (16 MiB short of the reader, rounded down to 16 MiB) is a
    /// step past what was handed back, and map the next window in once the reader is half a
    /// window from the end of what is mapped in.
    #[test]
    fn paging_does_what_both_rules_would_at_every_position() {
        let len = 3 * RELEASE_STEP + 12_345;
        let file = tempfile::tempfile().unwrap();
        file.set_len(len).unwrap();
        let map = map_file(&file, len).unwrap();
        let mut paging = Paging::new(len);
        let (mut released, mut populated, mut releases, mut windows) = (0u64, 0u64, 0, 0);
        let mut pos = 0;
        while pos < len {
            let upto = pos.saturating_sub(RELEASE_STEP) & !(RELEASE_STEP - 1);
            if upto >= released + RELEASE_STEP {
                released = upto;
                releases += 1;
            }
            if pos + POPULATE_STEP / 2 >= populated {
                populated += POPULATE_STEP;
                windows += 1;
            }
            paging.follow(&map, pos);
            assert_eq!(
                (paging.released, paging.populated),
                (released, populated),
                "at {pos}"
            );
            pos += 4093;
        }
        assert_eq!((releases, windows), (2, 7));
        // A file too large to be mapped in ahead only hands pages back.
        let big = Paging::new(POPULATE_LIMIT + 1);
        assert_eq!(big.populated, u64::MAX);
    }
}
