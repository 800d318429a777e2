//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod cost;
mod pricing;
mod prompt;
mod state;
mod trace;
