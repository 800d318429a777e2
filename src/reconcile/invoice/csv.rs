//! Dashboard CSV exports, recognized by their header row. Column names mirror the API fields
//! (docs/reconcile.md lists every accepted name); case, spaces, dots and dashes do not matter.

use std::collections::HashMap;

use super::classify::{anthropic_context, anthropic_cost, openai_line_item};
use super::json::parse_decimal_amount;
use super::time;
use super::{BilledTier, CostDetail, Detail, Format, InvoiceFile, InvoiceLine, Origin, UsageDetail};
use crate::diag::InputError;
use crate::money::Usd;
use crate::reconcile::value::Counts;

const START: &[&str] =
    &["start_time_iso", "start_time", "starting_at", "bucket_start_time", "date", "usage_date_utc", "day"];
const END: &[&str] = &["end_time_iso", "end_time", "ending_at", "bucket_end_time"];

/// The header rows promptctl recognizes, for the error message when a header is not one of them.
pub const EXPECTED: &str = "\
OpenAI usage export: start_time_iso (or start_time/date), model, input_tokens, output_tokens, input_cached_tokens, num_model_requests[, end_time_iso, project_id, api_key_id, batch, service_tier, organization_id]
  OpenAI costs export: start_time_iso (or start_time/date), amount_value, line_item[, amount_currency, end_time_iso, project_id, organization_id]
  Anthropic usage export: starting_at (or date), model, uncached_input_tokens, cache_read_input_tokens, cache_creation_ephemeral_5m_input_tokens, cache_creation_ephemeral_1h_input_tokens, output_tokens[, ending_at, web_search_requests, workspace_id, api_key_id, service_tier, context_window]
  Anthropic cost export: starting_at (or date), amount (cents) or cost_usd (dollars), cost_type, token_type[, currency, ending_at, model, workspace_id, service_tier, context_window, description]";

pub fn read(text: &str, path: &str, file: usize) -> Result<InvoiceFile, InputError> {
    let mut reader = ::csv::ReaderBuilder::new().has_headers(true).flexible(true).from_reader(text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| InputError::new(path, format!("cannot read the CSV header: {e}")).at(1, 1))?
        .iter()
        .map(normalize)
        .collect();
    let columns = Columns::new(&header);
    let format = detect(&columns).ok_or_else(|| {
        InputError::new(
            path,
            format!("unrecognized CSV header ({}); expected one of:\n  {EXPECTED}", header.join(", ")),
        )
        .at(1, 1)
        .with_hint("rename the columns to these names, or use the API JSON pages instead")
    })?;
    columns.require(format, path)?;
    let mut out =
        InvoiceFile { path: path.to_string(), formats: vec![format], organizations: Vec::new(), lines: Vec::new() };
    for record in reader.records() {
        let record = record.map_err(|e| {
            let line = e.position().map_or(1, |p| p.line() as usize);
            InputError::new(path, format!("cannot read the CSV row: {e}")).at_line(line)
        })?;
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        let row =
            Row { record: &record, columns: &columns, path, line: record.position().map_or(0, |p| p.line() as usize) };
        if let Some(org) = row.text(&["organization_id"]) {
            out.organizations.push(org);
        }
        out.lines.push(row.line(format, file)?);
    }
    out.organizations.sort();
    out.organizations.dedup();
    Ok(out)
}

/// `Cache Creation.Ephemeral 5m Input Tokens` → `cache_creation_ephemeral_5m_input_tokens`.
fn normalize(name: &str) -> String {
    name.trim()
        .trim_start_matches('\u{feff}')
        .trim_matches('"')
        .trim()
        .to_ascii_lowercase()
        .replace([' ', '.', '-'], "_")
}

struct Columns {
    index: HashMap<String, usize>,
}

impl Columns {
    fn new(header: &[String]) -> Columns {
        Columns { index: header.iter().enumerate().map(|(i, h)| (h.clone(), i)).collect() }
    }

    fn has(&self, name: &str) -> bool {
        self.index.contains_key(name)
    }

    fn find(&self, names: &[&str]) -> Option<usize> {
        names.iter().find_map(|n| self.index.get(*n).copied())
    }

    /// The columns a recognized export cannot do without.
    fn require(&self, format: Format, path: &str) -> Result<(), InputError> {
        let required: &[&[&str]] = match format {
            Format::OpenAiUsageCsv => &[START, &["model"], &["input_tokens"], &["output_tokens"]],
            Format::OpenAiCostsCsv => &[START, AMOUNT_DOLLARS],
            Format::AnthropicUsageCsv => &[START, &["model"], &["uncached_input_tokens"], &["output_tokens"]],
            _ => &[START, &["amount", "amount_cents", "cost_usd", "amount_usd"]],
        };
        for names in required {
            if self.find(names).is_none() {
                return Err(InputError::new(
                    path,
                    format!(
                        "this looks like an {} but has no `{}` column; expected:\n  {EXPECTED}",
                        format.describe(),
                        names[0]
                    ),
                )
                .at(1, 1));
            }
        }
        Ok(())
    }
}

const AMOUNT_DOLLARS: &[&str] = &["amount_value", "amount_usd", "cost_usd", "amount"];

fn detect(columns: &Columns) -> Option<Format> {
    if columns.has("uncached_input_tokens") {
        Some(Format::AnthropicUsageCsv)
    } else if columns.has("token_type") || columns.has("cost_type") {
        Some(Format::AnthropicCostCsv)
    } else if columns.has("num_model_requests") || columns.has("input_cached_tokens") {
        Some(Format::OpenAiUsageCsv)
    } else if columns.has("amount_value") || columns.has("line_item") {
        Some(Format::OpenAiCostsCsv)
    } else {
        None
    }
}

struct Row<'a> {
    record: &'a ::csv::StringRecord,
    columns: &'a Columns,
    path: &'a str,
    line: usize,
}

impl Row<'_> {
    fn field(&self, names: &[&str]) -> Option<(usize, &str)> {
        let i = self.columns.find(names)?;
        self.record.get(i).map(|v| (i, v.trim())).filter(|(_, v)| !v.is_empty())
    }

    fn text(&self, names: &[&str]) -> Option<String> {
        self.field(names).map(|(_, v)| v.to_string())
    }

    /// An error about the field at column index `i`, positioned at its first character (unquoted files).
    fn error(&self, i: usize, message: String) -> InputError {
        let column = 1 + (0..i).map(|j| self.record.get(j).map_or(0, |f| f.chars().count() + 1)).sum::<usize>();
        InputError::new(self.path, message).at(self.line.max(2), column)
    }

    fn tokens(&self, names: &[&str]) -> Result<u64, InputError> {
        let Some((i, v)) = self.field(names) else { return Ok(0) };
        parse_count(v).ok_or_else(|| self.error(i, format!("{} `{v}` is not a token count", names[0])))
    }

    fn optional_count(&self, names: &[&str]) -> Result<Option<u64>, InputError> {
        match self.field(names) {
            None => Ok(None),
            Some((i, v)) => {
                parse_count(v).map(Some).ok_or_else(|| self.error(i, format!("{} `{v}` is not a count", names[0])))
            }
        }
    }

    fn flag(&self, names: &[&str]) -> Result<Option<bool>, InputError> {
        let Some((i, v)) = self.field(names) else { return Ok(None) };
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "y" => Ok(Some(true)),
            "false" | "0" | "no" | "n" => Ok(Some(false)),
            _ => Err(self.error(i, format!("{} `{v}` is not true or false", names[0]))),
        }
    }

    fn span(&self) -> Result<(jiff::Timestamp, jiff::Timestamp), InputError> {
        let (i, v) = self.field(START).ok_or_else(|| self.error(0, "the row has no start time".into()))?;
        let start = time::parse(v).map_err(|m| self.error(i, m))?;
        let end = match self.field(END) {
            Some((j, e)) => time::parse(e).map_err(|m| self.error(j, m))?.ts,
            None => time::default_end(start),
        };
        Ok((start.ts, end))
    }

    fn amount(&self, dollars: &[&str], cents: &[&str]) -> Result<Usd, InputError> {
        let (i, v, scale) = match (self.field(cents), self.field(dollars)) {
            (Some((i, v)), _) => (i, v, -2),
            (None, Some((i, v))) => (i, v, 0),
            (None, None) => return Ok(Usd::ZERO),
        };
        let v = v.trim_start_matches('$');
        parse_decimal_amount(v, scale).map_err(|m| self.error(i, m))
    }

    fn line(&self, format: Format, file: usize) -> Result<InvoiceLine, InputError> {
        let (start, end) = self.span()?;
        let (model, project, api_key, detail) = match format {
            Format::OpenAiUsageCsv => self.openai_usage()?,
            Format::OpenAiCostsCsv => self.openai_cost()?,
            Format::AnthropicUsageCsv => self.anthropic_usage()?,
            _ => self.anthropic_cost()?,
        };
        Ok(InvoiceLine {
            provider: format.provider(),
            start,
            end,
            origin: Origin { file, line: self.line },
            model,
            project,
            api_key,
            detail,
        })
    }

    fn openai_usage(&self) -> Result<Parts, InputError> {
        let input = self.tokens(&["input_tokens"])?;
        let cached = self.tokens(&["input_cached_tokens"])?;
        if cached > input {
            let i = self.columns.find(&["input_cached_tokens"]).unwrap_or(0);
            return Err(self.error(i, format!("input_cached_tokens ({cached}) exceeds input_tokens ({input}); OpenAI counts cached tokens inside input_tokens")));
        }
        let tier =
            BilledTier::from_labels(self.text(&["service_tier"]).as_deref(), self.flag(&["batch"])?.unwrap_or(false));
        let detail = UsageDetail {
            tokens: Counts([input - cached, cached, 0, 0, self.tokens(&["output_tokens"])?]),
            requests: self.optional_count(&["num_model_requests"])?,
            tier,
            long_context: None,
            web_search_requests: 0,
        };
        Ok((self.text(&["model"]), self.text(&["project_id"]), self.text(&["api_key_id"]), Detail::Usage(detail)))
    }

    fn openai_cost(&self) -> Result<Parts, InputError> {
        self.check_usd(&["amount_currency", "currency"])?;
        let usd = self.amount(AMOUNT_DOLLARS, &[])?;
        let item = self.text(&["line_item"]);
        let (model, kind, tier) = openai_line_item(item.as_deref());
        let detail = CostDetail { usd, kind, tier, long_context: None, description: item.unwrap_or_default() };
        Ok((model, self.text(&["project_id"]), None, Detail::Cost(detail)))
    }

    fn anthropic_usage(&self) -> Result<Parts, InputError> {
        let tokens = Counts([
            self.tokens(&["uncached_input_tokens"])?,
            self.tokens(&["cache_read_input_tokens"])?,
            self.tokens(&["cache_creation_ephemeral_5m_input_tokens", "cache_creation_input_tokens"])?,
            self.tokens(&["cache_creation_ephemeral_1h_input_tokens"])?,
            self.tokens(&["output_tokens"])?,
        ]);
        let detail = UsageDetail {
            tokens,
            requests: None,
            tier: BilledTier::from_labels(self.text(&["service_tier"]).as_deref(), false),
            long_context: anthropic_context(self.text(&["context_window"]).as_deref()),
            web_search_requests: self.tokens(&["web_search_requests", "server_tool_use_web_search_requests"])?,
        };
        Ok((self.text(&["model"]), self.text(&["workspace_id"]), self.text(&["api_key_id"]), Detail::Usage(detail)))
    }

    fn anthropic_cost(&self) -> Result<Parts, InputError> {
        self.check_usd(&["currency"])?;
        // `amount` is in cents as in the cost report API; `cost_usd`/`amount_usd` in dollars.
        let usd = self.amount(&["cost_usd", "amount_usd"], &["amount", "amount_cents"])?;
        let (cost_type, token_type, description) =
            (self.text(&["cost_type"]), self.text(&["token_type"]), self.text(&["description"]));
        let kind = anthropic_cost(cost_type.as_deref(), token_type.as_deref(), description.as_deref());
        let text = [description, cost_type, token_type].into_iter().flatten().collect::<Vec<_>>().join(" / ");
        let detail = CostDetail {
            usd,
            kind,
            tier: self.text(&["service_tier"]).map(|t| BilledTier::from_labels(Some(&t), false)),
            long_context: anthropic_context(self.text(&["context_window"]).as_deref()),
            description: text,
        };
        Ok((self.text(&["model"]), self.text(&["workspace_id"]), None, Detail::Cost(detail)))
    }

    fn check_usd(&self, names: &[&str]) -> Result<(), InputError> {
        match self.field(names) {
            Some((i, c)) if !c.eq_ignore_ascii_case("usd") => {
                Err(self.error(i, format!("amounts in `{c}`: reconcile works in USD, as OpenAI and Anthropic bill")))
            }
            _ => Ok(()),
        }
    }
}

type Parts = (Option<String>, Option<String>, Option<String>, Detail);

/// A token count: digits, optionally grouped by thousands separators (`1,234,567`).
fn parse_count(text: &str) -> Option<u64> {
    let t = text.trim();
    if let Ok(n) = t.parse::<u64>() {
        return Some(n);
    }
    let groups: Vec<&str> = t.split(',').collect();
    let grouped = groups.len() > 1
        && (1..=3).contains(&groups[0].len())
        && groups[1..].iter().all(|g| g.len() == 3)
        && groups.iter().all(|g| g.bytes().all(|b| b.is_ascii_digit()));
    if grouped { groups.concat().parse().ok() } else { None }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_accept_thousands_separators_only_when_grouped() {
        assert_eq!(parse_count("1,234,567"), Some(1_234_567));
        assert_eq!(parse_count("42"), Some(42));
        assert_eq!(parse_count("12,34"), None);
        assert_eq!(parse_count("1.5"), None);
    }

    #[test]
    fn header_names_are_normalized() {
        assert_eq!(normalize(" Cache Creation.Ephemeral 5m Input Tokens "), "cache_creation_ephemeral_5m_input_tokens");
        assert_eq!(normalize("\u{feff}start-time-iso"), "start_time_iso");
    }
}
