//! The HTTP side of the simulator: routes, handlers and paced response bodies.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;

use super::SimConfig;
use super::plan::{Decider, Failure, Outcome, Reply, Wire};
use super::wire::{BadRequest, Responder, error_body, failure_message, parse_request};

/// What every handler shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub config: SimConfig,
    pub decider: Decider,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(openai))
        .route("/chat/completions", post(openai))
        .route("/v1/messages", post(anthropic))
        .route("/messages", post(anthropic))
        .route("/_sim/stats", get(stats))
        .route("/_sim/reset", post(reset))
        .with_state(shared)
}

async fn openai(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    respond(&shared, Wire::OpenAi, &body).await
}

async fn anthropic(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    respond(&shared, Wire::Anthropic, &body).await
}

async fn stats(State(shared): State<Arc<Shared>>) -> Response {
    let s = shared.decider.stats();
    let body = serde_json::json!({
        "requests": s.requests, "errors": s.errors, "stalls": s.stalls, "loops": s.loops,
        "truncations": s.truncations, "slow_ttfts": s.slow_ttfts,
    });
    json_response(StatusCode::OK, body.to_string().into_bytes())
}

async fn reset(State(shared): State<Arc<Shared>>) -> StatusCode {
    shared.decider.reset();
    StatusCode::NO_CONTENT
}

async fn respond(shared: &Shared, wire: Wire, body: &[u8]) -> Response {
    let request = match parse_request(wire, body) {
        Ok(request) => request,
        Err(BadRequest(message)) => {
            let body = error_body(wire, 400, &message);
            return json_response(StatusCode::BAD_REQUEST, body);
        }
    };
    let plan = shared.decider.plan(&request, &shared.config);
    let responder = Responder {
        wire,
        id: &plan.id,
        model: &request.model,
        created: unix_now(),
        include_usage: request.include_usage,
    };
    match plan.outcome {
        Outcome::Fail(failure) => {
            pause(failure.delay).await;
            failure_response(wire, &failure)
        }
        Outcome::Reply(reply) if request.stream => stream_response(&responder, &reply),
        Outcome::Reply(reply) => {
            pause(reply.total_delay()).await;
            json_response(StatusCode::OK, responder.complete_body(&reply))
        }
    }
}

fn failure_response(wire: Wire, failure: &Failure) -> Response {
    let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json_response(status, error_body(wire, failure.status, failure_message(failure)));
    if let Some(seconds) = failure.retry_after_secs {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], Body::from(body)).into_response()
}

/// Sends the frames on their schedule (see `frame_delay`), a stall before the chosen chunk. Frames due
/// at the same moment go out as one write.
fn stream_response(responder: &Responder<'_>, reply: &Reply) -> Response {
    let frames = responder.stream_frames(reply);
    let mut batches: VecDeque<(Duration, usize, usize)> = VecDeque::new();
    let mut start = 0;
    let mut previous = None;
    for (position, &(end, chunk)) in frames.ends.iter().enumerate() {
        let delay = frame_delay(reply, position, chunk, previous);
        previous = chunk;
        match batches.back_mut() {
            Some((_, _, batch_end)) if delay.is_zero() => *batch_end = end,
            _ => batches.push_back((delay, start, end)),
        }
        start = end;
    }
    let bytes = Bytes::from(frames.bytes);
    let body = match batches.front() {
        Some((delay, _, _)) if batches.len() == 1 && delay.is_zero() => Body::from(bytes),
        _ => Body::from_stream(futures_util::stream::unfold((batches, bytes), |(mut batches, bytes)| async move {
            let (delay, start, end) = batches.pop_front()?;
            pause(delay).await;
            let batch = bytes.slice(start..end);
            Some((Ok::<_, Infallible>(batch), (batches, bytes)))
        })),
    };
    (StatusCode::OK, [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")], body)
        .into_response()
}

/// The first frame comes after the TTFT, the first text chunk right with it, each further chunk a gap
/// later and the end of the message a gap after the last chunk: TTFT + latency in all.
fn frame_delay(reply: &Reply, position: usize, chunk: Option<usize>, previous: Option<usize>) -> Duration {
    let stall = |index: usize| match reply.stall {
        Some((at, duration)) if at == index => duration,
        _ => Duration::ZERO,
    };
    match (position, chunk, previous) {
        (0, _, _) => reply.ttft,
        (_, Some(0), _) => stall(0),
        (_, Some(index), _) => reply.gap + stall(index),
        (_, None, Some(_)) => reply.gap,
        (_, None, None) => Duration::ZERO,
    }
}

async fn pause(delay: Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
