//! The streaming tail taxonomy: what goes wrong *between* a streamed request's start and end, which the
//! span's duration cannot show.
//!
//! From each request's checkpoints (time and tokens of each chunk, and the chunk text when kept):
//!
//! | kind | when |
//! |---|---|
//! | `ttft_regression` | TTFT above `ttft_factor` × the model's trailing p95, or above `ttft_absolute_ms` |
//! | `stall` | a gap between two chunks above `stall_ms` |
//! | `loop` | a repeated n-gram run of at least `loop_min_words` words, or `loop_repeated_chunks` identical chunks |
//! | `truncated` | the stream ended with neither a finish reason nor usage, or broke with an error after tokens |
//! | `aborted` | the client cancelled |
//! | `slow_tail` | tokens/s over the last quarter of the tokens below `slow_tail_ratio` × the first quarter's |
//!
//! The defaults and their reasons are in docs/traces.md.

pub mod baseline;
mod loops;

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use crate::stats::percentile::Percentiles;
use crate::trace::model::{RequestStatus, UsageSource};
use crate::trace::records::{Call, CallIds, CallParts, Calls, Checkpoints, FastMap, Sym};
use crate::trace::stats::prompt_key;
pub use loops::{LoopDetector, LoopFinding, repeated_chunks};

/// The kinds of tail event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TailKind {
    TtftRegression,
    Stall,
    Loop,
    Truncated,
    Aborted,
    SlowTail,
}

impl TailKind {
    pub const ALL: [TailKind; 6] = [
        TailKind::TtftRegression,
        TailKind::Stall,
        TailKind::Loop,
        TailKind::Truncated,
        TailKind::Aborted,
        TailKind::SlowTail,
    ];

    pub fn name(self) -> &'static str {
        match self {
            TailKind::TtftRegression => "ttft_regression",
            TailKind::Stall => "stall",
            TailKind::Loop => "loop",
            TailKind::Truncated => "truncated",
            TailKind::Aborted => "aborted",
            TailKind::SlowTail => "slow_tail",
        }
    }
}

/// Where the taxonomy draws its lines.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Thresholds {
    /// A gap between chunks longer than this is a stall.
    pub stall_ms: u64,
    /// TTFT above this multiple of the model's trailing p95 is a regression.
    pub ttft_factor: f64,
    /// TTFT above this is a regression whatever the baseline.
    pub ttft_absolute_ms: u64,
    /// The trailing window of the TTFT baseline.
    pub baseline_window_ms: i64,
    /// Fewer TTFTs than this in the window: no baseline (only the absolute threshold applies).
    pub baseline_min_samples: usize,
    /// Words per n-gram for loop detection.
    pub loop_ngram: usize,
    /// A repeated run must cover at least this many words to be a loop.
    pub loop_min_words: usize,
    /// This many identical chunks in a row is a loop.
    pub loop_repeated_chunks: usize,
    /// The last quarter's tokens/s below this fraction of the first quarter's is a slow tail.
    pub slow_tail_ratio: f64,
    /// Streams with fewer chunks are too short to compare quarters.
    pub slow_tail_min_chunks: usize,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            stall_ms: 2_000,
            ttft_factor: 2.0,
            ttft_absolute_ms: 10_000,
            baseline_window_ms: 24 * 3_600_000,
            baseline_min_samples: 30,
            loop_ngram: 5,
            loop_min_words: 40,
            loop_repeated_chunks: 12,
            slow_tail_ratio: 0.25,
            slow_tail_min_chunks: 16,
        }
    }
}

/// One tail event of one request, with what a person needs to judge it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TailEvent {
    TtftRegression {
        ttft_ms: u32,
        /// The model's trailing p95 TTFT, when enough requests were in the window.
        baseline_p95_ms: Option<f64>,
        threshold_ms: f64,
    },
    Stall {
        /// The longest gap.
        gap_ms: u64,
        /// When the gap began, ms after the request started.
        at_ms: u64,
        /// The chunk after the gap (0-based).
        chunk: usize,
        /// Share of the streamed tokens received before the gap.
        position: f64,
        /// Gaps above the threshold in this stream.
        stalls: usize,
    },
    Loop {
        repeated_words: Option<usize>,
        period_words: Option<usize>,
        repeated_chunks: Option<usize>,
        sample: String,
    },
    Truncated {
        chunks: usize,
        tokens_streamed: u64,
        cause: &'static str,
    },
    Aborted {
        chunks: usize,
        tokens_streamed: u64,
    },
    SlowTail {
        first_quarter_tps: f64,
        last_quarter_tps: f64,
        ratio: f64,
    },
}

impl TailEvent {
    pub fn kind(&self) -> TailKind {
        match self {
            TailEvent::TtftRegression { .. } => TailKind::TtftRegression,
            TailEvent::Stall { .. } => TailKind::Stall,
            TailEvent::Loop { .. } => TailKind::Loop,
            TailEvent::Truncated { .. } => TailKind::Truncated,
            TailEvent::Aborted { .. } => TailKind::Aborted,
            TailEvent::SlowTail { .. } => TailKind::SlowTail,
        }
    }

    /// How bad it is, for ranking examples of one kind (larger is worse).
    fn severity(&self) -> f64 {
        match self {
            TailEvent::TtftRegression { ttft_ms, threshold_ms, .. } => *ttft_ms as f64 / threshold_ms.max(1.0),
            TailEvent::Stall { gap_ms, .. } => *gap_ms as f64,
            TailEvent::Loop { repeated_words, repeated_chunks, .. } => {
                repeated_words.unwrap_or(0).max(repeated_chunks.unwrap_or(0)) as f64
            }
            TailEvent::Truncated { tokens_streamed, .. } | TailEvent::Aborted { tokens_streamed, .. } => {
                *tokens_streamed as f64
            }
            TailEvent::SlowTail { ratio, .. } => 1.0 / ratio.max(1e-9),
        }
    }

    /// One line for a table.
    pub fn summary(&self) -> String {
        match self {
            TailEvent::TtftRegression { ttft_ms, baseline_p95_ms, threshold_ms } => match baseline_p95_ms {
                Some(p95) => format!("TTFT {ttft_ms} ms vs p95 {p95:.0} ms (threshold {threshold_ms:.0} ms)"),
                None => format!("TTFT {ttft_ms} ms above the absolute threshold {threshold_ms:.0} ms"),
            },
            TailEvent::Stall { gap_ms, at_ms, position, stalls, .. } => format!(
                "{gap_ms} ms gap at {at_ms} ms, {:.0}% into the stream{}",
                position * 100.0,
                if *stalls > 1 { format!(" ({stalls} stalls)") } else { String::new() }
            ),
            TailEvent::Loop { repeated_words, period_words, repeated_chunks, sample } => {
                match (repeated_words, repeated_chunks) {
                    (Some(w), _) => format!("{w} repeated words, period {}: \"{sample}\"", period_words.unwrap_or(0)),
                    (None, Some(c)) => format!("{c} identical chunks: \"{sample}\""),
                    _ => "loop".to_string(),
                }
            }
            TailEvent::Truncated { chunks, tokens_streamed, cause } => {
                format!("{cause} after {chunks} chunks ({tokens_streamed} tokens)")
            }
            TailEvent::Aborted { chunks, tokens_streamed } => {
                format!("cancelled by the client after {chunks} chunks ({tokens_streamed} tokens)")
            }
            TailEvent::SlowTail { first_quarter_tps, last_quarter_tps, ratio } => format!(
                "{last_quarter_tps:.1} tok/s in the last quarter vs {first_quarter_tps:.1} in the first ({:.0}%)",
                ratio * 100.0
            ),
        }
    }
}

/// What one request's detection reads besides its checkpoints.
#[derive(Debug, Clone, Copy)]
pub struct StreamFacts {
    pub status: RequestStatus,
    pub has_finish_reason: bool,
    pub usage_reported: bool,
    pub ttft_ms: Option<u32>,
    /// The model's trailing p95 TTFT at this request.
    pub baseline_p95_ms: Option<f64>,
    /// False when the model's streams never carry a finish reason or usage, so their absence means
    /// nothing.
    pub judge_truncation: bool,
}

/// Finds the tail events of one streamed request. `checkpoints` is `None` when none were recorded.
pub fn detect(
    facts: &StreamFacts,
    checkpoints: Option<&Checkpoints<'_>>,
    t: &Thresholds,
    loops: &mut LoopDetector,
    out: &mut Vec<TailEvent>,
) {
    let chunks = checkpoints.map_or(&[][..], |c| c.chunks);
    let tokens_streamed: u64 = chunks.iter().map(|c| c.tokens as u64).sum();
    if let Some(event) = ttft_regression(facts, t) {
        out.push(event);
    }
    if let Some(cp) = checkpoints {
        out.extend(stall(cp, t, tokens_streamed));
        out.extend(content_loop(cp, t, loops));
        out.extend(slow_tail(cp, t));
    }
    let cancelled = facts.status == RequestStatus::Aborted;
    if cancelled {
        out.push(TailEvent::Aborted { chunks: chunks.len(), tokens_streamed });
    } else if matches!(facts.status, RequestStatus::Error | RequestStatus::Timeout) && !chunks.is_empty() {
        let cause = if facts.status == RequestStatus::Timeout { "timed out mid-stream" } else { "failed mid-stream" };
        out.push(TailEvent::Truncated { chunks: chunks.len(), tokens_streamed, cause });
    } else if facts.status == RequestStatus::Ok
        && facts.judge_truncation
        && !facts.has_finish_reason
        && !facts.usage_reported
    {
        out.push(TailEvent::Truncated {
            chunks: chunks.len(),
            tokens_streamed,
            cause: "ended without finish reason or usage",
        });
    }
}

fn ttft_regression(facts: &StreamFacts, t: &Thresholds) -> Option<TailEvent> {
    let ttft = facts.ttft_ms?;
    let relative = facts.baseline_p95_ms.map(|p95| p95 * t.ttft_factor);
    let threshold = match relative {
        Some(r) => r.min(t.ttft_absolute_ms as f64),
        None => t.ttft_absolute_ms as f64,
    };
    (ttft as f64 > threshold).then_some(TailEvent::TtftRegression {
        ttft_ms: ttft,
        baseline_p95_ms: facts.baseline_p95_ms,
        threshold_ms: threshold,
    })
}

fn stall(cp: &Checkpoints<'_>, t: &Thresholds, total_tokens: u64) -> Option<TailEvent> {
    let mut worst: Option<(u64, usize)> = None;
    let mut stalls = 0;
    for i in 1..cp.chunks.len() {
        let gap = cp.chunks[i].t_ms.saturating_sub(cp.chunks[i - 1].t_ms);
        if gap > t.stall_ms {
            stalls += 1;
            if worst.is_none_or(|(g, _)| gap > g) {
                worst = Some((gap, i));
            }
        }
    }
    let (gap_ms, chunk) = worst?;
    let before: u64 = cp.chunks[..chunk].iter().map(|c| c.tokens as u64).sum();
    Some(TailEvent::Stall {
        gap_ms,
        at_ms: cp.chunks[chunk - 1].t_ms,
        chunk,
        position: if total_tokens == 0 { 0.0 } else { before as f64 / total_tokens as f64 },
        stalls,
    })
}

fn content_loop(cp: &Checkpoints<'_>, t: &Thresholds, loops: &mut LoopDetector) -> Option<TailEvent> {
    if !cp.has_text() {
        return None;
    }
    let texts = cp.chunks.iter().map(|c| cp.chunk_text(c));
    if let Some(LoopFinding::Chunks { count, text }) = repeated_chunks(texts, t.loop_repeated_chunks) {
        return Some(TailEvent::Loop {
            repeated_words: None,
            period_words: None,
            repeated_chunks: Some(count),
            sample: text,
        });
    }
    // Chunk texts are contiguous in the buffer, in order: the buffer is the streamed text.
    match loops.ngram_loop(cp.text, t.loop_ngram, t.loop_min_words)? {
        LoopFinding::Ngrams { words, period, sample } => Some(TailEvent::Loop {
            repeated_words: Some(words),
            period_words: Some(period),
            repeated_chunks: None,
            sample,
        }),
        LoopFinding::Chunks { .. } => None,
    }
}

/// Compares the token rate of the first and last quarter of the streamed tokens, measured over the gaps
/// between chunks. Gaps long enough to be stalls are left out: a stall is reported as such, and a slow
/// tail means a sustained slowdown, not one pause.
fn slow_tail(cp: &Checkpoints<'_>, t: &Thresholds) -> Option<TailEvent> {
    let chunks = cp.chunks;
    if chunks.len() < t.slow_tail_min_chunks {
        return None;
    }
    let total: u64 = chunks[1..].iter().map(|c| c.tokens as u64).sum();
    if total < 8 {
        return None;
    }
    let (mut first_tokens, mut first_ms, mut last_tokens, mut last_ms) = (0u64, 0u64, 0u64, 0u64);
    let mut cumulative = 0u64;
    for i in 1..chunks.len() {
        let gap = chunks[i].t_ms.saturating_sub(chunks[i - 1].t_ms);
        let tokens = chunks[i].tokens as u64;
        let before = cumulative;
        cumulative += tokens;
        if gap > t.stall_ms {
            continue;
        }
        if cumulative * 4 <= total {
            first_tokens += tokens;
            first_ms += gap;
        } else if before * 4 >= total * 3 {
            last_tokens += tokens;
            last_ms += gap;
        }
    }
    if first_tokens == 0 || last_tokens == 0 || first_ms == 0 || last_ms == 0 {
        return None;
    }
    let first = first_tokens as f64 * 1000.0 / first_ms as f64;
    let last = last_tokens as f64 * 1000.0 / last_ms as f64;
    let ratio = last / first;
    (ratio < t.slow_tail_ratio).then_some(TailEvent::SlowTail {
        first_quarter_tps: first,
        last_quarter_tps: last,
        ratio,
    })
}

/// Counts per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct KindCounts {
    pub ttft_regression: u64,
    pub stall: u64,
    pub r#loop: u64,
    pub truncated: u64,
    pub aborted: u64,
    pub slow_tail: u64,
}

impl KindCounts {
    fn add(&mut self, kind: TailKind) {
        *self.slot(kind) += 1;
    }

    fn slot(&mut self, kind: TailKind) -> &mut u64 {
        match kind {
            TailKind::TtftRegression => &mut self.ttft_regression,
            TailKind::Stall => &mut self.stall,
            TailKind::Loop => &mut self.r#loop,
            TailKind::Truncated => &mut self.truncated,
            TailKind::Aborted => &mut self.aborted,
            TailKind::SlowTail => &mut self.slow_tail,
        }
    }

    pub fn get(&self, kind: TailKind) -> u64 {
        let mut copy = *self;
        *copy.slot(kind)
    }

    fn rates(&self, streams: u64) -> KindRates {
        let rate = |n: u64| if streams == 0 { 0.0 } else { n as f64 / streams as f64 };
        KindRates {
            ttft_regression: rate(self.ttft_regression),
            stall: rate(self.stall),
            r#loop: rate(self.r#loop),
            truncated: rate(self.truncated),
            aborted: rate(self.aborted),
            slow_tail: rate(self.slow_tail),
        }
    }
}

/// Shares of streams per kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct KindRates {
    pub ttft_regression: f64,
    pub stall: f64,
    pub r#loop: f64,
    pub truncated: f64,
    pub aborted: f64,
    pub slow_tail: f64,
}

/// Tails of one model or prompt version.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupTails {
    pub key: String,
    pub streams: u64,
    /// Streams with at least one tail event.
    pub with_tails: u64,
    pub counts: KindCounts,
    pub rates: KindRates,
}

/// A request worth looking at.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Example {
    #[serde(skip)]
    pub call_id: i64,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Set for eval attempts (`<run_id>/<case_id>/<sample>`), which have no trace ids.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logical_request_id: Option<String>,
    pub model: String,
    pub prompt: Option<String>,
    /// RFC 3339, UTC.
    pub ts: String,
    pub latency_ms: Option<u32>,
    /// The model's p95 latency over the streams analysed: what a duration dashboard would compare against.
    pub model_latency_p95_ms: Option<f64>,
    pub ttft_ms: Option<u32>,
    pub event: TailEvent,
}

/// Tail events a duration dashboard would not show: the request's duration was at or below its model's
/// p95 duration.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct HiddenByDuration {
    pub requests: u64,
    pub stall: u64,
    pub ttft_regression: u64,
    pub examples: Vec<Example>,
}

/// The tails of a set of streamed requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TailReport {
    pub thresholds: Thresholds,
    /// Streamed requests analysed.
    pub streams: u64,
    pub without_checkpoints: u64,
    /// Streams whose checkpoints carry no text: loops cannot be seen in them.
    pub without_text: u64,
    pub with_tails: u64,
    pub counts: KindCounts,
    pub rates: KindRates,
    pub by_model: Vec<GroupTails>,
    pub by_prompt: Vec<GroupTails>,
    pub hidden_by_duration: HiddenByDuration,
    /// The worst requests of each kind.
    pub examples: Vec<Example>,
    /// Models whose streams never carry a finish reason or usage: truncation is not judged for them.
    pub truncation_not_judged: Vec<String>,
    /// Every request with tail events, by call id (for tests and for callers that want them all).
    #[serde(skip)]
    pub flagged: Vec<(i64, Vec<TailEvent>)>,
}

impl TailReport {
    /// The call ids of every example, to look up their trace ids.
    pub fn example_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> =
            self.examples.iter().chain(&self.hidden_by_duration.examples).map(|e| e.call_id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn set_ids(&mut self, ids: &HashMap<i64, CallIds>) {
        for e in self.examples.iter_mut().chain(self.hidden_by_duration.examples.iter_mut()) {
            if let Some(found) = ids.get(&e.call_id) {
                e.trace_id.clone_from(&found.trace_id);
                e.span_id.clone_from(&found.span_id);
                e.logical_request_id.clone_from(&found.logical_request_id);
            }
        }
    }
}

/// What [`analyze`] reads of each call: not its conversation or tenant.
pub const CALL_PARTS: CallParts = CallParts { conversation: false, tenant: false, prompt: true, timing: true };

/// Runs the taxonomy over the streamed requests among `calls`. `streams` calls its visitor with each
/// request's checkpoints, for the (ascending) ids it is given, possibly from several threads —
/// `Store::for_each_stream` does.
pub fn analyze<E>(
    calls: &Calls,
    t: &Thresholds,
    examples_per_kind: usize,
    streams: impl FnOnce(&[i64], &(dyn Fn(i64, Checkpoints<'_>) + Sync)) -> Result<(), E>,
) -> Result<TailReport, E> {
    let streamed: Vec<&Call> = {
        let mut v: Vec<&Call> = calls.calls.iter().filter(|c| c.streamed).collect();
        v.sort_by_key(|c| c.id);
        v
    };
    let baselines = baselines(&streamed, t);
    let judged = truncation_judged(&streamed);
    let ids: Vec<i64> = streamed.iter().map(|c| c.id).collect();
    let facts = |i: usize| StreamFacts {
        status: streamed[i].status,
        has_finish_reason: streamed[i].finish_reason.is_some(),
        usage_reported: streamed[i].usage_source == UsageSource::Provider,
        ttft_ms: streamed[i].ttft_ms,
        baseline_p95_ms: baselines[i],
        judge_truncation: judged.contains(&model_of(streamed[i])),
    };
    // Each stream's findings: (index, had text, events). Collected under a lock because the visitor may
    // run on several threads; one short lock per stream costs nothing next to reading its checkpoints.
    let found: std::sync::Mutex<Vec<(usize, bool, Vec<TailEvent>)>> = std::sync::Mutex::new(Vec::new());
    let detectors: std::sync::Mutex<Vec<LoopDetector>> = std::sync::Mutex::new(Vec::new());
    streams(&ids, &|id, cp| {
        let Ok(i) = ids.binary_search(&id) else { return };
        let mut loops = detectors.lock().expect("not poisoned").pop().unwrap_or_default();
        let mut events = Vec::new();
        detect(&facts(i), Some(&cp), t, &mut loops, &mut events);
        detectors.lock().expect("not poisoned").push(loops);
        found.lock().expect("not poisoned").push((i, cp.has_text(), events));
    })?;
    let mut events_of: Vec<Vec<TailEvent>> = vec![Vec::new(); streamed.len()];
    let mut seen = vec![false; streamed.len()];
    let mut has_text = vec![false; streamed.len()];
    for (i, text, events) in found.into_inner().expect("not poisoned") {
        seen[i] = true;
        has_text[i] = text;
        events_of[i] = events;
    }
    let mut loops = LoopDetector::default();
    for i in 0..streamed.len() {
        if !seen[i] {
            detect(&facts(i), None, t, &mut loops, &mut events_of[i]);
        }
    }
    Ok(summarize(calls, &streamed, events_of, &seen, &has_text, &judged, t, examples_per_kind))
}

fn model_of(call: &Call) -> (Sym, Sym) {
    (call.provider, call.request_model)
}

/// Each streamed request's trailing p95 TTFT among its model's requests.
fn baselines(streamed: &[&Call], t: &Thresholds) -> Vec<Option<f64>> {
    let mut by_model: HashMap<(Sym, Sym), Vec<usize>> = HashMap::new();
    for (i, c) in streamed.iter().enumerate() {
        if c.ttft_ms.is_some() {
            by_model.entry(model_of(c)).or_default().push(i);
        }
    }
    let mut out = vec![None; streamed.len()];
    for indices in by_model.values_mut() {
        indices.sort_by_key(|&i| (streamed[i].ts_ms, streamed[i].id));
        let series: Vec<(i64, u32)> =
            indices.iter().map(|&i| (streamed[i].ts_ms, streamed[i].ttft_ms.unwrap_or(0))).collect();
        let p95 = baseline::trailing_p95(&series, t.baseline_window_ms, t.baseline_min_samples);
        for (&i, p) in indices.iter().zip(p95) {
            out[i] = p;
        }
    }
    out
}

/// Models some of whose streams carry a finish reason or provider usage.
fn truncation_judged(streamed: &[&Call]) -> std::collections::HashSet<(Sym, Sym)> {
    streamed
        .iter()
        .filter(|c| c.finish_reason.is_some() || c.usage_source == UsageSource::Provider)
        .map(|c| model_of(c))
        .collect()
}

#[allow(clippy::too_many_arguments)]
fn summarize(
    calls: &Calls,
    streamed: &[&Call],
    events_of: Vec<Vec<TailEvent>>,
    seen: &[bool],
    has_text: &[bool],
    judged: &std::collections::HashSet<(Sym, Sym)>,
    t: &Thresholds,
    examples_per_kind: usize,
) -> TailReport {
    let latency_p95 = latency_p95_by_model(streamed);
    let mut counts = KindCounts::default();
    let mut with_tails = 0;
    let mut by_model: BTreeMap<String, GroupTails> = BTreeMap::new();
    let mut by_prompt: BTreeMap<String, GroupTails> = BTreeMap::new();
    let mut candidates: BTreeMap<TailKind, Vec<(f64, usize, usize)>> = BTreeMap::new();
    let mut hidden = HiddenByDuration::default();
    let mut hidden_candidates: Vec<(f64, usize, usize)> = Vec::new();
    // Grouped by symbols first; names are built once per group, not once per request.
    let index = |s: Option<Sym>| s.map_or(u32::MAX as u64, |s| crate::trace::records::Symbols::index(s) as u64);
    let mut model_groups: FastMap<u64, (usize, GroupTails)> = FastMap::default();
    let mut prompt_groups: FastMap<u64, (usize, GroupTails)> = FastMap::default();
    for (i, call) in streamed.iter().enumerate() {
        let events = &events_of[i];
        let model_id = (index(Some(call.provider)) << 32) | index(Some(call.request_model));
        let prompt_id = (index(call.prompt_name) << 32) | index(call.prompt_version);
        for (map, id) in [(&mut model_groups, model_id), (&mut prompt_groups, prompt_id)] {
            let (_, g) = map.entry(id).or_insert_with(|| {
                let empty = GroupTails {
                    key: String::new(),
                    streams: 0,
                    with_tails: 0,
                    counts: KindCounts::default(),
                    rates: KindRates::default(),
                };
                (i, empty)
            });
            g.streams += 1;
            if !events.is_empty() {
                g.with_tails += 1;
            }
            for e in events {
                g.counts.add(e.kind());
            }
        }
        if events.is_empty() {
            continue;
        }
        with_tails += 1;
        let model_p95 = latency_p95.get(&model_of(call)).copied();
        let looks_normal = matches!((call.latency_ms, model_p95), (Some(l), Some(p)) if l as f64 <= p);
        let mut hid = false;
        for (j, e) in events.iter().enumerate() {
            counts.add(e.kind());
            candidates.entry(e.kind()).or_default().push((e.severity(), i, j));
            if looks_normal && matches!(e.kind(), TailKind::Stall | TailKind::TtftRegression) {
                hid = true;
                match e.kind() {
                    TailKind::Stall => hidden.stall += 1,
                    _ => hidden.ttft_regression += 1,
                }
                hidden_candidates.push((e.severity(), i, j));
            }
        }
        if hid {
            hidden.requests += 1;
        }
    }
    let example = |i: usize, j: usize| {
        let call = streamed[i];
        Example {
            call_id: call.id,
            trace_id: None,
            span_id: None,
            logical_request_id: None,
            model: calls.model_key(call),
            prompt: call.prompt_name.map(|_| prompt_key(calls, call)),
            ts: jiff::Timestamp::from_millisecond(call.ts_ms).map(|t| t.to_string()).unwrap_or_default(),
            latency_ms: call.latency_ms,
            model_latency_p95_ms: latency_p95.get(&model_of(call)).copied(),
            ttft_ms: call.ttft_ms,
            event: events_of[i][j].clone(),
        }
    };
    let mut examples = Vec::new();
    for kind in TailKind::ALL {
        let mut list = candidates.remove(&kind).unwrap_or_default();
        list.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        examples.extend(list.into_iter().take(examples_per_kind).map(|(_, i, j)| example(i, j)));
    }
    hidden_candidates.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    hidden.examples = hidden_candidates.into_iter().take(examples_per_kind).map(|(_, i, j)| example(i, j)).collect();
    for (map, groups, name) in [
        (&mut by_model, model_groups, (|calls: &Calls, c: &Call| calls.model_key(c)) as fn(&Calls, &Call) -> String),
        (&mut by_prompt, prompt_groups, prompt_key as fn(&Calls, &Call) -> String),
    ] {
        for (_, (first, mut group)) in groups {
            group.key = name(calls, streamed[first]);
            map.insert(group.key.clone(), group);
        }
    }
    let finish = |map: BTreeMap<String, GroupTails>| -> Vec<GroupTails> {
        map.into_values()
            .map(|mut g| {
                g.rates = g.counts.rates(g.streams);
                g
            })
            .collect()
    };
    let mut not_judged: Vec<String> =
        streamed.iter().filter(|c| !judged.contains(&model_of(c))).map(|c| calls.model_key(c)).collect();
    not_judged.sort();
    not_judged.dedup();
    let streams = streamed.len() as u64;
    TailReport {
        thresholds: t.clone(),
        streams,
        without_checkpoints: seen.iter().filter(|s| !**s).count() as u64,
        without_text: seen.iter().zip(has_text).filter(|(s, h)| **s && !**h).count() as u64,
        with_tails,
        counts,
        rates: counts.rates(streams),
        by_model: finish(by_model),
        by_prompt: finish(by_prompt),
        hidden_by_duration: hidden,
        examples,
        truncation_not_judged: not_judged,
        flagged: streamed.iter().zip(events_of).filter(|(_, e)| !e.is_empty()).map(|(c, e)| (c.id, e)).collect(),
    }
}

fn latency_p95_by_model(streamed: &[&Call]) -> HashMap<(Sym, Sym), f64> {
    let mut by_model: HashMap<(Sym, Sym), Vec<u64>> = HashMap::new();
    for c in streamed {
        if let Some(l) = c.latency_ms {
            by_model.entry(model_of(c)).or_default().push(l as u64);
        }
    }
    by_model.into_iter().filter_map(|(k, v)| Percentiles::from_integers(v).percentile(95.0).map(|p| (k, p))).collect()
}

#[cfg(test)]
mod tests;
