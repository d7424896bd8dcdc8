//! A token bucket: the pace at which one invocation may make a kind of
//! AWS call that shares a per-account, per-Region quota with the
//! customer's own traffic (GetResourcePolicy 50/s; replication writes
//! 50/s). No SDK here: it only decides when a call may start.
//!
//! Waiting is a reservation: a caller takes its token at once (the count
//! may go below zero) and sleeps until the bucket would have held it, so
//! callers are served in the order they asked, without polling. It runs on
//! `tokio::time`, so paused-clock tests see the pace exactly.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug)]
pub struct TokenBucket {
    per_second: f64,
    burst: f64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

/// A token could not be had within the time allowed; `wait` is how long
/// it would have taken.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TooLong {
    pub wait: Duration,
}

impl TokenBucket {
    /// `per_second` tokens a second (at least 1), holding at most `burst`
    /// (at least 1); it starts full.
    pub fn new(per_second: u32, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            per_second: f64::from(per_second.max(1)),
            burst,
            state: Mutex::new(State {
                tokens: burst,
                last: Instant::now(),
            }),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.per_second
    }

    /// Take one token, waiting for it if need be.
    pub async fn acquire(&self) {
        if let Ok(wait) = self.reserve(None)
            && !wait.is_zero()
        {
            tokio::time::sleep(wait).await;
        }
    }

    /// Take one token if it can be had within `max_wait`, waiting for it;
    /// otherwise take nothing and say how long it would have taken.
    pub async fn acquire_within(&self, max_wait: Duration) -> Result<(), TooLong> {
        let wait = self.reserve(Some(max_wait))?;
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }

    /// Reserve a token now; how long until it may be used.
    fn reserve(&self, max_wait: Option<Duration>) -> Result<Duration, TooLong> {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(s.last).as_secs_f64() * self.per_second;
        s.tokens = (s.tokens + refill).min(self.burst);
        s.last = now;
        let after = s.tokens - 1.0;
        let wait = if after >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-after / self.per_second)
        };
        if max_wait.is_some_and(|m| wait > m) {
            return Err(TooLong { wait });
        }
        s.tokens = after;
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Starts per test on a paused clock: time moves only when every task sleeps.
    async fn starts(bucket: &TokenBucket, n: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let mut at = Vec::new();
        for _ in 0..n {
            bucket.acquire().await;
            at.push(t0.elapsed());
        }
        at
    }

    #[tokio::test(start_paused = true)]
    async fn burst_first_then_the_rate() {
        let b = TokenBucket::new(5, 2);
        let at = starts(&b, 5).await;
        let ms: Vec<u128> = at.iter().map(|d| d.as_millis()).collect();
        assert_eq!(ms, vec![0, 0, 200, 400, 600]);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_never_exceed_the_rate_in_any_second() {
        let b = std::sync::Arc::new(TokenBucket::new(10, 10));
        let t0 = Instant::now();
        let tasks: Vec<_> = (0..55)
            .map(|_| {
                let b = b.clone();
                tokio::spawn(async move {
                    b.acquire().await;
                    t0.elapsed()
                })
            })
            .collect();
        let mut at = Vec::new();
        for t in tasks {
            at.push(t.await.unwrap());
        }
        // Every sliding one-second window holds at most burst + rate starts.
        for start in &at {
            let window = at
                .iter()
                .filter(|t| **t >= *start && **t < *start + Duration::from_secs(1))
                .count();
            assert!(window <= 20, "{window} starts within 1 s from {start:?}");
        }
        // And steady state is the rate: 55 starts take (55 - 10) / 10 s.
        let last = at.iter().max().unwrap();
        assert_eq!(last.as_millis(), 4500);
    }

    #[tokio::test(start_paused = true)]
    async fn a_token_too_far_off_is_refused_and_not_taken() {
        let b = TokenBucket::new(2, 1);
        assert_eq!(b.acquire_within(Duration::ZERO).await, Ok(()));
        let refused = b.acquire_within(Duration::from_millis(100)).await;
        assert_eq!(
            refused,
            Err(TooLong {
                wait: Duration::from_millis(500)
            })
        );
        // The refusal took nothing: the next token is still 500 ms away.
        let t0 = Instant::now();
        assert_eq!(b.acquire_within(Duration::from_secs(1)).await, Ok(()));
        assert_eq!(t0.elapsed().as_millis(), 500);
    }
}
