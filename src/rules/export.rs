//! Writers: a rules file (TOML), an nftables ruleset, the API's `DescribeForwardTableEntries` JSON
//! and Terraform for the Alibaba Cloud provider.

use std::fmt::Write as _;

use serde_json::json;

use super::model::*;

/// A TOML basic string with every character that needs it escaped.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A port in the rules file's preferred spelling: a bare integer for one port, a string otherwise.
fn toml_port(p: PortSpec) -> String {
    match p {
        PortSpec::Single(n) => n.to_string(),
        other => toml_str(&other.to_string()),
    }
}

/// `rate_bps` as Mbps, exactly: an integer when whole, else a decimal with up to 6 places.
fn mbps(rate_bps: u64) -> String {
    let (whole, frac) = (rate_bps / 1_000_000, rate_bps % 1_000_000);
    if frac == 0 {
        whole.to_string()
    } else {
        let f = format!("{frac:06}");
        format!("{whole}.{}", f.trim_end_matches('0'))
    }
}

/// Writes a rules file that parses back to `rules` (positions aside), entries in `rules`' order.
pub fn to_toml(rules: &Rules) -> String {
    let mut o = String::new();
    let bp = &rules.bandwidth_package;
    let _ = writeln!(o, "# dnatsim rules file (written by dnatsim)\n");
    let _ = writeln!(o, "[gateway]");
    let _ = writeln!(o, "name = {}", toml_str(&rules.gateway.name));
    let _ = writeln!(o, "profile = {}", toml_str(rules.gateway.profile.as_str()));
    if let Some(ip) = rules.gateway.private_ip {
        let _ = writeln!(o, "private_ip = {}", toml_str(&ip.to_string()));
    }
    let _ = writeln!(o, "\n[bandwidth_package]");
    let _ = writeln!(o, "bandwidth_mbps = {}", mbps(bp.rate_bps));
    let ips: Vec<String> = bp
        .public_ips
        .iter()
        .map(|ip| toml_str(&ip.to_string()))
        .collect();
    let _ = writeln!(o, "public_ips = [{}]", ips.join(", "));
    if let Some(b) = bp.burst_bytes {
        let _ = writeln!(o, "burst_bytes = {b}");
    }
    if bp.mode == LimitMode::Shape {
        let _ = writeln!(o, "mode = \"shape\"");
    }
    if let Some(q) = bp.queue_limit_bytes {
        let _ = writeln!(o, "queue_limit_bytes = {q}");
    }
    if let Some(l) = bp.latency_ms {
        let _ = writeln!(o, "latency_ms = {l}");
    }
    if !(bp.inbound && bp.outbound) {
        let mut d = Vec::new();
        if bp.inbound {
            d.push("\"inbound\"");
        }
        if bp.outbound {
            d.push("\"outbound\"");
        }
        let _ = writeln!(o, "directions = [{}]", d.join(", "));
    }
    if bp.count == CountMode::L2 {
        let _ = writeln!(o, "count = \"l2\"");
    }
    for e in &rules.forward_entries {
        let _ = writeln!(o, "\n[[forward_entry]]");
        let _ = writeln!(o, "id = {}", toml_str(&e.id));
        let _ = writeln!(o, "external_ip = \"{}\"", e.external_ip);
        let _ = writeln!(o, "external_port = {}", toml_port(e.external_port));
        let _ = writeln!(o, "ip_protocol = \"{}\"", e.ip_protocol);
        let _ = writeln!(o, "internal_ip = \"{}\"", e.internal_ip);
        let _ = writeln!(o, "internal_port = {}", toml_port(e.internal_port));
    }
    o
}

/// Writes the forward table as a `DescribeForwardTableEntries` response, entries in `rules`' order.
pub fn to_api_json(rules: &Rules) -> String {
    let entries: Vec<serde_json::Value> = rules
        .forward_entries
        .iter()
        .map(|e| {
            json!({
                "ExternalIp": e.external_ip.to_string(),
                "ExternalPort": e.external_port.to_string(),
                "ForwardEntryId": e.id,
                "InternalIp": e.internal_ip.to_string(),
                "InternalPort": e.internal_port.to_string(),
                "IpProtocol": e.ip_protocol.as_str(),
                "Status": "Available",
            })
        })
        .collect();
    let n = entries.len();
    let doc = json!({
        "ForwardTableEntries": { "ForwardTableEntry": entries },
        "PageNumber": 1,
        "PageSize": n,
        "TotalCount": n,
    });
    // Serializing a Value built from strings and numbers cannot fail.
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

/// Keeps only characters that are safe inside an nft comment string.
fn nft_comment(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || "-_.:/ ".contains(*c))
        .take(120)
        .collect()
}

/// Writes an nftables ruleset (`table ip dnatsim`) doing the same DNAT on Linux; load it with `nft -f`.
///
/// Port mappings come before protocol-wide and IP mappings, so the most specific entry wins
/// (nat statements end rule evaluation for the packet). A shifted port range is written as a
/// `dport map`, port by port, because a plain `dnat to ip:a-b` would pick ports from a pool instead
/// of keeping the offset. IP mappings also get an SNAT rule so the server's own traffic leaves
/// from its EIP, as a 1:1 NAT does.
///
/// Traffic to an EIP that matches no entry (an EIP without entries, an unmapped port of a
/// port-mapped EIP) is dropped, as dnatsim drops it (`no_rule`): a filter chain right after
/// dstnat drops what is still addressed to an EIP, since everything an entry or a tracked
/// connection matched has had its destination rewritten by then.
pub fn to_nft(rules: &Rules) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "#!/usr/sbin/nft -f");
    let _ = writeln!(
        o,
        "# DNAT of gateway \"{}\", written by dnatsim. Load with: nft -f FILE",
        nft_comment(&rules.gateway.name)
    );
    let _ = writeln!(o, "# Re-loading replaces the previous dnatsim table.");
    let _ = writeln!(o, "table ip dnatsim");
    let _ = writeln!(o, "delete table ip dnatsim");
    let _ = writeln!(o, "table ip dnatsim {{");
    let _ = writeln!(o, "\tchain prerouting {{");
    let _ = writeln!(
        o,
        "\t\ttype nat hook prerouting priority dstnat; policy accept;"
    );
    let ports = rules
        .forward_entries
        .iter()
        .filter(|e| e.ip_protocol != Protocol::Any && e.external_port != PortSpec::Any);
    for e in ports {
        let proto = e.ip_protocol.as_str();
        let (ea, eb) = e.external_port.bounds();
        let (ia, _) = e.internal_port.bounds();
        let dport = if ea == eb {
            ea.to_string()
        } else {
            format!("{ea}-{eb}")
        };
        let target = if ea == ia {
            // Same ports on both sides: DNAT the address and leave the port alone.
            format!("{}", e.internal_ip)
        } else if ea == eb {
            format!("{}:{}", e.internal_ip, ia)
        } else {
            let mut m = String::new();
            for (k, p) in (ea..=eb).enumerate() {
                if k > 0 {
                    m.push_str(if k % 8 == 0 { ",\n\t\t\t" } else { ", " });
                }
                let to = u32::from(ia) + u32::from(p - ea);
                let _ = write!(m, "{p} : {to}");
            }
            format!("{} : {proto} dport map {{ {m} }}", e.internal_ip)
        };
        let _ = writeln!(
            o,
            "\t\tip daddr {} {proto} dport {dport} dnat to {target} comment \"{}\"",
            e.external_ip,
            nft_comment(&e.id)
        );
    }
    for e in rules
        .forward_entries
        .iter()
        .filter(|e| e.ip_protocol != Protocol::Any && e.external_port == PortSpec::Any)
    {
        let _ = writeln!(
            o,
            "\t\tip daddr {} meta l4proto {} dnat to {} comment \"{}\"",
            e.external_ip,
            e.ip_protocol.as_str(),
            e.internal_ip,
            nft_comment(&e.id)
        );
    }
    let maps: Vec<&ForwardEntry> = rules
        .forward_entries
        .iter()
        .filter(|e| e.ip_protocol == Protocol::Any)
        .collect();
    for e in &maps {
        let _ = writeln!(
            o,
            "\t\tip daddr {} dnat to {} comment \"{}\"",
            e.external_ip,
            e.internal_ip,
            nft_comment(&e.id)
        );
    }
    let _ = writeln!(o, "\t}}");
    let eips: Vec<String> = rules
        .bandwidth_package
        .public_ips
        .iter()
        .map(|ip| ip.to_string())
        .collect();
    if !eips.is_empty() {
        let _ = writeln!(o, "\tchain unmatched {{");
        let _ = writeln!(
            o,
            "\t\ttype filter hook prerouting priority dstnat + 10; policy accept;"
        );
        let _ = writeln!(
            o,
            "\t\tip daddr {{ {} }} drop comment \"no_rule: no entry matched\"",
            eips.join(", ")
        );
        let _ = writeln!(o, "\t}}");
    }
    let _ = writeln!(o, "\tchain postrouting {{");
    let _ = writeln!(
        o,
        "\t\ttype nat hook postrouting priority srcnat; policy accept;"
    );
    for e in &maps {
        let _ = writeln!(
            o,
            "\t\tip saddr {} snat to {} comment \"{}\"",
            e.internal_ip,
            e.external_ip,
            nft_comment(&e.id)
        );
    }
    let _ = writeln!(o, "\t}}");
    let _ = writeln!(o, "}}");
    o
}

/// An HCL quoted string: escapes, and `${` / `%{` doubled so that Terraform reads no template.
fn hcl_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '$' | '%' if chars.peek() == Some(&'{') => {
                out.push(c);
                out.push(c);
            }
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Terraform block label from an entry id: letters, digits, `_` and `-`, starting with a
/// letter or `_` (other characters become `_`).
fn tf_name(id: &str) -> String {
    let mut s: String = id
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if !s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
        s.insert(0, '_');
    }
    s
}

/// The Terraform variable that holds the `i`-th EIP of the package (1-based, as the tutorial's IP1..IPn).
pub fn terraform_eip_variable(i: usize) -> String {
    format!("eip_{}", i + 1)
}

/// Writes the forward table as Terraform for the Alibaba Cloud provider: one
/// `alicloud_forward_entry` per entry, in `rules`' order, with the forward table id and each
/// EIP of the package as variables (the EIPs default to the addresses in the rules file, so a
/// plan against the real gateway can substitute the real ones).
///
/// Values use the API's spelling, as the provider passes them through: `ip_protocol` "tcp",
/// "udp" or "any"; ports "80", "8000/8010" or "any".
pub fn to_terraform(rules: &Rules) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "# Forward (DNAT) table of gateway {}, written by dnatsim.",
        hcl_str(&rules.gateway.name)
    );
    let _ = writeln!(
        o,
        "# Apply with the alicloud provider: terraform apply -var forward_table_id=ftb-..."
    );
    let _ = writeln!(o);
    let _ = writeln!(o, "variable \"forward_table_id\" {{");
    let _ = writeln!(
        o,
        "  description = \"The NAT gateway's forward table (alicloud_nat_gateway's forward_table_ids)\""
    );
    let _ = writeln!(o, "  type        = string");
    let _ = writeln!(o, "}}");
    let ips = &rules.bandwidth_package.public_ips;
    for (i, ip) in ips.iter().enumerate() {
        let _ = writeln!(o);
        let _ = writeln!(o, "variable \"{}\" {{", terraform_eip_variable(i));
        let _ = writeln!(
            o,
            "  description = \"EIP {} of the bandwidth package\"",
            i + 1
        );
        let _ = writeln!(o, "  type        = string");
        let _ = writeln!(o, "  default     = \"{ip}\"");
        let _ = writeln!(o, "}}");
    }
    let mut used: Vec<String> = Vec::new();
    for e in &rules.forward_entries {
        // Ids are unique after validation, but two may sanitise to the same label.
        let base = tf_name(&e.id);
        let mut name = base.clone();
        let mut k = 2;
        while used.contains(&name) {
            name = format!("{base}_{k}");
            k += 1;
        }
        used.push(name.clone());
        // Validation puts every external IP in the package; a literal is the fallback anyway.
        let external_ip = match ips.iter().position(|&ip| ip == e.external_ip) {
            Some(i) => format!("var.{}", terraform_eip_variable(i)),
            None => format!("\"{}\"", e.external_ip),
        };
        let _ = writeln!(o);
        let _ = writeln!(o, "resource \"alicloud_forward_entry\" \"{name}\" {{");
        let _ = writeln!(o, "  forward_table_id   = var.forward_table_id");
        let _ = writeln!(o, "  forward_entry_name = {}", hcl_str(&e.id));
        let _ = writeln!(o, "  external_ip        = {external_ip}");
        let _ = writeln!(o, "  external_port      = \"{}\"", e.external_port);
        let _ = writeln!(o, "  ip_protocol        = \"{}\"", e.ip_protocol);
        let _ = writeln!(o, "  internal_ip        = \"{}\"", e.internal_ip);
        let _ = writeln!(o, "  internal_port      = \"{}\"", e.internal_port);
        let _ = writeln!(o, "}}");
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbps_exact() {
        assert_eq!(mbps(150_000_000), "150");
        assert_eq!(mbps(1_500_000), "1.5");
        assert_eq!(mbps(1), "0.000001");
    }

    #[test]
    fn hcl_escapes_templates() {
        assert_eq!(hcl_str("a${b}%{c}\"$"), "\"a$${b}%%{c}\\\"$\"");
        assert_eq!(tf_name("1 x.y"), "_1_x_y");
    }

    #[test]
    fn toml_escapes() {
        assert_eq!(toml_str("a\"b\\c\n"), "\"a\\\"b\\\\c\\n\"");
        assert_eq!(toml_str("\u{1}"), "\"\\u0001\"");
    }
}
