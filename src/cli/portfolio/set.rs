//! `promptctl portfolio set FILE`: validate a portfolio file and record it as the next version.

use std::collections::BTreeMap;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::super::context::{Context, actor};
use super::super::error::{CliError, CmdResult, Exit};
use super::super::prompt::resolve;
use super::weight_map;
use crate::diag::read_text_file;
use crate::portfolio::spec::{ParsedFile, Portfolio};
use crate::store::{NewPortfolioVersion, OpenMode, PortfolioVersion, Store};

/// Validate a portfolio file and record it as a new portfolio version (who, when, why)
#[derive(Debug, Args)]
#[command(after_help = "\
Every variant's `version:` (a label or a version id) must resolve to a committed version of the
portfolio's prompt; the resolved id is recorded, so the history stays exact when a label moves later.
Weights must sum to 1 per segment (within 1e-9); --normalize rescales them with a warning instead.
A file identical to the current version records nothing. Format: docs/portfolios.md.

Examples:
  promptctl portfolio set portfolios/support-reply.yaml
  promptctl portfolio set portfolios/triage.yaml --reason \"add the stepwise variant\"")]
pub struct SetArgs {
    /// The portfolio YAML file
    pub file: PathBuf,

    /// Rescale weights that do not sum to 1 (with a warning) instead of refusing them
    #[arg(long)]
    pub normalize: bool,

    /// Why, kept in the portfolio's history
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    portfolio: String,
    prompt: String,
    version: i64,
    changed: bool,
    variants: Vec<VariantEntry>,
    segments: Vec<SegmentEntry>,
    warnings: Vec<String>,
}

#[derive(Serialize)]
struct VariantEntry {
    key: String,
    version_ref: String,
    version: String,
}

#[derive(Serialize)]
struct SegmentEntry {
    segment: String,
    weights: BTreeMap<String, f64>,
}

pub fn run(ctx: &mut Context, args: SetArgs) -> CmdResult {
    let path = ctx.cwd().join(&args.file);
    let shown = ctx.display_path(&path);
    let text = read_text_file(&path, &shown)?;
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let reason = args.reason.clone().unwrap_or_else(|| format!("set from {shown}"));
    let recorded = record(&mut store, &text, &shown, args.normalize, &actor(), jiff::Timestamp::now(), &reason)?;
    for warning in &recorded.warnings {
        ctx.msg.warn(warning);
    }
    let v = &recorded.version;
    let report = Report {
        schema: "promptctl.portfolio-set/v1",
        portfolio: v.portfolio.clone(),
        prompt: v.prompt.clone(),
        version: v.version,
        changed: recorded.changed,
        variants: v
            .spec
            .variants
            .iter()
            .map(|x| VariantEntry {
                key: x.key.clone(),
                version_ref: x.version_ref.clone(),
                version: x.version.clone(),
            })
            .collect(),
        segments: (0..v.spec.segments.len())
            .map(|s| SegmentEntry { segment: v.spec.segments[s].name.clone(), weights: weight_map(v, s) })
            .collect(),
        warnings: recorded.warnings.clone(),
    };
    if !ctx.out.is_human() {
        ctx.out.document(&report)?;
        return Ok(Exit::Ok);
    }
    let verb = if recorded.changed { "recorded" } else { "unchanged" };
    ctx.out.line(&format!(
        "{verb} {} version {} ({} variants, {} segments)",
        v.portfolio,
        v.version,
        report.variants.len(),
        report.segments.len()
    ))?;
    for variant in &report.variants {
        ctx.out.line(&format!("  {:<12} {} → {}", variant.key, variant.version_ref, variant.version))?;
    }
    Ok(Exit::Ok)
}

/// What `record` did.
pub struct Recorded {
    pub version: PortfolioVersion,
    pub changed: bool,
    pub warnings: Vec<String>,
}

/// Parses, validates and resolves a portfolio file and records it unless it equals the current version.
pub fn record(
    store: &mut Store,
    text: &str,
    shown: &str,
    normalize: bool,
    actor: &str,
    at: jiff::Timestamp,
    reason: &str,
) -> Result<Recorded, CliError> {
    let parsed = ParsedFile::parse(text, shown, normalize)?;
    let (portfolio, warnings) = parsed.resolve(|prompt, reference| resolve_variant(store, prompt, reference))?;
    let current = store.current_portfolio(&portfolio.name)?;
    if let Some(current) = current.filter(|c| same(&c.spec, &portfolio)) {
        return Ok(Recorded { version: current, changed: false, warnings });
    }
    let version = store.record_portfolio_version(&NewPortfolioVersion {
        spec: &portfolio,
        change: "set",
        reason: Some(reason),
        actor,
        at,
        source_path: Some(shown),
        expect_current: None,
    })?;
    Ok(Recorded { version, changed: true, warnings })
}

fn same(a: &Portfolio, b: &Portfolio) -> bool {
    serde_json::to_value(a).ok() == serde_json::to_value(b).ok()
}

/// Resolves a variant's `version:` like `prompt show NAME@REF`, and says so when the ref is a version
/// of another prompt.
pub fn resolve_variant(store: &Store, prompt: &str, reference: &str) -> Result<String, (String, Option<String>)> {
    match resolve(store, prompt, Some(reference)) {
        Ok(resolved) => Ok(resolved.version.version_id),
        Err(e) => {
            if let Some(message) = other_prompt(store, prompt, reference) {
                return Err((
                    message,
                    Some(format!("a portfolio of `{prompt}` can only serve versions of `{prompt}`")),
                ));
            }
            Err((e.message, e.hints.first().cloned()))
        }
    }
}

/// "`9e1c…` is a version of `triage`, not of `support-reply`", when that is the case.
pub fn other_prompt(store: &Store, prompt: &str, reference: &str) -> Option<String> {
    if reference.len() < 4 || !reference.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let owners: Vec<(String, String)> = store.versions_with_prefix_anywhere(reference).ok()?;
    let others: Vec<&(String, String)> = owners.iter().filter(|(name, _)| name != prompt).collect();
    let (name, id) = others.first()?;
    if owners.iter().any(|(name, _)| name == prompt) {
        return None;
    }
    Some(format!("`{reference}` is version {id} of prompt `{name}`, not a version of `{prompt}`"))
}
