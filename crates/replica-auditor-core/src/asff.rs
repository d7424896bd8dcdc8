//! AWS Security Hub's finding format (ASFF, schema 2018-10-08): a report's
//! findings as BatchImportFindings takes them, the findings that resolve
//! them, what the state table keeps of the active ones, and the batches
//! that respect AWS's limits. Pure: no SDK, no clock (times are passed in).
//!
//! Limits (Security Hub partner guide, "Guidelines for using the
//! BatchImportFindings API", and the API reference's AwsSecurityFinding):
//! 100 findings and 6 MB a call, 240 KB a finding; Title 256 characters,
//! Description 1,024, Remediation.Recommendation.Text 512, a
//! ProductFields value 2,048.
//!
//! The Id: `replica-auditor/<account>/<Region>/<CODE>/<finding id>`, where
//! the finding id is the report's (a hash of the secret's ARN, the code,
//! the Region and the finding's subject, `audit::finding_id`). The same
//! secret, code and Region (and subject: two untrusted accounts in one key
//! policy are two findings) give the same Id; the Id alone says in which
//! account and Region to re-import it, and which code it was, so resolving
//! needs nothing but the Id and the secret.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::arn::parse_secret_arn;
use crate::model::{Code, Finding, Severity};
use crate::report::Report;

pub const SCHEMA_VERSION: &str = "2018-10-08";
/// The first segment of every Id, and the ProductName.
pub const ID_PREFIX: &str = "replica-auditor";
pub const PRODUCT_NAME: &str = "Replica Auditor";
pub const RESOURCE_TYPE: &str = "AwsSecretsManagerSecret";

/// The top-level fields BatchImportFindings requires of every finding
/// (ASFF's required attributes).
pub const REQUIRED_FIELDS: [&str; 12] = [
    "AwsAccountId",
    "CreatedAt",
    "Description",
    "GeneratorId",
    "Id",
    "ProductArn",
    "Resources",
    "SchemaVersion",
    "Severity",
    "Title",
    "Types",
    "UpdatedAt",
];
/// BatchImportFindings: findings per call.
pub const MAX_FINDINGS_PER_CALL: usize = 100;
/// BatchImportFindings: bytes per finding (240 KB).
pub const MAX_FINDING_BYTES: usize = 240 * 1024;
/// BatchImportFindings: bytes per call (6 MB).
pub const MAX_CALL_BYTES: usize = 6 * 1024 * 1024;
pub const MAX_TITLE_CHARS: usize = 256;
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
pub const MAX_RECOMMENDATION_CHARS: usize = 512;
pub const MAX_PRODUCT_FIELD_CHARS: usize = 2048;

/// One finding as BatchImportFindings takes it (the fields the auditor
/// sets; serialised with ASFF's own names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffFinding {
    pub schema_version: String,
    pub id: String,
    pub product_arn: String,
    pub product_name: String,
    pub generator_id: String,
    pub aws_account_id: String,
    pub region: String,
    pub types: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub severity: AsffSeverity,
    /// Where a provider sets Severity and Types so that later imports may
    /// change them (Security Hub ignores a provider's top-level Severity and
    /// Types on an update).
    pub finding_provider_fields: ProviderFields,
    pub title: String,
    pub description: String,
    pub remediation: AsffRemediation,
    pub product_fields: BTreeMap<String, String>,
    pub resources: Vec<AsffResource>,
    pub compliance: AsffCompliance,
    pub record_state: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffSeverity {
    /// INFORMATIONAL, LOW, MEDIUM, HIGH or CRITICAL.
    pub label: String,
    /// The auditor's own severity (INFO ... CRITICAL).
    pub original: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProviderFields {
    pub severity: AsffSeverity,
    pub types: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRemediation {
    pub recommendation: AsffRecommendation,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffRecommendation {
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffResource {
    #[serde(rename = "Type")]
    pub kind: String,
    /// The secret's ARN in the Region concerned (a replica shares its
    /// primary's ARN but for the Region); the name when no ARN is known.
    pub id: String,
    pub partition: String,
    pub region: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AsffCompliance {
    /// FAILED, NOT_AVAILABLE (AUDIT_INCOMPLETE: the check could not be
    /// made) or PASSED (a resolved finding).
    pub status: String,
}

pub const ACTIVE: &str = "ACTIVE";
pub const ARCHIVED: &str = "ARCHIVED";
pub const FAILED: &str = "FAILED";
pub const PASSED: &str = "PASSED";
pub const NOT_AVAILABLE: &str = "NOT_AVAILABLE";

/// What the report alone does not say: the fallbacks for a finding's
/// account and Region.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The auditor's own account (STS), used when neither the secret's ARN
    /// nor the trigger names one.
    pub own_account: Option<&'a str>,
    /// The function's (or the command line's) Region, the last fallback.
    pub home_region: &'a str,
}

/// ASFF's severity label: INFO becomes INFORMATIONAL.
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFORMATIONAL",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

/// `Software and Configuration Checks/<category>/<classifier>`: every
/// finding is a configuration check; the classifier groups the codes.
pub fn types(code: Code) -> Vec<String> {
    use Code::*;
    let classifier = match code {
        ReplicaFailed
        | ReplicaInProgress
        | ReplicaStatusUnknown
        | ReplicaMissing
        | ReplicaPromoted
        | RegionNotAllowed
        | RequiredRegionMissing
        | ReplicaRemovedByRemediation
        | ReplicaDetached
        | ReplicaStale
        | RotationFailedWithReplicas => "Secrets Manager Replication",
        CrossAccountReplicaFailed
        | CrossAccountReplicaStalled
        | CrossAccountReplicaOutsideTrust
        | CrossAccountPrimaryOutsideTrust
        | CrossAccountRoleOutsidePrimaryAccount
        | CrossAccountMismatch => "Secrets Manager Cross-Account Replication",
        ReplicaKeyWeakerThanPrimary
        | KeyAwsManaged
        | KeyNotFound
        | KeyDisabled
        | KeyPendingDeletion
        | KeyPolicyPublic
        | KeyPolicyUntrustedAccount => "KMS Key",
        SecretPolicyPublic | SecretPolicyUntrustedAccount => "Secret Resource Policy",
        ApiCallFailed | SecretNotFound | AuditIncomplete | CrossAccountCall => "Audit",
    };
    vec![format!(
        "Software and Configuration Checks/AWS Security Best Practices/{classifier}"
    )]
}

/// An ASFF timestamp: RFC 3339 in UTC with milliseconds, as AWS's examples
/// write it (`2017-03-22T13:22:13.933Z`).
pub fn timestamp(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `arn:PARTITION:securityhub:REGION:ACCOUNT:product/ACCOUNT/default`: the
/// account's own product, which Security Hub makes when it is enabled.
/// With it, only that account may import (BatchImportFindings refuses
/// another account's findings).
pub fn product_arn(partition: &str, region: &str, account: &str) -> String {
    format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default")
}

/// The Id of a finding in `account` and `region` (see the module's doc).
pub fn finding_uid(account: &str, region: &str, code: Code, finding_id: &str) -> String {
    format!(
        "{ID_PREFIX}/{account}/{region}/{}/{finding_id}",
        code.as_str()
    )
}

/// An Id's parts: (account, Region, code); `None` for an Id this auditor
/// did not make.
pub fn parse_uid(id: &str) -> Option<(&str, &str, Code)> {
    let mut parts = id.splitn(5, '/');
    if parts.next()? != ID_PREFIX {
        return None;
    }
    let account = parts.next()?;
    let region = parts.next()?;
    let code = parts.next()?;
    parts.next().filter(|h| !h.is_empty())?;
    let code = Code::ALL.into_iter().find(|c| c.as_str() == code)?;
    Some((account, region, code))
}

/// Cut `s` to at most `max` characters, at a word boundary when one is
/// near, ending with `...` when cut.
pub fn cut_clean(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let keep: String = s.chars().take(max.saturating_sub(3)).collect();
    let cut_at = match keep.rfind(char::is_whitespace) {
        // Only back off to a space in the last sixth of the text.
        Some(i) if i >= keep.len() * 5 / 6 => i,
        _ => keep.len(),
    };
    format!("{}...", keep[..cut_at].trim_end())
}

/// The account a report is about: the secret ARN's, else the trigger's.
pub fn secret_or_trigger_account(report: &Report) -> Option<String> {
    report
        .secret
        .arn
        .as_deref()
        .and_then(parse_secret_arn)
        .map(|a| a.account)
        .or_else(|| report.trigger.account.clone())
}

/// The account a report's findings belong to: the secret ARN's, else the
/// trigger's, else the auditor's own.
pub fn report_account(report: &Report, ctx: &Context<'_>) -> Option<String> {
    secret_or_trigger_account(report).or_else(|| ctx.own_account.map(str::to_string))
}

/// The Region a finding belongs to (where it is imported): the Region it
/// concerns, else the secret's primary Region, else the trigger's, else
/// the home Region.
pub fn finding_region(report: &Report, f: &Finding, ctx: &Context<'_>) -> String {
    f.region
        .clone()
        .or_else(|| report.secret.primary_region.clone())
        .or_else(|| report.trigger.region.clone())
        .unwrap_or_else(|| ctx.home_region.to_string())
}

/// The secret as a resource in `region`: its ARN there (or its name).
fn resource(report: &Report, region: &str) -> AsffResource {
    let arn = report.secret.arn.as_deref().and_then(parse_secret_arn);
    AsffResource {
        kind: RESOURCE_TYPE.into(),
        id: arn
            .as_ref()
            .map(|a| a.in_region(region).to_string())
            .unwrap_or_else(|| report.secret.name.clone()),
        partition: partition(report),
        region: region.to_string(),
    }
}

fn partition(report: &Report) -> String {
    report
        .secret
        .arn
        .as_deref()
        .and_then(parse_secret_arn)
        .map(|a| a.partition)
        .unwrap_or_else(|| "aws".into())
}

/// The report's findings in ASFF, one per finding, ACTIVE and FAILED
/// (NOT_AVAILABLE for AUDIT_INCOMPLETE), created and updated `now` (an
/// ASFF [`timestamp`]). A sweep's summary report yields none: it is about
/// the sweep, not a secret; nor does a report whose account is unknown.
pub fn findings(report: &Report, ctx: &Context<'_>, now: &str) -> Vec<AsffFinding> {
    if report.sweep.is_some() {
        return Vec::new();
    }
    let Some(account) = report_account(report, ctx) else {
        return Vec::new();
    };
    let partition = partition(report);
    let trigger = match &report.trigger.event_id {
        Some(id) => format!(
            "{} {} ({id})",
            report.trigger.source, report.trigger.event_name
        ),
        None => format!("{} {}", report.trigger.source, report.trigger.event_name),
    };
    report
        .findings
        .iter()
        .map(|f| {
            let region = finding_region(report, f, ctx);
            let severity = AsffSeverity {
                label: severity_label(f.severity).into(),
                original: f.severity.as_str().into(),
            };
            let types = types(f.code);
            let mut fields = BTreeMap::new();
            let mut field = |k: &str, v: &str| {
                fields.insert(
                    format!("{ID_PREFIX}/{k}"),
                    cut_clean(v, MAX_PRODUCT_FIELD_CHARS),
                );
            };
            field("ReportId", &report.report_id);
            field("Trigger", &trigger);
            field("FindingId", &f.id);
            field("SecretName", &report.secret.name);
            if let Some(actor) = &report.trigger.actor {
                field("Actor", actor);
            }
            if let Some(cause) = f.cause {
                field(
                    "Cause",
                    serde_json::to_value(cause)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .as_deref()
                        .unwrap_or(""),
                );
            }
            AsffFinding {
                schema_version: SCHEMA_VERSION.into(),
                id: finding_uid(&account, &region, f.code, &f.id),
                product_arn: product_arn(&partition, &region, &account),
                product_name: PRODUCT_NAME.into(),
                generator_id: f.code.as_str().into(),
                aws_account_id: account.clone(),
                region: region.clone(),
                types: types.clone(),
                created_at: now.into(),
                updated_at: now.into(),
                finding_provider_fields: ProviderFields {
                    severity: severity.clone(),
                    types,
                },
                severity,
                title: cut_clean(
                    &format!(
                        "{}: {} in {region}",
                        f.code.as_str(),
                        crate::report::one_line(&report.secret.name)
                    ),
                    MAX_TITLE_CHARS,
                ),
                description: cut_clean(&f.message, MAX_DESCRIPTION_CHARS),
                remediation: AsffRemediation {
                    recommendation: AsffRecommendation {
                        text: cut_clean(&f.remediation, MAX_RECOMMENDATION_CHARS),
                    },
                },
                product_fields: fields,
                resources: vec![resource(report, &region)],
                compliance: AsffCompliance {
                    status: if f.code == Code::AuditIncomplete {
                        NOT_AVAILABLE
                    } else {
                        FAILED
                    }
                    .into(),
                },
                record_state: ACTIVE.into(),
            }
        })
        .collect()
}

/// The finding that resolves `id` (held ACTIVE, titled `title`, created
/// `created_at`): the same Id and ProductArn, Compliance PASSED, RecordState
/// ARCHIVED, severity INFORMATIONAL (as Security Hub's own controls report
/// a passed check). `None` for an Id this auditor did not make.
pub fn resolved(report: &Report, id: &str, held: &Held, now: &str) -> Option<AsffFinding> {
    let (account, region, code) = parse_uid(id)?;
    let partition = partition(report);
    let severity = AsffSeverity {
        label: severity_label(Severity::Info).into(),
        original: Severity::Info.as_str().into(),
    };
    let types = types(code);
    let mut fields = BTreeMap::new();
    fields.insert(format!("{ID_PREFIX}/ReportId"), report.report_id.clone());
    fields.insert(
        format!("{ID_PREFIX}/Trigger"),
        format!("{} {}", report.trigger.source, report.trigger.event_name),
    );
    fields.insert(
        format!("{ID_PREFIX}/SecretName"),
        cut_clean(&report.secret.name, MAX_PRODUCT_FIELD_CHARS),
    );
    Some(AsffFinding {
        schema_version: SCHEMA_VERSION.into(),
        id: id.to_string(),
        product_arn: product_arn(&partition, region, account),
        product_name: PRODUCT_NAME.into(),
        generator_id: code.as_str().into(),
        aws_account_id: account.to_string(),
        region: region.to_string(),
        types: types.clone(),
        created_at: held.created_at.clone(),
        updated_at: now.into(),
        finding_provider_fields: ProviderFields {
            severity: severity.clone(),
            types,
        },
        severity,
        title: held.title.clone(),
        description: cut_clean(
            &format!(
                "Resolved: the audit of {} (report {}) no longer finds {} in {region}.",
                crate::report::one_line(&report.secret.name),
                report.report_id,
                code.as_str()
            ),
            MAX_DESCRIPTION_CHARS,
        ),
        remediation: AsffRemediation {
            recommendation: AsffRecommendation {
                text: "No action needed: the problem is no longer found.".into(),
            },
        },
        product_fields: fields,
        resources: vec![resource(report, region)],
        compliance: AsffCompliance {
            status: PASSED.into(),
        },
        record_state: ARCHIVED.into(),
    })
}

/// What the state table keeps of one ACTIVE finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    /// The finding's CreatedAt, kept across re-imports.
    pub created_at: String,
    /// When it was last imported.
    pub updated_at: String,
    /// [`digest`] of what it said then.
    pub digest: String,
    /// Its title, for the resolving finding.
    pub title: String,
}

/// A secret's ACTIVE findings, by Id.
pub type HeldSet = BTreeMap<String, Held>;

/// How long an unchanged ACTIVE finding goes without being re-imported.
/// Security Hub deletes a finding 90 days after its last update; a daily
/// re-import keeps UpdatedAt recent at one call a day per secret that
/// still fails, rather than one per audit.
pub const REFRESH_SECONDS: i64 = 24 * 3600;

/// What the finding says that matters to a reader (not its times, report
/// id or trigger): a change re-imports it.
pub fn digest(f: &AsffFinding) -> String {
    let mut h = Sha256::new();
    for part in [
        f.severity.label.as_str(),
        &f.title,
        &f.description,
        &f.remediation.recommendation.text,
        &f.compliance.status,
        &f.record_state,
    ]
    .into_iter()
    .chain(f.resources.iter().map(|r| r.id.as_str()))
    {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

/// One secret's sync with Security Hub: what to import, and what the
/// state table should hold once every import succeeded.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sync {
    /// New, changed or due-for-refresh failures, then resolutions.
    pub import: Vec<AsffFinding>,
    /// The Ids among `import` that resolve a held finding.
    pub resolving: BTreeSet<String>,
    /// The ACTIVE findings once every import succeeded.
    pub next: HeldSet,
}

impl Sync {
    /// Whether the state table must be written.
    pub fn changes(&self, held: &HeldSet) -> bool {
        &self.next != held
    }

    /// The state once the imports are done, when those in `failed` (Ids)
    /// were refused: a refused new finding is not held, a refused
    /// resolution stays held, a refused update keeps what was held.
    pub fn after(&self, held: &HeldSet, failed: &BTreeSet<String>) -> HeldSet {
        let mut next = self.next.clone();
        for id in failed {
            match held.get(id) {
                Some(h) => {
                    next.insert(id.clone(), h.clone());
                }
                None => {
                    next.remove(id);
                }
            }
        }
        next
    }
}

/// Plan the sync of one audited secret: its report's `current` findings
/// ([`findings`]) against the `held` ones, at `now`.
///
/// - A current finding is imported when it is new, says something else
///   than when last imported, or was last imported more than
///   [`REFRESH_SECONDS`] ago; a new one keeps its CreatedAt forever after.
/// - A held finding no longer found is resolved, unless the report has an
///   AUDIT_INCOMPLETE in its Region: a check that could not be made
///   resolves nothing there.
/// - Nothing held and nothing found: nothing to do.
pub fn plan(
    report: &Report,
    mut current: Vec<AsffFinding>,
    held: &HeldSet,
    now: OffsetDateTime,
) -> Sync {
    let now_text = timestamp(now);
    let incomplete: BTreeSet<String> = current
        .iter()
        .filter(|f| f.generator_id == Code::AuditIncomplete.as_str())
        .map(|f| f.region.clone())
        .collect();
    let mut sync = Sync::default();
    let mut seen = BTreeSet::new();
    for f in current.iter_mut() {
        seen.insert(f.id.clone());
        let d = digest(f);
        let kept = held.get(&f.id);
        if let Some(h) = kept {
            f.created_at = h.created_at.clone();
        }
        let fresh = kept.is_some_and(|h| {
            h.digest == d
                && parse_timestamp(&h.updated_at)
                    .is_some_and(|t| (now - t).whole_seconds() < REFRESH_SECONDS)
        });
        let entry = match kept {
            Some(h) if fresh => h.clone(),
            _ => {
                sync.import.push(f.clone());
                Held {
                    created_at: f.created_at.clone(),
                    updated_at: now_text.clone(),
                    digest: d,
                    title: f.title.clone(),
                }
            }
        };
        sync.next.insert(f.id.clone(), entry);
    }
    for (id, h) in held {
        if seen.contains(id) {
            continue;
        }
        let region = parse_uid(id).map(|(_, r, _)| r.to_string());
        let held_back = region.as_ref().is_none_or(|r| incomplete.contains(r));
        match resolved(report, id, h, &now_text) {
            Some(r) if !held_back => {
                sync.resolving.insert(id.clone());
                sync.import.push(r);
            }
            _ => {
                sync.next.insert(id.clone(), h.clone());
            }
        }
    }
    sync
}

/// Read an ASFF (or any RFC 3339) timestamp.
pub fn parse_timestamp(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
}

/// A finding's size as BatchImportFindings counts it: its JSON.
pub fn size(f: &AsffFinding) -> usize {
    serde_json::to_string(f)
        .map(|s| s.len())
        .unwrap_or(usize::MAX)
}

/// Group findings into BatchImportFindings calls: at most
/// [`MAX_FINDINGS_PER_CALL`] and [`MAX_CALL_BYTES`] a call, in order. A
/// finding over [`MAX_FINDING_BYTES`] is refused by AWS whatever the
/// batch: it comes back in the second list, never sent.
pub fn batches<T>(items: Vec<(T, usize)>) -> (Vec<Vec<T>>, Vec<T>) {
    let mut out: Vec<Vec<T>> = Vec::new();
    let mut too_big = Vec::new();
    let mut bytes = 0;
    for (item, size) in items {
        if size > MAX_FINDING_BYTES {
            too_big.push(item);
            continue;
        }
        let fits = out
            .last()
            .is_some_and(|b| b.len() < MAX_FINDINGS_PER_CALL && bytes + size <= MAX_CALL_BYTES);
        if !fits {
            out.push(Vec::new());
            bytes = 0;
        }
        bytes += size;
        out.last_mut().expect("pushed").push(item);
    }
    (out, too_big)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::model::{Code, Finding};

    const NAME: &str = "production/Clash";

    fn finding(code: Code, region: Option<&str>, message: &str) -> Finding {
        fixtures::finding(NAME, code, region, message)
    }

    /// The report of a CloudTrail event from another account.
    fn report(findings: Vec<Finding>) -> Report {
        let mut r = fixtures::report(NAME, findings);
        r.trigger.source = "cloudtrail".into();
        r.trigger.event_name = "ReplicateSecretToRegions".into();
        r.trigger.event_id = Some("ev-1".into());
        r.trigger.region = Some("us-west-2".into());
        r.trigger.account = Some("999999999999".into());
        r.trigger.actor = Some("arn:aws:iam::123456789012:user/dev".into());
        r
    }

    const CTX: Context<'static> = Context {
        own_account: Some("111111111111"),
        home_region: "eu-central-1",
    };

    fn at(s: &str) -> OffsetDateTime {
        parse_timestamp(s).unwrap()
    }

    #[test]
    fn a_finding_has_every_required_field_from_the_report() {
        let r = report(vec![finding(
            Code::ReplicaFailed,
            Some("us-east-1"),
            "Replication of production/Clash to us-east-1 failed.",
        )]);
        let out = findings(&r, &CTX, "2026-11-23T20:54:24.788Z");
        assert_eq!(out.len(), 1);
        let f = &out[0];
        let json = serde_json::to_value(f).unwrap();
        for key in REQUIRED_FIELDS {
            assert!(json.get(key).is_some(), "{key} missing: {json}");
        }
        assert_eq!(json["SchemaVersion"], "2018-10-08");
        assert_eq!(
            json["ProductArn"],
            "arn:aws:securityhub:us-east-1:123456789012:product/123456789012/default",
            "the finding's own account (the secret's) and Region"
        );
        assert_eq!(json["AwsAccountId"], "123456789012");
        assert_eq!(json["GeneratorId"], "REPLICA_FAILED");
        assert_eq!(json["Severity"]["Label"], "HIGH");
        assert_eq!(
            json["Types"][0],
            "Software and Configuration Checks/AWS Security Best Practices/Secrets Manager Replication"
        );
        assert_eq!(
            json["Resources"],
            serde_json::json!([{
                "Type": "AwsSecretsManagerSecret",
                "Id": "arn:aws:secretsmanager:us-east-1:123456789012:secret:production/Clash-AbCdEf",
                "Partition": "aws",
                "Region": "us-east-1"
            }])
        );
        assert_eq!(json["Compliance"]["Status"], "FAILED");
        assert_eq!(json["RecordState"], "ACTIVE");
        assert_eq!(
            json["ProductFields"]["replica-auditor/ReportId"],
            "report-1"
        );
        assert_eq!(
            json["ProductFields"]["replica-auditor/Trigger"],
            "cloudtrail ReplicateSecretToRegions (ev-1)"
        );
        assert_eq!(
            json["ProductFields"]["replica-auditor/Cause"],
            "name_conflict"
        );
        assert_eq!(json["Remediation"]["Recommendation"]["Text"], "Fix it.");
        assert_eq!(
            json["Title"],
            "REPLICA_FAILED: production/Clash in us-east-1"
        );
        assert_eq!(
            f.id,
            format!(
                "replica-auditor/123456789012/us-east-1/REPLICA_FAILED/{}",
                r.findings[0].id
            )
        );
        assert_eq!(
            parse_uid(&f.id),
            Some(("123456789012", "us-east-1", Code::ReplicaFailed))
        );
    }

    #[test]
    fn ids_are_stable_and_distinct() {
        let a = findings(
            &report(vec![finding(Code::KeyDisabled, Some("us-east-1"), "one")]),
            &CTX,
            "t1",
        );
        let b = findings(
            &report(vec![finding(Code::KeyDisabled, Some("us-east-1"), "two")]),
            &CTX,
            "t2",
        );
        assert_eq!(a[0].id, b[0].id, "same secret, code and Region");
        let c = findings(
            &report(vec![
                finding(Code::KeyDisabled, Some("eu-west-1"), "x"),
                finding(Code::KeyNotFound, Some("us-east-1"), "x"),
            ]),
            &CTX,
            "t",
        );
        assert!(c.iter().all(|f| f.id != a[0].id));
        assert_ne!(c[0].id, c[1].id);
    }

    #[test]
    fn info_is_informational_and_incomplete_is_not_available() {
        assert_eq!(severity_label(Severity::Info), "INFORMATIONAL");
        assert_eq!(severity_label(Severity::Critical), "CRITICAL");
        let out = findings(
            &report(vec![finding(
                Code::AuditIncomplete,
                Some("eu-west-1"),
                "kms denied",
            )]),
            &CTX,
            "t",
        );
        assert_eq!(out[0].compliance.status, NOT_AVAILABLE);
        assert_eq!(out[0].severity.label, "MEDIUM");
    }

    #[test]
    fn account_and_region_fall_back_in_order() {
        let mut r = report(vec![finding(Code::SecretNotFound, None, "gone")]);
        assert_eq!(findings(&r, &CTX, "t")[0].aws_account_id, "123456789012");
        assert_eq!(
            findings(&r, &CTX, "t")[0].region,
            "us-west-2",
            "the primary's"
        );
        r.secret.arn = None;
        r.secret.primary_region = None;
        let f = &findings(&r, &CTX, "t")[0];
        assert_eq!(f.aws_account_id, "999999999999", "the trigger's");
        assert_eq!(f.region, "us-west-2", "the trigger's");
        assert_eq!(f.resources[0].id, "production/Clash", "no ARN: the name");
        r.trigger.account = None;
        r.trigger.region = None;
        let f = &findings(&r, &CTX, "t")[0];
        assert_eq!(f.aws_account_id, "111111111111", "the own account");
        assert_eq!(f.region, "eu-central-1", "the home Region");
        let none = Context {
            own_account: None,
            home_region: "eu-central-1",
        };
        assert!(findings(&r, &none, "t").is_empty(), "no account known");
    }

    #[test]
    fn long_text_is_cut_cleanly_within_the_limits() {
        let long = format!("{} tail", "word ".repeat(400));
        let mut f = finding(Code::ReplicaFailed, Some("us-east-1"), &long);
        f.remediation = "r".repeat(2000);
        let mut r = report(vec![f]);
        r.secret.name = "n".repeat(400);
        let out = &findings(&r, &CTX, "t")[0];
        assert!(out.description.chars().count() <= MAX_DESCRIPTION_CHARS);
        assert!(out.description.ends_with("word..."), "{}", out.description);
        assert!(out.title.chars().count() <= MAX_TITLE_CHARS);
        assert!(out.remediation.recommendation.text.chars().count() <= MAX_RECOMMENDATION_CHARS);
        assert!(out.remediation.recommendation.text.ends_with("..."));
        assert_eq!(cut_clean("short", 10), "short");
        let multi = "é".repeat(2000);
        assert_eq!(
            cut_clean(&multi, 1024).chars().count(),
            1024,
            "characters, not bytes"
        );
    }

    #[test]
    fn timestamps_are_milliseconds_in_utc() {
        let t = at("2026-11-23T20:54:24.788513241+01:00");
        assert_eq!(timestamp(t), "2026-11-23T19:54:24.788Z");
        assert_eq!(
            parse_timestamp("2026-11-23T19:54:24.788Z"),
            Some(at("2026-11-23T19:54:24.788Z"))
        );
    }

    #[test]
    fn the_sweep_summary_is_no_finding() {
        let mut r = report(vec![finding(Code::AuditIncomplete, Some("us-west-2"), "x")]);
        r.sweep = Some(crate::model::SweepSummary::default());
        assert!(findings(&r, &CTX, "t").is_empty());
    }

    fn held_of(s: &Sync) -> HeldSet {
        s.next.clone()
    }

    #[test]
    fn a_new_failure_is_imported_then_left_alone_until_it_changes_or_a_day_passes() {
        let now = at("2026-11-23T10:00:00Z");
        let r = report(vec![finding(
            Code::KeyDisabled,
            Some("us-east-1"),
            "disabled",
        )]);
        let first = plan(
            &r,
            findings(&r, &CTX, &timestamp(now)),
            &HeldSet::new(),
            now,
        );
        assert_eq!(first.import.len(), 1);
        assert!(first.resolving.is_empty());
        let held = held_of(&first);
        assert_eq!(held.len(), 1);

        let later = now + time::Duration::hours(2);
        let again = plan(&r, findings(&r, &CTX, &timestamp(later)), &held, later);
        assert!(again.import.is_empty(), "unchanged, imported 2 h ago");
        assert!(!again.changes(&held), "no write");

        let mut changed = r.clone();
        changed.findings[0].message = "disabled, and more".into();
        let upd = plan(
            &changed,
            findings(&changed, &CTX, &timestamp(later)),
            &held,
            later,
        );
        assert_eq!(upd.import.len(), 1, "it says something else");
        assert_eq!(
            upd.import[0].created_at,
            timestamp(now),
            "CreatedAt kept from the first import"
        );
        assert_eq!(upd.import[0].updated_at, timestamp(later));

        let next_day = now + time::Duration::hours(25);
        let refresh = plan(
            &r,
            findings(&r, &CTX, &timestamp(next_day)),
            &held,
            next_day,
        );
        assert_eq!(refresh.import.len(), 1, "refreshed after a day");
    }

    #[test]
    fn a_held_finding_no_longer_found_is_resolved_and_a_healthy_secret_creates_nothing() {
        let now = at("2026-11-23T10:00:00Z");
        let healthy = report(vec![]);
        let nothing = plan(
            &healthy,
            findings(&healthy, &CTX, "t"),
            &HeldSet::new(),
            now,
        );
        assert_eq!(
            nothing,
            Sync::default(),
            "never failing: no import, no write"
        );
        assert!(!nothing.changes(&HeldSet::new()));

        let broken = report(vec![
            finding(Code::ReplicaFailed, Some("us-east-1"), "failed"),
            finding(Code::KeyAwsManaged, Some("us-west-2"), "managed"),
        ]);
        let held = held_of(&plan(
            &broken,
            findings(&broken, &CTX, "t"),
            &HeldSet::new(),
            now,
        ));
        let later = now + time::Duration::minutes(5);
        let fixed = plan(&healthy, findings(&healthy, &CTX, "t"), &held, later);
        assert_eq!(fixed.import.len(), 2);
        assert_eq!(fixed.resolving.len(), 2);
        for f in &fixed.import {
            assert_eq!(f.compliance.status, PASSED);
            assert_eq!(f.record_state, ARCHIVED);
            assert_eq!(f.severity.label, "INFORMATIONAL");
            assert_eq!(f.created_at, held[&f.id].created_at);
            assert_eq!(f.updated_at, timestamp(later));
            assert!(held.contains_key(&f.id), "the same Id");
        }
        let failed = findings(&broken, &CTX, "t");
        let resolved_replica = fixed
            .import
            .iter()
            .find(|f| f.region == "us-east-1")
            .unwrap();
        let failed_replica = failed.iter().find(|f| f.region == "us-east-1").unwrap();
        assert_eq!(resolved_replica.product_arn, failed_replica.product_arn);
        assert_eq!(resolved_replica.resources, failed_replica.resources);
        assert!(fixed.next.is_empty(), "nothing held once resolved");
        assert!(fixed.changes(&held));
    }

    #[test]
    fn an_incomplete_region_resolves_nothing_there() {
        let now = at("2026-11-23T10:00:00Z");
        let broken = report(vec![
            finding(Code::KeyDisabled, Some("us-east-1"), "disabled"),
            finding(Code::KeyDisabled, Some("eu-west-1"), "disabled"),
        ]);
        let held = held_of(&plan(
            &broken,
            findings(&broken, &CTX, "t"),
            &HeldSet::new(),
            now,
        ));
        // KMS could not be asked in us-east-1; eu-west-1 is fixed.
        let partial = report(vec![finding(
            Code::AuditIncomplete,
            Some("us-east-1"),
            "kms:DescribeKey in us-east-1: access denied",
        )]);
        let s = plan(&partial, findings(&partial, &CTX, "t"), &held, now);
        let resolved: Vec<&str> = s
            .import
            .iter()
            .filter(|f| f.compliance.status == PASSED)
            .map(|f| f.region.as_str())
            .collect();
        assert_eq!(resolved, ["eu-west-1"]);
        let kept: Vec<&str> = s
            .next
            .keys()
            .filter_map(|id| parse_uid(id))
            .map(|(_, _, c)| c.as_str())
            .collect();
        assert_eq!(kept, ["AUDIT_INCOMPLETE", "KEY_DISABLED"], "{:?}", s.next);
    }

    #[test]
    fn refused_imports_keep_the_state_honest() {
        let now = at("2026-11-23T10:00:00Z");
        let old = report(vec![finding(Code::KeyDisabled, Some("us-east-1"), "x")]);
        let held = held_of(&plan(&old, findings(&old, &CTX, "t"), &HeldSet::new(), now));
        let new = report(vec![finding(Code::ReplicaFailed, Some("eu-west-1"), "y")]);
        let s = plan(&new, findings(&new, &CTX, "t"), &held, now);
        assert_eq!(s.import.len(), 2);
        let all: BTreeSet<String> = s.import.iter().map(|f| f.id.clone()).collect();
        let after = s.after(&held, &all);
        assert_eq!(
            after, held,
            "nothing imported: the old one still held, the new one not"
        );
        assert_eq!(s.after(&held, &BTreeSet::new()), s.next);
    }

    #[test]
    fn batches_respect_count_and_bytes_and_refuse_oversized_findings() {
        let (b, big) = batches((0..250).map(|i| (i, 1_000)).collect());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [100, 100, 50]);
        assert!(big.is_empty());
        // 200 KB findings: 6 MB holds 30 of them.
        let (b, _) = batches((0..70).map(|i| (i, 200 * 1024)).collect());
        assert_eq!(b.iter().map(Vec::len).collect::<Vec<_>>(), [30, 30, 10]);
        for batch in &b {
            assert!(batch.len() * 200 * 1024 <= MAX_CALL_BYTES);
        }
        let (b, big) = batches(vec![
            (1, 10),
            (2, MAX_FINDING_BYTES + 1),
            (3, MAX_FINDING_BYTES),
        ]);
        assert_eq!(b, vec![vec![1, 3]]);
        assert_eq!(big, vec![2]);
        let (b, big) = batches::<u8>(Vec::new());
        assert!(b.is_empty() && big.is_empty());
    }

    #[test]
    fn a_real_finding_is_far_below_the_limit() {
        let r = report(vec![finding(
            Code::ReplicaFailed,
            Some("us-east-1"),
            &"m".repeat(5000),
        )]);
        let f = &findings(&r, &CTX, "t")[0];
        assert!(size(f) < 8 * 1024, "{}", size(f));
    }
}
