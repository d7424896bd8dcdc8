//! The invocation logic, independent of the Lambda runtime: bytes in,
//! report out. `main.rs` wires it to lambda_runtime.

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use tracing::{info, warn};

use crate::audit;
use crate::aws::{KeysApi, LeaseStore, OrganizationsApi, Publisher, ReplicationApi, SecretsApi};
use crate::config::{Config, Rules};
use crate::config::{Remediation, RemediationMode};
use crate::event::{self, EventError, HandledEvent, Incoming, Trigger};
use crate::inspect::{self, Budget, Target};
use crate::model::Snapshot;
use crate::publish::{self, PublishError};
use crate::rate::TokenBucket;
use crate::remediate;
use crate::report::{self, Report, TriggerInfo};

/// What fails an invocation. Its Debug form is its message, because
/// lambda_runtime logs a failed invocation's error with `{:?}`.
#[derive(thiserror::Error)]
pub enum HandlerError {
    #[error("malformed event: {0}")]
    Event(#[from] EventError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error("{failed} of {total} sweep reports could not be published; the first: {first}")]
    SweepPublish {
        failed: usize,
        total: usize,
        first: PublishError,
    },
}

impl std::fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The function: its configuration and its AWS clients, built once.
pub struct App<C> {
    pub clients: C,
    pub config: Config,
    /// The function's own Region.
    pub home_region: String,
    /// The auditor's own principal ARN (AUDITOR_ROLE_ARN, else STS at cold
    /// start): events it caused are audited but never remediated again.
    /// Unknown, remediation runs as dry-run rather than risk a loop.
    identity: Option<String>,
    /// The remediation settings in force: the configured ones, as dry-run
    /// when the identity is unknown. Derived once, by [`App::with_identity`].
    remediation: Remediation,
    /// The replication write budget (REMEDIATION_WRITES_PER_SECOND), shared
    /// by every remediation of this function instance: an invocation's
    /// concurrent sweep audits, and the invocations after it. A burst of 1
    /// keeps the writes evenly spaced within the account's shared quota.
    writes: TokenBucket,
    /// The auditor's own organisation, trusted besides TRUSTED_ORG_IDS:
    /// learned once per cold start, in the first invocation, alongside its
    /// first AWS calls (never during init, which stays free of network
    /// calls). `None` inside: in no organisation, or not learnable.
    own_org: tokio::sync::OnceCell<Option<String>>,
}

impl<C: SecretsApi + KeysApi + ReplicationApi + LeaseStore + Publisher + OrganizationsApi> App<C> {
    pub fn new(clients: C, config: Config, home_region: String) -> Self {
        let identity = config.remediation.auditor_role_arn.clone();
        let remediation = in_force(&config.remediation, identity.is_some());
        let writes = TokenBucket::new(config.remediation.writes_per_second, 1);
        App {
            clients,
            config,
            home_region,
            identity,
            remediation,
            writes,
            own_org: tokio::sync::OnceCell::new(),
        }
    }

    /// Set the auditor's own organisation instead of asking AWS for it.
    pub fn with_own_org(mut self, org: Option<String>) -> Self {
        self.own_org = tokio::sync::OnceCell::new_with(Some(org));
        self
    }

    /// The auditor's own organisation: DescribeOrganization, once per cold
    /// start. An account outside any organisation, or a denied call, is
    /// logged and kept: neither a finding nor a failure. A transient
    /// failure (throttled, unreachable, out of time) is logged and asked
    /// again by the next invocation, so one bad moment does not turn the
    /// own organisation's grants into findings for the container's life.
    pub async fn own_org(&self, budget: &Budget) -> Option<&str> {
        let call = "organizations:DescribeOrganization";
        let learn = || async {
            let asked = budget
                .run(call, &self.home_region, async {
                    Ok(self.clients.own_organization().await)
                })
                .await;
            match asked {
                Ok(Ok(Some(id))) => {
                    info!(organization = %id, "the auditor's own organisation is trusted");
                    Ok(Some(id))
                }
                Ok(Ok(None)) => {
                    info!(
                        "the auditor's account is in no organisation: only TRUSTED_ORG_IDS are trusted"
                    );
                    Ok(None)
                }
                Ok(Err(denied @ crate::aws::AwsError::AccessDenied { .. })) => {
                    warn!(call, error = %denied, "may not learn the auditor's own organisation: only TRUSTED_ORG_IDS are trusted");
                    Ok(None)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(gap) => Err(gap.reason),
            }
        };
        match self.own_org.get_or_try_init(learn).await {
            Ok(org) => org.as_deref(),
            Err(reason) => {
                warn!(call, reason = %reason, "could not learn the auditor's own organisation this time: only TRUSTED_ORG_IDS are trusted");
                None
            }
        }
    }

    /// The audit rules, with the auditor's own organisation trusted once known.
    fn rules(&self) -> std::borrow::Cow<'_, Rules> {
        match self.own_org.get().and_then(Option::as_ref) {
            Some(org) if !self.config.rules.trusted_org_ids.contains(org) => {
                let mut rules = self.config.rules.clone();
                rules.trusted_org_ids.push(org.clone());
                std::borrow::Cow::Owned(rules)
            }
            _ => std::borrow::Cow::Borrowed(&self.config.rules),
        }
    }

    /// Set the auditor's own identity (the loop guard); the remediation
    /// settings in force follow from it.
    pub fn with_identity(mut self, identity: Option<String>) -> Self {
        self.remediation = in_force(&self.config.remediation, identity.is_some());
        if self.remediation.mode != self.config.remediation.mode {
            warn!(
                "the auditor's own identity is unknown: remediation runs as dry-run (set AUDITOR_ROLE_ARN)"
            );
        }
        self.identity = identity;
        self
    }

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
            Ok(Incoming::Ignored { event_name }) => {
                info!(event_name = %event_name, outcome = "ignored", "event is not one the auditor acts on");
                return Ok(json!({"status": "ignored", "event_name": event_name}));
            }
            Err(e) => {
                warn!(error = %e, outcome = "rejected", "malformed event");
                return Err(e.into());
            }
        };
        let report = self.audit_trigger(&trigger, &budget, request_id).await;
        let published = self.publish_if_needed(&report).await?;
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
        Ok(serde_json::to_value(&report).expect("a report always serialises"))
    }

    /// Inspect and audit the secret a CloudTrail call names.
    pub async fn audit_trigger(&self, t: &Trigger, budget: &Budget, request_id: &str) -> Report {
        let region = t
            .secret
            .arn_region
            .clone()
            .or_else(|| t.region.clone())
            .unwrap_or_else(|| self.home_region.clone());
        let rules = &self.config.rules;
        let mut search_regions: Vec<String> = rules
            .allowed_regions
            .iter()
            .chain(&rules.required_regions)
            .cloned()
            .collect();
        search_regions.push(self.home_region.clone());
        search_regions.sort();
        search_regions.dedup();
        let target = Target {
            secret_id: t.secret.id.clone(),
            region,
            account: t.secret.arn_account.clone().or_else(|| t.account.clone()),
            promotion: t.event == HandledEvent::StopReplicationToReplica && t.error_code.is_none(),
            search_regions,
            unreplicated_too: true,
        };
        // The own organisation is learned alongside the first calls: no
        // extra sequential round trip.
        let (snapshot, _) = futures::join!(
            inspect::inspect(&self.clients, &self.clients, &target, budget),
            self.own_org(budget)
        );
        self.finish(
            &snapshot,
            Some(t),
            TriggerInfo::from_cloudtrail(t),
            budget,
            request_id,
        )
        .await
    }

    /// Audit a snapshot, remediate what may be, and build the report.
    pub async fn finish(
        &self,
        snapshot: &Snapshot,
        trigger: Option<&Trigger>,
        info: TriggerInfo,
        budget: &Budget,
        request_id: &str,
    ) -> Report {
        let findings = audit::audit(snapshot, trigger, &self.rules());
        let own_event = match (trigger, self.identity.as_deref()) {
            (Some(t), Some(me)) => remediate::is_own_event(&t.actor, me),
            _ => false,
        };
        let decisions = remediate::plan(snapshot, &findings, &self.remediation, own_event);
        let actions = remediate::execute(
            &self.clients,
            snapshot,
            decisions,
            &self.remediation,
            budget,
            &remediate::Invocation {
                request_id,
                writes: &self.writes,
            },
        )
        .await;
        report::build(
            info,
            snapshot,
            findings,
            actions,
            self.config.min_severity,
            uuid::Uuid::new_v4().to_string(),
            now_rfc3339(),
        )
    }

    /// Publish a report that has findings or actions; `None` when there
    /// was nothing to publish.
    pub async fn publish_if_needed(&self, report: &Report) -> Result<Option<String>, PublishError> {
        if !publish::needs_publishing(report) {
            return Ok(None);
        }
        publish::publish(&self.clients, self.config.topics(), report)
            .await
            .map(Some)
            .inspect_err(|e| warn!(error = %e, secret = %report.secret.name, outcome = "publish_failed", "report not published"))
    }
}

/// Remediation as configured, but dry-run when the auditor cannot know its
/// own events (a retry could then trigger itself forever).
fn in_force(configured: &Remediation, identity_known: bool) -> Remediation {
    let mut r = configured.clone();
    if r.mode == RemediationMode::On && !identity_known {
        r.mode = RemediationMode::DryRun;
    }
    r
}

fn outcomes(report: &Report) -> String {
    let a: Vec<String> = report
        .actions
        .iter()
        .map(|a| format!("{}:{}", a.region, a.outcome))
        .collect();
    a.join(",")
}

pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
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

impl From<HandlerError> for lambda_runtime::Diagnostic {
    fn from(e: HandlerError) -> Self {
        let error_type = match &e {
            HandlerError::Event(_) => "MalformedEvent",
            HandlerError::Publish(_) | HandlerError::SweepPublish { .. } => "PublishFailed",
        };
        lambda_runtime::Diagnostic {
            error_type: error_type.to_string(),
            error_message: e.to_string(),
        }
    }
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
    fn remediation_is_dry_run_while_the_identity_is_unknown() {
        let on = Remediation::default();
        assert_eq!(in_force(&on, true).mode, RemediationMode::On);
        assert_eq!(in_force(&on, false).mode, RemediationMode::DryRun);
        let off = Remediation {
            mode: RemediationMode::Off,
            ..Remediation::default()
        };
        assert_eq!(in_force(&off, false).mode, RemediationMode::Off);
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
