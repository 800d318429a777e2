//! Which runs are being run right now: a process running (or resuming) a run holds an exclusive OS lock
//! on `<state file>-runs/<run_id>.lock`. The OS drops the lock when the process dies, even by SIGKILL, so
//! `eval list` can tell a killed run from a running one and `eval resume` refuses to race a live run.

use std::fs::{File, OpenOptions, TryLockError};
use std::io;
use std::path::{Path, PathBuf};

/// Held for as long as this process runs a run.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
    file: File,
}

fn lock_dir(state: &Path) -> PathBuf {
    let mut name = state.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push("-runs");
    state.with_file_name(name)
}

fn lock_path(state: &Path, run_id: &str) -> PathBuf {
    lock_dir(state).join(format!("{run_id}.lock"))
}

impl RunLock {
    /// Takes the lock of `run_id`; None when another process holds it.
    pub fn acquire(state: &Path, run_id: &str) -> io::Result<Option<RunLock>> {
        let path = lock_path(state, run_id);
        let mut tries = 0;
        // Another run finishing at this moment may remove the (then empty) directory in between.
        let file = loop {
            std::fs::create_dir_all(lock_dir(state))?;
            match OpenOptions::new().create(true).truncate(false).write(true).open(&path) {
                Err(e) if e.kind() == io::ErrorKind::NotFound && tries < 5 => tries += 1,
                opened => break opened?,
            }
        };
        match file.try_lock() {
            Ok(()) => Ok(Some(RunLock { path, file })),
            Err(TryLockError::WouldBlock) => Ok(None),
            Err(TryLockError::Error(e)) => Err(e),
        }
    }

    /// Whether a process holds the lock of `run_id` right now.
    pub fn is_held(state: &Path, run_id: &str) -> bool {
        let Ok(file) = File::open(lock_path(state, run_id)) else { return false };
        match file.try_lock_shared() {
            Ok(()) => {
                let _ = file.unlock();
                false
            }
            Err(TryLockError::WouldBlock) => true,
            Err(TryLockError::Error(_)) => false,
        }
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
        if let Some(dir) = self.path.parent() {
            // Only succeeds when no other run's lock is left in it.
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_seen_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state.db");
        assert!(!RunLock::is_held(&state, "r-1"));
        let lock = RunLock::acquire(&state, "r-1").unwrap().unwrap();
        assert!(RunLock::is_held(&state, "r-1"));
        assert!(RunLock::acquire(&state, "r-1").unwrap().is_none());
        drop(lock);
        assert!(!RunLock::is_held(&state, "r-1"));
        assert!(!dir.path().join("state.db-runs").exists());
    }
}
