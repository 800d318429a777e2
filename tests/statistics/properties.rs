//! Properties that must hold for every input, not just the reference rows.

use promptctl::eval::stats::{CaseStatus, NOfK, mcnemar_exact, pass_at_k, pass_hat_k, wilson_interval};
use promptctl::portfolio::allocate::{bucket_ranges, choose_variation};
use promptctl::portfolio::hashing::hash;
use promptctl::stats::percentile::Percentiles;
use proptest::prelude::*;

/// (n, c, k) with 1 ≤ k ≤ n and c ≤ n.
fn sample_counts() -> impl Strategy<Value = (u64, u64, u64)> {
    (1u64..300).prop_flat_map(|n| (Just(n), 0..=n, 1..=n))
}

/// Positive weights scaled to sum to 1, as a portfolio file would give them.
fn weights() -> impl Strategy<Value = Vec<f64>> {
    prop::collection::vec(0.01f64..1.0, 1..8).prop_map(|raw| {
        let total: f64 = raw.iter().sum();
        raw.into_iter().map(|w| w / total).collect()
    })
}

proptest! {
    #[test]
    fn pass_at_k_is_a_probability_increasing_in_c_and_k((n, c, k) in sample_counts()) {
        let p = pass_at_k(n, c, k).unwrap();
        prop_assert!((0.0..=1.0).contains(&p));
        if c < n {
            // The float product may wobble by an ulp where the exact values are equal.
            prop_assert!(pass_at_k(n, c + 1, k).unwrap() >= p - 1e-12);
        }
        if k < n {
            prop_assert!(pass_at_k(n, c, k + 1).unwrap() >= p - 1e-12);
        }
    }

    #[test]
    fn pass_hat_k_is_a_probability_below_pass_at_k((n, c, k) in sample_counts()) {
        let p = pass_hat_k(n, c, k).unwrap();
        prop_assert!((0.0..=1.0).contains(&p));
        prop_assert!(p <= pass_at_k(n, c, k).unwrap() + 1e-12);
        if c < n {
            prop_assert!(pass_hat_k(n, c + 1, k).unwrap() >= p - 1e-12);
        }
        if k < n {
            prop_assert!(pass_hat_k(n, c, k + 1).unwrap() <= p + 1e-12);
        }
    }

    #[test]
    fn wilson_interval_contains_the_observed_rate(
        (trials, successes) in (1u64..100_000).prop_flat_map(|n| (Just(n), 0..=n)),
        alpha in 0.001f64..0.5,
    ) {
        let interval = wilson_interval(successes, trials, alpha).unwrap();
        let rate = successes as f64 / trials as f64;
        prop_assert!(0.0 <= interval.lower && interval.upper <= 1.0);
        prop_assert!(interval.lower <= rate + 1e-12 && rate <= interval.upper + 1e-12);
    }

    #[test]
    fn mcnemar_p_is_a_symmetric_probability(b in 0u64..2000, c in 0u64..2000) {
        let test = mcnemar_exact(b, c);
        prop_assert!((0.0..=1.0).contains(&test.p_value));
        prop_assert_eq!(test, mcnemar_exact(c, b));
    }

    #[test]
    fn case_status_meets_the_requirement_exactly_when_n_pass(
        (samples, required, passed, errors) in (1u32..20)
            .prop_flat_map(|k| (Just(k), 1..=k, 0..=k))
            .prop_flat_map(|(k, n, c)| (Just(k), Just(n), Just(c), 0..=k - c)),
    ) {
        let status = NOfK::new(required, samples).unwrap().classify(passed, errors).unwrap();
        prop_assert_eq!(status.meets_requirement(), passed >= required);
        if status == CaseStatus::Error {
            prop_assert!(passed < required && required <= passed + errors);
        }
    }

    #[test]
    fn bucket_ranges_cover_coverage_without_overlap(
        weights in weights(),
        coverage in 0.0f64..=1.0,
    ) {
        let ranges = bucket_ranges(weights.len(), coverage, Some(&weights));
        prop_assert_eq!(ranges.len(), weights.len());
        let covered: f64 = ranges.iter().map(|r| r.width()).sum();
        prop_assert!((covered - coverage).abs() <= 1e-12, "covered {} of {}", covered, coverage);
        prop_assert!(ranges.iter().all(|r| r.start <= r.end));
        for pair in ranges.windows(2) {
            prop_assert!(pair[0].end <= pair[1].start);
        }
        prop_assert!(ranges.last().unwrap().end <= 1.0 + 1e-12);
    }

    #[test]
    fn hash_is_in_the_unit_interval(seed in ".*", value in ".*", version in 1u32..=2) {
        let n = hash(&seed, &value, version).unwrap();
        prop_assert!((0.0..1.0).contains(&n));
    }

    #[test]
    fn chosen_range_contains_the_bucket(
        weights in weights(),
        coverage in 0.0f64..=1.0,
        seed in "[a-z-]{0,12}",
        unit in "\\PC{0,24}",
    ) {
        let ranges = bucket_ranges(weights.len(), coverage, Some(&weights));
        let bucket = hash(&seed, &unit, 2).unwrap();
        match choose_variation(bucket, &ranges) {
            Some(i) => prop_assert!(ranges[i].contains(bucket)),
            None => prop_assert!(ranges.iter().all(|r| !r.contains(bucket))),
        }
    }

    #[test]
    fn percentiles_rise_with_p_within_the_sample(
        values in prop::collection::vec(-1e6f64..1e6, 1..50),
        p in 0.0f64..=100.0,
        q in 0.0f64..=100.0,
    ) {
        let sample = Percentiles::new(values).unwrap();
        let (low, high) = (p.min(q), p.max(q));
        let (at_low, at_high) = (sample.percentile(low).unwrap(), sample.percentile(high).unwrap());
        prop_assert!(at_low <= at_high);
        prop_assert!(sample.min().unwrap() <= at_low && at_high <= sample.max().unwrap());
    }
}

proptest! {
    #[test]
    fn beta_quantile_inverts_the_cdf(a in 0.2f64..50.0, b in 0.2f64..50.0, q in 0.001f64..0.999) {
        use promptctl::stats::distributions::{beta_cdf, beta_quantile};
        let x = beta_quantile(a, b, q).unwrap();
        prop_assert!((0.0..=1.0).contains(&x));
        prop_assert!((beta_cdf(a, b, x).unwrap() - q).abs() < 1e-9);
    }
}
