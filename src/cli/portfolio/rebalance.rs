//! `promptctl portfolio rebalance NAME [--apply]`: propose (or record) new weights, with the evidence.

use clap::Args;
use serde::Serialize;

use super::super::context::{Context, actor};
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::{current, fmt_weight, rfc3339};
use crate::portfolio::rebalance::{ArmData, RebalanceOutcome, SegmentData, SegmentReport, SrmInput, rebalance};
use crate::portfolio::spec::{Portfolio, parse_window};
use crate::store::{NewPortfolioVersion, OpenMode, PortfolioVersion, Store};

/// Propose new weights from the outcomes in the window (Thompson sampling, top-two), or record them with --apply
#[derive(Debug, Args)]
#[command(after_help = "\
Per segment × variant: a Beta-Bernoulli posterior for 0/1 objectives, else normal-inverse-gamma; P(best)
from joint posterior draws with a fixed seed; top-two Thompson allocation with the portfolio's min_weight
floor, max_shift limit and min_samples hold. First, a chi-square sample-ratio test of the exposures in
the window against the weights that were in force: p < 0.001 refuses the rebalance (exit 1), because
the assignment or logging pipeline is broken, not the prompt. Quarantined data (see `rollback`) is left
out of the posteriors. Method and defaults: docs/portfolios.md.

Examples:
  promptctl portfolio rebalance support-reply
  promptctl portfolio rebalance support-reply --apply --reason \"weekly rebalance\"
  promptctl portfolio rebalance support-reply --window 14d --until 2026-11-30T00:00:00Z --format json")]
pub struct RebalanceArgs {
    /// Portfolio name
    pub name: String,

    /// Record the new weights as the next portfolio version
    #[arg(long)]
    pub apply: bool,

    /// Observation window ending at --until [default: the portfolio's rebalance.window, 7d]
    #[arg(long, value_name = "DURATION")]
    pub window: Option<String>,

    /// End of the window, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,

    /// Seed of the posterior draws [default: derived from the portfolio name and version]
    #[arg(long)]
    pub seed: Option<u64>,

    /// Why, kept in the portfolio's history (with --apply)
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub portfolio: String,
    pub applied: bool,
    pub version_from: i64,
    pub version_to: Option<i64>,
    pub window: [String; 2],
    pub objective: String,
    pub cost_weight: f64,
    pub reward_model: &'static str,
    pub seed: u64,
    pub draws: u32,
    pub srm: Srm,
    pub segments: Vec<SegmentReport>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Srm {
    pub p_value: Option<f64>,
    pub ok: bool,
    pub threshold: f64,
}

/// What the rebalancer computed, and the portfolio it would change.
pub struct Computed {
    pub report: Report,
    pub outcome: RebalanceOutcome,
    pub version: PortfolioVersion,
}

pub fn run(ctx: &mut Context, args: RebalanceArgs) -> CmdResult {
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let until = match &args.until {
        Some(text) => text
            .parse::<jiff::Timestamp>()
            .map_err(|e| CliError::input(format!("--until {text:?} is not an RFC 3339 time: {e}")))?,
        None => jiff::Timestamp::now(),
    };
    let mut computed = compute(&store, &args.name, until.as_millisecond(), args.window.as_deref(), args.seed)?;
    if args.apply && computed.outcome.srm_ok {
        let reason = args
            .reason
            .clone()
            .unwrap_or_else(|| format!("rebalance over {} – {}", computed.report.window[0], computed.report.window[1]));
        if let Some(v) = apply(&mut store, &computed, &actor(), jiff::Timestamp::now(), &reason)? {
            computed.report.applied = true;
            computed.report.version_to = Some(v.version);
        }
    }
    print(ctx, &computed.report)?;
    if !computed.outcome.srm_ok {
        ctx.msg.error(
            &format!(
                "sample-ratio mismatch in {} (p = {:.2e} < 0.001): refusing to rebalance",
                args.name,
                computed.report.srm.p_value.unwrap_or(0.0)
            ),
            &[
                "the exposures do not match the weights in force: the assignment or logging pipeline is broken, not the prompt".into(),
                "compare `portfolio assign` with what the app serves, and look for lost, duplicated or filtered exposures".into(),
            ],
        );
        return Ok(Exit::CheckFailed);
    }
    if args.apply && !computed.report.applied {
        ctx.msg.note("no weight moved: nothing recorded");
    }
    Ok(Exit::Ok)
}

/// Gathers the window's exposures and outcomes and runs the rebalancer; writes nothing.
pub fn compute(
    store: &Store,
    name: &str,
    until_ms: i64,
    window: Option<&str>,
    seed: Option<u64>,
) -> Result<Computed, CliError> {
    let version = current(store, name)?;
    let spec = &version.spec;
    let window_text = window.unwrap_or(&spec.rebalance.window);
    let window_ms = parse_window(window_text)
        .ok_or_else(|| CliError::input(format!("--window {window_text:?} is not a duration like 7d, 36h or 90m")))?;
    let start_ms = until_ms - window_ms;
    let history = store.portfolio_versions(name)?;
    let exposures = store.exposures_in_window(name, start_ms, until_ms)?;
    let outcomes = store.outcomes_in_window(name, &spec.rebalance.objective, start_ms, until_ms)?;
    let mut segments: Vec<SegmentData> = spec
        .segments
        .iter()
        .map(|s| SegmentData {
            segment: s.name.clone(),
            arms: spec
                .variants
                .iter()
                .zip(&s.weights)
                .map(|(v, w)| ArmData { variant: v.key.clone(), weight_from: *w, ..ArmData::default() })
                .collect(),
            srm: SrmInput { observed: vec![0; spec.variants.len()], expected_shares: vec![0.0; spec.variants.len()] },
        })
        .collect();
    for e in &exposures {
        let (Some(s), Some(v)) = (spec.segment_index(&e.segment), spec.variant_index(&e.variant)) else { continue };
        segments[s].srm.observed[v] += 1;
        add_expected(&mut segments[s].srm.expected_shares, in_force(&history, e.ts_ms), &e.segment, spec);
        if !e.quarantined {
            segments[s].arms[v].exposures += 1;
        }
    }
    for segment in &mut segments {
        let total: f64 = segment.srm.expected_shares.iter().sum();
        if total > 0.0 {
            segment.srm.expected_shares.iter_mut().for_each(|x| *x /= total);
        } else {
            segment.srm.expected_shares = segment.arms.iter().map(|a| a.weight_from).collect();
        }
    }
    for o in &outcomes {
        let (Some(s), Some(v), Some(reward)) =
            (spec.segment_index(&o.segment), spec.variant_index(&o.variant), o.objective)
        else {
            continue;
        };
        segments[s].arms[v].rewards.push(reward);
        if let Some(cost) = o.cost_usd {
            segments[s].arms[v].costs.push(cost);
        }
    }
    let seed = seed.unwrap_or_else(|| default_seed(name, version.version));
    let outcome = rebalance(&spec.rebalance, &segments, seed);
    let report = Report {
        schema: "promptctl.rebalance/v1",
        portfolio: name.to_string(),
        applied: false,
        version_from: version.version,
        version_to: None,
        window: [rfc3339(start_ms), rfc3339(until_ms)],
        objective: spec.rebalance.objective.clone(),
        cost_weight: spec.rebalance.cost_weight,
        reward_model: outcome.reward_model,
        seed,
        draws: spec.rebalance.draws,
        srm: Srm {
            p_value: outcome.srm_min_p_value,
            ok: outcome.srm_ok,
            threshold: crate::portfolio::srm::SRM_ALARM_P_VALUE,
        },
        segments: outcome.segments.clone(),
    };
    Ok(Computed { report, outcome, version })
}

/// The portfolio version in force at `ts_ms`: the last recorded at or before it (the first, for data
/// older than the portfolio).
fn in_force(history: &[PortfolioVersion], ts_ms: i64) -> &Portfolio {
    let index = history.iter().rposition(|v| v.created_ms <= ts_ms).unwrap_or(0);
    &history[index].spec
}

/// Adds the weights `then` gave this unit's segment, mapped onto the current variant order.
fn add_expected(expected: &mut [f64], then: &Portfolio, segment: &str, now: &Portfolio) {
    let Some(s) = then.segment_index(segment) else { return };
    for (variant, weight) in then.variants.iter().zip(&then.segments[s].weights) {
        if let Some(i) = now.variant_index(&variant.key) {
            expected[i] += weight;
        }
    }
}

/// Stable for a given portfolio version: rerunning a rebalance on the same data gives the same weights.
fn default_seed(name: &str, version: i64) -> u64 {
    u64::from(crate::portfolio::hashing::fnv1a_utf16(&format!("{name}#{version}")))
}

/// Records the proposed weights as a new version; `None` when nothing moved.
pub fn apply(
    store: &mut Store,
    computed: &Computed,
    actor: &str,
    at: jiff::Timestamp,
    reason: &str,
) -> Result<Option<PortfolioVersion>, CliError> {
    if !computed.outcome.srm_ok || !computed.outcome.changed() {
        return Ok(None);
    }
    let mut next = computed.version.spec.clone();
    for segment in &mut next.segments {
        if let Some(weights) = computed.outcome.weights_to(&segment.name) {
            segment.weights = weights;
        }
    }
    let recorded = store.record_portfolio_version(&NewPortfolioVersion {
        spec: &next,
        change: "rebalance",
        reason: Some(reason),
        actor,
        at,
        source_path: None,
        expect_current: Some(computed.version.version),
    })?;
    Ok(Some(recorded))
}

fn print(ctx: &mut Context, report: &Report) -> Result<(), CliError> {
    if !ctx.out.is_human() {
        ctx.out.document(report)?;
        return Ok(());
    }
    let srm = match report.srm.p_value {
        Some(p) => format!("SRM p = {p:.3}{}", if report.srm.ok { "" } else { " — MISMATCH" }),
        None => "SRM: nothing to test".into(),
    };
    ctx.out.line(&ctx.out.paint(
        Style::Bold,
        &format!(
            "{} v{}: {} over {} – {} ({}, {srm})",
            report.portfolio,
            report.version_from,
            report.objective,
            report.window[0],
            report.window[1],
            report.reward_model
        ),
    ))?;
    for segment in &report.segments {
        ctx.out.line("")?;
        let state = match &segment.reason {
            Some(reason) => format!("held: {reason}"),
            None => "moves".into(),
        };
        ctx.out.line(&format!("segment {} — {state}", segment.segment))?;
        let mut t = table(&["VARIANT", "N", "MEAN", "95% INTERVAL", "P(BEST)", "WEIGHT", "NOTE"], ctx.out.color);
        for v in &segment.variants {
            let interval = v.interval.map_or("—".into(), |[lo, hi]| format!("{lo:.3} – {hi:.3}"));
            t.add_row([
                v.variant.clone(),
                v.n.to_string(),
                v.utility_mean.map_or("—".into(), |m| format!("{m:.3}")),
                interval,
                v.p_best.map_or("—".into(), |p| format!("{p:.3}")),
                format!("{} → {}", fmt_weight(v.weight_from), fmt_weight(v.weight_to)),
                v.reason.clone().unwrap_or_default(),
            ]);
        }
        ctx.out.line(&table_text(&t))?;
    }
    if report.applied {
        ctx.out.line("")?;
        ctx.out.line(&format!("recorded as version {}", report.version_to.unwrap_or_default()))?;
    }
    Ok(())
}
