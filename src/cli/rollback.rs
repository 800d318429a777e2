//! `promptctl rollback NAME --to REF [--apply]`: move a label back and reconcile everything the bad
//! version shaped.

use clap::{Args, ValueEnum};

use super::context::{Context, actor};
use super::error::{CliError, CmdResult, Exit};
use super::output::{Style, table, table_text};
use super::portfolio::set::other_prompt;
use super::prompt::{prompt_from_stored, resolve};
use crate::portfolio::rollback::{
    Action, Cohort, ConversationPolicy, RollbackInput, RollbackPlan, UndoInput, noop_plan, plan, undo_plan,
};
use crate::portfolio::spec::parse_window;
use crate::store::{OpenMode, RollbackApply, Store};

/// Plan (default) or apply a rollback of a prompt label and of everything the bad version shaped
#[derive(Debug, Args)]
#[command(after_help = "\
The bad version is the one LABEL points at now. The plan lists: the label move; portfolio weights of the
bad version set to 0 (the rest renormalized) in every portfolio that uses it; the cache keys derived from
it (promptctl:{prompt}:{version}:{model}:{params_hash}); the conversations begun under it and still open
(no request for --idle) with the --conversations policy; eval baselines recorded with it (flagged, the
previous one restored); and its exposures and outcomes since the label moved to it (quarantined: left out
of the next rebalance). --apply runs the plan in one transaction and writes an audit event.

Rolling back to the version already in force does nothing. Rolling back to the version a rollback moved
away from undoes that rollback (weights, baselines, quarantine and conversation policies restored).

Examples:
  promptctl rollback support-reply --to 3f2a9c
  promptctl rollback support-reply --to ~1 --conversations migrate --apply --reason \"refund answers regressed\"")]
pub struct RollbackArgs {
    /// Prompt name
    pub name: String,

    /// The version to go back to: a label, a version-id prefix, or ~N
    #[arg(long, value_name = "REF")]
    pub to: String,

    /// The label to move
    #[arg(long, default_value = "production")]
    pub label: String,

    /// What happens to open conversations begun under the bad version
    #[arg(long, value_enum, default_value_t = PolicyArg::Pin)]
    pub conversations: PolicyArg,

    /// A conversation with no request for this long has ended
    #[arg(long, default_value = "24h", value_name = "DURATION")]
    pub idle: String,

    /// Execute the plan (one transaction, audited); without it, only print the plan
    #[arg(long)]
    pub apply: bool,

    /// Why, kept with the label move, portfolio versions and audit event
    #[arg(long)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PolicyArg {
    /// Keep them on the bad version until they end
    Pin,
    /// Continue them on the rollback target
    Migrate,
    /// End them
    End,
}

impl From<PolicyArg> for ConversationPolicy {
    fn from(p: PolicyArg) -> Self {
        match p {
            PolicyArg::Pin => ConversationPolicy::Pin,
            PolicyArg::Migrate => ConversationPolicy::Migrate,
            PolicyArg::End => ConversationPolicy::End,
        }
    }
}

/// A rollback to plan.
pub struct Request<'a> {
    pub prompt: &'a str,
    pub to: &'a str,
    pub label: &'a str,
    pub policy: ConversationPolicy,
    pub idle_ms: i64,
    pub now: jiff::Timestamp,
}

/// A plan and what applying it needs.
pub struct Planned {
    pub plan: RollbackPlan,
    pub window_start_ms: Option<i64>,
}

pub fn run(ctx: &mut Context, args: RollbackArgs) -> CmdResult {
    let idle_ms = parse_window(&args.idle)
        .ok_or_else(|| CliError::input(format!("--idle {:?} is not a duration like 24h or 90m", args.idle)))?;
    let mut store = ctx.open_store(OpenMode::MustExist)?;
    let now = jiff::Timestamp::now();
    let request = Request {
        prompt: &args.name,
        to: &args.to,
        label: &args.label,
        policy: args.conversations.into(),
        idle_ms,
        now,
    };
    let planned = make_plan(&store, &request)?;
    let rollback_id = if args.apply && !planned.plan.noop {
        Some(apply(&mut store, &planned, &actor(), now, args.reason.as_deref())?)
    } else {
        None
    };
    let doc = document(&planned.plan, rollback_id);
    if !ctx.out.is_human() {
        ctx.out.document(&doc)?;
        return Ok(Exit::Ok);
    }
    print_human(ctx, &planned.plan, rollback_id, args.apply)?;
    Ok(Exit::Ok)
}

/// Plans the rollback of `request.label` to `request.to`: a no-op, an undo, or a fresh rollback.
pub fn make_plan(store: &Store, request: &Request<'_>) -> Result<Planned, CliError> {
    let prompt = request.prompt;
    if store.prompt_log(prompt)?.is_empty() {
        return Err(super::prompt::no_commits(prompt));
    }
    let from = store.label(prompt, request.label)?.ok_or_else(|| {
        CliError::input(format!("{prompt} has no `{}` label: there is nothing to roll back", request.label))
            .with_hint(format!("labels: see `promptctl prompt log {prompt}`; choose one with --label"))
    })?;
    let to = resolve_target(store, prompt, request.to)?;
    if to == from {
        return Ok(Planned { plan: noop_plan(prompt, request.label, &from, request.policy), window_start_ms: None });
    }
    let now_ms = request.now.as_millisecond();
    if let Some(last) = store.last_rollback(prompt, request.label)?
        && last.undone_by.is_none()
        && last.undoes.is_none()
        && last.to_version == from
        && last.from_version == to
    {
        let portfolios = store
            .portfolio_names()?
            .into_iter()
            .filter_map(|name| store.current_portfolio(&name).ok().flatten())
            .map(|v| (v.version, v.spec))
            .collect();
        let plan = undo_plan(UndoInput {
            rollback_id: last.id,
            undone: &last.plan,
            portfolios,
            baselines: store.baselines_of_prompt(prompt)?,
            now_ms,
        });
        return Ok(Planned { plan, window_start_ms: None });
    }
    let window_start_ms = store
        .label_history(prompt)?
        .into_iter()
        .find(|e| e.label == request.label && e.to_version == from)
        .and_then(|e| e.at.parse::<jiff::Timestamp>().ok())
        .map(|t| t.as_millisecond());
    let portfolios: Vec<(i64, crate::portfolio::spec::Portfolio)> =
        store.portfolios_using(prompt, &from)?.into_iter().map(|v| (v.version, v.spec)).collect();
    let mut cohorts = Vec::new();
    for (_, p) in &portfolios {
        let variants: Vec<String> = p.variants.iter().filter(|v| v.version == from).map(|v| v.key.clone()).collect();
        let (exposures, outcomes, carryover_outcomes) =
            store.cohort_counts(&p.name, &variants, window_start_ms.unwrap_or(i64::MIN), now_ms + 1)?;
        cohorts.push(Cohort { portfolio: p.name.clone(), variants, exposures, outcomes, carryover_outcomes });
    }
    let plan = plan(RollbackInput {
        prompt,
        label: request.label,
        from: &from,
        to: &to,
        policy: request.policy,
        portfolios,
        served_with: served_with(store, prompt, &from)?,
        conversations: store.conversations_begun_under(prompt, &from)?,
        idle_ms: request.idle_ms,
        now_ms,
        baselines: store.baselines_of_prompt(prompt)?,
        cohorts,
        window_start_ms,
    });
    Ok(Planned { plan, window_start_ms })
}

fn resolve_target(store: &Store, prompt: &str, reference: &str) -> Result<String, CliError> {
    match resolve(store, prompt, Some(reference)) {
        Ok(resolved) => Ok(resolved.version.version_id),
        Err(e) => match other_prompt(store, prompt, reference) {
            Some(message) => Err(CliError::input(format!("cannot roll {prompt} back to `{reference}`: {message}"))
                .with_hint(format!("pick a version from `promptctl prompt log {prompt}`"))),
            None => Err(e),
        },
    }
}

/// (model, params) pairs the bad version was served with: its own frontmatter's model, and every model
/// its stored requests name (an eval or an override may have used another).
fn served_with(store: &Store, prompt: &str, version: &str) -> Result<Vec<(String, serde_json::Value)>, CliError> {
    let Some(stored) = store.prompt_version(prompt, version)? else {
        return Ok(Vec::new());
    };
    let parsed = prompt_from_stored(&stored)?;
    let params = serde_json::to_value(&parsed.parsed.front.params).unwrap_or_default();
    let mut models: Vec<String> = parsed.model().map(str::to_string).into_iter().collect();
    for model in store.models_served(prompt, version)? {
        let qualified = match parsed.model().and_then(|m| m.split_once(':')) {
            Some((provider, _)) if !model.contains(':') => format!("{provider}:{model}"),
            _ => model,
        };
        if !models.contains(&qualified) {
            models.push(qualified);
        }
    }
    Ok(models.into_iter().map(|m| (m, params.clone())).collect())
}

/// Executes a plan; returns the rollback id.
pub fn apply(
    store: &mut Store,
    planned: &Planned,
    actor: &str,
    at: jiff::Timestamp,
    reason: Option<&str>,
) -> Result<i64, CliError> {
    let doc = document(&planned.plan, None);
    Ok(store.apply_rollback(&RollbackApply {
        plan: &planned.plan,
        document: &doc,
        actor,
        at,
        reason,
        window_start_ms: planned.window_start_ms,
    })?)
}

/// The `promptctl.rollback-plan/v1` document.
pub fn document(plan: &RollbackPlan, rollback_id: Option<i64>) -> serde_json::Value {
    let mut doc = serde_json::json!({
        "schema": "promptctl.rollback-plan/v1",
        "prompt": plan.prompt,
        "label": plan.label,
        "from": plan.from,
        "to": plan.to,
        "applied": rollback_id.is_some(),
        "rollback_id": rollback_id,
        "noop": plan.noop,
        "undo_of": plan.undo_of,
        "conversation_policy": plan.conversation_policy,
        "window": plan.window,
        "actions": plan.actions,
    });
    if plan.noop {
        doc["detail"] = serde_json::json!(format!("{} already points at {}: nothing to do", plan.label, plan.to));
    }
    doc
}

fn print_human(ctx: &mut Context, plan: &RollbackPlan, rollback_id: Option<i64>, apply: bool) -> Result<(), CliError> {
    if plan.noop {
        ctx.out.line(&format!("{} {} already points at {}: nothing to do", plan.prompt, plan.label, plan.to))?;
        return Ok(());
    }
    let title = match (plan.undo_of, rollback_id) {
        (Some(undone), Some(id)) => format!("applied rollback #{id} of {} (undoes #{undone})", plan.prompt),
        (Some(undone), None) => format!("plan: undo rollback #{undone} of {}", plan.prompt),
        (None, Some(id)) => format!("applied rollback #{id} of {}", plan.prompt),
        (None, None) => format!("plan: roll back {}", plan.prompt),
    };
    ctx.out.line(&ctx.out.paint(Style::Bold, &title))?;
    let mut t = table(&["ACTION", "DETAIL"], ctx.out.color);
    for action in &plan.actions {
        let (kind, detail) = describe(action);
        t.add_row([kind.to_string(), detail]);
    }
    ctx.out.line(&table_text(&t))?;
    if !apply {
        ctx.out.line("")?;
        ctx.out.line("nothing changed; run again with --apply to execute this plan in one transaction")?;
    }
    Ok(())
}

fn describe(action: &Action) -> (&'static str, String) {
    match action {
        Action::Label { detail, .. } => ("label", detail.clone()),
        Action::PortfolioWeights { detail, .. } => ("portfolio_weights", detail.clone()),
        Action::CacheInvalidate { detail, keys, .. } => {
            let shown = keys.iter().take(3).cloned().collect::<Vec<_>>().join("\n");
            ("cache_invalidate", if shown.is_empty() { detail.clone() } else { format!("{detail}\n{shown}") })
        }
        Action::Conversations { detail, .. } => ("conversations", detail.clone()),
        Action::EvalBaseline { suite, detail, .. } => ("eval_baseline", format!("{suite}: {detail}")),
        Action::CohortQuarantine { detail, window, .. } => {
            ("cohort_quarantine", format!("{detail}\nwindow {} – {}", window[0], window[1]))
        }
        Action::Release { detail, .. } => ("release", detail.clone()),
    }
}
