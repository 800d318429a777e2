//! Scan-wide tests.
