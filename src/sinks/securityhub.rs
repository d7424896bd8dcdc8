//! The Security Hub sink: each audited secret's findings imported into
//! AWS Security Hub (ASFF, BatchImportFindings) in their own account and
//! Region, and resolved there when a later audit no longer finds them.
//!
//! The findings each secret holds ACTIVE are kept in the state table (as
//! Security Hub's partner guide asks of providers), one item per secret,
//! `shub#<account>#<primary Region>#<secret ARN>`. Per audit: GetItem, the
//! plan (`asff::plan`: new or changed failures, daily refreshes, and
//! resolutions), the imports, then PutItem of the new set, only once the
//! imports are done. A secret that never failed costs the GetItem alone.

use std::collections::{BTreeMap, BTreeSet};

use time::OffsetDateTime;

use super::{Delivered, Delivery, ReportSink, SinkError, report_key};
use crate::arn::{SecretArn, parse_secret_arn};
use crate::asff::{self, AsffFinding, Context};
use crate::aws::{FindingsApi, FindingsState, PaceStore};
use crate::rate::SharedPace;
use crate::report::Report;

/// BatchImportFindings calls per second, per account and Region, for
/// every instance of the function together (a [`SharedPace`] in the state
/// table). AWS allows 10 (burst 30) per account and Region, shared with
/// every other custom integration of the account; a burst of 1 keeps the
/// calls evenly spaced, so the auditor alone never meets the throttle.
pub const IMPORTS_PER_SECOND: u32 = 10;

/// The shared pace's name (`pace#securityhub#<account>#<Region>`).
pub const IMPORT_PACE: &str = "securityhub";

/// How long an emptied state item lives before TTL removes it.
const EMPTY_ITEM_TTL_SECONDS: u64 = 30 * 24 * 3600;

/// The state table key of a secret's active findings.
pub fn state_key(primary: &SecretArn) -> String {
    format!("shub#{}#{}#{primary}", primary.account, primary.region)
}

pub struct SecurityHubSink<A> {
    api: A,
    /// One pace per (account, Region), shared by every instance.
    pace: SharedPace,
}

impl<A> SecurityHubSink<A> {
    pub fn new(api: A) -> Self {
        SecurityHubSink {
            api,
            pace: SharedPace::new(IMPORT_PACE, f64::from(IMPORTS_PER_SECOND), 1),
        }
    }
}

/// What one secret's sync did.
#[derive(Debug, Default)]
struct Imported {
    /// Findings imported (failures and resolutions).
    ok: usize,
    resolved: usize,
    /// Refused findings: Id and why.
    failed: Vec<(String, String)>,
}

impl<A: FindingsApi + FindingsState + PaceStore> SecurityHubSink<A> {
    /// Bring Security Hub in line with this audit of one secret; a receipt
    /// saying what was imported. A report without a secret ARN (the secret
    /// was not found, or could not be described) changes nothing: there is
    /// no secret to hold findings for, and a check that could not be made
    /// resolves nothing.
    pub async fn sync(&self, report: &Report) -> Result<String, SinkError> {
        let Some(primary) = report.secret.arn.as_deref().and_then(parse_secret_arn) else {
            return Ok("securityhub: no secret ARN, nothing synced".into());
        };
        let key = state_key(&primary);
        let failed = |e: crate::aws::AwsError| {
            SinkError::SecurityHub(format!(
                "the active findings of {} in the state table: {e}",
                report.secret.name
            ))
        };
        let held = self.api.held_findings(&key).await.map_err(failed)?;
        let now = OffsetDateTime::now_utc();
        let ctx = Context {
            own_account: Some(&primary.account),
            home_region: &primary.region,
        };
        let current = asff::findings(report, &ctx, &asff::timestamp(now));
        let plan = asff::plan(report, current, &held, now);
        if plan.import.is_empty() && !plan.changes(&held) {
            return Ok("securityhub: unchanged".into());
        }
        let done = self.import(plan.import.clone(), &plan.resolving).await;
        let refused: BTreeSet<String> = done.failed.iter().map(|(id, _)| id.clone()).collect();
        let next = plan.after(&held, &refused);
        if next != held {
            let expires = next
                .is_empty()
                .then(|| now.unix_timestamp().max(0) as u64 + EMPTY_ITEM_TTL_SECONDS);
            self.api
                .keep_findings(&key, &next, expires)
                .await
                .map_err(failed)?;
        }
        if let Some((id, why)) = done.failed.first() {
            return Err(SinkError::SecurityHub(format!(
                "{} of {} findings of {} were not imported; the first, {id}: {why}",
                done.failed.len(),
                plan.import.len(),
                report.secret.name
            )));
        }
        Ok(format!(
            "securityhub: {} imported, {} of them resolving",
            done.ok, done.resolved
        ))
    }

    /// Import `findings`, grouped by account and Region (each group in
    /// calls within AWS's limits, paced), the groups at once.
    async fn import(&self, findings: Vec<AsffFinding>, resolving: &BTreeSet<String>) -> Imported {
        let mut groups: BTreeMap<(String, String), Vec<AsffFinding>> = BTreeMap::new();
        for f in findings {
            groups
                .entry((f.aws_account_id.clone(), f.region.clone()))
                .or_default()
                .push(f);
        }
        let calls = groups
            .into_iter()
            .map(|((account, region), group)| async move {
                let mut out = Imported::default();
                let sized = group.into_iter().map(|f| {
                    let size = asff::size(&f);
                    (f, size)
                });
                let (batches, too_big) = asff::batches(sized.collect());
                for f in too_big {
                    out.failed.push((
                        f.id,
                        format!(
                            "over BatchImportFindings' {} bytes a finding",
                            asff::MAX_FINDING_BYTES
                        ),
                    ));
                }
                for batch in batches {
                    // A pace that cannot be had is a failed import: the
                    // call is never made without a token.
                    if let Err(refused) =
                        self.pace.acquire(&self.api, &account, &region, None).await
                    {
                        let why = format!("securityhub:BatchImportFindings not made: {refused}");
                        out.failed
                            .extend(batch.into_iter().map(|f| (f.id, why.clone())));
                        continue;
                    }
                    match self.api.import_findings(&account, &region, &batch).await {
                        Ok(outcome) => {
                            let refused: BTreeSet<&str> =
                                outcome.failed.iter().map(|(id, _)| id.as_str()).collect();
                            for f in &batch {
                                if !refused.contains(f.id.as_str()) {
                                    out.ok += 1;
                                    out.resolved += usize::from(resolving.contains(&f.id));
                                }
                            }
                            out.failed.extend(outcome.failed);
                        }
                        Err(e) => {
                            out.failed
                                .extend(batch.into_iter().map(|f| (f.id, e.to_string())));
                        }
                    }
                }
                out
            });
        let mut all = Imported::default();
        for part in futures::future::join_all(calls).await {
            all.ok += part.ok;
            all.resolved += part.resolved;
            all.failed.extend(part.failed);
        }
        all
    }
}

impl<A: FindingsApi + FindingsState + PaceStore> ReportSink for SecurityHubSink<A> {
    type Queue = ();

    /// Every audited secret's report, healthy ones included (they resolve
    /// what was held); never a sweep's summary.
    fn wants(&self, report: &Report) -> bool {
        report.sweep.is_none()
    }

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        self.sync(report).await
    }

    fn queue(&self, _: &mut (), report: &Report) -> Vec<Delivery<'_>> {
        let report = report.clone();
        vec![Box::pin(async move {
            let result = self.sync(&report).await.map(drop);
            vec![Delivered {
                secret: report_key(&report),
                main: false,
                result,
            }]
        })]
    }

    fn flush(&self, _: &mut ()) -> Vec<Delivery<'_>> {
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::asff::HeldSet;
    use crate::aws::{AwsError, ImportOutcome};
    use crate::model::Code;
    use replica_auditor_core::fixtures;
    use std::collections::HashMap;
    use std::sync::Mutex;
    use tokio::time::Instant;

    /// One import call: as whom, where, what, and when it started.
    type Call = (String, String, Vec<AsffFinding>, Instant);

    /// Security Hub and the state table in memory; every import call
    /// recorded with the (paused) time it started.
    #[derive(Default)]
    struct Fake {
        state: Mutex<HashMap<String, HeldSet>>,
        calls: Mutex<Vec<Call>>,
        /// Ids Security Hub refuses.
        refuse: Vec<String>,
        /// Every call fails (unreachable).
        down: bool,
    }

    impl FindingsApi for Fake {
        async fn import_findings(
            &self,
            account: &str,
            region: &str,
            findings: &[AsffFinding],
        ) -> Result<ImportOutcome, AwsError> {
            self.calls.lock().unwrap().push((
                account.to_string(),
                region.to_string(),
                findings.to_vec(),
                Instant::now(),
            ));
            if self.down {
                return Err(AwsError::Transport {
                    call: "securityhub:BatchImportFindings",
                    region: region.to_string(),
                    message: "connection refused".into(),
                });
            }
            Ok(ImportOutcome {
                failed: findings
                    .iter()
                    .filter(|f| self.refuse.contains(&f.id))
                    .map(|f| (f.id.clone(), "InvalidInput: refused".into()))
                    .collect(),
            })
        }
    }

    /// No state table: the pace is the instance's own.
    impl PaceStore for Fake {}

    impl FindingsState for Fake {
        async fn held_findings(&self, key: &str) -> Result<HeldSet, AwsError> {
            Ok(self
                .state
                .lock()
                .unwrap()
                .get(key)
                .cloned()
                .unwrap_or_default())
        }
        async fn keep_findings(
            &self,
            key: &str,
            held: &HeldSet,
            _: Option<u64>,
        ) -> Result<(), AwsError> {
            self.state
                .lock()
                .unwrap()
                .insert(key.to_string(), held.clone());
            Ok(())
        }
    }

    fn report(secret: &str, findings: &[(Code, &str)]) -> Report {
        let findings = findings
            .iter()
            .map(|(code, region)| fixtures::finding(secret, *code, Some(region), "found"))
            .collect();
        fixtures::report(secret, findings)
    }

    fn held(fake: &Fake) -> usize {
        fake.state.lock().unwrap().values().map(|h| h.len()).sum()
    }

    #[tokio::test]
    async fn findings_go_to_their_own_region_and_the_state_follows() {
        let sink = SecurityHubSink::new(Fake::default());
        let broken = report(
            "app",
            &[
                (Code::ReplicaFailed, "us-east-1"),
                (Code::KeyAwsManaged, "us-west-2"),
            ],
        );
        sink.sync(&broken).await.unwrap();
        let calls = sink.api.calls.lock().unwrap().clone();
        let regions: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(regions, ["us-east-1", "us-west-2"], "one call per Region");
        assert!(
            calls.iter().all(|c| c.0 == "123456789012"),
            "imported as the secret's own account"
        );
        assert_eq!(held(&sink.api), 2);
        let key = "shub#123456789012#us-west-2#arn:aws:secretsmanager:us-west-2:123456789012:secret:app-AbCdEf";
        assert!(sink.api.state.lock().unwrap().contains_key(key));

        // Audited again, unchanged: no call, no write.
        sink.api.calls.lock().unwrap().clear();
        assert_eq!(sink.sync(&broken).await.unwrap(), "securityhub: unchanged");
        assert!(sink.api.calls.lock().unwrap().is_empty());

        // Fixed: both resolved, nothing held.
        let receipt = sink.sync(&report("app", &[])).await.unwrap();
        assert_eq!(receipt, "securityhub: 2 imported, 2 of them resolving");
        assert_eq!(held(&sink.api), 0);
    }

    #[tokio::test]
    async fn a_healthy_secret_never_seen_failing_costs_no_import_and_no_write() {
        let sink = SecurityHubSink::new(Fake::default());
        sink.sync(&report("fine", &[])).await.unwrap();
        assert!(sink.api.calls.lock().unwrap().is_empty());
        assert!(sink.api.state.lock().unwrap().is_empty(), "no item written");
        assert!(sink.wants(&report("fine", &[])), "yet the sink sees it");
    }

    #[tokio::test]
    async fn a_refused_finding_fails_the_delivery_and_is_not_held() {
        let probe = report(
            "app",
            &[
                (Code::KeyDisabled, "us-east-1"),
                (Code::KeyDisabled, "eu-west-1"),
            ],
        );
        let ctx = Context {
            own_account: None,
            home_region: "us-west-2",
        };
        let ids: Vec<String> = asff::findings(&probe, &ctx, "t")
            .into_iter()
            .map(|f| f.id)
            .collect();
        let sink = SecurityHubSink::new(Fake {
            refuse: vec![ids[0].clone()],
            ..Fake::default()
        });
        let e = sink.sync(&probe).await.unwrap_err().to_string();
        assert!(
            e.starts_with("Security Hub: 1 of 2 findings of app were not imported; the first, replica-auditor/123456789012/"),
            "{e}"
        );
        assert!(e.ends_with("InvalidInput: refused"), "{e}");
        let state = sink.api.state.lock().unwrap();
        let kept: Vec<&String> = state.values().flat_map(|h| h.keys()).collect();
        assert_eq!(kept, [&ids[1]], "only the imported one is held");
    }

    #[tokio::test]
    async fn an_unreachable_security_hub_fails_naming_the_call_and_region_and_changes_nothing() {
        let sink = SecurityHubSink::new(Fake {
            down: true,
            ..Fake::default()
        });
        let e = sink
            .sync(&report("app", &[(Code::ReplicaFailed, "us-east-1")]))
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("securityhub:BatchImportFindings in us-east-1: could not reach the service"),
            "{e}"
        );
        assert!(sink.api.state.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn imports_are_paced_to_ten_a_second_per_account_and_region() {
        let sink = SecurityHubSink::new(Fake::default());
        let t0 = Instant::now();
        let reports: Vec<Report> = (0..25)
            .map(|i| report(&format!("s{i}"), &[(Code::KeyDisabled, "us-east-1")]))
            .collect();
        futures::future::join_all(reports.iter().map(|r| sink.sync(r))).await;
        let starts: Vec<u128> = sink
            .api
            .calls
            .lock()
            .unwrap()
            .iter()
            .map(|c| (c.3 - t0).as_millis())
            .collect();
        assert_eq!(starts.len(), 25);
        for s in &starts {
            let in_window = starts
                .iter()
                .filter(|t| **t >= *s && **t < *s + 1000)
                .count();
            assert!(
                in_window <= 10,
                "{in_window} calls within a second of {s} ms: {starts:?}"
            );
        }
        assert_eq!(
            *starts.iter().max().unwrap(),
            2400,
            "25 calls at 10/s, the first at once"
        );
    }

    #[test]
    fn a_sweep_summary_is_not_for_security_hub() {
        let sink = SecurityHubSink::new(Fake::default());
        let mut r = report("sweep", &[]);
        r.sweep = Some(crate::model::SweepSummary::default());
        assert!(!sink.wants(&r));
    }
}
