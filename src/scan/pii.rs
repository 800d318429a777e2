//! PII recognizers: a pattern finds candidates, a validator keeps the real ones (Luhn, IBAN mod-97, SSN
//! ranges, reserved domains and numbers), and a context word nearby boosts weak patterns.

use std::ops::Range;
use std::sync::LazyLock;

use regex::Regex;

use super::identity::Redaction;
use super::model::Severity;

/// The PII kinds, each a rule id of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PiiKind {
    Email,
    Phone,
    Card,
    Iban,
    Ssn,
    Ip,
}

impl PiiKind {
    pub fn rule(self) -> &'static str {
        match self {
            PiiKind::Email => "pii.email",
            PiiKind::Phone => "pii.phone",
            PiiKind::Card => "pii.payment_card",
            PiiKind::Iban => "pii.iban",
            PiiKind::Ssn => "pii.us_ssn",
            PiiKind::Ip => "pii.ip_address",
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            PiiKind::Email => "Email address (reserved and documentation domains excluded)",
            PiiKind::Phone => "Phone number (fictional 555-01xx numbers excluded)",
            PiiKind::Card => "Payment card number (Luhn-valid, well-known test numbers excluded)",
            PiiKind::Iban => "IBAN (mod-97 valid, documentation IBANs excluded)",
            PiiKind::Ssn => "US Social Security number (valid ranges only)",
            PiiKind::Ip => "Public IP address (private, loopback and documentation ranges excluded)",
        }
    }

    pub fn redaction(self) -> Redaction {
        match self {
            PiiKind::Email => Redaction::Email,
            PiiKind::Phone => Redaction::Phone,
            PiiKind::Card => Redaction::Card,
            PiiKind::Iban => Redaction::Iban,
            PiiKind::Ssn => Redaction::Ssn,
            PiiKind::Ip => Redaction::Ip,
        }
    }

    /// The severity without context; see docs/scan.md for the table.
    pub fn base_severity(self) -> Severity {
        match self {
            PiiKind::Card | PiiKind::Iban | PiiKind::Ssn => Severity::High,
            PiiKind::Email | PiiKind::Phone => Severity::Medium,
            PiiKind::Ip => Severity::Low,
        }
    }

    pub const ALL: [PiiKind; 6] =
        [PiiKind::Email, PiiKind::Phone, PiiKind::Card, PiiKind::Iban, PiiKind::Ssn, PiiKind::Ip];
}

/// One PII value found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PiiMatch {
    pub kind: PiiKind,
    pub span: Range<usize>,
    pub severity: Severity,
}

// ASCII word boundaries: with Unicode `\b` the regex engine cannot use its DFAs and runs the PikeVM
// over every byte (0.8 MB/s on the examples of the budget's store). Every value here is ASCII.
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?-u:\b)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?-u:\b)",
    )
    .unwrap()
});
/// NANP with separators, `(415) 555-2671`, or international with `+`.
static PHONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:\+\d{1,3}[ .-]?)?(?:\(\d{3}\)[ .-]?|(?-u:\b)\d{3}[ .-])\d{3}[ .-]\d{4}(?-u:\b)|\+\d{1,3}(?:[ .-]?\d){7,13}(?-u:\b)")
        .unwrap()
});
/// Ten bare digits: a phone number only when a context word says so.
static BARE_PHONE: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u:\b)\d{10}(?-u:\b)").unwrap());
static CARD: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u:\b)\d(?:[ -]?\d){12,18}(?-u:\b)").unwrap());
static IBAN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]){11,30}(?-u:\b)").unwrap());
static SSN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u:\b)(\d{3})[- ](\d{2})[- ](\d{4})(?-u:\b)").unwrap());
static BARE_SSN: LazyLock<Regex> = LazyLock::new(|| Regex::new(r"(?-u:\b)(\d{3})(\d{2})(\d{4})(?-u:\b)").unwrap());
static IPV4: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?-u:\b)(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?-u:\b)").unwrap());

const PHONE_CONTEXT: &[&str] = &["phone", "call", "tel", "mobile", "cell", "whatsapp", "sms", "text me", "reach me"];
const SSN_CONTEXT: &[&str] = &["ssn", "social security", "social sec", "taxpayer"];
const IP_CONTEXT: &[&str] = &["ip", "address", "logged in from", "client", "host", "server", "login from"];

/// Bytes before a match searched for context words.
const CONTEXT_WINDOW: usize = 48;

/// Well-known test card numbers published by card networks and payment processors.
const TEST_CARDS: &[&str] = &[
    "4242424242424242",
    "4000056655665556",
    "4111111111111111",
    "4012888888881881",
    "4222222222222",
    "4000000000000002",
    "4000000000009995",
    "4000002500003155",
    "4000000000000077",
    "4000000000000093",
    "4000000000000069",
    "4000000000000127",
    "5555555555554444",
    "5200828282828210",
    "5105105105105100",
    "2223003122003222",
    "2223000048400011",
    "378282246310005",
    "371449635398431",
    "378734493671000",
    "6011111111111117",
    "6011000990139424",
    "6011000400000000",
    "3056930009020004",
    "36227206271667",
    "30569309025904",
    "38520000023237",
    "3566002020360505",
    "3530111333300000",
    "3566111111111113",
    "6200000000000005",
    "6555900000604105",
];

/// IBANs printed in standards and bank documentation as examples.
const EXAMPLE_IBANS: &[&str] = &[
    "GB82WEST12345698765432",
    "GB29NWBK60161331926819",
    "DE89370400440532013000",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "ES9121000418450200051332",
    "IT60X0542811101000000123456",
    "BE68539007547034",
    "CH9300762011623852957",
    "AT611904300234573201",
];

/// Every PII value in `text`, in order of position.
pub fn find_pii(text: &str) -> Vec<PiiMatch> {
    let mut out = Vec::new();
    find_emails(text, &mut out);
    find_cards(text, &mut out);
    find_ibans(text, &mut out);
    find_ssns(text, &mut out);
    find_phones(text, &mut out);
    find_ips(text, &mut out);
    drop_overlapping(&mut out);
    out.sort_by_key(|m| m.span.start);
    out
}

fn push(out: &mut Vec<PiiMatch>, kind: PiiKind, span: Range<usize>, severity: Severity) {
    out.push(PiiMatch { kind, span, severity });
}

fn find_emails(text: &str, out: &mut Vec<PiiMatch>) {
    for m in EMAIL.find_iter(text) {
        let domain = m.as_str().rsplit('@').next().unwrap_or("");
        if !is_reserved_domain(domain) {
            push(out, PiiKind::Email, m.range(), PiiKind::Email.base_severity());
        }
    }
}

/// RFC 2606 / RFC 6761 names: documentation and testing domains are not anyone's address.
pub fn is_reserved_domain(domain: &str) -> bool {
    let d = domain.to_ascii_lowercase();
    let reserved_names = ["example.com", "example.org", "example.net", "localhost"];
    let reserved_tlds = [".test", ".invalid", ".example", ".localhost", ".local"];
    reserved_names.iter().any(|r| d == *r || d.ends_with(&format!(".{r}")))
        || reserved_tlds.iter().any(|t| d.ends_with(t))
}

fn find_cards(text: &str, out: &mut Vec<PiiMatch>) {
    for m in CARD.find_iter(text) {
        let digits: String = m.as_str().chars().filter(char::is_ascii_digit).collect();
        if is_card_number(&digits) {
            push(out, PiiKind::Card, m.range(), PiiKind::Card.base_severity());
        }
    }
}

/// A Luhn-valid number of a real card network's length and prefix that is not a published test number.
pub fn is_card_number(digits: &str) -> bool {
    (13..=19).contains(&digits.len())
        && has_card_prefix(digits)
        && luhn_valid(digits)
        && !TEST_CARDS.contains(&digits)
        && !is_one_digit_repeated(digits)
}

fn has_card_prefix(d: &str) -> bool {
    let p2: u32 = d[..2].parse().unwrap_or(0);
    let p4: u32 = d[..4].parse().unwrap_or(0);
    d.starts_with('4')
        || (51..=55).contains(&p2)
        || (2221..=2720).contains(&p4)
        || p2 == 34
        || p2 == 37
        || d.starts_with("6011")
        || p2 == 65
        || (644..=649).contains(&(p4 / 10))
        || (3528..=3589).contains(&p4)
        || p2 == 36
        || p2 == 38
        || (300..=305).contains(&(p4 / 10))
        || p2 == 62
}

pub fn luhn_valid(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

fn is_one_digit_repeated(digits: &str) -> bool {
    digits.bytes().all(|b| b == digits.as_bytes()[0])
}

fn find_ibans(text: &str, out: &mut Vec<PiiMatch>) {
    for m in IBAN.find_iter(text) {
        let Some(expected) = iban_length(&m.as_str()[..2]) else {
            continue;
        };
        // The pattern may run on into a following code ("… 3249 31 ORD7"); cut at the country's length.
        let (compact, end) = first_alphanumerics(m.as_str(), expected);
        if is_iban(&compact) {
            let span = m.start()..m.start() + end;
            push(out, PiiKind::Iban, span, PiiKind::Iban.base_severity());
        }
    }
}

/// The first `n` non-space characters of `text`, and the byte offset just after them.
fn first_alphanumerics(text: &str, n: usize) -> (String, usize) {
    let mut compact = String::with_capacity(n);
    for (i, c) in text.char_indices() {
        if c != ' ' {
            compact.push(c);
            if compact.len() == n {
                return (compact, i + c.len_utf8());
            }
        }
    }
    (compact, text.len())
}

/// Country length and mod-97 check; documentation IBANs are excluded.
pub fn is_iban(compact: &str) -> bool {
    let Some(expected) = iban_length(&compact[..2]) else {
        return false;
    };
    compact.len() == expected && iban_mod97(compact) == 1 && !EXAMPLE_IBANS.contains(&compact)
}

fn iban_mod97(compact: &str) -> u32 {
    let rearranged = compact[4..].bytes().chain(compact[..4].bytes());
    let mut rem: u32 = 0;
    for b in rearranged {
        let value = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return 0,
        };
        rem = if value >= 10 { (rem * 100 + value) % 97 } else { (rem * 10 + value) % 97 };
    }
    rem
}

fn iban_length(country: &str) -> Option<usize> {
    const LENGTHS: &[(&str, usize)] = &[
        ("AD", 24),
        ("AE", 23),
        ("AL", 28),
        ("AT", 20),
        ("AZ", 28),
        ("BA", 20),
        ("BE", 16),
        ("BG", 22),
        ("BH", 22),
        ("BR", 29),
        ("CH", 21),
        ("CR", 22),
        ("CY", 28),
        ("CZ", 24),
        ("DE", 22),
        ("DK", 18),
        ("DO", 28),
        ("EE", 20),
        ("EG", 29),
        ("ES", 24),
        ("FI", 18),
        ("FO", 18),
        ("FR", 27),
        ("GB", 22),
        ("GE", 22),
        ("GI", 23),
        ("GL", 18),
        ("GR", 27),
        ("GT", 28),
        ("HR", 21),
        ("HU", 28),
        ("IE", 22),
        ("IL", 23),
        ("IS", 26),
        ("IT", 27),
        ("JO", 30),
        ("KW", 30),
        ("KZ", 20),
        ("LB", 28),
        ("LI", 21),
        ("LT", 20),
        ("LU", 20),
        ("LV", 21),
        ("MC", 27),
        ("MD", 24),
        ("ME", 22),
        ("MK", 19),
        ("MR", 27),
        ("MT", 31),
        ("MU", 30),
        ("NL", 18),
        ("NO", 15),
        ("PK", 24),
        ("PL", 28),
        ("PS", 29),
        ("PT", 25),
        ("QA", 29),
        ("RO", 24),
        ("RS", 22),
        ("SA", 24),
        ("SE", 24),
        ("SI", 19),
        ("SK", 24),
        ("SM", 27),
        ("TN", 24),
        ("TR", 26),
        ("UA", 29),
        ("VG", 24),
        ("XK", 20),
    ];
    LENGTHS.iter().find(|(c, _)| *c == country).map(|(_, n)| *n)
}

fn find_ssns(text: &str, out: &mut Vec<PiiMatch>) {
    for caps in SSN.captures_iter(text) {
        if is_ssn(&caps[1], &caps[2], &caps[3]) {
            let span = caps.get(0).expect("group 0").range();
            push(out, PiiKind::Ssn, span, PiiKind::Ssn.base_severity());
        }
    }
    for caps in BARE_SSN.captures_iter(text) {
        let span = caps.get(0).expect("group 0").range();
        if is_ssn(&caps[1], &caps[2], &caps[3]) && has_context(text, span.start, SSN_CONTEXT) {
            push(out, PiiKind::Ssn, span, PiiKind::Ssn.base_severity());
        }
    }
}

/// SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000; and not the two numbers famous
/// for having been printed (078-05-1120, 219-09-9999).
pub fn is_ssn(area: &str, group: &str, serial: &str) -> bool {
    area != "000"
        && area != "666"
        && !area.starts_with('9')
        && group != "00"
        && serial != "0000"
        && !matches!((area, group, serial), ("078", "05", "1120") | ("219", "09", "9999"))
}

fn find_phones(text: &str, out: &mut Vec<PiiMatch>) {
    for m in PHONE.find_iter(text) {
        if is_real_phone(m.as_str()) {
            let severity = PiiKind::Phone.base_severity();
            push(out, PiiKind::Phone, m.range(), severity);
        }
    }
    for m in BARE_PHONE.find_iter(text) {
        if is_real_phone(m.as_str()) && has_context(text, m.start(), PHONE_CONTEXT) {
            push(out, PiiKind::Phone, m.range(), PiiKind::Phone.base_severity());
        }
    }
}

/// NANP numbers need a valid area code and exchange; 555-0100…555-0199 are reserved for fiction.
fn is_real_phone(candidate: &str) -> bool {
    let digits: String = candidate.chars().filter(char::is_ascii_digit).collect();
    if !(10..=15).contains(&digits.len()) {
        return false;
    }
    let national = if candidate.trim_start().starts_with("+1") || (digits.len() == 11 && digits.starts_with('1')) {
        &digits[1..]
    } else if candidate.trim_start().starts_with('+') {
        return !is_one_digit_repeated(&digits);
    } else {
        digits.as_str()
    };
    if national.len() != 10 {
        return false;
    }
    let (area, exchange, line) = (&national[..3], &national[3..6], &national[6..]);
    let valid_nanp = !area.starts_with(['0', '1']) && !exchange.starts_with(['0', '1']);
    let fictional = exchange == "555" && line.starts_with("01");
    valid_nanp && !fictional && !is_one_digit_repeated(national)
}

fn find_ips(text: &str, out: &mut Vec<PiiMatch>) {
    for caps in IPV4.captures_iter(text) {
        let octets: Option<Vec<u8>> = (1..=4).map(|i| caps[i].parse::<u8>().ok()).collect();
        let span = caps.get(0).expect("group 0").range();
        let Some(o) = octets else { continue };
        if !is_public_ip([o[0], o[1], o[2], o[3]]) || looks_like_version(text, span.start) {
            continue;
        }
        let severity = if has_context(text, span.start, IP_CONTEXT) { Severity::Low.raised() } else { Severity::Low };
        push(out, PiiKind::Ip, span, severity);
    }
}

/// Private (RFC 1918), loopback, link-local, CGNAT, documentation (RFC 5737), multicast and reserved
/// ranges identify no one outside the network; they are not reported.
pub fn is_public_ip(o: [u8; 4]) -> bool {
    !matches!(
        o,
        [0, ..]
            | [10, ..]
            | [127, ..]
            | [169, 254, ..]
            | [192, 168, ..]
            | [192, 0, 2, _]
            | [198, 51, 100, _]
            | [203, 0, 113, _]
            | [198, 18..=19, ..]
            | [172, 16..=31, ..]
            | [100, 64..=127, ..]
            | [224..=255, ..]
    )
}

fn looks_like_version(text: &str, start: usize) -> bool {
    let before = text[..start].trim_end().to_ascii_lowercase();
    before.ends_with('v') || before.ends_with("version")
}

/// Whether one of `words` occurs (case-insensitively) in the bytes just before `start`.
fn has_context(text: &str, start: usize, words: &[&str]) -> bool {
    let mut from = start.saturating_sub(CONTEXT_WINDOW);
    while !text.is_char_boundary(from) {
        from += 1;
    }
    let window = text[from..start].to_ascii_lowercase();
    words.iter().any(|w| contains_word(&window, w))
}

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(i, _)| {
        let before = haystack[..i].chars().next_back();
        let after = haystack[i + word.len()..].chars().next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

/// Where two recognizers claim overlapping bytes, the stronger one wins (card over phone, IBAN over
/// phone, SSN over phone).
fn drop_overlapping(out: &mut Vec<PiiMatch>) {
    let priority = |k: PiiKind| match k {
        PiiKind::Card | PiiKind::Iban => 0,
        PiiKind::Email => 1,
        PiiKind::Ssn => 2,
        PiiKind::Phone => 3,
        PiiKind::Ip => 4,
    };
    out.sort_by_key(|m| (priority(m.kind), m.span.start));
    let mut kept: Vec<PiiMatch> = Vec::with_capacity(out.len());
    for m in out.drain(..) {
        if !kept.iter().any(|k| k.span.start < m.span.end && m.span.start < k.span.end) {
            kept.push(m);
        }
    }
    *out = kept;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<PiiKind> {
        find_pii(text).iter().map(|m| m.kind).collect()
    }

    #[test]
    fn emails_skip_reserved_domains() {
        assert_eq!(kinds("write to jane.doe@acme.io"), vec![PiiKind::Email]);
        for reserved in [
            "a@example.com",
            "a@mail.example.org",
            "a@x.test",
            "a@y.invalid",
            "a@host.example",
            "a@localhost.localhost",
        ] {
            assert!(kinds(reserved).is_empty(), "{reserved}");
        }
    }

    #[test]
    fn phones_skip_fictional_numbers_and_need_context_when_bare() {
        assert_eq!(kinds("call (415) 867-2671"), vec![PiiKind::Phone]);
        assert_eq!(kinds("+44 20 7946 0958"), vec![PiiKind::Phone]);
        assert!(kinds("call (415) 555-0123").is_empty());
        assert!(kinds("ref 4158672671").is_empty());
        assert_eq!(kinds("my phone is 4158672671"), vec![PiiKind::Phone]);
    }

    #[test]
    fn cards_need_luhn_and_skip_test_numbers() {
        assert_eq!(kinds("card 4539 1488 0343 6467"), vec![PiiKind::Card]);
        assert!(kinds("card 4539 1488 0343 6468").is_empty());
        assert!(kinds("card 4242 4242 4242 4242").is_empty());
        assert!(kinds("card 4111111111111111").is_empty());
    }

    #[test]
    fn ibans_need_mod97_and_skip_documentation_examples() {
        assert_eq!(kinds("IBAN DE44 5001 0517 5407 3249 31"), vec![PiiKind::Iban]);
        assert!(kinds("IBAN DE44 5001 0517 5407 3249 32").is_empty());
        assert!(kinds("IBAN GB82 WEST 1234 5698 7654 32").is_empty());
    }

    #[test]
    fn ssns_respect_invalid_ranges() {
        assert_eq!(kinds("SSN 123-45-6789"), vec![PiiKind::Ssn]);
        for bad in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000", "078-05-1120"] {
            assert!(kinds(bad).is_empty(), "{bad}");
        }
        assert!(kinds("id 123456789").is_empty());
        assert_eq!(kinds("ssn: 123456789"), vec![PiiKind::Ssn]);
    }

    #[test]
    fn ips_skip_private_and_documentation_ranges() {
        assert_eq!(find_pii("from 81.2.69.160").first().map(|m| m.severity), Some(Severity::Low));
        assert_eq!(find_pii("client ip 81.2.69.160").first().map(|m| m.severity), Some(Severity::Medium));
        for private in
            ["10.1.2.3", "192.168.0.1", "172.20.1.1", "127.0.0.1", "192.0.2.7", "203.0.113.9", "198.51.100.2"]
        {
            assert!(kinds(private).is_empty(), "{private}");
        }
        assert!(kinds("version 1.2.3.4").is_empty());
    }

    #[test]
    fn validators() {
        assert!(luhn_valid("79927398713"));
        assert!(!luhn_valid("79927398710"));
        assert!(is_iban("GB33BUKB20201555555555"));
    }
}
