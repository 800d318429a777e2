//! OpenAI chat completions (`POST {base_url}/chat/completions`), spoken by OpenAI, most
//! OpenAI-compatible servers and the simulator.

use std::borrow::Cow;

use reqwest::header::{AUTHORIZATION, HeaderMap};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ChatRequest;
use super::attempt::StreamEvent;
use super::error::ProviderError;
use super::http::{ApiKey, DecodeError, Protocol, StreamDecoder, excerpt, is_transient_error_type, secret_header};
use super::sse::SseEvent;
use crate::trace::model::Usage;

#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct OpenAi;

impl Protocol for OpenAi {
    type Decoder = OpenAiStream;

    fn path(&self) -> &'static str {
        "/chat/completions"
    }

    fn auth_headers(&self, key: Option<&ApiKey>) -> Result<HeaderMap, ProviderError> {
        let mut headers = HeaderMap::new();
        if let Some(key) = key {
            secret_header(AUTHORIZATION, &format!("Bearer {}", key.expose()), &mut headers)?;
        }
        Ok(headers)
    }

    fn request_body(&self, model: &str, request: &ChatRequest) -> Vec<u8> {
        let body = RequestBody {
            model,
            messages: &request.messages,
            stream: request.stream.then_some(true),
            stream_options: request.stream.then_some(StreamOptions { include_usage: true }),
            params: params_without(&request.params, OWNED_KEYS),
        };
        serde_json::to_vec(&body).expect("a request body always serializes")
    }

    fn parse_body(&self, body: &[u8]) -> Result<Vec<StreamEvent>, DecodeError> {
        let response: Completion<'_> = parse_json(body)?;
        if let Some(error) = response.error {
            return Err(error.into_decode_error());
        }
        let mut events = Vec::new();
        events.extend(response.model.map(|m| StreamEvent::Model(m.into_owned())));
        events.extend(response.service_tier.map(|t| StreamEvent::ServiceTier(t.into_owned())));
        if let Some(choice) = response.choices.into_iter().find(|c| c.index == 0) {
            let text = choice.message.and_then(|m| m.content).unwrap_or_default();
            events.push(StreamEvent::Text(text));
            events.extend(choice.finish_reason.map(StreamEvent::Finish));
        }
        events.extend(response.usage.map(|u| StreamEvent::Usage(u.normalize())));
        Ok(events)
    }

    fn stream_decoder(&self) -> OpenAiStream {
        OpenAiStream { model_seen: false }
    }
}

/// Decodes `chat.completion.chunk` events; the usage arrives in a last chunk with no choices.
#[derive(Debug)]
pub(crate) struct OpenAiStream {
    model_seen: bool,
}

impl StreamDecoder for OpenAiStream {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError> {
        if event.data.trim() == "[DONE]" {
            out.push(StreamEvent::Done);
            return Ok(());
        }
        let chunk: Completion<'_> = parse_json(event.data.as_bytes())?;
        if let Some(error) = chunk.error {
            return Err(error.into_decode_error());
        }
        if !self.model_seen
            && let Some(model) = chunk.model
        {
            self.model_seen = true;
            out.push(StreamEvent::Model(model.into_owned()));
        }
        out.extend(chunk.service_tier.map(|t| StreamEvent::ServiceTier(t.into_owned())));
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(text) = choice.delta.and_then(|d| d.content) {
                out.push(StreamEvent::Text(text));
            }
            out.extend(choice.finish_reason.map(StreamEvent::Finish));
        }
        out.extend(chunk.usage.map(|u| StreamEvent::Usage(u.normalize())));
        Ok(())
    }
}

/// Keys the client sets itself; the prompt's params cannot override them.
const OWNED_KEYS: &[&str] = &["model", "messages", "stream", "stream_options"];

#[derive(Serialize)]
struct RequestBody<'a> {
    model: &'a str,
    messages: &'a [crate::trace::model::Message],
    #[serde(skip_serializing_if = "Option::is_none")]
    stream: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
    #[serde(flatten)]
    params: Cow<'a, Map<String, Value>>,
}

#[derive(Serialize)]
struct StreamOptions {
    include_usage: bool,
}

/// `params` minus `owned` keys, copied only when it has any of them.
pub(crate) fn params_without<'a>(params: &'a Map<String, Value>, owned: &[&str]) -> Cow<'a, Map<String, Value>> {
    if owned.iter().any(|k| params.contains_key(*k)) {
        let mut kept = params.clone();
        kept.retain(|k, _| !owned.contains(&k.as_str()));
        Cow::Owned(kept)
    } else {
        Cow::Borrowed(params)
    }
}

/// A `chat.completion` or a `chat.completion.chunk`: the fields we read from either. Strings repeated in
/// every chunk are borrowed from the event, not copied.
#[derive(Debug, Deserialize)]
struct Completion<'a> {
    #[serde(default, borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(default)]
    choices: Vec<Choice>,
    #[serde(default)]
    usage: Option<WireUsage>,
    #[serde(default, borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(default)]
    error: Option<WireError>,
}

#[derive(Debug, Deserialize)]
struct Choice {
    #[serde(default)]
    index: u32,
    #[serde(default)]
    message: Option<Content>,
    #[serde(default)]
    delta: Option<Content>,
    #[serde(default)]
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Content {
    #[serde(default)]
    content: Option<String>,
}

#[derive(Debug, Deserialize)]
struct WireUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    prompt_tokens_details: Option<PromptDetails>,
    #[serde(default)]
    completion_tokens_details: Option<CompletionDetails>,
}

#[derive(Debug, Deserialize)]
struct PromptDetails {
    #[serde(default)]
    cached_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct CompletionDetails {
    #[serde(default)]
    reasoning_tokens: Option<u64>,
}

impl WireUsage {
    /// OpenAI counts cached tokens inside `prompt_tokens` and reasoning inside `completion_tokens`.
    fn normalize(self) -> Usage {
        let cached = self.prompt_tokens_details.and_then(|d| d.cached_tokens).unwrap_or(0);
        let reasoning = self.completion_tokens_details.and_then(|d| d.reasoning_tokens).unwrap_or(0);
        Usage::from_inclusive(self.prompt_tokens, cached, 0, self.completion_tokens, reasoning)
    }
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireError {
    Object {
        #[serde(default)]
        message: Option<String>,
        #[serde(default, rename = "type")]
        kind: Option<String>,
        #[serde(default)]
        code: Option<Value>,
    },
    Text(String),
}

impl WireError {
    fn into_decode_error(self) -> DecodeError {
        match self {
            WireError::Object { message, kind, code } => {
                let code = code.map(|c| c.as_str().map_or(c.to_string(), str::to_string));
                let kind = kind.or(code).unwrap_or_default();
                DecodeError::Provider {
                    retryable: is_transient_error_type(&kind),
                    message: match message {
                        Some(m) if kind.is_empty() => m,
                        Some(m) => format!("{m} ({kind})"),
                        None => kind,
                    },
                }
            }
            WireError::Text(message) => DecodeError::Provider { retryable: false, message },
        }
    }
}

pub(crate) fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, DecodeError> {
    serde_json::from_slice(body)
        .map_err(|e| DecodeError::Malformed(format!("expected JSON ({e}); got {:?}", excerpt(body))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(lines: &[&str]) -> Result<Vec<StreamEvent>, DecodeError> {
        let mut decoder = OpenAi.stream_decoder();
        let mut out = Vec::new();
        for data in lines {
            let event = SseEvent { event: None, data: data.to_string() };
            decoder.decode(&event, &mut out)?;
        }
        Ok(out)
    }

    #[test]
    fn stream_chunks_become_text_finish_and_normalized_usage() {
        let events = decode_all(&[
            r#"{"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}"#,
            r#"{"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"delta":{"content":"Hi"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":812,"completion_tokens":120,"prompt_tokens_details":{"cached_tokens":512},"completion_tokens_details":{"reasoning_tokens":64}}}"#,
            "[DONE]",
        ])
        .unwrap();
        let usage = Usage::from_inclusive(812, 512, 0, 120, 64);
        assert_eq!(
            events,
            vec![
                StreamEvent::Model("gpt-4o-mini-2024-07-18".into()),
                StreamEvent::Text(String::new()),
                StreamEvent::Text("Hi".into()),
                StreamEvent::Finish("stop".into()),
                StreamEvent::Usage(usage),
                StreamEvent::Done,
            ]
        );
        assert_eq!(usage.input_uncached, 300);
    }

    #[test]
    fn error_chunks_and_non_json_data_are_reported() {
        let err = decode_all(&[r#"{"error":{"message":"boom","type":"server_error"}}"#]);
        assert_eq!(err, Err(DecodeError::Provider { message: "boom (server_error)".into(), retryable: true }));
        assert!(matches!(decode_all(&["not json"]), Err(DecodeError::Malformed(_))));
    }

    #[test]
    fn params_pass_through_but_do_not_override_owned_keys() {
        let request = ChatRequest::new(vec![]).param("temperature", 0.2).param("model", "evil").streaming(true);
        let body: Value = serde_json::from_slice(&OpenAi.request_body("m", &request)).unwrap();
        assert_eq!(body["model"], "m");
        assert_eq!(body["temperature"], 0.2);
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
}
