//! Publishing a report to SNS: subject, body and the message attributes
//! subscribers filter on.

use crate::aws::{AwsError, Message, Publisher};
use crate::report::{self, Report};

/// Build the SNS message for a report.
pub fn message(topic_arn: &str, report: &Report) -> Message {
    let severity = report
        .summary
        .highest_severity
        .map(|s| s.as_str())
        .unwrap_or("INFO")
        .to_string();
    let codes = report.codes();
    let name = report::cut(&report::one_line(&report.secret.name), 256);
    let mut attributes = vec![
        ("severity".to_string(), "String", severity),
        (
            "codes".to_string(),
            "String.Array",
            serde_json::to_string(&codes).expect("strings serialise"),
        ),
        (
            "event_name".to_string(),
            "String",
            report.trigger.event_name.clone(),
        ),
    ];
    if !name.is_empty() {
        attributes.push(("secret_name".to_string(), "String", name));
    }
    let fifo = topic_arn.ends_with(".fifo");
    Message {
        topic_arn: topic_arn.to_string(),
        subject: report::subject(report),
        body: report::body(report),
        attributes,
        group_id: fifo.then(|| group_id(report)),
        dedup_id: fifo.then(|| dedup_id(report)),
    }
}

/// For FIFO topics: one message group per secret (its ARN; hashed when it
/// would break SNS's 128-character printable-ASCII rule).
pub fn group_id(report: &Report) -> String {
    use sha2::{Digest, Sha256};
    let key = report
        .secret
        .arn
        .clone()
        .unwrap_or_else(|| report.secret.name.clone());
    if !key.is_empty() && key.len() <= 128 && key.bytes().all(|b| b.is_ascii_graphic()) {
        key
    } else {
        hex::encode(Sha256::digest(key.as_bytes()))
    }
}

/// For FIFO topics: the same trigger with the same findings gets the same
/// id, so a redelivered event (EventBridge delivers at least once) is
/// dropped by SNS's five-minute deduplication instead of alerting twice.
pub fn dedup_id(report: &Report) -> String {
    use sha2::{Digest, Sha256};
    let mut ids: Vec<&str> = report.findings.iter().map(|f| f.id.as_str()).collect();
    ids.sort_unstable();
    let mut h = Sha256::new();
    h.update(report.trigger.source.as_bytes());
    h.update([0]);
    h.update(
        report
            .trigger
            .event_id
            .as_deref()
            .unwrap_or(&report.report_id)
            .as_bytes(),
    );
    for id in ids {
        h.update([0]);
        h.update(id.as_bytes());
    }
    hex::encode(h.finalize())
}

/// Publish a report; the error names the topic so the failed invocation
/// says what could not be delivered.
pub async fn publish<P: Publisher>(
    publisher: &P,
    topic_arn: &str,
    report: &Report,
) -> Result<String, PublishError> {
    let m = message(topic_arn, report);
    publisher.publish(&m).await.map_err(|source| PublishError {
        topic_arn: topic_arn.to_string(),
        source,
    })
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("could not publish the finding report to {topic_arn}: {source}")]
pub struct PublishError {
    pub topic_arn: String,
    #[source]
    pub source: AwsError,
}
