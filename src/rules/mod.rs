//! The rules file: its model, parser, validation profiles and other formats.
//!
//! - [`parse_str`] / [`parse_file`] read a TOML rules file, collect every error with its line:column,
//!   and validate it under the file's profile (`[gateway] profile`).
//! - [`import_api_json`] reads the cloud API's Describe* responses; [`to_toml`] writes a rules file.
//! - [`to_nft`] and [`to_api_json`] export the forward table to nftables and to the API's JSON shape.
//!
//! # Profiles
//!
//! `alibaba` (the default) rejects what the cloud API rejects: duplicates on either side, `any` protocol
//! with a port, `any` port on one side only, `any` port with protocol tcp/udp, an external IP outside the
//! package, external IP = internal IP, any other entry on an IP (external or internal) that has an IP
//! mapping, ranges of unequal size, overlapping ranges on either side, bad values, more than 100 entries,
//! addresses no gateway can use (0.0.0.0/8, loopback, multicast, 240.0.0.0/4 and the broadcast address)
//! as a public, external or internal IP, a bandwidth outside 1-5,000 Mbps and a `burst_bytes` over 1 GB.
//!
//! `permissive` lifts those last three and three more: an IP mapping may share its IPs with port
//! mappings (the port mapping wins, as in nftables and VPP), there is no entry cap, and a tcp/udp entry with both ports
//! `any` is accepted. Such an entry maps every port of that protocol to the same port of the server; it
//! counts as the range 1-65535 in the overlap checks, so it is accepted only when no other entry of that
//! protocol uses its external IP (or its internal IP), which keeps the lookup unambiguous. The only
//! other entry it can meet on its external IP is the IP's `any`-protocol mapping, which it outranks
//! for its protocol (the more specific entry wins).
//!
//! # Orders
//!
//! [`to_toml`] and [`to_api_json`] write entries in the order of [`Rules::forward_entries`] (file order
//! for parsed rules). [`import_api_json`] puts them in the tutorial's table order: by the external IP's
//! place in the bandwidth package, then by external port. Entries without an id get [`derive_id`]'s.

#![warn(missing_docs)]

mod diag;
mod export;
mod id;
mod import;
pub mod model;
mod parse;
mod validate;
mod values;

pub use diag::{Diagnostic, RulesError, Severity, Snippet};
pub use export::{terraform_eip_variable, to_api_json, to_nft, to_terraform, to_toml};
pub use id::derive_id;
pub use import::import_api_json;
pub use model::*;
pub use parse::{Parsed, parse_file, parse_str};
pub use validate::{
    ALIBABA_MAX_BANDWIDTH_BPS, ALIBABA_MAX_BURST_BYTES, ALIBABA_MAX_ENTRIES,
    ALIBABA_MIN_BANDWIDTH_BPS,
};
