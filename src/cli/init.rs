//! `promptctl init`: create the state file and `promptctl.toml`; safe to run again.

use clap::Args;
use serde::Serialize;

use super::context::Context;
use super::error::{CmdResult, Exit};
use crate::config;
use crate::store::OpenMode;

/// Create the state file (and promptctl.toml if absent); running it again changes nothing
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  promptctl init\n  promptctl init --state /tmp/ci-state.db")]
pub struct InitArgs {}

#[derive(Serialize)]
struct InitReport {
    schema: &'static str,
    state: String,
    state_created: bool,
    config: String,
    config_created: bool,
    schema_version: i64,
}

pub fn run(ctx: &mut Context, _args: InitArgs) -> CmdResult {
    let (state_path, _) = ctx.state_path();
    let state_existed = state_path.exists();
    let mut store = ctx.open_store(OpenMode::CreateIfMissing)?;
    // The scan stores HMACs of matched secrets, never the values; the key is this file's own.
    store.meta_get_or_insert("scan_hmac_key", &random_key_hex())?;
    let config_path = ctx.root().join(config::FILE_NAME);
    let config_created = !config_path.exists();
    if config_created {
        std::fs::write(&config_path, config::TEMPLATE)?;
    }
    let report = InitReport {
        schema: "promptctl.init/v1",
        state: ctx.display_path(&state_path),
        state_created: !state_existed,
        config: ctx.display_path(&config_path),
        config_created,
        schema_version: store.schema_version()?,
    };
    if ctx.out.is_human() {
        let verb = |created: bool| if created { "created" } else { "exists " };
        ctx.out.line(&format!("{} {} (schema {})", verb(report.state_created), report.state, report.schema_version))?;
        ctx.out.line(&format!("{} {}", verb(report.config_created), report.config))?;
    } else {
        ctx.out.document(&report)?;
    }
    Ok(Exit::Ok)
}

fn random_key_hex() -> String {
    use rand::Rng;
    let mut key = [0u8; 32];
    rand::rng().fill_bytes(&mut key);
    hex::encode(key)
}
