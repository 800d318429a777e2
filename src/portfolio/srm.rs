//! Sample-ratio mismatch: did the variants receive the traffic their weights promised?
//!
//! A mismatch means exposures were lost or duplicated on the way (a logging bug, a redirect, a bot
//! filter), and outcomes computed from such data are biased whatever the prompt did; the rebalancer
//! refuses to move weights on it.

use crate::stats::StatsError;
use crate::stats::goodness_of_fit::{ChiSquareTest, chi_square_goodness_of_fit};

/// The p-value below which the rebalancer treats the split as broken (DESIGN.md).
pub const SRM_ALARM_P_VALUE: f64 = 0.001;

/// Pearson's chi-square test of observed exposures per variant against `total × weight`.
///
/// The weights are shares of the enrolled traffic and are divided by their sum, which changes nothing
/// when they sum to 1 and otherwise describes how the enrolled units actually split. A variant with
/// weight 0 adds no degree of freedom while it has no exposures, and makes p = 0 once it has any.
pub fn sample_ratio_mismatch(observed: &[u64], weights: &[f64]) -> Result<ChiSquareTest, StatsError> {
    if observed.len() != weights.len() {
        return Err(StatsError::LengthMismatch { observed: observed.len(), expected: weights.len() });
    }
    let weight_sum: f64 = weights.iter().sum();
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) || weight_sum <= 0.0 {
        return Err(StatsError::InvalidExpected);
    }
    let total: u64 = observed.iter().sum();
    if total == 0 {
        return Err(StatsError::NoObservations);
    }
    let expected: Vec<f64> = weights.iter().map(|w| total as f64 * w / weight_sum).collect();
    let observed: Vec<f64> = observed.iter().map(|&o| o as f64).collect();
    chi_square_goodness_of_fit(&observed, &expected)
}

/// Whether a test's p-value is below [`SRM_ALARM_P_VALUE`].
pub fn is_mismatch(test: &ChiSquareTest) -> bool {
    test.p_value < SRM_ALARM_P_VALUE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_weight_arm_counts_only_when_it_has_traffic() {
        let quiet = sample_ratio_mismatch(&[500, 500, 0], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!((quiet.statistic, quiet.df, quiet.p_value), (0.0, 1, 1.0));
        let leaking = sample_ratio_mismatch(&[500, 500, 3], &[0.5, 0.5, 0.0]).unwrap();
        assert_eq!(leaking.p_value, 0.0);
        assert!(is_mismatch(&leaking));
    }

    #[test]
    fn rejects_unusable_input() {
        assert!(sample_ratio_mismatch(&[1, 2], &[1.0]).is_err());
        assert!(sample_ratio_mismatch(&[0, 0], &[0.5, 0.5]).is_err());
        assert!(sample_ratio_mismatch(&[1, 2], &[0.5, -0.5]).is_err());
        assert!(sample_ratio_mismatch(&[10], &[1.0]).is_err());
    }
}
