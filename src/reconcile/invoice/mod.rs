//! Invoice importers: what the provider billed, as normalized lines.
//!
//! Eight inputs are read, each detected by content (docs/reconcile.md lists the fields read):
//!
//! | provider | API JSON (one page, an array of pages, or pages one per line) | dashboard CSV export |
//! |---|---|---|
//! | OpenAI | Usage API `/v1/organization/usage/completions` pages; Costs API `/v1/organization/costs` pages | usage export; costs export |
//! | Anthropic | Admin API `usage_report/messages` pages; `cost_report` pages (amounts in cents, as decimal strings) | usage export; cost export |
//!
//! Every amount is parsed from its decimal text into exact pico-dollars (never through a float), every
//! time is normalized to UTC. [`combine`] then checks the files belong together (one organization),
//! drops buckets outside the window and counts overlapping pages once.

mod classify;
mod csv;
mod json;
mod time;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;

use jiff::Timestamp;
use serde::Serialize;

use super::value::Counts;
use super::window::{SECONDS_PER_DAY, Window};
use crate::diag::InputError;
use crate::money::Usd;
use crate::pricing::{Provider, Tier};

/// Which export a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    OpenAiUsageJson,
    OpenAiCostsJson,
    AnthropicUsageJson,
    AnthropicCostJson,
    OpenAiUsageCsv,
    OpenAiCostsCsv,
    AnthropicUsageCsv,
    AnthropicCostCsv,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Format::OpenAiUsageJson => "OpenAI Usage API (completions) JSON",
            Format::OpenAiCostsJson => "OpenAI Costs API JSON",
            Format::AnthropicUsageJson => "Anthropic usage report JSON",
            Format::AnthropicCostJson => "Anthropic cost report JSON",
            Format::OpenAiUsageCsv => "OpenAI usage CSV export",
            Format::OpenAiCostsCsv => "OpenAI costs CSV export",
            Format::AnthropicUsageCsv => "Anthropic usage CSV export",
            Format::AnthropicCostCsv => "Anthropic cost CSV export",
        }
    }

    pub fn provider(self) -> Provider {
        match self {
            Format::OpenAiUsageJson | Format::OpenAiCostsJson | Format::OpenAiUsageCsv | Format::OpenAiCostsCsv => {
                Provider::OpenAi
            }
            _ => Provider::Anthropic,
        }
    }
}

/// Where a line came from: the file (index into the files given) and its 1-based line in that file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub file: usize,
    pub line: usize,
}

/// One normalized invoice line: a bucket of time and either token usage or an amount.
#[derive(Debug, Clone, PartialEq)]
pub struct InvoiceLine {
    pub provider: Provider,
    /// The bucket, in UTC.
    pub start: Timestamp,
    pub end: Timestamp,
    pub origin: Origin,
    pub model: Option<String>,
    /// OpenAI project id or Anthropic workspace id.
    pub project: Option<String>,
    pub api_key: Option<String>,
    pub detail: Detail,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Detail {
    Usage(UsageDetail),
    Cost(CostDetail),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsageDetail {
    /// Billed tokens by class (uncached input, cache read, cache write 5m and 1h, output).
    pub tokens: Counts,
    /// OpenAI's `num_model_requests`; Anthropic's usage report has no request counts.
    pub requests: Option<u64>,
    pub tier: BilledTier,
    /// Billed at the long-context rate (Anthropic `context_window` "200k-1M"); `None` when not reported.
    pub long_context: Option<bool>,
    /// Server-side web searches (Anthropic `server_tool_use.web_search_requests`).
    pub web_search_requests: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CostDetail {
    pub usd: Usd,
    pub kind: CostKind,
    /// The tier named by the line, when it names one.
    pub tier: Option<BilledTier>,
    pub long_context: Option<bool>,
    /// The line as the provider describes it (line item, description, cost type and token type).
    pub description: String,
}

/// What an amount pays for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum CostKind {
    /// Tokens of a model: one class (index into `value::CLASSES`) or, when the line does not say, all.
    Tokens(Option<usize>),
    /// A metered tool: web search, code execution, file search…
    ToolFee(String),
    /// Anything else: credits, adjustments, tax, support plans.
    Other,
}

/// A service tier as billed: a priced tier, or a label the price book has no prices for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BilledTier {
    pub tier: Tier,
    /// The provider's label when it is not one the book prices (OpenAI `scale`); priced as `tier`.
    pub unpriced_label: Option<String>,
}

impl BilledTier {
    pub fn priced(tier: Tier) -> BilledTier {
        BilledTier { tier, unpriced_label: None }
    }

    /// From a provider's `service_tier` label and batch flag.
    pub fn from_labels(service_tier: Option<&str>, batch: bool) -> BilledTier {
        match Tier::from_request(service_tier, batch) {
            Some(tier) => BilledTier::priced(tier),
            None => BilledTier { tier: Tier::Standard, unpriced_label: service_tier.map(str::to_string) },
        }
    }
}

/// A parsed invoice file.
#[derive(Debug, Clone)]
pub struct InvoiceFile {
    /// As the user would type it.
    pub path: String,
    pub formats: Vec<Format>,
    /// Organizations named in the file (OpenAI `organization_id`, CSV `organization_id` columns).
    pub organizations: Vec<String>,
    pub lines: Vec<InvoiceLine>,
}

/// Reads one invoice file, detecting its format by content. `file` is its index among the files given.
pub fn read(text: &str, path: &str, file: usize) -> Result<InvoiceFile, InputError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let first = text.trim_start().chars().next();
    match first {
        None => Err(InputError::new(path, "the invoice file is empty")
            .with_hint("export the usage or cost data again; an empty file cannot be reconciled")),
        Some('{' | '[') => json::read(text, path, file),
        Some(_) => csv::read(text, path, file),
    }
}

/// Invoice lines from several files, checked and deduplicated, restricted to a window.
#[derive(Debug, Clone, Default)]
pub struct Invoice {
    pub lines: Vec<InvoiceLine>,
    pub files: Vec<String>,
    /// What the reader should know: overlaps removed, buckets outside the window, misaligned days.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceError {
    #[error(
        "the invoice files come from two organizations: {first_org} ({first_file}) and {second_org} ({second_file})"
    )]
    Organizations { first_org: String, first_file: String, second_org: String, second_file: String },
    #[error(
        "{second}:{second_line} and {first}:{first_line} both bill {what} but with different values; they are not copies of the same page"
    )]
    Conflict { what: String, first: String, first_line: usize, second: String, second_line: usize },
    #[error("the invoice files hold no usage or cost lines")]
    Empty,
    #[error("none of the invoice lines falls in the window {window}; the files cover {covered}")]
    OutsideWindow { window: String, covered: String },
}

impl InvoiceError {
    pub fn hint(&self) -> Option<String> {
        match self {
            InvoiceError::Organizations { .. } => {
                Some("reconcile one organization at a time: pass only that organization's files".into())
            }
            InvoiceError::Conflict { .. } => Some(
                "keep one export of each period: a page fetched before the day was over differs from a later one"
                    .into(),
            ),
            InvoiceError::Empty => Some("export usage (and cost) data for the month; see docs/reconcile.md".into()),
            InvoiceError::OutsideWindow { .. } => Some("pass --month for the month the files cover".into()),
        }
    }
}

/// Checks that the files belong together, keeps the lines in `window`, and counts repeated lines once.
pub fn combine(files: Vec<InvoiceFile>, window: &Window) -> Result<Invoice, InvoiceError> {
    check_one_organization(&files)?;
    let paths: Vec<String> = files.iter().map(|f| f.path.clone()).collect();
    let mut notes = Vec::new();
    let mut kept: Vec<InvoiceLine> = Vec::new();
    let mut seen: HashMap<LineKey, usize> = HashMap::new();
    let mut repeats: HashMap<(usize, usize), usize> = HashMap::new();
    let mut any_line = false;
    let mut covered: Option<(Timestamp, Timestamp)> = None;
    for file in &files {
        any_line |= !file.lines.is_empty();
        let placement = Placement::of(&file.lines, window);
        notes.extend(placement.notes(&file.path, window));
        for line in &file.lines {
            covered = Some(match covered {
                None => (line.start, line.end),
                Some((a, b)) => (a.min(line.start), b.max(line.end)),
            });
            if !in_window(line, window) {
                continue;
            }
            match seen.entry(LineKey::of(line)) {
                Entry::Vacant(slot) => {
                    slot.insert(kept.len());
                    kept.push(line.clone());
                }
                Entry::Occupied(slot) => {
                    let first = &kept[*slot.get()];
                    if first.detail != line.detail {
                        return Err(conflict(first, line, &paths));
                    }
                    *repeats.entry((first.origin.file, line.origin.file)).or_default() += 1;
                }
            }
        }
    }
    if !any_line {
        return Err(InvoiceError::Empty);
    }
    if kept.is_empty() {
        let covered = covered.map_or("nothing".to_string(), |(a, b)| format!("{a} – {b}"));
        return Err(InvoiceError::OutsideWindow { window: window.to_string(), covered });
    }
    notes.extend(repeat_notes(&repeats, &paths));
    Ok(Invoice { lines: kept, files: paths, notes })
}

fn check_one_organization(files: &[InvoiceFile]) -> Result<(), InvoiceError> {
    let mut first: Option<(&str, &str)> = None;
    for file in files {
        for org in &file.organizations {
            match first {
                None => first = Some((org, &file.path)),
                Some((first_org, first_file)) if first_org != org => {
                    return Err(InvoiceError::Organizations {
                        first_org: first_org.to_string(),
                        first_file: first_file.to_string(),
                        second_org: org.clone(),
                        second_file: file.path.clone(),
                    });
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// A bucket belongs to the window when its midpoint does: a daily bucket exported in a local time zone
/// (starting at 22:00Z or 07:00Z) then lands on the UTC day most of it covers.
pub fn in_window(line: &InvoiceLine, window: &Window) -> bool {
    window.contains_seconds(midpoint_second(line))
}

/// The UTC instant halfway through a line's bucket, in seconds.
pub fn midpoint_second(line: &InvoiceLine) -> i64 {
    let (a, b) = (line.start.as_second(), line.end.as_second().max(line.start.as_second()));
    a + (b - a) / 2
}

/// How a file's buckets sit against the window and UTC days.
struct Placement {
    outside: usize,
    straddling: usize,
    misaligned: usize,
}

impl Placement {
    fn of(lines: &[InvoiceLine], window: &Window) -> Placement {
        let mut p = Placement { outside: 0, straddling: 0, misaligned: 0 };
        for line in lines {
            let (start, end) = (line.start.as_second(), line.end.as_second());
            if !in_window(line, window) {
                p.outside += 1;
            } else if start < window.start.as_second() || end > window.end.as_second() {
                p.straddling += 1;
            }
            if end - start >= SECONDS_PER_DAY && start.rem_euclid(SECONDS_PER_DAY) != 0 {
                p.misaligned += 1;
            }
        }
        p
    }

    fn notes(&self, path: &str, window: &Window) -> Vec<String> {
        let mut notes = Vec::new();
        if self.outside > 0 {
            notes.push(format!(
                "{path}: {} line{} outside the window {window} left out",
                self.outside,
                plural(self.outside)
            ));
        }
        if self.straddling > 0 {
            notes.push(format!(
                "{path}: {} bucket{} cross the window's edge; counted whole by their midpoint",
                self.straddling,
                plural(self.straddling)
            ));
        }
        if self.misaligned > 0 {
            notes.push(format!(
                "{path}: {} daily bucket{} do not start at UTC midnight (a local-time export?); each is matched to the UTC day of its midpoint — export in UTC for exact days",
                self.misaligned,
                plural(self.misaligned)
            ));
        }
        notes
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// What makes two lines the same line of the same bill, whichever file or format they came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LineKey {
    provider: Provider,
    start: i64,
    end: i64,
    model: Option<String>,
    project: Option<String>,
    api_key: Option<String>,
    what: LineWhat,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum LineWhat {
    Usage { tier: BilledTier, long_context: Option<bool> },
    Cost { kind: CostKind, tier: Option<BilledTier>, long_context: Option<bool>, description: String },
}

impl LineKey {
    fn of(line: &InvoiceLine) -> LineKey {
        let what = match &line.detail {
            Detail::Usage(u) => LineWhat::Usage { tier: u.tier.clone(), long_context: u.long_context },
            Detail::Cost(c) => LineWhat::Cost {
                kind: c.kind.clone(),
                tier: c.tier.clone(),
                long_context: c.long_context,
                description: c.description.to_ascii_lowercase(),
            },
        };
        LineKey {
            provider: line.provider,
            start: line.start.as_second(),
            end: line.end.as_second(),
            model: line.model.as_ref().map(|m| m.to_ascii_lowercase()),
            project: line.project.clone(),
            api_key: line.api_key.clone(),
            what,
        }
    }
}

fn conflict(first: &InvoiceLine, second: &InvoiceLine, paths: &[String]) -> InvoiceError {
    InvoiceError::Conflict {
        what: describe_line(first),
        first: paths[first.origin.file].clone(),
        first_line: first.origin.line,
        second: paths[second.origin.file].clone(),
        second_line: second.origin.line,
    }
}

fn repeat_notes(repeats: &HashMap<(usize, usize), usize>, paths: &[String]) -> Vec<String> {
    let mut pairs: Vec<_> = repeats.iter().collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(&(first, second), &n)| {
            if first == second {
                format!(
                    "{}: {n} line{} repeated within the file (overlapping pages); counted once",
                    paths[first],
                    plural(n)
                )
            } else {
                format!(
                    "{}: {n} line{} repeat lines of {} (overlapping pages); counted once",
                    paths[second],
                    plural(n),
                    paths[first]
                )
            }
        })
        .collect()
}

/// A short description of a line for messages: `openai gpt-4o-mini-2024-07-18 usage on 2026-10-03`.
pub fn describe_line(line: &InvoiceLine) -> String {
    let what = match &line.detail {
        Detail::Usage(_) => "usage".to_string(),
        Detail::Cost(c) => format!("cost `{}`", c.description),
    };
    let model = line.model.as_deref().map(|m| format!(" {m}")).unwrap_or_default();
    let project = line.project.as_deref().map(|p| format!(" ({p})")).unwrap_or_default();
    format!("{}{model}{project} {what} for {}", line.provider, line.start)
}

impl fmt::Display for InvoiceLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&describe_line(self))
    }
}

#[cfg(test)]
mod tests;
