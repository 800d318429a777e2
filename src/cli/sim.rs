//! `promptctl sim serve`: the local OpenAI/Anthropic-compatible simulator, for demos, tests and benchmarks.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde::Serialize;

use super::context::Context;
use super::error::{CliError, CmdResult, Exit};
use crate::sim::{Scenario, SimConfig};

#[derive(Debug, Subcommand)]
pub enum SimCommand {
    Serve(ServeArgs),
}

pub fn run(ctx: &mut Context, command: SimCommand) -> CmdResult {
    match command {
        SimCommand::Serve(args) => serve(ctx, args),
    }
}

/// Serve a local, deterministic, fault-injecting OpenAI- and Anthropic-compatible API until Ctrl-C
#[derive(Debug, Args)]
#[command(after_help = "\
Endpoints: POST /v1/chat/completions (OpenAI) and POST /v1/messages (Anthropic), streamed or not, with
usage blocks shaped like the real ones; GET /_sim/stats; POST /_sim/reset. Point a suite at it with
`provider: { id: sim:MODEL, base_url: http://127.0.0.1:PORT/v1 }` (or --base-url). No key is needed.

Every decision (error, stall, loop, truncation, jitter, which scripted reply) comes from a hash of the
seed, the request and how often the same request arrived before: a fresh server replays a run the same
way whatever the concurrency. Scenario files script the replies: see docs/simulator.md.

The first line on stdout says where it listens (with --format json: {\"base_url\": …}); Ctrl-C stops it
and prints what it did.

Examples:
  promptctl sim serve --scenario evals/sim/triage.yaml
  promptctl sim serve --port 0 --latency 100 --format json
  promptctl sim serve --error-rate 0.1 --retry-after 0 --stall-rate 0.05 --stall 3000 --seed 7")]
pub struct ServeArgs {
    /// Port on 127.0.0.1 (0 picks a free one)
    #[arg(long, value_name = "P", default_value_t = 8787)]
    pub port: u16,

    /// Generation time of a reply, spread over its chunks
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub latency: u64,

    /// Latency varies uniformly within ± this
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub jitter: u64,

    /// Time to the first byte of a reply (and before an injected error)
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub ttft: u64,

    /// Share of requests answered with an error: half 429, a quarter 500, a quarter 503/529
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub error_rate: f64,

    /// Retry-After seconds sent with a 429
    #[arg(long, value_name = "SECS", default_value_t = 1)]
    pub retry_after: u64,

    /// Share of replies that pause mid-stream for --stall
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub stall_rate: f64,

    /// Length of a stall
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub stall: u64,

    /// Share of replies that repeat their opening phrase and stop at `length`
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub loop_rate: f64,

    /// Share of replies cut in half (a stream then ends without finish reason, usage or [DONE])
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub truncate_rate: f64,

    /// Share of replies whose time to first token grows by --slow-ttft
    #[arg(long, value_name = "F", default_value_t = 0.0)]
    pub slow_ttft_rate: f64,

    /// Extra time to first token of a slow reply
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    pub slow_ttft: u64,

    /// Changes every random decision
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,

    /// Scripted replies (YAML rules, docs/simulator.md)
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
}

impl ServeArgs {
    pub fn config(&self, ctx: &Context) -> Result<SimConfig, CliError> {
        let scenario = match &self.scenario {
            Some(path) => Scenario::load(&ctx.cwd().join(path)).map_err(|e| CliError::input(e.to_string()))?,
            None => Scenario::default(),
        };
        let config = SimConfig {
            port: self.port,
            latency: Duration::from_millis(self.latency),
            jitter: Duration::from_millis(self.jitter),
            ttft: Duration::from_millis(self.ttft),
            error_rate: self.error_rate,
            retry_after_secs: self.retry_after,
            stall_rate: self.stall_rate,
            stall: Duration::from_millis(self.stall),
            loop_rate: self.loop_rate,
            truncate_rate: self.truncate_rate,
            slow_ttft_rate: self.slow_ttft_rate,
            slow_ttft: Duration::from_millis(self.slow_ttft),
            seed: self.seed,
            scenario,
            ..SimConfig::default()
        };
        config.validate().map_err(|e| CliError::input(format!("--{}", e.to_string().replace('_', "-"))))?;
        Ok(config)
    }
}

#[derive(Serialize)]
struct Ready {
    schema: &'static str,
    base_url: String,
    port: u16,
}

#[derive(Serialize)]
struct Stats {
    schema: &'static str,
    requests: u64,
    errors: u64,
    stalls: u64,
    loops: u64,
    truncations: u64,
    slow_ttfts: u64,
}

fn serve(ctx: &mut Context, args: ServeArgs) -> CmdResult {
    let config = args.config(ctx)?;
    let rules = config.scenario.rule_count();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(1, 4))
        .enable_all()
        .build()
        .map_err(|e| CliError::input(format!("cannot start the async runtime: {e}")))?;
    let human = ctx.out.is_human();
    let mut printed: std::io::Result<()> = Ok(());
    let stats = runtime.block_on(crate::sim::serve_until_ctrl_c(config, |addr| {
        let base_url = format!("http://{addr}/v1");
        printed = if human {
            ctx.out.line(&format!("listening on {base_url} (OpenAI: /v1/chat/completions, Anthropic: /v1/messages)"))
        } else {
            ctx.out.record(&Ready { schema: "promptctl.sim-serve/v1", base_url, port: addr.port() })
        }
        .and_then(|()| ctx.out.flush());
        if rules > 0 {
            ctx.msg.note(&format!("scenario: {rules} rules"));
        }
        ctx.msg.note("Ctrl-C to stop");
    }));
    printed?;
    let stats = stats.map_err(|e| CliError::new(Exit::Input, e.to_string()))?;
    if human {
        ctx.out.line(&format!(
            "served {} requests: {} errors, {} stalls, {} loops, {} truncations, {} slow TTFTs",
            stats.requests, stats.errors, stats.stalls, stats.loops, stats.truncations, stats.slow_ttfts
        ))?;
    } else {
        ctx.out.record(&Stats {
            schema: "promptctl.sim-stats/v1",
            requests: stats.requests,
            errors: stats.errors,
            stalls: stats.stalls,
            loops: stats.loops,
            truncations: stats.truncations,
            slow_ttfts: stats.slow_ttfts,
        })?;
    }
    Ok(Exit::Ok)
}
