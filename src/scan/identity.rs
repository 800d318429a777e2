//! What a finding may say about the value it matched: an HMAC under the caller's key, a stable id
//! derived from it, and a redacted preview. Raw values never leave this module.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// HMAC-SHA256 of `value` under `key`, hex.
pub fn value_hmac(key: &[u8], value: &str) -> String {
    // HMAC accepts keys of any length; an empty key still yields a deterministic digest.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(value.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `f-` + 16 hex digits from rule, path and the value's HMAC: line numbers play no part, so the id
/// survives edits that move the finding.
pub fn finding_id(rule: &str, path: &str, value_hmac: &str) -> String {
    let mut h = Sha256::new();
    for part in [rule, path, value_hmac] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    format!("f-{}", &hex::encode(h.finalize())[..16])
}

/// How to show a matched value without revealing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redaction {
    /// Keep a known, non-secret prefix of `n` bytes and the last 4 characters: `sk-…c3f9`.
    Secret { prefix: usize },
    /// `j***@acme.io`
    Email,
    /// `…71` (last two digits)
    Phone,
    /// `card …4242`
    Card,
    /// `DE…3000`
    Iban,
    /// `***-**-****`
    Ssn,
    /// `203.x.x.x`
    Ip,
    /// Digits become `#`: `ORD-######`.
    Digits,
}

/// The preview of `value` under `redaction`.
pub fn preview(value: &str, redaction: Redaction) -> String {
    match redaction {
        Redaction::Secret { prefix } => secret_preview(value, prefix),
        Redaction::Email => email_preview(value),
        Redaction::Phone => format!("phone …{}", last_digits(value, 2)),
        Redaction::Card => format!("card …{}", last_digits(value, 4)),
        Redaction::Iban => format!("{}…{}", value.get(..2).unwrap_or("??"), last_chars(&value.replace(' ', ""), 4)),
        Redaction::Ssn => "***-**-****".to_string(),
        Redaction::Ip => format!("{}.x.x.x", value.split('.').next().unwrap_or("?")),
        Redaction::Digits => value.chars().map(|c| if c.is_ascii_digit() { '#' } else { c }).collect(),
    }
}

fn secret_preview(value: &str, prefix: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    // Short values would be mostly revealed by prefix + suffix; show only the prefix then.
    let keep_prefix = prefix.min(chars.len() / 3);
    let head: String = chars[..keep_prefix].iter().collect();
    if chars.len() < 16 {
        return format!("{head}…");
    }
    format!("{head}…{}", last_chars(value, 4))
}

fn email_preview(value: &str) -> String {
    match value.split_once('@') {
        Some((local, domain)) => {
            let first = local.chars().next().unwrap_or('?');
            format!("{first}***@{domain}")
        }
        None => "***".to_string(),
    }
}

fn last_digits(value: &str, n: usize) -> String {
    let digits: Vec<char> = value.chars().filter(char::is_ascii_digit).collect();
    digits[digits.len().saturating_sub(n)..].iter().collect()
}

fn last_chars(value: &str, n: usize) -> String {
    let chars: Vec<char> = value.chars().collect();
    chars[chars.len().saturating_sub(n)..].iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_depend_on_rule_path_and_value_only() {
        let h = value_hmac(b"k", "secret");
        assert_eq!(h.len(), 64);
        assert_ne!(h, value_hmac(b"other", "secret"));
        let id = finding_id("r", "a.yaml", &h);
        assert!(id.starts_with("f-") && id.len() == 18);
        assert_eq!(id, finding_id("r", "a.yaml", &h));
        assert_ne!(id, finding_id("r", "b.yaml", &h));
    }

    #[test]
    fn previews_hide_the_value() {
        let key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123c3f9";
        let p = preview(key, Redaction::Secret { prefix: 8 });
        assert_eq!(p, "sk-proj-…c3f9");
        assert_eq!(preview("jane.doe@acme.io", Redaction::Email), "j***@acme.io");
        assert_eq!(preview("4000 0012 3456 7899", Redaction::Card), "card …7899");
        assert_eq!(preview("DE44 5001 0517 5407 3249 31", Redaction::Iban), "DE…4931");
        assert_eq!(preview("ORD-558812", Redaction::Digits), "ORD-######");
        assert_eq!(preview("short", Redaction::Secret { prefix: 3 }), "s…");
    }
}
