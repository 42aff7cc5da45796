//! Signature version 1.0 of the RPC-style API: percent-encoding, the canonical query string,
//! the string to sign and its HMAC-SHA1, and the form/query-string decoder the server reads with.
//!
//! The string to sign is `METHOD&%2F&` followed by the percent-encoded canonical query string:
//! every parameter but `Signature`, sorted by name, each name and value percent-encoded per
//! RFC 3986 (only `A-Z a-z 0-9 - _ . ~` stay as they are), joined with `=` and `&`. The key
//! is the AccessKeySecret followed by `&`; the signature is the HMAC-SHA1, in base64.

use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;

/// Percent-encodes `s` as the signature needs it: RFC 3986 unreserved characters stay,
/// every other byte of the UTF-8 text becomes `%XX` with upper-case hex (a space is `%20`).
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        }
    }
    out
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The canonical query string: parameters other than `Signature`, sorted by name (then value),
/// each `name=value` percent-encoded, joined with `&`.
pub fn canonical_query(params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .filter(|(k, _)| k != "Signature")
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    let parts: Vec<String> = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    parts.join("&")
}

/// The string to sign for an HTTP `method` (`GET` or `POST`) and the request's parameters.
pub fn string_to_sign(method: &str, params: &[(String, String)]) -> String {
    format!(
        "{method}&{}&{}",
        percent_encode("/"),
        percent_encode(&canonical_query(params))
    )
}

/// The signature of `string_to_sign` with `secret`: base64 of HMAC-SHA1 keyed by `secret&`.
pub fn sign(secret: &str, string_to_sign: &str) -> String {
    let key = format!("{secret}&");
    // HMAC accepts a key of any length (longer keys are hashed first), so this cannot fail.
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(key.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(string_to_sign.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// Why a query string or form body could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// A `%` not followed by two hex digits.
    #[error("bad percent-escape at byte {offset}")]
    BadEscape {
        /// The byte offset of the `%` in the input.
        offset: usize,
    },
    /// The decoded bytes are not UTF-8.
    #[error("the parameter at byte {offset} is not UTF-8 once decoded")]
    NotUtf8 {
        /// The byte offset of the parameter in the input.
        offset: usize,
    },
}

/// Decodes `application/x-www-form-urlencoded` text (a query string or a form body) into
/// `(name, value)` pairs in order. `+` is a space; empty pieces (`a=1&&b=2`) are skipped; a
/// piece without `=` is a name with an empty value.
pub fn decode_form(s: &str) -> Result<Vec<(String, String)>, DecodeError> {
    let mut out = Vec::new();
    let mut offset = 0;
    for piece in s.split('&') {
        let start = offset;
        offset += piece.len() + 1;
        if piece.is_empty() {
            continue;
        }
        let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
        let name = decode_component(k, start)?;
        let value = decode_component(v, start + k.len() + 1)?;
        out.push((name, value));
    }
    Ok(out)
}

fn decode_component(s: &str, base: usize) -> Result<String, DecodeError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = b.get(i + 1).and_then(|&h| char::from(h).to_digit(16));
                let lo = b.get(i + 2).and_then(|&l| char::from(l).to_digit(16));
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(DecodeError::BadEscape { offset: base + i });
                };
                // Two hex digits make at most 0xFF.
                out.push((hi * 16 + lo) as u8);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| DecodeError::NotUtf8 { offset: base })
}

/// Encodes parameters as a query string in the signature's percent-encoding, in the given order.
pub fn encode_query(params: &[(String, String)]) -> String {
    let parts: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
        .collect();
    parts.join("&")
}

/// Seconds since the Unix epoch of an ISO 8601 UTC time `YYYY-MM-DDTHH:MM:SSZ` (fractional
/// seconds `.sss` are accepted and dropped), or `None` if it is not one.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b.last() != Some(&b'Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        if !t.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        t.parse().ok()
    };
    if b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let rest = s.get(19..s.len() - 1)?;
    if !(rest.is_empty()
        || (rest.starts_with('.')
            && rest.len() > 1
            && rest[1..].bytes().all(|c| c.is_ascii_digit())))
    {
        return None;
    }
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for `secs` since the Unix epoch.
pub fn format_timestamp(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn encodes_like_rfc3986() {
        assert_eq!(percent_encode("a b*~/+"), "a%20b%2A~%2F%2B");
        assert_eq!(percent_encode("é"), "%C3%A9");
    }

    #[test]
    fn the_documented_example_signs_to_its_published_value() {
        // The signature documentation's DescribeRegions example (secret "testsecret").
        let params = p(&[
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Format", "XML"),
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("Version", "2014-05-26"),
            ("SignatureVersion", "1.0"),
        ]);
        let sts = string_to_sign("GET", &params);
        assert_eq!(
            sts,
            "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
        );
        assert_eq!(sign("testsecret", &sts), "OLeaidS1JvxuMvnyHOwuJ+uX5qY=");
    }

    #[test]
    fn decodes_forms_and_refuses_bad_escapes() {
        assert_eq!(
            decode_form("a=1+2&&b=%41%2f&c").unwrap(),
            p(&[("a", "1 2"), ("b", "A/"), ("c", "")])
        );
        assert_eq!(
            decode_form("a=%4"),
            Err(DecodeError::BadEscape { offset: 2 })
        );
        assert!(matches!(
            decode_form("a=%FF"),
            Err(DecodeError::NotUtf8 { .. })
        ));
    }

    #[test]
    fn timestamps_round_trip() {
        let t = parse_timestamp("2016-05-23T03:26:21Z").unwrap();
        assert_eq!(t, 1_463_973_981);
        assert_eq!(format_timestamp(t), "2016-05-23T03:26:21Z");
        assert_eq!(parse_timestamp("2016-05-23T03:26:21.123Z"), Some(t));
        assert_eq!(parse_timestamp("2016-05-23 03:26:21"), None);
        assert_eq!(parse_timestamp("2016-13-23T03:26:21Z"), None);
        assert_eq!(parse_timestamp("２016-05-23T03:26:21Z"), None);
    }
}
