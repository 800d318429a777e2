//! What one sample of one case produced, as the runner hands it to storage: the verdict, the checks, and
//! every provider call it made as normalized request rows.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::money::Usd;
use crate::trace::model::RequestRow;

/// The verdict of one sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Every assertion passed.
    Pass,
    /// The model answered and an assertion failed.
    Fail,
    /// No verdict: the provider (or an llm-judge) failed after retries. Never a pass, never a fail.
    Error,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Error => "error",
        }
    }

    pub fn parse(text: &str) -> Option<Outcome> {
        match text {
            "pass" => Some(Outcome::Pass),
            "fail" => Some(Outcome::Fail),
            "error" => Some(Outcome::Error),
            _ => None,
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One assertion's result on one sample, as stored (`eval_sample.assertions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    #[serde(rename = "type")]
    pub kind: String,
    pub passed: bool,
    /// Why it failed, or a judge's reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
    /// For `llm-judge`: the rubric and judge provider, so that a regrade can reuse the verdict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rubric: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub judge: Option<String>,
}

impl From<super::assert::AssertionResult> for Check {
    fn from(r: super::assert::AssertionResult) -> Self {
        Check { kind: r.kind, passed: r.passed, detail: r.detail, rubric: None, judge: None }
    }
}

/// A request row and the key it is stored under (`<run_id>/<case_id>/<sample>/<attempt>`).
#[derive(Debug, Clone, PartialEq)]
pub struct KeyedRow {
    pub key: String,
    pub row: RequestRow,
}

/// A finished sample.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleRecord {
    pub case_id: String,
    /// 0-based.
    pub sample: u32,
    pub outcome: Outcome,
    /// The final output (partial text for an error that cut a stream).
    pub output: Option<String>,
    pub checks: Vec<Check>,
    /// Attempts of the sample's main call, earlier interrupted ones included.
    pub attempts: u32,
    /// Every call of this sample: the main call's attempts, then any judge calls'.
    pub rows: Vec<KeyedRow>,
    /// Index in `rows` of the main call's final attempt.
    pub final_row: Option<usize>,
    /// All calls of the sample; None when a call with usage has no price.
    pub cost: Option<Usd>,
    pub latency_ms: Option<u64>,
    pub ttft_ms: Option<u64>,
    pub completed_at: Timestamp,
}

/// What the runner asks storage to write, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    Sample(Box<SampleRecord>),
    /// Calls of a sample that was interrupted (Ctrl-C) before it finished: recorded, but no verdict, so
    /// the sample stays missing and a resume runs it again.
    Interrupted(Vec<KeyedRow>),
}

/// `<run_id>/<case_id>/<sample>`: the logical request id of a sample's main call.
pub fn logical_id(run_id: &str, case_id: &str, sample: u32) -> String {
    format!("{run_id}/{case_id}/{sample}")
}

/// Which case and sample a logical request id of run `run_id` belongs to, and whether it is a judge
/// call (`…/<sample>/judge-<n>`).
pub fn parse_logical_id<'a>(run_id: &str, logical: &'a str) -> Option<(&'a str, u32, bool)> {
    let rest = logical.strip_prefix(run_id)?.strip_prefix('/')?;
    let (rest, judge) = match rest.rsplit_once('/') {
        Some((head, tail)) if tail.starts_with("judge-") => (head, true),
        _ => (rest, false),
    };
    let (case, sample) = rest.rsplit_once('/')?;
    Some((case, sample.parse().ok()?, judge))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logical_ids_round_trip_even_with_slashes_in_case_ids() {
        let id = logical_id("r-1", "billing/refund", 3);
        assert_eq!(parse_logical_id("r-1", &id), Some(("billing/refund", 3, false)));
        assert_eq!(parse_logical_id("r-1", &format!("{id}/judge-0")), Some(("billing/refund", 3, true)));
        assert_eq!(parse_logical_id("r-2", &id), None);
        assert_eq!(parse_logical_id("r-1", "r-1/x"), None);
    }
}
