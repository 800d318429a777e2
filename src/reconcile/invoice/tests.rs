use super::*;
use crate::reconcile::window::Window;

fn october() -> Window {
    Window::month("2026-10").unwrap()
}

const OPENAI_USAGE: &str = r#"{"object":"page","data":[
  {"object":"bucket","start_time":1790812800,"end_time":1790899200,"results":[
    {"object":"organization.usage.completions.result","input_tokens":1000,"output_tokens":50,"input_cached_tokens":600,"num_model_requests":4,"project_id":"proj_a","model":"gpt-4o-mini-2024-07-18","batch":true,"service_tier":"default"}]}],
  "has_more":false,"next_page":null}"#;

#[test]
fn openai_usage_counts_cached_tokens_inside_input() {
    let file = read(OPENAI_USAGE, "usage.json", 0).unwrap();
    assert_eq!(file.formats, vec![Format::OpenAiUsageJson]);
    let Detail::Usage(u) = &file.lines[0].detail else { panic!() };
    assert_eq!(u.tokens, Counts([400, 600, 0, 0, 50]));
    assert_eq!(u.requests, Some(4));
    assert_eq!(u.tier, BilledTier::priced(Tier::Batch));
    assert_eq!(file.lines[0].start.to_string(), "2026-10-01T00:00:00Z");
    assert_eq!(file.lines[0].origin.line, 3);
}

#[test]
fn openai_cost_amounts_are_read_from_their_decimal_text() {
    let page = r#"[{"object":"page","data":[{"object":"bucket","start_time":1790812800,"end_time":1790899200,"results":[
      {"object":"organization.costs.result","amount":{"value":0.13080438340307526,"currency":"usd"},"line_item":"gpt-4o-2024-08-06, output","project_id":"proj_a","organization_id":"org-1"}]}]}]"#;
    let file = read(page, "costs.json", 0).unwrap();
    let Detail::Cost(c) = &file.lines[0].detail else { panic!() };
    // More digits than a pico-dollar: rounded from the text, half away from zero.
    assert_eq!(c.usd, Usd(130_804_383_403));
    assert_eq!(file.organizations, vec!["org-1".to_string()]);
    assert_eq!(file.lines[0].model.as_deref(), Some("gpt-4o-2024-08-06"));
    assert_eq!(c.kind, CostKind::Tokens(Some(4)));
}

#[test]
fn anthropic_pages_one_per_line_and_cents_strings() {
    let usage = r#"{"data":[{"starting_at":"2026-10-02T00:00:00Z","ending_at":"2026-10-03T00:00:00Z","results":[{"uncached_input_tokens":10,"cache_creation":{"ephemeral_1h_input_tokens":3,"ephemeral_5m_input_tokens":2},"cache_read_input_tokens":5,"output_tokens":7,"server_tool_use":{"web_search_requests":2},"workspace_id":"wrkspc_a","model":"claude-sonnet-4-5-20250929","service_tier":"standard","context_window":"200k-1M"}]}],"has_more":true,"next_page":"p2"}
{"data":[{"starting_at":"2026-10-03T00:00:00Z","ending_at":"2026-10-04T00:00:00Z","results":[{"currency":"USD","amount":"123.4567","workspace_id":"wrkspc_a","description":"Claude Sonnet 4.5 Usage - Output Tokens","cost_type":"tokens","context_window":"0-200k","model":"claude-sonnet-4-5-20250929","service_tier":"batch","token_type":"output_tokens"}]}],"has_more":false,"next_page":null}"#;
    let file = read(usage, "anthropic.json", 3).unwrap();
    assert_eq!(file.formats, vec![Format::AnthropicUsageJson, Format::AnthropicCostJson]);
    let Detail::Usage(u) = &file.lines[0].detail else { panic!() };
    assert_eq!(u.tokens, Counts([10, 5, 2, 3, 7]));
    assert_eq!((u.long_context, u.web_search_requests, u.requests), (Some(true), 2, None));
    let Detail::Cost(c) = &file.lines[1].detail else { panic!() };
    assert_eq!(c.usd, Usd::parse_decimal("1.234567", 0).unwrap());
    assert_eq!(c.tier, Some(BilledTier::priced(Tier::Batch)));
    assert_eq!(file.lines[1].origin, Origin { file: 3, line: 2 });
}

#[test]
fn a_value_error_points_at_the_value() {
    let page = "{\"data\":[{\"starting_at\":\"2026-10-03T00:00:00Z\",\"results\":[\n  {\"currency\":\"USD\",\"amount\":\"1,5\",\"cost_type\":\"tokens\"}]}]}";
    let e = read(page, "cost.json", 0).unwrap_err();
    assert_eq!((e.line, e.column), (Some(2), Some(30)), "{e}");
    assert!(e.to_string().contains("decimal comma"), "{e}");
}

#[test]
fn combine_counts_repeated_lines_once_and_refuses_conflicts() {
    let a = read(OPENAI_USAGE, "a.json", 0).unwrap();
    let b = read(OPENAI_USAGE, "b.json", 1).unwrap();
    let invoice = combine(vec![a.clone(), b], &october()).unwrap();
    assert_eq!(invoice.lines.len(), 1);
    assert!(invoice.notes.iter().any(|n| n.contains("b.json: 1 line repeat lines of a.json")), "{:?}", invoice.notes);
    let changed = read(&OPENAI_USAGE.replace("\"output_tokens\":50", "\"output_tokens\":51"), "c.json", 1).unwrap();
    let e = combine(vec![a, changed], &october()).unwrap_err();
    assert!(matches!(e, InvoiceError::Conflict { .. }), "{e}");
}

#[test]
fn a_bucket_belongs_to_the_utc_day_of_its_midpoint() {
    let csv = "start_time_iso,end_time_iso,model,input_tokens,output_tokens,num_model_requests\n\
               2026-09-30T22:00:00Z,2026-10-01T22:00:00Z,gpt-4o-mini-2024-07-18,10,1,1\n\
               2026-09-29T22:00:00Z,2026-09-30T22:00:00Z,gpt-4o-mini-2024-07-18,10,1,1\n";
    let file = read(csv, "usage.csv", 0).unwrap();
    let invoice = combine(vec![file], &october()).unwrap();
    assert_eq!(invoice.lines.len(), 1);
    assert!(invoice.notes.iter().any(|n| n.contains("do not start at UTC midnight")), "{:?}", invoice.notes);
    assert!(invoice.notes.iter().any(|n| n.contains("cross the window's edge")), "{:?}", invoice.notes);
}

#[test]
fn amounts_beyond_a_pico_dollar_round_from_their_text() {
    use super::json::parse_decimal_amount;
    assert_eq!(parse_decimal_amount("0.1234567890125", 0), Ok(Usd(123_456_789_013)));
    assert_eq!(parse_decimal_amount("-0.1234567890125", 0), Ok(Usd(-123_456_789_013)));
    assert_eq!(parse_decimal_amount("1.23456789012345e-2", -2), Ok(Usd(123_456_789)));
    assert_eq!(parse_decimal_amount("12.5e-1", -2), Ok(Usd(12_500_000_000)));
    assert!(parse_decimal_amount("1,5", -2).unwrap_err().contains("decimal comma"));
}
