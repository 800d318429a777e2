//! Records already read, by import key, for readers that do not store rows (`reconcile --traces`): the
//! same span in two overlapping exports is one request, as `trace import` counts it.

use super::ImportedRow;

/// What a record is, next to the ones read before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    New,
    /// The same key with the same content: the record was exported twice.
    Duplicate,
    /// The same key with other content: the first one read is kept, as `trace import` keeps the stored row.
    Conflict,
}

/// Key and content digests of the records read so far (16 bytes each, as the importers make them for
/// `trace import`): 32 bytes a record, not the keys' text.
#[derive(Debug, Default)]
pub struct SeenKeys {
    content_by_key: rustc_hash::FxHashMap<u128, u128>,
}

impl SeenKeys {
    pub fn check(&mut self, row: &ImportedRow) -> Seen {
        let content = u128::from_le_bytes(row.content_hash.0);
        match self.content_by_key.entry(u128::from_le_bytes(row.key.0)) {
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(content);
                Seen::New
            }
            std::collections::hash_map::Entry::Occupied(first) if *first.get() == content => Seen::Duplicate,
            std::collections::hash_map::Entry::Occupied(_) => Seen::Conflict,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::import::{ImportOptions, Kind, Record, open, records};

    fn rows(text: &str) -> Vec<ImportedRow> {
        let source = open(std::io::Cursor::new(text.as_bytes().to_vec()), Some(Kind::Jsonl)).unwrap();
        records(source, &ImportOptions::default())
            .map(|r| match r {
                Record::Row(row) => *row,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn a_span_read_twice_is_a_duplicate_and_with_other_tokens_a_conflict() {
        let line = |span: &str, output: u32| {
            format!(
                r#"{{"ts":"2026-10-03T09:00:00Z","provider":"openai","model":"gpt-4o-mini","trace_id":"c0ffee0000000000000000000000a001","span_id":"{span}","usage":{{"input_tokens":100,"output_tokens":{output}}}}}"#
            )
        };
        let text = [line("a001000000000001", 10), line("a001000000000002", 10), line("a001000000000001", 10)]
            .join("\n")
            + "\n"
            + &line("a001000000000002", 11);
        let mut seen = SeenKeys::default();
        let verdicts: Vec<Seen> = rows(&text).iter().map(|r| seen.check(r)).collect();
        assert_eq!(verdicts, [Seen::New, Seen::New, Seen::Duplicate, Seen::Conflict]);
    }

    #[test]
    fn records_without_ids_are_the_same_when_their_content_is() {
        let line = r#"{"ts":"2026-10-03T09:00:00Z","provider":"openai","model":"gpt-4o-mini","usage":{"input_tokens":100,"output_tokens":10}}"#;
        let other = line.replace("\"output_tokens\":10", "\"output_tokens\":12");
        let mut seen = SeenKeys::default();
        let verdicts: Vec<Seen> = rows(&format!("{line}\n{line}\n{other}\n")).iter().map(|r| seen.check(r)).collect();
        assert_eq!(verdicts, [Seen::New, Seen::Duplicate, Seen::New]);
    }
}
