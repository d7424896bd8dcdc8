//! Cross-account replication (issue 26; Secrets Manager's service model
//! in botocore 1.44.2 and later): what DescribeSecret says of it
//! (`CrossAccountPrimary` on a replica, `CrossAccountReplicas` on a
//! primary), what the engine learned of the other side, and the findings.
//! Each side is audited in its own account; nothing here is remediated
//! (docs/cross-account.md).

use serde::{Deserialize, Serialize};

use crate::audit::finding;
use crate::event::{HandledEvent, Trigger};
use crate::model::{Code, Finding, KeyRole, ReplicationState, Rules, SecretState, Snapshot};

/// How long a cross-account replica may stay `Pending` or `InProgress`
/// before CROSS_ACCOUNT_REPLICA_STALLED: counted from the audited secret's
/// LastChangedDate (association and creation change it). One hour: AWS
/// replicates within minutes. To become a setting.
pub const STALLED_AFTER_SECONDS: i64 = 3600;

/// DescribeSecret's `CrossAccountPrimary` (on a cross-account replica).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PrimaryLink {
    /// `PrimarySecretARN`.
    pub primary_arn: String,
    /// `ReplicationStatus`.
    pub status: Option<ReplicationState>,
    /// `StatusMessage`.
    pub status_message: Option<String>,
}

/// One entry of DescribeSecret's `CrossAccountReplicas` (on a primary; AWS
/// allows at most one).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplicaLink {
    /// `ReplicaSecretARN`.
    pub replica_arn: String,
    /// `ReplicationRoleARN`: the role Secrets Manager assumes to replicate,
    /// when one was named at association.
    pub role_arn: Option<String>,
    /// `ReplicationStatus`.
    pub status: Option<ReplicationState>,
    /// `StatusMessage`.
    pub status_message: Option<String>,
}

/// What one DescribeSecret answer says of cross-account replication.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Links {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<PrimaryLink>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<ReplicaLink>,
    /// The members were there but not in the model's shape: why (the
    /// engine reports it as AUDIT_INCOMPLETE).
    #[serde(skip)]
    pub unreadable: Option<String>,
}

impl Links {
    pub fn is_empty(&self) -> bool {
        self.primary.is_none() && self.replicas.is_empty() && self.unreadable.is_none()
    }

    /// The other secrets this one is linked to.
    pub fn others(&self) -> Vec<&str> {
        let primary = self.primary.iter().map(|p| p.primary_arn.as_str());
        let replicas = self.replicas.iter().map(|r| r.replica_arn.as_str());
        primary.chain(replicas).collect()
    }
}

/// Whether an account is one of the auditor's organisation's ACTIVE
/// accounts (ListAccounts, as the trust boundary lists them).
#[derive(Debug, Clone, PartialEq)]
pub enum Membership {
    InOrganisation,
    NotInOrganisation,
    /// The organisation's accounts cannot be listed (denied, or in no
    /// organisation): only the own account and TRUSTED_ACCOUNT_IDS trust.
    Unlisted(String),
    /// Not looked up (the rules trust the account already, or this path does
    /// not look), or the listing failed for now (a gap says so).
    NotKnown,
}

/// The other side as seen from its own account.
#[derive(Debug, Clone, PartialEq)]
pub enum OtherView {
    /// DescribeSecret there: what it says of cross-account replication.
    Described(Links),
    /// No such secret there.
    NotFound,
    /// Not an account the auditor may act in: not cross-checked (not an
    /// error); why.
    OutOfScope(String),
    /// Could not be described (a gap says why), or not looked at on this path.
    Unknown,
}

/// The secret at the other end of a link, as the engine found it.
#[derive(Debug, Clone, PartialEq)]
pub struct Counterpart {
    pub arn: String,
    pub membership: Membership,
    pub view: OtherView,
}

/// The snapshot's cross-account part: present when the secret has links.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrossAccount {
    pub links: Links,
    /// When the snapshot was taken (epoch seconds): how long a status has
    /// stood is counted to here.
    pub observed_at: Option<i64>,
    pub counterparts: Vec<Counterpart>,
}

/// Which end of the link the audited secret is.
#[derive(Clone, Copy, PartialEq)]
enum Side {
    Primary,
    Replica,
}

struct Ctx<'a> {
    p: &'a SecretState,
    account: &'a str,
    x: &'a CrossAccount,
    rules: &'a Rules,
    trigger: Option<&'a Trigger>,
    out: Vec<Finding>,
}

impl Ctx<'_> {
    fn add(&mut self, code: Code, subject: &str, message: String, remediation: String) {
        let region = Some(self.p.region.as_str());
        self.out.push(finding(
            &self.p.arn,
            code,
            region,
            subject,
            message,
            remediation,
        ));
    }

    fn counterpart(&self, arn: &str) -> Option<&Counterpart> {
        self.x.counterparts.iter().find(|c| c.arn == arn)
    }
}

/// The findings of a secret's cross-account replication, from either side.
pub fn findings(
    s: &Snapshot,
    p: &SecretState,
    trigger: Option<&Trigger>,
    rules: &Rules,
) -> Vec<Finding> {
    let Some(x) = &s.cross_account else {
        return Vec::new();
    };
    let arn_account = crate::arn::parse_secret_arn(&p.arn).map(|a| a.account);
    let account = arn_account.or(s.account.clone()).unwrap_or_default();
    let mut c = Ctx {
        p,
        account: &account,
        x,
        rules,
        trigger,
        out: Vec::new(),
    };
    for r in &x.links.replicas {
        link_findings(
            &mut c,
            Side::Primary,
            &r.replica_arn,
            &r.status,
            &r.status_message,
        );
        role_findings(&mut c, r);
    }
    if let Some(primary) = &x.links.primary {
        let (arn, status, message) = (
            &primary.primary_arn,
            &primary.status,
            &primary.status_message,
        );
        link_findings(&mut c, Side::Replica, arn, status, message);
        replica_key_findings(&mut c, s);
    }
    c.out
}

/// Status, trust and agreement of one link; `other` is the other secret.
fn link_findings(
    c: &mut Ctx<'_>,
    side: Side,
    other: &str,
    status: &Option<ReplicationState>,
    message: &Option<String>,
) {
    status_findings(c, side, other, status, message.as_deref());
    trust_findings(c, side, other);
    agreement_findings(c, side, other);
}

fn status_findings(
    c: &mut Ctx<'_>,
    side: Side,
    other: &str,
    status: &Option<ReplicationState>,
    message: Option<&str>,
) {
    let name = c.p.name.clone();
    let (from, to) = match side {
        Side::Primary => (name.as_str(), other),
        Side::Replica => (other, name.as_str()),
    };
    let said = message.unwrap_or("no status message");
    match status {
        Some(ReplicationState::InSync) => {}
        Some(ReplicationState::Failed) => c.add(
            Code::CrossAccountReplicaFailed,
            other,
            format!("Cross-account replication from {from} to {to} failed: {said}"),
            "Read the status message; check that the replica's KMS key allows the primary account (or its replication role) kms:Encrypt and that the replica still names this primary, then call AssociateCrossAccountReplica again from the primary's account (it is idempotent).".into(),
        ),
        Some(s @ (ReplicationState::Pending | ReplicationState::InProgress)) => {
            stalled(c, other, (from, to), s, said)
        }
        Some(ReplicationState::Detached) => detached(c, side, other, (from, to)),
        other_status => c.add(
            Code::ReplicaStatusUnknown,
            other,
            format!(
                "Cross-account replication from {from} to {to} has status {:?}, which this auditor does not know (message: {said}).",
                other_status.as_ref().map_or("<none>", |s| s.as_str())
            ),
            "Check the link in the console; upgrade the auditor if AWS added a status.".into(),
        ),
    }
}

/// Pending or InProgress: a finding only once it has stood longer than
/// [`STALLED_AFTER_SECONDS`] (counted from the secret's LastChangedDate).
fn stalled(
    c: &mut Ctx<'_>,
    other: &str,
    (from, to): (&str, &str),
    s: &ReplicationState,
    said: &str,
) {
    let (Some(now), Some(since)) = (c.x.observed_at, c.p.last_changed) else {
        return;
    };
    let age = now - since;
    if age < STALLED_AFTER_SECONDS {
        return;
    }
    c.add(
        Code::CrossAccountReplicaStalled,
        other,
        format!(
            "Cross-account replication from {from} to {to} has been {} for at least {} minutes (since {} last changed; the limit is {} minutes): {said}",
            s.as_str(),
            age / 60,
            c.p.name,
            STALLED_AFTER_SECONDS / 60
        ),
        "A replica stays Pending until the primary's owner calls AssociateCrossAccountReplica naming it; once associated, replication takes minutes. Associate it, or delete the replica that was never associated.".into(),
    );
}

fn detached(c: &mut Ctx<'_>, side: Side, other: &str, (from, to): (&str, &str)) {
    let by = c
        .trigger
        .filter(|t| {
            t.event == HandledEvent::DisassociateCrossAccountReplica
                && t.cross_account
                    .as_ref()
                    .is_some_and(|x| x.other_arn.as_deref().is_none_or(|o| o == other))
        })
        .map(|t| {
            format!(
                " It was detached by {} (DisassociateCrossAccountReplica).",
                t.actor.display.as_deref().unwrap_or("an unknown caller")
            )
        })
        .unwrap_or_default();
    let (whom, remediation) = match side {
        Side::Primary => (
            "the replica no longer receives the primary's changes",
            "If the replica is still needed, associate it again (AssociateCrossAccountReplica); else its owner can make it standalone (StopReplicationToReplica) or delete it.",
        ),
        Side::Replica => (
            "this replica no longer receives the primary's changes: applications reading it see a frozen copy",
            "Ask the primary's owner to associate it again, or make it standalone (StopReplicationToReplica) and repoint applications.",
        ),
    };
    c.add(
        Code::ReplicaDetached,
        other,
        format!("Cross-account replication from {from} to {to} is Detached: {whom}.{by}"),
        remediation.into(),
    );
}

/// The other secret's account must be trusted: the own account,
/// TRUSTED_ACCOUNT_IDS, or an ACTIVE account of the auditor's organisation.
fn trust_findings(c: &mut Ctx<'_>, side: Side, other: &str) {
    let Some(other_account) = crate::arn::parse_secret_arn(other).map(|a| a.account) else {
        return;
    };
    if other_account == c.account || c.rules.trusted_account_ids.contains(&other_account) {
        return;
    }
    let why = match c.counterpart(other).map(|k| &k.membership) {
        Some(Membership::InOrganisation) | Some(Membership::NotKnown) | None => return,
        Some(Membership::NotInOrganisation) => {
            "not an ACTIVE account of the auditor's organisation".to_string()
        }
        Some(Membership::Unlisted(why)) => {
            format!("and the auditor's organisation's accounts cannot be listed ({why})")
        }
    };
    let (code, what) = match side {
        Side::Primary => (Code::CrossAccountReplicaOutsideTrust, "replicates to"),
        Side::Replica => (Code::CrossAccountPrimaryOutsideTrust, "is a replica of"),
    };
    c.add(
        code,
        other,
        format!(
            "{} {what} {other} in account {other_account}, which is neither its own account nor in TRUSTED_ACCOUNT_IDS, {why}. The secret's value crosses into (or comes from) an account outside the trust boundary.",
            c.p.name
        ),
        match side {
            Side::Primary => format!("If account {other_account} is not meant to hold this secret, DisassociateCrossAccountReplica now; if it is trusted, add it to TRUSTED_ACCOUNT_IDS."),
            Side::Replica => format!("If account {other_account} is not meant to feed this secret, make the replica standalone (StopReplicationToReplica) or delete it; if it is trusted, add it to TRUSTED_ACCOUNT_IDS."),
        },
    );
}

/// Both sides must name each other, when the other side was described.
fn agreement_findings(c: &mut Ctx<'_>, side: Side, other: &str) {
    let Some(view) = c.counterpart(other).map(|k| k.view.clone()) else {
        return;
    };
    let own = c.p.arn.clone();
    let says = match (&view, side) {
        (OtherView::Described(l), Side::Primary) => match &l.primary {
            Some(p) if p.primary_arn == own => return,
            Some(p) => format!("names {} as its primary", p.primary_arn),
            None => "is not a cross-account replica".to_string(),
        },
        (OtherView::Described(l), Side::Replica) => {
            if l.replicas.iter().any(|r| r.replica_arn == own) {
                return;
            }
            "does not list it among its cross-account replicas".to_string()
        }
        (OtherView::NotFound, _) => "does not exist".to_string(),
        (OtherView::OutOfScope(_) | OtherView::Unknown, _) => return,
    };
    let (this, that) = match side {
        Side::Primary => ("lists the cross-account replica", "the replica"),
        Side::Replica => ("names the cross-account primary", "the primary"),
    };
    c.add(
        Code::CrossAccountMismatch,
        other,
        format!("{} {this} {other}, but {that}, described in its own account, {says}. The two sides disagree.", c.p.name),
        format!("Decide which pairing is meant; then associate the right pair again (AssociateCrossAccountReplica from the primary's account) and disassociate the wrong one. Compare both with describe-secret on {own} and {other}."),
    );
}

/// The role Secrets Manager assumes to replicate must be in the primary's
/// own account.
fn role_findings(c: &mut Ctx<'_>, r: &ReplicaLink) {
    let Some(role) = &r.role_arn else { return };
    let role_account = crate::arn::Arn::parse(role)
        .and_then(|a| a.account())
        .unwrap_or("");
    if role_account == c.account {
        return;
    }
    let whose = if role_account.is_empty() {
        "no account".to_string()
    } else {
        format!("account {role_account}")
    };
    c.add(
        Code::CrossAccountRoleOutsidePrimaryAccount,
        role,
        format!(
            "Replication of {} to {} uses the role {role}, which is in {whose}, not in the primary's account {}: another account's principal writes the replica.",
            c.p.name, r.replica_arn, c.account
        ),
        "Associate the replica again with a ReplicationRoleARN in the primary's own account (AssociateCrossAccountReplica is idempotent).".into(),
    );
}

/// A cross-account replica's own key must be customer managed (AWS requires
/// it; an AWS-managed key there cannot be shared with the primary's
/// account). Reported even without REQUIRE_CUSTOMER_MANAGED_KEY, which
/// reports it already when set.
fn replica_key_findings(c: &mut Ctx<'_>, s: &Snapshot) {
    if c.rules.require_customer_managed_key {
        return;
    }
    let aws_managed = s
        .keys
        .iter()
        .any(|k| k.role == KeyRole::Primary && k.region == c.p.region && k.is_aws_managed());
    if aws_managed {
        let region = c.p.region.clone();
        c.add(
            Code::KeyAwsManaged,
            "cross-account",
            format!("The cross-account replica {} is encrypted with the AWS-managed key aws/secretsmanager; a cross-account replica needs a customer-managed key whose policy allows the primary's account.", c.p.name),
            format!("Re-encrypt it with a customer-managed key in {region} (UpdateSecret --kms-key-id)."),
        );
    }
}
