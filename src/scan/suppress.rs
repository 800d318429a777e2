//! Suppressions (by finding id, or by rule and path glob, with a reason, an owner and an optional
//! expiry) and baselines (a previous JSON report: only findings it does not have are kept).

use std::collections::HashSet;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use super::error::ScanError;
use super::model::{ScanReport, SuppressedFinding};

/// One suppression. It matches a finding by `id`, or by `rule` and/or `path` (globs: `*` within a path
/// segment, `**` across segments, `?` one character).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suppression {
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub rule: Option<String>,
    #[serde(default)]
    pub path: Option<String>,
    pub reason: String,
    pub owner: String,
    /// The suppression stops applying after this day.
    #[serde(default)]
    pub expires: Option<Date>,
}

impl Suppression {
    /// A suppression needs something to match and a reason and an owner.
    pub fn validate(&self, index: usize) -> Result<(), ScanError> {
        let error = |message: &str| ScanError::Suppression { index, message: message.to_string() };
        if self.id.is_none() && self.rule.is_none() && self.path.is_none() {
            return Err(error("needs an `id`, or a `rule` and/or `path` to match"));
        }
        if self.reason.trim().is_empty() {
            return Err(error("needs a `reason`"));
        }
        if self.owner.trim().is_empty() {
            return Err(error("needs an `owner`"));
        }
        Ok(())
    }

    pub fn is_expired(&self, today: Date) -> bool {
        self.expires.is_some_and(|e| today > e)
    }

    fn matches(&self, id: &str, rule: &str, path: &str) -> bool {
        if let Some(want) = &self.id {
            return want == id;
        }
        self.rule.as_deref().is_none_or(|g| glob_match(g, rule))
            && self.path.as_deref().is_none_or(|g| glob_match(g, path))
    }
}

/// What applying suppressions did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuppressionOutcome {
    /// Indices of suppressions that matched at least one finding.
    pub used: Vec<usize>,
    /// Indices of suppressions past their expiry (not applied).
    pub expired: Vec<usize>,
}

impl ScanReport {
    /// Moves the findings that an unexpired suppression matches to `suppressed`.
    pub fn apply_suppressions(
        &mut self,
        suppressions: &[Suppression],
        today: Date,
    ) -> Result<SuppressionOutcome, ScanError> {
        for (i, s) in suppressions.iter().enumerate() {
            s.validate(i)?;
        }
        let mut outcome = SuppressionOutcome {
            used: Vec::new(),
            expired: (0..suppressions.len()).filter(|&i| suppressions[i].is_expired(today)).collect(),
        };
        let mut kept = Vec::with_capacity(self.findings.len());
        for finding in std::mem::take(&mut self.findings) {
            let hit = suppressions
                .iter()
                .enumerate()
                .find(|(i, s)| !outcome.expired.contains(i) && s.matches(&finding.id, &finding.rule, &finding.path));
            match hit {
                Some((i, s)) => {
                    if !outcome.used.contains(&i) {
                        outcome.used.push(i);
                    }
                    self.suppressed.push(SuppressedFinding {
                        finding,
                        reason: s.reason.clone(),
                        owner: s.owner.clone(),
                    });
                }
                None => kept.push(finding),
            }
        }
        self.findings = kept;
        self.recount();
        Ok(outcome)
    }

    /// Drops the findings whose id the baseline already has; returns how many were dropped.
    pub fn apply_baseline(&mut self, baseline_ids: &HashSet<String>) -> usize {
        let before = self.findings.len();
        self.findings.retain(|f| !baseline_ids.contains(&f.id));
        let dropped = before - self.findings.len();
        self.summary.baselined += dropped;
        self.recount();
        dropped
    }
}

/// The finding ids of a baseline: a `promptctl.scan/v1` JSON report (suppressed findings included).
pub fn baseline_ids(text: &str) -> Result<HashSet<String>, ScanError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| ScanError::Baseline(format!("not JSON: line {} column {}", e.line(), e.column())))?;
    if value.get("schema").and_then(|s| s.as_str()) != Some(super::model::SCHEMA) {
        return Err(ScanError::Baseline(format!(
            "not a `{}` report (run `promptctl scan --format json` to make one)",
            super::model::SCHEMA
        )));
    }
    let ids = ["findings", "suppressed"]
        .iter()
        .filter_map(|k| value.get(k).and_then(|v| v.as_array()))
        .flatten()
        .filter_map(|f| f.get("id").and_then(|i| i.as_str()).map(str::to_string))
        .collect();
    Ok(ids)
}

/// Glob match over `/`-separated paths: `**` spans segments, `*` stays within one, `?` is one char.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    glob_from(&p, &t)
}

fn glob_from(p: &[char], t: &[char]) -> bool {
    match p.first() {
        None => t.is_empty(),
        Some('*') if p.get(1) == Some(&'*') => {
            let rest = if p.get(2) == Some(&'/') { &p[3..] } else { &p[2..] };
            (0..=t.len()).any(|i| glob_from(rest, &t[i..]))
        }
        Some('*') => (0..=t.len()).take_while(|&i| i == 0 || t[i - 1] != '/').any(|i| glob_from(&p[1..], &t[i..])),
        Some('?') => t.first().is_some_and(|c| *c != '/') && glob_from(&p[1..], &t[1..]),
        Some(c) => t.first() == Some(c) && glob_from(&p[1..], &t[1..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("prompts/*.yaml", "prompts/a.examples.yaml"));
        assert!(!glob_match("prompts/*.yaml", "prompts/sub/a.yaml"));
        assert!(glob_match("prompts/**/*.yaml", "prompts/sub/deeper/a.yaml"));
        assert!(glob_match("prompts/**/*.yaml", "prompts/a.yaml"));
        assert!(glob_match("pii.*", "pii.email"));
        assert!(glob_match("f-??", "f-ab"));
        assert!(!glob_match("secret.*", "pii.email"));
    }

    #[test]
    fn suppressions_must_say_why_and_who() {
        let s = Suppression {
            id: None,
            rule: Some("pii.email".into()),
            path: None,
            reason: " ".into(),
            owner: "ana".into(),
            expires: None,
        };
        assert!(s.validate(0).is_err());
    }
}
