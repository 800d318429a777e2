//! The N-of-K runner: a bounded-concurrency scheduler over (case × sample).
//!
//! `concurrency` workers take samples from the to-do list in order. A worker sends its finished sample to
//! the writer thread and waits until the writer has committed it before it takes the next one, so a
//! killed run loses at most the samples that were in flight. The writer commits whatever has queued up
//! in one transaction (samples that finish together share it). Before a sample starts, its estimated cost
//! is reserved against the budget; when the next sample would not fit, scheduling stops and the run stays
//! resumable. Cancellation (Ctrl-C) aborts the calls in flight, records their attempts without a verdict,
//! and stops.
//!
//! The runner knows nothing of SQL: it hands [`Write`]s to a [`Sink`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::oneshot;

use super::assert::{Assertion, Observation, judge_messages, parse_judge_reply};
use super::cost::{CallCost, CostSum, Prices, estimate_input_tokens};
use super::plan::{CaseDefinition, PromptInfo};
use super::sample::{Check, KeyedRow, Outcome, SampleRecord, Write, logical_id};
use crate::money::Usd;
use crate::provider::{Cancel, ChatRequest, Client, Completion, ProviderId};

/// Where finished samples go. Called on the writer thread; an `Err` stops the run.
pub trait Sink: Send + 'static {
    /// Writes the batch atomically: all of it lands, or none of it.
    fn write(&mut self, batch: &[Write]) -> Result<(), SinkFailed>;
}

/// The sink could not write; it keeps the reason for its owner to report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SinkFailed;

/// Told after every committed sample (to draw a progress bar).
pub trait Progress: Send + Sync {
    fn update(&self, tally: &Tally);
}

/// No progress reporting.
pub struct NoProgress;

impl Progress for NoProgress {
    fn update(&self, _: &Tally) {}
}

/// Counts so far, in this session of the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Samples committed in this session.
    pub done: u64,
    /// Samples this session set out to run.
    pub todo: u64,
    pub passed: u64,
    pub failed: u64,
    pub errors: u64,
    /// Priced cost of this session's calls.
    pub cost: Usd,
    /// Some call could not be priced (no price, or no usage reported).
    pub cost_incomplete: bool,
    /// Calls after the first of each logical request.
    pub retries: u64,
}

impl Tally {
    /// Passes among samples with a verdict; None before the first.
    pub fn pass_rate(&self) -> Option<f64> {
        let judged = self.passed + self.failed;
        (judged > 0).then(|| self.passed as f64 / judged as f64)
    }
}

/// Why scheduling stopped before the to-do list was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The next sample's estimate would have gone over `--max-cost`.
    Budget,
    /// Cancelled (Ctrl-C).
    Interrupted,
    /// Too many samples in a row ended in provider errors: the provider is down or refusing.
    ProviderErrors,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Budget => "budget",
            Stop::Interrupted => "interrupted",
            Stop::ProviderErrors => "provider_errors",
        }
    }
}

/// A budget for the run: `limit` in all, of which `spent_before` went to earlier sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: Usd,
    pub spent_before: Usd,
}

/// A case as the runner needs it.
#[derive(Debug, Clone)]
pub struct RunCase {
    pub def: CaseDefinition,
    pub assertions: Vec<Assertion>,
}

/// The clients a run calls and the prices it pays.
#[derive(Debug, Clone)]
pub struct Providers {
    pub main: Client,
    /// Judge clients by provider id (`llm-judge` assertions).
    pub judges: HashMap<String, Client>,
    pub prices: Prices,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub run_id: String,
    pub prompt: PromptInfo,
    pub concurrency: usize,
    /// (case index, sample) pairs, in the order to run them.
    pub todo: Vec<(usize, u32)>,
    /// Attempts already stored per logical request id (earlier interrupted calls): new attempts are
    /// numbered after them.
    pub attempts_before: HashMap<String, u32>,
    pub budget: Option<Budget>,
    /// Stop scheduling after this many samples in a row ended in provider errors.
    pub stop_after_errors: u32,
}

/// How a session of a run ended.
#[derive(Debug, Clone)]
pub struct RunResult {
    pub stop: Option<Stop>,
    pub tally: Tally,
    /// From the first request to the last commit.
    pub wall: Duration,
    /// The sink failed; the run stopped. The sink holds the reason.
    pub sink_failed: bool,
}

/// Output tokens assumed for a sample whose prompt sets no `max_tokens`, before any sample has answered.
const DEFAULT_OUTPUT_ESTIMATE: u64 = 1024;
/// Judge calls ask for at most this many tokens.
const JUDGE_MAX_TOKENS: u64 = 300;
/// Most samples one transaction commits.
const MAX_BATCH: usize = 512;

struct Shared {
    cases: Vec<RunCase>,
    config: RunConfig,
    providers: Providers,
    cancel: Cancel,
    progress: Arc<dyn Progress>,
    sched: Mutex<Sched>,
}

struct Sched {
    next: usize,
    reserved: Usd,
    spent: Usd,
    stop: Option<Stop>,
    consecutive_errors: u32,
    max_output_seen: Option<u64>,
    tally: Tally,
    sink_failed: bool,
}

type Job = (Write, oneshot::Sender<bool>);

/// Runs the to-do list and returns how it ended, with the sink (for the caller to finish the run with).
pub async fn run<S: Sink>(
    cases: Vec<RunCase>,
    config: RunConfig,
    providers: Providers,
    sink: S,
    progress: Arc<dyn Progress>,
    cancel: Cancel,
) -> (RunResult, S) {
    let started = Instant::now();
    let workers = config.concurrency.max(1).min(config.todo.len().max(1));
    let spent_before = config.budget.map_or(Usd::ZERO, |b| b.spent_before);
    let tally = Tally { todo: config.todo.len() as u64, ..Tally::default() };
    let shared = Arc::new(Shared {
        cases,
        config,
        providers,
        cancel,
        progress,
        sched: Mutex::new(Sched {
            next: 0,
            reserved: Usd::ZERO,
            spent: spent_before,
            stop: None,
            consecutive_errors: 0,
            max_output_seen: None,
            tally,
            sink_failed: false,
        }),
    });
    let (jobs, queue) = mpsc::channel::<Job>();
    let writer = std::thread::Builder::new()
        .name("eval-writer".into())
        .spawn(move || write_loop(sink, queue))
        .expect("spawning the writer thread");
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..workers {
        tasks.spawn(worker(shared.clone(), jobs.clone()));
    }
    drop(jobs);
    while let Some(joined) = tasks.join_next().await {
        if let Err(e) = joined
            && e.is_panic()
        {
            std::panic::resume_unwind(e.into_panic());
        }
    }
    let sink = tokio::task::spawn_blocking(move || writer.join())
        .await
        .expect("joining the writer")
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    let sched = lock(&shared.sched);
    let mut stop = sched.stop;
    if stop.is_none() && shared.cancel.is_cancelled() && sched.tally.done < sched.tally.todo {
        stop = Some(Stop::Interrupted);
    }
    let result =
        RunResult { stop, tally: sched.tally.clone(), wall: started.elapsed(), sink_failed: sched.sink_failed };
    (result, sink)
}

fn write_loop<S: Sink>(mut sink: S, queue: mpsc::Receiver<Job>) -> S {
    let mut batch = Vec::new();
    let mut acks = Vec::new();
    while let Ok((write, ack)) = queue.recv() {
        batch.push(write);
        acks.push(ack);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok((write, ack)) => {
                    batch.push(write);
                    acks.push(ack);
                }
                Err(_) => break,
            }
        }
        let ok = sink.write(&batch).is_ok();
        batch.clear();
        for ack in acks.drain(..) {
            let _ = ack.send(ok);
        }
    }
    sink
}

async fn worker(shared: Arc<Shared>, jobs: mpsc::Sender<Job>) {
    while let Some((index, estimate)) = take(&shared) {
        let (case_index, sample) = shared.config.todo[index];
        let write = run_sample(&shared, case_index, sample).await;
        let facts = Facts::of(&write, &shared.providers.prices);
        let (ack, acked) = oneshot::channel();
        let interrupted = matches!(write, Write::Interrupted(_));
        let committed = jobs.send((write, ack)).is_ok() && acked.await.unwrap_or(false);
        finish(&shared, estimate, committed, interrupted, &facts);
        if !committed || interrupted {
            break;
        }
    }
}

/// Takes the next sample to run, reserving its estimated cost; None when there is nothing (more) to do.
fn take(shared: &Shared) -> Option<(usize, Option<Usd>)> {
    let mut sched = lock(&shared.sched);
    if sched.stop.is_some() || sched.sink_failed {
        return None;
    }
    if shared.cancel.is_cancelled() {
        sched.stop = Some(Stop::Interrupted);
        return None;
    }
    let index = sched.next;
    let &(case_index, _) = shared.config.todo.get(index)?;
    let estimate = estimate(shared, &shared.cases[case_index], sched.max_output_seen);
    if let (Some(budget), Some(estimate)) = (shared.config.budget, estimate)
        && sched.spent + sched.reserved + estimate > budget.limit
    {
        sched.stop = Some(Stop::Budget);
        return None;
    }
    sched.next += 1;
    sched.reserved += estimate.unwrap_or(Usd::ZERO);
    Some((index, estimate))
}

/// The most a sample of `case` should cost: its input, the most output it may produce, and its judge
/// calls. None when a model has no price.
fn estimate(shared: &Shared, case: &RunCase, max_output_seen: Option<u64>) -> Option<Usd> {
    let prices = &shared.providers.prices;
    let request = &case.def.request;
    let input = estimate_input_tokens(&request.messages);
    let output = max_tokens(request).or(max_output_seen).unwrap_or(DEFAULT_OUTPUT_ESTIMATE);
    let mut total = prices.estimate(shared.providers.main.id(), input, output)?;
    for assertion in &case.assertions {
        if let Assertion::LlmJudge { provider, .. } = assertion {
            let client = judge_client(&shared.providers, provider.as_deref())?;
            total += prices.estimate(client.id(), input + output + 200, JUDGE_MAX_TOKENS)?;
        }
    }
    Some(total)
}

fn max_tokens(request: &ChatRequest) -> Option<u64> {
    ["max_completion_tokens", "max_tokens"].iter().find_map(|k| request.params.get(*k).and_then(|v| v.as_u64()))
}

fn judge_client<'a>(providers: &'a Providers, provider: Option<&str>) -> Option<&'a Client> {
    match provider {
        Some(id) => providers.judges.get(id),
        None => providers.judges.get(&providers.main.id().to_string()).or(Some(&providers.main)),
    }
}

/// What the scheduler learns from a finished sample.
struct Facts {
    outcome: Option<Outcome>,
    cost: CostSum,
    output_tokens: Option<u64>,
    retries: u64,
}

impl Facts {
    fn of(write: &Write, prices: &Prices) -> Facts {
        let rows: &[KeyedRow] = match write {
            Write::Sample(s) => &s.rows,
            Write::Interrupted(rows) => rows,
        };
        let mut cost = CostSum::default();
        for r in rows {
            cost.add(prices.call_cost(&r.row));
        }
        let retries = rows.iter().filter(|r| r.row.attempt > 1).count() as u64;
        match write {
            Write::Sample(s) => Facts {
                outcome: Some(s.outcome),
                cost,
                output_tokens: s
                    .final_row
                    .and_then(|i| s.rows.get(i))
                    .filter(|r| r.row.usage_source != crate::trace::model::UsageSource::Missing)
                    .map(|r| r.row.usage.output_total),
                retries,
            },
            Write::Interrupted(_) => Facts { outcome: None, cost, output_tokens: None, retries },
        }
    }
}

fn finish(shared: &Shared, estimate: Option<Usd>, committed: bool, interrupted: bool, facts: &Facts) {
    let mut sched = lock(&shared.sched);
    sched.reserved -= estimate.unwrap_or(Usd::ZERO);
    if !committed {
        sched.sink_failed = true;
        shared.cancel.cancel();
        return;
    }
    sched.spent += facts.cost.known;
    let tally = &mut sched.tally;
    tally.cost += facts.cost.known;
    tally.cost_incomplete |= facts.cost.usage_missing > 0 || facts.cost.unpriced > 0;
    tally.retries += facts.retries;
    if interrupted {
        sched.stop.get_or_insert(Stop::Interrupted);
        return;
    }
    if let Some(tokens) = facts.output_tokens {
        sched.max_output_seen = Some(sched.max_output_seen.map_or(tokens, |m| m.max(tokens)));
    }
    let tally = &mut sched.tally;
    tally.done += 1;
    match facts.outcome {
        Some(Outcome::Pass) => tally.passed += 1,
        Some(Outcome::Fail) => tally.failed += 1,
        Some(Outcome::Error) | None => tally.errors += 1,
    }
    if facts.outcome == Some(Outcome::Error) {
        sched.consecutive_errors += 1;
        if sched.consecutive_errors >= shared.config.stop_after_errors {
            sched.stop.get_or_insert(Stop::ProviderErrors);
        }
    } else {
        sched.consecutive_errors = 0;
    }
    shared.progress.update(&sched.tally);
}

/// Runs one sample: the main call, then its assertions (llm-judge ones call their judge).
async fn run_sample(shared: &Shared, case_index: usize, sample: u32) -> Write {
    let config = &shared.config;
    let case = &shared.cases[case_index];
    let request = &case.def.request;
    let logical = logical_id(&config.run_id, &case.def.id, sample);
    let mut completion = shared.providers.main.complete(request, &shared.cancel).await;
    let mut rows = keyed_rows(&mut completion, request, &logical, config);
    if completion.cancelled {
        return Write::Interrupted(rows);
    }
    let final_row = rows.len().checked_sub(1);
    let attempts = rows.last().map_or(0, |r| r.row.attempt);
    let mut main_cost = CostSum::default();
    for r in &rows {
        main_cost.add(shared.providers.prices.call_cost(&r.row));
    }
    let last = completion.last();
    let mut outcome = Outcome::Pass;
    let mut checks = Vec::new();
    let output = match completion.output() {
        Some(output) => output.to_string(),
        None => {
            let partial = last.map(|a| a.output.clone()).filter(|o| !o.is_empty());
            return sample_write(
                shared,
                case,
                sample,
                Outcome::Error,
                partial,
                checks,
                attempts,
                rows,
                final_row,
                &completion,
            );
        }
    };
    let observed_cost = if main_cost.usage_missing == 0 { main_cost.total() } else { None };
    let observation = Observation {
        output: &output,
        output_tokens: last.and_then(|a| a.usage).map(|u| u.output_total),
        latency_ms: last.map(|a| a.latency_ms),
        cost: observed_cost,
    };
    for (index, assertion) in case.assertions.iter().enumerate() {
        if let Some(result) = assertion.check(&observation) {
            if !result.passed {
                outcome = outcome.max_severity(Outcome::Fail);
            }
            checks.push(Check::from(result));
            continue;
        }
        let Assertion::LlmJudge { rubric, provider } = assertion else { continue };
        let Some(client) = judge_client(&shared.providers, provider.as_deref()) else {
            outcome = Outcome::Error;
            checks.push(judge_check(rubric, provider.as_deref(), false, "no client for the judge provider".into()));
            continue;
        };
        let judge_request = ChatRequest::new(judge_messages(rubric, &request.messages, &output))
            .param("temperature", 0)
            .param("max_tokens", JUDGE_MAX_TOKENS);
        let mut judged = client.complete(&judge_request, &shared.cancel).await;
        let judge_logical = format!("{logical}/judge-{index}");
        rows.extend(keyed_rows(&mut judged, &judge_request, &judge_logical, config));
        if judged.cancelled {
            return Write::Interrupted(rows);
        }
        let judge_id = client.id().to_string();
        match judged.output() {
            None => {
                let error = judged.error().map_or("the judge call failed".to_string(), ToString::to_string);
                outcome = Outcome::Error;
                checks.push(judge_check(rubric, Some(&judge_id), false, format!("judge call failed: {error}")));
            }
            Some(reply) => match parse_judge_reply(reply) {
                Ok(result) => {
                    if !result.passed {
                        outcome = outcome.max_severity(Outcome::Fail);
                    }
                    checks.push(judge_check(rubric, Some(&judge_id), result.passed, result.detail));
                }
                Err(message) => {
                    outcome = Outcome::Error;
                    checks.push(judge_check(rubric, Some(&judge_id), false, message));
                }
            },
        }
    }
    sample_write(shared, case, sample, outcome, Some(output), checks, attempts, rows, final_row, &completion)
}

impl Outcome {
    /// Error outranks fail, which outranks pass.
    fn max_severity(self, other: Outcome) -> Outcome {
        let rank = |o: Outcome| match o {
            Outcome::Pass => 0,
            Outcome::Fail => 1,
            Outcome::Error => 2,
        };
        if rank(other) > rank(self) { other } else { self }
    }
}

fn judge_check(rubric: &str, judge: Option<&str>, passed: bool, detail: String) -> Check {
    Check {
        kind: "llm-judge".into(),
        passed,
        detail,
        rubric: Some(rubric.to_string()),
        judge: judge.map(str::to_string),
    }
}

#[allow(clippy::too_many_arguments)]
fn sample_write(
    shared: &Shared,
    case: &RunCase,
    sample: u32,
    outcome: Outcome,
    output: Option<String>,
    checks: Vec<Check>,
    attempts: u32,
    rows: Vec<KeyedRow>,
    final_row: Option<usize>,
    completion: &Completion,
) -> Write {
    let mut cost = CostSum::default();
    for r in &rows {
        cost.add(shared.providers.prices.call_cost(&r.row));
    }
    let last = completion.last();
    Write::Sample(Box::new(SampleRecord {
        case_id: case.def.id.clone(),
        sample,
        outcome,
        output,
        checks,
        attempts,
        rows,
        final_row,
        cost: cost.total(),
        latency_ms: last.map(|a| a.latency_ms),
        ttft_ms: last.and_then(|a| a.ttft_ms),
        completed_at: Timestamp::now(),
    }))
}

/// The attempts of a call as request rows keyed `<logical>/<attempt>`, numbered after any attempts of
/// the same logical request stored by an earlier session.
/// The checkpoints move into the rows rather than being copied (a streamed reply has dozens).
fn keyed_rows(completion: &mut Completion, request: &ChatRequest, logical: &str, config: &RunConfig) -> Vec<KeyedRow> {
    let before = config.attempts_before.get(logical).copied().unwrap_or(0);
    let provider = completion.provider.clone();
    completion
        .attempts
        .iter_mut()
        .map(|attempt| {
            let stream = std::mem::take(&mut attempt.stream);
            let mut row = attempt.request_row(&provider, request, logical);
            row.stream = stream;
            row.attempt += before;
            row.prompt_name = Some(config.prompt.name.clone());
            row.prompt_version = Some(config.prompt.version.clone());
            KeyedRow { key: format!("{logical}/{}", row.attempt), row }
        })
        .collect()
}

/// How a finished call's cost counts, re-exported for reports.
pub fn call_cost(prices: &Prices, row: &crate::trace::model::RequestRow) -> CallCost {
    prices.call_cost(row)
}

/// The provider id a judge assertion calls: its own, or the run's.
pub fn judge_provider_id(provider: Option<&str>, main: &ProviderId) -> String {
    provider.map_or_else(|| main.to_string(), str::to_string)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
