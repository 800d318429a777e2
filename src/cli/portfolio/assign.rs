//! `promptctl portfolio assign NAME --unit ID | --units-file FILE`: which variant a unit gets.

use std::io::BufRead;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::super::context::Context;
use super::super::error::{CliError, CmdResult, Exit};
use super::{current, parse_attrs};
use crate::portfolio::assign::{Assigner, Placement, check_unit_id};
use crate::portfolio::hashing::HashVersion;
use crate::portfolio::spec::Portfolio;
use crate::store::OpenMode;

/// Which variant (and prompt version) a unit gets, exactly as a GrowthBook SDK would assign it
#[derive(Debug, Args)]
#[command(after_help = "\
The unit id is hashed with the portfolio's seed (FNV-1a over UTF-16 code units, GrowthBook hash v1/v2);
the segment is the first whose `when:` rule matches the --attr values (the unit id is also visible under
the hash attribute's name). Unit ids are any UTF-8 text without control characters.

--units-file FILE reads one id per line (blank lines skipped, CRLF accepted) and writes one JSON record
per line, whatever --format says: {\"portfolio\",\"unit\",\"segment\",\"variant\",\"version\",\"bucket\"}.
Bad ids are skipped and reported on stderr with their line numbers (exit 2).

Examples:
  promptctl portfolio assign support-reply --unit u-000123 --attr plan=enterprise
  promptctl portfolio assign support-reply --units-file users.txt > assignments.jsonl")]
pub struct AssignArgs {
    /// Portfolio name
    pub name: String,

    /// The unit id (the value of the portfolio's hash attribute)
    #[arg(long, required_unless_present = "units_file", conflicts_with = "units_file")]
    pub unit: Option<String>,

    /// A file of unit ids, one per line; writes JSONL
    #[arg(long, value_name = "FILE")]
    pub units_file: Option<PathBuf>,

    /// A unit attribute for segment rules, K=V (repeatable; with --units-file, applies to every unit)
    #[arg(long = "attr", value_name = "K=V")]
    pub attrs: Vec<String>,
}

#[derive(Serialize)]
struct Record<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<&'static str>,
    portfolio: &'a str,
    unit: &'a str,
    segment: &'a str,
    variant: Option<&'a str>,
    version: &'a str,
    bucket: f64,
}

pub fn run(ctx: &mut Context, args: AssignArgs) -> CmdResult {
    let attrs = parse_attrs(&args.attrs)?;
    let store = ctx.open_store(OpenMode::MustExist)?;
    let version = current(&store, &args.name)?;
    drop(store);
    let portfolio = version.spec;
    let assigner =
        Assigner::new(&portfolio).map_err(|e| CliError::state(format!("stored rule no longer compiles: {e}")))?;
    match (&args.unit, &args.units_file) {
        (Some(unit), _) => assign_one(ctx, &assigner, unit, &attrs),
        (None, Some(file)) => assign_file(ctx, &assigner, file, &attrs),
        (None, None) => Err(CliError::input("pass --unit ID or --units-file FILE")),
    }
}

fn assign_one(
    ctx: &mut Context,
    assigner: &Assigner<'_>,
    unit: &str,
    attrs: &std::collections::BTreeMap<String, String>,
) -> CmdResult {
    check_unit_id(unit).map_err(|e| {
        CliError::input(format!("--unit {}: {e}", serde_json::Value::String(unit.to_string())))
            .with_hint("unit ids are any UTF-8 text without control characters (tabs, newlines, NUL, …)")
    })?;
    let placed = assigner.place(unit, attrs);
    let record = record(assigner, unit, &placed);
    if ctx.out.is_human() {
        let variant = record.variant.unwrap_or("(outside coverage)");
        ctx.out.line(&format!(
            "{unit} → {variant} ({}), segment {}, bucket {}",
            record.version, record.segment, record.bucket
        ))?;
    } else {
        ctx.out.document(&Record { schema: Some("promptctl.portfolio-assign/v1"), ..record })?;
    }
    Ok(Exit::Ok)
}

fn record<'a>(assigner: &'a Assigner<'_>, unit: &'a str, placed: &Placement) -> Record<'a> {
    let p = assigner.portfolio;
    Record {
        schema: None,
        portfolio: &p.name,
        unit,
        segment: &p.segments[placed.segment].name,
        variant: placed.variant.map(|v| p.variants[v].key.as_str()),
        version: assigner.served_version(placed),
        bucket: placed.bucket,
    }
}

/// JSON text fragments that are the same for every unit, so a record is a few appends.
struct Fragments {
    /// `{"portfolio":"…","unit":`
    head: String,
    /// Per segment, per variant (the last entry: outside coverage): `,"segment":…,"bucket":`
    middles: Vec<Vec<String>>,
    /// The bucket of every possible hash value, formatted as serde_json formats it.
    buckets: Vec<String>,
    resolution: f64,
}

impl Fragments {
    fn new(p: &Portfolio) -> Fragments {
        let json = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        let middle = |segment: &str, variant: Option<&str>, version: &str| {
            let variant = variant.map_or("null".to_string(), json);
            format!(r#","segment":{},"variant":{variant},"version":{},"bucket":"#, json(segment), json(version))
        };
        let middles = p
            .segments
            .iter()
            .map(|s| {
                let mut row: Vec<String> =
                    p.variants.iter().map(|v| middle(&s.name, Some(&v.key), &v.version)).collect();
                row.push(middle(&s.name, None, &p.variants[0].version));
                row
            })
            .collect();
        // Buckets are k/1000 (v1) or k/10000 (v2): every value can be formatted once up front.
        let steps = match p.hash_version() {
            HashVersion::V1 => 1_000,
            HashVersion::V2 => 10_000,
        };
        let buckets =
            (0..steps).map(|k| serde_json::to_string(&(f64::from(k) / f64::from(steps))).unwrap_or_default()).collect();
        Fragments {
            head: format!(r#"{{"portfolio":{},"unit":"#, json(&p.name)),
            middles,
            buckets,
            resolution: f64::from(steps),
        }
    }

    fn write(&self, out: &mut String, unit: &str, placed: &Placement) {
        out.push_str(&self.head);
        push_json_string(out, unit);
        let row = &self.middles[placed.segment];
        out.push_str(&row[placed.variant.unwrap_or(row.len() - 1)]);
        let k = (placed.bucket * self.resolution).round() as usize;
        out.push_str(&self.buckets[k.min(self.buckets.len() - 1)]);
        out.push_str("}\n");
    }
}

/// Ids have no control characters (checked), so only `"` and `\` need escaping.
fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    if text.contains(['"', '\\']) {
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    } else {
        out.push_str(text);
    }
    out.push('"');
}

const FLUSH_AT: usize = 1 << 20;
const MAX_REPORTED: usize = 10;

fn assign_file(
    ctx: &mut Context,
    assigner: &Assigner<'_>,
    file: &std::path::Path,
    attrs: &std::collections::BTreeMap<String, String>,
) -> CmdResult {
    let path = ctx.cwd().join(file);
    let shown = ctx.display_path(&path);
    let handle = std::fs::File::open(&path).map_err(|e| CliError::input(format!("{shown}: cannot open: {e}")))?;
    let mut reader = std::io::BufReader::with_capacity(1 << 16, handle);
    let fragments = Fragments::new(assigner.portfolio);
    // When no rule looks at the unit id, every unit of the file is in the same segment.
    let fixed_segment = (!rules_read_the_unit(assigner.portfolio)).then(|| assigner.segment_of("", attrs));
    let mut out = String::with_capacity(FLUSH_AT + 4096);
    let mut line = Vec::with_capacity(256);
    let (mut number, mut assigned, mut bad) = (0usize, 0usize, Vec::new());
    loop {
        line.clear();
        let read = reader.read_until(b'\n', &mut line).map_err(|e| CliError::input(format!("{shown}: {e}")))?;
        if read == 0 {
            break;
        }
        number += 1;
        let trimmed = strip_line_end(&line);
        if trimmed.is_empty() {
            continue;
        }
        let unit = match std::str::from_utf8(trimmed) {
            Ok(unit) => unit,
            Err(_) => {
                bad.push((number, "not valid UTF-8".to_string()));
                continue;
            }
        };
        if let Err(e) = check_unit_id(unit) {
            bad.push((number, e.to_string()));
            continue;
        }
        let placed = match fixed_segment {
            Some(segment) => assigner.place_in(segment, unit),
            None => assigner.place(unit, attrs),
        };
        fragments.write(&mut out, unit, &placed);
        assigned += 1;
        if out.len() >= FLUSH_AT {
            ctx.out.text(&out)?;
            out.clear();
        }
    }
    ctx.out.text(&out)?;
    if assigned == 0 && bad.is_empty() {
        return Err(
            CliError::input(format!("{shown}: no unit ids (the file is empty)")).with_hint("put one unit id per line")
        );
    }
    if bad.is_empty() {
        return Ok(Exit::Ok);
    }
    for (line, message) in bad.iter().take(MAX_REPORTED) {
        ctx.msg.warn(&format!("{shown}:{line}: {message}; skipped"));
    }
    let more = bad.len().saturating_sub(MAX_REPORTED);
    let mut e = CliError::input(format!("{shown}: {} bad unit id(s) skipped, {assigned} assigned", bad.len()))
        .with_hint("unit ids are any UTF-8 text without control characters (tabs, NUL, …), one per line");
    if more > 0 {
        e = e.with_hint(format!("{more} more bad line(s) not shown"));
    }
    Err(e)
}

fn strip_line_end(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

fn rules_read_the_unit(p: &Portfolio) -> bool {
    p.segments
        .iter()
        .filter_map(|s| s.when.as_ref())
        .any(|r| r.conditions.iter().any(|c| c.attribute == p.hash_attribute))
}
