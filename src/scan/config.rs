//! The `[scan]` section of `promptctl.toml`, which the config module hands over as a table: this module
//! owns and validates its keys.
//!
//! ```toml
//! [scan]
//! tenant_field = "tenant_id"
//! fail_on = "high"
//! rules = "scan-rules.yaml"            # extra secret rules (same shape as the built-in file)
//! [[scan.prompts]]
//! path = "prompts/support-reply.prompt"
//! scope = ["*"]
//! rendered_turns = 16                  # optional: overrides what the prompt module counts
//! [[scan.suppressions]]
//! rule = "pii.email"
//! path = "prompts/**/*.yaml"
//! reason = "support addresses of our own company"
//! owner = "lena"
//! expires = 2026-12-31
//! ```

use jiff::civil::Date;
use serde::Deserialize;

use super::ScanOptions;
use super::error::ScanError;
use super::model::Severity;
use super::suppress::Suppression;

/// The validated `[scan]` section.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanConfig {
    #[serde(default = "default_tenant_field")]
    pub tenant_field: String,
    #[serde(default = "default_fail_on")]
    pub fail_on: Severity,
    /// A user secret-rules file, relative to `promptctl.toml`.
    #[serde(default)]
    pub rules: Option<String>,
    #[serde(default)]
    pub prompts: Vec<PromptScope>,
    #[serde(default)]
    suppressions: Vec<SuppressionEntry>,
    /// Overrides of the overlap thresholds (docs/scan.md).
    #[serde(default)]
    pub min_run_words: Option<usize>,
    #[serde(default)]
    pub min_run_chars: Option<usize>,
}

/// `[[scan.prompts]]`: which tenants a prompt is served to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptScope {
    pub path: String,
    pub scope: Vec<String>,
    #[serde(default)]
    pub rendered_turns: Option<usize>,
    /// When the current examples went live (RFC 3339), for teams that deploy outside promptctl's labels;
    /// otherwise the `production` label history says.
    #[serde(default)]
    pub deployed_at: Option<jiff::Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuppressionEntry {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    rule: Option<String>,
    #[serde(default)]
    path: Option<String>,
    reason: String,
    owner: String,
    #[serde(default)]
    expires: Option<toml::value::Datetime>,
}

fn default_tenant_field() -> String {
    "tenant_id".to_string()
}

fn default_fail_on() -> Severity {
    Severity::High
}

impl Default for ScanConfig {
    fn default() -> Self {
        ScanConfig {
            tenant_field: default_tenant_field(),
            fail_on: default_fail_on(),
            rules: None,
            prompts: Vec::new(),
            suppressions: Vec::new(),
            min_run_words: None,
            min_run_chars: None,
        }
    }
}

#[derive(Deserialize)]
struct WholeFile {
    #[serde(default)]
    scan: Option<ScanConfig>,
}

impl ScanConfig {
    /// Reads `[scan]` from the whole text of `promptctl.toml`, so that errors carry line and column.
    /// Other sections are ignored here (the config module checks them).
    pub fn from_toml_text(text: &str, shown_as: &str) -> Result<ScanConfig, ScanError> {
        let whole: WholeFile =
            toml::from_str(text).map_err(|e| ScanError::Config(crate::config::toml_error(text, shown_as, &e)))?;
        let config = whole.scan.unwrap_or_default();
        config.check(shown_as)?;
        Ok(config)
    }

    /// Reads `[scan]` from the table the config module kept; errors name the key but no position.
    pub fn from_table(table: &toml::Table, shown_as: &str) -> Result<ScanConfig, ScanError> {
        let config: ScanConfig = table.clone().try_into().map_err(|e: toml::de::Error| {
            ScanError::Config(crate::diag::InputError::new(
                shown_as,
                format!("[scan]: {}", crate::suggest::explain_unknown_field(e.message())),
            ))
        })?;
        config.check(shown_as)?;
        Ok(config)
    }

    fn check(&self, shown_as: &str) -> Result<(), ScanError> {
        let error = |message: String| ScanError::Config(crate::diag::InputError::new(shown_as, message));
        for p in &self.prompts {
            if p.scope.is_empty() {
                return Err(error(format!(
                    "[[scan.prompts]] `{}`: empty scope; list its tenants, or \"*\" for all",
                    p.path
                )));
            }
        }
        for (i, s) in self.suppressions().map_err(&error)?.iter().enumerate() {
            s.validate(i).map_err(|e| error(format!("[[scan.suppressions]] #{}: {e}", i + 1)))?;
        }
        Ok(())
    }

    /// The configured scope of the prompt at `path` (relative to the root, `/`-separated).
    pub fn prompt(&self, path: &str) -> Option<&PromptScope> {
        self.prompts.iter().find(|p| p.path == path)
    }

    /// The `[[scan.suppressions]]`, with `expires` as a date (a TOML date or a `"YYYY-MM-DD"` string).
    pub fn suppressions(&self) -> Result<Vec<Suppression>, String> {
        self.suppressions
            .iter()
            .map(|s| {
                let expires = s.expires.as_ref().map(expiry_date).transpose()?;
                Ok(Suppression {
                    id: s.id.clone(),
                    rule: s.rule.clone(),
                    path: s.path.clone(),
                    reason: s.reason.clone(),
                    owner: s.owner.clone(),
                    expires,
                })
            })
            .collect()
    }

    /// Scan options with this section's tenant field and thresholds.
    pub fn options(&self) -> ScanOptions {
        let defaults = ScanOptions::default();
        ScanOptions {
            tenant_field: self.tenant_field.clone(),
            min_run_words: self.min_run_words.unwrap_or(defaults.min_run_words),
            min_run_chars: self.min_run_chars.unwrap_or(defaults.min_run_chars),
            ..defaults
        }
    }
}

fn expiry_date(value: &toml::value::Datetime) -> Result<Date, String> {
    let date = value.date.ok_or_else(|| format!("expires `{value}` is not a date"))?;
    Date::new(date.year as i16, date.month as i8, date.day as i8).map_err(|e| format!("expires `{value}`: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"[defaults]
provider = "openai:gpt-4o-mini"

[scan]
tenant_field = "org_id"
fail_on = "critical"
[[scan.prompts]]
path = "prompts/support-reply.prompt"
scope = ["*"]
[[scan.prompts]]
path = "prompts/billing.prompt"
scope = ["acme"]
rendered_turns = 4
[[scan.suppressions]]
rule = "pii.email"
path = "prompts/**"
reason = "our own support addresses"
owner = "lena"
expires = 2026-12-31
"#;

    #[test]
    fn reads_scopes_options_and_suppressions() {
        let c = ScanConfig::from_toml_text(TEXT, "promptctl.toml").unwrap();
        assert_eq!(c.fail_on, Severity::Critical);
        assert_eq!(c.options().tenant_field, "org_id");
        assert_eq!(c.prompt("prompts/billing.prompt").unwrap().rendered_turns, Some(4));
        assert!(c.prompt("prompts/other.prompt").is_none());
        let s = c.suppressions().unwrap();
        assert_eq!(s[0].expires, Some("2026-12-31".parse().unwrap()));
        let table: toml::Table = toml::from_str::<toml::Table>(TEXT).unwrap()["scan"].as_table().unwrap().clone();
        assert_eq!(ScanConfig::from_table(&table, "promptctl.toml").unwrap(), c);
    }

    #[test]
    fn unknown_keys_are_positioned_and_explained() {
        let err = ScanConfig::from_toml_text("[scan]\ntenant_feild = \"x\"\n", "promptctl.toml").unwrap_err();
        let ScanError::Config(e) = err else { panic!("{err}") };
        assert_eq!(e.line, Some(2));
        assert!(e.message.contains("tenant_field"), "{}", e.message);
        let err =
            ScanConfig::from_toml_text("[scan]\n[[scan.prompts]]\npath = \"p\"\nscope = []\n", "c.toml").unwrap_err();
        assert!(err.to_string().contains("empty scope"), "{err}");
        let err =
            ScanConfig::from_toml_text("[[scan.suppressions]]\nrule = \"x\"\nreason = \"\"\nowner = \"o\"\n", "c.toml")
                .unwrap_err();
        assert!(err.to_string().contains("reason"), "{err}");
    }

    #[test]
    fn a_missing_section_is_the_default() {
        let c = ScanConfig::from_toml_text("[defaults]\n", "c.toml").unwrap();
        assert_eq!(c, ScanConfig::default());
    }
}
