//! `promptctl prompt label NAME[@REF] LABEL`: point a label at a version, keeping history.

use clap::Args;
use serde::Serialize;

use super::super::context::{Context, actor};
use super::super::error::{CliError, CmdResult, Exit};
use super::{PromptRef, resolve};
use crate::store::OpenMode;

/// Point LABEL at a version (default: the latest committed); every move is kept in the label history
#[derive(Debug, Args)]
#[command(after_help = "\
Labels are names like production, staging or canary. A label that already points at the version is left
alone. See the history with `promptctl prompt log NAME`.

Examples:
  promptctl prompt label support-reply production
  promptctl prompt label support-reply@3f2a9c staging --reason \"canary for the refund flow\"")]
pub struct LabelArgs {
    /// NAME or NAME@REF
    #[arg(value_name = "NAME[@REF]")]
    pub prompt: PromptRef,

    /// The label to move (letters, digits, `-`, `_`, `.`)
    pub label: String,

    /// Why, kept in the label history
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    name: &'a str,
    label: &'a str,
    from: Option<String>,
    to: &'a str,
    changed: bool,
}

pub fn run(ctx: &mut Context, args: LabelArgs) -> CmdResult {
    validate_label(&args.label)?;
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let resolved = resolve(&store, &args.prompt.name, args.prompt.reference.as_deref())?;
    let to = resolved.version.version_id;
    let before = store.label(&args.prompt.name, &args.label)?;
    let event = store.set_label(&args.prompt.name, &args.label, &to, &actor(), args.reason.as_deref())?;
    let report = Report {
        schema: "promptctl.prompt-label/v1",
        name: &args.prompt.name,
        label: &args.label,
        from: before,
        to: &to,
        changed: event.is_some(),
    };
    if ctx.out.is_human() {
        let line = match (&report.from, report.changed) {
            (_, false) => format!("{} {}: already at {to}", report.name, report.label),
            (Some(from), true) => format!("{} {}: {from} → {to}", report.name, report.label),
            (None, true) => format!("{} {}: (new) → {to}", report.name, report.label),
        };
        ctx.out.line(&line)?;
    } else {
        ctx.out.document(&report)?;
    }
    Ok(Exit::Ok)
}

fn validate_label(label: &str) -> Result<(), CliError> {
    let valid_chars = label.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    let starts_well = label.chars().next().is_some_and(|c| c.is_ascii_alphabetic());
    if valid_chars && starts_well && label.len() <= 64 {
        return Ok(());
    }
    Err(CliError::input(format!("`{label}` is not a valid label"))
        .with_hint("a label starts with a letter and has letters, digits, `-`, `_` or `.` (e.g. production, canary-2)"))
}
