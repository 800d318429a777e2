//! Attempts as normalized request rows: one row per attempt, retries sharing a logical request id.

use super::ChatRequest;
use super::attempt::{Attempt, Completion};
use super::id::ProviderId;
use crate::trace::model::{RequestRow, UsageSource};

impl Completion {
    /// One row per attempt (attempt = 1, 2, …), all under `logical_request_id`. Prompt, tenant and
    /// trace fields are left empty for the caller to fill.
    pub fn request_rows(&self, request: &ChatRequest, logical_request_id: &str) -> Vec<RequestRow> {
        self.attempts.iter().map(|attempt| attempt.request_row(&self.provider, request, logical_request_id)).collect()
    }
}

impl Attempt {
    pub fn request_row(&self, provider: &ProviderId, request: &ChatRequest, logical_request_id: &str) -> RequestRow {
        RequestRow {
            ts: self.started_at,
            provider: provider.kind.as_str().to_string(),
            request_model: provider.model.clone(),
            response_model: self.response_model.clone(),
            project: None,
            api_key_ref: None,
            tenant_id: None,
            conversation_id: None,
            trace_id: None,
            span_id: None,
            logical_request_id: Some(logical_request_id.to_string()),
            attempt: self.number,
            status: self.status,
            streamed: self.streamed,
            usage_source: if self.usage.is_some() { UsageSource::Provider } else { UsageSource::Missing },
            usage: self.usage.unwrap_or_default(),
            service_tier: self.service_tier.clone(),
            batch: false,
            latency_ms: Some(self.latency_ms),
            ttft_ms: self.ttft_ms,
            prompt_name: None,
            prompt_version: None,
            finish_reason: self.finish_reason.clone(),
            error: self.error.as_ref().map(ToString::to_string),
            messages: request.messages.clone(),
            output: (self.is_ok() || !self.output.is_empty()).then(|| self.output.clone()),
            stream: self.stream.clone(),
        }
    }
}
