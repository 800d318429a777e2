//! Anthropic Messages (`POST {base_url}/messages`).

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::ChatRequest;
use super::attempt::StreamEvent;
use super::error::ProviderError;
use super::http::{ApiKey, DecodeError, Protocol, StreamDecoder, is_transient_error_type, secret_header};
use super::openai::parse_json;
use super::sse::SseEvent;
use crate::trace::model::{Message, Usage};

const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the prompt's params do not set it.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Anthropic;

impl Protocol for Anthropic {
    type Decoder = AnthropicStream;

    fn path(&self) -> &'static str {
        "/messages"
    }

    fn auth_headers(&self, key: Option<&ApiKey>) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        headers.insert(HeaderName::from_static("anthropic-version"), HeaderValue::from_static(API_VERSION));
        if let Some(key) = key {
            secret_header(HeaderName::from_static("x-api-key"), key.expose(), &mut headers)?;
        }
        Ok(headers)
    }

    fn request_body(&self, model: &str, request: &ChatRequest) -> Vec<u8> {
        let mut body = translated_params(&request.params);
        let (system, messages) = split_system(&request.messages);
        body.insert("model".into(), model.into());
        body.insert("messages".into(), json!(messages));
        match system {
            Some(system) => body.insert("system".into(), system.into()),
            None => body.remove("system"),
        };
        body.entry("max_tokens").or_insert(DEFAULT_MAX_TOKENS.into());
        if request.stream {
            body.insert("stream".into(), true.into());
        } else {
            body.remove("stream");
        }
        serde_json::to_vec(&body).expect("a JSON map always serializes")
    }

    fn parse_body(&self, body: &[u8]) -> Result<Vec<StreamEvent>, DecodeError> {
        let message: WireMessage = parse_json(body)?;
        if let Some(error) = message.error {
            return Err(error.into_decode_error());
        }
        let mut events = Vec::new();
        events.extend(message.model.map(StreamEvent::Model));
        let text: String =
            message.content.iter().filter(|b| b.kind == "text").filter_map(|b| b.text.as_deref()).collect();
        events.push(StreamEvent::Text(text));
        events.extend(message.stop_reason.map(StreamEvent::Finish));
        if let Some(usage) = message.usage {
            events.extend(usage.service_tier.clone().map(StreamEvent::ServiceTier));
            events.push(StreamEvent::Usage(usage.normalize()));
        }
        Ok(events)
    }

    fn stream_decoder(&self) -> AnthropicStream {
        AnthropicStream { usage: WireUsage::default() }
    }
}

/// OpenAI-style parameter names that have an Anthropic spelling.
fn translated_params(params: &Map<String, Value>) -> Map<String, Value> {
    let mut body = params.clone();
    if let Some(max) = body.remove("max_completion_tokens") {
        body.entry("max_tokens").or_insert(max);
    }
    if let Some(stop) = body.remove("stop") {
        let sequences = if stop.is_string() { json!([stop]) } else { stop };
        body.entry("stop_sequences").or_insert(sequences);
    }
    body
}

/// Anthropic takes the system prompt beside the messages, not among them.
fn split_system(messages: &[Message]) -> (Option<String>, Vec<Value>) {
    let is_system = |m: &&Message| matches!(m.role.as_str(), "system" | "developer");
    let system: Vec<&str> = messages.iter().filter(is_system).map(|m| m.content.as_str()).collect();
    let rest = messages
        .iter()
        .filter(|m| !is_system(m))
        .map(|m| {
            let role = if m.role == "assistant" { "assistant" } else { "user" };
            json!({"role": role, "content": m.content})
        })
        .collect();
    let system = (!system.is_empty()).then(|| system.join("\n\n"));
    (system, rest)
}

/// Decodes the Messages event stream. Usage comes in two halves: the input side in `message_start`,
/// the output count (cumulative) in `message_delta`; it is reported once the second half arrives.
#[derive(Debug)]
pub(crate) struct AnthropicStream {
    usage: WireUsage,
}

impl StreamDecoder for AnthropicStream {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        let event: WireEvent = parse_json(event.data.as_bytes())?;
        match event {
            WireEvent::MessageStart { message } => {
                out.extend(message.model.map(StreamEvent::Model));
                if let Some(usage) = message.usage {
                    self.usage.merge(usage);
                }
            }
            WireEvent::ContentBlockStart { content_block } => {
                if content_block.kind == "text" {
                    out.extend(content_block.text.map(StreamEvent::Text));
                }
            }
            WireEvent::ContentBlockDelta { delta } => {
                if delta.kind == "text_delta" {
                    out.extend(delta.text.map(StreamEvent::Text));
                }
            }
            WireEvent::MessageDelta { delta, usage } => {
                out.extend(delta.stop_reason.map(StreamEvent::Finish));
                if let Some(usage) = usage {
                    self.usage.merge(usage);
                    out.extend(self.usage.service_tier.clone().map(StreamEvent::ServiceTier));
                    out.push(StreamEvent::Usage(self.usage.clone().normalize()));
                }
            }
            WireEvent::MessageStop => out.push(StreamEvent::Done),
            WireEvent::Error { error } => return Err(error.into_decode_error()),
            WireEvent::Other => {}
        }
        Ok(())
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum WireEvent {
    MessageStart {
        message: WireMessage,
    },
    ContentBlockStart {
        content_block: Block,
    },
    ContentBlockDelta {
        delta: Block,
    },
    MessageDelta {
        #[serde(default)]
        delta: StopDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Error {
        error: WireError,
    },
    /// `ping`, `content_block_stop`, and event types added after this was written.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    content: Vec<Block>,
    #[serde(default)]
    stop_reason: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Debug, Deserialize)]
struct Block {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    text: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct StopDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct WireUsage {
    #[serde(default)]
    input_tokens: Option<u64>,
    #[serde(default)]
    output_tokens: Option<u64>,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
    #[serde(default)]
    cache_creation: Option<CacheCreation>,
    #[serde(default)]
    service_tier: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct CacheCreation {
    #[serde(default)]
    ephemeral_5m_input_tokens: u64,
    #[serde(default)]
    ephemeral_1h_input_tokens: u64,
}

impl WireUsage {
    /// Later reports win field by field: `message_delta` carries the final output count and, in newer
    /// API versions, repeats the input side.
    fn merge(&mut self, later: WireUsage) {
        fn take<T>(mine: &mut Option<T>, theirs: Option<T>) {
            if theirs.is_some() {
                *mine = theirs;
            }
        }
        take(&mut self.input_tokens, later.input_tokens);
        take(&mut self.output_tokens, later.output_tokens);
        take(&mut self.cache_creation_input_tokens, later.cache_creation_input_tokens);
        take(&mut self.cache_read_input_tokens, later.cache_read_input_tokens);
        take(&mut self.cache_creation, later.cache_creation);
        take(&mut self.service_tier, later.service_tier);
    }

    /// Anthropic counts cache reads and writes beside `input_tokens`. Writes not attributed to a TTL by
    /// the `cache_creation` split are 5-minute writes, the default TTL.
    fn normalize(self) -> Usage {
        let split = self.cache_creation.unwrap_or_default();
        let split_total = split.ephemeral_5m_input_tokens + split.ephemeral_1h_input_tokens;
        let written = self.cache_creation_input_tokens.unwrap_or(split_total);
        let unattributed = written.saturating_sub(split_total);
        Usage::from_additive(
            self.input_tokens.unwrap_or(0),
            self.cache_read_input_tokens.unwrap_or(0),
            split.ephemeral_5m_input_tokens + unattributed,
            split.ephemeral_1h_input_tokens,
            self.output_tokens.unwrap_or(0),
            0,
        )
    }
}

#[derive(Debug, Deserialize)]
struct WireError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    message: String,
}

impl WireError {
    fn into_decode_error(self) -> DecodeError {
        DecodeError::Provider {
            retryable: is_transient_error_type(&self.kind),
            message: format!("{} ({})", self.message, self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(events: &[(&str, &str)]) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut decoder = Anthropic.stream_decoder();
        let mut out = Vec::new();
        for (name, data) in events {
            let event = SseEvent { event: Some(name.to_string()), data: data.to_string() };
            decoder.decode(&event, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn stream_merges_the_two_halves_of_usage_with_the_ttl_split() {
        let events = decode_all(&[
            (
                "message_start",
                r#"{"type":"message_start","message":{"model":"claude-sonnet-4-5","content":[],"usage":{"input_tokens":300,"cache_read_input_tokens":512,"cache_creation_input_tokens":60,"cache_creation":{"ephemeral_5m_input_tokens":40,"ephemeral_1h_input_tokens":20},"output_tokens":1}}}"#,
            ),
            (
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ("ping", r#"{"type":"ping"}"#),
            (
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            ),
            (
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}"#,
            ),
            ("message_stop", r#"{"type":"message_stop"}"#),
        ])
        .unwrap();
        let usage = Usage::from_additive(300, 512, 40, 20, 15, 0);
        assert_eq!(
            events,
            vec![
                StreamEvent::Model("claude-sonnet-4-5".into()),
                StreamEvent::Text(String::new()),
                StreamEvent::Text("Hello".into()),
                StreamEvent::Finish("end_turn".into()),
                StreamEvent::Usage(usage),
                StreamEvent::Done,
            ]
        );
        assert_eq!(usage.input_total, 872);
    }

    #[test]
    fn writes_without_a_ttl_split_count_as_five_minute_writes() {
        let usage: WireUsage =
            serde_json::from_str(r#"{"input_tokens":10,"cache_creation_input_tokens":100,"output_tokens":3}"#).unwrap();
        assert_eq!(usage.normalize(), Usage::from_additive(10, 0, 100, 0, 3, 0));
    }

    #[test]
    fn overloaded_error_events_are_retryable() {
        let err =
            decode_all(&[("error", r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#)]);
        assert_eq!(
            err,
            Err(DecodeError::Provider { message: "Overloaded (overloaded_error)".into(), retryable: true })
        );
    }

    #[test]
    fn system_messages_move_to_the_system_field_and_max_tokens_defaults() {
        let request = ChatRequest::new(vec![
            Message { role: "system".into(), content: "Be brief.".into() },
            Message { role: "user".into(), content: "Hi".into() },
        ])
        .param("stop", "END");
        let body: Value = serde_json::from_slice(&Anthropic.request_body("claude", &request)).unwrap();
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["messages"], json!([{"role": "user", "content": "Hi"}]));
        assert_eq!(body["max_tokens"], DEFAULT_MAX_TOKENS);
        assert_eq!(body["stop_sequences"], json!(["END"]));
    }
}
