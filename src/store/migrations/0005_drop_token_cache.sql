-- Schema 5: token counts are no longer cached. The tokenizer now reads build-time tables and counts a
-- prompt in well under a millisecond, less than writing the cache row cost.
DROP TABLE token_count;
