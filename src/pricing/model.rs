//! The price book's vocabulary: providers, model ids, rates, effective-dated rows and aliases.

use std::fmt;
use std::path::PathBuf;

use jiff::civil::Date;
use serde::Serialize;

use crate::money::PerMTok;

/// Who bills the tokens. Google's Gemini API and Vertex AI price the same models differently, so they are
/// two providers here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
    /// The Gemini API (Google AI Studio keys).
    Google,
    /// Gemini on Google Cloud Vertex AI.
    Vertex,
}

impl Provider {
    pub const ALL: [Provider; 4] = [Provider::OpenAi, Provider::Anthropic, Provider::Google, Provider::Vertex];

    /// The id used in model specs (`openai:gpt-4o`) and output.
    pub fn id(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Google => "google",
            Provider::Vertex => "vertex",
        }
    }

    /// Accepts our ids and the names traces and other tools use for the same biller: litellm's
    /// (`gemini`, `vertex_ai`) and OpenTelemetry's (`gcp.gemini`, `gcp.vertex_ai`).
    pub fn parse(name: &str) -> Option<Provider> {
        match name.trim().to_ascii_lowercase().as_str() {
            "openai" => Some(Provider::OpenAi),
            "anthropic" => Some(Provider::Anthropic),
            "google" | "gemini" | "gcp.gemini" | "google_ai_studio" | "google-ai-studio" => Some(Provider::Google),
            "vertex" | "vertex_ai" | "vertexai" | "gcp.vertex_ai" | "google-vertex" | "vertex_ai-language-models" => {
                Some(Provider::Vertex)
            }
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A model (or alias) name under one provider: `openai:gpt-4o-2024-08-06`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ModelId {
    pub provider: Provider,
    pub name: String,
}

impl ModelId {
    pub fn new(provider: Provider, name: impl Into<String>) -> Self {
        ModelId { provider, name: name.into() }
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.provider, self.name)
    }
}

/// A model string as written by a user or a trace, split into its optional provider and the name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    pub provider: Option<Provider>,
    pub name: String,
}

/// The prefix of a model string names no provider the book knows (`sim:`, `azure/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownProvider(pub String);

impl ModelSpec {
    /// Accepts `openai:gpt-4o-mini`, `gpt-4o-mini`, litellm-style `gemini/gemini-2.5-pro` and the Gemini
    /// API's resource form `models/gemini-2.5-pro`. Names are matched case-insensitively.
    pub fn parse(text: &str) -> Result<ModelSpec, UnknownProvider> {
        let text = text.trim().to_ascii_lowercase();
        let (provider, rest) = match text.split_once(':') {
            // `ft:gpt-4o…` and other colon forms that name no provider stay one (unknown) name.
            Some((prefix, rest)) if looks_like_provider(prefix) => match Provider::parse(prefix) {
                Some(p) => (Some(p), rest.to_string()),
                None => return Err(UnknownProvider(prefix.to_string())),
            },
            _ => (None, text.clone()),
        };
        let rest = rest.strip_prefix("models/").unwrap_or(&rest);
        let (provider, name) = match rest.split_once('/') {
            Some((prefix, name)) => match (Provider::parse(prefix), provider) {
                (Some(p), None) => (Some(p), name),
                (Some(p), Some(given)) if p == given => (Some(p), name),
                (None, _) => return Err(UnknownProvider(prefix.to_string())),
                (Some(_), Some(_)) => return Err(UnknownProvider(prefix.to_string())),
            },
            None => (provider, rest),
        };
        Ok(ModelSpec { provider, name: name.to_string() })
    }
}

/// Fine-tuned OpenAI ids (`ft:gpt-4o-mini:org::id`) use a colon too; only alphabetic prefixes of a
/// plausible length are taken for a provider.
fn looks_like_provider(prefix: &str) -> bool {
    prefix != "ft" && !prefix.is_empty() && prefix.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
}

/// The prices of one tier (standard, batch, flex or priority) in USD per 1M tokens. Input and output are
/// always known; the cache prices only where published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rates {
    pub input: PerMTok,
    pub output: PerMTok,
    pub cache_read: Option<PerMTok>,
    pub cache_write_5m: Option<PerMTok>,
    pub cache_write_1h: Option<PerMTok>,
}

/// Prices that replace the standard (and priority) rates for a whole request whose input exceeds
/// `above_input_tokens` (Anthropic and Google at 200k, OpenAI's gpt-5.4 at 272k).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LongContext {
    pub above_input_tokens: u64,
    pub standard: Rates,
    pub priority: Option<Rates>,
}

/// Where a row (or alias) comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RowSource {
    /// The generated data file (`prices.json`); `dataset` names the pinned upstream file.
    Data { dataset: String },
    /// The hand-curated file (`curated.toml`), with the entry's own citation.
    Curated { source: String },
    /// A user's override file.
    Override { path: PathBuf, line: usize, note: Option<String> },
}

impl RowSource {
    pub fn is_override(&self) -> bool {
        matches!(self, RowSource::Override { .. })
    }
}

impl fmt::Display for RowSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RowSource::Data { dataset } => write!(f, "embedded ({dataset})"),
            RowSource::Curated { source } => write!(f, "embedded curated: {source}"),
            RowSource::Override { path, line, .. } => write!(f, "{}:{line}", path.display()),
        }
    }
}

/// The prices of one model over one span of days. `effective_from` is inclusive, `effective_until`
/// exclusive; `None` means unbounded (a data row without a known start applies back to the model's
/// release). Days are UTC calendar days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PriceRow {
    pub model: ModelId,
    pub effective_from: Option<Date>,
    pub effective_until: Option<Date>,
    pub standard: Rates,
    pub batch: Option<Rates>,
    pub flex: Option<Rates>,
    pub priority: Option<Rates>,
    pub long_context: Option<LongContext>,
    pub source: RowSource,
}

impl PriceRow {
    pub fn in_force(&self, date: Date) -> bool {
        self.effective_from.is_none_or(|from| from <= date) && self.effective_until.is_none_or(|until| date < until)
    }

    pub fn input(&self) -> PerMTok {
        self.standard.input
    }

    pub fn output(&self) -> PerMTok {
        self.standard.output
    }
}

/// An alias name that means a dated snapshot of the same provider over a span of days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alias {
    pub alias: ModelId,
    pub target: String,
    pub effective_from: Option<Date>,
    pub effective_until: Option<Date>,
    pub source: RowSource,
}

impl Alias {
    pub fn in_force(&self, date: Date) -> bool {
        self.effective_from.is_none_or(|from| from <= date) && self.effective_until.is_none_or(|until| date < until)
    }

    pub fn target_id(&self) -> ModelId {
        ModelId::new(self.alias.provider, self.target.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(provider: Option<Provider>, name: &str) -> ModelSpec {
        ModelSpec { provider, name: name.to_string() }
    }

    #[test]
    fn parses_the_usual_spellings_of_a_model() {
        let cases = [
            ("openai:gpt-4o-mini", spec(Some(Provider::OpenAi), "gpt-4o-mini")),
            ("gpt-4o-mini", spec(None, "gpt-4o-mini")),
            ("openai/gpt-4o", spec(Some(Provider::OpenAi), "gpt-4o")),
            ("gemini/gemini-2.5-pro", spec(Some(Provider::Google), "gemini-2.5-pro")),
            ("vertex_ai/gemini-2.5-pro", spec(Some(Provider::Vertex), "gemini-2.5-pro")),
            ("models/gemini-2.5-pro", spec(None, "gemini-2.5-pro")),
            ("google:models/gemini-2.5-pro", spec(Some(Provider::Google), "gemini-2.5-pro")),
            (" Anthropic:Claude-Sonnet-4-5 ", spec(Some(Provider::Anthropic), "claude-sonnet-4-5")),
            ("ft:gpt-4o-mini:acme::x1", spec(None, "ft:gpt-4o-mini:acme::x1")),
        ];
        for (text, expected) in cases {
            assert_eq!(ModelSpec::parse(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn unknown_provider_prefixes_are_errors_not_names() {
        assert_eq!(ModelSpec::parse("sim:gpt-4o"), Err(UnknownProvider("sim".into())));
        assert_eq!(ModelSpec::parse("azure/gpt-4o"), Err(UnknownProvider("azure".into())));
    }
}
