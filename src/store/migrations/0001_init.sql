-- promptctl state, schema 1: prompts, labels, audit, normalized request rows.

-- Facts about this state file (the scan HMAC key, created on first open).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;

-- Content-addressed prompt versions: the exact bytes that produced a version id.
CREATE TABLE prompt_version (
    name            TEXT NOT NULL,
    version_id      TEXT NOT NULL,            -- first 12 hex of content_hash
    content_hash    TEXT NOT NULL,            -- full SHA-256, hex
    path            TEXT NOT NULL,            -- the .prompt file, relative to the project root
    source          TEXT NOT NULL,            -- the whole .prompt file
    examples_path   TEXT,                     -- as written in the frontmatter
    examples_source TEXT,
    created_at      TEXT NOT NULL,
    PRIMARY KEY (name, version_id)
) STRICT;

-- The log: a commit points at a version; committing an older content again is a new commit.
CREATE TABLE prompt_commit (
    seq          INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    version_id   TEXT NOT NULL,
    message      TEXT,
    author       TEXT NOT NULL,
    committed_at TEXT NOT NULL,
    FOREIGN KEY (name, version_id) REFERENCES prompt_version (name, version_id)
) STRICT;
CREATE INDEX prompt_commit_by_name ON prompt_commit (name, seq);

CREATE TABLE label (
    name       TEXT NOT NULL,
    label      TEXT NOT NULL,
    version_id TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (name, label),
    FOREIGN KEY (name, version_id) REFERENCES prompt_version (name, version_id)
) STRICT;

CREATE TABLE label_event (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    label        TEXT NOT NULL,
    from_version TEXT,
    to_version   TEXT NOT NULL,
    actor        TEXT NOT NULL,
    at           TEXT NOT NULL,
    reason       TEXT
) STRICT;
CREATE INDEX label_event_by_label ON label_event (name, label, id);

-- Every state change a person may later ask "who did this and why" about.
CREATE TABLE audit_event (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT NOT NULL,
    detail  TEXT NOT NULL                      -- JSON
) STRICT;

-- Token counts are costly to compute (tokenizer tables load in tens of ms); cache them by content.
CREATE TABLE token_count (
    content_hash TEXT NOT NULL,
    encoding     TEXT NOT NULL,
    tokens       INTEGER NOT NULL,
    PRIMARY KEY (content_hash, encoding)
) STRICT, WITHOUT ROWID;

-- One provider call, imported or made by `eval run` (DESIGN.md, "The normalized request row").
CREATE TABLE request (
    id                 INTEGER PRIMARY KEY,
    source             TEXT NOT NULL,          -- import | eval
    source_key         TEXT NOT NULL UNIQUE,   -- makes re-import idempotent
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
CREATE INDEX request_by_time ON request (ts_ms);
CREATE INDEX request_by_prompt ON request (prompt_name, prompt_version);

CREATE TABLE stream_event (
    request_id INTEGER NOT NULL REFERENCES request (id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    t_ms       INTEGER NOT NULL,
    tokens     INTEGER NOT NULL,
    text       TEXT,
    PRIMARY KEY (request_id, seq)
) STRICT, WITHOUT ROWID;
