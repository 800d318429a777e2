//! GrowthBook hashing and assignment throughput (budget: ≥ 5M assignments/s, DESIGN.md).
//!
//! Run with `cargo bench --bench hashing`. Each iteration hashes a batch of distinct unit ids, so the
//! reported item throughput is hashes per second.

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use promptctl::portfolio::allocate::{assign, bucket_ranges};
use promptctl::portfolio::hashing::{HashVersion, bucket};

fn main() {
    divan::main();
}

const SEED: &str = "checkout-v2";
const UNITS: usize = 10_000;

/// Seed plus id is 21 bytes, the size of a typical experiment key and user id.
fn unit_ids() -> Vec<String> {
    (0..UNITS).map(|i| format!("u-{i:08}")).collect()
}

#[divan::bench(args = [HashVersion::V1, HashVersion::V2])]
fn hash_ascii(bencher: Bencher, version: HashVersion) {
    let ids = unit_ids();
    bencher
        .counter(ItemsCount::new(ids.len()))
        .bench(|| ids.iter().map(|id| bucket(black_box(SEED), black_box(id), version)).sum::<f64>());
}

#[divan::bench]
fn hash_non_ascii(bencher: Bencher) {
    let ids: Vec<String> = (0..UNITS).map(|i| format!("ü-{i:06}😀")).collect();
    bencher
        .counter(ItemsCount::new(ids.len()))
        .bench(|| ids.iter().map(|id| bucket(black_box(SEED), black_box(id), HashVersion::V2)).sum::<f64>());
}

#[divan::bench]
fn assign_three_variants(bencher: Bencher) {
    let ids = unit_ids();
    let ranges = bucket_ranges(3, 1.0, Some(&[0.5, 0.3, 0.2]));
    bencher.counter(ItemsCount::new(ids.len())).bench(|| {
        ids.iter().filter_map(|id| assign(black_box(SEED), id, HashVersion::V2, &ranges).variation).sum::<usize>()
    });
}
