//! Remediation that is safe to leave on: retry failed replication where a
//! retry can fix it, verify the outcome, never loop.
//!
//! [`plan`] is pure: the snapshot and its findings in, one decision per
//! Failed replica out. [`execute`] carries the retries out through the
//! adapter traits, within the invocation's time budget.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::audit::classify_failure;
use crate::aws::{ReplicationApi, SecretsApi};
use crate::config::{Remediation, RemediationMode};
use crate::inspect::Budget;
use crate::model::{Code, FailureCause, Finding, KeyInfo, KeyRole, Lookup, Snapshot};

pub const ACTION_RETRY: &str = "retry_replication";

/// One entry of a report's `actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub action: String,
    pub region: String,
    /// `InSync`, `InProgress`, `Failed`, `skipped` or `dry_run`.
    pub outcome: String,
    pub detail: String,
}

/// What to do about one Failed replica.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    Retry {
        region: String,
        kms_key_id: Option<String>,
        force_overwrite: bool,
    },
    Skip {
        region: String,
        detail: String,
    },
}

/// Findings that mean a key in that Region cannot be used yet.
const KEY_BLOCKERS: [Code; 3] = [
    Code::KeyNotFound,
    Code::KeyDisabled,
    Code::KeyPendingDeletion,
];

/// Decide, for every Failed replica of the snapshot's primary, whether to
/// retry it. `own_event`: the trigger was caused by the auditor itself.
pub fn plan(
    snapshot: &Snapshot,
    findings: &[Finding],
    settings: &Remediation,
    own_event: bool,
) -> Vec<Decision> {
    let Some(primary) = snapshot.primary.found() else {
        return Vec::new();
    };
    if settings.mode == RemediationMode::Off || snapshot.promotion.is_some() {
        return Vec::new();
    }
    let blocked_regions: BTreeSet<&str> = findings
        .iter()
        .filter(|f| KEY_BLOCKERS.contains(&f.code))
        .filter_map(|f| f.region.as_deref())
        .collect();
    let key_unknown = |region: &str, role: KeyRole| {
        snapshot
            .keys
            .iter()
            .any(|k| k.region == region && k.role == role && k.info == KeyInfo::Unknown)
    };
    let primary_key_blocked = blocked_regions.contains(primary.region.as_str());
    let name = &primary.name;
    snapshot
        .replicas
        .iter()
        .filter(|r| r.status.status.as_deref() == Some("Failed"))
        .map(|r| {
            let region = r.status.region.clone();
            let skip = |detail: String| Decision::Skip { region: region.clone(), detail };
            let retry = |force_overwrite: bool| Decision::Retry {
                region: region.clone(),
                kms_key_id: r.status.kms_key_id.clone(),
                force_overwrite,
            };
            if own_event {
                return skip("the triggering event was made by the auditor itself: audited and reported, not remediated again (loop guard)".into());
            }
            let cause = classify_failure(r.status.status_message.as_deref());
            let key = r.status.kms_key_id.as_deref().unwrap_or("alias/aws/secretsmanager");
            if primary_key_blocked {
                return skip(format!(
                    "the primary's KMS key in {} is not usable: not retried until it is (see the key finding)",
                    primary.region
                ));
            }
            if blocked_regions.contains(region.as_str()) {
                return skip(format!("KMS key {key} in {region} is not usable: not retried until it is (see the key finding)"));
            }
            if key_unknown(&region, KeyRole::Replica) || key_unknown(&primary.region, KeyRole::Primary) {
                return skip("the KMS keys could not be checked (AUDIT_INCOMPLETE): not retried blind".into());
            }
            match cause {
                FailureCause::KmsKey => skip(format!(
                    "replication failed on KMS key {key} in {region} (policy or grant): fix the key policy so Secrets Manager can use it, then retry"
                )),
                FailureCause::RegionDisabled => skip(format!("{region} is not enabled for the account: enable it, then retry")),
                FailureCause::NameConflict => match &r.presence {
                    // The conflicting secret is gone: a plain retry will do.
                    Lookup::NotFound => retry(false),
                    // What stands there now is this primary's own replica.
                    Lookup::Found(there) if there.home_region() == primary.region => retry(false),
                    Lookup::Found(_) if settings.allow_force_overwrite => retry(true),
                    Lookup::Found(other) => skip(format!(
                        "a different secret named {name} ({}) exists in {region}. An operator must decide: delete or rename that secret (the next audit then retries), or set ALLOW_FORCE_OVERWRITE=true to let the auditor overwrite it, which destroys it",
                        other.arn
                    )),
                    Lookup::Unknown => skip(format!(
                        "could not check whether the secret that clashed in {region} is still there: not retried blind"
                    )),
                },
                FailureCause::Other => retry(false),
            }
        })
        .collect()
}

/// Carry the decisions out. Every decision becomes one action.
pub async fn execute<C: ReplicationApi + SecretsApi>(
    clients: &C,
    snapshot: &Snapshot,
    decisions: Vec<Decision>,
    settings: &Remediation,
    budget: &Budget,
) -> Vec<Action> {
    let Some(primary) = snapshot.primary.found() else {
        return Vec::new();
    };
    let mut actions = Vec::new();
    for d in decisions {
        let (region, kms_key_id, force) = match d {
            Decision::Skip { region, detail } => {
                actions.push(action(&region, "skipped", detail));
                continue;
            }
            Decision::Retry {
                region,
                kms_key_id,
                force_overwrite,
            } => (region, kms_key_id, force_overwrite),
        };
        let how = format!(
            "RemoveRegionsFromReplication then ReplicateSecretToRegions {region}{}{}",
            kms_key_id
                .as_deref()
                .map(|k| format!(" with KmsKeyId {k}"))
                .unwrap_or_default(),
            if force {
                " and ForceOverwriteReplicaSecret"
            } else {
                ""
            }
        );
        if settings.mode == RemediationMode::DryRun {
            actions.push(action(&region, "dry_run", format!("would call {how}")));
            continue;
        }
        let mut outcome = action(&region, "skipped", "RETRY_MAX_ATTEMPTS is 0".into());
        for attempt in 1..=settings.max_attempts {
            outcome = retry_once(
                clients,
                primary,
                &region,
                kms_key_id.as_deref(),
                force,
                settings.verify,
                budget,
            )
            .await;
            outcome.detail = format!("attempt {attempt}: {how}: {}", outcome.detail);
            if outcome.outcome != "Failed" {
                break;
            }
        }
        actions.push(outcome);
    }
    actions
}

fn action(region: &str, outcome: &str, detail: String) -> Action {
    Action {
        action: ACTION_RETRY.into(),
        region: region.into(),
        outcome: outcome.into(),
        detail,
    }
}

async fn retry_once<C: ReplicationApi + SecretsApi>(
    clients: &C,
    primary: &crate::model::SecretState,
    region: &str,
    kms_key_id: Option<&str>,
    force: bool,
    verify: Duration,
    budget: &Budget,
) -> Action {
    let home = primary.region.as_str();
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
        return action(
            region,
            "Failed",
            format!("could not remove the failed Region: {}", gap.reason),
        );
    }
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
            "Failed",
            format!("ReplicateSecretToRegions failed: {}", gap.reason),
        );
    }
    // Verify: poll the primary with bounded backoff.
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
            Some(r) => (
                r.status.unwrap_or_default(),
                r.status_message.unwrap_or_default(),
            ),
            None => (String::new(), "the Region is not listed".into()),
        };
        if st == "InSync" || st == "Failed" {
            return action(
                region,
                &st,
                format!(
                    "verified after {:.1}s: {msg}",
                    started.elapsed().as_secs_f64()
                ),
            );
        }
        if started.elapsed() + wait > verify || budget.call_window().is_none() {
            return action(
                region,
                "InProgress",
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

/// Is the event's caller the auditor itself? Compares the caller's ARN and
/// its session issuer's ARN with the auditor's, reading an assumed-role
/// session (`arn:aws:sts::A:assumed-role/R/S`) and its role
/// (`arn:aws:iam::A:role/path/R`) as the same principal.
pub fn is_own_event(actor: &crate::event::Actor, auditor_arn: &str) -> bool {
    let me = principal_key(auditor_arn);
    [actor.arn.as_deref(), actor.issuer_arn.as_deref()]
        .into_iter()
        .flatten()
        .any(|arn| principal_key(arn) == me)
}

/// (account, kind, name) for roles, sessions and users; the ARN otherwise.
fn principal_key(arn: &str) -> (String, String, String) {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    if parts.len() == 6 && parts[0] == "arn" {
        let (account, resource) = (parts[4], parts[5]);
        let mut segs = resource.split('/');
        match (parts[2], segs.next()) {
            ("sts", Some("assumed-role")) => {
                if let Some(role) = segs.next() {
                    return (account.into(), "role".into(), role.into());
                }
            }
            ("iam", Some("role")) | ("iam", Some("user")) => {
                let kind = if resource.starts_with("role") {
                    "role"
                } else {
                    "user"
                };
                if let Some(name) = resource.rsplit('/').next() {
                    return (account.into(), kind.into(), name.into());
                }
            }
            _ => {}
        }
    }
    (String::new(), "arn".into(), arn.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;
    use crate::model::{KeyCheck, ReplicaCheck, ReplicaStatus, SecretState};

    fn snapshot(message: &str, presence: Lookup<SecretState>) -> Snapshot {
        let failed = ReplicaStatus {
            region: "us-east-1".into(),
            kms_key_id: Some("alias/app-east".into()),
            status: Some("Failed".into()),
            status_message: Some(message.into()),
        };
        let primary = SecretState {
            arn: "arn:aws:secretsmanager:us-west-2:111122223333:secret:app-AbCdEf".into(),
            name: "app".into(),
            region: "us-west-2".into(),
            replication: vec![failed.clone()],
            ..Default::default()
        };
        let mut s = Snapshot::empty("app");
        s.primary = Lookup::Found(primary);
        s.replicas = vec![ReplicaCheck {
            status: failed,
            presence,
        }];
        s.keys = vec![KeyCheck {
            region: "us-east-1".into(),
            role: KeyRole::Replica,
            key_ref: None,
            info: KeyInfo::AwsManagedDefault,
        }];
        s
    }

    fn other_secret() -> SecretState {
        SecretState {
            arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:app-ZzZzZz".into(),
            region: "us-east-1".into(),
            ..Default::default()
        }
    }

    const CLASH: &str = "Replication failed: Secret name app already exists in region us-east-1.";

    fn on() -> Remediation {
        Remediation::default()
    }

    #[test]
    fn clash_is_retried_only_when_cleared_or_allowed() {
        let still_there = snapshot(CLASH, Lookup::Found(other_secret()));
        assert!(
            matches!(&plan(&still_there, &[], &on(), false)[..], [Decision::Skip { detail, .. }] if detail.contains("An operator must decide"))
        );
        let allowed = Remediation {
            allow_force_overwrite: true,
            ..on()
        };
        assert!(matches!(
            &plan(&still_there, &[], &allowed, false)[..],
            [Decision::Retry {
                force_overwrite: true,
                ..
            }]
        ));
        let cleared = snapshot(CLASH, Lookup::NotFound);
        assert!(matches!(
            &plan(&cleared, &[], &on(), false)[..],
            [Decision::Retry {
                force_overwrite: false,
                ..
            }]
        ));
        let unknown = snapshot(CLASH, Lookup::Unknown);
        assert!(matches!(
            &plan(&unknown, &[], &allowed, false)[..],
            [Decision::Skip { .. }]
        ));
    }

    #[test]
    fn key_region_and_own_events_are_not_retried() {
        let s = snapshot("Internal failure", Lookup::NotFound);
        assert!(matches!(
            &plan(&s, &[], &on(), false)[..],
            [Decision::Retry { .. }]
        ));
        assert!(
            matches!(&plan(&s, &[], &on(), true)[..], [Decision::Skip { detail, .. }] if detail.contains("loop guard"))
        );
        let kms = snapshot("Access to KMS is not allowed", Lookup::NotFound);
        assert!(matches!(
            &plan(&kms, &[], &on(), false)[..],
            [Decision::Skip { .. }]
        ));
        let region = snapshot(
            "The region us-east-1 is not enabled for this account",
            Lookup::NotFound,
        );
        assert!(
            matches!(&plan(&region, &[], &on(), false)[..], [Decision::Skip { detail, .. }] if detail.contains("enable it"))
        );
        let disabled = Finding {
            id: "x".into(),
            code: Code::KeyDisabled,
            severity: Code::KeyDisabled.severity(),
            region: Some("us-east-1".into()),
            message: String::new(),
            remediation: String::new(),
            cause: None,
        };
        assert!(
            matches!(&plan(&s, &[disabled], &on(), false)[..], [Decision::Skip { detail, .. }] if detail.contains("not usable"))
        );
        assert!(
            plan(
                &s,
                &[],
                &Remediation {
                    mode: RemediationMode::Off,
                    ..on()
                },
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn own_events_are_recognised_by_role_session_or_user() {
        let role = "arn:aws:iam::111122223333:role/service-role/auditor-role";
        let session = Actor {
            display: None,
            arn: Some("arn:aws:sts::111122223333:assumed-role/auditor-role/replica-auditor".into()),
            issuer_arn: None,
        };
        assert!(is_own_event(&session, role));
        assert!(is_own_event(
            &session,
            "arn:aws:sts::111122223333:assumed-role/auditor-role/other-session"
        ));
        let issuer = Actor {
            display: None,
            arn: None,
            issuer_arn: Some(role.into()),
        };
        assert!(is_own_event(&issuer, role));
        let other_account = Actor {
            arn: Some("arn:aws:sts::999988887777:assumed-role/auditor-role/s".into()),
            ..Actor::default()
        };
        assert!(!is_own_event(&other_account, role));
        let other_role = Actor {
            arn: Some("arn:aws:sts::111122223333:assumed-role/deployer/s".into()),
            ..Actor::default()
        };
        assert!(!is_own_event(&other_role, role));
        assert!(!is_own_event(&Actor::default(), role));
        let user = Actor {
            arn: Some("arn:aws:iam::111122223333:user/alice".into()),
            ..Actor::default()
        };
        assert!(!is_own_event(&user, role));
        assert!(is_own_event(&user, "arn:aws:iam::111122223333:user/alice"));
    }
}
