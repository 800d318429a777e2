//! Line-delimited exports parsed on every core, records still handed out in file order.
//!
//! A promptctl JSONL line is parsed with no knowledge of the lines around it, so a file can be cut into
//! blocks at line breaks and the blocks parsed side by side. One thread cuts blocks (and undoes gzip, which
//! cannot be split), workers parse them, and the caller's iterator puts the blocks back in order. A fixed
//! number of blocks is in flight at any time — the cutter waits for a permit that the iterator returns when
//! it has handed out a block's records — so memory does not grow with the file, however uneven the workers.

use std::collections::BTreeMap;
use std::io::{BufRead, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::jsonl::{self, JsonlReader};
use super::{ImportOptions, Kind, Record, RecordError, Source, records};

/// Bytes per block before it is extended to the next line break: large enough that handing a block
/// between threads costs nothing next to parsing it, small enough that a few per worker fit in cache.
const BLOCK_BYTES: usize = if cfg!(test) { 4096 } else { 1 << 20 };

/// Blocks cut but not yet handed out, per worker.
const IN_FLIGHT_PER_WORKER: usize = 4;

/// The records of `source` in file order, as [`records`] gives them, parsed on up to `threads` threads.
/// Only promptctl JSONL is cut into blocks; other kinds (one OTLP document, Langfuse arrays) and a single
/// thread are read as [`records`] reads them.
pub fn records_in_parallel(
    source: Source,
    options: &ImportOptions,
    threads: usize,
) -> Box<dyn Iterator<Item = Record> + Send> {
    if source.kind != Kind::Jsonl || threads < 2 {
        return records(source, options);
    }
    Box::new(Ordered::start(source.reader, options, threads))
}

/// The threads a parallel read should use: the machine's cores, at most eight (beyond that the single
/// consumer is the bottleneck).
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).min(8)
}

/// A block of whole lines and the 1-based number of its first line.
struct Block {
    seq: u64,
    first_line: u64,
    bytes: Vec<u8>,
}

/// What a worker or the cutter sends back, in block order by `seq`.
enum Parsed {
    Records(Vec<Record>),
    /// The cutter could not go on (a read error, an over-long line): the last thing in the file's order.
    Fatal(RecordError),
}

struct Ordered {
    results: Receiver<(u64, Parsed)>,
    permits: SyncSender<()>,
    waiting: BTreeMap<u64, Parsed>,
    next_seq: u64,
    current: std::vec::IntoIter<Record>,
    done: bool,
}

impl Ordered {
    fn start(reader: Box<dyn BufRead + Send>, options: &ImportOptions, threads: usize) -> Ordered {
        let in_flight = threads * IN_FLIGHT_PER_WORKER;
        let (permits, permit_rx) = sync_channel(in_flight);
        for _ in 0..in_flight {
            permits.send(()).expect("the receiver is alive and the channel has room for every permit");
        }
        let (block_tx, block_rx) = sync_channel::<Block>(in_flight);
        let (result_tx, results) = sync_channel(in_flight);
        let block_rx = Arc::new(Mutex::new(block_rx));
        for _ in 0..threads {
            let block_rx = Arc::clone(&block_rx);
            let result_tx = result_tx.clone();
            let options = options.clone();
            std::thread::spawn(move || parse_blocks(&block_rx, &result_tx, &options));
        }
        std::thread::spawn(move || cut_blocks(reader, &permit_rx, &block_tx, &result_tx));
        Ordered {
            results,
            permits,
            waiting: BTreeMap::new(),
            next_seq: 0,
            current: Vec::new().into_iter(),
            done: false,
        }
    }

    /// The next block's records in order, waiting for the workers as needed; `None` when all are out.
    fn next_block(&mut self) -> Option<Parsed> {
        loop {
            if let Some(parsed) = self.waiting.remove(&self.next_seq) {
                self.next_seq += 1;
                return Some(parsed);
            }
            // Every sender gone: the cutter reached the end and the workers emptied the queue.
            let (seq, parsed) = self.results.recv().ok()?;
            self.waiting.insert(seq, parsed);
        }
    }
}

impl Iterator for Ordered {
    type Item = Record;

    fn next(&mut self) -> Option<Record> {
        loop {
            if let Some(record) = self.current.next() {
                return Some(record);
            }
            if self.done {
                return None;
            }
            match self.next_block() {
                Some(Parsed::Records(records)) => {
                    // The block is out of the pipeline: the cutter may cut another. A cutter that has
                    // stopped no longer listens, which is fine.
                    let _ = self.permits.try_send(());
                    self.current = records.into_iter();
                }
                Some(Parsed::Fatal(error)) => {
                    self.done = true;
                    return Some(Record::Error(error));
                }
                None => self.done = true,
            }
        }
    }
}

/// Cuts `reader` into blocks of whole lines, each after a permit. Stops at the end, at a read error or an
/// over-long line (reported in order, after the lines before it), or when the consumer is gone.
fn cut_blocks(
    mut reader: Box<dyn BufRead + Send>,
    permits: &Receiver<()>,
    blocks: &SyncSender<Block>,
    results: &SyncSender<(u64, Parsed)>,
) {
    let mut first_line = 1;
    let mut seq = 0;
    loop {
        if permits.recv().is_err() {
            return;
        }
        let Cut { bytes, lines, error } = cut_block(&mut reader, first_line);
        if !bytes.is_empty() {
            if blocks.send(Block { seq, first_line, bytes }).is_err() {
                return;
            }
            seq += 1;
            first_line += lines;
        }
        match error {
            Some(error) => {
                let _ = results.send((seq, Parsed::Fatal(error)));
                return;
            }
            None if lines == 0 => return,
            None => {}
        }
    }
}

/// Whole lines cut from the input, how many (a last line without a break counts), and the error that
/// stopped the cut, if one did.
struct Cut {
    bytes: Vec<u8>,
    lines: u64,
    error: Option<RecordError>,
}

/// Reads about [`BLOCK_BYTES`] and then up to the next line break. An empty cut without error is the end.
fn cut_block(mut reader: &mut dyn BufRead, first_line: u64) -> Cut {
    let mut bytes = Vec::with_capacity(BLOCK_BYTES + BLOCK_BYTES / 16);
    let mut read = (&mut reader).take(BLOCK_BYTES as u64).read_to_end(&mut bytes).map(|_| ());
    if read.is_ok() && !bytes.is_empty() && bytes.last() != Some(&b'\n') {
        read = (&mut reader).take(jsonl::MAX_LINE as u64 + 1).read_until(b'\n', &mut bytes).map(|_| ());
    }
    let last_break = memchr::memrchr(b'\n', &bytes).map_or(0, |i| i + 1);
    let whole_lines = memchr::memchr_iter(b'\n', &bytes[..last_break]).count() as u64;
    let error = match read {
        // What follows the last break was cut short by the error: the lines before it are kept.
        Err(e) => Some(RecordError::fatal(Some(first_line + whole_lines), format!("cannot read: {e}"))),
        Ok(()) if bytes.len() - last_break > jsonl::MAX_LINE => Some(jsonl::line_too_long(first_line + whole_lines)),
        Ok(()) => None,
    };
    if error.is_some() {
        bytes.truncate(last_break);
        return Cut { bytes, lines: whole_lines, error };
    }
    let lines = whole_lines + u64::from(bytes.len() > last_break);
    Cut { bytes, lines, error }
}

/// A worker: parses blocks until the cutter is done, numbering lines from each block's first.
fn parse_blocks(blocks: &Mutex<Receiver<Block>>, results: &SyncSender<(u64, Parsed)>, options: &ImportOptions) {
    loop {
        // The lock is held only to take a block, never while parsing one.
        let block = match blocks.lock() {
            Ok(receiver) => receiver.recv(),
            Err(_) => return,
        };
        let Ok(block) = block else { return };
        let offset = block.first_line - 1;
        let records: Vec<Record> =
            JsonlReader::new(block.bytes.as_slice(), options.clone()).map(|r| shifted(r, offset)).collect();
        if results.send((block.seq, Parsed::Records(records))).is_err() {
            return;
        }
    }
}

/// A record read from a block, with its line numbered in the whole file.
fn shifted(record: Record, offset: u64) -> Record {
    match record {
        Record::Row(mut row) => {
            row.line += offset;
            Record::Row(row)
        }
        Record::Skipped { line, reason } => Record::Skipped { line: line + offset, reason },
        Record::Error(mut e) => {
            e.line = e.line.map(|l| l + offset);
            Record::Error(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::import::open;
    use proptest::prelude::*;

    fn sequential(text: &[u8]) -> Vec<Record> {
        records(open(std::io::Cursor::new(text.to_vec()), Some(Kind::Jsonl)).unwrap(), &ImportOptions::default())
            .collect()
    }

    fn parallel(text: &[u8], threads: usize) -> Vec<Record> {
        let source = open(std::io::Cursor::new(text.to_vec()), Some(Kind::Jsonl)).unwrap();
        records_in_parallel(source, &ImportOptions::default(), threads).collect()
    }

    fn line(i: usize) -> String {
        format!(
            r#"{{"ts":"2026-10-03T09:{:02}:{:02}Z","provider":"openai","model":"gpt-4o-mini","trace_id":"{:032x}","span_id":"{:016x}","usage":{{"input_tokens":{},"output_tokens":{}}}}}"#,
            (i / 60) % 60,
            i % 60,
            i + 1,
            i + 1,
            100 + i,
            10 + i % 7
        )
    }

    /// A file of `n` rows in which some lines are broken or blank, as exports are.
    fn export(n: usize, broken_every: usize) -> String {
        let mut text = String::new();
        for i in 0..n {
            if broken_every > 0 && i % broken_every == broken_every - 1 {
                text.push_str("[\"not an object\"]\n\n");
            } else {
                text.push_str(&line(i));
                text.push('\n');
            }
        }
        text
    }

    #[test]
    fn many_blocks_come_out_in_file_order_with_file_line_numbers() {
        // Over 3 MB: several blocks per worker, cut mid-line and extended to the break.
        let text = export(14_000, 97);
        assert!(text.len() > 3 * BLOCK_BYTES, "{}", text.len());
        let expected = sequential(text.as_bytes());
        assert_eq!(parallel(text.as_bytes(), 3), expected);
        let errors: Vec<u64> =
            expected.iter().filter_map(|r| if let Record::Error(e) = r { e.line } else { None }).collect();
        assert_eq!(errors.len(), 14_000 / 97);
        assert_eq!(errors[1], 2 * 98 - 1, "line numbers count the blank lines after each broken one");
    }

    #[test]
    fn a_last_line_without_a_break_and_an_empty_export_read_as_in_one_thread() {
        let mut text = export(40, 0);
        text.pop();
        assert_eq!(parallel(text.as_bytes(), 2), sequential(text.as_bytes()));
        let reader: Box<dyn BufRead + Send> = Box::new(std::io::Cursor::new(Vec::new()));
        assert!(Ordered::start(reader, &ImportOptions::default(), 2).next().is_none());
    }

    #[test]
    fn other_kinds_are_read_in_one_thread() {
        let otlp = br#"{"resourceSpans":[]}"#;
        let source = open(std::io::Cursor::new(otlp.to_vec()), None).unwrap();
        assert_eq!(source.kind, Kind::Otlp);
        assert_eq!(records_in_parallel(source, &ImportOptions::default(), 4).count(), 0);
    }

    #[test]
    fn a_consumer_that_stops_early_lets_the_threads_end() {
        let text = export(14_000, 0);
        let source = open(std::io::Cursor::new(text.into_bytes()), Some(Kind::Jsonl)).unwrap();
        let first: Vec<Record> = records_in_parallel(source, &ImportOptions::default(), 2).take(3).collect();
        assert_eq!(first.len(), 3);
        // Dropping the iterator closes the channels; the threads see it and return (no hang, no panic).
    }

    /// Gives `good` bytes, then fails: a disk or a network share that goes away mid-file.
    struct FailsAfter {
        text: std::io::Cursor<Vec<u8>>,
    }

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.text.read(buf)? {
                0 => Err(std::io::Error::other("device went away")),
                n => Ok(n),
            }
        }
    }

    #[test]
    fn a_read_error_ends_the_records_after_the_whole_lines_before_it() {
        // Past the megabyte that `open` reads to detect the kind.
        let text = export(12_000, 0);
        let cut = text.len() * 2 / 3;
        assert!(cut > (1 << 20) + 4 * BLOCK_BYTES, "{cut}");
        let failing = || FailsAfter { text: std::io::Cursor::new(text.as_bytes()[..cut].to_vec()) };
        let one: Vec<Record> =
            records(open(failing(), Some(Kind::Jsonl)).unwrap(), &ImportOptions::default()).collect();
        let many: Vec<Record> =
            records_in_parallel(open(failing(), Some(Kind::Jsonl)).unwrap(), &ImportOptions::default(), 3).collect();
        assert_eq!(many, one);
        let Some(Record::Error(last)) = many.last() else { panic!("no error at the end") };
        assert!(last.fatal && last.message.contains("device went away"), "{last:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn any_cut_gives_the_sequential_records(n in 1usize..300, broken_every in 0usize..9, threads in 2usize..5) {
            let text = export(n, broken_every);
            prop_assert_eq!(parallel(text.as_bytes(), threads), sequential(text.as_bytes()));
        }
    }
}
