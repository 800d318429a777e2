//! What a cost line pays for, from the provider's words for it; shared by the JSON and CSV readers.

use super::{BilledTier, CostKind};
use crate::pricing::Tier;

/// Words that mark a metered tool fee in a line item, description or cost type.
const TOOL_WORDS: &[&str] = &[
    "web search",
    "web_search",
    "file search",
    "file_search",
    "code interpreter",
    "code_interpreter",
    "code execution",
    "code_execution",
    "container",
    "computer use",
    "tool call",
];

/// An OpenAI Costs API `line_item`, such as `gpt-4o-2024-08-06, input`, `gpt-4o-mini-2024-07-18, cached
/// input`, `gpt-4.1-nano-2025-04-14, output (batch)` or `Web search tool calls`. Returns the model it names
/// (when it names one), what it pays for and the tier it names.
pub fn openai_line_item(item: Option<&str>) -> (Option<String>, CostKind, Option<BilledTier>) {
    let Some(item) = item.map(str::trim).filter(|s| !s.is_empty()) else {
        // The Costs API without `group_by=line_item`: the day's amount, not split by model or class.
        return (None, CostKind::Tokens(None), None);
    };
    let lower = item.to_ascii_lowercase();
    if let Some(tool) = tool_fee(&lower) {
        return (None, CostKind::ToolFee(tool), None);
    }
    let Some((model, class)) = lower.rsplit_once(',') else {
        return (None, CostKind::Other, None);
    };
    let model = model.trim();
    let Some(index) = openai_class(class) else {
        return (None, CostKind::Other, None);
    };
    if model.is_empty() || model.contains(' ') {
        return (None, CostKind::Other, None);
    }
    (Some(model.to_string()), CostKind::Tokens(Some(index)), tier_word(class))
}

fn openai_class(text: &str) -> Option<usize> {
    let t = text.trim();
    if t.contains("cached") || t.contains("cache read") {
        Some(1)
    } else if t.contains("cache write") {
        Some(2)
    } else if t.contains("input") || t.contains("prompt") {
        Some(0)
    } else if t.contains("output") || t.contains("completion") {
        Some(4)
    } else {
        None
    }
}

fn tier_word(text: &str) -> Option<BilledTier> {
    [("batch", Tier::Batch), ("flex", Tier::Flex), ("priority", Tier::Priority)]
        .iter()
        .find(|(word, _)| text.contains(word))
        .map(|(_, tier)| BilledTier::priced(*tier))
}

/// The tool a fee is for, when the text names one.
pub fn tool_fee(lower: &str) -> Option<String> {
    TOOL_WORDS.iter().find(|w| lower.contains(*w)).map(|w| w.replace('_', " "))
}

/// An Anthropic cost report line: `cost_type` (`tokens`, `web_search`, `code_execution`, …),
/// `token_type` and `description`.
pub fn anthropic_cost(cost_type: Option<&str>, token_type: Option<&str>, description: Option<&str>) -> CostKind {
    let cost_type = cost_type.map(|c| c.trim().to_ascii_lowercase());
    let description = description.map(|d| d.to_ascii_lowercase()).unwrap_or_default();
    match cost_type.as_deref() {
        Some("tokens") | Some("token") => CostKind::Tokens(token_type.and_then(anthropic_token_type)),
        Some(other) if !other.is_empty() => match tool_fee(other).or_else(|| tool_fee(&description)) {
            Some(tool) => CostKind::ToolFee(tool),
            None => CostKind::Other,
        },
        _ => match (token_type.and_then(anthropic_token_type), tool_fee(&description)) {
            (Some(class), _) => CostKind::Tokens(Some(class)),
            (None, Some(tool)) => CostKind::ToolFee(tool),
            (None, None) if description.contains("token") || description.is_empty() => CostKind::Tokens(None),
            (None, None) => CostKind::Other,
        },
    }
}

/// Anthropic's token types: `uncached_input_tokens`, `cache_read_input_tokens`,
/// `cache_creation.ephemeral_5m_input_tokens`, `cache_creation.ephemeral_1h_input_tokens`, `output_tokens`.
pub fn anthropic_token_type(text: &str) -> Option<usize> {
    let t = text.trim().to_ascii_lowercase().replace(['.', ' ', '-'], "_");
    match t.as_str() {
        "uncached_input_tokens" | "input_tokens" => Some(0),
        "cache_read_input_tokens" => Some(1),
        "cache_creation_ephemeral_5m_input_tokens" | "cache_creation_input_tokens" => Some(2),
        "cache_creation_ephemeral_1h_input_tokens" => Some(3),
        "output_tokens" => Some(4),
        _ => None,
    }
}

/// Anthropic's `context_window`: `0-200k` is the base rate, `200k-1M` the long-context rate.
pub fn anthropic_context(text: Option<&str>) -> Option<bool> {
    let t = text?.trim().to_ascii_lowercase();
    if t.is_empty() {
        return None;
    }
    Some(!t.starts_with("0-") && !t.starts_with("0 -"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openai_line_items() {
        let (model, kind, tier) = openai_line_item(Some("gpt-4o-mini-2024-07-18, cached input"));
        assert_eq!(model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(kind, CostKind::Tokens(Some(1)));
        assert_eq!(tier, None);
        let (_, kind, tier) = openai_line_item(Some("gpt-4.1-nano-2025-04-14, output (batch)"));
        assert_eq!(kind, CostKind::Tokens(Some(4)));
        assert_eq!(tier, Some(BilledTier::priced(Tier::Batch)));
        assert_eq!(openai_line_item(Some("Web search tool calls")).1, CostKind::ToolFee("web search".into()));
        assert_eq!(openai_line_item(Some("Credit adjustment")).1, CostKind::Other);
        assert_eq!(openai_line_item(None).1, CostKind::Tokens(None));
        let (model, _, _) = openai_line_item(Some("ft:gpt-4o-mini-2024-07-18:acme::a1b2c3, input"));
        assert_eq!(model.as_deref(), Some("ft:gpt-4o-mini-2024-07-18:acme::a1b2c3"));
    }

    #[test]
    fn anthropic_cost_lines() {
        assert_eq!(
            anthropic_cost(Some("tokens"), Some("cache_creation.ephemeral_1h_input_tokens"), None),
            CostKind::Tokens(Some(3))
        );
        assert_eq!(anthropic_cost(Some("web_search"), None, None), CostKind::ToolFee("web search".into()));
        assert_eq!(anthropic_cost(Some("code_execution"), None, None), CostKind::ToolFee("code execution".into()));
        assert_eq!(anthropic_cost(Some("tax"), None, None), CostKind::Other);
        assert_eq!(anthropic_context(Some("200k-1M")), Some(true));
        assert_eq!(anthropic_context(Some("0-200k")), Some(false));
    }
}
