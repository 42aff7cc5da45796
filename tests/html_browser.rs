//! The HTML reports of `replay --html` and `diff --html`, opened in a real browser: headless
//! Chromium driven over WebDriver (chromedriver), checking what a person sees: the counts, one
//! SVG node per entry, filters that change the rows shown, no error in the JavaScript console.
//!
//! With `DNATSIM_SCREENSHOT=1` the replay test also saves its screenshot as
//! `docs/img/report.png` (the README's picture); it always saves one under `target/`.

mod common;

use common::dnatsim;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One HTTP/1.1 request to chromedriver on localhost; the JSON body of its answer.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    // Read the headers, then exactly Content-Length bytes: chromedriver may keep the
    // connection open whatever the request says.
    let mut raw = Vec::new();
    let mut buf = [0u8; 65536];
    let body = loop {
        let got = s.read(&mut buf).map_err(|e| e.to_string())?;
        if got == 0 {
            return Err(format!(
                "connection closed: {:?}",
                String::from_utf8_lossy(&raw)
            ));
        }
        raw.extend_from_slice(&buf[..got]);
        let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
            continue;
        };
        let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .ok_or_else(|| format!("no content-length in {head:?}"))?;
        while raw.len() < end + 4 + len {
            let got = s.read(&mut buf).map_err(|e| e.to_string())?;
            if got == 0 {
                return Err("connection closed mid-body".to_string());
            }
            raw.extend_from_slice(&buf[..got]);
        }
        break String::from_utf8_lossy(&raw[end + 4..end + 4 + len]).into_owned();
    };
    let body = body.as_str();
    serde_json::from_str(body).map_err(|e| format!("{e}: {body}"))
}

/// chromedriver and one browser session, ended on drop.
struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile; `None` (after
    /// `skip_or_fail`) when they are not installed.
    fn start() -> Option<Browser> {
        let (chromium, driver) = ("/usr/bin/chromium", "chromedriver");
        if !Path::new(chromium).exists() || !common::have_tool(driver) {
            common::skip_or_fail(
                "chromium and chromedriver (Debian: apt-get install chromium chromium-driver)",
            );
            return None;
        }
        // A free port: bind, note it, release it for chromedriver.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = tempfile::tempdir().unwrap();
        let mut b = Browser {
            driver: child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let status = http(port, "GET", "/status", None);
            if let Ok(v) = &status
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver never became ready: {status:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:loggingPrefs": {"browser": "ALL"},
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--window-size=1280,1600",
                    format!("--user-data-dir={}", b._profile.path().display()),
                ]
            }
        }}});
        let v = http(port, "POST", "/session", Some(&caps)).expect("a session");
        b.session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Some(b)
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let full = format!("/session/{}{path}", self.session);
        let v = http(self.port, method, &full, body.as_ref()).unwrap();
        assert!(v["value"]["error"].is_null(), "{method} {path}: {v}");
        v["value"].clone()
    }

    fn open(&self, file: &Path) {
        let url = format!("file://{}", file.canonicalize().unwrap().display());
        self.cmd("POST", "/url", Some(json!({"url": url})));
    }

    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    /// A WebDriver element reference for a CSS selector.
    fn find(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        );
        v.as_object()
            .and_then(|o| o.values().next())
            .and_then(|x| x.as_str())
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    fn click(&self, css: &str) {
        let id = self.find(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css);
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({"text": text})),
        );
    }

    /// Rows of a table that a person sees (rendered, not hidden by a filter).
    fn visible_rows(&self, table: &str) -> u64 {
        self.js(&format!(
            "return Array.from(document.querySelectorAll('#{table} tbody tr')).filter(r => r.offsetParent !== null).length;"
        ))
        .as_u64()
        .unwrap()
    }

    /// Console messages at level SEVERE (JavaScript errors, failed loads).
    fn console_errors(&self) -> Vec<Value> {
        let v = self.cmd("POST", "/se/log", Some(json!({"type": "browser"})));
        v.as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|m| m["level"] == "SEVERE")
            .collect()
    }

    fn screenshot(&self) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", None);
        base64(v.as_str().expect("base64 PNG"))
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshot), padding and line breaks ignored.
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in s.bytes().filter_map(val) {
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn target_dir() -> PathBuf {
    let d = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/html-report");
    std::fs::create_dir_all(&d).unwrap();
    d
}

#[test]
fn base64_decodes() {
    assert_eq!(base64("aGVsbG8="), b"hello");
    assert_eq!(base64("iVBORw0KGgo="), b"\x89PNG\r\n\x1a\n");
}

#[test]
fn replay_report_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("report.html");
    let json = dir.path().join("report.json");
    let out = dnatsim(&[
        "replay",
        "pcaps/seed/capture.pcap",
        "-r",
        "pcaps/seed/rules.toml",
        "-q",
        "--html",
        html.to_str().unwrap(),
        "--html-packets",
        "500",
        "--report",
        json.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let text = std::fs::read_to_string(&html).unwrap();
    // Self-contained: nothing to fetch (the SVG namespace is a name, not a request).
    for bad in ["<link", "src=\"http", "href=\"http", "@import", "url(http"] {
        assert!(
            !text.contains(bad),
            "the report refers outside itself: {bad}"
        );
    }
    assert!(
        text.contains("left out"),
        "the cap on the packet table is stated"
    );
    let Some(b) = Browser::start() else { return };
    b.open(&html);
    // The counts a person reads are the run's.
    let seen = |id: &str| {
        b.js(&format!(
            "return document.getElementById('{id}').textContent;"
        ))
        .as_str()
        .unwrap()
        .replace(',', "")
        .parse::<u64>()
        .unwrap()
    };
    assert_eq!(
        seen("count-packets-in"),
        report["packets_in"].as_u64().unwrap()
    );
    assert_eq!(
        seen("count-packets-out"),
        report["packets_out"].as_u64().unwrap()
    );
    assert_eq!(
        seen("count-dropped-no_rule"),
        report["dropped"]["no_rule"].as_u64().unwrap()
    );
    // One node per entry in the picture, with each entry's id, and the unused EIP marked.
    let entries = report["entries"].as_array().unwrap();
    let ids = b.js("return Array.from(document.querySelectorAll('svg#gateway g.entry-node')).map(g => g.getAttribute('data-entry'));");
    let want: Vec<Value> = entries.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(ids.as_array().unwrap(), &want);
    let unused = b.js("return Array.from(document.querySelectorAll('svg#gateway g.eip-node.unused')).map(g => g.getAttribute('data-eip'));");
    assert_eq!(unused, json!(["203.0.113.58"]));
    assert!(b.js("return document.querySelectorAll('#bandwidth-plot svg').length;") == json!(1));
    // Filters change the rows shown.
    let all = b.visible_rows("packets");
    assert_eq!(all, 500);
    b.click("#packets-verdict option[value='dropped: no_rule']");
    let no_rule = b.visible_rows("packets");
    let want_rows = b.js("return Array.from(document.querySelectorAll('#packets tbody tr')).filter(r => r.cells[5].textContent === 'dropped: no_rule').length;");
    assert_eq!(json!(no_rule), want_rows);
    assert!(no_rule > 0 && no_rule < all, "{no_rule} of {all}");
    assert_eq!(
        b.js("return document.getElementById('packets-count').textContent;"),
        json!(no_rule.to_string())
    );
    b.click("#packets-verdict option[value='']");
    b.click("#packets-entry option[value='fwd-11cdhpjlk']");
    let one_entry = b.visible_rows("packets");
    assert!(one_entry > 0 && one_entry < all);
    b.click("#packets-entry option[value='']");
    b.type_into("#packets-search", "203.0.113.58");
    let searched = b.visible_rows("packets");
    assert!(searched > 0 && searched < all, "{searched}");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    // The screenshot, from the top of the page, unfiltered.
    b.open(&html);
    let png = b.screenshot();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    std::fs::write(target_dir().join("report.png"), &png).unwrap();
    if std::env::var_os("DNATSIM_SCREENSHOT").is_some_and(|v| v == "1") {
        let dest = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/img/report.png");
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, &png).unwrap();
    }
}

#[test]
fn diff_report_in_a_browser() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("diff.html");
    let json = dir.path().join("diff.json");
    let out = dnatsim(&[
        "diff",
        "-q",
        "-r",
        "pcaps/seed/rules.toml",
        "-r",
        "pcaps/seed/edits/all.toml",
        "pcaps/seed/capture.pcap",
        "--html",
        html.to_str().unwrap(),
        "--report",
        json.to_str().unwrap(),
    ]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let Some(b) = Browser::start() else { return };
    b.open(&html);
    let flows = d["traffic"]["changed"].as_array().unwrap().len() as u64;
    assert_eq!(b.visible_rows("flows"), flows);
    assert_eq!(
        b.js("return document.getElementById('changed-packets').textContent;"),
        json!(
            d["traffic"]["changed_packets"]
                .as_u64()
                .unwrap()
                .to_string()
        )
    );
    b.click("#flows-kind option[value='newly allowed']");
    let allowed = d["traffic"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "newly_allowed")
        .count() as u64;
    assert!(allowed > 0 && allowed < flows);
    assert_eq!(b.visible_rows("flows"), allowed);
    // Both outcomes side by side: the old and the new fate of the first changed packet.
    let cells = b.js("var r = Array.from(document.querySelectorAll('#flows tbody tr')).find(r => r.offsetParent !== null); return [r.cells[4].textContent, r.cells[5].textContent];");
    assert!(
        cells[0].as_str().unwrap().contains("dropped: no_rule"),
        "{cells}"
    );
    assert!(cells[1].as_str().unwrap().contains("fwd-ip5web"), "{cells}");
    let errors = b.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
}

#[test]
fn hostile_names_are_escaped() {
    // An id and a gateway name full of markup reach the page as text, not as elements.
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("r.toml");
    std::fs::write(
        &rules,
        "[gateway]\nname = \"<b>gw</b>\"\nprofile = \"permissive\"\n[bandwidth_package]\nbandwidth_mbps = 10\npublic_ips = [\"203.0.113.79\"]\n[[forward_entry]]\nid = \"<img src=x onerror=alert(1)>\"\nexternal_ip = \"203.0.113.79\"\nexternal_port = 443\nip_protocol = \"tcp\"\ninternal_ip = \"192.168.1.4\"\ninternal_port = 443\n",
    )
    .unwrap();
    let html = dir.path().join("x.html");
    let out = dnatsim(&[
        "replay",
        "pcaps/seed/capture.pcap",
        "-r",
        rules.to_str().unwrap(),
        "-q",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(
        !text.contains("<img"),
        "markup from the rules file reached the page"
    );
    assert!(text.contains("&lt;img src=x onerror=alert(1)&gt;"));
    let Some(b) = Browser::start() else { return };
    b.open(&html);
    assert_eq!(
        b.js("return document.querySelectorAll('img').length;"),
        json!(0)
    );
    let id = b.js(
        "return document.querySelector('svg#gateway g.entry-node').getAttribute('data-entry');",
    );
    assert_eq!(id, json!("<img src=x onerror=alert(1)>"));
    assert!(b.console_errors().is_empty());
}

#[test]
fn the_console_check_sees_a_script_error() {
    // The check the report tests rely on must be able to fail: a page with a broken script.
    let dir = tempfile::tempdir().unwrap();
    let page = dir.path().join("broken.html");
    std::fs::write(
        &page,
        "<!DOCTYPE html><html><body><script>noSuchFunction();</script></body></html>",
    )
    .unwrap();
    let Some(b) = Browser::start() else { return };
    b.open(&page);
    let errors = b.console_errors();
    assert!(
        errors.iter().any(|e| e["message"]
            .as_str()
            .unwrap_or("")
            .contains("noSuchFunction")),
        "{errors:#?}"
    );
}
