-- Schema 6: idempotent trace import.

-- A hash of the normalized row. Re-importing a request (same source_key) with the same hash is a duplicate
-- and changes nothing; with another hash it is a conflict, reported, and the stored row is kept.
ALTER TABLE request ADD COLUMN content_hash TEXT;
