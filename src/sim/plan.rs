//! What the simulator does with one request, decided deterministically.
//!
//! Every random choice comes from hash(seed, request content, n) where n counts earlier arrivals of the
//! same content. Identical requests (the K samples of a case, the retries of one sample) therefore get
//! different but reproducible decisions, and which of them gets which does not matter: the set of
//! outcomes of a run is the same however the requests interleave.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::SimConfig;

/// Which API a request came in on; decides field names and status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wire {
    OpenAi,
    Anthropic,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SimMessage {
    pub role: String,
    pub content: String,
}

/// A request reduced to what the simulator looks at.
#[derive(Debug, Clone)]
pub(crate) struct SimRequest {
    pub wire: Wire,
    pub model: String,
    /// System text first (Anthropic's `system` field becomes a `system` message).
    pub messages: Vec<SimMessage>,
    pub max_tokens: Option<u64>,
    pub stream: bool,
    /// OpenAI sends stream usage only when asked (`stream_options.include_usage`).
    pub include_usage: bool,
}

impl SimRequest {
    fn last_user(&self) -> &str {
        self.messages.iter().rev().find(|m| m.role == "user").map_or("", |m| m.content.as_str())
    }

    fn whole_prompt(&self) -> String {
        let parts: Vec<&str> = self.messages.iter().map(|m| m.content.as_str()).collect();
        parts.join("\n")
    }

    fn content_hash(&self) -> u64 {
        let mut hash = fnv(FNV_OFFSET, &[self.wire as u8]);
        hash = fnv(hash, self.model.as_bytes());
        for message in &self.messages {
            hash = fnv(hash, &[0xff]);
            hash = fnv(hash, message.role.as_bytes());
            hash = fnv(hash, &[0xfe]);
            hash = fnv(hash, message.content.as_bytes());
        }
        fnv(hash, &self.max_tokens.unwrap_or(u64::MAX).to_le_bytes())
    }
}

/// Token counts as the simulator reports them, before protocol-specific shaping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SimUsage {
    /// All input tokens, cached ones included.
    pub prompt: u64,
    pub cache_read: u64,
    /// Tokens written to the cache (reported by the Anthropic API only).
    pub cache_write: u64,
    pub completion: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Finish {
    Stop,
    Length,
}

#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub status: u16,
    pub delay: Duration,
    pub retry_after_secs: Option<u64>,
}

#[derive(Debug, Clone)]
pub(crate) struct Reply {
    pub chunks: Vec<String>,
    pub finish: Finish,
    /// A stream that ends without finish reason and usage (a non-streamed reply reports `length`).
    pub cut_short: bool,
    pub usage: SimUsage,
    pub ttft: Duration,
    /// Between two text chunks.
    pub gap: Duration,
    /// A pause before the chunk at this index.
    pub stall: Option<(usize, Duration)>,
}

impl Reply {
    /// How long a non-streamed reply takes: the same time a stream of it would.
    pub fn total_delay(&self) -> Duration {
        let stall = self.stall.map_or(Duration::ZERO, |(_, d)| d);
        self.ttft + self.gap * self.chunks.len() as u32 + stall
    }

    pub fn text(&self) -> String {
        self.chunks.concat()
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Fail(Failure),
    Reply(Reply),
}

#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// Stable per (content, arrival): the response id.
    pub id: String,
    pub outcome: Outcome,
}

/// Counters of what the simulator did, for tests and the `sim serve` summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SimStats {
    pub requests: u64,
    pub errors: u64,
    pub stalls: u64,
    pub loops: u64,
    pub truncations: u64,
    pub slow_ttfts: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    errors: AtomicU64,
    stalls: AtomicU64,
    loops: AtomicU64,
    truncations: AtomicU64,
    slow_ttfts: AtomicU64,
}

/// Shared decision state: arrival counts per content and the prompt-prefix cache.
#[derive(Debug, Default)]
pub(crate) struct Decider {
    arrivals: Mutex<HashMap<u64, u32>>,
    cache: Mutex<HashSet<u64>>,
    counters: Counters,
}

/// Prompt-cache granularity: 128 tokens of about 4 bytes, as OpenAI caches in 128-token steps.
const CACHE_BLOCK_BYTES: usize = 512;
const CACHE_BLOCK_TOKENS: u64 = 128;
/// Forget everything past this many entries, so a long-running server stays small.
const MAX_REMEMBERED: usize = 1 << 20;
/// How many times a looping reply repeats its opening phrase.
const LOOP_REPEATS: usize = 12;

impl Decider {
    pub fn plan(&self, request: &SimRequest, config: &SimConfig) -> Plan {
        self.counters.requests.fetch_add(1, Ordering::Relaxed);
        let content = request.content_hash();
        let arrival = self.next_arrival(content);
        let key = mix(config.seed ^ mix(content) ^ mix(u64::from(arrival) + 1));
        let mut draws = Draws(key);
        let d = Decisions::draw(&mut draws);
        let id = format!("{key:016x}");
        if d.error < config.error_rate {
            self.counters.errors.fetch_add(1, Ordering::Relaxed);
            return Plan { id, outcome: Outcome::Fail(failure(request.wire, d.error_kind, config)) };
        }
        Plan { id, outcome: Outcome::Reply(self.reply(request, config, &d)) }
    }

    pub fn stats(&self) -> SimStats {
        let c = &self.counters;
        SimStats {
            requests: c.requests.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
            stalls: c.stalls.load(Ordering::Relaxed),
            loops: c.loops.load(Ordering::Relaxed),
            truncations: c.truncations.load(Ordering::Relaxed),
            slow_ttfts: c.slow_ttfts.load(Ordering::Relaxed),
        }
    }

    /// Forgets arrivals and the prompt cache: the next run behaves like the first.
    pub fn reset(&self) {
        lock(&self.arrivals).clear();
        lock(&self.cache).clear();
    }

    fn next_arrival(&self, content: u64) -> u32 {
        let mut arrivals = lock(&self.arrivals);
        if arrivals.len() >= MAX_REMEMBERED {
            arrivals.clear();
        }
        let count = arrivals.entry(content).or_insert(0);
        let arrival = *count;
        *count += 1;
        arrival
    }

    fn reply(&self, request: &SimRequest, config: &SimConfig, d: &Decisions) -> Reply {
        let scenario = &config.scenario;
        let whole = scenario.needs_whole_prompt().then(|| request.whole_prompt());
        let mut text = scenario.reply(request.last_user(), whole.as_deref(), d.reply).to_string();
        if d.looped < config.loop_rate {
            self.counters.loops.fetch_add(1, Ordering::Relaxed);
            text = looped(&text);
        }
        let mut chunks = chunk_text(&text);
        let mut finish = if d.looped < config.loop_rate { Finish::Length } else { Finish::Stop };
        if let Some(max) = request.max_tokens
            && cut_to_max_tokens(&mut chunks, max)
        {
            finish = Finish::Length;
        }
        let cut_short = d.truncate < config.truncate_rate;
        if cut_short {
            self.counters.truncations.fetch_add(1, Ordering::Relaxed);
            chunks.truncate(chunks.len() / 2);
            finish = Finish::Length;
        }
        let usage =
            SimUsage { completion: chunks.iter().map(|c| estimate_tokens(c)).sum(), ..self.prompt_usage(request) };
        let ttft = if d.slow_ttft < config.slow_ttft_rate {
            self.counters.slow_ttfts.fetch_add(1, Ordering::Relaxed);
            config.ttft + config.slow_ttft
        } else {
            config.ttft
        };
        let latency = jittered(config.latency, config.jitter, d.jitter);
        let gap = latency / chunks.len().max(1) as u32;
        let stall = (d.stall < config.stall_rate).then(|| {
            self.counters.stalls.fetch_add(1, Ordering::Relaxed);
            (chunks.len() / 2, config.stall)
        });
        Reply { chunks, finish, cut_short, usage, ttft, gap, stall }
    }

    /// Input tokens, and how many of them hit or fill the simulated prefix cache.
    fn prompt_usage(&self, request: &SimRequest) -> SimUsage {
        let prompt = estimate_prompt_tokens(&request.messages);
        let blocks = prefix_blocks(&request.model, &request.messages);
        let seen = {
            let mut cache = lock(&self.cache);
            if cache.len() + blocks.len() >= MAX_REMEMBERED {
                cache.clear();
            }
            let seen = blocks.iter().take_while(|b| cache.contains(b)).count();
            cache.extend(blocks.iter().skip(seen).copied());
            seen
        };
        let cache_read = (seen as u64 * CACHE_BLOCK_TOKENS).min(prompt);
        let cache_write = ((blocks.len() - seen) as u64 * CACHE_BLOCK_TOKENS).min(prompt - cache_read);
        SimUsage { prompt, cache_read, cache_write, completion: 0 }
    }
}

/// The uniform draws of one request, always drawn in this order so that changing one rate does not
/// reshuffle the other decisions.
struct Decisions {
    error: f64,
    error_kind: f64,
    stall: f64,
    looped: f64,
    truncate: f64,
    jitter: f64,
    reply: f64,
    slow_ttft: f64,
}

impl Decisions {
    fn draw(draws: &mut Draws) -> Self {
        Decisions {
            error: draws.uniform(),
            error_kind: draws.uniform(),
            stall: draws.uniform(),
            looped: draws.uniform(),
            truncate: draws.uniform(),
            jitter: draws.uniform(),
            reply: draws.uniform(),
            slow_ttft: draws.uniform(),
        }
    }
}

/// Half the injected errors are rate limits, the rest server errors and overloads (Anthropic reports
/// overload as 529, OpenAI as 503).
fn failure(wire: Wire, kind: f64, config: &SimConfig) -> Failure {
    let status = match (kind, wire) {
        (k, _) if k < 0.5 => 429,
        (k, _) if k < 0.75 => 500,
        (_, Wire::OpenAi) => 503,
        (_, Wire::Anthropic) => 529,
    };
    Failure { status, delay: config.ttft, retry_after_secs: (status == 429).then_some(config.retry_after_secs) }
}

fn jittered(latency: Duration, jitter: Duration, draw: f64) -> Duration {
    let offset = jitter.mul_f64((2.0 * draw - 1.0).abs());
    if draw < 0.5 { latency.saturating_sub(offset) } else { latency + offset }
}

/// About 4 characters per token, at least one for any text.
pub(crate) fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64).div_ceil(4)
}

/// Message text plus a few tokens of framing per message, as chat formats add.
fn estimate_prompt_tokens(messages: &[SimMessage]) -> u64 {
    3 + messages.iter().map(|m| 4 + estimate_tokens(&m.content)).sum::<u64>()
}

/// Chained hashes of the full 512-byte blocks of the prompt: block i's hash covers blocks 0..=i, so a
/// shared block hash means a shared prefix.
fn prefix_blocks(model: &str, messages: &[SimMessage]) -> Vec<u64> {
    let mut blocks = Vec::new();
    let mut hash = fnv(FNV_OFFSET, model.as_bytes());
    let mut filled = 0;
    let pieces =
        messages.iter().flat_map(|m| [m.role.as_bytes(), b"\n".as_slice(), m.content.as_bytes(), b"\n".as_slice()]);
    for mut piece in pieces {
        while !piece.is_empty() {
            let take = piece.len().min(CACHE_BLOCK_BYTES - filled);
            hash = fnv(hash, &piece[..take]);
            filled += take;
            piece = &piece[take..];
            if filled == CACHE_BLOCK_BYTES {
                blocks.push(hash);
                filled = 0;
            }
        }
    }
    blocks
}

/// Word-sized chunks, each keeping its trailing whitespace; long words split every 8 characters.
pub(crate) fn chunk_text(text: &str) -> Vec<String> {
    const MAX_CHARS: usize = 8;
    let mut chunks = Vec::with_capacity(text.len() / 4 + 1);
    for word in text.split_inclusive(char::is_whitespace) {
        let mut start = 0;
        let mut chars = 0;
        for (offset, _) in word.char_indices() {
            if chars == MAX_CHARS {
                chunks.push(word[start..offset].to_string());
                start = offset;
                chars = 0;
            }
            chars += 1;
        }
        chunks.push(word[start..].to_string());
    }
    chunks
}

/// Keeps the chunks that fit in `max` tokens; true when something was cut.
fn cut_to_max_tokens(chunks: &mut Vec<String>, max: u64) -> bool {
    let mut used = 0;
    let keep = chunks
        .iter()
        .take_while(|c| {
            used += estimate_tokens(c);
            used <= max
        })
        .count();
    let cut = keep < chunks.len();
    chunks.truncate(keep);
    cut
}

/// A degenerate reply: the opening phrase (up to six words) over and over.
fn looped(text: &str) -> String {
    let phrase: Vec<&str> = text.split_whitespace().take(6).collect();
    let phrase = if phrase.is_empty() { "again".to_string() } else { phrase.join(" ") };
    let mut out = String::with_capacity((phrase.len() + 1) * LOOP_REPEATS);
    for _ in 0..LOOP_REPEATS {
        out.push_str(&phrase);
        out.push(' ');
    }
    out
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay valid even if a holder panicked.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a: stable across builds and platforms, unlike the std hasher.
fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// The splitmix64 finalizer: spreads a key's bits so nearby keys give unrelated draws.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A splitmix64 sequence of uniform draws.
struct Draws(u64);

impl Draws {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        (mix(self.0) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::Scenario;

    fn request(text: &str) -> SimRequest {
        SimRequest {
            wire: Wire::OpenAi,
            model: "m".into(),
            messages: vec![SimMessage { role: "user".into(), content: text.into() }],
            max_tokens: None,
            stream: true,
            include_usage: true,
        }
    }

    fn outcomes(config: &SimConfig, n: usize) -> Vec<String> {
        let decider = Decider::default();
        (0..n)
            .map(|_| match decider.plan(&request("hello"), config).outcome {
                Outcome::Fail(f) => format!("fail {}", f.status),
                Outcome::Reply(r) => format!("{} {:?} {}", r.text(), r.stall, r.cut_short),
            })
            .collect()
    }

    #[test]
    fn decisions_are_reproducible_per_seed_and_vary_per_arrival() {
        let config =
            SimConfig { error_rate: 0.3, stall_rate: 0.3, truncate_rate: 0.3, seed: 7, ..SimConfig::default() };
        let first = outcomes(&config, 40);
        assert_eq!(first, outcomes(&config, 40));
        assert!(first.iter().any(|o| o.starts_with("fail")));
        assert!(first.iter().any(|o| !o.starts_with("fail")));
        let other_seed = SimConfig { seed: 8, ..config };
        assert_ne!(first, outcomes(&other_seed, 40));
    }

    #[test]
    fn weighted_replies_come_out_in_roughly_their_proportions() {
        let scenario = Scenario::from_yaml(
            "rules:\n  - contains: hello\n    replies: [{text: yes, p: 0.8}, {text: no, p: 0.2}]\n",
        )
        .unwrap();
        let config = SimConfig { scenario, ..SimConfig::default() };
        let yes = outcomes(&config, 1000).iter().filter(|o| o.starts_with("yes")).count();
        assert!((740..=860).contains(&yes), "{yes}");
    }

    #[test]
    fn a_repeated_prefix_is_read_from_the_cache() {
        let decider = Decider::default();
        let config = SimConfig::default();
        let long = "x".repeat(1300);
        let usage = |d: &Decider| match d.plan(&request(&long), &config).outcome {
            Outcome::Reply(r) => r.usage,
            Outcome::Fail(_) => unreachable!(),
        };
        let first = usage(&decider);
        assert_eq!(first.cache_read, 0);
        assert_eq!(first.cache_write, 256);
        let second = usage(&decider);
        assert_eq!(second.cache_read, 256);
        assert_eq!(second.cache_write, 0);
        assert_eq!(second.prompt, first.prompt);
        assert_eq!(first.prompt, 3 + 4 + 325);
    }

    #[test]
    fn replies_are_cut_at_max_tokens_and_loops_repeat_a_phrase() {
        let mut chunks = chunk_text("one two three four five");
        assert_eq!(chunks, ["one ", "two ", "three ", "four ", "five"]);
        assert!(cut_to_max_tokens(&mut chunks, 3));
        assert_eq!(chunks.concat(), "one two ");
        let loop_text = looped("Sure, let me check that for you right away.");
        assert_eq!(loop_text.matches("Sure, let me check that for").count(), LOOP_REPEATS);
        assert_eq!(chunk_text("abcdefghij"), ["abcdefgh", "ij"]);
    }
}
