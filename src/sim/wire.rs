//! The two wire formats the simulator speaks: parsing requests, rendering replies, errors and
//! event-stream frames.

use serde::Deserialize;
use serde_json::{Value, json};

use super::plan::{Failure, Finish, Reply, SimMessage, SimRequest, SimUsage, Wire};

/// A request the simulator refuses, as the real APIs would (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadRequest(pub String);

pub(crate) fn parse_request(wire: Wire, body: &[u8]) -> Result<SimRequest, BadRequest> {
    match wire {
        Wire::OpenAi => parse_openai(body),
        Wire::Anthropic => parse_anthropic(body),
    }
}

#[derive(Debug, Deserialize)]
struct OpenAiRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    stream: bool,
    #[serde(default)]
    stream_options: Option<StreamOptions>,
    #[serde(default)]
    max_tokens: Option<u64>,
    #[serde(default)]
    max_completion_tokens: Option<u64>,
}

#[derive(Debug, Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

#[derive(Debug, Deserialize)]
struct AnthropicRequest {
    model: String,
    messages: Vec<WireMessage>,
    #[serde(default)]
    system: Option<WireContent>,
    max_tokens: Option<u64>,
    #[serde(default)]
    stream: bool,
}

#[derive(Debug, Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Option<WireContent>,
}

/// A plain string, or a list of content parts of which the text parts count.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum WireContent {
    Text(String),
    Parts(Vec<Part>),
}

#[derive(Debug, Deserialize)]
struct Part {
    #[serde(default)]
    text: Option<String>,
}

impl WireContent {
    fn into_text(self) -> String {
        match self {
            WireContent::Text(text) => text,
            WireContent::Parts(parts) => parts.into_iter().filter_map(|p| p.text).collect(),
        }
    }
}

fn parse_json<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|e| BadRequest(format!("invalid request body: {e}")))
}

fn messages(wire: Vec<WireMessage>) -> Vec<SimMessage> {
    wire.into_iter()
        .map(|m| SimMessage { role: m.role, content: m.content.map(WireContent::into_text).unwrap_or_default() })
        .collect()
}

fn parse_openai(body: &[u8]) -> Result<SimRequest, BadRequest> {
    let request: OpenAiRequest = parse_json(body)?;
    if request.messages.is_empty() {
        return Err(BadRequest("`messages` must not be empty".into()));
    }
    Ok(SimRequest {
        wire: Wire::OpenAi,
        model: request.model,
        messages: messages(request.messages),
        max_tokens: request.max_completion_tokens.or(request.max_tokens),
        stream: request.stream,
        include_usage: request.stream_options.is_some_and(|o| o.include_usage),
    })
}

fn parse_anthropic(body: &[u8]) -> Result<SimRequest, BadRequest> {
    let request: AnthropicRequest = parse_json(body)?;
    let Some(max_tokens) = request.max_tokens else {
        return Err(BadRequest("max_tokens: Field required".into()));
    };
    if request.messages.is_empty() {
        return Err(BadRequest("messages: at least one message is required".into()));
    }
    let system = request.system.map(|s| SimMessage { role: "system".into(), content: s.into_text() });
    Ok(SimRequest {
        wire: Wire::Anthropic,
        model: request.model,
        messages: system.into_iter().chain(messages(request.messages)).collect(),
        max_tokens: Some(max_tokens),
        stream: request.stream,
        include_usage: true,
    })
}

/// The JSON error body each API sends with a given status.
pub(crate) fn error_body(wire: Wire, status: u16, message: &str) -> Vec<u8> {
    let (openai_type, anthropic_type) = match status {
        400 => ("invalid_request_error", "invalid_request_error"),
        429 => ("rate_limit_exceeded", "rate_limit_error"),
        503 | 529 => ("server_overloaded", "overloaded_error"),
        _ => ("server_error", "api_error"),
    };
    let body = match wire {
        Wire::OpenAi => json!({"error": {
            "message": message, "type": openai_type, "param": null, "code": openai_type}}),
        Wire::Anthropic => json!({"type": "error", "error": {
            "type": anthropic_type, "message": message}}),
    };
    body.to_string().into_bytes()
}

pub(crate) fn failure_message(failure: &Failure) -> &'static str {
    match failure.status {
        429 => "Rate limit reached (simulated). Please retry after the indicated time.",
        500 => "The server had an error while processing your request (simulated).",
        _ => "The service is temporarily overloaded (simulated).",
    }
}

/// Who is answering: shared by every frame of one response.
pub(crate) struct Responder<'a> {
    pub wire: Wire,
    pub id: &'a str,
    pub model: &'a str,
    pub created: u64,
    /// OpenAI streams carry a usage chunk only when the request asked for it.
    pub include_usage: bool,
}

impl Responder<'_> {
    /// A complete, non-streamed reply body.
    pub fn complete_body(&self, reply: &Reply) -> Vec<u8> {
        let text = reply.text();
        let body = match self.wire {
            Wire::OpenAi => json!({
                "id": format!("chatcmpl-sim-{}", self.id),
                "object": "chat.completion",
                "created": self.created,
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                    "logprobs": null, "finish_reason": openai_finish(reply.finish)}],
                "usage": openai_usage(&reply.usage),
                "service_tier": "default",
                "system_fingerprint": "fp_sim",
            }),
            Wire::Anthropic => json!({
                "id": format!("msg_sim_{}", self.id),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [{"type": "text", "text": text}],
                "stop_reason": anthropic_finish(reply.finish),
                "stop_sequence": null,
                "usage": anthropic_usage(&reply.usage),
            }),
        };
        body.to_string().into_bytes()
    }

    /// The event-stream frames of a streamed reply, written into one buffer.
    pub fn stream_frames(&self, reply: &Reply) -> Frames {
        let mut frames = Frames {
            bytes: Vec::with_capacity(256 + reply.chunks.len() * 200),
            ends: Vec::with_capacity(reply.chunks.len() + 6),
        };
        match self.wire {
            Wire::OpenAi => self.openai_frames(reply, &mut frames),
            Wire::Anthropic => self.anthropic_frames(reply, &mut frames),
        }
        frames
    }

    fn openai_frames(&self, reply: &Reply, frames: &mut Frames) {
        let head = format!(
            r#"data: {{"id":"chatcmpl-sim-{}","object":"chat.completion.chunk","created":{},"model":{},"system_fingerprint":"fp_sim","choices":"#,
            self.id,
            self.created,
            json_string(self.model)
        );
        let head = head.as_bytes();
        frames.put(&[
            head,
            br#"[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}"#,
            b"\n\n",
        ]);
        frames.close(None);
        for (index, text) in reply.chunks.iter().enumerate() {
            frames.put(&[head, br#"[{"index":0,"delta":{"content":"#]);
            frames.put_json_string(text);
            frames.put(&[br#"},"logprobs":null,"finish_reason":null}]}"#, b"\n\n"]);
            frames.close(Some(index));
        }
        if reply.cut_short {
            return;
        }
        let finish = format!(
            r#"[{{"index":0,"delta":{{}},"logprobs":null,"finish_reason":"{}"}}]}}"#,
            openai_finish(reply.finish)
        );
        frames.put(&[head, finish.as_bytes(), b"\n\n"]);
        frames.close(None);
        if self.include_usage {
            let usage = openai_usage(&reply.usage).to_string();
            frames.put(&[head, br#"[],"usage":"#, usage.as_bytes(), b"}\n\n"]);
            frames.close(None);
        }
        frames.put(&[b"data: [DONE]\n\n"]);
        frames.close(None);
    }

    fn anthropic_frames(&self, reply: &Reply, frames: &mut Frames) {
        let event = |frames: &mut Frames, name: &str, data: Value| {
            frames.put(&[b"event: ", name.as_bytes(), b"\ndata: ", data.to_string().as_bytes(), b"\n\n"]);
            frames.close(None);
        };
        let start_usage = SimUsage { completion: 1, ..reply.usage };
        event(
            frames,
            "message_start",
            json!({"type": "message_start", "message": {
                "id": format!("msg_sim_{}", self.id), "type": "message", "role": "assistant",
                "model": self.model, "content": [], "stop_reason": null, "stop_sequence": null,
                "usage": anthropic_usage(&start_usage)}}),
        );
        event(
            frames,
            "content_block_start",
            json!({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}}),
        );
        event(frames, "ping", json!({"type": "ping"}));
        for (index, text) in reply.chunks.iter().enumerate() {
            frames.put(&[
                b"event: content_block_delta\ndata: ",
                br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"#,
            ]);
            frames.put_json_string(text);
            frames.put(&[b"}}\n\n"]);
            frames.close(Some(index));
        }
        if reply.cut_short {
            return;
        }
        event(frames, "content_block_stop", json!({"type": "content_block_stop", "index": 0}));
        event(
            frames,
            "message_delta",
            json!({"type": "message_delta",
                "delta": {"stop_reason": anthropic_finish(reply.finish), "stop_sequence": null},
                "usage": {"output_tokens": reply.usage.completion}}),
        );
        event(frames, "message_stop", json!({"type": "message_stop"}));
    }
}

/// Event-stream frames in one buffer, so a response body is sliced out of it without copying.
pub(crate) struct Frames {
    pub bytes: Vec<u8>,
    /// Where each frame ends, and the index of the text chunk it carries, if any.
    pub ends: Vec<(usize, Option<usize>)>,
}

impl Frames {
    fn put(&mut self, parts: &[&[u8]]) {
        for part in parts {
            self.bytes.extend_from_slice(part);
        }
    }

    fn put_json_string(&mut self, text: &str) {
        serde_json::to_writer(&mut self.bytes, text).expect("writing to a Vec cannot fail");
    }

    fn close(&mut self, chunk: Option<usize>) {
        self.ends.push((self.bytes.len(), chunk));
    }
}

fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("a string always serializes")
}

fn openai_finish(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "stop",
        Finish::Length => "length",
    }
}

fn anthropic_finish(finish: Finish) -> &'static str {
    match finish {
        Finish::Stop => "end_turn",
        Finish::Length => "max_tokens",
    }
}

/// OpenAI counts cached tokens inside `prompt_tokens`.
fn openai_usage(usage: &SimUsage) -> Value {
    json!({
        "prompt_tokens": usage.prompt,
        "completion_tokens": usage.completion,
        "total_tokens": usage.prompt + usage.completion,
        "prompt_tokens_details": {"cached_tokens": usage.cache_read, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
            "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
    })
}

/// Anthropic counts cache reads and writes beside `input_tokens`; the simulator writes with the
/// default 5-minute TTL.
fn anthropic_usage(usage: &SimUsage) -> Value {
    json!({
        "input_tokens": usage.prompt - usage.cache_read - usage.cache_write,
        "cache_creation_input_tokens": usage.cache_write,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation": {"ephemeral_5m_input_tokens": usage.cache_write, "ephemeral_1h_input_tokens": 0},
        "output_tokens": usage.completion,
        "service_tier": "standard",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_system_becomes_the_first_message_and_max_tokens_is_required() {
        let request = parse_request(
            Wire::Anthropic,
            br#"{"model":"c","max_tokens":10,"system":[{"type":"text","text":"S"}],"messages":[{"role":"user","content":"hi"}]}"#,
        )
        .unwrap();
        assert_eq!(request.messages[0].role, "system");
        assert_eq!(request.messages[0].content, "S");
        let err = parse_request(Wire::Anthropic, br#"{"model":"c","messages":[{"role":"user","content":"hi"}]}"#);
        assert!(err.is_err());
        assert!(parse_request(Wire::OpenAi, b"not json").is_err());
    }
}
