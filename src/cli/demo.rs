//! `promptctl demo`: the whole tour, offline, in a temporary project, in seconds.
//!
//! Each step runs a real command through the same dispatch as the command line, in a temporary directory
//! holding the bundled example files, against a temporary state file.

use std::path::{Path, PathBuf};

use clap::{Args, Parser};

use super::context::Context;
use super::error::{CliError, CmdResult, Exit};
use super::output::Style;
use super::{Cli, dispatch};

/// Run the whole tour on bundled examples, offline, in a temporary state file
#[derive(Debug, Args)]
#[command(after_help = "\
The tour commits and diffs a prompt, renders and labels it, runs an N-of-K eval of the triage prompt
against the in-process simulator (a scripted model on 127.0.0.1 that is right on most tickets, flaky on
a few and always wrong on one), rebalances a prompt portfolio over simulated weeks and plans a rollback,
scans mined few-shot examples for tenant data, imports a week of support-bot traces (streaming tails,
cost of the distribution) and reconciles a month's provider invoices with its traces, cause by cause.
Nothing outside a temporary directory is read or written, and nothing leaves the machine.

Examples:
  promptctl demo
  promptctl demo --keep     # keep the temporary project to explore it afterwards")]
pub struct DemoArgs {
    /// Keep the temporary project directory and print where it is
    #[arg(long)]
    pub keep: bool,
}

/// The repository's example files, bundled so the demo works from any directory.
const BUNDLED: &[(&str, &[u8])] = &[
    ("prompts/support-reply.prompt", include_bytes!("../../prompts/support-reply.prompt")),
    ("prompts/support-reply.examples.yaml", include_bytes!("../../prompts/support-reply.examples.yaml")),
    ("prompts/triage.prompt", include_bytes!("../../prompts/triage.prompt")),
    ("prompts/extract-order.prompt", include_bytes!("../../prompts/extract-order.prompt")),
    ("leak-scan/promptctl.toml", include_bytes!("../../fixtures/scan/promptctl.toml")),
    ("leak-scan/prompts/support-reply.prompt", include_bytes!("../../fixtures/scan/prompts/support-reply.prompt")),
    (
        "leak-scan/prompts/support-reply.examples.yaml",
        include_bytes!("../../fixtures/scan/prompts/support-reply.examples.yaml"),
    ),
    ("leak-scan/prompts/provenance.yaml", include_bytes!("../../fixtures/scan/prompts/provenance.yaml")),
    ("leak-scan/prompts/order-lookup.prompt", include_bytes!("../../fixtures/scan/prompts/order-lookup.prompt")),
    ("leak-scan/traces.jsonl", include_bytes!("../../fixtures/scan/traces.jsonl")),
    ("evals/triage.yaml", include_bytes!("../../evals/triage.yaml")),
    ("evals/sim/triage.yaml", TRIAGE_SCENARIO.as_bytes()),
    ("traces/support-week.jsonl.gz", include_bytes!("../../fixtures/traces/support-week.jsonl.gz")),
    (
        "invoices/2026-10/openai-usage-page-01.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/openai-usage-page-01.json"),
    ),
    (
        "invoices/2026-10/openai-usage-page-02.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/openai-usage-page-02.json"),
    ),
    (
        "invoices/2026-10/openai-usage-page-03.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/openai-usage-page-03.json"),
    ),
    (
        "invoices/2026-10/openai-usage-page-04.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/openai-usage-page-04.json"),
    ),
    (
        "invoices/2026-10/openai-usage-page-05.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/openai-usage-page-05.json"),
    ),
    (
        "invoices/2026-10/openai-costs.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/openai-costs.json"),
    ),
    (
        "invoices/2026-10/anthropic-usage-report.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/anthropic-usage-report.json"),
    ),
    (
        "invoices/2026-10/anthropic-cost-report.json",
        include_bytes!("../../fixtures/reconcile/2026-10/invoice/anthropic-cost-report.json"),
    ),
    ("traces/october.jsonl", include_bytes!("../../fixtures/reconcile/2026-10/traces.jsonl")),
];

/// The scripted model the eval step runs against.
const TRIAGE_SCENARIO: &str = include_str!("../../evals/sim/triage.yaml");

/// Written in a command where the in-process simulator's base URL goes.
const SIM_URL: &str = "{sim}";

enum Step {
    /// A heading and what the step shows.
    Say(&'static str, &'static str),
    /// A command, as a user would type it after `promptctl`.
    Run(&'static [&'static str]),
    /// A change to a file in the project, described.
    Edit(&'static str, fn(&Path) -> std::io::Result<()>),
    /// Simulated weeks of portfolio traffic in a state file of their own (see `portfolio::demo`).
    PortfolioWeeks,
}

fn tour() -> Vec<Step> {
    use Step::*;
    vec![
        Say(
            "1. Version prompts",
            "Every .prompt file gets a content-addressed version id; unchanged files are skipped.",
        ),
        Run(&["init"]),
        Run(&["prompt", "commit", "-m", "first version"]),
        Run(&["prompt", "label", "support-reply", "production", "--reason", "initial release"]),
        Say(
            "2. Change a prompt and review the diff",
            "A reviewer sees the text diff plus what it changes: model, variables, examples, tokens and cost.",
        ),
        Edit(
            "switch support-reply to gpt-4.1-mini, sign off with the agent's name, add an example",
            edit_support_reply,
        ),
        Run(&["prompt", "diff", "support-reply"]),
        Run(&["prompt", "commit", "-m", "bigger model, named sign-off"]),
        Say(
            "3. Render what a call sends",
            "Rendering is strict: a variable that is missing is an error, not an empty string.",
        ),
        Run(&[
            "prompt",
            "render",
            "support-reply",
            "--var",
            "message=My blender arrived with a cracked jar.",
            "--var",
            "order_id=5521",
            "--var",
            "agent_name=Sam",
        ]),
        Say("4. Labels keep their history", "Moving `production` records who, when, from and to."),
        Run(&["prompt", "label", "support-reply", "production", "--reason", "warmer sign-off approved"]),
        Run(&["prompt", "log", "support-reply"]),
        Say(
            "5. Evals: N-of-K, not one lucky run",
            "Each of 20 tickets is triaged 5 times by a simulated model; a case passes when 4 of 5 samples do.\n\
             ✓✓✓✓✓ pass · ✓✓✗✓✓ pass-flaky · ✓✗✓✗✗ fail-flaky · ✗✗✗✗✗ fail: deterministic, a rerun cannot fix it.\n\
             A single rerun would have turned some flaky failures green and hidden them; the deterministic\n\
             failure would fail every time. Every sample, retries included, is a stored trace.",
        ),
        Run(&["eval", "run", "evals/triage.yaml", "--base-url", SIM_URL]),
        Say(
            "6. A flaky case: the K outputs side by side",
            "Identical outputs are grouped; each group shows the assertion that failed it.",
        ),
        Run(&["eval", "show", "latest", "--case", "third-contact"]),
        Say(
            "7. A deterministic failure",
            "Every sample gives the same wrong answer: the prompt's rule about unrecognised charges is not followed.\n\
             Fix the prompt; rerunning would only spend money on the same answer.",
        ),
        Run(&["eval", "show", "latest", "--case", "unrecognised-charge"]),
        Say(
            "8. Runs are resumable and listed",
            "A run is recorded before its first request and each sample is committed as it finishes, so a\n\
             killed run repeats nothing; `eval resume RUN_ID` runs only what is missing.",
        ),
        Run(&["eval", "list"]),
        Say(
            "9. Treat prompts as a portfolio",
            "Three variants of a support prompt over two customer segments: two simulated weeks of outcomes, \
             a Thompson-sampling rebalance after each (with a sample-ratio check first), then the plan for \
             rolling back the variant that lost, which also reaches caches, conversations, baselines and cohorts.",
        ),
        PortfolioWeeks,
        Say(
            "10. Scan few-shot examples for tenant data",
            "A helpdesk's examples were mined from production tickets. The scan finds one tenant's ticket \
             served to every tenant, and the model repeating it to two others; also a live API key. Only \
             redacted previews and HMACs are printed. (Exit code 1: findings at or above `high`.)",
        ),
        Run(&["scan", "leak-scan", "--config", "leak-scan/promptctl.toml", "--traces", "leak-scan/traces.jsonl"]),
        Say(
            "11. Import traces and read the streaming tails",
            "A week of a support bot's production traces (1,424 calls, 300 conversations). A span's duration \
             hides what went wrong inside a stream; its checkpoints do not: slow first tokens, stalls, loops, \
             truncations, aborts and slow tails, each with its trace id.",
        ),
        Run(&["trace", "import", "traces/support-week.jsonl.gz"]),
        Run(&["trace", "tails", "--source", "import"]),
        Say(
            "12. What the distribution costs",
            "(`--source import` leaves out the eval samples of step 5.) Every call priced with the price book in force on its day, failed and retried attempts included. \
             The median request times the count understates the bill; conversations cost super-linearly in \
             their turns, and a few of them carry a large share of the spend.",
        ),
        Run(&["cost", "report", "--source", "import"]),
        Say(
            "13. Reconcile the invoice with the traces",
            "October's provider invoices (OpenAI usage and costs pages, Anthropic usage and cost reports) against \
             the month's traces: the gap, explained cause by cause in dollars, with evidence, and what stays \
             unexplained (here 2 % of the gap, inside the default 5 % tolerance).",
        ),
        Run(&["reconcile", "--invoice", "invoices/2026-10", "--traces", "traces/october.jsonl", "--month", "2026-10"]),
    ]
}

fn edit_support_reply(root: &Path) -> std::io::Result<()> {
    let path = root.join("prompts/support-reply.prompt");
    let text = std::fs::read_to_string(&path)?
        .replace("model: openai:gpt-4o-mini", "model: openai:gpt-4.1-mini")
        .replace("- Do not mention that you are an AI unless asked.", "- Do not mention that you are an AI unless asked.\n- Sign off as {{ agent_name }} from the Acme support team.");
    std::fs::write(&path, text)?;
    let examples = root.join("prompts/support-reply.examples.yaml");
    let mut text = std::fs::read_to_string(&examples)?;
    text.push_str("- id: ex-04\n  input: \"The handle of my kettle came loose after two days.\"\n  output: \"That shouldn't happen after two days — I'm sorry. Please send a photo of the handle and we'll ship a replacement kettle today, no need to return the old one.\"\n");
    std::fs::write(&examples, text)
}

pub fn run(ctx: &mut Context, args: DemoArgs) -> CmdResult {
    let dir = tempfile::Builder::new().prefix("promptctl-demo-").tempdir()?;
    let root = dir.path().to_path_buf();
    write_bundled(&root)?;
    let sim = DemoSim::start()?;
    std::fs::create_dir_all(root.join(".promptctl"))?;
    let state = root.join(".promptctl").join("state.db");
    for step in tour() {
        match step {
            Step::Say(title, what) => {
                ctx.out.line("")?;
                ctx.out.line(&ctx.out.paint(Style::Bold, &format!("━━ {title}")))?;
                ctx.out.line(&ctx.out.paint(Style::Dim, what))?;
            }
            Step::Edit(what, edit) => {
                ctx.out.line(&ctx.out.paint(Style::Cyan, &format!("(editing: {what})")))?;
                edit(&root)?;
            }
            Step::Run(command) => {
                let command: Vec<String> = command.iter().map(|w| w.replace(SIM_URL, &sim.url)).collect();
                let command: Vec<&str> = command.iter().map(String::as_str).collect();
                run_step(ctx, &root, &state, &command)?
            }
            Step::PortfolioWeeks => portfolio_weeks(ctx, &root)?,
        }
    }
    ctx.out.line("")?;
    if args.keep {
        let kept = dir.keep();
        ctx.out.line(&format!("The demo project is in {}; its state file is .promptctl/state.db.", kept.display()))?;
    } else {
        ctx.out.line("Done. Run `promptctl demo --keep` to keep the temporary project and explore it.")?;
    }
    Ok(Exit::Ok)
}

fn portfolio_weeks(ctx: &mut Context, root: &Path) -> Result<(), CliError> {
    let path = root.join(".promptctl").join("portfolio-demo.db");
    let mut store = crate::store::Store::open(&path, crate::store::OpenMode::CreateIfMissing, false)?;
    let demo = super::portfolio::demo::portfolio_demo(&mut store)?;
    for step in demo.steps {
        ctx.out.line(&ctx.out.paint(Style::Yellow, &format!("· {} (simulated)", step.title)))?;
        ctx.out.line(&step.summary)?;
    }
    Ok(())
}

/// The simulator the eval step calls, served in-process on 127.0.0.1 by a runtime of its own while the
/// tour's commands run on this thread. Errors are rare and ask for no wait (`Retry-After: 0`), so the
/// tour shows a retry or two without slowing down.
struct DemoSim {
    url: String,
    handle: Option<crate::sim::SimHandle>,
    runtime: tokio::runtime::Runtime,
}

impl DemoSim {
    fn start() -> Result<DemoSim, CliError> {
        let scenario = crate::sim::Scenario::from_yaml(TRIAGE_SCENARIO)
            .map_err(|e| CliError::input(format!("the bundled scenario is invalid: {e}")))?;
        let config = crate::sim::SimConfig {
            latency: std::time::Duration::from_millis(40),
            jitter: std::time::Duration::from_millis(20),
            ttft: std::time::Duration::from_millis(10),
            error_rate: 0.02,
            retry_after_secs: 0,
            seed: 4,
            scenario,
            ..crate::sim::SimConfig::default()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .map_err(|e| CliError::input(format!("cannot start the simulator's runtime: {e}")))?;
        let handle = runtime
            .block_on(crate::sim::start(config))
            .map_err(|e| CliError::input(format!("cannot start the simulator: {e}")))?;
        Ok(DemoSim { url: handle.base_url(), handle: Some(handle), runtime })
    }
}

impl Drop for DemoSim {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.shutdown());
        }
    }
}

fn write_bundled(root: &Path) -> std::io::Result<()> {
    for (path, text) in BUNDLED {
        let target = root.join(path);
        std::fs::create_dir_all(target.parent().expect("bundled paths have a directory"))?;
        std::fs::write(target, text)?;
    }
    Ok(())
}

/// Runs one command in the demo project, echoing it first. Its output goes to the demo's stdout.
fn run_step(ctx: &mut Context, root: &Path, state: &Path, command: &[&str]) -> Result<(), CliError> {
    ctx.out.line(&ctx.out.paint(Style::Yellow, &format!("$ promptctl {}", shell_words(command))))?;
    let argv = std::iter::once("promptctl").chain(command.iter().copied());
    let cli =
        Cli::try_parse_from(argv).map_err(|e| CliError::input(format!("demo step is not a valid command: {e}")))?;
    let mut global = cli.global;
    global.state = Some(PathBuf::from(state));
    global.format = ctx.global.format;
    global.color = ctx.global.color;
    ctx.out.flush()?;
    let mut step_ctx = Context::in_dir(global, root.to_path_buf(), root.to_path_buf());
    let exit = dispatch(&mut step_ctx, cli.command)?;
    step_ctx.out.flush()?;
    if exit != Exit::Ok {
        ctx.out.line(&format!("(exit code {})", exit as u8))?;
    }
    Ok(())
}

fn shell_words(words: &[&str]) -> String {
    let quote = |w: &&str| {
        if w.chars().any(|c| c.is_whitespace() || "\"'$`\\".contains(c)) { format!("\"{w}\"") } else { w.to_string() }
    };
    words.iter().map(quote).collect::<Vec<_>>().join(" ")
}
