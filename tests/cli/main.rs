//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod cost;
mod demo;
mod eval;
mod portfolio;
mod pricing;
mod prompt;
mod reconcile;
mod scan;
mod state;
mod trace;
