//! Stream checkpoints as one compact blob per request (`request_stream`, schema 7).
//!
//! A streamed reply has dozens of checkpoints; stored one row each (`stream_event`, schemas 1–6) a
//! hundred thousand streams were six million B-tree entries, and reading them back for `trace tails` was
//! two thirds of its time. One blob per request is one entry, read in one step, whose texts can be
//! borrowed without copying. The trace importer, the eval runner and every reader go through this file,
//! so that they agree on the layout:
//!
//! ```text
//! version: u8 (= 1)
//! count:   varint
//! count × { t_ms delta: zigzag varint (from the previous checkpoint, the first from 0),
//!           tokens: varint,
//!           text length + 1: varint (0 = no text) }
//! the texts, concatenated (UTF-8)
//! ```
//!
//! Varints are LEB128. Times are deltas because checkpoints arrive milliseconds apart: one or two bytes
//! each instead of eight; zigzag keeps an out-of-order time (a clock step in an export) representable.

use rusqlite::types::{Type, ValueRef};
use rusqlite::{Connection, params};

use crate::trace::model::StreamCheckpoint;
use crate::trace::records::Chunk;

const VERSION: u8 = 1;

pub(crate) const INSERT: &str = "INSERT INTO request_stream (request_id, checkpoints, data) VALUES (?1, ?2, ?3)";

/// Why a stored blob could not be read.
#[derive(Debug, thiserror::Error)]
#[error("stream checkpoints of request {request_id} are unreadable: {detail}")]
pub(crate) struct DecodeError {
    pub request_id: i64,
    pub detail: &'static str,
}

impl DecodeError {
    pub fn into_sqlite(self) -> rusqlite::Error {
        rusqlite::Error::FromSqlConversionFailure(1, Type::Blob, Box::new(self))
    }
}

/// Encodes checkpoints whose times are given as stored integers (ms; schema 6 kept them as i64).
fn encode_with<'a>(count: usize, items: impl Iterator<Item = (i64, u32, Option<&'a str>)> + Clone, out: &mut Vec<u8>) {
    out.clear();
    out.push(VERSION);
    put_varint(out, count as u64);
    let mut previous = 0i64;
    for (t_ms, tokens, text) in items.clone() {
        put_varint(out, zigzag(t_ms.wrapping_sub(previous)));
        previous = t_ms;
        put_varint(out, u64::from(tokens));
        put_varint(out, text.map_or(0, |t| t.len() as u64 + 1));
    }
    for (_, _, text) in items {
        if let Some(text) = text {
            out.extend_from_slice(text.as_bytes());
        }
    }
}

/// Encodes a request's checkpoints into `out` (cleared first).
pub(crate) fn encode(stream: &[StreamCheckpoint], out: &mut Vec<u8>) {
    let items = stream.iter().map(|c| (c.t_ms as i64, c.tokens, c.text.as_deref()));
    encode_with(stream.len(), items, out);
}

/// Stores a request's checkpoints (nothing when it has none). `buf` is scratch space reused between calls.
pub(crate) fn insert(
    conn: &Connection,
    request_id: i64,
    stream: &[StreamCheckpoint],
    buf: &mut Vec<u8>,
) -> rusqlite::Result<()> {
    if stream.is_empty() {
        return Ok(());
    }
    encode(stream, buf);
    conn.prepare_cached(INSERT)?.execute(params![request_id, stream.len() as i64, &buf[..]])?;
    Ok(())
}

/// Decodes a blob: the checkpoints go to `chunks` (cleared first), with text ranges into the returned
/// text, which is borrowed from `data`.
pub(crate) fn decode<'d>(request_id: i64, data: &'d [u8], chunks: &mut Vec<Chunk>) -> Result<&'d str, DecodeError> {
    let fail = |detail| DecodeError { request_id, detail };
    chunks.clear();
    let mut at = 0usize;
    match data.first() {
        Some(&VERSION) => at += 1,
        Some(_) => return Err(fail("written by another format version")),
        None => return Err(fail("empty")),
    }
    let count = get_varint(data, &mut at).ok_or_else(|| fail("truncated count"))?;
    // Each checkpoint takes at least three bytes: a count beyond that is corrupt, not a reason to allocate.
    if count > (data.len() as u64) / 3 {
        return Err(fail("count larger than the data"));
    }
    chunks.reserve(count as usize);
    let mut t_ms = 0i64;
    let mut text_len = 0u64;
    for _ in 0..count {
        let (Some(delta), Some(tokens), Some(text)) =
            (get_varint(data, &mut at), get_varint(data, &mut at), get_varint(data, &mut at))
        else {
            return Err(fail("truncated checkpoint"));
        };
        t_ms = t_ms.wrapping_add(unzigzag(delta));
        let range = match text {
            0 => None,
            n => {
                let from = text_len;
                text_len += n - 1;
                Some((from as u32, text_len as u32))
            }
        };
        chunks.push(Chunk { t_ms: t_ms.max(0) as u64, tokens: tokens.min(u32::MAX as u64) as u32, text: range });
    }
    let texts = &data[at..];
    if texts.len() as u64 != text_len || text_len > u32::MAX as u64 {
        return Err(fail("text lengths do not add up"));
    }
    let text = std::str::from_utf8(texts).map_err(|_| fail("text is not UTF-8"))?;
    let boundaries = chunks.iter().filter_map(|c| c.text);
    if boundaries.clone().any(|(from, to)| !text.is_char_boundary(from as usize) || !text.is_char_boundary(to as usize))
    {
        return Err(fail("a text boundary splits a character"));
    }
    Ok(text)
}

/// A request's checkpoints as owned values (for full rows).
pub(crate) fn read(conn: &Connection, request_id: i64) -> rusqlite::Result<Vec<StreamCheckpoint>> {
    let mut stmt = conn.prepare_cached("SELECT data FROM request_stream WHERE request_id = ?1")?;
    let mut rows = stmt.query([request_id])?;
    let Some(row) = rows.next()? else {
        return Ok(Vec::new());
    };
    let ValueRef::Blob(data) = row.get_ref(0)? else {
        return Err(DecodeError { request_id, detail: "not a blob" }.into_sqlite());
    };
    let mut chunks = Vec::new();
    let text = decode(request_id, data, &mut chunks).map_err(DecodeError::into_sqlite)?;
    Ok(chunks
        .iter()
        .map(|c| StreamCheckpoint {
            t_ms: c.t_ms,
            tokens: c.tokens,
            text: c.text.map(|(from, to)| text[from as usize..to as usize].to_string()),
        })
        .collect())
}

/// Schema 7's data step: moves every request's `stream_event` rows into one `request_stream` blob and
/// drops the old table. Runs inside the migration's transaction.
pub(crate) fn migrate_stream_events(tx: &Connection) -> rusqlite::Result<()> {
    let mut select = tx.prepare("SELECT request_id, t_ms, tokens, text FROM stream_event ORDER BY request_id, seq")?;
    let mut insert = tx.prepare(INSERT)?;
    let mut rows = select.query([])?;
    let mut current: Option<i64> = None;
    let mut pending: Vec<(i64, u32, Option<String>)> = Vec::new();
    let mut buf = Vec::new();
    let mut flush = |id: i64, pending: &mut Vec<(i64, u32, Option<String>)>| -> rusqlite::Result<()> {
        let items = pending.iter().map(|(t, n, text)| (*t, *n, text.as_deref()));
        encode_with(pending.len(), items, &mut buf);
        insert.execute(params![id, pending.len() as i64, &buf[..]])?;
        pending.clear();
        Ok(())
    };
    while let Some(row) = rows.next()? {
        let id: i64 = row.get(0)?;
        if current != Some(id) {
            if let Some(done) = current {
                flush(done, &mut pending)?;
            }
            current = Some(id);
        }
        // The readers of schema 6 clamped tokens to u32; the blob keeps what they returned.
        let tokens = row.get::<_, i64>(2)?.clamp(0, u32::MAX as i64) as u32;
        let text = match row.get_ref(3)? {
            ValueRef::Text(bytes) => Some(String::from_utf8_lossy(bytes).into_owned()),
            _ => None,
        };
        pending.push((row.get(1)?, tokens, text));
    }
    if let Some(done) = current {
        flush(done, &mut pending)?;
    }
    drop(rows);
    drop(select);
    tx.execute_batch("DROP TABLE stream_event")
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    let mut shift = 0u32;
    loop {
        let byte = *data.get(*at)?;
        *at += 1;
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(value);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cp(t_ms: u64, tokens: u32, text: Option<&str>) -> StreamCheckpoint {
        StreamCheckpoint { t_ms, tokens, text: text.map(Into::into) }
    }

    fn round_trip(stream: &[StreamCheckpoint]) -> Vec<StreamCheckpoint> {
        let mut buf = Vec::new();
        encode(stream, &mut buf);
        let mut chunks = Vec::new();
        let text = decode(1, &buf, &mut chunks).unwrap();
        chunks
            .iter()
            .map(|c| StreamCheckpoint {
                t_ms: c.t_ms,
                tokens: c.tokens,
                text: c.text.map(|(a, b)| text[a as usize..b as usize].to_string()),
            })
            .collect()
    }

    #[test]
    fn checkpoints_round_trip_with_and_without_texts() {
        let stream = vec![
            cp(312, 1, Some("Hel")),
            cp(330, 2, Some("lo, ")),
            cp(2_900, 1, None),
            cp(2_901, 0, Some("")),
            cp(2_950, 7, Some("naïve — ✓ ")),
            cp(2_940, u32::MAX, Some("clock went back")),
            cp(i64::MAX as u64, 3, None),
        ];
        assert_eq!(round_trip(&stream), stream);
        assert_eq!(round_trip(&[]), []);
    }

    #[test]
    fn the_blob_is_small() {
        let stream: Vec<StreamCheckpoint> = (0..60).map(|i| cp(300 + i * 25, 3, Some("word "))).collect();
        let mut buf = Vec::new();
        encode(&stream, &mut buf);
        // 60 × (1 + 1 + 1) bytes of marks, 300 bytes of text, 2 bytes of header.
        assert_eq!(buf.len(), 2 + 60 * 3 + 300 + 1);
    }

    #[test]
    fn corrupt_blobs_are_errors_not_panics() {
        let mut buf = Vec::new();
        encode(&[cp(10, 1, Some("é")), cp(20, 1, Some("x"))], &mut buf);
        let mut chunks = Vec::new();
        for cut in 0..buf.len() {
            assert!(decode(7, &buf[..cut], &mut chunks).is_err(), "cut at {cut}");
        }
        // Make the first text one byte long: the boundary would split "é".
        let mut split = buf.clone();
        split[4] = 2;
        split[7] = 3;
        assert!(decode(7, &split, &mut chunks).is_err());
        let mut version = buf.clone();
        version[0] = 9;
        assert!(decode(7, &version, &mut chunks).unwrap_err().to_string().contains("request 7"));
        assert!(
            decode(7, &[VERSION, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f], &mut chunks).is_err()
        );
    }

    #[test]
    fn schema_6_checkpoint_rows_move_into_blobs() {
        use crate::store::{OpenMode, Store};
        use crate::trace::records::RequestFilter;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.db");
        let conn = Connection::open(&path).unwrap();
        for (i, step) in crate::store::MIGRATIONS[..6].iter().enumerate() {
            assert!(step.data.is_none());
            conn.execute_batch(step.sql).unwrap();
            conn.execute_batch(&format!("PRAGMA user_version = {}", i + 1)).unwrap();
        }
        for (id, key) in [(1, "a"), (2, "b"), (3, "c")] {
            conn.execute(
                "INSERT INTO request (id, source, source_key, ts_ms, provider, request_model, attempt, status,
                   streamed, usage_source, input_total, input_uncached, cache_read, cache_write_5m, cache_write_1h,
                   output_total, reasoning, batch)
                 VALUES (?1, 'import', ?2, 0, 'openai', 'gpt-4o', 1, 'ok', 1, 'provider', 0, 0, 0, 0, 0, 0, 0, 0)",
                params![id, key],
            )
            .unwrap();
        }
        // Out of order on purpose: `seq` orders a request's checkpoints, not insertion.
        for (request, seq, t_ms, tokens, text) in [
            (3, 1, 900, 5_000_000_000i64, None),
            (1, 2, 2_700, 1, Some("lo")),
            (1, 0, 300, 2, Some("He")),
            (3, 0, 400, -3, Some("ünï")),
            (1, 1, 320, 1, None),
        ] {
            conn.execute(
                "INSERT INTO stream_event (request_id, seq, t_ms, tokens, text) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![request, seq, t_ms, tokens, text],
            )
            .unwrap();
        }
        drop(conn);
        let store = Store::open(&path, OpenMode::MustExist, false).unwrap();
        assert_eq!(store.schema_version().unwrap(), crate::store::SCHEMA_VERSION);
        let gone: i64 = store
            .conn
            .query_row("SELECT count(*) FROM sqlite_master WHERE name = 'stream_event'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(gone, 0);
        let rows = store.request_rows(&RequestFilter::default()).unwrap();
        let streams: Vec<Vec<StreamCheckpoint>> = rows.into_iter().map(|r| r.stream).collect();
        assert_eq!(
            streams,
            [
                vec![cp(300, 2, Some("He")), cp(320, 1, None), cp(2_700, 1, Some("lo"))],
                vec![],
                // Tokens as schema 6 read them: clamped to 0..=u32::MAX.
                vec![cp(400, 0, Some("ünï")), cp(900, u32::MAX, None)],
            ]
        );
        let index: String = store
            .conn
            .query_row("SELECT sql FROM sqlite_master WHERE name = 'request_by_logical_id'", [], |r| r.get(0))
            .unwrap();
        assert!(index.ends_with("WHERE source = 'eval'"), "{index}");
    }

    #[test]
    fn varints_and_zigzag_cover_the_extremes() {
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut out = Vec::new();
            put_varint(&mut out, v);
            let mut at = 0;
            assert_eq!(get_varint(&out, &mut at), Some(v));
            assert_eq!(at, out.len());
        }
        for v in [0i64, -1, 1, i64::MIN, i64::MAX] {
            assert_eq!(unzigzag(zigzag(v)), v);
        }
    }
}
