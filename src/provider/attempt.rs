//! What one attempt produced, and what a whole (retried) call produced.

use std::time::{Duration, Instant};

use jiff::Timestamp;

use super::error::AttemptError;
use super::id::ProviderId;
use crate::trace::model::{RequestStatus, StreamCheckpoint, Usage};

/// A protocol-neutral event decoded from a response (streamed or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The model that answered, as the provider names it (often a dated snapshot).
    Model(String),
    /// A piece of the assistant's text.
    Text(String),
    /// The provider's complete usage report, normalized.
    Usage(Usage),
    /// Why the model stopped.
    Finish(String),
    ServiceTier(String),
    /// The provider said the message is complete (`[DONE]`, `message_stop`).
    Done,
}

/// One HTTP attempt, successful or not, with everything a request row needs.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// 1 for the first try.
    pub number: u32,
    pub started_at: Timestamp,
    pub status: RequestStatus,
    pub http_status: Option<u16>,
    pub error: Option<AttemptError>,
    pub streamed: bool,
    pub response_model: Option<String>,
    pub output: String,
    /// `None` when a stream ended without saying why it stopped (truncated).
    pub finish_reason: Option<String>,
    /// `None` when the provider reported no usage (an error, a stream cut before its usage block).
    pub usage: Option<Usage>,
    pub service_tier: Option<String>,
    pub latency_ms: u64,
    /// Time to the first non-empty text chunk; only for streamed attempts.
    pub ttft_ms: Option<u64>,
    /// One checkpoint per text chunk (1 token per chunk: the wire does not say more).
    pub stream: Vec<StreamCheckpoint>,
    /// What the server asked for with `Retry-After` (or `retry-after-ms`).
    pub retry_after: Option<Duration>,
    /// How long the retry loop waited after this attempt before the next one.
    pub backoff: Option<Duration>,
}

impl Attempt {
    pub fn is_ok(&self) -> bool {
        self.status == RequestStatus::Ok
    }

    /// An `ok` stream that never said why it stopped was cut short.
    pub fn is_truncated(&self) -> bool {
        self.is_ok() && self.finish_reason.is_none()
    }
}

/// Every attempt of one logical request, in order. The last one is the outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub provider: ProviderId,
    pub attempts: Vec<Attempt>,
    /// Cancellation stopped the call (during an attempt or while waiting to retry).
    pub cancelled: bool,
}

impl Completion {
    pub fn last(&self) -> Option<&Attempt> {
        self.attempts.last()
    }

    pub fn is_ok(&self) -> bool {
        self.last().is_some_and(Attempt::is_ok)
    }

    /// The final output, when the call succeeded.
    pub fn output(&self) -> Option<&str> {
        self.last().filter(|a| a.is_ok()).map(|a| a.output.as_str())
    }

    /// Why the call failed, when it did.
    pub fn error(&self) -> Option<&AttemptError> {
        self.last().and_then(|a| a.error.as_ref())
    }

    pub fn retries(&self) -> u32 {
        (self.attempts.len() as u32).saturating_sub(1)
    }

    /// Usage summed over all attempts: what was billed, failed attempts included.
    pub fn total_usage(&self) -> Usage {
        self.attempts.iter().filter_map(|a| a.usage).fold(Usage::default(), add_usage)
    }
}

fn add_usage(a: Usage, b: Usage) -> Usage {
    Usage {
        input_total: a.input_total + b.input_total,
        input_uncached: a.input_uncached + b.input_uncached,
        cache_read: a.cache_read + b.cache_read,
        cache_write_5m: a.cache_write_5m + b.cache_write_5m,
        cache_write_1h: a.cache_write_1h + b.cache_write_1h,
        output_total: a.output_total + b.output_total,
        reasoning: a.reasoning + b.reasoning,
    }
}

/// Accumulates decoded events into an `Attempt` while the response arrives.
pub(crate) struct Recorder {
    started: Instant,
    attempt: Attempt,
}

impl Recorder {
    pub(crate) fn start(streamed: bool) -> Self {
        Recorder {
            started: Instant::now(),
            attempt: Attempt {
                number: 1,
                started_at: Timestamp::now(),
                status: RequestStatus::Error,
                http_status: None,
                error: None,
                streamed,
                response_model: None,
                output: String::new(),
                finish_reason: None,
                usage: None,
                service_tier: None,
                latency_ms: 0,
                ttft_ms: None,
                stream: Vec::new(),
                retry_after: None,
                backoff: None,
            },
        }
    }

    pub(crate) fn started(&self) -> Instant {
        self.started
    }

    pub(crate) fn set_http_status(&mut self, status: u16) {
        self.attempt.http_status = Some(status);
    }

    pub(crate) fn set_retry_after(&mut self, retry_after: Option<Duration>) {
        self.attempt.retry_after = retry_after;
    }

    /// Records events that arrived together (one network read) at the same instant.
    pub(crate) fn record(&mut self, events: impl IntoIterator<Item = StreamEvent>) {
        let t_ms = elapsed_ms(self.started);
        for event in events {
            self.record_one(event, t_ms);
        }
    }

    fn record_one(&mut self, event: StreamEvent, t_ms: u64) {
        let attempt = &mut self.attempt;
        match event {
            StreamEvent::Model(model) => attempt.response_model = Some(model),
            StreamEvent::Text(text) if text.is_empty() => {}
            StreamEvent::Text(text) => {
                attempt.output.push_str(&text);
                if attempt.streamed {
                    attempt.ttft_ms.get_or_insert(t_ms);
                    attempt.stream.push(StreamCheckpoint { t_ms, tokens: 1, text: Some(text) });
                }
            }
            StreamEvent::Usage(usage) => attempt.usage = Some(usage),
            StreamEvent::Finish(reason) => attempt.finish_reason = Some(reason),
            StreamEvent::ServiceTier(tier) => attempt.service_tier = Some(tier),
            StreamEvent::Done => {}
        }
    }

    pub(crate) fn finish(mut self, result: Result<(), AttemptError>) -> Attempt {
        self.attempt.latency_ms = elapsed_ms(self.started);
        match result {
            Ok(()) => self.attempt.status = RequestStatus::Ok,
            Err(error) => {
                self.attempt.status = error.status();
                self.attempt.error = Some(error);
            }
        }
        self.attempt
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    since.elapsed().as_millis() as u64
}
