//! A signing client for the API: builds a request the way the SDKs do (common parameters,
//! a fresh nonce, signature version 1.0) and sends it over plain HTTP.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::sign;

/// Where and as whom to call.
#[derive(Debug, Clone)]
pub struct Client {
    /// `host:port` of the server.
    pub addr: String,
    /// The AccessKeyId.
    pub key_id: String,
    /// The AccessKeySecret.
    pub secret: String,
}

/// What a call sent and got back.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The request URL (`http://host:port/?...`), signature included.
    pub url: String,
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: String,
}

impl Reply {
    /// The body as JSON (`Null` if it is not JSON).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or(serde_json::Value::Null)
    }
}

static NONCE: AtomicU64 = AtomicU64::new(0);

/// A nonce unique per call: the time, the process and a counter, hashed.
pub fn nonce() -> String {
    use sha1::Digest as _;
    let mut h = sha1::Sha1::new();
    h.update(super::now_ms().to_le_bytes());
    h.update(std::process::id().to_le_bytes());
    h.update(NONCE.fetch_add(1, Ordering::Relaxed).to_le_bytes());
    h.finalize()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Client {
    /// `params` with the common parameters added where absent (`Format`, `Version`,
    /// `AccessKeyId`, `SignatureMethod`, `SignatureVersion`, `SignatureNonce`, `Timestamp`)
    /// and signed for `method`.
    pub fn sign(&self, method: &str, params: &[(String, String)]) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = params.to_vec();
        let has = |p: &[(String, String)], k: &str| p.iter().any(|(n, _)| n == k);
        let ts = sign::format_timestamp(super::now_ms() / 1000);
        let defaults = [
            ("Format", "JSON".to_string()),
            ("Version", "2016-04-28".to_string()),
            ("AccessKeyId", self.key_id.clone()),
            ("SignatureMethod", "HMAC-SHA1".to_string()),
            ("SignatureVersion", "1.0".to_string()),
            ("SignatureNonce", nonce()),
        ];
        for (k, v) in defaults {
            if !has(&p, k) {
                p.push((k.to_string(), v));
            }
        }
        if !has(&p, "Timestamp") && !has(&p, "TimeStamp") {
            p.push(("Timestamp".to_string(), ts));
        }
        p.retain(|(k, _)| k != "Signature");
        let sig = sign::sign(&self.secret, &sign::string_to_sign(method, &p));
        p.push(("Signature".to_string(), sig));
        p
    }

    /// Signs `params` and sends them as a GET query string.
    pub fn call(&self, params: &[(String, String)]) -> io::Result<Reply> {
        let signed = self.sign("GET", params);
        let target = format!("/?{}", sign::encode_query(&signed));
        let (status, body) = request(&self.addr, "GET", &target, &[], None)?;
        Ok(Reply {
            url: format!("http://{}{target}", self.addr),
            status,
            body,
        })
    }

    /// Signs `params` and sends them as a POST form body.
    pub fn call_post(&self, params: &[(String, String)]) -> io::Result<Reply> {
        let signed = self.sign("POST", params);
        let form = sign::encode_query(&signed);
        let (status, body) = request(
            &self.addr,
            "POST",
            "/",
            form.as_bytes(),
            Some("application/x-www-form-urlencoded"),
        )?;
        Ok(Reply {
            url: format!("http://{}/", self.addr),
            status,
            body,
        })
    }
}

/// Sends one HTTP/1.1 request and reads the whole answer: (status, body).
pub fn request(
    addr: &str,
    method: &str,
    target: &str,
    body: &[u8],
    content_type: Option<&str>,
) -> io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    s.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(ct) = content_type {
        head.push_str(&format!("Content-Type: {ct}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

/// (status, body) of a raw HTTP/1.x answer that ends with the connection. An answer whose body
/// is shorter than its Content-Length (the server died while sending it) is an error, not a
/// shorter answer: a client must not take half an acknowledgement for a whole one.
pub fn parse_response(raw: &[u8]) -> io::Result<(u16, String)> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of the HTTP head"))?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad("the HTTP head is not UTF-8"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status in the HTTP answer"))?;
    let mut body = &raw[end + 4..];
    let declared = head.lines().skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    if let Some(n) = declared {
        if body.len() < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "the HTTP answer was cut short: {} of its {n} bytes",
                    body.len()
                ),
            ));
        }
        body = &body[..n];
    }
    Ok((status, String::from_utf8_lossy(body).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_response;

    #[test]
    fn an_answer_cut_short_is_an_error_not_a_shorter_answer() {
        let whole = b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{\"a\":\"b\"}";
        assert_eq!(
            parse_response(whole).unwrap(),
            (200, "{\"a\":\"b\"}".to_string())
        );
        // The server killed after its head, and after part of its body.
        for cut in [38, 41] {
            let e = parse_response(&whole[..cut]).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "cut at {cut}");
            assert!(e.to_string().contains("of its 9 bytes"), "{e}");
        }
        // Without a length, the body is whatever came before the end of the connection.
        assert_eq!(
            parse_response(b"HTTP/1.1 503 x\r\n\r\nbusy").unwrap(),
            (503, "busy".to_string())
        );
    }
}
