//! `promptctl eval show RUN_ID [--case ID]`: a run's report, or the K outputs of one case side by side.

use clap::Args;
use comfy_table::{Cell, ContentArrangement};
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult};
use super::super::output::{Style, table, table_text};
use super::render::{header, status_style};
use super::{ReportFiles, build_report, exit_code, find_run, prices, publish};
use crate::eval::export::{format_ms, format_usd, outcome_strip, status_label};
use crate::eval::report::CaseReport;
use crate::eval::sample::{Check, Outcome};
use crate::store::OpenMode;

/// Show a run's report, or one case's samples side by side
#[derive(Debug, Args)]
#[command(after_help = "\
RUN_ID is a run id, a unique prefix of one, or `latest`. Without --case: the same report `eval run`
printed (with --format json, the same promptctl.eval-run/v1 document). With --case: the case's K
outputs, identical outputs grouped, each group with its verdict and the assertions that failed it.

The exit code is the run's: 0 every case met N-of-K, 1 one did not, 3 samples ended in provider errors.

Examples:
  promptctl eval show latest
  promptctl eval show r-20261127-101500-3fa2 --case refund-request
  promptctl eval show latest --format json | jq .summary")]
pub struct ShowArgs {
    /// Run id, unique prefix, or `latest`
    #[arg(value_name = "RUN_ID")]
    pub run: String,

    /// Show this case's samples
    #[arg(long, value_name = "ID")]
    pub case: Option<String>,

    #[command(flatten)]
    pub files: ReportFiles,
}

/// `promptctl.eval-case/v1`.
#[derive(Serialize)]
struct CaseDocument<'a> {
    schema: &'static str,
    run_id: &'a str,
    suite: &'a str,
    samples: u32,
    require: u32,
    case: &'a CaseReport,
    /// Distinct outputs, most frequent first.
    groups: Vec<Group>,
    runs: Vec<SampleView>,
}

#[derive(Serialize)]
struct Group {
    samples: Vec<u32>,
    outcome: Outcome,
    output: Option<String>,
    /// Assertions that failed (the same for every sample of the group unless latency or cost differ).
    failed: Vec<Check>,
}

#[derive(Serialize)]
struct SampleView {
    sample: u32,
    outcome: Outcome,
    attempts: u32,
    latency_ms: Option<u64>,
    ttft_ms: Option<u64>,
    output_tokens: Option<u64>,
    cost_usd: Option<f64>,
    output: Option<String>,
    checks: Vec<Check>,
    error: Option<String>,
}

pub fn run(ctx: &mut Context, args: ShowArgs) -> CmdResult {
    let store = ctx.open_store(OpenMode::MustExist)?;
    let run = find_run(&store, &args.run)?;
    let prices = prices(ctx)?;
    let report = build_report(ctx, &store, &run, &prices)?;
    let Some(case_id) = &args.case else {
        publish(ctx, &store, &report, &args.files)?;
        return Ok(exit_code(&report));
    };
    let Some(case) = report.cases.iter().find(|c| &c.id == case_id) else {
        let ids: Vec<&str> = report.cases.iter().map(|c| c.id.as_str()).collect();
        let mut e = CliError::input(format!("run {} has no case `{case_id}`", run.run_id));
        if let Some(near) = crate::suggest::nearest(case_id, ids.iter().copied()) {
            e = e.with_hint(format!("did you mean `{near}`?"));
        }
        return Err(e);
    };
    let details = store.eval_sample_details(&run.run_id, Some(case_id))?;
    let runs: Vec<SampleView> = details
        .into_iter()
        .map(|d| SampleView {
            sample: d.detail.sample,
            outcome: d.detail.outcome,
            attempts: d.detail.attempts,
            latency_ms: d.detail.latency_ms,
            ttft_ms: d.ttft_ms,
            output_tokens: d.output_tokens,
            cost_usd: d.cost.map(|c| c.round_to(8)),
            error: (d.detail.outcome == Outcome::Error).then(|| d.detail.failure()),
            output: d.detail.output,
            checks: d.detail.checks,
        })
        .collect();
    let groups = group(&runs);
    let doc = CaseDocument {
        schema: "promptctl.eval-case/v1",
        run_id: &report.run_id,
        suite: &report.suite,
        samples: report.samples,
        require: report.require,
        case,
        groups,
        runs,
    };
    if ctx.out.is_human() {
        print_case(ctx, &report, &doc)?;
    } else {
        ctx.out.document(&doc)?;
    }
    Ok(exit_code(&report))
}

/// Groups samples by output and outcome, most frequent first (ties: earliest sample first).
fn group(runs: &[SampleView]) -> Vec<Group> {
    let mut groups: Vec<Group> = Vec::new();
    for r in runs {
        let failed: Vec<Check> = r.checks.iter().filter(|c| !c.passed).cloned().collect();
        match groups.iter_mut().find(|g| g.output == r.output && g.outcome == r.outcome && g.failed == failed) {
            Some(g) => g.samples.push(r.sample),
            None => {
                groups.push(Group { samples: vec![r.sample], outcome: r.outcome, output: r.output.clone(), failed })
            }
        }
    }
    groups.sort_by(|a, b| b.samples.len().cmp(&a.samples.len()).then(a.samples[0].cmp(&b.samples[0])));
    groups
}

/// Distinct outputs side by side (up to four); more are listed one under the other.
const SIDE_BY_SIDE: usize = 4;

fn print_case(
    ctx: &mut Context,
    report: &crate::eval::report::EvalReport,
    doc: &CaseDocument<'_>,
) -> std::io::Result<()> {
    let case = doc.case;
    ctx.out.line(&ctx.out.paint(Style::Dim, &header(report)))?;
    let status = ctx.out.paint(status_style(case.status), status_label(case.status));
    let stats = format!(
        "{} of {} passed ({} required) {} · pass@1 {} · 95% CI {} · {} retries · {}",
        case.passed,
        report.samples,
        report.require,
        outcome_strip(case),
        case.pass_at_k.get(1).map_or("-".into(), |v| format!("{v:.2}")),
        case.wilson.map_or("-".into(), |w| format!("{:.0}–{:.0}%", w.lower * 100.0, w.upper * 100.0)),
        case.retries,
        format_usd(case.cost_usd),
    );
    ctx.out.line(&format!("{} {status} · {stats}", ctx.out.paint(Style::Bold, &case.id)))?;
    let explain = match case.status {
        crate::eval::stats::CaseStatus::Fail => "every sample failed: a deterministic failure, rerunning will not help",
        crate::eval::stats::CaseStatus::FailFlaky => {
            "some samples pass, too few: flaky — the prompt is unreliable here"
        }
        crate::eval::stats::CaseStatus::PassFlaky => "meets N-of-K, but not every sample passed: flaky",
        crate::eval::stats::CaseStatus::Error => "provider errors (or samples not run) leave it undecided",
        crate::eval::stats::CaseStatus::Pass => "every sample passed",
    };
    ctx.out.line(&ctx.out.paint(Style::Dim, explain))?;
    ctx.out.line("")?;
    if doc.groups.is_empty() {
        ctx.out.line("(no samples stored yet)")?;
        return Ok(());
    }
    let label = |g: &Group| {
        let which: Vec<String> = g.samples.iter().map(u32::to_string).collect();
        format!("{} × {} (samples {})", g.samples.len(), g.outcome, which.join(", "))
    };
    let failed = |g: &Group| -> String {
        if g.failed.is_empty() {
            return if g.outcome == Outcome::Pass { "all assertions passed".into() } else { String::new() };
        }
        g.failed
            .iter()
            .map(|c| if c.detail.is_empty() { format!("✗ {}", c.kind) } else { format!("✗ {}: {}", c.kind, c.detail) })
            .collect::<Vec<_>>()
            .join("\n")
    };
    let error_of = |g: &Group| -> Option<String> {
        doc.runs.iter().find(|r| r.sample == g.samples[0]).and_then(|r| r.error.clone())
    };
    if doc.groups.len() <= SIDE_BY_SIDE {
        let headers: Vec<String> = doc.groups.iter().map(label).collect();
        let header_refs: Vec<&str> = headers.iter().map(String::as_str).collect();
        let mut t = table(&header_refs, ctx.out.color);
        t.set_content_arrangement(ContentArrangement::Dynamic);
        t.set_width(terminal_width());
        t.add_row(doc.groups.iter().map(|g| Cell::new(g.output.as_deref().unwrap_or("(no output)"))));
        t.add_row(doc.groups.iter().map(|g| Cell::new(error_of(g).map_or_else(|| failed(g), |e| format!("✗ {e}")))));
        ctx.out.line(&table_text(&t))?;
    } else {
        for g in &doc.groups {
            ctx.out.line(&ctx.out.paint(Style::Bold, &label(g)))?;
            for line in g.output.as_deref().unwrap_or("(no output)").lines() {
                ctx.out.line(&format!("  │ {line}"))?;
            }
            let why = error_of(g).map_or_else(|| failed(g), |e| format!("✗ {e}"));
            for line in why.lines() {
                ctx.out.line(&format!("  {line}"))?;
            }
            ctx.out.line("")?;
        }
    }
    let latencies: Vec<String> =
        doc.runs.iter().map(|r| format!("#{} {}", r.sample, r.latency_ms.map_or("-".into(), format_ms))).collect();
    ctx.out.line("")?;
    ctx.out.line(&ctx.out.paint(Style::Dim, &format!("latency: {}", latencies.join(" · "))))?;
    Ok(())
}

fn terminal_width() -> u16 {
    std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(120).max(60)
}
