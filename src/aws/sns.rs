//! SNS adapter: Publish.

use aws_sdk_sns::types::MessageAttributeValue;

use super::{AwsClients, AwsError, Message, Publisher};

impl Publisher for AwsClients {
    async fn publish(&self, m: &Message) -> Result<String, AwsError> {
        let region = crate::config::topic_region(&m.topic_arn)
            .unwrap_or("unknown")
            .to_string();
        let mut req = self
            .sns()
            .publish()
            .topic_arn(&m.topic_arn)
            .subject(&m.subject)
            .message(&m.body)
            .set_message_group_id(m.group_id.clone())
            .set_message_deduplication_id(m.dedup_id.clone());
        for (name, data_type, value) in &m.attributes {
            let attr = MessageAttributeValue::builder()
                .data_type(*data_type)
                .string_value(value)
                .build()
                .map_err(|e| AwsError::Transport {
                    call: "sns:Publish",
                    region: region.clone(),
                    message: e.to_string(),
                })?;
            req = req.message_attributes(name, attr);
        }
        let out = super::boxed(req.send())
            .await
            .map_err(|e| AwsError::from_sdk("sns:Publish", &region, e))?;
        Ok(out.message_id().unwrap_or_default().to_string())
    }
}
