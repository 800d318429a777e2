use std::path::Path;

use jiff::civil::{Date, date};

use super::*;
use crate::money::{PerMTok, Usd};
use crate::trace::model::Usage;

fn book() -> &'static PriceBook {
    PriceBook::embedded()
}

fn usd_per_mtok(text: &str) -> PerMTok {
    PerMTok::from_usd_per_mtok(text).unwrap()
}

fn today() -> Date {
    date(2026, 11, 27)
}

fn overlay(text: &str) -> Result<PriceBook, OverrideError> {
    book().overlay(text, Path::new("pricing.toml"))
}

fn sheet_error(text: &str) -> SheetError {
    match overlay(text) {
        Err(OverrideError::Invalid(e)) => e,
        other => panic!("expected a sheet error, got {other:?}"),
    }
}

#[test]
fn embedded_book_parses_and_says_where_it_comes_from() {
    let info = book().info();
    assert!(info.sources.contains_key("litellm-1.82.6"));
    assert!(info.sources.values().all(|s| s.license == "MIT"));
    assert!(book().models().count() > 50);
}

#[test]
fn prices_json_carries_an_up_to_date_copy_of_curated_toml() {
    let from_toml = sheet::parse(data::CURATED_TOML, Path::new("curated.toml")).unwrap_or_else(|e| panic!("{e}"));
    let from_json = data::parse(data::PRICES_JSON).unwrap().curated;
    let unplaced = |mut s: sheet::Sheet| {
        let nowhere = Position { line: 0, column: 0 };
        for p in &mut s.prices {
            (p.at, p.model_at) = (nowhere, nowhere);
        }
        for a in &mut s.aliases {
            (a.at, a.alias_at, a.target_at) = (nowhere, nowhere, nowhere);
        }
        s
    };
    assert_eq!(unplaced(from_toml), unplaced(from_json), "curated.toml changed: rerun tools/pricebook/convert.py");
}

#[test]
fn gpt_4o_mini_costs_15_and_60_cents_per_million() {
    for spec in ["gpt-4o-mini", "openai:gpt-4o-mini", "openai/gpt-4o-mini", "gpt-4o-mini-2024-07-18"] {
        let row = book().price_at(spec, today()).unwrap();
        assert_eq!(row.input(), usd_per_mtok("0.15"), "{spec}");
        assert_eq!(row.output(), usd_per_mtok("0.60"), "{spec}");
        assert_eq!(row.standard.cache_read, Some(usd_per_mtok("0.075")));
        assert_eq!(row.model, ModelId::new(Provider::OpenAi, "gpt-4o-mini-2024-07-18"));
    }
}

#[test]
fn o3_price_cut_on_2025_06_10() {
    let before = book().price_at("o3", date(2025, 6, 9)).unwrap();
    assert_eq!(before.input(), usd_per_mtok("10"));
    assert_eq!(before.output(), usd_per_mtok("40"));
    assert_eq!(before.standard.cache_read, Some(usd_per_mtok("2.5")));
    assert!(matches!(before.source, RowSource::Curated { .. }));

    let after = book().price_at("openai:o3-2025-04-16", date(2025, 6, 10)).unwrap();
    assert_eq!(after.input(), usd_per_mtok("2"));
    assert_eq!(after.output(), usd_per_mtok("8"));
    assert_eq!(after.effective_from, Some(date(2025, 6, 10)));
    assert!(matches!(after.source, RowSource::Data { .. }));
}

#[test]
fn o3_history_shows_both_prices() {
    let history = book().history("o3").unwrap();
    let spans: Vec<_> = history.iter().map(|p| (p.from, p.until, p.row.input())).collect();
    assert_eq!(
        spans,
        vec![
            (Some(date(2025, 4, 16)), Some(date(2025, 6, 10)), usd_per_mtok("10")),
            (Some(date(2025, 6, 10)), None, usd_per_mtok("2")),
        ]
    );
}

#[test]
fn claude_sonnet_4_cache_write_5m_is_125_percent_of_input() {
    let row = book().price_at("anthropic:claude-sonnet-4-20250514", today()).unwrap();
    assert_eq!(row.input(), usd_per_mtok("3"));
    let write_5m = row.standard.cache_write_5m.unwrap();
    assert_eq!(write_5m.0 * 4, row.input().0 * 5);
    assert_eq!(row.standard.cache_write_1h, Some(usd_per_mtok("6")));
    let long = row.long_context.unwrap();
    assert_eq!(long.above_input_tokens, 200_000);
    assert_eq!(long.standard.input, usd_per_mtok("6"));
}

#[test]
fn gpt_4o_alias_moved_to_the_august_snapshot_on_2024_10_02() {
    let before = book().resolve("gpt-4o", date(2024, 10, 1)).unwrap();
    assert_eq!(before.model.name, "gpt-4o-2024-05-13");
    assert_eq!(before.alias.unwrap().alias.name, "gpt-4o");
    let after = book().resolve("openai:gpt-4o", date(2024, 10, 2)).unwrap();
    assert_eq!(after.model.name, "gpt-4o-2024-08-06");

    assert_eq!(book().price_at("gpt-4o", date(2024, 9, 1)).unwrap().input(), usd_per_mtok("5"));
    assert_eq!(book().price_at("gpt-4o", today()).unwrap().input(), usd_per_mtok("2.5"));
    // A snapshot name is never an alias.
    let snapshot = book().resolve("gpt-4o-2024-11-20", today()).unwrap();
    assert!(snapshot.alias.is_none());
}

#[test]
fn alias_history_follows_the_snapshot() {
    let history = book().history("gpt-4o").unwrap();
    let names: Vec<_> = history.iter().map(|p| p.row.model.name.as_str()).collect();
    assert_eq!(names, ["gpt-4o-2024-05-13", "gpt-4o-2024-08-06"]);
    assert_eq!(history[0].until, Some(date(2024, 10, 2)));
}

#[test]
fn unknown_models_have_no_price() {
    assert_eq!(book().price_at("gpt-17-ultra", today()), None);
    let err = book().quote("gpt-4o-mni", today()).unwrap_err();
    assert_eq!(err, LookupError::UnknownModel { spec: "gpt-4o-mni".into(), suggestion: Some("gpt-4o-mini".into()) });
    assert!(matches!(book().quote("sim:gpt-4o", today()), Err(LookupError::UnknownProvider { .. })));
}

#[test]
fn a_model_both_google_apis_price_needs_its_provider() {
    let err = book().quote("gemini-2.5-pro", today()).unwrap_err();
    assert!(matches!(err, LookupError::Ambiguous { ref candidates, .. } if candidates.len() == 2), "{err}");
    let google = book().price_at("gemini/gemini-2.5-pro", today()).unwrap();
    assert_eq!(google.model.provider, Provider::Google);
    let vertex = book().price_at("vertex_ai/gemini-2.5-pro", today()).unwrap();
    assert_eq!(vertex.model.provider, Provider::Vertex);
}

#[test]
fn rows_in_force_list_each_model_once() {
    let rows = book().rows_at(date(2025, 5, 1));
    let o3: Vec<_> = rows.iter().filter(|r| r.model.name == "o3-2025-04-16").collect();
    assert_eq!(o3.len(), 1);
    assert_eq!(o3[0].input(), usd_per_mtok("10"));
    assert_eq!(rows.len(), book().models().count());
    assert!(book().aliases_at(date(2025, 5, 1)).iter().any(|a| a.alias.name == "gpt-4o"));
}

#[test]
fn every_alias_target_is_priced() {
    for alias in book().aliases() {
        assert!(!book().rows_of(&alias.target_id()).is_empty(), "{} → {}", alias.alias, alias.target);
    }
}

#[test]
fn cost_prices_every_token_class_exactly() {
    let row = book().price_at("gpt-4o-mini", today()).unwrap();
    // 1,000 input of which 400 cached, 200 output of which 50 reasoning.
    let usage = Usage::from_inclusive(1_000, 400, 0, 200, 50);
    let cost = row.cost(&usage, Billing::default()).unwrap();
    let classes: Vec<_> = cost.lines.iter().map(|l| (l.class, l.tokens)).collect();
    assert_eq!(
        classes,
        [
            (TokenClass::Input, 600),
            (TokenClass::CacheRead, 400),
            (TokenClass::Output, 150),
            (TokenClass::Reasoning, 50)
        ]
    );
    // 600 × 0.15 + 400 × 0.075 + 200 × 0.60 = 90 + 30 + 120 µ$.
    assert_eq!(cost.total, Usd::from_micros(240));
}

#[test]
fn batch_uses_listed_batch_prices_or_the_half_price_rule() {
    // 100k input tokens: below every long-context threshold.
    let usage = Usage::from_additive(100_000, 0, 0, 0, 0, 0);
    let batch = Billing { tier: Tier::Batch, ..Billing::default() };
    let mini = book().price_at("gpt-4o-mini", today()).unwrap();
    let listed = mini.cost(&usage, batch).unwrap();
    assert_eq!(listed.total, Usd::from_micros(7_500));
    assert!(listed.lines[0].fallbacks.is_empty());

    let sonnet = book().price_at("claude-sonnet-4-5", today()).unwrap();
    let derived = sonnet.cost(&usage, batch).unwrap();
    assert_eq!(derived.total, Usd::from_micros(150_000));
    assert_eq!(derived.lines[0].fallbacks, [Fallback::BatchHalfOfStandard]);
}

#[test]
fn anthropic_cache_write_1h_falls_back_to_twice_input() {
    // litellm lists no 1h price for Sonnet 4.5; Anthropic's rule is 2× input.
    let row = book().price_at("claude-sonnet-4-5", today()).unwrap();
    assert_eq!(row.standard.cache_write_1h, None);
    let usage = Usage::from_additive(0, 0, 50_000, 50_000, 0, 0);
    let cost = row.cost(&usage, Billing::default()).unwrap();
    let write_1h = &cost.lines[1];
    assert_eq!(write_1h.class, TokenClass::CacheWrite1h);
    assert_eq!(write_1h.price, usd_per_mtok("6"));
    assert_eq!(write_1h.fallbacks, [Fallback::AnthropicCacheWrite1hOfInput]);
    assert!(cost.lines[0].fallbacks.is_empty());
}

#[test]
fn long_context_rates_apply_above_the_threshold_only_when_asked() {
    let row = book().price_at("claude-sonnet-4-20250514", today()).unwrap();
    let usage = Usage::from_additive(250_000, 0, 0, 0, 1_000, 0);
    let long = row.cost(&usage, Billing::default()).unwrap();
    assert!(long.long_context);
    assert_eq!(long.lines[0].price, usd_per_mtok("6"));
    assert_eq!(long.lines[1].price, usd_per_mtok("22.5"));
    let base = row.cost(&usage, Billing { long_context: false, ..Billing::default() }).unwrap();
    assert!(!base.long_context);
    assert_eq!(base.lines[0].price, usd_per_mtok("3"));
    let short = Usage::from_additive(200_000, 0, 0, 0, 1_000, 0);
    assert!(!row.cost(&short, Billing::default()).unwrap().long_context);
}

#[test]
fn unknown_prices_for_used_token_classes_are_errors_not_zero() {
    // Flex is not published for gpt-4o-mini.
    let row = book().price_at("gpt-4o-mini", today()).unwrap();
    let usage = Usage::from_additive(10, 0, 0, 0, 10, 0);
    let flex = Billing { tier: Tier::Flex, ..Billing::default() };
    assert_eq!(
        row.cost(&usage, flex).unwrap_err(),
        CostError::MissingPrice {
            model: row.model.clone(),
            tier: Tier::Flex,
            class: TokenClass::Input,
            long_context: false,
        }
    );
    // Google publishes no per-token cache-write price.
    let gemini = book().price_at("google:gemini-2.5-flash", today()).unwrap();
    let writes = Usage::from_additive(0, 0, 10, 0, 0, 0);
    assert!(matches!(
        gemini.cost(&writes, Billing::default()),
        Err(CostError::MissingPrice { class: TokenClass::CacheWrite5m, .. })
    ));
    // Zero tokens of a class need no price.
    assert!(gemini.cost(&Usage::default(), flex).unwrap().lines.is_empty());
}

#[test]
fn overrides_shadow_embedded_rows_from_their_start() {
    let book = overlay(
        r#"
[[price]]
model = "gpt-4o-mini"
effective_from = 2026-01-01
input = "0.12"
output = "0.48"
source = "Acme contract 2026"
"#,
    )
    .unwrap();
    let before = book.price_at("gpt-4o-mini", date(2025, 12, 31)).unwrap();
    assert_eq!(before.input(), usd_per_mtok("0.15"));
    let after = book.price_at("openai:gpt-4o-mini-2024-07-18", date(2026, 1, 1)).unwrap();
    assert_eq!(after.input(), usd_per_mtok("0.12"));
    assert_eq!(
        after.source,
        RowSource::Override { path: "pricing.toml".into(), line: 2, note: Some("Acme contract 2026".into()) }
    );
    // The override row stands alone: it lists no cache price, so none is assumed.
    assert_eq!(after.standard.cache_read, None);
    // The embedded book is untouched.
    assert_eq!(PriceBook::embedded().price_at("gpt-4o-mini", date(2026, 1, 1)).unwrap().input(), usd_per_mtok("0.15"));
}

#[test]
fn overrides_add_models_and_aliases() {
    let book = overlay(
        r#"
[[price]]
model = "openai:ft:gpt-4o-mini:acme::a1b2"
input = "0.3"
output = "1.2"

[[alias]]
alias = "openai:support-bot"
target = "ft:gpt-4o-mini:acme::a1b2"
"#,
    )
    .unwrap();
    let quote = book.quote("openai:support-bot", today()).unwrap();
    assert_eq!(quote.resolved.model.name, "ft:gpt-4o-mini:acme::a1b2");
    assert_eq!(quote.row.output(), usd_per_mtok("1.2"));
    assert_eq!(book.override_files(), [Path::new("pricing.toml")]);
}

#[test]
fn bad_override_files_name_file_line_and_column() {
    let err = sheet_error("[[price]]\nmodel = \"gpt-4o-mini\"\ninput = \"1\"\noutptu = \"2\"\n");
    assert_eq!((err.line, err.column), (4, 1), "{err}");
    assert!(err.message.contains("did you mean `output`?"), "{err}");

    let err = sheet_error("[[price]]\nmodel = \"gpt-17\"\ninput = \"1\"\noutput = \"2\"\n");
    assert_eq!((err.line, err.column), (2, 9), "{err}");
    assert_eq!(
        err.to_string(),
        "pricing.toml:2:9: unknown model `gpt-17` (did you mean `gpt-4o`?); to add a new model, name its provider: `openai:gpt-17`"
    );

    let err = sheet_error("[[price]]\nmodel = \"gpt-4o\"\ninput = \"1\"\noutput = \"2\"\n");
    assert!(err.message.contains("different snapshots over time"), "{err}");

    let err = sheet_error("[[price]]\nmodel = \"gemini-2.5-pro\"\ninput = \"1\"\noutput = \"2\"\n");
    assert!(err.message.contains("several providers"), "{err}");

    let err = sheet_error("[[alias]]\nalias = \"openai:cheap\"\ntarget = \"gpt-99\"\n");
    assert_eq!((err.line, err.column), (3, 10), "{err}");

    let twice = "[[price]]\nmodel = \"o3\"\ninput = \"1\"\noutput = \"2\"\n";
    let err = sheet_error(&twice.replace("\"o3\"", "\"o3-2025-04-16\"").repeat(2));
    assert_eq!(err.line, 5, "{err}");
    assert!(err.message.contains("a second row"), "{err}");

    let err = sheet_error("[[price]\n");
    assert_eq!(err.line, 1, "{err}");
    assert!(err.to_string().starts_with("pricing.toml:1:"), "{err}");
}

#[test]
fn a_missing_override_file_is_a_read_error() {
    let err = PriceBook::with_overrides(Path::new("/nonexistent/pricing.toml")).unwrap_err();
    assert!(matches!(err, OverrideError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/pricing.toml"));
}

#[test]
fn the_override_example_in_the_docs_is_valid() {
    let docs = include_str!("../../docs/pricing.md");
    let start = docs.find("```toml\n# pricing.toml").expect("example in docs/pricing.md") + 8;
    let example = &docs[start..start + docs[start..].find("```").unwrap()];
    let book = overlay(example).unwrap_or_else(|e| panic!("{e}"));
    let bot = book.quote("openai:support-bot", date(2026, 3, 1)).unwrap();
    assert_eq!(bot.row.input(), usd_per_mtok("0.30"));
    let mini = book.price_at("gpt-4o-mini", date(2026, 6, 1)).unwrap();
    assert_eq!(mini.long_context.unwrap().priority.unwrap().output, usd_per_mtok("1.60"));
}
