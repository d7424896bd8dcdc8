//! Domain types shared by the audit, the adapters and the report: severities,
//! finding codes, findings, and the snapshot of one secret across Regions.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Finding severity, ordered from least to most severe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "INFO" => Ok(Severity::Info),
            "LOW" => Ok(Severity::Low),
            "MEDIUM" => Ok(Severity::Medium),
            "HIGH" => Ok(Severity::High),
            "CRITICAL" => Ok(Severity::Critical),
            other => Err(format!(
                "unknown severity {other:?}; expected INFO, LOW, MEDIUM, HIGH or CRITICAL"
            )),
        }
    }
}

/// Every finding code the auditor can produce. The code is the stable
/// contract with subscribers; its severity is fixed here and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Code {
    ReplicaFailed,
    ReplicaInProgress,
    ReplicaStatusUnknown,
    ReplicaMissing,
    ReplicaKeyWeakerThanPrimary,
    KeyAwsManaged,
    KeyNotFound,
    KeyDisabled,
    KeyPendingDeletion,
    KeyPolicyPublic,
    KeyPolicyUntrustedAccount,
    SecretPolicyPublic,
    SecretPolicyUntrustedAccount,
    RegionNotAllowed,
    RequiredRegionMissing,
    ReplicaPromoted,
    ApiCallFailed,
    SecretNotFound,
    AuditIncomplete,
    /// The event is the caller's copy of a call on a secret another account
    /// owns: reported from the event alone, never entering that account.
    CrossAccountCall,
    /// The auditor's remediation removed a Failed Region (the remediation
    /// journal) and the Region is not InSync again yet.
    ReplicaRemovedByRemediation,
    /// Cross-account replication (issue 26, [`crate::cross_account`]):
    /// status Failed, from either side.
    CrossAccountReplicaFailed,
    /// Pending or InProgress longer than
    /// [`crate::cross_account::STALLED_AFTER_SECONDS`].
    CrossAccountReplicaStalled,
    /// A Region replica or a cross-account link in status Detached.
    ReplicaDetached,
    /// The primary replicates to an account outside the trust boundary.
    CrossAccountReplicaOutsideTrust,
    /// The replica is fed by a primary in an account outside it.
    CrossAccountPrimaryOutsideTrust,
    /// The replication role is not in the primary's account.
    CrossAccountRoleOutsidePrimaryAccount,
    /// The two sides, each described in its own account, disagree.
    CrossAccountMismatch,
    /// A replica without the primary's AWSCURRENT version when that
    /// version is older than REPLICA_LAG_SECONDS (docs/freshness.md).
    ReplicaStale,
    /// A rotation of a primary with replicas failed or was abandoned
    /// (RotationFailed, RotationAbandoned): each replica's state, and
    /// whether the primary holds an AWSPENDING version the replicas lack
    /// (docs/freshness.md).
    RotationFailedWithReplicas,
}

impl Code {
    pub const ALL: [Code; 30] = [
        Code::ReplicaFailed,
        Code::ReplicaInProgress,
        Code::ReplicaStatusUnknown,
        Code::ReplicaMissing,
        Code::ReplicaKeyWeakerThanPrimary,
        Code::KeyAwsManaged,
        Code::KeyNotFound,
        Code::KeyDisabled,
        Code::KeyPendingDeletion,
        Code::KeyPolicyPublic,
        Code::KeyPolicyUntrustedAccount,
        Code::SecretPolicyPublic,
        Code::SecretPolicyUntrustedAccount,
        Code::RegionNotAllowed,
        Code::RequiredRegionMissing,
        Code::ReplicaPromoted,
        Code::ApiCallFailed,
        Code::SecretNotFound,
        Code::AuditIncomplete,
        Code::CrossAccountCall,
        Code::ReplicaRemovedByRemediation,
        Code::CrossAccountReplicaFailed,
        Code::CrossAccountReplicaStalled,
        Code::ReplicaDetached,
        Code::CrossAccountReplicaOutsideTrust,
        Code::CrossAccountPrimaryOutsideTrust,
        Code::CrossAccountRoleOutsidePrimaryAccount,
        Code::CrossAccountMismatch,
        Code::ReplicaStale,
        Code::RotationFailedWithReplicas,
    ];

    pub fn severity(self) -> Severity {
        use Code::*;
        match self {
            ReplicaFailed | ReplicaMissing | KeyNotFound | KeyDisabled => Severity::High,
            KeyPolicyUntrustedAccount | SecretPolicyUntrustedAccount => Severity::High,
            RegionNotAllowed | RequiredRegionMissing | ReplicaRemovedByRemediation => {
                Severity::High
            }
            KeyPendingDeletion | KeyPolicyPublic | SecretPolicyPublic => Severity::Critical,
            ReplicaStatusUnknown | ReplicaKeyWeakerThanPrimary | KeyAwsManaged => Severity::Medium,
            ReplicaPromoted | ApiCallFailed | AuditIncomplete => Severity::Medium,
            ReplicaInProgress | SecretNotFound | CrossAccountCall => Severity::Low,
            CrossAccountReplicaFailed | CrossAccountReplicaOutsideTrust => Severity::High,
            CrossAccountPrimaryOutsideTrust | CrossAccountRoleOutsidePrimaryAccount => {
                Severity::High
            }
            CrossAccountMismatch | ReplicaStale => Severity::High,
            CrossAccountReplicaStalled | ReplicaDetached => Severity::Medium,
            // The primary keeps its AWSCURRENT, so no Region serves a new
            // value the others lack; a replica left behind is REPLICA_STALE.
            RotationFailedWithReplicas => Severity::Medium,
        }
    }

    pub fn as_str(self) -> &'static str {
        use Code::*;
        match self {
            ReplicaFailed => "REPLICA_FAILED",
            ReplicaInProgress => "REPLICA_IN_PROGRESS",
            ReplicaStatusUnknown => "REPLICA_STATUS_UNKNOWN",
            ReplicaMissing => "REPLICA_MISSING",
            ReplicaKeyWeakerThanPrimary => "REPLICA_KEY_WEAKER_THAN_PRIMARY",
            KeyAwsManaged => "KEY_AWS_MANAGED",
            KeyNotFound => "KEY_NOT_FOUND",
            KeyDisabled => "KEY_DISABLED",
            KeyPendingDeletion => "KEY_PENDING_DELETION",
            KeyPolicyPublic => "KEY_POLICY_PUBLIC",
            KeyPolicyUntrustedAccount => "KEY_POLICY_UNTRUSTED_ACCOUNT",
            SecretPolicyPublic => "SECRET_POLICY_PUBLIC",
            SecretPolicyUntrustedAccount => "SECRET_POLICY_UNTRUSTED_ACCOUNT",
            RegionNotAllowed => "REGION_NOT_ALLOWED",
            RequiredRegionMissing => "REQUIRED_REGION_MISSING",
            ReplicaPromoted => "REPLICA_PROMOTED",
            ApiCallFailed => "API_CALL_FAILED",
            SecretNotFound => "SECRET_NOT_FOUND",
            AuditIncomplete => "AUDIT_INCOMPLETE",
            CrossAccountCall => "CROSS_ACCOUNT_CALL",
            ReplicaRemovedByRemediation => "REPLICA_REMOVED_BY_REMEDIATION",
            CrossAccountReplicaFailed => "CROSS_ACCOUNT_REPLICA_FAILED",
            CrossAccountReplicaStalled => "CROSS_ACCOUNT_REPLICA_STALLED",
            ReplicaDetached => "REPLICA_DETACHED",
            CrossAccountReplicaOutsideTrust => "CROSS_ACCOUNT_REPLICA_OUTSIDE_TRUST",
            CrossAccountPrimaryOutsideTrust => "CROSS_ACCOUNT_PRIMARY_OUTSIDE_TRUST",
            CrossAccountRoleOutsidePrimaryAccount => "CROSS_ACCOUNT_ROLE_OUTSIDE_PRIMARY_ACCOUNT",
            CrossAccountMismatch => "CROSS_ACCOUNT_MISMATCH",
            ReplicaStale => "REPLICA_STALE",
            RotationFailedWithReplicas => "ROTATION_FAILED_WITH_REPLICAS",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a replica is in status Failed, classified from its StatusMessage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCause {
    NameConflict,
    KmsKey,
    RegionDisabled,
    Other,
}

/// One finding in a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable for the same secret, code and Region (see `report::finding_id`).
    pub id: String,
    pub code: Code,
    pub severity: Severity,
    pub region: Option<String>,
    pub message: String,
    pub remediation: String,
    /// Only on REPLICA_FAILED: the classified cause.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<FailureCause>,
    /// Only on AUDIT_INCOMPLETE: why the check could not be made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gap_kind: Option<GapKind>,
}

/// The state of one secret in one Region, as DescribeSecret shows it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SecretState {
    pub arn: String,
    pub name: String,
    /// The Region this description was read in.
    pub region: String,
    /// DescribeSecret's PrimaryRegion; `None` when the field is absent.
    pub primary_region: Option<String>,
    /// The key as the secret names it; `None` means the AWS-managed key.
    pub kms_key_id: Option<String>,
    pub rotation_enabled: bool,
    pub tags: BTreeMap<String, String>,
    /// ReplicationStatus entries (meaningful on the primary).
    pub replication: Vec<ReplicaStatus>,
    /// LastChangedDate, epoch seconds; `None` when AWS did not say.
    pub last_changed: Option<i64>,
    /// VersionIdsToStages (SecretVersionsToStages in ListSecrets): each
    /// labelled version id and its staging labels. Ids only, never values.
    pub versions: BTreeMap<String, Vec<String>>,
}

impl SecretState {
    /// The version id labelled AWSCURRENT, when AWS named one.
    pub fn current_version(&self) -> Option<&str> {
        self.labelled("AWSCURRENT")
    }

    /// The version id labelled AWSPENDING when it is not the AWSCURRENT
    /// one: a rotation under way, or one that did not finish.
    pub fn pending_version(&self) -> Option<&str> {
        self.labelled("AWSPENDING")
            .filter(|v| Some(*v) != self.current_version())
    }

    /// Whether version `id` carries the staging label `stage`.
    pub fn has_label(&self, id: &str, stage: &str) -> bool {
        self.versions
            .get(id)
            .is_some_and(|stages| stages.iter().any(|s| s == stage))
    }

    fn labelled(&self, stage: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, stages)| stages.iter().any(|s| s == stage))
            .map(|(id, _)| id.as_str())
    }

    /// The Region that owns this secret: its PrimaryRegion, or the Region
    /// it was described in when the field is absent (a standalone secret).
    pub fn home_region(&self) -> &str {
        self.primary_region.as_deref().unwrap_or(&self.region)
    }

    pub fn is_primary_copy(&self) -> bool {
        self.home_region() == self.region
    }
}

/// One entry of a primary's ReplicationStatus.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct ReplicaStatus {
    pub region: String,
    pub kms_key_id: Option<String>,
    pub status: Option<ReplicationState>,
    pub status_message: Option<String>,
}

/// A replica's ReplicationStatus `Status` (the model's `StatusType`,
/// shared by Region and cross-account replicas). AWS documents `InSync`,
/// `Failed`, `InProgress`, and since botocore 1.44.2 `Pending` and
/// `Detached`; anything else is kept as sent (the audit
/// reports it as REPLICA_STATUS_UNKNOWN). It is written as AWS's own
/// string, so reports are unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub enum ReplicationState {
    InSync,
    InProgress,
    Failed,
    /// Replication has not started yet.
    Pending,
    /// The link between primary and replica was stopped.
    Detached,
    Other(String),
}

impl ReplicationState {
    pub fn as_str(&self) -> &str {
        match self {
            ReplicationState::InSync => "InSync",
            ReplicationState::InProgress => "InProgress",
            ReplicationState::Failed => "Failed",
            ReplicationState::Pending => "Pending",
            ReplicationState::Detached => "Detached",
            ReplicationState::Other(s) => s,
        }
    }
}

impl From<String> for ReplicationState {
    fn from(s: String) -> Self {
        match s.as_str() {
            "InSync" => ReplicationState::InSync,
            "InProgress" => ReplicationState::InProgress,
            "Failed" => ReplicationState::Failed,
            "Pending" => ReplicationState::Pending,
            "Detached" => ReplicationState::Detached,
            _ => ReplicationState::Other(s),
        }
    }
}

impl From<&str> for ReplicationState {
    fn from(s: &str) -> Self {
        ReplicationState::from(s.to_string())
    }
}

impl From<ReplicationState> for String {
    fn from(s: ReplicationState) -> Self {
        match s {
            ReplicationState::Other(s) => s,
            known => known.as_str().to_string(),
        }
    }
}

impl fmt::Display for ReplicationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a lookup that may fail for reasons other than absence.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup<T> {
    Found(T),
    NotFound,
    /// The check could not be made; a [`Gap`] says why.
    Unknown,
}

impl<T> Lookup<T> {
    pub fn found(&self) -> Option<&T> {
        match self {
            Lookup::Found(t) => Some(t),
            _ => None,
        }
    }
}

/// A replica Region listed by the primary, with what was found there.
#[derive(Debug, Clone, PartialEq)]
pub struct ReplicaCheck {
    pub status: ReplicaStatus,
    /// DescribeSecret in the replica's Region.
    pub presence: Lookup<SecretState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyRole {
    Primary,
    Replica,
}

/// What KMS says about a customer key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyDetails {
    pub key_id: String,
    pub arn: String,
    /// KeyState as KMS reports it (Enabled, Disabled, PendingDeletion, ...).
    pub state: String,
    /// KeyManager: AWS or CUSTOMER.
    pub aws_managed: bool,
    /// The key policy document; `None` when not fetched (AWS-managed keys)
    /// or when GetKeyPolicy failed (a gap says so).
    pub policy: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum KeyInfo {
    /// `aws/secretsmanager`, recognised without a KMS call.
    AwsManagedDefault,
    Described(KeyDetails),
    NotFound,
    Unknown,
}

/// The key that encrypts one copy of the secret, checked in that Region.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyCheck {
    pub region: String,
    pub role: KeyRole,
    /// The key as the secret names it (`None` = the AWS-managed default).
    pub key_ref: Option<String>,
    pub info: KeyInfo,
}

impl KeyCheck {
    /// True when the key is the AWS-managed key (by name or by KMS's word).
    pub fn is_aws_managed(&self) -> bool {
        match &self.info {
            KeyInfo::AwsManagedDefault => true,
            KeyInfo::Described(d) => d.aws_managed,
            _ => false,
        }
    }

    /// True when the key is known to be customer managed.
    pub fn is_customer_managed(&self) -> bool {
        match &self.info {
            KeyInfo::Described(d) => !d.aws_managed,
            // Not resolved: the name alone says it is not the default key.
            KeyInfo::NotFound | KeyInfo::Unknown => !is_default_key_ref(self.key_ref.as_deref()),
            KeyInfo::AwsManagedDefault => false,
        }
    }
}

/// True for the references that mean the AWS-managed Secrets Manager key.
pub fn is_default_key_ref(key: Option<&str>) -> bool {
    match key {
        None => true,
        Some(k) => {
            let k = k.trim();
            k.is_empty()
                || k == "alias/aws/secretsmanager"
                || k.ends_with(":alias/aws/secretsmanager")
        }
    }
}

/// Why a check could not be made: classified once, where the AWS error (or
/// the auditor's own refusal or pacing) was met, and carried from there to
/// every decision and metric. `Gap::reason` is text for people only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GapKind {
    /// The auditor's role was not allowed the call.
    AccessDenied,
    /// Throttled past the SDK's retries.
    Throttled,
    /// The resource the call named does not exist.
    NotFound,
    /// No answer within the invocation's deadline.
    TimedOut,
    /// Never sent: the auditor's own pacing or the invocation's reserve
    /// would have started it only after the deadline.
    NotStarted,
    /// The service could not be reached (connection, DNS, TLS).
    Unreachable,
    /// The auditor may not act in the account (its trust boundary).
    Refused,
    /// Any other error the service answered with.
    Other,
}

/// A check that could not be made.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    /// The API call, e.g. `kms:GetKeyPolicy`.
    pub call: String,
    pub region: String,
    pub kind: GapKind,
    /// Why, for people (logs and the AUDIT_INCOMPLETE message).
    pub reason: String,
}

/// One entry of the remediation journal: a Region the auditor's
/// remediation removed from a secret's replication (a Failed replica must
/// be removed before it can be replicated again), written before the
/// RemoveRegionsFromReplication and cleared once the Region is InSync again
/// (docs/reliability.md). While it stands, every audit of the secret
/// reports REPLICA_REMOVED_BY_REMEDIATION and remediation restores it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Removal {
    /// The primary's ARN.
    pub arn: String,
    /// The replica Region removed.
    pub region: String,
    /// When the removal was recorded (RFC 3339).
    pub removed_at: String,
    /// The replica's KMS key, to restore it with.
    pub kms_key_id: Option<String>,
    /// Whether the retry overwrote a same-named secret (AllowForceOverwrite).
    pub force_overwrite: bool,
    /// Every attempt's outcome, by `<RFC 3339>#<request id>#<attempt>`: in
    /// the order they were made.
    pub attempts: BTreeMap<String, String>,
}

/// A replica promoted to a standalone secret by StopReplicationToReplica.
#[derive(Debug, Clone, PartialEq)]
pub struct Promotion {
    pub standalone: SecretState,
    /// The former primary, when it could be found.
    pub former_primary: Option<SecretState>,
}

/// Everything the pure audit needs to know about one secret.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The secret as the trigger named it (name or ARN).
    pub secret_ref: String,
    /// The account the secret lives in, when known.
    pub account: Option<String>,
    /// The secret in its primary Region.
    pub primary: Lookup<SecretState>,
    pub replicas: Vec<ReplicaCheck>,
    pub keys: Vec<KeyCheck>,
    /// The primary's resource policy document (GetResourcePolicy in its
    /// Region); `None` when it has none, or when it could not be read (a
    /// gap says so).
    pub secret_policy: Option<String>,
    /// GetResourcePolicy answered: `secret_policy` is the policy, or
    /// `None` for none. False when the read failed (a gap says so), or was
    /// not made (a sweep passes over a policy not due by the policy
    /// ledger, [`crate::ledger`]).
    pub secret_policy_read: bool,
    pub promotion: Option<Promotion>,
    pub gaps: Vec<Gap>,
    /// The remediation journal's entries for this secret ([`Removal`]).
    pub removed: Vec<Removal>,
    /// Its cross-account replication, when it has any
    /// ([`crate::cross_account`]).
    pub cross_account: Option<crate::cross_account::CrossAccount>,
    /// When the snapshot was taken (epoch seconds), for the age of the
    /// primary's current version (REPLICA_STALE); `None` when unknown.
    pub observed_at: Option<i64>,
}

impl Snapshot {
    pub fn empty(secret_ref: impl Into<String>) -> Self {
        Snapshot {
            secret_ref: secret_ref.into(),
            account: None,
            primary: Lookup::Unknown,
            replicas: Vec::new(),
            keys: Vec::new(),
            secret_policy: None,
            secret_policy_read: false,
            promotion: None,
            gaps: Vec::new(),
            removed: Vec::new(),
            cross_account: None,
            observed_at: None,
        }
    }

    /// `secret_ref` in `account` when nothing could be looked at there:
    /// only `gaps` (an account not entered), or none (an event about
    /// another account's secret, reported from the event alone).
    pub fn unseen(secret_ref: impl Into<String>, account: &str, gaps: Vec<Gap>) -> Self {
        Snapshot {
            account: Some(account.to_string()),
            gaps,
            ..Snapshot::empty(secret_ref)
        }
    }
}

/// The report's name for a replication retry.
pub const ACTION_RETRY: &str = "retry_replication";

/// One entry of a report's `actions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Action {
    pub action: String,
    pub region: String,
    pub outcome: ActionOutcome,
    pub detail: String,
}

/// What a remediation action came to. Written as the report always wrote
/// it: the replica's status after a retry (`InSync`, `InProgress`,
/// `Failed`), or `skipped` / `dry_run`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ActionOutcome {
    InSync,
    InProgress,
    Failed,
    #[serde(rename = "skipped")]
    Skipped,
    #[serde(rename = "dry_run")]
    DryRun,
}

impl ActionOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionOutcome::InSync => "InSync",
            ActionOutcome::InProgress => "InProgress",
            ActionOutcome::Failed => "Failed",
            ActionOutcome::Skipped => "skipped",
            ActionOutcome::DryRun => "dry_run",
        }
    }
}

impl fmt::Display for ActionOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a sweep's summary report adds to the schema.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SweepSummary {
    pub regions: Vec<String>,
    /// Distinct primaries found by ListSecrets.
    pub secrets_seen: usize,
    /// Of those, the ones with replicas (or a required-Region rule): audited.
    pub secrets_audited: usize,
    pub secrets_with_findings: usize,
    /// Findings in the per-secret reports, by code.
    pub by_code: BTreeMap<String, usize>,
    /// Cross-account replicas by ReplicationStatus ([`AccountCounts`]).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cross_account_replicas: BTreeMap<String, usize>,
    pub reports_published: usize,
    /// Secrets not started before the deadline.
    pub not_reached: usize,
    /// KMS calls answered from the invocation's cache.
    pub kms_cache_hits: usize,
    pub kms_calls: usize,
    /// Replica checks answered from a ListSecrets listing of their Region,
    /// and the ListSecrets calls those listings took; the other replicas
    /// were described one by one.
    pub replicas_from_listing: usize,
    pub replica_listing_calls: usize,
    /// Resource policies read (GetResourcePolicy), and passed over as not
    /// due by the policy ledger (README "Resource policies between
    /// sweeps").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policies_read: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_policies_not_due: Option<usize>,
    pub duration_ms: u64,
    /// `"organization"` on the org sweep's summary (absent on a sweep of
    /// the own account): the fields below are then present too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The accounts the org sweep planned (the first
    /// [`crate::org::SUMMARY_MAX_ACCOUNTS`], sorted: the summary fits SNS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<Vec<String>>,
    /// How many accounts the org sweep planned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_total: Option<usize>,
    /// Planned accounts not in `accounts` (present when some are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_left_out: Option<usize>,
    /// The org sweep's cells (one per account and Region).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cells: Option<CellCounts>,
    /// The org sweep's counts per account: every account's when the plan
    /// has at most [`crate::org::SUMMARY_MAX_BY_ACCOUNT`], else only the
    /// accounts with failed cells or findings, at most that many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_account: Option<BTreeMap<String, AccountCounts>>,
    /// Planned accounts not in `by_account` (present when some are not);
    /// the totals above count them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_account_left_out: Option<usize>,
}

/// The org sweep's cells: planned, done (audited, or completed with
/// AUDIT_INCOMPLETE) and failed (their last delivery failed too).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CellCounts {
    pub total: usize,
    pub done: usize,
    pub failed: usize,
    /// The failed cells, `<account>/<Region>`, sorted (the first
    /// [`crate::org::SUMMARY_MAX_FAILED_CELLS`]).
    pub failed_cells: Vec<String>,
    /// Failed cells not in `failed_cells` (present when some are not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_cells_left_out: Option<usize>,
}

/// Secrets counted as a sweep goes: one sweep's, one org sweep cell's
/// part, or one account's share of an org sweep (the summary's
/// `by_account`). The one count of secrets every sweep path adds to.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AccountCounts {
    pub secrets_seen: usize,
    pub secrets_audited: usize,
    pub secrets_with_findings: usize,
    pub reports_published: usize,
    pub by_code: BTreeMap<String, usize>,
    /// Cross-account replicas by ReplicationStatus, counted from their
    /// primaries' side (docs/cross-account.md).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cross_account_replicas: BTreeMap<String, usize>,
}

impl AccountCounts {
    /// Count one audited secret's findings.
    pub fn count_audit(&mut self, findings: &[Finding]) {
        self.secrets_audited += 1;
        self.count_findings(findings);
    }

    /// Count a report's findings (by code, and the secret as one with
    /// findings) without counting an audit.
    pub fn count_findings(&mut self, findings: &[Finding]) {
        self.secrets_with_findings += usize::from(!findings.is_empty());
        for f in findings {
            *self.by_code.entry(f.code.as_str().to_string()).or_default() += 1;
        }
    }

    /// Add `other`'s counts.
    pub fn add(&mut self, other: &AccountCounts) {
        self.secrets_seen += other.secrets_seen;
        self.secrets_audited += other.secrets_audited;
        self.secrets_with_findings += other.secrets_with_findings;
        self.reports_published += other.reports_published;
        for (code, n) in &other.by_code {
            *self.by_code.entry(code.clone()).or_default() += n;
        }
        for (status, n) in &other.cross_account_replicas {
            *self
                .cross_account_replicas
                .entry(status.clone())
                .or_default() += n;
        }
    }

    /// Count a primary's cross-account replicas by status (`Unknown` when
    /// AWS gave none).
    pub fn count_cross_account(&mut self, links: &crate::cross_account::Links) {
        for r in &links.replicas {
            let status = r
                .status
                .as_ref()
                .map_or("Unknown", ReplicationState::as_str);
            *self
                .cross_account_replicas
                .entry(status.to_string())
                .or_default() += 1;
        }
    }
}

/// The calls a sweep's caches made and saved, counted the same way by a
/// sweep, an org sweep cell's part and the org sweep's bookkeeping.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CallCounts {
    pub kms_calls: u64,
    pub kms_cache_hits: u64,
    pub replicas_from_listing: u64,
    pub replica_listing_calls: u64,
    /// Resource policies read, and passed over as not due ([`crate::ledger`]).
    pub policies_read: u64,
    pub policies_not_due: u64,
}

impl CallCounts {
    /// Each count by its name: the one list the org sweep's bookkeeping
    /// names its attributes from (`t/<name>`).
    pub fn named_mut(&mut self) -> [(&'static str, &mut u64); 6] {
        [
            ("kms_calls", &mut self.kms_calls),
            ("kms_cache_hits", &mut self.kms_cache_hits),
            ("replicas_from_listing", &mut self.replicas_from_listing),
            ("replica_listing_calls", &mut self.replica_listing_calls),
            ("policies_read", &mut self.policies_read),
            ("policies_not_due", &mut self.policies_not_due),
        ]
    }

    /// Each count by its name ([`CallCounts::named_mut`]).
    pub fn named(&self) -> [(&'static str, u64); 6] {
        let mut copy = *self;
        copy.named_mut().map(|(name, n)| (name, *n))
    }
}

impl SweepSummary {
    /// A summary of `regions` with these counts (its other fields empty).
    pub fn with_counts(regions: Vec<String>, secrets: &AccountCounts, calls: &CallCounts) -> Self {
        SweepSummary {
            regions,
            secrets_seen: secrets.secrets_seen,
            secrets_audited: secrets.secrets_audited,
            secrets_with_findings: secrets.secrets_with_findings,
            by_code: secrets.by_code.clone(),
            cross_account_replicas: secrets.cross_account_replicas.clone(),
            reports_published: secrets.reports_published,
            kms_cache_hits: calls.kms_cache_hits as usize,
            kms_calls: calls.kms_calls as usize,
            replicas_from_listing: calls.replicas_from_listing as usize,
            replica_listing_calls: calls.replica_listing_calls as usize,
            resource_policies_read: Some(calls.policies_read as usize),
            resource_policies_not_due: Some(calls.policies_not_due as usize),
            ..SweepSummary::default()
        }
    }
}

/// The audit rules: what the pure audit compares a snapshot against.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rules {
    /// Empty means every Region is allowed.
    pub allowed_regions: BTreeSet<String>,
    pub required_regions: BTreeSet<String>,
    pub require_customer_managed_key: bool,
    pub trusted_account_ids: Vec<String>,
    /// Organisations whose principals policies may grant (TRUSTED_ORG_IDS);
    /// the auditor's own organisation is added when it is learned.
    pub trusted_org_ids: Vec<String>,
    /// REPLICA_LAG_SECONDS: how old the primary's current version may be
    /// before a replica without it is REPLICA_STALE.
    pub replica_lag_seconds: u64,
}

/// What the auditor may do about a failed replica.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemediationMode {
    /// Retry replication where a retry can fix it.
    On,
    /// Report what would be done; change nothing.
    DryRun,
    /// Report only.
    Off,
}

/// The remediation settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Remediation {
    pub mode: RemediationMode,
    /// How long to poll for a retried replica's outcome.
    pub verify: std::time::Duration,
    /// Whether a name clash may be resolved by overwriting the other secret.
    pub allow_force_overwrite: bool,
    /// Retries per Region per invocation.
    pub max_attempts: u32,
    /// The auditor's own principal (loop guard), when set explicitly.
    pub auditor_role_arn: Option<String>,
    /// Where the per-(secret, Region) remediation leases are kept
    /// (STATE_TABLE); required when the mode is `On`.
    pub state_table: Option<StateTable>,
    /// Replication writes (Remove and Replicate) per second, per invocation.
    pub writes_per_second: u32,
}

/// The DynamoDB state table: its name and, when STATE_TABLE is a table
/// ARN (a table shared by the stacks of several Regions), its Region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateTable {
    pub name: String,
    /// `None`: the function's own Region.
    pub region: Option<String>,
}

/// The default and the allowed range of REMEDIATION_WRITES_PER_SECOND. The
/// account's replication write quota (50/s per Region) is shared with the
/// customer's own PutSecretValue, UpdateSecret and rotations: the auditor
/// takes a tenth by default and never more than half.
pub const DEFAULT_WRITES_PER_SECOND: u64 = 5;
pub const WRITES_PER_SECOND_RANGE: std::ops::RangeInclusive<u64> = 1..=25;

impl Default for Remediation {
    fn default() -> Self {
        Remediation {
            mode: RemediationMode::On,
            verify: std::time::Duration::from_secs(20),
            allow_force_overwrite: false,
            max_attempts: 1,
            auditor_role_arn: None,
            state_table: None,
            writes_per_second: DEFAULT_WRITES_PER_SECOND as u32,
        }
    }
}

/// Split a comma-separated value, trimming and dropping empty items.
pub fn split_list(v: Option<String>) -> Vec<String> {
    v.unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Now, as RFC 3339 (report and lease timestamps).
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}
