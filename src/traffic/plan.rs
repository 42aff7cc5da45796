//! What to send where, derived once from the rules: matched targets, unmatched probes, hosts.
//!
//! Every generated destination is checked against the crate's own [`ForwardTable`], so a
//! "matched" packet really matches (the right entry, after precedence) and an "unmatched" one
//! really misses, for any valid rules: port ranges, `any` ports, permissive overlaps.

use std::net::Ipv4Addr;

use super::build::{PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use super::rng::Rng;
use crate::nat::{ForwardTable, Inbound};
use crate::rules::{PortSpec, Protocol, Rules};

/// Ports tried on an IP mapping or an `any`-port entry, most common services first.
const TCP_SERVICES: &[u16] = &[443, 80, 22, 8080, 3389, 25, 993];
const UDP_SERVICES: &[u16] = &[53, 123, 500, 4500, 1194, 51820];
/// Ports probed for "no rule" TCP traffic (scanners and misconfigured clients).
const PROBE_TCP: &[u16] = &[80, 443, 22, 23, 8080, 3389, 25, 21, 8443, 2222];
/// Ports probed for "no rule" UDP traffic when no TCP entry suggests one.
const PROBE_UDP: &[u16] = &[53, 123, 161, 1900, 5060];
/// Most client addresses used; enough for flow-table pressure, small enough for an id table.
pub(crate) const MAX_CLIENTS: u64 = 4096;
/// Foreign (neither EIP nor server) hosts, from TEST-NET-1 (RFC 5737).
const FOREIGN_NET: u32 = 0xC000_0200;
const FOREIGN_HOSTS: usize = 8;

/// The external ports a target may be sent to.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ports {
    /// Any port of an inclusive range.
    Range(u16, u16),
    /// One of a list of service ports (IP mappings and `any`-port entries).
    Services(&'static [u16]),
}

/// A matched destination: an EIP, a protocol and the ports of one entry.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target {
    pub eip: u32,
    pub proto: u8,
    pub ports: Ports,
}

/// A target resolved through the forward table for one flow.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Resolved {
    pub eip: u32,
    pub ext_port: u16,
    pub int_ip: u32,
    pub int_port: u16,
    /// The server's host index (for its IPv4 id counter).
    pub server: usize,
}

/// Traffic that reaches an EIP and matches no entry.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Probe {
    Tcp { eip: u32, port: u16 },
    Udp { eip: u32, port: u16 },
    Echo { eip: u32 },
}

/// An IP-mapped server and its EIP (1:1 NAT: it can open connections of its own).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mapped {
    pub eip: u32,
    pub server_ip: u32,
    pub server: usize,
}

/// Everything derived from the rules and the client network.
#[derive(Debug)]
pub(crate) struct Plan {
    pub table: ForwardTable,
    pub eips: Vec<u32>,
    pub tcp: Vec<Target>,
    pub udp: Vec<Target>,
    pub mapped: Vec<Mapped>,
    pub probes: Vec<Probe>,
    /// Host addresses; the index is the host's id-counter slot.
    pub hosts: Vec<u32>,
    pub clients: usize,
    /// Sorted internal addresses; server `i` is host `clients + i`.
    servers: Vec<u32>,
    pub router: usize,
    pub dns: usize,
    pub foreign: [usize; FOREIGN_HOSTS],
}

/// Why a plan could not be made (mapped to `GenError` by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlanError {
    NoEips,
    Overlap(u32),
}

fn ports_of(spec: PortSpec, services: &'static [u16]) -> Ports {
    match spec {
        PortSpec::Any => Ports::Services(services),
        PortSpec::Single(p) => Ports::Range(p, p),
        PortSpec::Range(a, b) => Ports::Range(a, b),
    }
}

fn in_net(ip: u32, net: u32, mask: u32) -> bool {
    ip & mask == net
}

impl Plan {
    /// Derives targets and hosts; `net`/`prefix` is the client network (prefix <= 26, checked).
    pub(crate) fn new(rules: &Rules, net: u32, prefix: u8) -> Result<Plan, PlanError> {
        let pkg = &rules.bandwidth_package;
        if pkg.public_ips.is_empty() {
            return Err(PlanError::NoEips);
        }
        let table = ForwardTable::new(&rules.forward_entries, &pkg.public_ips);
        let mut eips: Vec<u32> = pkg.public_ips.iter().map(|&a| u32::from(a)).collect();
        eips.dedup();
        let mask = if prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix.min(32)))
        };
        let net = net & mask;

        let mut servers: Vec<u32> = rules
            .forward_entries
            .iter()
            .map(|e| u32::from(e.internal_ip))
            .collect();
        servers.sort_unstable();
        servers.dedup();
        for &ip in eips.iter().chain(&servers) {
            if in_net(ip, net, mask) {
                return Err(PlanError::Overlap(ip));
            }
        }

        let mut tcp = Vec::new();
        let mut udp = Vec::new();
        for e in &rules.forward_entries {
            let eip = u32::from(e.external_ip);
            match e.ip_protocol {
                Protocol::Tcp => tcp.push(Target {
                    eip,
                    proto: PROTO_TCP,
                    ports: ports_of(e.external_port, TCP_SERVICES),
                }),
                Protocol::Udp => udp.push(Target {
                    eip,
                    proto: PROTO_UDP,
                    ports: ports_of(e.external_port, UDP_SERVICES),
                }),
                Protocol::Any => {
                    tcp.push(Target {
                        eip,
                        proto: PROTO_TCP,
                        ports: Ports::Services(TCP_SERVICES),
                    });
                    udp.push(Target {
                        eip,
                        proto: PROTO_UDP,
                        ports: Ports::Services(UDP_SERVICES),
                    });
                }
            }
        }

        // Clients: consecutive hosts of the client network, skipping the router (.1) and DNS (.53).
        let size: u64 = 1u64 << (32 - u32::from(prefix.min(32)));
        let mut hosts: Vec<u32> = (2..size.saturating_sub(1))
            .filter(|&off| off != 53)
            .take(MAX_CLIENTS as usize)
            .map(|off| net.wrapping_add(off as u32))
            .collect();
        let clients = hosts.len();
        hosts.extend_from_slice(&servers);
        let router = hosts.len();
        hosts.push(net.wrapping_add(1));
        let dns = hosts.len();
        hosts.push(net.wrapping_add(53));
        let mut foreign = [0usize; FOREIGN_HOSTS];
        let mut off = 10u32;
        for slot in &mut foreign {
            // Skip any TEST-NET-1 address the rules or the client network happen to use.
            while eips.contains(&(FOREIGN_NET + off))
                || servers.binary_search(&(FOREIGN_NET + off)).is_ok()
                || in_net(FOREIGN_NET + off, net, mask)
            {
                off += 1;
            }
            *slot = hosts.len();
            hosts.push(FOREIGN_NET + off);
            off += 1;
        }

        let mut plan = Plan {
            table,
            eips,
            tcp,
            udp,
            mapped: Vec::new(),
            probes: Vec::new(),
            hosts,
            clients,
            servers,
            router,
            dns,
            foreign,
        };
        plan.mapped = plan.find_mapped(rules);
        plan.probes = plan.find_probes();
        Ok(plan)
    }

    fn find_mapped(&self, rules: &Rules) -> Vec<Mapped> {
        rules
            .forward_entries
            .iter()
            .filter(|e| e.is_ip_mapping())
            .map(|e| {
                let server_ip = u32::from(e.internal_ip);
                Mapped {
                    eip: u32::from(e.external_ip),
                    server_ip,
                    server: self.server_host(server_ip),
                }
            })
            .collect()
    }

    fn misses(&self, eip: u32, proto: u8, port: u16) -> bool {
        self.table.lookup(eip, proto, port) == Inbound::NoRule
    }

    fn find_probes(&self) -> Vec<Probe> {
        let mut probes = Vec::new();
        for &eip in &self.eips {
            if self.misses(eip, PROTO_ICMP, 0) {
                probes.push(Probe::Echo { eip });
            }
            if let Some(&port) = PROBE_TCP.iter().find(|&&p| self.misses(eip, PROTO_TCP, p)) {
                probes.push(Probe::Tcp { eip, port });
            }
            // The classic mistake: the right port with the wrong protocol.
            let tcp_ports =
                self.tcp
                    .iter()
                    .filter(|t| t.eip == eip)
                    .filter_map(|t| match t.ports {
                        Ports::Range(a, _) => Some(a),
                        Ports::Services(_) => None,
                    });
            let udp_port = tcp_ports
                .chain(PROBE_UDP.iter().copied())
                .find(|&p| self.misses(eip, PROTO_UDP, p));
            if let Some(port) = udp_port {
                probes.push(Probe::Udp { eip, port });
            }
        }
        probes
    }

    /// The host index of a server address (the router's slot if it is somehow unknown).
    pub(crate) fn server_host(&self, ip: u32) -> usize {
        match self.servers.binary_search(&ip) {
            Ok(i) => self.clients + i,
            Err(_) => self.router,
        }
    }

    /// The address of host `h` (0.0.0.0 for an unknown index, which callers never pass).
    #[inline]
    pub(crate) fn ip(&self, h: usize) -> u32 {
        self.hosts.get(h).copied().unwrap_or(0)
    }

    /// A random client host index.
    #[inline]
    pub(crate) fn client(&self, rng: &mut Rng) -> usize {
        rng.index(self.clients)
    }

    /// Picks an external port of `t` and resolves it; `None` if the table disagrees 4 times.
    pub(crate) fn resolve(&self, t: &Target, rng: &mut Rng) -> Option<Resolved> {
        for _ in 0..4 {
            let port = match t.ports {
                Ports::Range(a, b) => rng.range_u16(a, b),
                Ports::Services(list) => list.get(rng.index(list.len())).copied().unwrap_or(80),
            };
            if let Inbound::Hit(m) = self.table.lookup(t.eip, t.proto, port) {
                return Some(Resolved {
                    eip: t.eip,
                    ext_port: port,
                    int_ip: m.ip,
                    int_port: m.port,
                    server: self.server_host(m.ip),
                });
            }
        }
        None
    }

    /// The EIP of `m` mapped back for a UDP source port: true when replies to it reach the server.
    pub(crate) fn returns_to(&self, m: &Mapped, proto: u8, port: u16) -> bool {
        matches!(self.table.lookup(m.eip, proto, port), Inbound::Hit(h) if h.ip == m.server_ip && h.port == port)
    }
}

/// The dotted form of a host-order address, for error messages.
pub(crate) fn addr(ip: u32) -> Ipv4Addr {
    Ipv4Addr::from(ip)
}
