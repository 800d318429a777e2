//! The command line: clap types, dispatch, rendering. The only code that prints.

pub mod context;
pub mod error;
pub mod output;

mod demo;
mod init;
pub mod portfolio;
mod prompt;
mod reconcile;
mod rollback;
mod scan;

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
