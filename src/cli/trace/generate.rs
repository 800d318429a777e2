//! `promptctl trace generate`: deterministic synthetic traffic for demos, tests and benchmarks.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use jiff::Timestamp;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::parse_time_arg;
use crate::trace::generate::{ExportFormat, GenerateConfig, GeneratedExport, GeneratedRequest, PlantRates, generate};
use crate::trace::tails::TailKind;

/// Write synthetic traffic for the repo's prompts, with planted stream tails (demos, benchmarks)
#[derive(Debug, Args)]
#[command(after_help = "\
The traffic: per conversation a triage call (gpt-4.1-mini), then support-reply turns (gpt-4o-mini,
streamed, growing history served partly from the prompt cache), sometimes an order extraction
(claude-sonnet-4-5, cache writes and reads, a few batch and long-context requests), an escalation to a
reasoning model (o4-mini) and a language check on a self-hosted model without a price. About 2.5 % of
calls fail once and are retried. The same seed gives the same bytes.

Examples:
  promptctl trace generate --conversations 2000 -o week.jsonl --truth planted.jsonl
  promptctl trace generate --kind otlp --conversations 100000 | promptctl trace import -
  promptctl trace generate --clean --conversations 500 -o clean.jsonl")]
pub struct GenerateArgs {
    /// Conversations to generate (each makes 2–40 requests)
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    pub conversations: usize,

    /// Seed of the random generator
    #[arg(long, default_value_t = 7)]
    pub seed: u64,

    /// Export format to write
    #[arg(long, value_enum, default_value_t = ExportKind::Jsonl)]
    pub kind: ExportKind,

    /// Earliest conversation start (RFC 3339 or a UTC date)
    #[arg(long, default_value = "2026-10-01", value_parser = parse_time_arg, value_name = "T")]
    pub start: Timestamp,

    /// Days over which conversations start
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub days: u32,

    /// Plant no stream tails
    #[arg(long)]
    pub clean: bool,

    /// Leave out message and output texts (smaller files; loops need chunk texts, which stay)
    #[arg(long)]
    pub no_messages: bool,

    /// Leave out stream checkpoints (rows keep TTFT and duration)
    #[arg(long)]
    pub no_checkpoints: bool,

    /// Write here instead of standard output
    #[arg(long, short = 'o', value_name = "FILE")]
    pub output: Option<PathBuf>,

    /// Write the planted tails here as JSONL (`trace_id`, `span_id`, `kind`): the ground truth for
    /// `trace tails`
    #[arg(long, value_name = "FILE")]
    pub truth: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportKind {
    /// promptctl JSONL
    Jsonl,
    /// One OTLP/JSON document
    Otlp,
    /// One OTLP/JSON document per line (the Collector's file exporter)
    OtlpLines,
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    output: String,
    rows: u64,
    planted: BTreeMap<TailKind, u64>,
}

#[derive(Serialize)]
struct Truth<'a> {
    trace_id: &'a str,
    span_id: &'a str,
    kind: TailKind,
}

pub fn run(ctx: &mut Context, args: GenerateArgs) -> CmdResult {
    if args.output.is_none() && !ctx.out.is_human() {
        return Err(CliError::input("--format json describes the file written; pass --output FILE")
            .with_hint("without --output the generated traffic itself goes to standard output"));
    }
    let config = GenerateConfig {
        seed: args.seed,
        conversations: args.conversations,
        start: args.start,
        span_ms: i64::from(args.days.max(1)) * 86_400_000,
        plant: if args.clean { PlantRates::NONE } else { PlantRates::TYPICAL },
        chunk_text: true,
        messages: !args.no_messages,
        checkpoints: !args.no_checkpoints,
    };
    let format = match args.kind {
        ExportKind::Jsonl => ExportFormat::Jsonl,
        ExportKind::Otlp => ExportFormat::OtlpDocument,
        ExportKind::OtlpLines => ExportFormat::OtlpLines,
    };
    let mut planted: Vec<GeneratedRequest> = Vec::new();
    let rows = generate(&config).inspect(|g| {
        if g.planted.is_some() {
            planted.push(g.clone());
        }
    });
    let mut export = GeneratedExport::new(rows, format);
    let shown = match &args.output {
        Some(path) => {
            let target = ctx.cwd().join(path);
            let mut file = File::create(&target).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?;
            io::copy(&mut export, &mut file)?;
            ctx.display_path(&target)
        }
        None => {
            copy_text(&mut export, ctx)?;
            "-".to_string()
        }
    };
    let written = export.rows_written();
    drop(export);
    let mut counts: BTreeMap<TailKind, u64> = BTreeMap::new();
    for g in &planted {
        if let Some(kind) = g.planted {
            *counts.entry(kind).or_default() += 1;
        }
    }
    if let Some(path) = &args.truth {
        let mut file = io::BufWriter::new(
            File::create(ctx.cwd().join(path)).map_err(|e| CliError::input(format!("{}: {e}", path.display())))?,
        );
        for g in &planted {
            let truth = Truth {
                trace_id: g.row.trace_id.as_deref().unwrap_or(""),
                span_id: g.row.span_id.as_deref().unwrap_or(""),
                kind: g.planted.unwrap_or(TailKind::Stall),
            };
            serde_json::to_writer(&mut file, &truth).map_err(io::Error::other)?;
            file.write_all(b"\n")?;
        }
        file.flush()?;
    }
    let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {}", k.name())).collect();
    ctx.msg.note(&format!(
        "wrote {written} requests to {shown}; planted: {}",
        if summary.is_empty() { "nothing".to_string() } else { summary.join(", ") }
    ));
    if !ctx.out.is_human() {
        ctx.out.document(&Report {
            schema: "promptctl.trace-generate/v1",
            output: shown,
            rows: written,
            planted: counts,
        })?;
    }
    Ok(Exit::Ok)
}

/// Copies generated UTF-8 text to stdout through the command's output, keeping multi-byte characters
/// whole across read boundaries.
fn copy_text(reader: &mut impl Read, ctx: &mut Context) -> io::Result<()> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        let valid = match std::str::from_utf8(&carry) {
            Ok(text) => text.len(),
            Err(e) => e.valid_up_to(),
        };
        let text = std::str::from_utf8(&carry[..valid]).map_err(io::Error::other)?;
        ctx.out.text(text)?;
        carry.drain(..valid);
    }
    Ok(())
}
