//! A report's findings as OCSF 1.3 Detection Findings (class_uid 2004,
//! category Findings, activity Create): the schema Prowler and the new
//! Security Hub speak, for a SIEM or data lake. Pure.
//!
//! Checked against the OCSF schema's own files (ocsf/ocsf-schema:
//! events/findings/detection_finding.json extends finding.json, which
//! extends base_event): required are `activity_id`, `category_uid`,
//! `class_uid`, `finding_info` (its `uid` and `title`), `metadata`
//! (`version`, `product`), `severity_id`, `time` and `type_uid`
//! (`class_uid * 100 + activity_id`); `resources`, `status_id` and the
//! `cloud` profile (`provider`, `region`, `account`) are recommended and set.

use serde_json::{Value, json};

use crate::arn::parse_secret_arn;
use crate::asff::{Context, finding_region, finding_uid, report_account, types};
use crate::model::Severity;
use crate::report::Report;

pub const VERSION: &str = "1.3.0";
pub const CLASS_UID: u32 = 2004;
pub const CATEGORY_UID: u32 = 2;
/// Create: the finding as the audit found it.
pub const ACTIVITY_CREATE: u32 = 1;
pub const TYPE_UID: u32 = CLASS_UID * 100 + ACTIVITY_CREATE;
/// OCSF's account `type_id` for an AWS account.
const AWS_ACCOUNT_TYPE_ID: u32 = 10;

/// OCSF's `severity_id` and its caption.
pub fn severity(s: Severity) -> (u32, &'static str) {
    match s {
        Severity::Info => (1, "Informational"),
        Severity::Low => (2, "Low"),
        Severity::Medium => (3, "Medium"),
        Severity::High => (4, "High"),
        Severity::Critical => (5, "Critical"),
    }
}

/// Epoch milliseconds of an RFC 3339 time, or 0 when it cannot be read.
fn epoch_ms(t: &str) -> i64 {
    crate::asff::parse_timestamp(t)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

/// One Detection Finding per finding of the report (none for a sweep's
/// summary, or when no account is known).
pub fn findings(report: &Report, ctx: &Context<'_>) -> Vec<Value> {
    if report.sweep.is_some() {
        return Vec::new();
    }
    let Some(account) = report_account(report, ctx) else {
        return Vec::new();
    };
    let time = epoch_ms(&report.generated_at);
    let arn = report.secret.arn.as_deref().and_then(parse_secret_arn);
    let partition = arn
        .as_ref()
        .map(|a| a.partition.clone())
        .unwrap_or_else(|| "aws".into());
    let account_obj =
        json!({"uid": account, "type": "AWS Account", "type_id": AWS_ACCOUNT_TYPE_ID});
    report
        .findings
        .iter()
        .map(|f| {
            let region = finding_region(report, f, ctx);
            let (severity_id, severity_name) = severity(f.severity);
            let uid = arn
                .as_ref()
                .map(|a| a.in_region(&region).to_string())
                .unwrap_or_else(|| report.secret.name.clone());
            json!({
                "class_uid": CLASS_UID,
                "class_name": "Detection Finding",
                "category_uid": CATEGORY_UID,
                "category_name": "Findings",
                "activity_id": ACTIVITY_CREATE,
                "activity_name": "Create",
                "type_uid": TYPE_UID,
                "type_name": "Detection Finding: Create",
                "severity_id": severity_id,
                "severity": severity_name,
                "status_id": 1,
                "status": "New",
                "time": time,
                "message": f.message,
                "finding_info": {
                    "uid": finding_uid(&account, &region, f.code, &f.id),
                    "title": format!("{}: {} in {region}", f.code.as_str(), crate::report::one_line(&report.secret.name)),
                    "desc": f.message,
                    "types": [f.code.as_str(), types(f.code)[0]],
                    "created_time": time,
                },
                "remediation": {"desc": f.remediation},
                "resources": [{
                    "uid": uid,
                    "name": report.secret.name,
                    "type": "AWS::SecretsManager::Secret",
                    "region": region,
                    "cloud_partition": partition,
                    "owner": {"account": account_obj},
                }],
                "cloud": {"provider": "AWS", "region": region, "account": account_obj},
                "metadata": {
                    "version": VERSION,
                    "product": {"name": crate::asff::PRODUCT_NAME, "vendor_name": "replica-auditor"},
                    "event_code": f.code.as_str(),
                    "uid": f.id,
                },
                "unmapped": {
                    "report_id": report.report_id,
                    "trigger": {"source": report.trigger.source, "event_name": report.trigger.event_name, "event_id": report.trigger.event_id},
                    "cause": f.cause,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::model::Code;

    fn report() -> Report {
        let mut doomed = fixtures::finding(
            "app/db",
            Code::KeyPendingDeletion,
            Some("eu-west-1"),
            "doomed",
        );
        doomed.id = "abc".into();
        doomed.remediation = "cancel the deletion".into();
        let slow = fixtures::finding("app/db", Code::ReplicaInProgress, None, "slow");
        fixtures::report("app/db", vec![doomed, slow])
    }

    #[test]
    fn detection_findings_carry_the_required_attributes() {
        let ctx = Context {
            own_account: None,
            home_region: "us-west-2",
        };
        let out = findings(&report(), &ctx);
        assert_eq!(out.len(), 2);
        let f = &out[0];
        for key in [
            "activity_id",
            "category_uid",
            "class_uid",
            "finding_info",
            "metadata",
            "severity_id",
            "time",
            "type_uid",
        ] {
            assert!(f.get(key).is_some(), "{key}: {f}");
        }
        assert_eq!(f["class_uid"], 2004);
        assert_eq!(f["category_uid"], 2);
        assert_eq!(f["type_uid"], 200401);
        assert_eq!(f["severity_id"], 5);
        assert_eq!(f["severity"], "Critical");
        assert_eq!(f["time"], 1_795_467_264_788_i64);
        assert_eq!(
            f["finding_info"]["uid"],
            "replica-auditor/123456789012/eu-west-1/KEY_PENDING_DELETION/abc"
        );
        assert_eq!(
            f["finding_info"]["title"],
            "KEY_PENDING_DELETION: app/db in eu-west-1"
        );
        assert_eq!(f["cloud"]["provider"], "AWS");
        assert_eq!(f["cloud"]["region"], "eu-west-1");
        assert_eq!(f["cloud"]["account"]["uid"], "123456789012");
        assert_eq!(
            f["resources"][0]["uid"],
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:app/db-AbCdEf"
        );
        assert_eq!(f["metadata"]["version"], "1.3.0");
        assert_eq!(f["metadata"]["product"]["name"], "Replica Auditor");
        assert_eq!(f["remediation"]["desc"], "cancel the deletion");
        // No Region on the finding: the primary's.
        assert_eq!(out[1]["cloud"]["region"], "us-west-2");
        assert_eq!(out[1]["severity_id"], 2);
    }

    #[test]
    fn every_severity_has_an_ocsf_id() {
        let ids: Vec<u32> = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .into_iter()
        .map(|s| severity(s).0)
        .collect();
        assert_eq!(ids, [1, 2, 3, 4, 5]);
    }
}
