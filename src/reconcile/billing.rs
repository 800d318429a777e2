//! The invoice side of every cell: billed tokens and requests from usage lines, billed dollars from cost
//! lines (or, where the invoice has none, from the price book's effective-dated prices).
//!
//! A cost line is usually coarser than a usage cell (OpenAI's Costs API knows line items and projects, not
//! tiers); its amount is shared over the usage cells it covers in proportion to their list-price value,
//! so that the invoice's own prices, not the book's, end up in every cell.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::catalog::{Catalog, GroupKey, ModelIx, NO_PROJECT, ProjectIx};
use super::invoice::{BilledTier, CostKind, Detail, Invoice, InvoiceLine, midpoint_second};
use super::value::{CLASSES, Counts, Qty, UnitPrice, allocate};
use super::window::{SECONDS_PER_DAY, day_date};
use crate::money::Usd;
use crate::pricing::Provider;
use rustc_hash::FxHashMap as FastMap;

/// Billed usage at one tier and context rate within a group.
#[derive(Debug, Clone)]
pub struct BilledCell {
    pub tier: BilledTier,
    pub long_context: bool,
    pub tokens: Counts,
    /// `None` when any line of the cell has no request count (Anthropic never has one).
    pub requests: Option<u64>,
    /// What the invoice charges for each class.
    pub usd: [Usd; 5],
    /// The same tokens at the book's price for the billed tier and context rate on that day; `None` where
    /// the book has no such price.
    pub book_usd: [Option<Usd>; 5],
    costed: [bool; 5],
    allocated: [Usd; 5],
}

impl BilledCell {
    fn new(tier: BilledTier, long_context: bool) -> BilledCell {
        BilledCell {
            tier,
            long_context,
            tokens: Counts::default(),
            requests: Some(0),
            usd: [Usd::ZERO; 5],
            book_usd: [None; 5],
            costed: [false; 5],
            allocated: [Usd::ZERO; 5],
        }
    }

    pub fn total(&self) -> Usd {
        self.usd.iter().copied().sum()
    }
}

/// One provider × day × snapshot × project on the invoice.
#[derive(Debug, Clone, Default)]
pub struct BilledGroup {
    pub cells: Vec<BilledCell>,
    pub web_search_requests: u64,
}

impl BilledGroup {
    pub fn usd(&self) -> Usd {
        self.cells.iter().map(BilledCell::total).sum()
    }

    pub fn tokens(&self) -> Counts {
        let mut t = Counts::default();
        for cell in &self.cells {
            t += cell.tokens;
        }
        t
    }

    /// Billed requests, when every cell reports them.
    pub fn requests(&self) -> Option<u64> {
        self.cells.iter().map(|c| c.requests).sum()
    }

    fn cell(&mut self, tier: &BilledTier, long_context: bool) -> &mut BilledCell {
        let i = match self.cells.iter().position(|c| c.tier == *tier && c.long_context == long_context) {
            Some(i) => i,
            None => {
                self.cells.push(BilledCell::new(tier.clone(), long_context));
                self.cells.len() - 1
            }
        };
        &mut self.cells[i]
    }

    /// Merges another group of the same provider, day and snapshot (when projects are not compared).
    pub fn absorb(&mut self, other: BilledGroup) {
        self.web_search_requests += other.web_search_requests;
        for cell in other.cells {
            let mine = self.cell(&cell.tier, cell.long_context);
            mine.tokens += cell.tokens;
            mine.requests = mine.requests.zip(cell.requests).map(|(a, b)| a + b);
            for c in 0..5 {
                mine.usd[c] += cell.usd[c];
                mine.book_usd[c] = match (mine.book_usd[c], cell.book_usd[c]) {
                    (Some(a), Some(b)) => Some(a + b),
                    _ if cell.tokens.0[c] == 0 => mine.book_usd[c],
                    _ => None,
                };
            }
        }
    }
}

/// A line with no tokens behind it: a tool fee, a credit, a tax, or a token charge the usage data does not
/// show.
#[derive(Debug, Clone)]
pub struct MoneyLine {
    pub provider: Provider,
    pub day: i32,
    pub usd: Usd,
    pub description: String,
    pub model: Option<String>,
}

/// Facts about one provider's part of the invoice.
#[derive(Debug, Clone, Default)]
pub struct ProviderFacts {
    /// The invoice has cost lines for this provider's tokens.
    pub has_costs: bool,
    /// Every usage line carries a request count.
    pub requests_reported: bool,
    pub usage_lines: usize,
    pub usage_without_project: usize,
    pub projects: HashSet<ProjectIx>,
    pub usd: Usd,
}

/// Prices on one day for one snapshot, over all its billed cells.
#[derive(Debug, Clone, Default)]
pub struct DayModel {
    /// What the invoice charged per token of each class, on average over tiers and context rates.
    pub effective: [Option<UnitPrice>; 5],
    /// (charged, book value) of the tokens the book prices: their ratio is the invoice's price level
    /// against the book's list price.
    pub level: [Option<(Usd, Usd)>; 5],
}

#[derive(Debug, Clone, Default)]
pub struct Billing {
    pub groups: BTreeMap<GroupKey, BilledGroup>,
    pub fees: Vec<MoneyLine>,
    pub others: Vec<MoneyLine>,
    /// Token charges with no usage line to match: billed tokens the usage data does not show.
    pub unmatched: Vec<MoneyLine>,
    pub providers: BTreeMap<Provider, ProviderFacts>,
    /// Snapshots billed on each day, for mapping traced aliases.
    pub billed_models: FastMap<(Provider, i32), HashSet<ModelIx>>,
    pub day_models: FastMap<(Provider, i32, ModelIx), DayModel>,
    pub notes: Vec<String>,
}

impl Billing {
    pub fn usd(&self) -> Usd {
        let cells: Usd = self.groups.values().map(BilledGroup::usd).sum();
        let lines: Usd = self.fees.iter().chain(&self.others).chain(&self.unmatched).map(|l| l.usd).sum();
        cells + lines
    }

    pub fn providers(&self) -> impl Iterator<Item = Provider> + '_ {
        self.providers.keys().copied()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BillingError {
    #[error("{file}:{line}: a usage line without `model`; reconcile needs usage grouped by model")]
    NoModel { file: String, line: usize },
    #[error(
        "{provider} bills {model} ({tokens} tokens on {days}), which the price book does not price, and the invoice has no cost lines for it"
    )]
    Unpriced { provider: Provider, model: String, tokens: u64, days: String },
}

impl BillingError {
    pub fn hint(&self) -> String {
        match self {
            BillingError::NoModel { .. } => {
                "export usage with group_by=model (OpenAI) or group_by[]=model (Anthropic)".into()
            }
            BillingError::Unpriced { provider, model, .. } => format!(
                "pass the cost report too (its amounts price the model), or add `{provider}:{model}` to the price overrides file (docs/pricing.md); it is never counted as $0"
            ),
        }
    }
}

/// The UTC day a bucket belongs to (its midpoint's), and every day a longer bucket touches.
pub fn line_days(line: &InvoiceLine) -> (i32, Vec<i32>) {
    let mid = midpoint_second(line).div_euclid(SECONDS_PER_DAY) as i32;
    let length = line.end.as_second() - line.start.as_second();
    if length <= SECONDS_PER_DAY {
        return (mid, vec![mid]);
    }
    let first = line.start.as_second().div_euclid(SECONDS_PER_DAY) as i32;
    let last = (line.end.as_second() - 1).div_euclid(SECONDS_PER_DAY) as i32;
    (mid, (first..=last).collect())
}

pub fn build(invoice: &Invoice, catalog: &mut Catalog) -> Result<Billing, BillingError> {
    let mut billing = Billing::default();
    add_usage(&mut billing, invoice, catalog)?;
    price_at_book(&mut billing, catalog);
    add_costs(&mut billing, invoice, catalog);
    settle_cells(&mut billing, catalog)?;
    billing.day_models = day_models(&billing);
    for (provider, facts) in billing.providers.iter_mut() {
        facts.usd = billing
            .groups
            .iter()
            .filter(|(k, _)| k.provider == *provider)
            .map(|(_, g)| g.usd())
            .chain(
                billing
                    .fees
                    .iter()
                    .chain(&billing.others)
                    .chain(&billing.unmatched)
                    .filter(|l| l.provider == *provider)
                    .map(|l| l.usd),
            )
            .sum();
    }
    Ok(billing)
}

fn add_usage(billing: &mut Billing, invoice: &Invoice, catalog: &mut Catalog) -> Result<(), BillingError> {
    let mut long_buckets = 0;
    for line in &invoice.lines {
        let Detail::Usage(usage) = &line.detail else { continue };
        let Some(model) = line.model.as_deref() else {
            return Err(BillingError::NoModel {
                file: invoice.files[line.origin.file].clone(),
                line: line.origin.line,
            });
        };
        let (day, days) = line_days(line);
        long_buckets += usize::from(days.len() > 1);
        let model = catalog.invoice_model(line.provider, model, day);
        let project = catalog.project(line.project.as_deref());
        let facts = billing
            .providers
            .entry(line.provider)
            .or_insert_with(|| ProviderFacts { requests_reported: true, ..Default::default() });
        facts.usage_lines += 1;
        facts.requests_reported &= usage.requests.is_some();
        if project == NO_PROJECT {
            facts.usage_without_project += 1;
        } else {
            facts.projects.insert(project);
        }
        billing.billed_models.entry((line.provider, day)).or_default().insert(model);
        let group = billing.groups.entry(GroupKey { provider: line.provider, day, model, project }).or_default();
        group.web_search_requests += usage.web_search_requests;
        let cell = group.cell(&usage.tier, usage.long_context.unwrap_or(false));
        cell.tokens += usage.tokens;
        cell.requests = cell.requests.zip(usage.requests).map(|(a, b)| a + b);
    }
    if long_buckets > 0 {
        billing.notes.push(format!(
            "{long_buckets} usage line{} cover more than one day; each is matched to the day of its midpoint, so daily cells are approximate",
            if long_buckets == 1 { "" } else { "s" }
        ));
    }
    Ok(())
}

/// The book's value of every cell's tokens at the billed tier and context rate, on the cell's day.
fn price_at_book(billing: &mut Billing, catalog: &Catalog) {
    for (key, group) in billing.groups.iter_mut() {
        let row = catalog.row(key.model, key.day);
        for cell in &mut group.cells {
            for (c, class) in CLASSES.iter().enumerate() {
                let tokens = cell.tokens.0[c];
                cell.book_usd[c] = match row {
                    _ if tokens == 0 => Some(Usd::ZERO),
                    Some(row) => row.price_for(*class, cell.tier.tier, cell.long_context).map(|(p, _)| p.cost(tokens)),
                    None => None,
                };
            }
        }
    }
}

fn add_costs(billing: &mut Billing, invoice: &Invoice, catalog: &mut Catalog) {
    let mut by_day: HashMap<(Provider, i32), Vec<GroupKey>> = HashMap::new();
    for key in billing.groups.keys() {
        by_day.entry((key.provider, key.day)).or_default().push(*key);
    }
    for line in &invoice.lines {
        let Detail::Cost(cost) = &line.detail else { continue };
        let (day, days) = line_days(line);
        let money = MoneyLine {
            provider: line.provider,
            day,
            usd: cost.usd,
            description: cost.description.clone(),
            model: line.model.clone(),
        };
        match &cost.kind {
            CostKind::ToolFee(_) => billing.fees.push(money),
            CostKind::Other => billing.others.push(money),
            CostKind::Tokens(class) => {
                billing.providers.entry(line.provider).or_default().has_costs = true;
                let model = line.model.as_deref().map(|m| catalog.invoice_model(line.provider, m, day));
                let project = catalog.project(line.project.as_deref());
                let target = CostTarget {
                    model,
                    project,
                    tier: cost.tier.clone(),
                    long_context: cost.long_context,
                    class: *class,
                };
                let keys: Vec<GroupKey> =
                    days.iter().flat_map(|d| by_day.get(&(line.provider, *d)).cloned().unwrap_or_default()).collect();
                if !share_cost(billing, &keys, &target, cost.usd) && cost.usd != Usd::ZERO {
                    billing.unmatched.push(money);
                }
            }
        }
    }
}

/// Which usage a token cost line pays for; `None` matches anything.
struct CostTarget {
    model: Option<ModelIx>,
    project: ProjectIx,
    tier: Option<BilledTier>,
    long_context: Option<bool>,
    class: Option<usize>,
}

/// Shares `usd` over the matching (cell, class) pairs in proportion to their book value (or their tokens
/// when the book cannot value them all). False when nothing matches.
fn share_cost(billing: &mut Billing, keys: &[GroupKey], target: &CostTarget, usd: Usd) -> bool {
    let mut slots: Vec<(GroupKey, usize, usize)> = Vec::new();
    for key in keys {
        if target.model.is_some_and(|m| m != key.model) {
            continue;
        }
        if target.project != NO_PROJECT && key.project != NO_PROJECT && target.project != key.project {
            continue;
        }
        for (i, cell) in billing.groups[key].cells.iter().enumerate() {
            if target.tier.as_ref().is_some_and(|t| *t != cell.tier)
                || target.long_context.is_some_and(|lc| lc != cell.long_context)
            {
                continue;
            }
            for c in 0..5 {
                if target.class.is_none_or(|tc| tc == c) && cell.tokens.0[c] > 0 {
                    slots.push((*key, i, c));
                }
            }
        }
    }
    if slots.is_empty() {
        return false;
    }
    let cell = |(k, i, _): &(GroupKey, usize, usize)| &billing.groups[k].cells[*i];
    let by_book = slots.iter().all(|s| cell(s).book_usd[s.2].is_some_and(|b| b.0 > 0));
    let weights: Vec<i128> = slots
        .iter()
        .map(|s| if by_book { cell(s).book_usd[s.2].map_or(0, |b| b.0) } else { cell(s).tokens.0[s.2] as i128 })
        .collect();
    for (slot, part) in slots.iter().zip(allocate(usd.0, &weights)) {
        let c = billing.groups.get_mut(&slot.0).map(|g| &mut g.cells[slot.1]).expect("slot from this map");
        c.allocated[slot.2] += Usd(part);
        c.costed[slot.2] = true;
    }
    true
}

/// Each cell's charge per class: what the cost lines allocated, else the book's value. A class the book
/// cannot price and no cost line pays for is an error, never $0.
fn settle_cells(billing: &mut Billing, catalog: &Catalog) -> Result<(), BillingError> {
    let mut unpriced: BTreeMap<(Provider, ModelIx), (u64, i32, i32)> = BTreeMap::new();
    let mut book_valued = 0usize;
    for (key, group) in billing.groups.iter_mut() {
        let has_costs = billing.providers.get(&key.provider).is_some_and(|f| f.has_costs);
        for cell in &mut group.cells {
            for c in 0..5 {
                if cell.tokens.0[c] == 0 {
                    continue;
                }
                if cell.costed[c] {
                    cell.usd[c] = cell.allocated[c];
                } else if let Some(book) = cell.book_usd[c] {
                    cell.usd[c] = book;
                    book_valued += usize::from(has_costs);
                } else {
                    let e = unpriced.entry((key.provider, key.model)).or_insert((0, key.day, key.day));
                    e.0 += cell.tokens.0[c];
                    e.1 = e.1.min(key.day);
                    e.2 = e.2.max(key.day);
                }
            }
        }
    }
    if let Some((&(provider, model), &(tokens, first, last))) = unpriced.iter().next() {
        let days = if first == last {
            day_date(first).to_string()
        } else {
            format!("{} – {}", day_date(first), day_date(last))
        };
        return Err(BillingError::Unpriced { provider, model: catalog.model_name(model).to_string(), tokens, days });
    }
    if book_valued > 0 {
        billing.notes.push(format!(
            "{book_valued} billed token classes had usage but no cost line; they are valued at the price book's price for their day"
        ));
    }
    Ok(())
}

/// Per class: charged, micro-tokens, (charged, book value) where the book prices it, and whether it does.
type DayModelSums = ([Usd; 5], [i128; 5], [(Usd, Usd); 5], [bool; 5]);

fn day_models(billing: &Billing) -> FastMap<(Provider, i32, ModelIx), DayModel> {
    let mut sums: HashMap<(Provider, i32, ModelIx), DayModelSums> = HashMap::new();
    for (key, group) in &billing.groups {
        let entry =
            sums.entry(key.day_model()).or_insert(([Usd::ZERO; 5], [0; 5], [(Usd::ZERO, Usd::ZERO); 5], [false; 5]));
        for cell in &group.cells {
            let qty = Qty::from_counts(&cell.tokens);
            for c in 0..5 {
                entry.0[c] += cell.usd[c];
                entry.1[c] += qty.0[c];
                if let Some(book) = cell.book_usd[c].filter(|b| b.0 > 0) {
                    entry.2[c].0 += cell.usd[c];
                    entry.2[c].1 += book;
                    entry.3[c] = true;
                }
            }
        }
    }
    sums.into_iter()
        .map(|(k, (usd, qty, level, has_level))| {
            let effective = std::array::from_fn(|c| UnitPrice::implied(usd[c], qty[c]));
            let level = std::array::from_fn(|c| has_level[c].then_some(level[c]));
            (k, DayModel { effective, level })
        })
        .collect()
}
