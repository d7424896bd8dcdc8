//! The finding report (schema `replica-auditor.report/v1`): building it,
//! and cleaning outside text for the subject line. Pure; a sink fits the
//! document to its own limits (SNS: `sinks::sns`).

use serde::{Deserialize, Serialize};

use crate::event::Trigger;
use crate::freshness::{self, Freshness};
use crate::model::{Finding, Lookup, ReplicationState, Severity, Snapshot};

pub const SCHEMA: &str = "replica-auditor.report/v1";
/// SNS subjects must be under 100 characters.
pub const MAX_SUBJECT_CHARS: usize = 99;
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub report_id: String,
    pub generated_at: String,
    pub trigger: TriggerInfo,
    pub secret: SecretInfo,
    /// The primary's AWSCURRENT version id (issue 25), which each replica's
    /// is compared with. Added within schema v1: absent, not null, when
    /// unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    pub replicas: Vec<ReplicaInfo>,
    /// The secret's cross-account replication (issue 26), when it has any:
    /// its primary in another account, or its replicas in others. Added
    /// within schema v1: absent when there is none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cross_account: Option<crate::cross_account::Links>,
    pub findings: Vec<Finding>,
    pub actions: Vec<crate::model::Action>,
    pub summary: Summary,
    /// Only on a sweep's summary report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::model::SweepSummary>,
    /// Present only when a sink had to cut findings to fit its limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated: Option<Truncation>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerInfo {
    pub source: String,
    pub event_name: String,
    pub event_id: Option<String>,
    pub event_time: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub actor: Option<String>,
    pub error_code: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SecretInfo {
    pub arn: Option<String>,
    pub name: String,
    pub primary_region: Option<String>,
    /// The account the secret lives in (its ARN's, else the event's), when
    /// known. Added within schema v1: absent, not null, when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplicaInfo {
    pub region: String,
    pub status: Option<ReplicationState>,
    pub status_message: Option<String>,
    pub kms_key_id: Option<String>,
    /// The replica's AWSCURRENT version id, as DescribeSecret answers in
    /// its Region (issue 25). Added within schema v1: absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_version: Option<String>,
    /// How that version compares with the primary's
    /// ([`crate::freshness::of_replica`]). Added within schema v1: absent
    /// when unknown.
    #[serde(default, skip_serializing_if = "Freshness::is_unknown")]
    pub freshness: Freshness,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub highest_severity: Option<Severity>,
    pub count: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Truncation {
    pub marker: String,
    pub omitted_findings: usize,
}

impl Report {
    /// Whether the report is sent: it has findings, or remediation acted.
    pub fn is_worth_sending(&self) -> bool {
        !self.findings.is_empty() || !self.actions.is_empty()
    }

    /// The distinct finding codes, sorted.
    pub fn codes(&self) -> Vec<&'static str> {
        let mut codes: Vec<&'static str> = self.findings.iter().map(|f| f.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        codes
    }
}

impl TriggerInfo {
    pub fn from_cloudtrail(t: &Trigger) -> TriggerInfo {
        TriggerInfo {
            source: "cloudtrail".into(),
            event_name: t.event.as_str().into(),
            event_id: t.event_id.clone(),
            event_time: t.event_time.clone(),
            region: Some(t.region.clone()),
            account: Some(t.account.clone()),
            actor: t.actor.display.clone(),
            error_code: t.error_code.clone(),
        }
    }
}

/// Build the report: the findings at or above `min`, most severe first.
pub fn build(
    trigger: TriggerInfo,
    snapshot: &Snapshot,
    mut findings: Vec<Finding>,
    actions: Vec<crate::model::Action>,
    min: Severity,
    report_id: String,
    generated_at: String,
) -> Report {
    findings.retain(|f| f.severity >= min);
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(a.code.cmp(&b.code))
            .then(a.region.cmp(&b.region))
            .then(a.id.cmp(&b.id))
    });
    let primary = snapshot.primary.found();
    let secret = SecretInfo {
        arn: primary.map(|p| p.arn.clone()),
        name: primary
            .map(|p| p.name.clone())
            .unwrap_or_else(|| display_name(&snapshot.secret_ref)),
        primary_region: primary.map(|p| p.region.clone()),
        account: primary
            .and_then(|p| crate::arn::parse_secret_arn(&p.arn))
            .map(|a| a.account)
            .or_else(|| snapshot.account.clone()),
    };
    let replicas = match &snapshot.primary {
        Lookup::Found(p) => p
            .replication
            .iter()
            .map(|r| {
                let check = snapshot
                    .replicas
                    .iter()
                    .find(|c| c.status.region == r.region);
                ReplicaInfo {
                    region: r.region.clone(),
                    status: r.status.clone(),
                    status_message: r.status_message.clone(),
                    kms_key_id: r.kms_key_id.clone(),
                    current_version: check
                        .and_then(|c| c.presence.found()?.current_version())
                        .map(str::to_string),
                    freshness: check
                        .map(|c| freshness::of_replica(snapshot, p, c))
                        .unwrap_or_default(),
                }
            })
            .collect(),
        _ => Vec::new(),
    };
    Report {
        schema: SCHEMA.into(),
        report_id,
        generated_at,
        trigger,
        secret,
        current_version: primary
            .and_then(|p| p.current_version())
            .map(str::to_string),
        replicas,
        cross_account: snapshot
            .cross_account
            .as_ref()
            .map(|x| x.links.clone())
            .filter(|l| l.primary.is_some() || !l.replicas.is_empty()),
        summary: summarise(&findings),
        findings,
        actions,
        sweep: None,
        truncated: None,
    }
}

fn display_name(secret_ref: &str) -> String {
    crate::event::SecretRef::parse(secret_ref)
        .display_name()
        .to_string()
}

fn summarise(findings: &[Finding]) -> Summary {
    Summary {
        highest_severity: findings.iter().map(|f| f.severity).max(),
        count: findings.len(),
    }
}

/// Serialise the report as the SNS message body.
pub fn body(report: &Report) -> String {
    serde_json::to_string_pretty(report).expect("a report always serialises")
}

/// Cut text to `max` characters with a visible marker.
pub fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(15)).collect();
    out.push_str("...[truncated]");
    out
}

/// Make outside text safe for one line: control characters (line breaks
/// included) become spaces, runs of spaces collapse.
pub fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = false;
    for c in s.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if c == ' ' {
            if !space {
                out.push(' ');
            }
            space = true;
        } else {
            out.push(c);
            space = false;
        }
    }
    out.trim().to_string()
}

/// The SNS subject: `[HIGH] replica-auditor: NAME: N findings`, printable
/// ASCII only, under 100 characters (the name is shortened to fit).
pub fn subject(report: &Report) -> String {
    let sev = report
        .summary
        .highest_severity
        .map(|s| s.as_str())
        .unwrap_or("INFO");
    if let Some(sw) = &report.sweep {
        if let (Some(accounts), Some(cells)) = (&sw.accounts, &sw.cells) {
            let mut subject = format!(
                "[{sev}] replica-auditor: org sweep of {} accounts: {} with findings, {} of {} cells failed",
                sw.accounts_total.unwrap_or(accounts.len()),
                sw.secrets_with_findings,
                cells.failed,
                cells.total
            );
            // ASCII only: cut at a character boundary.
            subject.truncate(MAX_SUBJECT_CHARS);
            return subject;
        }
        return format!(
            "[{sev}] replica-auditor: sweep of {} secrets: {} with findings",
            sw.secrets_seen, sw.secrets_with_findings
        );
    }
    let n = report.summary.count;
    let tail = format!(": {n} finding{}", if n == 1 { "" } else { "s" });
    let head = format!("[{sev}] replica-auditor: ");
    let name: String = one_line(&report.secret.name)
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    let room = MAX_SUBJECT_CHARS - head.len() - tail.len();
    let name = if name.len() > room {
        format!("{}...", &name[..room - 3])
    } else {
        name
    };
    format!("{head}{name}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Code, Finding};

    fn finding(code: Code, msg: &str) -> Finding {
        Finding {
            id: format!("{code}-{msg}"),
            code,
            severity: code.severity(),
            region: Some("us-east-1".into()),
            message: msg.into(),
            remediation: "fix".into(),
            cause: None,
            gap_kind: None,
        }
    }

    fn report_with(name: &str, findings: Vec<Finding>, min: Severity) -> Report {
        let trigger = TriggerInfo {
            source: "cloudtrail".into(),
            event_name: "CreateSecret".into(),
            event_id: None,
            event_time: None,
            region: None,
            account: None,
            actor: None,
            error_code: None,
        };
        build(
            trigger,
            &Snapshot::empty(name),
            findings,
            Vec::new(),
            min,
            "r".into(),
            "t".into(),
        )
    }

    #[test]
    fn filters_by_min_severity_and_sorts() {
        let r = report_with(
            "app",
            vec![
                finding(Code::SecretNotFound, "a"),
                finding(Code::KeyPolicyPublic, "b"),
                finding(Code::ReplicaFailed, "c"),
            ],
            Severity::Medium,
        );
        let codes: Vec<Code> = r.findings.iter().map(|f| f.code).collect();
        assert_eq!(codes, vec![Code::KeyPolicyPublic, Code::ReplicaFailed]);
        assert_eq!(r.summary.highest_severity, Some(Severity::Critical));
        assert_eq!(r.summary.count, 2);
        assert_eq!(subject(&r), "[CRITICAL] replica-auditor: app: 2 findings");
    }

    #[test]
    fn subject_is_clean_and_short() {
        let name = format!("evil\r\n[CRITICAL] fake\u{7}é{}", "x".repeat(300));
        let r = report_with(
            &name,
            vec![finding(Code::ReplicaFailed, "a")],
            Severity::Low,
        );
        let s = subject(&r);
        assert!(s.chars().count() < 100, "{}", s.len());
        assert!(s.chars().all(|c| c.is_ascii_graphic() || c == ' '), "{s:?}");
        assert!(
            s.starts_with("[HIGH] replica-auditor: evil [CRITICAL] fake ?xxx"),
            "{s}"
        );
        assert!(s.ends_with("...: 1 finding"), "{s}");
    }

    #[test]
    fn an_org_summary_subject_stays_under_the_limit() {
        let mut r = report_with(
            "sweep",
            vec![finding(Code::AuditIncomplete, "a")],
            Severity::Low,
        );
        let summary = |accounts: usize, with: usize, failed: usize, total: usize| {
            crate::model::SweepSummary {
                secrets_with_findings: with,
                accounts: Some(vec![String::new(); accounts]),
                cells: Some(crate::model::CellCounts {
                    failed,
                    total,
                    ..Default::default()
                }),
                ..Default::default()
            }
        };
        r.sweep = Some(summary(3, 3, 1, 6));
        assert_eq!(
            subject(&r),
            "[MEDIUM] replica-auditor: org sweep of 3 accounts: 3 with findings, 1 of 6 cells failed"
        );
        r.sweep = Some(summary(10_000, 9_999_999, 29_999, 30_000));
        assert!(subject(&r).len() < 100, "{}", subject(&r));
    }

    #[test]
    fn one_line_removes_breaks() {
        assert_eq!(one_line("a\nb\r\n\tc  d"), "a b c d");
    }
}
