//! Typed views over packet bytes: link layers, IPv4, the transport fields NAT rewrites, and
//! the Internet checksum.
//!
//! Every view checks lengths before it reads; once a view is constructed its accessors
//! cannot panic.

pub mod build;
pub mod checksum;
pub mod ipv4;
pub mod link;

pub use ipv4::{Ipv4Error, Ipv4Packet};
pub use link::{Frame, locate_ipv4};
