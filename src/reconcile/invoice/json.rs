//! API JSON pages: OpenAI Usage (completions) and Costs API, Anthropic usage and cost reports.
//!
//! A file holds one page, an array of pages, or pages one after another (one per line). Each result is
//! kept as raw text until its format is known, so that errors point at the right line and column and so
//! that amounts are read from their decimal text, never through a float.

use std::borrow::Cow;

use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::classify::{anthropic_context, anthropic_cost, openai_line_item};
use super::time::{self, Instant};
use super::{BilledTier, CostDetail, Detail, Format, InvoiceFile, InvoiceLine, Origin, UsageDetail};
use crate::diag::{InputError, line_col};
use crate::money::{MoneyParseError, Usd};
use crate::pricing::Provider;
use crate::reconcile::value::Counts;

/// Reads every page in `text`.
pub fn read(text: &str, path: &str, file: usize) -> Result<InvoiceFile, InputError> {
    let reader = Reader { text, path, file, cursor: std::cell::Cell::new((0, 1, 0)) };
    let mut out =
        InvoiceFile { path: path.to_string(), formats: Vec::new(), organizations: Vec::new(), lines: Vec::new() };
    for page in reader.pages()? {
        reader.read_page(page, &mut out)?;
    }
    out.formats.dedup();
    out.organizations.sort();
    out.organizations.dedup();
    Ok(out)
}

struct Reader<'a> {
    text: &'a str,
    path: &'a str,
    file: usize,
    /// The last position computed (byte offset, 1-based line, byte offset of that line's start): results
    /// come in file order, so lines are counted once, not from the top for each result.
    cursor: std::cell::Cell<(usize, usize, usize)>,
}

#[derive(Deserialize)]
struct Page<'a> {
    #[serde(borrow)]
    data: Option<Vec<&'a RawValue>>,
}

#[derive(Deserialize)]
struct Bucket<'a> {
    /// OpenAI: Unix seconds.
    start_time: Option<i64>,
    end_time: Option<i64>,
    /// Anthropic: RFC 3339.
    #[serde(borrow)]
    starting_at: Option<Cow<'a, str>>,
    #[serde(borrow)]
    ending_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, alias = "result")]
    results: Vec<&'a RawValue>,
}

/// Just enough of a result to tell which format it is.
#[derive(Deserialize)]
struct Probe<'a> {
    #[serde(borrow)]
    object: Option<Cow<'a, str>>,
    num_model_requests: Option<IgnoredAny>,
    input_cached_tokens: Option<IgnoredAny>,
    uncached_input_tokens: Option<IgnoredAny>,
    cache_read_input_tokens: Option<IgnoredAny>,
    cache_creation: Option<IgnoredAny>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct OpenAiUsage<'a> {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    input_cached_tokens: Option<u64>,
    num_model_requests: Option<u64>,
    #[serde(borrow)]
    project_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    api_key_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    batch: Option<bool>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    organization_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OpenAiCost<'a> {
    #[serde(borrow)]
    amount: Option<OpenAiAmount<'a>>,
    #[serde(borrow)]
    line_item: Option<Cow<'a, str>>,
    #[serde(borrow)]
    project_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    organization_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct OpenAiAmount<'a> {
    #[serde(borrow)]
    value: &'a RawValue,
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct AnthropicUsage<'a> {
    uncached_input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation: Option<CacheCreation>,
    output_tokens: Option<u64>,
    server_tool_use: Option<ServerToolUse>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    context_window: Option<Cow<'a, str>>,
    #[serde(borrow)]
    workspace_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    api_key_id: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct CacheCreation {
    ephemeral_5m_input_tokens: Option<u64>,
    ephemeral_1h_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ServerToolUse {
    web_search_requests: Option<u64>,
}

#[derive(Deserialize)]
struct AnthropicCost<'a> {
    #[serde(borrow)]
    currency: Option<Cow<'a, str>>,
    #[serde(borrow)]
    amount: Option<&'a RawValue>,
    #[serde(borrow)]
    workspace_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    cost_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    context_window: Option<Cow<'a, str>>,
    #[serde(borrow)]
    model: Option<Cow<'a, str>>,
    #[serde(borrow)]
    service_tier: Option<Cow<'a, str>>,
    #[serde(borrow)]
    token_type: Option<Cow<'a, str>>,
}

/// A bucket's span in UTC.
struct Span {
    start: jiff::Timestamp,
    end: jiff::Timestamp,
    provider: Option<Provider>,
}

fn owned(s: Option<Cow<'_, str>>) -> Option<String> {
    s.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

impl<'a> Reader<'a> {
    /// One page, an array of pages, or a stream of pages.
    fn pages(&self) -> Result<Vec<(&'a RawValue, Page<'a>)>, InputError> {
        let trimmed = self.text.trim_start();
        let raws: Vec<&'a RawValue> = if trimmed.starts_with('[') {
            serde_json::from_str::<Vec<&'a RawValue>>(self.text).map_err(|e| self.json_error(&e, 0))?
        } else {
            let mut raws = Vec::new();
            for item in serde_json::Deserializer::from_str(self.text).into_iter::<&'a RawValue>() {
                raws.push(item.map_err(|e| self.json_error(&e, 0))?);
            }
            raws
        };
        raws.into_iter()
            .map(|raw| {
                let page: Page<'a> = self.parse_at(raw)?;
                if page.data.is_none() {
                    let (line, column) = self.position(raw);
                    return Err(InputError::new(
                        self.path,
                        "expected an API page with `data` (a list of time buckets)",
                    )
                    .at(line, column)
                    .with_hint(
                        "reconcile reads raw pages of the OpenAI Usage/Costs APIs and the Anthropic usage/cost reports",
                    ));
                }
                Ok((raw, page))
            })
            .collect()
    }

    fn read_page(&self, (_, page): (&'a RawValue, Page<'a>), out: &mut InvoiceFile) -> Result<(), InputError> {
        for bucket_raw in page.data.unwrap_or_default() {
            let bucket: Bucket<'a> = self.parse_at(bucket_raw)?;
            let span = self.span(&bucket, bucket_raw)?;
            for result in &bucket.results {
                let format = self.detect(result, span.provider)?;
                if !out.formats.contains(&format) {
                    out.formats.push(format);
                }
                let line = match format {
                    Format::OpenAiUsageJson => self.openai_usage(result, &span, out)?,
                    Format::OpenAiCostsJson => self.openai_cost(result, &span, out)?,
                    Format::AnthropicUsageJson => self.anthropic_usage(result, &span)?,
                    _ => self.anthropic_cost(result, &span)?,
                };
                out.lines.push(line);
            }
        }
        Ok(())
    }

    fn span(&self, bucket: &Bucket<'_>, raw: &RawValue) -> Result<Span, InputError> {
        let at = |message: String| {
            let (line, column) = self.position(raw);
            InputError::new(self.path, message).at(line, column)
        };
        if let Some(start) = bucket.start_time {
            let start = time::unix_seconds(start).map_err(at)?;
            let end = match bucket.end_time {
                Some(end) => time::unix_seconds(end).map_err(at)?,
                None => time::default_end(Instant { ts: start, date_only: false }),
            };
            return Ok(Span { start, end, provider: Some(Provider::OpenAi) });
        }
        let Some(start) = bucket.starting_at.as_deref() else {
            return Err(at("a time bucket without `start_time` (OpenAI) or `starting_at` (Anthropic)".into()));
        };
        let start = time::parse(start).map_err(at)?;
        let end = match bucket.ending_at.as_deref() {
            Some(end) => time::parse(end).map_err(at)?.ts,
            None => time::default_end(start),
        };
        Ok(Span { start: start.ts, end, provider: Some(Provider::Anthropic) })
    }

    fn detect(&self, result: &'a RawValue, bucket_provider: Option<Provider>) -> Result<Format, InputError> {
        let probe: Probe<'a> = self.parse_at(result)?;
        let object = probe.object.as_deref().unwrap_or("");
        if object == "organization.usage.completions.result"
            || probe.num_model_requests.is_some()
            || probe.input_cached_tokens.is_some()
        {
            return Ok(Format::OpenAiUsageJson);
        }
        if object.starts_with("organization.usage.") {
            let (line, column) = self.position(result);
            return Err(InputError::new(self.path, format!("`{object}` pages are not supported"))
                .at(line, column)
                .with_hint("reconcile reads the completions usage endpoint (/v1/organization/usage/completions) and the Costs API"));
        }
        let amount_is_object = probe.amount.is_some_and(|a| a.get().trim_start().starts_with('{'));
        if object == "organization.costs.result" || amount_is_object {
            return Ok(Format::OpenAiCostsJson);
        }
        if probe.uncached_input_tokens.is_some()
            || probe.cache_read_input_tokens.is_some()
            || probe.cache_creation.is_some()
        {
            return Ok(Format::AnthropicUsageJson);
        }
        if probe.amount.is_some() && bucket_provider == Some(Provider::Anthropic) {
            return Ok(Format::AnthropicCostJson);
        }
        let (line, column) = self.position(result);
        Err(InputError::new(self.path, "cannot tell which invoice export this result belongs to")
            .at(line, column)
            .with_hint("expected OpenAI usage (num_model_requests, input_tokens…) or costs (amount.value, line_item) results, or Anthropic usage (uncached_input_tokens…) or cost (amount, cost_type…) results"))
    }

    fn openai_usage(&self, raw: &'a RawValue, span: &Span, out: &mut InvoiceFile) -> Result<InvoiceLine, InputError> {
        let r: OpenAiUsage<'a> = self.parse_at(raw)?;
        let input = r.input_tokens.unwrap_or(0);
        let cached = r.input_cached_tokens.unwrap_or(0);
        if cached > input {
            return Err(self.error_at(raw, "input_cached_tokens", format!("input_cached_tokens ({cached}) exceeds input_tokens ({input}); OpenAI counts cached tokens inside input_tokens")));
        }
        out.organizations.extend(owned(r.organization_id));
        let tokens = Counts([input - cached, cached, 0, 0, r.output_tokens.unwrap_or(0)]);
        let tier = BilledTier::from_labels(r.service_tier.as_deref(), r.batch.unwrap_or(false));
        Ok(self.line(
            raw,
            span,
            Provider::OpenAi,
            owned(r.model),
            owned(r.project_id),
            owned(r.api_key_id),
            Detail::Usage(UsageDetail {
                tokens,
                requests: r.num_model_requests,
                tier,
                long_context: None,
                web_search_requests: 0,
            }),
        ))
    }

    fn openai_cost(&self, raw: &'a RawValue, span: &Span, out: &mut InvoiceFile) -> Result<InvoiceLine, InputError> {
        let r: OpenAiCost<'a> = self.parse_at(raw)?;
        let Some(amount) = r.amount else {
            return Err(self.error_at(raw, "amount", "a cost result without `amount`".into()));
        };
        check_usd(amount.currency.as_deref()).map_err(|m| self.error_at(raw, "currency", m))?;
        let usd = parse_amount(amount.value, 0).map_err(|m| self.error_at_raw(amount.value, m))?;
        out.organizations.extend(owned(r.organization_id));
        let description = r.line_item.as_deref().unwrap_or("").trim().to_string();
        let (model, kind, tier) = openai_line_item(r.line_item.as_deref());
        let detail = CostDetail { usd, kind, tier, long_context: None, description };
        Ok(self.line(raw, span, Provider::OpenAi, model, owned(r.project_id), None, Detail::Cost(detail)))
    }

    fn anthropic_usage(&self, raw: &'a RawValue, span: &Span) -> Result<InvoiceLine, InputError> {
        let r: AnthropicUsage<'a> = self.parse_at(raw)?;
        let (w5, w1) = r
            .cache_creation
            .map_or((0, 0), |c| (c.ephemeral_5m_input_tokens.unwrap_or(0), c.ephemeral_1h_input_tokens.unwrap_or(0)));
        let tokens = Counts([
            r.uncached_input_tokens.unwrap_or(0),
            r.cache_read_input_tokens.unwrap_or(0),
            w5,
            w1,
            r.output_tokens.unwrap_or(0),
        ]);
        let detail = UsageDetail {
            tokens,
            requests: None,
            tier: BilledTier::from_labels(r.service_tier.as_deref(), false),
            long_context: anthropic_context(r.context_window.as_deref()),
            web_search_requests: r.server_tool_use.and_then(|s| s.web_search_requests).unwrap_or(0),
        };
        Ok(self.line(
            raw,
            span,
            Provider::Anthropic,
            owned(r.model),
            owned(r.workspace_id),
            owned(r.api_key_id),
            Detail::Usage(detail),
        ))
    }

    fn anthropic_cost(&self, raw: &'a RawValue, span: &Span) -> Result<InvoiceLine, InputError> {
        let r: AnthropicCost<'a> = self.parse_at(raw)?;
        check_usd(r.currency.as_deref()).map_err(|m| self.error_at(raw, "currency", m))?;
        let Some(amount) = r.amount else {
            return Err(self.error_at(raw, "amount", "a cost result without `amount`".into()));
        };
        // Anthropic reports amounts in the currency's smallest unit (cents), as decimal strings.
        let usd = parse_amount(amount, -2).map_err(|m| self.error_at_raw(amount, m))?;
        let kind = anthropic_cost(r.cost_type.as_deref(), r.token_type.as_deref(), r.description.as_deref());
        let description = [r.description.as_deref(), r.cost_type.as_deref(), r.token_type.as_deref()]
            .into_iter()
            .flatten()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" / ");
        let tier = r.service_tier.as_deref().map(|t| BilledTier::from_labels(Some(t), false));
        let detail =
            CostDetail { usd, kind, tier, long_context: anthropic_context(r.context_window.as_deref()), description };
        Ok(self.line(raw, span, Provider::Anthropic, owned(r.model), owned(r.workspace_id), None, Detail::Cost(detail)))
    }

    #[allow(clippy::too_many_arguments)]
    fn line(
        &self,
        raw: &RawValue,
        span: &Span,
        provider: Provider,
        model: Option<String>,
        project: Option<String>,
        api_key: Option<String>,
        detail: Detail,
    ) -> InvoiceLine {
        let (line, _) = self.position(raw);
        InvoiceLine {
            provider,
            start: span.start,
            end: span.end,
            origin: Origin { file: self.file, line },
            model,
            project,
            api_key,
            detail,
        }
    }

    /// Parses a raw value, with errors positioned in the file.
    fn parse_at<T: Deserialize<'a>>(&self, raw: &'a RawValue) -> Result<T, InputError> {
        serde_json::from_str(raw.get()).map_err(|e| self.json_error(&e, self.offset(raw)))
    }

    fn offset(&self, raw: &RawValue) -> usize {
        (raw.get().as_ptr() as usize).saturating_sub(self.text.as_ptr() as usize).min(self.text.len())
    }

    fn position(&self, raw: &RawValue) -> (usize, usize) {
        let offset = self.offset(raw);
        let (mut at, mut line, mut line_start) = self.cursor.get();
        if offset < at {
            (at, line, line_start) = (0, 1, 0);
        }
        let bytes = self.text.as_bytes();
        for (i, b) in bytes[at..offset].iter().enumerate() {
            if *b == b'\n' {
                line += 1;
                line_start = at + i + 1;
            }
        }
        self.cursor.set((offset, line, line_start));
        (line, self.text[line_start..offset].chars().count() + 1)
    }

    /// A serde error inside text that starts at byte `base` of the file.
    fn json_error(&self, e: &serde_json::Error, base: usize) -> InputError {
        let (base_line, base_column) = line_col(self.text, base);
        let (line, column) = if e.line() <= 1 {
            (base_line, base_column + e.column().saturating_sub(1))
        } else {
            (base_line + e.line() - 1, e.column())
        };
        let message = e.to_string();
        let message = message.rfind(" at line ").map_or(message.clone(), |i| message[..i].to_string());
        let message = match e.classify() {
            serde_json::error::Category::Eof => {
                format!("the JSON ends in the middle of a value ({message}): a truncated page?")
            }
            serde_json::error::Category::Syntax => format!("invalid JSON: {message}"),
            _ => message,
        };
        let error = InputError::new(self.path, message).at(line.max(1), column.max(1));
        match e.classify() {
            serde_json::error::Category::Eof => {
                error.with_hint("download the page again; a cut-off page would undercount the invoice")
            }
            _ => error,
        }
    }

    /// An error about the value of `key` inside a result.
    fn error_at(&self, raw: &RawValue, key: &str, message: String) -> InputError {
        let text = raw.get();
        let needle = format!("\"{key}\"");
        let offset = text.find(&needle).map_or(0, |i| i + needle.len());
        let offset = offset + text[offset..].find(|c: char| c != ':' && !c.is_whitespace()).unwrap_or(0);
        let (line, column) = line_col(self.text, self.offset(raw) + offset);
        InputError::new(self.path, message).at(line, column)
    }

    fn error_at_raw(&self, raw: &RawValue, message: String) -> InputError {
        let (line, column) = self.position(raw);
        InputError::new(self.path, message).at(line, column)
    }
}

fn check_usd(currency: Option<&str>) -> Result<(), String> {
    match currency.map(|c| c.trim().to_ascii_lowercase()) {
        None => Ok(()),
        Some(c) if c == "usd" || c.is_empty() => Ok(()),
        Some(c) => Err(format!("amounts in `{c}`: reconcile works in USD, as OpenAI and Anthropic bill")),
    }
}

/// An amount from its JSON text (a number or a decimal string), exactly. `scale` is the power of ten of
/// the unit: 0 for dollars, -2 for cents.
pub fn parse_amount(raw: &RawValue, scale: i32) -> Result<Usd, String> {
    let text = raw.get().trim();
    let text = text.strip_prefix('"').and_then(|t| t.strip_suffix('"')).unwrap_or(text);
    parse_decimal_amount(text, scale)
}

/// An amount from decimal text, exactly, with a message that says what is wrong with it. Digits beyond a
/// pico-dollar (the Costs API writes floats such as `0.13080438340307526`) are rounded half away from zero
/// from the text itself, never through a float.
pub fn parse_decimal_amount(text: &str, scale: i32) -> Result<Usd, String> {
    match Usd::parse_decimal(text, scale) {
        Ok(usd) => Ok(usd),
        Err(MoneyParseError::TooPrecise(_)) => {
            round_to_picos(text, scale).ok_or_else(|| format!("amount `{text}` is not a decimal number"))
        }
        Err(e) => {
            let decimal_comma = text.contains(',') && !text.contains('.');
            if decimal_comma {
                Err(format!(
                    "amount `{text}` is not a decimal number: a decimal comma? write `{}`",
                    text.replacen(',', ".", 1)
                ))
            } else {
                Err(format!("amount: {e}"))
            }
        }
    }
}

/// `[-]digits[.digits][e[-]digits]` × 10^scale in pico-dollars, rounded half away from zero.
fn round_to_picos(text: &str, scale: i32) -> Option<Usd> {
    let t = text.trim();
    let (negative, t) = match t.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, t.strip_prefix('+').unwrap_or(t)),
    };
    let (mantissa, exponent) = match t.find(['e', 'E']) {
        Some(i) => (&t[..i], t[i + 1..].parse::<i32>().ok()?),
        None => (t, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // value = digits × 10^(exponent + scale − frac_len); pico-dollars need 12 more decimal places.
    let keep = digits.len() as i32 + exponent + scale - frac.len() as i32 + 12;
    let value: i128 = match keep {
        k if k <= 0 => 0,
        k if k as usize >= digits.len() => return None,
        k => {
            let (kept, dropped) = digits.split_at(k as usize);
            let kept: i128 = kept.parse().ok()?;
            kept + i128::from(dropped.as_bytes()[0] >= b'5')
        }
    };
    Some(Usd(if negative { -value } else { value }))
}
