//! Numeric building blocks shared by evals, portfolios and reports.
//!
//! Distribution functions come from `statrs` and random variates from `rand_distr`; this module pins down
//! the conventions on top of them (argument checks, edge cases, which quantile definition) so that every
//! caller agrees. The reference values these functions are tested against are in `tests/vectors/`.

pub mod distributions;
pub mod goodness_of_fit;
pub mod percentile;
pub mod sampling;

use thiserror::Error;

/// An argument outside the domain of a statistic. Raised before any computation, never for a result.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum StatsError {
    #[error("k must be between 1 and n = {n}, got k = {k}")]
    InvalidK { n: u64, k: u64 },
    #[error("{successes} successes out of {trials} trials is impossible")]
    SuccessesExceedTrials { successes: u64, trials: u64 },
    #[error("a proportion needs at least one trial")]
    NoTrials,
    #[error("alpha must be strictly between 0 and 1, got {0}")]
    InvalidAlpha(f64),
    #[error("probability must be between 0 and 1, got {0}")]
    InvalidProbability(f64),
    #[error("{name} must be finite and greater than 0, got {value}")]
    InvalidParameter { name: &'static str, value: f64 },
    #[error("{observed} observed counts but {expected} expected counts or weights")]
    LengthMismatch { observed: usize, expected: usize },
    #[error("a goodness-of-fit test needs at least two categories, got {0}")]
    TooFewCategories(usize),
    #[error("observed counts must be finite and non-negative")]
    InvalidObserved,
    #[error("expected counts and weights must be finite and non-negative with a positive sum")]
    InvalidExpected,
    #[error("there are no observations to test")]
    NoObservations,
    #[error("a sample must not be empty")]
    EmptySample,
    #[error("a bootstrap needs at least one resample")]
    NoResamples,
    #[error("paired samples differ in length: {left} against {right}")]
    UnpairedSamples { left: usize, right: usize },
    #[error("the sample contains a value that is not finite")]
    NonFiniteValue,
    #[error("require N = {required} must be between 1 and samples K = {samples}")]
    InvalidRequirement { required: u32, samples: u32 },
    #[error("{passed} passes and {errors} errors exceed the {samples} samples of a case")]
    TooManyOutcomes { passed: u32, errors: u32, samples: u32 },
}
