//! `promptctl eval baseline SUITE RUN_ID`: record a run as the suite's reference.

use clap::Args;
use serde::Serialize;

use super::super::context::{Context, actor};
use super::super::error::{CliError, CmdResult, Exit};
use super::{effective_status, find_run};
use crate::store::OpenMode;

/// Record a complete run as the suite's baseline
#[derive(Debug, Args)]
#[command(after_help = "\
A suite has one active baseline; recording another replaces it (the history is kept, with who and when,
in the audit trail). Only a complete run can be a baseline. A rollback of the prompt version a baseline
was made with flags it.

Examples:
  promptctl eval baseline support latest
  promptctl eval baseline support r-20261127-101500-3fa2")]
pub struct BaselineArgs {
    /// The suite's name (or its file)
    #[arg(value_name = "SUITE")]
    pub suite: String,

    /// Run id, unique prefix, or `latest`
    #[arg(value_name = "RUN_ID")]
    pub run: String,
}

#[derive(Serialize)]
struct Document {
    schema: &'static str,
    suite: String,
    run_id: String,
    previous: Option<String>,
    prompt: Option<String>,
}

pub fn run(ctx: &mut Context, args: BaselineArgs) -> CmdResult {
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let suite = suite_name(ctx, &args.suite)?;
    let run = find_run(&store, &args.run)?;
    if run.suite != suite {
        return Err(CliError::input(format!("run {} is of suite `{}`, not `{suite}`", run.run_id, run.suite)));
    }
    let (status, reason) = effective_status(ctx, &run);
    if status != "complete" {
        return Err(CliError::input(format!(
            "run {} is {status}{}: only a complete run can be a baseline",
            run.run_id,
            reason.map(|r| format!(" ({r})")).unwrap_or_default()
        ))
        .with_hint(format!("finish it first: promptctl eval resume {}", run.run_id)));
    }
    let who = actor();
    let previous = store.set_eval_baseline(
        &suite,
        &run.run_id,
        run.prompt_name.as_deref(),
        run.prompt_version.as_deref(),
        &who,
    )?;
    store.audit(
        &who,
        "eval.baseline",
        &format!("eval:{suite}"),
        &serde_json::json!({"run_id": run.run_id, "previous": previous, "prompt": run.prompt_name, "version": run.prompt_version}),
    )?;
    let doc = Document {
        schema: "promptctl.eval-baseline/v1",
        suite: suite.clone(),
        run_id: run.run_id.clone(),
        previous: previous.clone(),
        prompt: run.prompt_name.clone().zip(run.prompt_version.clone()).map(|(n, v)| format!("{n}@{v}")),
    };
    if ctx.out.is_human() {
        let was = previous.map_or("(none)".to_string(), |p| p.to_string());
        ctx.out.line(&format!("{suite}: baseline {was} → {}", run.run_id))?;
    } else {
        ctx.out.document(&doc)?;
    }
    Ok(Exit::Ok)
}

/// A suite name, or the name inside a suite file.
fn suite_name(ctx: &Context, arg: &str) -> Result<String, CliError> {
    if arg.ends_with(".yaml") || arg.ends_with(".yml") || arg.contains('/') {
        let path = super::run::find_suite(ctx, arg)?;
        let shown = ctx.display_path(&path);
        return Ok(crate::eval::suite::load(&path, &shown)?.name);
    }
    Ok(arg.to_string())
}
