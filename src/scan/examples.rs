//! Few-shot example files (`*.examples.yaml`, `.jsonl`, `.json`) as examples with byte spans in the
//! original file, so that every finding points at a line and column of what the user wrote.
//!
//! The YAML facade gives values but not positions; positions are recovered by locating each item's
//! `- ` line (YAML) or line (JSONL), then each value's raw text inside the item.

use std::ops::Range;

use serde_json::Value as Json;

use super::error::ScanError;
use crate::yaml;

/// One string field of an example (`input`, `output`, `messages[1].content`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleField {
    pub name: String,
    /// The decoded value.
    pub text: String,
    /// Byte offset in the file where the value (or, failing that, its key) starts.
    pub offset: usize,
}

/// One few-shot example.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The `id` field, or `#N` (1-based position) when there is none.
    pub id: String,
    pub has_id: bool,
    /// The example's bytes in the file.
    pub span: Range<usize>,
    pub fields: Vec<ExampleField>,
}

/// Parses an examples file; the format follows the extension (`.jsonl`, `.json`, else YAML). `parsed`:
/// the items of a YAML file as the caller already has them (see `PromptInput::parsed_examples`).
pub fn parse_examples(path: &str, text: &str, parsed: Option<Vec<Json>>) -> Result<Vec<Example>, ScanError> {
    let items = if path.ends_with(".jsonl") {
        parse_jsonl(path, text)?
    } else if path.ends_with(".json") {
        let value: Json = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
        let items = item_list(path, value)?;
        let spans = spans_by_id(text, &items);
        items.into_iter().zip(spans).collect()
    } else if let Some(items) = parsed {
        let spans = yaml_item_spans(text, items.len()).unwrap_or_else(|| spans_by_id(text, &items));
        items.into_iter().zip(spans).collect()
    } else {
        let value = yaml::value_from_str(text).map_err(|e| ScanError::Examples {
            path: path.to_string(),
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let json = yaml::to_json(&value).map_err(|e| ScanError::Examples {
            path: path.to_string(),
            line: None,
            column: None,
            message: e.message,
        })?;
        let items = item_list(path, json)?;
        let spans = yaml_item_spans(text, items.len()).unwrap_or_else(|| spans_by_id(text, &items));
        items.into_iter().zip(spans).collect()
    };
    Ok(items.into_iter().enumerate().map(|(i, (item, span))| build_example(text, i, &item, span)).collect())
}

fn parse_jsonl(path: &str, text: &str) -> Result<Vec<(Json, Range<usize>)>, ScanError> {
    let mut items = Vec::new();
    let mut start = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let span = start..start + line.trim_end().len();
        start += line.len();
        if line.trim().is_empty() {
            continue;
        }
        let value: Json = serde_json::from_str(line).map_err(|e| ScanError::Examples {
            path: path.to_string(),
            line: Some(n + 1),
            column: Some(e.column()),
            message: format!("not a JSON object ({:?} error)", e.classify()),
        })?;
        items.push((value, span));
    }
    Ok(items)
}

fn json_error(path: &str, e: &serde_json::Error) -> ScanError {
    ScanError::Examples {
        path: path.to_string(),
        line: Some(e.line()),
        column: Some(e.column()),
        message: format!("invalid JSON ({:?} error)", e.classify()),
    }
}

/// A top-level list, or the list under an `examples` key.
fn item_list(path: &str, value: Json) -> Result<Vec<Json>, ScanError> {
    match value {
        Json::Array(items) => Ok(items),
        Json::Object(mut map) if map.get("examples").is_some_and(Json::is_array) => match map.remove("examples") {
            Some(Json::Array(items)) => Ok(items),
            _ => unreachable!("checked above"),
        },
        Json::Null => Ok(Vec::new()),
        _ => Err(ScanError::Examples {
            path: path.to_string(),
            line: Some(1),
            column: Some(1),
            message: "expected a list of examples (or an `examples:` list)".to_string(),
        }),
    }
}

/// Item spans from the lines that open a sequence item at the list's indentation.
fn yaml_item_spans(text: &str, expected: usize) -> Option<Vec<Range<usize>>> {
    let mut starts = Vec::new();
    let mut indent: Option<usize> = None;
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start_matches(' ');
        let this_indent = line.len() - trimmed.len();
        let opens_item = trimmed.starts_with("- ") || trimmed.trim_end() == "-";
        if opens_item && indent.is_none_or(|i| i == this_indent) {
            indent = Some(this_indent);
            starts.push(offset + this_indent);
        }
        offset += line.len();
    }
    if starts.len() != expected {
        return None;
    }
    let ends = starts.iter().skip(1).copied().chain([text.len()]);
    Some(starts.iter().zip(ends).map(|(&s, e)| s..e).collect())
}

/// Fallback: each item starts where its id first occurs after the previous item.
fn spans_by_id(text: &str, items: &[Json]) -> Vec<Range<usize>> {
    let mut starts = Vec::with_capacity(items.len());
    let mut from = 0;
    for item in items {
        let start =
            item_id(item).and_then(|id| text[from..].find(&id).map(|p| from + p)).map_or(from, |p| line_start(text, p));
        starts.push(start);
        from = start.max(from);
    }
    let ends: Vec<usize> = starts.iter().skip(1).copied().chain([text.len()]).collect();
    starts.into_iter().zip(ends).map(|(s, e)| s..e.max(s)).collect()
}

fn line_start(text: &str, p: usize) -> usize {
    text[..p].rfind('\n').map_or(0, |i| i + 1)
}

fn item_id(item: &Json) -> Option<String> {
    match item.get("id")? {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn build_example(text: &str, index: usize, item: &Json, span: Range<usize>) -> Example {
    let mut leaves = Vec::new();
    collect_strings(item, String::new(), &mut leaves);
    let mut cursor = span.start;
    let fields = leaves
        .into_iter()
        .filter(|(name, _)| name != "id")
        .map(|(name, value)| {
            let offset = locate_value(text, &span, cursor, &name, &value);
            cursor = offset.max(cursor);
            ExampleField { name, text: value, offset }
        })
        .collect();
    let id = item_id(item);
    Example { has_id: id.is_some(), id: id.unwrap_or_else(|| format!("#{}", index + 1)), span, fields }
}

fn collect_strings(value: &Json, name: String, out: &mut Vec<(String, String)>) {
    match value {
        Json::String(s) => out.push((name, s.clone())),
        Json::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                collect_strings(v, format!("{name}[{i}]"), out);
            }
        }
        Json::Object(map) => {
            for (k, v) in map {
                let child = if name.is_empty() { k.clone() } else { format!("{name}.{k}") };
                collect_strings(v, child, out);
            }
        }
        _ => {}
    }
}

/// Where the raw text of `value` starts inside the item: the value verbatim, its first line, its
/// JSON-escaped form, or else the field's key.
fn locate_value(text: &str, span: &Range<usize>, cursor: usize, name: &str, value: &str) -> usize {
    let item = &text[span.clone()];
    let from = cursor.clamp(span.start, span.end) - span.start;
    let first_line: String = value.lines().next().unwrap_or("").trim().chars().take(40).collect();
    let escaped = serde_json::to_string(value).unwrap_or_default();
    let escaped = escaped.trim_matches('"');
    let escaped_head: String = escaped.chars().take(40).collect();
    let key = name.rsplit('.').next().unwrap_or(name);
    let key = key.split('[').next().unwrap_or(key);
    [value, first_line.as_str(), escaped_head.as_str()]
        .into_iter()
        .filter(|needle| !needle.is_empty())
        .find_map(|needle| find_after(item, from, needle))
        .or_else(|| find_after(item, 0, key))
        .map_or(span.start, |p| span.start + p)
}

/// The first occurrence of `needle` at or after `from`, else the first anywhere.
fn find_after(haystack: &str, from: usize, needle: &str) -> Option<usize> {
    let find = |h: &str| first_occurrence(h.as_bytes(), needle.as_bytes());
    haystack.get(from..).and_then(find).map(|p| p + from).or_else(|| find(haystack))
}

/// `haystack.find(needle)` for a needle that is a whole field value and a haystack that is one item:
/// checking the places of its first byte is cheaper than setting up a substring searcher for every
/// value (`str::find` or memmem), which showed in profiles of a 10 MB prompt repo.
fn first_occurrence(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let Some((&first, rest)) = needle.split_first() else {
        return Some(0);
    };
    memchr::memchr_iter(first, haystack).find(|&p| haystack[p + 1..].starts_with(rest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::lines::LineIndex;

    #[test]
    fn yaml_examples_get_spans_and_field_positions() {
        let text = "# store\n- id: ex-01\n  input: \"My order #4411 never arrived\"\n  output: I'm sorry\n- id: ex-02\n  tags: [a, b]\n  input: |\n    Two lines\n    here\n  output: ok\n";
        let examples = parse_examples("p.examples.yaml", text, None).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].id, "ex-01");
        let idx = LineIndex::new(text);
        let input = &examples[0].fields.iter().find(|f| f.name == "input").unwrap();
        assert_eq!(idx.position(text, input.offset), (3, 11));
        let input2 = &examples[1].fields.iter().find(|f| f.name == "input").unwrap();
        assert_eq!(input2.text, "Two lines\nhere\n");
        assert_eq!(idx.position(text, input2.offset), (8, 5));
        assert_eq!(idx.position(text, examples[1].span.start), (5, 1));
    }

    #[test]
    fn items_parsed_by_the_caller_give_the_same_examples() {
        let text =
            "- id: ex-01\n  input: \"My order #4411\"\n  output: ok\n- id: ex-02\n  input: |\n    Two\n  output: b\n";
        let items = match yaml::to_json(&yaml::value_from_str(text).unwrap()).unwrap() {
            Json::Array(items) => items,
            other => panic!("{other:?}"),
        };
        let own = parse_examples("p.examples.yaml", text, None).unwrap();
        assert_eq!(parse_examples("p.examples.yaml", text, Some(items)).unwrap(), own);
    }

    #[test]
    fn jsonl_examples_map_escaped_values() {
        let text = "{\"id\":\"a\",\"input\":\"say \\\"hi\\\" now\"}\n\n{\"id\":\"b\",\"input\":\"x\"}\n";
        let examples = parse_examples("s.examples.jsonl", text, None).unwrap();
        assert_eq!(examples.len(), 2);
        assert_eq!(examples[0].fields[0].text, "say \"hi\" now");
        let idx = LineIndex::new(text);
        assert_eq!(idx.position(text, examples[0].fields[0].offset), (1, 20));
        assert_eq!(idx.position(text, examples[1].span.start), (3, 1));
    }

    #[test]
    fn first_occurrence_is_str_find() {
        for (haystack, needle) in
            [("abcabc", "bc"), ("abc", ""), ("", "a"), ("aaab", "aab"), ("xé é", "é"), ("ab", "abc")]
        {
            assert_eq!(first_occurrence(haystack.as_bytes(), needle.as_bytes()), haystack.find(needle), "{haystack:?}");
        }
    }

    #[test]
    fn yaml_errors_are_positioned() {
        let err = parse_examples("e.yaml", "- id: a\n  input: [unclosed\n", None).unwrap_err();
        assert!(matches!(err, ScanError::Examples { line: Some(_), .. }), "{err}");
    }
}
