//! The TOML "price sheet" format shared by the embedded curated file and a team's override file:
//! `[[price]]` rows and `[[alias]]` mappings (docs/pricing.md). This module only reads the file and checks
//! its shape; resolving model names against the book happens in `book`.

use std::ops::Range;
use std::path::{Path, PathBuf};

use jiff::civil::Date;
use serde::Deserialize;
use toml::{Spanned, Value};

use crate::money::PerMTok;
use crate::pricing::model::{LongContext, Rates};

/// A problem in a price sheet, positioned at `path:line:column` (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}:{line}:{column}: {message}", path.display())]
pub struct SheetError {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A 1-based place in the sheet's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl Position {
    pub fn error(self, path: &Path, message: impl Into<String>) -> SheetError {
        SheetError { path: path.to_path_buf(), line: self.line, column: self.column, message: message.into() }
    }
}

/// One `[[price]]` entry, prices parsed, model name still as written.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetPrice {
    pub model: String,
    pub model_at: Position,
    pub effective_from: Option<Date>,
    pub effective_until: Option<Date>,
    pub standard: Rates,
    pub batch: Option<Rates>,
    pub flex: Option<Rates>,
    pub priority: Option<Rates>,
    pub long_context: Option<LongContext>,
    pub source: Option<String>,
    pub at: Position,
}

/// One `[[alias]]` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetAlias {
    pub alias: String,
    pub alias_at: Position,
    pub target: String,
    pub target_at: Position,
    pub effective_from: Option<Date>,
    pub effective_until: Option<Date>,
    pub source: Option<String>,
    pub at: Position,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sheet {
    pub prices: Vec<SheetPrice>,
    pub aliases: Vec<SheetAlias>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSheet {
    #[serde(default)]
    price: Vec<Spanned<RawPrice>>,
    #[serde(default)]
    alias: Vec<Spanned<RawAlias>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    model: Spanned<String>,
    effective_from: Option<Spanned<Value>>,
    effective_until: Option<Spanned<Value>>,
    input: Spanned<Value>,
    output: Spanned<Value>,
    cache_read: Option<Spanned<Value>>,
    cache_write_5m: Option<Spanned<Value>>,
    cache_write_1h: Option<Spanned<Value>>,
    batch: Option<RawRates>,
    flex: Option<RawRates>,
    priority: Option<RawRates>,
    long_context: Option<RawLongContext>,
    source: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates {
    input: Spanned<Value>,
    output: Spanned<Value>,
    cache_read: Option<Spanned<Value>>,
    cache_write_5m: Option<Spanned<Value>>,
    cache_write_1h: Option<Spanned<Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongContext {
    above_input_tokens: Spanned<i64>,
    input: Spanned<Value>,
    output: Spanned<Value>,
    cache_read: Option<Spanned<Value>>,
    cache_write_5m: Option<Spanned<Value>>,
    cache_write_1h: Option<Spanned<Value>>,
    priority: Option<RawRates>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlias {
    alias: Spanned<String>,
    target: Spanned<String>,
    effective_from: Option<Spanned<Value>>,
    effective_until: Option<Spanned<Value>>,
    source: Option<String>,
}

/// Parses a sheet's text; `path` only labels errors.
pub fn parse(text: &str, path: &Path) -> Result<Sheet, SheetError> {
    let reader = Reader { text, path };
    let raw: RawSheet = toml::from_str(text).map_err(|e| reader.toml_error(&e))?;
    let prices = raw.price.into_iter().map(|p| reader.price(p)).collect::<Result<_, _>>()?;
    let aliases = raw.alias.into_iter().map(|a| reader.alias(a)).collect::<Result<_, _>>()?;
    Ok(Sheet { prices, aliases })
}

struct Reader<'a> {
    text: &'a str,
    path: &'a Path,
}

impl Reader<'_> {
    fn position(&self, span: Range<usize>) -> Position {
        let before = &self.text[..span.start.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        Position { line, column: before[line_start..].chars().count() + 1 }
    }

    fn error_at(&self, span: Range<usize>, message: impl Into<String>) -> SheetError {
        self.position(span).error(self.path, message)
    }

    fn toml_error(&self, error: &toml::de::Error) -> SheetError {
        let position = error.span().map_or(Position { line: 1, column: 1 }, |s| self.position(s));
        position.error(self.path, explain_toml_message(error.message()))
    }

    fn price(&self, raw: Spanned<RawPrice>) -> Result<SheetPrice, SheetError> {
        let at = self.position(raw.span());
        let raw = raw.into_inner();
        let (effective_from, effective_until) =
            self.period(raw.effective_from.as_ref(), raw.effective_until.as_ref())?;
        let standard =
            self.rates(&raw.input, &raw.output, [&raw.cache_read, &raw.cache_write_5m, &raw.cache_write_1h])?;
        Ok(SheetPrice {
            model_at: self.position(raw.model.span()),
            model: raw.model.into_inner(),
            effective_from,
            effective_until,
            standard,
            batch: self.tier(raw.batch.as_ref())?,
            flex: self.tier(raw.flex.as_ref())?,
            priority: self.tier(raw.priority.as_ref())?,
            long_context: raw.long_context.as_ref().map(|l| self.long_context(l)).transpose()?,
            source: raw.source,
            at,
        })
    }

    fn alias(&self, raw: Spanned<RawAlias>) -> Result<SheetAlias, SheetError> {
        let at = self.position(raw.span());
        let raw = raw.into_inner();
        let (effective_from, effective_until) =
            self.period(raw.effective_from.as_ref(), raw.effective_until.as_ref())?;
        Ok(SheetAlias {
            alias_at: self.position(raw.alias.span()),
            alias: raw.alias.into_inner(),
            target_at: self.position(raw.target.span()),
            target: raw.target.into_inner(),
            effective_from,
            effective_until,
            source: raw.source,
            at,
        })
    }

    fn period(
        &self,
        from: Option<&Spanned<Value>>,
        until: Option<&Spanned<Value>>,
    ) -> Result<(Option<Date>, Option<Date>), SheetError> {
        let from_date = from.map(|v| self.date(v)).transpose()?;
        let until_date = until.map(|v| self.date(v)).transpose()?;
        if let (Some(f), Some(u), Some(until)) = (from_date, until_date, until)
            && u <= f
        {
            return Err(self.error_at(until.span(), format!("effective_until {u} must be after effective_from {f}")));
        }
        Ok((from_date, until_date))
    }

    fn date(&self, value: &Spanned<Value>) -> Result<Date, SheetError> {
        let parsed = match value.get_ref() {
            Value::Datetime(dt) if dt.time.is_none() && dt.offset.is_none() => {
                dt.date.and_then(|d| Date::new(d.year as i16, d.month as i8, d.day as i8).ok())
            }
            Value::String(s) => s.parse::<Date>().ok(),
            _ => None,
        };
        parsed.ok_or_else(|| self.error_at(value.span(), "expected a date such as 2025-06-10 (a day, no time)"))
    }

    fn price_value(&self, value: &Spanned<Value>) -> Result<PerMTok, SheetError> {
        let text = match value.get_ref() {
            Value::String(s) => s.clone(),
            Value::Integer(i) => i.to_string(),
            // The shortest decimal that round-trips is the literal the user wrote (0.15 → "0.15").
            Value::Float(f) if f.is_finite() => f.to_string(),
            _ => String::new(),
        };
        let price = PerMTok::from_usd_per_mtok(&text)
            .map_err(|_| self.error_at(value.span(), "expected a price in USD per 1M tokens, such as \"0.15\""))?;
        if price.0 < 0 {
            return Err(self.error_at(value.span(), "a price cannot be negative"));
        }
        Ok(price)
    }

    fn optional_price(&self, value: &Option<Spanned<Value>>) -> Result<Option<PerMTok>, SheetError> {
        value.as_ref().map(|v| self.price_value(v)).transpose()
    }

    fn rates(
        &self,
        input: &Spanned<Value>,
        output: &Spanned<Value>,
        [cache_read, cache_write_5m, cache_write_1h]: [&Option<Spanned<Value>>; 3],
    ) -> Result<Rates, SheetError> {
        Ok(Rates {
            input: self.price_value(input)?,
            output: self.price_value(output)?,
            cache_read: self.optional_price(cache_read)?,
            cache_write_5m: self.optional_price(cache_write_5m)?,
            cache_write_1h: self.optional_price(cache_write_1h)?,
        })
    }

    fn tier(&self, raw: Option<&RawRates>) -> Result<Option<Rates>, SheetError> {
        raw.map(|r| self.rates(&r.input, &r.output, [&r.cache_read, &r.cache_write_5m, &r.cache_write_1h])).transpose()
    }

    fn long_context(&self, raw: &RawLongContext) -> Result<LongContext, SheetError> {
        let threshold = u64::try_from(*raw.above_input_tokens.get_ref()).ok().filter(|t| *t > 0).ok_or_else(|| {
            self.error_at(raw.above_input_tokens.span(), "above_input_tokens must be a positive token count")
        })?;
        Ok(LongContext {
            above_input_tokens: threshold,
            standard: self.rates(
                &raw.input,
                &raw.output,
                [&raw.cache_read, &raw.cache_write_5m, &raw.cache_write_1h],
            )?,
            priority: self.tier(raw.priority.as_ref())?,
        })
    }
}

/// serde says "unknown field `inptu`, expected one of `a`, `b`"; users read "did you mean `input`?"
/// first. Other messages pass through.
fn explain_toml_message(message: &str) -> String {
    let message = message.trim_end();
    let Some(rest) = message.strip_prefix("unknown field `") else {
        return message.to_string();
    };
    let Some((field, expected)) = rest.split_once('`') else {
        return message.to_string();
    };
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = match crate::suggest::nearest(field, valid.iter().copied()) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    format!("unknown key `{field}`{hint} (valid keys: {})", valid.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Sheet, SheetError> {
        parse(text, Path::new("pricing.toml"))
    }

    #[test]
    fn reads_a_full_price_row() {
        let sheet = parse_str(
            r#"
[[price]]
model = "openai:gpt-4o-mini"
effective_from = 2026-01-01
effective_until = "2026-07-01"
input = "0.12"
output = 0.48
cache_read = "0.06"
source = "contract 42"
[price.batch]
input = "0.06"
output = "0.24"
[price.long_context]
above_input_tokens = 200000
input = 1
output = "2"
"#,
        )
        .unwrap();
        let row = &sheet.prices[0];
        assert_eq!(row.model, "openai:gpt-4o-mini");
        assert_eq!(row.model_at, Position { line: 3, column: 9 });
        assert_eq!(row.effective_from, Some(jiff::civil::date(2026, 1, 1)));
        assert_eq!(row.effective_until, Some(jiff::civil::date(2026, 7, 1)));
        assert_eq!(row.standard.input, PerMTok(120_000));
        assert_eq!(row.standard.output, PerMTok(480_000));
        assert_eq!(row.standard.cache_read, Some(PerMTok(60_000)));
        assert_eq!(row.batch.unwrap().output, PerMTok(240_000));
        let long = row.long_context.unwrap();
        assert_eq!(long.above_input_tokens, 200_000);
        assert_eq!(long.standard.input, PerMTok(1_000_000));
    }

    #[test]
    fn unknown_keys_name_the_nearest_valid_key_with_position() {
        let err = parse_str("[[price]]\nmodel = \"gpt-4o\"\ninptu = \"1\"\noutput = \"2\"\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 1), "{err}");
        assert!(err.message.starts_with("unknown key `inptu`; did you mean `input`?"), "{}", err.message);
        assert!(err.to_string().starts_with("pricing.toml:3:1: "), "{err}");
    }

    #[test]
    fn unknown_top_level_tables_are_rejected() {
        let err = parse_str("[[prices]]\nmodel = \"x\"\n").unwrap_err();
        assert!(err.message.contains("did you mean `price`?"), "{}", err.message);
    }

    #[test]
    fn bad_values_point_at_the_value() {
        let err = parse_str("[[price]]\nmodel = \"m\"\ninput = \"cheap\"\noutput = \"1\"\n").unwrap_err();
        assert_eq!((err.line, err.column), (3, 9), "{err}");
        assert!(err.message.contains("USD per 1M tokens"), "{}", err.message);

        let err = parse_str("[[price]]\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\neffective_from = 2026-13-01\n")
            .unwrap_err();
        assert_eq!(err.line, 5, "{err}");

        let err = parse_str("[[price]]\nmodel = \"m\"\ninput = \"-1\"\noutput = \"1\"\n").unwrap_err();
        assert!(err.message.contains("negative"), "{}", err.message);
    }

    #[test]
    fn a_period_must_not_end_before_it_starts() {
        let err = parse_str(
            "[[price]]\nmodel = \"m\"\ninput = \"1\"\noutput = \"1\"\neffective_from = 2026-02-01\neffective_until = 2026-01-01\n",
        )
        .unwrap_err();
        assert_eq!((err.line, err.column), (6, 19), "{err}");
    }

    #[test]
    fn missing_required_prices_are_reported() {
        let err = parse_str("[[price]]\nmodel = \"m\"\ninput = \"1\"\n").unwrap_err();
        assert!(err.message.contains("output"), "{}", err.message);
    }
}
