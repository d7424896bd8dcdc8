//! CloudWatch metrics as Embedded Metric Format (EMF) log lines: what one
//! audit, or one sweep, came to, as one JSON object that CloudWatch Logs
//! turns into metrics. No agent and no PutMetricData: Lambda sends stdout
//! to CloudWatch Logs, which extracts the metrics.
//!
//! Spec: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>.
//! Root `_aws` holds `Timestamp` (epoch ms) and `CloudWatchMetrics`
//! (directives: `Namespace`, `Dimensions`, `Metrics`); every metric and
//! dimension a directive names is a root member; metric values are
//! numbers. Dimensions are low-cardinality only (the trigger and the
//! function's Region): a secret's name or an account id would make a
//! metric per secret or account, so they are plain properties.

use serde_json::{Map, Value, json};

use crate::model::{ActionOutcome, Code, GapKind, Severity};
use crate::report::Report;

/// The namespace of every metric (spec: 1 to 255 characters of `[a-zA-Z0-9._#:/-]`).
pub const NAMESPACE: &str = "ReplicaAuditor";
/// Metrics per EMF object, the limit AWS's own EMF libraries keep.
pub const MAX_METRICS: usize = 100;
/// Dimensions of every metric: one dimension set.
pub const DIMENSIONS: [&str; 2] = ["Trigger", "Region"];

/// Audits made (one per audited secret).
pub const AUDITS: &str = "Audits";
/// How long an audit (or a whole sweep) took.
pub const AUDIT_DURATION: &str = "AuditDuration";
/// Secrets a sweep listed.
pub const SECRETS_SWEPT: &str = "SecretsSwept";
/// Org sweep cells an invocation completed (audited, or completed with
/// AUDIT_INCOMPLETE when the member role was denied).
pub const CELLS_DONE: &str = "CellsDone";
/// Org sweep cells an invocation counted failed (their last delivery failed).
pub const CELLS_FAILED: &str = "CellsFailed";

/// Accounts an invocation refused to act in (not its own, not in
/// ACCOUNT_IDS, not in its organisation): nothing was called in them.
pub const ACCOUNTS_REFUSED: &str = "AccountsRefused";

/// REPLICA_STALE findings (docs/freshness.md), on the dimension set
/// [`REGION_DIMENSIONS`] alone (the function's Region), so that one alarm
/// watches them whatever the trigger, without SEARCH.
pub const REPLICA_STALE: &str = "ReplicaStale";
/// Seconds from a new version to the follow-up look that saw a replica
/// hold it, once per replica (docs/freshness.md#the-follow-up-chain): on
/// [`REGION_DIMENSIONS`], Region being the replica's.
pub const REPLICA_CONVERGENCE_SECONDS: &str = "ReplicaConvergenceSeconds";
/// The dimension set of [`REPLICA_STALE`] and [`REPLICA_CONVERGENCE_SECONDS`].
pub const REGION_DIMENSIONS: [&str; 1] = ["Region"];

/// The metrics on [`REGION_DIMENSIONS`] (the dashboard shows them too).
pub fn region_metric_names() -> Vec<&'static str> {
    vec![REPLICA_STALE, REPLICA_CONVERGENCE_SECONDS]
}

/// Findings by severity.
pub const FINDINGS: [(Severity, &str); 5] = [
    (Severity::Critical, "FindingsCritical"),
    (Severity::High, "FindingsHigh"),
    (Severity::Medium, "FindingsMedium"),
    (Severity::Low, "FindingsLow"),
    (Severity::Info, "FindingsInfo"),
];

/// What kind of AWS call error left a check undone (an AUDIT_INCOMPLETE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    AccessDenied,
    Throttled,
    Service,
    Transport,
    Timeout,
}

/// AWS call errors by kind.
pub const AWS_CALL_ERRORS: [(ErrorKind, &str); 5] = [
    (ErrorKind::AccessDenied, "AwsCallErrorsAccessDenied"),
    (ErrorKind::Throttled, "AwsCallErrorsThrottled"),
    (ErrorKind::Service, "AwsCallErrorsService"),
    (ErrorKind::Transport, "AwsCallErrorsTransport"),
    (ErrorKind::Timeout, "AwsCallErrorsTimeout"),
];

/// Remediation actions by outcome.
pub const REMEDIATION_OUTCOMES: [(ActionOutcome, &str); 5] = [
    (ActionOutcome::InSync, "RemediationInSync"),
    (ActionOutcome::InProgress, "RemediationInProgress"),
    (ActionOutcome::Failed, "RemediationFailed"),
    (ActionOutcome::Skipped, "RemediationSkipped"),
    (ActionOutcome::DryRun, "RemediationDryRun"),
];

/// Every metric name the auditor emits (the dashboard shows them all).
pub fn metric_names() -> Vec<&'static str> {
    let mut names = vec![
        AUDITS,
        AUDIT_DURATION,
        SECRETS_SWEPT,
        CELLS_DONE,
        CELLS_FAILED,
        ACCOUNTS_REFUSED,
    ];
    names.extend(FINDINGS.iter().map(|(_, n)| *n));
    names.extend(AWS_CALL_ERRORS.iter().map(|(_, n)| *n));
    names.extend(REMEDIATION_OUTCOMES.iter().map(|(_, n)| *n));
    names
}

impl From<GapKind> for ErrorKind {
    /// The metric an AUDIT_INCOMPLETE of this kind is counted in.
    fn from(kind: GapKind) -> ErrorKind {
        match kind {
            GapKind::AccessDenied => ErrorKind::AccessDenied,
            GapKind::Throttled => ErrorKind::Throttled,
            GapKind::Unreachable => ErrorKind::Transport,
            GapKind::TimedOut | GapKind::NotStarted => ErrorKind::Timeout,
            GapKind::NotFound | GapKind::Refused | GapKind::Other => ErrorKind::Service,
        }
    }
}

/// Where the audit came from, as the `Trigger` dimension: `cloudtrail`,
/// `schedule` or `cli`.
pub fn trigger_dimension(source: &str) -> &'static str {
    match source {
        "schedule" => "schedule",
        "cli" => "cli",
        "followup" => "followup",
        _ => "cloudtrail",
    }
}

/// Counts gathered from one or more reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tally {
    pub audits: u64,
    pub findings: [u64; 5],
    pub errors: [u64; 5],
    pub outcomes: [u64; 5],
    /// An org sweep cell invocation's (done, failed) cells; `None` on
    /// every other line.
    pub cells: Option<(u64, u64)>,
    /// Accounts refused ([`ACCOUNTS_REFUSED`]); `None` on lines of
    /// invocations that refused none.
    pub refused: Option<u64>,
    /// REPLICA_STALE findings ([`REPLICA_STALE`]).
    pub stale: u64,
}

impl Tally {
    /// Count one audited secret's report.
    pub fn add_audit(&mut self, report: &Report) {
        self.audits += 1;
        self.add_findings(report);
    }

    /// Count a report's findings, its AUDIT_INCOMPLETE errors and its
    /// remediation outcomes (a sweep's summary report: its listing gaps),
    /// without counting an audit.
    pub fn add_findings(&mut self, report: &Report) {
        for f in &report.findings {
            if f.code == Code::ReplicaStale {
                self.stale += 1;
            }
            if let Some(i) = FINDINGS.iter().position(|(s, _)| *s == f.severity) {
                self.findings[i] += 1;
            }
            if f.code == Code::AuditIncomplete {
                // A finding made elsewhere without a kind (none today) is
                // counted as a service error.
                let kind = f.gap_kind.map_or(ErrorKind::Service, ErrorKind::from);
                if let Some(i) = AWS_CALL_ERRORS.iter().position(|(k, _)| *k == kind) {
                    self.errors[i] += 1;
                }
            }
        }
        for a in &report.actions {
            if let Some(i) = REMEDIATION_OUTCOMES
                .iter()
                .position(|(o, _)| *o == a.outcome)
            {
                self.outcomes[i] += 1;
            }
        }
    }
}

/// What one EMF line says.
#[derive(Debug, Clone)]
pub struct Line<'a> {
    /// Epoch milliseconds.
    pub timestamp_ms: u64,
    /// [`trigger_dimension`].
    pub trigger: &'static str,
    /// The function's Region.
    pub region: &'a str,
    pub tally: &'a Tally,
    pub duration_ms: u64,
    /// A sweep's listed secrets; `None` for one audit.
    pub secrets_swept: Option<u64>,
    /// Plain properties (searchable log fields, not dimensions): the
    /// secret, the report id, the event id.
    pub properties: Vec<(&'static str, Value)>,
}

impl Line<'_> {
    /// The EMF object.
    pub fn to_json(&self) -> Value {
        let mut root = Map::new();
        let mut metrics: Vec<Value> = Vec::new();
        let mut put = |root: &mut Map<String, Value>, name: &'static str, unit: &str, v: u64| {
            metrics.push(json!({"Name": name, "Unit": unit}));
            root.insert(name.to_string(), json!(v));
        };
        put(&mut root, AUDITS, "Count", self.tally.audits);
        put(&mut root, AUDIT_DURATION, "Milliseconds", self.duration_ms);
        if let Some(n) = self.secrets_swept {
            put(&mut root, SECRETS_SWEPT, "Count", n);
        }
        if let Some((done, failed)) = self.tally.cells {
            put(&mut root, CELLS_DONE, "Count", done);
            put(&mut root, CELLS_FAILED, "Count", failed);
        }
        if let Some(n) = self.tally.refused {
            put(&mut root, ACCOUNTS_REFUSED, "Count", n);
        }
        for (i, (_, name)) in FINDINGS.iter().enumerate() {
            put(&mut root, name, "Count", self.tally.findings[i]);
        }
        for (i, (_, name)) in AWS_CALL_ERRORS.iter().enumerate() {
            put(&mut root, name, "Count", self.tally.errors[i]);
        }
        for (i, (_, name)) in REMEDIATION_OUTCOMES.iter().enumerate() {
            put(&mut root, name, "Count", self.tally.outcomes[i]);
        }
        debug_assert!(metrics.len() <= MAX_METRICS);
        for (k, v) in &self.properties {
            root.entry(k.to_string()).or_insert_with(|| v.clone());
        }
        root.insert("Trigger".into(), json!(self.trigger));
        root.insert("Region".into(), json!(self.region));
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": self.timestamp_ms,
                "CloudWatchMetrics": [{
                    "Namespace": NAMESPACE,
                    "Dimensions": [DIMENSIONS],
                    "Metrics": metrics,
                }, {
                    "Namespace": NAMESPACE,
                    "Dimensions": [REGION_DIMENSIONS],
                    "Metrics": [{"Name": REPLICA_STALE, "Unit": "Count"}],
                }],
            }),
        );
        root.insert(REPLICA_STALE.into(), json!(self.tally.stale));
        Value::Object(root)
    }
}

/// The EMF object of one replica's measured convergence: `seconds` in the
/// replica's `region`, at `timestamp_ms`, with plain `properties`.
pub fn convergence_line(
    timestamp_ms: u64,
    region: &str,
    seconds: u64,
    properties: Vec<(&'static str, Value)>,
) -> Value {
    let mut root = Map::new();
    for (k, v) in properties {
        root.insert(k.to_string(), v);
    }
    root.insert(REPLICA_CONVERGENCE_SECONDS.into(), json!(seconds));
    root.insert("Region".into(), json!(region));
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [REGION_DIMENSIONS],
                "Metrics": [{"Name": REPLICA_CONVERGENCE_SECONDS, "Unit": "Seconds"}],
            }],
        }),
    );
    Value::Object(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Action, Finding};

    fn finding(code: Code, severity: Severity, message: &str) -> Finding {
        Finding {
            id: "x".into(),
            code,
            severity,
            region: Some("eu-west-1".into()),
            message: message.into(),
            remediation: String::new(),
            cause: None,
            gap_kind: None,
        }
    }

    fn report(findings: Vec<Finding>, actions: Vec<Action>) -> Report {
        let mut r: Report = serde_json::from_value(json!({
            "schema": "v1", "report_id": "r", "generated_at": "t",
            "trigger": {"source": "cloudtrail", "event_name": "E", "event_id": null,
                        "event_time": null, "region": null, "account": null,
                        "actor": null, "error_code": null},
            "secret": {"arn": null, "name": "s", "primary_region": null},
            "replicas": [], "findings": [], "actions": [],
            "summary": {"count": 0, "highest_severity": null}
        }))
        .expect("a minimal report");
        r.findings = findings;
        r.actions = actions;
        r
    }

    /// An AUDIT_INCOMPLETE left by an error of `kind`.
    fn incomplete(kind: GapKind) -> Finding {
        let mut f = finding(Code::AuditIncomplete, Severity::Medium, "could not");
        f.gap_kind = Some(kind);
        f
    }

    #[test]
    fn each_gap_kind_is_counted_in_its_error_metric() {
        let cases = [
            (GapKind::AccessDenied, "AwsCallErrorsAccessDenied"),
            (GapKind::Throttled, "AwsCallErrorsThrottled"),
            (GapKind::Unreachable, "AwsCallErrorsTransport"),
            (GapKind::TimedOut, "AwsCallErrorsTimeout"),
            (GapKind::NotStarted, "AwsCallErrorsTimeout"),
            (GapKind::NotFound, "AwsCallErrorsService"),
            (GapKind::Refused, "AwsCallErrorsService"),
            (GapKind::Other, "AwsCallErrorsService"),
        ];
        for (kind, metric) in cases {
            let mut t = Tally::default();
            t.add_findings(&report(vec![incomplete(kind)], vec![]));
            let line = Line {
                timestamp_ms: 1,
                trigger: "cli",
                region: "us-east-1",
                tally: &t,
                duration_ms: 1,
                secrets_swept: None,
                properties: vec![],
            }
            .to_json();
            for (_, name) in AWS_CALL_ERRORS {
                let want = u64::from(name == metric);
                assert_eq!(line[name], json!(want), "{kind:?}: {name}");
            }
        }
    }

    #[test]
    fn a_line_counts_findings_errors_and_outcomes_as_root_members() {
        let r = report(
            vec![
                incomplete(GapKind::AccessDenied),
                finding(Code::ReplicaFailed, Severity::High, "failed"),
                finding(Code::ReplicaFailed, Severity::High, "failed"),
            ],
            vec![Action {
                action: "ReplicateSecretToRegions".into(),
                region: "eu-west-1".into(),
                outcome: ActionOutcome::Failed,
                detail: String::new(),
            }],
        );
        let mut t = Tally::default();
        t.add_audit(&r);
        let line = Line {
            timestamp_ms: 1_700_000_000_123,
            trigger: trigger_dimension("cloudtrail"),
            region: "us-east-1",
            tally: &t,
            duration_ms: 42,
            secrets_swept: None,
            properties: vec![("secret", json!("prod/db")), ("Region", json!("spoof"))],
        }
        .to_json();
        assert_eq!(line["Audits"], 1);
        assert_eq!(line["FindingsHigh"], 2);
        assert_eq!(line["FindingsMedium"], 1);
        assert_eq!(line["FindingsCritical"], 0);
        assert_eq!(line["AwsCallErrorsAccessDenied"], 1);
        assert_eq!(line["AwsCallErrorsService"], 0);
        assert_eq!(line["RemediationFailed"], 1);
        assert_eq!(line["AuditDuration"], 42);
        assert!(line.get("SecretsSwept").is_none(), "only a sweep says it");
        assert_eq!(line["secret"], "prod/db", "a property, not a dimension");
        assert_eq!(
            line["Region"], "us-east-1",
            "a property cannot overwrite a dimension"
        );
        assert_eq!(line["Trigger"], "cloudtrail");
        let aws = &line["_aws"];
        assert_eq!(aws["Timestamp"], 1_700_000_000_123u64);
        let d = &aws["CloudWatchMetrics"][0];
        assert_eq!(d["Namespace"], NAMESPACE);
        assert_eq!(d["Dimensions"], json!([["Trigger", "Region"]]));
        let names: Vec<&str> = d["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        // Neither SecretsSwept, the org sweep's cells nor refused accounts
        // on an event's line.
        assert_eq!(names.len(), metric_names().len() - 4);
        for n in names {
            assert!(line[n].is_u64(), "{n} is a numeric root member");
        }
    }

    #[test]
    fn an_org_sweep_cell_line_says_cells_done_and_failed() {
        let mut t = Tally::default();
        t.add_audit(&report(vec![], vec![]));
        t.cells = Some((1, 0));
        let line = Line {
            timestamp_ms: 1,
            trigger: trigger_dimension("schedule"),
            region: "us-east-1",
            tally: &t,
            duration_ms: 900,
            secrets_swept: Some(3),
            properties: vec![],
        }
        .to_json();
        assert_eq!(
            (line[CELLS_DONE].as_u64(), line[CELLS_FAILED].as_u64()),
            (Some(1), Some(0))
        );
        let metrics = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(
            metrics.len(),
            metric_names().len() - 1,
            "every metric but AccountsRefused, zeros included"
        );
    }

    #[test]
    fn a_sweep_line_says_secrets_swept_and_stays_within_the_limit() {
        let mut t = Tally::default();
        t.add_audit(&report(
            vec![finding(Code::ReplicaFailed, Severity::High, "f")],
            vec![],
        ));
        t.add_audit(&report(vec![], vec![]));
        t.add_findings(&report(vec![incomplete(GapKind::Throttled)], vec![]));
        let line = Line {
            timestamp_ms: 1,
            trigger: trigger_dimension("schedule"),
            region: "us-east-1",
            tally: &t,
            duration_ms: 900,
            secrets_swept: Some(7),
            properties: vec![],
        }
        .to_json();
        assert_eq!(line["SecretsSwept"], 7);
        assert_eq!(line["Audits"], 2, "the summary report is not an audit");
        assert_eq!(line["AwsCallErrorsThrottled"], 1);
        assert_eq!(line["Trigger"], "schedule");
        let metrics = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap();
        assert_eq!(
            metrics.len(),
            metric_names().len() - 3,
            "no cells and no refused accounts on a sweep's line"
        );
        assert!(metrics.len() <= MAX_METRICS);
        assert!(line.get(CELLS_DONE).is_none());
        assert!(
            NAMESPACE
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._#:/-".contains(c))
        );
    }

    #[test]
    fn trigger_dimension_has_four_values() {
        assert_eq!(trigger_dimension("cli"), "cli");
        assert_eq!(trigger_dimension("schedule"), "schedule");
        assert_eq!(trigger_dimension("followup"), "followup");
        assert_eq!(trigger_dimension("cloudtrail"), "cloudtrail");
        assert_eq!(trigger_dimension("anything else"), "cloudtrail");
    }

    #[test]
    fn replica_stale_is_counted_on_the_region_alone() {
        let mut t = Tally::default();
        t.add_audit(&report(
            vec![
                finding(Code::ReplicaStale, Severity::High, "behind"),
                finding(Code::ReplicaStale, Severity::High, "behind too"),
                finding(Code::KeyAwsManaged, Severity::Medium, "weak"),
            ],
            vec![],
        ));
        let line = Line {
            timestamp_ms: 1,
            trigger: "followup",
            region: "us-west-2",
            tally: &t,
            duration_ms: 5,
            secrets_swept: None,
            properties: vec![],
        }
        .to_json();
        assert_eq!(line["ReplicaStale"], 2);
        assert_eq!(line["FindingsHigh"], 2);
        assert_eq!(
            line["_aws"]["CloudWatchMetrics"][1],
            json!({"Namespace": "ReplicaAuditor", "Dimensions": [["Region"]],
                   "Metrics": [{"Name": "ReplicaStale", "Unit": "Count"}]})
        );
    }

    #[test]
    fn a_convergence_line_names_the_replicas_region() {
        let line = convergence_line(7, "eu-west-1", 150, vec![("version", json!("v-1"))]);
        assert_eq!(
            line,
            json!({"ReplicaConvergenceSeconds": 150, "Region": "eu-west-1", "version": "v-1",
                   "_aws": {"Timestamp": 7, "CloudWatchMetrics": [{
                       "Namespace": "ReplicaAuditor", "Dimensions": [["Region"]],
                       "Metrics": [{"Name": "ReplicaConvergenceSeconds", "Unit": "Seconds"}]}]}})
        );
    }
}
