//! The actions: parameters in, JSON out, state in the [`Store`].
//!
//! Responses are built with `serde_json`'s sorted maps, so keys come out in the order the
//! tutorial shows them. Forward entries are validated by building the table as it would be
//! after the change and passing it through the rules crate's `alibaba` profile
//! ([`crate::rules::import_api_json`]): the same checks as a rules file, with the API's codes.

use std::net::Ipv4Addr;

use rusqlite::{Transaction, params};
use serde_json::{Value, json};

use super::error::ApiError;
use super::store::{Store, db_err, free_ip, new_id, next, optional};
use crate::rules::{Rules, RulesError};

/// The most a `PageSize` may ask for.
pub const MAX_PAGE_SIZE: usize = 50;

/// The request's parameters, in the order they came.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// The value of `name`, if given.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `name`, or `MissingParameter` naming it when absent or empty.
    pub fn req(&self, name: &str) -> Result<&str, ApiError> {
        match self.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v),
            _ => Err(ApiError::missing(name)),
        }
    }

    /// The non-empty value of `name`, if given.
    pub fn opt(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.trim().is_empty())
    }

    /// An integer parameter within `lo..=hi`, or `default` when absent.
    pub fn int(&self, name: &str, default: i64, lo: i64, hi: i64) -> Result<i64, ApiError> {
        let Some(v) = self.opt(name) else {
            return Ok(default);
        };
        match v.trim().parse::<i64>() {
            Ok(n) if (lo..=hi).contains(&n) => Ok(n),
            Ok(n) => Err(ApiError::invalid(name, format!("{n} is outside {lo}-{hi}"))),
            Err(_) => Err(ApiError::invalid(
                name,
                format!("\"{v}\" is not an integer"),
            )),
        }
    }
}

/// What the actions need besides the parameters.
#[derive(Debug, Clone)]
pub struct Env {
    /// Now, in milliseconds since the Unix epoch.
    pub now_ms: i64,
    /// How long a created or modified entry stays Pending.
    pub pending_ms: i64,
    /// The first and last address of the public IP pool.
    pub pool: (u32, u32),
}

/// Whether an action changes state (it then runs in a write transaction).
pub fn is_mutating(action: &str) -> bool {
    !action.starts_with("Describe")
}

/// The actions served, for `InvalidAction.NotFound` and the README.
pub const ACTIONS: &[&str] = &[
    "CreateNatGateway",
    "DescribeNatGateways",
    "DeleteNatGateway",
    "DescribeBandwidthPackages",
    "CreateForwardEntry",
    "ModifyForwardEntry",
    "DeleteForwardEntry",
    "DescribeForwardTableEntries",
    "AllocateEipAddress",
    "AssociateEipAddress",
    "DescribeEipAddresses",
    "CreateCommonBandwidthPackage",
    "AddCommonBandwidthPackageIp",
    "DescribeCommonBandwidthPackages",
];

/// Runs `action`; the answer's fields without `RequestId`.
///
/// `nonce`, when given, is stored in the write's transaction, so that a changing request
/// replayed after a restart is still refused (`SignatureNonceUsed`).
pub fn run(
    store: &Store,
    env: &Env,
    action: &str,
    p: &Params,
    nonce: Option<&str>,
) -> Result<Value, ApiError> {
    if !ACTIONS.contains(&action) {
        return Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api \"{action}\" is not found, please check your url and method."),
        ));
    }
    // The clock is read once the transaction holds the lock: requests then see time in commit
    // order, so a request that waited cannot see an earlier one's fresh entry as still Pending.
    let at_lock = |tx: &Transaction<'_>| {
        let env = Env {
            now_ms: super::now_ms().max(env.now_ms),
            ..env.clone()
        };
        dispatch(tx, &env, action, p)
    };
    if is_mutating(action) {
        store.write(|tx| {
            if let Some(n) = nonce {
                remember_nonce(tx, n)?;
            }
            at_lock(tx)
        })
    } else {
        store.read(at_lock)
    }
}

/// The refusal of a nonce seen before.
pub fn nonce_used() -> ApiError {
    ApiError::new(
        400,
        "SignatureNonceUsed",
        "Specified signature nonce was used already.",
    )
}

/// Stores a changing request's nonce, refusing one already stored; forgets nonces older than
/// twice the timestamp window, which no acceptable request can carry any more.
fn remember_nonce(tx: &Transaction<'_>, nonce: &str) -> Result<(), ApiError> {
    let now = super::now_ms();
    let horizon = now - 2 * super::TIMESTAMP_WINDOW_S * 1000;
    tx.execute("DELETE FROM nonces WHERE seen_ms < ?1", params![horizon])
        .map_err(db_err)?;
    let added = tx
        .execute(
            "INSERT INTO nonces (nonce, seen_ms) VALUES (?1, ?2) ON CONFLICT(nonce) DO NOTHING",
            params![nonce, now],
        )
        .map_err(db_err)?;
    if added == 0 {
        return Err(nonce_used());
    }
    Ok(())
}

fn dispatch(tx: &Transaction<'_>, env: &Env, action: &str, p: &Params) -> Result<Value, ApiError> {
    match action {
        "CreateNatGateway" => create_nat_gateway(tx, env, p),
        "DescribeNatGateways" => describe_nat_gateways(tx, p),
        "DeleteNatGateway" => delete_nat_gateway(tx, p),
        "DescribeBandwidthPackages" => describe_bandwidth_packages(tx, p),
        "CreateForwardEntry" => create_forward_entry(tx, env, p),
        "ModifyForwardEntry" => modify_forward_entry(tx, env, p),
        "DeleteForwardEntry" => delete_forward_entry(tx, env, p),
        "DescribeForwardTableEntries" => describe_forward_entries(tx, env, p),
        "AllocateEipAddress" => allocate_eip(tx, env, p),
        "AssociateEipAddress" => associate_eip(tx, p),
        "DescribeEipAddresses" => describe_eips(tx, p),
        "CreateCommonBandwidthPackage" => create_common_package(tx, env, p),
        "AddCommonBandwidthPackageIp" => add_common_package_ip(tx, p),
        "DescribeCommonBandwidthPackages" => describe_common_packages(tx, p),
        // `run` only dispatches names from ACTIONS.
        other => Err(ApiError::new(
            404,
            "InvalidAction.NotFound",
            format!("Specified api \"{other}\" is not found."),
        )),
    }
}

fn iso(ms: i64) -> String {
    super::sign::format_timestamp(ms.div_euclid(1000))
}

/// `PageNumber`/`PageSize` applied to `items`, with the paging fields of the answer.
fn page(p: &Params, items: Vec<Value>, key: &str, inner: &str) -> Result<Value, ApiError> {
    let number = p.int("PageNumber", 1, 1, i64::from(u32::MAX))? as usize;
    let size = p.int("PageSize", 10, 1, MAX_PAGE_SIZE as i64)? as usize;
    let total = items.len();
    let shown: Vec<Value> = items
        .into_iter()
        .skip((number - 1).saturating_mul(size))
        .take(size)
        .collect();
    Ok(json!({
        key: { inner: shown },
        "PageNumber": number,
        "PageSize": size,
        "TotalCount": total,
    }))
}

// ---------------------------------------------------------------------------------------------
// Gateways and their (legacy) bandwidth packages

#[derive(Debug, Clone)]
struct GatewayRow {
    id: String,
    region: String,
    vpc_id: String,
    name: String,
    description: String,
    spec: String,
    created: i64,
    forward_table_id: String,
    snat_table_id: String,
}

const GATEWAY_COLS: &str =
    "id, region, vpc_id, name, description, spec, created, forward_table_id, snat_table_id";

fn gateway_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GatewayRow> {
    Ok(GatewayRow {
        id: r.get(0)?,
        region: r.get(1)?,
        vpc_id: r.get(2)?,
        name: r.get(3)?,
        description: r.get(4)?,
        spec: r.get(5)?,
        created: r.get(6)?,
        forward_table_id: r.get(7)?,
        snat_table_id: r.get(8)?,
    })
}

fn gateways(tx: &Transaction<'_>) -> Result<Vec<GatewayRow>, ApiError> {
    let mut stmt = tx
        .prepare_cached(&format!("SELECT {GATEWAY_COLS} FROM gateways ORDER BY seq"))
        .map_err(db_err)?;
    let rows = stmt.query_map([], gateway_row).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

fn gateway_by(tx: &Transaction<'_>, col: &str, v: &str) -> Result<Option<GatewayRow>, ApiError> {
    optional(tx.query_row(
        &format!("SELECT {GATEWAY_COLS} FROM gateways WHERE {col} = ?1"),
        params![v],
        gateway_row,
    ))
}

/// The public IPs of a gateway in the order they joined it: (allocation id, address).
fn gateway_ips(tx: &Transaction<'_>, gw: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut stmt = tx
        .prepare_cached("SELECT allocation_id, ip FROM ips WHERE gateway_id = ?1 ORDER BY bound")
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![gw], |r| Ok((r.get(0)?, r.get(1)?)))
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

fn gateway_packages(tx: &Transaction<'_>, gw: &str) -> Result<Vec<String>, ApiError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id FROM packages WHERE gateway_id = ?1 AND kind = 'legacy' ORDER BY seq",
        )
        .map_err(db_err)?;
    let rows = stmt.query_map(params![gw], |r| r.get(0)).map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

/// The rate the gateway's EIPs share, in Mbps: its legacy package's; else the shared
/// bandwidth package of its first EIP; else that EIP's own bandwidth; else 5 (the API's default).
fn gateway_bandwidth(tx: &Transaction<'_>, gw: &str) -> Result<i64, ApiError> {
    if let Some(bw) = optional(tx.query_row(
        "SELECT bandwidth FROM packages WHERE gateway_id = ?1 AND kind = 'legacy' ORDER BY seq LIMIT 1",
        params![gw],
        |r| r.get(0),
    ))? {
        return Ok(bw);
    }
    let first: Option<(Option<String>, i64)> = optional(tx.query_row(
        "SELECT package_id, bandwidth FROM ips WHERE gateway_id = ?1 ORDER BY bound LIMIT 1",
        params![gw],
        |r| Ok((r.get(0)?, r.get(1)?)),
    ))?;
    match first {
        Some((Some(pkg), own)) => Ok(optional(tx.query_row(
            "SELECT bandwidth FROM packages WHERE id = ?1",
            params![pkg],
            |r| r.get(0),
        ))?
        .unwrap_or(own)),
        Some((None, own)) => Ok(own),
        None => Ok(5),
    }
}

fn allocate(
    tx: &Transaction<'_>,
    env: &Env,
    kind: &str,
    region: &str,
    bandwidth: i64,
    name: &str,
    charge: &str,
) -> Result<(String, Ipv4Addr), ApiError> {
    let Some(ip) = free_ip(tx, env.pool.0, env.pool.1)? else {
        return Err(ApiError::new(
            400,
            "QuotaExceeded.Eip",
            "The public IP pool (--eip-range) has no free address left.",
        ));
    };
    // The kind (`nateip`, `eip`) is also the id's prefix.
    let id = new_id(tx, kind)?;
    let seq = next(tx, "seq")?;
    tx.execute(
        "INSERT INTO ips (allocation_id, ip, ipnum, kind, region, bandwidth, name, charge, bound, created, seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9, ?10)",
        params![id, ip.to_string(), u32::from(ip), kind, region, bandwidth, name, charge, env.now_ms, seq],
    )
    .map_err(db_err)?;
    Ok((id, ip))
}

fn create_nat_gateway(tx: &Transaction<'_>, env: &Env, p: &Params) -> Result<Value, ApiError> {
    let region = p.req("RegionId")?.to_string();
    let vpc = p.req("VpcId")?.to_string();
    let name = p.get("Name").unwrap_or("").to_string();
    let description = p.get("Description").unwrap_or("").to_string();
    let spec = p.opt("Spec").unwrap_or("Small").to_string();
    // BandwidthPackage.N.Field: the legacy way. N must be an integer.
    let mut ns: Vec<u32> = Vec::new();
    for (k, _) in &p.0 {
        if let Some(rest) = k.strip_prefix("BandwidthPackage.") {
            let n = rest
                .split('.')
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok())
                .filter(|n| (1..=4).contains(n))
                .ok_or_else(|| {
                    ApiError::invalid("BandwidthPackage", format!("\"{k}\": N must be 1-4"))
                })?;
            if !ns.contains(&n) {
                ns.push(n);
            }
        }
    }
    if ns.len() > 1 {
        return Err(ApiError::new(
            400,
            "OperationUnsupported.MultiBandwidthPackage",
            "dnatsim simulates one bandwidth package per gateway; pass BandwidthPackage.1.* only.",
        ));
    }
    let gw = new_id(tx, "ngw")?;
    let ftb = new_id(tx, "ftb")?;
    let stb = new_id(tx, "stb")?;
    let seq = next(tx, "seq")?;
    tx.execute(
        &format!("INSERT INTO gateways ({GATEWAY_COLS}, seq) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"),
        params![gw, region, vpc, name, description, spec, env.now_ms, ftb, stb, seq],
    )
    .map_err(db_err)?;
    let mut packages = Vec::new();
    if let Some(&n) = ns.first() {
        let f = |field: &str| format!("BandwidthPackage.{n}.{field}");
        let bw = p.int(&f("Bandwidth"), 0, 5, 5000)?;
        if p.opt(&f("Bandwidth")).is_none() {
            return Err(ApiError::missing(&f("Bandwidth")));
        }
        let count = p.int(&f("IpCount"), 0, 1, 50)?;
        if p.opt(&f("IpCount")).is_none() {
            return Err(ApiError::missing(&f("IpCount")));
        }
        let zone = p.get(&f("Zone")).unwrap_or("").trim().to_string();
        let bwp = new_id(tx, "bwp")?;
        let seq = next(tx, "seq")?;
        tx.execute(
            "INSERT INTO packages (id, kind, gateway_id, region, zone, bandwidth, name, description, created, seq)
             VALUES (?1, 'legacy', ?2, ?3, ?4, ?5, '', '', ?6, ?7)",
            params![bwp, gw, region, zone, bw, env.now_ms, seq],
        )
        .map_err(db_err)?;
        for _ in 0..count {
            let (id, _) = allocate(tx, env, "nateip", &region, bw, "", "PayByBandwidth")?;
            let bound = next(tx, "bound")?;
            tx.execute(
                "UPDATE ips SET package_id = ?1, gateway_id = ?2, bound = ?3 WHERE allocation_id = ?4",
                params![bwp, gw, bound, id],
            )
            .map_err(db_err)?;
        }
        packages.push(bwp);
    }
    Ok(json!({
        "NatGatewayId": gw,
        "BandwidthPackageIds": { "BandwidthPackageId": packages },
        "ForwardTableIds": { "ForwardTableId": [ftb] },
        "SnatTableIds": { "SnatTableId": [stb] },
    }))
}

fn describe_nat_gateways(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let mut items = Vec::new();
    for g in gateways(tx)? {
        let keep = [
            ("RegionId", &g.region),
            ("VpcId", &g.vpc_id),
            ("NatGatewayId", &g.id),
            ("Name", &g.name),
        ]
        .iter()
        .all(|(k, v)| p.opt(k).is_none_or(|want| want == v.as_str()));
        if !keep {
            continue;
        }
        let used = used_ips(tx, &g.forward_table_id)?;
        let ips: Vec<Value> = gateway_ips(tx, &g.id)?
            .into_iter()
            .map(|(alloc, ip)| {
                let status = if used.contains(&ip) {
                    "UsedByForwardTable"
                } else {
                    "Idle"
                };
                json!({ "AllocationId": alloc, "IpAddress": ip, "UsingStatus": status })
            })
            .collect();
        items.push(json!({
            "BandwidthPackageIds": { "BandwidthPackageId": gateway_packages(tx, &g.id)? },
            "BusinessStatus": "Normal",
            "CreationTime": iso(g.created),
            "Description": g.description,
            "ForwardTableIds": { "ForwardTableId": [g.forward_table_id] },
            "SnatTableIds": { "SnatTableId": [g.snat_table_id] },
            "InstanceChargeType": "PostPaid",
            "IpLists": { "IpList": ips },
            "Name": g.name,
            "NatGatewayId": g.id,
            "RegionId": g.region,
            "Spec": g.spec,
            "Status": "Available",
            "VpcId": g.vpc_id,
        }));
    }
    page(p, items, "NatGateways", "NatGateway")
}

fn used_ips(tx: &Transaction<'_>, table: &str) -> Result<Vec<String>, ApiError> {
    Ok(entries(tx, table)?.into_iter().map(|e| e.ext_ip).collect())
}

fn delete_nat_gateway(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let id = p.req("NatGatewayId")?;
    let Some(g) = gateway_by(tx, "id", id)? else {
        return Err(ApiError::not_found("NatGatewayId", id));
    };
    let n: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM entries WHERE table_id = ?1",
            params![g.forward_table_id],
            |r| r.get(0),
        )
        .map_err(db_err)?;
    let force = p
        .get("Force")
        .is_some_and(|f| f.eq_ignore_ascii_case("true"));
    if n > 0 && !force {
        return Err(ApiError::new(
            400,
            "DependencyViolation.ForwardEntries",
            format!(
                "The NAT gateway still has {n} DNAT entries; delete them first or pass Force=true."
            ),
        ));
    }
    let steps: [(&str, &str); 5] = [
        (
            "DELETE FROM entries WHERE table_id = ?1",
            g.forward_table_id.as_str(),
        ),
        // The legacy package's IPs go with it; EIPs stay allocated, unassociated.
        (
            "DELETE FROM ips WHERE gateway_id = ?1 AND kind = 'nateip'",
            g.id.as_str(),
        ),
        (
            "UPDATE ips SET gateway_id = NULL, bound = 0 WHERE gateway_id = ?1",
            g.id.as_str(),
        ),
        (
            "DELETE FROM packages WHERE gateway_id = ?1 AND kind = 'legacy'",
            g.id.as_str(),
        ),
        ("DELETE FROM gateways WHERE id = ?1", g.id.as_str()),
    ];
    for (sql, arg) in steps {
        tx.execute(sql, params![arg]).map_err(db_err)?;
    }
    Ok(json!({}))
}

fn package_ips(tx: &Transaction<'_>, pkg: &str) -> Result<Vec<Value>, ApiError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT allocation_id, ip FROM ips WHERE package_id = ?1 ORDER BY bound, seq",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![pkg], |r| {
            Ok(json!({ "AllocationId": r.get::<_, String>(0)?, "IpAddress": r.get::<_, String>(1)? }))
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

#[derive(Debug)]
struct PackageRow {
    id: String,
    gateway_id: Option<String>,
    region: String,
    zone: String,
    bandwidth: i64,
    name: String,
    description: String,
    created: i64,
}

fn packages(tx: &Transaction<'_>, kind: &str) -> Result<Vec<PackageRow>, ApiError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, gateway_id, region, zone, bandwidth, name, description, created
             FROM packages WHERE kind = ?1 ORDER BY seq",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![kind], |r| {
            Ok(PackageRow {
                id: r.get(0)?,
                gateway_id: r.get(1)?,
                region: r.get(2)?,
                zone: r.get(3)?,
                bandwidth: r.get(4)?,
                name: r.get(5)?,
                description: r.get(6)?,
                created: r.get(7)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

fn describe_bandwidth_packages(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let mut items = Vec::new();
    for k in packages(tx, "legacy")? {
        let gw = k.gateway_id.clone().unwrap_or_default();
        let keep = [
            ("RegionId", &k.region),
            ("NatGatewayId", &gw),
            ("BandwidthPackageId", &k.id),
        ]
        .iter()
        .all(|(key, v)| p.opt(key).is_none_or(|want| want == v.as_str()));
        if !keep {
            continue;
        }
        let ips = package_ips(tx, &k.id)?;
        items.push(json!({
            "Bandwidth": k.bandwidth.to_string(),
            "BandwidthPackageId": k.id,
            "BusinessStatus": "Normal",
            "CreationTime": iso(k.created),
            "Description": k.description,
            "InstanceChargeType": "PostPaid",
            "InternetChargeType": "PayByBandwidth",
            "IpCount": ips.len().to_string(),
            "Name": k.name,
            "NatGatewayId": gw,
            "PublicIpAddresses": { "PublicIpAddresse": ips },
            "RegionId": k.region,
            "Status": "Available",
            "ZoneId": k.zone,
        }));
    }
    page(p, items, "BandwidthPackages", "BandwidthPackage")
}

// ---------------------------------------------------------------------------------------------
// Forward entries

#[derive(Debug, Clone)]
struct EntryRow {
    id: String,
    ext_ip: String,
    ext_port: String,
    proto: String,
    int_ip: String,
    int_port: String,
    name: String,
    ready_at_ms: i64,
}

fn entries(tx: &Transaction<'_>, table: &str) -> Result<Vec<EntryRow>, ApiError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT id, ext_ip, ext_port, proto, int_ip, int_port, name, ready_at_ms
             FROM entries WHERE table_id = ?1 ORDER BY id",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map(params![table], |r| {
            Ok(EntryRow {
                id: r.get(0)?,
                ext_ip: r.get(1)?,
                ext_port: r.get(2)?,
                proto: r.get(3)?,
                int_ip: r.get(4)?,
                int_port: r.get(5)?,
                name: r.get(6)?,
                ready_at_ms: r.get(7)?,
            })
        })
        .map_err(db_err)?;
    rows.collect::<Result<_, _>>().map_err(db_err)
}

fn status(e: &EntryRow, env: &Env) -> &'static str {
    if e.ready_at_ms > env.now_ms {
        "Pending"
    } else {
        "Available"
    }
}

/// The table's gateway, or `InvalidForwardTableId.NotFound`.
fn table_gateway(tx: &Transaction<'_>, table: &str) -> Result<GatewayRow, ApiError> {
    gateway_by(tx, "forward_table_id", table)?
        .ok_or_else(|| ApiError::not_found("ForwardTableId", table))
}

fn refuse_if_pending(rows: &[EntryRow], env: &Env) -> Result<(), ApiError> {
    if let Some(e) = rows.iter().find(|e| status(e, env) == "Pending") {
        return Err(ApiError::new(
            400,
            "IncorretForwardEntryStatus",
            format!(
                "Some Forward entry status blocked this operation: {} is Pending; wait until it is Available.",
                e.id
            ),
        ));
    }
    Ok(())
}

/// The gateway's rules with `rows` as its forward table, validated under the `alibaba` profile
/// (the outer error: the state could not be read; the inner one: the table breaks a rule).
fn rules_of(
    tx: &Transaction<'_>,
    g: &GatewayRow,
    rows: &[EntryRow],
) -> Result<Result<Rules, RulesError>, ApiError> {
    let ips: Vec<Value> = gateway_ips(tx, &g.id)?
        .into_iter()
        .map(|(alloc, ip)| json!({ "AllocationId": alloc, "IpAddress": ip }))
        .collect();
    let bw = gateway_bandwidth(tx, &g.id)?;
    let table: Vec<Value> = rows
        .iter()
        .map(|e| {
            json!({
                "ForwardEntryId": e.id, "ExternalIp": e.ext_ip, "ExternalPort": e.ext_port,
                "IpProtocol": e.proto, "InternalIp": e.int_ip, "InternalPort": e.int_port,
            })
        })
        .collect();
    let inputs = vec![
        (
            "DescribeForwardTableEntries".to_string(),
            json!({ "ForwardTableEntries": { "ForwardTableEntry": table } }).to_string(),
        ),
        (
            "DescribeBandwidthPackages".to_string(),
            json!({ "BandwidthPackages": { "BandwidthPackage": [
                { "Bandwidth": bw.to_string(), "PublicIpAddresses": { "PublicIpAddresse": ips } }
            ] } })
            .to_string(),
        ),
        (
            "DescribeNatGateways".to_string(),
            json!({ "NatGateways": { "NatGateway": [ { "Name": g.name } ] } }).to_string(),
        ),
    ];
    Ok(crate::rules::import_api_json(&inputs))
}

/// The API's code for a rule of the `alibaba` profile (see the README's table).
pub fn code_for_rule(rule: &str, json_path: &str) -> &'static str {
    let external = json_path.ends_with("ExternalIp") || json_path.ends_with("ExternalPort");
    match rule {
        "invalid-ip" if external => "InvalidExternalIp.Malformed",
        "invalid-ip" => "InvalidInternalIp.Malformed",
        // `unusable-ip` (loopback, multicast, ...) comes with main's alibaba address checks.
        "unusable-ip" if external => "InvalidExternalIp.Malformed",
        "unusable-ip" if json_path.ends_with("InternalIp") => "InvalidInternalIp.Malformed",
        "invalid-port" if external => "InvalidExternalPort.Malformed",
        "invalid-port" => "InvalidInternalPort.Malformed",
        "unknown-value" => "InvalidProtocal.ValueNotSupported",
        "any-protocol-port" => "InvalidParameter.IpProtocolAnyWithPort",
        "any-port-mismatch" => "InvalidParameter.AnyPortMismatch",
        "any-port-needs-any-protocol" => "InvalidParameter.AnyPortNeedsAnyProtocol",
        "range-size-mismatch" => "InvalidParameter.PortRangeSizeMismatch",
        "external-ip-not-in-package" => "InvalidIp.NotInNatgw",
        "external-equals-internal" => "InvalidParameter.ExternalIpEqualsInternalIp",
        "ip-mapping-exclusive" => "Forbidden.IpMappingInUse",
        "duplicate-external" | "overlap-external" => "Forward.EntryConflict",
        "duplicate-internal" | "overlap-internal" => "OperationUnsupported.ForwardEntry",
        "too-many-entries" => "QuotaExceeded",
        _ => "InvalidParameter",
    }
}

/// The first error as the API's; a message that points at another entry of the table (by its
/// place in the JSON built for validation) names that entry's id instead.
fn to_api_error(e: RulesError, rows: &[EntryRow]) -> ApiError {
    let Some(d) = e.diagnostics().first() else {
        return ApiError::internal();
    };
    let mut message = d.message.clone();
    for (i, row) in rows.iter().enumerate() {
        let place =
            format!("DescribeForwardTableEntries at ForwardTableEntries.ForwardTableEntry[{i}]");
        message = message.replace(&place, &row.id);
    }
    ApiError {
        status: 400,
        code: code_for_rule(d.rule, d.json_path.as_deref().unwrap_or("")).into(),
        message,
    }
}

/// Validates `rows` (the table after the change) and returns the normalised entry `id`.
fn checked(
    tx: &Transaction<'_>,
    g: &GatewayRow,
    rows: &[EntryRow],
    id: &str,
) -> Result<EntryRow, ApiError> {
    let rules = rules_of(tx, g, rows)?.map_err(|e| to_api_error(e, rows))?;
    let e = rules
        .forward_entries
        .iter()
        .find(|e| e.id == id)
        .ok_or_else(ApiError::internal)?;
    let name = rows
        .iter()
        .find(|r| r.id == id)
        .map(|r| r.name.clone())
        .unwrap_or_default();
    Ok(EntryRow {
        id: e.id.clone(),
        ext_ip: e.external_ip.to_string(),
        ext_port: e.external_port.to_string(),
        proto: e.ip_protocol.as_str().to_string(),
        int_ip: e.internal_ip.to_string(),
        int_port: e.internal_port.to_string(),
        name,
        ready_at_ms: 0,
    })
}

fn create_forward_entry(tx: &Transaction<'_>, env: &Env, p: &Params) -> Result<Value, ApiError> {
    let table = p.req("ForwardTableId")?;
    let field = |k: &str| p.req(k).map(|v| v.trim().to_string());
    let (ext_ip, ext_port, proto, int_ip, int_port) = (
        field("ExternalIp")?,
        field("ExternalPort")?,
        field("IpProtocol")?,
        field("InternalIp")?,
        field("InternalPort")?,
    );
    let g = table_gateway(tx, table)?;
    let mut rows = entries(tx, table)?;
    refuse_if_pending(&rows, env)?;
    let id = new_id(tx, "fwd")?;
    rows.push(EntryRow {
        id: id.clone(),
        ext_ip,
        ext_port,
        proto,
        int_ip,
        int_port,
        name: p.get("ForwardEntryName").unwrap_or("").to_string(),
        ready_at_ms: 0,
    });
    let e = checked(tx, &g, &rows, &id)?;
    tx.execute(
        "INSERT INTO entries (id, table_id, ext_ip, ext_port, proto, int_ip, int_port, name, ready_at_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![e.id, table, e.ext_ip, e.ext_port, e.proto, e.int_ip, e.int_port, e.name, env.now_ms + env.pending_ms],
    )
    .map_err(db_err)?;
    Ok(json!({ "ForwardEntryId": id }))
}

fn find_entry<'r>(rows: &'r mut [EntryRow], id: &str) -> Result<&'r mut EntryRow, ApiError> {
    rows.iter_mut()
        .find(|e| e.id == id)
        .ok_or_else(|| ApiError::not_found("ForwardEntryId", id))
}

fn modify_forward_entry(tx: &Transaction<'_>, env: &Env, p: &Params) -> Result<Value, ApiError> {
    let table = p.req("ForwardTableId")?;
    let id = p.req("ForwardEntryId")?;
    let g = table_gateway(tx, table)?;
    let mut rows = entries(tx, table)?;
    find_entry(&mut rows, id)?;
    refuse_if_pending(&rows, env)?;
    let e = find_entry(&mut rows, id)?;
    for (key, slot) in [
        ("ExternalIp", &mut e.ext_ip),
        ("ExternalPort", &mut e.ext_port),
        ("IpProtocol", &mut e.proto),
        ("InternalIp", &mut e.int_ip),
        ("InternalPort", &mut e.int_port),
    ] {
        if let Some(v) = p.opt(key) {
            *slot = v.trim().to_string();
        }
    }
    if let Some(v) = p.get("ForwardEntryName") {
        e.name = v.to_string();
    }
    let e = checked(tx, &g, &rows, id)?;
    tx.execute(
        "UPDATE entries SET ext_ip = ?1, ext_port = ?2, proto = ?3, int_ip = ?4, int_port = ?5,
         name = ?6, ready_at_ms = ?7 WHERE id = ?8",
        params![
            e.ext_ip,
            e.ext_port,
            e.proto,
            e.int_ip,
            e.int_port,
            e.name,
            env.now_ms + env.pending_ms,
            id
        ],
    )
    .map_err(db_err)?;
    Ok(json!({}))
}

fn delete_forward_entry(tx: &Transaction<'_>, env: &Env, p: &Params) -> Result<Value, ApiError> {
    let table = p.req("ForwardTableId")?;
    let id = p.req("ForwardEntryId")?;
    table_gateway(tx, table)?;
    let mut rows = entries(tx, table)?;
    let e = find_entry(&mut rows, id)?;
    if status(e, env) == "Pending" {
        return Err(ApiError::new(
            400,
            "IncorretForwardEntryStatus",
            format!("Forward entry {id} is Pending; wait until it is Available."),
        ));
    }
    tx.execute("DELETE FROM entries WHERE id = ?1", params![id])
        .map_err(db_err)?;
    Ok(json!({}))
}

fn describe_forward_entries(
    tx: &Transaction<'_>,
    env: &Env,
    p: &Params,
) -> Result<Value, ApiError> {
    let table = p.req("ForwardTableId")?;
    table_gateway(tx, table)?;
    let mut items = Vec::new();
    for e in entries(tx, table)? {
        let keep = [
            ("ForwardEntryId", &e.id),
            ("ExternalIp", &e.ext_ip),
            ("InternalIp", &e.int_ip),
            ("IpProtocol", &e.proto),
            ("ExternalPort", &e.ext_port),
            ("InternalPort", &e.int_port),
            ("ForwardEntryName", &e.name),
        ]
        .iter()
        .all(|(k, v)| {
            p.opt(k)
                .is_none_or(|want| want.trim().eq_ignore_ascii_case(v))
        });
        if !keep {
            continue;
        }
        let mut item = json!({
            "ExternalIp": e.ext_ip,
            "ExternalPort": e.ext_port,
            "ForwardEntryId": e.id,
            "ForwardTableId": table,
            "InternalIp": e.int_ip,
            "InternalPort": e.int_port,
            "IpProtocol": e.proto,
            "Status": status(&e, env),
        });
        // The tutorial's entries have no name and show no name field.
        if !e.name.is_empty() {
            item["ForwardEntryName"] = json!(e.name);
        }
        items.push(item);
    }
    page(p, items, "ForwardTableEntries", "ForwardTableEntry")
}

// ---------------------------------------------------------------------------------------------
// EIPs and shared (common) bandwidth packages: today's way to give a gateway its public IPs

fn allocate_eip(tx: &Transaction<'_>, env: &Env, p: &Params) -> Result<Value, ApiError> {
    let region = p.req("RegionId")?;
    let bw = p.int("Bandwidth", 5, 1, 5000)?;
    let charge = p.opt("InternetChargeType").unwrap_or("PayByBandwidth");
    let name = p.get("Name").unwrap_or("");
    let (id, ip) = allocate(tx, env, "eip", region, bw, name, charge)?;
    Ok(json!({ "AllocationId": id, "EipAddress": ip.to_string() }))
}

fn associate_eip(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let alloc = p.req("AllocationId")?;
    let instance = p.req("InstanceId")?;
    let kind = p.opt("InstanceType").unwrap_or("EcsInstance");
    if kind != "Nat" {
        return Err(ApiError::invalid(
            "InstanceType",
            format!(
                "\"{kind}\": dnatsim associates EIPs with NAT gateways only (InstanceType=Nat)"
            ),
        ));
    }
    let current: Option<Option<String>> = optional(tx.query_row(
        "SELECT gateway_id FROM ips WHERE allocation_id = ?1 AND kind = 'eip'",
        params![alloc],
        |r| r.get(0),
    ))?;
    match current {
        None => return Err(ApiError::not_found("AllocationId", alloc)),
        Some(Some(gw)) => {
            return Err(ApiError::new(
                400,
                "IncorrectEipStatus",
                format!("The EIP {alloc} is already associated with {gw}."),
            ));
        }
        Some(None) => {}
    }
    if gateway_by(tx, "id", instance)?.is_none() {
        return Err(ApiError::not_found("InstanceId", instance));
    }
    let bound = next(tx, "bound")?;
    tx.execute(
        "UPDATE ips SET gateway_id = ?1, bound = ?2 WHERE allocation_id = ?3",
        params![instance, bound, alloc],
    )
    .map_err(db_err)?;
    Ok(json!({}))
}

fn describe_eips(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let mut stmt = tx
        .prepare_cached(
            "SELECT allocation_id, ip, region, bandwidth, name, charge, package_id, gateway_id, created
             FROM ips WHERE kind = 'eip' ORDER BY seq",
        )
        .map_err(db_err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
                r.get::<_, Option<String>>(7)?,
                r.get::<_, i64>(8)?,
            ))
        })
        .map_err(db_err)?;
    let mut items = Vec::new();
    for row in rows {
        let (alloc, ip, region, bw, name, charge, pkg, gw, created) = row.map_err(db_err)?;
        let gw = gw.unwrap_or_default();
        let itype = if gw.is_empty() { "" } else { "Nat" };
        let keep = [
            ("RegionId", region.as_str()),
            ("AllocationId", alloc.as_str()),
            ("EipAddress", ip.as_str()),
            ("AssociatedInstanceId", gw.as_str()),
            ("AssociatedInstanceType", itype),
        ]
        .iter()
        .all(|(k, v)| p.opt(k).is_none_or(|want| want == *v));
        if !keep {
            continue;
        }
        items.push(json!({
            "AllocationId": alloc,
            "AllocationTime": iso(created),
            "Bandwidth": bw.to_string(),
            "BandwidthPackageId": pkg.unwrap_or_default(),
            "ChargeType": "PostPaid",
            "InstanceId": gw,
            "InstanceType": itype,
            "InternetChargeType": charge,
            "IpAddress": ip,
            "Name": name,
            "RegionId": region,
            "Status": if gw.is_empty() { "Available" } else { "InUse" },
        }));
    }
    page(p, items, "EipAddresses", "EipAddress")
}

fn create_common_package(tx: &Transaction<'_>, env: &Env, p: &Params) -> Result<Value, ApiError> {
    let region = p.req("RegionId")?;
    p.req("Bandwidth")?;
    let bw = p.int("Bandwidth", 0, 1, 5000)?;
    let id = new_id(tx, "cbwp")?;
    let seq = next(tx, "seq")?;
    tx.execute(
        "INSERT INTO packages (id, kind, gateway_id, region, zone, bandwidth, name, description, created, seq)
         VALUES (?1, 'common', NULL, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            region,
            p.get("Zone").unwrap_or(""),
            bw,
            p.get("Name").unwrap_or(""),
            p.get("Description").unwrap_or(""),
            env.now_ms,
            seq
        ],
    )
    .map_err(db_err)?;
    Ok(json!({ "BandwidthPackageId": id, "ResourceGroupId": "" }))
}

fn add_common_package_ip(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let pkg = p.req("BandwidthPackageId")?;
    let alloc = p.req("IpInstanceId")?;
    let exists: Option<String> = optional(tx.query_row(
        "SELECT id FROM packages WHERE id = ?1 AND kind = 'common'",
        params![pkg],
        |r| r.get(0),
    ))?;
    if exists.is_none() {
        return Err(ApiError::not_found("BandwidthPackageId", pkg));
    }
    let current: Option<Option<String>> = optional(tx.query_row(
        "SELECT package_id FROM ips WHERE allocation_id = ?1 AND kind = 'eip'",
        params![alloc],
        |r| r.get(0),
    ))?;
    match current {
        None => Err(ApiError::not_found("IpInstanceId", alloc)),
        Some(Some(other)) => Err(ApiError::new(
            400,
            "OperationFailed.IpAlreadyInBandwidthPackage",
            format!("The EIP {alloc} is already in bandwidth package {other}."),
        )),
        Some(None) => {
            tx.execute(
                "UPDATE ips SET package_id = ?1 WHERE allocation_id = ?2",
                params![pkg, alloc],
            )
            .map_err(db_err)?;
            Ok(json!({}))
        }
    }
}

fn describe_common_packages(tx: &Transaction<'_>, p: &Params) -> Result<Value, ApiError> {
    let mut items = Vec::new();
    for k in packages(tx, "common")? {
        let keep = [
            ("RegionId", &k.region),
            ("BandwidthPackageId", &k.id),
            ("Name", &k.name),
        ]
        .iter()
        .all(|(key, v)| p.opt(key).is_none_or(|want| want == v.as_str()));
        if !keep {
            continue;
        }
        let ips: Vec<Value> = package_ips(tx, &k.id)?
            .into_iter()
            .map(|mut v| {
                v["BandwidthPackageIpRelationStatus"] = json!("BINDED");
                v
            })
            .collect();
        items.push(json!({
            "Bandwidth": k.bandwidth.to_string(),
            "BandwidthPackageId": k.id,
            "BusinessStatus": "Normal",
            "CreationTime": iso(k.created),
            "Description": k.description,
            "InstanceChargeType": "PostPaid",
            "InternetChargeType": "PayByBandwidth",
            "Name": k.name,
            "PublicIpAddresses": { "PublicIpAddresse": ips },
            "RegionId": k.region,
            "Status": "Available",
        }));
    }
    page(
        p,
        items,
        "CommonBandwidthPackages",
        "CommonBandwidthPackage",
    )
}

// ---------------------------------------------------------------------------------------------
// Export

/// The rules of the gateway whose id or name is `key` (the first created, if names repeat),
/// or `None` if there is no such gateway. Pending entries are included: they are acknowledged.
pub fn export(store: &Store, key: &str) -> Result<Option<Rules>, ExportError> {
    let found = store
        .read(|tx| {
            let g = match gateway_by(tx, "id", key)? {
                Some(g) => Some(g),
                None => gateways(tx)?.into_iter().find(|g| g.name == key),
            };
            let Some(g) = g else { return Ok(None) };
            let rows = entries(tx, &g.forward_table_id)?;
            Ok(Some(rules_of(tx, &g, &rows)?))
        })
        .map_err(ExportError::Store)?;
    match found {
        None => Ok(None),
        Some(r) => r.map(Some).map_err(ExportError::Rules),
    }
}

/// The ids of every gateway, oldest first.
pub fn gateway_ids(store: &Store) -> Result<Vec<(String, String)>, ApiError> {
    store.read(|tx| Ok(gateways(tx)?.into_iter().map(|g| (g.id, g.name)).collect()))
}

/// Why a gateway's rules could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The state could not be read.
    #[error("cannot read the state: {0}")]
    Store(ApiError),
    /// The stored table does not validate (it was written by something else than this server).
    #[error("{0}")]
    Rules(RulesError),
}
