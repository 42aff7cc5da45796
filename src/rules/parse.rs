//! The TOML front end: walks a span-carrying `toml_edit` document by hand so that every
//! problem is reported (not just the first) with its line and column.

use std::collections::HashMap;
use std::path::Path;

use toml_edit::{Item, TableLike, Value};

use super::diag::{Diagnostic, Diagnostics, Loc, RulesError, did_you_mean};
use super::model::{Position, Rules};
use super::validate::{Draft, DraftEntry, Located, validate};
use super::values;

/// A successfully parsed and validated rules file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed {
    /// The validated rules.
    pub rules: Rules,
    /// Things that look unintended but are allowed (e.g. an EIP without an entry).
    pub warnings: Vec<Diagnostic>,
}

/// Reads and parses a rules file; the file name in diagnostics is the path as given.
pub fn parse_file(path: &Path) -> Result<Parsed, RulesError> {
    let read_error = |source| RulesError::Read {
        path: path.display().to_string(),
        source,
    };
    let bytes = std::fs::read(path).map_err(read_error)?;
    if let Some(format) = capture_format(&bytes) {
        return Err(RulesError::Capture {
            path: path.display().to_string(),
            format,
        });
    }
    let text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text (invalid byte at offset {at})"),
        ))
    })?;
    parse_str(&text, &path.display().to_string())
}

/// "pcap" or "pcapng" when `bytes` start like a capture: a pcap magic number (either byte
/// order, microsecond or nanosecond), which is not UTF-8 so no rules text has it; or a pcapng
/// section header, whose type "\n\r\r\n" is text, so its byte-order magic is checked too.
fn capture_format(bytes: &[u8]) -> Option<&'static str> {
    match bytes.get(..4)? {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0xa1, 0xb2, 0xc3, 0xd4] => Some("pcap"),
        [0x4d, 0x3c, 0xb2, 0xa1] | [0xa1, 0xb2, 0x3c, 0x4d] => Some("pcap"),
        [0x0a, 0x0d, 0x0d, 0x0a] => match bytes.get(8..12)? {
            [0x4d, 0x3c, 0x2b, 0x1a] | [0x1a, 0x2b, 0x3c, 0x4d] => Some("pcapng"),
            _ => None,
        },
        _ => None,
    }
}

/// Parses and validates rules text; `file` names the source in diagnostics.
pub fn parse_str(text: &str, file: &str) -> Result<Parsed, RulesError> {
    let mut diags = Diagnostics::new(file, text);
    let draft = match toml_edit::Document::parse(text) {
        Ok(doc) => read_document(doc.as_table(), &mut diags),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            let msg = e.message().trim().replace('\n', "; ");
            diags.error(
                "syntax",
                &Loc::Span(span),
                format!("TOML syntax error: {msg}"),
            );
            None
        }
    };
    let rules = draft.and_then(|d| validate(&d, &mut diags));
    diags.sort();
    match rules {
        Some(rules) if diags.errors.is_empty() => Ok(Parsed {
            rules,
            warnings: diags.warnings,
        }),
        _ => Err(RulesError::Invalid {
            file: file.to_string(),
            errors: diags.errors,
            warnings: diags.warnings,
        }),
    }
}

/// A key's canonical name and the API spellings accepted for it.
type Schema = &'static [(&'static str, &'static [&'static str])];

const TOP: Schema = &[
    ("gateway", &["NatGateway"]),
    ("bandwidth_package", &["BandwidthPackage"]),
    ("forward_entry", &["ForwardTableEntry", "ForwardEntry"]),
];
const GATEWAY: Schema = &[("name", &["Name"]), ("profile", &[]), ("private_ip", &[])];
const PACKAGE: Schema = &[
    ("bandwidth_mbps", &["Bandwidth"]),
    ("public_ips", &["PublicIpAddresses"]),
    ("burst_bytes", &[]),
    ("mode", &[]),
    ("queue_limit_bytes", &[]),
    ("latency_ms", &[]),
    ("directions", &[]),
    ("count", &[]),
];
const ENTRY: Schema = &[
    ("id", &["ForwardEntryId"]),
    ("external_ip", &["ExternalIp"]),
    ("external_port", &["ExternalPort"]),
    ("ip_protocol", &["IpProtocol"]),
    ("internal_ip", &["InternalIp"]),
    ("internal_port", &["InternalPort"]),
];
/// API output fields that mean nothing here but may be pasted along with an entry.
const ENTRY_IGNORED: &[&str] = &["ForwardTableId", "Status"];

/// A key found in a table: its value and where the key and the value stand.
struct Got<'d> {
    key: &'d str,
    item: &'d Item,
    loc: Loc,
}

fn span_loc(span: Option<std::ops::Range<usize>>) -> Loc {
    span.map_or(Loc::None, Loc::Span)
}

/// Collects the known keys of a table, reporting unknown keys and a key given under two spellings.
fn collect<'d>(
    tbl: &'d dyn TableLike,
    section: &str,
    schema: Schema,
    ignored: &[&str],
    diags: &mut Diagnostics<'_>,
) -> HashMap<&'static str, Got<'d>> {
    let mut out: HashMap<&'static str, Got<'d>> = HashMap::new();
    for (key, item) in tbl.iter() {
        let key_loc = span_loc(tbl.key(key).and_then(|k| k.span()));
        let loc = match item.span() {
            Some(s) => Loc::Span(s),
            None => key_loc.clone(),
        };
        let canonical = schema
            .iter()
            .find(|(name, aliases)| *name == key || aliases.contains(&key))
            .map(|(name, _)| *name);
        match canonical {
            Some(name) => {
                if let Some(prev) = out.get(name) {
                    let other = diags.line_of(&prev.loc);
                    let prev_key = prev.key;
                    diags.error(
                        "duplicate-key",
                        &key_loc,
                        format!(
                            "`{key}` in {section} repeats `{prev_key}` ({other}); `{name}` may be given once"
                        ),
                    );
                } else {
                    out.insert(name, Got { key, item, loc });
                }
            }
            None if ignored.contains(&key) => {}
            None => {
                let mut candidates: Vec<&str> = Vec::new();
                for (name, aliases) in schema {
                    candidates.push(name);
                    candidates.extend(aliases.iter());
                }
                let hint = match did_you_mean(key, &candidates) {
                    Some(s) => format!("; did you mean `{s}`?"),
                    None => {
                        let names: Vec<&str> = schema.iter().map(|(n, _)| *n).collect();
                        format!("; expected one of: {}", names.join(", "))
                    }
                };
                diags.error(
                    "unknown-key",
                    &key_loc,
                    format!("unknown key `{key}` in {section}{hint}"),
                );
            }
        }
    }
    out
}

fn item_kind(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::Value(v) => match v {
            Value::String(_) => "a string",
            Value::Integer(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Boolean(_) => "a boolean",
            Value::Datetime(_) => "a date-time",
            Value::Array(_) => "an array",
            Value::InlineTable(_) => "an inline table",
        },
    }
}

fn want_str<'d>(got: &Got<'d>, diags: &mut Diagnostics<'_>) -> Option<&'d str> {
    let s = got.item.as_str();
    if s.is_none() {
        diags.error(
            "type",
            &got.loc,
            format!(
                "`{}` must be a string, not {}",
                got.key,
                item_kind(got.item)
            ),
        );
    }
    s
}

/// A string parsed by `parse`, with errors reported at the value.
fn str_value<T>(
    got: &Got<'_>,
    rule: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
    diags: &mut Diagnostics<'_>,
) -> Option<Located<T>> {
    let s = want_str(got, diags)?;
    match parse(s) {
        Ok(v) => Some(Located::new(v, got.loc.clone())),
        Err(msg) => {
            diags.error(rule, &got.loc, msg);
            None
        }
    }
}

fn positive_int(got: &Got<'_>, diags: &mut Diagnostics<'_>) -> Option<Located<u64>> {
    match got.item.as_integer() {
        Some(n) if n > 0 => u64::try_from(n)
            .ok()
            .map(|v| Located::new(v, got.loc.clone())),
        Some(n) => {
            diags.error(
                "not-positive",
                &got.loc,
                format!("`{}` must be greater than 0, not {n}", got.key),
            );
            None
        }
        None => {
            diags.error(
                "type",
                &got.loc,
                format!(
                    "`{}` must be an integer, not {}",
                    got.key,
                    item_kind(got.item)
                ),
            );
            None
        }
    }
}

fn read_document(root: &toml_edit::Table, diags: &mut Diagnostics<'_>) -> Option<Draft> {
    let top = collect(root, "the rules file", TOP, &[], diags);
    let mut draft = Draft {
        inbound: true,
        outbound: true,
        ..Draft::default()
    };

    if let Some(got) = top.get("gateway") {
        match got.item.as_table_like() {
            Some(t) => read_gateway(t, &mut draft, diags),
            None => diags.error(
                "type",
                &got.loc,
                format!(
                    "`{}` must be a table ([gateway]), not {}",
                    got.key,
                    item_kind(got.item)
                ),
            ),
        }
    }

    match top.get("bandwidth_package") {
        Some(got) => match got.item.as_table_like() {
            Some(t) => read_package(t, &got.loc, &mut draft, diags),
            None => {
                draft.broken = true;
                diags.error(
                    "type",
                    &got.loc,
                    format!(
                        "`{}` must be a table ([bandwidth_package]), not {}",
                        got.key,
                        item_kind(got.item)
                    ),
                );
            }
        },
        None => {
            draft.broken = true;
            diags.error(
                "missing-key",
                &Loc::None,
                "the rules file has no [bandwidth_package] (bandwidth_mbps and public_ips are required)",
            );
        }
    }

    if let Some(got) = top.get("forward_entry") {
        read_entries(got, &mut draft, diags);
    }
    Some(draft)
}

fn read_gateway(t: &dyn TableLike, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let f = collect(t, "[gateway]", GATEWAY, &[], diags);
    if let Some(got) = f.get("name") {
        draft.name = want_str(got, diags).map(str::to_string);
    }
    if let Some(got) = f.get("profile")
        && let Some(p) = str_value(got, "unknown-value", values::profile, diags)
    {
        draft.profile = p.v;
    }
    if let Some(got) = f.get("private_ip")
        && let Some(ip) = str_value(got, "invalid-ip", |s| values::ipv4(s, "private IP"), diags)
    {
        draft.private_ip = Some(ip.v);
    }
}

fn read_package(t: &dyn TableLike, header: &Loc, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let f = collect(t, "[bandwidth_package]", PACKAGE, &[], diags);

    match f.get("bandwidth_mbps") {
        Some(got) => {
            let r = match got.item.as_value() {
                Some(Value::Integer(n)) => Some(values::mbps_int(*n.value())),
                Some(Value::Float(x)) => Some(values::mbps_float(*x.value())),
                Some(Value::String(s)) => Some(values::mbps_str(s.value())),
                _ => None,
            };
            match r {
                Some(Ok(bps)) => draft.rate_bps = Some(Located::new(bps, got.loc.clone())),
                Some(Err(msg)) => diags.error("bandwidth", &got.loc, msg),
                None => diags.error(
                    "type",
                    &got.loc,
                    format!(
                        "`{}` must be a number of Mbps, not {}",
                        got.key,
                        item_kind(got.item)
                    ),
                ),
            }
        }
        None => diags.error(
            "missing-key",
            header,
            "[bandwidth_package] is missing `bandwidth_mbps` (the shared rate in Mbps)",
        ),
    }
    if draft.rate_bps.is_none() {
        draft.broken = true;
    }

    match f.get("public_ips") {
        Some(got) => match got.item.as_array() {
            Some(arr) => {
                if arr.is_empty() {
                    diags.error(
                        "no-public-ips",
                        &got.loc,
                        "`public_ips` is empty; the package needs at least one EIP",
                    );
                }
                for v in arr.iter() {
                    let loc = span_loc(v.span().or_else(|| got.item.span()));
                    match v.as_str() {
                        Some(s) => match values::ipv4(s, "public IP") {
                            Ok(ip) => draft.public_ips.push(Located::new(ip, loc)),
                            Err(msg) => diags.error("invalid-ip", &loc, msg),
                        },
                        None => diags.error(
                            "type",
                            &loc,
                            "each entry of `public_ips` must be a string such as \"203.0.113.107\"",
                        ),
                    }
                }
            }
            None => diags.error(
                "type",
                &got.loc,
                format!(
                    "`{}` must be an array of IP strings, not {}",
                    got.key,
                    item_kind(got.item)
                ),
            ),
        },
        None => diags.error(
            "missing-key",
            header,
            "[bandwidth_package] is missing `public_ips` (the package's EIPs)",
        ),
    }

    if let Some(got) = f.get("burst_bytes") {
        draft.burst_bytes = positive_int(got, diags);
    }
    if let Some(got) = f.get("queue_limit_bytes") {
        draft.queue_limit_bytes = positive_int(got, diags);
    }
    if let Some(got) = f.get("latency_ms") {
        draft.latency_ms = positive_int(got, diags);
    }
    if let Some(got) = f.get("mode")
        && let Some(m) = str_value(got, "unknown-value", values::mode, diags)
    {
        draft.mode = m.v;
    }
    if let Some(got) = f.get("count")
        && let Some(c) = str_value(got, "unknown-value", values::count, diags)
    {
        draft.count = c.v;
    }
    if let Some(got) = f.get("directions") {
        read_directions(got, draft, diags);
    }
}

fn read_directions(got: &Got<'_>, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let Some(arr) = got.item.as_array() else {
        diags.error(
            "type",
            &got.loc,
            format!(
                "`directions` must be an array such as [\"inbound\", \"outbound\"], not {}",
                item_kind(got.item)
            ),
        );
        return;
    };
    if arr.is_empty() {
        diags.error(
            "no-directions",
            &got.loc,
            "`directions` is empty; list \"inbound\", \"outbound\" or both (or leave it out for both)",
        );
        return;
    }
    let (mut inbound, mut outbound) = (false, false);
    for v in arr.iter() {
        let loc = span_loc(v.span().or_else(|| got.item.span()));
        let flag = match v.as_str().map(|s| s.trim().to_ascii_lowercase()).as_deref() {
            Some("inbound") => &mut inbound,
            Some("outbound") => &mut outbound,
            _ => {
                diags.error(
                    "unknown-value",
                    &loc,
                    format!(
                        "unknown direction {v}; expected \"inbound\" or \"outbound\"",
                        v = v.to_string().trim()
                    ),
                );
                continue;
            }
        };
        if *flag {
            diags.error(
                "duplicate-direction",
                &loc,
                "direction listed twice in `directions`",
            );
        }
        *flag = true;
    }
    draft.inbound = inbound;
    draft.outbound = outbound;
}

fn read_entries(got: &Got<'_>, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let tables: Vec<(&dyn TableLike, Option<std::ops::Range<usize>>)> = match got.item {
        Item::ArrayOfTables(a) => a.iter().map(|t| (t as &dyn TableLike, t.span())).collect(),
        Item::Value(Value::Array(a)) => {
            let mut v: Vec<(&dyn TableLike, Option<std::ops::Range<usize>>)> = Vec::new();
            for value in a.iter() {
                match value.as_inline_table() {
                    Some(t) => v.push((t as &dyn TableLike, t.span())),
                    None => diags.error(
                        "type",
                        &span_loc(value.span()),
                        "each forward entry must be a table such as { external_ip = \"...\", ... }",
                    ),
                }
            }
            v
        }
        other => {
            diags.error(
                "type",
                &got.loc,
                format!(
                    "`{}` must be an array of tables ([[forward_entry]]), not {}",
                    got.key,
                    item_kind(other)
                ),
            );
            return;
        }
    };
    for (t, span) in tables {
        let header = span_loc(span.clone());
        let (line, column) = span.map_or((0, 0), |s| diags.line_col(s.start));
        let mut e = DraftEntry::new(header.clone(), Position { line, column });
        let f = collect(t, "[[forward_entry]]", ENTRY, ENTRY_IGNORED, diags);
        if let Some(g) = f.get("id")
            && let Some(s) = want_str(g, diags)
        {
            let s = s.trim();
            if s.is_empty() {
                diags.error(
                    "empty-id",
                    &g.loc,
                    "forward entry `id` is empty; leave it out to derive one",
                );
            } else {
                e.id = Some(Located::new(s.to_string(), g.loc.clone()));
            }
        }
        for (key, what) in [
            ("external_ip", "external_ip"),
            ("internal_ip", "internal_ip"),
        ] {
            let v = match f.get(key) {
                Some(g) => str_value(g, "invalid-ip", |s| values::ipv4(s, what), diags),
                None => {
                    missing(&header, key, diags);
                    None
                }
            };
            if key == "external_ip" {
                e.external_ip = v;
            } else {
                e.internal_ip = v;
            }
        }
        for key in ["external_port", "internal_port"] {
            let v = match f.get(key) {
                Some(g) => port_value(g, diags),
                None => {
                    missing(&header, key, diags);
                    None
                }
            };
            if key == "external_port" {
                e.external_port = v;
            } else {
                e.internal_port = v;
            }
        }
        e.ip_protocol = match f.get("ip_protocol") {
            Some(g) => str_value(g, "unknown-value", values::protocol, diags),
            None => {
                missing(&header, "ip_protocol", diags);
                None
            }
        };
        draft.entries.push(e);
    }
}

fn missing(header: &Loc, key: &str, diags: &mut Diagnostics<'_>) {
    diags.error(
        "missing-key",
        header,
        format!("[[forward_entry]] is missing `{key}`"),
    );
}

fn port_value(
    got: &Got<'_>,
    diags: &mut Diagnostics<'_>,
) -> Option<Located<super::model::PortSpec>> {
    let r = match got.item.as_value() {
        Some(Value::Integer(n)) => values::port_int(*n.value()).map(super::model::PortSpec::Single),
        Some(Value::String(s)) => values::port_str(s.value()),
        _ => {
            diags.error(
                "type",
                &got.loc,
                format!(
                    "`{}` must be a port (80 or \"80\"), a range (\"8000/8010\") or \"any\", not {}",
                    got.key,
                    item_kind(got.item)
                ),
            );
            return None;
        }
    };
    match r {
        Ok(p) => Some(Located::new(p, got.loc.clone())),
        Err(msg) => {
            diags.error("invalid-port", &got.loc, msg);
            None
        }
    }
}
