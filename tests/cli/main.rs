//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod eval;
mod prompt;
mod state;
