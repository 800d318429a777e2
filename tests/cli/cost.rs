//! `promptctl cost …` through the binary: hand-priced fixtures, reconciliation, plots, routing.

use crate::common::snapshot_settings;
use crate::trace::with_traces;

fn picos(v: &serde_json::Value) -> i128 {
    v.as_str().unwrap().parse().unwrap()
}

/// USD written as micro-dollars with one decimal (e.g. 151.2 µ$) in pico-dollars.
fn micro(tenths: i128) -> i128 {
    tenths * 100_000
}

#[test]
fn the_jsonl_fixture_prices_to_a_hand_computed_total() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let r = p.json(&["cost", "report"]);
    assert_eq!(r["schema"], "promptctl.cost-report/v1");
    // In tenths of a micro-dollar, per 1M-token list prices on the day:
    //  triage gpt-4.1-mini     410 × 0.40 + 32 × 1.60                          = 215.2
    //  support turn 1          156 × 0.15 + 1024 × 0.075 + 85 × 0.60           = 151.2
    //  support turn 2          268 × 0.15 + 1152 × 0.075 + 110 × 0.60          = 192.6
    //  support turn 3          282 × 0.15 + 1408 × 0.075 + 95 × 0.60           = 204.9
    //  priority tier           176 × 0.25 + 1024 × 0.125 + 100 × 1.00          = 272.0
    //  claude batch (½)       (320 × 3 + 1500 × 0.30 + 90 × 15) / 2            = 1380.0
    //  o4-mini reasoning       3000 × 1.10 + 1300 × 4.40                       = 9020.0
    //  looping stream          148 × 0.15 + 1152 × 0.075 + 140 × 0.60          = 192.6
    let expected = micro(2152 + 1512 + 1926 + 2049 + 2720 + 13800 + 90200 + 1926);
    assert_eq!(picos(&r["total_picodollars"]), expected);
    assert_eq!(r["priced"], 8);
    assert_eq!(r["without_usage"]["rows"], 1, "the cut stream");
    let unpriced = r["unpriced"].as_array().unwrap();
    assert_eq!(unpriced.len(), 1);
    assert_eq!(
        (unpriced[0]["model"].as_str(), unpriced[0]["rows"].as_i64()),
        (Some("vllm:llama-3.1-8b-instruct"), Some(1))
    );
    // Sorted per-request costs: 151.2 192.6 192.6 204.9 | 215.2 272 1380 9020 → median 210.05 µ$.
    assert!((r["per_request"]["p50"].as_f64().unwrap() - 210.05e-6).abs() < 1e-12);
    assert!((r["naive"]["naive_usd"].as_f64().unwrap() - 2100.5e-6).abs() < 1e-12);
    assert!((r["naive"]["ratio"].as_f64().unwrap() - 11628.5 / 2100.5).abs() < 1e-9);
    // The groups reconcile to the total, exactly.
    let sum: i128 = r["groups"].as_array().unwrap().iter().map(|g| picos(&g["picodollars"])).sum();
    assert_eq!(sum, expected);
    // Conversations: c-2003 (o4-mini + the loop) is 9212.6 of 11628.5.
    let c = &r["conversations"];
    assert_eq!((c["conversations"].as_i64(), c["partly_priced"].as_i64()), (Some(4), Some(1)));
    assert!((c["top_1pct_share"].as_f64().unwrap() - 9212.6 / 11628.5).abs() < 1e-9);
    let by_tenant = p.json(&["cost", "report", "--by", "tenant"]);
    let keys: Vec<&str> = by_tenant["groups"].as_array().unwrap().iter().map(|g| g["key"].as_str().unwrap()).collect();
    assert_eq!(keys, ["acme", "initech", "globex", "hooli"]);
    let settings = snapshot_settings(&p);
    settings.bind(|| insta::assert_snapshot!("cost_report_human", p.run(&["cost", "report", "--by", "prompt"], 0).0));
}

#[test]
fn otlp_and_langfuse_fixtures_price_to_hand_computed_totals() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/otlp-genai.json"]);
    // 167.7 + 207.6 (gpt-4o-mini) + 3855 + 1935 (claude) + 6600 (o4-mini) + 171 (the retry) µ$.
    let r = p.json(&["cost", "report"]);
    assert_eq!(picos(&r["total_picodollars"]), micro(1677 + 2076 + 38550 + 19350 + 66000 + 1710));
    assert_eq!(r["attempts"]["logical_requests"], 6);
    assert_eq!(r["attempts"]["attempts"], 7);
    let q = with_traces();
    q.json(&["trace", "import", "traces/langfuse-observations.json"]);
    // 300 × 0.15 + 512 × 0.075 + 100 × 0.60 = 143.4; 120 × 3 + 2000 × 0.30 + 300 × 3.75 + 80 × 15 = 3285;
    // 1500 × 1.10 + 900 × 4.40 = 5610 (reasoning billed as output).
    let r = q.json(&["cost", "report"]);
    assert_eq!(picos(&r["total_picodollars"]), micro(1434 + 32850 + 56100));
}

#[test]
fn the_svg_holds_both_plots() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/support-week.jsonl.gz"]);
    let r = p.json(&["cost", "report", "--svg", "cost.svg"]);
    assert_eq!(r["svg"], "cost.svg");
    let svg = p.read("cost.svg");
    assert!(svg.starts_with("<?xml") && svg.trim_end().ends_with("</svg>"));
    assert!(svg.contains("Cost per conversation vs. turns") && svg.contains("Cost per request"));
    let fit = &r["conversations"]["fit"];
    assert!(fit["exponent_ci95"][0].as_f64().unwrap() > 1.0, "super-linear: {fit}");
    let (_, stderr) = p.run(&["cost", "report", "--svg", "no/such/dir/cost.svg"], 2);
    assert!(stderr.contains("cannot write"), "{stderr}");
}

#[test]
fn routing_states_its_rates_and_assumptions() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/support-week.jsonl.gz"]);
    let args = [
        "cost",
        "route",
        "--to",
        "openai:o4-mini",
        "--when-prompt",
        "support-reply",
        "--when-input-above",
        "3000",
        "--workhorse-failure-rate",
        "0.15",
        "--target-failure-rate",
        "0.04",
        "--failure-cost",
        "5",
        // The bundled week has 14 escalations to o4-mini: enough to show observed rates in a test.
        "--min-observations",
        "10",
    ];
    let r = p.json(&args);
    assert_eq!(r["schema"], "promptctl.cost-route/v1");
    assert_eq!(r["rates"]["reasoning_ratio"]["source"], "observed");
    assert_eq!(r["rates"]["workhorse_failure_rate"]["source"], "configured");
    assert!(r["assumptions"].as_array().unwrap().len() >= 8);
    let (def, routed) = (&r["workhorse_by_default"], &r["routed"]);
    assert!(routed["expected_failures"].as_f64() < def["expected_failures"].as_f64());
    let delta = routed["all_in_usd"].as_f64().unwrap() - def["all_in_usd"].as_f64().unwrap();
    assert!((delta - r["delta_usd"].as_f64().unwrap()).abs() < 1e-5);
    let (stdout, _) = p.run(&args, 0);
    assert!(stdout.contains("Assumptions:") && stdout.contains("routing"), "{stdout}");
    let (_, stderr) = p.run(&["cost", "route", "--to", "openai:o3", "--when-prompt", "extract-order"], 2);
    assert!(stderr.contains("--reasoning-ratio"), "{stderr}");
    let (_, stderr) = p.run(&["cost", "route", "--to", "openai:o3"], 2);
    assert!(stderr.contains("say which requests are hard"), "{stderr}");
    let (_, stderr) = p.run(
        &[
            "cost",
            "route",
            "--to",
            "acme:nope",
            "--when-prompt",
            "triage",
            "--reasoning-ratio",
            "2",
            "--target-attempts",
            "1",
            "--target-failure-rate",
            "0.1",
            "--workhorse-failure-rate",
            "0.1",
        ],
        2,
    );
    assert!(stderr.contains("cannot price the target model"), "{stderr}");
}

#[test]
fn unknown_models_are_unknown_never_free() {
    let p = with_traces();
    p.write(
        "own.jsonl",
        r#"{"ts":"2026-10-05T12:00:00Z","provider":"acme","model":"acme-llm-2","usage":{"input_tokens":5000,"output_tokens":400}}
"#,
    );
    p.json(&["trace", "import", "own.jsonl"]);
    let r = p.json(&["cost", "report"]);
    assert_eq!(r["priced"], 0);
    assert_eq!(r["total_picodollars"], "0");
    assert_eq!(r["unpriced"][0]["rows"], 1);
    assert!(r["unpriced"][0]["reason"].as_str().unwrap().contains("unknown provider"));
    assert_eq!(r["groups"][0]["unpriced"], 1);
    assert!(r["per_request"]["p50"].is_null(), "no priced request, no median: {}", r["per_request"]);
    let (stdout, _) = p.run(&["cost", "report"], 0);
    assert!(stdout.contains("not priced, unknown cost: 1 row(s) of acme:acme-llm-2"), "{stdout}");
}

#[test]
fn an_empty_selection_says_so() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let (stdout, stderr) = p.run(&["cost", "report", "--since", "2030-01-01"], 0);
    assert!(stdout.is_empty() && stderr.contains("no requests since"), "{stderr}");
    let (_, stderr) = p.run(&["cost", "report", "--since", "2026-10-05", "--until", "2026-10-01"], 2);
    assert!(stderr.contains("is not before"), "{stderr}");
}
