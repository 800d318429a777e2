//! The waterfall: the trace side of every cell re-valued one correction at a time (docs/reconcile.md,
//! "The algorithm").
//!
//! Each step's cause is the change in the trace-side valuation that its correction makes, corrections
//! accumulating in the fixed order of CLI.md. Per cell (provider × UTC day × snapshot × project):
//!
//! 0. naive: traced tokens at the traced model's list price and traced tier, linear in tokens;
//! 2. untraced calls: billed requests with no traced usage, at the cell's billed value — each weighed by
//!    the tokens of the retry that replaced it when there is one, else by the cell's mean traced request;
//!    only the traced share of the cell's billed usage is compared from here on;
//! 3. cache accounting: the traced input split replaced by the billed one (provider-reported rows take the
//!    billed input outright; estimated rows keep their total, in billed proportions);
//! 4. reasoning: traced output replaced by billed output;
//! 5. price book: re-priced at the snapshot's actual price that day, still at the traced tier;
//! 6. tier modifiers: re-priced at the billed tiers and context rates (traced tokens matched to billed
//!    tiers where the trace says the same tier, the rest to the tiers left over);
//! 7. token estimation: estimated rows' input replaced by the billed input left for them.
//!
//! After step 7 a cell's traced share is valued at exactly its billed value, so what is left over the
//! whole invoice — `unexplained` — is the lines with no tokens behind them that are not tool fees.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use jiff::civil::Date;

use super::billing::{BilledCell, BilledGroup, Billing};
use super::catalog::{Catalog, GroupKey, ModelIx, spec};
use super::invoice::BilledTier;
use super::traced::{Acc, AccKey, EstimateFrom, NaiveIx, TracedGroup, Traces, UsageLess, status_index};
use super::value::{CLASSES, INPUT, OUTPUT, Prices, Qty, UnitPrice, allocate, mul_div, share, value};
use crate::money::Usd;
use crate::pricing::{Provider, Tier};
use crate::trace::model::RequestStatus;

/// Indices of the causes, in the order of CLI.md.
pub const NON_TOKEN_FEES: usize = 0;
pub const UNTRACED_CALLS: usize = 1;
pub const CACHE_ACCOUNTING: usize = 2;
pub const REASONING_TOKENS: usize = 3;
pub const PRICE_BOOK: usize = 4;
pub const TIER_MODIFIERS: usize = 5;
pub const TOKEN_ESTIMATION: usize = 6;
pub const UNEXPLAINED: usize = 7;

/// What one (provider, snapshot) contributed, summed over its cells, with the facts evidence is made of.
#[derive(Debug, Clone, Default)]
pub struct ModelFacts {
    pub invoice: Usd,
    pub traces: Usd,
    pub causes: [Usd; 8],
    pub first_day: Option<i32>,
    pub last_day: Option<i32>,
    // Untraced calls.
    pub billed_requests: u64,
    pub requests_known: bool,
    pub traced_rows: u64,
    pub first_attempts: u64,
    /// Rows without usage counted as billed, by status (ok = stream without usage, error, timeout, aborted).
    pub billed_usage_less: [u64; 4],
    pub unbilled_errors: u64,
    /// Billed requests with no traced row at all inside traced cells.
    pub phantom: u64,
    /// Traced requests beyond the billed count.
    pub excess: u64,
    /// Cells billed with no traced usage at all: by project, (days, value, requests if known).
    pub untraced_cells: BTreeMap<Option<String>, (BTreeSet<i32>, Usd, Option<u64>)>,
    /// Traced cells with nothing billed: value at trace prices and rows.
    pub unbilled_cells: (Usd, u64),
    // Cache accounting and reasoning: the traced share, before and after.
    pub traced_share: Qty,
    pub billed_share: Qty,
    // Price book.
    pub naive_names: BTreeSet<NaiveIx>,
    pub priced_at_zero: u64,
    // Tier modifiers: micro-tokens by tier label.
    pub traced_tiers: BTreeMap<String, i128>,
    pub billed_tiers: BTreeMap<String, i128>,
    pub long_context: i128,
    // Token estimation: per cell, (billed input, traced input, requests) of estimated rows, in tokens.
    pub estimation_points: Vec<(f64, f64, f64)>,
    pub estimated_rows: u64,
    pub web_search_requests: u64,
}

/// How a cell's billed value is shared among its rows, for the per-conversation view.
#[derive(Debug, Clone, Copy, Default)]
pub struct GroupFactors {
    /// The billed value of the traced share and the traced rows' total weight (their tokens at the cell's
    /// billed prices): a traced row costs its weight × value ÷ weight.
    pub traced_value: Usd,
    pub traced_weight: i128,
    /// The value of the untraced calls and the total weight of the billed rows without usage and of the
    /// billed requests with no row at all.
    pub untraced_value: Usd,
    pub untraced_weight: i128,
    /// Probability that a row without usage was billed: (non-error rows, error rows), as num/den.
    pub billed_share_ok: (i128, i128),
    pub billed_share_error: (i128, i128),
    pub mean_weight: i128,
}

#[derive(Debug, Default)]
pub struct Outcome {
    /// Causes 1–7 (index 0–6); index 7 holds the per-cell remainders (rounding, cells the steps could not
    /// close), the rest of `unexplained` is computed against the invoice total.
    pub causes: [Usd; 8],
    pub untraced_requests: i64,
    pub naive_total: Usd,
    pub models: BTreeMap<(Provider, ModelIx), ModelFacts>,
    pub factors: HashMap<GroupKey, GroupFactors>,
    /// The cell each traced group index (`Traces::group_keys`) ended up in.
    pub group_of: Vec<GroupKey>,
    pub projects_compared: BTreeMap<Provider, bool>,
    pub retries: BTreeMap<Provider, Retries>,
}

/// Billed attempts against logical requests, over cells that have traces.
#[derive(Debug, Clone, Copy, Default)]
pub struct Retries {
    pub billed_attempts: u64,
    pub logical_requests: u64,
    pub traced_attempts: u64,
}

/// Runs the waterfall over every cell.
pub fn run(catalog: &Catalog, billing: &Billing, traces: &Traces, list_day: Date) -> Outcome {
    let mut outcome = Outcome::default();
    let policy = project_policy(billing, traces);
    let cells = Cells::assemble(billing, traces, &policy);
    outcome.group_of = traces.group_keys.iter().map(|k| remap(*k, &policy)).collect();
    outcome.projects_compared = policy;
    let mut prices = PriceCache::new(catalog, billing, list_day);
    let keys: BTreeSet<GroupKey> =
        cells.billed.keys().chain(cells.accs.keys()).chain(cells.traced.keys()).copied().collect();
    for key in keys {
        let calc = GroupCalc {
            key,
            billed: cells.billed.get(&key),
            traced: cells.traced.get(&key).copied().unwrap_or_default(),
            accs: cells.accs.get(&key).map(Vec::as_slice).unwrap_or(&[]),
            usage_less: cells.usage_less.get(&key).map(Vec::as_slice).unwrap_or(&[]),
        };
        calc.run(&mut prices, traces, catalog, &mut outcome);
    }
    outcome
}

/// Whether to tell cells apart by project, per provider: only when every invoice usage line and every
/// traced row of the provider names one and at least one traced project is on the invoice. Otherwise
/// projects are summed over, on both sides.
fn project_policy(billing: &Billing, traces: &Traces) -> BTreeMap<Provider, bool> {
    billing
        .providers
        .iter()
        .map(|(provider, facts)| {
            let traced = traces.projects.get(provider);
            let compare = facts.usage_without_project == 0
                && traced.is_some_and(|t| {
                    t.rows > 0 && t.without_project == 0 && t.seen.iter().any(|p| facts.projects.contains(p))
                });
            (*provider, compare)
        })
        .collect()
}

fn remap(key: GroupKey, policy: &BTreeMap<Provider, bool>) -> GroupKey {
    if policy.get(&key.provider).copied().unwrap_or(false) { key } else { key.without_project() }
}

/// Both sides, keyed by the cells actually compared.
struct Cells<'t> {
    billed: BTreeMap<GroupKey, BilledGroup>,
    traced: HashMap<GroupKey, TracedGroup>,
    accs: BTreeMap<GroupKey, Vec<(AccKey, Acc)>>,
    usage_less: HashMap<GroupKey, Vec<&'t UsageLess>>,
}

impl<'t> Cells<'t> {
    fn assemble(billing: &Billing, traces: &'t Traces, policy: &BTreeMap<Provider, bool>) -> Cells<'t> {
        let mut billed: BTreeMap<GroupKey, BilledGroup> = BTreeMap::new();
        for (key, group) in &billing.groups {
            billed.entry(remap(*key, policy)).or_default().absorb(group.clone());
        }
        let mut traced: HashMap<GroupKey, TracedGroup> = HashMap::new();
        for (key, group) in &traces.groups {
            traced.entry(remap(*key, policy)).or_default().absorb(group);
        }
        let mut merged: HashMap<AccKey, Acc> = HashMap::new();
        for (key, acc) in &traces.accs {
            let m = merged.entry(AccKey { group: remap(key.group, policy), ..*key }).or_default();
            m.tokens += acc.tokens;
            m.reasoning += acc.reasoning;
            m.rows += acc.rows;
        }
        let mut accs: BTreeMap<GroupKey, Vec<(AccKey, Acc)>> = BTreeMap::new();
        for (key, acc) in merged {
            accs.entry(key.group).or_default().push((key, acc));
        }
        for lines in accs.values_mut() {
            lines.sort_by_key(|(key, _)| key.order());
        }
        let mut usage_less: HashMap<GroupKey, Vec<&UsageLess>> = HashMap::new();
        for row in &traces.usage_less {
            usage_less.entry(remap(row.group, policy)).or_default().push(row);
        }
        Cells { billed, traced, accs, usage_less }
    }
}

/// Prices every step needs, looked up once.
struct PriceCache<'a, 'b> {
    catalog: &'a Catalog<'b>,
    billing: &'a Billing,
    list_day: Date,
    naive: HashMap<(NaiveIx, Option<Tier>), (Prices, bool)>,
}

impl<'a, 'b> PriceCache<'a, 'b> {
    fn new(catalog: &'a Catalog<'b>, billing: &'a Billing, list_day: Date) -> Self {
        PriceCache { catalog, billing, list_day, naive: HashMap::new() }
    }

    /// What a tracing dashboard charges: the traced name's list price (the book's price on the window's
    /// last day) at the traced tier, base rates. Prices the book lacks are $0 — as the dashboard shows
    /// them; the flag says whether every class was priced.
    fn naive(&mut self, traces: &Traces, naive: NaiveIx, tier: Option<Tier>) -> (Prices, bool) {
        if let Some(p) = self.naive.get(&(naive, tier)) {
            return *p;
        }
        let (provider, name) = &traces.naive_names[naive as usize];
        let bare = super::catalog::bare_name(name);
        let quote = self.catalog.book.quote(&spec(*provider, &bare), self.list_day).ok();
        let mut complete = quote.is_some();
        let prices: Prices = std::array::from_fn(|c| {
            let price = quote.as_ref().and_then(|q| q.row.price_for(CLASSES[c], tier.unwrap_or(Tier::Standard), false));
            complete &= price.is_some();
            price.map_or(UnitPrice(0), |(p, _)| UnitPrice::from_per_mtok(p))
        });
        self.naive.insert((naive, tier), (prices, complete));
        (prices, complete)
    }

    /// The snapshot's actual price on the cell's day at `tier`, base rates: the book's price for that tier
    /// scaled by the invoice's price level for the class (what it charged ÷ the book's value of the same
    /// billed tokens). A snapshot or tier the book does not price takes the invoice's average price.
    fn actual(&self, key: GroupKey, tier: Option<Tier>) -> Prices {
        let day_model = self.billing.day_models.get(&key.day_model());
        let effective = |c: usize| day_model.and_then(|d| d.effective[c]).unwrap_or_default();
        let row = self.catalog.row(key.model, key.day);
        std::array::from_fn(|c| {
            let listed = tier.and_then(|t| row.and_then(|r| r.price_for(CLASSES[c], t, false)));
            match (listed, day_model.and_then(|d| d.level[c])) {
                (Some((p, _)), Some((charged, book))) => UnitPrice::from_per_mtok(p).scaled(charged.0, book.0),
                (Some((p, _)), None) => UnitPrice::from_per_mtok(p),
                (None, _) => effective(c),
            }
        })
    }
}

/// Counts of rows without usage, and their weights, by whether they were errors.
#[derive(Debug, Clone, Copy, Default)]
struct Slots {
    ok_rows: u64,
    ok_weight: i128,
    error_rows: u64,
    error_weight: i128,
}

/// How step 2 split a cell.
#[derive(Debug, Clone, Copy, Default)]
struct Untraced {
    usd: Usd,
    requests: i64,
    /// The traced rows kept (num/den): below 1 when traces count more requests than were billed.
    kept: (i128, i128),
    /// Per context bucket (base, long) and class, the share of the billed tokens that traced requests
    /// account for (num/den); the rest was billed to the untraced calls.
    traced_share: [[(i128, i128); 5]; 2],
    split_by_context: bool,
    /// Some untraced calls were estimated as the cell's mean request (no retry, no stream to go by).
    estimated_from_mean: bool,
    factors: GroupFactors,
    billed_usage_less: [u64; 4],
    unbilled_errors: u64,
    phantom: u64,
    excess: u64,
}

/// Which calls without traced usage were billed: rows without usage that were not errors, errors, and
/// requests with no row at all.
#[derive(Debug, Clone, Copy, Default)]
struct Billable {
    take_ok: u64,
    take_error: u64,
    phantom: u64,
}

struct GroupCalc<'c, 't> {
    key: GroupKey,
    billed: Option<&'c BilledGroup>,
    traced: TracedGroup,
    accs: &'c [(AccKey, Acc)],
    usage_less: &'c [&'t UsageLess],
}

/// One accumulator as the steps re-value it.
#[derive(Debug, Clone, Copy)]
struct Line {
    key: AccKey,
    rows: u64,
    reasoning: u64,
    naive: Prices,
    qty: Qty,
}

impl GroupCalc<'_, '_> {
    fn run(&self, prices: &mut PriceCache, traces: &Traces, catalog: &Catalog, outcome: &mut Outcome) {
        let lines: Vec<Line> = self
            .accs
            .iter()
            .map(|(key, acc)| {
                let (naive, complete) = prices.naive(traces, key.naive, key.tier);
                let facts = outcome.models.entry((self.key.provider, self.key.model)).or_default();
                facts.naive_names.insert(key.naive);
                facts.priced_at_zero += if complete { 0 } else { acc.rows };
                Line { key: *key, rows: acc.rows, reasoning: acc.reasoning, naive, qty: Qty::from_counts(&acc.tokens) }
            })
            .collect();
        let s0: Usd = lines.iter().map(|l| value(&l.qty, &l.naive)).sum();
        outcome.naive_total += s0;
        let billed_usd = self.billed.map_or(Usd::ZERO, BilledGroup::usd);
        self.note_basics(outcome, s0, billed_usd);
        self.note_retries(outcome);
        let Some(billed) = self.billed.filter(|b| !b.cells.is_empty()) else {
            return self.close_unbilled(outcome, s0, catalog);
        };
        if self.traced.rows_with_usage == 0 || lines.is_empty() {
            return self.close_untraced(outcome, billed, s0, catalog);
        }
        let untraced = self.untraced(billed, &lines, prices);
        let steps = self.steps(billed, &lines, &untraced, prices);
        self.record(outcome, &untraced, &steps, s0, billed_usd, &lines, billed);
    }

    fn note_basics(&self, outcome: &mut Outcome, s0: Usd, billed_usd: Usd) {
        let facts = outcome.models.entry((self.key.provider, self.key.model)).or_default();
        facts.invoice += billed_usd;
        facts.traces += s0;
        facts.first_day = Some(facts.first_day.map_or(self.key.day, |d| d.min(self.key.day)));
        facts.last_day = Some(facts.last_day.map_or(self.key.day, |d| d.max(self.key.day)));
        facts.traced_rows += self.traced.rows_with_usage;
        facts.first_attempts += self.traced.first_attempts;
        if let Some(billed) = self.billed {
            facts.web_search_requests += billed.web_search_requests;
            // Billed requests are compared with traced ones only where there are traces; cells with none
            // are reported on their own.
            if let Some(r) = billed.requests().filter(|_| self.traced.rows_with_usage > 0) {
                facts.billed_requests += r;
                facts.requests_known = true;
            }
        }
    }

    fn note_retries(&self, outcome: &mut Outcome) {
        let Some(billed) = self.billed else { return };
        if self.traced.rows_with_usage == 0 {
            return;
        }
        let usage_less: u64 = self.traced.usage_less.iter().sum();
        let billed_attempts =
            billed.requests().unwrap_or(self.traced.rows_with_usage + usage_less - self.traced.usage_less[1]);
        let r = outcome.retries.entry(self.key.provider).or_default();
        r.billed_attempts += billed_attempts;
        r.logical_requests += self.traced.first_attempts;
        r.traced_attempts += self.traced.rows_with_usage + usage_less;
    }

    /// Traced usage with nothing on the invoice: the correction removes it.
    fn close_unbilled(&self, outcome: &mut Outcome, s0: Usd, _catalog: &Catalog) {
        outcome.causes[UNTRACED_CALLS] -= s0;
        outcome.untraced_requests -= self.traced.rows_with_usage as i64;
        let facts = outcome.models.entry((self.key.provider, self.key.model)).or_default();
        facts.causes[UNTRACED_CALLS] -= s0;
        facts.excess += self.traced.rows_with_usage;
        facts.unbilled_cells.0 += s0;
        facts.unbilled_cells.1 += self.traced.rows_with_usage;
    }

    /// A billed cell with no traced usage: all of it is untraced calls (and traced value, if any rows
    /// carry usage but no tokens, is nil).
    fn close_untraced(&self, outcome: &mut Outcome, billed: &BilledGroup, s0: Usd, catalog: &Catalog) {
        let usd = billed.usd();
        let requests = billed.requests();
        let change = usd - s0;
        outcome.causes[UNTRACED_CALLS] += change;
        outcome.untraced_requests += requests.unwrap_or(0) as i64;
        let facts = outcome.models.entry((self.key.provider, self.key.model)).or_default();
        facts.causes[UNTRACED_CALLS] += change;
        let project = catalog.project_name(self.key.project).map(str::to_string);
        let entry = facts.untraced_cells.entry(project).or_insert((BTreeSet::new(), Usd::ZERO, Some(0)));
        entry.0.insert(self.key.day);
        entry.1 += usd;
        entry.2 = entry.2.zip(requests).map(|(a, b)| a + b);
        for status in [RequestStatus::Ok, RequestStatus::Timeout, RequestStatus::Aborted] {
            facts.billed_usage_less[status_index(status)] += self.traced.usage_less[status_index(status)];
        }
        outcome
            .factors
            .insert(self.key, GroupFactors { untraced_value: usd, billed_share_ok: (1, 1), ..Default::default() });
    }

    /// Step 2: billed requests without traced usage, at their billed value. Which of them were billed
    /// comes from the request counts (or, without counts, from the status: errors were not billed); what
    /// they were billed for is estimated from the tokens of the retry that replaced each of them, else from
    /// the cell's mean traced request, with the output a stream delivered when its checkpoints say. The
    /// billed tokens are then shared class by class, and by context rate, between traced and untraced.
    fn untraced(&self, billed: &BilledGroup, lines: &[Line], prices: &PriceCache) -> Untraced {
        let day_model = prices.billing.day_models.get(&self.key.day_model());
        let effective: Prices = std::array::from_fn(|c| day_model.and_then(|d| d.effective[c]).unwrap_or_default());
        let traced_weight: i128 = lines.iter().map(|l| value(&l.qty, &effective).0).sum();
        let rows = self.traced.rows_with_usage;
        let mean_weight = traced_weight / rows.max(1) as i128;
        let slots = self.slots(mean_weight);
        let usd = billed.usd();
        let split_by_context = billed.cells.iter().any(|c| c.long_context);
        let mut u = Untraced { kept: (1, 1), traced_share: [[(1, 1); 5]; 2], split_by_context, ..Default::default() };
        let billable = match billed.requests() {
            Some(requests) if requests < rows => {
                return self.excess(lines, rows - requests, slots, usd, traced_weight, mean_weight, u);
            }
            Some(requests) => {
                let missing = requests - rows;
                let take_ok = missing.min(slots.ok_rows);
                let take_error = (missing - take_ok).min(slots.error_rows);
                Billable { take_ok, take_error, phantom: missing - take_ok - take_error }
            }
            // No request counts (Anthropic): streams without usage, timeouts and aborts were billed; errors
            // (rate limits, overload) were not.
            None => Billable { take_ok: slots.ok_rows, take_error: 0, phantom: 0 },
        };
        let traced = self.traced_by_bucket(lines, split_by_context);
        let untraced = self.untraced_by_bucket(lines, &traced, &billable, &slots, split_by_context);
        u.traced_share =
            traced_shares(&traced, &untraced, rows, billable.take_ok + billable.take_error + billable.phantom);
        let kept: Usd = billed
            .cells
            .iter()
            .map(|c| {
                BilledShare::of(c, &u.traced_share[usize::from(split_by_context && c.long_context)])
                    .usd
                    .iter()
                    .copied()
                    .sum::<Usd>()
            })
            .sum();
        u.usd = usd - kept;
        u.requests = (billable.take_ok + billable.take_error + billable.phantom) as i64;
        u.phantom = billable.phantom;
        u.estimated_from_mean = billable.phantom > 0
            || self
                .usage_less
                .iter()
                .any(|r| r.estimate.is_none() && (r.status != RequestStatus::Error || billable.take_error > 0));
        u.unbilled_errors = slots.error_rows - billable.take_error;
        u.billed_usage_less = self.billed_by_status(billable.take_ok, slots.ok_rows, billable.take_error);
        u.factors = GroupFactors {
            traced_value: kept,
            traced_weight,
            untraced_value: u.usd,
            untraced_weight: mul_div(slots.ok_weight, billable.take_ok as i128, slots.ok_rows as i128)
                + mul_div(slots.error_weight, billable.take_error as i128, slots.error_rows as i128)
                + billable.phantom as i128 * mean_weight,
            billed_share_ok: (billable.take_ok as i128, slots.ok_rows as i128),
            billed_share_error: (billable.take_error as i128, slots.error_rows as i128),
            mean_weight,
        };
        u
    }

    /// Traces count more requests than were billed: the correction removes the surplus at trace prices.
    #[allow(clippy::too_many_arguments)]
    fn excess(
        &self,
        lines: &[Line],
        excess: u64,
        slots: Slots,
        usd: Usd,
        traced_weight: i128,
        mean_weight: i128,
        mut u: Untraced,
    ) -> Untraced {
        let rows = self.traced.rows_with_usage;
        let s0: Usd = lines.iter().map(|l| value(&l.qty, &l.naive)).sum();
        u.kept = ((rows - excess) as i128, rows as i128);
        u.usd = -share(s0, excess as i128, rows as i128);
        u.requests = -(excess as i64);
        u.excess = excess;
        u.unbilled_errors = slots.error_rows;
        u.factors = GroupFactors { traced_value: usd, traced_weight, mean_weight, ..Default::default() };
        u
    }

    /// Traced tokens by context bucket (base, long).
    fn traced_by_bucket(&self, lines: &[Line], split: bool) -> [Qty; 2] {
        let mut traced = [Qty::default(); 2];
        for line in lines {
            traced[usize::from(split && line.key.long)] += line.qty;
        }
        traced
    }

    /// The traced-equivalent tokens of the billed calls without traced usage, by context bucket: a row
    /// without usage counts as the retry that replaced it, else as the mean traced call of its kind
    /// (streamed or not), with the output its stream delivered when it has checkpoints; a billed request
    /// with no row at all counts as the mean traced call.
    fn untraced_by_bucket(
        &self,
        lines: &[Line],
        traced: &[Qty; 2],
        billable: &Billable,
        slots: &Slots,
        split: bool,
    ) -> [Qty; 2] {
        const MICRO: i128 = 1_000_000;
        let rows = self.traced.rows_with_usage as i128;
        // Per kind (not streamed, streamed): the mean traced call by bucket, and its mean reasoning.
        let mean_of = |streamed: bool| -> ([Qty; 2], i128) {
            let kind: Vec<&Line> = lines.iter().filter(|l| l.key.streamed == streamed).collect();
            let n: i128 = kind.iter().map(|l| l.rows as i128).sum();
            if n == 0 {
                let reasoning: i128 = lines.iter().map(|l| l.reasoning as i128).sum();
                return (traced.map(|t| t.scaled(1, rows)), reasoning * MICRO / rows.max(1));
            }
            let mut by_bucket = [Qty::default(); 2];
            for line in &kind {
                by_bucket[usize::from(split && line.key.long)] += line.qty;
            }
            let reasoning: i128 = kind.iter().map(|l| l.reasoning as i128).sum();
            (by_bucket.map(|q| q.scaled(1, n)), reasoning * MICRO / n)
        };
        let means = [mean_of(false), mean_of(true)];
        let mut ok = [Qty::default(); 2];
        let mut error = [Qty::default(); 2];
        for row in self.usage_less {
            let target = if row.status == RequestStatus::Error { &mut error } else { &mut ok };
            let (mean, mean_reasoning) = means[usize::from(row.streamed)];
            // A stream's checkpoints count what it delivered; hidden reasoning was billed too.
            let reasoning = row.estimate.map_or(mean_reasoning, |e| e.reasoning as i128 * MICRO);
            let streamed_output = row.streamed_output.map(|o| o as i128 * MICRO + reasoning);
            match row.estimate {
                Some(estimate) => {
                    let bucket = usize::from(split && estimate.long);
                    let mut q = Qty::from_counts(&estimate.tokens);
                    // Neighbouring turns tell a call's size, not its cache split (the first turn writes
                    // what the next ones read): the split is the cell's.
                    if estimate.from == EstimateFrom::Conversation {
                        q = q.with_input(&Qty::input_split_like(&traced[bucket], q.input()));
                    }
                    target[bucket] += streamed_output.map_or(q, |o| q.with_output(o));
                }
                None => {
                    for (b, m) in mean.iter().enumerate() {
                        target[b] += if streamed_output.is_some() { m.with_output(0) } else { *m };
                    }
                    if let Some(output) = streamed_output {
                        target[0] += Qty::default().with_output(output);
                    }
                }
            }
        }
        std::array::from_fn(|b| {
            ok[b].scaled(billable.take_ok as i128, slots.ok_rows as i128)
                + error[b].scaled(billable.take_error as i128, slots.error_rows as i128)
                + traced[b].scaled(billable.phantom as i128, rows)
        })
    }

    /// Rows without usage, weighed by the retry that replaced them, else by the mean traced request.
    fn slots(&self, mean_weight: i128) -> Slots {
        let mut slots = Slots::default();
        for row in self.usage_less {
            let weight = row.estimate.map_or(mean_weight, |e| i128::from(e.weight));
            if row.status == RequestStatus::Error {
                slots.error_rows += 1;
                slots.error_weight += weight;
            } else {
                slots.ok_rows += 1;
                slots.ok_weight += weight;
            }
        }
        slots
    }

    /// Billed rows without usage by status, spreading `take_ok` over the non-error statuses.
    fn billed_by_status(&self, take_ok: u64, ok_rows: u64, take_error: u64) -> [u64; 4] {
        let mut out = [0u64; 4];
        for status in [RequestStatus::Ok, RequestStatus::Timeout, RequestStatus::Aborted] {
            let i = status_index(status);
            out[i] = mul_div(self.traced.usage_less[i] as i128, take_ok as i128, ok_rows as i128) as u64;
        }
        out[status_index(RequestStatus::Error)] = take_error;
        out
    }

    /// Steps 3–7 on the traced share of the cell.
    fn steps(&self, billed: &BilledGroup, lines: &[Line], untraced: &Untraced, prices: &PriceCache) -> Steps {
        let (kept_num, kept_den) = untraced.kept;
        let x0: Vec<Qty> = lines.iter().map(|l| l.qty.scaled(kept_num, kept_den)).collect();
        let cells: Vec<BilledShare> = billed
            .cells
            .iter()
            .map(|c| {
                BilledShare::of(c, &untraced.traced_share[usize::from(untraced.split_by_context && c.long_context)])
            })
            .collect();
        let y = cells.iter().fold(Qty::default(), |acc, c| acc + c.qty);
        let split = InputSplit::new(lines, &x0, &y);
        let x3 = split.step3(lines, &x0, &y);
        let x4 = replace_output(lines, &x3, y.output());
        let x7 = split.step7(lines, &x4, &y);
        let naive = |xs: &[Qty]| -> Usd { xs.iter().zip(lines).map(|(q, l)| value(q, &l.naive)).sum() };
        let actual: Usd = x4.iter().zip(lines).map(|(q, l)| value(q, &prices.actual(self.key, l.key.tier))).sum();
        Steps {
            s0: naive(&x0),
            s3: naive(&x3),
            s4: naive(&x4),
            s5: actual,
            s6: matched_value(lines, &x4, &cells),
            s7: matched_value(lines, &x7, &cells),
            x0,
            y,
            estimation: split.estimation_point(lines),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        outcome: &mut Outcome,
        u: &Untraced,
        s: &Steps,
        s0: Usd,
        billed_usd: Usd,
        lines: &[Line],
        billed: &BilledGroup,
    ) {
        let mut causes = [Usd::ZERO; 8];
        causes[UNTRACED_CALLS] = u.usd;
        causes[CACHE_ACCOUNTING] = s.s3 - s.s0;
        causes[REASONING_TOKENS] = s.s4 - s.s3;
        causes[PRICE_BOOK] = s.s5 - s.s4;
        causes[TIER_MODIFIERS] = s.s6 - s.s5;
        causes[TOKEN_ESTIMATION] = s.s7 - s.s6;
        let explained: Usd = causes.iter().copied().sum();
        causes[UNEXPLAINED] = billed_usd - s0 - explained;
        for (total, c) in outcome.causes.iter_mut().zip(causes) {
            *total += c;
        }
        outcome.untraced_requests += u.requests;
        outcome.factors.insert(self.key, u.factors);
        let facts = outcome.models.entry((self.key.provider, self.key.model)).or_default();
        for (total, c) in facts.causes.iter_mut().zip(causes) {
            *total += c;
        }
        for (total, n) in facts.billed_usage_less.iter_mut().zip(u.billed_usage_less) {
            *total += n;
        }
        facts.unbilled_errors += u.unbilled_errors;
        facts.phantom += u.phantom;
        facts.excess += u.excess;
        facts.traced_share += s.x0.iter().fold(Qty::default(), |a, q| a + *q);
        facts.billed_share += s.y;
        for (line, q) in lines.iter().zip(&s.x0) {
            *facts.traced_tiers.entry(traced_tier_label(line.key.tier)).or_default() += q.input() + q.output();
            facts.estimated_rows += if line.key.estimated { line.rows } else { 0 };
        }
        for cell in &billed.cells {
            let q = Qty::from_counts(&cell.tokens);
            *facts.billed_tiers.entry(billed_tier_label(&cell.tier)).or_default() += q.input() + q.output();
            facts.long_context += if cell.long_context { q.input() + q.output() } else { 0 };
        }
        // A cell whose untraced calls had to be estimated from its mean request says less about the
        // estimated rows' billed input than the others: the fit leaves it out.
        if !u.estimated_from_mean {
            facts.estimation_points.extend(s.estimation);
        }
    }
}

/// Per bucket and class, the traced share of the billed tokens: traced ÷ (traced + untraced). A class
/// neither side shows (a tracer that drops cache counts drops them for the retries too) takes the share of
/// its family (input, output) in the bucket, else of the whole request count.
fn traced_shares(traced: &[Qty; 2], untraced: &[Qty; 2], rows: u64, untraced_requests: u64) -> [[(i128, i128); 5]; 2] {
    std::array::from_fn(|b| {
        std::array::from_fn(|c| {
            let (t, u) = (traced[b].0[c], untraced[b].0[c]);
            if t + u > 0 {
                return (t, t + u);
            }
            let (t, u) = if c == OUTPUT {
                (traced[b].output(), untraced[b].output())
            } else {
                (traced[b].input(), untraced[b].input())
            };
            if t + u > 0 { (t, t + u) } else { (rows as i128, (rows + untraced_requests) as i128) }
        })
    })
}

/// The valuations after each step, and what evidence needs of them.
struct Steps {
    s0: Usd,
    s3: Usd,
    s4: Usd,
    s5: Usd,
    s6: Usd,
    s7: Usd,
    x0: Vec<Qty>,
    y: Qty,
    estimation: Option<(f64, f64, f64)>,
}

/// The traced share of one billed cell: its tokens and what the invoice charged for them.
#[derive(Debug, Clone)]
struct BilledShare {
    tier: BilledTier,
    qty: Qty,
    usd: [Usd; 5],
}

impl BilledShare {
    /// The part of `cell` that traced requests account for, class by class.
    fn of(cell: &BilledCell, shares: &[(i128, i128); 5]) -> BilledShare {
        let tokens = Qty::from_counts(&cell.tokens);
        BilledShare {
            tier: cell.tier.clone(),
            qty: Qty(std::array::from_fn(|c| mul_div(tokens.0[c], shares[c].0, shares[c].1))),
            usd: std::array::from_fn(|c| share(cell.usd[c], shares[c].0, shares[c].1)),
        }
    }
}

/// How the billed input of the traced share is divided between rows whose usage the provider reported
/// and rows that estimated it client-side.
struct InputSplit {
    estimated_input: i128,
    /// Billed input left for the estimated rows: what the reported rows do not account for.
    billed_estimated: i128,
    billed_reported: i128,
}

impl InputSplit {
    fn new(lines: &[Line], x0: &[Qty], y: &Qty) -> InputSplit {
        let sum = |estimated: bool| -> i128 {
            lines.iter().zip(x0).filter(|(l, _)| l.key.estimated == estimated).map(|(_, q)| q.input()).sum()
        };
        let (reported_input, estimated_input) = (sum(false), sum(true));
        let has_estimated = lines.iter().any(|l| l.key.estimated);
        let billed = y.input();
        // Provider-reported totals are trusted to be what was billed, so whatever billed input they do not
        // account for belongs to the estimated rows.
        let billed_estimated = if !has_estimated {
            0
        } else if reported_input == 0 {
            billed
        } else {
            (billed - reported_input).clamp(0, billed)
        };
        InputSplit { estimated_input, billed_estimated, billed_reported: billed - billed_estimated }
    }

    /// Reported rows take their share of the billed input outright; estimated rows keep their total in
    /// the billed proportions.
    fn step3(&self, lines: &[Line], x0: &[Qty], y: &Qty) -> Vec<Qty> {
        let reported = Qty::input_split_like(y, self.billed_reported);
        let estimated = Qty::input_split_like(y, self.estimated_input);
        let x = move_input(lines, x0, false, &reported);
        move_input(lines, &x, true, &estimated)
    }

    /// Estimated rows take the billed input left for them.
    fn step7(&self, lines: &[Line], x4: &[Qty], y: &Qty) -> Vec<Qty> {
        move_input(lines, x4, true, &Qty::input_split_like(y, self.billed_estimated))
    }

    /// (billed input, traced input, requests) of the estimated rows, in tokens, for the fit.
    fn estimation_point(&self, lines: &[Line]) -> Option<(f64, f64, f64)> {
        let rows: u64 = lines.iter().filter(|l| l.key.estimated).map(|l| l.rows).sum();
        (rows > 0).then(|| (self.billed_estimated as f64 / 1e6, self.estimated_input as f64 / 1e6, rows as f64))
    }
}

/// Moves the input classes of the lines of one kind (`estimated` or not) to the class totals of `target`,
/// changing each line as little as possible: a class that shrinks gives back in proportion to what each
/// line holds of it; a class that grows goes first to the lines that gave back, then, for any growth of
/// the total, in proportion to each line's input. Lines already at the target are left exactly as they
/// are — a correctly traced cell shows no change.
fn move_input(lines: &[Line], xs: &[Qty], estimated: bool, target: &Qty) -> Vec<Qty> {
    let chosen: Vec<usize> = (0..lines.len()).filter(|&i| lines[i].key.estimated == estimated).collect();
    if chosen.is_empty() {
        return xs.to_vec();
    }
    let mut out = xs.to_vec();
    let delta: Vec<i128> = INPUT.map(|c| target.0[c] - chosen.iter().map(|&i| xs[i].0[c]).sum::<i128>()).collect();
    let mut given_back = vec![0i128; chosen.len()];
    for (c, d) in INPUT.zip(&delta).filter(|(_, d)| **d < 0) {
        let holdings: Vec<i128> = chosen.iter().map(|&i| xs[i].0[c]).collect();
        for ((slot, &i), part) in given_back.iter_mut().zip(&chosen).zip(allocate(-d, &holdings)) {
            out[i].0[c] -= part;
            *slot += part;
        }
    }
    let returned: i128 = given_back.iter().sum();
    let growth: i128 = delta.iter().filter(|d| **d > 0).sum();
    let inputs: Vec<i128> = chosen.iter().map(|&i| xs[i].input()).collect();
    let input_total: i128 = inputs.iter().sum();
    let receive: Vec<i128> = given_back
        .iter()
        .zip(&inputs)
        .zip(&chosen)
        .map(|((back, input), &i)| {
            if growth >= returned {
                let extra = if input_total > 0 {
                    mul_div(growth - returned, *input, input_total)
                } else {
                    lines[i].rows as i128
                };
                back + extra
            } else {
                mul_div(*back, growth, returned)
            }
        })
        .collect();
    for (c, d) in INPUT.zip(&delta).filter(|(_, d)| **d > 0) {
        let weights = if receive.iter().any(|w| *w > 0) {
            receive.clone()
        } else {
            chosen.iter().map(|&i| lines[i].rows as i128).collect()
        };
        for (&i, part) in chosen.iter().zip(allocate(*d, &weights)) {
            out[i].0[c] += part;
        }
    }
    out
}

/// Step 4: the billed output of the traced share, shared in proportion to traced output.
fn replace_output(lines: &[Line], x3: &[Qty], billed_output: i128) -> Vec<Qty> {
    let weights: Vec<i128> = x3.iter().map(|q| q.output()).collect();
    let weights = if weights.iter().any(|w| *w > 0) { weights } else { lines.iter().map(|l| l.rows as i128).collect() };
    let parts = allocate(billed_output, &weights);
    x3.iter().zip(parts).map(|(q, part)| q.with_output(part)).collect()
}

/// The value of traced quantities at the billed tiers and context rates: per class, tokens traced at a
/// tier are first priced at what that tier was billed, up to the tokens billed at it; the rest at the
/// average billed price of the tiers left over.
fn matched_value(lines: &[Line], xs: &[Qty], cells: &[BilledShare]) -> Usd {
    let mut billed: BTreeMap<String, (Qty, [Usd; 5])> = BTreeMap::new();
    for cell in cells {
        let entry = billed.entry(billed_tier_label(&cell.tier)).or_default();
        entry.0 += cell.qty;
        for c in 0..5 {
            entry.1[c] += cell.usd[c];
        }
    }
    let mut traced: BTreeMap<String, Qty> = BTreeMap::new();
    for (line, q) in lines.iter().zip(xs) {
        *traced.entry(traced_tier_label(line.key.tier)).or_default() += *q;
    }
    let mut total = Usd::ZERO;
    for c in 0..5 {
        total += matched_class(c, &traced, &billed);
    }
    total
}

fn matched_class(c: usize, traced: &BTreeMap<String, Qty>, billed: &BTreeMap<String, (Qty, [Usd; 5])>) -> Usd {
    let mut value = Usd::ZERO;
    let mut leftover_traced = 0i128;
    let (mut leftover_qty, mut leftover_usd) = (0i128, Usd::ZERO);
    for (tier, x) in traced {
        let matched = billed.get(tier).map_or(0, |(y, _)| x.0[c].min(y.0[c]).max(0));
        if let Some((y, usd)) = billed.get(tier) {
            value += share(usd[c], matched, y.0[c]);
        }
        leftover_traced += x.0[c] - matched;
    }
    for (tier, (y, usd)) in billed {
        let matched = traced.get(tier).map_or(0, |x| x.0[c].min(y.0[c]).max(0));
        leftover_qty += y.0[c] - matched;
        leftover_usd += share(usd[c], y.0[c] - matched, y.0[c]);
    }
    if leftover_traced == 0 {
        return value;
    }
    if leftover_qty > 0 {
        return value + share(leftover_usd, leftover_traced, leftover_qty);
    }
    let all_qty: i128 = billed.values().map(|(y, _)| y.0[c]).sum();
    let all_usd: Usd = billed.values().map(|(_, usd)| usd[c]).sum();
    value + share(all_usd, leftover_traced, all_qty)
}

pub fn traced_tier_label(tier: Option<Tier>) -> String {
    tier.map_or_else(|| "unpriced tier".to_string(), |t| t.to_string())
}

pub fn billed_tier_label(tier: &BilledTier) -> String {
    match &tier.unpriced_label {
        Some(label) => format!("{label} (unpriced)"),
        None => tier.tier.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::catalog::NO_PROJECT;
    use crate::reconcile::value::Counts;

    fn line(tier: Tier, estimated: bool, rows: u64) -> Line {
        let group = GroupKey { provider: Provider::OpenAi, day: 0, model: 0, project: NO_PROJECT };
        let key = AccKey { group, tier: Some(tier), naive: 0, estimated, long: false, streamed: false };
        Line { key, rows, reasoning: 0, naive: [UnitPrice(0); 5], qty: Qty::default() }
    }

    fn qty(counts: [u64; 5]) -> Qty {
        Qty::from_counts(&Counts(counts))
    }

    #[test]
    fn a_correctly_traced_split_does_not_move() {
        let lines = [line(Tier::Standard, false, 1), line(Tier::Batch, false, 1)];
        let xs = [qty([100, 900, 0, 0, 10]), qty([500, 0, 0, 0, 10])];
        let target = xs[0] + xs[1];
        assert_eq!(move_input(&lines, &xs, false, &target), xs.to_vec());
    }

    #[test]
    fn dropped_cache_reads_move_within_the_line_that_lost_them() {
        let lines = [line(Tier::Standard, false, 1), line(Tier::Batch, false, 1)];
        // The tracer counted 900 cached tokens of the first line as uncached.
        let xs = [qty([1000, 0, 0, 0, 10]), qty([500, 0, 0, 0, 10])];
        let target = qty([600, 900, 0, 0, 0]);
        let moved = move_input(&lines, &xs, false, &target);
        assert_eq!(moved[0].input() + moved[1].input(), target.input());
        assert_eq!(moved[0].0[1] + moved[1].0[1], target.0[1]);
        // Each line keeps its input total: what it gave back it receives again.
        assert_eq!(moved[0].input(), xs[0].input());
        assert_eq!(moved[1].input(), xs[1].input());
    }

    #[test]
    fn missing_input_grows_each_line_by_its_share() {
        let lines = [line(Tier::Standard, false, 1), line(Tier::Standard, false, 3)];
        // Anthropic input_tokens taken as the total: the cache tokens are missing altogether.
        let xs = [qty([100, 0, 0, 0, 0]), qty([300, 0, 0, 0, 0])];
        let target = qty([400, 3_600, 0, 0, 0]);
        let moved = move_input(&lines, &xs, false, &target);
        assert_eq!(moved[0].0[1] + moved[1].0[1], 3_600 * 1_000_000);
        assert_eq!(moved[1].input(), 3 * moved[0].input());
    }

    #[test]
    fn tiers_are_matched_before_the_rest_is_priced_at_the_tiers_left() {
        let usd = |d: i128| Usd(d * 1_000_000_000_000);
        let cells = [
            BilledShare {
                tier: BilledTier::priced(Tier::Standard),
                qty: qty([100, 0, 0, 0, 0]),
                usd: [usd(10), usd(0), usd(0), usd(0), usd(0)],
            },
            BilledShare {
                tier: BilledTier::priced(Tier::Batch),
                qty: qty([100, 0, 0, 0, 0]),
                usd: [usd(5), usd(0), usd(0), usd(0), usd(0)],
            },
        ];
        // Traced correctly: each tier at its own price.
        let lines = [line(Tier::Standard, false, 1), line(Tier::Batch, false, 1)];
        assert_eq!(matched_value(&lines, &[qty([100, 0, 0, 0, 0]), qty([100, 0, 0, 0, 0])], &cells), usd(15));
        // Everything traced as standard: 100 tokens at the standard price, the other 100 at batch.
        let all_standard = [line(Tier::Standard, false, 2)];
        assert_eq!(matched_value(&all_standard, &[qty([200, 0, 0, 0, 0])], &cells), usd(15));
    }
}
