//! Forward-table lookups: exact hit, `any` fallback hit, both misses (a destination that is no
//! EIP, and an EIP with no entry for that port) and reverse, on tables of 5 (the tutorial), 100
//! (the cloud's cap) and 100,000 entries (permissive profile). `ahash_exact_hit` looks the same
//! exact keys up in an aHash map of the same entries, the map the forward table's own
//! (`nat/fixmap.rs`) replaced, for the README's comparison.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dnatsim::nat::ForwardTable;
use dnatsim::rules::{ForwardEntry, PortSpec, Position, Protocol};
use std::hint::black_box;
use std::net::Ipv4Addr;

const EIP: u32 = 0xcb00_7100; // 203.0.113.0
const FALLBACK_EIP: u32 = 0xcb00_71fe; // 203.0.113.254 has an `any` entry and port entries
const SERVER: u32 = 0xc0a8_0000; // 192.168.0.0

fn entry(ext_ip: u32, ext: PortSpec, proto: Protocol, int_ip: u32, int: PortSpec) -> ForwardEntry {
    ForwardEntry {
        id: String::new(),
        external_ip: Ipv4Addr::from(ext_ip),
        external_port: ext,
        ip_protocol: proto,
        internal_ip: Ipv4Addr::from(int_ip),
        internal_port: int,
        position: Position::default(),
    }
}

/// `n` entries: one IP mapping plus a port mapping on the fallback EIP, the rest tcp port
/// mappings spread over 200 EIPs, each to its own server endpoint.
fn table(n: usize) -> ForwardTable {
    let mut entries = vec![
        entry(
            FALLBACK_EIP,
            PortSpec::Any,
            Protocol::Any,
            SERVER + 0xffff,
            PortSpec::Any,
        ),
        entry(
            FALLBACK_EIP,
            PortSpec::Single(80),
            Protocol::Tcp,
            SERVER + 0xfffe,
            PortSpec::Single(80),
        ),
    ];
    for i in 0..n.saturating_sub(2) {
        let ip = EIP + (i % 200) as u32;
        let port = 1 + (i / 200) as u16;
        let server = SERVER + (i % 60_000) as u32;
        let sport = 1 + (i / 60_000) as u16;
        entries.push(entry(
            ip,
            PortSpec::Single(port),
            Protocol::Tcp,
            server,
            PortSpec::Single(sport),
        ));
    }
    ForwardTable::new(&entries, &[])
}

/// The packed (EIP, protocol, port) key the aHash map is keyed by.
fn key(ip: u32, proto: u8, port: u16) -> u64 {
    (u64::from(ip) << 24) | (u64::from(proto) << 16) | u64::from(port)
}

/// The exact (port-mapping) entries of `table(n)` in an aHash map: key to server endpoint.
fn ahash_map(n: usize) -> ahash::AHashMap<u64, (u32, u16)> {
    (0..n.saturating_sub(2))
        .map(|i| {
            let (ip, port) = (EIP + (i % 200) as u32, 1 + (i / 200) as u16);
            let server = (SERVER + (i % 60_000) as u32, 1 + (i / 60_000) as u16);
            (key(ip, 6, port), server)
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("lookup");
    g.throughput(Throughput::Elements(1));
    for n in [5usize, 100, 100_000] {
        let t = table(n);
        // The last entry's key: in a large table it is spread like any other.
        let last = n.saturating_sub(3);
        let (hit_ip, hit_port) = (EIP + (last % 200) as u32, 1 + (last / 200) as u16);
        let (srv, srv_port) = (SERVER + (last % 60_000) as u32, 1 + (last / 60_000) as u16);
        g.bench_with_input(BenchmarkId::new("exact_hit", n), &t, |b, t| {
            b.iter(|| t.lookup(black_box(hit_ip), black_box(6), black_box(hit_port)))
        });
        g.bench_with_input(BenchmarkId::new("fallback_hit", n), &t, |b, t| {
            b.iter(|| t.lookup(black_box(FALLBACK_EIP), black_box(17), black_box(53)))
        });
        // A destination that is no EIP of the table.
        g.bench_with_input(BenchmarkId::new("miss_not_an_eip", n), &t, |b, t| {
            b.iter(|| t.lookup(black_box(EIP + 250), black_box(6), black_box(9)))
        });
        // An EIP with entries, but none for this protocol and port (like IP4 tcp/80).
        g.bench_with_input(BenchmarkId::new("miss_no_entry_on_eip", n), &t, |b, t| {
            b.iter(|| t.lookup(black_box(hit_ip), black_box(6), black_box(65_000)))
        });
        let map = ahash_map(n);
        g.bench_with_input(BenchmarkId::new("ahash_exact_hit", n), &map, |b, m| {
            b.iter(|| m.get(&key(black_box(hit_ip), black_box(6), black_box(hit_port))))
        });
        g.bench_with_input(BenchmarkId::new("reverse", n), &t, |b, t| {
            b.iter(|| t.reverse(black_box(srv), black_box(6), black_box(srv_port)))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
