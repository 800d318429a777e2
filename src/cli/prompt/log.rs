//! `promptctl prompt log NAME`: versions newest first, with labels, and the label history.

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CmdResult, Exit};
use super::super::output::{table, table_text};
use super::{no_commits, short};
use crate::store::{CommitRecord, LabelEvent, OpenMode};

/// Versions of a prompt, newest first: version id, time, author, message, labels
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  promptctl prompt log support-reply\n  promptctl prompt log support-reply --format json | jq '.versions[0]'"
)]
pub struct LogArgs {
    /// Prompt name (the .prompt file's name without extension)
    pub name: String,
}

#[derive(Serialize)]
struct Report<'a> {
    schema: &'static str,
    name: &'a str,
    versions: Vec<VersionEntry<'a>>,
    label_events: &'a [LabelEvent],
}

#[derive(Serialize)]
struct VersionEntry<'a> {
    version: &'a str,
    committed_at: &'a str,
    author: &'a str,
    message: Option<&'a str>,
    labels: Vec<&'a str>,
}

pub fn run(ctx: &mut Context, args: LogArgs) -> CmdResult {
    let store = ctx.open_store(OpenMode::MustExist)?;
    let log = store.prompt_log(&args.name)?;
    if log.is_empty() {
        return Err(no_commits(&args.name));
    }
    let labels = store.labels(&args.name)?;
    let events = store.label_history(&args.name)?;
    let entry = |c: &'_ CommitRecord| -> Vec<&str> {
        labels.iter().filter(|(_, v)| *v == c.version_id).map(|(l, _)| l.as_str()).collect()
    };
    let versions: Vec<VersionEntry<'_>> = log
        .iter()
        .enumerate()
        .map(|(i, c)| VersionEntry {
            version: &c.version_id,
            committed_at: &c.committed_at,
            author: &c.author,
            message: c.message.as_deref(),
            // A version committed several times carries its labels on its newest commit only.
            labels: if log[..i].iter().any(|newer| newer.version_id == c.version_id) { Vec::new() } else { entry(c) },
        })
        .collect();
    if !ctx.out.is_human() {
        ctx.out.document(&Report {
            schema: "promptctl.prompt-log/v1",
            name: &args.name,
            versions,
            label_events: &events,
        })?;
        return Ok(Exit::Ok);
    }
    let mut t = table(&["REF", "VERSION", "COMMITTED (UTC)", "AUTHOR", "LABELS", "MESSAGE"], ctx.out.color);
    for (i, v) in versions.iter().enumerate() {
        t.add_row([
            format!("~{i}"),
            short(v.version).to_string(),
            human_time(v.committed_at),
            v.author.to_string(),
            v.labels.join(", "),
            v.message.unwrap_or("").to_string(),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    if !events.is_empty() {
        ctx.out.line("")?;
        let mut t = table(&["LABEL", "MOVED (UTC)", "FROM", "TO", "BY", "REASON"], ctx.out.color);
        for e in &events {
            t.add_row([
                e.label.clone(),
                human_time(&e.at),
                e.from_version.clone().unwrap_or_else(|| "—".into()),
                e.to_version.clone(),
                e.actor.clone(),
                e.reason.clone().unwrap_or_default(),
            ]);
        }
        ctx.out.line(&table_text(&t))?;
    }
    Ok(Exit::Ok)
}

/// `2026-11-27T09:41:07.123Z` → `2026-11-27 09:41`.
pub fn human_time(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.strftime("%Y-%m-%d %H:%M").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}
