-- Schema 2: eval runs, their samples, and suite baselines.

CREATE TABLE eval_run (
    run_id          TEXT PRIMARY KEY,            -- r-YYYYMMDD-HHMMSS-xxxx
    suite           TEXT NOT NULL,
    suite_path      TEXT,
    suite_json      TEXT NOT NULL,               -- the suite as run (cases and assertions resolved)
    prompt_name     TEXT,
    prompt_version  TEXT,
    provider        TEXT NOT NULL,               -- e.g. openai:gpt-4o-mini
    base_url        TEXT,
    samples         INTEGER NOT NULL,            -- K
    require         INTEGER NOT NULL,            -- N
    concurrency     INTEGER NOT NULL,
    max_cost_picos  INTEGER,                     -- budget in pico-dollars, NULL = none
    samples_total   INTEGER NOT NULL,
    status          TEXT NOT NULL,               -- running | complete | partial
    stop_reason     TEXT,                        -- budget | interrupted | provider_errors | …
    started_at      TEXT NOT NULL,
    finished_at     TEXT
) STRICT;
CREATE INDEX eval_run_by_suite ON eval_run (suite, started_at);

-- One sample of one case. Its provider calls (every attempt) are rows of `request` with source = 'eval'
-- and logical_request_id = '<run_id>/<case_id>/<sample>'.
CREATE TABLE eval_sample (
    run_id        TEXT NOT NULL REFERENCES eval_run (run_id),
    case_id       TEXT NOT NULL,
    sample        INTEGER NOT NULL,              -- 0-based
    outcome       TEXT NOT NULL,                 -- pass | fail | error
    output        TEXT,
    assertions    TEXT NOT NULL,                 -- JSON: [{type, passed, detail}]
    attempts      INTEGER NOT NULL,
    request_id    INTEGER REFERENCES request (id),  -- the final attempt
    cost_picos    INTEGER,                       -- all attempts, NULL when the model has no price
    latency_ms    INTEGER,
    ttft_ms       INTEGER,
    completed_at  TEXT NOT NULL,
    PRIMARY KEY (run_id, case_id, sample)
) STRICT;

-- A suite's reference run. Only one active per suite; a rollback flags baselines of a bad version.
CREATE TABLE baseline (
    id              INTEGER PRIMARY KEY,
    suite           TEXT NOT NULL,
    run_id          TEXT NOT NULL REFERENCES eval_run (run_id),
    prompt_name     TEXT,
    prompt_version  TEXT,
    created_at      TEXT NOT NULL,
    actor           TEXT NOT NULL,
    active          INTEGER NOT NULL,
    flagged_reason  TEXT
) STRICT;
CREATE INDEX baseline_by_suite ON baseline (suite, id);
