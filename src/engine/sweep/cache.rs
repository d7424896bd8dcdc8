//! The sweep's caches for one invocation: KMS answers per (Region, key),
//! and replicas per (replica Region, primary Region) from one ListSecrets
//! listing instead of a DescribeSecret each. Concurrent askers of the same
//! entry wait for one call. GetResourcePolicy is paced per Region.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::arn::secret_arn_in_region;
use crate::aws::{AwsError, KeyMeta, KeysApi, SecretsApi};
use crate::engine::inspect::Budget;
use crate::model::SecretState;
use crate::rate::TokenBucket;

/// The sweep's GetResourcePolicy reads per second, per Region. The quota is
/// 50/s per account and Region, shared with the customer's own
/// Put/Delete/ValidateResourcePolicy calls (and the event path's reads):
/// half of it leaves the other half to them.
pub const RESOURCE_POLICY_READS_PER_SECOND: u32 = 25;
/// Reads that may start at once before the pace applies: with the rate, at
/// most 30 in any one second, still under the quota.
pub const RESOURCE_POLICY_BURST: u32 = 5;

type Cell<T> = Arc<OnceCell<Result<T, AwsError>>>;
/// One cell per (Region, key).
type Cells<T> = Mutex<HashMap<(String, String), Cell<T>>>;

/// KMS answers cached per (Region, key) for one invocation: many secrets
/// share a key. Concurrent askers of the same key wait for one call.
pub struct CachedKeys<'a, K> {
    inner: &'a K,
    described: Cells<Option<KeyMeta>>,
    policies: Cells<Option<String>>,
    pub calls: AtomicUsize,
    pub hits: AtomicUsize,
}

impl<'a, K: KeysApi> CachedKeys<'a, K> {
    pub fn new(inner: &'a K) -> Self {
        CachedKeys {
            inner,
            described: Mutex::default(),
            policies: Mutex::default(),
            calls: AtomicUsize::new(0),
            hits: AtomicUsize::new(0),
        }
    }

    fn cell<T>(
        map: &Mutex<HashMap<(String, String), Cell<T>>>,
        region: &str,
        key: &str,
    ) -> Cell<T> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        m.entry((region.to_string(), key.to_string()))
            .or_default()
            .clone()
    }

    async fn cached<T: Clone>(
        &self,
        cell: Cell<T>,
        call: impl std::future::Future<Output = Result<T, AwsError>>,
    ) -> Result<T, AwsError> {
        if let Some(v) = cell.get() {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return v.clone();
        }
        let mut made = false;
        let v = cell
            .get_or_init(|| {
                made = true;
                call
            })
            .await
            .clone();
        if made {
            self.calls.fetch_add(1, Ordering::Relaxed);
        } else {
            self.hits.fetch_add(1, Ordering::Relaxed);
        }
        v
    }
}

impl<K: KeysApi> KeysApi for CachedKeys<'_, K> {
    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KeyMeta>, AwsError> {
        let cell = Self::cell(&self.described, region, key_id);
        self.cached(cell, self.inner.describe_key(region, key_id))
            .await
    }

    async fn get_key_policy(&self, region: &str, key_id: &str) -> Result<Option<String>, AwsError> {
        let cell = Self::cell(&self.policies, region, key_id);
        self.cached(cell, self.inner.get_key_policy(region, key_id))
            .await
    }
}

/// One listing: the replicas of one primary Region in one Region, by ARN;
/// `None` when it could not be made.
type Listing = Arc<OnceCell<Option<Mutex<HashMap<String, SecretState>>>>>;

/// Replica checks answered from ListSecrets: one listing per (replica
/// Region, primary Region), filtered to replicas of that primary Region
/// (100 per call), instead of a DescribeSecret per replica.
///
/// A listing only ever confirms. A replica it does not hold (a Failed
/// Region, a name clash, a replica newer than the listing, since ListSecrets
/// is eventually consistent) is described as on the event path, and so is
/// every replica in a Region whose listing failed. Each entry is handed out
/// once (the sweep audits a primary once), so the listing shrinks as the
/// sweep goes.
pub struct ListedReplicas<'a, S> {
    inner: &'a S,
    budget: Budget,
    listings: Mutex<HashMap<(String, String), Listing>>,
    /// ListSecrets calls made for replica listings.
    pub pages: AtomicUsize,
    /// Replica checks answered from a listing.
    pub answered: AtomicUsize,
    /// GetResourcePolicy's pace, per Region.
    policy_pace: Mutex<HashMap<String, Arc<TokenBucket>>>,
}

impl<'a, S: SecretsApi> ListedReplicas<'a, S> {
    pub fn new(inner: &'a S, budget: Budget) -> Self {
        ListedReplicas {
            inner,
            budget,
            listings: Mutex::default(),
            pages: AtomicUsize::new(0),
            answered: AtomicUsize::new(0),
            policy_pace: Mutex::default(),
        }
    }

    /// Wait for a GetResourcePolicy token in `region`; a token that would
    /// come only after the invocation's reserve is an error, never a
    /// silently skipped read.
    async fn paced(&self, region: &str) -> Result<(), AwsError> {
        let bucket = {
            let mut m = self.policy_pace.lock().unwrap_or_else(|p| p.into_inner());
            m.entry(region.to_string())
                .or_insert_with(|| {
                    Arc::new(TokenBucket::new(
                        RESOURCE_POLICY_READS_PER_SECOND,
                        RESOURCE_POLICY_BURST,
                    ))
                })
                .clone()
        };
        let not_started = |reason: String| AwsError::NotStarted {
            call: "secretsmanager:GetResourcePolicy",
            region: region.to_string(),
            reason,
        };
        let window = self.budget.call_window().ok_or_else(|| {
            not_started("the invocation's time was running out (kept in reserve to publish)".into())
        })?;
        bucket.acquire_within(window).await.map_err(|too_long| {
            not_started(format!(
                "at the sweep's pace of {RESOURCE_POLICY_READS_PER_SECOND} reads/s in this Region it could start only in {:.1}s, after the invocation's deadline",
                too_long.wait.as_secs_f64()
            ))
        })
    }

    /// The replica of `primary` in `region`, if the listing holds it.
    async fn take_listed(&self, region: &str, primary: &SecretState) -> Option<SecretState> {
        if region == primary.region {
            return None;
        }
        let arn = secret_arn_in_region(&primary.arn, region)?;
        let cell = {
            let mut m = self.listings.lock().unwrap_or_else(|p| p.into_inner());
            m.entry((region.to_string(), primary.region.clone()))
                .or_default()
                .clone()
        };
        let listing = cell
            .get_or_init(|| self.list_all(region, &primary.region))
            .await
            .as_ref()?;
        let found = listing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&arn)?;
        self.answered.fetch_add(1, Ordering::Relaxed);
        Some(found)
    }

    /// Every page of the listing; `None` (and one warning) if a page fails.
    async fn list_all(
        &self,
        region: &str,
        primary_region: &str,
    ) -> Option<Mutex<HashMap<String, SecretState>>> {
        let mut all = HashMap::new();
        let (calls, listed) = super::list_every_page(
            self.inner,
            &self.budget,
            region,
            Some(primary_region),
            |secrets| {
                // The filter is a prefix match: keep exact ones only.
                all.extend(
                    secrets
                        .into_iter()
                        .filter(|s| s.primary_region.as_deref() == Some(primary_region))
                        .map(|s| (s.arn.clone(), s)),
                );
            },
        )
        .await;
        self.pages.fetch_add(calls, Ordering::Relaxed);
        match listed {
            Ok(()) => Some(Mutex::new(all)),
            Err(gap) => {
                tracing::warn!(
                    region,
                    primary_region,
                    reason = %gap.reason,
                    "could not list replicas; describing each one instead"
                );
                None
            }
        }
    }
}

impl<S: SecretsApi> SecretsApi for ListedReplicas<'_, S> {
    async fn list_secrets(
        &self,
        region: &str,
        primary_region: Option<&str>,
        next_token: Option<String>,
    ) -> Result<(Vec<SecretState>, Option<String>), AwsError> {
        self.inner
            .list_secrets(region, primary_region, next_token)
            .await
    }

    async fn describe_secret(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<SecretState>, AwsError> {
        self.inner.describe_secret(region, secret_id).await
    }

    async fn describe_linked(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<(SecretState, crate::cross_account::Links)>, AwsError> {
        self.inner.describe_linked(region, secret_id).await
    }

    async fn describe_replica(
        &self,
        region: &str,
        primary: &SecretState,
    ) -> Result<Option<SecretState>, AwsError> {
        match self.take_listed(region, primary).await {
            Some(listed) => Ok(Some(listed)),
            None => self.inner.describe_secret(region, &primary.name).await,
        }
    }

    async fn get_resource_policy(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<String>, AwsError> {
        self.paced(region).await?;
        self.inner.get_resource_policy(region, secret_id).await
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use futures::future::join_all;

    use super::*;

    const PRIMARY: &str = "us-west-2";
    const EAST: &str = "us-east-1";

    fn secret(name: &str, region: &str, primary_region: &str, origin: &str) -> SecretState {
        SecretState {
            arn: format!("arn:aws:secretsmanager:{region}:123456789012:secret:{name}-AbCdEf"),
            name: name.into(),
            region: region.into(),
            primary_region: Some(primary_region.into()),
            kms_key_id: Some(format!("alias/{region}")),
            rotation_enabled: false,
            tags: BTreeMap::from([("origin".to_string(), origin.to_string())]),
            replication: vec![],
            last_changed: None,
            versions: Default::default(),
        }
    }

    /// ListSecrets in pages of `page`, filtered by primary Region as a
    /// prefix (as AWS does); every call recorded.
    struct Fake {
        page: usize,
        listed: Vec<SecretState>,
        listing_fails: bool,
        calls: Mutex<Vec<String>>,
        /// When each GetResourcePolicy started, and in which Region.
        policy_reads: Mutex<Vec<(String, tokio::time::Instant)>>,
    }

    impl Fake {
        fn new(page: usize, listed: Vec<SecretState>) -> Fake {
            Fake {
                page,
                listed,
                listing_fails: false,
                calls: Mutex::default(),
                policy_reads: Mutex::default(),
            }
        }
        fn calls(&self, prefix: &str) -> usize {
            let calls = self.calls.lock().unwrap();
            calls.iter().filter(|c| c.starts_with(prefix)).count()
        }
    }

    impl SecretsApi for Fake {
        async fn list_secrets(
            &self,
            region: &str,
            primary_region: Option<&str>,
            token: Option<String>,
        ) -> Result<(Vec<SecretState>, Option<String>), AwsError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("ListSecrets {region}"));
            tokio::task::yield_now().await;
            if self.listing_fails {
                return Err(AwsError::Service {
                    call: "secretsmanager:ListSecrets",
                    region: region.into(),
                    code: "AccessDeniedException".into(),
                    message: "no".into(),
                });
            }
            let all: Vec<_> = self
                .listed
                .iter()
                .filter(|s| s.region == region)
                .filter(|s| {
                    let p = s.primary_region.as_deref().unwrap_or_default();
                    primary_region.is_none_or(|want| p.starts_with(want))
                })
                .cloned()
                .collect();
            let from: usize = token.map_or(0, |t| t.parse().unwrap());
            let to = (from + self.page).min(all.len());
            let next = (to < all.len()).then(|| to.to_string());
            Ok((all[from..to].to_vec(), next))
        }

        async fn describe_secret(
            &self,
            region: &str,
            id: &str,
        ) -> Result<Option<SecretState>, AwsError> {
            self.calls
                .lock()
                .unwrap()
                .push(format!("DescribeSecret {region} {id}"));
            Ok(Some(secret(id, region, PRIMARY, "describe")))
        }

        async fn get_resource_policy(
            &self,
            region: &str,
            id: &str,
        ) -> Result<Option<String>, AwsError> {
            let now = tokio::time::Instant::now();
            self.policy_reads
                .lock()
                .unwrap()
                .push((region.to_string(), now));
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            Ok(Some(format!("policy of {id}")))
        }
    }

    fn origin(s: &Result<Option<SecretState>, AwsError>) -> &str {
        s.as_ref().unwrap().as_ref().unwrap().tags["origin"].as_str()
    }

    fn primaries(n: usize) -> Vec<SecretState> {
        (0..n)
            .map(|i| secret(&format!("app-{i}"), PRIMARY, PRIMARY, "describe"))
            .collect()
    }

    #[tokio::test]
    async fn concurrent_replica_checks_share_one_listing_of_their_region() {
        let primaries = primaries(7);
        let listed = primaries
            .iter()
            .map(|p| secret(&p.name, EAST, PRIMARY, "listing"))
            .collect();
        let fake = Fake::new(3, listed);
        let cache = ListedReplicas::new(&fake, Budget::unlimited());
        let got = join_all(primaries.iter().map(|p| cache.describe_replica(EAST, p))).await;
        assert!(got.iter().all(|g| origin(g) == "listing"));
        assert_eq!(
            fake.calls("ListSecrets us-east-1"),
            3,
            "7 replicas, pages of 3"
        );
        assert_eq!(fake.calls("DescribeSecret"), 0);
        assert_eq!(cache.answered.load(Ordering::Relaxed), 7);
        assert_eq!(cache.pages.load(Ordering::Relaxed), 3);
        // The listed replica is the one of this primary, in that Region.
        let first = got[0].as_ref().unwrap().as_ref().unwrap();
        assert_eq!(
            first.arn,
            secret_arn_in_region(&primaries[0].arn, EAST).unwrap()
        );
        assert_eq!(first.region, EAST);
    }

    #[tokio::test]
    async fn a_replica_the_listing_lacks_is_described() {
        let primaries = primaries(3);
        // app-1 is not listed (a Failed Region, or newer than the listing);
        // app-2's copy there belongs to another primary Region, which the
        // prefix filter let through.
        let listed = vec![
            secret("app-0", EAST, PRIMARY, "listing"),
            secret("app-2", EAST, "us-west-2-other", "listing"),
        ];
        let fake = Fake::new(100, listed);
        let cache = ListedReplicas::new(&fake, Budget::unlimited());
        let got = join_all(primaries.iter().map(|p| cache.describe_replica(EAST, p))).await;
        assert_eq!(
            got.iter().map(origin).collect::<Vec<_>>(),
            ["listing", "describe", "describe"]
        );
        assert_eq!(fake.calls("ListSecrets"), 1);
        assert_eq!(fake.calls("DescribeSecret us-east-1 app-1"), 1);
        assert_eq!(fake.calls("DescribeSecret us-east-1 app-2"), 1);
    }

    #[tokio::test]
    async fn each_listed_replica_is_handed_out_once() {
        let p = &primaries(1)[0];
        let fake = Fake::new(100, vec![secret("app-0", EAST, PRIMARY, "listing")]);
        let cache = ListedReplicas::new(&fake, Budget::unlimited());
        assert_eq!(origin(&cache.describe_replica(EAST, p).await), "listing");
        assert_eq!(origin(&cache.describe_replica(EAST, p).await), "describe");
        assert_eq!(
            fake.calls("ListSecrets"),
            1,
            "the listing is not made again"
        );
    }

    #[tokio::test]
    async fn a_failed_listing_falls_back_to_describing_every_replica() {
        let primaries = primaries(4);
        let mut fake = Fake::new(100, vec![secret("app-0", EAST, PRIMARY, "listing")]);
        fake.listing_fails = true;
        let cache = ListedReplicas::new(&fake, Budget::unlimited());
        let got = join_all(primaries.iter().map(|p| cache.describe_replica(EAST, p))).await;
        assert!(got.iter().all(|g| origin(g) == "describe"));
        assert_eq!(fake.calls("ListSecrets"), 1, "tried once per Region");
        assert_eq!(fake.calls("DescribeSecret us-east-1"), 4);
        assert_eq!(cache.answered.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn the_primary_region_itself_is_never_listed() {
        let p = &primaries(1)[0];
        let fake = Fake::new(100, vec![]);
        let cache = ListedReplicas::new(&fake, Budget::unlimited());
        assert_eq!(
            origin(&cache.describe_replica(PRIMARY, p).await),
            "describe"
        );
        assert_eq!(fake.calls("ListSecrets"), 0);
    }

    /// Most reads that started within any one second, per Region.
    fn busiest_second(reads: &[(String, tokio::time::Instant)], region: &str) -> usize {
        let at: Vec<_> = reads
            .iter()
            .filter(|(r, _)| r == region)
            .map(|(_, t)| *t)
            .collect();
        at.iter()
            .map(|start| {
                at.iter()
                    .filter(|t| **t >= *start && **t < *start + std::time::Duration::from_secs(1))
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[tokio::test(start_paused = true)]
    async fn the_sweeps_policy_reads_stay_under_the_quota_in_every_region() {
        let fake = Fake::new(100, vec![]);
        let cache = ListedReplicas::new(&fake, Budget::unlimited());
        let t0 = tokio::time::Instant::now();
        // 200 secrets at once in each of two Regions, as a sweep at any
        // concurrency would ask.
        let got = join_all((0..400).map(|i| {
            let region = if i % 2 == 0 { PRIMARY } else { EAST };
            let cache = &cache;
            async move { cache.get_resource_policy(region, &format!("app-{i}")).await }
        }))
        .await;
        assert!(
            got.iter().all(|g| g.as_ref().unwrap().is_some()),
            "every read made"
        );
        let reads = fake.policy_reads.lock().unwrap().clone();
        assert_eq!(reads.len(), 400);
        let bound = (RESOURCE_POLICY_READS_PER_SECOND + RESOURCE_POLICY_BURST) as usize;
        for region in [PRIMARY, EAST] {
            let busiest = busiest_second(&reads, region);
            assert!(busiest <= bound, "{busiest} reads within 1 s in {region}");
            assert!(busiest < 50, "under GetResourcePolicy's 50/s quota");
        }
        // The Regions are paced side by side: 200 each take (200 - 5) / 25 s.
        let took = t0.elapsed().as_secs_f64();
        assert!((7.8..7.9).contains(&took), "{took} s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_that_cannot_get_a_token_in_time_is_reported_not_skipped() {
        let fake = Fake::new(100, vec![]);
        // 1 s of calls left before the reserve.
        let budget = Budget::until(
            std::time::Instant::now() + std::time::Duration::from_millis(1500),
            std::time::Duration::from_millis(500),
        );
        let cache = ListedReplicas::new(&fake, budget);
        let got = join_all((0..60).map(|i| {
            let cache = &cache;
            async move { cache.get_resource_policy(EAST, &format!("app-{i}")).await }
        }))
        .await;
        let made = got.iter().filter(|g| g.is_ok()).count();
        // The burst, then 25/s for under a second.
        assert!((25..=30).contains(&made), "{made} made");
        for refused in got.iter().filter_map(|g| g.as_ref().err()) {
            assert_eq!(refused.call(), "secretsmanager:GetResourcePolicy");
            assert_eq!(refused.region(), EAST);
            assert!(refused.to_string().contains("not started"), "{refused}");
        }
        assert_eq!(fake.policy_reads.lock().unwrap().len(), made);
    }
}
