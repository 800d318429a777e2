//! Pricing an eval's provider calls: each attempt at the price book's row in force on the attempt's
//! (UTC) day. A model the book does not know has no price, never a zero price.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use jiff::Timestamp;
use jiff::civil::Date;

use crate::money::Usd;
use crate::pricing::{Billing, PriceBook, PriceRow, Tier};
use crate::provider::ProviderId;
use crate::trace::model::{RequestRow, RequestStatus, Usage, UsageSource};

/// What a call costs, as far as can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallCost {
    /// Priced from the provider's usage report.
    Priced(Usd),
    /// Nothing billable: a failed attempt that produced no output and reported no usage (429, refused
    /// connection, 5xx).
    Nothing,
    /// The call produced output but reported no usage: its cost is not known.
    UsageMissing,
    /// The model (or its tier) has no price.
    Unpriced,
}

/// Rows in force by (provider, model, day); None = no price.
type PriceCache = HashMap<(String, String, Date), Option<PriceRow>>;

/// A price book shared by the runner's tasks, with lookups cached per model and day.
#[derive(Clone)]
pub struct Prices {
    book: Book,
    cache: Arc<Mutex<PriceCache>>,
}

#[derive(Clone)]
enum Book {
    Static(&'static PriceBook),
    Shared(Arc<PriceBook>),
}

impl std::fmt::Debug for Prices {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Prices")
    }
}

impl Prices {
    pub fn new(book: std::borrow::Cow<'static, PriceBook>) -> Prices {
        let book = match book {
            std::borrow::Cow::Borrowed(b) => Book::Static(b),
            std::borrow::Cow::Owned(b) => Book::Shared(Arc::new(b)),
        };
        Prices { book, cache: Arc::default() }
    }

    fn book(&self) -> &PriceBook {
        match &self.book {
            Book::Static(b) => b,
            Book::Shared(b) => b,
        }
    }

    /// The row in force for a provider's model on a day. `sim:MODEL` is priced as MODEL (an OpenAI model
    /// first, then Anthropic, then whatever the book calls MODEL).
    pub fn row(&self, provider: &str, model: &str, day: Date) -> Option<PriceRow> {
        let key = (provider.to_string(), model.to_string(), day);
        if let Some(hit) = lock(&self.cache).get(&key) {
            return hit.clone();
        }
        let specs: Vec<String> = match provider {
            "sim" => vec![format!("openai:{model}"), format!("anthropic:{model}"), model.to_string()],
            _ => vec![format!("{provider}:{model}")],
        };
        let row = specs.iter().find_map(|spec| self.book().quote(spec, day).ok().map(|q| q.row.clone()));
        lock(&self.cache).insert(key, row.clone());
        row
    }

    /// Whether the model a provider id names has a price today.
    pub fn knows(&self, id: &ProviderId) -> bool {
        self.row(id.kind.as_str(), &id.model, today()).is_some()
    }

    /// The cost of one stored or fresh request row.
    pub fn call_cost(&self, row: &RequestRow) -> CallCost {
        let has_output = row.output.as_deref().is_some_and(|o| !o.is_empty());
        self.cost_of(CallFacts {
            provider: &row.provider,
            model: &row.request_model,
            ts: row.ts,
            status: row.status,
            usage: (row.usage_source != UsageSource::Missing).then_some(row.usage),
            has_output,
            service_tier: row.service_tier.as_deref(),
            batch: row.batch,
        })
    }

    pub fn cost_of(&self, call: CallFacts<'_>) -> CallCost {
        let Some(usage) = call.usage else {
            return if call.status == RequestStatus::Ok || call.has_output {
                CallCost::UsageMissing
            } else {
                CallCost::Nothing
            };
        };
        if usage == Usage::default() {
            return CallCost::Priced(Usd::ZERO);
        }
        let day = utc_day(call.ts);
        let Some(row) = self.row(call.provider, call.model, day) else {
            return CallCost::Unpriced;
        };
        let Some(tier) = Tier::from_request(call.service_tier, call.batch) else {
            return CallCost::Unpriced;
        };
        match row.cost(&usage, Billing { tier, long_context: true }) {
            Ok(cost) => CallCost::Priced(cost.total),
            Err(_) => CallCost::Unpriced,
        }
    }

    /// An estimate for the budget: `input` and `output` tokens at today's standard price. None when the
    /// model has no price.
    pub fn estimate(&self, id: &ProviderId, input: u64, output: u64) -> Option<Usd> {
        let row = self.row(id.kind.as_str(), &id.model, today())?;
        let usage = Usage::from_inclusive(input, 0, 0, output, 0);
        row.cost(&usage, Billing { tier: Tier::Standard, long_context: true }).ok().map(|c| c.total)
    }
}

/// The facts about a call that decide its cost.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts<'a> {
    pub provider: &'a str,
    pub model: &'a str,
    pub ts: Timestamp,
    pub status: RequestStatus,
    /// None when the provider reported no usage.
    pub usage: Option<Usage>,
    pub has_output: bool,
    pub service_tier: Option<&'a str>,
    pub batch: bool,
}

/// Sums call costs: unknown as soon as one call is unpriced or lacks usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CostSum {
    pub known: Usd,
    /// Calls that produced output without a usage report.
    pub usage_missing: u32,
    /// Calls whose model has no price.
    pub unpriced: u32,
}

impl CostSum {
    pub fn add(&mut self, cost: CallCost) {
        match cost {
            CallCost::Priced(usd) => self.known += usd,
            CallCost::Nothing => {}
            CallCost::UsageMissing => self.usage_missing += 1,
            CallCost::Unpriced => self.unpriced += 1,
        }
    }

    pub fn merge(&mut self, other: CostSum) {
        self.known += other.known;
        self.usage_missing += other.usage_missing;
        self.unpriced += other.unpriced;
    }

    /// The total when every call was priced; None when a model has no price. Calls without usage are
    /// left out (counted in `usage_missing`, which callers show beside the figure).
    pub fn total(&self) -> Option<Usd> {
        (self.unpriced == 0).then_some(self.known)
    }
}

/// Input tokens of a request, estimated as the simulator and most tokenizers roughly agree: about 4
/// characters a token plus a few tokens of framing per message. For budgets only.
pub fn estimate_input_tokens(messages: &[crate::trace::model::Message]) -> u64 {
    3 + messages.iter().map(|m| 4 + (m.content.chars().count() as u64).div_ceil(4)).sum::<u64>()
}

pub fn utc_day(ts: Timestamp) -> Date {
    jiff::tz::Offset::UTC.to_datetime(ts).date()
}

fn today() -> Date {
    utc_day(Timestamp::now())
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        Prices::new(std::borrow::Cow::Borrowed(PriceBook::embedded()))
    }

    fn facts(
        provider: &'static str,
        model: &'static str,
        usage: Option<Usage>,
        status: RequestStatus,
    ) -> CallFacts<'static> {
        CallFacts {
            provider,
            model,
            ts: "2026-11-27T10:00:00Z".parse().unwrap(),
            status,
            usage,
            has_output: false,
            service_tier: Some("default"),
            batch: false,
        }
    }

    #[test]
    fn sim_models_are_priced_as_the_model_they_name() {
        let usage = Usage::from_inclusive(1_000_000, 0, 0, 0, 0);
        let sim = prices().cost_of(facts("sim", "gpt-4o-mini", Some(usage), RequestStatus::Ok));
        let real = prices().cost_of(facts("openai", "gpt-4o-mini", Some(usage), RequestStatus::Ok));
        assert_eq!(sim, real);
        assert!(matches!(sim, CallCost::Priced(usd) if usd > Usd::ZERO), "{sim:?}");
    }

    #[test]
    fn unknown_models_are_unpriced_and_missing_usage_is_not_zero() {
        let usage = Usage::from_inclusive(10, 0, 0, 5, 0);
        assert_eq!(prices().cost_of(facts("sim", "no-such-model", Some(usage), RequestStatus::Ok)), CallCost::Unpriced);
        assert_eq!(prices().cost_of(facts("openai", "gpt-4o-mini", None, RequestStatus::Ok)), CallCost::UsageMissing);
        assert_eq!(prices().cost_of(facts("openai", "gpt-4o-mini", None, RequestStatus::Error)), CallCost::Nothing);
        let mut sum = CostSum::default();
        sum.add(CallCost::Priced(Usd::from_micros(5)));
        sum.add(CallCost::UsageMissing);
        assert_eq!(sum.total(), Some(Usd::from_micros(5)));
        sum.add(CallCost::Unpriced);
        assert_eq!(sum.total(), None);
    }
}
