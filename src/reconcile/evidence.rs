//! Evidence: short, specific lines a finance or platform person can act on — which models, days and
//! projects, how many requests, the fitted parameters, the implied price and the day it changed.

use std::collections::BTreeMap;

use jiff::civil::Date;

use super::billing::{Billing, MoneyLine};
use super::catalog::{Catalog, ModelIx, spec};
use super::fit::{EstimationFit, estimation};
use super::report::Fit;
use super::traced::{TraceStats, Traces, status_index};
use super::value::{OUTPUT, Qty, UnitPrice};
use super::waterfall::{
    CACHE_ACCOUNTING, ModelFacts, NON_TOKEN_FEES, Outcome, PRICE_BOOK, REASONING_TOKENS, TIER_MODIFIERS,
    TOKEN_ESTIMATION, UNEXPLAINED, UNTRACED_CALLS,
};
use super::window::day_date;
use crate::money::Usd;
use crate::numbers::thousands;
use crate::pricing::{Provider, Tier, TokenClass};
use crate::trace::model::RequestStatus;

/// At most this many model lines per cause; the rest are summed in one line.
const MAX_MODELS: usize = 8;
/// Below half a cent a model's share of a cause is not worth a line.
const NOTICEABLE: i128 = 5_000_000_000;

pub struct Sources<'a, 'b> {
    pub catalog: &'a Catalog<'b>,
    pub billing: &'a Billing,
    pub traces: &'a Traces,
    pub outcome: &'a Outcome,
    pub list_day: Date,
}

pub struct Evidence {
    pub causes: [Vec<String>; 8],
    pub fits: Vec<Fit>,
}

pub fn build(s: &Sources) -> Evidence {
    let mut causes: [Vec<String>; 8] = Default::default();
    causes[NON_TOKEN_FEES] = fees(s);
    causes[UNTRACED_CALLS] = untraced(s);
    let (estimation_lines, fits) = estimation_evidence(s);
    causes[CACHE_ACCOUNTING] = per_model(s, CACHE_ACCOUNTING, cache_line);
    causes[REASONING_TOKENS] = per_model(s, REASONING_TOKENS, reasoning_line);
    causes[PRICE_BOOK] = per_model(s, PRICE_BOOK, price_line);
    causes[TIER_MODIFIERS] = per_model(s, TIER_MODIFIERS, tier_line);
    causes[TOKEN_ESTIMATION] = estimation_lines;
    causes[UNEXPLAINED] = unexplained(s);
    Evidence { causes, fits }
}

fn model_name(s: &Sources, (provider, model): (Provider, ModelIx)) -> String {
    format!("{provider} {}", s.catalog.model_name(model))
}

/// One line per model with a noticeable share of the cause, largest first.
fn per_model(
    s: &Sources,
    cause: usize,
    line: fn(&Sources, (Provider, ModelIx), &ModelFacts) -> Option<String>,
) -> Vec<String> {
    let mut models: Vec<(&(Provider, ModelIx), &ModelFacts)> =
        s.outcome.models.iter().filter(|(_, f)| f.causes[cause].0.abs() >= NOTICEABLE).collect();
    models.sort_by_key(|(_, f)| std::cmp::Reverse(f.causes[cause].0.abs()));
    let mut lines: Vec<String> = models.iter().take(MAX_MODELS).filter_map(|(k, f)| line(s, **k, f)).collect();
    if models.len() > MAX_MODELS {
        let rest: Usd = models[MAX_MODELS..].iter().map(|(_, f)| f.causes[cause]).sum();
        lines.push(format!("… and {} more models: {}", models.len() - MAX_MODELS, signed(rest)));
    }
    lines
}

fn fees(s: &Sources) -> Vec<String> {
    let mut by_tool: BTreeMap<(Provider, String), (Usd, usize, i32, i32)> = BTreeMap::new();
    for fee in &s.billing.fees {
        let e = by_tool.entry((fee.provider, fee.description.clone())).or_insert((Usd::ZERO, 0, fee.day, fee.day));
        e.0 += fee.usd;
        e.1 += 1;
        e.2 = e.2.min(fee.day);
        e.3 = e.3.max(fee.day);
    }
    let mut lines: Vec<String> = by_tool
        .iter()
        .map(|((provider, what), (usd, n, first, last))| {
            format!("{provider} `{what}`: {usd} in {n} line{} ({})", plural(*n), days(*first, *last))
        })
        .collect();
    let searches: BTreeMap<Provider, u64> = s.outcome.models.iter().fold(BTreeMap::new(), |mut m, ((p, _), f)| {
        *m.entry(*p).or_default() += f.web_search_requests;
        m
    });
    for (provider, n) in searches.into_iter().filter(|(_, n)| *n > 0) {
        let valued = s.billing.fees.iter().any(|f| f.provider == provider);
        lines.push(if valued {
            format!("{provider} usage report: {} server-side web searches", thousands(n))
        } else {
            format!(
                "{provider} usage report: {} server-side web searches, not valued (no cost report with their fees)",
                thousands(n)
            )
        });
    }
    lines
}

fn untraced(s: &Sources) -> Vec<String> {
    let mut lines = Vec::new();
    for (provider, r) in &s.outcome.retries {
        if r.logical_requests == 0 {
            continue;
        }
        let amplification = r.billed_attempts as f64 / r.logical_requests as f64;
        let basis = if s.billing.providers.get(provider).is_some_and(|p| p.requests_reported) {
            "billed requests per the usage data"
        } else {
            "estimated: no request counts in the usage report"
        };
        lines.push(format!(
            "{provider}: retry amplification {amplification:.3} billed attempts per logical request ({} billed attempts ÷ {} logical requests in traced cells; {basis})",
            thousands(r.billed_attempts),
            thousands(r.logical_requests)
        ));
    }
    let mut models: Vec<_> =
        s.outcome.models.iter().filter(|(_, f)| f.causes[UNTRACED_CALLS].0.abs() >= NOTICEABLE).collect();
    models.sort_by_key(|(_, f)| std::cmp::Reverse(f.causes[UNTRACED_CALLS].0.abs()));
    for (key, f) in models.iter().take(MAX_MODELS) {
        lines.extend(untraced_lines(s, **key, f));
    }
    lines.extend(unbilled_errors(s));
    lines
}

fn untraced_lines(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts) -> Vec<String> {
    let name = model_name(s, key);
    let mut lines = Vec::new();
    for (project, (days_billed, usd, requests)) in &f.untraced_cells {
        let first = *days_billed.iter().next().unwrap_or(&0);
        let last = *days_billed.iter().next_back().unwrap_or(&0);
        let where_ = project.as_deref().map(|p| format!(" in {p}")).unwrap_or_default();
        let requests = requests.filter(|r| *r > 0).map(|r| format!(", {} requests", thousands(r))).unwrap_or_default();
        lines.push(format!(
            "{name}{where_}: {usd} billed on {} day{} ({}{requests}) with no traced request at all — a key or service that is not traced?",
            days_billed.len(),
            plural(days_billed.len()),
            days(first, last)
        ));
    }
    let kinds = [
        (RequestStatus::Timeout, "timed-out attempts"),
        (RequestStatus::Aborted, "aborted streams"),
        (RequestStatus::Ok, "streams without usage"),
        (RequestStatus::Error, "failed attempts"),
    ];
    let parts: Vec<String> = kinds
        .iter()
        .filter(|(st, _)| f.billed_usage_less[status_index(*st)] > 0)
        .map(|(st, what)| format!("{} {what}", thousands(f.billed_usage_less[status_index(*st)])))
        .chain((f.phantom > 0).then(|| format!("{} requests with no traced row", thousands(f.phantom))))
        .collect();
    if !parts.is_empty() {
        let counts = if f.requests_known {
            format!(" ({} billed, {} traced with usage)", thousands(f.billed_requests), thousands(f.traced_rows))
        } else {
            String::new()
        };
        let traced_part = f.causes[UNTRACED_CALLS] - f.untraced_cells.values().map(|v| v.1).sum::<Usd>();
        lines.push(format!(
            "{name}: {} billed without traced usage: {}{counts}",
            signed(traced_part),
            parts.join(", ")
        ));
    }
    if f.excess > 0 {
        let cells = if f.unbilled_cells.1 > 0 {
            format!(
                "; {} of them on days with nothing billed for the model ({} at trace prices)",
                thousands(f.unbilled_cells.1),
                f.unbilled_cells.0
            )
        } else {
            String::new()
        };
        lines.push(format!(
            "{name}: {} traced requests more than billed{cells} — duplicates in the traces, or another organization's key?",
            thousands(f.excess)
        ));
    }
    lines
}

fn unbilled_errors(s: &Sources) -> Vec<String> {
    let mut by_provider: BTreeMap<Provider, u64> = BTreeMap::new();
    for ((provider, _), f) in &s.outcome.models {
        *by_provider.entry(*provider).or_default() += f.unbilled_errors;
    }
    by_provider
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(provider, n)| {
            if s.billing.providers.get(&provider).is_some_and(|p| p.requests_reported) {
                format!("{provider}: {} error rows without usage were not billed (the billed request counts leave no room for them: rate limits and similar) — not untraced calls", thousands(n))
            } else {
                format!("{provider}: {} error rows without usage taken as not billed (the usage report has no request counts)", thousands(n))
            }
        })
        .collect()
}

fn cache_line(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts) -> Option<String> {
    let (t, b) = (&f.traced_share, &f.billed_share);
    let split = |q: &Qty| {
        format!(
            "{} uncached / {} cache read / {} cache write",
            tokens(q.tokens(0)),
            tokens(q.tokens(1)),
            tokens(q.tokens(2) + q.tokens(3))
        )
    };
    let mut why = Vec::new();
    if t.tokens(1) == 0 && b.tokens(1) > 0 {
        why.push("cache reads missing from the traces");
    }
    if t.tokens(2) + t.tokens(3) == 0 && b.tokens(2) + b.tokens(3) > 0 {
        why.push("cache writes missing from the traces");
        if t.tokens(0) > b.tokens(0) {
            why.push("counted as plain input");
        }
    }
    let (ti, bi) = (t.input_tokens(), b.input_tokens());
    if key.0 == Provider::Anthropic && ti < bi && ti > 0 && (ti as f64) < 0.9 * bi as f64 {
        why.push("Anthropic input_tokens taken as the total (cache tokens are reported beside it)");
    }
    let why = if why.is_empty() { String::new() } else { format!(" — {}", why.join("; ")) };
    Some(format!(
        "{}: {} — traced {} vs billed {} (traced share){why}",
        model_name(s, key),
        signed(f.causes[CACHE_ACCOUNTING]),
        split(t),
        split(b)
    ))
}

fn reasoning_line(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts) -> Option<String> {
    let traced = f.traced_share.tokens(OUTPUT);
    let billed = f.billed_share.tokens(OUTPUT);
    let growth = if traced > 0 {
        format!(", {:+.0} %", (billed - traced) as f64 / traced as f64 * 100.0)
    } else {
        String::new()
    };
    Some(format!(
        "{}: {} — billed output {} vs traced {} ({:+} tokens{growth}): hidden reasoning or thinking tokens the traces do not count",
        model_name(s, key),
        signed(f.causes[REASONING_TOKENS]),
        tokens(billed),
        tokens(traced),
        tokens_signed(billed - traced),
    ))
}

fn price_line(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts) -> Option<String> {
    let name = model_name(s, key);
    let snapshot = s.catalog.model_name(key.1);
    let mut parts = Vec::new();
    for naive in &f.naive_names {
        let (provider, traced_name) = &s.traces.naive_names[*naive as usize];
        let bare = super::catalog::bare_name(traced_name);
        match s.catalog.book.quote(&spec(*provider, &bare), s.list_day) {
            Err(_) => parts.push(format!("traces name `{traced_name}`, which the price book does not know: priced at $0")),
            Ok(q) if q.resolved.model.name != snapshot => parts.push(format!(
                "traces name `{traced_name}`, list-priced as {} ({}/{} per 1M in/out) while the invoice bills {snapshot}",
                q.resolved.model.name,
                per_mtok(UnitPrice::from_per_mtok(q.row.input())),
                per_mtok(UnitPrice::from_per_mtok(q.row.output()))
            )),
            Ok(_) => {}
        }
    }
    if !s.catalog.is_priced(key.0, key.1) {
        parts.push("not in the price book (reported, never counted as $0)".to_string());
    }
    for (class, label) in [(0usize, "input"), (OUTPUT, "output")] {
        if let Some(text) = price_history(s, key, f, class, label) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        return Some(format!("{name}: {}", signed(f.causes[PRICE_BOOK])));
    }
    Some(format!("{name}: {} — {}", signed(f.causes[PRICE_BOOK]), parts.join("; ")))
}

/// The billed standard-tier unit price of a class per day, as runs: "$2.00/1M until 2026-10-14, $1.80/1M
/// from 2026-10-15 (implied from cost lines; list $2.00)". `None` when it equals the list price throughout.
fn price_history(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts, class: usize, label: &str) -> Option<String> {
    let (first, last) = (f.first_day?, f.last_day?);
    let mut runs: Vec<(i32, i32, i64)> = Vec::new();
    for day in first..=last {
        let Some(dm) = s.billing.day_models.get(&(key.0, day, key.1)) else { continue };
        let listed = s
            .catalog
            .row(key.1, day)
            .and_then(|r| r.price_for(class_of(class), Tier::Standard, false))
            .map(|(p, _)| UnitPrice::from_per_mtok(p));
        let price = match (listed, dm.level[class]) {
            (Some(p), Some((charged, book))) => p.scaled(charged.0, book.0),
            (Some(p), None) => p,
            (None, _) => match dm.effective[class] {
                Some(p) => p,
                None => continue,
            },
        };
        let rounded = (price.0 / 1_000_000) as i64; // micro-dollars per 1M tokens
        match runs.last_mut() {
            Some(run) if run.2 == rounded => run.1 = day,
            _ => runs.push((day, day, rounded)),
        }
    }
    let list_day = super::window::day_of(super::window::utc_midnight(s.list_day));
    let list = s
        .catalog
        .row(key.1, list_day)
        .and_then(|r| r.price_for(class_of(class), Tier::Standard, false))
        .map(|(p, _)| p.0);
    let source = if s.billing.providers.get(&key.0).is_some_and(|p| p.has_costs) {
        "implied from cost lines"
    } else {
        "the book's dated prices"
    };
    let list_text = list.map_or("not in the book".to_string(), |l| format!("list {}", money_per_mtok(l)));
    match runs.as_slice() {
        [] => None,
        [only] if list == Some(only.2) => None,
        [only] => Some(format!("billed {label} {}/1M all month ({source}; {list_text})", money_per_mtok(only.2))),
        many => {
            let text: Vec<String> = many
                .iter()
                .enumerate()
                .map(|(i, (from, until, p))| match i {
                    0 => format!("{}/1M until {}", money_per_mtok(*p), day_date(*until)),
                    _ => format!("{}/1M from {}", money_per_mtok(*p), day_date(*from)),
                })
                .collect();
            Some(format!("billed {label} {} ({source}; {list_text})", text.join(", ")))
        }
    }
}

fn class_of(index: usize) -> TokenClass {
    super::value::CLASSES[index]
}

fn tier_line(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts) -> Option<String> {
    let mix = |m: &BTreeMap<String, i128>| {
        let total: i128 = m.values().sum();
        m.iter()
            .filter(|(_, q)| **q > 0)
            .map(|(t, q)| format!("{t} {:.0} %", *q as f64 / total.max(1) as f64 * 100.0))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let long = if f.long_context > 0 {
        format!("; {} tokens billed at the long-context rate", tokens(f.long_context / 1_000_000))
    } else {
        String::new()
    };
    Some(format!(
        "{}: {} — billed {} of tokens; traces say {}{long}",
        model_name(s, key),
        signed(f.causes[TIER_MODIFIERS]),
        mix(&f.billed_tiers),
        mix(&f.traced_tiers)
    ))
}

fn estimation_evidence(s: &Sources) -> (Vec<String>, Vec<Fit>) {
    let mut lines = Vec::new();
    let mut fits = Vec::new();
    let mut models: Vec<_> = s.outcome.models.iter().filter(|(_, f)| f.estimated_rows > 0).collect();
    models.sort_by_key(|(_, f)| std::cmp::Reverse(f.causes[TOKEN_ESTIMATION].0.abs()));
    for (key, f) in models {
        let Some(fit) = estimation(&f.estimation_points) else { continue };
        lines.push(estimation_line(s, *key, f, &fit));
        fits.push(Fit { provider: key.0, model: s.catalog.model_name(key.1).to_string(), fit });
    }
    (lines, fits)
}

fn estimation_line(s: &Sources, key: (Provider, ModelIx), f: &ModelFacts, fit: &EstimationFit) -> String {
    let form = if fit.separated {
        format!(
            "invoice_input ≈ {:.3}·trace_input + {:.0}·requests (tokenizer skew {:+.1} % ± {:.1}, {:.0} ± {:.0} tokens of fixed overhead per request such as tool definitions; R² {:.3} over {} days)",
            fit.a,
            fit.b,
            (fit.a - 1.0) * 100.0,
            fit.se_a * 100.0,
            fit.b,
            fit.se_b,
            fit.r_squared,
            fit.points
        )
    } else {
        format!(
            "invoice_input ≈ {:.3}·trace_input ({:+.1} %; too few days to separate a per-request overhead)",
            fit.a,
            (fit.a - 1.0) * 100.0
        )
    };
    format!(
        "{}: {} — {} requests with client-side token estimates: {form}",
        model_name(s, key),
        signed(f.causes[TOKEN_ESTIMATION]),
        thousands(f.estimated_rows)
    )
}

fn unexplained(s: &Sources) -> Vec<String> {
    let mut lines: Vec<String> =
        s.billing.others.iter().map(|l| money_line(l, "not token usage nor a metered tool fee")).collect();
    lines.extend(s.billing.unmatched.iter().map(|l| money_line(l, "a token charge with no usage line behind it")));
    let residual: Usd = s.outcome.models.values().map(|f| f.causes[UNEXPLAINED]).sum();
    if residual.0.abs() >= NOTICEABLE {
        let mut models: Vec<_> =
            s.outcome.models.iter().filter(|(_, f)| f.causes[UNEXPLAINED].0.abs() >= NOTICEABLE).collect();
        models.sort_by_key(|(_, f)| std::cmp::Reverse(f.causes[UNEXPLAINED].0.abs()));
        let names: Vec<String> = models
            .iter()
            .take(4)
            .map(|(k, f)| format!("{} {}", model_name(s, **k), signed(f.causes[UNEXPLAINED])))
            .collect();
        lines.push(format!("left in cells the steps could not close: {} ({})", signed(residual), names.join(", ")));
    }
    lines
}

fn money_line(line: &MoneyLine, what: &str) -> String {
    format!("{} `{}` on {}: {} — {what}", line.provider, line.description, day_date(line.day), signed(line.usd))
}

/// Notes about the traces for the report.
pub fn trace_notes(stats: &TraceStats) -> Vec<String> {
    let mut notes = Vec::new();
    if stats.outside_window > 0 {
        notes.push(format!("{} traced rows outside the window left out", thousands(stats.outside_window)));
    }
    for (provider, n) in &stats.other_providers {
        notes.push(format!(
            "{} traced rows of provider `{provider}` have no invoice data here and were not reconciled",
            thousands(*n)
        ));
    }
    if stats.rows_in_window > 0 && stats.with_usage == 0 {
        notes.push(format!(
            "none of the {} traced rows in the window carries usage: the traces value at $0 and every billed request counts as untraced",
            thousands(stats.rows_in_window)
        ));
    }
    if stats.rows_in_window == 0 {
        notes.push("no traced rows in the window: every billed request counts as untraced".to_string());
    }
    notes
}

pub fn days(first: i32, last: i32) -> String {
    if first == last { day_date(first).to_string() } else { format!("{} – {}", day_date(first), day_date(last)) }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

pub fn signed(usd: Usd) -> String {
    if usd.0 > 0 { format!("+{usd}") } else { usd.to_string() }
}

/// `1.2M`, `34.5k`, `812`.
pub fn tokens(n: i128) -> String {
    let a = n.abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    if a >= 1e9 {
        format!("{sign}{:.2}B", a / 1e9)
    } else if a >= 1e6 {
        format!("{sign}{:.2}M", a / 1e6)
    } else if a >= 1e4 {
        format!("{sign}{:.1}k", a / 1e3)
    } else {
        format!("{sign}{a:.0}")
    }
}

fn tokens_signed(n: i128) -> String {
    if n > 0 { format!("+{}", tokens(n)) } else { tokens(n) }
}

/// `$2.50` from micro-dollars per 1M tokens.
fn money_per_mtok(micros: i64) -> String {
    let dollars = micros as f64 / 1e6;
    if micros % 10_000 == 0 { format!("${dollars:.2}") } else { format!("${dollars:.4}") }
}

fn per_mtok(price: UnitPrice) -> String {
    money_per_mtok((price.0 / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(12), "12");
        assert_eq!(tokens(1_234_567), "1.23M");
        assert_eq!(tokens(-34_500), "-34.5k");
        assert_eq!(money_per_mtok(2_500_000), "$2.50");
        assert_eq!(money_per_mtok(75_000), "$0.0750");
    }
}
