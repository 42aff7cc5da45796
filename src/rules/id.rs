//! Deterministic ids for forward entries written without one.
//!
//! The id is `"fwd-"` followed by 9 base-36 digits (`0-9a-z`), the shape of the cloud's ids.
//! The digits are the 64-bit FNV-1a hash of the normalized tuple
//! `"<external_ip>|<external_port>|<ip_protocol>|<internal_ip>|<internal_port>"`
//! (ports and protocol in their lower-case API spelling, e.g. `203.0.113.79|80|tcp|192.168.1.3|80`),
//! reduced modulo 36^9 and zero-padded. The same entry gets the same id on every machine and run,
//! and spelling variants (`"TCP"`, `"80"` vs `80`) do not change it.

use std::net::Ipv4Addr;

use super::model::{PortSpec, Protocol};

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;
const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";

/// 64-bit FNV-1a: small, stable across platforms and Rust versions (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(FNV_OFFSET, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(FNV_PRIME)
    })
}

/// The id an entry gets when the rules file gives none (see the module doc for the recipe).
pub fn derive_id(
    external_ip: Ipv4Addr,
    external_port: PortSpec,
    ip_protocol: Protocol,
    internal_ip: Ipv4Addr,
    internal_port: PortSpec,
) -> String {
    let tuple =
        format!("{external_ip}|{external_port}|{ip_protocol}|{internal_ip}|{internal_port}");
    let mut n = fnv1a(tuple.as_bytes()) % 36u64.pow(9);
    let mut digits = [b'0'; 9];
    for d in digits.iter_mut().rev() {
        // n % 36 < 36, so the index is always in bounds.
        *d = DIGITS[(n % 36) as usize];
        n /= 36;
    }
    let mut id = String::from("fwd-");
    id.extend(digits.iter().map(|&b| char::from(b)));
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_reference_values() {
        // Published FNV-1a 64 test vectors.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn shape_and_stability() {
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap_or(Ipv4Addr::UNSPECIFIED);
        let a = derive_id(
            ip("203.0.113.79"),
            PortSpec::Single(80),
            Protocol::Tcp,
            ip("192.168.1.3"),
            PortSpec::Single(80),
        );
        let b = derive_id(
            ip("203.0.113.79"),
            PortSpec::Single(443),
            Protocol::Tcp,
            ip("192.168.1.3"),
            PortSpec::Single(443),
        );
        assert_eq!(a.len(), 13);
        assert!(a.starts_with("fwd-"));
        assert!(a[4..].bytes().all(|c| DIGITS.contains(&c)));
        assert_ne!(a, b);
        let again = derive_id(
            ip("203.0.113.79"),
            PortSpec::Single(80),
            Protocol::Tcp,
            ip("192.168.1.3"),
            PortSpec::Single(80),
        );
        assert_eq!(a, again);
    }
}
