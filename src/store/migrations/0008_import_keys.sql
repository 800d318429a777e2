-- Schema 8: request rows keyed for bulk import.
--
-- Schemas 1–7 kept every request's key as text (`span:TRACE/SPAN`, `sha:HASH`, or an eval run's own)
-- under a UNIQUE constraint of its own. Trace and span ids are random, so each imported row landed on a
-- random leaf of that index and each commit rewrote most of it. Now:
--
-- * an imported row is unique by its start time and a 16-byte digest of its key (`key`, SHA-256
--   truncated), in one index that rows reach in time order and that also serves every read by time (it
--   replaces `request_by_time (ts_ms)`). The same span exported again with another start time is another
--   row (docs/traces.md, "Importing twice");
-- * the text of an imported row's key is not stored: the row gives it back (`span:` + its trace and span
--   ids, else `sha:` + its content hash; DERIVED_SOURCE_KEY in store/requests.rs). A key that is not that
--   (an eval run's) stays in `source_key`, unique by itself as before;
-- * content hashes are their 16 bytes instead of 32 hex digits.
--
-- A UNIQUE column constraint cannot be dropped, so the table is rebuilt. Rows keep their ids, and the
-- tables that refer to them (`request_stream`, `eval_sample`) are left as they are: Store::migrate turns
-- foreign keys off for this step and checks them before it commits. `promptctl_key_digest` is a function
-- the migration registers (store/mod.rs).
CREATE TABLE request_v8 (
    id                 INTEGER PRIMARY KEY,
    source             TEXT NOT NULL,          -- import | eval
    key                BLOB NOT NULL,          -- 16 bytes: SHA-256 of the idempotency key, truncated
    source_key         TEXT,                   -- the key's text where the row cannot give it back
    content_hash       BLOB,                   -- 16 bytes: the normalized row's hash (trace import)
    ts_ms              INTEGER NOT NULL,       -- UTC, ms since the Unix epoch
    provider           TEXT NOT NULL,
    request_model      TEXT NOT NULL,
    response_model     TEXT,
    project            TEXT,
    api_key_ref        TEXT,
    tenant_id          TEXT,
    conversation_id    TEXT,
    trace_id           TEXT,
    span_id            TEXT,
    logical_request_id TEXT,
    attempt            INTEGER NOT NULL,
    status             TEXT NOT NULL,          -- ok | error | timeout | aborted
    streamed           INTEGER NOT NULL,
    usage_source       TEXT NOT NULL,          -- provider | estimated | missing
    input_total        INTEGER NOT NULL,
    input_uncached     INTEGER NOT NULL,
    cache_read         INTEGER NOT NULL,
    cache_write_5m     INTEGER NOT NULL,
    cache_write_1h     INTEGER NOT NULL,
    output_total       INTEGER NOT NULL,
    reasoning          INTEGER NOT NULL,
    service_tier       TEXT,
    batch              INTEGER NOT NULL,
    latency_ms         INTEGER,
    ttft_ms            INTEGER,
    prompt_name        TEXT,
    prompt_version     TEXT,
    finish_reason      TEXT,
    error              TEXT,
    messages           TEXT,                   -- JSON array of {role, content}
    output             TEXT,
    CHECK (input_total = input_uncached + cache_read + cache_write_5m + cache_write_1h)
) STRICT;

INSERT INTO request_v8 (id, source, key, source_key, content_hash, ts_ms, provider, request_model, response_model,
    project, api_key_ref, tenant_id, conversation_id, trace_id, span_id, logical_request_id, attempt, status,
    streamed, usage_source, input_total, input_uncached, cache_read, cache_write_5m, cache_write_1h, output_total,
    reasoning, service_tier, batch, latency_ms, ttft_ms, prompt_name, prompt_version, finish_reason, error, messages,
    output)
SELECT id, source, promptctl_key_digest(source_key),
    -- Kept only where the row does not give the key back (NULL = NULL is not true: such keys are kept).
    CASE WHEN source = 'import' AND source_key IS (CASE WHEN trace_id IS NOT NULL AND span_id IS NOT NULL
                                                        THEN 'span:' || trace_id || '/' || span_id
                                                        ELSE 'sha:' || content_hash END)
         THEN NULL ELSE source_key END,
    unhex(content_hash), ts_ms, provider, request_model, response_model, project, api_key_ref, tenant_id,
    conversation_id, trace_id, span_id, logical_request_id, attempt, status, streamed, usage_source, input_total,
    input_uncached, cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, service_tier, batch,
    latency_ms, ttft_ms, prompt_name, prompt_version, finish_reason, error, messages, output
FROM request ORDER BY id;

DROP TABLE request;
ALTER TABLE request_v8 RENAME TO request;

-- Imported rows are unique by (start time, key digest); eval rows by their key text. Time-range reads
-- (reconcile, windows of trace stats and cost reports) use the first index.
CREATE UNIQUE INDEX request_by_time ON request (ts_ms, key);
CREATE UNIQUE INDEX request_by_source_key ON request (source_key) WHERE source_key IS NOT NULL;
CREATE INDEX request_by_prompt ON request (prompt_name, prompt_version);
CREATE INDEX request_by_logical_id ON request (logical_request_id) WHERE source = 'eval';
