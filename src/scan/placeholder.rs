//! Values that look like secrets but are placeholders: documentation stand-ins, masked values,
//! environment references and low-variety fillers.

/// Substrings that mark a value as a stand-in (compared case-insensitively).
const PLACEHOLDER_MARKERS: &[&str] = &[
    "...",
    "…",
    "xxxx",
    "****",
    "<",
    ">",
    "{",
    "}",
    "${",
    "your",
    "example",
    "placeholder",
    "redacted",
    "changeme",
    "change_me",
    "replace",
    "dummy",
    "sample",
    "insert",
];

/// Whole values that are names of secrets, not secrets (`password: password`).
const PLACEHOLDER_WORDS: &[&str] = &[
    "password", "passwd", "pass", "pwd", "secret", "admin", "root", "user", "test", "token", "apikey", "api_key",
    "none", "null", "empty", "default",
];

/// Whether `value` is a stand-in rather than a real credential.
pub fn is_placeholder(value: &str) -> bool {
    let lower = value.to_lowercase();
    if PLACEHOLDER_MARKERS.iter().any(|m| lower.contains(m)) {
        return true;
    }
    if PLACEHOLDER_WORDS.contains(&lower.as_str()) || lower.starts_with('$') {
        return true;
    }
    is_low_variety(value) || is_repetition(value)
}

/// Shannon entropy in bits per character.
pub fn shannon_entropy(value: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut total = 0u32;
    for b in value.bytes() {
        counts[b as usize] += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let n = f64::from(total);
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// A long run of one character (`aaaaaa`, `000000`) is filler.
fn is_low_variety(value: &str) -> bool {
    let bytes = value.as_bytes();
    let mut run = 1;
    for w in bytes.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 6 {
            return true;
        }
    }
    false
}

/// A short unit repeated (`abcabcabcabc`) is filler.
fn is_repetition(value: &str) -> bool {
    let bytes = value.as_bytes();
    let n = bytes.len();
    if n < 12 {
        return false;
    }
    (1..=n / 3).any(|period| (period..n).all(|i| bytes[i] == bytes[i - period]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_stand_ins() {
        for v in [
            "sk-...",
            "YOUR_API_KEY",
            "sk-proj-xxxxxxxxxxxx",
            "<token>",
            "${DB_PASSWORD}",
            "password",
            "aaaaaaaaaaaaaaaa",
            "abcdabcdabcdabcd",
            "AKIAIOSFODNN7EXAMPLE",
        ] {
            assert!(is_placeholder(v), "{v}");
        }
        assert!(!is_placeholder("QKYJPnIZQQcAIYUC7t"));
    }

    #[test]
    fn entropy_of_uniform_and_constant_strings() {
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
    }
}
