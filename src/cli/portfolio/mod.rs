//! `promptctl portfolio …`: weighted prompt variants, assignment, observations and rebalancing.

mod assign;
pub mod demo;
mod export;
mod observe;
pub(crate) mod rebalance;
pub(crate) mod set;
mod show;

use std::collections::BTreeMap;

use clap::Subcommand;

use super::context::Context;
use super::error::{CliError, CmdResult};
use crate::store::{PortfolioVersion, Store};

#[derive(Debug, Subcommand)]
pub enum PortfolioCommand {
    Set(set::SetArgs),
    Show(show::ShowArgs),
    Assign(assign::AssignArgs),
    Export(export::ExportArgs),
    Observe(observe::ObserveArgs),
    Rebalance(rebalance::RebalanceArgs),
}

pub fn run(ctx: &mut Context, command: PortfolioCommand) -> CmdResult {
    match command {
        PortfolioCommand::Set(args) => set::run(ctx, args),
        PortfolioCommand::Show(args) => show::run(ctx, args),
        PortfolioCommand::Assign(args) => assign::run(ctx, args),
        PortfolioCommand::Export(args) => export::run(ctx, args),
        PortfolioCommand::Observe(args) => observe::run(ctx, args),
        PortfolioCommand::Rebalance(args) => rebalance::run(ctx, args),
    }
}

/// The portfolio's current version, or an error that lists the portfolios there are.
pub fn current(store: &Store, name: &str) -> Result<PortfolioVersion, CliError> {
    if let Some(version) = store.current_portfolio(name)? {
        return Ok(version);
    }
    let names = store.portfolio_names()?;
    let mut e = CliError::input(format!("no portfolio named `{name}`"));
    if let Some(near) = crate::suggest::nearest(name, names.iter().map(String::as_str)) {
        e = e.with_hint(format!("did you mean `{near}`?"));
    }
    let known = if names.is_empty() { "none yet".to_string() } else { names.join(", ") };
    Err(e.with_hint(format!("record one with `promptctl portfolio set portfolios/{name}.yaml` (portfolios: {known})")))
}

/// `K=V` pairs into attributes.
pub fn parse_attrs(pairs: &[String]) -> Result<BTreeMap<String, String>, CliError> {
    pairs
        .iter()
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
            _ => Err(CliError::input(format!("`{pair}` is not K=V")).with_hint("e.g. --attr plan=enterprise")),
        })
        .collect()
}

/// Weights as `key: weight` for documents.
pub fn weight_map(version: &PortfolioVersion, segment: usize) -> BTreeMap<String, f64> {
    let spec = &version.spec;
    spec.variants.iter().zip(&spec.segments[segment].weights).map(|(v, w)| (v.key.clone(), *w)).collect()
}

/// A weight for tables: 4 decimals without trailing zeros.
pub fn fmt_weight(w: f64) -> String {
    let text = format!("{w:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    if text.is_empty() { "0".into() } else { text.to_string() }
}

/// `2026-11-27T09:41:07Z` for a millisecond timestamp.
pub fn rfc3339(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms).map(|t| t.to_string()).unwrap_or_else(|_| ms.to_string())
}

/// `2026-11-27T09:41:07.123Z` → `2026-11-27 09:41`.
pub fn human_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}
