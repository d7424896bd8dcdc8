//! The shared token buckets in the state table ([`PaceStore`]): one item
//! per quota, account and Region, `pk = pace#<quota>#<account>#<Region>`,
//! holding `tat` (microseconds since the epoch: when the bucket would be
//! full again, `crate::pace`) and `expires_at` (a day on, so TTL tidies an
//! idle bucket away).
//!
//! A take is one conditional UpdateItem of the shape the caller guessed
//! (`rate::SharedPace` guesses from the last `tat` it saw): Busy
//! `SET tat = tat + :k` if `tat >= :now AND tat <= :most`, or Idle
//! `SET tat = :after` if the item or its `tat` is absent or `tat < :now`.
//! A refused condition comes back with the item
//! (ReturnValuesOnConditionCheckFailure = ALL_OLD), from which the other
//! shape, or the refusal and its wait, follow without a GetItem. DynamoDB
//! applies each update atomically, so concurrent takes from many instances
//! add up exactly; a retry of an applied take (its answer lost) adds its
//! tokens a second time, which wastes them and lets nothing extra through.

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue, ReturnValuesOnConditionCheckFailure};

use super::{AwsClients, AwsError, PaceStore};
use crate::pace::{Rate, Shape, Take, Update};

const UPDATE: &str = "dynamodb:UpdateItem";

/// How long an idle bucket's item lives (seconds past its `tat`).
const IDLE_TTL_SECONDS: u64 = 24 * 3600;

impl PaceStore for AwsClients {
    fn shares_paces(&self) -> bool {
        self.state_table_ref().is_some()
    }

    async fn update_pace(
        &self,
        key: &str,
        rate: &Rate,
        take: Take,
        shape: Shape,
    ) -> Result<Update, AwsError> {
        let (client, table, region) = self.state_table(UPDATE)?;
        let added = u64::from(take.k) * rate.interval;
        let after = rate.take(None, take.now, take.k);
        let expires = after / 1_000_000 + IDLE_TTL_SECONDS;
        let call = client
            .update_item()
            .table_name(table)
            .key("pk", AttributeValue::S(key.to_string()))
            .expression_attribute_values(":exp", n(expires))
            .expression_attribute_values(":now", n(take.now))
            .return_values(ReturnValue::UpdatedNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        let call = match shape {
            Shape::Busy | Shape::TooFar => call
                .update_expression("SET tat = tat + :k, expires_at = :exp")
                .condition_expression("tat >= :now AND tat <= :most")
                .expression_attribute_values(":k", n(added))
                .expression_attribute_values(
                    ":most",
                    n(rate.limit(take.now, take.max_wait).saturating_sub(added)),
                ),
            Shape::Idle => call
                .update_expression("SET tat = :after, expires_at = :exp")
                .condition_expression("attribute_not_exists(tat) OR tat < :now")
                .expression_attribute_values(":after", n(after)),
        };
        match super::boxed(call.send()).await {
            Ok(out) => Ok(Update::Took(
                out.attributes()
                    .and_then(|a| tat(a.get("tat")))
                    .unwrap_or(after),
            )),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                let UpdateItemError::ConditionalCheckFailedException(held) = e.err() else {
                    unreachable!("checked above")
                };
                Ok(Update::Held(held.item().and_then(|i| tat(i.get("tat")))))
            }
            Err(e) => Err(AwsError::from_sdk(UPDATE, &region, e)),
        }
    }
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn tat(v: Option<&AttributeValue>) -> Option<u64> {
    v.and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok())
}
