//! The clients against real local servers: the in-process simulator for realistic traffic, wiremock
//! for exact protocol corner cases.

use std::time::Duration;

use wiremock::matchers::{header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::sim::{self, Scenario, SimConfig};
use crate::trace::model::{RequestStatus, Usage, UsageSource};

const KEY: &str = "sk-test-4f9a1c7e2b8d6053SECRET";

fn fast_retry(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(10),
        max_retry_after: Duration::from_secs(5),
    }
}

fn short_timeouts() -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(2),
        first_byte: Duration::from_secs(5),
        idle: Duration::from_secs(5),
        total: Duration::from_secs(10),
    }
}

fn client_for(id: &str, base_url: &str, retry: RetryPolicy, timeouts: Timeouts) -> Client {
    let config = ProviderConfig {
        id: id.parse().unwrap(),
        base_url: Some(base_url.to_string()),
        api_key_env: Some("TEST_KEY".into()),
        timeouts,
        retry,
    };
    Client::from_config_with_env(&config, |name| (name == "TEST_KEY").then(|| KEY.to_string())).unwrap()
}

fn client(id: &str, base_url: &str) -> Client {
    client_for(id, base_url, fast_retry(3), short_timeouts())
}

fn user(text: &str) -> Message {
    Message { role: "user".into(), content: text.into() }
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message { role: "system".into(), content: "You are a support agent.".into() }, user(text)])
}

async fn sim_with(config: SimConfig) -> sim::SimHandle {
    sim::start(config).await.unwrap()
}

fn scripted() -> SimConfig {
    SimConfig {
        scenario: Scenario::from_yaml("rules:\n  - contains: money back\n    reply: I can refund order 4411 today.\n")
            .unwrap(),
        ..SimConfig::default()
    }
}

async fn complete(client: &Client, request: &ChatRequest) -> Completion {
    client.complete(request, &Cancel::new()).await
}

fn sse(events: &[&str]) -> String {
    events.iter().map(|e| format!("data: {e}\n\n")).collect()
}

// --- against the simulator ----------------------------------------------------------------------

#[tokio::test]
async fn openai_non_streaming_reply_with_provider_usage() {
    let sim = sim_with(scripted()).await;
    let client = client("openai:gpt-4o-mini", &sim.base_url());
    let done = complete(&client, &ask("I want my money back")).await;
    assert!(done.is_ok(), "{done:?}");
    let attempt = done.last().unwrap();
    assert_eq!(done.output(), Some("I can refund order 4411 today."));
    assert_eq!(attempt.finish_reason.as_deref(), Some("stop"));
    assert_eq!(attempt.response_model.as_deref(), Some("gpt-4o-mini"));
    assert_eq!(attempt.http_status, Some(200));
    assert!(!attempt.streamed);
    assert_eq!(attempt.ttft_ms, None);
    assert!(attempt.stream.is_empty());
    let usage = attempt.usage.unwrap();
    assert!(usage.is_consistent());
    assert_eq!(usage.output_total, 10, "per chunk: ceil(chars / 4)");
    assert!(usage.input_total > 0);
}

#[tokio::test]
async fn openai_streaming_records_a_checkpoint_per_chunk_and_usage() {
    let sim = sim_with(scripted()).await;
    let client = client("sim:gpt-4o-mini", &sim.base_url());
    let done = complete(&client, &ask("I want my money back").streaming(true)).await;
    let attempt = done.last().unwrap();
    assert!(attempt.is_ok(), "{attempt:?}");
    assert_eq!(attempt.output, "I can refund order 4411 today.");
    assert_eq!(attempt.stream.len(), 6);
    assert_eq!(attempt.stream[0].text.as_deref(), Some("I "));
    assert!(attempt.ttft_ms.is_some());
    assert_eq!(attempt.finish_reason.as_deref(), Some("stop"));
    assert_eq!(attempt.usage.unwrap().output_total, 10);
    let rows = done.request_rows(&ask("x"), "lr-1");
    assert_eq!(rows[0].provider, "sim");
    assert_eq!(rows[0].usage_source, UsageSource::Provider);
    assert!(rows[0].streamed);
}

#[tokio::test]
async fn anthropic_streaming_and_not_report_cache_reads_on_a_repeated_prefix() {
    let sim = sim_with(scripted()).await;
    let client = client("anthropic:claude-sonnet-4-5", &sim.base_url());
    let long_system = "Policy: be kind and precise. ".repeat(60);
    let request =
        ChatRequest::new(vec![Message { role: "system".into(), content: long_system }, user("I want my money back")]);
    let first = complete(&client, &request).await;
    let first_usage = first.last().unwrap().usage.unwrap();
    assert_eq!(first.output(), Some("I can refund order 4411 today."));
    assert_eq!(first.last().unwrap().finish_reason.as_deref(), Some("end_turn"));
    assert_eq!(first_usage.cache_read, 0);
    assert!(first_usage.cache_write_5m > 0);

    let second = complete(&client, &request.clone().streaming(true)).await;
    let attempt = second.last().unwrap();
    assert!(attempt.is_ok(), "{attempt:?}");
    assert_eq!(attempt.output, "I can refund order 4411 today.");
    assert_eq!(attempt.stream.len(), 6);
    let usage = attempt.usage.unwrap();
    assert_eq!(usage.cache_read, first_usage.cache_write_5m);
    assert_eq!(usage.input_total, first_usage.input_total);
    assert!(usage.is_consistent());
}

#[tokio::test]
async fn a_truncated_stream_is_ok_without_finish_reason_or_usage() {
    let sim = sim_with(SimConfig { truncate_rate: 1.0, ..scripted() }).await;
    let client = client("openai:m", &sim.base_url());
    let done = complete(&client, &ask("I want my money back").streaming(true)).await;
    let attempt = done.last().unwrap();
    assert_eq!(attempt.status, RequestStatus::Ok);
    assert!(attempt.is_truncated());
    assert_eq!(attempt.output, "I can refund ");
    assert_eq!(attempt.usage, None);
    let row = &done.request_rows(&ask("x"), "lr")[0];
    assert_eq!(row.usage_source, UsageSource::Missing);
    assert_eq!(row.finish_reason, None);
    assert_eq!(done.attempts.len(), 1, "truncation is not retried");
}

#[tokio::test]
async fn a_stall_past_the_idle_timeout_times_out_and_is_retried() {
    let sim = sim_with(SimConfig { stall_rate: 1.0, stall: Duration::from_secs(30), ..scripted() }).await;
    let timeouts = Timeouts { idle: Duration::from_millis(50), ..short_timeouts() };
    let client = client_for("openai:m", &sim.base_url(), fast_retry(2), timeouts);
    let done = complete(&client, &ask("I want my money back").streaming(true)).await;
    assert_eq!(done.attempts.len(), 2);
    for attempt in &done.attempts {
        assert_eq!(attempt.status, RequestStatus::Timeout);
        assert_eq!(attempt.output, "I can refund ", "partial text is kept");
        assert!(matches!(attempt.error, Some(AttemptError::Timeout { phase: TimeoutPhase::Idle, .. })));
    }
    assert!(done.error().unwrap().to_string().contains("idle"));
}

#[tokio::test]
async fn injected_errors_are_retried_with_each_attempt_recorded() {
    let sim = sim_with(SimConfig { error_rate: 0.5, retry_after_secs: 0, seed: 3, ..scripted() }).await;
    let client = client("openai:m", &sim.base_url());
    let (mut attempts, mut failed) = (0, 0);
    for i in 0..20 {
        let request = ask(&format!("I want my money back #{i}"));
        let done = complete(&client, &request).await;
        let rows = done.request_rows(&request, &format!("lr-{i}"));
        let numbers: Vec<u32> = rows.iter().map(|r| r.attempt).collect();
        assert_eq!(numbers, (1..=rows.len() as u32).collect::<Vec<_>>());
        assert!(rows.iter().all(|r| r.logical_request_id.as_deref() == Some(&*format!("lr-{i}"))));
        for row in rows.iter().filter(|r| r.status == RequestStatus::Error) {
            assert_eq!(row.usage_source, UsageSource::Missing);
            assert!(row.error.as_deref().unwrap().contains("(simulated)"));
        }
        attempts += rows.len() as u64;
        failed += rows.iter().filter(|r| r.status == RequestStatus::Error).count() as u64;
    }
    assert!(failed > 0);
    assert_eq!(sim.stats().requests, attempts);
    assert_eq!(sim.stats().errors, failed);
}

#[tokio::test]
async fn cancelling_aborts_the_attempt_in_flight() {
    let sim = sim_with(SimConfig { ttft: Duration::from_secs(30), ..scripted() }).await;
    let client = client("openai:m", &sim.base_url());
    let cancel = Cancel::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(20)).await;
        trigger.cancel();
    });
    let done = client.complete(&ask("hi").streaming(true), &cancel).await;
    assert!(done.cancelled);
    assert_eq!(done.attempts.len(), 1);
    assert_eq!(done.attempts[0].status, RequestStatus::Aborted);

    let again = client.complete(&ask("hi"), &cancel).await;
    assert!(again.cancelled);
    assert!(again.attempts.is_empty(), "no attempt starts once cancelled");
}

// --- exact protocol cases against wiremock --------------------------------------------------------

#[tokio::test]
async fn retry_after_is_honoured_and_every_attempt_counts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "0")
                .set_body_string(r#"{"error":{"message":"Rate limit reached","type":"requests"}}"#),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "Thu, 01 Jan 2015 00:00:00 GMT")
                .set_body_string("{}"),
        )
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(503).insert_header("retry-after-ms", "7"))
        .up_to_n_times(1)
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":10,"completion_tokens":1}}"#,
            "application/json",
        ))
        .expect(1)
        .mount(&server)
        .await;
    let policy = RetryPolicy { base_delay: Duration::from_secs(60), ..fast_retry(5) };
    let client = client_for("openai:gpt-4o-mini", &format!("{}/v1", server.uri()), policy, short_timeouts());
    let done = complete(&client, &ask("hi")).await;
    let statuses: Vec<_> = done.attempts.iter().map(|a| a.http_status).collect();
    assert_eq!(statuses, [Some(429), Some(429), Some(503), Some(200)]);
    let waits: Vec<_> = done.attempts.iter().map(|a| a.backoff).collect();
    assert_eq!(
        waits,
        [Some(Duration::ZERO), Some(Duration::ZERO), Some(Duration::from_millis(7)), None],
        "the server's wait wins over the 60 s backoff"
    );
    assert_eq!(done.attempts[0].retry_after, Some(Duration::ZERO));
    assert!(done.attempts[0].error.as_ref().unwrap().to_string().contains("Rate limit reached (requests)"));
    assert_eq!(done.output(), Some("ok"));
    assert_eq!(done.retries(), 3);
    assert_eq!(done.last().unwrap().usage, Some(Usage::from_inclusive(10, 0, 0, 1, 0)));
}

#[tokio::test]
async fn a_429_storm_exhausts_the_attempts() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "0"))
        .expect(4)
        .mount(&server)
        .await;
    let client = client_for("openai:m", &server.uri(), fast_retry(4), short_timeouts());
    let done = complete(&client, &ask("hi")).await;
    assert_eq!(done.attempts.len(), 4);
    assert!(!done.is_ok());
    assert_eq!(done.error().unwrap().http_status(), Some(429));
    assert_eq!(done.last().unwrap().backoff, None, "no wait after the last");
    assert!(done.attempts.iter().all(|a| a.status == RequestStatus::Error));
}

#[tokio::test]
async fn a_500_then_success_is_one_retry() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(500).set_body_string("upstream exploded"))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(
            r#"{"choices":[{"index":0,"message":{"content":"fine"},"finish_reason":"stop"}]}"#,
            "application/json",
        ))
        .mount(&server)
        .await;
    let client = client("openai:m", &server.uri());
    let done = complete(&client, &ask("hi")).await;
    assert_eq!(done.attempts.len(), 2);
    let first = done.attempts[0].error.as_ref().unwrap().to_string();
    assert!(first.contains("HTTP 500") && first.contains("upstream exploded"), "{first}");
    assert!(done.attempts[0].backoff.is_some());
    assert_eq!(done.output(), Some("fine"));
    assert_eq!(done.last().unwrap().usage, None, "no usage block: missing");
}

#[tokio::test]
async fn a_non_json_body_is_a_clear_error_and_not_retried_unless_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/ok/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>captive portal</html>"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/bad/chat/completions"))
        .respond_with(ResponseTemplate::new(502).set_body_string("<html>Bad Gateway</html>"))
        .expect(3)
        .mount(&server)
        .await;
    let ok = complete(&client("openai:m", &format!("{}/ok", server.uri())), &ask("hi")).await;
    assert_eq!(ok.attempts.len(), 1);
    let error = ok.error().unwrap();
    assert!(matches!(error, AttemptError::Malformed { .. }));
    assert!(!error.is_retryable());
    assert!(error.to_string().contains("expected JSON"), "{error}");
    assert!(error.to_string().contains("captive portal"), "{error}");

    let bad = complete(&client("openai:m", &format!("{}/bad", server.uri())), &ask("hi")).await;
    assert_eq!(bad.attempts.len(), 3);
    assert!(bad.error().unwrap().to_string().contains("Bad Gateway"));
}

#[tokio::test]
async fn malformed_event_streams_are_not_retried() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/garbage/chat/completions"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw("data: {\"choices\":[]}\n\n<html>oops</html>\n\n", "text/event-stream"),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/notjson/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("data: {truncated\n\n", "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/json/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_raw("{}", "application/json"))
        .expect(1)
        .mount(&server)
        .await;
    for (base, expected) in
        [("garbage", "not an SSE field"), ("notjson", "expected JSON"), ("json", "instead of text/event-stream")]
    {
        let client = client("openai:m", &format!("{}/{base}", server.uri()));
        let done = complete(&client, &ask("hi").streaming(true)).await;
        assert_eq!(done.attempts.len(), 1, "{base}");
        let error = done.error().unwrap();
        assert!(matches!(error, AttemptError::Malformed { .. }), "{base}: {error}");
        assert!(error.to_string().contains(expected), "{base}: {error}");
    }
}

#[tokio::test]
async fn a_stream_without_a_usage_chunk_has_missing_usage() {
    let server = MockServer::start().await;
    let body = sse(&[
        r#"{"model":"m-1","choices":[{"index":0,"delta":{"content":"Hel"}}]}"#,
        r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":"stop"}]}"#,
        "[DONE]",
    ]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .mount(&server)
        .await;
    let done = complete(&client("openai:m", &server.uri()), &ask("hi").streaming(true)).await;
    let attempt = done.last().unwrap();
    assert!(attempt.is_ok());
    assert_eq!(attempt.output, "Hello");
    assert_eq!(attempt.response_model.as_deref(), Some("m-1"));
    assert_eq!(attempt.finish_reason.as_deref(), Some("stop"));
    assert_eq!(attempt.usage, None);
    assert_eq!(attempt.stream.len(), 2);
    let row = &done.request_rows(&ask("hi"), "lr")[0];
    assert_eq!(row.usage_source, UsageSource::Missing);
    assert_eq!(row.usage, Usage::default());
}

#[tokio::test]
async fn an_error_event_inside_a_stream_keeps_the_text_so_far() {
    let server = MockServer::start().await;
    let body = sse(&[
        r#"{"choices":[{"index":0,"delta":{"content":"partial"}}]}"#,
        r#"{"error":{"message":"bad things","type":"invalid_request_error"}}"#,
    ]);
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let done = complete(&client("openai:m", &server.uri()), &ask("hi").streaming(true)).await;
    let attempt = done.last().unwrap();
    assert_eq!(attempt.output, "partial");
    assert!(matches!(attempt.error, Some(AttemptError::StreamError { retryable: false, .. })));
}

#[tokio::test]
async fn no_first_byte_within_the_limit_is_a_first_byte_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_raw(sse(&["[DONE]"]), "text/event-stream")
                .set_delay(Duration::from_secs(30)),
        )
        .mount(&server)
        .await;
    let timeouts = Timeouts { first_byte: Duration::from_millis(30), ..short_timeouts() };
    let client = client_for("openai:m", &server.uri(), fast_retry(1), timeouts);
    let done = complete(&client, &ask("hi").streaming(true)).await;
    let attempt = done.last().unwrap();
    assert_eq!(attempt.status, RequestStatus::Timeout);
    assert!(matches!(attempt.error, Some(AttemptError::Timeout { phase: TimeoutPhase::FirstByte, .. })));
}

#[tokio::test]
async fn an_unreachable_base_url_is_a_transport_error_after_retries() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let client = client("openai:m", &format!("http://127.0.0.1:{port}/v1"));
    let done = complete(&client, &ask("hi")).await;
    assert_eq!(done.attempts.len(), 3);
    for attempt in &done.attempts {
        assert!(matches!(attempt.error, Some(AttemptError::Connect { .. })), "{:?}", attempt.error);
        assert_eq!(attempt.http_status, None);
    }
    assert!(done.error().unwrap().is_retryable());
    assert!(done.error().unwrap().to_string().contains(&format!("127.0.0.1:{port}")));
}

#[tokio::test]
async fn the_api_key_never_appears_in_errors_rows_or_debug_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(header("authorization", format!("Bearer {KEY}").as_str()))
        .respond_with(ResponseTemplate::new(401).set_body_string(format!(
            r#"{{"error":{{"message":"Incorrect API key provided: {KEY}.","type":"invalid_request_error"}}}}"#
        )))
        .expect(1)
        .mount(&server)
        .await;
    let client = client("openai:m", &server.uri());
    let done = complete(&client, &ask("hi")).await;
    assert_eq!(done.attempts.len(), 1, "401 is not retried");
    let error = done.error().unwrap().to_string();
    assert!(error.contains("Incorrect API key provided: [redacted]"), "{error}");
    let everything = format!("{error} {:?} {:?} {:?}", done, client, done.request_rows(&ask("hi"), "lr"));
    assert!(!everything.contains(KEY));
    assert!(!everything.contains("SECRET"));
}

#[tokio::test]
async fn anthropic_requests_carry_the_version_and_key_headers() {
    let server = MockServer::start().await;
    let body = [
        (
            "message_start",
            r#"{"type":"message_start","message":{"model":"claude-x","content":[],"usage":{"input_tokens":12,"cache_read_input_tokens":100,"cache_creation_input_tokens":30,"cache_creation":{"ephemeral_5m_input_tokens":10,"ephemeral_1h_input_tokens":20},"output_tokens":1}}}"#,
        ),
        (
            "content_block_delta",
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}"#,
        ),
        (
            "message_delta",
            r#"{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":4}}"#,
        ),
        ("message_stop", r#"{"type":"message_stop"}"#),
    ]
    .iter()
    .map(|(name, data)| format!("event: {name}\ndata: {data}\n\n"))
    .collect::<String>();
    Mock::given(method("POST"))
        .and(path("/v1/messages"))
        .and(header("x-api-key", KEY))
        .and(header("anthropic-version", "2023-06-01"))
        .respond_with(ResponseTemplate::new(200).set_body_raw(body, "text/event-stream"))
        .expect(1)
        .mount(&server)
        .await;
    let client = client("anthropic:claude-x", &format!("{}/v1", server.uri()));
    let done = complete(&client, &ask("hi").streaming(true)).await;
    let attempt = done.last().unwrap();
    assert!(attempt.is_ok(), "{attempt:?}");
    assert_eq!(attempt.usage, Some(Usage::from_additive(12, 100, 10, 20, 4, 0)));
    let sent = &server.received_requests().await.unwrap()[0];
    let sent: serde_json::Value = serde_json::from_slice(&sent.body).unwrap();
    assert_eq!(sent["system"], "You are a support agent.");
    assert_eq!(sent["stream"], true);
}

#[test]
fn a_missing_key_names_the_variable_to_set() {
    let config = ProviderConfig::new("openai:gpt-4o-mini".parse().unwrap());
    let err = Client::from_config_with_env(&config, |_| None).unwrap_err();
    assert_eq!(
        err.to_string(),
        "openai:gpt-4o-mini needs an API key: set the environment variable OPENAI_API_KEY (or name another one with api_key_env)"
    );
    let sim = ProviderConfig::new("sim:m".parse().unwrap());
    assert!(matches!(Client::from_config_with_env(&sim, |_| None), Err(ProviderError::MissingBaseUrl { .. })));
    let local = ProviderConfig::new("openai:llama".parse().unwrap()).with_base_url("http://127.0.0.1:8080/v1");
    assert!(Client::from_config_with_env(&local, |_| None).is_ok());
}
