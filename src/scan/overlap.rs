//! Word-shingle index of the few-shot examples and the trace-side lookup: every window of `k`
//! normalized words of an example is hashed into a read-only table; a trace text is hashed the same
//! way, each window looked up, and every hit extended word by word to the maximal common run.
//!
//! Memory is bounded by the prompt side: the table holds the examples, the trace side only reusable
//! buffers.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::ops::Range;

use super::normalize::Words;

/// Multiplier of the polynomial rolling hash over word hashes.
const BASE: u64 = 0x9E37_79B9_7F4A_7C15;
/// Bits of the membership filter checked before the table (2^20 bits = 128 KiB, stays in cache).
const FILTER_BITS: u32 = 20;

/// Word hashes are already uniform; hashing them again would only cost time.
#[derive(Default)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub type IdentityMap<V> = HashMap<u64, V, BuildHasherDefault<IdentityHasher>>;

/// One indexed example field.
#[derive(Debug, Clone)]
pub struct IndexedText {
    /// Index of the example (scan-wide numbering).
    pub example: u32,
    pub words: Words,
}

/// A maximal run of words shared by a trace text and an example field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunHit {
    /// Index into [`ShingleIndex::texts`].
    pub text: u32,
    pub trace_words: Range<usize>,
    pub example_words: Range<usize>,
}

/// Thresholds for reporting a run.
#[derive(Debug, Clone, Copy)]
pub struct RunThresholds {
    pub min_words: usize,
    pub min_chars: usize,
}

/// Per-thread scratch space for [`ShingleIndex::find_runs`].
#[derive(Debug, Default)]
pub struct RunScratch {
    /// Runs already found in the current text: (text, diagonal, end in trace words).
    active: Vec<(u32, i64, usize)>,
    /// Windows whose filter bit is set: (position, hash).
    candidates: Vec<(usize, u64)>,
}

/// The read-only shingle table, shared by all trace-scanning threads.
#[derive(Debug)]
pub struct ShingleIndex {
    k: usize,
    pow: u64,
    texts: Vec<IndexedText>,
    table: IdentityMap<(u32, u32)>,
    postings: Vec<(u32, u32)>,
    filter: Vec<u64>,
}

impl ShingleIndex {
    /// Indexes `texts` with windows of `k` words; windows shared by more than `max_postings` places
    /// (stock phrasing repeated across the examples) are not used as seeds.
    pub fn build(texts: Vec<IndexedText>, k: usize, max_postings: usize) -> ShingleIndex {
        let k = k.max(1);
        let pow = (1..k).fold(1u64, |p, _| p.wrapping_mul(BASE));
        let mut entries: Vec<(u64, u32, u32)> = Vec::new();
        for (t, text) in texts.iter().enumerate() {
            for_each_shingle(&text.words.hashes, k, pow, |pos, h| {
                entries.push((h, t as u32, pos as u32));
            });
        }
        entries.sort_unstable();
        entries.dedup();
        let mut table = IdentityMap::default();
        let mut postings = Vec::with_capacity(entries.len());
        let mut filter = vec![0u64; 1 << (FILTER_BITS - 6)];
        for group in entries.chunk_by(|a, b| a.0 == b.0) {
            if group.len() > max_postings {
                continue;
            }
            let start = postings.len() as u32;
            postings.extend(group.iter().map(|&(_, t, p)| (t, p)));
            table.insert(group[0].0, (start, group.len() as u32));
            let bit = filter_bit(group[0].0);
            filter[bit >> 6] |= 1 << (bit & 63);
        }
        ShingleIndex { k, pow, texts, table, postings, filter }
    }

    pub fn texts(&self) -> &[IndexedText] {
        &self.texts
    }

    /// Distinct shingles in the table.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Appends to `out` every maximal run shared by `words` and an example that meets `thresholds`.
    pub fn find_runs(&self, words: &Words, thresholds: RunThresholds, scratch: &mut RunScratch, out: &mut Vec<RunHit>) {
        scratch.active.clear();
        let hashes = &words.hashes;
        if hashes.len() < self.k || self.table.is_empty() {
            return;
        }
        // The filter is checked for every window first, without a branch (each window is written and
        // kept only when its bit is set): the filter loads of many windows are then in flight at once,
        // instead of each waiting behind an unpredictable branch. Windows are then taken in order.
        let mut candidates = std::mem::take(&mut scratch.candidates);
        candidates.resize(hashes.len() - self.k + 1, (0, 0));
        let mut kept = 0;
        for_each_shingle(hashes, self.k, self.pow, |i, h| {
            let bit = filter_bit(h);
            candidates[kept] = (i, h);
            kept += ((self.filter[bit >> 6] >> (bit & 63)) & 1) as usize;
        });
        for &(i, h) in &candidates[..kept] {
            let Some(&(start, len)) = self.table.get(&h) else {
                continue;
            };
            for &(text, pos) in &self.postings[start as usize..(start + len) as usize] {
                self.extend_seed(words, i, text, pos as usize, thresholds, scratch, out);
            }
        }
        scratch.candidates = candidates;
    }

    #[allow(clippy::too_many_arguments)]
    fn extend_seed(
        &self,
        words: &Words,
        i: usize,
        text: u32,
        pos: usize,
        thresholds: RunThresholds,
        scratch: &mut RunScratch,
        out: &mut Vec<RunHit>,
    ) {
        let diagonal = i as i64 - pos as i64;
        let covered = scratch.active.iter().any(|&(t, d, end)| t == text && d == diagonal && i < end);
        if covered {
            return;
        }
        let trace = &words.hashes;
        let example = &self.texts[text as usize].words.hashes;
        // A table hit may be a hash collision: confirm the window word by word.
        if trace[i..i + self.k] != example[pos..pos + self.k] {
            return;
        }
        let (mut ts, mut es) = (i, pos);
        while ts > 0 && es > 0 && trace[ts - 1] == example[es - 1] {
            ts -= 1;
            es -= 1;
        }
        let (mut te, mut ee) = (i + self.k, pos + self.k);
        while te < trace.len() && ee < example.len() && trace[te] == example[ee] {
            te += 1;
            ee += 1;
        }
        scratch.active.push((text, diagonal, te));
        let long_enough = te - ts >= thresholds.min_words || words.normalized_chars(ts..te) >= thresholds.min_chars;
        if long_enough {
            out.push(RunHit { text, trace_words: ts..te, example_words: es..ee });
        }
    }
}

#[inline]
fn filter_bit(h: u64) -> usize {
    (h >> (64 - FILTER_BITS)) as usize
}

/// Calls `f(position, hash)` for every window of `k` words, with a rolling polynomial hash.
#[inline]
fn for_each_shingle(hashes: &[u64], k: usize, pow: u64, mut f: impl FnMut(usize, u64)) {
    if hashes.len() < k {
        return;
    }
    let mut h = hashes[..k].iter().fold(0u64, |acc, &w| acc.wrapping_mul(BASE).wrapping_add(w));
    f(0, h);
    for i in 1..=hashes.len() - k {
        h = h.wrapping_sub(hashes[i - 1].wrapping_mul(pow)).wrapping_mul(BASE).wrapping_add(hashes[i + k - 1]);
        f(i, h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Words {
        let mut w = Words::default();
        w.fill(text);
        w
    }

    fn index(examples: &[&str]) -> ShingleIndex {
        let texts =
            examples.iter().enumerate().map(|(i, t)| IndexedText { example: i as u32, words: words(t) }).collect();
        ShingleIndex::build(texts, 6, 64)
    }

    const T: RunThresholds = RunThresholds { min_words: 13, min_chars: 50 };

    #[test]
    fn finds_the_maximal_run_through_formatting_changes() {
        let ex = "Hi, I'm Dana from Brightside Dental; our invoice INV-20931 was charged twice on the card ending 7781, please refund.";
        let idx = index(&[ex, "something else entirely with many words in it for sure"]);
        let trace = words(
            "FWD: hi i'm dana from BRIGHTSIDE dental -- our invoice inv 20931 was charged twice on the card ending 7781 please refund. thanks",
        );
        let mut out = Vec::new();
        idx.find_runs(&trace, T, &mut RunScratch::default(), &mut out);
        assert_eq!(out.len(), 1, "{out:?}");
        let hit = &out[0];
        assert_eq!(hit.text, 0);
        assert_eq!(hit.example_words, 0..idx.texts()[0].words.hashes.len());
        assert_eq!(hit.trace_words.len(), hit.example_words.len());
    }

    #[test]
    fn short_common_runs_are_not_reported() {
        let idx = index(&["thank you for contacting us today, we will look into it"]);
        let trace = words("Thank you for contacting us today. Bye.");
        let mut out = Vec::new();
        idx.find_runs(&trace, T, &mut RunScratch::default(), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn long_words_pass_the_character_threshold() {
        let idx = index(&["reimbursement authorization documentation requested immediately internationally somewhere"]);
        let trace = words("x reimbursement authorization documentation requested immediately internationally y");
        let mut out = Vec::new();
        idx.find_runs(&trace, T, &mut RunScratch::default(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].trace_words, 1..7);
    }
}
