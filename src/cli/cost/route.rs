//! `promptctl cost route`: re-price the history as if hard requests went to a reasoning model.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::super::trace::{SelectArgs, percent, thousands};
use super::usd;
use crate::cost::price_calls;
use crate::cost::route::{RateOverrides, RateSource, RouteConfig, RouteReport, Rule, simulate};
use crate::money::Usd;
use crate::prompt::Prompt;
use crate::store::OpenMode;
use crate::trace::records::CallParts;

/// Simulate routing hard requests to a reasoning model: all-in cost and failures vs workhorse-by-default
#[derive(Debug, Args)]
#[command(after_help = "\
A request is hard when it matches every --when-* flag given. Two scenarios over the same history:
  workhorse_by_default  everything as served; a share of the workhorse's failures on hard requests
                        (--escalation-rate) is answered again by the reasoning model, the rest fail
  routed                hard requests go straight to the reasoning model, re-priced with their own
                        input and cache hits and the reasoning model's reasoning tokens and retries
Rates are observed in the history where it has enough requests (--min-observations), else taken from
the flags; wrong answers are invisible in traces, so pass failure rates measured by your evals. The
report lists every assumption and the failure cost at which routing breaks even.

Examples:
  promptctl cost route --to openai:o4-mini --when-prompt support-reply --when-input-above 4000 \\
      --workhorse-failure-rate 0.12 --target-failure-rate 0.03 --failure-cost 4
  promptctl cost route --to openai:o3 --when-tag hard --reasoning-ratio 3 --target-attempts 1.05")]
pub struct RouteArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// The reasoning model hard requests are routed to (PROVIDER:MODEL)
    #[arg(long, value_name = "MODEL")]
    pub to: String,

    /// Hard: input (cached or not) above N tokens
    #[arg(long, value_name = "N")]
    pub when_input_above: Option<u64>,

    /// Hard: made with this prompt (repeatable)
    #[arg(long, value_name = "NAME")]
    pub when_prompt: Vec<String>,

    /// Hard: made with a prompt whose frontmatter has this tag (prompts/**/*.prompt)
    #[arg(long, value_name = "TAG")]
    pub when_tag: Option<String>,

    /// Hard: for this tenant
    #[arg(long, value_name = "TENANT")]
    pub when_tenant: Option<String>,

    /// Share of the workhorse's failures on hard requests re-run on the reasoning model
    #[arg(long, default_value_t = 0.5, value_name = "F")]
    pub escalation_rate: f64,

    /// What one failure that reaches a user costs, in USD (support time, refunds, churn)
    #[arg(long, default_value = "0", value_name = "USD")]
    pub failure_cost: String,

    /// Reasoning tokens per visible output token on the target [default: observed]
    #[arg(long, value_name = "R")]
    pub reasoning_ratio: Option<f64>,

    /// Attempts per request on the target [default: observed]
    #[arg(long, value_name = "N")]
    pub target_attempts: Option<f64>,

    /// Share of hard requests the workhorse fails [default: observed errors]
    #[arg(long, value_name = "F")]
    pub workhorse_failure_rate: Option<f64>,

    /// Share of requests the target fails [default: observed errors]
    #[arg(long, value_name = "F")]
    pub target_failure_rate: Option<f64>,

    /// Logical requests needed before an observed rate is used
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub min_observations: u64,
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a RouteReport,
}

fn share(name: &str, value: Option<f64>) -> Result<Option<f64>, CliError> {
    match value {
        Some(v) if !(0.0..=1.0).contains(&v) => {
            Err(CliError::input(format!("{name} must be between 0 and 1, got {v}")))
        }
        other => Ok(other),
    }
}

pub fn run(ctx: &mut Context, args: RouteArgs) -> CmdResult {
    let filter = args.select.filter()?;
    let mut rules = Vec::new();
    if let Some(n) = args.when_input_above {
        rules.push(Rule::InputTokensAbove(n));
    }
    if !args.when_prompt.is_empty() {
        rules.push(Rule::Prompts(args.when_prompt.clone()));
    }
    if let Some(tag) = &args.when_tag {
        rules.push(Rule::Prompts(prompts_tagged(ctx, tag)?));
    }
    if let Some(t) = &args.when_tenant {
        rules.push(Rule::Tenant(t.clone()));
    }
    if rules.is_empty() {
        return Err(CliError::input("say which requests are hard")
            .with_hint("use --when-input-above N, --when-prompt NAME, --when-tag TAG or --when-tenant T"));
    }
    let failure_cost = Usd::parse_decimal(&args.failure_cost, 0)
        .ok()
        .filter(|u| *u >= Usd::ZERO)
        .ok_or_else(|| CliError::input(format!("--failure-cost `{}` is not an amount in USD", args.failure_cost)))?;
    let config = RouteConfig {
        rules,
        target: args.to.clone(),
        escalation_rate: share("--escalation-rate", Some(args.escalation_rate))?.unwrap_or(0.5),
        failure_cost,
        overrides: RateOverrides {
            reasoning_ratio: args.reasoning_ratio,
            target_attempts: args.target_attempts,
            workhorse_failure_rate: share("--workhorse-failure-rate", args.workhorse_failure_rate)?,
            target_failure_rate: share("--target-failure-rate", args.target_failure_rate)?,
        },
        min_observations: args.min_observations,
    };
    let book = ctx.price_book()?;
    let store = ctx.open_store(OpenMode::MustExist)?;
    let calls = store.calls(&filter, CallParts::ALL)?;
    drop(store);
    let pricing = price_calls(&calls, &book);
    let report = simulate(&calls, &pricing, &book, &config).map_err(|e| CliError::input(e.to_string()))?;
    if !ctx.out.is_human() {
        ctx.out.document(&Document { schema: "promptctl.cost-route/v1", report: &report })?;
        return Ok(Exit::Ok);
    }
    print_human(ctx, &report)?;
    Ok(Exit::Ok)
}

/// Names of the prompts under prompts/ whose frontmatter carries `tag`.
fn prompts_tagged(ctx: &Context, tag: &str) -> Result<Vec<String>, CliError> {
    let dir = std::path::Path::new("prompts");
    let files = if ctx.root().join(dir).is_dir() { crate::prompt::discover(ctx.root(), dir)? } else { Vec::new() };
    let mut names = Vec::new();
    for file in files {
        let prompt = Prompt::load(ctx.root(), &file)?;
        if prompt.parsed.front.tags.iter().any(|t| t == tag) {
            names.push(prompt.name().to_string());
        }
    }
    if names.is_empty() {
        return Err(CliError::input(format!("no prompt under prompts/ has the tag `{tag}`"))
            .with_hint("tags are listed in a prompt's frontmatter: `tags: [hard]`"));
    }
    Ok(names)
}

fn print_human(ctx: &mut Context, r: &RouteReport) -> std::io::Result<()> {
    let headline = format!(
        "Routing {} ({} of {} requests, {}) to {}",
        r.rule,
        thousands(r.hard_requests),
        thousands(r.logical_requests),
        percent(r.hard_share),
        r.target
    );
    ctx.out.line(&ctx.out.paint(Style::Bold, &headline))?;
    let mut t = table(&["SCENARIO", "TOKEN COST", "ESCALATIONS", "FAILURES", "FAILURE COST", "ALL IN"], ctx.out.color);
    for s in [&r.workhorse_by_default, &r.routed] {
        t.add_row([
            s.name.replace('_', " "),
            usd(s.token_usd),
            format!("{:.1}", s.escalations),
            format!("{:.1}", s.expected_failures),
            usd(s.failure_usd),
            usd(s.all_in_usd),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    let verdict = if r.delta_usd < 0.0 {
        format!("routing saves {} all in", usd(-r.delta_usd))
    } else {
        format!("routing costs {} more all in", usd(r.delta_usd))
    };
    ctx.out.line(&ctx.out.paint(Style::Bold, &verdict))?;
    if let Some(be) = r.break_even_failure_usd {
        ctx.out.line(&format!("routing pays once a failure costs more than {}", usd(be)))?;
    }
    ctx.out.line("")?;
    ctx.out.line("Rates:")?;
    let rates = &r.rates;
    for (name, rate) in [
        ("reasoning tokens per output token", rates.reasoning_ratio),
        ("attempts per request on the target", rates.target_attempts),
        ("workhorse failure rate (hard)", rates.workhorse_failure_rate),
        ("target failure rate", rates.target_failure_rate),
    ] {
        let source = match rate.source {
            RateSource::Observed => format!("observed on {}", thousands(rate.observations)),
            RateSource::Configured => "configured".into(),
        };
        ctx.out.line(&format!("  {name}: {:.3} ({source})", rate.value))?;
    }
    ctx.out.line("Assumptions:")?;
    for a in &r.assumptions {
        ctx.out.line(&format!("  - {a}"))?;
    }
    Ok(())
}
