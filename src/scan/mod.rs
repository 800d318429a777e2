//! Leak scan of prompts and few-shot examples: secrets, PII, overlap of examples with tenant traces
//! (with origin and exposure attribution), provenance policy, suppressions, baselines and SARIF.
//!
//! The CLI reads the files and configuration and hands them over as plain inputs:
//!
//! ```no_run
//! use promptctl::scan::{PromptInput, ScanInputs, ScanOptions, Scanner, SourceFile};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let prompt = PromptInput {
//!     path: "prompts/support-reply.prompt".into(),
//!     text: std::fs::read_to_string("prompts/support-reply.prompt")?,
//!     name: Some("support-reply".into()),
//!     examples: Some(SourceFile {
//!         path: "prompts/support-reply.examples.yaml".into(),
//!         text: std::fs::read_to_string("prompts/support-reply.examples.yaml")?,
//!     }),
//!     parsed_examples: None,
//!     rendered_turns: 8,
//!     scope: Some(vec!["*".into()]),
//!     deployed_at: None,
//! };
//! let inputs = ScanInputs { prompts: vec![prompt], ..ScanInputs::default() };
//! let scanner = Scanner::new(inputs)?;
//! let mut traces = scanner.tally();
//! scanner.scan_reader("traces.jsonl", std::fs::File::open("traces.jsonl")?, &mut traces)?;
//! let report = scanner.finish(traces, b"key from the state file");
//! let sarif = scanner.sarif(&report, env!("CARGO_PKG_VERSION"));
//! # let _ = sarif; Ok(()) }
//! ```
//!
//! See docs/scan.md for the rules, severities and algorithms.

mod attribution;
mod config;
mod draft;
mod engine;
mod entities;
mod error;
mod examples;
mod identity;
mod lines;
mod mask;
mod model;
mod normalize;
mod overlap;
mod pii;
mod placeholder;
mod provenance;
mod records;
mod sarif;
mod secrets;
mod suppress;
#[doc(hidden)]
pub mod testgen;
mod tracescan;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Read;

use jiff::Timestamp;

pub use config::{PromptScope, ScanConfig};
pub use error::ScanError;
pub use identity::value_hmac;
pub use model::{
    BadLine, Finding, FindingKind, MAX_BAD_LINES, SCHEMA, ScanReport, Severity, Summary, SuppressedFinding, TenantHit,
    TraceRef,
};
pub use sarif::FINGERPRINT_KEY;
pub use suppress::{Suppression, SuppressionOutcome, baseline_ids, glob_match};
pub use tracescan::{TraceRecord, TraceTally, UNKNOWN_TENANT};

use engine::PromptSide;

/// A file handed to the scan: its path relative to the scanned root (`/`-separated) and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

/// One prompt as configured for the scan.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptInput {
    /// The `.prompt` file, relative to the root.
    pub path: String,
    /// Its full text (frontmatter and template); scanned for secrets and PII.
    pub text: String,
    /// The prompt's name, as trace records give it in `prompt.name`.
    pub name: Option<String>,
    /// The few-shot examples file it references, if any.
    pub examples: Option<SourceFile>,
    /// The examples file's items when the caller has already parsed it as YAML the way the scan does
    /// (`yaml::value_from_str`, `yaml::to_json`, a top-level list): the scan then only locates them in
    /// the text instead of parsing it a second time. `None`: the scan parses the file. Never set for a
    /// `.json` or `.jsonl` file, which the scan reads as JSON.
    pub parsed_examples: Option<Vec<serde_json::Value>>,
    /// How many leading non-system turns of a request the prompt renders (its examples as user/assistant
    /// turns); these are skipped by position on the trace side.
    pub rendered_turns: usize,
    /// Tenants it is served to (`"*"` for all); `None` when not configured (a finding of its own).
    pub scope: Option<Vec<String>>,
    /// When the version being scanned was deployed; traces before it can be an example's origin,
    /// traces after it exposure evidence. `None`: unknown, every trace counts as both.
    pub deployed_at: Option<Timestamp>,
}

/// Tunables; the defaults are those documented in docs/scan.md.
#[derive(Debug, Clone, PartialEq)]
pub struct ScanOptions {
    /// The trace record key that holds the tenant id (`[scan] tenant_field`).
    pub tenant_field: String,
    /// Words per shingle.
    pub shingle_words: usize,
    /// A shared run is reported from this many words…
    pub min_run_words: usize,
    /// …or this many normalized characters.
    pub min_run_chars: usize,
    /// Text in at least max(`common_min_tenants`, `common_tenant_share` × tenants) tenants' own data is
    /// common phrasing.
    pub common_min_tenants: usize,
    pub common_tenant_share: f64,
    /// Shingles occurring at more places than this in the examples are not used as seeds.
    pub max_postings: usize,
}

impl Default for ScanOptions {
    fn default() -> Self {
        ScanOptions {
            tenant_field: "tenant_id".to_string(),
            shingle_words: 6,
            min_run_words: 13,
            min_run_chars: 50,
            common_min_tenants: 3,
            common_tenant_share: 0.05,
            max_postings: 64,
        }
    }
}

/// Everything on the prompt side of a scan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ScanInputs {
    pub prompts: Vec<PromptInput>,
    /// `provenance.yaml` files; each covers the examples files of its directory.
    pub provenance: Vec<SourceFile>,
    /// A user rules file extending the built-in secret rules.
    pub rules: Option<SourceFile>,
    pub options: ScanOptions,
}

/// Sizes of the prompt-side indexes (memory is bounded by these, not by the traces).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexStats {
    pub examples: usize,
    pub shingles: usize,
    pub entities: usize,
}

/// A scan in progress: the prompt side is built once, trace sources are streamed through it.
pub struct Scanner {
    side: PromptSide,
}

impl Scanner {
    /// Parses the prompt side (examples, manifests, rules) and checks it (secrets, PII, provenance). The
    /// shared indexes trace texts are looked up in are built when the first trace source is scanned.
    pub fn new(inputs: ScanInputs) -> Result<Scanner, ScanError> {
        Ok(Scanner { side: PromptSide::build(inputs)? })
    }

    /// An empty tally to stream trace sources into.
    pub fn tally(&self) -> TraceTally {
        TraceTally::default()
    }

    /// Streams a promptctl JSONL trace source; `path` names it in bad-line reports. Only I/O errors
    /// fail; bad lines are counted and scanning goes on.
    pub fn scan_reader<R: Read>(&self, path: &str, reader: R, tally: &mut TraceTally) -> Result<(), ScanError> {
        tracescan::scan_reader(&self.side, path, reader, tally)
    }

    /// Streams request rows of the state file (records the caller already has); they count as
    /// `trace_records_from_state` and are named by their `trace_id` (no path or line). Call it once per
    /// scan, after the files.
    pub fn scan_records<I: IntoIterator<Item = TraceRecord>>(&self, records: I, tally: &mut TraceTally) {
        tracescan::scan_records(&self.side, records, tally);
    }

    /// The report: prompt-side findings plus overlap and provenance findings from the traces. `key` is
    /// the HMAC key for matched values (kept by the caller, e.g. in the state file).
    pub fn finish(&self, tally: TraceTally, key: &[u8]) -> ScanReport {
        let mut drafts = self.side.drafts.clone();
        drafts.extend(attribution::overlap_drafts(&self.side, &tally));
        let mut report = ScanReport::new(draft::identify(drafts, key));
        let known_tenants = tally.tenants.keys().filter(|t| *t != UNKNOWN_TENANT).count();
        report.summary.files = self.side.files;
        report.summary.trace_records = tally.records;
        report.summary.trace_records_from_files = tally.records_from_files;
        report.summary.trace_records_from_state = tally.records_from_state;
        report.summary.bad_lines = tally.bad_lines;
        report.summary.records_without_tenant = tally.records_without_tenant;
        report.summary.tenants = known_tenants;
        report.bad_lines = tally.bad_line_samples;
        report
    }

    /// Sizes of the shared prompt-side indexes (which builds them, if no trace was scanned yet).
    pub fn index_stats(&self) -> IndexStats {
        let indexes = self.side.indexes();
        IndexStats {
            examples: self.side.examples.len(),
            shingles: indexes.shingles.len(),
            entities: indexes.entities.len(),
        }
    }

    /// Descriptions of every rule this scanner can report, by id.
    pub fn rule_descriptions(&self) -> BTreeMap<String, String> {
        sarif::rule_descriptions(&self.side.rules)
    }

    /// The report as a SARIF 2.1.0 log.
    pub fn sarif(&self, report: &ScanReport, tool_version: &str) -> serde_sarif::sarif::Sarif {
        sarif::to_sarif(report, &self.rule_descriptions(), tool_version)
    }
}

/// The SARIF log of a report read back from JSON (rule descriptions of the built-in rules).
pub fn report_to_sarif(report: &ScanReport, tool_version: &str) -> Result<serde_sarif::sarif::Sarif, ScanError> {
    let rules = secrets::SecretRules::builtin()?;
    Ok(sarif::to_sarif(report, &sarif::rule_descriptions(&rules), tool_version))
}

/// The `examples:` value of a `.prompt` file's frontmatter, resolved against the prompt's directory.
/// A minimal reader (the lead's prompt module owns full parsing): it looks only at the frontmatter
/// between the first two `---` lines and only at a top-level `examples:` key.
pub fn examples_path_of(prompt_path: &str, prompt_text: &str) -> Option<String> {
    let mut lines = prompt_text.lines();
    if lines.next()?.trim_end() != "---" {
        return None;
    }
    let value = lines.take_while(|l| l.trim_end() != "---").find_map(|l| l.strip_prefix("examples:"))?;
    let value = value.split(" #").next()?.trim().trim_matches(|c| c == '"' || c == '\'');
    if value.is_empty() {
        return None;
    }
    let dir = provenance::parent_dir(prompt_path);
    Some(if dir.is_empty() { value.to_string() } else { format!("{dir}/{value}") })
}
