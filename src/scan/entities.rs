//! Entity values found in the examples (emails, phone numbers, IBANs, card numbers, order ids and other
//! tokens with six or more digits, and capitalized names next to them), matched over the traces. It
//! catches what shingles miss: lightly edited examples and real values planted inside otherwise
//! synthetic text. Values match verbatim (ASCII case-insensitively) and only on word boundaries.
//!
//! The values are compiled into one aho-corasick automaton. On the trace side, where the words of every
//! text are already hashed for the shingle lookup, a value can only start at a word that is the value's
//! first word: a filtered table of first-word hashes finds those places and the automaton (anchored)
//! confirms the value there, byte for byte — no second pass over every byte.

use std::collections::HashMap;
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, Anchored, Input, MatchKind, StartKind};
use rayon::prelude::*;
use regex::Regex;

use super::normalize::Words;
use super::overlap::IdentityMap;
use super::pii::{PiiKind, find_pii};

/// How much a matched entity says about where an example came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Strength {
    /// A name: common enough to need company.
    Weak,
    /// An email, phone, IBAN, card number or long id: one person's or one order's.
    Strong,
}

/// One entity value and the examples it occurs in.
#[derive(Debug, Clone)]
pub struct EntityEntry {
    pub strength: Strength,
    pub examples: Vec<u32>,
}

/// The automaton of all entity values of all examples.
#[derive(Debug)]
pub struct EntityIndex {
    automaton: Option<AhoCorasick>,
    entries: Vec<EntityEntry>,
    /// Hashes of the values' first normalized words, with how many bytes precede that word in the value
    /// (`(415) …` starts one byte before `415`).
    first_words: IdentityMap<Vec<usize>>,
    /// One bit per first-word hash (top bits), checked before the table: most words of a trace are no
    /// value's first word, and the bits stay in cache where the table does not.
    first_word_bits: Vec<u64>,
}

/// Bits of the first-word filter (2^18 bits = 32 KiB).
const FIRST_WORD_BITS: u32 = 18;

fn first_word_bit(hash: u64) -> usize {
    (hash >> (64 - FIRST_WORD_BITS)) as usize
}

/// An entity of the index seen in a trace text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntityHit {
    pub entry: u32,
}

/// A token pattern in two builds: Unicode word boundaries for texts with non-ASCII characters, ASCII ones
/// for the rest. On ASCII text the two find the same matches, but with Unicode boundaries the regex
/// crate's DFAs stop at the first non-ASCII byte and the search falls back to a much slower engine.
struct TokenPattern {
    unicode: Regex,
    ascii: Regex,
}

impl TokenPattern {
    /// `pattern` uses `\b` only as a word boundary (never escaped, never in a class).
    fn new(pattern: &str) -> TokenPattern {
        TokenPattern {
            unicode: Regex::new(pattern).expect("valid pattern"),
            ascii: Regex::new(&pattern.replace(r"\b", r"(?-u:\b)")).expect("valid pattern"),
        }
    }

    fn find_iter<'t>(&self, text: &'t str) -> regex::Matches<'_, 't> {
        if text.is_ascii() { self.ascii.find_iter(text) } else { self.unicode.find_iter(text) }
    }
}

static LONG_ID: LazyLock<TokenPattern> =
    LazyLock::new(|| TokenPattern::new(r"\b[A-Za-z0-9][A-Za-z0-9_-]*[A-Za-z0-9]\b"));
static DATE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"^\d{4}-\d{2}-\d{2}$|^\d{2}[-/]\d{2}[-/]\d{4}$").unwrap());
static NAME: LazyLock<TokenPattern> =
    LazyLock::new(|| TokenPattern::new(r"\b[A-Z][a-z]{1,20}(?: [A-Z][a-z]{1,20}){1,2}\b"));

/// Bytes around a strong entity searched for a name.
const NAME_WINDOW: usize = 60;

/// Capitalized words that start sentences and headings, not names.
const NOT_NAME_WORDS: &[&str] = &[
    "Hi", "Hello", "Dear", "Thanks", "Thank", "Order", "Account", "Customer", "Support", "Team", "The", "My", "Our",
    "Your", "Please", "Card", "Phone", "Email", "Invoice", "Ticket", "Best", "Regards", "Kind", "Mr", "Mrs", "Ms",
    "Dr", "Refund", "Payment", "Billing", "Shipping", "Subject", "Re", "Fwd", "We", "This", "That", "It", "And", "Or",
    "If", "When", "Name", "Address", "Iban", "Ssn", "Yes", "No", "Ok", "Sorry", "Sure", "Hey",
];

/// Entity values in one example text: (value as written, strength).
pub fn extract_entities(text: &str) -> Vec<(String, Strength)> {
    let mut out: Vec<(String, Strength)> = Vec::new();
    let mut strong_spans = Vec::new();
    for m in find_pii(text) {
        if m.kind == PiiKind::Ip {
            continue;
        }
        let value = &text[m.span.clone()];
        out.push((value.to_string(), Strength::Strong));
        let compact: String = value.chars().filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')')).collect();
        if compact != value && m.kind != PiiKind::Email {
            out.push((compact, Strength::Strong));
        }
        strong_spans.push(m.span);
    }
    for m in LONG_ID.find_iter(text) {
        let token = m.as_str();
        let digits = token.bytes().filter(u8::is_ascii_digit).count();
        let inside_pii = strong_spans.iter().any(|s| s.start <= m.start() && m.end() <= s.end);
        if digits >= 6 && !DATE.is_match(token) && !inside_pii {
            out.push((token.to_string(), Strength::Strong));
            strong_spans.push(m.range());
        }
    }
    for m in NAME.find_iter(text) {
        let near_strong =
            strong_spans.iter().any(|s| m.start() < s.end + NAME_WINDOW && s.start < m.end() + NAME_WINDOW);
        let first = m.as_str().split(' ').next().unwrap_or("");
        if near_strong && !NOT_NAME_WORDS.contains(&first) {
            out.push((m.as_str().to_string(), Strength::Weak));
        }
    }
    out.sort();
    out.dedup();
    out
}

impl EntityIndex {
    /// Builds the automaton from `(example, text)` pairs.
    pub fn build<'a>(texts: impl IntoIterator<Item = (u32, &'a str)>) -> EntityIndex {
        let texts: Vec<(u32, &str)> = texts.into_iter().collect();
        // Extraction runs in parallel; the values are folded in text order, as a sequential run would.
        let extracted: Vec<(u32, Vec<(String, Strength)>)> =
            texts.par_iter().map(|&(example, text)| (example, extract_entities(text))).collect();
        let mut by_value: HashMap<String, EntityEntry> = HashMap::new();
        for (example, values) in extracted {
            for (value, strength) in values {
                let entry = by_value
                    .entry(value.to_ascii_lowercase())
                    .or_insert(EntityEntry { strength, examples: Vec::new() });
                entry.strength = entry.strength.max(strength);
                if !entry.examples.contains(&example) {
                    entry.examples.push(example);
                }
            }
        }
        let mut values: Vec<(String, EntityEntry)> = by_value.into_iter().collect();
        values.sort_by(|a, b| a.0.cmp(&b.0));
        let patterns: Vec<&str> = values.iter().map(|(v, _)| v.as_str()).collect();
        // A contiguous NFA, not a DFA: searches are short and anchored, and over a 10 MB prompt repo's
        // values the DFA took 300 MB and most of the build time without scanning traces any faster.
        let automaton = if patterns.is_empty() {
            None
        } else {
            AhoCorasickBuilder::new()
                .ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest)
                .start_kind(StartKind::Anchored)
                .kind(Some(AhoCorasickKind::ContiguousNFA))
                .build(&patterns)
                .ok()
        };
        let first_words = first_word_table(&patterns);
        let mut first_word_bits = vec![0u64; 1 << (FIRST_WORD_BITS - 6)];
        for hash in first_words.keys() {
            let bit = first_word_bit(*hash);
            first_word_bits[bit >> 6] |= 1 << (bit & 63);
        }
        EntityIndex { automaton, first_words, first_word_bits, entries: values.into_iter().map(|(_, e)| e).collect() }
    }

    pub fn entry(&self, hit: EntityHit) -> &EntityEntry {
        &self.entries[hit.entry as usize]
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Appends the entities found in `text` (on word boundaries) to `out`; `words` are the words of
    /// `text` ([`Words::fill`]).
    pub fn find(&self, text: &str, words: &Words, out: &mut Vec<EntityHit>) {
        let Some(ac) = &self.automaton else {
            return;
        };
        let bytes = text.as_bytes();
        for (hash, &(word_start, _)) in words.hashes.iter().zip(&words.spans) {
            let bit = first_word_bit(*hash);
            if self.first_word_bits[bit >> 6] & (1 << (bit & 63)) == 0 {
                continue;
            }
            let Some(leads) = self.first_words.get(hash) else {
                continue;
            };
            for &lead in leads {
                let Some(start) = (word_start as usize).checked_sub(lead) else {
                    continue;
                };
                let input = Input::new(text).range(start..).anchored(Anchored::Yes);
                let Some(m) = ac.find(input) else { continue };
                let before = start.checked_sub(1).map(|i| bytes[i]);
                let after = bytes.get(m.end()).copied();
                if before.is_some_and(is_word_byte) || after.is_some_and(is_word_byte) {
                    continue;
                }
                out.push(EntityHit { entry: m.pattern().as_u32() });
            }
        }
    }
}

/// First-word hash → the distinct byte offsets of that word within values starting with it.
fn first_word_table(patterns: &[&str]) -> IdentityMap<Vec<usize>> {
    let mut table = IdentityMap::<Vec<usize>>::default();
    let mut words = Words::default();
    for value in patterns {
        words.fill(value);
        if let (Some(&hash), Some(&(start, _))) = (words.hashes.first(), words.spans.first()) {
            let leads = table.entry(hash).or_default();
            if !leads.contains(&(start as usize)) {
                leads.push(start as usize);
            }
        }
    }
    table
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_strong_values_and_names_next_to_them() {
        let text = "Hi, this is Maria Gonzalez (maria.g@brightside-dental.com), order ORD-20931557 from 2024-05-12, call (415) 867-2671.";
        let found = extract_entities(text);
        let values: Vec<&str> = found.iter().map(|(v, _)| v.as_str()).collect();
        assert!(values.contains(&"maria.g@brightside-dental.com"), "{values:?}");
        assert!(values.contains(&"ORD-20931557"), "{values:?}");
        assert!(values.contains(&"(415) 867-2671"), "{values:?}");
        assert!(values.contains(&"4158672671"), "{values:?}");
        assert!(values.contains(&"Maria Gonzalez"), "{values:?}");
        assert!(!values.contains(&"2024-05-12"), "{values:?}");
    }

    #[test]
    fn matches_verbatim_on_word_boundaries() {
        let idx = EntityIndex::build([(0, "ref ORD-20931557 please"), (1, "email bo@acme.io now")]);
        let mut hits = Vec::new();
        let text = "status of ord-20931557? also BO@ACME.IO and XORD-20931557 or ORD-209315570";
        let mut words = Words::default();
        words.fill(text);
        idx.find(text, &words, &mut hits);
        let examples: Vec<u32> = hits.iter().map(|h| idx.entry(*h).examples[0]).collect();
        assert_eq!(examples, vec![0, 1]);
    }

    #[test]
    fn values_with_leading_punctuation_match() {
        let idx = EntityIndex::build([(3, "call (415) 867-2671 today")]);
        let text = "my number: (415) 867-2671.";
        let mut words = Words::default();
        words.fill(text);
        let mut hits = Vec::new();
        idx.find(text, &words, &mut hits);
        assert_eq!(hits.len(), 1);
        assert_eq!(idx.entry(hits[0]).examples, vec![3]);
    }
}
