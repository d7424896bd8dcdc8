//! AWS adapters: small traits the inspector and publisher depend on, and
//! their implementations on the AWS SDK. Nothing outside this module
//! touches an SDK type.
//!
//! The IAM actions the code calls are listed once, in [`IAM_ACTIONS`]; the
//! SAM template's policy is checked against that list by a test.

mod book;
mod clients;
mod cross_account;
mod error;
mod followup;
mod kms;
mod members;
mod organizations;
mod pace;
mod roster;
mod secrets;
mod securityhub;
mod sns;
mod sqs;
mod state;

use std::future::Future;
use std::pin::Pin;

pub use book::{StateItems, SweepBook};
pub use clients::{Account, AwsClients, Connection, http_client};
pub use error::{AwsError, error_chain};
pub use members::{DEFAULT_MEMBER_ROLE_NAME, SESSION_NAME};
pub use roster::{Claimed, OrgRoster};

use crate::asff::{AsffFinding, HeldSet};
use crate::model::SecretState;

/// An SDK call's future, moved to the heap as it is made. It is large
/// (kilobytes), and unboxed it would be copied at every join and every
/// await that moves the futures around it; measured by `make bench`.
fn boxed<F: Future>(call: F) -> Pin<Box<F>> {
    Box::pin(call)
}

/// Every IAM action the auditor's code calls. None of them reads a secret value.
pub const IAM_ACTIONS: [&str; 17] = [
    "secretsmanager:DescribeSecret",
    "secretsmanager:GetResourcePolicy",
    "secretsmanager:ListSecrets",
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:ReplicateSecretToRegions",
    "kms:DescribeKey",
    "kms:GetKeyPolicy",
    "sns:Publish",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "organizations:DescribeOrganization",
    "sts:AssumeRole",
    "securityhub:BatchImportFindings",
    "organizations:ListAccounts",
    "sqs:SendMessage",
    "dynamodb:UpdateItem",
];

/// The member role in every account: the one action granted on it.
pub const MEMBER_ROLE_ACTIONS: [&str; 1] = ["sts:AssumeRole"];

/// Actions AWS grants only on `Resource: "*"` (no resource-level permissions).
pub const UNSCOPED_ACTIONS: [&str; 3] = [
    "secretsmanager:ListSecrets",
    "organizations:DescribeOrganization",
    "organizations:ListAccounts",
];

/// The org sweep's calls (only with SWEEP_QUEUE_URL; the template grants
/// them only when its org sweep is on): send cell messages to the sweep
/// queue (SendMessageBatch is authorised as sqs:SendMessage). It counts
/// cells in the state table with [`POLICY_LEDGER_ACTIONS`]' UpdateItem, and
/// plans from the accounts [`ACCOUNT_LIST_ACTIONS`] learns.
pub const ORG_SWEEP_ACTIONS: [&str; 1] = ["sqs:SendMessage"];

/// The follow-up chain's call (FOLLOW_UP_QUEUE_URL, docs/freshness.md):
/// each step sends the next, delayed, to the follow-up queue; always
/// granted, on that queue only, with [`EVENT_SOURCE_ACTIONS`] to poll it.
/// Its chain items are kept with [`POLICY_LEDGER_ACTIONS`]' GetItem and
/// UpdateItem.
pub const FOLLOW_UP_ACTIONS: [&str; 1] = ["sqs:SendMessage"];

/// The accounts the auditor may enter (docs/security.md): without
/// ACCOUNT_IDS, the ACTIVE accounts of its own organisation, learned with
/// ListAccounts and shared through the state table (`crate::roster`). The
/// event path checks a member account against them before any AssumeRole,
/// and the org sweep plans them: always granted (read-only, account ids
/// only).
pub const ACCOUNT_LIST_ACTIONS: [&str; 1] = ["organizations:ListAccounts"];

/// The policy ledgers in the state table ([`PolicyLedgers`]): read at a
/// sweep's start, updated at its end and by events. Always granted, on the
/// state table only.
pub const POLICY_LEDGER_ACTIONS: [&str; 2] = ["dynamodb:GetItem", "dynamodb:UpdateItem"];

/// What Lambda's event source mapping calls with the function's role to
/// poll the org sweep's queue (not the code): granted on that queue only,
/// when the org sweep is on; and on the follow-up queue, always.
pub const EVENT_SOURCE_ACTIONS: [&str; 3] = [
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
];

/// The calls that change something (remediation). The template grants
/// them only when remediation is on.
pub const WRITE_ACTIONS: [&str; 4] = [
    "secretsmanager:RemoveRegionsFromReplication",
    "secretsmanager:ReplicateSecretToRegions",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
];

/// The calls on the state table (the remediation leases; the Security Hub
/// findings each secret holds active; the org sweep's bookkeeping): granted
/// on that table only.
pub const STATE_TABLE_ACTIONS: [&str; 4] = [
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:GetItem",
    "dynamodb:UpdateItem",
];

/// The calls of the Security Hub sink (SECURITY_HUB=on): the import, and
/// writing each secret's active findings in the state table (read with
/// [`POLICY_LEDGER_ACTIONS`]' GetItem). The template grants them only when
/// the `SecurityHub` parameter is on.
pub const SECURITY_HUB_ACTIONS: [&str; 2] = ["securityhub:BatchImportFindings", "dynamodb:PutItem"];

/// KMS actions AWS services perform with the function's credentials on its
/// behalf: SNS encrypting to the findings topic's key, and Secrets Manager
/// decrypting and re-encrypting a secret it replicates.
pub const IMPLIED_KMS_ACTIONS: [&str; 3] = ["kms:Decrypt", "kms:GenerateDataKey", "kms:Encrypt"];

/// Every port the engine's invocations use, in one bound.
pub trait Ports:
    SecretsApi
    + KeysApi
    + ReplicationApi
    + LeaseStore
    + OrganizationsApi
    + AccountsApi
    + SweepQueue
    + SweepBook
    + OrgRoster
    + PolicyLedgers
    + RemediationJournal
    + FollowUpQueue
    + PaceStore
{
}

impl<T> Ports for T where
    T: SecretsApi
        + KeysApi
        + ReplicationApi
        + LeaseStore
        + OrganizationsApi
        + AccountsApi
        + SweepQueue
        + SweepBook
        + OrgRoster
        + PolicyLedgers
        + RemediationJournal
        + FollowUpQueue
        + PaceStore
{
}

/// The follow-up chain's queue (FOLLOW_UP_QUEUE_URL): one step's message,
/// delivered to this function after `delay_seconds` (at most 900, SQS's
/// DelaySeconds). The chain's item is kept with [`StateItems`].
pub trait FollowUpQueue: Send + Sync {
    fn send_step(
        &self,
        url: &str,
        region: &str,
        message: &crate::followup::Message,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// What DescribeKey tells about a key.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyMeta {
    pub key_id: String,
    pub arn: String,
    pub state: String,
    pub aws_managed: bool,
}

/// The accounts the auditor acts in: its own, and the member accounts of
/// an organisation through their member role (MEMBER_ROLE_NAME).
pub trait AccountsApi: Sized + Send + Sync {
    /// These clients acting in `account` (12 digits): the function's own
    /// credentials when it is the own account, else the member role's,
    /// assumed now or taken from the cache. A role that cannot be assumed
    /// is an error naming `sts:AssumeRole`, the role (so the account) and
    /// the Region.
    fn acting_in(&self, account: &str) -> impl Future<Output = Result<Self, AwsError>> + Send;

    /// The function's own account: known at cold start, or asked of STS
    /// (GetCallerIdentity, which needs no permission) once.
    fn own_account(&self) -> impl Future<Output = Result<String, AwsError>> + Send;
}

/// Secrets Manager, as the auditor needs it.
pub trait SecretsApi: Send + Sync {
    /// One page of ListSecrets in `region` (secrets scheduled for deletion
    /// left out), only replicas of primaries in `primary_region` when
    /// given, and the token for the next page. A listed secret carries no
    /// `replication` (ListSecrets does not show ReplicationStatus).
    fn list_secrets(
        &self,
        region: &str,
        primary_region: Option<&str>,
        next_token: Option<String>,
    ) -> impl Future<Output = Result<(Vec<SecretState>, Option<String>), AwsError>> + Send;

    /// DescribeSecret in `region`; `Ok(None)` when the secret does not
    /// exist there (or is scheduled for deletion).
    fn describe_secret(
        &self,
        region: &str,
        secret_id: &str,
    ) -> impl Future<Output = Result<Option<SecretState>, AwsError>> + Send;

    /// DescribeSecret in `region` with what the answer says of
    /// cross-account replication (src/aws/cross_account.rs); `Ok(None)`
    /// as [`SecretsApi::describe_secret`]. A port that does not read the
    /// cross-account members answers no links.
    fn describe_linked(
        &self,
        region: &str,
        secret_id: &str,
    ) -> impl Future<Output = Result<Option<(SecretState, crate::cross_account::Links)>, AwsError>> + Send
    {
        async move {
            let state = self.describe_secret(region, secret_id).await?;
            Ok(state.map(|s| (s, crate::cross_account::Links::default())))
        }
    }

    /// `primary`'s replica in `region`: DescribeSecret there by name. The
    /// sweep answers this from a listing of the Region instead.
    fn describe_replica(
        &self,
        region: &str,
        primary: &SecretState,
    ) -> impl Future<Output = Result<Option<SecretState>, AwsError>> + Send {
        self.describe_secret(region, &primary.name)
    }

    /// GetResourcePolicy in `region`: the secret's resource policy
    /// document; `Ok(None)` when it has none (or the secret is gone).
    fn get_resource_policy(
        &self,
        region: &str,
        secret_id: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}

/// KMS, as the auditor needs it.
pub trait KeysApi: Send + Sync {
    /// DescribeKey in `region` (aliases resolve there); `Ok(None)` when
    /// the key does not exist there.
    fn describe_key(
        &self,
        region: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<KeyMeta>, AwsError>> + Send;
    /// GetKeyPolicy (the `default` policy) for a key id or key ARN.
    fn get_key_policy(
        &self,
        region: &str,
        key_id: &str,
    ) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;
}

/// AWS Organizations, as the auditor needs it.
pub trait OrganizationsApi: Send + Sync {
    /// The id of the organisation the auditor's own account is in
    /// (DescribeOrganization); `Ok(None)` when it is in none.
    fn own_organization(&self) -> impl Future<Output = Result<Option<String>, AwsError>> + Send;

    /// One ListAccounts page from `token` (at most 20 accounts): its
    /// active accounts (one suspended or closing is left out) and the next
    /// page's token; `Ok(None)` when the auditor's account is in no
    /// organisation. Called from the management account or a delegated
    /// administrator.
    fn accounts_page(
        &self,
        token: Option<String>,
    ) -> impl Future<Output = Result<Option<AccountsPage>, AwsError>> + Send;

    /// The organisation's active accounts, every page, sorted; each call
    /// waits for a token of `pace` (ORG_LIST_ACCOUNTS_PER_SECOND:
    /// Organizations documents no rate, docs/organisations.md).
    fn active_accounts(
        &self,
        pace: &crate::rate::TokenBucket,
    ) -> impl Future<Output = Result<Option<Vec<String>>, AwsError>> + Send {
        async move {
            let mut accounts = Vec::new();
            let mut token = None;
            loop {
                pace.acquire().await;
                let Some(page) = self.accounts_page(token.take()).await? else {
                    return Ok(None);
                };
                accounts.extend(page.accounts);
                match page.next_token {
                    Some(t) if !t.is_empty() => token = Some(t),
                    _ => break,
                }
            }
            accounts.sort();
            accounts.dedup();
            Ok(Some(accounts))
        }
    }
}

/// One page of ListAccounts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AccountsPage {
    /// The page's ACTIVE accounts.
    pub accounts: Vec<String>,
    pub next_token: Option<String>,
}

/// The org sweep's queue (SWEEP_QUEUE_URL).
pub trait SweepQueue: Send + Sync {
    /// Send every body to the queue at `url` (in `region`), 10 per
    /// SendMessageBatch call. An entry SQS refuses, or a call that fails,
    /// is an error naming `sqs:SendMessage`: nothing is dropped silently.
    fn send_cells(
        &self,
        url: &str,
        region: &str,
        bodies: &[String],
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// Send one body to be delivered `delay_seconds` from now (SendMessage
    /// with DelaySeconds, at most 900).
    fn send_later(
        &self,
        url: &str,
        region: &str,
        body: &str,
        delay_seconds: u32,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// A new org sweep's item in the state table.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPlan {
    pub sweep_id: String,
    /// Sorted: a cell's account index is its place here.
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    pub planned_at: String,
    /// When the item may go (TTL, epoch seconds).
    pub expires_at: u64,
    /// When the sweep, if not complete, is closed as incomplete (epoch
    /// seconds, [`crate::org::CLOSE_AFTER_SECONDS`] after planning).
    pub close_at: u64,
}

/// What writing a sweep's head found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opened {
    New,
    /// The head was there already (a redelivered scheduled event), of the
    /// same accounts; whether its planner sent every message.
    Existing {
        all_sent: bool,
    },
    /// The head was there already, planned for other accounts (the
    /// organisation changed between two tries of one scheduled event): its
    /// plan stands, and this try sends nothing.
    Changed,
}

/// The remediation journal in the state table (docs/reliability.md): the
/// Regions remediation removed from a secret's replication, until they
/// are InSync again. Every write is idempotent, so the SDK's own retry of
/// a write that was applied but not acknowledged changes nothing.
pub trait RemediationJournal: Send + Sync {
    /// The entries of the primary `arn` (a consistent read).
    fn removals(
        &self,
        arn: &str,
    ) -> impl Future<Output = Result<Vec<crate::model::Removal>, AwsError>> + Send;
    /// Record, before RemoveRegionsFromReplication, that `removal.region`
    /// is being removed; an entry already there is kept as it is.
    fn removing(
        &self,
        removal: &crate::model::Removal,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// One attempt's outcome, under its own `key` (see
    /// [`crate::model::Removal::attempts`]); nothing when the entry is gone.
    fn attempted(
        &self,
        arn: &str,
        region: &str,
        key: &str,
        outcome: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// The Region is settled (InSync again, or no longer wanted): the
    /// entry goes.
    fn settled(&self, arn: &str, region: &str)
    -> impl Future<Output = Result<(), AwsError>> + Send;
    /// The primaries of `account` and `region` that may have entries (the
    /// journal's index, a consistent read): a sweep reads the journal of
    /// these only. `None`: no index is kept, every journal is read.
    fn journaled(
        &self,
        account: &str,
        region: &str,
    ) -> impl Future<Output = Result<Option<std::collections::BTreeSet<String>>, AwsError>> + Send;
}

/// Secrets Manager replication writes, for remediation.
pub trait ReplicationApi: Send + Sync {
    /// RemoveRegionsFromReplication of one Region, called in `region` (the primary's).
    fn remove_regions(
        &self,
        region: &str,
        secret_id: &str,
        replica_region: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// ReplicateSecretToRegions to one Region, called in `region` (the primary's).
    fn replicate_to(
        &self,
        region: &str,
        secret_id: &str,
        replica_region: &str,
        kms_key_id: Option<&str>,
        force_overwrite: bool,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// One remediation lease: who holds the right to remediate one (secret,
/// Region), since when, and until when (epoch seconds) at the latest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// `lease#<secret ARN>#<Region>`.
    pub key: String,
    /// The holder's invocation (its Lambda request id).
    pub owner: String,
    /// When it was taken (RFC 3339); with `owner`, tells one taking from another.
    pub since: String,
    /// Free for anyone once this has passed, whatever became of the holder.
    pub expires_at: u64,
}

/// What came of asking for a lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Acquired {
    Acquired,
    /// Another invocation holds it (and has not let it expire).
    HeldBy(Lease),
}

/// What came of giving a lease back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Released {
    Released,
    /// The item is gone or another owner's: it had expired and was taken.
    NotHeld,
}

/// The leases that make remediation one at a time per (secret, Region)
/// across concurrent invocations (the DynamoDB state table).
pub trait LeaseStore: Send + Sync {
    /// Take `lease` if nobody holds its key, or its holder's lease has
    /// expired by `now` (epoch seconds).
    fn try_acquire(
        &self,
        lease: &Lease,
        now: u64,
    ) -> impl Future<Output = Result<Acquired, AwsError>> + Send;
    /// Delete `lease`, only if it is still this owner's (same owner and since).
    fn release(&self, lease: &Lease) -> impl Future<Output = Result<Released, AwsError>> + Send;
}

/// One message ready for SNS.
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    pub topic_arn: String,
    pub subject: String,
    /// SNS's `Message`. With `per_protocol`, a JSON object holding one
    /// message per protocol, `default` among them (`MessageStructure=json`).
    pub body: String,
    pub per_protocol: bool,
    /// (name, data type, value): `String` or `String.Array`.
    pub attributes: Vec<(String, &'static str, String)>,
    /// FIFO topics only.
    pub group_id: Option<String>,
    pub dedup_id: Option<String>,
}

/// SNS, as the auditor needs it.
pub trait Publisher: Send + Sync {
    /// Publish; returns the SNS MessageId.
    fn publish(&self, message: &Message) -> impl Future<Output = Result<String, AwsError>> + Send;

    /// PublishBatch of messages to one topic (see the SNS sink's batching
    /// for SNS's limits): each entry's MessageId or why SNS refused it, in
    /// order. `Err` when the call itself failed.
    fn publish_batch(
        &self,
        messages: &[Message],
    ) -> impl Future<Output = Result<Vec<Result<String, AwsError>>, AwsError>> + Send;
}

/// What BatchImportFindings made of one call: the findings it refused
/// (their Id, and its error code and message).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ImportOutcome {
    pub failed: Vec<(String, String)>,
}

/// Security Hub, as the auditor needs it.
pub trait FindingsApi: Send + Sync {
    /// BatchImportFindings of `findings` (at most 100, within AWS's size
    /// limits: see `asff::batches`) in `region`, as `account` (12 digits:
    /// the own credentials, or the member role's): with the default product
    /// ARN, only the findings' own account may import them.
    fn import_findings(
        &self,
        account: &str,
        region: &str,
        findings: &[AsffFinding],
    ) -> impl Future<Output = Result<ImportOutcome, AwsError>> + Send;
}

/// Token buckets shared by every instance of the function, one state
/// table item each (`pace#<quota>#<account>#<Region>`): the paces of calls
/// whose AWS quota is per account and Region ([`crate::rate::SharedPace`]).
pub trait PaceStore: Send + Sync {
    /// Whether there is a table to share paces through (STATE_TABLE);
    /// without one (the default), each instance paces its own calls.
    fn shares_paces(&self) -> bool {
        false
    }
    /// One conditional UpdateItem of the bucket `key`: take `take.k`
    /// tokens of `rate` in the way `shape` says (`crate::pace`), or learn
    /// what the bucket holds.
    fn update_pace(
        &self,
        key: &str,
        rate: &crate::pace::Rate,
        take: crate::pace::Take,
        shape: crate::pace::Shape,
    ) -> impl Future<Output = Result<crate::pace::Update, AwsError>> + Send {
        let _ = (key, rate, take, shape);
        async {
            Err(AwsError::Service {
                call: "dynamodb:UpdateItem",
                region: String::new(),
                code: "NoStateTable".into(),
                message: "no table to share paces through".into(),
            })
        }
    }
}

/// The policy ledger of each account and Region in the state table
/// (`policy#<account>#<Region>`): which resource policies a sweep reads
/// ([`crate::ledger`]). Without STATE_TABLE there is none: every sweep
/// reads every policy, and nothing is recorded.
pub trait PolicyLedgers: Send + Sync {
    /// The ledger (empty when nothing is recorded yet); `Ok(None)` without
    /// a state table.
    fn policy_ledger(
        &self,
        account: &str,
        region: &str,
    ) -> impl Future<Output = Result<Option<crate::ledger::PolicyLedger>, AwsError>> + Send;
    /// Record what a sweep that started at `started` (epoch seconds) under
    /// the trust rules `rules` learned, `seen` being the ledger it read:
    /// its flagged secrets added; when `pass` is complete, `read_as_of`
    /// and the sweep count moved (unless another sweep recorded since
    /// `seen`); the secrets it read clean cleared, unless an event wrote
    /// since `seen`. Each step on its own is safe to lose: a
    /// lost one only makes the next sweep read more.
    fn record_policy_pass(
        &self,
        account: &str,
        region: &str,
        pass: &crate::ledger::PolicyPass,
        started_under: (i64, &str),
        seen: &crate::ledger::PolicyLedger,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
    /// An event's audit found the policy of `arn` wanting, or could not
    /// read it: flag it. Nothing without a state table.
    fn note_policy(
        &self,
        account: &str,
        region: &str,
        arn: &str,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}

/// The state table's record of each secret's ACTIVE Security Hub findings
/// (`shub#<account>#<primary Region>#<secret ARN>`).
pub trait FindingsState: Send + Sync {
    /// The findings held active under `key`; empty when there is no item.
    fn held_findings(&self, key: &str) -> impl Future<Output = Result<HeldSet, AwsError>> + Send;
    /// Replace what is held under `key`. An empty set is written with
    /// `expires_at` (epoch seconds), so that TTL tidies it away.
    fn keep_findings(
        &self,
        key: &str,
        held: &HeldSet,
        expires_at: Option<u64>,
    ) -> impl Future<Output = Result<(), AwsError>> + Send;
}
