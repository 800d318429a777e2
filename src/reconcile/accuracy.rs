//! Accuracy on generated months: every cause, injected alone and all together, on both providers, with
//! API JSON and CSV invoices, must come out within 2 % of the gap of its true size; a clean month must
//! attribute nothing.

use super::generate::{self, Causes, InvoiceFormat, Month, Scenario};
use super::invoice;
use super::report::CauseKind;
use super::{Reconciliation, reconcile};
use crate::money::Usd;
use crate::pricing::PriceBook;

/// Tests run unoptimized: a few thousand requests a month keep them quick and still give every cause a
/// size well above the noise.
const SCALE: f64 = 2.0;

/// Untraced calls alone are estimated from few calls (a few percent of a month's requests), so their
/// month needs more traffic for the sampling noise to stay well inside the 2 % the test allows.
const UNTRACED_SCALE: f64 = 6.0;

fn scenario(causes: Causes, format: InvoiceFormat, seed: u64) -> Scenario {
    let scale = if causes == Causes::only(CauseKind::UntracedCalls) { UNTRACED_SCALE } else { SCALE };
    Scenario { seed, scale, causes, format, ..Scenario::bundled() }
}

/// Generates a month, reads its invoice files back through the importers, reconciles.
pub(crate) fn run(scenario: &Scenario) -> (Month, Reconciliation) {
    let book = PriceBook::embedded();
    let mut month = generate::month(scenario, book);
    let window = scenario.window();
    let files = month
        .invoice_files
        .iter()
        .enumerate()
        .map(|(i, (name, text))| invoice::read(text, name, i).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    let combined = invoice::combine(files, &window).unwrap();
    let rows = std::mem::take(&mut month.rows);
    let result = reconcile(book, &combined, rows, window).unwrap();
    (month, result)
}

/// Each cause within `tolerance` × |gap| of its truth; a description of any that is not.
fn misses(month: &Month, result: &Reconciliation, tolerance: f64) -> Vec<String> {
    let gap = month.expected.gap().0.abs() as f64;
    let allowed = (gap * tolerance).max(1e10);
    let mut out = Vec::new();
    if result.invoice.usd != month.expected.invoice {
        out.push(format!("invoice {} expected {}", result.invoice.usd, month.expected.invoice));
    }
    if result.traces.usd != month.expected.traces {
        out.push(format!("traces {} expected {}", result.traces.usd, month.expected.traces));
    }
    for (i, kind) in CauseKind::ALL.iter().enumerate() {
        let got = result.cause(*kind).usd;
        let want = month.expected.causes[i];
        if ((got - want).0.abs() as f64) > allowed {
            out.push(format!(
                "{}: got {got} expected {want} (off by {:.2} % of the gap {})",
                kind.name(),
                (got - want).0.abs() as f64 / gap.max(1.0) * 100.0,
                month.expected.gap()
            ));
        }
    }
    out
}

fn table(month: &Month, result: &Reconciliation) -> String {
    let mut s = format!(
        "invoice {} traces {} gap {} (expected {})\n",
        result.invoice.usd,
        result.traces.usd,
        result.gap(),
        month.expected.gap()
    );
    for (i, kind) in CauseKind::ALL.iter().enumerate() {
        s += &format!(
            "  {:18} got {:>14} want {:>14}\n",
            kind.name(),
            result.cause(*kind).usd.to_string(),
            month.expected.causes[i].to_string()
        );
    }
    s
}

fn check(causes: Causes, format: InvoiceFormat, seed: u64) {
    let (month, result) = run(&scenario(causes, format, seed));
    let problems = misses(&month, &result, 0.02);
    assert!(problems.is_empty(), "{causes:?} {format:?}:\n{}\n{}", problems.join("\n"), table(&month, &result));
}

#[test]
fn a_clean_month_attributes_nothing() {
    for format in [InvoiceFormat::ApiJson, InvoiceFormat::Csv] {
        let (month, result) = run(&scenario(Causes::NONE, format, 11));
        assert_eq!(month.expected.gap(), Usd::ZERO);
        assert_eq!(result.gap(), Usd::ZERO, "{}", table(&month, &result));
        for cause in &result.causes {
            assert!(
                cause.usd.0.abs() < 1_000_000,
                "{}: {} in a clean month\n{}",
                cause.kind.name(),
                cause.usd,
                table(&month, &result)
            );
        }
    }
}

#[test]
fn each_cause_alone_comes_out_at_its_true_size() {
    for (i, kind) in CauseKind::ALL.iter().enumerate() {
        for format in [InvoiceFormat::ApiJson, InvoiceFormat::Csv] {
            check(Causes::only(*kind), format, 100 + i as u64);
        }
    }
}

#[test]
fn all_causes_together_over_several_seeds() {
    for seed in 30..33 {
        check(Causes::ALL, InvoiceFormat::ApiJson, seed);
    }
}

#[test]
fn all_causes_together_with_api_json_invoices() {
    check(Causes::ALL, InvoiceFormat::ApiJson, 7);
}

#[test]
fn all_causes_together_with_csv_invoices() {
    check(Causes::ALL, InvoiceFormat::Csv, 8);
}

#[test]
fn each_provider_alone() {
    for (openai, anthropic) in [(true, false), (false, true)] {
        let s = Scenario { openai, anthropic, ..scenario(Causes::ALL, InvoiceFormat::ApiJson, 21) };
        let (month, result) = run(&s);
        let problems = misses(&month, &result, 0.02);
        assert!(
            problems.is_empty(),
            "openai={openai} anthropic={anthropic}:\n{}\n{}",
            problems.join("\n"),
            table(&month, &result)
        );
    }
}
