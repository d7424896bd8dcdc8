//! The DynamoDB state table: remediation leases (partition key `pk`,
//! String; TTL attribute `expires_at`, epoch seconds) and the org sweep's
//! bookkeeping (its two primitives, [`StateItems`]; the rest is
//! `aws::book`'s), so keys are namespaced (`lease#...`, `sweep#...`).
//!
//! A lease is a conditional PutItem (absent, or expired by the caller's
//! clock: TTL deletes lazily, up to days late, so expiry is checked here,
//! never left to TTL) and a conditional DeleteItem by its owner. On a
//! refused PutItem the holder comes back with the error
//! (ReturnValuesOnConditionCheckFailure = ALL_OLD): no GetItem round trip.
//!
//! The sweep's policy ledgers (`policy#<account>#<Region>`,
//! [`PolicyLedgers`]): GetItem at a sweep's start; a sweep's record and an
//! event's flag are UpdateItems of string-set ADD/DELETE, atomic, so that
//! an event's flag and a sweep's record never overwrite each other.
//!
//! The Security Hub sink keeps each secret's ACTIVE findings here
//! (`shub#...` items, [`FindingsState`]): GetItem, and PutItem of the whole
//! set after the imports.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{
    Acquired, AwsClients, AwsError, FindingsState, Lease, LeaseStore, PolicyLedgers, Released,
    RemediationJournal, StateItems, SweepBook,
};
use crate::asff::{Held, HeldSet};
use crate::book::{self, Applied, ItemUpdate};
use crate::ledger::{PolicyLedger, PolicyPass, arn_digest};
use crate::model::Removal;

const PUT: &str = "dynamodb:PutItem";
const DELETE: &str = "dynamodb:DeleteItem";
const GET: &str = "dynamodb:GetItem";
const UPDATE: &str = "dynamodb:UpdateItem";

impl LeaseStore for AwsClients {
    async fn try_acquire(&self, lease: &Lease, now: u64) -> Result<Acquired, AwsError> {
        let (client, table, region) = self.state_table(PUT)?;
        let call = client
            .put_item()
            .table_name(table)
            .item("pk", s(&lease.key))
            .item("kind", s("remediation-lease"))
            .item("owner", s(&lease.owner))
            .item("since", s(&lease.since))
            .item("expires_at", n(lease.expires_at))
            .condition_expression("attribute_not_exists(pk) OR expires_at < :now")
            .expression_attribute_values(":now", n(now))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send();
        match super::boxed(call).await {
            Ok(_) => Ok(Acquired::Acquired),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let PutItemError::ConditionalCheckFailedException(held) = e.err() else {
                    unreachable!("checked above")
                };
                let holder = holder(&lease.key, held.item());
                // The SDK's retry of this very PutItem, whose first try was
                // applied but not acknowledged: the lease is ours.
                if holder.owner == lease.owner && holder.since == lease.since {
                    return Ok(Acquired::Acquired);
                }
                Ok(Acquired::HeldBy(holder))
            }
            Err(e) => Err(AwsError::from_sdk(PUT, &region, e)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<Released, AwsError> {
        let (client, table, region) = self.state_table(DELETE)?;
        let call = client
            .delete_item()
            .table_name(table)
            .key("pk", s(&lease.key))
            .condition_expression("#owner = :owner AND since = :since")
            // `owner` is a DynamoDB reserved word.
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":owner", s(&lease.owner))
            .expression_attribute_values(":since", s(&lease.since))
            .send();
        match super::boxed(call).await {
            Ok(_) => Ok(Released::Released),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), DeleteItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(Released::NotHeld)
            }
            Err(e) => Err(AwsError::from_sdk(DELETE, &region, e)),
        }
    }
}

impl FindingsState for AwsClients {
    async fn held_findings(&self, key: &str) -> Result<HeldSet, AwsError> {
        // Consistent: the set this function wrote after its last import.
        let item = self.read_item(key).await?;
        let Some(AttributeValue::M(active)) = item.as_ref().and_then(|i| i.get("active")) else {
            return Ok(HeldSet::new());
        };
        Ok(active
            .iter()
            .filter_map(|(id, v)| {
                let m = v.as_m().ok()?;
                let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some((
                    id.clone(),
                    Held {
                        created_at: text("created_at")?,
                        updated_at: text("updated_at").unwrap_or_default(),
                        digest: text("digest").unwrap_or_default(),
                        title: text("title").unwrap_or_default(),
                    },
                ))
            })
            .collect())
    }

    async fn keep_findings(
        &self,
        key: &str,
        held: &HeldSet,
        expires_at: Option<u64>,
    ) -> Result<(), AwsError> {
        let (client, table, region) = self.state_table(PUT)?;
        let mut put = client
            .put_item()
            .table_name(table)
            .item("pk", s(key))
            .item("kind", s("securityhub-active-findings"))
            .item(
                "active",
                AttributeValue::M(
                    held.iter()
                        .map(|(id, h)| (id.clone(), held_item(h)))
                        .collect(),
                ),
            );
        if let Some(at) = expires_at {
            put = put.item("expires_at", n(at));
        }
        super::boxed(put.send())
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk(PUT, &region, e))
    }
}

fn ledger_key(account: &str, region: &str) -> String {
    format!("policy#{account}#{region}")
}

fn string_set(v: impl IntoIterator<Item = String>) -> AttributeValue {
    AttributeValue::Ss(v.into_iter().collect())
}

impl PolicyLedgers for AwsClients {
    async fn policy_ledger(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<PolicyLedger>, AwsError> {
        if self.state_table_ref().is_none() {
            return Ok(None);
        }
        let Some(item) = self.read_item(&ledger_key(account, region)).await? else {
            return Ok(Some(PolicyLedger::default()));
        };
        let number = |k: &str| {
            item.get(k)
                .and_then(|v| v.as_n().ok())
                .and_then(|v| v.parse::<i64>().ok())
        };
        Ok(Some(PolicyLedger {
            read_as_of: number("read_as_of"),
            sweeps: number("sweeps").unwrap_or(0).max(0) as u64,
            flagged: item
                .get("flagged")
                .and_then(|v| v.as_ss().ok())
                .map(|v| v.iter().cloned().collect())
                .unwrap_or_default(),
            rules: item
                .get("rules")
                .and_then(|v| v.as_s().ok())
                .cloned()
                .unwrap_or_default(),
            version: number("version").unwrap_or(0).max(0) as u64,
        }))
    }

    async fn record_policy_pass(
        &self,
        account: &str,
        region: &str,
        pass: &PolicyPass,
        (started, rules): (i64, &str),
        seen: &PolicyLedger,
    ) -> Result<(), AwsError> {
        let key = ledger_key(account, region);
        // All of them (ADD to a set is idempotent): one in `seen` may have
        // been cleared by another sweep since.
        let flagged: Vec<String> = pass.flagged.iter().cloned().collect();
        let flag = |u: Update| match flagged.is_empty() {
            true => u,
            false => u.add("flagged", string_set(flagged.clone())),
        };
        if pass.complete {
            let update = flag(
                Update::new()
                    .set("kind", s("policy-ledger"))
                    .set("read_as_of", AttributeValue::N(started.to_string()))
                    .set("rules", s(rules))
                    .add("sweeps", n(1)),
            )
            .name("#s", "sweeps");
            // Only if no other sweep recorded since this one read the ledger.
            let update = match seen.sweeps {
                0 => update.condition("attribute_not_exists(#s)"),
                k => update.condition("#s = :s").value(":s", n(k)),
            };
            if let Updated::Refused(_) = self.update(&key, update).await? {
                // Another sweep recorded meanwhile: its mark stands.
                if !flagged.is_empty() {
                    self.update(&key, flag(Update::new())).await?;
                }
            }
        } else if !flagged.is_empty() {
            self.update(&key, flag(Update::new())).await?;
        }
        // Clear only what was flagged, only under the rules the ledger was
        // made under (a sweep with looser ones must not clear what its
        // sweeps would flag), and only if no event flagged anything since
        // the ledger was read (it may have flagged one of these again after
        // this sweep read it).
        let clean: Vec<String> = pass.clean.intersection(&seen.flagged).cloned().collect();
        if !clean.is_empty() && seen.read_as_of.is_some() && seen.rules == rules {
            let update = Update::new()
                .delete("flagged", string_set(clean))
                .condition("#r = :r")
                .name("#r", "rules")
                .value(":r", s(rules))
                .name("#v", "version");
            let update = match seen.version {
                0 => update.and_condition("attribute_not_exists(#v)"),
                v => update.and_condition("#v = :v").value(":v", n(v)),
            };
            self.update(&key, update).await?;
        }
        Ok(())
    }

    async fn note_policy(&self, account: &str, region: &str, arn: &str) -> Result<(), AwsError> {
        if self.state_table_ref().is_none() {
            return Ok(());
        }
        let update = Update::new()
            .add("version", n(1))
            .add("flagged", string_set([arn_digest(arn)]));
        self.update(&ledger_key(account, region), update)
            .await
            .map(drop)
    }
}

fn held_item(h: &Held) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        ("created_at".to_string(), s(&h.created_at)),
        ("updated_at".to_string(), s(&h.updated_at)),
        ("digest".to_string(), s(&h.digest)),
        ("title".to_string(), s(&h.title)),
    ]))
}

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.to_string())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

/// The lease an item describes (what is missing reads as unknown).
fn holder(key: &str, item: Option<&HashMap<String, AttributeValue>>) -> Lease {
    let text = |k: &str, unknown: &str| {
        item.and_then(|i| i.get(k))
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_else(|| unknown.into())
    };
    Lease {
        key: key.to_string(),
        owner: text("owner", "an unknown owner"),
        since: text("since", "an unknown time"),
        expires_at: item
            .and_then(|i| i.get("expires_at"))
            .and_then(|v| v.as_n().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0),
    }
}

/// The org sweep's bookkeeping ([`crate::book`]): its updates as
/// UpdateItem expressions, its items read consistently.
impl StateItems for AwsClients {
    async fn update_item(&self, u: &ItemUpdate) -> Result<Applied, AwsError> {
        let item = |i: Item| {
            i.iter()
                .filter_map(|(k, v)| Some((k.clone(), from_attr(v)?)))
                .collect()
        };
        match self.update(&u.key, expression(u)).await? {
            Updated::Done(i) => Ok(Applied::Done(item(i))),
            Updated::Refused(i) => Ok(Applied::Refused(i.map(item))),
        }
    }

    async fn get_item(&self, key: &str) -> Result<Option<book::Item>, AwsError> {
        let item = self.read_item(key).await?;
        Ok(item.map(|i| {
            i.iter()
                .filter_map(|(k, v)| Some((k.clone(), from_attr(v)?)))
                .collect()
        }))
    }
}

impl SweepBook for AwsClients {}

impl super::OrgRoster for AwsClients {
    fn shares_roster(&self) -> bool {
        self.state_table_ref().is_some()
    }
}

fn attr(v: &book::Attr) -> AttributeValue {
    use book::Attr;
    match v {
        Attr::N(x) => n(*x),
        Attr::S(x) => s(x),
        Attr::Bool(b) => AttributeValue::Bool(*b),
        Attr::L(l) => AttributeValue::L(l.iter().map(|x| s(x)).collect()),
        Attr::Ns(set) => AttributeValue::Ns(set.iter().map(u64::to_string).collect()),
        Attr::Ss(set) => AttributeValue::Ss(set.iter().cloned().collect()),
    }
}

/// What the bookkeeping reads of an attribute (anything else is not its).
fn from_attr(v: &AttributeValue) -> Option<book::Attr> {
    use book::Attr;
    Some(match v {
        AttributeValue::N(x) => Attr::N(x.parse().ok()?),
        AttributeValue::S(x) => Attr::S(x.clone()),
        AttributeValue::Bool(b) => Attr::Bool(*b),
        AttributeValue::L(l) => Attr::L(l.iter().filter_map(|x| x.as_s().ok().cloned()).collect()),
        AttributeValue::Ns(set) => Attr::Ns(set.iter().filter_map(|x| x.parse().ok()).collect()),
        AttributeValue::Ss(set) => Attr::Ss(set.iter().cloned().collect()),
        _ => return None,
    })
}

/// One bookkeeping update as an UpdateItem expression.
fn expression(u: &ItemUpdate) -> Update {
    use book::Cond;
    let mut up = Update::new();
    for (name, v) in &u.set {
        up = up.set(name, attr(v));
    }
    for (name, v) in &u.add {
        up = up.add(name, attr(v));
    }
    for (name, v) in &u.delete {
        up = up.delete(name, attr(v));
    }
    for c in &u.conditions {
        let mut on = |name: &str, v: Option<AttributeValue>| {
            let (name, value) = up.placeholder(name);
            if let Some(v) = v {
                up.values.insert(value.clone(), v);
            }
            (name, value)
        };
        let clause = match c {
            Cond::Exists => "attribute_exists(pk)".to_string(),
            Cond::Absent => "attribute_not_exists(pk)".to_string(),
            Cond::NoAttr(a) => format!("attribute_not_exists({})", on(a, None).0),
            Cond::NotHasN(a, x) => {
                let (name, value) = on(a, Some(n(*x)));
                format!("NOT contains({name}, {value})")
            }
            Cond::NotHasS(a, x) => {
                let (name, value) = on(a, Some(s(x)));
                format!("NOT contains({name}, {value})")
            }
            Cond::Is(a, v) => {
                let (name, value) = on(a, Some(attr(v)));
                format!("{name} = {value}")
            }
            Cond::AbsentOrBelow(a, x) => {
                let (name, value) = on(a, Some(n(*x)));
                format!("(attribute_not_exists({name}) OR {name} < {value})")
            }
        };
        up.condition.push(clause);
    }
    up
}

fn journal_key(arn: &str) -> String {
    format!("journal#{arn}")
}

/// The journal item's attribute for one replica Region.
fn journal_attribute(region: &str) -> String {
    format!("r#{region}")
}

/// The journal's index of one account and Region: the primaries of theirs
/// that ever had an entry (`arns`, a string set), so that a sweep reads one
/// item per cell rather than a journal per secret.
fn journal_index_key(account: &str, region: &str) -> String {
    format!("journal-index#{account}#{region}")
}

impl RemediationJournal for AwsClients {
    async fn removals(&self, arn: &str) -> Result<Vec<Removal>, AwsError> {
        let Some(item) = self.read_item(&journal_key(arn)).await? else {
            return Ok(Vec::new());
        };
        Ok(item
            .iter()
            .filter_map(|(k, v)| {
                let replica = k.strip_prefix("r#")?;
                let m = v.as_m().ok()?;
                let text = |k: &str| m.get(k).and_then(|v| v.as_s().ok()).cloned();
                Some(Removal {
                    arn: arn.to_string(),
                    region: replica.to_string(),
                    removed_at: text("removed_at").unwrap_or_default(),
                    kms_key_id: text("kms_key_id"),
                    force_overwrite: m
                        .get("force_overwrite")
                        .and_then(|v| v.as_bool().ok())
                        .copied()
                        .unwrap_or(false),
                    attempts: m
                        .get("attempts")
                        .and_then(|v| v.as_m().ok())
                        .map(|a| {
                            a.iter()
                                .filter_map(|(k, v)| Some((k.clone(), v.as_s().ok()?.clone())))
                                .collect()
                        })
                        .unwrap_or_default(),
                })
            })
            .collect())
    }

    async fn removing(&self, removal: &Removal) -> Result<(), AwsError> {
        let mut entry = HashMap::from([
            ("removed_at".to_string(), s(&removal.removed_at)),
            (
                "force_overwrite".to_string(),
                AttributeValue::Bool(removal.force_overwrite),
            ),
            ("attempts".to_string(), AttributeValue::M(HashMap::new())),
        ]);
        if let Some(k) = &removal.kms_key_id {
            entry.insert("kms_key_id".to_string(), s(k));
        }
        // The index first: an entry is never left out of it. Its primaries
        // stay in it once settled (no race with a removal being recorded
        // meanwhile); a sweep reads their journal, one GetItem each.
        if let Some(at) = crate::arn::parse_secret_arn(&removal.arn) {
            let index = Update::new()
                .set("kind", s("remediation-journal-index"))
                .add("arns", AttributeValue::Ss(vec![removal.arn.clone()]));
            self.update(&journal_index_key(&at.account, &at.region), index)
                .await?;
        }
        // if_not_exists: a retried (or repeated) record keeps the first.
        let mut update = Update::new()
            .set("kind", s("remediation-journal"))
            .set("arn", s(&removal.arn))
            .name("#entry", &journal_attribute(&removal.region))
            .value(":entry", AttributeValue::M(entry));
        update
            .set
            .push("#entry = if_not_exists(#entry, :entry)".into());
        self.update(&journal_key(&removal.arn), update)
            .await
            .map(drop)
    }

    async fn attempted(
        &self,
        arn: &str,
        region: &str,
        key: &str,
        outcome: &str,
    ) -> Result<(), AwsError> {
        let mut update = Update::new()
            .name("#entry", &journal_attribute(region))
            .name("#attempts", "attempts")
            .name("#key", key)
            .value(":outcome", s(outcome))
            .condition("attribute_exists(#entry)");
        update.set.push("#entry.#attempts.#key = :outcome".into());
        // Refused: the entry was settled meanwhile; nothing to add to.
        self.update(&journal_key(arn), update).await.map(drop)
    }

    async fn settled(&self, arn: &str, region: &str) -> Result<(), AwsError> {
        let update = Update::new().remove(&journal_attribute(region));
        self.update(&journal_key(arn), update).await.map(drop)
    }

    async fn journaled(
        &self,
        account: &str,
        region: &str,
    ) -> Result<Option<std::collections::BTreeSet<String>>, AwsError> {
        let item = self.read_item(&journal_index_key(account, region)).await?;
        let arns = item
            .as_ref()
            .and_then(|item| item.get("arns"))
            .and_then(|v| v.as_ss().ok())
            .map(|arns| arns.iter().cloned().collect())
            .unwrap_or_default();
        Ok(Some(arns))
    }
}

type Item = HashMap<String, AttributeValue>;

/// One UpdateItem's expression, every attribute name behind a
/// placeholder (the counters' names hold `/`, and `done` may be reserved).
#[derive(Default)]
struct Update {
    set: Vec<String>,
    add: Vec<String>,
    delete: Vec<String>,
    remove: Vec<String>,
    condition: Vec<String>,
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Update {
    fn new() -> Update {
        Update::default()
    }

    fn placeholder(&mut self, attribute: &str) -> (String, String) {
        let i = self.names.len();
        let (name, value) = (format!("#a{i}"), format!(":v{i}"));
        self.names.insert(name.clone(), attribute.to_string());
        (name, value)
    }

    fn set(mut self, attribute: &str, v: AttributeValue) -> Update {
        let (name, value) = self.placeholder(attribute);
        self.set.push(format!("{name} = {value}"));
        self.values.insert(value, v);
        self
    }

    fn add(mut self, attribute: &str, v: AttributeValue) -> Update {
        let (name, value) = self.placeholder(attribute);
        self.add.push(format!("{name} {value}"));
        self.values.insert(value, v);
        self
    }

    fn remove(mut self, attribute: &str) -> Update {
        let (name, _) = self.placeholder(attribute);
        self.remove.push(name);
        self
    }

    fn delete(mut self, attribute: &str, v: AttributeValue) -> Update {
        let (name, value) = self.placeholder(attribute);
        self.delete.push(format!("{name} {value}"));
        self.values.insert(value, v);
        self
    }

    fn name(mut self, placeholder: &str, attribute: &str) -> Update {
        self.names.insert(placeholder.into(), attribute.into());
        self
    }

    fn value(mut self, placeholder: &str, v: AttributeValue) -> Update {
        self.values.insert(placeholder.into(), v);
        self
    }

    fn condition(mut self, c: &str) -> Update {
        self.condition = vec![c.to_string()];
        self
    }

    fn and_condition(mut self, c: &str) -> Update {
        self.condition.push(c.to_string());
        self
    }

    fn expression(&self) -> String {
        let mut parts = Vec::new();
        if !self.set.is_empty() {
            parts.push(format!("SET {}", self.set.join(", ")));
        }
        if !self.add.is_empty() {
            parts.push(format!("ADD {}", self.add.join(", ")));
        }
        if !self.delete.is_empty() {
            parts.push(format!("DELETE {}", self.delete.join(", ")));
        }
        if !self.remove.is_empty() {
            parts.push(format!("REMOVE {}", self.remove.join(", ")));
        }
        parts.join(" ")
    }
}

/// What an UpdateItem came to: the item after it, or the condition
/// refused it (the item as it was, `None` when there is none).
enum Updated {
    Done(Item),
    Refused(Option<Item>),
}

impl AwsClients {
    /// One item of the state table, read consistently (what this function
    /// or another instance wrote last): the one way every item is read.
    async fn read_item(&self, key: &str) -> Result<Option<Item>, AwsError> {
        let (client, table, region) = self.state_table(GET)?;
        let call = client
            .get_item()
            .table_name(table)
            .key("pk", s(key))
            .consistent_read(true)
            .send();
        let out = super::boxed(call)
            .await
            .map_err(|e| AwsError::from_sdk(GET, &region, e))?;
        Ok(out.item)
    }

    /// One conditional UpdateItem of the state table.
    async fn update(&self, key: &str, update: Update) -> Result<Updated, AwsError> {
        let (client, table, region) = self.state_table(UPDATE)?;
        let condition = update.condition.join(" AND ");
        let call = client
            .update_item()
            .table_name(table)
            .key("pk", s(key))
            .update_expression(update.expression())
            .set_condition_expression((!condition.is_empty()).then_some(condition))
            .set_expression_attribute_names(Some(update.names))
            .set_expression_attribute_values(Some(update.values))
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send();
        match super::boxed(call).await {
            Ok(out) => Ok(Updated::Done(out.attributes().cloned().unwrap_or_default())),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), UpdateItemError::ConditionalCheckFailedException(_)) =>
            {
                let UpdateItemError::ConditionalCheckFailedException(refused) = e.err() else {
                    unreachable!("checked above")
                };
                Ok(Updated::Refused(refused.item().cloned()))
            }
            Err(e) => Err(AwsError::from_sdk(UPDATE, &region, e)),
        }
    }
}

impl AwsClients {
    /// The state table's client, name and Region; an error naming `call`
    /// when STATE_TABLE is not configured.
    pub(super) fn state_table(
        &self,
        call: &'static str,
    ) -> Result<(aws_sdk_dynamodb::Client, &str, String), AwsError> {
        let Some((table, region)) = self.state_table_ref() else {
            return Err(AwsError::Service {
                call,
                region: self.home_region().unwrap_or_default(),
                code: "NoStateTable".into(),
                message: "STATE_TABLE is not set".into(),
            });
        };
        Ok((self.dynamodb(&region), table, region))
    }
}
