//! The DynamoDB state table: remediation leases (partition key `pk`,
//! String; TTL attribute `expires_at`, epoch seconds). Later it also holds
//! the org-wide sweep's bookkeeping, so keys are namespaced (`lease#...`).
//!
//! A lease is a conditional PutItem (absent, or expired by the caller's
//! clock: TTL deletes lazily, up to days late, so expiry is checked here,
//! never left to TTL) and a conditional DeleteItem by its owner. On a
//! refused PutItem the holder comes back with the error
//! (ReturnValuesOnConditionCheckFailure = ALL_OLD): no GetItem round trip.
//!
//! The Security Hub sink keeps each secret's ACTIVE findings here
//! (`shub#...` items, [`FindingsState`]): GetItem, and PutItem of the whole
//! set after the imports.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::{Acquired, AwsClients, AwsError, FindingsState, Lease, LeaseStore, Released};
use crate::asff::{Held, HeldSet};

const PUT: &str = "dynamodb:PutItem";
const DELETE: &str = "dynamodb:DeleteItem";
const GET: &str = "dynamodb:GetItem";

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
                Ok(Acquired::HeldBy(holder(&lease.key, held.item())))
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
        let (client, table, region) = self.state_table(GET)?;
        // Consistent: the set this function wrote after its last import.
        let call = client
            .get_item()
            .table_name(table)
            .key("pk", s(key))
            .consistent_read(true)
            .send();
        let out = super::boxed(call)
            .await
            .map_err(|e| AwsError::from_sdk(GET, &region, e))?;
        let Some(AttributeValue::M(active)) = out.item().and_then(|i| i.get("active")) else {
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

impl AwsClients {
    /// The state table's client, name and Region; an error naming `call`
    /// when STATE_TABLE is not configured.
    fn state_table(
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
