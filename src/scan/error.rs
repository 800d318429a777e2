//! Errors of the scan engine. Each names the file and, where known, line and column.

/// Why a scan could not run. Findings are not errors; bad trace lines are counted, not raised.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("{path}{}: {message}", position(*line, *column))]
    Rules { path: String, line: Option<usize>, column: Option<usize>, message: String },
    #[error("{path}{}: {message}", position(*line, *column))]
    Examples { path: String, line: Option<usize>, column: Option<usize>, message: String },
    #[error("{path}{}: {message}", position(*line, *column))]
    Provenance { path: String, line: Option<usize>, column: Option<usize>, message: String },
    #[error("suppression {index}: {message}")]
    Suppression { index: usize, message: String },
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("baseline: {0}")]
    Baseline(String),
    /// The `[scan]` section of `promptctl.toml`.
    #[error(transparent)]
    Config(crate::diag::InputError),
}

fn position(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(":{l}:{c}"),
        (Some(l), None) => format!(":{l}"),
        _ => String::new(),
    }
}
