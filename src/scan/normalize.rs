//! Text normalization for overlap matching: NFKC, case-folded, every run of whitespace and punctuation
//! collapsed to one separator. The result is a sequence of word hashes with, for each word, its byte
//! range in the original text (the offset map) and its normalized length.
//!
//! The hot path is ASCII: a table lookup and a multiply per byte, allocation-free once the buffers have
//! grown. Words with non-ASCII characters are hashed again, whole, through NFKC and lower-casing.

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
        let n = bytes.len();
        let mut i = 0;
        while i < n {
            while i < n && bytes[i] < 0x80 && ASCII_LOWER[bytes[i] as usize] == 0 {
                i += 1;
            }
            if i >= n {
                break;
            }
            let start = i;
            let mut hash = FNV_OFFSET;
            while i < n {
                let lower = ASCII_LOWER[bytes[i] as usize];
                if lower == 0 {
                    break;
                }
                hash = (hash ^ u64::from(lower)).wrapping_mul(FNV_PRIME);
                i += 1;
            }
            if i < n && bytes[i] >= 0x80 {
                let end = word_end(text, i);
                if end > i {
                    self.push_normalized(text, start, end);
                    i = end;
                    continue;
                }
                if start == i {
                    // A non-ASCII separator (dash, quote, space): skip it.
                    i += text[i..].chars().next().map_or(1, char::len_utf8);
                    continue;
                }
            }
            self.push(hash, start, i, i - start);
        }
    }

    fn push(&mut self, hash: u64, start: usize, end: usize, len: usize) {
        self.hashes.push(mix(hash));
        self.spans.push((start as u32, end as u32));
        self.lens.push(len.min(usize::from(u16::MAX)) as u16);
    }

    /// Hashes a word holding non-ASCII characters whole through NFKC and lower-casing (composition
    /// needs the neighbouring characters); characters NFKC turns into punctuation (`½` → `1⁄2`) are
    /// dropped rather than splitting the word.
    fn push_normalized(&mut self, text: &str, start: usize, end: usize) {
        let mut hash = FNV_OFFSET;
        let mut len = 0;
        for c in text[start..end].nfkc().flat_map(char::to_lowercase) {
            if !is_word_char(c) {
                continue;
            }
            let mut buf = [0u8; 4];
            for &b in c.encode_utf8(&mut buf).as_bytes() {
                hash = (hash ^ u64::from(b)).wrapping_mul(FNV_PRIME);
            }
            len += 1;
        }
        if len > 0 {
            self.push(hash, start, end, len);
        }
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

/// The end of the word that continues at `from` (a non-ASCII byte): letters, digits and combining
/// marks of any script; `from` itself when the character there is a separator.
fn word_end(text: &str, from: usize) -> usize {
    text[from..].char_indices().find(|&(_, c)| !is_word_char(c)).map_or(text.len(), |(p, _)| from + p)
}

/// ASCII letters and digits lower-cased; 0 for every other byte (separators and non-ASCII).
static ASCII_LOWER: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 128 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() {
            table[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    table
};

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
        let words: Vec<&str> = w.spans.iter().map(|&(s, e)| &text[s as usize..e as usize]).collect();
        assert_eq!(words, vec!["Größe", "42"]);
        assert_eq!(w.lens, vec![5, 2]);
        assert_eq!(w.normalized_chars(0..2), 8);
    }
}
