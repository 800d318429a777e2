//! `promptctl prompt diff`: the text diff plus what a reviewer needs: variables, model and params,
//! examples, token and cost deltas.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::Style;
use super::{PromptRef, find_working_file, prompt_from_stored, resolve};
use crate::pricing::{Billing, PriceBook, Tier};
use crate::prompt::Prompt;
use crate::prompt::diff::{ExampleChange, ParamChange, SetChange, diff};
use crate::store::{OpenMode, Store};
use crate::tokens::{count_messages, tokenizer_for};
use crate::trace::model::Usage;

/// Compare two versions, or a version and the working file
#[derive(Debug, Args)]
#[command(after_help = "\
Forms:
  prompt diff NAME               the working file against the production label (else the latest commit)
  prompt diff NAME@A             version A against the working file
  prompt diff NAME@A NAME@B      version A against version B

Tokens count the fixed part of the prompt (the template with its examples and every variable empty) in
the model's encoding; the cost per 1,000 calls prices those input tokens at list price. Output tokens
depend on the reply and are not included.

Examples:
  promptctl prompt diff support-reply
  promptctl prompt diff support-reply@~1 support-reply@~0 --format json
  promptctl prompt diff support-reply --exit-code   # exit 1 when there are differences")]
pub struct DiffArgs {
    /// The old side: NAME or NAME@REF
    #[arg(value_name = "NAME[@A]")]
    pub from: PromptRef,

    /// The new side: NAME@REF [default: the working file]
    #[arg(value_name = "NAME@B")]
    pub to: Option<PromptRef>,

    /// Exit with 1 when the two sides differ (like `git diff --exit-code`)
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    from: SideInfo,
    to: SideInfo,
    text: String,
    variables: SetChange,
    params: Vec<ParamChange>,
    examples: ExampleChange,
    tokens: Tokens,
    cost_per_1k_calls_usd: Costs,
}

#[derive(Serialize, Clone)]
struct SideInfo {
    name: String,
    version: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
}

#[derive(Serialize)]
struct Tokens {
    encoding: &'static str,
    /// False when the model's tokenizer is not public and the count uses a stand-in encoding.
    exact: bool,
    from: u64,
    to: u64,
    delta: i64,
}

#[derive(Serialize)]
struct Costs {
    from: Option<f64>,
    to: Option<f64>,
}

/// A prompt's fixed-part token count and how it was counted.
pub struct TokenCount {
    pub encoding: &'static str,
    pub exact: bool,
    pub tokens: u64,
}

/// Tokens of the prompt's fixed part, in the model's encoding.
pub fn fixed_tokens(prompt: &Prompt) -> Result<TokenCount, CliError> {
    let tokenizer = tokenizer_for(prompt.model().unwrap_or("gpt-4o"));
    let tokens = count_messages(tokenizer.encoding, &prompt.fixed_messages()?) as u64;
    Ok(TokenCount { encoding: tokenizer.encoding.name(), exact: tokenizer.exact, tokens })
}

struct Side {
    prompt: Prompt,
    info: SideInfo,
}

pub fn run(ctx: &mut Context, args: DiffArgs) -> CmdResult {
    let store = ctx.open_store(OpenMode::MustExist)?;
    let (from, to) = match &args.to {
        Some(to) => (stored_side(&store, &args.from)?, stored_side(&store, to)?),
        None if args.from.reference.is_some() => {
            (stored_side(&store, &args.from)?, working_side(ctx, &args.from.name)?)
        }
        None => (default_base(ctx, &store, &args.from.name)?, working_side(ctx, &args.from.name)?),
    };
    let structural = diff(&from.prompt, &to.prompt, &side_title(&from.info), &side_title(&to.info));
    let from_tokens = fixed_tokens(&from.prompt)?;
    let to_tokens = fixed_tokens(&to.prompt)?;
    let differs = !structural.is_empty();
    let book = ctx.price_book()?;
    let report = Report {
        schema: "promptctl.prompt-diff/v1",
        cost_per_1k_calls_usd: Costs {
            from: input_cost_per_1k_calls(&book, &from.prompt, from_tokens.tokens),
            to: input_cost_per_1k_calls(&book, &to.prompt, to_tokens.tokens),
        },
        tokens: Tokens {
            encoding: to_tokens.encoding,
            exact: from_tokens.exact && to_tokens.exact,
            from: from_tokens.tokens,
            to: to_tokens.tokens,
            delta: to_tokens.tokens as i64 - from_tokens.tokens as i64,
        },
        from: from.info,
        to: to.info,
        text: structural.text,
        variables: structural.variables,
        params: structural.params,
        examples: structural.examples,
    };
    if ctx.out.is_human() {
        print_human(ctx, &report, from_tokens.encoding)?;
    } else {
        ctx.out.document(&report)?;
    }
    Ok(if args.exit_code && differs { Exit::CheckFailed } else { Exit::Ok })
}

fn stored_side(store: &Store, reference: &PromptRef) -> Result<Side, CliError> {
    let resolved = resolve(store, &reference.name, reference.reference.as_deref())?;
    let prompt = prompt_from_stored(&resolved.version)?;
    let info = SideInfo {
        name: reference.name.clone(),
        version: resolved.version.version_id,
        label: resolved.label,
        path: None,
    };
    Ok(Side { prompt, info })
}

fn working_side(ctx: &Context, name: &str) -> Result<Side, CliError> {
    let path = find_working_file(ctx, name)?;
    let prompt = Prompt::load(ctx.root(), &path)?;
    let info = SideInfo { name: name.to_string(), version: "working".into(), label: None, path: Some(path) };
    Ok(Side { prompt, info })
}

/// The production label when there is one; otherwise the latest commit, said out loud.
fn default_base(ctx: &Context, store: &Store, name: &str) -> Result<Side, CliError> {
    if store.label(name, "production")?.is_some() {
        return stored_side(store, &PromptRef { name: name.into(), reference: Some("production".into()) });
    }
    ctx.msg.note(&format!("note: {name} has no `production` label; comparing with the latest committed version"));
    stored_side(store, &PromptRef { name: name.into(), reference: None })
}

fn side_title(info: &SideInfo) -> String {
    match (&info.path, &info.label) {
        (Some(path), _) => format!("{path} (working)"),
        (None, Some(label)) => format!("{}@{label} ({})", info.name, info.version),
        (None, None) => format!("{}@{}", info.name, info.version),
    }
}

/// List-price cost of the fixed input tokens, per 1,000 calls, at today's prices; None when the model has no
/// price (never $0).
fn input_cost_per_1k_calls(book: &PriceBook, prompt: &Prompt, tokens: u64) -> Option<f64> {
    let today = jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::now()).date();
    let quote = book.quote(prompt.model()?, today).ok()?;
    let usage = Usage::from_inclusive(tokens * 1000, 0, 0, 0, 0);
    let cost = quote.row.cost(&usage, Billing { tier: Tier::Standard, long_context: false }).ok()?;
    Some(cost.total.round_to(6))
}

fn print_human(ctx: &mut Context, r: &Report, encoding: &str) -> std::io::Result<()> {
    let arrow = format!("{} → {}", side_title(&r.from), side_title(&r.to));
    ctx.out.line(&ctx.out.paint(Style::Bold, &arrow))?;
    let row = |k: &str, v: String| format!("  {k:<10} {v}");
    for p in &r.params {
        ctx.out.line(&row(&p.key, format!("{} → {}", show_value(&p.from), show_value(&p.to))))?;
    }
    let vars = signed_list(&r.variables.added, &r.variables.removed, &[]);
    if !vars.is_empty() {
        ctx.out.line(&row("variables", vars))?;
    }
    let examples = signed_list(&r.examples.added, &r.examples.removed, &r.examples.changed);
    if !examples.is_empty() {
        ctx.out.line(&row("examples", examples))?;
    }
    let approx = if r.tokens.exact { "" } else { ", estimate: the model's tokenizer is not public" };
    let tokens = format!("{} → {} ({:+}, {encoding}{approx})", r.tokens.from, r.tokens.to, r.tokens.delta);
    ctx.out.line(&row("tokens", tokens))?;
    let cost = |c: Option<f64>| c.map_or("no price".to_string(), |c| format!("${c:.4}"));
    let costs = format!(
        "{} → {} (input tokens, list price)",
        cost(r.cost_per_1k_calls_usd.from),
        cost(r.cost_per_1k_calls_usd.to)
    );
    ctx.out.line(&row("cost/1k", costs))?;
    if r.text.is_empty() {
        ctx.out.line("\n(no text changes)")?;
        return Ok(());
    }
    ctx.out.line("")?;
    for line in r.text.lines() {
        let style = match line.as_bytes().first() {
            _ if line.starts_with("+++") || line.starts_with("---") => Some(Style::Bold),
            Some(b'+') => Some(Style::Green),
            Some(b'-') => Some(Style::Red),
            Some(b'@') => Some(Style::Cyan),
            _ => None,
        };
        let painted = match style {
            Some(style) => ctx.out.paint(style, line),
            None => line.to_string(),
        };
        ctx.out.line(&painted)?;
    }
    Ok(())
}

fn show_value(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(unset)".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn signed_list(added: &[String], removed: &[String], changed: &[String]) -> String {
    let plus = added.iter().map(|a| format!("+{a}"));
    let minus = removed.iter().map(|r| format!("-{r}"));
    let tilde = changed.iter().map(|c| format!("~{c}"));
    plus.chain(minus).chain(tilde).collect::<Vec<_>>().join(" ")
}
