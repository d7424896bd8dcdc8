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
    let mut codes: Vec<&str> = report.findings.iter().map(|f| f.code.as_str()).collect();
    codes.sort_unstable();
    codes.dedup();
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
    Message {
        topic_arn: topic_arn.to_string(),
        subject: report::subject(report),
        body: report::body(report),
        attributes,
        group_id: None,
        dedup_id: None,
    }
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

#[derive(Debug, thiserror::Error)]
#[error("could not publish the finding report to {topic_arn}: {source}")]
pub struct PublishError {
    pub topic_arn: String,
    #[source]
    pub source: AwsError,
}
