//! Analysis over many stored requests (budgets, DESIGN.md and issue 6: cost report over 1M rows < 2 s,
//! trace tails over 100k streamed requests with 50 checkpoints each < 3 s).
//!
//! Run with `cargo bench --bench cost`. Setup imports generated traffic into a temporary state file
//! (slow, once); each sample then reads it back and analyzes it, as the commands do.

use divan::Bencher;
use promptctl::cost::{GroupBy, call_parts, price_calls, report};
use promptctl::pricing::PriceBook;
use promptctl::store::{NewRequest, OpenMode, RequestKey, RequestSource, Store};
use promptctl::trace::generate::{GenerateConfig, generate};
use promptctl::trace::import::normalize::key_digest;
use promptctl::trace::records::RequestFilter;
use promptctl::trace::tails::{CALL_PARTS, Thresholds, analyze};

fn main() {
    divan::main();
}

/// A state file holding the generated requests of `config`.
fn state(config: &GenerateConfig) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut store = Store::open(&dir.path().join("state.db"), OpenMode::CreateIfMissing, false).expect("state");
    let mut batch = Vec::with_capacity(10_000);
    let flush = |batch: &mut Vec<(String, promptctl::trace::model::RequestRow)>, store: &mut Store| {
        let new: Vec<NewRequest<'_>> = batch
            .iter()
            .map(|(key, row)| NewRequest {
                source: RequestSource::Import,
                key: RequestKey::Import(key_digest(key)),
                content_hash: None,
                row,
            })
            .collect();
        store.insert_requests(&new).expect("inserted");
        batch.clear();
    };
    for (i, g) in generate(config).enumerate() {
        batch.push((format!("bench:{i}"), g.row));
        if batch.len() == 10_000 {
            flush(&mut batch, &mut store);
        }
    }
    flush(&mut batch, &mut store);
    (dir, store)
}

/// About 1,000,000 requests, usage only.
fn million() -> GenerateConfig {
    GenerateConfig {
        conversations: 196_000,
        messages: false,
        checkpoints: false,
        span_ms: 30 * 86_400_000,
        ..GenerateConfig::default()
    }
}

/// About 100,000 streamed requests with ~60 checkpoints and their texts each (plus the unstreamed calls
/// of the same conversations).
fn streamed() -> GenerateConfig {
    GenerateConfig { conversations: 26_000, messages: false, ..GenerateConfig::default() }
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn cost_report_1m(bencher: Bencher) {
    let (_dir, store) = state(&million());
    let book = PriceBook::embedded();
    bencher.bench_local(|| {
        let calls = store.calls(&RequestFilter::default(), call_parts(GroupBy::Model)).expect("read");
        let pricing = price_calls(&calls, book);
        report(&calls, &pricing, GroupBy::Model, 10).total
    });
}

#[divan::bench(sample_count = 3, sample_size = 1)]
fn trace_tails_100k_streams(bencher: Bencher) {
    let (_dir, store) = state(&streamed());
    bencher.bench_local(|| {
        let calls = store.calls(&RequestFilter::default(), CALL_PARTS).expect("read");
        analyze(&calls, &Thresholds::default(), 3, |ids, visit| store.for_each_stream(ids, visit))
            .expect("analyzed")
            .streams
    });
}
