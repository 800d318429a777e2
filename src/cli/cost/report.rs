//! `promptctl cost report`: every request priced; the distribution, conversations, retries, plots.

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::super::trace::{SelectArgs, percent, thousands};
use super::usd;
use crate::cost::{CostReport, GroupBy, call_parts, plot, price_calls, report};
use crate::store::OpenMode;

/// Per-request and per-conversation cost distributions, all-in (retries and failures included)
#[derive(Debug, Args)]
#[command(after_help = "\
Every stored request is priced with the effective-dated price book on its own UTC day, at the snapshot
that served it, with its cache reads and writes, reasoning tokens, service tier and long-context rates.
Failed and retried attempts count: the provider bills what they used. A request whose model or tier has
no price, or which has no token counts, is reported apart — never as $0.

The naive figure is what a per-token view of the median request predicts: median request cost ×
logical requests. Conversations: turns are the logical requests made for a conversation; the curve
fits cost ≈ a × turnsᵇ by least squares on logs (b > 1: cost grows faster than turns).

Examples:
  promptctl cost report
  promptctl cost report --by prompt --since 7d
  promptctl cost report --by conversation --top 20 --svg cost.svg
  promptctl cost report --format json | jq '.conversations.fit'")]
pub struct ReportArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// How to break the total down
    #[arg(long, value_enum, default_value_t = ByArg::Model, value_name = "BY")]
    pub by: ByArg,

    /// With --by conversation: list the N most expensive
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub top: usize,

    /// Write the conversation cost curve and the cost histogram to this SVG file
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ByArg {
    Model,
    Prompt,
    Conversation,
    Tenant,
}

impl From<ByArg> for GroupBy {
    fn from(b: ByArg) -> GroupBy {
        match b {
            ByArg::Model => GroupBy::Model,
            ByArg::Prompt => GroupBy::Prompt,
            ByArg::Conversation => GroupBy::Conversation,
            ByArg::Tenant => GroupBy::Tenant,
        }
    }
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    svg: Option<String>,
    #[serde(flatten)]
    report: &'a CostReport,
}

pub fn run(ctx: &mut Context, args: ReportArgs) -> CmdResult {
    let filter = args.select.filter()?;
    let book = ctx.price_book()?;
    let store = ctx.open_store(OpenMode::MustExist)?;
    let by = GroupBy::from(args.by);
    let calls = store.calls(&filter, call_parts(by))?;
    drop(store);
    let pricing = price_calls(&calls, &book);
    let report = report(&calls, &pricing, by, args.top);
    let svg = match &args.svg {
        Some(path) => {
            let target = ctx.cwd().join(path);
            std::fs::write(&target, plot::svg(&report))
                .map_err(|e| CliError::input(format!("{}: cannot write: {e}", path.display())))?;
            Some(ctx.display_path(&target))
        }
        None => None,
    };
    if !ctx.out.is_human() {
        ctx.out.document(&Document { schema: "promptctl.cost-report/v1", svg, report: &report })?;
        return Ok(Exit::Ok);
    }
    if report.requests == 0 {
        ctx.msg
            .note(&format!("no requests {}; import traces with `promptctl trace import FILE`", args.select.describe()));
        return Ok(Exit::Ok);
    }
    print_human(ctx, &report)?;
    if let Some(svg) = svg {
        ctx.msg.note(&format!("wrote the conversation cost curve and the cost histogram to {svg}"));
    }
    Ok(Exit::Ok)
}

fn opt_usd(v: Option<f64>) -> String {
    v.map_or("—".into(), usd)
}

fn print_human(ctx: &mut Context, r: &CostReport) -> std::io::Result<()> {
    let headline =
        format!("{} all in over {} requests ({} priced)", usd(r.total_usd), thousands(r.requests), thousands(r.priced));
    ctx.out.line(&ctx.out.paint(Style::Bold, &headline))?;
    let n = &r.naive;
    if let Some(ratio) = n.ratio {
        ctx.out.line(&format!(
            "median request {} × {} logical requests = {} naive; the distribution costs {:.2}× that",
            usd(n.median_request_usd),
            thousands(n.logical_requests),
            usd(n.naive_usd),
            ratio
        ))?;
    }
    let p = &r.per_request;
    ctx.out.line(&format!(
        "per request: mean {} · p50 {} · p90 {} · p95 {} · p99 {} · max {}",
        opt_usd(p.mean),
        opt_usd(p.p50),
        opt_usd(p.p90),
        opt_usd(p.p95),
        opt_usd(p.p99),
        opt_usd(p.max)
    ))?;
    let a = &r.attempts;
    ctx.out.line(&format!(
        "retries: {} attempts for {} logical requests ({:.3} each, {:.3} billed); retried attempts cost {}, failed attempts {}",
        thousands(a.attempts),
        thousands(a.logical_requests),
        a.attempts_per_request,
        a.retry_amplification,
        usd(a.retried_attempts_usd),
        usd(a.failed_attempts_usd)
    ))?;
    let w = &r.without_usage;
    if w.rows > 0 {
        ctx.out.line(&format!(
            "not priced, no token counts: {} row(s) ({} error, {} timeout, {} aborted, {} ok but cut)",
            thousands(w.rows),
            thousands(w.error),
            thousands(w.timeout),
            thousands(w.aborted),
            thousands(w.ok)
        ))?;
    }
    for u in &r.unpriced {
        let line = format!("not priced, unknown cost: {} row(s) of {} — {}", thousands(u.rows), u.model, u.reason);
        ctx.out.line(&ctx.out.paint(Style::Yellow, &line))?;
    }
    let c = &r.conversations;
    if c.conversations > 0 {
        ctx.out.line("")?;
        ctx.out.line(&ctx.out.paint(Style::Bold, &format!("{} conversations", thousands(c.conversations))))?;
        ctx.out.line(&format!(
            "per conversation: p50 {} · p90 {} · p99 {} · max {} · top 1% = {} of spend, top 5% = {}",
            opt_usd(c.cost.p50),
            opt_usd(c.cost.p90),
            opt_usd(c.cost.p99),
            opt_usd(c.cost.max),
            percent(c.top_1pct_share),
            percent(c.top_5pct_share)
        ))?;
        match (&c.fit, &c.fit_error) {
            (Some(f), _) => {
                let shape = if f.exponent_ci95[0] > 1.0 {
                    "super-linear: later turns cost more"
                } else if f.exponent_ci95[1] < 1.0 {
                    "sub-linear"
                } else {
                    "not distinguishable from linear"
                };
                ctx.out.line(&format!(
                    "cost ≈ {} × turns^{:.2} (95% CI {:.2}–{:.2}, R² {:.2}, n = {}): {shape}",
                    usd(f.scale_usd),
                    f.exponent,
                    f.exponent_ci95[0],
                    f.exponent_ci95[1],
                    f.r_squared,
                    thousands(f.n)
                ))?;
            }
            (None, Some(e)) => ctx.out.line(&format!("no cost curve: {e}"))?,
            _ => {}
        }
        let mut t = table(&["TURNS", "CONVERSATIONS", "MEAN", "MEDIAN", "PER TURN"], ctx.out.color);
        for b in &c.curve {
            let turns = if b.turns_from == b.turns_to {
                b.turns_from.to_string()
            } else {
                format!("{}–{}", b.turns_from, b.turns_to)
            };
            t.add_row([
                turns,
                thousands(b.conversations),
                usd(b.mean_usd),
                usd(b.median_usd),
                usd(b.mean_usd_per_turn),
            ]);
        }
        ctx.out.line(&table_text(&t))?;
    }
    ctx.out.line("")?;
    let key = match r.by {
        GroupBy::Model => "MODEL",
        GroupBy::Prompt => "PROMPT",
        GroupBy::Conversation => "CONVERSATION",
        GroupBy::Tenant => "TENANT",
    };
    let mut t = table(&[key, "REQUESTS", "UNPRICED", "COST", "SHARE", "P50", "P99", "MAX"], ctx.out.color);
    for g in &r.groups {
        t.add_row([
            g.key.clone(),
            thousands(g.requests),
            thousands(g.unpriced),
            // A group with nothing priced has an unknown cost, which is not $0.
            if g.priced == 0 { "unknown".into() } else { usd(g.usd) },
            if g.priced == 0 { "—".into() } else { percent(g.share) },
            opt_usd(g.cost.p50),
            opt_usd(g.cost.p99),
            opt_usd(g.cost.max),
        ]);
    }
    ctx.out.line(&table_text(&t))
}
