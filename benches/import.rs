//! Trace import throughput (budget: ≥ 200,000 request rows/s into the state file, memory flat; DESIGN.md).
//!
//! Run with `cargo bench --bench import`. Rows come from the deterministic generator (`trace generate`),
//! held in memory so that the disk is not measured. The whole command, including the state file on disk
//! and peak memory on a 2 GB export, is measured by the script in docs/performance.md.

use std::io::Read;

use divan::counter::ItemsCount;
use divan::{Bencher, black_box};
use promptctl::store::{NewRequest, OpenMode, RequestKey, RequestSource, Store};
use promptctl::trace::generate::{ExportFormat, GenerateConfig, GeneratedExport, generate};
use promptctl::trace::import::{self, ImportOptions, ImportedRow, Record};

fn main() {
    divan::main();
}

/// About 10,000 requests.
const CONVERSATIONS: usize = 2_000;

/// Usage rows as most exports carry them: no message texts, no stream checkpoints.
fn usage_only() -> GenerateConfig {
    GenerateConfig { conversations: CONVERSATIONS, messages: false, checkpoints: false, ..GenerateConfig::default() }
}

/// Streamed rows with ~60 checkpoints each and their chunk texts.
fn with_checkpoints() -> GenerateConfig {
    GenerateConfig { conversations: CONVERSATIONS / 10, messages: false, ..GenerateConfig::default() }
}

fn export(config: &GenerateConfig, format: ExportFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    GeneratedExport::new(generate(config), format).read_to_end(&mut bytes).expect("in memory");
    bytes
}

fn rows(bytes: Vec<u8>) -> Vec<ImportedRow> {
    let source = import::open(std::io::Cursor::new(bytes), None).expect("detected");
    import::records(source, &ImportOptions::default())
        .filter_map(|r| match r {
            Record::Row(r) => Some(*r),
            _ => None,
        })
        .collect()
}

fn parse(bencher: Bencher, bytes: Vec<u8>) {
    let n = rows(bytes.clone()).len();
    bencher.counter(ItemsCount::new(n)).with_inputs(|| bytes.clone()).bench_values(|bytes| {
        let source = import::open(std::io::Cursor::new(black_box(bytes)), None).expect("detected");
        import::records(source, &ImportOptions::default()).count()
    });
}

#[divan::bench(args = [ExportFormat::Jsonl, ExportFormat::OtlpDocument, ExportFormat::OtlpLines], sample_count = 10, sample_size = 1)]
fn parse_usage_rows(bencher: Bencher, format: ExportFormat) {
    parse(bencher, export(&usage_only(), format));
}

#[divan::bench(args = [ExportFormat::Jsonl, ExportFormat::OtlpDocument], sample_count = 10, sample_size = 1)]
fn parse_streamed_rows(bencher: Bencher, format: ExportFormat) {
    parse(bencher, export(&with_checkpoints(), format));
}

fn insert(bencher: Bencher, rows: Vec<ImportedRow>) {
    bencher
        .counter(ItemsCount::new(rows.len()))
        .with_inputs(|| {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = Store::open(&dir.path().join("state.db"), OpenMode::CreateIfMissing, false).expect("state");
            (dir, store)
        })
        .bench_local_values(|(dir, mut store)| {
            let mut writer = store.request_writer().expect("writer");
            for batch in rows.chunks(5_000) {
                let new: Vec<NewRequest<'_>> = batch
                    .iter()
                    .map(|r| NewRequest {
                        source: RequestSource::Import,
                        key: RequestKey::Import(r.key),
                        content_hash: Some(r.content_hash),
                        row: &r.row,
                    })
                    .collect();
                writer.insert(&new).expect("inserted");
            }
            writer.finish().expect("committed");
            (dir, store)
        });
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn insert_usage_rows(bencher: Bencher) {
    insert(bencher, rows(export(&usage_only(), ExportFormat::Jsonl)));
}

#[divan::bench(sample_count = 10, sample_size = 1)]
fn insert_streamed_rows(bencher: Bencher) {
    insert(bencher, rows(export(&with_checkpoints(), ExportFormat::Jsonl)));
}
