//! The state file: the only module that speaks SQL.
//!
//! One SQLite file holds every version, label, run, request row and finding. Opening it sets the pragmas
//! DESIGN.md asks for and applies embedded migrations, each in its own `BEGIN IMMEDIATE` transaction so that
//! two processes opening a fresh file at the same moment serialize instead of failing.

mod audit;
mod checkpoint;
mod eval;
mod insert;
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
pub use requests::{Inserted, ModelDay, NewRequest, RequestKey, RequestSource, RequestWriter};

/// One schema step: its SQL, then (where existing rows must be rewritten in a way SQL cannot express) a
/// data step, both in the step's transaction.
struct Migration {
    sql: &'static str,
    data: Option<fn(&rusqlite::Transaction<'_>) -> rusqlite::Result<()>>,
    /// The step drops and recreates a table that others refer to: foreign keys are off while it runs (a
    /// dropped parent would otherwise cascade into its children) and checked before it commits.
    rebuilds_tables: bool,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, data: None, rebuilds_tables: false }
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
        rebuilds_tables: false,
    },
    Migration { sql: include_str!("migrations/0008_import_keys.sql"), data: None, rebuilds_tables: true },
    sql(include_str!("migrations/0009_drop_prompt_index.sql")),
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
        // Takes effect only on a file being created (before WAL mode is set); existing files keep theirs.
        // Request rows are a few hundred bytes: 16 KB pages split a fifth as often as 4 KB ones, and a bulk
        // import measured 10-15 % faster with the same reads (docs/performance.md, "Trace import").
        self.conn.execute_batch("PRAGMA page_size = 16384").map_err(|e| self.err(e))?;
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
        if current < SCHEMA_VERSION {
            requests::register_migration_functions(&self.conn).map_err(|e| self.err(e))?;
        }
        for (index, step) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            let target = index as i64 + 1;
            if step.rebuilds_tables {
                // Only outside a transaction does this pragma take effect.
                self.conn.execute_batch("PRAGMA foreign_keys = OFF").map_err(|e| self.err(e))?;
            }
            let applied = self.apply(step, target);
            if step.rebuilds_tables {
                self.conn.execute_batch("PRAGMA foreign_keys = ON").map_err(|e| self.err(e))?;
            }
            applied?;
        }
        Ok(())
    }

    /// Applies one step in its own transaction, unless another process already has.
    fn apply(&mut self, step: &Migration, target: i64) -> Result<(), StoreError> {
        let tx =
            self.conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(|e| classify(&self.path, e))?;
        // Another process may have applied this step while we waited for the lock.
        let now: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| classify(&self.path, e))?;
        if now > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path: self.path.clone(), found: now, known: SCHEMA_VERSION });
        }
        if now >= target {
            return Ok(());
        }
        tx.execute_batch(step.sql).map_err(|e| classify(&self.path, e))?;
        if let Some(data) = step.data {
            data(&tx).map_err(|e| classify(&self.path, e))?;
        }
        if step.rebuilds_tables {
            let broken: i64 = tx
                .query_row(
                    "SELECT (SELECT count(*) FROM pragma_foreign_key_check('request_stream'))
                          + (SELECT count(*) FROM pragma_foreign_key_check('eval_sample'))",
                    [],
                    |r| r.get(0),
                )
                .map_err(|e| classify(&self.path, e))?;
            if broken > 0 {
                let detail = format!("{broken} row(s) refer to rows that do not exist (schema step {target})");
                return Err(StoreError::Corrupt { path: self.path.clone(), detail });
            }
        }
        tx.execute_batch(&format!("PRAGMA user_version = {target}")).map_err(|e| classify(&self.path, e))?;
        tx.commit().map_err(|e| classify(&self.path, e))?;
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
    fn new_files_get_16_kb_pages_and_existing_files_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |store: &Store| store.conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0)).unwrap();
        let new = dir.path().join("new.db");
        assert_eq!(page_size(&Store::open(&new, OpenMode::CreateIfMissing, false).unwrap()), 16384);
        let old = dir.path().join("old.db");
        Connection::open(&old).unwrap().execute_batch("PRAGMA page_size = 4096; CREATE TABLE t (x);").unwrap();
        assert_eq!(page_size(&Store::open(&old, OpenMode::MustExist, false).unwrap()), 4096);
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

#[cfg(test)]
mod migration_tests {
    use rusqlite::params;

    use super::*;
    use crate::trace::import::normalize::key_digest;
    use crate::trace::model::Digest;

    /// A state file at schema 7 with an imported span, an imported row without ids, an eval attempt
    /// with its sample, a key that no row gives back, and a stream blob.
    fn schema_7_state(path: &Path) {
        let mut conn = Connection::open(path).unwrap();
        for (i, step) in MIGRATIONS[..7].iter().enumerate() {
            let tx = conn.transaction().unwrap();
            tx.execute_batch(step.sql).unwrap();
            if let Some(data) = step.data {
                data(&tx).unwrap();
            }
            tx.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).unwrap();
            tx.commit().unwrap();
        }
        let hash = Digest([7; 16]).to_string();
        for (id, source, key, trace, span, content_hash) in [
            (1, "import", "span:4bf9/00f0".to_string(), Some("4bf9"), Some("00f0"), Some(hash.clone())),
            (2, "import", format!("sha:{hash}"), None, None, Some(hash.clone())),
            (3, "eval", "r-1/a/0/1".to_string(), None, None, None),
            (4, "import", "legacy-key".to_string(), Some("aa"), None, None),
        ] {
            conn.execute(
                "INSERT INTO request (id, source, source_key, content_hash, ts_ms, provider, request_model,
                   trace_id, span_id, attempt, status, streamed, usage_source, input_total, input_uncached,
                   cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, batch)
                 VALUES (?1, ?2, ?3, ?4, 1000, 'openai', 'gpt-4o', ?5, ?6, 1, 'ok', 1, 'provider', 10, 10, 0, 0, 0,
                   5, 0, 0)",
                params![id, source, key, content_hash, trace, span],
            )
            .unwrap();
        }
        conn.execute_batch(
            "INSERT INTO request_stream (request_id, checkpoints, data) VALUES (1, 0, x'0100');
             INSERT INTO eval_run (run_id, suite, suite_json, provider, samples, require, concurrency, samples_total,
               status, started_at) VALUES ('r-1', 's', '{}', 'sim', 1, 1, 1, 1, 'complete', '2026-10-01T00:00:00Z');
             INSERT INTO eval_sample (run_id, case_id, sample, outcome, assertions, attempts, request_id,
               completed_at) VALUES ('r-1', 'a', 0, 'pass', '[]', 1, 3, '2026-10-01T00:00:00Z');",
        )
        .unwrap();
    }

    /// id, stored key text, key digest, content hash, key text as read.
    type KeyColumns = (i64, Option<String>, Vec<u8>, Option<Vec<u8>>, String);

    #[test]
    fn schema_8_keeps_every_row_and_key_and_stays_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        schema_7_state(&path);
        let mut store = Store::open(&path, OpenMode::MustExist, false).unwrap();
        assert_eq!(store.schema_version().unwrap(), SCHEMA_VERSION);
        // Schema 9 dropped the prompt index; the others are there.
        let indexes: Vec<String> = store
            .conn
            .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'request' AND sql IS NOT NULL ORDER BY 1")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(indexes, ["request_by_logical_id", "request_by_source_key", "request_by_time"]);
        let foreign_keys: i64 = store.conn.query_row("PRAGMA foreign_keys", [], |r| r.get(0)).unwrap();
        assert_eq!(foreign_keys, 1);
        let rows: Vec<KeyColumns> = store
            .conn
            .prepare(&format!(
                "SELECT id, source_key, key, content_hash, {} FROM request ORDER BY id",
                requests::SOURCE_KEY_SQL
            ))
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let hash = Digest([7; 16]);
        let expected_keys =
            ["span:4bf9/00f0".to_string(), format!("sha:{hash}"), "r-1/a/0/1".into(), "legacy-key".into()];
        for ((id, stored, digest, content, text), key) in rows.iter().zip(&expected_keys) {
            assert_eq!(text, key, "row {id}: the key reads back as it was");
            assert_eq!(digest[..], key_digest(key).0[..], "row {id}");
            // Imported rows keep no text the row can give back; other keys keep theirs.
            assert_eq!(stored.is_none(), *id <= 2, "row {id}: {stored:?}");
            assert_eq!(content.is_some(), *id <= 2, "row {id}");
        }
        assert_eq!(rows[0].3.as_deref(), Some(&hash.0[..]));
        let joined: i64 = store
            .conn
            .query_row(
                "SELECT (SELECT count(*) FROM eval_sample s JOIN request q ON q.id = s.request_id)
                      + (SELECT count(*) FROM request_stream s JOIN request q ON q.id = s.request_id)",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(joined, 2);
        // Importing the stored span again is a duplicate; with other content, a conflict.
        let row = crate::trace::model::RequestRow {
            ts: jiff::Timestamp::from_millisecond(1000).unwrap(),
            trace_id: Some("4bf9".into()),
            span_id: Some("00f0".into()),
            ..store.request_rows(&Default::default()).unwrap().remove(0)
        };
        let key = crate::trace::import::normalize::import_key_digest(&row, &hash);
        let new = |content_hash| NewRequest {
            source: RequestSource::Import,
            key: RequestKey::Import(key),
            content_hash: Some(content_hash),
            row: &row,
        };
        assert_eq!(
            store.insert_requests(&[new(hash), new(Digest([8; 16]))]).unwrap(),
            [Inserted::Duplicate(1), Inserted::Conflict(1)]
        );
        let eval = NewRequest {
            source: RequestSource::Eval,
            key: RequestKey::Text("r-1/a/0/1"),
            content_hash: None,
            row: &row,
        };
        assert_eq!(store.insert_requests(&[eval]).unwrap(), [Inserted::Duplicate(3)]);
        assert_eq!(store.request_count().unwrap(), 4);
    }
}
