//! `promptctl eval resume RUN_ID`: run only the samples a run is missing, then finish its report.

use std::time::Instant;

use clap::Args;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::run::parse_usd;
use super::session::{self, SessionSpec};
use super::{ReportFiles, RunLock, build_report, definition, exit_code, find_run, prices, publish};
use crate::eval::cost::CostSum;
use crate::eval::runner::{Budget, Stop};
use crate::eval::sample::Outcome;
use crate::store::OpenMode;

/// Run only the samples a killed, interrupted or stopped run is missing
#[derive(Debug, Args)]
#[command(after_help = "\
Runs the samples that have no verdict: never started, in flight when the run was killed or interrupted,
or ended in provider errors. Samples with a verdict are never run again. The run keeps its suite,
prompt and rendered requests exactly as they were stored, even if the files changed since. Attempts are
numbered after those already stored for the same sample, so the trace shows every call.

The budget is the run's (--max-cost to change it); what earlier sessions spent counts against it.

Examples:
  promptctl eval resume r-20261127-101500-3fa2
  promptctl eval resume latest --max-cost 5
  promptctl eval resume latest --base-url http://127.0.0.1:8787/v1   # the server moved")]
pub struct ResumeArgs {
    /// Run id, unique prefix, or `latest`
    #[arg(value_name = "RUN_ID")]
    pub run: String,

    /// New budget for the whole run (earlier sessions' spending included), in US dollars
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<String>,

    /// Samples in flight at once [default: the run's]
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,

    /// Reach the provider at another base URL
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// With a budget, run even if a model has no price
    #[arg(long)]
    pub allow_unpriced: bool,

    #[command(flatten)]
    pub files: ReportFiles,
}

pub fn run(ctx: &mut Context, args: ResumeArgs) -> CmdResult {
    let started = Instant::now();
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let run = find_run(&store, &args.run)?;
    if run.regraded_from.is_some() {
        return Err(CliError::input(format!(
            "{} is a regrade: it made no calls and has nothing to resume",
            run.run_id
        )));
    }
    let state = ctx.state_path().0;
    let Some(_lock) = RunLock::acquire(&state, &run.run_id)
        .map_err(|e| CliError::state(format!("cannot create the run's lock file next to {}: {e}", state.display())))?
    else {
        return Err(CliError::input(format!("run {} is still running in another promptctl process", run.run_id))
            .with_hint("wait for it to finish, or stop it (Ctrl-C) and resume then"));
    };
    let def = definition(&run)?;
    let done: std::collections::HashSet<(String, u32)> = store
        .eval_samples(&run.run_id)?
        .into_iter()
        .filter(|s| s.outcome != Outcome::Error)
        .map(|s| (s.case_id, s.sample))
        .collect();
    let todo: Vec<(usize, u32)> = def
        .cases
        .iter()
        .enumerate()
        .flat_map(|(i, c)| (0..def.samples).map(move |s| (i, s, c.id.clone())))
        .filter(|(_, s, id)| !done.contains(&(id.clone(), *s)))
        .map(|(i, s, _)| (i, s))
        .collect();
    let prices = prices(ctx)?;
    let budget = match &args.max_cost {
        Some(text) => Some(parse_usd(text)?),
        None => run.max_cost,
    };
    if todo.is_empty() {
        ctx.msg.note(&format!("run {} has every sample; nothing to resume", run.run_id));
        if run.status != "complete" {
            store.reopen_eval_run(&run.run_id, budget, None)?;
            store.finish_eval_run(&run.run_id, "complete", None, 0)?;
        }
    } else {
        let providers = session::providers(&def, args.base_url.as_deref().or(run.base_url.as_deref()), prices.clone())?;
        session::check_prices(ctx, &providers, budget, args.allow_unpriced)?;
        let mut spent = CostSum::default();
        for request in store.eval_request_facts(&run.run_id)? {
            spent.add(prices.cost_of(crate::eval::cost::CallFacts {
                provider: &request.provider,
                model: &request.request_model,
                ts: request.ts,
                status: request.status,
                usage: request.usage,
                has_output: request.has_output,
                service_tier: request.service_tier.as_deref(),
                batch: request.batch,
            }));
        }
        if let Some(limit) = budget
            && spent.known >= limit
        {
            return Err(CliError::new(
                Exit::CheckFailed,
                format!(
                    "run {} has spent {} of its {} budget",
                    run.run_id,
                    crate::eval::export::format_usd(Some(spent.known.as_f64())),
                    crate::eval::export::format_usd(Some(limit.as_f64()))
                ),
            )
            .with_hint(format!("raise it: promptctl eval resume {} --max-cost USD", run.run_id)));
        }
        store.reopen_eval_run(&run.run_id, budget, args.base_url.as_deref())?;
        ctx.msg.note(&format!(
            "resuming run {}: {} of {} samples to run, {}",
            run.run_id,
            todo.len(),
            run.samples_total,
            providers.main.id()
        ));
        let spec = SessionSpec {
            run_id: &run.run_id,
            def: &def,
            todo,
            attempts_before: store.eval_attempts_before(&run.run_id)?,
            budget: budget.map(|limit| Budget { limit, spent_before: spent.known }),
            concurrency: args.concurrency.unwrap_or(run.concurrency).max(1) as usize,
            started,
        };
        let (end, returned) = session::execute(ctx, store, spec, providers)?;
        store = returned;
        if end.stop == Some(Stop::Interrupted) {
            let run = find_run(&store, &run.run_id)?;
            let report = build_report(ctx, &store, &run, &prices)?;
            publish(ctx, &store, &report, &args.files)?;
            return Ok(Exit::Interrupted);
        }
    }
    let run = find_run(&store, &run.run_id)?;
    let report = build_report(ctx, &store, &run, &prices)?;
    publish(ctx, &store, &report, &args.files)?;
    Ok(exit_code(&report))
}
