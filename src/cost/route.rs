//! `cost route`: what the same history would have cost if the hard requests had gone straight to a
//! reasoning model, against sending everything to the workhorse and escalating its failures.
//!
//! Token prices alone always favour the workhorse. What changes the answer is what its failures cost:
//! retries, escalations to the stronger model after a bad answer, and failures that reach a customer.
//! Both scenarios are priced from the same requests with the same book, and every rate used is either
//! observed in the history or stated by the user; the report lists them as assumptions.

use std::collections::HashMap;

use serde::Serialize;

use super::price::{Price, Pricing, utc_day};
use crate::money::Usd;
use crate::pricing::{Billing, PriceBook, PriceRow};
use crate::trace::model::{RequestStatus, Usage, UsageSource};
use crate::trace::records::{Call, Calls};

/// Which requests count as hard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rule {
    /// Input (cached or not) above this many tokens.
    InputTokensAbove(u64),
    /// Made with one of these prompts (by name). A tag rule resolves to the prompts carrying the tag.
    Prompts(Vec<String>),
    /// For this tenant.
    Tenant(String),
}

impl Rule {
    pub fn describe(&self) -> String {
        match self {
            Rule::InputTokensAbove(n) => format!("input tokens > {n}"),
            Rule::Prompts(names) => format!("prompt in [{}]", names.join(", ")),
            Rule::Tenant(t) => format!("tenant = {t}"),
        }
    }

    fn matches(&self, calls: &Calls, c: &Call) -> bool {
        match self {
            Rule::InputTokensAbove(n) => c.usage.input_total > *n,
            Rule::Prompts(names) => c.prompt_name.is_some_and(|p| names.iter().any(|n| n == calls.name(p))),
            Rule::Tenant(t) => c.tenant.is_some_and(|s| calls.name(s) == t),
        }
    }
}

/// Rates the user states; `None` means "use what the history shows".
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RateOverrides {
    /// Reasoning tokens per visible output token on the target model.
    pub reasoning_ratio: Option<f64>,
    /// Attempts per logical request on the target model.
    pub target_attempts: Option<f64>,
    /// Share of hard requests the workhorse fails (a wrong answer as much as an error).
    pub workhorse_failure_rate: Option<f64>,
    /// Share of hard requests the target model fails.
    pub target_failure_rate: Option<f64>,
}

/// The simulation's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct RouteConfig {
    /// A request is hard when every rule matches (each flag narrows the selection).
    pub rules: Vec<Rule>,
    /// The reasoning model, as the price book names it (`openai:o3`).
    pub target: String,
    /// Share of workhorse failures on hard requests that are re-run on the target model.
    pub escalation_rate: f64,
    /// What one failure that reaches a user costs (support time, refunds, trust); 0 leaves it out.
    pub failure_cost: Usd,
    pub overrides: RateOverrides,
    /// Observed rates need at least this many logical requests to be used.
    pub min_observations: u64,
}

/// Where a rate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RateSource {
    Observed,
    Configured,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rate {
    pub value: f64,
    pub source: RateSource,
    /// Logical requests it was observed on (0 when configured).
    pub observations: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    pub reasoning_ratio: Rate,
    pub target_attempts: Rate,
    pub workhorse_failure_rate: Rate,
    pub target_failure_rate: Rate,
    pub escalation_rate: f64,
}

/// One way of serving the history.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scenario {
    pub name: &'static str,
    pub token_usd: f64,
    /// Hard requests answered twice (workhorse, then the target model).
    pub escalations: f64,
    pub expected_failures: f64,
    pub failure_usd: f64,
    pub all_in_usd: f64,
}

/// The simulation's answer.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteReport {
    pub rule: String,
    pub target: String,
    pub logical_requests: u64,
    pub hard_requests: u64,
    pub hard_share: f64,
    /// Hard requests the history already sent to the target model.
    pub hard_already_on_target: u64,
    pub rates: Rates,
    pub workhorse_by_default: Scenario,
    pub routed: Scenario,
    /// routed − workhorse-by-default, all in (negative: routing saves money).
    pub delta_usd: f64,
    /// The cost of one failure above which routing is cheaper all in; `None` when routing fails no less
    /// often.
    pub break_even_failure_usd: Option<f64>,
    /// Logical requests left out because some attempt has no usage or no price.
    pub left_out: u64,
    pub assumptions: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RouteError {
    #[error("cannot price the target model: {0}")]
    TargetUnpriced(String),
    #[error("{what} of {target} is not observable in the history ({seen} logical requests, need {need}); pass {flag}")]
    RateUnknown { what: &'static str, target: String, seen: u64, need: u64, flag: &'static str },
    #[error("no rule: say which requests are hard (e.g. --input-tokens-above 4000)")]
    NoRule,
}

/// One logical request: its attempts' indices into `calls`.
struct Logical {
    attempts: Vec<usize>,
}

impl Logical {
    fn last<'c>(&self, calls: &'c Calls) -> &'c Call {
        let i = self.attempts.iter().copied().max_by_key(|&i| calls.calls[i].attempt).unwrap_or(self.attempts[0]);
        &calls.calls[i]
    }

    fn failed(&self, calls: &Calls) -> bool {
        let last = self.last(calls);
        last.status != RequestStatus::Ok || (last.finish_reason.is_none() && last.usage_source == UsageSource::Missing)
    }
}

fn group_logical(calls: &Calls) -> Vec<Logical> {
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut out: Vec<Logical> = Vec::new();
    for (i, c) in calls.calls.iter().enumerate() {
        let key = c.logical.unwrap_or(!(c.id as u64));
        match index.get(&key) {
            Some(&j) => out[j].attempts.push(i),
            None => {
                index.insert(key, out.len());
                out.push(Logical { attempts: vec![i] });
            }
        }
    }
    out
}

/// Runs the simulation over priced calls.
pub fn simulate(
    calls: &Calls,
    pricing: &Pricing,
    book: &PriceBook,
    config: &RouteConfig,
) -> Result<RouteReport, RouteError> {
    if config.rules.is_empty() {
        return Err(RouteError::NoRule);
    }
    let target = config.target.trim().to_string();
    let logical = group_logical(calls);
    let on_target = |c: &Call| {
        let spec = format!("{}:{}", calls.name(c.provider), calls.name(c.request_model));
        spec.eq_ignore_ascii_case(&target) || calls.name(c.request_model).eq_ignore_ascii_case(&target)
    };
    let hard = |l: &Logical| l.attempts.iter().any(|&i| config.rules.iter().all(|r| r.matches(calls, &calls.calls[i])));
    // Attempts that failed before tokens were counted add nothing; an attempt on a model without a price
    // makes the whole request unknown.
    let cost_of = |l: &Logical| -> Option<Usd> {
        l.attempts
            .iter()
            .map(|&i| match pricing.prices[i] {
                Price::Known(usd) => Some(usd),
                Price::NoUsage => Some(Usd::ZERO),
                Price::NoPrice(_) => None,
            })
            .sum()
    };

    let target_logical: Vec<&Logical> = logical.iter().filter(|l| on_target(l.last(calls))).collect();
    let hard_on_workhorse: Vec<&Logical> = logical.iter().filter(|l| hard(l) && !on_target(l.last(calls))).collect();
    let rates = rates(calls, &target_logical, &hard_on_workhorse, config, &target)?;
    let mut target_price = TargetPrice { book, spec: &target, rows: HashMap::new() };

    let mut left_out = 0u64;
    let (mut served, mut easy_failures) = (Usd::ZERO, 0u64);
    let mut hard_on_target = 0u64;
    let mut hard_workhorse_cost = Usd::ZERO;
    let mut repriced = Usd::ZERO;
    let mut hard_priced = 0u64;
    for l in &logical {
        let Some(cost) = cost_of(l) else {
            left_out += 1;
            continue;
        };
        let is_hard = hard(l);
        let last = l.last(calls);
        if !is_hard || on_target(last) {
            served += cost;
            hard_on_target += u64::from(is_hard);
            if !is_hard && l.failed(calls) {
                easy_failures += 1;
            }
            continue;
        }
        let usage = on_target_usage(&last.usage, rates.reasoning_ratio.value);
        let price = target_price.price(last.ts_ms, &usage)?;
        hard_workhorse_cost += cost;
        repriced += price;
        hard_priced += 1;
    }
    // What a hard request costs on the target model, attempts included.
    let per_target_request = if hard_priced == 0 { 0.0 } else { repriced.as_f64() / hard_priced as f64 };
    let attempts = rates.target_attempts.value;
    let (wf, tf, esc) = (rates.workhorse_failure_rate.value, rates.target_failure_rate.value, rates.escalation_rate);
    let failure_usd = config.failure_cost.as_f64();
    let hard_n = hard_priced as f64;
    let easy_fail = easy_failures as f64;

    let escalations = hard_n * wf * esc;
    let default_tokens = served.as_f64() + hard_workhorse_cost.as_f64() + escalations * per_target_request * attempts;
    let default_failures = hard_n * wf * (1.0 - esc) + escalations * tf + hard_on_target as f64 * tf + easy_fail;
    let routed_tokens = served.as_f64() + repriced.as_f64() * attempts;
    let routed_failures = hard_n * tf + hard_on_target as f64 * tf + easy_fail;
    let scenario = |name, tokens: f64, escalations: f64, failures: f64| Scenario {
        name,
        token_usd: round(tokens),
        escalations,
        expected_failures: failures,
        failure_usd: round(failures * failure_usd),
        all_in_usd: round(tokens + failures * failure_usd),
    };
    let default = scenario("workhorse_by_default", default_tokens, escalations, default_failures);
    let routed = scenario("routed", routed_tokens, 0.0, routed_failures);
    let fewer_failures = default_failures - routed_failures;
    let break_even =
        (fewer_failures > 1e-12).then(|| round(((routed_tokens - default_tokens) / fewer_failures).max(0.0)));
    let hard_total = hard_priced + hard_on_target;
    let logical_n = logical.len() as u64;
    Ok(RouteReport {
        rule: config.rules.iter().map(Rule::describe).collect::<Vec<_>>().join(" and "),
        target: target.clone(),
        logical_requests: logical_n,
        hard_requests: hard_total,
        hard_share: if logical_n == 0 { 0.0 } else { hard_total as f64 / logical_n as f64 },
        hard_already_on_target: hard_on_target,
        assumptions: assumptions(&rates, &target, config, left_out),
        rates,
        delta_usd: round(routed.all_in_usd - default.all_in_usd),
        workhorse_by_default: default,
        routed,
        break_even_failure_usd: break_even,
        left_out,
    })
}

fn round(usd: f64) -> f64 {
    (usd * 1e6).round() / 1e6
}

/// The request's tokens as the target model would bill them: the same input and cache hits, the same
/// visible output, plus reasoning tokens at the observed ratio.
fn on_target_usage(u: &Usage, reasoning_ratio: f64) -> Usage {
    let visible = u.output_total - u.reasoning;
    let reasoning = (visible as f64 * reasoning_ratio).round() as u64;
    Usage { output_total: visible + reasoning, reasoning, ..*u }
}

/// Prices usage on the target model at a request's day (standard tier: routing does not change how a
/// request is sent).
struct TargetPrice<'b, 's> {
    book: &'b PriceBook,
    spec: &'s str,
    rows: HashMap<i64, Result<&'b PriceRow, String>>,
}

impl TargetPrice<'_, '_> {
    fn price(&mut self, ts_ms: i64, usage: &Usage) -> Result<Usd, RouteError> {
        let (book, spec) = (self.book, self.spec);
        let row = self
            .rows
            .entry(ts_ms.div_euclid(86_400_000))
            .or_insert_with(|| book.quote(spec, utc_day(ts_ms)).map(|q| q.row).map_err(|e| e.to_string()))
            .clone()
            .map_err(RouteError::TargetUnpriced)?;
        row.cost(usage, Billing::default()).map(|c| c.total).map_err(|e| RouteError::TargetUnpriced(e.to_string()))
    }
}

fn rate(observed: Option<(f64, u64)>, configured: Option<f64>, min: u64) -> Option<Rate> {
    if let Some(value) = configured {
        return Some(Rate { value, source: RateSource::Configured, observations: 0 });
    }
    match observed {
        Some((value, n)) if n >= min => Some(Rate { value, source: RateSource::Observed, observations: n }),
        _ => None,
    }
}

fn rates(
    calls: &Calls,
    target_logical: &[&Logical],
    hard_on_workhorse: &[&Logical],
    config: &RouteConfig,
    target: &str,
) -> Result<Rates, RouteError> {
    let o = &config.overrides;
    let n_target = target_logical.len() as u64;
    let unknown = |what, flag, seen| RouteError::RateUnknown {
        what,
        target: target.to_string(),
        seen,
        need: config.min_observations,
        flag,
    };
    let (mut reasoning, mut visible) = (0u64, 0u64);
    let mut attempts = 0u64;
    for l in target_logical {
        attempts += l.attempts.len() as u64;
        let last = l.last(calls);
        if last.usage_source != UsageSource::Missing {
            reasoning += last.usage.reasoning;
            visible += last.usage.output_total - last.usage.reasoning;
        }
    }
    let observed_ratio = (visible > 0).then(|| (reasoning as f64 / visible as f64, n_target));
    let reasoning_ratio = rate(observed_ratio, o.reasoning_ratio, config.min_observations)
        .ok_or_else(|| unknown("the reasoning tokens per output token", "--reasoning-ratio R", n_target))?;
    let target_attempts = rate(
        (n_target > 0).then(|| (attempts as f64 / n_target as f64, n_target)),
        o.target_attempts,
        config.min_observations,
    )
    .ok_or_else(|| unknown("the attempts per request", "--target-attempts N", n_target))?;
    let failures = |ls: &[&Logical]| ls.iter().filter(|l| l.failed(calls)).count() as f64;
    let target_failure_rate = rate(
        (n_target > 0).then(|| (failures(target_logical) / n_target as f64, n_target)),
        o.target_failure_rate,
        config.min_observations,
    )
    .ok_or_else(|| unknown("the failure rate", "--target-failure-rate F", n_target))?;
    let n_hard = hard_on_workhorse.len() as u64;
    let workhorse_failure_rate = rate(
        (n_hard > 0).then(|| (failures(hard_on_workhorse) / n_hard as f64, n_hard)),
        o.workhorse_failure_rate,
        config.min_observations,
    )
    .ok_or(RouteError::RateUnknown {
        what: "the workhorse's failure rate on hard requests",
        target: "the workhorse".into(),
        seen: n_hard,
        need: config.min_observations,
        flag: "--workhorse-failure-rate F",
    })?;
    Ok(Rates {
        reasoning_ratio,
        target_attempts,
        workhorse_failure_rate,
        target_failure_rate,
        escalation_rate: config.escalation_rate,
    })
}

fn describe(rate: &Rate, unit: &str) -> String {
    match rate.source {
        RateSource::Observed => format!("{:.3}{unit} (observed on {} requests)", rate.value, rate.observations),
        RateSource::Configured => format!("{:.3}{unit} (configured)", rate.value),
    }
}

fn assumptions(r: &Rates, target: &str, config: &RouteConfig, left_out: u64) -> Vec<String> {
    let mut out = vec![
        format!("hard requests keep their input tokens and cache hits on {target}; tokenizers differ, so input may count differently"),
        format!(
            "visible output length is unchanged; {target} adds reasoning tokens = visible output × {}",
            describe(&r.reasoning_ratio, "")
        ),
        format!("attempts per request on {target}: {}", describe(&r.target_attempts, "")),
        format!("the workhorse fails {} of hard requests", describe(&r.workhorse_failure_rate, "")),
        format!("{target} fails {} of the requests it serves", describe(&r.target_failure_rate, "")),
        format!(
            "by default, {:.0}% of the workhorse's failures on hard requests are escalated and answered again by {target}; the rest reach the user",
            r.escalation_rate * 100.0
        ),
        if config.failure_cost == Usd::ZERO {
            "a failure that reaches a user is not priced (pass --failure-cost USD for support time, refunds, churn)".to_string()
        } else {
            format!("a failure that reaches a user costs ${:.2} (support time, refunds, churn)", config.failure_cost.as_f64())
        },
        "observed failure = the last attempt ended in an error, timeout or cancellation, or a stream cut without usage; answers that were wrong are invisible in traces — configure the rates from evals".to_string(),
        "requests that are not hard are served as they were, at their observed cost and failures".to_string(),
        "attempts without usage (failed before any token was counted) cost nothing".to_string(),
    ];
    if left_out > 0 {
        out.push(format!("{left_out} requests to models without a price are left out of both scenarios"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cost::price_calls;
    use crate::pricing::PriceBook;
    use crate::trace::generate::{GenerateConfig, generate};

    fn config(rules: Vec<Rule>) -> RouteConfig {
        RouteConfig {
            rules,
            target: "openai:o4-mini".into(),
            escalation_rate: 0.5,
            failure_cost: Usd::ZERO,
            overrides: RateOverrides {
                workhorse_failure_rate: Some(0.2),
                target_failure_rate: Some(0.05),
                ..Default::default()
            },
            min_observations: 20,
        }
    }

    #[test]
    fn routing_hand_checked_on_generated_history() {
        let rows: Vec<_> = generate(&GenerateConfig {
            conversations: 1_500,
            messages: false,
            chunk_text: false,
            ..GenerateConfig::default()
        })
        .map(|g| g.row)
        .collect();
        let calls = Calls::from_rows(&rows);
        let book = PriceBook::embedded();
        let pricing = price_calls(&calls, book);
        let hard = || vec![Rule::Prompts(vec!["support-reply".into()]), Rule::InputTokensAbove(4_000)];
        let r = simulate(&calls, &pricing, book, &config(hard())).unwrap();
        assert!(r.hard_requests > 20 && r.hard_share < 0.5, "{r:?}");
        assert_eq!(r.rule, "prompt in [support-reply] and input tokens > 4000");
        assert_eq!(r.rates.reasoning_ratio.source, RateSource::Observed);
        assert!(r.rates.reasoning_ratio.value > 1.0, "o4-mini reasons more than it writes: {:?}", r.rates);
        // Routing costs more in tokens and fails less.
        assert!(r.routed.token_usd > r.workhorse_by_default.token_usd, "{r:?}");
        assert!(r.routed.expected_failures < r.workhorse_by_default.expected_failures);
        // At the break-even failure cost, both scenarios cost the same all in.
        let be = r.break_even_failure_usd.unwrap();
        let mut at_break_even = config(hard());
        at_break_even.failure_cost = Usd::parse_decimal(&format!("{be:.6}"), 0).unwrap();
        let r2 = simulate(&calls, &pricing, book, &at_break_even).unwrap();
        assert!(r2.delta_usd.abs() < 0.01 * r2.routed.all_in_usd.max(1e-9), "{r2:?}");
        let mut dearer = at_break_even.clone();
        dearer.failure_cost = Usd::parse_decimal(&format!("{:.6}", be * 2.0 + 0.01), 0).unwrap();
        let r3 = simulate(&calls, &pricing, book, &dearer).unwrap();
        assert!(r3.delta_usd < 0.0, "routing pays once failures cost more than the break-even: {r3:?}");
        assert!(r.assumptions.iter().any(|a| a.contains("observed on")));
    }

    #[test]
    fn unobservable_rates_must_be_configured() {
        let rows: Vec<_> =
            generate(&GenerateConfig { conversations: 30, messages: false, ..GenerateConfig::default() })
                .map(|g| g.row)
                .collect();
        let calls = Calls::from_rows(&rows);
        let book = PriceBook::embedded();
        let pricing = price_calls(&calls, book);
        let mut c = config(vec![Rule::Prompts(vec!["extract-order".into()])]);
        c.target = "openai:o3".into();
        let err = simulate(&calls, &pricing, book, &c).unwrap_err();
        assert!(err.to_string().contains("--reasoning-ratio"), "{err}");
        c.overrides.reasoning_ratio = Some(3.0);
        c.overrides.target_attempts = Some(1.05);
        let r = simulate(&calls, &pricing, book, &c).unwrap();
        assert_eq!(r.rates.reasoning_ratio.source, RateSource::Configured);
        c.target = "acme:unknown-model".into();
        assert!(matches!(simulate(&calls, &pricing, book, &c), Err(RouteError::TargetUnpriced(_))));
        assert_eq!(simulate(&calls, &pricing, book, &config(vec![])).unwrap_err(), RouteError::NoRule);
    }

    #[test]
    fn reasoning_is_added_to_the_visible_output() {
        let u = Usage::from_inclusive(5_000, 1_024, 0, 300, 0);
        let t = on_target_usage(&u, 4.0);
        assert_eq!((t.input_total, t.cache_read, t.output_total, t.reasoning), (5_000, 1_024, 1_500, 1_200));
        assert!(t.is_consistent());
    }
}
