//! Typed views over packet bytes: link layers, IPv4, the transport fields NAT rewrites, and
//! the Internet checksum.
//!
//! Every view checks lengths before it reads; once a view is constructed its accessors
//! cannot panic.

pub mod build;
pub mod checksum;
pub mod header;
pub mod ipv4;
pub mod link;

pub use header::{
    IcmpHeader, Ipv4Header, TcpHeader, UdpHeader, is_icmp_error, is_icmp_query, read16,
};
pub use ipv4::{Ipv4Error, Ipv4Packet};
pub use link::{Frame, locate_ipv4};
