//! Deterministic test corpus.
