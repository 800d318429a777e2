//! Content loops: a model that keeps emitting the same words.
//!
//! Two signals. A *repeated n-gram run*: walking the streamed words, the longest stretch where every
//! n-gram has already occurred earlier in the same response. Ordinary prose repeats a phrase now and
//! then (a run about as long as the phrase); a loop repeats a whole passage again and again, and the run
//! covers every repetition after the first. *Identical chunks*: the same non-empty chunk text many times
//! in a row (a tokenizer-level stutter that may not form words).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Keys are already hashes; hashing them again would only cost time.
#[derive(Default)]
struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ *b as u64;
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

/// A detected loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoopFinding {
    /// `words` words (after the first occurrence) repeat what came before, with this period in words.
    Ngrams { words: usize, period: usize, sample: String },
    /// The same chunk text `count` times in a row.
    Chunks { count: usize, text: String },
}

/// Reusable buffers for detecting loops in many responses.
#[derive(Default)]
pub struct LoopDetector {
    words: Vec<(u32, u32)>,
    hashes: Vec<u64>,
    first_seen: HashMap<u64, u32, BuildHasherDefault<PassThrough>>,
}

impl LoopDetector {
    /// Looks for a repeated n-gram run covering at least `min_words` words in `text`.
    pub fn ngram_loop(&mut self, text: &str, n: usize, min_words: usize) -> Option<LoopFinding> {
        self.split_words(text);
        let n = n.max(1);
        if self.words.len() < n + min_words {
            return None;
        }
        self.first_seen.clear();
        let (mut run, mut best) = (0usize, (0usize, 0usize, 0usize)); // (run, end position, period)
        let mut run_period = 0;
        for i in 0..=self.hashes.len() - n {
            let gram = self.hashes[i..i + n]
                .iter()
                .fold(0xcbf2_9ce4_8422_2325u64, |h, w| (h ^ w).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(5));
            match self.first_seen.get(&gram) {
                Some(&first) => {
                    if run == 0 {
                        run_period = i - first as usize;
                    }
                    run += 1;
                    if run > best.0 {
                        best = (run, i, run_period);
                    }
                }
                None => {
                    run = 0;
                    self.first_seen.insert(gram, i as u32);
                }
            }
        }
        let covered = if best.0 == 0 { 0 } else { best.0 + n - 1 };
        if covered < min_words {
            return None;
        }
        let (run, end, period) = best;
        let start = end + 1 - run;
        let sample_words = period.clamp(1, 16);
        let sample = self.words[start..(start + sample_words).min(self.words.len())]
            .iter()
            .map(|&(a, b)| &text[a as usize..b as usize])
            .collect::<Vec<_>>()
            .join(" ");
        Some(LoopFinding::Ngrams { words: covered, period, sample })
    }

    fn split_words(&mut self, text: &str) {
        self.words.clear();
        self.hashes.clear();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            let start = i;
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                hash = (hash ^ bytes[i].to_ascii_lowercase() as u64).wrapping_mul(0x0000_0100_0000_01b3);
                i += 1;
            }
            if i > start {
                self.words.push((start as u32, i as u32));
                self.hashes.push(hash);
            }
        }
    }
}

/// The longest run of identical consecutive chunk texts that contain a letter or digit, if at least
/// `min_count` long.
pub fn repeated_chunks<'t>(texts: impl Iterator<Item = Option<&'t str>>, min_count: usize) -> Option<LoopFinding> {
    let mut best: Option<(usize, &str)> = None;
    let mut current: Option<(usize, &str)> = None;
    for text in texts {
        let text = text.map(str::trim).filter(|t| t.chars().any(char::is_alphanumeric));
        current = match (current, text) {
            (Some((count, prev)), Some(t)) if prev == t => Some((count + 1, prev)),
            (_, Some(t)) => Some((1, t)),
            (_, None) => None,
        };
        if let Some((count, t)) = current
            && best.is_none_or(|(b, _)| count > b)
        {
            best = Some((count, t));
        }
    }
    best.filter(|(count, _)| *count >= min_count)
        .map(|(count, text)| LoopFinding::Chunks { count, text: text.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROSE: &str = "Thanks for reaching out about order 4411. I am sorry the blender arrived with a cracked \
        jar. I have started a replacement, which ships within two business days, and you will get a tracking \
        link by email. You do not need to return the damaged jar. If the replacement does not arrive by Friday, \
        reply to this message and I will escalate it. Thanks for reaching out, and sorry again for the trouble.";

    #[test]
    fn ordinary_prose_with_a_repeated_phrase_is_not_a_loop() {
        let mut d = LoopDetector::default();
        assert_eq!(d.ngram_loop(PROSE, 5, 40), None);
        let twice = format!("{PROSE} {PROSE}");
        // The whole reply said twice is a loop: the second copy repeats about 75 words.
        assert!(matches!(d.ngram_loop(&twice, 5, 40), Some(LoopFinding::Ngrams { .. })));
    }

    #[test]
    fn a_phrase_repeated_many_times_is_a_loop_with_its_period() {
        let mut text = PROSE.to_string();
        for _ in 0..8 {
            text.push_str(" I will escalate it to the shipping team now.");
        }
        let mut d = LoopDetector::default();
        match d.ngram_loop(&text, 5, 40) {
            Some(LoopFinding::Ngrams { words, period, sample }) => {
                assert_eq!(period, 9);
                assert!(words >= 60, "{words}");
                assert!(sample.contains("escalate"), "{sample}");
            }
            other => panic!("{other:?}"),
        }
        let stutter = "the ".repeat(60);
        assert!(matches!(d.ngram_loop(&stutter, 5, 40), Some(LoopFinding::Ngrams { period: 1, .. })));
    }

    #[test]
    fn identical_chunks_in_a_row() {
        let chunks = ["Hello", " there", "!!", "!!", "!!"];
        assert_eq!(repeated_chunks(chunks.iter().map(|c| Some(*c)), 3), None, "punctuation is not a loop");
        let mut chunks = vec![Some("Sure")];
        chunks.extend(std::iter::repeat_n(Some(" sorry,"), 14));
        assert_eq!(
            repeated_chunks(chunks.into_iter(), 12),
            Some(LoopFinding::Chunks { count: 14, text: "sorry,".into() })
        );
    }
}
