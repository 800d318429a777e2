//! `promptctl trace …` through the binary: importing each format into hand-computed rows, idempotence,
//! bad input, statistics and tails.

use std::io::{Read, Write};

use crate::common::{Project, repo_path, snapshot_settings};

/// A project with a copy of `fixtures/traces/` under `traces/`.
pub fn with_traces() -> Project {
    let p = Project::empty();
    crate::common::copy_dir(&repo_path("fixtures/traces"), &p.path().join("traces"));
    p
}

/// Runs with `--format json`, expects `code`, parses stdout.
pub fn json_with_code(p: &Project, args: &[&str], code: i32) -> serde_json::Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (stdout, _) = p.run(&all, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// One stored row's columns by span id.
fn row(p: &Project, span_id: &str) -> serde_json::Map<String, serde_json::Value> {
    let conn = rusqlite::Connection::open(p.state()).unwrap();
    let mut stmt = conn.prepare("SELECT * FROM request WHERE span_id = ?1").unwrap();
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    stmt.query_row([span_id], |r| {
        let mut map = serde_json::Map::new();
        for (i, name) in names.iter().enumerate() {
            let value = match r.get_ref(i)? {
                rusqlite::types::ValueRef::Null => serde_json::Value::Null,
                rusqlite::types::ValueRef::Integer(n) => n.into(),
                rusqlite::types::ValueRef::Real(f) => f.into(),
                rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into_owned().into(),
                rusqlite::types::ValueRef::Blob(_) => serde_json::Value::Null,
            };
            map.insert(name.clone(), value);
        }
        Ok(map)
    })
    .unwrap_or_else(|e| panic!("span {span_id}: {e}"))
}

fn count(p: &Project, sql: &str) -> i64 {
    let conn = rusqlite::Connection::open(p.state()).unwrap();
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}

/// (input_total, input_uncached, cache_read, cache_write_5m, output_total, reasoning)
fn tokens(r: &serde_json::Map<String, serde_json::Value>) -> [i64; 6] {
    ["input_total", "input_uncached", "cache_read", "cache_write_5m", "output_total", "reasoning"]
        .map(|k| r[k].as_i64().unwrap())
}

fn ts_ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

#[test]
fn otlp_genai_export_normalizes_to_hand_computed_rows() {
    let p = with_traces();
    let report = p.json(&["trace", "import", "traces/otlp-genai.json"]);
    assert_eq!(report["schema"], "promptctl.trace-import/v1");
    let file = &report["files"][0];
    assert_eq!(file["kind"], "otlp");
    assert_eq!(file["rows"], 7);
    assert_eq!(file["skipped"], 5);
    assert_eq!(file["skipped_by_reason"]["no_gen_ai_attributes"], 2, "the HTTP root and the app span");
    assert_eq!(file["skipped_by_reason"]["not_a_model_call"], 3, "the tool, the LangChain chain, the agent");
    assert_eq!(file["inferred_additive_usage"], 1);
    assert_eq!(file["errors"].as_array().unwrap().len(), 0);
    assert_eq!(report["rows"], 7);

    // New conventions, streamed: 1310 input of which 1152 cached; tenant from the resource.
    let r = row(&p, "2d3c1a5e7f9b4c11");
    assert_eq!(tokens(&r), [1310, 158, 1152, 0, 96, 0]);
    assert_eq!((r["latency_ms"].as_i64(), r["ttft_ms"].as_i64()), (Some(4200), Some(412)));
    assert_eq!(r["ts_ms"].as_i64().unwrap(), ts_ms("2026-10-01T09:00:00.100Z"));
    assert_eq!((r["tenant_id"].as_str(), r["conversation_id"].as_str()), (Some("acme"), Some("c-1001")));
    assert_eq!((r["finish_reason"].as_str(), r["streamed"].as_i64()), (Some("stop"), Some(1)));
    assert_eq!(r["response_model"], "gpt-4o-mini-2024-07-18");
    assert_eq!(
        count(
            &p,
            "SELECT checkpoints FROM request_stream s JOIN request r ON r.id = s.request_id WHERE r.span_id = '2d3c1a5e7f9b4c11'"
        ),
        24
    );
    // Old names (prompt/completion tokens, cache_read_input_tokens), with indexed messages.
    let r = row(&p, "53995c3f42cd8ad8");
    assert_eq!(tokens(&r), [1544, 264, 1280, 0, 120, 0]);
    assert!(r["messages"].as_str().unwrap().contains("first-line support agent"));
    assert_eq!(r["output"], "I checked again: the replacement left our warehouse this morning.");
    // Anthropic per the conventions: input includes reads and writes.
    let r = row(&p, "b7ad6b7169203331");
    assert_eq!(tokens(&r), [2120, 320, 1500, 300, 88, 0]);
    // Anthropic's own uncached count from an older instrumentation: made additive.
    let r = row(&p, "c17a8c2a3b4d5e6f");
    assert_eq!(tokens(&r), [1620, 120, 1500, 0, 75, 0]);
    // OpenInference, reasoning model.
    let r = row(&p, "1b2c3d4e5f6a7b8c");
    assert_eq!(tokens(&r), [2400, 2400, 0, 0, 900, 640]);
    assert_eq!((r["provider"].as_str(), r["conversation_id"].as_str()), (Some("openai"), Some("c-1002")));
    // A timeout and its retry: one logical request, two attempts; the timeout has no usage.
    let first = row(&p, "1111111111111111");
    let second = row(&p, "2222222222222222");
    assert_eq!((first["status"].as_str(), first["usage_source"].as_str()), (Some("timeout"), Some("missing")));
    assert_eq!((first["attempt"].as_i64(), second["attempt"].as_i64()), (Some(1), Some(2)));
    assert_eq!(first["logical_request_id"], second["logical_request_id"]);
    assert_eq!(first["error"], "Request timed out.");
    assert_eq!(tokens(&second), [900, 900, 0, 0, 60, 0]);
    assert_eq!(
        count(
            &p,
            "SELECT count(*) FROM request WHERE input_total != input_uncached + cache_read + cache_write_5m + cache_write_1h"
        ),
        0
    );

    // Importing again adds nothing.
    let again = p.json(&["trace", "import", "traces/otlp-genai.json"]);
    assert_eq!((again["rows"].as_i64(), again["duplicates"].as_i64()), (Some(0), Some(7)));
    assert_eq!(count(&p, "SELECT count(*) FROM request"), 7);
}

#[test]
fn jsonl_export_normalizes_to_hand_computed_rows() {
    let p = with_traces();
    let report = p.json(&["trace", "import", "traces/requests.jsonl"]);
    assert_eq!((report["files"][0]["kind"].as_str(), report["rows"].as_i64()), (Some("jsonl"), Some(10)));
    let r = row(&p, "a001000000000002");
    assert_eq!(tokens(&r), [1180, 156, 1024, 0, 85, 0]);
    assert_eq!(
        count(
            &p,
            "SELECT checkpoints FROM request_stream s JOIN request r ON r.id = s.request_id WHERE r.span_id = 'a001000000000002'"
        ),
        4
    );
    // A time with an offset is stored in UTC.
    assert_eq!(row(&p, "b001000000000001")["ts_ms"].as_i64().unwrap(), ts_ms("2026-10-03T08:15:00Z"));
    assert_eq!(row(&p, "b001000000000001")["service_tier"], "priority");
    let batch = row(&p, "c001000000000001");
    assert_eq!(tokens(&batch), [1820, 320, 1500, 0, 90, 0]);
    assert_eq!(batch["batch"], 1);
    assert_eq!(tokens(&row(&p, "d001000000000001")), [3000, 3000, 0, 0, 1300, 1000]);
    let cut = row(&p, "e001000000000001");
    assert_eq!((cut["usage_source"].as_str(), cut["finish_reason"].as_str()), (Some("missing"), None));
    assert_eq!(row(&p, "e002000000000001")["usage_source"], "estimated");
}

#[test]
fn langfuse_observations_normalize_to_hand_computed_rows() {
    let p = with_traces();
    let report = p.json(&["trace", "import", "traces/langfuse-observations.json"]);
    let file = &report["files"][0];
    assert_eq!(
        (file["kind"].as_str(), file["rows"].as_i64(), file["skipped"].as_i64()),
        (Some("langfuse"), Some(4), Some(2))
    );
    let r = row(&p, "7c1e5f0a-3b2d-4c8e-9f61-2a4b6d8e0c12");
    assert_eq!(tokens(&r), [812, 300, 512, 0, 100, 0]);
    assert_eq!((r["ttft_ms"].as_i64(), r["latency_ms"].as_i64()), (Some(430), Some(2400)));
    assert_eq!((r["tenant_id"].as_str(), r["conversation_id"].as_str()), (Some("wonka"), Some("lf-session-42")));
    assert_eq!(r["prompt_version"], "7");
    assert_eq!(tokens(&row(&p, "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c21")), [2420, 120, 2000, 300, 80, 0]);
    assert_eq!(tokens(&row(&p, "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c22")), [1500, 1500, 0, 0, 900, 700]);
    let failed = row(&p, "9a0b1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c23");
    assert_eq!((failed["status"].as_str(), failed["usage_source"].as_str()), (Some("timeout"), Some("missing")));
}

#[test]
fn gzip_is_read_by_content_and_the_kind_can_be_forced() {
    let p = with_traces();
    let text = std::fs::read(p.path().join("traces/requests.jsonl")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&text).unwrap();
    // No .gz in the name: detection is by content.
    p.write_bytes("export.data", &gz.finish().unwrap());
    let report = p.json(&["trace", "import", "export.data"]);
    assert_eq!((report["files"][0]["gzip"].as_bool(), report["rows"].as_i64()), (Some(true), Some(10)));
    // Forcing the wrong kind reads nothing valid and says so per document.
    let wrong = json_with_code(&p, &["trace", "import", "traces/requests.jsonl", "--kind", "otlp"], 2);
    assert_eq!(wrong["rows"], 0);
    assert!(wrong["files"][0]["errors"][0]["message"].as_str().unwrap().contains("not an OTLP trace export"));
}

#[test]
fn the_same_traffic_from_two_formats_is_imported_once() {
    let p = with_traces();
    let otlp = p.json(&["trace", "import", "traces/support-week.otlp.json.gz"]);
    let rows = otlp["rows"].as_i64().unwrap();
    assert!(rows > 1_000, "{otlp}");
    let jsonl = p.json(&["trace", "import", "traces/support-week.jsonl.gz"]);
    assert_eq!((jsonl["rows"].as_i64(), jsonl["duplicates"].as_i64()), (Some(0), Some(rows)));
    assert_eq!(jsonl["conflicts"], 0);
}

#[test]
fn bundled_generated_fixtures_match_the_generator() {
    let p = with_traces();
    for (kind, file) in [("otlp", "support-week.otlp.json.gz"), ("jsonl", "support-week.jsonl.gz")] {
        let args = ["trace", "generate", "--seed", "7", "--conversations", "300", "--no-messages", "--kind", kind];
        let (generated, _) = p.run(&args, 0);
        let mut bundled = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(p.path().join("traces").join(file)).unwrap())
            .read_to_string(&mut bundled)
            .unwrap();
        assert!(
            generated == bundled,
            "{file} no longer matches `promptctl {}`; regenerate it (docs/traces.md)",
            args.join(" ")
        );
    }
}

#[test]
fn a_truncated_document_keeps_what_came_before_and_names_the_line() {
    let p = with_traces();
    let report = json_with_code(&p, &["trace", "import", "traces/bad/truncated.otlp.json"], 2);
    let file = &report["files"][0];
    assert_eq!((file["rows"].as_i64(), file["skipped"].as_i64()), (Some(2), Some(2)));
    let error = &file["errors"][0];
    assert!(error["message"].as_str().unwrap().contains("truncated"), "{error}");
    assert!(error["line"].as_i64().unwrap() > 700, "the line where the cut span starts: {error}");
}

#[test]
fn bad_jsonl_lines_are_reported_by_line_and_the_rest_is_imported() {
    let p = with_traces();
    let report = json_with_code(&p, &["trace", "import", "traces/bad/mixed.jsonl"], 2);
    let file = &report["files"][0];
    assert_eq!(file["rows"], 2);
    let errors: Vec<(i64, String)> = file["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["line"].as_i64().unwrap(), e["message"].as_str().unwrap().to_string()))
        .collect();
    let lines: Vec<i64> = errors.iter().map(|e| e.0).collect();
    assert_eq!(lines, [2, 3, 4, 5, 6, 7]);
    assert!(errors[0].1.contains("expected a JSON object") && errors[0].1.contains("array"), "{errors:?}");
    assert!(errors[1].1.contains("found a string"), "{errors:?}");
    assert!(errors[2].1.contains("usage.input_tokens is negative (-12)"), "{errors:?}");
    assert!(errors[3].1.contains("more than any model"), "{errors:?}");
    assert!(errors[4].1.contains("no UTC offset") && errors[4].1.contains("--assume-tz"), "{errors:?}");
    assert!(errors[5].1.contains("EOF") || errors[5].1.contains("end"), "{errors:?}");
    // Human output names file:line.
    let (stdout, stderr) = p.run(&["trace", "import", "traces/bad/mixed.jsonl"], 2);
    assert!(stdout.contains("traces/bad/mixed.jsonl:4: usage.input_tokens is negative (-12)"), "{stdout}");
    assert!(stderr.contains("could not be imported"), "{stderr}");
}

#[test]
fn naive_times_need_a_zone_and_are_normalized_to_utc_with_one() {
    let p = with_traces();
    let refused = json_with_code(&p, &["trace", "import", "traces/bad/naive-times.jsonl"], 2);
    assert_eq!(refused["rows"], 0);
    assert_eq!(refused["errors"], 2);
    let report = p.json(&["trace", "import", "traces/bad/naive-times.jsonl", "--assume-tz", "Europe/Berlin"]);
    assert_eq!(report["rows"], 2);
    assert_eq!(row(&p, "7e57000000000001")["ts_ms"].as_i64().unwrap(), ts_ms("2026-10-05T12:00:00Z"));
    assert_eq!(row(&p, "7e57000000000002")["ts_ms"].as_i64().unwrap(), ts_ms("2026-10-05T12:30:00.250Z"));
    let (_, stderr) = p.run(&["trace", "import", "traces/bad/naive-times.jsonl", "--assume-tz", "Mars/Olympus"], 2);
    assert!(stderr.contains("not a time zone"), "{stderr}");
}

#[test]
fn the_same_span_with_other_content_is_a_conflict_and_the_stored_row_is_kept() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let report = json_with_code(&p, &["trace", "import", "traces/bad/conflict.jsonl"], 2);
    assert_eq!((report["rows"].as_i64(), report["conflicts"].as_i64()), (Some(0), Some(1)));
    let message = report["files"][0]["errors"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("c0ffee0000000000000000000000a001/a001000000000002") && message.contains("different content"),
        "{message}"
    );
    assert_eq!(row(&p, "a001000000000002")["output_total"], 85);
}

#[test]
fn unreadable_inputs_are_refused_before_anything_is_imported() {
    let p = with_traces();
    let (_, stderr) = p.run(&["trace", "import", "traces/requests.jsonl", "traces/nope.jsonl"], 2);
    assert!(stderr.contains("traces/nope.jsonl: file not found"), "{stderr}");
    assert!(!p.state().exists() || count(&p, "SELECT count(*) FROM request") == 0);
    let (_, stderr) = p.run(&["trace", "import", "traces/bad/not-traces.csv"], 2);
    assert!(stderr.contains("cannot tell which kind") && stderr.contains("--kind"), "{stderr}");
    let (_, stderr) = p.run(&["trace", "import", "traces/bad/empty.jsonl"], 2);
    assert!(stderr.contains("empty"), "{stderr}");
}

#[test]
fn standard_input_is_read_with_a_dash() {
    let p = with_traces();
    let text = std::fs::read(p.path().join("traces/requests.jsonl")).unwrap();
    let out = p.cmd().args(["trace", "import", "-", "--format", "json"]).write_stdin(text).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["files"][0]["path"].as_str(), report["rows"].as_i64()), (Some("-"), Some(10)));
}

#[test]
fn stats_by_model_prompt_and_day() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let stats = p.json(&["trace", "stats"]);
    assert_eq!(stats["schema"], "promptctl.trace-stats/v1");
    let all = &stats["overall"];
    assert_eq!((all["requests"].as_i64(), all["logical_requests"].as_i64()), (Some(10), Some(10)));
    assert_eq!(all["tokens"]["input_total"], 410 + 1180 + 1420 + 1690 + 1200 + 1820 + 3000 + 1300 + 200);
    assert_eq!(all["tokens"]["cache_read"], 1024 + 1152 + 1408 + 1024 + 1500 + 1152);
    assert_eq!((all["estimated_share"].as_f64(), all["missing_share"].as_f64()), (Some(0.1), Some(0.1)));
    // TTFTs 380, 395, 410, 240, 4100, 350, 420: p50 = 395, p90 = 420 + 0.4 × (4100 − 420) = 1892.
    assert_eq!(all["ttft_ms"]["p50"], 395.0);
    assert!((all["ttft_ms"]["p90"].as_f64().unwrap() - 1892.0).abs() < 1e-9);
    let days: Vec<&str> = stats["by_day"].as_array().unwrap().iter().map(|d| d["key"].as_str().unwrap()).collect();
    assert_eq!(days, ["2026-10-03", "2026-10-04"]);
    let filtered = p.json(&["trace", "stats", "--model", "openai:gpt-4o-mini", "--since", "2026-10-04"]);
    assert_eq!(filtered["overall"]["requests"], 2);
    let settings = snapshot_settings(&p);
    settings.bind(|| insta::assert_snapshot!("trace_stats_human", p.run(&["trace", "stats", "--by", "model"], 0).0));
}

#[test]
fn tails_in_the_hand_written_streams() {
    let p = with_traces();
    p.json(&["trace", "import", "traces/requests.jsonl"]);
    let tails = p.json(&["trace", "tails"]);
    assert_eq!(tails["schema"], "promptctl.trace-tails/v1");
    assert_eq!(tails["counts"]["loop"], 1);
    assert_eq!(tails["counts"]["truncated"], 1);
    assert_eq!(tails["counts"]["stall"], 0);
    let examples = tails["examples"].as_array().unwrap();
    let looped = examples.iter().find(|e| e["event"]["kind"] == "loop").unwrap();
    assert_eq!(looped["trace_id"], "c0ffee0000000000000000000000d002");
    assert_eq!(looped["event"]["repeated_chunks"], 13);
    let cut = examples.iter().find(|e| e["event"]["kind"] == "truncated").unwrap();
    assert_eq!((cut["span_id"].as_str(), cut["event"]["chunks"].as_i64()), (Some("e001000000000001"), Some(3)));
}

#[test]
fn tails_find_the_planted_ground_truth_end_to_end() {
    let p = Project::empty();
    p.run(
        &["trace", "generate", "--conversations", "400", "--seed", "3", "-o", "gen.jsonl", "--truth", "truth.jsonl"],
        0,
    );
    p.json(&["trace", "import", "gen.jsonl"]);
    let tails = p.json(&["trace", "tails", "--examples", "1000"]);
    let mut planted = std::collections::BTreeMap::<String, i64>::new();
    for line in p.read("truth.jsonl").lines() {
        let t: serde_json::Value = serde_json::from_str(line).unwrap();
        *planted.entry(t["kind"].as_str().unwrap().to_string()).or_default() += 1;
    }
    assert!(planted.len() == 6, "{planted:?}");
    for (kind, n) in &planted {
        assert_eq!(tails["counts"][kind].as_i64(), Some(*n), "{kind}: {}", tails["counts"]);
    }
    // Every example is a planted request of its kind.
    let truth: std::collections::BTreeSet<(String, String)> = p
        .read("truth.jsonl")
        .lines()
        .map(|l| {
            let t: serde_json::Value = serde_json::from_str(l).unwrap();
            (t["span_id"].as_str().unwrap().to_string(), t["kind"].as_str().unwrap().to_string())
        })
        .collect();
    for e in tails["examples"].as_array().unwrap() {
        let key = (e["span_id"].as_str().unwrap().to_string(), e["event"]["kind"].as_str().unwrap().to_string());
        assert!(truth.contains(&key), "{e}");
    }
    let clean = Project::empty();
    clean.run(&["trace", "generate", "--conversations", "300", "--clean", "-o", "clean.jsonl"], 0);
    clean.json(&["trace", "import", "clean.jsonl"]);
    let none = clean.json(&["trace", "tails"]);
    assert_eq!(none["with_tails"], 0, "{}", none["examples"]);
}
