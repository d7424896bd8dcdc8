//! SQS adapter of the follow-up chain (docs/freshness.md#the-follow-up-chain):
//! one step's message, sent with its delay to the follow-up queue. The
//! send is the queue adapter's own (`sqs.rs`, SendMessage with
//! DelaySeconds, its errors classified there into [`AwsError`]).

use super::{AwsClients, AwsError, FollowUpQueue, SweepQueue};
use crate::followup::{MAX_DELAY_SECONDS, Message};

impl FollowUpQueue for AwsClients {
    async fn send_step(
        &self,
        url: &str,
        region: &str,
        message: &Message,
        delay_seconds: u32,
    ) -> Result<(), AwsError> {
        self.send_later(
            url,
            region,
            &message.body(),
            delay_seconds.min(MAX_DELAY_SECONDS),
        )
        .await
    }
}
