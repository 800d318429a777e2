//! Seeded randomness and random variates for bootstraps and Thompson sampling.
//!
//! Everything random in promptctl takes an explicit seed, so that a report or a rebalance can be
//! reproduced from its inputs. The generator is a named algorithm (xoshiro256++) rather than `StdRng`,
//! whose algorithm rand may change between releases. The values drawn from it are stable for a given
//! rand/rand_distr release; a major upgrade of either may change them.

use rand::SeedableRng;
use rand::distr::Distribution;
use rand::{Rng, rngs::Xoshiro256PlusPlus};

use super::StatsError;
use super::distributions::check_positive;

/// The generator behind every seeded computation.
pub type SeededRng = Xoshiro256PlusPlus;

pub fn seeded_rng(seed: u64) -> SeededRng {
    SeededRng::seed_from_u64(seed)
}

/// Draws from Beta(a, b): the posterior of a success rate after a − 1 successes and b − 1 failures
/// under a uniform prior.
#[derive(Debug, Clone, Copy)]
pub struct BetaSampler(rand_distr::Beta<f64>);

impl BetaSampler {
    pub fn new(a: f64, b: f64) -> Result<Self, StatsError> {
        check_positive("a", a)?;
        check_positive("b", b)?;
        rand_distr::Beta::new(a, b)
            .map(BetaSampler)
            .map_err(|_| StatsError::InvalidParameter { name: "beta shape", value: a.min(b) })
    }
}

impl Distribution<f64> for BetaSampler {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.0.sample(rng)
    }
}

/// Draws from Normal(mean, sd).
#[derive(Debug, Clone, Copy)]
pub struct NormalSampler(rand_distr::Normal<f64>);

impl NormalSampler {
    pub fn new(mean: f64, sd: f64) -> Result<Self, StatsError> {
        if !mean.is_finite() {
            return Err(StatsError::InvalidParameter { name: "mean", value: mean });
        }
        check_positive("sd", sd)?;
        rand_distr::Normal::new(mean, sd)
            .map(NormalSampler)
            .map_err(|_| StatsError::InvalidParameter { name: "sd", value: sd })
    }
}

impl Distribution<f64> for NormalSampler {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.0.sample(rng)
    }
}

/// Draws from Gamma(shape, scale) (mean shape × scale), e.g. for a posterior precision.
#[derive(Debug, Clone, Copy)]
pub struct GammaSampler(rand_distr::Gamma<f64>);

impl GammaSampler {
    pub fn new(shape: f64, scale: f64) -> Result<Self, StatsError> {
        check_positive("shape", shape)?;
        check_positive("scale", scale)?;
        rand_distr::Gamma::new(shape, scale)
            .map(GammaSampler)
            .map_err(|_| StatsError::InvalidParameter { name: "shape", value: shape })
    }
}

impl Distribution<f64> for GammaSampler {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.0.sample(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mean_of(distribution: impl Distribution<f64>, draws: usize) -> f64 {
        let mut rng = seeded_rng(7);
        (0..draws).map(|_| distribution.sample(&mut rng)).sum::<f64>() / draws as f64
    }

    #[test]
    fn same_seed_same_draws() {
        let beta = BetaSampler::new(3.0, 5.0).unwrap();
        let draw = |seed| {
            let mut rng = seeded_rng(seed);
            [beta.sample(&mut rng), beta.sample(&mut rng)]
        };
        assert_eq!(draw(1), draw(1));
        assert_ne!(draw(1), draw(2));
    }

    #[test]
    fn sample_means_are_near_the_distribution_means() {
        // 20k draws: the standard error of each mean is below 0.01, so 0.05 is a wide margin.
        assert!((mean_of(BetaSampler::new(2.0, 6.0).unwrap(), 20_000) - 0.25).abs() < 0.05);
        assert!((mean_of(NormalSampler::new(3.0, 0.5).unwrap(), 20_000) - 3.0).abs() < 0.05);
        assert!((mean_of(GammaSampler::new(2.0, 1.5).unwrap(), 20_000) - 3.0).abs() < 0.05);
    }

    #[test]
    fn rejects_non_positive_parameters() {
        assert!(BetaSampler::new(0.0, 1.0).is_err());
        assert!(BetaSampler::new(1.0, f64::NAN).is_err());
        assert!(NormalSampler::new(0.0, 0.0).is_err());
        assert!(NormalSampler::new(f64::INFINITY, 1.0).is_err());
        assert!(GammaSampler::new(-1.0, 1.0).is_err());
    }
}
