//! Import of the cloud API's JSON responses (`DescribeForwardTableEntries`,
//! `DescribeBandwidthPackages`, `DescribeNatGateways`) into [`Rules`].
//!
//! Each input is recognised by its top-level key, so the files can come in any order and
//! the forward table may be split over several pages. Values are read as the API writes
//! them ("any", "Any", "TCP", "80", "203.0.113.79 " with a stray space) and the result is
//! validated under the `alibaba` profile, since it came from the cloud.
//!
//! Entries come out in the tutorial's table order: by the external IP's place in the bandwidth
//! package, then by external port (IP mappings first), then protocol; the API's own order is a hash order.

use serde_json::Value;

use super::diag::{Diagnostics, Loc, RulesError};
use super::model::{Position, Profile, Rules};
use super::validate::{Draft, DraftEntry, Located, validate};
use super::values;

/// Reads the API responses `(file name, JSON text)` and builds validated rules (profile `alibaba`).
///
/// Needs one `DescribeForwardTableEntries` (or several pages) and one `DescribeBandwidthPackages`;
/// `DescribeNatGateways` is optional and supplies the gateway name.
pub fn import_api_json(inputs: &[(String, String)]) -> Result<Rules, RulesError> {
    let names: Vec<&str> = inputs.iter().map(|(n, _)| n.as_str()).collect();
    let all = names.join(", ");
    let mut diags = Diagnostics::new(&all, "");
    let mut draft = Draft {
        inbound: true,
        outbound: true,
        profile: Profile::Alibaba,
        ..Draft::default()
    };
    let mut seen = Seen::default();
    for (file, text) in inputs {
        read_response(file, text, &mut seen, &mut draft, &mut diags);
    }
    check_required(&seen, &mut draft, &mut diags);
    sort_table_order(&mut draft);

    let rules = validate(&draft, &mut diags);
    diags.sort();
    match rules {
        Some(r) if diags.errors.is_empty() => Ok(r),
        _ => Err(RulesError::Invalid {
            file: all.clone(),
            errors: diags.errors,
            warnings: diags.warnings,
        }),
    }
}

/// Which responses the inputs read so far held.
#[derive(Default)]
struct Seen {
    entries: bool,
    package: bool,
    /// Where the `DescribeNatGateways` response was, once there was one.
    gateway_from: Option<Loc>,
}

/// Reads one input into the draft, by the response its top-level key names.
fn read_response(
    file: &str,
    text: &str,
    seen: &mut Seen,
    draft: &mut Draft,
    diags: &mut Diagnostics<'_>,
) {
    let root: Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            diags.error(
                "json-syntax",
                &json_loc(file, "$"),
                format!(
                    "JSON syntax error at line {}, column {}: {e}",
                    e.line(),
                    e.column()
                ),
            );
            return;
        }
    };
    let mut known = false;
    if let Some(v) = root.get("ForwardTableEntries") {
        known = true;
        seen.entries = true;
        read_entries(file, v, draft, diags);
    }
    if let Some(v) = root.get("BandwidthPackages") {
        known = true;
        if seen.package {
            diags.error(
                "json-shape",
                &json_loc(file, "BandwidthPackages"),
                "a second DescribeBandwidthPackages response; the gateway must have exactly one package",
            );
        } else {
            seen.package = true;
            read_package(file, v, draft, diags);
        }
    }
    if let Some(v) = root.get("NatGateways") {
        known = true;
        if let Some(first) = &seen.gateway_from {
            let other = diags.line_of(first);
            diags.error(
                "json-shape",
                &json_loc(file, "NatGateways"),
                format!("a second DescribeNatGateways response (the first is {other})"),
            );
        } else {
            seen.gateway_from = Some(json_loc(file, "NatGateways"));
            read_gateway(file, v, draft, diags);
        }
    }
    if !known {
        diags.error(
            "json-shape",
            &json_loc(file, "$"),
            "not a DescribeForwardTableEntries, DescribeBandwidthPackages or DescribeNatGateways response (no ForwardTableEntries, BandwidthPackages or NatGateways key)",
        );
    }
}

/// The responses every import needs: the forward table and the bandwidth package.
fn check_required(seen: &Seen, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    if !seen.entries {
        diags.error(
            "json-missing",
            &Loc::None,
            "no DescribeForwardTableEntries response among the inputs",
        );
    }
    if !seen.package {
        draft.broken = true;
        diags.error(
            "json-missing",
            &Loc::None,
            "no DescribeBandwidthPackages response among the inputs (it gives the bandwidth and the EIPs)",
        );
    }
}

/// Puts the entries in table order (see the module doc); the sort is stable, so ties keep the
/// API's order.
fn sort_table_order(draft: &mut Draft) {
    let rank = |e: &DraftEntry| {
        let ip = e.external_ip.as_ref().map(|l| l.v);
        let idx = draft
            .public_ips
            .iter()
            .position(|p| Some(p.v) == ip)
            .unwrap_or(usize::MAX);
        let port = e.external_port.as_ref().map(|l| l.v.bounds());
        let any_first = e
            .external_port
            .as_ref()
            .map(|l| l.v != super::model::PortSpec::Any);
        (
            idx,
            ip,
            any_first,
            port,
            e.ip_protocol.as_ref().map(|l| l.v),
        )
    };
    let mut entries = std::mem::take(&mut draft.entries);
    entries.sort_by_cached_key(rank);
    draft.entries = entries;
}

fn json_loc(file: &str, path: &str) -> Loc {
    Loc::Json {
        file: file.to_string(),
        path: path.to_string(),
    }
}

/// The array at `outer.inner`, reporting a wrong shape.
fn list<'v>(
    file: &str,
    v: &'v Value,
    outer: &str,
    inner: &str,
    diags: &mut Diagnostics<'_>,
) -> &'v [Value] {
    match v.get(inner) {
        Some(Value::Array(a)) => a,
        // The API writes an empty list as an empty object on some versions.
        None => &[],
        Some(_) => {
            diags.error(
                "json-shape",
                &json_loc(file, &format!("{outer}.{inner}")),
                format!("{outer}.{inner} must be an array"),
            );
            &[]
        }
    }
}

/// A field as text: the API writes strings, but a number is accepted too.
fn text_field(
    file: &str,
    obj: &Value,
    path: &str,
    key: &str,
    required: bool,
    diags: &mut Diagnostics<'_>,
) -> Option<(String, Loc)> {
    let loc = json_loc(file, &format!("{path}.{key}"));
    match obj.get(key) {
        Some(Value::String(s)) => Some((s.clone(), loc)),
        Some(Value::Number(n)) => Some((n.to_string(), loc)),
        Some(other) => {
            diags.error(
                "json-type",
                &loc,
                format!("{key} must be a string, not {other}"),
            );
            None
        }
        None => {
            if required {
                diags.error(
                    "json-missing",
                    &json_loc(file, path),
                    format!("{path} has no {key}"),
                );
            }
            None
        }
    }
}

fn parsed<T>(
    got: Option<(String, Loc)>,
    rule: &'static str,
    parse: impl Fn(&str) -> Result<T, String>,
    diags: &mut Diagnostics<'_>,
) -> Option<Located<T>> {
    let (s, loc) = got?;
    match parse(&s) {
        Ok(v) => Some(Located::new(v, loc)),
        Err(msg) => {
            diags.error(rule, &loc, msg);
            None
        }
    }
}

fn read_entries(file: &str, v: &Value, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let outer = "ForwardTableEntries";
    for (i, e) in list(file, v, outer, "ForwardTableEntry", diags)
        .iter()
        .enumerate()
    {
        let path = format!("{outer}.ForwardTableEntry[{i}]");
        let header = json_loc(file, &path);
        if !e.is_object() {
            diags.error("json-type", &header, format!("{path} must be an object"));
            continue;
        }
        let mut d = DraftEntry::new(header, Position::default());
        let f = |k: &str, diags: &mut Diagnostics<'_>| text_field(file, e, &path, k, true, diags);
        d.id = f("ForwardEntryId", diags).and_then(|(s, loc)| {
            let s = s.trim().to_string();
            (!s.is_empty()).then(|| Located::new(s, loc))
        });
        d.external_ip = parsed(
            f("ExternalIp", diags),
            "invalid-ip",
            |s| values::ipv4(s, "ExternalIp"),
            diags,
        );
        d.external_port = parsed(
            f("ExternalPort", diags),
            "invalid-port",
            values::port_str,
            diags,
        );
        d.ip_protocol = parsed(
            f("IpProtocol", diags),
            "unknown-value",
            values::protocol,
            diags,
        );
        d.internal_ip = parsed(
            f("InternalIp", diags),
            "invalid-ip",
            |s| values::ipv4(s, "InternalIp"),
            diags,
        );
        d.internal_port = parsed(
            f("InternalPort", diags),
            "invalid-port",
            values::port_str,
            diags,
        );
        draft.entries.push(d);
    }
}

fn read_package(file: &str, v: &Value, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let outer = "BandwidthPackages";
    let packages = list(file, v, outer, "BandwidthPackage", diags);
    let [p] = packages else {
        draft.broken = true;
        diags.error(
            "json-shape",
            &json_loc(file, &format!("{outer}.BandwidthPackage")),
            format!(
                "expected exactly one bandwidth package, found {}",
                packages.len()
            ),
        );
        return;
    };
    let path = format!("{outer}.BandwidthPackage[0]");
    draft.rate_bps = parsed(
        text_field(file, p, &path, "Bandwidth", true, diags),
        "bandwidth",
        values::mbps_str,
        diags,
    );
    if draft.rate_bps.is_none() {
        draft.broken = true;
    }
    let ips_path = format!("{path}.PublicIpAddresses");
    let Some(ips) = p.get("PublicIpAddresses") else {
        diags.error(
            "json-missing",
            &json_loc(file, &path),
            format!("{path} has no PublicIpAddresses"),
        );
        return;
    };
    for (i, ip) in list(file, ips, &ips_path, "PublicIpAddresse", diags)
        .iter()
        .enumerate()
    {
        let ip_path = format!("{ips_path}.PublicIpAddresse[{i}]");
        if let Some(l) = parsed(
            text_field(file, ip, &ip_path, "IpAddress", true, diags),
            "invalid-ip",
            |s| values::ipv4(s, "IpAddress"),
            diags,
        ) {
            draft.public_ips.push(l);
        }
    }
}

fn read_gateway(file: &str, v: &Value, draft: &mut Draft, diags: &mut Diagnostics<'_>) {
    let outer = "NatGateways";
    let gateways = list(file, v, outer, "NatGateway", diags);
    match gateways {
        [] => {}
        [g] => {
            let path = format!("{outer}.NatGateway[0]");
            draft.name = text_field(file, g, &path, "Name", false, diags).map(|(s, _)| s);
        }
        _ => diags.error(
            "json-shape",
            &json_loc(file, &format!("{outer}.NatGateway")),
            format!(
                "expected one NAT gateway, found {}; pass the response for the one gateway to simulate",
                gateways.len()
            ),
        ),
    }
}
