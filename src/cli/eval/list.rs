//! `promptctl eval list`: runs, newest first, killed and partial ones included.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::effective_status;
use crate::store::OpenMode;

/// List eval runs, newest first
#[derive(Debug, Args)]
#[command(after_help = "\
Status: `complete` (every sample has a verdict), `partial` (stopped early: budget, Ctrl-C, provider
errors, or killed — `eval resume RUN_ID` finishes it), `running` (a live process is running it).

Examples:
  promptctl eval list
  promptctl eval list --suite support --format json")]
pub struct ListArgs {
    /// Only runs of this suite
    #[arg(long, value_name = "NAME")]
    pub suite: Option<String>,

    /// At most this many runs
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub limit: usize,
}

/// `promptctl.eval-list/v1`.
#[derive(Serialize)]
struct Document {
    schema: &'static str,
    runs: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    run_id: String,
    suite: String,
    started_at: String,
    finished_at: Option<String>,
    status: String,
    samples_done: u64,
    samples_total: u64,
    /// Why a partial run stopped: budget, interrupted, provider_errors, killed, incomplete.
    stop_reason: Option<String>,
    sample_errors: u64,
    provider: String,
    prompt: Option<String>,
    regraded_from: Option<String>,
    /// The suite's active baseline.
    baseline: bool,
}

pub fn run(ctx: &mut Context, args: ListArgs) -> CmdResult {
    let store = ctx.open_store(OpenMode::MustExist)?;
    let runs = store.eval_runs(args.suite.as_deref(), args.limit)?;
    let mut baselines = std::collections::HashMap::new();
    let mut entries = Vec::with_capacity(runs.len());
    for run in runs {
        if !baselines.contains_key(&run.suite) {
            baselines.insert(run.suite.clone(), store.eval_baseline(&run.suite)?);
        }
        let (status, stop_reason) = effective_status(ctx, &run);
        entries.push(Entry {
            baseline: baselines[&run.suite].as_deref() == Some(run.run_id.as_str()),
            run_id: run.run_id,
            suite: run.suite,
            started_at: run.started_at,
            finished_at: run.finished_at,
            status,
            samples_done: run.samples_done,
            samples_total: run.samples_total,
            stop_reason,
            sample_errors: run.sample_errors,
            provider: run.provider,
            prompt: run.prompt_name.zip(run.prompt_version).map(|(n, v)| format!("{n}@{v}")),
            regraded_from: run.regraded_from,
        });
    }
    if !ctx.out.is_human() {
        ctx.out.document(&Document { schema: "promptctl.eval-list/v1", runs: entries })?;
        return Ok(Exit::Ok);
    }
    if entries.is_empty() {
        ctx.out.line("no eval runs yet: promptctl eval run evals/SUITE.yaml")?;
        return Ok(Exit::Ok);
    }
    let mut t = table(&["run", "suite", "started", "status", "samples", "prompt", "provider"], ctx.out.color);
    for e in &entries {
        let mut status = e.status.clone();
        if let Some(reason) = &e.stop_reason {
            status.push_str(&format!(" ({reason})"));
        }
        if e.baseline {
            status.push_str(" · baseline");
        }
        let errors = if e.sample_errors > 0 { format!(" +{} errors", e.sample_errors) } else { String::new() };
        t.add_row(vec![
            e.run_id.clone(),
            e.suite.clone(),
            short_time(&e.started_at),
            status,
            format!("{}/{}{errors}", e.samples_done, e.samples_total),
            e.prompt.clone().unwrap_or_default(),
            e.provider.clone(),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    if entries.iter().any(|e| e.status == "partial") {
        ctx.out.line(&ctx.out.paint(Style::Dim, "finish a partial run with: promptctl eval resume RUN_ID"))?;
    }
    Ok(Exit::Ok)
}

fn short_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M:%S").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}
