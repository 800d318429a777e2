//! Statistics and hashing against the binding reference vectors in `tests/vectors/`, plus properties.

mod growthbook_vectors;
mod properties;
mod stats_vectors;
mod vector_files;
