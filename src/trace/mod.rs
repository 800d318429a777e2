//! Traces: the normalized request model, importers, stream checkpoints and the tail taxonomy.

pub mod import;
pub mod model;
