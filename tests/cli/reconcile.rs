//! `promptctl reconcile` through the binary: the bundled month to the cent, the JSON contract, the
//! documents it writes, the exit code, and every kind of bad input.

use std::path::PathBuf;

use promptctl::pricing::PriceBook;
use promptctl::reconcile::generate::{self, Scenario};
use promptctl::reconcile::render::thousands;
use serde_json::Value;

use crate::common::{Project, copy_dir, repo_path, snapshot_settings};

const MONTH: &str = "fixtures/reconcile/2026-10";

fn fixture(rel: &str) -> PathBuf {
    repo_path(MONTH).join(rel)
}

/// A project holding a copy of the bundled month under `month/`.
fn bundled() -> Project {
    let p = Project::empty();
    copy_dir(&repo_path(MONTH), &p.path().join("month"));
    p
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

/// Whole cents from a JSON dollar number.
fn cents(v: &Value) -> i64 {
    (v.as_f64().unwrap_or_else(|| panic!("{v} is not a number")) * 100.0).round() as i64
}

/// Whole cents from an exact decimal string.
fn exact_cents(v: &Value) -> f64 {
    v.as_str().unwrap().parse::<f64>().unwrap() * 100.0
}

fn json(p: &Project, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (stdout, _) = p.run(&all, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// The identities of CLI.md, to the cent: eight causes in order that sum to the gap, gap = invoice − traces.
fn check_contract(doc: &Value) {
    assert_eq!(doc["schema"], "promptctl.reconcile/v1");
    let names: Vec<&str> = doc["causes"].as_array().unwrap().iter().map(|c| c["cause"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "non_token_fees",
            "untraced_calls",
            "cache_accounting",
            "reasoning_tokens",
            "price_book",
            "tier_modifiers",
            "token_estimation",
            "unexplained"
        ]
    );
    let sum: i64 = doc["causes"].as_array().unwrap().iter().map(|c| cents(&c["usd"])).sum();
    assert_eq!(sum, cents(&doc["gap_usd"]), "causes must sum to the gap to the cent");
    assert_eq!(cents(&doc["invoice"]["usd"]) - cents(&doc["traces"]["usd"]), cents(&doc["gap_usd"]));
    assert!(doc["causes"][1]["requests"].is_i64(), "untraced_calls carries a request count");
    for model in doc["by_model"].as_array().unwrap() {
        let sum: i64 = model["causes"].as_object().unwrap().values().map(cents).sum();
        assert_eq!(sum, cents(&model["gap_usd"]), "{model}");
    }
    for key in ["invoice", "traces"] {
        for field in ["usd", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "requests"] {
            assert!(doc[key][field].is_number(), "{key}.{field}");
        }
    }
}

/// Every cause within 2 % of the gap of the generator's truth.
fn check_attribution(doc: &Value) {
    let truth = expected();
    let gap = exact_cents(&truth["gap_usd"]);
    assert!((cents(&doc["gap_usd"]) as f64 - gap).abs() <= 1.0, "gap {} vs {}", doc["gap_usd"], truth["gap_usd"]);
    for cause in doc["causes"].as_array().unwrap() {
        let name = cause["cause"].as_str().unwrap();
        let want = exact_cents(&truth["causes"][name]);
        let got = cents(&cause["usd"]) as f64;
        assert!((got - want).abs() <= 0.02 * gap.abs() + 1.0, "{name}: got {got} cents, expected {want} (gap {gap})");
    }
}

#[test]
fn the_bundled_fixture_is_what_the_generator_makes() {
    let files = generate::fixture_files(&Scenario::bundled(), PriceBook::embedded());
    let bless = std::env::var("PROMPTCTL_BLESS").is_ok_and(|v| v == "1");
    for (rel, text) in &files {
        let path = fixture(rel);
        if bless {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            continue;
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == *text,
            "{MONTH}/{rel} is stale; regenerate with PROMPTCTL_BLESS=1 cargo test --test cli bundled_fixture"
        );
    }
}

#[test]
fn the_bundled_month_is_explained_to_the_cent_from_api_pages() {
    let p = bundled();
    let doc = json(
        &p,
        &["reconcile", "--invoice", "month/invoice", "--traces", "month/traces.jsonl", "--month", "2026-10"],
        0,
    );
    check_contract(&doc);
    check_attribution(&doc);
    assert_eq!(doc["passed"], true);
    for cause in doc["causes"].as_array().unwrap() {
        assert!(!cause["evidence"].as_array().unwrap().is_empty(), "every cause is present and has evidence: {cause}");
    }
    // The generator's widget under-counts by 6 % and leaves out 350 tokens of tool definitions.
    let fit = &doc["estimation_fits"][0];
    let within = |value: &str, se: &str, truth: f64| {
        (fit[value].as_f64().unwrap() - truth).abs() <= 3.0 * fit[se].as_f64().unwrap() + 1e-9
    };
    assert!(within("tokenizer_skew", "tokenizer_skew_se", 0.06), "{fit}");
    assert!(within("overhead_tokens_per_request", "overhead_se", 350.0), "{fit}");
    assert!(fit["tokenizer_skew_se"].as_f64().unwrap() < 0.02, "{fit}");
    let conversations = &doc["conversations"];
    assert!(conversations["exponent"].as_f64().unwrap() > 1.0, "conversation cost is super-linear: {conversations}");
}

#[test]
fn the_same_spans_in_overlapping_exports_are_counted_once() {
    let p = bundled();
    let args = ["reconcile", "--invoice", "month/invoice", "--traces", "month/traces.jsonl", "--month", "2026-10"];
    let once = json(&p, &args, 0);
    let total = p.read("month/traces.jsonl").lines().count();
    let mut twice_args = args.to_vec();
    twice_args.insert(5, "month/traces.jsonl");
    let twice = json(&p, &twice_args, 0);
    assert_eq!(twice, once);
    let (_, stderr) = p.run(&twice_args, 0);
    assert!(stderr.contains(&format!("{} request(s) were read twice", thousands(total as u64))), "{stderr}");
    // The same span with other tokens: the first one read counts, and the conflict is named.
    let first = p.read("month/traces.jsonl").lines().next().unwrap().to_string();
    let mut changed: Value = serde_json::from_str(&first).unwrap();
    let output = changed["usage"]["output_tokens"].as_u64().unwrap();
    changed["usage"]["output_tokens"] = (output + 1).into();
    p.write("changed.jsonl", &format!("{changed}\n"));
    let with_conflict = ["reconcile", "--invoice", "month/invoice", "--traces", "month/traces.jsonl", "changed.jsonl"];
    let (stdout, stderr) = p.run(&[&with_conflict[..], &["--month", "2026-10", "--format", "json"]].concat(), 0);
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), once);
    assert!(
        stderr.contains("1 request(s) appear again with other content") && stderr.contains("changed.jsonl:1"),
        "{stderr}"
    );
}

#[test]
fn the_bundled_month_is_explained_the_same_from_csv_exports() {
    let p = bundled();
    let api = json(
        &p,
        &["reconcile", "--invoice", "month/invoice", "--traces", "month/traces.jsonl", "--month", "2026-10"],
        0,
    );
    let csv = json(
        &p,
        &["reconcile", "--invoice", "month/invoice-csv", "--traces", "month/traces.jsonl", "--month", "2026-10"],
        0,
    );
    check_contract(&csv);
    check_attribution(&csv);
    assert_eq!(api["causes"], csv["causes"]);
    assert_eq!(api["invoice"], csv["invoice"]);
}

#[test]
fn human_output_and_documents() {
    let p = bundled();
    let args = [
        "reconcile",
        "--invoice",
        "month/invoice",
        "--traces",
        "month/traces.jsonl",
        "--month",
        "2026-10",
        "--markdown",
        "report.md",
        "--svg",
        "report.svg",
    ];
    let (stdout, stderr) = p.run(&args, 0);
    assert!(stderr.contains("wrote report.md") && stderr.contains("wrote report.svg"), "{stderr}");
    let markdown = p.read("report.md");
    assert!(markdown.starts_with("# Invoice reconciliation"), "{markdown}");
    assert!(markdown.contains("![Waterfall from traces to invoice](report.svg)"));
    for kind in [
        "non-token fees",
        "untraced calls",
        "cache accounting",
        "reasoning tokens",
        "price book",
        "tiers and modifiers",
        "token estimation",
        "unexplained",
    ] {
        assert!(markdown.contains(kind), "{kind} missing from the write-up");
    }
    let svg = p.read("report.svg");
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(svg.matches("<rect x=").count(), 10, "traces, eight causes, invoice");
    snapshot_settings(&p).bind(|| insta::assert_snapshot!("reconcile_bundled_human", stdout));
}

#[test]
fn a_window_within_the_month_reconciles_that_window() {
    let p = bundled();
    let doc = json(
        &p,
        &[
            "reconcile",
            "--invoice",
            "month/invoice",
            "--traces",
            "month/traces.jsonl",
            "--since",
            "2026-10-01",
            "--until",
            "2026-10-15T00:00:00+00:00",
        ],
        0,
    );
    check_contract(&doc);
    assert_eq!(doc["window"]["end"], "2026-10-15T00:00:00Z");
    let month = json(
        &p,
        &["reconcile", "--invoice", "month/invoice", "--traces", "month/traces.jsonl", "--month", "2026-10"],
        0,
    );
    assert!(cents(&doc["invoice"]["usd"]) < cents(&month["invoice"]["usd"]));
}

#[test]
fn exit_1_when_the_unexplained_share_exceeds_the_tolerance() {
    let p = bundled();
    let args = [
        "reconcile",
        "--invoice",
        "month/invoice",
        "--traces",
        "month/traces.jsonl",
        "--month",
        "2026-10",
        "--tolerance",
        "0.5%",
    ];
    let doc = json(&p, &args, 1);
    assert_eq!(doc["passed"], false);
    assert!(doc["unexplained_share"].as_f64().unwrap() > 0.005);
    let (stdout, _) = p.run(&args, 1);
    assert!(stdout.contains("above tolerance"), "{stdout}");
}

// ---- Small hand-written invoices for bad input -------------------------------------------------------

const OCT_1: i64 = 1_790_812_800;
const DAY: i64 = 86_400;

fn openai_usage_page(day: i64, model: &str, input: u64, cached: u64, output: u64, requests: u64) -> String {
    format!(
        r#"{{"object":"page","data":[{{"object":"bucket","start_time":{},"end_time":{},"results":[{{"object":"organization.usage.completions.result","input_tokens":{input},"output_tokens":{output},"input_cached_tokens":{cached},"num_model_requests":{requests},"project_id":"proj_a","model":"{model}","batch":false,"service_tier":"default"}}]}}],"has_more":false,"next_page":null}}"#,
        OCT_1 + day * DAY,
        OCT_1 + (day + 1) * DAY
    )
}

fn openai_cost_page(day: i64, org: &str, item: &str, value: &str) -> String {
    format!(
        r#"{{"object":"page","data":[{{"object":"bucket","start_time":{},"end_time":{},"results":[{{"object":"organization.costs.result","amount":{{"value":{value},"currency":"usd"}},"line_item":"{item}","project_id":"proj_a","organization_id":"{org}"}}]}}],"has_more":false,"next_page":null}}"#,
        OCT_1 + day * DAY,
        OCT_1 + (day + 1) * DAY
    )
}

fn anthropic_cost_page(amount: &str) -> String {
    format!(
        r#"{{"data":[{{"starting_at":"2026-10-02T00:00:00Z","ending_at":"2026-10-03T00:00:00Z","results":[
  {{"currency":"USD","amount":"{amount}","workspace_id":"wrkspc_a","description":"Claude Haiku 4.5 Usage - Input Tokens","cost_type":"tokens","context_window":"0-200k","model":"claude-haiku-4-5-20251001","service_tier":"standard","token_type":"uncached_input_tokens"}}
]}}],"has_more":false,"next_page":null}}"#
    )
}

fn anthropic_usage_page(uncached: u64) -> String {
    format!(
        r#"{{"data":[{{"starting_at":"2026-10-02T00:00:00Z","ending_at":"2026-10-03T00:00:00Z","results":[{{"uncached_input_tokens":{uncached},"cache_creation":{{"ephemeral_1h_input_tokens":0,"ephemeral_5m_input_tokens":0}},"cache_read_input_tokens":0,"output_tokens":0,"server_tool_use":{{"web_search_requests":0}},"api_key_id":null,"workspace_id":"wrkspc_a","model":"claude-haiku-4-5-20251001","service_tier":"standard","context_window":"0-200k"}}]}}],"has_more":false,"next_page":null}}"#
    )
}

/// One traced gpt-4o-mini request on 2026-10-01 per (input, output), with provider usage.
fn traces(rows: &[(u64, u64)]) -> String {
    rows.iter()
        .enumerate()
        .map(|(i, (input, output))| {
            format!(
                r#"{{"ts":"2026-10-01T10:00:{i:02}Z","provider":"openai","model":"gpt-4o-mini","response_model":"gpt-4o-mini-2024-07-18","project":"proj_a","logical_request_id":"lr-{i}","attempt":1,"status":"ok","usage_source":"provider","usage":{{"input_tokens":{input},"output_tokens":{output},"cache_read_tokens":0,"cache_write_tokens":0,"reasoning_tokens":0}}}}"#
            ) + "\n"
        })
        .collect()
}

fn small_project() -> Project {
    let p = Project::empty();
    p.write("usage.json", &openai_usage_page(0, "gpt-4o-mini-2024-07-18", 3000, 0, 600, 3));
    p.write("traces.jsonl", &traces(&[(1000, 200), (1000, 200), (1000, 200)]));
    p
}

fn reconcile_small(p: &Project, invoices: &[&str], code: i32) -> (String, String) {
    let mut args = vec!["reconcile", "--invoice"];
    args.extend(invoices);
    args.extend(["--traces", "traces.jsonl", "--month", "2026-10"]);
    p.run(&args, code)
}

#[test]
fn a_clean_small_month_has_no_gap() {
    let p = small_project();
    let doc = json(&p, &["reconcile", "--invoice", "usage.json", "--traces", "traces.jsonl", "--month", "2026-10"], 0);
    check_contract(&doc);
    assert_eq!(doc["gap_usd"], 0.0);
    assert_eq!(doc["invoice"]["requests"], 3);
    assert!(doc["notes"].as_array().unwrap().iter().any(|n| n.as_str().unwrap().contains("no cost lines")));
}

#[test]
fn invoice_pages_from_two_organizations_are_refused() {
    let p = small_project();
    p.write("costs-a.json", &openai_cost_page(0, "org-acme", "gpt-4o-mini-2024-07-18, input", "0.00045"));
    p.write("costs-b.json", &openai_cost_page(1, "org-globex", "gpt-4o-mini-2024-07-18, input", "0.1"));
    let (_, stderr) = reconcile_small(&p, &["usage.json", "costs-a.json", "costs-b.json"], 2);
    assert!(stderr.contains("two organizations: org-acme (costs-a.json) and org-globex (costs-b.json)"), "{stderr}");
    assert!(stderr.contains("one organization at a time"), "{stderr}");
}

#[test]
fn overlapping_pages_are_counted_once_and_said_so() {
    let p = small_project();
    p.write("usage-again.json", &openai_usage_page(0, "gpt-4o-mini-2024-07-18", 3000, 0, 600, 3));
    let once = json(&p, &["reconcile", "--invoice", "usage.json", "--traces", "traces.jsonl", "--month", "2026-10"], 0);
    let twice = json(
        &p,
        &["reconcile", "--invoice", "usage.json", "usage-again.json", "--traces", "traces.jsonl", "--month", "2026-10"],
        0,
    );
    assert_eq!(once["invoice"], twice["invoice"]);
    let (_, stderr) = reconcile_small(&p, &["usage.json", "usage-again.json"], 0);
    assert!(
        stderr.contains("usage-again.json: 1 line repeat lines of usage.json (overlapping pages); counted once"),
        "{stderr}"
    );
    // The same bucket with other numbers is not an overlap but a conflict.
    p.write("usage-later.json", &openai_usage_page(0, "gpt-4o-mini-2024-07-18", 3100, 0, 600, 3));
    let (_, stderr) = reconcile_small(&p, &["usage.json", "usage-later.json"], 2);
    assert!(stderr.contains("with different values"), "{stderr}");
}

#[test]
fn a_page_outside_the_window_is_left_out() {
    let p = small_project();
    p.write("september.json", &openai_usage_page(-3, "gpt-4o-mini-2024-07-18", 9000, 0, 900, 9));
    let with = json(
        &p,
        &["reconcile", "--invoice", "usage.json", "september.json", "--traces", "traces.jsonl", "--month", "2026-10"],
        0,
    );
    assert_eq!(with["gap_usd"], 0.0);
    let (_, stderr) = reconcile_small(&p, &["usage.json", "september.json"], 0);
    assert!(stderr.contains("september.json: 1 line outside the window"), "{stderr}");
    let (_, stderr) = reconcile_small(&p, &["september.json"], 2);
    assert!(stderr.contains("none of the invoice lines falls in the window"), "{stderr}");
}

#[test]
fn cents_strings_are_exact_with_exponents_and_thousands_separators() {
    let p = Project::empty();
    p.write("usage.json", &anthropic_usage_page(1_000_000));
    p.write("traces.jsonl", "");
    // 1.5e2 cents = $1.50; "1,000.0" cents = $10.00.
    for (amount, expected) in [("1.5e2", 1.5), ("1,000.0", 10.0), ("100", 1.0)] {
        p.write("cost.json", &anthropic_cost_page(amount));
        let doc = json(
            &p,
            &["reconcile", "--invoice", "usage.json", "cost.json", "--traces", "traces.jsonl", "--month", "2026-10"],
            0,
        );
        assert_eq!(doc["invoice"]["usd"], expected, "{amount}");
    }
    p.write("cost.json", &anthropic_cost_page("12,5"));
    let (_, stderr) = p.run(
        &["reconcile", "--invoice", "usage.json", "cost.json", "--traces", "traces.jsonl", "--month", "2026-10"],
        2,
    );
    assert!(stderr.contains("cost.json:2:") && stderr.contains("a decimal comma? write `12.5`"), "{stderr}");
}

#[test]
fn a_csv_with_an_unknown_header_names_the_columns_expected() {
    let p = small_project();
    p.write("export.csv", "day,tokens,dollars\n2026-10-01,100,0.01\n");
    let (_, stderr) = reconcile_small(&p, &["export.csv"], 2);
    assert!(stderr.contains("export.csv:1:1: unrecognized CSV header (day, tokens, dollars)"), "{stderr}");
    assert!(
        stderr.contains("num_model_requests")
            && stderr.contains("uncached_input_tokens")
            && stderr.contains("cost_type"),
        "{stderr}"
    );
    p.write("usage.csv", "start_time_iso,num_model_requests,output_tokens\n2026-10-01T00:00:00Z,1,5\n");
    let (_, stderr) = reconcile_small(&p, &["usage.csv"], 2);
    assert!(stderr.contains("no `model` column"), "{stderr}");
}

#[test]
fn an_empty_invoice_is_refused() {
    let p = small_project();
    p.write("empty.json", "\n");
    let (_, stderr) = reconcile_small(&p, &["empty.json"], 2);
    assert!(stderr.contains("empty.json: the invoice file is empty"), "{stderr}");
    p.write("no-buckets.json", r#"{"object":"page","data":[],"has_more":false,"next_page":null}"#);
    let (_, stderr) = reconcile_small(&p, &["no-buckets.json"], 2);
    assert!(stderr.contains("hold no usage or cost lines"), "{stderr}");
}

#[test]
fn traces_without_any_usage_count_every_billed_request_as_untraced() {
    let p = small_project();
    let usage_less: String = (0..3)
        .map(|i| format!(r#"{{"ts":"2026-10-01T10:00:0{i}Z","provider":"openai","model":"gpt-4o-mini","status":"timeout","usage_source":"missing"}}"#) + "\n")
        .collect();
    p.write("traces.jsonl", &usage_less);
    let doc = json(&p, &["reconcile", "--invoice", "usage.json", "--traces", "traces.jsonl", "--month", "2026-10"], 0);
    check_contract(&doc);
    assert_eq!(doc["traces"]["usd"], 0.0);
    assert_eq!(doc["causes"][1]["usd"], doc["gap_usd"]);
    assert_eq!(doc["causes"][1]["requests"], 3);
    let notes = doc["notes"].to_string();
    assert!(notes.contains("none of the 3 traced rows in the window carries usage"), "{notes}");
}

#[test]
fn a_model_the_price_book_does_not_know_is_reported_never_zero() {
    let p = small_project();
    p.write("usage.json", &openai_usage_page(0, "gpt-9-turbo", 1000, 0, 100, 1));
    let (_, stderr) = reconcile_small(&p, &["usage.json"], 2);
    assert!(stderr.contains("openai bills gpt-9-turbo"), "{stderr}");
    assert!(stderr.contains("never counted as $0"), "{stderr}");
    // A cost line for the input alone leaves the output unpriced: still an error.
    p.write("costs-in.json", &openai_cost_page(0, "org-acme", "gpt-9-turbo, input", "0.25"));
    let (_, stderr) = reconcile_small(&p, &["usage.json", "costs-in.json"], 2);
    assert!(stderr.contains("(100 tokens on 2026-10-01)"), "{stderr}");
    // With the cost report, the invoice's own prices value it, and the evidence says so.
    p.write("costs-out.json", &openai_cost_page(0, "org-acme", "gpt-9-turbo, output", "0.5"));
    p.write(
        "traces.jsonl",
        &traces(&[(1000, 200), (1000, 200), (1000, 200)]).replace("gpt-4o-mini-2024-07-18", "gpt-9-turbo"),
    );
    let doc = json(
        &p,
        &[
            "reconcile",
            "--invoice",
            "usage.json",
            "costs-in.json",
            "costs-out.json",
            "--traces",
            "traces.jsonl",
            "--month",
            "2026-10",
        ],
        0,
    );
    check_contract(&doc);
    assert_eq!(doc["invoice"]["usd"], 0.75);
    assert_eq!(doc["traces"]["usd"], 0.0, "the traces cannot price it: a dashboard shows $0");
    let price = doc["causes"][4]["evidence"].to_string();
    assert!(price.contains("gpt-9-turbo") && price.contains("not in the price book"), "{price}");
    assert!(doc["notes"].to_string().contains("gpt-9-turbo") || price.contains("$0"), "{doc}");
}

#[test]
fn mixed_time_zones_in_csv_exports_are_normalized_to_utc() {
    let p = small_project();
    let header = "start_time_iso,end_time_iso,project_id,model,batch,service_tier,num_model_requests,input_tokens,input_cached_tokens,output_tokens\n";
    p.write("utc.csv", &format!("{header}2026-10-01T00:00:00Z,2026-10-02T00:00:00Z,proj_a,gpt-4o-mini-2024-07-18,false,default,3,3000,0,600\n"));
    p.write(
        "zones.csv",
        &format!(
            "{header}2026-10-01T02:00:00+02:00,2026-10-02T02:00:00+02:00,proj_a,gpt-4o-mini-2024-07-18,false,default,2,2000,0,400\n2026-09-30T20:00:00-04:00,2026-10-01T20:00:00-04:00,proj_b,gpt-4o-mini-2024-07-18,false,default,1,1000,0,200\n"
        ),
    );
    let utc = json(&p, &["reconcile", "--invoice", "utc.csv", "--traces", "traces.jsonl", "--month", "2026-10"], 0);
    let zones = json(&p, &["reconcile", "--invoice", "zones.csv", "--traces", "traces.jsonl", "--month", "2026-10"], 0);
    assert_eq!(utc["invoice"], zones["invoice"]);
    assert_eq!(zones["gap_usd"], 0.0);
    p.write(
        "naive.csv",
        &format!("{header}2026-10-01 00:00:00,,proj_a,gpt-4o-mini-2024-07-18,false,default,3,3000,0,600\n"),
    );
    let (_, stderr) = reconcile_small(&p, &["naive.csv"], 2);
    assert!(stderr.contains("naive.csv:2:1: time `2026-10-01 00:00:00` has no UTC offset"), "{stderr}");
}

#[test]
fn a_truncated_json_page_is_refused_with_its_position() {
    let p = small_project();
    let page = openai_usage_page(0, "gpt-4o-mini-2024-07-18", 3000, 0, 600, 3);
    p.write("cut.json", &page[..page.len() / 2]);
    let (_, stderr) = reconcile_small(&p, &["cut.json"], 2);
    assert!(stderr.contains("cut.json:1:") && stderr.contains("truncated page"), "{stderr}");
}

#[test]
fn without_traces_it_reads_the_state() {
    let p = small_project();
    p.run(&["init"], 0);
    let conn = rusqlite::Connection::open(p.state()).unwrap();
    for i in 0..3 {
        conn.execute(
            "INSERT INTO request (source, source_key, key, ts_ms, provider, request_model, response_model, project,
                attempt, status, streamed, usage_source, input_total, input_uncached, cache_read, cache_write_5m,
                cache_write_1h, output_total, reasoning, batch)
             VALUES ('import', ?1, CAST(?1 AS BLOB), ?2, 'openai', 'gpt-4o-mini', 'gpt-4o-mini-2024-07-18', 'proj_a', 1,
                'ok', 0, 'provider', 1000, 1000, 0, 0, 0, 200, 0, 0)",
            rusqlite::params![format!("k{i}"), 1_790_848_800_000i64 + i],
        )
        .unwrap();
    }
    drop(conn);
    let doc = json(&p, &["reconcile", "--invoice", "usage.json", "--month", "2026-10"], 0);
    assert_eq!(doc["traces"]["requests"], 3);
    assert_eq!(doc["gap_usd"], 0.0);
    let fresh = Project::empty();
    fresh.write("usage.json", &openai_usage_page(0, "gpt-4o-mini-2024-07-18", 3000, 0, 600, 3));
    let (_, stderr) = fresh.run(&["reconcile", "--invoice", "usage.json", "--month", "2026-10"], 4);
    assert!(stderr.contains("--traces"), "{stderr}");
}

#[test]
fn the_window_is_required_and_checked() {
    let p = small_project();
    let (_, stderr) = p.run(&["reconcile", "--invoice", "usage.json", "--traces", "traces.jsonl"], 2);
    assert!(stderr.contains("--month"), "{stderr}");
    let (_, stderr) =
        p.run(&["reconcile", "--invoice", "usage.json", "--traces", "traces.jsonl", "--month", "2026-13"], 2);
    assert!(stderr.contains("is not a month"), "{stderr}");
}

#[test]
fn a_broken_trace_record_is_skipped_and_reported() {
    let p = small_project();
    let mut text = traces(&[(1000, 200), (1000, 200), (1000, 200)]);
    text.insert_str(0, "{\"ts\":\"2026-10-01T09:00:00Z\",\"model\":\n");
    text.push_str("{\"ts\":\"2026-10-01 11:00:00\",\"model\":\"gpt-4o-mini\"}\n");
    p.write("traces.jsonl", &text);
    let doc = json(&p, &["reconcile", "--invoice", "usage.json", "--traces", "traces.jsonl", "--month", "2026-10"], 0);
    assert_eq!(doc["traces"]["requests"], 3);
    assert_eq!(doc["gap_usd"], 0.0);
    let (_, stderr) = reconcile_small(&p, &["usage.json"], 0);
    assert!(stderr.contains("2 trace records could not be read and were skipped: traces.jsonl:1: "), "{stderr}");
    assert!(stderr.contains("; traces.jsonl:5: ts: ") && stderr.contains("has no UTC offset"), "{stderr}");
    let zoned = json(
        &p,
        &[
            "reconcile",
            "--invoice",
            "usage.json",
            "--traces",
            "traces.jsonl",
            "--month",
            "2026-10",
            "--assume-tz",
            "UTC",
        ],
        0,
    );
    assert_eq!(zoned["traces"]["requests"], 4);
    let (_, stderr) =
        p.run(&["reconcile", "--invoice", "usage.json", "--traces", "missing.jsonl", "--month", "2026-10"], 2);
    assert!(stderr.contains("missing.jsonl: file not found"), "{stderr}");
    p.write("export.csv", "ts,model\n2026-10-01T10:00:00Z,gpt-4o-mini\n");
    let (_, stderr) =
        p.run(&["reconcile", "--invoice", "usage.json", "--traces", "export.csv", "--month", "2026-10"], 2);
    assert!(stderr.contains("export.csv: cannot tell which kind of trace export this is"), "{stderr}");
    assert!(stderr.contains("OTLP/JSON, promptctl JSONL and Langfuse"), "{stderr}");
}

#[test]
fn a_truncated_trace_document_ends_the_run_naming_the_file() {
    let p = small_project();
    let span = |i: u32| {
        format!(
            r#"{{"traceId":"4bf92f3577b34da6a3ce929d0e0e47{i:02}","spanId":"00f067aa0ba902{i:02}","name":"chat gpt-4o-mini","startTimeUnixNano":"{}","endTimeUnixNano":"{}","attributes":[{{"key":"gen_ai.provider.name","value":{{"stringValue":"openai"}}}},{{"key":"gen_ai.request.model","value":{{"stringValue":"gpt-4o-mini"}}}},{{"key":"gen_ai.usage.input_tokens","value":{{"intValue":"1000"}}}},{{"key":"gen_ai.usage.output_tokens","value":{{"intValue":"200"}}}}]}}"#,
            1_790_848_800_000_000_000u64 + u64::from(i),
            1_790_848_801_000_000_000u64 + u64::from(i)
        )
    };
    let document = format!(
        "{{\"resourceSpans\":[{{\"resource\":{{}},\"scopeSpans\":[{{\"spans\":[\n{},\n{},\n{}\n]}}]}}]}}\n",
        span(0),
        span(1),
        span(2)
    );
    p.write("otel.json", &document);
    let doc = json(&p, &["reconcile", "--invoice", "usage.json", "--traces", "otel.json", "--month", "2026-10"], 0);
    assert_eq!(doc["traces"]["requests"], 3);
    assert_eq!(doc["gap_usd"], 0.0);
    let cut = document.len() - 300;
    p.write("otel.json", &document[..cut]);
    let (_, stderr) =
        p.run(&["reconcile", "--invoice", "usage.json", "--traces", "otel.json", "--month", "2026-10"], 2);
    assert!(stderr.contains("otel.json:4: "), "{stderr}");
}

/// `trace import` then `reconcile` from the state explains the month exactly as reading the export does.
#[test]
fn reconciling_from_the_state_gives_what_the_trace_file_gives() {
    let p = bundled();
    let (stdout, _) = p.run(&["trace", "import", "month/traces.jsonl"], 0);
    assert!(stdout.contains("4,170 new row(s)"), "{stdout}");
    let from_state = json(&p, &["reconcile", "--invoice", "month/invoice", "--month", "2026-10"], 0);
    let from_file = json(
        &p,
        &["reconcile", "--invoice", "month/invoice", "--traces", "month/traces.jsonl", "--month", "2026-10"],
        0,
    );
    check_contract(&from_state);
    check_attribution(&from_state);
    for key in ["invoice", "traces", "gap_usd", "causes", "by_model", "providers", "estimation_fits", "conversations"] {
        assert_eq!(from_state[key], from_file[key], "{key}");
    }
    assert_eq!(from_state, from_file);
}

/// The first week of the bundled month as one OTLP/JSON document (GenAI attributes), gzipped: made from
/// `traces.jsonl` by the trace generator's span writer.
const OTLP_WEEK: &str = "traces-week1.otlp.json.gz";
const WEEK_END: &str = "2026-10-08T00:00:00Z";

fn otlp_week() -> String {
    use promptctl::trace::import::{self, ImportOptions, Record};
    let file = std::fs::File::open(fixture("traces.jsonl")).unwrap();
    let end: jiff::Timestamp = WEEK_END.parse().unwrap();
    let source = import::open(file, None).unwrap();
    let mut spans = Vec::new();
    for record in import::records(source, &ImportOptions::default()) {
        let Record::Row(r) = record else { panic!("{record:?}") };
        if r.row.ts < end {
            let mut span = Vec::new();
            promptctl::trace::generate::otlp_span(&r.row, "00f067aa0ba902b7", &mut span);
            spans.push(String::from_utf8(span).unwrap());
        }
    }
    format!(
        "{{\"resourceSpans\":[{{\"resource\":{{\"attributes\":[{{\"key\":\"service.name\",\"value\":{{\"stringValue\":\"bundled-month\"}}}}]}},\"scopeSpans\":[{{\"scope\":{{\"name\":\"promptctl\"}},\"spans\":[\n{}\n]}}]}}]}}\n",
        spans.join(",\n")
    )
}

#[test]
fn the_otlp_week_is_the_bundled_traces_of_that_week() {
    use std::io::{Read, Write};
    let text = otlp_week();
    let path = fixture(OTLP_WEEK);
    if std::env::var("PROMPTCTL_BLESS").is_ok_and(|v| v == "1") {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(text.as_bytes()).unwrap();
        std::fs::write(&path, gz.finish().unwrap()).unwrap();
        return;
    }
    let mut on_disk = String::new();
    if let Ok(file) = std::fs::File::open(&path) {
        flate2::read::GzDecoder::new(file).read_to_string(&mut on_disk).unwrap();
    }
    assert!(
        on_disk == text,
        "{MONTH}/{OTLP_WEEK} is stale; regenerate with PROMPTCTL_BLESS=1 cargo test --test cli otlp_week"
    );
}

/// `--traces` reads every format `trace import` reads: the week as gzipped OTLP explains the same as the
/// JSONL of the month restricted to the week.
#[test]
fn an_otlp_export_explains_the_same_as_the_jsonl_of_the_same_calls() {
    let p = bundled();
    let week = |traces: &str| {
        json(
            &p,
            &[
                "reconcile",
                "--invoice",
                "month/invoice",
                "--traces",
                traces,
                "--since",
                "2026-10-01",
                "--until",
                WEEK_END,
            ],
            0,
        )
    };
    let otlp = week(&format!("month/{OTLP_WEEK}"));
    let jsonl = week("month/traces.jsonl");
    check_contract(&otlp);
    assert!(otlp["traces"]["requests"].as_u64().unwrap() > 500, "{}", otlp["traces"]);
    // Every cause but the credit (on the 31st) is present in the first week.
    let causes = otlp["causes"].as_array().unwrap();
    assert!(causes[..7].iter().all(|c| c["usd"] != 0.0), "{}", otlp["causes"]);
    for key in ["invoice", "traces", "gap_usd", "causes", "by_model", "providers", "conversations"] {
        assert_eq!(otlp[key], jsonl[key], "{key}");
    }
}

#[test]
fn langfuse_observations_are_read_and_other_observations_skipped_with_a_note() {
    let p = bundled();
    let langfuse = repo_path("fixtures/traces/langfuse-observations.json");
    let langfuse = langfuse.to_str().unwrap();
    let args = ["reconcile", "--invoice", "month/invoice", "--traces", langfuse, "--month", "2026-10"];
    let doc = json(&p, &args, 0);
    check_contract(&doc);
    // Four generations, with Langfuse's additive usage made inclusive (cache reads inside the input).
    assert_eq!(doc["traces"]["requests"], 4);
    assert_eq!(
        (doc["traces"]["input_tokens"].as_u64(), doc["traces"]["cache_read_tokens"].as_u64()),
        (Some(4732), Some(2512))
    );
    let (_, stderr) = p.run(&args, 0);
    assert!(
        stderr.contains("langfuse-observations.json: skipped 2 Langfuse observations that are not generations"),
        "{stderr}"
    );
}
