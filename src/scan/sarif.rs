//! SARIF 2.1.0 output (serde-sarif types). Each finding is a result with its rule, level, location
//! (1-based line and column, columns in Unicode code points) and `partialFingerprints` carrying the
//! finding id, so that code-scanning services track it across line moves. Suppressed findings are
//! included with an external suppression and its justification.

use std::collections::BTreeMap;

use serde_json::json;
use serde_sarif::sarif;

use super::model::{Finding, ScanReport, Severity};
use super::pii::PiiKind;
use super::secrets::SecretRules;

const TOOL_NAME: &str = "promptctl";
/// The key of `partialFingerprints` under which the finding id is stored.
pub const FINGERPRINT_KEY: &str = "promptctl/finding/v1";

/// The SARIF level of a severity.
pub fn level(severity: Severity) -> sarif::ResultLevel {
    match severity {
        Severity::Critical | Severity::High => sarif::ResultLevel::Error,
        Severity::Medium => sarif::ResultLevel::Warning,
        Severity::Low | Severity::Info => sarif::ResultLevel::Note,
    }
}

/// GitHub code scanning's `security-severity` (0–10) for a severity.
fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
        Severity::Info => "0.0",
    }
}

/// A description of every rule promptctl can report.
pub fn rule_descriptions(rules: &SecretRules) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> =
        rules.rules().iter().map(|r| (r.id.clone(), r.description.clone())).collect();
    for kind in PiiKind::ALL {
        out.insert(kind.rule().to_string(), kind.description().to_string());
    }
    for (id, text) in FIXED_RULES {
        out.insert((*id).to_string(), (*text).to_string());
    }
    out
}

const FIXED_RULES: &[(&str, &str)] = &[
    ("fewshot.tenant_overlap", "Few-shot example text found in a tenant's own trace data"),
    ("fewshot.entity_overlap", "Entity values of a few-shot example found in a tenant's own trace data"),
    ("fewshot.common_phrase", "Few-shot example text common to many tenants (not tenant data)"),
    ("provenance.missing_entry", "Few-shot example without a provenance manifest entry"),
    ("provenance.unapproved_mining", "Example mined from traces without redaction record and approver"),
    ("provenance.missing_tenant", "Example mined from traces without its source tenant"),
    ("provenance.cross_tenant", "Example from one tenant in a prompt served to other tenants"),
    ("provenance.mismatch", "Declared provenance contradicted by trace overlap with one tenant"),
    ("provenance.orphan_entry", "Provenance manifest entry without an example"),
    ("scope.unconfigured", "Prompt without a configured tenant scope"),
];

/// The SARIF log of a report. `descriptions` maps rule ids to their text ([`rule_descriptions`]).
pub fn to_sarif(report: &ScanReport, descriptions: &BTreeMap<String, String>, tool_version: &str) -> sarif::Sarif {
    let mut rule_ids: Vec<&str> =
        report.findings.iter().chain(report.suppressed.iter().map(|s| &s.finding)).map(|f| f.rule.as_str()).collect();
    rule_ids.sort_unstable();
    rule_ids.dedup();
    let rules: Vec<sarif::ReportingDescriptor> =
        rule_ids.iter().map(|id| reporting_descriptor(id, descriptions)).collect();
    let mut results: Vec<sarif::Result> = report.findings.iter().map(|f| result(f, &rule_ids, None)).collect();
    results.extend(report.suppressed.iter().map(|s| result(&s.finding, &rule_ids, Some(&s.reason))));
    let driver = sarif::ToolComponent::builder().name(TOOL_NAME).version(tool_version).rules(rules).build();
    let run = sarif::Run::builder()
        .tool(sarif::Tool::builder().driver(driver).build())
        .results(results)
        .column_kind(json!("unicodeCodePoints"))
        .build();
    sarif::Sarif::builder().version(json!("2.1.0")).schema(sarif::SCHEMA_URL).runs(vec![run]).build()
}

fn reporting_descriptor(id: &str, descriptions: &BTreeMap<String, String>) -> sarif::ReportingDescriptor {
    let text = descriptions.get(id).cloned().unwrap_or_else(|| id.to_string());
    sarif::ReportingDescriptor::builder()
        .id(id)
        .name(id.replace('.', "/"))
        .short_description(sarif::MultiformatMessageString::builder().text(text).build())
        .build()
}

fn result(finding: &Finding, rule_ids: &[&str], suppressed_because: Option<&str>) -> sarif::Result {
    let region = sarif::Region::builder().start_line(finding.line as i64).start_column(finding.column as i64).build();
    let artifact = sarif::ArtifactLocation::builder().uri(finding.path.clone()).build();
    let physical = sarif::PhysicalLocation::builder().artifact_location(artifact).region(region).build();
    let location = sarif::Location::builder().physical_location(physical).build();
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(FINGERPRINT_KEY.to_string(), finding.id.clone());
    let properties = sarif::PropertyBag::builder().additional_properties(result_properties(finding)).build();
    let rule_index = rule_ids.iter().position(|r| *r == finding.rule).unwrap_or(0);
    let message = format!("{} ({})", finding.message, finding.preview);
    let mut result = sarif::Result::builder()
        .rule_id(finding.rule.clone())
        .rule_index(rule_index as i64)
        .level(level(finding.severity))
        .message(sarif::Message::builder().text(message).build())
        .locations(vec![location])
        .partial_fingerprints(fingerprints)
        .properties(properties)
        .build();
    let related = related_locations(finding);
    if !related.is_empty() {
        result.related_locations = Some(related);
    }
    if let Some(reason) = suppressed_because {
        let suppression = sarif::Suppression::builder().kind(json!("external")).justification(reason).build();
        result.suppressions = Some(vec![suppression]);
    }
    result
}

/// The first trace of each tenant hit: a line of a trace file (a physical location), or a request row of
/// the state file, which has no file: a logical location named by its trace id.
fn related_locations(finding: &Finding) -> Vec<sarif::Location> {
    let mut out = Vec::new();
    for hit in &finding.tenants {
        let Some(at) = &hit.first_trace else { continue };
        let what = format!("first trace of tenant {} ({})", hit.id, hit.role);
        let location = match (&at.path, at.line) {
            (Some(path), line) => {
                let artifact = sarif::ArtifactLocation::builder().uri(path.clone()).build();
                let physical = match line {
                    Some(line) => sarif::PhysicalLocation::builder()
                        .artifact_location(artifact)
                        .region(sarif::Region::builder().start_line(line as i64).build())
                        .build(),
                    None => sarif::PhysicalLocation::builder().artifact_location(artifact).build(),
                };
                sarif::Location::builder()
                    .id(out.len() as i64)
                    .physical_location(physical)
                    .message(sarif::Message::builder().text(what).build())
                    .build()
            }
            (None, _) => {
                let id = at.trace_id.clone().unwrap_or_default();
                let logical = sarif::LogicalLocation::builder()
                    .name(id.clone())
                    .fully_qualified_name(format!("state/request/{id}"))
                    .kind("resource")
                    .build();
                let text = format!("{what}: request row of the state file, trace {id}");
                sarif::Location::builder()
                    .id(out.len() as i64)
                    .logical_locations(vec![logical])
                    .message(sarif::Message::builder().text(text).build())
                    .build()
            }
        };
        out.push(location);
    }
    out
}

fn result_properties(finding: &Finding) -> BTreeMap<String, serde_json::Value> {
    let mut props = BTreeMap::new();
    props.insert("findingId".to_string(), json!(finding.id));
    props.insert("kind".to_string(), json!(finding.kind));
    props.insert("severity".to_string(), json!(finding.severity));
    props.insert("security-severity".to_string(), json!(security_severity(finding.severity)));
    props.insert("valueHmac".to_string(), json!(finding.value_hmac));
    if let Some(ex) = &finding.example_id {
        props.insert("exampleId".to_string(), json!(ex));
    }
    if !finding.tenants.is_empty() {
        props.insert("tenants".to_string(), json!(finding.tenants));
    }
    props
}
