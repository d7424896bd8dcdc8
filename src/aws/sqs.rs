//! SQS adapter: the org sweep's queue. The planner sends one message per
//! (account, Region) cell, and a cell out of time sends its remainder.

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;

use super::{AwsClients, AwsError, SweepQueue};

const SEND: &str = "sqs:SendMessage";
/// SendMessageBatch takes at most 10 entries (and 256 KiB together; a cell
/// message is well under a tenth of that).
const BATCH: usize = 10;

impl AwsClients {
    /// Built per call from the shared configuration (its HTTP client and
    /// connection pool included): the planner calls it once per sweep, a
    /// cell only when it runs out of time or its summary waits.
    fn sqs(&self, region: &str) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::from_conf(
            aws_sdk_sqs::config::Builder::from(self.base())
                .region(aws_config::Region::new(region.to_string()))
                .build(),
        )
    }
}

impl SweepQueue for AwsClients {
    async fn send_later(
        &self,
        url: &str,
        region: &str,
        body: &str,
        delay_seconds: u32,
    ) -> Result<(), AwsError> {
        let call = self
            .sqs(region)
            .send_message()
            .queue_url(url)
            .message_body(body)
            .delay_seconds(delay_seconds.min(900) as i32)
            .send();
        super::boxed(call)
            .await
            .map(drop)
            .map_err(|e| AwsError::from_sdk(SEND, region, e))
    }

    async fn send_cells(&self, url: &str, region: &str, bodies: &[String]) -> Result<(), AwsError> {
        let sqs = self.sqs(region);
        for chunk in bodies.chunks(BATCH) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let call = sqs
                .send_message_batch()
                .queue_url(url)
                .set_entries(Some(entries))
                .send();
            let out = super::boxed(call)
                .await
                .map_err(|e| AwsError::from_sdk(SEND, region, e))?;
            if let Some(refused) = out.failed().first() {
                return Err(AwsError::Service {
                    call: SEND,
                    region: region.to_string(),
                    code: refused.code().to_string(),
                    message: format!(
                        "{} of {} messages refused by the queue: {}",
                        out.failed().len(),
                        chunk.len(),
                        refused.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }
}
