//! Weighted prompt portfolios: the portfolio file, GrowthBook-compatible hashing, allocation and
//! segments, the GrowthBook export, observations, the Thompson-sampling rebalancer with its
//! sample-ratio guard, a simulated bandit to test it against, and rollback plans.
//!
//! Nothing here reads files, prints or speaks SQL: `cli/` gathers inputs and `store/` persists.

pub mod allocate;
pub mod assign;
pub mod export;
pub mod hashing;
pub mod observe;
pub mod rebalance;
pub mod rollback;
pub mod segment;
pub mod simulate;
pub mod spec;
pub mod srm;
