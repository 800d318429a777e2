//! The HTTP side shared by both wire protocols: one attempt with its four deadlines, body reading,
//! event-stream decoding, error bodies and API-key hygiene.

use std::fmt;
use std::sync::Once;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use super::attempt::{Attempt, Recorder, StreamEvent};
use super::cancel::Cancel;
use super::error::{AttemptError, ProviderError, TimeoutPhase};
use super::id::ProviderId;
use super::retry::parse_retry_after;
use super::sse::{SseDecoder, SseEvent};
use super::{ChatRequest, Provider};

/// An API key. Its `Debug` output is redacted and it has no `Display`, so it cannot end up in a log
/// line or an error message by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(value: impl Into<String>) -> Self {
        ApiKey(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey([redacted])")
    }
}

/// Per-attempt deadlines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Establishing the connection.
    pub connect: Duration,
    /// From sending a streamed request to the first byte of its body. A non-streamed response only
    /// arrives once generated, so it is bounded by `total` alone.
    pub first_byte: Duration,
    /// The longest gap between two chunks of a body (a stalled stream).
    pub idle: Duration,
    /// The whole attempt.
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: super::DEFAULT_CONNECT_TIMEOUT,
            first_byte: super::DEFAULT_FIRST_BYTE_TIMEOUT,
            idle: super::DEFAULT_IDLE_TIMEOUT,
            total: super::DEFAULT_TOTAL_TIMEOUT,
        }
    }
}

/// What a wire protocol contributes: its endpoint, headers, body, and how to read answers.
pub(crate) trait Protocol: Send + Sync + fmt::Debug + 'static {
    type Decoder: StreamDecoder;

    /// Appended to the base URL.
    fn path(&self) -> &'static str;
    fn auth_headers(&self, key: Option<&ApiKey>) -> Result<HeaderMap, ProviderError>;
    fn request_body(&self, model: &str, request: &ChatRequest) -> Vec<u8>;
    /// Decodes a complete (non-streamed) response body.
    fn parse_body(&self, body: &[u8]) -> Result<Vec<StreamEvent>, DecodeError>;
    fn stream_decoder(&self) -> Self::Decoder;
}

/// Decodes the events of one streamed response; may keep state between events.
pub(crate) trait StreamDecoder: Send {
    fn decode(&mut self, event: &SseEvent, out: &mut Vec<StreamEvent>) -> Result<(), DecodeError>;
}

/// Why a response body could not be turned into events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum DecodeError {
    /// Not the protocol we expect.
    Malformed(String),
    /// The provider reported an error inside a successful response.
    Provider { message: String, retryable: bool },
}

/// A provider speaking protocol `P` over HTTP.
#[derive(Debug)]
pub(crate) struct HttpProvider<P> {
    id: ProviderId,
    /// Parsed once: reqwest would parse a string on every request.
    endpoint: reqwest::Url,
    /// For error messages.
    url: String,
    headers: HeaderMap,
    http: reqwest::Client,
    timeouts: Timeouts,
    protocol: P,
    key: Option<ApiKey>,
}

/// Error bodies are only read for their message; a huge one is cut here.
const ERROR_BODY_LIMIT: usize = 64 * 1024;
const BODY_LIMIT: usize = 64 * 1024 * 1024;

impl<P: Protocol> HttpProvider<P> {
    pub(crate) fn new(
        id: ProviderId,
        base_url: &str,
        key: Option<ApiKey>,
        timeouts: Timeouts,
        protocol: P,
    ) -> Result<Self, ProviderError> {
        let (endpoint, url) = endpoint_url(&id, base_url, protocol.path())?;
        let mut headers = protocol.auth_headers(key.as_ref())?;
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        Ok(HttpProvider { id, endpoint, url, headers, http: http_client(timeouts)?, timeouts, protocol, key })
    }

    async fn run_attempt(&self, request: &ChatRequest, cancel: &Cancel) -> Attempt {
        let mut recorder = Recorder::start(request.stream);
        let result = tokio::select! {
            biased;
            () = cancel.cancelled() => Err(AttemptError::Cancelled),
            result = self.exchange(request, &mut recorder) => result,
        };
        let mut attempt = recorder.finish(result);
        if let (Some(error), Some(key)) = (&mut attempt.error, &self.key) {
            error.redact(key.expose());
        }
        attempt
    }

    async fn exchange(&self, request: &ChatRequest, recorder: &mut Recorder) -> Result<(), AttemptError> {
        let deadlines = Deadlines::new(recorder.started(), self.timeouts, request.stream);
        let sent = self
            .http
            .post(self.endpoint.clone())
            .headers(self.headers.clone())
            .header(ACCEPT, accept_header(request.stream))
            .body(self.protocol.request_body(&self.id.model, request))
            .send();
        let (deadline, phase) = deadlines.before_headers();
        let response = match tokio::time::timeout_at(deadline.into(), sent).await {
            Err(_) => return Err(self.timeout(phase)),
            Ok(Err(error)) => return Err(self.transport_error(&error)),
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        recorder.set_http_status(status.as_u16());
        let mut body = BodyReader::new(response, deadlines);
        if !status.is_success() {
            recorder.set_retry_after(retry_after(body.response.headers()));
            return Err(self.http_error(status.as_u16(), &mut body).await);
        }
        if request.stream {
            self.read_stream(&mut body, recorder).await
        } else {
            self.read_whole(&mut body, recorder).await
        }
    }

    async fn read_whole(&self, body: &mut BodyReader, recorder: &mut Recorder) -> Result<(), AttemptError> {
        let bytes = body.read_to_end(BODY_LIMIT).await.map_err(|e| self.read_error(e))?;
        let events = self.protocol.parse_body(&bytes).map_err(|e| self.decode_error(e))?;
        recorder.record(events);
        Ok(())
    }

    async fn read_stream(&self, body: &mut BodyReader, recorder: &mut Recorder) -> Result<(), AttemptError> {
        self.expect_event_stream(body).await?;
        let mut sse = SseDecoder::new();
        let mut decoder = self.protocol.stream_decoder();
        let mut frames = Vec::new();
        let mut done = false;
        loop {
            let chunk = match body.next_chunk().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                // Once the protocol said the message is complete, a late reset or stall loses nothing.
                Err(_) if done => break,
                Err(error) => return Err(self.read_error(error)),
            };
            // After the end of the message the rest is drained unread, so the connection can be reused.
            if !done {
                let framing = sse.push(&chunk, &mut frames);
                done = self.decode_and_record(framing, &mut decoder, &mut frames, recorder)?;
            }
        }
        if !done {
            let framing = sse.finish(&mut frames);
            self.decode_and_record(framing, &mut decoder, &mut frames, recorder)?;
        }
        Ok(())
    }

    /// Decodes the frames of one read and records their events, even when a later frame fails, so the
    /// attempt keeps the text that did arrive. Returns whether the message is complete.
    fn decode_and_record(
        &self,
        framing: Result<(), super::sse::SseError>,
        decoder: &mut P::Decoder,
        frames: &mut Vec<SseEvent>,
        recorder: &mut Recorder,
    ) -> Result<bool, AttemptError> {
        let mut events = Vec::new();
        let mut result = Ok(());
        for frame in frames.drain(..) {
            if let Err(error) = decoder.decode(&frame, &mut events) {
                result = Err(self.decode_error(error));
                break;
            }
            if events.last() == Some(&StreamEvent::Done) {
                break;
            }
        }
        let done = events.last() == Some(&StreamEvent::Done);
        recorder.record(events);
        if done {
            return Ok(true);
        }
        framing.map_err(|e| self.malformed(e.to_string()))?;
        result.map(|()| false)
    }

    async fn expect_event_stream(&self, body: &mut BodyReader) -> Result<(), AttemptError> {
        let content_type = header_text(body.response.headers(), CONTENT_TYPE);
        if content_type.starts_with("text/event-stream") {
            return Ok(());
        }
        let excerpt = body.read_to_end(ERROR_BODY_LIMIT).await.map(|b| excerpt(&b)).unwrap_or_default();
        Err(self.malformed(format!(
            "asked for a stream but got content-type `{content_type}` instead of text/event-stream; body starts: {excerpt:?}"
        )))
    }

    async fn http_error(&self, status: u16, body: &mut BodyReader) -> AttemptError {
        let text = body.read_to_end(ERROR_BODY_LIMIT).await.unwrap_or_default();
        AttemptError::Http { url: self.url.clone(), status, message: error_message(&text) }
    }

    fn timeout(&self, phase: TimeoutPhase) -> AttemptError {
        AttemptError::Timeout { url: self.url.clone(), phase, limit: self.timeouts.limit(phase) }
    }

    fn transport_error(&self, error: &reqwest::Error) -> AttemptError {
        let detail = error_chain(error);
        match (error.is_connect(), error.is_timeout()) {
            (_, true) => self.timeout(TimeoutPhase::Connect),
            (true, false) => AttemptError::Connect { url: self.url.clone(), detail },
            (false, false) => AttemptError::Transport { url: self.url.clone(), detail },
        }
    }

    fn read_error(&self, error: ReadError) -> AttemptError {
        match error {
            ReadError::Timeout(phase) => self.timeout(phase),
            ReadError::Transport(error) => self.transport_error(&error),
            ReadError::TooLarge(limit) => self.malformed(format!("the response body exceeds {limit} bytes")),
        }
    }

    fn decode_error(&self, error: DecodeError) -> AttemptError {
        match error {
            DecodeError::Malformed(detail) => self.malformed(detail),
            DecodeError::Provider { message, retryable } => {
                AttemptError::StreamError { url: self.url.clone(), message, retryable }
            }
        }
    }

    fn malformed(&self, detail: String) -> AttemptError {
        AttemptError::Malformed { url: self.url.clone(), detail }
    }
}

impl<P: Protocol> Provider for HttpProvider<P> {
    fn id(&self) -> &ProviderId {
        &self.id
    }

    fn attempt<'a>(&'a self, request: &'a ChatRequest, cancel: &'a Cancel) -> BoxFuture<'a, Attempt> {
        Box::pin(self.run_attempt(request, cancel))
    }
}

impl Timeouts {
    fn limit(&self, phase: TimeoutPhase) -> Duration {
        match phase {
            TimeoutPhase::Connect => self.connect,
            TimeoutPhase::FirstByte => self.first_byte,
            TimeoutPhase::Idle => self.idle,
            TimeoutPhase::Total => self.total,
        }
    }
}

/// The absolute deadlines of one attempt.
#[derive(Debug, Clone, Copy)]
struct Deadlines {
    first_byte: Instant,
    total: Instant,
    idle: Duration,
    streamed: bool,
}

impl Deadlines {
    fn new(start: Instant, timeouts: Timeouts, streamed: bool) -> Self {
        Deadlines {
            first_byte: start + timeouts.first_byte,
            total: start + timeouts.total,
            idle: timeouts.idle,
            streamed,
        }
    }

    fn before_headers(&self) -> (Instant, TimeoutPhase) {
        if self.streamed {
            self.capped((self.first_byte, TimeoutPhase::FirstByte))
        } else {
            (self.total, TimeoutPhase::Total)
        }
    }

    /// The deadline for the next body chunk; `last` is when the previous one (or the headers) came.
    fn next_chunk(&self, last: Instant, any_body_yet: bool) -> (Instant, TimeoutPhase) {
        if self.streamed && !any_body_yet {
            self.capped((self.first_byte, TimeoutPhase::FirstByte))
        } else {
            self.capped((last + self.idle, TimeoutPhase::Idle))
        }
    }

    fn capped(&self, candidate: (Instant, TimeoutPhase)) -> (Instant, TimeoutPhase) {
        if self.total <= candidate.0 { (self.total, TimeoutPhase::Total) } else { candidate }
    }
}

enum ReadError {
    Timeout(TimeoutPhase),
    Transport(reqwest::Error),
    TooLarge(usize),
}

/// Reads a response body chunk by chunk under the attempt's deadlines.
struct BodyReader {
    response: reqwest::Response,
    deadlines: Deadlines,
    last: Instant,
    any_body_yet: bool,
}

impl BodyReader {
    fn new(response: reqwest::Response, deadlines: Deadlines) -> Self {
        BodyReader { response, deadlines, last: Instant::now(), any_body_yet: false }
    }

    async fn next_chunk(&mut self) -> Result<Option<Bytes>, ReadError> {
        let (deadline, phase) = self.deadlines.next_chunk(self.last, self.any_body_yet);
        match tokio::time::timeout_at(deadline.into(), self.response.chunk()).await {
            Err(_) => Err(ReadError::Timeout(phase)),
            Ok(Err(error)) => Err(ReadError::Transport(error)),
            Ok(Ok(chunk)) => {
                self.last = Instant::now();
                self.any_body_yet = true;
                Ok(chunk)
            }
        }
    }

    async fn read_to_end(&mut self, limit: usize) -> Result<Vec<u8>, ReadError> {
        let mut body = Vec::new();
        while let Some(chunk) = self.next_chunk().await? {
            if body.len() + chunk.len() > limit {
                return Err(ReadError::TooLarge(limit));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

fn accept_header(streamed: bool) -> HeaderValue {
    HeaderValue::from_static(if streamed { "text/event-stream" } else { "application/json" })
}

fn endpoint_url(id: &ProviderId, base_url: &str, path: &str) -> Result<(reqwest::Url, String), ProviderError> {
    let url = format!("{}{}", base_url.trim_end_matches('/'), path);
    match reqwest::Url::parse(&url) {
        Ok(parsed) if matches!(parsed.scheme(), "http" | "https") => Ok((parsed, url)),
        Ok(parsed) => Err(invalid_base_url(id, base_url, format!("scheme `{}` is not http or https", parsed.scheme()))),
        Err(error) => Err(invalid_base_url(id, base_url, error.to_string())),
    }
}

fn invalid_base_url(id: &ProviderId, base_url: &str, reason: String) -> ProviderError {
    ProviderError::InvalidBaseUrl { provider: id.to_string(), url: base_url.to_string(), reason }
}

/// reqwest is built without a bundled crypto provider; install ring once per process.
fn install_crypto_provider() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        // Err means another provider is already installed, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn http_client(timeouts: Timeouts) -> Result<reqwest::Client, ProviderError> {
    install_crypto_provider();
    reqwest::Client::builder()
        .connect_timeout(timeouts.connect)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| ProviderError::HttpClient(error_chain(&e)))
}

/// A header value marked sensitive, so that `Debug` of the header map does not show it.
pub(crate) fn secret_header(name: HeaderName, value: &str, headers: &mut HeaderMap) -> Result<(), ProviderError> {
    let mut value = HeaderValue::from_str(value).map_err(|_| ProviderError::InvalidApiKey { env: name.to_string() })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(())
}

fn header_text(headers: &HeaderMap, name: HeaderName) -> String {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_string()
}

/// `retry-after-ms` (OpenAI, Azure) is more precise than `Retry-After`, so it wins when both are sent.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let millis = headers
        .get("retry-after-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .and_then(|ms| Duration::try_from_secs_f64(ms / 1000.0).ok());
    millis.or_else(|| {
        let value = headers.get("retry-after")?.to_str().ok()?;
        parse_retry_after(value, jiff::Timestamp::now())
    })
}

/// The most useful line from an error body: the vendor's `error.message` (both vendors nest it so),
/// with its type or code, or else an excerpt of the raw text.
fn error_message(body: &[u8]) -> String {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) else {
        return format!("non-JSON error body: {:?}", excerpt(body));
    };
    let error = json.get("error").unwrap_or(&json);
    let message = error.get("message").and_then(|m| m.as_str()).or_else(|| error.as_str());
    let kind = ["type", "code"].iter().find_map(|k| error.get(*k).and_then(|v| v.as_str()));
    match (message, kind) {
        (Some(message), Some(kind)) => format!("{message} ({kind})"),
        (Some(message), None) => message.to_string(),
        _ => excerpt(body),
    }
}

/// The start of a body, for error messages.
pub(crate) fn excerpt(body: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(&body[..body.len().min(MAX * 4)]);
    let mut cut: String = text.chars().take(MAX).collect();
    if cut.len() < text.len() {
        cut.push('…');
    }
    cut
}

/// The error and its causes on one line, without the URL reqwest puts in its own message (the URL is
/// reported once, by the caller).
fn error_chain(error: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(error.to_string());
    }
    parts.dedup();
    parts.join(": ")
}

/// Whether a vendor error type names a condition that a later attempt may not hit.
pub(crate) fn is_transient_error_type(kind: &str) -> bool {
    ["server_error", "overloaded", "rate_limit", "api_error", "timeout"].iter().any(|t| kind.contains(t))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_do_not_show_in_debug_output() {
        let key = ApiKey::new("sk-very-secret");
        assert_eq!(format!("{key:?}"), "ApiKey([redacted])");
        let mut headers = HeaderMap::new();
        secret_header(reqwest::header::AUTHORIZATION, "Bearer sk-very-secret", &mut headers).unwrap();
        assert!(!format!("{headers:?}").contains("sk-very-secret"));
    }

    #[test]
    fn error_bodies_yield_the_vendor_message() {
        let openai = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(error_message(openai), "Rate limit reached (requests)");
        let anthropic = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#;
        assert_eq!(error_message(anthropic), "Overloaded (overloaded_error)");
        assert_eq!(error_message(b"<html>Bad Gateway</html>"), "non-JSON error body: \"<html>Bad Gateway</html>\"");
    }
}
