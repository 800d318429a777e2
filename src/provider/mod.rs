//! Provider clients: one `Provider` per model endpoint, and a `Client` that adds retries.
//!
//! A `Provider` makes exactly one HTTP attempt and always returns an [`Attempt`], failures included, so
//! that every call can become a request row. [`Client::complete`] retries transport errors, timeouts,
//! 429 and 5xx with exponential backoff (honouring `Retry-After`) and returns every attempt in a
//! [`Completion`]. Two wire protocols are spoken: OpenAI-compatible chat completions (`openai:MODEL`,
//! `sim:MODEL`) and Anthropic Messages (`anthropic:MODEL`).

mod anthropic;
mod attempt;
mod cancel;
mod error;
mod http;
mod id;
mod openai;
mod retry;
mod rows;
mod sse;

#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use attempt::{Attempt, Completion, StreamEvent};
pub use cancel::Cancel;
pub use error::{AttemptError, ProviderError, TimeoutPhase};
pub use http::{ApiKey, Timeouts};
pub use id::{ProviderId, ProviderKind};
pub use retry::{RetryPolicy, parse_retry_after};
pub use sse::{SseDecoder, SseError, SseEvent};

use crate::trace::model::Message;

/// What to send: the conversation and the sampling parameters. The model comes from the provider id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    pub messages: Vec<Message>,
    /// Passed through into the request body (`temperature`, `max_tokens`, `top_p`, …). Keys the client
    /// owns (`model`, `messages`, `stream`, `stream_options`, `system`) are not overridden by these.
    #[serde(default)]
    pub params: serde_json::Map<String, serde_json::Value>,
    pub stream: bool,
}

impl ChatRequest {
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest { messages, params: serde_json::Map::new(), stream: false }
    }

    pub fn streaming(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    pub fn param(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.params.insert(key.to_string(), value.into());
        self
    }
}

/// One model endpoint. Implementations make a single HTTP attempt per call and never retry.
pub trait Provider: Send + Sync + fmt::Debug {
    fn id(&self) -> &ProviderId;

    /// Makes one attempt. Every outcome, a failure or a cancellation included, comes back as an
    /// `Attempt` (numbered 1; the retry loop renumbers).
    fn attempt<'a>(&'a self, request: &'a ChatRequest, cancel: &'a Cancel) -> BoxFuture<'a, Attempt>;
}

/// How to reach one provider: what `provider:` in an eval suite says, plus timeouts and retries.
#[derive(Debug, Clone, PartialEq)]
pub struct ProviderConfig {
    pub id: ProviderId,
    /// Defaults to the vendor's public endpoint; required for `sim:`.
    pub base_url: Option<String>,
    /// The environment variable holding the API key; defaults to `OPENAI_API_KEY` or
    /// `ANTHROPIC_API_KEY`. The key itself is never stored, logged or put in an error.
    pub api_key_env: Option<String>,
    pub timeouts: Timeouts,
    pub retry: RetryPolicy,
}

impl ProviderConfig {
    pub fn new(id: ProviderId) -> Self {
        ProviderConfig {
            id,
            base_url: None,
            api_key_env: None,
            timeouts: Timeouts::default(),
            retry: RetryPolicy::default(),
        }
    }

    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }
}

/// A provider plus its retry policy: what the eval runner calls. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    provider: Arc<dyn Provider>,
    retry: RetryPolicy,
}

impl Client {
    pub fn new(provider: Arc<dyn Provider>, retry: RetryPolicy) -> Self {
        Client { provider, retry }
    }

    /// Builds the client a config describes, reading the API key from the process environment.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, ProviderError> {
        Self::from_config_with_env(config, |name| std::env::var(name).ok())
    }

    /// Like [`Client::from_config`], with the environment lookup supplied (tests, embedding).
    pub fn from_config_with_env(
        config: &ProviderConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ProviderError> {
        let provider = build_provider(config, env)?;
        Ok(Client::new(provider, config.retry.clone()))
    }

    pub fn id(&self) -> &ProviderId {
        self.provider.id()
    }

    pub fn provider(&self) -> &Arc<dyn Provider> {
        &self.provider
    }

    pub fn retry_policy(&self) -> &RetryPolicy {
        &self.retry
    }

    /// Sends `request`, retrying as the policy allows. Never fails: the outcome of every attempt is in
    /// the returned `Completion`.
    pub async fn complete(&self, request: &ChatRequest, cancel: &Cancel) -> Completion {
        retry::complete(self.provider.as_ref(), &self.retry, request, cancel).await
    }
}

/// Builds the provider a config describes. `env` looks up the API key variable.
pub fn build_provider(
    config: &ProviderConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn Provider>, ProviderError> {
    let kind = config.id.kind;
    let base_url = resolve_base_url(config)?;
    let key = resolve_api_key(config, env)?;
    let provider: Arc<dyn Provider> = match kind {
        ProviderKind::OpenAi | ProviderKind::Sim => {
            Arc::new(http::HttpProvider::new(config.id.clone(), &base_url, key, config.timeouts, openai::OpenAi)?)
        }
        ProviderKind::Anthropic => {
            Arc::new(http::HttpProvider::new(config.id.clone(), &base_url, key, config.timeouts, anthropic::Anthropic)?)
        }
    };
    Ok(provider)
}

fn resolve_base_url(config: &ProviderConfig) -> Result<String, ProviderError> {
    match (&config.base_url, config.id.kind.default_base_url()) {
        (Some(url), _) => Ok(url.trim_end_matches('/').to_string()),
        (None, Some(url)) => Ok(url.to_string()),
        (None, None) => Err(ProviderError::MissingBaseUrl { provider: config.id.to_string() }),
    }
}

/// A key is required when the config names a variable, or when talking to the vendor's own endpoint;
/// local OpenAI-compatible servers and the simulator usually need none.
fn resolve_api_key(
    config: &ProviderConfig,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Option<ApiKey>, ProviderError> {
    let (name, required) = match (&config.api_key_env, config.id.kind.default_api_key_env()) {
        (Some(name), _) => (name.as_str(), true),
        (None, Some(default)) => (default, config.base_url.is_none()),
        (None, None) => return Ok(None),
    };
    match env(name).filter(|v| !v.trim().is_empty()) {
        Some(value) => Ok(Some(ApiKey::new(value.trim()))),
        None if required => {
            Err(ProviderError::MissingApiKey { provider: config.id.to_string(), env: name.to_string() })
        }
        None => Ok(None),
    }
}

/// Default per-attempt timeouts, kept here so the CLI can show them in `--help`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(600);
