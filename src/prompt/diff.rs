//! What changed between two prompt versions, in the terms a reviewer cares about.

use std::collections::BTreeMap;

use serde::Serialize;
use similar::TextDiff;

use super::Prompt;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SetChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParamChange {
    pub key: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ExampleChange {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

/// The structural part of a diff; token and cost deltas are added by the caller, which owns the tokenizer
/// and the price book.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptDiff {
    /// Unified diff of the `.prompt` file, then of the examples file when it changed. Empty when equal.
    pub text: String,
    pub variables: SetChange,
    pub params: Vec<ParamChange>,
    pub examples: ExampleChange,
}

impl PromptDiff {
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
            && self.variables.added.is_empty()
            && self.variables.removed.is_empty()
            && self.params.is_empty()
            && self.examples == ExampleChange::default()
    }
}

/// Compares `from` and `to`. `from_name`/`to_name` label the two sides of the text diff.
pub fn diff(from: &Prompt, to: &Prompt, from_name: &str, to_name: &str) -> PromptDiff {
    let mut text = unified(&from.source.text, &to.source.text, from_name, to_name);
    let from_examples = from.source.examples_text.as_deref().unwrap_or("");
    let to_examples = to.source.examples_text.as_deref().unwrap_or("");
    if from_examples != to_examples {
        let name = |p: &Prompt, side: &str| {
            format!("{side} ({})", p.source.examples_path.as_deref().unwrap_or("no examples file"))
        };
        text.push_str(&unified(from_examples, to_examples, &name(from, from_name), &name(to, to_name)));
    }
    PromptDiff {
        text,
        variables: variable_changes(from, to),
        params: param_changes(from, to),
        examples: example_changes(from, to),
    }
}

fn unified(a: &str, b: &str, a_name: &str, b_name: &str) -> String {
    if a == b {
        return String::new();
    }
    TextDiff::from_lines(a, b).unified_diff().context_radius(3).header(a_name, b_name).to_string()
}

fn variable_changes(from: &Prompt, to: &Prompt) -> SetChange {
    let (a, b) = (from.variables(), to.variables());
    SetChange { added: b.difference(&a).cloned().collect(), removed: a.difference(&b).cloned().collect() }
}

/// `model` first, then each key of `params` in order; absent on one side shows as `null`.
fn param_changes(from: &Prompt, to: &Prompt) -> Vec<ParamChange> {
    let model = |p: &Prompt| p.model().map_or(serde_json::Value::Null, |m| serde_json::Value::String(m.into()));
    let mut changes = Vec::new();
    if model(from) != model(to) {
        changes.push(ParamChange { key: "model".into(), from: model(from), to: model(to) });
    }
    let (a, b) = (&from.parsed.front.params, &to.parsed.front.params);
    let keys: BTreeMap<&String, ()> = a.keys().chain(b.keys()).map(|k| (k, ())).collect();
    for key in keys.into_keys() {
        let (old, new) = (a.get(key).cloned().unwrap_or_default(), b.get(key).cloned().unwrap_or_default());
        if old != new {
            changes.push(ParamChange { key: key.clone(), from: old, to: new });
        }
    }
    changes
}

fn example_changes(from: &Prompt, to: &Prompt) -> ExampleChange {
    let index = |p: &Prompt| p.examples.iter().map(|e| (e.id.clone(), e.fields.clone())).collect::<BTreeMap<_, _>>();
    let (a, b) = (index(from), index(to));
    let mut change = ExampleChange::default();
    for (id, fields) in &b {
        match a.get(id) {
            None => change.added.push(id.clone()),
            Some(old) if old != fields => change.changed.push(id.clone()),
            Some(_) => {}
        }
    }
    change.removed = a.keys().filter(|id| !b.contains_key(*id)).cloned().collect();
    change
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::PromptSource;

    fn prompt(text: &str, examples: Option<&str>) -> Prompt {
        Prompt::from_source(PromptSource {
            path: "prompts/p.prompt".into(),
            text: text.into(),
            examples_path: examples.map(|_| "p.examples.yaml".into()),
            examples_text: examples.map(str::to_string),
        })
        .unwrap()
    }

    #[test]
    fn a_version_diffed_with_itself_is_empty() {
        let p = prompt("---\nmodel: openai:gpt-4o-mini\n---\n::: user\n{{ q }}\n", Some("- id: a\n  input: x\n"));
        let q = prompt("---\nmodel: openai:gpt-4o-mini\n---\n::: user\n{{ q }}\n", Some("- id: a\n  input: x\n"));
        assert!(diff(&p, &q, "a", "b").is_empty());
    }

    #[test]
    fn reports_variables_params_and_examples() {
        let a = prompt(
            "---\nmodel: openai:gpt-4o-mini\nparams: { temperature: 0.2 }\nexamples: p.examples.yaml\n---\n::: user\n{{ q }}\n",
            Some("- id: a\n  input: x\n- id: b\n  input: y\n"),
        );
        let b = prompt(
            "---\nmodel: openai:gpt-4.1-mini\nparams: { temperature: 0.2, max_tokens: 300 }\nexamples: p.examples.yaml\n---\n::: user\n{{ q }} in a {{ tone }} tone\n",
            Some("- id: a\n  input: x2\n- id: c\n  input: z\n"),
        );
        let d = diff(&a, &b, "a", "b");
        assert_eq!(d.variables, SetChange { added: vec!["tone".into()], removed: vec![] });
        assert_eq!(d.params.len(), 2);
        assert_eq!(d.params[0].key, "model");
        assert_eq!(
            d.params[1],
            ParamChange { key: "max_tokens".into(), from: serde_json::Value::Null, to: 300.into() }
        );
        assert_eq!(
            d.examples,
            ExampleChange { added: vec!["c".into()], removed: vec!["b".into()], changed: vec!["a".into()] }
        );
        assert!(d.text.contains("-{{ q }}\n+{{ q }} in a {{ tone }} tone"), "{}", d.text);
        assert!(d.text.contains("+  input: x2"), "{}", d.text);
    }
}
