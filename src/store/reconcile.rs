//! What `reconcile` reads from the state: the request rows of a window, one at a time.
//!
//! Until trace import lands on main (branch `traces`, `store/requests.rs`), this is the reader of the
//! `request` table that reconcile uses when no `--traces` are given; it reads only the columns the
//! waterfall needs and streams, so a month of a million rows is never held in memory.

use jiff::Timestamp;
use rusqlite::params;

use super::{Store, StoreError};
use crate::trace::model::{RequestRow, RequestStatus, Usage, UsageSource};

impl Store {
    /// Calls `visit` for every stored request row with `start_ms <= ts_ms < end_ms`, in time order.
    pub fn for_each_request_between(
        &self,
        start_ms: i64,
        end_ms: i64,
        mut visit: impl FnMut(RequestRow),
    ) -> Result<u64, StoreError> {
        let mut statement = self
            .conn
            .prepare(
                "SELECT ts_ms, provider, request_model, response_model, project, api_key_ref, conversation_id,
                        logical_request_id, attempt, status, streamed, usage_source, input_total, input_uncached,
                        cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, service_tier, batch
                   FROM request WHERE ts_ms >= ?1 AND ts_ms < ?2 ORDER BY ts_ms",
            )
            .map_err(|e| self.err(e))?;
        let mut rows = statement.query(params![start_ms, end_ms]).map_err(|e| self.err(e))?;
        let mut count = 0;
        while let Some(row) = rows.next().map_err(|e| self.err(e))? {
            visit(request_row(row).map_err(|e| self.err(e))?);
            count += 1;
        }
        Ok(count)
    }
}

fn request_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RequestRow> {
    let count = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let ts_ms: i64 = r.get(0)?;
    let status: String = r.get(9)?;
    let usage_source: String = r.get(11)?;
    let usage = Usage {
        input_total: count(12)?,
        input_uncached: count(13)?,
        cache_read: count(14)?,
        cache_write_5m: count(15)?,
        cache_write_1h: count(16)?,
        output_total: count(17)?,
        reasoning: count(18)?,
    };
    Ok(RequestRow {
        ts: Timestamp::from_millisecond(ts_ms).unwrap_or(Timestamp::UNIX_EPOCH),
        provider: r.get(1)?,
        request_model: r.get(2)?,
        response_model: r.get(3)?,
        project: r.get(4)?,
        api_key_ref: r.get(5)?,
        tenant_id: None,
        conversation_id: r.get(6)?,
        trace_id: None,
        span_id: None,
        logical_request_id: r.get(7)?,
        attempt: r.get::<_, i64>(8)?.max(1) as u32,
        status: match status.as_str() {
            "error" => RequestStatus::Error,
            "timeout" => RequestStatus::Timeout,
            "aborted" => RequestStatus::Aborted,
            _ => RequestStatus::Ok,
        },
        streamed: r.get::<_, i64>(10)? != 0,
        usage_source: match usage_source.as_str() {
            "estimated" => UsageSource::Estimated,
            "missing" => UsageSource::Missing,
            _ => UsageSource::Provider,
        },
        usage,
        service_tier: r.get(19)?,
        batch: r.get::<_, i64>(20)? != 0,
        latency_ms: None,
        ttft_ms: None,
        prompt_name: None,
        prompt_version: None,
        finish_reason: None,
        error: None,
        messages: Vec::new(),
        output: None,
        stream: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn insert(store: &mut Store, key: &str, ts_ms: i64, status: &str, usage: (i64, i64, i64)) {
        store
            .write(|tx| {
                tx.execute(
                    "INSERT INTO request (source, source_key, ts_ms, provider, request_model, response_model, project,
                        logical_request_id, attempt, status, streamed, usage_source, input_total, input_uncached,
                        cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, service_tier, batch)
                     VALUES ('import', ?1, ?2, 'openai', 'gpt-4o-mini', 'gpt-4o-mini-2024-07-18', 'proj_a', 'lr-1', 1,
                        ?3, 1, 'provider', ?4, ?5, ?6, 0, 0, 10, 0, 'default', 0)",
                    params![key, ts_ms, status, usage.0, usage.1, usage.2],
                )?;
                Ok(())
            })
            .unwrap();
    }

    #[test]
    fn reads_the_rows_of_a_window_in_time_order() {
        let mut store = Store::open_in_memory().unwrap();
        insert(&mut store, "b", 2_000, "ok", (100, 60, 40));
        insert(&mut store, "a", 1_000, "timeout", (0, 0, 0));
        insert(&mut store, "c", 9_000, "ok", (5, 5, 0));
        let mut seen = Vec::new();
        let n = store.for_each_request_between(0, 5_000, |row| seen.push(row)).unwrap();
        assert_eq!(n, 2);
        assert_eq!(seen[0].status, RequestStatus::Timeout);
        assert_eq!(seen[1].usage.cache_read, 40);
        assert!(seen[1].usage.is_consistent());
        assert_eq!(seen[1].response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    }
}
