//! `promptctl eval …` and `sim serve` through the binary, against the in-process simulator and wiremock on
//! 127.0.0.1: contracts, statistics, resume after SIGKILL, faults.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use promptctl::eval::stats::{pass_at_k, pass_hat_k, wilson_interval};
use promptctl::sim::{self, Scenario, SimConfig, SimHandle};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::common::{Project, copy_dir, repo_path};

/// The simulator on its own runtime, for as long as the test holds it.
struct Sim {
    handle: Option<SimHandle>,
    runtime: tokio::runtime::Runtime,
    url: String,
}

impl Sim {
    fn start(config: SimConfig) -> Sim {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let handle = runtime.block_on(sim::start(config)).unwrap();
        let url = handle.base_url();
        Sim { handle: Some(handle), runtime, url }
    }

    fn scripted(scenario: &str) -> Sim {
        Sim::start(SimConfig {
            scenario: Scenario::from_yaml(scenario).unwrap(),
            retry_after_secs: 0,
            ..SimConfig::default()
        })
    }

    fn requests(&self) -> u64 {
        self.handle.as_ref().unwrap().stats().requests
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            self.runtime.block_on(handle.shutdown());
        }
    }
}

/// wiremock on its own runtime.
struct Wire {
    server: MockServer,
    runtime: tokio::runtime::Runtime,
}

impl Wire {
    fn start() -> Wire {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        let server = runtime.block_on(MockServer::start());
        Wire { server, runtime }
    }

    fn url(&self) -> String {
        format!("{}/v1", self.server.uri())
    }

    fn mount(&self, mock: Mock) {
        self.runtime.block_on(mock.mount(&self.server));
    }

    fn reset(&self) {
        self.runtime.block_on(self.server.reset());
    }

    fn received(&self) -> usize {
        self.runtime.block_on(self.server.received_requests()).map_or(0, |r| r.len())
    }
}

fn sse(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

/// A streamed OpenAI reply, with or without its usage chunk.
fn openai_stream(text: &str, usage: bool) -> String {
    let chunk =
        serde_json::json!({"model": "gpt-4o-mini-2024-07-18", "choices": [{"index": 0, "delta": {"content": text}}]});
    let finish = r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#;
    let usage_chunk = r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":3,"total_tokens":23}}"#;
    let mut events = vec![chunk.to_string(), finish.to_string()];
    if usage {
        events.push(usage_chunk.to_string());
    }
    events.push("[DONE]".into());
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    sse(&refs)
}

fn ok_stream(text: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_raw(openai_stream(text, true), "text/event-stream")
}

const GREETINGS: &str = "rules:
  - contains: refund
    reply: I have started a refund for order 4411.
  - contains: flaky
    replies:
      - { text: 'Sure, here is your refund.', p: 0.5 }
      - { text: Please wait., p: 0.5 }
default: Hello! How can I help?
";

/// A small suite with an inline prompt; `extra` goes under `provider:`.
fn suite(base_url: &str, samples: u32, require: u32, cases: &[(&str, &str, &str)], extra: &str) -> String {
    let mut text = format!(
        "name: small\nprompt: {{ inline: \"::: system\\nYou are a support agent.\\n::: user\\n{{{{ message }}}}\" }}\n\
         provider:\n  id: sim:gpt-4o-mini\n  base_url: {base_url}\n{extra}samples: {samples}\nrequire: {require}\nconcurrency: 4\ncases:\n"
    );
    for (id, message, contains) in cases {
        text.push_str(&format!(
            "  - id: {id}\n    vars: {{ message: \"{message}\" }}\n    assert:\n      - {{ type: icontains, value: \"{contains}\" }}\n"
        ));
    }
    text
}

fn project_with(suite_text: &str) -> Project {
    let p = Project::empty();
    p.write("evals/small.yaml", suite_text);
    p
}

fn run_json(p: &Project, args: &[&str], code: i32) -> Value {
    let mut all = args.to_vec();
    all.extend(["--format", "json"]);
    let (stdout, _) = p.run(&all, code);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn sql(p: &Project, query: &str) -> i64 {
    let conn = rusqlite::Connection::open(p.state()).unwrap();
    conn.query_row(query, [], |r| r.get(0)).unwrap()
}

fn triage_project() -> Project {
    let p = Project::with_prompts();
    copy_dir(&repo_path("evals"), &p.path().join("evals"));
    p
}

fn triage_sim() -> Sim {
    let text = std::fs::read_to_string(repo_path("evals/sim/triage.yaml")).unwrap();
    Sim::scripted(&text)
}

#[test]
fn the_triage_suite_tells_flaky_from_deterministic_and_matches_the_contract() {
    let sim = triage_sim();
    let p = triage_project();
    let summary_file = p.path().join("step-summary.md");
    let output = p
        .cmd()
        .env("GITHUB_STEP_SUMMARY", &summary_file)
        .args(["eval", "run", "evals/triage.yaml", "--base-url", &sim.url, "--format", "json"])
        .args(["--junit", "junit.xml", "--markdown", "summary.md"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", String::from_utf8_lossy(&output.stderr));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["schema"], "promptctl.eval-run/v1");
    assert_eq!((report["samples"].as_u64(), report["require"].as_u64()), (Some(5), Some(4)));
    assert_eq!(report["provider"], "sim:gpt-4.1-mini");
    assert_eq!(report["prompt"]["name"], "triage");
    assert_eq!(report["status"], "complete");
    let case = |id: &str| report["cases"].as_array().unwrap().iter().find(|c| c["id"] == id).unwrap().clone();
    assert_eq!(case("unrecognised-charge")["status"], "fail", "a deterministic failure");
    assert_eq!(case("unrecognised-charge")["passed"], 0);
    assert_eq!(case("double-charge")["status"], "pass");
    let flaky: Vec<String> = report["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["status"] == "pass-flaky" || c["status"] == "fail-flaky")
        .map(|c| c["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!flaky.is_empty(), "the scenario makes some cases flaky");
    for id in &flaky {
        assert!(["third-contact", "wrong-size", "refund-delay"].contains(&id.as_str()), "{id} is not scripted flaky");
    }
    // Statistics match the reference functions, per case.
    for c in report["cases"].as_array().unwrap() {
        let (passed, failed, errors) =
            (c["passed"].as_u64().unwrap(), c["failed"].as_u64().unwrap(), c["errors"].as_u64().unwrap());
        assert_eq!(passed + failed + errors, 5);
        assert_eq!(c["samples"], 5);
        for k in 1..=5u64 {
            let at = c["pass_at_k"][k.to_string()].as_f64().unwrap();
            let hat = c["pass_hat_k"][k.to_string()].as_f64().unwrap();
            assert!((at - pass_at_k(5, passed, k).unwrap()).abs() < 1e-6, "{c}");
            assert!((hat - pass_hat_k(5, passed, k).unwrap()).abs() < 1e-6, "{c}");
        }
        let w = wilson_interval(passed, 5, 0.05).unwrap();
        assert!((c["wilson"][0].as_f64().unwrap() - w.lower).abs() < 1e-6);
        assert!((c["wilson"][1].as_f64().unwrap() - w.upper).abs() < 1e-6);
        assert!(c["cost_usd"].as_f64().unwrap() > 0.0, "sim:gpt-4.1-mini is priced as gpt-4.1-mini");
        assert!(c["tokens"]["input"].as_u64().unwrap() > 0);
        assert!(c["latency_ms"]["p50"].is_number() && c["ttft_ms"]["p95"].is_number());
    }
    let s = &report["summary"];
    let statuses: u64 =
        ["pass", "pass_flaky", "fail_flaky", "fail", "error"].iter().map(|k| s[k].as_u64().unwrap()).sum();
    assert_eq!(statuses, s["cases"].as_u64().unwrap());
    assert_eq!(s["cases"], 20);
    assert_eq!(s["requests"], 100);
    assert_eq!(s["retries"], 0);
    assert_eq!(report["gate"]["passed"], false);
    assert!(report["gate"]["reason"].as_str().unwrap().contains("below 4-of-5"), "{}", report["gate"]);
    // Every sample is a trace: request rows with checkpoints, one per attempt.
    assert_eq!(
        sql(&p, "SELECT count(*) FROM request WHERE source = 'eval' AND streamed = 1 AND ttft_ms IS NOT NULL"),
        100
    );
    assert!(sql(&p, "SELECT sum(checkpoints) FROM request_stream") >= 100);
    assert_eq!(sql(&p, "SELECT count(*) FROM eval_sample WHERE request_id IS NULL"), 0);
    // `eval show --format json` prints the same document.
    let run_id = report["run_id"].as_str().unwrap();
    let (shown, _) = p.run(&["eval", "show", run_id, "--format", "json"], 1);
    assert_eq!(serde_json::from_str::<Value>(&shown).unwrap(), report);
    // Report files.
    let junit = p.read("junit.xml");
    assert!(junit.contains("<testcase name=\"unrecognised-charge\""), "{junit}");
    assert!(junit.contains("deterministic failure"), "{junit}");
    assert!(junit.contains("name=\"sample.0\""), "{junit}");
    assert!(junit.matches("<testcase").count() == 20);
    if flaky.iter().any(|id| case(id)["status"] == "pass-flaky") {
        assert!(junit.contains("<flakyFailure"), "{junit}");
    }
    let md = p.read("summary.md");
    assert!(md.contains("| unrecognised-charge | ❌ fail (deterministic) |"), "{md}");
    assert_eq!(std::fs::read_to_string(&summary_file).unwrap().trim(), md.trim());
    // The human side of the same run: a flaky case side by side.
    let (human, _) = p.run(&["eval", "show", run_id, "--case", &flaky[0]], 1);
    assert!(human.contains("× pass (samples") && human.contains("× fail (samples"), "{human}");
    assert!(human.contains("✗ "), "{human}");
    let (table, _) = p.run(&["eval", "show", "latest"], 1);
    assert!(table.contains("fail (deterministic)") && table.contains("✗✗✗✗✗"), "{table}");
}

#[test]
fn bad_suites_are_rejected_with_positions_before_any_request() {
    let base = suite("http://127.0.0.1:9/v1", 3, 2, &[("a", "hi", "hello")], "");
    let p = project_with(&base);
    let cases = [
        (base.replace("concurrency: 4", "concurency: 4"), "evals/small.yaml:8:1", "did you mean `concurrency`"),
        (base.replace("require: 2", "require: 4"), "evals/small.yaml:7", "more than `samples: 3`"),
        (base.replace("samples: 3", "samples: 0"), "evals/small.yaml:6", "`samples` must be at least 1"),
        (
            format!("{base}  - id: a\n    vars: {{ message: x }}\n    assert: [{{type: contains, value: x}}]\n"),
            "evals/small.yaml:14",
            "duplicate case id `a`",
        ),
        (base.replace("{{ message }}", "{{ mesage }}"), "evals/small.yaml:10", "case `a`"),
    ];
    for (text, position, message) in cases {
        p.write("evals/small.yaml", &text);
        let (_, stderr) = p.run(&["eval", "run", "evals/small.yaml"], 2);
        assert!(stderr.contains(position), "{position}: {stderr}");
        assert!(stderr.contains(message), "{message}: {stderr}");
    }
    p.write("evals/small.yaml", &base.replace("prompt: { inline", "prompt: support-reply@production\nx: { inline"));
    let (_, stderr) = p.run(&["eval", "run", "evals/small.yaml"], 2);
    assert!(stderr.contains("evals/small.yaml:3:1: unknown key `x`"), "{stderr}");
    p.write(
        "evals/missing.yaml",
        "name: m\nprompt: prompts/nope.prompt\nassert: [{type: is-json}]\ncases: [{id: a}]\n",
    );
    let (_, stderr) = p.run(&["eval", "run", "evals/missing.yaml"], 2);
    assert!(stderr.contains("prompts/nope.prompt") && stderr.contains("not found"), "{stderr}");
    p.write("evals/cases.jsonl", "{\"id\": \"a\", \"vars\": {\"message\": \"hi\"}}\n{\"id\": \"b\", \"vars\": {\"message\": \"hi\"}, \"asert\": []}\n");
    p.write(
        "evals/file.yaml",
        "name: f\nprompt: { inline: \"{{ message }}\" }\nassert: [{type: is-json}]\ncases_file: cases.jsonl\n",
    );
    let (_, stderr) = p.run(&["eval", "run", "evals/file.yaml"], 2);
    assert!(stderr.contains("evals/cases.jsonl:2"), "{stderr}");
    assert!(stderr.contains("did you mean `assert`"), "{stderr}");
    assert!(!p.state().exists() || sql(&p, "SELECT count(*) FROM eval_run") == 0, "nothing was recorded");
}

#[test]
fn an_unreachable_provider_is_exit_3_after_retries_and_the_run_resumes() {
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{closed}/v1");
    let p = project_with(&suite(
        &url,
        2,
        1,
        &[("hello", "hi", "hello"), ("refund", "I want a refund", "refund")],
        "  max_attempts: 2\n",
    ));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 3);
    assert_eq!(report["summary"]["sample_errors"], 4);
    assert_eq!(report["summary"]["requests"], 8, "two attempts per sample");
    assert_eq!(report["summary"]["retries"], 4);
    assert_eq!(report["summary"]["error"], 2);
    assert_eq!(report["status"], "partial");
    assert_eq!(report["stop_reason"], "provider_errors");
    let (_, stderr) = p.run(&["eval", "show", "latest"], 3);
    assert!(stderr.is_empty(), "{stderr}");
    let list = run_json(&p, &["eval", "list"], 0);
    assert_eq!(list["runs"][0]["status"], "partial");
    assert_eq!(list["runs"][0]["samples_done"], 0);
    // The provider comes back: resume runs the four samples again, attempts numbered after the failed ones.
    let sim = Sim::scripted(GREETINGS);
    let run_id = report["run_id"].as_str().unwrap();
    let resumed = run_json(&p, &["eval", "resume", run_id, "--base-url", &sim.url], 0);
    assert_eq!(resumed["status"], "complete");
    assert_eq!(resumed["summary"]["sample_errors"], 0);
    assert_eq!(resumed["summary"]["requests"], 12);
    assert_eq!(sim.requests(), 4);
    assert_eq!(sql(&p, "SELECT max(attempt) FROM request WHERE status = 'ok'"), 3);
}

#[test]
fn retry_after_is_honoured_and_every_retry_is_counted() {
    let wire = Wire::start();
    wire.mount(
        Mock::given(method("POST"))
            .respond_with(
                ResponseTemplate::new(429)
                    .insert_header("retry-after", "1")
                    .set_body_string(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
            )
            .up_to_n_times(2)
            .with_priority(1),
    );
    wire.mount(Mock::given(method("POST")).respond_with(ok_stream("Hello there")).with_priority(2));
    let p = project_with(&suite(&wire.url(), 1, 1, &[("hello", "hi", "hello")], ""));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 0);
    assert_eq!(report["cases"][0]["retries"], 2);
    assert_eq!(report["cases"][0]["requests"], 3);
    assert_eq!(report["summary"]["retries"], 2);
    assert_eq!(sql(&p, "SELECT attempts FROM eval_sample"), 3);
    let gap = |a: u32| {
        sql(
            &p,
            &format!(
                "SELECT (SELECT ts_ms FROM request WHERE attempt = {}) - (SELECT ts_ms + latency_ms FROM request WHERE attempt = {a})",
                a + 1
            ),
        )
    };
    assert!(gap(1) >= 990 && gap(2) >= 990, "Retry-After: 1 waits a second ({}, {})", gap(1), gap(2));
    assert_eq!(sql(&p, "SELECT count(*) FROM request WHERE status = 'error' AND error LIKE '%429%'"), 2);
}

#[test]
fn a_stalled_stream_times_out_and_is_an_error_not_a_fail() {
    let sim = Sim::start(SimConfig { stall_rate: 1.0, stall: Duration::from_secs(30), ..SimConfig::default() });
    let p =
        project_with(&suite(&sim.url, 1, 1, &[("hello", "hi", "simulated")], "  timeout_ms: 300\n  max_attempts: 2\n"));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 3);
    assert_eq!(report["cases"][0]["status"], "error");
    assert_eq!(report["cases"][0]["failed"], 0);
    assert_eq!(report["cases"][0]["errors"], 1);
    assert_eq!(sql(&p, "SELECT count(*) FROM request WHERE status = 'timeout'"), 2);
    let case = run_json(&p, &["eval", "show", "latest", "--case", "hello"], 3);
    assert!(case["runs"][0]["error"].as_str().unwrap().contains("timed out (idle gap"), "{case}");
}

#[test]
fn a_stream_without_usage_is_shown_as_missing_usage_not_as_zero_cost() {
    let wire = Wire::start();
    wire.mount(Mock::given(method("POST")).respond_with(
        ResponseTemplate::new(200).set_body_raw(openai_stream("Hello there", false), "text/event-stream"),
    ));
    let p = project_with(&suite(&wire.url(), 2, 2, &[("hello", "hi", "hello")], ""));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 0);
    assert_eq!(report["cases"][0]["status"], "pass");
    assert_eq!(report["cases"][0]["usage_missing"], 2);
    assert_eq!(report["summary"]["usage_missing"], 2);
    assert_eq!(sql(&p, "SELECT count(*) FROM request WHERE usage_source = 'missing'"), 2);
    let (human, _) = p.run(&["eval", "show", "latest"], 0);
    assert!(human.contains("2 calls without usage"), "{human}");
}

#[test]
fn tails_name_eval_attempts_by_their_sample_since_they_have_no_trace_ids() {
    let wire = Wire::start();
    let chunk = serde_json::json!({"choices": [{"index": 0, "delta": {"content": "I can help with that. "}}]});
    let mut events = vec![chunk.to_string(); 24];
    events.push(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#.into());
    events.push(r#"{"choices":[],"usage":{"prompt_tokens":20,"completion_tokens":96,"total_tokens":116}}"#.into());
    events.push("[DONE]".into());
    let refs: Vec<&str> = events.iter().map(String::as_str).collect();
    wire.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw(sse(&refs), "text/event-stream")),
    );
    let p = project_with(&suite(&wire.url(), 1, 1, &[("hello", "hi", "help")], ""));
    run_json(&p, &["eval", "run", "evals/small.yaml"], 0);
    let tails = run_json(&p, &["trace", "tails"], 0);
    let looped = tails["examples"].as_array().unwrap().iter().find(|e| e["event"]["kind"] == "loop");
    let looped = looped.unwrap_or_else(|| panic!("no loop example: {tails}"));
    let logical = looped["logical_request_id"].as_str().unwrap();
    assert!(logical.ends_with("/hello/0"), "{looped}");
    assert_eq!(looped["trace_id"], Value::Null);
    let (human, _) = p.run(&["trace", "tails"], 0);
    assert!(human.contains(logical), "{human}");
}

#[test]
fn malformed_streams_and_non_json_replies_are_provider_errors() {
    let wire = Wire::start();
    wire.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_raw("data: {truncated\n\n", "text/event-stream")),
    );
    let p = project_with(&suite(&wire.url(), 1, 1, &[("hello", "hi", "hello")], ""));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 3);
    assert_eq!(report["cases"][0]["status"], "error");
    assert_eq!(report["summary"]["requests"], 1, "a malformed reply is not retried");
    let case = run_json(&p, &["eval", "show", "latest", "--case", "hello"], 3);
    assert!(case["runs"][0]["error"].as_str().unwrap().contains("malformed"), "{case}");

    wire.reset();
    wire.mount(
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200).set_body_string("<html>captive portal</html>")),
    );
    p.write("evals/small.yaml", &suite(&wire.url(), 1, 1, &[("hello", "hi", "hello")], "  stream: false\n"));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 3);
    assert_eq!(report["cases"][0]["errors"], 1);
    let case = run_json(&p, &["eval", "show", "latest", "--case", "hello"], 3);
    assert!(case["runs"][0]["error"].as_str().unwrap().contains("captive portal"), "{case}");
}

fn spawn_run(p: &Project, args: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_promptctl"));
    cmd.current_dir(p.path())
        .env_remove("PROMPTCTL_STATE")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("NO_COLOR", "1")
        .env("CI", "true")
        .arg("--state")
        .arg(p.state())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().unwrap()
}

/// Polls `eval list` until the newest run has `done` samples. The condition is certain to come (the
/// server answers that many requests at once); the cap only turns a bug into a failure instead of a hang.
fn wait_for_samples(p: &Project, done: u64) -> Value {
    for _ in 0..6000 {
        if p.state().exists() {
            let output = p.cmd().args(["eval", "list", "--format", "json"]).output().unwrap();
            if let Ok(list) = serde_json::from_slice::<Value>(&output.stdout)
                && list["runs"][0]["samples_done"].as_u64() == Some(done)
            {
                return list;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("the run never reached {done} samples");
}

/// A server that answers `fast` requests at once and then holds every further one for an hour.
fn stalling_after(fast: u64) -> Wire {
    let wire = Wire::start();
    wire.mount(Mock::given(method("POST")).respond_with(ok_stream("Hello there")).up_to_n_times(fast).with_priority(1));
    wire.mount(
        Mock::given(method("POST"))
            .respond_with(ok_stream("Hello there").set_delay(Duration::from_secs(3600)))
            .with_priority(2),
    );
    wire
}

#[test]
fn a_run_killed_with_sigkill_resumes_exactly_the_missing_samples() {
    let wire = stalling_after(6);
    let cases = [("a", "hi a", "hello"), ("b", "hi b", "hello"), ("c", "hi c", "hello"), ("d", "hi d", "hello")];
    let p = project_with(&suite(&wire.url(), 3, 2, &cases, ""));
    let mut child = spawn_run(&p, &["eval", "run", "evals/small.yaml", "--concurrency", "2"]);
    let list = wait_for_samples(&p, 6);
    assert_eq!(list["runs"][0]["status"], "running", "a live run");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let list = run_json(&p, &["eval", "list"], 0);
    let run = &list["runs"][0];
    assert_eq!((run["status"].as_str(), run["stop_reason"].as_str()), (Some("partial"), Some("killed")));
    assert_eq!((run["samples_done"].as_u64(), run["samples_total"].as_u64()), (Some(6), Some(12)));
    let before = sql(&p, "SELECT count(*) FROM request");
    assert_eq!(before, 6, "the two calls in flight died with the process");

    wire.reset();
    wire.mount(Mock::given(method("POST")).respond_with(ok_stream("Hello there")));
    let run_id = run["run_id"].as_str().unwrap();
    let report = run_json(&p, &["eval", "resume", run_id], 0);
    assert_eq!(report["status"], "complete");
    assert_eq!(report["summary"]["samples_done"], 12);
    assert_eq!(wire.received(), 6, "exactly the missing samples were requested");
    assert_eq!(sql(&p, "SELECT count(*) FROM request"), 12);
    assert_eq!(sql(&p, "SELECT count(DISTINCT logical_request_id) FROM request"), 12, "no sample ran twice");
    assert_eq!(report["summary"]["requests"], 12);
    let (_, stderr) = p.run(&["eval", "resume", run_id], 0);
    assert!(stderr.contains("nothing to resume"), "{stderr}");
}

#[test]
fn ctrl_c_stops_cleanly_records_the_calls_in_flight_and_says_how_to_resume() {
    let wire = stalling_after(2);
    let p = project_with(&suite(&wire.url(), 2, 1, &[("a", "hi", "hello"), ("b", "hi b", "hello")], ""));
    let child = spawn_run(&p, &["eval", "run", "evals/small.yaml", "--concurrency", "2"]);
    wait_for_samples(&p, 2);
    // Both remaining samples are in flight once the stalled server has seen them.
    while wire.received() < 4 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("promptctl eval resume r-"), "{stderr}");
    assert_eq!(sql(&p, "SELECT count(*) FROM request WHERE status = 'aborted'"), 2);
    let list = run_json(&p, &["eval", "list"], 0);
    assert_eq!(list["runs"][0]["stop_reason"], "interrupted");
    assert_eq!(list["runs"][0]["samples_done"], 2);
    wire.reset();
    wire.mount(Mock::given(method("POST")).respond_with(ok_stream("Hello there")));
    let report = run_json(&p, &["eval", "resume", "latest"], 0);
    assert_eq!(report["status"], "complete");
    assert_eq!(report["summary"]["requests"], 6, "the aborted attempts stay in the trace");
    assert_eq!(sql(&p, "SELECT count(*) FROM request WHERE attempt = 2 AND status = 'ok'"), 2);
}

#[test]
fn two_runs_started_together_on_a_fresh_state_file_both_succeed() {
    let sim = Sim::scripted(GREETINGS);
    let p = project_with(&suite(&sim.url, 3, 3, &[("a", "hi", "hello"), ("b", "refund please", "refund")], ""));
    let first = spawn_run(&p, &["eval", "run", "evals/small.yaml", "--format", "json"]);
    let second = spawn_run(&p, &["eval", "run", "evals/small.yaml", "--format", "json"]);
    let mut ids = Vec::new();
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(0), "{stderr}");
        assert!(!stderr.contains("locked"), "{stderr}");
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(report["summary"]["requests"], 6);
        ids.push(report["run_id"].as_str().unwrap().to_string());
    }
    assert_ne!(ids[0], ids[1]);
    assert_eq!(sql(&p, "SELECT count(*) FROM request"), 12);
    assert_eq!(sql(&p, "SELECT count(DISTINCT source_key) FROM request"), 12);
    assert_eq!(sim.requests(), 12);
}

#[test]
fn the_budget_stops_scheduling_and_resume_finishes_with_a_new_one() {
    let sim = Sim::scripted(GREETINGS);
    let cases = [("a", "hi", "hello"), ("b", "hi b", "hello"), ("c", "hi c", "hello")];
    let text = suite(&sim.url, 4, 4, &cases, "")
        .replace("inline: \"::: system", "inline: \"---\\nparams: { max_tokens: 50 }\\n---\\n::: system");
    let p = project_with(&text);
    // A sample is estimated at ~20 input and 50 output tokens of gpt-4o-mini ($0.000033) and costs about
    // $0.000008: some samples fit in $0.0001, not all twelve.
    let report = run_json(&p, &["eval", "run", "evals/small.yaml", "--max-cost", "0.0001", "--concurrency", "1"], 1);
    assert_eq!(report["status"], "partial");
    assert_eq!(report["stop_reason"], "budget");
    let done = report["summary"]["samples_done"].as_u64().unwrap();
    assert!((1..12).contains(&done), "{done}");
    assert!(report["summary"]["cost_usd"].as_f64().unwrap() <= 0.0001);
    assert!(report["gate"]["reason"].as_str().unwrap().contains("stopped by --max-cost"));
    let resumed = run_json(&p, &["eval", "resume", "latest", "--max-cost", "1"], 0);
    assert_eq!(resumed["status"], "complete");
    assert_eq!(resumed["summary"]["requests"], 12);
}

#[test]
fn an_unpriced_model_cannot_have_a_budget_unless_allowed_and_its_cost_is_unknown() {
    let sim = Sim::scripted(GREETINGS);
    let p = project_with(
        &suite(&sim.url, 1, 1, &[("a", "hi", "hello")], "").replace("sim:gpt-4o-mini", "sim:house-model-7b"),
    );
    let (_, stderr) = p.run(&["eval", "run", "evals/small.yaml", "--max-cost", "1"], 2);
    assert!(stderr.contains("cannot be enforced") && stderr.contains("--allow-unpriced"), "{stderr}");
    assert_eq!(sim.requests(), 0);
    let report = run_json(&p, &["eval", "run", "evals/small.yaml", "--max-cost", "1", "--allow-unpriced"], 0);
    assert_eq!(report["cases"][0]["cost_usd"], Value::Null);
    assert_eq!(report["summary"]["cost_usd"], Value::Null);
    let (human, _) = p.run(&["eval", "show", "latest"], 0);
    assert!(human.contains("unknown"), "{human}");
}

#[test]
fn llm_judges_are_recorded_and_regrades_reuse_their_verdicts_without_calls() {
    let scenario = "rules:
  - contains: 'Rubric:'
    in: prompt
    reply: '{\"pass\": true, \"reason\": \"offers a refund\"}'
  - contains: refund
    reply: I have started a refund for order 4411.
";
    let sim = Sim::scripted(scenario);
    let text = suite(&sim.url, 2, 2, &[("refund", "refund please", "refund")], "")
        + "      - { type: llm-judge, rubric: \"Offers a refund\" }\n";
    let p = project_with(&text);
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 0);
    assert_eq!(report["cases"][0]["status"], "pass");
    assert_eq!(report["summary"]["requests"], 4, "two samples and two judge calls");
    assert_eq!(sim.requests(), 4);
    let original = report["run_id"].as_str().unwrap().to_string();
    // Tighten the deterministic assertion: both samples now fail, the judge verdict is reused.
    p.write("evals/small.yaml", &text.replace("value: \"refund\"", "value: \"replacement\""));
    let regraded = run_json(&p, &["eval", "regrade", &original], 1);
    assert_eq!(regraded["regraded_from"], original.as_str());
    assert_eq!(regraded["cases"][0]["status"], "fail");
    assert_eq!(regraded["summary"]["requests"], 4, "the original's calls");
    assert_eq!(sim.requests(), 4, "no provider calls");
    // A new rubric cannot be judged without calls.
    p.write("evals/small.yaml", &text.replace("Offers a refund", "Is polite"));
    let (_, stderr) = p.run(&["eval", "regrade", &original], 2);
    assert!(stderr.contains("never judged"), "{stderr}");
    // Baselines: only complete runs; one active per suite.
    let baseline = run_json(&p, &["eval", "baseline", "small", &original], 0);
    assert_eq!(baseline["previous"], Value::Null);
    let list = run_json(&p, &["eval", "list"], 0);
    assert!(list["runs"].as_array().unwrap().iter().any(|r| r["run_id"] == original.as_str() && r["baseline"] == true));
    let (_, stderr) = p.run(&["eval", "baseline", "other", &original], 2);
    assert!(stderr.contains("is of suite `small`"), "{stderr}");
}

#[test]
fn sim_serve_prints_where_it_listens_and_evals_run_against_it() {
    let p = project_with("");
    p.write("scenario.yaml", GREETINGS);
    let mut server = Command::new(env!("CARGO_BIN_EXE_promptctl"))
        .current_dir(p.path())
        .args(["sim", "serve", "--port", "0", "--scenario", "scenario.yaml", "--latency", "5", "--format", "json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(server.stdout.as_mut().unwrap()), &mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(ready["schema"], "promptctl.sim-serve/v1");
    let url = ready["base_url"].as_str().unwrap();
    p.write("evals/small.yaml", &suite(url, 2, 1, &[("a", "hi", "hello"), ("flaky", "flaky one", "refund")], ""));
    let report = run_json(&p, &["eval", "run", "evals/small.yaml"], 0);
    assert_eq!(report["summary"]["requests"], 4);
    server.kill().unwrap();
    server.wait().unwrap();
    let (_, stderr) = p.run(&["sim", "serve", "--error-rate", "2"], 2);
    assert!(stderr.contains("error-rate must be between 0 and 1"), "{stderr}");
}

#[test]
fn the_demo_shows_n_of_k_telling_flaky_from_deterministic() {
    let p = Project::empty();
    let output = p.cmd().arg("demo").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("$ promptctl eval run evals/triage.yaml --base-url http://127.0.0.1:"), "{stdout}");
    assert!(stdout.contains("unrecognised-charge  fail (deterministic)  ✗✗✗✗✗"), "{stdout}");
    assert!(stdout.contains("fail-flaky") && stdout.contains("pass-flaky"), "{stdout}");
    assert!(stdout.contains("× fail (samples") && stdout.contains("5 × fail (samples 0, 1, 2, 3, 4)"), "{stdout}");
    assert!(stdout.contains("gate: FAILED"), "{stdout}");
}

#[test]
fn an_anthropic_endpoint_works_end_to_end_with_normalized_cache_usage() {
    let sim = Sim::scripted(GREETINGS);
    let long_system = "You are a support agent for Acme. ".repeat(40);
    let text = suite(&sim.url, 3, 3, &[("refund", "I want a refund", "refund")], "")
        .replace("sim:gpt-4o-mini", "anthropic:claude-sonnet-4-5")
        .replace("You are a support agent.", &long_system);
    let p = project_with(&text);
    let report = run_json(&p, &["eval", "run", "evals/small.yaml", "--concurrency", "1"], 0);
    let case = &report["cases"][0];
    assert_eq!(case["status"], "pass");
    assert_eq!(report["provider"], "anthropic:claude-sonnet-4-5");
    assert!(case["tokens"]["cached"].as_u64().unwrap() > 0, "the repeated prefix is read from the cache: {case}");
    assert!(case["cost_usd"].as_f64().unwrap() > 0.0);
    assert_eq!(
        sql(
            &p,
            "SELECT count(*) FROM request WHERE provider = 'anthropic' AND usage_source = 'provider'
                 AND input_total = input_uncached + cache_read + cache_write_5m + cache_write_1h"
        ),
        3
    );
}
