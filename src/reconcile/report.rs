//! The result of a reconciliation, exact, and its rounding to cents for output: every rounded figure set
//! is allocated so that the identities hold to the cent (causes sum to the gap; gap = invoice − traces).

use serde::Serialize;

use super::conversations::ConversationView;
use super::fit::EstimationFit;
use super::window::Window;
use crate::money::{PICOS_PER_USD, Usd};
use crate::pricing::Provider;

/// The eight causes, in the order of CLI.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    NonTokenFees,
    UntracedCalls,
    CacheAccounting,
    ReasoningTokens,
    PriceBook,
    TierModifiers,
    TokenEstimation,
    Unexplained,
}

impl CauseKind {
    pub const ALL: [CauseKind; 8] = [
        CauseKind::NonTokenFees,
        CauseKind::UntracedCalls,
        CauseKind::CacheAccounting,
        CauseKind::ReasoningTokens,
        CauseKind::PriceBook,
        CauseKind::TierModifiers,
        CauseKind::TokenEstimation,
        CauseKind::Unexplained,
    ];

    /// The name in JSON.
    pub fn name(self) -> &'static str {
        match self {
            CauseKind::NonTokenFees => "non_token_fees",
            CauseKind::UntracedCalls => "untraced_calls",
            CauseKind::CacheAccounting => "cache_accounting",
            CauseKind::ReasoningTokens => "reasoning_tokens",
            CauseKind::PriceBook => "price_book",
            CauseKind::TierModifiers => "tier_modifiers",
            CauseKind::TokenEstimation => "token_estimation",
            CauseKind::Unexplained => "unexplained",
        }
    }

    /// For people.
    pub fn title(self) -> &'static str {
        match self {
            CauseKind::NonTokenFees => "non-token fees",
            CauseKind::UntracedCalls => "untraced calls",
            CauseKind::CacheAccounting => "cache accounting",
            CauseKind::ReasoningTokens => "reasoning tokens",
            CauseKind::PriceBook => "price book",
            CauseKind::TierModifiers => "tiers and modifiers",
            CauseKind::TokenEstimation => "token estimation",
            CauseKind::Unexplained => "unexplained",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Cause {
    pub kind: CauseKind,
    pub usd: Usd,
    /// For untraced calls: billed requests without traced usage (negative: traced but not billed).
    pub requests: Option<i64>,
    pub evidence: Vec<String>,
}

/// One side's totals over the window.
#[derive(Debug, Clone, Default)]
pub struct Side {
    pub usd: Usd,
    /// All input tokens: uncached, cache reads and cache writes.
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Invoice: billed requests where reported. Traces: traced rows in the window.
    pub requests: u64,
}

#[derive(Debug, Clone)]
pub struct ModelBreakdown {
    pub provider: Provider,
    pub model: String,
    pub invoice: Usd,
    pub traces: Usd,
    /// Causes 2–7 for this model's cells, and what they left (index 7).
    pub causes: [Usd; 8],
}

#[derive(Debug, Clone)]
pub struct ProviderSummary {
    pub provider: Provider,
    pub invoice: Usd,
    pub traces: Usd,
    pub cost_lines: bool,
    pub requests_reported: bool,
    pub projects_compared: bool,
    pub billed_attempts: u64,
    pub logical_requests: u64,
}

#[derive(Debug, Clone)]
pub struct Fit {
    pub provider: Provider,
    pub model: String,
    pub fit: EstimationFit,
}

#[derive(Debug, Clone)]
pub struct Reconciliation {
    pub window: Window,
    pub invoice: Side,
    pub traces: Side,
    pub causes: Vec<Cause>,
    pub by_model: Vec<ModelBreakdown>,
    pub providers: Vec<ProviderSummary>,
    pub fits: Vec<Fit>,
    pub conversations: Option<ConversationView>,
    pub notes: Vec<String>,
}

impl Reconciliation {
    pub fn gap(&self) -> Usd {
        self.invoice.usd - self.traces.usd
    }

    pub fn cause(&self, kind: CauseKind) -> &Cause {
        self.causes.iter().find(|c| c.kind == kind).expect("all eight causes are present")
    }

    /// |unexplained| ÷ |gap|; 0 when there is no gap and nothing unexplained.
    pub fn unexplained_share(&self) -> f64 {
        let unexplained = self.cause(CauseKind::Unexplained).usd.0.abs() as f64;
        let gap = self.gap().0.abs() as f64;
        if gap == 0.0 { if unexplained == 0.0 { 0.0 } else { f64::INFINITY } } else { unexplained / gap }
    }

    /// Every figure in whole cents, with the identities kept.
    pub fn rounded(&self) -> Rounded {
        let invoice = cents(self.invoice.usd);
        let traces = cents(self.traces.usd);
        let gap = invoice - traces;
        let causes = cents_summing_to(gap, &self.causes.iter().map(|c| c.usd).collect::<Vec<_>>());
        let by_model = self
            .by_model
            .iter()
            .map(|m| {
                let (invoice, traces) = (cents(m.invoice), cents(m.traces));
                let causes = cents_summing_to(invoice - traces, &m.causes);
                RoundedModel { invoice, traces, gap: invoice - traces, causes }
            })
            .collect();
        Rounded { invoice, traces, gap, causes, by_model }
    }
}

/// The report in cents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rounded {
    pub invoice: i64,
    pub traces: i64,
    pub gap: i64,
    pub causes: Vec<i64>,
    pub by_model: Vec<RoundedModel>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoundedModel {
    pub invoice: i64,
    pub traces: i64,
    pub gap: i64,
    pub causes: Vec<i64>,
}

const PICOS_PER_CENT: i128 = PICOS_PER_USD / 100;

/// Whole cents, half away from zero.
pub fn cents(usd: Usd) -> i64 {
    super::value::round_div(usd.0, PICOS_PER_CENT) as i64
}

/// Dollars for JSON from whole cents.
pub fn dollars(cents: i64) -> f64 {
    cents as f64 / 100.0
}

/// Rounds `parts` to cents so that they sum to `total` cents: each part is floored, and the cents still
/// missing go to the parts with the largest remainders (taken back from the smallest when the parts
/// round above the total). No part moves by a cent or more unless the total is more than a cent from the
/// parts' own sum.
pub fn cents_summing_to(total: i64, parts: &[Usd]) -> Vec<i64> {
    if parts.is_empty() {
        return Vec::new();
    }
    let mut rounded: Vec<i64> = parts.iter().map(|p| p.0.div_euclid(PICOS_PER_CENT) as i64).collect();
    let remainders: Vec<i128> = parts.iter().map(|p| p.0.rem_euclid(PICOS_PER_CENT)).collect();
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| (std::cmp::Reverse(remainders[i]), i));
    let mut missing = total - rounded.iter().sum::<i64>();
    let mut turn = 0usize;
    while missing != 0 {
        if missing > 0 {
            rounded[order[turn % order.len()]] += 1;
            missing -= 1;
        } else {
            rounded[order[order.len() - 1 - turn % order.len()]] -= 1;
            missing += 1;
        }
        turn += 1;
    }
    rounded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        Usd::parse_decimal(text, 0).unwrap()
    }

    #[test]
    fn causes_sum_to_the_gap_after_rounding() {
        let parts = [usd("0.004"), usd("0.004"), usd("0.004"), usd("1.333"), usd("-0.335")];
        let total: Usd = parts.iter().copied().sum();
        let gap = cents(total);
        let rounded = cents_summing_to(gap, &parts);
        assert_eq!(rounded.iter().sum::<i64>(), gap);
        // Each part moved by less than a cent.
        for (r, p) in rounded.iter().zip(parts) {
            assert!((*r as f64 - p.as_f64() * 100.0).abs() < 1.0, "{r} vs {p:?}");
        }
    }

    #[test]
    fn a_total_off_by_a_cent_is_absorbed() {
        // invoice and traces rounded apart: 0.005 − 0.004 rounds to 0.01 − 0.00 = 1 cent.
        let parts = [usd("0.0005"), usd("0.0005")];
        let rounded = cents_summing_to(1, &parts);
        assert_eq!(rounded.iter().sum::<i64>(), 1);
        let negative = cents_summing_to(-3, &[usd("-0.011"), usd("-0.011")]);
        assert_eq!(negative.iter().sum::<i64>(), -3);
    }

    #[test]
    fn random_splits_always_add_up() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let parts: Vec<Usd> = (0..8)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    Usd((state % 2_000_000_000_000_000) as i128 - 1_000_000_000_000_000)
                })
                .collect();
            let total: Usd = parts.iter().copied().sum();
            let gap = cents(total);
            let rounded = cents_summing_to(gap, &parts);
            assert_eq!(rounded.iter().sum::<i64>(), gap);
            for (r, p) in rounded.iter().zip(&parts) {
                assert!((*r as i128 * PICOS_PER_CENT - p.0).abs() < 2 * PICOS_PER_CENT);
            }
        }
    }
}
