//! Link layers: where the IPv4 header starts in a captured frame.
//!
//! Only the link types that carry IPv4 to a gateway are understood; anything else is
//! reported as not IPv4 and passes through unchanged.

use super::read16;

/// pcap `LINKTYPE_NULL`: a 4-byte address family in the capturing host's byte order.
pub const LINKTYPE_NULL: u16 = 0;
/// pcap `LINKTYPE_ETHERNET`.
pub const LINKTYPE_ETHERNET: u16 = 1;
/// pcap `LINKTYPE_RAW`: a raw IPv4 or IPv6 packet.
pub const LINKTYPE_RAW: u16 = 101;
/// pcap `LINKTYPE_LOOP`: like NULL, but the family is in network byte order.
pub const LINKTYPE_LOOP: u16 = 108;
/// pcap `LINKTYPE_LINUX_SLL`: Linux cooked capture v1.
pub const LINKTYPE_LINUX_SLL: u16 = 113;
/// pcap `LINKTYPE_IPV4`: a raw IPv4 packet.
pub const LINKTYPE_IPV4: u16 = 228;
/// pcap `LINKTYPE_LINUX_SLL2`: Linux cooked capture v2.
pub const LINKTYPE_LINUX_SLL2: u16 = 276;
/// Old `DLT_RAW` values that some systems wrote into pcap headers instead of 101.
const DLT_RAW_ALIASES: [u16; 2] = [12, 14];

/// The Ethernet type of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_VLAN: u16 = 0x8100;
const ETHERTYPE_QINQ: u16 = 0x88a8;
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// More tags than this is not a real frame; stopping bounds the work per packet.
const MAX_VLAN_TAGS: usize = 4;
const AF_INET: u32 = 2;

/// Where the IPv4 packet of a frame is, or why there is none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// The IPv4 header starts at this byte offset.
    Ipv4 { offset: usize },
    /// A frame of another network protocol (ARP, IPv6, ...) or an unknown link type.
    NotIpv4,
    /// The link-layer header itself is cut short.
    Truncated { needed: usize, len: usize },
}

/// Finds the IPv4 packet in `frame` for pcap link type `link_type`. Its most common case,
/// untagged Ethernet, is decided in line; as one call for every link type it cost the replay
/// loop 20 instructions a packet and the registers saved around the call.
#[inline(always)]
pub fn locate_ipv4(link_type: u16, frame: &[u8]) -> Frame {
    if link_type == LINKTYPE_ETHERNET && frame.get(12..14) == Some(&[0x08, 0x00]) {
        return Frame::Ipv4 { offset: 14 };
    }
    locate_ipv4_any(link_type, frame)
}

/// [`locate_ipv4`] for every link type and frame.
#[inline(never)]
fn locate_ipv4_any(link_type: u16, frame: &[u8]) -> Frame {
    match link_type {
        LINKTYPE_ETHERNET => ethernet(frame),
        LINKTYPE_RAW | LINKTYPE_IPV4 => raw_ip(frame),
        t if DLT_RAW_ALIASES.contains(&t) => raw_ip(frame),
        LINKTYPE_LINUX_SLL => {
            // SLL v1: the protocol type is the last two of its 16 bytes.
            let Some(proto) = read16(frame, 14) else {
                return Frame::Truncated {
                    needed: 16,
                    len: frame.len(),
                };
            };
            ethertype_at(proto, 16)
        }
        LINKTYPE_LINUX_SLL2 => {
            // SLL v2: the protocol type comes first, the header is 20 bytes.
            if frame.len() < 20 {
                return Frame::Truncated {
                    needed: 20,
                    len: frame.len(),
                };
            }
            let proto = u16::from_be_bytes([frame[0], frame[1]]);
            ethertype_at(proto, 20)
        }
        LINKTYPE_NULL | LINKTYPE_LOOP => {
            if frame.len() < 4 {
                return Frame::Truncated {
                    needed: 4,
                    len: frame.len(),
                };
            }
            let bytes = [frame[0], frame[1], frame[2], frame[3]];
            // NULL is in the capturing host's order, which the file does not record: accept both.
            let family_be = u32::from_be_bytes(bytes);
            let family_le = u32::from_le_bytes(bytes);
            if family_be == AF_INET || (link_type == LINKTYPE_NULL && family_le == AF_INET) {
                Frame::Ipv4 { offset: 4 }
            } else {
                Frame::NotIpv4
            }
        }
        _ => Frame::NotIpv4,
    }
}

#[inline]
fn ethertype_at(ethertype: u16, offset: usize) -> Frame {
    if ethertype == ETHERTYPE_IPV4 {
        Frame::Ipv4 { offset }
    } else {
        Frame::NotIpv4
    }
}

#[inline]
fn ethernet(frame: &[u8]) -> Frame {
    let Some(mut ethertype) = read16(frame, 12) else {
        return Frame::Truncated {
            needed: 14,
            len: frame.len(),
        };
    };
    let mut offset = 14;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        // A tag is 2 bytes of TCI and 2 bytes of the next ethertype.
        let Some(next) = read16(frame, offset + 2) else {
            return Frame::Truncated {
                needed: offset + 4,
                len: frame.len(),
            };
        };
        ethertype = next;
        offset += 4;
    }
    ethertype_at(ethertype, offset)
}

#[inline]
fn raw_ip(frame: &[u8]) -> Frame {
    match frame.first() {
        None => Frame::Truncated { needed: 1, len: 0 },
        Some(b) if b >> 4 == 4 => Frame::Ipv4 { offset: 0 },
        Some(_) => Frame::NotIpv4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The in-line Ethernet case gives what the general reading gives, for every link type
    /// and for frames with and without tags, short or not IPv4.
    #[test]
    fn the_inline_case_agrees_with_the_general_reading() {
        let mut frames: Vec<Vec<u8>> = Vec::new();
        for ethertype in [
            [0x08, 0x00],
            [0x08, 0x06],
            [0x81, 0x00],
            [0x88, 0xa8],
            [0x86, 0xdd],
        ] {
            for len in [0, 12, 13, 14, 18, 40] {
                let mut f = vec![0x45u8; len];
                if len >= 14 {
                    f[12..14].copy_from_slice(&ethertype);
                }
                if len >= 18 {
                    f[16..18].copy_from_slice(&[0x08, 0x00]);
                }
                frames.push(f);
            }
        }
        for link in [
            LINKTYPE_ETHERNET,
            LINKTYPE_RAW,
            LINKTYPE_LINUX_SLL,
            0,
            12,
            228,
            276,
            999,
        ] {
            for f in &frames {
                assert_eq!(
                    locate_ipv4(link, f),
                    locate_ipv4_any(link, f),
                    "link {link}, frame {f:02x?}"
                );
            }
        }
    }

    fn eth(ethertype: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend_from_slice(ethertype);
        f.extend_from_slice(&[0x45, 0, 0, 20]);
        f
    }

    #[test]
    fn ethernet_plain_vlan_qinq() {
        assert_eq!(locate_ipv4(1, &eth(&[8, 0])), Frame::Ipv4 { offset: 14 });
        assert_eq!(
            locate_ipv4(1, &eth(&[0x81, 0, 0, 5, 8, 0])),
            Frame::Ipv4 { offset: 18 }
        );
        let qinq = eth(&[0x88, 0xa8, 0, 5, 0x81, 0, 0, 7, 8, 0]);
        assert_eq!(locate_ipv4(1, &qinq), Frame::Ipv4 { offset: 22 });
        assert_eq!(locate_ipv4(1, &eth(&[0x86, 0xdd])), Frame::NotIpv4);
        assert_eq!(
            locate_ipv4(1, &[0; 13]),
            Frame::Truncated {
                needed: 14,
                len: 13
            }
        );
        assert_eq!(
            locate_ipv4(1, &eth(&[0x81, 0])[..14]),
            Frame::Truncated {
                needed: 18,
                len: 14
            }
        );
    }

    #[test]
    fn cooked_and_raw() {
        let mut sll = vec![0u8; 14];
        sll.extend_from_slice(&[8, 0, 0x45]);
        assert_eq!(locate_ipv4(113, &sll), Frame::Ipv4 { offset: 16 });
        let mut sll2 = vec![8u8, 0];
        sll2.extend_from_slice(&[0; 18]);
        assert_eq!(locate_ipv4(276, &sll2), Frame::Ipv4 { offset: 20 });
        assert_eq!(locate_ipv4(101, &[0x45]), Frame::Ipv4 { offset: 0 });
        assert_eq!(locate_ipv4(101, &[0x60]), Frame::NotIpv4);
        assert_eq!(
            locate_ipv4(0, &[2, 0, 0, 0, 0x45]),
            Frame::Ipv4 { offset: 4 }
        );
        assert_eq!(
            locate_ipv4(108, &[0, 0, 0, 2, 0x45]),
            Frame::Ipv4 { offset: 4 }
        );
        assert_eq!(locate_ipv4(147, &[0x45]), Frame::NotIpv4);
    }
}
