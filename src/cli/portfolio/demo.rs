//! The portfolio part of `promptctl demo`: three variants over two segments, two simulated weeks of
//! outcomes with a rebalance after each, then a rollback plan. Everything runs against the store it is
//! given (use a fresh temporary one), offline. The simulated weeks start at the wall clock's now and run
//! into the future: label moves are recorded at the wall clock, and the rollback's quarantine window
//! starts at the label move, so the simulated traffic must come after it.

use serde::Serialize;

use super::super::error::CliError;
use super::observe::import_lines;
use super::rebalance::{apply, compute};
use super::set::record;
use crate::portfolio::assign::Assigner;
use crate::portfolio::simulate::{TrueSegment, simulate_traffic};
use crate::prompt::{Prompt, PromptSource};
use crate::stats::sampling::seeded_rng;
use crate::store::{NewCommit, Store, StoredVersion};

/// One step of the tour: what happened, in a sentence or a table, and the JSON document behind it.
#[derive(Debug, Clone, Serialize)]
pub struct DemoStep {
    pub title: String,
    pub summary: String,
    pub document: serde_json::Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct PortfolioDemo {
    pub steps: Vec<DemoStep>,
}

const ACTOR: &str = "demo";
const UNITS_PER_WEEK: usize = 4_000;
const WEEK_MS: i64 = 7 * 86_400_000;

/// The true resolution rates the simulation draws from: `concise` wins for enterprise customers,
/// `classic` for everyone else, and the freshly shipped `current` is the worst in both.
fn world() -> Vec<TrueSegment> {
    vec![
        TrueSegment { share: 0.3, rates: vec![0.52, 0.63, 0.55] },
        TrueSegment { share: 0.7, rates: vec![0.47, 0.50, 0.56] },
    ]
}

const PORTFOLIO: &str = "\
name: support-reply
prompt: support-reply
seed: support-reply
hash_attribute: user_id
hash_version: 2
variants:
  - { key: current, version: production }
  - { key: concise, version: concise-version }
  - { key: classic, version: classic-version }
segments:
  - name: enterprise
    when: { plan: enterprise }
    weights: { current: 0.34, concise: 0.33, classic: 0.33 }
  - name: default
    weights: { current: 0.34, concise: 0.33, classic: 0.33 }
rebalance:
  objective: resolved
  min_weight: 0.05
  max_shift: 0.25
  min_samples: 200
";

/// Runs the tour against an empty store.
pub fn portfolio_demo(store: &mut Store) -> Result<PortfolioDemo, CliError> {
    let mut steps = Vec::new();
    let start = jiff::Timestamp::now();
    let [classic, concise, current] = commit_versions(store)?;
    store.set_label("support-reply", "production", &current, ACTOR, Some("ship the new warm tone"))?;
    let text = PORTFOLIO.replace("concise-version", &concise).replace("classic-version", &classic);
    let recorded = record(store, &text, "portfolios/support-reply.yaml", false, ACTOR, start, "demo portfolio")?;
    steps.push(DemoStep {
        title: "portfolio set".into(),
        summary: format!(
            "support-reply v{}: current (production = {current}), concise ({concise}), classic ({classic}) at about 1/3 each in segments enterprise and default",
            recorded.version.version
        ),
        document: serde_json::to_value(&recorded.version.spec).unwrap_or_default(),
    });
    let mut rng = seeded_rng(20261127);
    for week in 0..2 {
        let week_start = start.as_millisecond() + week as i64 * WEEK_MS;
        let version = super::current(store, "support-reply")?;
        let assigner = Assigner::new(&version.spec).map_err(|e| CliError::state(e.to_string()))?;
        let traffic = simulate_traffic(&assigner, &world(), week, UNITS_PER_WEEK, &mut rng);
        let lines: Vec<(usize, String)> = traffic
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let ts = week_start + (i as i64 * WEEK_MS) / UNITS_PER_WEEK as i64;
                let line = serde_json::json!({
                    "ts": super::rfc3339(ts),
                    "unit": u.unit,
                    "variant": version.spec.variants[u.variant].key,
                    "segment": version.spec.segments[u.segment].name,
                    "resolved": u.reward,
                    "cost_usd": 0.0021,
                });
                (i + 1, line.to_string())
            })
            .collect();
        let observed = import_lines(store, &version, &lines, Some(format!("week-{}.jsonl", week + 1)), false)?;
        steps.push(DemoStep {
            title: format!("portfolio observe (week {})", week + 1),
            summary: format!("{} exposures and {} outcomes imported", observed.exposures, observed.outcomes),
            document: serde_json::to_value(&observed).unwrap_or_default(),
        });
        let until = week_start + WEEK_MS;
        let mut computed = compute(store, "support-reply", until, Some("7d"), None)?;
        let at = jiff::Timestamp::from_millisecond(until).map_err(|e| CliError::input(e.to_string()))?;
        if let Some(v) = apply(store, &computed, ACTOR, at, &format!("weekly rebalance {}", week + 1))? {
            computed.report.applied = true;
            computed.report.version_to = Some(v.version);
        }
        steps.push(DemoStep {
            title: format!("portfolio rebalance --apply (week {})", week + 1),
            summary: rebalance_summary(&computed.report),
            document: serde_json::to_value(&computed.report).unwrap_or_default(),
        });
    }
    let now = jiff::Timestamp::from_millisecond(start.as_millisecond() + 2 * WEEK_MS)
        .map_err(|e| CliError::input(e.to_string()))?;
    let request = crate::cli::rollback::Request {
        prompt: "support-reply",
        to: &classic,
        label: "production",
        policy: crate::portfolio::rollback::ConversationPolicy::Pin,
        idle_ms: 86_400_000,
        now,
    };
    let planned = crate::cli::rollback::make_plan(store, &request)?;
    steps.push(DemoStep {
        title: "rollback support-reply --to classic (plan)".into(),
        summary: planned.plan.actions.iter().map(action_line).collect::<Vec<_>>().join("\n"),
        document: crate::cli::rollback::document(&planned.plan, None),
    });
    Ok(PortfolioDemo { steps })
}

fn rebalance_summary(report: &super::rebalance::Report) -> String {
    report
        .segments
        .iter()
        .map(|s| {
            let moves = s
                .variants
                .iter()
                .map(|v| {
                    format!("{} {} → {}", v.variant, super::fmt_weight(v.weight_from), super::fmt_weight(v.weight_to))
                })
                .collect::<Vec<_>>()
                .join(", ");
            format!("{}: {moves}", s.segment)
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn action_line(action: &crate::portfolio::rollback::Action) -> String {
    let value = serde_json::to_value(action).unwrap_or_default();
    format!("{}: {}", value["kind"].as_str().unwrap_or("?"), value["detail"].as_str().unwrap_or(""))
}

/// Three versions of support-reply that differ in their instructions.
fn commit_versions(store: &mut Store) -> Result<[String; 3], CliError> {
    let tones = [
        "Reply in a friendly tone.",
        "Reply in at most three sentences.",
        "Reply warmly, and thank the customer for their patience.",
    ];
    let mut ids = Vec::new();
    for (i, tone) in tones.iter().enumerate() {
        let text = format!(
            "---\nname: support-reply\nmodel: openai:gpt-4o-mini\nparams: {{ temperature: 0.2 }}\n---\n::: system\nYou are Acme's support agent. {tone}\n::: user\n{{{{ message }}}}\n"
        );
        let prompt = Prompt::from_source(PromptSource {
            path: "prompts/support-reply.prompt".into(),
            text: text.clone(),
            examples_path: None,
            examples_text: None,
        })?;
        let version = StoredVersion {
            name: "support-reply".into(),
            version_id: prompt.version_id.clone(),
            content_hash: prompt.content_hash.clone(),
            path: prompt.source.path.clone(),
            source: text,
            examples_path: None,
            examples_source: None,
            created_at: String::new(),
        };
        store.commit_versions(
            &[NewCommit { version: &version, message: Some(&format!("demo version {}", i + 1)) }],
            ACTOR,
        )?;
        ids.push(prompt.version_id);
    }
    Ok([ids[0].clone(), ids[1].clone(), ids[2].clone()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tour_rebalances_twice_and_plans_a_rollback() {
        let mut store = Store::open_in_memory().unwrap();
        let demo = portfolio_demo(&mut store).unwrap();
        let titles: Vec<&str> = demo.steps.iter().map(|s| s.title.as_str()).collect();
        assert_eq!(titles.len(), 6, "{titles:?}");
        assert_eq!(store.portfolio_versions("support-reply").unwrap().len(), 3, "set + two rebalances");
        let second = &demo.steps[4].document;
        assert_eq!(second["applied"], true);
        let plan = &demo.steps[5].document;
        let kinds: Vec<&str> =
            plan["actions"].as_array().unwrap().iter().map(|a| a["kind"].as_str().unwrap()).collect();
        assert!(kinds.contains(&"portfolio_weights") && kinds.contains(&"cohort_quarantine"), "{kinds:?}");
        let quarantine = plan["actions"].as_array().unwrap().iter().find(|a| a["kind"] == "cohort_quarantine").unwrap();
        assert!(quarantine["exposures"].as_u64().unwrap() > 0);
    }
}
