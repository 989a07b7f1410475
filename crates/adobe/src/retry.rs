//! When to try a UMAPI call again, and how long to wait first (umapi-client's
//! `connection.py`: `Retry-After` as an HTTP date or delta-seconds, else
//! `first * 2^(attempt-1) + random(0..jitter)`).

use std::time::Duration;

use time::OffsetDateTime;
use time::format_description::FormatItem;
use time::macros::format_description;

use crate::config::RetryPolicy;

/// The statuses Adobe's client retries: throttling and the gateway's transient failures.
pub fn retryable(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

const HTTP_DATE: &[FormatItem<'static>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);

/// Reads `Retry-After` as delta-seconds or an HTTP date (IMF-fixdate); `None` when absent,
/// unreadable or already past.
pub fn parse_retry_after(value: &str, now: OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return (seconds > 0).then(|| Duration::from_secs(seconds));
    }
    let at = time::PrimitiveDateTime::parse(value, HTTP_DATE)
        .ok()?
        .assume_utc();
    let wait = at - now;
    (wait > time::Duration::ZERO).then(|| Duration::from_secs(wait.whole_seconds().max(1) as u64))
}

/// The wait before attempt `attempt + 1` when the server gave no `Retry-After`.
pub fn backoff(policy: &RetryPolicy, attempt: u32) -> Duration {
    let base = policy
        .first_delay
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)));
    let jitter_ms = policy.jitter.as_millis() as u64;
    let jitter = if jitter_ms == 0 {
        Duration::ZERO
    } else {
        Duration::from_millis(fastrand::u64(0..=jitter_ms))
    };
    base + jitter
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = datetime!(2026-12-04 18:00:00 UTC);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 18:32:18 GMT", now),
            Some(Duration::from_secs(1938))
        );
        assert_eq!(
            parse_retry_after("Fri, 04 Dec 2026 17:00:00 GMT", now),
            None
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("0", now), None);
    }

    #[test]
    fn backoff_doubles_from_the_first_delay_with_bounded_jitter() {
        let p = RetryPolicy {
            max_attempts: 4,
            first_delay: Duration::from_secs(15),
            jitter: Duration::from_secs(5),
            max_wait: Duration::from_secs(600),
        };
        for (attempt, base) in [(1, 15), (2, 30), (3, 60)] {
            let d = backoff(&p, attempt);
            assert!(
                d >= Duration::from_secs(base) && d <= Duration::from_secs(base + 5),
                "{attempt}: {d:?}"
            );
        }
        assert!(retryable(429) && retryable(502) && retryable(503) && retryable(504));
        assert!(!retryable(500) && !retryable(400) && !retryable(404));
    }
}
