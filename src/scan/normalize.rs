//! Text normalization for overlap matching: NFKC, case-folded, every run of whitespace and punctuation
//! collapsed to one separator. The result is a sequence of word hashes with, for each word, its byte
//! range in the original text (the offset map) and its normalized length.
//!
//! The hot path is ASCII and allocation-free once the buffers have grown; non-ASCII words go through
//! NFKC and lower-casing one character at a time.

use unicode_normalization::UnicodeNormalization;

/// Normalized words of one text. Reused across texts: `fill` clears it first.
#[derive(Debug, Default, Clone)]
pub struct Words {
    pub hashes: Vec<u64>,
    /// Byte range of each word in the original text.
    pub spans: Vec<(u32, u32)>,
    /// Normalized characters in each word.
    pub lens: Vec<u16>,
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

impl Words {
    pub fn clear(&mut self) {
        self.hashes.clear();
        self.spans.clear();
        self.lens.clear();
    }

    /// Replaces the content with the words of `text`.
    pub fn fill(&mut self, text: &str) {
        self.clear();
        let bytes = text.as_bytes();
        let mut i = 0;
        let mut word = WordState::default();
        while i < bytes.len() {
            let b = bytes[i];
            if b < 0x80 {
                if b.is_ascii_alphanumeric() {
                    word.begin(i);
                    word.feed_byte(b.to_ascii_lowercase());
                } else {
                    word.end_in(text, i, self);
                }
                i += 1;
                continue;
            }
            let c = text[i..].chars().next().expect("index on a char boundary");
            let width = c.len_utf8();
            if is_word_char(c) {
                word.begin(i);
                word.non_ascii = true;
            } else {
                word.end_in(text, i, self);
            }
            i += width;
        }
        word.end_in(text, bytes.len(), self);
    }

    /// Normalized characters of the words `range`, counting one separator between words.
    pub fn normalized_chars(&self, range: std::ops::Range<usize>) -> usize {
        let n = range.len();
        let letters: usize = self.lens[range].iter().map(|&l| usize::from(l)).sum();
        letters + n.saturating_sub(1)
    }
}

/// Letters, digits and combining marks belong to words; everything else separates them.
fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

fn is_combining_mark(c: char) -> bool {
    matches!(c as u32, 0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF | 0xFE20..=0xFE2F)
}

#[derive(Default)]
struct WordState {
    start: Option<usize>,
    hash: u64,
    len: u16,
    /// Set when the word holds a non-ASCII character: it is then hashed again, whole, through NFKC
    /// (composition needs the neighbouring characters).
    non_ascii: bool,
}

impl WordState {
    fn begin(&mut self, at: usize) {
        if self.start.is_none() {
            self.start = Some(at);
            self.hash = FNV_OFFSET;
            self.len = 0;
            self.non_ascii = false;
        }
    }

    #[inline]
    fn feed_byte(&mut self, b: u8) {
        self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
        self.len = self.len.saturating_add(1);
    }

    /// NFKC then lower-case; characters that NFKC turns into punctuation (`½` → `1⁄2`) are dropped
    /// rather than splitting the word.
    fn rehash_normalized(&mut self, word: &str) {
        self.hash = FNV_OFFSET;
        self.len = 0;
        for l in word.nfkc().flat_map(char::to_lowercase) {
            if !is_word_char(l) {
                continue;
            }
            let mut buf = [0u8; 4];
            for &b in l.encode_utf8(&mut buf).as_bytes() {
                self.hash = (self.hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
            self.len = self.len.saturating_add(1);
        }
    }

    fn end_in(&mut self, text: &str, at: usize, words: &mut Words) {
        let Some(start) = self.start.take() else {
            return;
        };
        if self.non_ascii {
            self.rehash_normalized(&text[start..at]);
        }
        if self.len == 0 {
            return;
        }
        words.hashes.push(mix(self.hash));
        words.spans.push((start as u32, at as u32));
        words.lens.push(self.len);
    }
}

/// Spreads FNV's bits (murmur3's finalizer) so that shingle hashes built from word hashes are uniform.
#[inline]
pub fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

#[cfg(test)]
/// The normalized form of `text` as a string (words joined by one space), for previews and tests.
pub fn normalized_string(text: &str) -> String {
    let mut words = Words::default();
    words.fill(text);
    words
        .spans
        .iter()
        .map(|&(s, e)| {
            text[s as usize..e as usize]
                .nfkc()
                .flat_map(char::to_lowercase)
                .filter(|c| is_word_char(*c))
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(text: &str) -> Vec<u64> {
        let mut w = Words::default();
        w.fill(text);
        w.hashes
    }

    #[test]
    fn case_whitespace_and_punctuation_do_not_matter() {
        assert_eq!(hashes("Hello,   World!"), hashes("hello world"));
        assert_eq!(hashes("re-send\tthe\n\nlabel"), hashes("RE SEND THE LABEL"));
        assert_ne!(hashes("hello world"), hashes("hello word"));
    }

    #[test]
    fn nfkc_folds_compatibility_forms() {
        assert_eq!(hashes("Ｏｒｄｅｒ ﬁle"), hashes("order file"));
        assert_eq!(hashes("Cafe\u{301}"), hashes("café"));
        assert_eq!(normalized_string("Ｏｒｄｅｒ  #12, ﬁle"), "order 12 file");
    }

    #[test]
    fn spans_point_into_the_original_text() {
        let text = "  Größe: 42!";
        let mut w = Words::default();
        w.fill(text);
        let words: Vec<&str> = w
            .spans
            .iter()
            .map(|&(s, e)| &text[s as usize..e as usize])
            .collect();
        assert_eq!(words, vec!["Größe", "42"]);
        assert_eq!(w.lens, vec![5, 2]);
        assert_eq!(w.normalized_chars(0..2), 8);
    }
}
