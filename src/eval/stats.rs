//! The statistics of N-of-K evals: pass@k, pass^k, Wilson intervals, exact McNemar, a paired bootstrap,
//! and the status of a case.
//!
//! Each estimator follows one reference implementation, named in its documentation, and is tested against
//! that implementation's values in `tests/vectors/stats.json`.

use std::fmt;

use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::stats::StatsError;
use crate::stats::distributions::{binomial_cdf, check_alpha, two_sided_normal_critical};
use crate::stats::percentile::Percentiles;
use crate::stats::sampling::seeded_rng;

/// The unbiased pass@k estimator of Chen et al. (2021): the chance that at least one of k samples drawn
/// without replacement from n, of which c passed, passes. Equal to `1 − C(n−c, k) / C(n, k)`.
///
/// Computed exactly as human-eval's `estimate_pass_at_k` does (`1 − ∏_{i=n−c+1}^{n} (1 − k/i)`, and 1.0
/// when `n − c < k`), so the float rounding matches it too. Requires `1 ≤ k ≤ n` and `c ≤ n`.
pub fn pass_at_k(n: u64, c: u64, k: u64) -> Result<f64, StatsError> {
    check_sample_counts(n, c, k)?;
    if n - c < k {
        return Ok(1.0);
    }
    let k = k as f64;
    let all_fail = (n - c + 1..=n).map(|i| 1.0 - k / i as f64).product::<f64>();
    Ok(1.0 - all_fail)
}

/// pass^k of τ-bench: the chance that all of k samples drawn without replacement pass,
/// `C(c, k) / C(n, k)`. 0 when `c < k`, 1 when `c = n`. Requires `1 ≤ k ≤ n` and `c ≤ n`.
pub fn pass_hat_k(n: u64, c: u64, k: u64) -> Result<f64, StatsError> {
    check_sample_counts(n, c, k)?;
    if c < k {
        return Ok(0.0);
    }
    // C(c,k)/C(n,k) = ∏_{i<k} (c−i)/(n−i); the factorials themselves would overflow.
    Ok((0..k).map(|i| (c - i) as f64 / (n - i) as f64).product())
}

fn check_sample_counts(n: u64, c: u64, k: u64) -> Result<(), StatsError> {
    if k == 0 || k > n {
        return Err(StatsError::InvalidK { n, k });
    }
    if c > n {
        return Err(StatsError::SuccessesExceedTrials { successes: c, trials: n });
    }
    Ok(())
}

/// A two-sided confidence interval. Serializes as `[lower, upper]`, the shape of `wilson` in eval reports.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct Interval {
    pub lower: f64,
    pub upper: f64,
}

impl Interval {
    pub fn contains(&self, x: f64) -> bool {
        self.lower <= x && x <= self.upper
    }
}

impl From<[f64; 2]> for Interval {
    fn from([lower, upper]: [f64; 2]) -> Self {
        Interval { lower, upper }
    }
}

impl From<Interval> for [f64; 2] {
    fn from(interval: Interval) -> Self {
        [interval.lower, interval.upper]
    }
}

/// The Wilson score interval for a binomial proportion at confidence `1 − alpha`, with statsmodels'
/// arithmetic (`proportion_confint(..., method="wilson")`). Bounds are clamped to `[0, 1]`, which only
/// removes rounding residue such as the 2e-19 statsmodels reports as the lower bound of 0/1000.
pub fn wilson_interval(successes: u64, trials: u64, alpha: f64) -> Result<Interval, StatsError> {
    if trials == 0 {
        return Err(StatsError::NoTrials);
    }
    if successes > trials {
        return Err(StatsError::SuccessesExceedTrials { successes, trials });
    }
    let z = two_sided_normal_critical(alpha)?;
    let n = trials as f64;
    let p = successes as f64 / n;
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let center = (p + z2 / (2.0 * n)) / denominator;
    let half_width = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    Ok(Interval { lower: (center - half_width).clamp(0.0, 1.0), upper: (center + half_width).clamp(0.0, 1.0) })
}

/// The exact (binomial) McNemar test on the discordant pairs of a paired comparison.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct McNemar {
    /// `min(b, c)`, as statsmodels reports it for the exact test.
    pub statistic: u64,
    pub p_value: f64,
}

/// Exact McNemar on `b` (pass → fail) and `c` (fail → pass) flips: the two-sided binomial test of
/// `min(b, c)` out of `b + c` at 1/2, `p = min(1, 2 · BinomCDF(min(b, c); b + c, 1/2))`.
/// As statsmodels' `mcnemar(table, exact=True)`: no flips at all gives p = 1.
pub fn mcnemar_exact(b: u64, c: u64) -> McNemar {
    let statistic = b.min(c);
    let flips = b + c;
    let p_value = if flips == 0 {
        1.0
    } else {
        let tail = binomial_cdf(statistic, flips, 0.5).expect("0.5 is a probability");
        (2.0 * tail).min(1.0)
    };
    McNemar { statistic, p_value }
}

/// A bootstrap estimate of a mean difference with its percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct DeltaEstimate {
    /// `mean(candidate − baseline)` over the observed pairs.
    pub delta: f64,
    /// Percentile interval of the resampled deltas at confidence `1 − alpha`.
    pub interval: Interval,
    pub resamples: u32,
}

/// Paired percentile bootstrap of `mean(candidate) − mean(baseline)`.
///
/// Pairs are resampled together (case i of both runs), which keeps the correlation between the runs that
/// an unpaired bootstrap would throw away. The bounds are the `alpha/2` and `1 − alpha/2` percentiles
/// (see [`crate::stats::percentile`]) of `resamples` resampled mean differences. The same seed gives the
/// same interval.
pub fn paired_bootstrap_mean_delta(
    baseline: &[f64],
    candidate: &[f64],
    resamples: u32,
    alpha: f64,
    seed: u64,
) -> Result<DeltaEstimate, StatsError> {
    let differences = paired_differences(baseline, candidate)?;
    if resamples == 0 {
        return Err(StatsError::NoResamples);
    }
    check_alpha(alpha)?;
    let mut rng = seeded_rng(seed);
    let n = differences.len();
    let resampled_means = (0..resamples).map(|_| {
        let total: f64 = (0..n).map(|_| differences[rng.random_range(0..n)]).sum();
        total / n as f64
    });
    let means = Percentiles::new(resampled_means)?;
    let bound = |p: f64| means.percentile(p).expect("non-empty, p within [0, 100]");
    Ok(DeltaEstimate {
        delta: differences.iter().sum::<f64>() / n as f64,
        interval: Interval { lower: bound(50.0 * alpha), upper: bound(100.0 - 50.0 * alpha) },
        resamples,
    })
}

fn paired_differences(baseline: &[f64], candidate: &[f64]) -> Result<Vec<f64>, StatsError> {
    if baseline.len() != candidate.len() {
        return Err(StatsError::UnpairedSamples { left: baseline.len(), right: candidate.len() });
    }
    if baseline.is_empty() {
        return Err(StatsError::EmptySample);
    }
    if baseline.iter().chain(candidate).any(|x| !x.is_finite()) {
        return Err(StatsError::NonFiniteValue);
    }
    Ok(candidate.iter().zip(baseline).map(|(c, b)| c - b).collect())
}

/// The requirement of an N-of-K eval: K samples per case, at least N of which must pass.
/// Built only through [`NOfK::new`], so `1 ≤ N ≤ K` always holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NOfK {
    required: u32,
    samples: u32,
}

impl NOfK {
    /// Requires `1 ≤ required ≤ samples`.
    pub fn new(required: u32, samples: u32) -> Result<Self, StatsError> {
        if required == 0 || required > samples {
            return Err(StatsError::InvalidRequirement { required, samples });
        }
        Ok(NOfK { required, samples })
    }

    pub fn required(&self) -> u32 {
        self.required
    }

    pub fn samples(&self) -> u32 {
        self.samples
    }

    /// The status of a case whose K samples gave `passed` passes and `errors` provider errors
    /// (the rest failed their assertions). See [`CaseStatus`].
    pub fn classify(&self, passed: u32, errors: u32) -> Result<CaseStatus, StatsError> {
        let (n, k) = (self.required, self.samples);
        if u64::from(passed) + u64::from(errors) > u64::from(k) {
            return Err(StatsError::TooManyOutcomes { passed, errors, samples: k });
        }
        let status = if passed == k {
            CaseStatus::Pass
        } else if passed >= n {
            CaseStatus::PassFlaky
        } else if passed + errors >= n {
            CaseStatus::Error
        } else if passed > 0 {
            CaseStatus::FailFlaky
        } else {
            CaseStatus::Fail
        };
        Ok(status)
    }
}

/// How a case fared over its K samples, with c passes, e errors and N required:
/// `pass` (c = K), `pass-flaky` (N ≤ c < K), `error` (c < N ≤ c + e: provider errors leave it
/// undecided), `fail-flaky` (0 < c < N, not error), `fail` (c = 0, not error: rerunning will not help).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CaseStatus {
    Pass,
    PassFlaky,
    Error,
    FailFlaky,
    Fail,
}

impl CaseStatus {
    pub const ALL: [CaseStatus; 5] =
        [CaseStatus::Pass, CaseStatus::PassFlaky, CaseStatus::Error, CaseStatus::FailFlaky, CaseStatus::Fail];

    /// Whether the case met its N-of-K requirement.
    pub fn meets_requirement(self) -> bool {
        matches!(self, CaseStatus::Pass | CaseStatus::PassFlaky)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CaseStatus::Pass => "pass",
            CaseStatus::PassFlaky => "pass-flaky",
            CaseStatus::Error => "error",
            CaseStatus::FailFlaky => "fail-flaky",
            CaseStatus::Fail => "fail",
        }
    }
}

impl fmt::Display for CaseStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(passed: u32, errors: u32, required: u32, samples: u32) -> CaseStatus {
        NOfK::new(required, samples).unwrap().classify(passed, errors).unwrap()
    }

    #[test]
    fn classifies_each_status_of_cli_md() {
        assert_eq!(status(5, 0, 4, 5), CaseStatus::Pass);
        assert_eq!(status(4, 1, 4, 5), CaseStatus::PassFlaky);
        assert_eq!(status(4, 0, 4, 5), CaseStatus::PassFlaky);
        assert_eq!(status(3, 1, 4, 5), CaseStatus::Error);
        assert_eq!(status(0, 5, 4, 5), CaseStatus::Error);
        assert_eq!(status(0, 4, 4, 5), CaseStatus::Error);
        assert_eq!(status(2, 1, 4, 5), CaseStatus::FailFlaky);
        assert_eq!(status(1, 0, 4, 5), CaseStatus::FailFlaky);
        assert_eq!(status(0, 3, 4, 5), CaseStatus::Fail);
        assert_eq!(status(0, 0, 4, 5), CaseStatus::Fail);
        assert_eq!(status(1, 0, 1, 1), CaseStatus::Pass);
        assert_eq!(status(0, 1, 1, 1), CaseStatus::Error);
        assert_eq!(status(0, 0, 1, 1), CaseStatus::Fail);
    }

    #[test]
    fn statuses_serialize_as_kebab_strings() {
        let names: Vec<String> = CaseStatus::ALL.iter().map(|s| serde_json::to_string(s).unwrap()).collect();
        assert_eq!(names, [r#""pass""#, r#""pass-flaky""#, r#""error""#, r#""fail-flaky""#, r#""fail""#]);
        for s in CaseStatus::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{s}\""));
            let back: CaseStatus = serde_json::from_str(&format!("\"{s}\"")).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn only_pass_and_pass_flaky_meet_the_requirement() {
        let met: Vec<_> = CaseStatus::ALL.into_iter().filter(|s| s.meets_requirement()).collect();
        assert_eq!(met, [CaseStatus::Pass, CaseStatus::PassFlaky]);
    }

    #[test]
    fn rejects_impossible_requirements_and_tallies() {
        assert!(NOfK::new(0, 5).is_err());
        assert!(NOfK::new(6, 5).is_err());
        assert!(NOfK::new(4, 5).unwrap().classify(4, 2).is_err());
    }

    #[test]
    fn rejects_k_outside_one_to_n() {
        assert_eq!(pass_at_k(5, 2, 0), Err(StatsError::InvalidK { n: 5, k: 0 }));
        assert_eq!(pass_hat_k(5, 2, 6), Err(StatsError::InvalidK { n: 5, k: 6 }));
        assert!(pass_at_k(5, 6, 1).is_err());
    }

    #[test]
    fn wilson_rejects_bad_input() {
        assert_eq!(wilson_interval(0, 0, 0.05), Err(StatsError::NoTrials));
        assert!(wilson_interval(3, 2, 0.05).is_err());
        assert_eq!(wilson_interval(1, 2, 0.0), Err(StatsError::InvalidAlpha(0.0)));
    }

    #[test]
    fn interval_serializes_as_a_pair() {
        let interval = Interval { lower: 0.25, upper: 0.5 };
        assert_eq!(serde_json::to_string(&interval).unwrap(), "[0.25,0.5]");
    }

    #[test]
    fn bootstrap_is_reproducible_and_brackets_the_delta() {
        let baseline: Vec<f64> = (0..40).map(|i| f64::from(i % 2)).collect();
        let candidate: Vec<f64> = (0..40).map(|i| f64::from(u8::from(i % 4 != 0))).collect();
        let a = paired_bootstrap_mean_delta(&baseline, &candidate, 2000, 0.05, 11).unwrap();
        let b = paired_bootstrap_mean_delta(&baseline, &candidate, 2000, 0.05, 11).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.delta, 0.25);
        assert!(a.interval.contains(a.delta));
        assert!(a.interval.lower > 0.0 && a.interval.upper < 0.5);
    }

    #[test]
    fn bootstrap_of_identical_runs_is_a_point() {
        let run = [1.0, 0.0, 1.0, 1.0];
        let estimate = paired_bootstrap_mean_delta(&run, &run, 100, 0.05, 1).unwrap();
        assert_eq!(estimate.delta, 0.0);
        assert_eq!(estimate.interval, Interval::from([0.0, 0.0]));
    }

    #[test]
    fn bootstrap_rejects_bad_input() {
        assert!(paired_bootstrap_mean_delta(&[1.0], &[1.0, 2.0], 10, 0.05, 0).is_err());
        assert!(paired_bootstrap_mean_delta(&[], &[], 10, 0.05, 0).is_err());
        assert!(paired_bootstrap_mean_delta(&[1.0], &[1.0], 0, 0.05, 0).is_err());
        assert!(paired_bootstrap_mean_delta(&[1.0], &[f64::NAN], 10, 0.05, 0).is_err());
        assert!(paired_bootstrap_mean_delta(&[1.0], &[1.0], 10, 1.5, 0).is_err());
    }
}
