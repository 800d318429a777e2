//! Percentiles of a sample (latency p50/p95/p99 and the like).
//!
//! Definition: linear interpolation between closest ranks, the default of numpy (`np.percentile`),
//! pandas and R (`type = 7`), so a user who checks a report against a notebook gets the same number.
//! With sorted values `x[0..n]`, the p-th percentile is at fractional index `h = (n − 1) · p / 100`:
//! `x[⌊h⌋] + (h − ⌊h⌋) · (x[⌊h⌋ + 1] − x[⌊h⌋])`. p0 is the minimum, p100 the maximum, and a single value
//! is every percentile of itself. Unlike nearest-rank, the result need not be an observed value
//! (the p50 of `[800, 900]` is 850).

use super::StatsError;

/// A sample sorted once, so that several percentiles can be read from it cheaply.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Percentiles {
    sorted: Vec<f64>,
}

impl Percentiles {
    /// Rejects NaN and infinities, which would make every percentile above them meaningless.
    pub fn new(values: impl IntoIterator<Item = f64>) -> Result<Self, StatsError> {
        let values: Vec<f64> = values.into_iter().collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(StatsError::NonFiniteValue);
        }
        Ok(Self::from_finite(values))
    }

    /// For integer measurements such as milliseconds, which are always finite.
    pub fn from_integers(values: impl IntoIterator<Item = u64>) -> Self {
        Self::from_finite(values.into_iter().map(|v| v as f64).collect())
    }

    fn from_finite(mut sorted: Vec<f64>) -> Self {
        // Values equal under `total_cmp` are the same bits: an unstable sort gives the same order, faster.
        sorted.sort_unstable_by(f64::total_cmp);
        Percentiles { sorted }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sorted.is_empty()
    }

    /// The p-th percentile, `p` in `[0, 100]`. `None` for an empty sample or a `p` outside that range.
    pub fn percentile(&self, p: f64) -> Option<f64> {
        if self.sorted.is_empty() || !(0.0..=100.0).contains(&p) {
            return None;
        }
        let rank = (self.sorted.len() - 1) as f64 * (p / 100.0);
        let below = rank.floor() as usize;
        let lower = self.sorted[below];
        let Some(&upper) = self.sorted.get(below + 1) else {
            return Some(lower);
        };
        Some(lerp(lower, upper, rank - below as f64))
    }

    pub fn median(&self) -> Option<f64> {
        self.percentile(50.0)
    }

    pub fn min(&self) -> Option<f64> {
        self.sorted.first().copied()
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted.last().copied()
    }
}

/// Interpolates from the nearer end, as numpy's `_lerp` does, so that results match it to the last bit
/// and never leave `[a, b]`.
fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let span = b - a;
    if t >= 0.5 { b - span * (1.0 - t) } else { a + span * t }
}

/// The p-th percentile of `values` (see the module documentation); sorts a copy.
pub fn percentile(values: &[f64], p: f64) -> Result<Option<f64>, StatsError> {
    Ok(Percentiles::new(values.iter().copied())?.percentile(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: &[f64]) -> Percentiles {
        Percentiles::new(values.iter().copied()).unwrap()
    }

    #[test]
    fn interpolates_linearly_like_numpy() {
        // np.percentile([1, 2, 3, 4, 10], [0, 25, 50, 90, 95, 100])
        let s = sample(&[10.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(s.percentile(0.0), Some(1.0));
        assert_eq!(s.percentile(25.0), Some(2.0));
        assert_eq!(s.percentile(50.0), Some(3.0));
        assert!((s.percentile(90.0).unwrap() - 7.6).abs() < 1e-12);
        assert!((s.percentile(95.0).unwrap() - 8.8).abs() < 1e-12);
        assert_eq!(s.percentile(100.0), Some(10.0));
    }

    #[test]
    fn median_of_two_is_their_mean() {
        assert_eq!(sample(&[800.0, 900.0]).median(), Some(850.0));
    }

    #[test]
    fn single_value_is_every_percentile() {
        let s = Percentiles::from_integers([42]);
        assert_eq!(s.percentile(0.0), Some(42.0));
        assert_eq!(s.percentile(99.0), Some(42.0));
    }

    #[test]
    fn empty_sample_and_bad_p_give_none() {
        assert_eq!(Percentiles::default().percentile(50.0), None);
        assert_eq!(sample(&[1.0]).percentile(101.0), None);
        assert_eq!(sample(&[1.0]).percentile(f64::NAN), None);
    }

    #[test]
    fn rejects_nan() {
        assert_eq!(Percentiles::new([1.0, f64::NAN]), Err(StatsError::NonFiniteValue));
        assert_eq!(percentile(&[1.0, 3.0], 50.0), Ok(Some(2.0)));
    }
}
