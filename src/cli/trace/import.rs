//! `promptctl trace import FILE…`: normalized request rows from trace exports, idempotently.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::{Args, ValueEnum};
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::super::output::{Style, table, table_text};
use super::thousands;
use crate::store::{Inserted, NewRequest, OpenMode, RequestKey, RequestSource, RequestWriter};
use crate::trace::import::{self, ImportOptions, Kind, OpenError, Record, RecordError, SkipReason};

/// Import trace exports into normalized request rows (importing a file again adds nothing)
#[derive(Debug, Args)]
#[command(after_help = "\
Formats, detected from the content (gzip is undone whatever the file name):
  otlp       OTLP/JSON ExportTraceServiceRequest with GenAI semantic-convention or OpenInference
             attributes; one document, or one per line as the Collector's file exporter writes
  jsonl      promptctl JSONL, one request per line (docs/traces.md)
  langfuse   Langfuse observation exports: a JSON array, API pages, or one observation per line

Each request becomes one row with cached tokens made explicit (input_total = uncached + cache reads +
cache writes). A span imported twice (same start time and same trace and span id, or the same content
when a record has no ids) is a duplicate; the same span with different content is reported as an error
and the stored row is kept; the same span with another start time is another row. Spans that are not model calls (HTTP, tools, agents) are skipped and counted. Bad records are
reported with their line and the rest of the file is imported; the exit code is then 2.

Examples:
  promptctl trace import fixtures/traces/support-week.otlp.json
  promptctl trace import exports/*.jsonl.gz --format json
  otelcol-export | promptctl trace import - --kind otlp
  promptctl trace import naive-times.jsonl --assume-tz Europe/Berlin")]
pub struct ImportArgs {
    /// Export files; `-` reads standard input
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// The export format [default: detected from the content]
    #[arg(long, value_enum, value_name = "KIND")]
    pub kind: Option<KindArg>,

    /// Zone of times written without a UTC offset (IANA name such as Europe/Berlin, UTC, or +02:00);
    /// without it such times are errors
    #[arg(long, value_name = "ZONE")]
    pub assume_tz: Option<String>,

    /// List at most this many errors per file (all are counted)
    #[arg(long, default_value_t = 20, value_name = "N")]
    pub max_errors: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    Otlp,
    Jsonl,
    Langfuse,
}

impl From<KindArg> for Kind {
    fn from(k: KindArg) -> Kind {
        match k {
            KindArg::Otlp => Kind::Otlp,
            KindArg::Jsonl => Kind::Jsonl,
            KindArg::Langfuse => Kind::Langfuse,
        }
    }
}

#[derive(Serialize)]
struct Report {
    schema: &'static str,
    files: Vec<FileReport>,
    /// New rows over all files.
    rows: u64,
    duplicates: u64,
    conflicts: u64,
    skipped: u64,
    errors: u64,
}

#[derive(Serialize)]
struct FileReport {
    path: String,
    kind: Kind,
    gzip: bool,
    /// New rows.
    rows: u64,
    skipped: u64,
    skipped_by_reason: BTreeMap<SkipReason, u64>,
    duplicates: u64,
    /// Same key as a stored row, different content (also listed in `errors`).
    conflicts: u64,
    /// Spans whose cached tokens exceeded their input count, read as Anthropic's uncached count.
    inferred_additive_usage: u64,
    errors: Vec<RecordError>,
    /// All errors, including those not listed.
    errors_total: u64,
}

pub fn run(ctx: &mut Context, args: ImportArgs) -> CmdResult {
    let options = ImportOptions {
        assume_tz: args
            .assume_tz
            .as_deref()
            .map(import::parse_zone)
            .transpose()
            .map_err(|e| CliError::input(format!("--assume-tz: {e}")))?,
    };
    let kind = args.kind.map(Kind::from);
    // Open (and detect) every file first: a typo in the tenth path should not leave nine imported.
    let mut sources = Vec::with_capacity(args.files.len());
    for path in &args.files {
        sources.push(open_source(ctx, path, kind)?);
    }
    let mut store = ctx.open_store(OpenMode::CreateIfMissing)?;
    let mut writer = store.request_writer()?;
    let mut files = Vec::new();
    for (shown, source, counter, size) in sources {
        let progress = progress_bar(ctx, &shown, size);
        let file = import_file(&mut writer, shown, source, &options, args.max_errors, counter, progress.as_ref())?;
        if let Some(bar) = progress {
            bar.finish_and_clear();
        }
        files.push(file);
    }
    writer.finish()?;
    let sum = |f: fn(&FileReport) -> u64| files.iter().map(f).sum::<u64>();
    let report = Report {
        schema: "promptctl.trace-import/v1",
        rows: sum(|f| f.rows),
        duplicates: sum(|f| f.duplicates),
        conflicts: sum(|f| f.conflicts),
        skipped: sum(|f| f.skipped),
        errors: sum(|f| f.errors_total),
        files,
    };
    if ctx.out.is_human() {
        print_human(ctx, &report)?;
    } else {
        ctx.out.document(&report)?;
    }
    if report.errors > 0 {
        ctx.msg.warn(&format!(
            "{} record(s) could not be imported (listed above); the other rows were imported",
            thousands(report.errors)
        ));
        return Ok(Exit::Input);
    }
    Ok(Exit::Ok)
}

type Opened = (String, import::Source, Arc<AtomicU64>, Option<u64>);

fn open_source(ctx: &Context, path: &std::path::Path, kind: Option<Kind>) -> Result<Opened, CliError> {
    let counter = Arc::new(AtomicU64::new(0));
    let (shown, reader, size): (String, Box<dyn Read + Send>, Option<u64>) = if path.as_os_str() == "-" {
        ("-".to_string(), Box::new(io::stdin()), None)
    } else {
        let shown = ctx.display_path(&ctx.cwd().join(path));
        let file = File::open(ctx.cwd().join(path)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => CliError::input(format!("{shown}: file not found")),
            _ => CliError::input(format!("{shown}: cannot read: {e}")),
        })?;
        let size = file.metadata().ok().map(|m| m.len());
        (shown, Box::new(file), size)
    };
    let counting = Counting { inner: reader, count: counter.clone() };
    let source = import::open(counting, kind).map_err(|e| match e {
        OpenError::Undetected => CliError::input(format!("{shown}: cannot tell which kind of trace export this is"))
            .with_hint("pass --kind otlp|jsonl|langfuse; see `promptctl trace import --help` for the formats"),
        OpenError::Empty => CliError::input(format!("{shown}: the file is empty")),
        OpenError::Io(e) => CliError::input(format!("{shown}: cannot read: {e}")),
    })?;
    Ok((shown, source, counter, size))
}

/// Counts bytes read from the file (before decompression), for the progress bar.
struct Counting {
    inner: Box<dyn Read + Send>,
    count: Arc<AtomicU64>,
}

impl Read for Counting {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

fn progress_bar(ctx: &Context, shown: &str, size: Option<u64>) -> Option<indicatif::ProgressBar> {
    if !ctx.progress_enabled() {
        return None;
    }
    let bar = match size {
        Some(size) => indicatif::ProgressBar::new(size).with_style(
            indicatif::ProgressStyle::with_template("{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        ),
        None => indicatif::ProgressBar::new_spinner(),
    };
    bar.set_message(shown.to_string());
    Some(bar)
}

fn import_file(
    store: &mut RequestWriter<'_>,
    shown: String,
    source: import::Source,
    options: &ImportOptions,
    max_errors: usize,
    counter: Arc<AtomicU64>,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<FileReport, CliError> {
    let mut report = FileReport {
        path: shown,
        kind: source.kind,
        gzip: source.gzip,
        rows: 0,
        skipped: 0,
        skipped_by_reason: BTreeMap::new(),
        duplicates: 0,
        conflicts: 0,
        inferred_additive_usage: 0,
        errors: Vec::new(),
        errors_total: 0,
    };
    let note_error = |report: &mut FileReport, e: RecordError| {
        report.errors_total += 1;
        if report.errors.len() < max_errors {
            report.errors.push(e);
        }
    };
    // Parsing and writing overlap: other threads read and normalize, this one inserts.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    for chunk in import::chunks(source, options, cores) {
        let mut rows = Vec::with_capacity(chunk.len());
        for record in chunk {
            match record {
                // Kept boxed: a row is ~1 KB, and moving it out was a measurable share of this thread.
                Record::Row(row) => rows.push(row),
                Record::Skipped { reason, .. } => {
                    report.skipped += 1;
                    *report.skipped_by_reason.entry(reason).or_default() += 1;
                }
                Record::Error(e) => note_error(&mut report, e),
            }
        }
        if rows.is_empty() {
            continue;
        }
        let new: Vec<NewRequest<'_>> = rows
            .iter()
            .map(|r| NewRequest {
                source: RequestSource::Import,
                key: RequestKey::Import(r.key),
                content_hash: Some(r.content_hash),
                row: &r.row,
            })
            .collect();
        let outcomes = store.insert(&new)?;
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                Inserted::New(_) => {
                    report.rows += 1;
                    report.inferred_additive_usage += u64::from(row.convention_inferred);
                }
                Inserted::Duplicate(_) => report.duplicates += 1,
                Inserted::Conflict(_) => {
                    report.conflicts += 1;
                    let what = match (&row.row.trace_id, &row.row.span_id) {
                        (Some(t), Some(s)) => format!("span {t}/{s}"),
                        _ => "this record".to_string(),
                    };
                    let message = format!("{what} was imported before with different content; the stored row is kept");
                    note_error(&mut report, RecordError::at(row.line, message));
                }
            }
        }
        if let Some(bar) = progress {
            bar.set_position(counter.load(Ordering::Relaxed));
        }
    }
    Ok(report)
}

fn print_human(ctx: &mut Context, report: &Report) -> io::Result<()> {
    let mut t = table(&["FILE", "KIND", "NEW ROWS", "DUPLICATES", "SKIPPED", "ERRORS"], ctx.out.color);
    for f in &report.files {
        let kind = if f.gzip { format!("{} (gzip)", f.kind) } else { f.kind.to_string() };
        t.add_row([
            f.path.clone(),
            kind,
            thousands(f.rows),
            thousands(f.duplicates),
            thousands(f.skipped),
            thousands(f.errors_total),
        ]);
    }
    ctx.out.line(&table_text(&t))?;
    for f in &report.files {
        for (reason, n) in &f.skipped_by_reason {
            ctx.out.line(&format!("{}: skipped {} {}", f.path, thousands(*n), reason.describe()))?;
        }
        if f.inferred_additive_usage > 0 {
            ctx.out.line(&format!(
                "{}: {} span(s) reported more cached tokens than input tokens; read as Anthropic's uncached count",
                f.path,
                thousands(f.inferred_additive_usage)
            ))?;
        }
        for e in &f.errors {
            let at = e.line.map_or(String::new(), |l| format!(":{l}"));
            let line = format!("{}{at}: {}", f.path, e.message);
            ctx.out.line(&ctx.out.paint(Style::Red, &line))?;
        }
        if f.errors_total > f.errors.len() as u64 {
            ctx.out.line(&format!(
                "{}: … and {} more error(s) (--max-errors)",
                f.path,
                thousands(f.errors_total - f.errors.len() as u64)
            ))?;
        }
    }
    let summary = format!(
        "{} new row(s), {} duplicate(s), {} skipped, {} error(s)",
        thousands(report.rows),
        thousands(report.duplicates),
        thousands(report.skipped),
        thousands(report.errors)
    );
    ctx.out.line(&ctx.out.paint(Style::Bold, &summary))
}
