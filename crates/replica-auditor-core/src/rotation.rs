//! A rotation that did not finish on a primary with replicas (issue 25,
//! docs/freshness.md): Secrets Manager's RotationFailed and
//! RotationAbandoned service events, reported with the state of each
//! replica. A half-finished rotation can leave AWSPENDING on the primary
//! only: the message says, for each replica, its status, its AWSCURRENT
//! version id and whether it holds the primary's AWSPENDING version.
//! Version ids only, never values.

use crate::audit::finding;
use crate::event::{HandledEvent, Trigger};
use crate::model::*;

/// ROTATION_FAILED_WITH_REPLICAS when `trigger` is a failed or abandoned
/// rotation and the primary `p` has replicas; nothing otherwise. One per
/// secret (its id does not depend on the versions): the next failure
/// updates it, and the next audit that finds no such event resolves it in
/// Security Hub, as an API_CALL_FAILED is.
pub fn findings(s: &Snapshot, p: &SecretState, trigger: Option<&Trigger>) -> Vec<Finding> {
    let Some(t) = trigger.filter(|t| t.event.is_unfinished_rotation()) else {
        return Vec::new();
    };
    if p.replication.is_empty() {
        return Vec::new();
    }
    let what = match t.event {
        HandledEvent::RotationAbandoned => {
            "was abandoned (RotationAbandoned: a new version was made while it ran, and Secrets Manager removed AWSPENDING)"
        }
        _ => "failed (RotationFailed)",
    };
    let when = t
        .event_time
        .as_deref()
        .map(|at| format!(" at {at}"))
        .unwrap_or_default();
    let current = p.current_version().unwrap_or("none");
    let pending = p.pending_version();
    let primary = match pending {
        Some(v) => format!(
            "The primary in {} holds AWSCURRENT {current} and AWSPENDING {v}: a half-finished rotation.",
            p.region
        ),
        None => format!(
            "The primary in {} holds AWSCURRENT {current} and no AWSPENDING version apart from it.",
            p.region
        ),
    };
    let replicas: Vec<String> = p
        .replication
        .iter()
        .map(|r| replica_state(s, r, current, pending))
        .collect();
    let lacking = pending.map_or(String::new(), |v| {
        let n = p
            .replication
            .iter()
            .filter(|r| !holds_pending(s, &r.region, v))
            .count();
        format!(
            " Replicas without the primary's AWSPENDING version {v}: {n} of {}.",
            replicas.len()
        )
    });
    vec![finding(
        &p.arn,
        Code::RotationFailedWithReplicas,
        Some(&p.region),
        "",
        format!(
            "Rotation of {}{when} {what}. {primary} Replicas: {}.{lacking}",
            p.name,
            replicas.join("; ")
        ),
        remediation(p, pending),
    )]
}

/// One replica's state: its Region, status, AWSCURRENT version, and
/// whether it holds the primary's AWSPENDING version.
fn replica_state(
    s: &Snapshot,
    r: &ReplicaStatus,
    primary_current: &str,
    pending: Option<&str>,
) -> String {
    let status = r
        .status
        .as_ref()
        .map_or("without a status", |st| st.as_str());
    let copy = s
        .replicas
        .iter()
        .find(|c| c.status.region == r.region)
        .map(|c| &c.presence);
    let version = match copy {
        Some(Lookup::Found(c)) => match c.current_version() {
            Some(v) if v == primary_current => format!("AWSCURRENT {v} (the primary's)"),
            Some(v) => format!("AWSCURRENT {v} (not the primary's)"),
            None => "no AWSCURRENT version".to_string(),
        },
        Some(Lookup::NotFound) => "not found there".to_string(),
        Some(Lookup::Unknown) | None => "its versions unknown (not described)".to_string(),
    };
    let pending = match (pending, copy) {
        (Some(v), Some(Lookup::Found(_))) if holds_pending(s, &r.region, v) => {
            format!(", holds AWSPENDING {v}")
        }
        (Some(_), Some(Lookup::Found(_))) => ", lacks AWSPENDING".to_string(),
        _ => String::new(),
    };
    format!("{} {status}, {version}{pending}", r.region)
}

/// Whether the replica in `region` holds version `v` as AWSPENDING.
fn holds_pending(s: &Snapshot, region: &str, v: &str) -> bool {
    s.replicas
        .iter()
        .filter(|c| c.status.region == region)
        .filter_map(|c| c.presence.found())
        .any(|c| c.has_label(v, "AWSPENDING"))
}

fn remediation(p: &SecretState, pending: Option<&str>) -> String {
    let clear = pending.map_or(String::new(), |v| {
        format!(
            " Before rotating again, take AWSPENDING off the unfinished version: aws secretsmanager update-secret-version-stage --secret-id {} --version-stage AWSPENDING --remove-from-version-id {v} --region {}.",
            p.name, p.region
        )
    });
    format!(
        "Find why the rotation stopped (the rotation function's CloudWatch logs).{clear} Then rotate again (rotate-secret) and check that every replica's AWSCURRENT is the primary's (describe-secret in each Region); until then, do not fail over to a Region whose AWSCURRENT is not the primary's."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Actor, SecretRef};
    use std::collections::BTreeMap;

    const ARN: &str = "arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf";

    fn state(region: &str, stages: &[(&str, &str)]) -> SecretState {
        let mut versions: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (id, stage) in stages {
            versions
                .entry(id.to_string())
                .or_default()
                .push(stage.to_string());
        }
        SecretState {
            arn: ARN.replace("us-west-2", region),
            name: "db".into(),
            region: region.into(),
            primary_region: Some("us-west-2".into()),
            versions,
            ..SecretState::default()
        }
    }

    fn trigger(event: HandledEvent) -> Trigger {
        Trigger {
            event,
            event_id: None,
            event_time: Some("2026-11-20T10:21:07Z".into()),
            region: "us-west-2".into(),
            account: "111122223333".into(),
            actor: Actor::default(),
            error_code: None,
            error_message: None,
            secret: SecretRef::parse(ARN),
            removed_regions: vec![],
            cross_account: None,
        }
    }

    /// A primary holding v-old as AWSCURRENT and v-new as AWSPENDING, with
    /// replicas in eu-west-1 (holding both) and ap-south-1 (v-old only).
    fn half_rotated() -> (Snapshot, SecretState) {
        let mut p = state(
            "us-west-2",
            &[("v-old", "AWSCURRENT"), ("v-new", "AWSPENDING")],
        );
        let copies = [
            (
                "eu-west-1",
                state(
                    "eu-west-1",
                    &[("v-old", "AWSCURRENT"), ("v-new", "AWSPENDING")],
                ),
            ),
            (
                "ap-south-1",
                state("ap-south-1", &[("v-old", "AWSCURRENT")]),
            ),
        ];
        let mut s = Snapshot::empty(ARN);
        for (region, copy) in copies {
            let status = ReplicaStatus {
                region: region.into(),
                kms_key_id: None,
                status: Some(ReplicationState::InSync),
                status_message: None,
            };
            p.replication.push(status.clone());
            s.replicas.push(ReplicaCheck {
                status,
                presence: Lookup::Found(copy),
            });
        }
        (s, p)
    }

    #[test]
    fn a_failed_rotation_names_each_replicas_state() {
        let (s, p) = half_rotated();
        let f = findings(&s, &p, Some(&trigger(HandledEvent::RotationFailed)));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, Code::RotationFailedWithReplicas);
        assert_eq!(f[0].severity, Severity::Medium);
        assert_eq!(f[0].region.as_deref(), Some("us-west-2"));
        assert_eq!(
            f[0].message,
            "Rotation of db at 2026-11-20T10:21:07Z failed (RotationFailed). The primary in us-west-2 holds AWSCURRENT v-old and AWSPENDING v-new: a half-finished rotation. Replicas: eu-west-1 InSync, AWSCURRENT v-old (the primary's), holds AWSPENDING v-new; ap-south-1 InSync, AWSCURRENT v-old (the primary's), lacks AWSPENDING. Replicas without the primary's AWSPENDING version v-new: 1 of 2."
        );
        assert!(f[0].remediation.contains("--remove-from-version-id v-new"));
    }

    #[test]
    fn only_an_unfinished_rotation_of_a_primary_with_replicas_is_reported() {
        let (s, mut p) = half_rotated();
        for event in [HandledEvent::RotationSucceeded, HandledEvent::RotateSecret] {
            assert_eq!(findings(&s, &p, Some(&trigger(event))), vec![]);
        }
        assert_eq!(findings(&s, &p, None), vec![]);
        let abandoned = findings(&s, &p, Some(&trigger(HandledEvent::RotationAbandoned)));
        assert!(
            abandoned[0].message.contains("was abandoned"),
            "{abandoned:?}"
        );
        p.replication.clear();
        assert_eq!(
            findings(&s, &p, Some(&trigger(HandledEvent::RotationFailed))),
            vec![]
        );
    }

    #[test]
    fn without_a_pending_version_nothing_is_said_to_lack_it() {
        let (mut s, mut p) = half_rotated();
        p.versions.remove("v-new");
        s.replicas[1].presence = Lookup::Unknown;
        let f = findings(&s, &p, Some(&trigger(HandledEvent::RotationFailed)));
        assert!(
            f[0].message.ends_with("Replicas: eu-west-1 InSync, AWSCURRENT v-old (the primary's); ap-south-1 InSync, its versions unknown (not described)."),
            "{}",
            f[0].message
        );
        assert!(!f[0].remediation.contains("AWSPENDING"));
    }
}
