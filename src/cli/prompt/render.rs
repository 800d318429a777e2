//! `promptctl prompt render`: the messages a call would send.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::Style;
use super::{PromptRef, prompt_from_stored, resolve};
use crate::diag::{InputError, read_text_file};
use crate::prompt::{Prompt, relative_to};
use crate::store::OpenMode;
use crate::trace::model::Message;

/// Print the rendered messages of a version (or of a working file); a missing variable is an error
#[derive(Debug, Args)]
#[command(after_help = "\
TARGET is NAME[@REF] for a committed version (REF as in `prompt show`), or a path to a .prompt file to
render the working copy. Variables: --var NAME=VALUE (text), --vars FILE (a JSON or YAML object, for
numbers, lists and objects); --var wins over --vars.

Examples:
  promptctl prompt render support-reply@production --var product=Acme --var message=\"Where is my order?\"
  promptctl prompt render prompts/support-reply.prompt --vars fixtures/vars.json --format json")]
pub struct RenderArgs {
    /// NAME[@REF] or a path to a .prompt file
    #[arg(value_name = "TARGET")]
    pub target: String,

    /// A variable, NAME=VALUE (repeatable)
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<String>,

    /// A JSON or YAML file with an object of variables
    #[arg(long = "vars", value_name = "FILE")]
    pub vars_file: Option<std::path::PathBuf>,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    name: &'a str,
    version: &'a str,
    model: Option<&'a str>,
    params: &'a std::collections::BTreeMap<String, serde_json::Value>,
    messages: &'a [Message],
}

pub fn run(ctx: &mut Context, args: RenderArgs) -> CmdResult {
    let vars = collect_vars(ctx, &args)?;
    let (prompt, version) = load_target(ctx, &args.target)?;
    let messages = prompt.render(&vars)?;
    if !ctx.out.is_human() {
        let report = Report {
            schema: "promptctl.prompt-render/v1",
            name: prompt.name(),
            version: &version,
            model: prompt.model(),
            params: &prompt.parsed.front.params,
            messages: &messages,
        };
        ctx.out.document(&report)?;
        return Ok(Exit::Ok);
    }
    for m in &messages {
        ctx.out.line(&ctx.out.paint(Style::Cyan, &format!("::: {}", m.role)))?;
        ctx.out.line(&m.content)?;
    }
    Ok(Exit::Ok)
}

/// A path renders the working file; anything else is NAME[@REF] in the state.
fn load_target(ctx: &Context, target: &str) -> Result<(Prompt, String), CliError> {
    let looks_like_path = target.ends_with(".prompt") || target.contains('/');
    if looks_like_path {
        let path = ctx.cwd().join(target);
        let prompt = Prompt::load(ctx.root(), &relative_to(ctx.root(), &path))?;
        return Ok((prompt, "working".to_string()));
    }
    let reference: PromptRef = target.parse().map_err(CliError::input)?;
    let store = ctx.open_store(OpenMode::MustExist)?;
    let resolved = resolve(&store, &reference.name, reference.reference.as_deref())?;
    let prompt = prompt_from_stored(&resolved.version)?;
    Ok((prompt, resolved.version.version_id))
}

fn collect_vars(ctx: &Context, args: &RenderArgs) -> Result<serde_json::Map<String, serde_json::Value>, CliError> {
    let mut vars = match &args.vars_file {
        Some(path) => read_vars_file(ctx, path)?,
        None => serde_json::Map::new(),
    };
    for pair in &args.vars {
        let (k, v) = pair.split_once('=').ok_or_else(|| {
            CliError::input(format!("--var `{pair}` is not NAME=VALUE"))
                .with_hint("example: --var message=\"Where is my order?\"")
        })?;
        vars.insert(k.trim().to_string(), serde_json::Value::String(v.to_string()));
    }
    Ok(vars)
}

fn read_vars_file(
    ctx: &Context,
    path: &std::path::Path,
) -> Result<serde_json::Map<String, serde_json::Value>, CliError> {
    let shown = ctx.display_path(&ctx.cwd().join(path));
    let text = read_text_file(&ctx.cwd().join(path), &shown)?;
    let value: serde_json::Value = if shown.ends_with(".json") {
        serde_json::from_str(&text).map_err(|e| InputError::new(&shown, e.to_string()).at(e.line(), e.column()))?
    } else {
        let yaml = crate::yaml::value_from_str(&text).map_err(|e| InputError::from_yaml(&shown, e, 1))?;
        crate::yaml::to_json(&yaml).map_err(|e| InputError::from_yaml(&shown, e, 1))?
    };
    match value {
        serde_json::Value::Object(map) => Ok(map),
        _ => Err(InputError::new(&shown, "expected an object of variables (NAME: VALUE)").at(1, 1).into()),
    }
}
