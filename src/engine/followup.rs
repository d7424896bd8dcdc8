//! The follow-up chain (issue 25, docs/freshness.md#the-follow-up-chain):
//! after a call that makes a new current version, the secret is audited
//! again from delayed messages on the follow-up queue, consumed by this
//! same function, until every replica holds the version or the limit
//! (REPLICA_LAG_SECONDS) is reached; no invocation waits. What the steps
//! are and when a chain is done is the core's ([`crate::followup`]); here
//! the chain is started beside the event's publish, and each step is run:
//! read the chain, audit the secret the one way ([`App::audit_target`]),
//! move the chain on with a conditional write, then send the next step or
//! publish the report at the limit (undoing the move if that fails, so
//! that the message's redelivery runs the step again), and measure each
//! replica that converged once.

use std::time::Instant;

use aws_lambda_events::event::sqs::SqsBatchResponse;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::inspect::{Budget, Look};
use super::{App, HandlerError};
use crate::aws::Ports;
use crate::book::{Applied, ItemUpdate};
use crate::event::{SqsRecord, Trigger};
use crate::followup::{self, Chain, Converged, Message, Next, Seen};
use crate::model::Gap;
use crate::report::TriggerInfo;
use crate::sinks::ReportSink;

const SEND: &str = "sqs:SendMessage";
const UPDATE: &str = "dynamodb:UpdateItem";
const GET: &str = "dynamodb:GetItem";

impl<C: Ports, S: ReportSink> App<C, S> {
    /// A batch of SQS records: those of the follow-up queue (by their
    /// `eventSourceARN`) are steps of a chain; the others are the org
    /// sweep's, served by it when it is configured, else refused (they
    /// fail, nothing acts on them).
    pub(super) async fn sqs_records(
        &self,
        records: &[SqsRecord],
        budget: &Budget,
        request_id: &str,
    ) -> Result<Value, HandlerError> {
        let Some(own) = self.follow_up_queue_arn() else {
            return self.sweep_cells(records, budget, request_id).await;
        };
        let (steps, others): (Vec<&SqsRecord>, Vec<&SqsRecord>) = records
            .iter()
            .partition(|r| r.event_source_arn.as_deref() == Some(own.as_str()));
        let mut response = SqsBatchResponse::default();
        for record in steps {
            if !self.follow_up(record, budget, request_id).await {
                response.add_failure(&record.message_id);
            }
        }
        if self.settings.sweep.queue.is_some() {
            let swept = self
                .cell_batch(others.into_iter(), budget, request_id)
                .await?;
            response
                .batch_item_failures
                .extend(swept.batch_item_failures);
        } else {
            for record in others {
                error!(
                    message_id = %record.message_id,
                    event_source_arn = record.event_source_arn.as_deref().unwrap_or(""),
                    follow_up_queue = %own,
                    outcome = "refused",
                    "a record not from the follow-up queue: it fails, and nothing acts on it"
                );
                response.add_failure(&record.message_id);
            }
        }
        Ok(serde_json::to_value(response).expect("a batch response always serialises"))
    }

    /// The follow-up queue's URL and Region, when there is one.
    fn follow_up_queue(&self) -> Option<(&str, &str)> {
        let q = self.settings.follow_up.as_ref()?;
        Some((&q.url, q.region.as_deref().unwrap_or(&self.home_region)))
    }

    fn follow_up_queue_arn(&self) -> Option<String> {
        let (url, region) = self.follow_up_queue()?;
        crate::arn::queue_arn(url, region)
    }

    /// The state table's Region (as gaps name it).
    fn table_region(&self) -> &str {
        self.state_table_region().unwrap_or(&self.home_region)
    }

    /// One conditional write of a chain's item, within the budget.
    async fn write_chain(&self, u: &ItemUpdate, budget: &Budget) -> Result<Applied, Gap> {
        budget
            .run(UPDATE, self.table_region(), self.clients.update_item(u))
            .await
    }

    /// Start following the version `seen` when `t` made a new one and
    /// there is a follow-up queue: the chain's conditional write and its
    /// first step's message at once (both beside the event's publish). A
    /// duplicate or redelivered event finds the chain written and starts
    /// none; the message it sent finds the chain past step 1 (or runs it,
    /// if the first delivery's message was lost) and does nothing more.
    /// Replicas holding the version already are measured once, by the
    /// delivery whose write started the chain.
    pub(super) async fn start_follow_up(
        &self,
        t: &Trigger,
        seen: Option<&Seen>,
        budget: &Budget,
    ) -> Result<(), HandlerError> {
        let (Some((url, region)), Some(seen)) = (self.follow_up_queue(), seen) else {
            return Ok(());
        };
        if !t.event.makes_new_version() || t.error_code.is_some() {
            return Ok(());
        }
        let Some(start) = followup::start(seen, self.settings.rules.replica_lag_seconds) else {
            return Ok(());
        };
        let send = async {
            match &start.first {
                Some((m, delay)) => {
                    budget
                        .run(SEND, region, self.clients.send_step(url, region, m, *delay))
                        .await
                }
                None => Ok(()),
            }
        };
        let (written, sent) = futures::join!(self.write_chain(&start.write, budget), send);
        let fail = |what: &str, gap: Gap| {
            HandlerError::FollowUp(format!(
                "{what} for version {} of {}: {}",
                seen.version, seen.secret_arn, gap.reason
            ))
        };
        sent.map_err(|g| fail("the first follow-up message not sent", g))?;
        match written.map_err(|g| fail("the follow-up chain not written", g))? {
            Applied::Done(_) => {
                info!(secret = %seen.secret_arn, version = %seen.version, first_step = start.first.is_some(), outcome = "follow_up_started", "a follow-up chain follows the new version");
                self.convergence_metrics(seen, &start.converged);
            }
            Applied::Refused(_) => {
                info!(secret = %seen.secret_arn, version = %seen.version, outcome = "follow_up_exists", "a follow-up chain already follows this version: none started");
            }
        }
        Ok(())
    }

    /// One follow-up record: whether it succeeded (a failed one is
    /// delivered again, up to the queue's maxReceiveCount).
    async fn follow_up(&self, record: &SqsRecord, budget: &Budget, request_id: &str) -> bool {
        let started = Instant::now();
        let m = match Message::parse(&record.body) {
            Ok(m) => m,
            Err(e) => {
                error!(message_id = %record.message_id, error = %e, outcome = "malformed", "not a follow-up message: the record fails (the dead-letter queue keeps it after the last delivery)");
                return false;
            }
        };
        let chain = match budget
            .run(GET, self.table_region(), self.clients.get_item(&m.key()))
            .await
        {
            Ok(item) => item.as_ref().and_then(Chain::from_item),
            Err(gap) => {
                warn!(secret = %m.secret, version = %m.version, step = m.step, reason = %gap.reason, outcome = "failed", "the follow-up chain could not be read: the step is delivered again");
                return false;
            }
        };
        let Some(chain) = chain.filter(|c| c.step == m.step) else {
            info!(secret = %m.secret, version = %m.version, step = m.step, outcome = "past", "the chain is past this step (a redelivered or duplicate message): nothing to do");
            return true;
        };
        let at = crate::arn::parse_secret_arn(&m.secret).expect("a message names a secret ARN");
        // The chain item anchors the message (only a trusted event wrote
        // it), and the account is checked again: it may have left the
        // scope since (docs/security.md).
        match self.may_act_in(&at.account, budget).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => {
                warn!(secret = %m.secret, account = %at.account, reason = %refusal, outcome = "refused", "the follow-up's account is no longer one the auditor may act in: the chain ends here");
                self.refusal_metric(&at.account);
                return true;
            }
            Err(gap) => {
                warn!(secret = %m.secret, account = %at.account, reason = %gap.reason, outcome = "failed", "could not tell whether the auditor may act in the follow-up's account: the step is delivered again");
                return false;
            }
        }
        let target = self.target(
            m.secret.clone(),
            at.region.clone(),
            Some(at.account.clone()),
            Look::Named { promotion: false },
        );
        let step_id = format!("{}#{}", m.version, m.step);
        let info = TriggerInfo {
            source: "followup".into(),
            event_name: "FollowUp".into(),
            event_id: Some(step_id.clone()),
            event_time: None,
            region: Some(at.region.clone()),
            account: Some(at.account.clone()),
            actor: None,
            error_code: None,
        };
        let (report, _, seen) = self
            .audit_target(&target, None, info, budget, request_id)
            .await;
        let lag = self.settings.rules.replica_lag_seconds;
        let look = followup::look(seen.as_ref(), &m, &chain, lag);
        match self.write_chain(&look.advance(&m), budget).await {
            Ok(Applied::Done(_)) => {}
            Ok(Applied::Refused(_)) => {
                info!(secret = %m.secret, version = %m.version, step = m.step, outcome = "past", "another delivery of this step moved the chain on: nothing more to do");
                return true;
            }
            Err(gap) => {
                warn!(secret = %m.secret, version = %m.version, step = m.step, reason = %gap.reason, outcome = "failed", "the follow-up chain could not be moved on: the step is delivered again");
                return false;
            }
        }
        if let Err(reason) = self.after_step(&m, &look.next, &report, budget).await {
            let undone = self.write_chain(&look.undo(&m), budget).await;
            warn!(secret = %m.secret, version = %m.version, step = m.step, reason = %reason, undone = undone.is_ok(), outcome = "failed", "the step's follow-through failed: the chain is moved back and the step delivered again");
            return false;
        }
        if let Some(seen) = &seen {
            self.convergence_metrics(seen, &look.converged);
        }
        info!(
            secret = %m.secret,
            version = %m.version,
            step = m.step,
            next = ?look.next,
            converged = look.converged.len(),
            findings = report.summary.count,
            codes = %report.codes().join(","),
            duration_ms = started.elapsed().as_millis() as u64,
            outcome = "followed_up",
            "follow-up step"
        );
        self.audit_metrics(&report, started, request_id, ("FollowUp", Some(&step_id)));
        true
    }

    /// What follows a step: the next step's message, or at the limit the
    /// report (its REPLICA_STALE), published like any report.
    async fn after_step(
        &self,
        m: &Message,
        next: &Next,
        report: &crate::report::Report,
        budget: &Budget,
    ) -> Result<(), String> {
        match next {
            Next::Step { step, delay } => {
                let (url, region) = self.follow_up_queue().expect("a step came from the queue");
                let message = Message::new(&m.secret, &m.version, *step);
                budget
                    .run(
                        SEND,
                        region,
                        self.clients.send_step(url, region, &message, *delay),
                    )
                    .await
                    .map_err(|g| g.reason)
            }
            Next::AtLimit => self
                .publish_if_needed(report)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            Next::Converged | Next::Superseded => Ok(()),
        }
    }

    /// One ReplicaConvergenceSeconds line per replica newly converged.
    fn convergence_metrics(&self, seen: &Seen, converged: &[Converged]) {
        for c in converged {
            self.write_emf(crate::metrics::convergence_line(
                super::epoch_ms(),
                &c.region,
                c.seconds,
                vec![
                    ("secret", json!(seen.secret_arn)),
                    ("version", json!(seen.version)),
                ],
            ));
        }
    }
}
