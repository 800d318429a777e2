//! `.prompt` files: parse, render, hash and diff. No SQL and no printing here.

pub mod diff;
pub mod examples;
pub mod file;
pub mod hash;
pub mod template;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::diag::{InputError, read_text_file};
use crate::trace::model::Message;

pub use examples::Example;
pub use file::{Frontmatter, ParsedPrompt};
pub use template::Template;

/// The bytes a prompt version is made of: the `.prompt` file and the examples file it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptSource {
    /// The `.prompt` file, relative to the project root, with `/` separators.
    pub path: String,
    pub text: String,
    /// As written in the frontmatter (relative to the `.prompt` file).
    pub examples_path: Option<String>,
    pub examples_text: Option<String>,
}

/// A parsed, compiled prompt and its content address.
pub struct Prompt {
    pub source: PromptSource,
    pub parsed: ParsedPrompt,
    pub examples: Vec<Example>,
    pub template: Template,
    pub content_hash: String,
    pub version_id: String,
}

impl std::fmt::Debug for Prompt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prompt").field("name", &self.parsed.name).field("version_id", &self.version_id).finish()
    }
}

impl Prompt {
    /// Reads `rel_path` (relative to `root`) and the examples file it references.
    pub fn load(root: &Path, rel_path: &str) -> Result<Prompt, InputError> {
        let text = read_text_file(&root.join(rel_path), rel_path)?;
        let stem = file_stem(rel_path);
        let parsed = file::parse(&text, rel_path, &stem)?;
        let (examples_path, examples_text) = match &parsed.front.examples {
            Some(examples) => {
                let shown = examples_shown_path(rel_path, examples);
                let text = read_text_file(&root.join(&shown), &shown).map_err(|e| {
                    if e.message == "file not found" {
                        missing_examples_error(rel_path, &text, examples, &shown)
                    } else {
                        e
                    }
                })?;
                (Some(examples.clone()), Some(text))
            }
            None => (None, None),
        };
        Prompt::from_source(PromptSource { path: rel_path.to_string(), text, examples_path, examples_text })
    }

    /// Builds a prompt from stored bytes (no file system access).
    pub fn from_source(source: PromptSource) -> Result<Prompt, InputError> {
        let stem = file_stem(&source.path);
        let parsed = file::parse(&source.text, &source.path, &stem)?;
        let examples = match (&source.examples_path, &source.examples_text) {
            (Some(p), Some(t)) => examples::parse(t, &examples_shown_path(&source.path, p))?,
            _ => Vec::new(),
        };
        let template = Template::compile(&parsed.body, &source.path, parsed.body_line)?;
        let content_hash = hash::content_hash(&parsed.front_json, &parsed.body, source.examples_text.as_deref());
        let version_id = hash::version_id(&content_hash);
        Ok(Prompt { source, parsed, examples, template, content_hash, version_id })
    }

    pub fn name(&self) -> &str {
        &self.parsed.name
    }

    pub fn model(&self) -> Option<&str> {
        self.parsed.front.model.as_deref()
    }

    /// Variables the template reads (from its AST).
    pub fn variables(&self) -> BTreeSet<String> {
        self.template.variables()
    }

    /// Renders the messages with `vars`; an undefined variable is an error naming it.
    pub fn render(&self, vars: &serde_json::Map<String, serde_json::Value>) -> Result<Vec<Message>, InputError> {
        self.template.render(&self.context(vars))
    }

    /// The messages with every variable empty: what every call of this prompt sends, whatever the input.
    pub fn fixed_messages(&self) -> Result<Vec<Message>, InputError> {
        self.template.render_fixed_part(&self.context(&Default::default()))
    }

    fn context(&self, vars: &serde_json::Map<String, serde_json::Value>) -> serde_json::Value {
        let mut context = vars.clone();
        let examples = self.examples.iter().map(|e| serde_json::Value::Object(e.fields.clone())).collect();
        context.entry("examples").or_insert(serde_json::Value::Array(examples));
        serde_json::Value::Object(context)
    }
}

/// `prompts/a/b.prompt` → `b`.
pub fn file_stem(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    file.strip_suffix(".prompt").unwrap_or(file).to_string()
}

/// The examples path as seen from the project root: relative to the `.prompt` file's directory.
fn examples_shown_path(prompt_path: &str, examples: &str) -> String {
    match prompt_path.rsplit_once('/') {
        Some((dir, _)) => normalize_relative(&format!("{dir}/{examples}")),
        None => examples.to_string(),
    }
}

fn normalize_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." if parts.last().is_some_and(|p| *p != "..") => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    parts.join("/")
}

fn missing_examples_error(prompt_path: &str, text: &str, examples: &str, shown: &str) -> InputError {
    let line = text.lines().position(|l| l.starts_with("examples")).map(|i| i + 1);
    let e = InputError::new(prompt_path, format!("examples file `{examples}` not found (looked for {shown})"))
        .with_hint("the path is relative to the .prompt file; fix it or remove the `examples:` key");
    match line {
        Some(line) => e.at(line, 1),
        None => e,
    }
}

/// Every `.prompt` file under `dir` (recursively), as paths relative to `root`, sorted.
pub fn discover(root: &Path, dir: &Path) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    let mut stack: Vec<PathBuf> = vec![root.join(dir)];
    while let Some(current) = stack.pop() {
        if current.is_file() {
            found.push(current);
            continue;
        }
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "prompt") {
                found.push(path);
            }
        }
    }
    let mut relative: Vec<String> = found.iter().map(|p| relative_to(root, p)).collect();
    relative.sort();
    Ok(relative)
}

/// `path` relative to `root` with `/` separators (unchanged when it is not under `root`).
pub fn relative_to(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn examples_paths_resolve_next_to_the_prompt() {
        assert_eq!(
            examples_shown_path("prompts/support/reply.prompt", "reply.examples.yaml"),
            "prompts/support/reply.examples.yaml"
        );
        assert_eq!(examples_shown_path("prompts/reply.prompt", "../shared/ex.yaml"), "shared/ex.yaml");
        assert_eq!(examples_shown_path("reply.prompt", "ex.yaml"), "ex.yaml");
    }

    #[test]
    fn a_missing_examples_file_names_the_key_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("prompts")).unwrap();
        std::fs::write(
            dir.path().join("prompts/a.prompt"),
            "---\nmodel: openai:gpt-4o-mini\nexamples: nope.yaml\n---\n::: user\nhi\n",
        )
        .unwrap();
        let e = Prompt::load(dir.path(), "prompts/a.prompt").unwrap_err();
        assert_eq!(e.line, Some(3));
        assert!(e.message.contains("prompts/nope.yaml"), "{}", e.message);
    }
}
