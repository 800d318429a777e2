//! Few-shot example files (`*.examples.yaml` or `.jsonl`): a list of `{id, input, output, …}`.

use std::collections::HashSet;

use crate::diag::InputError;

/// One few-shot example. Fields beyond `id` are kept as they are, for the template (`ex.input`).
#[derive(Debug, Clone, PartialEq)]
pub struct Example {
    pub id: String,
    pub fields: serde_json::Map<String, serde_json::Value>,
}

/// Parses an examples file; `.jsonl` files are one object per line, anything else is a YAML list.
pub fn parse(text: &str, shown_as: &str) -> Result<Vec<Example>, InputError> {
    let items = if shown_as.ends_with(".jsonl") { parse_jsonl(text, shown_as)? } else { parse_yaml(text, shown_as)? };
    let mut seen = HashSet::new();
    let mut examples = Vec::with_capacity(items.len());
    for (item, line) in items {
        let example = to_example(item, shown_as, line)?;
        if !seen.insert(example.id.clone()) {
            return Err(InputError::new(shown_as, format!("duplicate example id `{}`", example.id))
                .at_line(line)
                .with_hint("example ids must be unique within a file"));
        }
        examples.push(example);
    }
    Ok(examples)
}

fn parse_jsonl(text: &str, shown_as: &str) -> Result<Vec<(serde_json::Value, usize)>, InputError> {
    let mut items = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| InputError::new(shown_as, e.to_string()).at(index + 1, e.column()))?;
        items.push((value, index + 1));
    }
    Ok(items)
}

fn parse_yaml(text: &str, shown_as: &str) -> Result<Vec<(serde_json::Value, usize)>, InputError> {
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let value = crate::yaml::value_from_str(text).map_err(|e| InputError::from_yaml(shown_as, e, 1))?;
    let json = crate::yaml::to_json(&value).map_err(|e| InputError::from_yaml(shown_as, e, 1))?;
    let serde_json::Value::Array(items) = json else {
        return Err(InputError::new(shown_as, "expected a list of examples (`- id: …`)").at(1, 1));
    };
    let starts = item_start_lines(text);
    Ok(items.into_iter().enumerate().map(|(i, item)| (item, starts.get(i).copied().unwrap_or(1))).collect())
}

/// Lines where top-level list items (`- `) start, to point errors at the right example. Counted as
/// the lines go by: asking `line_col` for each item counted from the start of the file every time,
/// quadratic in the file (seconds for a 10 MB prompt repo).
fn item_start_lines(text: &str) -> Vec<usize> {
    text.split_inclusive('\n')
        .enumerate()
        .filter(|(_, line)| line.starts_with("- ") || line.trim_end() == "-")
        .map(|(index, _)| index + 1)
        .collect()
}

fn to_example(item: serde_json::Value, shown_as: &str, line: usize) -> Result<Example, InputError> {
    let serde_json::Value::Object(fields) = item else {
        return Err(InputError::new(shown_as, "each example must be a mapping with an `id`").at_line(line));
    };
    let id = match fields.get("id") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(serde_json::Value::Number(n)) => n.to_string(),
        _ => {
            return Err(InputError::new(shown_as, "example has no `id`")
                .at_line(line)
                .with_hint("give every example a stable `id` (e.g. `ex-01`): diffs and leak findings refer to it"));
        }
    };
    Ok(Example { id, fields })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_and_jsonl_parse_to_the_same_examples() {
        let yaml = "- id: ex-01\n  input: \"My order #4411 never arrived\"\n  output: Sorry\n- id: ex-02\n  input: b\n  output: c\n";
        let jsonl = "{\"id\":\"ex-01\",\"input\":\"My order #4411 never arrived\",\"output\":\"Sorry\"}\n{\"id\":\"ex-02\",\"input\":\"b\",\"output\":\"c\"}\n";
        assert_eq!(parse(yaml, "a.examples.yaml").unwrap(), parse(jsonl, "a.examples.jsonl").unwrap());
    }

    #[test]
    fn duplicate_ids_point_at_the_second_item() {
        let yaml = "- id: a\n  input: x\n- id: a\n  input: y\n";
        let e = parse(yaml, "a.examples.yaml").unwrap_err();
        assert_eq!(e.line, Some(3));
    }

    #[test]
    fn missing_id_and_bad_jsonl_line_are_located() {
        let e = parse("- input: x\n", "a.examples.yaml").unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse("{\"id\":\"a\"}\n{\"id\": \n", "a.examples.jsonl").unwrap_err();
        assert_eq!(e.line, Some(2));
    }
}
