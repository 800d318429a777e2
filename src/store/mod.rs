//! The state file: the only module that speaks SQL.
//!
//! One SQLite file holds every version, label, run, request row and finding. Opening it sets the pragmas
//! DESIGN.md asks for and applies embedded migrations, each in its own `BEGIN IMMEDIATE` transaction so that
//! two processes opening a fresh file at the same moment serialize instead of failing.

mod audit;
mod eval;
mod portfolios;
mod prompts;
mod requests;
mod streams;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{Connection, ErrorCode, OpenFlags, TransactionBehavior};

pub use audit::AuditEvent;
pub use eval::{EvalRunRow, NewEvalRun, StoredSample, StoredSampleDetail};
pub use portfolios::{
    DerivedObservation, ExposureRow, ImportCounts, NewPortfolioVersion, OutcomeRow, PortfolioVersion, RollbackApply,
    RollbackRecord,
};
pub use prompts::{CommitRecord, LabelEvent, NewCommit, StoredVersion};
pub use requests::{Inserted, ModelDay, NewRequest, RequestSource, RequestWriter};

/// One schema step: its SQL, then (where existing rows must be rewritten in a way SQL cannot express) a
/// data step, both in the step's transaction.
struct Migration {
    sql: &'static str,
    data: Option<fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, data: None }
}

/// Migrations in order; schema version N is the state after applying the first N.
const MIGRATIONS: &[Migration] = &[
    sql(include_str!("migrations/0001_init.sql")),
    sql(include_str!("migrations/0002_eval.sql")),
    sql(include_str!("migrations/0003_portfolio.sql")),
    sql(include_str!("migrations/0004_eval_runs.sql")),
    sql(include_str!("migrations/0005_drop_token_cache.sql")),
    sql(include_str!("migrations/0006_traces.sql")),
    Migration {
        sql: include_str!("migrations/0007_stream_blobs.sql"),
        data: Some(|tx| streams::migrate_stream_events(tx)),
    },
];

/// The schema version this build writes.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long a writer waits for another process's transaction before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no state file at {path}")]
    Missing { path: PathBuf },
    #[error("cannot create the state file at {path}: directory {dir} does not exist")]
    MissingDirectory { path: PathBuf, dir: PathBuf },
    #[error("{path} is not a promptctl state file (not an SQLite database)")]
    NotADatabase { path: PathBuf },
    #[error("{path} was written by a newer promptctl (schema {found}; this build knows up to {known})")]
    NewerSchema { path: PathBuf, found: i64, known: i64 },
    #[error("{path} is locked by another process and stayed locked for {waited_s} s")]
    Locked { path: PathBuf, waited_s: u64 },
    #[error("cannot write the state file {path}: {source}")]
    ReadOnly { path: PathBuf, source: rusqlite::Error },
    #[error("state file {path}: {source}")]
    Sqlite { path: PathBuf, source: rusqlite::Error },
    #[error("state file {path} holds inconsistent data: {detail}")]
    Corrupt { path: PathBuf, detail: String },
}

impl StoreError {
    /// What a person can do about it, for the CLI's `hint:` line.
    pub fn hint(&self) -> Option<String> {
        match self {
            StoreError::Missing { .. } => Some("run `promptctl init` to create it, or pass --state PATH".into()),
            StoreError::MissingDirectory { .. } => {
                Some("create the directory first, or pass another --state PATH".into())
            }
            StoreError::NotADatabase { .. } => {
                Some("point --state (or $PROMPTCTL_STATE) at a promptctl state file, or move this file away".into())
            }
            StoreError::NewerSchema { .. } => Some("upgrade promptctl, or use another --state file".into()),
            StoreError::Locked { .. } => {
                Some("another promptctl is writing to this file; retry when it has finished".into())
            }
            StoreError::ReadOnly { .. } => Some("check the file's permissions, or pass a writable --state PATH".into()),
            _ => None,
        }
    }
}

/// Whether opening may create the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Create the file (and `.promptctl/` when it is the default location) if it does not exist.
    CreateIfMissing,
    /// Fail with [`StoreError::Missing`] when the file does not exist.
    MustExist,
}

/// An open state file.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Opens (and if asked, creates) the state file at `path`, sets pragmas and brings the schema up to
    /// date. `create_parent` allows creating the missing parent directory (the default `.promptctl/`).
    pub fn open(path: &Path, mode: OpenMode, create_parent: bool) -> Result<Store, StoreError> {
        if !path.exists() {
            if mode == OpenMode::MustExist {
                return Err(StoreError::Missing { path: path.to_path_buf() });
            }
            prepare_parent(path, create_parent)?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| classify(path, e))?;
        let mut store = Store { conn, path: path.to_path_buf() };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    /// An in-memory state for unit tests.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| classify(&path, e))?;
        let mut store = Store { conn, path };
        store.configure()?;
        store.migrate()?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        self.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| self.err(e))
    }

    fn configure(&mut self) -> Result<(), StoreError> {
        self.conn.busy_timeout(BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        // Fails with NOTADB right here for a file that is not SQLite, before anything is written.
        self.conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;").map_err(|e| self.err(e))?;
        self.enable_wal()
    }

    /// Switching to WAL needs a moment of exclusive access; a concurrent first open can see SQLITE_BUSY
    /// without the busy handler being consulted, so retry within the busy timeout.
    fn enable_wal(&mut self) -> Result<(), StoreError> {
        let started = Instant::now();
        loop {
            let mode: Result<String, _> = self.conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0));
            match mode {
                Ok(_) => return Ok(()),
                Err(e) if is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => return Err(self.err(e)),
            }
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let current = self.schema_version()?;
        if current > SCHEMA_VERSION {
            return Err(self.newer_schema(current));
        }
        for (index, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let target = index as i64 + 1;
            let tx = self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| classify(&self.path, e))?;
            // Another process may have applied this step while we waited for the lock.
            let now: i64 =
                tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| classify(&self.path, e))?;
            if now > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema { path: self.path.clone(), found: now, known: SCHEMA_VERSION });
            }
            if now >= target {
                continue;
            }
            tx.execute_batch(step.sql).map_err(|e| classify(&self.path, e))?;
            if let Some(data) = step.data {
                data(&tx).map_err(|e| classify(&self.path, e))?;
            }
            tx.execute_batch(&format!("PRAGMA user_version = {target}")).map_err(|e| classify(&self.path, e))?;
            tx.commit().map_err(|e| classify(&self.path, e))?;
        }
        Ok(())
    }

    fn newer_schema(&self, found: i64) -> StoreError {
        StoreError::NewerSchema { path: self.path.clone(), found, known: SCHEMA_VERSION }
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction: all of it lands, or none of it.
    pub(crate) fn write<T>(
        &mut self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let path = self.path.clone();
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| classify(&path, e))?;
        let value = f(&tx).map_err(|e| classify(&path, e))?;
        tx.commit().map_err(|e| classify(&path, e))?;
        Ok(value)
    }

    pub(crate) fn err(&self, e: rusqlite::Error) -> StoreError {
        classify(&self.path, e)
    }

    /// A value from the `meta` table, created by `init` on first use.
    pub fn meta_get(&self, key: &str) -> Result<Option<String>, StoreError> {
        use rusqlite::OptionalExtension;
        self.conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Sets `key` to `value` unless it already has a value; returns the value in force.
    pub fn meta_get_or_insert(&mut self, key: &str, value: &str) -> Result<String, StoreError> {
        self.write(|tx| {
            tx.execute("INSERT OR IGNORE INTO meta (key, value) VALUES (?1, ?2)", [key, value])?;
            tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        })
    }
}

fn prepare_parent(path: &Path, create_parent: bool) -> Result<(), StoreError> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    if create_parent {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::ReadOnly {
            path: path.to_path_buf(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
        })
    } else {
        Err(StoreError::MissingDirectory { path: path.to_path_buf(), dir: dir.to_path_buf() })
    }
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(e.sqlite_error_code(), Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked))
}

fn classify(path: &Path, e: rusqlite::Error) -> StoreError {
    let path = path.to_path_buf();
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase) => StoreError::NotADatabase { path },
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Locked { path, waited_s: BUSY_TIMEOUT.as_secs() }
        }
        Some(ErrorCode::ReadOnly | ErrorCode::CannotOpen | ErrorCode::PermissionDenied) => {
            StoreError::ReadOnly { path, source: e }
        }
        _ => StoreError::Sqlite { path, source: e },
    }
}

/// Current UTC time as RFC 3339, the format every `*_at` column uses.
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().round(jiff::Unit::Millisecond).unwrap_or_else(|_| jiff::Timestamp::now()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_state_is_at_the_latest_schema() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let store = Store::open(&path, OpenMode::CreateIfMissing, false).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        let mode: String = store.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Idempotent.
        let store = Store::open(&path, OpenMode::MustExist, false).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        drop(Store::open(&path, OpenMode::CreateIfMissing, false).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1)).unwrap();
        drop(conn);
        let err = Store::open(&path, OpenMode::MustExist, false).err().unwrap();
        assert!(matches!(err, StoreError::NewerSchema { found, .. } if found == SCHEMA_VERSION + 1), "{err}");
    }

    #[test]
    fn a_file_that_is_not_sqlite_is_named_as_such_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        std::fs::write(&path, b"this is a text file, not a database, and it is long enough to have a header").unwrap();
        let before = std::fs::read(&path).unwrap();
        let err = Store::open(&path, OpenMode::MustExist, false).err().unwrap();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }

    #[test]
    fn a_missing_directory_is_reported_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope").join("state.db");
        let err = Store::open(&path, OpenMode::CreateIfMissing, false).err().unwrap();
        assert!(matches!(err, StoreError::MissingDirectory { .. }), "{err}");
        assert!(!path.parent().unwrap().exists());
    }
}
