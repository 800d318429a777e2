//! Errors about a user's input file, positioned so an editor can jump to them.

use std::fmt;

/// Something wrong in a file the user wrote: `path:line:col: message`, plus what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct InputError {
    /// As the user would type it (relative to where they ran the command, when possible).
    pub path: String,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based, in characters.
    pub column: Option<usize>,
    pub message: String,
    pub hint: Option<String>,
}

impl InputError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        InputError { path: path.into(), line: None, column: None, message: message.into(), hint: None }
    }

    pub fn at(mut self, line: usize, column: usize) -> Self {
        self.line = Some(line);
        self.column = Some(column);
        self
    }

    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// From a YAML error in text that starts at line `first_line` of the file.
    pub fn from_yaml(path: impl Into<String>, err: crate::yaml::YamlError, first_line: usize) -> Self {
        let err = err.offset_lines(first_line - 1);
        InputError { path: path.into(), line: err.line, column: err.column, message: err.message, hint: None }
    }
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// 1-based line and column (in chars) of byte offset `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Reads a text file a user gave us, with the errors they need: missing, empty, not UTF-8.
pub fn read_text_file(path: &std::path::Path, shown_as: &str) -> Result<String, InputError> {
    let bytes = std::fs::read(path).map_err(|e| {
        let message = match e.kind() {
            std::io::ErrorKind::NotFound => "file not found".to_string(),
            _ => format!("cannot read: {e}"),
        };
        InputError::new(shown_as, message)
    })?;
    String::from_utf8(bytes).map_err(|e| {
        let valid = e.utf8_error().valid_up_to();
        let text = String::from_utf8_lossy(&e.as_bytes()[..valid]).into_owned();
        let (line, column) = line_col(&text, valid);
        InputError::new(shown_as, "not valid UTF-8").at(line, column).with_hint("save the file as UTF-8")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based_and_count_chars() {
        assert_eq!(line_col("ab\ncdé f", 0), (1, 1));
        assert_eq!(line_col("ab\ncdé f", 3), (2, 1));
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
    }

    #[test]
    fn display_includes_what_is_known() {
        assert_eq!(InputError::new("a.yaml", "bad").to_string(), "a.yaml: bad");
        assert_eq!(InputError::new("a.yaml", "bad").at(3, 4).to_string(), "a.yaml:3:4: bad");
    }
}
