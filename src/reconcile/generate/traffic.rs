//! The simulated month: every provider call as billed and as traced.

use jiff::Timestamp;
use jiff::civil::{Date, Weekday};
use rand::RngExt;
use rand::distr::Distribution;
use rand_distr::LogNormal;

use super::{Causes, Scenario};
use crate::money::{PerMTok, Usd};
use crate::pricing::{Billing, LongContext, ModelId, PriceBook, PriceRow, Provider, Rates, RowSource, Tier};
use crate::reconcile::catalog::spec;
use crate::reconcile::value::CLASSES;
use crate::reconcile::window::{SECONDS_PER_DAY, day_of, utc_midnight};
use crate::stats::sampling::{SeededRng, seeded_rng};
use crate::trace::model::{RequestRow, RequestStatus, StreamCheckpoint, Usage, UsageSource};

pub const FINE_TUNE: &str = "ft:gpt-4o-mini-2024-07-18:acme::a1b2c3";
/// The day of the month from which the invoice bills gpt-4.1 10 % below list (a price cut the book does
/// not know yet).
pub const PRICE_CUT_DAY: i8 = 15;
pub const PRICE_CUT_MODEL: &str = "gpt-4.1-2025-04-14";
/// Client-side estimates miss 6 % of the tokens and the 350-token tool definitions sent with every call.
pub const ESTIMATION_SKEW: (u64, u64) = (106, 100);
pub const ESTIMATION_OVERHEAD: u64 = 350;
/// Web search fee per search (synthetic: $10 per 1,000).
pub const WEB_SEARCH_FEE: Usd = Usd(10_000_000_000);

/// What the provider billed for one call.
#[derive(Debug, Clone)]
pub struct Billed {
    pub provider: Provider,
    pub model: &'static str,
    pub project: &'static str,
    pub tier: Tier,
    /// Billed at the long-context rate.
    pub long_context: bool,
    pub usage: Usage,
    /// The invoice's charge per class (uncached input, cache read, cache write 5m, 1h, output).
    pub cost: [Usd; 5],
    pub web_searches: u32,
}

impl Billed {
    pub fn total(&self) -> Usd {
        self.cost.iter().copied().sum()
    }
}

/// One provider call: what was billed (nothing for a rejected call) and what the tracer recorded (nothing
/// for a call that is not traced).
#[derive(Debug, Clone)]
pub struct Call {
    pub day: i32,
    pub billed: Option<Billed>,
    pub traced: Option<RequestRow>,
}

/// Every call of the month, in time order, one day at a time.
pub fn calls<'b>(scenario: &Scenario, book: &'b PriceBook) -> impl Iterator<Item = Call> + use<'b> {
    let scenario = *scenario;
    let first = scenario.month.first_of_month();
    let days = first.days_in_month() as i32;
    (0..days).flat_map(move |offset| {
        let date = first.checked_add(jiff::Span::new().days(offset)).unwrap_or(first);
        let mut day = Day::new(&scenario, book, date);
        day.simulate();
        let mut calls = day.calls;
        calls.sort_by_key(|c| c.traced.as_ref().map(|r| r.ts).unwrap_or(Timestamp::MIN));
        calls
    })
}

/// The price the invoice charges for a snapshot on a day: the book's, except for the generated price cut
/// and the fine-tune the book does not know.
pub fn actual_row(book: &PriceBook, causes: &Causes, provider: Provider, model: &str, date: Date) -> PriceRow {
    if model == FINE_TUNE {
        return fine_tune_row();
    }
    let row = book.quote(&spec(provider, model), date).expect("generated models are in the book").row.clone();
    if causes.price_book && model == PRICE_CUT_MODEL && date.day() >= PRICE_CUT_DAY {
        scale_row(&row, 9, 10)
    } else {
        row
    }
}

fn fine_tune_row() -> PriceRow {
    let p = |usd: &str| PerMTok::from_usd_per_mtok(usd).expect("valid price");
    PriceRow {
        model: ModelId::new(Provider::OpenAi, FINE_TUNE),
        effective_from: None,
        effective_until: None,
        standard: Rates {
            input: p("0.30"),
            output: p("1.20"),
            cache_read: Some(p("0.15")),
            cache_write_5m: None,
            cache_write_1h: None,
        },
        batch: None,
        flex: None,
        priority: None,
        long_context: None,
        source: RowSource::Curated { source: "generated fine-tune price".into() },
    }
}

fn scale_row(row: &PriceRow, num: i64, den: i64) -> PriceRow {
    let price = |p: PerMTok| PerMTok(p.0 * num / den);
    let rates = |r: &Rates| Rates {
        input: price(r.input),
        output: price(r.output),
        cache_read: r.cache_read.map(price),
        cache_write_5m: r.cache_write_5m.map(price),
        cache_write_1h: r.cache_write_1h.map(price),
    };
    PriceRow {
        standard: rates(&row.standard),
        batch: row.batch.as_ref().map(rates),
        flex: row.flex.as_ref().map(rates),
        priority: row.priority.as_ref().map(rates),
        long_context: row.long_context.as_ref().map(|lc| LongContext {
            above_input_tokens: lc.above_input_tokens,
            standard: rates(&lc.standard),
            priority: lc.priority.as_ref().map(rates),
        }),
        ..row.clone()
    }
}

/// One attempt's fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fate {
    /// Billed and traced with usage.
    Ok,
    /// Rejected (429, 529): not billed; traced as an error without usage.
    Rejected,
    /// The client gave up; the provider finished and billed it. Traced as a timeout without usage.
    TimedOut,
    /// A stream without a usage block: billed, traced as ok without usage.
    NoUsageStream,
    /// A stream the user cancelled: billed input and part of the output, traced as aborted without usage.
    Aborted,
}

/// How a service's tracer records a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tracer {
    Correct,
    /// OpenAI tracer that drops `cached_tokens`.
    DropsCachedCount,
    /// Anthropic tracer that takes `input_tokens` (the uncached part) as the whole input.
    InputAsTotal,
    /// Anthropic tracer that adds cache writes to the input without reporting them.
    CacheWritesAsInput,
    /// Client-side token counts of the input.
    Estimates,
    Untraced,
}

/// A request as a service sends it.
struct Request {
    provider: Provider,
    project: &'static str,
    request_model: &'static str,
    response_model: Option<&'static str>,
    billed_model: &'static str,
    billed_tier: Tier,
    traced_tier: Option<&'static str>,
    traced_batch: bool,
    usage: Usage,
    tracer: Tracer,
    /// The tracer leaves reasoning/thinking tokens out of the output.
    drops_reasoning: bool,
    streamed: bool,
    web_searches: u32,
    conversation: Option<String>,
    ts: Timestamp,
}

struct Day<'a> {
    scenario: &'a Scenario,
    book: &'a PriceBook,
    date: Date,
    day: i32,
    rng: SeededRng,
    calls: Vec<Call>,
    next_id: u64,
    volume: f64,
    /// The day's price rows by billed model.
    rows: std::collections::HashMap<&'static str, PriceRow>,
}

impl<'a> Day<'a> {
    fn new(scenario: &'a Scenario, book: &'a PriceBook, date: Date) -> Day<'a> {
        let day = day_of(utc_midnight(date));
        let weekend = matches!(date.weekday(), Weekday::Saturday | Weekday::Sunday);
        let rng = seeded_rng(scenario.seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ day as u64);
        let volume = scenario.scale * if weekend { 0.6 } else { 1.0 };
        Day { scenario, book, date, day, rng, calls: Vec::new(), next_id: 0, volume, rows: Default::default() }
    }

    fn causes(&self) -> &Causes {
        &self.scenario.causes
    }

    fn simulate(&mut self) {
        if self.scenario.openai {
            self.openai();
        }
        if self.scenario.anthropic {
            self.anthropic();
        }
    }

    /// Around `base × volume` (±15 %); a fractional expectation is rounded up or down at random, so that
    /// rare workloads (a few a week) still happen.
    fn count(&mut self, base: f64) -> usize {
        let jitter = self.rng.random_range(0.85..1.15);
        let expected = (base * self.volume * jitter).max(0.0);
        let whole = expected.floor();
        whole as usize + usize::from(self.rng.random_bool(expected - whole))
    }

    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        self.rng.random_range(lo..=hi)
    }

    fn lognormal(&mut self, median: f64, sigma: f64, lo: u64, hi: u64) -> u64 {
        let d = LogNormal::new(median.ln(), sigma).expect("valid parameters");
        (d.sample(&mut self.rng).round() as u64).clamp(lo, hi)
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    /// A time on this day between `from` and `to` seconds after midnight.
    fn time(&mut self, from: i64, to: i64) -> Timestamp {
        let second = self.rng.random_range(from..to);
        let ms = self.rng.random_range(0..1000);
        Timestamp::from_millisecond((self.day as i64 * SECONDS_PER_DAY + second) * 1000 + ms).expect("valid time")
    }

    fn turns(&mut self) -> u64 {
        1 + self.lognormal(2.2, 0.9, 0, 39)
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}-{}", self.day, self.next_id)
    }

    fn hex(&mut self, bytes: usize) -> String {
        (0..bytes).map(|_| format!("{:02x}", self.rng.random::<u8>())).collect()
    }

    // ---- OpenAI ------------------------------------------------------------------------------------

    fn openai(&mut self) {
        let conversations = self.count(10.0);
        for _ in 0..conversations {
            self.openai_conversation();
        }
        for _ in 0..self.count(5.0) {
            self.report();
        }
        for _ in 0..self.count(20.0) {
            self.eval_batch_item();
        }
        for _ in 0..self.count(12.0) {
            self.widget();
        }
        for _ in 0..self.count(6.0) {
            self.legacy();
        }
        if self.causes().price_book {
            for _ in 0..self.count(8.0) {
                self.fine_tuned();
            }
        }
        if self.causes().untraced_calls {
            for _ in 0..self.count(15.0) {
                self.nightly();
            }
        }
    }

    fn openai_conversation(&mut self) {
        let conversation = self.id("c");
        let start = self.time(60, SECONDS_PER_DAY - 3600).as_second();
        let triage_input = 1600 + self.between(20, 200);
        let triage_cached = if self.chance(0.95) { 1536 } else { 0 };
        let output = self.between(5, 40);
        let tracer = if self.causes().cache_accounting { Tracer::DropsCachedCount } else { Tracer::Correct };
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_triage",
            request_model: "gpt-4.1-mini",
            response_model: Some("gpt-4.1-mini-2025-04-14"),
            billed_model: "gpt-4.1-mini-2025-04-14",
            billed_tier: Tier::Standard,
            traced_tier: Some("default"),
            traced_batch: false,
            usage: Usage::from_inclusive(triage_input, triage_cached, 0, output, 0),
            tracer,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: Some(conversation.clone()),
            ts: at(start),
        };
        self.send(request);
        let turns = self.turns();
        for turn in 1..=turns {
            let ts = start + 20 + turn as i64 * 45;
            self.support_turn(&conversation, turn, ts);
        }
    }

    fn support_turn(&mut self, conversation: &str, turn: u64, ts: i64) {
        // Each turn re-sends the conversation so far: the user's messages, the replies and tool results.
        let system = 1400;
        let history = 480 * (turn - 1);
        let user = self.between(30, 120);
        let input = system + history + user;
        let cached = if turn > 1 && self.chance(0.75) { (system + history) / 128 * 128 } else { 0 };
        let output = self.lognormal(160.0, 0.5, 20, 1200);
        let web_searches = u32::from(self.causes().non_token_fees && self.chance(0.06));
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_support",
            request_model: "gpt-4o-mini",
            response_model: Some("gpt-4o-mini-2024-07-18"),
            billed_model: "gpt-4o-mini-2024-07-18",
            billed_tier: Tier::Standard,
            traced_tier: Some("default"),
            traced_batch: false,
            usage: Usage::from_inclusive(input, cached, 0, output, 0),
            tracer: Tracer::Correct,
            drops_reasoning: false,
            streamed: true,
            web_searches,
            conversation: Some(conversation.to_string()),
            ts: at(ts),
        };
        self.send(request);
        if self.chance(0.08) {
            self.escalation(conversation, input, ts + 20);
        }
    }

    fn escalation(&mut self, conversation: &str, input: u64, ts: i64) {
        let visible = self.lognormal(250.0, 0.4, 40, 1500);
        let reasoning = self.between(600, 3000);
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_support",
            request_model: "o4-mini",
            response_model: Some("o4-mini-2025-04-16"),
            billed_model: "o4-mini-2025-04-16",
            billed_tier: Tier::Standard,
            traced_tier: Some("default"),
            traced_batch: false,
            usage: Usage::from_inclusive(input + 300, 0, 0, visible + reasoning, reasoning),
            tracer: Tracer::Correct,
            drops_reasoning: self.causes().reasoning_tokens,
            streamed: true,
            web_searches: 0,
            conversation: Some(conversation.to_string()),
            ts: at(ts),
        };
        self.send(request);
    }

    fn report(&mut self) {
        let input = self.between(6_000, 30_000);
        let reasoning = self.between(300, 2_000);
        let visible = self.lognormal(1_200.0, 0.4, 200, 6_000);
        let ts = self.time(8 * 3600, 20 * 3600);
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_reports",
            request_model: "gpt-5-mini",
            response_model: Some("gpt-5-mini-2025-08-07"),
            billed_model: "gpt-5-mini-2025-08-07",
            billed_tier: Tier::Flex,
            traced_tier: Some(if self.causes().tier_modifiers { "auto" } else { "flex" }),
            traced_batch: false,
            usage: Usage::from_inclusive(input, 0, 0, visible + reasoning, reasoning),
            tracer: Tracer::Correct,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn eval_batch_item(&mut self) {
        let input = self.between(800, 1_600);
        let output = self.between(40, 250);
        let ts = self.time(2 * 3600, 3 * 3600);
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_evals",
            request_model: "gpt-4.1-nano-2025-04-14",
            response_model: Some("gpt-4.1-nano-2025-04-14"),
            billed_model: "gpt-4.1-nano-2025-04-14",
            billed_tier: Tier::Batch,
            traced_tier: Some("default"),
            traced_batch: !self.causes().tier_modifiers,
            usage: Usage::from_inclusive(input, 0, 0, output, 0),
            tracer: Tracer::Correct,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn widget(&mut self) {
        let counted = self.between(300, 2_500);
        let input = counted * ESTIMATION_SKEW.0 / ESTIMATION_SKEW.1 + ESTIMATION_OVERHEAD;
        let output = self.lognormal(200.0, 0.5, 20, 1_500);
        let ts = self.time(6 * 3600, 23 * 3600);
        let tracer = if self.causes().token_estimation { Tracer::Estimates } else { Tracer::Correct };
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_widget",
            request_model: "gpt-4.1",
            response_model: Some("gpt-4.1-2025-04-14"),
            billed_model: "gpt-4.1-2025-04-14",
            billed_tier: Tier::Standard,
            traced_tier: Some("default"),
            traced_batch: false,
            usage: Usage::from_inclusive(input, 0, 0, output, 0),
            tracer,
            drops_reasoning: false,
            streamed: true,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn legacy(&mut self) {
        let input = self.between(400, 3_000);
        let output = self.between(50, 500);
        let ts = self.time(3600, 22 * 3600);
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_legacy",
            request_model: "gpt-4o",
            // The SDK integration records the family name, not the pinned snapshot.
            response_model: if self.causes().price_book { None } else { Some("gpt-4o-2024-05-13") },
            billed_model: "gpt-4o-2024-05-13",
            billed_tier: Tier::Standard,
            traced_tier: Some("default"),
            traced_batch: false,
            usage: Usage::from_inclusive(input, 0, 0, output, 0),
            tracer: Tracer::Correct,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn fine_tuned(&mut self) {
        let input = self.between(300, 1_200);
        let output = self.between(5, 60);
        let ts = self.time(3600, 22 * 3600);
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_support",
            request_model: FINE_TUNE,
            response_model: Some(FINE_TUNE),
            billed_model: FINE_TUNE,
            billed_tier: Tier::Standard,
            traced_tier: Some("default"),
            traced_batch: false,
            usage: Usage::from_inclusive(input, 0, 0, output, 0),
            tracer: Tracer::Correct,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn nightly(&mut self) {
        let input = self.between(2_000, 6_000);
        let output = self.between(200, 800);
        let ts = self.time(3600, 5 * 3600);
        let request = Request {
            provider: Provider::OpenAi,
            project: "proj_nightly",
            request_model: "gpt-4o-mini",
            response_model: Some("gpt-4o-mini-2024-07-18"),
            billed_model: "gpt-4o-mini-2024-07-18",
            billed_tier: Tier::Standard,
            traced_tier: None,
            traced_batch: false,
            usage: Usage::from_inclusive(input, 0, 0, output, 0),
            tracer: Tracer::Untraced,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    // ---- Anthropic ---------------------------------------------------------------------------------

    fn anthropic(&mut self) {
        for _ in 0..self.count(5.0) {
            self.anthropic_conversation();
        }
        for _ in 0..self.count(16.0) {
            self.extract();
        }
        if self.causes().tier_modifiers {
            for _ in 0..self.count(0.3) {
                self.document();
            }
        }
        if self.causes().untraced_calls {
            for _ in 0..self.count(8.0) {
                self.ops();
            }
        }
    }

    fn anthropic_conversation(&mut self) {
        let conversation = self.id("c");
        let start = self.time(60, SECONDS_PER_DAY - 3600).as_second();
        let turns = self.turns();
        for turn in 1..=turns {
            self.sonnet_turn(&conversation, turn, start + turn as i64 * 50);
        }
    }

    fn sonnet_turn(&mut self, conversation: &str, turn: u64, ts: i64) {
        // The prefix up to the previous turn is read from the cache; the last turn's messages are written.
        let system = 3_500;
        let user = self.between(40, 150);
        let (read, write) = if turn == 1 { (0, system) } else { (system + 520 * (turn - 2), 520) };
        // Extended thinking is on for this feature: every turn thinks, some more than others.
        let thinking = self.between(300, 1_200);
        let visible = self.lognormal(300.0, 0.5, 30, 2_000);
        let web_searches = if self.causes().non_token_fees && self.chance(0.1) { self.between(1, 3) as u32 } else { 0 };
        let tracer = if self.causes().cache_accounting { Tracer::InputAsTotal } else { Tracer::Correct };
        let request = Request {
            provider: Provider::Anthropic,
            project: "wrkspc_support",
            request_model: "claude-sonnet-4-5",
            response_model: Some("claude-sonnet-4-5-20250929"),
            billed_model: "claude-sonnet-4-5-20250929",
            billed_tier: Tier::Standard,
            traced_tier: Some("standard"),
            traced_batch: false,
            usage: Usage::from_additive(user, read, write, 0, visible + thinking, thinking),
            tracer,
            drops_reasoning: self.causes().reasoning_tokens,
            streamed: true,
            web_searches,
            conversation: Some(conversation.to_string()),
            ts: at(ts),
        };
        self.send(request);
    }

    /// Contract analysis: a whole document in one request, above the 200k long-context threshold.
    fn document(&mut self) {
        let document = self.between(210_000, 380_000);
        let output = self.lognormal(900.0, 0.4, 200, 4_000);
        let ts = self.time(8 * 3600, 20 * 3600);
        let tracer = if self.causes().cache_accounting { Tracer::InputAsTotal } else { Tracer::Correct };
        let request = Request {
            provider: Provider::Anthropic,
            project: "wrkspc_support",
            request_model: "claude-sonnet-4-5",
            response_model: Some("claude-sonnet-4-5-20250929"),
            billed_model: "claude-sonnet-4-5-20250929",
            billed_tier: Tier::Standard,
            traced_tier: Some("standard"),
            traced_batch: false,
            usage: Usage::from_additive(document, 3_500, 0, 0, output, 0),
            tracer,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn extract(&mut self) {
        let batch = self.chance(0.4);
        let uncached = self.between(300, 1_500);
        let (read, write) = if self.chance(0.8) { (2_000, 0) } else { (0, 2_000) };
        let output = self.between(80, 400);
        let ts = if batch { self.time(1800, 3 * 3600) } else { self.time(6 * 3600, 22 * 3600) };
        let tracer = if self.causes().cache_accounting { Tracer::CacheWritesAsInput } else { Tracer::Correct };
        let request = Request {
            provider: Provider::Anthropic,
            project: "wrkspc_extract",
            request_model: "claude-haiku-4-5",
            response_model: Some("claude-haiku-4-5-20251001"),
            billed_model: "claude-haiku-4-5-20251001",
            billed_tier: if batch { Tier::Batch } else { Tier::Standard },
            traced_tier: Some("standard"),
            traced_batch: batch && !self.causes().tier_modifiers,
            usage: Usage::from_additive(uncached, read, write, 0, output, 0),
            tracer,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    fn ops(&mut self) {
        let uncached = self.between(500, 3_000);
        let output = self.between(50, 300);
        let ts = self.time(3600, 23 * 3600);
        let request = Request {
            provider: Provider::Anthropic,
            project: "wrkspc_ops",
            request_model: "claude-haiku-4-5",
            response_model: Some("claude-haiku-4-5-20251001"),
            billed_model: "claude-haiku-4-5-20251001",
            billed_tier: Tier::Standard,
            traced_tier: None,
            traced_batch: false,
            usage: Usage::from_additive(uncached, 0, 0, 0, output, 0),
            tracer: Tracer::Untraced,
            drops_reasoning: false,
            streamed: false,
            web_searches: 0,
            conversation: None,
            ts,
        };
        self.send(request);
    }

    // ---- Attempts, billing and tracing -------------------------------------------------------------

    /// Sends a logical request: perhaps rejected or timed out first and retried, perhaps a stream that
    /// ends without usage or is cancelled.
    fn send(&mut self, request: Request) {
        let logical = self.id("lr");
        let mut attempt = 1;
        let rejected = match request.provider {
            Provider::Anthropic => 0.01,
            _ => 0.02,
        };
        if self.chance(rejected) {
            self.attempt(&request, &logical, attempt, Fate::Rejected);
            attempt += 1;
        }
        let untraced = self.causes().untraced_calls && request.tracer != Tracer::Untraced;
        if untraced && self.chance(0.03) {
            self.attempt(&request, &logical, attempt, Fate::TimedOut);
            attempt += 1;
        }
        let last = if untraced && request.streamed {
            match (request.provider, self.rng.random::<f64>()) {
                (Provider::OpenAi, p) if p < 0.015 => Fate::NoUsageStream,
                (Provider::Anthropic, p) if p < 0.02 => Fate::Aborted,
                _ => Fate::Ok,
            }
        } else {
            Fate::Ok
        };
        self.attempt(&request, &logical, attempt, last);
    }

    fn attempt(&mut self, request: &Request, logical: &str, attempt: u32, fate: Fate) {
        let ts = Timestamp::from_millisecond(request.ts.as_millisecond() + (attempt as i64 - 1) * 31_000)
            .unwrap_or(request.ts);
        let usage = match fate {
            // A timed-out attempt was the same prompt; the model wrote a different answer.
            Fate::TimedOut => {
                let output = request.usage.output_total * self.between(70, 130) / 100;
                Usage { output_total: output, reasoning: request.usage.reasoning.min(output), ..request.usage }
            }
            // Thinking comes first; the user cancelled while the visible answer streamed.
            Fate::Aborted => {
                let visible = request.usage.output_total - request.usage.reasoning;
                Usage { output_total: request.usage.reasoning + visible * 2 / 5, ..request.usage }
            }
            _ => request.usage,
        };
        let billed = (fate != Fate::Rejected).then(|| self.bill(request, usage));
        let streamed = match fate {
            // What the stream delivered before it ended without usage or was cancelled: visible output.
            Fate::NoUsageStream | Fate::Aborted => usage.output_total - usage.reasoning,
            _ => 0,
        };
        let traced = (request.tracer != Tracer::Untraced).then(|| {
            let mut row = self.trace(request, logical, attempt, fate, ts);
            row.stream = checkpoints(streamed, row.ttft_ms.unwrap_or(300));
            row
        });
        self.calls.push(Call { day: self.day, billed, traced });
    }

    fn bill(&mut self, request: &Request, usage: Usage) -> Billed {
        let (book, causes, date) = (self.book, *self.causes(), self.date);
        let row = self
            .rows
            .entry(request.billed_model)
            .or_insert_with(|| actual_row(book, &causes, request.provider, request.billed_model, date));
        let cost = row
            .cost(&usage, Billing { tier: request.billed_tier, long_context: true })
            .expect("generated usage is priced");
        let mut by_class = [Usd::ZERO; 5];
        for line in &cost.lines {
            let c = CLASSES.iter().position(|k| *k == line.class).unwrap_or(4);
            by_class[c] += line.usd;
        }
        Billed {
            provider: request.provider,
            model: request.billed_model,
            project: request.project,
            tier: request.billed_tier,
            long_context: cost.long_context,
            usage,
            cost: by_class,
            web_searches: request.web_searches,
        }
    }

    fn trace(&mut self, request: &Request, logical: &str, attempt: u32, fate: Fate, ts: Timestamp) -> RequestRow {
        let (status, usage_source, usage) = match fate {
            Fate::Ok => {
                let source =
                    if request.tracer == Tracer::Estimates { UsageSource::Estimated } else { UsageSource::Provider };
                (RequestStatus::Ok, source, traced_usage(request))
            }
            Fate::Rejected => (RequestStatus::Error, UsageSource::Missing, Usage::default()),
            Fate::TimedOut => (RequestStatus::Timeout, UsageSource::Missing, Usage::default()),
            Fate::NoUsageStream => (RequestStatus::Ok, UsageSource::Missing, Usage::default()),
            Fate::Aborted => (RequestStatus::Aborted, UsageSource::Missing, Usage::default()),
        };
        let error = match fate {
            Fate::Rejected if request.provider == Provider::Anthropic => Some("529 overloaded_error".to_string()),
            Fate::Rejected => Some("429 rate_limit_exceeded".to_string()),
            Fate::TimedOut => Some("client timeout after 30 s".to_string()),
            _ => None,
        };
        let latency = 400 + self.between(0, 4_000);
        RequestRow {
            ts,
            provider: request.provider.id().to_string(),
            request_model: request.request_model.to_string(),
            response_model: if usage_source == UsageSource::Missing {
                None
            } else {
                request.response_model.map(str::to_string)
            },
            project: Some(request.project.to_string()),
            api_key_ref: None,
            tenant_id: None,
            conversation_id: request.conversation.clone(),
            trace_id: Some(self.hex(16)),
            span_id: Some(self.hex(8)),
            logical_request_id: Some(logical.to_string()),
            attempt,
            status,
            streamed: request.streamed,
            usage_source,
            usage,
            service_tier: request.traced_tier.map(str::to_string),
            batch: request.traced_batch,
            latency_ms: Some(latency),
            ttft_ms: request.streamed.then_some(latency / 4),
            prompt_name: None,
            prompt_version: None,
            finish_reason: (fate == Fate::Ok).then(|| "stop".to_string()),
            error,
            messages: Vec::new(),
            output: None,
            stream: Vec::new(),
        }
    }
}

/// The usage a service's tracer records for a call it saw complete.
fn traced_usage(request: &Request) -> Usage {
    let u = &request.usage;
    let (output, reasoning) =
        if request.drops_reasoning { (u.output_total - u.reasoning, 0) } else { (u.output_total, u.reasoning) };
    match request.tracer {
        Tracer::Correct | Tracer::Untraced => Usage { output_total: output, reasoning, ..*u },
        Tracer::DropsCachedCount => Usage::from_inclusive(u.input_total, 0, 0, output, reasoning),
        Tracer::InputAsTotal => Usage::from_additive(u.input_uncached, 0, 0, 0, output, reasoning),
        Tracer::CacheWritesAsInput => Usage::from_additive(
            u.input_uncached + u.cache_write_5m + u.cache_write_1h,
            u.cache_read,
            0,
            0,
            output,
            reasoning,
        ),
        Tracer::Estimates => {
            let counted = (u.input_total - ESTIMATION_OVERHEAD) * ESTIMATION_SKEW.1 / ESTIMATION_SKEW.0;
            Usage::from_inclusive(counted, 0, 0, output, reasoning)
        }
    }
}

/// Four stream checkpoints delivering `tokens` in all.
fn checkpoints(tokens: u64, ttft_ms: u64) -> Vec<StreamCheckpoint> {
    if tokens == 0 {
        return Vec::new();
    }
    let parts = 4.min(tokens);
    (0..parts)
        .map(|i| StreamCheckpoint {
            t_ms: ttft_ms + i * 400,
            tokens: (tokens / parts + u64::from(i < tokens % parts)) as u32,
            text: None,
        })
        .collect()
}

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).expect("valid time")
}
