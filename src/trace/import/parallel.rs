//! Reading a line-delimited export on several threads, for `trace import`.
//!
//! Parsing and normalizing a JSONL row costs more CPU than storing it, so one parsing thread left the
//! state file's writer waiting. Here one thread cuts the input into chunks of whole lines, worker threads
//! parse the chunks, and the caller gets each chunk's records in file order. Channels are bounded: at
//! most a few chunks are in memory at once, however large the file.
//!
//! Formats that are one document (OTLP, Langfuse) are read by [`super::records`] on one thread and
//! handed over in chunks of the same size, so that callers see one interface.

use std::collections::BTreeMap;
use std::io::{BufRead, Cursor, Read};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use super::jsonl::{JsonlReader, MAX_LINE};
use super::otlp::{self, Walked};
use super::{ImportOptions, Kind, Record, RecordError, Source};

/// Bytes of input per chunk: large enough that handing a chunk over costs nothing next to parsing it
/// (a few thousand usage rows), small enough that the chunks in flight stay a few tens of MB.
/// (Small in unit tests, so that they cut many chunks.)
const CHUNK_BYTES: usize = if cfg!(test) { 64 * 1024 } else { 4 << 20 };
/// Records per chunk for formats read on one thread, or stream checkpoints, whichever comes first.
const CHUNK_RECORDS: usize = 5_000;
const CHUNK_CHECKPOINTS: usize = 50_000;
/// Chunks read ahead of the caller.
const CHUNKS_AHEAD: usize = 2;

/// The records of an export in chunks, in file order, parsed on as many threads as pay for `cores` cores
/// shared with the caller, which is expected to store the records as they come.
///
/// An OTLP span takes several times longer to parse than to store, so its spans are parsed on every core.
/// A JSONL row takes about as long to parse as to store: its parsers leave one core to the caller (on
/// two cores a second parser measured slower, competing with the writer it was meant to feed).
pub fn chunks(source: Source, options: &ImportOptions, cores: usize) -> Box<dyn Iterator<Item = Vec<Record>> + Send> {
    let workers = if source.kind == Kind::Jsonl { cores.saturating_sub(1) } else { cores };
    chunks_on(source, options, workers)
}

/// [`chunks`] with a given number of parsing threads; fewer than two read on one thread. For callers whose
/// own work per record is small (`reconcile --traces` folds a row in a twentieth of its parse).
pub fn chunks_on(
    source: Source,
    options: &ImportOptions,
    workers: usize,
) -> Box<dyn Iterator<Item = Vec<Record>> + Send> {
    if !matches!(source.kind, Kind::Jsonl | Kind::Otlp) || workers < 2 {
        let (tx, rx) = sync_channel(CHUNKS_AHEAD);
        let records = super::records(source, options);
        std::thread::spawn(move || {
            for chunk in (Sequential { records }) {
                if tx.send(chunk).is_err() {
                    return;
                }
            }
        });
        return Box::new(rx.into_iter());
    }
    let (jobs_tx, jobs_rx) = sync_channel::<Job>(workers);
    let (done_tx, done_rx) = sync_channel::<(u64, Vec<Record>)>(workers);
    let jobs = Arc::new(Mutex::new(jobs_rx));
    for _ in 0..workers {
        let (jobs, done, options) = (jobs.clone(), done_tx.clone(), options.clone());
        std::thread::spawn(move || parse_chunks(&jobs, &done, &options));
    }
    let (kind, reader) = (source.kind, source.reader);
    std::thread::spawn(move || match kind {
        Kind::Otlp => capture_spans(reader, &jobs_tx),
        _ => cut_chunks(reader, &jobs_tx),
    });
    Box::new(InOrder { done: done_rx, next: 0, early: BTreeMap::new() })
}

/// A chunk of the input and its number in the file.
struct Job {
    seq: u64,
    work: Work,
}

enum Work {
    /// Whole lines of JSONL, from the 1-based line `first_line` on.
    Lines { first_line: u64, bytes: Vec<u8> },
    /// OTLP spans captured by the walker, and what the walk itself yielded between them.
    Walked(Vec<Walked>),
    /// The error that ended reading.
    Failed(RecordError),
}

/// Reads whole lines in chunks until the input ends, an error stops it, or the workers are gone.
///
/// A chunk's last line is read to its end, but not past [`MAX_LINE`] bytes: a longer line ends the read
/// (its parser reports it, as the sequential reader does), so that a file without line breaks is not
/// buffered whole.
fn cut_chunks(mut reader: Box<dyn BufRead + Send>, jobs: &SyncSender<Job>) {
    let (mut seq, mut line) = (0u64, 1u64);
    loop {
        let mut bytes = Vec::with_capacity(CHUNK_BYTES + 64 * 1024);
        let read = (&mut reader).take(CHUNK_BYTES as u64).read_to_end(&mut bytes).and_then(|_| {
            if bytes.ends_with(b"\n") {
                Ok(0)
            } else {
                (&mut reader).take(MAX_LINE as u64 + 1).read_until(b'\n', &mut bytes)
            }
        });
        // Its parser rejects the line and stops; so does the reading. (After a failed read the loop ends
        // anyway.)
        let overlong = last_line_len(&bytes) > MAX_LINE;
        let failed = read.is_err();
        let lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        let job = match read {
            _ if bytes.is_empty() && !failed => return,
            Ok(_) => Job { seq, work: Work::Lines { first_line: line, bytes } },
            // The lines read before the error are parsed first; the error comes after them.
            Err(e) => {
                let error = RecordError::fatal(Some(line + lines), format!("cannot read: {e}"));
                if !bytes.is_empty() {
                    let _ = jobs.send(Job { seq, work: Work::Lines { first_line: line, bytes } });
                    seq += 1;
                }
                let _ = jobs.send(Job { seq, work: Work::Failed(error) });
                return;
            }
        };
        line += lines;
        seq += 1;
        if jobs.send(job).is_err() || overlong {
            return;
        }
    }
}

/// Bytes of the last line of `bytes`, its line break included (as [`JsonlReader`] measures a line).
fn last_line_len(bytes: &[u8]) -> usize {
    let body = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    bytes.len() - memchr::memrchr(b'\n', body).map_or(0, |i| i + 1)
}

/// Walks an OTLP document, capturing spans in chunks until it ends or the workers are gone.
fn capture_spans(reader: Box<dyn BufRead + Send>, jobs: &SyncSender<Job>) {
    let mut walked = otlp::captured(reader);
    for seq in 0.. {
        let (mut chunk, mut bytes) = (Vec::new(), 0);
        while chunk.len() < CHUNK_RECORDS && bytes < CHUNK_BYTES {
            let Some(item) = walked.next() else { break };
            if let Walked::Span { bytes: span, .. } = &item {
                bytes += span.len();
            }
            chunk.push(item);
        }
        if chunk.is_empty() || jobs.send(Job { seq, work: Work::Walked(chunk) }).is_err() {
            return;
        }
    }
}

/// A worker: parses chunks until there are no more or nobody listens.
fn parse_chunks(jobs: &Mutex<Receiver<Job>>, done: &SyncSender<(u64, Vec<Record>)>, options: &ImportOptions) {
    loop {
        // The lock is held only while taking a job, not while parsing it.
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else { return };
        let records = match job.work {
            Work::Lines { first_line, bytes } => {
                JsonlReader::starting_at(Cursor::new(bytes), options.clone(), first_line).collect()
            }
            Work::Walked(items) => items.into_iter().map(Walked::into_record).collect(),
            Work::Failed(e) => vec![Record::Error(e)],
        };
        if done.send((job.seq, records)).is_err() {
            return;
        }
    }
}

/// Puts the workers' chunks back in file order.
struct InOrder {
    done: Receiver<(u64, Vec<Record>)>,
    next: u64,
    early: BTreeMap<u64, Vec<Record>>,
}

impl Iterator for InOrder {
    type Item = Vec<Record>;

    fn next(&mut self) -> Option<Vec<Record>> {
        loop {
            if let Some(records) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(records);
            }
            // Every sender gone: the reader has finished and so has every worker.
            let (seq, records) = self.done.recv().ok()?;
            self.early.insert(seq, records);
        }
    }
}

struct Sequential {
    records: Box<dyn Iterator<Item = Record> + Send>,
}

impl Iterator for Sequential {
    type Item = Vec<Record>;

    fn next(&mut self) -> Option<Vec<Record>> {
        let mut chunk = Vec::new();
        let mut checkpoints = 0;
        while chunk.len() < CHUNK_RECORDS && checkpoints < CHUNK_CHECKPOINTS {
            let Some(record) = self.records.next() else { break };
            if let Record::Row(row) = &record {
                checkpoints += row.row.stream.len();
            }
            chunk.push(record);
        }
        (!chunk.is_empty()).then_some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::generate::{ExportFormat, GenerateConfig, GeneratedExport, generate};

    fn export(format: ExportFormat) -> Vec<u8> {
        let config = GenerateConfig { conversations: 400, messages: false, ..GenerateConfig::default() };
        let mut bytes = Vec::new();
        GeneratedExport::new(generate(&config), format).read_to_end(&mut bytes).unwrap();
        bytes
    }

    fn sequential(bytes: &[u8]) -> Vec<Record> {
        let source = super::super::open(Cursor::new(bytes.to_vec()), None).unwrap();
        super::super::records(source, &ImportOptions::default()).collect()
    }

    fn parallel(bytes: &[u8], workers: usize) -> Vec<Record> {
        let source = super::super::open(Cursor::new(bytes.to_vec()), None).unwrap();
        chunks_on(source, &ImportOptions::default(), workers).flatten().collect()
    }

    #[test]
    fn parallel_reading_yields_what_sequential_reading_does_in_file_order() {
        let mut bytes = export(ExportFormat::Jsonl);
        // Broken lines in the middle and a last line without a line break.
        let middle = bytes.len() / 2 + memchr::memchr(b'\n', &bytes[bytes.len() / 2..]).unwrap() + 1;
        bytes.splice(middle..middle, b"{\"ts\": \n[1]\n\n".iter().copied());
        bytes.pop();
        assert!(bytes.len() > 4 * CHUNK_BYTES, "a few chunks at least: {}", bytes.len());
        let expected = sequential(&bytes);
        assert!(expected.iter().filter(|r| matches!(r, Record::Error(_))).count() == 2);
        for workers in [2, 3] {
            assert_eq!(parallel(&bytes, workers), expected);
        }
    }

    #[test]
    fn a_line_over_the_limit_ends_the_read_without_being_buffered_whole() {
        let mut bytes = export(ExportFormat::Jsonl);
        let first_lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
        // Three times the limit without a line break, then more lines that are never read.
        bytes.extend(std::iter::repeat_n(b'x', 3 * MAX_LINE));
        bytes.extend(b"\n{\"ts\": 1}\n");
        let expected = sequential(&bytes);
        let Some(Record::Error(e)) = expected.last() else { panic!("ends with an error") };
        assert_eq!(e.line, Some(first_lines + 1));
        assert!(e.message.contains("longer than 1 MB"), "{}", e.message);
        for workers in [2, 3] {
            assert_eq!(parallel(&bytes, workers), expected);
        }
        // The cutter stopped at the long line: its chunks hold the lines before it and the limit's worth.
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(4096);
        cut_chunks(Box::new(Cursor::new(bytes.clone())), &jobs_tx);
        drop(jobs_tx);
        let cut: usize = jobs_rx
            .iter()
            .map(|job| match job.work {
                Work::Lines { bytes, .. } => bytes.len(),
                _ => 0,
            })
            .sum();
        assert!(cut < bytes.len() - MAX_LINE, "{cut} of {} bytes", bytes.len());
    }

    #[test]
    fn a_line_over_the_limit_is_found_when_its_chunk_began_it() {
        // The line starts in the chunk's first part and the completion is under the limit by itself.
        let long = MAX_LINE + 10;
        let mut bytes = b"{}\n".to_vec();
        bytes.extend(std::iter::repeat_n(b'x', long));
        bytes.extend(b"\n{\"ts\": 1}\n");
        assert!(long - (CHUNK_BYTES - 3) <= MAX_LINE);
        let expected = sequential(&bytes);
        assert!(matches!(expected.last(), Some(Record::Error(e)) if e.line == Some(2)), "{expected:?}");
        assert_eq!(parallel(&bytes, 2), expected);
        assert_eq!((last_line_len(b"a\nbc\n"), last_line_len(b"a\nbc"), last_line_len(b"abc")), (3, 2, 3));
    }

    #[test]
    fn small_chunks_cut_at_line_boundaries_with_the_right_line_numbers() {
        let bytes = export(ExportFormat::Jsonl);
        let (jobs_tx, jobs_rx) = sync_channel::<Job>(1024);
        // Cut with the real chunk size over a reader that returns a few bytes at a time.
        let reader: Box<dyn BufRead + Send> =
            Box::new(std::io::BufReader::with_capacity(7, Cursor::new(bytes.clone())));
        cut_chunks(reader, &jobs_tx);
        drop(jobs_tx);
        let mut line = 1;
        let mut joined = Vec::new();
        for (i, job) in jobs_rx.iter().enumerate() {
            let Work::Lines { first_line, bytes } = job.work else { panic!("lines") };
            assert_eq!((job.seq, first_line), (i as u64, line));
            assert!(bytes.ends_with(b"\n"));
            line += memchr::memchr_iter(b'\n', &bytes).count() as u64;
            joined.extend(bytes);
        }
        assert_eq!(joined, bytes);
    }

    #[test]
    fn otlp_spans_are_parsed_in_parallel_into_what_sequential_reading_yields() {
        for format in [ExportFormat::OtlpDocument, ExportFormat::OtlpLines] {
            let bytes = export(format);
            let expected = sequential(&bytes);
            assert!(expected.len() > 2 * CHUNK_RECORDS / 10, "{}", expected.len());
            assert_eq!(parallel(&bytes, 2), expected, "{format:?}");
            // A truncated document: the spans before the cut, then the error.
            let cut = &bytes[..bytes.len() * 2 / 3];
            assert_eq!(parallel(cut, 3), sequential(cut), "{format:?}");
        }
    }

    #[test]
    fn langfuse_exports_are_read_on_one_thread_in_chunks() {
        let text = r#"[{"id":"o1","traceId":"t","type":"GENERATION","startTime":"2026-10-01T12:00:00Z","model":"gpt-4o","usageDetails":{"input":3,"output":1}}]"#;
        assert_eq!(parallel(text.as_bytes(), 2), sequential(text.as_bytes()));
    }
}
