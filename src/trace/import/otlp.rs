//! OTLP/JSON trace exports (`ExportTraceServiceRequest`: `resourceSpans[].scopeSpans[].spans[]`) with
//! the OpenTelemetry GenAI semantic conventions (old and new attribute names), OpenInference's
//! `llm.*` attributes, and span events as stream checkpoints.
//!
//! The document is walked with [`Scanner`]; each span is captured and parsed on its own, so memory
//! stays flat however large the export.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::BufRead;
use std::sync::Arc;

use serde::Deserialize;

use super::attrs::{AttrValue, Attrs, Field, KeyValue};
use super::driver::{Driver, Walker};
use super::normalize::{
    CacheConvention, RawCount, ReportedUsage, from_unix_nanos, hex_id, provider_id, status_from_error_type, token_count,
};
use super::scan::{ScanError, Scanner};
use super::{ImportedRow, Record, RecordError, SkipReason, Start, json_error};
use crate::trace::model::{Message, RequestRow, RequestStatus, StreamCheckpoint, UsageSource};

/// Attribute names, newest convention first.
mod names {
    use super::super::attrs::{Field, FieldTable};
    pub const PROVIDER: Field =
        Field { id: 0, names: &["gen_ai.provider.name", "gen_ai.system", "llm.provider", "llm.system"] };
    pub const REQUEST_MODEL: Field =
        Field { id: 1, names: &["gen_ai.request.model", "llm.request.model", "llm.model_name", "ai.model.id"] };
    pub const RESPONSE_MODEL: Field = Field { id: 2, names: &["gen_ai.response.model", "llm.response.model"] };
    pub const OPERATION: Field = Field { id: 3, names: &["gen_ai.operation.name"] };
    pub const OPENINFERENCE_KIND: Field = Field { id: 4, names: &["openinference.span.kind"] };
    pub const INPUT: Field =
        Field { id: 5, names: &["gen_ai.usage.input_tokens", "gen_ai.usage.prompt_tokens", "llm.token_count.prompt"] };
    pub const OUTPUT: Field = Field {
        id: 6,
        names: &["gen_ai.usage.output_tokens", "gen_ai.usage.completion_tokens", "llm.token_count.completion"],
    };
    pub const CACHE_READ: Field = Field {
        id: 7,
        names: &[
            "gen_ai.usage.cache_read.input_tokens",
            "gen_ai.usage.cache_read_input_tokens",
            "gen_ai.usage.input_tokens.cached",
            "llm.token_count.prompt_details.cache_read",
            "llm.token_count.prompt_details.cache_input",
        ],
    };
    pub const CACHE_WRITE: Field = Field {
        id: 8,
        names: &[
            "gen_ai.usage.cache_creation.input_tokens",
            "gen_ai.usage.cache_creation_input_tokens",
            "gen_ai.usage.input_tokens.cache_write",
            "llm.token_count.prompt_details.cache_write",
        ],
    };
    pub const REASONING: Field = Field {
        id: 9,
        names: &[
            "gen_ai.usage.reasoning.output_tokens",
            "gen_ai.usage.reasoning_tokens",
            "gen_ai.usage.output_tokens.reasoning",
            "llm.token_count.completion_details.reasoning",
        ],
    };
    pub const CONVERSATION: Field =
        Field { id: 10, names: &["gen_ai.conversation.id", "session.id", "langfuse.session.id"] };
    pub const TENANT: Field = Field { id: 11, names: &["tenant.id", "tenant_id", "promptctl.tenant_id"] };
    pub const PROJECT: Field =
        Field { id: 12, names: &["promptctl.project", "gen_ai.openai.project", "openai.project"] };
    pub const API_KEY: Field = Field { id: 13, names: &["promptctl.api_key_ref"] };
    pub const PROMPT_NAME: Field =
        Field { id: 14, names: &["gen_ai.prompt.name", "promptctl.prompt.name", "langfuse.prompt.name"] };
    pub const PROMPT_VERSION: Field = Field {
        id: 15,
        names: &[
            "gen_ai.prompt.version",
            "promptctl.prompt.version",
            "langfuse.prompt.version",
            "llm.prompt_template.version",
        ],
    };
    pub const SERVICE_TIER: Field = Field {
        id: 16,
        names: &[
            "openai.response.service_tier",
            "gen_ai.openai.response.service_tier",
            "gen_ai.openai.request.service_tier",
            "openai.request.service_tier",
            "gen_ai.request.service_tier",
            "anthropic.service_tier",
        ],
    };
    pub const BATCH: Field = Field { id: 17, names: &["promptctl.batch"] };
    pub const FINISH: Field = Field {
        id: 18,
        names: &["gen_ai.response.finish_reasons", "gen_ai.response.finish_reason", "llm.finish_reason"],
    };
    pub const STREAMING: Field =
        Field { id: 19, names: &["gen_ai.request.stream", "gen_ai.request.streaming", "llm.is_streaming"] };
    pub const ERROR_TYPE: Field = Field { id: 20, names: &["error.type"] };
    pub const ATTEMPT: Field = Field { id: 21, names: &["promptctl.attempt", "gen_ai.request.attempt"] };
    pub const RESEND_COUNT: Field = Field { id: 22, names: &["http.request.resend_count"] };
    pub const LOGICAL: Field = Field { id: 23, names: &["promptctl.logical_request_id"] };
    pub const USAGE_SOURCE: Field = Field { id: 24, names: &["promptctl.usage_source"] };
    pub const STATUS: Field = Field { id: 25, names: &["promptctl.status"] };
    pub const TTFT_SECONDS: Field =
        Field { id: 26, names: &["gen_ai.response.time_to_first_chunk", "gen_ai.server.time_to_first_token"] };
    pub const TTFT_MS: Field = Field { id: 27, names: &["ai.response.msToFirstChunk", "promptctl.ttft_ms"] };
    pub const SYSTEM_INSTRUCTIONS: Field = Field { id: 28, names: &["gen_ai.system_instructions"] };
    pub const INPUT_MESSAGES: Field = Field { id: 29, names: &["gen_ai.input.messages"] };
    pub const OUTPUT_MESSAGES: Field = Field { id: 30, names: &["gen_ai.output.messages"] };
    pub const CHUNK_TOKENS: Field =
        Field { id: 0, names: &["gen_ai.stream.tokens", "tokens", "gen_ai.usage.output_tokens"] };
    pub const CHUNK_TEXT: Field =
        Field { id: 1, names: &["gen_ai.stream.text", "text", "gen_ai.content.chunk", "content"] };

    /// Every span field, for the attribute index.
    pub static SPAN: FieldTable = FieldTable::new(&[
        &PROVIDER,
        &REQUEST_MODEL,
        &RESPONSE_MODEL,
        &OPERATION,
        &OPENINFERENCE_KIND,
        &INPUT,
        &OUTPUT,
        &CACHE_READ,
        &CACHE_WRITE,
        &REASONING,
        &CONVERSATION,
        &TENANT,
        &PROJECT,
        &API_KEY,
        &PROMPT_NAME,
        &PROMPT_VERSION,
        &SERVICE_TIER,
        &BATCH,
        &FINISH,
        &STREAMING,
        &ERROR_TYPE,
        &ATTEMPT,
        &RESEND_COUNT,
        &LOGICAL,
        &USAGE_SOURCE,
        &STATUS,
        &TTFT_SECONDS,
        &TTFT_MS,
        &SYSTEM_INSTRUCTIONS,
        &INPUT_MESSAGES,
        &OUTPUT_MESSAGES,
    ]);

    /// The fields of a stream checkpoint event.
    pub static EVENT: FieldTable = FieldTable::new(&[&CHUNK_TOKENS, &CHUNK_TEXT]);
}

/// Span events that are stream checkpoints, and events that mark the first token only.
fn is_checkpoint_event(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("chunk") && !n.contains("first") || n.contains("checkpoint")
}

fn is_first_token_event(name: &str) -> bool {
    matches!(name, "ai.stream.firstChunk" | "First Token Stream Event" | "gen_ai.first_token")
}

/// Operations that are not a model generating text for a prompt.
const NOT_MODEL_CALLS: &[&str] = &["embeddings", "execute_tool", "invoke_agent", "create_agent", "retrieval"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Frame {
    /// Between top-level documents.
    Top,
    /// Inside a top-level array of documents.
    DocArray,
    Doc,
    ResourceSpansList,
    ResourceSpans,
    ScopeSpansList,
    ScopeSpans,
    SpanList,
}

/// The records of an OTLP/JSON export, one document or one document per line.
pub fn reader<R: BufRead>(reader: R) -> Driver<R, OtlpWalker<Record>> {
    Driver::new(reader, OtlpWalker::default())
}

/// The spans of an OTLP/JSON export captured but not parsed (with the records the walk itself yields:
/// errors), so that other threads can parse them ([`Walked::into_record`]).
pub fn captured<R: BufRead>(reader: R) -> Driver<R, OtlpWalker<Walked>> {
    Driver::new(reader, OtlpWalker::default())
}

/// A record, or a span still to be parsed into one.
pub enum Walked {
    Record(Record),
    Span { start: Start, bytes: Vec<u8>, resource: Arc<[KeyValue<'static>]> },
}

impl Walked {
    pub fn into_record(self) -> Record {
        match self {
            Walked::Record(record) => record,
            Walked::Span { start, bytes, resource } => span_record(&bytes, start, &resource),
        }
    }
}

impl From<Record> for Walked {
    fn from(record: Record) -> Walked {
        Walked::Record(record)
    }
}

/// What the walker makes of a captured span: a record at once, or the span for later.
pub trait FromSpan: From<Record> {
    /// `bytes` is the walker's capture buffer, which it reuses when left in place.
    fn from_span(start: Start, bytes: &mut Vec<u8>, resource: &Arc<[KeyValue<'static>]>) -> Self;
}

impl FromSpan for Record {
    fn from_span(start: Start, bytes: &mut Vec<u8>, resource: &Arc<[KeyValue<'static>]>) -> Record {
        span_record(bytes, start, resource)
    }
}

impl FromSpan for Walked {
    fn from_span(start: Start, bytes: &mut Vec<u8>, resource: &Arc<[KeyValue<'static>]>) -> Walked {
        Walked::Span { start, bytes: std::mem::take(bytes), resource: resource.clone() }
    }
}

/// Walks `resourceSpans[].scopeSpans[].spans[]`, skipping everything else unparsed.
pub struct OtlpWalker<I> {
    stack: Vec<Frame>,
    key: Vec<u8>,
    buf: Vec<u8>,
    out: VecDeque<I>,
    /// The current resource's attributes.
    resource: Arc<[KeyValue<'static>]>,
    resource_seen: bool,
    /// Spans met before their resource (which JSON's key order allows): held until it is known.
    pending: Vec<(Start, Vec<u8>)>,
    doc_line: u64,
    doc_has_spans_key: bool,
}

impl<I> Default for OtlpWalker<I> {
    fn default() -> Self {
        OtlpWalker {
            stack: vec![Frame::Top],
            key: Vec::new(),
            buf: Vec::new(),
            out: VecDeque::new(),
            resource: Arc::new([]),
            resource_seen: false,
            pending: Vec::new(),
            doc_line: 1,
            doc_has_spans_key: false,
        }
    }
}

impl<I: FromSpan> Walker for OtlpWalker<I> {
    type Item = I;

    fn output(&mut self) -> &mut VecDeque<I> {
        &mut self.out
    }

    fn reset(&mut self) {
        self.stack.clear();
        self.stack.push(Frame::Top);
        self.pending.clear();
    }

    fn step<B: BufRead>(&mut self, scan: &mut Scanner<B>) -> Result<bool, ScanError> {
        let frame = *self.stack.last().unwrap_or(&Frame::Top);
        match frame {
            Frame::Top => match scan.peek()? {
                None => return Ok(false),
                Some(b'{') => {
                    scan.bump();
                    self.start_doc(scan.line());
                }
                Some(b'[') => {
                    scan.bump();
                    self.stack.push(Frame::DocArray);
                }
                Some(b) => return Err(scan.unexpected("an OTLP/JSON object (`{\"resourceSpans\": …}`)", b)),
            },
            Frame::DocArray => {
                if scan.next_element()? {
                    scan.expect(b'{', "an OTLP/JSON object")?;
                    self.start_doc(scan.line());
                } else {
                    self.stack.pop();
                }
            }
            Frame::Doc => {
                if !scan.next_key(&mut self.key)? {
                    self.stack.pop();
                    if !self.doc_has_spans_key {
                        self.out.push_back(
                            Record::Error(RecordError::at(
                                self.doc_line,
                                "a JSON object without `resourceSpans` is not an OTLP trace export",
                            ))
                            .into(),
                        );
                    }
                } else if self.key == b"resourceSpans" || self.key == b"resource_spans" {
                    self.doc_has_spans_key = true;
                    self.enter_list(scan, Frame::ResourceSpansList)?;
                } else {
                    scan.skip()?;
                }
            }
            Frame::ResourceSpansList => {
                if scan.next_element()? {
                    scan.expect(b'{', "a ResourceSpans object")?;
                    self.resource = Arc::new([]);
                    self.resource_seen = false;
                    self.pending.clear();
                    self.stack.push(Frame::ResourceSpans);
                } else {
                    self.stack.pop();
                }
            }
            Frame::ResourceSpans => {
                if !scan.next_key(&mut self.key)? {
                    self.stack.pop();
                    self.flush_pending();
                } else if self.key == b"resource" {
                    self.read_resource(scan)?;
                } else if self.key == b"scopeSpans" || self.key == b"scope_spans" {
                    self.enter_list(scan, Frame::ScopeSpansList)?;
                } else {
                    scan.skip()?;
                }
            }
            Frame::ScopeSpansList => {
                if scan.next_element()? {
                    scan.expect(b'{', "a ScopeSpans object")?;
                    self.stack.push(Frame::ScopeSpans);
                } else {
                    self.stack.pop();
                }
            }
            Frame::ScopeSpans => {
                if !scan.next_key(&mut self.key)? {
                    self.stack.pop();
                } else if self.key == b"spans" {
                    self.enter_list(scan, Frame::SpanList)?;
                } else {
                    scan.skip()?;
                }
            }
            Frame::SpanList => {
                if scan.next_element()? {
                    let start = Start { line: scan.line(), column: scan.column() };
                    self.buf.clear();
                    scan.capture(&mut self.buf)?;
                    if self.resource_seen {
                        let item = I::from_span(start, &mut self.buf, &self.resource);
                        self.out.push_back(item);
                    } else {
                        self.pending.push((start, std::mem::take(&mut self.buf)));
                    }
                } else {
                    self.stack.pop();
                }
            }
        }
        Ok(true)
    }
}

impl<I: FromSpan> OtlpWalker<I> {
    fn start_doc(&mut self, line: u64) {
        self.doc_line = line;
        self.doc_has_spans_key = false;
        self.stack.push(Frame::Doc);
    }

    /// Positioned at a value that must be an array: enters it, or skips a `null`.
    fn enter_list<B: BufRead>(&mut self, scan: &mut Scanner<B>, frame: Frame) -> Result<(), ScanError> {
        match scan.peek()? {
            Some(b'[') => {
                scan.bump();
                self.stack.push(frame);
                Ok(())
            }
            Some(b'n') => scan.skip(),
            Some(b) => Err(scan.unexpected("an array", b)),
            None => Err(ScanError::Eof { line: scan.line() }),
        }
    }

    fn read_resource<B: BufRead>(&mut self, scan: &mut Scanner<B>) -> Result<(), ScanError> {
        #[derive(Deserialize)]
        struct Resource<'a> {
            #[serde(borrow, default)]
            attributes: Vec<KeyValue<'a>>,
        }
        scan.peek()?;
        let start = Start { line: scan.line(), column: scan.column() };
        self.buf.clear();
        scan.capture(&mut self.buf)?;
        match serde_json::from_slice::<Option<Resource<'_>>>(&self.buf) {
            Ok(resource) => {
                self.resource = resource
                    .map(|r| r.attributes)
                    .unwrap_or_default()
                    .into_iter()
                    .map(|kv| KeyValue { key: Cow::Owned(kv.key.into_owned()), value: kv.value.into_owned() })
                    .collect();
            }
            Err(e) => self.out.push_back(Record::Error(json_error(&e, start)).into()),
        }
        self.resource_seen = true;
        self.flush_pending();
        Ok(())
    }

    fn flush_pending(&mut self) {
        for (start, mut bytes) in std::mem::take(&mut self.pending) {
            let item = I::from_span(start, &mut bytes, &self.resource);
            self.out.push_back(item);
        }
    }

    #[cfg(test)]
    pub fn capture_capacity(&self) -> usize {
        self.buf.capacity()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpan<'a> {
    #[serde(borrow, default, alias = "trace_id")]
    trace_id: Cow<'a, str>,
    #[serde(borrow, default, alias = "span_id")]
    span_id: Cow<'a, str>,
    #[serde(borrow, default, alias = "parent_span_id")]
    parent_span_id: Cow<'a, str>,
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(default, alias = "start_time_unix_nano")]
    start_time_unix_nano: Option<RawCount>,
    #[serde(default, alias = "end_time_unix_nano")]
    end_time_unix_nano: Option<RawCount>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
    #[serde(borrow, default)]
    events: Vec<RawEvent<'a>>,
    #[serde(borrow, default)]
    status: Option<RawStatus<'a>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawEvent<'a> {
    #[serde(default, alias = "time_unix_nano")]
    time_unix_nano: Option<RawCount>,
    #[serde(borrow, default)]
    name: Cow<'a, str>,
    #[serde(borrow, default)]
    attributes: Vec<KeyValue<'a>>,
}

#[derive(Deserialize)]
struct RawStatus<'a> {
    #[serde(default)]
    code: Option<RawCount>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

/// One captured span → a record.
fn span_record(bytes: &[u8], start: Start, resource: &[KeyValue<'static>]) -> Record {
    let line = start.line;
    let span: RawSpan<'_> = match super::parse_record(bytes, start) {
        Ok(span) => span,
        Err(e) => return Record::Error(e),
    };
    match normalize_span(&span, resource) {
        Ok(Some((row, convention, inferred))) => {
            Record::Row(Box::new(ImportedRow::new(line, row, convention, inferred)))
        }
        Ok(None) => Record::Skipped { line, reason: skip_reason(&span, resource) },
        Err(message) => {
            let name = if span.name.is_empty() { String::new() } else { format!("span `{}`: ", span.name) };
            Record::Error(RecordError::at(line, format!("{name}{message}")))
        }
    }
}

fn skip_reason(span: &RawSpan<'_>, resource: &[KeyValue<'static>]) -> SkipReason {
    let attrs = Attrs::new(&names::SPAN, &span.attributes, resource);
    if attrs.get(&names::OPERATION).is_some() || attrs.get(&names::OPENINFERENCE_KIND).is_some() {
        SkipReason::NotAModelCall
    } else {
        SkipReason::NoGenAiAttributes
    }
}

fn nanos(raw: &Option<RawCount>, field: &str) -> Result<Option<u64>, String> {
    let Some(raw) = raw else { return Ok(None) };
    let value: i128 = match raw {
        RawCount::Int(v) => *v,
        RawCount::Float(f) => *f as i128,
        RawCount::Text(t) => t.trim().parse().map_err(|_| format!("{field} is \"{t}\", not nanoseconds"))?,
    };
    if value <= 0 {
        return Ok(None);
    }
    u64::try_from(value).map(Some).map_err(|_| format!("{field} {value} is out of range"))
}

/// The request row of a span, `None` for spans that are not model calls.
fn normalize_span(
    span: &RawSpan<'_>,
    resource: &[KeyValue<'static>],
) -> Result<Option<(RequestRow, CacheConvention, bool)>, String> {
    let attrs = Attrs::new(&names::SPAN, &span.attributes, resource);
    let model = attrs.text(&names::REQUEST_MODEL).or_else(|| attrs.text(&names::RESPONSE_MODEL));
    let has_usage = attrs.get(&names::INPUT).is_some() || attrs.get(&names::OUTPUT).is_some();
    let has_provider = attrs.get(&names::PROVIDER).is_some();
    if model.is_none() && !has_usage && !has_provider {
        return Ok(None);
    }
    if let Some(op) = attrs.text(&names::OPERATION)
        && NOT_MODEL_CALLS.contains(&op.as_str())
    {
        return Ok(None);
    }
    if let Some(kind) = attrs.text(&names::OPENINFERENCE_KIND)
        && !kind.eq_ignore_ascii_case("llm")
    {
        return Ok(None);
    }
    let Some(model) = model else {
        return Err("a GenAI span without a model (gen_ai.request.model)".into());
    };
    let start = nanos(&span.start_time_unix_nano, "startTimeUnixNano")?.ok_or("no startTimeUnixNano")?;
    let end = nanos(&span.end_time_unix_nano, "endTimeUnixNano")?;
    let ts = from_unix_nanos(start)?;
    let latency_ms = match end {
        Some(end) if end >= start => Some((end - start) / 1_000_000),
        Some(_) => return Err("endTimeUnixNano is before startTimeUnixNano".into()),
        None => None,
    };
    let provider = provider_id(attrs.text(&names::PROVIDER).as_deref(), &model);
    let (usage, usage_source, convention, inferred) = span_usage(&attrs)?;
    let (stream, first_token_ms) = checkpoints(span, start)?;
    let ttft_ms = ttft(&attrs, first_token_ms, &stream);
    let streamed = attrs.bool(&names::STREAMING).unwrap_or(false) || !stream.is_empty() || ttft_ms.is_some();
    let finish_reason = attrs.text(&names::FINISH);
    let error_type = attrs.text(&names::ERROR_TYPE);
    let status = span_status(&attrs, span.status.as_ref(), error_type.as_deref())?;
    let trace_id = Some(hex_id(&span.trace_id)).filter(|t| !t.is_empty());
    let span_id = Some(hex_id(&span.span_id)).filter(|s| !s.is_empty());
    let (attempt, logical_request_id) = attempt(&attrs, trace_id.as_deref(), &span.parent_span_id)?;
    let error = match (&error_type, span.status.as_ref().and_then(|s| s.message.as_deref())) {
        (_, Some(m)) if !m.is_empty() && status != RequestStatus::Ok => Some(m.to_string()),
        (Some(t), _) => Some(t.clone()),
        _ => None,
    };
    let service_tier = attrs.text(&names::SERVICE_TIER);
    let batch = attrs.bool(&names::BATCH).unwrap_or(false) || service_tier.as_deref() == Some("batch");
    let row = RequestRow {
        ts,
        provider,
        response_model: attrs.text(&names::RESPONSE_MODEL),
        request_model: model,
        project: attrs.text(&names::PROJECT),
        api_key_ref: attrs.text(&names::API_KEY),
        tenant_id: attrs.text(&names::TENANT),
        conversation_id: attrs.text(&names::CONVERSATION),
        trace_id,
        span_id,
        logical_request_id,
        attempt,
        status,
        streamed,
        usage_source,
        usage,
        service_tier,
        batch,
        latency_ms,
        ttft_ms,
        prompt_name: attrs.text(&names::PROMPT_NAME),
        prompt_version: attrs.text(&names::PROMPT_VERSION),
        finish_reason,
        error,
        messages: input_messages(&attrs),
        output: output_text(&attrs, &stream),
        stream,
    };
    Ok(Some((row, convention, inferred)))
}

/// Usage per the GenAI conventions: `gen_ai.usage.input_tokens` includes cache reads and writes for every
/// provider (the Anthropic conventions require instrumentations to add them). Some instrumentations
/// report Anthropic's own uncached `input_tokens` instead; when the cached counts alone exceed the input
/// count that is certain, and the counts are read as additive.
fn span_usage(
    attrs: &Attrs<'_, '_>,
) -> Result<(crate::trace::model::Usage, UsageSource, CacheConvention, bool), String> {
    let count = |field: &Field| -> Result<Option<u64>, String> {
        match attrs.count(field) {
            Some(raw) => token_count(&raw, attrs.which(field).unwrap_or(field.names[0])).map(Some),
            None => Ok(None),
        }
    };
    let input = count(&names::INPUT)?;
    let output = count(&names::OUTPUT)?;
    let reported = ReportedUsage {
        input: input.unwrap_or(0),
        output: output.unwrap_or(0),
        cache_read: count(&names::CACHE_READ)?.unwrap_or(0),
        cache_write_5m: count(&names::CACHE_WRITE)?.unwrap_or(0),
        cache_write_1h: 0,
        reasoning: count(&names::REASONING)?.unwrap_or(0),
    };
    let declared = attrs.text(&names::USAGE_SOURCE);
    let source = match declared.as_deref() {
        Some("estimated") => UsageSource::Estimated,
        Some("missing") => UsageSource::Missing,
        _ if input.is_some() || output.is_some() => UsageSource::Provider,
        _ => UsageSource::Missing,
    };
    let cached = reported.cache_read + reported.cache_write_5m;
    let (convention, inferred) =
        if cached > reported.input { (CacheConvention::Additive, true) } else { (CacheConvention::Inclusive, false) };
    Ok((reported.normalize(convention)?, source, convention, inferred))
}

/// Checkpoints from chunk events, in time order, and the time of an explicit first-token event.
fn checkpoints(span: &RawSpan<'_>, start: u64) -> Result<(Vec<StreamCheckpoint>, Option<u64>), String> {
    let mut stream = Vec::new();
    let mut first_token = None;
    for event in &span.events {
        let chunk = is_checkpoint_event(&event.name);
        let first = is_first_token_event(&event.name);
        if !chunk && !first {
            continue;
        }
        let Some(at) = nanos(&event.time_unix_nano, "event timeUnixNano")? else { continue };
        let t_ms = at.saturating_sub(start) / 1_000_000;
        if first {
            first_token = Some(first_token.map_or(t_ms, |f: u64| f.min(t_ms)));
            continue;
        }
        let attrs = Attrs::new(&names::EVENT, &event.attributes, &[]);
        let tokens = match attrs.count(&names::CHUNK_TOKENS) {
            Some(raw) => {
                let n = token_count(&raw, "chunk event tokens")?;
                u32::try_from(n).map_err(|_| "chunk event tokens out of range".to_string())?
            }
            None => 1,
        };
        stream.push(StreamCheckpoint { t_ms, tokens, text: attrs.text(&names::CHUNK_TEXT) });
    }
    // Exporters keep events in recording order, but nothing requires it.
    stream.sort_by_key(|c| c.t_ms);
    Ok((stream, first_token))
}

fn ttft(attrs: &Attrs<'_, '_>, first_token_ms: Option<u64>, stream: &[StreamCheckpoint]) -> Option<u64> {
    if let Some(s) = attrs.f64(&names::TTFT_SECONDS).filter(|s| s.is_finite() && *s >= 0.0) {
        return Some((s * 1000.0).round() as u64);
    }
    if let Some(ms) = attrs.f64(&names::TTFT_MS).filter(|s| s.is_finite() && *s >= 0.0) {
        return Some(ms.round() as u64);
    }
    first_token_ms.or_else(|| stream.first().map(|c| c.t_ms))
}

fn span_status(
    attrs: &Attrs<'_, '_>,
    status: Option<&RawStatus<'_>>,
    error_type: Option<&str>,
) -> Result<RequestStatus, String> {
    if let Some(declared) = attrs.text(&names::STATUS) {
        return super::normalize::parse_status(&declared)
            .ok_or_else(|| format!("promptctl.status `{declared}` is not one of ok, error, timeout, aborted"));
    }
    let code_is_error = match status.and_then(|s| s.code.as_ref()) {
        Some(RawCount::Int(2)) => true,
        Some(RawCount::Text(t)) => {
            t.eq_ignore_ascii_case("STATUS_CODE_ERROR") || t == "2" || t.eq_ignore_ascii_case("error")
        }
        _ => false,
    };
    Ok(match error_type {
        Some(t) => status_from_error_type(t),
        None if code_is_error => RequestStatus::Error,
        None => RequestStatus::Ok,
    })
}

/// The attempt number and the logical request it belongs to. Retries are recorded by OpenTelemetry's
/// `http.request.resend_count` (0 on the first try) or by promptctl's own attributes; retried attempts
/// are sibling spans under one parent, which then names the logical request.
fn attempt(attrs: &Attrs<'_, '_>, trace_id: Option<&str>, parent: &str) -> Result<(u32, Option<String>), String> {
    let explicit = match attrs.count(&names::ATTEMPT) {
        Some(raw) => Some(token_count(&raw, "promptctl.attempt")?),
        None => None,
    };
    let resend = match attrs.count(&names::RESEND_COUNT) {
        Some(raw) => Some(token_count(&raw, "http.request.resend_count")?),
        None => None,
    };
    let attempt = match (explicit, resend) {
        (Some(0), _) => return Err("promptctl.attempt is 1-based (1 = the first try), got 0".into()),
        (Some(n), _) => n,
        (None, Some(r)) => r + 1,
        (None, None) => 1,
    };
    let attempt = u32::try_from(attempt).map_err(|_| format!("attempt {attempt} is out of range"))?;
    let logical = attrs.text(&names::LOGICAL).or_else(|| {
        (resend.is_some() && !parent.is_empty()).then(|| format!("{}/{}", trace_id.unwrap_or(""), hex_id(parent)))
    });
    Ok((attempt, logical))
}

/// The served messages: `gen_ai.system_instructions` + `gen_ai.input.messages` (JSON), or the older
/// indexed `gen_ai.prompt.N.*`, or OpenInference's `llm.input_messages.N.message.*`.
fn input_messages(attrs: &Attrs<'_, '_>) -> Vec<Message> {
    let mut messages = Vec::new();
    if let Some(system) = attrs.text(&names::SYSTEM_INSTRUCTIONS) {
        let content = parse_json_messages(&system).map_or(system, |parts| join_parts(&parts));
        messages.push(Message { role: "system".into(), content });
    }
    if let Some(AttrValue::Str(json)) = attrs.get(&names::INPUT_MESSAGES)
        && let Some(values) = parse_json_messages(json)
    {
        messages.extend(values.iter().map(message_from_json));
        return messages;
    }
    for (prefix, role_suffix, content_suffix) in
        [("gen_ai.prompt", "role", "content"), ("llm.input_messages", "message.role", "message.content")]
    {
        let roles = attrs.indexed(prefix, role_suffix);
        let contents = attrs.indexed(prefix, content_suffix);
        if contents.is_empty() {
            continue;
        }
        for (i, content) in contents {
            let role = roles.iter().find(|(j, _)| *j == i).and_then(|(_, r)| r.to_text()).unwrap_or_default();
            messages.push(Message { role, content: content.to_text().unwrap_or_default() });
        }
        break;
    }
    messages
}

fn output_text(attrs: &Attrs<'_, '_>, stream: &[StreamCheckpoint]) -> Option<String> {
    if let Some(AttrValue::Str(json)) = attrs.get(&names::OUTPUT_MESSAGES)
        && let Some(values) = parse_json_messages(json)
    {
        return values.first().map(|m| message_from_json(m).content);
    }
    for (prefix, suffix) in [("gen_ai.completion", "content"), ("llm.output_messages", "message.content")] {
        if let Some((_, v)) = attrs.indexed(prefix, suffix).first() {
            return v.to_text();
        }
    }
    let texts: Vec<&str> = stream.iter().filter_map(|c| c.text.as_deref()).collect();
    (!texts.is_empty()).then(|| texts.concat())
}

fn parse_json_messages(text: &str) -> Option<Vec<serde_json::Value>> {
    serde_json::from_str::<Vec<serde_json::Value>>(text).ok()
}

/// A message in the GenAI JSON schema (`{"role", "parts": [{"type": "text", "content"}]}`) or the older
/// `{"role", "content"}`.
fn message_from_json(value: &serde_json::Value) -> Message {
    let role = value.get("role").and_then(|r| r.as_str()).unwrap_or("").to_string();
    let content = match (value.get("parts"), value.get("content")) {
        (Some(serde_json::Value::Array(parts)), _) => join_parts(parts),
        (_, Some(c)) => super::jsonl::value_text(c),
        _ => String::new(),
    };
    Message { role, content }
}

fn join_parts(parts: &[serde_json::Value]) -> String {
    parts
        .iter()
        .filter(|p| p.get("type").and_then(|t| t.as_str()).is_none_or(|t| t == "text"))
        .map(|p| p.get("content").or_else(|| p.get("text")).map(super::jsonl::value_text).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("")
}

#[cfg(test)]
mod tests;
