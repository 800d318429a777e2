//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod prompt;
mod reconcile;
mod state;
