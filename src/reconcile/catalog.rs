//! Names shared by both sides of a cell: model snapshots and projects, interned to small integers, and
//! the mapping of traced model names (aliases included) onto the snapshots the invoice bills.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

use jiff::civil::Date;

use super::window::day_date;
use crate::pricing::{ModelId, ModelSpec, PriceBook, PriceRow, Provider};
use rustc_hash::FxHashMap as FastMap;

/// An interned model snapshot (canonical name under a provider).
pub type ModelIx = u32;
/// An interned project (OpenAI project id, Anthropic workspace id, traced `project`); 0 is "none".
pub type ProjectIx = u32;
pub const NO_PROJECT: ProjectIx = 0;

/// A cell's coordinates without tier and context window: provider × UTC day × snapshot × project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    pub provider: Provider,
    pub day: i32,
    pub model: ModelIx,
    pub project: ProjectIx,
}

impl GroupKey {
    pub fn without_project(self) -> GroupKey {
        GroupKey { project: NO_PROJECT, ..self }
    }

    /// The same snapshot on the same day, whatever the project: where prices are the same.
    pub fn day_model(self) -> (Provider, i32, ModelIx) {
        (self.provider, self.day, self.model)
    }
}

pub struct Catalog<'b> {
    pub book: &'b PriceBook,
    models: Vec<(Provider, String)>,
    model_ix: HashMap<(Provider, String), ModelIx>,
    projects: Vec<String>,
    project_ix: FastMap<String, ProjectIx>,
    /// Traced names already mapped, per provider and day.
    traced: FastMap<(Provider, i32), FastMap<String, ModelIx>>,
    /// Every snapshot an alias has meant, from the book's alias history.
    alias_targets: HashMap<ModelId, Vec<String>>,
    /// Canonical names already worked out, per provider, name and day.
    canonical: FastMap<(Provider, i32), FastMap<String, Canonical>>,
    /// Book rows in force, per snapshot and day (a miss is remembered too: looking up an unknown name is
    /// slow, it searches for the nearest known name).
    rows: RefCell<HashMap<(ModelIx, i32), Option<&'b PriceRow>>>,
}

impl<'b> Catalog<'b> {
    pub fn new(book: &'b PriceBook) -> Catalog<'b> {
        let mut alias_targets: HashMap<ModelId, Vec<String>> = HashMap::new();
        for alias in book.aliases() {
            alias_targets.entry(alias.alias.clone()).or_default().push(alias.target.clone());
        }
        Catalog {
            book,
            models: Vec::new(),
            model_ix: HashMap::new(),
            projects: vec![String::new()],
            project_ix: FastMap::default(),
            traced: FastMap::default(),
            alias_targets,
            canonical: FastMap::default(),
            rows: RefCell::new(HashMap::new()),
        }
    }

    pub fn model_name(&self, ix: ModelIx) -> &str {
        &self.models[ix as usize].1
    }

    pub fn project_name(&self, ix: ProjectIx) -> Option<&str> {
        (ix != NO_PROJECT).then(|| self.projects[ix as usize].as_str())
    }

    pub fn project(&mut self, name: Option<&str>) -> ProjectIx {
        let Some(name) = name.map(str::trim).filter(|n| !n.is_empty()) else {
            return NO_PROJECT;
        };
        if let Some(&ix) = self.project_ix.get(name) {
            return ix;
        }
        let ix = self.projects.len() as ProjectIx;
        self.projects.push(name.to_string());
        self.project_ix.insert(name.to_string(), ix);
        ix
    }

    /// Whether the price book knows the snapshot.
    pub fn is_priced(&self, provider: Provider, model: ModelIx) -> bool {
        !self.book.rows_of(&ModelId::new(provider, self.model_name(model))).is_empty()
    }

    /// The book's row for a snapshot on a day, if it has one.
    pub fn row(&self, model: ModelIx, day: i32) -> Option<&'b PriceRow> {
        *self.rows.borrow_mut().entry((model, day)).or_insert_with(|| {
            let (provider, name) = &self.models[model as usize];
            let id = ModelId::new(*provider, name.clone());
            if self.book.rows_of(&id).is_empty() {
                return None;
            }
            self.book.row_at(&id, day_date(day))
        })
    }

    /// The snapshot an invoice line names: resolved through the book when the book knows the name, else
    /// the name itself (lower case), so that an unknown model still gets a cell of its own.
    pub fn invoice_model(&mut self, provider: Provider, name: &str, day: i32) -> ModelIx {
        self.resolve(provider, name, day).0
    }

    /// The snapshot a name means on a day, and the alias when it is one; remembered.
    fn resolve(&mut self, provider: Provider, name: &str, day: i32) -> (ModelIx, Option<ModelId>) {
        if let Some(known) = self.canonical.get(&(provider, day)).and_then(|m| m.get(name)) {
            return known.clone();
        }
        let (canonical, alias) = canonical(self.book, provider, name, day_date(day));
        let ix = self.intern(provider, canonical);
        self.canonical.entry((provider, day)).or_default().insert(name.to_string(), (ix, alias.clone()));
        (ix, alias)
    }

    /// The snapshot a traced model name stands for on `day`. An alias (`gpt-4o`) goes to the one snapshot it
    /// has ever meant that the invoice bills that day, when there is exactly one; otherwise to what the
    /// book says it meant that day.
    pub fn traced_model(&mut self, provider: Provider, name: &str, day: i32, billed: &HashSet<ModelIx>) -> ModelIx {
        if let Some(&ix) = self.traced.get(&(provider, day)).and_then(|m| m.get(name)) {
            return ix;
        }
        let (resolved, alias) = self.resolve(provider, name, day);
        let ix = alias.and_then(|a| self.billed_target(&a, billed)).unwrap_or(resolved);
        self.traced.entry((provider, day)).or_default().insert(name.to_string(), ix);
        ix
    }

    fn billed_target(&self, alias: &ModelId, billed: &HashSet<ModelIx>) -> Option<ModelIx> {
        let targets = self.alias_targets.get(alias);
        let candidates: Vec<ModelIx> = billed
            .iter()
            .copied()
            .filter(|&ix| {
                let (provider, name) = &self.models[ix as usize];
                *provider == alias.provider
                    && (targets.is_some_and(|t| t.iter().any(|t| t == name)) || is_dated_variant(&alias.name, name))
            })
            .collect();
        match candidates.as_slice() {
            [only] => Some(*only),
            _ => None,
        }
    }

    fn intern(&mut self, provider: Provider, name: String) -> ModelIx {
        let key = (provider, name);
        if let Some(&ix) = self.model_ix.get(&key) {
            return ix;
        }
        let ix = self.models.len() as ModelIx;
        self.models.push(key.clone());
        self.model_ix.insert(key, ix);
        ix
    }
}

/// A name's snapshot, and the alias it was when it was one.
type Canonical = (ModelIx, Option<ModelId>);

/// `PROVIDER:NAME` for book lookups.
pub fn spec(provider: Provider, name: &str) -> String {
    format!("{}:{name}", provider.id())
}

/// A model string without its provider prefix, lower case (`openai:GPT-4o` → `gpt-4o`).
pub fn bare_name(name: &str) -> String {
    match ModelSpec::parse(name) {
        Ok(spec) => spec.name,
        Err(_) => name.trim().to_ascii_lowercase(),
    }
}

/// The canonical snapshot name and, when the name was an alias, the alias.
fn canonical(book: &PriceBook, provider: Provider, name: &str, date: Date) -> (String, Option<ModelId>) {
    let bare = bare_name(name);
    match book.resolve(&spec(provider, &bare), date) {
        Ok(resolved) => (resolved.model.name, resolved.alias.map(|a| a.alias)),
        Err(_) => (bare, None),
    }
}

/// `gpt-4o-2024-05-13` is a dated variant of `gpt-4o`; `gpt-4o-mini-2024-07-18` is not.
fn is_dated_variant(alias: &str, name: &str) -> bool {
    let Some(rest) = name.strip_prefix(alias).and_then(|r| r.strip_prefix('-')) else {
        return false;
    };
    let digits: String = rest.chars().filter(|c| *c != '-').collect();
    digits.len() == 8 && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::window::day_of;

    fn day(text: &str) -> i32 {
        day_of(text.parse().unwrap())
    }

    #[test]
    fn aliases_resolve_to_the_snapshot_the_invoice_bills() {
        let book = PriceBook::embedded();
        let mut catalog = Catalog::new(book);
        let d = day("2026-10-05T00:00:00Z");
        let old = catalog.invoice_model(Provider::OpenAi, "gpt-4o-2024-05-13", d);
        let billed: HashSet<ModelIx> = [old].into();
        assert_eq!(catalog.traced_model(Provider::OpenAi, "gpt-4o", d, &billed), old);
        // Without that snapshot on the invoice, the book's mapping on that day applies.
        let current = catalog.traced_model(Provider::OpenAi, "gpt-4o", d + 1, &HashSet::new());
        assert_eq!(catalog.model_name(current), "gpt-4o-2024-08-06");
        // Snapshots and unknown names stay themselves.
        let mini = catalog.traced_model(Provider::OpenAi, "openai:GPT-4o-mini-2024-07-18", d, &billed);
        assert_eq!(catalog.model_name(mini), "gpt-4o-mini-2024-07-18");
        let ft = catalog.invoice_model(Provider::OpenAi, "ft:gpt-4o-mini-2024-07-18:acme::a1b2c3", d);
        assert_eq!(catalog.model_name(ft), "ft:gpt-4o-mini-2024-07-18:acme::a1b2c3");
        assert!(!catalog.is_priced(Provider::OpenAi, ft));
    }

    #[test]
    fn dated_variants() {
        assert!(is_dated_variant("gpt-4o", "gpt-4o-2024-05-13"));
        assert!(is_dated_variant("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"));
        assert!(!is_dated_variant("gpt-4o", "gpt-4o-mini-2024-07-18"));
    }
}
