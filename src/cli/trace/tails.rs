//! `promptctl trace tails`: the streaming tail taxonomy from stream checkpoints.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::{SelectArgs, percent, thousands};
use crate::store::OpenMode;
use crate::trace::tails::{CALL_PARTS, Example, GroupTails, TailKind, TailReport, Thresholds, analyze};

/// Stream tails a span's duration hides: TTFT regressions, stalls, loops, truncations, aborts, slow tails
#[derive(Debug, Args)]
#[command(after_help = "\
From each streamed request's checkpoints (time and tokens of each chunk, and its text when kept):
  ttft_regression  TTFT above --ttft-factor × the model's p95 over the trailing --baseline-window,
                   or above --ttft-absolute-ms
  stall            a gap between chunks above --stall-ms, with its position in the stream
  loop             a run of repeated --loop-ngram-word n-grams covering --loop-min-words words, or
                   --loop-repeated-chunks identical chunks in a row
  truncated        the stream ended with neither a finish reason nor usage, or broke with an error
  aborted          the client cancelled
  slow_tail        tokens/s over the last quarter below --slow-tail-ratio × the first quarter's
`hidden by duration` counts stalls and TTFT regressions in requests whose duration was at or below
their model's p95: a latency dashboard would have shown nothing. Defaults are explained in
docs/traces.md.

Examples:
  promptctl trace tails
  promptctl trace tails --since 24h --model openai:gpt-4o-mini --stall-ms 1500
  promptctl trace tails --format json | jq '.examples[] | select(.event.kind == \"loop\")'")]
pub struct TailsArgs {
    #[command(flatten)]
    pub select: SelectArgs,

    /// A gap between two chunks longer than this is a stall
    #[arg(long, default_value_t = 2_000, value_name = "MS")]
    pub stall_ms: u64,

    /// TTFT above this multiple of the model's trailing p95 is a regression
    #[arg(long, default_value_t = 2.0, value_name = "X")]
    pub ttft_factor: f64,

    /// TTFT above this is a regression whatever the baseline
    #[arg(long, default_value_t = 10_000, value_name = "MS")]
    pub ttft_absolute_ms: u64,

    /// The trailing window of the TTFT baseline (e.g. 24h, 90m, 7d)
    #[arg(long, default_value = "24h", value_parser = parse_span, value_name = "SPAN")]
    pub baseline_window: i64,

    /// Fewer TTFTs than this in the window: only the absolute threshold applies
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub baseline_min_samples: usize,

    /// Words per n-gram in loop detection
    #[arg(long, default_value_t = 5, value_name = "N")]
    pub loop_ngram: usize,

    /// A repeated run must cover this many words to be a loop
    #[arg(long, default_value_t = 40, value_name = "N")]
    pub loop_min_words: usize,

    /// This many identical chunks in a row is a loop
    #[arg(long, default_value_t = 12, value_name = "N")]
    pub loop_repeated_chunks: usize,

    /// Last-quarter tokens/s below this fraction of the first quarter's is a slow tail
    #[arg(long, default_value_t = 0.25, value_name = "F")]
    pub slow_tail_ratio: f64,

    /// Worst examples listed per kind
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub examples: usize,
}

/// `24h`, `90m`, `7d` in ms.
fn parse_span(text: &str) -> Result<i64, String> {
    let unit = match text.chars().last() {
        Some('m') => 60_000,
        Some('h') => 3_600_000,
        Some('d') => 86_400_000,
        _ => return Err(format!("`{text}` is not a span: use 90m, 24h or 7d")),
    };
    match text[..text.len() - 1].parse::<i64>() {
        Ok(n) if n > 0 => Ok(n * unit),
        _ => Err(format!("`{text}` is not a span: use 90m, 24h or 7d")),
    }
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    #[serde(flatten)]
    report: &'a TailReport,
}

pub fn run(ctx: &mut Context, args: TailsArgs) -> CmdResult {
    let filter = args.select.filter()?;
    for (name, value) in [("--ttft-factor", args.ttft_factor), ("--slow-tail-ratio", args.slow_tail_ratio)] {
        if !(value.is_finite() && value > 0.0) {
            return Err(CliError::input(format!("{name} must be a positive number, got {value}")));
        }
    }
    let thresholds = Thresholds {
        stall_ms: args.stall_ms,
        ttft_factor: args.ttft_factor,
        ttft_absolute_ms: args.ttft_absolute_ms,
        baseline_window_ms: args.baseline_window,
        baseline_min_samples: args.baseline_min_samples,
        loop_ngram: args.loop_ngram.max(1),
        loop_min_words: args.loop_min_words,
        loop_repeated_chunks: args.loop_repeated_chunks.max(2),
        slow_tail_ratio: args.slow_tail_ratio,
        slow_tail_min_chunks: Thresholds::default().slow_tail_min_chunks,
    };
    let store = ctx.open_store(OpenMode::MustExist)?;
    let calls = store.calls(&filter, CALL_PARTS)?;
    let mut report = analyze(&calls, &thresholds, args.examples, |ids, visit| store.for_each_stream(ids, visit))?;
    let ids = store.call_ids(&report.example_ids())?;
    report.set_ids(&ids);
    if !ctx.out.is_human() {
        ctx.out.document(&Report { schema: "promptctl.trace-tails/v1", report: &report })?;
        return Ok(Exit::Ok);
    }
    if report.streams == 0 {
        ctx.msg.note(&format!("no streamed requests {}", args.select.describe()));
        return Ok(Exit::Ok);
    }
    print_human(ctx, &report)?;
    Ok(Exit::Ok)
}

fn describe(kind: TailKind, t: &Thresholds) -> String {
    match kind {
        TailKind::TtftRegression => format!(
            "TTFT > {}× trailing p95 ({} h) or > {} ms",
            t.ttft_factor,
            t.baseline_window_ms / 3_600_000,
            t.ttft_absolute_ms
        ),
        TailKind::Stall => format!("a gap between chunks > {} ms", t.stall_ms),
        TailKind::Loop => {
            format!("≥ {} repeated words or {} identical chunks", t.loop_min_words, t.loop_repeated_chunks)
        }
        TailKind::Truncated => "ended without finish reason or usage, or broke mid-stream".into(),
        TailKind::Aborted => "cancelled by the client".into(),
        TailKind::SlowTail => format!("last-quarter tokens/s < {}× the first quarter's", t.slow_tail_ratio),
    }
}

fn print_human(ctx: &mut Context, r: &TailReport) -> std::io::Result<()> {
    let headline = format!(
        "{} streamed requests analysed — {} with tail events ({})",
        thousands(r.streams),
        thousands(r.with_tails),
        percent(r.with_tails as f64 / r.streams.max(1) as f64)
    );
    ctx.out.line(&ctx.out.paint(Style::Bold, &headline))?;
    if r.without_checkpoints > 0 || r.without_text > 0 {
        ctx.out.line(&format!(
            "{} without checkpoints (only TTFT, truncation and aborts judged), {} without chunk text (loops not judged)",
            thousands(r.without_checkpoints),
            thousands(r.without_text)
        ))?;
    }
    if !r.truncation_not_judged.is_empty() {
        ctx.out.line(&format!(
            "truncation not judged for {} (their streams never carry a finish reason or usage)",
            r.truncation_not_judged.join(", ")
        ))?;
    }
    ctx.out.line("")?;
    let mut t = table(&["KIND", "REQUESTS", "RATE", "WHEN"], ctx.out.color);
    for kind in TailKind::ALL {
        let n = r.counts.get(kind);
        t.add_row([
            kind.name().to_string(),
            thousands(n),
            percent(n as f64 / r.streams.max(1) as f64),
            describe(kind, &r.thresholds),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    let h = &r.hidden_by_duration;
    ctx.out.line("")?;
    let hidden = format!(
        "Hidden by duration: {} requests with a stall ({}) or a TTFT regression ({}) finished within their model's p95 duration",
        thousands(h.requests),
        thousands(h.stall),
        thousands(h.ttft_regression)
    );
    ctx.out.line(&ctx.out.paint(Style::Yellow, &hidden))?;
    for (title, groups) in [("MODEL", &r.by_model), ("PROMPT", &r.by_prompt)] {
        ctx.out.line("")?;
        ctx.out.line(&table_text(&group_table(ctx, title, groups)))?;
    }
    if !r.examples.is_empty() {
        ctx.out.line("")?;
        ctx.out.line(&ctx.out.paint(Style::Bold, "Worst examples"))?;
        ctx.out.line(&table_text(&examples_table(ctx, &r.examples)))?;
    }
    if !h.examples.is_empty() {
        ctx.out.line("")?;
        ctx.out.line(&ctx.out.paint(Style::Bold, "What the duration hid"))?;
        ctx.out.line(&table_text(&examples_table(ctx, &h.examples)))?;
    }
    Ok(())
}

fn group_table(ctx: &Context, title: &str, groups: &[GroupTails]) -> comfy_table::Table {
    let mut t =
        table(&[title, "STREAMS", "ANY", "TTFT", "STALL", "LOOP", "TRUNC.", "ABORTED", "SLOW TAIL"], ctx.out.color);
    for g in groups {
        let cell = |kind: TailKind| {
            let n = g.counts.get(kind);
            if n == 0 {
                "0".to_string()
            } else {
                format!("{} ({})", thousands(n), percent(n as f64 / g.streams.max(1) as f64))
            }
        };
        t.add_row([
            g.key.clone(),
            thousands(g.streams),
            percent(g.with_tails as f64 / g.streams.max(1) as f64),
            cell(TailKind::TtftRegression),
            cell(TailKind::Stall),
            cell(TailKind::Loop),
            cell(TailKind::Truncated),
            cell(TailKind::Aborted),
            cell(TailKind::SlowTail),
        ]);
    }
    t
}

fn examples_table(ctx: &Context, examples: &[Example]) -> comfy_table::Table {
    let mut t = table(&["KIND", "TRACE / SPAN", "MODEL", "DURATION (P95)", "DETAIL"], ctx.out.color);
    for e in examples {
        let ids = match (&e.trace_id, &e.span_id, &e.logical_request_id) {
            (Some(t), Some(s), _) => format!("{t}/{s}"),
            (Some(t), None, _) => t.clone(),
            (None, _, Some(logical)) => logical.clone(),
            _ => "—".into(),
        };
        let duration = match (e.latency_ms, e.model_latency_p95_ms) {
            (Some(l), Some(p)) => format!("{l} ms ({p:.0})"),
            (Some(l), None) => format!("{l} ms"),
            _ => "—".into(),
        };
        t.add_row([e.event.kind().name().to_string(), ids, e.model.clone(), duration, e.event.summary()]);
    }
    t
}
