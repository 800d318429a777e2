//! `promptctl reconcile`: explain the month's gap between the invoice and the traces, cause by cause.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::Serialize;

use super::context::Context;
use super::error::{CliError, CmdResult, Exit};
use super::output::{Style, table, table_text};
use crate::diag::read_text_file;
use crate::reconcile::render::{dollars, largest_cause, percent_of, signed_dollars, thousands, usd_fine};
use crate::reconcile::report::{CauseKind, Reconciliation, cents, dollars as json_dollars};
use crate::reconcile::{self, Invoice, InvoiceError, Window, invoice};
use crate::store::OpenMode;
use crate::trace::import::{self, ImportOptions, OpenError, Record, Seen, SeenKeys, SkipReason};
use crate::trace::model::RequestRow;
use crate::trace::records::RequestFilter;

/// Explain the gap between the invoice and the traces, cause by cause
#[derive(Debug, Args)]
#[command(after_help = "\
Invoice files are detected by content: OpenAI Usage API (completions) and Costs API pages,
Anthropic usage and cost reports (one page per file, a JSON array of pages, or pages one per
line), and the dashboard CSV exports of both. A directory stands for the invoice files in it.

Trace files (--traces) are read with the importers of `promptctl trace import`: OTLP/JSON,
promptctl JSONL and Langfuse observation exports, gzipped or not, the kind detected by content.
They are read on the fly and not stored; records that cannot be read are skipped and counted on
stderr. Without --traces, the request rows already in the state (imported traces and eval runs)
are read; the state must exist.

The gap (invoice − traces, where traces are valued as a tracing dashboard shows them) is
explained by eight causes in a fixed order, each the change its correction makes: non-token fees,
untraced calls, cache accounting, reasoning tokens, price book, tiers and modifiers, token
estimation, and what is left (unexplained). Exit 1 when |unexplained| is more than --tolerance
percent of |gap|.

Examples:
  promptctl reconcile --invoice invoices/2026-10/ --traces traces.jsonl --month 2026-10
  promptctl reconcile --invoice invoices/2026-10/ --traces otel-export.json.gz --month 2026-10
  promptctl reconcile --invoice usage.csv costs.csv --month 2026-10 --format json  # from the state
  promptctl reconcile --invoice invoices/ --traces t.jsonl --since 2026-10-01 --until 2026-10-15 \\
      --markdown reconcile.md --svg reconcile.svg --tolerance 2")]
pub struct ReconcileArgs {
    /// Invoice files or directories (API JSON pages or dashboard CSV exports)
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub invoice: Vec<PathBuf>,

    /// Trace exports to read on the fly: OTLP/JSON, promptctl JSONL or Langfuse, gzip or not, detected by
    /// content [default: the rows already in the state]
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub traces: Vec<PathBuf>,

    /// With --traces: the zone of trace times written without a UTC offset (IANA name, UTC, or +02:00);
    /// without it such records are skipped and reported, as in `trace import`
    #[arg(long, value_name = "ZONE", requires = "traces")]
    pub assume_tz: Option<String>,

    /// The calendar month to reconcile, in UTC
    #[arg(long, value_name = "YYYY-MM", conflicts_with_all = ["since", "until"], required_unless_present_all = ["since", "until"])]
    pub month: Option<String>,

    /// Start of the window (RFC 3339 with offset, or a date = UTC midnight)
    #[arg(long, value_name = "T", requires = "until")]
    pub since: Option<String>,

    /// End of the window, exclusive
    #[arg(long, value_name = "T", requires = "since")]
    pub until: Option<String>,

    /// Exit 1 when the unexplained share of the gap exceeds this many percent
    #[arg(long, value_name = "PCT", default_value = "5", value_parser = parse_tolerance)]
    pub tolerance: f64,

    /// Also write the monthly write-up as Markdown to FILE
    #[arg(long, value_name = "FILE")]
    pub markdown: Option<PathBuf>,

    /// Also write the waterfall chart as SVG to FILE
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
}

/// `5`, `5%`, `2.5` → a fraction (0.05).
fn parse_tolerance(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%').trim();
    match number.parse::<f64>() {
        Ok(p) if p.is_finite() && p >= 0.0 => Ok(p / 100.0),
        _ => Err(format!("`{text}` is not a percentage (write 5 or 5%)")),
    }
}

pub fn run(ctx: &mut Context, args: ReconcileArgs) -> CmdResult {
    let window = window(&args)?;
    let invoice = read_invoice(ctx, &args.invoice, &window)?;
    let book = ctx.price_book()?;
    let result = if args.traces.is_empty() {
        reconcile_with_state(ctx, &book, &invoice, window)?
    } else {
        let options = ImportOptions {
            assume_tz: args
                .assume_tz
                .as_deref()
                .map(import::parse_zone)
                .transpose()
                .map_err(|e| CliError::input(format!("--assume-tz: {e}")))?,
        };
        reconcile_with_files(ctx, &book, &invoice, window, &args.traces, &options)?
    };
    for note in &result.notes {
        ctx.msg.note(&format!("note: {note}"));
    }
    write_documents(ctx, &args, &result)?;
    if ctx.out.is_human() {
        print_human(ctx, &result, args.tolerance)?;
    } else {
        ctx.out.document(&Document::of(&result, args.tolerance))?;
    }
    Ok(if result.unexplained_share() > args.tolerance { Exit::CheckFailed } else { Exit::Ok })
}

fn window(args: &ReconcileArgs) -> Result<Window, CliError> {
    let window = match (&args.month, &args.since, &args.until) {
        (Some(month), _, _) => Window::month(month),
        (None, Some(since), Some(until)) => Window::between(since, until),
        _ => return Err(CliError::input("give the window: --month YYYY-MM, or --since T --until T")),
    };
    window.map_err(|e| CliError::input(e.to_string()))
}

/// Reads the invoice files (directories expanded), checks they belong together, keeps the window.
fn read_invoice(ctx: &Context, paths: &[PathBuf], window: &Window) -> Result<Invoice, CliError> {
    let mut files = Vec::new();
    for path in expand(ctx, paths)? {
        let shown = ctx.display_path(&path);
        let text = read_text_file(&path, &shown)?;
        files.push(invoice::read(&text, &shown, files.len())?);
    }
    invoice::combine(files, window).map_err(invoice_error)
}

fn invoice_error(e: InvoiceError) -> CliError {
    let hint = e.hint();
    let error = CliError::input(e.to_string());
    match hint {
        Some(h) => error.with_hint(h),
        None => error,
    }
}

/// Files as given; a directory stands for its `.json`, `.jsonl` and `.csv` files, in name order.
fn expand(ctx: &Context, paths: &[PathBuf]) -> Result<Vec<PathBuf>, CliError> {
    let mut out = Vec::new();
    for path in paths {
        let path = ctx.cwd().join(path);
        if !path.is_dir() {
            out.push(path);
            continue;
        }
        let mut inside: Vec<PathBuf> = std::fs::read_dir(&path)
            .map_err(|e| CliError::input(format!("{}: cannot read the directory: {e}", ctx.display_path(&path))))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.is_file() && is_invoice_file(p))
            .collect();
        inside.sort();
        if inside.is_empty() {
            return Err(CliError::input(format!(
                "{}: no .json, .jsonl or .csv files in the directory",
                ctx.display_path(&path)
            )));
        }
        out.extend(inside);
    }
    Ok(out)
}

fn is_invoice_file(path: &Path) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    matches!(ext.as_str(), "json" | "jsonl" | "csv")
}

fn reconcile_with_state(
    ctx: &Context,
    book: &crate::pricing::PriceBook,
    invoice: &Invoice,
    window: Window,
) -> Result<Reconciliation, CliError> {
    let store = ctx.open_store(OpenMode::MustExist).map_err(|e| {
        e.with_hint("pass the traces with --traces FILE…, or import them first with `promptctl trace import`")
    })?;
    let filter = RequestFilter { since: Some(window.start), until: Some(window.end), ..RequestFilter::default() };
    let mut read = 0;
    let result = reconcile::reconcile_fed(book, invoice, window, |add| -> Result<(), CliError> {
        read = store.for_each_request_by_time(&filter, add)?;
        Ok(())
    })?;
    if read == 0 {
        ctx.msg.warn("the state holds no traced requests in the window; pass --traces FILE… to read exports");
    }
    Ok(result)
}

fn reconcile_with_files(
    ctx: &Context,
    book: &crate::pricing::PriceBook,
    invoice: &Invoice,
    window: Window,
    paths: &[PathBuf],
    options: &ImportOptions,
) -> Result<Reconciliation, CliError> {
    // Open (and detect) every file first: a typo in the last path should not wait for the others to be read.
    let mut exports = Vec::with_capacity(paths.len());
    for path in paths {
        if let Some(export) = open_export(ctx, path)? {
            exports.push(export);
        }
    }
    let mut report = ReadReport::default();
    let result =
        reconcile::reconcile_fed(book, invoice, window, |add| read_exports(exports, options, add, &mut report))?;
    for (shown, reason, n) in &report.skipped {
        ctx.msg.note(&format!("note: {shown}: skipped {} {}", thousands(*n), reason.describe()));
    }
    if report.duplicates > 0 {
        ctx.msg.note(&format!(
            "note: {} request(s) were read twice (the same span in overlapping exports) and counted once",
            thousands(report.duplicates)
        ));
    }
    if report.conflicts > 0 {
        ctx.msg.warn(&format!(
            "{} request(s) appear again with other content; the first one read is counted: {}",
            thousands(report.conflicts),
            report.first_conflicts.join("; ")
        ));
    }
    if report.errors > 0 {
        let shown = report.first_errors.join("; ");
        let (records, were) = if report.errors == 1 { ("record", "was") } else { ("records", "were") };
        ctx.msg.warn(&format!(
            "{} trace {records} could not be read and {were} skipped: {shown}",
            thousands(report.errors)
        ));
    }
    Ok(result)
}

impl From<reconcile::ReconcileError> for CliError {
    fn from(e: reconcile::ReconcileError) -> Self {
        CliError::input(e.to_string()).with_hint(e.hint())
    }
}

fn write_documents(ctx: &Context, args: &ReconcileArgs, result: &Reconciliation) -> Result<(), CliError> {
    let svg_link = match (&args.svg, &args.markdown) {
        (Some(svg), Some(md)) => Some(relative_link(&ctx.cwd().join(svg), &ctx.cwd().join(md))),
        _ => None,
    };
    if let Some(path) = &args.svg {
        write_file(ctx, path, &reconcile::render::svg(result))?;
    }
    if let Some(path) = &args.markdown {
        write_file(ctx, path, &reconcile::render::markdown(result, args.tolerance, svg_link.as_deref()))?;
    }
    Ok(())
}

/// The chart's path as seen from the Markdown file's directory (its file name when they share one).
fn relative_link(svg: &Path, markdown: &Path) -> String {
    match (svg.parent(), markdown.parent()) {
        (Some(a), Some(b)) if a == b => svg.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        _ => svg.to_string_lossy().into_owned(),
    }
}

fn write_file(ctx: &Context, path: &Path, text: &str) -> Result<(), CliError> {
    let full = ctx.cwd().join(path);
    std::fs::write(&full, text)
        .map_err(|e| CliError::input(format!("cannot write {}: {e}", ctx.display_path(&full))))?;
    ctx.msg.note(&format!("wrote {}", ctx.display_path(&full)));
    Ok(())
}

// ---- JSON: promptctl.reconcile/v1 ---------------------------------------------------------------------

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    window: WindowJson,
    invoice: SideJson,
    traces: SideJson,
    gap_usd: f64,
    causes: Vec<CauseJson<'a>>,
    by_model: Vec<ModelJson<'a>>,
    /// |unexplained| ÷ |gap|.
    unexplained_share: f64,
    tolerance: f64,
    passed: bool,
    providers: Vec<ProviderJson>,
    estimation_fits: Vec<FitJson<'a>>,
    conversations: Option<ConversationsJson<'a>>,
    notes: &'a [String],
}

#[derive(Serialize)]
struct WindowJson {
    start: String,
    end: String,
}

#[derive(Serialize)]
struct SideJson {
    usd: f64,
    input_tokens: u64,
    output_tokens: u64,
    cache_read_tokens: u64,
    cache_write_tokens: u64,
    requests: u64,
}

#[derive(Serialize)]
struct CauseJson<'a> {
    cause: &'static str,
    usd: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    requests: Option<i64>,
    evidence: &'a [String],
}

#[derive(Serialize)]
struct ModelJson<'a> {
    provider: &'static str,
    model: &'a str,
    invoice_usd: f64,
    traces_usd: f64,
    gap_usd: f64,
    /// The model's share of causes 2–8; they sum to its gap.
    causes: serde_json::Map<String, serde_json::Value>,
}

#[derive(Serialize)]
struct ProviderJson {
    provider: &'static str,
    invoice_usd: f64,
    traces_usd: f64,
    cost_lines: bool,
    requests_reported: bool,
    projects_compared: bool,
    billed_attempts: u64,
    logical_requests: u64,
    retry_amplification: Option<f64>,
}

#[derive(Serialize)]
struct FitJson<'a> {
    provider: &'static str,
    model: &'a str,
    a: f64,
    tokenizer_skew: f64,
    overhead_tokens_per_request: f64,
    /// Standard errors of the skew and the overhead.
    tokenizer_skew_se: f64,
    overhead_se: f64,
    r_squared: f64,
    days: usize,
}

#[derive(Serialize)]
struct ConversationsJson<'a> {
    conversations: u64,
    requests: u64,
    median_request_usd: f64,
    naive_usd: f64,
    actual_usd: f64,
    exponent: Option<f64>,
    r_squared: Option<f64>,
    p50_usd: f64,
    p95_usd: f64,
    p99_usd: f64,
    top_decile_share: f64,
    curves: Vec<CurveJson>,
    by_turns: Vec<TurnJson<'a>>,
}

#[derive(Serialize)]
struct CurveJson {
    provider: &'static str,
    conversations: u64,
    exponent: Option<f64>,
    r_squared: Option<f64>,
}

#[derive(Serialize)]
struct TurnJson<'a> {
    turns: &'a str,
    conversations: u64,
    mean_usd: f64,
    median_usd: f64,
}

impl<'a> Document<'a> {
    fn of(r: &'a Reconciliation, tolerance: f64) -> Document<'a> {
        let rounded = r.rounded();
        let side = |s: &reconcile::report::Side, cents: i64| SideJson {
            usd: json_dollars(cents),
            input_tokens: s.input_tokens,
            output_tokens: s.output_tokens,
            cache_read_tokens: s.cache_read_tokens,
            cache_write_tokens: s.cache_write_tokens,
            requests: s.requests,
        };
        let share = r.unexplained_share();
        Document {
            schema: "promptctl.reconcile/v1",
            window: WindowJson { start: r.window.start.to_string(), end: r.window.end.to_string() },
            invoice: side(&r.invoice, rounded.invoice),
            traces: side(&r.traces, rounded.traces),
            gap_usd: json_dollars(rounded.gap),
            causes: r
                .causes
                .iter()
                .zip(&rounded.causes)
                .map(|(c, cents)| CauseJson {
                    cause: c.kind.name(),
                    usd: json_dollars(*cents),
                    requests: c.requests,
                    evidence: &c.evidence,
                })
                .collect(),
            by_model: r
                .by_model
                .iter()
                .zip(&rounded.by_model)
                .map(|(m, cents)| ModelJson {
                    provider: m.provider.id(),
                    model: &m.model,
                    invoice_usd: json_dollars(cents.invoice),
                    traces_usd: json_dollars(cents.traces),
                    gap_usd: json_dollars(cents.gap),
                    causes: CauseKind::ALL[1..]
                        .iter()
                        .zip(&cents.causes[1..])
                        .map(|(k, c)| (k.name().to_string(), serde_json::json!(json_dollars(*c))))
                        .collect(),
                })
                .collect(),
            unexplained_share: if share.is_finite() { share } else { 1.0 },
            tolerance,
            passed: share <= tolerance,
            providers: r.providers.iter().map(provider_json).collect(),
            estimation_fits: r
                .fits
                .iter()
                .map(|f| FitJson {
                    provider: f.provider.id(),
                    model: &f.model,
                    a: f.fit.a,
                    tokenizer_skew: f.fit.a - 1.0,
                    overhead_tokens_per_request: f.fit.b,
                    tokenizer_skew_se: f.fit.se_a,
                    overhead_se: f.fit.se_b,
                    r_squared: f.fit.r_squared,
                    days: f.fit.points,
                })
                .collect(),
            conversations: r.conversations.as_ref().map(|c| ConversationsJson {
                conversations: c.conversations,
                requests: c.requests,
                median_request_usd: c.median_request.round_to(6),
                naive_usd: c.naive_usd.round_to(2),
                actual_usd: c.actual_usd.round_to(2),
                exponent: c.exponent,
                r_squared: c.r_squared,
                p50_usd: c.p50.round_to(6),
                p95_usd: c.p95.round_to(6),
                p99_usd: c.p99.round_to(6),
                top_decile_share: c.top_decile_share,
                curves: c
                    .curves
                    .iter()
                    .map(|k| CurveJson {
                        provider: k.provider.id(),
                        conversations: k.conversations,
                        exponent: k.exponent,
                        r_squared: k.r_squared,
                    })
                    .collect(),
                by_turns: c
                    .by_turns
                    .iter()
                    .map(|b| TurnJson {
                        turns: &b.turns,
                        conversations: b.conversations,
                        mean_usd: b.mean_usd.round_to(6),
                        median_usd: b.median_usd.round_to(6),
                    })
                    .collect(),
            }),
            notes: &r.notes,
        }
    }
}

fn provider_json(p: &reconcile::report::ProviderSummary) -> ProviderJson {
    ProviderJson {
        provider: p.provider.id(),
        invoice_usd: p.invoice.to_cents_f64(),
        traces_usd: p.traces.to_cents_f64(),
        cost_lines: p.cost_lines,
        requests_reported: p.requests_reported,
        projects_compared: p.projects_compared,
        billed_attempts: p.billed_attempts,
        logical_requests: p.logical_requests,
        retry_amplification: (p.logical_requests > 0).then(|| p.billed_attempts as f64 / p.logical_requests as f64),
    }
}

// ---- Human output -------------------------------------------------------------------------------------

fn print_human(ctx: &mut Context, r: &Reconciliation, tolerance: f64) -> Result<(), CliError> {
    let rounded = r.rounded();
    let color = ctx.out.color;
    let mut text = String::new();
    text += &ctx.out.paint(Style::Bold, &format!("Invoice vs traces, {} – {} (UTC)", r.window.start, r.window.end));
    text += "\n\n";
    let per_provider: Vec<String> =
        r.providers.iter().map(|p| format!("{} {}", p.provider, dollars(cents(p.invoice)))).collect();
    text += &format!("  invoice  {:>14}   {}\n", dollars(rounded.invoice), per_provider.join(" · "));
    text += &format!(
        "  traces   {:>14}   {} traced requests in the window, valued as a tracing dashboard shows them\n",
        dollars(rounded.traces),
        thousands(r.traces.requests)
    );
    text += &format!(
        "  gap      {:>14}   {} of the invoice\n\n",
        signed_dollars(rounded.gap),
        percent_of(rounded.gap, rounded.invoice)
    );
    let mut waterfall = table(&["#", "cause", "USD", "share", "first evidence"], color);
    for (i, cause) in r.causes.iter().enumerate() {
        let first = cause.evidence.first().map(|e| shorten(e, 90)).unwrap_or_default();
        waterfall.add_row(vec![
            (i + 1).to_string(),
            cause.kind.title().to_string(),
            signed_dollars(rounded.causes[i]),
            percent_of(rounded.causes[i], rounded.gap),
            first,
        ]);
    }
    waterfall.add_row(vec![String::new(), "gap".into(), signed_dollars(rounded.gap), "100.0 %".into(), String::new()]);
    right_align(&mut waterfall, &[2, 3]);
    text += &table_text(&waterfall);
    text += "\n\n";
    text += &evidence_text(ctx, r);
    text += &by_model_text(r, &rounded, color);
    text += &conversations_text(r);
    text += &verdict_text(ctx, r, &rounded, tolerance);
    ctx.out.text(&text)?;
    Ok(())
}

fn right_align(table: &mut comfy_table::Table, columns: &[usize]) {
    for &i in columns {
        if let Some(column) = table.column_mut(i) {
            column.set_cell_alignment(comfy_table::CellAlignment::Right);
        }
    }
}

fn evidence_text(ctx: &Context, r: &Reconciliation) -> String {
    let mut text = ctx.out.paint(Style::Bold, "Evidence");
    text += "\n";
    for cause in r.causes.iter().filter(|c| !c.evidence.is_empty()) {
        text += &format!("  {}\n", cause.kind.title());
        for line in &cause.evidence {
            text += &format!("    - {line}\n");
        }
    }
    text + "\n"
}

fn by_model_text(r: &Reconciliation, rounded: &reconcile::report::Rounded, color: bool) -> String {
    if r.by_model.is_empty() {
        return String::new();
    }
    let mut t = table(&["provider", "model", "invoice", "traces", "gap", "largest cause"], color);
    for (m, c) in r.by_model.iter().zip(&rounded.by_model).take(15) {
        t.add_row(vec![
            m.provider.to_string(),
            m.model.clone(),
            dollars(c.invoice),
            dollars(c.traces),
            signed_dollars(c.gap),
            largest_cause(&c.causes),
        ]);
    }
    right_align(&mut t, &[2, 3, 4]);
    let mut text = format!("By model\n{}\n", table_text(&t));
    if r.by_model.len() > 15 {
        text += &format!("  … and {} more models (--format json lists them all)\n", r.by_model.len() - 15);
    }
    text + "\n"
}

fn conversations_text(r: &Reconciliation) -> String {
    let Some(c) = &r.conversations else { return String::new() };
    let mut text = String::from("Per conversation\n");
    let curves: Vec<String> = c
        .curves
        .iter()
        .map(|k| match k.exponent {
            Some(e) => format!(
                "{} ({}): cost ∝ calls^{e:.2}, R² {:.2}",
                k.provider,
                thousands(k.conversations),
                k.r_squared.unwrap_or(0.0)
            ),
            None => format!("{} ({}): too few to fit", k.provider, thousands(k.conversations)),
        })
        .collect();
    text += &format!("  {} conversations; {}\n", thousands(c.conversations), curves.join(" · "));
    let ratio = if c.naive_usd.0 > 0 { c.actual_usd.0 as f64 / c.naive_usd.0 as f64 } else { 0.0 };
    text += &format!(
        "  median request {} × {} requests = {} (a per-call view); corrected cost of the same traffic {} ({ratio:.1}×)\n",
        usd_fine(c.median_request),
        thousands(c.requests),
        dollars(cents(c.naive_usd)),
        dollars(cents(c.actual_usd))
    );
    text += &format!(
        "  conversations p50 {} · p95 {} · p99 {}; the costliest 10 % carry {:.0} % of the cost\n",
        usd_fine(c.p50),
        usd_fine(c.p95),
        usd_fine(c.p99),
        c.top_decile_share * 100.0
    );
    let bins: Vec<String> =
        c.by_turns.iter().map(|b| format!("{}: {} (n={})", b.turns, usd_fine(b.mean_usd), b.conversations)).collect();
    text += &format!("  mean conversation cost by calls: {}\n\n", bins.join(" · "));
    text
}

fn verdict_text(ctx: &Context, r: &Reconciliation, rounded: &reconcile::report::Rounded, tolerance: f64) -> String {
    let share = r.unexplained_share();
    let within = share <= tolerance;
    let shown = if share.is_finite() { format!("{:.1} %", share * 100.0) } else { "all".to_string() };
    let verdict = format!(
        "unexplained {} = {shown} of the gap (tolerance {:.1} %): {}",
        signed_dollars(rounded.causes[7]),
        tolerance * 100.0,
        if within { "ok" } else { "above tolerance" }
    );
    ctx.out.paint(if within { Style::Green } else { Style::Red }, &verdict) + "\n"
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let cut: String = text.chars().take(max - 1).collect();
    format!("{cut}…")
}

// ---- Trace rows from export files ---------------------------------------------------------------------
//
// `--traces` reads exports with the same importers as `trace import` (src/trace/import): OTLP/JSON,
// promptctl JSONL and Langfuse, gzip or not, detected by content. Nothing is written to the state.

/// An opened export and the name it is shown by.
struct Export {
    shown: String,
    source: import::Source,
}

/// Opens and detects one export; `None` for an empty file (no traced requests, said on stderr).
fn open_export(ctx: &Context, path: &Path) -> Result<Option<Export>, CliError> {
    let full = ctx.cwd().join(path);
    let shown = ctx.display_path(&full);
    let file = std::fs::File::open(&full).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => CliError::input(format!("{shown}: file not found")),
        _ => CliError::input(format!("{shown}: cannot read: {e}")),
    })?;
    match import::open(file, None) {
        Ok(source) => Ok(Some(Export { shown, source })),
        // An export of a month with nothing traced is a fact to report, not bad input.
        Err(OpenError::Empty) => {
            ctx.msg.warn(&format!("{shown}: the file is empty; no traced requests read from it"));
            Ok(None)
        }
        Err(OpenError::Undetected) => Err(CliError::input(format!(
            "{shown}: cannot tell which kind of trace export this is"
        ))
        .with_hint("--traces reads OTLP/JSON, promptctl JSONL and Langfuse exports, gzipped or not (docs/traces.md)")),
        Err(OpenError::Io(e)) => Err(CliError::input(format!("{shown}: cannot read: {e}"))),
    }
}

/// What reading the exports met besides rows.
#[derive(Default)]
struct ReadReport {
    /// Records that are not model calls, per file and reason.
    skipped: Vec<(String, SkipReason, u64)>,
    /// Records that could not be read, and the first few as `file:line: message`.
    errors: u64,
    first_errors: Vec<String>,
    /// Requests read before (same span, or same content without ids), in this file or an earlier one.
    duplicates: u64,
    /// Requests read before with other content: the first one read counts, and the first few are named.
    conflicts: u64,
    first_conflicts: Vec<String>,
}

/// Unreadable records listed in the warning (all are counted).
const ERRORS_SHOWN: usize = 3;

/// Reads every export in order and hands its rows to `add` one at a time, in file order: memory holds a
/// few blocks of records, not the files. JSONL and OTLP exports are parsed on every core (the waterfall, on this
/// thread, costs a twentieth of the parsing).
fn read_exports(
    exports: Vec<Export>,
    options: &ImportOptions,
    add: &mut dyn FnMut(RequestRow),
    report: &mut ReadReport,
) -> Result<(), CliError> {
    let mut seen = SeenKeys::default();
    for Export { shown, source } in exports {
        let mut skipped: std::collections::BTreeMap<SkipReason, u64> = Default::default();
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        for record in import::chunks_on(source, options, workers).flatten() {
            match record {
                Record::Row(imported) => match seen.check(&imported) {
                    Seen::New => add(imported.row),
                    Seen::Duplicate => report.duplicates += 1,
                    Seen::Conflict => {
                        report.conflicts += 1;
                        if report.first_conflicts.len() < ERRORS_SHOWN {
                            report.first_conflicts.push(format!("{shown}:{} ({})", imported.line, imported.key_text()));
                        }
                    }
                },
                Record::Skipped { reason, .. } => *skipped.entry(reason).or_default() += 1,
                Record::Error(e) => {
                    let at = e.line.map(|l| format!(":{l}")).unwrap_or_default();
                    if e.fatal {
                        return Err(CliError::input(format!("{shown}{at}: {}", e.message)).with_hint(
                            "reconcile stops here rather than explain the month from part of its traces; \
                             repair or re-export the file",
                        ));
                    }
                    report.errors += 1;
                    if report.first_errors.len() < ERRORS_SHOWN {
                        report.first_errors.push(format!("{shown}{at}: {}", e.message));
                    }
                }
            }
        }
        report.skipped.extend(skipped.into_iter().map(|(reason, n)| (shown.clone(), reason, n)));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tolerance_accepts_percentages() {
        assert_eq!(parse_tolerance("5"), Ok(0.05));
        assert_eq!(parse_tolerance("2.5%"), Ok(0.025));
        assert!(parse_tolerance("-1").is_err());
        assert!(parse_tolerance("five").is_err());
    }
}
