//! Simulator (placeholder while the provider compiles).
