//! Freshness (issue 25, docs/freshness.md): does every replica hold the
//! version that is AWSCURRENT in the primary? Compared on DescribeSecret's
//! `VersionIdsToStages` in each Region (replicas keep the primary's
//! version ids), so it costs no call of its own. Ids only, never values.

use serde::{Deserialize, Serialize};

use crate::audit::finding;
use crate::model::*;

/// How a replica's current version compares with the primary's: the
/// report's `replicas[].freshness`, the command line's version column, and
/// what REPLICA_STALE is judged on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Freshness {
    /// The replica's AWSCURRENT is the primary's.
    Current,
    /// The replica holds another version as AWSCURRENT, or none: behind
    /// since the primary's current version was made,
    /// `primary_version_age_seconds` ago (by the primary's LastChangedDate,
    /// when AWS gave it).
    Behind {
        primary_version_age_seconds: Option<i64>,
    },
    /// Not compared: the primary named no AWSCURRENT version, or the
    /// replica could not be described (or is not there).
    #[default]
    Unknown,
}

impl Freshness {
    /// Not compared (the report leaves it out).
    pub fn is_unknown(&self) -> bool {
        *self == Freshness::Unknown
    }
}

/// The age of the primary's current version when the snapshot was taken,
/// from its LastChangedDate (DescribeSecret gives no version creation
/// date), which is never earlier than the version's creation: the age is
/// never overstated.
pub fn version_age(s: &Snapshot, p: &SecretState) -> Option<i64> {
    Some(s.observed_at?.saturating_sub(p.last_changed?))
}

/// How replica `r` of the primary `p` compares with it.
pub fn of_replica(s: &Snapshot, p: &SecretState, r: &ReplicaCheck) -> Freshness {
    let (Some(current), Lookup::Found(copy)) = (p.current_version(), &r.presence) else {
        return Freshness::Unknown;
    };
    if copy.current_version() == Some(current) {
        Freshness::Current
    } else {
        Freshness::Behind {
            primary_version_age_seconds: version_age(s, p),
        }
    }
}

/// REPLICA_STALE for every replica whose current version is not the
/// primary's ([`of_replica`]), once the primary's current version is older
/// than `rules.replica_lag_seconds` ([`version_age`]). A replica that says
/// InSync is compared all the same.
pub fn findings(s: &Snapshot, p: &SecretState, rules: &Rules) -> Vec<Finding> {
    let (Some(current), Some(age)) = (p.current_version(), version_age(s, p)) else {
        return Vec::new();
    };
    if age <= rules.replica_lag_seconds as i64 {
        return Vec::new();
    }
    s.replicas
        .iter()
        .filter(|r| matches!(of_replica(s, p, r), Freshness::Behind { .. }))
        .map(|r| {
            let held = r.presence.found().and_then(SecretState::current_version);
            stale(p, r, current, held, age, rules)
        })
        .collect()
}

fn stale(
    p: &SecretState,
    r: &ReplicaCheck,
    current: &str,
    held: Option<&str>,
    age: i64,
    rules: &Rules,
) -> Finding {
    let region = r.status.region.as_str();
    let status = r
        .status
        .status
        .as_ref()
        .map_or("without a status", |st| st.as_str());
    let message = r.status.status_message.as_deref().unwrap_or("no message");
    let held = held.map_or("no AWSCURRENT version".to_string(), |v| {
        format!("version {v} as AWSCURRENT")
    });
    let trusted = if r.status.status == Some(ReplicationState::InSync) {
        " It reports InSync all the same: the status is not trusted over the versions."
    } else {
        ""
    };
    finding(
        &p.arn,
        Code::ReplicaStale,
        Some(region),
        // One id per Region: a replica still behind after the next
        // rotation updates its finding rather than opening another.
        "",
        format!(
            "The replica of {} in {region} holds {held}, not the primary's current version {current} in {}, which is {age} s old (REPLICA_LAG_SECONDS = {}). Replica status {status} ({message}).{trusted} Applications reading {region} get an old value.",
            p.name, p.region, rules.replica_lag_seconds
        ),
        format!(
            "Check the replica's status in {region} (describe-secret --region {region}); if it is Failed, retry with replicate-secret-to-regions. If it stays behind, remove and re-add {region} (remove-regions-from-replication, then replicate-secret-to-regions). Until then, do not fail over to {region}."
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    const NOW: i64 = 1_800_000_000;

    fn copy(region: &str, current: &str) -> SecretState {
        SecretState {
            arn: format!("arn:aws:secretsmanager:{region}:111122223333:secret:db-AbCdEf"),
            name: "db".into(),
            region: region.into(),
            primary_region: Some("us-west-2".into()),
            last_changed: Some(NOW - 3600),
            versions: BTreeMap::from([
                (current.to_string(), vec!["AWSCURRENT".to_string()]),
                ("v-prev".to_string(), vec!["AWSPREVIOUS".to_string()]),
            ]),
            ..SecretState::default()
        }
    }

    fn snapshot(replica_current: &str, status: &str) -> (Snapshot, SecretState) {
        let p = copy("us-west-2", "v-new");
        let mut s = Snapshot::empty(p.arn.clone());
        s.observed_at = Some(NOW);
        s.replicas = vec![ReplicaCheck {
            status: ReplicaStatus {
                region: "eu-west-1".into(),
                kms_key_id: None,
                status: Some(status.to_string().into()),
                status_message: Some("Replication succeeded".into()),
            },
            presence: Lookup::Found(copy("eu-west-1", replica_current)),
        }];
        (s, p)
    }

    fn rules(lag: u64) -> Rules {
        Rules {
            replica_lag_seconds: lag,
            ..Rules::default()
        }
    }

    #[test]
    fn a_replica_with_the_current_version_is_fresh() {
        let (s, p) = snapshot("v-new", "InSync");
        assert_eq!(findings(&s, &p, &rules(900)), vec![]);
    }

    #[test]
    fn a_replica_behind_within_the_limit_is_not_yet_stale() {
        let (s, p) = snapshot("v-old", "InProgress");
        assert_eq!(findings(&s, &p, &rules(7200)), vec![]);
    }

    #[test]
    fn an_insync_replica_holding_another_version_is_stale() {
        let (s, p) = snapshot("v-old", "InSync");
        let f = findings(&s, &p, &rules(900));
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].code, Code::ReplicaStale);
        assert_eq!(f[0].severity, Severity::High);
        assert_eq!(f[0].region.as_deref(), Some("eu-west-1"));
        for part in [
            "v-old",
            "v-new",
            "3600 s",
            "InSync",
            "Replication succeeded",
        ] {
            assert!(f[0].message.contains(part), "{part}: {}", f[0].message);
        }
    }

    #[test]
    fn each_replica_is_current_behind_or_unknown() {
        let (s, p) = snapshot("v-new", "InSync");
        assert_eq!(of_replica(&s, &p, &s.replicas[0]), Freshness::Current);
        let (mut s, p) = snapshot("v-old", "InSync");
        assert_eq!(
            of_replica(&s, &p, &s.replicas[0]),
            Freshness::Behind {
                primary_version_age_seconds: Some(3600)
            }
        );
        s.replicas[0].presence = Lookup::Unknown;
        assert_eq!(of_replica(&s, &p, &s.replicas[0]), Freshness::Unknown);
        assert_eq!(
            serde_json::to_value(Freshness::Behind {
                primary_version_age_seconds: Some(3600)
            })
            .unwrap(),
            serde_json::json!({"state": "behind", "primary_version_age_seconds": 3600})
        );
    }

    #[test]
    fn without_a_clock_or_versions_nothing_is_judged() {
        let (mut s, p) = snapshot("v-old", "InSync");
        s.observed_at = None;
        assert_eq!(findings(&s, &p, &rules(900)), vec![]);
        let (s, mut p) = snapshot("v-old", "InSync");
        p.versions.clear();
        assert_eq!(findings(&s, &p, &rules(900)), vec![]);
    }
}
