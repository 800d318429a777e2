pub mod assert;
pub mod stats;
pub mod suite;
