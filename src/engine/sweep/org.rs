//! The organisation-wide sweep, fanned out over SQS (SWEEP_QUEUE_URL).
//!
//! 1. **Plan** (the scheduled event): the accounts (ACCOUNT_IDS, else
//!    Organizations ListAccounts, ACTIVE only, paced) times the Regions
//!    (SWEEP_REGIONS, else the function's own) are the cells. The plan
//!    (the sweep's head and its pages of accounts) goes into the state
//!    table first, then one planning message per page of accounts goes to
//!    the queue; each planning message's delivery sends its page's cells
//!    (SendMessageBatch, 10 per call), so no invocation sends them all.
//! 2. **Consume** (the queue's event source mapping, one record per cell):
//!    enter the cell's account through the member role, list its secrets
//!    in the cell's Region page by page and audit them with the sweep's
//!    machinery, publishing each secret's report; the cell's summary is
//!    logged, not published.
//!    - Out of time: the rest (ListSecrets' position and the primaries
//!      listed but not reached) goes back to the queue as the next part,
//!      and only what was audited is counted.
//!    - AssumeRole (or ListSecrets) denied: one AUDIT_INCOMPLETE report
//!      naming the account and the call, published, and the cell is done:
//!      a denial does not heal by retrying.
//!    - Anything else failing (throttled, unreachable, a report not
//!      published) fails the record (`batchItemFailures`), so SQS delivers
//!      it again; on the last delivery (ApproximateReceiveCount equal to
//!      SWEEP_MAX_RECEIVE_COUNT) the cell is counted failed first, then
//!      the dead-letter queue takes it.
//!    - A body that is not a cell message fails its record too: it is not
//!      ours to drop, and after the last delivery the dead-letter queue
//!      keeps it for a person to read (its alarm says so). One that still
//!      names its sweep and cell index is counted failed in its sweep.
//!    - Only the sweep queue's records (`eventSourceARN`) are served, and
//!      only cells of their sweep's plan in the state table
//!      (docs/security.md): anything else fails its own record and counts
//!      nothing, even on its last delivery.
//! 3. **Summarise**: every count is one conditional UpdateItem of the
//!    sweep's item (see `aws::SweepBook`); the delivery that sees every
//!    cell done or failed claims the summary and publishes it, once. A
//!    summary that cannot be published then goes to the sweep's close
//!    message, its own retry path, which also closes a sweep not complete
//!    by its close time as incomplete (docs/reliability.md).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsBatchResponse;
use futures::StreamExt;
use serde_json::{Value, json};
use tracing::{error, info, warn};

use super::pages::list_pages;
use super::{AtDeadline, Audited, Sweeping, schedule_info, summary_report};
use crate::arn::{parse_secret_arn, secret_arn_in_region};
use crate::aws::{Opened, Ports, SweepPlan};
use crate::book::{ACCOUNTS_PER_PAGE, SweepHead, Tally};
use crate::config::SweepQueue as QueueConfig;
use crate::engine::inspect::Budget;
use crate::engine::scope::NotEntered;
use crate::engine::{App, HandlerError, epoch_ms};
use crate::event::{Scheduled, SqsRecord};
use crate::metrics::trigger_dimension;
use crate::model::{AccountCounts, Code, Gap, GapKind, SecretState, Snapshot, now_rfc3339};
use crate::org::{
    CLOSE_AFTER_SECONDS, CLOSE_CHECK_SECONDS, CLOSE_RETRY_SECONDS, Cell, CellError, Close, Closing,
    MalformedCell, PartCount, PlanPage, Position, SweepRecord,
};
use crate::report::{Report, TriggerInfo};
use crate::sinks::ReportSink;

/// How long a sweep's item stays in the state table (TTL): long enough to
/// read back after a slow sweep, short enough to tidy itself up.
const SWEEP_ITEM_DAYS: u64 = 14;

/// What kept a counted delivery from ending well.
enum Summarise {
    /// The delivery could not be counted: the record is retried.
    NotCounted(String),
    /// Counted, but the summary could be neither published nor handed to
    /// a close message: the record is retried (its count is not repeated).
    NotHandedOn(String),
}

impl std::fmt::Display for Summarise {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Summarise::NotCounted(e) | Summarise::NotHandedOn(e) => f.write_str(e),
        }
    }
}

/// One count of the bookkeeping: which cell (its index, part and name for
/// the logs), in which sweep, and the trigger its summary names.
struct Count<'a> {
    head: &'a SweepHead,
    sweep_id: &'a str,
    cell: u32,
    part: u32,
    name: String,
    trigger: &'a Scheduled,
}

impl<'a> Count<'a> {
    fn of(cell: &'a Cell, head: &'a SweepHead) -> Count<'a> {
        Count {
            head,
            sweep_id: &cell.sweep_id,
            cell: cell.cell,
            part: cell.part,
            name: cell.cell_id(),
            trigger: &cell.trigger,
        }
    }
}

/// Why a cell's listing and audits stopped.
enum Stop {
    /// Every secret of the cell audited.
    Done,
    /// The deadline came first: the rest is the remainder.
    OutOfTime,
    /// ListSecrets was denied: the cell completes with AUDIT_INCOMPLETE.
    Denied(Gap),
}

/// What one delivery of a cell came to, when it did not fail.
struct CellRun {
    count: PartCount,
    /// The rest of the cell, when it ran out of time.
    next: Option<Cell>,
    metrics: crate::metrics::Tally,
    /// Secrets listed by this part.
    seen: u64,
}

/// The scheduled event's id names the sweep: a redelivered event
/// (EventBridge and Lambda's retries) finds its sweep planned. An id unfit
/// for a key gets a new one.
fn sweep_id(scheduled: &Scheduled) -> String {
    scheduled
        .event_id
        .clone()
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 100
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
}

impl<C: Ports, S: ReportSink> App<C, S> {
    /// Plan the org sweep for one scheduled event: list the accounts
    /// (paced), write the plan (its head and pages of accounts), send one
    /// planning message per page and the close message.
    pub async fn plan_org_sweep(
        &self,
        queue: &QueueConfig,
        scheduled: &Scheduled,
        budget: &Budget,
    ) -> Result<Value, HandlerError> {
        let started = Instant::now();
        let fail = |what: &str, e: &dyn std::fmt::Display| {
            error!(error = %e, outcome = "not_planned", "org sweep not planned: {what}");
            HandlerError::OrgSweep(format!("{what}: {e}"))
        };
        let regions = self.sweep_regions();
        let accounts = self
            .sweep_accounts(scheduled, budget)
            .await
            .map_err(|e| fail("could not list the organisation's accounts", &e))?;
        if accounts.is_empty() {
            return Err(fail(
                "no account to sweep",
                &"ListAccounts returned no ACTIVE account",
            ));
        }
        let sweep_id = sweep_id(scheduled);
        let plan = SweepPlan {
            sweep_id: sweep_id.clone(),
            accounts: accounts.clone(),
            regions: regions.clone(),
            planned_at: now_rfc3339(),
            expires_at: epoch_ms() / 1000 + SWEEP_ITEM_DAYS * 86_400,
            close_at: epoch_ms() / 1000 + CLOSE_AFTER_SECONDS,
        };
        let state_region = self.state_region();
        let opened = budget
            .run(
                "dynamodb:UpdateItem",
                &state_region,
                self.clients.open_sweep(&plan),
            )
            .await
            .map_err(|g| fail("could not write the sweep's item", &g.reason))?;
        if opened == (Opened::Existing { all_sent: true }) {
            info!(sweep_id = %sweep_id, outcome = "already_planned", "org sweep already planned: its messages were sent");
            return Ok(json!({"status": "already_planned", "sweep_id": sweep_id}));
        }
        // Planned before for other accounts: that plan stands, resent whole.
        let accounts = match opened {
            Opened::Changed => budget
                .run(
                    "dynamodb:GetItem",
                    &state_region,
                    self.clients.sweep_record(&sweep_id),
                )
                .await
                .map_err(|g| fail("could not read the sweep's plan", &g.reason))?
                .map(|r| r.accounts)
                .unwrap_or(accounts),
            _ => accounts,
        };
        // One planning message per page of accounts: each sends its page's
        // cells from its own invocation (docs/organisations.md).
        let pages = accounts.len().div_ceil(ACCOUNTS_PER_PAGE) as u32;
        let cells = accounts.len() * regions.len();
        let queue_region = queue.region.clone().unwrap_or(self.home_region.clone());
        let bodies: Vec<String> = PlanPage::plan(&sweep_id, pages, scheduled)
            .iter()
            .map(PlanPage::to_body)
            .collect();
        budget
            .run(
                "sqs:SendMessage",
                &queue_region,
                self.clients.send_cells(&queue.url, &queue_region, &bodies),
            )
            .await
            .map_err(|g| fail("could not send the planning messages", &g.reason))?;
        // The summary's own path: a close message that looks at the sweep
        // until its summary is out (a resent plan sends another: harmless).
        budget
            .run(
                "sqs:SendMessage",
                &queue_region,
                self.clients.send_later(
                    &queue.url,
                    &queue_region,
                    &Close::new(&sweep_id, scheduled).to_body(),
                    CLOSE_CHECK_SECONDS,
                ),
            )
            .await
            .map_err(|g| fail("could not send the sweep's close message", &g.reason))?;
        budget
            .run(
                "dynamodb:UpdateItem",
                &state_region,
                self.clients.sweep_sent(&sweep_id),
            )
            .await
            .map_err(|g| fail("could not mark the sweep's messages sent", &g.reason))?;
        info!(
            sweep_id = %sweep_id,
            accounts = accounts.len(),
            regions = %regions.join(","),
            cells,
            pages,
            resent = opened != Opened::New,
            duration_ms = started.elapsed().as_millis() as u64,
            outcome = "planned",
            "org sweep planned"
        );
        Ok(json!({
            "status": "planned",
            "sweep_id": sweep_id,
            "accounts": accounts,
            "regions": regions,
            "cells": cells,
            "pages": pages,
        }))
    }

    /// ACCOUNT_IDS, else the organisation's active accounts; an account
    /// in no organisation sweeps itself.
    async fn sweep_accounts(
        &self,
        scheduled: &Scheduled,
        budget: &Budget,
    ) -> Result<Vec<String>, String> {
        let only = &self.settings.accounts.only;
        if !only.is_empty() {
            let mut accounts = only.clone();
            accounts.sort();
            accounts.dedup();
            return Ok(accounts);
        }
        match self.plan_accounts(budget).await {
            Ok(Some(accounts)) => Ok(accounts),
            Ok(None) => {
                let own = scheduled.account.clone().ok_or(
                    "the account is in no organisation, and the schedule's event names no account",
                )?;
                warn!(account = %own, "the account is in no organisation: the org sweep covers it alone");
                Ok(vec![own])
            }
            Err(g) => Err(g.reason),
        }
    }

    /// Audit the cells of one batch of the sweep queue; the records that
    /// failed, for SQS to deliver again (`ReportBatchItemFailures`).
    pub async fn sweep_cells(
        &self,
        records: &[SqsRecord],
        budget: &Budget,
        request_id: &str,
    ) -> Result<Value, HandlerError> {
        let response = self.cell_batch(records.iter(), budget, request_id).await?;
        Ok(serde_json::to_value(response).expect("a batch response always serialises"))
    }

    /// A batch's records as cells (the sweep queue's only): the ones
    /// that failed.
    pub(crate) async fn cell_batch<'r>(
        &self,
        records: impl ExactSizeIterator<Item = &'r SqsRecord>,
        budget: &Budget,
        request_id: &str,
    ) -> Result<SqsBatchResponse, HandlerError> {
        if self.settings.sweep.queue.is_none() {
            error!(
                records = records.len(),
                "SQS records arrived but SWEEP_QUEUE_URL is not set"
            );
            return Err(HandlerError::OrgSweep(
                "SQS records arrived but SWEEP_QUEUE_URL is not set: a cell that runs out of time could not send its remainder".into(),
            ));
        }
        // One after the other: a cell already audits SWEEP_CONCURRENCY
        // secrets at once, and a cell that gets little time left sends its
        // remainder rather than losing it.
        let queue = self.settings.sweep.queue.as_ref().expect("checked");
        let region = queue.region.as_deref().unwrap_or(&self.home_region);
        let own_queue = crate::arn::queue_arn(&queue.url, region);
        let mut response = SqsBatchResponse::default();
        for record in records {
            // Only the sweep queue's own records: a batch made by hand
            // (an Invoke with a `Records` array) names another or none.
            if record.event_source_arn.is_none() || record.event_source_arn != own_queue {
                error!(
                    message_id = %record.message_id,
                    event_source_arn = record.event_source_arn.as_deref().unwrap_or(""),
                    sweep_queue = own_queue.as_deref().unwrap_or(""),
                    outcome = "refused",
                    "a record not from the sweep queue: it fails, and nothing is audited or counted"
                );
                response.add_failure(&record.message_id);
                continue;
            }
            if !self.sweep_cell(record, budget, request_id).await {
                response.add_failure(&record.message_id);
            }
        }
        Ok(response)
    }

    /// One record: whether it succeeded.
    async fn sweep_cell(&self, record: &SqsRecord, budget: &Budget, request_id: &str) -> bool {
        let started = Instant::now();
        if let Some(close) = Close::parse(&record.body) {
            return self.close_sweep(record, &close, budget, request_id).await;
        }
        if let Some(plan) = PlanPage::parse(&record.body) {
            return self.send_page(record, plan, budget).await;
        }
        let cell = match Cell::parse(&record.body) {
            Ok(c) => c,
            Err(e) => {
                error!(
                    message_id = %record.message_id,
                    receive_count = record.receive_count,
                    error = %e,
                    outcome = "malformed",
                    "not a cell message: the record fails (the dead-letter queue keeps it after the last delivery)"
                );
                self.count_malformed(record, budget, request_id).await;
                return false;
            }
        };
        // Only a cell of its sweep's plan in the state table is audited,
        // counted or summarised; any other fails its own record alone.
        let head = match self.clients.planned(&cell).await {
            Ok(Ok(head)) => head,
            Ok(Err(e)) => return self.not_planned(record, &cell, &e.to_string()),
            Err(e) => return self.not_planned(record, &cell, &e.to_string()),
        };
        let last_delivery = record.receive_count >= self.settings.sweep.max_receive_count;
        let outcome = match self.run_cell(&cell, budget, request_id).await {
            Ok(run) => {
                self.finish_cell((&cell, &head), run, (budget, request_id), started)
                    .await
            }
            Err(reason) => Err(reason),
        };
        let failure = match outcome {
            Ok(()) => return true,
            Err(reason) => reason,
        };
        warn!(
            sweep_id = %cell.sweep_id,
            cell = %cell.cell_id(),
            part = cell.part,
            receive_count = record.receive_count,
            last_delivery,
            error = %failure,
            outcome = "cell_failed",
            "org sweep cell failed; SQS delivers it again"
        );
        if last_delivery {
            // Counted failed first, so the summary still comes, naming it.
            match self
                .count_and_summarise(Count::of(&cell, &head), Tally::Failed, budget, request_id)
                .await
            {
                Ok(()) => {}
                Err(Summarise::NotCounted(e)) => {
                    error!(sweep_id = %cell.sweep_id, cell = %cell.cell_id(), error = %e, "a failed cell could not be counted failed: its sweep's close message counts it at the deadline");
                }
                Err(Summarise::NotHandedOn(e)) => {
                    error!(sweep_id = %cell.sweep_id, cell = %cell.cell_id(), error = %e, "the failed cell is counted, but its summary could be neither published nor handed to a close message: the sweep's first close message publishes it");
                }
            }
            let tally = crate::metrics::Tally {
                cells: Some((0, 1)),
                ..Default::default()
            };
            self.cell_metrics(&cell, &tally, 0, started, request_id);
        }
        false
    }

    /// Send the remainder (if any), count the part, publish the summary
    /// if this was the last cell; log and measure the cell.
    async fn finish_cell(
        &self,
        (cell, head): (&Cell, &SweepHead),
        run: CellRun,
        (budget, request_id): (&Budget, &str),
        started: Instant,
    ) -> Result<(), String> {
        if let Some(next) = &run.next {
            let queue = self.settings.sweep.queue.as_ref().expect("checked");
            let region = queue.region.clone().unwrap_or(self.home_region.clone());
            // Sent even when the budget is spent: losing the remainder is
            // worse than a late answer.
            self.clients
                .send_cells(&queue.url, &region, &[next.to_body()])
                .await
                .map_err(|e| format!("could not send the cell's remainder: {e}"))?;
        }
        let tally = match run.next {
            Some(_) => Tally::Part(run.count.clone()),
            None => Tally::Done(run.count.clone()),
        };
        self.count_and_summarise(Count::of(cell, head), tally, budget, request_id)
            .await
            .map_err(|e| e.to_string())?;
        let c = &run.count.secrets;
        info!(
            sweep_id = %cell.sweep_id,
            cell = %cell.cell_id(),
            part = cell.part,
            secrets_seen = run.seen,
            secrets_audited = c.secrets_audited,
            secrets_with_findings = c.secrets_with_findings,
            reports_published = c.reports_published,
            remainder = run.next.is_some(),
            outcome = if run.next.is_some() { "remainder_sent" } else { "cell_done" },
            "org sweep cell summary"
        );
        let mut metrics = run.metrics;
        metrics.cells = Some((u64::from(run.next.is_none()), 0));
        self.cell_metrics(cell, &metrics, run.seen, started, request_id);
        Ok(())
    }

    fn cell_metrics(
        &self,
        cell: &Cell,
        tally: &crate::metrics::Tally,
        seen: u64,
        started: Instant,
        request_id: &str,
    ) {
        self.emit_metrics(
            trigger_dimension("schedule"),
            tally,
            started.elapsed(),
            Some(seen),
            vec![
                ("sweep_id", json!(cell.sweep_id)),
                ("cell", json!(cell.cell_id())),
                ("part", json!(cell.part)),
                ("account", json!(cell.account)),
                ("request_id", json!(request_id)),
            ],
        );
    }

    /// Count one delivery, then publish the org summary if every cell is
    /// now done or failed and nobody has published it. Once the cell is
    /// counted, a summary that cannot be published is handed to a close
    /// message (its own retry path) and the record succeeds: the summary
    /// never goes down with a cell's record.
    async fn count_and_summarise(
        &self,
        cell: Count<'_>,
        tally: Tally,
        budget: &Budget,
        request_id: &str,
    ) -> Result<(), Summarise> {
        let head = cell.head;
        let counted = self
            .clients
            .count(head, cell.cell, cell.part, &tally)
            .await
            .map_err(|e| Summarise::NotCounted(format!("could not count the cell: {e}")))?;
        if !counted.fresh {
            info!(sweep_id = %cell.sweep_id, cell = %cell.name, part = cell.part, outcome = "already_counted", "this cell (or part) was counted by an earlier delivery");
        }
        // The head only when this count completed its shard and group.
        let Some(now) = counted.head else {
            return Ok(());
        };
        if !now.complete() || now.summary_sent.is_some() {
            return Ok(());
        }
        let Err(e) = self
            .publish_org_summary(cell.sweep_id, cell.trigger, budget, request_id)
            .await
        else {
            return Ok(());
        };
        warn!(sweep_id = %cell.sweep_id, error = %e, outcome = "summary_deferred", "the org summary could not be published now: a close message publishes it");
        self.close_later(cell.sweep_id, cell.trigger, CLOSE_RETRY_SECONDS)
            .await
            .map_err(|send| Summarise::NotHandedOn(format!("{e}; and {send}")))
    }

    /// Send the sweep's close message again, to look in `delay` seconds.
    async fn close_later(
        &self,
        sweep_id: &str,
        trigger: &Scheduled,
        delay: u32,
    ) -> Result<(), String> {
        let queue = self.settings.sweep.queue.as_ref().expect("checked");
        let region = queue.region.clone().unwrap_or(self.home_region.clone());
        self.clients
            .send_later(
                &queue.url,
                &region,
                &Close::new(sweep_id, trigger).to_body(),
                delay,
            )
            .await
            .map_err(|e| format!("could not send the sweep's close message: {e}"))
    }

    /// One delivery of a sweep's close message: whether its record
    /// succeeded. It publishes the summary once every cell is counted; at
    /// the sweep's close time it counts the missing cells failed first; it
    /// sends itself again rather than fail while the summary is not out.
    async fn close_sweep(
        &self,
        record: &SqsRecord,
        close: &Close,
        budget: &Budget,
        request_id: &str,
    ) -> bool {
        let sweep = match self.clients.sweep_head(&close.sweep_id).await {
            Ok(Some(sweep)) => sweep,
            Ok(None) => {
                error!(message_id = %record.message_id, sweep_id = %close.sweep_id, outcome = "not_planned", "a close message for a sweep that is not in the state table: the record fails");
                return false;
            }
            Err(e) => {
                warn!(sweep_id = %close.sweep_id, error = %e, "the sweep's item could not be read: SQS delivers the close message again");
                return false;
            }
        };
        let now = epoch_ms() / 1000;
        let again = match sweep.closing(now) {
            Closing::Done => return true,
            Closing::Wait(seconds) => Some(seconds),
            Closing::Publish => None,
            Closing::CloseIncomplete => self.close_incomplete(&sweep).await.err(),
        };
        let again = match again {
            Some(seconds) => seconds,
            None => match self
                .publish_org_summary(&close.sweep_id, &close.trigger, budget, request_id)
                .await
            {
                Ok(()) => return true,
                Err(e) => {
                    warn!(sweep_id = %close.sweep_id, error = %e, outcome = "summary_deferred", "the org summary could not be published now: the close message looks again");
                    CLOSE_RETRY_SECONDS
                }
            },
        };
        match self
            .close_later(&close.sweep_id, &close.trigger, again)
            .await
        {
            Ok(()) => true,
            // Not handed on: this record fails, and SQS delivers it again.
            Err(e) => {
                warn!(sweep_id = %close.sweep_id, error = %e, "the close message could not be sent on: SQS delivers this one again");
                false
            }
        }
    }

    /// A sweep past its close time: count its missing cells failed. `Err`:
    /// when to look again, as some could not be counted.
    async fn close_incomplete(&self, sweep: &SweepHead) -> Result<(), u32> {
        let record = match self.clients.assemble(sweep).await {
            Ok(r) => r,
            Err(e) => {
                warn!(sweep_id = %sweep.sweep_id, error = %e, "the sweep's bookkeeping could not be read: the close message looks again");
                return Err(CLOSE_RETRY_SECONDS);
            }
        };
        let missing = record.missing();
        warn!(sweep_id = %sweep.sweep_id, missing = missing.len(), outcome = "closed_incomplete", "the sweep is past its close time: its missing cells are counted failed");
        let mut not_counted = None;
        for c in missing {
            if let Err(e) = self.clients.count(sweep, c, 0, &Tally::Failed).await {
                not_counted = Some(e.to_string());
            }
        }
        match not_counted {
            None => Ok(()),
            Some(e) => {
                warn!(sweep_id = %sweep.sweep_id, error = %e, "a missing cell could not be counted failed: the close message looks again");
                Err(CLOSE_RETRY_SECONDS)
            }
        }
    }

    /// One delivery of a planning message: send its page's cells (the
    /// accounts from the page item the planner wrote). Whether its record
    /// succeeded. A redelivery sends them again, which the bookkeeping
    /// absorbs (a cell is counted once); one that fails on every delivery
    /// leaves its cells to the sweep's close time, which counts them failed.
    async fn send_page(
        &self,
        record: &SqsRecord,
        plan: Result<PlanPage, CellError>,
        budget: &Budget,
    ) -> bool {
        let started = Instant::now();
        let plan = match plan {
            Ok(plan) => plan,
            Err(e) => {
                error!(message_id = %record.message_id, receive_count = record.receive_count, error = %e, outcome = "malformed", "a malformed planning message: the record fails (the dead-letter queue keeps it after the last delivery)");
                return false;
            }
        };
        let cells = match self.clients.page_cells(&plan).await {
            Ok(Ok(cells)) => cells,
            Ok(Err(e)) => {
                error!(message_id = %record.message_id, sweep_id = %plan.sweep_id, page = plan.page, error = %e, outcome = "not_planned", "a planning message its sweep did not plan: the record fails, and nothing is sent");
                return false;
            }
            Err(e) => {
                warn!(sweep_id = %plan.sweep_id, page = plan.page, error = %e, "the sweep's plan could not be read: SQS delivers the planning message again");
                return false;
            }
        };
        let queue = self.settings.sweep.queue.as_ref().expect("checked");
        let region = queue.region.clone().unwrap_or(self.home_region.clone());
        // In runs, each marked sent in the page item once sent: a
        // redelivery (this invocation failed or timed out) sends only the
        // runs not marked, and SQS's duplicates stay at one run.
        for (run, mark) in cells.runs() {
            let bodies: Vec<String> = run.iter().map(Cell::to_body).collect();
            let sent = budget
                .run(
                    "sqs:SendMessage",
                    &region,
                    self.clients.send_cells(&queue.url, &region, &bodies),
                )
                .await;
            if let Err(g) = sent {
                warn!(sweep_id = %plan.sweep_id, page = plan.page, error = %g.reason, "the page's cells could not all be sent: SQS delivers the planning message again, which sends those not marked sent");
                return false;
            }
            if let Err(g) = budget
                .run(
                    "dynamodb:UpdateItem",
                    &self.state_region(),
                    self.clients.page_sent(&plan, mark),
                )
                .await
            {
                // A mark not written costs a redelivery this run again.
                warn!(sweep_id = %plan.sweep_id, page = plan.page, error = %g.reason, "the page's progress could not be marked: a redelivery would send these cells again");
            }
        }
        info!(
            sweep_id = %plan.sweep_id,
            page = plan.page,
            pages = plan.pages,
            cells = cells.cells.len(),
            resumed_at = cells.sent,
            redelivered = record.receive_count > 1,
            duration_ms = started.elapsed().as_millis() as u64,
            outcome = "page_sent",
            "org sweep page of cells sent"
        );
        true
    }

    /// A cell message that is not valid but names its sweep and cell
    /// index ([`MalformedCell`]): counted failed in its sweep, if the
    /// sweep planned that index, so its summary need not wait for the
    /// close time. The body is the same on every delivery, so it is
    /// counted on the first (the count is idempotent); the record still
    /// fails, and the dead-letter queue keeps it after the last.
    async fn count_malformed(&self, record: &SqsRecord, budget: &Budget, request_id: &str) {
        let Some(m) = MalformedCell::read(&record.body) else {
            return;
        };
        let head = match self.clients.sweep_head(&m.sweep_id).await {
            Ok(Some(head)) if u64::from(m.cell) < head.planned => head,
            Ok(_) => {
                warn!(message_id = %record.message_id, sweep_id = %m.sweep_id, cell = m.cell, outcome = "not_planned", "the malformed cell names a cell its sweep did not plan: nothing is counted");
                return;
            }
            Err(e) => {
                warn!(sweep_id = %m.sweep_id, cell = m.cell, error = %e, "the malformed cell's sweep could not be read: counted on a later delivery, or at the close time");
                return;
            }
        };
        let own = Scheduled {
            event_id: Some(m.sweep_id.clone()),
            time: None,
            region: None,
            account: None,
        };
        let count = Count {
            head: &head,
            sweep_id: &m.sweep_id,
            cell: m.cell,
            part: 0,
            name: format!("(cell #{})", m.cell),
            trigger: m.trigger.as_ref().unwrap_or(&own),
        };
        match self
            .count_and_summarise(count, Tally::Failed, budget, request_id)
            .await
        {
            Ok(()) => {
                warn!(sweep_id = %m.sweep_id, cell = m.cell, outcome = "malformed_counted_failed", "the malformed cell is counted failed in its sweep");
            }
            Err(e) => {
                error!(sweep_id = %m.sweep_id, cell = m.cell, error = %e, "the malformed cell could not be counted failed: a later delivery, or the close time, counts it");
            }
        }
    }

    /// A cell its sweep did not plan, or whose plan could not be read:
    /// its record fails, and nothing is audited or counted.
    fn not_planned(&self, record: &SqsRecord, cell: &Cell, why: &str) -> bool {
        error!(
            message_id = %record.message_id,
            sweep_id = %cell.sweep_id,
            cell = %cell.cell_id(),
            receive_count = record.receive_count,
            error = %why,
            outcome = "not_planned",
            "a cell its sweep did not plan (or whose plan could not be read): the record fails, and nothing is audited or counted"
        );
        false
    }

    /// Claim the org summary, publish it, mark it published. A claim
    /// somebody else holds means they publish it (a close message looks
    /// again if they do not); a publish that fails gives the claim back.
    async fn publish_org_summary(
        &self,
        sweep_id: &str,
        trigger: &Scheduled,
        budget: &Budget,
        request_id: &str,
    ) -> Result<(), String> {
        let now = epoch_ms() / 1000;
        // Held for the rest of the invocation and half a minute, as a
        // remediation lease is: a crashed holder's claim ends by itself.
        let hold = budget.time_left().unwrap_or(Duration::from_secs(300));
        let until = now + hold.as_secs() + 30;
        let Some(record) = self
            .clients
            .claim_summary(sweep_id, request_id, until, now)
            .await
            .map_err(|e| format!("could not claim the org summary: {e}"))?
        else {
            info!(sweep_id = %sweep_id, outcome = "summary_claimed_elsewhere", "another delivery publishes the org summary");
            return Ok(());
        };
        let report = self.org_summary_report(trigger, &record);
        let receipt = match self.sink.accept(&report).await {
            Ok(receipt) => receipt,
            Err(e) => {
                if let Err(release) = self.clients.release_summary(sweep_id, request_id).await {
                    warn!(sweep_id = %sweep_id, error = %release, "the org summary's claim could not be given back: the next delivery waits for it to end");
                }
                return Err(format!("could not publish the org summary: {e}"));
            }
        };
        if let Err(e) = self
            .clients
            .summary_sent(sweep_id, request_id, &receipt)
            .await
        {
            warn!(sweep_id = %sweep_id, error = %e, "the org summary is published but could not be marked so; a redelivery after the claim ends may publish it again");
        }
        let s = report.sweep.as_ref().expect("an org summary");
        let cells = s.cells.as_ref().expect("an org summary");
        info!(
            sweep_id = %sweep_id,
            accounts = s.accounts.as_ref().map_or(0, Vec::len),
            cells_total = cells.total,
            cells_done = cells.done,
            cells_failed = cells.failed,
            failed_cells = %cells.failed_cells.join(","),
            secrets_seen = s.secrets_seen,
            secrets_with_findings = s.secrets_with_findings,
            message_id = %receipt,
            outcome = "org_summary_published",
            "org sweep summary"
        );
        Ok(())
    }

    /// The org summary report of `record` ([`org_summary_report`]), its
    /// duration since the sweep was planned.
    fn org_summary_report(&self, trigger: &Scheduled, record: &SweepRecord) -> Report {
        let planned = record
            .head
            .planned_at
            .as_deref()
            .and_then(|t| {
                time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            })
            .map(|t| {
                (time::OffsetDateTime::now_utc() - t)
                    .whole_milliseconds()
                    .max(0) as u64
            })
            .unwrap_or(0);
        org_summary_report(
            trigger,
            record,
            planned,
            self.settings.sweep.max_receive_count,
            &self.home_region,
        )
    }

    /// Audit one delivery of a cell; `Err` (why) when it must be delivered again.
    async fn run_cell(
        &self,
        cell: &Cell,
        budget: &Budget,
        request_id: &str,
    ) -> Result<CellRun, String> {
        let info = schedule_info(&cell.trigger);
        let clients = match self.in_account(Some(&cell.account), budget).await {
            Ok(clients) => clients,
            // In the plan, but no longer one the auditor may act in (it
            // left the organisation since): the cell completes with
            // AUDIT_INCOMPLETE, as a denied role's does.
            Err(refused @ NotEntered::Refused(_)) => {
                let gap = refused.into_gap(&self.home_region);
                return self
                    .cell_not_entered(cell, gap, info, budget, request_id)
                    .await;
            }
            Err(NotEntered::Failed(gap)) if gap.kind == GapKind::AccessDenied => {
                return self
                    .cell_not_entered(cell, gap, info, budget, request_id)
                    .await;
            }
            Err(NotEntered::Failed(gap)) => return Err(gap.reason),
        };
        self.own_org(budget).await;
        // The sweep started when its schedule fired (every part of the
        // cell reads after that): the mark its ledger may move to.
        let sweeping = self.sweeping(
            &clients,
            info,
            sweep_started(&cell.trigger),
            (budget, request_id),
            AtDeadline::CarryOver,
        );
        let mut audited = Audited::default();
        let mut position = cell.position.clone();
        let (stop, seen) = self
            .audit_cell(&sweeping, cell, &mut position, &mut audited)
            .await?;
        let calls = sweeping.call_counts();
        let Sweeping { info, policies, .. } = sweeping;
        // The cell's own Region is complete once its last part listed and
        // audited every secret there.
        let done = matches!(stop, Stop::Done);
        policies
            .record(|account, region| done && account == cell.account && region == cell.region)
            .await;
        if let Some(e) = audited.publish_error() {
            return Err(e.to_string());
        }
        let count = PartCount {
            account: cell.account_index,
            secrets: AccountCounts {
                secrets_seen: seen as usize,
                ..std::mem::take(&mut audited.counts)
            },
            calls,
        };
        let next = matches!(stop, Stop::OutOfTime).then(|| cell.remainder(position));
        let mut run = CellRun {
            count,
            next,
            metrics: std::mem::take(&mut audited.metrics),
            seen,
        };
        if let Stop::Denied(gap) = stop {
            self.cell_incomplete(&mut run, cell, gap, info, budget, request_id)
                .await?;
        }
        Ok(run)
    }

    /// The cell's audits from `position` on, page by page of its Region's
    /// listing, until it is done, denied or out of time; `position` is left
    /// where a remainder goes on from. Why it stopped, and the secrets this
    /// part listed; `Err` (why) when the delivery must be made again.
    async fn audit_cell(
        &self,
        sweeping: &Sweeping<'_, C>,
        cell: &Cell,
        position: &mut Position,
        audited: &mut Audited,
    ) -> Result<(Stop, u64), String> {
        let budget = sweeping.budget;
        let regions = self.sweep_regions();
        let mut pending = std::mem::take(&mut position.pending);
        let mut seen = 0u64;
        let start = position.next_token.clone();
        let mut pages = std::pin::pin!(list_pages(
            sweeping.clients,
            budget,
            &cell.region,
            None,
            start
        ));
        let stop = loop {
            if !pending.is_empty() {
                let targets: Vec<(String, String)> = pending
                    .drain(..)
                    .filter_map(|arn| {
                        let region = parse_secret_arn(&arn)?.region;
                        Some((arn, region))
                    })
                    .collect();
                let targets = futures::stream::iter(targets);
                self.audit_primaries(sweeping, targets, &(), audited).await;
                if !audited.not_reached.is_empty() {
                    pending = std::mem::take(&mut audited.not_reached);
                    break Stop::OutOfTime;
                }
            }
            if position.listed_all {
                break Stop::Done;
            }
            if budget.call_window().is_none() {
                break Stop::OutOfTime;
            }
            // Not `listed_all`: the stream has a page (or its gap) to give.
            let Some(listed) = pages.next().await else {
                break Stop::Done;
            };
            match listed {
                Ok((page, next)) => {
                    pending = responsible(&page, &cell.region, &regions);
                    seen += pending.len() as u64;
                    position.listed_all = next.is_none();
                    position.next_token = next;
                }
                // The time ran out while listing: the rest is the remainder.
                Err(_) if budget.call_window().is_none() => break Stop::OutOfTime,
                // What was audited before stays counted with the cell.
                Err(gap) if gap.kind == GapKind::AccessDenied => {
                    break Stop::Denied(gap);
                }
                Err(gap) => return Err(gap.reason),
            }
        };
        position.pending = pending;
        Ok((stop, seen))
    }

    /// A cell whose account could not be entered for a reason retrying
    /// will not heal: done, with its AUDIT_INCOMPLETE report.
    async fn cell_not_entered(
        &self,
        cell: &Cell,
        gap: Gap,
        info: TriggerInfo,
        budget: &Budget,
        request_id: &str,
    ) -> Result<CellRun, String> {
        let mut run = CellRun {
            count: PartCount {
                account: cell.account_index,
                ..PartCount::default()
            },
            next: None,
            metrics: crate::metrics::Tally::default(),
            seen: 0,
        };
        self.cell_incomplete(&mut run, cell, gap, info, budget, request_id)
            .await?;
        Ok(run)
    }

    /// A cell that cannot be audited (further) for a reason retrying will
    /// not heal (the member role or ListSecrets denied): one AUDIT_INCOMPLETE
    /// report naming the account and the call, published, counted into
    /// `run`; the cell is done.
    async fn cell_incomplete(
        &self,
        run: &mut CellRun,
        cell: &Cell,
        gap: Gap,
        info: TriggerInfo,
        budget: &Budget,
        request_id: &str,
    ) -> Result<(), String> {
        warn!(sweep_id = %cell.sweep_id, cell = %cell.cell_id(), call = %gap.call, reason = %gap.reason, outcome = "cell_incomplete", "org sweep cell could not be audited: AUDIT_INCOMPLETE");
        let subject = format!("account {} in {}", cell.account, cell.region);
        let snapshot = Snapshot::unseen(subject, &cell.account, vec![gap]);
        let report = self
            .finish(&self.clients, &snapshot, None, info, budget, request_id)
            .await;
        let published = self
            .publish_if_needed(&report)
            .await
            .map_err(|e| format!("could not publish the cell's AUDIT_INCOMPLETE report: {e}"))?;
        run.metrics.add_findings(&report);
        let counts = &mut run.count.secrets;
        counts.count_findings(&report.findings);
        counts.reports_published += usize::from(published.is_some());
        run.next = None;
        Ok(())
    }
}

/// Failed cells given a finding each in the org summary; the rest are
/// named in `sweep.cells.failed_cells` and counted in one more finding.
pub const SUMMARY_MAX_CELL_FINDINGS: usize = 50;

/// The org summary report: the sweep summary object with its scope,
/// accounts, cells and counts per account ([`SweepRecord::summary`], its
/// lists capped to fit SNS); one AUDIT_INCOMPLETE per failed cell, the
/// first [`SUMMARY_MAX_CELL_FINDINGS`], and one for the rest.
pub fn org_summary_report(
    trigger: &Scheduled,
    record: &SweepRecord,
    duration_ms: u64,
    max_receive_count: u32,
    home_region: &str,
) -> Report {
    let summary = record.summary(duration_ms);
    let key = format!("org-sweep:{}", record.head.sweep_id);
    let finding = |region: Option<&str>, name: &str, message: String| {
        let mut f = crate::audit::finding(
            &key,
            Code::AuditIncomplete,
            region,
            name,
            message,
            "Fix what the logs name (the member role, a quota, the Region), then redrive the dead-letter queue's messages to the sweep queue, or wait for the next sweep.".into(),
        );
        // The cause is in the logs of the deliveries that failed.
        f.gap_kind = Some(GapKind::Other);
        f
    };
    let mut failed: Vec<_> = record
        .failed_cells
        .iter()
        .take(SUMMARY_MAX_CELL_FINDINGS)
        .map(|c| {
            let name = record.cell_name(*c);
            let region = record.cell(*c).map(|(_, region)| region);
            finding(region, &name, format!(
                "The org sweep could not audit {name} (account/Region): its cell failed on every delivery (SWEEP_MAX_RECEIVE_COUNT={max_receive_count}), was malformed, or had not finished when the sweep closed at its deadline. The sweep queue's dead-letter queue may hold its message, and the function's logs name the error."
            ))
        })
        .collect();
    let rest = record.failed_cells.len().saturating_sub(failed.len());
    if rest > 0 {
        failed.push(finding(None, "more failed cells", format!(
            "{rest} more cells of the org sweep failed, as above (`sweep.cells.failed_cells` names the first {}; the function's logs name every one).",
            crate::org::SUMMARY_MAX_FAILED_CELLS
        )));
    }
    summary_report(schedule_info(trigger), &summary, &[], failed, home_region)
}

/// The primaries a cell audits from one page of its Region's listing (ARNs):
/// the secrets whose primary is in the cell's Region, and the primaries of
/// replicas whose primary Region no cell of the sweep lists (another
/// Region's cell audits the others: each primary once per sweep).
fn responsible(page: &[SecretState], region: &str, sweep_regions: &[String]) -> Vec<String> {
    let mut out = BTreeSet::new();
    for s in page {
        let home = s.primary_region.as_deref().unwrap_or(region);
        if home == region {
            out.insert(s.arn.clone());
        } else if !sweep_regions.iter().any(|r| r == home)
            && let Some(arn) = secret_arn_in_region(&s.arn, home)
        {
            out.insert(arn);
        }
    }
    out.into_iter().collect()
}

/// When the sweep's schedule fired (epoch seconds, never later than now);
/// `None` when the event does not say.
fn sweep_started(trigger: &Scheduled) -> Option<i64> {
    let at = time::OffsetDateTime::parse(
        trigger.time.as_deref()?,
        &time::format_description::well_known::Rfc3339,
    )
    .ok()?;
    let now = time::OffsetDateTime::now_utc();
    Some(at.min(now).unix_timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn listed(name: &str, region: &str, primary: &str) -> SecretState {
        SecretState {
            arn: format!("arn:aws:secretsmanager:{region}:111122223333:secret:{name}-AbCdEf"),
            name: name.into(),
            region: region.into(),
            primary_region: Some(primary.into()),
            kms_key_id: None,
            rotation_enabled: false,
            tags: BTreeMap::new(),
            replication: vec![],
            last_changed: None,
            versions: Default::default(),
        }
    }

    #[test]
    fn each_primary_is_audited_by_one_cell() {
        let regions = ["us-west-2".to_string(), "us-east-1".to_string()];
        let page = [
            listed("own", "us-east-1", "us-east-1"),
            // Its primary's Region has a cell of its own.
            listed("replica-of-west", "us-east-1", "us-west-2"),
            // No cell lists eu-west-1: this cell follows it to its primary.
            listed("replica-of-eu", "us-east-1", "eu-west-1"),
        ];
        assert_eq!(
            responsible(&page, "us-east-1", &regions),
            vec![
                "arn:aws:secretsmanager:eu-west-1:111122223333:secret:replica-of-eu-AbCdEf",
                "arn:aws:secretsmanager:us-east-1:111122223333:secret:own-AbCdEf",
            ]
        );
    }
}
