//! The prompt side of a scan: prompt and example files parsed, secrets, PII and provenance checked,
//! and the read-only structures the trace side shares (shingle table, entity automaton).

use std::collections::HashMap;
use std::sync::OnceLock;

use jiff::Timestamp;
use rayon::prelude::*;

use super::draft::Draft;
use super::entities::EntityIndex;
use super::error::ScanError;
use super::examples::{Example, parse_examples};
use super::identity::preview;
use super::lines::LineIndex;
use super::mask::mask_template;
use super::model::{FindingKind, Severity};
use super::normalize::Words;
use super::overlap::{IndexedText, ShingleIndex};
use super::pii::find_pii;
use super::provenance::{Manifest, ProvenanceEntry, Source, parent_dir, parse_manifest};
use super::secrets::SecretRules;
use super::{PromptInput, ScanInputs, ScanOptions, SourceFile};

/// A prompt as the scan sees it.
#[derive(Debug, Clone)]
pub struct PromptMeta {
    pub path: String,
    pub name: Option<String>,
    pub rendered_turns: usize,
    pub scope: Option<Vec<String>>,
    pub deployed_at: Option<Timestamp>,
}

impl PromptMeta {
    /// Tenants the prompt is served to; `None` for everyone (`*`, or no scope configured).
    pub fn served_tenants(&self) -> Option<&[String]> {
        match &self.scope {
            Some(s) if !s.iter().any(|t| t == "*") => Some(s),
            _ => None,
        }
    }
}

/// One example, numbered scan-wide.
#[derive(Debug, Clone)]
pub struct ExampleRef {
    /// The examples file, relative to the root.
    pub path: String,
    pub example: Example,
    /// 1-based line and column of the example's first field (or of the item).
    pub line: usize,
    pub column: usize,
    /// Indices of the prompts that use the examples file.
    pub prompts: Vec<usize>,
    /// The earliest deploy time among those prompts.
    pub deployed_at: Option<Timestamp>,
}

/// The structures trace texts are looked up in, read-only and shared by all threads.
pub struct OverlapIndexes {
    pub shingles: ShingleIndex,
    pub entities: EntityIndex,
}

/// Everything the trace side needs, read-only and shared by all threads.
pub struct PromptSide {
    pub options: ScanOptions,
    pub prompts: Vec<PromptMeta>,
    pub examples: Vec<ExampleRef>,
    pub manifests: Vec<Manifest>,
    /// Built on first use: a scan without traces (secrets, PII, provenance) never needs them, and they
    /// cost more than the rest of the prompt side (over a 10 MB prompt repo, the entity values' automaton
    /// alone took half a second of CPU).
    indexes: OnceLock<OverlapIndexes>,
    pub rules: SecretRules,
    pub files: usize,
    pub drafts: Vec<Draft>,
    turns_by_name: HashMap<String, usize>,
    default_turns: usize,
}

impl PromptSide {
    pub fn build(inputs: ScanInputs) -> Result<PromptSide, ScanError> {
        let ScanInputs { mut prompts, provenance, rules, options } = inputs;
        let rules = match rules {
            Some(file) => SecretRules::with_user_file(&file.text, &file.path)?,
            None => SecretRules::builtin()?,
        };
        let mut drafts = Vec::new();
        let metas: Vec<PromptMeta> = prompts.iter().map(prompt_meta).collect();
        let mut parsed_examples: Vec<Option<Vec<serde_json::Value>>> =
            prompts.iter_mut().map(|p| p.parsed_examples.take()).collect();
        let mut example_files = collect_example_files(&prompts, &mut parsed_examples);
        // Files are parsed and scanned in parallel; results are taken in file order, so that the drafts,
        // the example numbering and the first error are those of a sequential run.
        let scanned: Vec<Result<ScannedExamples, ScanError>> =
            example_files.par_iter_mut().map(|file| scan_examples_file(&rules, file)).collect();
        let mut examples = Vec::new();
        for (file, result) in example_files.iter().zip(scanned) {
            let scanned = result?;
            drafts.extend(scanned.drafts);
            examples.extend(example_refs(file.file, scanned.examples, &file.users, &metas));
        }
        let prompt_drafts: Vec<Vec<Draft>> =
            prompts.par_iter().map(|p| scan_text_file(&rules, &p.path, &p.text, None)).collect();
        for (prompt, prompt_drafts) in prompts.iter().zip(prompt_drafts) {
            drafts.extend(prompt_drafts);
            if prompt.scope.is_none() {
                drafts.push(unconfigured_scope(prompt));
            }
        }
        let manifests =
            provenance.par_iter().map(|f| parse_manifest(&f.path, &f.text)).collect::<Result<Vec<_>, _>>()?;
        check_provenance(&examples, &metas, &manifests, &mut drafts);
        let turns_by_name = metas.iter().filter_map(|m| m.name.clone().map(|n| (n, m.rendered_turns))).collect();
        let default_turns = default_turns(&metas);
        Ok(PromptSide {
            files: prompts.len() + example_files.len() + provenance.len(),
            options,
            prompts: metas,
            examples,
            manifests,
            indexes: OnceLock::new(),
            rules,
            drafts,
            turns_by_name,
            default_turns,
        })
    }

    /// The shingle table and the entity automaton, built on the first call. Call it on the thread that
    /// starts a parallel scan, before the scan: a rayon worker that built them here could, while waiting
    /// for its own parallel build, pick up a scan job that asks for them again.
    pub fn indexes(&self) -> &OverlapIndexes {
        self.indexes.get_or_init(|| {
            let (shingles, entities) = rayon::join(
                || build_shingles(&self.examples, &self.options),
                || EntityIndex::build(example_texts(&self.examples)),
            );
            OverlapIndexes { shingles, entities }
        })
    }

    /// Leading non-system turns of a request that belong to the served prompt (its rendered examples).
    pub fn rendered_turns(&self, prompt_name: Option<&str>) -> usize {
        prompt_name.and_then(|n| self.turns_by_name.get(n).copied()).unwrap_or(self.default_turns)
    }

    /// The manifest entry of an example, with the manifest's path.
    pub fn provenance_of(&self, example: &ExampleRef) -> Option<(&ProvenanceEntry, &Manifest, usize)> {
        manifest_entry(&self.manifests, example)
    }
}

fn prompt_meta(p: &PromptInput) -> PromptMeta {
    PromptMeta {
        path: p.path.clone(),
        name: p.name.clone(),
        rendered_turns: p.rendered_turns,
        scope: p.scope.clone(),
        deployed_at: p.deployed_at,
    }
}

/// A record that names no known prompt: with one prompt, that prompt's count; with several, the
/// largest (the last message of a request is never skipped, see `tracescan`).
fn default_turns(metas: &[PromptMeta]) -> usize {
    metas.iter().map(|m| m.rendered_turns).max().unwrap_or(0)
}

/// An examples file of the scan.
struct ExamplesFile<'p> {
    file: &'p SourceFile,
    /// Its items, if a prompt's caller had them parsed already.
    parsed: Option<Vec<serde_json::Value>>,
    /// The prompts that use it.
    users: Vec<usize>,
}

/// Examples files, each once, with the prompts that use it; `parsed` holds each prompt's
/// `parsed_examples` (taken).
fn collect_example_files<'p>(
    prompts: &'p [PromptInput],
    parsed: &mut [Option<Vec<serde_json::Value>>],
) -> Vec<ExamplesFile<'p>> {
    let mut files: Vec<ExamplesFile<'p>> = Vec::new();
    for (i, p) in prompts.iter().enumerate() {
        let Some(ex) = &p.examples else { continue };
        match files.iter_mut().find(|f| f.file.path == ex.path) {
            Some(f) => {
                f.users.push(i);
                // Items of the same file, parsed the same way, are the same: any prompt's will do.
                f.parsed = f.parsed.take().or_else(|| parsed[i].take());
            }
            None => files.push(ExamplesFile { file: ex, parsed: parsed[i].take(), users: vec![i] }),
        }
    }
    files
}

/// An examples file parsed, and what its text holds.
struct ScannedExamples {
    examples: Vec<Example>,
    drafts: Vec<Draft>,
}

fn scan_examples_file(rules: &SecretRules, file: &mut ExamplesFile<'_>) -> Result<ScannedExamples, ScanError> {
    let examples = parse_examples(&file.file.path, &file.file.text, file.parsed.take())?;
    let drafts = scan_text_file(rules, &file.file.path, &file.file.text, Some(&examples));
    Ok(ScannedExamples { examples, drafts })
}

fn example_refs(file: &SourceFile, parsed: Vec<Example>, users: &[usize], metas: &[PromptMeta]) -> Vec<ExampleRef> {
    let lines = LineIndex::new(&file.text);
    let deployed_at = users.iter().filter_map(|&i| metas[i].deployed_at).min();
    parsed
        .into_iter()
        .map(|example| {
            let offset = example.fields.first().map_or(example.span.start, |f| f.offset);
            let (line, column) = lines.position(&file.text, offset);
            ExampleRef { path: file.path.clone(), example, line, column, prompts: users.to_vec(), deployed_at }
        })
        .collect()
}

fn example_texts(examples: &[ExampleRef]) -> impl Iterator<Item = (u32, &str)> {
    examples.iter().enumerate().flat_map(|(i, e)| e.example.fields.iter().map(move |f| (i as u32, f.text.as_str())))
}

fn build_shingles(examples: &[ExampleRef], options: &ScanOptions) -> ShingleIndex {
    let fields: Vec<(u32, &str)> = example_texts(examples).collect();
    let texts = fields
        .par_iter()
        .map(|&(example, text)| {
            let mut words = Words::default();
            words.fill(text);
            IndexedText { example, words }
        })
        .collect();
    ShingleIndex::build(texts, options.shingle_words, options.max_postings)
}

/// Secrets and PII in one file, template expressions masked; positions are those of the file.
fn scan_text_file(rules: &SecretRules, path: &str, text: &str, examples: Option<&[Example]>) -> Vec<Draft> {
    let mut out = Vec::new();
    let masked = mask_template(text);
    let lines = LineIndex::new(text);
    let example_at =
        |offset: usize| examples.and_then(|exs| exs.iter().find(|e| e.span.contains(&offset)).map(|e| e.id.clone()));
    for m in rules.find(&masked) {
        let rule = &rules.rules()[m.rule];
        let (line, column) = lines.position(text, m.span.start);
        out.push(Draft {
            kind: FindingKind::Secret,
            rule: rule.id.clone(),
            severity: rule.severity,
            path: path.to_string(),
            line,
            column,
            example_id: example_at(m.span.start),
            tenants: Vec::new(),
            preview: rules.preview(m.rule, m.value),
            message: format!("{} in a prompt or few-shot file", rule.description),
            value: m.value.to_string(),
        });
    }
    for m in find_pii(&masked) {
        let value = &masked[m.span.clone()];
        let (line, column) = lines.position(text, m.span.start);
        out.push(Draft {
            kind: FindingKind::Pii,
            rule: m.kind.rule().to_string(),
            severity: m.severity,
            path: path.to_string(),
            line,
            column,
            example_id: example_at(m.span.start),
            tenants: Vec::new(),
            preview: preview(value, m.kind.redaction()),
            message: m.kind.description().to_string(),
            value: normalize_pii_value(value),
        });
    }
    out
}

/// The same card or phone number written with other spacing must hash alike.
fn normalize_pii_value(value: &str) -> String {
    if value.contains('@') {
        return value.to_lowercase();
    }
    value.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '.').collect()
}

fn unconfigured_scope(prompt: &PromptInput) -> Draft {
    Draft {
        kind: FindingKind::Provenance,
        rule: "scope.unconfigured".to_string(),
        severity: Severity::Medium,
        path: prompt.path.clone(),
        line: 1,
        column: 1,
        example_id: None,
        tenants: Vec::new(),
        preview: prompt.path.clone(),
        message: "no [[scan.prompts]] scope is configured for this prompt: the tenants it is served to are unknown, so cross-tenant checks assume everyone".to_string(),
        value: format!("scope:{}", prompt.path),
    }
}

fn manifest_entry<'m>(
    manifests: &'m [Manifest],
    example: &ExampleRef,
) -> Option<(&'m ProvenanceEntry, &'m Manifest, usize)> {
    let dir = parent_dir(&example.path);
    manifests
        .iter()
        .filter(|m| m.dir == dir)
        .find_map(|m| m.entries.iter().find(|(e, _)| e.id == example.example.id).map(|(e, offset)| (e, m, *offset)))
}

fn check_provenance(examples: &[ExampleRef], prompts: &[PromptMeta], manifests: &[Manifest], out: &mut Vec<Draft>) {
    for example in examples {
        match manifest_entry(manifests, example) {
            None => out.push(missing_entry(example)),
            Some((entry, manifest, offset)) => {
                out.extend(check_entry(example, entry, manifest, offset, prompts));
            }
        }
    }
    // One set of (directory, id), not a pass over every example per entry: that was quadratic (tens of
    // seconds for a 10 MB prompt repo of 23,000 examples).
    let present: std::collections::HashSet<(&str, &str)> =
        examples.iter().map(|e| (parent_dir(&e.path), e.example.id.as_str())).collect();
    for manifest in manifests {
        for (entry, offset) in &manifest.entries {
            let used = present.contains(&(manifest.dir.as_str(), entry.id.as_str()));
            if !used {
                out.push(orphan_entry(manifest, entry, *offset));
            }
        }
    }
}

fn example_draft(example: &ExampleRef, rule: &str, severity: Severity, message: String) -> Draft {
    Draft {
        kind: FindingKind::Provenance,
        rule: rule.to_string(),
        severity,
        path: example.path.clone(),
        line: example.line,
        column: example.column,
        example_id: Some(example.example.id.clone()),
        tenants: Vec::new(),
        preview: example.example.id.clone(),
        message,
        value: format!("{rule}:{}", example.example.id),
    }
}

/// A draft positioned at a manifest entry.
pub fn manifest_draft(
    manifest: &Manifest,
    offset: usize,
    id: &str,
    rule: &str,
    severity: Severity,
    message: String,
) -> Draft {
    // Manifests are small; the line index is rebuilt for the few findings that point into one.
    let text = manifest.text.as_str();
    let (line, column) = LineIndex::new(text).position(text, offset);
    Draft {
        kind: FindingKind::Provenance,
        rule: rule.to_string(),
        severity,
        path: manifest.path.clone(),
        line,
        column,
        example_id: Some(id.to_string()),
        tenants: Vec::new(),
        preview: id.to_string(),
        message,
        value: format!("{rule}:{id}"),
    }
}

fn missing_entry(example: &ExampleRef) -> Draft {
    example_draft(
        example,
        "provenance.missing_entry",
        Severity::Medium,
        "example has no entry in the provenance.yaml of its directory".to_string(),
    )
}

fn orphan_entry(manifest: &Manifest, entry: &ProvenanceEntry, offset: usize) -> Draft {
    manifest_draft(
        manifest,
        offset,
        &entry.id,
        "provenance.orphan_entry",
        Severity::Low,
        "manifest entry names no example of this directory".to_string(),
    )
}

fn check_entry(
    example: &ExampleRef,
    entry: &ProvenanceEntry,
    manifest: &Manifest,
    offset: usize,
    prompts: &[PromptMeta],
) -> Vec<Draft> {
    let mut out = Vec::new();
    if entry.source != Source::MinedTrace {
        return out;
    }
    let blank = |v: &Option<String>| v.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank(&entry.redaction) || blank(&entry.approved_by) {
        out.push(manifest_draft(
            manifest,
            offset,
            &entry.id,
            "provenance.unapproved_mining",
            Severity::High,
            "example mined from traces without a redaction record and an approver".to_string(),
        ));
    }
    let Some(tenant) = entry.source_tenant.as_deref().filter(|t| !t.trim().is_empty()) else {
        out.push(manifest_draft(
            manifest,
            offset,
            &entry.id,
            "provenance.missing_tenant",
            Severity::Medium,
            "example mined from traces does not name its source tenant".to_string(),
        ));
        return out;
    };
    let served_elsewhere =
        example.prompts.iter().any(|&p| prompts[p].served_tenants().is_none_or(|s| s.iter().any(|t| t != tenant)));
    if served_elsewhere {
        out.push(example_draft(
            example,
            "provenance.cross_tenant",
            Severity::High,
            format!(
                "example mined from one tenant's traces is in a prompt served to other tenants (scope of {})",
                scope_names(example, prompts)
            ),
        ));
    }
    out
}

fn scope_names(example: &ExampleRef, prompts: &[PromptMeta]) -> String {
    example.prompts.iter().map(|&p| prompts[p].path.as_str()).collect::<Vec<_>>().join(", ")
}
