//! A run's report for other tools: a Markdown summary (pull requests, `$GITHUB_STEP_SUMMARY`) and JUnit
//! XML (CI test tabs), one test case per eval case with flaky cases marked.

use std::fmt::Write as _;
use std::time::Duration;

use quick_junit::{FlakyOrRerun, NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestRerun, TestSuite};

use super::report::{CaseReport, EvalReport};
use super::sample::{Check, Outcome};
use super::stats::CaseStatus;

/// One sample with its output and checks, for JUnit and `eval show --case`.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleDetail {
    pub case_id: String,
    pub sample: u32,
    pub outcome: Outcome,
    pub output: Option<String>,
    pub checks: Vec<Check>,
    /// The final attempt's error, for samples that ended in one.
    pub error: Option<String>,
    pub attempts: u32,
    pub latency_ms: Option<u64>,
}

impl SampleDetail {
    /// What failed, in one line: the failed assertions, or the provider error.
    pub fn failure(&self) -> String {
        match self.outcome {
            Outcome::Pass => String::new(),
            Outcome::Error => {
                let judge = self.checks.iter().find(|c| !c.passed).map(|c| format!("{}: {}", c.kind, c.detail));
                judge.or_else(|| self.error.clone()).unwrap_or_else(|| "provider error".into())
            }
            Outcome::Fail => self
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| if c.detail.is_empty() { c.kind.clone() } else { format!("{}: {}", c.kind, c.detail) })
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// One character per sample: ✓ pass, ✗ fail, ! error, · not run.
pub fn outcome_strip(case: &CaseReport) -> String {
    case.outcomes
        .iter()
        .map(|o| match o {
            Some(Outcome::Pass) => '✓',
            Some(Outcome::Fail) => '✗',
            Some(Outcome::Error) => '!',
            None => '·',
        })
        .collect()
}

/// How a status reads to a person: flaky and deterministic outcomes look different.
pub fn status_label(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Pass => "pass",
        CaseStatus::PassFlaky => "pass-flaky",
        CaseStatus::Error => "error",
        CaseStatus::FailFlaky => "fail-flaky",
        CaseStatus::Fail => "fail (deterministic)",
    }
}

pub fn format_usd(usd: Option<f64>) -> String {
    match usd {
        None => "unknown".into(),
        Some(0.0) => "$0".into(),
        Some(v) if v < 0.01 => format!("${v:.6}"),
        Some(v) => format!("${v:.4}"),
    }
}

pub fn format_ms(ms: u64) -> String {
    if ms < 1000 { format!("{ms} ms") } else { format!("{:.2} s", ms as f64 / 1000.0) }
}

fn percent(x: f64) -> String {
    format!("{:.0}%", x * 100.0)
}

/// The Markdown summary of a run.
pub fn markdown(report: &EvalReport) -> String {
    let mut md = String::new();
    let s = &report.summary;
    let verdict = if report.gate.passed { "✅ passed" } else { "❌ failed" };
    let _ = writeln!(md, "### promptctl eval `{}`: {verdict}", report.suite);
    let _ = writeln!(md);
    if let Some(reason) = &report.gate.reason {
        let _ = writeln!(md, "**{}**", escape(reason));
        let _ = writeln!(md);
    }
    let prompt = report.prompt.as_ref().map_or("-".to_string(), |p| format!("`{}@{}`", p.name, p.version));
    let _ = writeln!(
        md,
        "Run `{}` · prompt {prompt} · `{}` · {} of {} samples must pass per case",
        report.run_id, report.provider, report.require, report.samples
    );
    let _ = writeln!(md);
    let _ = writeln!(md, "| case | status | samples | passed | pass@1 | 95% CI | retries | cost |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
    let mut cases: Vec<&CaseReport> = report.failing_cases().collect();
    cases.extend(report.cases.iter().filter(|c| c.status.meets_requirement()));
    for c in cases {
        let icon = match c.status {
            CaseStatus::Pass => "✅",
            CaseStatus::PassFlaky => "⚠️",
            CaseStatus::Error => "❗",
            CaseStatus::FailFlaky => "🟠",
            CaseStatus::Fail => "❌",
        };
        let _ = writeln!(
            md,
            "| {} | {icon} {} | `{}` | {}/{} | {} | {} | {} | {} |",
            escape(&c.id),
            status_label(c.status),
            outcome_strip(c),
            c.passed,
            report.samples,
            c.pass_at_k.get(1).map_or("-".into(), |v| format!("{v:.2}")),
            c.wilson.map_or("-".into(), |w| format!("{}–{}", percent(w.lower), percent(w.upper))),
            c.retries,
            format_usd(c.cost_usd),
        );
    }
    let _ = writeln!(md);
    let rate = s.sample_pass_rate.map_or("-".into(), percent);
    let interval = s.wilson.map_or(String::new(), |w| format!(" (95% CI {}–{})", percent(w.lower), percent(w.upper)));
    let _ = writeln!(
        md,
        "**{} cases**: {} pass · {} pass-flaky · {} fail-flaky · {} fail · {} error — sample pass rate {rate}{interval}, \
         {} requests, {} retries, {}{}, {}",
        s.cases,
        s.pass,
        s.pass_flaky,
        s.fail_flaky,
        s.fail,
        s.error,
        s.requests,
        s.retries,
        format_usd(s.cost_usd),
        if s.usage_missing > 0 { format!(" (+{} calls without usage)", s.usage_missing) } else { String::new() },
        format_ms(s.wall_ms),
    );
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "<sub>✓ pass · ✗ fail · ! provider error · · not run. `fail` (0 of {k}) is deterministic: rerunning will not \
         help. `fail-flaky` and `pass-flaky` cases pass sometimes: see `promptctl eval show {} --case ID`.</sub>",
        report.run_id,
        k = report.samples
    );
    md
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// JUnit XML: one test suite for the run, one test case per eval case. Pass-flaky cases succeed with
/// their failing samples as `flakyFailure`s; failing cases carry their failing samples as reruns.
/// Every sample is a property (`sample.N`) and its output is in `system-out`.
pub fn junit(report: &EvalReport, details: &[SampleDetail]) -> Result<String, String> {
    let mut suite = TestSuite::new(format!("promptctl eval {}", report.suite));
    suite.set_time(Duration::from_millis(report.summary.wall_ms));
    suite.add_property(Property::new("run_id", report.run_id.as_str()));
    suite.add_property(Property::new("provider", report.provider.as_str()));
    suite.add_property(Property::new("n_of_k", format!("{}-of-{}", report.require, report.samples)));
    if let Some(p) = &report.prompt {
        suite.add_property(Property::new("prompt", format!("{}@{}", p.name, p.version)));
    }
    for case in &report.cases {
        let samples: Vec<&SampleDetail> = details.iter().filter(|d| d.case_id == case.id).collect();
        suite.add_test_case(test_case(report, case, &samples));
    }
    let mut junit = Report::new(format!("promptctl eval {}", report.suite));
    junit.add_test_suite(suite);
    junit.to_string().map_err(|e| e.to_string())
}

fn test_case(report: &EvalReport, case: &CaseReport, samples: &[&SampleDetail]) -> TestCase {
    let summary = format!(
        "{} of {} samples passed ({} required){}",
        case.passed,
        report.samples,
        report.require,
        if case.errors > 0 { format!(", {} provider errors", case.errors) } else { String::new() }
    );
    let failing = samples.iter().filter(|s| s.outcome != Outcome::Pass);
    let reruns = |kind_of: fn(Outcome) -> NonSuccessKind| -> Vec<TestRerun> {
        failing
            .clone()
            .map(|s| {
                let mut rerun = TestRerun::new(kind_of(s.outcome));
                rerun.set_message(format!("sample {}: {}", s.sample, s.failure()));
                rerun.set_type(s.outcome.as_str());
                if let Some(output) = &s.output {
                    rerun.set_system_out(output.as_str());
                }
                rerun
            })
            .collect()
    };
    let kind_of = |o: Outcome| if o == Outcome::Error { NonSuccessKind::Error } else { NonSuccessKind::Failure };
    let status = match case.status {
        CaseStatus::Pass => TestCaseStatus::success(),
        CaseStatus::PassFlaky => TestCaseStatus::Success { flaky_runs: reruns(kind_of) },
        CaseStatus::FailFlaky | CaseStatus::Fail | CaseStatus::Error => {
            let kind = if case.status == CaseStatus::Error { NonSuccessKind::Error } else { NonSuccessKind::Failure };
            let mut status = TestCaseStatus::non_success(kind);
            let what = match case.status {
                CaseStatus::Fail => "deterministic failure: no sample passed, rerunning will not help",
                CaseStatus::FailFlaky => "flaky failure: some samples pass, too few",
                _ => "undecided: provider errors or missing samples",
            };
            status.set_message(format!("{}: {summary}", what));
            status.set_type(case.status.as_str());
            status.add_reruns(reruns(kind_of));
            if case.status == CaseStatus::FailFlaky {
                status.set_rerun_kind(FlakyOrRerun::Flaky);
            }
            status
        }
    };
    let mut test = TestCase::new(case.id.as_str(), status);
    test.set_classname(report.suite.as_str());
    test.set_assertions(samples.iter().map(|s| s.checks.len()).sum());
    test.add_property(Property::new("status", case.status.as_str()));
    test.add_property(Property::new(
        "flaky",
        matches!(case.status, CaseStatus::PassFlaky | CaseStatus::FailFlaky).to_string(),
    ));
    test.add_property(Property::new("passed", case.passed.to_string()));
    test.add_property(Property::new("failed", case.failed.to_string()));
    test.add_property(Property::new("errors", case.errors.to_string()));
    if let Some(p) = case.pass_at_k.get(1) {
        test.add_property(Property::new("pass_at_1", p.to_string()));
    }
    if let Some(w) = case.wilson {
        test.add_property(Property::new("wilson_95", format!("{}–{}", w.lower, w.upper)));
    }
    let mut out = String::new();
    for s in samples {
        let verdict = match s.outcome {
            Outcome::Pass => "pass".to_string(),
            _ => format!("{}: {}", s.outcome, s.failure()),
        };
        test.add_property(Property::new(format!("sample.{}", s.sample), verdict.as_str()));
        let _ = writeln!(out, "--- sample {} ({verdict})", s.sample);
        let _ = writeln!(out, "{}", s.output.as_deref().unwrap_or("(no output)"));
    }
    test.set_system_out(out);
    test
}
