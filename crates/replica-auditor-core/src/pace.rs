//! The arithmetic of a pace: a token bucket kept as one number, the
//! theoretical arrival time (GCRA, the generic cell rate algorithm), so
//! that the per-instance bucket (`rate::TokenBucket`) and the bucket
//! shared by every instance through the state table (`aws::pace`) are the
//! same maths.
//!
//! `tat` is the time at which the bucket would be full again; it holds
//! `burst - (tat - now) / interval` tokens at `now`, fewer than zero when
//! callers have reserved tokens ahead. Taking `k` moves `tat` to
//! `max(tat, now) + k * interval`, and the taker waits until the bucket
//! would have held them (a reservation: no polling). Times are
//! microseconds on any one clock (the shared bucket's: since the epoch).
//!
//! Shared through DynamoDB, a take is one conditional UpdateItem of one of
//! two shapes that between them cover every state of the item:
//! [`Shape::Busy`] adds to `tat` (`SET tat = tat + :k`, when `tat >= now`
//! and the wait stays within the caller's), [`Shape::Idle`] restarts it
//! (`SET tat = :now + :k`, when the item is absent or `tat < now`). Neither
//! needs the previous value, and every applied take adds its tokens: a
//! retried take whose first answer was lost takes its tokens twice, so a
//! lost answer can only slow the callers, never let more through.

/// A rate and a burst, as an interval between tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Microseconds between tokens (rounded up: never faster than asked).
    pub interval: u64,
    /// Tokens the bucket holds when full (at least 1).
    pub burst: u32,
}

/// Which update a shared take makes, from what the item holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Absent, or every reserved token is in the past: `tat = now + k`.
    Idle,
    /// Tokens are reserved ahead: `tat += k`, if the wait stays within.
    Busy,
    /// Taking would wait longer than the caller allows: nothing taken.
    TooFar,
}

/// One take from a shared bucket: `k` tokens at `now`, its caller waiting
/// at most `max_wait`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Take {
    pub now: u64,
    pub k: u32,
    pub max_wait: u64,
}

/// What one conditional update of a shared bucket did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Update {
    /// Applied: the bucket's `tat` after it.
    Took(u64),
    /// Its condition refused: the `tat` the bucket held (`None`: none).
    Held(Option<u64>),
}

/// What a shared take did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Taken {
    /// The tokens are the caller's; `tat` is the bucket's after the take.
    Granted { tat: u64 },
    /// Nothing taken: the bucket held `tat`, too far ahead.
    TooFar { tat: u64 },
}

impl Rate {
    /// `per_second` tokens a second (above zero; a tiny rate is one a
    /// day), holding at most `burst` (at least 1).
    pub fn new(per_second: f64, burst: u32) -> Rate {
        let interval = if per_second.is_finite() && per_second > 0.0 {
            (1_000_000.0 / per_second).ceil().min(86_400_000_000.0) as u64
        } else {
            86_400_000_000
        };
        Rate {
            interval: interval.max(1),
            burst: burst.max(1),
        }
    }

    pub fn per_second(&self) -> f64 {
        1_000_000.0 / self.interval as f64
    }

    /// How far ahead of `now` a full bucket's `tat` may run without a wait.
    fn burst_span(&self) -> u64 {
        u64::from(self.burst) * self.interval
    }

    /// `tat` after taking `k` tokens at `now` (`None`: a full bucket).
    pub fn take(&self, tat: Option<u64>, now: u64, k: u32) -> u64 {
        tat.unwrap_or(0).max(now) + u64::from(k) * self.interval
    }

    /// How long the last token of a take that left `tat_after` waits.
    pub fn wait(&self, tat_after: u64, now: u64) -> u64 {
        tat_after.saturating_sub(now + self.burst_span())
    }

    /// The latest `tat` a take may leave when its caller waits at most
    /// `max_wait`.
    pub fn limit(&self, now: u64, max_wait: u64) -> u64 {
        now + self.burst_span() + max_wait
    }

    /// When each of the `k` tokens of a take that left `tat_after` may be
    /// used, in order (never before `now`).
    pub fn slots(&self, tat_after: u64, now: u64, k: u32) -> Vec<u64> {
        (0..u64::from(k))
            .map(|j| {
                let own = tat_after.saturating_sub((u64::from(k) - 1 - j) * self.interval);
                now.max(own.saturating_sub(self.burst_span()))
            })
            .collect()
    }

    /// Which update takes `k` tokens at `now` from an item holding `tat`,
    /// waiting at most `max_wait`.
    pub fn shape(&self, tat: Option<u64>, now: u64, k: u32, max_wait: u64) -> Shape {
        let after = self.take(tat, now, k);
        if after > self.limit(now, max_wait) {
            Shape::TooFar
        } else if tat.is_some_and(|t| t >= now) {
            Shape::Busy
        } else {
            Shape::Idle
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000;

    #[test]
    fn an_interval_is_rounded_up_and_a_bad_rate_is_one_a_day() {
        assert_eq!(Rate::new(10.0, 1).interval, 100 * MS);
        assert_eq!(Rate::new(3.0, 1).interval, 333_334);
        assert_eq!(Rate::new(0.0, 0), Rate::new(f64::NAN, 1));
        assert_eq!(Rate::new(0.0, 0).burst, 1);
        assert_eq!(Rate::new(0.0, 1).interval, 86_400 * 1_000 * MS);
    }

    #[test]
    fn a_full_bucket_gives_its_burst_at_once_then_the_rate() {
        // 5 a second, burst 2: tokens at 0, 0, 200, 400 ms.
        let r = Rate::new(5.0, 2);
        let mut tat = None;
        let mut waits = Vec::new();
        for _ in 0..4 {
            let after = r.take(tat, 0, 1);
            waits.push(r.wait(after, 0) / MS);
            tat = Some(after);
        }
        assert_eq!(waits, vec![0, 0, 200, 400]);
    }

    #[test]
    fn a_batch_of_tokens_is_spaced_by_the_interval() {
        let r = Rate::new(10.0, 1);
        // Idle bucket, 4 tokens at t = 1 s: at 1.0, 1.1, 1.2, 1.3 s.
        let after = r.take(Some(500 * MS), 1_000 * MS, 4);
        assert_eq!(after, 1_400 * MS);
        assert_eq!(
            r.slots(after, 1_000 * MS, 4),
            vec![1_000 * MS, 1_100 * MS, 1_200 * MS, 1_300 * MS]
        );
        // Busy: 2 tokens behind a reservation up to 1.4 s: 1.4 and 1.5 s.
        let again = r.take(Some(after), 1_050 * MS, 2);
        assert_eq!(r.slots(again, 1_050 * MS, 2), vec![1_400 * MS, 1_500 * MS]);
    }

    #[test]
    fn the_shape_follows_the_item_and_the_callers_wait() {
        let r = Rate::new(10.0, 1);
        let now = 10_000 * MS;
        assert_eq!(r.shape(None, now, 1, 0), Shape::Idle);
        assert_eq!(r.shape(Some(now - 1), now, 3, 0), Shape::TooFar);
        assert_eq!(r.shape(Some(now - 1), now, 3, 200 * MS), Shape::Idle);
        assert_eq!(r.shape(Some(now), now, 1, 0), Shape::Busy);
        // Reserved 1 s ahead: the next token is 1 s away.
        assert_eq!(
            r.shape(Some(now + 1_000 * MS), now, 1, 999 * MS),
            Shape::TooFar
        );
        assert_eq!(
            r.shape(Some(now + 1_000 * MS), now, 1, 1_000 * MS),
            Shape::Busy
        );
        assert_eq!(
            r.wait(r.take(Some(now + 1_000 * MS), now, 1), now),
            1_000 * MS
        );
    }
}
