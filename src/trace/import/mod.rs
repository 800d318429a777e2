//! Trace importers: OTLP/JSON with GenAI (and OpenInference) attributes, promptctl JSONL, and Langfuse
//! observation exports, normalized into [`RequestRow`]s.
//!
//! The API is a reader in, records out, independent of the state file, so that other commands
//! (`reconcile --traces`) can read exports without importing them:
//!
//! ```no_run
//! # use promptctl::trace::import::{self, ImportOptions, Record};
//! let file = std::fs::File::open("traces.json.gz").unwrap();
//! let source = import::open(file, None).unwrap();          // gzip and kind detected by content
//! for record in import::records(source, &ImportOptions::default()) {
//!     match record {
//!         Record::Row(row) => { /* row.key, row.row: RequestRow */ }
//!         Record::Skipped { .. } => { /* a span that is not a model call */ }
//!         Record::Error(e) => { /* e.line, e.message; reading continues unless e.fatal */ }
//!     }
//! }
//! ```
//!
//! Reading is streaming: memory is bounded by the largest single record (span, line, observation), not
//! by the file, which may be gigabytes.

mod attrs;
mod driver;
mod jsonl;
mod langfuse;
pub mod normalize;
mod otlp;
mod parallel;
pub mod scan;
mod seen;

use std::fmt;
use std::io::{self, BufRead, BufReader, Read};

use serde::Serialize;

pub use normalize::{CacheConvention, MAX_TOKENS, content_hash, import_key, parse_time, parse_zone};
pub use parallel::{chunks, chunks_on};
pub use seen::{Seen, SeenKeys};

use crate::trace::model::{Digest, RequestRow};

/// The export formats promptctl reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// OTLP/JSON `ExportTraceServiceRequest` documents (one document, or one per line as the OpenTelemetry
    /// Collector's file exporter writes them).
    Otlp,
    /// promptctl JSONL: one request per line (docs/traces.md).
    Jsonl,
    /// Langfuse observations: a JSON array, API pages (`{"data": […]}`), or one observation per line.
    Langfuse,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Otlp => "otlp",
            Kind::Jsonl => "jsonl",
            Kind::Langfuse => "langfuse",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Choices the file cannot make for itself.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// The zone of times written without a UTC offset; without it such times are errors.
    pub assume_tz: Option<jiff::tz::TimeZone>,
}

/// One imported request.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedRow {
    /// 1-based line where the record starts.
    pub line: u64,
    /// The digest of the idempotency key, `span:TRACE/SPAN` when the record has ids, else
    /// `sha:CONTENT_HASH` ([`ImportedRow::key_text`]).
    pub key: Digest,
    /// Hash of the normalized row; the same key with another hash is a conflicting duplicate.
    pub content_hash: Digest,
    pub row: RequestRow,
    /// How the source counted cached tokens (recorded so that the import can say when it had to infer it).
    pub convention: CacheConvention,
    /// True when the convention was inferred from the counts rather than known from the format.
    pub convention_inferred: bool,
}

impl ImportedRow {
    /// A normalized row with its content hash and key, as every importer makes it.
    pub fn new(line: u64, row: RequestRow, convention: CacheConvention, convention_inferred: bool) -> ImportedRow {
        let content_hash = content_hash(&row);
        let key = normalize::import_key_digest(&row, &content_hash);
        ImportedRow { line, key, content_hash, row, convention, convention_inferred }
    }

    /// The idempotency key as text (for messages; the state file keeps its digest).
    pub fn key_text(&self) -> String {
        import_key(&self.row, &self.content_hash)
    }
}

/// Why a record was read but not imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SkipReason {
    /// A span with no model, provider or token attributes (HTTP, database, application spans).
    NoGenAiAttributes,
    /// A GenAI span that is not a model call: a tool execution, an agent invocation, embeddings.
    NotAModelCall,
    /// A Langfuse observation that is not a generation (spans, events, tools).
    NotAGeneration,
}

impl SkipReason {
    pub fn describe(self) -> &'static str {
        match self {
            SkipReason::NoGenAiAttributes => "spans without GenAI attributes",
            SkipReason::NotAModelCall => "GenAI spans that are not model calls (tools, agents, embeddings)",
            SkipReason::NotAGeneration => "Langfuse observations that are not generations",
        }
    }
}

/// A record that could not be imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordError {
    /// 1-based line, when known.
    pub line: Option<u64>,
    pub message: String,
    /// True when reading cannot go on after it (a truncated document, an I/O error).
    #[serde(skip)]
    pub fatal: bool,
}

impl RecordError {
    pub fn at(line: u64, message: impl Into<String>) -> Self {
        RecordError { line: Some(line), message: message.into(), fatal: false }
    }

    pub fn fatal(line: Option<u64>, message: impl Into<String>) -> Self {
        RecordError { line, message: message.into(), fatal: true }
    }
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// What reading a file yields, in file order.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Row(Box<ImportedRow>),
    Skipped { line: u64, reason: SkipReason },
    Error(RecordError),
}

/// An opened export: its kind and a buffered reader over the (decompressed) bytes.
pub struct Source {
    pub kind: Kind,
    pub gzip: bool,
    pub reader: Box<dyn BufRead + Send>,
}

#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot tell which kind of trace export this is")]
    Undetected,
    #[error("the file is empty")]
    Empty,
    #[error("cannot read: {0}")]
    Io(#[from] io::Error),
}

/// How many bytes detection looks at. Also what the layout check sees: a line-delimited file whose first
/// line is longer is read as one document (same records; a broken line then ends the import).
const SNIFF_BYTES: usize = 1024 * 1024;
/// Read buffer: large reads keep system-call overhead negligible at hundreds of MB/s.
const READ_BUFFER: usize = 1024 * 1024;

/// Opens an export: undoes gzip (by its magic bytes, whatever the file is called) and detects the kind
/// by content unless `kind` is given.
pub fn open(reader: impl Read + Send + 'static, kind: Option<Kind>) -> Result<Source, OpenError> {
    let (prefix, rest) = sniff(Box::new(reader))?;
    let gzip = prefix.starts_with(&[0x1f, 0x8b]);
    let (prefix, rest): (Vec<u8>, Box<dyn Read + Send>) = if gzip {
        let decoder = flate2::read::MultiGzDecoder::new(io::Cursor::new(prefix).chain(rest));
        sniff(Box::new(decoder))?
    } else {
        (prefix, rest)
    };
    let text = strip_bom(&prefix);
    if text.iter().all(u8::is_ascii_whitespace) {
        return Err(OpenError::Empty);
    }
    let kind = match kind {
        Some(kind) => kind,
        None => detect(text).ok_or(OpenError::Undetected)?,
    };
    let skip = prefix.len() - text.len();
    let reader = BufReader::with_capacity(READ_BUFFER, io::Cursor::new(prefix).chain(rest));
    let mut reader: Box<dyn BufRead + Send> = Box::new(reader);
    if skip > 0 {
        // The byte order mark is in the first buffer; it must be filled before it can be consumed.
        reader.fill_buf()?;
        reader.consume(skip);
    }
    Ok(Source { kind, gzip, reader })
}

/// The records of an opened export, in file order.
pub fn records(source: Source, options: &ImportOptions) -> Box<dyn Iterator<Item = Record> + Send> {
    match source.kind {
        Kind::Otlp => Box::new(otlp::reader(source.reader)),
        Kind::Jsonl => Box::new(jsonl::JsonlReader::new(source.reader, options.clone())),
        Kind::Langfuse => Box::new(langfuse::reader(source.reader, options.clone())),
    }
}

/// The kind of export from its first bytes: OTLP has `resourceSpans`; Langfuse observations have
/// usage details, generation types or `traceId` with ISO `startTime`; anything else that starts with a
/// JSON object is taken as promptctl JSONL, whose reader then checks each line.
pub fn detect(prefix: &[u8]) -> Option<Kind> {
    let has = |needle: &str| memchr::memmem::find(prefix, needle.as_bytes()).is_some();
    let first = prefix.iter().find(|b| !b.is_ascii_whitespace()).copied()?;
    if has("\"resourceSpans\"") || has("\"resource_spans\"") {
        return Some(Kind::Otlp);
    }
    let langfuse_markers = ["\"usageDetails\"", "\"completionStartTime\"", "\"GENERATION\"", "\"promptName\""];
    if langfuse_markers.iter().any(|m| has(m)) || (has("\"traceId\"") && has("\"startTime\"")) {
        return Some(Kind::Langfuse);
    }
    if first == b'{' {
        return Some(Kind::Jsonl);
    }
    None
}

fn strip_bom(bytes: &[u8]) -> &[u8] {
    bytes.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(bytes)
}

/// Reads up to [`SNIFF_BYTES`] and returns them with the rest of the stream.
fn sniff(mut reader: Box<dyn Read + Send>) -> Result<(Vec<u8>, Box<dyn Read + Send>), io::Error> {
    let mut prefix = Vec::with_capacity(SNIFF_BYTES);
    (&mut reader).take(SNIFF_BYTES as u64).read_to_end(&mut prefix)?;
    Ok((prefix, reader))
}

/// Where a record starts in its file: the 1-based line and byte column of its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Start {
    pub line: u64,
    pub column: u64,
}

impl Start {
    /// The file's line and column of the byte at (`line`, `column`) of the record (both 1-based): on the
    /// record's first line columns count from where the record starts, on later lines from the line's.
    fn place(self, line: u64, column: u64) -> (u64, u64) {
        if line <= 1 { (self.line, self.column + column.saturating_sub(1)) } else { (self.line + line - 1, column) }
    }
}

/// A serde error inside a record, placed in the file.
fn json_error(e: &serde_json::Error, start: Start) -> RecordError {
    let (line, column) = start.place(e.line() as u64, e.column() as u64);
    // serde appends " at line L column C", relative to the record; the file's place replaces it.
    let message = e.to_string();
    let message = match message.rfind(" at line ") {
        Some(i) => format!("{} (column {column})", &message[..i]),
        None => message,
    };
    RecordError::at(line, message)
}

/// One record's JSON. The bytes are checked for UTF-8 once and parsed with serde_json's str reader: its
/// slice reader validates every string it borrows again (4–5 % of an import).
fn parse_record<'a, T: serde::Deserialize<'a>>(bytes: &'a [u8], start: Start) -> Result<T, RecordError> {
    let text = std::str::from_utf8(bytes).map_err(|e| not_utf8(bytes, &e, start))?;
    serde_json::from_str(text).map_err(|e| json_error(&e, start))
}

/// The error for a record whose bytes are not UTF-8, at the first bad byte.
fn not_utf8(record: &[u8], e: &std::str::Utf8Error, start: Start) -> RecordError {
    let at = e.valid_up_to();
    let before = &record[..at];
    let line = 1 + memchr::memchr_iter(b'\n', before).count() as u64;
    let column = (at - before.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1) + 1) as u64;
    let (line, column) = start.place(line, column);
    RecordError::at(
        line,
        format!(
            "byte 0x{:02X} at column {column} is not UTF-8; JSON exports are UTF-8 (convert the file, e.g. with iconv)",
            record[at]
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_each_kind_by_content() {
        assert_eq!(detect(br#"{"resourceSpans":[]}"#), Some(Kind::Otlp));
        assert_eq!(detect(br#"  {"ts":"2026-10-01T12:00:00Z","model":"gpt-4o"}"#), Some(Kind::Jsonl));
        assert_eq!(detect(br#"[{"id":"o1","traceId":"t","type":"GENERATION"}]"#), Some(Kind::Langfuse));
        assert_eq!(detect(br#"{"data":[{"id":"o1","traceId":"t","startTime":"2026"}]}"#), Some(Kind::Langfuse));
        assert_eq!(detect(b"model,tokens\n"), None);
        assert_eq!(detect(b"   "), None);
    }

    #[test]
    fn gzip_is_undone_whatever_the_name() {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(br#"{"resourceSpans":[]}"#).unwrap();
        let bytes = gz.finish().unwrap();
        let source = open(io::Cursor::new(bytes), None).unwrap();
        assert!(source.gzip);
        assert_eq!(source.kind, Kind::Otlp);
    }

    #[test]
    fn empty_and_unknown_inputs_are_refused() {
        assert!(matches!(open(io::Cursor::new(b"\n\n".to_vec()), None), Err(OpenError::Empty)));
        assert!(matches!(open(io::Cursor::new(b"a,b\n1,2\n".to_vec()), None), Err(OpenError::Undetected)));
    }

    #[test]
    fn a_byte_order_mark_is_ignored() {
        let mut bytes = b"\xef\xbb\xbf".to_vec();
        bytes.extend_from_slice(br#"{"resourceSpans":[]}"#);
        let mut source = open(io::Cursor::new(bytes), None).unwrap();
        let mut text = String::new();
        source.reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, r#"{"resourceSpans":[]}"#);
    }
}
