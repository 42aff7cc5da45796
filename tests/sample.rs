//! The bundled sample: it is reproducible from its recipe, and the replay's counts agree with
//! what the generator says it put in.

mod common;

use common::generate_capture;
use dnatsim::capture::CaptureReader;
use dnatsim::nat::{DropReason, ForwardTable};
use dnatsim::pipeline::{Quiet, ReplayOptions, replay};
use dnatsim::traffic::{Category, GenConfig};
use std::path::Path;

fn seed_rules() -> dnatsim::rules::Rules {
    dnatsim::rules::parse_file(Path::new("pcaps/seed/rules.toml"))
        .unwrap()
        .rules
}

/// The recipe in pcaps/seed/README.md.
fn recipe() -> GenConfig {
    GenConfig {
        packets: 2500,
        seed: 1,
        rate_mbps: 20.0,
        ..GenConfig::default()
    }
}

#[test]
fn the_sample_is_rebuilt_byte_for_byte_and_replays_as_generated() {
    let rules = seed_rules();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("capture.pcap");
    let stats = generate_capture(&rules, &recipe(), &path);
    assert_eq!(
        std::fs::read(&path).unwrap(),
        std::fs::read("pcaps/seed/capture.pcap").unwrap(),
        "pcaps/seed/capture.pcap no longer matches its recipe"
    );

    let table = ForwardTable::new(&rules.forward_entries, &rules.bandwidth_package.public_ips);
    let mut reader = CaptureReader::open(Path::new("pcaps/seed/capture.pcap")).unwrap();
    let result = replay(
        &mut reader,
        None,
        &table,
        &ReplayOptions::default(),
        &mut Quiet,
    )
    .unwrap();
    let c = &result.counters;
    assert_eq!(c.packets_in, stats.packets);
    assert_eq!(c.packets_in, c.packets_out + c.dropped_total());
    assert_eq!(
        c.dropped(DropReason::NoRule),
        stats.count(Category::Unmatched)
    );
    assert_eq!(
        c.dropped(DropReason::TtlExpired),
        stats.count(Category::TtlOne)
    );
    assert_eq!(
        c.dropped(DropReason::BadIpChecksum),
        stats.count(Category::BadIpChecksum)
    );
    assert_eq!(c.dropped(DropReason::Malformed), 0);
    assert_eq!(c.passed_foreign, stats.count(Category::Foreign));
    assert_eq!(
        c.passed_not_ipv4,
        stats.count(Category::Arp) + stats.count(Category::Ipv6)
    );
    // Fragments whose first fragment lies beyond the end of the sample are the only orphans.
    assert!(c.dropped(DropReason::FragmentOrphan) <= 2);
    let translated = stats.count(Category::TcpMatched)
        + stats.count(Category::UdpMatched)
        + stats.count(Category::ServerInitiated)
        + stats.count(Category::IcmpEcho)
        + stats.count(Category::IcmpError)
        + stats.count(Category::Fragment)
        + stats.count(Category::UdpZeroChecksum)
        - c.dropped(DropReason::FragmentOrphan);
    assert_eq!(c.inbound + c.outbound, translated);
    assert!(
        c.entries.iter().all(|e| e.packets > 0 && e.flows > 0),
        "every entry sees traffic"
    );
}
