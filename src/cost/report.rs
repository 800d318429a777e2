//! The cost of the distribution a product serves, not of its median request: per-request percentiles
//! against the naive "median request × count", per-conversation cost and its curve over turns, the
//! share of spend in the most expensive conversations, and what retries add.

use std::collections::BTreeMap;

use serde::Serialize;

use super::fit::{PowerFit, power_law};
use super::price::{Pricing, Unpriced, WithoutUsage};
use crate::money::Usd;
use crate::stats::percentile::Percentiles;
use crate::trace::records::{Call, CallParts, Calls, FastMap, Sym, Symbols};
use crate::trace::stats::prompt_key;

/// How `--by` groups requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum GroupBy {
    Model,
    Prompt,
    Conversation,
    Tenant,
}

/// Dollars for JSON and display. Sums are always taken on exact [`Usd`] and converted last.
pub fn dollars(usd: Usd) -> f64 {
    usd.round_to(9)
}

/// Percentiles of per-item cost in USD.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CostSpread {
    pub n: u64,
    pub mean: Option<f64>,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p95: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl CostSpread {
    fn of(costs: &[Usd]) -> CostSpread {
        let p = Percentiles::new(costs.iter().map(|c| c.as_f64())).unwrap_or_default();
        let total: Usd = costs.iter().copied().sum();
        CostSpread {
            n: costs.len() as u64,
            mean: (!costs.is_empty()).then(|| total.as_f64() / costs.len() as f64),
            p50: p.percentile(50.0),
            p90: p.percentile(90.0),
            p95: p.percentile(95.0),
            p99: p.percentile(99.0),
            max: p.max(),
        }
    }
}

/// What a per-token view of the median request predicts, against what was spent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NaiveComparison {
    pub median_request_usd: f64,
    /// Logical requests served (retries not counted): what a product counts as "requests".
    pub logical_requests: u64,
    /// median × logical requests.
    pub naive_usd: f64,
    /// The priced total, retries and tails included.
    pub all_in_usd: f64,
    /// all-in ÷ naive.
    pub ratio: Option<f64>,
}

/// What retries add.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Attempts {
    /// Rows: every attempt.
    pub attempts: u64,
    /// Attempts that consumed tokens (with usage): the ones that were billed.
    pub billed_attempts: u64,
    pub logical_requests: u64,
    /// attempts ÷ logical requests.
    pub attempts_per_request: f64,
    /// billed attempts ÷ logical requests.
    pub retry_amplification: f64,
    /// Cost of attempts that were not their request's last.
    pub retried_attempts_usd: f64,
    /// Cost of attempts that ended in an error, timeout or cancellation.
    pub failed_attempts_usd: f64,
}

/// One bucket of the conversation cost curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TurnBucket {
    pub turns_from: u64,
    pub turns_to: u64,
    pub conversations: u64,
    pub mean_usd: f64,
    pub median_usd: f64,
    /// Mean cost per turn: flat for a linear curve, rising for a super-linear one.
    pub mean_usd_per_turn: f64,
}

/// Per-conversation cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversations {
    pub conversations: u64,
    /// Conversations with at least one request that could not be priced (their cost is a lower bound).
    pub partly_priced: u64,
    pub cost: CostSpread,
    pub total_usd: f64,
    pub top_1pct_share: f64,
    pub top_5pct_share: f64,
    /// cost ≈ scale × turnsᵉˣᵖᵒⁿᵉⁿᵗ; `None` when it cannot be fitted (see `fit_error`).
    pub fit: Option<PowerFit>,
    pub fit_error: Option<String>,
    pub curve: Vec<TurnBucket>,
    /// Requests without a conversation id (not in these figures).
    pub requests_without_conversation: u64,
}

/// One group of `--by`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupCost {
    pub key: String,
    pub requests: u64,
    pub priced: u64,
    pub unpriced: u64,
    pub usd: f64,
    /// Exact, in pico-dollars, as a string (JSON numbers lose precision).
    pub picodollars: String,
    pub share: f64,
    pub cost: CostSpread,
}

/// A cost report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostReport {
    pub requests: u64,
    pub priced: u64,
    pub unpriced: Vec<Unpriced>,
    pub without_usage: WithoutUsage,
    pub total_usd: f64,
    /// Exact total in pico-dollars, as a string: the sum of every priced row.
    pub total_picodollars: String,
    pub per_request: CostSpread,
    pub naive: NaiveComparison,
    pub attempts: Attempts,
    pub conversations: Conversations,
    pub by: GroupBy,
    pub groups: Vec<GroupCost>,
    /// The exact total, for callers (not serialized).
    #[serde(skip)]
    pub total: Usd,
    /// Per-request priced costs, for plots.
    #[serde(skip)]
    pub request_costs: Vec<Usd>,
    /// (turns, cost) per conversation, for plots.
    #[serde(skip)]
    pub conversation_points: Vec<(u64, Usd)>,
}

/// A logical request's identity: its logical id, or the row itself.
fn logical_key(c: &Call) -> u64 {
    c.logical.unwrap_or(!(c.id as u64))
}

/// Which rows are the last attempt of their logical request, and how many logical requests there are.
/// Sorting the keys and reading runs touches memory in order; a hash map of a million keys would miss
/// the cache on nearly every access.
struct LastAttempts {
    is_last: Vec<bool>,
    logical_requests: u64,
}

fn last_attempts(calls: &Calls) -> LastAttempts {
    let mut keys: Vec<(u64, u32, u32)> =
        calls.calls.iter().enumerate().map(|(i, c)| (logical_key(c), c.attempt, i as u32)).collect();
    keys.sort_unstable();
    let mut is_last = vec![false; calls.calls.len()];
    let mut logical_requests = 0;
    for (n, &(key, _, index)) in keys.iter().enumerate() {
        if keys.get(n + 1).is_none_or(|next| next.0 != key) {
            is_last[index as usize] = true;
            logical_requests += 1;
        }
    }
    LastAttempts { is_last, logical_requests }
}

/// What [`report`] (and the pricing it takes) reads of each call grouped `by`: conversations always,
/// tenant and prompt only to group by them, none of the stream timing.
pub fn call_parts(by: GroupBy) -> CallParts {
    CallParts { conversation: true, tenant: by == GroupBy::Tenant, prompt: by == GroupBy::Prompt, timing: false }
}

/// Builds the report. `top` limits the groups listed for `--by conversation`.
pub fn report(calls: &Calls, pricing: &Pricing, by: GroupBy, top: usize) -> CostReport {
    let mut request_costs: Vec<Usd> = Vec::with_capacity(calls.calls.len());
    let mut total = Usd::ZERO;
    for (i, _) in calls.calls.iter().enumerate() {
        if let Some(usd) = pricing.known(i) {
            request_costs.push(usd);
            total += usd;
        }
    }
    // Two independent halves, each a few sorts of up to a million values: on two cores, side by side.
    let ((per_request, groups), (attempts, (conversations, conversation_points))) = rayon::join(
        || (CostSpread::of(&request_costs), groups(calls, pricing, by, total, top)),
        || {
            let last = last_attempts(calls);
            (attempts(calls, pricing, &last), conversations(calls, pricing, &last))
        },
    );
    let median = per_request.p50.unwrap_or(0.0);
    let naive_usd = median * attempts.logical_requests as f64;
    CostReport {
        requests: calls.calls.len() as u64,
        priced: request_costs.len() as u64,
        unpriced: pricing.unpriced.clone(),
        without_usage: pricing.without_usage,
        total_usd: dollars(total),
        total_picodollars: total.0.to_string(),
        per_request,
        naive: NaiveComparison {
            median_request_usd: median,
            logical_requests: attempts.logical_requests,
            naive_usd,
            all_in_usd: dollars(total),
            ratio: (naive_usd > 0.0).then(|| total.as_f64() / naive_usd),
        },
        attempts,
        conversations,
        by,
        groups,
        total,
        request_costs,
        conversation_points,
    }
}

fn attempts(calls: &Calls, pricing: &Pricing, last: &LastAttempts) -> Attempts {
    let (mut retried, mut failed) = (Usd::ZERO, Usd::ZERO);
    let mut billed = 0;
    for (i, c) in calls.calls.iter().enumerate() {
        if c.usage_source != crate::trace::model::UsageSource::Missing {
            billed += 1;
        }
        let Some(usd) = pricing.known(i) else { continue };
        if !last.is_last[i] {
            retried += usd;
        }
        if c.status != crate::trace::model::RequestStatus::Ok {
            failed += usd;
        }
    }
    let logical = last.logical_requests;
    let per = |n: u64| if logical == 0 { 0.0 } else { n as f64 / logical as f64 };
    Attempts {
        attempts: calls.calls.len() as u64,
        billed_attempts: billed,
        logical_requests: logical,
        attempts_per_request: per(calls.calls.len() as u64),
        retry_amplification: per(billed),
        retried_attempts_usd: dollars(retried),
        failed_attempts_usd: dollars(failed),
    }
}

#[derive(Default, Clone, Copy)]
struct Conversation {
    cost: Usd,
    /// Logical requests: each counted at its last attempt.
    turns: u64,
    unpriced: bool,
    seen: bool,
}

fn conversations(calls: &Calls, pricing: &Pricing, last: &LastAttempts) -> (Conversations, Vec<(u64, Usd)>) {
    // Symbols are dense, so conversations can live in an array indexed by their symbol.
    let mut by_id: Vec<Conversation> = vec![Conversation::default(); calls.symbols.len()];
    let mut without = 0;
    for (i, c) in calls.calls.iter().enumerate() {
        let Some(id) = c.conversation else {
            without += 1;
            continue;
        };
        let conv = &mut by_id[Symbols::index(id)];
        conv.seen = true;
        if last.is_last[i] {
            conv.turns += 1;
        }
        match pricing.known(i) {
            Some(usd) => conv.cost += usd,
            None => conv.unpriced = true,
        }
    }
    let seen: Vec<&Conversation> = by_id.iter().filter(|c| c.seen).collect();
    let partly_priced = seen.iter().filter(|c| c.unpriced).count() as u64;
    let mut points: Vec<(u64, Usd)> = seen.iter().map(|c| (c.turns, c.cost)).collect();
    points.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let costs: Vec<Usd> = points.iter().map(|p| p.1).collect();
    let total: Usd = costs.iter().copied().sum();
    let mut descending = costs.clone();
    descending.sort_unstable_by(|a, b| b.cmp(a));
    let top_share = |fraction: f64| {
        if descending.is_empty() || total == Usd::ZERO {
            return 0.0;
        }
        let k = ((descending.len() as f64 * fraction).ceil() as usize).clamp(1, descending.len());
        let top: Usd = descending[..k].iter().copied().sum();
        top.0 as f64 / total.0 as f64
    };
    let fit = power_law(points.iter().map(|(t, c)| (*t, c.as_f64())));
    let out = Conversations {
        conversations: points.len() as u64,
        partly_priced,
        cost: CostSpread::of(&costs),
        total_usd: dollars(total),
        top_1pct_share: top_share(0.01),
        top_5pct_share: top_share(0.05),
        fit: fit.as_ref().ok().copied(),
        fit_error: fit.err().map(|e| e.to_string()),
        curve: curve(&points),
        requests_without_conversation: without,
    };
    (out, points)
}

/// Turn-count buckets: one per count up to 10, then doubling ranges.
fn bucket_of(turns: u64) -> (u64, u64) {
    if turns <= 10 {
        return (turns, turns);
    }
    let mut from = 11;
    let mut to = 20;
    while turns > to {
        from = to + 1;
        to *= 2;
    }
    (from, to)
}

fn curve(points: &[(u64, Usd)]) -> Vec<TurnBucket> {
    let mut buckets: BTreeMap<(u64, u64), Vec<(u64, Usd)>> = BTreeMap::new();
    for &(turns, cost) in points {
        buckets.entry(bucket_of(turns)).or_default().push((turns, cost));
    }
    buckets
        .into_iter()
        .map(|((from, to), items)| {
            let costs: Vec<Usd> = items.iter().map(|i| i.1).collect();
            let total: Usd = costs.iter().copied().sum();
            let turns: u64 = items.iter().map(|i| i.0).sum();
            let spread = CostSpread::of(&costs);
            TurnBucket {
                turns_from: from,
                turns_to: to,
                conversations: items.len() as u64,
                mean_usd: spread.mean.unwrap_or(0.0),
                median_usd: spread.p50.unwrap_or(0.0),
                mean_usd_per_turn: if turns == 0 { 0.0 } else { total.as_f64() / turns as f64 },
            }
        })
        .collect()
}

/// A group's identity from symbols, so that rows are grouped without building their names.
fn group_id(c: &Call, by: GroupBy) -> u64 {
    let index = |s: Option<Sym>| s.map_or(u32::MAX as u64, |s| Symbols::index(s) as u64);
    match by {
        GroupBy::Model => (index(Some(c.provider)) << 32) | index(Some(c.request_model)),
        GroupBy::Prompt => (index(c.prompt_name) << 32) | index(c.prompt_version),
        GroupBy::Conversation => index(c.conversation),
        GroupBy::Tenant => index(c.tenant),
    }
}

fn group_key(calls: &Calls, c: &Call, by: GroupBy) -> String {
    let named = |s: Option<Sym>| s.map_or("(none)".to_string(), |s| calls.name(s).to_string());
    match by {
        GroupBy::Model => calls.model_key(c),
        GroupBy::Prompt => prompt_key(calls, c),
        GroupBy::Conversation => named(c.conversation),
        GroupBy::Tenant => named(c.tenant),
    }
}

fn groups(calls: &Calls, pricing: &Pricing, by: GroupBy, total: Usd, top: usize) -> Vec<GroupCost> {
    struct Acc {
        first: usize,
        requests: u64,
        costs: Vec<Usd>,
        sum: Usd,
    }
    let mut map: FastMap<u64, Acc> = FastMap::default();
    for (i, c) in calls.calls.iter().enumerate() {
        let acc =
            map.entry(group_id(c, by)).or_insert(Acc { first: i, requests: 0, costs: Vec::new(), sum: Usd::ZERO });
        acc.requests += 1;
        if let Some(usd) = pricing.known(i) {
            acc.costs.push(usd);
            acc.sum += usd;
        }
    }
    let mut named: Vec<(String, Acc)> =
        map.into_values().map(|acc| (group_key(calls, &calls.calls[acc.first], by), acc)).collect();
    named.sort_by(|a, b| b.1.sum.cmp(&a.1.sum).then(a.0.cmp(&b.0)));
    if by == GroupBy::Conversation {
        named.truncate(top);
    }
    named
        .into_iter()
        .map(|(key, acc)| GroupCost {
            key,
            requests: acc.requests,
            priced: acc.costs.len() as u64,
            unpriced: acc.requests - acc.costs.len() as u64,
            usd: dollars(acc.sum),
            picodollars: acc.sum.0.to_string(),
            share: if total == Usd::ZERO { 0.0 } else { acc.sum.0 as f64 / total.0 as f64 },
            cost: CostSpread::of(&acc.costs),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::price::price_calls;
    use crate::pricing::PriceBook;
    use crate::trace::generate::{GenerateConfig, generate};
    use crate::trace::model::RequestRow;

    fn generated(conversations: usize) -> Vec<RequestRow> {
        generate(&GenerateConfig { conversations, messages: false, chunk_text: false, ..GenerateConfig::default() })
            .map(|g| g.row)
            .collect()
    }

    #[test]
    fn figures_reconcile_to_the_sum_of_priced_rows() {
        let rows = generated(600);
        let calls = Calls::from_rows(&rows);
        let pricing = price_calls(&calls, PriceBook::embedded());
        for by in [GroupBy::Model, GroupBy::Prompt, GroupBy::Tenant] {
            let r = report(&calls, &pricing, by, 10);
            let sum: i128 = r.groups.iter().map(|g| g.picodollars.parse::<i128>().unwrap()).sum();
            assert_eq!(Usd(sum), r.total, "{by:?}");
            assert_eq!(r.groups.iter().map(|g| g.requests).sum::<u64>(), r.requests);
        }
        let r = report(&calls, &pricing, GroupBy::Model, 10);
        let by_hand: Usd = pricing.prices.iter().filter_map(|p| p.known()).sum();
        assert_eq!(r.total, by_hand);
        assert_eq!(r.total_picodollars, by_hand.0.to_string());
        assert_eq!(r.priced + r.without_usage.rows + r.unpriced.iter().map(|u| u.rows).sum::<u64>(), r.requests);
        assert!(
            r.unpriced.iter().any(|u| u.model == "vllm:llama-3.1-8b-instruct"),
            "the self-hosted model has no price"
        );
        assert!(r.attempts.retried_attempts_usd >= 0.0 && r.attempts.attempts > r.attempts.logical_requests);
        let conv_total: Usd = r.conversation_points.iter().map(|p| p.1).sum();
        assert_eq!(conv_total, r.total, "every generated request belongs to a conversation");
    }

    #[test]
    fn the_conversation_curve_is_super_linear_and_the_tail_dominates() {
        let rows = generated(2_000);
        let calls = Calls::from_rows(&rows);
        let pricing = price_calls(&calls, PriceBook::embedded());
        let r = report(&calls, &pricing, GroupBy::Model, 10);
        let fit = r.conversations.fit.expect("a fit");
        assert!(fit.exponent_ci95[0] > 1.0, "history re-sent every turn: cost grows faster than turns ({fit:?})");
        assert!(r.conversations.top_5pct_share > 0.05 * 2.0, "{}", r.conversations.top_5pct_share);
        assert!(r.naive.ratio.unwrap() > 1.0, "the all-in cost exceeds median × count: {:?}", r.naive);
        let per_turn: Vec<f64> = r.conversations.curve.iter().map(|b| b.mean_usd_per_turn).collect();
        assert!(per_turn.last() > per_turn.first(), "{per_turn:?}");
    }

    #[test]
    fn hand_computed_conversation_figures() {
        let pricing = Pricing {
            prices: [3, 5, 100, 1, 1, 1]
                .iter()
                .map(|d| super::super::price::Price::Known(Usd::from_micros(*d)))
                .collect(),
            ..Default::default()
        };
        let mut rows = generated(1);
        rows.truncate(1);
        let template = rows.remove(0);
        let conv = |id: &str, logical: &str, attempt: u32| RequestRow {
            conversation_id: Some(id.into()),
            logical_request_id: Some(logical.into()),
            attempt,
            ..template.clone()
        };
        let rows = [
            conv("a", "a1", 1),
            conv("a", "a1", 2),
            conv("b", "b1", 1),
            conv("c", "c1", 1),
            conv("c", "c2", 1),
            conv("c", "c3", 1),
        ];
        let calls = Calls::from_rows(&rows);
        let r = report(&calls, &pricing, GroupBy::Conversation, 2);
        // Conversations: a = 8 µ$ over 1 turn (a retry), b = 100 µ$ / 1 turn, c = 3 µ$ / 3 turns.
        assert_eq!(r.conversations.conversations, 3);
        assert_eq!(r.conversations.total_usd, 0.000111);
        assert!((r.conversations.top_1pct_share - 100.0 / 111.0).abs() < 1e-12);
        assert_eq!(r.attempts.logical_requests, 5);
        assert_eq!(r.attempts.retried_attempts_usd, 0.000003);
        assert_eq!(r.groups.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(r.per_request.p50, Some(0.000002));
        assert!((r.naive.naive_usd - 0.00001).abs() < 1e-15);
    }
}
