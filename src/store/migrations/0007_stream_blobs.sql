-- Schema 7: faster trace analyses and imports.

-- A request's stream checkpoints as one blob (layout in src/store/streams.rs) instead of one
-- `stream_event` row per checkpoint: a hundred thousand streams were six million B-tree entries. The
-- migration's data step (streams::migrate_stream_events) moves the existing rows and drops `stream_event`.
CREATE TABLE request_stream (
    request_id  INTEGER PRIMARY KEY REFERENCES request (id) ON DELETE CASCADE,
    checkpoints INTEGER NOT NULL,   -- how many the blob holds
    data        BLOB NOT NULL
) STRICT;

-- Only eval runs look requests up by logical id (a run's rows share the prefix `<run_id>/`); imported
-- rows were paying a random insert into this index each for no reader.
DROP INDEX request_by_logical_id;
CREATE INDEX request_by_logical_id ON request (logical_request_id) WHERE source = 'eval';
