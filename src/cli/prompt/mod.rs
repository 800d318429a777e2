//! `promptctl prompt …`: versioned prompts, labels and diffs.

mod commit;
mod diff;
mod label;
mod log;
mod render;
mod show;

use clap::Subcommand;

use super::context::Context;
use super::error::{CliError, CmdResult};
use crate::prompt::{Prompt, PromptSource};
use crate::store::{Store, StoredVersion};

#[derive(Debug, Subcommand)]
pub enum PromptCommand {
    Commit(commit::CommitArgs),
    Log(log::LogArgs),
    Show(show::ShowArgs),
    Diff(diff::DiffArgs),
    Render(render::RenderArgs),
    Label(label::LabelArgs),
}

pub fn run(ctx: &mut Context, command: PromptCommand) -> CmdResult {
    match command {
        PromptCommand::Commit(args) => commit::run(ctx, args),
        PromptCommand::Log(args) => log::run(ctx, args),
        PromptCommand::Show(args) => show::run(ctx, args),
        PromptCommand::Diff(args) => diff::run(ctx, args),
        PromptCommand::Render(args) => render::run(ctx, args),
        PromptCommand::Label(args) => label::run(ctx, args),
    }
}

/// `NAME[@REF]` as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptRef {
    pub name: String,
    pub reference: Option<String>,
}

impl std::str::FromStr for PromptRef {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, reference) = match s.split_once('@') {
            Some((name, reference)) => (name, Some(reference.to_string())),
            None => (s, None),
        };
        if name.is_empty() {
            return Err("expected NAME or NAME@REF (REF: a label, a version-id prefix, or ~N)".into());
        }
        if reference.as_deref() == Some("") {
            return Err(format!("`{s}` has an empty REF after `@`"));
        }
        Ok(PromptRef { name: name.to_string(), reference })
    }
}

impl std::fmt::Display for PromptRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.reference {
            Some(r) => write!(f, "{}@{r}", self.name),
            None => f.write_str(&self.name),
        }
    }
}

/// A resolved version and how it was named.
pub struct Resolved {
    pub version: StoredVersion,
    /// The label used to reach it, when REF was a label.
    pub label: Option<String>,
}

/// Resolves REF: a label first, then `~N`, then a version-id prefix (ambiguous → exit 2 listing
/// candidates). No REF means the latest committed version.
pub fn resolve(store: &Store, name: &str, reference: Option<&str>) -> Result<Resolved, CliError> {
    let reference = reference.unwrap_or("~0");
    if let Some(version_id) = store.label(name, reference)? {
        let version = load_version(store, name, &version_id)?;
        return Ok(Resolved { version, label: Some(reference.to_string()) });
    }
    if let Some(back) = reference.strip_prefix('~') {
        let back: u32 = back
            .parse()
            .map_err(|_| CliError::input(format!("`~{back}` is not a valid REF: expected ~N with N a whole number")))?;
        let commit = store.prompt_commit_back(name, back)?.ok_or_else(|| not_enough_history(store, name, back))?;
        let version = load_version(store, name, &commit.version_id)?;
        return Ok(Resolved { version, label: None });
    }
    let candidates = store.prompt_versions_with_prefix(name, reference)?;
    match candidates.as_slice() {
        [one] => Ok(Resolved { version: load_version(store, name, one)?, label: None }),
        [] => Err(unknown_ref(store, name, reference)?),
        many => {
            Err(CliError::input(format!("`{reference}` is ambiguous: {} versions of {name} start with it", many.len()))
                .with_hint(format!("candidates: {}", many.join(", ")))
                .with_hint("type more characters of the version id"))
        }
    }
}

fn load_version(store: &Store, name: &str, version_id: &str) -> Result<StoredVersion, CliError> {
    store
        .prompt_version(name, version_id)?
        .ok_or_else(|| CliError::state(format!("version {version_id} of {name} is referenced but not stored")))
}

fn not_enough_history(store: &Store, name: &str, back: u32) -> CliError {
    match store.prompt_log(name) {
        Ok(log) if log.is_empty() => no_commits(name),
        Ok(log) => CliError::input(format!("{name} has {} committed version(s); ~{back} goes back too far", log.len()))
            .with_hint(format!("use ~0 … ~{}", log.len() - 1)),
        Err(e) => e.into(),
    }
}

fn unknown_ref(store: &Store, name: &str, reference: &str) -> Result<CliError, CliError> {
    if store.prompt_log(name)?.is_empty() {
        return Ok(no_commits(name));
    }
    let labels: Vec<String> = store.labels(name)?.into_iter().map(|(l, _)| l).collect();
    let mut e = CliError::input(format!("{name} has no label or version `{reference}`"));
    if let Some(near) = crate::suggest::nearest(reference, labels.iter().map(String::as_str)) {
        e = e.with_hint(format!("did you mean the label `{near}`?"));
    }
    let labels = if labels.is_empty() { "none".to_string() } else { labels.join(", ") };
    Ok(e.with_hint(format!("labels: {labels}; see versions with `promptctl prompt log {name}`")))
}

pub fn no_commits(name: &str) -> CliError {
    CliError::input(format!("no committed versions of `{name}`"))
        .with_hint(format!("commit it first: promptctl prompt commit prompts/{name}.prompt"))
}

/// Rebuilds a stored version into a parsed prompt.
pub fn prompt_from_stored(version: &StoredVersion) -> Result<Prompt, CliError> {
    Prompt::from_source(PromptSource {
        path: version.path.clone(),
        text: version.source.clone(),
        examples_path: version.examples_path.clone(),
        examples_text: version.examples_source.clone(),
    })
    .map_err(|e| {
        CliError::state(format!("stored version {} of {} no longer parses: {e}", version.version_id, version.name))
    })
}

/// Finds `prompts/**/NAME.prompt` under the project root.
pub fn find_working_file(ctx: &Context, name: &str) -> Result<String, CliError> {
    let dir = ctx.root().join("prompts");
    let files =
        if dir.is_dir() { crate::prompt::discover(ctx.root(), std::path::Path::new("prompts"))? } else { Vec::new() };
    let matching: Vec<&String> = files.iter().filter(|f| crate::prompt::file_stem(f) == name).collect();
    match matching.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CliError::input(format!("no prompts/**/{name}.prompt under {}", ctx.display_path(ctx.root())))),
        many => Err(CliError::input(format!(
            "{} files are named {name}.prompt: {}",
            many.len(),
            many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        ))
        .with_hint("prompt names must be unique across prompts/")),
    }
}

/// A short form of a version id for tables.
pub fn short(version_id: &str) -> &str {
    &version_id[..version_id.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_name_and_ref() {
        let r: PromptRef = "support-reply@production".parse().unwrap();
        assert_eq!(r, PromptRef { name: "support-reply".into(), reference: Some("production".into()) });
        assert_eq!("x".parse::<PromptRef>().unwrap().reference, None);
        assert!("@x".parse::<PromptRef>().is_err());
        assert!("x@".parse::<PromptRef>().is_err());
    }
}
