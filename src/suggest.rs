//! "Did you mean …?" for unknown keys, commands and assertion types.

/// The candidate closest to `word` by edit distance, when it is close enough to be a plausible typo.
pub fn nearest<'a, I>(word: &str, candidates: I) -> Option<&'a str>
where
    I: IntoIterator<Item = &'a str>,
{
    let word_lower = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (edit_distance(&word_lower, &c.to_lowercase()), c))
        .filter(|(d, c)| *d <= (c.chars().count().max(word.chars().count()) / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Rewrites serde's "unknown field `x`, expected one of `a`, `b`" (and "expected `a` or `b`") into a
/// message that names the nearest valid key first. Other messages pass through unchanged.
pub fn explain_unknown_field(message: &str) -> String {
    let message = message.trim();
    // serde_norway prefixes nested errors with their path: `cases[0]: unknown field …`.
    let Some(start) = message.find("unknown field `") else {
        return message.to_string();
    };
    let (prefix, rest) = (&message[..start], &message[start + "unknown field `".len()..]);
    let Some((field, expected)) = rest.split_once('`') else {
        return message.trim().to_string();
    };
    let valid: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    let hint = match nearest(field, valid.iter().copied()) {
        Some(near) => format!("; did you mean `{near}`?"),
        None => String::new(),
    };
    format!("{prefix}unknown key `{field}`{hint} (valid keys: {})", valid.join(", "))
}

/// Levenshtein distance over chars.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_plausible_typos_only() {
        let keys = ["model", "params", "input", "examples", "name"];
        assert_eq!(nearest("modle", keys), Some("model"));
        assert_eq!(nearest("exmples", keys), Some("examples"));
        assert_eq!(nearest("temperature", keys), None);
    }

    #[test]
    fn distance_is_symmetric_on_examples() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("abc", "abc"), 0);
    }
}
