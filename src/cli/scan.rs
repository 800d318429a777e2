//! `promptctl scan`: secrets, PII, tenant-trace overlap and provenance of few-shot examples.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use rayon::prelude::*;

use super::context::{Context, display_path};
use super::error::{CliError, CmdResult, Exit};
use super::output::{Style, paint};
use crate::diag::read_text_file;
use crate::prompt::{Prompt, relative_to};
use crate::scan::{
    Finding, PromptInput, ScanConfig, ScanError, ScanInputs, ScanReport, Scanner, Severity, SourceFile, TraceRef,
    baseline_ids, examples_path_of,
};
use crate::store::OpenMode;

/// Scan prompts and few-shot examples for secrets, PII, tenant data from traces, and provenance gaps
#[derive(Debug, Args)]
#[command(after_help = "\
PATH is a directory (every .prompt file below it, its examples file and provenance.yaml files) or a
.prompt file; finding paths are relative to it. Traces are promptctl JSONL (gzip allowed). Scopes,
rendered turns, rules and suppressions come from [scan] in promptctl.toml (see docs/scan.md).

When the state file exists, the request rows imported into it (`promptctl trace import`) that
carry messages or an output are scanned too, after the --traces files; --no-stored-traces skips
them. The summary counts records from files and from the state apart. A finding's tenant evidence
names its first trace: file:line for a trace file, the trace id for a row of the state.

Findings store and print only a redacted preview and an HMAC of the matched value. The HMAC key is
$PROMPTCTL_SCAN_KEY when set (use a CI secret so finding ids stay the same across machines), else the
key kept in the state file (created on first use).

Exit 1 when a finding is at or above --fail-on (default: [scan] fail_on, else high).

Examples:
  promptctl scan
  promptctl scan prompts --traces traces/october.jsonl.gz --sarif scan.sarif
  promptctl scan --baseline last-scan.json --fail-on critical --format json")]
pub struct ScanArgs {
    /// Directories or .prompt files to scan [default: the current directory]
    #[arg(value_name = "PATH")]
    pub paths: Vec<PathBuf>,

    /// Trace files (promptctl JSONL, optionally .gz) to look for example text in
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub traces: Vec<PathBuf>,

    /// A promptctl.toml to read [scan] from [default: the project's]
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Fail (exit 1) on findings at or above this severity
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<SeverityArg>,

    /// Also write the findings as SARIF 2.1.0 to FILE
    #[arg(long, value_name = "FILE")]
    pub sarif: Option<PathBuf>,

    /// A previous `--format json` report: only findings not in it are reported
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,

    /// Do not scan the request rows imported into the state file (`trace import`)
    #[arg(long)]
    pub no_stored_traces: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SeverityArg {
    Critical,
    High,
    Medium,
    Low,
}

impl SeverityArg {
    fn severity(self) -> Severity {
        match self {
            SeverityArg::Critical => Severity::Critical,
            SeverityArg::High => Severity::High,
            SeverityArg::Medium => Severity::Medium,
            SeverityArg::Low => Severity::Low,
        }
    }
}

/// Request rows read from the state per chunk: a few MB of text at most, scanned before the next is read.
const STORED_ROWS_PER_CHUNK: usize = 4096;

/// Directories never worth scanning: build output, dependencies, VCS data.
const SKIPPED_DIRS: &[&str] = &["target", "node_modules", ".git", ".promptctl"];

pub fn run(ctx: &mut Context, args: ScanArgs) -> CmdResult {
    let (config, config_dir) = load_config(ctx, args.config.as_deref())?;
    let roots = if args.paths.is_empty() { vec![ctx.cwd().to_path_buf()] } else { args.paths.clone() };
    // Checked before the store is opened (which creates it for the HMAC key): a state file made by this
    // run has no imported rows to scan.
    let state_existed = ctx.state_path().0.exists();
    let mut store = ctx.open_store(OpenMode::CreateIfMissing)?;
    let key = hmac_key(&mut store)?;
    let mut inputs = ScanInputs { options: config.options(), ..Default::default() };
    if let Some(rules) = &config.rules {
        let path = config_dir.join(rules);
        let shown = ctx.display_path(&path);
        inputs.rules = Some(SourceFile { text: read_text_file(&path, &shown)?, path: shown });
    }
    for root in &roots {
        let root = ctx.cwd().join(root);
        collect_root(ctx, &store, &config, &root, &mut inputs)?;
    }
    let scanner = Scanner::new(inputs).map_err(scan_error)?;
    let mut tally = scanner.tally();
    for trace in &args.traces {
        let path = ctx.cwd().join(trace);
        let shown = ctx.display_path(&path);
        let reader = open_maybe_gzip(&path).map_err(|e| CliError::input(format!("{shown}: cannot read: {e}")))?;
        scanner.scan_reader(&shown, reader, &mut tally).map_err(scan_error)?;
    }
    if state_existed && !args.no_stored_traces {
        store.scan_request_rows(STORED_ROWS_PER_CHUNK, |rows| scanner.scan_records(rows, &mut tally))?;
    }
    let mut report = scanner.finish(tally, &key);
    let today = jiff::tz::Offset::UTC.to_datetime(jiff::Timestamp::now()).date();
    let suppressions = config.suppressions().map_err(CliError::input)?;
    let outcome = report.apply_suppressions(&suppressions, today).map_err(scan_error)?;
    for expired in outcome.expired {
        ctx.msg.warn(&format!("suppression {} has expired and no longer applies", expired + 1));
    }
    if let Some(baseline) = &args.baseline {
        let path = ctx.cwd().join(baseline);
        let shown = ctx.display_path(&path);
        let ids = baseline_ids(&read_text_file(&path, &shown)?).map_err(scan_error)?;
        let dropped = report.apply_baseline(&ids);
        ctx.msg.note(&format!("{dropped} finding(s) already in the baseline {shown}"));
    }
    if let Some(sarif) = &args.sarif {
        let log = scanner.sarif(&report, env!("CARGO_PKG_VERSION"));
        let text = serde_json::to_string_pretty(&log).map_err(|e| CliError::input(e.to_string()))?;
        std::fs::write(ctx.cwd().join(sarif), text + "\n")?;
    }
    let fail_on = args.fail_on.map_or(config.fail_on, SeverityArg::severity);
    if ctx.out.is_human() {
        print_human(ctx, &report, fail_on)?;
    } else {
        ctx.out.document(&report)?;
    }
    Ok(if report.fails_at(fail_on) { Exit::CheckFailed } else { Exit::Ok })
}

/// The `[scan]` section and the directory its relative paths (`rules`) are relative to.
fn load_config(ctx: &Context, explicit: Option<&Path>) -> Result<(ScanConfig, PathBuf), CliError> {
    let path = match explicit {
        Some(p) => ctx.cwd().join(p),
        None => ctx.root().join(crate::config::FILE_NAME),
    };
    let dir = path.parent().map_or_else(|| ctx.root().to_path_buf(), Path::to_path_buf);
    if explicit.is_none() && !path.exists() {
        return Ok((ScanConfig::default(), dir));
    }
    let shown = ctx.display_path(&path);
    let text = read_text_file(&path, &shown)?;
    Ok((ScanConfig::from_toml_text(&text, &shown).map_err(scan_error)?, dir))
}

/// The key findings' HMACs are computed under: `$PROMPTCTL_SCAN_KEY`, else the state file's own.
fn hmac_key(store: &mut crate::store::Store) -> Result<Vec<u8>, CliError> {
    if let Ok(key) = std::env::var("PROMPTCTL_SCAN_KEY")
        && !key.is_empty()
    {
        return Ok(key.into_bytes());
    }
    let fresh = {
        use rand::Rng;
        let mut bytes = [0u8; 32];
        rand::rng().fill_bytes(&mut bytes);
        hex::encode(bytes)
    };
    Ok(store.meta_get_or_insert("scan_hmac_key", &fresh)?.into_bytes())
}

/// Adds every .prompt file under `root` (with its examples file) and every provenance.yaml.
fn collect_root(
    ctx: &Context,
    store: &crate::store::Store,
    config: &ScanConfig,
    root: &Path,
    inputs: &mut ScanInputs,
) -> Result<(), CliError> {
    if !root.exists() {
        return Err(CliError::input(format!("{} does not exist", ctx.display_path(root))));
    }
    let (base, files) = if root.is_file() {
        (root.parent().unwrap_or(root).to_path_buf(), vec![root.to_path_buf()])
    } else {
        (root.to_path_buf(), walk(root)?)
    };
    // Reading and parsing are independent per file and run in parallel (a 10 MB prompt repo spent a
    // fifth of its time here); the results, deploy times from the state file and the first error are
    // taken in file order, as a sequential run would.
    let cwd = ctx.cwd();
    let loaded: Vec<Result<Option<Loaded>, CliError>> =
        files.par_iter().map(|file| load_file(cwd, config, &base, file)).collect();
    for item in loaded {
        match item? {
            Some(Loaded::Prompt(prompt)) => inputs.prompts.push(with_deploy_time(store, prompt)?),
            Some(Loaded::Provenance(file)) => inputs.provenance.push(file),
            None => {}
        }
    }
    Ok(())
}

/// A file of the scan, read and parsed.
enum Loaded {
    Prompt(LoadedPrompt),
    Provenance(SourceFile),
}

/// A prompt's scan input but for the deploy time that the state file may know, and what to ask it.
struct LoadedPrompt {
    input: PromptInput,
    /// Name and version id of the parsed prompt.
    version: Option<(String, String)>,
}

fn load_file(cwd: &Path, config: &ScanConfig, base: &Path, file: &Path) -> Result<Option<Loaded>, CliError> {
    let rel = relative_to(base, file);
    if rel.ends_with(".prompt") {
        Ok(Some(Loaded::Prompt(load_prompt(cwd, config, base, &rel)?)))
    } else if file.file_name().is_some_and(|n| n == "provenance.yaml") {
        let text = read_text_file(file, &display_path(cwd, file))?;
        Ok(Some(Loaded::Provenance(SourceFile { text, path: rel })))
    } else {
        Ok(None)
    }
}

fn walk(dir: &Path) -> Result<Vec<PathBuf>, CliError> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(current) = stack.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            if path.is_dir() {
                if !SKIPPED_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                    stack.push(path);
                }
            } else if name.ends_with(".prompt") || name == "provenance.yaml" {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn load_prompt(cwd: &Path, config: &ScanConfig, base: &Path, rel: &str) -> Result<LoadedPrompt, CliError> {
    let path = base.join(rel);
    let shown = display_path(cwd, &path);
    let text = read_text_file(&path, &shown)?;
    let examples = match examples_path_of(rel, &text) {
        Some(examples_rel) => {
            let examples_path = base.join(&examples_rel);
            let examples_shown = display_path(cwd, &examples_path);
            let examples_text = read_text_file(&examples_path, &examples_shown).map_err(|e| {
                CliError::from(e)
                    .with_hint(format!("{shown} references it in `examples:`; fix the path or add the file"))
            })?;
            Some(SourceFile { path: examples_rel, text: examples_text })
        }
        None => None,
    };
    // The prompt module knows how many turns the template renders; a prompt that does not parse is still
    // scanned for secrets, with its examples counted as user/assistant pairs.
    let parsed = Prompt::load(base, rel).ok();
    let name = parsed.as_ref().map(|p| p.name().to_string()).or_else(|| Some(crate::prompt::file_stem(rel)));
    let scope = config.prompt(rel);
    let rendered_turns = scope.and_then(|s| s.rendered_turns).unwrap_or_else(|| match &parsed {
        Some(p) => rendered_example_turns(p),
        None => 0,
    });
    let version = parsed.as_ref().map(|p| (p.name().to_string(), p.version_id.clone()));
    let parsed_examples = parsed.and_then(|p| yaml_items(p, examples.as_ref()?));
    let input = PromptInput {
        path: rel.to_string(),
        text,
        name,
        examples,
        parsed_examples,
        rendered_turns,
        scope: scope.map(|s| s.scope.clone()),
        deployed_at: scope.and_then(|s| s.deployed_at),
    };
    Ok(LoadedPrompt { input, version })
}

/// The items of the examples file as the prompt module parsed them, when the scan would parse the same
/// text as YAML the same way: it then skips its own parse (the slowest part of a scan without traces).
fn yaml_items(prompt: Prompt, file: &SourceFile) -> Option<Vec<serde_json::Value>> {
    let is_json = |path: &str| path.ends_with(".jsonl") || path.ends_with(".json");
    let same_text = prompt.source.examples_text.as_deref() == Some(file.text.as_str());
    let both_yaml = !is_json(&file.path) && !prompt.source.examples_path.as_deref().is_some_and(is_json);
    (same_text && both_yaml).then(|| prompt.examples.into_iter().map(|e| serde_json::Value::Object(e.fields)).collect())
}

/// The configured deploy time, else the one the state file records for the parsed prompt's version.
fn with_deploy_time(store: &crate::store::Store, loaded: LoadedPrompt) -> Result<PromptInput, CliError> {
    let mut input = loaded.input;
    if input.deployed_at.is_none()
        && let Some((name, version_id)) = &loaded.version
    {
        input.deployed_at = deployed_at(store, name, version_id)?;
    }
    Ok(input)
}

/// Turns the template renders before the caller's own message: every non-system message but the last.
fn rendered_example_turns(prompt: &Prompt) -> usize {
    match prompt.fixed_messages() {
        Ok(messages) => {
            messages.iter().filter(|m| m.role != "system" && m.role != "developer").count().saturating_sub(1)
        }
        Err(_) => 2 * prompt.examples.len(),
    }
}

/// When the working content went to production: the production label's move to this exact version.
fn deployed_at(store: &crate::store::Store, name: &str, version_id: &str) -> Result<Option<jiff::Timestamp>, CliError> {
    let events = store.label_history(name)?;
    Ok(events
        .iter()
        .filter(|e| e.label == "production" && e.to_version == version_id)
        .filter_map(|e| e.at.parse::<jiff::Timestamp>().ok())
        .min())
}

fn open_maybe_gzip(path: &Path) -> std::io::Result<Box<dyn Read>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    if path.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::MultiGzDecoder::new(file)))
    } else {
        Ok(Box::new(file))
    }
}

fn scan_error(e: ScanError) -> CliError {
    match e {
        ScanError::Config(input) => input.into(),
        ScanError::Io { .. } => CliError::input(e.to_string()),
        other => CliError::input(other.to_string()),
    }
}

fn print_human(ctx: &mut Context, report: &ScanReport, fail_on: Severity) -> std::io::Result<()> {
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in &report.findings {
        by_file.entry(f.path.as_str()).or_default().push(f);
    }
    let color = ctx.out.color;
    for (path, findings) in &by_file {
        ctx.out.line(&paint(color, Style::Bold, path))?;
        for f in findings {
            let severity = paint(color, severity_style(f.severity), &format!("{:<8}", f.severity.as_str()));
            let example = f.example_id.as_deref().map(|e| format!(" [{e}]")).unwrap_or_default();
            ctx.out.line(&format!("  {:>4}:{:<3} {severity} {}{example}  {}", f.line, f.column, f.rule, f.preview))?;
            if !f.message.is_empty() {
                ctx.out.line(&paint(color, Style::Dim, &format!("             {}", f.message)))?;
            }
            if !f.tenants.is_empty() {
                // Common phrasing lists up to 20 tenants; where each one's first trace was is noise there.
                let located = f.severity > Severity::Info;
                let tenants: Vec<String> = f
                    .tenants
                    .iter()
                    .map(|t| match t.first_trace.as_ref().filter(|_| located) {
                        Some(at) => format!("{} ({}, {} traces, first {})", t.id, t.role, t.n_traces, trace_place(at)),
                        None => format!("{} ({}, {} traces)", t.id, t.role, t.n_traces),
                    })
                    .collect();
                ctx.out.line(&format!("             tenants: {}", tenants.join(", ")))?;
            }
        }
    }
    let s = &report.summary;
    if !by_file.is_empty() {
        ctx.out.line("")?;
    }
    let mut summary = format!(
        "{} critical, {} high, {} medium, {} low, {} info · {} files · {} trace records",
        s.critical, s.high, s.medium, s.low, s.info, s.files, s.trace_records
    );
    if s.trace_records_from_state > 0 {
        summary.push_str(&format!(
            " ({} from files, {} from the state)",
            s.trace_records_from_files, s.trace_records_from_state
        ));
    }
    if s.bad_lines > 0 {
        summary.push_str(&format!(" · {} bad trace lines (see --format json)", s.bad_lines));
    }
    if s.suppressed > 0 {
        summary.push_str(&format!(" · {} suppressed", s.suppressed));
    }
    ctx.out.line(&summary)?;
    if report.fails_at(fail_on) {
        ctx.out.line(&paint(color, Style::Red, &format!("failed: findings at or above {}", fail_on.as_str())))?;
    }
    Ok(())
}

/// `traces.jsonl:12` for a trace file; `trace 4bf92f… (state)` for a request row of the state file.
fn trace_place(at: &TraceRef) -> String {
    match (&at.path, at.line) {
        (Some(path), Some(line)) => format!("{path}:{line}"),
        (Some(path), None) => path.clone(),
        _ => format!("trace {} (state)", at.trace_id.as_deref().unwrap_or("without id")),
    }
}

fn severity_style(severity: Severity) -> Style {
    match severity {
        Severity::Critical | Severity::High => Style::Red,
        Severity::Medium => Style::Yellow,
        Severity::Low | Severity::Info => Style::Dim,
    }
}
