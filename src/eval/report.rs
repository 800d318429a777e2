//! The report of a run (`promptctl.eval-run/v1`), built from what is stored: the samples' verdicts and
//! the request rows of every call. `eval run`, `eval resume` and `eval show` all build it this way, so
//! they print the same document, and every figure in it can be recomputed from the rows.

use std::collections::HashMap;

use jiff::Timestamp;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::cost::{CallFacts, CostSum, Prices};
use super::plan::PromptInfo;
use super::sample::{Outcome, parse_logical_id};
use super::stats::{CaseStatus, Interval, NOfK, pass_at_k, pass_hat_k, wilson_interval};
use crate::money::Usd;
use crate::stats::percentile::Percentiles;
use crate::trace::model::{RequestStatus, Usage};

pub const SCHEMA: &str = "promptctl.eval-run/v1";

/// The run as stored.
#[derive(Debug, Clone)]
pub struct RunFacts {
    pub run_id: String,
    pub suite: String,
    pub prompt: Option<PromptInfo>,
    pub provider: String,
    pub samples: u32,
    pub require: u32,
    /// `running`, `complete` or `partial`.
    pub status: String,
    pub stop_reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub wall_ms: u64,
    /// The run whose request rows this run's samples are (a regrade's source), else this run.
    pub trace_run_id: String,
    pub regraded_from: Option<String>,
}

/// A case of the run, in suite order.
#[derive(Debug, Clone)]
pub struct CaseInfo {
    pub id: String,
    pub tags: Vec<String>,
}

/// One stored sample.
#[derive(Debug, Clone)]
pub struct SampleFacts {
    pub case_id: String,
    pub sample: u32,
    pub outcome: Outcome,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
}

/// One stored request row, reduced to what the report counts.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub logical_request_id: String,
    pub provider: String,
    pub request_model: String,
    pub attempt: u32,
    pub status: RequestStatus,
    /// None when the provider reported no usage.
    pub usage: Option<Usage>,
    pub has_output: bool,
    pub service_tier: Option<String>,
    pub batch: bool,
    pub ts: Timestamp,
    pub latency_ms: Option<u64>,
}

/// `promptctl.eval-run/v1`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EvalReport {
    pub schema: &'static str,
    pub run_id: String,
    pub suite: String,
    pub samples: u32,
    pub require: u32,
    pub prompt: Option<PromptInfo>,
    pub provider: String,
    pub status: String,
    pub stop_reason: Option<String>,
    pub started_at: String,
    pub finished_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regraded_from: Option<String>,
    pub cases: Vec<CaseReport>,
    pub summary: Summary,
    pub gate: Gate,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseReport {
    pub id: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    pub passed: u32,
    pub failed: u32,
    pub errors: u32,
    /// Samples with an outcome (passed + failed + errors).
    pub samples: u32,
    /// Samples not run yet (a killed, interrupted or budget-stopped run).
    pub missing: u32,
    pub status: CaseStatus,
    /// Each sample's outcome by sample index; null = not run.
    pub outcomes: Vec<Option<Outcome>>,
    /// k = 1..K over the samples with a verdict (errors excluded); null when fewer than k have one.
    pub pass_at_k: KMap,
    pub pass_hat_k: KMap,
    /// Wilson 95 % interval of the pass rate over the samples with a verdict.
    pub wilson: Option<Interval>,
    pub retries: u64,
    pub requests: u64,
    /// Every call of the case, failed attempts and judge calls included. Null when a model has no price.
    pub cost_usd: Option<f64>,
    /// The exact figure behind `cost_usd`.
    #[serde(skip)]
    pub cost: Option<Usd>,
    /// Calls that produced output but reported no usage (so their cost is not in `cost_usd`).
    pub usage_missing: u64,
    pub tokens: Tokens,
    pub latency_ms: Spread,
    pub ttft_ms: Spread,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub reasoning: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub p50: Option<f64>,
    pub p95: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub cases: u32,
    pub pass: u32,
    pub pass_flaky: u32,
    pub fail_flaky: u32,
    pub fail: u32,
    pub error: u32,
    pub samples_total: u64,
    /// Samples with a verdict or an error.
    pub samples_done: u64,
    pub sample_errors: u64,
    pub sample_pass_rate: Option<f64>,
    pub wilson: Option<Interval>,
    pub requests: u64,
    pub retries: u64,
    pub cost_usd: Option<f64>,
    pub usage_missing: u64,
    pub wall_ms: u64,
    /// From the first request's start to the last one's end.
    pub request_span_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gate {
    pub passed: bool,
    pub reason: Option<String>,
}

/// `{"1": 0.8, "2": …, "K": …}` in k order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct KMap(pub Vec<(u32, Option<f64>)>);

impl KMap {
    pub fn get(&self, k: u32) -> Option<f64> {
        self.0.iter().find(|(key, _)| *key == k).and_then(|(_, v)| *v)
    }
}

impl Serialize for KMap {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(&k.to_string(), v)?;
        }
        map.end()
    }
}

/// Builds the report. `cases` gives the order; samples and requests of unknown cases are ignored.
pub fn build(
    run: &RunFacts,
    cases: &[CaseInfo],
    samples: &[SampleFacts],
    requests: &[RequestFacts],
    prices: &Prices,
) -> EvalReport {
    let n_of_k = NOfK::new(run.require, run.samples).ok();
    let index: HashMap<&str, usize> = cases.iter().enumerate().map(|(i, c)| (c.id.as_str(), i)).collect();
    let mut per_case: Vec<CaseAcc> = cases.iter().map(|_| CaseAcc::new(run.samples)).collect();
    for s in samples {
        if let Some(&i) = index.get(s.case_id.as_str())
            && let Some(slot) = per_case[i].outcomes.get_mut(s.sample as usize)
        {
            *slot = Some(s.outcome);
            if s.outcome != Outcome::Error {
                per_case[i].latency.extend(s.latency_ms);
                per_case[i].ttft.extend(s.ttft_ms);
            }
        }
    }
    let mut calls_per_logical: HashMap<&str, u64> = HashMap::new();
    let mut span: Option<(i64, i64)> = None;
    for r in requests {
        let Some((case_id, _, _)) = parse_logical_id(&run.trace_run_id, &r.logical_request_id) else { continue };
        let Some(&i) = index.get(case_id) else { continue };
        let acc = &mut per_case[i];
        acc.requests += 1;
        *calls_per_logical.entry(&r.logical_request_id).or_default() += 1;
        if let Some(u) = r.usage {
            acc.tokens.input += u.input_total;
            acc.tokens.output += u.output_total;
            acc.tokens.cached += u.cache_read;
            acc.tokens.reasoning += u.reasoning;
        }
        acc.cost.add(prices.cost_of(CallFacts {
            provider: &r.provider,
            model: &r.request_model,
            ts: r.ts,
            status: r.status,
            usage: r.usage,
            has_output: r.has_output,
            service_tier: r.service_tier.as_deref(),
            batch: r.batch,
        }));
        let start = r.ts.as_millisecond();
        let end = start + r.latency_ms.unwrap_or(0) as i64;
        span = Some(span.map_or((start, end), |(a, b)| (a.min(start), b.max(end))));
    }
    for (logical, calls) in &calls_per_logical {
        if let Some((case_id, _, _)) = parse_logical_id(&run.trace_run_id, logical)
            && let Some(&i) = index.get(case_id)
        {
            per_case[i].retries += calls - 1;
        }
    }
    let case_reports: Vec<CaseReport> =
        cases.iter().zip(per_case).map(|(info, acc)| acc.report(info, run.samples, n_of_k)).collect();
    let summary = summarize(run, &case_reports, span);
    let gate = gate(run, &case_reports, &summary);
    EvalReport {
        schema: SCHEMA,
        run_id: run.run_id.clone(),
        suite: run.suite.clone(),
        samples: run.samples,
        require: run.require,
        prompt: run.prompt.clone(),
        provider: run.provider.clone(),
        status: run.status.clone(),
        stop_reason: run.stop_reason.clone(),
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
        regraded_from: run.regraded_from.clone(),
        cases: case_reports,
        summary,
        gate,
    }
}

struct CaseAcc {
    outcomes: Vec<Option<Outcome>>,
    latency: Vec<u64>,
    ttft: Vec<u64>,
    requests: u64,
    retries: u64,
    tokens: Tokens,
    cost: CostSum,
}

impl CaseAcc {
    fn new(samples: u32) -> Self {
        CaseAcc {
            outcomes: vec![None; samples as usize],
            latency: Vec::new(),
            ttft: Vec::new(),
            requests: 0,
            retries: 0,
            tokens: Tokens::default(),
            cost: CostSum::default(),
        }
    }

    fn report(self, info: &CaseInfo, k: u32, n_of_k: Option<NOfK>) -> CaseReport {
        let count = |o: Outcome| self.outcomes.iter().filter(|x| **x == Some(o)).count() as u32;
        let (passed, failed, errors) = (count(Outcome::Pass), count(Outcome::Fail), count(Outcome::Error));
        let done = passed + failed + errors;
        let missing = k - done;
        let status = n_of_k.and_then(|n| n.classify(passed, errors + missing).ok()).unwrap_or(if passed == k {
            CaseStatus::Pass
        } else {
            CaseStatus::Fail
        });
        let judged = u64::from(passed + failed);
        let per_k = |f: fn(u64, u64, u64) -> Result<f64, crate::stats::StatsError>| {
            KMap(
                (1..=k)
                    .map(|kk| {
                        let v = (u64::from(kk) <= judged)
                            .then(|| f(judged, u64::from(passed), u64::from(kk)).ok())
                            .flatten();
                        (kk, v.map(round6))
                    })
                    .collect(),
            )
        };
        CaseReport {
            id: info.id.clone(),
            tags: info.tags.clone(),
            passed,
            failed,
            errors,
            samples: done,
            missing,
            status,
            pass_at_k: per_k(pass_at_k),
            pass_hat_k: per_k(pass_hat_k),
            wilson: wilson(u64::from(passed), judged),
            retries: self.retries,
            requests: self.requests,
            cost_usd: self.cost.total().map(|c| c.round_to(8)),
            cost: self.cost.total(),
            usage_missing: u64::from(self.cost.usage_missing),
            tokens: self.tokens,
            latency_ms: spread(&self.latency),
            ttft_ms: spread(&self.ttft),
            outcomes: self.outcomes,
        }
    }
}

fn summarize(run: &RunFacts, cases: &[CaseReport], span: Option<(i64, i64)>) -> Summary {
    let count = |s: CaseStatus| cases.iter().filter(|c| c.status == s).count() as u32;
    let passed: u64 = cases.iter().map(|c| u64::from(c.passed)).sum();
    let judged: u64 = cases.iter().map(|c| u64::from(c.passed + c.failed)).sum();
    let cost = cases.iter().try_fold(Usd::ZERO, |sum, c| c.cost.map(|v| sum + v));
    Summary {
        cases: cases.len() as u32,
        pass: count(CaseStatus::Pass),
        pass_flaky: count(CaseStatus::PassFlaky),
        fail_flaky: count(CaseStatus::FailFlaky),
        fail: count(CaseStatus::Fail),
        error: count(CaseStatus::Error),
        samples_total: cases.len() as u64 * u64::from(run.samples),
        samples_done: cases.iter().map(|c| u64::from(c.samples)).sum(),
        sample_errors: cases.iter().map(|c| u64::from(c.errors)).sum(),
        sample_pass_rate: (judged > 0).then(|| round6(passed as f64 / judged as f64)),
        wilson: wilson(passed, judged),
        requests: cases.iter().map(|c| c.requests).sum(),
        retries: cases.iter().map(|c| c.retries).sum(),
        cost_usd: cost.map(|c| c.round_to(8)),
        usage_missing: cases.iter().map(|c| c.usage_missing).sum(),
        wall_ms: run.wall_ms,
        request_span_ms: span.map(|(a, b)| (b - a).max(0) as u64),
    }
}

fn gate(run: &RunFacts, cases: &[CaseReport], summary: &Summary) -> Gate {
    let mut reasons = Vec::new();
    let below = cases.iter().filter(|c| matches!(c.status, CaseStatus::Fail | CaseStatus::FailFlaky)).count();
    if below > 0 {
        reasons.push(format!("{below} {} below {}-of-{}", plural(below, "case", "cases"), run.require, run.samples));
    }
    let undecided = cases.iter().filter(|c| c.status == CaseStatus::Error).count();
    if undecided > 0 {
        reasons.push(format!(
            "{undecided} {} undecided ({})",
            plural(undecided, "case", "cases"),
            if summary.sample_errors > 0 { "provider errors" } else { "samples missing" }
        ));
    }
    let missing = summary.samples_total - summary.samples_done;
    if missing > 0 {
        let why = match run.stop_reason.as_deref() {
            Some("budget") => "stopped by --max-cost".to_string(),
            Some("interrupted") => "interrupted".to_string(),
            Some("provider_errors") => "stopped after repeated provider errors".to_string(),
            _ if run.status == "running" => "still running or killed".to_string(),
            _ => "incomplete".to_string(),
        };
        reasons.push(format!("{why}: {missing} of {} samples not run", summary.samples_total));
    }
    let passed = below == 0 && undecided == 0 && missing == 0;
    Gate { passed, reason: (!reasons.is_empty()).then(|| reasons.join("; ")) }
}

fn plural<'a>(n: usize, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

fn wilson(successes: u64, trials: u64) -> Option<Interval> {
    let i = wilson_interval(successes, trials, 0.05).ok()?;
    Some(Interval { lower: round6(i.lower), upper: round6(i.upper) })
}

fn spread(values: &[u64]) -> Spread {
    let p = Percentiles::from_integers(values.iter().copied());
    let at = |q: f64| p.percentile(q).map(|v| (v * 10.0).round() / 10.0);
    Spread { p50: at(50.0), p95: at(95.0) }
}

/// Rounds away float noise (0.7999999999 → 0.8) while keeping six decimals.
pub fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

impl EvalReport {
    /// Cases that did not meet N-of-K, worst first: fail, fail-flaky, error.
    pub fn failing_cases(&self) -> impl Iterator<Item = &CaseReport> {
        let rank = |s: CaseStatus| match s {
            CaseStatus::Fail => 0,
            CaseStatus::FailFlaky => 1,
            CaseStatus::Error => 2,
            _ => 3,
        };
        let mut failing: Vec<&CaseReport> = self.cases.iter().filter(|c| !c.status.meets_requirement()).collect();
        failing.sort_by_key(|c| rank(c.status));
        failing.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pricing::PriceBook;

    fn run() -> RunFacts {
        RunFacts {
            run_id: "r-1".into(),
            suite: "support".into(),
            prompt: None,
            provider: "sim:gpt-4o-mini".into(),
            samples: 5,
            require: 4,
            status: "complete".into(),
            stop_reason: None,
            started_at: "2026-11-27T10:00:00Z".into(),
            finished_at: Some("2026-11-27T10:00:02Z".into()),
            wall_ms: 2000,
            trace_run_id: "r-1".into(),
            regraded_from: None,
        }
    }

    fn sample(case: &str, sample: u32, outcome: Outcome) -> SampleFacts {
        SampleFacts { case_id: case.into(), sample, outcome, latency_ms: Some(100 + u64::from(sample)), ttft_ms: None }
    }

    fn request(logical: &str, attempt: u32, usage: Option<Usage>) -> RequestFacts {
        RequestFacts {
            logical_request_id: logical.into(),
            provider: "sim".into(),
            request_model: "gpt-4o-mini".into(),
            attempt,
            status: if usage.is_some() { RequestStatus::Ok } else { RequestStatus::Error },
            usage,
            has_output: usage.is_some(),
            service_tier: Some("default".into()),
            batch: false,
            ts: "2026-11-27T10:00:00Z".parse().unwrap(),
            latency_ms: Some(100),
        }
    }

    fn prices() -> Prices {
        Prices::new(std::borrow::Cow::Borrowed(PriceBook::embedded()))
    }

    #[test]
    fn statuses_statistics_and_gate() {
        let cases: Vec<CaseInfo> =
            ["a", "b", "c", "d"].iter().map(|id| CaseInfo { id: id.to_string(), tags: vec![] }).collect();
        let mut samples = Vec::new();
        let pattern = |case: &str, outcomes: &[Outcome]| -> Vec<SampleFacts> {
            outcomes.iter().enumerate().map(|(i, o)| sample(case, i as u32, *o)).collect()
        };
        use Outcome::*;
        samples.extend(pattern("a", &[Pass, Pass, Pass, Pass, Pass]));
        samples.extend(pattern("b", &[Pass, Fail, Pass, Pass, Pass]));
        samples.extend(pattern("c", &[Fail, Fail, Fail, Fail, Fail]));
        samples.extend(pattern("d", &[Pass, Pass, Pass, Error, Error]));
        let usage = Usage::from_inclusive(1000, 0, 0, 100, 0);
        let requests =
            vec![request("r-1/a/0", 1, None), request("r-1/a/0", 2, Some(usage)), request("r-1/b/1", 1, Some(usage))];
        let report = build(&run(), &cases, &samples, &requests, &prices());
        let status: Vec<CaseStatus> = report.cases.iter().map(|c| c.status).collect();
        assert_eq!(status, [CaseStatus::Pass, CaseStatus::PassFlaky, CaseStatus::Fail, CaseStatus::Error]);
        let b = &report.cases[1];
        assert_eq!(b.pass_at_k.get(1), Some(0.8));
        assert_eq!(b.pass_at_k.get(5), Some(1.0));
        assert_eq!(b.pass_hat_k.get(5), Some(0.0));
        let w = b.wilson.unwrap();
        assert!((w.lower - 0.3755).abs() < 1e-3 && (w.upper - 0.9638).abs() < 1e-3, "{w:?}");
        let d = &report.cases[3];
        assert_eq!(d.pass_at_k.get(3), Some(1.0));
        assert_eq!(d.pass_at_k.get(4), None, "only 3 samples have a verdict");
        assert_eq!(report.cases[0].retries, 1);
        assert_eq!(report.cases[0].requests, 2);
        assert_eq!(report.summary.requests, 3);
        assert_eq!(report.summary.retries, 1);
        assert_eq!(report.summary.sample_errors, 2);
        assert_eq!(
            (report.summary.pass, report.summary.pass_flaky, report.summary.fail, report.summary.error),
            (1, 1, 1, 1)
        );
        assert!(!report.gate.passed);
        assert_eq!(report.gate.reason.as_deref(), Some("1 case below 4-of-5; 1 case undecided (provider errors)"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["cases"][1]["pass_at_k"]["1"], 0.8);
        assert!(json["cases"][0]["cost_usd"].as_f64().unwrap() > 0.0);
    }

    #[test]
    fn missing_samples_leave_a_case_undecided_and_fail_the_gate() {
        let cases = vec![CaseInfo { id: "a".into(), tags: vec![] }];
        let samples = vec![sample("a", 0, Outcome::Pass), sample("a", 1, Outcome::Pass)];
        let mut facts = run();
        facts.status = "partial".into();
        facts.stop_reason = Some("budget".into());
        let report = build(&facts, &cases, &samples, &[], &prices());
        assert_eq!(report.cases[0].missing, 3);
        assert_eq!(report.cases[0].status, CaseStatus::Error);
        assert_eq!(
            report.gate.reason.as_deref(),
            Some("1 case undecided (samples missing); stopped by --max-cost: 3 of 5 samples not run")
        );
    }
}
