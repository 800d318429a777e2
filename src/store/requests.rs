//! Normalized request rows and their stream checkpoints: idempotent batch inserts (for trace import and
//! eval runs alike) and the compact reads the analyses use.

use std::collections::HashMap;

use jiff::Timestamp;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, Row, params};

use super::checkpoint::Checkpointer;
use super::insert::{Param, StaticStatement};
use super::{Store, StoreError, streams};
use crate::scan::TraceRecord;
use crate::trace::import::normalize::key_digest;
use crate::trace::model::{Digest, RequestRow, RequestStatus, Usage, UsageSource};
use crate::trace::records::{
    Call, CallIds, CallParts, Calls, Checkpoints, Chunk, RequestFilter, Symbols, logical_hash_bytes,
};

/// Where a request row comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestSource {
    /// `trace import`.
    Import,
    /// `eval run`: one row per attempt of a sample.
    Eval,
}

impl RequestSource {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestSource::Import => "import",
            RequestSource::Eval => "eval",
        }
    }
}

/// A row to insert.
#[derive(Debug, Clone, Copy)]
pub struct NewRequest<'a> {
    pub source: RequestSource,
    /// The idempotency key: a row whose key is already stored is not inserted again.
    pub key: RequestKey<'a>,
    /// A hash of the row's content; a stored row with the same key and another hash is a conflict.
    /// `None` skips the comparison.
    pub content_hash: Option<Digest>,
    pub row: &'a RequestRow,
}

/// How a row's idempotency key is given and what it is unique with.
#[derive(Debug, Clone, Copy)]
pub enum RequestKey<'a> {
    /// An imported row's key, by its digest ([`crate::trace::import::ImportedRow::key`]). Its text
    /// (`span:TRACE/SPAN`, else `sha:CONTENT_HASH`) is not stored: the row gives it back. Unique together
    /// with the row's start time, so that rows in time order insert in index order; the same span with
    /// another start time is another row.
    Import(Digest),
    /// A key stored as written and unique by itself (eval runs: `RUN/CASE/SAMPLE/ATTEMPT`).
    Text(&'a str),
}

impl RequestKey<'_> {
    fn digest(&self) -> Digest {
        match self {
            RequestKey::Import(digest) => *digest,
            RequestKey::Text(text) => key_digest(text),
        }
    }
}

/// What inserting one row did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inserted {
    /// A new row, with its id.
    New(i64),
    /// The key was stored before with the same content (or without a hash to compare); nothing changed.
    Duplicate(i64),
    /// The key was stored before with other content. The stored row is kept.
    Conflict(i64),
}

impl Inserted {
    pub fn id(self) -> i64 {
        match self {
            Inserted::New(id) | Inserted::Duplicate(id) | Inserted::Conflict(id) => id,
        }
    }
}

/// Without a conflict target, DO NOTHING applies to both keys: (ts_ms, key) and source_key.
const INSERT_REQUEST: &str = "INSERT INTO request (source, key, source_key, content_hash, ts_ms, provider,
    request_model, response_model, project, api_key_ref, tenant_id, conversation_id, trace_id, span_id,
    logical_request_id, attempt, status, streamed, usage_source, input_total, input_uncached, cache_read,
    cache_write_5m, cache_write_1h, output_total, reasoning, service_tier, batch, latency_ms, ttft_ms, prompt_name,
    prompt_version, finish_reason, error, messages, output)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23,
    ?24, ?25, ?26, ?27, ?28, ?29, ?30, ?31, ?32, ?33, ?34, ?35, ?36)
  ON CONFLICT DO NOTHING";

/// The idempotency key of every row as text: stored for keys given as text, rebuilt from the row for
/// imported ones ([`crate::trace::import::import_key`]: `span:TRACE/SPAN`, else `sha:CONTENT_HASH`).
pub(crate) const SOURCE_KEY_SQL: &str = "coalesce(source_key, CASE WHEN trace_id IS NOT NULL AND span_id IS NOT NULL
    THEN 'span:' || trace_id || '/' || span_id ELSE 'sha:' || lower(hex(content_hash)) END)";

/// The SQL function schema 8's migration computes key digests with: `promptctl_key_digest(text)`.
pub(crate) fn register_migration_functions(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "promptctl_key_digest",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let key = match ctx.get_raw(0) {
                ValueRef::Text(bytes) => Digest::of_parts(&[bytes]),
                ValueRef::Null => Digest::default(),
                other => Digest::of_parts(&[other.as_bytes().unwrap_or_default()]),
            };
            Ok(key.0.to_vec())
        },
    )
}

/// SQLite's default page cache is 2 MB; the key and time indexes of a large import outgrow that quickly
/// and every insert then reads pages back from disk. 128 MB keeps a few million rows' worth of index hot;
/// it is a ceiling, not an allocation.
pub(super) const BULK_CACHE_KIB: i64 = 128 * 1024;

/// A bulk import commits this often. Rows reach the time index in time order (schema 8), so a commit
/// rewrites few index pages besides the new ones. What is left to copy into the database file when the
/// import ends is the last commit's pages: smaller commits keep that serial step short (checkpoints of
/// earlier commits run beside the writer, [`Checkpointer`]). An interrupted import loses at most the rows
/// since the last commit, and importing again restores them.
/// (Small in unit tests, so that they commit several times.)
const ROWS_PER_COMMIT: usize = if cfg!(test) { 40 } else { 20_000 };

impl Store {
    /// Inserts a batch in one transaction. Rows whose key is already stored are not inserted; the result
    /// says, per row, whether it was new, a duplicate, or a conflict (same key, other content).
    pub fn insert_requests(&mut self, batch: &[NewRequest<'_>]) -> Result<Vec<Inserted>, StoreError> {
        self.write(|tx| insert_requests_in(tx, batch))
    }

    /// A writer for many batches (trace import): one transaction over up to [`ROWS_PER_COMMIT`] rows,
    /// with a larger page cache. Call [`RequestWriter::finish`]; dropping it without rolls back the rows
    /// since the last commit.
    pub fn request_writer(&mut self) -> Result<RequestWriter<'_>, StoreError> {
        self.conn.execute_batch(&format!("PRAGMA cache_size = -{BULK_CACHE_KIB}")).map_err(|e| self.err(e))?;
        let checkpointer = Checkpointer::start(&self.path);
        if checkpointer.is_some() {
            self.conn.execute_batch("PRAGMA wal_autocheckpoint = 0").map_err(|e| self.err(e))?;
        }
        let store: &Store = self;
        let statements = Statements::prepare(&store.conn).map_err(|e| store.err(e))?;
        Ok(RequestWriter { store, statements, checkpointer, in_transaction: false, since_commit: 0 })
    }

    /// Stored requests matching `filter`, in insertion order, reduced for analysis: the parts not in
    /// `parts` are left empty.
    ///
    /// Decoding a million rows is CPU-bound in SQLite; a large state file is read in two halves of the id
    /// range at once, each on its own read-only connection. Both read the rows that existed when the read
    /// started (ids only grow), so a concurrent import cannot mix in half a batch.
    pub fn calls(&self, filter: &RequestFilter, parts: CallParts) -> Result<Calls, StoreError> {
        let (lo, hi): (Option<i64>, Option<i64>) = self
            .conn
            // Two subqueries: each is one B-tree descent, where `SELECT min(id), max(id)` scans the table.
            .query_row("SELECT (SELECT min(id) FROM request), (SELECT max(id) FROM request)", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .map_err(|e| self.err(e))?;
        let (Some(lo), Some(hi)) = (lo, hi) else {
            return Ok(Calls::default());
        };
        if hi - lo < PARALLEL_ROWS {
            return read_calls(&self.conn, filter, parts, lo, hi).map_err(|e| self.err(e));
        }
        let (Some(first), Some(second)) = (self.read_connection()?, self.read_connection()?) else {
            return read_calls(&self.conn, filter, parts, lo, hi).map_err(|e| self.err(e));
        };
        let mid = lo + (hi - lo) / 2;
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(move || read_calls(&first, filter, parts, lo, mid));
            let b = read_calls(&second, filter, parts, mid + 1, hi);
            (a.join().expect("the reading thread does not panic"), b)
        });
        let (a, b) = (a.map_err(|e| self.err(e))?, b.map_err(|e| self.err(e))?);
        Ok(a.append(b))
    }

    /// Another connection to the state file, for reading in parallel; `None` for an in-memory state.
    fn read_connection(&self) -> Result<Option<Connection>, StoreError> {
        if self.path.as_os_str() == ":memory:" {
            return Ok(None);
        }
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags).map_err(|e| self.err(e))?;
        conn.busy_timeout(super::BUSY_TIMEOUT).map_err(|e| self.err(e))?;
        // Map the file rather than copy each page through read(): analyses touch every page once.
        conn.execute_batch(READ_PRAGMAS).map_err(|e| self.err(e))?;
        Ok(Some(conn))
    }

    /// The trace and span ids of stored requests, by row id.
    pub fn call_ids(&self, ids: &[i64]) -> Result<HashMap<i64, CallIds>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT trace_id, span_id, logical_request_id FROM request WHERE id = ?1")
            .map_err(|e| self.err(e))?;
        let mut out = HashMap::with_capacity(ids.len());
        for &id in ids {
            let found = stmt
                .query_row([id], |r| {
                    Ok(CallIds { trace_id: r.get(0)?, span_id: r.get(1)?, logical_request_id: r.get(2)? })
                })
                .map_err(|e| self.err(e))?;
            out.insert(id, found);
        }
        Ok(out)
    }

    /// Calls `visit` with each request's checkpoints, for the requests whose ids are in `ids` (sorted
    /// ascending). Texts are borrowed from buffers reused between requests. Many requests are read in two
    /// halves at once, each on its own connection: `visit` may be called from two threads.
    pub fn for_each_stream(
        &self,
        ids: &[i64],
        visit: &(dyn Fn(i64, Checkpoints<'_>) + Sync),
    ) -> Result<(), StoreError> {
        if ids.len() < PARALLEL_STREAMS {
            return scan_streams(&self.conn, ids, visit).map_err(|e| self.err(e));
        }
        let (Some(first), Some(second)) = (self.read_connection()?, self.read_connection()?) else {
            return scan_streams(&self.conn, ids, visit).map_err(|e| self.err(e));
        };
        let (low, high) = ids.split_at(ids.len() / 2);
        let (a, b) = std::thread::scope(|scope| {
            let a = scope.spawn(move || scan_streams(&first, low, visit));
            let b = scan_streams(&second, high, visit);
            (a.join().expect("the reading thread does not panic"), b)
        });
        a.and(b).map_err(|e| self.err(e))
    }

    /// Models (and service tiers) seen in stored requests, per UTC day, with their row counts.
    pub fn models_by_day(&self) -> Result<Vec<ModelDay>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT provider, request_model, response_model, service_tier, batch, ts_ms / 86400000, count(*)
                 FROM request GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(ModelDay {
                    provider: r.get(0)?,
                    request_model: r.get(1)?,
                    response_model: r.get(2)?,
                    service_tier: r.get(3)?,
                    batch: r.get::<_, i64>(4)? != 0,
                    day: r.get(5)?,
                    rows: r.get::<_, i64>(6)? as u64,
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))
    }

    /// How many request rows the state holds.
    pub fn request_count(&self) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM request", [], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.err(e))
    }

    /// Imported request rows that carry messages or an output, as leak-scan records, in id order. Read
    /// `chunk` rows at a time (a state of any size stays within a chunk's memory); `each` scans a chunk
    /// before the next is read. Rows made by `eval run` are left out: they are promptctl's own requests,
    /// not a tenant's traffic. Returns the number of rows read.
    pub fn scan_request_rows(&self, chunk: usize, mut each: impl FnMut(Vec<TraceRecord>)) -> Result<u64, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT id, tenant_id, trace_id, ts_ms, prompt_name, messages, output FROM request
                 WHERE id > ?1 AND source = 'import' AND (messages IS NOT NULL OR output IS NOT NULL)
                 ORDER BY id LIMIT ?2",
            )
            .map_err(|e| self.err(e))?;
        let (mut after, mut total) = (i64::MIN, 0u64);
        loop {
            let mut last = None;
            let rows = stmt
                .query_map(params![after, chunk.max(1) as i64], |r| {
                    last = Some(r.get::<_, i64>(0)?);
                    let messages: Option<String> = r.get(5)?;
                    let messages: Vec<crate::trace::model::Message> =
                        messages.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default();
                    Ok(TraceRecord {
                        tenant_id: r.get(1)?,
                        trace_id: r.get(2)?,
                        ts: jiff::Timestamp::from_millisecond(r.get(3)?).ok(),
                        prompt_name: r.get(4)?,
                        messages: messages.into_iter().map(|m| (m.role, m.content)).collect(),
                        output: r.get(6)?,
                    })
                })
                .map_err(|e| self.err(e))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| self.err(e))?;
            let Some(id) = last else { return Ok(total) };
            total += rows.len() as u64;
            after = id;
            each(rows);
        }
    }

    /// Full stored rows (with messages, output and checkpoints) matching `filter`, in insertion order.
    pub fn request_rows(&self, filter: &RequestFilter) -> Result<Vec<RequestRow>, StoreError> {
        let (condition, values) = where_clause(filter);
        let sql = format!("SELECT {ROW_COLUMNS} FROM request{condition}");
        let mut stmt = self.conn.prepare(&sql).map_err(|e| self.err(e))?;
        let rows = stmt.query_map(rusqlite::params_from_iter(values.iter()), row_from_sql).map_err(|e| self.err(e))?;
        let mut out: Vec<(i64, RequestRow)> = rows.collect::<Result<Vec<_>, _>>().map_err(|e| self.err(e))?;
        for (id, row) in &mut out {
            row.stream = streams::read(&self.conn, *id).map_err(|e| self.err(e))?;
        }
        Ok(out.into_iter().map(|(_, row)| row).collect())
    }

    /// Streams the stored requests matching `filter` to `visit` in time order (ties in key order), so that a
    /// month of a million rows is never held in memory; returns how many it read.
    /// Rows carry what describes a call and what it was billed for: provider, models, project, API key,
    /// conversation, logical request, attempt, status, streamed, usage and its source, tier and batch.
    /// Tenant, trace and span ids, latencies, prompt, finish reason, error, messages and output are not
    /// read (left empty). Stream checkpoints (times and tokens, no text) are read only for rows without
    /// usage: for those they are the only record of what a stream delivered, while reading every streamed
    /// row's checkpoints would multiply the read by the chunks per call.
    ///
    /// A large read is cut into time slices read side by side on read-only connections and handed to
    /// `visit` in order on this thread; a fixed number of slices is in flight, so memory does not grow with
    /// the window. Every slice reads only rows that existed when the read began (ids only grow), so a
    /// concurrent import cannot add rows to some slices and not to others.
    pub fn for_each_request_by_time(
        &self,
        filter: &RequestFilter,
        mut visit: impl FnMut(RequestRow),
    ) -> Result<u64, StoreError> {
        let (condition, values) = where_clause(filter);
        let extent = format!("SELECT count(*), min(ts_ms), max(ts_ms), max(id) FROM request{condition}");
        let (rows, first_ts, last_ts, last_id): (i64, Option<i64>, Option<i64>, Option<i64>) = self
            .conn
            .query_row(&extent, rusqlite::params_from_iter(values.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .map_err(|e| self.err(e))?;
        let (Some(first_ts), Some(last_ts), Some(last_id)) = (first_ts, last_ts, last_id) else {
            return Ok(0);
        };
        let slices = time_slices(first_ts, last_ts, rows);
        let connections = if slices.len() > 1 { self.read_connections(READERS)? } else { Vec::new() };
        if connections.len() < 2 {
            let rows =
                read_billed_slice(&self.conn, filter, (first_ts, last_ts + 1), last_id).map_err(|e| self.err(e))?;
            let count = rows.len() as u64;
            rows.into_iter().for_each(visit);
            return Ok(count);
        }
        let mut count = 0;
        for_each_slice_in_order(connections, &slices, filter, last_id, |rows| {
            count += rows.len() as u64;
            rows.into_iter().for_each(&mut visit);
        })
        .map_err(|e| self.err(e))?;
        Ok(count)
    }

    /// Up to `n` extra read-only connections (none for an in-memory state).
    fn read_connections(&self, n: usize) -> Result<Vec<Connection>, StoreError> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            match self.read_connection()? {
                Some(conn) => out.push(conn),
                None => break,
            }
        }
        Ok(out)
    }
}

/// Connections that read slices of a time-ordered read at once: the caller's thread folds what they read,
/// which costs a small fraction of reading it, so two keep both cores busy.
const READERS: usize = 2;
/// Rows per slice of a time-ordered read, on average: large enough that a query per slice costs nothing
/// next to its rows, small enough that the slices in flight stay a few megabytes.
const ROWS_PER_SLICE: i64 = if cfg!(test) { 2 } else { 16_384 };
/// Slices read but not yet folded, per reader.
const SLICES_IN_FLIGHT_PER_READER: usize = 4;

/// `[first, last]` cut into half-open ranges of equal length, about [`ROWS_PER_SLICE`] rows each if the
/// rows were spread evenly; one range when there are few rows.
fn time_slices(first: i64, last: i64, rows: i64) -> Vec<(i64, i64)> {
    let span = last - first + 1;
    let count = (rows / ROWS_PER_SLICE).clamp(1, span.min(1 << 16));
    let width = (span + count - 1) / count;
    (0..count).map(|i| (first + i * width, (first + (i + 1) * width).min(last + 1))).filter(|(a, b)| a < b).collect()
}

/// Reads `slices` on `connections` (one thread each) and hands each slice's rows to `fold` in slice
/// order. A reader takes a slice only with a permit, which comes back when `fold` has had the slice.
fn for_each_slice_in_order(
    connections: Vec<Connection>,
    slices: &[(i64, i64)],
    filter: &RequestFilter,
    last_id: i64,
    mut fold: impl FnMut(Vec<RequestRow>),
) -> rusqlite::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc::sync_channel;

    let in_flight = connections.len() * SLICES_IN_FLIGHT_PER_READER;
    let next = AtomicUsize::new(0);
    let (permit_tx, permit_rx) = sync_channel::<()>(in_flight);
    let permit_rx = std::sync::Mutex::new(permit_rx);
    let (row_tx, row_rx) = sync_channel::<(usize, rusqlite::Result<Vec<RequestRow>>)>(in_flight);
    for _ in 0..in_flight {
        permit_tx.send(()).expect("the channel has room for every permit");
    }
    std::thread::scope(|scope| {
        for conn in connections {
            let (next, permit_rx, row_tx) = (&next, &permit_rx, row_tx.clone());
            scope.spawn(move || {
                loop {
                    let permit = permit_rx.lock().map_err(|_| ()).and_then(|rx| rx.recv().map_err(|_| ()));
                    if permit.is_err() {
                        return;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&slice) = slices.get(i) else { return };
                    let rows = read_billed_slice(&conn, filter, slice, last_id);
                    if row_tx.send((i, rows)).is_err() {
                        return;
                    }
                }
            });
        }
        drop(row_tx);
        // Owns the permits' sender and the rows' receiver: when it returns (done, or at an error) both
        // close, and readers waiting on either end, so that the scope can join them.
        let mut fold_in_order = move || -> rusqlite::Result<()> {
            let mut waiting = std::collections::BTreeMap::new();
            for i in 0..slices.len() {
                let rows = loop {
                    if let Some(rows) = waiting.remove(&i) {
                        break rows;
                    }
                    let Ok((j, rows)) = row_rx.recv() else {
                        unreachable!("readers keep reading until every slice is out or the receiver is gone")
                    };
                    waiting.insert(j, rows);
                };
                fold(rows?);
                let _ = permit_tx.try_send(());
            }
            Ok(())
        };
        fold_in_order()
    })
}

/// The rows of one time slice `[from, to)` matching `filter`, with ids up to `last_id`, in time order.
fn read_billed_slice(
    conn: &Connection,
    filter: &RequestFilter,
    (from, to): (i64, i64),
    last_id: i64,
) -> rusqlite::Result<Vec<RequestRow>> {
    // The slice's bounds replace the filter's (they lie within them): SQLite takes one lower and one upper
    // bound per column for an index range, so a second pair would be checked row by row over the window.
    let at = |ms: i64| Timestamp::from_millisecond(ms).ok();
    let sliced = RequestFilter {
        since: at(from).max(filter.since),
        until: match (at(to), filter.until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        },
        ..filter.clone()
    };
    let (condition, mut values) = where_clause(&sliced);
    values.push(rusqlite::types::Value::Integer(last_id));
    let id_cap = format!("id <= ?{}", values.len());
    let condition = if condition.is_empty() { format!(" WHERE {id_cap}") } else { format!("{condition} AND {id_cap}") };
    // `request_by_time` holds (ts_ms, key): the rows come out of the index in this order, unsorted.
    let sql = format!("SELECT {BILLED_COLUMNS} FROM request{condition} ORDER BY ts_ms, key");
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (id, mut row) = billed_row(r)?;
        let usage_less =
            row.usage_source == UsageSource::Missing || row.usage.input_total + row.usage.output_total == 0;
        if usage_less {
            let mut stream = streams::read(conn, id)?;
            // Billing needs when and how many tokens, never the text.
            stream.iter_mut().for_each(|c| c.text = None);
            row.stream = stream;
        }
        out.push(row);
    }
    Ok(out)
}

/// Requests per read below which one connection reads everything (a second costs more than it saves).
/// (Tiny in unit tests, so that they cover the parallel path.)
const PARALLEL_ROWS: i64 = if cfg!(test) { 8 } else { 100_000 };
const PARALLEL_STREAMS: usize = if cfg!(test) { 4 } else { 10_000 };

/// Pragmas of the extra read connections: map up to 4 GB of the file, and a modest page cache.
const READ_PRAGMAS: &str = "PRAGMA mmap_size = 4294967296; PRAGMA cache_size = -32768;";

/// The calls with ids in `lo..=hi` matching `filter`.
fn read_calls(
    conn: &Connection,
    filter: &RequestFilter,
    parts: CallParts,
    lo: i64,
    hi: i64,
) -> rusqlite::Result<Calls> {
    let (condition, mut values) = where_clause(filter);
    let unfiltered = condition.is_empty();
    let range = format!("id BETWEEN ?{} AND ?{}", values.len() + 1, values.len() + 2);
    values.push(rusqlite::types::Value::Integer(lo));
    values.push(rusqlite::types::Value::Integer(hi));
    let condition = if condition.is_empty() { format!(" WHERE {range}") } else { format!("{condition} AND {range}") };
    let sql = format!("SELECT {} FROM request{condition}", call_columns(parts));
    let mut stmt = conn.prepare(&sql)?;
    let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
    let mut out = Calls::default();
    if unfiltered {
        // Ids are dense unless rows were deleted: one allocation instead of a doubling series of copies.
        out.calls.reserve((hi - lo + 1).clamp(0, 1 << 26) as usize);
    }
    let mut interner = Interner::default();
    while let Some(row) = rows.next()? {
        let call = call_from_row(row, parts, &mut out.symbols, &mut interner)?;
        out.calls.push(call);
    }
    Ok(out)
}

/// The checkpoints of the requests in `ids` (ascending), one request at a time.
fn scan_streams(conn: &Connection, ids: &[i64], visit: &(dyn Fn(i64, Checkpoints<'_>) + Sync)) -> rusqlite::Result<()> {
    let (Some(&first), Some(&last)) = (ids.first(), ids.last()) else {
        return Ok(());
    };
    // In rowid order: the blobs are read in the order they are stored.
    let mut stmt = conn.prepare("SELECT request_id, data FROM request_stream WHERE request_id BETWEEN ?1 AND ?2")?;
    let mut rows = stmt.query([first, last])?;
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut wanted = ids.iter().copied().peekable();
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        while wanted.next_if(|w| *w < id).is_some() {}
        if wanted.peek() != Some(&id) {
            continue;
        }
        let ValueRef::Blob(data) = row.get_ref(1)? else {
            return Err(streams::DecodeError { request_id: id, detail: "not a blob" }.into_sqlite());
        };
        let text = streams::decode(id, data, &mut chunks).map_err(streams::DecodeError::into_sqlite)?;
        visit(id, Checkpoints { chunks: &chunks, text });
    }
    Ok(())
}

/// Inserts many batches with few commits; see [`Store::request_writer`].
pub struct RequestWriter<'s> {
    store: &'s Store,
    statements: Statements<'s>,
    /// Copies committed pages into the database file beside the writer; `None` leaves it to SQLite.
    checkpointer: Option<Checkpointer>,
    in_transaction: bool,
    since_commit: usize,
}

impl RequestWriter<'_> {
    /// Inserts a batch (like [`Store::insert_requests`]); commits when enough rows are pending.
    pub fn insert(&mut self, batch: &[NewRequest<'_>]) -> Result<Vec<Inserted>, StoreError> {
        if !self.in_transaction {
            if let Some(checkpointer) = &self.checkpointer {
                checkpointer.bound_log().map_err(|e| self.store.err(e))?;
            }
            self.store.conn.execute_batch("BEGIN IMMEDIATE").map_err(|e| self.store.err(e))?;
            self.in_transaction = true;
        }
        let outcome = insert_batch(&self.store.conn, &mut self.statements, batch).map_err(|e| self.store.err(e))?;
        self.since_commit += batch.len();
        if self.since_commit >= ROWS_PER_COMMIT {
            self.commit()?;
        }
        Ok(outcome)
    }

    fn commit(&mut self) -> Result<(), StoreError> {
        if self.in_transaction {
            self.store.conn.execute_batch("COMMIT").map_err(|e| self.store.err(e))?;
            self.in_transaction = false;
            self.since_commit = 0;
            if let Some(checkpointer) = &self.checkpointer {
                checkpointer.request();
            }
        }
        Ok(())
    }

    /// Commits what is pending and waits for the checkpoint after it (which copies into the database
    /// file all that no reader of an older snapshot still needs; the rest follows at the next one).
    pub fn finish(mut self) -> Result<(), StoreError> {
        self.commit()?;
        match &self.checkpointer {
            Some(checkpointer) => checkpointer.wait().map_err(|e| self.store.err(e)),
            None => Ok(()),
        }
    }
}

impl Drop for RequestWriter<'_> {
    fn drop(&mut self) {
        if self.in_transaction {
            let _ = self.store.conn.execute_batch("ROLLBACK");
        }
        if self.checkpointer.take().is_some() {
            // Checkpoints asked for are done by now (dropping the checkpointer waits for them); the
            // connection checkpoints by itself again for whatever it writes next.
            let _ = self.store.conn.execute_batch("PRAGMA wal_autocheckpoint = 1000");
        }
    }
}

/// A model and tier seen on a day, with its row count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelDay {
    pub provider: String,
    pub request_model: String,
    pub response_model: Option<String>,
    pub service_tier: Option<String>,
    pub batch: bool,
    /// Days since 1970-01-01 (UTC).
    pub day: i64,
    pub rows: u64,
}

/// Inserts a batch inside a caller's transaction, so that other writers (eval runs recording a sample
/// and its attempts) can make it part of their own commit. Outcomes come back in batch order.
pub(crate) fn insert_requests_in(tx: &Connection, batch: &[NewRequest<'_>]) -> rusqlite::Result<Vec<Inserted>> {
    insert_batch(tx, &mut Statements::prepare(tx)?, batch)
}

/// The insert, prepared once per writer.
struct Statements<'c> {
    insert: StaticStatement<'c>,
}

impl<'c> Statements<'c> {
    fn prepare(conn: &'c Connection) -> rusqlite::Result<Self> {
        Ok(Statements { insert: StaticStatement::prepare(conn, INSERT_REQUEST)? })
    }
}

fn insert_batch(
    conn: &Connection,
    statements: &mut Statements<'_>,
    batch: &[NewRequest<'_>],
) -> rusqlite::Result<Vec<Inserted>> {
    let mut stream_buf = Vec::new();
    let keys: Vec<Digest> = batch.iter().map(|new| new.key.digest()).collect();
    // In (start time, key) order the rows reach the key index one after another, at its end when the
    // batch is newer than what is stored, instead of at random.
    let mut order: Vec<usize> = (0..batch.len()).collect();
    order.sort_unstable_by_key(|&i| (batch[i].row.ts.as_millisecond(), keys[i]));
    let mut out = vec![Inserted::New(0); batch.len()];
    for index in order {
        let new = &batch[index];
        let changed = insert_one(&mut statements.insert, new, &keys[index])?;
        if changed == 0 {
            out[index] = existing(conn, new, &keys[index])?;
            continue;
        }
        let id = conn.last_insert_rowid();
        streams::insert(conn, id, &new.row.stream, &mut stream_buf)?;
        out[index] = Inserted::New(id);
    }
    Ok(out)
}

/// Binds and inserts one row; returns 0 when its key was stored before.
fn insert_one(insert: &mut StaticStatement<'_>, new: &NewRequest<'_>, key: &Digest) -> rusqlite::Result<usize> {
    let r = new.row;
    let u = &r.usage;
    let messages =
        if r.messages.is_empty() { None } else { Some(serde_json::to_string(&r.messages).unwrap_or_default()) };
    let source_key = match new.key {
        RequestKey::Import(_) => None,
        RequestKey::Text(text) => Some(text),
    };
    fn text(v: &Option<String>) -> Param<'_> {
        Param::text(v.as_deref())
    }
    let count = |v: u64| Param::Int(v as i64);
    insert.execute(&[
        Param::Text(new.source.as_str()),
        Param::Blob(&key.0),
        Param::text(source_key),
        new.content_hash.as_ref().map_or(Param::Null, |h| Param::Blob(&h.0)),
        Param::Int(r.ts.as_millisecond()),
        Param::Text(&r.provider),
        Param::Text(&r.request_model),
        text(&r.response_model),
        text(&r.project),
        text(&r.api_key_ref),
        text(&r.tenant_id),
        text(&r.conversation_id),
        text(&r.trace_id),
        text(&r.span_id),
        text(&r.logical_request_id),
        Param::Int(i64::from(r.attempt)),
        Param::Text(status_str(r.status)),
        Param::Int(i64::from(r.streamed)),
        Param::Text(usage_source_str(r.usage_source)),
        count(u.input_total),
        count(u.input_uncached),
        count(u.cache_read),
        count(u.cache_write_5m),
        count(u.cache_write_1h),
        count(u.output_total),
        count(u.reasoning),
        text(&r.service_tier),
        Param::Int(i64::from(r.batch)),
        Param::int(r.latency_ms.map(|v| v as i64)),
        Param::int(r.ttft_ms.map(|v| v as i64)),
        text(&r.prompt_name),
        text(&r.prompt_version),
        text(&r.finish_reason),
        text(&r.error),
        Param::text(messages.as_deref()),
        text(&r.output),
    ])
}

/// What a row whose key was stored before is: a duplicate, or a conflict when its content differs.
fn existing(conn: &Connection, new: &NewRequest<'_>, key: &Digest) -> rusqlite::Result<Inserted> {
    use rusqlite::OptionalExtension;
    let read = |r: &Row<'_>| Ok((r.get::<_, i64>(0)?, r.get::<_, Option<Vec<u8>>>(1)?));
    let by_text = match new.key {
        RequestKey::Text(text) => conn
            .prepare_cached("SELECT id, content_hash FROM request WHERE source_key = ?1")?
            .query_row([text], read)
            .optional()?,
        RequestKey::Import(_) => None,
    };
    let (id, stored) = match by_text {
        Some(found) => found,
        None => conn
            .prepare_cached("SELECT id, content_hash FROM request WHERE ts_ms = ?1 AND key = ?2")?
            .query_row(params![new.row.ts.as_millisecond(), &key.0[..]], read)?,
    };
    let same = match (new.content_hash, stored) {
        (Some(a), Some(b)) => a.0[..] == b[..],
        _ => true,
    };
    Ok(if same { Inserted::Duplicate(id) } else { Inserted::Conflict(id) })
}

fn status_str(status: RequestStatus) -> &'static str {
    match status {
        RequestStatus::Ok => "ok",
        RequestStatus::Error => "error",
        RequestStatus::Timeout => "timeout",
        RequestStatus::Aborted => "aborted",
    }
}

fn parse_status(text: &[u8]) -> RequestStatus {
    match text {
        b"error" => RequestStatus::Error,
        b"timeout" => RequestStatus::Timeout,
        b"aborted" => RequestStatus::Aborted,
        _ => RequestStatus::Ok,
    }
}

fn usage_source_str(source: UsageSource) -> &'static str {
    match source {
        UsageSource::Provider => "provider",
        UsageSource::Estimated => "estimated",
        UsageSource::Missing => "missing",
    }
}

fn parse_usage_source(text: &[u8]) -> UsageSource {
    match text {
        b"estimated" => UsageSource::Estimated,
        b"missing" => UsageSource::Missing,
        _ => UsageSource::Provider,
    }
}

fn where_clause(filter: &RequestFilter) -> (String, Vec<rusqlite::types::Value>) {
    use rusqlite::types::Value;
    let mut conditions = Vec::new();
    let mut values = Vec::new();
    if let Some(since) = filter.since {
        values.push(Value::Integer(since.as_millisecond()));
        conditions.push(format!("ts_ms >= ?{}", values.len()));
    }
    if let Some(until) = filter.until {
        values.push(Value::Integer(until.as_millisecond()));
        conditions.push(format!("ts_ms < ?{}", values.len()));
    }
    if let Some(source) = &filter.source {
        values.push(Value::Text(source.clone()));
        conditions.push(format!("source = ?{}", values.len()));
    }
    if let Some(model) = &filter.model {
        values.push(Value::Text(model.clone()));
        let n = values.len();
        conditions.push(format!("(request_model = ?{n} OR provider || ':' || request_model = ?{n})"));
    }
    if let Some(prompt) = &filter.prompt {
        values.push(Value::Text(prompt.clone()));
        conditions.push(format!("prompt_name = ?{}", values.len()));
    }
    let condition = if conditions.is_empty() { String::new() } else { format!(" WHERE {}", conditions.join(" AND ")) };
    (condition, values)
}

/// The columns every read of calls takes, in this order (see [`call_from_row`]).
const CALL_COLUMNS: &str = "id, ts_ms, provider, request_model, response_model, logical_request_id, attempt, status,
    usage_source, input_total, input_uncached, cache_read, cache_write_5m, cache_write_1h, output_total, reasoning,
    service_tier, batch";
const CALL_FIXED: usize = 18;

/// The select list for `parts`: the fixed columns, then each part's, in the order of [`CallParts`].
fn call_columns(parts: CallParts) -> String {
    let mut columns = CALL_COLUMNS.to_string();
    for (wanted, more) in [
        (parts.conversation, ", conversation_id"),
        (parts.tenant, ", tenant_id"),
        (parts.prompt, ", prompt_name, prompt_version"),
        (parts.timing, ", streamed, latency_ms, ttft_ms, finish_reason"),
    ] {
        if wanted {
            columns.push_str(more);
        }
    }
    columns
}

/// Interning that skips the hash lookup when a column repeats the previous row's value, as model,
/// provider and prompt columns mostly do.
#[derive(Default)]
struct Interner {
    /// By column index: the last value seen and its symbol.
    last: Vec<Option<(Vec<u8>, crate::trace::records::Sym)>>,
}

impl Interner {
    fn sym(
        &mut self,
        row: &Row<'_>,
        column: usize,
        symbols: &mut Symbols,
    ) -> rusqlite::Result<Option<crate::trace::records::Sym>> {
        let ValueRef::Text(bytes) = row.get_ref(column)? else {
            return Ok(None);
        };
        if self.last.len() <= column {
            self.last.resize(column + 1, None);
        }
        if let Some((last, sym)) = &self.last[column]
            && last.as_slice() == bytes
        {
            return Ok(Some(*sym));
        }
        let sym = symbols.intern_bytes(bytes);
        match &mut self.last[column] {
            Some((last, slot)) => {
                last.clear();
                last.extend_from_slice(bytes);
                *slot = sym;
            }
            empty => *empty = Some((bytes.to_vec(), sym)),
        }
        Ok(Some(sym))
    }
}

fn int(row: &Row<'_>, column: usize) -> rusqlite::Result<i64> {
    row.get(column)
}

fn count(row: &Row<'_>, column: usize) -> rusqlite::Result<u64> {
    Ok(int(row, column)?.max(0) as u64)
}

fn opt_u32(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<u32>> {
    Ok(row.get::<_, Option<i64>>(column)?.map(|v| v.clamp(0, u32::MAX as i64) as u32))
}

fn text_bytes<'r>(row: &'r Row<'_>, column: usize) -> rusqlite::Result<&'r [u8]> {
    match row.get_ref(column)? {
        ValueRef::Text(bytes) => Ok(bytes),
        _ => Ok(b""),
    }
}

fn call_from_row(
    row: &Row<'_>,
    parts: CallParts,
    symbols: &mut Symbols,
    interner: &mut Interner,
) -> rusqlite::Result<Call> {
    let required = |interner: &mut Interner, symbols: &mut Symbols, column: usize| {
        interner.sym(row, column, symbols).map(|s| s.unwrap_or_else(|| symbols.intern("")))
    };
    // Hashed as stored: text that is not UTF-8 is still one id (the lossy conversion could merge two).
    let logical = match row.get_ref(5)? {
        ValueRef::Text(bytes) => Some(logical_hash_bytes(bytes)),
        _ => None,
    };
    let mut call = Call {
        id: int(row, 0)?,
        ts_ms: int(row, 1)?,
        provider: required(interner, symbols, 2)?,
        request_model: required(interner, symbols, 3)?,
        response_model: interner.sym(row, 4, symbols)?,
        tenant: None,
        conversation: None,
        prompt_name: None,
        prompt_version: None,
        logical,
        attempt: int(row, 6)?.clamp(1, u32::MAX as i64) as u32,
        status: parse_status(text_bytes(row, 7)?),
        streamed: false,
        usage_source: parse_usage_source(text_bytes(row, 8)?),
        usage: Usage {
            input_total: count(row, 9)?,
            input_uncached: count(row, 10)?,
            cache_read: count(row, 11)?,
            cache_write_5m: count(row, 12)?,
            cache_write_1h: count(row, 13)?,
            output_total: count(row, 14)?,
            reasoning: count(row, 15)?,
        },
        service_tier: interner.sym(row, 16, symbols)?,
        batch: int(row, 17)? != 0,
        latency_ms: None,
        ttft_ms: None,
        finish_reason: None,
    };
    let mut column = CALL_FIXED;
    if parts.conversation {
        call.conversation = interner.sym(row, column, symbols)?;
        column += 1;
    }
    if parts.tenant {
        call.tenant = interner.sym(row, column, symbols)?;
        column += 1;
    }
    if parts.prompt {
        call.prompt_name = interner.sym(row, column, symbols)?;
        call.prompt_version = interner.sym(row, column + 1, symbols)?;
        column += 2;
    }
    if parts.timing {
        call.streamed = int(row, column)? != 0;
        call.latency_ms = opt_u32(row, column + 1)?;
        call.ttft_ms = opt_u32(row, column + 2)?;
        call.finish_reason = interner.sym(row, column + 3, symbols)?;
    }
    Ok(call)
}

const ROW_COLUMNS: &str = "id, ts_ms, provider, request_model, response_model, project, api_key_ref, tenant_id,
    conversation_id, trace_id, span_id, logical_request_id, attempt, status, streamed, usage_source, input_total,
    input_uncached, cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, service_tier, batch,
    latency_ms, ttft_ms, prompt_name, prompt_version, finish_reason, error, messages, output";

fn row_from_sql(r: &Row<'_>) -> rusqlite::Result<(i64, RequestRow)> {
    let ts = jiff::Timestamp::from_millisecond(r.get(1)?).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let messages: Option<String> = r.get(31)?;
    Ok((
        r.get(0)?,
        RequestRow {
            ts,
            provider: r.get(2)?,
            request_model: r.get(3)?,
            response_model: r.get(4)?,
            project: r.get(5)?,
            api_key_ref: r.get(6)?,
            tenant_id: r.get(7)?,
            conversation_id: r.get(8)?,
            trace_id: r.get(9)?,
            span_id: r.get(10)?,
            logical_request_id: r.get(11)?,
            attempt: r.get::<_, i64>(12)?.clamp(1, u32::MAX as i64) as u32,
            status: parse_status(text_bytes(r, 13)?),
            streamed: r.get::<_, i64>(14)? != 0,
            usage_source: parse_usage_source(text_bytes(r, 15)?),
            usage: Usage {
                input_total: count(r, 16)?,
                input_uncached: count(r, 17)?,
                cache_read: count(r, 18)?,
                cache_write_5m: count(r, 19)?,
                cache_write_1h: count(r, 20)?,
                output_total: count(r, 21)?,
                reasoning: count(r, 22)?,
            },
            service_tier: r.get(23)?,
            batch: r.get::<_, i64>(24)? != 0,
            latency_ms: r.get::<_, Option<i64>>(25)?.map(|v| v.max(0) as u64),
            ttft_ms: r.get::<_, Option<i64>>(26)?.map(|v| v.max(0) as u64),
            prompt_name: r.get(27)?,
            prompt_version: r.get(28)?,
            finish_reason: r.get(29)?,
            error: r.get(30)?,
            messages: messages.and_then(|m| serde_json::from_str(&m).ok()).unwrap_or_default(),
            output: r.get(32)?,
            stream: Vec::new(),
        },
    ))
}

const BILLED_COLUMNS: &str = "id, ts_ms, provider, request_model, response_model, project, api_key_ref,
    conversation_id, logical_request_id, attempt, status, streamed, usage_source, input_total, input_uncached,
    cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, service_tier, batch";

/// A row of [`BILLED_COLUMNS`], with its id.
fn billed_row(r: &Row<'_>) -> rusqlite::Result<(i64, RequestRow)> {
    let ts = jiff::Timestamp::from_millisecond(r.get(1)?).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Ok((
        r.get(0)?,
        RequestRow {
            ts,
            provider: r.get(2)?,
            request_model: r.get(3)?,
            response_model: r.get(4)?,
            project: r.get(5)?,
            api_key_ref: r.get(6)?,
            tenant_id: None,
            conversation_id: r.get(7)?,
            trace_id: None,
            span_id: None,
            logical_request_id: r.get(8)?,
            attempt: r.get::<_, i64>(9)?.clamp(1, u32::MAX as i64) as u32,
            status: parse_status(text_bytes(r, 10)?),
            streamed: r.get::<_, i64>(11)? != 0,
            usage_source: parse_usage_source(text_bytes(r, 12)?),
            usage: Usage {
                input_total: count(r, 13)?,
                input_uncached: count(r, 14)?,
                cache_read: count(r, 15)?,
                cache_write_5m: count(r, 16)?,
                cache_write_1h: count(r, 17)?,
                output_total: count(r, 18)?,
                reasoning: count(r, 19)?,
            },
            service_tier: r.get(20)?,
            batch: r.get::<_, i64>(21)? != 0,
            latency_ms: None,
            ttft_ms: None,
            prompt_name: None,
            prompt_version: None,
            finish_reason: None,
            error: None,
            messages: Vec::new(),
            output: None,
            stream: Vec::new(),
        },
    ))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::trace::model::StreamCheckpoint;
    use crate::trace::records::logical_hash;

    /// A streamed request of `model` with `input` tokens, for tests of the store.
    pub(crate) fn row(model: &str, input: u64) -> RequestRow {
        RequestRow {
            ts: "2026-10-01T12:00:00Z".parse().unwrap(),
            provider: "openai".into(),
            request_model: model.into(),
            response_model: None,
            project: None,
            api_key_ref: None,
            tenant_id: Some("acme".into()),
            conversation_id: Some("c-1".into()),
            trace_id: Some("t".into()),
            span_id: Some("s".into()),
            logical_request_id: Some("l-1".into()),
            attempt: 1,
            status: RequestStatus::Ok,
            streamed: true,
            usage_source: UsageSource::Provider,
            usage: Usage::from_inclusive(input, 100, 0, 20, 5),
            service_tier: None,
            batch: false,
            latency_ms: Some(900),
            ttft_ms: Some(300),
            prompt_name: Some("support-reply".into()),
            prompt_version: Some("abc".into()),
            finish_reason: Some("stop".into()),
            error: None,
            messages: vec![crate::trace::model::Message { role: "user".into(), content: "hi".into() }],
            output: Some("hello there".into()),
            stream: vec![
                StreamCheckpoint { t_ms: 300, tokens: 2, text: Some("hello".into()) },
                StreamCheckpoint { t_ms: 320, tokens: 3, text: None },
            ],
        }
    }

    /// `rows` as imported rows under `keys`, without content hashes.
    fn imported<'a>(rows: &'a [RequestRow], keys: impl Iterator<Item = RequestKey<'a>>) -> Vec<NewRequest<'a>> {
        rows.iter()
            .zip(keys)
            .map(|(row, key)| NewRequest { source: RequestSource::Import, key, content_hash: None, row })
            .collect()
    }

    #[test]
    fn inserts_are_idempotent_and_conflicts_are_told_apart() {
        let mut store = Store::open_in_memory().unwrap();
        let a = row("gpt-4o", 500);
        let b = row("gpt-4o", 600);
        let key = RequestKey::Import(key_digest("span:t/s"));
        let new = |hash: u8, row| NewRequest {
            source: RequestSource::Import,
            key,
            content_hash: Some(Digest([hash; 16])),
            row,
        };
        let first = store.insert_requests(&[new(1, &a)]).unwrap();
        assert!(matches!(first[0], Inserted::New(_)));
        let again = store.insert_requests(&[new(1, &a), new(2, &b)]).unwrap();
        assert_eq!(again, [Inserted::Duplicate(first[0].id()), Inserted::Conflict(first[0].id())]);
        assert_eq!(store.request_count().unwrap(), 1);
        // An imported key is unique with its start time: the same span starting at another time is new.
        let later = RequestRow { ts: "2026-10-01T12:00:00.001Z".parse().unwrap(), ..a.clone() };
        assert!(matches!(store.insert_requests(&[new(1, &later)]).unwrap()[0], Inserted::New(_)));
        // A key given as text is unique by itself, whatever the time.
        let eval = |row| NewRequest {
            source: RequestSource::Eval,
            key: RequestKey::Text("eval:r-1/case/0/1"),
            content_hash: None,
            row,
        };
        let stored = store.insert_requests(&[eval(&b)]).unwrap()[0];
        assert!(matches!(stored, Inserted::New(_)));
        assert_eq!(store.insert_requests(&[eval(&later)]).unwrap(), [Inserted::Duplicate(stored.id())]);
        assert_eq!(store.request_count().unwrap(), 3);
    }

    #[test]
    fn the_text_of_an_imported_key_is_rebuilt_from_the_row() {
        use crate::trace::import::normalize::{import_key, import_key_digest};
        let mut store = Store::open_in_memory().unwrap();
        let with_ids = row("gpt-4o", 500);
        let without = RequestRow { span_id: None, ..row("gpt-4o", 600) };
        let hash = |r: &RequestRow| crate::trace::import::content_hash(r);
        let imported = |r: &'static RequestRow| NewRequest {
            source: RequestSource::Import,
            key: RequestKey::Import(import_key_digest(r, &hash(r))),
            content_hash: Some(hash(r)),
            row: r,
        };
        let (with_ids, without) = (Box::leak(Box::new(with_ids)), Box::leak(Box::new(without)));
        let eval = NewRequest {
            source: RequestSource::Eval,
            key: RequestKey::Text("r/c/0/1"),
            content_hash: None,
            row: with_ids,
        };
        store.insert_requests(&[imported(with_ids), imported(without), eval]).unwrap();
        let mut keys: Vec<String> = store
            .conn
            .prepare(&format!("SELECT {SOURCE_KEY_SQL} FROM request"))
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        keys.sort();
        let expected =
            ["r/c/0/1".to_string(), import_key(without, &hash(without)), import_key(with_ids, &hash(with_ids))];
        assert_eq!(keys, expected);
        assert!(keys[1].starts_with("sha:") && keys[2].starts_with("span:t/"), "{keys:?}");
    }

    #[test]
    fn rows_read_back_as_written() {
        let mut store = Store::open_in_memory().unwrap();
        let a = row("gpt-4o", 500);
        let new = NewRequest { source: RequestSource::Import, key: RequestKey::Text("k"), content_hash: None, row: &a };
        store.insert_requests(&[new]).unwrap();
        let back = store.request_rows(&RequestFilter::default()).unwrap();
        assert_eq!(back, std::slice::from_ref(&a));
        let calls = store.calls(&RequestFilter::default(), CallParts::ALL).unwrap();
        let call = calls.calls[0];
        assert_eq!(calls.model_key(&call), "openai:gpt-4o");
        assert_eq!(call.usage, a.usage);
        assert_eq!(call.logical, Some(logical_hash("l-1")));
        assert_eq!(calls.name(call.conversation.unwrap()), "c-1");
        let mut seen = Vec::new();
        let collected = std::sync::Mutex::new(Vec::new());
        store
            .for_each_stream(&[call.id], &|id, cp| {
                let texts: Vec<Option<String>> =
                    cp.chunks.iter().map(|c| cp.chunk_text(c).map(str::to_string)).collect();
                collected.lock().unwrap().push((id, cp.chunks.len(), texts));
            })
            .unwrap();
        seen.extend(collected.into_inner().unwrap());
        assert_eq!(seen, [(call.id, 2, vec![Some("hello".to_string()), None])]);
    }

    #[test]
    fn a_bulk_writer_commits_as_it_goes_and_leaves_everything_checkpointed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let mut store = Store::open(&path, crate::store::OpenMode::CreateIfMissing, false).unwrap();
        let rows: Vec<RequestRow> = (0..250).map(|i| row("gpt-4o", 200 + i)).collect();
        let keys: Vec<Digest> = (0..rows.len()).map(|i| key_digest(&format!("span:t/{i}"))).collect();
        let new = imported(&rows, keys.iter().map(|key| RequestKey::Import(*key)));
        let mut writer = store.request_writer().unwrap();
        for batch in new.chunks(30) {
            writer.insert(batch).unwrap();
        }
        // Another connection sees what is committed while the writer is still open.
        let reader = Connection::open(&path).unwrap();
        let committed: i64 = reader.query_row("SELECT count(*) FROM request", [], |r| r.get(0)).unwrap();
        assert!((200..250).contains(&committed), "{committed} rows committed before the end");
        writer.finish().unwrap();
        assert_eq!(store.request_count().unwrap(), 250);
        // The checkpoint thread copied every committed page: nothing is left for a checkpoint to do.
        let (log, copied): (i64, i64) =
            reader.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| Ok((r.get(1)?, r.get(2)?))).unwrap();
        assert_eq!(log, copied);
        // The connection checkpoints by itself again once the writer is gone.
        let automatic: i64 = store.conn.query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0)).unwrap();
        assert_eq!(automatic, 1000);
    }

    #[test]
    fn a_window_read_in_time_slices_on_two_connections_comes_out_as_one_ordered_read() {
        use crate::trace::generate::{GenerateConfig, generate};
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("state.db"), crate::store::OpenMode::CreateIfMissing, false).unwrap();
        let mut rows: Vec<RequestRow> =
            generate(&GenerateConfig { conversations: 30, messages: false, ..GenerateConfig::default() })
                .map(|g| g.row)
                .collect();
        // Ties in time are ordered by key, across slice boundaries too.
        let tie = rows[5].ts;
        rows.iter_mut().skip(6).step_by(7).for_each(|r| r.ts = tie);
        // Streams cut off without usage: billing reads their checkpoints.
        for r in rows.iter_mut().filter(|r| !r.stream.is_empty()).step_by(3) {
            (r.usage_source, r.usage, r.status) = (UsageSource::Missing, Usage::default(), RequestStatus::Aborted);
        }
        let keys: Vec<String> = (0..rows.len()).map(|i| format!("k{i:04}")).collect();
        let batch = imported(&rows, keys.iter().map(|key| RequestKey::Import(Digest::of_parts(&[key.as_bytes()]))));
        store.insert_requests(&batch).unwrap();
        let window = RequestFilter {
            since: Some(rows.iter().map(|r| r.ts).min().unwrap()),
            until: Some(rows.iter().map(|r| r.ts).max().unwrap()),
            ..RequestFilter::default()
        };
        let (condition, values) = where_clause(&window);
        let expected_ids: Vec<i64> = {
            let sql = format!("SELECT id FROM request{condition} ORDER BY ts_ms, key");
            let mut stmt = store.conn.prepare(&sql).unwrap();
            stmt.query_map(rusqlite::params_from_iter(values.iter()), |r| r.get(0))
                .unwrap()
                .map(Result::unwrap)
                .collect()
        };
        let expected = read_billed_slice(&store.conn, &window, (i64::MIN, i64::MAX), i64::MAX).unwrap();
        assert_eq!(expected.len(), expected_ids.len());
        assert!(time_slices(0, 1_000_000, expected.len() as i64).len() > 10, "the read is cut into many slices");
        let mut seen = Vec::new();
        let n = store.for_each_request_by_time(&window, |r| seen.push(r)).unwrap();
        assert_eq!(n as usize, expected.len());
        assert_eq!(seen, expected);
        assert!(seen.iter().any(|r| !r.stream.is_empty()), "rows without usage bring their checkpoints");
    }

    #[test]
    fn time_slices_cover_the_range_once() {
        for (first, last, rows) in [(0, 0, 1), (10, 10, 100), (0, 99, 7), (-5, 1_000_003, 4_000), (3, 9, 1_000)] {
            let slices = time_slices(first, last, rows);
            assert_eq!(slices.first().unwrap().0, first);
            assert_eq!(slices.last().unwrap().1, last + 1);
            assert!(slices.windows(2).all(|w| w[0].1 == w[1].0 && w[0].0 < w[0].1), "{slices:?}");
        }
    }

    #[test]
    fn a_state_file_read_in_two_halves_reads_like_one() {
        use crate::trace::generate::{GenerateConfig, generate};
        let dir = tempfile::tempdir().unwrap();
        let mut store =
            Store::open(&dir.path().join("state.db"), crate::store::OpenMode::CreateIfMissing, false).unwrap();
        let rows: Vec<RequestRow> =
            generate(&GenerateConfig { conversations: 12, messages: false, ..GenerateConfig::default() })
                .map(|g| g.row)
                .collect();
        let keys: Vec<String> = (0..rows.len()).map(|i| format!("k{i}")).collect();
        let batch = imported(&rows, keys.iter().map(|key| RequestKey::Text(key)));
        store.insert_requests(&batch).unwrap();
        let parallel = store.calls(&RequestFilter::default(), CallParts::ALL).unwrap();
        let (lo, hi) = (parallel.calls[0].id, parallel.calls.last().unwrap().id);
        let single = read_calls(&store.conn, &RequestFilter::default(), CallParts::ALL, lo, hi).unwrap();
        assert_eq!(parallel.calls.len(), rows.len());
        for (p, s) in parallel.calls.iter().zip(&single.calls) {
            assert_eq!((p.id, p.usage, parallel.model_key(p)), (s.id, s.usage, single.model_key(s)));
            assert_eq!(p.conversation.map(|c| parallel.name(c)), s.conversation.map(|c| single.name(c)));
        }
        let streamed: Vec<i64> = parallel.calls.iter().filter(|c| c.streamed).map(|c| c.id).collect();
        assert!(streamed.len() > 8);
        let seen = std::sync::Mutex::new(Vec::new());
        store
            .for_each_stream(&streamed, &|id, cp| {
                seen.lock().unwrap().push((id, cp.chunks.len(), cp.text.len()));
            })
            .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        // Rows are inserted in key order, so ids follow the stored rows, not the generated order.
        let stored = store.request_rows(&RequestFilter::default()).unwrap();
        let expected: Vec<(i64, usize, usize)> = parallel
            .calls
            .iter()
            .zip(&stored)
            .filter(|(c, r)| c.streamed && !r.stream.is_empty())
            .map(|(c, r)| (c.id, r.stream.len(), r.stream.iter().map(|s| s.text.as_deref().unwrap_or("").len()).sum()))
            .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn analyses_reading_only_their_parts_report_what_a_full_read_reports() {
        use crate::cost::{GroupBy, call_parts, price_calls, report};
        use crate::pricing::PriceBook;
        use crate::trace::generate::{GenerateConfig, generate};
        use crate::trace::tails::{CALL_PARTS, Thresholds, analyze};
        let mut store = Store::open_in_memory().unwrap();
        let rows: Vec<RequestRow> =
            generate(&GenerateConfig { conversations: 300, messages: false, ..GenerateConfig::default() })
                .map(|g| g.row)
                .collect();
        let keys: Vec<String> = (0..rows.len()).map(|i| format!("k{i}")).collect();
        let batch = imported(&rows, keys.iter().map(|key| RequestKey::Text(key)));
        store.insert_requests(&batch).unwrap();
        let all = store.calls(&RequestFilter::default(), CallParts::ALL).unwrap();
        let book = PriceBook::embedded();
        for by in [GroupBy::Model, GroupBy::Prompt, GroupBy::Conversation, GroupBy::Tenant] {
            let some = store.calls(&RequestFilter::default(), call_parts(by)).unwrap();
            let full = report(&all, &price_calls(&all, book), by, 10);
            let part = report(&some, &price_calls(&some, book), by, 10);
            assert_eq!(serde_json::to_value(&part).unwrap(), serde_json::to_value(&full).unwrap(), "{by:?}");
        }
        let tails = |calls: &Calls| {
            let report = analyze(calls, &Thresholds::default(), 3, |ids, visit| store.for_each_stream(ids, visit));
            serde_json::to_value(report.unwrap()).unwrap()
        };
        let some = store.calls(&RequestFilter::default(), CALL_PARTS).unwrap();
        let full = tails(&all);
        assert!(full["with_tails"].as_u64().unwrap() > 0);
        assert_eq!(tails(&some), full);
    }

    #[test]
    fn filters_select_by_time_model_and_prompt() {
        let mut store = Store::open_in_memory().unwrap();
        let mut a = row("gpt-4o", 500);
        let mut b = row("gpt-4o-mini", 500);
        b.ts = "2026-10-02T12:00:00Z".parse().unwrap();
        b.prompt_name = Some("triage".into());
        a.span_id = Some("a".into());
        let batch = [
            NewRequest { source: RequestSource::Import, key: RequestKey::Text("a"), content_hash: None, row: &a },
            NewRequest { source: RequestSource::Import, key: RequestKey::Text("b"), content_hash: None, row: &b },
        ];
        store.insert_requests(&batch).unwrap();
        let count = |f: RequestFilter| store.calls(&f, CallParts::ALL).unwrap().calls.len();
        assert_eq!(count(RequestFilter::default()), 2);
        assert_eq!(
            count(RequestFilter { since: Some("2026-10-02T00:00:00Z".parse().unwrap()), ..Default::default() }),
            1
        );
        assert_eq!(
            count(RequestFilter { until: Some("2026-10-02T00:00:00Z".parse().unwrap()), ..Default::default() }),
            1
        );
        assert_eq!(count(RequestFilter { model: Some("openai:gpt-4o".into()), ..Default::default() }), 1);
        assert_eq!(count(RequestFilter { prompt: Some("triage".into()), ..Default::default() }), 1);
        let days = store.models_by_day().unwrap();
        assert_eq!(days.len(), 2);
        let day: jiff::Timestamp = "2026-10-01T00:00:00Z".parse().unwrap();
        assert_eq!(days[0].day, day.as_millisecond() / 86_400_000);
    }

    #[test]
    fn rows_of_a_window_stream_in_time_order_with_the_checkpoints_of_rows_without_usage() {
        let mut store = Store::open_in_memory().unwrap();
        let at = |ts: &str, model: &str| RequestRow { ts: ts.parse().unwrap(), ..row(model, 500) };
        let late = at("2026-10-01T12:00:02Z", "gpt-4o");
        let mut cut = at("2026-10-01T12:00:01Z", "gpt-4o-mini");
        cut.status = RequestStatus::Aborted;
        cut.usage_source = UsageSource::Missing;
        cut.usage = Usage::default();
        let early = at("2026-10-01T12:00:00Z", "o4-mini");
        let outside = at("2026-10-02T00:00:00Z", "gpt-4.1");
        let new = |key, row| NewRequest {
            source: RequestSource::Import,
            key: RequestKey::Text(key),
            content_hash: None,
            row,
        };
        store.insert_requests(&[new("a", &late), new("b", &cut), new("c", &early), new("d", &outside)]).unwrap();
        let window = RequestFilter {
            since: Some("2026-10-01T00:00:00Z".parse().unwrap()),
            until: Some("2026-10-02T00:00:00Z".parse().unwrap()),
            ..RequestFilter::default()
        };
        let mut seen = Vec::new();
        let n = store.for_each_request_by_time(&window, |r| seen.push(r)).unwrap();
        assert_eq!(n, 3);
        let models: Vec<&str> = seen.iter().map(|r| r.request_model.as_str()).collect();
        assert_eq!(models, ["o4-mini", "gpt-4o-mini", "gpt-4o"]);
        // What billing needs comes back as written…
        assert_eq!((seen[2].usage, &seen[2].logical_request_id), (late.usage, &late.logical_request_id));
        assert_eq!((seen[1].status, seen[1].usage_source), (RequestStatus::Aborted, UsageSource::Missing));
        // …checkpoints without their text for the row without usage only…
        assert_eq!(
            seen[1].stream.iter().map(|c| (c.t_ms, c.tokens, c.text.is_some())).collect::<Vec<_>>(),
            [(300, 2, false), (320, 3, false)]
        );
        assert!(seen[2].stream.is_empty());
        // …and nothing that it does not need.
        assert_eq!((&seen[2].messages, &seen[2].output, &seen[2].tenant_id), (&vec![], &None, &None));
    }

    #[test]
    fn a_window_is_read_from_the_time_index_without_sorting() {
        let store = Store::open_in_memory().unwrap();
        let window = RequestFilter {
            since: Some("2026-10-01T00:00:00Z".parse().unwrap()),
            until: Some("2026-11-01T00:00:00Z".parse().unwrap()),
            ..RequestFilter::default()
        };
        let (condition, values) = where_clause(&window);
        let sql = format!("EXPLAIN QUERY PLAN SELECT {BILLED_COLUMNS} FROM request{condition} ORDER BY ts_ms, key");
        let mut stmt = store.conn.prepare(&sql).unwrap();
        let plan: Vec<String> = stmt
            .query_map(rusqlite::params_from_iter(values.iter()), |r| r.get::<_, String>(3))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // A sort would hold the whole window before the first row comes out.
        assert!(plan.iter().any(|p| p.contains("request_by_time")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }
}
