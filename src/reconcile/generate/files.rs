//! Writes a generated month's invoice in the providers' export formats, and trace rows as promptctl JSONL.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use super::traffic::{Call, WEB_SEARCH_FEE};
use super::truth::ExtraLine;
use super::{InvoiceFormat, Scenario};
use crate::money::{PICOS_PER_USD, Usd};
use crate::pricing::{Provider, Tier};
use crate::reconcile::value::Counts;
use crate::reconcile::window::{SECONDS_PER_DAY, day_date, day_of, utc_midnight};
use crate::trace::model::{RequestRow, RequestStatus, StreamCheckpoint, UsageSource};

const ORGANIZATION: &str = "org-acme-prod";
/// OpenAI returns up to 7 daily buckets per page by default.
const BUCKETS_PER_PAGE: usize = 7;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct UsageKey {
    provider: Provider,
    day: i32,
    model: &'static str,
    project: &'static str,
    tier: TierName,
    long_context: bool,
}

/// `Tier` has no order; its name does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TierName {
    Standard,
    Batch,
    Flex,
    Priority,
}

impl From<Tier> for TierName {
    fn from(t: Tier) -> Self {
        match t {
            Tier::Standard => TierName::Standard,
            Tier::Batch => TierName::Batch,
            Tier::Flex => TierName::Flex,
            Tier::Priority => TierName::Priority,
        }
    }
}

#[derive(Debug, Clone, Default)]
struct UsageAgg {
    tokens: Counts,
    requests: u64,
    web_searches: u64,
    cost: [Usd; 5],
}

/// The billed side of a month, summed as the provider reports it.
pub struct BilledMonth {
    scenario: Scenario,
    usage: BTreeMap<UsageKey, UsageAgg>,
}

impl BilledMonth {
    pub fn new(scenario: &Scenario) -> BilledMonth {
        BilledMonth { scenario: *scenario, usage: BTreeMap::new() }
    }

    pub fn add(&mut self, call: &Call) {
        let Some(b) = &call.billed else { return };
        let key = UsageKey {
            provider: b.provider,
            day: call.day,
            model: b.model,
            project: b.project,
            tier: b.tier.into(),
            long_context: b.long_context,
        };
        let agg = self.usage.entry(key).or_default();
        agg.tokens += Counts::from_usage(&b.usage);
        agg.requests += 1;
        agg.web_searches += b.web_searches as u64;
        for (total, c) in agg.cost.iter_mut().zip(b.cost) {
            *total += c;
        }
    }

    /// The invoice files, and the lines with no tokens behind them (for the truth).
    pub fn finish(self) -> (Vec<(String, String)>, Vec<ExtraLine>) {
        let fees = self.fees();
        let credit = self.credit();
        let mut extras: Vec<ExtraLine> = fees.iter().map(|f| ExtraLine { usd: f.usd, tool_fee: true }).collect();
        extras.extend(credit.iter().map(|c| ExtraLine { usd: c.usd, tool_fee: false }));
        let writer = Writer { month: &self, fees: &fees, credit: credit.as_ref() };
        let files = match self.scenario.format {
            InvoiceFormat::ApiJson => writer.api_json(),
            InvoiceFormat::Csv => writer.csv(),
        };
        (files, extras)
    }

    /// Web search fees per provider, day and project.
    fn fees(&self) -> Vec<Fee> {
        let mut fees: BTreeMap<(Provider, i32, &'static str, &'static str), u64> = BTreeMap::new();
        for (key, agg) in &self.usage {
            if agg.web_searches > 0 {
                *fees.entry((key.provider, key.day, key.project, key.model)).or_default() += agg.web_searches;
            }
        }
        fees.into_iter()
            .map(|((provider, day, project, model), searches)| Fee {
                provider,
                day,
                project,
                model,
                usd: Usd(WEB_SEARCH_FEE.0 * searches as i128),
            })
            .collect()
    }

    /// A credit on the last day of the month, when the scenario injects one: $0.50 per unit of scale.
    fn credit(&self) -> Option<Fee> {
        if !self.scenario.causes.unexplained || !self.scenario.openai {
            return None;
        }
        let last = day_of(self.scenario.window().end) - 1;
        let credit_cents = (50.0 * self.scenario.scale).round() as i128;
        let usd = Usd(-credit_cents * (PICOS_PER_USD / 100));
        Some(Fee { provider: Provider::OpenAi, day: last, project: "", model: "", usd })
    }
}

struct Fee {
    provider: Provider,
    day: i32,
    project: &'static str,
    model: &'static str,
    usd: Usd,
}

struct Writer<'a> {
    month: &'a BilledMonth,
    fees: &'a [Fee],
    credit: Option<&'a Fee>,
}

impl Writer<'_> {
    fn lines(&self, provider: Provider) -> impl Iterator<Item = (&UsageKey, &UsageAgg)> {
        self.month.usage.iter().filter(move |(k, _)| k.provider == provider)
    }

    fn days(&self, provider: Provider) -> Vec<i32> {
        let mut days: Vec<i32> = self.lines(provider).map(|(k, _)| k.day).collect();
        days.dedup();
        days
    }

    fn api_json(&self) -> Vec<(String, String)> {
        let mut files = Vec::new();
        if self.month.scenario.openai {
            let days = self.days(Provider::OpenAi);
            let pages: Vec<&[i32]> = days.chunks(BUCKETS_PER_PAGE).collect();
            for (i, chunk) in pages.iter().enumerate() {
                let page = openai_page(chunk, i + 1 < pages.len(), i + 1, |day| self.openai_usage_results(day));
                files.push((format!("openai-usage-page-{:02}.json", i + 1), page));
            }
            let cost_pages: Vec<String> = pages
                .iter()
                .enumerate()
                .map(|(i, chunk)| openai_page(chunk, i + 1 < pages.len(), i + 1, |day| self.openai_cost_results(day)))
                .collect();
            files.push(("openai-costs.json".into(), format!("[\n{}\n]\n", cost_pages.join(",\n"))));
        }
        if self.month.scenario.anthropic {
            let days = self.days(Provider::Anthropic);
            let usage_pages: Vec<String> = days
                .chunks(BUCKETS_PER_PAGE)
                .enumerate()
                .map(|(i, chunk)| {
                    anthropic_page(chunk, i + 1 < days.len().div_ceil(BUCKETS_PER_PAGE), |day| {
                        self.anthropic_usage_results(day)
                    })
                })
                .map(|p| p.replace('\n', ""))
                .collect();
            files.push(("anthropic-usage-report.json".into(), usage_pages.join("\n") + "\n"));
            files.push((
                "anthropic-cost-report.json".into(),
                anthropic_page(&days, false, |day| self.anthropic_cost_results(day)),
            ));
        }
        files
    }

    fn openai_usage_results(&self, day: i32) -> Vec<String> {
        self.lines(Provider::OpenAi)
            .filter(|(k, _)| k.day == day)
            .map(|(k, a)| {
                let t = a.tokens.0;
                format!(
                    r#"{{"object":"organization.usage.completions.result","input_tokens":{},"output_tokens":{},"input_cached_tokens":{},"input_audio_tokens":0,"output_audio_tokens":0,"num_model_requests":{},"project_id":{},"user_id":null,"api_key_id":null,"model":{},"batch":{},"service_tier":{}}}"#,
                    t[0] + t[1],
                    t[4],
                    t[1],
                    a.requests,
                    json_str(k.project),
                    json_str(k.model),
                    k.tier == TierName::Batch,
                    json_str(openai_tier(k.tier)),
                )
            })
            .collect()
    }

    /// Cost results grouped by line item and project: one per model, class (and tier) and project.
    fn openai_cost_results(&self, day: i32) -> Vec<String> {
        let mut out: Vec<String> = self
            .openai_cost_lines(day)
            .into_iter()
            .map(|(item, project, usd)| openai_cost_result(&item, Some(project), usd))
            .collect();
        for fee in self.fees.iter().filter(|f| f.provider == Provider::OpenAi && f.day == day) {
            out.push(openai_cost_result("web search tool calls", Some(fee.project), fee.usd));
        }
        if let Some(credit) = self.credit.filter(|c| c.day == day) {
            out.push(openai_cost_result("Credit adjustment", None, credit.usd));
        }
        out
    }

    fn openai_cost_lines(&self, day: i32) -> Vec<(String, &'static str, Usd)> {
        let mut lines: BTreeMap<(String, &'static str), Usd> = BTreeMap::new();
        for (k, a) in self.lines(Provider::OpenAi).filter(|(k, _)| k.day == day) {
            let suffix = match k.tier {
                TierName::Standard => "",
                TierName::Batch => " (batch)",
                TierName::Flex => " (flex)",
                TierName::Priority => " (priority)",
            };
            for (class, word) in [(0, "input"), (1, "cached input"), (4, "output")] {
                if a.tokens.0[class] > 0 {
                    *lines.entry((format!("{}, {word}{suffix}", k.model), k.project)).or_default() += a.cost[class];
                }
            }
        }
        lines.into_iter().map(|((item, project), usd)| (item, project, usd)).collect()
    }

    fn anthropic_usage_results(&self, day: i32) -> Vec<String> {
        self.lines(Provider::Anthropic)
            .filter(|(k, _)| k.day == day)
            .map(|(k, a)| {
                let t = a.tokens.0;
                format!(
                    r#"{{"uncached_input_tokens":{},"cache_creation":{{"ephemeral_1h_input_tokens":{},"ephemeral_5m_input_tokens":{}}},"cache_read_input_tokens":{},"output_tokens":{},"server_tool_use":{{"web_search_requests":{}}},"api_key_id":null,"workspace_id":{},"model":{},"service_tier":{},"context_window":{}}}"#,
                    t[0],
                    t[3],
                    t[2],
                    t[1],
                    t[4],
                    a.web_searches,
                    json_str(k.project),
                    json_str(k.model),
                    json_str(anthropic_tier(k.tier)),
                    json_str(context_window(k.long_context)),
                )
            })
            .collect()
    }

    fn anthropic_cost_results(&self, day: i32) -> Vec<String> {
        let mut out = Vec::new();
        for (k, a) in self.lines(Provider::Anthropic).filter(|(k, _)| k.day == day) {
            for (class, token_type, label) in ANTHROPIC_CLASSES {
                if a.tokens.0[class] == 0 {
                    continue;
                }
                out.push(format!(
                    r#"{{"currency":"USD","amount":"{}","workspace_id":{},"description":{},"cost_type":"tokens","context_window":{},"model":{},"service_tier":{},"token_type":"{token_type}"}}"#,
                    cents(a.cost[class]),
                    json_str(k.project),
                    json_str(&format!("{} Usage - {label}", anthropic_family(k.model))),
                    json_str(context_window(k.long_context)),
                    json_str(k.model),
                    json_str(anthropic_tier(k.tier)),
                ));
            }
        }
        for fee in self.fees.iter().filter(|f| f.provider == Provider::Anthropic && f.day == day) {
            out.push(format!(
                r#"{{"currency":"USD","amount":"{}","workspace_id":{},"description":"Web Search","cost_type":"web_search","context_window":null,"model":{},"service_tier":"standard","token_type":null}}"#,
                cents(fee.usd),
                json_str(fee.project),
                json_str(fee.model),
            ));
        }
        out
    }

    fn csv(&self) -> Vec<(String, String)> {
        let mut files = Vec::new();
        if self.month.scenario.openai {
            let mut usage = String::from(
                "start_time_iso,end_time_iso,project_id,model,batch,service_tier,num_model_requests,input_tokens,input_cached_tokens,output_tokens\n",
            );
            for (k, a) in self.lines(Provider::OpenAi) {
                let t = a.tokens.0;
                let (start, end) = day_span(k.day);
                let _ = writeln!(
                    usage,
                    "{start},{end},{},{},{},{},{},{},{},{}",
                    k.project,
                    k.model,
                    k.tier == TierName::Batch,
                    openai_tier(k.tier),
                    a.requests,
                    t[0] + t[1],
                    t[1],
                    t[4]
                );
            }
            files.push(("openai-usage.csv".into(), usage));
            let mut costs = String::from(
                "start_time_iso,end_time_iso,organization_id,project_id,line_item,amount_value,amount_currency\n",
            );
            for day in self.days(Provider::OpenAi) {
                let (start, end) = day_span(day);
                for (item, project, usd) in self.openai_cost_lines(day) {
                    let _ = writeln!(costs, "{start},{end},{ORGANIZATION},{project},\"{item}\",{},usd", dollars(usd));
                }
                for fee in self.fees.iter().filter(|f| f.provider == Provider::OpenAi && f.day == day) {
                    let _ = writeln!(
                        costs,
                        "{start},{end},{ORGANIZATION},{},web search tool calls,{},usd",
                        fee.project,
                        dollars(fee.usd)
                    );
                }
                if let Some(credit) = self.credit.filter(|c| c.day == day) {
                    let _ =
                        writeln!(costs, "{start},{end},{ORGANIZATION},,Credit adjustment,{},usd", dollars(credit.usd));
                }
            }
            files.push(("openai-costs.csv".into(), costs));
        }
        if self.month.scenario.anthropic {
            let mut usage = String::from(
                "starting_at,ending_at,workspace_id,model,service_tier,context_window,uncached_input_tokens,cache_read_input_tokens,cache_creation_ephemeral_5m_input_tokens,cache_creation_ephemeral_1h_input_tokens,output_tokens,web_search_requests\n",
            );
            let mut costs = String::from(
                "starting_at,ending_at,workspace_id,model,service_tier,context_window,cost_type,token_type,description,currency,amount\n",
            );
            for (i, (k, a)) in self.lines(Provider::Anthropic).enumerate() {
                let t = a.tokens.0;
                // Half the rows in a local time zone, as a dashboard set to Europe/Berlin exports them:
                // the same instants, another offset.
                let (start, end) = if i % 2 == 0 { day_span(k.day) } else { day_span_at_offset(k.day, 2) };
                let _ = writeln!(
                    usage,
                    "{start},{end},{},{},{},{},{},{},{},{},{},{}",
                    k.project,
                    k.model,
                    anthropic_tier(k.tier),
                    context_window(k.long_context),
                    t[0],
                    t[1],
                    t[2],
                    t[3],
                    t[4],
                    a.web_searches
                );
                for (class, token_type, label) in ANTHROPIC_CLASSES {
                    if t[class] > 0 {
                        let _ = writeln!(
                            costs,
                            "{start},{end},{},{},{},{},tokens,{token_type},{} Usage - {label},USD,{}",
                            k.project,
                            k.model,
                            anthropic_tier(k.tier),
                            context_window(k.long_context),
                            anthropic_family(k.model),
                            cents(a.cost[class])
                        );
                    }
                }
            }
            for fee in self.fees.iter().filter(|f| f.provider == Provider::Anthropic) {
                let (start, end) = day_span(fee.day);
                let _ = writeln!(
                    costs,
                    "{start},{end},{},{},standard,,web_search,,Web Search,USD,{}",
                    fee.project,
                    fee.model,
                    cents(fee.usd)
                );
            }
            files.push(("anthropic-usage.csv".into(), usage));
            files.push(("anthropic-costs.csv".into(), costs));
        }
        files
    }
}

const ANTHROPIC_CLASSES: [(usize, &str, &str); 5] = [
    (0, "uncached_input_tokens", "Input Tokens"),
    (1, "cache_read_input_tokens", "Cache Read Input Tokens"),
    (2, "cache_creation.ephemeral_5m_input_tokens", "Cache Write (5m) Input Tokens"),
    (3, "cache_creation.ephemeral_1h_input_tokens", "Cache Write (1h) Input Tokens"),
    (4, "output_tokens", "Output Tokens"),
];

fn openai_page(days: &[i32], has_more: bool, number: usize, results: impl Fn(i32) -> Vec<String>) -> String {
    let buckets: Vec<String> = days
        .iter()
        .map(|&day| {
            let start = day as i64 * SECONDS_PER_DAY;
            format!(
                "    {{\"object\":\"bucket\",\"start_time\":{start},\"end_time\":{},\"results\":[\n      {}\n    ]}}",
                start + SECONDS_PER_DAY,
                results(day).join(",\n      ")
            )
        })
        .collect();
    let next = if has_more { format!("\"page_{:04}\"", number + 1) } else { "null".into() };
    format!(
        "{{\n  \"object\":\"page\",\n  \"data\":[\n{}\n  ],\n  \"has_more\":{has_more},\n  \"next_page\":{next}\n}}\n",
        buckets.join(",\n")
    )
}

fn anthropic_page(days: &[i32], has_more: bool, results: impl Fn(i32) -> Vec<String>) -> String {
    let buckets: Vec<String> = days
        .iter()
        .map(|&day| {
            let (start, end) = day_span(day);
            format!(
                "    {{\"starting_at\":\"{start}\",\"ending_at\":\"{end}\",\"results\":[\n      {}\n    ]}}",
                results(day).join(",\n      ")
            )
        })
        .collect();
    let next = if has_more { "\"page_next\"" } else { "null" };
    format!("{{\n  \"data\":[\n{}\n  ],\n  \"has_more\":{has_more},\n  \"next_page\":{next}\n}}\n", buckets.join(",\n"))
}

fn openai_cost_result(item: &str, project: Option<&str>, usd: Usd) -> String {
    format!(
        r#"{{"object":"organization.costs.result","amount":{{"value":{},"currency":"usd"}},"line_item":{},"project_id":{},"organization_id":"{ORGANIZATION}"}}"#,
        dollars(usd),
        json_str(item),
        project.map_or("null".to_string(), json_str)
    )
}

fn openai_tier(tier: TierName) -> &'static str {
    match tier {
        TierName::Flex => "flex",
        TierName::Priority => "priority",
        _ => "default",
    }
}

fn anthropic_tier(tier: TierName) -> &'static str {
    match tier {
        TierName::Batch => "batch",
        TierName::Priority => "priority",
        _ => "standard",
    }
}

fn context_window(long: bool) -> &'static str {
    if long { "200k-1M" } else { "0-200k" }
}

fn anthropic_family(model: &str) -> &'static str {
    if model.contains("sonnet") {
        "Claude Sonnet 4.5"
    } else if model.contains("haiku") {
        "Claude Haiku 4.5"
    } else {
        "Claude"
    }
}

fn day_span(day: i32) -> (String, String) {
    let start = utc_midnight(day_date(day));
    let end = utc_midnight(day_date(day + 1));
    (start.to_string(), end.to_string())
}

/// The same UTC day, written with a `+HH:00` offset.
fn day_span_at_offset(day: i32, hours: i64) -> (String, String) {
    let write = |d: i32| format!("{}T{:02}:00:00+{hours:02}:00", day_date(d), hours);
    (write(day), write(day + 1))
}

fn json_str(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

/// Exact decimal text of an amount in dollars.
pub fn dollars(usd: Usd) -> String {
    decimal(usd.0, 12)
}

/// Exact decimal text of an amount in cents (Anthropic's unit).
pub fn cents(usd: Usd) -> String {
    decimal(usd.0, 10)
}

/// `value × 10^-digits` as decimal text without trailing zeros.
fn decimal(value: i128, digits: u32) -> String {
    let unit = 10i128.pow(digits);
    let sign = if value < 0 { "-" } else { "" };
    let (whole, frac) = (value.abs() / unit, value.abs() % unit);
    if frac == 0 {
        return format!("{sign}{whole}");
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{sign}{whole}.{}", frac.trim_end_matches('0'))
}

/// One trace row as a line of promptctl JSONL (FORMATS.md, trace format 2): `input_tokens` includes cache
/// reads and writes.
pub fn trace_jsonl_line(row: &RequestRow) -> String {
    #[derive(Serialize)]
    struct Line<'a> {
        ts: String,
        trace_id: Option<&'a str>,
        span_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<&'a str>,
        project: Option<&'a str>,
        provider: &'a str,
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        response_model: Option<&'a str>,
        logical_request_id: Option<&'a str>,
        attempt: u32,
        status: RequestStatus,
        streamed: bool,
        usage_source: UsageSource,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<LineUsage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        service_tier: Option<&'a str>,
        batch: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        latency_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttft_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        stream: &'a [StreamCheckpoint],
    }
    #[derive(Serialize)]
    struct LineUsage {
        input_tokens: u64,
        output_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
        #[serde(skip_serializing_if = "is_zero")]
        cache_write_1h_tokens: u64,
        reasoning_tokens: u64,
    }
    fn is_zero(n: &u64) -> bool {
        *n == 0
    }
    let u = &row.usage;
    let usage = (row.usage_source != UsageSource::Missing).then_some(LineUsage {
        input_tokens: u.input_total,
        output_tokens: u.output_total,
        cache_read_tokens: u.cache_read,
        cache_write_tokens: u.cache_write_5m,
        cache_write_1h_tokens: u.cache_write_1h,
        reasoning_tokens: u.reasoning,
    });
    let line = Line {
        ts: row.ts.to_string(),
        trace_id: row.trace_id.as_deref(),
        span_id: row.span_id.as_deref(),
        conversation_id: row.conversation_id.as_deref(),
        project: row.project.as_deref(),
        provider: &row.provider,
        model: &row.request_model,
        response_model: row.response_model.as_deref(),
        logical_request_id: row.logical_request_id.as_deref(),
        attempt: row.attempt,
        status: row.status,
        streamed: row.streamed,
        usage_source: row.usage_source,
        usage,
        service_tier: row.service_tier.as_deref(),
        batch: row.batch,
        latency_ms: row.latency_ms,
        ttft_ms: row.ttft_ms,
        error: row.error.as_deref(),
        stream: &row.stream,
    };
    serde_json::to_string(&line).expect("rows serialize")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_exact_text() {
        assert_eq!(dollars(Usd(1_234_567_890_123)), "1.234567890123");
        assert_eq!(dollars(Usd(-20 * PICOS_PER_USD)), "-20");
        assert_eq!(cents(Usd(1_234_500_000_000)), "123.45");
        assert_eq!(Usd::parse_decimal(&cents(Usd(987_654_321)), -2).unwrap(), Usd(987_654_321));
    }
}
