//! The per-conversation view: with each request's corrected cost (its cell's billed value shared over the
//! cell's requests by their tokens, billed retries and usage-less streams included), what conversations
//! cost against their turn count, next to the naive "median request × requests" figure.

use serde::Serialize;

use super::catalog::GroupKey;
use super::fit::power_law;
use super::traced::{NO_CONVERSATION, Traces};
use super::value::mul_div;
use super::waterfall::{GroupFactors, Outcome};
use crate::money::Usd;
use crate::pricing::Provider;
use crate::trace::model::RequestStatus;

#[derive(Debug, Clone, Serialize)]
pub struct ConversationView {
    pub conversations: u64,
    /// Traced requests with usage (in conversations or not).
    pub requests: u64,
    pub median_request: Usd,
    /// What a per-call dashboard extrapolates: the median request times the number of requests.
    pub naive_usd: Usd,
    /// The corrected cost of the same requests plus the billed attempts that left no usage in the traces.
    pub actual_usd: Usd,
    /// Mean conversation cost ∝ calls^exponent, fitted on the mean cost at each call count (log-log), with
    /// the fit's R²: for the largest provider's conversations, and for each provider in `curves`.
    pub exponent: Option<f64>,
    pub r_squared: Option<f64>,
    pub curves: Vec<Curve>,
    pub p50: Usd,
    pub p95: Usd,
    pub p99: Usd,
    /// Share of conversation cost in the costliest 10 % of conversations.
    pub top_decile_share: f64,
    pub by_turns: Vec<TurnBin>,
}

/// The cost curve of one provider's conversations.
#[derive(Debug, Clone, Serialize)]
pub struct Curve {
    pub provider: Provider,
    pub conversations: u64,
    pub exponent: Option<f64>,
    pub r_squared: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TurnBin {
    pub turns: String,
    pub conversations: u64,
    pub mean_usd: Usd,
    pub median_usd: Usd,
}

const BINS: &[(u32, u32, &str)] = &[
    (1, 1, "1"),
    (2, 2, "2"),
    (3, 4, "3–4"),
    (5, 8, "5–8"),
    (9, 16, "9–16"),
    (17, 32, "17–32"),
    (33, u32::MAX, "33+"),
];

pub fn view(traces: &Traces, outcome: &Outcome) -> Option<ConversationView> {
    let factors = |group: GroupKey| outcome.factors.get(&group).copied().unwrap_or_default();
    let mut per_request: Vec<i128> = Vec::with_capacity(traces.rows.len());
    let mut per_conversation = vec![0i128; traces.conversations()];
    for row in &traces.rows {
        let f = factors(outcome.group_of[row.group as usize]);
        let cost = mul_div(row.weight as i128, f.traced_value.0, f.traced_weight);
        per_request.push(cost);
        if row.conversation != NO_CONVERSATION {
            per_conversation[row.conversation as usize] += cost;
        }
    }
    let mut usage_less_total = 0i128;
    for row in &traces.usage_less {
        let f = factors(row.group);
        let weight = row.estimate.map_or(f.mean_weight, |e| i128::from(e.weight));
        let cost = usage_less_cost(row.status, weight, &f);
        usage_less_total += cost;
        if row.conversation != NO_CONVERSATION {
            per_conversation[row.conversation as usize] += cost;
        }
    }
    if per_request.is_empty() {
        return None;
    }
    let actual = per_request.iter().sum::<i128>() + usage_less_total;
    let median_request = median(&mut per_request);
    let curve: Vec<(u32, i128)> = traces
        .conversation_turns
        .iter()
        .zip(&per_conversation)
        .filter(|(turns, _)| **turns > 0)
        .map(|(t, c)| (*t, *c))
        .collect();
    let curves = curves(traces, &per_conversation);
    let main = curves.iter().max_by_key(|c| c.conversations);
    let mut costs: Vec<i128> = curve.iter().map(|(_, c)| *c).collect();
    costs.sort_unstable();
    Some(ConversationView {
        conversations: curve.len() as u64,
        requests: traces.rows.len() as u64,
        median_request: Usd(median_request),
        naive_usd: Usd(median_request * traces.rows.len() as i128),
        actual_usd: Usd(actual),
        exponent: main.and_then(|c| c.exponent),
        r_squared: main.and_then(|c| c.r_squared),
        curves,
        p50: Usd(quantile(&costs, 0.50)),
        p95: Usd(quantile(&costs, 0.95)),
        p99: Usd(quantile(&costs, 0.99)),
        top_decile_share: top_decile_share(&costs),
        by_turns: bins(&curve),
    })
}

/// A row without usage costs its share of the cell's billed value times the chance it was billed.
fn usage_less_cost(status: RequestStatus, weight: i128, f: &GroupFactors) -> i128 {
    let (num, den) = if status == RequestStatus::Error { f.billed_share_error } else { f.billed_share_ok };
    if den == 0 || f.untraced_weight == 0 {
        return 0;
    }
    mul_div(mul_div(f.untraced_value.0, weight, f.untraced_weight), num, den)
}

/// One curve per provider.
fn curves(traces: &Traces, per_conversation: &[i128]) -> Vec<Curve> {
    let mut providers: Vec<Provider> = traces.conversation_provider.clone();
    providers.sort();
    providers.dedup();
    providers
        .into_iter()
        .map(|provider| {
            let points: Vec<(u32, i128)> = (0..per_conversation.len())
                .filter(|&i| traces.conversation_provider[i] == provider && traces.conversation_turns[i] > 0)
                .map(|i| (traces.conversation_turns[i], per_conversation[i]))
                .collect();
            let fit = power_law(mean_by_turns(&points).into_iter());
            Curve {
                provider,
                conversations: points.len() as u64,
                exponent: fit.map(|f| f.0),
                r_squared: fit.map(|f| f.2),
            }
        })
        .collect()
}

/// (turns, mean cost) for every turn count with at least three conversations: the curve, with the mix of
/// cheap and expensive conversations averaged out at each length.
fn mean_by_turns(curve: &[(u32, i128)]) -> Vec<(f64, f64)> {
    let mut sums: std::collections::BTreeMap<u32, (i128, u32)> = std::collections::BTreeMap::new();
    for (turns, cost) in curve {
        let e = sums.entry(*turns).or_default();
        e.0 += cost;
        e.1 += 1;
    }
    sums.into_iter().filter(|(_, (_, n))| *n >= 3).map(|(t, (sum, n))| (t as f64, sum as f64 / n as f64)).collect()
}

fn median(values: &mut [i128]) -> i128 {
    let mid = values.len() / 2;
    *values.select_nth_unstable(mid).1
}

/// The `q` quantile of sorted values (nearest rank).
fn quantile(sorted: &[i128], q: f64) -> i128 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn top_decile_share(sorted: &[i128]) -> f64 {
    let total: i128 = sorted.iter().sum();
    if total <= 0 {
        return 0.0;
    }
    let top = sorted.len().div_ceil(10);
    sorted[sorted.len() - top..].iter().sum::<i128>() as f64 / total as f64
}

fn bins(curve: &[(u32, i128)]) -> Vec<TurnBin> {
    BINS.iter()
        .filter_map(|&(lo, hi, label)| {
            let mut costs: Vec<i128> = curve.iter().filter(|(t, _)| (lo..=hi).contains(t)).map(|(_, c)| *c).collect();
            if costs.is_empty() {
                return None;
            }
            let n = costs.len() as i128;
            let mean = costs.iter().sum::<i128>() / n;
            Some(TurnBin {
                turns: label.to_string(),
                conversations: n as u64,
                mean_usd: Usd(mean),
                median_usd: Usd(median(&mut costs)),
            })
        })
        .collect()
}
