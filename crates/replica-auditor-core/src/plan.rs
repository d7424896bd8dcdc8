//! The remediation plan, pure: the snapshot and its findings in, one
//! decision per Failed replica (and per Region the remediation journal
//! says the auditor removed and has not restored) out; the lease a retry takes, and the
//! loop guard. The engine carries the decisions out.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::arn::principal;
use crate::audit::classify_failure;
use crate::model::{
    Code, FailureCause, Finding, KeyInfo, KeyRole, Lookup, Remediation, RemediationMode, Removal,
    ReplicationState, Rules, SecretState, Snapshot,
};

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
    /// Replicate again a Region the auditor removed earlier (the
    /// remediation journal) that is no longer in the replication at all.
    Restore {
        region: String,
        kms_key_id: Option<String>,
        force_overwrite: bool,
    },
}

/// The journal entries of `snapshot` that are settled and may be cleared:
/// the Region is InSync again, or ALLOWED_REGIONS no longer allows it (a
/// person's decision); every entry of a secret that no longer exists.
pub fn settled_removals<'a>(snapshot: &'a Snapshot, rules: &Rules) -> Vec<&'a Removal> {
    match &snapshot.primary {
        Lookup::NotFound => snapshot.removed.iter().collect(),
        Lookup::Unknown => Vec::new(),
        Lookup::Found(p) => snapshot
            .removed
            .iter()
            .filter(|r| r.arn == p.arn)
            .filter(|r| {
                let in_sync = p
                    .replication
                    .iter()
                    .any(|x| x.region == r.region && x.status == Some(ReplicationState::InSync));
                let disallowed =
                    !rules.allowed_regions.is_empty() && !rules.allowed_regions.contains(&r.region);
                in_sync || disallowed
            })
            .collect(),
    }
}

/// Restores of Regions the journal says the auditor removed and that are
/// not in the replication any more (a Region listed again, in any state,
/// is left to the Failed rule or to replication itself). The engine leaves
/// settled entries ([`settled_removals`]) out of the snapshot first. The
/// loop guard does not hold a restore back: it replicates only a Region
/// that is absent, so it cannot repeat itself.
fn restores(p: &SecretState, snapshot: &Snapshot) -> Vec<Decision> {
    snapshot
        .removed
        .iter()
        .filter(|r| r.arn == p.arn)
        .filter(|r| !p.replication.iter().any(|x| x.region == r.region))
        .map(|r| Decision::Restore {
            region: r.region.clone(),
            kms_key_id: r.kms_key_id.clone(),
            force_overwrite: r.force_overwrite,
        })
        .collect()
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
        .filter(|r| r.status.status == Some(ReplicationState::Failed))
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
        .chain(restores(primary, snapshot))
        .collect()
}

/// How long a retry may wait for its first write token: longer, and the
/// write budget is spent on other retries; it is then `skipped`, and the
/// next audit (event or sweep) retries.
pub const WRITE_WAIT_MAX: Duration = Duration::from_secs(30);
/// What one AWS call of a retry may take, SDK retries included (three
/// attempts with backoff), for the lease length.
const CALL_ALLOWANCE: Duration = Duration::from_secs(10);
/// Kept on top of the work's length, and past the invocation's deadline:
/// for clock skew between invocations and the time a frozen environment
/// may take to stop.
pub const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// The state table key of the lease for one (secret, Region).
pub fn lease_key(secret_arn: &str, region: &str) -> String {
    format!("lease#{secret_arn}#{region}")
}

/// How long a lease is taken for: the attempts' work (a write token's
/// wait, the re-check, Remove, Replicate and the verification) and a
/// margin, but never past the invocation's deadline plus the margin (a
/// holder cannot work past its deadline).
pub fn lease_length(settings: &Remediation, time_left: Option<Duration>) -> Duration {
    let attempt = WRITE_WAIT_MAX + CALL_ALLOWANCE * 3 + settings.verify;
    let work = attempt * settings.max_attempts.max(1) + LEASE_MARGIN;
    match time_left {
        Some(left) => work.min(left + LEASE_MARGIN),
        None => work,
    }
}

/// Is the event's caller the auditor itself? Compares the caller's ARN and
/// its session issuer's ARN with the auditor's, reading an assumed-role
/// session and its role as the same principal ([`principal`]).
pub fn is_own_event(actor: &crate::event::Actor, auditor_arn: &str) -> bool {
    let me = principal(auditor_arn);
    [actor.arn.as_deref(), actor.issuer_arn.as_deref()]
        .into_iter()
        .flatten()
        .any(|arn| principal(arn) == me)
}

/// Is the event's caller a session of the member role (MEMBER_ROLE_NAME)
/// in `account`, the account that owns the secret? The auditor acts in a
/// member account only through that account's member role, so such an
/// event is its own. A same-named role in any other account is not: a
/// secret's resource policy may admit it, and its changes are remediated
/// like anybody's.
pub fn is_member_role_event(
    actor: &crate::event::Actor,
    member_role_name: &str,
    account: &str,
) -> bool {
    [actor.arn.as_deref(), actor.issuer_arn.as_deref()]
        .into_iter()
        .flatten()
        .any(|arn| crate::arn::is_account_role_or_its_session(arn, account, member_role_name))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Actor;
    use crate::fixtures::{CLASH, failed_replica as snapshot, on, other_secret};

    fn removal(region: &str) -> Removal {
        Removal {
            arn: "arn:aws:secretsmanager:us-west-2:111122223333:secret:app-AbCdEf".into(),
            region: region.into(),
            removed_at: "2026-12-04T10:00:00Z".into(),
            kms_key_id: Some("alias/app-west".into()),
            ..Removal::default()
        }
    }

    #[test]
    fn a_region_the_journal_holds_is_restored_until_it_is_back() {
        // us-east-1 is listed (Failed: the Failed rule retries it);
        // eu-west-1 was removed by an earlier remediation and is absent.
        let mut s = snapshot("Internal failure", Lookup::NotFound);
        s.removed = vec![removal("eu-west-1"), removal("us-east-1")];
        let decisions = plan(&s, &[], &on(), false);
        assert_eq!(decisions.len(), 2, "{decisions:?}");
        assert!(matches!(&decisions[0], Decision::Retry { region, .. } if region == "us-east-1"));
        assert_eq!(
            decisions[1],
            Decision::Restore {
                region: "eu-west-1".into(),
                kms_key_id: Some("alias/app-west".into()),
                force_overwrite: false,
            }
        );
        // Not while remediation is off.
        let off = Remediation {
            mode: RemediationMode::Off,
            ..on()
        };
        assert!(plan(&s, &[], &off, false).is_empty());
    }

    #[test]
    fn an_entry_settles_when_in_sync_disallowed_or_the_secret_is_gone() {
        let mut s = snapshot("Internal failure", Lookup::NotFound);
        s.removed = vec![removal("eu-west-1"), removal("us-east-1")];
        let rules = Rules::default();
        assert!(settled_removals(&s, &rules).is_empty(), "neither is back");
        if let Lookup::Found(p) = &mut s.primary {
            p.replication[0].status = Some(ReplicationState::InSync);
        }
        let settled: Vec<&str> = settled_removals(&s, &rules)
            .iter()
            .map(|r| r.region.as_str())
            .collect();
        assert_eq!(settled, ["us-east-1"]);
        let only_east = Rules {
            allowed_regions: ["us-east-1".to_string()].into(),
            ..Rules::default()
        };
        assert_eq!(
            settled_removals(&s, &only_east).len(),
            2,
            "eu-west-1 no longer allowed"
        );
        s.primary = Lookup::NotFound;
        assert_eq!(settled_removals(&s, &rules).len(), 2, "the secret is gone");
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
            gap_kind: None,
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
    fn a_lease_covers_the_work_but_ends_by_the_deadline_plus_a_margin() {
        // Default: 30 s token wait + 3 calls of 10 s + 20 s verification, + 30 s.
        assert_eq!(lease_length(&on(), None), Duration::from_secs(110));
        let two = Remediation {
            max_attempts: 2,
            ..on()
        };
        assert_eq!(lease_length(&two, None), Duration::from_secs(190));
        assert_eq!(
            lease_length(&on(), Some(Duration::from_secs(12))),
            Duration::from_secs(42)
        );
        assert_eq!(
            lease_key(
                "arn:aws:secretsmanager:us-west-2:1:secret:a-AbCdEf",
                "us-east-1"
            ),
            "lease#arn:aws:secretsmanager:us-west-2:1:secret:a-AbCdEf#us-east-1"
        );
    }

    /// The ports, faked: what DescribeSecret shows for us-east-1, what the
    /// lease store answers, and every call made.
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

    #[test]
    fn only_the_member_role_of_the_secrets_own_account_is_the_auditors_own() {
        let member = |arn: &str, issuer: Option<&str>| Actor {
            display: None,
            arn: Some(arn.into()),
            issuer_arn: issuer.map(Into::into),
        };
        for (actor, own) in [
            (
                member(
                    "arn:aws:sts::555566667777:assumed-role/ReplicaAuditorMember/replica-auditor",
                    Some("arn:aws:iam::555566667777:role/ReplicaAuditorMember"),
                ),
                true,
            ),
            (
                member(
                    "arn:aws:sts::555566667777:assumed-role/ReplicaAuditorMember/any",
                    None,
                ),
                true,
            ),
            (
                member(
                    "arn:aws:sts::555566667777:assumed-role/x/s",
                    Some("arn:aws:iam::555566667777:role/team/ReplicaAuditorMember"),
                ),
                true,
            ),
            // Another role whose name only starts or ends the same.
            (
                member(
                    "arn:aws:sts::555566667777:assumed-role/ReplicaAuditorMemberX/s",
                    Some("arn:aws:iam::555566667777:role/ReplicaAuditorMemberX"),
                ),
                false,
            ),
            (
                member("arn:aws:iam::555566667777:user/ReplicaAuditorMember", None),
                false,
            ),
            (member("not an arn", None), false),
            // The same name in another account (a secret's resource policy
            // may admit it): not the auditor's.
            (
                member(
                    "arn:aws:sts::999988887777:assumed-role/ReplicaAuditorMember/replica-auditor",
                    Some("arn:aws:iam::999988887777:role/ReplicaAuditorMember"),
                ),
                false,
            ),
            // Issued in the secret's account, but the session names another.
            (
                member(
                    "arn:aws:sts::999988887777:assumed-role/ReplicaAuditorMember/s",
                    None,
                ),
                false,
            ),
        ] {
            assert_eq!(
                is_member_role_event(&actor, "ReplicaAuditorMember", "555566667777"),
                own,
                "{actor:?}"
            );
        }
        assert!(!is_member_role_event(
            &Actor::default(),
            "ReplicaAuditorMember",
            "555566667777"
        ));
    }
}
