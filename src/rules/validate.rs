//! The validation profiles: from a located draft (read from TOML or JSON) to [`Rules`].
//!
//! Front ends report what is wrong with single values (bad IP, port 70000, unknown key)
//! and leave the field `None`; this module checks what involves several values or entries,
//! and skips entries with a missing field so that one typo does not cascade.
//! Every cross-entry check groups with hash maps or sorts, so 100,000 entries stay fast.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use super::diag::{Diagnostics, Loc};
use super::id::derive_id;
use super::model::*;

/// The cloud API's limit on DNAT entries per forward table.
pub const ALIBABA_MAX_ENTRIES: usize = 100;

/// The smallest bandwidth package the cloud sells: 1 Mbps (the API's `Bandwidth` is a whole
/// number of Mbps from 1).
pub const ALIBABA_MIN_BANDWIDTH_BPS: u64 = 1_000_000;

/// The largest bandwidth package accepted: 5,000 Mbps. Alibaba Cloud's documentation gives
/// 1-1,000 Mbps for a pay-as-you-go Internet Shared Bandwidth instance and uses 5 Gbps as an
/// instance's maximum in its limits page; the higher figure is taken so that no package the
/// cloud can sell is refused.
pub const ALIBABA_MAX_BANDWIDTH_BPS: u64 = 5_000_000_000;

/// The largest `burst_bytes` accepted: 1 GB. At the largest package (5 Gbps) that is 1.6 s of
/// traffic let through at once, far beyond any real token bucket; a larger value is a typo.
pub const ALIBABA_MAX_BURST_BYTES: u64 = 1_000_000_000;

/// Why no gateway can use `ip` as a public or private address, if it cannot.
fn unusable(ip: Ipv4Addr) -> Option<&'static str> {
    let first = ip.octets()[0];
    if first == 0 {
        Some("in 0.0.0.0/8 (\"this network\", RFC 1122)")
    } else if ip.is_loopback() {
        Some("a loopback address (127.0.0.0/8)")
    } else if ip.is_multicast() {
        Some("a multicast address (224.0.0.0/4)")
    } else if ip.is_broadcast() {
        Some("the limited broadcast address")
    } else if first >= 240 {
        Some("in the reserved 240.0.0.0/4 (class E)")
    } else {
        None
    }
}

/// The checks of the `alibaba` profile on single values: addresses, bandwidth and burst.
fn check_values(draft: &Draft, diags: &mut Diagnostics<'_>) {
    let note = || vec!["profile = \"permissive\" in [gateway] accepts it".to_string()];
    let addresses =
        draft
            .public_ips
            .iter()
            .map(|l| ("public IP", l))
            .chain(draft.entries.iter().flat_map(|e| {
                let ext = e.external_ip.iter().map(|l| ("external_ip", l));
                ext.chain(e.internal_ip.iter().map(|l| ("internal_ip", l)))
            }));
    for (what, ip) in addresses {
        if let Some(why) = unusable(ip.v) {
            diags.error_with(
                "unusable-ip",
                &ip.loc,
                format!("{what} {} is {why}; no gateway can use it", ip.v),
                note(),
            );
        }
    }
    if let Some(rate) = &draft.rate_bps {
        let mbps = rate.v as f64 / 1e6;
        if rate.v < ALIBABA_MIN_BANDWIDTH_BPS {
            diags.error_with(
                "bandwidth-range",
                &rate.loc,
                format!("bandwidth_mbps {mbps} is below the cloud's minimum of 1 Mbps"),
                note(),
            );
        } else if rate.v > ALIBABA_MAX_BANDWIDTH_BPS {
            diags.error_with(
                "bandwidth-range",
                &rate.loc,
                format!(
                    "bandwidth_mbps {mbps} is above the cloud's maximum of {} Mbps for a bandwidth package",
                    ALIBABA_MAX_BANDWIDTH_BPS / 1_000_000
                ),
                note(),
            );
        }
    }
    if let Some(burst) = &draft.burst_bytes
        && burst.v > ALIBABA_MAX_BURST_BYTES
    {
        diags.error_with(
            "burst-too-large",
            &burst.loc,
            format!(
                "burst_bytes {} is over 1 GB ({ALIBABA_MAX_BURST_BYTES} bytes); no gateway lets that much through at once",
                burst.v
            ),
            note(),
        );
    }
}

/// A value and where it came from.
#[derive(Debug, Clone)]
pub(crate) struct Located<T> {
    pub v: T,
    pub loc: Loc,
}

impl<T> Located<T> {
    pub(crate) fn new(v: T, loc: Loc) -> Self {
        Located { v, loc }
    }
}

/// A `[[forward_entry]]` as read, each field `None` if missing or invalid (already reported).
#[derive(Debug, Clone)]
pub(crate) struct DraftEntry {
    pub header: Loc,
    pub position: Position,
    pub id: Option<Located<String>>,
    pub external_ip: Option<Located<Ipv4Addr>>,
    pub external_port: Option<Located<PortSpec>>,
    pub ip_protocol: Option<Located<Protocol>>,
    pub internal_ip: Option<Located<Ipv4Addr>>,
    pub internal_port: Option<Located<PortSpec>>,
}

impl DraftEntry {
    pub(crate) fn new(header: Loc, position: Position) -> Self {
        DraftEntry {
            header,
            position,
            id: None,
            external_ip: None,
            external_port: None,
            ip_protocol: None,
            internal_ip: None,
            internal_port: None,
        }
    }
}

/// Everything read from the input; `None`/`false` where missing or invalid (already reported).
#[derive(Debug, Clone, Default)]
pub(crate) struct Draft {
    pub name: Option<String>,
    pub profile: Profile,
    pub private_ip: Option<Ipv4Addr>,
    /// Set when a required part could not be read, so no `Rules` can be built.
    pub broken: bool,
    pub rate_bps: Option<Located<u64>>,
    pub public_ips: Vec<Located<Ipv4Addr>>,
    pub burst_bytes: Option<Located<u64>>,
    pub mode: LimitMode,
    pub queue_limit_bytes: Option<Located<u64>>,
    pub latency_ms: Option<Located<u64>>,
    pub inbound: bool,
    pub outbound: bool,
    pub count: CountMode,
    pub entries: Vec<DraftEntry>,
}

/// An entry whose every field is present, with the locations kept for messages.
struct Complete<'d> {
    d: &'d DraftEntry,
    ext_ip: Ipv4Addr,
    ext_port: PortSpec,
    proto: Protocol,
    int_ip: Ipv4Addr,
    int_port: PortSpec,
}

impl Complete<'_> {
    fn loc_ext_port(&self) -> &Loc {
        self.d
            .external_port
            .as_ref()
            .map_or(&self.d.header, |l| &l.loc)
    }
    fn loc_int_port(&self) -> &Loc {
        self.d
            .internal_port
            .as_ref()
            .map_or(&self.d.header, |l| &l.loc)
    }
    fn loc_proto(&self) -> &Loc {
        self.d
            .ip_protocol
            .as_ref()
            .map_or(&self.d.header, |l| &l.loc)
    }
    fn loc_ext_ip(&self) -> &Loc {
        self.d
            .external_ip
            .as_ref()
            .map_or(&self.d.header, |l| &l.loc)
    }
    fn loc_int_ip(&self) -> &Loc {
        self.d
            .internal_ip
            .as_ref()
            .map_or(&self.d.header, |l| &l.loc)
    }
}

fn complete(d: &DraftEntry) -> Option<Complete<'_>> {
    Some(Complete {
        d,
        ext_ip: d.external_ip.as_ref()?.v,
        ext_port: d.external_port.as_ref()?.v,
        proto: d.ip_protocol.as_ref()?.v,
        int_ip: d.internal_ip.as_ref()?.v,
        int_port: d.internal_port.as_ref()?.v,
    })
}

/// Runs the profile's checks; returns the rules if no error was recorded (by anyone) in `diags`.
pub(crate) fn validate(draft: &Draft, diags: &mut Diagnostics<'_>) -> Option<Rules> {
    let alibaba = draft.profile == Profile::Alibaba;
    let mut eip_used = check_public_ips(draft, diags);
    if alibaba {
        check_values(draft, diags);
    }
    check_shape_only_options(draft, diags);
    if alibaba {
        check_entry_count(draft, diags);
    }
    let entries: Vec<Complete<'_>> = draft.entries.iter().filter_map(complete).collect();
    for e in &entries {
        check_ports(e, alibaba, diags);
        check_addresses(e, &mut eip_used, diags);
    }
    if alibaba {
        check_ip_mappings(&entries, diags);
    }
    // Exact duplicates and overlaps, on each side: group by (IP, protocol), sort by first port, sweep.
    check_side(&entries, diags, Side::External);
    check_side(&entries, diags, Side::Internal);
    let ids = check_ids(draft, diags);
    warn_unused_public_ips(draft, &mut eip_used, diags);

    if !diags.errors.is_empty() || draft.broken {
        return None;
    }
    assemble(draft, ids)
}

/// The package's EIPs: duplicates are an error; their order is kept for reports. Returns each
/// distinct EIP with whether an entry uses it (none yet).
fn check_public_ips(draft: &Draft, diags: &mut Diagnostics<'_>) -> HashMap<Ipv4Addr, bool> {
    let mut eip_first: HashMap<Ipv4Addr, &Loc> = HashMap::new();
    let mut eip_used: HashMap<Ipv4Addr, bool> = HashMap::new();
    for ip in &draft.public_ips {
        if let Some(first) = eip_first.get(&ip.v) {
            let other = diags.line_of(first);
            diags.error(
                "duplicate-public-ip",
                &ip.loc,
                format!(
                    "public IP {} is listed twice in bandwidth_package.public_ips (first at {other})",
                    ip.v
                ),
            );
        } else {
            eip_first.insert(ip.v, &ip.loc);
            eip_used.insert(ip.v, false);
        }
    }
    eip_used
}

/// Shaping's options given in police mode: a warning, as they change nothing.
fn check_shape_only_options(draft: &Draft, diags: &mut Diagnostics<'_>) {
    if draft.mode != LimitMode::Police {
        return;
    }
    for (what, v) in [
        ("queue_limit_bytes", &draft.queue_limit_bytes),
        ("latency_ms", &draft.latency_ms),
    ] {
        if let Some(v) = v {
            diags.warning(
                "shape-only-option",
                &v.loc,
                format!("{what} only matters with mode = \"shape\"; it is ignored in police mode"),
            );
        }
    }
}

/// The `alibaba` profile's limit on the number of entries, reported at the first one over it.
fn check_entry_count(draft: &Draft, diags: &mut Diagnostics<'_>) {
    if let Some(e) = draft.entries.get(ALIBABA_MAX_ENTRIES) {
        diags.error_with(
            "too-many-entries",
            &e.header,
            format!(
                "{} forward entries exceed the cloud API's limit of {ALIBABA_MAX_ENTRIES} per forward table; this is entry {}",
                draft.entries.len(),
                ALIBABA_MAX_ENTRIES + 1
            ),
            vec!["profile = \"permissive\" in [gateway] lifts the limit".to_string()],
        );
    }
}

/// One entry's ports against its protocol and each other: `any` on both sides or neither,
/// ranges of the same size.
fn check_ports(e: &Complete<'_>, alibaba: bool, diags: &mut Diagnostics<'_>) {
    let ext_any = e.ext_port == PortSpec::Any;
    let int_any = e.int_port == PortSpec::Any;
    if e.proto == Protocol::Any && !(ext_any && int_any) {
        let loc = if !ext_any {
            e.loc_ext_port()
        } else {
            e.loc_int_port()
        };
        diags.error(
            "any-protocol-port",
            loc,
            format!(
                "ip_protocol \"any\" maps the whole IP, so both ports must be \"any\" (external_port = \"{}\", internal_port = \"{}\")",
                e.ext_port, e.int_port
            ),
        );
    } else if ext_any != int_any {
        let loc = if ext_any {
            e.loc_int_port()
        } else {
            e.loc_ext_port()
        };
        diags.error(
            "any-port-mismatch",
            loc,
            format!(
                "\"any\" port on one side only: external_port = \"{}\", internal_port = \"{}\"; both must be \"any\" or neither",
                e.ext_port, e.int_port
            ),
        );
    } else if ext_any && e.proto != Protocol::Any && alibaba {
        diags.error_with(
            "any-port-needs-any-protocol",
            e.loc_proto(),
            format!(
                "port \"any\" needs ip_protocol \"any\" (an IP mapping), not \"{}\"",
                e.proto
            ),
            vec![
                "profile = \"permissive\" accepts a tcp/udp entry with both ports \"any\" when it overlaps no other entry".to_string(),
            ],
        );
    }
    // With an `any` side the rules above already said what is wrong.
    if !ext_any && !int_any && e.ext_port.len() != e.int_port.len() {
        diags.error(
            "range-size-mismatch",
            e.loc_int_port(),
            format!(
                "external_port {} covers {} but internal_port {} covers {}; ranges map port by port and must be the same size",
                e.ext_port,
                ports(e.ext_port.len()),
                e.int_port,
                ports(e.int_port.len())
            ),
        );
    }
}

/// One entry's addresses: the external IP is one of the package's (marked used in
/// `eip_used`), and the internal IP is another address.
fn check_addresses(
    e: &Complete<'_>,
    eip_used: &mut HashMap<Ipv4Addr, bool>,
    diags: &mut Diagnostics<'_>,
) {
    match eip_used.get_mut(&e.ext_ip) {
        Some(used) => *used = true,
        None => diags.error(
            "external-ip-not-in-package",
            e.loc_ext_ip(),
            format!(
                "external_ip {} is not one of the bandwidth package's public_ips",
                e.ext_ip
            ),
        ),
    }
    if e.ext_ip == e.int_ip {
        diags.error(
            "external-equals-internal",
            e.loc_int_ip(),
            format!(
                "internal_ip {} is the same as external_ip; a DNAT entry must map to a server's private IP",
                e.int_ip
            ),
        );
    }
}

/// An IP mapping owns its external IP under the cloud API: no other entry may use it.
/// The same goes for its server (internal IP), whose own traffic leaves from that EIP.
fn check_ip_mappings(entries: &[Complete<'_>], diags: &mut Diagnostics<'_>) {
    let mut ext_ip_map: HashMap<Ipv4Addr, &Complete<'_>> = HashMap::new();
    let mut int_ip_map: HashMap<Ipv4Addr, &Complete<'_>> = HashMap::new();
    for e in entries.iter().filter(|e| e.proto == Protocol::Any) {
        ext_ip_map.entry(e.ext_ip).or_insert(e);
        int_ip_map.entry(e.int_ip).or_insert(e);
    }
    for e in entries.iter().filter(|e| e.proto != Protocol::Any) {
        if let Some(m) = ext_ip_map.get(&e.ext_ip) {
            let other = diags.line_of(&m.d.header);
            diags.error_with(
                "ip-mapping-exclusive",
                e.loc_ext_ip(),
                format!(
                    "external_ip {} has an IP mapping (ip_protocol \"any\") at {other}, so no other entry may use it",
                    e.ext_ip
                ),
                vec!["profile = \"permissive\" allows it; the port mapping then wins".to_string()],
            );
        }
        if let Some(m) = int_ip_map.get(&e.int_ip) {
            let other = diags.line_of(&m.d.header);
            diags.error(
                "ip-mapping-exclusive",
                e.loc_int_ip(),
                format!(
                    "internal_ip {} has an IP mapping (ip_protocol \"any\") at {other}, so no other entry may use it",
                    e.int_ip
                ),
            );
        }
    }
}

/// Ids: explicit ones must be unique; derived ones are unique unless the tuple repeats, which
/// the duplicate check already reports. Returns every entry's id in file order (empty for an
/// incomplete entry without one).
fn check_ids(draft: &Draft, diags: &mut Diagnostics<'_>) -> Vec<String> {
    let mut ids: Vec<String> = Vec::with_capacity(draft.entries.len());
    let mut seen: HashMap<String, (&Loc, bool)> = HashMap::new();
    for d in &draft.entries {
        let (id, loc, explicit) = match (&d.id, complete(d)) {
            (Some(id), _) => (id.v.clone(), &id.loc, true),
            (None, Some(c)) => (
                derive_id(c.ext_ip, c.ext_port, c.proto, c.int_ip, c.int_port),
                &d.header,
                false,
            ),
            (None, None) => (String::new(), &d.header, false),
        };
        if !id.is_empty() {
            if let Some((first, first_explicit)) = seen.get(&id) {
                if explicit || *first_explicit {
                    let other = diags.line_of(first);
                    diags.error(
                        "duplicate-id",
                        loc,
                        format!("forward entry id \"{id}\" is already used at {other}"),
                    );
                }
            } else {
                seen.insert(id.clone(), (loc, explicit));
            }
        }
        ids.push(id);
    }
    ids
}

/// A package EIP no entry uses is a warning (once, however often it is listed).
fn warn_unused_public_ips(
    draft: &Draft,
    eip_used: &mut HashMap<Ipv4Addr, bool>,
    diags: &mut Diagnostics<'_>,
) {
    for ip in &draft.public_ips {
        if eip_used.get(&ip.v) == Some(&false) {
            eip_used.insert(ip.v, true);
            diags.warning(
                "unused-public-ip",
                &ip.loc,
                format!(
                    "{} is in the bandwidth package but has no forward entry (a backup IP?)",
                    ip.v
                ),
            );
        }
    }
}

/// The rules of a draft that passed every check, with the entries' ids from [`check_ids`].
fn assemble(draft: &Draft, ids: Vec<String>) -> Option<Rules> {
    let rate_bps = draft.rate_bps.as_ref()?.v;
    let mut forward_entries = Vec::with_capacity(draft.entries.len());
    for (d, id) in draft.entries.iter().zip(ids) {
        // Every entry is complete here: an incomplete one was reported as an error.
        let c = complete(d)?;
        forward_entries.push(ForwardEntry {
            id,
            external_ip: c.ext_ip,
            external_port: c.ext_port,
            ip_protocol: c.proto,
            internal_ip: c.int_ip,
            internal_port: c.int_port,
            position: d.position,
        });
    }
    Some(Rules {
        gateway: Gateway {
            name: draft.name.clone().unwrap_or_default(),
            profile: draft.profile,
            private_ip: draft.private_ip,
        },
        bandwidth_package: BandwidthPackage {
            rate_bps,
            public_ips: draft.public_ips.iter().map(|l| l.v).collect(),
            burst_bytes: draft.burst_bytes.as_ref().map(|l| l.v),
            mode: draft.mode,
            queue_limit_bytes: draft.queue_limit_bytes.as_ref().map(|l| l.v),
            latency_ms: draft.latency_ms.as_ref().map(|l| l.v),
            inbound: draft.inbound,
            outbound: draft.outbound,
            count: draft.count,
        },
        forward_entries,
    })
}

fn ports(n: u32) -> String {
    if n == 1 {
        "1 port".to_string()
    } else {
        format!("{n} ports")
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    External,
    Internal,
}

fn check_side(entries: &[Complete<'_>], diags: &mut Diagnostics<'_>, side: Side) {
    // (first port, last port, index into entries), grouped by (IP, protocol).
    type Spans = Vec<(u16, u16, usize)>;
    let mut groups: HashMap<(Ipv4Addr, Protocol), Spans> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        let (ip, port) = match side {
            Side::External => (e.ext_ip, e.ext_port),
            Side::Internal => (e.int_ip, e.int_port),
        };
        let (a, b) = port.bounds();
        groups.entry((ip, e.proto)).or_default().push((a, b, i));
    }
    let mut found: Vec<(usize, usize)> = Vec::new();
    for list in groups.values_mut() {
        list.sort_unstable();
        let Some((&first, rest)) = list.split_first() else {
            continue;
        };
        // The interval reaching furthest so far; any later interval starting inside it overlaps it.
        let mut reach = first;
        for &cur in rest {
            if cur.0 <= reach.1 {
                // Report against the entry that comes first in the file.
                let (first, second) = if reach.2 < cur.2 {
                    (reach.2, cur.2)
                } else {
                    (cur.2, reach.2)
                };
                found.push((first, second));
            }
            if cur.1 > reach.1 {
                reach = cur;
            }
        }
    }
    // Deterministic report order regardless of hash map iteration.
    found.sort_unstable_by_key(|&(f, s)| (s, f));
    for (f, s) in found {
        let (Some(first), Some(second)) = (entries.get(f), entries.get(s)) else {
            continue;
        };
        let other = diags.line_of(&first.d.header);
        let (ip, p1, p2, loc, what) = match side {
            Side::External => (
                second.ext_ip,
                first.ext_port,
                second.ext_port,
                second.loc_ext_port(),
                "external",
            ),
            Side::Internal => (
                second.int_ip,
                first.int_port,
                second.int_port,
                second.loc_int_port(),
                "internal",
            ),
        };
        if p1 == p2 {
            let (rule, tuple) = match side {
                Side::External => (
                    "duplicate-external",
                    "(external IP, external port, protocol)",
                ),
                Side::Internal => (
                    "duplicate-internal",
                    "(protocol, internal IP, internal port)",
                ),
            };
            diags.error(
                rule,
                loc,
                format!(
                    "duplicate {tuple}: {ip} port {p2} {} is already mapped by the entry at {other}",
                    second.proto
                ),
            );
        } else {
            let rule = match side {
                Side::External => "overlap-external",
                Side::Internal => "overlap-internal",
            };
            diags.error(
                rule,
                loc,
                format!(
                    "{what} port {p2} on {ip} {} overlaps port {p1} of the entry at {other}",
                    second.proto
                ),
            );
        }
    }
}
