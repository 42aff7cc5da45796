//! The bandwidth package: a token bucket per direction that polices or shapes the traffic of
//! all EIPs of a gateway, with per-interval statistics and an SVG plot.
//!
//! The core never reads a clock: [`Limiter::offer`] takes the caller's `now_ns`, which is the
//! capture's clock in replay and a [`WallClock`] in live mode. Credit is exact integer
//! arithmetic (see [`bucket`]), so a 150 Mbps package carries 150 Mbps over any run length.
//!
//! ```
//! use dnatsim::bandwidth::{Admission, Direction, Limiter};
//! use dnatsim::rules::{BandwidthPackage, CountMode, LimitMode};
//!
//! let pkg = BandwidthPackage {
//!     rate_bps: 150_000_000,
//!     public_ips: vec![],
//!     burst_bytes: None,
//!     mode: LimitMode::Police,
//!     queue_limit_bytes: None,
//!     latency_ms: None,
//!     inbound: true,
//!     outbound: true,
//!     count: CountMode::L3,
//! };
//! let mut limiter = Limiter::new(&pkg)?;
//! assert_eq!(limiter.offer(Direction::Inbound, 1_000, 1500), Admission::Pass { depart_ns: 1_000 });
//! let json = serde_json::to_string(&limiter.stats())?;
//! # let _ = json;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod bucket;
mod clock;
mod error;
mod histogram;
mod limiter;
mod plot;
mod stats;

pub use bucket::TokenBucket;
pub use clock::{Clock, VirtualClock, WallClock};
pub use error::{BandwidthError, PlotError};
pub use limiter::{
    Admission, DEFAULT_BURST_MS, DEFAULT_INTERVAL_NS, DEFAULT_LATENCY_MS, Direction, Limiter,
    LimiterConfig, MAX_FRAME_BYTES, default_burst_bytes,
};
pub use plot::{svg_string, write_svg};
pub use stats::{BandwidthStats, ConfigReport, DirectionStats, DirectionTotals, IntervalStats};

use crate::rules::CountMode;

/// Ethernet overhead outside the captured frame: preamble and SFD 8, FCS 4, inter-frame gap 12.
pub const ETHERNET_OVERHEAD_BYTES: u32 = 24;

/// The shortest Ethernet frame without its FCS; shorter frames are padded to this on the wire.
pub const ETHERNET_MIN_FRAME_BYTES: u32 = 60;

/// The bytes a packet costs under `count`.
///
/// L3 counts the IPv4 total length. L2 counts what the frame occupies on an Ethernet wire:
/// `max(frame_len, 60) + 24`, where `frame_len` is the frame as captured *without* its FCS
/// (what pcap and Linux hand over unless `rx-fcs` is on), 60 is the minimum frame before the FCS
/// (shorter frames, captured before padding, still take 60 bytes on the wire), and 24 is preamble
/// with SFD (8) + FCS (4) + inter-frame gap (12). A capture that does include the FCS should pass
/// `frame_len - 4`; for non-Ethernet captures (raw IP, Linux SLL) pass `ip_total_len + 14`, the
/// Ethernet frame the packet would travel in. VLAN tags count as part of `frame_len`.
#[inline]
pub fn counted_bytes(count: CountMode, ip_total_len: u16, frame_len: u32) -> u32 {
    match count {
        CountMode::L3 => u32::from(ip_total_len),
        CountMode::L2 => frame_len
            .max(ETHERNET_MIN_FRAME_BYTES)
            .saturating_add(ETHERNET_OVERHEAD_BYTES),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_bytes_l3_and_l2() {
        assert_eq!(counted_bytes(CountMode::L3, 1500, 1514), 1500);
        assert_eq!(counted_bytes(CountMode::L2, 1500, 1514), 1538);
        assert_eq!(counted_bytes(CountMode::L2, 28, 42), 84);
        assert_eq!(counted_bytes(CountMode::L2, 0, u32::MAX), u32::MAX);
    }
}
