//! The price book: effective-dated rows per model, aliases, and the lookups over them.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use jiff::civil::Date;
use serde::Serialize;

use crate::pricing::data::{self, CURATED_PATH, DataInfo, PRICES_JSON};
use crate::pricing::model::{Alias, ModelId, ModelSpec, PriceRow, Provider, RowSource};
use crate::pricing::sheet::{self, Position, Sheet, SheetAlias, SheetError, SheetPrice};

/// All known prices: the embedded data and curated rows, plus any override file's rows on top.
#[derive(Debug, Clone)]
pub struct PriceBook {
    rows: BTreeMap<ModelId, Vec<PriceRow>>,
    aliases: BTreeMap<ModelId, Vec<Alias>>,
    info: DataInfo,
    overrides: Vec<PathBuf>,
}

/// Why a model string has no price.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("no price for `{spec}`: unknown provider `{provider}` (known: openai, anthropic, google, vertex)")]
    UnknownProvider { spec: String, provider: String },
    #[error("no price for `{spec}`: unknown model{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownModel { spec: String, suggestion: Option<String> },
    #[error("`{spec}` is priced by several providers ({}); write one of them as PROVIDER:MODEL", candidates.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", "))]
    Ambiguous { spec: String, candidates: Vec<ModelId> },
    #[error("no price for `{spec}` on {date}: the alias points at no snapshot on that day")]
    AliasNotInForce { spec: String, date: Date },
    #[error("no price for `{spec}` ({model}) on {date}: no row is in force on that day")]
    NoRowInForce { spec: String, model: ModelId, date: Date },
}

/// A problem with an override file.
#[derive(Debug, thiserror::Error)]
pub enum OverrideError {
    #[error("cannot read price overrides {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Invalid(#[from] SheetError),
}

/// How a model string was understood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// The string as given.
    pub requested: String,
    /// The priced model: a dated snapshot when the request named an alias.
    pub model: ModelId,
    /// The alias mapping used, if the request named an alias.
    pub alias: Option<Alias>,
}

/// A price lookup's answer: what was meant and the row in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Quote<'a> {
    pub resolved: Resolved,
    pub row: &'a PriceRow,
}

/// A stretch of days with one row in force, for a model's history. Bounds as in `PriceRow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period<'a> {
    pub from: Option<Date>,
    pub until: Option<Date>,
    pub row: &'a PriceRow,
}

/// What a name is in the book, before any date is applied.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Entry {
    Model(ModelId),
    Alias(ModelId),
}

static EMBEDDED: OnceLock<PriceBook> = OnceLock::new();

impl PriceBook {
    /// The embedded book (data file + curated file), parsed on first use.
    pub fn embedded() -> &'static PriceBook {
        EMBEDDED
            .get_or_init(|| Self::parse_embedded().unwrap_or_else(|e| panic!("embedded price book is invalid: {e}")))
    }

    fn parse_embedded() -> Result<PriceBook, String> {
        let embedded = data::parse(PRICES_JSON).map_err(|e| e.to_string())?;
        let mut book =
            PriceBook { rows: BTreeMap::new(), aliases: BTreeMap::new(), info: embedded.info, overrides: Vec::new() };
        for row in embedded.rows {
            book.rows.entry(row.model.clone()).or_default().push(row);
        }
        book.apply_sheet(embedded.curated, Path::new(CURATED_PATH), Origin::Curated).map_err(|e| e.to_string())?;
        book.start_data_rows_after_curated_history();
        Ok(book)
    }

    /// The embedded book with the rows and aliases of the override file at `path` on top.
    pub fn with_overrides(path: &Path) -> Result<PriceBook, OverrideError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| OverrideError::Read { path: path.to_path_buf(), source })?;
        Self::embedded().overlay(&text, path)
    }

    /// This book with an override sheet's rows and aliases on top; `path` labels rows and errors.
    pub fn overlay(&self, text: &str, path: &Path) -> Result<PriceBook, OverrideError> {
        let sheet = sheet::parse(text, path)?;
        let mut book = self.clone();
        book.apply_sheet(sheet, path, Origin::Override)?;
        book.overrides.push(path.to_path_buf());
        Ok(book)
    }

    /// Header facts of the embedded data: upstream files, retrieval date, converter notes.
    pub fn info(&self) -> &DataInfo {
        &self.info
    }

    /// Override files applied, in order.
    pub fn override_files(&self) -> &[PathBuf] {
        &self.overrides
    }

    /// Every priced model (not aliases), sorted by provider then name.
    pub fn models(&self) -> impl Iterator<Item = &ModelId> {
        self.rows.keys()
    }

    /// Every alias mapping, sorted by alias then start.
    pub fn aliases(&self) -> impl Iterator<Item = &Alias> {
        self.aliases.values().flatten()
    }

    /// All rows of a model in every layer (embedded and overrides), oldest start first.
    pub fn rows_of(&self, model: &ModelId) -> &[PriceRow] {
        self.rows.get(model).map_or(&[], Vec::as_slice)
    }

    /// Understands a model string at a date: which provider, and which snapshot an alias meant then.
    pub fn resolve(&self, spec: &str, date: Date) -> Result<Resolved, LookupError> {
        match self.find(spec)? {
            Entry::Model(model) => Ok(Resolved { requested: spec.to_string(), model, alias: None }),
            Entry::Alias(alias) => {
                let mapping = self
                    .alias_at(&alias, date)
                    .ok_or_else(|| LookupError::AliasNotInForce { spec: spec.to_string(), date })?;
                Ok(Resolved { requested: spec.to_string(), model: mapping.target_id(), alias: Some(mapping.clone()) })
            }
        }
    }

    /// The row in force for a model string at a date, with how the string was understood.
    pub fn quote(&self, spec: &str, date: Date) -> Result<Quote<'_>, LookupError> {
        let resolved = self.resolve(spec, date)?;
        let row = self.row_at(&resolved.model, date).ok_or_else(|| LookupError::NoRowInForce {
            spec: spec.to_string(),
            model: resolved.model.clone(),
            date,
        })?;
        Ok(Quote { resolved, row })
    }

    /// The row in force for a model string at a date; `None` means no price (never a zero price).
    pub fn price_at(&self, spec: &str, date: Date) -> Option<&PriceRow> {
        self.quote(spec, date).ok().map(|q| q.row)
    }

    /// The row in force for a canonical model at a date. Override rows shadow embedded ones; within a
    /// layer the row that started last wins.
    pub fn row_at(&self, model: &ModelId, date: Date) -> Option<&PriceRow> {
        self.rows
            .get(model)?
            .iter()
            .filter(|r| r.in_force(date))
            .max_by_key(|r| (r.source.is_override(), r.effective_from))
    }

    /// One row per model: those in force at `date`, sorted by provider then model.
    pub fn rows_at(&self, date: Date) -> Vec<&PriceRow> {
        self.rows.keys().filter_map(|m| self.row_at(m, date)).collect()
    }

    /// The alias mappings in force at `date`, sorted by alias.
    pub fn aliases_at(&self, date: Date) -> Vec<&Alias> {
        self.aliases.keys().filter_map(|a| self.alias_at(a, date)).collect()
    }

    /// The prices a model string had over time, oldest first. For an alias, the periods follow the
    /// snapshot it pointed at. Days with no row in force are left out.
    pub fn history(&self, spec: &str) -> Result<Vec<Period<'_>>, LookupError> {
        let entry = self.find(spec)?;
        let mut bounds = self.boundaries(&entry);
        bounds.sort();
        bounds.dedup();
        let mut starts: Vec<Option<Date>> = vec![None];
        starts.extend(bounds.iter().copied().map(Some));
        let mut periods: Vec<Period<'_>> = Vec::new();
        for (i, start) in starts.iter().enumerate() {
            let until = bounds.get(i).copied();
            let day = start.unwrap_or(Date::MIN);
            let Ok(quote) = self.quote(spec, day) else {
                continue;
            };
            match periods.last_mut() {
                Some(last) if last.until == *start && std::ptr::eq(last.row, quote.row) => {
                    last.until = until;
                }
                _ => periods.push(Period { from: *start, until, row: quote.row }),
            }
        }
        Ok(periods)
    }

    fn boundaries(&self, entry: &Entry) -> Vec<Date> {
        let mut models = Vec::new();
        let mut bounds = Vec::new();
        match entry {
            Entry::Model(m) => models.push(m.clone()),
            Entry::Alias(a) => {
                for mapping in self.aliases.get(a).into_iter().flatten() {
                    bounds.extend(mapping.effective_from);
                    bounds.extend(mapping.effective_until);
                    models.push(mapping.target_id());
                }
            }
        }
        for row in models.iter().flat_map(|m| self.rows_of(m)) {
            bounds.extend(row.effective_from);
            bounds.extend(row.effective_until);
        }
        bounds
    }

    fn alias_at(&self, alias: &ModelId, date: Date) -> Option<&Alias> {
        self.aliases
            .get(alias)?
            .iter()
            .filter(|a| a.in_force(date))
            .max_by_key(|a| (a.source.is_override(), a.effective_from))
    }

    /// What a model string names, without looking at dates.
    fn find(&self, spec: &str) -> Result<Entry, LookupError> {
        let parsed = ModelSpec::parse(spec)
            .map_err(|e| LookupError::UnknownProvider { spec: spec.to_string(), provider: e.0 })?;
        let providers: &[Provider] = match &parsed.provider {
            Some(p) => std::slice::from_ref(p),
            None => &Provider::ALL,
        };
        let mut hits: Vec<Entry> =
            providers.iter().filter_map(|p| self.entry(&ModelId::new(*p, parsed.name.clone()))).collect();
        match hits.len() {
            0 => Err(LookupError::UnknownModel { spec: spec.to_string(), suggestion: self.nearest_name(&parsed.name) }),
            1 => Ok(hits.remove(0)),
            _ => Err(LookupError::Ambiguous {
                spec: spec.to_string(),
                candidates: hits
                    .into_iter()
                    .map(|e| match e {
                        Entry::Model(m) | Entry::Alias(m) => m,
                    })
                    .collect(),
            }),
        }
    }

    fn entry(&self, id: &ModelId) -> Option<Entry> {
        if self.rows.contains_key(id) {
            Some(Entry::Model(id.clone()))
        } else if self.aliases.contains_key(id) {
            Some(Entry::Alias(id.clone()))
        } else {
            None
        }
    }

    fn nearest_name(&self, name: &str) -> Option<String> {
        let names = self.rows.keys().chain(self.aliases.keys()).map(|m| m.name.as_str());
        crate::suggest::nearest(name, names).map(str::to_string)
    }

    /// A data row is today's price; where curated rows record earlier prices of the same model, it
    /// starts when the latest of them ended.
    fn start_data_rows_after_curated_history(&mut self) {
        for rows in self.rows.values_mut() {
            let history_end = rows
                .iter()
                .filter(|r| matches!(r.source, RowSource::Curated { .. }))
                .filter_map(|r| r.effective_until)
                .max();
            for row in rows.iter_mut().filter(|r| matches!(r.source, RowSource::Data { .. })) {
                row.effective_from = history_end;
            }
        }
    }

    fn apply_sheet(&mut self, sheet: Sheet, path: &Path, origin: Origin) -> Result<(), SheetError> {
        // Rows first, so that aliases in the same file may point at models it adds.
        for price in sheet.prices {
            let row = self.sheet_row(price, path, origin)?;
            self.rows.entry(row.model.clone()).or_default().push(row);
        }
        for alias in sheet.aliases {
            let alias = self.sheet_alias(alias, path, origin)?;
            self.aliases.entry(alias.alias.clone()).or_default().push(alias);
        }
        for rows in self.rows.values_mut() {
            rows.sort_by_key(|r| (r.source.is_override(), r.effective_from));
        }
        for aliases in self.aliases.values_mut() {
            aliases.sort_by_key(|a| (a.source.is_override(), a.effective_from));
        }
        Ok(())
    }

    fn sheet_row(&self, price: SheetPrice, path: &Path, origin: Origin) -> Result<PriceRow, SheetError> {
        let model = self.sheet_model(&price.model, price.model_at, path)?;
        let source = origin.source(path, price.at, price.source.clone());
        if let RowSource::Curated { source } = &source
            && source.is_empty()
        {
            return Err(price.at.error(path, "a curated row needs a `source`"));
        }
        let has_data_row = self.rows_of(&model).iter().any(|r| matches!(r.source, RowSource::Data { .. }));
        if origin == Origin::Curated && has_data_row && price.effective_until.is_none() {
            return Err(price.at.error(
                path,
                "a curated row records a past price of a model in prices.json: it needs `effective_until`",
            ));
        }
        let clash = self.rows_of(&model).iter().any(|r| {
            r.source.is_override() == source.is_override()
                && !matches!(r.source, RowSource::Data { .. })
                && r.effective_from == price.effective_from
        });
        if clash {
            return Err(price.at.error(
                path,
                format!(
                    "a second row for {model} starting {}; give each row its own effective_from",
                    describe_start(price.effective_from)
                ),
            ));
        }
        Ok(PriceRow {
            model,
            effective_from: price.effective_from,
            effective_until: price.effective_until,
            standard: price.standard,
            batch: price.batch,
            flex: price.flex,
            priority: price.priority,
            long_context: price.long_context,
            source,
        })
    }

    /// A row's model: a known model, or a new one when the provider is named.
    fn sheet_model(&self, text: &str, at: Position, path: &Path) -> Result<ModelId, SheetError> {
        let spec = ModelSpec::parse(text).map_err(|e| {
            at.error(path, format!("unknown provider `{}` (known: openai, anthropic, google, vertex)", e.0))
        })?;
        match self.find(text) {
            Ok(Entry::Model(model)) => Ok(model),
            Ok(Entry::Alias(alias)) => self.only_target(&alias).ok_or_else(|| {
                at.error(
                    path,
                    format!(
                        "`{text}` is an alias that meant different snapshots over time ({}); price the dated snapshot",
                        self.aliases
                            .get(&alias)
                            .into_iter()
                            .flatten()
                            .map(|a| a.target.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            }),
            Err(LookupError::UnknownModel { .. }) if spec.provider.is_some() => {
                Ok(ModelId::new(spec.provider.unwrap_or(Provider::OpenAi), spec.name))
            }
            Err(LookupError::UnknownModel { suggestion, .. }) => Err(at.error(
                path,
                format!(
                    "unknown model `{text}`{}; to add a new model, name its provider: `openai:{}`",
                    suggestion.map_or(String::new(), |s| format!(" (did you mean `{s}`?)")),
                    spec.name
                ),
            )),
            Err(e) => Err(at.error(path, e.to_string())),
        }
    }

    /// The snapshot an alias means when it has only ever meant one.
    fn only_target(&self, alias: &ModelId) -> Option<ModelId> {
        match self.aliases.get(alias)?.as_slice() {
            [only] => Some(only.target_id()),
            _ => None,
        }
    }

    fn sheet_alias(&self, alias: SheetAlias, path: &Path, origin: Origin) -> Result<Alias, SheetError> {
        let spec = ModelSpec::parse(&alias.alias)
            .map_err(|e| alias.alias_at.error(path, format!("unknown provider `{}`", e.0)))?;
        let Some(provider) = spec.provider else {
            return Err(alias.alias_at.error(path, format!("name the alias's provider: `openai:{}`", spec.name)));
        };
        let alias_id = ModelId::new(provider, spec.name);
        if self.rows.contains_key(&alias_id) {
            return Err(alias.alias_at.error(path, format!("{alias_id} is a priced model, not an alias")));
        }
        let target = ModelSpec::parse(&alias.target)
            .ok()
            .filter(|t| t.provider.is_none_or(|p| p == provider))
            .map(|t| ModelId::new(provider, t.name))
            .filter(|t| self.rows.contains_key(t))
            .ok_or_else(|| {
                alias.target_at.error(path, format!("alias target `{}` is not a priced {provider} model", alias.target))
            })?;
        Ok(Alias {
            alias: alias_id,
            target: target.name,
            effective_from: alias.effective_from,
            effective_until: alias.effective_until,
            source: origin.source(path, alias.at, alias.source),
        })
    }
}

fn describe_start(from: Option<Date>) -> String {
    from.map_or("with no effective_from".to_string(), |d| d.to_string())
}

/// Which layer a sheet fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    Curated,
    Override,
}

impl Origin {
    fn source(self, path: &Path, at: Position, note: Option<String>) -> RowSource {
        match self {
            Origin::Curated => RowSource::Curated { source: note.unwrap_or_default() },
            Origin::Override => RowSource::Override { path: path.to_path_buf(), line: at.line, note },
        }
    }
}
