//! What the translator decided about a packet: its verdict, the tuple before and after, and
//! the facts behind a drop. The translator owns these types; the reporting layer counts and
//! prints them.

use super::table::MatchKind;
use crate::wire::ipv4::Ipv4Error;
use thiserror::Error;

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

/// The defect behind a `malformed` verdict, with the values that show it. Each message starts
/// with the wording the trace printed before these carried values (tests/data/malformed quotes
/// it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum Malformed {
    /// The link-layer header is cut short.
    #[error("link-layer header cut short: {len} of {needed} bytes")]
    Link {
        /// Bytes the link-layer header needs.
        needed: usize,
        /// Bytes captured.
        len: usize,
    },
    /// The IPv4 header's own defect.
    #[error(transparent)]
    Ip(#[from] Ipv4Error),
    /// A fragment whose offset and length end past the largest datagram (RFC 791).
    #[error("fragment offset and length reach beyond 65535 bytes: it ends at {end}")]
    FragmentBeyond64k {
        /// Where the fragment ends within its datagram, in bytes.
        end: usize,
    },
    /// Fewer than TCP's fixed 20 bytes were captured (RFC 1858: a first fragment holds them).
    #[error("TCP header cut short: {len} of 20 bytes")]
    TcpHeaderShort {
        /// Bytes of TCP captured.
        len: usize,
    },
    /// The data offset is below 20 or reaches past the segment.
    #[error("TCP data offset beyond the segment: a {data_offset}-byte header in {len} bytes")]
    TcpDataOffset {
        /// The data offset in bytes.
        data_offset: usize,
        /// Bytes of the segment (the IP payload).
        len: usize,
    },
    /// Fewer than UDP's 8 header bytes were captured.
    #[error("UDP header cut short: {len} of 8 bytes")]
    UdpHeaderShort {
        /// Bytes of UDP captured.
        len: usize,
    },
    /// The UDP length is below 8 or beyond the IP payload.
    #[error("UDP length disagrees with the IP length: UDP says {udp_len}, IP carries {len}")]
    UdpLength {
        /// The UDP length field.
        udp_len: usize,
        /// Bytes of the IP payload.
        len: usize,
    },
    /// Fewer than ICMP's first 4 bytes were captured.
    #[error("ICMP header cut short: {len} of 4 bytes")]
    IcmpHeaderShort {
        /// Bytes of ICMP captured.
        len: usize,
    },
    /// An ICMP query cut before its identifier.
    #[error("ICMP query without an identifier: {len} of 6 bytes")]
    IcmpQueryShort {
        /// Bytes of ICMP captured.
        len: usize,
    },
    /// An ICMP error whose quoted datagram lacks its IP header or ports.
    #[error("ICMP error quotes a datagram cut short")]
    IcmpQuoteShort,
}

/// An IPv4 5-tuple in host order; ports are 0 for protocols without them and the identifier
/// (in both fields) for ICMP queries.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
// Padding only at the end: with a hole between fields, copies of it were made byte by byte on
// the per-packet path.
#[repr(C, align(8))]
pub struct Tuple {
    /// Source address.
    pub src: u32,
    /// Destination address.
    pub dst: u32,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// IP protocol number.
    pub proto: u8,
}

/// What happened to a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Translated toward a server.
    Inbound {
        /// The forward entry applied.
        entry: u32,
        /// How it matched.
        kind: MatchKind,
    },
    /// Translated from a server back to its public address.
    Outbound {
        /// The forward entry applied.
        entry: u32,
        /// How it matched.
        kind: MatchKind,
    },
    /// Passed unchanged: not IPv4.
    PassNotIpv4,
    /// Passed unchanged: concerns no EIP or mapped server.
    PassForeign,
    /// Dropped.
    Drop(DropReason),
    /// A later fragment kept until its first fragment decides (see
    /// [`super::Translator::pop_event`]).
    Held,
}

/// Extra facts about a packet, for counters and the teaching views.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Notes {
    /// The binding was created by this packet.
    pub new_flow: bool,
    /// Its TCP/UDP checksum did not verify on input (and still does not, by the same amount).
    pub bad_l4_checksum_in: bool,
    /// The capture holds fewer bytes than the packet had.
    pub snapped: bool,
    /// A fragment of a larger datagram.
    pub fragment: bool,
    /// An ICMP error whose embedded packet was translated too.
    pub icmp_error: bool,
    /// The defect, when the verdict is `malformed`.
    pub malformed: Option<Malformed>,
}

/// The result of translating one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// What happened.
    pub verdict: Verdict,
    /// The tuple on arrival (zero when not IPv4 or unreadable).
    pub before: Tuple,
    /// The tuple as it leaves (equal to `before` when unchanged).
    pub after: Tuple,
    /// The IPv4 total length (0 when not IPv4), for layer-3 bandwidth accounting.
    pub ip_len: u16,
    /// Details.
    pub notes: Notes,
}

impl Outcome {
    /// A placeholder outcome for a packet not yet translated.
    pub fn none() -> Outcome {
        Outcome::new(Verdict::PassNotIpv4)
    }

    pub(super) fn new(verdict: Verdict) -> Outcome {
        Outcome {
            verdict,
            before: Tuple::default(),
            after: Tuple::default(),
            ip_len: 0,
            notes: Notes::default(),
        }
    }

    /// A packet dropped as malformed because of `why`.
    pub(super) fn malformed(why: Malformed) -> Outcome {
        let mut o = Outcome::new(Verdict::Drop(DropReason::Malformed));
        o.notes.malformed = Some(why);
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The trace prints these; each keeps the words it had before it carried values.
    #[test]
    fn malformed_messages_name_the_defect_then_its_values() {
        let cases = [
            (
                Malformed::Link { needed: 14, len: 9 },
                "link-layer header cut short: 9 of 14 bytes",
            ),
            (
                Malformed::Ip(Ipv4Error::BadHeaderLength { header_len: 16 }),
                "IPv4 header: header length 16 is below the minimum of 20",
            ),
            (
                Malformed::FragmentBeyond64k { end: 65544 },
                "fragment offset and length reach beyond 65535 bytes: it ends at 65544",
            ),
            (
                Malformed::TcpDataOffset {
                    data_offset: 60,
                    len: 38,
                },
                "TCP data offset beyond the segment: a 60-byte header in 38 bytes",
            ),
            (
                Malformed::UdpLength {
                    udp_len: 200,
                    len: 12,
                },
                "UDP length disagrees with the IP length: UDP says 200, IP carries 12",
            ),
            (
                Malformed::IcmpQuoteShort,
                "ICMP error quotes a datagram cut short",
            ),
        ];
        for (m, text) in cases {
            assert_eq!(m.to_string(), text);
        }
    }
}
