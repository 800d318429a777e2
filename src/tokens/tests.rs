//! Parity with tiktoken-rs: every vocabulary entry, the pre-tokenizer pieces and the token ids of a fixed
//! corpus and of random strings, for both encodings; and the generated Unicode table against regex-syntax.

use std::collections::HashSet;
use std::sync::LazyLock;

use proptest::prelude::*;
use regex_syntax::hir::{Class, HirKind};
use tiktoken_rs::CoreBPE;

use super::pretokenize::{Cat, category};
use super::*;

#[test]
fn models_map_to_their_encodings() {
    assert_eq!(tokenizer_for("openai:gpt-4o-mini"), Tokenizer { encoding: Encoding::O200kBase, exact: true });
    assert_eq!(tokenizer_for("gpt-4-turbo"), Tokenizer { encoding: Encoding::Cl100kBase, exact: true });
    assert_eq!(tokenizer_for("anthropic:claude-sonnet-4-5"), Tokenizer { encoding: Encoding::O200kBase, exact: false });
}

#[test]
fn counts_agree_with_known_values() {
    // Reference counts from OpenAI's tiktoken.
    assert_eq!(Encoding::O200kBase.count("hello world"), 2);
    assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
    assert_eq!(Encoding::O200kBase.encode("hello world"), [24912, 2375]);
    assert_eq!(Encoding::Cl100kBase.encode("hello world"), [15339, 1917]);
    assert_eq!(Encoding::O200kBase.count(""), 0);
    let msgs = [Message { role: "user".into(), content: "hello world".into() }];
    assert_eq!(count_messages(Encoding::O200kBase, &msgs), 3 + 1 + 2 + 3);
}

const ENCODINGS: [Encoding; 2] = [Encoding::O200kBase, Encoding::Cl100kBase];

fn tiktoken(encoding: Encoding) -> &'static CoreBPE {
    match encoding {
        Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
        Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
    }
}

/// tiktoken-rs 0.12.1's patterns, copied verbatim (its cl100k pattern is not exported).
const O200K_PATTERN: &str = concat!(
    r#"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#,
    "|",
    r#"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?"#,
    "|",
    r#"\p{N}{1,3}"#,
    "|",
    r#" ?[^\s\p{L}\p{N}]+[\r\n/]*"#,
    "|",
    r#"\s*[\r\n]+"#,
    "|",
    r#"\s+(?!\S)"#,
    "|",
    r#"\s+"#
);
const CL100K_PATTERN: &str = "'(?i:[sdmt]|ll|ve|re)|[^\\r\\n\\p{L}\\p{N}]?+\\p{L}++|\\p{N}{1,3}+| ?[^\\s\\p{L}\\p{N}]++[\\r\\n]*+|\\s++$|\\s*[\\r\\n]|\\s+(?!\\S)|\\s";

fn reference_regex(encoding: Encoding) -> &'static fancy_regex::Regex {
    static O200K: LazyLock<fancy_regex::Regex> = LazyLock::new(|| fancy_regex::Regex::new(O200K_PATTERN).unwrap());
    static CL100K: LazyLock<fancy_regex::Regex> = LazyLock::new(|| fancy_regex::Regex::new(CL100K_PATTERN).unwrap());
    match encoding {
        Encoding::O200kBase => &O200K,
        Encoding::Cl100kBase => &CL100K,
    }
}

fn our_pieces(encoding: Encoding, text: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let end = (encoding.spec().piece)(text, pos).unwrap_or_else(|| panic!("no piece at {pos} in {text:?}"));
        assert!(end > pos, "empty piece at {pos} in {text:?}");
        pieces.push(&text[pos..end]);
        pos = end;
    }
    pieces
}

/// Pieces, token ids and count equal tiktoken-rs's; the message names the text and encoding.
#[track_caller]
fn assert_parity(text: &str) {
    for encoding in ENCODINGS {
        let name = encoding.name();
        // Pre-tokenizer pieces, on text without special tokens (which tiktoken splits out first).
        if find_special(text, 0, encoding.spec().specials).is_none() {
            let expected: Vec<&str> = reference_regex(encoding).find_iter(text).map(|m| m.unwrap().as_str()).collect();
            assert_eq!(our_pieces(encoding, text), expected, "{name} pieces of {text:?}");
        }
        let expected = tiktoken(encoding).encode_with_special_tokens(text);
        assert_eq!(encoding.encode(text), expected, "{name} tokens of {text:?}");
        assert_eq!(encoding.count(text), expected.len(), "{name} count of {text:?}");
    }
}

#[test]
fn every_token_is_found_by_its_bytes() {
    for encoding in ENCODINGS {
        let table = encoding.spec().table;
        let reference = tiktoken(encoding);
        // Each slot's token is tiktoken's token of that rank, and the lookup finds it.
        let mut seen = vec![false; 200_000];
        for slot in 0..table.slots as usize {
            let Some(entry) = table.entry(slot) else { continue };
            let bytes = &table.arena[entry.offset..entry.offset + entry.len];
            assert_eq!(
                bytes,
                reference.decode_bytes(&[entry.rank]).unwrap(),
                "{} token {}",
                encoding.name(),
                entry.rank
            );
            assert_eq!(table.rank(bytes), Some(entry.rank), "{} rank of {bytes:?}", encoding.name());
            assert!(!std::mem::replace(&mut seen[entry.rank as usize], true), "rank {} twice", entry.rank);
        }
        // And every rank of the vocabulary has a slot.
        let expected = if encoding == Encoding::O200kBase { 199_998 } else { 100_256 };
        assert_eq!(seen.iter().position(|s| !s), Some(expected), "{}", encoding.name());
        assert!(seen[expected..].iter().all(|s| !s));
        assert!(reference.decode_bytes(&[expected as Rank]).is_err(), "{} has more tokens", encoding.name());
        for &(special, rank) in encoding.spec().specials {
            assert_eq!(reference.encode_with_special_tokens(special), [rank], "{special}");
        }
        // Other strings are not found, whatever slot they hash to: every window of 1 to 20 bytes of
        // some text (hits and misses of every length the short-key comparison handles).
        let vocabulary: HashSet<Vec<u8>> =
            (0..expected as Rank).map(|r| reference.decode_bytes(&[r]).unwrap()).collect();
        let text = include_str!("../../README.md").as_bytes();
        for start in 0..text.len().min(4000) {
            for end in start + 1..(start + 20).min(text.len()) {
                let bytes = &text[start..end];
                assert_eq!(table.rank(bytes).is_some(), vocabulary.contains(bytes), "{bytes:?}");
            }
        }
        // Two-byte lookups have their own table: check all of them.
        for pair in 0..=u16::MAX {
            let bytes = pair.to_be_bytes();
            assert_eq!(table.rank(&bytes).is_some(), vocabulary.contains(&bytes[..]), "{bytes:?}");
        }
        assert_eq!(table.rank(b"<|endoftext|>"), None);
    }
}

/// Texts chosen for what they exercise; each is compared as a whole and, for the short ones, per line.
fn corpus() -> Vec<String> {
    let mut texts: Vec<String> = [
        // Prose and prompts.
        "You are the support agent for Acme. Answer in two sentences, politely.\n",
        "Don't, can't, I'm, you're, we've, they'll, he'd. DON'T, I'LL, WE'VE, It'S, O'Neil, 'twas, rock'n'roll",
        "The user's question: \"Where's my parcel?\" — answer with the tracking link.",
        "::: system\nYou are helpful.\n::: user\n{{ message }}\n::: assistant\n",
        "<|endoftext|>hello<|endofprompt|> world <|fim_prefix|>a<|fim_middle|>b<|fim_suffix|>c <|im_start|> <|endoftext",
        "<|<|endoftext|>|> <<||>> <|endofprompt|><|endofprompt|>",
        // Code.
        "fn main() {\n    let x: Vec<u32> = (0..10).map(|i| i * 2).collect();\n    println!(\"{x:?}\");\n}\n",
        "def f(a, b=2, *args, **kw):\n\tif a >= b:\n\t\treturn a // b\n\treturn [x for x in args if x]  # comment\n",
        "SELECT id, name FROM users WHERE created_at >= '2024-01-01' AND email LIKE '%@example.com';",
        "https://example.com/path/to//page?q=1&r=two#frag\nfile:///usr/local/bin/\n//comment\n/* block */",
        "XMLHttpRequest iPhone McDonald's HTTPServer getHTTPResponseCode ABCdef ABC DEF aBC",
        // JSON.
        r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi!\n"}],"temperature":0.2,"n":1,"stop":null}"#,
        "[\n  {\"id\": 1, \"tags\": [\"a\", \"b\"]},\n  {\"id\": -2.5e10, \"ok\": true}\n]\n",
        // Numbers.
        "1 12 123 1234 12345 123456 1234567 3.14159 -42 1,000,000 0x1F 1e-9 2024-06-01T12:34:56Z",
        "٠١٢٣٤٥٦٧٨٩ ０１２３４５ ½ ¾ ⅓ Ⅻ ⑳ 𝟘𝟙𝟚 १२३ ๑๒๓",
        // Non-ASCII letters, marks, scripts.
        "Café naïve résumé façade Ærøskøbing Straße ŁÓDŹ İstanbul ǅemal ǈ ǋ",
        "Cafe\u{301} nai\u{308}ve re\u{301}sume\u{301} A\u{30A} \u{301}\u{302}abc \u{300}",
        "日本語のテキストです。東京は晴れ。中文文本，包括标点符号！한국어 텍스트입니다.",
        "Привет, мир! Ελληνικά κείμενα. עברית טקסט. العربية نص. हिन्दी पाठ। ภาษาไทย ქართული",
        "ʰʲʷ ˈhɛloʊ ʼapostrophe ꜰᴀɴᴄʏ ﬁ ﬂ Ⅷ ß ẞ ǆ Ǆ",
        // Emoji and symbols.
        "😀👍🏽👨‍👩‍👧‍👦🇫🇷🏳️‍🌈 ❤️ ✔︎ ★☆ →←↑ ∑∫√ €£¥₹ ©®™",
        "emoji😀inside words👍and🏽marks",
        // Contractions with folding: the long s folds to s.
        "'ſ 'ſt 'S 'ſhall I'ſ it'Ll we'VE 'LL 'lL 'Re 'rE 'x '",
        // Whitespace of every kind.
        "a  b   c    d\te\t\tf \t g\u{a0}h\u{3000}i\u{2028}j\u{85}k\u{b}l\u{c}m\u{1680}n\u{202f}o",
        "line\nline\r\nline\rline\n\n\nline\r\n\r\n  \n  line  \n\t\n",
        "trailing spaces   ",
        "   leading spaces",
        " \n ",
        "\n",
        "\r",
        " ",
        "  ",
        "\u{200b}zero\u{200b}width\u{feff}bom\u{200d}joiner",
        "\u{0}\u{1}\u{7f}\u{1c}\u{1d}\u{1e}\u{1f} controls",
        // Symbols and slashes (o200k keeps `/`, `\r`, `\n` after a symbol run).
        "a/b//c///\n--/--\r\n!!!\n\n?? ...// ''' \"\"\" ``` ~~~ ===",
        "ab'/ x?/\n y!/\r\n/",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // Long pieces take the heap merge (100 bytes and more).
    texts.push(" ".repeat(500) + "x");
    texts.push("\t".repeat(150) + "\n" + &" ".repeat(200));
    texts.push("=".repeat(300) + "\n" + &"-".repeat(257));
    texts.push("a".repeat(301) + " " + &"ab".repeat(97));
    texts.push("日本語".repeat(60));
    texts.push("😀".repeat(80));
    texts.push("x\u{301}".repeat(120));
    texts.push("Lorem".repeat(40) + &"IPSUM".repeat(40));
    texts.push("9".repeat(400));
    texts.push("aGVsbG8gd29ybGQhIFRoaXMgaXMgYmFzZTY0IGVuY29kZWQgdGV4dCB0aGF0IGlzIHF1aXRlIGxvbmcgaW5kZWVk".repeat(3));
    // Real files of this repository: prose, code, tables.
    texts.push(include_str!("../../README.md").to_string());
    texts.push(include_str!("../cli/prompt/diff.rs").to_string());
    texts.push(include_str!("pretokenize.rs").to_string());
    texts
}

#[test]
fn corpus_matches_tiktoken() {
    for text in corpus() {
        assert_parity(&text);
        if text.len() < 2000 {
            for line in text.split_inclusive('\n') {
                assert_parity(line);
            }
        }
    }
}

/// Parity over any files, for a long run by hand (before a tiktoken-rs or regex-syntax upgrade, say):
/// `PROMPTCTL_TOKENS_CORPUS=/usr/share/i18n:/some/dir cargo test --lib corpus_files -- --ignored`.
/// Every UTF-8 file under the `:`-separated paths is compared whole and line by line.
#[test]
#[ignore = "needs PROMPTCTL_TOKENS_CORPUS"]
fn corpus_files_match_tiktoken() {
    fn walk(path: &std::path::Path, files: &mut Vec<std::path::PathBuf>) {
        if path.is_dir() {
            for entry in std::fs::read_dir(path).unwrap().flatten() {
                walk(&entry.path(), files);
            }
        } else if path.is_file() {
            files.push(path.to_path_buf());
        }
    }
    let paths = std::env::var("PROMPTCTL_TOKENS_CORPUS").expect("set PROMPTCTL_TOKENS_CORPUS");
    let mut files = Vec::new();
    for path in paths.split(':') {
        walk(std::path::Path::new(path), &mut files);
    }
    let (mut compared, mut bytes) = (0, 0);
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        assert_parity(&text);
        for line in text.split_inclusive('\n') {
            assert_parity(line);
        }
        compared += 1;
        bytes += text.len();
    }
    eprintln!("{compared} files, {bytes} bytes: same pieces, tokens and counts as tiktoken-rs");
}

/// Characters chosen to sit on the patterns' edges: each class of the patterns, the letters of the
/// contractions and their case variants, newlines, `/`, and the special-token delimiters.
fn tricky_char() -> impl Strategy<Value = char> {
    prop_oneof![
        4 => prop::sample::select(vec![' ', ' ', ' ', '\t', '\n', '\r', '\'', '/', '<', '|', '>', 'a', 'e', 'x', 's', 't']),
        3 => prop::sample::select(vec!['S', 'T', 'D', 'M', 'L', 'l', 'V', 'v', 'R', 'r', 'E', 'd', 'm', 'ſ', 'A', 'Z']),
        2 => prop::sample::select(vec!['0', '7', '٣', '０', '½', 'Ⅻ', '!', '.', ',', '-', '"', '(', '#', '😀', '🏽', '\u{200d}']),
        // Lt, Lm, Lo, marks, and spaces beyond ASCII.
        2 => prop::sample::select(vec!['ǅ', 'ʰ', 'ʼ', '中', 'あ', 'ا', '\u{301}', '\u{93f}', '\u{20dd}', 'é', 'É', 'ß']),
        1 => prop::sample::select(vec!['\u{a0}', '\u{3000}', '\u{2028}', '\u{85}', '\u{b}', '\u{c}', '\u{1680}', '\u{0}', '\u{1f}', '\u{feff}']),
        1 => any::<char>(),
    ]
}

fn tricky_text() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop::collection::vec(tricky_char(), 0..48).prop_map(|cs| cs.into_iter().collect()),
        // Runs long enough for the heap merge, and special tokens between pieces.
        1 => prop::collection::vec(prop_oneof![
            prop::sample::select(vec!["<|endoftext|>", "<|endofprompt|>", "<|fim_middle|>", "<|endof", " ", "\n"]).prop_map(str::to_string),
            (tricky_char(), 1..160usize).prop_map(|(c, n)| c.to_string().repeat(n)),
            prop::collection::vec(tricky_char(), 0..12).prop_map(|cs| cs.into_iter().collect()),
        ], 0..8).prop_map(|parts| parts.concat()),
        1 => any::<String>(),
    ]
}

proptest! {
    // PROPTEST_CASES raises the count for a long run by hand.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(1024),
        ..ProptestConfig::default()
    })]

    #[test]
    fn random_text_matches_tiktoken(text in tricky_text()) {
        assert_parity(&text);
    }
}

/// The generated table holds exactly regex-syntax's classes, which are the ones tiktoken-rs's regex
/// (fancy-regex over `regex`) uses. After a regex-syntax upgrade changes Unicode versions, regenerate
/// with `PROMPTCTL_BLESS=1 cargo test --lib tokens::tests::unicode_table_is_current`.
#[test]
fn unicode_table_is_current() {
    let generated = generate_unicode_table();
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/tokens/unicode_table.rs");
    let committed = std::fs::read_to_string(path).unwrap();
    if committed != generated {
        if std::env::var_os("PROMPTCTL_BLESS").is_some() {
            std::fs::write(path, &generated).unwrap();
        } else {
            panic!("src/tokens/unicode_table.rs is stale: rerun this test with PROMPTCTL_BLESS=1");
        }
    }
    // And the lookup reads it back for every code point.
    let classes = unicode_classes();
    for c in (0..=0x10FFFF).filter_map(char::from_u32) {
        assert_eq!(category(c), classes[c as usize], "{c:?} U+{:04X}", c as u32);
    }
}

fn class(pattern: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new().parse(pattern).unwrap();
    match hir.kind() {
        HirKind::Class(Class::Unicode(class)) => {
            class.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        other => panic!("{pattern}: {other:?}"),
    }
}

/// Every code point's category, from regex-syntax; asserts that the classes do not overlap.
fn unicode_classes() -> Vec<Cat> {
    let mut cats = vec![Cat::Other; 0x110000];
    for (cat, pattern) in [
        (Cat::Upper, r"[\p{Lu}\p{Lt}]"),
        (Cat::Lower, r"\p{Ll}"),
        (Cat::Letter, r"[\p{Lm}\p{Lo}]"),
        (Cat::Mark, r"\p{M}"),
        (Cat::Number, r"\p{N}"),
        (Cat::Space, r"\s"),
    ] {
        for (start, end) in class(pattern) {
            for c in start..=end {
                assert_eq!(cats[c as usize], Cat::Other, "U+{c:04X} is in two classes");
                cats[c as usize] = cat;
            }
        }
    }
    // The patterns' letter class is exactly the union of the three letter categories.
    let letters: usize = class(r"\p{L}").iter().map(|(s, e)| (e - s + 1) as usize).sum();
    assert_eq!(letters, cats.iter().filter(|c| matches!(c, Cat::Upper | Cat::Lower | Cat::Letter)).count());
    cats
}

fn generate_unicode_table() -> String {
    let cats = unicode_classes();
    let mut starts = Vec::new();
    for c in 0..cats.len() {
        if c == 0 || cats[c] != cats[c - 1] {
            starts.push(c);
        }
    }
    let short = |cat: Cat| match cat {
        Cat::Other => "O",
        Cat::Upper => "U",
        Cat::Lower => "L",
        Cat::Letter => "T",
        Cat::Mark => "M",
        Cat::Number => "N",
        Cat::Space => "S",
    };
    let mut out = String::from(
        "// @generated by src/tokens/tests.rs (`unicode_table_is_current`) from regex-syntax's Unicode tables.\n\
         // Do not edit: regenerate with `PROMPTCTL_BLESS=1 cargo test --lib tokens::tests::unicode_table_is_current`.\n\
         //\n\
         // `CATS[i]` is the category of the code points from `STARTS[i]` up to the next start.\n\
         // O other, U Lu|Lt, L Ll, T Lm|Lo, M mark, N number, S White_Space.\n\n\
         use super::pretokenize::Cat;\n\
         use super::pretokenize::Cat::{Letter as T, Lower as L, Mark as M, Number as N, Other as O, Space as S, Upper as U};\n\n",
    );
    out += "#[rustfmt::skip]\n";
    out += &format!("pub(super) static STARTS: [u32; {}] = [\n", starts.len());
    for chunk in starts.chunks(12) {
        let line: Vec<String> = chunk.iter().map(|c| format!("0x{c:05X}")).collect();
        out += &format!("    {},\n", line.join(", "));
    }
    out += "];\n\n";
    out += "#[rustfmt::skip]\n";
    out += &format!("pub(super) static CATS: [Cat; {}] = [\n", starts.len());
    for chunk in starts.chunks(32) {
        let line: Vec<&str> = chunk.iter().map(|&c| short(cats[c])).collect();
        out += &format!("    {},\n", line.join(", "));
    }
    out += "];\n";
    out
}

/// `folded` in the pre-tokenizer assumes these case-insensitive classes.
#[test]
fn contraction_letters_fold_as_regex_syntax_does() {
    for (letter, expected) in [
        ('s', vec!['S', 's', 'ſ']),
        ('t', vec!['T', 't']),
        ('d', vec!['D', 'd']),
        ('m', vec!['M', 'm']),
        ('l', vec!['L', 'l']),
        ('v', vec!['V', 'v']),
        ('r', vec!['R', 'r']),
        ('e', vec!['E', 'e']),
    ] {
        let chars: Vec<char> = class(&format!("(?i:{letter})"))
            .into_iter()
            .flat_map(|(s, e)| (s..=e).filter_map(char::from_u32))
            .collect();
        assert_eq!(chars, expected, "(?i:{letter})");
    }
}
