//! Tokenizer facade: model → encoding, cached encoders, message token counts.
//!
//! Only OpenAI publishes its tokenizers; for other providers the count uses `o200k_base` and is marked as
//! an estimate, never presented as exact.

use tiktoken_rs::CoreBPE;

use crate::trace::model::Message;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Encoding {
    O200kBase,
    Cl100kBase,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::O200kBase => "o200k_base",
            Encoding::Cl100kBase => "cl100k_base",
        }
    }

    /// The encoder, loaded once per process (loading takes tens of milliseconds).
    fn bpe(self) -> &'static CoreBPE {
        match self {
            Encoding::O200kBase => tiktoken_rs::o200k_base_singleton(),
            Encoding::Cl100kBase => tiktoken_rs::cl100k_base_singleton(),
        }
    }

    pub fn count(self, text: &str) -> usize {
        self.bpe().encode_with_special_tokens(text).len()
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_their_encodings() {
        assert_eq!(tokenizer_for("openai:gpt-4o-mini"), Tokenizer { encoding: Encoding::O200kBase, exact: true });
        assert_eq!(tokenizer_for("gpt-4-turbo"), Tokenizer { encoding: Encoding::Cl100kBase, exact: true });
        assert_eq!(
            tokenizer_for("anthropic:claude-sonnet-4-5"),
            Tokenizer { encoding: Encoding::O200kBase, exact: false }
        );
    }

    #[test]
    fn counts_agree_with_known_values() {
        // Reference counts from OpenAI's tiktoken.
        assert_eq!(Encoding::O200kBase.count("hello world"), 2);
        assert_eq!(Encoding::Cl100kBase.count("hello world"), 2);
        let msgs = [Message { role: "user".into(), content: "hello world".into() }];
        assert_eq!(count_messages(Encoding::O200kBase, &msgs), 3 + 1 + 2 + 3);
    }
}
