//! Every stored request priced with the effective-dated price book: its own day, its snapshot, its tier,
//! its cache reads and writes, reasoning tokens and long-context rates. Failed and retried attempts are
//! priced like any other: the provider bills the tokens they used.
//!
//! A request is left unpriced — never priced at $0 — when its model or tier has no price, or when it has
//! no token counts at all.

use std::collections::{BTreeMap, HashMap};

use jiff::civil::Date;
use serde::Serialize;

use crate::money::PerMTok;
use crate::money::Usd;
use crate::pricing::{CostError, PriceBook, PriceRow, Tier, TokenClass};
use crate::trace::model::{RequestStatus, Usage, UsageSource};
use crate::trace::records::{Call, Calls, FastMap, Sym};

/// A request's price, or why it has none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Price {
    Known(Usd),
    /// No token counts: whatever was billed is unknown.
    NoUsage,
    /// Index into [`Pricing::reasons`].
    NoPrice(u32),
}

impl Price {
    pub fn known(&self) -> Option<Usd> {
        match self {
            Price::Known(usd) => Some(*usd),
            _ => None,
        }
    }
}

/// Requests that could not be priced, grouped by model and reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unpriced {
    pub model: String,
    pub rows: u64,
    pub reason: String,
}

/// Rows with no token counts, by how they ended.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct WithoutUsage {
    pub rows: u64,
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    pub aborted: u64,
}

/// Every call's price.
#[derive(Debug, Clone, Default)]
pub struct Pricing {
    /// In the order of `Calls::calls`.
    pub prices: Vec<Price>,
    pub reasons: Vec<String>,
    pub unpriced: Vec<Unpriced>,
    pub without_usage: WithoutUsage,
}

impl Pricing {
    pub fn known(&self, index: usize) -> Option<Usd> {
        self.prices[index].known()
    }
}

/// A model string for the book: `provider:model`.
pub fn model_spec(provider: &str, model: &str) -> String {
    format!("{provider}:{model}")
}

/// The UTC calendar day of a time in ms (prices change at UTC midnight).
pub fn utc_day(ts_ms: i64) -> Date {
    jiff::Timestamp::from_millisecond(ts_ms)
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date())
        .unwrap_or(Date::constant(1970, 1, 1))
}

type RowKey = (Sym, Sym, Option<Sym>, i64);

/// The price of each token class for one row and tier, below and above its long-context threshold, so that
/// a million requests cost a table lookup each instead of a fallback search each.
struct ClassPrices {
    base: [Option<PerMTok>; 6],
    /// (threshold in input tokens, prices above it)
    long_context: Option<(u64, [Option<PerMTok>; 6])>,
}

const CLASSES: [TokenClass; 6] = [
    TokenClass::Input,
    TokenClass::CacheRead,
    TokenClass::CacheWrite5m,
    TokenClass::CacheWrite1h,
    TokenClass::Output,
    TokenClass::Reasoning,
];

impl ClassPrices {
    fn of(row: &PriceRow, tier: Tier) -> Self {
        let prices = |lc: bool| CLASSES.map(|class| row.price_for(class, tier, lc).map(|(price, _)| price));
        ClassPrices {
            base: prices(false),
            long_context: row.long_context.map(|lc| (lc.above_input_tokens, prices(true))),
        }
    }

    /// Exactly what `pricing::cost` computes, without building its per-class lines.
    fn cost(&self, row: &PriceRow, tier: Tier, usage: &Usage) -> Result<Usd, CostError> {
        if !usage.is_consistent() {
            return Err(CostError::InconsistentUsage);
        }
        let (prices, long_context) = match &self.long_context {
            Some((above, prices)) if usage.input_total > *above => (prices, true),
            _ => (&self.base, false),
        };
        let tokens = [
            usage.input_uncached,
            usage.cache_read,
            usage.cache_write_5m,
            usage.cache_write_1h,
            usage.output_total - usage.reasoning,
            usage.reasoning,
        ];
        let mut total = Usd::ZERO;
        for ((class, price), n) in CLASSES.iter().zip(prices).zip(tokens) {
            if n == 0 {
                continue;
            }
            let price =
                price.ok_or(CostError::MissingPrice { model: row.model.clone(), tier, class: *class, long_context })?;
            total += price.cost(n);
        }
        Ok(total)
    }
}

/// Looks up (and remembers) the row in force for a call's model on its day.
pub struct Pricer<'b> {
    book: &'b PriceBook,
    rows: FastMap<RowKey, Result<&'b PriceRow, String>>,
    /// What prices a call: by model, day, tier name and batch flag, an index into `priced`, or into
    /// `failures` when the call cannot be priced whatever its usage. One hash lookup per call, instead of
    /// a row lookup, a tier parsed from its name and a price lookup.
    quotes: FastMap<QuoteKey, Result<u32, u32>>,
    priced: Vec<(&'b PriceRow, Tier, u32)>,
    prices: Vec<ClassPrices>,
    prices_by_row: FastMap<(usize, Tier), u32>,
    failures: Vec<String>,
}

type QuoteKey = (RowKey, Option<Sym>, bool);

/// Why one call has no price.
enum Failure {
    /// Its model, day or tier has no price: an index into `Pricer::failures`.
    Quote(u32),
    /// Its usage needs a price the row lacks, or is inconsistent.
    Usage(CostError),
}

impl<'b> Pricer<'b> {
    pub fn new(book: &'b PriceBook) -> Self {
        Pricer {
            book,
            rows: FastMap::default(),
            quotes: FastMap::default(),
            priced: Vec::new(),
            prices: Vec::new(),
            prices_by_row: FastMap::default(),
            failures: Vec::new(),
        }
    }

    /// The row in force for the snapshot that served the call (its response model), falling back to the
    /// model it asked for, on the call's UTC day.
    pub fn row(&mut self, calls: &Calls, c: &Call) -> Result<&'b PriceRow, String> {
        let day = c.ts_ms.div_euclid(86_400_000);
        let key = (c.provider, c.request_model, c.response_model, day);
        let book = self.book;
        self.rows
            .entry(key)
            .or_insert_with(|| {
                let date = utc_day(c.ts_ms);
                let provider = calls.name(c.provider);
                let requested = model_spec(provider, calls.name(c.request_model));
                if let Some(served) = c.response_model
                    && let Ok(q) = book.quote(&model_spec(provider, calls.name(served)), date)
                {
                    return Ok(q.row);
                }
                book.quote(&requested, date).map(|q| q.row).map_err(|e| e.to_string())
            })
            .clone()
    }

    /// The row, tier and class prices for the call: an index into `priced`, or into `failures`.
    fn quote(&mut self, calls: &Calls, c: &Call) -> Result<u32, u32> {
        let key =
            ((c.provider, c.request_model, c.response_model, c.ts_ms.div_euclid(86_400_000)), c.service_tier, c.batch);
        if let Some(quote) = self.quotes.get(&key) {
            return *quote;
        }
        let quote = match self.row(calls, c) {
            Err(reason) => Err(reason),
            Ok(row) => {
                let tier_name = c.service_tier.map(|t| calls.name(t));
                match Tier::from_request(tier_name, c.batch) {
                    None => Err(format!("no prices for service tier `{}`", tier_name.unwrap_or(""))),
                    Some(tier) => {
                        let next = self.prices.len() as u32;
                        let prices = *self.prices_by_row.entry((row as *const PriceRow as usize, tier)).or_insert(next);
                        if prices == next {
                            self.prices.push(ClassPrices::of(row, tier));
                        }
                        self.priced.push((row, tier, prices));
                        Ok(self.priced.len() as u32 - 1)
                    }
                }
            }
        };
        let quote = quote.map_err(|reason| {
            self.failures.push(reason);
            self.failures.len() as u32 - 1
        });
        self.quotes.insert(key, quote);
        quote
    }

    fn price(&mut self, calls: &Calls, c: &Call, usage: &Usage) -> Result<Usd, Failure> {
        let index = self.quote(calls, c).map_err(Failure::Quote)?;
        let (row, tier, prices) = self.priced[index as usize];
        self.prices[prices as usize].cost(row, tier, usage).map_err(Failure::Usage)
    }

    /// The price of `usage` for the call's model, day and tier.
    pub fn price_usage(&mut self, calls: &Calls, c: &Call, usage: &Usage) -> Result<Usd, String> {
        self.price(calls, c, usage).map_err(|f| match f {
            Failure::Quote(index) => self.failures[index as usize].clone(),
            Failure::Usage(e) => e.to_string(),
        })
    }
}

/// Prices every call: in one run per core, each with its own pricer, merged so that reasons are numbered
/// as one run would number them (in the order calls first meet them).
pub fn price_calls(calls: &Calls, book: &PriceBook) -> Pricing {
    use rayon::prelude::*;
    let size = calls.calls.len().div_ceil(rayon::current_num_threads().max(1)).max(1);
    let runs: Vec<Run> = calls.calls.par_chunks(size).map(|chunk| price_run(calls, chunk, book)).collect();
    let mut out = Pricing { prices: Vec::with_capacity(calls.calls.len()), ..Default::default() };
    let mut reason_index: HashMap<String, u32> = HashMap::new();
    let mut unpriced_by_sym: FastMap<(Sym, Sym, u32), u64> = FastMap::default();
    for run in runs {
        let global: Vec<u32> = run
            .reasons
            .into_iter()
            .map(|reason| {
                let next = out.reasons.len() as u32;
                *reason_index.entry(reason.clone()).or_insert_with(|| {
                    out.reasons.push(reason);
                    next
                })
            })
            .collect();
        out.prices.extend(run.prices.into_iter().map(|p| match p {
            Price::NoPrice(local) => Price::NoPrice(global[local as usize]),
            other => other,
        }));
        let (w, r) = (&mut out.without_usage, run.without_usage);
        (w.rows, w.ok, w.error, w.timeout, w.aborted) =
            (w.rows + r.rows, w.ok + r.ok, w.error + r.error, w.timeout + r.timeout, w.aborted + r.aborted);
        for ((provider, model, local), rows) in run.unpriced {
            *unpriced_by_sym.entry((provider, model, global[local as usize])).or_default() += rows;
        }
    }
    // Names are built once per model, not once per unpriced call; two symbol pairs with the same name
    // (`a:b` + `c` and `a` + `b:c`) are one model, as they were when keyed by name.
    let mut unpriced: BTreeMap<(String, u32), u64> = BTreeMap::new();
    for ((provider, model, index), rows) in unpriced_by_sym {
        *unpriced.entry((model_spec(calls.name(provider), calls.name(model)), index)).or_default() += rows;
    }
    out.unpriced = unpriced
        .into_iter()
        .map(|((model, index), rows)| Unpriced { model, rows, reason: out.reasons[index as usize].clone() })
        .collect();
    out
}

/// The prices of a run of calls, with reasons numbered within the run.
struct Run {
    prices: Vec<Price>,
    reasons: Vec<String>,
    without_usage: WithoutUsage,
    unpriced: FastMap<(Sym, Sym, u32), u64>,
}

fn price_run(calls: &Calls, run: &[Call], book: &PriceBook) -> Run {
    let mut pricer = Pricer::new(book);
    let mut out = Run {
        prices: Vec::with_capacity(run.len()),
        reasons: Vec::new(),
        without_usage: WithoutUsage::default(),
        unpriced: FastMap::default(),
    };
    // A quote failure is numbered by its index in the pricer, without building its text again for every
    // call that shares it.
    let mut reason_index: HashMap<String, u32> = HashMap::new();
    let mut quote_reason: Vec<Option<u32>> = Vec::new();
    for c in run {
        if c.usage_source == UsageSource::Missing {
            let w = &mut out.without_usage;
            w.rows += 1;
            match c.status {
                RequestStatus::Ok => w.ok += 1,
                RequestStatus::Error => w.error += 1,
                RequestStatus::Timeout => w.timeout += 1,
                RequestStatus::Aborted => w.aborted += 1,
            }
            out.prices.push(Price::NoUsage);
            continue;
        }
        let failure = match pricer.price(calls, c, &c.usage) {
            Ok(usd) => {
                out.prices.push(Price::Known(usd));
                continue;
            }
            Err(failure) => failure,
        };
        let mut number = |reason: String, reasons: &mut Vec<String>| {
            let next = reasons.len() as u32;
            *reason_index.entry(reason.clone()).or_insert_with(|| {
                reasons.push(reason);
                next
            })
        };
        let index = match failure {
            Failure::Quote(q) => {
                let q = q as usize;
                if quote_reason.len() <= q {
                    quote_reason.resize(q + 1, None);
                }
                match quote_reason[q] {
                    Some(index) => index,
                    None => {
                        let index = number(pricer.failures[q].clone(), &mut out.reasons);
                        quote_reason[q] = Some(index);
                        index
                    }
                }
            }
            Failure::Usage(e) => number(e.to_string(), &mut out.reasons),
        };
        *out.unpriced.entry((c.provider, c.request_model, index)).or_default() += 1;
        out.prices.push(Price::NoPrice(index));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::RequestRow;

    fn row(provider: &str, model: &str, response: Option<&str>, usage: Usage, tier: Option<&str>) -> RequestRow {
        RequestRow {
            ts: "2025-11-03T12:00:00Z".parse().unwrap(),
            provider: provider.into(),
            request_model: model.into(),
            response_model: response.map(Into::into),
            project: None,
            api_key_ref: None,
            tenant_id: None,
            conversation_id: None,
            trace_id: None,
            span_id: None,
            logical_request_id: None,
            attempt: 1,
            status: RequestStatus::Ok,
            streamed: false,
            usage_source: UsageSource::Provider,
            usage,
            service_tier: tier.map(Into::into),
            batch: false,
            latency_ms: None,
            ttft_ms: None,
            prompt_name: None,
            prompt_version: None,
            finish_reason: None,
            error: None,
            messages: Vec::new(),
            output: None,
            stream: Vec::new(),
        }
    }

    #[test]
    fn prices_by_hand() {
        // gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per 1M tokens.
        let usage = Usage::from_inclusive(1_000_000, 400_000, 0, 100_000, 0);
        let mut missing = row("openai", "gpt-4o-mini", None, Usage::default(), None);
        missing.usage_source = UsageSource::Missing;
        missing.status = RequestStatus::Timeout;
        let rows = [
            row("openai", "gpt-4o-mini", Some("gpt-4o-mini-2024-07-18"), usage, Some("default")),
            row("vllm", "llama-3.1-8b-instruct", None, usage, None),
            row("openai", "gpt-4o-mini", None, usage, Some("scale")),
            missing,
        ];
        let calls = Calls::from_rows(&rows);
        let p = price_calls(&calls, PriceBook::embedded());
        // 600k × 0.15 + 400k × 0.075 + 100k × 0.60 = 0.09 + 0.03 + 0.06 = $0.18
        assert_eq!(p.prices[0], Price::Known(Usd::parse_decimal("0.18", 0).unwrap()));
        assert!(matches!(p.prices[1], Price::NoPrice(_)));
        assert!(matches!(p.prices[2], Price::NoPrice(_)));
        assert_eq!(p.prices[3], Price::NoUsage);
        assert_eq!(p.without_usage, WithoutUsage { rows: 1, timeout: 1, ..Default::default() });
        assert_eq!(p.unpriced.len(), 2);
        assert!(
            p.unpriced.iter().any(|u| u.model == "vllm:llama-3.1-8b-instruct" && u.reason.contains("unknown provider"))
        );
        assert!(p.unpriced.iter().any(|u| u.reason.contains("service tier `scale`")));
    }

    #[test]
    fn reasons_are_numbered_in_the_order_calls_first_meet_them() {
        let usage = Usage::from_inclusive(1_000, 0, 0, 100, 0);
        let ok = || row("openai", "gpt-4o-mini", None, usage, None);
        let scale = || row("openai", "gpt-4o-mini", None, usage, Some("scale"));
        let vllm = || row("vllm", "llama-3.1-8b-instruct", None, usage, None);
        // Priced in runs (one per core): the second run meets both reasons again, in the other order.
        let rows = [ok(), scale(), vllm(), vllm(), scale(), ok(), vllm(), ok()];
        let p = price_calls(&Calls::from_rows(&rows), PriceBook::embedded());
        assert_eq!(p.reasons.len(), 2);
        assert!(p.reasons[0].contains("service tier `scale`") && p.reasons[1].contains("unknown provider"));
        let indices: Vec<Option<u32>> =
            p.prices.iter().map(|price| if let Price::NoPrice(i) = price { Some(*i) } else { None }).collect();
        assert_eq!(indices, [None, Some(0), Some(1), Some(1), Some(0), None, Some(1), None]);
        let rows_of = |model: &str| p.unpriced.iter().filter(|u| u.model == model).map(|u| u.rows).sum::<u64>();
        assert_eq!((rows_of("openai:gpt-4o-mini"), rows_of("vllm:llama-3.1-8b-instruct")), (2, 3));
    }

    #[test]
    fn the_fast_path_agrees_with_the_price_book_to_the_pico_dollar() {
        use crate::pricing::Billing;
        use crate::trace::generate::{GenerateConfig, generate};
        let mut rows: Vec<RequestRow> = generate(&GenerateConfig {
            conversations: 800,
            messages: false,
            checkpoints: false,
            ..GenerateConfig::default()
        })
        .map(|g| g.row)
        .collect();
        // Long context on both sides of the threshold, in both tiers that have it.
        for (input, tier) in [(200_000, None), (200_001, None), (250_000, Some("priority")), (250_000, Some("batch"))] {
            rows.push(row("anthropic", "claude-sonnet-4-5", None, Usage::from_additive(input, 0, 0, 0, 500, 0), tier));
        }
        let calls = Calls::from_rows(&rows);
        let book = PriceBook::embedded();
        let p = price_calls(&calls, book);
        let mut pricer = Pricer::new(book);
        let mut compared = 0;
        for (i, c) in calls.calls.iter().enumerate() {
            let Ok(row) = pricer.row(&calls, c) else { continue };
            let tier = Tier::from_request(c.service_tier.map(|t| calls.name(t)), c.batch).unwrap();
            let slow = row.cost(&c.usage, Billing { tier, long_context: true }).map(|cost| cost.total);
            match (slow, &p.prices[i]) {
                (Ok(usd), Price::Known(fast)) => assert_eq!(usd, *fast, "row {i}"),
                (Ok(_), Price::NoUsage) => {}
                (Err(e), Price::NoPrice(reason)) => assert_eq!(e.to_string(), p.reasons[*reason as usize], "row {i}"),
                (slow, fast) => panic!("row {i}: {slow:?} vs {fast:?}"),
            }
            compared += 1;
        }
        assert!(compared > 3_000);
    }

    #[test]
    fn anthropic_cache_writes_reasoning_and_batch_are_priced_by_their_rules() {
        // claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write (5m), $15 output per 1M.
        let usage = Usage::from_additive(10_000, 20_000, 4_000, 0, 1_000, 0);
        let mut batch = row("anthropic", "claude-sonnet-4-5", None, usage, None);
        batch.batch = true;
        // Above 200k input tokens the whole request bills at $6 / $0.60 / $7.50 / $22.50.
        let long = Usage::from_additive(100_000, 200_000, 40_000, 0, 10_000, 0);
        // o4-mini: reasoning tokens bill as output ($4.40 per 1M).
        let reasoning = Usage::from_inclusive(10_000, 0, 0, 5_000, 4_000);
        let rows = [
            row("anthropic", "claude-sonnet-4-5", None, usage, None),
            batch,
            row("anthropic", "claude-sonnet-4-5", None, long, None),
            row("openai", "o4-mini", None, reasoning, None),
        ];
        let p = price_calls(&Calls::from_rows(&rows), PriceBook::embedded());
        let usd = |s: &str| Price::Known(Usd::parse_decimal(s, 0).unwrap());
        // 0.03 + 0.006 + 0.015 + 0.015 = $0.066; batch bills half.
        assert_eq!(p.prices[0], usd("0.066"));
        assert_eq!(p.prices[1], usd("0.033"));
        // 0.6 + 0.12 + 0.3 + 0.225 = $1.245
        assert_eq!(p.prices[2], usd("1.245"));
        // 10k × 1.10 + 5k × 4.40 per 1M = 0.011 + 0.022
        assert_eq!(p.prices[3], usd("0.033"));
    }
}
