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
pub mod org;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::Instant;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use serde_json::Value;
use tracing::{info, warn};

pub use cache::{CachedKeys, ListedReplicas};

use super::inspect::{self, Budget, Target};
use super::{App, HandlerError, emit_metrics, epoch_ms};
use crate::arn::secret_arn_in_region;
use crate::audit::REQUIRED_REGIONS_TAG;
use crate::aws::{KeysApi, Ports, SecretsApi};
use crate::event::Scheduled;
use crate::metrics::{Line, Tally, trigger_dimension};
use crate::model::{
    Code, Finding, Gap, Lookup, SecretState, Severity, Snapshot, SweepSummary, now_rfc3339,
};
use crate::report::{self, Report, SecretInfo, TriggerInfo};
use crate::sinks::{Delivered, ReportSink, SinkError};

/// Told how a sweep goes (a command line's progress bar). The Lambda's
/// sweep tells `()`, which ignores it.
pub trait SweepProgress: Send + Sync {
    /// The secrets listed, before their audits start.
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
    /// Its counts: audited, with findings, by code, published, not reached.
    pub summary: SweepSummary,
    pub metrics: Tally,
    /// Secrets (by ARN) whose report could not go out, to either topic, and why.
    pub publish_errors: Vec<(String, SinkError)>,
    /// The primaries not started before the deadline (ARNs).
    pub not_reached: Vec<String>,
    /// Count a secret whose audit the deadline cut short before one of its
    /// calls started as not reached, for a later invocation to audit whole
    /// (the org sweep's remainder), rather than report its AUDIT_INCOMPLETE.
    pub carry_over: bool,
}

impl Audited {
    /// Count one secret's outcome into the summary and the metrics; its
    /// report, if audited.
    fn count(&mut self, outcome: Outcome) -> Option<Box<Report>> {
        if let Outcome::NotReached(arn) = &outcome {
            self.not_reached.push(arn.clone());
        }
        count(&mut self.summary, &mut self.metrics, outcome)
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
                Ok(()) if main => self.summary.reports_published += 1,
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
            total: self.summary.secrets_with_findings,
            first,
        })
    }
}

/// Count one secret's outcome into the summary and the metrics; its
/// report, if audited.
fn count(summary: &mut SweepSummary, tally: &mut Tally, outcome: Outcome) -> Option<Box<Report>> {
    match outcome {
        Outcome::NotReached(_) => summary.not_reached += 1,
        Outcome::NotReplicated | Outcome::Gone => {}
        Outcome::Audited(report) => {
            summary.secrets_audited += 1;
            tally.add_audit(&report);
            if !report.findings.is_empty() {
                summary.secrets_with_findings += 1;
            }
            for f in &report.findings {
                *summary
                    .by_code
                    .entry(f.code.as_str().to_string())
                    .or_default() += 1;
            }
            return Some(report);
        }
    }
    None
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
        let regions = if self.settings.sweep.regions.is_empty() {
            vec![self.home_region.clone()]
        } else {
            self.settings.sweep.regions.clone()
        };
        let info = schedule_info(scheduled);

        // The own organisation is learned while the Regions are listed.
        let ((gaps, primaries), _) =
            futures::join!(self.list_primaries(&regions, budget), self.own_org(budget));
        progress.listed(primaries.len());

        let keys = CachedKeys::new(&self.clients);
        let replicas = ListedReplicas::new(&self.clients, *budget);
        let mut audited = Audited::default();
        self.audit_primaries(
            &self.clients,
            primaries.iter(),
            &info,
            (&replicas, &keys),
            (budget, request_id),
            progress,
            &mut audited,
        )
        .await;
        // Before the counts move into the summary: it names their total.
        let publish_error = audited.publish_error();
        let mut summary = SweepSummary {
            regions,
            secrets_seen: primaries.len(),
            kms_cache_hits: keys.hits.load(Ordering::Relaxed),
            kms_calls: keys.calls.load(Ordering::Relaxed),
            replicas_from_listing: replicas.answered.load(Ordering::Relaxed),
            replica_listing_calls: replicas.pages.load(Ordering::Relaxed),
            ..std::mem::take(&mut audited.summary)
        };
        let mut metrics = std::mem::take(&mut audited.metrics);
        summary.duration_ms = started.elapsed().as_millis() as u64;
        let summary_report = summary_report(info, &summary, &gaps, Vec::new(), &self.home_region);
        info!(
            event_name = "Scheduled Event",
            secrets_seen = summary.secrets_seen,
            secrets_audited = summary.secrets_audited,
            secrets_with_findings = summary.secrets_with_findings,
            not_reached = summary.not_reached,
            reports_published = summary.reports_published,
            kms_cache_hits = summary.kms_cache_hits,
            replicas_from_listing = summary.replicas_from_listing,
            duration_ms = summary.duration_ms,
            outcome = "swept",
            "sweep summary"
        );
        // The summary report's own findings: what the sweep could not list.
        metrics.add_findings(&summary_report);
        emit_metrics(
            &self.settings,
            Line {
                timestamp_ms: epoch_ms(),
                trigger: trigger_dimension(&summary_report.trigger.source),
                region: &self.home_region,
                tally: &metrics,
                duration_ms: summary.duration_ms,
                secrets_swept: Some(summary.secrets_seen as u64),
                properties: vec![
                    ("sweep_regions", serde_json::json!(summary.regions)),
                    ("not_reached", serde_json::json!(summary.not_reached)),
                    ("report_id", serde_json::json!(summary_report.report_id)),
                    ("request_id", serde_json::json!(request_id)),
                ],
            },
        );
        self.sink.accept(&summary_report).await?;
        if let Some(e) = publish_error {
            return Err(e);
        }
        Ok(serde_json::to_value(&summary_report).expect("a report always serialises"))
    }

    /// Audit `primaries` (ARN, Region) with `clients` (acting in their
    /// account), `SWEEP_CONCURRENCY` at once, through the sweep's caches,
    /// handing each report to the sink as it comes; counted into `audited`.
    /// A primary not started before the deadline is counted not reached.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn audit_primaries<'p, L: SecretsApi, K: KeysApi>(
        &self,
        clients: &C,
        primaries: impl Iterator<Item = (&'p String, &'p String)>,
        info: &TriggerInfo,
        caches: (&L, &K),
        (budget, request_id): (&Budget, &str),
        progress: &dyn SweepProgress,
        audited: &mut Audited,
    ) {
        // Reports go out while the audits go on (SNS: in PublishBatch
        // calls); the sink says what is due to be sent.
        let mut queue = S::Queue::default();
        let mut sending = FuturesUnordered::new();
        let carry_over = audited.carry_over;
        let mut audits = futures::stream::iter(primaries)
            .map(|(arn, region)| {
                self.sweep_one(
                    clients,
                    (arn, region),
                    info,
                    caches,
                    (budget, request_id),
                    carry_over,
                )
            })
            .buffer_unordered(self.settings.sweep.concurrency);
        loop {
            tokio::select! {
                next = audits.next() => match next {
                    None => break,
                    Some(outcome) => {
                        progress.done();
                        let Some(report) = audited.count(outcome) else { continue };
                        if !self.sink.wants(&report) {
                            continue;
                        }
                        sending.extend(self.sink.queue(&mut queue, &report));
                    }
                },
                Some(sent) = sending.next(), if !sending.is_empty() => audited.delivered(sent),
            }
        }
        sending.extend(self.sink.flush(&mut queue));
        while let Some(sent) = sending.next().await {
            audited.delivered(sent);
        }
    }

    /// ListSecrets in every Region; each listed secret's primary ARN and
    /// Region, and the listings that failed.
    async fn list_primaries(
        &self,
        regions: &[String],
        budget: &Budget,
    ) -> (Vec<Gap>, BTreeMap<String, String>) {
        let mut gaps = Vec::new();
        let mut primaries: BTreeMap<String, String> = BTreeMap::new(); // primary ARN -> its Region
        for region in regions {
            let pages = list_every_page(&self.clients, budget, region, None, |page| {
                for l in page {
                    let home = l.primary_region.clone().unwrap_or_else(|| region.clone());
                    let arn = if home == *region {
                        Some(l.arn.clone())
                    } else {
                        secret_arn_in_region(&l.arn, &home)
                    };
                    primaries.insert(arn.unwrap_or(l.arn), home);
                }
            })
            .await;
            if let Err(gap) = pages.1 {
                gaps.push(gap);
            }
        }
        (gaps, primaries)
    }

    async fn sweep_one<L: SecretsApi, K: KeysApi>(
        &self,
        clients: &C,
        (arn, region): (&str, &str),
        info: &TriggerInfo,
        (secrets, keys): (&L, &K),
        (budget, request_id): (&Budget, &str),
        carry_over: bool,
    ) -> Outcome {
        // Stop starting new work once only the publish reserve is left.
        if budget.call_window().is_none() {
            return Outcome::NotReached(arn.to_string());
        }
        let target = Target {
            secret_id: arn.to_string(),
            region: region.to_string(),
            account: crate::arn::parse_secret_arn(arn).map(|a| a.account),
            promotion: false,
            search_regions: Vec::new(),
            // A required-Region rule applies to every secret.
            unreplicated_too: !self.settings.rules.required_regions.is_empty(),
        };
        let snapshot = inspect::inspect(secrets, keys, &target, budget).await;
        // A call the deadline kept from starting (never one that started and
        // hung: that secret would be carried over for ever).
        if carry_over
            && snapshot
                .gaps
                .iter()
                .any(|g| g.reason.contains("not started"))
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
        Outcome::Audited(Box::new(report))
    }

    /// Whether the sweep audits this secret: it has replicas, a
    /// required-Region rule applies to it, or it could not be looked at.
    fn is_replicated_or_required(&self, s: &Snapshot) -> bool {
        match &s.primary {
            Lookup::Found(p) => {
                !p.replication.is_empty()
                    || !self.settings.rules.required_regions.is_empty()
                    || p.tags.contains_key(REQUIRED_REGIONS_TAG)
            }
            Lookup::NotFound => false,
            Lookup::Unknown => true,
        }
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
    let incomplete = |region: &str, subject: &str, message: String, remediation: String| {
        crate::audit::finding(
            &key,
            Code::AuditIncomplete,
            Some(region),
            subject,
            message,
            remediation,
        )
    };
    let mut findings: Vec<Finding> = gaps
        .iter()
        .map(|g| {
            incomplete(
                &g.region,
                &g.call,
                format!("The sweep could not run {} in {}: {}. Secrets there were not listed.", g.call, g.region, g.reason),
                format!("Grant the auditor's role {} (it needs Resource \"*\"), then wait for the next sweep.", g.call),
            )
        })
        .collect();
    if s.not_reached > 0 {
        findings.push(incomplete(
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
    let mut token = None;
    let mut calls = 0;
    loop {
        calls += 1;
        let listed = budget
            .run(
                "secretsmanager:ListSecrets",
                region,
                secrets.list_secrets(region, primary_region, token.take()),
            )
            .await;
        match listed {
            Ok((secrets, next)) => {
                page(secrets);
                match next {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => return (calls, Ok(())),
                }
            }
            Err(gap) => return (calls, Err(gap)),
        }
    }
}
