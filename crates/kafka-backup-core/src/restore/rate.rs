//! Restore throttling: one limiter shared by every partition, pacing produced bytes and records
//! so that the average since the start never exceeds the configured rates.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Paces sends to at most `bytes_per_sec` and `records_per_sec` (each optional).
#[derive(Debug)]
pub struct RateLimiter {
    bytes_per_sec: Option<u64>,
    records_per_sec: Option<u64>,
    state: Mutex<Sent>,
}

#[derive(Debug)]
struct Sent {
    started: Instant,
    bytes: u64,
    records: u64,
}

impl RateLimiter {
    /// A limiter; with no rates it never waits.
    pub fn new(bytes_per_sec: Option<u64>, records_per_sec: Option<u64>) -> Self {
        Self {
            bytes_per_sec,
            records_per_sec,
            state: Mutex::new(Sent { started: Instant::now(), bytes: 0, records: 0 }),
        }
    }

    /// Accounts for a send of `bytes` and `records` and waits until it fits the rates.
    pub async fn acquire(&self, bytes: u64, records: u64) {
        if self.bytes_per_sec.is_none() && self.records_per_sec.is_none() {
            return;
        }
        let wait = {
            let mut sent = self.state.lock().expect("rate lock");
            sent.bytes += bytes;
            sent.records += records;
            let due = |amount: u64, rate: Option<u64>| rate.map_or(0.0, |rate| amount as f64 / rate as f64);
            let due = due(sent.bytes, self.bytes_per_sec).max(due(sent.records, self.records_per_sec));
            Duration::from_secs_f64(due).saturating_sub(sent.started.elapsed())
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn sends_are_paced_to_the_slower_of_the_two_rates() {
        let limiter = RateLimiter::new(Some(1000), Some(10));
        let started = tokio::time::Instant::now();
        for _ in 0..5 {
            limiter.acquire(100, 4).await; // 20 records at 10/s dominate 500 bytes at 1000/s
        }
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(1999) && elapsed <= Duration::from_millis(2001), "{elapsed:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_rates_never_wait() {
        let limiter = RateLimiter::new(None, None);
        let started = tokio::time::Instant::now();
        limiter.acquire(u64::MAX / 2, 1).await;
        assert_eq!(started.elapsed(), Duration::ZERO);
    }
}
