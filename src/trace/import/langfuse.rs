//! Langfuse observation exports: a JSON array of observations, API pages (`{"data": […], "meta": …}`),
//! or one observation per line. Only `GENERATION` observations are model calls.
//!
//! Langfuse prices every usage type separately and sums them, so its `usageDetails` are additive:
//! `input` excludes cached tokens (its own OpenAI integration subtracts `cached_tokens` into
//! `input_cached_tokens`), and `output` excludes reasoning tokens reported as `output_reasoning_tokens`.

use std::collections::{BTreeMap, VecDeque};
use std::io::BufRead;

use jiff::Timestamp;
use serde::Deserialize;

use super::driver::{Driver, Walker};
use super::jsonl::value_text;
use super::normalize::{
    CacheConvention, RawCount, ReportedUsage, check_count, hex_id, parse_time, provider_id, status_from_error_type,
    token_count,
};
use super::scan::{ScanError, Scanner};
use super::{ImportOptions, ImportedRow, Record, RecordError, SkipReason};
use crate::trace::model::{Message, RequestRow, RequestStatus, UsageSource};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    Top,
    Array,
}

/// The records of a Langfuse export.
pub fn reader<R: BufRead>(reader: R, options: ImportOptions) -> Driver<R, LangfuseWalker> {
    Driver::new(reader, LangfuseWalker { options, frame: Frame::Top, buf: Vec::new(), out: VecDeque::new() })
}

/// Walks top-level arrays element by element; an object at the top is one observation or one API page.
pub struct LangfuseWalker {
    options: ImportOptions,
    frame: Frame,
    buf: Vec<u8>,
    out: VecDeque<Record>,
}

impl Walker for LangfuseWalker {
    type Item = Record;

    fn output(&mut self) -> &mut VecDeque<Record> {
        &mut self.out
    }

    fn reset(&mut self) {
        self.frame = Frame::Top;
    }

    fn step<B: BufRead>(&mut self, scan: &mut Scanner<B>) -> Result<bool, ScanError> {
        match self.frame {
            Frame::Top => match scan.peek()? {
                None => return Ok(false),
                Some(b'[') => {
                    scan.bump();
                    self.frame = Frame::Array;
                }
                Some(b'{') => self.capture_and_read(scan)?,
                Some(b) => return Err(scan.unexpected("a Langfuse observation object or an array of them", b)),
            },
            Frame::Array => {
                if scan.next_element()? {
                    self.capture_and_read(scan)?;
                } else {
                    self.frame = Frame::Top;
                }
            }
        }
        Ok(true)
    }
}

impl LangfuseWalker {
    fn capture_and_read<B: BufRead>(&mut self, scan: &mut Scanner<B>) -> Result<(), ScanError> {
        let start = super::Start { line: scan.line(), column: scan.column() };
        let line = start.line;
        self.buf.clear();
        scan.capture(&mut self.buf)?;
        match super::parse_record::<RawObservation>(&self.buf, start) {
            Ok(mut obs) => match obs.data.take() {
                // An API page: its observations, all positioned at the page.
                Some(page) => {
                    for o in page {
                        self.out.push_back(observation_record(o, line, &self.options));
                    }
                }
                None => self.out.push_back(observation_record(obs, line, &self.options)),
            },
            Err(e) => self.out.push_back(Record::Error(e)),
        }
        Ok(())
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct RawObservation {
    id: Option<String>,
    trace_id: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    name: Option<String>,
    start_time: Option<String>,
    end_time: Option<String>,
    completion_start_time: Option<String>,
    model: Option<String>,
    usage_details: Option<BTreeMap<String, RawCount>>,
    /// The deprecated usage object of older exports.
    usage: Option<LegacyUsage>,
    level: Option<String>,
    status_message: Option<String>,
    prompt_name: Option<String>,
    prompt_version: Option<serde_json::Value>,
    session_id: Option<String>,
    metadata: Option<serde_json::Value>,
    input: Option<serde_json::Value>,
    output: Option<serde_json::Value>,
    /// Present on API pages only.
    data: Option<Vec<RawObservation>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct LegacyUsage {
    input: Option<RawCount>,
    output: Option<RawCount>,
    prompt_tokens: Option<RawCount>,
    completion_tokens: Option<RawCount>,
}

fn observation_record(obs: RawObservation, line: u64, options: &ImportOptions) -> Record {
    if !obs.kind.as_deref().is_none_or(|k| k.eq_ignore_ascii_case("GENERATION")) {
        return Record::Skipped { line, reason: SkipReason::NotAGeneration };
    }
    let id = obs.id.clone().unwrap_or_default();
    match normalize(obs, options) {
        Ok(row) => Record::Row(Box::new(ImportedRow::new(line, row, CacheConvention::Additive, false))),
        Err(message) => {
            let which = if id.is_empty() { String::new() } else { format!("observation {id}: ") };
            Record::Error(RecordError::at(line, format!("{which}{message}")))
        }
    }
}

fn time(text: Option<&str>, field: &str, options: &ImportOptions) -> Result<Option<Timestamp>, String> {
    text.filter(|t| !t.is_empty())
        .map(|t| parse_time(t, options.assume_tz.as_ref()).map_err(|e| format!("{field}: {e}")))
        .transpose()
}

fn millis_between(from: Timestamp, to: Option<Timestamp>) -> Option<u64> {
    let to = to?;
    let ms = to.as_millisecond() - from.as_millisecond();
    (ms >= 0).then_some(ms as u64)
}

fn meta_text(metadata: Option<&serde_json::Value>, keys: &[&str]) -> Option<String> {
    let map = metadata?.as_object()?;
    keys.iter().find_map(|k| map.get(*k)).map(value_text).filter(|s| !s.is_empty())
}

fn normalize(obs: RawObservation, options: &ImportOptions) -> Result<RequestRow, String> {
    let start = time(obs.start_time.as_deref(), "startTime", options)?.ok_or("no startTime")?;
    let end = time(obs.end_time.as_deref(), "endTime", options)?;
    let first_token = time(obs.completion_start_time.as_deref(), "completionStartTime", options)?;
    let model = obs.model.clone().filter(|m| !m.is_empty()).ok_or("a generation without a model")?;
    let metadata = obs.metadata.as_ref();
    let provider = provider_id(meta_text(metadata, &["provider", "ls_provider", "gen_ai.system"]).as_deref(), &model);
    let (usage, usage_source) = match usage_counts(&obs)? {
        Some(reported) => (reported.normalize(CacheConvention::Additive)?, UsageSource::Provider),
        None => (Default::default(), UsageSource::Missing),
    };
    let status = match obs.level.as_deref() {
        Some(level) if level.eq_ignore_ascii_case("ERROR") => {
            status_from_error_type(obs.status_message.as_deref().unwrap_or("error"))
        }
        _ => RequestStatus::Ok,
    };
    let ttft_ms = millis_between(start, first_token);
    let messages = match &obs.input {
        Some(input) => input_messages(input),
        None => Vec::new(),
    };
    Ok(RequestRow {
        ts: start,
        provider,
        request_model: model,
        response_model: meta_text(metadata, &["response_model"]),
        project: meta_text(metadata, &["project", "project_id"]),
        api_key_ref: None,
        tenant_id: meta_text(metadata, &["tenant_id", "tenant"]),
        conversation_id: obs
            .session_id
            .clone()
            .filter(|s| !s.is_empty())
            .or_else(|| meta_text(metadata, &["session_id", "conversation_id"])),
        trace_id: obs.trace_id.as_deref().map(hex_id).filter(|t| !t.is_empty()),
        span_id: obs.id.as_deref().map(hex_id).filter(|s| !s.is_empty()),
        logical_request_id: meta_text(metadata, &["logical_request_id"]),
        attempt: meta_text(metadata, &["attempt"]).and_then(|a| a.parse().ok()).filter(|a| *a >= 1).unwrap_or(1),
        status,
        streamed: first_token.is_some(),
        usage_source,
        usage,
        service_tier: meta_text(metadata, &["service_tier"]),
        batch: false,
        latency_ms: millis_between(start, end),
        ttft_ms,
        prompt_name: obs.prompt_name.clone().filter(|p| !p.is_empty()),
        prompt_version: obs.prompt_version.as_ref().map(value_text).filter(|v| !v.is_empty()),
        finish_reason: meta_text(metadata, &["finish_reason", "stop_reason"]),
        error: (status != RequestStatus::Ok).then(|| obs.status_message.clone()).flatten(),
        messages,
        output: obs.output.as_ref().map(output_text),
        stream: Vec::new(),
    })
}

/// Which class of tokens a Langfuse usage key counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UsageClass {
    Input,
    CacheRead,
    CacheWrite5m,
    CacheWrite1h,
    Output,
    Reasoning,
    /// `total` (derived) and units that are not text tokens.
    Ignored,
}

fn usage_class(key: &str) -> UsageClass {
    let k = key.to_ascii_lowercase();
    if k.starts_with("total") {
        UsageClass::Ignored
    } else if k.contains("reasoning") {
        UsageClass::Reasoning
    } else if k.contains("cache_read") || k.contains("cached") {
        UsageClass::CacheRead
    } else if k.contains("cache_creation") || k.contains("cache_write") {
        if k.contains("1h") { UsageClass::CacheWrite1h } else { UsageClass::CacheWrite5m }
    } else if k.starts_with("input") || k.starts_with("prompt") {
        UsageClass::Input
    } else if k.starts_with("output") || k.starts_with("completion") {
        UsageClass::Output
    } else {
        UsageClass::Ignored
    }
}

fn usage_counts(obs: &RawObservation) -> Result<Option<ReportedUsage>, String> {
    if let Some(details) = obs.usage_details.as_ref().filter(|d| !d.is_empty()) {
        let mut u = ReportedUsage::default();
        for (key, raw) in details {
            let n = token_count(raw, &format!("usageDetails.{key}"))?;
            let slot = match usage_class(key) {
                UsageClass::Input => &mut u.input,
                UsageClass::CacheRead => &mut u.cache_read,
                UsageClass::CacheWrite5m => &mut u.cache_write_5m,
                UsageClass::CacheWrite1h => &mut u.cache_write_1h,
                UsageClass::Output => &mut u.output,
                UsageClass::Reasoning => &mut u.reasoning,
                UsageClass::Ignored => continue,
            };
            *slot += n;
        }
        // Reasoning tokens are part of the output billed; Langfuse keeps them in their own key.
        u.output = check_count(u.output as i128 + u.reasoning as i128, "usageDetails output with reasoning")?;
        return Ok(Some(u));
    }
    let Some(legacy) = &obs.usage else { return Ok(None) };
    let input = legacy.input.as_ref().or(legacy.prompt_tokens.as_ref());
    let output = legacy.output.as_ref().or(legacy.completion_tokens.as_ref());
    if input.is_none() && output.is_none() {
        return Ok(None);
    }
    Ok(Some(ReportedUsage {
        input: input.map(|v| token_count(v, "usage.input")).transpose()?.unwrap_or(0),
        output: output.map(|v| token_count(v, "usage.output")).transpose()?.unwrap_or(0),
        ..Default::default()
    }))
}

/// Langfuse keeps the input as the application logged it: a message list, `{"messages": […]}`, or text.
fn input_messages(input: &serde_json::Value) -> Vec<Message> {
    let list = match input {
        serde_json::Value::Array(items) => Some(items),
        serde_json::Value::Object(map) => map.get("messages").and_then(|m| m.as_array()),
        _ => None,
    };
    match list {
        Some(items) => items
            .iter()
            .map(|m| Message {
                role: m.get("role").and_then(|r| r.as_str()).unwrap_or("").to_string(),
                content: m.get("content").map(value_text).unwrap_or_default(),
            })
            .collect(),
        None => vec![Message { role: "user".into(), content: value_text(input) }],
    }
}

fn output_text(output: &serde_json::Value) -> String {
    match output {
        serde_json::Value::Object(map) if map.contains_key("content") => value_text(&map["content"]),
        other => value_text(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::Usage;

    fn read(text: &str) -> Vec<Record> {
        reader(text.as_bytes(), ImportOptions::default()).collect()
    }

    #[test]
    fn an_array_export_yields_generations_and_skips_other_observations() {
        let text = r#"[
  {"id":"obs-1","traceId":"trace-1","type":"SPAN","name":"handler","startTime":"2026-10-01T12:00:00.000Z"},
  {"id":"obs-2","traceId":"trace-1","type":"GENERATION","name":"chat","startTime":"2026-10-01T12:00:00.100Z",
   "endTime":"2026-10-01T12:00:02.100Z","completionStartTime":"2026-10-01T12:00:00.500Z",
   "model":"claude-sonnet-4-5-20250929","sessionId":"conv-9","promptName":"extract-order","promptVersion":3,
   "usageDetails":{"input":120,"cache_read_input_tokens":2000,"cache_creation_input_tokens":300,"output":80,"total":2500},
   "costDetails":{"total":0.0123},"metadata":{"tenant_id":"acme"},
   "input":[{"role":"user","content":"order #4411 arrived broken"}],"output":{"role":"assistant","content":"{}"}}
]"#;
        let records = read(text);
        assert_eq!(records.len(), 2);
        assert!(matches!(records[0], Record::Skipped { line: 2, reason: SkipReason::NotAGeneration }));
        let Record::Row(r) = &records[1] else { panic!("{records:?}") };
        assert_eq!(r.line, 3);
        assert_eq!(r.row.provider, "anthropic");
        assert_eq!(r.row.usage, Usage::from_additive(120, 2000, 300, 0, 80, 0));
        assert_eq!(r.row.usage.input_total, 2420);
        assert_eq!(r.row.ttft_ms, Some(400));
        assert_eq!(r.row.latency_ms, Some(2000));
        assert!(r.row.streamed);
        assert_eq!(r.row.conversation_id.as_deref(), Some("conv-9"));
        assert_eq!(r.row.tenant_id.as_deref(), Some("acme"));
        assert_eq!(r.row.prompt_version.as_deref(), Some("3"));
        assert_eq!(r.key_text(), "span:trace-1/obs-2");
    }

    #[test]
    fn openai_usage_details_are_additive_with_reasoning_apart() {
        let text = r#"{"data":[{"id":"o","traceId":"t","type":"GENERATION","startTime":"2026-10-01T12:00:00Z","model":"o4-mini",
            "usageDetails":{"input":300,"input_cached_tokens":512,"output":100,"output_reasoning_tokens":400}}],"meta":{"page":1}}"#;
        let records = read(text);
        let Record::Row(r) = &records[0] else { panic!("{records:?}") };
        assert_eq!(r.row.usage, Usage::from_inclusive(812, 512, 0, 500, 400));
    }

    #[test]
    fn line_delimited_exports_continue_after_a_bad_line() {
        let text = "{\"id\":\"a\",\"type\":\"GENERATION\",\"startTime\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\"}\n{\"id\": \"b\", oops}\n{\"id\":\"c\",\"type\":\"GENERATION\",\"startTime\":\"2026-10-01T12:00:00\",\"model\":\"gpt-4o\"}\n";
        let records = read(text);
        assert!(matches!(&records[0], Record::Row(_)));
        assert!(matches!(&records[1], Record::Error(e) if e.line == Some(2)), "{records:?}");
        assert!(matches!(&records[2], Record::Error(e) if e.line == Some(3) && e.message.contains("--assume-tz")));
    }

    #[test]
    fn an_observation_that_is_not_utf8_is_reported_and_the_next_is_read() {
        let text = b"{\"id\":\"a\",\"type\":\"GENERATION\",\"startTime\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\",\"name\":\"r\xe9sum\xe9\"}\n{\"id\":\"c\",\"type\":\"GENERATION\",\"startTime\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\"}\n";
        let records: Vec<Record> = reader(&text[..], ImportOptions::default()).collect();
        assert!(
            matches!(&records[0], Record::Error(e) if e.line == Some(1) && e.message.starts_with("byte 0xE9 at column 92 is not UTF-8")),
            "{records:?}"
        );
        assert!(matches!(&records[1], Record::Row(_)), "{records:?}");
    }

    #[test]
    fn an_error_in_an_array_on_one_line_is_placed_at_its_column_in_the_line() {
        let first = r#"{"id":"a","type":"GENERATION","startTime":"2026-10-01T12:00:00Z","model":"gpt-4o"}"#;
        let text = format!(
            r#"[{first}, {{"id":"b","type":"GENERATION","startTime":"2026-10-01T12:00:00Z","model":"gpt-4o","name":"r\xe9sum\xe9"}}]"#
        );
        let mut bytes = text.into_bytes();
        let at = memchr::memmem::find(&bytes, b"\\xe9").unwrap();
        bytes.splice(at..at + 4, [0xE9]);
        let records: Vec<Record> = reader(&bytes[..], ImportOptions::default()).collect();
        assert!(matches!(&records[0], Record::Row(_)), "{records:?}");
        let expected = format!("byte 0xE9 at column {} is not UTF-8", at + 1);
        assert!(
            matches!(&records[1], Record::Error(e) if e.line == Some(1) && e.message.starts_with(&expected)),
            "{records:?}"
        );
    }
}
