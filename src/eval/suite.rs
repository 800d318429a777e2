//! Eval suites (`evals/NAME.yaml`): cases, assertions, provider and N-of-K settings, validated strictly.

use std::collections::HashSet;
use std::path::Path;

use serde::Deserialize;

use super::assert::{Assertion, AssertionSpec, TYPES};
use crate::diag::{InputError, line_col, read_text_file};
use crate::money::Usd;

/// Where the suite's prompt comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptSpec {
    /// `support-reply@production`: a committed version by label, id prefix or `~N` (no REF: latest).
    Ref { name: String, reference: Option<String> },
    /// A `.prompt` file, relative to the project root.
    Path(String),
    /// A template body (or a whole `.prompt` text when it starts with `---`).
    Inline(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderSpec {
    /// `openai:MODEL`, `anthropic:MODEL` or `sim:MODEL`.
    pub id: String,
    pub base_url: Option<String>,
    pub api_key_env: Option<String>,
    pub timeout_ms: Option<u64>,
    pub max_attempts: Option<u32>,
    /// Stream replies (default true): TTFT and stream checkpoints are only recorded for streams.
    pub stream: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub description: Option<String>,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub tags: Vec<String>,
    /// The suite's assertions followed by the case's own.
    pub assertions: Vec<Assertion>,
    /// The same, as written, for storing the suite as run.
    pub assertion_specs: Vec<AssertionSpec>,
    /// Where the case is defined, for messages: `evals/support.yaml:14`.
    pub origin: String,
}

#[derive(Debug, Clone)]
pub struct Suite {
    pub name: String,
    pub description: Option<String>,
    /// The suite file as the user would type it.
    pub path: String,
    pub prompt: PromptSpec,
    /// None when neither the suite nor `promptctl.toml` names one: the CLI then needs `--provider`.
    pub provider: Option<ProviderSpec>,
    pub samples: u32,
    pub require: u32,
    pub concurrency: u32,
    pub max_cost: Option<Usd>,
    pub cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuiteFile {
    name: String,
    description: Option<String>,
    prompt: PromptField,
    provider: Option<ProviderField>,
    samples: Option<u32>,
    require: Option<u32>,
    concurrency: Option<u32>,
    max_cost_usd: Option<f64>,
    #[serde(default)]
    assert: Vec<AssertionSpec>,
    #[serde(default)]
    cases: Vec<CaseFile>,
    cases_file: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum PromptField {
    Text(String),
    Inline { inline: String },
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum ProviderField {
    Id(String),
    Full(ProviderTable),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderTable {
    id: String,
    base_url: Option<String>,
    api_key_env: Option<String>,
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    stream: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    id: CaseId,
    description: Option<String>,
    #[serde(default)]
    vars: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    assert: Vec<AssertionSpec>,
}

/// Case ids are text; numbers are accepted (`id: 12`) and read as text.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum CaseId {
    Text(String),
    Number(i64),
}

impl CaseId {
    fn into_string(self) -> String {
        match self {
            CaseId::Text(s) => s,
            CaseId::Number(n) => n.to_string(),
        }
    }
}

/// Default number of samples per case when the suite says nothing (one sample, the classic eval).
const DEFAULT_SAMPLES: u32 = 1;
const DEFAULT_CONCURRENCY: u32 = 8;

/// Loads and validates a suite file; `shown_as` is how the path appears in messages.
pub fn load(path: &Path, shown_as: &str) -> Result<Suite, InputError> {
    let text = read_text_file(path, shown_as)?;
    parse(&text, shown_as, path.parent().unwrap_or(Path::new(".")))
}

/// Parses suite text; `dir` is the suite file's directory, against which relative paths resolve.
pub fn parse(text: &str, shown_as: &str, dir: &Path) -> Result<Suite, InputError> {
    if text.trim().is_empty() {
        return Err(InputError::new(shown_as, "the suite file is empty")
            .with_hint("a suite needs at least `name`, `prompt` and `cases` (see docs/evals.md)"));
    }
    let file: SuiteFile = crate::yaml::from_str(text).map_err(|e| explain_yaml_error(shown_as, e))?;
    let samples = file.samples.unwrap_or(DEFAULT_SAMPLES);
    let require = file.require.unwrap_or(samples);
    check_n_of_k(samples, require, text, shown_as)?;
    let concurrency = file.concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 {
        return Err(at_key(InputError::new(shown_as, "`concurrency` must be at least 1"), text, "concurrency"));
    }
    let max_cost = match file.max_cost_usd {
        Some(v) if !v.is_finite() || v <= 0.0 => {
            return Err(at_key(
                InputError::new(shown_as, "`max_cost_usd` must be a positive amount"),
                text,
                "max_cost_usd",
            ));
        }
        Some(v) => Some(Usd::parse_decimal(&v.to_string(), 0).map_err(|e| InputError::new(shown_as, e.to_string()))?),
        None => None,
    };
    let mut raw_cases: Vec<(CaseFile, String)> = file.cases.into_iter().map(|c| (c, String::new())).collect::<Vec<_>>();
    // Cases appear in file order, so each search starts after the previous case: duplicates point at
    // their own line.
    let mut after = 0;
    for (case, origin) in raw_cases.iter_mut() {
        let id = case_id_text(&case.id);
        let line = find_case_line(text, &id, after).unwrap_or(1);
        after = line;
        *origin = format!("{shown_as}:{line}");
    }
    if let Some(cases_file) = &file.cases_file {
        raw_cases.extend(load_cases_file(&dir.join(cases_file), &cases_path_shown(shown_as, cases_file))?);
    }
    if raw_cases.is_empty() {
        return Err(InputError::new(shown_as, "the suite has no cases")
            .with_hint("add `cases:` to the suite or point `cases_file:` at a JSONL or CSV file"));
    }
    let cases = build_cases(raw_cases, &file.assert, shown_as)?;
    Ok(Suite {
        name: file.name,
        description: file.description,
        path: shown_as.to_string(),
        prompt: prompt_spec(file.prompt),
        provider: file.provider.map(provider_spec),
        samples,
        require,
        concurrency,
        max_cost,
        cases,
    })
}

fn case_id_text(id: &CaseId) -> String {
    match id {
        CaseId::Text(s) => s.clone(),
        CaseId::Number(n) => n.to_string(),
    }
}

fn check_n_of_k(samples: u32, require: u32, text: &str, shown_as: &str) -> Result<(), InputError> {
    if samples == 0 {
        return Err(at_key(InputError::new(shown_as, "`samples` must be at least 1"), text, "samples")
            .with_hint("samples is K, the number of times each case runs"));
    }
    if require == 0 {
        return Err(at_key(InputError::new(shown_as, "`require` must be at least 1"), text, "require")
            .with_hint("require is N: a case passes when at least N of its K samples pass"));
    }
    if require > samples {
        return Err(at_key(
            InputError::new(shown_as, format!("`require: {require}` is more than `samples: {samples}`")),
            text,
            "require",
        )
        .with_hint("a case passes when at least N (require) of its K (samples) runs pass, so N ≤ K"));
    }
    Ok(())
}

fn build_cases(
    raw: Vec<(CaseFile, String)>,
    suite_asserts: &[AssertionSpec],
    shown_as: &str,
) -> Result<Vec<Case>, InputError> {
    let mut seen = HashSet::new();
    let mut cases = Vec::with_capacity(raw.len());
    for (case, origin) in raw {
        let id = case.id.into_string();
        let locate = |message: String| origin_error(&origin, shown_as, message);
        if id.trim().is_empty() {
            return Err(locate("a case has an empty `id`".into()));
        }
        if !seen.insert(id.clone()) {
            return Err(locate(format!("duplicate case id `{id}`")).with_hint("case ids must be unique within a suite"));
        }
        let specs: Vec<AssertionSpec> = suite_asserts.iter().cloned().chain(case.assert).collect();
        if specs.is_empty() {
            return Err(locate(format!("case `{id}` has no assertions, so it could never fail"))
                .with_hint("add `assert:` to the case, or suite-wide `assert:` at the top level"));
        }
        let assertions = specs
            .iter()
            .map(|s| s.compile().map_err(|e| locate(format!("case `{id}`: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        cases.push(Case {
            id,
            description: case.description,
            vars: case.vars,
            tags: case.tags,
            assertions,
            assertion_specs: specs,
            origin,
        });
    }
    Ok(cases)
}

/// `evals/support.yaml:14` → an error at that file and line.
fn origin_error(origin: &str, fallback: &str, message: String) -> InputError {
    match origin.rsplit_once(':').and_then(|(p, l)| Some((p, l.parse::<usize>().ok()?))) {
        Some((path, line)) => InputError::new(path, message).at_line(line),
        None => InputError::new(fallback, message),
    }
}

fn prompt_spec(field: PromptField) -> PromptSpec {
    match field {
        PromptField::Inline { inline } => PromptSpec::Inline(inline),
        PromptField::Text(text) if text.ends_with(".prompt") || text.contains('/') => PromptSpec::Path(text),
        PromptField::Text(text) => match text.split_once('@') {
            Some((name, reference)) => PromptSpec::Ref { name: name.into(), reference: Some(reference.into()) },
            None => PromptSpec::Ref { name: text, reference: None },
        },
    }
}

fn provider_spec(field: ProviderField) -> ProviderSpec {
    match field {
        ProviderField::Id(id) => {
            ProviderSpec { id, base_url: None, api_key_env: None, timeout_ms: None, max_attempts: None, stream: None }
        }
        ProviderField::Full(t) => ProviderSpec {
            id: t.id,
            base_url: t.base_url,
            api_key_env: t.api_key_env,
            timeout_ms: t.timeout_ms,
            max_attempts: t.max_attempts,
            stream: t.stream,
        },
    }
}

fn cases_path_shown(suite_shown: &str, cases_file: &str) -> String {
    match suite_shown.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{cases_file}"),
        None => cases_file.to_string(),
    }
}

/// serde's messages for untagged and tagged enums are terse; say what is valid.
fn explain_yaml_error(shown_as: &str, e: crate::yaml::YamlError) -> InputError {
    let message = e.message.clone();
    let mut error = InputError::from_yaml(shown_as, e, 1);
    if let Some(start) = message.find("unknown variant `")
        && let Some((variant, _)) = message[start + "unknown variant `".len()..].split_once('`')
    {
        let path = &message[..start];
        error.message = format!("{path}unknown assertion type `{variant}` (valid: {})", TYPES.join(", "));
        if let Some(near) = crate::suggest::nearest(variant, TYPES.iter().copied()) {
            error.hint = Some(format!("did you mean `{near}`?"));
        }
    }
    error
}

fn at_key(error: InputError, text: &str, key: &str) -> InputError {
    match find_key(text, key) {
        Some((line, column)) => error.at(line, column),
        None => error,
    }
}

fn find_key(text: &str, key: &str) -> Option<(usize, usize)> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with(':')
        {
            return Some(line_col(text, offset + (line.len() - trimmed.len())));
        }
        offset += line.len();
    }
    None
}

/// 1-based line of `- id: X` (or `id: X`) for a case, after line `after`, to point messages at it.
fn find_case_line(text: &str, id: &str, after: usize) -> Option<usize> {
    text.lines()
        .enumerate()
        .skip(after)
        .find(|(_, line)| {
            let t = line.trim_start().trim_start_matches("- ").trim_start();
            t.strip_prefix("id:").is_some_and(|v| v.trim().trim_matches(['"', '\'']) == id)
        })
        .map(|(i, _)| i + 1)
}

fn load_cases_file(path: &Path, shown_as: &str) -> Result<Vec<(CaseFile, String)>, InputError> {
    let text = read_text_file(path, shown_as).map_err(|e| e.with_hint("`cases_file` is relative to the suite file"))?;
    if shown_as.ends_with(".csv") { parse_cases_csv(&text, shown_as) } else { parse_cases_jsonl(&text, shown_as) }
}

fn parse_cases_jsonl(text: &str, shown_as: &str) -> Result<Vec<(CaseFile, String)>, InputError> {
    let mut cases = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let case: CaseFile = serde_json::from_str(line).map_err(|e| {
            InputError::new(shown_as, crate::suggest::explain_unknown_field(&strip_serde_position(&e.to_string())))
                .at(index + 1, e.column().max(1))
        })?;
        cases.push((case, format!("{shown_as}:{}", index + 1)));
    }
    Ok(cases)
}

fn strip_serde_position(message: &str) -> String {
    match message.find(" at line ") {
        Some(i) => message[..i].to_string(),
        None => message.to_string(),
    }
}

/// CSV cases: `id`, optional `description` and `tags` (separated by `;`), `assert:TYPE` columns (the cell
/// is the value; empty cells add nothing), and every other column is a variable.
fn parse_cases_csv(text: &str, shown_as: &str) -> Result<Vec<(CaseFile, String)>, InputError> {
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(text.as_bytes());
    let headers = reader.headers().map_err(|e| InputError::new(shown_as, e.to_string()).at_line(1))?.clone();
    if !headers.iter().any(|h| h == "id") {
        return Err(InputError::new(shown_as, "the CSV header has no `id` column")
            .at(1, 1)
            .with_hint("columns: id, description, tags, assert:TYPE…, and one column per variable"));
    }
    for header in headers.iter() {
        if let Some(kind) = header.strip_prefix("assert:")
            && !TYPES.contains(&kind)
        {
            return Err(InputError::new(
                shown_as,
                format!("unknown assertion type `{kind}` in column `{header}` (valid: {})", TYPES.join(", ")),
            )
            .at_line(1));
        }
    }
    let mut cases = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line() as usize);
            InputError::new(shown_as, e.to_string()).at_line(line)
        })?;
        let line = record.position().map_or(0, |p| p.line() as usize);
        let case = csv_case(&headers, &record).map_err(|m| InputError::new(shown_as, m).at_line(line))?;
        cases.push((case, format!("{shown_as}:{line}")));
    }
    Ok(cases)
}

fn csv_case(headers: &csv::StringRecord, record: &csv::StringRecord) -> Result<CaseFile, String> {
    let mut case = CaseFile {
        id: CaseId::Text(String::new()),
        description: None,
        vars: serde_json::Map::new(),
        tags: Vec::new(),
        assert: Vec::new(),
    };
    for (header, cell) in headers.iter().zip(record.iter()) {
        match header {
            "id" => case.id = CaseId::Text(cell.to_string()),
            "description" => case.description = Some(cell.to_string()).filter(|d| !d.is_empty()),
            "tags" => {
                case.tags = cell.split(';').map(str::trim).filter(|t| !t.is_empty()).map(str::to_string).collect()
            }
            _ if header.starts_with("assert:") => {
                if !cell.is_empty() {
                    case.assert.push(csv_assertion(&header["assert:".len()..], cell)?);
                }
            }
            _ => {
                case.vars.insert(header.to_string(), serde_json::Value::String(cell.to_string()));
            }
        }
    }
    Ok(case)
}

fn csv_assertion(kind: &str, cell: &str) -> Result<AssertionSpec, String> {
    let value = match kind {
        "json-schema" => serde_json::from_str(cell).map_err(|e| format!("assert:json-schema is not JSON: {e}"))?,
        "max-output-tokens" | "latency-ms" => {
            let n: u64 = cell.parse().map_err(|_| format!("assert:{kind} needs a whole number, not `{cell}`"))?;
            serde_json::json!(n)
        }
        "cost-usd" => {
            let n: f64 = cell.parse().map_err(|_| format!("assert:{kind} needs a number, not `{cell}`"))?;
            serde_json::json!(n)
        }
        _ => serde_json::Value::String(cell.to_string()),
    };
    let mut object = serde_json::Map::new();
    object.insert("type".into(), kind.into());
    match kind {
        "is-json" => {}
        "llm-judge" => {
            object.insert("rubric".into(), value);
        }
        _ => {
            object.insert("value".into(), value);
        }
    }
    serde_json::from_value(serde_json::Value::Object(object)).map_err(|e| format!("assert:{kind}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUITE: &str = "name: support
prompt: support-reply@production
provider:
  id: sim:gpt-4o-mini
  base_url: http://127.0.0.1:9/v1
samples: 5
require: 4
concurrency: 8
max_cost_usd: 2.00
assert:
  - { type: not-contains, value: \"as an AI\" }
cases:
  - id: refund-request
    vars: { message: \"I want my money back\" }
    tags: [critical]
    assert:
      - { type: contains, value: refund }
  - id: shipping-canada
    vars: { message: \"Do you ship to Canada?\" }
";

    fn parse_text(text: &str) -> Result<Suite, InputError> {
        parse(text, "evals/support.yaml", Path::new("."))
    }

    #[test]
    fn parses_a_suite() {
        let s = parse_text(SUITE).unwrap();
        assert_eq!(s.name, "support");
        assert_eq!(s.prompt, PromptSpec::Ref { name: "support-reply".into(), reference: Some("production".into()) });
        assert_eq!((s.samples, s.require, s.concurrency), (5, 4, 8));
        assert_eq!(s.max_cost, Some(Usd::from_micros(2_000_000)));
        assert_eq!(s.cases.len(), 2);
        assert_eq!(s.cases[0].assertions.len(), 2, "suite-wide assertions come first");
        assert_eq!(s.cases[1].origin, "evals/support.yaml:18");
    }

    #[test]
    fn rejects_bad_n_of_k() {
        let e = parse_text(&SUITE.replace("require: 4", "require: 6")).unwrap_err();
        assert_eq!(e.line, Some(7));
        assert!(e.message.contains("more than `samples: 5`"));
        let e = parse_text(&SUITE.replace("samples: 5", "samples: 0")).unwrap_err();
        assert!(e.message.contains("at least 1"));
    }

    #[test]
    fn rejects_unknown_keys_duplicates_and_unknown_assertions() {
        let e = parse_text(&SUITE.replace("concurrency: 8", "concurency: 8")).unwrap_err();
        assert!(e.message.contains("did you mean `concurrency`"), "{}", e.message);
        assert_eq!(e.line, Some(8));
        let e = parse_text(&SUITE.replace("id: shipping-canada", "id: refund-request")).unwrap_err();
        assert!(e.message.contains("duplicate case id"), "{}", e.message);
        assert_eq!(e.line, Some(18));
        let e = parse_text(&SUITE.replace("type: contains", "type: contain")).unwrap_err();
        assert!(e.message.starts_with("cases[0].assert[0].type: unknown assertion type `contain`"), "{}", e.message);
        assert_eq!(e.hint.as_deref(), Some("did you mean `contains`?"));
    }

    #[test]
    fn a_case_without_assertions_is_rejected() {
        let text = SUITE.replace("assert:\n  - { type: not-contains, value: \"as an AI\" }\n", "");
        let e = parse_text(&text).unwrap_err();
        assert!(e.message.contains("`shipping-canada` has no assertions"), "{}", e.message);
    }

    #[test]
    fn cases_files_in_jsonl_and_csv() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("cases.jsonl"),
            "{\"id\":\"a\",\"vars\":{\"message\":\"hi\"},\"assert\":[{\"type\":\"contains\",\"value\":\"hello\"}]}\n\n{\"id\":\"b\",\"vars\":{\"message\":\"yo\"}}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("cases.csv"),
            "id,message,tags,assert:contains,assert:max-output-tokens\nc,\"Where is my order, please?\",critical;shipping,order,200\n",
        )
        .unwrap();
        let base = "name: s\nprompt: p\nassert: [{type: is-json}]\ncases_file: CASES\n";
        let jsonl = parse(&base.replace("CASES", "cases.jsonl"), "s.yaml", dir.path()).unwrap();
        assert_eq!(jsonl.cases.len(), 2);
        assert_eq!(jsonl.cases[1].origin, "cases.jsonl:3");
        let csv = parse(&base.replace("CASES", "cases.csv"), "s.yaml", dir.path()).unwrap();
        assert_eq!(csv.cases[0].vars["message"], "Where is my order, please?");
        assert_eq!(csv.cases[0].tags, ["critical", "shipping"]);
        assert_eq!(csv.cases[0].assertions.len(), 3);
    }

    #[test]
    fn a_bad_line_in_a_cases_file_is_located() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cases.jsonl"), "{\"id\":\"a\"}\n{\"id\": \"b\", \"varz\": {}}\n").unwrap();
        let text = "name: s\nprompt: p\nassert: [{type: is-json}]\ncases_file: cases.jsonl\n";
        let e = parse(text, "evals/s.yaml", dir.path()).unwrap_err();
        assert_eq!(e.path, "evals/cases.jsonl");
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("did you mean `vars`"), "{}", e.message);
    }
}
