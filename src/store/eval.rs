//! Eval runs, their samples and baselines; an eval sample's calls as normalized request rows
//! (`source = 'eval'`, `source_key = <run_id>/<case_id>/<sample>/<attempt>`) with their stream events.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Row, Transaction, params};

use super::requests::{NewRequest, RequestSource};
use super::{Store, StoreError, now_rfc3339};
use crate::eval::export::SampleDetail;
use crate::eval::report::RequestFacts;
use crate::eval::sample::{Check, KeyedRow, Outcome, SampleRecord, Write};
use crate::money::Usd;
use crate::trace::model::{RequestStatus, Usage};

/// A run to record before its first request.
#[derive(Debug, Clone)]
pub struct NewEvalRun<'a> {
    pub run_id: &'a str,
    pub suite: &'a str,
    pub suite_path: Option<&'a str>,
    pub suite_json: &'a str,
    pub prompt_name: Option<&'a str>,
    pub prompt_version: Option<&'a str>,
    pub provider: &'a str,
    pub base_url: Option<&'a str>,
    pub samples: u32,
    pub require: u32,
    pub concurrency: u32,
    pub max_cost: Option<Usd>,
    pub samples_total: u64,
    pub regraded_from: Option<&'a str>,
}

/// A stored run, with how many of its samples have a verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct EvalRunRow {
    pub run_id: String,
    pub suite: String,
    pub suite_path: Option<String>,
    pub suite_json: String,
    pub prompt_name: Option<String>,
    pub prompt_version: Option<String>,
    pub provider: String,
    pub base_url: Option<String>,
    pub samples: u32,
    pub require: u32,
    pub concurrency: u32,
    pub max_cost: Option<Usd>,
    pub samples_total: u64,
    pub status: String,
    pub stop_reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub wall_ms: u64,
    pub regraded_from: Option<String>,
    /// Samples with a verdict (pass or fail).
    pub samples_done: u64,
    /// Samples that ended in a provider error.
    pub sample_errors: u64,
}

impl EvalRunRow {
    /// The run whose request rows hold this run's calls.
    pub fn trace_run_id(&self) -> &str {
        self.regraded_from.as_deref().unwrap_or(&self.run_id)
    }
}

/// One stored sample, as the report counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSample {
    pub case_id: String,
    pub sample: u32,
    pub outcome: Outcome,
    pub attempts: u32,
    pub cost: Option<Usd>,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
}

/// A stored sample with its output and checks (for regrades and `eval show --case`).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSampleDetail {
    pub detail: SampleDetail,
    pub request_id: Option<i64>,
    pub cost: Option<Usd>,
    pub ttft_ms: Option<u64>,
    /// Output tokens of the final attempt, when reported.
    pub output_tokens: Option<u64>,
}

const RUN_COLUMNS: &str = "r.run_id, r.suite, r.suite_path, r.suite_json, r.prompt_name, r.prompt_version, r.provider,
    r.base_url, r.samples, r.require, r.concurrency, r.max_cost_picos, r.samples_total, r.status, r.stop_reason,
    r.started_at, r.finished_at, r.wall_ms, r.regraded_from,
    (SELECT count(*) FROM eval_sample s WHERE s.run_id = r.run_id AND s.outcome != 'error'),
    (SELECT count(*) FROM eval_sample s WHERE s.run_id = r.run_id AND s.outcome = 'error')";

fn run_from_row(row: &Row<'_>) -> rusqlite::Result<EvalRunRow> {
    Ok(EvalRunRow {
        run_id: row.get(0)?,
        suite: row.get(1)?,
        suite_path: row.get(2)?,
        suite_json: row.get(3)?,
        prompt_name: row.get(4)?,
        prompt_version: row.get(5)?,
        provider: row.get(6)?,
        base_url: row.get(7)?,
        samples: row.get(8)?,
        require: row.get(9)?,
        concurrency: row.get(10)?,
        max_cost: row.get::<_, Option<i64>>(11)?.map(|p| Usd::from_picos(i128::from(p))),
        samples_total: row.get::<_, i64>(12)? as u64,
        status: row.get(13)?,
        stop_reason: row.get(14)?,
        started_at: row.get(15)?,
        finished_at: row.get(16)?,
        wall_ms: row.get::<_, i64>(17)? as u64,
        regraded_from: row.get(18)?,
        samples_done: row.get::<_, i64>(19)? as u64,
        sample_errors: row.get::<_, i64>(20)? as u64,
    })
}

fn picos(usd: Usd) -> i64 {
    i64::try_from(usd.0).unwrap_or(i64::MAX)
}

/// The half-open range of logical ids `<run_id>/…` (`0` sorts right after `/`).
fn logical_range(run_id: &str) -> (String, String) {
    (format!("{run_id}/"), format!("{run_id}0"))
}

impl Store {
    /// Records a new run as `running`. Returns false when the run id is taken (the caller picks another).
    pub fn insert_eval_run(&mut self, run: &NewEvalRun<'_>) -> Result<bool, StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            let inserted = tx.execute(
                "INSERT INTO eval_run (run_id, suite, suite_path, suite_json, prompt_name, prompt_version, provider,
                   base_url, samples, require, concurrency, max_cost_picos, samples_total, status, started_at,
                   regraded_from)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, 'running', ?14, ?15)
                 ON CONFLICT (run_id) DO NOTHING",
                params![
                    run.run_id,
                    run.suite,
                    run.suite_path,
                    run.suite_json,
                    run.prompt_name,
                    run.prompt_version,
                    run.provider,
                    run.base_url,
                    run.samples,
                    run.require,
                    run.concurrency,
                    run.max_cost.map(picos),
                    run.samples_total as i64,
                    now,
                    run.regraded_from,
                ],
            )?;
            Ok(inserted == 1)
        })
    }

    /// Writes finished samples and interrupted calls in one transaction.
    pub fn write_eval_batch(&mut self, run_id: &str, batch: &[Write]) -> Result<(), StoreError> {
        self.write(|tx| {
            for write in batch {
                match write {
                    Write::Sample(sample) => insert_sample(tx, run_id, sample)?,
                    Write::Interrupted(rows) => {
                        for row in rows {
                            insert_request(tx, row)?;
                        }
                    }
                }
            }
            Ok(())
        })
    }

    /// Marks a session of a run as over: its status, why it stopped, and the wall time it took.
    pub fn finish_eval_run(
        &mut self,
        run_id: &str,
        status: &str,
        stop_reason: Option<&str>,
        wall_ms: u64,
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            tx.execute(
                "UPDATE eval_run SET status = ?2, stop_reason = ?3, finished_at = ?4, wall_ms = wall_ms + ?5
                 WHERE run_id = ?1",
                params![run_id, status, stop_reason, now, wall_ms as i64],
            )?;
            Ok(())
        })
    }

    /// Marks a run as running again (a resume), optionally with a new budget and base URL.
    pub fn reopen_eval_run(
        &mut self,
        run_id: &str,
        max_cost: Option<Usd>,
        base_url: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|tx| {
            tx.execute(
                "UPDATE eval_run SET status = 'running', stop_reason = NULL, finished_at = NULL,
                   max_cost_picos = ?2, base_url = coalesce(?3, base_url) WHERE run_id = ?1",
                params![run_id, max_cost.map(picos), base_url],
            )?;
            Ok(())
        })
    }

    pub fn eval_run(&self, run_id: &str) -> Result<Option<EvalRunRow>, StoreError> {
        self.conn
            .query_row(&format!("SELECT {RUN_COLUMNS} FROM eval_run r WHERE r.run_id = ?1"), [run_id], run_from_row)
            .optional()
            .map_err(|e| self.err(e))
    }

    /// Runs newest first (optionally of one suite), at most `limit`.
    pub fn eval_runs(&self, suite: Option<&str>, limit: usize) -> Result<Vec<EvalRunRow>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {RUN_COLUMNS} FROM eval_run r WHERE ?1 IS NULL OR r.suite = ?1
                 ORDER BY r.started_at DESC, r.rowid DESC LIMIT ?2"
            ))
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map(params![suite, limit as i64], run_from_row).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Run ids that start with `prefix`.
    pub fn eval_run_ids_with_prefix(&self, prefix: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT run_id FROM eval_run WHERE substr(run_id, 1, length(?1)) = ?1 ORDER BY run_id LIMIT 20")
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([prefix], |r| r.get(0)).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    pub fn eval_samples(&self, run_id: &str) -> Result<Vec<StoredSample>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT case_id, sample, outcome, attempts, cost_picos, latency_ms, ttft_ms FROM eval_sample
                 WHERE run_id = ?1 ORDER BY case_id, sample",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([run_id], |r| {
                let outcome: String = r.get(2)?;
                Ok(StoredSample {
                    case_id: r.get(0)?,
                    sample: r.get(1)?,
                    outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Error),
                    attempts: r.get(3)?,
                    cost: r.get::<_, Option<i64>>(4)?.map(|p| Usd::from_picos(i128::from(p))),
                    latency_ms: r.get::<_, Option<i64>>(5)?.map(|v| v as u64),
                    ttft_ms: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Samples with outputs and checks, of one case or all, ordered by case then sample.
    pub fn eval_sample_details(
        &self,
        run_id: &str,
        case_id: Option<&str>,
    ) -> Result<Vec<StoredSampleDetail>, StoreError> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT s.case_id, s.sample, s.outcome, s.output, s.assertions, s.attempts, s.latency_ms, s.ttft_ms,
                   s.cost_picos, s.request_id, q.error, q.output_total, q.usage_source
                 FROM eval_sample s LEFT JOIN request q ON q.id = s.request_id
                 WHERE s.run_id = ?1 AND (?2 IS NULL OR s.case_id = ?2) ORDER BY s.case_id, s.sample",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map(params![run_id, case_id], |r| {
                let outcome: String = r.get(2)?;
                let checks: String = r.get(4)?;
                let usage_source: Option<String> = r.get(12)?;
                Ok(StoredSampleDetail {
                    detail: SampleDetail {
                        case_id: r.get(0)?,
                        sample: r.get(1)?,
                        outcome: Outcome::parse(&outcome).unwrap_or(Outcome::Error),
                        output: r.get(3)?,
                        checks: serde_json::from_str::<Vec<Check>>(&checks).unwrap_or_default(),
                        attempts: r.get(5)?,
                        latency_ms: r.get::<_, Option<i64>>(6)?.map(|v| v as u64),
                        error: r.get(10)?,
                    },
                    ttft_ms: r.get::<_, Option<i64>>(7)?.map(|v| v as u64),
                    cost: r.get::<_, Option<i64>>(8)?.map(|p| Usd::from_picos(i128::from(p))),
                    request_id: r.get(9)?,
                    output_tokens: match usage_source.as_deref() {
                        Some("missing") | None => None,
                        _ => r.get::<_, Option<i64>>(11)?.map(|v| v as u64),
                    },
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The request rows of a run's calls, in insertion order, reduced for the report.
    pub fn eval_request_facts(&self, trace_run_id: &str) -> Result<Vec<RequestFacts>, StoreError> {
        let (from, to) = logical_range(trace_run_id);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT logical_request_id, provider, request_model, attempt, status, usage_source, input_total,
                   input_uncached, cache_read, cache_write_5m, cache_write_1h, output_total, reasoning, service_tier,
                   batch, ts_ms, latency_ms, (output IS NOT NULL AND output != '')
                 FROM request WHERE source = 'eval' AND logical_request_id >= ?1 AND logical_request_id < ?2
                 ORDER BY id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt
            .query_map([from, to], |r| {
                let status: String = r.get(4)?;
                let usage_source: String = r.get(5)?;
                let n = |i: usize| r.get::<_, i64>(i).map(|v| v as u64);
                let usage = Usage {
                    input_total: n(6)?,
                    input_uncached: n(7)?,
                    cache_read: n(8)?,
                    cache_write_5m: n(9)?,
                    cache_write_1h: n(10)?,
                    output_total: n(11)?,
                    reasoning: n(12)?,
                };
                Ok(RequestFacts {
                    logical_request_id: r.get(0)?,
                    provider: r.get(1)?,
                    request_model: r.get(2)?,
                    attempt: r.get(3)?,
                    status: parse_status(&status),
                    usage: (usage_source != "missing").then_some(usage),
                    has_output: r.get(17)?,
                    service_tier: r.get(13)?,
                    batch: r.get(14)?,
                    ts: jiff::Timestamp::from_millisecond(r.get(15)?).unwrap_or(jiff::Timestamp::UNIX_EPOCH),
                    latency_ms: r.get::<_, Option<i64>>(16)?.map(|v| v as u64),
                })
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// The highest attempt number stored per logical request id of a run (for numbering new attempts).
    pub fn eval_attempts_before(&self, run_id: &str) -> Result<HashMap<String, u32>, StoreError> {
        let (from, to) = logical_range(run_id);
        let mut stmt = self
            .conn
            .prepare(
                "SELECT logical_request_id, max(attempt) FROM request
                 WHERE source = 'eval' AND logical_request_id >= ?1 AND logical_request_id < ?2
                 GROUP BY logical_request_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = stmt.query_map([from, to], |r| Ok((r.get(0)?, r.get(1)?))).map_err(|e| self.err(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.err(e))
    }

    /// Stores the samples of a regrade: new verdicts on the source run's outputs and request rows.
    pub fn insert_regraded_samples(
        &mut self,
        run_id: &str,
        samples: &[(StoredSampleDetail, Outcome, Vec<Check>)],
    ) -> Result<(), StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            let mut stmt = tx.prepare_cached(INSERT_SAMPLE)?;
            for (stored, outcome, checks) in samples {
                let d = &stored.detail;
                stmt.execute(params![
                    run_id,
                    d.case_id,
                    d.sample,
                    outcome.as_str(),
                    d.output,
                    serde_json::to_string(checks).unwrap_or_else(|_| "[]".into()),
                    d.attempts,
                    stored.request_id,
                    stored.cost.map(picos),
                    d.latency_ms.map(|v| v as i64),
                    stored.ttft_ms.map(|v| v as i64),
                    now,
                ])?;
            }
            Ok(())
        })
    }

    /// Makes `run_id` the suite's active baseline; returns the run that was the baseline before.
    pub fn set_eval_baseline(
        &mut self,
        suite: &str,
        run_id: &str,
        prompt_name: Option<&str>,
        prompt_version: Option<&str>,
        actor: &str,
    ) -> Result<Option<String>, StoreError> {
        let now = now_rfc3339();
        self.write(|tx| {
            let previous: Option<String> = tx
                .query_row(
                    "SELECT run_id FROM baseline WHERE suite = ?1 AND active = 1 ORDER BY id DESC LIMIT 1",
                    [suite],
                    |r| r.get(0),
                )
                .optional()?;
            tx.execute("UPDATE baseline SET active = 0 WHERE suite = ?1 AND active = 1", [suite])?;
            tx.execute(
                "INSERT INTO baseline (suite, run_id, prompt_name, prompt_version, created_at, actor, active)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1)",
                params![suite, run_id, prompt_name, prompt_version, now, actor],
            )?;
            Ok(previous)
        })
    }

    /// The suite's active baseline run, if any.
    pub fn eval_baseline(&self, suite: &str) -> Result<Option<String>, StoreError> {
        self.conn
            .query_row(
                "SELECT run_id FROM baseline WHERE suite = ?1 AND active = 1 ORDER BY id DESC LIMIT 1",
                [suite],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.err(e))
    }
}

const INSERT_SAMPLE: &str = "INSERT OR REPLACE INTO eval_sample (run_id, case_id, sample, outcome, output, assertions,
    attempts, request_id, cost_picos, latency_ms, ttft_ms, completed_at)
  VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

fn insert_sample(tx: &Transaction<'_>, run_id: &str, sample: &SampleRecord) -> rusqlite::Result<()> {
    let mut final_id = None;
    for (index, row) in sample.rows.iter().enumerate() {
        let id = insert_request(tx, row)?;
        if Some(index) == sample.final_row {
            final_id = Some(id);
        }
    }
    let mut stmt = tx.prepare_cached(INSERT_SAMPLE)?;
    stmt.execute(params![
        run_id,
        sample.case_id,
        sample.sample,
        sample.outcome.as_str(),
        sample.output,
        serde_json::to_string(&sample.checks).unwrap_or_else(|_| "[]".into()),
        sample.attempts,
        final_id,
        sample.cost.map(picos),
        sample.latency_ms.map(|v| v as i64),
        sample.ttft_ms.map(|v| v as i64),
        sample.completed_at.round(jiff::Unit::Millisecond).unwrap_or(sample.completed_at).to_string(),
    ])?;
    Ok(())
}

/// Inserts one attempt and its stream checkpoints through the one request writer trace import uses; a
/// key stored before keeps its row (a resumed run re-sending a committed attempt).
fn insert_request(tx: &Transaction<'_>, keyed: &KeyedRow) -> rusqlite::Result<i64> {
    let new = NewRequest {
        source: RequestSource::Eval,
        key: super::requests::RequestKey::Text(&keyed.key),
        content_hash: None,
        row: &keyed.row,
    };
    let inserted = super::requests::insert_requests_in(tx, std::slice::from_ref(&new))?;
    Ok(inserted[0].id())
}

fn parse_status(text: &str) -> RequestStatus {
    match text {
        "ok" => RequestStatus::Ok,
        "timeout" => RequestStatus::Timeout,
        "aborted" => RequestStatus::Aborted,
        _ => RequestStatus::Error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::{Message, RequestRow, StreamCheckpoint, UsageSource};

    fn row(logical: &str, attempt: u32, status: RequestStatus) -> KeyedRow {
        KeyedRow {
            key: format!("{logical}/{attempt}"),
            row: RequestRow {
                ts: "2026-11-27T10:00:00Z".parse().unwrap(),
                provider: "sim".into(),
                request_model: "gpt-4o-mini".into(),
                response_model: Some("gpt-4o-mini".into()),
                project: None,
                api_key_ref: None,
                tenant_id: None,
                conversation_id: None,
                trace_id: None,
                span_id: None,
                logical_request_id: Some(logical.into()),
                attempt,
                status,
                streamed: true,
                usage_source: UsageSource::Provider,
                usage: Usage::from_inclusive(100, 0, 0, 10, 0),
                service_tier: Some("default".into()),
                batch: false,
                latency_ms: Some(120),
                ttft_ms: Some(20),
                prompt_name: Some("support-reply".into()),
                prompt_version: Some("abc".into()),
                finish_reason: Some("stop".into()),
                error: None,
                messages: vec![Message { role: "user".into(), content: "hi".into() }],
                output: Some("hello there".into()),
                stream: vec![
                    StreamCheckpoint { t_ms: 20, tokens: 1, text: Some("hello ".into()) },
                    StreamCheckpoint { t_ms: 25, tokens: 1, text: Some("there".into()) },
                ],
            },
        }
    }

    fn record(case: &str, sample: u32, outcome: Outcome, rows: Vec<KeyedRow>) -> Write {
        let final_row = rows.len().checked_sub(1);
        Write::Sample(Box::new(SampleRecord {
            case_id: case.into(),
            sample,
            outcome,
            output: Some("hello there".into()),
            checks: vec![Check {
                kind: "contains".into(),
                passed: true,
                detail: String::new(),
                rubric: None,
                judge: None,
            }],
            attempts: rows.len() as u32,
            rows,
            final_row,
            cost: Some(Usd::from_micros(3)),
            latency_ms: Some(120),
            ttft_ms: Some(20),
            completed_at: jiff::Timestamp::now(),
        }))
    }

    fn new_run(run_id: &str) -> NewEvalRun<'_> {
        NewEvalRun {
            run_id,
            suite: "support",
            suite_path: Some("evals/support.yaml"),
            suite_json: "{}",
            prompt_name: Some("support-reply"),
            prompt_version: Some("abc"),
            provider: "sim:gpt-4o-mini",
            base_url: Some("http://127.0.0.1:9/v1"),
            samples: 2,
            require: 1,
            concurrency: 4,
            max_cost: Some(Usd::from_micros(1_000_000)),
            samples_total: 4,
            regraded_from: None,
        }
    }

    #[test]
    fn samples_and_their_attempts_round_trip() {
        let mut store = Store::open_in_memory().unwrap();
        assert!(store.insert_eval_run(&new_run("r-1")).unwrap());
        assert!(!store.insert_eval_run(&new_run("r-1")).unwrap(), "a taken id is reported");
        let a0 = vec![row("r-1/a/0", 1, RequestStatus::Error), row("r-1/a/0", 2, RequestStatus::Ok)];
        store
            .write_eval_batch(
                "r-1",
                &[
                    record("a", 0, Outcome::Pass, a0),
                    Write::Interrupted(vec![row("r-1/a/1", 1, RequestStatus::Aborted)]),
                ],
            )
            .unwrap();
        let run = store.eval_run("r-1").unwrap().unwrap();
        assert_eq!((run.status.as_str(), run.samples_done, run.samples_total), ("running", 1, 4));
        assert_eq!(run.max_cost, Some(Usd::from_micros(1_000_000)));
        let facts = store.eval_request_facts("r-1").unwrap();
        assert_eq!(facts.len(), 3);
        let before = store.eval_attempts_before("r-1").unwrap();
        assert_eq!(before["r-1/a/0"], 2);
        assert_eq!(before["r-1/a/1"], 1);
        let details = store.eval_sample_details("r-1", Some("a")).unwrap();
        assert_eq!(details.len(), 1);
        assert_eq!(details[0].output_tokens, Some(10));
        assert!(details[0].request_id.is_some());
        let events: i64 =
            store.conn.query_row("SELECT sum(checkpoints) FROM request_stream", [], |r| r.get(0)).unwrap();
        assert_eq!(events, 6);
        // A long stream reads back whole and in order.
        let mut long = row("r-1/b/0", 1, RequestStatus::Ok);
        long.row.stream =
            (0..37).map(|i| StreamCheckpoint { t_ms: i, tokens: 1, text: Some(format!("w{i} ")) }).collect();
        store.write_eval_batch("r-1", &[record("b", 0, Outcome::Pass, vec![long.clone()])]).unwrap();
        let id: i64 =
            store.conn.query_row("SELECT id FROM request WHERE source_key = 'r-1/b/0/1'", [], |r| r.get(0)).unwrap();
        assert_eq!(super::super::streams::read(&store.conn, id).unwrap(), long.row.stream);
        // An error sample is replaced by a later verdict.
        store.write_eval_batch("r-1", &[record("a", 1, Outcome::Error, vec![])]).unwrap();
        assert_eq!(store.eval_run("r-1").unwrap().unwrap().sample_errors, 1);
        store
            .write_eval_batch("r-1", &[record("a", 1, Outcome::Fail, vec![row("r-1/a/1", 2, RequestStatus::Ok)])])
            .unwrap();
        let run = store.eval_run("r-1").unwrap().unwrap();
        assert_eq!((run.samples_done, run.sample_errors), (3, 0));
        store.finish_eval_run("r-1", "partial", Some("budget"), 1500).unwrap();
        store.reopen_eval_run("r-1", None, None).unwrap();
        store.finish_eval_run("r-1", "complete", None, 500).unwrap();
        let run = store.eval_run("r-1").unwrap().unwrap();
        assert_eq!((run.status.as_str(), run.wall_ms, run.max_cost), ("complete", 2000, None));
    }

    #[test]
    fn baselines_replace_each_other() {
        let mut store = Store::open_in_memory().unwrap();
        store.insert_eval_run(&new_run("r-1")).unwrap();
        store.insert_eval_run(&new_run("r-2")).unwrap();
        assert_eq!(store.set_eval_baseline("support", "r-1", None, None, "me").unwrap(), None);
        assert_eq!(store.set_eval_baseline("support", "r-2", None, None, "me").unwrap(), Some("r-1".into()));
        assert_eq!(store.eval_baseline("support").unwrap(), Some("r-2".into()));
        assert_eq!(store.eval_runs(None, 10).unwrap().len(), 2);
        assert_eq!(store.eval_run_ids_with_prefix("r-").unwrap().len(), 2);
    }
}
