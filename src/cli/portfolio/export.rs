//! `promptctl portfolio export NAME --growthbook`: the payload a GrowthBook SDK serves the same split from.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::current;
use crate::portfolio::export::growthbook_payload;
use crate::store::OpenMode;

/// Write the GrowthBook SDK payload (one feature, an experiment rule per segment) for the current weights
#[derive(Debug, Args)]
#[command(after_help = "\
The output is the payload GrowthBook SDKs accept (`new GrowthBook({ features })`, `setPayload`): one
feature named after the portfolio whose value is {\"variant\", \"version\"}; each segment is an experiment
rule with the same seed, hash attribute, hash version, weights and coverage as `portfolio assign`, so an
app serving it assigns every unit the same variant. With --format json the payload is wrapped in a
promptctl.portfolio-export/v1 document (under `growthbook`).

Examples:
  promptctl portfolio export support-reply --growthbook > support-reply.features.json")]
pub struct ExportArgs {
    /// Portfolio name
    pub name: String,

    /// Export for GrowthBook SDKs (the one target so far)
    #[arg(long)]
    pub growthbook: bool,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    portfolio: String,
    version: i64,
    growthbook: serde_json::Value,
}

pub fn run(ctx: &mut Context, args: ExportArgs) -> CmdResult {
    if !args.growthbook {
        return Err(CliError::input("say which format to export").with_hint("--growthbook (the only target so far)"));
    }
    let store = ctx.open_store(OpenMode::MustExist)?;
    let version = current(&store, &args.name)?;
    let payload = growthbook_payload(&version.spec);
    if ctx.out.is_human() {
        ctx.out.line(&serde_json::to_string_pretty(&payload).expect("JSON serializes"))?;
    } else {
        ctx.out.document(&Report {
            schema: "promptctl.portfolio-export/v1",
            portfolio: version.portfolio,
            version: version.version,
            growthbook: payload,
        })?;
    }
    Ok(Exit::Ok)
}
