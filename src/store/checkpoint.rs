//! Checkpoints of the write-ahead log on a thread of their own, for bulk writes (`trace import`).
//!
//! In WAL mode a commit appends pages to the log, and a checkpoint copies them into the database file and
//! syncs both files. SQLite's automatic checkpoint runs inside the committing call, so a bulk import
//! stopped at every commit while the pages were copied and the disk caught up: a third of the wall time
//! of importing 194k rows (docs/performance.md, "Trace import"). Here the writer's connection does not
//! checkpoint; after each commit it asks this thread, whose own connection checkpoints in `PASSIVE` mode
//! (copies what is committed without waiting for the writer, which goes on appending).
//!
//! The log is rewound only when a write transaction begins after a checkpoint copied all of it, which
//! rarely happens while the writer runs ahead. So that the log does not grow to the size of the import,
//! the writer waits for the checkpoint in flight once the log is larger than [`LOG_LIMIT`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};

/// Log size above which the writer lets the checkpoint catch up before its next transaction.
const LOG_LIMIT: u64 = 256 << 20;

#[derive(Default)]
struct Progress {
    /// Checkpoints asked for so far.
    requested: u64,
    /// How many of them are done: a checkpoint covers every request made before it started.
    completed: u64,
    /// The first failure, until a wait reports it; no checkpoint is attempted after it. (What failed to
    /// be copied is still in the log, committed: SQLite itself ignores a failed automatic checkpoint.)
    error: Option<rusqlite::Error>,
    failed: bool,
    closing: bool,
}

type Shared = Arc<(Mutex<Progress>, Condvar)>;

pub(crate) struct Checkpointer {
    shared: Shared,
    thread: Option<JoinHandle<()>>,
    log: PathBuf,
}

impl Checkpointer {
    /// Starts the thread with its own connection to `path`. `None` where there is no log to checkpoint
    /// (an in-memory state) or no second connection can be opened; the writer then checkpoints as usual.
    pub fn start(path: &Path) -> Option<Checkpointer> {
        if path.as_os_str() == ":memory:" {
            return None;
        }
        let conn =
            Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)
                .ok()?;
        conn.busy_timeout(super::BUSY_TIMEOUT).ok()?;
        let mode: String = conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).ok()?;
        if !mode.eq_ignore_ascii_case("wal") {
            return None;
        }
        let shared: Shared = Arc::default();
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("promptctl-checkpoint".into())
                .spawn(move || checkpoint_on_request(&conn, &shared))
                .ok()?
        };
        let mut log = path.as_os_str().to_owned();
        log.push("-wal");
        Some(Checkpointer { shared, thread: Some(thread), log: log.into() })
    }

    /// Asks for a checkpoint of everything committed so far; returns at once.
    pub fn request(&self) {
        let (lock, wake) = &*self.shared;
        lock_progress(lock).requested += 1;
        wake.notify_all();
    }

    /// Waits for the checkpoints asked for when the log has grown past [`LOG_LIMIT`], so that the next
    /// transaction can rewind it.
    pub fn bound_log(&self) -> rusqlite::Result<()> {
        let size = std::fs::metadata(&self.log).map_or(0, |m| m.len());
        if size > LOG_LIMIT { self.wait() } else { Ok(()) }
    }

    /// Waits for every checkpoint asked for; the first failure, if any.
    pub fn wait(&self) -> rusqlite::Result<()> {
        let (lock, wake) = &*self.shared;
        let mut progress = lock_progress(lock);
        while progress.completed < progress.requested && !progress.failed {
            progress = wake.wait(progress).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        match progress.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (lock, wake) = &*self.shared;
        lock_progress(lock).closing = true;
        wake.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock_progress(lock: &Mutex<Progress>) -> MutexGuard<'_, Progress> {
    // The thread holds the lock only to read and write counters; a panic cannot leave them half-updated.
    lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn checkpoint_on_request(conn: &Connection, shared: &Shared) {
    let (lock, wake) = &**shared;
    loop {
        let target = {
            let mut progress = lock_progress(lock);
            while progress.completed == progress.requested && !progress.closing {
                progress = wake.wait(progress).unwrap_or_else(|poisoned| poisoned.into_inner());
            }
            if progress.completed == progress.requested {
                return;
            }
            progress.requested
        };
        // PASSIVE copies what is committed without waiting for readers or the writer; what it cannot copy
        // yet (another process checkpointing, a reader on an old snapshot) stays in the log, committed and
        // visible, for the next checkpoint or the last connection's close.
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
        let mut progress = lock_progress(lock);
        progress.completed = target;
        wake.notify_all();
        if let Err(e) = outcome {
            progress.error = Some(e);
            progress.failed = true;
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_copy_committed_pages_while_another_connection_writes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let writer = Connection::open(&path).unwrap();
        writer
            .execute_batch("PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0; CREATE TABLE t (x BLOB);")
            .unwrap();
        let checkpointer = Checkpointer::start(&path).expect("a WAL file on disk");
        for round in 0..3 {
            writer.execute_batch("BEGIN").unwrap();
            for _ in 0..200 {
                writer.execute("INSERT INTO t VALUES (zeroblob(4000))", []).unwrap();
            }
            writer.execute_batch("COMMIT").unwrap();
            checkpointer.request();
            if round == 1 {
                checkpointer.wait().unwrap();
            }
        }
        checkpointer.wait().unwrap();
        drop(checkpointer);
        // Everything committed is in the database file: a checkpoint now has nothing left to copy.
        let (log, copied): (i64, i64) =
            writer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?))).unwrap();
        assert_eq!(log, copied);
        let rows: i64 = writer.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(rows, 600);
    }

    #[test]
    fn there_is_no_checkpointer_for_an_in_memory_state_or_a_rollback_journal() {
        assert!(Checkpointer::start(Path::new(":memory:")).is_none());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        Connection::open(&path).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(Checkpointer::start(&path).is_none());
    }
}
