//! A run's definition: the suite as run, with every case's request rendered. It is stored with the run
//! (`eval_run.suite_json`), so that `eval resume` and `eval regrade` work from exactly what was run, even
//! after the suite file or the prompt changed.

use std::collections::{BTreeSet, HashSet};

use serde::{Deserialize, Serialize};

use super::assert::{Assertion, AssertionSpec};
use super::suite::{Case, Suite};
use crate::diag::InputError;
use crate::prompt::Prompt;
use crate::provider::ChatRequest;

/// The prompt a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PromptInfo {
    pub name: String,
    pub version: String,
}

/// How the run reaches its provider. The API key is never here: only the variable's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderSettings {
    pub id: String,
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// Stream replies (default): TTFT and stream checkpoints are recorded.
    #[serde(default = "yes")]
    pub stream: bool,
}

fn yes() -> bool {
    true
}

/// One case, ready to run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseDefinition {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Where the case is defined (`evals/support.yaml:14`).
    pub origin: String,
    pub vars: serde_json::Map<String, serde_json::Value>,
    pub assert: Vec<AssertionSpec>,
    /// The rendered request every sample of this case sends.
    pub request: ChatRequest,
}

/// Everything a run needs, stored with it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunDefinition {
    pub suite: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub suite_path: String,
    pub prompt: PromptInfo,
    pub provider: ProviderSettings,
    pub samples: u32,
    pub require: u32,
    pub concurrency: u32,
    pub cases: Vec<CaseDefinition>,
}

impl RunDefinition {
    pub fn samples_total(&self) -> u64 {
        self.cases.len() as u64 * u64::from(self.samples)
    }

    /// The providers the run's `llm-judge` assertions name (their own, or the run's provider).
    pub fn judge_providers(&self) -> BTreeSet<String> {
        self.cases
            .iter()
            .flat_map(|c| c.assert.iter())
            .filter_map(|a| match a {
                AssertionSpec::LlmJudge { provider, .. } => {
                    Some(provider.clone().unwrap_or_else(|| self.provider.id.clone()))
                }
                _ => None,
            })
            .collect()
    }
}

impl CaseDefinition {
    /// Compiles the case's assertions (they were valid when the run started).
    pub fn compile(&self) -> Result<Vec<Assertion>, String> {
        self.assert.iter().map(|a| a.compile().map_err(|e| format!("case `{}`: {e}", self.id))).collect()
    }
}

/// Renders every case of `suite` with `prompt`. A case whose variables do not fit the template is an
/// error at the case's position, before any request is made.
pub fn prepare(
    suite: &Suite,
    prompt: &Prompt,
    provider: ProviderSettings,
    samples: u32,
    require: u32,
    concurrency: u32,
) -> Result<RunDefinition, InputError> {
    let params: serde_json::Map<String, serde_json::Value> =
        prompt.parsed.front.params.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let cases = suite
        .cases
        .iter()
        .map(|case| prepare_case(case, prompt, &params, provider.stream))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RunDefinition {
        suite: suite.name.clone(),
        description: suite.description.clone(),
        suite_path: suite.path.clone(),
        prompt: PromptInfo { name: prompt.name().to_string(), version: prompt.version_id.clone() },
        provider,
        samples,
        require,
        concurrency,
        cases,
    })
}

fn prepare_case(
    case: &Case,
    prompt: &Prompt,
    params: &serde_json::Map<String, serde_json::Value>,
    stream: bool,
) -> Result<CaseDefinition, InputError> {
    check_required_variables(case, prompt)?;
    let messages = prompt.render(&case.vars).map_err(|e| {
        let located = locate(&case.origin);
        let mut error = InputError::new(located.0, format!("case `{}`: {}", case.id, e))
            .with_hint("give the case every variable the prompt needs in `vars:`");
        error.line = located.1;
        error
    })?;
    Ok(CaseDefinition {
        id: case.id.clone(),
        description: case.description.clone(),
        tags: case.tags.clone(),
        origin: case.origin.clone(),
        vars: case.vars.clone(),
        assert: case.assertion_specs.clone(),
        request: ChatRequest { messages, params: params.clone(), stream },
    })
}

/// Template rendering accepts an undefined variable inside `{% if %}`; a required input (declared
/// without `?` in the prompt's `input:`) must still be given.
fn check_required_variables(case: &Case, prompt: &Prompt) -> Result<(), InputError> {
    let given: HashSet<&str> = case.vars.keys().map(String::as_str).collect();
    let missing: Vec<&str> = prompt
        .parsed
        .front
        .input
        .keys()
        .filter(|name| !prompt.parsed.is_optional(name) && !given.contains(name.as_str()))
        .map(String::as_str)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let (path, line) = locate(&case.origin);
    let mut error = InputError::new(
        path,
        format!(
            "case `{}` does not set the required variable(s) {} of prompt `{}`",
            case.id,
            missing.join(", "),
            prompt.name()
        ),
    )
    .with_hint("add them under the case's `vars:`, or mark them optional (`type?`) in the prompt's `input:`");
    error.line = line;
    Err(error)
}

fn locate(origin: &str) -> (String, Option<usize>) {
    match origin.rsplit_once(':').and_then(|(p, l)| Some((p, l.parse::<usize>().ok()?))) {
        Some((path, line)) => (path.to_string(), Some(line)),
        None => (origin.to_string(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prompt::PromptSource;

    fn prompt() -> Prompt {
        Prompt::from_source(PromptSource {
            path: "prompts/greet.prompt".into(),
            text: "---\nmodel: openai:gpt-4o-mini\nparams: { temperature: 0.2, max_tokens: 50 }\ninput:\n  name: string\n  tone: string?\n---\n::: system\nBe {{ tone | default(\"kind\") }}.\n::: user\nHello, I am {{ name }}.\n".into(),
            examples_path: None,
            examples_text: None,
        })
        .unwrap()
    }

    fn suite(cases: &str) -> Suite {
        let text = format!("name: greet\nprompt: greet\nassert: [{{type: contains, value: Hello}}]\ncases:\n{cases}");
        super::super::suite::parse(&text, "evals/greet.yaml", std::path::Path::new(".")).unwrap()
    }

    fn settings() -> ProviderSettings {
        ProviderSettings {
            id: "sim:gpt-4o-mini".into(),
            base_url: Some("http://127.0.0.1:9/v1".into()),
            api_key_env: None,
            timeout_ms: None,
            max_attempts: None,
            stream: true,
        }
    }

    #[test]
    fn renders_each_case_with_the_prompt_params() {
        let def = prepare(&suite("  - id: a\n    vars: { name: Ada }\n"), &prompt(), settings(), 5, 4, 8).unwrap();
        let case = &def.cases[0];
        assert_eq!(case.request.messages[1].content, "Hello, I am Ada.");
        assert_eq!(case.request.params["max_tokens"], 50);
        assert!(case.request.stream);
        assert_eq!(def.samples_total(), 5);
        let json = serde_json::to_string(&def).unwrap();
        assert_eq!(serde_json::from_str::<RunDefinition>(&json).unwrap(), def);
    }

    #[test]
    fn a_case_missing_a_required_variable_is_located() {
        let e = prepare(&suite("  - id: a\n    vars: { tone: warm }\n"), &prompt(), settings(), 1, 1, 1).unwrap_err();
        assert_eq!(e.path, "evals/greet.yaml");
        assert_eq!(e.line, Some(5));
        assert!(e.message.contains("required variable(s) name"), "{}", e.message);
    }
}
