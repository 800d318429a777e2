//! `promptctl eval run SUITE`: run every case K times and judge it by N-of-K.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::prompt::{prompt_from_stored, resolve};
use super::session::{self, SessionSpec};
use super::{ReportFiles, RunLock, build_report, exit_code, prices, publish};
use crate::eval::plan::{ProviderSettings, RunDefinition, prepare};
use crate::eval::runner::Budget;
use crate::eval::suite::{self, PromptSpec, Suite};
use crate::money::Usd;
use crate::prompt::{Prompt, PromptSource};
use crate::provider::ProviderId;
use crate::store::{NewEvalRun, OpenMode};

/// Run a suite: every case K times, judged by N-of-K, every sample stored as a trace
#[derive(Debug, Args)]
#[command(after_help = "\
Each case runs K samples (--samples, or `samples:` in the suite) and passes when at least N of them pass
(--require, or `require:`). A case is `pass` (K of K), `pass-flaky` (at least N), `fail-flaky` (some, fewer
than N), `fail` (none: deterministic, rerunning will not help) or `error` (provider errors left it
undecided). Every attempt, retries included, is stored as a request row with its usage, latency, TTFT
and stream checkpoints.

The run is recorded before its first request and each sample is committed as it finishes: a killed or
interrupted run loses at most the samples in flight, and `promptctl eval resume RUN_ID` finishes it.
The state file is created if it does not exist.

Flags override the suite file. The provider is, in order: --provider, the suite's `provider:`, the
prompt's `model:`, `[defaults] provider` in promptctl.toml. --provider with another kind of provider
than the suite's drops the suite's base_url and api_key_env.

--max-cost stops scheduling before the next sample's estimate (input plus max_tokens of output, judge
calls included) would take the run's cost over the budget; the run is then resumable. Calls to a model
without a price cannot be counted, so a budget then needs --allow-unpriced.

Exit codes: 0 every case meets N-of-K · 1 a case does not, or the run stopped early (budget) · 2 bad
suite or flags · 3 samples ended in provider errors after retries · 4 state file problem · 130 Ctrl-C.

Examples:
  promptctl sim serve --scenario evals/sim/triage.yaml &     # a local model for the bundled suites
  promptctl eval run evals/triage.yaml
  promptctl eval run evals/support.yaml --samples 10 --require 8 --junit report.xml
  promptctl eval run support --provider openai:gpt-4.1-mini --max-cost 0.50 --format json")]
pub struct RunArgs {
    /// The suite file, or the name of a suite under evals/
    #[arg(value_name = "SUITE")]
    pub suite: String,

    /// Samples per case (K)
    #[arg(long, value_name = "K")]
    pub samples: Option<u32>,

    /// Samples that must pass per case (N)
    #[arg(long, value_name = "N")]
    pub require: Option<u32>,

    /// Samples in flight at once
    #[arg(long, value_name = "C")]
    pub concurrency: Option<u32>,

    /// Provider id: openai:MODEL, anthropic:MODEL or sim:MODEL
    #[arg(long, value_name = "ID")]
    pub provider: Option<String>,

    /// Base URL of the provider's API (an OpenAI-compatible server, the simulator)
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,

    /// Budget for the whole run, in US dollars
    #[arg(long, value_name = "USD")]
    pub max_cost: Option<String>,

    /// With a budget, run even if a model has no price (its calls are not counted against the budget)
    #[arg(long)]
    pub allow_unpriced: bool,

    #[command(flatten)]
    pub files: ReportFiles,
}

pub fn run(ctx: &mut Context, args: RunArgs) -> CmdResult {
    let started = Instant::now();
    let suite_path = find_suite(ctx, &args.suite)?;
    let shown = ctx.display_path(&suite_path);
    let suite = suite::load(&suite_path, &shown)?;
    let samples = args.samples.unwrap_or(suite.samples);
    let require = args.require.unwrap_or(suite.require);
    check_n_of_k(samples, require)?;
    let concurrency = args.concurrency.unwrap_or(suite.concurrency);
    if concurrency == 0 {
        return Err(CliError::input("--concurrency must be at least 1"));
    }
    let budget = match &args.max_cost {
        Some(text) => Some(parse_usd(text)?),
        None => suite.max_cost,
    };
    let mut store = ctx.open_store(OpenMode::CreateIfMissing)?;
    let prompt = load_prompt(ctx, &store, &suite)?;
    let settings = provider_settings(ctx, &args, &suite, &prompt)?;
    let def = prepare(&suite, &prompt, settings, samples, require, concurrency)?;
    let prices = prices(ctx)?;
    let providers = session::providers(&def, None, prices.clone())?;
    session::check_prices(ctx, &providers, budget, args.allow_unpriced)?;
    let (run_id, _lock) = record_run(ctx, &mut store, &def, budget)?;
    ctx.msg.note(&format!(
        "run {run_id}: {} cases × {samples} samples ({require} must pass), {} at a time, {}",
        def.cases.len(),
        concurrency,
        providers.main.id()
    ));
    let todo: Vec<(usize, u32)> = (0..def.cases.len()).flat_map(|c| (0..samples).map(move |s| (c, s))).collect();
    let spec = SessionSpec {
        run_id: &run_id,
        def: &def,
        todo,
        attempts_before: Default::default(),
        budget: budget.map(|limit| Budget { limit, spent_before: Usd::ZERO }),
        concurrency: concurrency as usize,
        started,
    };
    let (end, store) = session::execute(ctx, store, spec, providers)?;
    let run = store.eval_run(&run_id)?.ok_or_else(|| CliError::state(format!("run {run_id} vanished")))?;
    let report = build_report(ctx, &store, &run, &prices)?;
    publish(ctx, &store, &report, &args.files)?;
    if end.stop == Some(crate::eval::runner::Stop::Interrupted) {
        return Ok(Exit::Interrupted);
    }
    Ok(exit_code(&report))
}

/// `evals/support.yaml`, or `support` for `evals/support.yaml` under the project root.
pub(super) fn find_suite(ctx: &Context, arg: &str) -> Result<PathBuf, CliError> {
    let direct = ctx.cwd().join(arg);
    if direct.is_file() {
        return Ok(direct);
    }
    for candidate in [format!("evals/{arg}.yaml"), format!("evals/{arg}.yml"), format!("evals/{arg}")] {
        let path = ctx.root().join(&candidate);
        if path.is_file() {
            return Ok(path);
        }
    }
    Err(CliError::input(format!("{arg}: file not found"))
        .with_hint("pass a suite file, or the name of one under evals/"))
}

fn check_n_of_k(samples: u32, require: u32) -> Result<(), CliError> {
    if samples == 0 {
        return Err(CliError::input("--samples must be at least 1"));
    }
    if require == 0 || require > samples {
        return Err(CliError::input(format!("require {require} must be between 1 and samples {samples}"))
            .with_hint("a case passes when at least N (--require) of its K (--samples) runs pass, so 1 ≤ N ≤ K"));
    }
    Ok(())
}

pub(super) fn parse_usd(text: &str) -> Result<Usd, CliError> {
    let usd =
        Usd::parse_decimal(text.trim_start_matches('$'), 0).map_err(|e| CliError::input(format!("--max-cost: {e}")))?;
    if usd <= Usd::ZERO {
        return Err(CliError::input("--max-cost must be a positive amount of US dollars"));
    }
    Ok(usd)
}

fn load_prompt(ctx: &Context, store: &crate::store::Store, suite: &Suite) -> Result<Prompt, CliError> {
    let located = |e: CliError| CliError { message: format!("{}: prompt: {}", suite.path, e.message), ..e };
    match &suite.prompt {
        PromptSpec::Ref { name, reference } => {
            let resolved = resolve(store, name, reference.as_deref()).map_err(located)?;
            prompt_from_stored(&resolved.version)
        }
        PromptSpec::Path(path) => {
            let relative = Path::new(&suite.path).parent().map(|dir| dir.join(path));
            let rel = match relative {
                Some(candidate) if !ctx.root().join(path).is_file() && ctx.cwd().join(&candidate).is_file() => {
                    crate::prompt::relative_to(ctx.root(), &ctx.cwd().join(candidate))
                }
                _ => path.clone(),
            };
            Ok(Prompt::load(ctx.root(), &rel)
                .map_err(|e| located(CliError::from(e)).with_hint("a prompt path is relative to the project root"))?)
        }
        PromptSpec::Inline(text) => {
            let (path, text) = if text.trim_start().starts_with("---") {
                let name = frontmatter_name(text).unwrap_or_else(|| suite.name.clone());
                (format!("{name}.prompt"), text.clone())
            } else {
                (format!("{}.prompt", suite.name), format!("---\n---\n{text}"))
            };
            Ok(Prompt::from_source(PromptSource { path, text, examples_path: None, examples_text: None })
                .map_err(|e| located(CliError::from(e)))?)
        }
    }
}

fn frontmatter_name(text: &str) -> Option<String> {
    text.lines()
        .skip(1)
        .take_while(|l| l.trim() != "---")
        .find_map(|l| l.strip_prefix("name:"))
        .map(|v| v.trim().trim_matches(['"', '\'']).to_string())
}

fn provider_settings(
    ctx: &Context,
    args: &RunArgs,
    suite: &Suite,
    prompt: &Prompt,
) -> Result<ProviderSettings, CliError> {
    let from_suite = suite.provider.clone();
    let id = match (&args.provider, &from_suite, prompt.model()) {
        (Some(id), _, _) => id.clone(),
        (None, Some(spec), _) => spec.id.clone(),
        (None, None, Some(model)) => model.to_string(),
        (None, None, None) => ctx.config()?.defaults.provider.ok_or_else(|| {
            CliError::input(format!("{}: no provider: the suite names none and neither does the prompt", suite.path))
                .with_hint("add `provider: openai:MODEL` to the suite, or pass --provider ID")
        })?,
    };
    let parsed: ProviderId = id.parse().map_err(|e| CliError::input(format!("provider: {e}")))?;
    let same_kind =
        from_suite.as_ref().and_then(|s| s.id.parse::<ProviderId>().ok()).is_some_and(|s| s.kind == parsed.kind);
    let spec = from_suite.filter(|_| same_kind || args.provider.is_none());
    Ok(ProviderSettings {
        id,
        base_url: args.base_url.clone().or_else(|| spec.as_ref().and_then(|s| s.base_url.clone())),
        api_key_env: spec.as_ref().and_then(|s| s.api_key_env.clone()),
        timeout_ms: suite.provider.as_ref().and_then(|s| s.timeout_ms),
        max_attempts: suite.provider.as_ref().and_then(|s| s.max_attempts),
        stream: suite.provider.as_ref().and_then(|s| s.stream).unwrap_or(true),
    })
}

/// Records the run (status `running`) before any request, holding its lock from before the record
/// exists (so `eval list` never sees it without a live process); picks another id on a collision.
fn record_run(
    ctx: &Context,
    store: &mut crate::store::Store,
    def: &RunDefinition,
    budget: Option<Usd>,
) -> Result<(String, RunLock), CliError> {
    let suite_json = serde_json::to_string(def).map_err(|e| CliError::input(format!("cannot store the suite: {e}")))?;
    let state = ctx.state_path().0;
    for _ in 0..16 {
        let run_id = new_run_id();
        let Some(lock) = RunLock::acquire(&state, &run_id).map_err(|e| {
            CliError::state(format!("cannot create the run's lock file next to {}: {e}", state.display()))
        })?
        else {
            continue;
        };
        let inserted = store.insert_eval_run(&NewEvalRun {
            run_id: &run_id,
            suite: &def.suite,
            suite_path: Some(&def.suite_path),
            suite_json: &suite_json,
            prompt_name: Some(&def.prompt.name),
            prompt_version: Some(&def.prompt.version),
            provider: &def.provider.id,
            base_url: def.provider.base_url.as_deref(),
            samples: def.samples,
            require: def.require,
            concurrency: def.concurrency,
            max_cost: budget,
            samples_total: def.samples_total(),
            regraded_from: None,
        })?;
        if inserted {
            return Ok((run_id, lock));
        }
    }
    Err(CliError::state("could not find a free run id"))
}

/// `r-YYYYMMDD-HHMMSS-xxxx` (UTC), sortable by start time.
pub(super) fn new_run_id() -> String {
    let now = jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::now());
    format!("r-{}-{:04x}", now.strftime("%Y%m%d-%H%M%S"), rand::random::<u16>())
}
