//! The conversation cost curve: cost ≈ a · turnsᵇ, fitted by least squares on logs.
//!
//! b = 1 means a conversation costs the same per turn however long it runs; b > 1 means later turns cost
//! more (each turn re-sends a growing history), so the longest conversations dominate the bill.

use serde::Serialize;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// A fitted power law with the 95 % interval of its exponent.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PowerFit {
    /// Cost of a one-turn conversation, in USD (eᵃ of the log-log line).
    pub scale_usd: f64,
    pub exponent: f64,
    /// 95 % confidence interval of the exponent (t distribution, n − 2 degrees of freedom).
    pub exponent_ci95: [f64; 2],
    /// Share of the variance of log cost explained by log turns.
    pub r_squared: f64,
    /// Conversations in the fit.
    pub n: u64,
}

/// Why a curve could not be fitted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FitError {
    #[error("fewer than {MIN_POINTS} conversations with a known, non-zero cost")]
    TooFewPoints,
    #[error("every conversation has the same number of turns")]
    NoSpread,
}

/// Fewer points than this fit anything and mean nothing: the interval would span every shape.
pub const MIN_POINTS: usize = 10;

/// Least squares of ln(cost) on ln(turns) over `points` (turns, cost in USD); points with zero turns or
/// no positive cost are left out.
pub fn power_law(points: impl IntoIterator<Item = (u64, f64)>) -> Result<PowerFit, FitError> {
    let logs: Vec<(f64, f64)> = points
        .into_iter()
        .filter(|(t, c)| *t > 0 && *c > 0.0 && c.is_finite())
        .map(|(t, c)| ((t as f64).ln(), c.ln()))
        .collect();
    let n = logs.len();
    if n < MIN_POINTS {
        return Err(FitError::TooFewPoints);
    }
    let nf = n as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / nf;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / nf;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if sxx <= f64::EPSILON {
        return Err(FitError::NoSpread);
    }
    let sxy: f64 = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    let syy: f64 = logs.iter().map(|p| (p.1 - mean_y).powi(2)).sum();
    let b = sxy / sxx;
    let a = mean_y - b * mean_x;
    let sse: f64 = logs.iter().map(|p| (p.1 - a - b * p.0).powi(2)).sum();
    let se_b = (sse / (nf - 2.0) / sxx).sqrt();
    let t = t_975(nf - 2.0);
    Ok(PowerFit {
        scale_usd: a.exp(),
        exponent: b,
        exponent_ci95: [b - t * se_b, b + t * se_b],
        r_squared: if syy > 0.0 { 1.0 - sse / syy } else { 1.0 },
        n: n as u64,
    })
}

/// The 97.5 % quantile of Student's t with `df` degrees of freedom (1.96 in the limit).
fn t_975(df: f64) -> f64 {
    // statrs' StudentsT cannot fail for a positive, finite df; fall back to the normal quantile anyway.
    StudentsT::new(0.0, 1.0, df).map(|t| t.inverse_cdf(0.975)).unwrap_or(1.959_963_984_540_054)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_an_exact_power_law() {
        let fit = power_law((1..=20).map(|t| (t, 0.002 * (t as f64).powf(1.6)))).unwrap();
        assert!((fit.exponent - 1.6).abs() < 1e-9, "{fit:?}");
        assert!((fit.scale_usd - 0.002).abs() < 1e-12);
        assert!((fit.r_squared - 1.0).abs() < 1e-9);
        assert!(fit.exponent_ci95[1] - fit.exponent_ci95[0] < 1e-6);
    }

    #[test]
    fn interval_matches_a_hand_computation() {
        // x = ln t for t = 1, 2, 4, 8 (each twice, so the 10-point minimum is met) → 0, ln2, 2ln2, 3ln2.
        let points = [(1, 1.0), (2, 2.2), (4, 3.9), (8, 8.4)].repeat(2);
        let points = [points, vec![(1, 1.0), (8, 8.4)]].concat();
        let fit = power_law(points).unwrap();
        // By hand: slope 1.0098429, intercept 0.0184016, standard error of the slope 0.0178294, and
        // t(0.975, 8) = 2.3060041 → [0.9687283, 1.0509576].
        assert!((fit.exponent - 1.009_842_9).abs() < 1e-6, "{fit:?}");
        assert!((fit.scale_usd - 0.018_401_6_f64.exp()).abs() < 1e-6);
        assert!((fit.exponent_ci95[0] - 0.968_728_3).abs() < 1e-6, "{fit:?}");
        assert!((fit.exponent_ci95[1] - 1.050_957_6).abs() < 1e-6, "{fit:?}");
        assert!((t_975(8.0) - 2.306_004_1).abs() < 1e-6);
        assert!((t_975(2.0) - 4.302_652_7).abs() < 1e-6);
    }

    #[test]
    fn refuses_degenerate_inputs() {
        assert_eq!(power_law([(1, 1.0), (2, 2.0)]), Err(FitError::TooFewPoints));
        assert_eq!(power_law((1..=12).map(|i| (3, i as f64))), Err(FitError::NoSpread));
        assert_eq!(power_law([(0, 1.0), (2, 0.0), (4, f64::NAN)]), Err(FitError::TooFewPoints));
    }
}
