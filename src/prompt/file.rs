//! Parsing `.prompt` files: YAML frontmatter between `---` lines, then a minijinja template body.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::diag::InputError;

/// The keys a frontmatter may have. Unknown keys are rejected so that a typo (`modle:`) is not silently
/// ignored.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Frontmatter {
    /// Defaults to the file stem; when given it must equal it (commands find prompts by name).
    pub name: Option<String>,
    pub description: Option<String>,
    /// `provider:model`, e.g. `openai:gpt-4o-mini`.
    pub model: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, serde_json::Value>,
    /// Variable name → type (`string`, `number`, `integer`, `boolean`, `list`, `object`, `any`), with a
    /// trailing `?` for optional.
    #[serde(default)]
    pub input: BTreeMap<String, String>,
    /// Path of a few-shot examples file, relative to the `.prompt` file.
    pub examples: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

const INPUT_TYPES: &[&str] = &["string", "number", "integer", "boolean", "list", "object", "any"];

/// A `.prompt` file split into its parts.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedPrompt {
    pub name: String,
    pub front: Frontmatter,
    /// The frontmatter as JSON, for the canonical hash.
    pub front_json: serde_json::Value,
    /// The template text after the closing `---` line.
    pub body: String,
    /// 1-based line of the file where the body starts.
    pub body_line: usize,
}

/// Parses the text of a `.prompt` file. `shown_as` names the file in errors; `stem` is the file name
/// without `.prompt`, which `name:` must match.
pub fn parse(text: &str, shown_as: &str, stem: &str) -> Result<ParsedPrompt, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::new(shown_as, "the file is empty").with_hint(
            "a .prompt file starts with a `---` line, YAML frontmatter, a closing `---`, then the template",
        ));
    }
    let (front_text, body, body_line) = split_frontmatter(text, shown_as)?;
    let front_value = crate::yaml::value_from_str(front_text).map_err(|e| InputError::from_yaml(shown_as, e, 2))?;
    let front_value = if front_value.is_null() { crate::yaml::Value::Mapping(Default::default()) } else { front_value };
    let front: Frontmatter =
        crate::yaml::from_value(front_value.clone()).map_err(|e| locate_in_frontmatter(shown_as, front_text, e))?;
    let front_json = crate::yaml::to_json(&front_value).map_err(|e| InputError::from_yaml(shown_as, e, 2))?;
    check_input_types(&front, front_text, shown_as)?;
    let name = resolve_name(&front, front_text, shown_as, stem)?;
    Ok(ParsedPrompt { name, front, front_json, body: body.to_string(), body_line })
}

/// Returns (frontmatter text, body text, 1-based line of the body).
fn split_frontmatter<'a>(text: &'a str, shown_as: &str) -> Result<(&'a str, &'a str, usize), InputError> {
    let text_no_bom = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text_no_bom.split_inclusive('\n');
    let first = lines.next().unwrap_or("");
    if first.trim_end() != "---" {
        return Err(InputError::new(shown_as, "expected `---` to open the frontmatter").at(1, 1).with_hint(
            "start the file with a line `---`, the YAML frontmatter (name, model, params, input), and a closing `---`",
        ));
    }
    let front_start = first.len();
    let mut offset = front_start;
    for (index, line) in lines.enumerate() {
        if line.trim_end() == "---" {
            let front = &text_no_bom[front_start..offset];
            let body = &text_no_bom[offset + line.len()..];
            return Ok((front, body, index + 3));
        }
        offset += line.len();
    }
    Err(InputError::new(shown_as, "the frontmatter opened on line 1 is never closed")
        .at(1, 1)
        .with_hint("add a line `---` after the frontmatter, before the template"))
}

/// Shape errors from `from_value` have no position; find the offending key in the text.
fn locate_in_frontmatter(shown_as: &str, front_text: &str, err: crate::yaml::YamlError) -> InputError {
    let key = err.message.strip_prefix("unknown key `").and_then(|rest| rest.split('`').next());
    let position =
        key.and_then(|k| find_top_level_key(front_text, k)).or_else(|| err.line.map(|l| (l, err.column.unwrap_or(1))));
    let error = InputError::new(shown_as, err.message);
    match position {
        Some((line, column)) => error.at(line + 1, column),
        None => error,
    }
}

/// 1-based (line, column) within `front_text` of a top-level `key:`.
fn find_top_level_key(front_text: &str, key: &str) -> Option<(usize, usize)> {
    front_text.lines().enumerate().find_map(|(i, line)| {
        let rest = line.strip_prefix(key)?;
        rest.trim_start().starts_with(':').then_some((i + 1, 1))
    })
}

/// 1-based (line, column) within `front_text` of a nested `key:` (any indentation).
fn find_nested_key(front_text: &str, key: &str) -> Option<(usize, usize)> {
    front_text.lines().enumerate().find_map(|(i, line)| {
        let indent = line.len() - line.trim_start().len();
        let rest = line.trim_start().strip_prefix(key)?;
        rest.trim_start().starts_with(':').then_some((i + 1, indent + 1))
    })
}

fn check_input_types(front: &Frontmatter, front_text: &str, shown_as: &str) -> Result<(), InputError> {
    for (var, ty) in &front.input {
        let base = ty.trim().trim_end_matches('?');
        if !INPUT_TYPES.contains(&base) {
            let mut error = InputError::new(
                shown_as,
                format!(
                    "variable `{var}` has unknown type `{ty}` (valid: {}, with `?` for optional)",
                    INPUT_TYPES.join(", ")
                ),
            );
            if let Some(near) = crate::suggest::nearest(base, INPUT_TYPES.iter().copied()) {
                error = error.with_hint(format!("did you mean `{near}`?"));
            }
            if let Some((line, column)) = find_nested_key(front_text, var) {
                error = error.at(line + 1, column);
            }
            return Err(error);
        }
    }
    Ok(())
}

fn resolve_name(front: &Frontmatter, front_text: &str, shown_as: &str, stem: &str) -> Result<String, InputError> {
    match &front.name {
        None => Ok(stem.to_string()),
        Some(name) if name == stem => Ok(name.clone()),
        Some(name) => {
            let (line, column) = find_top_level_key(front_text, "name").unwrap_or((1, 1));
            Err(InputError::new(shown_as, format!("`name: {name}` differs from the file name `{stem}.prompt`"))
                .at(line + 1, column)
                .with_hint(format!(
                    "promptctl finds prompts by file name: rename the file to `{name}.prompt` or set `name: {stem}`"
                )))
        }
    }
}

impl ParsedPrompt {
    /// Whether the template declares variable `var` optional (`type?`).
    pub fn is_optional(&self, var: &str) -> bool {
        self.front.input.get(var).is_some_and(|t| t.trim().ends_with('?'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "---\nname: support-reply\nmodel: openai:gpt-4o-mini\nparams: { temperature: 0.2 }\ninput:\n  message: string\n  tone: string?\n---\n::: system\nHi\n::: user\n{{ message }}\n";

    #[test]
    fn splits_frontmatter_and_body() {
        let p = parse(GOOD, "prompts/support-reply.prompt", "support-reply").unwrap();
        assert_eq!(p.name, "support-reply");
        assert_eq!(p.front.model.as_deref(), Some("openai:gpt-4o-mini"));
        assert_eq!(p.body_line, 9);
        assert!(p.body.starts_with("::: system"));
        assert!(p.is_optional("tone"));
        assert!(!p.is_optional("message"));
    }

    #[test]
    fn unknown_key_is_located_and_named() {
        let text = "---\nname: x\nmodle: gpt\n---\nbody\n";
        let e = parse(text, "x.prompt", "x").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(1)));
        assert!(e.message.contains("did you mean `model`"), "{}", e.message);
    }

    #[test]
    fn malformed_yaml_has_a_file_position() {
        let text = "---\nname: x\nparams: { temperature: 0.2\n---\nbody\n";
        let e = parse(text, "x.prompt", "x").unwrap_err();
        assert!(e.line.unwrap() >= 3, "{e:?}");
    }

    #[test]
    fn missing_close_and_empty_file_are_explained() {
        let e = parse("---\nname: x\n", "x.prompt", "x").unwrap_err();
        assert!(e.message.contains("never closed"));
        let e = parse("", "x.prompt", "x").unwrap_err();
        assert!(e.message.contains("empty"));
        let e = parse("hello\n", "x.prompt", "x").unwrap_err();
        assert!(e.message.contains("expected `---`"));
    }

    #[test]
    fn name_must_match_file_name() {
        let e = parse("---\nname: other\n---\nbody\n", "x.prompt", "x").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.hint.unwrap().contains("rename"));
    }

    #[test]
    fn unknown_input_type_is_located() {
        let e = parse("---\ninput:\n  message: strng\n---\nbody\n", "x.prompt", "x").unwrap_err();
        assert_eq!((e.line, e.column), (Some(3), Some(3)));
        assert_eq!(e.hint.as_deref(), Some("did you mean `string`?"));
    }
}
