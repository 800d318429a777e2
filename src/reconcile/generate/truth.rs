//! The true attribution of a generated month: CLI.md's definition of each cause applied request by
//! request, with every request's billed and traced usage known. The reconciler sees only aggregates; the
//! accuracy tests compare it with this.

use std::collections::HashMap;

use jiff::civil::Date;

use super::Expected;
use super::traffic::{Billed, Call, actual_row};
use crate::money::Usd;
use crate::pricing::{PriceBook, PriceRow, Provider, Tier};
use crate::reconcile::catalog::{bare_name, spec};
use crate::reconcile::value::{CLASSES, Counts, Prices, Qty, UnitPrice, value};
use crate::reconcile::waterfall::{
    CACHE_ACCOUNTING, NON_TOKEN_FEES, PRICE_BOOK, REASONING_TOKENS, TIER_MODIFIERS, TOKEN_ESTIMATION, UNEXPLAINED,
    UNTRACED_CALLS,
};
use crate::reconcile::window::day_date;
use crate::trace::model::{RequestRow, UsageSource};

/// A line of the invoice with no tokens behind it.
#[derive(Debug, Clone)]
pub struct ExtraLine {
    pub usd: Usd,
    /// A metered tool fee (else a credit or adjustment).
    pub tool_fee: bool,
}

pub struct Truth<'b> {
    book: &'b PriceBook,
    list_day: Date,
    causes_injected: super::Causes,
    invoice: Usd,
    traces: Usd,
    causes: [Usd; 8],
    naive: HashMap<(String, String, Option<Tier>), Prices>,
    untraced_by_model: std::collections::BTreeMap<String, Usd>,
    actual: HashMap<(&'static str, i32), PriceRow>,
}

impl<'b> Truth<'b> {
    pub fn new(book: &'b PriceBook, list_day: Date, causes_injected: super::Causes) -> Truth<'b> {
        Truth {
            book,
            list_day,
            causes_injected,
            invoice: Usd::ZERO,
            traces: Usd::ZERO,
            causes: [Usd::ZERO; 8],
            naive: HashMap::new(),
            actual: HashMap::new(),
            untraced_by_model: Default::default(),
        }
    }

    pub fn add(&mut self, call: &Call) {
        let traced = call.traced.as_ref().filter(|r| has_usage(r));
        match (&call.billed, traced) {
            (Some(billed), Some(row)) => {
                self.invoice += billed.total();
                self.traced_and_billed(call.day, billed, row);
            }
            (Some(billed), None) => {
                self.invoice += billed.total();
                self.causes[UNTRACED_CALLS] += billed.total();
                *self.untraced_by_model.entry(billed.model.to_string()).or_default() += billed.total();
            }
            (None, Some(row)) => {
                let s0 = value(&Qty::from_counts(&Counts::from_usage(&row.usage)), &self.naive(row));
                self.traces += s0;
                self.causes[UNTRACED_CALLS] -= s0;
            }
            (None, None) => {}
        }
    }

    pub fn add_lines(&mut self, lines: &[ExtraLine]) {
        for line in lines {
            self.invoice += line.usd;
            self.causes[if line.tool_fee { NON_TOKEN_FEES } else { UNEXPLAINED }] += line.usd;
        }
    }

    pub fn expected(&self) -> Expected {
        Expected {
            invoice: self.invoice,
            traces: self.traces,
            causes: self.causes,
            untraced_by_model: self.untraced_by_model.clone(),
        }
    }

    /// Steps 0 and 3–7 for one request.
    fn traced_and_billed(&mut self, day: i32, billed: &Billed, row: &RequestRow) {
        let naive = self.naive(row);
        let traced_tier = Tier::from_request(row.service_tier.as_deref(), row.batch);
        let (book, causes) = (self.book, self.causes_injected);
        let actual = self
            .actual
            .entry((billed.model, day))
            .or_insert_with(|| actual_row(book, &causes, billed.provider, billed.model, day_date(day)))
            .clone();
        let traced = Qty::from_counts(&Counts::from_usage(&row.usage));
        let bill = Qty::from_counts(&Counts::from_usage(&billed.usage));
        let x3 = if row.usage_source == UsageSource::Estimated {
            traced.with_input(&Qty::input_split_like(&bill, traced.input()))
        } else {
            traced.with_input(&bill)
        };
        let x4 = x3.with_output(bill.output());
        let x7 = x4.with_input(&bill);
        let at_traced_tier = prices(&actual, traced_tier, false);
        let at_billed_tier = prices(&actual, Some(billed.tier), billed.long_context);
        let s = [
            value(&traced, &naive),
            value(&x3, &naive),
            value(&x4, &naive),
            value(&x4, &at_traced_tier),
            value(&x4, &at_billed_tier),
            value(&x7, &at_billed_tier),
        ];
        self.traces += s[0];
        self.causes[CACHE_ACCOUNTING] += s[1] - s[0];
        self.causes[REASONING_TOKENS] += s[2] - s[1];
        self.causes[PRICE_BOOK] += s[3] - s[2];
        self.causes[TIER_MODIFIERS] += s[4] - s[3];
        self.causes[TOKEN_ESTIMATION] += s[5] - s[4];
        // After step 7 the request is valued at exactly what it was billed; anything else is a bug in the
        // generator, not a cause.
        debug_assert_eq!(s[5], billed.total(), "{row:?}");
    }

    /// The list price of the traced model at the traced tier, base rates; $0 where the book has none.
    fn naive(&mut self, row: &RequestRow) -> Prices {
        let name = row.response_model.as_deref().unwrap_or(&row.request_model);
        let tier = Tier::from_request(row.service_tier.as_deref(), row.batch);
        let key = (row.provider.clone(), name.to_string(), tier);
        if let Some(prices) = self.naive.get(&key) {
            return *prices;
        }
        let provider = Provider::parse(&row.provider).unwrap_or(Provider::OpenAi);
        let quote = self.book.quote(&spec(provider, &bare_name(name)), self.list_day).ok();
        let prices = std::array::from_fn(|c| {
            quote
                .as_ref()
                .and_then(|q| q.row.price_for(CLASSES[c], tier.unwrap_or(Tier::Standard), false))
                .map_or(UnitPrice(0), |(p, _)| UnitPrice::from_per_mtok(p))
        });
        self.naive.insert(key, prices);
        prices
    }
}

fn prices(row: &PriceRow, tier: Option<Tier>, long_context: bool) -> Prices {
    std::array::from_fn(|c| {
        row.price_for(CLASSES[c], tier.unwrap_or(Tier::Standard), long_context)
            .map_or(UnitPrice(0), |(p, _)| UnitPrice::from_per_mtok(p))
    })
}

fn has_usage(row: &RequestRow) -> bool {
    row.usage_source != UsageSource::Missing && !Counts::from_usage(&row.usage).is_zero()
}
