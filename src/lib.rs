//! dnatsim: a DNAT data-plane simulator and packet translation engine.
//!
//! A packet travels one way through the crate:
//!
//! ```text
//! source (pcap / pcapng / TAP / interface)      capture::
//!   -> frame view (Ethernet, VLAN, SLL, raw IP)  wire::
//!   -> classify, flow table, forward table       nat::
//!   -> rewrite in place with incremental sums    wire:: + nat::
//!   -> bandwidth package (token bucket)          bandwidth::
//!   -> sink + counters                           capture:: + report::
//! ```
//!
//! The rules file (`rules::`) is parsed and validated once, then compiled into a
//! [`nat::ForwardTable`] whose lookups never allocate.

// Every `unsafe` is a system call or hint with a local `SAFETY:` comment, allowed on the
// smallest item that needs it, so a new one cannot slip in unreviewed.
#![deny(unsafe_code)]

pub mod api;
pub mod bandwidth;
pub mod capture;
pub mod live;
pub mod nat;
pub mod output;
pub mod pipeline;
pub mod report;
pub mod review;
pub mod rules;
pub mod traffic;
pub mod wire;
