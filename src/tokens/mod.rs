//! Tokenizer facade: model → encoding, token counts, message token counts.
//!
//! Only OpenAI publishes its tokenizers; for other providers the count uses `o200k_base` and is marked as
//! an estimate, never presented as exact.
//!
//! The encodings are our own implementation of tiktoken's, token for token (tests compare every
//! vocabulary entry and many texts with tiktoken-rs). Why not tiktoken-rs itself: it builds its tables
//! at run time, ~0.8 s for o200k_base, and `prompt diff` of an edited file must count fresh text within
//! a 10 ms budget. Here the vocabulary is a static table generated at build time (`build.rs`, `bpe.rs`)
//! and the pre-tokenizer regex is hand-compiled (`pretokenize.rs`), so first use costs nothing.

mod bpe;
mod phf;
mod pretokenize;
mod unicode_table;

#[cfg(test)]
mod tests;

use crate::trace::model::Message;

use bpe::{Rank, Table};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

/// What an encoding is made of.
struct Spec {
    table: &'static Table,
    /// The end of the pre-tokenizer piece starting at a position.
    piece: fn(&str, usize) -> Option<usize>,
    /// Special tokens and their ids, as tiktoken-rs defines them for the encoding.
    specials: &'static [(&'static str, Rank)],
}

static O200K_BASE: Spec = Spec {
    table: &bpe::O200K_BASE,
    piece: pretokenize::o200k_piece,
    specials: &[("<|endoftext|>", 199_999), ("<|endofprompt|>", 200_018)],
};

static CL100K_BASE: Spec = Spec {
    table: &bpe::CL100K_BASE,
    piece: pretokenize::cl100k_piece,
    specials: &[
        ("<|endoftext|>", 100_257),
        ("<|fim_prefix|>", 100_258),
        ("<|fim_middle|>", 100_259),
        ("<|fim_suffix|>", 100_260),
        ("<|endofprompt|>", 100_276),
    ],
};

/// One token as the encoder finds it.
enum Token<'a> {
    Ordinary(&'a [u8]),
    Special(Rank),
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    fn spec(self) -> &'static Spec {
        match self {
            Encoding::O200kBase => &O200K_BASE,
            Encoding::Cl100kBase => &CL100K_BASE,
        }
    }

    /// Number of tokens in `text`, special tokens such as `<|endoftext|>` counting as one each (as
    /// tiktoken's `encode_with_special_tokens` counts them).
    pub fn count(self, text: &str) -> usize {
        let mut n = 0;
        self.tokens(text, |_| n += 1);
        n
    }

    /// The token ids of `text`, equal to tiktoken's `encode_with_special_tokens`.
    pub fn encode(self, text: &str) -> Vec<u32> {
        let table = self.spec().table;
        let mut ids = Vec::with_capacity(text.len() / 3);
        self.tokens(text, |t| {
            ids.push(match t {
                // The merges only ever produce vocabulary entries.
                Token::Ordinary(bytes) => table.rank(bytes).expect("byte-pair merges yield tokens"),
                Token::Special(rank) => rank,
            })
        });
        ids
    }

    /// Calls `emit` with each token of `text` in order: tiktoken's `encode` with every special token
    /// allowed. Text between special tokens is pre-tokenized on its own, as tiktoken does.
    fn tokens(self, text: &str, mut emit: impl FnMut(Token<'_>)) {
        let spec = self.spec();
        let mut parts = Vec::new();
        let mut start = 0;
        loop {
            let special = find_special(text, start, spec.specials);
            let segment = &text[start..special.map_or(text.len(), |(at, _, _)| at)];
            let mut pos = 0;
            while pos < segment.len() {
                match (spec.piece)(segment, pos) {
                    Some(end) => {
                        spec.table.split(&segment.as_bytes()[pos..end], &mut parts, |t| emit(Token::Ordinary(t)));
                        pos = end;
                    }
                    // Unreachable (see `o200k_piece`); tiktoken's `find_iter` would skip the character.
                    None => pos += segment[pos..].chars().next().map_or(1, char::len_utf8),
                }
            }
            match special {
                Some((at, len, rank)) => {
                    emit(Token::Special(rank));
                    start = at + len;
                }
                None => break,
            }
        }
    }
}

/// The leftmost special token at or after `from`: its start, length and id. No special token is a
/// prefix of another, so the leftmost match is unique.
fn find_special(text: &str, from: usize, specials: &[(&str, Rank)]) -> Option<(usize, usize, Rank)> {
    let mut i = from;
    while let Some(offset) = text[i..].find("<|") {
        let at = i + offset;
        if let Some(&(s, rank)) = specials.iter().find(|(s, _)| text[at..].starts_with(s)) {
            return Some((at, s.len(), rank));
        }
        i = at + 1;
    }
    None
}

/// The encoding a model's token counts are computed with, and whether that count is exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tokenizer {
    pub encoding: Encoding,
    /// False when the model's own tokenizer is not public and `encoding` is a stand-in.
    pub exact: bool,
}

/// Chooses the tokenizer for `model` (`openai:gpt-4o-mini`, `gpt-4o-mini`, `anthropic:claude-…`).
pub fn tokenizer_for(model: &str) -> Tokenizer {
    let bare = model.split_once(':').map_or(model, |(_, m)| m).to_ascii_lowercase();
    let openai_o200k = ["gpt-4o", "gpt-4.1", "gpt-4.5", "gpt-5", "o1", "o3", "o4", "chatgpt-4o", "gpt-oss"];
    let openai_cl100k = ["gpt-4", "gpt-3.5", "text-embedding-3", "text-embedding-ada"];
    if openai_o200k.iter().any(|p| bare.starts_with(p)) {
        Tokenizer { encoding: Encoding::O200kBase, exact: true }
    } else if openai_cl100k.iter().any(|p| bare.starts_with(p)) {
        Tokenizer { encoding: Encoding::Cl100kBase, exact: true }
    } else {
        Tokenizer { encoding: Encoding::O200kBase, exact: false }
    }
}

/// Tokens a chat request's messages take, following OpenAI's published accounting: 3 tokens of framing
/// per message, the role, the content, and 3 tokens priming the reply.
pub fn count_messages(encoding: Encoding, messages: &[Message]) -> usize {
    let per_message: usize = messages.iter().map(|m| 3 + encoding.count(&m.role) + encoding.count(&m.content)).sum();
    per_message + 3
}
