//! Errors and warnings of capture file I/O.
//!
//! Every parse error carries the byte offset (and the record or block number) where the reader
//! gave up, so a user can look at the file with `xxd -s OFFSET` and decide what to do.

use std::fmt;
use std::io;
use std::path::PathBuf;

use thiserror::Error;

/// Why a pcapng block length was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockLengthProblem {
    /// Shorter than the 12 bytes of type, length and trailing length.
    TooShort,
    /// Not a multiple of 4, as the pcapng specification requires.
    NotMultipleOf4,
    /// Larger than the reader's limit on one block, so it cannot be a real block.
    TooLarge,
    /// The trailing copy of the length differs from the leading one.
    TrailerMismatch {
        /// The length found at the end of the block.
        trailer: u32,
    },
    /// The block runs past the end of the file.
    PastEndOfFile {
        /// Bytes left in the file from the start of the block.
        available: u64,
    },
    /// The block is too short for the fixed fields of its type.
    TooShortForType {
        /// Minimum length for this block type.
        minimum: u32,
    },
}

impl fmt::Display for BlockLengthProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooShort => f.write_str("is smaller than the minimum of 12"),
            Self::NotMultipleOf4 => f.write_str("is not a multiple of 4"),
            Self::TooLarge => write!(f, "is larger than the limit of {MAX_RECORD_LEN} bytes"),
            Self::TrailerMismatch { trailer } => {
                write!(f, "differs from the trailing length {trailer}")
            }
            Self::PastEndOfFile { available } => {
                write!(f, "runs past the end of the file ({available} bytes left)")
            }
            Self::TooShortForType { minimum } => {
                write!(f, "is too short for this block type (minimum {minimum})")
            }
        }
    }
}

/// The largest record or block the reader accepts; anything larger is garbage, and the limit
/// bounds the memory a streaming read can be made to allocate.
pub const MAX_RECORD_LEN: u32 = 64 * 1024 * 1024;

/// Everything that can go wrong reading or writing a capture file.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CaptureError {
    /// The input or output file could not be opened or created.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The file that failed.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Reading failed part-way.
    #[error("read error at offset {offset}: {source}")]
    Read {
        /// Offset the reader was trying to reach.
        offset: u64,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Writing the output failed.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The destination file (not the temporary file).
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// The first four bytes are neither a pcap nor a pcapng magic number.
    #[error(
        "not a pcap or pcapng file: magic 0x{magic:08x} at offset {offset} \
         (expected a1b2c3d4, a1b23c4d, their byte swaps, or 0a0d0d0a)"
    )]
    UnknownMagic {
        /// The four bytes read big-endian.
        magic: u32,
        /// Where they were read.
        offset: u64,
    },
    /// The file ends inside its file header or section header.
    #[error("{what} is cut short: {available} of {needed} bytes at offset {offset}")]
    TruncatedHeader {
        /// Which header ("pcap file header", "pcapng section header block").
        what: &'static str,
        /// Where the header starts.
        offset: u64,
        /// Bytes present.
        available: u64,
        /// Bytes the header needs.
        needed: u64,
    },
    /// A pcap record's captured length is larger than the file's snapshot length.
    #[error(
        "record {record} at offset {offset}: captured length {caplen} is larger than the \
         snapshot length {snaplen} of the file header; the file is corrupt from here"
    )]
    CaplenOverSnaplen {
        /// 1-based record number.
        record: u64,
        /// Offset of the record header.
        offset: u64,
        /// The captured length found.
        caplen: u32,
        /// The snapshot length it exceeds.
        snaplen: u32,
    },
    /// A captured length no real capture has; the record header is garbage.
    #[error(
        "record {record} at offset {offset}: captured length {caplen} is larger than the \
         limit of {limit} bytes; the file is corrupt from here"
    )]
    CaplenTooLarge {
        /// 1-based record number.
        record: u64,
        /// Offset of the record header.
        offset: u64,
        /// The captured length found.
        caplen: u32,
        /// The reader's limit.
        limit: u32,
    },
    /// A pcapng block whose length field cannot be right.
    #[error(
        "pcapng block {block} (type 0x{block_type:08x}) at offset {offset}: length {length} {problem}"
    )]
    BadBlockLength {
        /// 1-based block number in the file.
        block: u64,
        /// The block type.
        block_type: u32,
        /// Offset of the block.
        offset: u64,
        /// The length field.
        length: u32,
        /// What is wrong with it.
        problem: BlockLengthProblem,
    },
    /// A pcapng block whose content is inconsistent.
    #[error("pcapng block {block} (type 0x{block_type:08x}) at offset {offset}: {problem}")]
    BadBlock {
        /// 1-based block number in the file.
        block: u64,
        /// The block type.
        block_type: u32,
        /// Offset of the block.
        offset: u64,
        /// What is wrong, with the numbers involved.
        problem: BlockProblem,
    },
    /// The output file is the input file; writing would destroy the input.
    #[error(
        "output {} is the input file; choose another output path",
        path.display()
    )]
    OutputIsInput {
        /// The output path as given.
        path: PathBuf,
    },
    /// A writer configuration that cannot produce a valid file.
    #[error("invalid writer configuration: {problem}")]
    BadConfig {
        /// What is wrong.
        problem: &'static str,
    },
    /// A record the output format cannot hold.
    #[error("cannot write record {record}: {problem}")]
    Unwritable {
        /// 1-based number of the record in the output.
        record: u64,
        /// Why.
        problem: WriteProblem,
    },
}

/// Inconsistencies inside a pcapng block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockProblem {
    /// The section header's byte-order magic is neither byte order.
    BadByteOrderMagic {
        /// The four bytes read big-endian.
        magic: u32,
    },
    /// A section header with a major version other than 1.
    UnsupportedVersion {
        /// Major version found.
        major: u16,
        /// Minor version found.
        minor: u16,
    },
    /// A packet names an interface its section never described.
    UnknownInterface {
        /// Interface id in the packet.
        interface: u32,
        /// Interfaces the section has described so far.
        known: u32,
    },
    /// A packet's captured length does not fit in its block.
    CaplenPastBlock {
        /// Captured length in the packet.
        caplen: u32,
        /// Room in the block.
        room: u32,
    },
    /// A packet's captured length exceeds the snapshot length of its interface.
    CaplenOverSnaplen {
        /// Captured length in the packet.
        caplen: u32,
        /// Snapshot length of the interface.
        snaplen: u32,
    },
    /// An option runs past the end of its block.
    OptionPastBlock {
        /// Offset of the option in the file.
        option_offset: u64,
        /// Option code.
        code: u16,
        /// Option length.
        length: u16,
    },
    /// More interface descriptions than the reader accepts.
    TooManyInterfaces {
        /// The reader's limit.
        limit: u32,
    },
    /// An `if_tsresol` this reader cannot convert to nanoseconds.
    UnsupportedTsresol {
        /// The raw `if_tsresol` byte.
        tsresol: u8,
    },
}

impl fmt::Display for BlockProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadByteOrderMagic { magic } => write!(
                f,
                "byte-order magic 0x{magic:08x} is neither 1a2b3c4d nor 4d3c2b1a"
            ),
            Self::UnsupportedVersion { major, minor } => {
                write!(
                    f,
                    "unsupported pcapng version {major}.{minor} (only 1.x is known)"
                )
            }
            Self::UnknownInterface { interface, known } => write!(
                f,
                "packet on interface {interface} but the section describes {known} interface(s)"
            ),
            Self::CaplenPastBlock { caplen, room } => write!(
                f,
                "captured length {caplen} does not fit in the block ({room} bytes of room)"
            ),
            Self::CaplenOverSnaplen { caplen, snaplen } => write!(
                f,
                "captured length {caplen} is larger than the interface's snapshot length {snaplen}"
            ),
            Self::OptionPastBlock {
                option_offset,
                code,
                length,
            } => write!(
                f,
                "option {code} at offset {option_offset} (length {length}) runs past the end of the block"
            ),
            Self::TooManyInterfaces { limit } => write!(
                f,
                "more than {limit} interface descriptions; the file is corrupt"
            ),
            Self::UnsupportedTsresol { tsresol } => write!(
                f,
                "if_tsresol 0x{tsresol:02x} is finer than this reader supports"
            ),
        }
    }
}

/// Why a record cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteProblem {
    /// The data is longer than the output's snapshot length, so readers would refuse the file.
    LongerThanSnaplen {
        /// Data length.
        len: usize,
        /// Snapshot length of the output interface.
        snaplen: u32,
    },
    /// The data is longer than the reader's record limit.
    TooLong {
        /// Data length.
        len: usize,
    },
    /// The record names an interface the writer does not have.
    UnknownInterface {
        /// Interface requested.
        interface: u32,
        /// Interfaces the writer has.
        known: u32,
    },
    /// The timestamp does not fit the output format.
    TimestampOutOfRange {
        /// Nanoseconds since the epoch.
        ts_ns: i64,
    },
    /// Comments need pcapng output.
    CommentNeedsPcapng,
    /// A comment longer than a pcapng option can hold.
    CommentTooLong {
        /// Comment length in bytes.
        len: usize,
    },
}

impl fmt::Display for WriteProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::LongerThanSnaplen { len, snaplen } => write!(
                f,
                "{len} bytes of data exceed the output's snapshot length {snaplen}"
            ),
            Self::TooLong { len } => write!(
                f,
                "{len} bytes of data exceed the record limit of {MAX_RECORD_LEN}"
            ),
            Self::UnknownInterface { interface, known } => write!(
                f,
                "interface {interface} is not in the output ({known} interface(s); add it with add_interface)"
            ),
            Self::TimestampOutOfRange { ts_ns } => {
                write!(f, "timestamp {ts_ns} ns does not fit the output format")
            }
            Self::CommentNeedsPcapng => {
                f.write_str("packet comments need pcapng output (use the pcapng_annotated mode)")
            }
            Self::CommentTooLong { len } => write!(
                f,
                "a {len}-byte comment is longer than the 65535 bytes a pcapng option holds"
            ),
        }
    }
}

/// Something odd but survivable the reader met; the packets before it were all delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CaptureWarning {
    /// The file ends inside a record: the capture was cut off while being written.
    CutShort {
        /// 1-based record number of the cut record.
        record: u64,
        /// Offset of the record.
        offset: u64,
        /// Bytes of the record present.
        available: u64,
        /// Bytes the record needs (header and data).
        needed: u64,
    },
    /// Packets longer than the snapshot length were delivered whole (lenient mode); only the
    /// first such record is reported.
    CaplenOverSnaplen {
        /// 1-based record number of the first such record.
        record: u64,
        /// Offset of that record.
        offset: u64,
        /// Its captured length.
        caplen: u32,
        /// The snapshot length it exceeds.
        snaplen: u32,
    },
}

impl fmt::Display for CaptureWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CutShort {
                record,
                offset,
                available,
                needed,
            } => write!(
                f,
                "record {record} at offset {offset} is cut short: {available} of {needed} bytes; \
                 the file ends there"
            ),
            Self::CaplenOverSnaplen {
                record,
                offset,
                caplen,
                snaplen,
            } => write!(
                f,
                "record {record} at offset {offset} has captured length {caplen}, more than the \
                 snapshot length {snaplen}; such packets were read whole"
            ),
        }
    }
}
