//! The command line: clap types, dispatch, rendering. The only code that prints.

pub mod context;
pub mod error;
pub mod output;

mod cost;
mod demo;
mod eval;
mod init;
pub mod portfolio;
mod pricing;
mod prompt;
mod reconcile;
mod rollback;
mod scan;
mod sim;
mod trace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use context::{Context, GlobalArgs};
use error::{CliError, CmdResult, Exit};

const AFTER_HELP: &str = "\
Exit codes: 0 ok · 1 a check failed · 2 bad usage or input · 3 provider/network failure · 4 state file problem

Examples:
  promptctl init
  promptctl prompt commit -m \"first version\"
  promptctl prompt diff support-reply
  promptctl eval run evals/triage.yaml
  promptctl demo

Documentation: docs/ in the repository, one page per command group.";

/// The operational side of prompts in production: versioned prompts and diffs, portfolios, N-of-K evals,
/// trace cost analysis, invoice reconciliation and few-shot leak scanning. All state in one SQLite file.
#[derive(Debug, Parser)]
#[command(name = "promptctl", version, about, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    Init(init::InitArgs),
    Demo(demo::DemoArgs),
    #[command(subcommand)]
    Prompt(prompt::PromptCommand),
    Reconcile(reconcile::ReconcileArgs),
    Scan(scan::ScanArgs),
    /// Weighted prompt portfolios: set, show, assign, export, observe, rebalance
    #[command(subcommand)]
    Portfolio(portfolio::PortfolioCommand),
    Rollback(rollback::RollbackArgs),
    /// N-of-K evals: run suites, resume, show, list, regrade, baseline
    #[command(subcommand)]
    Eval(eval::EvalCommand),
    /// The local OpenAI/Anthropic-compatible simulator
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Import trace exports; statistics and the streaming tail taxonomy
    #[command(subcommand)]
    Trace(trace::TraceCommand),
    /// Effective-dated prices in use; models in stored traces without a price
    #[command(subcommand)]
    Pricing(pricing::PricingCommand),
    /// The cost of the distribution served; routing simulations
    #[command(subcommand)]
    Cost(cost::CostCommand),
}

/// Parses the command line, runs the command, reports any error, and returns the exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut ctx = match Context::new(cli.global.clone()) {
        Ok(ctx) => ctx,
        Err(e) => return report(None, e),
    };
    let result = dispatch(&mut ctx, cli.command);
    let result = result.and_then(|exit| ctx.out.flush().map(|_| exit).map_err(CliError::from));
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => report(Some(&ctx), e),
    }
}

fn dispatch(ctx: &mut Context, command: Command) -> CmdResult {
    match command {
        Command::Init(args) => init::run(ctx, args),
        Command::Demo(args) => demo::run(ctx, args),
        Command::Prompt(cmd) => prompt::run(ctx, cmd),
        Command::Reconcile(args) => reconcile::run(ctx, args),
        Command::Scan(args) => scan::run(ctx, args),
        Command::Portfolio(cmd) => portfolio::run(ctx, cmd),
        Command::Rollback(args) => rollback::run(ctx, args),
        Command::Eval(cmd) => eval::run(ctx, cmd),
        Command::Sim(cmd) => sim::run(ctx, cmd),
        Command::Trace(cmd) => trace::run(ctx, cmd),
        Command::Pricing(cmd) => pricing::run(ctx, cmd),
        Command::Cost(cmd) => cost::run(ctx, cmd),
    }
}

fn report(ctx: Option<&Context>, e: CliError) -> ExitCode {
    let messages = match ctx {
        Some(ctx) => &ctx.msg,
        None => &output::Messages::new(false, output::ColorChoice::Auto),
    };
    messages.error(&e.message, &e.hints);
    ExitCode::from(e.exit as u8)
}

/// A closed stdout (`promptctl … | head`) is the reader's choice, not an error.
fn is_broken_pipe(e: &CliError) -> bool {
    e.exit == Exit::Input && e.message.contains("Broken pipe")
}
