//! Secret rules: loaded from the YAML embedded in the binary (`secrets.yaml`), optionally extended by a
//! user file of the same shape; matched with a keyword prefilter (one aho-corasick automaton over all
//! rules' keywords) so that a text only meets the regexes whose keywords it contains.
//!
//! Word boundaries in rule patterns (`\b`, `\B`, `\b{start}`, …) are ASCII word boundaries: the
//! pattern is rewritten to `(?-u:\b)` before it is compiled. With Unicode boundaries the regex crate's
//! DFAs give up at the first non-ASCII byte and the search falls back to its PikeVM, which ran at a few
//! MB/s over examples files holding `€`, `£` or accented names (a 10 MB prompt repo took seconds). For
//! ASCII text the two are the same; next to a non-ASCII letter (`éAKIA…`) an ASCII boundary holds where
//! a Unicode one does not, so a secret glued to such a letter is found.

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder};
use regex::Regex;
use regex_syntax::ast::{self, Assertion, AssertionKind, Ast, Span};
use serde::Deserialize;

use super::error::ScanError;
use super::identity::{Redaction, preview};
use super::model::Severity;
use super::placeholder::{is_placeholder, shannon_entropy};

const BUILTIN_RULES: &str = include_str!("secrets.yaml");
const BUILTIN_PATH: &str = "<builtin>/secrets.yaml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    rules: Vec<RuleSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    id: String,
    description: String,
    pattern: String,
    #[serde(default)]
    keywords: Vec<String>,
    #[serde(default)]
    entropy: Option<f64>,
    severity: Severity,
    #[serde(default)]
    preview_prefix: usize,
    #[serde(default)]
    preview_label: Option<String>,
    #[serde(default)]
    fallback: bool,
    #[serde(default)]
    examples: RuleExamples,
}

/// Texts a rule must and must not match; checked by a test for every rule, built-in or user.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleExamples {
    #[serde(default)]
    pub positive: Vec<String>,
    #[serde(default)]
    pub negative: Vec<String>,
}

/// One compiled secret rule.
#[derive(Debug, Clone)]
pub struct SecretRule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    pub examples: RuleExamples,
    regex: Regex,
    /// Whether the pattern has a `secret` group; without one the match is the value and the capture
    /// engine is never needed.
    has_secret_group: bool,
    keywords: Vec<String>,
    entropy: Option<f64>,
    preview_label: Option<String>,
    preview_prefix: usize,
    fallback: bool,
}

/// A secret found in a text; `value` borrows the text and must not outlive the scan of it.
#[derive(Debug, Clone)]
pub struct SecretMatch<'t> {
    pub rule: usize,
    pub span: Range<usize>,
    pub value: &'t str,
}

/// All secret rules, with their keyword prefilter.
#[derive(Debug, Clone)]
pub struct SecretRules {
    rules: Vec<SecretRule>,
    prefilter: AhoCorasick,
    /// For each prefilter pattern, the rules that listed it.
    keyword_rules: Vec<Vec<usize>>,
    unconditional: Vec<usize>,
}

impl SecretRules {
    /// The rules embedded in promptctl.
    pub fn builtin() -> Result<SecretRules, ScanError> {
        SecretRules::from_specs(parse_rule_file(BUILTIN_RULES, BUILTIN_PATH)?, BUILTIN_PATH)
    }

    /// The built-in rules plus those of a user file; a user rule with a built-in id replaces it.
    pub fn with_user_file(text: &str, path: &str) -> Result<SecretRules, ScanError> {
        let mut specs = parse_rule_file(BUILTIN_RULES, BUILTIN_PATH)?;
        let user_specs = parse_rule_file(text, path)?;
        let user_ids: Vec<String> = user_specs.iter().map(|s| s.id.clone()).collect();
        for spec in user_specs {
            match specs.iter_mut().find(|s| s.id == spec.id) {
                Some(existing) => *existing = spec,
                None => specs.push(spec),
            }
        }
        let rules = SecretRules::from_specs(specs, path)?;
        rules.check_examples(&user_ids, path)?;
        Ok(rules)
    }

    /// Every listed rule must match its positive examples and none of its negative ones.
    pub fn check_examples(&self, ids: &[String], path: &str) -> Result<(), ScanError> {
        for (index, rule) in self.rules.iter().enumerate() {
            if !ids.contains(&rule.id) {
                continue;
            }
            let matches = |text: &str| self.find(text).iter().any(|m| m.rule == index);
            let failure = if let Some(n) = rule.examples.positive.iter().position(|t| !matches(t)) {
                Some(format!("does not match its positive example #{}", n + 1))
            } else {
                rule.examples
                    .negative
                    .iter()
                    .position(|t| matches(t))
                    .map(|n| format!("matches its negative example #{}", n + 1))
            };
            if let Some(message) = failure {
                return Err(ScanError::Rules {
                    path: path.to_string(),
                    line: None,
                    column: None,
                    message: format!("rule `{}` {message}", rule.id),
                });
            }
        }
        Ok(())
    }

    pub fn rules(&self) -> &[SecretRule] {
        &self.rules
    }

    /// The redacted preview of a value matched by `rule`.
    pub fn preview(&self, rule: usize, value: &str) -> String {
        let rule = &self.rules[rule];
        match &rule.preview_label {
            Some(label) => label.clone(),
            None => preview(value, Redaction::Secret { prefix: rule.preview_prefix }),
        }
    }

    fn from_specs(specs: Vec<RuleSpec>, path: &str) -> Result<SecretRules, ScanError> {
        let rules = specs.into_iter().map(|spec| compile_rule(spec, path)).collect::<Result<Vec<_>, _>>()?;
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut unconditional = Vec::new();
        for (i, rule) in rules.iter().enumerate() {
            if rule.keywords.is_empty() {
                unconditional.push(i);
            }
            for kw in &rule.keywords {
                match keywords.iter().position(|k| k == kw) {
                    Some(p) => keyword_rules[p].push(i),
                    None => {
                        keywords.push(kw.clone());
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let prefilter =
            AhoCorasickBuilder::new().ascii_case_insensitive(true).build(&keywords).map_err(|e| ScanError::Rules {
                path: path.to_string(),
                line: None,
                column: None,
                message: format!("keyword prefilter: {e}"),
            })?;
        Ok(SecretRules { rules, prefilter, keyword_rules, unconditional })
    }

    /// Secrets in `text`, in order of position; placeholders and low-entropy values are left out, and a
    /// fallback rule's match is dropped where a specific rule matched overlapping bytes.
    pub fn find<'t>(&self, text: &'t str) -> Vec<SecretMatch<'t>> {
        let mut matches = Vec::new();
        for rule in self.candidate_rules(text) {
            self.find_with_rule(rule, text, &mut matches);
        }
        drop_shadowed_fallbacks(&self.rules, &mut matches);
        matches.sort_by_key(|m| (m.span.start, m.rule));
        matches
    }

    fn candidate_rules(&self, text: &str) -> Vec<usize> {
        let mut wanted = vec![false; self.rules.len()];
        for &i in &self.unconditional {
            wanted[i] = true;
        }
        for m in self.prefilter.find_overlapping_iter(text) {
            for &i in &self.keyword_rules[m.pattern().as_usize()] {
                wanted[i] = true;
            }
        }
        (0..self.rules.len()).filter(|&i| wanted[i]).collect()
    }

    fn find_with_rule<'t>(&self, index: usize, text: &'t str, out: &mut Vec<SecretMatch<'t>>) {
        let rule = &self.rules[index];
        if rule.has_secret_group {
            // The regex crate finds the match with its DFAs first and runs the capture engine on the
            // matched bytes only.
            for caps in rule.regex.captures_iter(text) {
                if let Some(m) = caps.name("secret").or_else(|| caps.get(0)) {
                    push_if_secret(rule, index, m, out);
                }
            }
        } else {
            for m in rule.regex.find_iter(text) {
                push_if_secret(rule, index, m, out);
            }
        }
    }
}

/// Keeps a matched value unless it is a placeholder or has too little entropy for the rule.
fn push_if_secret<'t>(rule: &SecretRule, index: usize, m: regex::Match<'t>, out: &mut Vec<SecretMatch<'t>>) {
    let value = m.as_str();
    if is_placeholder(value) {
        return;
    }
    if rule.entropy.is_some_and(|min| shannon_entropy(value) < min) {
        return;
    }
    out.push(SecretMatch { rule: index, span: m.range(), value });
}

fn drop_shadowed_fallbacks(rules: &[SecretRule], matches: &mut Vec<SecretMatch<'_>>) {
    let specific: Vec<Range<usize>> =
        matches.iter().filter(|m| !rules[m.rule].fallback).map(|m| m.span.clone()).collect();
    matches
        .retain(|m| !rules[m.rule].fallback || !specific.iter().any(|s| s.start < m.span.end && m.span.start < s.end));
}

fn parse_rule_file(text: &str, path: &str) -> Result<Vec<RuleSpec>, ScanError> {
    crate::yaml::from_str::<RuleFile>(text).map(|f| f.rules).map_err(|e| ScanError::Rules {
        path: path.to_string(),
        line: e.line,
        column: e.column,
        message: e.message,
    })
}

fn compile_rule(spec: RuleSpec, path: &str) -> Result<SecretRule, ScanError> {
    let rule_error = |message: String| ScanError::Rules {
        path: path.to_string(),
        line: None,
        column: None,
        message: format!("rule `{}`: {message}", spec.id),
    };
    // A pattern the AST parser refuses is compiled as written, so that the error is the regex crate's.
    let pattern = ascii_word_boundaries(&spec.pattern).unwrap_or_else(|| spec.pattern.clone());
    let regex = Regex::new(&pattern).map_err(|e| rule_error(e.to_string()))?;
    let has_secret_group = regex.capture_names().any(|name| name == Some("secret"));
    if spec.keywords.iter().any(|k| k.is_empty()) {
        return Err(rule_error("empty keyword".to_string()));
    }
    Ok(SecretRule {
        id: spec.id,
        description: spec.description,
        severity: spec.severity,
        examples: spec.examples,
        regex,
        has_secret_group,
        keywords: spec.keywords.iter().map(|k| k.to_lowercase()).collect(),
        entropy: spec.entropy,
        preview_label: spec.preview_label,
        preview_prefix: spec.preview_prefix,
        fallback: spec.fallback,
    })
}

/// `pattern` with every word-boundary assertion made ASCII-only (`\b` → `(?-u:\b)`); `None` when it
/// does not parse. See the module documentation for why.
fn ascii_word_boundaries(pattern: &str) -> Option<String> {
    let parsed = ast::parse::Parser::new().parse(pattern).ok()?;
    let mut spans = ast::visit(&parsed, BoundarySpans::default()).ok()?;
    spans.sort_by_key(|s| s.start.offset);
    let mut out = String::with_capacity(pattern.len() + 6 * spans.len());
    let mut copied = 0;
    for span in spans {
        out.push_str(&pattern[copied..span.start.offset]);
        out.push_str("(?-u:");
        out.push_str(&pattern[span.start.offset..span.end.offset]);
        out.push(')');
        copied = span.end.offset;
    }
    out.push_str(&pattern[copied..]);
    Some(out)
}

/// Collects the spans of word-boundary assertions of a pattern's AST.
#[derive(Default)]
struct BoundarySpans(Vec<Span>);

impl ast::Visitor for BoundarySpans {
    type Output = Vec<Span>;
    type Err = std::convert::Infallible;

    fn finish(self) -> Result<Vec<Span>, Self::Err> {
        Ok(self.0)
    }

    fn visit_pre(&mut self, node: &Ast) -> Result<(), Self::Err> {
        if let Ast::Assertion(assertion) = node
            && is_word_boundary(assertion)
        {
            self.0.push(assertion.span);
        }
        Ok(())
    }
}

fn is_word_boundary(assertion: &Assertion) -> bool {
    !matches!(
        assertion.kind,
        AssertionKind::StartLine | AssertionKind::EndLine | AssertionKind::StartText | AssertionKind::EndText
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule_ids(rules: &SecretRules, text: &str) -> Vec<String> {
        rules.find(text).iter().map(|m| rules.rules()[m.rule].id.clone()).collect()
    }

    #[test]
    fn every_rule_matches_its_positive_examples_and_none_of_its_negatives() {
        let rules = SecretRules::builtin().unwrap();
        assert!(rules.rules().len() >= 12);
        for rule in rules.rules() {
            assert!(!rule.examples.positive.is_empty(), "{} has no positive example", rule.id);
            for text in &rule.examples.positive {
                let ids = rule_ids(&rules, text);
                assert!(ids.contains(&rule.id), "{} missed a positive example (got {ids:?})", rule.id);
            }
            for text in &rule.examples.negative {
                let ids = rule_ids(&rules, text);
                assert!(!ids.contains(&rule.id), "{} matched a negative example", rule.id);
            }
        }
    }

    #[test]
    fn specific_rules_shadow_the_generic_one() {
        let rules = SecretRules::builtin().unwrap();
        let ids = rule_ids(&rules, "api_key = sk_live_UDFsha4zGg53Mc7L5jkdFgi7");
        assert_eq!(ids, vec!["secret.stripe_live_key".to_string()]);
    }

    #[test]
    fn unknown_rule_fields_are_reported_with_position() {
        let user = "rules:\n  - id: x\n    description: d\n    pattern: 'abc'\n    severty: high\n";
        let err = SecretRules::with_user_file(user, "rules.yaml").unwrap_err();
        let ScanError::Rules { path, line, column, message } = err else {
            panic!("unexpected error");
        };
        assert_eq!(path, "rules.yaml");
        assert_eq!(line, Some(5));
        assert!(column.is_some());
        assert!(message.contains("severity"), "{message}");
    }

    #[test]
    fn user_rules_extend_and_replace() {
        let user = "rules:\n  - id: secret.acme_token\n    description: ACME token\n    pattern: 'acme_[a-z0-9]{20}'\n    keywords: [acme_]\n    severity: high\n";
        let rules = SecretRules::with_user_file(user, "rules.yaml").unwrap();
        let ids = rule_ids(&rules, "token acme_k3j4h5g6f7d8s9a0q1w2 here");
        assert_eq!(ids, vec!["secret.acme_token".to_string()]);
    }

    #[test]
    fn user_rules_must_pass_their_own_examples() {
        let user = "rules:\n  - id: secret.acme_token\n    description: d\n    pattern: 'acme_[a-z0-9]{20}'\n    severity: high\n    examples:\n      positive: ['acme_short']\n";
        let err = SecretRules::with_user_file(user, "r.yaml").unwrap_err();
        assert!(err.to_string().contains("positive example #1"), "{err}");
    }

    #[test]
    fn word_boundaries_become_ascii_and_nothing_else_changes() {
        assert_eq!(ascii_word_boundaries(r"\bab\B").as_deref(), Some(r"(?-u:\b)ab(?-u:\B)"));
        assert_eq!(ascii_word_boundaries(r"\b{start}x\>").as_deref(), Some(r"(?-u:\b{start})x(?-u:\>)"));
        // An escaped backslash followed by `b` is a literal, not an assertion; `^`/`$` stay as they are.
        assert_eq!(ascii_word_boundaries(r"^a\\b[\\b]$").as_deref(), Some(r"^a\\b[\\b]$"));
        assert_eq!(ascii_word_boundaries("(("), None);
    }

    #[test]
    fn a_secret_next_to_a_non_ascii_letter_is_found() {
        let rules = SecretRules::builtin().unwrap();
        assert_eq!(rule_ids(&rules, "clé=AKIA9MJFHHAGKY8D514I"), vec!["secret.aws_access_key_id".to_string()]);
        assert_eq!(rule_ids(&rules, "éAKIA9MJFHHAGKY8D514I"), vec!["secret.aws_access_key_id".to_string()]);
    }

    #[test]
    fn user_rules_get_ascii_word_boundaries_too() {
        let user = "rules:\n  - id: secret.acme_token\n    description: d\n    pattern: '\\bacme_[a-z0-9]{20}\\b'\n    severity: high\n";
        let rules = SecretRules::with_user_file(user, "r.yaml").unwrap();
        assert_eq!(rule_ids(&rules, "€acme_k3j4h5g6f7d8s9a0q1w2€"), vec!["secret.acme_token".to_string()]);
        assert!(rule_ids(&rules, "xacme_k3j4h5g6f7d8s9a0q1w2").is_empty());
    }

    #[test]
    fn bad_regex_names_the_rule() {
        let user = "rules:\n  - id: secret.bad\n    description: d\n    pattern: '(('\n    severity: high\n";
        let err = SecretRules::with_user_file(user, "r.yaml").unwrap_err();
        assert!(err.to_string().contains("secret.bad"), "{err}");
    }
}
