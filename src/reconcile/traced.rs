//! The trace side of every cell, in one streaming pass over the request rows.
//!
//! Rows are not kept: each adds its tokens to an accumulator per cell × traced tier × traced model name ×
//! usage source (the naive valuation is linear in tokens, so it can be priced per accumulator afterwards).
//! What later steps need per row is small and kept compactly: a row's conversation, cell and
//! traced-equivalent value (for the per-conversation view), and, for rows without usage, the retry that
//! succeeded in their place (its tokens estimate what the failed attempt was billed).

use std::collections::{BTreeMap, HashMap, HashSet};

use super::billing::Billing;
use super::catalog::{Catalog, GroupKey, ModelIx, ProjectIx};
use super::value::{Counts, Prices, Qty, UnitPrice, value};
use super::window::{Window, day_of};
use crate::pricing::{Provider, Tier};
use crate::trace::model::{RequestRow, RequestStatus, UsageSource};
use rustc_hash::FxHashMap as FastMap;

/// An interned traced model name (what a tracing dashboard prices).
pub type NaiveIx = u32;
pub type ConvIx = u32;
pub const NO_CONVERSATION: ConvIx = ConvIx::MAX;

/// One accumulator: a cell's rows at one traced tier, under one traced model name, with one usage source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AccKey {
    pub group: GroupKey,
    /// `None` for a tier the book does not price (OpenAI `scale`).
    pub tier: Option<Tier>,
    pub naive: NaiveIx,
    /// The row's usage was counted client-side (`usage_source: estimated`).
    pub estimated: bool,
    /// The traced input is above the snapshot's long-context threshold.
    pub long: bool,
    /// The call was streamed: rows without usage are compared with traced calls of the same kind.
    pub streamed: bool,
}

impl AccKey {
    /// A stable order for accumulators of one cell, so that results do not depend on hashing.
    pub fn order(&self) -> (u8, NaiveIx, bool, bool, bool) {
        let tier = match self.tier {
            Some(Tier::Standard) => 0,
            Some(Tier::Batch) => 1,
            Some(Tier::Flex) => 2,
            Some(Tier::Priority) => 3,
            None => 4,
        };
        (tier, self.naive, self.estimated, self.long, self.streamed)
    }
}

#[derive(Debug, Clone, Copy, Default)]
pub struct Acc {
    pub tokens: Counts,
    /// Reasoning tokens, a part of the output.
    pub reasoning: u64,
    pub rows: u64,
}

/// Counts per cell that are not tokens.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracedGroup {
    pub rows_with_usage: u64,
    /// Rows with `attempt` 1: logical requests.
    pub first_attempts: u64,
    /// Rows without usage, by status (ok, error, timeout, aborted).
    pub usage_less: [u64; 4],
}

impl TracedGroup {
    pub fn absorb(&mut self, other: &TracedGroup) {
        self.rows_with_usage += other.rows_with_usage;
        self.first_attempts += other.first_attempts;
        for (a, b) in self.usage_less.iter_mut().zip(other.usage_less) {
            *a += b;
        }
    }
}

pub fn status_index(status: RequestStatus) -> usize {
    match status {
        RequestStatus::Ok => 0,
        RequestStatus::Error => 1,
        RequestStatus::Timeout => 2,
        RequestStatus::Aborted => 3,
    }
}

/// A row without usage: a failed attempt, an aborted or usage-less stream.
#[derive(Debug, Clone)]
pub struct UsageLess {
    pub group: GroupKey,
    pub status: RequestStatus,
    pub logical: Option<String>,
    pub conversation: ConvIx,
    /// What the call probably was, found after the pass: the retry that succeeded in its place (same
    /// logical request), else the conversation's calls just before and after it in the same cell.
    pub estimate: Option<Estimate>,
    /// The conversation's traced calls before and after this row, in the same cell.
    neighbours: (Option<Call>, Option<Call>),
    pub streamed: bool,
    /// Output tokens the stream delivered, from its checkpoints, for a stream that ran to its end without a
    /// usage block or was cancelled (what was generated is what was billed).
    pub streamed_output: Option<u64>,
}

/// Where an estimate of a call without usage comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateFrom {
    /// The retry that succeeded in its place: the same prompt.
    Retry,
    /// The calls of the same conversation around it: a chat turn is much like its neighbours.
    Conversation,
}

/// What a call without usage was probably billed for.
#[derive(Debug, Clone, Copy)]
pub struct Estimate {
    pub tokens: Counts,
    /// Reasoning tokens, a part of the output: hidden, so a stream's checkpoints do not count them.
    pub reasoning: u64,
    pub from: EstimateFrom,
    /// Its value at the cell's billed prices (pico-dollars).
    pub weight: i64,
    /// Its input is above the long-context threshold.
    pub long: bool,
}

/// A traced call's tokens and the reasoning tokens among its output.
pub type Call = (Counts, u64);

/// A call estimated from its neighbours in the conversation: their mean (either one alone when the
/// other is missing). Its size, not its cache split, is what neighbours tell (the first turn writes what
/// the next ones read); the waterfall splits it like the cell.
fn between((before, after): (Option<Call>, Option<Call>)) -> Option<Call> {
    match (before, after) {
        (Some(a), Some(b)) => Some((Counts(std::array::from_fn(|c| (a.0.0[c] + b.0.0[c]) / 2)), (a.1 + b.1) / 2)),
        (one, other) => one.or(other),
    }
}

/// What the per-conversation view needs of a row with usage.
#[derive(Debug, Clone, Copy)]
pub struct RowRecord {
    pub conversation: ConvIx,
    pub group: u32,
    /// The row's tokens at the cell's billed prices (pico-dollars): its weight when the cell's billed value
    /// is shared among its rows.
    pub weight: i64,
}

/// Per provider, whether the traced rows carry projects that the invoice's can be compared with.
#[derive(Debug, Clone, Default)]
pub struct ProjectFacts {
    pub rows: u64,
    pub without_project: u64,
    pub seen: HashSet<ProjectIx>,
}

/// Totals over the traced rows in the window, for the report.
#[derive(Debug, Clone, Default)]
pub struct TraceStats {
    pub rows_in_window: u64,
    pub outside_window: u64,
    /// Rows of providers the invoice does not cover, by provider name.
    pub other_providers: BTreeMap<String, u64>,
    pub with_usage: u64,
    pub estimated: u64,
    pub tokens: Counts,
    pub usage_less: u64,
}

#[derive(Debug, Default)]
pub struct Traces {
    pub accs: FastMap<AccKey, Acc>,
    pub groups: FastMap<GroupKey, TracedGroup>,
    pub usage_less: Vec<UsageLess>,
    pub rows: Vec<RowRecord>,
    pub group_keys: Vec<GroupKey>,
    group_ix: FastMap<GroupKey, u32>,
    /// Calls (first attempts) per conversation.
    pub conversation_turns: Vec<u32>,
    /// The provider of each conversation's first row: a conversation is one product feature, and features
    /// on different models have different curves.
    pub conversation_provider: Vec<Provider>,
    conversation_ix: FastMap<String, ConvIx>,
    pub naive_names: Vec<(Provider, String)>,
    /// Per provider (in `Provider::ALL` order), traced name → index.
    naive_ix: [FastMap<String, NaiveIx>; 4],
    pub projects: HashMap<Provider, ProjectFacts>,
    pub stats: TraceStats,
    /// Tokens of retries (attempt ≥ 2) with usage, by logical request.
    siblings: FastMap<String, Call>,
}

/// Adds rows one at a time.
pub struct Collector<'c, 'b> {
    pub traces: Traces,
    catalog: &'c mut Catalog<'b>,
    billing: &'c Billing,
    window: Window,
    empty: HashSet<u32>,
    thresholds: FastMap<(Provider, ModelIx), Option<u64>>,
    /// Per conversation, its last traced call with usage (cell and tokens)…
    last_call: FastMap<ConvIx, (GroupKey, Call)>,
    /// …and the rows without usage that wait for the next one.
    waiting: FastMap<ConvIx, Vec<usize>>,
}

impl<'c, 'b> Collector<'c, 'b> {
    pub fn new(catalog: &'c mut Catalog<'b>, billing: &'c Billing, window: Window) -> Self {
        Collector {
            traces: Traces::default(),
            catalog,
            billing,
            window,
            empty: HashSet::new(),
            thresholds: FastMap::default(),
            last_call: FastMap::default(),
            waiting: FastMap::default(),
        }
    }

    pub fn add(&mut self, row: RequestRow) {
        if !self.window.contains(row.ts) {
            self.traces.stats.outside_window += 1;
            return;
        }
        let Some(provider) = provider_of(&row.provider).filter(|p| self.billing.providers.contains_key(p)) else {
            *self.traces.stats.other_providers.entry(row.provider.clone()).or_default() += 1;
            return;
        };
        let day = day_of(row.ts);
        let name = row.response_model.as_deref().filter(|m| !m.is_empty()).unwrap_or(&row.request_model);
        let billed = self.billing.billed_models.get(&(provider, day)).unwrap_or(&self.empty);
        let model = self.catalog.traced_model(provider, name, day, billed);
        let naive = self.traces.naive(provider, name);
        let project = self.catalog.project(row.project.as_deref());
        let group = GroupKey { provider, day, model, project };
        self.note_project(provider, project);
        let conversation = self.traces.conversation(row.conversation_id, provider);
        let first_attempt = row.attempt <= 1;
        if first_attempt && conversation != NO_CONVERSATION {
            self.traces.conversation_turns[conversation as usize] += 1;
        }
        let stats = &mut self.traces.stats;
        stats.rows_in_window += 1;
        let traced = self.traces.groups.entry(group).or_default();
        traced.first_attempts += u64::from(first_attempt);
        let tokens = Counts::from_usage(&row.usage);
        if row.usage_source == UsageSource::Missing || tokens.is_zero() {
            traced.usage_less[status_index(row.status)] += 1;
            stats.usage_less += 1;
            if conversation != NO_CONVERSATION {
                self.waiting.entry(conversation).or_default().push(self.traces.usage_less.len());
            }
            let streamed_output = matches!(row.status, RequestStatus::Ok | RequestStatus::Aborted)
                .then(|| row.stream.iter().map(|c| c.tokens as u64).sum::<u64>())
                .filter(|_| !row.stream.is_empty());
            let logical = row.logical_request_id;
            self.traces.usage_less.push(UsageLess {
                group,
                status: row.status,
                logical,
                conversation,
                estimate: None,
                neighbours: (self.last_in_conversation(conversation, group), None),
                streamed: row.streamed,
                streamed_output,
            });
            return;
        }
        traced.rows_with_usage += 1;
        stats.with_usage += 1;
        stats.tokens += tokens;
        let estimated = row.usage_source == UsageSource::Estimated;
        stats.estimated += u64::from(estimated);
        let tier = traced_tier(row.service_tier.as_deref(), row.batch);
        let long = self.is_long(group, row.usage.input_total);
        let acc =
            self.traces.accs.entry(AccKey { group, tier, naive, estimated, long, streamed: row.streamed }).or_default();
        acc.tokens += tokens;
        acc.reasoning += row.usage.reasoning;
        acc.rows += 1;
        let call = (tokens, row.usage.reasoning);
        if !first_attempt && let Some(logical) = row.logical_request_id {
            self.traces.siblings.insert(logical, call);
        }
        self.note_in_conversation(conversation, group, call);
        let weight = self.weight(group, &tokens);
        let group = self.traces.group_index(group);
        self.traces.rows.push(RowRecord { conversation, group, weight });
    }

    /// Whether `input` tokens are above the snapshot's long-context threshold (per the book on that day).
    fn is_long(&mut self, group: GroupKey, input: u64) -> bool {
        let catalog = &self.catalog;
        let threshold = *self.thresholds.entry((group.provider, group.model)).or_insert_with(|| {
            catalog.row(group.model, group.day).and_then(|r| r.long_context.map(|lc| lc.above_input_tokens))
        });
        threshold.is_some_and(|t| input > t)
    }

    /// The row's tokens at its cell's billed prices (zero where the invoice bills nothing).
    fn weight(&self, group: GroupKey, tokens: &Counts) -> i64 {
        let Some(day_model) = self.billing.day_models.get(&group.day_model()) else { return 0 };
        let prices: Prices = day_model.effective.map(|p| p.unwrap_or(UnitPrice(0)));
        value(&Qty::from_counts(tokens), &prices).0 as i64
    }

    fn note_project(&mut self, provider: Provider, project: ProjectIx) {
        let facts = self.traces.projects.entry(provider).or_default();
        facts.rows += 1;
        if project == 0 {
            facts.without_project += 1;
        } else {
            facts.seen.insert(project);
        }
    }

    /// Ends the pass: matches each row without usage with the retry that succeeded in its place.
    pub fn finish(mut self) -> Traces {
        let siblings = std::mem::take(&mut self.traces.siblings);
        let mut usage_less = std::mem::take(&mut self.traces.usage_less);
        for row in &mut usage_less {
            let sibling = row.logical.as_ref().and_then(|l| siblings.get(l)).copied().map(|c| (c, EstimateFrom::Retry));
            let tokens = sibling.or_else(|| between(row.neighbours).map(|c| (c, EstimateFrom::Conversation)));
            row.estimate = tokens.map(|((tokens, reasoning), from)| Estimate {
                tokens,
                reasoning,
                from,
                weight: self.weight(row.group, &tokens),
                long: self.is_long(row.group, tokens.input()),
            });
        }
        self.traces.usage_less = usage_less;
        self.traces
    }

    fn last_in_conversation(&self, conversation: ConvIx, group: GroupKey) -> Option<Call> {
        self.last_call.get(&conversation).filter(|(g, _)| *g == group).map(|(_, c)| *c)
    }

    /// A traced call with usage: the next call for the conversation's rows that wait for one.
    fn note_in_conversation(&mut self, conversation: ConvIx, group: GroupKey, call: Call) {
        if conversation == NO_CONVERSATION {
            return;
        }
        if let Some(waiting) = self.waiting.remove(&conversation) {
            for i in waiting {
                let row = &mut self.traces.usage_less[i];
                if row.group == group {
                    row.neighbours.1 = Some(call);
                }
            }
        }
        self.last_call.insert(conversation, (group, call));
    }
}

impl Traces {
    fn naive(&mut self, provider: Provider, name: &str) -> NaiveIx {
        let slot = Provider::ALL.iter().position(|p| *p == provider).unwrap_or(0);
        if let Some(&ix) = self.naive_ix[slot].get(name) {
            return ix;
        }
        let ix = self.naive_names.len() as NaiveIx;
        self.naive_names.push((provider, name.to_string()));
        self.naive_ix[slot].insert(name.to_string(), ix);
        ix
    }

    fn conversation(&mut self, id: Option<String>, provider: Provider) -> ConvIx {
        let Some(id) = id.filter(|i| !i.is_empty()) else { return NO_CONVERSATION };
        if let Some(&ix) = self.conversation_ix.get(&id) {
            return ix;
        }
        let ix = self.conversation_turns.len() as ConvIx;
        self.conversation_turns.push(0);
        self.conversation_provider.push(provider);
        self.conversation_ix.insert(id, ix);
        ix
    }

    fn group_index(&mut self, key: GroupKey) -> u32 {
        if let Some(&ix) = self.group_ix.get(&key) {
            return ix;
        }
        let ix = self.group_keys.len() as u32;
        self.group_keys.push(key);
        self.group_ix.insert(key, ix);
        ix
    }

    pub fn conversations(&self) -> usize {
        self.conversation_turns.len()
    }
}

/// The tier a row was traced at; the common spellings first, without allocating.
fn traced_tier(service_tier: Option<&str>, batch: bool) -> Option<Tier> {
    match (service_tier, batch) {
        (_, true) => Some(Tier::Batch),
        (None | Some("default" | "auto" | "standard"), false) => Some(Tier::Standard),
        (Some("flex"), false) => Some(Tier::Flex),
        (Some("priority"), false) => Some(Tier::Priority),
        (other, false) => Tier::from_request(other, false),
    }
}

/// The biller named by a row's `provider`; the common spellings first, without allocating.
fn provider_of(name: &str) -> Option<Provider> {
    match name {
        "openai" => Some(Provider::OpenAi),
        "anthropic" => Some(Provider::Anthropic),
        other => Provider::parse(other),
    }
}
