//! Findings before they get their identity: the raw matched value is held only here, turned into an
//! HMAC and a content-based id, and dropped.

use std::collections::HashMap;

use super::identity::{finding_id, value_hmac};
use super::model::{Finding, FindingKind, Severity, TenantHit};

/// A finding with its raw value, not yet identified.
#[derive(Debug, Clone)]
pub struct Draft {
    pub kind: FindingKind,
    pub rule: String,
    pub severity: Severity,
    pub path: String,
    pub line: usize,
    pub column: usize,
    pub example_id: Option<String>,
    pub tenants: Vec<TenantHit>,
    pub preview: String,
    pub message: String,
    /// Hashed, never stored.
    pub value: String,
}

/// Turns drafts into findings: HMAC of the value, id from rule + path + HMAC; drafts with the same id
/// (the same value twice in one file under one rule) become one finding with `occurrences` > 1, at the
/// first position and the highest severity.
pub fn identify(drafts: Vec<Draft>, key: &[u8]) -> Vec<Finding> {
    let mut by_id: HashMap<String, usize> = HashMap::new();
    let mut findings: Vec<Finding> = Vec::new();
    for draft in drafts {
        let hmac = value_hmac(key, &draft.value);
        let id = finding_id(&draft.rule, &draft.path, &hmac);
        if let Some(&i) = by_id.get(&id) {
            merge_into(&mut findings[i], draft);
            continue;
        }
        by_id.insert(id.clone(), findings.len());
        findings.push(Finding {
            id,
            kind: draft.kind,
            rule: draft.rule,
            severity: draft.severity,
            path: draft.path,
            line: draft.line,
            column: draft.column,
            example_id: draft.example_id,
            tenants: draft.tenants,
            preview: draft.preview,
            value_hmac: hmac,
            message: draft.message,
            occurrences: 1,
        });
    }
    findings
}

fn merge_into(finding: &mut Finding, draft: Draft) {
    finding.occurrences += 1;
    finding.severity = finding.severity.max(draft.severity);
    if (draft.line, draft.column) < (finding.line, finding.column) {
        finding.line = draft.line;
        finding.column = draft.column;
        finding.example_id = draft.example_id;
    }
}
