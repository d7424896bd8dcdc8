//! SNS adapter: Publish, and PublishBatch for the sweep's reports (IAM
//! authorises both with `sns:Publish`).

use std::collections::HashMap;

use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};

use super::{AwsClients, AwsError, Message, Publisher};

fn topic_region(m: &Message) -> String {
    crate::arn::topic_region(&m.topic_arn)
        .unwrap_or("unknown")
        .to_string()
}

/// `MessageStructure`: `json` for a message per protocol.
fn structure(m: &Message) -> Option<String> {
    m.per_protocol.then(|| "json".to_string())
}

/// The message's attributes as SNS takes them.
fn attributes(
    m: &Message,
    call: &'static str,
    region: &str,
) -> Result<HashMap<String, MessageAttributeValue>, AwsError> {
    m.attributes
        .iter()
        .map(|(name, data_type, value)| {
            MessageAttributeValue::builder()
                .data_type(*data_type)
                .string_value(value)
                .build()
                .map(|attr| (name.clone(), attr))
                .map_err(|e| AwsError::Transport {
                    call,
                    region: region.to_string(),
                    message: e.to_string(),
                })
        })
        .collect()
}

impl Publisher for AwsClients {
    async fn publish(&self, m: &Message) -> Result<String, AwsError> {
        let region = topic_region(m);
        let req = self
            .sns()
            .publish()
            .topic_arn(&m.topic_arn)
            .subject(&m.subject)
            .message(&m.body)
            .set_message_structure(structure(m))
            .set_message_attributes(Some(attributes(m, "sns:Publish", &region)?))
            .set_message_group_id(m.group_id.clone())
            .set_message_deduplication_id(m.dedup_id.clone());
        let out = super::boxed(req.send())
            .await
            .map_err(|e| AwsError::from_sdk("sns:Publish", &region, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }

    async fn publish_batch(
        &self,
        messages: &[Message],
    ) -> Result<Vec<Result<String, AwsError>>, AwsError> {
        const CALL: &str = "sns:PublishBatch";
        let Some(first) = messages.first() else {
            return Ok(Vec::new());
        };
        let region = topic_region(first);
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                PublishBatchRequestEntry::builder()
                    .id(i.to_string())
                    .subject(&m.subject)
                    .message(&m.body)
                    .set_message_structure(structure(m))
                    .set_message_attributes(Some(attributes(m, CALL, &region)?))
                    .set_message_group_id(m.group_id.clone())
                    .set_message_deduplication_id(m.dedup_id.clone())
                    .build()
                    .map_err(|e| AwsError::Transport {
                        call: CALL,
                        region: region.clone(),
                        message: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let req = self
            .sns()
            .publish_batch()
            .topic_arn(&first.topic_arn)
            .set_publish_batch_request_entries(Some(entries));
        let out = super::boxed(req.send())
            .await
            .map_err(|e| AwsError::from_sdk(CALL, &region, e))?;
        let mut results: Vec<Result<String, AwsError>> = (0..messages.len())
            .map(|_| {
                Err(AwsError::Transport {
                    call: CALL,
                    region: region.clone(),
                    message: "SNS reported no result for this entry".into(),
                })
            })
            .collect();
        let slot = |id: Option<&str>| {
            id.and_then(|i| i.parse::<usize>().ok())
                .filter(|i| *i < messages.len())
        };
        for ok in out.successful() {
            if let Some(i) = slot(ok.id()) {
                results[i] = Ok(ok.message_id().unwrap_or_default().to_string());
            }
        }
        for failed in out.failed() {
            if let Some(i) = slot(Some(failed.id())) {
                results[i] = Err(AwsError::Service {
                    call: CALL,
                    region: region.clone(),
                    code: failed.code().to_string(),
                    message: failed.message().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(results)
    }
}
