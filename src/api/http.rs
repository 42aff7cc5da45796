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

/// What the server asks of the API behind it.
pub trait Handler: Send + Sync + 'static {
    /// Answers a request read whole: `GET`/`POST`, the raw query string, the form body.
    fn handle(&self, method: &str, query: &str, body: &str) -> Answer;
    /// Answers a request the server refused before it reached [`Handler::handle`].
    fn refuse(&self, e: &ApiError) -> Answer;
}

impl Handler for Service {
    fn handle(&self, method: &str, query: &str, body: &str) -> Answer {
        Service::handle(self, method, query, body)
    }
    fn refuse(&self, e: &ApiError) -> Answer {
        Service::refuse(self, e)
    }
}

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
pub fn serve<H: Handler>(listener: TcpListener, service: Arc<H>, limits: Limits) -> io::Result<()> {
    let (tx, rx) = crossbeam_channel::bounded::<TcpStream>(limits.queue);
    for i in 0..limits.workers.max(1) {
        let rx = rx.clone();
        let service = Arc::clone(&service);
        let limits = limits.clone();
        std::thread::Builder::new()
            .name(format!("api-worker-{i}"))
            .spawn(move || {
                for stream in rx {
                    connection(stream, &*service, &limits);
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
                    // Closing with the request still unread would reset the connection and
                    // lose the answer: send FIN first, then take what has arrived without
                    // waiting (the acceptor must not block on a client).
                    let _ = s.shutdown(std::net::Shutdown::Write);
                    if s.set_nonblocking(true).is_ok() {
                        let mut sink = [0u8; 4096];
                        for _ in 0..16 {
                            match std::io::Read::read(&mut s, &mut sink) {
                                Ok(n) if n > 0 => {}
                                _ => break,
                            }
                        }
                    }
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

fn connection<H: Handler>(mut stream: TcpStream, service: &H, limits: &Limits) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::{parse_response, request};

    /// Panics on `?panic`, sleeps on `?sleep`, else answers 200 with the query.
    struct Probe;

    impl Handler for Probe {
        fn handle(&self, _method: &str, query: &str, _body: &str) -> Answer {
            if query == "panic" {
                panic!("a handler bug");
            }
            if query == "sleep" {
                std::thread::sleep(Duration::from_millis(2500));
            }
            Answer {
                status: 200,
                body: format!("{{\"q\":\"{query}\"}}"),
            }
        }
        fn refuse(&self, e: &ApiError) -> Answer {
            Answer {
                status: e.status,
                body: e.body("r", "h"),
            }
        }
    }

    fn start(limits: Limits) -> String {
        let l = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let addr = l.local_addr().expect("an address").to_string();
        std::thread::spawn(move || serve(l, Arc::new(Probe), limits));
        addr
    }

    #[test]
    fn a_panicking_handler_is_answered_500_and_the_server_goes_on() {
        let addr = start(Limits {
            workers: 1,
            ..Limits::default()
        });
        let (status, body) = request(&addr, "GET", "/?panic", &[], None).expect("an answer");
        assert_eq!(status, 500);
        assert!(body.contains("InternalError"), "{body}");
        // The one worker survived.
        let (status, body) = request(&addr, "GET", "/?fine", &[], None).expect("an answer");
        assert_eq!((status, body.as_str()), (200, "{\"q\":\"fine\"}"));
    }

    #[test]
    fn a_slow_client_is_cut_off_and_a_full_queue_is_answered_503() {
        let addr = start(Limits {
            workers: 1,
            queue: 1,
            read_timeout: Duration::from_millis(200),
            request_deadline: Duration::from_millis(600),
            ..Limits::default()
        });
        // A byte every 150 ms never trips the read timeout, but the deadline ends it.
        let mut slow = TcpStream::connect(&addr).expect("connects");
        let start = Instant::now();
        let mut answer = Vec::new();
        for b in b"GET /?slow HTTP/1.1\r\n" {
            if slow.write_all(&[*b]).is_err() {
                break;
            }
            std::thread::sleep(Duration::from_millis(150));
            if start.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
        let _ = slow.read_to_end(&mut answer);
        let (status, body) = parse_response(&answer).expect("an HTTP answer");
        assert_eq!(status, 408, "{body}");
        assert!(start.elapsed() < Duration::from_secs(3));

        // One request in the worker, one in the queue: the third is turned away at once.
        let a = addr.clone();
        let busy = std::thread::spawn(move || request(&a, "GET", "/?sleep", &[], None));
        // Time for the worker to take it off the queue.
        std::thread::sleep(Duration::from_millis(500));
        let a = addr.clone();
        let queued = std::thread::spawn(move || request(&a, "GET", "/?queued", &[], None));
        std::thread::sleep(Duration::from_millis(500));
        let (status, body) = request(&addr, "GET", "/?third", &[], None).expect("an answer");
        assert_eq!(status, 503, "{body}");
        assert!(body.contains("ServiceUnavailable"));
        assert_eq!(busy.join().expect("joined").expect("answered").0, 200);
        assert_eq!(queued.join().expect("joined").expect("answered").0, 200);
    }
}
