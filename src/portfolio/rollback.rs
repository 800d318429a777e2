//! Rollback plans: everything a bad prompt version touched, and what to do about each.
//!
//! `git revert` restores bytes. A prompt version that served traffic also left cache entries keyed by
//! it, conversations that began under it, eval baselines recorded with it, portfolio weights that still
//! send units to it, and exposures and outcomes it shaped. The plan lists one action per concern; the
//! caller executes them in one transaction. This module decides; it does not read or write the state.
//!
//! Cache keys: `promptctl:{prompt}:{version}:{model}:{params_hash}`, where `params_hash` is the first 12
//! hex characters of the SHA-256 of the version's params as canonical JSON (keys sorted, compact). A
//! cache that keys responses this way can drop a whole version with the prefix
//! `promptctl:{prompt}:{version}:`.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::spec::Portfolio;

/// What happens to conversations begun under the bad version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversationPolicy {
    /// Keep them on the bad version until they end: no mid-conversation change of voice.
    Pin,
    /// Serve their next turn with the rollback target.
    Migrate,
    /// Close them; the user starts afresh.
    End,
}

impl ConversationPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ConversationPolicy::Pin => "pin",
            ConversationPolicy::Migrate => "migrate",
            ConversationPolicy::End => "end",
        }
    }
}

/// The key under which a response of `prompt`@`version` on `model` with `params` is cached.
pub fn cache_key(prompt: &str, version: &str, model: &str, params: &serde_json::Value) -> String {
    format!("{}{model}:{}", cache_prefix(prompt, version), params_hash(params))
}

pub fn cache_prefix(prompt: &str, version: &str) -> String {
    format!("promptctl:{prompt}:{version}:")
}

pub fn params_hash(params: &serde_json::Value) -> String {
    let mut canonical = String::new();
    crate::prompt::hash::write_canonical(params, &mut canonical);
    hex::encode(&Sha256::digest(canonical.as_bytes())[..6])
}

/// A conversation of the prompt whose first request was served by the bad version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: String,
    pub started_ms: i64,
    pub last_ms: i64,
}

/// A suite baseline as far as the plan cares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Baseline {
    pub id: i64,
    pub suite: String,
    pub run_id: String,
    pub prompt_version: Option<String>,
    pub active: bool,
    pub flagged: bool,
}

/// Exposures and outcomes a portfolio collected from the bad version in the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cohort {
    pub portfolio: String,
    pub variants: Vec<String>,
    pub exposures: u64,
    pub outcomes: u64,
    /// Outcomes on other variants of units that had been exposed to the bad version first.
    pub carryover_outcomes: u64,
}

/// Everything the plan is made from, gathered by the caller.
pub struct RollbackInput<'a> {
    pub prompt: &'a str,
    pub label: &'a str,
    pub from: &'a str,
    pub to: &'a str,
    pub policy: ConversationPolicy,
    /// Current versions (number, spec) of the portfolios of this prompt that use the bad version.
    pub portfolios: Vec<(i64, Portfolio)>,
    /// (model, params) the bad version was served with.
    pub served_with: Vec<(String, serde_json::Value)>,
    pub conversations: Vec<Conversation>,
    /// A conversation idle longer than this has ended.
    pub idle_ms: i64,
    pub now_ms: i64,
    pub baselines: Vec<Baseline>,
    pub cohorts: Vec<Cohort>,
    /// When the bad version began to serve under the label (None: no record of it).
    pub window_start_ms: Option<i64>,
}

/// The weights of one segment before and after.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SegmentChange {
    pub segment: String,
    pub from: BTreeMap<String, f64>,
    pub to: BTreeMap<String, f64>,
}

/// One thing the rollback does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Action {
    Label {
        label: String,
        from: String,
        to: String,
        detail: String,
    },
    PortfolioWeights {
        portfolio: String,
        version_from: i64,
        detail: String,
        segments: Vec<SegmentChange>,
        /// Variants pointed at the rollback target because zeroing them would leave a segment empty.
        repointed: Vec<String>,
        /// The portfolio to record (not part of the printed plan).
        #[serde(skip_serializing, default)]
        new_spec: Option<Box<Portfolio>>,
    },
    CacheInvalidate {
        keys: Vec<String>,
        prefix: String,
        detail: String,
    },
    Conversations {
        policy: ConversationPolicy,
        count: usize,
        ended: usize,
        ids: Vec<String>,
        detail: String,
    },
    EvalBaseline {
        suite: String,
        detail: String,
        flag: Vec<i64>,
        restore: Option<i64>,
        #[serde(default)]
        deactivate: Vec<i64>,
    },
    CohortQuarantine {
        portfolio: String,
        variants: Vec<String>,
        exposures: u64,
        outcomes: u64,
        carryover_outcomes: u64,
        window: [String; 2],
        detail: String,
    },
    /// Undo only: lift the quarantine and the conversation policies of the rollback undone.
    Release {
        rollback: i64,
        detail: String,
    },
}

/// The whole plan (`promptctl.rollback-plan/v1` without the envelope fields the CLI adds).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RollbackPlan {
    pub prompt: String,
    pub label: String,
    pub from: String,
    pub to: String,
    pub conversation_policy: ConversationPolicy,
    pub window: [Option<String>; 2],
    pub noop: bool,
    pub undo_of: Option<i64>,
    pub actions: Vec<Action>,
}

fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| ms.to_string())
}

fn short(version: &str) -> &str {
    &version[..version.len().min(12)]
}

/// A plan that does nothing, because the label already points at the target.
pub fn noop_plan(prompt: &str, label: &str, current: &str, policy: ConversationPolicy) -> RollbackPlan {
    RollbackPlan {
        prompt: prompt.into(),
        label: label.into(),
        from: current.into(),
        to: current.into(),
        conversation_policy: policy,
        window: [None, None],
        noop: true,
        undo_of: None,
        actions: Vec::new(),
    }
}

/// Plans a rollback of `input.label` from the bad version to `input.to`.
pub fn plan(input: RollbackInput<'_>) -> RollbackPlan {
    let mut actions = vec![Action::Label {
        label: input.label.into(),
        from: input.from.into(),
        to: input.to.into(),
        detail: format!("{}: {} → {}", input.label, short(input.from), short(input.to)),
    }];
    actions.extend(input.portfolios.iter().filter_map(|(number, p)| weights_action(*number, p, input.from, input.to)));
    actions.push(cache_action(&input));
    actions.push(conversations_action(&input));
    actions.extend(baseline_actions(&input.baselines, input.from));
    let window = [input.window_start_ms.map(rfc3339), Some(rfc3339(input.now_ms))];
    actions.extend(input.cohorts.iter().map(|c| cohort_action(c, &window)));
    RollbackPlan {
        prompt: input.prompt.into(),
        label: input.label.into(),
        from: input.from.into(),
        to: input.to.into(),
        conversation_policy: input.policy,
        window,
        noop: false,
        undo_of: None,
        actions,
    }
}

/// Sets the bad version's weights to 0 and renormalizes the rest of each segment; when a segment would
/// be left with nothing, points the bad variants at the rollback target instead and keeps the weights.
pub fn weights_action(number: i64, portfolio: &Portfolio, bad: &str, to: &str) -> Option<Action> {
    let bad_variants: Vec<usize> =
        (0..portfolio.variants.len()).filter(|&i| portfolio.variants[i].version == bad).collect();
    if bad_variants.is_empty() {
        return None;
    }
    let mut next = portfolio.clone();
    let leaves_a_segment_empty = portfolio.segments.iter().any(|s| {
        let rest: f64 = (0..s.weights.len()).filter(|i| !bad_variants.contains(i)).map(|i| s.weights[i]).sum();
        rest <= 0.0
    });
    let mut repointed = Vec::new();
    if leaves_a_segment_empty {
        for &i in &bad_variants {
            next.variants[i].version = to.to_string();
            if next.variants[i].version_ref.len() >= 4 && bad.starts_with(&next.variants[i].version_ref) {
                next.variants[i].version_ref = to.to_string();
            }
            repointed.push(next.variants[i].key.clone());
        }
    } else {
        for segment in &mut next.segments {
            let rest: f64 =
                (0..segment.weights.len()).filter(|i| !bad_variants.contains(i)).map(|i| segment.weights[i]).sum();
            for (i, w) in segment.weights.iter_mut().enumerate() {
                *w = if bad_variants.contains(&i) { 0.0 } else { *w / rest };
            }
        }
    }
    let keys: Vec<&str> = bad_variants.iter().map(|&i| portfolio.variants[i].key.as_str()).collect();
    let detail = if leaves_a_segment_empty {
        format!(
            "{} served only by {}: point {} at {} (weights unchanged)",
            portfolio.name,
            short(bad),
            keys.join(", "),
            short(to)
        )
    } else {
        format!("{}: weight of {} ({}) → 0, the rest renormalized", portfolio.name, keys.join(", "), short(bad))
    };
    Some(Action::PortfolioWeights {
        portfolio: portfolio.name.clone(),
        version_from: number,
        detail,
        segments: segment_changes(portfolio, &next),
        repointed,
        new_spec: Some(Box::new(next)),
    })
}

fn segment_changes(before: &Portfolio, after: &Portfolio) -> Vec<SegmentChange> {
    let map = |p: &Portfolio, s: usize| -> BTreeMap<String, f64> {
        p.variants.iter().zip(&p.segments[s].weights).map(|(v, w)| (v.key.clone(), *w)).collect()
    };
    (0..before.segments.len())
        .map(|s| SegmentChange { segment: before.segments[s].name.clone(), from: map(before, s), to: map(after, s) })
        .collect()
}

fn cache_action(input: &RollbackInput<'_>) -> Action {
    let keys: BTreeSet<String> =
        input.served_with.iter().map(|(model, params)| cache_key(input.prompt, input.from, model, params)).collect();
    let prefix = cache_prefix(input.prompt, input.from);
    Action::CacheInvalidate {
        detail: format!("invalidate {} key(s) of {} (or everything under {prefix})", keys.len(), short(input.from)),
        keys: keys.into_iter().collect(),
        prefix,
    }
}

fn conversations_action(input: &RollbackInput<'_>) -> Action {
    let (open, ended): (Vec<&Conversation>, Vec<&Conversation>) =
        input.conversations.iter().partition(|c| input.now_ms - c.last_ms <= input.idle_ms);
    let what = match input.policy {
        ConversationPolicy::Pin => format!("stay on {} until they end", short(input.from)),
        ConversationPolicy::Migrate => format!("continue on {}", short(input.to)),
        ConversationPolicy::End => "are ended".to_string(),
    };
    Action::Conversations {
        policy: input.policy,
        count: open.len(),
        ended: ended.len(),
        ids: open.iter().map(|c| c.id.clone()).collect(),
        detail: format!(
            "{} open conversation(s) begun under {} {what}; {} already ended",
            open.len(),
            short(input.from),
            ended.len()
        ),
    }
}

/// Flags every baseline recorded with the bad version and, where the active baseline of a suite is
/// one of them, restores the newest earlier baseline of that suite that is not.
pub fn baseline_actions(baselines: &[Baseline], bad: &str) -> Vec<Action> {
    let suites: BTreeSet<&str> = baselines
        .iter()
        .filter(|b| b.prompt_version.as_deref() == Some(bad) && !b.flagged)
        .map(|b| b.suite.as_str())
        .collect();
    suites
        .into_iter()
        .map(|suite| {
            let rows: Vec<&Baseline> = baselines.iter().filter(|b| b.suite == suite).collect();
            let is_bad = |b: &Baseline| b.prompt_version.as_deref() == Some(bad);
            let flag: Vec<&Baseline> = rows.iter().copied().filter(|b| is_bad(b) && !b.flagged).collect();
            let active_is_bad = rows.iter().any(|b| b.active && is_bad(b));
            let newest_bad = flag.iter().map(|b| b.id).max().unwrap_or(0);
            let restore = if active_is_bad {
                rows.iter().copied().filter(|b| b.id < newest_bad && !is_bad(b) && !b.flagged).max_by_key(|b| b.id)
            } else {
                None
            };
            let flagged = flag.iter().map(|b| format!("#{} (run {})", b.id, b.run_id)).collect::<Vec<_>>().join(", ");
            let detail = match (restore, active_is_bad) {
                (Some(r), _) => format!("flag {flagged}; restore baseline #{} (run {})", r.id, r.run_id),
                (None, true) => format!(
                    "flag {flagged}; no earlier baseline to restore: the suite has none until `eval baseline` records one"
                ),
                (None, false) => format!("flag {flagged} (not active; the active baseline stays)"),
            };
            Action::EvalBaseline {
                suite: suite.to_string(),
                detail,
                flag: flag.iter().map(|b| b.id).collect(),
                restore: restore.map(|b| b.id),
                // The active bad baseline, which an undo makes active again.
                deactivate: rows.iter().filter(|b| b.active && is_bad(b)).map(|b| b.id).collect(),
            }
        })
        .collect()
}

fn cohort_action(cohort: &Cohort, window: &[Option<String>; 2]) -> Action {
    let start = window[0].clone().unwrap_or_else(|| "the beginning".into());
    let end = window[1].clone().unwrap_or_default();
    Action::CohortQuarantine {
        portfolio: cohort.portfolio.clone(),
        variants: cohort.variants.clone(),
        exposures: cohort.exposures,
        outcomes: cohort.outcomes,
        carryover_outcomes: cohort.carryover_outcomes,
        detail: format!(
            "exclude {} exposure(s) and {} outcome(s) of {} from rebalancing, plus {} later outcome(s) of the same units on other variants",
            cohort.exposures,
            cohort.outcomes,
            cohort.variants.join(", "),
            cohort.carryover_outcomes
        ),
        window: [start, end],
    }
}

/// Everything needed to undo an applied rollback.
pub struct UndoInput<'a> {
    pub rollback_id: i64,
    pub undone: &'a RollbackPlan,
    /// Current (number, spec) of the portfolios the undone rollback changed.
    pub portfolios: Vec<(i64, Portfolio)>,
    /// Baselines of the suites the undone rollback touched, as they are now.
    pub baselines: Vec<Baseline>,
    pub now_ms: i64,
}

/// The plan that undoes an applied rollback: the label goes back, the bad version's weights return
/// to what they were (the other variants scaled to make room), flagged baselines are reinstated, and
/// the quarantine and conversation policies are lifted.
pub fn undo_plan(input: UndoInput<'_>) -> RollbackPlan {
    let undone = input.undone;
    let mut actions = vec![Action::Label {
        label: undone.label.clone(),
        from: undone.to.clone(),
        to: undone.from.clone(),
        detail: format!(
            "{}: {} → {} (undo rollback #{})",
            undone.label,
            short(&undone.to),
            short(&undone.from),
            input.rollback_id
        ),
    }];
    for action in &undone.actions {
        match action {
            Action::PortfolioWeights { portfolio, segments, repointed, .. } => {
                if let Some((number, current)) = input.portfolios.iter().find(|(_, p)| p.name == *portfolio)
                    && let Some(restored) = restore_weights(current, segments, repointed, &undone.from)
                {
                    actions.push(Action::PortfolioWeights {
                        portfolio: portfolio.clone(),
                        version_from: *number,
                        detail: format!("{portfolio}: weights of {} restored", short(&undone.from)),
                        segments: segment_changes(current, &restored),
                        repointed: repointed.clone(),
                        new_spec: Some(Box::new(restored)),
                    });
                }
            }
            Action::EvalBaseline { suite, flag, restore, deactivate, .. } => {
                let flagged_now: Vec<i64> = flag
                    .iter()
                    .copied()
                    .filter(|id| input.baselines.iter().any(|b| b.id == *id && b.flagged))
                    .collect();
                // Reinstate the baseline the rollback deactivated, unless a newer baseline has been recorded
                // since (the one the rollback restored is no longer active).
                let restored_still_active =
                    restore.is_none_or(|id| input.baselines.iter().any(|b| b.id == id && b.active));
                let reactivate = deactivate.first().copied().filter(|_| restored_still_active);
                actions.push(Action::EvalBaseline {
                    suite: suite.clone(),
                    detail: format!(
                        "unflag {}; reactivate {}",
                        flagged_now.iter().map(|id| format!("#{id}")).collect::<Vec<_>>().join(", "),
                        reactivate.map_or("none (a newer baseline is active)".to_string(), |id| format!("#{id}"))
                    ),
                    flag: flagged_now,
                    restore: reactivate,
                    deactivate: if reactivate.is_some() { restore.iter().copied().collect() } else { Vec::new() },
                });
            }
            _ => {}
        }
    }
    actions.push(Action::Release {
        rollback: input.rollback_id,
        detail: format!("lift the quarantine and conversation policies of rollback #{}", input.rollback_id),
    });
    RollbackPlan {
        prompt: undone.prompt.clone(),
        label: undone.label.clone(),
        from: undone.to.clone(),
        to: undone.from.clone(),
        conversation_policy: undone.conversation_policy,
        window: [None, Some(rfc3339(input.now_ms))],
        noop: false,
        undo_of: Some(input.rollback_id),
        actions,
    }
}

/// Gives the variants of `bad` back their pre-rollback weight in each segment, scaling the others.
fn restore_weights(
    current: &Portfolio,
    changes: &[SegmentChange],
    repointed: &[String],
    bad: &str,
) -> Option<Portfolio> {
    let mut next = current.clone();
    if !repointed.is_empty() {
        for variant in next.variants.iter_mut().filter(|v| repointed.contains(&v.key)) {
            variant.version = bad.to_string();
        }
        return Some(next);
    }
    for change in changes {
        let Some(s) = next.segment_index(&change.segment) else { continue };
        let bad_keys: Vec<&String> =
            change.to.iter().filter(|(k, w)| **w == 0.0 && change.from[*k] > 0.0).map(|(k, _)| k).collect();
        let restored: f64 = bad_keys.iter().map(|k| change.from[*k]).sum();
        let weights = &mut next.segments[s].weights;
        let others: f64 = next
            .variants
            .iter()
            .zip(weights.iter())
            .filter(|(v, _)| !bad_keys.contains(&&v.key))
            .map(|(_, w)| *w)
            .sum();
        for (variant, w) in next.variants.iter().zip(weights.iter_mut()) {
            *w = if bad_keys.contains(&&variant.key) {
                change.from[&variant.key]
            } else if others > 0.0 {
                *w * (1.0 - restored) / others
            } else {
                *w
            };
        }
    }
    (next != *current).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portfolio::spec::ParsedFile;

    const BAD: &str = "bbbbbbbbbbbb";
    const GOOD: &str = "aaaaaaaaaaaa";

    fn portfolio() -> Portfolio {
        let text = "name: p\nvariants:\n  - { key: control, version: production, weight: 0.5 }\n  - { key: concise, version: c, weight: 0.3 }\n  - { key: warm, version: w, weight: 0.2 }\nsegments:\n  - name: vip\n    when: { plan: vip }\n    weights: { control: 1.0 }\n";
        let resolve = |_: &str, r: &str| {
            Ok(match r {
                "production" => BAD.to_string(),
                other => other.repeat(12),
            })
        };
        ParsedFile::parse(text, "p.yaml", false).unwrap().resolve(resolve).unwrap().0
    }

    #[test]
    fn zeroing_renormalizes_or_repoints() {
        let mut p = portfolio();
        p.segments[0].weights = vec![0.5, 0.5, 0.0];
        let Some(Action::PortfolioWeights { segments, repointed, new_spec, .. }) = weights_action(3, &p, BAD, GOOD)
        else {
            panic!()
        };
        assert!(repointed.is_empty());
        assert_eq!(segments[1].to["control"], 0.0);
        assert!((segments[1].to["concise"] - 0.6).abs() < 1e-12);
        let after = new_spec.unwrap();
        assert!((after.segments[1].weights.iter().sum::<f64>() - 1.0).abs() < 1e-12);

        let p = portfolio();
        let Some(Action::PortfolioWeights { repointed, new_spec, .. }) = weights_action(3, &p, BAD, GOOD) else {
            panic!()
        };
        assert_eq!(repointed, ["control"]);
        assert_eq!(new_spec.unwrap().variants[0].version, GOOD);
        assert!(weights_action(3, &p, "dddddddddddd", GOOD).is_none());
    }

    #[test]
    fn baselines_of_the_bad_version_are_flagged_and_the_previous_restored() {
        let b = |id, version: &str, active| Baseline {
            id,
            suite: "support".into(),
            run_id: format!("r-{id}"),
            prompt_version: Some(version.into()),
            active,
            flagged: false,
        };
        let actions = baseline_actions(&[b(1, GOOD, false), b(2, BAD, false), b(3, BAD, true)], BAD);
        let [Action::EvalBaseline { flag, restore, .. }] = actions.as_slice() else { panic!("{actions:?}") };
        assert_eq!(flag, &[2, 3]);
        assert_eq!(*restore, Some(1));
        let actions = baseline_actions(&[b(3, BAD, true)], BAD);
        let [Action::EvalBaseline { restore: None, detail, .. }] = actions.as_slice() else { panic!() };
        assert!(detail.contains("no earlier baseline"));
    }

    #[test]
    fn the_plan_covers_every_concern_and_undo_restores_weights() {
        let mut p = portfolio();
        p.segments[0].weights = vec![0.5, 0.5, 0.0];
        let input = RollbackInput {
            prompt: "support-reply",
            label: "production",
            from: BAD,
            to: GOOD,
            policy: ConversationPolicy::Pin,
            portfolios: vec![(2, p.clone())],
            served_with: vec![("openai:gpt-4o-mini".into(), serde_json::json!({"temperature": 0.2}))],
            conversations: vec![
                Conversation { id: "c-1".into(), started_ms: 0, last_ms: 9_000 },
                Conversation { id: "c-2".into(), started_ms: 0, last_ms: 1_000 },
            ],
            idle_ms: 5_000,
            now_ms: 10_000,
            baselines: vec![],
            cohorts: vec![Cohort {
                portfolio: "p".into(),
                variants: vec!["control".into()],
                exposures: 10,
                outcomes: 7,
                carryover_outcomes: 1,
            }],
            window_start_ms: Some(1_000),
        };
        let plan = plan(input);
        let kinds: Vec<String> = plan
            .actions
            .iter()
            .map(|a| serde_json::to_value(a).unwrap()["kind"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(kinds, ["label", "portfolio_weights", "cache_invalidate", "conversations", "cohort_quarantine"]);
        let Action::Conversations { count, ended, ids, .. } = &plan.actions[3] else { panic!() };
        assert_eq!((*count, *ended, ids.as_slice()), (1, 1, &["c-1".to_string()][..]));
        let Action::CacheInvalidate { keys, .. } = &plan.actions[2] else { panic!() };
        assert!(keys[0].starts_with("promptctl:support-reply:bbbbbbbbbbbb:openai:gpt-4o-mini:"));

        let Action::PortfolioWeights { new_spec: Some(after), .. } = &plan.actions[1] else { panic!() };
        let undo = undo_plan(UndoInput {
            rollback_id: 1,
            undone: &plan,
            portfolios: vec![(3, (**after).clone())],
            baselines: vec![],
            now_ms: 20_000,
        });
        let Action::PortfolioWeights { new_spec: Some(restored), .. } = &undo.actions[1] else { panic!() };
        for (a, b) in restored.segments.iter().zip(&p.segments) {
            for (x, y) in a.weights.iter().zip(&b.weights) {
                assert!((x - y).abs() < 1e-12, "{a:?} vs {b:?}");
            }
        }
        assert_eq!((undo.from.as_str(), undo.to.as_str()), (GOOD, BAD));
    }
}
