//! A model's TTFT baseline: the p95 of the TTFTs it served in a trailing time window.
//!
//! Computing an exact percentile per request over a sliding window costs a sort per request; over 100k
//! requests that is too slow. TTFTs go instead into log-spaced buckets 1 % wide held in a Fenwick tree:
//! adding, removing and finding the p95 each take O(log buckets). The answer is the upper edge of the
//! bucket holding the p95, so it is at most 1 % above the exact value — erring towards fewer
//! regressions, never more.

/// Bucket width: each bucket's upper edge is 1 % above its lower edge.
const GROWTH: f64 = 1.01;
/// Ten minutes in ms: no TTFT worth a baseline is longer; longer ones share the last bucket.
const MAX_MS: f64 = 600_000.0;

fn bucket_count() -> usize {
    (MAX_MS.ln() / GROWTH.ln()).ceil() as usize + 2
}

/// The bucket of a TTFT: 0 for under 1 ms, then log-spaced.
fn bucket(ms: u32) -> usize {
    if ms < 1 {
        return 0;
    }
    let b = 1 + ((ms as f64).ln() / GROWTH.ln()).floor() as usize;
    b.min(bucket_count() - 1)
}

/// The upper edge of a bucket, in ms.
fn upper_edge(b: usize) -> f64 {
    if b == 0 { 1.0 } else { GROWTH.powi(b as i32) }
}

/// Counts per bucket with prefix sums in O(log n) (a Fenwick tree).
#[derive(Debug, Clone)]
pub struct TrailingHistogram {
    tree: Vec<u32>,
    total: u32,
}

impl Default for TrailingHistogram {
    fn default() -> Self {
        TrailingHistogram { tree: vec![0; bucket_count() + 1], total: 0 }
    }
}

impl TrailingHistogram {
    pub fn add(&mut self, ms: u32) {
        self.update(bucket(ms), 1);
        self.total += 1;
    }

    pub fn remove(&mut self, ms: u32) {
        self.update(bucket(ms), -1);
        self.total -= 1;
    }

    pub fn len(&self) -> u32 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    fn update(&mut self, b: usize, delta: i32) {
        let mut i = b + 1;
        while i < self.tree.len() {
            self.tree[i] = (self.tree[i] as i32 + delta) as u32;
            i += i & i.wrapping_neg();
        }
    }

    /// The upper edge of the bucket holding the `q` quantile (nearest rank), `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u32).clamp(1, self.total);
        // Descend the tree for the smallest bucket whose prefix count reaches `rank`.
        let mut position = 0;
        let mut remaining = rank;
        let mut step = (self.tree.len() - 1).next_power_of_two();
        while step > 0 {
            let next = position + step;
            if next < self.tree.len() && self.tree[next] < remaining {
                position = next;
                remaining -= self.tree[next];
            }
            step /= 2;
        }
        Some(upper_edge(position))
    }
}

/// For each request of one model, in time order, the p95 TTFT of the same model's requests that started
/// in the `window_ms` before it; `None` while fewer than `min_samples` are in the window.
pub fn trailing_p95(requests: &[(i64, u32)], window_ms: i64, min_samples: usize) -> Vec<Option<f64>> {
    let mut hist = TrailingHistogram::default();
    let mut out = Vec::with_capacity(requests.len());
    let (mut added, mut removed) = (0, 0);
    for &(ts, _) in requests {
        while added < requests.len() && requests[added].0 < ts {
            hist.add(requests[added].1);
            added += 1;
        }
        while removed < added && requests[removed].0 < ts - window_ms {
            hist.remove(requests[removed].1);
            removed += 1;
        }
        let enough = hist.len() as usize >= min_samples;
        out.push(if enough { hist.quantile(0.95) } else { None });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p95_is_within_one_percent_above_the_exact_value() {
        let mut h = TrailingHistogram::default();
        for ms in 1..=1000 {
            h.add(ms);
        }
        // Nearest-rank p95 of 1..=1000 is 950.
        let p95 = h.quantile(0.95).unwrap();
        assert!((950.0..=950.0 * 1.0101).contains(&p95), "{p95}");
        for ms in 501..=1000 {
            h.remove(ms);
        }
        let p95 = h.quantile(0.95).unwrap();
        assert!((475.0..=475.0 * 1.0101).contains(&p95), "{p95}");
        assert_eq!(TrailingHistogram::default().quantile(0.95), None);
    }

    #[test]
    fn the_window_trails_and_excludes_the_request_itself() {
        // Ten requests a minute apart; the fifth is slow. A 3-minute window.
        let requests: Vec<(i64, u32)> = (0..10).map(|i| (i * 60_000, if i == 4 { 5_000 } else { 400 })).collect();
        let p95 = trailing_p95(&requests, 180_000, 2);
        assert_eq!(p95[0], None);
        assert_eq!(p95[1], None);
        assert!(p95[4].unwrap() < 410.0, "the slow request is not in its own baseline");
        assert!(p95[5].unwrap() > 4_900.0, "the slow request is in the next one's baseline");
        assert!(p95[8].unwrap() < 410.0, "and leaves the window after three minutes");
    }
}
