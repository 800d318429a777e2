//! Deterministic months of traffic with a known attribution: the bundled demo month, the accuracy tests
//! and the benchmark all come from here.
//!
//! A month is simulated request by request, as the provider bills it and as a tracer records it. Each
//! cause can be injected on its own; with none, traces and invoice agree to the cent. Because every
//! request's billed and traced usage is known, the true size of each cause follows from the definition in
//! CLI.md applied request by request ([`truth`]) — the reconciler, which sees only the invoice's
//! aggregates and the trace rows, must come out close to it.
//!
//! The services (docs/reconcile.md, "The bundled month"):
//!
//! | provider | project | model | what it shows |
//! |---|---|---|---|
//! | OpenAI | proj_support | gpt-4o-mini (multi-turn chat, cached prefix, streamed) | timeouts retried, streams without usage, 429s that are not billed, web search fees |
//! | OpenAI | proj_triage | gpt-4.1-mini (one call per conversation, cached system prompt) | a tracer that drops cached-token counts |
//! | OpenAI | proj_support | o4-mini (escalations) | hidden reasoning tokens |
//! | OpenAI | proj_reports | gpt-5-mini, billed at flex | a tracer that records `auto` |
//! | OpenAI | proj_evals | gpt-4.1-nano, nightly Batch API | a tracer that loses the batch flag |
//! | OpenAI | proj_widget | gpt-4.1 (price cut mid-month on the invoice) | client-side token estimates |
//! | OpenAI | proj_legacy | gpt-4o-2024-05-13 traced as `gpt-4o` | alias versus snapshot |
//! | OpenAI | proj_support | a fine-tuned gpt-4o-mini | a model the price book does not know |
//! | OpenAI | proj_nightly | gpt-4o-mini | a service that is not traced at all |
//! | Anthropic | wrkspc_support | claude-sonnet-4-5 (prompt caching, thinking, long documents, web search) | input_tokens taken as the total, thinking not counted, long-context rate, aborted streams |
//! | Anthropic | wrkspc_extract | claude-haiku-4-5 (part via Message Batches) | cache writes counted as plain input, batch flag lost |
//! | Anthropic | wrkspc_ops | claude-haiku-4-5 | a workspace that is not traced |

mod files;
mod traffic;
pub mod truth;

use jiff::civil::Date;
use serde::Serialize;

use crate::money::Usd;
use crate::pricing::PriceBook;
use crate::reconcile::report::CauseKind;
use crate::reconcile::window::Window;
use crate::trace::model::RequestRow;

pub use files::trace_jsonl_line;
pub use traffic::Call;

/// Which causes to inject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Causes {
    pub non_token_fees: bool,
    pub untraced_calls: bool,
    pub cache_accounting: bool,
    pub reasoning_tokens: bool,
    pub price_book: bool,
    pub tier_modifiers: bool,
    pub token_estimation: bool,
    /// A credit line on the invoice: no tokens behind it, not a tool fee.
    pub unexplained: bool,
}

impl Causes {
    pub const NONE: Causes = Causes {
        non_token_fees: false,
        untraced_calls: false,
        cache_accounting: false,
        reasoning_tokens: false,
        price_book: false,
        tier_modifiers: false,
        token_estimation: false,
        unexplained: false,
    };

    pub const ALL: Causes = Causes {
        non_token_fees: true,
        untraced_calls: true,
        cache_accounting: true,
        reasoning_tokens: true,
        price_book: true,
        tier_modifiers: true,
        token_estimation: true,
        unexplained: true,
    };

    /// Only `kind` injected.
    pub fn only(kind: CauseKind) -> Causes {
        let mut c = Causes::NONE;
        match kind {
            CauseKind::NonTokenFees => c.non_token_fees = true,
            CauseKind::UntracedCalls => c.untraced_calls = true,
            CauseKind::CacheAccounting => c.cache_accounting = true,
            CauseKind::ReasoningTokens => c.reasoning_tokens = true,
            CauseKind::PriceBook => c.price_book = true,
            CauseKind::TierModifiers => c.tier_modifiers = true,
            CauseKind::TokenEstimation => c.token_estimation = true,
            CauseKind::Unexplained => c.unexplained = true,
        }
        c
    }
}

/// How the invoice is exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceFormat {
    /// API pages: OpenAI usage pages one file each, costs as one JSON array of pages; Anthropic usage and
    /// cost reports as one file of pages each.
    ApiJson,
    /// The four dashboard CSV exports.
    Csv,
}

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Scenario {
    pub seed: u64,
    /// The first day of the month (UTC).
    pub month: Date,
    /// Traffic volume: 1.0 is about 4,000 traced requests a month over both providers.
    pub scale: f64,
    pub openai: bool,
    pub anthropic: bool,
    pub causes: Causes,
    pub format: InvoiceFormat,
}

impl Scenario {
    /// The bundled demo month: October 2026, both providers, every cause, API JSON invoices.
    pub fn bundled() -> Scenario {
        Scenario {
            seed: 202_610,
            month: Date::new(2026, 10, 1).expect("valid date"),
            scale: 1.0,
            openai: true,
            anthropic: true,
            causes: Causes::ALL,
            format: InvoiceFormat::ApiJson,
        }
    }

    pub fn window(&self) -> Window {
        let first = self.month.first_of_month();
        let next = first.last_of_month().tomorrow().unwrap_or(first);
        Window::new(crate::reconcile::window::utc_midnight(first), crate::reconcile::window::utc_midnight(next))
            .expect("a month is not empty")
    }
}

/// The true attribution of a generated month, exact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Expected {
    pub invoice: Usd,
    pub traces: Usd,
    /// In the order of CLI.md; they sum to `invoice − traces` exactly.
    pub causes: [Usd; 8],
    /// The untraced calls by billed model (for tests of the evidence and of the estimates).
    pub untraced_by_model: std::collections::BTreeMap<String, Usd>,
}

impl Expected {
    pub fn gap(&self) -> Usd {
        self.invoice - self.traces
    }
}

/// A generated month: its invoice files, its traced rows, and the truth.
#[derive(Debug, Clone)]
pub struct Month {
    pub scenario: Scenario,
    /// (file name, content).
    pub invoice_files: Vec<(String, String)>,
    pub rows: Vec<RequestRow>,
    pub expected: Expected,
}

/// Simulates a whole month in memory (for tests and fixtures; the benchmark streams with [`rows`]).
pub fn month(scenario: &Scenario, book: &PriceBook) -> Month {
    let mut billed = files::BilledMonth::new(scenario);
    let mut truth = truth::Truth::new(book, scenario.window().last_day(), scenario.causes);
    let mut rows = Vec::new();
    for call in traffic::calls(scenario, book) {
        truth.add(&call);
        billed.add(&call);
        if let Some(row) = call.traced {
            rows.push(row);
        }
    }
    let (invoice_files, extras) = billed.finish();
    truth.add_lines(&extras);
    let expected = truth.expected();
    Month { scenario: *scenario, invoice_files, rows, expected }
}

/// The invoice files and the truth, without keeping the rows.
pub fn invoice(scenario: &Scenario, book: &PriceBook) -> (Vec<(String, String)>, Expected) {
    let mut billed = files::BilledMonth::new(scenario);
    let mut truth = truth::Truth::new(book, scenario.window().last_day(), scenario.causes);
    for call in traffic::calls(scenario, book) {
        truth.add(&call);
        billed.add(&call);
    }
    let (invoice_files, extras) = billed.finish();
    truth.add_lines(&extras);
    (invoice_files, truth.expected())
}

/// The traced rows of a month, generated lazily one day at a time (memory does not grow with the month).
pub fn rows<'b>(scenario: &Scenario, book: &'b PriceBook) -> impl Iterator<Item = RequestRow> + use<'b> {
    traffic::calls(scenario, book).filter_map(|call| call.traced)
}

/// The files of a bundled month, by path relative to its directory: the traces as promptctl JSONL, the
/// invoice as API pages (`invoice/`) and as dashboard CSV exports (`invoice-csv/`), and the expected
/// attribution (`expected.json`). The same scenario always gives the same bytes.
pub fn fixture_files(scenario: &Scenario, book: &PriceBook) -> Vec<(String, String)> {
    let api = Scenario { format: InvoiceFormat::ApiJson, ..*scenario };
    let csv = Scenario { format: InvoiceFormat::Csv, ..*scenario };
    let month = month(&api, book);
    let (csv_files, csv_expected) = invoice(&csv, book);
    debug_assert_eq!(csv_expected, month.expected);
    let mut traces = String::new();
    for row in &month.rows {
        traces.push_str(&trace_jsonl_line(row));
        traces.push('\n');
    }
    let mut out = vec![("traces.jsonl".to_string(), traces)];
    out.extend(month.invoice_files.iter().map(|(name, text)| (format!("invoice/{name}"), text.clone())));
    out.extend(csv_files.into_iter().map(|(name, text)| (format!("invoice-csv/{name}"), text)));
    out.push(("expected.json".to_string(), expected_json(&api, &month)));
    out
}

fn expected_json(scenario: &Scenario, month: &Month) -> String {
    let exact = |usd: Usd| files::dollars(usd);
    let causes: serde_json::Map<String, serde_json::Value> = CauseKind::ALL
        .iter()
        .zip(month.expected.causes)
        .map(|(kind, usd)| (kind.name().to_string(), serde_json::Value::String(exact(usd))))
        .collect();
    let window = scenario.window();
    let doc = serde_json::json!({
        "about": "The true attribution of this generated month (src/reconcile/generate), exact in dollars: each cause is CLI.md's definition applied request by request.",
        "scenario": scenario,
        "window": { "start": window.start.to_string(), "end": window.end.to_string() },
        "requests_traced": month.rows.len(),
        "invoice_usd": exact(month.expected.invoice),
        "traces_usd": exact(month.expected.traces),
        "gap_usd": exact(month.expected.gap()),
        "causes": causes,
    });
    serde_json::to_string_pretty(&doc).expect("serializes") + "\n"
}
