//! The retry loop: which failures earn another attempt, and how long to wait before it.

use std::time::Duration;

use jiff::Timestamp;

use super::attempt::Completion;
use super::cancel::Cancel;
use super::{ChatRequest, Provider};

/// How many attempts, and the backoff between them.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first one included (1 = never retry).
    pub max_attempts: u32,
    /// The backoff before the second attempt; doubles for each further one.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// A server asking for a longer `Retry-After` than this gets this: a run must not hang for an hour.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_retry_after: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed attempt `attempt` (1-based): the server's `Retry-After` when it gave one,
    /// else exponential backoff with equal jitter (half fixed, half random) so that concurrent callers
    /// do not retry in lockstep.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(asked) = retry_after {
            return asked.min(self.max_retry_after);
        }
        let ceiling = self.backoff_ceiling(attempt);
        let half = ceiling / 2;
        let jitter_ns = rand::random_range(0..=half.as_nanos() as u64);
        half + Duration::from_nanos(jitter_ns)
    }

    fn backoff_ceiling(&self, attempt: u32) -> Duration {
        let exponent = attempt.saturating_sub(1).min(30);
        self.base_delay.saturating_mul(1u32 << exponent).min(self.max_delay)
    }
}

/// Parses a `Retry-After` value: delta-seconds (`"2"`, and `"1.5"` from lenient servers) or an
/// HTTP-date, relative to `now`. A date in the past means "now".
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return Duration::try_from_secs_f64(seconds).ok();
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    let wait = at.duration_since(now);
    Some(Duration::try_from(wait).unwrap_or(Duration::ZERO))
}

/// Runs attempts until one succeeds, one fails for good, the policy is exhausted or `cancel` fires.
pub(crate) async fn complete(
    provider: &dyn Provider,
    policy: &RetryPolicy,
    request: &ChatRequest,
    cancel: &Cancel,
) -> Completion {
    let mut completion = Completion { provider: provider.id().clone(), attempts: Vec::new(), cancelled: false };
    let max_attempts = policy.max_attempts.max(1);
    for number in 1..=max_attempts {
        if cancel.is_cancelled() {
            completion.cancelled = true;
            break;
        }
        let mut attempt = provider.attempt(request, cancel).await;
        attempt.number = number;
        let retry = number < max_attempts && attempt.error.as_ref().is_some_and(|e| e.is_retryable());
        let delay = retry.then(|| policy.delay(number, attempt.retry_after));
        attempt.backoff = delay;
        completion.cancelled = attempt.error == Some(super::AttemptError::Cancelled);
        completion.attempts.push(attempt);
        let Some(delay) = delay else { break };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = cancel.cancelled() => {
                completion.cancelled = true;
                break;
            }
        }
    }
    completion
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(300),
            max_retry_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_and_stops_at_the_ceiling() {
        let p = policy();
        for _ in 0..50 {
            let first = p.delay(1, None);
            assert!((Duration::from_millis(50)..=Duration::from_millis(100)).contains(&first));
            let second = p.delay(2, None);
            assert!((Duration::from_millis(100)..=Duration::from_millis(200)).contains(&second));
            let late = p.delay(9, None);
            assert!((Duration::from_millis(150)..=Duration::from_millis(300)).contains(&late));
        }
    }

    #[test]
    fn retry_after_wins_over_backoff_up_to_the_cap() {
        let p = policy();
        assert_eq!(p.delay(1, Some(Duration::ZERO)), Duration::ZERO);
        assert_eq!(p.delay(3, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(p.delay(1, Some(Duration::from_secs(3600))), Duration::from_secs(30));
    }

    #[test]
    fn retry_after_accepts_seconds_and_http_dates() {
        let now: Timestamp = "2026-11-27T10:00:00Z".parse().unwrap();
        assert_eq!(parse_retry_after("2", now), Some(Duration::from_secs(2)));
        assert_eq!(parse_retry_after(" 0.25 ", now), Some(Duration::from_millis(250)));
        assert_eq!(parse_retry_after("Fri, 27 Nov 2026 10:00:07 GMT", now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Fri, 27 Nov 2026 09:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-1", now), None);
    }
}
