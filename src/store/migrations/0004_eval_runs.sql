-- Schema 4 (eval): what resuming and regrading a run need.

-- Wall time spent running, summed over the sessions of a run (the first run and every resume).
ALTER TABLE eval_run ADD COLUMN wall_ms INTEGER NOT NULL DEFAULT 0;
-- A regrade is a new run over the outputs of another: its samples' request rows are that run's.
ALTER TABLE eval_run ADD COLUMN regraded_from TEXT REFERENCES eval_run (run_id);

-- A run's request rows are found by logical id prefix `<run_id>/`.
CREATE INDEX request_by_logical_id ON request (logical_request_id);

-- `eval list` counts each run's samples by outcome without reading the samples' outputs.
CREATE INDEX eval_sample_by_outcome ON eval_sample (run_id, outcome);
