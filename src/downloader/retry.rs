//! Retry policy of the download layer: which failures are retried, how long to back off
//! (exponential with full jitter, capped), and how a `Retry-After` header is honoured.

use std::time::Duration;

use rand::Rng;

use super::{DownloadError, DownloadStats, ErrorKind};
use std::sync::atomic::Ordering;

/// Upper bound of the backoff before retry number `retry` (0 for the first retry):
/// `base * 2^retry`, capped by `max`.
pub(crate) fn backoff_ceiling(base: Duration, max: Duration, retry: u32) -> Duration {
    let factor = 1u32.checked_shl(retry.min(31)).unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

/// The delay to sleep before retry number `retry`: a `Retry-After` from the server (capped by
/// `max`) when there is one, otherwise full jitter in `[0, backoff_ceiling]`.
pub(crate) fn backoff_delay(
    base: Duration,
    max: Duration,
    retry: u32,
    retry_after: Option<Duration>,
) -> Duration {
    if let Some(after) = retry_after {
        return after.min(max);
    }
    let ceiling = backoff_ceiling(base, max, retry);
    let nanos = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
    Duration::from_nanos(rand::rng().random_range(0..=nanos))
}

/// Whether an error is worth another attempt.
pub(crate) fn is_retryable(err: &DownloadError) -> bool {
    err.kind() != ErrorKind::Permanent
}

/// Counts one retry caused by `err` in the matching counter of `stats`.
pub(crate) fn count_retry(stats: &DownloadStats, err: &DownloadError) {
    let (counter, cause) = match err {
        DownloadError::Status { .. } => (&stats.retries_status, "status"),
        DownloadError::Timeout { .. } => (&stats.retries_timeout, "timeout"),
        DownloadError::Digest { .. } | DownloadError::Size { .. } => {
            (&stats.retries_integrity, "digest")
        }
        _ => (&stats.retries_connection, "connection"),
    };
    counter.fetch_add(1, Ordering::Relaxed);
    if let Some(t) = &stats.telemetry {
        t.retry(cause);
    }
}

/// Parses a `Retry-After` header given in seconds (the HTTP-date form is ignored).
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_millis(100);
    const MAX: Duration = Duration::from_secs(5);

    #[test]
    fn ceiling_doubles_then_caps() {
        let ceilings: Vec<_> = (0..8).map(|r| backoff_ceiling(BASE, MAX, r)).collect();
        assert_eq!(ceilings[0], Duration::from_millis(100));
        assert_eq!(ceilings[1], Duration::from_millis(200));
        assert_eq!(ceilings[2], Duration::from_millis(400));
        assert_eq!(ceilings[5], Duration::from_millis(3200));
        assert_eq!(ceilings[6], MAX);
        assert!(ceilings.windows(2).all(|w| w[0] <= w[1]));
        // Huge retry numbers neither overflow nor exceed the cap.
        assert_eq!(backoff_ceiling(BASE, MAX, u32::MAX), MAX);
        assert_eq!(backoff_ceiling(Duration::MAX, MAX, 40), MAX);
    }

    #[test]
    fn delay_is_jittered_within_ceiling() {
        for retry in 0..10 {
            let ceiling = backoff_ceiling(BASE, MAX, retry);
            for _ in 0..50 {
                let d = backoff_delay(BASE, MAX, retry, None);
                assert!(d <= ceiling, "{d:?} > {ceiling:?}");
            }
        }
        // Jitter actually varies.
        let samples: std::collections::HashSet<_> =
            (0..20).map(|_| backoff_delay(BASE, MAX, 3, None)).collect();
        assert!(samples.len() > 1);
    }

    #[test]
    fn retry_after_is_honoured_and_capped() {
        let d = backoff_delay(BASE, MAX, 0, Some(Duration::from_secs(2)));
        assert_eq!(d, Duration::from_secs(2));
        let d = backoff_delay(BASE, MAX, 0, Some(Duration::from_secs(3600)));
        assert_eq!(d, MAX);
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
