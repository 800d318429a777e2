//! Documents made from a reconciliation: the monthly Markdown write-up and an SVG waterfall chart. Both
//! use the rounded figures, so every table adds up to the cent.

use std::fmt::Write as _;

use super::report::{CauseKind, Reconciliation, Rounded};

/// `$1,234.56`, `-$0.07` from whole cents.
pub fn dollars(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let abs = cents.unsigned_abs();
    format!("{sign}${}.{:02}", thousands(abs / 100), abs % 100)
}

/// `+$12.00` / `-$3.10` / `$0.00`.
pub fn signed_dollars(cents: i64) -> String {
    if cents > 0 { format!("+{}", dollars(cents)) } else { dollars(cents) }
}

pub use crate::numbers::thousands;

/// A share of the gap in percent, for tables.
pub fn percent_of(part: i64, whole: i64) -> String {
    if whole == 0 {
        return "—".to_string();
    }
    format!("{:.1} %", part as f64 / whole as f64 * 100.0)
}

/// What a team can do about each cause.
pub fn action(kind: CauseKind) -> &'static str {
    match kind {
        CauseKind::NonTokenFees => {
            "Tool fees (web search, code execution, file search) are billed per call, not per token: count tool calls in the traces and budget for them apart."
        }
        CauseKind::UntracedCalls => {
            "Trace every key and service; record failed and timed-out attempts with the usage the provider reports; ask for usage in streams (OpenAI `stream_options.include_usage`) and keep the usage of cancelled streams."
        }
        CauseKind::CacheAccounting => {
            "Record cached and cache-write tokens. OpenAI counts cached tokens inside `prompt_tokens`; Anthropic reports `cache_read_input_tokens` and `cache_creation_input_tokens` beside `input_tokens`, which excludes them."
        }
        CauseKind::ReasoningTokens => {
            "Record `reasoning_tokens` (OpenAI) and thinking tokens (Anthropic's `output_tokens` includes them): they are billed as output even though nobody sees them."
        }
        CauseKind::PriceBook => {
            "Price each request by the snapshot in the response and the price in force that day; keep negotiated and fine-tune prices in the overrides file (docs/pricing.md)."
        }
        CauseKind::TierModifiers => {
            "Record the service tier from the response (not the request's `auto`), the batch flag, and apply long-context rates above the threshold."
        }
        CauseKind::TokenEstimation => {
            "Prefer the usage the provider returns to client-side token counts; where estimates are unavoidable, add the per-request overhead (tool definitions, message framing) the fit shows."
        }
        CauseKind::Unexplained => {
            "Lines with no token usage behind them (credits, adjustments, tax) and anything the steps could not close: check them with finance; never spread them over the other causes."
        }
    }
}

/// The monthly write-up. `svg_link` is the chart's path relative to the Markdown file, when one was written.
pub fn markdown(r: &Reconciliation, tolerance: f64, svg_link: Option<&str>) -> String {
    let rounded = r.rounded();
    let mut md = String::new();
    let _ = writeln!(md, "# Invoice reconciliation, {} – {} (UTC)\n", r.window.start, r.window.end);
    let _ = writeln!(
        md,
        "**Invoice** {} · **Traces** {} · **Gap** {} ({} of the invoice).  ",
        dollars(rounded.invoice),
        dollars(rounded.traces),
        signed_dollars(rounded.gap),
        percent_of(rounded.gap, rounded.invoice)
    );
    let unexplained = rounded.causes[7];
    let verdict = if r.unexplained_share() <= tolerance { "within" } else { "above" };
    let _ = writeln!(
        md,
        "**Unexplained** {} = {} of the gap, {verdict} the {:.1} % tolerance.\n",
        signed_dollars(unexplained),
        percent_of(unexplained.abs(), rounded.gap.abs()),
        tolerance * 100.0
    );
    waterfall_table(&mut md, r, &rounded);
    if let Some(link) = svg_link {
        let _ = writeln!(md, "![Waterfall from traces to invoice]({link})\n");
    }
    let _ = writeln!(md, "## What each cause is, and what to do\n");
    for (i, cause) in r.causes.iter().enumerate() {
        let _ = writeln!(md, "### {}. {} — {}\n", i + 1, cause.kind.title(), signed_dollars(rounded.causes[i]));
        if cause.evidence.is_empty() {
            let _ = writeln!(md, "No evidence of this cause.\n");
        } else {
            for line in &cause.evidence {
                let _ = writeln!(md, "- {line}");
            }
            let _ = writeln!(md);
        }
        let _ = writeln!(md, "*What to do:* {}\n", action(cause.kind));
    }
    by_model_table(&mut md, r, &rounded);
    conversations_section(&mut md, r);
    if !r.notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for note in &r.notes {
            let _ = writeln!(md, "- {note}");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(
        md,
        "## Method\n\nThe trace side is valued as a tracing dashboard would (list price of the traced model at the traced tier, linear in tokens), then corrected one cause at a time in a fixed order — each cause is the change that its correction makes — until it is valued as billed. What is left is unexplained. Cells: provider × UTC day × model snapshot × project, by tier and context window. See docs/reconcile.md."
    );
    md
}

fn waterfall_table(md: &mut String, r: &Reconciliation, rounded: &Rounded) {
    let _ = writeln!(md, "## Waterfall\n\n| # | cause | USD | share of gap |\n|---:|---|---:|---:|");
    let _ = writeln!(md, "|  | traces (as a dashboard shows them) | {} |  |", dollars(rounded.traces));
    for (i, cause) in r.causes.iter().enumerate() {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            i + 1,
            cause.kind.title(),
            signed_dollars(rounded.causes[i]),
            percent_of(rounded.causes[i], rounded.gap)
        );
    }
    let _ = writeln!(md, "|  | **invoice** | **{}** |  |\n", dollars(rounded.invoice));
}

fn by_model_table(md: &mut String, r: &Reconciliation, rounded: &Rounded) {
    if r.by_model.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## By model\n\n| provider | model | invoice | traces | gap | largest cause |\n|---|---|---:|---:|---:|---|"
    );
    for (m, cents) in r.by_model.iter().zip(&rounded.by_model) {
        let _ = writeln!(
            md,
            "| {} | `{}` | {} | {} | {} | {} |",
            m.provider,
            m.model,
            dollars(cents.invoice),
            dollars(cents.traces),
            signed_dollars(cents.gap),
            largest_cause(&cents.causes)
        );
    }
    let _ = writeln!(md);
}

/// "untraced calls +$12.00", or "—" when every cause rounds to zero.
pub fn largest_cause(causes: &[i64]) -> String {
    causes
        .iter()
        .enumerate()
        .filter(|(_, c)| **c != 0)
        .max_by_key(|(_, c)| c.abs())
        .map_or("—".to_string(), |(i, c)| format!("{} {}", CauseKind::ALL[i].title(), signed_dollars(*c)))
}

fn conversations_section(md: &mut String, r: &Reconciliation) {
    let Some(c) = &r.conversations else { return };
    let cents = |u: crate::money::Usd| super::report::cents(u);
    let _ = writeln!(md, "## Per conversation\n");
    let curves: Vec<String> = c
        .curves
        .iter()
        .map(|k| match k.exponent {
            Some(e) => format!(
                "{} conversations ({}) cost ∝ calls^{e:.2} (R² {:.2})",
                k.provider,
                thousands(k.conversations),
                k.r_squared.unwrap_or(0.0)
            ),
            None => format!("{} conversations ({}): too few to fit", k.provider, thousands(k.conversations)),
        })
        .collect();
    let _ = writeln!(md, "{} conversations. {}.  ", thousands(c.conversations), curves.join("; "));
    let ratio = if c.naive_usd.0 > 0 { c.actual_usd.0 as f64 / c.naive_usd.0 as f64 } else { 0.0 };
    let _ = writeln!(
        md,
        "A per-call view — median request {} × {} requests — says {}; the corrected cost of the same traffic is {} ({ratio:.1}×). The costliest 10 % of conversations carry {:.0} % of the cost (p50 {}, p95 {}, p99 {}).\n",
        usd_fine(c.median_request),
        thousands(c.requests),
        dollars(cents(c.naive_usd)),
        dollars(cents(c.actual_usd)),
        c.top_decile_share * 100.0,
        usd_fine(c.p50),
        usd_fine(c.p95),
        usd_fine(c.p99)
    );
    let _ = writeln!(md, "| calls | conversations | mean cost | median cost |\n|---|---:|---:|---:|");
    for bin in &c.by_turns {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            bin.turns,
            thousands(bin.conversations),
            usd_fine(bin.mean_usd),
            usd_fine(bin.median_usd)
        );
    }
    let _ = writeln!(md);
}

/// Small amounts with enough decimals to read: `$0.0031`.
pub fn usd_fine(usd: crate::money::Usd) -> String {
    usd.to_string()
}

/// A waterfall chart: the traces bar, one floating bar per cause, the invoice bar. Hand-written SVG.
pub fn svg(r: &Reconciliation) -> String {
    let rounded = r.rounded();
    let mut bars: Vec<(String, i64, i64, &str)> = Vec::new(); // label, from, to, colour
    bars.push(("traces".into(), 0, rounded.traces, "#6b7280"));
    let mut running = rounded.traces;
    for (i, kind) in CauseKind::ALL.iter().enumerate() {
        let next = running + rounded.causes[i];
        let colour = if *kind == CauseKind::Unexplained {
            "#9ca3af"
        } else if rounded.causes[i] >= 0 {
            "#d97706"
        } else {
            "#059669"
        };
        bars.push((kind.title().to_string(), running, next, colour));
        running = next;
    }
    bars.push(("invoice".into(), 0, rounded.invoice, "#1f2937"));
    let (width, height, left, top, bottom) = (960.0, 440.0, 70.0, 40.0, 110.0);
    let lo = bars.iter().map(|b| b.1.min(b.2)).min().unwrap_or(0).min(0) as f64;
    let hi = bars.iter().map(|b| b.1.max(b.2)).max().unwrap_or(0).max(1) as f64;
    let plot_h = height - top - bottom;
    let y = |cents: f64| top + (hi - cents) / (hi - lo) * plot_h;
    let slot = (width - left - 20.0) / bars.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="Helvetica, Arial, sans-serif" font-size="12">"#
    );
    let _ = writeln!(
        svg,
        r##"<title>Invoice vs traces, {} – {}</title><rect width="100%" height="100%" fill="#ffffff"/>"##,
        r.window.start, r.window.end
    );
    let _ = writeln!(
        svg,
        r##"<text x="{left}" y="22" font-size="15" font-weight="bold">Traces {} → invoice {}: gap {}</text>"##,
        dollars(rounded.traces),
        dollars(rounded.invoice),
        signed_dollars(rounded.gap)
    );
    let _ = writeln!(
        svg,
        r##"<line x1="{left}" y1="{0:.1}" x2="{1:.1}" y2="{0:.1}" stroke="#9ca3af"/>"##,
        y(0.0),
        width - 20.0
    );
    for (i, (label, from, to, colour)) in bars.iter().enumerate() {
        let x = left + i as f64 * slot + slot * 0.15;
        let w = slot * 0.7;
        let (a, b) = (y(*from.max(to) as f64), y(*from.min(to) as f64));
        let h = (b - a).max(1.0);
        let _ = writeln!(svg, r#"<rect x="{x:.1}" y="{a:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}"/>"#);
        let value = if i == 0 || i == bars.len() - 1 { dollars(*to) } else { signed_dollars(to - from) };
        let _ = writeln!(svg, r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{value}</text>"#, x + w / 2.0, a - 5.0);
        let lx = x + w / 2.0;
        let ly = height - bottom + 16.0;
        let _ = writeln!(
            svg,
            r#"<text x="{lx:.1}" y="{ly:.1}" text-anchor="end" transform="rotate(-35 {lx:.1} {ly:.1})">{}</text>"#,
            escape(label)
        );
        if i + 1 < bars.len() - 1 {
            let next_x = left + (i + 1) as f64 * slot + slot * 0.15;
            let level = y(*to as f64);
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" y1="{level:.1}" x2="{next_x:.1}" y2="{level:.1}" stroke="#9ca3af" stroke-dasharray="3,3"/>"##,
                x + w
            );
        }
    }
    let _ = writeln!(svg, "</svg>");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_well() {
        assert_eq!(dollars(123_456), "$1,234.56");
        assert_eq!(dollars(-7), "-$0.07");
        assert_eq!(signed_dollars(1200), "+$12.00");
        assert_eq!(signed_dollars(0), "$0.00");
        assert_eq!(percent_of(1, 4), "25.0 %");
        assert_eq!(largest_cause(&[0, 300, -500, 0]), "cache accounting -$5.00");
    }
}
