//! Traces: the normalized request model, importers, stream checkpoints and the tail taxonomy.

pub mod generate;
pub mod import;
pub mod model;
pub mod records;
pub mod stats;
pub mod tails;
