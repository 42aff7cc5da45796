//! A local NAT Gateway API: the cloud's RPC-style HTTP API (version 2016-04-28, and the
//! tutorial's 2014-05-26), signed with signature version 1.0, state in SQLite.
//!
//! - [`sign`]: percent-encoding, the string to sign, HMAC-SHA1; form decoding; timestamps.
//! - [`store`]: the SQLite state, one transaction per request.
//! - [`actions`]: the actions, validated with the rules crate's `alibaba` profile.
//! - [`http`]: a small HTTP/1.1 server (bounded worker pool, size limits, timeouts).
//! - [`client`]: a signing client, used by `dnatsim api call` and the tests.
//!
//! [`Service::handle`] takes a parsed HTTP request and answers it: authentication, then the
//! action, then (after a change) the `--rules-out` files.

#![warn(missing_docs)]

pub mod actions;
pub mod client;
pub mod error;
pub mod http;
pub mod sign;
pub mod store;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::Value;

use actions::{Env, Params};
use error::ApiError;
use store::Store;

/// API versions accepted: the current VPC API's and the tutorial's (ECS) one.
pub const VERSIONS: &[&str] = &["2016-04-28", "2014-05-26"];

/// How far a request's `Timestamp` may be from the server's clock (the API's 15 minutes).
pub const TIMESTAMP_WINDOW_S: i64 = 15 * 60;

/// The server's settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The one AccessKey pair accepted; `None` turns authentication off.
    pub credentials: Option<(String, String)>,
    /// How long a new or modified entry stays Pending, in milliseconds.
    pub pending_ms: u64,
    /// The public IP pool: first and last address.
    pub pool: (Ipv4Addr, Ipv4Addr),
    /// Rules files kept current: (gateway id or name, file).
    pub rules_out: Vec<(String, PathBuf)>,
    /// The name answered as `HostId`.
    pub host: String,
}

/// The API: configuration, state and the nonces seen.
#[derive(Debug)]
pub struct Service {
    config: Config,
    store: Store,
    nonces: Mutex<HashMap<String, i64>>,
    rules_out_lock: Mutex<()>,
    counter: AtomicU64,
}

/// An answer: HTTP status and JSON body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The HTTP status.
    pub status: u16,
    /// The JSON body.
    pub body: String,
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Parses a pool `A.B.C.D/N` into its first and last usable host address (the network and
/// broadcast addresses are left out when the prefix is /30 or shorter).
pub fn parse_pool(s: &str) -> Result<(Ipv4Addr, Ipv4Addr), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("\"{s}\" is not A.B.C.D/N"))?;
    let ip: Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("\"{ip}\" is not an IPv4 address"))?;
    let len: u32 = len
        .parse()
        .ok()
        .filter(|l| (8..=32).contains(l))
        .ok_or_else(|| format!("prefix length \"{len}\" must be 8-32"))?;
    let mask = if len == 32 {
        u32::MAX
    } else {
        !(u32::MAX >> len)
    };
    let net = u32::from(ip) & mask;
    let last = net | !mask;
    let (a, b) = if len <= 30 {
        (net + 1, last - 1)
    } else {
        (net, last)
    };
    Ok((Ipv4Addr::from(a), Ipv4Addr::from(b)))
}

impl Service {
    /// A service over an opened store.
    pub fn new(config: Config, store: Store) -> Service {
        Service {
            config,
            store,
            nonces: Mutex::new(HashMap::new()),
            rules_out_lock: Mutex::new(()),
            counter: AtomicU64::new(0),
        }
    }

    /// The state.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// A request id in the API's UUID shape, unique within this process and across restarts
    /// (it hashes the time, the process id and a counter).
    pub fn request_id(&self) -> String {
        use sha1::Digest as _;
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let mut h = sha1::Sha1::new();
        h.update(now_ms().to_le_bytes());
        h.update(std::process::id().to_le_bytes());
        h.update(n.to_le_bytes());
        let d = h.finalize();
        let hex: String = d.iter().take(16).map(|b| format!("{b:02X}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &hex[0..8],
            &hex[8..12],
            &hex[12..16],
            &hex[16..20],
            &hex[20..32]
        )
    }

    /// Answers one request: `method` (GET or POST), the raw query string, and the form body
    /// (already checked to be form-encoded, or empty).
    pub fn handle(&self, method: &str, query: &str, body: &str) -> Answer {
        let request_id = self.request_id();
        match self.handle_inner(method, query, body) {
            Ok(mut v) => {
                v["RequestId"] = Value::String(request_id);
                Answer {
                    status: 200,
                    body: pretty(&v),
                }
            }
            Err(e) => Answer {
                status: e.status,
                body: e.body(&request_id, &self.config.host),
            },
        }
    }

    /// An error answer with a fresh request id (for the HTTP layer's own refusals).
    pub fn refuse(&self, e: &ApiError) -> Answer {
        Answer {
            status: e.status,
            body: e.body(&self.request_id(), &self.config.host),
        }
    }

    fn handle_inner(&self, method: &str, query: &str, body: &str) -> Result<Value, ApiError> {
        let malformed = |e: sign::DecodeError| {
            ApiError::new(
                400,
                "InvalidParameter.Malformed",
                format!("The request is malformed: {e}."),
            )
        };
        let mut all = sign::decode_form(query).map_err(malformed)?;
        all.extend(sign::decode_form(body).map_err(malformed)?);
        let mut seen = std::collections::HashSet::new();
        for (k, _) in &all {
            if !seen.insert(k.as_str()) {
                return Err(ApiError::new(
                    400,
                    "InvalidParameter.Duplicate",
                    format!("The parameter \"{k}\" is given more than once."),
                ));
            }
        }
        let p = Params(all);
        // The tutorial's api.py writes `action` and `TimeStamp`.
        let action = p
            .opt("Action")
            .or_else(|| p.opt("action"))
            .ok_or_else(|| ApiError::missing("Action"))?
            .to_string();
        let nonce = self.authenticate(method, &p)?;
        let version = p.req("Version")?;
        if !VERSIONS.contains(&version) {
            return Err(ApiError::new(
                400,
                "InvalidVersion",
                format!(
                    "Specified parameter Version \"{version}\" is not valid (2016-04-28 or 2014-05-26)."
                ),
            ));
        }
        if let Some(f) = p.opt("Format")
            && !f.eq_ignore_ascii_case("json")
        {
            return Err(ApiError::invalid(
                "Format",
                format!("\"{f}\": dnatsim answers JSON only"),
            ));
        }
        let env = Env {
            now_ms: now_ms(),
            pending_ms: i64::try_from(self.config.pending_ms).unwrap_or(i64::MAX / 2),
            pool: (u32::from(self.config.pool.0), u32::from(self.config.pool.1)),
        };
        let out = actions::run(&self.store, &env, &action, &p, nonce.as_deref())?;
        if actions::is_mutating(&action) {
            self.write_rules_out();
        }
        Ok(out)
    }

    /// Checks the signature; returns the request's nonce (`None` when authentication is off).
    fn authenticate(&self, method: &str, p: &Params) -> Result<Option<String>, ApiError> {
        let Some((id, secret)) = &self.config.credentials else {
            return Ok(None);
        };
        let key = p.req("AccessKeyId")?;
        if key != id {
            return Err(ApiError::new(
                404,
                "InvalidAccessKeyId.NotFound",
                "Specified access key is not found.",
            ));
        }
        if let Some(m) = p.opt("SignatureMethod")
            && m != "HMAC-SHA1"
        {
            return Err(ApiError::new(
                400,
                "InvalidSignatureMethod",
                format!("Specified signature method \"{m}\" is not supported (HMAC-SHA1)."),
            ));
        }
        if let Some(v) = p.opt("SignatureVersion")
            && v != "1.0"
        {
            return Err(ApiError::new(
                400,
                "InvalidSignatureVersion",
                format!("Specified signature version \"{v}\" is not supported (1.0)."),
            ));
        }
        let ts = p
            .opt("Timestamp")
            .or_else(|| p.opt("TimeStamp"))
            .ok_or_else(|| ApiError::missing("Timestamp"))?;
        let Some(t) = sign::parse_timestamp(ts) else {
            return Err(ApiError::new(
                400,
                "InvalidTimeStamp.Format",
                format!("Specified time stamp \"{ts}\" is not in the format YYYY-MM-DDThh:mm:ssZ."),
            ));
        };
        let now = now_ms() / 1000;
        if (now - t).abs() > TIMESTAMP_WINDOW_S {
            return Err(ApiError::new(
                400,
                "InvalidTimeStamp.Expired",
                format!(
                    "Specified time stamp or date value is expired: {ts} is more than 15 minutes from the server's time."
                ),
            ));
        }
        let given = p.req("Signature")?;
        let sts = sign::string_to_sign(method, &p.0);
        let want = sign::sign(secret, &sts);
        if !constant_time_eq(given.as_bytes(), want.as_bytes()) {
            // As the cloud does, the message ends with the server's string to sign after the
            // one colon, so a client can compare it with its own.
            return Err(ApiError::new(
                400,
                "SignatureDoesNotMatch",
                format!(
                    "Specified signature is not matched with our calculation. server string to sign is:{sts}"
                ),
            ));
        }
        let nonce = p.req("SignatureNonce")?;
        let mut nonces = self.nonces.lock().unwrap_or_else(|e| e.into_inner());
        // A nonce only has to stay unique while its timestamp is acceptable. These are kept in
        // memory; a changing request's nonce is also stored with its write (see actions::run),
        // so replaying it after a restart is refused too.
        if nonces.len() > 10_000 {
            nonces.retain(|_, &mut seen| now - seen <= 2 * TIMESTAMP_WINDOW_S);
        }
        if nonces.insert(nonce.to_string(), now).is_some() {
            return Err(actions::nonce_used());
        }
        Ok(Some(nonce.to_string()))
    }

    /// Rewrites every `--rules-out` file whose gateway exists, whole (temp file + rename).
    /// Serialised, and each file is read from the state after the caller's commit, so the last
    /// write always shows the latest state.
    pub fn write_rules_out(&self) {
        if self.config.rules_out.is_empty() {
            return;
        }
        let _guard = self
            .rules_out_lock
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for (key, path) in &self.config.rules_out {
            match actions::export(&self.store, key) {
                Ok(Some(rules)) => {
                    let text = crate::rules::to_toml(&rules);
                    if let Err(e) = write_whole(path, &text) {
                        eprintln!("dnatsim api: cannot write {}: {e}", path.display());
                    }
                }
                Ok(None) => {}
                Err(e) => eprintln!("dnatsim api: rules for {key}: {e}"),
            }
        }
    }
}

fn write_whole(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut f = crate::output::TempFile::create(path)?;
    f.file()?.write_all(text.as_bytes())?;
    f.commit()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// JSON with two-space indentation, as the tutorial prints it.
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_leave_out_network_and_broadcast() {
        assert_eq!(
            parse_pool("203.0.113.0/24").unwrap(),
            (
                Ipv4Addr::new(203, 0, 113, 1),
                Ipv4Addr::new(203, 0, 113, 254)
            )
        );
        assert_eq!(
            parse_pool("203.0.113.7/32").unwrap(),
            (Ipv4Addr::new(203, 0, 113, 7), Ipv4Addr::new(203, 0, 113, 7))
        );
        assert!(parse_pool("203.0.113.0").is_err());
        assert!(parse_pool("203.0.113.0/33").is_err());
    }
}
