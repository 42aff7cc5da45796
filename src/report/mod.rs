//! Counters of a run, the JSON report and the human summary.

pub mod summary;
pub mod trace;

use serde::Serialize;

/// Why a packet did not come out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DropReason {
    /// To an EIP, but no entry covers its protocol and port.
    NoRule,
    /// A header that lies about its lengths or is cut short.
    Malformed,
    /// TTL of 0 or 1 on arrival: a router may not forward it.
    TtlExpired,
    /// The IPv4 header checksum does not verify (RFC 1812 5.2.2).
    BadIpChecksum,
    /// A later fragment whose first fragment never came within the hold limits.
    FragmentOrphan,
    /// Neither to an EIP nor from a mapped server, with `--foreign drop`.
    Foreign,
    /// Over the bandwidth package's rate.
    RateLimited,
}

impl DropReason {
    /// Every reason, in report order.
    pub const ALL: [DropReason; 7] = [
        DropReason::NoRule,
        DropReason::Malformed,
        DropReason::TtlExpired,
        DropReason::BadIpChecksum,
        DropReason::FragmentOrphan,
        DropReason::Foreign,
        DropReason::RateLimited,
    ];

    /// The report's key for this reason.
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::NoRule => "no_rule",
            DropReason::Malformed => "malformed",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::BadIpChecksum => "bad_ip_checksum",
            DropReason::FragmentOrphan => "fragment_orphan",
            DropReason::Foreign => "foreign",
            DropReason::RateLimited => "rate_limited",
        }
    }
}

/// Per-entry traffic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct EntryCounters {
    /// Packets translated by the entry (both directions).
    pub packets: u64,
    /// Their bytes (frame lengths on the wire).
    pub bytes: u64,
    /// Flows the entry created.
    pub flows: u64,
}

/// Everything counted in a run; updated per packet without allocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Records read.
    pub packets_in: u64,
    /// Their wire bytes.
    pub bytes_in: u64,
    /// Records written (or that would be written without `-o`).
    pub packets_out: u64,
    /// Their wire bytes.
    pub bytes_out: u64,
    /// Translated toward a server.
    pub inbound: u64,
    /// Translated from a server.
    pub outbound: u64,
    /// Passed without change: not IPv4.
    pub passed_not_ipv4: u64,
    /// Passed without change: IPv4 not concerning the gateway.
    pub passed_foreign: u64,
    /// Dropped, indexed like [`DropReason::ALL`].
    pub dropped: [u64; 7],
    /// Translated packets whose TCP/UDP checksum was already wrong on input (kept wrong).
    pub bad_l4_checksum_in: u64,
    /// Packets cut by the capture's snap length (translated from their headers).
    pub snapped: u64,
    /// Fragments held until their first fragment arrived.
    pub fragments_held: u64,
    /// Per entry, indexed like the forward table.
    pub entries: Vec<EntryCounters>,
}

impl Counters {
    /// Counters for a table of `entries` entries.
    pub fn new(entries: usize) -> Counters {
        Counters {
            entries: vec![EntryCounters::default(); entries],
            ..Counters::default()
        }
    }

    /// Counts one drop.
    #[inline]
    pub fn drop(&mut self, reason: DropReason) {
        self.dropped[reason as usize] += 1;
    }

    /// Drops by reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped[reason as usize]
    }

    /// All drops.
    pub fn dropped_total(&self) -> u64 {
        self.dropped.iter().sum()
    }
}
