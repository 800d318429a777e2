//! Throughput of `promptctl scan` (budgets: DESIGN.md; figures: docs/performance.md).
//!
//! In process: JSONL records streamed through the shingle table and the entity automaton, of the small
//! support corpus (`trace_scan*`) and of the budget's 1,000-example store (`store_*`); the prompt side
//! of both and of a 10 MB prompt repo. Through the release binary: `promptctl scan` on the store with a
//! generated trace file, and on the 10 MB prompt repo without traces. Bytes/s via divan's BytesCount.
//!
//! Run: `cargo bench --bench scan`; one core: `RAYON_NUM_THREADS=1 cargo bench --bench scan`.
//!
//! Files for measuring by hand at sizes a bench should not hold (the budget's 1 GB):
//! `PROMPTCTL_SCAN_GENERATE=DIR PROMPTCTL_SCAN_TRACE_MB=256,512,1024 target/release/deps/scan-…` writes
//! `DIR/store/` (the repo, `promptctl.toml` at its root), `DIR/traces-<N>mb.jsonl` for each size
//! (streamed to disk, never held in memory), `DIR/prompt-repo/` (10 MB) and exits. Add
//! `PROMPTCTL_SCAN_MIX=dense` for traces whose every message is scanned (`traces-<N>mb-dense.jsonl`).

use std::io::BufWriter;
use std::path::Path;
use std::process::{Command, Stdio};

use divan::Bencher;
use divan::counter::BytesCount;
use promptctl::scan::Scanner;
use promptctl::scan::testgen::{FewShotStore, StoreShape, TraceMix, prompt_repo, support_corpus};

const BIN: &str = env!("CARGO_BIN_EXE_promptctl");
const GENERATE: &str = "PROMPTCTL_SCAN_GENERATE";

fn main() {
    if let Ok(dir) = std::env::var(GENERATE) {
        generate(Path::new(&dir));
        return;
    }
    divan::main();
}

const TRACE_BYTES: usize = 32 << 20;
/// Trace file of the through-the-binary bench.
const BINARY_TRACE_BYTES: u64 = 128 << 20;
const PROMPT_REPO_BYTES: usize = 10_000_000;
const STORE_SEED: u64 = 2026;
const TRACE_SEED: u64 = 11;

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
    bencher.bench(|| with_indexes(Scanner::new(corpus.inputs.clone()).expect("valid")));
}

/// The scanner with its overlap indexes built (they are built on first use, by the first trace source).
fn with_indexes(scanner: Scanner) -> Scanner {
    divan::black_box(scanner.index_stats());
    scanner
}

fn store_traces(store: &FewShotStore, mix: TraceMix) -> Vec<u8> {
    let mut traces = Vec::with_capacity(TRACE_BYTES + (64 << 10));
    store.write_traces(&mut traces, TRACE_BYTES as u64, TRACE_SEED, mix).expect("in-memory writer");
    traces
}

/// The budget's store (1,000 examples, 120 tenants), production-shaped requests.
#[divan::bench(args = [TraceMix::Production, TraceMix::Dense], sample_count = 5, sample_size = 1)]
fn store_trace_scan(bencher: Bencher, mix: TraceMix) {
    let store = FewShotStore::generate(STORE_SEED, StoreShape::budget());
    let traces = store_traces(&store, mix);
    let scanner = Scanner::new(store.inputs()).expect("generated inputs are valid");
    bencher.counter(BytesCount::new(traces.len())).bench(|| scan_all(&scanner, &traces));
}

/// The prompt side of the budget's store, overlap indexes included.
#[divan::bench(sample_count = 10)]
fn store_prompt_side(bencher: Bencher) {
    let inputs = FewShotStore::generate(STORE_SEED, StoreShape::budget()).inputs();
    bencher.bench(|| with_indexes(Scanner::new(inputs.clone()).expect("valid")));
}

/// The prompt side of a 10 MB prompt repo as `promptctl scan` without traces does it: secrets, PII,
/// provenance (the overlap indexes are not built).
#[divan::bench(sample_count = 5, sample_size = 1)]
fn prompt_repo_side(bencher: Bencher) {
    let inputs = prompt_repo(STORE_SEED, PROMPT_REPO_BYTES).inputs();
    bencher.counter(BytesCount::new(input_bytes(&inputs))).bench(|| Scanner::new(inputs.clone()).expect("valid"));
}

/// The same with the overlap indexes built, as a scan with traces does.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn prompt_repo_side_with_indexes(bencher: Bencher) {
    let inputs = prompt_repo(STORE_SEED, PROMPT_REPO_BYTES).inputs();
    bencher
        .counter(BytesCount::new(input_bytes(&inputs)))
        .bench(|| with_indexes(Scanner::new(inputs.clone()).expect("valid")));
}

fn input_bytes(inputs: &promptctl::scan::ScanInputs) -> usize {
    inputs.prompts.iter().map(|p| p.text.len() + p.examples.as_ref().map_or(0, |e| e.text.len())).sum()
}

/// Runs `promptctl scan . [--traces FILE]` in `repo` as a process, JSON report to /dev/null.
fn run_scan(repo: &Path, state: &Path, traces: Option<&Path>) {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(repo).args(["scan", ".", "--format", "json", "--state"]).arg(state);
    if let Some(t) = traces {
        cmd.arg("--traces").arg(t);
    }
    let status = cmd.stdout(Stdio::null()).status().expect("promptctl runs");
    // 1: findings at or above fail_on, which the generated repo has on purpose.
    assert!(matches!(status.code(), Some(0 | 1)), "promptctl scan failed: {status}");
}

/// End to end through the release binary: the store and a 128 MiB trace file on disk.
#[divan::bench(sample_count = 3, sample_size = 1)]
fn binary_store_traces(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = FewShotStore::generate(STORE_SEED, StoreShape::budget());
    store.write_repo(&dir.path().join("store")).expect("repo written");
    let traces = dir.path().join("traces.jsonl");
    let file = BufWriter::new(std::fs::File::create(&traces).expect("trace file"));
    let stats = store.write_traces(file, BINARY_TRACE_BYTES, TRACE_SEED, TraceMix::Production).expect("written");
    let state = dir.path().join("state.db");
    run_scan(&dir.path().join("store"), &state, Some(&traces));
    bencher.counter(BytesCount::new(stats.bytes)).bench(|| run_scan(&dir.path().join("store"), &state, Some(&traces)));
}

/// End to end through the release binary: a 10 MB prompt repo, no traces.
#[divan::bench(sample_count = 5, sample_size = 1)]
fn binary_prompt_repo(bencher: Bencher) {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = prompt_repo(STORE_SEED, PROMPT_REPO_BYTES).write_repo(&dir.path().join("repo")).expect("written");
    let state = dir.path().join("state.db");
    run_scan(&dir.path().join("repo"), &state, None);
    bencher.counter(BytesCount::new(bytes)).bench(|| run_scan(&dir.path().join("repo"), &state, None));
}

/// The files for measuring by hand (see the top of this file).
fn generate(dir: &Path) {
    let sizes = std::env::var("PROMPTCTL_SCAN_TRACE_MB").unwrap_or_else(|_| "256".to_string());
    let dense = std::env::var("PROMPTCTL_SCAN_MIX").is_ok_and(|m| m == "dense");
    let store = FewShotStore::generate(STORE_SEED, StoreShape::budget());
    let repo_bytes = store.write_repo(&dir.join("store")).expect("store written");
    println!("{}/store: {} examples, {repo_bytes} bytes", dir.display(), store.example_count());
    for mb in sizes.split(',').filter_map(|s| s.trim().parse::<u64>().ok()) {
        let name = if dense { format!("traces-{mb}mb-dense.jsonl") } else { format!("traces-{mb}mb.jsonl") };
        let path = dir.join(name);
        let file = BufWriter::with_capacity(1 << 20, std::fs::File::create(&path).expect("trace file"));
        let mix = if dense { TraceMix::Dense } else { TraceMix::Production };
        let stats = store.write_traces(file, mb << 20, TRACE_SEED, mix).expect("traces written");
        println!("{}: {} records, {} bytes", path.display(), stats.records, stats.bytes);
    }
    let repo = prompt_repo(STORE_SEED, PROMPT_REPO_BYTES);
    let bytes = repo.write_repo(&dir.join("prompt-repo")).expect("prompt repo written");
    println!("{}/prompt-repo: {} examples, {bytes} bytes", dir.display(), repo.example_count());
}
