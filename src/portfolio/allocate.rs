//! GrowthBook-compatible allocation of buckets to variants.
//!
//! Weights become half-open ranges of `[0, 1)` as the GrowthBook SDKs build them, float arithmetic
//! included: range boundaries are running f64 sums of the weights, so with weights `[0.1, 0.2, 0.3, 0.4]`
//! the second range ends at `0.30000000000000004` and a bucket of exactly 0.3 belongs to the second
//! variant. Decimal or basis-point arithmetic would be "more exact" and disagree with every SDK.

use serde::{Deserialize, Serialize};

use super::hashing::{HashVersion, bucket, bucket_v1};

/// The share of `[0, 1)` that one variant receives: `start <= bucket < end`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(from = "[f64; 2]", into = "[f64; 2]")]
pub struct BucketRange {
    pub start: f64,
    pub end: f64,
}

impl BucketRange {
    /// Half-open, so an empty range `[x, x)` contains nothing.
    pub fn contains(&self, bucket: f64) -> bool {
        self.start <= bucket && bucket < self.end
    }

    pub fn width(&self) -> f64 {
        self.end - self.start
    }
}

impl From<[f64; 2]> for BucketRange {
    fn from([start, end]: [f64; 2]) -> Self {
        BucketRange { start, end }
    }
}

impl From<BucketRange> for [f64; 2] {
    fn from(range: BucketRange) -> Self {
        [range.start, range.end]
    }
}

/// GrowthBook's `getEqualWeights(n)`: n copies of `1/n` (empty for 0).
pub fn equal_weights(num_variations: usize) -> Vec<f64> {
    vec![1.0 / num_variations as f64; num_variations]
}

/// GrowthBook's `getBucketRanges(numVariations, coverage, weights)`.
///
/// `coverage` (the share of units enrolled at all) is clamped to `[0, 1]`. The weights fall back to equal
/// weights when absent, when their count is not `num_variations`, or when they sum outside
/// `[0.99, 1.01]`; they are not renormalized. Range i is `[cumᵢ, cumᵢ + coverage · wᵢ)`, where `cumᵢ` is
/// the running sum of the earlier weights, so reduced coverage leaves a gap after each range rather
/// than shrinking the whole split to one end, and a variant keeps its units when coverage grows.
pub fn bucket_ranges(num_variations: usize, coverage: f64, weights: Option<&[f64]>) -> Vec<BucketRange> {
    let coverage = clamp_coverage(coverage);
    let weights = match weights {
        Some(w) if weights_are_usable(w, num_variations) => w.to_vec(),
        _ => equal_weights(num_variations),
    };
    let mut cumulative = 0.0;
    weights
        .iter()
        .map(|&weight| {
            let start = cumulative;
            cumulative += weight;
            BucketRange { start, end: start + coverage * weight }
        })
        .collect()
}

/// The SDK warns and clamps rather than rejecting; NaN passes through as it does in JavaScript
/// (and then matches no bucket), which `f64::clamp` also does.
fn clamp_coverage(coverage: f64) -> f64 {
    coverage.clamp(0.0, 1.0)
}

fn weights_are_usable(weights: &[f64], num_variations: usize) -> bool {
    // Summed from 0 in order, like the SDK's `reduce`, so a borderline total is judged the same way.
    // The SDK rejects only `total < 0.99 || total > 1.01`, which a NaN total passes.
    let total: f64 = weights.iter().fold(0.0, |sum, w| sum + w);
    weights.len() == num_variations && (total.is_nan() || (0.99..=1.01).contains(&total))
}

/// GrowthBook's `chooseVariation(n, ranges)`: the first range containing `bucket`, or `None` (the SDK's
/// -1) when the unit falls outside coverage.
pub fn choose_variation(bucket: f64, ranges: &[BucketRange]) -> Option<usize> {
    ranges.iter().position(|range| range.contains(bucket))
}

/// A GrowthBook namespace: experiments in the same namespace with disjoint ranges never share a unit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Namespace {
    pub id: String,
    pub start: f64,
    pub end: f64,
}

/// GrowthBook's `inNamespace(hashValue, namespace)`: whether the unit's v1 hash under the seed
/// `"__" ‖ namespace id` falls in `[start, end)`.
pub fn in_namespace(unit_id: &str, namespace: &Namespace) -> bool {
    let n = bucket_v1(&[unit_id, "__", &namespace.id]);
    namespace.start <= n && n < namespace.end
}

/// Where a unit landed: its bucket, and the variant whose range holds it (if any).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assignment {
    pub bucket: f64,
    pub variation: Option<usize>,
}

/// Hashes `unit_id` under `seed` and picks its variant from `ranges`, as a GrowthBook SDK would.
pub fn assign(seed: &str, unit_id: &str, version: HashVersion, ranges: &[BucketRange]) -> Assignment {
    let hashed = bucket(seed, unit_id, version);
    Assignment { bucket: hashed, variation: choose_variation(hashed, ranges) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reduced_coverage_leaves_a_gap_after_each_range() {
        let ranges = bucket_ranges(2, 0.5, None);
        assert_eq!(ranges, [BucketRange::from([0.0, 0.25]), BucketRange::from([0.5, 0.75])]);
        assert_eq!(choose_variation(0.3, &ranges), None);
    }

    #[test]
    fn nan_coverage_enrolls_nobody() {
        let ranges = bucket_ranges(2, f64::NAN, None);
        assert!((0..10).all(|i| choose_variation(f64::from(i) / 10.0, &ranges).is_none()));
    }

    #[test]
    fn assign_agrees_with_hash_and_choose() {
        let ranges = bucket_ranges(3, 1.0, Some(&[0.2, 0.3, 0.5]));
        let assignment = assign("seed", "user-1", HashVersion::V2, &ranges);
        let bucket = crate::portfolio::hashing::hash("seed", "user-1", 2).unwrap();
        assert_eq!(assignment.bucket, bucket);
        assert_eq!(assignment.variation, choose_variation(bucket, &ranges));
        assert!(assignment.variation.is_some());
    }

    #[test]
    fn range_serializes_as_a_pair() {
        let range = BucketRange::from([0.25, 0.5]);
        assert_eq!(serde_json::to_string(&range).unwrap(), "[0.25,0.5]");
    }
}
