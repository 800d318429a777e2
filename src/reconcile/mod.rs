//! Invoice-versus-traces reconciliation (`promptctl reconcile`, docs/reconcile.md).
//!
//! Every team on a hosted LLM finds that the token counts in its traces do not match the invoice. This
//! module explains the difference in dollars, cause by cause, with evidence, and says what it cannot
//! explain:
//!
//! - [`invoice`] reads the provider's usage and cost exports (API pages or dashboard CSV) into lines;
//! - [`billing`] turns the lines into billed cells (provider × UTC day × snapshot × project × tier ×
//!   context rate) with the invoice's own prices;
//! - [`traced`] folds the request rows — any iterator of [`RequestRow`], from an export or the state — into
//!   the same cells in one pass;
//! - [`waterfall`] re-values the trace side one correction at a time, in the fixed order of CLI.md;
//! - [`evidence`] and [`conversations`] say what the numbers mean.
//!
//! Money is exact end to end (pico-dollars); it is rounded only for output, by [`report::Rounded`], so
//! that the eight causes still sum to the gap to the cent.

pub mod billing;
pub mod catalog;
pub mod conversations;
pub mod evidence;
pub mod fit;
pub mod generate;
pub mod invoice;
pub mod render;
pub mod report;
pub mod traced;
pub mod value;
pub mod waterfall;
pub mod window;

use crate::pricing::PriceBook;
use crate::trace::model::RequestRow;

pub use invoice::{Invoice, InvoiceError, InvoiceFile};
pub use report::{Cause, CauseKind, Reconciliation};
pub use window::{Window, WindowError};

use billing::BillingError;
use catalog::Catalog;
use report::{ModelBreakdown, ProviderSummary, Side};
use traced::Collector;
use value::Counts;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Billing(#[from] BillingError),
}

impl ReconcileError {
    pub fn hint(&self) -> String {
        match self {
            ReconcileError::Billing(e) => e.hint(),
        }
    }
}

/// Reconciles `invoice` (already restricted to `window`) with the traced `rows` (any order; rows outside
/// the window are skipped), pricing with `book`.
pub fn reconcile(
    book: &PriceBook,
    invoice: &Invoice,
    rows: impl IntoIterator<Item = RequestRow>,
    window: Window,
) -> Result<Reconciliation, ReconcileError> {
    let mut catalog = Catalog::new(book);
    let billing = billing::build(invoice, &mut catalog)?;
    let mut collector = Collector::new(&mut catalog, &billing, window);
    for row in rows {
        collector.add(row);
    }
    let traces = collector.finish();
    let list_day = window.last_day();
    let outcome = waterfall::run(&catalog, &billing, &traces, list_day);
    let sources =
        evidence::Sources { catalog: &catalog, billing: &billing, traces: &traces, outcome: &outcome, list_day };
    let evidence = evidence::build(&sources);
    let conversations = conversations::view(&traces, &outcome);
    let invoice_side = invoice_side(invoice, &billing);
    let traces_side = Side {
        usd: outcome.naive_total,
        input_tokens: traces.stats.tokens.input(),
        output_tokens: traces.stats.tokens.output(),
        cache_read_tokens: traces.stats.tokens.0[1],
        cache_write_tokens: traces.stats.tokens.cache_write(),
        requests: traces.stats.rows_in_window,
    };
    let causes = causes(&billing, &outcome, &invoice_side, &traces_side, evidence.causes);
    let mut notes = invoice.notes.clone();
    notes.extend(billing.notes.iter().cloned());
    notes.extend(evidence::trace_notes(&traces.stats));
    notes.extend(provider_notes(&billing, &outcome, &catalog));
    Ok(Reconciliation {
        window,
        by_model: by_model(&outcome, &catalog),
        providers: providers(&billing, &outcome),
        invoice: invoice_side,
        traces: traces_side,
        causes,
        fits: evidence.fits,
        conversations,
        notes,
    })
}

fn invoice_side(invoice: &Invoice, billing: &billing::Billing) -> Side {
    let mut tokens = Counts::default();
    let mut requests = 0;
    for line in &invoice.lines {
        if let invoice::Detail::Usage(u) = &line.detail {
            tokens += u.tokens;
            requests += u.requests.unwrap_or(0);
        }
    }
    Side {
        usd: billing.usd(),
        input_tokens: tokens.input(),
        output_tokens: tokens.output(),
        cache_read_tokens: tokens.0[1],
        cache_write_tokens: tokens.cache_write(),
        requests,
    }
}

/// The eight causes: fees are the invoice's tool fee lines, 2–7 come from the cells, and `unexplained` is
/// the gap minus all of them (so that they always sum to the gap exactly).
fn causes(
    billing: &billing::Billing,
    outcome: &waterfall::Outcome,
    invoice: &Side,
    traces: &Side,
    mut evidence: [Vec<String>; 8],
) -> Vec<Cause> {
    let mut usd = outcome.causes;
    usd[waterfall::NON_TOKEN_FEES] = billing.fees.iter().map(|f| f.usd).sum();
    let gap = invoice.usd - traces.usd;
    let explained: crate::money::Usd = usd[..waterfall::UNEXPLAINED].iter().copied().sum();
    usd[waterfall::UNEXPLAINED] = gap - explained;
    CauseKind::ALL
        .iter()
        .enumerate()
        .map(|(i, kind)| Cause {
            kind: *kind,
            usd: usd[i],
            requests: (i == waterfall::UNTRACED_CALLS).then_some(outcome.untraced_requests),
            evidence: std::mem::take(&mut evidence[i]),
        })
        .collect()
}

fn by_model(outcome: &waterfall::Outcome, catalog: &Catalog) -> Vec<ModelBreakdown> {
    let mut rows: Vec<ModelBreakdown> = outcome
        .models
        .iter()
        .map(|((provider, model), f)| ModelBreakdown {
            provider: *provider,
            model: catalog.model_name(*model).to_string(),
            invoice: f.invoice,
            traces: f.traces,
            causes: f.causes,
        })
        .collect();
    rows.sort_by(|a, b| {
        (b.invoice - b.traces).0.abs().cmp(&(a.invoice - a.traces).0.abs()).then(a.model.cmp(&b.model))
    });
    rows
}

fn providers(billing: &billing::Billing, outcome: &waterfall::Outcome) -> Vec<ProviderSummary> {
    billing
        .providers
        .iter()
        .map(|(provider, facts)| {
            let retries = outcome.retries.get(provider).copied().unwrap_or_default();
            ProviderSummary {
                provider: *provider,
                invoice: facts.usd,
                traces: outcome.models.iter().filter(|((p, _), _)| p == provider).map(|(_, f)| f.traces).sum(),
                cost_lines: facts.has_costs,
                requests_reported: facts.requests_reported,
                projects_compared: outcome.projects_compared.get(provider).copied().unwrap_or(false),
                billed_attempts: retries.billed_attempts,
                logical_requests: retries.logical_requests,
            }
        })
        .collect()
}

fn provider_notes(billing: &billing::Billing, outcome: &waterfall::Outcome, catalog: &Catalog) -> Vec<String> {
    let mut notes = Vec::new();
    for (provider, facts) in &billing.providers {
        if !facts.requests_reported {
            notes.push(format!(
                "{provider}: the usage data has no request counts, so untraced calls are found only from traced rows without usage and from cells with no traces at all"
            ));
        }
        if !facts.has_costs {
            notes.push(format!(
                "{provider}: no cost lines; billed dollars are the usage valued at the price book's dated prices"
            ));
        }
        let compared = outcome.projects_compared.get(provider).copied().unwrap_or(false);
        if !compared && facts.usage_without_project == 0 && !facts.projects.is_empty() {
            let names: Vec<&str> = facts.projects.iter().filter_map(|p| catalog.project_name(*p)).take(3).collect();
            notes.push(format!(
                "{provider}: invoice projects ({}…) are not compared with traced projects (traces lack them or name none of them); cells sum over projects",
                names.join(", ")
            ));
        }
    }
    notes
}

#[cfg(test)]
mod accuracy;
