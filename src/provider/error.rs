//! Errors: `ProviderError` for configuration (before any request), `AttemptError` for one attempt.

use std::fmt;
use std::time::Duration;

use crate::trace::model::RequestStatus;

/// A provider cannot be built from its configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProviderError {
    #[error("invalid provider id `{id}`: {reason}")]
    InvalidId { id: String, reason: String },
    #[error("{provider} needs a base_url (start a simulator with `promptctl sim serve` and pass its URL)")]
    MissingBaseUrl { provider: String },
    #[error("invalid base_url `{url}` for {provider}: {reason}")]
    InvalidBaseUrl { provider: String, url: String, reason: String },
    #[error("{provider} needs an API key: set the environment variable {env} (or name another one with api_key_env)")]
    MissingApiKey { provider: String, env: String },
    #[error("the API key in {env} is not a valid HTTP header value")]
    InvalidApiKey { env: String },
    #[error("cannot build the HTTP client: {0}")]
    HttpClient(String),
}

/// Which deadline an attempt missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TimeoutPhase {
    /// Establishing the TCP/TLS connection.
    Connect,
    /// From sending the request to the first byte of a streamed body.
    FirstByte,
    /// The gap between two chunks of a body.
    Idle,
    /// The whole attempt.
    Total,
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::FirstByte => "first byte",
            TimeoutPhase::Idle => "idle gap between chunks",
            TimeoutPhase::Total => "total",
        })
    }
}

/// Why one attempt failed. Messages never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot connect to {url}: {detail}")]
    Connect { url: String, detail: String },
    #[error("transport error talking to {url}: {detail}")]
    Transport { url: String, detail: String },
    #[error("timed out ({phase} timeout of {} ms) waiting for {url}", limit.as_millis())]
    Timeout { url: String, phase: TimeoutPhase, limit: Duration },
    #[error("HTTP {status} from {url}: {message}")]
    Http { url: String, status: u16, message: String },
    /// The provider reported an error inside a 200 stream (`data: {"error": …}`, `event: error`).
    #[error("error event in the stream from {url}: {message}")]
    StreamError { url: String, message: String, retryable: bool },
    /// Not the protocol we expect: a non-JSON body, a malformed event stream. Retrying will not help.
    #[error("malformed response from {url}: {detail}")]
    Malformed { url: String, detail: String },
    #[error("cancelled")]
    Cancelled,
}

impl AttemptError {
    /// Transport failures, timeouts, 429 and 5xx are worth another attempt; nothing else is.
    pub fn is_retryable(&self) -> bool {
        match self {
            AttemptError::Connect { .. } | AttemptError::Transport { .. } | AttemptError::Timeout { .. } => true,
            AttemptError::Http { status, .. } => is_retryable_status(*status),
            AttemptError::StreamError { retryable, .. } => *retryable,
            AttemptError::Malformed { .. } | AttemptError::Cancelled => false,
        }
    }

    /// The request-row status this failure maps to.
    pub fn status(&self) -> RequestStatus {
        match self {
            AttemptError::Timeout { .. } => RequestStatus::Timeout,
            AttemptError::Cancelled => RequestStatus::Aborted,
            _ => RequestStatus::Error,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            AttemptError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Replaces every occurrence of `secret` in the texts that came from outside (server bodies,
    /// transport messages), in case a server echoes the key back.
    pub(crate) fn redact(&mut self, secret: &str) {
        if secret.is_empty() {
            return;
        }
        let scrub = |text: &mut String| {
            if text.contains(secret) {
                *text = text.replace(secret, "[redacted]");
            }
        };
        match self {
            AttemptError::Connect { url, detail }
            | AttemptError::Transport { url, detail }
            | AttemptError::Malformed { url, detail } => {
                scrub(url);
                scrub(detail);
            }
            AttemptError::Http { url, message, .. } | AttemptError::StreamError { url, message, .. } => {
                scrub(url);
                scrub(message);
            }
            AttemptError::Timeout { url, .. } => scrub(url),
            AttemptError::Cancelled => {}
        }
    }
}

pub(crate) fn is_retryable_status(status: u16) -> bool {
    status == 429 || (500..600).contains(&status)
}
