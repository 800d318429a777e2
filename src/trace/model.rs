//! The normalized request row: one provider call, whether imported from a trace export or made by
//! `eval run`. See DESIGN.md, "The normalized request row".

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

/// 128 bits of SHA-256: an imported row's content hash, and the digest its idempotency key is stored
/// and compared as. Shown in hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Digest(pub [u8; 16]);

impl Digest {
    /// The digest of the bytes of `parts`, concatenated (so that a key need not be formatted to be hashed).
    pub fn of_parts(parts: &[&[u8]]) -> Digest {
        let mut hasher = Sha256::new();
        for part in parts {
            hasher.update(part);
        }
        Digest::truncate(&hasher.finalize())
    }

    /// The first 16 bytes of a longer hash.
    pub fn truncate(hash: &[u8]) -> Digest {
        let mut out = [0u8; 16];
        out.copy_from_slice(&hash[..16]);
        Digest(out)
    }

    /// From its 32 hex digits (as schemas 6 and 7 stored content hashes).
    pub fn from_hex(text: &str) -> Option<Digest> {
        let bytes = hex::decode(text).ok()?;
        (bytes.len() == 16).then(|| Digest::truncate(&bytes))
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({self})")
    }
}

/// How a call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Ok,
    Error,
    Timeout,
    Aborted,
}

/// Where the token counts of a row came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UsageSource {
    /// Reported by the provider in the response.
    Provider,
    /// Counted client-side (a tokenizer in the tracer); may disagree with what is billed.
    Estimated,
    /// No usage at all (a stream cut before its usage block, an error).
    Missing,
}

/// Token counts, normalized so that `input_total = input_uncached + cache_read + cache_write_5m +
/// cache_write_1h` always holds, whatever the provider's convention (OpenAI reports cached tokens inside
/// `prompt_tokens`, Anthropic beside `input_tokens`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    pub input_total: u64,
    pub input_uncached: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    /// Output tokens including reasoning tokens.
    pub output_total: u64,
    /// Hidden reasoning/thinking tokens, a part of `output_total`.
    pub reasoning: u64,
}

impl Usage {
    /// From an OpenAI-style report where `cached` is inside `input_inclusive`.
    pub fn from_inclusive(
        input_inclusive: u64,
        cache_read: u64,
        cache_write: u64,
        output: u64,
        reasoning: u64,
    ) -> Self {
        let cached = cache_read.saturating_add(cache_write).min(input_inclusive);
        let cache_read = cache_read.min(cached);
        Usage {
            input_total: input_inclusive,
            input_uncached: input_inclusive - cached,
            cache_read,
            cache_write_5m: cached - cache_read,
            cache_write_1h: 0,
            output_total: output,
            reasoning: reasoning.min(output),
        }
    }

    /// From an Anthropic-style report where cache reads and writes sit beside the uncached input.
    pub fn from_additive(
        uncached: u64,
        cache_read: u64,
        cache_write_5m: u64,
        cache_write_1h: u64,
        output: u64,
        reasoning: u64,
    ) -> Self {
        Usage {
            input_total: uncached + cache_read + cache_write_5m + cache_write_1h,
            input_uncached: uncached,
            cache_read,
            cache_write_5m,
            cache_write_1h,
            output_total: output,
            reasoning: reasoning.min(output),
        }
    }

    pub fn cache_write(&self) -> u64 {
        self.cache_write_5m + self.cache_write_1h
    }

    pub fn is_consistent(&self) -> bool {
        self.input_total == self.input_uncached + self.cache_read + self.cache_write_5m + self.cache_write_1h
            && self.reasoning <= self.output_total
    }
}

/// One stream checkpoint: time since the request started and the tokens (or chunks) received by then.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamCheckpoint {
    pub t_ms: u64,
    /// Tokens in this chunk (1 per chunk when the source only counts chunks).
    pub tokens: u32,
    /// The chunk's text, where the source kept it (loop detection needs it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// A chat message as served or received.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// One normalized provider call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    pub ts: Timestamp,
    /// `openai`, `anthropic`, `google`, `sim`, …
    pub provider: String,
    pub request_model: String,
    pub response_model: Option<String>,
    pub project: Option<String>,
    pub api_key_ref: Option<String>,
    pub tenant_id: Option<String>,
    pub conversation_id: Option<String>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    /// Groups the attempts of one logical request (retries share it).
    pub logical_request_id: Option<String>,
    /// 1 for the first try.
    pub attempt: u32,
    pub status: RequestStatus,
    pub streamed: bool,
    pub usage_source: UsageSource,
    pub usage: Usage,
    pub service_tier: Option<String>,
    pub batch: bool,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
    pub prompt_name: Option<String>,
    pub prompt_version: Option<String>,
    /// Why the model stopped (`stop`, `length`, `end_turn`, …); `None` when the stream was cut.
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub messages: Vec<Message>,
    pub output: Option<String>,
    pub stream: Vec<StreamCheckpoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inclusive_and_additive_reports_normalize_to_the_same_invariant() {
        let openai = Usage::from_inclusive(812, 512, 0, 120, 0);
        assert_eq!(openai.input_uncached, 300);
        assert!(openai.is_consistent());
        let anthropic = Usage::from_additive(300, 512, 40, 0, 120, 0);
        assert_eq!(anthropic.input_total, 852);
        assert!(anthropic.is_consistent());
    }

    #[test]
    fn inclusive_report_with_more_cached_than_input_is_clamped() {
        let u = Usage::from_inclusive(100, 150, 0, 5, 9);
        assert!(u.is_consistent());
        assert_eq!(u.cache_read, 100);
        assert_eq!(u.reasoning, 5);
    }
}
