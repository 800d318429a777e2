//! What every importer shares: token counts with their checks, the provider's cache convention made
//! explicit, times normalized to UTC, status and provider names, idempotency keys and content hashes.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::pricing::Provider;
use crate::trace::model::{Digest, RequestRow, RequestStatus, Usage, UsageSource};

/// No model reads or writes this many tokens in one request: the largest context windows offered are
/// around 10M tokens, so a count above twice that is a unit mistake (bytes, characters, a sum over a
/// day) or garbage, not a request.
pub const MAX_TOKENS: u64 = 20_000_000;

/// A token count as found in a file, before its checks: exports write counts as numbers, as strings
/// (OTLP's int64 `intValue`) or as integral floats.
#[derive(Debug, Clone, PartialEq)]
pub enum RawCount {
    Int(i128),
    Float(f64),
    Text(String),
}

impl<'de> Deserialize<'de> for RawCount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RawCount;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a token count")
            }
            fn visit_u64<E>(self, v: u64) -> Result<RawCount, E> {
                Ok(RawCount::Int(v as i128))
            }
            fn visit_i64<E>(self, v: i64) -> Result<RawCount, E> {
                Ok(RawCount::Int(v as i128))
            }
            fn visit_f64<E>(self, v: f64) -> Result<RawCount, E> {
                Ok(RawCount::Float(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<RawCount, E> {
                // OTLP writes every int64 as a string: parse it here rather than keep a copy.
                Ok(match v.trim().parse::<i128>() {
                    Ok(n) => RawCount::Int(n),
                    Err(_) => RawCount::Text(v.to_string()),
                })
            }
        }
        d.deserialize_any(Visitor)
    }
}

/// Checks one token count: a whole number from 0 to [`MAX_TOKENS`]. `field` names it in the message.
pub fn token_count(raw: &RawCount, field: &str) -> Result<u64, String> {
    let value: i128 = match raw {
        RawCount::Int(v) => *v,
        RawCount::Float(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e18 => *f as i128,
        RawCount::Float(f) => return Err(format!("{field} is {f}, not a whole number of tokens")),
        RawCount::Text(t) => {
            t.trim().parse::<i128>().map_err(|_| format!("{field} is \"{t}\", not a whole number of tokens"))?
        }
    };
    check_count(value, field)
}

pub fn check_count(value: i128, field: &str) -> Result<u64, String> {
    if value < 0 {
        return Err(format!("{field} is negative ({value})"));
    }
    if value > MAX_TOKENS as i128 {
        return Err(format!(
            "{field} is {value}, more than any model reads or writes in one request (limit {MAX_TOKENS}); \
             is it a sum or a byte count?"
        ));
    }
    Ok(value as u64)
}

/// How a report counts cached input tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheConvention {
    /// Cache reads and writes are part of the input count (OpenAI's `prompt_tokens`, the OpenTelemetry
    /// GenAI conventions' `gen_ai.usage.input_tokens`, promptctl JSONL).
    Inclusive,
    /// Cache reads and writes are reported beside an uncached input count (Anthropic's `input_tokens`,
    /// Langfuse usage details).
    Additive,
}

/// Token counts as a source reported them, each already checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportedUsage {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write_5m: u64,
    pub cache_write_1h: u64,
    pub reasoning: u64,
}

impl ReportedUsage {
    fn cached(&self) -> u64 {
        self.cache_read + self.cache_write_5m + self.cache_write_1h
    }

    /// Normalizes under `convention`. An inclusive report whose cached tokens exceed its input total is
    /// contradictory and refused rather than clamped: clamping would silently change the bill.
    pub fn normalize(&self, convention: CacheConvention) -> Result<Usage, String> {
        if self.reasoning > self.output {
            return Err(format!(
                "reasoning tokens ({}) exceed output tokens ({}), which include them",
                self.reasoning, self.output
            ));
        }
        match convention {
            CacheConvention::Inclusive => {
                if self.cached() > self.input {
                    return Err(format!(
                        "cached input tokens ({}) exceed input tokens ({}), which include them",
                        self.cached(),
                        self.input
                    ));
                }
                Ok(Usage {
                    input_total: self.input,
                    input_uncached: self.input - self.cached(),
                    cache_read: self.cache_read,
                    cache_write_5m: self.cache_write_5m,
                    cache_write_1h: self.cache_write_1h,
                    output_total: self.output,
                    reasoning: self.reasoning,
                })
            }
            CacheConvention::Additive => Ok(Usage::from_additive(
                self.input,
                self.cache_read,
                self.cache_write_5m,
                self.cache_write_1h,
                self.output,
                self.reasoning,
            )),
        }
    }
}

/// Parses an RFC 3339 time to UTC. A time without an offset is ambiguous and refused unless the user
/// said which zone the exporter wrote (`--assume-tz`).
pub fn parse_time(text: &str, assume: Option<&TimeZone>) -> Result<Timestamp, String> {
    let text = text.trim();
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    let Ok(civil) = text.parse::<jiff::civil::DateTime>() else {
        return Err(format!("`{text}` is not an RFC 3339 time (like 2026-10-01T12:00:00Z)"));
    };
    match assume {
        Some(tz) => tz.to_timestamp(civil).map_err(|e| format!("`{text}` in the assumed time zone: {e}")),
        None => Err(format!(
            "`{text}` has no UTC offset, so the moment it names is unknown; write it with `Z` or an offset \
             (2026-10-01T12:00:00Z), or pass --assume-tz ZONE (e.g. UTC, Europe/Berlin)"
        )),
    }
}

/// A time zone for `--assume-tz`: an IANA name, `UTC`, or a fixed offset like `+02:00`.
pub fn parse_zone(text: &str) -> Result<TimeZone, String> {
    if let Some(offset) = parse_offset(text) {
        return Ok(TimeZone::fixed(offset));
    }
    TimeZone::get(text)
        .map_err(|_| format!("`{text}` is not a time zone (use an IANA name like Europe/Berlin, or +02:00)"))
}

/// `+02:00`, `-0530`, `+02` → a fixed offset.
fn parse_offset(text: &str) -> Option<jiff::tz::Offset> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(|c| *c != ':').collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) || !matches!(digits.len(), 2 | 4) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = if digits.len() == 4 { digits[2..].parse().ok()? } else { 0 };
    if hours > 23 || minutes > 59 {
        return None;
    }
    jiff::tz::Offset::from_seconds(sign * (hours * 3600 + minutes * 60)).ok()
}

/// Nanoseconds since the Unix epoch (OTLP's `startTimeUnixNano`) as a timestamp.
pub fn from_unix_nanos(nanos: u64) -> Result<Timestamp, String> {
    Timestamp::from_nanosecond(nanos as i128).map_err(|e| format!("time {nanos} ns is out of range: {e}"))
}

/// Our provider id for a name a trace uses (`openai`, `Anthropic`, `gcp.gemini`, `aws.bedrock`, …),
/// falling back to what the model name gives away when the trace names no provider.
pub fn provider_id(name: Option<&str>, model: &str) -> String {
    if let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) {
        return match Provider::parse(name) {
            Some(p) => p.id().to_string(),
            None => match name.to_ascii_lowercase().as_str() {
                "az.ai.openai" | "azure.ai.openai" | "azure_openai" | "azure" => "azure".to_string(),
                "aws.bedrock" | "bedrock" => "bedrock".to_string(),
                other => other.to_string(),
            },
        };
    }
    infer_provider(model).unwrap_or("unknown").to_string()
}

/// The provider a bare model name belongs to, for the well-known families.
pub fn infer_provider(model: &str) -> Option<&'static str> {
    let m = model.trim().to_ascii_lowercase();
    let m = m.rsplit('/').next().unwrap_or(&m);
    let openai = ["gpt-", "o1", "o3", "o4", "chatgpt-", "text-embedding-", "davinci", "babbage", "ft:gpt"];
    if openai.iter().any(|p| m.starts_with(p)) {
        Some("openai")
    } else if m.starts_with("claude") {
        Some("anthropic")
    } else if m.starts_with("gemini") {
        Some("google")
    } else {
        None
    }
}

/// A status as traces spell it: ours, OpenTelemetry's error types, HTTP-ish words.
pub fn parse_status(text: &str) -> Option<RequestStatus> {
    let t = text.trim().to_ascii_lowercase();
    match t.as_str() {
        "ok" | "success" | "succeeded" | "completed" | "default" | "unset" => Some(RequestStatus::Ok),
        "error" | "failed" | "failure" => Some(RequestStatus::Error),
        "timeout" | "timed_out" | "deadline_exceeded" => Some(RequestStatus::Timeout),
        "aborted" | "cancelled" | "canceled" | "client_cancelled" | "client_aborted" => Some(RequestStatus::Aborted),
        _ => None,
    }
}

/// The status an `error.type` implies: timeouts and client cancellations are their own classes.
pub fn status_from_error_type(error_type: &str) -> RequestStatus {
    let t = error_type.to_ascii_lowercase();
    if t.contains("timeout") || t.contains("timed out") || t.contains("timedout") || t.contains("deadline") {
        RequestStatus::Timeout
    } else if t.contains("cancel") || t.contains("abort") {
        RequestStatus::Aborted
    } else {
        RequestStatus::Error
    }
}

/// The idempotency key of an imported row, as text: `span:TRACE/SPAN` when it has both ids (the same span
/// imported twice, from one file or from two exports of the same traffic, is one request), else
/// `sha:CONTENT_HASH` (its content). The ids are the row's, already normalized by [`hex_id`].
///
/// The state file keeps only the key's digest ([`import_key_digest`]) and rebuilds the text from the row
/// when it is asked for (store/requests.rs, `DERIVED_SOURCE_KEY`): change both together.
pub fn import_key(row: &RequestRow, content_hash: &Digest) -> String {
    match (&row.trace_id, &row.span_id) {
        (Some(t), Some(s)) => format!("span:{t}/{s}"),
        _ => format!("sha:{content_hash}"),
    }
}

/// The digest of [`import_key`]'s text, hashed in pieces rather than formatted first.
pub fn import_key_digest(row: &RequestRow, content_hash: &Digest) -> Digest {
    match (&row.trace_id, &row.span_id) {
        (Some(t), Some(s)) => Digest::of_parts(&[b"span:", t.as_bytes(), b"/", s.as_bytes()]),
        _ => {
            let mut hex = [0u8; 32];
            for (i, b) in content_hash.0.iter().enumerate() {
                const DIGITS: &[u8; 16] = b"0123456789abcdef";
                hex[2 * i] = DIGITS[usize::from(b >> 4)];
                hex[2 * i + 1] = DIGITS[usize::from(b & 15)];
            }
            Digest::of_parts(&[b"sha:", &hex])
        }
    }
}

/// The digest of any key text (what [`import_key_digest`] computes for an imported row's key).
pub fn key_digest(key: &str) -> Digest {
    Digest::of_parts(&[key.as_bytes()])
}

/// 128 bits of SHA-256 over the normalized row. Two imports of the same request hash alike; a changed
/// count, time, status or text hashes differently.
///
/// The hashed bytes are every field in declaration order, each string with its length, so that no two
/// rows encode alike. The hashes are stored: changing this encoding turns re-imports of rows stored by an
/// older promptctl from duplicates into conflicts, so it is versioned by its first byte.
pub fn content_hash(row: &RequestRow) -> Digest {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUF.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        encode_row(row, &mut buf);
        Digest::truncate(&Sha256::digest(&buf[..]))
    })
}

const HASH_ENCODING_VERSION: u8 = 1;

fn encode_row(r: &RequestRow, out: &mut Vec<u8>) {
    fn text(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as u32).to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    fn opt_text(out: &mut Vec<u8>, s: Option<&str>) {
        match s {
            Some(s) => {
                out.push(1);
                text(out, s);
            }
            None => out.push(0),
        }
    }
    fn num(out: &mut Vec<u8>, n: u64) {
        out.extend_from_slice(&n.to_le_bytes());
    }
    fn opt_num(out: &mut Vec<u8>, n: Option<u64>) {
        match n {
            Some(n) => {
                out.push(1);
                num(out, n);
            }
            None => out.push(0),
        }
    }
    out.push(HASH_ENCODING_VERSION);
    out.extend_from_slice(&r.ts.as_nanosecond().to_le_bytes());
    text(out, &r.provider);
    text(out, &r.request_model);
    for field in
        [&r.response_model, &r.project, &r.api_key_ref, &r.tenant_id, &r.conversation_id, &r.trace_id, &r.span_id]
    {
        opt_text(out, field.as_deref());
    }
    opt_text(out, r.logical_request_id.as_deref());
    num(out, r.attempt as u64);
    // Explicit codes: the enums' declaration order is not part of the stored format.
    out.push(match r.status {
        RequestStatus::Ok => 0,
        RequestStatus::Error => 1,
        RequestStatus::Timeout => 2,
        RequestStatus::Aborted => 3,
    });
    out.push(r.streamed as u8);
    out.push(match r.usage_source {
        UsageSource::Provider => 0,
        UsageSource::Estimated => 1,
        UsageSource::Missing => 2,
    });
    let u = &r.usage;
    for n in
        [u.input_total, u.input_uncached, u.cache_read, u.cache_write_5m, u.cache_write_1h, u.output_total, u.reasoning]
    {
        num(out, n);
    }
    opt_text(out, r.service_tier.as_deref());
    out.push(r.batch as u8);
    opt_num(out, r.latency_ms);
    opt_num(out, r.ttft_ms);
    for field in [&r.prompt_name, &r.prompt_version, &r.finish_reason, &r.error] {
        opt_text(out, field.as_deref());
    }
    num(out, r.messages.len() as u64);
    for m in &r.messages {
        text(out, &m.role);
        text(out, &m.content);
    }
    opt_text(out, r.output.as_deref());
    num(out, r.stream.len() as u64);
    for c in &r.stream {
        num(out, c.t_ms);
        num(out, c.tokens as u64);
        opt_text(out, c.text.as_deref());
    }
}

/// A trace or span id as hex. OTLP/JSON writes ids in hex; protobuf's generic JSON mapping writes them in
/// base64, which is recognized by its length and alphabet and converted.
pub fn hex_id(id: &str) -> String {
    let id = id.trim();
    let is_hex = id.bytes().all(|b| b.is_ascii_hexdigit());
    if is_hex && !id.bytes().any(|b| b.is_ascii_uppercase()) {
        return id.to_string();
    }
    if !is_hex
        && (id.len() == 24 || id.len() == 12)
        && let Some(bytes) = decode_base64(id)
    {
        return hex::encode(bytes);
    }
    id.to_ascii_lowercase()
}

fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        } as u32)
    };
    let trimmed = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut acc = 0u32;
    let mut bits = 0;
    for c in trimmed.bytes() {
        acc = (acc << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accept_numbers_strings_and_integral_floats_and_refuse_the_rest() {
        assert_eq!(token_count(&RawCount::Int(812), "input"), Ok(812));
        assert_eq!(token_count(&RawCount::Text("812".into()), "input"), Ok(812));
        assert_eq!(token_count(&RawCount::Float(812.0), "input"), Ok(812));
        assert!(token_count(&RawCount::Int(-5), "input").unwrap_err().contains("negative (-5)"));
        assert!(token_count(&RawCount::Float(1.5), "input").unwrap_err().contains("not a whole number"));
        assert!(token_count(&RawCount::Int(3_000_000_000), "input").unwrap_err().contains("more than any model"));
        assert!(token_count(&RawCount::Text("lots".into()), "input").is_err());
    }

    #[test]
    fn inclusive_and_additive_reports_meet_the_invariant() {
        let openai = ReportedUsage { input: 812, output: 120, cache_read: 512, ..Default::default() };
        let u = openai.normalize(CacheConvention::Inclusive).unwrap();
        assert_eq!((u.input_total, u.input_uncached, u.cache_read), (812, 300, 512));
        let anthropic =
            ReportedUsage { input: 300, output: 120, cache_read: 512, cache_write_5m: 40, ..Default::default() };
        let u = anthropic.normalize(CacheConvention::Additive).unwrap();
        assert_eq!((u.input_total, u.input_uncached), (852, 300));
        assert!(u.is_consistent());
        let contradictory = ReportedUsage { input: 100, cache_read: 150, ..Default::default() };
        assert!(contradictory.normalize(CacheConvention::Inclusive).is_err());
        let reasoning = ReportedUsage { output: 10, reasoning: 20, ..Default::default() };
        assert!(reasoning.normalize(CacheConvention::Additive).is_err());
    }

    #[test]
    fn times_with_offsets_become_utc_and_naive_times_need_a_zone() {
        let t = parse_time("2026-10-01T14:00:00+02:00", None).unwrap();
        assert_eq!(t.to_string(), "2026-10-01T12:00:00Z");
        let err = parse_time("2026-10-01T12:00:00", None).unwrap_err();
        assert!(err.contains("--assume-tz"), "{err}");
        let berlin = parse_zone("Europe/Berlin").unwrap();
        assert_eq!(parse_time("2026-10-01T12:00:00", Some(&berlin)).unwrap().to_string(), "2026-10-01T10:00:00Z");
        let fixed = parse_zone("-05:00").unwrap();
        assert_eq!(parse_time("2026-10-01T12:00:00", Some(&fixed)).unwrap().to_string(), "2026-10-01T17:00:00Z");
        assert!(parse_zone("Mars/Olympus").is_err());
        assert!(parse_time("yesterday", None).is_err());
    }

    #[test]
    fn providers_are_named_by_trace_or_by_model_family() {
        assert_eq!(provider_id(Some("Anthropic"), "x"), "anthropic");
        assert_eq!(provider_id(Some("gcp.gemini"), "x"), "google");
        assert_eq!(provider_id(Some("aws.bedrock"), "x"), "bedrock");
        assert_eq!(provider_id(None, "gpt-4o-mini"), "openai");
        assert_eq!(provider_id(None, "claude-sonnet-4-5"), "anthropic");
        assert_eq!(provider_id(None, "my-llama"), "unknown");
    }

    #[test]
    fn error_types_and_messages_name_timeouts_and_cancellations() {
        assert_eq!(status_from_error_type("timeout"), RequestStatus::Timeout);
        assert_eq!(status_from_error_type("Request timed out."), RequestStatus::Timeout);
        assert_eq!(status_from_error_type("client_cancelled"), RequestStatus::Aborted);
        assert_eq!(status_from_error_type("rate_limit"), RequestStatus::Error);
    }

    #[test]
    fn key_digests_are_the_digests_of_the_key_texts() {
        let mut row: RequestRow = crate::trace::generate::generate(&crate::trace::generate::GenerateConfig {
            conversations: 1,
            ..Default::default()
        })
        .next()
        .unwrap()
        .row;
        let hash = content_hash(&row);
        let text = import_key(&row, &hash);
        assert!(text.starts_with("span:"), "{text}");
        assert_eq!(import_key_digest(&row, &hash), key_digest(&text));
        row.span_id = None;
        let text = import_key(&row, &hash);
        assert_eq!(text, format!("sha:{hash}"));
        assert_eq!(import_key_digest(&row, &hash), key_digest(&text));
    }

    #[test]
    fn ids_in_base64_become_hex() {
        assert_eq!(hex_id("5B8EFFF798038103D269B633813FC60C"), "5b8efff798038103d269b633813fc60c");
        // 16 bytes 0x00..0x0f in base64.
        assert_eq!(hex_id("AAECAwQFBgcICQoLDA0ODw=="), "000102030405060708090a0b0c0d0e0f");
    }
}
