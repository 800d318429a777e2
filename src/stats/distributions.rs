//! Distribution functions (CDFs, survival functions, quantiles) with checked arguments.
//!
//! Thin wrappers over `statrs`: it panics or returns NaN on bad input, whereas callers here get a
//! `StatsError` naming the bad argument. Precision was checked against scipy in `tests/vectors/stats.json`.

use statrs::distribution::{Beta, Binomial, ChiSquared, Continuous, ContinuousCDF, DiscreteCDF, Normal};

use super::StatsError;

/// The standard normal quantile: the z with `P(Z <= z) = p`. `p = 0` and `p = 1` give ∓∞.
pub fn normal_quantile(p: f64) -> Result<f64, StatsError> {
    check_probability(p)?;
    Ok(Normal::standard().inverse_cdf(p))
}

/// The two-sided critical value `z` with `P(|Z| > z) = alpha`, e.g. 1.959963984540054 for 0.05.
pub fn two_sided_normal_critical(alpha: f64) -> Result<f64, StatsError> {
    check_alpha(alpha)?;
    // The upper tail is taken as -quantile(alpha/2) because the lower tail keeps full relative
    // precision for small alpha, where 1 - alpha/2 would round.
    Ok(-Normal::standard().inverse_cdf(alpha / 2.0))
}

/// The inverse CDF of Beta(a, b) at probability `q` (scipy's `beta.ppf(q, a, b)`).
/// `q = 0` gives 0 and `q = 1` gives 1.
pub fn beta_quantile(a: f64, b: f64, q: f64) -> Result<f64, StatsError> {
    let beta = beta_distribution(a, b)?;
    check_probability(q)?;
    if q == 0.0 || q == 1.0 {
        return Ok(q);
    }
    Ok(polish_beta_quantile(&beta, q, beta.inverse_cdf(q)))
}

/// statrs' AS 109 iteration stops on an absolute criterion, so a quantile far below 1e-6 (a, b < 1 at a
/// small q) keeps only about 6 correct digits. Newton steps on the CDF restore full relative precision;
/// a step is kept only if it stays inside (0, 1) and brings the CDF closer to `q`, so it can never make
/// the library's answer worse.
fn polish_beta_quantile(beta: &Beta, q: f64, mut x: f64) -> f64 {
    const NEWTON_STEPS: usize = 2;
    let mut miss = (beta.cdf(x) - q).abs();
    for _ in 0..NEWTON_STEPS {
        let step = (beta.cdf(x) - q) / beta.pdf(x);
        let candidate = x - step;
        if !(candidate > 0.0 && candidate < 1.0) {
            break;
        }
        let candidate_miss = (beta.cdf(candidate) - q).abs();
        if candidate_miss >= miss {
            break;
        }
        (x, miss) = (candidate, candidate_miss);
    }
    x
}

/// The CDF of Beta(a, b) at `x` (the regularized incomplete beta function).
pub fn beta_cdf(a: f64, b: f64, x: f64) -> Result<f64, StatsError> {
    let beta = beta_distribution(a, b)?;
    check_probability(x)?;
    Ok(beta.cdf(x))
}

/// `P(X > x)` for a chi-square distribution with `df` degrees of freedom (scipy's `chi2.sf`).
pub fn chi_square_survival(x: f64, df: f64) -> Result<f64, StatsError> {
    check_positive("df", df)?;
    if x.is_nan() {
        return Err(StatsError::InvalidParameter { name: "chi-square statistic", value: x });
    }
    if x <= 0.0 {
        return Ok(1.0);
    }
    if x == f64::INFINITY {
        return Ok(0.0);
    }
    let chi_square = ChiSquared::new(df).map_err(|_| StatsError::InvalidParameter { name: "df", value: df })?;
    Ok(chi_square.sf(x))
}

/// `P(X <= k)` for X ~ Binomial(n, p).
pub fn binomial_cdf(k: u64, n: u64, p: f64) -> Result<f64, StatsError> {
    check_probability(p)?;
    let binomial = Binomial::new(p, n).map_err(|_| StatsError::InvalidProbability(p))?;
    Ok(binomial.cdf(k))
}

fn beta_distribution(a: f64, b: f64) -> Result<Beta, StatsError> {
    check_positive("a", a)?;
    check_positive("b", b)?;
    Beta::new(a, b).map_err(|_| StatsError::InvalidParameter { name: "beta shape", value: a.min(b) })
}

pub(crate) fn check_probability(p: f64) -> Result<(), StatsError> {
    if (0.0..=1.0).contains(&p) { Ok(()) } else { Err(StatsError::InvalidProbability(p)) }
}

pub(crate) fn check_alpha(alpha: f64) -> Result<(), StatsError> {
    if alpha > 0.0 && alpha < 1.0 { Ok(()) } else { Err(StatsError::InvalidAlpha(alpha)) }
}

pub(crate) fn check_positive(name: &'static str, value: f64) -> Result<(), StatsError> {
    if value.is_finite() && value > 0.0 { Ok(()) } else { Err(StatsError::InvalidParameter { name, value }) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn critical_value_is_scipys_norm_isf() {
        // scipy.stats.norm.isf(0.025), as tests/vectors/README.md quotes it; statrs is an ulp above.
        let z = two_sided_normal_critical(0.05).unwrap();
        assert!((z - 1.959963984540054).abs() < 1e-15);
        assert_eq!(normal_quantile(0.5), Ok(0.0));
    }

    #[test]
    fn chi_square_survival_ends() {
        assert_eq!(chi_square_survival(0.0, 2.0), Ok(1.0));
        assert_eq!(chi_square_survival(f64::INFINITY, 2.0), Ok(0.0));
        assert!(chi_square_survival(f64::NAN, 2.0).is_err());
        assert!(chi_square_survival(1.0, 0.0).is_err());
    }

    #[test]
    fn beta_quantile_ends_and_bad_arguments() {
        assert_eq!(beta_quantile(0.5, 0.5, 0.0), Ok(0.0));
        assert_eq!(beta_quantile(0.5, 0.5, 1.0), Ok(1.0));
        assert!(beta_quantile(0.0, 1.0, 0.5).is_err());
        assert!(beta_quantile(1.0, 1.0, 1.5).is_err());
    }

    #[test]
    fn binomial_cdf_of_a_fair_coin() {
        assert!((binomial_cdf(0, 2, 0.5).unwrap() - 0.25).abs() < 1e-14);
        assert_eq!(binomial_cdf(2, 2, 0.5), Ok(1.0));
        assert!(binomial_cdf(1, 2, 1.5).is_err());
    }
}
