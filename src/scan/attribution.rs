//! From the trace tally to findings: which tenant an example came from (its text in that tenant's
//! user or tool messages before the prompt was deployed), who it was exposed to (other tenants'
//! assistant output after deploy), and whether it is merely common phrasing.

use std::collections::{BTreeMap, BTreeSet};

use super::draft::Draft;
use super::engine::{ExampleRef, PromptSide, manifest_draft};
use super::identity::{Redaction, preview};
use super::model::{FindingKind, Severity, TenantHit};
use super::pii::find_pii;
use super::provenance::Source;
use super::tracescan::{Evidence, Role, TraceTally, UNKNOWN_TENANT};

/// Tenant lists of common-phrase findings are cut to this many entries.
const COMMON_TENANTS_SHOWN: usize = 20;

/// The evidence of one example, per tenant and role.
type ExampleEvidence<'t> = Vec<(&'t str, Role, &'t Evidence)>;

/// Overlap findings and provenance mismatches for every example the traces touched.
pub fn overlap_drafts(side: &PromptSide, tally: &TraceTally) -> Vec<Draft> {
    let threshold = common_threshold(side, tally);
    let mut out = Vec::new();
    for (example, evidence) in evidence_by_example(tally) {
        let example = &side.examples[example as usize];
        out.extend(judge_example(side, tally, example, &evidence, threshold));
    }
    out
}

/// Text in at least max(3, 5 % of tenants) tenants' own data is common phrasing, not one tenant's data.
fn common_threshold(side: &PromptSide, tally: &TraceTally) -> usize {
    let tenants = tally.tenants.keys().filter(|t| *t != UNKNOWN_TENANT).count();
    let share = (side.options.common_tenant_share * tenants as f64).ceil() as usize;
    side.options.common_min_tenants.max(share)
}

fn evidence_by_example(tally: &TraceTally) -> BTreeMap<u32, ExampleEvidence<'_>> {
    let mut out: BTreeMap<u32, ExampleEvidence<'_>> = BTreeMap::new();
    for (tenant, per_example) in &tally.evidence {
        for ((example, role), ev) in per_example {
            out.entry(*example).or_default().push((tenant.as_str(), *role, ev));
        }
    }
    for list in out.values_mut() {
        list.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    }
    out
}

/// Who holds the example's text, by kind of evidence.
#[derive(Default)]
struct Parties<'t> {
    /// Tenants whose own data (user/tool) carries the text or a strong entity of it.
    data_tenants: BTreeSet<&'t str>,
    /// Of those, the ones whose traces predate the deploy: the origin.
    origin: BTreeSet<&'t str>,
    /// Tenants whose own data carries only a name of the example, before deploy.
    weak_origin: BTreeSet<&'t str>,
    /// Tenants other than the origin to which the model emitted the text after deploy.
    exposed: BTreeSet<&'t str>,
    shingle: bool,
    /// Records without a tenant id carry the text in their own data before deploy.
    unknown_origin: bool,
}

fn parties<'t>(evidence: &ExampleEvidence<'t>) -> Parties<'t> {
    let unknown_origin = evidence.iter().any(|&(t, role, ev)| {
        t == UNKNOWN_TENANT
            && role.is_tenant_data()
            && (ev.shingle > 0 || ev.strong_entity > 0)
            && ev.possibly_before_deploy()
    });
    let mut p = Parties {
        unknown_origin,
        shingle: unknown_origin && evidence.iter().any(|(t, _, ev)| *t == UNKNOWN_TENANT && ev.shingle > 0),
        ..Parties::default()
    };
    let known = evidence.iter().filter(|(t, _, _)| *t != UNKNOWN_TENANT);
    for &(tenant, role, ev) in known.clone() {
        let strong = ev.shingle > 0 || ev.strong_entity > 0;
        p.shingle |= ev.shingle > 0;
        if role.is_tenant_data() && strong {
            p.data_tenants.insert(tenant);
            if ev.possibly_before_deploy() {
                p.origin.insert(tenant);
            }
        } else if role.is_tenant_data() && ev.weak_entity > 0 && ev.possibly_before_deploy() {
            p.weak_origin.insert(tenant);
        }
    }
    for &(tenant, role, ev) in known {
        let strong = ev.shingle > 0 || ev.strong_entity > 0;
        if role == Role::Assistant && strong && ev.possibly_after_deploy() && !p.origin.contains(tenant) {
            p.exposed.insert(tenant);
        }
    }
    p
}

fn judge_example(
    side: &PromptSide,
    tally: &TraceTally,
    example: &ExampleRef,
    evidence: &ExampleEvidence<'_>,
    threshold: usize,
) -> Vec<Draft> {
    let p = parties(evidence);
    let tenants = tenant_hits(tally, evidence);
    if p.data_tenants.len() >= threshold {
        let mut shown = tenants;
        shown.truncate(COMMON_TENANTS_SHOWN);
        let message = format!(
            "example text appears in the own data of {} tenants: common phrasing, not one tenant's data",
            p.data_tenants.len()
        );
        return vec![overlap_draft(side, example, "fewshot.common_phrase", Severity::Info, shown, message)];
    }
    let mut out = Vec::new();
    if !p.origin.is_empty() {
        let served_elsewhere = served_beyond(side, example, &p.origin);
        let severity = if !p.exposed.is_empty() {
            Severity::Critical
        } else if served_elsewhere {
            Severity::High
        } else {
            Severity::Low
        };
        let rule = if p.shingle { "fewshot.tenant_overlap" } else { "fewshot.entity_overlap" };
        let message = origin_message(&p, served_elsewhere);
        out.push(overlap_draft(side, example, rule, severity, tenants, message));
    } else if p.unknown_origin {
        let message = "example text found in the user/tool messages of records without a tenant id, before deploy: the origin cannot be attributed".to_string();
        let rule = if p.shingle { "fewshot.tenant_overlap" } else { "fewshot.entity_overlap" };
        out.push(overlap_draft(side, example, rule, Severity::Medium, tenants, message));
    } else if !p.weak_origin.is_empty() {
        let message = format!(
            "a name from this example occurs in the own data of {}; no stronger evidence",
            join(&p.weak_origin)
        );
        out.push(overlap_draft(side, example, "fewshot.entity_overlap", Severity::Medium, tenants, message));
    }
    out.extend(provenance_mismatch(side, tally, example, &p, evidence));
    out
}

fn origin_message(p: &Parties<'_>, served_elsewhere: bool) -> String {
    let mut message =
        format!("example text found in the user/tool messages of {} before the prompt was deployed", join(&p.origin));
    if !p.exposed.is_empty() {
        message.push_str(&format!("; emitted to {} after deploy (exposure)", join(&p.exposed)));
    } else if served_elsewhere {
        message.push_str("; the prompt is served to other tenants");
    } else {
        message.push_str("; the prompt is served only to that tenant");
    }
    message
}

fn join(set: &BTreeSet<&str>) -> String {
    set.iter().copied().collect::<Vec<_>>().join(", ")
}

/// Whether any prompt using the example is served to a tenant outside `origin`.
fn served_beyond(side: &PromptSide, example: &ExampleRef, origin: &BTreeSet<&str>) -> bool {
    example
        .prompts
        .iter()
        .any(|&i| side.prompts[i].served_tenants().is_none_or(|s| s.iter().any(|t| !origin.contains(t.as_str()))))
}

fn tenant_hits(tally: &TraceTally, evidence: &ExampleEvidence<'_>) -> Vec<TenantHit> {
    evidence
        .iter()
        .map(|&(tenant, role, ev)| TenantHit {
            id: tenant.to_string(),
            role: role.as_str().to_string(),
            n_traces: ev.n_traces,
            first_trace: ev.first.as_ref().map(|at| tally.trace_ref(at)),
        })
        .collect()
}

fn overlap_draft(
    side: &PromptSide,
    example: &ExampleRef,
    rule: &str,
    severity: Severity,
    tenants: Vec<TenantHit>,
    message: String,
) -> Draft {
    Draft {
        kind: FindingKind::Overlap,
        rule: rule.to_string(),
        severity,
        path: example.path.clone(),
        line: example.line,
        column: example.column,
        example_id: Some(example.example.id.clone()),
        tenants,
        preview: redacted_excerpt(side, example),
        message,
        value: format!("example:{}", example.example.id),
    }
}

/// An example declared synthetic, hand-written or public (or mined from another tenant) whose text
/// overlaps with exactly one tenant's own data.
fn provenance_mismatch(
    side: &PromptSide,
    tally: &TraceTally,
    example: &ExampleRef,
    p: &Parties<'_>,
    evidence: &ExampleEvidence<'_>,
) -> Option<Draft> {
    // Only traces from before the deploy can be where the text came from; a tenant quoting the example
    // back afterwards says nothing about its provenance.
    if p.origin.len() != 1 {
        return None;
    }
    let tenant = *p.origin.iter().next()?;
    let (entry, manifest, offset) = side.provenance_of(example)?;
    let declared_elsewhere = match entry.source {
        Source::MinedTrace => entry.source_tenant.as_deref().is_some_and(|t| t != tenant),
        _ => true,
    };
    if !declared_elsewhere {
        return None;
    }
    let mut draft = manifest_draft(
        manifest,
        offset,
        &entry.id,
        "provenance.mismatch",
        Severity::High,
        format!(
            "declared `{}` but its text overlaps exclusively with tenant {tenant}'s own data",
            entry.source.as_str()
        ),
    );
    // The tenant's own traces that carry the text before deploy: the evidence behind "exclusively".
    let own = || evidence.iter().filter(|(t, role, _)| *t == tenant && matches!(role, Role::User | Role::Tool));
    let n_traces = own().map(|(_, _, ev)| ev.before_deploy + ev.unknown_time).sum();
    let first_trace = own().filter_map(|(_, _, ev)| ev.first.as_ref()).min().map(|at| tally.trace_ref(at));
    draft.tenants =
        vec![TenantHit { id: tenant.to_string(), role: Role::User.as_str().to_string(), n_traces, first_trace }];
    Some(draft)
}

/// The start of the example with PII, secrets and long digit runs redacted.
fn redacted_excerpt(side: &PromptSide, example: &ExampleRef) -> String {
    let text = example.example.fields.first().map_or("", |f| f.text.as_str());
    let cut = text.char_indices().nth(160).map_or(text.len(), |(i, _)| i);
    let text = &text[..cut];
    let mut spans: Vec<(std::ops::Range<usize>, String)> =
        find_pii(text).into_iter().map(|m| (m.span.clone(), preview(&text[m.span], m.kind.redaction()))).collect();
    for m in side.rules.find(text) {
        spans.push((m.span.clone(), side.rules.preview(m.rule, m.value)));
    }
    spans.sort_by_key(|s| s.0.start);
    let mut out = String::new();
    let mut at = 0;
    for (span, replacement) in spans {
        if span.start < at {
            continue;
        }
        out.push_str(&text[at..span.start]);
        out.push_str(&replacement);
        at = span.end;
    }
    out.push_str(&text[at..]);
    let masked = preview(&out, Redaction::Digits);
    let collapsed: String = masked.split_whitespace().collect::<Vec<_>>().join(" ");
    let short: String = collapsed.chars().take(60).collect();
    format!("{short} …")
}
