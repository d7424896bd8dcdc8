//! Token buckets: the pace at which the auditor makes a kind of AWS call
//! that shares a per-account, per-Region quota with the customer's own
//! traffic (GetResourcePolicy 50/s; replication writes 50/s; Security
//! Hub's BatchImportFindings 10/s). No SDK here: it only decides when a
//! call may start. The arithmetic is `crate::pace`'s, one way for both:
//!
//! - [`TokenBucket`]: one instance's pace, in memory.
//! - [`SharedPace`]: one pace for every instance of the function, kept in
//!   the state table ([`PaceStore`], one item per quota, account and
//!   Region). An instance's concurrent callers of one account and Region
//!   queue behind one take, which takes a token for each of them at once.
//!   Without a state table it is a [`TokenBucket`] per account and Region.
//!
//! Waiting is a reservation: a caller takes its token at once (the count
//! may go below zero) and sleeps until the bucket would have held it, so
//! callers are served in the order they asked, without polling. It runs on
//! `tokio::time`, so paused-clock tests see the pace exactly.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::aws::{AwsError, PaceStore};
use crate::pace::{Rate, Shape, Take, Taken, Update};

#[derive(Debug)]
pub struct TokenBucket {
    rate: Rate,
    origin: Instant,
    /// Microseconds since `origin`; `None`: full.
    tat: Mutex<Option<u64>>,
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
        TokenBucket::at(Rate::new(f64::from(per_second.max(1)), burst))
    }

    fn at(rate: Rate) -> TokenBucket {
        TokenBucket {
            rate,
            origin: Instant::now(),
            tat: Mutex::new(None),
        }
    }

    pub fn per_second(&self) -> f64 {
        self.rate.per_second()
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
        let mut tat = self.tat.lock().unwrap_or_else(|p| p.into_inner());
        let now = micros(self.origin.elapsed());
        let after = self.rate.take(*tat, now, 1);
        let wait = Duration::from_micros(self.rate.wait(after, now));
        if max_wait.is_some_and(|m| wait > m) {
            return Err(TooLong { wait });
        }
        *tat = Some(after);
        Ok(wait)
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Why a shared token was not had.
#[derive(Debug)]
pub enum Refused {
    /// Not within the time allowed; `wait` is how long it would have taken.
    TooLong(TooLong),
    /// The state table did not answer: no call is made without a token
    /// (the callers' features need the table anyway).
    Unreachable(AwsError),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::TooLong(t) => write!(
                f,
                "no token within the time allowed (the next was {:.1}s away)",
                t.wait.as_secs_f64()
            ),
            Refused::Unreachable(e) => write!(f, "the shared pace could not be taken: {e}"),
        }
    }
}

/// Most tokens one take asks for (the callers queued behind it).
pub const MAX_BATCH: u32 = 10;

/// Updates tried before a bucket that keeps changing shape under a take is
/// reported too far (its caller waits, and asks again).
const TRIES: usize = 3;

/// One quota's pace for every instance: a shared bucket per account and
/// Region.
#[derive(Debug)]
pub struct SharedPace {
    /// The quota's name in the bucket's key.
    quota: &'static str,
    rate: Rate,
    clock: Clock,
    lanes: Mutex<HashMap<(String, String), Arc<Lane>>>,
}

/// Where the shared pace reads the time: the wall clock (shared with the
/// other instances), or, in paused-clock tests, tokio's from a start.
#[derive(Debug, Clone, Copy)]
enum Clock {
    Wall,
    #[cfg_attr(not(test), allow(dead_code))]
    Tokio(Instant),
}

/// One account and Region's bucket, as this instance sees it.
#[derive(Debug)]
struct Lane {
    lot: tokio::sync::Mutex<Lot>,
    /// Callers asking now: the next take's size.
    waiting: AtomicUsize,
    /// Without a state table: this instance's own bucket.
    local: TokenBucket,
}

#[derive(Debug, Default)]
struct Lot {
    /// Tokens taken for callers not served yet: when each may be used.
    free: VecDeque<u64>,
    /// The bucket's `tat` as last seen: the next take's guess.
    tat: Option<u64>,
}

/// Counts a caller in [`Lane::waiting`] until it has its token.
struct Asking<'a>(&'a AtomicUsize);

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl SharedPace {
    /// `per_second` calls a second (above zero) per account and Region,
    /// at most `burst` at once.
    pub fn new(quota: &'static str, per_second: f64, burst: u32) -> SharedPace {
        SharedPace {
            quota,
            rate: Rate::new(per_second, burst),
            clock: Clock::Wall,
            lanes: Mutex::default(),
        }
    }

    /// The same on tokio's clock, for paused-clock tests.
    #[cfg(test)]
    pub fn on_tokio_clock(quota: &'static str, per_second: f64, burst: u32) -> SharedPace {
        SharedPace {
            clock: Clock::Tokio(Instant::now()),
            ..SharedPace::new(quota, per_second, burst)
        }
    }

    pub fn per_second(&self) -> f64 {
        self.rate.per_second()
    }

    /// The bucket's state table key.
    pub fn key(&self, account: &str, region: &str) -> String {
        format!("pace#{}#{account}#{region}", self.quota)
    }

    fn now(&self) -> u64 {
        match self.clock {
            Clock::Wall => micros(
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            ),
            Clock::Tokio(start) => micros(start.elapsed()) + 1_000_000,
        }
    }

    fn lane(&self, account: &str, region: &str) -> Arc<Lane> {
        let mut lanes = self.lanes.lock().unwrap_or_else(|p| p.into_inner());
        lanes
            .entry((account.to_string(), region.to_string()))
            .or_insert_with(|| {
                Arc::new(Lane {
                    lot: tokio::sync::Mutex::default(),
                    waiting: AtomicUsize::new(0),
                    local: TokenBucket::at(self.rate),
                })
            })
            .clone()
    }

    /// Take one token of `account`'s pace in `region`, waiting for it at
    /// most `max_wait` (`None`: as long as it takes).
    pub async fn acquire<S: PaceStore>(
        &self,
        store: &S,
        account: &str,
        region: &str,
        max_wait: Option<Duration>,
    ) -> Result<(), Refused> {
        let lane = self.lane(account, region);
        if !store.shares_paces() {
            return match max_wait {
                None => {
                    lane.local.acquire().await;
                    Ok(())
                }
                Some(m) => lane.local.acquire_within(m).await.map_err(Refused::TooLong),
            };
        }
        let max_wait = max_wait.map_or(u64::MAX / 4, micros);
        lane.waiting.fetch_add(1, Ordering::SeqCst);
        let asking = Asking(&lane.waiting);
        let slot = self.slot(store, &lane, account, region, max_wait).await;
        drop(asking);
        let wait = slot?.saturating_sub(self.now());
        if wait > 0 {
            tokio::time::sleep(Duration::from_micros(wait)).await;
        }
        Ok(())
    }

    /// A token's time for this caller: one this instance took already for
    /// the callers queued, or a fresh take for them all.
    async fn slot<S: PaceStore>(
        &self,
        store: &S,
        lane: &Lane,
        account: &str,
        region: &str,
        max_wait: u64,
    ) -> Result<u64, Refused> {
        let mut lot = lane.lot.lock().await;
        let now = self.now();
        let interval = self.rate.interval;
        // A token not used before the next one's time is gone: using it late
        // could bunch calls past the rate.
        lot.free.retain(|s| s + interval > now);
        if let Some(&first) = lot.free.front() {
            if first > now + max_wait {
                return Err(Refused::TooLong(TooLong {
                    wait: Duration::from_micros(first - now),
                }));
            }
            lot.free.pop_front();
            return Ok(first);
        }
        let fit = u64::from(self.rate.burst) + max_wait / interval;
        let k = (lane.waiting.load(Ordering::SeqCst) as u64)
            .clamp(1, u64::from(MAX_BATCH))
            .min(fit.max(1)) as u32;
        let take = Take { now, k, max_wait };
        let guess = self.rate.shape(lot.tat, now, k, max_wait);
        let key = self.key(account, region);
        match self.take(store, &key, take, guess).await {
            Ok(Taken::Granted { tat }) => {
                lot.tat = Some(tat);
                let mut slots: VecDeque<u64> = self.rate.slots(tat, now, k).into();
                let mine = slots.pop_front().unwrap_or(now);
                lot.free = slots;
                Ok(mine)
            }
            Ok(Taken::TooFar { tat }) => {
                lot.tat = Some(tat);
                let wait = self.rate.wait(self.rate.take(Some(tat), now, 1), now);
                Err(Refused::TooLong(TooLong {
                    wait: Duration::from_micros(wait),
                }))
            }
            Err(e) => Err(Refused::Unreachable(e)),
        }
    }

    /// Take from the shared bucket: the guessed update, then (its condition
    /// refused) the one the bucket's `tat` calls for.
    async fn take<S: PaceStore>(
        &self,
        store: &S,
        key: &str,
        take: Take,
        guess: Shape,
    ) -> Result<Taken, AwsError> {
        // A bucket last seen too far is asked as Busy: it may have emptied.
        let mut shape = match guess {
            Shape::TooFar => Shape::Busy,
            guess => guess,
        };
        let mut seen = None;
        for _ in 0..TRIES {
            match store.update_pace(key, &self.rate, take, shape).await? {
                Update::Took(tat) => return Ok(Taken::Granted { tat }),
                Update::Held(tat) => {
                    seen = tat;
                    shape = self.rate.shape(tat, take.now, take.k, take.max_wait);
                    if shape == Shape::TooFar {
                        break;
                    }
                }
            }
        }
        Ok(Taken::TooFar {
            tat: seen.unwrap_or_else(|| self.rate.limit(take.now, take.max_wait)),
        })
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

    /// The state table's pace items in memory, as DynamoDB applies the two
    /// conditional updates (atomically); every update counted. With
    /// `lose_every` n, every n-th update's answer is lost and the SDK's
    /// retry applies it a second time.
    #[derive(Default)]
    struct Table {
        items: Mutex<HashMap<String, u64>>,
        updates: AtomicUsize,
        lose_every: usize,
        down: bool,
    }

    impl Table {
        fn apply(&self, key: &str, rate: &Rate, take: Take, shape: Shape) -> Update {
            let mut items = self.items.lock().unwrap();
            let held = items.get(key).copied();
            let added = u64::from(take.k) * rate.interval;
            let ok = match shape {
                Shape::Busy | Shape::TooFar => held.is_some_and(|t| {
                    t >= take.now && t <= rate.limit(take.now, take.max_wait) - added
                }),
                Shape::Idle => held.is_none_or(|t| t < take.now),
            };
            if !ok {
                return Update::Held(held);
            }
            let tat = rate.take(held, take.now, take.k);
            items.insert(key.to_string(), tat);
            Update::Took(tat)
        }
    }

    impl PaceStore for Table {
        fn shares_paces(&self) -> bool {
            true
        }
        async fn update_pace(
            &self,
            key: &str,
            rate: &Rate,
            take: Take,
            shape: Shape,
        ) -> Result<Update, AwsError> {
            if self.down {
                return Err(AwsError::Transport {
                    call: "dynamodb:UpdateItem",
                    region: "us-west-2".into(),
                    message: "connection refused".into(),
                });
            }
            // A round trip: the instance's other callers queue meanwhile.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let n = self.updates.fetch_add(1, Ordering::SeqCst) + 1;
            let first = self.apply(key, rate, take, shape);
            if self.lose_every > 0 && n.is_multiple_of(self.lose_every) {
                // Applied, its answer lost: the retry is what the caller sees.
                return Ok(self.apply(key, rate, take, shape));
            }
            Ok(first)
        }
    }

    /// `instances` shared paces (as many Lambda instances) of 10 a second,
    /// burst 1, on one table, each with `callers` tasks taking a token of
    /// one account and Region: when each call started.
    async fn shared_starts(table: Arc<Table>, instances: usize, callers: usize) -> Vec<Duration> {
        let t0 = Instant::now();
        let paces: Vec<Arc<SharedPace>> = (0..instances)
            .map(|_| Arc::new(SharedPace::on_tokio_clock("securityhub", 10.0, 1)))
            .collect();
        let calls = paces.iter().flat_map(|pace| {
            let table = table.clone();
            (0..callers).map(move |_| {
                let table = table.clone();
                async move {
                    pace.acquire(&*table, "111122223333", "us-west-2", None)
                        .await
                        .unwrap();
                    t0.elapsed()
                }
            })
        });
        let mut at = futures::future::join_all(calls).await;
        at.sort();
        at
    }

    /// No start before its token: the i-th (from 0) at 100 ms x i or later,
    /// whichever instance made it (10 a second, burst 1).
    fn never_ahead_of_the_rate(at: &[Duration]) {
        for (i, t) in at.iter().enumerate() {
            assert!(
                t.as_millis() >= 100 * i as u128,
                "start {i} at {t:?}, before its token: {at:?}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn instances_sharing_a_bucket_keep_its_rate_together_in_batched_takes() {
        let table = Arc::new(Table::default());
        let at = shared_starts(table.clone(), 4, 20).await;
        assert_eq!(at.len(), 80);
        // 10 a second for the four together, burst 1: 80 starts take 7.9 s.
        never_ahead_of_the_rate(&at);
        assert_eq!(at.last().unwrap().as_millis(), 7_900);
        // Callers queued in one instance share a take: 4 instances x 20
        // callers took their 80 tokens in far fewer updates.
        let updates = table.updates.load(Ordering::SeqCst);
        eprintln!("{updates} updates for 80 tokens");
        assert!(updates <= 16, "{updates} updates for 80 tokens");
        assert_eq!(
            table.items.lock().unwrap()["pace#securityhub#111122223333#us-west-2"] / 1_000,
            1_000 + 8_000,
            "the bucket's tat: started at 1 s, 80 tokens of 100 ms"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_answer_wastes_its_tokens_and_gives_none_extra() {
        let table = Arc::new(Table {
            lose_every: 2,
            ..Table::default()
        });
        let at = shared_starts(table.clone(), 4, 20).await;
        assert_eq!(at.len(), 80);
        never_ahead_of_the_rate(&at);
        // Every second update's tokens were taken twice: the 80 calls took
        // longer than 7.9 s, and the bucket counted more than 80 tokens.
        assert!(at.last().unwrap().as_millis() > 7_900, "{:?}", at.last());
        let tat = table.items.lock().unwrap()["pace#securityhub#111122223333#us-west-2"];
        assert!(tat / 1_000 > 9_000, "{tat}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_table_gives_no_token_and_says_why() {
        let table = Table {
            down: true,
            ..Table::default()
        };
        let pace = SharedPace::on_tokio_clock("replication", 5.0, 1);
        let refused = pace
            .acquire(
                &table,
                "111122223333",
                "us-west-2",
                Some(Duration::from_secs(1)),
            )
            .await
            .unwrap_err();
        assert_eq!(
            refused.to_string(),
            "the shared pace could not be taken: dynamodb:UpdateItem in us-west-2: could not reach the service: connection refused"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_token_too_far_off_is_refused_with_its_wait() {
        let table = Table::default();
        let (a, b) = (
            SharedPace::on_tokio_clock("replication", 2.0, 1),
            SharedPace::on_tokio_clock("replication", 2.0, 1),
        );
        let ms = |wait: u64| Some(Duration::from_millis(wait));
        let (account, region) = ("111122223333", "us-west-2");
        a.acquire(&table, account, region, ms(0)).await.unwrap();
        // At 5 ms (a round trip on), the other instance's next token is
        // 495 ms away: refused, nothing taken.
        match b.acquire(&table, account, region, ms(100)).await {
            Err(Refused::TooLong(TooLong { wait })) => assert_eq!(wait.as_millis(), 495),
            other => panic!("{other:?}"),
        }
        // Asked again at 10 ms: the token at 500 ms is had.
        let t0 = Instant::now();
        b.acquire(&table, account, region, ms(1_000)).await.unwrap();
        assert_eq!(t0.elapsed().as_millis(), 490);
    }
}
