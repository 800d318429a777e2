//! The error every command returns: a message, hints, and the exit code it maps to (CLI.md).

use std::fmt;

use crate::diag::InputError;
use crate::store::StoreError;

/// Process exit codes, as CLI.md defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    /// A check failed: eval gate, findings at or above `--fail-on`, reconcile gap above tolerance.
    CheckFailed = 1,
    /// Bad usage or bad input.
    Input = 2,
    /// Provider or network failure after retries.
    Provider = 3,
    /// State file problem.
    State = 4,
    /// Stopped by Ctrl-C (128 + SIGINT, as shells report it).
    Interrupted = 130,
}

/// A failure to report on stderr, with what the user can do about it.
#[derive(Debug)]
pub struct CliError {
    pub exit: Exit,
    pub message: String,
    pub hints: Vec<String>,
}

impl CliError {
    pub fn new(exit: Exit, message: impl Into<String>) -> Self {
        CliError { exit, message: message.into(), hints: Vec::new() }
    }

    pub fn input(message: impl Into<String>) -> Self {
        CliError::new(Exit::Input, message)
    }

    pub fn state(message: impl Into<String>) -> Self {
        CliError::new(Exit::State, message)
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hints.push(hint.into());
        self
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<InputError> for CliError {
    fn from(e: InputError) -> Self {
        let hints = e.hint.clone().into_iter().collect();
        CliError { exit: Exit::Input, message: e.to_string(), hints }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let hints = e.hint().into_iter().collect();
        CliError { exit: Exit::State, message: e.to_string(), hints }
    }
}

impl From<std::io::Error> for CliError {
    fn from(e: std::io::Error) -> Self {
        CliError::new(Exit::Input, e.to_string())
    }
}

pub type CmdResult = Result<Exit, CliError>;
