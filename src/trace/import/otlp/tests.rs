use std::io::{self, BufReader, Read};

use super::*;
use crate::trace::model::Usage;

fn read(text: &str) -> Vec<Record> {
    reader(BufReader::with_capacity(7, text.as_bytes())).collect()
}

fn rows(records: &[Record]) -> Vec<&ImportedRow> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Row(r) => Some(r.as_ref()),
            _ => None,
        })
        .collect()
}

fn errors(records: &[Record]) -> Vec<&RecordError> {
    records
        .iter()
        .filter_map(|r| match r {
            Record::Error(e) => Some(e),
            _ => None,
        })
        .collect()
}

const START: u64 = 1_790_000_000_000_000_000;

fn kv(key: &str, value: &str) -> String {
    format!(r#"{{"key":"{key}","value":{value}}}"#)
}

fn s(v: &str) -> String {
    format!(r#"{{"stringValue":"{v}"}}"#)
}

fn i(v: i64) -> String {
    format!(r#"{{"intValue":"{v}"}}"#)
}

fn span(id: &str, attrs: &[String], extra: &str) -> String {
    format!(
        r#"{{"traceId":"4bf92f3577b34da6a3ce929d0e0e4736","spanId":"{id}","parentSpanId":"00f067aa0ba902b7","name":"chat","kind":3,
"startTimeUnixNano":"{START}","endTimeUnixNano":"{}","attributes":[{}]{extra}}}"#,
        START + 1_830_000_000,
        attrs.join(",")
    )
}

fn document(spans: &[String]) -> String {
    format!(
        r#"{{"resourceSpans":[{{"resource":{{"attributes":[{}]}},
"scopeSpans":[{{"scope":{{"name":"opentelemetry.instrumentation.openai"}},"spans":[
{}
]}}]}}]}}"#,
        kv("service.name", &s("support-bot")),
        spans.join(",\n")
    )
}

#[test]
fn new_and_old_genai_names_and_openinference_normalize_alike() {
    let new = span(
        "0000000000000001",
        &[
            kv("gen_ai.operation.name", &s("chat")),
            kv("gen_ai.provider.name", &s("openai")),
            kv("gen_ai.request.model", &s("gpt-4o-mini")),
            kv("gen_ai.response.model", &s("gpt-4o-mini-2024-07-18")),
            kv("gen_ai.usage.input_tokens", &i(812)),
            kv("gen_ai.usage.output_tokens", &i(120)),
            kv("gen_ai.usage.cache_read.input_tokens", &i(512)),
            kv("gen_ai.conversation.id", &s("c-1")),
            kv("gen_ai.response.finish_reasons", r#"{"arrayValue":{"values":[{"stringValue":"stop"}]}}"#),
        ],
        "",
    );
    let old = span(
        "0000000000000002",
        &[
            kv("gen_ai.system", &s("openai")),
            kv("gen_ai.request.model", &s("gpt-4o-mini")),
            kv("gen_ai.usage.prompt_tokens", &i(812)),
            kv("gen_ai.usage.completion_tokens", &i(120)),
            kv("gen_ai.usage.cache_read_input_tokens", &i(512)),
        ],
        "",
    );
    let openinference = span(
        "0000000000000003",
        &[
            kv("openinference.span.kind", &s("LLM")),
            kv("llm.provider", &s("openai")),
            kv("llm.model_name", &s("gpt-4o-mini")),
            kv("llm.token_count.prompt", &i(812)),
            kv("llm.token_count.completion", &i(120)),
            kv("llm.token_count.prompt_details.cache_read", &i(512)),
            kv("session.id", &s("c-1")),
        ],
        "",
    );
    let records = read(&document(&[new, old, openinference]));
    let rows = rows(&records);
    assert_eq!(rows.len(), 3, "{records:?}");
    for r in &rows {
        assert_eq!(r.row.usage, Usage::from_inclusive(812, 512, 0, 120, 0), "{}", r.key_text());
        assert_eq!(r.row.provider, "openai");
        assert_eq!(r.row.latency_ms, Some(1830));
        assert_eq!(r.row.ts.as_nanosecond(), START as i128);
        assert_eq!(r.row.usage_source, UsageSource::Provider);
    }
    assert_eq!(rows[0].row.finish_reason.as_deref(), Some("stop"));
    assert_eq!(rows[0].row.response_model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    assert_eq!(rows[0].key_text(), "span:4bf92f3577b34da6a3ce929d0e0e4736/0000000000000001");
    assert_eq!(rows[2].row.conversation_id.as_deref(), Some("c-1"));
}

#[test]
fn anthropic_counts_follow_the_convention_and_raw_exclusive_counts_are_recognized() {
    // Per the GenAI conventions, input_tokens already includes cache reads and writes.
    let inclusive = span(
        "00000000000000a1",
        &[
            kv("gen_ai.provider.name", &s("anthropic")),
            kv("gen_ai.request.model", &s("claude-sonnet-4-5")),
            kv("gen_ai.usage.input_tokens", &i(2420)),
            kv("gen_ai.usage.cache_read.input_tokens", &i(2000)),
            kv("gen_ai.usage.cache_creation.input_tokens", &i(300)),
            kv("gen_ai.usage.output_tokens", &i(80)),
        ],
        "",
    );
    // An instrumentation that copied Anthropic's uncached input_tokens: the cache counts exceed it.
    let raw = span(
        "00000000000000a2",
        &[
            kv("gen_ai.system", &s("anthropic")),
            kv("gen_ai.request.model", &s("claude-sonnet-4-5")),
            kv("gen_ai.usage.input_tokens", &i(120)),
            kv("gen_ai.usage.cache_read_input_tokens", &i(2000)),
            kv("gen_ai.usage.cache_creation_input_tokens", &i(300)),
            kv("gen_ai.usage.output_tokens", &i(80)),
        ],
        "",
    );
    let records = read(&document(&[inclusive, raw]));
    let rows = rows(&records);
    let expected = Usage::from_additive(120, 2000, 300, 0, 80, 0);
    assert_eq!(rows[0].row.usage, expected);
    assert!(!rows[0].convention_inferred);
    assert_eq!(rows[1].row.usage, expected);
    assert!(rows[1].convention_inferred);
}

#[test]
fn spans_that_are_not_model_calls_are_skipped_and_counted() {
    let http = span("00000000000000b1", &[kv("http.request.method", &s("POST"))], "");
    let tool = span(
        "00000000000000b2",
        &[kv("gen_ai.operation.name", &s("execute_tool")), kv("gen_ai.tool.name", &s("lookup_order"))],
        "",
    );
    let agent = span(
        "00000000000000b3",
        &[
            kv("gen_ai.operation.name", &s("invoke_agent")),
            kv("gen_ai.request.model", &s("gpt-4o")),
            kv("gen_ai.usage.input_tokens", &i(5000)),
        ],
        "",
    );
    let chain =
        span("00000000000000b4", &[kv("openinference.span.kind", &s("CHAIN")), kv("llm.model_name", &s("gpt-4o"))], "");
    let records = read(&document(&[http, tool, agent, chain]));
    let reasons: Vec<SkipReason> = records
        .iter()
        .filter_map(|r| match r {
            Record::Skipped { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect();
    assert_eq!(
        reasons,
        [
            SkipReason::NoGenAiAttributes,
            SkipReason::NotAModelCall,
            SkipReason::NotAModelCall,
            SkipReason::NotAModelCall
        ]
    );
}

#[test]
fn chunk_events_become_checkpoints_and_give_the_ttft() {
    let events = [(420u64, 1u32, "Your "), (455, 3, "order is "), (2900, 2, "on its way.")]
        .iter()
        .map(|(ms, tokens, text)| {
            format!(
                r#"{{"timeUnixNano":"{}","name":"gen_ai.content.chunk","attributes":[{},{}]}}"#,
                START + ms * 1_000_000,
                kv("gen_ai.stream.tokens", &i(*tokens as i64)),
                kv("gen_ai.stream.text", &s(text))
            )
        })
        .collect::<Vec<_>>()
        .join(",");
    let streamed = span(
        "00000000000000c1",
        &[
            kv("gen_ai.request.model", &s("gpt-4o-mini")),
            kv("gen_ai.usage.input_tokens", &i(300)),
            kv("gen_ai.usage.output_tokens", &i(6)),
        ],
        &format!(r#","events":[{events}]"#),
    );
    let records = read(&document(&[streamed]));
    let row = &rows(&records)[0].row;
    assert!(row.streamed);
    assert_eq!(row.ttft_ms, Some(420));
    assert_eq!(row.stream.iter().map(|c| (c.t_ms, c.tokens)).collect::<Vec<_>>(), [(420, 1), (455, 3), (2900, 2)]);
    assert_eq!(row.output.as_deref(), Some("Your order is on its way."));
}

#[test]
fn errors_timeouts_and_retries_are_read() {
    let timeout = span(
        "00000000000000d1",
        &[
            kv("gen_ai.request.model", &s("gpt-4o-mini")),
            kv("error.type", &s("timeout")),
            kv("http.request.resend_count", &i(1)),
        ],
        r#","status":{"code":2,"message":"request timed out"}"#,
    );
    let failed = span(
        "00000000000000d2",
        &[kv("gen_ai.request.model", &s("gpt-4o-mini")), kv("gen_ai.usage.input_tokens", &i(10))],
        r#","status":{"code":"STATUS_CODE_ERROR"}"#,
    );
    let records = read(&document(&[timeout, failed]));
    let rows = rows(&records);
    assert_eq!(rows[0].row.status, RequestStatus::Timeout);
    assert_eq!(rows[0].row.attempt, 2);
    assert_eq!(rows[0].row.logical_request_id.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736/00f067aa0ba902b7"));
    assert_eq!(rows[0].row.error.as_deref(), Some("request timed out"));
    assert_eq!(rows[0].row.usage_source, UsageSource::Missing);
    assert_eq!(rows[1].row.status, RequestStatus::Error);
    assert_eq!(rows[1].row.attempt, 1);
}

#[test]
fn bad_counts_are_errors_naming_the_attribute() {
    let negative = span(
        "00000000000000e1",
        &[kv("gen_ai.request.model", &s("gpt-4o")), kv("gen_ai.usage.input_tokens", &i(-12))],
        "",
    );
    let absurd = span(
        "00000000000000e2",
        &[kv("gen_ai.request.model", &s("gpt-4o")), kv("gen_ai.usage.output_tokens", &i(9_000_000_000))],
        "",
    );
    let records = read(&document(&[negative, absurd]));
    let errors = errors(&records);
    assert!(errors[0].message.contains("gen_ai.usage.input_tokens is negative (-12)"), "{errors:?}");
    assert!(errors[1].message.contains("more than any model"), "{errors:?}");
    assert_eq!(errors[0].line, Some(3));
}

#[test]
fn a_resource_written_after_its_spans_still_applies() {
    let doc = format!(
        r#"{{"resourceSpans":[{{"scopeSpans":[{{"spans":[{}]}}],"resource":{{"attributes":[{}]}}}}]}}"#,
        span("00000000000000f1", &[kv("gen_ai.request.model", &s("gpt-4o"))], ""),
        kv("tenant.id", &s("acme"))
    );
    let records = read(&doc);
    assert_eq!(rows(&records)[0].row.tenant_id.as_deref(), Some("acme"));
}

#[test]
fn a_truncated_document_keeps_the_spans_before_the_cut_and_says_where() {
    let full = document(&[
        span("0000000000000011", &[kv("gen_ai.request.model", &s("gpt-4o"))], ""),
        span("0000000000000012", &[kv("gen_ai.request.model", &s("gpt-4o"))], ""),
    ]);
    let cut = &full[..full.find("0000000000000012").unwrap() + 40];
    let records = read(cut);
    assert_eq!(rows(&records).len(), 1);
    let errors = errors(&records);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].fatal);
    assert!(errors[0].message.contains("truncated"), "{}", errors[0]);
    assert_eq!(errors[0].line, Some(5));
}

#[test]
fn one_document_per_line_goes_on_after_a_broken_line() {
    let line = |id: &str| document(&[span(id, &[kv("gen_ai.request.model", &s("gpt-4o"))], "")]).replace('\n', "");
    let text = format!(
        "{}\n{{\"resourceSpans\":[{{\"scopeSpans\":[{{\"spans\":[{{\"traceId\":\n{}\n",
        line("0000000000000021"),
        line("0000000000000022")
    );
    // Layout is decided from the first buffer, which must hold the first line.
    let records: Vec<Record> = reader(BufReader::with_capacity(64 * 1024, text.as_bytes())).collect();
    assert_eq!(rows(&records).len(), 2, "{records:?}");
    let errors = errors(&records);
    assert_eq!(errors.len(), 1);
    assert!(!errors[0].fatal);
}

#[test]
fn an_object_that_is_not_an_export_is_named() {
    let records = read(r#"{"ts":"2026-10-01T12:00:00Z","model":"gpt-4o"}"#);
    assert!(errors(&records)[0].message.contains("without `resourceSpans`"));
}

/// An endless OTLP document: the header, then the same span forever. Counts what was read.
struct EndlessExport {
    header: Vec<u8>,
    span: Vec<u8>,
    pos: usize,
    served: u64,
}

impl Read for EndlessExport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            let source: &[u8] = if self.pos < self.header.len() {
                &self.header[self.pos..]
            } else {
                let offset = (self.pos - self.header.len()) % self.span.len();
                &self.span[offset..]
            };
            let take = source.len().min(buf.len() - n);
            buf[n..n + take].copy_from_slice(&source[..take]);
            n += take;
            self.pos += take;
        }
        self.served += n as u64;
        Ok(n)
    }
}

#[test]
fn reading_is_streaming_memory_does_not_wait_for_the_document_to_end() {
    let one = span(
        "0000000000000031",
        &[
            kv("gen_ai.request.model", &s("gpt-4o-mini")),
            kv("gen_ai.usage.input_tokens", &i(812)),
            kv("gen_ai.usage.output_tokens", &i(120)),
        ],
        "",
    );
    let export = EndlessExport {
        header: br#"{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":["#.to_vec(),
        span: format!("{one},\n").into_bytes(),
        pos: 0,
        served: 0,
    };
    let span_len = export.span.len() as u64;
    let header_len = export.header.len() as u64;
    let buffer = 64 * 1024;
    let mut records = reader(BufReader::with_capacity(buffer, export));
    let wanted = 20_000;
    let taken = (&mut records).take(wanted).filter(|r| matches!(r, Record::Row(_))).count();
    assert_eq!(taken, wanted);
    // The document never ends, so everything above came from reading only what the rows needed: the
    // rows' bytes plus at most one read-ahead buffer. A reader that wanted the whole document first
    // would never have returned.
    let served = records.source_mut().unwrap().get_ref().served;
    assert!(served <= header_len + span_len * wanted as u64 + buffer as u64, "read {served} bytes");
    let capture = records.walker().capture_capacity();
    assert!(capture < 4 * span_len as usize, "the capture buffer grew to {capture} bytes");
}

#[test]
fn a_span_that_is_not_utf8_is_an_error_at_its_line_and_column_and_the_others_are_read() {
    let bad = span("0000000000000032", &[kv("gen_ai.request.model", &s("gpt-4o")), kv("user", &s("ZZ"))], "");
    let text = document(&[span("0000000000000031", &[kv("gen_ai.request.model", &s("gpt-4o"))], ""), bad]);
    let mut bytes = text.into_bytes();
    let at = memchr::memmem::find(&bytes, b"ZZ").unwrap();
    bytes[at] = 0xC3; // the start of a two-byte sequence, followed by an ASCII letter
    let records: Vec<Record> = reader(BufReader::with_capacity(7, &bytes[..])).collect();
    assert_eq!(rows(&records).len(), 1, "{records:?}");
    let errors = errors(&records);
    let line = 1 + bytes[..at].iter().filter(|&&b| b == b'\n').count() as u64;
    let column = at - bytes[..at].iter().rposition(|&b| b == b'\n').unwrap();
    assert_eq!(errors[0].line, Some(line));
    assert_eq!(
        errors[0].message,
        format!(
            "byte 0xC3 at column {column} is not UTF-8; JSON exports are UTF-8 (convert the file, e.g. with iconv)"
        )
    );
}

#[test]
fn errors_in_a_minified_export_are_placed_at_their_column_in_the_file() {
    // Collectors write an export as one line: a span's errors must count columns from the line's start,
    // not the span's.
    let good = span("0000000000000041", &[kv("gen_ai.request.model", &s("gpt-4o"))], "").replace('\n', "");
    let wrong_type = span("0000000000000042", &[kv("gen_ai.request.model", &s("gpt-4o"))], "")
        .replace('\n', "")
        .replace(r#""kind":3"#, r#""kind":3,"events":7"#);
    let not_utf8 = span("0000000000000043", &[kv("user", &s("ZZ"))], "").replace('\n', "");
    let text = document(&[good, wrong_type, not_utf8]).replace('\n', "");
    let mut bytes = text.into_bytes();
    let bad_byte = memchr::memmem::find(&bytes, b"ZZ").unwrap();
    bytes[bad_byte] = 0xC3;
    let records: Vec<Record> = reader(BufReader::with_capacity(7, &bytes[..])).collect();
    assert_eq!(rows(&records).len(), 1, "{records:?}");
    let errors = errors(&records);
    let seven = memchr::memmem::find(&bytes, br#""events":7"#).unwrap() + r#""events":"#.len();
    assert_eq!(errors[0].line, Some(1));
    assert_eq!(
        errors[0].message,
        format!("invalid type: integer `7`, expected a sequence (column {})", seven + 1),
        "at the number, where serde stopped"
    );
    assert_eq!(errors[1].line, Some(1));
    assert!(
        errors[1].message.starts_with(&format!("byte 0xC3 at column {} is not UTF-8", bad_byte + 1)),
        "{}",
        errors[1].message
    );
}
