//! `dnatsim api`: a local NAT Gateway API (serve), a signing client (call), and the rules of
//! a gateway built through it (export).

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use dnatsim::api::{self, Config, Service, http::Limits, store::Store};

/// Serve the cloud's NAT Gateway API locally, call it, or export what it built.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Sub,
}

#[derive(Debug, clap::Subcommand)]
enum Sub {
    Serve(Serve),
    Call(Call),
    Export(Export),
}

/// Serve the NAT Gateway API (RPC style, version 2016-04-28) on HTTP, state in SQLite.
///
/// Actions: CreateNatGateway (legacy BandwidthPackage.N.*), DescribeNatGateways,
/// DeleteNatGateway, DescribeBandwidthPackages, CreateForwardEntry, ModifyForwardEntry,
/// DeleteForwardEntry, DescribeForwardTableEntries, AllocateEipAddress, AssociateEipAddress,
/// DescribeEipAddresses, CreateCommonBandwidthPackage, AddCommonBandwidthPackageIp,
/// DescribeCommonBandwidthPackages.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Examples:\n  dnatsim api serve --state /tmp/ngw --access-key-id testid --access-key-secret testsecret\n  \
    dnatsim api serve --state /tmp/ngw --rules-out MyNatGW=rules.toml --pending-ms 200"
)]
struct Serve {
    /// The state directory (created if needed); the database is DIR/state.db.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    listen: String,
    /// The AccessKeyId accepted. Without a key pair, requests are not authenticated.
    #[arg(long, requires = "access_key_secret", value_name = "ID")]
    access_key_id: Option<String>,
    /// The AccessKeySecret of --access-key-id.
    #[arg(long, requires = "access_key_id", value_name = "SECRET")]
    access_key_secret: Option<String>,
    /// How long a new or modified forward entry stays Pending, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    pending_ms: u64,
    /// The pool public IPs are allocated from (a documentation range by default).
    #[arg(long, default_value = "203.0.113.0/24", value_name = "CIDR")]
    eip_range: String,
    /// Keep FILE a rules file of the gateway (by id or by name) after every change.
    #[arg(long, value_name = "GATEWAY=FILE")]
    rules_out: Vec<String>,
    /// Worker threads, i.e. requests handled at once.
    #[arg(long, default_value_t = 16, value_name = "N")]
    workers: usize,
}

/// Sign and send one request, printing the URL and the answer as the tutorial's api.py does.
///
/// The action may be given as the first word (as api.py takes it) or as Action=NAME. The
/// common parameters (Format, Version 2016-04-28, Timestamp, nonce, signature) are added.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Examples:\n  dnatsim api call CreateNatGateway RegionId=cn-shanghai VpcId=vpc-11af8lxxx \\\n    BandwidthPackage.1.IpCount=5 BandwidthPackage.1.Bandwidth=150 Name=MyNatGW\n  \
    dnatsim api call Action=DescribeForwardTableEntries RegionId=cn-shanghai ForwardTableId=ftb-..."
)]
struct Call {
    /// The server.
    #[arg(long, default_value = "http://127.0.0.1:8080", value_name = "URL")]
    endpoint: String,
    /// The AccessKeyId (default: $DNATSIM_ACCESS_KEY_ID, else "testid").
    #[arg(long, value_name = "ID")]
    access_key_id: Option<String>,
    /// The AccessKeySecret (default: $DNATSIM_ACCESS_KEY_SECRET, else "testsecret").
    #[arg(long, value_name = "SECRET")]
    access_key_secret: Option<String>,
    /// Send the parameters as a POST form instead of a GET query string.
    #[arg(long)]
    post: bool,
    /// The action, then Key=Value parameters.
    #[arg(required = true, value_name = "PARAM", allow_hyphen_values = true)]
    params: Vec<String>,
}

/// Print the rules file (TOML) of a gateway built through the API, ready for `dnatsim replay`.
#[derive(Debug, clap::Args)]
#[command(
    after_long_help = "Example:\n  dnatsim api export --state /tmp/ngw --gateway MyNatGW > rules.toml"
)]
struct Export {
    /// The state directory of `api serve`.
    #[arg(long, value_name = "DIR")]
    state: PathBuf,
    /// The gateway, by id or name; may be left out when there is only one.
    #[arg(long, value_name = "ID")]
    gateway: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<i32> {
    match args.command {
        Sub::Serve(a) => serve(a),
        Sub::Call(a) => call(a),
        Sub::Export(a) => export(a),
    }
}

fn serve(a: Serve) -> anyhow::Result<i32> {
    let pool = api::parse_pool(&a.eip_range).map_err(|e| anyhow::anyhow!("--eip-range: {e}"))?;
    let mut rules_out = Vec::new();
    for r in &a.rules_out {
        let Some((gw, file)) = r
            .split_once('=')
            .filter(|(g, f)| !g.is_empty() && !f.is_empty())
        else {
            bail!("--rules-out \"{r}\": expected GATEWAY=FILE");
        };
        rules_out.push((gw.to_string(), PathBuf::from(file)));
    }
    let store = Store::open(&a.state)?;
    let listener =
        TcpListener::bind(&a.listen).with_context(|| format!("cannot listen on {}", a.listen))?;
    let local = listener.local_addr()?;
    let credentials = a.access_key_id.zip(a.access_key_secret);
    if credentials.is_none() {
        eprintln!(
            "dnatsim api: no --access-key-id/--access-key-secret: requests are not authenticated"
        );
    }
    let config = Config {
        credentials,
        pending_ms: a.pending_ms,
        pool,
        rules_out,
        host: local.to_string(),
    };
    let service = Arc::new(Service::new(config, store));
    // Files for gateways that already exist are brought up to date at start.
    service.write_rules_out();
    // The test harness and scripts wait for this line to know the port (with --listen :0).
    println!("dnatsim api listening on http://{local}");
    std::io::stdout().flush()?;
    let limits = Limits {
        workers: a.workers.max(1),
        ..Limits::default()
    };
    api::http::serve(listener, service, limits)?;
    Ok(0)
}

/// Turns api.py-style words into parameters: a first word without `=` is the action, and
/// a word ending in `.` is joined to the next (the tutorial prints `BandwidthPackage. 1.IpCount=4`).
fn parse_params(words: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for (i, w) in words.iter().enumerate() {
        let w = format!("{pending}{w}");
        pending.clear();
        if let Some((k, v)) = w.split_once('=') {
            if k.is_empty() {
                bail!("\"{w}\": a parameter needs a name before '='");
            }
            out.push((k.to_string(), v.to_string()));
        } else if w.ends_with('.') {
            pending = w;
        } else if i == 0 {
            out.push(("Action".to_string(), w));
        } else {
            bail!("\"{w}\" is not Key=Value");
        }
    }
    if !pending.is_empty() {
        bail!("\"{pending}\" is not Key=Value");
    }
    if !out.iter().any(|(k, _)| k == "Action" || k == "action") {
        bail!("no action: give it first (CreateNatGateway ...) or as Action=NAME");
    }
    Ok(out)
}

fn call(a: Call) -> anyhow::Result<i32> {
    let addr = a
        .endpoint
        .strip_prefix("http://")
        .unwrap_or(&a.endpoint)
        .trim_end_matches('/')
        .to_string();
    if addr.starts_with("https://") {
        bail!("--endpoint: only http:// is supported");
    }
    let env = |k: &str| std::env::var(k).ok();
    let client = api::client::Client {
        addr,
        key_id: a
            .access_key_id
            .or_else(|| env("DNATSIM_ACCESS_KEY_ID"))
            .unwrap_or_else(|| "testid".into()),
        secret: a
            .access_key_secret
            .or_else(|| env("DNATSIM_ACCESS_KEY_SECRET"))
            .unwrap_or_else(|| "testsecret".into()),
    };
    let params = parse_params(&a.params)?;
    let reply = if a.post {
        client.call_post(&params)
    } else {
        client.call(&params)
    }
    .with_context(|| format!("cannot reach {}", client.addr))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "=====Request URL======")?;
    writeln!(out, "{}", reply.url)?;
    writeln!(out, "=====Request URL end======")?;
    writeln!(out, "====== Got Response ======")?;
    let v = reply.json();
    if v.is_null() {
        writeln!(out, "{}", reply.body)?;
    } else {
        writeln!(out, "{}", api::pretty(&v))?;
    }
    Ok(if (200..300).contains(&reply.status) {
        0
    } else {
        1
    })
}

fn export(a: Export) -> anyhow::Result<i32> {
    if !a.state.join(api::store::DB_FILE).exists() {
        bail!(
            "{} has no {}: not a state directory of `dnatsim api serve`",
            a.state.display(),
            api::store::DB_FILE
        );
    }
    let store = Store::open(&a.state)?;
    let key = match a.gateway {
        Some(g) => g,
        None => {
            let all = api::actions::gateway_ids(&store).map_err(|e| anyhow::anyhow!("{e}"))?;
            match all.as_slice() {
                [(id, _)] => id.clone(),
                [] => bail!("the state has no NAT gateway"),
                _ => {
                    let ids: Vec<String> = all.iter().map(|(i, n)| format!("{i} ({n})")).collect();
                    bail!(
                        "the state has {} gateways; choose one with --gateway: {}",
                        all.len(),
                        ids.join(", ")
                    );
                }
            }
        }
    };
    let rules = api::actions::export(&store, &key)?
        .with_context(|| format!("no NAT gateway with id or name \"{key}\""))?;
    std::io::stdout()
        .lock()
        .write_all(dnatsim::rules::to_toml(&rules).as_bytes())?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn takes_the_tutorials_words() {
        let p = parse_params(&w(&[
            "CreateNatGateway",
            "BandwidthPackage.",
            "1.IpCount=4",
            "Name=My NAT",
        ]))
        .unwrap();
        assert_eq!(
            p,
            vec![
                ("Action".to_string(), "CreateNatGateway".to_string()),
                ("BandwidthPackage.1.IpCount".to_string(), "4".to_string()),
                ("Name".to_string(), "My NAT".to_string()),
            ]
        );
        assert!(parse_params(&w(&["RegionId=x"])).is_err());
        assert!(parse_params(&w(&["A", "B"])).is_err());
    }
}
