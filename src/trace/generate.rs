//! Deterministic synthetic traffic for the repo's prompts, with planted stream tails and their ground
//! truth: the input of benchmarks, of tail-detection tests and of `promptctl trace generate` (demos).
//!
//! The traffic model, per conversation: a `triage` call (gpt-4.1-mini), then `support-reply` turns
//! (gpt-4o-mini, streamed) whose input grows with the history and whose stable prefix is served from
//! the prompt cache; sometimes an `extract-order` call (claude-sonnet-4-5, cache writes and reads, a
//! few batch and long-context requests), an escalation of a hard turn to a reasoning model (o4-mini,
//! streamed, reasoning tokens), and a language check on a self-hosted model the price book cannot know.
//! About 2.5 % of calls fail and are retried. Turn counts are heavy-tailed, so per-conversation cost is
//! super-linear in turns, as in production.
//!
//! Timing noise is bounded (uniform jitter), so a clean set has no tail events by construction and a
//! planted one is unambiguous. The same seed gives the same rows, byte for byte.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Read};

use jiff::Timestamp;
use rand::RngExt;
use rand::distr::Distribution;
use rand_distr::LogNormal;
use serde::Serialize;

use crate::stats::sampling::{SeededRng, seeded_rng};
use crate::trace::model::{Message, RequestRow, RequestStatus, StreamCheckpoint, Usage, UsageSource};
use crate::trace::tails::TailKind;

/// How often each tail kind is planted, per eligible stream (final, successful support-reply streams).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlantRates {
    pub ttft_regression: f64,
    pub stall: f64,
    pub r#loop: f64,
    pub truncated: f64,
    pub aborted: f64,
    pub slow_tail: f64,
}

impl PlantRates {
    pub const NONE: PlantRates =
        PlantRates { ttft_regression: 0.0, stall: 0.0, r#loop: 0.0, truncated: 0.0, aborted: 0.0, slow_tail: 0.0 };

    /// A few percent of streams go wrong, as in a bad week.
    pub const TYPICAL: PlantRates = PlantRates {
        ttft_regression: 0.015,
        stall: 0.02,
        r#loop: 0.006,
        truncated: 0.008,
        aborted: 0.01,
        slow_tail: 0.008,
    };
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateConfig {
    pub seed: u64,
    pub conversations: usize,
    /// The first conversation can start here; starts spread uniformly over `span_ms`.
    pub start: Timestamp,
    pub span_ms: i64,
    pub plant: PlantRates,
    /// Keep each chunk's text (loop detection needs it; costs bytes).
    pub chunk_text: bool,
    /// Write messages and output texts into rows.
    pub messages: bool,
    /// Record stream checkpoints at all (without them rows carry only TTFT and duration).
    pub checkpoints: bool,
}

impl Default for GenerateConfig {
    fn default() -> Self {
        GenerateConfig {
            seed: 7,
            conversations: 1_000,
            start: "2026-10-01T00:00:00Z".parse().expect("a valid time"),
            span_ms: 7 * 86_400_000,
            plant: PlantRates::TYPICAL,
            chunk_text: true,
            messages: true,
            checkpoints: true,
        }
    }
}

/// One generated provider call and the tail planted in it, if any.
#[derive(Debug, Clone, PartialEq)]
pub struct GeneratedRequest {
    pub row: RequestRow,
    pub planted: Option<TailKind>,
}

const TENANTS: [&str; 12] = [
    "acme",
    "globex",
    "initech",
    "umbrella",
    "hooli",
    "stark",
    "wayne",
    "wonka",
    "tyrell",
    "cyberdyne",
    "soylent",
    "vandelay",
];

const SUPPORT_V1: &str = "3f2a9c1b7d04";
const SUPPORT_V2: &str = "9e1c5d2a8b71";
const TRIAGE_VERSION: &str = "a41c07e2f9b3";
const EXTRACT_VERSION: &str = "77b0d3c6e1a5";

const REPLY_SENTENCES: [&str; 24] = [
    "Thanks for reaching out, and sorry for the trouble with your order.",
    "I have checked the order and it left our warehouse on Tuesday.",
    "The tracking link shows the parcel with the local carrier now.",
    "I have started a replacement that ships within two business days.",
    "You do not need to send the damaged item back to us.",
    "Our return policy gives you 30 days from delivery, and the details are at https://acme.example/returns.",
    "I can see the refund was issued to your card this morning.",
    "Banks usually take three to five business days to show a refund.",
    "Could you send me the order number so that I can look into it?",
    "I have added a note to your account so the team sees the history.",
    "If the parcel does not arrive by Friday, reply here and I will escalate it.",
    "The blender jar is covered by the two-year warranty.",
    "I have sent a prepaid return label to your email address.",
    "Please keep the original packaging until the replacement arrives.",
    "I understand how frustrating a late delivery is before a weekend.",
    "The charge you see is a temporary authorization, not a payment.",
    "It will drop off your statement within a few days.",
    "I have updated the delivery address on the open order.",
    "The kettle you ordered is back in stock next week.",
    "I can offer free express shipping on the replacement.",
    "Your account email is now updated, and you will get a confirmation.",
    "The discount code applies to full-price items only.",
    "I have merged the two tickets so you only hear from one of us.",
    "Let me know if there is anything else I can help with.",
];

const USER_MESSAGES: [&str; 10] = [
    "My order #4411 never arrived and the tracking has not moved in a week.",
    "The blender jar came cracked. I want a replacement, not a refund.",
    "Why was I charged twice for the same kettle?",
    "Can I still return the toaster? I bought it three weeks ago.",
    "I moved last month, please change the delivery address on my open order.",
    "Where is my refund? You said it was sent on Monday.",
    "The discount code SPRING20 does not work at checkout.",
    "Your courier left the parcel in the rain and the box is soaked.",
    "I need an invoice with my company name for order #5521.",
    "This is the third time I am writing about the same problem.",
];

const LOOP_PHRASES: [&str; 4] = [
    "I will escalate this to the shipping team right away.",
    "Please let me know if there is anything else I can help with.",
    "I'm sorry, I can't help with that request.",
    "The refund will be processed within five business days.",
];

/// Generates the rows of `config.conversations` conversations, conversation by conversation.
pub fn generate(config: &GenerateConfig) -> impl Iterator<Item = GeneratedRequest> + Send + use<> {
    let mut g = Generator { config: config.clone(), rng: seeded_rng(config.seed), next: 0, queue: VecDeque::new() };
    std::iter::from_fn(move || g.next_request())
}

struct Generator {
    config: GenerateConfig,
    rng: SeededRng,
    next: usize,
    queue: VecDeque<GeneratedRequest>,
}

/// One model call before timing and retries are decided.
struct Call<'a> {
    provider: &'static str,
    model: &'static str,
    response_model: &'static str,
    prompt: (&'static str, &'a str),
    usage: Usage,
    streamed: bool,
    tokens_per_second: f64,
    ttft_ms: f64,
    messages: Vec<Message>,
    words: Vec<&'static str>,
    finish_reason: &'static str,
    usage_source: UsageSource,
    service_tier: Option<&'static str>,
    batch: bool,
    plant_eligible: bool,
}

impl Generator {
    fn next_request(&mut self) -> Option<GeneratedRequest> {
        while self.queue.is_empty() {
            if self.next >= self.config.conversations {
                return None;
            }
            self.conversation(self.next);
            self.next += 1;
        }
        self.queue.pop_front()
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes).fold(String::with_capacity(bytes * 2), |mut s, _| {
            let _ = write!(s, "{:02x}", self.rng.random::<u8>());
            s
        })
    }

    fn tenant(&mut self) -> &'static str {
        // Zipf-like: a few tenants bring most of the traffic.
        let weights: Vec<f64> = (1..=TENANTS.len()).map(|k| 1.0 / k as f64).collect();
        let total: f64 = weights.iter().sum();
        let mut x = self.rng.random::<f64>() * total;
        for (t, w) in TENANTS.iter().zip(&weights) {
            if x < *w {
                return t;
            }
            x -= w;
        }
        TENANTS[0]
    }

    fn lognormal(&mut self, median: f64, sigma: f64, min: f64, max: f64) -> f64 {
        let d = LogNormal::new(median.ln(), sigma).expect("valid lognormal");
        d.sample(&mut self.rng).clamp(min, max)
    }

    fn jitter(&mut self, spread: f64) -> f64 {
        self.rng.random_range(1.0 - spread..1.0 + spread)
    }

    fn conversation(&mut self, index: usize) {
        let c = &self.config;
        let (start, span) = (c.start.as_millisecond(), c.span_ms.max(1));
        // Conversations start in order, a little jittered, so that the rows come out nearly in time order
        // as exporters flush them.
        let slot = span / c.conversations.max(1) as i64;
        let mut t = start + index as i64 * slot + self.rng.random_range(0..slot.max(1));
        let midpoint = start + span / 2;
        let warmup_end = start + span / 10;
        let conversation_id = format!("c-{:06}", index);
        let trace_id = self.hex(16);
        let tenant = self.tenant();
        let turns = 1 + self.lognormal(2.0, 0.9, 0.0, 39.0).floor() as usize;
        let escalate_at = (turns >= 2 && self.rng.random_bool(0.06)).then(|| self.rng.random_range(2..=turns));
        let extract = self.rng.random_bool(0.25);
        let language_check = self.rng.random_bool(0.02);
        let user = USER_MESSAGES[self.rng.random_range(0..USER_MESSAGES.len())];
        let support_version = if t < midpoint { SUPPORT_V1 } else { SUPPORT_V2 };

        let body = self.rng.random_range(60..400);
        let triage = Call {
            provider: "openai",
            model: "gpt-4.1-mini",
            response_model: "gpt-4.1-mini-2025-04-14",
            prompt: ("triage", TRIAGE_VERSION),
            usage: Usage::from_inclusive(280 + body, 0, 0, self.rng.random_range(25..45), 0),
            streamed: false,
            tokens_per_second: 110.0,
            ttft_ms: 380.0,
            messages: vec![Message { role: "user".into(), content: user.into() }],
            words: vec!["{\"queue\":", "\"shipping\",", "\"priority\":", "\"normal\"}"],
            finish_reason: "stop",
            usage_source: UsageSource::Provider,
            service_tier: Some("default"),
            batch: false,
            plant_eligible: false,
        };
        self.emit(&triage, &mut t, &trace_id, &conversation_id, tenant, warmup_end);

        if language_check {
            let call = Call {
                provider: "vllm",
                model: "llama-3.1-8b-instruct",
                response_model: "llama-3.1-8b-instruct",
                prompt: ("language-check", "0c5e2b9d4f18"),
                usage: Usage::from_inclusive(200, 0, 0, 3, 0),
                streamed: false,
                tokens_per_second: 200.0,
                ttft_ms: 60.0,
                messages: vec![Message { role: "user".into(), content: user.into() }],
                words: vec!["en"],
                finish_reason: "stop",
                usage_source: UsageSource::Estimated,
                service_tier: None,
                batch: false,
                plant_eligible: false,
            };
            self.emit(&call, &mut t, &trace_id, &conversation_id, tenant, warmup_end);
        }

        if extract {
            self.extract_order(&mut t, &trace_id, &conversation_id, tenant, warmup_end, user);
        }

        // The support conversation: input grows with the history; its stable prefix is cached.
        let fixed = 1_100u64;
        let mut history = 0u64;
        let mut previous_input = fixed;
        for turn in 1..=turns {
            let user_tokens = self.rng.random_range(30..150);
            let input = fixed + history + user_tokens;
            let cached =
                if self.rng.random_bool(0.9) && previous_input >= 1024 { previous_input / 128 * 128 } else { 0 };
            let output = self.lognormal(110.0, 0.65, 25.0, 700.0) as u64;
            let words = self.reply_words(output as usize);
            let output = words.len() as u64;
            let mut messages = vec![Message {
                role: "system".into(),
                content: "You are the first-line support agent for Acme…".into(),
            }];
            messages.push(Message { role: "user".into(), content: user.into() });
            let hard = escalate_at == Some(turn);
            let (model, response_model, tps, ttft, reasoning, provider_version) = if hard {
                let reasoning = self.rng.random_range(500..1500u64);
                ("o4-mini", "o4-mini-2025-04-16", 120.0, 1_000.0 + reasoning as f64, reasoning, support_version)
            } else {
                ("gpt-4o-mini", "gpt-4o-mini-2024-07-18", 85.0, 350.0, 0, support_version)
            };
            let call = Call {
                provider: "openai",
                model,
                response_model,
                prompt: ("support-reply", provider_version),
                usage: Usage::from_inclusive(input, cached.min(input), 0, output + reasoning, reasoning),
                streamed: true,
                tokens_per_second: tps,
                ttft_ms: ttft,
                messages,
                words,
                finish_reason: "stop",
                usage_source: UsageSource::Provider,
                service_tier: Some(if !hard && self.rng.random_bool(0.05) { "priority" } else { "default" }),
                batch: false,
                plant_eligible: !hard,
            };
            self.emit(&call, &mut t, &trace_id, &conversation_id, tenant, warmup_end);
            history += user_tokens + output;
            previous_input = input;
            t += self.rng.random_range(20_000..120_000);
        }
    }

    fn extract_order(
        &mut self,
        t: &mut i64,
        trace_id: &str,
        conversation: &str,
        tenant: &'static str,
        warmup_end: i64,
        user: &str,
    ) {
        let prefix = 1_500u64;
        let long_attachment = self.rng.random_bool(0.005);
        let email =
            if long_attachment { self.rng.random_range(210_000..260_000) } else { self.rng.random_range(150..600) };
        let (read, write) = if self.rng.random_bool(0.7) { (prefix, 0) } else { (0, prefix) };
        let call = Call {
            provider: "anthropic",
            model: "claude-sonnet-4-5",
            response_model: "claude-sonnet-4-5-20250929",
            prompt: ("extract-order", EXTRACT_VERSION),
            usage: Usage::from_additive(email, read, write, 0, self.rng.random_range(60..140), 0),
            streamed: false,
            tokens_per_second: 60.0,
            ttft_ms: 700.0,
            messages: vec![Message { role: "user".into(), content: user.into() }],
            words: vec![
                "{\"order_id\":",
                "\"4411\",",
                "\"problem\":",
                "\"damaged\",",
                "\"wants\":",
                "\"replacement\"}",
            ],
            finish_reason: "end_turn",
            usage_source: UsageSource::Provider,
            service_tier: Some("standard"),
            batch: !long_attachment && self.rng.random_bool(0.08),
            plant_eligible: false,
        };
        self.emit(&call, t, trace_id, conversation, tenant, warmup_end);
    }

    fn reply_words(&mut self, tokens: usize) -> Vec<&'static str> {
        let mut order: Vec<usize> = (0..REPLY_SENTENCES.len()).collect();
        // A partial Fisher–Yates shuffle: distinct sentences, so that replies do not repeat themselves.
        let mut words = Vec::with_capacity(tokens + 16);
        for i in 0..order.len() {
            if words.len() >= tokens {
                break;
            }
            let j = self.rng.random_range(i..order.len());
            order.swap(i, j);
            words.extend(REPLY_SENTENCES[order[i]].split(' '));
        }
        words
    }

    /// Decides retries, timing, checkpoints and planted tails, and queues the rows.
    fn emit(
        &mut self,
        call: &Call<'_>,
        t: &mut i64,
        trace_id: &str,
        conversation: &str,
        tenant: &'static str,
        warmup_end: i64,
    ) {
        let logical = format!("{trace_id}-{}", self.hex(4));
        let failure = self.rng.random::<f64>();
        let failed_first = if failure < 0.02 {
            Some(RequestStatus::Error)
        } else if failure < 0.025 {
            Some(RequestStatus::Timeout)
        } else {
            None
        };
        let mut attempt = 1;
        if let Some(status) = failed_first {
            let timeout = status == RequestStatus::Timeout;
            let latency = if timeout { 30_000 } else { self.rng.random_range(80..300) };
            let error =
                if timeout { "request timed out after 30 s" } else { "429 Too Many Requests: rate limit reached" };
            let row = self.row(call, *t, trace_id, conversation, tenant, &logical, attempt, latency);
            // A rate-limited call is refused before any token is processed. A timed-out one was processed
            // and billed, but the client never saw the usage block: the tracer counted the tokens itself.
            let (usage, usage_source) = if timeout {
                let u = &call.usage;
                let output = self.rng.random_range(0..=u.output_total.max(1));
                (Usage::from_inclusive(u.input_total, 0, 0, output, 0), UsageSource::Estimated)
            } else {
                (Usage::default(), UsageSource::Missing)
            };
            let row = RequestRow {
                status,
                usage_source,
                usage,
                finish_reason: None,
                error: Some(error.into()),
                output: None,
                ttft_ms: None,
                stream: Vec::new(),
                ..row
            };
            self.queue.push_back(GeneratedRequest { row, planted: None });
            *t += latency as i64 + self.rng.random_range(500..2_000);
            attempt += 1;
        }
        let plant = if call.plant_eligible { self.choose_plant(*t >= warmup_end) } else { None };
        let (row, duration, planted) = self.success(call, *t, trace_id, conversation, tenant, &logical, attempt, plant);
        self.queue.push_back(GeneratedRequest { row, planted });
        *t += duration as i64;
    }

    fn choose_plant(&mut self, baseline_ready: bool) -> Option<TailKind> {
        let p = self.config.plant;
        let x = self.rng.random::<f64>();
        let mut edge = 0.0;
        for (kind, rate) in [
            (TailKind::TtftRegression, if baseline_ready { p.ttft_regression } else { 0.0 }),
            (TailKind::Stall, p.stall),
            (TailKind::Loop, p.r#loop),
            (TailKind::Truncated, p.truncated),
            (TailKind::Aborted, p.aborted),
            (TailKind::SlowTail, p.slow_tail),
        ] {
            edge += rate;
            if x < edge {
                return Some(kind);
            }
        }
        None
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        call: &Call<'_>,
        ts: i64,
        trace_id: &str,
        conversation: &str,
        tenant: &str,
        logical: &str,
        attempt: u32,
        latency: u64,
    ) -> RequestRow {
        RequestRow {
            ts: Timestamp::from_millisecond(ts).expect("a time in range"),
            provider: call.provider.into(),
            request_model: call.model.into(),
            response_model: Some(call.response_model.into()),
            project: Some(if call.provider == "anthropic" { "wrk_support".into() } else { "proj_support".into() }),
            api_key_ref: None,
            tenant_id: Some(tenant.into()),
            conversation_id: Some(conversation.into()),
            trace_id: Some(trace_id.into()),
            span_id: Some(self.hex(8)),
            logical_request_id: Some(logical.into()),
            attempt,
            status: RequestStatus::Ok,
            streamed: call.streamed,
            usage_source: call.usage_source,
            usage: call.usage,
            service_tier: call.service_tier.map(Into::into),
            batch: call.batch,
            latency_ms: Some(latency),
            ttft_ms: None,
            prompt_name: Some(call.prompt.0.into()),
            prompt_version: Some(call.prompt.1.into()),
            finish_reason: Some(call.finish_reason.into()),
            error: None,
            messages: if self.config.messages { call.messages.clone() } else { Vec::new() },
            output: None,
            stream: Vec::new(),
        }
    }

    /// The successful (or planted-broken) final attempt, how long it took, and the tail actually planted
    /// (a stream too short for a stall or a slow tail gets none).
    #[allow(clippy::too_many_arguments)]
    fn success(
        &mut self,
        call: &Call<'_>,
        ts: i64,
        trace_id: &str,
        conversation: &str,
        tenant: &str,
        logical: &str,
        attempt: u32,
        plant: Option<TailKind>,
    ) -> (RequestRow, u64, Option<TailKind>) {
        let mut row = self.row(call, ts, trace_id, conversation, tenant, logical, attempt, 0);
        let mut words = call.words.clone();
        if plant == Some(TailKind::Loop) {
            let keep = (words.len() * 2 / 5).max(8).min(words.len());
            words.truncate(keep);
            let phrase = LOOP_PHRASES[self.rng.random_range(0..LOOP_PHRASES.len())];
            for _ in 0..self.rng.random_range(10..16) {
                words.extend(phrase.split(' '));
            }
            row.finish_reason = Some("length".into());
        }
        let ttft = call.ttft_ms
            * self.jitter(0.3)
            * if plant == Some(TailKind::TtftRegression) { self.rng.random_range(5.0..9.0) } else { 1.0 };
        let ttft = ttft.round().max(1.0) as u64;
        if !call.streamed {
            let output = row.usage.output_total as f64;
            let latency = ttft + (output / call.tokens_per_second * 1000.0 * self.jitter(0.3)) as u64;
            row.latency_ms = Some(latency);
            if self.config.messages {
                row.output = Some(words.join(" "));
            }
            return (row, latency, None);
        }
        // Chunks of one or two words; each word counts as one token.
        let mut chunks: Vec<(u64, u32, String)> = Vec::new();
        let mut i = 0;
        while i < words.len() {
            let take = self.rng.random_range(1..=2usize).min(words.len() - i);
            let text = words[i..i + take].iter().fold(String::new(), |mut s, w| {
                s.push_str(w);
                s.push(' ');
                s
            });
            chunks.push((0, take as u32, text));
            i += take;
        }
        let n = chunks.len();
        // Quarters of a short stream are a handful of chunks: too few to plant a slow tail in reliably.
        let plant = match plant {
            Some(TailKind::Stall) if n <= 10 => None,
            Some(TailKind::SlowTail) if n < 24 => None,
            other => other,
        };
        let stall_at = (plant == Some(TailKind::Stall) && n > 10).then(|| self.rng.random_range(5..n - 4));
        let cut_at = matches!(plant, Some(TailKind::Truncated | TailKind::Aborted))
            .then(|| self.rng.random_range(n * 3 / 10..n * 8 / 10).max(1));
        let mut at = ttft;
        let slow_from = n * 3 / 4;
        for (k, chunk) in chunks.iter_mut().enumerate() {
            if k > 0 {
                let mut gap = chunk.1 as f64 / call.tokens_per_second * 1000.0 * self.jitter(0.4);
                if plant == Some(TailKind::SlowTail) && k >= slow_from {
                    gap *= self.rng.random_range(7.0..11.0);
                }
                if stall_at == Some(k) {
                    gap += self.rng.random_range(2_200.0..4_000.0);
                }
                at += gap.round().max(1.0) as u64;
            }
            chunk.0 = at;
        }
        if let Some(cut) = cut_at {
            chunks.truncate(cut);
        }
        let streamed_tokens: u64 = chunks.iter().map(|c| c.1 as u64).sum();
        let latency = at + self.rng.random_range(10..40);
        row.ttft_ms = Some(ttft);
        row.latency_ms = Some(if cut_at.is_some() { chunks.last().map_or(ttft, |c| c.0) + 5 } else { latency });
        let reasoning = row.usage.reasoning;
        row.usage = Usage::from_inclusive(
            row.usage.input_total,
            row.usage.cache_read,
            0,
            streamed_tokens + reasoning,
            reasoning,
        );
        match plant {
            Some(TailKind::Truncated) => {
                row.finish_reason = None;
                row.usage_source = UsageSource::Missing;
                row.usage = Usage::default();
            }
            Some(TailKind::Aborted) => {
                row.status = RequestStatus::Aborted;
                row.finish_reason = None;
                row.usage_source = UsageSource::Missing;
                row.usage = Usage::default();
                row.error = Some("client disconnected".into());
            }
            _ => {}
        }
        if self.config.messages {
            row.output = Some(chunks.iter().map(|c| c.2.as_str()).collect::<String>());
        }
        if self.config.checkpoints {
            let keep_text = self.config.chunk_text;
            row.stream = chunks
                .into_iter()
                .map(|(t_ms, tokens, text)| StreamCheckpoint { t_ms, tokens, text: keep_text.then_some(text) })
                .collect();
        }
        let duration = row.latency_ms.unwrap_or(0);
        (row, duration, plant)
    }
}

/// A request as a promptctl JSONL line (FORMATS.md), without the line break.
pub fn jsonl_line(row: &RequestRow, out: &mut Vec<u8>) {
    #[derive(Serialize)]
    struct Line<'a> {
        ts: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        trace_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        span_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        conversation_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        tenant_id: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        project: Option<&'a str>,
        provider: &'a str,
        model: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        response_model: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        logical_request_id: Option<&'a str>,
        attempt: u32,
        status: RequestStatus,
        streamed: bool,
        usage_source: UsageSource,
        #[serde(skip_serializing_if = "Option::is_none")]
        usage: Option<LineUsage>,
        #[serde(skip_serializing_if = "Option::is_none")]
        service_tier: Option<&'a str>,
        batch: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        latency_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        ttft_ms: Option<u64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        prompt: Option<Prompt<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        finish_reason: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<&'a str>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        messages: &'a [Message],
        #[serde(skip_serializing_if = "Option::is_none")]
        output: Option<&'a str>,
        #[serde(skip_serializing_if = "<[_]>::is_empty")]
        stream: &'a [StreamCheckpoint],
    }
    #[derive(Serialize)]
    struct LineUsage {
        input_tokens: u64,
        output_tokens: u64,
        cache_read_tokens: u64,
        cache_write_tokens: u64,
        #[serde(skip_serializing_if = "is_zero")]
        cache_write_1h_tokens: u64,
        reasoning_tokens: u64,
    }
    fn is_zero(n: &u64) -> bool {
        *n == 0
    }
    #[derive(Serialize)]
    struct Prompt<'a> {
        name: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        version: Option<&'a str>,
    }
    let u = &row.usage;
    let line = Line {
        ts: row.ts.to_string(),
        trace_id: row.trace_id.as_deref(),
        span_id: row.span_id.as_deref(),
        conversation_id: row.conversation_id.as_deref(),
        tenant_id: row.tenant_id.as_deref(),
        project: row.project.as_deref(),
        provider: &row.provider,
        model: &row.request_model,
        response_model: row.response_model.as_deref(),
        logical_request_id: row.logical_request_id.as_deref(),
        attempt: row.attempt,
        status: row.status,
        streamed: row.streamed,
        usage_source: row.usage_source,
        usage: (row.usage_source != UsageSource::Missing).then_some(LineUsage {
            input_tokens: u.input_total,
            output_tokens: u.output_total,
            cache_read_tokens: u.cache_read,
            cache_write_tokens: u.cache_write_5m,
            cache_write_1h_tokens: u.cache_write_1h,
            reasoning_tokens: u.reasoning,
        }),
        service_tier: row.service_tier.as_deref(),
        batch: row.batch,
        latency_ms: row.latency_ms,
        ttft_ms: row.ttft_ms,
        prompt: row.prompt_name.as_deref().map(|name| Prompt { name, version: row.prompt_version.as_deref() }),
        finish_reason: row.finish_reason.as_deref(),
        error: row.error.as_deref(),
        messages: &row.messages,
        output: row.output.as_deref(),
        stream: &row.stream,
    };
    serde_json::to_writer(out, &line).expect("a JSONL line serializes");
}

/// A request as one OTLP/JSON span with GenAI attributes and chunk events.
pub fn otlp_span(row: &RequestRow, parent: &str, out: &mut Vec<u8>) {
    let start = row.ts.as_nanosecond() as u64;
    let end = start + row.latency_ms.unwrap_or(0) * 1_000_000;
    let operation = "chat";
    let _ = write_str(
        out,
        &format!(
            "{{\"traceId\":\"{}\",\"spanId\":\"{}\",\"parentSpanId\":\"{parent}\",\"name\":\"{operation} {}\",\"kind\":3,\"startTimeUnixNano\":\"{start}\",\"endTimeUnixNano\":\"{end}\",\"attributes\":[",
            row.trace_id.as_deref().unwrap_or(""),
            row.span_id.as_deref().unwrap_or(""),
            row.request_model
        ),
    );
    let mut first = true;
    let mut attr = |out: &mut Vec<u8>, key: &str, value: AttrOut<'_>| {
        if !first {
            out.push(b',');
        }
        first = false;
        let _ = write_str(out, &format!("{{\"key\":\"{key}\",\"value\":"));
        match value {
            AttrOut::Str(s) => {
                out.extend_from_slice(b"{\"stringValue\":");
                serde_json::to_writer(&mut *out, s).expect("a string serializes");
                out.push(b'}');
            }
            AttrOut::Int(i) => {
                let _ = write_str(out, &format!("{{\"intValue\":\"{i}\"}}"));
            }
            AttrOut::Double(d) => {
                let _ = write_str(out, &format!("{{\"doubleValue\":{d}}}"));
            }
            AttrOut::Bool(b) => {
                let _ = write_str(out, &format!("{{\"boolValue\":{b}}}"));
            }
            AttrOut::StrArray(s) => {
                out.extend_from_slice(b"{\"arrayValue\":{\"values\":[{\"stringValue\":");
                serde_json::to_writer(&mut *out, s).expect("a string serializes");
                out.extend_from_slice(b"}]}}");
            }
        }
        out.push(b'}');
    };
    attr(out, "gen_ai.operation.name", AttrOut::Str(operation));
    attr(out, "gen_ai.provider.name", AttrOut::Str(&row.provider));
    attr(out, "gen_ai.request.model", AttrOut::Str(&row.request_model));
    if let Some(m) = &row.response_model {
        attr(out, "gen_ai.response.model", AttrOut::Str(m));
    }
    if row.streamed {
        attr(out, "gen_ai.request.stream", AttrOut::Bool(true));
    }
    if row.usage_source != UsageSource::Missing {
        let u = &row.usage;
        attr(out, "gen_ai.usage.input_tokens", AttrOut::Int(u.input_total));
        attr(out, "gen_ai.usage.output_tokens", AttrOut::Int(u.output_total));
        if u.cache_read > 0 {
            attr(out, "gen_ai.usage.cache_read.input_tokens", AttrOut::Int(u.cache_read));
        }
        if u.cache_write_5m > 0 {
            attr(out, "gen_ai.usage.cache_creation.input_tokens", AttrOut::Int(u.cache_write_5m));
        }
        if u.reasoning > 0 {
            attr(out, "gen_ai.usage.reasoning.output_tokens", AttrOut::Int(u.reasoning));
        }
        if row.usage_source == UsageSource::Estimated {
            attr(out, "promptctl.usage_source", AttrOut::Str("estimated"));
        }
    }
    for (key, value) in [
        ("gen_ai.conversation.id", &row.conversation_id),
        ("tenant.id", &row.tenant_id),
        ("promptctl.project", &row.project),
        ("promptctl.prompt.name", &row.prompt_name),
        ("promptctl.prompt.version", &row.prompt_version),
        ("promptctl.logical_request_id", &row.logical_request_id),
        ("openai.response.service_tier", &row.service_tier),
    ] {
        if let Some(v) = value {
            attr(out, key, AttrOut::Str(v));
        }
    }
    if row.attempt > 1 {
        attr(out, "promptctl.attempt", AttrOut::Int(row.attempt as u64));
    }
    if row.batch {
        attr(out, "promptctl.batch", AttrOut::Bool(true));
    }
    if let Some(f) = &row.finish_reason {
        attr(out, "gen_ai.response.finish_reasons", AttrOut::StrArray(f));
    }
    if let Some(ttft) = row.ttft_ms {
        attr(out, "gen_ai.response.time_to_first_chunk", AttrOut::Double(ttft as f64 / 1000.0));
    }
    let error_type = match row.status {
        RequestStatus::Ok => None,
        RequestStatus::Error => Some("rate_limit"),
        RequestStatus::Timeout => Some("timeout"),
        RequestStatus::Aborted => Some("client_cancelled"),
    };
    if let Some(t) = error_type {
        attr(out, "error.type", AttrOut::Str(t));
    }
    if !row.messages.is_empty() {
        let messages: Vec<serde_json::Value> = row
            .messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "parts": [{"type": "text", "content": m.content}]}))
            .collect();
        attr(out, "gen_ai.input.messages", AttrOut::Str(&serde_json::Value::Array(messages).to_string()));
    }
    if let Some(o) = &row.output {
        let messages = serde_json::json!([{"role": "assistant", "parts": [{"type": "text", "content": o}]}]);
        attr(out, "gen_ai.output.messages", AttrOut::Str(&messages.to_string()));
    }
    out.push(b']');
    if !row.stream.is_empty() {
        out.extend_from_slice(b",\"events\":[");
        for (i, c) in row.stream.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let _ = write_str(
                out,
                &format!(
                    "{{\"timeUnixNano\":\"{}\",\"name\":\"gen_ai.content.chunk\",\"attributes\":[{{\"key\":\"gen_ai.stream.tokens\",\"value\":{{\"intValue\":\"{}\"}}}}",
                    start + c.t_ms * 1_000_000,
                    c.tokens
                ),
            );
            if let Some(text) = &c.text {
                out.extend_from_slice(b",{\"key\":\"gen_ai.stream.text\",\"value\":{\"stringValue\":");
                serde_json::to_writer(&mut *out, text).expect("a string serializes");
                out.extend_from_slice(b"}}");
            }
            out.extend_from_slice(b"]}");
        }
        out.push(b']');
    }
    if row.status != RequestStatus::Ok {
        out.extend_from_slice(b",\"status\":{\"code\":2");
        if let Some(e) = &row.error {
            out.extend_from_slice(b",\"message\":");
            serde_json::to_writer(&mut *out, e).expect("a string serializes");
        }
        out.push(b'}');
    }
    out.push(b'}');
}

enum AttrOut<'a> {
    Str(&'a str),
    Int(u64),
    Double(f64),
    Bool(bool),
    StrArray(&'a str),
}

fn write_str(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Export formats the generator writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    Jsonl,
    /// One `ExportTraceServiceRequest` document holding every span (batches of spans per resource).
    OtlpDocument,
    /// One `ExportTraceServiceRequest` per line, as the Collector's file exporter writes.
    OtlpLines,
}

/// Spans per `resourceSpans` entry (exporters batch a few hundred to a few thousand).
const OTLP_BATCH: usize = 500;

/// Generated traffic as the bytes of an export file, produced as they are read: gigabytes can flow
/// through a pipe or an importer without ever existing at once.
pub struct GeneratedExport<I> {
    rows: I,
    format: ExportFormat,
    buf: Vec<u8>,
    pos: usize,
    in_batch: usize,
    started: bool,
    finished: bool,
    /// Stop after this many rows (`u64::MAX`: when the rows run out).
    limit: u64,
    written: u64,
}

impl<I: Iterator<Item = GeneratedRequest>> GeneratedExport<I> {
    pub fn new(rows: I, format: ExportFormat) -> Self {
        GeneratedExport {
            rows,
            format,
            buf: Vec::with_capacity(64 * 1024),
            pos: 0,
            in_batch: 0,
            started: false,
            finished: false,
            limit: u64::MAX,
            written: 0,
        }
    }

    /// Rows written so far.
    pub fn rows_written(&self) -> u64 {
        self.written
    }

    pub fn with_limit(mut self, rows: u64) -> Self {
        self.limit = rows;
        self
    }

    const RESOURCE: &'static str = r#"{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"support-bot"}},{"key":"deployment.environment","value":{"stringValue":"production"}}]},"scopeSpans":[{"scope":{"name":"opentelemetry.instrumentation.openai_v2","version":"2.1b0"},"spans":["#;
    const BATCH_END: &'static str = "]}]}";

    fn refill(&mut self) {
        self.buf.clear();
        self.pos = 0;
        while self.buf.len() < 48 * 1024 && !self.finished {
            let next = if self.written < self.limit { self.rows.next() } else { None };
            match (self.format, next) {
                (ExportFormat::Jsonl, Some(g)) => {
                    jsonl_line(&g.row, &mut self.buf);
                    self.buf.push(b'\n');
                }
                (ExportFormat::Jsonl, None) => self.finished = true,
                (ExportFormat::OtlpDocument, Some(g)) => {
                    if !self.started {
                        self.buf.extend_from_slice(b"{\"resourceSpans\":[\n");
                        self.started = true;
                    }
                    if self.in_batch == 0 {
                        if self.written > 0 {
                            self.buf.extend_from_slice(b",\n");
                        }
                        self.buf.extend_from_slice(Self::RESOURCE.as_bytes());
                    } else {
                        self.buf.extend_from_slice(b",\n");
                    }
                    otlp_span(&g.row, "00f067aa0ba902b7", &mut self.buf);
                    self.in_batch += 1;
                    if self.in_batch == OTLP_BATCH {
                        self.buf.extend_from_slice(Self::BATCH_END.as_bytes());
                        self.in_batch = 0;
                    }
                }
                (ExportFormat::OtlpDocument, None) => {
                    if !self.started {
                        self.buf.extend_from_slice(b"{\"resourceSpans\":[");
                    }
                    if self.in_batch > 0 {
                        self.buf.extend_from_slice(Self::BATCH_END.as_bytes());
                    }
                    self.buf.extend_from_slice(b"\n]}\n");
                    self.finished = true;
                }
                (ExportFormat::OtlpLines, Some(g)) => {
                    if self.in_batch == 0 {
                        self.buf.extend_from_slice(b"{\"resourceSpans\":[");
                        self.buf.extend_from_slice(Self::RESOURCE.as_bytes());
                    } else {
                        self.buf.push(b',');
                    }
                    otlp_span(&g.row, "00f067aa0ba902b7", &mut self.buf);
                    self.in_batch += 1;
                    if self.in_batch == OTLP_BATCH {
                        self.buf.extend_from_slice(Self::BATCH_END.as_bytes());
                        self.buf.extend_from_slice(b"]}\n");
                        self.in_batch = 0;
                    }
                }
                (ExportFormat::OtlpLines, None) => {
                    if self.in_batch > 0 {
                        self.buf.extend_from_slice(Self::BATCH_END.as_bytes());
                        self.buf.extend_from_slice(b"]}\n");
                    }
                    self.finished = true;
                }
            }
            if !self.finished {
                self.written += 1;
            }
        }
    }
}

impl<I: Iterator<Item = GeneratedRequest>> Read for GeneratedExport<I> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.buf.len() {
            if self.finished {
                return Ok(0);
            }
            self.refill();
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests;
