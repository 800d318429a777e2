//! Weighted prompt portfolios: GrowthBook-compatible hashing and allocation, and the sample-ratio check
//! that guards rebalancing.

pub mod allocate;
pub mod hashing;
pub mod srm;
