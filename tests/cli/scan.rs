//! `promptctl scan` through the binary, on the bundled leak fixture.

use crate::common::{Project, copy_dir, repo_path, snapshot_settings};

fn fixture() -> Project {
    let p = Project::empty();
    copy_dir(&repo_path("fixtures/scan"), p.path());
    p
}

const PLANTED_KEY: &str = "sk-proj-Qx7Lm2Vb9TzR4pW8nKc3Hy6JdF1sGa5Ue0XoBi2NvMqZtYrE";

#[test]
fn finds_the_planted_cross_tenant_leak_and_the_secret() {
    let p = fixture();
    let (stdout, _) = p.run(&["scan", "--traces", "traces.jsonl"], 1);
    let settings = snapshot_settings(&p);
    settings.bind(|| insta::assert_snapshot!("scan_human", stdout));
    let (stdout, _) = p.run(&["scan", "--traces", "traces.jsonl", "--format", "json"], 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["schema"], "promptctl.scan/v1");
    let findings = doc["findings"].as_array().unwrap();
    let overlap = findings.iter().find(|f| f["rule"] == "fewshot.tenant_overlap").expect("the mined example");
    assert_eq!(overlap["kind"], "overlap");
    assert_eq!(overlap["severity"], "critical");
    assert_eq!(overlap["path"], "prompts/support-reply.examples.yaml");
    assert_eq!(overlap["example_id"], "ex-04");
    let tenants: Vec<&str> = overlap["tenants"].as_array().unwrap().iter().map(|t| t["id"].as_str().unwrap()).collect();
    assert!(tenants.contains(&"acme-logistics") && tenants.contains(&"globex"), "{tenants:?}");
    assert!(
        findings.iter().any(|f| f["rule"] == "secret.openai_api_key" && f["path"] == "prompts/order-lookup.prompt")
    );
    assert!(findings.iter().any(|f| f["kind"] == "provenance" && f["example_id"] == "ex-04"));
    assert_eq!(doc["summary"]["trace_records"], 52);
    // Decoys stay quiet: the sandbox test card and the reserved example.com address.
    assert!(!findings.iter().any(|f| f["rule"].as_str().unwrap().starts_with("pii.")), "{findings:#?}");
}

#[test]
fn never_prints_the_raw_secret_in_any_output() {
    let p = fixture();
    let (human, _) = p.run(&["scan", "--traces", "traces.jsonl", "--sarif", "scan.sarif"], 1);
    let (json, _) = p.run(&["scan", "--traces", "traces.jsonl", "--format", "json"], 1);
    let sarif = p.read("scan.sarif");
    for (what, text) in [("human", &human), ("json", &json), ("sarif", &sarif)] {
        assert!(!text.contains(PLANTED_KEY), "{what} output contains the raw key");
        assert!(!text.contains("Qx7Lm2Vb9TzR4pW8"), "{what} output contains part of the raw key");
    }
    let state = std::fs::read(p.state()).unwrap();
    assert!(!state.windows(PLANTED_KEY.len()).any(|w| w == PLANTED_KEY.as_bytes()), "state holds the raw key");
}

#[test]
fn sarif_has_fingerprints_and_rules() {
    let p = fixture();
    p.run(&["scan", "--traces", "traces.jsonl", "--sarif", "scan.sarif"], 1);
    let sarif: serde_json::Value = serde_json::from_str(&p.read("scan.sarif")).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty());
    for r in results {
        assert!(r["partialFingerprints"]["promptctl/finding/v1"].as_str().unwrap().starts_with("f-"));
    }
}

#[test]
fn a_baseline_reports_only_new_findings_and_ids_survive_line_moves() {
    let p = fixture();
    let (json, _) = p.run(&["scan", "--traces", "traces.jsonl", "--format", "json"], 1);
    p.write("baseline.json", &json);
    let again = p.json(&["scan", "--traces", "traces.jsonl", "--baseline", "baseline.json"]);
    assert_eq!(again["findings"].as_array().unwrap().len(), 0);
    // Moving the examples down two lines keeps every id.
    let examples = p.read("prompts/support-reply.examples.yaml");
    p.write("prompts/support-reply.examples.yaml", &format!("# mined and hand-written examples\n\n{examples}"));
    let moved = p.json(&["scan", "--traces", "traces.jsonl", "--baseline", "baseline.json"]);
    assert_eq!(moved["findings"].as_array().unwrap().len(), 0, "{moved:#}");
}

#[test]
fn fail_on_sets_the_threshold() {
    let p = fixture();
    std::fs::remove_file(p.path().join("prompts/order-lookup.prompt")).unwrap();
    p.run(&["scan", "--fail-on", "critical"], 0);
    p.run(&["scan", "--traces", "traces.jsonl", "--fail-on", "critical"], 1);
}

#[test]
fn bad_trace_lines_are_counted_and_scanning_continues() {
    let p = fixture();
    let traces = p.read("traces.jsonl");
    let mut lines: Vec<&str> = traces.lines().collect();
    lines.insert(3, "this line is not JSON");
    lines.insert(7, "[1, 2, 3]");
    lines.insert(9, "{\"tenant_id\": \"globex\", \"messages\": [], \"output\": \"\"}");
    lines.insert(
        10,
        "{\"tenant_id\": \"hooli\", \"messages\": [{\"role\": \"user\", \"content\": \"\"}], \"tool_calls\": [1]}",
    );
    p.write("traces.jsonl", &(lines.join("\n") + "\n"));
    let (stdout, _) = p.run(&["scan", "--traces", "traces.jsonl", "--format", "json"], 1);
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(doc["summary"]["bad_lines"], 2);
    assert_eq!(doc["bad_lines"][0]["line"], 4);
    assert_eq!(doc["summary"]["trace_records"], 54);
    assert!(doc["findings"].as_array().unwrap().iter().any(|f| f["rule"] == "fewshot.tenant_overlap"));
}

#[test]
fn a_prompt_without_a_scope_is_a_finding() {
    let p = fixture();
    p.write("prompts/faq.prompt", "---\nmodel: openai:gpt-4o-mini\n---\n::: user\n{{ q }}\n");
    let doc = p.json_allowing(&["scan"], 1);
    assert!(
        doc["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["path"] == "prompts/faq.prompt" && f["kind"] == "provenance")
    );
}

#[test]
fn a_missing_examples_file_is_an_input_error() {
    let p = fixture();
    std::fs::remove_file(p.path().join("prompts/support-reply.examples.yaml")).unwrap();
    let (_, stderr) = p.run(&["scan"], 2);
    assert!(stderr.contains("prompts/support-reply.examples.yaml: file not found"), "{stderr}");
}

#[test]
fn non_utf8_and_unknown_rule_fields_are_input_errors() {
    let p = fixture();
    p.write_bytes("prompts/binary.prompt", b"---\nmodel: x\n---\n\xff\xfe\x00binary");
    let (_, stderr) = p.run(&["scan"], 2);
    assert!(stderr.contains("prompts/binary.prompt:4:1: not valid UTF-8"), "{stderr}");
    std::fs::remove_file(p.path().join("prompts/binary.prompt")).unwrap();
    let config = p.read("promptctl.toml").replace("fail_on = \"high\"", "fail_on = \"high\"\nrules = \"rules.yaml\"");
    p.write("promptctl.toml", &config);
    p.write(
        "rules.yaml",
        "rules:\n  - id: acme.token\n    description: Acme internal token\n    pattern: \"acme_[a-z0-9]{32}\"\n    severity: high\n    kewords: [acme_]\n",
    );
    let (_, stderr) = p.run(&["scan"], 2);
    assert!(stderr.contains("rules.yaml:6:5"), "{stderr}");
    assert!(stderr.contains("unknown key `kewords`; did you mean `keywords`?"), "{stderr}");
}

/// A finding's tenants as (tenant, role, traces).
type Tenants = Vec<(String, String, u64)>;

/// The overlap findings of a report, as (id, severity, tenants).
fn overlap_findings(doc: &serde_json::Value) -> Vec<(String, String, Tenants)> {
    doc["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["kind"] == "overlap")
        .map(|f| {
            let tenants = f["tenants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| {
                    (
                        t["id"].as_str().unwrap().into(),
                        t["role"].as_str().unwrap().into(),
                        t["n_traces"].as_u64().unwrap(),
                    )
                })
                .collect();
            (f["id"].as_str().unwrap().into(), f["severity"].as_str().unwrap().into(), tenants)
        })
        .collect()
}

#[test]
fn imported_rows_are_scanned_like_the_trace_file() {
    let p = fixture();
    // Before anything is imported the state holds no rows: no --traces, no overlap.
    let empty = p.json_allowing(&["scan"], 1);
    assert_eq!(empty["summary"]["trace_records"], 0);
    assert!(overlap_findings(&empty).is_empty());

    p.run(&["trace", "import", "traces.jsonl"], 0);
    let from_file = p.json_allowing(&["scan", "--traces", "traces.jsonl", "--no-stored-traces"], 1);
    let from_state = p.json_allowing(&["scan"], 1);
    let overlap = overlap_findings(&from_state);
    assert!(
        overlap.iter().any(|(_, severity, tenants)| severity == "critical"
            && tenants.iter().any(|t| t.0 == "acme-logistics")
            && tenants.iter().any(|t| t.0 == "globex")),
        "{overlap:#?}"
    );
    assert_eq!(overlap, overlap_findings(&from_file));

    let (file_summary, state_summary) = (&from_file["summary"], &from_state["summary"]);
    assert_eq!(file_summary["trace_records_from_files"], 52);
    assert_eq!(file_summary["trace_records_from_state"], 0);
    assert_eq!(state_summary["trace_records_from_files"], 0);
    assert_eq!(state_summary["trace_records_from_state"], state_summary["trace_records"]);
    assert!(state_summary["trace_records"].as_u64().unwrap() > 0);

    // The origin's first trace: file and line from the file, the trace id alone from the state.
    let first = |doc: &serde_json::Value| {
        let f = doc["findings"].as_array().unwrap().iter().find(|f| f["rule"] == "fewshot.tenant_overlap").unwrap();
        f["tenants"].as_array().unwrap().iter().find(|t| t["id"] == "acme-logistics").unwrap()["first_trace"].clone()
    };
    let (in_file, in_state) = (first(&from_file), first(&from_state));
    assert_eq!(in_file["source"], "file");
    assert_eq!(in_file["path"], "traces.jsonl");
    assert!(in_file["line"].as_u64().is_some());
    assert_eq!(in_state["source"], "state");
    assert!(in_state.get("path").is_none() && in_state.get("line").is_none(), "{in_state}");
    assert_eq!(in_state["trace_id"], in_file["trace_id"]);

    let (human, _) = p.run(&["scan"], 1);
    let trace_id = in_state["trace_id"].as_str().unwrap();
    assert!(human.contains(&format!("first trace {trace_id} (state)")), "{human}");
    assert!(human.contains("(0 from files,"), "{human}");
    p.run(&["scan", "--sarif", "scan.sarif"], 1);
    let sarif: serde_json::Value = serde_json::from_str(&p.read("scan.sarif")).unwrap();
    let result = sarif["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["ruleId"] == "fewshot.tenant_overlap")
        .unwrap();
    let related = result["relatedLocations"].as_array().unwrap();
    assert!(
        related.iter().any(|l| l["logicalLocations"][0]["name"] == trace_id && l.get("physicalLocation").is_none()),
        "{related:#?}"
    );

    // Skipped on request: the rows are still in the state, the scan does not read them.
    let skipped = p.json_allowing(&["scan", "--no-stored-traces"], 1);
    assert_eq!(skipped["summary"]["trace_records"], 0);
    assert!(overlap_findings(&skipped).is_empty());
}
