//! `promptctl.toml`: project defaults, pricing overrides, scan scopes.

use serde::Deserialize;

use crate::diag::{InputError, line_col};

pub const FILE_NAME: &str = "promptctl.toml";

/// What `promptctl init` writes when there is no config yet.
pub const TEMPLATE: &str = r#"# promptctl configuration — see docs/config.md.

[defaults]
# The provider eval suites use when they name none.
provider = "openai:gpt-4o-mini"

[pricing]
# A file of effective-dated prices that add to or override the built-in price book
# (negotiated discounts, fine-tunes). See docs/pricing.md.
# overrides = "pricing.toml"

[scan]
tenant_field = "tenant_id"
fail_on = "high"
# Which tenants each prompt is served to; a prompt without a scope is itself a finding.
# [[scan.prompts]]
# path = "prompts/support-reply.prompt"
# scope = ["*"]
"#;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub defaults: Defaults,
    #[serde(default)]
    pub pricing: PricingConfig,
    /// Validated by the scan module, which owns its keys.
    #[serde(default)]
    pub scan: Option<toml::Table>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Defaults {
    pub provider: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PricingConfig {
    /// Relative to the directory of `promptctl.toml`.
    pub overrides: Option<String>,
}

impl Config {
    pub fn parse(text: &str, shown_as: &str) -> Result<Config, InputError> {
        toml::from_str(text).map_err(|e| toml_error(text, shown_as, &e))
    }
}

/// A TOML error positioned in its file, with serde's "unknown field" rewritten to name the nearest key.
pub fn toml_error(text: &str, shown_as: &str, e: &toml::de::Error) -> InputError {
    let message = crate::suggest::explain_unknown_field(e.message());
    let error = InputError::new(shown_as, message);
    match e.span() {
        Some(span) => {
            let (line, column) = line_col(text, span.start);
            error.at(line, column)
        }
        None => error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_template_parses() {
        let c = Config::parse(TEMPLATE, "promptctl.toml").unwrap();
        assert_eq!(c.defaults.provider.as_deref(), Some("openai:gpt-4o-mini"));
    }

    #[test]
    fn unknown_keys_are_located_and_named() {
        let e = Config::parse("[defaults]\nprovidr = \"x\"\n", "promptctl.toml").unwrap_err();
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("did you mean `provider`"), "{}", e.message);
    }
}
