//! `promptctl portfolio show NAME`: current weights per segment and the history of changes.

use std::collections::BTreeMap;

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::{current, fmt_weight, human_time, weight_map};
use crate::store::OpenMode;

/// Current weights per segment, the segment rules, and every change (set, rebalance, rollback) with its reason
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  promptctl portfolio show support-reply\n  promptctl portfolio show support-reply --format json | jq '.history[-1]'"
)]
pub struct ShowArgs {
    /// Portfolio name
    pub name: String,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    portfolio: String,
    prompt: String,
    version: i64,
    seed: String,
    hash_attribute: String,
    hash_version: u32,
    coverage: f64,
    variants: Vec<Variant>,
    segments: Vec<Segment>,
    rebalance: crate::portfolio::spec::RebalanceConfig,
    history: Vec<Change>,
}

#[derive(Serialize)]
struct Variant {
    key: String,
    version_ref: String,
    version: String,
}

#[derive(Serialize)]
struct Segment {
    segment: String,
    /// The rule as a GrowthBook condition; null for the default segment.
    when: Option<serde_json::Value>,
    weights: BTreeMap<String, f64>,
}

#[derive(Serialize)]
struct Change {
    version: i64,
    change: String,
    reason: Option<String>,
    actor: String,
    at: String,
    variants: BTreeMap<String, String>,
    segments: Vec<Segment>,
}

pub fn run(ctx: &mut Context, args: ShowArgs) -> CmdResult {
    let store = ctx.open_store(OpenMode::MustExist)?;
    let now = current(&store, &args.name)?;
    let versions = store.portfolio_versions(&args.name)?;
    let segments = |v: &crate::store::PortfolioVersion| -> Vec<Segment> {
        (0..v.spec.segments.len())
            .map(|s| Segment {
                segment: v.spec.segments[s].name.clone(),
                when: v.spec.segments[s].when.as_ref().map(|r| r.to_growthbook()),
                weights: weight_map(v, s),
            })
            .collect()
    };
    let spec = &now.spec;
    let report = Report {
        schema: "promptctl.portfolio-show/v1",
        portfolio: now.portfolio.clone(),
        prompt: now.prompt.clone(),
        version: now.version,
        seed: spec.seed.clone(),
        hash_attribute: spec.hash_attribute.clone(),
        hash_version: spec.hash_version,
        coverage: spec.coverage,
        variants: spec
            .variants
            .iter()
            .map(|v| Variant { key: v.key.clone(), version_ref: v.version_ref.clone(), version: v.version.clone() })
            .collect(),
        segments: segments(&now),
        rebalance: spec.rebalance.clone(),
        history: versions
            .iter()
            .map(|v| Change {
                version: v.version,
                change: v.change.clone(),
                reason: v.reason.clone(),
                actor: v.actor.clone(),
                at: v.created_at.clone(),
                variants: v.spec.variants.iter().map(|x| (x.key.clone(), x.version.clone())).collect(),
                segments: segments(v),
            })
            .collect(),
    };
    if !ctx.out.is_human() {
        ctx.out.document(&report)?;
        return Ok(Exit::Ok);
    }
    let heading = format!("{} (prompt {}) version {}", report.portfolio, report.prompt, report.version);
    ctx.out.line(&ctx.out.paint(Style::Bold, &heading))?;
    ctx.out.line(&format!(
        "seed {} · hash v{} on {} · coverage {}",
        report.seed, report.hash_version, report.hash_attribute, report.coverage
    ))?;
    ctx.out.line("")?;
    let mut header = vec!["SEGMENT".to_string(), "WHEN".to_string()];
    header.extend(report.variants.iter().map(|v| format!("{} ({})", v.key, &v.version[..v.version.len().min(12)])));
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    let mut t = table(&header, ctx.out.color);
    for s in &report.segments {
        let mut row = vec![s.segment.clone(), s.when.as_ref().map_or("(everyone else)".into(), |w| w.to_string())];
        row.extend(report.variants.iter().map(|v| fmt_weight(s.weights[&v.key])));
        t.add_row(row);
    }
    ctx.out.line(&table_text(&t))?;
    ctx.out.line("")?;
    let mut t = table(&["VERSION", "WHEN (UTC)", "CHANGE", "BY", "WEIGHTS", "REASON"], ctx.out.color);
    for change in report.history.iter().rev() {
        let weights = change
            .segments
            .iter()
            .map(|s| {
                let ws =
                    s.weights.iter().map(|(k, w)| format!("{k} {}", fmt_weight(*w))).collect::<Vec<_>>().join(", ");
                format!("{}: {ws}", s.segment)
            })
            .collect::<Vec<_>>()
            .join("\n");
        t.add_row([
            change.version.to_string(),
            human_time(&change.at),
            change.change.clone(),
            change.actor.clone(),
            weights,
            change.reason.clone().unwrap_or_default(),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    Ok(Exit::Ok)
}
