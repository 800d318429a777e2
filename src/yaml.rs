//! The one place that names the YAML crate (serde_norway, the maintained successor of serde_yaml).
//!
//! Errors carry 1-based line and column so that callers can point at `file:line:col`, and unknown keys
//! name the nearest valid key.

use serde::de::DeserializeOwned;

pub use serde_norway::Value;

/// A YAML parse or shape error, positioned in the text that was parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    /// 1-based, when the parser knows where.
    pub line: Option<usize>,
    /// 1-based, when the parser knows where.
    pub column: Option<usize>,
    pub message: String,
}

impl YamlError {
    /// Shifts the position by `lines` lines, for YAML embedded after other text (frontmatter after `---`).
    pub fn offset_lines(mut self, lines: usize) -> Self {
        self.line = self.line.map(|l| l + lines);
        self
    }
}

/// Parses `text` into `T`. Types that should reject unknown keys use `#[serde(deny_unknown_fields)]`.
pub fn from_str<T: DeserializeOwned>(text: &str) -> Result<T, YamlError> {
    serde_norway::from_str(text).map_err(convert_error)
}

/// Parses `text` into a generic value.
pub fn value_from_str(text: &str) -> Result<Value, YamlError> {
    from_str(text)
}

/// Re-reads a generic value as `T`, for two-step parsing (peek at a key, then pick the type).
pub fn from_value<T: DeserializeOwned>(value: Value) -> Result<T, YamlError> {
    serde_norway::from_value(value).map_err(convert_error)
}

/// Converts a YAML value to JSON, for hashing and storage (keys of a JSON object are sorted).
pub fn to_json(value: &Value) -> Result<serde_json::Value, YamlError> {
    serde_json::to_value(value).map_err(|e| YamlError { line: None, column: None, message: e.to_string() })
}

pub fn to_string<T: serde::Serialize>(value: &T) -> Result<String, YamlError> {
    serde_norway::to_string(value).map_err(convert_error)
}

fn convert_error(error: serde_norway::Error) -> YamlError {
    let location = error.location();
    let raw = error.to_string();
    YamlError {
        line: location.as_ref().map(|l| l.line()),
        column: location.as_ref().map(|l| l.column()),
        message: crate::suggest::explain_unknown_field(strip_position(&raw)),
    }
}

/// serde_norway appends " at line L column C" to its messages; the position is reported separately.
fn strip_position(message: &str) -> &str {
    match message.find(" at line ") {
        Some(i) => &message[..i],
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Front {
        name: String,
        model: Option<String>,
    }

    #[test]
    fn unknown_keys_name_the_nearest_valid_key_and_position() {
        let err = from_str::<Front>("name: a\nmodle: b\n").unwrap_err();
        assert_eq!(err.line, Some(2));
        assert_eq!(err.column, Some(1));
        assert_eq!(err.message, "unknown key `modle`; did you mean `model`? (valid keys: name, model)");
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = from_str::<Value>("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.line.is_some(), "{err:?}");
        assert!(!err.message.contains(" at line "), "{}", err.message);
    }
}
