//! tiktoken's pre-tokenizers, hand-compiled: the split of text into the pieces that byte-pair encoding
//! sees, exactly as tiktoken-rs's fancy-regex patterns split it.
//!
//! Why not a regex: the patterns need Unicode letter, mark and number classes, and compiling them (with
//! `regex` or `regex-automata`) takes ~20 ms per process; the `\s+(?!\S)` look-ahead also needs a
//! backtracking engine. Each function below follows its pattern's alternatives in order, with the
//! backtracking of greedy and possessive quantifiers worked out by hand (the comments give the reasoning),
//! over a generated table of the same Unicode classes (`unicode_table.rs`). Tests compare the pieces
//! with fancy-regex's on a corpus and on random strings.

use super::unicode_table::{CATS, STARTS};

/// The Unicode classes the patterns name. General categories partition the code points, and
/// White_Space (`\s`) only holds separators and controls, so one category per code point suffices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Cat {
    Other,
    /// `\p{Lu}` or `\p{Lt}`.
    Upper,
    /// `\p{Ll}`.
    Lower,
    /// `\p{Lm}` or `\p{Lo}`.
    Letter,
    /// `\p{M}`.
    Mark,
    /// `\p{N}`.
    Number,
    /// `\s`.
    Space,
}

const fn lookup(c: u32) -> Cat {
    // Binary search for the last range starting at or before `c` (STARTS[0] == 0).
    let (mut lo, mut hi) = (0, STARTS.len());
    while hi - lo > 1 {
        let mid = (lo + hi) / 2;
        if STARTS[mid] <= c {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    CATS[lo]
}

/// ASCII is most text; a direct table saves the search.
static ASCII: [Cat; 128] = {
    let mut table = [Cat::Other; 128];
    let mut c = 0;
    while c < 128 {
        table[c] = lookup(c as u32);
        c += 1;
    }
    table
};

#[inline]
pub(super) fn category(c: char) -> Cat {
    match ASCII.get(c as usize) {
        Some(&cat) => cat,
        None => lookup(c as u32),
    }
}

#[inline]
fn letter(c: char) -> bool {
    matches!(category(c), Cat::Upper | Cat::Lower | Cat::Letter)
}

#[inline]
fn number(c: char) -> bool {
    category(c) == Cat::Number
}

#[inline]
fn space(c: char) -> bool {
    category(c) == Cat::Space
}

/// `[^\r\n\p{L}\p{N}]`: the optional character before a word.
#[inline]
fn before_word(c: char) -> bool {
    c != '\r' && c != '\n' && !matches!(category(c), Cat::Upper | Cat::Lower | Cat::Letter | Cat::Number)
}

/// `[^\s\p{L}\p{N}]`: punctuation, symbols, marks, controls.
#[inline]
fn symbol(c: char) -> bool {
    !matches!(category(c), Cat::Upper | Cat::Lower | Cat::Letter | Cat::Number | Cat::Space)
}

/// o200k's `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]`.
#[inline]
fn upperish(cat: Cat) -> bool {
    matches!(cat, Cat::Upper | Cat::Letter | Cat::Mark)
}

/// o200k's `[\p{Ll}\p{Lm}\p{Lo}\p{M}]`.
#[inline]
fn lowerish(cat: Cat) -> bool {
    matches!(cat, Cat::Lower | Cat::Letter | Cat::Mark)
}

#[inline]
fn lowerish_char(c: char) -> bool {
    lowerish(category(c))
}

#[inline]
fn char_at(s: &str, i: usize) -> Option<char> {
    s[i..].chars().next()
}

/// The end of the longest run of characters from `i` that satisfy `pred`.
#[inline]
fn run(s: &str, i: usize, pred: impl Fn(char) -> bool) -> usize {
    let mut end = i;
    for c in s[i..].chars() {
        if !pred(c) {
            break;
        }
        end += c.len_utf8();
    }
    end
}

/// The end of at most three `\p{N}` from `i`.
fn up_to_three_numbers(s: &str, i: usize) -> usize {
    let mut end = i;
    for c in s[i..].chars().take(3) {
        if !number(c) {
            break;
        }
        end += c.len_utf8();
    }
    end
}

/// Case-insensitive comparison as the regex crate folds: `s` also matches U+017F LONG S; no other
/// letter of the contractions has a non-ASCII case variant (a test checks this against regex-syntax).
#[inline]
fn folded(c: char) -> char {
    if c == 'ſ' { 's' } else { c.to_ascii_lowercase() }
}

/// `'(?i:[sdmt]|ll|ve|re)`, which is also o200k's `(?i:'s|'t|'re|'ve|'m|'ll|'d)`: the end of the match.
fn contraction(s: &str, i: usize) -> Option<usize> {
    let rest = s[i..].strip_prefix('\'')?;
    let c1 = rest.chars().next()?;
    let after1 = i + 1 + c1.len_utf8();
    // The second letters (e, l) fold only from ASCII, so they are one byte.
    let second = |want: char| char_at(s, after1).is_some_and(|c| folded(c) == want).then_some(after1 + 1);
    match folded(c1) {
        's' | 'd' | 'm' | 't' => Some(after1),
        'l' => second('l'),
        'v' | 'r' => second('e'),
        _ => None,
    }
}

/// The whitespace run from `i`: its end, the start of its last character, its length in characters and
/// the end of its last `\r` or `\n`.
struct SpaceRun {
    end: usize,
    last_start: usize,
    chars: usize,
    last_newline_end: Option<usize>,
}

fn space_run(s: &str, i: usize) -> SpaceRun {
    let mut r = SpaceRun { end: i, last_start: i, chars: 0, last_newline_end: None };
    for c in s[i..].chars() {
        if !space(c) {
            break;
        }
        r.last_start = r.end;
        r.end += c.len_utf8();
        r.chars += 1;
        if c == '\r' || c == '\n' {
            r.last_newline_end = Some(r.end);
        }
    }
    r
}

/// The end of the piece that starts at `pos` under o200k_base's pattern:
///
/// ```text
/// [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
/// |[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
/// |\p{N}{1,3}
/// | ?[^\s\p{L}\p{N}]+[\r\n/]*
/// |\s*[\r\n]+
/// |\s+(?!\S)
/// |\s+
/// ```
///
/// `None` only where no alternative matches, which no character allows (every character is a letter,
/// mark, number, space or symbol), but the caller copes as tiktoken's `find_iter` would.
pub(super) fn o200k_piece(s: &str, pos: usize) -> Option<usize> {
    let c0 = char_at(s, pos)?;
    let after0 = pos + c0.len_utf8();
    // The optional leading character is tried taken first (greedy `?`), then not taken.
    let starts = if before_word(c0) { [Some(after0), Some(pos)] } else { [Some(pos), None] };
    let suffix = |end: usize| contraction(s, end).unwrap_or(end);

    // Alternative 1: `U*` takes the longest run of upperish characters; `L+` must then match at least
    // one lowerish character. If the character after the run is lowerish, `L+` takes the lowerish run
    // from there. Otherwise `U*` gives back characters one at a time until `L+` can start, which is at
    // the run's last character that is also lowerish (Lm, Lo, M are in both classes); `L+` then ends
    // right after it, since nothing after it in the run is lowerish. The contraction is optional and
    // greedy and ends the pattern, so it never forces backtracking.
    for start in starts.into_iter().flatten() {
        let mut run_end = start;
        let mut last_lowerish_end = None;
        let mut next_is_lowerish = false;
        for c in s[start..].chars() {
            let cat = category(c);
            if !upperish(cat) {
                next_is_lowerish = lowerish(cat);
                break;
            }
            run_end += c.len_utf8();
            if lowerish(cat) {
                last_lowerish_end = Some(run_end);
            }
        }
        if next_is_lowerish {
            return Some(suffix(run(s, run_end, lowerish_char)));
        }
        if let Some(end) = last_lowerish_end {
            return Some(suffix(end));
        }
    }
    // Alternative 2: at least one upperish, then any lowerish, then the optional contraction; nothing
    // after `U+` can fail, so it keeps its longest run.
    for start in starts.into_iter().flatten() {
        let run_end = run(s, start, |c| upperish(category(c)));
        if run_end > start {
            return Some(suffix(run(s, run_end, lowerish_char)));
        }
    }
    // Alternative 3.
    if number(c0) {
        return Some(up_to_three_numbers(s, pos));
    }
    // Alternative 4: with the space only if a symbol follows it (else ` ?` matches empty and the space
    // is not a symbol). `/` is a symbol, so the symbol run takes it before `[\r\n/]*` does.
    let symbols_from =
        if c0 == ' ' && char_at(s, after0).is_some_and(symbol) { Some(after0) } else { symbol(c0).then_some(pos) };
    if let Some(from) = symbols_from {
        let end = run(s, from, symbol);
        return Some(run(s, end, |c| matches!(c, '\r' | '\n' | '/')));
    }
    if space(c0) {
        let r = space_run(s, pos);
        // Alternative 5: `\s*` gives back from the end of the run until `[\r\n]+` matches, which is at
        // the run's last newline; `[\r\n]+` ends right after it (the next character, if any in the
        // run, is not a newline).
        if let Some(end) = r.last_newline_end {
            return Some(end);
        }
        // Alternative 6: the whole run at the end of the text; before a non-space, all but its last
        // character (which the next piece takes as its leading character), if that leaves one.
        if r.end == s.len() {
            return Some(r.end);
        }
        if r.chars >= 2 {
            return Some(r.last_start);
        }
        // Alternative 7.
        return Some(r.end);
    }
    None
}

/// The end of the piece that starts at `pos` under cl100k_base's pattern (the possessive form that
/// tiktoken now uses, with `\s++$` ahead of the newline alternative):
///
/// ```text
/// '(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s
/// ```
pub(super) fn cl100k_piece(s: &str, pos: usize) -> Option<usize> {
    let c0 = char_at(s, pos)?;
    let after0 = pos + c0.len_utf8();
    if c0 == '\''
        && let Some(end) = contraction(s, pos)
    {
        return Some(end);
    }
    // `?+` keeps a leading non-letter it took, so the letters must follow it; a letter itself cannot be
    // the leading character, so the run starts at `pos`.
    if letter(c0) {
        return Some(run(s, pos, letter));
    }
    if before_word(c0) && char_at(s, after0).is_some_and(letter) {
        return Some(run(s, after0, letter));
    }
    if number(c0) {
        return Some(up_to_three_numbers(s, pos));
    }
    let symbols_from =
        if c0 == ' ' && char_at(s, after0).is_some_and(symbol) { Some(after0) } else { symbol(c0).then_some(pos) };
    if let Some(from) = symbols_from {
        let end = run(s, from, symbol);
        return Some(run(s, end, |c| matches!(c, '\r' | '\n')));
    }
    if space(c0) {
        let r = space_run(s, pos);
        // `\s++$`: the whole run, newlines included, when it ends the text.
        if r.end == s.len() {
            return Some(r.end);
        }
        // `\s*[\r\n]`: up to and including the run's last newline.
        if let Some(end) = r.last_newline_end {
            return Some(end);
        }
        // `\s+(?!\S)`: all but the last character, if that leaves one; else `\s`: one character.
        return Some(if r.chars >= 2 { r.last_start } else { after0 });
    }
    None
}
