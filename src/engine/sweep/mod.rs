//! The scheduled sweep: the backstop for CloudTrail events that never
//! arrived and for keys that changed without a Secrets Manager event.
//!
//! Every secret listed in SWEEP_REGIONS is followed to its primary and
//! audited as a CloudTrail-triggered one would be, with bounded
//! concurrency. For the invocation, KMS answers are cached per Region and
//! key, and replicas come from one ListSecrets listing per Region (see
//! [`cache`]). One report per secret with findings, then one summary. New
//! work stops before the deadline; what was not reached is reported.

mod cache;
mod journals;
pub mod org;
mod pages;
mod policies;

use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::stream::FuturesUnordered;
use futures::{SinkExt, StreamExt};
use serde_json::Value;
use tracing::{info, warn};

pub use cache::{CachedKeys, ListedReplicas};
pub use policies::PolicyBook;

use self::pages::list_pages;
use super::inspect::{self, Budget, Look};
use super::{App, HandlerError, JOURNAL_READ, epoch_ms};
use crate::arn::secret_arn_in_region;
use crate::audit::REQUIRED_REGIONS_TAG;
use crate::aws::{Ports, SecretsApi};
use crate::event::Scheduled;
use crate::metrics::{Tally, trigger_dimension};
use crate::model::{
    AccountCounts, CallCounts, Code, Finding, Gap, GapKind, Lookup, SecretState, Severity,
    Snapshot, SweepSummary, now_rfc3339,
};
use crate::report::{self, Report, SecretInfo, TriggerInfo};
use crate::sinks::{Delivered, ReportSink, SinkError};

/// Told how a sweep goes (a command line's progress bar). The Lambda's
/// sweep tells `()`, which ignores it.
pub trait SweepProgress: Send + Sync {
    /// More secrets listed (a page's new primaries; their audits may start
    /// before the next page is listed).
    fn listed(&self, _secrets: usize) {}
    /// One more listed secret done: audited, passed over or not reached.
    fn done(&self) {}
}

impl SweepProgress for () {}

enum Outcome {
    /// Not started before the deadline: the primary's ARN.
    NotReached(String),
    NotReplicated,
    Gone,
    Audited(Box<Report>),
}

/// What auditing a run of primaries came to.
#[derive(Default)]
pub(crate) struct Audited {
    /// Its counts: audited, with findings, by code, published.
    pub counts: AccountCounts,
    pub metrics: Tally,
    /// Secrets (by ARN) whose report could not go out, to either topic, and why.
    pub publish_errors: Vec<(String, SinkError)>,
    /// The primaries not started before the deadline (ARNs).
    pub not_reached: Vec<String>,
}

/// What a secret becomes when the deadline kept one of its calls from
/// starting (never one that started and hung: that secret would be carried
/// over for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AtDeadline {
    /// Reported, with that check AUDIT_INCOMPLETE (the sweep of the own
    /// account).
    Report,
    /// Counted not reached, for a later invocation to audit whole (the org
    /// sweep's remainder).
    CarryOver,
}

impl<C: Ports> Sweeping<'_, C> {
    /// The calls its caches made and saved so far.
    pub fn call_counts(&self) -> CallCounts {
        let (policies_read, policies_not_due) = self.policies.totals();
        CallCounts {
            kms_calls: self.keys.calls.load(Ordering::Relaxed) as u64,
            kms_cache_hits: self.keys.hits.load(Ordering::Relaxed) as u64,
            replicas_from_listing: self.replicas.answered.load(Ordering::Relaxed) as u64,
            replica_listing_calls: self.replicas.pages.load(Ordering::Relaxed) as u64,
            policies_read,
            policies_not_due,
        }
    }
}

/// What every audit of one sweep, or of one org sweep cell, shares: the
/// clients acting in the swept account, the sweep's caches (KMS answers,
/// replicas from listings, the policy ledgers), the budget.
pub(crate) struct Sweeping<'a, C> {
    pub clients: &'a C,
    pub info: TriggerInfo,
    pub keys: CachedKeys<'a, C>,
    pub replicas: ListedReplicas<'a, C>,
    pub policies: PolicyBook<'a, C>,
    /// The remediation journal's index, read once per account and Region.
    pub journals: journals::JournalIndex<'a, C>,
    pub budget: &'a Budget,
    pub request_id: &'a str,
    pub at_deadline: AtDeadline,
}

impl Audited {
    /// Count one secret's outcome into the counts and the metrics; its
    /// report, if audited.
    fn count(&mut self, outcome: Outcome) -> Option<Box<Report>> {
        match outcome {
            Outcome::NotReached(arn) => self.not_reached.push(arn),
            Outcome::NotReplicated | Outcome::Gone => {}
            Outcome::Audited(report) => {
                self.counts.count_audit(&report.findings);
                if let Some(links) = &report.cross_account {
                    self.counts.count_cross_account(links);
                }
                self.metrics.add_audit(&report);
                return Some(report);
            }
        }
        None
    }

    /// Count what was sent.
    fn delivered(&mut self, sent: Vec<Delivered>) {
        for Delivered {
            secret,
            main,
            result,
        } in sent
        {
            match result {
                Ok(()) if main => self.counts.reports_published += 1,
                Ok(()) => {}
                Err(e) => {
                    warn!(error = %e, secret = %secret, outcome = "publish_failed", "report not published");
                    self.publish_errors.push((secret, e));
                }
            }
        }
    }

    /// The invocation's error when a report could not be published.
    pub(crate) fn publish_error(&self) -> Option<HandlerError> {
        let (_, first) = self.publish_errors.first().cloned()?;
        let mut failed: Vec<&str> = self
            .publish_errors
            .iter()
            .map(|(s, _)| s.as_str())
            .collect();
        failed.sort_unstable();
        failed.dedup();
        Some(HandlerError::SweepPublish {
            failed: failed.len(),
            total: self.counts.secrets_with_findings,
            first,
        })
    }
}

impl<C: Ports, S: ReportSink> App<C, S> {
    /// Run the sweep for one scheduled event: with SWEEP_QUEUE_URL, plan
    /// the org sweep ([`org`]); without it, sweep the own account here.
    pub async fn sweep(
        &self,
        scheduled: &Scheduled,
        budget: &Budget,
        request_id: &str,
    ) -> Result<Value, HandlerError> {
        if let Some(queue) = &self.settings.sweep.queue {
            return self.plan_org_sweep(queue, scheduled, budget).await;
        }
        self.sweep_with_progress(scheduled, budget, request_id, &())
            .await
    }

    /// [`App::sweep`], telling `progress` how it goes.
    pub async fn sweep_with_progress(
        &self,
        scheduled: &Scheduled,
        budget: &Budget,
        request_id: &str,
        progress: &dyn SweepProgress,
    ) -> Result<Value, HandlerError> {
        let started = Instant::now();
        let started_at = (epoch_ms() / 1000) as i64;
        let regions = self.sweep_regions();
        let sweeping = self.sweeping(
            &self.clients,
            schedule_info(scheduled),
            Some(started_at),
            (budget, request_id),
            AtDeadline::Report,
        );
        let listing = Listing::default();
        let mut audited = Audited::default();
        // The listing runs ahead of the audits by up to two pages.
        let (mut ahead, listed) = futures::channel::mpsc::channel(LISTED_AHEAD);
        let lister = async {
            let mut primaries =
                std::pin::pin!(self.listed_primaries(&regions, budget, progress, &listing));
            while let Some(p) = primaries.next().await {
                if ahead.send(p).await.is_err() {
                    break;
                }
            }
            drop(ahead);
        };
        let audits = self.audit_primaries(&sweeping, listed, progress, &mut audited);
        futures::join!(lister, audits);
        let calls = sweeping.call_counts();
        let Sweeping { info, policies, .. } = sweeping;
        let Listed {
            gaps,
            seen,
            cut_short,
        } = listing.into_inner();
        // A Region is complete when it was swept, listed whole, and every
        // secret was reached: only then may its ledger's mark move.
        policies
            .record(|_, region| {
                regions.iter().any(|r| r == region)
                    && !gaps.iter().any(|g| g.region == region)
                    && audited.not_reached.is_empty()
                    && !cut_short
            })
            .await;
        // Before the counts move into the summary: it names their total.
        let publish_error = audited.publish_error();
        audited.counts.secrets_seen = seen.len();
        let mut summary = SweepSummary::with_counts(regions, &audited.counts, &calls);
        summary.not_reached = audited.not_reached.len();
        let mut metrics = std::mem::take(&mut audited.metrics);
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let mut more = Vec::new();
        if cut_short {
            more.push(listing_cut_short(&summary, &self.home_region));
        }
        let summary_report = summary_report(info, &summary, &gaps, more, &self.home_region);
        info!(
            event_name = "Scheduled Event",
            secrets_seen = summary.secrets_seen,
            secrets_audited = summary.secrets_audited,
            secrets_with_findings = summary.secrets_with_findings,
            not_reached = summary.not_reached,
            reports_published = summary.reports_published,
            kms_cache_hits = summary.kms_cache_hits,
            replicas_from_listing = summary.replicas_from_listing,
            resource_policies_read = calls.policies_read,
            resource_policies_not_due = calls.policies_not_due,
            duration_ms = summary.duration_ms,
            outcome = "swept",
            "sweep summary"
        );
        // The summary report's own findings: what the sweep could not list.
        metrics.add_findings(&summary_report);
        self.emit_metrics(
            trigger_dimension(&summary_report.trigger.source),
            &metrics,
            started.elapsed(),
            Some(summary.secrets_seen as u64),
            vec![
                ("sweep_regions", serde_json::json!(summary.regions)),
                ("not_reached", serde_json::json!(summary.not_reached)),
                ("report_id", serde_json::json!(summary_report.report_id)),
                ("request_id", serde_json::json!(request_id)),
            ],
        );
        self.sink.accept(&summary_report).await?;
        if let Some(e) = publish_error {
            return Err(e);
        }
        Ok(serde_json::to_value(&summary_report).expect("a report always serialises"))
    }

    /// SWEEP_REGIONS, else the function's own.
    pub(crate) fn sweep_regions(&self) -> Vec<String> {
        if self.settings.sweep.regions.is_empty() {
            vec![self.home_region.clone()]
        } else {
            self.settings.sweep.regions.clone()
        }
    }

    /// The context of a sweep's (or a cell's) audits, acting with `clients`.
    /// `started`: when the sweep started (epoch seconds), the mark its
    /// policy ledgers may move to.
    pub(crate) fn sweeping<'a>(
        &'a self,
        clients: &'a C,
        info: TriggerInfo,
        started: Option<i64>,
        (budget, request_id): (&'a Budget, &'a str),
        at_deadline: AtDeadline,
    ) -> Sweeping<'a, C> {
        Sweeping {
            clients,
            info,
            keys: CachedKeys::new(clients),
            replicas: ListedReplicas::new(clients, *budget),
            policies: self.policy_book(started),
            journals: journals::JournalIndex::new(&self.clients, self.state_table_region()),
            budget,
            request_id,
            at_deadline,
        }
    }

    /// Audit `primaries` (ARN, Region, as they are listed) in the sweep's
    /// account, as many at once as [`InFlight`] says, through the sweep's
    /// caches, handing each report to the sink as it comes; counted into
    /// `audited`. A primary not started before the deadline is counted not
    /// reached.
    pub(crate) async fn audit_primaries(
        &self,
        sweeping: &Sweeping<'_, C>,
        primaries: impl futures::Stream<Item = (String, String)>,
        progress: &dyn SweepProgress,
        audited: &mut Audited,
    ) {
        // Reports go out while the audits go on (SNS: in PublishBatch
        // calls); the sink says what is due to be sent.
        let mut queue = S::Queue::default();
        let mut sending = FuturesUnordered::new();
        let mut primaries = std::pin::pin!(primaries);
        let mut listed_all = false;
        let mut running = FuturesUnordered::new();
        let mut in_flight = InFlight::new(self.settings.sweep.concurrency);
        loop {
            tokio::select! {
                // Room for one more audit: take the next listed primary.
                next = primaries.next(), if !listed_all && running.len() < in_flight.limit() => {
                    let Some((arn, region)) = next else {
                        listed_all = true;
                        continue;
                    };
                    running.push(async move {
                        let started = Instant::now();
                        let outcome = self.sweep_one(sweeping, &arn, &region).await;
                        (outcome, started.elapsed())
                    });
                },
                Some((outcome, took)) = running.next(), if !running.is_empty() => {
                    in_flight.observe(took);
                    progress.done();
                    let Some(report) = audited.count(outcome) else { continue };
                    if !self.sink.wants(&report) {
                        continue;
                    }
                    sending.extend(self.sink.queue(&mut queue, &report));
                },
                Some(sent) = sending.next(), if !sending.is_empty() => audited.delivered(sent),
                else => break,
            }
        }
        sending.extend(self.sink.flush(&mut queue));
        while let Some(sent) = sending.next().await {
            audited.delivered(sent);
        }
    }

    /// The primary (ARN, Region) of every secret listed in `regions`, each
    /// once, page by page as ListSecrets answers, so that the audits of a
    /// page overlap the listing of the next. The first page is asked for
    /// while the own organisation is learned (no audit starts before the
    /// trust rules are known). What was listed, and the listings that
    /// failed, go to `listing`.
    fn listed_primaries<'a>(
        &'a self,
        regions: &'a [String],
        budget: &'a Budget,
        progress: &'a dyn SweepProgress,
        listing: &'a Listing,
    ) -> impl futures::Stream<Item = (String, String)> + 'a {
        let pages = futures::stream::iter(regions).flat_map(move |region| {
            list_pages(&self.clients, budget, region, None, None).map(move |p| (region, p))
        });
        let primed = futures::stream::once(async move {
            let mut pages = Box::pin(pages);
            let first = futures::join!(pages.next(), self.own_org(budget)).0;
            futures::stream::iter(first).chain(pages)
        })
        .flatten();
        primed
            .take_while(move |(_, listed)| {
                // The deadline came: what is not listed is not reached.
                let out_of_time = listed.is_err() && budget.call_window().is_none();
                if out_of_time {
                    listing.lock().cut_short = true;
                }
                futures::future::ready(!out_of_time)
            })
            .filter_map(move |(region, listed)| {
                let new = match listed {
                    Ok((page, _)) => {
                        let new = listing.lock().take_new(page, region);
                        progress.listed(new.len());
                        Some(futures::stream::iter(new))
                    }
                    Err(gap) => {
                        listing.lock().gaps.push(gap);
                        None
                    }
                };
                futures::future::ready(new)
            })
            .flatten()
    }

    async fn sweep_one(&self, sweeping: &Sweeping<'_, C>, arn: &str, region: &str) -> Outcome {
        let Sweeping {
            clients,
            info,
            keys,
            replicas,
            policies,
            journals,
            budget,
            request_id,
            at_deadline,
        } = sweeping;
        // Stop starting new work once only the publish reserve is left.
        if budget.call_window().is_none() {
            return Outcome::NotReached(arn.to_string());
        }
        let account = crate::arn::parse_secret_arn(arn).map(|a| a.account);
        let policy = match &account {
            Some(a) => policies.check(a, region, || self.rules_fingerprint()).await,
            None => None,
        };
        let target = self.target(
            arn.to_string(),
            region.to_string(),
            account,
            Look::Listed { policy },
        );
        // The journal of a primary its index does not list is empty: no read.
        let journal = async {
            if journals.may_hold(arn, budget).await {
                self.journal(Some(arn), budget).await
            } else {
                Some(Ok(Vec::new()))
            }
        };
        let (mut snapshot, journal) = futures::join!(
            inspect::inspect_with(replicas, keys, self, &target, budget),
            journal
        );
        self.attach_journal(&mut snapshot, (Some(arn), journal), budget)
            .await;
        // A call the deadline kept from starting (never one that started and
        // hung: that secret would be carried over for ever).
        if *at_deadline == AtDeadline::CarryOver
            && snapshot.gaps.iter().any(|g| g.kind == GapKind::NotStarted)
        {
            return Outcome::NotReached(arn.to_string());
        }
        if !self.is_replicated_or_required(&snapshot) {
            return match snapshot.primary {
                Lookup::NotFound => Outcome::Gone,
                _ => Outcome::NotReplicated,
            };
        }
        let report = self
            .finish(clients, &snapshot, None, info.clone(), budget, request_id)
            .await;
        if let Some(a) = &target.account {
            let verdict = crate::ledger::verdict(&snapshot, &report.findings);
            policies.count(a, region, arn, snapshot.secret_policy_read, verdict);
        }
        Outcome::Audited(Box::new(report))
    }

    /// A sweep's policy book: the ledgers in the state table; `started`
    /// is the sweep's start, epoch seconds.
    pub(crate) fn policy_book(&self, started: Option<i64>) -> PolicyBook<'_, C> {
        PolicyBook::new(&self.clients, self.settings.sweep.policy_refresh, started)
    }

    /// The trust rules in force, as the policy ledger compares them.
    fn rules_fingerprint(&self) -> String {
        let rules = self.rules();
        crate::ledger::rules_fingerprint(
            &rules.trusted_account_ids,
            &rules.trusted_org_ids,
            self.settings.min_severity.as_str(),
            &rules.required_regions.iter().cloned().collect::<Vec<_>>(),
        )
    }

    /// Whether the sweep audits this secret: it has replicas, a
    /// required-Region rule applies to it, or it could not be looked at.
    fn is_replicated_or_required(&self, s: &Snapshot) -> bool {
        match &s.primary {
            // A secret whose replicas the auditor's remediation removed (the
            // journal), or whose journal could not be read, is reported
            // although nothing is replicated now.
            Lookup::Found(p) => {
                !p.replication.is_empty()
                    || !self.settings.rules.required_regions.is_empty()
                    || p.tags.contains_key(REQUIRED_REGIONS_TAG)
                    || !s.removed.is_empty()
                    || s.cross_account.is_some()
                    || s.gaps.iter().any(|g| g.call == JOURNAL_READ)
            }
            Lookup::NotFound => false,
            Lookup::Unknown => true,
        }
    }
}

/// What the sweep's listing found so far: every primary once, and the
/// listings that failed.
#[derive(Default)]
struct Listed {
    gaps: Vec<Gap>,
    seen: std::collections::HashSet<String>,
    /// The deadline stopped the listing before its end.
    cut_short: bool,
}

impl Listed {
    /// The primaries of a page of `region` not listed before.
    fn take_new(&mut self, page: Vec<SecretState>, region: &str) -> Vec<(String, String)> {
        page.into_iter()
            .filter_map(|l| {
                let home = l
                    .primary_region
                    .clone()
                    .unwrap_or_else(|| region.to_string());
                let arn = if home == region {
                    Some(l.arn.clone())
                } else {
                    secret_arn_in_region(&l.arn, &home)
                };
                let arn = arn.unwrap_or(l.arn);
                self.seen.insert(arn.clone()).then_some((arn, home))
            })
            .collect()
    }
}

/// [`Listed`], shared by the listing stream and the sweep.
#[derive(Default)]
struct Listing(std::sync::Mutex<Listed>);

impl Listing {
    fn lock(&self) -> std::sync::MutexGuard<'_, Listed> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn into_inner(self) -> Listed {
        self.0.into_inner().unwrap_or_else(|p| p.into_inner())
    }
}

/// Listed primaries waiting for their audit: two pages of ListSecrets.
const LISTED_AHEAD: usize = 200;

/// How many audits a sweep keeps in flight: enough for
/// [`AUDITS_PER_SECOND`] at the audit latency it observes (Little's law:
/// in flight = rate x latency), at least [`MIN_IN_FLIGHT`] and at most
/// SWEEP_CONCURRENCY. At 20 ms a call that is about 16 (what `make
/// bench-sweep` chose at that latency), at 100 ms the ceiling.
struct InFlight {
    ceiling: usize,
    /// Seconds an audit takes, a moving average; `None` before the first.
    latency: Option<f64>,
}

/// The audits a sweep aims at per second (per account; a sweep lists one
/// account). Each makes one DescribeSecret at least: 4% of the 10,000 TPS
/// that DescribeSecret shares with the applications' reads of secret
/// values, per account and Region.
pub const AUDITS_PER_SECOND: f64 = 400.0;
/// Never fewer at once (latency varies from call to call).
pub const MIN_IN_FLIGHT: usize = 2;
/// In flight before any audit has finished: what was measured best at 20 ms.
const FIRST_IN_FLIGHT: usize = 16;

impl InFlight {
    fn new(ceiling: usize) -> Self {
        InFlight {
            ceiling: ceiling.max(1),
            latency: None,
        }
    }

    fn limit(&self) -> usize {
        match self.latency {
            None => FIRST_IN_FLIGHT.min(self.ceiling),
            // Less a hair, so that float noise (16.000000000000004) is not one more.
            Some(l) => ((AUDITS_PER_SECOND * l - 1e-6).ceil() as usize)
                .max(MIN_IN_FLIGHT)
                .min(self.ceiling),
        }
    }

    fn observe(&mut self, took: std::time::Duration) {
        let t = took.as_secs_f64();
        self.latency = Some(self.latency.map_or(t, |l| 0.8 * l + 0.2 * t));
    }
}

/// The reports' trigger for a scheduled event.
fn schedule_info(scheduled: &Scheduled) -> TriggerInfo {
    TriggerInfo {
        source: "schedule".into(),
        event_name: "Scheduled Event".into(),
        event_id: scheduled.event_id.clone(),
        event_time: scheduled.time.clone(),
        region: scheduled.region.clone(),
        account: scheduled.account.clone(),
        actor: None,
        error_code: None,
    }
}

/// The summary report: `secret.name` is "sweep", `sweep` holds the counts,
/// and `findings` say what the sweep could not do (the listings that
/// failed, the secrets not reached, and `more`).
fn summary_report(
    info: TriggerInfo,
    s: &SweepSummary,
    gaps: &[Gap],
    more: Vec<Finding>,
    home_region: &str,
) -> Report {
    let key = format!("sweep:{}", s.regions.join(","));
    let incomplete =
        |kind: GapKind, region: &str, subject: &str, message: String, remediation: String| {
            let mut f = crate::audit::finding(
                &key,
                Code::AuditIncomplete,
                Some(region),
                subject,
                message,
                remediation,
            );
            f.gap_kind = Some(kind);
            f
        };
    let mut findings: Vec<Finding> = gaps
        .iter()
        .map(|g| {
            incomplete(
                g.kind,
                &g.region,
                &g.call,
                format!("The sweep could not run {} in {}: {}. Secrets there were not listed.", g.call, g.region, g.reason),
                format!("Grant the auditor's role {} (it needs Resource \"*\"), then wait for the next sweep.", g.call),
            )
        })
        .collect();
    if s.not_reached > 0 {
        findings.push(incomplete(
            GapKind::NotStarted,
            home_region,
            "not_reached",
            format!(
                "The sweep stopped before the invocation's deadline: {} of {} secrets were not reached.",
                s.not_reached, s.secrets_seen
            ),
            "Raise the function's timeout or SWEEP_CONCURRENCY, or sweep fewer Regions per schedule.".into(),
        ));
    }
    findings.extend(more);
    let mut r = report::build(
        info,
        &Snapshot::empty("sweep"),
        findings,
        Vec::new(),
        Severity::Info,
        uuid::Uuid::new_v4().to_string(),
        now_rfc3339(),
    );
    r.secret = SecretInfo {
        arn: None,
        name: "sweep".into(),
        primary_region: None,
        account: None,
    };
    r.sweep = Some(s.clone());
    r
}

/// The summary's finding when the deadline stopped the listing: the
/// secrets past it were neither listed nor audited.
fn listing_cut_short(s: &SweepSummary, home_region: &str) -> Finding {
    let mut f = crate::audit::finding(
        &format!("sweep:{}", s.regions.join(",")),
        Code::AuditIncomplete,
        Some(home_region),
        "listing_cut_short",
        format!(
            "The sweep's time ran out before ListSecrets had listed every secret in {}: {} were listed; the rest were neither listed nor audited.",
            s.regions.join(", "),
            s.secrets_seen
        ),
        "Raise the function's timeout or SWEEP_CONCURRENCY, or sweep fewer Regions per schedule."
            .into(),
    );
    f.gap_kind = Some(GapKind::TimedOut);
    f
}

/// Every page of ListSecrets in `region` (only replicas of primaries in
/// `primary_region`, when given), each handed to `page` as it arrives,
/// within the budget: the calls made, and the gap that stopped the listing
/// early, if one did.
pub(crate) async fn list_every_page<S: SecretsApi>(
    secrets: &S,
    budget: &Budget,
    region: &str,
    primary_region: Option<&str>,
    mut page: impl FnMut(Vec<SecretState>),
) -> (usize, Result<(), Gap>) {
    let mut pages = std::pin::pin!(list_pages(secrets, budget, region, primary_region, None));
    let mut calls = 0;
    while let Some(listed) = pages.next().await {
        calls += 1;
        match listed {
            Ok((secrets, _)) => page(secrets),
            Err(gap) => return (calls, Err(gap)),
        }
    }
    (calls, Ok(()))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn settled(ceiling: usize, audit: Duration) -> usize {
        let mut f = InFlight::new(ceiling);
        for _ in 0..50 {
            f.observe(audit);
        }
        f.limit()
    }

    #[test]
    fn in_flight_follows_the_latency_within_its_bounds() {
        assert_eq!(InFlight::new(64).limit(), 16, "before any audit");
        assert_eq!(InFlight::new(4).limit(), 4, "never above the ceiling");
        // Little's law at 400 audits a second.
        assert_eq!(settled(64, Duration::from_millis(40)), 16);
        assert_eq!(settled(64, Duration::from_millis(100)), 40);
        assert_eq!(settled(64, Duration::from_millis(200)), 64, "the ceiling");
        assert_eq!(settled(256, Duration::from_millis(200)), 80);
        assert_eq!(settled(64, Duration::from_micros(500)), MIN_IN_FLIGHT);
        // A moving average: one slow audit moves it a fifth of the way.
        let mut f = InFlight::new(256);
        f.observe(Duration::from_millis(50));
        f.observe(Duration::from_millis(550));
        assert_eq!(f.limit(), 60);
    }

    #[test]
    fn a_page_yields_each_primary_once_replicas_followed_home() {
        let listed = |arn: &str, primary: Option<&str>| SecretState {
            arn: arn.into(),
            primary_region: primary.map(str::to_string),
            ..SecretState::default()
        };
        let mut l = Listed::default();
        let a_west = "arn:aws:secretsmanager:us-west-2:111122223333:secret:a-AbCdEf";
        let a_east = "arn:aws:secretsmanager:us-east-1:111122223333:secret:a-AbCdEf";
        let b_east = "arn:aws:secretsmanager:us-east-1:111122223333:secret:b-AbCdEf";
        let first = l.take_new(vec![listed(a_west, Some("us-west-2"))], "us-west-2");
        assert_eq!(first, vec![(a_west.to_string(), "us-west-2".to_string())]);
        // us-east-1 lists a's replica (already seen) and b, a standalone secret.
        let second = l.take_new(
            vec![listed(a_east, Some("us-west-2")), listed(b_east, None)],
            "us-east-1",
        );
        assert_eq!(second, vec![(b_east.to_string(), "us-east-1".to_string())]);
        assert_eq!(l.seen.len(), 2);
    }
}
