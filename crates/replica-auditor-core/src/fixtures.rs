//! Snapshots for tests of the plan and of the engine that carries it out
//! (built with the `fixtures` feature, which only test builds turn on).

use crate::model::{
    Code, FailureCause, Finding, KeyCheck, KeyInfo, KeyRole, Lookup, Remediation, ReplicaCheck,
    ReplicaStatus, SecretState, Severity, Snapshot,
};
use crate::report::{Report, TriggerInfo};

/// A primary in us-west-2 whose us-east-1 replica is Failed with
/// `message`; what the Region holds now is `presence`.
pub fn failed_replica(message: &str, presence: Lookup<SecretState>) -> Snapshot {
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

pub fn other_secret() -> SecretState {
    SecretState {
        arn: "arn:aws:secretsmanager:us-east-1:111122223333:secret:app-ZzZzZz".into(),
        region: "us-east-1".into(),
        ..Default::default()
    }
}

pub const CLASH: &str = "Replication failed: Secret name app already exists in region us-east-1.";

pub fn on() -> Remediation {
    Remediation::default()
}

/// The account of [`secret_arn`].
pub const ACCOUNT: &str = "123456789012";

/// The ARN of the secret `name` in us-west-2, account [`ACCOUNT`].
pub fn secret_arn(name: &str) -> String {
    format!("arn:aws:secretsmanager:us-west-2:{ACCOUNT}:secret:{name}-AbCdEf")
}

/// A finding on the secret `name` as the audit makes it (its id from the
/// ARN, code and Region); a REPLICA_FAILED one is a name clash.
pub fn finding(name: &str, code: Code, region: Option<&str>, message: &str) -> Finding {
    Finding {
        id: crate::audit::finding_id(&secret_arn(name), code, region, ""),
        code,
        severity: code.severity(),
        region: region.map(str::to_string),
        message: message.into(),
        remediation: "Fix it.".into(),
        cause: (code == Code::ReplicaFailed).then_some(FailureCause::NameConflict),
        gap_kind: None,
    }
}

/// A sweep's report on the secret `name` (primary us-west-2) with
/// `findings`, every severity kept.
pub fn report(name: &str, findings: Vec<Finding>) -> Report {
    let trigger = TriggerInfo {
        source: "schedule".into(),
        event_name: "Scheduled Event".into(),
        event_id: None,
        event_time: None,
        region: None,
        account: None,
        actor: None,
        error_code: None,
    };
    let mut r = crate::report::build(
        trigger,
        &Snapshot::empty(name),
        findings,
        Vec::new(),
        Severity::Info,
        "report-1".into(),
        "2026-11-23T20:54:24.788513241Z".into(),
    );
    r.secret.arn = Some(secret_arn(name));
    r.secret.name = name.into();
    r.secret.primary_region = Some("us-west-2".into());
    r
}
