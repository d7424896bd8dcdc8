//! Builds a [`Snapshot`] of one secret across every Region it lives in,
//! through the adapter traits. Every call is bounded by the invocation's
//! time budget; a call that fails or cannot be made becomes a [`Gap`], so
//! the audit reports it instead of passing silently.

use std::future::Future;
use std::time::{Duration, Instant};

use futures::future::join_all;

use super::cross_account::{NoOtherSide, OtherSide};
use crate::arn::secret_arn_in_region;
use crate::aws::{AwsError, KeysApi, SecretsApi};
use crate::cross_account::{Counterpart, CrossAccount, Links};
use crate::model::*;

/// The time an invocation may spend on AWS calls.
#[derive(Debug, Clone, Copy)]
pub struct Budget {
    deadline: Option<Instant>,
    /// Kept back for building and publishing the report.
    reserve: Duration,
}

impl Budget {
    /// No deadline (local tools, tests).
    pub fn unlimited() -> Budget {
        Budget {
            deadline: None,
            reserve: Duration::ZERO,
        }
    }

    /// A deadline with `reserve` kept for publishing.
    pub fn until(deadline: Instant, reserve: Duration) -> Budget {
        Budget {
            deadline: Some(deadline),
            reserve,
        }
    }

    /// The reserve for a Lambda invocation with `total` time: a fifth of
    /// it, between 0.5 s and 3 s.
    pub fn reserve_for(total: Duration) -> Duration {
        (total / 5).clamp(Duration::from_millis(500), Duration::from_secs(3))
    }

    /// How long the next call may take; `None` when no new work may start.
    pub fn call_window(&self) -> Option<Duration> {
        match self.deadline {
            None => Some(Duration::from_secs(3600)),
            Some(d) => d
                .checked_duration_since(Instant::now())
                .and_then(|left| left.checked_sub(self.reserve))
                .filter(|w| *w >= Duration::from_millis(50)),
        }
    }

    /// Time until the invocation's deadline; `None` without a deadline.
    pub fn time_left(&self) -> Option<Duration> {
        self.deadline
            .map(|d| d.saturating_duration_since(Instant::now()))
    }

    /// Run one AWS call within the budget.
    pub async fn run<T>(
        &self,
        call: &'static str,
        region: &str,
        fut: impl Future<Output = Result<T, AwsError>>,
    ) -> Result<T, Gap> {
        let Some(window) = self.call_window() else {
            return Err(AwsError::NotStarted {
                call,
                region: region.to_string(),
                reason: "the invocation's time was running out (kept in reserve to publish)".into(),
            }
            .into_gap());
        };
        // The adapters box each SDK call's future (tens of KB in a debug
        // build), so the inspector can run several side by side in one task
        // without copying them around or overflowing a thread's stack.
        match tokio::time::timeout(window, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.into_gap()),
            Err(_) => Err(AwsError::Timeout {
                call,
                region: region.to_string(),
                seconds: window.as_secs_f64(),
            }
            .into_gap()),
        }
    }
}

/// How an audit came to a secret, which decides how far its inspection
/// looks ([`crate::engine::App::target`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Look {
    /// Named by a CloudTrail event or the command line: a promoted
    /// replica's former primary is searched for, and a secret without
    /// replicas is inspected whole.
    Named { promotion: bool },
    /// Listed by a sweep: its resource policy read only when its ledger
    /// says so (`policy`), and a secret without replicas looked at no
    /// further unless a required-Region rule applies to every secret.
    Listed { policy: Option<PolicyCheck> },
}

/// What to inspect.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Name, partial ARN or full ARN.
    pub secret_id: String,
    /// The Region to look in first.
    pub region: String,
    pub account: Option<String>,
    /// The trigger was a successful StopReplicationToReplica: the secret
    /// in `region` may now be a standalone secret.
    pub promotion: bool,
    /// Where to look for a promoted secret's former primary.
    pub search_regions: Vec<String>,
    /// Whether a primary without replicas (and without the required-Regions
    /// tag) is inspected further. The sweep does not audit such a secret,
    /// so it skips its key checks and its paced resource policy read.
    pub unreplicated_too: bool,
    /// A sweep's policy ledger for the secret's account and primary
    /// Region: the resource policy is read only when due. `None` (events,
    /// or no state table): always read.
    pub policy: Option<PolicyCheck>,
}

/// Whether a sweep reads a secret's resource policy ([`crate::ledger`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyCheck {
    pub ledger: std::sync::Arc<crate::ledger::PolicyLedger>,
    /// The trust rules' fingerprint ([`crate::ledger::rules_fingerprint`]).
    pub rules: std::sync::Arc<str>,
    /// SWEEP_POLICY_REFRESH: every policy is read once in this many sweeps.
    pub refresh: u32,
}

impl PolicyCheck {
    fn due(&self, primary: &SecretState) -> bool {
        self.ledger
            .due(
                &primary.arn,
                primary.last_changed,
                &self.rules,
                self.refresh,
            )
            .is_some()
    }
}

/// Inspect one secret everywhere it lives, without looking at the other
/// side of its cross-account links ([`NoOtherSide`]).
pub async fn inspect<S: SecretsApi, K: KeysApi>(
    secrets: &S,
    keys: &K,
    target: &Target,
    budget: &Budget,
) -> Snapshot {
    inspect_with(secrets, keys, &NoOtherSide, target, budget).await
}

/// Inspect one secret everywhere it lives; `other` looks at the other side
/// of its cross-account links beside the replica and key checks.
pub async fn inspect_with<S: SecretsApi, K: KeysApi, O: OtherSide>(
    secrets: &S,
    keys: &K,
    other: &O,
    target: &Target,
    budget: &Budget,
) -> Snapshot {
    let mut snap = Snapshot::empty(target.secret_id.clone());
    snap.account = target.account.clone();
    snap.observed_at = now_secs();
    let (primary, links) = match find_primary(secrets, target, budget, &mut snap).await {
        Ok(found) => found,
        Err(outcome) => return end_early(snap, outcome),
    };

    if !target.unreplicated_too
        && links.is_empty()
        && primary.replication.is_empty()
        && !primary
            .tags
            .contains_key(crate::audit::REQUIRED_REGIONS_TAG)
    {
        snap.primary = Lookup::Found(primary);
        return snap;
    }

    // All at once (one round trip on top of the primary's): the primary's
    // key and resource policy (policies replicate, so the primary's covers
    // its replicas; a promoted replica is its own primary here), and for
    // every replica Region the replica itself and its key.
    let read_policy = target.policy.as_ref().is_none_or(|c| c.due(&primary));
    let secret_policy = async {
        if !read_policy {
            return None;
        }
        let read = budget.run(
            "secretsmanager:GetResourcePolicy",
            &primary.region,
            secrets.get_resource_policy(&primary.region, &primary.arn),
        );
        Some(read.await)
    };
    let primary_key = check_key(
        keys,
        &primary.region,
        KeyRole::Primary,
        primary.kms_key_id.clone(),
        budget,
    );
    let replicas = join_all(primary.replication.iter().map(|status| async {
        let (presence, key) = futures::join!(
            budget.run(
                "secretsmanager:DescribeSecret",
                &status.region,
                secrets.describe_replica(&status.region, &primary),
            ),
            check_key(
                keys,
                &status.region,
                KeyRole::Replica,
                status.kms_key_id.clone(),
                budget,
            )
        );
        (status.clone(), presence, key)
    }));
    let counterparts = async {
        if links.is_empty() {
            return None;
        }
        Some(other.counterparts(&primary, &links, budget).await)
    };
    let (primary_key, replicas, secret_policy, counterparts) =
        futures::join!(primary_key, replicas, secret_policy, counterparts);
    if let Some((counterparts, gaps)) = counterparts {
        snap.gaps.extend(gaps);
        snap.cross_account = Some(cross_account(&primary, links, counterparts, &mut snap.gaps));
    }
    match secret_policy {
        Some(Ok(policy)) => {
            snap.secret_policy = policy;
            snap.secret_policy_read = true;
        }
        Some(Err(gap)) => snap.gaps.push(gap),
        None => {}
    }

    let (key, gaps) = primary_key;
    snap.keys.push(key);
    snap.gaps.extend(gaps);
    add_replicas(&mut snap, replicas);
    snap.primary = Lookup::Found(primary);
    snap
}

/// What was read of one replica Region: its status on the primary, the
/// secret there, its key.
type ReplicaRead = (
    ReplicaStatus,
    Result<Option<SecretState>, Gap>,
    (KeyCheck, Vec<Gap>),
);

/// Each replica Region's check, and its key's, into the snapshot.
fn add_replicas(snap: &mut Snapshot, replicas: Vec<ReplicaRead>) {
    for (status, presence, (key, gaps)) in replicas {
        let presence = match presence {
            Ok(Some(s)) => Lookup::Found(s),
            Ok(None) => Lookup::NotFound,
            Err(gap) => {
                // Presence matters only when the primary says InSync.
                if status.status == Some(ReplicationState::InSync) {
                    snap.gaps.push(gap);
                }
                Lookup::Unknown
            }
        };
        snap.replicas.push(ReplicaCheck { status, presence });
        snap.keys.push(key);
        snap.gaps.extend(gaps);
    }
}

/// The secret the target names, followed to its primary when it is a
/// replica (a promoted one is its own primary, its former one searched
/// for), with its cross-account links; else what ended the search.
async fn find_primary<S: SecretsApi>(
    secrets: &S,
    target: &Target,
    budget: &Budget,
    snap: &mut Snapshot,
) -> Result<(SecretState, Links), Result<Option<SecretState>, Gap>> {
    let ended = |other: Result<Option<(SecretState, Links)>, Gap>| other.map(|o| o.map(|(s, _)| s));
    let (first, links) =
        match describe_linked(secrets, budget, &target.region, &target.secret_id).await {
            Ok(Some(found)) => found,
            other => return Err(ended(other)),
        };
    if !first.is_primary_copy() {
        // A replica: follow it to its primary.
        let home = first.home_region().to_string();
        let id = secret_arn_in_region(&first.arn, &home).unwrap_or_else(|| first.name.clone());
        return match describe_linked(secrets, budget, &home, &id).await {
            Ok(Some(found)) => Ok(found),
            other => Err(ended(other)),
        };
    }
    if target.promotion {
        let former = find_former_primary(
            secrets,
            &first,
            &target.search_regions,
            budget,
            &mut snap.gaps,
        )
        .await;
        snap.promotion = Some(Promotion {
            standalone: first.clone(),
            former_primary: former,
        });
    }
    Ok((first, links))
}

/// The clock, in epoch seconds, when the snapshot is taken.
fn now_secs() -> Option<i64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs() as i64)
}

/// The snapshot's cross-account part: the links, when they were read.
fn cross_account(
    primary: &SecretState,
    links: Links,
    counterparts: Vec<Counterpart>,
    gaps: &mut Vec<Gap>,
) -> CrossAccount {
    let observed_at = now_secs();
    if let Some(why) = &links.unreadable {
        gaps.push(Gap {
            call: "secretsmanager:DescribeSecret".into(),
            region: primary.region.clone(),
            kind: GapKind::Other,
            reason: format!("its cross-account members could not be read: {why}"),
        });
    }
    CrossAccount {
        links,
        observed_at,
        counterparts,
    }
}

/// DescribeSecret with its cross-account links, within the budget.
async fn describe_linked<S: SecretsApi>(
    secrets: &S,
    budget: &Budget,
    region: &str,
    id: &str,
) -> Result<Option<(SecretState, Links)>, Gap> {
    budget
        .run(
            "secretsmanager:DescribeSecret",
            region,
            secrets.describe_linked(region, id),
        )
        .await
}

/// DescribeSecret within the budget.
async fn describe<S: SecretsApi>(
    secrets: &S,
    budget: &Budget,
    region: &str,
    id: &str,
) -> Result<Option<SecretState>, Gap> {
    budget
        .run(
            "secretsmanager:DescribeSecret",
            region,
            secrets.describe_secret(region, id),
        )
        .await
}

/// The snapshot when the secret was not found, or could not be looked up.
fn end_early(mut snap: Snapshot, outcome: Result<Option<SecretState>, Gap>) -> Snapshot {
    match outcome {
        Err(gap) => snap.gaps.push(gap),
        Ok(_) => snap.primary = Lookup::NotFound,
    }
    snap
}

/// DescribeKey and GetKeyPolicy for customer keys. GetKeyPolicy takes a
/// key ID or key ARN only, so both calls go out at once when the reference
/// is one of those, and one after the other when it is an alias (DescribeKey
/// resolves it first). The AWS-managed key is recognised by name without a
/// call.
async fn check_key<K: KeysApi>(
    keys: &K,
    region: &str,
    role: KeyRole,
    key_ref: Option<String>,
    budget: &Budget,
) -> (KeyCheck, Vec<Gap>) {
    let mut gaps = Vec::new();
    let mut check = KeyCheck {
        region: region.to_string(),
        role,
        key_ref: key_ref.clone(),
        info: KeyInfo::Unknown,
    };
    let key_ref = match key_ref {
        Some(k) if !is_default_key_ref(Some(&k)) => k,
        _ => {
            check.info = KeyInfo::AwsManagedDefault;
            return (check, gaps);
        }
    };
    let get_policy = |key: String| async move {
        budget
            .run(
                "kms:GetKeyPolicy",
                region,
                keys.get_key_policy(region, &key),
            )
            .await
    };
    let describe = budget.run(
        "kms:DescribeKey",
        region,
        keys.describe_key(region, &key_ref),
    );
    let (described, early_policy) = if is_alias(&key_ref) {
        (describe.await, None)
    } else {
        let (d, p) = futures::join!(describe, get_policy(key_ref.clone()));
        (d, Some(p))
    };
    check.info = match described {
        Ok(None) => KeyInfo::NotFound,
        Err(gap) => {
            gaps.push(gap);
            KeyInfo::Unknown
        }
        Ok(Some(meta)) => {
            let policy = if meta.aws_managed {
                None
            } else {
                let fetched = match early_policy {
                    Some(p) => p,
                    None => get_policy(meta.arn.clone()).await,
                };
                match fetched {
                    Ok(p) => p,
                    Err(gap) => {
                        gaps.push(gap);
                        None
                    }
                }
            };
            KeyInfo::Described(KeyDetails {
                key_id: meta.key_id,
                arn: meta.arn,
                state: meta.state,
                aws_managed: meta.aws_managed,
                policy,
            })
        }
    };
    (check, gaps)
}

/// `alias/NAME` or an alias ARN (`arn:...:alias/NAME`).
fn is_alias(key_ref: &str) -> bool {
    key_ref.starts_with("alias/") || key_ref.contains(":alias/")
}

/// A promoted replica's former primary: a secret of the same name in
/// another Region whose ARN matches (replicas share the ARN suffix) or
/// that still lists the promoted Region as a replica.
async fn find_former_primary<S: SecretsApi>(
    secrets: &S,
    standalone: &SecretState,
    regions: &[String],
    budget: &Budget,
    gaps: &mut Vec<Gap>,
) -> Option<SecretState> {
    let candidates = regions.iter().filter(|r| **r != standalone.region);
    let found = join_all(candidates.map(|region| async move {
        (
            region,
            describe(secrets, budget, region, &standalone.name).await,
        )
    }))
    .await;
    let mut best = None;
    for (region, result) in found {
        match result {
            Ok(Some(s)) if s.is_primary_copy() => {
                let same_arn = secret_arn_in_region(&s.arn, &standalone.region).as_deref()
                    == Some(standalone.arn.as_str());
                let lists_it = s.replication.iter().any(|r| r.region == standalone.region);
                if same_arn || lists_it {
                    best = Some(s);
                }
            }
            Ok(_) => {}
            Err(gap) => {
                tracing::debug!(region = %region, "former primary search failed");
                gaps.push(gap);
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    //! Round trips: with every AWS call taking the same fixed time (tokio's
    //! paused clock), the time `inspect` takes is the number of sequential
    //! round trips it costs.
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use super::*;
    use crate::aws::KeyMeta;

    const RTT: Duration = Duration::from_millis(100);
    const PRIMARY: &str = "us-west-2";
    const REPLICA_REGIONS: [&str; 6] = [
        "us-east-1",
        "eu-west-1",
        "eu-central-1",
        "ap-southeast-2",
        "ap-northeast-1",
        "sa-east-1",
    ];

    fn key_arn(region: &str) -> String {
        format!("arn:aws:kms:{region}:123456789012:key/1234abcd-12ab-34cd-56ef-{region}")
    }

    /// One secret with `n` replicas; every call sleeps [`RTT`] and is counted.
    struct World {
        replicas: usize,
        /// Key references as ARNs, or as aliases.
        aliases: bool,
        calls: Mutex<Vec<String>>,
    }

    impl World {
        fn key_ref(&self, region: &str) -> String {
            if self.aliases {
                "alias/app".into()
            } else {
                key_arn(region)
            }
        }

        fn secret(&self, region: &str) -> SecretState {
            let replication = REPLICA_REGIONS[..self.replicas]
                .iter()
                .map(|r| ReplicaStatus {
                    region: r.to_string(),
                    kms_key_id: Some(self.key_ref(r)),
                    status: Some("InSync".into()),
                    status_message: None,
                })
                .collect();
            SecretState {
                arn: format!("arn:aws:secretsmanager:{region}:123456789012:secret:app-AbCdEf"),
                name: "app".into(),
                region: region.into(),
                primary_region: Some(PRIMARY.into()),
                kms_key_id: Some(self.key_ref(region)),
                rotation_enabled: false,
                tags: BTreeMap::new(),
                replication: if region == PRIMARY {
                    replication
                } else {
                    vec![]
                },
                last_changed: None,
                versions: Default::default(),
            }
        }

        async fn call(&self, name: String) {
            self.calls.lock().unwrap().push(name);
            tokio::time::sleep(RTT).await;
        }
    }

    impl SecretsApi for World {
        async fn list_secrets(
            &self,
            _: &str,
            _: Option<&str>,
            _: Option<String>,
        ) -> Result<(Vec<SecretState>, Option<String>), AwsError> {
            unreachable!("inspect never lists")
        }
        async fn describe_secret(
            &self,
            region: &str,
            _: &str,
        ) -> Result<Option<SecretState>, AwsError> {
            self.call(format!("DescribeSecret {region}")).await;
            Ok(Some(self.secret(region)))
        }
        async fn get_resource_policy(
            &self,
            region: &str,
            _: &str,
        ) -> Result<Option<String>, AwsError> {
            self.call(format!("GetResourcePolicy {region}")).await;
            Ok(Some(r#"{"Statement": []}"#.into()))
        }
    }

    impl KeysApi for World {
        async fn describe_key(&self, region: &str, _: &str) -> Result<Option<KeyMeta>, AwsError> {
            self.call(format!("DescribeKey {region}")).await;
            Ok(Some(KeyMeta {
                key_id: "1234abcd".into(),
                arn: key_arn(region),
                state: "Enabled".into(),
                aws_managed: false,
            }))
        }
        async fn get_key_policy(
            &self,
            region: &str,
            key: &str,
        ) -> Result<Option<String>, AwsError> {
            assert!(!is_alias(key), "GetKeyPolicy does not take an alias: {key}");
            self.call(format!("GetKeyPolicy {region}")).await;
            Ok(Some("{}".into()))
        }
    }

    async fn measure(replicas: usize, aliases: bool) -> (u32, Vec<String>, Snapshot) {
        let world = World {
            replicas,
            aliases,
            calls: Mutex::new(vec![]),
        };
        let target = Target {
            secret_id: "app".into(),
            region: PRIMARY.into(),
            account: None,
            promotion: false,
            search_regions: vec![],
            unreplicated_too: true,
            policy: None,
        };
        let start = tokio::time::Instant::now();
        let snap = inspect(&world, &world, &target, &Budget::unlimited()).await;
        let rounds = (start.elapsed().as_millis() / RTT.as_millis()) as u32;
        let calls = world.calls.lock().unwrap().clone();
        (rounds, calls, snap)
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_event_costs_two_round_trips_for_any_number_of_replicas() {
        for n in [0, 1, 3, 6] {
            let (rounds, calls, snap) = measure(n, false).await;
            // With the publish, 3 sequential round trips: the resource
            // policy read goes out with the replica and key checks.
            assert_eq!(rounds, 2, "{n} replicas");
            // One DescribeSecret per Region, one DescribeKey and one
            // GetKeyPolicy per key, one GetResourcePolicy on the primary
            // in its own Region: nothing more.
            assert_eq!(calls.len(), 1 + n + 2 * (n + 1) + 1, "{n} replicas");
            let policy_reads: Vec<&String> = calls
                .iter()
                .filter(|c| c.starts_with("GetResourcePolicy"))
                .collect();
            assert_eq!(policy_reads, [&format!("GetResourcePolicy {PRIMARY}")]);
            assert_eq!(snap.secret_policy.as_deref(), Some(r#"{"Statement": []}"#));
            assert!(snap.gaps.is_empty());
            assert_eq!(snap.keys.len(), n + 1);
            assert!(snap.keys.iter().all(|k| matches!(
                &k.info,
                KeyInfo::Described(d) if d.policy.as_deref() == Some("{}")
            )));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_named_by_alias_costs_one_more_round_trip() {
        let (rounds, calls, _) = measure(3, true).await;
        assert_eq!(rounds, 3);
        assert_eq!(calls.len(), 1 + 3 + 2 * 4 + 1);
    }

    #[test]
    fn aliases_are_told_from_key_ids_and_arns() {
        assert!(is_alias("alias/app"));
        assert!(is_alias("arn:aws:kms:us-east-1:123456789012:alias/app"));
        assert!(!is_alias("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(!is_alias(&key_arn("us-east-1")));
    }
}
