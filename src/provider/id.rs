//! Provider ids: `openai:MODEL`, `anthropic:MODEL`, `sim:MODEL`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::ProviderError;

/// Which wire protocol and vendor defaults a provider id means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    /// OpenAI chat completions, or any OpenAI-compatible server given a `base_url`.
    OpenAi,
    /// Anthropic Messages.
    Anthropic,
    /// The promptctl simulator; speaks the OpenAI protocol at a `base_url`.
    Sim,
}

impl ProviderKind {
    pub const ALL: [ProviderKind; 3] = [ProviderKind::OpenAi, ProviderKind::Anthropic, ProviderKind::Sim];

    /// The prefix in a provider id and the `provider` column of request rows.
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::OpenAi => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Sim => "sim",
        }
    }

    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("https://api.openai.com/v1"),
            ProviderKind::Anthropic => Some("https://api.anthropic.com/v1"),
            ProviderKind::Sim => None,
        }
    }

    pub fn default_api_key_env(self) -> Option<&'static str> {
        match self {
            ProviderKind::OpenAi => Some("OPENAI_API_KEY"),
            ProviderKind::Anthropic => Some("ANTHROPIC_API_KEY"),
            ProviderKind::Sim => None,
        }
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `KIND:MODEL`, e.g. `openai:gpt-4o-mini`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ProviderId {
    pub kind: ProviderKind,
    pub model: String,
}

impl ProviderId {
    pub fn new(kind: ProviderKind, model: impl Into<String>) -> Self {
        ProviderId { kind, model: model.into() }
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.model)
    }
}

impl FromStr for ProviderId {
    type Err = ProviderError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| ProviderError::InvalidId { id: text.to_string(), reason };
        let Some((prefix, model)) = text.split_once(':') else {
            return Err(invalid("expected KIND:MODEL, e.g. openai:gpt-4o-mini".into()));
        };
        let kind = ProviderKind::ALL
            .into_iter()
            .find(|k| k.as_str() == prefix)
            .ok_or_else(|| invalid(unknown_kind_reason(prefix)))?;
        if model.trim().is_empty() {
            return Err(invalid("the model after the colon is empty".into()));
        }
        Ok(ProviderId::new(kind, model))
    }
}

fn unknown_kind_reason(prefix: &str) -> String {
    let names = ProviderKind::ALL.map(ProviderKind::as_str);
    let hint = crate::suggest::nearest(prefix, names.iter().copied())
        .map(|near| format!("; did you mean `{near}`?"))
        .unwrap_or_default();
    format!("unknown provider `{prefix}`{hint} (known: {})", names.join(", "))
}

impl Serialize for ProviderId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProviderId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_models_may_contain_colons() {
        let id: ProviderId = "openai:ft:gpt-4o-mini:acme".parse().unwrap();
        assert_eq!(id.kind, ProviderKind::OpenAi);
        assert_eq!(id.model, "ft:gpt-4o-mini:acme");
        assert_eq!(id.to_string(), "openai:ft:gpt-4o-mini:acme");
    }

    #[test]
    fn unknown_kinds_name_the_nearest_one() {
        let err = "antropic:claude".parse::<ProviderId>().unwrap_err();
        assert!(err.to_string().contains("did you mean `anthropic`"), "{err}");
        assert!("gpt-4o".parse::<ProviderId>().is_err());
        assert!("sim:".parse::<ProviderId>().is_err());
    }
}
