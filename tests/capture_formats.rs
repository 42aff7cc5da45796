//! Reader and writer against captures built byte by byte here (independently of the writer),
//! malformed inputs with their exact outcome, the temp-file contract and tshark's opinion.

mod common;

use std::io::Read;
use std::path::Path;
use std::process::Command;

use dnatsim::capture::{
    ByteOrder, CaptureError, CaptureReader, CaptureWarning, CaptureWriter, Format, Interface,
    RecordMeta, WriterConfig, link_type_name,
};

// ---------------------------------------------------------------- builders

fn u16b(le: bool, v: u16) -> [u8; 2] {
    if le { v.to_le_bytes() } else { v.to_be_bytes() }
}
fn u32b(le: bool, v: u32) -> [u8; 4] {
    if le { v.to_le_bytes() } else { v.to_be_bytes() }
}

struct Rec<'a> {
    sec: u32,
    frac: u32,
    data: &'a [u8],
    orig: u32,
}

fn pcap_header(le: bool, nanos: bool, snaplen: u32, linktype: u32) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend(u32b(le, if nanos { 0xa1b2_3c4d } else { 0xa1b2_c3d4 }));
    v.extend(u16b(le, 2));
    v.extend(u16b(le, 4));
    v.extend([0; 8]);
    v.extend(u32b(le, snaplen));
    v.extend(u32b(le, linktype));
    v
}

fn pcap_record(v: &mut Vec<u8>, le: bool, r: &Rec) {
    v.extend(u32b(le, r.sec));
    v.extend(u32b(le, r.frac));
    v.extend(u32b(le, r.data.len() as u32));
    v.extend(u32b(le, r.orig));
    v.extend(r.data);
}

/// Records of whole `frames`, all at one time.
fn whole_records(frames: &[Vec<u8>]) -> Vec<Rec<'_>> {
    frames
        .iter()
        .map(|f| Rec {
            sec: 1,
            frac: 2,
            data: f,
            orig: f.len() as u32,
        })
        .collect()
}

fn pcap_file(le: bool, nanos: bool, snaplen: u32, linktype: u32, recs: &[Rec]) -> Vec<u8> {
    let mut v = pcap_header(le, nanos, snaplen, linktype);
    for r in recs {
        pcap_record(&mut v, le, r);
    }
    v
}

/// A pcapng builder; `le` is the byte order of the current section.
struct Ng {
    v: Vec<u8>,
    le: bool,
}

impl Ng {
    fn new() -> Ng {
        Ng {
            v: Vec::new(),
            le: true,
        }
    }
    fn block(&mut self, ty: u32, body: &[u8]) -> u64 {
        let off = self.v.len() as u64;
        let mut body = body.to_vec();
        while !body.len().is_multiple_of(4) {
            body.push(0);
        }
        let len = 12 + body.len() as u32;
        let le = self.le;
        self.v.extend(u32b(le, ty));
        self.v.extend(u32b(le, len));
        self.v.extend(body);
        self.v.extend(u32b(le, len));
        off
    }
    fn shb(&mut self, le: bool) -> u64 {
        self.le = le;
        let mut b = Vec::new();
        b.extend(u32b(le, 0x1a2b_3c4d));
        b.extend(u16b(le, 1));
        b.extend(u16b(le, 0));
        b.extend([0xff; 8]);
        self.block(0x0a0d_0d0a, &b)
    }
    fn idb(&mut self, linktype: u16, snaplen: u32, opts: &[(u16, Vec<u8>)]) -> u64 {
        let le = self.le;
        let mut b = Vec::new();
        b.extend(u16b(le, linktype));
        b.extend([0, 0]);
        b.extend(u32b(le, snaplen));
        if !opts.is_empty() {
            for (code, val) in opts {
                b.extend(u16b(le, *code));
                b.extend(u16b(le, val.len() as u16));
                b.extend(val);
                while !b.len().is_multiple_of(4) {
                    b.push(0);
                }
            }
            b.extend([0; 4]);
        }
        self.block(1, &b)
    }
    fn epb(&mut self, ifid: u32, ts: u64, data: &[u8], orig: u32) -> u64 {
        let le = self.le;
        let mut b = Vec::new();
        b.extend(u32b(le, ifid));
        b.extend(u32b(le, (ts >> 32) as u32));
        b.extend(u32b(le, ts as u32));
        b.extend(u32b(le, data.len() as u32));
        b.extend(u32b(le, orig));
        b.extend(data);
        self.block(6, &b)
    }
    fn pb(&mut self, ifid: u16, ts: u64, data: &[u8], orig: u32) -> u64 {
        let le = self.le;
        let mut b = Vec::new();
        b.extend(u16b(le, ifid));
        b.extend(u16b(le, 0));
        b.extend(u32b(le, (ts >> 32) as u32));
        b.extend(u32b(le, ts as u32));
        b.extend(u32b(le, data.len() as u32));
        b.extend(u32b(le, orig));
        b.extend(data);
        self.block(2, &b)
    }
    fn spb(&mut self, data: &[u8], orig: u32) -> u64 {
        let le = self.le;
        let mut b = Vec::new();
        b.extend(u32b(le, orig));
        b.extend(data);
        self.block(3, &b)
    }
}

fn frame(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

/// Everything a packet says, owned.
#[derive(Debug, PartialEq, Eq, Clone)]
struct Got {
    data: Vec<u8>,
    orig_len: u32,
    ts_ns: i64,
    link_type: u16,
    interface: u32,
    record: u64,
    offset: u64,
}

fn read_all(r: &mut CaptureReader) -> Result<Vec<Got>, CaptureError> {
    let mut out = Vec::new();
    while let Some(p) = r.next_packet()? {
        out.push(Got {
            data: p.data.to_vec(),
            orig_len: p.orig_len,
            ts_ns: p.ts_ns,
            link_type: p.link_type,
            interface: p.interface,
            record: p.record,
            offset: p.offset,
        });
    }
    Ok(out)
}

/// Reads from memory and through a stream that delivers 7 bytes per read; both must agree.
fn read_both(bytes: &[u8]) -> (Result<Vec<Got>, String>, Vec<CaptureWarning>) {
    let mem = CaptureReader::from_bytes(bytes.to_vec()).and_then(|mut r| {
        let got = read_all(&mut r)?;
        Ok((got, r.warnings().to_vec()))
    });
    let stream =
        CaptureReader::from_reader(Box::new(Trickle(bytes.to_vec(), 0))).and_then(|mut r| {
            let got = read_all(&mut r)?;
            Ok((got, r.warnings().to_vec()))
        });
    let mem = mem.map_err(|e| e.to_string());
    let stream = stream.map_err(|e| e.to_string());
    assert_eq!(mem, stream, "memory and stream readers disagree");
    match mem {
        Ok((g, w)) => (Ok(g), w),
        Err(e) => (Err(e), Vec::new()),
    }
}

/// A reader that returns at most 7 bytes per call, to exercise the stream window.
struct Trickle(Vec<u8>, usize);

impl Read for Trickle {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(7).min(self.0.len() - self.1);
        buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
        self.1 += n;
        Ok(n)
    }
}

// ---------------------------------------------------------------- reading

/// The mean record length that chooses how two threads read a file in memory: over the
/// records asked for, from the next one, in either byte order; `None` for pcapng or no record.
#[test]
fn mean_record_len_samples_pcap_record_headers() {
    let frames = [frame(60, 1), frame(100, 2), frame(1514, 3)];
    for le in [true, false] {
        let recs = whole_records(&frames);
        let mut r = CaptureReader::from_bytes(pcap_file(le, false, 65535, 1, &recs)).unwrap();
        assert_eq!(r.mean_record_len(2), Some(80));
        assert_eq!(r.mean_record_len(100), Some((60 + 100 + 1514) / 3));
        r.next_packet().unwrap().unwrap();
        assert_eq!(r.mean_record_len(1), Some(100), "from the next record");
        r.next_packet().unwrap().unwrap();
        r.next_packet().unwrap().unwrap();
        assert_eq!(r.mean_record_len(10), None, "no record left");
        // A cut-off record header counts for nothing.
        let mut cut = pcap_file(le, false, 65535, 1, &recs[..1]);
        cut.extend([0; 10]);
        assert_eq!(
            CaptureReader::from_bytes(cut).unwrap().mean_record_len(5),
            Some(60)
        );
    }
    let (ng, _) = two_section_pcapng();
    assert_eq!(
        CaptureReader::from_bytes(ng).unwrap().mean_record_len(5),
        None
    );
}

#[test]
fn pcap_both_byte_orders_and_precisions() {
    let a = frame(60, 1);
    let b = frame(1514, 2);
    for (le, nanos) in [(true, false), (false, false), (true, true), (false, true)] {
        let recs = [
            Rec {
                sec: 1_700_000_000,
                frac: 999_999,
                data: &a,
                orig: 60,
            },
            Rec {
                sec: 4_000_000_000,
                frac: 1,
                data: &b,
                orig: 9000,
            },
        ];
        let bytes = pcap_file(le, nanos, 65535, 1, &recs);
        let mut r = CaptureReader::from_bytes(bytes.clone()).unwrap();
        let bo = if le {
            ByteOrder::Little
        } else {
            ByteOrder::Big
        };
        assert_eq!(
            r.format(),
            Format::Pcap {
                byte_order: bo,
                nanosecond: nanos
            }
        );
        assert_eq!(r.interfaces().len(), 1);
        assert_eq!(r.interfaces()[0].link_type, 1);
        assert_eq!(r.interfaces()[0].snaplen, 65535);
        assert_eq!(r.interfaces()[0].tsresol, if nanos { 9 } else { 6 });
        let unit = if nanos { 1 } else { 1000 };
        let got = read_all(&mut r).unwrap();
        assert_eq!(
            got,
            vec![
                Got {
                    data: a.clone(),
                    orig_len: 60,
                    ts_ns: 1_700_000_000 * 1_000_000_000 + 999_999 * unit,
                    link_type: 1,
                    interface: 0,
                    record: 1,
                    offset: 24,
                },
                Got {
                    data: b.clone(),
                    orig_len: 9000,
                    ts_ns: 4_000_000_000 * 1_000_000_000 + unit,
                    link_type: 1,
                    interface: 0,
                    record: 2,
                    offset: 24 + 16 + 60,
                }
            ]
        );
        assert!(r.warnings().is_empty());
        assert!(r.next_packet().unwrap().is_none());
        assert_eq!(read_both(&bytes).0.unwrap(), got);
    }
}

/// Two sections of different byte order, interfaces with µs, ns, 2^-20 and an offset,
/// EPB, SPB, obsolete PB and a skipped block.
fn two_section_pcapng() -> (Vec<u8>, Vec<Got>) {
    let (a, b, c, d, e) = (
        frame(60, 1),
        frame(61, 2),
        frame(100, 3),
        frame(42, 4),
        frame(9, 5),
    );
    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, 0, &[]); // µs by default
    ng.idb(101, 128, &[(9, vec![9]), (2, b"eth1".to_vec())]); // ns, with an if_name
    ng.block(4, &[0, 0, 0, 0]); // name resolution block, ignored
    let o1 = ng.epb(0, 1_700_000_000_123_456, &a, 60);
    let o2 = ng.epb(1, 1_700_000_000_123_456_789, &b, 70);
    let o3 = ng.spb(&c, 100); // interface 0 of this section, no timestamp
    let o4 = ng.pb(1, 5, &d, 42);
    ng.block(0x0bad_cafe, &[1, 2, 3]); // unknown block, padded, ignored
    ng.shb(false);
    let mut off = 100i64.to_be_bytes().to_vec();
    off.truncate(8);
    ng.idb(113, 0, &[(9, vec![0x80 | 20]), (14, off)]); // 2^-20 s units, +100 s
    let o5 = ng.epb(0, 3 << 20 | 1 << 19, &e, 9); // 3.5 s
    let g = |data: &Vec<u8>, orig_len, ts_ns, link_type, interface, record, offset| Got {
        data: data.clone(),
        orig_len,
        ts_ns,
        link_type,
        interface,
        record,
        offset,
    };
    let expected = vec![
        g(&a, 60, 1_700_000_000_123_456_000, 1, 0, 1, o1),
        g(&b, 70, 1_700_000_000_123_456_789, 101, 1, 2, o2),
        g(&c, 100, 0, 1, 0, 3, o3),
        g(&d, 42, 5, 101, 1, 4, o4),
        g(&e, 9, 103_500_000_000, 113, 2, 5, o5),
    ];
    (ng.v, expected)
}

#[test]
fn pcapng_sections_interfaces_resolutions_and_block_kinds() {
    let (bytes, expected) = two_section_pcapng();
    let mut r = CaptureReader::from_bytes(bytes.clone()).unwrap();
    assert_eq!(
        r.format(),
        Format::PcapNg {
            byte_order: ByteOrder::Little
        }
    );
    // The first section's interfaces are known as soon as the file is open.
    assert_eq!(r.interfaces().len(), 2);
    assert_eq!(r.interfaces()[1].tsresol, 9);
    assert_eq!(r.interfaces()[1].snaplen, 128);
    let got = read_all(&mut r).unwrap();
    assert_eq!(got, expected);
    assert_eq!(r.interfaces().len(), 3);
    assert_eq!(
        r.interfaces()[2],
        Interface {
            link_type: 113,
            snaplen: 0,
            tsresol: 0x80 | 20,
            tsoffset: 100,
            section: 1
        }
    );
    assert!(r.warnings().is_empty());
    assert_eq!(read_both(&bytes).0.unwrap(), expected);
}

#[test]
fn spb_is_cut_to_snaplen() {
    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, 20, &[]);
    ng.spb(&frame(20, 1), 1500); // snapped to 20 bytes
    let got = read_both(&ng.v).0.unwrap();
    assert_eq!(got[0].data, frame(20, 1));
    assert_eq!(got[0].orig_len, 1500);
}

// ---------------------------------------------------------------- malformed input

fn open_err(bytes: Vec<u8>) -> String {
    CaptureReader::from_bytes(bytes).unwrap_err().to_string()
}

fn read_err(bytes: &[u8]) -> String {
    read_both(bytes).0.unwrap_err()
}

#[test]
fn unknown_magic_and_truncated_headers() {
    assert_eq!(
        open_err(b"Licensed under...".to_vec()),
        "not a pcap or pcapng file: magic 0x4c696365 at offset 0 \
         (expected a1b2c3d4, a1b23c4d, their byte swaps, or 0a0d0d0a)"
    );
    assert_eq!(
        open_err(Vec::new()),
        "capture file header is cut short: 0 of 4 bytes at offset 0"
    );
    let mut h = pcap_header(true, false, 65535, 1);
    h.truncate(10);
    assert_eq!(
        open_err(h),
        "pcap file header is cut short: 10 of 24 bytes at offset 0"
    );
    let mut ng = Ng::new();
    ng.shb(true);
    ng.v[8..12].copy_from_slice(&[1, 2, 3, 4]);
    assert_eq!(
        open_err(ng.v),
        "pcapng block 1 (type 0x0a0d0d0a) at offset 0: byte-order magic 0x01020304 is \
         neither 1a2b3c4d nor 4d3c2b1a"
    );
}

#[test]
fn cut_off_last_record_is_a_warning() {
    let a = frame(60, 1);
    let b = frame(98, 2);
    let recs = [
        Rec {
            sec: 1,
            frac: 0,
            data: &a,
            orig: 60,
        },
        Rec {
            sec: 2,
            frac: 0,
            data: &b,
            orig: 98,
        },
    ];
    let full = pcap_file(true, false, 65535, 1, &recs);
    // Cut inside the second record's data: 16 + 44 of 16 + 98 bytes remain.
    let cut = &full[..full.len() - 54];
    let (got, warnings) = read_both(cut);
    assert_eq!(got.unwrap().len(), 1);
    assert_eq!(warnings.len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        "record 2 at offset 100 is cut short: 60 of 114 bytes; the file ends there"
    );
    // Cut inside the record header.
    let (got, warnings) = read_both(&full[..100 + 5]);
    assert_eq!(got.unwrap().len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        "record 2 at offset 100 is cut short: 5 of 16 bytes; the file ends there"
    );
    // A pcapng packet block cut by the end of the file is the same situation.
    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, 0, &[]);
    ng.epb(0, 1, &a, 60);
    let off = ng.epb(0, 2, &b, 98);
    let cut = &ng.v[..ng.v.len() - 10];
    let (got, warnings) = read_both(cut);
    assert_eq!(got.unwrap().len(), 1);
    assert_eq!(
        warnings[0].to_string(),
        format!("record 2 at offset {off} is cut short: 122 of 132 bytes; the file ends there")
    );
}

#[test]
fn caplen_over_snaplen_and_absurd_caplen() {
    let a = frame(100, 1);
    let rec = Rec {
        sec: 1,
        frac: 0,
        data: &a,
        orig: 100,
    };
    let bytes = pcap_file(false, false, 64, 1, &[rec]);
    assert_eq!(
        read_err(&bytes),
        "record 1 at offset 24: captured length 100 is larger than the snapshot length 64 of \
         the file header; the file is corrupt from here"
    );
    // Lenient mode reads it whole and says so once.
    let mut r = CaptureReader::from_bytes(bytes).unwrap();
    r.set_lenient_snaplen(true);
    assert_eq!(r.next_packet().unwrap().unwrap().data.len(), 100);
    assert_eq!(
        r.warnings()[0].to_string(),
        "record 1 at offset 24 has captured length 100, more than the snapshot length 64; \
         such packets were read whole"
    );

    let mut bytes = pcap_header(true, false, u32::MAX, 1);
    bytes.extend(u32b(true, 1));
    bytes.extend(u32b(true, 0));
    bytes.extend(u32b(true, u32::MAX)); // 4 GiB caplen
    bytes.extend(u32b(true, 60));
    bytes.extend([0; 100]);
    assert_eq!(
        read_err(&bytes),
        "record 1 at offset 24: captured length 4294967295 is larger than the limit of \
         67108864 bytes; the file is corrupt from here"
    );

    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, 64, &[]);
    let off = ng.epb(0, 1, &a, 100);
    assert_eq!(
        read_err(&ng.v),
        format!(
            "pcapng block 3 (type 0x00000006) at offset {off}: captured length 100 is larger \
             than the interface's snapshot length 64"
        )
    );
}

#[test]
fn pcapng_bad_block_lengths() {
    let base = || {
        let mut ng = Ng::new();
        ng.shb(true);
        ng.idb(1, 0, &[]);
        ng
    };
    let msg = |off: usize, len: u32, what: &str| {
        format!("pcapng block 3 (type 0x00000006) at offset {off}: length {len} {what}")
    };
    // Not a multiple of 4.
    let mut ng = base();
    let off = ng.epb(0, 1, &frame(60, 1), 60) as usize;
    ng.v[off + 4..off + 8].copy_from_slice(&u32b(true, 93));
    assert_eq!(read_err(&ng.v), msg(off, 93, "is not a multiple of 4"));
    // Shorter than 12.
    ng.v[off + 4..off + 8].copy_from_slice(&u32b(true, 8));
    assert_eq!(
        read_err(&ng.v),
        msg(off, 8, "is smaller than the minimum of 12")
    );
    // Trailer mismatch.
    let mut ng = base();
    let off = ng.epb(0, 1, &frame(60, 1), 60) as usize;
    let end = ng.v.len();
    ng.v[end - 4..].copy_from_slice(&u32b(true, 96));
    assert_eq!(
        read_err(&ng.v),
        msg(off, 92, "differs from the trailing length 96")
    );
    // Absurd.
    ng.v[off + 4..off + 8].copy_from_slice(&u32b(true, 0xffff_fff0));
    assert_eq!(
        read_err(&ng.v),
        msg(
            off,
            0xffff_fff0,
            "is larger than the limit of 67108864 bytes"
        )
    );
    // A non-packet block running past the end of the file is an error, not a warning.
    let mut ng = base();
    let off = ng.block(5, &[0; 20]) as usize;
    ng.v.truncate(ng.v.len() - 8);
    assert_eq!(
        read_err(&ng.v),
        format!(
            "pcapng block 3 (type 0x00000005) at offset {off}: length 32 runs past the end of \
             the file (24 bytes left)"
        )
    );
    // Captured length larger than the block.
    let mut ng = base();
    let off = ng.epb(0, 1, &frame(60, 1), 60) as usize;
    ng.v[off + 20..off + 24].copy_from_slice(&u32b(true, 61));
    assert_eq!(
        read_err(&ng.v),
        format!(
            "pcapng block 3 (type 0x00000006) at offset {off}: captured length 61 does not fit \
             in the block (60 bytes of room)"
        )
    );
    // Unknown interface.
    let mut ng = base();
    let off = ng.epb(1, 1, &frame(60, 1), 60);
    assert_eq!(
        read_err(&ng.v),
        format!(
            "pcapng block 3 (type 0x00000006) at offset {off}: packet on interface 1 but the \
             section describes 1 interface(s)"
        )
    );
}

/// Mutated valid files never panic, and the memory and stream readers agree on the outcome.
#[test]
fn mutations_never_panic() {
    let a = frame(60, 1);
    let b = frame(200, 2);
    let recs = [
        Rec {
            sec: 1,
            frac: 0,
            data: &a,
            orig: 60,
        },
        Rec {
            sec: 2,
            frac: 5,
            data: &b,
            orig: 300,
        },
    ];
    let seeds = [pcap_file(true, true, 256, 1, &recs), two_section_pcapng().0];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for seed in &seeds {
        for _ in 0..3000 {
            let mut v = seed.clone();
            for _ in 0..1 + rnd() % 4 {
                let at = (rnd() % v.len() as u64) as usize;
                v[at] = rnd() as u8;
            }
            if rnd() % 4 == 0 {
                let keep = (rnd() % v.len() as u64) as usize;
                v.truncate(keep);
            }
            let (res, _) = read_both(&v);
            if let Err(e) = res {
                assert!(e.contains("offset"), "{e}");
            }
        }
    }
}

// ---------------------------------------------------------------- writing

fn write_all(reader: &mut CaptureReader, out: &Path) {
    let mut w = CaptureWriter::create(out, &WriterConfig::like(reader)).unwrap();
    while let Some(p) = reader.next_packet().unwrap() {
        w.sync_interfaces(p.interfaces).unwrap();
        w.write_record(&p.meta(), p.data, None).unwrap();
    }
    w.finish().unwrap();
}

#[test]
fn pcap_round_trip_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = frame(60, 1);
    let b = frame(1514, 2);
    for (le, nanos) in [(true, false), (false, false), (true, true), (false, true)] {
        let recs = [
            Rec {
                sec: 1_700_000_000,
                frac: 999_999,
                data: &a,
                orig: 60,
            },
            Rec {
                sec: 3,
                frac: 7,
                data: &b,
                orig: 1600,
            },
        ];
        let input = pcap_file(le, nanos, 65535, 228, &recs);
        let inp = dir.path().join("in.pcap");
        std::fs::write(&inp, &input).unwrap();
        let mut r = CaptureReader::open(&inp).unwrap();
        let out = dir.path().join("out.pcap");
        write_all(&mut r, &out);
        assert_eq!(std::fs::read(&out).unwrap(), input, "le {le} nanos {nanos}");
    }
}

#[test]
fn pcapng_round_trip_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    // One section, interfaces written the way the writer writes them.
    let mut ng = Ng::new();
    ng.shb(true);
    ng.idb(1, 0, &[]);
    ng.idb(101, 2000, &[(9, vec![9])]);
    ng.idb(113, 0, &[(9, vec![0x80 | 24])]);
    ng.epb(0, 1_700_000_000_000_001, &frame(60, 1), 60);
    ng.epb(1, 1_700_000_000_000_000_001, &frame(1501, 2), 1501);
    ng.epb(2, 123 << 24 | 77, &frame(3, 3), 80);
    let inp = dir.path().join("in.pcapng");
    std::fs::write(&inp, &ng.v).unwrap();
    let mut r = CaptureReader::open(&inp).unwrap();
    let out = dir.path().join("out.pcapng");
    write_all(&mut r, &out);
    assert_eq!(std::fs::read(&out).unwrap(), ng.v);

    // Two sections become one, with the same packets on the same global interfaces.
    let (bytes, expected) = two_section_pcapng();
    std::fs::write(&inp, &bytes).unwrap();
    let mut r = CaptureReader::open(&inp).unwrap();
    write_all(&mut r, &out);
    let mut back = CaptureReader::open(&out).unwrap();
    let got = read_all(&mut back).unwrap();
    assert_eq!(got.len(), expected.len());
    for (g, e) in got.iter().zip(&expected) {
        assert_eq!(
            (&g.data, g.orig_len, g.ts_ns, g.link_type, g.interface),
            (&e.data, e.orig_len, e.ts_ns, e.link_type, e.interface)
        );
    }
    // And writing that again is byte-identical.
    let out2 = dir.path().join("out2.pcapng");
    let mut back = CaptureReader::open(&out).unwrap();
    write_all(&mut back, &out2);
    assert_eq!(std::fs::read(&out2).unwrap(), std::fs::read(&out).unwrap());
}

#[test]
fn write_in_place_rewrites_and_discards() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let mut w = CaptureWriter::create(&out, &WriterConfig::pcap(1, 65535, true)).unwrap();
    for i in 0..10u8 {
        let meta = RecordMeta {
            ts_ns: 1_000_000_000 + i64::from(i),
            orig_len: 64,
            interface: 0,
        };
        let kept = w
            .write_in_place(&meta, &frame(64, i), |bytes| {
                bytes[0] = 0xAA;
                i % 3 != 0
            })
            .unwrap();
        assert_eq!(kept, i % 3 != 0);
    }
    assert_eq!(w.records_written(), 6);
    w.finish().unwrap();
    let mut r = CaptureReader::open(&out).unwrap();
    let got = read_all(&mut r).unwrap();
    let kept: Vec<u8> = (0..10u8).filter(|i| i % 3 != 0).collect();
    assert_eq!(got.len(), kept.len());
    for (g, i) in got.iter().zip(kept) {
        let mut want = frame(64, i);
        want[0] = 0xAA;
        assert_eq!(g.data, want);
        assert_eq!(g.ts_ns, 1_000_000_000 + i64::from(i));
    }
}

#[test]
fn microsecond_output_truncates_nanoseconds() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    let mut w = CaptureWriter::create(&out, &WriterConfig::pcap(1, 0, false)).unwrap();
    let meta = RecordMeta {
        ts_ns: 1_700_000_000_123_456_789,
        orig_len: 1,
        interface: 0,
    };
    w.write_record(&meta, &[1], None).unwrap();
    let pre_epoch = RecordMeta { ts_ns: -1, ..meta };
    assert_eq!(
        w.write_record(&pre_epoch, &[1], None)
            .unwrap_err()
            .to_string(),
        "cannot write record 2: timestamp -1 ns does not fit the output format"
    );
    assert_eq!(
        w.write_record(&meta, &[1], Some("hi"))
            .unwrap_err()
            .to_string(),
        "cannot write record 2: packet comments need pcapng output (use the pcapng_annotated mode)"
    );
    w.finish().unwrap();
    let mut r = CaptureReader::open(&out).unwrap();
    assert_eq!(
        r.next_packet().unwrap().unwrap().ts_ns,
        1_700_000_000_123_456_000
    );
}

#[test]
fn temp_file_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.pcap");
    std::fs::write(&out, b"old").unwrap();
    let config = WriterConfig::pcap(1, 0, false);
    let meta = RecordMeta {
        ts_ns: 0,
        orig_len: 4,
        interface: 0,
    };
    {
        let mut w = CaptureWriter::create(&out, &config).unwrap();
        w.write_record(&meta, &[1, 2, 3, 4], None).unwrap();
        // Dropped without finish.
    }
    assert_eq!(std::fs::read(&out).unwrap(), b"old");
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("out.pcap")]);

    let mut w = CaptureWriter::create(&out, &config).unwrap();
    w.write_record(&meta, &[1, 2, 3, 4], None).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        b"old",
        "nothing visible before finish"
    );
    w.finish().unwrap();
    let mut r = CaptureReader::open(&out).unwrap();
    assert_eq!(r.next_packet().unwrap().unwrap().data, &[1, 2, 3, 4]);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn output_equal_to_input_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.pcap");
    let a = frame(10, 1);
    let bytes = pcap_file(
        true,
        false,
        0,
        1,
        &[Rec {
            sec: 1,
            frac: 0,
            data: &a,
            orig: 10,
        }],
    );
    std::fs::write(&inp, &bytes).unwrap();
    let r = CaptureReader::open(&inp).unwrap();
    let config = WriterConfig::like(&r);
    let dotted = dir.path().join(".").join("in.pcap");
    let linked = dir.path().join("link.pcap");
    std::os::unix::fs::symlink(&inp, &linked).unwrap();
    for same in [&inp, &dotted, &linked] {
        let err = CaptureWriter::create(same, &config).unwrap_err();
        assert!(matches!(err, CaptureError::OutputIsInput { .. }));
        assert!(
            err.to_string()
                .ends_with("is the input file; choose another output path")
        );
    }
    assert_eq!(std::fs::read(&inp).unwrap(), bytes);
    assert!(dnatsim::output::same_file(&inp, &linked));
    assert!(!dnatsim::output::same_file(&inp, &dir.path().join("nope")));
}

#[test]
fn link_type_names() {
    assert_eq!(link_type_name(1), "EN10MB");
    assert_eq!(link_type_name(101), "RAW");
    assert_eq!(link_type_name(228), "IPV4");
    assert_eq!(link_type_name(113), "LINUX_SLL");
    assert_eq!(link_type_name(276), "LINUX_SLL2");
    assert_eq!(link_type_name(0), "NULL");
    assert_eq!(link_type_name(108), "LOOP");
}

// ---------------------------------------------------------------- tshark

fn tshark(args: &[&str], file: &Path) -> Option<String> {
    let out = match Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
    {
        Ok(o) => o,
        Err(_) => {
            common::skip_or_fail("tshark is not installed");
            return None;
        }
    };
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

/// A UDP/IPv4 Ethernet frame, so tshark has something to dissect.
fn udp_frame(i: u8) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 8, 0];
    f.extend([
        0x45, 0, 0, 32, 0, i, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 203, 0, 113, 7,
    ]);
    f.extend([0x30, 0x39, 0, 53, 0, 12, 0, 0, b'd', b'a', b't', i]);
    f
}

#[test]
fn tshark_reads_our_output() {
    let dir = tempfile::tempdir().unwrap();
    let ts0 = 1_700_000_000_123_456_789i64;
    for (name, config) in [
        ("out.pcap", WriterConfig::pcap(1, 65535, false)),
        ("outns.pcap", WriterConfig::pcap(1, 65535, true)),
        ("out.pcapng", {
            let mut i = Interface::new(1, 65535);
            i.tsresol = 9;
            WriterConfig::pcapng(vec![Interface::new(1, 0), i])
        }),
    ] {
        let out = dir.path().join(name);
        let mut w = CaptureWriter::create(&out, &config).unwrap();
        let annotated = matches!(config.format, Format::PcapNg { .. });
        for i in 0..3u8 {
            let data = udp_frame(i);
            let meta = RecordMeta {
                ts_ns: ts0 + i64::from(i),
                orig_len: data.len() as u32,
                interface: u32::from(annotated && i == 2),
            };
            let comment = format!("nat: rewritten {i}");
            let comment = (annotated && i != 1).then_some(comment.as_str());
            w.write_record(&meta, &data, comment).unwrap();
        }
        w.finish().unwrap();
        let Some(text) = tshark(
            &[
                "-T",
                "fields",
                "-e",
                "frame.number",
                "-e",
                "frame.time_epoch",
                "-e",
                "udp.dstport",
                "-e",
                "frame.comment",
            ],
            &out,
        ) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{name}: {text}");
        for (i, line) in lines.iter().enumerate() {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f[0], (i + 1).to_string(), "{name}: {line}");
            let frac = if name == "out.pcap" {
                "1700000000.123456000"
            } else {
                [
                    "1700000000.123456789",
                    "1700000000.123456790",
                    "1700000000.123456791",
                ][i]
            };
            // The µs pcapng interface 0 carries packets 0 and 1.
            let frac = if name == "out.pcapng" && i < 2 {
                "1700000000.123456000"
            } else {
                frac
            };
            assert_eq!(f[1], frac, "{name}: {line}");
            assert_eq!(f[2], "53", "{name}: {line}");
            let want_comment = if annotated && i != 1 {
                format!("nat: rewritten {i}")
            } else {
                String::new()
            };
            assert_eq!(
                f.get(3).copied().unwrap_or(""),
                want_comment,
                "{name}: {line}"
            );
        }
    }
}

#[test]
fn pcap_input_can_be_annotated_as_pcapng() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.pcap");
    let data = udp_frame(9);
    let bytes = pcap_file(
        false,
        true,
        65535,
        1,
        &[Rec {
            sec: 1_700_000_000,
            frac: 5,
            data: &data,
            orig: data.len() as u32,
        }],
    );
    std::fs::write(&inp, &bytes).unwrap();
    let mut r = CaptureReader::open(&inp).unwrap();
    let config = WriterConfig::pcapng_annotated(&r);
    assert_eq!(
        config.format,
        Format::PcapNg {
            byte_order: ByteOrder::Big
        }
    );
    let out = dir.path().join("out.pcapng");
    let mut w = CaptureWriter::create(&out, &config).unwrap();
    while let Some(p) = r.next_packet().unwrap() {
        w.write_record(
            &p.meta(),
            p.data,
            Some("dnat: 203.0.113.7:53 -> 192.168.1.1:53"),
        )
        .unwrap();
    }
    w.finish().unwrap();
    let mut back = CaptureReader::open(&out).unwrap();
    let p = back.next_packet().unwrap().unwrap();
    assert_eq!((p.data, p.ts_ns), (&data[..], 1_700_000_000_000_000_005));
    if let Some(text) = tshark(&["-T", "fields", "-e", "frame.comment"], &out) {
        assert_eq!(text.trim_end(), "dnat: 203.0.113.7:53 -> 192.168.1.1:53");
    }
}

#[test]
fn big_stream_through_small_reads() {
    // 3 MiB of records through the stream window, which holds 1 MiB at a time.
    let data: Vec<Vec<u8>> = (0..2100).map(|i| frame(1500, i as u8)).collect();
    let recs: Vec<Rec> = data
        .iter()
        .enumerate()
        .map(|(i, d)| Rec {
            sec: i as u32,
            frac: 0,
            data: d,
            orig: 1500,
        })
        .collect();
    let bytes = pcap_file(true, false, 65535, 1, &recs);
    let mut r = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes))).unwrap();
    let mut n = 0;
    while let Some(p) = r.next_packet().unwrap() {
        assert_eq!(p.data, &data[n][..]);
        n += 1;
    }
    assert_eq!(n, 2100);
}

#[test]
fn reads_a_fifo_by_streaming() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    match Command::new("mkfifo").arg(&fifo).status() {
        Ok(s) if s.success() => {}
        _ => {
            common::skip_or_fail("mkfifo is not available");
            return;
        }
    }
    let (bytes, expected) = two_section_pcapng();
    let path = fifo.clone();
    let feeder = std::thread::spawn(move || std::fs::write(path, bytes));
    let mut r = CaptureReader::open(&fifo).unwrap();
    assert_eq!(read_all(&mut r).unwrap(), expected);
    feeder.join().unwrap().unwrap();
}

#[test]
fn open_and_create_errors_name_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let err = CaptureReader::open(dir.path()).unwrap_err().to_string();
    assert_eq!(
        err,
        format!(
            "cannot open {}: it is a directory, not a capture file",
            dir.path().display()
        )
    );
    let missing = dir.path().join("no/such/dir/out.pcap");
    let err = CaptureWriter::create(&missing, &WriterConfig::pcap(1, 0, false)).unwrap_err();
    assert!(
        err.to_string()
            .starts_with(&format!("cannot open {}: ", missing.display())),
        "{err}"
    );
}

// ---------------------------------------------------------------- write-behind

/// Writes 20,000 records of up to 1,500 bytes (several 2 MiB buffers), kept or discarded by
/// turns; with `behind`, a drain on another thread does the writing.
fn write_many(path: &Path, behind: bool) -> Result<(), CaptureError> {
    let mut w = CaptureWriter::create(path, &WriterConfig::pcapng(vec![Interface::new(1, 0)]))?;
    std::thread::scope(|s| {
        if behind {
            let drain = w
                .write_behind()?
                .expect("a file can be written from another thread");
            s.spawn(move || drain.run());
        }
        let written = write_records(&mut w);
        // On every path: the drain runs until write-behind ends, and the scope waits for it.
        let ended = w.end_write_behind();
        written.and(ended)
    })?;
    w.finish()
}

fn write_records(w: &mut CaptureWriter) -> Result<(), CaptureError> {
    let mut data = vec![0u8; 1500];
    for i in 0..20_000u32 {
        let len = (i as usize * 7919) % 1500;
        data[..4].copy_from_slice(&i.to_be_bytes());
        let meta = RecordMeta {
            ts_ns: i64::from(i) * 1000,
            orig_len: len as u32,
            interface: 0,
        };
        w.write_in_place(&meta, &data[..len], |b| {
            b.iter_mut().skip(4).for_each(|x| *x = x.wrapping_add(1));
            i % 3 != 1
        })?;
        if i % 500 == 0 {
            w.write_record(&meta, b"plain", Some("a comment"))?;
        }
    }
    Ok(())
}

#[test]
fn write_behind_writes_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let (direct, behind) = (dir.path().join("direct"), dir.path().join("behind"));
    write_many(&direct, false).unwrap();
    write_many(&behind, true).unwrap();
    let (a, b) = (
        std::fs::read(&direct).unwrap(),
        std::fs::read(&behind).unwrap(),
    );
    assert!(a.len() > 3 * (2 << 20), "the output spans several buffers");
    assert!(a == b, "write-behind changed the output");
    let mut r = CaptureReader::open(&behind).unwrap();
    let mut n = 0;
    while r.next_packet().unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 20_000 - 6_667 + 40);
}

#[test]
fn write_behind_reports_a_failed_write() {
    if !Path::new("/dev/full").exists() {
        common::skip_or_fail("/dev/full is not here");
        return;
    }
    let e = write_many(Path::new("/dev/full"), true).unwrap_err();
    assert!(
        matches!(&e, CaptureError::Write { path, source }
            if path == Path::new("/dev/full") && source.raw_os_error() == Some(28)),
        "{e}"
    );
}

/// `peek_ahead` (the prefetch hint) names exactly the frame `next_packet` hands out that many
/// packets later, in both byte orders, and nothing past the end, on a cut-off last record or
/// for a stream.
#[test]
fn peek_ahead_finds_the_packet_that_many_records_on() {
    for le in [true, false] {
        let frames: Vec<Vec<u8>> = (0..40).map(|i| frame(20 + (i * 7) % 90, i as u8)).collect();
        let recs = whole_records(&frames);
        let mut bytes = pcap_file(le, false, 65535, 1, &recs);
        let full = bytes.len();
        // A last record cut short: announced but not there.
        pcap_record(
            &mut bytes,
            le,
            &Rec {
                sec: 1,
                frac: 2,
                data: &[7; 30],
                orig: 30,
            },
        );
        bytes.truncate(full + 16 + 10);
        let mut r = CaptureReader::from_bytes(bytes.clone()).unwrap();
        assert!(r.in_memory());
        for distance in [0u64, 1, 5] {
            let mut r = CaptureReader::from_bytes(bytes.clone()).unwrap();
            for next in 0..frames.len() {
                let want = frames
                    .get(next + distance as usize)
                    .map(|f| (f.clone(), 1u16));
                let got = r.peek_ahead(distance).map(|(f, l)| (f.to_vec(), l));
                assert_eq!(got, want, "le {le}, packet {next}, distance {distance}");
                assert_eq!(r.next_packet().unwrap().unwrap().data, &frames[next][..]);
            }
        }
        // Jumping ahead in several steps and back gives the same answers.
        assert_eq!(
            r.peek_ahead(16).map(|(f, _)| f.to_vec()),
            Some(frames[16].clone())
        );
        assert_eq!(
            r.peek_ahead(3).map(|(f, _)| f.to_vec()),
            Some(frames[3].clone())
        );
        let mut stream = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes))).unwrap();
        assert!(!stream.in_memory());
        assert_eq!(stream.peek_ahead(1), None);
    }
}
