//! A prepared statement that binds text and blobs without copying them, for the request insert.
//!
//! rusqlite binds every text as `SQLITE_TRANSIENT`: SQLite allocates and copies each one before the
//! statement runs. A request row binds a dozen strings, and those copies with their allocations were a
//! fifth of the instructions of inserting a row (callgrind; docs/performance.md, "Trace import"). Here
//! they are bound as `SQLITE_STATIC`, which SQLite reads in place. That is sound because the values are
//! borrowed only for [`StaticStatement::execute`]: it binds every parameter, steps, resets and clears
//! the bindings before it returns, so no pointer outlives the borrow.
//!
//! This is the crate's only `unsafe` code; it is kept to the calls of SQLite's C API below.

use std::ffi::{CStr, CString, c_int};
use std::marker::PhantomData;
use std::ptr;

use rusqlite::{Connection, ffi};

/// One parameter value, borrowed for one execution.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Param<'a> {
    Null,
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
}

impl<'a> Param<'a> {
    pub fn text(value: Option<&'a str>) -> Param<'a> {
        value.map_or(Param::Null, Param::Text)
    }

    pub fn int(value: Option<i64>) -> Param<'a> {
        value.map_or(Param::Null, Param::Int)
    }
}

/// A prepared statement on `conn`; finalized when dropped (before the connection, which it borrows).
pub(crate) struct StaticStatement<'c> {
    db: *mut ffi::sqlite3,
    stmt: *mut ffi::sqlite3_stmt,
    parameters: usize,
    _conn: PhantomData<&'c Connection>,
}

impl<'c> StaticStatement<'c> {
    pub fn prepare(conn: &'c Connection, sql: &str) -> rusqlite::Result<StaticStatement<'c>> {
        let text = CString::new(sql).map_err(|_| rusqlite::Error::InvalidQuery)?;
        // SAFETY: the handle is the live connection `conn` borrows for 'c, and this statement does not
        // outlive it. SQLite writes the statement (or null) to `stmt`.
        unsafe {
            let db = conn.handle();
            let mut stmt = ptr::null_mut();
            let rc = ffi::sqlite3_prepare_v3(
                db,
                text.as_ptr(),
                -1,
                ffi::SQLITE_PREPARE_PERSISTENT,
                &mut stmt,
                ptr::null_mut(),
            );
            if rc != ffi::SQLITE_OK {
                return Err(error(db, rc));
            }
            let parameters = ffi::sqlite3_bind_parameter_count(stmt) as usize;
            Ok(StaticStatement { db, stmt, parameters, _conn: PhantomData })
        }
    }

    /// Runs the statement with `params` (one per parameter, in order) and returns the rows it changed.
    pub fn execute(&mut self, params: &[Param<'_>]) -> rusqlite::Result<usize> {
        if params.len() != self.parameters {
            return Err(rusqlite::Error::InvalidParameterCount(params.len(), self.parameters));
        }
        // SAFETY: `stmt` is a live statement of `db`. Texts and blobs are bound as SQLITE_STATIC, read by
        // SQLite only during the step below; the bindings are cleared before `params` can be dropped.
        unsafe {
            let mut rc = ffi::SQLITE_OK;
            for (i, param) in params.iter().enumerate() {
                let index = i as c_int + 1;
                rc = match *param {
                    Param::Null => ffi::sqlite3_bind_null(self.stmt, index),
                    Param::Int(v) => ffi::sqlite3_bind_int64(self.stmt, index, v),
                    Param::Text(s) => ffi::sqlite3_bind_text64(
                        self.stmt,
                        index,
                        s.as_ptr().cast(),
                        s.len() as u64,
                        ffi::SQLITE_STATIC(),
                        ffi::SQLITE_UTF8 as u8,
                    ),
                    Param::Blob(b) => ffi::sqlite3_bind_blob64(
                        self.stmt,
                        index,
                        b.as_ptr().cast(),
                        b.len() as u64,
                        ffi::SQLITE_STATIC(),
                    ),
                };
                if rc != ffi::SQLITE_OK {
                    break;
                }
            }
            if rc == ffi::SQLITE_OK {
                rc = ffi::sqlite3_step(self.stmt);
            }
            let changed = ffi::sqlite3_changes64(self.db);
            // A failed step's error is also what reset reports; take the message before resetting.
            let outcome = if rc == ffi::SQLITE_DONE { Ok(changed.max(0) as usize) } else { Err(error(self.db, rc)) };
            ffi::sqlite3_reset(self.stmt);
            ffi::sqlite3_clear_bindings(self.stmt);
            outcome
        }
    }
}

impl Drop for StaticStatement<'_> {
    fn drop(&mut self) {
        // SAFETY: the statement is live and finalized once, before the connection it borrows closes.
        unsafe {
            ffi::sqlite3_finalize(self.stmt);
        }
    }
}

/// The connection's current error, as rusqlite reports it.
///
/// # Safety
/// `db` must be a live connection.
unsafe fn error(db: *mut ffi::sqlite3, rc: c_int) -> rusqlite::Error {
    // SAFETY: per this function's contract; SQLite returns a NUL-terminated message it owns.
    let (code, message) = unsafe {
        let code = ffi::sqlite3_extended_errcode(db);
        let message = ffi::sqlite3_errmsg(db);
        let text = if message.is_null() { None } else { Some(CStr::from_ptr(message).to_string_lossy().into_owned()) };
        (if code == ffi::SQLITE_OK { rc } else { code }, text)
    };
    rusqlite::Error::SqliteFailure(ffi::Error::new(code), message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_every_kind_and_reports_constraint_errors() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT UNIQUE, c BLOB, d TEXT NOT NULL) STRICT").unwrap();
        let mut insert = StaticStatement::prepare(&conn, "INSERT INTO t VALUES (?1, ?2, ?3, ?4)").unwrap();
        let text = String::from("naïve");
        let blob = vec![0u8, 1, 2];
        assert_eq!(
            insert.execute(&[Param::Int(7), Param::Text(&text), Param::Blob(&blob), Param::Text("")]).unwrap(),
            1
        );
        drop((text, blob));
        let err = insert.execute(&[Param::Null, Param::Text("naïve"), Param::Null, Param::Text("x")]).unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(rusqlite::ErrorCode::ConstraintViolation), "{err}");
        assert!(insert.execute(&[Param::Null, Param::Null, Param::Null, Param::Null]).is_err());
        assert!(matches!(insert.execute(&[Param::Null]), Err(rusqlite::Error::InvalidParameterCount(1, 4))));
        // Still usable after errors.
        assert_eq!(insert.execute(&[Param::Null, Param::Null, Param::Null, Param::Text("y")]).unwrap(), 1);
        let back: (i64, String, Vec<u8>) =
            conn.query_row("SELECT a, b, c FROM t WHERE a = 7", [], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?))).unwrap();
        assert_eq!(back, (7, "naïve".to_string(), vec![0, 1, 2]));
    }
}
