//! `promptctl portfolio observe NAME --outcomes FILE`: import exposures and outcomes for rebalancing.

use std::collections::BTreeSet;
use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::current;
use crate::portfolio::observe::{Checked, Event, LineError, Observation, check, parse_line};
use crate::store::{DerivedObservation, ImportCounts, OpenMode, PortfolioVersion, Store};

/// Import exposures and outcomes (JSONL), or derive them from stored traces and eval runs
#[derive(Debug, Args)]
#[command(after_help = "\
Each line: {\"ts\":\"2026-11-02T10:00:00Z\",\"unit\":\"u-1\",\"variant\":\"concise\",\"segment\":\"default\",
\"resolved\":1,\"cost_usd\":0.0021}. Number fields are metrics (the portfolio's objective is one). Add
\"event\":\"exposure\" or \"event\":\"outcome\" to log them apart; an outcome needs an earlier exposure of its
unit. Re-importing a line adds nothing (key: its `id`, else a hash of its content). A file with bad lines
imports nothing unless --skip-bad. Format: docs/portfolios.md.

--from-traces reads stored request rows of the portfolio's prompt whose prompt.version is a variant's
version (unit: the conversation id; metrics ok, latency_ms, output_tokens). --from-evals reads eval
samples of runs at a variant's version (metric pass; excluded from the sample-ratio test).

Examples:
  promptctl portfolio observe support-reply --outcomes outcomes-2026-w45.jsonl
  promptctl portfolio observe support-reply --from-traces --segment default")]
pub struct ObserveArgs {
    /// Portfolio name
    pub name: String,

    /// JSONL files of exposures and outcomes
    #[arg(long = "outcomes", value_name = "FILE")]
    pub outcomes: Vec<PathBuf>,

    /// Derive observations from stored request rows that carry prompt.version
    #[arg(long)]
    pub from_traces: bool,

    /// Derive observations from stored eval samples
    #[arg(long)]
    pub from_evals: bool,

    /// Segment for derived observations
    #[arg(long, default_value = crate::portfolio::spec::DEFAULT_SEGMENT)]
    pub segment: String,

    /// Import the good lines of a file with bad ones (the bad ones are reported)
    #[arg(long)]
    pub skip_bad: bool,
}

#[derive(Debug, Serialize)]
pub struct SourceReport {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub lines: usize,
    pub exposures: u64,
    pub outcomes: u64,
    pub duplicates: u64,
    pub errors: Vec<LineError>,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub portfolio: String,
    pub sources: Vec<SourceReport>,
    pub exposures: u64,
    pub outcomes: u64,
    pub duplicates: u64,
    /// Outcomes imported without the portfolio's objective (the rebalancer will not see them).
    pub without_objective: u64,
}

const MAX_REPORTED: usize = 20;

pub fn run(ctx: &mut Context, args: ObserveArgs) -> CmdResult {
    if args.outcomes.is_empty() && !args.from_traces && !args.from_evals {
        return Err(
            CliError::input("nothing to import").with_hint("pass --outcomes FILE, --from-traces or --from-evals")
        );
    }
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let version = current(&store, &args.name)?;
    let mut sources = Vec::new();
    let mut failed = false;
    for file in &args.outcomes {
        let path = ctx.cwd().join(file);
        let shown = ctx.display_path(&path);
        let lines = read_lines(&path, &shown)?;
        let report = import_lines(&mut store, &version, &lines, Some(shown.clone()), args.skip_bad)?;
        for e in report.errors.iter().take(MAX_REPORTED) {
            let at = e.column.map_or(format!("{shown}:{}", e.line), |c| format!("{shown}:{}:{c}", e.line));
            ctx.msg.warn(&format!("{at}: {}", e.message));
        }
        failed |= !report.errors.is_empty() && !args.skip_bad;
        sources.push(report);
    }
    if args.from_traces && !failed {
        let rows = store.trace_observations(&version.prompt, &versions(&version))?;
        sources.push(import_derived(&mut store, &version, rows, "trace", &args.segment)?);
    }
    if args.from_evals && !failed {
        let rows = store.eval_observations(&version.prompt, &versions(&version))?;
        sources.push(import_derived(&mut store, &version, rows, "eval", &args.segment)?);
    }
    let (report, metric_names) = summarize(&store, &version, sources)?;
    if report.without_objective > 0 {
        ctx.msg.warn(&objective_warning(&version, report.without_objective, &metric_names));
    }
    if ctx.out.is_human() {
        for s in &report.sources {
            let name = s.path.clone().unwrap_or_else(|| s.source.clone());
            ctx.out.line(&format!(
                "{name}: {} lines, {} new exposures, {} new outcomes, {} duplicates, {} bad",
                s.lines,
                s.exposures,
                s.outcomes,
                s.duplicates,
                s.errors.len()
            ))?;
        }
    } else {
        ctx.out.document(&report)?;
    }
    if failed {
        let bad: usize = report.sources.iter().map(|s| s.errors.len()).sum();
        return Err(CliError::input(format!(
            "{bad} bad line(s): nothing was imported from the file(s) with bad lines"
        ))
        .with_hint("fix the lines above, or pass --skip-bad to import the good ones"));
    }
    Ok(Exit::Ok)
}

fn versions(version: &PortfolioVersion) -> Vec<String> {
    version.spec.variants.iter().map(|v| v.version.clone()).collect::<BTreeSet<_>>().into_iter().collect()
}

/// (line number, text) of the non-blank lines.
fn read_lines(path: &std::path::Path, shown: &str) -> Result<Vec<(usize, String)>, CliError> {
    let file = std::fs::File::open(path).map_err(|e| {
        CliError::input(match e.kind() {
            std::io::ErrorKind::NotFound => format!("{shown}: file not found"),
            _ => format!("{shown}: cannot read: {e}"),
        })
    })?;
    let mut lines = Vec::new();
    for (i, line) in std::io::BufReader::new(file).split(b'\n').enumerate() {
        let line = line.map_err(|e| CliError::input(format!("{shown}: {e}")))?;
        let text = String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(&line)).into_owned();
        if !text.trim().is_empty() {
            lines.push((i + 1, text));
        }
    }
    Ok(lines)
}

/// Every variant key any version of the portfolio had: data may predate the current version.
fn known_variants(store: &Store, version: &PortfolioVersion) -> Result<Vec<String>, CliError> {
    let mut keys: Vec<String> = version.spec.variants.iter().map(|v| v.key.clone()).collect();
    for v in store.portfolio_versions(&version.portfolio)? {
        for variant in v.spec.variants {
            if !keys.contains(&variant.key) {
                keys.push(variant.key);
            }
        }
    }
    Ok(keys)
}

/// Parses, checks and (when clean, or with `skip_bad`) stores JSONL lines.
pub fn import_lines(
    store: &mut Store,
    version: &PortfolioVersion,
    lines: &[(usize, String)],
    path: Option<String>,
    skip_bad: bool,
) -> Result<SourceReport, CliError> {
    let mut errors = Vec::new();
    let mut parsed: Vec<Observation> = Vec::new();
    for (number, text) in lines {
        match parse_line(text, *number) {
            Ok(obs) => parsed.push(obs),
            Err(e) => errors.push(e),
        }
    }
    let outcome_units: Vec<&str> = parsed
        .iter()
        .filter(|o| o.event == Event::Outcome)
        .map(|o| o.unit.as_str())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let known = store.known_exposures(&version.portfolio, &outcome_units)?;
    let (checked, check_errors) = check(&version.spec, &known_variants(store, version)?, parsed, &known);
    errors.extend(check_errors);
    errors.sort_by_key(|e| e.line);
    if lines.is_empty() {
        return Err(CliError::input(format!("{}: no lines to import (the file is empty)", path.unwrap_or_default())));
    }
    let counts = if errors.is_empty() || skip_bad {
        store.insert_observations(&version.portfolio, "file", &checked)?
    } else {
        ImportCounts::default()
    };
    Ok(SourceReport {
        source: "file".into(),
        path,
        lines: lines.len(),
        exposures: counts.exposures,
        outcomes: counts.outcomes,
        duplicates: counts.duplicates,
        errors,
    })
}

fn import_derived(
    store: &mut Store,
    version: &PortfolioVersion,
    rows: Vec<DerivedObservation>,
    source: &str,
    segment: &str,
) -> Result<SourceReport, CliError> {
    let spec = &version.spec;
    if spec.segment_index(segment).is_none() {
        return Err(CliError::input(format!("unknown segment `{segment}` for --segment")));
    }
    let lines = rows.len();
    let mut errors = Vec::new();
    let mut checked = Vec::new();
    for (i, row) in rows.into_iter().enumerate() {
        let keys: Vec<&str> =
            spec.variants.iter().filter(|v| v.version == row.version).map(|v| v.key.as_str()).collect();
        let [variant] = keys.as_slice() else {
            errors.push(LineError {
                line: i + 1,
                column: None,
                message: format!(
                    "version {} is served by several variants ({}); skipped",
                    row.version,
                    keys.join(", ")
                ),
            });
            continue;
        };
        checked.push(Checked {
            variant: variant.to_string(),
            segment: segment.to_string(),
            observation: Observation {
                line: i + 1,
                event: Event::Both,
                ts_ms: row.ts_ms,
                unit: row.unit,
                variant: Some(variant.to_string()),
                segment: Some(segment.to_string()),
                attrs: None,
                metrics: row.metrics,
                cost_usd: row.cost_usd,
                key: row.key,
            },
        });
    }
    let counts = store.insert_observations(&version.portfolio, source, &checked)?;
    Ok(SourceReport {
        source: source.into(),
        path: None,
        lines,
        exposures: counts.exposures,
        outcomes: counts.outcomes,
        duplicates: counts.duplicates,
        errors,
    })
}

/// The report, and the names of the metrics stored (for the objective warning).
fn summarize(
    store: &Store,
    version: &PortfolioVersion,
    sources: Vec<SourceReport>,
) -> Result<(Report, Vec<String>), CliError> {
    let metrics = store.outcome_metrics(&version.portfolio, &version.spec.rebalance.objective)?;
    let report = Report {
        schema: "promptctl.portfolio-observe/v1",
        portfolio: version.portfolio.clone(),
        exposures: sources.iter().map(|s| s.exposures).sum(),
        outcomes: sources.iter().map(|s| s.outcomes).sum(),
        duplicates: sources.iter().map(|s| s.duplicates).sum(),
        without_objective: metrics.without_objective,
        sources,
    };
    Ok((report, metrics.names))
}

fn objective_warning(version: &PortfolioVersion, count: u64, names: &[String]) -> String {
    let objective = &version.spec.rebalance.objective;
    let near = crate::suggest::nearest(objective, names.iter().map(String::as_str))
        .filter(|n| *n != objective)
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default();
    format!(
        "{count} stored outcome(s) of {} have no `{objective}` (the objective) and will not count in a rebalance{near} (metrics seen: {})",
        version.portfolio,
        names.join(", ")
    )
}
