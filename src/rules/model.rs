//! The validated rules model: what the rest of the crate consumes.
//!
//! Values here have passed parsing and validation; the parser in this module's
//! siblings is the only place that builds them from untrusted text.

use std::net::Ipv4Addr;

/// A transport protocol selector of a forward entry (`IpProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP (IP protocol 6).
    Tcp,
    /// UDP (IP protocol 17).
    Udp,
    /// Any IP protocol: an IP mapping.
    Any,
}

/// A port selector (`ExternalPort` / `InternalPort`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortSpec {
    /// Every port (an IP mapping).
    Any,
    /// One port, 1-65535.
    Single(u16),
    /// An inclusive range `first/last`, first <= last.
    Range(u16, u16),
}

/// Which set of checks the rules file must pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Profile {
    /// Reject exactly what the cloud API rejects (the default).
    #[default]
    Alibaba,
    /// Allow IP and port mappings on one IP (the port mapping wins) and more than 100 entries.
    Permissive,
}

/// `[gateway]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    /// The gateway's name, e.g. "MyNatGW".
    pub name: String,
    /// The validation profile.
    pub profile: Profile,
    /// The gateway's address among the servers (their default route), used by live mode
    /// when `--inside-ip` is not given.
    pub private_ip: Option<Ipv4Addr>,
}

/// What the bandwidth package does with traffic above its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LimitMode {
    /// Drop what exceeds the rate (a policer).
    #[default]
    Police,
    /// Queue and delay what exceeds the rate, tail-dropping past the queue limits.
    Shape,
}

/// Which bytes of a packet count against the bandwidth package.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CountMode {
    /// The IPv4 total length.
    #[default]
    L3,
    /// The frame length plus 24 bytes of Ethernet overhead (preamble, FCS, gap).
    L2,
}

/// `[bandwidth_package]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BandwidthPackage {
    /// The shared rate in bits per second (from `bandwidth_mbps`).
    pub rate_bps: u64,
    /// The EIPs that share the package.
    pub public_ips: Vec<Ipv4Addr>,
    /// The bucket depth in bytes; `None` means the documented default.
    pub burst_bytes: Option<u64>,
    /// Police or shape.
    pub mode: LimitMode,
    /// Shape mode: the queue limit in bytes; `None` means the default.
    pub queue_limit_bytes: Option<u64>,
    /// Shape mode: the longest a packet may wait, in milliseconds; `None` means the default.
    pub latency_ms: Option<u64>,
    /// Limit traffic toward the servers.
    pub inbound: bool,
    /// Limit traffic from the servers.
    pub outbound: bool,
    /// Which length counts.
    pub count: CountMode,
}

/// Where a value came from in the rules file (1-based line and column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    /// 1-based line.
    pub line: u32,
    /// 1-based column (in characters).
    pub column: u32,
}

/// One DNAT entry (`[[forward_entry]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardEntry {
    /// The entry id, e.g. "fwd-119smw5tk" (derived deterministically when absent).
    pub id: String,
    /// The public IP (an EIP of the package).
    pub external_ip: Ipv4Addr,
    /// The public port selector.
    pub external_port: PortSpec,
    /// The protocol selector.
    pub ip_protocol: Protocol,
    /// The server's private IP.
    pub internal_ip: Ipv4Addr,
    /// The server's port selector.
    pub internal_port: PortSpec,
    /// Where the entry's table header stands in the rules file (default for entries not read from a file).
    pub position: Position,
}

/// A whole validated rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rules {
    /// `[gateway]`.
    pub gateway: Gateway,
    /// `[bandwidth_package]`.
    pub bandwidth_package: BandwidthPackage,
    /// `[[forward_entry]]`, in file order.
    pub forward_entries: Vec<ForwardEntry>,
}

impl Protocol {
    /// The lower-case API spelling: "tcp", "udp" or "any".
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Any => "any",
        }
    }
}

impl std::fmt::Display for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PortSpec {
    /// The inclusive port bounds this selector covers (`any` covers 1-65535).
    pub fn bounds(self) -> (u16, u16) {
        match self {
            PortSpec::Any => (1, u16::MAX),
            PortSpec::Single(p) => (p, p),
            PortSpec::Range(a, b) => (a, b),
        }
    }

    /// How many ports the selector covers.
    pub fn len(self) -> u32 {
        let (a, b) = self.bounds();
        u32::from(b).saturating_sub(u32::from(a)) + 1
    }

    /// Always false: a selector covers at least one port (present for clippy's `len_without_is_empty`).
    pub fn is_empty(self) -> bool {
        false
    }
}

impl std::fmt::Display for PortSpec {
    /// The API spelling: "any", "80" or "8000/8010".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PortSpec::Any => f.write_str("any"),
            PortSpec::Single(p) => write!(f, "{p}"),
            PortSpec::Range(a, b) => write!(f, "{a}/{b}"),
        }
    }
}

impl Profile {
    /// The rules-file spelling: "alibaba" or "permissive".
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Alibaba => "alibaba",
            Profile::Permissive => "permissive",
        }
    }
}

impl ForwardEntry {
    /// True for an IP mapping (protocol `any`, both ports `any`): a 1:1 NAT of the whole address.
    pub fn is_ip_mapping(&self) -> bool {
        self.ip_protocol == Protocol::Any
    }

    /// The internal port that external port `port` maps to, or `None` if the entry does not cover `port`.
    ///
    /// Ranges map offset by offset; an `any` port maps to itself.
    pub fn map_port(&self, port: u16) -> Option<u16> {
        let (ea, eb) = self.external_port.bounds();
        if port < ea || port > eb {
            return None;
        }
        match self.internal_port {
            PortSpec::Any => Some(port),
            PortSpec::Single(p) => Some(p),
            PortSpec::Range(ia, _) => ia.checked_add(port - ea),
        }
    }
}

impl Rules {
    /// The entries in the tutorial's table order: by the external IP's place in the bandwidth
    /// package, IP mappings first, then by port and protocol; ties keep file order. Each comes
    /// with its index in `forward_entries`, which is its index in the table and the counters.
    pub fn table_order(&self) -> Vec<(usize, &ForwardEntry)> {
        let ips = &self.bandwidth_package.public_ips;
        let mut v: Vec<(usize, &ForwardEntry)> = self.forward_entries.iter().enumerate().collect();
        v.sort_by_key(|&(_, e)| {
            let place = ips
                .iter()
                .position(|&ip| ip == e.external_ip)
                .unwrap_or(usize::MAX);
            let ported = e.external_port != PortSpec::Any;
            (
                place,
                e.external_ip,
                ported,
                e.external_port.bounds(),
                e.ip_protocol,
            )
        });
        v
    }
}
