//! The pure audit on real-shaped snapshots: every finding code, and a
//! healthy secret that yields nothing.

use std::collections::BTreeMap;

use replica_auditor::audit::{audit, classify_failure, finding_id};
use replica_auditor::config::Rules;
use replica_auditor::event::{Actor, HandledEvent, SecretRef, Trigger};
use replica_auditor::model::*;
use serde_json::json;

const ACCOUNT: &str = "111122223333";
const PRIMARY_ARN: &str =
    "arn:aws:secretsmanager:us-west-2:111122223333:secret:production/DBWest-AbCdEf";
const CMK_WEST: &str =
    "arn:aws:kms:us-west-2:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";
const CMK_EAST: &str =
    "arn:aws:kms:us-east-1:111122223333:key/5678abcd-12ab-34cd-56ef-1234567890ab";

fn own_policy() -> String {
    json!({"Version": "2012-10-17", "Statement": [{"Sid": "Enable IAM User Permissions", "Effect": "Allow",
        "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")}, "Action": "kms:*", "Resource": "*"}]})
    .to_string()
}

fn primary(replication: Vec<ReplicaStatus>) -> SecretState {
    SecretState {
        arn: PRIMARY_ARN.into(),
        name: "production/DBWest".into(),
        region: "us-west-2".into(),
        primary_region: Some("us-west-2".into()),
        kms_key_id: Some(CMK_WEST.into()),
        rotation_enabled: false,
        tags: BTreeMap::new(),
        replication,
        last_changed: None,
        versions: Default::default(),
    }
}

fn status(region: &str, key: Option<&str>, st: &str, msg: &str) -> ReplicaStatus {
    ReplicaStatus {
        region: region.into(),
        kms_key_id: key.map(str::to_string),
        status: Some(st.into()),
        status_message: Some(msg.into()),
    }
}

fn replica_copy(region: &str) -> SecretState {
    SecretState {
        arn: PRIMARY_ARN.replace("us-west-2", region),
        region: region.into(),
        primary_region: Some("us-west-2".into()),
        replication: vec![],
        ..primary(vec![])
    }
}

fn cmk(region: &str, arn: &str, state: &str, policy: Option<String>) -> KeyCheck {
    KeyCheck {
        region: region.into(),
        role: if region == "us-west-2" {
            KeyRole::Primary
        } else {
            KeyRole::Replica
        },
        key_ref: Some(arn.into()),
        info: KeyInfo::Described(KeyDetails {
            key_id: arn.rsplit('/').next().unwrap().into(),
            arn: arn.into(),
            state: state.into(),
            aws_managed: false,
            policy,
        }),
    }
}

fn default_key(region: &str, role: KeyRole) -> KeyCheck {
    KeyCheck {
        region: region.into(),
        role,
        key_ref: None,
        info: KeyInfo::AwsManagedDefault,
    }
}

/// A healthy two-Region secret: customer keys on both sides, InSync.
fn healthy() -> Snapshot {
    let p = primary(vec![status(
        "us-east-1",
        Some(CMK_EAST),
        "InSync",
        "Replication succeeded",
    )]);
    Snapshot {
        secret_ref: PRIMARY_ARN.into(),
        account: Some(ACCOUNT.into()),
        primary: Lookup::Found(p),
        replicas: vec![ReplicaCheck {
            status: status(
                "us-east-1",
                Some(CMK_EAST),
                "InSync",
                "Replication succeeded",
            ),
            presence: Lookup::Found(replica_copy("us-east-1")),
        }],
        keys: vec![
            cmk("us-west-2", CMK_WEST, "Enabled", Some(own_policy())),
            cmk("us-east-1", CMK_EAST, "Enabled", Some(own_policy())),
        ],
        secret_policy: None,
        secret_policy_read: true,
        promotion: None,
        gaps: vec![],
        removed: vec![],
        cross_account: None,
        observed_at: None,
    }
}

fn trigger(event: HandledEvent) -> Trigger {
    Trigger {
        event,
        event_id: Some("e-1".into()),
        event_time: Some("2026-11-20T10:00:00Z".into()),
        region: "us-west-2".into(),
        account: ACCOUNT.into(),
        actor: Actor {
            display: Some("arn:aws:iam::111122223333:user/alice".into()),
            ..Default::default()
        },
        error_code: None,
        error_message: None,
        secret: SecretRef::parse(PRIMARY_ARN),
        removed_regions: vec![],
        cross_account: None,
    }
}

fn codes(findings: &[Finding]) -> Vec<(Code, Option<String>)> {
    let mut c: Vec<_> = findings
        .iter()
        .map(|f| (f.code, f.region.clone()))
        .collect();
    c.sort();
    c
}

fn only(findings: &[Finding], code: Code) -> &Finding {
    let matching: Vec<&Finding> = findings.iter().filter(|f| f.code == code).collect();
    assert_eq!(matching.len(), 1, "expected one {code}, got {findings:#?}");
    matching[0]
}

fn east() -> Option<String> {
    Some("us-east-1".into())
}

#[test]
fn healthy_secret_yields_nothing() {
    let t = trigger(HandledEvent::CreateSecret);
    assert_eq!(audit(&healthy(), Some(&t), &Rules::default()), vec![]);
    // Still nothing with every rule set to what the secret satisfies.
    let rules = Rules {
        allowed_regions: ["us-west-2", "us-east-1"].map(String::from).into(),
        required_regions: ["us-east-1".to_string()].into(),
        require_customer_managed_key: true,
        trusted_account_ids: vec![],
        trusted_org_ids: vec![],
        replica_lag_seconds: 900,
    };
    assert_eq!(audit(&healthy(), Some(&t), &rules), vec![]);
}

#[test]
fn replica_failed_is_classified() {
    let cases = [
        (
            "Replication failed: Secret name production/DBWest already exists in region us-east-1.",
            FailureCause::NameConflict,
        ),
        (
            "Access to KMS is not allowed. Check the key policy for key 5678abcd.",
            FailureCause::KmsKey,
        ),
        (
            "Replication failed: The region us-east-1 is not enabled for this account.",
            FailureCause::RegionDisabled,
        ),
        ("Internal failure", FailureCause::Other),
    ];
    for (msg, cause) in cases {
        assert_eq!(classify_failure(Some(msg)), cause, "{msg}");
        let mut s = healthy();
        s.replicas[0].status = status("us-east-1", Some(CMK_EAST), "Failed", msg);
        s.replicas[0].presence = Lookup::NotFound;
        let f = audit(&s, None, &Rules::default());
        let failed = only(&f, Code::ReplicaFailed);
        assert_eq!(failed.severity, Severity::High);
        assert_eq!(failed.cause, Some(cause));
        assert!(failed.message.contains(msg), "{}", failed.message);
        assert_eq!(failed.region, east());
        // A failed replica is not also "missing".
        assert_eq!(codes(&f), vec![(Code::ReplicaFailed, east())]);
    }
}

#[test]
fn in_progress_and_unknown_status() {
    let mut s = healthy();
    s.replicas[0].status.status = Some("InProgress".into());
    assert_eq!(
        codes(&audit(&s, None, &Rules::default())),
        vec![(Code::ReplicaInProgress, east())]
    );
    s.replicas[0].status.status = Some("Paused".into());
    let f = audit(&s, None, &Rules::default());
    assert_eq!(codes(&f), vec![(Code::ReplicaStatusUnknown, east())]);
    assert!(
        only(&f, Code::ReplicaStatusUnknown)
            .message
            .contains("Paused")
    );
    s.replicas[0].status.status = None;
    assert_eq!(
        codes(&audit(&s, None, &Rules::default())),
        vec![(Code::ReplicaStatusUnknown, east())]
    );
}

#[test]
fn replica_missing_or_foreign() {
    let mut s = healthy();
    s.replicas[0].presence = Lookup::NotFound;
    assert_eq!(
        codes(&audit(&s, None, &Rules::default())),
        vec![(Code::ReplicaMissing, east())]
    );
    // A standalone secret of the same name is not a replica of this primary.
    let mut foreign = replica_copy("us-east-1");
    foreign.primary_region = Some("us-east-1".into());
    foreign.arn =
        "arn:aws:secretsmanager:us-east-1:111122223333:secret:production/DBWest-ZzZzZz".into();
    s.replicas[0].presence = Lookup::Found(foreign);
    let f = audit(&s, None, &Rules::default());
    assert!(only(&f, Code::ReplicaMissing).message.contains("ZzZzZz"));
    // Unknown presence is a gap, not a finding of its own.
    s.replicas[0].presence = Lookup::Unknown;
    assert_eq!(audit(&s, None, &Rules::default()), vec![]);
}

#[test]
fn weaker_replica_key_and_aws_managed_rule() {
    let mut s = healthy();
    s.replicas[0].status.kms_key_id = Some("alias/aws/secretsmanager".into());
    s.keys[1] = default_key("us-east-1", KeyRole::Replica);
    assert_eq!(
        codes(&audit(&s, None, &Rules::default())),
        vec![(Code::ReplicaKeyWeakerThanPrimary, east())]
    );
    let strict = Rules {
        require_customer_managed_key: true,
        ..Rules::default()
    };
    assert_eq!(
        codes(&audit(&s, None, &strict)),
        vec![
            (Code::ReplicaKeyWeakerThanPrimary, east()),
            (Code::KeyAwsManaged, east())
        ]
    );
    // Both on the default key: not weaker, but both break the rule.
    s.keys[0] = default_key("us-west-2", KeyRole::Primary);
    assert_eq!(audit(&s, None, &Rules::default()), vec![]);
    assert_eq!(
        codes(&audit(&s, None, &strict)),
        vec![
            (Code::KeyAwsManaged, east()),
            (Code::KeyAwsManaged, Some("us-west-2".into()))
        ]
    );
}

#[test]
fn key_states() {
    let mut s = healthy();
    s.keys[1] = KeyCheck {
        info: KeyInfo::NotFound,
        ..s.keys[1].clone()
    };
    assert_eq!(
        codes(&audit(&s, None, &Rules::default())),
        vec![(Code::KeyNotFound, east())]
    );
    s.keys[1] = cmk("us-east-1", CMK_EAST, "Disabled", Some(own_policy()));
    let f = audit(&s, None, &Rules::default());
    assert_eq!(codes(&f), vec![(Code::KeyDisabled, east())]);
    assert!(
        only(&f, Code::KeyDisabled)
            .remediation
            .contains("enable-key")
    );
    for state in ["PendingDeletion", "PendingReplicaDeletion"] {
        s.keys[1] = cmk("us-east-1", CMK_EAST, state, Some(own_policy()));
        let f = audit(&s, None, &Rules::default());
        assert_eq!(codes(&f), vec![(Code::KeyPendingDeletion, east())]);
        assert_eq!(f[0].severity, Severity::Critical);
    }
}

#[test]
fn key_policies() {
    let mut s = healthy();
    let public = json!({"Statement": [{"Sid": "Everyone", "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"}]});
    s.keys[0] = cmk("us-west-2", CMK_WEST, "Enabled", Some(public.to_string()));
    let f = audit(&s, None, &Rules::default());
    assert_eq!(
        codes(&f),
        vec![(Code::KeyPolicyPublic, Some("us-west-2".into()))]
    );
    assert!(f[0].message.contains("\"Everyone\""));
    let foreign = json!({"Statement": [{"Sid": "Partner", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"}, "Action": "kms:Decrypt", "Resource": "*"}]});
    s.keys[0] = cmk("us-west-2", CMK_WEST, "Enabled", Some(foreign.to_string()));
    let f = audit(&s, None, &Rules::default());
    assert_eq!(
        codes(&f),
        vec![(Code::KeyPolicyUntrustedAccount, Some("us-west-2".into()))]
    );
    assert!(f[0].message.contains("999988887777"));
    let trusted = Rules {
        trusted_account_ids: vec!["999988887777".into()],
        ..Rules::default()
    };
    assert_eq!(audit(&s, None, &trusted), vec![]);
    // A policy that cannot be analysed is reported, not skipped.
    s.keys[0] = cmk(
        "us-west-2",
        CMK_WEST,
        "Enabled",
        Some("{\"Statement\": 7}".into()),
    );
    assert_eq!(
        codes(&audit(&s, None, &Rules::default())),
        vec![(Code::AuditIncomplete, Some("us-west-2".into()))]
    );
}

#[test]
fn region_rules() {
    let s = healthy();
    let rules = Rules {
        allowed_regions: ["us-west-2".to_string()].into(),
        ..Rules::default()
    };
    let f = audit(&s, None, &rules);
    assert_eq!(codes(&f), vec![(Code::RegionNotAllowed, east())]);
    let rules = Rules {
        required_regions: ["eu-west-1".to_string(), "us-east-1".to_string()].into(),
        ..Rules::default()
    };
    assert_eq!(
        codes(&audit(&s, None, &rules)),
        vec![(Code::RequiredRegionMissing, Some("eu-west-1".into()))]
    );
    // The tag names required Regions too.
    let mut tagged = healthy();
    if let Lookup::Found(p) = &mut tagged.primary {
        p.tags.insert(
            "replica-auditor:required-regions".into(),
            "ap-southeast-2, us-east-1".into(),
        );
    }
    let f = audit(&tagged, None, &Rules::default());
    assert_eq!(
        codes(&f),
        vec![(Code::RequiredRegionMissing, Some("ap-southeast-2".into()))]
    );
    assert!(f[0].message.contains("replica-auditor:required-regions"));
}

#[test]
fn removal_of_a_required_region_names_the_actor() {
    let mut s = healthy();
    s.replicas.clear();
    s.keys.truncate(1);
    if let Lookup::Found(p) = &mut s.primary {
        p.replication.clear();
    }
    let mut t = trigger(HandledEvent::RemoveRegionsFromReplication);
    t.removed_regions = vec!["us-east-1".into()];
    let rules = Rules {
        required_regions: ["us-east-1".to_string()].into(),
        ..Rules::default()
    };
    let f = audit(&s, Some(&t), &rules);
    assert_eq!(codes(&f), vec![(Code::RequiredRegionMissing, east())]);
    assert!(
        f[0].message
            .contains("removed by arn:aws:iam::111122223333:user/alice"),
        "{}",
        f[0].message
    );
}

#[test]
fn promotion() {
    let mut standalone = replica_copy("us-east-1");
    standalone.primary_region = Some("us-east-1".into());
    standalone.rotation_enabled = true;
    let mut s = healthy();
    s.primary = Lookup::Found(standalone.clone());
    s.replicas.clear();
    s.keys = vec![KeyCheck {
        role: KeyRole::Primary,
        ..cmk("us-east-1", CMK_EAST, "Enabled", Some(own_policy()))
    }];
    s.promotion = Some(Promotion {
        standalone: standalone.clone(),
        former_primary: Some(primary(vec![])),
    });
    let t = trigger(HandledEvent::StopReplicationToReplica);
    let f = audit(&s, Some(&t), &Rules::default());
    assert_eq!(codes(&f), vec![(Code::ReplicaPromoted, east())]);
    let m = &f[0].message;
    assert!(
        m.contains(&standalone.arn) && m.contains("Rotation is ON") && m.contains("former primary"),
        "{m}"
    );
    assert!(f[0].remediation.contains("Repoint applications"));
    // The former primary still listing the Region is an inconsistency.
    s.promotion = Some(Promotion {
        standalone,
        former_primary: Some(primary(vec![status("us-east-1", None, "InSync", "")])),
    });
    let f = audit(&s, Some(&t), &Rules::default());
    assert!(
        f[0].message.contains("the two disagree"),
        "{}",
        f[0].message
    );
}

#[test]
fn failed_call_not_found_and_gaps() {
    let mut t = trigger(HandledEvent::ReplicateSecretToRegions);
    t.error_code = Some("AccessDeniedException".into());
    t.error_message =
        Some("User is not authorized to perform secretsmanager:ReplicateSecretToRegions".into());
    let f = audit(&healthy(), Some(&t), &Rules::default());
    assert_eq!(
        codes(&f),
        vec![(Code::ApiCallFailed, Some("us-west-2".into()))]
    );
    assert!(f[0].message.contains("AccessDeniedException"));

    let mut gone = Snapshot::empty(PRIMARY_ARN);
    gone.primary = Lookup::NotFound;
    assert_eq!(
        codes(&audit(&gone, Some(&t), &Rules::default())),
        vec![
            (Code::ApiCallFailed, Some("us-west-2".into())),
            (Code::SecretNotFound, Some("us-west-2".into())),
        ]
    );

    let mut partial = healthy();
    partial.keys[1].info = KeyInfo::Unknown;
    partial.gaps.push(Gap {
        call: "kms:DescribeKey".into(),
        region: "us-east-1".into(),
        kind: GapKind::AccessDenied,
        reason: "access denied".into(),
    });
    let f = audit(&partial, None, &Rules::default());
    assert_eq!(codes(&f), vec![(Code::AuditIncomplete, east())]);
    assert!(f[0].message.contains("kms:DescribeKey") && f[0].message.contains("us-east-1"));
    assert_eq!(
        f[0].gap_kind,
        Some(GapKind::AccessDenied),
        "the kind is carried"
    );
}

#[test]
fn every_code_has_its_documented_severity_and_ids_are_stable() {
    use Severity::*;
    let expected = [
        (Code::ReplicaFailed, High),
        (Code::ReplicaInProgress, Low),
        (Code::ReplicaStatusUnknown, Medium),
        (Code::ReplicaMissing, High),
        (Code::ReplicaKeyWeakerThanPrimary, Medium),
        (Code::KeyAwsManaged, Medium),
        (Code::KeyNotFound, High),
        (Code::KeyDisabled, High),
        (Code::KeyPendingDeletion, Critical),
        (Code::KeyPolicyPublic, Critical),
        (Code::KeyPolicyUntrustedAccount, High),
        (Code::SecretPolicyPublic, Critical),
        (Code::SecretPolicyUntrustedAccount, High),
        (Code::RegionNotAllowed, High),
        (Code::RequiredRegionMissing, High),
        (Code::ReplicaPromoted, Medium),
        (Code::ApiCallFailed, Medium),
        (Code::SecretNotFound, Low),
        (Code::AuditIncomplete, Medium),
        (Code::CrossAccountCall, Low),
        (Code::ReplicaRemovedByRemediation, High),
        (Code::CrossAccountReplicaFailed, High),
        (Code::CrossAccountReplicaStalled, Medium),
        (Code::ReplicaDetached, Medium),
        (Code::CrossAccountReplicaOutsideTrust, High),
        (Code::CrossAccountPrimaryOutsideTrust, High),
        (Code::CrossAccountRoleOutsidePrimaryAccount, High),
        (Code::CrossAccountMismatch, High),
        (Code::ReplicaStale, High),
        (Code::RotationFailedWithReplicas, Medium),
    ];
    assert_eq!(expected.len(), Code::ALL.len());
    for (code, sev) in expected {
        assert_eq!(code.severity(), sev, "{code}");
        assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
    }
    let a = finding_id(PRIMARY_ARN, Code::ReplicaFailed, Some("us-east-1"), "");
    assert_eq!(
        a,
        finding_id(PRIMARY_ARN, Code::ReplicaFailed, Some("us-east-1"), "")
    );
    assert_ne!(
        a,
        finding_id(PRIMARY_ARN, Code::ReplicaFailed, Some("eu-west-1"), "")
    );
    assert_ne!(
        a,
        finding_id(PRIMARY_ARN, Code::ReplicaMissing, Some("us-east-1"), "")
    );
    // Same snapshot, same findings, same ids.
    let mut s = healthy();
    s.replicas[0].presence = Lookup::NotFound;
    assert_eq!(
        audit(&s, None, &Rules::default()),
        audit(&s, None, &Rules::default())
    );
}

#[test]
fn secret_resource_policy() {
    let open = json!({"Statement": [{"Sid": "Open", "Effect": "Allow", "Principal": "*",
                      "Action": "secretsmanager:DescribeSecret", "Resource": "*"}]});
    let mut s = healthy();
    s.secret_policy = Some(open.to_string());
    let f = audit(&s, None, &Rules::default());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, Code::SecretPolicyPublic);
    assert_eq!(f[0].severity, Severity::Critical);
    assert_eq!(f[0].region.as_deref(), Some("us-west-2"));
    assert!(f[0].message.contains("\"Open\""), "{}", f[0].message);
    // A policy that cannot be read as one: the check was not made.
    s.secret_policy = Some("{not json".into());
    let f = audit(&s, None, &Rules::default());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, Code::AuditIncomplete);
    assert!(f[0].message.contains("resource policy"), "{}", f[0].message);
    // Pinned to an organisation: untrusted until TRUSTED_ORG_IDS names it.
    let org = json!({"Statement": [{"Sid": "Org", "Effect": "Allow", "Principal": "*", "Action": "secretsmanager:*",
                     "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-a1b2c3d4e5"}}}]});
    s.secret_policy = Some(org.to_string());
    let f = audit(&s, None, &Rules::default());
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(f[0].code, Code::SecretPolicyUntrustedAccount);
    assert!(f[0].message.contains("o-a1b2c3d4e5"), "{}", f[0].message);
    let trusting = Rules {
        trusted_org_ids: vec!["o-a1b2c3d4e5".into()],
        ..Rules::default()
    };
    assert_eq!(audit(&s, None, &trusting), vec![]);
}
