//! Capture file I/O: pcap and pcapng readers and an all-or-nothing writer.
//!
//! The reader hands out packets as borrowed slices of a read-only memory map (or of a bounded
//! buffer when reading a pipe), so reading costs no copy; the writer copies each record once,
//! into a large output buffer, where the caller rewrites it in place
//! ([`CaptureWriter::write_in_place`]).
//!
//! ```no_run
//! use dnatsim::capture::{CaptureReader, CaptureWriter, WriterConfig};
//! # fn main() -> Result<(), dnatsim::capture::CaptureError> {
//! let mut reader = CaptureReader::open("in.pcap".as_ref())?;
//! let mut writer = CaptureWriter::create("out.pcap".as_ref(), &WriterConfig::like(&reader))?;
//! while let Some(pkt) = reader.next_packet()? {
//!     // pcapng sections later in the file may bring new interfaces.
//!     writer.sync_interfaces(pkt.interfaces)?;
//!     let meta = pkt.meta();
//!     writer.write_in_place(&meta, pkt.data, |bytes| !bytes.is_empty())?;
//! }
//! writer.finish()?;
//! # Ok(()) }
//! ```
//!
//! Why a parser of our own rather than `pcap-parser`: its errors carry neither the offset nor
//! the record number (they carry the remaining input), its streaming reader owns a buffer whose
//! refill semantics fight a lending `next_packet`, and the two formats need only a few hundred
//! lines of length-checked reads. A parser of our own is also a second implementation for tshark to disagree with in tests.

mod error;
mod reader;
mod writer;

pub use error::{
    BlockLengthProblem, BlockProblem, CaptureError, CaptureWarning, MAX_RECORD_LEN, WriteProblem,
};
pub use reader::{CaptureReader, Packet};
pub use writer::{CaptureWriter, OutputDrain, WriterConfig};

/// Byte order of a capture file (or of one pcapng section).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ByteOrder {
    /// Least significant byte first (what x86 writes).
    Little,
    /// Most significant byte first.
    Big,
}

impl ByteOrder {
    /// The byte order of the machine running this code, which writers default to.
    pub const NATIVE: ByteOrder = if cfg!(target_endian = "big") {
        ByteOrder::Big
    } else {
        ByteOrder::Little
    };

    pub(crate) fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            ByteOrder::Little => u16::from_le_bytes(b),
            ByteOrder::Big => u16::from_be_bytes(b),
        }
    }

    pub(crate) fn u32(self, b: [u8; 4]) -> u32 {
        match self {
            ByteOrder::Little => u32::from_le_bytes(b),
            ByteOrder::Big => u32::from_be_bytes(b),
        }
    }

    pub(crate) fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }

    pub(crate) fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            ByteOrder::Little => v.to_le_bytes(),
            ByteOrder::Big => v.to_be_bytes(),
        }
    }
}

/// The container format of a capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Classic libpcap format.
    Pcap {
        /// Byte order of the headers.
        byte_order: ByteOrder,
        /// Nanosecond magic (`a1b23c4d`) rather than microsecond (`a1b2c3d4`).
        nanosecond: bool,
    },
    /// pcapng; the byte order is that of the first section.
    PcapNg {
        /// Byte order of the (first) section.
        byte_order: ByteOrder,
    },
}

/// `if_tsresol` for microseconds, the pcapng default.
pub const TSRESOL_MICRO: u8 = 6;
/// `if_tsresol` for nanoseconds.
pub const TSRESOL_NANO: u8 = 9;

/// One capture interface: what a writer needs to reproduce the input's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Interface {
    /// pcap `LINKTYPE_` number.
    pub link_type: u16,
    /// Snapshot length; 0 means unlimited.
    pub snaplen: u32,
    /// Raw pcapng `if_tsresol`: bit 7 clear is 10^-n seconds, set is 2^-n (n in bits 0..7).
    pub tsresol: u8,
    /// pcapng `if_tsoffset`: seconds added to every timestamp of the interface.
    pub tsoffset: i64,
    /// 0-based pcapng section the interface was described in (0 for pcap).
    pub section: u32,
}

impl Interface {
    /// An interface with microsecond timestamps and no offset, in section 0.
    pub fn new(link_type: u16, snaplen: u32) -> Self {
        Interface {
            link_type,
            snaplen,
            tsresol: TSRESOL_MICRO,
            tsoffset: 0,
            section: 0,
        }
    }

    /// Whether this reader and writer can convert the interface's `if_tsresol`.
    pub fn tsresol_supported(&self) -> bool {
        self.tsresol & 0x80 != 0 || self.tsresol <= 38
    }

    /// Converts a timestamp in interface units to nanoseconds since the epoch.
    ///
    /// Exact for every resolution up to nanoseconds; finer ones are truncated toward zero.
    /// Saturates instead of wrapping for timestamps beyond year 2262.
    pub fn units_to_ns(&self, units: u64) -> i64 {
        let n = u32::from(self.tsresol & 0x7f);
        let ns: u128 = if self.tsresol & 0x80 != 0 {
            // units < 2^64 and 1e9 < 2^30, so the product fits in 94 bits.
            (u128::from(units) * 1_000_000_000) >> n
        } else if n <= 9 {
            u128::from(units) * 10u128.pow(9 - n)
        } else {
            // n <= 38 is checked when the interface is read; 10^38 < 2^128.
            u128::from(units) / 10u128.checked_pow(n - 9).unwrap_or(u128::MAX)
        };
        let ns = i128::try_from(ns).unwrap_or(i128::MAX);
        let total = ns.saturating_add(i128::from(self.tsoffset) * 1_000_000_000);
        i64::try_from(total).unwrap_or(if total < 0 { i64::MIN } else { i64::MAX })
    }

    /// Converts nanoseconds since the epoch to interface units, `None` when they do not fit.
    ///
    /// Power-of-2 resolutions round up, which makes this the exact inverse of
    /// [`Interface::units_to_ns`] for every resolution no finer than 1 ns.
    pub fn ns_to_units(&self, ts_ns: i64) -> Option<u64> {
        let ns = i128::from(ts_ns) - i128::from(self.tsoffset) * 1_000_000_000;
        let ns = u128::try_from(ns).ok()?;
        let n = u32::from(self.tsresol & 0x7f);
        let units = if self.tsresol & 0x80 != 0 {
            let scaled = ns.checked_mul(1u128.checked_shl(n)?)?;
            scaled.div_ceil(1_000_000_000)
        } else if n <= 9 {
            ns / 10u128.pow(9 - n)
        } else {
            ns.checked_mul(10u128.checked_pow(n - 9)?)?
        };
        u64::try_from(units).ok()
    }
}

/// What a writer needs to know about a record besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordMeta {
    /// Nanoseconds since the epoch.
    pub ts_ns: i64,
    /// Length of the packet on the wire (may exceed the captured bytes).
    pub orig_len: u32,
    /// Global interface index (always 0 for pcap).
    pub interface: u32,
}

/// A short name for a pcap `LINKTYPE_` number, for messages and reports.
pub fn link_type_name(link_type: u16) -> &'static str {
    match link_type {
        0 => "NULL",
        1 => "EN10MB",
        6 => "IEEE802_5",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_HDLC",
        51 => "PPP_ETHER",
        101 => "RAW",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        108 => "LOOP",
        113 => "LINUX_SLL",
        119 => "PRISM_HEADER",
        127 => "IEEE802_11_RADIOTAP",
        143 => "DOCSIS",
        192 => "PPI",
        195 => "IEEE802_15_4_WITHFCS",
        197 => "ERF",
        201 => "BLUETOOTH_HCI_H4_WITH_PHDR",
        220 => "USB_LINUX_MMAPPED",
        228 => "IPV4",
        229 => "IPV6",
        239 => "NFLOG",
        249 => "PFSYNC",
        252 => "WIRESHARK_UPPER_PDU",
        263 => "VSOCK",
        276 => "LINUX_SLL2",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pow2_resolution_round_trips() {
        let mut ifc = Interface::new(1, 0);
        for tsresol in [0x80 | 10, 0x80 | 20, 0x80 | 29, 6, 9, 3, 0] {
            ifc.tsresol = tsresol;
            for units in [0u64, 1, 7, 1_000_001, 1 << 40, 1_700_000_000_123] {
                let ns = ifc.units_to_ns(units);
                if (tsresol == (0x80 | 29) || tsresol <= 9) && ns != i64::MAX {
                    assert_eq!(
                        ifc.ns_to_units(ns),
                        Some(units),
                        "tsresol {tsresol:#x} units {units}"
                    );
                }
            }
        }
    }

    #[test]
    fn picoseconds_truncate() {
        let mut ifc = Interface::new(1, 0);
        ifc.tsresol = 12;
        assert_eq!(ifc.units_to_ns(1_999), 1);
        ifc.tsresol = 38;
        assert_eq!(ifc.units_to_ns(u64::MAX), 0);
        ifc.tsresol = 0x80 | 127;
        assert_eq!(ifc.units_to_ns(u64::MAX), 0);
        ifc.tsresol = 0;
        assert_eq!(ifc.units_to_ns(u64::MAX), i64::MAX);
    }

    #[test]
    fn names() {
        assert_eq!(link_type_name(1), "EN10MB");
        assert_eq!(link_type_name(276), "LINUX_SLL2");
        assert_eq!(link_type_name(65000), "UNKNOWN");
    }
}
