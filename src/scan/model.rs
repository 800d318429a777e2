//! The report a scan produces: findings, severities and the summary, in the `promptctl.scan/v1` shape
//! of CLI.md.

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `Info < Low < Medium < High < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// Parses `critical|high|medium|low|info` (the `--fail-on` values).
    pub fn parse(text: &str) -> Option<Severity> {
        match text {
            "info" => Some(Severity::Info),
            "low" => Some(Severity::Low),
            "medium" => Some(Severity::Medium),
            "high" => Some(Severity::High),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }

    /// One step up, for context-word boosts and exposure escalation.
    pub fn raised(self) -> Severity {
        match self {
            Severity::Info => Severity::Low,
            Severity::Low => Severity::Medium,
            Severity::Medium => Severity::High,
            Severity::High | Severity::Critical => Severity::Critical,
        }
    }
}

/// What kind of leak a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FindingKind {
    Secret,
    Pii,
    Overlap,
    Provenance,
}

/// One tenant in whose traces a finding's text was seen, and in which role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TenantHit {
    pub id: String,
    /// `user` or `tool` (the tenant's own data), `assistant` (what the model emitted, `output` included).
    pub role: String,
    pub n_traces: u64,
    /// The first of those traces in scan order (trace files in the order given, then the state's rows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_trace: Option<TraceRef>,
}

/// Where a trace record was read: a line of a trace file, or a request row of the state file (which has
/// no file, path or line; its `trace_id` names it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TraceRef {
    /// `file` or `state`.
    pub source: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The trace file as given on the command line; only for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// 1-based line in `path`; only for `file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u64>,
}

impl TraceRef {
    pub const FILE: &'static str = "file";
    pub const STATE: &'static str = "state";
}

/// One finding. Never holds a raw secret, card number or IBAN: only `value_hmac` and `preview`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// `f-` + hex, derived from rule, path and the HMAC of the matched value: stable across line moves.
    pub id: String,
    pub kind: FindingKind,
    pub rule: String,
    pub severity: Severity,
    /// Relative to the scanned root, `/`-separated.
    pub path: String,
    /// 1-based.
    pub line: usize,
    /// 1-based, in Unicode scalar values.
    pub column: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub example_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<TenantHit>,
    /// Redacted: `j***@acme.io`, `sk-…c3f9`.
    pub preview: String,
    /// HMAC-SHA256 (hex) of the matched value under the caller's key.
    #[serde(default)]
    pub value_hmac: String,
    /// Why it was raised, in one sentence (no raw values).
    #[serde(default)]
    pub message: String,
    /// How many times the same value was found in the same file under the same rule.
    #[serde(default = "one")]
    pub occurrences: usize,
}

fn one() -> usize {
    1
}

/// A finding taken out of the report by a suppression.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressedFinding {
    #[serde(flatten)]
    pub finding: Finding,
    pub reason: String,
    pub owner: String,
}

/// A trace line that could not be read; scanning went on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadLine {
    pub path: String,
    /// 1-based.
    pub line: u64,
    pub message: String,
}

/// Counts over the whole scan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    pub critical: usize,
    pub high: usize,
    pub medium: usize,
    pub low: usize,
    pub info: usize,
    /// Prompt, examples and provenance files read.
    pub files: usize,
    /// All trace records scanned: `trace_records_from_files` + `trace_records_from_state`.
    pub trace_records: u64,
    /// Records read from the `--traces` files.
    #[serde(default)]
    pub trace_records_from_files: u64,
    /// Request rows read from the state file (imported with `trace import`).
    #[serde(default)]
    pub trace_records_from_state: u64,
    /// Trace lines that were not JSON objects (see `bad_lines` for the first few).
    pub bad_lines: u64,
    /// Trace records without a tenant id; their hits are attributed to the tenant `(unknown)`.
    #[serde(default)]
    pub records_without_tenant: u64,
    /// Distinct tenants seen in the traces.
    #[serde(default)]
    pub tenants: usize,
    #[serde(default)]
    pub suppressed: usize,
    /// Findings dropped because the baseline already had them.
    #[serde(default)]
    pub baselined: usize,
}

/// The result of `promptctl scan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScanReport {
    /// Always `promptctl.scan/v1`.
    pub schema: String,
    pub findings: Vec<Finding>,
    pub summary: Summary,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub suppressed: Vec<SuppressedFinding>,
    /// The first bad trace lines (at most [`MAX_BAD_LINES`]); `summary.bad_lines` has the count.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bad_lines: Vec<BadLine>,
}

pub const SCHEMA: &str = "promptctl.scan/v1";

/// Bad lines kept with their message; the rest are only counted.
pub const MAX_BAD_LINES: usize = 100;

impl ScanReport {
    pub fn new(mut findings: Vec<Finding>) -> ScanReport {
        sort_findings(&mut findings);
        let mut report = ScanReport {
            schema: SCHEMA.to_string(),
            findings,
            summary: Summary::default(),
            suppressed: Vec::new(),
            bad_lines: Vec::new(),
        };
        report.recount();
        report
    }

    /// Reads a report written earlier (`--format json`), e.g. as a baseline.
    pub fn from_json(text: &str) -> Result<ScanReport, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The highest severity among the (unsuppressed) findings.
    pub fn max_severity(&self) -> Option<Severity> {
        self.findings.iter().map(|f| f.severity).max()
    }

    /// Whether any finding is at or above `threshold` (the `--fail-on` check).
    pub fn fails_at(&self, threshold: Severity) -> bool {
        self.findings.iter().any(|f| f.severity >= threshold)
    }

    /// Recomputes the per-severity counts after findings were removed or added.
    pub fn recount(&mut self) {
        let s = &mut self.summary;
        (s.critical, s.high, s.medium, s.low, s.info) = (0, 0, 0, 0, 0);
        for f in &self.findings {
            match f.severity {
                Severity::Critical => s.critical += 1,
                Severity::High => s.high += 1,
                Severity::Medium => s.medium += 1,
                Severity::Low => s.low += 1,
                Severity::Info => s.info += 1,
            }
        }
        s.suppressed = self.suppressed.len();
    }
}

/// Most severe first, then by place, so that reports diff well.
pub fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| a.path.cmp(&b.path))
            .then_with(|| a.line.cmp(&b.line))
            .then_with(|| a.column.cmp(&b.column))
            .then_with(|| a.rule.cmp(&b.rule))
            .then_with(|| a.id.cmp(&b.id))
    });
}
