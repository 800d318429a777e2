//! Assertions on a sample's output: parsed from suites, compiled once, checked per sample.
//!
//! Every check is deterministic except `llm-judge`, whose verdict comes from a provider call the runner
//! makes (and records and costs like any other request); this module builds that call's messages and
//! reads its reply.

use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::money::Usd;
use crate::trace::model::Message;

/// The assertion types a suite may use, for "did you mean" and the error listing valid types.
pub const TYPES: &[&str] = &[
    "equals",
    "contains",
    "icontains",
    "not-contains",
    "starts-with",
    "regex",
    "is-json",
    "json-schema",
    "max-output-tokens",
    "latency-ms",
    "cost-usd",
    "llm-judge",
];

/// An assertion as written in a suite.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum AssertionSpec {
    Equals {
        value: String,
    },
    Contains {
        value: String,
    },
    Icontains {
        value: String,
    },
    NotContains {
        value: String,
    },
    StartsWith {
        value: String,
    },
    Regex {
        value: String,
    },
    IsJson {},
    JsonSchema {
        value: serde_json::Value,
    },
    MaxOutputTokens {
        value: u64,
    },
    LatencyMs {
        value: u64,
    },
    /// The sample's cost in USD, all attempts included.
    CostUsd {
        value: f64,
    },
    LlmJudge {
        rubric: String,
        provider: Option<String>,
    },
}

/// What a sample produced, as assertions see it.
#[derive(Debug, Clone, Default)]
pub struct Observation<'a> {
    pub output: &'a str,
    pub output_tokens: Option<u64>,
    pub latency_ms: Option<u64>,
    /// None when the model has no price: a `cost-usd` assertion then fails and says why.
    pub cost: Option<Usd>,
}

/// The result of one assertion on one sample.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssertionResult {
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: bool,
    /// Why it failed, or for a judge, its reason. Empty when a plain check passed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// An assertion ready to run: patterns and schemas compiled.
#[derive(Debug, Clone)]
pub enum Assertion {
    Equals(String),
    Contains(String),
    Icontains(String),
    NotContains(String),
    StartsWith(String),
    Regex(Regex),
    IsJson,
    JsonSchema(std::sync::Arc<jsonschema::Validator>),
    MaxOutputTokens(u64),
    LatencyMs(u64),
    CostUsd(Usd),
    LlmJudge { rubric: String, provider: Option<String> },
}

impl AssertionSpec {
    /// Compiles patterns and schemas; an error says what is wrong with the value.
    pub fn compile(&self) -> Result<Assertion, String> {
        Ok(match self {
            AssertionSpec::Equals { value } => Assertion::Equals(value.clone()),
            AssertionSpec::Contains { value } => Assertion::Contains(value.clone()),
            AssertionSpec::Icontains { value } => Assertion::Icontains(value.clone()),
            AssertionSpec::NotContains { value } => Assertion::NotContains(value.clone()),
            AssertionSpec::StartsWith { value } => Assertion::StartsWith(value.clone()),
            AssertionSpec::Regex { value } => {
                Assertion::Regex(Regex::new(value).map_err(|e| format!("invalid regex `{value}`: {e}"))?)
            }
            AssertionSpec::IsJson {} => Assertion::IsJson,
            AssertionSpec::JsonSchema { value } => Assertion::JsonSchema(std::sync::Arc::new(
                jsonschema::validator_for(value).map_err(|e| format!("invalid JSON Schema: {e}"))?,
            )),
            AssertionSpec::MaxOutputTokens { value } => Assertion::MaxOutputTokens(*value),
            AssertionSpec::LatencyMs { value } => Assertion::LatencyMs(*value),
            AssertionSpec::CostUsd { value } => {
                if !value.is_finite() || *value < 0.0 {
                    return Err(format!("cost-usd must be a non-negative amount, not {value}"));
                }
                Assertion::CostUsd(Usd::parse_decimal(&value.to_string(), 0).map_err(|e| format!("cost-usd: {e}"))?)
            }
            AssertionSpec::LlmJudge { rubric, provider } => {
                if rubric.trim().is_empty() {
                    return Err("llm-judge needs a non-empty `rubric`".into());
                }
                Assertion::LlmJudge { rubric: rubric.clone(), provider: provider.clone() }
            }
        })
    }
}

impl Assertion {
    pub fn kind(&self) -> &'static str {
        match self {
            Assertion::Equals(_) => "equals",
            Assertion::Contains(_) => "contains",
            Assertion::Icontains(_) => "icontains",
            Assertion::NotContains(_) => "not-contains",
            Assertion::StartsWith(_) => "starts-with",
            Assertion::Regex(_) => "regex",
            Assertion::IsJson => "is-json",
            Assertion::JsonSchema(_) => "json-schema",
            Assertion::MaxOutputTokens(_) => "max-output-tokens",
            Assertion::LatencyMs(_) => "latency-ms",
            Assertion::CostUsd(_) => "cost-usd",
            Assertion::LlmJudge { .. } => "llm-judge",
        }
    }

    pub fn needs_judge(&self) -> bool {
        matches!(self, Assertion::LlmJudge { .. })
    }

    /// Checks a deterministic assertion. Returns None for `llm-judge`, which needs a provider call.
    pub fn check(&self, obs: &Observation<'_>) -> Option<AssertionResult> {
        let (passed, detail) = match self {
            Assertion::Equals(v) => (obs.output.trim() == v.trim(), expected("equal to", v)),
            Assertion::Contains(v) => (obs.output.contains(v.as_str()), expected("containing", v)),
            Assertion::Icontains(v) => {
                (obs.output.to_lowercase().contains(&v.to_lowercase()), expected("containing (any case)", v))
            }
            Assertion::NotContains(v) => (!obs.output.contains(v.as_str()), format!("output contains {v:?}")),
            Assertion::StartsWith(v) => (obs.output.trim_start().starts_with(v.as_str()), expected("starting with", v)),
            Assertion::Regex(re) => (re.is_match(obs.output), format!("output does not match /{}/", re.as_str())),
            Assertion::IsJson => match parse_json_output(obs.output) {
                Ok(_) => (true, String::new()),
                Err(e) => (false, format!("output is not JSON: {e}")),
            },
            Assertion::JsonSchema(validator) => check_schema(validator, obs.output),
            Assertion::MaxOutputTokens(max) => match obs.output_tokens {
                Some(n) => (n <= *max, format!("{n} output tokens > {max}")),
                None => (false, "output token count unknown (the provider reported no usage)".into()),
            },
            Assertion::LatencyMs(max) => match obs.latency_ms {
                Some(ms) => (ms <= *max, format!("latency {ms} ms > {max} ms")),
                None => (false, "latency unknown".into()),
            },
            Assertion::CostUsd(max) => match obs.cost {
                Some(cost) => (cost <= *max, format!("cost {cost} > {max}")),
                None => (false, "cost unknown: the model has no price in the price book".into()),
            },
            Assertion::LlmJudge { .. } => return None,
        };
        Some(AssertionResult { kind: self.kind().into(), passed, detail: if passed { String::new() } else { detail } })
    }
}

fn expected(relation: &str, value: &str) -> String {
    format!("output is not {relation} {value:?}")
}

/// JSON output, tolerating a Markdown code fence around it (models add them even when told not to).
pub fn parse_json_output(output: &str) -> Result<serde_json::Value, serde_json::Error> {
    let trimmed = output.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.trim_end().strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced.trim())
}

fn check_schema(validator: &jsonschema::Validator, output: &str) -> (bool, String) {
    let value = match parse_json_output(output) {
        Ok(v) => v,
        Err(e) => return (false, format!("output is not JSON: {e}")),
    };
    let errors: Vec<String> = validator.iter_errors(&value).take(3).map(|e| e.to_string()).collect();
    (errors.is_empty(), errors.join("; "))
}

/// The messages of a judge call: the rubric, the output under test, and the reply format.
pub fn judge_messages(rubric: &str, input: &[Message], output: &str) -> Vec<Message> {
    let conversation: String =
        input.iter().filter(|m| m.role != "system").map(|m| format!("[{}]\n{}\n", m.role, m.content)).collect();
    let system = "You grade the output of an AI assistant against a rubric. Be strict: pass only if the \
        rubric is fully met. Answer with a JSON object only: {\"pass\": true|false, \"reason\": \"one sentence\"}.";
    let user = format!("Rubric:\n{rubric}\n\nConversation:\n{conversation}\nOutput to grade:\n{output}");
    vec![Message { role: "system".into(), content: system.into() }, Message { role: "user".into(), content: user }]
}

/// Reads a judge's reply: `{"pass": bool, "reason": "…"}`. A reply that is not in that form is an error,
/// never a silent pass or fail.
pub fn parse_judge_reply(reply: &str) -> Result<AssertionResult, String> {
    let value = parse_json_output(reply).map_err(|_| format!("judge reply is not JSON: {:?}", truncate(reply, 120)))?;
    let passed = value
        .get("pass")
        .and_then(serde_json::Value::as_bool)
        .ok_or_else(|| format!("judge reply has no boolean `pass`: {}", truncate(reply, 120)))?;
    let reason = value.get("reason").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    Ok(AssertionResult { kind: "llm-judge".into(), passed, detail: reason })
}

fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(output: &str) -> Observation<'_> {
        Observation { output, output_tokens: Some(40), latency_ms: Some(900), cost: Some(Usd::from_micros(120)) }
    }

    fn check(spec: AssertionSpec, output: &str) -> AssertionResult {
        spec.compile().unwrap().check(&obs(output)).unwrap()
    }

    #[test]
    fn text_assertions() {
        let v = |s: &str| s.to_string();
        assert!(check(AssertionSpec::Contains { value: v("refund") }, "We will refund you").passed);
        assert!(!check(AssertionSpec::Contains { value: v("Refund") }, "We will refund you").passed);
        assert!(check(AssertionSpec::Icontains { value: v("REFUND") }, "We will refund you").passed);
        assert!(!check(AssertionSpec::NotContains { value: v("as an AI") }, "Well, as an AI…").passed);
        assert!(check(AssertionSpec::StartsWith { value: v("Hi") }, "  Hi there").passed);
        assert!(check(AssertionSpec::Equals { value: v("billing") }, "billing\n").passed);
        assert!(check(AssertionSpec::Regex { value: v(r"(?i)order #\d+") }, "Your Order #4411").passed);
        let failed = check(AssertionSpec::Contains { value: v("refund") }, "no");
        assert_eq!(failed.detail, "output is not containing \"refund\"");
    }

    #[test]
    fn json_assertions_accept_fenced_output() {
        assert!(check(AssertionSpec::IsJson {}, "```json\n{\"queue\":\"billing\"}\n```").passed);
        assert!(!check(AssertionSpec::IsJson {}, "queue: billing").passed);
        let schema = serde_json::json!({"type": "object", "required": ["intent"]});
        assert!(check(AssertionSpec::JsonSchema { value: schema.clone() }, "{\"intent\": \"refund\"}").passed);
        let r = check(AssertionSpec::JsonSchema { value: schema }, "{\"other\": 1}");
        assert!(!r.passed);
        assert!(r.detail.contains("intent"), "{}", r.detail);
    }

    #[test]
    fn measured_assertions_fail_honestly_when_the_measure_is_missing() {
        let a = AssertionSpec::CostUsd { value: 0.01 }.compile().unwrap();
        let r = a.check(&Observation { output: "x", cost: None, ..Default::default() }).unwrap();
        assert!(!r.passed);
        assert!(r.detail.contains("no price"));
        let a = AssertionSpec::MaxOutputTokens { value: 10 }.compile().unwrap();
        assert!(!a.check(&obs("x")).unwrap().passed);
        let a = AssertionSpec::LatencyMs { value: 1000 }.compile().unwrap();
        assert!(a.check(&obs("x")).unwrap().passed);
    }

    #[test]
    fn bad_values_are_reported_at_compile_time() {
        assert!(AssertionSpec::Regex { value: "(".into() }.compile().unwrap_err().contains("invalid regex"));
        let bad_schema = serde_json::json!({"type": 12});
        assert!(AssertionSpec::JsonSchema { value: bad_schema }.compile().is_err());
        assert!(AssertionSpec::CostUsd { value: -1.0 }.compile().is_err());
    }

    #[test]
    fn judge_replies_must_be_well_formed() {
        let r = parse_judge_reply("{\"pass\": true, \"reason\": \"offers a refund path\"}").unwrap();
        assert!(r.passed);
        assert_eq!(r.detail, "offers a refund path");
        assert!(parse_judge_reply("Yes, it passes.").is_err());
        assert!(parse_judge_reply("{\"verdict\": \"pass\"}").is_err());
    }

    #[test]
    fn every_type_name_parses() {
        for t in TYPES {
            let yaml = match *t {
                "is-json" => format!("type: {t}"),
                "json-schema" => format!("type: {t}\nvalue: {{type: object}}"),
                "max-output-tokens" | "latency-ms" => format!("type: {t}\nvalue: 10"),
                "cost-usd" => format!("type: {t}\nvalue: 0.5"),
                "llm-judge" => format!("type: {t}\nrubric: polite"),
                _ => format!("type: {t}\nvalue: x"),
            };
            let spec: AssertionSpec = crate::yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{t}: {e}"));
            assert_eq!(spec.compile().unwrap().kind(), *t);
        }
    }
}
