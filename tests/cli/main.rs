//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod demo;
mod eval;
mod portfolio;
mod prompt;
mod scan;
mod state;
