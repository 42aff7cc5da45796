//! A small HTTP/1.1 server for the API: one accept thread, a fixed pool of workers fed through
//! a bounded queue, one request per connection.
//!
//! Hostile clients are bounded: the head may be at most [`Limits::max_head`] bytes and the body
//! [`Limits::max_body`]; each read waits at most [`Limits::read_timeout`] and a whole request
//! must arrive within [`Limits::request_deadline`], so a client sending a byte at a time holds a
//! worker for that long at most. When every worker is busy and the queue is full, a new
//! connection is answered `503 ServiceUnavailable` at once. A panic in a handler is caught and
//! answered `500 InternalError`; the worker goes on.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::ApiError;
use super::{Answer, Service};

/// Resource limits of the server.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Worker threads (requests handled at once).
    pub workers: usize,
    /// Connections waiting for a worker before new ones are refused with 503.
    pub queue: usize,
    /// The request line and headers, in bytes.
    pub max_head: usize,
    /// The body, in bytes.
    pub max_body: usize,
    /// The longest one read may wait.
    pub read_timeout: Duration,
    /// The longest a whole request may take to arrive.
    pub request_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            workers: 16,
            queue: 256,
            max_head: 16 * 1024,
            max_body: 1024 * 1024,
            read_timeout: Duration::from_secs(5),
            request_deadline: Duration::from_secs(15),
        }
    }
}

/// Serves `service` on `listener` until the process ends.
pub fn serve(listener: TcpListener, service: Arc<Service>, limits: Limits) -> io::Result<()> {
    let (tx, rx) = crossbeam_channel::bounded::<TcpStream>(limits.queue);
    for i in 0..limits.workers.max(1) {
        let rx = rx.clone();
        let service = Arc::clone(&service);
        let limits = limits.clone();
        std::thread::Builder::new()
            .name(format!("api-worker-{i}"))
            .spawn(move || {
                for stream in rx {
                    connection(stream, &service, &limits);
                }
            })?;
    }
    for stream in listener.incoming() {
        match stream {
            Ok(s) => {
                if let Err(crossbeam_channel::TrySendError::Full(mut s)) = tx.try_send(s) {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(1)));
                    let busy = ApiError::new(
                        503,
                        "ServiceUnavailable",
                        "The server is busy; retry later.",
                    );
                    let _ = respond(&mut s, &service.refuse(&busy));
                }
            }
            Err(e) => {
                // Out of file descriptors and the like: wait a little rather than spin.
                eprintln!("dnatsim api: accept: {e}");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
    Ok(())
}

/// A request as read off the wire.
struct Request {
    method: String,
    query: String,
    body: String,
}

fn connection(mut stream: TcpStream, service: &Service, limits: &Limits) {
    let _ = stream.set_write_timeout(Some(limits.read_timeout));
    let answer = match read_request(&mut stream, limits) {
        Ok(req) => {
            match catch_unwind(AssertUnwindSafe(|| {
                service.handle(&req.method, &req.query, &req.body)
            })) {
                Ok(a) => a,
                Err(_) => {
                    eprintln!("dnatsim api: a handler panicked; answered 500");
                    service.refuse(&ApiError::internal())
                }
            }
        }
        Err(e) => service.refuse(&e),
    };
    let _ = respond(&mut stream, &answer);
    // Read what the client still sends (a body we refused) for a moment, so closing does not
    // reset the connection before the client has read the answer.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 8192];
    let mut drained = 0usize;
    while drained < 4 * 1024 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

fn read_request(stream: &mut TcpStream, limits: &Limits) -> Result<Request, ApiError> {
    let start = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > limits.max_head {
            return Err(ApiError::new(
                431,
                "RequestHeaderFieldsTooLarge",
                format!("The request head exceeds {} bytes.", limits.max_head),
            ));
        }
        let n = read_some(stream, &mut chunk, start, limits)?;
        buf.extend_from_slice(&chunk[..n]);
    };
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let bad = |why: String| ApiError::new(400, "InvalidRequest.Malformed", why);
    match req.parse(&buf[..head_end]) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err(bad("The request head is incomplete.".into())),
        Err(e) => return Err(bad(format!("The request head is not valid HTTP: {e}."))),
    }
    let method = req.method.unwrap_or("").to_string();
    if method != "GET" && method != "POST" {
        return Err(ApiError::new(
            405,
            "UnsupportedHTTPMethod",
            format!("The HTTP method \"{method}\" is not supported (GET or POST)."),
        ));
    }
    let target = req.path.unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    if path != "/" {
        return Err(ApiError::new(
            404,
            "InvalidURI.NotFound",
            format!("The path \"{path}\" is not served; RPC requests go to \"/\"."),
        ));
    }
    let mut length: Option<usize> = None;
    let mut form = true;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ApiError::new(
                411,
                "MissingContentLength",
                "Chunked bodies are not accepted; send Content-Length.",
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let v = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
            match (v, length) {
                (Some(v), None) => length = Some(v),
                _ => return Err(bad("Content-Length is not one number.".into())),
            }
        }
        if h.name.eq_ignore_ascii_case("content-type") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            form = v.trim().is_empty() || v.starts_with("application/x-www-form-urlencoded");
        }
    }
    let length = length.unwrap_or(0);
    if length > limits.max_body {
        return Err(ApiError::new(
            413,
            "RequestEntityTooLarge",
            format!(
                "The body of {length} bytes exceeds the limit of {} bytes.",
                limits.max_body
            ),
        ));
    }
    if length > 0 && !form {
        return Err(ApiError::new(
            415,
            "UnsupportedMediaType",
            "The body must be application/x-www-form-urlencoded.",
        ));
    }
    let query = query.to_string();
    let mut body = buf.split_off(head_end);
    while body.len() < length {
        let n = read_some(stream, &mut chunk, start, limits)?;
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    let body = String::from_utf8(body).map_err(|_| bad("The body is not UTF-8.".into()))?;
    Ok(Request {
        method,
        query,
        body,
    })
}

/// One read, within the per-read timeout and the request's deadline.
fn read_some(
    stream: &mut TcpStream,
    chunk: &mut [u8],
    start: Instant,
    limits: &Limits,
) -> Result<usize, ApiError> {
    let timeout = || ApiError::new(408, "RequestTimeout", "The request did not arrive in time.");
    let left = limits
        .request_deadline
        .checked_sub(start.elapsed())
        .filter(|d| !d.is_zero())
        .ok_or_else(timeout)?;
    let _ = stream.set_read_timeout(Some(left.min(limits.read_timeout)));
    match stream.read(chunk) {
        Ok(0) => Err(ApiError::new(
            400,
            "InvalidRequest.Incomplete",
            "The connection closed mid-request.",
        )),
        Ok(n) => Ok(n),
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) =>
        {
            Err(timeout())
        }
        Err(e) => Err(ApiError::new(
            400,
            "InvalidRequest.Incomplete",
            format!("Reading the request failed: {e}."),
        )),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        415 => "Unsupported Media Type",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

fn respond(stream: &mut TcpStream, a: &Answer) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json;charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        a.status,
        reason(a.status),
        a.body.len()
    );
    stream.write_all(head.as_bytes())?;
    stream.write_all(a.body.as_bytes())?;
    stream.flush()
}
