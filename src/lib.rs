//! promptctl: the operational side of prompts in production.
//!
//! Domain modules (`prompt`, `pricing`, `trace`, …) take and return plain structs and know nothing of the
//! terminal, clap or SQL. `store` is the only module that speaks SQL; `cli` the only one that prints.

pub mod cli;
pub mod config;
pub mod cost;
pub mod diag;
pub mod eval;
pub mod money;
pub mod numbers;
pub mod portfolio;
pub mod pricing;
pub mod prompt;
pub mod provider;
pub mod reconcile;
pub mod scan;
pub mod sim;
pub mod stats;
pub mod store;
pub mod suggest;
pub mod tokens;
pub mod trace;
pub mod yaml;
