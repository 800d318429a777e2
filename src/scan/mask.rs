//! Template expressions (`{{ x }}`, `{% … %}`, `{# … #}`) are placeholders, never values: they are
//! blanked out before pattern matching, byte for byte, so that offsets stay those of the original file.

/// A copy of `text` with every template expression replaced by spaces (newlines kept).
pub fn mask_template(text: &str) -> String {
    let mut bytes = text.as_bytes().to_vec();
    let mut i = 0;
    while let Some(open) = find_open(&bytes, i) {
        let close = match bytes[open + 1] {
            b'{' => b"}}",
            b'%' => b"%}",
            _ => b"#}",
        };
        let end = find_from(&bytes, open + 2, close).map_or(bytes.len(), |e| e + 2);
        blank(&mut bytes[open..end]);
        i = end;
    }
    // Only ASCII bytes were written, over whole expressions, so the text is still UTF-8.
    String::from_utf8(bytes).unwrap_or_else(|_| text.to_string())
}

fn find_open(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(1)).find(|&i| bytes[i] == b'{' && matches!(bytes[i + 1], b'{' | b'%' | b'#'))
}

fn find_from(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

fn blank(bytes: &mut [u8]) {
    for b in bytes.iter_mut().filter(|b| **b != b'\n') {
        *b = b' ';
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_expressions_keeping_length_and_lines() {
        let text = "key: sk-{{ api_key }}\n{% for x in y %}\né{# c #}";
        let masked = mask_template(text);
        assert_eq!(masked.len(), text.len());
        assert_eq!(masked.lines().count(), text.lines().count());
        assert!(!masked.contains("api_key"));
        assert!(masked.starts_with("key: sk-   "));
        assert!(masked.contains('é'));
    }

    #[test]
    fn unclosed_expression_masks_to_the_end() {
        assert_eq!(mask_template("a {{ b"), "a     ");
    }
}
