//! The simulator over real HTTP: the provider clients for behaviour, raw requests for wire details.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use super::*;
use crate::provider::{Cancel, ChatRequest, Client, ProviderConfig, RetryPolicy};
use crate::trace::model::{Message, RequestStatus};

fn client(id: &str, sim: &SimHandle) -> Client {
    let mut config = ProviderConfig::new(id.parse().unwrap()).with_base_url(sim.base_url());
    config.retry = RetryPolicy { max_attempts: 1, ..RetryPolicy::default() };
    Client::from_config_with_env(&config, |_| None).unwrap()
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message { role: "user".into(), content: text.into() }])
}

fn raw_http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn post(sim: &SimHandle, path: &str, body: Value) -> reqwest::Response {
    raw_http().post(format!("{}{path}", sim.base_url())).json(&body).send().await.unwrap()
}

fn flaky_scenario() -> Scenario {
    Scenario::from_yaml(
        r#"
default: "I am not sure."
rules:
  - contains: refund
    replies:
      - { text: "Refund approved for order 7.", p: 0.5 }
      - { text: "Please contact billing.", p: 0.5 }
  - regex: "(?i)^capital"
    reply: "Lyon."
"#,
    )
    .unwrap()
}

/// Sorted outcomes of 6 prompts × 8 samples sent all at once: the multiset a run produces.
async fn concurrent_run(seed: u64) -> Vec<String> {
    let sim = start(SimConfig {
        seed,
        error_rate: 0.2,
        truncate_rate: 0.2,
        loop_rate: 0.2,
        retry_after_secs: 0,
        scenario: flaky_scenario(),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let openai = client("sim:m", &sim);
    let anthropic = client("anthropic:c", &sim);
    let prompts = ["refund please", "I want a refund", "capital of France?", "hello", "refund now", "weather"];
    let calls = prompts.iter().enumerate().flat_map(|(i, prompt)| {
        let client = if i % 2 == 0 { &openai } else { &anthropic };
        (0..8).map(move |_| async move {
            let done = client.complete(&ask(prompt).streaming(i < 3), &Cancel::new()).await;
            let a = done.last().unwrap();
            format!("{prompt} | {:?} {:?} | {:?} | {}", a.status, a.http_status, a.finish_reason, a.output)
        })
    });
    let mut outcomes = join_all(calls).await;
    outcomes.sort();
    outcomes
}

#[tokio::test]
async fn the_same_seed_gives_the_same_outcomes_under_concurrency() {
    let first = concurrent_run(11).await;
    assert_eq!(first, concurrent_run(11).await);
    assert_ne!(first, concurrent_run(12).await);
    let joined = first.join("\n");
    for expected in ["Refund approved", "Please contact billing", "Lyon.", "Error"] {
        assert!(joined.contains(expected), "{expected} missing from\n{joined}");
    }
}

#[tokio::test]
async fn injected_errors_have_vendor_bodies_and_retry_after_on_429() {
    let sim = start(SimConfig { error_rate: 1.0, retry_after_secs: 3, ..SimConfig::default() }).await.unwrap();
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..24 {
        let (path, body) = if i % 2 == 0 {
            ("/chat/completions", json!({"model": "m", "messages": [{"role": "user", "content": format!("q{i}")}]}))
        } else {
            (
                "/messages",
                json!({"model": "c", "max_tokens": 10, "messages": [{"role": "user", "content": format!("q{i}")}]}),
            )
        };
        let response = post(&sim, path, body).await;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(retry_after.is_some(), status == 429, "{status}");
        if status == 429 {
            assert_eq!(retry_after.as_deref(), Some("3"));
        }
        let error: Value = response.json().await.unwrap();
        assert!(error["error"]["message"].as_str().unwrap().contains("simulated"));
        seen.insert((i % 2, status));
    }
    for (wire, status) in &seen {
        let allowed: &[u16] = if *wire == 0 { &[429, 500, 503] } else { &[429, 500, 529] };
        assert!(allowed.contains(status), "{seen:?}");
    }
    assert!(seen.iter().any(|(_, s)| *s == 429), "{seen:?}");
    assert_eq!(sim.stats().errors, 24);
}

#[tokio::test]
async fn loops_repeat_the_opening_phrase_and_stop_at_length() {
    let sim = start(SimConfig {
        loop_rate: 1.0,
        scenario: Scenario::constant("Let me check that for you."),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let done = client("sim:m", &sim).complete(&ask("hi").streaming(true), &Cancel::new()).await;
    let attempt = done.last().unwrap();
    assert_eq!(attempt.finish_reason.as_deref(), Some("length"));
    assert_eq!(attempt.output.matches("Let me check that for you.").count(), 12);
    let texts: Vec<_> = attempt.stream.iter().filter_map(|c| c.text.as_deref()).collect();
    assert_eq!(texts[..6], texts[6..12], "the chunks themselves repeat");
    assert_eq!(sim.stats().loops, 1);
}

#[tokio::test]
async fn max_tokens_cuts_the_reply_in_both_protocols() {
    let sim =
        start(SimConfig { scenario: Scenario::constant("one two three four five six seven"), ..SimConfig::default() })
            .await
            .unwrap();
    for (id, finish) in [("sim:m", "length"), ("anthropic:c", "max_tokens")] {
        let request = ask("hi").param("max_tokens", 4);
        let done = client(id, &sim).complete(&request, &Cancel::new()).await;
        let attempt = done.last().unwrap();
        assert_eq!(attempt.output, "one two three ", "{id}");
        assert_eq!(attempt.finish_reason.as_deref(), Some(finish));
        assert_eq!(attempt.usage.unwrap().output_total, 4);
    }
}

#[tokio::test]
async fn openai_streams_carry_usage_only_when_asked() {
    let sim = start(SimConfig::default()).await.unwrap();
    let body = |include: bool| {
        let mut body = json!({"model": "m", "stream": true,
            "messages": [{"role": "user", "content": "hi"}]});
        if include {
            body["stream_options"] = json!({"include_usage": true});
        }
        body
    };
    let without = post(&sim, "/chat/completions", body(false)).await;
    assert_eq!(without.headers()["content-type"].to_str().unwrap(), "text/event-stream");
    let without = without.text().await.unwrap();
    assert!(!without.contains("\"usage\""));
    assert!(without.ends_with("data: [DONE]\n\n"));
    let with = post(&sim, "/chat/completions", body(true)).await.text().await.unwrap();
    assert!(with.contains("\"choices\":[],\"usage\":{\"completion_tokens\""));
}

#[tokio::test]
async fn ttft_and_latency_delay_the_reply() {
    let sim = start(SimConfig {
        ttft: Duration::from_millis(30),
        latency: Duration::from_millis(20),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let done = client("sim:m", &sim).complete(&ask("hi").streaming(true), &Cancel::new()).await;
    let attempt = done.last().unwrap();
    assert!(attempt.ttft_ms.unwrap() >= 30, "{attempt:?}");
    assert!(attempt.latency_ms >= 50, "{attempt:?}");
    let times: Vec<u64> = attempt.stream.iter().map(|c| c.t_ms).collect();
    assert!(times.windows(2).all(|w| w[0] < w[1]), "chunks are paced: {times:?}");
}

#[tokio::test]
async fn reset_replays_the_same_decisions() {
    let sim = start(SimConfig { error_rate: 0.5, ..SimConfig::default() }).await.unwrap();
    let client = client("sim:m", &sim);
    let statuses = || async {
        let mut out = Vec::new();
        for _ in 0..12 {
            let done = client.complete(&ask("same"), &Cancel::new()).await;
            out.push(done.last().unwrap().http_status);
        }
        out
    };
    let first = statuses().await;
    assert!(first.contains(&Some(200)) && first.iter().any(|s| *s != Some(200)));
    let reset = raw_http().post(format!("http://{}/_sim/reset", sim.addr())).send().await.unwrap();
    assert_eq!(reset.status().as_u16(), 204);
    assert_eq!(first, statuses().await);
    let stats: Value =
        raw_http().get(format!("http://{}/_sim/stats", sim.addr())).send().await.unwrap().json().await.unwrap();
    assert_eq!(stats["requests"], 24);
}

#[tokio::test]
async fn bad_requests_get_a_400_in_the_vendor_shape() {
    let sim = start(SimConfig::default()).await.unwrap();
    let response =
        post(&sim, "/messages", json!({"model": "c", "messages": [{"role": "user", "content": "hi"}]})).await;
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["type"], "error");
    assert_eq!(body["error"]["type"], "invalid_request_error");
    let done = client("sim:m", &sim).complete(&ChatRequest::new(vec![]), &Cancel::new()).await;
    assert_eq!(done.last().unwrap().http_status, Some(400));
    assert_eq!(done.attempts.len(), 1);
}

#[tokio::test]
async fn serve_reports_the_bound_address_and_stops_on_request() {
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(SimConfig::default(), move |addr| addr_tx.send(addr).unwrap(), async move {
        let _ = stop_rx.await;
    }));
    let addr = addr_rx.await.unwrap();
    let response = raw_http()
        .post(format!("http://{addr}/v1/chat/completions"))
        .json(&json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}))
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["choices"][0]["message"]["content"], DEFAULT_REPLY);
    stop_tx.send(()).unwrap();
    let stats = server.await.unwrap().unwrap();
    assert_eq!(stats.requests, 1);
}

#[tokio::test]
async fn invalid_rates_and_scenario_files_are_reported_with_their_location() {
    let err = start(SimConfig { error_rate: 1.5, ..SimConfig::default() }).await.unwrap_err();
    assert_eq!(err.to_string(), "error_rate must be between 0 and 1, got 1.5");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("scenario.yaml");
    std::fs::write(&path, "rules:\n  - contains: x\n    reply: [unclosed\n").unwrap();
    let err = Scenario::load(&path).unwrap_err();
    let shown = err.to_string();
    assert!(shown.starts_with(&format!("{}:", path.display())), "{shown}");
    assert!(err.line.is_some(), "{shown}");
}

#[tokio::test]
async fn stats_count_stalls_truncations_and_slow_ttfts() {
    let sim = start(SimConfig {
        stall_rate: 1.0,
        stall: Duration::from_millis(1),
        truncate_rate: 1.0,
        slow_ttft_rate: 1.0,
        slow_ttft: Duration::from_millis(1),
        ..SimConfig::default()
    })
    .await
    .unwrap();
    let done = client("anthropic:c", &sim).complete(&ask("hi").streaming(true), &Cancel::new()).await;
    let attempt = done.last().unwrap();
    assert_eq!(attempt.status, RequestStatus::Ok);
    assert!(attempt.is_truncated());
    assert_eq!(attempt.usage, None, "no message_delta, no usage");
    let stats = sim.shutdown().await;
    assert_eq!((stats.requests, stats.stalls, stats.truncations, stats.slow_ttfts), (1, 1, 1, 1));
}
