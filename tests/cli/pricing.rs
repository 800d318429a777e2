//! `promptctl pricing …` through the binary.

use crate::common::{Project, snapshot_settings};
use crate::trace::{json_with_code, with_traces};

#[test]
fn show_a_model_on_a_day_follows_its_alias_and_history() {
    let p = Project::empty();
    let before = p.json(&["pricing", "show", "gpt-4o", "--at", "2024-09-01"]);
    assert_eq!(before["schema"], "promptctl.pricing-show/v1");
    assert_eq!(before["model"], "openai:gpt-4o-2024-05-13");
    assert_eq!(before["alias_of"], "openai:gpt-4o");
    assert_eq!(
        (before["row"]["standard"]["input"].as_f64(), before["row"]["standard"]["output"].as_f64()),
        (Some(5.0), Some(15.0))
    );
    let after = p.json(&["pricing", "show", "gpt-4o", "--at", "2024-11-01"]);
    assert_eq!(after["model"], "openai:gpt-4o-2024-08-06");
    assert_eq!(after["row"]["standard"]["input"], 2.5);
    assert!(after["history"].as_array().unwrap().len() >= 2);
    let settings = snapshot_settings(&p);
    settings.bind(|| {
        insta::assert_snapshot!(
            "pricing_show_human",
            p.run(&["pricing", "show", "anthropic:claude-sonnet-4-5", "--at", "2026-10-01"], 0).0
        );
        insta::assert_snapshot!(
            "pricing_show_json",
            p.run(&["pricing", "show", "anthropic:claude-sonnet-4-5", "--at", "2026-10-01", "--format", "json"], 0).0
        );
    });
}

#[test]
fn show_lists_every_model_and_refuses_unknown_ones() {
    let p = Project::empty();
    let all = p.json(&["pricing", "show", "--at", "2026-10-01", "--provider", "anthropic"]);
    let rows = all["rows"].as_array().unwrap();
    assert!(rows.len() > 5);
    assert!(rows.iter().all(|r| r["model"].as_str().unwrap().starts_with("anthropic:")));
    let (_, stderr) = p.run(&["pricing", "show", "gpt-4o-mimi"], 2);
    assert!(stderr.contains("did you mean `gpt-4o-mini`"), "{stderr}");
    let (_, stderr) = p.run(&["pricing", "show", "gemini-2.5-pro"], 2);
    assert!(stderr.contains("several providers") && stderr.contains("PROVIDER:MODEL"), "{stderr}");
}

#[test]
fn check_lists_models_without_a_price_and_fails() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/otlp-genai.json"]);
    let ok = p.json(&["pricing", "check"]);
    assert_eq!(ok["schema"], "promptctl.pricing-check/v1");
    assert_eq!((ok["rows"].as_i64(), ok["unpriced_rows"].as_i64()), (Some(7), Some(0)));
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let failed = json_with_code(&p, &["pricing", "check"], 1);
    assert_eq!(failed["unpriced_rows"], 1);
    let models = failed["models"].as_array().unwrap();
    let vllm = models.iter().find(|m| m["provider"] == "vllm").unwrap();
    assert_eq!(vllm["unpriced_rows"], 1);
    assert!(vllm["reason"].as_str().unwrap().contains("unknown provider `vllm`"), "{vllm}");
    let priority = models.iter().find(|m| m["tier"] == "priority").unwrap();
    assert_eq!(priority["unpriced_rows"], 0);
    let (stdout, _) = p.run(&["pricing", "check"], 1);
    assert!(stdout.contains("1 of 17 rows have no price"), "{stdout}");
}

#[test]
fn overrides_from_the_project_config_take_effect() {
    let p = with_traces();
    p.write("promptctl.toml", "[pricing]\noverrides = \"pricing.toml\"\n");
    p.write(
        "pricing.toml",
        "[[price]]\nmodel = \"vllm:llama-3.1-8b-instruct\"\ninput = \"0.02\"\noutput = \"0.02\"\nsource = \"our GPU hours\"\n",
    );
    let (_, stderr) = p.run(&["pricing", "show", "vllm:llama-3.1-8b-instruct"], 2);
    assert!(stderr.contains("vllm"), "an unknown provider cannot be added by the override file: {stderr}");
    p.write("pricing.toml", "[[price]]\nmodel = \"openai:gpt-4o-mini\"\ninput = \"0.10\"\noutput = \"0.40\"\ncache_read = \"0.05\"\nsource = \"MSA 2026\"\n");
    let shown = p.json(&["pricing", "show", "gpt-4o-mini", "--at", "2026-10-03"]);
    assert_eq!(shown["row"]["standard"]["input"], 0.1);
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let r = p.json(&["cost", "report", "--model", "gpt-4o-mini", "--until", "2026-10-03T09:01:00Z"]);
    // Turn 1 at the negotiated price: 156 × 0.10 + 1024 × 0.05 + 85 × 0.40 = 100.8 µ$.
    assert_eq!(r["total_picodollars"], "100800000");
}
