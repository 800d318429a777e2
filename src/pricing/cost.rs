//! Pricing one request: a row, a `Usage`, a tier → exact dollars with a line per token class.
//!
//! A price that the row does not list is derived only by a published provider rule (see `Fallback`);
//! when neither exists for a token class that has tokens, the result is an error, never a silent zero.

use std::fmt;

use serde::Serialize;

use crate::money::{PerMTok, Usd};
use crate::pricing::model::{ModelId, PriceRow, Provider, Rates};
use crate::trace::model::Usage;

/// The service tier a request was billed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    Standard,
    Batch,
    Flex,
    Priority,
}

impl Tier {
    /// The tier a traced request was billed at, from its `service_tier` and batch flag. OpenAI reports
    /// `default`/`auto`/`flex`/`priority`, Anthropic `standard`/`priority`/`batch`. `None` for a tier the
    /// book has no prices for (OpenAI's `scale`) or does not recognise.
    pub fn from_request(service_tier: Option<&str>, batch: bool) -> Option<Tier> {
        if batch {
            return Some(Tier::Batch);
        }
        match service_tier.map(|t| t.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "default" | "auto" | "standard" | "standard_only") => Some(Tier::Standard),
            Some("batch") => Some(Tier::Batch),
            Some("flex") => Some(Tier::Flex),
            Some("priority") => Some(Tier::Priority),
            Some(_) => None,
        }
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Tier::Standard => "standard",
            Tier::Batch => "batch",
            Tier::Flex => "flex",
            Tier::Priority => "priority",
        })
    }
}

/// How to bill a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Billing {
    pub tier: Tier,
    /// Apply the row's long-context rates when the request's input exceeds their threshold (as providers
    /// bill). `false` prices every request at the base rates, to measure what long context added.
    pub long_context: bool,
}

impl Default for Billing {
    fn default() -> Self {
        Billing { tier: Tier::Standard, long_context: true }
    }
}

/// The classes of tokens a request is billed for. `Output` excludes reasoning tokens, which are billed
/// at the output price but reported apart so that hidden reasoning shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenClass {
    Input,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
    Output,
    Reasoning,
}

impl fmt::Display for TokenClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TokenClass::Input => "input",
            TokenClass::CacheRead => "cache read",
            TokenClass::CacheWrite5m => "cache write (5m)",
            TokenClass::CacheWrite1h => "cache write (1h)",
            TokenClass::Output => "output",
            TokenClass::Reasoning => "reasoning",
        })
    }
}

/// A published provider rule used for a price the row does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    /// Batch APIs bill 50% of the standard price (OpenAI Batch API, Anthropic Message Batches, Gemini API
    /// Batch Mode, Vertex AI batch prediction).
    BatchHalfOfStandard,
    /// Anthropic: cache reads cost 0.1× the base input price.
    AnthropicCacheReadTenthOfInput,
    /// Anthropic: 5-minute cache writes cost 1.25× the base input price.
    AnthropicCacheWrite5mOfInput,
    /// Anthropic: 1-hour cache writes cost 2× the base input price.
    AnthropicCacheWrite1hOfInput,
    /// OpenAI prompt caching charges no write premium: written tokens bill as input.
    OpenAiCacheWriteAtInput,
}

/// One token class's share of a request's cost.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CostLine {
    pub class: TokenClass,
    pub tokens: u64,
    pub price: PerMTok,
    pub usd: Usd,
    /// Empty when the price is listed; otherwise the rules that derived it, innermost first.
    pub fallbacks: Vec<Fallback>,
}

/// A priced request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cost {
    pub total: Usd,
    /// One line per token class with tokens, in `TokenClass` order.
    pub lines: Vec<CostLine>,
    pub tier: Tier,
    /// Whether the long-context rates were used.
    pub long_context: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CostError {
    #[error("{model} has no {tier} price for {class} tokens{}; add one in the price overrides file", if *long_context { " above its long-context threshold" } else { "" })]
    MissingPrice { model: ModelId, tier: Tier, class: TokenClass, long_context: bool },
    #[error("usage is inconsistent (input_total must equal uncached + cache reads + cache writes, reasoning ≤ output)")]
    InconsistentUsage,
}

/// The cost of one request billed at `billing` under `row`.
pub fn cost(row: &PriceRow, usage: &Usage, billing: Billing) -> Result<Cost, CostError> {
    if !usage.is_consistent() {
        return Err(CostError::InconsistentUsage);
    }
    let long_context =
        billing.long_context && row.long_context.is_some_and(|lc| usage.input_total > lc.above_input_tokens);
    let visible_output = usage.output_total - usage.reasoning;
    let counts = [
        (TokenClass::Input, usage.input_uncached),
        (TokenClass::CacheRead, usage.cache_read),
        (TokenClass::CacheWrite5m, usage.cache_write_5m),
        (TokenClass::CacheWrite1h, usage.cache_write_1h),
        (TokenClass::Output, visible_output),
        (TokenClass::Reasoning, usage.reasoning),
    ];
    let lines = counts
        .into_iter()
        .filter(|(_, tokens)| *tokens > 0)
        .map(|(class, tokens)| {
            let (price, fallbacks) = price_for(row, class, billing.tier, long_context)
                .ok_or(CostError::MissingPrice { model: row.model.clone(), tier: billing.tier, class, long_context })?;
            Ok(CostLine { class, tokens, price, usd: price.cost(tokens), fallbacks })
        })
        .collect::<Result<Vec<_>, CostError>>()?;
    Ok(Cost { total: lines.iter().map(|l| l.usd).sum(), lines, tier: billing.tier, long_context })
}

impl PriceRow {
    /// See [`cost`].
    pub fn cost(&self, usage: &Usage, billing: Billing) -> Result<Cost, CostError> {
        cost(self, usage, billing)
    }

    /// The price of one token class in a tier, listed or derived by a published rule; `None` when
    /// neither exists.
    pub fn price_for(&self, class: TokenClass, tier: Tier, long_context: bool) -> Option<(PerMTok, Vec<Fallback>)> {
        price_for(self, class, tier, long_context)
    }
}

fn price_for(row: &PriceRow, class: TokenClass, tier: Tier, long_context: bool) -> Option<(PerMTok, Vec<Fallback>)> {
    let rates = tier_rates(row, tier, long_context);
    if let Some(listed) = rates.and_then(|r| listed(r, class)) {
        return Some((listed, Vec::new()));
    }
    if tier == Tier::Batch {
        let (standard, mut fallbacks) = price_for(row, class, Tier::Standard, long_context)?;
        fallbacks.push(Fallback::BatchHalfOfStandard);
        return Some((scale(standard, 1, 2), fallbacks));
    }
    let rates = rates?;
    let (factor, rule) = provider_rule(row.model.provider, class)?;
    Some((scale(rates.input, factor.0, factor.1), vec![rule]))
}

/// The rates a tier bills at, below or above the long-context threshold. Batch and flex publish no
/// long-context prices.
fn tier_rates(row: &PriceRow, tier: Tier, long_context: bool) -> Option<&Rates> {
    if long_context {
        let lc = row.long_context.as_ref()?;
        return match tier {
            Tier::Standard => Some(&lc.standard),
            Tier::Priority => lc.priority.as_ref(),
            Tier::Batch | Tier::Flex => None,
        };
    }
    match tier {
        Tier::Standard => Some(&row.standard),
        Tier::Batch => row.batch.as_ref(),
        Tier::Flex => row.flex.as_ref(),
        Tier::Priority => row.priority.as_ref(),
    }
}

fn listed(rates: &Rates, class: TokenClass) -> Option<PerMTok> {
    match class {
        TokenClass::Input => Some(rates.input),
        // Reasoning tokens are output tokens on every provider's bill.
        TokenClass::Output | TokenClass::Reasoning => Some(rates.output),
        TokenClass::CacheRead => rates.cache_read,
        TokenClass::CacheWrite5m => rates.cache_write_5m,
        TokenClass::CacheWrite1h => rates.cache_write_1h,
    }
}

/// A cache price as a fraction of the same tier's input price, where the provider publishes one.
fn provider_rule(provider: Provider, class: TokenClass) -> Option<((i64, i64), Fallback)> {
    match (provider, class) {
        (Provider::Anthropic, TokenClass::CacheRead) => Some(((1, 10), Fallback::AnthropicCacheReadTenthOfInput)),
        (Provider::Anthropic, TokenClass::CacheWrite5m) => Some(((5, 4), Fallback::AnthropicCacheWrite5mOfInput)),
        (Provider::Anthropic, TokenClass::CacheWrite1h) => Some(((2, 1), Fallback::AnthropicCacheWrite1hOfInput)),
        (Provider::OpenAi, TokenClass::CacheWrite5m | TokenClass::CacheWrite1h) => {
            Some(((1, 1), Fallback::OpenAiCacheWriteAtInput))
        }
        _ => None,
    }
}

/// `price × num / den`, rounded half up to a whole pico-dollar per token (the unit of `PerMTok`).
fn scale(price: PerMTok, num: i64, den: i64) -> PerMTok {
    let scaled = price.0 as i128 * num as i128;
    let den = den as i128;
    PerMTok(((scaled * 2 + den) / (den * 2)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiers_from_trace_fields() {
        assert_eq!(Tier::from_request(None, false), Some(Tier::Standard));
        assert_eq!(Tier::from_request(Some("default"), false), Some(Tier::Standard));
        assert_eq!(Tier::from_request(Some("flex"), false), Some(Tier::Flex));
        assert_eq!(Tier::from_request(Some("Priority"), false), Some(Tier::Priority));
        assert_eq!(Tier::from_request(Some("default"), true), Some(Tier::Batch));
        assert_eq!(Tier::from_request(Some("scale"), false), None);
    }

    #[test]
    fn scaling_rounds_half_up_to_a_pico_per_token() {
        assert_eq!(scale(PerMTok(3_000_000), 5, 4), PerMTok(3_750_000));
        assert_eq!(scale(PerMTok(75_000), 1, 2), PerMTok(37_500));
        assert_eq!(scale(PerMTok(3), 1, 2), PerMTok(2));
        assert_eq!(scale(PerMTok(1), 1, 10), PerMTok(0));
    }
}
