//! `promptctl pricing show [MODEL]` and `pricing check`: the effective-dated prices in use, and the models
//! stored requests use that have none.

use std::collections::BTreeMap;

use clap::{Args, Subcommand};
use jiff::civil::Date;
use serde::Serialize;

use super::context::Context;
use super::error::{CliError, CmdResult, Exit};
use super::output::{Style, table, table_text};
use crate::money::PerMTok;
use crate::pricing::{LookupError, PriceBook, PriceRow, Rates, Tier, TokenClass};
use crate::store::{ModelDay, OpenMode};

#[derive(Debug, Subcommand)]
pub enum PricingCommand {
    Show(ShowArgs),
    Check(CheckArgs),
}

pub fn run(ctx: &mut Context, command: PricingCommand) -> CmdResult {
    match command {
        PricingCommand::Show(args) => show(ctx, args),
        PricingCommand::Check(args) => check(ctx, args),
    }
}

/// Effective-dated prices (USD per 1M tokens): one model with its history, or every model on a day
#[derive(Debug, Args)]
#[command(after_help = "\
Prices are US dollars per 1 million tokens, in force on a UTC day. An alias (gpt-4o) shows the dated
snapshot it meant on that day. Rows come from the embedded book (docs/pricing.md) and, when
promptctl.toml names one, the project's override file, which shadows it.

Examples:
  promptctl pricing show
  promptctl pricing show gpt-4o --at 2024-09-01
  promptctl pricing show anthropic:claude-sonnet-4-5 --format json")]
pub struct ShowArgs {
    /// MODEL or PROVIDER:MODEL [default: every model]
    pub model: Option<String>,

    /// The UTC day to show [default: today]
    #[arg(long, value_name = "DATE")]
    pub at: Option<Date>,

    /// Only this provider's models (when listing all)
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,
}

/// Rates in USD per 1M tokens, for output.
#[derive(Debug, Serialize)]
struct RatesView {
    input: f64,
    output: f64,
    cache_read: Option<f64>,
    cache_write_5m: Option<f64>,
    cache_write_1h: Option<f64>,
}

impl From<&Rates> for RatesView {
    fn from(r: &Rates) -> Self {
        let usd = |p: PerMTok| p.usd_per_mtok();
        RatesView {
            input: usd(r.input),
            output: usd(r.output),
            cache_read: r.cache_read.map(usd),
            cache_write_5m: r.cache_write_5m.map(usd),
            cache_write_1h: r.cache_write_1h.map(usd),
        }
    }
}

#[derive(Debug, Serialize)]
struct RowView {
    model: String,
    effective_from: Option<Date>,
    effective_until: Option<Date>,
    standard: RatesView,
    batch: Option<RatesView>,
    flex: Option<RatesView>,
    priority: Option<RatesView>,
    long_context: Option<LongContextView>,
    source: String,
}

#[derive(Debug, Serialize)]
struct LongContextView {
    above_input_tokens: u64,
    standard: RatesView,
    priority: Option<RatesView>,
}

impl From<&PriceRow> for RowView {
    fn from(r: &PriceRow) -> Self {
        RowView {
            model: r.model.to_string(),
            effective_from: r.effective_from,
            effective_until: r.effective_until,
            standard: (&r.standard).into(),
            batch: r.batch.as_ref().map(Into::into),
            flex: r.flex.as_ref().map(Into::into),
            priority: r.priority.as_ref().map(Into::into),
            long_context: r.long_context.as_ref().map(|lc| LongContextView {
                above_input_tokens: lc.above_input_tokens,
                standard: (&lc.standard).into(),
                priority: lc.priority.as_ref().map(Into::into),
            }),
            source: r.source.to_string(),
        }
    }
}

#[derive(Serialize)]
struct ShowModel {
    schema: &'static str,
    at: Date,
    requested: String,
    model: String,
    alias_of: Option<String>,
    row: RowView,
    history: Vec<RowView>,
}

#[derive(Serialize)]
struct ShowAll {
    schema: &'static str,
    at: Date,
    overrides: Vec<String>,
    rows: Vec<RowView>,
}

fn today() -> Date {
    jiff::Timestamp::now().to_zoned_datetime(jiff::tz::TimeZone::UTC).date()
}

fn show(ctx: &mut Context, args: ShowArgs) -> CmdResult {
    let book = ctx.price_book()?;
    let at = args.at.unwrap_or_else(today);
    let Some(spec) = &args.model else {
        return show_all(ctx, &book, at, args.provider.as_deref());
    };
    let quote = book.quote(spec, at).map_err(|e| lookup_error(&e))?;
    let history = book.history(spec).map_err(|e| lookup_error(&e))?;
    let report = ShowModel {
        schema: "promptctl.pricing-show/v1",
        at,
        requested: spec.clone(),
        model: quote.resolved.model.to_string(),
        alias_of: quote.resolved.alias.as_ref().map(|a| a.alias.to_string()),
        row: quote.row.into(),
        history: history
            .iter()
            .map(|p| RowView { effective_from: p.from, effective_until: p.until, ..RowView::from(p.row) })
            .collect(),
    };
    if !ctx.out.is_human() {
        ctx.out.document(&report)?;
        return Ok(Exit::Ok);
    }
    let title = match &report.alias_of {
        Some(alias) => format!("{alias} → {} on {at}", report.model),
        None => format!("{} on {at}", report.model),
    };
    ctx.out.line(&ctx.out.paint(Style::Bold, &title))?;
    ctx.out.line(&format!("source: {}", report.row.source))?;
    let mut t = table(&["TIER", "INPUT", "CACHE READ", "CACHE WRITE 5M", "CACHE WRITE 1H", "OUTPUT"], ctx.out.color);
    let row = quote.row;
    let tiers: [(&str, Option<&Rates>); 4] = [
        ("standard", Some(&row.standard)),
        ("batch", row.batch.as_ref()),
        ("flex", row.flex.as_ref()),
        ("priority", row.priority.as_ref()),
    ];
    for (name, rates) in tiers {
        let tier = match name {
            "batch" => Tier::Batch,
            "flex" => Tier::Flex,
            "priority" => Tier::Priority,
            _ => Tier::Standard,
        };
        if rates.is_none() && tier != Tier::Batch {
            continue;
        }
        let cell = |class: TokenClass| match row.price_for(class, tier, false) {
            Some((price, fallbacks)) if fallbacks.is_empty() => money(price),
            Some((price, _)) => format!("{} (rule)", money(price)),
            None => "—".to_string(),
        };
        t.add_row([
            name.to_string(),
            cell(TokenClass::Input),
            cell(TokenClass::CacheRead),
            cell(TokenClass::CacheWrite5m),
            cell(TokenClass::CacheWrite1h),
            cell(TokenClass::Output),
        ]);
    }
    if let Some(lc) = &row.long_context {
        let r = &lc.standard;
        t.add_row([
            format!("> {}k input", lc.above_input_tokens / 1000),
            money(r.input),
            r.cache_read.map_or("—".into(), money),
            r.cache_write_5m.map_or("—".into(), money),
            r.cache_write_1h.map_or("—".into(), money),
            money(r.output),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    if report.history.len() > 1 {
        ctx.out.line("")?;
        let mut h = table(&["FROM", "UNTIL", "MODEL", "INPUT", "OUTPUT", "SOURCE"], ctx.out.color);
        for p in &report.history {
            h.add_row([
                p.effective_from.map_or("—".into(), |d| d.to_string()),
                p.effective_until.map_or("—".into(), |d| d.to_string()),
                p.model.clone(),
                format!("${}", p.standard.input),
                format!("${}", p.standard.output),
                p.source.clone(),
            ]);
        }
        ctx.out.line(&table_text(&h))?;
    }
    ctx.out.line("(USD per 1M tokens; \"rule\": derived by a published provider rule, see docs/pricing.md)")?;
    Ok(Exit::Ok)
}

fn money(p: PerMTok) -> String {
    let v = p.usd_per_mtok();
    let text = format!("{v:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("${text}")
}

fn lookup_error(e: &LookupError) -> CliError {
    let hint = match e {
        LookupError::UnknownModel { .. } => {
            "list priced models with `promptctl pricing show`; add your own in the override file (docs/pricing.md)"
        }
        LookupError::Ambiguous { .. } => "write PROVIDER:MODEL",
        _ => "see `promptctl pricing show` for the models and days the book covers",
    };
    CliError::input(e.to_string()).with_hint(hint)
}

fn show_all(ctx: &mut Context, book: &PriceBook, at: Date, provider: Option<&str>) -> CmdResult {
    let provider = provider.map(|p| p.to_ascii_lowercase());
    let rows: Vec<&PriceRow> = book
        .rows_at(at)
        .into_iter()
        .filter(|r| provider.as_deref().is_none_or(|p| r.model.provider.id() == p))
        .collect();
    if !ctx.out.is_human() {
        ctx.out.document(&ShowAll {
            schema: "promptctl.pricing-show/v1",
            at,
            overrides: book.override_files().iter().map(|p| p.display().to_string()).collect(),
            rows: rows.into_iter().map(RowView::from).collect(),
        })?;
        return Ok(Exit::Ok);
    }
    let mut t =
        table(&["MODEL", "INPUT", "CACHE READ", "OUTPUT", "BATCH", "FLEX", "PRIORITY", "LONG CONTEXT"], ctx.out.color);
    let yes = |b: bool| if b { "yes" } else { "" };
    for r in &rows {
        t.add_row([
            r.model.to_string(),
            money(r.standard.input),
            r.standard.cache_read.map_or("—".into(), money),
            money(r.standard.output),
            yes(r.batch.is_some()).to_string(),
            yes(r.flex.is_some()).to_string(),
            yes(r.priority.is_some()).to_string(),
            r.long_context.map_or(String::new(), |lc| format!("> {}k", lc.above_input_tokens / 1000)),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    ctx.out.line(&format!("{} models priced on {at} (USD per 1M tokens)", rows.len()))?;
    Ok(Exit::Ok)
}

/// Models in the stored request rows that have no price (exit 1 when there are any)
#[derive(Debug, Args)]
#[command(after_help = "\
For every model, service tier and UTC day in the stored request rows, looks up the price the cost report
would use: the snapshot that served the request (response model), else the model asked for. Rows without
a price are reported with the reason and the nearest known name; they show as \"unknown\" in cost
reports, never as $0. Exit 1 when any row has no price.

Examples:
  promptctl pricing check
  promptctl pricing check --format json | jq '.models[] | select(.unpriced_rows > 0)'")]
pub struct CheckArgs {}

#[derive(Debug, Serialize)]
struct CheckedModel {
    provider: String,
    model: String,
    response_model: Option<String>,
    tier: String,
    rows: u64,
    unpriced_rows: u64,
    first_day: Date,
    last_day: Date,
    /// Why the unpriced rows have no price (the first reason met).
    reason: Option<String>,
}

#[derive(Serialize)]
struct CheckReport {
    schema: &'static str,
    rows: u64,
    unpriced_rows: u64,
    models: Vec<CheckedModel>,
}

fn check(ctx: &mut Context, _args: CheckArgs) -> CmdResult {
    let book = ctx.price_book()?;
    let store = ctx.open_store(OpenMode::MustExist)?;
    let seen = store.models_by_day()?;
    let mut models: BTreeMap<(String, String, Option<String>, String), CheckedModel> = BTreeMap::new();
    for m in &seen {
        let date = day_date(m.day);
        let tier_name = tier_label(m);
        let outcome = price_check(&book, m, date);
        let entry = models
            .entry((m.provider.clone(), m.request_model.clone(), m.response_model.clone(), tier_name.clone()))
            .or_insert(CheckedModel {
                provider: m.provider.clone(),
                model: m.request_model.clone(),
                response_model: m.response_model.clone(),
                tier: tier_name,
                rows: 0,
                unpriced_rows: 0,
                first_day: date,
                last_day: date,
                reason: None,
            });
        entry.rows += m.rows;
        entry.first_day = entry.first_day.min(date);
        entry.last_day = entry.last_day.max(date);
        if let Err(reason) = outcome {
            entry.unpriced_rows += m.rows;
            entry.reason.get_or_insert(reason);
        }
    }
    let models: Vec<CheckedModel> = models.into_values().collect();
    let report = CheckReport {
        schema: "promptctl.pricing-check/v1",
        rows: models.iter().map(|m| m.rows).sum(),
        unpriced_rows: models.iter().map(|m| m.unpriced_rows).sum(),
        models,
    };
    if !ctx.out.is_human() {
        ctx.out.document(&report)?;
    } else if report.rows == 0 {
        ctx.msg.note("no request rows in the state file; import traces with `promptctl trace import FILE`");
    } else {
        let mut t =
            table(&["PROVIDER", "MODEL", "SERVED AS", "TIER", "ROWS", "UNPRICED", "DAYS", "WHY"], ctx.out.color);
        for m in &report.models {
            let days = if m.first_day == m.last_day {
                m.first_day.to_string()
            } else {
                format!("{} … {}", m.first_day, m.last_day)
            };
            let unpriced = if m.unpriced_rows == 0 {
                "0".to_string()
            } else {
                ctx.out.paint(Style::Red, &m.unpriced_rows.to_string())
            };
            t.add_row([
                m.provider.clone(),
                m.model.clone(),
                m.response_model.clone().unwrap_or_default(),
                m.tier.clone(),
                m.rows.to_string(),
                unpriced,
                days,
                m.reason.clone().unwrap_or_default(),
            ]);
        }
        ctx.out.line(&table_text(&t))?;
        ctx.out.line(&format!("{} of {} rows have no price", report.unpriced_rows, report.rows))?;
    }
    Ok(if report.unpriced_rows > 0 { Exit::CheckFailed } else { Exit::Ok })
}

fn day_date(day: i64) -> Date {
    jiff::Timestamp::from_millisecond(day * 86_400_000)
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
        .unwrap_or(Date::constant(1970, 1, 1))
}

fn tier_label(m: &ModelDay) -> String {
    match Tier::from_request(m.service_tier.as_deref(), m.batch) {
        Some(t) => t.to_string(),
        None => m.service_tier.clone().unwrap_or_default(),
    }
}

/// The same lookup the cost report makes: the serving snapshot, else the model asked for; then the tier.
fn price_check(book: &PriceBook, m: &ModelDay, date: Date) -> Result<(), String> {
    let served = m.response_model.as_ref().and_then(|r| book.quote(&format!("{}:{r}", m.provider), date).ok());
    let row = match served {
        Some(q) => q.row,
        None => book.quote(&format!("{}:{}", m.provider, m.request_model), date).map_err(|e| e.to_string())?.row,
    };
    let tier = Tier::from_request(m.service_tier.as_deref(), m.batch)
        .ok_or_else(|| format!("no prices for service tier `{}`", m.service_tier.as_deref().unwrap_or("")))?;
    for class in [TokenClass::Input, TokenClass::Output] {
        if row.price_for(class, tier, false).is_none() {
            return Err(format!("{} has no {tier} price", row.model));
        }
    }
    Ok(())
}
