-- Schema 9: no index on request (prompt_name, prompt_version).
--
-- Rows of several prompt versions arrive interleaved, so every imported row was inserted into the middle
-- of that index, a B-tree rebalance at each leaf split: without it a trace import takes ~14 % less time
-- (194k rows: 1.34-1.56 s against 1.65-1.76 s, five interleaved pairs; docs/performance.md). What it
-- served reads faster than a scan only for small prompts: on a 975k-row state a rollback plan took
-- 3.18 s without it and 3.54 s with it, `trace stats --prompt` 0.23 s / 0.04 s for a prompt of 4,009
-- rows and 2.93 s / 3.18 s for one of 715k. Reads by prompt now scan the table (in id ranges where
-- they can), which is what the index did for any prompt with many rows.
DROP INDEX request_by_prompt;
