//! A small test-side Lambda SQS event source mapping: polls a queue (moto's),
//! hands each batch to the function as the SQS event Lambda would send
//! (`Records` with `messageId`, `body`, `attributes.ApproximateReceiveCount`,
//! `eventSource: aws:sqs`), and honours the answer as `ReportBatchItemFailures`
//! does: the records it names stay in the queue (to be delivered again once
//! their visibility timeout ends, after [`EventSourceMapping::retry_after`]
//! here, and moved to the dead-letter queue by the
//! queue's redrive policy after maxReceiveCount deliveries: moto does that
//! itself, on the receive after the last), the others are deleted; an
//! invocation that fails leaves the whole batch.
#![allow(dead_code)]

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use serde_json::{Value, json};

/// One record as the function was handed it, and what it answered.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub message_id: String,
    pub receive_count: u32,
    pub body: Value,
    pub failed: bool,
}

pub struct EventSourceMapping {
    pub sqs: aws_sdk_sqs::Client,
    pub queue_url: String,
    pub queue_arn: String,
    /// Records per invocation (the mapping's BatchSize).
    pub batch_size: i32,
    /// Seconds a received message stays hidden while the function works
    /// on it: longer than any invocation, as AWS advises (six times the
    /// function's timeout), so no message is delivered twice at once.
    pub visibility_timeout: i32,
    /// Seconds before a failed record is delivered again: the shim ends its
    /// visibility timeout early (ChangeMessageVisibility) instead of waiting
    /// the whole timeout out, so a test sees the retries within seconds.
    pub retry_after: i32,
}

impl EventSourceMapping {
    pub async fn new(sqs: aws_sdk_sqs::Client, queue_url: &str) -> EventSourceMapping {
        let attrs = sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::QueueArn)
            .send()
            .await
            .expect("GetQueueAttributes");
        let queue_arn = attrs
            .attributes()
            .and_then(|a| a.get(&QueueAttributeName::QueueArn))
            .cloned()
            .unwrap_or_default();
        EventSourceMapping {
            sqs,
            queue_url: queue_url.to_string(),
            queue_arn,
            batch_size: 1,
            visibility_timeout: 60,
            retry_after: 1,
        }
    }

    /// Deliver until the queue is empty (nothing visible or in flight), with
    /// `consumers` polling at once, each batch to `invoke` (the consumer's
    /// number and the SQS event's bytes; its answer, or the invocation's
    /// error). Gives up after `limit`. Every record delivered, in order of
    /// delivery.
    pub async fn run<F, Fut>(&self, consumers: usize, limit: Duration, invoke: F) -> Vec<Delivery>
    where
        F: Fn(usize, Vec<u8>) -> Fut,
        Fut: Future<Output = Result<Value, String>>,
    {
        let started = Instant::now();
        let delivered = Mutex::new(Vec::new());
        let (invoke, log) = (&invoke, &delivered);
        let consumer = |n: usize| async move {
            loop {
                assert!(
                    started.elapsed() < limit,
                    "the queue was not empty after {limit:?}"
                );
                let got = self
                    .sqs
                    .receive_message()
                    .queue_url(&self.queue_url)
                    .max_number_of_messages(self.batch_size)
                    .visibility_timeout(self.visibility_timeout)
                    .message_system_attribute_names(MessageSystemAttributeName::All)
                    .send()
                    .await
                    .expect("ReceiveMessage");
                if got.messages().is_empty() {
                    if self.is_empty().await {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                let records: Vec<Value> = got
                    .messages()
                    .iter()
                    .map(|m| {
                        let count = m
                            .attributes()
                            .and_then(|a| {
                                a.get(&MessageSystemAttributeName::ApproximateReceiveCount)
                            })
                            .cloned()
                            .unwrap_or_else(|| "1".into());
                        json!({
                            "messageId": m.message_id(),
                            "receiptHandle": m.receipt_handle(),
                            "body": m.body(),
                            "attributes": {"ApproximateReceiveCount": count, "SentTimestamp": "0"},
                            "messageAttributes": {},
                            "md5OfBody": m.md5_of_body(),
                            "eventSource": "aws:sqs",
                            "eventSourceARN": self.queue_arn,
                            "awsRegion": "us-west-2",
                        })
                    })
                    .collect();
                let answer = invoke(
                    n,
                    serde_json::to_vec(&json!({ "Records": records })).unwrap(),
                )
                .await;
                let failed: Vec<String> = match &answer {
                    Ok(v) => v["batchItemFailures"]
                        .as_array()
                        .expect("a batchItemFailures list")
                        .iter()
                        .map(|f| f["itemIdentifier"].as_str().unwrap().to_string())
                        .collect(),
                    // The whole batch stays.
                    Err(_) => got
                        .messages()
                        .iter()
                        .map(|m| m.message_id().unwrap().to_string())
                        .collect(),
                };
                for (m, r) in got.messages().iter().zip(&records) {
                    let id = m.message_id().unwrap().to_string();
                    let is_failed = failed.contains(&id);
                    log.lock().unwrap().push(Delivery {
                        message_id: id,
                        receive_count: r["attributes"]["ApproximateReceiveCount"]
                            .as_str()
                            .unwrap()
                            .parse()
                            .unwrap(),
                        body: serde_json::from_str(m.body().unwrap_or("null"))
                            .unwrap_or(Value::Null),
                        failed: is_failed,
                    });
                    let handle = m.receipt_handle().unwrap();
                    // Err((whether the handle was void, why)), told by the
                    // error's type.
                    let done: Result<(), (bool, String)> = if is_failed {
                        self.sqs
                            .change_message_visibility()
                            .queue_url(&self.queue_url)
                            .receipt_handle(handle)
                            .visibility_timeout(self.retry_after)
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| {
                                let void = e
                                    .as_service_error()
                                    .is_some_and(|s| s.is_receipt_handle_is_invalid());
                                (void, aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                            })
                    } else {
                        self.sqs
                            .delete_message()
                            .queue_url(&self.queue_url)
                            .receipt_handle(handle)
                            .send()
                            .await
                            .map(drop)
                            .map_err(|e| {
                                let void = e
                                    .as_service_error()
                                    .is_some_and(|s| s.is_receipt_handle_is_invalid());
                                (void, aws_sdk_sqs::error::DisplayErrorContext(e).to_string())
                            })
                    };
                    match done {
                        Ok(()) => {}
                        // The invocation outlasted the visibility timeout and
                        // the message was received again: its old handle is
                        // void (moto refuses it), as Lambda's mapping meets
                        // it, and the new delivery settles the message.
                        Err((true, e)) => {
                            eprintln!(
                                "esm: a record outlived its visibility timeout and was received again: {e}"
                            );
                        }
                        Err((false, e)) => panic!("settling a record: {e}"),
                    }
                }
            }
        };
        futures::future::join_all((0..consumers).map(consumer)).await;
        delivered.into_inner().unwrap()
    }

    /// No message visible or in flight.
    pub async fn is_empty(&self) -> bool {
        let attrs = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes");
        let n = |k: QueueAttributeName| {
            attrs
                .attributes()
                .and_then(|a| a.get(&k))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        n(QueueAttributeName::ApproximateNumberOfMessages) == 0
            && n(QueueAttributeName::ApproximateNumberOfMessagesNotVisible) == 0
    }
}
