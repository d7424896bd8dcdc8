//! Which secrets' resource policies a sweep reads: the policy ledger of one
//! account and Region (SWEEP_POLICY_REFRESH, README "Resource policies
//! between sweeps").
//!
//! Why: GetResourcePolicy's quota is 50 calls/s per account and Region,
//! shared with the customer's own Put/Delete/ValidateResourcePolicy calls
//! and not adjustable, so the sweep reads at 25/s. Reading every policy
//! every sweep made that pace the sweep's floor: N/25 s, 40 s for 1,000
//! secrets, as long as Cloud Custodian's cheapest policy takes
//! (`make bench-share`, figure 2b, stop 12).
//!
//! Policies are audited when they change: PutResourcePolicy and
//! DeleteResourcePolicy are handled events. A sweep then reads a secret's
//! policy only when
//! - no complete sweep of this account and Region is recorded, or the trust
//!   rules the verdicts depend on changed since;
//! - the secret changed (its LastChangedDate) after the last complete sweep
//!   started, less [`CLOCK_MARGIN_SECONDS`];
//! - its policy had a finding, or could not be read, when last read by a
//!   sweep or an event (the flagged set), so its finding is reported again
//!   and never resolved by a sweep that did not look; a sweep that reads
//!   it clean clears it;
//! - it is in this sweep's refresh slice: every policy is read at least once
//!   in any `refresh` consecutive complete sweeps, the backstop for a
//!   change whose event was lost.

use std::collections::BTreeSet;

use crate::model::{Code, Finding, Lookup, Snapshot};

/// LastChangedDate comes from AWS's clock, a sweep's start from the
/// function's: a change this close before the last sweep's start still
/// counts as after it.
pub const CLOCK_MARGIN_SECONDS: i64 = 300;

/// What is recorded of one account and Region's policies (the state
/// table's `policy#<account>#<Region>` item).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyLedger {
    /// When the last complete sweep started (epoch seconds); `None`: none
    /// is recorded.
    pub read_as_of: Option<i64>,
    /// Complete sweeps recorded: picks the refresh slice.
    pub sweeps: u64,
    /// [`arn_digest`]s of the secrets whose policy had a finding, or could
    /// not be read, when last read.
    pub flagged: BTreeSet<String>,
    /// The trust rules the verdicts were made under ([`rules_fingerprint`]).
    pub rules: String,
    /// Bumped by every event that flags a secret: a sweep clears what it
    /// read clean only if no event flagged anything in between.
    pub version: u64,
}

/// Why a sweep reads a secret's policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// No complete sweep is recorded (or no ledger is kept).
    NoRecord,
    /// The trusted accounts or organisations changed.
    RulesChanged,
    /// The secret changed after the last complete sweep started, or AWS
    /// did not say when it last changed.
    Changed,
    /// Its policy had a finding, or could not be read, when last read.
    Flagged,
    /// This sweep's share of the full re-read.
    Refresh,
}

impl PolicyLedger {
    /// Whether (and why) this sweep reads the policy of the secret `arn`,
    /// last changed at `last_changed` (epoch seconds), under the trust
    /// rules `rules`, every policy being read once in `refresh` sweeps.
    pub fn due(
        &self,
        arn: &str,
        last_changed: Option<i64>,
        rules: &str,
        refresh: u32,
    ) -> Option<Due> {
        let Some(as_of) = self.read_as_of else {
            return Some(Due::NoRecord);
        };
        if self.rules != rules {
            return Some(Due::RulesChanged);
        }
        if last_changed.is_none_or(|t| t >= as_of - CLOCK_MARGIN_SECONDS) {
            return Some(Due::Changed);
        }
        if self.flagged.contains(&arn_digest(arn)) {
            return Some(Due::Flagged);
        }
        let refresh = u64::from(refresh.max(1));
        (slice_of(arn, refresh) == self.sweeps % refresh).then_some(Due::Refresh)
    }
}

/// A secret's entry in the flagged set: 16 hex digits of SHA-256 of its
/// ARN, so that a ledger of 20,000 flagged secrets stays under DynamoDB's
/// 400 KB item (an ARN is up to 2,048 characters). A collision costs one
/// more read, never one fewer.
pub fn arn_digest(arn: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(arn.as_bytes())[..8])
}

/// Which of `refresh` slices `arn` belongs to: stable across invocations
/// and builds (not Rust's randomly seeded hasher).
fn slice_of(arn: &str, refresh: u64) -> u64 {
    let d = arn_digest(arn);
    u64::from_str_radix(&d, 16).unwrap_or(0) % refresh
}

/// The rules a secret policy's reported verdict depends on (the trusted
/// accounts and organisations, and the lowest severity reported) and which
/// secrets a sweep audits (the required Regions make every secret one), as
/// one string: a ledger made under other rules is read anew.
pub fn rules_fingerprint(
    trusted_accounts: &[String],
    trusted_orgs: &[String],
    min_severity: &str,
    required_regions: &[String],
) -> String {
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v.dedup();
        v.join(",")
    };
    format!(
        "accounts={};orgs={};min_severity={min_severity};required={}",
        sorted(trusted_accounts),
        sorted(trusted_orgs),
        sorted(required_regions)
    )
}

/// What an audit of a secret says for its ledger entry: `Some(false)`
/// (flag it) when its policy was read with a finding, or when the audit
/// could not do everything (a call failed or never started, the policy
/// could not be analysed: whatever it missed may have been a policy that
/// was due); `Some(true)` when its policy was read and nothing stands in
/// the way; `None` when no read was made and nothing failed.
pub fn verdict(snapshot: &Snapshot, findings: &[Finding]) -> Option<bool> {
    if !snapshot.gaps.is_empty() || matches!(snapshot.primary, Lookup::Unknown) {
        return Some(false);
    }
    if !snapshot.secret_policy_read {
        return None;
    }
    Some(!findings.iter().any(|f| {
        matches!(
            f.code,
            Code::SecretPolicyPublic | Code::SecretPolicyUntrustedAccount | Code::AuditIncomplete
        )
    }))
}

/// What one sweep of an account and Region learned of its policies, to
/// record in the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyPass {
    /// Digests of the secrets whose policy had a finding or could not be read.
    pub flagged: BTreeSet<String>,
    /// Digests of the secrets whose policy was read without a finding.
    pub clean: BTreeSet<String>,
    /// Policies read, and passed over as not due.
    pub read: u64,
    pub skipped: u64,
    /// Every listed secret was audited (no listing failed, none was left
    /// for lack of time): only then does `read_as_of` move, and the refresh
    /// slice with it.
    pub complete: bool,
}

impl PolicyPass {
    /// Count one audited secret: whether its policy was `read`, and its
    /// [`verdict`]. A policy neither read nor flagged was not due.
    pub fn count(&mut self, arn: &str, read: bool, verdict: Option<bool>) {
        if read {
            self.read += 1;
        } else if verdict.is_none() {
            self.skipped += 1;
        }
        match verdict {
            Some(true) => self.clean.insert(arn_digest(arn)),
            Some(false) => self.flagged.insert(arn_digest(arn)),
            None => false,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RULES: &str = "accounts=;orgs=o-1";

    fn arn(i: usize) -> String {
        format!("arn:aws:secretsmanager:us-west-2:111122223333:secret:app/{i}-AbCdEf")
    }

    fn recorded(sweeps: u64) -> PolicyLedger {
        PolicyLedger {
            read_as_of: Some(1_000_000),
            sweeps,
            rules: RULES.into(),
            ..PolicyLedger::default()
        }
    }

    #[test]
    fn without_a_record_every_policy_is_read() {
        let l = PolicyLedger::default();
        assert_eq!(l.due(&arn(1), Some(0), RULES, 4), Some(Due::NoRecord));
    }

    #[test]
    fn a_secret_changed_since_the_last_sweep_started_is_read_with_a_margin_for_skew() {
        let l = recorded(0);
        let at = 1_000_000;
        assert_eq!(
            l.due(&arn(1), Some(at + 1), RULES, 1_000_000),
            Some(Due::Changed)
        );
        assert_eq!(
            l.due(&arn(1), Some(at - CLOCK_MARGIN_SECONDS), RULES, 1_000_000),
            Some(Due::Changed)
        );
        assert_eq!(l.due(&arn(1), None, RULES, 1_000_000), Some(Due::Changed));
        let older = at - CLOCK_MARGIN_SECONDS - 1;
        let not_read = (0..200)
            .filter(|i| l.due(&arn(*i), Some(older), RULES, 1_000_000).is_none())
            .count();
        // With a million slices, about none of 200 secrets is in slice 0.
        assert!(not_read >= 199, "{not_read}");
    }

    #[test]
    fn flagged_secrets_and_changed_rules_are_read() {
        let mut l = recorded(0);
        let old = Some(0);
        l.flagged.insert(arn_digest(&arn(7)));
        assert_eq!(l.due(&arn(7), old, RULES, 1_000_000), Some(Due::Flagged));
        assert_eq!(
            l.due(&arn(7), old, "accounts=;orgs=o-2", 1_000_000),
            Some(Due::RulesChanged)
        );
    }

    #[test]
    fn every_policy_is_read_once_in_refresh_consecutive_sweeps() {
        let refresh = 4;
        let old = Some(0);
        let mut reads = vec![0; 400];
        for sweeps in 10..10 + u64::from(refresh) {
            let l = recorded(sweeps);
            for (i, n) in reads.iter_mut().enumerate() {
                if l.due(&arn(i), old, RULES, refresh) == Some(Due::Refresh) {
                    *n += 1;
                }
            }
        }
        assert!(reads.iter().all(|n| *n == 1), "{reads:?}");
        // And each sweep reads about a quarter.
        let one = recorded(3);
        let share = (0..400)
            .filter(|i| one.due(&arn(*i), old, RULES, refresh).is_some())
            .count();
        assert!((60..=140).contains(&share), "{share}");
        // Refresh 1 (and 0, taken as 1) reads every policy every sweep.
        for r in [0, 1] {
            assert!((0..50).all(|i| recorded(5).due(&arn(i), old, RULES, r).is_some()));
        }
    }

    #[test]
    fn a_pass_counts_reads_flags_and_clean_reads() {
        let mut a = PolicyPass::default();
        a.count(&arn(1), true, Some(true));
        a.count(&arn(2), true, Some(false));
        a.count(&arn(3), false, None);
        a.count(&arn(4), true, Some(false));
        // A read that failed: flagged, neither read nor passed over.
        a.count(&arn(5), false, Some(false));
        assert_eq!((a.read, a.skipped), (3, 1));
        assert_eq!(
            a.flagged,
            BTreeSet::from([
                arn_digest(&arn(2)),
                arn_digest(&arn(4)),
                arn_digest(&arn(5))
            ])
        );
        assert_eq!(a.clean, BTreeSet::from([arn_digest(&arn(1))]));
    }

    #[test]
    fn the_verdict_flags_a_wanting_or_unread_policy_and_anything_the_audit_missed() {
        use crate::model::{Gap, GapKind};
        let finding = |code| {
            crate::audit::finding(
                "k",
                code,
                Some("us-west-2"),
                "",
                String::new(),
                String::new(),
            )
        };
        let mut s = Snapshot::empty("app");
        assert_eq!(
            verdict(&s, &[]),
            Some(false),
            "the primary could not be looked at"
        );
        s.primary = Lookup::Found(crate::model::SecretState::default());
        assert_eq!(verdict(&s, &[]), None, "no read made, nothing failed");
        for call in ["secretsmanager:GetResourcePolicy", "kms:GetKeyPolicy"] {
            s.gaps = vec![Gap {
                call: call.into(),
                region: "us-west-2".into(),
                kind: GapKind::AccessDenied,
                reason: "denied".into(),
            }];
            assert_eq!(
                verdict(&s, &[]),
                Some(false),
                "{call} failed: read it again"
            );
        }
        s.gaps.clear();
        s.secret_policy_read = true;
        assert_eq!(verdict(&s, &[finding(Code::ReplicaFailed)]), Some(true));
        for code in [
            Code::SecretPolicyPublic,
            Code::SecretPolicyUntrustedAccount,
            // A policy that could not be analysed.
            Code::AuditIncomplete,
        ] {
            assert_eq!(verdict(&s, &[finding(code)]), Some(false));
        }
    }

    #[test]
    fn the_fingerprint_ignores_order_and_repeats() {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let a = rules_fingerprint(&v(&["2", "1"]), &v(&["o-b", "o-a"]), "LOW", &[]);
        let b = rules_fingerprint(&v(&["1", "2", "1"]), &v(&["o-a", "o-b"]), "LOW", &[]);
        assert_eq!(a, b);
        assert_ne!(
            a,
            rules_fingerprint(&v(&["1"]), &v(&["o-a", "o-b"]), "LOW", &[])
        );
        assert_ne!(
            a,
            rules_fingerprint(&v(&["1", "2"]), &v(&["o-a", "o-b"]), "HIGH", &[])
        );
        let required = v(&["eu-west-1"]);
        assert_ne!(
            a,
            rules_fingerprint(&v(&["1", "2"]), &v(&["o-a", "o-b"]), "LOW", &required)
        );
        assert_eq!(arn_digest(&arn(1)).len(), 16);
    }
}
