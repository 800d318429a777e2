//! A strict server-sent-events decoder (the `text/event-stream` framing both vendors use).
//!
//! Strict on purpose: a line that is not an SSE field means the server is not speaking SSE, and saying
//! so beats silently dropping the line and reporting a "truncated" stream.

/// One dispatched event: the `event:` name, if any, and the `data:` lines joined by `\n`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    #[error("line {line} of the event stream is not valid UTF-8")]
    NotUtf8 { line: usize },
    #[error("line {line} of the event stream is not an SSE field: {excerpt:?}")]
    NotAField { line: usize, excerpt: String },
    #[error("a line of the event stream exceeds {limit} bytes")]
    LineTooLong { limit: usize },
}

/// Incremental decoder: feed it bytes as they arrive, collect events as they complete.
#[derive(Debug, Default)]
pub struct SseDecoder {
    pending: Vec<u8>,
    line: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
}

const MAX_LINE: usize = 16 * 1024 * 1024;

impl SseDecoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes the complete lines in `bytes` (plus what was pending), appending finished events.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        // Only an incomplete last line is copied; complete lines are decoded in place.
        if self.pending.is_empty() {
            let consumed = self.take_lines(bytes, out)?;
            self.pending.extend_from_slice(&bytes[consumed..]);
        } else {
            let mut buffer = std::mem::take(&mut self.pending);
            buffer.extend_from_slice(bytes);
            let consumed = self.take_lines(&buffer, out)?;
            buffer.drain(..consumed);
            self.pending = buffer;
        }
        if self.pending.len() > MAX_LINE {
            return Err(SseError::LineTooLong { limit: MAX_LINE });
        }
        Ok(())
    }

    /// Decodes every complete line of `bytes`; returns how many bytes that consumed.
    fn take_lines(&mut self, bytes: &[u8], out: &mut Vec<SseEvent>) -> Result<usize, SseError> {
        let mut consumed = 0;
        while let Some(offset) = find_newline(&bytes[consumed..]) {
            let end = consumed + offset;
            self.take_line(&bytes[consumed..end], out)?;
            consumed = end + 1;
        }
        Ok(consumed)
    }

    /// At end of input: a last line without a newline, and an event without its blank line, still count
    /// (some servers close right after `data: [DONE]`).
    pub fn finish(&mut self, out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.take_line(&line, out)?;
        }
        self.dispatch(out);
        Ok(())
    }

    fn take_line(&mut self, raw: &[u8], out: &mut Vec<SseEvent>) -> Result<(), SseError> {
        self.line += 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let line = std::str::from_utf8(raw).map_err(|_| SseError::NotUtf8 { line: self.line })?;
        if line.is_empty() {
            self.dispatch(out);
            return Ok(());
        }
        if line.starts_with(':') {
            return Ok(());
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" | "retry" => {}
            _ => {
                return Err(SseError::NotAField { line: self.line, excerpt: line.chars().take(80).collect() });
            }
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        if self.has_data {
            out.push(SseEvent { event: self.event.take(), data: std::mem::take(&mut self.data) });
        }
        self.event = None;
        self.has_data = false;
    }
}

fn find_newline(bytes: &[u8]) -> Option<usize> {
    bytes.iter().position(|&b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_pieces(text: &str, piece: usize) -> Result<Vec<SseEvent>, SseError> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for chunk in text.as_bytes().chunks(piece) {
            decoder.push(chunk, &mut out)?;
        }
        decoder.finish(&mut out)?;
        Ok(out)
    }

    #[test]
    fn events_split_across_reads_reassemble() {
        let text = "event: message_start\ndata: {\"a\":1}\n\n: keep-alive\r\ndata: x\r\ndata: y\r\n\r\ndata: [DONE]";
        for piece in [1, 3, 7, 1000] {
            let events = decode_in_pieces(text, piece).unwrap();
            assert_eq!(events.len(), 3, "piece {piece}");
            assert_eq!(events[0].event.as_deref(), Some("message_start"));
            assert_eq!(events[0].data, "{\"a\":1}");
            assert_eq!(events[1].data, "x\ny");
            assert_eq!(events[1].event, None);
            assert_eq!(events[2].data, "[DONE]");
        }
    }

    #[test]
    fn non_sse_lines_are_errors_with_their_line_number() {
        let err = decode_in_pieces("data: 1\n\n<html>oops</html>\n", 4).unwrap_err();
        assert_eq!(err, SseError::NotAField { line: 3, excerpt: "<html>oops</html>".into() });
    }
}
