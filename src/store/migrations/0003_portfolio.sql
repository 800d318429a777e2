-- Schema 3: portfolio versions, exposures and outcomes for rebalancing, rollbacks.

-- Every recorded state of a portfolio. `spec` is the whole resolved portfolio as JSON (variants with the
-- version ref as written and the version id it resolved to, segments with their weights), so that the
-- history is exact even after a label moves.
CREATE TABLE portfolio_version (
    portfolio   TEXT NOT NULL,
    version     INTEGER NOT NULL,            -- 1, 2, … per portfolio
    prompt      TEXT NOT NULL,
    spec        TEXT NOT NULL,               -- JSON
    change      TEXT NOT NULL,               -- set | rebalance | rollback | undo
    reason      TEXT,
    actor       TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,            -- for "which weights were in force at ts"
    source_path TEXT,                        -- the YAML file, for `set`
    PRIMARY KEY (portfolio, version)
) STRICT;
CREATE INDEX portfolio_version_by_prompt ON portfolio_version (prompt);

-- A rollback (or the undo of one), with the plan it executed.
CREATE TABLE rollback (
    id                  INTEGER PRIMARY KEY,
    prompt              TEXT NOT NULL,
    label               TEXT NOT NULL,
    from_version        TEXT NOT NULL,       -- the bad version (for an undo: the version undone to)
    to_version          TEXT NOT NULL,
    conversation_policy TEXT NOT NULL,       -- pin | migrate | end
    window_start_ms     INTEGER,             -- when the bad version began to serve under the label
    window_end_ms       INTEGER NOT NULL,
    plan                TEXT NOT NULL,       -- the promptctl.rollback-plan/v1 document
    actor               TEXT NOT NULL,
    at                  TEXT NOT NULL,
    reason              TEXT,
    undoes              INTEGER REFERENCES rollback (id),
    undone_by           INTEGER REFERENCES rollback (id)
) STRICT;
CREATE INDEX rollback_by_label ON rollback (prompt, label, id);

-- A unit's first exposure to a variant. `quarantine` names the rollback that excluded it from rebalancing.
CREATE TABLE exposure (
    id         INTEGER PRIMARY KEY,
    portfolio  TEXT NOT NULL,
    unit       TEXT NOT NULL,
    variant    TEXT NOT NULL,
    segment    TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    source     TEXT NOT NULL,                -- file | trace | eval
    quarantine INTEGER REFERENCES rollback (id),
    UNIQUE (portfolio, unit, variant)
) STRICT;
CREATE INDEX exposure_by_time ON exposure (portfolio, ts_ms);

-- One observed outcome: named numeric metrics (the portfolio's objective is one of them) and a cost.
CREATE TABLE outcome (
    id         INTEGER PRIMARY KEY,
    portfolio  TEXT NOT NULL,
    key        TEXT NOT NULL,                -- idempotency key: the line's `id`, or a hash of its content
    unit       TEXT NOT NULL,
    variant    TEXT NOT NULL,
    segment    TEXT NOT NULL,
    ts_ms      INTEGER NOT NULL,
    metrics    TEXT NOT NULL,                -- JSON object of numbers
    cost_usd   REAL,
    source     TEXT NOT NULL,                -- file | trace | eval
    quarantine INTEGER REFERENCES rollback (id),
    UNIQUE (portfolio, key)
) STRICT;
CREATE INDEX outcome_by_time ON outcome (portfolio, ts_ms);
CREATE INDEX outcome_by_unit ON outcome (portfolio, unit);

-- What a rollback decided for each conversation begun under the bad version. `pin` keeps it on that
-- version until it ends; `migrate` moves it to the rollback target; `end` closes it.
CREATE TABLE conversation_policy (
    rollback_id     INTEGER NOT NULL REFERENCES rollback (id),
    conversation_id TEXT NOT NULL,
    prompt          TEXT NOT NULL,
    version         TEXT NOT NULL,           -- the version it began under
    policy          TEXT NOT NULL,           -- pin | migrate | end
    revoked_by      INTEGER REFERENCES rollback (id),
    PRIMARY KEY (rollback_id, conversation_id)
) STRICT;
CREATE INDEX conversation_policy_by_conversation ON conversation_policy (conversation_id);
