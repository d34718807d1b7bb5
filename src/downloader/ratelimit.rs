//! Per-remote request rate limiting: a simple interval limiter shared by all downloads of one
//! factory. Each request reserves the next free slot (`1 / rate` seconds after the previous one)
//! and sleeps until it; no background task, so nothing outlives a cancelled download.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub(crate) struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `None` when `per_second` is 0 (no limit).
    pub(crate) fn new(per_second: u32) -> Option<RateLimiter> {
        (per_second > 0).then(|| RateLimiter {
            interval: Duration::from_secs(1) / per_second,
            next: Mutex::new(None),
        })
    }

    /// Waits until this request may be sent.
    pub(crate) async fn acquire(&self) {
        let slot = {
            // A poisoned lock only means another task panicked between two plain assignments.
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = match *next {
                Some(n) if n > now => n,
                _ => now,
            };
            *next = Some(slot + self.interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_means_unlimited() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn spaces_requests_by_interval() {
        let limiter = RateLimiter::new(10).expect("limited");
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // First immediately, then 4 intervals of 100 ms.
        assert_eq!(start.elapsed(), Duration::from_millis(400));
    }
}
