//! One session of a run (the first `eval run`, or an `eval resume`): providers, the runtime, Ctrl-C, the
//! progress bar, the store as the runner's sink, and the run's status afterwards.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::super::context::Context;
use super::super::error::{CliError, Exit};
use crate::eval::cost::Prices;
use crate::eval::export::format_usd;
use crate::eval::plan::{ProviderSettings, RunDefinition};
use crate::eval::runner::{
    self, Budget, NoProgress, Progress, Providers, RunCase, RunConfig, Sink, SinkFailed, Stop, Tally,
};
use crate::eval::sample::Write;
use crate::money::Usd;
use crate::provider::{Cancel, Client, ProviderConfig, ProviderId, RetryPolicy, Timeouts};
use crate::store::{Store, StoreError};

/// What a session runs.
pub(super) struct SessionSpec<'a> {
    pub run_id: &'a str,
    pub def: &'a RunDefinition,
    pub todo: Vec<(usize, u32)>,
    pub attempts_before: HashMap<String, u32>,
    pub budget: Option<Budget>,
    pub concurrency: usize,
    /// When the command started (start-up counts toward the run's wall time).
    pub started: Instant,
}

/// How a session ended.
pub(super) struct SessionEnd {
    pub stop: Option<Stop>,
}

/// The provider config of a run's settings; `base_url` overrides the stored one.
pub(super) fn provider_config(settings: &ProviderSettings, base_url: Option<&str>) -> Result<ProviderConfig, CliError> {
    let id: ProviderId = settings.id.parse().map_err(|e| CliError::input(format!("{e}")))?;
    let mut config = ProviderConfig::new(id);
    config.base_url = base_url.map(str::to_string).or_else(|| settings.base_url.clone());
    config.api_key_env = settings.api_key_env.clone();
    if let Some(ms) = settings.timeout_ms {
        let limit = Duration::from_millis(ms.max(1));
        config.timeouts = Timeouts {
            connect: limit.min(crate::provider::DEFAULT_CONNECT_TIMEOUT),
            first_byte: limit,
            idle: limit,
            ..Timeouts::default()
        };
    }
    if let Some(n) = settings.max_attempts {
        config.retry = RetryPolicy { max_attempts: n.max(1), ..RetryPolicy::default() };
    }
    Ok(config)
}

fn client(config: &ProviderConfig) -> Result<Client, CliError> {
    Client::from_config(config).map_err(|e| {
        let error = CliError::input(e.to_string());
        match e {
            crate::provider::ProviderError::MissingBaseUrl { .. } => {
                error.with_hint("pass --base-url, e.g. the URL `promptctl sim serve` prints")
            }
            _ => error,
        }
    })
}

/// The run's clients: its provider, and one per judge provider. A judge of the same kind as the run's
/// provider uses the run's base URL and key variable.
pub(super) fn providers(def: &RunDefinition, base_url: Option<&str>, prices: Prices) -> Result<Providers, CliError> {
    let main_config = provider_config(&def.provider, base_url)?;
    let main = client(&main_config)?;
    let mut judges = HashMap::new();
    for id in def.judge_providers() {
        let judge_id: ProviderId = id.parse().map_err(|e| CliError::input(format!("llm-judge provider: {e}")))?;
        let mut config = ProviderConfig::new(judge_id.clone());
        config.retry = main_config.retry.clone();
        config.timeouts = main_config.timeouts;
        if judge_id.kind == main_config.id.kind {
            config.base_url = main_config.base_url.clone();
            config.api_key_env = main_config.api_key_env.clone();
        }
        judges.insert(id, client(&config)?);
    }
    Ok(Providers { main, judges, prices })
}

/// With a budget, every model the run calls must have a price, or the budget cannot be enforced.
pub(super) fn check_prices(
    ctx: &Context,
    providers: &Providers,
    budget: Option<Usd>,
    allow_unpriced: bool,
) -> Result<(), CliError> {
    let mut unpriced: Vec<String> = std::iter::once(&providers.main)
        .chain(providers.judges.values())
        .filter(|c| !providers.prices.knows(c.id()))
        .map(|c| c.id().to_string())
        .collect();
    unpriced.sort();
    unpriced.dedup();
    if unpriced.is_empty() {
        return Ok(());
    }
    let names = unpriced.join(", ");
    match budget {
        Some(limit) if !allow_unpriced => Err(CliError::input(format!(
            "--max-cost {} cannot be enforced: {names} has no price in the price book",
            format_usd(Some(limit.as_f64()))
        ))
        .with_hint("add its price to a [pricing] overrides file (docs/pricing.md)")
        .with_hint("or pass --allow-unpriced to run without enforcing the budget for unpriced calls")),
        Some(_) => {
            ctx.msg.warn(&format!(
                "{names} has no price: --max-cost is not enforced for its calls, and costs show as unknown"
            ));
            Ok(())
        }
        None => {
            ctx.msg.note(&format!("note: {names} has no price in the price book; costs show as unknown"));
            Ok(())
        }
    }
}

struct StoreSink {
    store: Store,
    run_id: String,
    error: Option<StoreError>,
}

impl Sink for StoreSink {
    fn write(&mut self, batch: &[Write]) -> Result<(), SinkFailed> {
        self.store.write_eval_batch(&self.run_id, batch).map_err(|e| {
            self.error = Some(e);
            SinkFailed
        })
    }
}

struct Bar(ProgressBar);

impl Progress for Bar {
    fn update(&self, tally: &Tally) {
        self.0.set_position(tally.done);
        let rate = tally.pass_rate().map_or("-".to_string(), |r| format!("{:.0}%", r * 100.0));
        let cost = if tally.cost_incomplete {
            format!("≥{}", format_usd(Some(tally.cost.as_f64())))
        } else {
            format_usd(Some(tally.cost.as_f64()))
        };
        let errors = if tally.errors > 0 { format!(" · {} errors", tally.errors) } else { String::new() };
        self.0.set_message(format!("pass {rate} · {cost}{errors}"));
    }
}

fn progress(ctx: &Context, todo: u64) -> (Arc<dyn Progress>, Option<ProgressBar>) {
    if !ctx.progress_enabled() || todo == 0 {
        return (Arc::new(NoProgress), None);
    }
    let bar = ProgressBar::with_draw_target(Some(todo), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{bar:30.cyan/blue} {pos}/{len} samples · {msg} · ETA {eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message("starting");
    (Arc::new(Bar(bar.clone())), Some(bar))
}

/// Runs a session and records how it ended. Returns the store for the report.
pub(super) fn execute(
    ctx: &Context,
    store: Store,
    spec: SessionSpec<'_>,
    providers: Providers,
) -> Result<(SessionEnd, Store), CliError> {
    let cases = spec
        .def
        .cases
        .iter()
        .map(|c| Ok(RunCase { def: c.clone(), assertions: c.compile().map_err(CliError::state)? }))
        .collect::<Result<Vec<_>, CliError>>()?;
    let config = RunConfig {
        run_id: spec.run_id.to_string(),
        prompt: spec.def.prompt.clone(),
        concurrency: spec.concurrency,
        todo: spec.todo,
        attempts_before: spec.attempts_before,
        budget: spec.budget,
        stop_after_errors: (spec.concurrency as u32).max(5),
    };
    let (progress, bar) = progress(ctx, config.todo.len() as u64);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .map_err(|e| CliError::new(Exit::Provider, format!("cannot start the async runtime: {e}")))?;
    let cancel = Cancel::new();
    let sink = StoreSink { store, run_id: spec.run_id.to_string(), error: None };
    let (result, sink) = runtime.block_on(async {
        let watcher = tokio::spawn(watch_ctrl_c(cancel.clone()));
        let outcome = runner::run(cases, config, providers, sink, progress, cancel).await;
        watcher.abort();
        outcome
    });
    drop(runtime);
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    let StoreSink { mut store, error, .. } = sink;
    let wall = spec.started.elapsed().as_millis() as u64;
    if let Some(error) = error {
        let _ = store.finish_eval_run(spec.run_id, "partial", Some("state_error"), wall);
        return Err(error.into());
    }
    let run = store.eval_run(spec.run_id)?.ok_or_else(|| CliError::state(format!("run {} vanished", spec.run_id)))?;
    let complete = run.samples_done == run.samples_total && run.sample_errors == 0;
    let stop_reason = result
        .stop
        .map(Stop::as_str)
        .or((run.sample_errors > 0).then_some("provider_errors"))
        .or((!complete).then_some("incomplete"));
    store.finish_eval_run(spec.run_id, if complete { "complete" } else { "partial" }, stop_reason, wall)?;
    explain_stop(ctx, &store, spec.run_id, result.stop, &result.tally, spec.budget)?;
    Ok((SessionEnd { stop: result.stop }, store))
}

async fn watch_ctrl_c(cancel: Cancel) {
    if tokio::signal::ctrl_c().await.is_err() {
        return;
    }
    eprintln!("\ninterrupted: stopping (calls in flight are recorded as aborted; Ctrl-C again to quit at once)");
    cancel.cancel();
    if tokio::signal::ctrl_c().await.is_ok() {
        std::process::exit(Exit::Interrupted as i32);
    }
}

fn explain_stop(
    ctx: &Context,
    store: &Store,
    run_id: &str,
    stop: Option<Stop>,
    tally: &Tally,
    budget: Option<Budget>,
) -> Result<(), CliError> {
    let resume = format!("promptctl eval resume {run_id}");
    match stop {
        None => {}
        Some(Stop::Interrupted) => ctx.msg.warn(&format!(
            "interrupted after {} of {} samples; nothing is lost: resume with `{resume}`",
            tally.done, tally.todo
        )),
        Some(Stop::Budget) => {
            let limit = budget.map_or(Usd::ZERO, |b| b.limit);
            let spent = budget.map_or(Usd::ZERO, |b| b.spent_before) + tally.cost;
            ctx.msg.warn(&format!(
                "--max-cost {} reached: {} spent, the next sample could go over; {} of {} samples run in this session",
                format_usd(Some(limit.as_f64())),
                format_usd(Some(spent.as_f64())),
                tally.done,
                tally.todo
            ));
            ctx.msg.note(&format!("  resume with a higher budget: {resume} --max-cost USD"));
        }
        Some(Stop::ProviderErrors) => {
            let last = store
                .eval_sample_details(run_id, None)?
                .into_iter()
                .rev()
                .find_map(|d| (d.detail.outcome == crate::eval::sample::Outcome::Error).then(|| d.detail.failure()))
                .unwrap_or_default();
            ctx.msg.warn(&format!(
                "stopped: {} samples in a row ended in provider errors after retries ({last})",
                (tally.errors).min(tally.done)
            ));
            ctx.msg.note(&format!("  fix the provider (or pass --base-url) and resume: {resume}"));
        }
    }
    if stop != Some(Stop::ProviderErrors) && stop != Some(Stop::Interrupted) && tally.errors > 0 {
        ctx.msg.note(&format!("{} samples ended in provider errors; `{resume}` runs them again", tally.errors));
    }
    Ok(())
}
