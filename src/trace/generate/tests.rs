use std::io::{BufReader, Read};

use super::*;
use crate::trace::import::{self, ImportOptions, Kind, Record};
use crate::trace::model::Digest;

fn config(conversations: usize) -> GenerateConfig {
    GenerateConfig { conversations, ..GenerateConfig::default() }
}

#[test]
fn the_same_seed_gives_the_same_rows() {
    let a: Vec<GeneratedRequest> = generate(&config(50)).collect();
    let b: Vec<GeneratedRequest> = generate(&config(50)).collect();
    assert_eq!(a, b);
    let c: Vec<GeneratedRequest> = generate(&GenerateConfig { seed: 8, ..config(50) }).collect();
    assert_ne!(a, c);
}

#[test]
fn generated_rows_are_consistent_and_varied() {
    let rows: Vec<RequestRow> = generate(&config(400)).map(|g| g.row).collect();
    assert!(rows.iter().all(|r| r.usage.is_consistent()));
    let has = |f: &dyn Fn(&RequestRow) -> bool| rows.iter().any(f);
    assert!(has(&|r| r.usage.cache_read > 0 && r.provider == "openai"));
    assert!(has(&|r| r.usage.cache_write_5m > 0 && r.provider == "anthropic"));
    assert!(has(&|r| r.usage.reasoning > 0));
    assert!(has(&|r| r.attempt == 2));
    assert!(has(&|r| r.batch));
    assert!(has(&|r| r.usage_source == UsageSource::Estimated));
    assert!(has(&|r| r.status == RequestStatus::Timeout));
    assert!(has(&|r| r.stream.len() >= 40));
}

fn import_all(bytes: Vec<u8>) -> (Kind, Vec<Record>) {
    let source = import::open(std::io::Cursor::new(bytes), None).unwrap();
    let kind = source.kind;
    (kind, import::records(source, &ImportOptions::default()).collect())
}

fn rows_of(records: Vec<Record>) -> Vec<(Digest, Digest, RequestRow)> {
    records
        .into_iter()
        .map(|r| match r {
            Record::Row(r) => (r.key, r.content_hash, r.row),
            other => panic!("{other:?}"),
        })
        .collect()
}

#[test]
fn jsonl_and_otlp_exports_of_the_same_traffic_import_to_the_same_rows() {
    for messages in [true, false] {
        same_rows_in_every_format(&GenerateConfig { messages, ..config(60) });
    }
}

fn same_rows_in_every_format(config: &GenerateConfig) {
    let rows: Vec<RequestRow> = generate(config).map(|g| g.row).collect();
    let export = |format| {
        let mut bytes = Vec::new();
        GeneratedExport::new(generate(config), format).read_to_end(&mut bytes).unwrap();
        bytes
    };
    let (kind, jsonl) = import_all(export(ExportFormat::Jsonl));
    assert_eq!(kind, Kind::Jsonl);
    let jsonl = rows_of(jsonl);
    if config.messages {
        assert_eq!(jsonl.iter().map(|r| &r.2).collect::<Vec<_>>(), rows.iter().collect::<Vec<_>>());
    }
    for format in [ExportFormat::OtlpDocument, ExportFormat::OtlpLines] {
        let (kind, otlp) = import_all(export(format));
        assert_eq!(kind, Kind::Otlp);
        let otlp = rows_of(otlp);
        assert_eq!(otlp.len(), jsonl.len(), "{format:?}");
        for (a, b) in otlp.iter().zip(&jsonl) {
            assert_eq!(a.2, b.2, "{format:?}");
            assert_eq!((&a.0, &a.1), (&b.0, &b.1), "same key and content hash");
        }
    }
}

#[test]
fn a_generated_export_is_produced_as_it_is_read() {
    // Ten million rows would be gigabytes; reading the first thousand must cost about a thousand rows.
    let export = GeneratedExport::new(generate(&config(10_000_000)), ExportFormat::Jsonl);
    let source = import::open(export, Some(Kind::Jsonl)).unwrap();
    let taken = import::records(source, &ImportOptions::default()).take(1_000).count();
    assert_eq!(taken, 1_000);
    let mut small = GeneratedExport::new(generate(&config(10_000_000)), ExportFormat::OtlpDocument).with_limit(3);
    let mut text = String::new();
    BufReader::new(&mut small).read_to_string(&mut text).unwrap();
    assert_eq!(small.rows_written(), 3);
    assert!(text.ends_with("]}\n"), "{text}");
}
