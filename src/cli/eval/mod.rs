//! `promptctl eval …`: N-of-K evals where every sample is a stored trace.

mod baseline;
mod list;
mod lock;
mod regrade;
mod render;
mod resume;
mod run;
mod session;
mod show;

use clap::Subcommand;

use super::context::Context;
use super::error::{CliError, CmdResult, Exit};
use crate::eval::cost::Prices;
use crate::eval::export::{SampleDetail, junit, markdown};
use crate::eval::plan::{PromptInfo, RunDefinition};
use crate::eval::report::{self, CaseInfo, EvalReport, RunFacts, SampleFacts};
use crate::store::{EvalRunRow, Store};

pub use lock::RunLock;

#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    Run(run::RunArgs),
    Resume(resume::ResumeArgs),
    Show(show::ShowArgs),
    List(list::ListArgs),
    Regrade(regrade::RegradeArgs),
    Baseline(baseline::BaselineArgs),
}

pub fn run(ctx: &mut Context, command: EvalCommand) -> CmdResult {
    match command {
        EvalCommand::Run(args) => run::run(ctx, args),
        EvalCommand::Resume(args) => resume::run(ctx, args),
        EvalCommand::Show(args) => show::run(ctx, args),
        EvalCommand::List(args) => list::run(ctx, args),
        EvalCommand::Regrade(args) => regrade::run(ctx, args),
        EvalCommand::Baseline(args) => baseline::run(ctx, args),
    }
}

/// Finds a run by id, unique id prefix, or `latest`.
pub(crate) fn find_run(store: &Store, reference: &str) -> Result<EvalRunRow, CliError> {
    if reference == "latest" {
        return store
            .eval_runs(None, 1)?
            .into_iter()
            .next()
            .ok_or_else(|| CliError::input("there are no eval runs in this state file").with_hint(RUN_HINT));
    }
    if let Some(run) = store.eval_run(reference)? {
        return Ok(run);
    }
    let candidates = store.eval_run_ids_with_prefix(reference)?;
    match candidates.as_slice() {
        [one] => store.eval_run(one)?.ok_or_else(|| CliError::state(format!("run {one} vanished"))),
        [] => {
            Err(CliError::input(format!("no eval run `{reference}`")).with_hint("list runs with `promptctl eval list`"))
        }
        many => Err(CliError::input(format!("`{reference}` matches {} runs", many.len()))
            .with_hint(format!("candidates: {}", many.join(", ")))),
    }
}

const RUN_HINT: &str = "start one with `promptctl eval run evals/SUITE.yaml`";

/// The stored definition of a run.
pub(crate) fn definition(run: &EvalRunRow) -> Result<RunDefinition, CliError> {
    serde_json::from_str(&run.suite_json)
        .map_err(|e| CliError::state(format!("run {} has an unreadable definition: {e}", run.run_id)))
}

/// The run's status as a person should read it: a `running` run whose process is gone was killed.
pub(crate) fn effective_status(ctx: &Context, run: &EvalRunRow) -> (String, Option<String>) {
    if run.status == "running" && !RunLock::is_held(&ctx.state_path().0, &run.run_id) {
        return ("partial".into(), Some("killed".into()));
    }
    (run.status.clone(), run.stop_reason.clone())
}

/// Builds a run's report from the state, as `eval run`, `eval resume` and `eval show` print it.
pub(crate) fn build_report(
    ctx: &Context,
    store: &Store,
    run: &EvalRunRow,
    prices: &Prices,
) -> Result<EvalReport, CliError> {
    let def = definition(run)?;
    let (status, stop_reason) = effective_status(ctx, run);
    let facts = RunFacts {
        run_id: run.run_id.clone(),
        suite: run.suite.clone(),
        prompt: match (&run.prompt_name, &run.prompt_version) {
            (Some(name), Some(version)) => Some(PromptInfo { name: name.clone(), version: version.clone() }),
            _ => None,
        },
        provider: run.provider.clone(),
        samples: run.samples,
        require: run.require,
        status,
        stop_reason,
        started_at: run.started_at.clone(),
        finished_at: run.finished_at.clone(),
        wall_ms: run.wall_ms,
        trace_run_id: run.trace_run_id().to_string(),
        regraded_from: run.regraded_from.clone(),
    };
    let cases: Vec<CaseInfo> = def.cases.iter().map(|c| CaseInfo { id: c.id.clone(), tags: c.tags.clone() }).collect();
    let samples: Vec<SampleFacts> = store
        .eval_samples(&run.run_id)?
        .into_iter()
        .map(|s| SampleFacts {
            case_id: s.case_id,
            sample: s.sample,
            outcome: s.outcome,
            latency_ms: s.latency_ms,
            ttft_ms: s.ttft_ms,
        })
        .collect();
    let requests = store.eval_request_facts(run.trace_run_id())?;
    Ok(report::build(&facts, &cases, &samples, &requests, prices))
}

/// The exit code a report means (CLI.md): 3 when samples ended in provider errors, 1 when a case is
/// below N-of-K or the run is incomplete, 0 otherwise.
pub(crate) fn exit_code(report: &EvalReport) -> Exit {
    if report.summary.sample_errors > 0 {
        Exit::Provider
    } else if !report.gate.passed {
        Exit::CheckFailed
    } else {
        Exit::Ok
    }
}

/// Where a report goes besides stdout: `--junit`, `--markdown`, and `$GITHUB_STEP_SUMMARY`.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ReportFiles {
    /// Write JUnit XML here: one test case per eval case, samples as properties, flaky cases marked
    #[arg(long, value_name = "FILE")]
    pub junit: Option<std::path::PathBuf>,

    /// Write a Markdown summary here (also appended to $GITHUB_STEP_SUMMARY when that is set)
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<std::path::PathBuf>,
}

/// Prints the report and writes the report files.
pub(crate) fn publish(
    ctx: &mut Context,
    store: &Store,
    report: &EvalReport,
    files: &ReportFiles,
) -> Result<(), CliError> {
    if ctx.out.is_human() {
        render::print_report(ctx, report)?;
    } else {
        ctx.out.document(report)?;
    }
    if let Some(path) = &files.junit {
        let details: Vec<SampleDetail> =
            store.eval_sample_details(&report.run_id, None)?.into_iter().map(|d| d.detail).collect();
        let xml = junit(report, &details).map_err(|e| CliError::input(format!("cannot write JUnit XML: {e}")))?;
        write_file(ctx, path, &xml)?;
    }
    let md = (files.markdown.is_some() || step_summary().is_some()).then(|| markdown(report));
    if let (Some(path), Some(md)) = (&files.markdown, &md) {
        write_file(ctx, path, md)?;
    }
    if let (Some(path), Some(md)) = (step_summary(), &md) {
        use std::io::Write;
        let appended = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| f.write_all(format!("{md}\n").as_bytes()));
        if let Err(e) = appended {
            ctx.msg.warn(&format!("cannot append to $GITHUB_STEP_SUMMARY ({path}): {e}"));
        }
    }
    Ok(())
}

fn step_summary() -> Option<String> {
    std::env::var("GITHUB_STEP_SUMMARY").ok().filter(|p| !p.trim().is_empty())
}

fn write_file(ctx: &Context, path: &std::path::Path, text: &str) -> Result<(), CliError> {
    let target = ctx.cwd().join(path);
    std::fs::write(&target, text)
        .map_err(|e| CliError::input(format!("cannot write {}: {e}", ctx.display_path(&target))))?;
    ctx.msg.note(&format!("wrote {}", ctx.display_path(&target)));
    Ok(())
}

/// The price book for a run's costs.
pub(crate) fn prices(ctx: &Context) -> Result<Prices, CliError> {
    Ok(Prices::new(ctx.price_book()?))
}
