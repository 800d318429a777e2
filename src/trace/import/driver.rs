//! Runs a document walker over either layout a JSON export comes in: one (possibly huge, multi-line)
//! document, or one document per line.
//!
//! In a single document nothing after a syntax error can be trusted to be where it seems, so reading
//! stops there, keeping what came before. With one document per line, each line is scanned on its own: a
//! broken line is reported and the next line starts afresh — a broken record never swallows the lines
//! after it.

use std::collections::VecDeque;
use std::io::{self, BufRead, Cursor, Read};

use super::scan::{ScanError, Scanner};
use super::{Record, RecordError};

/// Walks a JSON document structure, queuing records (or work that yields them) as it meets them.
pub trait Walker {
    /// What the walker queues: records, or captured records for other threads to parse.
    type Item: From<Record>;
    /// Advances by one structural step. `Ok(false)` when the input is exhausted between documents.
    fn step<B: BufRead>(&mut self, scan: &mut Scanner<B>) -> Result<bool, ScanError>;
    /// Forgets any half-walked document (after an error on line-delimited input).
    fn reset(&mut self);
    /// Items queued so far.
    fn output(&mut self) -> &mut VecDeque<Self::Item>;
}

/// Longest line held in memory in line layout; beyond it the input is read as one document.
const MAX_LINE: u64 = 256 * 1024 * 1024;

enum Input<R> {
    Start(Option<R>),
    Document(Scanner<R>),
    Lines { reader: R, line: u64, scan: Option<Scanner<Cursor<Vec<u8>>>>, spare: Vec<u8> },
}

pub struct Driver<R, W> {
    input: Input<R>,
    walker: W,
    done: bool,
}

impl<R: BufRead, W: Walker> Driver<R, W> {
    pub fn new(reader: R, walker: W) -> Self {
        Driver { input: Input::Start(Some(reader)), walker, done: false }
    }

    #[cfg(test)]
    pub fn walker(&self) -> &W {
        &self.walker
    }

    #[cfg(test)]
    pub fn source_mut(&mut self) -> Option<&mut R> {
        match &mut self.input {
            Input::Start(r) => r.as_mut(),
            Input::Document(scan) => Some(scan.reader_mut()),
            Input::Lines { reader, .. } => Some(reader),
        }
    }

    fn error(&mut self, line: Option<u64>, message: String, fatal: bool) {
        self.walker.output().push_back(Record::Error(RecordError { line, message, fatal }).into());
        if fatal {
            self.done = true;
        }
    }

    fn advance(&mut self) {
        match &mut self.input {
            Input::Start(reader) => {
                let Some(mut reader) = reader.take() else {
                    self.done = true;
                    return;
                };
                self.input = match first_line_is_complete(&mut reader) {
                    Ok(true) => Input::Lines { reader, line: 0, scan: None, spare: Vec::new() },
                    Ok(false) => Input::Document(Scanner::new(reader)),
                    Err(e) => return self.error(None, format!("cannot read: {e}"), true),
                };
            }
            Input::Document(scan) => match self.walker.step(scan) {
                Ok(true) => {}
                Ok(false) => self.done = true,
                Err(e) => {
                    let message = match e {
                        ScanError::Io(_) => e.to_string(),
                        _ => format!("{e}; the records before it were read, nothing after it"),
                    };
                    self.error(e.line(), message, true)
                }
            },
            Input::Lines { reader, line, scan, spare } => {
                let Some(current) = scan.as_mut() else {
                    let mut buf = std::mem::take(spare);
                    buf.clear();
                    match reader.by_ref().take(MAX_LINE).read_until(b'\n', &mut buf) {
                        Ok(0) => self.done = true,
                        Ok(_) => {
                            *line += 1;
                            *scan = Some(Scanner::starting_at(Cursor::new(buf), *line));
                        }
                        Err(e) => {
                            let at = *line + 1;
                            self.error(Some(at), format!("cannot read: {e}"), true);
                        }
                    }
                    return;
                };
                match self.walker.step(current) {
                    Ok(true) => {}
                    Ok(false) => {
                        if let Some(finished) = scan.take() {
                            *spare = finished.into_reader().into_inner();
                        }
                    }
                    Err(e) => {
                        let at = e.line();
                        *scan = None;
                        self.walker.reset();
                        let message = match e {
                            ScanError::Eof { .. } => {
                                "the line ends in the middle of a JSON value (a truncated record?); skipped it"
                                    .to_string()
                            }
                            _ => format!("{e}; skipped the rest of this line"),
                        };
                        self.error(at, message, false);
                    }
                }
            }
        }
    }
}

impl<R: BufRead, W: Walker> Iterator for Driver<R, W> {
    type Item = W::Item;

    fn next(&mut self) -> Option<W::Item> {
        loop {
            if let Some(record) = self.walker.output().pop_front() {
                return Some(record);
            }
            if self.done {
                return None;
            }
            self.advance();
        }
    }
}

/// Whether the buffered start of the input is one complete JSON value on its own line: then the input
/// is taken as one document per line.
fn first_line_is_complete(reader: &mut impl BufRead) -> io::Result<bool> {
    let buf = reader.fill_buf()?;
    let start = buf.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(buf.len());
    let Some(end) = buf[start..].iter().position(|&b| b == b'\n') else {
        return Ok(false);
    };
    Ok(serde_json::from_slice::<serde::de::IgnoredAny>(&buf[start..start + end]).is_ok())
}
