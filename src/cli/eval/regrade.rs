//! `promptctl eval regrade RUN_ID`: today's assertions on a run's stored outputs, without calling any
//! provider. The result is a new run that points at the old one's request rows.

use std::collections::HashMap;
use std::time::Instant;

use clap::Args;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult};
use super::run::{find_suite, new_run_id};
use super::{ReportFiles, build_report, definition, exit_code, find_run, prices, publish};
use crate::eval::assert::{Assertion, AssertionSpec, Observation};
use crate::eval::plan::RunDefinition;
use crate::eval::sample::{Check, Outcome};
use crate::eval::suite;
use crate::store::{NewEvalRun, OpenMode, StoredSampleDetail};

/// Re-run assertions on a run's stored outputs; no provider calls
#[derive(Debug, Args)]
#[command(after_help = "\
Reads the suite file again (the run's own, or --suite), and checks every stored output against the
assertions it has now. Cases are matched by id; cases the run did not have are skipped. The result is a
new run (`regraded_from` names the original) with the same outputs, request rows and costs, so the two
can be compared; the original is left as it was.

llm-judge assertions need a provider call: a regrade reuses a stored verdict of the same rubric and
judge, and refuses a new rubric (run the suite for that).

Examples:
  promptctl eval regrade latest
  promptctl eval regrade r-20261127-101500-3fa2 --suite evals/support.yaml --format json")]
pub struct RegradeArgs {
    /// Run id, unique prefix, or `latest`
    #[arg(value_name = "RUN_ID")]
    pub run: String,

    /// The suite file with the new assertions [default: the file the run was made from]
    #[arg(long, value_name = "FILE")]
    pub suite: Option<String>,

    #[command(flatten)]
    pub files: ReportFiles,
}

pub fn run(ctx: &mut Context, args: RegradeArgs) -> CmdResult {
    let started = Instant::now();
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let source = find_run(&store, &args.run)?;
    let old = definition(&source)?;
    let suite_arg = args.suite.clone().or(source.suite_path.clone()).unwrap_or_else(|| source.suite.clone());
    let path = find_suite(ctx, &suite_arg)?;
    let shown = ctx.display_path(&path);
    let suite = suite::load(&path, &shown)?;
    if suite.name != source.suite {
        ctx.msg.warn(&format!(
            "{shown} is suite `{}`, the run is of `{}`; matching cases by id",
            suite.name, source.suite
        ));
    }
    let new_specs: HashMap<&str, &Vec<AssertionSpec>> =
        suite.cases.iter().map(|c| (c.id.as_str(), &c.assertion_specs)).collect();
    let skipped = suite.cases.iter().filter(|c| !old.cases.iter().any(|o| o.id == c.id)).count();
    if skipped > 0 {
        ctx.msg.note(&format!("{skipped} case(s) of {shown} are not in run {}: skipped", source.run_id));
    }
    let mut def: RunDefinition = old.clone();
    def.cases.retain(|c| new_specs.contains_key(c.id.as_str()));
    for case in &mut def.cases {
        case.assert = new_specs[case.id.as_str()].clone();
    }
    let compiled: HashMap<String, Vec<Assertion>> = def
        .cases
        .iter()
        .map(|c| Ok((c.id.clone(), c.compile().map_err(|e| CliError::input(format!("{shown}: {e}")))?)))
        .collect::<Result<_, CliError>>()?;
    let stored = store.eval_sample_details(&source.run_id, None)?;
    let mut regraded = Vec::new();
    let mut flips = 0;
    for sample in stored {
        let Some(assertions) = compiled.get(&sample.detail.case_id) else { continue };
        let (outcome, checks) = grade(&sample, assertions, &def.provider.id).map_err(|rubric| {
            CliError::input(format!(
                "case `{}` has an llm-judge rubric the run never judged: {rubric:?}",
                sample.detail.case_id
            ))
            .with_hint("a regrade makes no provider calls; run the suite to judge a new rubric")
        })?;
        if outcome != sample.detail.outcome {
            flips += 1;
        }
        regraded.push((sample, outcome, checks));
    }
    let suite_json = serde_json::to_string(&def).map_err(|e| CliError::input(e.to_string()))?;
    let trace_run = source.trace_run_id().to_string();
    let mut run_id = new_run_id();
    for _ in 0..16 {
        let inserted = store.insert_eval_run(&NewEvalRun {
            run_id: &run_id,
            suite: &def.suite,
            suite_path: Some(&shown),
            suite_json: &suite_json,
            prompt_name: source.prompt_name.as_deref(),
            prompt_version: source.prompt_version.as_deref(),
            provider: &source.provider,
            base_url: source.base_url.as_deref(),
            samples: def.samples,
            require: def.require,
            concurrency: def.concurrency,
            max_cost: None,
            samples_total: def.samples_total(),
            regraded_from: Some(&trace_run),
        })?;
        if inserted {
            break;
        }
        run_id = new_run_id();
    }
    store.insert_regraded_samples(&run_id, &regraded)?;
    let run = find_run(&store, &run_id)?;
    let complete = run.samples_done == run.samples_total && run.sample_errors == 0;
    store.finish_eval_run(
        &run_id,
        if complete { "complete" } else { "partial" },
        (!complete).then_some(if run.sample_errors > 0 { "provider_errors" } else { "incomplete" }),
        started.elapsed().as_millis() as u64,
    )?;
    ctx.msg.note(&format!(
        "regraded {} samples of run {} as run {run_id}: {flips} changed verdict, no provider calls",
        regraded.len(),
        source.run_id
    ));
    let run = find_run(&store, &run_id)?;
    let report = build_report(ctx, &store, &run, &prices(ctx)?)?;
    publish(ctx, &store, &report, &args.files)?;
    Ok(exit_code(&report))
}

/// The new verdict of a stored sample. Samples that ended in a provider error stay errors. Err names a
/// judge rubric with no stored verdict.
fn grade(
    sample: &StoredSampleDetail,
    assertions: &[Assertion],
    main_provider: &str,
) -> Result<(Outcome, Vec<Check>), String> {
    let d = &sample.detail;
    let Some(output) = d.output.as_deref().filter(|_| d.outcome != Outcome::Error) else {
        return Ok((Outcome::Error, d.checks.clone()));
    };
    let observation =
        Observation { output, output_tokens: sample.output_tokens, latency_ms: d.latency_ms, cost: sample.cost };
    let mut outcome = Outcome::Pass;
    let mut checks = Vec::with_capacity(assertions.len());
    for assertion in assertions {
        let check = match assertion.check(&observation) {
            Some(result) => Check::from(result),
            None => {
                let Assertion::LlmJudge { rubric, provider } = assertion else { continue };
                let judge = provider.clone().unwrap_or_else(|| main_provider.to_string());
                d.checks
                    .iter()
                    .find(|c| {
                        c.rubric.as_deref() == Some(rubric.as_str()) && c.judge.as_deref().is_none_or(|j| j == judge)
                    })
                    .cloned()
                    .ok_or_else(|| rubric.clone())?
            }
        };
        if !check.passed {
            let judge_failed = check.kind == "llm-judge" && check.detail.starts_with("judge call failed");
            outcome = if judge_failed || outcome == Outcome::Error { Outcome::Error } else { Outcome::Fail };
        }
        checks.push(check);
    }
    Ok((outcome, checks))
}
