//! Throughput of the trace side of `promptctl scan`: JSONL records streamed through the shingle table
//! and the entity automaton of the generated support repo. Reports bytes/s (divan's BytesCount).
//!
//! Run: `cargo bench --bench scan`; one core: `RAYON_NUM_THREADS=1 cargo bench --bench scan`.

use divan::Bencher;
use divan::counter::BytesCount;
use promptctl::scan::Scanner;
use promptctl::scan::testgen::support_corpus;

fn main() {
    divan::main();
}

const TRACE_BYTES: usize = 32 << 20;

fn scan_all(scanner: &Scanner, traces: &[u8]) -> u64 {
    let mut tally = scanner.tally();
    scanner.scan_reader("bench.jsonl", traces, &mut tally).expect("in-memory reader");
    tally.records
}

/// Requests shaped like the corpus: system prompt and rendered examples (skipped by role and
/// position), then the conversation and output (scanned).
#[divan::bench(sample_count = 5, sample_size = 1)]
fn trace_scan(bencher: Bencher) {
    let corpus = support_corpus();
    let traces = corpus.bench_traces(TRACE_BYTES);
    let scanner = Scanner::new(corpus.inputs.clone()).expect("corpus inputs are valid");
    bencher.counter(BytesCount::new(traces.len())).bench(|| scan_all(&scanner, &traces));
}

/// Requests whose every message is scanned: the worst case for normalization and lookups.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn trace_scan_dense(bencher: Bencher) {
    let corpus = support_corpus();
    let traces = corpus.dense_bench_traces(TRACE_BYTES);
    let scanner = Scanner::new(corpus.inputs.clone()).expect("corpus inputs are valid");
    bencher.counter(BytesCount::new(traces.len())).bench(|| scan_all(&scanner, &traces));
}

/// The prompt side: examples, rules and manifests parsed, shared indexes built.
#[divan::bench(sample_count = 10)]
fn prompt_side(bencher: Bencher) {
    let corpus = support_corpus();
    bencher.bench(|| Scanner::new(corpus.inputs.clone()).expect("valid"));
}
