//! `promptctl trace stats`: counts, tokens, latency and TTFT percentiles by model, prompt and day.

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::{SelectArgs, ms, percent, thousands};
use crate::store::OpenMode;
use crate::trace::records::CallParts;
use crate::trace::stats::{GroupStats, TraceStats, compute};

/// Counts, tokens by class, latency and TTFT percentiles by model, prompt version and day
#[derive(Debug, Args)]
#[command(after_help = "\
Percentiles interpolate linearly between ranks (numpy's default). `requests` counts every attempt;
`logical` counts a retried request once. `estimated` is the share of rows whose tokens were counted
client-side, `missing` the share with no counts at all (cut streams, failed calls).

Examples:
  promptctl trace stats
  promptctl trace stats --since 7d --by model
  promptctl trace stats --model openai:gpt-4o-mini --format json | jq '.by_day'")]
pub struct StatsArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// Which breakdowns to print (human output; JSON always has all three)
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [By::Model, By::Prompt, By::Day], value_name = "BY")]
    pub by: Vec<By>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum By {
    Model,
    Prompt,
    Day,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    #[serde(flatten)]
    stats: &'a TraceStats,
}

pub fn run(ctx: &mut Context, args: StatsArgs) -> CmdResult {
    let filter = args.select.filter()?;
    let store = ctx.open_store(OpenMode::MustExist)?;
    let calls = store.calls(&filter, CallParts::ALL)?;
    let stats = compute(&calls);
    if !ctx.out.is_human() {
        ctx.out.document(&Report { schema: "promptctl.trace-stats/v1", stats: &stats })?;
        return Ok(Exit::Ok);
    }
    if stats.overall.requests == 0 {
        ctx.msg
            .note(&format!("no requests {}; import traces with `promptctl trace import FILE`", args.select.describe()));
        return Ok(Exit::Ok);
    }
    let o = &stats.overall;
    let headline = format!(
        "{} requests ({} logical, {} conversations) from {} to {}",
        thousands(o.requests),
        thousands(o.logical_requests),
        thousands(stats.conversations),
        stats.first.as_deref().unwrap_or("?"),
        stats.last.as_deref().unwrap_or("?")
    );
    ctx.out.line(&ctx.out.paint(Style::Bold, &headline))?;
    let t = &o.tokens;
    ctx.out.line(&format!(
        "tokens: input {} (uncached {}, cache read {}, cache write {}), output {} (reasoning {})",
        thousands(t.input_total),
        thousands(t.input_uncached),
        thousands(t.cache_read),
        thousands(t.cache_write_5m + t.cache_write_1h),
        thousands(t.output_total),
        thousands(t.reasoning)
    ))?;
    ctx.out.line(&format!(
        "usage: {} estimated, {} missing · retried attempts: {} · status: {} ok, {} error, {} timeout, {} aborted",
        percent(o.estimated_share),
        percent(o.missing_share),
        percent(o.retried_share),
        thousands(o.status.ok),
        thousands(o.status.error),
        thousands(o.status.timeout),
        thousands(o.status.aborted)
    ))?;
    for by in &args.by {
        let (title, groups) = match by {
            By::Model => ("MODEL", &stats.by_model),
            By::Prompt => ("PROMPT", &stats.by_prompt),
            By::Day => ("DAY (UTC)", &stats.by_day),
        };
        ctx.out.line("")?;
        ctx.out.line(&table_text(&group_table(ctx, title, groups)))?;
    }
    Ok(Exit::Ok)
}

fn group_table(ctx: &Context, title: &str, groups: &[GroupStats]) -> comfy_table::Table {
    let mut t = table(
        &[
            title,
            "REQUESTS",
            "LOGICAL",
            "INPUT",
            "CACHED",
            "OUTPUT",
            "REASONING",
            "LAT P50",
            "P90",
            "P99",
            "MAX",
            "TTFT P50",
            "P90",
            "P99",
            "EST.",
            "MISSING",
            "RETRIED",
        ],
        ctx.out.color,
    );
    for g in groups {
        t.add_row([
            g.key.clone(),
            thousands(g.requests),
            thousands(g.logical_requests),
            thousands(g.tokens.input_total),
            thousands(g.tokens.cache_read),
            thousands(g.tokens.output_total),
            thousands(g.tokens.reasoning),
            ms(g.latency_ms.p50),
            ms(g.latency_ms.p90),
            ms(g.latency_ms.p99),
            ms(g.latency_ms.max),
            ms(g.ttft_ms.p50),
            ms(g.ttft_ms.p90),
            ms(g.ttft_ms.p99),
            percent(g.estimated_share),
            percent(g.missing_share),
            percent(g.retried_share),
        ]);
    }
    t
}
