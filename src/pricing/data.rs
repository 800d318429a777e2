//! Reads the generated data file (`data/prices.json`, written by `tools/pricebook/convert.py`).

use std::collections::BTreeMap;

use jiff::civil::Date;
use serde::{Deserialize, Serialize};

use crate::money::PerMTok;
use crate::pricing::model::{LongContext, ModelId, PriceRow, Provider, Rates, RowSource};
use crate::pricing::sheet::{Position, Sheet, SheetAlias, SheetPrice};

pub(crate) const PRICES_JSON: &str = include_str!("data/prices.json");
/// The curated file's entries are copied into prices.json by the converter, so that start-up parses no
/// TOML; a test checks the copy against this file.
#[cfg(test)]
pub(crate) const CURATED_TOML: &str = include_str!("data/curated.toml");
pub(crate) const CURATED_PATH: &str = "src/pricing/data/curated.toml (embedded)";

/// Entries copied from curated.toml have no position in a text the user could open.
const EMBEDDED_AT: Position = Position { line: 0, column: 0 };

/// Where the embedded prices come from, as the data file's header states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DataInfo {
    /// The day the upstream file was downloaded.
    pub retrieved: Date,
    /// Upstream files by id (`litellm-1.82.6`), each with package, file, SHA-256 and license.
    pub sources: BTreeMap<String, SourceInfo>,
    /// What the converter dropped or distrusted, one line each.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceInfo {
    pub package: String,
    pub file: String,
    pub sha256: String,
    pub license: String,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum DataError {
    #[error("prices.json: {0}")]
    Json(#[from] serde_json::Error),
    #[error("prices.json: {0}")]
    Invalid(String),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBook<'a> {
    format: &'a str,
    #[allow(dead_code)]
    unit: &'a str,
    retrieved: &'a str,
    sources: BTreeMap<String, SourceInfo>,
    #[allow(dead_code)]
    generated_by: &'a str,
    notes: Vec<String>,
    #[serde(borrow)]
    rows: Vec<RawRow<'a>>,
    #[serde(borrow)]
    curated_prices: Vec<RawCuratedPrice<'a>>,
    #[serde(borrow)]
    curated_aliases: Vec<RawCuratedAlias<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCuratedPrice<'a> {
    model: &'a str,
    effective_from: Option<&'a str>,
    effective_until: Option<&'a str>,
    input: &'a str,
    output: &'a str,
    cache_read: Option<&'a str>,
    cache_write_5m: Option<&'a str>,
    cache_write_1h: Option<&'a str>,
    #[serde(borrow)]
    batch: Option<RawRates<'a>>,
    #[serde(borrow)]
    flex: Option<RawRates<'a>>,
    #[serde(borrow)]
    priority: Option<RawRates<'a>>,
    #[serde(borrow)]
    long_context: Option<RawLongContext<'a>>,
    source: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCuratedAlias<'a> {
    alias: &'a str,
    target: &'a str,
    effective_from: Option<&'a str>,
    effective_until: Option<&'a str>,
    source: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRow<'a> {
    provider: &'a str,
    model: &'a str,
    input: &'a str,
    output: &'a str,
    cache_read: Option<&'a str>,
    cache_write_5m: Option<&'a str>,
    cache_write_1h: Option<&'a str>,
    #[serde(borrow)]
    batch: Option<RawRates<'a>>,
    #[serde(borrow)]
    flex: Option<RawRates<'a>>,
    #[serde(borrow)]
    priority: Option<RawRates<'a>>,
    #[serde(borrow)]
    long_context: Option<RawLongContext<'a>>,
    source: &'a str,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRates<'a> {
    input: &'a str,
    output: &'a str,
    cache_read: Option<&'a str>,
    cache_write_5m: Option<&'a str>,
    cache_write_1h: Option<&'a str>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLongContext<'a> {
    above_input_tokens: u64,
    input: &'a str,
    output: &'a str,
    cache_read: Option<&'a str>,
    cache_write_5m: Option<&'a str>,
    cache_write_1h: Option<&'a str>,
    #[serde(borrow)]
    priority: Option<RawRates<'a>>,
}

/// The generated file's contents: header, data rows, and the curated entries as a sheet.
pub(crate) struct Embedded {
    pub info: DataInfo,
    pub rows: Vec<PriceRow>,
    pub curated: Sheet,
}

pub(crate) fn parse(text: &str) -> Result<Embedded, DataError> {
    let raw: RawBook = serde_json::from_str(text)?;
    if raw.format != "promptctl.pricebook/v1" {
        return Err(DataError::Invalid(format!("unknown format {}", raw.format)));
    }
    let retrieved = raw.retrieved.parse().map_err(|e| DataError::Invalid(format!("retrieved: {e}")))?;
    let rows = raw.rows.iter().map(|r| row(r, &raw.sources)).collect::<Result<_, _>>()?;
    let curated = Sheet {
        prices: raw.curated_prices.iter().map(curated_price).collect::<Result<_, _>>()?,
        aliases: raw.curated_aliases.iter().map(curated_alias).collect::<Result<_, _>>()?,
    };
    let info = DataInfo { retrieved, sources: raw.sources, notes: raw.notes };
    Ok(Embedded { info, rows, curated })
}

fn curated_price(raw: &RawCuratedPrice) -> Result<SheetPrice, DataError> {
    Ok(SheetPrice {
        model: raw.model.to_string(),
        model_at: EMBEDDED_AT,
        effective_from: optional_date(raw.effective_from)?,
        effective_until: optional_date(raw.effective_until)?,
        standard: rates(raw.input, raw.output, [raw.cache_read, raw.cache_write_5m, raw.cache_write_1h])?,
        batch: raw.batch.as_ref().map(tier).transpose()?,
        flex: raw.flex.as_ref().map(tier).transpose()?,
        priority: raw.priority.as_ref().map(tier).transpose()?,
        long_context: raw.long_context.as_ref().map(long_context).transpose()?,
        source: Some(raw.source.to_string()),
        at: EMBEDDED_AT,
    })
}

fn curated_alias(raw: &RawCuratedAlias) -> Result<SheetAlias, DataError> {
    Ok(SheetAlias {
        alias: raw.alias.to_string(),
        alias_at: EMBEDDED_AT,
        target: raw.target.to_string(),
        target_at: EMBEDDED_AT,
        effective_from: optional_date(raw.effective_from)?,
        effective_until: optional_date(raw.effective_until)?,
        source: Some(raw.source.to_string()),
        at: EMBEDDED_AT,
    })
}

fn optional_date(text: Option<&str>) -> Result<Option<Date>, DataError> {
    text.map(|t| t.parse().map_err(|e| DataError::Invalid(format!("date {t}: {e}")))).transpose()
}

fn row(raw: &RawRow, sources: &BTreeMap<String, SourceInfo>) -> Result<PriceRow, DataError> {
    let provider = Provider::parse(raw.provider)
        .ok_or_else(|| DataError::Invalid(format!("unknown provider {}", raw.provider)))?;
    if !sources.contains_key(raw.source) {
        return Err(DataError::Invalid(format!("{}: unknown source {}", raw.model, raw.source)));
    }
    Ok(PriceRow {
        model: ModelId::new(provider, raw.model),
        effective_from: None,
        effective_until: None,
        standard: rates(raw.input, raw.output, [raw.cache_read, raw.cache_write_5m, raw.cache_write_1h])?,
        batch: raw.batch.as_ref().map(tier).transpose()?,
        flex: raw.flex.as_ref().map(tier).transpose()?,
        priority: raw.priority.as_ref().map(tier).transpose()?,
        long_context: raw.long_context.as_ref().map(long_context).transpose()?,
        source: RowSource::Data { dataset: raw.source.to_string() },
    })
}

fn price(text: &str) -> Result<PerMTok, DataError> {
    PerMTok::from_usd_per_mtok(text).map_err(|e| DataError::Invalid(e.to_string()))
}

fn optional_price(text: Option<&str>) -> Result<Option<PerMTok>, DataError> {
    text.map(price).transpose()
}

fn rates(input: &str, output: &str, cache: [Option<&str>; 3]) -> Result<Rates, DataError> {
    let [cache_read, cache_write_5m, cache_write_1h] = cache;
    Ok(Rates {
        input: price(input)?,
        output: price(output)?,
        cache_read: optional_price(cache_read)?,
        cache_write_5m: optional_price(cache_write_5m)?,
        cache_write_1h: optional_price(cache_write_1h)?,
    })
}

fn tier(raw: &RawRates) -> Result<Rates, DataError> {
    rates(raw.input, raw.output, [raw.cache_read, raw.cache_write_5m, raw.cache_write_1h])
}

fn long_context(raw: &RawLongContext) -> Result<LongContext, DataError> {
    Ok(LongContext {
        above_input_tokens: raw.above_input_tokens,
        standard: rates(raw.input, raw.output, [raw.cache_read, raw.cache_write_5m, raw.cache_write_1h])?,
        priority: raw.priority.as_ref().map(tier).transpose()?,
    })
}
