//! `promptctl prompt show NAME[@REF]`: one version, whole.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CmdResult, Exit};
use super::super::output::Style;
use super::log::human_time;
use super::{PromptRef, prompt_from_stored, resolve};
use crate::store::OpenMode;

/// Show one committed version: metadata, variables, labels and the file itself
#[derive(Debug, Args)]
#[command(after_help = "\
REF is a label (production), a version-id prefix (3f2a9c), or ~N (~0 the latest committed, ~1 the one
before). Without REF: the latest committed version.

Examples:
  promptctl prompt show support-reply@production
  promptctl prompt show support-reply@~1 --format json")]
pub struct ShowArgs {
    /// NAME or NAME@REF
    #[arg(value_name = "NAME[@REF]")]
    pub prompt: PromptRef,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    name: String,
    version: String,
    content_hash: String,
    path: String,
    created_at: String,
    model: Option<String>,
    params: serde_json::Value,
    variables: Vec<String>,
    examples: Vec<String>,
    labels: Vec<String>,
    source: String,
    examples_path: Option<String>,
    examples_source: Option<String>,
}

pub fn run(ctx: &mut Context, args: ShowArgs) -> CmdResult {
    let store = ctx.open_store(OpenMode::MustExist)?;
    let resolved = resolve(&store, &args.prompt.name, args.prompt.reference.as_deref())?;
    let v = resolved.version;
    let prompt = prompt_from_stored(&v)?;
    let labels: Vec<String> =
        store.labels(&v.name)?.into_iter().filter(|(_, id)| *id == v.version_id).map(|(l, _)| l).collect();
    let report = Report {
        schema: "promptctl.prompt-show/v1",
        name: v.name.clone(),
        version: v.version_id.clone(),
        content_hash: v.content_hash.clone(),
        path: v.path.clone(),
        created_at: v.created_at.clone(),
        model: prompt.model().map(str::to_string),
        params: serde_json::to_value(&prompt.parsed.front.params).unwrap_or_default(),
        variables: prompt.variables().into_iter().collect(),
        examples: prompt.examples.iter().map(|e| e.id.clone()).collect(),
        labels,
        source: v.source.clone(),
        examples_path: v.examples_path.clone(),
        examples_source: v.examples_source.clone(),
    };
    if !ctx.out.is_human() {
        ctx.out.document(&report)?;
        return Ok(Exit::Ok);
    }
    let heading = format!("{} {}", report.name, ctx.out.paint(Style::Yellow, &report.version));
    ctx.out.line(&ctx.out.paint(Style::Bold, &heading))?;
    let field = |k: &str, v: String| format!("{:<10} {v}", format!("{k}:"));
    let lines = [
        field("path", report.path.clone()),
        field("created", human_time(&report.created_at)),
        field("labels", join_or_none(&report.labels)),
        field("model", report.model.clone().unwrap_or_else(|| "(none)".into())),
        field(
            "params",
            if report.params.as_object().is_some_and(|o| o.is_empty()) {
                "(none)".into()
            } else {
                report.params.to_string()
            },
        ),
        field("variables", join_or_none(&report.variables)),
        field(
            "examples",
            format!("{} ({})", report.examples.len(), report.examples_path.as_deref().unwrap_or("no file")),
        ),
    ];
    for line in lines {
        ctx.out.line(&line)?;
    }
    ctx.out.line("")?;
    ctx.out.text(&report.source)?;
    Ok(Exit::Ok)
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() { "(none)".into() } else { items.join(", ") }
}
