//! Parsing of the EventBridge CloudTrail events the auditor handles: "AWS
//! API Call via CloudTrail" and Secrets Manager's rotation service events
//! ("AWS Service Event via CloudTrail"). Everything here is pure and total:
//! any input either becomes a [`Trigger`] or a typed [`EventError`] naming
//! what is wrong.

pub use crate::arn::{SecretArn, is_account_id, is_region_name, parse_secret_arn};
use aws_lambda_events::eventbridge::EventBridgeEvent;
use serde::Deserialize;
use serde_json::Value;

/// EventBridge refuses events over 256 KB; anything larger is not from it.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;
/// Real CloudTrail events nest a handful of levels; refuse pathological ones.
pub const MAX_EVENT_DEPTH: usize = 32;
/// Secrets Manager's own limit on a SecretId.
const MAX_SECRET_ID_CHARS: usize = 2048;

pub const DETAIL_TYPE_API_CALL: &str = "AWS API Call via CloudTrail";
/// What CloudTrail logs on its own, not for a call: Secrets Manager's
/// rotation outcomes.
pub const DETAIL_TYPE_SERVICE_EVENT: &str = "AWS Service Event via CloudTrail";
pub const SOURCE_SECRETS_MANAGER: &str = "aws.secretsmanager";

/// The CloudTrail events the auditor acts on. This list is the single
/// source of truth for the EventBridge pattern in template.yaml (a test
/// checks that they agree).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum HandledEvent {
    CreateSecret,
    ReplicateSecretToRegions,
    RemoveRegionsFromReplication,
    StopReplicationToReplica,
    /// A resource policy changed: audited as it happens, so that a sweep
    /// need not read every policy every time (README "Resource policies
    /// between sweeps").
    PutResourcePolicy,
    DeleteResourcePolicy,
    /// Cross-account replication (issue 26): called on the primary, in
    /// its account, naming the replica in another.
    AssociateCrossAccountReplica,
    DisassociateCrossAccountReplica,
    /// Calls that make a new current version (issue 25, docs/freshness.md):
    /// audited for the replicas' freshness. UpdateSecret only with a new
    /// value, UpdateSecretVersionStage only moving AWSCURRENT
    /// ([`makes_new_current`]).
    PutSecretValue,
    UpdateSecret,
    UpdateSecretVersionStage,
    RotateSecret,
    /// Secrets Manager's rotation service events (issue 25,
    /// docs/freshness.md), "AWS Service Event via CloudTrail": the secret
    /// is `additionalEventData.SecretId`. A success makes a new current
    /// version; a failure or an abandoned rotation is reported with each
    /// replica's state (ROTATION_FAILED_WITH_REPLICAS).
    RotationSucceeded,
    RotationFailed,
    RotationAbandoned,
}

impl HandledEvent {
    pub const ALL: [HandledEvent; 15] = [
        HandledEvent::CreateSecret,
        HandledEvent::ReplicateSecretToRegions,
        HandledEvent::RemoveRegionsFromReplication,
        HandledEvent::StopReplicationToReplica,
        HandledEvent::PutResourcePolicy,
        HandledEvent::DeleteResourcePolicy,
        HandledEvent::AssociateCrossAccountReplica,
        HandledEvent::DisassociateCrossAccountReplica,
        HandledEvent::PutSecretValue,
        HandledEvent::UpdateSecret,
        HandledEvent::UpdateSecretVersionStage,
        HandledEvent::RotateSecret,
        HandledEvent::RotationSucceeded,
        HandledEvent::RotationFailed,
        HandledEvent::RotationAbandoned,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            HandledEvent::CreateSecret => "CreateSecret",
            HandledEvent::ReplicateSecretToRegions => "ReplicateSecretToRegions",
            HandledEvent::RemoveRegionsFromReplication => "RemoveRegionsFromReplication",
            HandledEvent::StopReplicationToReplica => "StopReplicationToReplica",
            HandledEvent::PutResourcePolicy => "PutResourcePolicy",
            HandledEvent::DeleteResourcePolicy => "DeleteResourcePolicy",
            HandledEvent::AssociateCrossAccountReplica => "AssociateCrossAccountReplica",
            HandledEvent::DisassociateCrossAccountReplica => "DisassociateCrossAccountReplica",
            HandledEvent::PutSecretValue => "PutSecretValue",
            HandledEvent::UpdateSecret => "UpdateSecret",
            HandledEvent::UpdateSecretVersionStage => "UpdateSecretVersionStage",
            HandledEvent::RotateSecret => "RotateSecret",
            HandledEvent::RotationSucceeded => "RotationSucceeded",
            HandledEvent::RotationFailed => "RotationFailed",
            HandledEvent::RotationAbandoned => "RotationAbandoned",
        }
    }

    /// The EventBridge detail-type it arrives with: the rotation outcomes
    /// are service events, every other one an API call.
    pub fn detail_type(self) -> &'static str {
        match self {
            HandledEvent::RotationSucceeded
            | HandledEvent::RotationFailed
            | HandledEvent::RotationAbandoned => DETAIL_TYPE_SERVICE_EVENT,
            _ => DETAIL_TYPE_API_CALL,
        }
    }

    /// A rotation that did not finish: failed, or abandoned for a version
    /// made by hand while it ran.
    pub fn is_unfinished_rotation(self) -> bool {
        matches!(
            self,
            HandledEvent::RotationFailed | HandledEvent::RotationAbandoned
        )
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The calls that make a new current version (an UpdateSecret or
    /// UpdateSecretVersionStage that does not is ignored when parsed): a
    /// follow-up chain watches the replicas take it
    /// (docs/freshness.md#the-follow-up-chain).
    pub fn makes_new_version(self) -> bool {
        matches!(
            self,
            HandledEvent::PutSecretValue
                | HandledEvent::UpdateSecret
                | HandledEvent::UpdateSecretVersionStage
                | HandledEvent::RotateSecret
                | HandledEvent::RotationSucceeded
        )
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum EventError {
    #[error("event is {0} bytes; the limit is {MAX_EVENT_BYTES}")]
    TooLarge(usize),
    #[error("event nests deeper than {MAX_EVENT_DEPTH} levels")]
    TooDeep,
    #[error("event is not valid JSON: {0}")]
    NotJson(String),
    #[error("event has the wrong shape at `{path}`: {message}")]
    Shape { path: String, message: String },
    #[error(
        "unsupported event: source {event_source:?}, detail-type {detail_type:?}; expected source {SOURCE_SECRETS_MANAGER:?} and detail-type {DETAIL_TYPE_API_CALL:?} or {DETAIL_TYPE_SERVICE_EVENT:?}"
    )]
    Unsupported {
        event_source: String,
        detail_type: String,
    },
    #[error("{event_name} event does not identify a secret: {reason}")]
    NoSecret { event_name: String, reason: String },
}

/// Who made the call, as far as CloudTrail says.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize)]
pub struct Actor {
    /// The most specific description: ARN, session issuer, service or id.
    pub display: Option<String>,
    /// `userIdentity.arn`.
    pub arn: Option<String>,
    /// `userIdentity.sessionContext.sessionIssuer.arn`.
    pub issuer_arn: Option<String>,
}

/// The secret an event names.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretRef {
    /// Name, partial ARN or full ARN, as given.
    pub id: String,
    /// The Region in the ARN, when the id is an ARN.
    pub arn_region: Option<String>,
    /// The account in the ARN, when the id is an ARN.
    pub arn_account: Option<String>,
}

impl SecretRef {
    pub fn parse(id: &str) -> SecretRef {
        let arn = parse_secret_arn(id);
        SecretRef {
            id: id.to_string(),
            arn_region: arn.as_ref().map(|a| a.region.clone()),
            arn_account: arn.as_ref().map(|a| a.account.clone()),
        }
    }

    /// A human name for the secret before DescribeSecret answers.
    pub fn display_name(&self) -> &str {
        match self.id.split_once(":secret:") {
            Some((_, name)) if self.arn_region.is_some() => name,
            _ => &self.id,
        }
    }
}

/// A CloudTrail event the auditor handles: an API call, or a rotation
/// service event.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    pub event: HandledEvent,
    pub event_id: Option<String>,
    pub event_time: Option<String>,
    /// The Region the call was made in (detail.awsRegion, else the
    /// envelope's), in the Region grammar.
    pub region: String,
    /// The account that owns the event: the envelope's `account`, the
    /// account whose CloudTrail delivered it to EventBridge (12 digits).
    /// `detail.recipientAccountId` is not read: in a real event it is the
    /// same account, and anything the event names besides the envelope is
    /// the caller's word (docs/security.md).
    pub account: String,
    pub actor: Actor,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub secret: SecretRef,
    /// Regions the request removed (RemoveRegionsFromReplication); only
    /// names in the Region grammar are kept.
    pub removed_regions: Vec<String>,
    /// What a cross-account replication call named (issue 26): Associate
    /// and DisassociateCrossAccountReplica, and CreateSecret with
    /// `crossAccountPrimaryARN`; `None` for every other call.
    pub cross_account: Option<CrossAccountRequest>,
}

/// The cross-account fields of a request, as CloudTrail logs them
/// (camelCase of the model's members).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CrossAccountRequest {
    /// The other secret: `crossAccountReplicaARN` (Associate, Disassociate)
    /// or `crossAccountPrimaryARN` (CreateSecret); kept only when it is a
    /// full secret ARN.
    pub other_arn: Option<String>,
    /// `replicaRestriction` (Associate): `SameOrg`, the default, or
    /// `NoRestriction`.
    pub restriction: Option<String>,
    /// `replicationRoleARN` (Associate).
    pub role_arn: Option<String>,
}

/// The cross-account fields of `event`'s request, when it is one that has them.
fn cross_account_request(
    event: HandledEvent,
    params: Option<&Value>,
) -> Option<CrossAccountRequest> {
    let text = |key: &str| {
        params?
            .get(key)?
            .as_str()
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.chars().any(char::is_control))
            .map(|s| s.chars().take(MAX_SECRET_ID_CHARS).collect::<String>())
    };
    let other_key = match event {
        HandledEvent::AssociateCrossAccountReplica
        | HandledEvent::DisassociateCrossAccountReplica => "crossAccountReplicaARN",
        HandledEvent::CreateSecret => "crossAccountPrimaryARN",
        _ => return None,
    };
    let other_arn = text(other_key).filter(|a| parse_secret_arn(a).is_some());
    if event == HandledEvent::CreateSecret && other_arn.is_none() {
        return None;
    }
    Some(CrossAccountRequest {
        other_arn,
        restriction: text("replicaRestriction"),
        role_arn: text("replicationRoleARN"),
    })
}

impl Trigger {
    /// The account of another owner the secret's ARN names, when it does:
    /// this event is the caller's copy of a cross-account call. CloudTrail
    /// delivers the secret's owner a copy of its own for a call that
    /// reached the secret, and that copy is the one audited; this one is
    /// reported from the event alone and never enters the other account.
    pub fn other_owner(&self) -> Option<&str> {
        self.secret
            .arn_account
            .as_deref()
            .filter(|owner| *owner != self.account)
    }
}

/// An EventBridge scheduled event: sweep every replicated secret.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct Scheduled {
    pub event_id: Option<String>,
    pub time: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
}

pub const SOURCE_SCHEDULE: &str = "aws.events";
pub const DETAIL_TYPE_SCHEDULED: &str = "Scheduled Event";

/// What an incoming event asks of the auditor.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // one per invocation; boxing buys nothing
pub enum Incoming {
    /// A handled CloudTrail event (an API call, or a rotation service
    /// event): audit the secret.
    ApiCall(Trigger),
    /// A scheduled event: sweep.
    Sweep(Scheduled),
    /// A well-formed Secrets Manager CloudTrail event for a call the
    /// auditor does not act on.
    Ignored { event_name: String },
    /// A batch of the org sweep's queue (a Lambda SQS event source
    /// mapping): one cell message per record. Each body is parsed on its
    /// own ([`crate::org::Cell::parse`]), so one bad body fails its record
    /// only.
    SweepCells(Vec<SqsRecord>),
    /// The template's `AccountListRefresh` schedule: list the organisation's
    /// accounts ahead of time ([`REFRESH_ACCOUNTS`]; docs/organisations.md).
    RefreshAccounts,
}

/// The key of the auditor's own scheduled tasks' input (an EventBridge
/// rule's constant `Input`, which Lambda receives as the whole event).
pub const TASK_KEY: &str = "replica-auditor";

/// The task of the `AccountListRefresh` schedule:
/// `{"replica-auditor": "refresh-organisation-accounts"}`.
pub const REFRESH_ACCOUNTS: &str = "refresh-organisation-accounts";

/// The event source of a record an SQS event source mapping delivers.
pub const SOURCE_SQS: &str = "aws:sqs";
/// Records per SQS batch: Lambda delivers at most 10,000 (batch window);
/// anything above is not from it.
pub const MAX_SQS_RECORDS: usize = 10_000;

/// One SQS record, as the org sweep reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct SqsRecord {
    /// `messageId`: what a batch item failure names.
    pub message_id: String,
    /// The message body, unparsed.
    pub body: String,
    /// `attributes.ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// `eventSourceARN`: the queue the record came from, as the event says.
    /// The org sweep serves only its own queue's records.
    pub event_source_arn: Option<String>,
}

#[derive(Debug, Deserialize)]
struct SqsEnvelope {
    #[serde(rename = "Records")]
    records: Vec<SqsRecordRaw>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SqsRecordRaw {
    message_id: String,
    #[serde(default)]
    body: Option<String>,
    event_source: String,
    #[serde(default, rename = "eventSourceARN")]
    event_source_arn: Option<String>,
    #[serde(default)]
    attributes: SqsAttributes,
}

#[derive(Debug, Default, Deserialize)]
struct SqsAttributes {
    #[serde(rename = "ApproximateReceiveCount", default)]
    approximate_receive_count: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    event_name: String,
    #[serde(default, rename = "eventID")]
    event_id: Option<String>,
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    aws_region: Option<String>,
    #[serde(default)]
    user_identity: Option<UserIdentity>,
    #[serde(default)]
    error_code: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    request_parameters: Option<Value>,
    #[serde(default)]
    response_elements: Option<Value>,
    /// A service event's details: a rotation event's `SecretId`.
    #[serde(default)]
    additional_event_data: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UserIdentity {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    principal_id: Option<String>,
    #[serde(default)]
    arn: Option<String>,
    #[serde(default)]
    invoked_by: Option<String>,
    #[serde(default)]
    session_context: Option<SessionContext>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionContext {
    #[serde(default)]
    session_issuer: Option<SessionIssuer>,
}

#[derive(Debug, Default, Deserialize)]
struct SessionIssuer {
    #[serde(default)]
    arn: Option<String>,
}

/// Parse raw event bytes, enforcing the size and depth bounds first.
pub fn parse_bytes(raw: &[u8]) -> Result<Incoming, EventError> {
    if raw.len() > MAX_EVENT_BYTES {
        return Err(EventError::TooLarge(raw.len()));
    }
    check_depth(raw)?;
    let value: Value =
        serde_json::from_slice(raw).map_err(|e| EventError::NotJson(e.to_string()))?;
    parse_value(value)
}

/// Counts bracket nesting outside strings, so a deep document is refused
/// before any tree is built.
pub(crate) fn check_depth(raw: &[u8]) -> Result<(), EventError> {
    let (mut depth, mut in_string, mut escaped) = (0usize, false, false);
    for &b in raw {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > MAX_EVENT_DEPTH {
                    return Err(EventError::TooDeep);
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(())
}

/// False for the calls that are handled only when they make a new current
/// version: UpdateSecret without a new value (CloudTrail logs
/// `secretString` / `secretBinary` redacted, but their keys are there when
/// the request carried one) and UpdateSecretVersionStage not moving
/// AWSCURRENT. True for every other handled call.
fn makes_new_current(event: HandledEvent, params: Option<&Value>) -> bool {
    let has = |key: &str| params.and_then(|p| p.get(key)).is_some();
    match event {
        HandledEvent::UpdateSecret => has("secretString") || has("secretBinary"),
        HandledEvent::UpdateSecretVersionStage => {
            params
                .and_then(|p| p.get("versionStage"))
                .and_then(Value::as_str)
                == Some("AWSCURRENT")
                && has("moveToVersionId")
        }
        _ => true,
    }
}

/// Parse an event already decoded as JSON.
pub fn parse_value(value: Value) -> Result<Incoming, EventError> {
    if value.get("Records").is_some() {
        return parse_sqs(value);
    }
    if let Some(task) = value.get(TASK_KEY) {
        return match task.as_str() {
            Some(REFRESH_ACCOUNTS) => Ok(Incoming::RefreshAccounts),
            _ => Err(EventError::Shape {
                path: TASK_KEY.into(),
                message: format!("unknown task {task}; the one task is {REFRESH_ACCOUNTS:?}"),
            }),
        };
    }
    let envelope: EventBridgeEvent<Value> =
        serde_path_to_error::deserialize(value).map_err(|e| EventError::Shape {
            path: match e.path().to_string() {
                p if p == "." => "(top level)".to_string(),
                p => p,
            },
            message: e.inner().to_string(),
        })?;
    if envelope.source == SOURCE_SCHEDULE && envelope.detail_type == DETAIL_TYPE_SCHEDULED {
        // Its account and Region, when given, are checked like a call's:
        // the sweep of an account outside any organisation covers it.
        let account = envelope
            .account
            .map(|a| owning_account(Some(a)))
            .transpose()?;
        let region = match envelope.region {
            Some(r) => Some(call_region(None, Some(r))?),
            None => None,
        };
        return Ok(Incoming::Sweep(Scheduled {
            event_id: envelope.id,
            time: envelope.time.map(|t| t.to_rfc3339()),
            region,
            account,
        }));
    }
    if envelope.source != SOURCE_SECRETS_MANAGER
        || ![DETAIL_TYPE_API_CALL, DETAIL_TYPE_SERVICE_EVENT]
            .contains(&envelope.detail_type.as_str())
    {
        return Err(EventError::Unsupported {
            event_source: envelope.source,
            detail_type: envelope.detail_type,
        });
    }
    if !envelope.detail.is_object() {
        return Err(EventError::Shape {
            path: "detail".into(),
            message: "expected an object".into(),
        });
    }
    let detail: Detail =
        serde_path_to_error::deserialize(envelope.detail).map_err(|e| EventError::Shape {
            path: format!("detail.{}", e.path()),
            message: e.inner().to_string(),
        })?;
    if detail.event_name.trim().is_empty() {
        return Err(EventError::Shape {
            path: "detail.eventName".into(),
            message: "is empty".into(),
        });
    }
    // A handled name under the other detail-type is not the event the
    // auditor knows (no such record is documented): ignored.
    let Some(event) = HandledEvent::from_name(&detail.event_name)
        .filter(|e| e.detail_type() == envelope.detail_type)
        .filter(|e| makes_new_current(*e, detail.request_parameters.as_ref()))
    else {
        return Ok(Incoming::Ignored {
            event_name: detail.event_name,
        });
    };
    let account = owning_account(envelope.account)?;
    let region = call_region(detail.aws_region.clone(), envelope.region)?;
    let secret = secret_ref(event, &detail)?;
    let mut removed_regions =
        string_list(detail.request_parameters.as_ref(), "removeReplicaRegions");
    removed_regions.retain(|r| is_region_name(r));
    let cross_account = cross_account_request(event, detail.request_parameters.as_ref());
    Ok(Incoming::ApiCall(Trigger {
        event,
        event_id: detail.event_id.or(envelope.id),
        event_time: detail
            .event_time
            .or_else(|| envelope.time.map(|t| t.to_rfc3339())),
        region,
        account,
        actor: actor(detail.user_identity.unwrap_or_default()),
        error_code: detail.error_code.filter(|c| !c.is_empty()),
        error_message: detail.error_message,
        secret,
        removed_regions,
        cross_account,
    }))
}

/// Who made the call (or, for a service event, the service that logged it).
fn actor(identity: UserIdentity) -> Actor {
    let issuer_arn = identity
        .session_context
        .and_then(|c| c.session_issuer)
        .and_then(|i| i.arn);
    let display = identity
        .arn
        .clone()
        .or_else(|| issuer_arn.clone())
        .or_else(|| identity.invoked_by.clone())
        .or_else(|| identity.principal_id.clone())
        .or_else(|| identity.kind.clone());
    Actor {
        display,
        arn: identity.arn,
        issuer_arn,
    }
}

/// The envelope's `account`: present and 12 digits, or the event is
/// malformed (an event naming no account, or a mistyped one, names none
/// the auditor could act in).
fn owning_account(account: Option<String>) -> Result<String, EventError> {
    match account {
        Some(a) if is_account_id(&a) => Ok(a),
        Some(a) => Err(EventError::Shape {
            path: "account".into(),
            message: format!("{:?} is not a 12-digit account id", truncated(&a)),
        }),
        None => Err(EventError::Shape {
            path: "account".into(),
            message: "is missing".into(),
        }),
    }
}

/// The call's Region: `detail.awsRegion`, else the envelope's, in the
/// Region grammar; the envelope's, when given, must be one too.
fn call_region(detail: Option<String>, envelope: Option<String>) -> Result<String, EventError> {
    let bad = |path: &str, r: &str| EventError::Shape {
        path: path.into(),
        message: format!("{:?} is not a Region name", truncated(r)),
    };
    if let Some(r) = envelope.as_deref().filter(|r| !is_region_name(r)) {
        return Err(bad("region", r));
    }
    match (detail, envelope) {
        (Some(r), _) if is_region_name(&r) => Ok(r),
        (Some(r), _) => Err(bad("detail.awsRegion", &r)),
        (None, Some(r)) => Ok(r),
        (None, None) => Err(EventError::Shape {
            path: "detail.awsRegion".into(),
            message: "is missing, and so is the envelope's region".into(),
        }),
    }
}

/// At most 40 characters of untrusted text, for an error message.
fn truncated(s: &str) -> String {
    s.chars().take(40).collect()
}

/// An SQS event (`{"Records": [...]}`): every record must be an SQS one
/// with a message id (a batch item failure names it) and a receive count
/// that is a number; the bodies are left for the org sweep to parse.
fn parse_sqs(value: Value) -> Result<Incoming, EventError> {
    let shape = |path: String, message: String| EventError::Shape { path, message };
    let envelope: SqsEnvelope = serde_path_to_error::deserialize(value)
        .map_err(|e| shape(e.path().to_string(), e.inner().to_string()))?;
    if envelope.records.is_empty() {
        return Err(shape("Records".into(), "is empty".into()));
    }
    if envelope.records.len() > MAX_SQS_RECORDS {
        return Err(shape(
            "Records".into(),
            format!(
                "holds {} records; Lambda delivers at most {MAX_SQS_RECORDS}",
                envelope.records.len()
            ),
        ));
    }
    let mut records = Vec::with_capacity(envelope.records.len());
    for (i, r) in envelope.records.into_iter().enumerate() {
        if r.event_source != SOURCE_SQS {
            return Err(shape(
                format!("Records[{i}].eventSource"),
                format!("{:?} is not {SOURCE_SQS:?}", r.event_source),
            ));
        }
        if r.message_id.trim().is_empty() || r.message_id.chars().any(char::is_control) {
            return Err(shape(
                format!("Records[{i}].messageId"),
                "is empty or holds control characters".into(),
            ));
        }
        let receive_count = match r.attributes.approximate_receive_count.as_deref() {
            None => 1,
            Some(n) => n.trim().parse::<u32>().map_err(|_| {
                shape(
                    format!("Records[{i}].attributes.ApproximateReceiveCount"),
                    format!("{n:?} is not a whole number"),
                )
            })?,
        };
        records.push(SqsRecord {
            message_id: r.message_id,
            body: r.body.unwrap_or_default(),
            receive_count,
            event_source_arn: r.event_source_arn,
        });
    }
    Ok(Incoming::SweepCells(records))
}

/// Which secret the event concerns: a rotation service event's
/// `additionalEventData.SecretId`; a call's ARN the response returned when
/// there is one (it is exact), else what the request named.
fn secret_ref(event: HandledEvent, detail: &Detail) -> Result<SecretRef, EventError> {
    let no_secret = |reason: String| EventError::NoSecret {
        event_name: event.as_str().to_string(),
        reason,
    };
    let id = if event.detail_type() == DETAIL_TYPE_SERVICE_EVENT {
        service_secret_id(detail).map_err(no_secret)?
    } else {
        call_secret_id(event, detail).map_err(no_secret)?
    }
    .trim();
    if id.is_empty() {
        return Err(no_secret("the secret id is empty".to_string()));
    }
    if id.chars().count() > MAX_SECRET_ID_CHARS {
        return Err(no_secret(format!(
            "the secret id is longer than {MAX_SECRET_ID_CHARS} characters"
        )));
    }
    if id.chars().any(char::is_control) {
        return Err(no_secret(
            "the secret id contains control characters".to_string(),
        ));
    }
    Ok(SecretRef::parse(id))
}

/// A rotation service event's secret: `additionalEventData.SecretId`, the
/// secret's ARN (its request and response are null).
fn service_secret_id(detail: &Detail) -> Result<&str, String> {
    match detail
        .additional_event_data
        .as_ref()
        .and_then(|d| d.get("SecretId"))
    {
        None | Some(Value::Null) => Err("additionalEventData.SecretId is not present".into()),
        Some(Value::String(s)) => Ok(s.as_str()),
        Some(other) => Err(format!(
            "additionalEventData.SecretId is {}, not a string",
            json_kind(other)
        )),
    }
}

/// An API call's secret: `responseElements.arn` (or `aRN`, `ARN`) when it
/// is a full ARN, else the request's `name` (CreateSecret) or `secretId`.
fn call_secret_id(event: HandledEvent, detail: &Detail) -> Result<&str, String> {
    let from_response = ["arn", "aRN", "ARN"]
        .iter()
        .find_map(|k| detail.response_elements.as_ref()?.get(*k)?.as_str());
    let request = detail.request_parameters.as_ref();
    let request_key = match event {
        HandledEvent::CreateSecret => "name",
        _ => "secretId",
    };
    let from_request = match request.and_then(|r| r.get(request_key)) {
        None | Some(Value::Null) => {
            // Tolerate the other spelling: some clients log `name` for ids.
            ["secretId", "name"]
                .iter()
                .find_map(|k| request?.get(*k)?.as_str())
        }
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(format!(
                "requestParameters.{request_key} is {}, not a string",
                json_kind(other)
            ));
        }
    };
    from_response
        .filter(|s| parse_secret_arn(s).is_some())
        .or(from_request)
        .ok_or_else(|| {
            format!("neither requestParameters.{request_key} nor responseElements.arn is present")
        })
}

fn string_list(params: Option<&Value>, key: &str) -> Vec<String> {
    params
        .and_then(|p| p.get(key))
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn envelope(detail: Value) -> Value {
        json!({
            "version": "0",
            "id": "6f8e2a4c-0000-4000-8000-000000000001",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.secretsmanager",
            "account": "111122223333",
            "time": "2026-11-20T10:00:00Z",
            "region": "us-west-2",
            "resources": [],
            "detail": detail
        })
    }

    fn api_call(v: Value) -> Trigger {
        match parse_value(v).expect("parses") {
            Incoming::ApiCall(t) => t,
            other => panic!("expected an API call, got {other:?}"),
        }
    }

    #[test]
    fn the_envelope_account_owns_the_event_and_must_be_twelve_digits() {
        let mut v = envelope(json!({
            "eventName": "ReplicateSecretToRegions", "awsRegion": "us-west-2",
            "recipientAccountId": "999988887777",
            "requestParameters": {"secretId": "s"}
        }));
        // recipientAccountId is the caller's word: the envelope decides.
        assert_eq!(api_call(v.clone()).account, "111122223333");
        for bad in [
            json!("11112222333"),
            json!("1111222233334"),
            json!("11112222333x"),
            json!(null),
        ] {
            v["account"] = bad.clone();
            assert!(
                matches!(parse_value(v.clone()), Err(EventError::Shape { ref path, .. }) if path == "account"),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_region_outside_the_grammar_is_malformed() {
        let call = |aws_region: Value, envelope_region: Value| {
            let mut v = envelope(json!({
                "eventName": "ReplicateSecretToRegions", "awsRegion": aws_region,
                "requestParameters": {"secretId": "s",
                    "removeReplicaRegions": ["eu-west-1", "<b>x</b>"]}
            }));
            v["region"] = envelope_region;
            parse_value(v)
        };
        for (detail, env, path) in [
            (
                json!("us-west-2\n@here"),
                json!("us-west-2"),
                "detail.awsRegion",
            ),
            (json!("US-WEST-2"), json!("us-west-2"), "detail.awsRegion"),
            (json!("us-west-2"), json!("nowhere"), "region"),
        ] {
            assert!(
                matches!(call(detail.clone(), env.clone()), Err(EventError::Shape { path: ref p, .. }) if p == path),
                "{detail} / {env}"
            );
        }
        let Ok(Incoming::ApiCall(t)) = call(json!(null), json!("eu-central-1")) else {
            panic!("the envelope's Region stands in");
        };
        assert_eq!(t.region, "eu-central-1");
        assert_eq!(
            t.removed_regions,
            ["eu-west-1"],
            "only Region names are kept"
        );
    }

    #[test]
    fn a_secret_arn_of_another_account_is_the_callers_copy() {
        let call = |secret: &str| {
            api_call(envelope(json!({
                "eventName": "ReplicateSecretToRegions", "awsRegion": "us-west-2",
                "requestParameters": {"secretId": secret}
            })))
        };
        let other = call("arn:aws:secretsmanager:us-west-2:999988887777:secret:db-AbCdEf");
        assert_eq!(other.other_owner(), Some("999988887777"));
        let own = call("arn:aws:secretsmanager:us-west-2:111122223333:secret:db-AbCdEf");
        assert_eq!(own.other_owner(), None);
        assert_eq!(
            call("db").other_owner(),
            None,
            "a name is the event's account's"
        );
    }

    #[test]
    fn create_secret_with_arn_in_response() {
        let t = api_call(envelope(json!({
            "eventName": "CreateSecret",
            "eventID": "x",
            "awsRegion": "us-west-2",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"},
            "requestParameters": {"name": "production/DBWest"},
            "responseElements": {"arn": "arn:aws:secretsmanager:us-west-2:111122223333:secret:production/DBWest-AbCdEf"}
        })));
        assert_eq!(t.event, HandledEvent::CreateSecret);
        assert_eq!(
            t.secret.id,
            "arn:aws:secretsmanager:us-west-2:111122223333:secret:production/DBWest-AbCdEf"
        );
        assert_eq!(t.secret.arn_region.as_deref(), Some("us-west-2"));
        assert_eq!(t.secret.display_name(), "production/DBWest-AbCdEf");
        assert_eq!(
            t.actor.display.as_deref(),
            Some("arn:aws:iam::111122223333:user/alice")
        );
        assert_eq!(t.region, "us-west-2");
        // CloudTrail's own eventID wins over the EventBridge envelope id.
        assert_eq!(t.event_id.as_deref(), Some("x"));
    }

    #[test]
    fn legacy_upper_case_arn_and_null_response() {
        let t = api_call(envelope(json!({
            "eventName": "CreateSecret",
            "requestParameters": {"name": "app/one"},
            "responseElements": {"aRN": "arn:aws:secretsmanager:eu-west-1:111122223333:secret:app/one-123456"}
        })));
        assert_eq!(t.secret.arn_region.as_deref(), Some("eu-west-1"));
        let t = api_call(envelope(json!({
            "eventName": "CreateSecret",
            "requestParameters": {"name": "app/one"},
            "responseElements": null
        })));
        assert_eq!(t.secret.id, "app/one");
        assert_eq!(t.secret.arn_region, None);
    }

    #[test]
    fn secret_id_partial_arn() {
        let t = api_call(envelope(json!({
            "eventName": "ReplicateSecretToRegions",
            "requestParameters": {"secretId": "arn:aws:secretsmanager:us-east-1:111122223333:secret:app/one"},
        })));
        assert_eq!(t.secret.arn_region.as_deref(), Some("us-east-1"));
        assert_eq!(t.secret.arn_account.as_deref(), Some("111122223333"));
    }

    #[test]
    fn assumed_role_and_service_identities() {
        let t = api_call(envelope(json!({
            "eventName": "RemoveRegionsFromReplication",
            "userIdentity": {"type": "AssumedRole", "sessionContext": {"sessionIssuer": {"arn": "arn:aws:iam::111122223333:role/ops"}}},
            "requestParameters": {"secretId": "app/one", "removeReplicaRegions": ["eu-west-1", 7]},
        })));
        assert_eq!(
            t.actor.issuer_arn.as_deref(),
            Some("arn:aws:iam::111122223333:role/ops")
        );
        assert_eq!(
            t.actor.display.as_deref(),
            Some("arn:aws:iam::111122223333:role/ops")
        );
        assert_eq!(t.removed_regions, vec!["eu-west-1".to_string()]);
        let t = api_call(envelope(json!({
            "eventName": "StopReplicationToReplica",
            "userIdentity": {"type": "AWSService", "invokedBy": "secretsmanager.amazonaws.com"},
            "requestParameters": {"secretId": "app/one"},
        })));
        assert_eq!(
            t.actor.display.as_deref(),
            Some("secretsmanager.amazonaws.com")
        );
        let t = api_call(envelope(json!({
            "eventName": "StopReplicationToReplica",
            "requestParameters": {"secretId": "app/one"},
        })));
        assert_eq!(t.actor, Actor::default());
    }

    #[test]
    fn failed_call_keeps_error() {
        let t = api_call(envelope(json!({
            "eventName": "ReplicateSecretToRegions",
            "errorCode": "AccessDenied",
            "errorMessage": "User is not authorized",
            "requestParameters": {"secretId": "app/one"},
            "responseElements": null
        })));
        assert_eq!(t.error_code.as_deref(), Some("AccessDenied"));
    }

    #[test]
    fn scheduled_event_is_a_sweep() {
        let v = json!({"version": "0", "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa", "detail-type": "Scheduled Event",
                       "source": "aws.events", "account": "123456789012", "time": "2026-11-23T12:00:00Z", "region": "us-east-1",
                       "resources": ["arn:aws:events:us-east-1:123456789012:rule/replica-auditor-sweep"], "detail": {}});
        match parse_value(v).unwrap() {
            Incoming::Sweep(s) => {
                assert_eq!(
                    s.event_id.as_deref(),
                    Some("53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa")
                );
                assert_eq!(s.region.as_deref(), Some("us-east-1"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_refresh_schedules_input_is_the_refresh_and_nothing_else_is() {
        assert_eq!(
            parse_bytes(br#"{"replica-auditor": "refresh-organisation-accounts"}"#),
            Ok(Incoming::RefreshAccounts)
        );
        for bad in [
            json!({"replica-auditor": "sweep"}),
            json!({"replica-auditor": null}),
            json!({"replica-auditor": {"task": "refresh-organisation-accounts"}}),
        ] {
            let e = parse_value(bad.clone()).unwrap_err();
            assert!(
                matches!(&e, EventError::Shape { path, .. } if path == "replica-auditor"),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn other_event_name_is_ignored() {
        let r = parse_value(envelope(json!({"eventName": "GetRandomPassword"}))).unwrap();
        assert_eq!(
            r,
            Incoming::Ignored {
                event_name: "GetRandomPassword".into()
            }
        );
    }

    #[test]
    fn malformed_events_name_what_is_wrong() {
        let e = parse_bytes(b"not json").unwrap_err();
        assert!(matches!(e, EventError::NotJson(_)), "{e}");
        let e = parse_value(json!({"source": "aws.secretsmanager"})).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event has the wrong shape at `(top level)`: missing field `detail-type`"
        );
        let mut v = envelope(json!({}));
        v.as_object_mut().unwrap().remove("detail");
        let e = parse_value(v).unwrap_err();
        assert!(e.to_string().contains("detail"), "{e}");
        let e = parse_value(envelope(json!({"eventName": 42}))).unwrap_err();
        assert!(e.to_string().contains("detail.eventName"), "{e}");
        let e = parse_value(envelope(
            json!({"eventName": "CreateSecret", "requestParameters": {}}),
        ))
        .unwrap_err();
        assert!(matches!(e, EventError::NoSecret { .. }), "{e}");
        let e = parse_value(envelope(json!({"eventName": "ReplicateSecretToRegions", "requestParameters": {"secretId": ["x"]}}))).unwrap_err();
        assert!(e.to_string().contains("not a string"), "{e}");
        // Found by the property tests: a detail that is a list, an empty name.
        let e = parse_value(envelope(json!([""]))).unwrap_err();
        assert_eq!(
            e.to_string(),
            "event has the wrong shape at `detail`: expected an object"
        );
        let e = parse_value(envelope(json!({"eventName": " "}))).unwrap_err();
        assert!(e.to_string().contains("detail.eventName"), "{e}");
        let mut v = envelope(json!({"eventName": "CreateSecret"}));
        v["source"] = json!("aws.ec2");
        assert!(matches!(
            parse_value(v).unwrap_err(),
            EventError::Unsupported { .. }
        ));
    }

    fn sqs(records: Value) -> Result<Incoming, EventError> {
        parse_value(json!({ "Records": records }))
    }

    #[test]
    fn an_sqs_batch_is_the_org_sweeps_cells() {
        let got = sqs(json!([
            {"messageId": "m-1", "receiptHandle": "r", "body": "{\"schema\": 1}",
             "attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1"},
             "messageAttributes": {}, "md5OfBody": "x", "eventSource": "aws:sqs",
             "eventSourceARN": "arn:aws:sqs:us-west-2:123456789012:sweep", "awsRegion": "us-west-2"},
            {"messageId": "m-2", "body": "anything", "eventSource": "aws:sqs"}
        ]))
        .unwrap();
        assert_eq!(
            got,
            Incoming::SweepCells(vec![
                SqsRecord {
                    message_id: "m-1".into(),
                    body: "{\"schema\": 1}".into(),
                    receive_count: 3,
                    event_source_arn: Some("arn:aws:sqs:us-west-2:123456789012:sweep".into()),
                },
                SqsRecord {
                    message_id: "m-2".into(),
                    body: "anything".into(),
                    receive_count: 1,
                    event_source_arn: None,
                },
            ])
        );
    }

    #[test]
    fn a_malformed_sqs_batch_names_what_is_wrong() {
        let rec = |extra: Value| {
            let mut r = json!({"messageId": "m-1", "body": "b", "eventSource": "aws:sqs",
                               "attributes": {"ApproximateReceiveCount": "1"}});
            for (k, v) in extra.as_object().unwrap() {
                r[k] = v.clone();
            }
            r
        };
        let cases = [
            (json!([]), "Records"),
            (json!({}), "Records"),
            (
                json!([rec(json!({"eventSource": "aws:kinesis"}))]),
                "Records[0].eventSource",
            ),
            (
                json!([rec(json!({"messageId": 7}))]),
                "Records[0].messageId",
            ),
            (
                json!([rec(json!({"messageId": ""}))]),
                "Records[0].messageId",
            ),
            (
                json!([
                    rec(json!({})),
                    rec(json!({"attributes": {"ApproximateReceiveCount": "two"}}))
                ]),
                "Records[1].attributes.ApproximateReceiveCount",
            ),
        ];
        for (records, path) in cases {
            match sqs(records.clone()).unwrap_err() {
                EventError::Shape { path: p, .. } => assert_eq!(p, path, "{records}"),
                other => panic!("{records}: {other}"),
            }
        }
    }

    #[test]
    fn size_and_depth_bounds() {
        let big = vec![b' '; MAX_EVENT_BYTES + 1];
        assert_eq!(
            parse_bytes(&big).unwrap_err(),
            EventError::TooLarge(MAX_EVENT_BYTES + 1)
        );
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert_eq!(
            parse_bytes(deep.as_bytes()).unwrap_err(),
            EventError::TooDeep
        );
        // Brackets inside strings do not count.
        let fine = serde_json::to_vec(&envelope(
            json!({"eventName": "X", "note": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}),
        ))
        .unwrap();
        assert!(parse_bytes(&fine).is_ok());
    }

    #[test]
    fn the_cross_account_samples_parse_with_what_they_name() {
        // Written from the service model and CloudTrail's documentation,
        // not recorded (docs/cross-account.md).
        let primary =
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:production/DBShared-Sh4rEd";
        let replica =
            "arn:aws:secretsmanager:us-west-2:210987654321:secret:production/DBShared-R3pL1c";
        let t = api_call(
            serde_json::from_str(include_str!(
                "../../../events/associate-cross-account-replica.json"
            ))
            .unwrap(),
        );
        assert_eq!(t.event, HandledEvent::AssociateCrossAccountReplica);
        assert_eq!(t.secret.id, primary);
        assert_eq!(t.other_owner(), None, "the primary is the event's own");
        let x = t.cross_account.expect("cross-account fields");
        assert_eq!(x.other_arn.as_deref(), Some(replica));
        assert_eq!(x.restriction.as_deref(), Some("SameOrg"));
        assert_eq!(
            x.role_arn.as_deref(),
            Some("arn:aws:iam::123456789012:role/secrets-replication")
        );
        let t = api_call(
            serde_json::from_str(include_str!(
                "../../../events/disassociate-cross-account-replica.json"
            ))
            .unwrap(),
        );
        assert_eq!(t.event, HandledEvent::DisassociateCrossAccountReplica);
        assert_eq!(t.cross_account.unwrap().other_arn.as_deref(), Some(replica));
        let t = api_call(
            serde_json::from_str(include_str!(
                "../../../events/create-secret-cross-account-replica.json"
            ))
            .unwrap(),
        );
        assert_eq!(t.event, HandledEvent::CreateSecret);
        assert_eq!(
            t.secret.id,
            "arn:aws:secretsmanager:us-west-2:123456789012:secret:partner/Feed-R3pL1c"
        );
        assert_eq!(
            t.cross_account.unwrap().other_arn.as_deref(),
            Some("arn:aws:secretsmanager:us-west-2:210987654321:secret:partner/Feed-Pr1m4R")
        );
        // A CreateSecret without the field, or with one that is no secret ARN, has none.
        let plain = api_call(
            serde_json::from_str(include_str!("../../../events/create-secret.json")).unwrap(),
        );
        assert_eq!(plain.cross_account, None);
        let mut v: Value = serde_json::from_str(include_str!(
            "../../../events/create-secret-cross-account-replica.json"
        ))
        .unwrap();
        v["detail"]["requestParameters"]["crossAccountPrimaryARN"] = json!("not-an-arn");
        assert_eq!(api_call(v).cross_account, None);
    }

    #[test]
    fn the_rotation_service_events_name_their_secret_in_additional_event_data() {
        // Written from the docs, not recorded (docs/freshness.md).
        let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:production/DBWest-AbCdEf";
        for (sample, event) in [
            (
                include_str!("../../../events/rotation-succeeded.json"),
                HandledEvent::RotationSucceeded,
            ),
            (
                include_str!("../../../events/rotation-failed.json"),
                HandledEvent::RotationFailed,
            ),
            (
                include_str!("../../../events/rotation-abandoned.json"),
                HandledEvent::RotationAbandoned,
            ),
        ] {
            let v: Value = serde_json::from_str(sample).unwrap();
            let t = api_call(v.clone());
            assert_eq!(t.event, event);
            assert_eq!(t.secret.id, arn);
            assert_eq!(t.secret.arn_region.as_deref(), Some("us-west-2"));
            assert_eq!(t.account, "123456789012");
            assert_eq!(
                t.actor.display.as_deref(),
                Some("secretsmanager.amazonaws.com")
            );
            assert_eq!(t.error_code, None);
            // The same record as an API call is not one the auditor knows.
            let mut as_call = v.clone();
            as_call["detail-type"] = json!(DETAIL_TYPE_API_CALL);
            assert_eq!(
                parse_value(as_call).unwrap(),
                Incoming::Ignored {
                    event_name: event.as_str().into()
                }
            );
            // Without its SecretId, or with one of another type: no secret.
            for bad in [json!(null), json!({}), json!({"SecretId": 7})] {
                let mut w = v.clone();
                w["detail"]["additionalEventData"] = bad.clone();
                let e = parse_value(w).unwrap_err();
                assert!(
                    matches!(&e, EventError::NoSecret { reason, .. } if reason.starts_with("additionalEventData.SecretId")),
                    "{bad}: {e}"
                );
            }
        }
        // A call's name under the service detail-type, and a service event
        // the auditor does not act on, are ignored.
        for name in ["RotateSecret", "RotationStarted"] {
            let mut v =
                envelope(json!({"eventName": name, "additionalEventData": {"SecretId": arn}}));
            v["detail-type"] = json!(DETAIL_TYPE_SERVICE_EVENT);
            assert_eq!(
                parse_value(v).unwrap(),
                Incoming::Ignored {
                    event_name: name.into()
                }
            );
        }
    }

    #[test]
    fn secret_arn_parsing() {
        assert!(
            parse_secret_arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:a:b").is_some()
        );
        assert!(parse_secret_arn("arn:aws:kms:us-east-1:111122223333:key/x").is_none());
        assert!(parse_secret_arn("arn:aws:secretsmanager:US:111122223333:secret:a").is_none());
        assert!(parse_secret_arn("name").is_none());
    }
}
