//! `dnatsim explain`: the teaching view of one packet.
//!
//! The question is answered by building the packet and running it through the same
//! translator a replay uses, so the explanation cannot drift from what replay does.

use super::RulesArg;
use anyhow::{Context, bail};
use dnatsim::nat::{
    Config, DropReason, ForeignPolicy, ForwardTable, MatchKind, Notes, PacketMeta, Translator,
    Verdict,
};
use dnatsim::report::trace;
use dnatsim::rules::{ForwardEntry, Protocol, Rules};
use dnatsim::wire::build::{self, Ip, Tcp};
use dnatsim::wire::ipv4::{MIN_HEADER_LEN, PROTO_ICMP, PROTO_TCP, PROTO_UDP};
use dnatsim::wire::link::LINKTYPE_RAW;
use dnatsim::wire::{Ipv4Header, TcpHeader, UdpHeader};
use std::fmt::Write as _;
use std::io::Write;
use std::net::Ipv4Addr;

/// Explain what the gateway does to one packet: which entry matches (by exact port or by the
/// IP's `any` fallback), the tuple before and after, every field that changes, or why no
/// entry applies.
///
/// PROTO is tcp, udp, icmp (an echo request) or an IP protocol number or name (gre, esp).
/// For a reply, give the server as `--from` and the client as the destination.
#[derive(Debug, clap::Args)]
#[command(after_long_help = "Examples:\n  \
    dnatsim explain -r pcaps/seed/rules.toml tcp 203.0.113.79:443\n  \
    dnatsim explain -r pcaps/seed/rules.toml tcp 203.0.113.59:80\n  \
    dnatsim explain -r pcaps/seed/rules.toml icmp 203.0.113.107\n  \
    dnatsim explain -r pcaps/seed/rules.toml tcp 198.51.100.7:51000 --from 192.168.1.4:443")]
pub struct Args {
    #[command(flatten)]
    rules: RulesArg,
    /// tcp, udp, icmp, gre, esp or a protocol number.
    #[arg(value_name = "PROTO")]
    proto: String,
    /// The destination, IP:PORT (or IP for protocols without ports).
    #[arg(value_name = "DST_IP:PORT")]
    dst: String,
    /// The source, IP:PORT (or IP for protocols without ports); a documentation-range client,
    /// 198.51.100.7:51000, by default.
    #[arg(long, value_name = "SRC_IP:PORT")]
    from: Option<String>,
    /// Traffic that concerns no EIP and no mapped server, as replay's --foreign.
    #[arg(long, value_enum, default_value = "pass")]
    foreign: Foreign,
    /// The old spelling of `--foreign drop`, kept so that existing scripts still run.
    #[arg(long, hide = true, conflicts_with = "foreign")]
    foreign_drop: bool,
    /// No warnings about the rules file.
    #[arg(long, short = 'q')]
    quiet: bool,
}

/// What to do with traffic that concerns no EIP and no mapped server (replay's values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Foreign {
    /// Pass it unchanged.
    Pass,
    /// Drop it (counted as `foreign`).
    Drop,
}

/// The client used when `--from` is not given.
const DEFAULT_FROM: (Ipv4Addr, u16) = (Ipv4Addr::new(198, 51, 100, 7), 51000);

fn parse_proto(s: &str) -> anyhow::Result<u8> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => PROTO_TCP,
        "udp" => PROTO_UDP,
        "icmp" => PROTO_ICMP,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        "sctp" => 132,
        other => other.parse::<u8>().with_context(|| {
            format!("unknown protocol `{s}` (tcp, udp, icmp, gre, esp or a number)")
        })?,
    })
}

fn parse_endpoint(s: &str, needs_port: bool, what: &str) -> anyhow::Result<(Ipv4Addr, u16)> {
    let (ip, port) = match s.rsplit_once(':') {
        Some((ip, port)) => {
            let port: u16 = port
                .parse()
                .ok()
                .filter(|p| *p > 0)
                .with_context(|| format!("{what} `{s}`: the port must be 1-65535"))?;
            (ip, Some(port))
        }
        None => (s, None),
    };
    let ip: Ipv4Addr = ip
        .parse()
        .with_context(|| format!("{what} `{s}`: not an IPv4 address"))?;
    match (needs_port, port) {
        (true, None) => bail!("{what} `{s}`: tcp and udp need IP:PORT"),
        (_, port) => Ok((ip, port.unwrap_or(0))),
    }
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    super::require_stdout("the explanation")?;
    // The command line is checked before the rules are read: a wrong one is a usage error.
    let proto = match parse_proto(&args.proto) {
        Ok(p) => p,
        Err(e) => return Ok(usage_error(&e.to_string())),
    };
    let ported = proto == PROTO_TCP || proto == PROTO_UDP;
    if !ported {
        let name = trace::proto_name(proto);
        for (what, given) in [
            ("the destination", Some(&args.dst)),
            ("--from", args.from.as_ref()),
        ] {
            if let Some(given) = given
                && let Some((ip, _)) = given.rsplit_once(':')
            {
                return Ok(usage_error(&format!(
                    "{name} has no ports, but {what} `{given}` has one: only tcp and udp \
                     entries match ports; give {what} as {ip}"
                )));
            }
        }
    }
    let (dst, dport) = match parse_endpoint(&args.dst, ported, "destination") {
        Ok(e) => e,
        Err(e) => return Ok(usage_error(&e.to_string())),
    };
    let (src, sport) = match &args.from {
        Some(from) => match parse_endpoint(from, ported, "--from") {
            Ok(e) => e,
            Err(e) => return Ok(usage_error(&e.to_string())),
        },
        None if ported => DEFAULT_FROM,
        None => (DEFAULT_FROM.0, 0),
    };
    let (rules, _) = super::load_rules(&args.rules.rules, args.quiet)?;
    if args.foreign_drop && !args.quiet {
        super::warning("--foreign-drop is deprecated; use --foreign drop");
    }
    let foreign_drop = args.foreign_drop || args.foreign == Foreign::Drop;
    let text = explain(&rules, proto, src, sport, dst, dport, foreign_drop);
    std::io::stdout().lock().write_all(text.as_bytes())?;
    Ok(0)
}

/// Prints a command-line error as clap does (message, usage, hint) and returns exit code 2.
fn usage_error(message: &str) -> i32 {
    let mut cli = <super::Cli as clap::CommandFactory>::command();
    // Building first gives the subcommand its full name ("dnatsim explain") in the usage line.
    cli.build();
    let error = match cli.find_subcommand_mut("explain") {
        Some(explain) => explain.error(clap::error::ErrorKind::ValueValidation, message),
        None => cli.error(clap::error::ErrorKind::ValueValidation, message),
    };
    // Printing can only fail on a closed stderr; the exit code still says what happened.
    let _ = error.print();
    2
}

/// The whole explanation as text.
pub fn explain(
    rules: &Rules,
    proto: u8,
    src: Ipv4Addr,
    sport: u16,
    dst: Ipv4Addr,
    dport: u16,
    foreign_drop: bool,
) -> String {
    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let ip = Ip {
        src: u32::from(src),
        dst: u32::from(dst),
        proto,
        ttl: 64,
        id: 1,
        frag: 0x4000,
    };
    let mut packet = Vec::new();
    match proto {
        PROTO_TCP => {
            let tcp = Tcp {
                sport,
                dport,
                seq: 1,
                ack: 0,
                flags: 0x18,
                mss: None,
            };
            build::put_tcp(&mut packet, &ip, &tcp, b"", 0)
        }
        PROTO_UDP => build::put_udp(&mut packet, &ip, sport, dport, b"", 0, false),
        // An echo request, identifier 0x4242, sequence 1.
        PROTO_ICMP => build::put_icmp(&mut packet, &ip, 8, 0, [0x42, 0x42, 0, 1], b"", 0),
        _ => build::put_ipv4(&mut packet, &ip, &[&[0; 8]]),
    };
    let before = packet.clone();
    let foreign = if foreign_drop {
        ForeignPolicy::Drop
    } else {
        ForeignPolicy::Pass
    };
    let mut t = Translator::new(
        &table,
        Config {
            foreign,
            ..Config::default()
        },
    );
    let meta = PacketMeta {
        record: 1,
        ts_ns: 0,
        interface: 0,
        orig_len: packet.len() as u32,
        link_type: LINKTYPE_RAW,
    };
    let out = t.process(&mut packet, &meta);

    let mut s = String::new();
    let name = trace::proto_name(proto);
    let _ = writeln!(s, "{name} {}", trace::tuple(&out.before));
    let entry = |i: u32| &rules.forward_entries[i as usize];
    match out.verdict {
        Verdict::Inbound { entry: i, kind } => {
            let e = entry(i);
            let kind = kind_of(kind, e);
            let _ = writeln!(s, "  inbound: {dst} is an EIP of the bandwidth package");
            let _ = writeln!(s, "  matched {} {}", e.id, how(kind, e, rules));
            let _ = writeln!(s, "  => {name} {}", trace::tuple(&out.after));
        }
        Verdict::Outbound { entry: i, kind } => {
            let e = entry(i);
            let kind = kind_of(kind, e);
            let side = if kind == MatchKind::IpAny {
                format!(
                    "{src} is the server of IP mapping {} ({})",
                    e.id, e.external_ip
                )
            } else {
                format!(
                    "{} is the private side of {} ({})",
                    trace::endpoint(proto, u32::from(src), sport),
                    e.id,
                    kind.describe()
                )
            };
            let _ = writeln!(s, "  outbound: {side}");
            let _ = writeln!(
                s,
                "  source rewritten back to its public address: {}",
                trace::endpoint(proto, out.after.src, out.after.sport)
            );
            let _ = writeln!(s, "  => {name} {}", trace::tuple(&out.after));
        }
        Verdict::Drop(reason) => {
            let _ = writeln!(
                s,
                "  dropped ({}): {}",
                reason.as_str(),
                why_dropped(rules, proto, (src, sport), dst, dport, reason, out.notes)
            );
        }
        Verdict::PassForeign => {
            let why = match server_elsewhere(rules, proto, src, sport) {
                Some(server) => format!("{dst} is not an EIP, and {server}"),
                None => format!(
                    "neither {dst} is an EIP nor {} a mapped server",
                    trace::endpoint(proto, u32::from(src), sport)
                ),
            };
            let _ = writeln!(
                s,
                "  foreign: {why}; passes unchanged (--foreign drop would drop it)"
            );
        }
        Verdict::PassNotIpv4 | Verdict::Held => {}
    }
    let changes = changes(&before, &packet, proto);
    if !changes.is_empty() {
        let _ = writeln!(s, "  changed: {}", changes.join("; "));
    }
    s
}

/// The table indexes small port ranges port by port and reports a match inside one as an
/// exact port; the entry itself says whether it is a range.
fn kind_of(kind: MatchKind, e: &ForwardEntry) -> MatchKind {
    match (kind, e.external_port) {
        (MatchKind::Port, dnatsim::rules::PortSpec::Range(..)) => MatchKind::Range,
        _ => kind,
    }
}

/// When the source is the server of some entry, but not for this protocol and port (a server
/// mapped for tcp/443 asked about udp), says which entries it does have, so that a packet
/// passed as foreign is not mistaken for one from an unknown host.
fn server_elsewhere(rules: &Rules, proto: u8, src: Ipv4Addr, sport: u16) -> Option<String> {
    let have: Vec<String> = rules
        .forward_entries
        .iter()
        .filter(|e| e.internal_ip == src)
        .map(|e| format!("{}/{} ({})", e.ip_protocol, e.internal_port, e.id))
        .collect();
    if have.is_empty() {
        return None;
    }
    let asked = if proto == PROTO_TCP || proto == PROTO_UDP {
        format!("{}/{sport}", trace::proto_name(proto))
    } else {
        trace::proto_name(proto)
    };
    Some(format!(
        "{src} is a mapped server for {} only, not {asked}",
        join_and(&have)
    ))
}

/// How an entry matched, in words.
fn how(kind: MatchKind, e: &ForwardEntry, rules: &Rules) -> String {
    use super::table::{port_cell, proto_cell};
    let mapping = format!(
        "{} port {} -> {} port {}, protocol {}",
        e.external_ip,
        port_cell(e.external_port),
        e.internal_ip,
        port_cell(e.internal_port),
        proto_cell(e.ip_protocol),
    );
    match kind {
        MatchKind::Port => format!("by exact port (port mapping): {mapping}"),
        MatchKind::Range => format!("by port range, offset by offset: {mapping}"),
        MatchKind::IpAny => {
            let others: Vec<String> = rules
                .forward_entries
                .iter()
                .filter(|o| {
                    o.external_ip == e.external_ip
                        && o.external_port != dnatsim::rules::PortSpec::Any
                })
                .map(|o| format!("{}/{}", o.ip_protocol, o.external_port))
                .collect();
            if others.is_empty() {
                format!(
                    "as an IP mapping (every protocol and port of {}): {mapping}",
                    e.external_ip
                )
            } else {
                format!(
                    "by the IP's `any` entry as a fallback ({} also has {}, which did not match): {mapping}",
                    e.external_ip,
                    others.join(", ")
                )
            }
        }
    }
}

/// Why a packet is dropped, naming what the address does have.
fn why_dropped(
    rules: &Rules,
    proto: u8,
    (src, sport): (Ipv4Addr, u16),
    dst: Ipv4Addr,
    dport: u16,
    reason: DropReason,
    notes: Notes,
) -> String {
    if reason != DropReason::NoRule {
        return match (reason, notes.malformed) {
            (DropReason::Foreign, _) => match server_elsewhere(rules, proto, src, sport) {
                Some(server) => format!("{dst} is not an EIP, and {server}"),
                None => format!("neither {dst} is an EIP nor {src} a mapped server"),
            },
            (DropReason::Malformed, Some(defect)) => defect.to_string(),
            _ => reason.as_str().replace('_', " "),
        };
    }
    let have: Vec<String> = rules
        .forward_entries
        .iter()
        .filter(|e| e.external_ip == dst)
        .map(|e| match e.ip_protocol {
            Protocol::Any => "an IP mapping".to_string(),
            p => format!("{p}/{}", e.external_port),
        })
        .collect();
    let asked = if proto == PROTO_TCP || proto == PROTO_UDP {
        format!("{}/{dport}", trace::proto_name(proto))
    } else {
        trace::proto_name(proto)
    };
    if have.is_empty() {
        format!("{dst} is in the bandwidth package but has no forward entry")
    } else {
        format!("{dst} has entries for {}, not {asked}", join_and(&have))
    }
}

fn join_and(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The header fields that differ between two raw IPv4 packets (as `explain` builds them: a
/// plain 20-byte header, then the transport header), with old and new values.
fn changes(before: &[u8], after: &[u8], proto: u8) -> Vec<String> {
    let mut v = Vec::new();
    if before == after {
        return v;
    }
    let (Some((b, b_l4)), Some((a, a_l4))) = (
        before.split_first_chunk::<MIN_HEADER_LEN>(),
        after.split_first_chunk::<MIN_HEADER_LEN>(),
    ) else {
        return v;
    };
    let (old, new) = (Ipv4Header::new(b), Ipv4Header::new(a));
    if old.src() != new.src() {
        v.push(format!(
            "source address {} -> {}",
            Ipv4Addr::from(old.src()),
            Ipv4Addr::from(new.src())
        ));
    }
    if old.dst() != new.dst() {
        v.push(format!(
            "destination address {} -> {}",
            Ipv4Addr::from(old.dst()),
            Ipv4Addr::from(new.dst())
        ));
    }
    if old.ttl() != new.ttl() {
        v.push(format!("TTL {} -> {}", old.ttl(), new.ttl()));
    }
    v.push(format!(
        "IPv4 checksum {:#06x} -> {:#06x}",
        old.checksum(),
        new.checksum()
    ));
    // The transport header's name, ports and checksum.
    let ports = |l4: &[u8]| match proto {
        PROTO_TCP => l4.first_chunk::<20>().map(|t| {
            let t = TcpHeader::new(t);
            ("TCP", t.src_port(), t.dst_port(), t.checksum())
        }),
        PROTO_UDP => l4.first_chunk::<8>().map(|u| {
            let u = UdpHeader::new(u);
            ("UDP", u.src_port(), u.dst_port(), u.checksum())
        }),
        _ => None,
    };
    if let (Some((name, sport, dport, sum)), Some((_, sport2, dport2, sum2))) =
        (ports(b_l4), ports(a_l4))
    {
        if sport != sport2 {
            v.push(format!("source port {sport} -> {sport2}"));
        }
        if dport != dport2 {
            v.push(format!("destination port {dport} -> {dport2}"));
        }
        v.push(format!(
            "{name} checksum {sum:#06x} -> {sum2:#06x} (incremental, RFC 1624)"
        ));
    }
    v
}
