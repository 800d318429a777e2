//! A pull scanner over a JSON byte stream that materializes only the values a caller asks for.
//!
//! Trace exports can be one multi-gigabyte document (`{"resourceSpans":[…]}`), so parsing the whole
//! document into memory is not an option. The importers walk the document's outer structure with this
//! scanner — keys, array elements — and hand each record (an OTLP span, a Langfuse observation) to
//! `serde_json::from_slice` as one small captured byte slice. Memory is bounded by the largest single
//! record, never by the file.
//!
//! The scanner checks what it walks: brackets must balance and match, strings must close. It does not
//! validate the inside of skipped scalars; captured values are validated by serde when parsed.

use std::io::{self, BufRead};

/// What went wrong while walking the document, at a 1-based line.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("the input ends in the middle of a JSON value that starts here (is the file truncated?)")]
    Eof { line: u64 },
    #[error("expected {expected}, found {found}")]
    Unexpected { line: u64, expected: &'static str, found: String },
    #[error("cannot read the input: {0}")]
    Io(#[from] io::Error),
}

impl ScanError {
    pub fn line(&self) -> Option<u64> {
        match self {
            ScanError::Eof { line } | ScanError::Unexpected { line, .. } => Some(*line),
            ScanError::Io(_) => None,
        }
    }
}

/// Where the scanner is: a byte reader with the 1-based line and column of the next unread byte.
pub struct Scanner<R> {
    reader: R,
    line: u64,
    consumed: u64,
    /// Bytes consumed before the current line began.
    line_start: u64,
    /// Reused bracket stack while walking a container.
    brackets: Vec<u8>,
}

impl<R: BufRead> Scanner<R> {
    pub fn new(reader: R) -> Self {
        Self::starting_at(reader, 1)
    }

    /// A scanner whose first byte is on line `line` of the file (for one line scanned on its own).
    pub fn starting_at(reader: R, line: u64) -> Self {
        Scanner { reader, line, consumed: 0, line_start: 0, brackets: Vec::new() }
    }

    pub fn into_reader(self) -> R {
        self.reader
    }

    /// The 1-based line of the next unread byte.
    pub fn line(&self) -> u64 {
        self.line
    }

    /// The 1-based byte column of the next unread byte (a minified export is one long line: a record's
    /// errors are placed by the column where it starts).
    pub fn column(&self) -> u64 {
        self.consumed - self.line_start + 1
    }

    /// Bytes consumed so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// The underlying reader, for a look at its buffer before scanning starts.
    pub fn reader_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// The next byte after whitespace, without consuming it; `None` at the end of the input.
    pub fn peek(&mut self) -> Result<Option<u8>, ScanError> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(None);
            }
            let mut skipped = 0;
            let mut newlines = 0;
            let mut found = None;
            for &b in buf {
                match b {
                    b' ' | b'\t' | b'\r' => skipped += 1,
                    b'\n' => {
                        skipped += 1;
                        newlines += 1;
                    }
                    _ => {
                        found = Some(b);
                        break;
                    }
                }
            }
            let line_begins = last_line_start(&buf[..skipped], newlines);
            self.advance(skipped, newlines, line_begins);
            if found.is_some() {
                return Ok(found);
            }
        }
    }

    /// Consumes the byte `peek` returned.
    pub fn bump(&mut self) {
        self.advance(1, 0, None);
    }

    /// Consumes `bytes` buffered bytes, `newlines` of them line breaks; `line_begins` is where the last
    /// line among them begins (just after the last break), when there is one.
    fn advance(&mut self, bytes: usize, newlines: u64, line_begins: Option<usize>) {
        if let Some(at) = line_begins {
            self.line_start = self.consumed + at as u64;
        }
        self.reader.consume(bytes);
        self.consumed += bytes as u64;
        self.line += newlines;
    }

    /// Consumes `byte` (after whitespace) or fails naming what was there instead.
    pub fn expect(&mut self, byte: u8, expected: &'static str) -> Result<(), ScanError> {
        match self.peek()? {
            Some(b) if b == byte => {
                self.bump();
                Ok(())
            }
            Some(b) => Err(self.unexpected(expected, b)),
            None => Err(ScanError::Eof { line: self.line }),
        }
    }

    pub fn unexpected(&self, expected: &'static str, found: u8) -> ScanError {
        ScanError::Unexpected { line: self.line, expected, found: describe(found) }
    }

    /// Inside an object: reads the next member's key into `key`, positioned at its value; false after the
    /// closing `}`.
    pub fn next_key(&mut self, key: &mut Vec<u8>) -> Result<bool, ScanError> {
        match self.peek()? {
            Some(b'}') => {
                self.bump();
                return Ok(false);
            }
            Some(b',') => self.bump(),
            Some(_) => {}
            None => return Err(ScanError::Eof { line: self.line }),
        }
        match self.peek()? {
            Some(b'"') => {}
            Some(b) => return Err(self.unexpected("a quoted object key", b)),
            None => return Err(ScanError::Eof { line: self.line }),
        }
        key.clear();
        self.string(Some(key))?;
        // Keep only the key's characters: drop the surrounding quotes.
        key.pop();
        key.remove(0);
        self.expect(b':', "`:` after an object key")?;
        Ok(true)
    }

    /// Inside an array: whether another element follows (positioned at it); false after the closing `]`.
    pub fn next_element(&mut self) -> Result<bool, ScanError> {
        match self.peek()? {
            Some(b']') => {
                self.bump();
                Ok(false)
            }
            Some(b',') => {
                self.bump();
                match self.peek()? {
                    Some(_) => Ok(true),
                    None => Err(ScanError::Eof { line: self.line }),
                }
            }
            Some(_) => Ok(true),
            None => Err(ScanError::Eof { line: self.line }),
        }
    }

    /// Appends the raw bytes of the next value to `out`.
    pub fn capture(&mut self, out: &mut Vec<u8>) -> Result<(), ScanError> {
        self.value(Some(out))
    }

    /// Skips the next value.
    pub fn skip(&mut self) -> Result<(), ScanError> {
        self.value(None)
    }

    /// Skips to just after the next newline (or the end), to resynchronize on line-delimited input
    /// after a broken record.
    pub fn skip_line(&mut self) -> Result<(), ScanError> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.advance(i + 1, 1, Some(i + 1));
                    return Ok(());
                }
                None => {
                    let n = buf.len();
                    self.advance(n, 0, None);
                }
            }
        }
    }

    fn value(&mut self, sink: Option<&mut Vec<u8>>) -> Result<(), ScanError> {
        match self.peek()? {
            None => Err(ScanError::Eof { line: self.line }),
            Some(b'{' | b'[') => self.container(sink),
            Some(b'"') => self.string(sink),
            Some(b'}' | b']' | b',' | b':') => {
                let b = self.peek()?.unwrap_or(b' ');
                Err(self.unexpected("a JSON value", b))
            }
            Some(_) => self.scalar(sink),
        }
    }

    /// A string including its quotes; `peek` is at the opening quote.
    fn string(&mut self, mut sink: Option<&mut Vec<u8>>) -> Result<(), ScanError> {
        let start_line = self.line;
        let mut first = true;
        let mut escaped = false;
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Err(ScanError::Eof { line: start_line });
            }
            let skip = usize::from(first);
            first = false;
            let (end, newlines) = find_string_end(&buf[skip..], &mut escaped);
            let n = end.map_or(buf.len(), |e| skip + e + 1);
            if let Some(s) = sink.as_deref_mut() {
                s.extend_from_slice(&buf[..n]);
            }
            let line_begins = last_line_start(&buf[..n], newlines);
            self.advance(n, newlines, line_begins);
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// A number, `true`, `false` or `null`: everything up to the next delimiter.
    fn scalar(&mut self, mut sink: Option<&mut Vec<u8>>) -> Result<(), ScanError> {
        loop {
            let buf = self.reader.fill_buf()?;
            if buf.is_empty() {
                return Ok(());
            }
            let end = buf.iter().position(|&b| matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n'));
            let n = end.unwrap_or(buf.len());
            if let Some(s) = sink.as_deref_mut() {
                s.extend_from_slice(&buf[..n]);
            }
            self.advance(n, 0, None);
            if end.is_some() {
                return Ok(());
            }
        }
    }

    /// An object or array with everything inside it; `peek` is at the opening bracket.
    fn container(&mut self, mut sink: Option<&mut Vec<u8>>) -> Result<(), ScanError> {
        let start_line = self.line;
        let mut brackets = std::mem::take(&mut self.brackets);
        brackets.clear();
        let mut in_string = false;
        let mut escaped = false;
        let result = loop {
            let buf = match self.reader.fill_buf() {
                Ok(buf) => buf,
                Err(e) => break Err(ScanError::Io(e)),
            };
            if buf.is_empty() {
                break Err(ScanError::Eof { line: start_line });
            }
            let mut i = 0;
            let mut newlines = 0;
            let mut outcome: Option<Result<(), (u64, &'static str, u8)>> = None;
            while i < buf.len() {
                if in_string {
                    let (end, nl) = find_string_end(&buf[i..], &mut escaped);
                    newlines += nl;
                    match end {
                        Some(e) => {
                            i += e + 1;
                            in_string = false;
                            continue;
                        }
                        None => {
                            i = buf.len();
                            break;
                        }
                    }
                }
                let b = buf[i];
                i += 1;
                match b {
                    b'"' => in_string = true,
                    b'{' => brackets.push(b'}'),
                    b'[' => brackets.push(b']'),
                    b'}' | b']' => match brackets.pop() {
                        Some(close) if close == b => {
                            if brackets.is_empty() {
                                outcome = Some(Ok(()));
                                break;
                            }
                        }
                        Some(close) => {
                            let expected = if close == b'}' { "`}` closing an object" } else { "`]` closing an array" };
                            outcome = Some(Err((newlines, expected, b)));
                            break;
                        }
                        None => {
                            outcome = Some(Err((newlines, "a JSON value", b)));
                            break;
                        }
                    },
                    b'\n' => newlines += 1,
                    _ => {}
                }
            }
            if let Some(s) = sink.as_deref_mut() {
                s.extend_from_slice(&buf[..i]);
            }
            let line_begins = last_line_start(&buf[..i], newlines);
            match outcome {
                Some(Ok(())) => {
                    self.advance(i, newlines, line_begins);
                    break Ok(());
                }
                Some(Err((nl, expected, found))) => {
                    let line = self.line + nl;
                    self.advance(i, newlines, line_begins);
                    break Err(ScanError::Unexpected { line, expected, found: describe(found) });
                }
                None => self.advance(i, newlines, line_begins),
            }
        };
        self.brackets = brackets;
        result
    }
}

/// Where the last line in `consumed` begins (just after its last line break), given how many breaks it
/// has: without one there is nothing to search.
fn last_line_start(consumed: &[u8], newlines: u64) -> Option<usize> {
    if newlines == 0 {
        return None;
    }
    memchr::memrchr(b'\n', consumed).map(|i| i + 1)
}

/// Finds the closing quote of a string whose opening quote is already consumed. Returns its index in
/// `bytes` (if present) and the newlines before it; `escaped` carries a trailing backslash across calls.
fn find_string_end(bytes: &[u8], escaped: &mut bool) -> (Option<usize>, u64) {
    let mut i = 0;
    let mut newlines = 0;
    if *escaped && !bytes.is_empty() {
        *escaped = false;
        i = 1;
    }
    while i < bytes.len() {
        match memchr::memchr3(b'"', b'\\', b'\n', &bytes[i..]) {
            None => return (None, newlines),
            Some(offset) => {
                let at = i + offset;
                match bytes[at] {
                    b'"' => return (Some(at), newlines),
                    b'\n' => {
                        // Raw newlines are invalid inside JSON strings; serde reports them when the value is
                        // parsed. Count them so that line numbers stay right.
                        newlines += 1;
                        i = at + 1;
                    }
                    _ => {
                        if at + 1 >= bytes.len() {
                            *escaped = true;
                            return (None, newlines);
                        }
                        i = at + 2;
                    }
                }
            }
        }
    }
    (None, newlines)
}

/// A byte as a person would read it in an error message.
pub fn describe(b: u8) -> String {
    match b {
        b'{' => "an object".into(),
        b'[' => "an array".into(),
        b'"' => "a string".into(),
        b't' | b'f' => "a boolean".into(),
        b'n' => "null".into(),
        b'-' | b'0'..=b'9' => "a number".into(),
        b if b.is_ascii_graphic() => format!("`{}`", b as char),
        b => format!("byte 0x{b:02x}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scanner(text: &str) -> Scanner<io::BufReader<&[u8]>> {
        // A tiny buffer makes every value cross buffer boundaries.
        Scanner::new(io::BufReader::with_capacity(3, text.as_bytes()))
    }

    #[test]
    fn captures_values_across_buffer_boundaries() {
        let text = r#" {"a": [1, {"b": "x}\"]"}], "c": -1.5e3 , "d": "q\\"} "#;
        let mut s = scanner(text);
        s.expect(b'{', "{").unwrap();
        let mut key = Vec::new();
        let mut values = Vec::new();
        while s.next_key(&mut key).unwrap() {
            let mut v = Vec::new();
            s.capture(&mut v).unwrap();
            values.push((String::from_utf8(key.clone()).unwrap(), String::from_utf8(v).unwrap()));
        }
        assert_eq!(
            values,
            [
                ("a".to_string(), r#"[1, {"b": "x}\"]"}]"#.to_string()),
                ("c".to_string(), "-1.5e3".to_string()),
                ("d".to_string(), r#""q\\""#.to_string())
            ]
        );
        assert_eq!(s.peek().unwrap(), None);
    }

    #[test]
    fn counts_lines_through_skipped_values() {
        let mut s = scanner("[\n{\"a\":\n\"x\\ny\"},\n\n7]");
        s.expect(b'[', "[").unwrap();
        assert!(s.next_element().unwrap());
        s.skip().unwrap();
        assert_eq!(s.line(), 3);
        assert!(s.next_element().unwrap());
        assert_eq!(s.line(), 5);
        s.skip().unwrap();
        assert!(!s.next_element().unwrap());
    }

    #[test]
    fn knows_the_column_of_each_value_across_lines_and_buffers() {
        let text = "[1, \"a\\nb\",\n  {\"k\": [\n2]},   \"z\"]";
        let mut s = scanner(text);
        s.expect(b'[', "[").unwrap();
        let mut columns = Vec::new();
        while s.next_element().unwrap() {
            columns.push((s.line(), s.column()));
            s.skip().unwrap();
        }
        assert_eq!(columns, [(1, 2), (1, 5), (2, 3), (3, 8)]);
        // A skipped line starts the count again.
        let mut s = scanner("{\"a\": tru\n  7");
        s.skip_line().unwrap();
        assert_eq!((s.line(), s.column()), (2, 1));
        s.peek().unwrap();
        assert_eq!(s.column(), 3);
    }

    #[test]
    fn a_truncated_document_is_an_eof_error_at_the_value_start() {
        let mut s = scanner("{\"a\":\n[1,2,\n{\"b\":");
        s.expect(b'{', "{").unwrap();
        let mut key = Vec::new();
        s.next_key(&mut key).unwrap();
        let err = s.skip().unwrap_err();
        assert!(matches!(err, ScanError::Eof { line: 2 }), "{err}");
    }

    #[test]
    fn mismatched_brackets_are_reported_where_they_are() {
        let mut s = scanner("[1,\n{\"a\": 2]\n}");
        let err = s.skip().unwrap_err();
        assert_eq!(err.line(), Some(2));
        assert!(err.to_string().contains("`}` closing an object"), "{err}");
    }

    #[test]
    fn skip_line_resynchronizes_after_a_broken_record() {
        let mut s = scanner("{\"a\": tru\n{\"b\": 1}\n");
        s.skip_line().unwrap();
        assert_eq!(s.line(), 2);
        let mut v = Vec::new();
        s.capture(&mut v).unwrap();
        assert_eq!(v, b"{\"b\": 1}");
    }
}
