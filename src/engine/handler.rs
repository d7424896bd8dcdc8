//! One invocation, independent of the Lambda runtime: raw event bytes in,
//! report out. `src/runtime.rs` and the Lambda binary run it on
//! lambda_runtime.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tracing::{info, warn};

use super::inspect::{self, Budget, Look, Target};
use super::{App, HandlerError, outcomes};
use crate::aws::Ports;
use crate::event::{self, HandledEvent, Incoming, SecretRef, Trigger};
use crate::followup::Seen;
use crate::metrics::{Tally, trigger_dimension};
use crate::model::Snapshot;
use crate::report::{Report, TriggerInfo};
use crate::sinks::ReportSink;

impl<C: Ports, S: ReportSink> App<C, S> {
    /// Handle one raw event outside Lambda (tests, tools): a request id is made up.
    pub async fn handle(&self, raw: &[u8], budget: Budget) -> Result<Value, HandlerError> {
        let request_id = format!("local-{}", uuid::Uuid::new_v4());
        self.handle_invocation(raw, budget, &request_id).await
    }

    /// Handle one raw event of the invocation `request_id` (it owns the
    /// remediation leases it takes). `budget` bounds the AWS calls.
    pub async fn handle_invocation(
        &self,
        raw: &[u8],
        budget: Budget,
        request_id: &str,
    ) -> Result<Value, HandlerError> {
        let started = Instant::now();
        let trigger = match event::parse_bytes(raw) {
            Ok(Incoming::ApiCall(t)) => t,
            Ok(Incoming::Sweep(scheduled)) => {
                return self.sweep(&scheduled, &budget, request_id).await;
            }
            // The org sweep's queue (issue 15): one cell per record.
            // The follow-up chain's records among them: by their queue.
            Ok(Incoming::SweepCells(records)) => {
                return self.sqs_records(&records, &budget, request_id).await;
            }
            Ok(Incoming::RefreshAccounts) => return self.refresh(&budget).await,
            Ok(Incoming::Ignored { event_name }) => {
                info!(event_name = %event_name, outcome = "ignored", "event is not one the auditor acts on");
                return Ok(json!({"status": "ignored", "event_name": event_name}));
            }
            Err(e) => {
                warn!(error = %e, outcome = "rejected", "malformed event");
                return Err(e.into());
            }
        };
        // The event's own account must be one the auditor may act in, even
        // when it reports the event alone: an account outside the scope
        // gets nothing of the auditor's (docs/security.md).
        match self.may_act_in(&trigger.account, &budget).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => {
                warn!(
                    event_name = trigger.event.as_str(),
                    account = %trigger.account,
                    reason = %refusal,
                    outcome = "refused",
                    "the event's account is not one the auditor may act in"
                );
                self.refusal_metric(&trigger.account);
                return Ok(json!({
                    "status": "refused",
                    "event_name": trigger.event.as_str(),
                    "reason": refusal.to_string(),
                }));
            }
            // Organizations could not say now: Lambda retries the event.
            Err(gap) => {
                return Err(HandlerError::Scope(format!(
                    "could not tell whether the auditor may act in account {}: {}",
                    trigger.account, gap.reason
                )));
            }
        }
        let (report, policy, seen) = self.audit_trigger(&trigger, &budget, request_id).await;
        // A flag is written, and a follow-up chain started, alongside the
        // publish: no round trip of their own.
        let (published, noted, followed) = futures::join!(
            self.publish_if_needed(&report),
            self.note_policy(&report, policy),
            self.start_follow_up(&trigger, seen.as_ref(), &budget)
        );
        let published = published?;
        noted?;
        followed?;
        info!(
            event_name = trigger.event.as_str(),
            event_id = trigger.event_id.as_deref().unwrap_or(""),
            secret = %report.secret.name,
            primary_region = report.secret.primary_region.as_deref().unwrap_or(""),
            findings = report.summary.count,
            highest_severity = report.summary.highest_severity.map(|s| s.as_str()).unwrap_or("NONE"),
            codes = %report.codes().join(","),
            actions = %outcomes(&report),
            published = published.is_some(),
            message_id = published.as_deref().unwrap_or(""),
            duration_ms = started.elapsed().as_millis() as u64,
            outcome = "audited",
            "audit summary"
        );
        self.audit_metrics(
            &report,
            started,
            request_id,
            (trigger.event.as_str(), trigger.event_id.as_deref()),
        );
        Ok(serde_json::to_value(&report).expect("a report always serialises"))
    }

    /// The `AccountListRefresh` schedule's task
    /// ([`App::refresh_accounts`]): what it did, as the invocation's
    /// answer. A transient failure fails the invocation (the next tick, ten
    /// minutes on, lists again; events meanwhile list themselves if due).
    async fn refresh(&self, budget: &Budget) -> Result<Value, HandlerError> {
        use super::scope::Refreshed;
        let refreshed = self.refresh_accounts(budget).await.map_err(|gap| {
            HandlerError::Scope(format!(
                "could not refresh the organisation's account list: {}",
                gap.reason
            ))
        })?;
        let answer = match &refreshed {
            Refreshed::AccountIdsGiven => {
                json!({"status": "skipped", "reason": "ACCOUNT_IDS is set: the organisation is not listed"})
            }
            Refreshed::NotShared => {
                json!({"status": "skipped", "reason": "no state table to share a listing through"})
            }
            Refreshed::Fresh { age } => json!({"status": "fresh", "listed_seconds_ago": age}),
            Refreshed::Busy => {
                json!({"status": "skipped", "reason": "another instance is listing the organisation"})
            }
            Refreshed::Listed { accounts } => json!({"status": "listed", "accounts": accounts}),
            Refreshed::Unlisted(why) => json!({"status": "unlisted", "reason": why}),
        };
        if let Refreshed::Unlisted(why) = &refreshed {
            warn!(reason = %why, outcome = "unlisted", "the organisation's accounts cannot be listed ahead of time");
        } else {
            info!(answer = %answer, outcome = "refreshed", "the organisation's account list, refreshed ahead of time");
        }
        Ok(answer)
    }

    /// Inspect and audit the secret a CloudTrail call names: the report,
    /// its resource policy's verdict ([`crate::ledger::verdict`]), and
    /// what it saw of the current version ([`Seen`]).
    pub async fn audit_trigger(
        &self,
        t: &Trigger,
        budget: &Budget,
        request_id: &str,
    ) -> (Report, Option<bool>, Option<Seen>) {
        let info = TriggerInfo::from_cloudtrail(t);
        if let Some(owner) = t.other_owner() {
            // The caller's copy of a call on another account's secret:
            // reported from the event alone, nothing called anywhere.
            let snapshot = Snapshot::unseen(t.secret.id.clone(), owner, Vec::new());
            let report = self
                .finish(&self.clients, &snapshot, Some(t), info, budget, request_id)
                .await;
            return (report, None, None);
        }
        let promotion = t.event == HandledEvent::StopReplicationToReplica && t.error_code.is_none();
        let target = self.named_target(&t.secret, Some(&t.region), Some(&t.account), promotion);
        self.audit_target(&target, Some(t), info, budget, request_id)
            .await
    }

    /// Inspect and audit one secret (a name, looked up in the home Region,
    /// or an ARN) as a CloudTrail event naming it would, with no event: a
    /// command line's `audit`. `info` says what asked. Its resource policy
    /// is flagged in the policy ledger as an event's would be; an error
    /// when that flag could not be written.
    pub async fn audit_secret(
        &self,
        secret: &SecretRef,
        info: TriggerInfo,
        budget: &Budget,
        request_id: &str,
    ) -> Result<Report, HandlerError> {
        let started = Instant::now();
        let target = self.named_target(secret, None, None, false);
        let (report, policy, _) = self
            .audit_target(&target, None, info, budget, request_id)
            .await;
        self.audit_metrics(&report, started, request_id, ("", None));
        self.note_policy(&report, policy).await?;
        Ok(report)
    }

    /// Flag the secret in the policy ledger of its account and primary
    /// Region when this event's audit found its resource policy wanting, or
    /// could not read it. Every sweep then reads that policy again, so its
    /// finding is reported again and never resolved by a sweep that did not
    /// look. A policy read clean writes nothing: a flag it leaves behind
    /// costs the next sweep one read, and that sweep clears it. A flag that
    /// cannot be written fails the invocation, for Lambda to retry.
    async fn note_policy(
        &self,
        report: &Report,
        verdict: Option<bool>,
    ) -> Result<(), HandlerError> {
        let (Some(false), Some(arn)) = (verdict, report.secret.arn.as_deref()) else {
            return Ok(());
        };
        let Some(at) = crate::arn::parse_secret_arn(arn) else {
            return Ok(());
        };
        self.clients
            .note_policy(&at.account, &at.region, arn)
            .await
            .map_err(HandlerError::PolicyLedger)
    }

    /// The EMF line of one audit, `started` when it began; `event` is the
    /// CloudTrail event's name and id, when one asked.
    pub(super) fn audit_metrics(
        &self,
        report: &Report,
        started: Instant,
        request_id: &str,
        (event_name, event_id): (&str, Option<&str>),
    ) {
        let mut tally = Tally::default();
        tally.add_audit(report);
        self.emit_metrics(
            trigger_dimension(&report.trigger.source),
            &tally,
            started.elapsed(),
            None,
            vec![
                ("secret", json!(report.secret.name)),
                ("account", json!(report.trigger.account)),
                ("event_name", json!(event_name)),
                ("event_id", json!(event_id)),
                ("report_id", json!(report.report_id)),
                ("request_id", json!(request_id)),
            ],
        );
    }

    /// What to inspect for `secret`: an ARN's Region, else the event's
    /// `region`, else the home Region; in the event's `account` (the
    /// event path has refused an ARN of another owner already), else the
    /// ARN's (a command line's `audit`, checked when it is entered).
    fn named_target(
        &self,
        secret: &SecretRef,
        region: Option<&str>,
        account: Option<&str>,
        promotion: bool,
    ) -> Target {
        let region = secret
            .arn_region
            .as_deref()
            .or(region)
            .unwrap_or(&self.home_region)
            .to_string();
        let account = account
            .map(str::to_string)
            .or_else(|| secret.arn_account.clone());
        self.target(
            secret.id.clone(),
            region,
            account,
            Look::Named { promotion },
        )
    }

    /// Inspect and audit `target`: the report, its resource policy's
    /// verdict, and what it saw of the current version.
    pub(super) async fn audit_target(
        &self,
        target: &Target,
        trigger: Option<&Trigger>,
        info: TriggerInfo,
        budget: &Budget,
        request_id: &str,
    ) -> (Report, Option<bool>, Option<Seen>) {
        // The secret's account: the own one, or a member account entered
        // through its member role (cached across invocations). A command
        // line's ARN outside the scope (an event's own account was checked
        // before) is refused, nothing called in it; a role that cannot be
        // assumed is the gap.
        let clients = match self.in_account(target.account.as_deref(), budget).await {
            Ok(clients) => clients,
            Err(not_entered) => {
                let account = target.account.as_deref().unwrap_or_default();
                let gaps = vec![not_entered.into_gap(&self.home_region)];
                let snapshot = Snapshot::unseen(target.secret_id.clone(), account, gaps);
                let report = self
                    .finish(&self.clients, &snapshot, trigger, info, budget, request_id)
                    .await;
                return (report, None, None);
            }
        };
        // The own organisation is learned alongside the first calls: no
        // extra sequential round trip.
        // The remediation journal, read beside it when the event names the
        // primary's ARN.
        let hint = Some(target.secret_id.as_str());
        let (mut snapshot, _, journal) = futures::join!(
            inspect::inspect_with(&*clients, &*clients, self, target, budget),
            self.own_org(budget),
            self.journal(hint, budget)
        );
        self.attach_journal(&mut snapshot, (hint, journal), budget)
            .await;
        let report = self
            .finish(&clients, &snapshot, trigger, info, budget, request_id)
            .await;
        let verdict = crate::ledger::verdict(&snapshot, &report.findings);
        (report, verdict, Seen::from_snapshot(&snapshot))
    }
}

/// Used when the runtime's deadline is not a usable one.
pub const FALLBACK_BUDGET: Duration = Duration::from_secs(30);

/// The budget for an invocation whose deadline is `deadline_ms` (epoch ms).
///
/// Lambda always sends a deadline in the future. A deadline already past
/// when the invocation starts is not a real one (local emulators such as
/// `cargo lambda watch` send the timeout in ms instead): rather than
/// audit nothing, the auditor then works to [`FALLBACK_BUDGET`] and says so.
pub fn budget_for_deadline(deadline_ms: u64) -> Budget {
    let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(deadline_ms);
    let left = match deadline.duration_since(SystemTime::now()) {
        Ok(left) => left,
        Err(_) => {
            warn!(
                deadline_ms,
                fallback_s = FALLBACK_BUDGET.as_secs(),
                "invocation deadline is already past; using the fallback budget"
            );
            FALLBACK_BUDGET
        }
    };
    Budget::until(Instant::now() + left, Budget::reserve_for(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn epoch_ms(offset: i64) -> u64 {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64;
        (now + offset) as u64
    }

    #[test]
    fn budget_follows_a_real_deadline() {
        let b = budget_for_deadline(epoch_ms(10_000));
        let w = b.call_window().expect("time left");
        // 10 s minus a 2 s reserve (a fifth), give or take the test's own time.
        assert!(
            w <= Duration::from_secs(8) && w > Duration::from_millis(7_500),
            "{w:?}"
        );
        let b = budget_for_deadline(epoch_ms(400));
        assert_eq!(
            b.call_window(),
            None,
            "inside the 0.5 s minimum reserve: no new work"
        );
    }

    #[test]
    fn a_deadline_in_the_past_uses_the_fallback() {
        for deadline in [600_000, epoch_ms(-5_000)] {
            let w = budget_for_deadline(deadline)
                .call_window()
                .expect("fallback budget");
            assert!(
                w > Duration::from_secs(25) && w <= Duration::from_secs(27),
                "{w:?}"
            );
        }
    }
}
