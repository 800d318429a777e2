//! Scripted replies: rules that match the prompt and say what the simulated model answers.
//!
//! ```yaml
//! default: "Thanks for reaching out."      # when no rule matches
//! rules:                                   # first match wins
//!   - name: refund
//!     contains: "money back"               # substring of the last user message
//!     reply: "I can refund order #4411."
//!   - regex: "(?i)weather"
//!     in: prompt                           # last_user (default) | prompt (every message)
//!     replies:                             # a flaky case: probabilities sum to 1
//!       - { text: "It is sunny.", p: 0.7 }
//!       - { text: "I cannot know that.", p: 0.3 }
//! ```
//! The format is documented for users in `docs/simulator.md`.

use std::fmt;
use std::path::{Path, PathBuf};

use regex::Regex;
use serde::Deserialize;

use crate::yaml::{self, YamlError};

/// The reply used when a scenario has no `default`.
pub const DEFAULT_REPLY: &str = "This is a simulated reply.";

/// A compiled scenario. The default scenario answers everything with [`DEFAULT_REPLY`].
#[derive(Debug, Clone)]
pub struct Scenario {
    rules: Vec<Rule>,
    default: String,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario { rules: Vec::new(), default: DEFAULT_REPLY.to_string() }
    }
}

/// A scenario file that cannot be used, with the position of the problem where known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub path: Option<PathBuf>,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(path) => write!(f, "{}", path.display())?,
            None => f.write_str("scenario")?,
        }
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl Scenario {
    /// Parses scenario YAML; errors carry line and column.
    pub fn from_yaml(text: &str) -> Result<Self, ScenarioError> {
        let file: ScenarioFile = yaml::from_str(text).map_err(|e| positioned(None, e))?;
        Ok(Scenario { rules: file.rules, default: file.default.unwrap_or_else(|| DEFAULT_REPLY.to_string()) })
    }

    /// Reads and parses a scenario file; errors name the file.
    pub fn load(path: &Path) -> Result<Self, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
            path: Some(path.to_path_buf()),
            line: None,
            column: None,
            message: format!("cannot read the scenario file: {e}"),
        })?;
        Self::from_yaml(&text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// A scenario that always gives `reply`.
    pub fn constant(reply: impl Into<String>) -> Self {
        Scenario { rules: Vec::new(), default: reply.into() }
    }

    pub fn rule_count(&self) -> usize {
        self.rules.len()
    }

    /// Whether a rule looks at the whole prompt, so that callers build that text only when needed.
    pub(crate) fn needs_whole_prompt(&self) -> bool {
        self.rules.iter().any(|r| r.target == Target::Prompt)
    }

    /// The reply for a prompt. `draw` is a uniform number in [0, 1) that picks among weighted replies;
    /// `whole_prompt` is every message's text, given when [`Self::needs_whole_prompt`].
    pub(crate) fn reply(&self, last_user: &str, whole_prompt: Option<&str>, draw: f64) -> &str {
        self.rules
            .iter()
            .find(|rule| {
                let text = match rule.target {
                    Target::LastUser => last_user,
                    Target::Prompt => whole_prompt.unwrap_or(last_user),
                };
                rule.matches(text)
            })
            .map_or(self.default.as_str(), |rule| rule.replies.pick(draw))
    }
}

fn positioned(path: Option<&Path>, error: YamlError) -> ScenarioError {
    ScenarioError { path: path.map(Path::to_path_buf), line: error.line, column: error.column, message: error.message }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScenarioFile {
    #[serde(default)]
    default: Option<String>,
    #[serde(default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Target {
    #[default]
    LastUser,
    Prompt,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawRule")]
struct Rule {
    contains: Option<String>,
    regex: Option<Regex>,
    target: Target,
    replies: Replies,
}

impl Rule {
    /// Both conditions must hold when both are given.
    fn matches(&self, text: &str) -> bool {
        self.contains.as_ref().is_none_or(|c| text.contains(c.as_str()))
            && self.regex.as_ref().is_none_or(|r| r.is_match(text))
    }
}

#[derive(Debug, Clone)]
enum Replies {
    One(String),
    /// Cumulative probability and text, in file order.
    Weighted(Vec<(f64, String)>),
}

impl Replies {
    fn pick(&self, draw: f64) -> &str {
        match self {
            Replies::One(text) => text,
            Replies::Weighted(choices) => choices
                .iter()
                .find(|(cumulative, _)| draw < *cumulative)
                .or(choices.last())
                .map_or("", |(_, text)| text.as_str()),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    contains: Option<String>,
    #[serde(default)]
    regex: Option<String>,
    #[serde(default, rename = "in")]
    target: Target,
    #[serde(default)]
    reply: Option<String>,
    #[serde(default)]
    replies: Option<Vec<RawReply>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReply {
    text: String,
    p: f64,
}

/// Tolerance for probabilities written with a few decimals (0.33 + 0.33 + 0.34).
const PROBABILITY_SLACK: f64 = 1e-6;

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(raw: RawRule) -> Result<Self, Self::Error> {
        let label = raw.name.as_deref().map(|n| format!("rule `{n}`")).unwrap_or_else(|| "a rule".to_string());
        if raw.contains.is_none() && raw.regex.is_none() {
            return Err(format!("{label} needs `contains` or `regex` (use `default` for the fallback reply)"));
        }
        let regex = raw
            .regex
            .as_deref()
            .map(Regex::new)
            .transpose()
            .map_err(|e| format!("{label} has an invalid regex: {e}"))?;
        let replies = match (raw.reply, raw.replies) {
            (Some(text), None) => Replies::One(text),
            (None, Some(choices)) => weighted(&label, choices)?,
            _ => {
                return Err(format!("{label} needs exactly one of `reply` and `replies`"));
            }
        };
        Ok(Rule { contains: raw.contains, regex, target: raw.target, replies })
    }
}

fn weighted(label: &str, choices: Vec<RawReply>) -> Result<Replies, String> {
    if choices.is_empty() {
        return Err(format!("{label} has an empty `replies` list"));
    }
    if let Some(bad) = choices.iter().find(|c| !(0.0..=1.0).contains(&c.p)) {
        return Err(format!("{label}: probability {} of {:?} is not between 0 and 1", bad.p, bad.text));
    }
    let sum: f64 = choices.iter().map(|c| c.p).sum();
    if (sum - 1.0).abs() > PROBABILITY_SLACK {
        return Err(format!("{label}: the probabilities of `replies` sum to {sum}, not 1"));
    }
    let mut cumulative = 0.0;
    let choices = choices
        .into_iter()
        .map(|c| {
            cumulative += c.p;
            (cumulative, c.text)
        })
        .collect();
    Ok(Replies::Weighted(choices))
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
default: "Fallback."
rules:
  - name: refund
    contains: "money back"
    reply: "Refund for order #4411."
  - regex: "(?i)weather"
    in: prompt
    replies:
      - { text: "Sunny.", p: 0.7 }
      - { text: "No idea.", p: 0.3 }
"#;

    fn reply(scenario: &Scenario, last_user: &str, prompt: &str, draw: f64) -> String {
        scenario.reply(last_user, Some(prompt), draw).to_string()
    }

    #[test]
    fn first_matching_rule_wins_and_weighted_replies_follow_the_draw() {
        let scenario = Scenario::from_yaml(EXAMPLE).unwrap();
        assert_eq!(scenario.rule_count(), 2);
        assert_eq!(reply(&scenario, "I want my money back", "", 0.5), "Refund for order #4411.");
        assert_eq!(reply(&scenario, "hi", "system: WEATHER bot", 0.69), "Sunny.");
        assert_eq!(reply(&scenario, "hi", "system: WEATHER bot", 0.7), "No idea.");
        assert_eq!(reply(&scenario, "hi", "nothing", 0.1), "Fallback.");
    }

    #[test]
    fn unknown_keys_are_rejected_with_a_position() {
        let err = Scenario::from_yaml("rules:\n  - contains: x\n    replyy: y\n").unwrap_err();
        assert_eq!((err.line, err.column), (Some(3), Some(5)), "{err}");
        assert!(err.message.contains("`replyy`"), "{err}");
        assert!(err.message.contains("`reply`"), "{err}");
    }

    #[test]
    fn probabilities_must_sum_to_one() {
        let err = Scenario::from_yaml(
            "rules:\n  - name: flaky\n    contains: x\n    replies: [{text: a, p: 0.5}, {text: b, p: 0.2}]\n",
        )
        .unwrap_err();
        assert!(err.message.contains("rule `flaky`"), "{err}");
        assert!(err.message.contains("sum to 0.7"), "{err}");
        assert!(err.line.is_some(), "{err:?}");
    }

    #[test]
    fn rules_need_a_condition_and_a_valid_regex() {
        assert!(Scenario::from_yaml("rules:\n  - reply: x\n").is_err());
        let err = Scenario::from_yaml("rules:\n  - regex: '('\n    reply: x\n").unwrap_err();
        assert!(err.message.contains("invalid regex"), "{err}");
    }
}
