//! Evals: suites, assertions, the N-of-K runner, statistics and reports.

pub mod assert;
pub mod cost;
pub mod export;
pub mod plan;
pub mod report;
pub mod runner;
pub mod sample;
pub mod stats;
pub mod suite;
