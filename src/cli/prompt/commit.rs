//! `promptctl prompt commit`: record a new version of each changed `.prompt` file.

use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::super::context::{Context, actor};
use super::super::error::{CliError, CmdResult, Exit};
use crate::prompt::{Prompt, discover, relative_to};
use crate::store::{NewCommit, OpenMode, StoredVersion};

/// Record a new version of each changed .prompt file (creates the state file on first use)
#[derive(Debug, Args)]
#[command(after_help = "\
Files whose content equals their latest committed version are left alone. All files are checked before
anything is written: one bad file commits nothing.

Examples:
  promptctl prompt commit -m \"shorter system prompt\"
  promptctl prompt commit prompts/support-reply.prompt")]
pub struct CommitArgs {
    /// .prompt files or directories to commit [default: prompts/]
    #[arg(value_name = "PATH")]
    pub paths: Vec<std::path::PathBuf>,

    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    committed: Vec<Entry>,
    unchanged: Vec<Entry>,
}

#[derive(Serialize)]
struct Entry {
    name: String,
    version: String,
    path: String,
}

pub fn run(ctx: &mut Context, args: CommitArgs) -> CmdResult {
    let files = files_to_commit(ctx, &args.paths)?;
    let prompts = files.iter().map(|f| Prompt::load(ctx.root(), f)).collect::<Result<Vec<_>, _>>()?;
    check_unique_names(&prompts)?;
    let versions: Vec<StoredVersion> = prompts.iter().map(stored_version).collect();
    let mut store = ctx.open_store(OpenMode::CreateIfMissing)?;
    let commits: Vec<NewCommit<'_>> =
        versions.iter().map(|version| NewCommit { version, message: args.message.as_deref() }).collect();
    let made = store.commit_versions(&commits, &actor())?;
    let entry =
        |p: &Prompt| Entry { name: p.name().into(), version: p.version_id.clone(), path: p.source.path.clone() };
    let is_new = |p: &Prompt| made.iter().any(|c| c.name == p.name() && c.version_id == p.version_id);
    let report = Report {
        schema: "promptctl.prompt-commit/v1",
        committed: prompts.iter().filter(|p| is_new(p)).map(entry).collect(),
        unchanged: prompts.iter().filter(|p| !is_new(p)).map(entry).collect(),
    };
    if ctx.out.is_human() {
        for e in &report.committed {
            let line = format!(
                "committed  {}  {}  ({})",
                ctx.out.paint(super::super::output::Style::Green, &e.version),
                e.name,
                e.path
            );
            ctx.out.line(&line)?;
        }
        for e in &report.unchanged {
            ctx.out.line(&format!("unchanged  {}  {}", e.version, e.name))?;
        }
    } else {
        ctx.out.document(&report)?;
    }
    Ok(Exit::Ok)
}

fn files_to_commit(ctx: &Context, paths: &[std::path::PathBuf]) -> Result<Vec<String>, CliError> {
    let roots: Vec<std::path::PathBuf> = if paths.is_empty() {
        vec![ctx.root().join("prompts")]
    } else {
        paths.iter().map(|p| ctx.cwd().join(p)).collect()
    };
    let mut files = Vec::new();
    for path in roots {
        if !path.exists() {
            return Err(CliError::input(format!("{} does not exist", ctx.display_path(&path)))
                .with_hint("pass .prompt files or directories, or run from the project root (where prompts/ is)"));
        }
        let rel = relative_to(ctx.root(), &path);
        if path.is_file() {
            files.push(rel);
        } else {
            files.extend(discover(ctx.root(), Path::new(&rel))?);
        }
    }
    if files.is_empty() {
        return Err(
            CliError::input("no .prompt files to commit").with_hint("create prompts/NAME.prompt (see docs/formats.md)")
        );
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn check_unique_names(prompts: &[Prompt]) -> Result<(), CliError> {
    for (i, a) in prompts.iter().enumerate() {
        if let Some(b) = prompts[i + 1..].iter().find(|b| b.name() == a.name()) {
            return Err(CliError::input(format!(
                "two files define the prompt `{}`: {} and {}",
                a.name(),
                a.source.path,
                b.source.path
            ))
            .with_hint("prompt names must be unique across prompts/"));
        }
    }
    Ok(())
}

fn stored_version(p: &Prompt) -> StoredVersion {
    StoredVersion {
        name: p.name().to_string(),
        version_id: p.version_id.clone(),
        content_hash: p.content_hash.clone(),
        path: p.source.path.clone(),
        source: p.source.text.clone(),
        examples_path: p.source.examples_path.clone(),
        examples_source: p.source.examples_text.clone(),
        created_at: String::new(),
    }
}
