//! Parsing of single values shared by the TOML and JSON front ends.
//!
//! Each returns a message naming the value and the rule on failure; the caller attaches the location.
//! Surrounding whitespace is trimmed because the API's own output carries stray spaces ("203.0.113.79 ").

use std::net::Ipv4Addr;

use super::model::{CountMode, LimitMode, PortSpec, Profile, Protocol};

/// A port selector from its string form: "any" (any case), "80", or "8000/8010".
pub(crate) fn port_str(raw: &str) -> Result<PortSpec, String> {
    let s = raw.trim();
    if s.eq_ignore_ascii_case("any") {
        return Ok(PortSpec::Any);
    }
    if let Some((a, b)) = s.split_once('/') {
        let a = port_number(a.trim(), raw)?;
        let b = port_number(b.trim(), raw)?;
        if a > b {
            return Err(format!(
                "port range \"{raw}\" is reversed: the first port {a} is greater than the last {b}"
            ));
        }
        return Ok(if a == b {
            PortSpec::Single(a)
        } else {
            PortSpec::Range(a, b)
        });
    }
    port_number(s, raw).map(PortSpec::Single)
}

fn port_number(s: &str, raw: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "port \"{raw}\" is not a port number 1-65535, a range \"first/last\" or \"any\""
        ));
    }
    match s.parse::<u64>() {
        Ok(n) => port_int(i64::try_from(n).unwrap_or(i64::MAX)),
        Err(_) => Err(format!("port {s} is outside 1-65535")),
    }
}

/// A single port from an integer, 1-65535.
pub(crate) fn port_int(n: i64) -> Result<u16, String> {
    match u16::try_from(n) {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(format!("port {n} is outside 1-65535")),
    }
}

/// A protocol selector: "tcp", "udp" or "any", in any case.
pub(crate) fn protocol(raw: &str) -> Result<Protocol, String> {
    let s = raw.trim();
    for p in [Protocol::Tcp, Protocol::Udp, Protocol::Any] {
        if s.eq_ignore_ascii_case(p.as_str()) {
            return Ok(p);
        }
    }
    Err(format!(
        "unknown ip_protocol \"{raw}\"; expected \"tcp\", \"udp\" or \"any\""
    ))
}

/// A dotted-quad IPv4 address.
pub(crate) fn ipv4(raw: &str, what: &str) -> Result<Ipv4Addr, String> {
    raw.trim()
        .parse::<Ipv4Addr>()
        .map_err(|_| format!("{what} \"{raw}\" is not an IPv4 address (a.b.c.d)"))
}

/// The validation profile's name.
pub(crate) fn profile(raw: &str) -> Result<Profile, String> {
    let s = raw.trim();
    for p in [Profile::Alibaba, Profile::Permissive] {
        if s.eq_ignore_ascii_case(p.as_str()) {
            return Ok(p);
        }
    }
    Err(format!(
        "unknown profile \"{raw}\"; expected \"alibaba\" or \"permissive\""
    ))
}

/// The bandwidth package's limit mode.
pub(crate) fn mode(raw: &str) -> Result<LimitMode, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "police" => Ok(LimitMode::Police),
        "shape" => Ok(LimitMode::Shape),
        _ => Err(format!(
            "unknown mode \"{raw}\"; expected \"police\" or \"shape\""
        )),
    }
}

/// Which length counts against the package.
pub(crate) fn count(raw: &str) -> Result<CountMode, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "l3" => Ok(CountMode::L3),
        "l2" => Ok(CountMode::L2),
        _ => Err(format!(
            "unknown count \"{raw}\"; expected \"l3\" or \"l2\""
        )),
    }
}

/// Bits per second from an integer number of Mbps (> 0).
pub(crate) fn mbps_int(n: i64) -> Result<u64, String> {
    if n <= 0 {
        return Err(format!("bandwidth_mbps must be greater than 0, not {n}"));
    }
    u64::try_from(n)
        .ok()
        .and_then(|n| n.checked_mul(1_000_000))
        .ok_or_else(|| format!("bandwidth_mbps {n} is too large"))
}

/// Bits per second from a fractional number of Mbps; it must come to a whole number of bits per second.
pub(crate) fn mbps_float(x: f64) -> Result<u64, String> {
    if !x.is_finite() {
        return Err(format!("bandwidth_mbps must be finite, not {x}"));
    }
    if x <= 0.0 {
        return Err(format!("bandwidth_mbps must be greater than 0, not {x}"));
    }
    let bps = x * 1e6;
    if bps >= 9.0e18 {
        return Err(format!("bandwidth_mbps {x} is too large"));
    }
    let whole = bps.round();
    // Decimal fractions such as 0.1 are not exact in binary; accept float noise, not real fractions.
    if whole < 1.0 || (bps - whole).abs() > 1e-6 * whole.max(1.0) {
        return Err(format!(
            "bandwidth_mbps {x} is not a whole number of bits per second"
        ));
    }
    // whole is in [1, 9e18), inside u64's range, and integral.
    Ok(whole as u64)
}

/// Bits per second from a string such as the API's "150" or "1.5".
pub(crate) fn mbps_str(raw: &str) -> Result<u64, String> {
    let s = raw.trim();
    if let Ok(n) = s.parse::<i64>() {
        return mbps_int(n);
    }
    match s.parse::<f64>() {
        Ok(x) if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') => mbps_float(x),
        _ => Err(format!("bandwidth \"{raw}\" is not a number of Mbps")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(port_str("Any"), Ok(PortSpec::Any));
        assert_eq!(port_str(" 80 "), Ok(PortSpec::Single(80)));
        assert_eq!(port_str("8000/8010"), Ok(PortSpec::Range(8000, 8010)));
        assert_eq!(port_str("80/80"), Ok(PortSpec::Single(80)));
        assert!(port_str("0").is_err());
        assert!(port_str("70000").is_err());
        assert!(port_str("99999999999999999999999").is_err());
        assert!(port_str("abc").is_err());
        assert!(port_str("-1").is_err());
        assert!(port_str("8010/8000").is_err());
        assert!(port_str("").is_err());
    }

    #[test]
    fn bandwidth() {
        assert_eq!(mbps_int(150), Ok(150_000_000));
        assert_eq!(mbps_float(1.5), Ok(1_500_000));
        assert_eq!(mbps_float(0.1), Ok(100_000));
        assert!(mbps_float(0.0000001).is_err());
        assert!(mbps_int(0).is_err());
        assert!(mbps_int(-5).is_err());
        assert!(mbps_int(i64::MAX).is_err());
        assert_eq!(mbps_str("150"), Ok(150_000_000));
        assert!(mbps_str("1e3").is_err());
        assert!(mbps_str("fast").is_err());
    }
}
