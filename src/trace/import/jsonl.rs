//! promptctl JSONL: one request per line (FORMATS.md, "Trace inputs"). `usage.input_tokens` includes
//! cached tokens. Unknown keys are tolerated: trace exports are not ours to police.

use std::borrow::Cow;
use std::io::{BufRead, Read};

use serde::Deserialize;

use super::normalize::{
    self, CacheConvention, MAX_TOKENS, RawCount, ReportedUsage, parse_status, parse_time, provider_id, token_count,
};
use super::{ImportOptions, ImportedRow, Record, RecordError, Start, parse_record};
use crate::trace::model::{Message, RequestRow, RequestStatus, StreamCheckpoint, UsageSource};

/// Longest line read; a longer one is reported and ends the read rather than being buffered.
/// (1 MB in unit tests, so that they can cross it.)
pub(super) const MAX_LINE: usize = if cfg!(test) { 1 << 20 } else { 256 << 20 };

pub struct JsonlReader<R> {
    reader: R,
    options: ImportOptions,
    line: u64,
    buf: Vec<u8>,
    done: bool,
}

impl<R: BufRead> JsonlReader<R> {
    pub fn new(reader: R, options: ImportOptions) -> Self {
        Self::starting_at(reader, options, 1)
    }

    /// A reader whose first line is line `first_line` of the file (for a chunk of a file read in parts).
    pub fn starting_at(reader: R, options: ImportOptions, first_line: u64) -> Self {
        JsonlReader { reader, options, line: first_line.saturating_sub(1), buf: Vec::with_capacity(4096), done: false }
    }

    /// Reads the next line into `buf` (without its line break); false at the end.
    fn read_line(&mut self) -> Result<bool, RecordError> {
        self.buf.clear();
        let n = self
            .reader
            .by_ref()
            .take(MAX_LINE as u64 + 1)
            .read_until(b'\n', &mut self.buf)
            .map_err(|e| RecordError::fatal(Some(self.line + 1), format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(false);
        }
        self.line += 1;
        if self.buf.len() > MAX_LINE {
            return Err(line_too_long(self.line));
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(true)
    }
}

/// The error that ends a read at a line over [`MAX_LINE`] bytes.
pub(super) fn line_too_long(line: u64) -> RecordError {
    RecordError::fatal(Some(line), format!("line is longer than {} MB; is this really JSONL?", MAX_LINE >> 20))
}

impl<R: BufRead> Iterator for JsonlReader<R> {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        while !self.done {
            match self.read_line() {
                Ok(false) => self.done = true,
                Ok(true) => {
                    let text = self.buf.trim_ascii_start();
                    if text.is_empty() {
                        continue;
                    }
                    let start = Start { line: self.line, column: (self.buf.len() - text.len()) as u64 + 1 };
                    return Some(match parse_line(text.trim_ascii_end(), start, &self.options) {
                        Ok(row) => Record::Row(Box::new(row)),
                        Err(e) => Record::Error(e),
                    });
                }
                Err(e) => {
                    self.done = true;
                    return Some(Record::Error(e));
                }
            }
        }
        None
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    ts: Option<Cow<'a, str>>,
    #[serde(borrow)]
    trace_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    span_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    tenant_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    project: Option<Cow<'a, str>>,
    #[serde(borrow)]
    api_key_ref: Option<Cow<'a, str>>,
    #[serde(borrow)]
    provider: Option<Cow<'a, str>>,
    #[serde(borrow, alias = "request_model")]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    response_model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    logical_request_id: Option<Cow<'a, str>>,
    attempt: Option<RawCount>,
    #[serde(borrow)]
    status: Option<Cow<'a, str>>,
    streamed: Option<bool>,
    #[serde(borrow)]
    usage_source: Option<Cow<'a, str>>,
    usage: Option<LineUsage>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    batch: Option<bool>,
    latency_ms: Option<RawCount>,
    ttft_ms: Option<RawCount>,
    #[serde(borrow)]
    prompt: Option<LinePrompt<'a>>,
    #[serde(borrow)]
    finish_reason: Option<Cow<'a, str>>,
    error: Option<Text>,
    messages: Option<Vec<LineMessage>>,
    output: Option<Text>,
    stream: Option<Vec<LineCheckpoint>>,
}

#[derive(Deserialize)]
struct LineUsage {
    input_tokens: Option<RawCount>,
    output_tokens: Option<RawCount>,
    cache_read_tokens: Option<RawCount>,
    /// Cache writes at the default (5-minute) lifetime.
    cache_write_tokens: Option<RawCount>,
    /// Anthropic's 1-hour cache writes, billed at twice the 5-minute price.
    cache_write_1h_tokens: Option<RawCount>,
    reasoning_tokens: Option<RawCount>,
}

#[derive(Deserialize)]
struct LinePrompt<'a> {
    #[serde(borrow)]
    name: Option<Cow<'a, str>>,
    version: Option<Text>,
}

#[derive(Deserialize)]
struct LineMessage {
    role: Option<String>,
    content: Option<Text>,
}

#[derive(Deserialize)]
struct LineCheckpoint {
    t_ms: RawCount,
    tokens: Option<RawCount>,
    text: Option<Text>,
}

/// Text that exports write as a string, as content parts (`[{"type":"text","text":"…"}]`), as an object
/// (`{"message": "…"}` for errors), as a number (prompt versions), or as null.
pub struct Text(pub String);

impl<'de> Deserialize<'de> for Text {
    /// Strings, by far the common case (every chunk text of a stream), are taken as they are; any other
    /// shape is read as a JSON value and passed to [`value_text`].
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, SeqAccess, Visitor};
        use serde_json::Value;
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("text")
            }
            fn visit_str<E: Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.to_string()))
            }
            fn visit_string<E: Error>(self, v: String) -> Result<Text, E> {
                Ok(Text(v))
            }
            fn visit_unit<E: Error>(self) -> Result<Text, E> {
                Ok(Text(String::new()))
            }
            fn visit_none<E: Error>(self) -> Result<Text, E> {
                Ok(Text(String::new()))
            }
            fn visit_bool<E: Error>(self, v: bool) -> Result<Text, E> {
                Ok(Text(value_text(&Value::Bool(v))))
            }
            fn visit_i64<E: Error>(self, v: i64) -> Result<Text, E> {
                Ok(Text(value_text(&Value::from(v))))
            }
            fn visit_u64<E: Error>(self, v: u64) -> Result<Text, E> {
                Ok(Text(value_text(&Value::from(v))))
            }
            fn visit_f64<E: Error>(self, v: f64) -> Result<Text, E> {
                Ok(Text(value_text(&Value::from(v))))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Text, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Value>()? {
                    items.push(item);
                }
                Ok(Text(value_text(&Value::Array(items))))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Text, A::Error> {
                let mut object = serde_json::Map::new();
                while let Some((key, value)) = map.next_entry::<String, Value>()? {
                    object.insert(key, value);
                }
                Ok(Text(value_text(&Value::Object(object))))
            }
        }
        d.deserialize_any(TextVisitor)
    }
}

/// The readable text of a JSON value: strings as they are, the text of content parts joined, an
/// object's `text`/`content`/`message`, other values as JSON.
pub fn value_text(value: &serde_json::Value) -> String {
    use serde_json::Value;
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().map(value_text).collect::<Vec<_>>().join(""),
        Value::Object(map) => ["text", "content", "message"]
            .iter()
            .find_map(|k| map.get(*k))
            .map(value_text)
            .unwrap_or_else(|| value.to_string()),
        other => other.to_string(),
    }
}

fn parse_line(text: &[u8], start: Start, options: &ImportOptions) -> Result<ImportedRow, RecordError> {
    let line = start.line;
    if text[0] != b'{' {
        let found = super::scan::describe(text[0]);
        return Err(RecordError::at(line, format!("expected a JSON object (one request per line), found {found}")));
    }
    let record: Line<'_> = parse_record(text, start)?;
    let (row, convention) = normalize_line(record, options).map_err(|m| RecordError::at(line, m))?;
    Ok(ImportedRow::new(line, row, convention, false))
}

fn opt(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(Cow::into_owned).filter(|s| !s.is_empty())
}

fn normalize_line(r: Line<'_>, options: &ImportOptions) -> Result<(RequestRow, CacheConvention), String> {
    let ts = r.ts.as_deref().ok_or("no `ts` (the request's start time, RFC 3339)")?;
    let ts = parse_time(ts, options.assume_tz.as_ref()).map_err(|e| format!("ts: {e}"))?;
    let model = opt(r.model).ok_or("no `model`")?;
    let provider = provider_id(r.provider.as_deref(), &model);
    let attempt = match &r.attempt {
        None => 1,
        Some(a) => match token_count(a, "attempt")? {
            0 => return Err("attempt is 1-based (1 = the first try), got 0".into()),
            n => u32::try_from(n).map_err(|_| format!("attempt {n} is out of range"))?,
        },
    };
    let status = match r.status.as_deref() {
        None => RequestStatus::Ok,
        Some(s) => parse_status(s).ok_or_else(|| format!("status `{s}` is not one of ok, error, timeout, aborted"))?,
    };
    let convention = CacheConvention::Inclusive;
    let usage = match &r.usage {
        Some(u) => Some(line_usage(u)?.normalize(convention).map_err(|e| {
            format!("{e}; in promptctl JSONL input_tokens includes cache reads and writes (add them for Anthropic)")
        })?),
        None => None,
    };
    let usage_source = match r.usage_source.as_deref() {
        Some("provider") => UsageSource::Provider,
        Some("estimated") => UsageSource::Estimated,
        Some("missing") => UsageSource::Missing,
        Some(other) => return Err(format!("usage_source `{other}` is not one of provider, estimated, missing")),
        None if usage.is_some() => UsageSource::Provider,
        None => UsageSource::Missing,
    };
    let stream = checkpoints(r.stream.unwrap_or_default())?;
    let latency_ms = r.latency_ms.as_ref().map(|v| millis(v, "latency_ms")).transpose()?;
    let ttft_ms = r.ttft_ms.as_ref().map(|v| millis(v, "ttft_ms")).transpose()?;
    let streamed = r.streamed.unwrap_or(!stream.is_empty() || ttft_ms.is_some());
    let (prompt_name, prompt_version) = match r.prompt {
        Some(p) => (opt(p.name), p.version.map(|v| v.0).filter(|v| !v.is_empty())),
        None => (None, None),
    };
    let row = RequestRow {
        ts,
        provider,
        request_model: model,
        response_model: opt(r.response_model),
        project: opt(r.project),
        api_key_ref: opt(r.api_key_ref),
        tenant_id: opt(r.tenant_id),
        conversation_id: opt(r.conversation_id),
        trace_id: r.trace_id.map(|t| normalize::hex_id(&t)).filter(|t| !t.is_empty()),
        span_id: r.span_id.map(|s| normalize::hex_id(&s)).filter(|s| !s.is_empty()),
        logical_request_id: opt(r.logical_request_id),
        attempt,
        status,
        streamed,
        usage_source,
        usage: usage.unwrap_or_default(),
        service_tier: opt(r.service_tier),
        batch: r.batch.unwrap_or(false),
        latency_ms,
        ttft_ms,
        prompt_name,
        prompt_version,
        finish_reason: opt(r.finish_reason),
        error: r.error.map(|e| e.0).filter(|e| !e.is_empty()),
        messages: r
            .messages
            .unwrap_or_default()
            .into_iter()
            .map(|m| Message { role: m.role.unwrap_or_default(), content: m.content.map(|c| c.0).unwrap_or_default() })
            .collect(),
        // Like the OTLP reader: without an output, the streamed text is the output.
        output: r.output.map(|o| o.0).or_else(|| streamed_text(&stream)),
        stream,
    };
    Ok((row, convention))
}

fn streamed_text(stream: &[StreamCheckpoint]) -> Option<String> {
    let texts: Vec<&str> = stream.iter().filter_map(|c| c.text.as_deref()).collect();
    (!texts.is_empty()).then(|| texts.concat())
}

fn line_usage(u: &LineUsage) -> Result<ReportedUsage, String> {
    let count = |v: &Option<RawCount>, field: &str| v.as_ref().map(|v| token_count(v, field)).transpose();
    Ok(ReportedUsage {
        input: count(&u.input_tokens, "usage.input_tokens")?.unwrap_or(0),
        output: count(&u.output_tokens, "usage.output_tokens")?.unwrap_or(0),
        cache_read: count(&u.cache_read_tokens, "usage.cache_read_tokens")?.unwrap_or(0),
        cache_write_5m: count(&u.cache_write_tokens, "usage.cache_write_tokens")?.unwrap_or(0),
        cache_write_1h: count(&u.cache_write_1h_tokens, "usage.cache_write_1h_tokens")?.unwrap_or(0),
        reasoning: count(&u.reasoning_tokens, "usage.reasoning_tokens")?.unwrap_or(0),
    })
}

/// A day in ms: far beyond any request timeout.
const DAY_MS: i128 = 86_400_000;

/// A duration in milliseconds: whole and not negative. A day is far beyond any request timeout.
fn millis(raw: &RawCount, field: &str) -> Result<u64, String> {
    let value = match raw {
        RawCount::Int(v) => *v,
        RawCount::Float(f) if f.is_finite() => f.round() as i128,
        RawCount::Float(f) => return Err(format!("{field} is {f}")),
        RawCount::Text(t) => t.trim().parse().map_err(|_| format!("{field} is \"{t}\", not a number"))?,
    };
    if value < 0 {
        return Err(format!("{field} is negative ({value})"));
    }
    if value > DAY_MS {
        return Err(format!("{field} is {value} ms, more than a day"));
    }
    Ok(value as u64)
}

fn checkpoints(raw: Vec<LineCheckpoint>) -> Result<Vec<StreamCheckpoint>, String> {
    let mut out: Vec<StreamCheckpoint> = Vec::with_capacity(raw.len());
    // Field names are formatted only for a message: a stream has dozens of checkpoints, and building two
    // names for each was most of the parser's allocations.
    for (i, c) in raw.into_iter().enumerate() {
        let t_ms = match c.t_ms {
            RawCount::Int(v) if (0..=DAY_MS).contains(&v) => v as u64,
            ref other => millis(other, &format!("stream[{i}].t_ms"))?,
        };
        if let Some(before) = out.last().filter(|b| b.t_ms > t_ms) {
            return Err(format!(
                "stream[{i}].t_ms ({t_ms}) is earlier than the checkpoint before it ({})",
                before.t_ms
            ));
        }
        let tokens = match &c.tokens {
            Some(RawCount::Int(v)) if (0..=i128::from(u32::MAX).min(MAX_TOKENS as i128)).contains(v) => *v as u32,
            Some(t) => {
                let n = token_count(t, &format!("stream[{i}].tokens"))?;
                u32::try_from(n).map_err(|_| format!("stream[{i}].tokens is out of range"))?
            }
            None => 1,
        };
        out.push(StreamCheckpoint { t_ms, tokens, text: c.text.map(|t| t.0) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::model::Usage;

    #[test]
    fn text_reads_every_shape_as_its_json_value_would() {
        for json in [
            r#""plain""#,
            r#""esc\"aped \u00e9""#,
            "null",
            "true",
            "42",
            "-7",
            "1.0",
            "2.5e3",
            r#"[{"type":"text","text":"a"},{"type":"text","text":"b"}]"#,
            r#"{"message":"boom","code":1}"#,
            r#"{"z":1,"a":[1,2]}"#,
            "[]",
        ] {
            let fast: Text = serde_json::from_str(json).unwrap();
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(fast.0, value_text(&value), "{json}");
        }
    }

    fn read(text: &str) -> Vec<Record> {
        JsonlReader::new(text.as_bytes(), ImportOptions::default()).collect()
    }

    fn row(record: &Record) -> &ImportedRow {
        match record {
            Record::Row(r) => r,
            other => panic!("expected a row, got {other:?}"),
        }
    }

    #[test]
    fn reads_the_documented_example() {
        let text = r#"{"ts":"2026-10-01T12:00:00Z","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"00f067aa0ba902b7","conversation_id":"c-1","tenant_id":"acme","project":"proj_support","provider":"openai","model":"gpt-4o-mini","response_model":"gpt-4o-mini-2024-07-18","attempt":1,"status":"ok","streamed":true,"usage_source":"provider","usage":{"input_tokens":812,"output_tokens":120,"cache_read_tokens":512,"cache_write_tokens":0,"reasoning_tokens":0},"service_tier":"default","batch":false,"latency_ms":1830,"ttft_ms":420,"prompt":{"name":"support-reply","version":"3f2a9c1b7d04"},"messages":[{"role":"system","content":"Be nice"},{"role":"user","content":[{"type":"text","text":"Hi"}]}],"output":"Hello","stream":[{"t_ms":420,"tokens":1},{"t_ms":455,"tokens":3}],"tool_calls":[]}"#;
        let records = read(text);
        let r = row(&records[0]);
        assert_eq!(r.key_text(), "span:4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7");
        assert_eq!(r.row.usage, Usage::from_inclusive(812, 512, 0, 120, 0));
        assert_eq!(r.row.usage.input_uncached, 300);
        assert_eq!(r.row.prompt_version.as_deref(), Some("3f2a9c1b7d04"));
        assert_eq!(r.row.messages[1].content, "Hi");
        assert_eq!(r.row.stream.len(), 2);
        assert_eq!(r.row.ttft_ms, Some(420));
    }

    #[test]
    fn bad_lines_are_reported_with_their_line_and_reading_continues() {
        let text = "[1,2]\n\n{\"ts\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\",\"usage\":{\"input_tokens\":-3}}\n{\"ts\": \n{\"ts\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\"}\n";
        let records = read(text);
        assert_eq!(records.len(), 4);
        let errors: Vec<String> = records
            .iter()
            .filter_map(|r| match r {
                Record::Error(e) => Some(e.to_string()),
                _ => None,
            })
            .collect();
        assert!(errors[0].starts_with("line 1: expected a JSON object"), "{errors:?}");
        assert!(errors[1].starts_with("line 3: usage.input_tokens is negative (-3)"), "{errors:?}");
        assert!(errors[2].starts_with("line 4: "), "{errors:?}");
        let last = row(&records[3]);
        assert_eq!(last.line, 5);
        assert_eq!(last.row.usage_source, UsageSource::Missing);
        assert!(last.key_text().starts_with("sha:"));
    }

    #[test]
    fn a_line_that_is_not_utf8_is_reported_with_its_column_and_reading_continues() {
        let text = b"{\"ts\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\",\"tenant_id\":\"a\xffb\"}\n{\"ts\":\"2026-10-01T12:00:00Z\",\"model\":\"gpt-4o\"}\n";
        let records: Vec<Record> = JsonlReader::new(&text[..], ImportOptions::default()).collect();
        assert!(
            matches!(&records[0], Record::Error(e) if e.to_string() == "line 1: byte 0xFF at column 61 is not UTF-8; JSON exports are UTF-8 (convert the file, e.g. with iconv)"),
            "{records:?}"
        );
        assert_eq!(row(&records[1]).line, 2);
    }

    #[test]
    fn columns_count_from_the_start_of_an_indented_line() {
        let text = "   {\"ts\":\"2026-10-01T12:00:00Z\",\"model\":7}\n";
        let records = read(text);
        assert!(
            matches!(&records[0], Record::Error(e) if e.to_string() == "line 1: invalid type: integer `7`, expected a string (column 41)"),
            "{records:?}"
        );
    }

    #[test]
    fn naive_times_need_a_zone() {
        let text = r#"{"ts":"2026-10-01 12:00:00","model":"gpt-4o"}"#;
        let records = read(text);
        assert!(matches!(&records[0], Record::Error(e) if e.message.contains("--assume-tz")));
        let options = ImportOptions { assume_tz: Some(normalize::parse_zone("UTC").unwrap()) };
        let records: Vec<Record> = JsonlReader::new(text.as_bytes(), options).collect();
        assert_eq!(row(&records[0]).row.ts.to_string(), "2026-10-01T12:00:00Z");
    }

    #[test]
    fn cached_tokens_above_the_inclusive_input_are_refused_with_a_hint() {
        let text = r#"{"ts":"2026-10-01T12:00:00Z","model":"claude-sonnet-4-5","usage":{"input_tokens":20,"cache_read_tokens":900,"output_tokens":5}}"#;
        let records = read(text);
        assert!(matches!(&records[0], Record::Error(e) if e.message.contains("add them for Anthropic")));
    }

    #[test]
    fn the_same_content_hashes_alike_and_any_change_differs() {
        let a = r#"{"ts":"2026-10-01T12:00:00Z","model":"gpt-4o","usage":{"input_tokens":10,"output_tokens":2}}"#;
        let b = r#"{"model":"gpt-4o","usage":{"output_tokens":2,"input_tokens":10},"ts":"2026-10-01T14:00:00+02:00"}"#;
        let c = r#"{"ts":"2026-10-01T12:00:00Z","model":"gpt-4o","usage":{"input_tokens":10,"output_tokens":3}}"#;
        let hashes: Vec<_> = [a, b, c].iter().map(|t| row(&read(t)[0]).content_hash).collect();
        assert_eq!(hashes[0], hashes[1]);
        assert_ne!(hashes[0], hashes[2]);
    }
}
