//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod portfolio;
mod prompt;
mod state;
