//! Content-addressed version ids.
//!
//! The id is the first 12 hex characters of a SHA-256 over the canonical frontmatter (parsed, keys sorted,
//! compact JSON), the body, and the examples file's content. Each part is length-prefixed so that no byte
//! can move from one part to another and keep the hash.

use sha2::{Digest, Sha256};

/// Length of a version id in hex characters.
pub const VERSION_ID_LEN: usize = 12;

/// Full SHA-256 (hex) of a prompt's content.
pub fn content_hash(front: &serde_json::Value, body: &str, examples: Option<&str>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"promptctl-prompt-v1\0");
    let mut canonical = String::new();
    write_canonical(front, &mut canonical);
    for part in [canonical.as_str(), body, examples.unwrap_or("")] {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.update([u8::from(examples.is_some())]);
    hex::encode(hasher.finalize())
}

pub fn version_id(content_hash: &str) -> String {
    content_hash[..VERSION_ID_LEN].to_string()
}

/// Compact JSON with object keys sorted at every depth, independent of map implementation.
pub fn write_canonical(value: &serde_json::Value, out: &mut String) {
    use serde_json::Value;
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_matter() {
        let a = json!({"name": "x", "params": {"temperature": 0.2, "max_tokens": 400}});
        let b = json!({"params": {"max_tokens": 400, "temperature": 0.2}, "name": "x"});
        assert_eq!(content_hash(&a, "body", None), content_hash(&b, "body", None));
    }

    #[test]
    fn parts_cannot_trade_bytes() {
        let f = json!({});
        assert_ne!(content_hash(&f, "ab", Some("c")), content_hash(&f, "a", Some("bc")));
        assert_ne!(content_hash(&f, "ab", None), content_hash(&f, "ab", Some("")));
    }

    fn frontmatter_text(keys: &[(String, i64)], reversed: bool) -> String {
        let mut lines: Vec<String> = keys.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        if reversed {
            lines.reverse();
        }
        lines.join("\n")
    }

    proptest! {
        #[test]
        fn id_is_stable_under_frontmatter_key_reordering(
            keys in proptest::collection::btree_map("[a-z]{1,8}", any::<i64>(), 1..8),
            body in ".{0,200}",
        ) {
            let keys: Vec<(String, i64)> = keys.into_iter().collect();
            let parse = |t: &str| crate::yaml::to_json(&crate::yaml::value_from_str(t).unwrap()).unwrap();
            let a = parse(&frontmatter_text(&keys, false));
            let b = parse(&frontmatter_text(&keys, true));
            prop_assert_eq!(content_hash(&a, &body, None), content_hash(&b, &body, None));
        }

        #[test]
        fn any_body_byte_changes_the_id(body in proptest::collection::vec(any::<u8>(), 1..200), at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let front = json!({"name": "p"});
            let original = String::from_utf8_lossy(&body).into_owned();
            let mut bytes = original.clone().into_bytes();
            let i = at.index(bytes.len());
            bytes[i] ^= flip;
            // Only compare when the change still makes valid text: bodies are UTF-8.
            if let Ok(changed) = String::from_utf8(bytes) {
                prop_assert_ne!(version_id(&content_hash(&front, &original, None)), version_id(&content_hash(&front, &changed, None)));
            }
        }
    }
}
