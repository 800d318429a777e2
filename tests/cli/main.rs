//! Integration tests: the real binary on fixture projects in temporary directories.

mod common;
mod demo;
mod portfolio;
mod prompt;
mod reconcile;
mod scan;
mod state;
