//! The one retry policy for every remote call (Kafka now, object storage later): exponential
//! backoff with jitter, bounded by a deadline so that no command hangs on a dead dependency.

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

// Tokio's clock, so that tests can run the policy on a paused clock.
use tokio::time::Instant;

/// Exponential backoff with jitter, bounded by a total deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait before the first retry. 100 ms is the Kafka clients' `retry.backoff.ms` default.
    pub initial_backoff: Duration,
    /// Ceiling of one wait. 1 s is the Kafka clients' `retry.backoff.max.ms` default.
    pub max_backoff: Duration,
    /// No retry starts after this much time since the first attempt. 60 s matches the Kafka
    /// clients' `default.api.timeout.ms`: long enough to ride out a leader election.
    pub deadline: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            deadline: Duration::from_secs(60),
        }
    }
}

/// An error that knows whether trying again can help, and how to say that we stopped trying.
pub trait Retriable: Sized + Display {
    /// True when the same call may succeed later (connection reset, leader moving, timeout).
    fn is_retriable(&self) -> bool;
    /// Wraps the last error of a retried call that ran out of time.
    fn gave_up(self, attempts: u32, elapsed: Duration) -> Self;
}

impl RetryPolicy {
    /// The wait before retry number `retry` (0-based): exponential, capped, with "equal jitter"
    /// (half fixed, half random) so that many partitions retrying at once spread out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exponential = self.initial_backoff.saturating_mul(1u32 << retry.min(16));
        let base = exponential.min(self.max_backoff);
        let half = base / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Runs `operation` until it succeeds, fails with a non-retriable error, or the deadline
    /// would pass before the next attempt. `what` names the call in retry logs.
    pub async fn run<T, E, Op, Fut>(&self, what: &str, mut operation: Op) -> Result<T, E>
    where
        E: Retriable,
        Op: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let started = Instant::now();
        let mut attempts = 0u32;
        loop {
            let error = match operation().await {
                Ok(value) => return Ok(value),
                Err(error) => error,
            };
            attempts += 1;
            if !error.is_retriable() {
                return Err(error);
            }
            let wait = self.backoff(attempts - 1);
            if started.elapsed() + wait > self.deadline {
                return Err(error.gave_up(attempts, started.elapsed()));
            }
            // One retry is routine in Kafka (a leader moving, a new topic whose logs the broker is
            // still creating): a warning only from the second on.
            let wait_ms = wait.as_millis() as u64;
            if attempts == 1 {
                tracing::debug!(%error, attempt = attempts, wait_ms, "{what} failed; retrying");
            } else {
                tracing::warn!(%error, attempt = attempts, wait_ms, "{what} failed; retrying");
            }
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[derive(Debug, PartialEq)]
    enum TestError {
        Transient,
        Fatal,
        GaveUp(u32),
    }
    impl Display for TestError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{self:?}")
        }
    }
    impl Retriable for TestError {
        fn is_retriable(&self) -> bool {
            *self == TestError::Transient
        }
        fn gave_up(self, attempts: u32, _: Duration) -> Self {
            TestError::GaveUp(attempts)
        }
    }

    fn fast_policy(deadline_ms: u64) -> RetryPolicy {
        RetryPolicy {
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(4),
            deadline: Duration::from_millis(deadline_ms),
        }
    }

    #[test]
    fn backoff_grows_then_caps_and_stays_within_jitter_bounds() {
        let policy = RetryPolicy::default();
        for retry in 0..40 {
            let wait = policy.backoff(retry);
            let base = (Duration::from_millis(100) * 2u32.pow(retry.min(16))).min(Duration::from_secs(1));
            assert!(wait >= base / 2 && wait <= base, "retry {retry}: {wait:?}");
        }
    }

    #[tokio::test]
    async fn transient_errors_are_retried_until_success() {
        let calls = Cell::new(0);
        let result = fast_policy(5_000)
            .run("test", || {
                calls.set(calls.get() + 1);
                let n = calls.get();
                async move {
                    if n < 4 {
                        Err(TestError::Transient)
                    } else {
                        Ok(n)
                    }
                }
            })
            .await;
        assert_eq!(result, Ok(4));
    }

    #[tokio::test]
    async fn fatal_errors_are_returned_at_once() {
        let calls = Cell::new(0);
        let result: Result<(), _> = fast_policy(5_000)
            .run("test", || {
                calls.set(calls.get() + 1);
                async { Err(TestError::Fatal) }
            })
            .await;
        assert_eq!((result, calls.get()), (Err(TestError::Fatal), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_ends_retrying_with_the_attempt_count() {
        let started = Instant::now();
        let result: Result<(), _> = RetryPolicy::default().run("test", || async { Err(TestError::Transient) }).await;
        // 60 s of waits, 0.5-1 s each once the backoff has grown: dozens of attempts, and no
        // retry starts past the deadline.
        assert!(matches!(result, Err(TestError::GaveUp(n)) if n > 40), "{result:?}");
        assert!(started.elapsed() <= RetryPolicy::default().deadline, "{:?}", started.elapsed());
    }
}
