//! The pure audit: a snapshot of one secret across Regions in, findings
//! out. No I/O, no clock, no randomness: the same snapshot always gives
//! the same findings (ids included).

use std::collections::BTreeSet;

use sha2::{Digest, Sha256};

use crate::event::{HandledEvent, Trigger};
use crate::model::Rules;
use crate::model::*;
use crate::policy::{self, PolicyIssue, Service, Trust};

/// The tag whose comma-separated value names Regions a secret must be in.
pub const REQUIRED_REGIONS_TAG: &str = "replica-auditor:required-regions";

/// A finding id stable for the same secret, code, Region and subject.
pub fn finding_id(secret: &str, code: Code, region: Option<&str>, subject: &str) -> String {
    let mut h = Sha256::new();
    for part in [secret, code.as_str(), region.unwrap_or(""), subject] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..12])
}

/// A finding about `secret` (or another key the id is stable for): its id
/// from the secret, code, Region and `subject`, its severity from the code.
pub fn finding(
    secret: &str,
    code: Code,
    region: Option<&str>,
    subject: &str,
    message: String,
    remediation: String,
) -> Finding {
    Finding {
        id: finding_id(secret, code, region, subject),
        code,
        severity: code.severity(),
        region: region.map(str::to_string),
        message,
        remediation,
        cause: None,
        gap_kind: None,
    }
}

/// Classify a Failed replica's StatusMessage.
pub fn classify_failure(message: Option<&str>) -> FailureCause {
    let m = message.unwrap_or("").to_ascii_lowercase();
    if m.contains("already exists") || m.contains("same name") || m.contains("name conflict") {
        FailureCause::NameConflict
    } else if m.contains("region")
        && [
            "not enabled",
            "disabled",
            "opt-in",
            "opted",
            "not available",
            "not supported",
        ]
        .iter()
        .any(|w| m.contains(w))
    {
        FailureCause::RegionDisabled
    } else if m.contains("kms") || m.contains("key") {
        FailureCause::KmsKey
    } else {
        FailureCause::Other
    }
}

struct Findings<'a> {
    secret: &'a str,
    out: Vec<Finding>,
}

impl Findings<'_> {
    fn add(
        &mut self,
        code: Code,
        region: Option<&str>,
        subject: &str,
        message: String,
        remediation: String,
    ) -> &mut Finding {
        self.out.push(finding(
            self.secret,
            code,
            region,
            subject,
            message,
            remediation,
        ));
        self.out.last_mut().expect("just pushed")
    }
}

/// Audit one secret. `trigger` is the CloudTrail call that caused the
/// audit, when there is one.
pub fn audit(snapshot: &Snapshot, trigger: Option<&Trigger>, rules: &Rules) -> Vec<Finding> {
    let primary = snapshot.primary.found();
    let secret_key = primary
        .map(|p| p.arn.as_str())
        .unwrap_or(&snapshot.secret_ref);
    let name = primary
        .map(|p| p.name.as_str())
        .unwrap_or(&snapshot.secret_ref);
    let mut f = Findings {
        secret: secret_key,
        out: Vec::new(),
    };

    if let Some(t) = trigger {
        trigger_findings(&mut f, t, name);
    }
    for gap in &snapshot.gaps {
        f.add(
            Code::AuditIncomplete,
            Some(&gap.region),
            &gap.call,
            format!("Could not run {} in {} for {name}: {}. This check was not made.", gap.call, gap.region, gap.reason),
            format!("Grant the auditor's role {} in {} (or wait out throttling), then re-run the audit.", gap.call, gap.region),
        )
        .gap_kind = Some(gap.kind);
    }
    match &snapshot.primary {
        Lookup::NotFound => {
            f.add(
                Code::SecretNotFound,
                trigger.map(|t| t.region.as_str()),
                "",
                format!("Secret {name} no longer exists (or is scheduled for deletion), so its replication cannot be audited."),
                "No action needed if the deletion was intended; otherwise restore it with RestoreSecret before the recovery window ends.".into(),
            );
        }
        Lookup::Unknown => {}
        Lookup::Found(p) => {
            secret_findings(&mut f, snapshot, p, trigger, rules);
            removal_findings(&mut f, snapshot, p);
            f.out
                .extend(crate::cross_account::findings(snapshot, p, trigger, rules));
            f.out.extend(crate::freshness::findings(snapshot, p, rules));
            f.out
                .extend(crate::rotation::findings(snapshot, p, trigger));
        }
    }
    f.out
}

/// REPLICA_REMOVED_BY_REMEDIATION for every Region the auditor removed
/// (the remediation journal) that is not InSync again: naming the Region,
/// when, and every restore attempt's outcome.
fn removal_findings(f: &mut Findings<'_>, s: &Snapshot, p: &SecretState) {
    for r in s.removed.iter().filter(|r| r.arn == p.arn) {
        let now = p.replication.iter().find(|x| x.region == r.region);
        if now.is_some_and(|x| x.status == Some(ReplicationState::InSync)) {
            continue;
        }
        let state = match now {
            None => "is not in its replication any more".to_string(),
            Some(x) => format!(
                "is {}",
                x.status
                    .as_ref()
                    .map_or("without a status", |st| st.as_str())
            ),
        };
        let attempts = if r.attempts.is_empty() {
            "no attempt has answered yet".to_string()
        } else {
            r.attempts
                .iter()
                .map(|(at, outcome)| {
                    let when = at.split('#').next().unwrap_or(at);
                    format!("{when}: {outcome}")
                })
                .collect::<Vec<_>>()
                .join("; ")
        };
        f.add(
            Code::ReplicaRemovedByRemediation,
            Some(&r.region),
            "",
            format!(
                "The auditor's remediation removed {} from the replication of {} at {} to replicate it again, and the Region {state}. Attempts: {attempts}.",
                r.region, p.name, r.removed_at
            ),
            format!(
                "Remediation keeps restoring {} (ReplicateSecretToRegions) within its write budget until it is InSync. To stop, replicate it yourself, remove {} from ALLOWED_REGIONS, delete the secret, or delete the journal entry (docs/reliability.md).",
                r.region, r.region
            ),
        );
    }
}

fn trigger_findings(f: &mut Findings<'_>, t: &Trigger, name: &str) {
    if let Some(owner) = t.other_owner() {
        let actor = t.actor.display.as_deref().unwrap_or("an unknown caller");
        let outcome = match &t.error_code {
            Some(code) => format!("failed with {code}"),
            None => "succeeded".to_string(),
        };
        f.add(
            Code::CrossAccountCall,
            Some(&t.region),
            t.event.as_str(),
            format!(
                "{} by {actor} in account {} named secret {name}, which account {owner} owns; the call {outcome}. This is the caller's copy of a cross-account call: the auditor reports it from the event alone and does not enter account {owner}. A call that reached the secret is audited from the owner's own copy of the event.",
                t.event.as_str(),
                t.account
            ),
            format!(
                "Confirm that {actor} is meant to call secrets of account {owner}; if not, remove what grants it (the secret's resource policy, the key policy) in account {owner}."
            ),
        );
    }
    if let Some(code) = &t.error_code {
        let actor = t.actor.display.as_deref().unwrap_or("an unknown caller");
        let detail = t
            .error_message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        f.add(
            Code::ApiCallFailed,
            Some(t.region.as_str()),
            t.event.as_str(),
            format!("{} on {name} by {actor} failed with {code}{detail}.", t.event.as_str()),
            format!("Check why {} failed ({code}) and retry it once the cause is fixed; the secret's current state is audited below.", t.event.as_str()),
        );
    }
}

fn secret_findings(
    f: &mut Findings<'_>,
    s: &Snapshot,
    p: &SecretState,
    trigger: Option<&Trigger>,
    rules: &Rules,
) {
    let name = p.name.as_str();
    let listed: BTreeSet<&str> = s
        .replicas
        .iter()
        .map(|r| r.status.region.as_str())
        .collect();

    // Region rules: every Region the secret lives in must be allowed.
    if !rules.allowed_regions.is_empty() {
        for region in std::iter::once(p.region.as_str()).chain(listed.iter().copied()) {
            if !rules.allowed_regions.contains(region) {
                let what = if region == p.region {
                    "Its primary"
                } else {
                    "A replica"
                };
                f.add(
                    Code::RegionNotAllowed,
                    Some(region),
                    "",
                    format!("{what} copy of {name} is in {region}, which is not in ALLOWED_REGIONS ({}).", join(&rules.allowed_regions)),
                    if region == p.region {
                        format!("Move the secret to an allowed Region, or add {region} to ALLOWED_REGIONS if it is approved.")
                    } else {
                        format!("Remove the replica with RemoveRegionsFromReplication --remove-replica-regions {region}, or add {region} to ALLOWED_REGIONS if it is approved.")
                    },
                );
            }
        }
    }
    let mut required = rules.required_regions.clone();
    let tag_regions = p.tags.get(REQUIRED_REGIONS_TAG);
    required.extend(crate::model::split_list(tag_regions.cloned()));
    for region in required
        .iter()
        .filter(|r| **r != p.region && !listed.contains(r.as_str()))
    {
        let source = if rules.required_regions.contains(region) {
            "REQUIRED_REGIONS"
        } else {
            REQUIRED_REGIONS_TAG
        };
        let removed_by = trigger
            .filter(|t| {
                t.event == HandledEvent::RemoveRegionsFromReplication
                    && t.removed_regions.contains(region)
            })
            .map(|t| {
                format!(
                    " It was removed by {}.",
                    t.actor.display.as_deref().unwrap_or("an unknown caller")
                )
            })
            .unwrap_or_default();
        f.add(
            Code::RequiredRegionMissing,
            Some(region),
            "",
            format!("{name} has no replica in {region}, which {source} requires.{removed_by}"),
            format!("Replicate it: aws secretsmanager replicate-secret-to-regions --secret-id {name} --add-replica-regions Region={region},KmsKeyId=<key in {region}> --region {}", p.region),
        );
    }

    for r in &s.replicas {
        replica_findings(f, p, r);
    }
    key_findings(f, s, p, rules);
    secret_policy_findings(f, s, p, rules);
    if let Some(promo) = &s.promotion {
        promotion_findings(f, promo);
    }
}

/// A replica promoted to a standalone secret (StopReplicationToReplica).
fn promotion_findings(f: &mut Findings<'_>, promo: &Promotion) {
    let st = &promo.standalone;
    let rotation = if st.rotation_enabled {
        "Rotation is ON"
    } else {
        "Rotation is OFF"
    };
    let former = match &promo.former_primary {
        Some(fp) if fp.replication.iter().any(|r| r.region == st.region) => format!(
            " Its former primary {} in {} still lists {} as a replica: the two disagree.",
            fp.arn, fp.region, st.region
        ),
        Some(fp) => format!(" Its former primary is {} in {}.", fp.arn, fp.region),
        None => " Its former primary could not be found.".to_string(),
    };
    f.add(
        Code::ReplicaPromoted,
        Some(&st.region),
        "",
        format!(
            "The replica of {} in {} was promoted to the standalone secret {} (StopReplicationToReplica). {rotation} for it there. It no longer receives changes from the primary.{former}",
            st.name, st.region, st.arn
        ),
        format!(
            "Repoint applications that should use the standalone secret to {}; applications that must follow the primary need a new replica in {} (ReplicateSecretToRegions), which first requires deleting or renaming the standalone secret.",
            st.arn, st.region
        ),
    );
}

fn replica_findings(f: &mut Findings<'_>, p: &SecretState, r: &ReplicaCheck) {
    let region = r.status.region.as_str();
    let name = p.name.as_str();
    let msg = r.status.status_message.as_deref();
    match &r.status.status {
        Some(ReplicationState::InSync) => match &r.presence {
            Lookup::NotFound => {
                f.add(
                    Code::ReplicaMissing,
                    Some(region),
                    "",
                    format!("{} lists a replica of {name} in {region} as InSync, but no such secret exists there.", p.region),
                    format!("Remove {region} from replication and replicate it again, so Secrets Manager recreates the replica."),
                );
            }
            Lookup::Found(there) if there.home_region() != p.region => {
                f.add(
                    Code::ReplicaMissing,
                    Some(region),
                    "",
                    format!(
                        "{} lists a replica of {name} in {region}, but the secret there ({}) is not a replica of this primary (its primary Region is {}).",
                        p.region,
                        there.arn,
                        there.home_region()
                    ),
                    format!("Decide which secret {region} should hold; then remove {region} from replication and replicate again."),
                );
            }
            _ => {}
        },
        Some(ReplicationState::Failed) => {
            let cause = classify_failure(msg);
            let remediation = match cause {
                FailureCause::NameConflict => format!(
                    "A different secret named {name} already exists in {region}. Delete or rename it, or replicate with --force-overwrite-replica-secret (this destroys that secret), then retry."
                ),
                FailureCause::KmsKey => format!(
                    "Make the replica's KMS key in {region} usable (enabled, with a key policy allowing Secrets Manager), then retry replication."
                ),
                FailureCause::RegionDisabled => format!(
                    "Enable the Region {region} for the account (Account > AWS Regions), then retry replication."
                ),
                FailureCause::Other => format!(
                    "Read the status message, fix the cause, then remove {region} from replication and replicate again."
                ),
            };
            f.add(
                Code::ReplicaFailed,
                Some(region),
                "",
                format!(
                    "Replication of {name} to {region} failed: {}",
                    msg.unwrap_or("no status message")
                ),
                remediation,
            )
            .cause = Some(cause);
        }
        Some(s @ (ReplicationState::InProgress | ReplicationState::Pending)) => {
            f.add(
                Code::ReplicaInProgress,
                Some(region),
                "",
                format!("Replication of {name} to {region} was still {s} when the audit ended."),
                format!("Usually transient; if it stays {s}, audit again and check the replica's StatusMessage."),
            );
        }
        Some(ReplicationState::Detached) => {
            f.add(
                Code::ReplicaDetached,
                Some(region),
                "",
                format!(
                    "The replica of {name} in {region} is Detached: it no longer receives the primary's changes (message: {}).",
                    msg.unwrap_or("none")
                ),
                format!("Remove {region} from replication and replicate it again, or promote the replica (StopReplicationToReplica) if it is meant to stand alone."),
            );
        }
        other => {
            f.add(
                Code::ReplicaStatusUnknown,
                Some(region),
                "",
                format!(
                    "Replica of {name} in {region} has status {:?}, which this auditor does not know (message: {}).",
                    other.as_ref().map_or("<none>", |s| s.as_str()),
                    msg.unwrap_or("none")
                ),
                "Check the replica in the console; upgrade the auditor if AWS added a status.".into(),
            );
        }
    }
}

/// The secret's resource policy, judged like a key policy with Secrets
/// Manager's actions.
fn secret_policy_findings(f: &mut Findings<'_>, s: &Snapshot, p: &SecretState, rules: &Rules) {
    let Some(doc) = &s.secret_policy else { return };
    let arn_account = crate::arn::parse_secret_arn(&p.arn).map(|a| a.account);
    let holder = PolicyHolder {
        service: Service::SecretsManager,
        region: &p.region,
        subject: &p.arn,
        what: format!("The resource policy of secret {} ({})", p.name, p.arn),
    };
    policy_findings(f, &holder, doc, &trust(arn_account.as_deref(), s, rules));
}

/// Whose accounts and organisations the policies may grant: the secret's
/// own account (its ARN says, else the event did) and the trusted ones.
fn trust<'a>(arn_account: Option<&'a str>, s: &'a Snapshot, rules: &'a Rules) -> Trust<'a> {
    Trust {
        own_account: arn_account.or(s.account.as_deref()),
        trusted: &rules.trusted_account_ids,
        trusted_orgs: &rules.trusted_org_ids,
    }
}

fn key_findings(f: &mut Findings<'_>, s: &Snapshot, p: &SecretState, rules: &Rules) {
    let arn_account = crate::arn::parse_secret_arn(&p.arn).map(|a| a.account);
    let trust = trust(arn_account.as_deref(), s, rules);
    let primary_cmk = s
        .keys
        .iter()
        .find(|k| k.role == KeyRole::Primary)
        .is_some_and(KeyCheck::is_customer_managed);
    for k in &s.keys {
        let region = k.region.as_str();
        let key = k.key_ref.as_deref().unwrap_or("alias/aws/secretsmanager");
        let whose = match k.role {
            KeyRole::Primary => format!("the primary copy of {} in {region}", p.name),
            KeyRole::Replica => format!("the replica of {} in {region}", p.name),
        };
        if k.is_aws_managed() {
            if rules.require_customer_managed_key {
                f.add(
                    Code::KeyAwsManaged,
                    Some(region),
                    "",
                    format!("{} is encrypted with the AWS-managed key aws/secretsmanager, but REQUIRE_CUSTOMER_MANAGED_KEY is true.", capitalise(&whose)),
                    format!("Re-encrypt it with a customer-managed key in {region} (UpdateSecret --kms-key-id on the primary, or the replica's KmsKeyId)."),
                );
            }
            if k.role == KeyRole::Replica && primary_cmk {
                f.add(
                    Code::ReplicaKeyWeakerThanPrimary,
                    Some(region),
                    "",
                    format!("The primary of {} uses a customer-managed key, but {whose} uses the AWS-managed key aws/secretsmanager.", p.name),
                    format!("Give the replica in {region} a customer-managed key with an equivalent key policy."),
                );
            }
        }
        match &k.info {
            KeyInfo::NotFound => {
                f.add(
                    Code::KeyNotFound,
                    Some(region),
                    key,
                    format!("KMS key {key} used by {whose} does not exist in {region}."),
                    format!("Point the secret at a key that exists in {region}; Secrets Manager cannot decrypt or replicate with a missing key."),
                );
            }
            KeyInfo::Described(d) => {
                match d.state.as_str() {
                    "Disabled" | "Unavailable" | "PendingImport" => {
                        f.add(
                            Code::KeyDisabled,
                            Some(region),
                            &d.arn,
                            format!("KMS key {} used by {whose} is {}: the secret cannot be read or replicated there.", d.arn, d.state),
                            format!("Enable the key (aws kms enable-key --key-id {} --region {region}) or move the secret to a usable key.", d.key_id),
                        );
                    }
                    "PendingDeletion" | "PendingReplicaDeletion" => {
                        f.add(
                            Code::KeyPendingDeletion,
                            Some(region),
                            &d.arn,
                            format!("KMS key {} used by {whose} is scheduled for deletion ({}): once deleted, the secret is unrecoverable there.", d.arn, d.state),
                            format!("Cancel the deletion now (aws kms cancel-key-deletion --key-id {} --region {region}), then re-enable the key.", d.key_id),
                        );
                    }
                    _ => {}
                }
                if let Some(doc) = &d.policy {
                    let holder = PolicyHolder {
                        service: Service::Kms,
                        region,
                        subject: &d.arn,
                        what: format!("The key policy of {} ({whose})", d.arn),
                    };
                    policy_findings(f, &holder, doc, &trust);
                }
            }
            KeyInfo::AwsManagedDefault | KeyInfo::Unknown => {}
        }
    }
}

/// Whose policy is judged: the service that holds it and how findings name it.
struct PolicyHolder<'a> {
    service: Service,
    region: &'a str,
    /// The key's or the secret's ARN: the subject of the finding ids.
    subject: &'a str,
    /// "The key policy of ARN (...)", "The resource policy of secret NAME".
    what: String,
}

/// Findings from one key policy or secret resource policy. They name the
/// statement by its Sid; the policy text never goes into a report.
fn policy_findings(f: &mut Findings<'_>, h: &PolicyHolder<'_>, doc: &str, trust: &Trust<'_>) {
    let (public, untrusted, narrow) = match h.service {
        Service::Kms => (
            Code::KeyPolicyPublic,
            Code::KeyPolicyUntrustedAccount,
            "Restrict the statement's Principal to your accounts, or add a condition on aws:PrincipalAccount / aws:PrincipalOrgID.",
        ),
        Service::SecretsManager => (
            Code::SecretPolicyPublic,
            Code::SecretPolicyUntrustedAccount,
            "Restrict the statement's Principal to your accounts, or add a condition on aws:PrincipalAccount / aws:PrincipalOrgID; PutResourcePolicy with --block-public-policy refuses such policies.",
        ),
    };
    let (what, region) = (&h.what, Some(h.region));
    let issues = match policy::analyse_policy(h.service, doc, trust) {
        Ok(issues) => issues,
        Err(e) => {
            f.add(
                Code::AuditIncomplete,
                region,
                &format!("policy:{}", h.subject),
                format!("{what} could not be analysed: {e}."),
                "Review the policy by hand.".into(),
            );
            return;
        }
    };
    let sid = |s: &Option<String>| {
        s.as_deref()
            .map(|x| format!("statement {x:?}"))
            .unwrap_or_else(|| "a statement without Sid".into())
    };
    for issue in issues {
        match issue {
            PolicyIssue::Public { sid: s } => {
                f.add(
                    public,
                    region,
                    h.subject,
                    format!("{what} allows any AWS principal ({}) without a condition pinning the caller's account or organisation.", sid(&s)),
                    narrow.into(),
                );
            }
            PolicyIssue::UntrustedAccount { sid: s, account } => {
                f.add(
                    untrusted,
                    region,
                    &format!("{}:{account}", h.subject),
                    format!("{what} allows account {account}, which is neither the secret's own account nor in TRUSTED_ACCOUNT_IDS ({}).", sid(&s)),
                    format!("Remove account {account} from the policy, or add it to TRUSTED_ACCOUNT_IDS if it is trusted."),
                );
            }
            PolicyIssue::UntrustedOrg { sid: s, org } => {
                f.add(
                    untrusted,
                    region,
                    &format!("{}:{org}", h.subject),
                    format!("{what} allows principals of organisation {org}, which is neither the auditor's own organisation nor in TRUSTED_ORG_IDS ({}).", sid(&s)),
                    format!("Remove the grant to organisation {org}, or add it to TRUSTED_ORG_IDS if it is trusted."),
                );
            }
            PolicyIssue::Unjudged { statement, reason } => {
                f.add(
                    Code::AuditIncomplete,
                    region,
                    &format!("policy:{}:{statement}", h.subject),
                    format!(
                        "{what} could not be fully judged: statement {statement:?} has {reason}."
                    ),
                    "Review that statement by hand and name the accounts it should allow.".into(),
                );
            }
        }
    }
}

fn join(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(", ")
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}
