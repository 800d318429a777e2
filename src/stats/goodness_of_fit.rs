//! Pearson's chi-square goodness-of-fit test.

use serde::Serialize;

use super::StatsError;
use super::distributions::chi_square_survival;

/// The outcome of a chi-square goodness-of-fit test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChiSquareTest {
    /// Σ (observed − expected)² / expected.
    pub statistic: f64,
    /// Degrees of freedom: categories with a positive expectation, minus one.
    pub df: u32,
    /// `P(χ²_df ≥ statistic)`: small when the observations do not fit the expectation.
    pub p_value: f64,
}

/// Tests observed counts against expected counts, as `scipy.stats.chisquare(observed, f_exp=expected)`.
///
/// The expected counts are used as given (not rescaled to the observed total). A category expected to be
/// empty contributes nothing and no degree of freedom while it is empty too, and makes the statistic
/// infinite (p = 0) as soon as it has an observation: traffic where none was planned is a mismatch.
pub fn chi_square_goodness_of_fit(observed: &[f64], expected: &[f64]) -> Result<ChiSquareTest, StatsError> {
    check_shapes(observed, expected)?;
    let mut statistic = 0.0;
    let mut categories = 0u32;
    for (&o, &e) in observed.iter().zip(expected) {
        if e > 0.0 {
            categories += 1;
            statistic += (o - e) * (o - e) / e;
        } else if o > 0.0 {
            statistic = f64::INFINITY;
        }
    }
    if categories < 2 {
        return Err(StatsError::TooFewCategories(categories as usize));
    }
    let df = categories - 1;
    let p_value = chi_square_survival(statistic, f64::from(df))?;
    Ok(ChiSquareTest { statistic, df, p_value })
}

fn check_shapes(observed: &[f64], expected: &[f64]) -> Result<(), StatsError> {
    if observed.len() != expected.len() {
        return Err(StatsError::LengthMismatch { observed: observed.len(), expected: expected.len() });
    }
    if observed.len() < 2 {
        return Err(StatsError::TooFewCategories(observed.len()));
    }
    if observed.iter().any(|o| !o.is_finite() || *o < 0.0) {
        return Err(StatsError::InvalidObserved);
    }
    let expected_ok = expected.iter().all(|e| e.is_finite() && *e >= 0.0);
    if !expected_ok || expected.iter().sum::<f64>() <= 0.0 {
        return Err(StatsError::InvalidExpected);
    }
    Ok(())
}
