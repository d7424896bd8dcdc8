//! The engine: one audit from a trigger to a report, over the adapter
//! traits (inspect, audit, remediation, sinks). Independent of the Lambda
//! runtime: [`handler`] takes raw event bytes, [`sweep`] audits every
//! secret of some Regions; `src/runtime.rs` and the binaries run them.

pub mod cross_account;
pub mod followup;
pub mod handler;
pub mod inspect;
pub mod remediate;
pub mod scope;
pub mod sweep;

use std::time::Duration;

use tracing::{info, warn};

use crate::audit;
use crate::aws::Ports;
use crate::config::{MetricsOut, Settings};
use crate::event::{EventError, Trigger};
use crate::model::{Remediation, RemediationMode, Rules, Snapshot, now_rfc3339};
use crate::rate::{SharedPace, TokenBucket};
use crate::report::{self, Report, TriggerInfo};
use crate::sinks::{Configured, ReportSink, SinkError};
pub use inspect::Budget;
use inspect::{Look, Target};

/// What fails an invocation. Its Debug form is its message, because
/// lambda_runtime logs a failed invocation's error with `{:?}`.
#[derive(thiserror::Error)]
pub enum HandlerError {
    #[error("malformed event: {0}")]
    Event(#[from] EventError),
    #[error(transparent)]
    Publish(#[from] SinkError),
    #[error("{failed} of {total} sweep reports could not be published; the first: {first}")]
    SweepPublish {
        failed: usize,
        total: usize,
        first: SinkError,
    },
    /// The org sweep could not be planned (its accounts, its item in the
    /// state table, its messages), or a batch of its cells cannot be served.
    #[error("org sweep: {0}")]
    OrgSweep(String),
    /// The policy ledger could not be kept (README "Resource policies
    /// between sweeps"): the report is out, and a retry writes it again.
    #[error("policy ledger not updated: {0}")]
    PolicyLedger(crate::aws::AwsError),
    /// Whether the event's account may be acted in could not be told now
    /// (Organizations throttled or unreachable): a retry asks again.
    #[error("account scope: {0}")]
    Scope(String),
    /// A follow-up chain could not be started (its item or its first
    /// message): the report is out, and a retry starts it.
    #[error("follow-up chain: {0}")]
    FollowUp(String),
}

impl std::fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// The shared pace of replication writes (`pace#replication#<account>#<Region>`).
pub const REPLICATION_PACE: &str = "replication";

/// The auditor: its settings, its AWS clients and the sink its reports
/// go to, built once.
pub struct App<C, S = Configured<C>> {
    pub clients: C,
    pub sink: S,
    pub settings: Settings,
    /// The function's own Region.
    pub home_region: String,
    /// The auditor's own principal ARN (AUDITOR_ROLE_ARN, else STS at cold
    /// start): events it caused are audited but never remediated again.
    /// Unknown, remediation runs as dry-run rather than risk a loop.
    identity: Option<String>,
    /// The remediation settings in force: the configured ones, as dry-run
    /// when the identity is unknown. Derived once, by [`App::with_identity`].
    remediation: Remediation,
    /// The replication write budget (REMEDIATION_WRITES_PER_SECOND per
    /// account and Region), shared through the state table by every
    /// instance of the function ([`SharedPace`]). A burst of 1 keeps the
    /// writes evenly spaced within the account's shared quota.
    writes: SharedPace,
    /// The auditor's own organisation, trusted besides TRUSTED_ORG_IDS:
    /// learned once per cold start, in the first invocation, alongside its
    /// first AWS calls (never during init, which stays free of network
    /// calls). `None` inside: in no organisation, or not learnable.
    own_org: tokio::sync::OnceCell<Option<String>>,
    /// The organisation's accounts, as last listed ([`scope`]).
    org_accounts: tokio::sync::Mutex<scope::OrgAccounts>,
    /// The pace of ListAccounts calls (ORG_LIST_ACCOUNTS_PER_SECOND), shared
    /// by the org sweep's planner and the account list of [`scope`].
    list_accounts: TokenBucket,
}

impl<C, S> App<C, S> {
    /// An app whose reports go to `sink`.
    pub fn with_sink(clients: C, sink: S, settings: Settings, home_region: String) -> Self {
        let identity = settings.remediation.auditor_role_arn.clone();
        let remediation = in_force(&settings.remediation, identity.is_some());
        let writes = SharedPace::new(
            REPLICATION_PACE,
            f64::from(settings.remediation.writes_per_second.max(1)),
            1,
        );
        let list_accounts = TokenBucket::new(settings.accounts.list_per_second, 1);
        App {
            clients,
            sink,
            settings,
            home_region,
            identity,
            remediation,
            writes,
            own_org: tokio::sync::OnceCell::new(),
            org_accounts: tokio::sync::Mutex::default(),
            list_accounts,
        }
    }

    /// The state table's Region (for errors).
    pub(crate) fn state_region(&self) -> String {
        self.settings
            .remediation
            .state_table
            .as_ref()
            .and_then(|t| t.region.clone())
            .unwrap_or_else(|| self.home_region.clone())
    }

    /// Set the auditor's own organisation instead of asking AWS for it.
    pub fn with_own_org(mut self, org: Option<String>) -> Self {
        self.own_org = tokio::sync::OnceCell::new_with(Some(org));
        self
    }

    /// The audit rules, with the auditor's own organisation trusted once known.
    fn rules(&self) -> std::borrow::Cow<'_, Rules> {
        match self.own_org.get().and_then(Option::as_ref) {
            Some(org) if !self.settings.rules.trusted_org_ids.contains(org) => {
                let mut rules = self.settings.rules.clone();
                rules.trusted_org_ids.push(org.clone());
                std::borrow::Cow::Owned(rules)
            }
            _ => std::borrow::Cow::Borrowed(&self.settings.rules),
        }
    }

    /// Set the auditor's own identity (the loop guard); the remediation
    /// settings in force follow from it.
    pub fn with_identity(mut self, identity: Option<String>) -> Self {
        self.remediation = in_force(&self.settings.remediation, identity.is_some());
        if self.remediation.mode != self.settings.remediation.mode {
            warn!(
                "the auditor's own identity is unknown: remediation runs as dry-run (set AUDITOR_ROLE_ARN)"
            );
        }
        self.identity = identity;
        self
    }
}

/// Clients acting in one account: the auditor's own, or a member
/// account's, entered through its role.
pub enum Acting<'a, C> {
    Own(&'a C),
    Member(C),
}

impl<C> std::ops::Deref for Acting<'_, C> {
    type Target = C;

    fn deref(&self) -> &C {
        match self {
            Acting::Own(c) => c,
            Acting::Member(c) => c,
        }
    }
}

impl<C: Ports, S: ReportSink> App<C, S> {
    /// The clients acting in `account`, the own ones when `None`: what the
    /// event path, the command line and the org sweep's cells audit with.
    pub async fn in_account(
        &self,
        account: Option<&str>,
        budget: &Budget,
    ) -> Result<Acting<'_, C>, scope::NotEntered> {
        match account {
            None => Ok(Acting::Own(&self.clients)),
            Some(account) => self.enter(account, budget).await.map(Acting::Member),
        }
    }

    /// The clients acting in `account` (the own credentials, or the member
    /// role's, cached per account), within the budget: the one way into an
    /// account. An account the auditor may not act in ([`scope`]) is
    /// refused before any STS call, logged and counted; a role that cannot
    /// be assumed is the gap the audit reports, named `sts:AssumeRole`.
    pub async fn enter(&self, account: &str, budget: &Budget) -> Result<C, scope::NotEntered> {
        match self.may_act_in(account, budget).await {
            Ok(Ok(())) => {}
            Ok(Err(refusal)) => {
                warn!(account, reason = %refusal, outcome = "refused", "not an account the auditor may act in: nothing called in it");
                self.refusal_metric(account);
                return Err(scope::NotEntered::Refused(refusal));
            }
            Err(gap) => return Err(scope::NotEntered::Failed(gap)),
        }
        budget
            .run(
                "sts:AssumeRole",
                &self.home_region,
                self.clients.acting_in(account),
            )
            .await
            .map_err(scope::NotEntered::Failed)
    }

    /// What to inspect: `secret_id` (a name or an ARN) looked for in
    /// `region` first, acting in `account` (the own one when `None`), as
    /// far as `look` says.
    pub(crate) fn target(
        &self,
        secret_id: String,
        region: String,
        account: Option<String>,
        look: Look,
    ) -> Target {
        let rules = &self.settings.rules;
        let (promotion, search_regions, unreplicated_too, policy) = match look {
            Look::Named { promotion } => {
                // Where a promoted secret's former primary may be.
                let mut search: Vec<String> = rules
                    .allowed_regions
                    .iter()
                    .chain(&rules.required_regions)
                    .cloned()
                    .collect();
                search.push(self.home_region.clone());
                search.sort();
                search.dedup();
                (promotion, search, true, None)
            }
            // A required-Region rule applies to every secret.
            Look::Listed { policy } => (
                false,
                Vec::new(),
                !rules.required_regions.is_empty(),
                policy,
            ),
        };
        Target {
            secret_id,
            region,
            account,
            promotion,
            search_regions,
            unreplicated_too,
            policy,
        }
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

    /// The remediation journal's entries of the secret `arn` names, when
    /// there is a state table and a full ARN to look for: read beside the
    /// inspection, so it adds no round trip when the ARN is the primary's.
    pub async fn journal(
        &self,
        arn: Option<&str>,
        budget: &Budget,
    ) -> Option<Result<Vec<crate::model::Removal>, crate::model::Gap>> {
        let region = self.state_table_region()?;
        let arn = arn.filter(|a| crate::arn::parse_secret_arn(a).is_some())?;
        Some(
            budget
                .run(JOURNAL_READ, region, self.clients.removals(arn))
                .await,
        )
    }

    /// The state table's Region (its own setting, else the function's),
    /// when there is a state table.
    pub(crate) fn state_table_region(&self) -> Option<&str> {
        let table = self.settings.remediation.state_table.as_ref()?;
        Some(table.region.as_deref().unwrap_or(&self.home_region))
    }

    /// Put the journal's entries of the snapshot's primary into it: the
    /// ones read for `read_for` when that is the primary's ARN, else read
    /// now. Settled entries ([`remediate::settled_removals`]) are cleared
    /// and left out; a journal that cannot be read is a gap
    /// (AUDIT_INCOMPLETE): a removed Region may be behind it.
    pub async fn attach_journal(
        &self,
        snapshot: &mut Snapshot,
        (read_for, read): (
            Option<&str>,
            Option<Result<Vec<crate::model::Removal>, crate::model::Gap>>,
        ),
        budget: &Budget,
    ) {
        let primary = match &snapshot.primary {
            crate::model::Lookup::Found(p) => Some(p.arn.clone()),
            crate::model::Lookup::NotFound => None,
            crate::model::Lookup::Unknown => return,
        };
        let read = match (&primary, read_for) {
            (Some(arn), Some(asked)) if arn == asked => read,
            (Some(arn), _) => self.journal(Some(arn), budget).await,
            (None, _) => read,
        };
        let entries = match read {
            None => return,
            Some(Ok(entries)) => entries,
            Some(Err(mut gap)) => {
                gap.reason = format!("the remediation journal: {}", gap.reason);
                snapshot.gaps.push(gap);
                return;
            }
        };
        snapshot.removed = entries;
        let settled: Vec<crate::model::Removal> =
            remediate::settled_removals(snapshot, &self.rules())
                .into_iter()
                .cloned()
                .collect();
        for r in &settled {
            match self.clients.settled(&r.arn, &r.region).await {
                Ok(()) => {
                    info!(secret = %r.arn, region = %r.region, "remediation journal: the Region is settled, its entry cleared")
                }
                Err(e) => {
                    warn!(secret = %r.arn, region = %r.region, error = %e, "remediation journal: a settled entry could not be cleared (the next audit clears it)")
                }
            }
        }
        snapshot.removed.retain(|r| !settled.contains(r));
    }

    /// Audit a snapshot, remediate what may be (with `clients`, acting in
    /// the secret's account), and build the report.
    pub async fn finish(
        &self,
        clients: &C,
        snapshot: &Snapshot,
        trigger: Option<&Trigger>,
        info: TriggerInfo,
        budget: &Budget,
        request_id: &str,
    ) -> Report {
        let findings = audit::audit(snapshot, trigger, &self.rules());
        // The loop guard: an event the auditor caused, with its own role
        // or the member role of the account the event (and the secret)
        // belongs to; a same-named role elsewhere is not the auditor.
        let own_event = trigger.is_some_and(|t| {
            self.identity
                .as_deref()
                .is_some_and(|me| remediate::is_own_event(&t.actor, me))
                || remediate::is_member_role_event(
                    &t.actor,
                    &self.settings.accounts.member_role_name,
                    &t.account,
                )
        });
        let decisions = remediate::plan(snapshot, &findings, &self.remediation, own_event);
        let actions = remediate::execute(
            clients,
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
            self.settings.min_severity,
            uuid::Uuid::new_v4().to_string(),
            now_rfc3339(),
        )
    }

    /// Hand a report to the sink when it wants it (SNS: findings or
    /// actions; Security Hub: every audited secret); `None` when it did not.
    pub async fn publish_if_needed(&self, report: &Report) -> Result<Option<String>, SinkError> {
        if !self.sink.wants(report) {
            return Ok(None);
        }
        self.sink
            .accept(report)
            .await
            .map(Some)
            .inspect_err(|e| warn!(error = %e, secret = %report.secret.name, outcome = "publish_failed", "report not published"))
    }
}

impl<C, S> App<C, S> {
    /// The EMF line of one refused account ([`scope`]).
    fn refusal_metric(&self, account: &str) {
        let tally = crate::metrics::Tally {
            refused: Some(1),
            ..Default::default()
        };
        self.emit_metrics(
            crate::metrics::trigger_dimension(""),
            &tally,
            Duration::ZERO,
            None,
            vec![("account", serde_json::json!(account))],
        );
    }

    /// Write one EMF line (the one way every path measures itself): `tally`
    /// for `trigger` (a [`crate::metrics::trigger_dimension`]), `took` its
    /// duration, `secrets_swept` a sweep's listed secrets, `properties` its
    /// searchable log fields. One write of the whole line under the
    /// stream's lock, so it cannot interleave with a tracing line.
    fn emit_metrics(
        &self,
        trigger: &'static str,
        tally: &crate::metrics::Tally,
        took: Duration,
        secrets_swept: Option<u64>,
        properties: Vec<(&'static str, serde_json::Value)>,
    ) {
        let line = crate::metrics::Line {
            timestamp_ms: epoch_ms(),
            trigger,
            region: &self.home_region,
            tally,
            duration_ms: took.as_millis() as u64,
            secrets_swept,
            properties,
        };
        self.write_emf(line.to_json());
    }

    /// Write one EMF object on a line of its own where METRICS says.
    fn write_emf(&self, doc: serde_json::Value) {
        use std::io::Write;
        let text = format!("{doc}\n");
        let written = match self.settings.metrics {
            MetricsOut::Off => return,
            MetricsOut::Stdout => {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes()).and_then(|()| out.flush())
            }
            MetricsOut::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
        if let Err(e) = written {
            warn!(error = %e, "metrics line not written");
        }
    }
}

/// The call that reads the remediation journal, as its gaps name it.
pub const JOURNAL_READ: &str = "dynamodb:GetItem";

/// Remediation as configured, but dry-run when the auditor cannot know its
/// own events (a retry could then trigger itself forever).
fn in_force(configured: &Remediation, identity_known: bool) -> Remediation {
    let mut r = configured.clone();
    if r.mode == RemediationMode::On && !identity_known {
        r.mode = RemediationMode::DryRun;
    }
    r
}

/// Write one CloudWatch EMF line where METRICS says: on the Lambda's
/// stdout, a raw JSON object on a line of its own, apart from the tracing
/// log lines, because CloudWatch Logs extracts EMF only from a log event
/// whose message is the whole JSON object (Lambda's JSON LogFormat leaves
/// a line that already is a JSON object as it is, without wrapping it).
/// Epoch milliseconds now (the EMF Timestamp).
fn epoch_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn outcomes(report: &Report) -> String {
    let a: Vec<String> = report
        .actions
        .iter()
        .map(|a| format!("{}:{}", a.region, a.outcome))
        .collect();
    a.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
