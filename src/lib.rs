//! promptctl: the operational side of prompts in production.
//!
//! Domain modules (`prompt`, `pricing`, `trace`, …) take and return plain structs and know nothing of the
//! terminal, clap or SQL. `store` is the only module that speaks SQL; `cli` the only one that prints.

pub mod money;
pub mod provider;
pub mod sim;
pub mod suggest;
pub mod trace;
pub mod yaml;
