//! Remediation that is safe to leave on: [`execute`] carries out the
//! decisions of the pure plan (`replica_auditor_core::plan`) through the
//! adapter traits, within the invocation's time budget: lease, write
//! token, re-check, retry, verify.

use std::time::Duration;

use tracing::warn;

use super::inspect::Budget;
use crate::aws::{
    Acquired, Lease, LeaseStore, PaceStore, Released, RemediationJournal, ReplicationApi,
    SecretsApi,
};
use crate::model::{
    ACTION_RETRY, Action, ActionOutcome, Remediation, RemediationMode, Removal, ReplicationState,
    Snapshot,
};
pub use crate::plan::{
    Decision, LEASE_MARGIN, WRITE_WAIT_MAX, is_member_role_event, is_own_event, lease_key,
    lease_length, plan, settled_removals,
};
use crate::rate::{Refused, SharedPace};

/// What one invocation's remediation shares: who it is (the leases'
/// owner) and the replication write budget.
pub struct Invocation<'a> {
    /// The Lambda request id (the sweep's invocation has one too).
    pub request_id: &'a str,
    /// REMEDIATION_WRITES_PER_SECOND per account and Region, shared by
    /// every instance: every RemoveRegionsFromReplication and
    /// ReplicateSecretToRegions takes a token of the primary's.
    pub writes: &'a SharedPace,
}

/// The call that writes the remediation journal, as its gaps name it.
const JOURNAL_WRITE: &str = "dynamodb:UpdateItem";

/// How long releasing a lease may take; it runs in the publish reserve.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// One retry (Remove, then Replicate) or restore (Replicate) of one
/// Region, as the plan decided it.
struct Step {
    region: String,
    kms_key_id: Option<String>,
    force: bool,
    /// Replicate only: an earlier remediation removed the Region.
    restore: bool,
}

impl Step {
    /// What the step calls, as its actions say it.
    fn describe(&self) -> String {
        format!(
            "{}ReplicateSecretToRegions {}{}{}",
            if self.restore {
                "restore (it was removed by an earlier remediation): "
            } else {
                "RemoveRegionsFromReplication then "
            },
            self.region,
            self.kms_key_id
                .as_deref()
                .map(|k| format!(" with KmsKeyId {k}"))
                .unwrap_or_default(),
            if self.force {
                " and ForceOverwriteReplicaSecret"
            } else {
                ""
            }
        )
    }
}

/// What carrying out one secret's steps shares.
struct Carry<'a, C> {
    clients: &'a C,
    primary: &'a crate::model::SecretState,
    snapshot: &'a Snapshot,
    settings: &'a Remediation,
    budget: &'a Budget,
    invocation: &'a Invocation<'a>,
}

/// Carry the decisions out. Every decision becomes one action.
pub async fn execute<
    C: ReplicationApi + SecretsApi + LeaseStore + RemediationJournal + PaceStore,
>(
    clients: &C,
    snapshot: &Snapshot,
    decisions: Vec<Decision>,
    settings: &Remediation,
    budget: &Budget,
    invocation: &Invocation<'_>,
) -> Vec<Action> {
    let Some(primary) = snapshot.primary.found() else {
        return Vec::new();
    };
    let carry = Carry {
        clients,
        primary,
        snapshot,
        settings,
        budget,
        invocation,
    };
    let mut actions = Vec::new();
    for d in decisions {
        let step = match d {
            Decision::Skip { region, detail } => {
                actions.push(action(&region, ActionOutcome::Skipped, detail));
                continue;
            }
            Decision::Retry {
                region,
                kms_key_id,
                force_overwrite,
            } => Step {
                region,
                kms_key_id,
                force: force_overwrite,
                restore: false,
            },
            Decision::Restore {
                region,
                kms_key_id,
                force_overwrite,
            } => Step {
                region,
                kms_key_id,
                force: force_overwrite,
                restore: true,
            },
        };
        let how = step.describe();
        actions.push(match settings.mode {
            RemediationMode::DryRun => action(
                &step.region,
                ActionOutcome::DryRun,
                format!("would call {how}"),
            ),
            _ => carry.step(&step, &how).await,
        });
    }
    actions
}

impl<C: ReplicationApi + SecretsApi + LeaseStore + RemediationJournal + PaceStore> Carry<'_, C> {
    /// The state table's Region.
    fn table_region(&self) -> &str {
        self.settings
            .state_table
            .as_ref()
            .and_then(|t| t.region.as_deref())
            .unwrap_or(&self.primary.region)
    }

    /// One step under its lease, journaled: its action.
    async fn step(&self, step: &Step, how: &str) -> Action {
        let region = &step.region;
        let lease = match self.lease(region).await {
            Ok(lease) => lease,
            Err(skipped) => return skipped,
        };
        let journal = Journal {
            clients: self.clients,
            arn: &self.primary.arn,
            region,
            request_id: self.invocation.request_id,
        };
        let had_entry = self
            .snapshot
            .removed
            .iter()
            .any(|r| r.arn == self.primary.arn && &r.region == region);
        let mut outcome = match self.journal_removal(step).await {
            Ok(()) => {
                let (outcome, journaled) = self.attempts(step, how, &journal).await;
                // Settled: back InSync, or (a retry that never removed it)
                // the entry this retry wrote for nothing.
                if (journaled && outcome.outcome == ActionOutcome::InSync)
                    || (!journaled && !had_entry)
                {
                    journal.settled().await;
                }
                outcome
            }
            Err(skipped) => skipped,
        };
        if let Some(note) = release(self.clients, &lease).await {
            outcome.detail.push_str("; ");
            outcome.detail.push_str(&note);
        }
        outcome
    }

    /// One remediation per (secret, Region) at a time, across invocations:
    /// the lease, or the skipped action saying why not.
    async fn lease(&self, region: &str) -> Result<Lease, Action> {
        let now = epoch_seconds();
        let lease = Lease {
            key: lease_key(&self.primary.arn, region),
            owner: self.invocation.request_id.to_string(),
            since: crate::model::now_rfc3339(),
            expires_at: now + lease_length(self.settings, self.budget.time_left()).as_secs(),
        };
        let taken = self
            .budget
            .run(
                "dynamodb:PutItem",
                self.table_region(),
                self.clients.try_acquire(&lease, now),
            )
            .await;
        let detail = match taken {
            Ok(Acquired::Acquired) => return Ok(lease),
            Err(gap) => format!(
                "could not take the remediation lease ({}): not retried without it; the next audit retries",
                gap.reason
            ),
            Ok(Acquired::HeldBy(holder)) => format!(
                "another remediation of {region} is in progress since {} ({}); its lease ends by {}: not retried by this invocation",
                holder.since,
                holder.owner,
                rfc3339(holder.expires_at)
            ),
        };
        Err(action(region, ActionOutcome::Skipped, detail))
    }

    /// The journal first: a Region removed and then not replicated again
    /// (the Replicate lost, the invocation ended) is never forgotten. An
    /// entry already there (an earlier removal) is kept as it is. A restore
    /// writes nothing here. The skipped action when it could not be written.
    async fn journal_removal(&self, step: &Step) -> Result<(), Action> {
        if step.restore {
            return Ok(());
        }
        let entry = Removal {
            arn: self.primary.arn.clone(),
            region: step.region.clone(),
            removed_at: crate::model::now_rfc3339(),
            kms_key_id: step.kms_key_id.clone(),
            force_overwrite: step.force,
            attempts: Default::default(),
        };
        let journaled = self
            .budget
            .run(
                JOURNAL_WRITE,
                self.table_region(),
                self.clients.removing(&entry),
            )
            .await;
        journaled.map_err(|gap| {
            action(
                &step.region,
                ActionOutcome::Skipped,
                format!(
                    "the removal could not be recorded in the remediation journal first ({}): not removed",
                    gap.reason
                ),
            )
        })
    }

    /// Up to RETRY_MAX_ATTEMPTS attempts: the last one's action, its detail
    /// every attempt's outcome (a later attempt's never hides an earlier
    /// one's, in the report and in the journal), and whether the journal
    /// holds the Region (so it is settled when InSync).
    async fn attempts(&self, step: &Step, how: &str, journal: &Journal<'_, C>) -> (Action, bool) {
        let mut outcome = action(
            &step.region,
            ActionOutcome::Skipped,
            "RETRY_MAX_ATTEMPTS is 0".into(),
        );
        let mut said: Vec<String> = Vec::new();
        let mut journaled = step.restore;
        let (clients, primary, settings, budget, writes) = (
            self.clients,
            self.primary,
            self.settings,
            self.budget,
            self.invocation.writes,
        );
        for attempt in 1..=settings.max_attempts {
            let one = (step.region.as_str(), step.kms_key_id.as_deref(), step.force);
            let tried = match step.restore {
                false => retry_once(clients, primary, one, settings, budget, writes).await,
                true => restore_once(clients, primary, one, settings, budget, writes).await,
            };
            journaled |= tried.removed;
            outcome = tried.action;
            // A retry that was not started says why, not what it would have called.
            let text = match outcome.outcome {
                ActionOutcome::Skipped => format!("attempt {attempt}: {}", outcome.detail),
                _ => format!("attempt {attempt}: {how}: {}", outcome.detail),
            };
            if journaled {
                journal.attempted(attempt, &text).await;
            }
            said.push(text);
            if outcome.outcome != ActionOutcome::Failed {
                break;
            }
        }
        outcome.detail = said.join("; ");
        (outcome, journaled)
    }
}

/// Give the lease back. Nothing to say when that worked; otherwise what
/// happened, also logged: an unreleased lease is free once it expires.
async fn release<C: LeaseStore>(clients: &C, lease: &Lease) -> Option<String> {
    let note = match tokio::time::timeout(RELEASE_TIMEOUT, clients.release(lease)).await {
        Ok(Ok(Released::Released)) => return None,
        Ok(Ok(Released::NotHeld)) => format!(
            "the lease had expired (at {}) and was no longer this invocation's when it was released",
            rfc3339(lease.expires_at)
        ),
        Ok(Err(e)) => format!(
            "the lease could not be released ({e}): it is free for the next remediation at {}",
            rfc3339(lease.expires_at)
        ),
        Err(_) => format!(
            "the lease could not be released (dynamodb:DeleteItem: no answer within {}s): it is free for the next remediation at {}",
            RELEASE_TIMEOUT.as_secs(),
            rfc3339(lease.expires_at)
        ),
    };
    warn!(lease = %lease.key, owner = %lease.owner, error = %note, "remediation lease not released");
    Some(note)
}

fn epoch_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Epoch seconds as RFC 3339.
fn rfc3339(epoch: u64) -> String {
    time::OffsetDateTime::from_unix_timestamp(epoch as i64)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| epoch.to_string())
}

fn action(region: &str, outcome: ActionOutcome, detail: String) -> Action {
    Action {
        action: ACTION_RETRY.into(),
        region: region.into(),
        outcome,
        detail,
    }
}

/// Why a retry must not remove the Region now, from a fresh DescribeSecret
/// of the primary: `None` when it is still `Failed`.
async fn recheck<C: SecretsApi>(
    clients: &C,
    primary: &crate::model::SecretState,
    region: &str,
    budget: &Budget,
) -> Option<String> {
    let home = primary.region.as_str();
    let seen = budget
        .run(
            "secretsmanager:DescribeSecret",
            home,
            clients.describe_secret(home, &primary.arn),
        )
        .await;
    let why = match seen {
        Err(gap) => format!(
            "{region} could not be re-checked before RemoveRegionsFromReplication ({}): not removed blind",
            gap.reason
        ),
        Ok(None) => "the primary no longer exists: nothing removed".into(),
        Ok(Some(now)) => match now.replication.into_iter().find(|r| r.region == region) {
            None => format!("{region} is no longer listed: nothing removed"),
            Some(r) => match r.status {
                Some(ReplicationState::Failed) => return None,
                status => format!(
                    "{region} is now {} (re-checked just before RemoveRegionsFromReplication), not Failed: not removed",
                    status.as_ref().map_or("without a status", |s| s.as_str())
                ),
            },
        },
    };
    Some(why)
}

/// One attempt: its action, and whether it removed (or may have removed)
/// the Region, so the journal holds an entry for it.
struct Attempt {
    action: Action,
    removed: bool,
}

impl From<Action> for Attempt {
    fn from(action: Action) -> Attempt {
        Attempt {
            action,
            removed: false,
        }
    }
}

/// The journal entry of one (secret, Region) a remediation works on.
struct Journal<'a, C> {
    clients: &'a C,
    arn: &'a str,
    region: &'a str,
    request_id: &'a str,
}

impl<C: RemediationJournal> Journal<'_, C> {
    /// Record one attempt's outcome; a failure is logged (the report has it).
    async fn attempted(&self, attempt: u32, text: &str) {
        let key = format!(
            "{}#{}#{attempt}",
            crate::model::now_rfc3339(),
            self.request_id
        );
        let written = tokio::time::timeout(
            RELEASE_TIMEOUT,
            self.clients.attempted(self.arn, self.region, &key, text),
        )
        .await;
        if !matches!(written, Ok(Ok(()))) {
            warn!(secret = %self.arn, region = %self.region, "an attempt's outcome could not be added to the remediation journal (the report has it)");
        }
    }

    /// The Region is InSync again: the entry goes (or the next audit, seeing
    /// it InSync, clears it).
    async fn settled(&self) {
        let cleared =
            tokio::time::timeout(RELEASE_TIMEOUT, self.clients.settled(self.arn, self.region))
                .await;
        if !matches!(cleared, Ok(Ok(()))) {
            warn!(secret = %self.arn, region = %self.region, "the remediation journal's entry could not be cleared: the next audit clears it");
        }
    }
}

/// A token of the primary's account and Region from the shared write pace,
/// waiting at most `max_wait`.
async fn write_pace<C: PaceStore>(
    clients: &C,
    writes: &SharedPace,
    primary: &crate::model::SecretState,
    max_wait: Duration,
) -> Result<(), Refused> {
    let account = crate::arn::parse_secret_arn(&primary.arn)
        .map(|a| a.account)
        .unwrap_or_default();
    writes
        .acquire(clients, &account, &primary.region, Some(max_wait))
        .await
}

/// A write token within the budget's window (at most [`WRITE_WAIT_MAX`]),
/// or why the attempt is not started.
async fn write_token<C: PaceStore>(
    clients: &C,
    writes: &SharedPace,
    primary: &crate::model::SecretState,
    (budget, region): (&Budget, &str),
) -> Result<(), Action> {
    let max_wait = budget.call_window().unwrap_or_default().min(WRITE_WAIT_MAX);
    write_pace(clients, writes, primary, max_wait)
        .await
        .map_err(|refused| {
            let why = match refused {
                Refused::TooLong(too_long) => format!(
                    "had no token within {:.1}s (the next was {:.1}s away) before the invocation's reserve",
                    max_wait.as_secs_f64(),
                    too_long.wait.as_secs_f64()
                ),
                unreachable => format!("had no token: {unreachable}"),
            };
            action(
                region,
                ActionOutcome::Skipped,
                format!(
                    "not started: the replication write budget (REMEDIATION_WRITES_PER_SECOND={}) {why}; the next audit retries",
                    writes.per_second(),
                ),
            )
        })
}

async fn retry_once<C: ReplicationApi + SecretsApi + PaceStore>(
    clients: &C,
    primary: &crate::model::SecretState,
    (region, kms_key_id, force): (&str, Option<&str>, bool),
    settings: &Remediation,
    budget: &Budget,
    writes: &SharedPace,
) -> Attempt {
    let home = primary.region.as_str();
    let rate = writes.per_second();
    // The write budget: a token for the Remove, or the retry is not started.
    if let Err(skipped) = write_token(clients, writes, primary, (budget, region)).await {
        return skipped.into();
    }
    // Re-check just before the destructive call: another remediation (or
    // a person) may have fixed the Region since the snapshot.
    if let Some(why) = recheck(clients, primary, region, budget).await {
        return action(region, ActionOutcome::Skipped, why).into();
    }
    let attempt = |a: Action| Attempt {
        action: a,
        removed: true,
    };
    // AWS keeps a Failed Region in the list; it must be removed before the
    // Region can be replicated to again.
    let removed = budget
        .run(
            "secretsmanager:RemoveRegionsFromReplication",
            home,
            clients.remove_regions(home, &primary.arn, region),
        )
        .await;
    if let Err(gap) = removed {
        // It may have been applied all the same: the journal keeps it.
        return attempt(action(
            region,
            ActionOutcome::Failed,
            format!("could not remove the failed Region: {}", gap.reason),
        ));
    }
    // The Region is out of the list now: its Replicate waits for a token
    // as long as the invocation allows.
    let window = budget.call_window().unwrap_or_default();
    if let Err(refused) = write_pace(clients, writes, primary, window).await {
        let why = match refused {
            Refused::TooLong(too_long) => format!(
                "had no token for ReplicateSecretToRegions before the invocation's reserve (the next was {:.1}s away)",
                too_long.wait.as_secs_f64()
            ),
            unreachable => format!("had no token for ReplicateSecretToRegions: {unreachable}"),
        };
        return attempt(action(
            region,
            ActionOutcome::Failed,
            format!(
                "removed, but the replication write budget (REMEDIATION_WRITES_PER_SECOND={rate}) {why}: the next audit restores it (REPLICA_REMOVED_BY_REMEDIATION until then)"
            ),
        ));
    }
    attempt(
        replicate_and_verify(
            clients,
            primary,
            (region, kms_key_id, force),
            settings,
            budget,
        )
        .await,
    )
}

/// Replicate a Region the journal says the auditor removed, and verify.
async fn restore_once<C: ReplicationApi + SecretsApi + PaceStore>(
    clients: &C,
    primary: &crate::model::SecretState,
    step: (&str, Option<&str>, bool),
    settings: &Remediation,
    budget: &Budget,
    writes: &SharedPace,
) -> Attempt {
    if let Err(skipped) = write_token(clients, writes, primary, (budget, step.0)).await {
        return skipped.into();
    }
    replicate_and_verify(clients, primary, step, settings, budget)
        .await
        .into()
}

async fn replicate_and_verify<C: ReplicationApi + SecretsApi>(
    clients: &C,
    primary: &crate::model::SecretState,
    (region, kms_key_id, force): (&str, Option<&str>, bool),
    settings: &Remediation,
    budget: &Budget,
) -> Action {
    let home = primary.region.as_str();
    let replicated = budget
        .run(
            "secretsmanager:ReplicateSecretToRegions",
            home,
            clients.replicate_to(home, &primary.arn, region, kms_key_id, force),
        )
        .await;
    if let Err(gap) = replicated {
        return action(
            region,
            ActionOutcome::Failed,
            format!("ReplicateSecretToRegions failed: {}", gap.reason),
        );
    }
    verify(clients, primary, region, settings.verify, budget).await
}

/// Poll the primary with bounded backoff for the Region's outcome.
async fn verify<C: SecretsApi>(
    clients: &C,
    primary: &crate::model::SecretState,
    region: &str,
    verify: Duration,
    budget: &Budget,
) -> Action {
    let home = primary.region.as_str();
    let started = std::time::Instant::now();
    let mut wait = Duration::from_millis(250);
    loop {
        let status = budget
            .run(
                "secretsmanager:DescribeSecret",
                home,
                clients.describe_secret(home, &primary.arn),
            )
            .await
            .ok()
            .flatten()
            .and_then(|s| s.replication.into_iter().find(|r| r.region == region));
        let (st, msg) = match status {
            Some(r) => (r.status, r.status_message.unwrap_or_default()),
            None => (None, "the Region is not listed".into()),
        };
        let settled = match st {
            Some(ReplicationState::InSync) => Some(ActionOutcome::InSync),
            Some(ReplicationState::Failed) => Some(ActionOutcome::Failed),
            _ => None,
        };
        let st = st.as_ref().map_or("", |s| s.as_str());
        if let Some(settled) = settled {
            return action(
                region,
                settled,
                format!(
                    "verified after {:.1}s: {msg}",
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        if started.elapsed() + wait > verify || budget.call_window().is_none() {
            return action(
                region,
                ActionOutcome::InProgress,
                format!(
                    "still {st:?} after {:.1}s of verification: {msg}",
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(4));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::AwsError;
    use crate::model::{Lookup, SecretState};
    use replica_auditor_core::fixtures::{failed_replica as snapshot, on};

    struct Fake {
        status: Option<&'static str>,
        lease: Result<Acquired, AwsError>,
        release: Result<Released, AwsError>,
        calls: std::sync::Mutex<Vec<String>>,
    }

    impl Fake {
        fn new(status: Option<&'static str>) -> Fake {
            Fake {
                status,
                lease: Ok(Acquired::Acquired),
                release: Ok(Released::Released),
                calls: Default::default(),
            }
        }
        fn log(&self, call: &str) {
            self.calls.lock().unwrap().push(call.to_string());
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl SecretsApi for Fake {
        async fn list_secrets(
            &self,
            _: &str,
            _: Option<&str>,
            _: Option<String>,
        ) -> Result<(Vec<SecretState>, Option<String>), AwsError> {
            unreachable!()
        }
        async fn describe_secret(&self, _: &str, _: &str) -> Result<Option<SecretState>, AwsError> {
            self.log("DescribeSecret");
            let mut primary = snapshot("Internal failure", Lookup::NotFound)
                .primary
                .found()
                .unwrap()
                .clone();
            primary.replication[0].status = self.status.map(ReplicationState::from);
            if self.status.is_none() {
                primary.replication.clear();
            }
            Ok(Some(primary))
        }
        async fn get_resource_policy(&self, _: &str, _: &str) -> Result<Option<String>, AwsError> {
            unreachable!("remediation never reads a resource policy")
        }
    }

    impl ReplicationApi for Fake {
        async fn remove_regions(&self, _: &str, _: &str, _: &str) -> Result<(), AwsError> {
            self.log("RemoveRegionsFromReplication");
            Ok(())
        }
        async fn replicate_to(
            &self,
            _: &str,
            _: &str,
            _: &str,
            _: Option<&str>,
            _: bool,
        ) -> Result<(), AwsError> {
            self.log("ReplicateSecretToRegions");
            Ok(())
        }
    }

    impl LeaseStore for Fake {
        async fn try_acquire(&self, lease: &Lease, _: u64) -> Result<Acquired, AwsError> {
            self.log(&format!("PutItem {}", lease.key));
            self.lease.clone()
        }
        async fn release(&self, _: &Lease) -> Result<Released, AwsError> {
            self.log("DeleteItem");
            self.release.clone()
        }
    }

    /// No state table: the pace is the instance's own.
    impl PaceStore for Fake {}

    impl RemediationJournal for Fake {
        async fn removals(&self, _: &str) -> Result<Vec<Removal>, AwsError> {
            Ok(Vec::new())
        }
        async fn removing(&self, r: &Removal) -> Result<(), AwsError> {
            self.log(&format!("Journal removing {}", r.region));
            Ok(())
        }
        async fn attempted(&self, _: &str, _: &str, _: &str, o: &str) -> Result<(), AwsError> {
            self.log(&format!(
                "Journal attempt {}",
                o.split(':').next().unwrap_or("")
            ));
            Ok(())
        }
        async fn settled(&self, _: &str, region: &str) -> Result<(), AwsError> {
            self.log(&format!("Journal settled {region}"));
            Ok(())
        }
        async fn journaled(
            &self,
            _: &str,
            _: &str,
        ) -> Result<Option<std::collections::BTreeSet<String>>, AwsError> {
            Ok(None)
        }
    }

    async fn run_one(fake: &Fake) -> Action {
        let s = snapshot("Internal failure", Lookup::NotFound);
        let decisions = plan(&s, &[], &on(), false);
        let writes = SharedPace::new(crate::engine::REPLICATION_PACE, 5.0, 1);
        let invocation = Invocation {
            request_id: "req-1",
            writes: &writes,
        };
        let mut actions = execute(
            fake,
            &s,
            decisions,
            &Remediation {
                verify: Duration::ZERO,
                ..on()
            },
            &Budget::unlimited(),
            &invocation,
        )
        .await;
        assert_eq!(actions.len(), 1);
        actions.remove(0)
    }

    #[tokio::test]
    async fn a_held_lease_or_a_lease_error_means_no_write() {
        let mut held = Fake::new(Some("Failed"));
        held.lease = Ok(Acquired::HeldBy(Lease {
            key: "k".into(),
            owner: "req-0".into(),
            since: "2026-11-25T10:00:00Z".into(),
            expires_at: 1_795_000_000,
        }));
        let a = run_one(&held).await;
        assert_eq!(a.outcome, ActionOutcome::Skipped);
        assert!(
            a.detail.starts_with(
                "another remediation of us-east-1 is in progress since 2026-11-25T10:00:00Z (req-0)"
            ),
            "{}",
            a.detail
        );
        assert_eq!(
            held.calls(),
            vec![
                "PutItem lease#arn:aws:secretsmanager:us-west-2:111122223333:secret:app-AbCdEf#us-east-1"
            ]
        );

        let mut denied = Fake::new(Some("Failed"));
        denied.lease = Err(AwsError::AccessDenied {
            call: "dynamodb:PutItem",
            region: "us-west-2".into(),
            message: "AccessDeniedException: no".into(),
        });
        let a = run_one(&denied).await;
        assert_eq!(a.outcome, ActionOutcome::Skipped);
        assert!(
            a.detail.starts_with(
                "could not take the remediation lease (dynamodb:PutItem in us-west-2: access denied"
            ),
            "{}",
            a.detail
        );
        assert_eq!(denied.calls().len(), 1, "no write, no release");
    }

    #[tokio::test]
    async fn the_region_is_removed_only_while_it_is_still_failed() {
        for (status, seen) in [
            (Some("InSync"), "is now InSync"),
            (Some("InProgress"), "is now InProgress"),
            (None, "is no longer listed"),
        ] {
            let fake = Fake::new(status);
            let a = run_one(&fake).await;
            assert_eq!(a.outcome, ActionOutcome::Skipped, "{a:?}");
            assert!(a.detail.contains(seen), "{}", a.detail);
            assert!(
                a.detail.starts_with("attempt 1: us-east-1 ")
                    && !a.detail.contains("then ReplicateSecretToRegions"),
                "says why, not what it would have called: {}",
                a.detail
            );
            let calls = fake.calls();
            // The journal entry written first is cleared: nothing was removed.
            assert_eq!(
                calls[1..],
                [
                    "Journal removing us-east-1",
                    "DescribeSecret",
                    "Journal settled us-east-1",
                    "DeleteItem"
                ],
                "{calls:?}"
            );
        }
        // Still Failed: removed, replicated, verified (the fake still says Failed).
        let fake = Fake::new(Some("Failed"));
        let a = run_one(&fake).await;
        assert_eq!(a.outcome, ActionOutcome::Failed);
        assert_eq!(
            fake.calls()[1..],
            [
                // The journal before the removal, and the attempt after it.
                "Journal removing us-east-1",
                "DescribeSecret",
                "RemoveRegionsFromReplication",
                "ReplicateSecretToRegions",
                "DescribeSecret",
                "Journal attempt attempt 1",
                "DeleteItem"
            ]
        );
    }

    #[tokio::test]
    async fn a_retry_without_a_write_token_before_the_reserve_is_skipped_not_dropped() {
        let fake = Fake::new(Some("Failed"));
        let s = snapshot("Internal failure", Lookup::NotFound);
        // One write a second, its token just spent: the next is 1 s away,
        // and the invocation has 0.6 s left before its reserve.
        let writes = SharedPace::new(crate::engine::REPLICATION_PACE, 1.0, 1);
        let primary = s.primary.found().unwrap();
        write_pace(&fake, &writes, primary, Duration::ZERO)
            .await
            .unwrap();
        let budget = Budget::until(
            std::time::Instant::now() + Duration::from_millis(600),
            Duration::ZERO,
        );
        let actions = execute(
            &fake,
            &s,
            plan(&s, &[], &on(), false),
            &on(),
            &budget,
            &Invocation {
                request_id: "req-1",
                writes: &writes,
            },
        )
        .await;
        assert_eq!(actions.len(), 1);
        assert_eq!(actions[0].outcome, ActionOutcome::Skipped);
        assert!(
            actions[0].detail.contains(
                "not started: the replication write budget (REMEDIATION_WRITES_PER_SECOND=1) had no token within 0."
            ),
            "{}",
            actions[0].detail
        );
        // Nothing written to the secret; the journal entry written first is
        // cleared; the lease was taken and given back.
        assert_eq!(
            fake.calls()[1..],
            [
                "Journal removing us-east-1",
                "Journal settled us-east-1",
                "DeleteItem"
            ]
        );
    }

    #[tokio::test]
    async fn a_lease_that_cannot_be_released_is_said_to_expire() {
        let mut fake = Fake::new(Some("InSync"));
        fake.release = Err(AwsError::Throttled {
            call: "dynamodb:DeleteItem",
            region: "us-west-2".into(),
            message: "ThrottlingException: slow down".into(),
        });
        let a = run_one(&fake).await;
        assert!(
            a.detail.contains(
                "; the lease could not be released (dynamodb:DeleteItem in us-west-2: throttled"
            ) && a
                .detail
                .contains("it is free for the next remediation at 20"),
            "{}",
            a.detail
        );
        fake.release = Ok(Released::NotHeld);
        let a = run_one(&fake).await;
        assert!(a.detail.contains("the lease had expired"), "{}", a.detail);
    }
}
