//! Cost of the distribution a product serves: every request priced with the effective-dated price book,
//! per-request and per-conversation distributions, the conversation cost curve, retry amplification,
//! plots, and a routing simulation (`cost route`).

pub mod fit;
pub mod plot;
pub mod price;
pub mod report;
pub mod route;

pub use price::{Price, Pricer, Pricing, price_calls};
pub use report::{CostReport, GroupBy, call_parts, report};
