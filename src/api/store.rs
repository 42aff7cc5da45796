//! The API's state in SQLite: one database file in the state directory, in WAL mode with
//! `synchronous = FULL`, one transaction per request.
//!
//! A mutating request commits before its answer is sent, so an acknowledged write is on disk
//! and survives `kill -9` or a power cut; a request killed halfway leaves nothing, since its
//! transaction never committed. Requests take the one connection in turn, so two concurrent
//! read-modify-write requests cannot both read the old state: no update is lost.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use super::error::ApiError;

/// Why the state could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory could not be created.
    #[error("cannot create state directory {path}: {source}")]
    Dir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// SQLite refused to open or set up the database.
    #[error("cannot open state database {path}: {source}")]
    Db {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
}

/// The database file's name inside the state directory.
pub const DB_FILE: &str = "state.db";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, n INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS gateways (
    id TEXT PRIMARY KEY, region TEXT NOT NULL, vpc_id TEXT NOT NULL, name TEXT NOT NULL,
    description TEXT NOT NULL, spec TEXT NOT NULL, created INTEGER NOT NULL,
    forward_table_id TEXT NOT NULL UNIQUE, snat_table_id TEXT NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS packages (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, gateway_id TEXT, region TEXT NOT NULL,
    zone TEXT NOT NULL, bandwidth INTEGER NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    created INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ips (
    allocation_id TEXT PRIMARY KEY, ip TEXT NOT NULL UNIQUE, ipnum INTEGER NOT NULL UNIQUE,
    kind TEXT NOT NULL, region TEXT NOT NULL, bandwidth INTEGER NOT NULL, name TEXT NOT NULL,
    charge TEXT NOT NULL, package_id TEXT, gateway_id TEXT, bound INTEGER NOT NULL,
    created INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY, table_id TEXT NOT NULL, ext_ip TEXT NOT NULL, ext_port TEXT NOT NULL,
    proto TEXT NOT NULL, int_ip TEXT NOT NULL, int_port TEXT NOT NULL, name TEXT NOT NULL,
    ready_at_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS entries_by_table ON entries (table_id);
CREATE INDEX IF NOT EXISTS ips_by_gateway ON ips (gateway_id);
CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, seen_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS nonces_by_time ON nonces (seen_ms);
";

/// The state database.
#[derive(Debug)]
pub struct Store {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) `DIR/state.db` and its schema.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = dir.join(DB_FILE);
        let db = |source| StoreError::Db {
            path: path.clone(),
            source,
        };
        let conn = Connection::open(&path).map_err(db)?;
        // WAL: readers (api export) do not block the server; FULL: a commit is on disk before
        // the answer goes out. busy_timeout covers another process (api export) holding a lock.
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(db)?;
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(db)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .map_err(db)?;
        conn.execute_batch(SCHEMA).map_err(db)?;
        Ok(Store {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A handler that panicked while holding the lock dropped its transaction on the way
        // out, which rolled it back: the connection is usable, so the poison is ignored.
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one immediate (write-locking) transaction, committed only if `f` succeeds.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db_err)?;
        let out = f(&tx)?;
        tx.commit().map_err(db_err)?;
        Ok(out)
    }

    /// Runs `f` in one read transaction (a consistent snapshot).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(db_err)?;
        f(&tx)
    }
}

/// A database failure, logged on the server and answered as `InternalError`.
pub fn db_err(e: rusqlite::Error) -> ApiError {
    eprintln!("dnatsim api: database error: {e}");
    ApiError::internal()
}

/// The next value of counter `name` (1, 2, ...), inside the caller's transaction.
pub fn next(tx: &Transaction<'_>, name: &str) -> Result<i64, ApiError> {
    tx.execute(
        "INSERT INTO counters (name, n) VALUES (?1, 1) ON CONFLICT(name) DO UPDATE SET n = n + 1",
        params![name],
    )
    .map_err(db_err)?;
    tx.query_row(
        "SELECT n FROM counters WHERE name = ?1",
        params![name],
        |r| r.get(0),
    )
    .map_err(db_err)
}

/// A fresh resource id such as `ngw-0k3x9q2m1z7ab`: the prefix and a permutation of a counter
/// in base 36, so ids are unique (the permutation is a bijection) and look like the API's.
pub fn new_id(tx: &Transaction<'_>, prefix: &str) -> Result<String, ApiError> {
    let n = next(tx, "id")?;
    Ok(format!("{prefix}-{}", base36(splitmix64(n as u64))))
}

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn base36(mut v: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    // u64::MAX has 13 base-36 digits; pad so every id has the same length.
    let mut out = [b'0'; 13];
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(v % 36) as usize];
        v /= 36;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lowest free address of the pool `first..=last`, or `None` when all are taken.
pub fn free_ip(tx: &Transaction<'_>, first: u32, last: u32) -> Result<Option<Ipv4Addr>, ApiError> {
    let mut stmt = tx
        .prepare_cached("SELECT ipnum FROM ips WHERE ipnum BETWEEN ?1 AND ?2 ORDER BY ipnum")
        .map_err(db_err)?;
    let used = stmt
        .query_map(params![first, last], |r| r.get::<_, u32>(0))
        .map_err(db_err)?;
    let mut want = first;
    for u in used {
        let u = u.map_err(db_err)?;
        if u != want {
            break;
        }
        if want == last {
            return Ok(None);
        }
        want += 1;
    }
    Ok(Some(Ipv4Addr::from(want)))
}

/// One row of a query that may find nothing.
pub fn optional<T>(r: rusqlite::Result<T>) -> Result<Option<T>, ApiError> {
    r.optional().map_err(db_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_distinct_and_fixed_length() {
        let ids: std::collections::HashSet<String> =
            (1..5000u64).map(|n| base36(splitmix64(n))).collect();
        assert_eq!(ids.len(), 4999);
        assert!(ids.iter().all(|i| i.len() == 13));
    }
}
