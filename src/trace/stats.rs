//! `trace stats`: counts, tokens by class, latency and TTFT percentiles, usage provenance and retries —
//! overall and by model, prompt version and UTC day.

use std::collections::{BTreeMap, HashSet};

use serde::Serialize;

use crate::stats::percentile::Percentiles;
use crate::trace::model::{RequestStatus, UsageSource};
use crate::trace::records::{Call, Calls};

/// Tokens summed by class (`input_total` = uncached + cache reads + cache writes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TokenTotals {
    pub input_total: u64,
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub output_total: u64,
    pub reasoning: u64,
}

impl TokenTotals {
    fn add(&mut self, c: &Call) {
        let u = &c.usage;
        self.input_total += u.input_total;
        self.input_uncached += u.input_uncached;
        self.cache_read += u.cache_read;
        self.cache_write_5m += u.cache_write_5m;
        self.cache_write_1h += u.cache_write_1h;
        self.output_total += u.output_total;
        self.reasoning += u.reasoning;
    }
}

/// Percentiles of a duration (linear interpolation, as numpy), in ms; `None` without observations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Spread {
    pub n: u64,
    pub p50: Option<f64>,
    pub p90: Option<f64>,
    pub p99: Option<f64>,
    pub max: Option<f64>,
}

impl Spread {
    pub fn of(values: Vec<u64>) -> Spread {
        let p = Percentiles::from_integers(values);
        Spread {
            n: p.len() as u64,
            p50: p.percentile(50.0),
            p90: p.percentile(90.0),
            p99: p.percentile(99.0),
            max: p.max(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StatusCounts {
    pub ok: u64,
    pub error: u64,
    pub timeout: u64,
    pub aborted: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UsageSources {
    pub provider: u64,
    pub estimated: u64,
    pub missing: u64,
}

/// The statistics of one group of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    pub key: String,
    /// Rows: every attempt counts.
    pub requests: u64,
    /// Distinct logical requests: retries of one request count once.
    pub logical_requests: u64,
    pub streamed: u64,
    pub status: StatusCounts,
    pub tokens: TokenTotals,
    pub usage_source: UsageSources,
    /// Share of rows whose tokens were counted client-side.
    pub estimated_share: f64,
    /// Share of rows with no token counts at all.
    pub missing_share: f64,
    /// Rows that are a second or later attempt.
    pub retried_attempts: u64,
    pub retried_share: f64,
    pub latency_ms: Spread,
    pub ttft_ms: Spread,
}

#[derive(Default)]
struct Accumulator {
    requests: u64,
    streamed: u64,
    logical: HashSet<u64>,
    unnamed_logical: u64,
    status: StatusCounts,
    tokens: TokenTotals,
    usage_source: UsageSources,
    retried: u64,
    latency: Vec<u64>,
    ttft: Vec<u64>,
}

impl Accumulator {
    fn add(&mut self, c: &Call) {
        self.requests += 1;
        self.streamed += u64::from(c.streamed);
        match c.logical {
            Some(h) => {
                self.logical.insert(h);
            }
            None => self.unnamed_logical += 1,
        }
        match c.status {
            RequestStatus::Ok => self.status.ok += 1,
            RequestStatus::Error => self.status.error += 1,
            RequestStatus::Timeout => self.status.timeout += 1,
            RequestStatus::Aborted => self.status.aborted += 1,
        }
        self.tokens.add(c);
        match c.usage_source {
            UsageSource::Provider => self.usage_source.provider += 1,
            UsageSource::Estimated => self.usage_source.estimated += 1,
            UsageSource::Missing => self.usage_source.missing += 1,
        }
        self.retried += u64::from(c.attempt > 1);
        self.latency.extend(c.latency_ms.map(u64::from));
        self.ttft.extend(c.ttft_ms.map(u64::from));
    }

    fn finish(self, key: String) -> GroupStats {
        let share = |n: u64| if self.requests == 0 { 0.0 } else { n as f64 / self.requests as f64 };
        GroupStats {
            key,
            requests: self.requests,
            logical_requests: self.logical.len() as u64 + self.unnamed_logical,
            streamed: self.streamed,
            status: self.status,
            tokens: self.tokens,
            usage_source: self.usage_source,
            estimated_share: share(self.usage_source.estimated),
            missing_share: share(self.usage_source.missing),
            retried_attempts: self.retried,
            retried_share: share(self.retried),
            latency_ms: Spread::of(self.latency),
            ttft_ms: Spread::of(self.ttft),
        }
    }
}

/// Statistics over a set of requests.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStats {
    /// The first and last request start (RFC 3339, UTC), when there are requests.
    pub first: Option<String>,
    pub last: Option<String>,
    pub conversations: u64,
    pub overall: GroupStats,
    pub by_model: Vec<GroupStats>,
    pub by_prompt: Vec<GroupStats>,
    pub by_day: Vec<GroupStats>,
}

/// Computes the statistics of `calls`.
pub fn compute(calls: &Calls) -> TraceStats {
    let mut overall = Accumulator::default();
    let mut by_model: BTreeMap<String, Accumulator> = BTreeMap::new();
    let mut by_prompt: BTreeMap<String, Accumulator> = BTreeMap::new();
    let mut by_day: BTreeMap<String, Accumulator> = BTreeMap::new();
    let mut conversations = HashSet::new();
    let (mut first, mut last) = (i64::MAX, i64::MIN);
    for c in &calls.calls {
        overall.add(c);
        by_model.entry(calls.model_key(c)).or_default().add(c);
        by_prompt.entry(prompt_key(calls, c)).or_default().add(c);
        by_day.entry(day(c.ts_ms)).or_default().add(c);
        conversations.extend(c.conversation);
        first = first.min(c.ts_ms);
        last = last.max(c.ts_ms);
    }
    let time = |ms: i64| jiff::Timestamp::from_millisecond(ms).ok().map(|t| t.to_string());
    let groups = |m: BTreeMap<String, Accumulator>| m.into_iter().map(|(k, a)| a.finish(k)).collect();
    TraceStats {
        first: (!calls.calls.is_empty()).then(|| time(first)).flatten(),
        last: (!calls.calls.is_empty()).then(|| time(last)).flatten(),
        conversations: conversations.len() as u64,
        overall: overall.finish("all".into()),
        by_model: groups(by_model),
        by_prompt: groups(by_prompt),
        by_day: groups(by_day),
    }
}

/// `name@version` (version shortened to 12 characters), or `(no prompt)`.
pub fn prompt_key(calls: &Calls, c: &Call) -> String {
    match (c.prompt_name, c.prompt_version) {
        (Some(n), Some(v)) => {
            let v = calls.name(v);
            format!("{}@{}", calls.name(n), &v[..v.len().min(12)])
        }
        (Some(n), None) => calls.name(n).to_string(),
        (None, _) => "(no prompt)".into(),
    }
}

/// The UTC day of a time in ms, `YYYY-MM-DD`.
pub fn day(ts_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ts_ms)
        .map(|t| t.to_zoned_datetime(jiff::tz::TimeZone::UTC).date().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::{RequestRow, Usage};

    fn row(ts: &str, model: &str, attempt: u32, latency: u64, source: UsageSource) -> RequestRow {
        RequestRow {
            ts: ts.parse().unwrap(),
            provider: "openai".into(),
            request_model: model.into(),
            response_model: None,
            project: None,
            api_key_ref: None,
            tenant_id: None,
            conversation_id: Some("c-1".into()),
            trace_id: None,
            span_id: None,
            logical_request_id: Some(format!("l-{ts}")),
            attempt,
            status: if attempt == 1 && latency < 100 { RequestStatus::Error } else { RequestStatus::Ok },
            streamed: true,
            usage_source: source,
            usage: if source == UsageSource::Missing {
                Usage::default()
            } else {
                Usage::from_inclusive(1000, 512, 0, 100, 0)
            },
            service_tier: None,
            batch: false,
            latency_ms: Some(latency),
            ttft_ms: Some(latency / 4),
            prompt_name: Some("support-reply".into()),
            prompt_version: Some("3f2a9c1b7d04aa".into()),
            finish_reason: None,
            error: None,
            messages: Vec::new(),
            output: None,
            stream: Vec::new(),
        }
    }

    #[test]
    fn hand_computed_statistics() {
        let rows = [
            row("2026-10-01T10:00:00Z", "gpt-4o-mini", 1, 50, UsageSource::Missing),
            row("2026-10-01T10:00:00Z", "gpt-4o-mini", 2, 800, UsageSource::Provider),
            row("2026-10-01T11:00:00Z", "gpt-4o-mini", 1, 900, UsageSource::Estimated),
            row("2026-10-02T09:00:00Z", "gpt-4.1-mini", 1, 1000, UsageSource::Provider),
        ];
        let stats = compute(&Calls::from_rows(&rows));
        let all = &stats.overall;
        assert_eq!((all.requests, all.logical_requests, all.retried_attempts), (4, 3, 1));
        assert_eq!(all.status, StatusCounts { ok: 3, error: 1, timeout: 0, aborted: 0 });
        assert_eq!(all.tokens.input_total, 3000);
        assert_eq!(all.tokens.cache_read, 1536);
        assert_eq!((all.estimated_share, all.missing_share, all.retried_share), (0.25, 0.25, 0.25));
        // np.percentile([50, 800, 900, 1000], [50, 90, 99]) = 850, 970, 997
        assert_eq!(all.latency_ms.p50, Some(850.0));
        assert!((all.latency_ms.p90.unwrap() - 970.0).abs() < 1e-9);
        assert!((all.latency_ms.p99.unwrap() - 997.0).abs() < 1e-9);
        assert_eq!(all.latency_ms.max, Some(1000.0));
        assert_eq!(
            stats.by_model.iter().map(|g| (g.key.as_str(), g.requests)).collect::<Vec<_>>(),
            [("openai:gpt-4.1-mini", 1), ("openai:gpt-4o-mini", 3)]
        );
        assert_eq!(stats.by_day.iter().map(|g| g.key.as_str()).collect::<Vec<_>>(), ["2026-10-01", "2026-10-02"]);
        assert_eq!(stats.by_prompt[0].key, "support-reply@3f2a9c1b7d04");
        assert_eq!(stats.conversations, 1);
        assert_eq!(stats.first.as_deref(), Some("2026-10-01T10:00:00Z"));
    }
}
