//! Snapshots for tests of the plan and of the engine that carries it out
//! (built with the `fixtures` feature, which only test builds turn on).

use crate::model::{
    KeyCheck, KeyInfo, KeyRole, Lookup, Remediation, ReplicaCheck, ReplicaStatus, SecretState,
    Snapshot,
};

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
