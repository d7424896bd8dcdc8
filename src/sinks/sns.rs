//! The SNS sink: a report fitted to SNS's limits, its subject and the
//! message attributes subscribers filter on. The findings topic gets one
//! message per protocol (`MessageStructure=json`): the v1 JSON report as
//! `default` (SQS, Lambda, HTTPS subscribers) and plain text as `email`.
//! The optional chat topic gets Amazon Q Developer's custom notification.
//! A run of reports (a sweep) goes out in PublishBatch calls.

use serde_json::json;

use super::{Delivered, Delivery, ReportSink, SinkError, report_key};
use crate::aws::{AwsError, Message, Publisher};
use crate::notify;
use crate::report::{self, Report, Truncation, body, cut};

/// SNS's limit on a message with its attributes.
pub const SNS_MAX_BYTES: usize = 256 * 1024;

/// SNS allows 256 KB for a message and its attributes together. The body
/// travels as a JSON string inside the `MessageStructure=json` message,
/// beside the email text (at most [`notify::MAX_EMAIL_BYTES`]), so
/// this bounds the body as escaped there ([`escaped_len`]).
pub const MAX_BODY_BYTES: usize = 200 * 1024;
/// A single finding message longer than this is cut.
const MAX_MESSAGE_CHARS: usize = 2000;

/// The length of `s` as a JSON string's contents (quotes not counted):
/// what the report body costs inside a `MessageStructure=json` message.
pub fn escaped_len(s: &str) -> usize {
    s.chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if (c as u32) < 0x20 => 6,
            c => c.len_utf8(),
        })
        .sum()
}

/// A copy of the report fitted to SNS: within [`MAX_BODY_BYTES`]: cut over-long messages, then
/// drop the least severe findings, with a marker saying how many. The
/// summary still counts every finding.
pub fn fitted(report: &Report) -> Report {
    let mut report = report.clone();
    for f in &mut report.findings {
        f.message = cut(&f.message, MAX_MESSAGE_CHARS);
        f.remediation = cut(&f.remediation, MAX_MESSAGE_CHARS);
    }
    for r in &mut report.replicas {
        if let Some(m) = &mut r.status_message {
            *m = cut(m, MAX_MESSAGE_CHARS);
        }
    }
    let total = report.findings.len();
    while escaped_len(&body(&report)) > MAX_BODY_BYTES && !report.findings.is_empty() {
        // Drop a batch at a time: an exact fit is not worth quadratic work.
        let drop = (report.findings.len() / 10).max(1);
        let keep = report.findings.len() - drop;
        report.findings.truncate(keep);
        report.truncated = Some(Truncation {
            marker:
                "TRUNCATED: findings omitted to fit the SNS message limit; see the function's logs"
                    .into(),
            omitted_findings: total - keep,
        });
    }
    report
}

/// The SNS sink: the findings topic, and the chat topic if there is one.
#[derive(Debug, Clone)]
pub struct SnsSink<P> {
    publisher: P,
    findings: String,
    chat: Option<String>,
}

impl<P> SnsSink<P> {
    pub fn new(publisher: P, findings_topic_arn: String, chat_topic_arn: Option<String>) -> Self {
        SnsSink {
            publisher,
            findings: findings_topic_arn,
            chat: chat_topic_arn,
        }
    }

    pub fn topics(&self) -> Topics<'_> {
        Topics {
            findings: &self.findings,
            chat: self.chat.as_deref(),
        }
    }
}

impl<P: Publisher> SnsSink<P> {
    fn send(&self, batch: Vec<((String, usize), Message)>) -> Delivery<'_> {
        Box::pin(async move {
            publish_batch(&self.publisher, batch)
                .await
                .into_iter()
                .map(|((secret, topic), result)| Delivered {
                    secret,
                    main: topic == 0,
                    result: result.map(drop).map_err(SinkError::from),
                })
                .collect()
        })
    }
}

impl<P: Publisher> ReportSink for SnsSink<P> {
    /// One batcher per topic (a batch goes to one topic), the findings
    /// topic's first.
    type Queue = Vec<Batcher<(String, usize)>>;

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        Ok(publish(&self.publisher, self.topics(), &fitted(report)).await?)
    }

    fn queue(&self, batchers: &mut Self::Queue, report: &Report) -> Vec<Delivery<'_>> {
        let report = fitted(report);
        let secret = report_key(&report);
        let mut due = Vec::new();
        for (i, m) in messages(self.topics(), &report).into_iter().enumerate() {
            if batchers.len() <= i {
                batchers.push(Batcher::default());
            }
            if let Some(batch) = batchers[i].push((secret.clone(), i), m) {
                due.push(self.send(batch));
            }
        }
        due
    }

    fn flush(&self, batchers: &mut Self::Queue) -> Vec<Delivery<'_>> {
        batchers
            .iter_mut()
            .filter_map(Batcher::take)
            .map(|batch| self.send(batch))
            .collect()
    }
}

/// Where reports go.
#[derive(Debug, Clone, Copy)]
pub struct Topics<'a> {
    pub findings: &'a str,
    /// CHAT_TOPIC_ARN: the same reports as chat notifications.
    pub chat: Option<&'a str>,
}

/// The messages for a report: the findings topic's, then the chat topic's.
pub fn messages(topics: Topics<'_>, report: &Report) -> Vec<Message> {
    let mut out = vec![message(topics.findings, report)];
    if let Some(chat) = topics.chat {
        out.push(chat_message(chat, report));
    }
    out
}

/// The findings topic's message: `default` is the report (schema v1,
/// unchanged for every non-email subscriber), `email` its plain text.
pub fn message(topic_arn: &str, report: &Report) -> Message {
    let mut m = envelope(topic_arn, report);
    let default = body(report);
    let mut email = notify::email_text(report);
    let fixed = batch_bytes(&m) + 64; // subject, attributes, the JSON around the two
    // The report is already within MAX_BODY_BYTES escaped; the email gives
    // way if the two would pass SNS's limit.
    let room = SNS_MAX_BYTES.saturating_sub(fixed + escaped_len(&default));
    while escaped_len(&email) > room && !email.is_empty() {
        let keep = email.chars().count() * 3 / 4;
        email = cut(&email, keep);
    }
    m.body = json!({"default": default, "email": email}).to_string();
    m.per_protocol = true;
    m
}

/// The chat topic's message: Amazon Q Developer's custom notification.
pub fn chat_message(topic_arn: &str, report: &Report) -> Message {
    let mut m = envelope(topic_arn, report);
    m.body = notify::chat_message(report).to_string();
    m
}

/// Subject, attributes and FIFO ids, with an empty body.
fn envelope(topic_arn: &str, report: &Report) -> Message {
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
        body: String::new(),
        per_protocol: false,
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

/// Publish a report to every topic at once; the findings topic's
/// MessageId. The error names the topic, so the failed invocation says
/// what could not be delivered.
pub async fn publish<P: Publisher>(
    publisher: &P,
    topics: Topics<'_>,
    report: &Report,
) -> Result<String, PublishError> {
    let sent =
        futures::future::join_all(messages(topics, report).into_iter().map(|m| async move {
            publisher.publish(&m).await.map_err(|source| PublishError {
                topic_arn: m.topic_arn.clone(),
                source,
            })
        }))
        .await;
    let mut ids = Vec::with_capacity(sent.len());
    for r in sent {
        ids.push(r?);
    }
    Ok(ids.swap_remove(0))
}

/// PublishBatch limits: 10 entries, and 256 KiB for the bodies and
/// attributes of all of them together.
pub const BATCH_ENTRIES: usize = 10;
pub const BATCH_BYTES: usize = 256 * 1024;

/// What a message counts against [`BATCH_BYTES`] (the subject included,
/// to be safe).
pub fn batch_bytes(m: &Message) -> usize {
    m.subject.len()
        + m.body.len()
        + m.attributes
            .iter()
            .map(|(name, data_type, value)| name.len() + data_type.len() + value.len())
            .sum::<usize>()
}

/// Groups messages to one topic into PublishBatch calls within SNS's
/// limits, each message with a tag (what it reports on). A batch is handed
/// out as soon as it is full, so reports go out while the sweep goes on.
#[derive(Debug)]
pub struct Batcher<T> {
    pending: Vec<(T, Message)>,
    bytes: usize,
}

impl<T> Default for Batcher<T> {
    fn default() -> Self {
        Batcher {
            pending: Vec::new(),
            bytes: 0,
        }
    }
}

impl<T> Batcher<T> {
    /// Add a message; a batch to send now, if one is complete.
    pub fn push(&mut self, tag: T, m: Message) -> Option<Vec<(T, Message)>> {
        let size = batch_bytes(&m);
        let mut ready = None;
        if !self.pending.is_empty() && self.bytes + size > BATCH_BYTES {
            ready = self.take();
        }
        self.bytes += size;
        self.pending.push((tag, m));
        if self.pending.len() == BATCH_ENTRIES {
            ready = self.take();
        }
        ready
    }

    /// What is left, if anything.
    pub fn take(&mut self) -> Option<Vec<(T, Message)>> {
        self.bytes = 0;
        (!self.pending.is_empty()).then(|| std::mem::take(&mut self.pending))
    }
}

/// Publish one batch: each tag with its MessageId, or the error that kept
/// it (the whole call's, or SNS's for that entry).
pub async fn publish_batch<P: Publisher, T>(
    publisher: &P,
    batch: Vec<(T, Message)>,
) -> Vec<(T, Result<String, PublishError>)> {
    let (tags, messages): (Vec<T>, Vec<Message>) = batch.into_iter().unzip();
    let topic = |m: &Message| m.topic_arn.clone();
    let results = match publisher.publish_batch(&messages).await {
        Ok(results) if results.len() == messages.len() => results,
        Ok(results) => {
            let e = AwsError::Transport {
                call: "sns:PublishBatch",
                region: crate::arn::topic_region(&messages[0].topic_arn)
                    .unwrap_or("unknown")
                    .to_string(),
                message: format!("{} results for {} messages", results.len(), messages.len()),
            };
            messages.iter().map(|_| Err(e.clone())).collect()
        }
        Err(e) => messages.iter().map(|_| Err(e.clone())).collect(),
    };
    tags.into_iter()
        .zip(messages.iter().zip(results))
        .map(|(tag, (m, r))| {
            let r = r.map_err(|source| PublishError {
                topic_arn: topic(m),
                source,
            });
            (tag, r)
        })
        .collect()
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("could not publish the finding report to {topic_arn}: {source}")]
pub struct PublishError {
    pub topic_arn: String,
    #[source]
    pub source: AwsError,
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    fn msg(body_bytes: usize) -> Message {
        Message {
            topic_arn: "arn:aws:sns:us-west-2:123456789012:findings".into(),
            subject: "s".into(),
            body: "x".repeat(body_bytes),
            per_protocol: false,
            attributes: vec![("severity".into(), "String", "HIGH".into())],
            group_id: None,
            dedup_id: None,
        }
    }

    fn report_with(findings: usize, message_chars: usize) -> Report {
        use crate::model::{Code, Finding, Severity, Snapshot};
        let trigger = crate::report::TriggerInfo {
            source: "cloudtrail".into(),
            event_name: "CreateSecret".into(),
            event_id: Some("e-1".into()),
            event_time: None,
            region: None,
            account: Some("123456789012".into()),
            actor: None,
            error_code: None,
        };
        let findings = (0..findings)
            .map(|i| Finding {
                id: format!("id-{i}"),
                code: Code::ReplicaFailed,
                severity: Code::ReplicaFailed.severity(),
                region: Some("us-east-1".into()),
                message: format!("{i} \"quoted\"\n{}", "m".repeat(message_chars)),
                remediation: "fix".into(),
                cause: None,
                gap_kind: None,
            })
            .collect();
        crate::report::build(
            trigger,
            &Snapshot::empty("app"),
            findings,
            Vec::new(),
            Severity::Low,
            "r-1".into(),
            "t".into(),
        )
    }

    #[test]
    fn findings_topic_message_holds_the_report_as_default_and_the_email_text() {
        let r = report_with(2, 10);
        let m = message("arn:aws:sns:us-west-2:123456789012:findings", &r);
        assert!(m.per_protocol);
        let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(
            body["default"],
            report::body(&r),
            "default is the v1 body, byte for byte"
        );
        assert_eq!(body["email"], notify::email_text(&r));
        assert_eq!(body.as_object().unwrap().len(), 2);
        let chat = chat_message("arn:aws:sns:us-west-2:123456789012:chat", &r);
        assert!(!chat.per_protocol);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&chat.body).unwrap(),
            notify::chat_message(&r)
        );
        assert_eq!(
            chat.attributes, m.attributes,
            "the same filter attributes on both topics"
        );
    }

    #[test]
    fn the_largest_report_with_its_email_stays_within_snss_limit() {
        // Findings cut to fit, quotes and line breaks that grow when escaped.
        let r = fitted(&report_with(400, 1990));
        assert!(r.truncated.is_some());
        let m = message("arn:aws:sns:us-west-2:123456789012:findings", &r);
        assert!(batch_bytes(&m) <= SNS_MAX_BYTES, "{}", batch_bytes(&m));
        let body: serde_json::Value = serde_json::from_str(&m.body).unwrap();
        assert_eq!(body["default"], report::body(&r));
        assert!(
            body["email"].as_str().unwrap().len() > 1000,
            "the email is kept, cut if need be"
        );
    }

    #[test]
    fn oversized_reports_are_cut_with_a_marker() {
        let r = fitted(&report_with(400, 5000));
        let len = escaped_len(&body(&r));
        assert!(len <= MAX_BODY_BYTES, "{len}");
        assert!(body(&r).len() <= len);
        let t = r.truncated.as_ref().expect("marker");
        assert!(t.marker.starts_with("TRUNCATED"));
        assert_eq!(r.findings.len() + t.omitted_findings, 400);
        assert!(
            r.findings
                .iter()
                .all(|f| f.message.ends_with("...[truncated]"))
        );
        assert_eq!(r.summary.count, 400);
        assert!(report::subject(&r).ends_with(": 400 findings"));
    }

    #[test]
    fn escaped_len_is_what_serde_json_writes() {
        for s in [
            "",
            "plain",
            "quote \" and \\ back",
            "line\nbreak\ttab\r",
            "\u{1}\u{1f}",
            "é☃𝄞",
            "\u{8}\u{c}",
        ] {
            let written = serde_json::to_string(s).unwrap();
            assert_eq!(escaped_len(s), written.len() - 2, "{s:?}");
        }
    }

    #[test]
    fn a_batch_is_handed_out_at_ten_messages() {
        let mut b = Batcher::default();
        for i in 0..9 {
            assert!(b.push(i, msg(100)).is_none());
        }
        let batch = b.push(9, msg(100)).expect("the tenth completes a batch");
        assert_eq!(
            batch.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(b.take().is_none(), "nothing left");
        assert!(b.push(10, msg(100)).is_none());
        assert_eq!(b.take().unwrap().len(), 1);
    }

    #[test]
    fn a_batch_never_passes_256_kib() {
        let big = 100 * 1024;
        let mut b = Batcher::default();
        assert!(b.push(0, msg(big)).is_none());
        assert!(b.push(1, msg(big)).is_none());
        // A third would make 300 KiB: the first two go, the third waits.
        let batch = b.push(2, msg(big)).expect("full by size");
        assert_eq!(batch.len(), 2);
        assert!(batch.iter().map(|(_, m)| batch_bytes(m)).sum::<usize>() <= BATCH_BYTES);
        assert_eq!(b.take().unwrap()[0].0, 2);
        // One message at the body limit still goes, alone.
        let max = MAX_BODY_BYTES;
        assert!(b.push(3, msg(max)).is_none());
        assert_eq!(b.push(4, msg(max)).unwrap().len(), 1);
    }

    /// Answers PublishBatch with a script; records the batches.
    struct Sns {
        answer: Result<Vec<Result<String, AwsError>>, AwsError>,
        batches: Mutex<Vec<usize>>,
    }

    impl Publisher for Sns {
        async fn publish(&self, _: &Message) -> Result<String, AwsError> {
            unreachable!("batches only")
        }
        async fn publish_batch(
            &self,
            messages: &[Message],
        ) -> Result<Vec<Result<String, AwsError>>, AwsError> {
            self.batches.lock().unwrap().push(messages.len());
            self.answer.clone()
        }
    }

    fn refused(code: &str) -> AwsError {
        AwsError::Service {
            call: "sns:PublishBatch",
            region: "us-west-2".into(),
            code: code.into(),
            message: "no".into(),
        }
    }

    async fn send(
        answer: Result<Vec<Result<String, AwsError>>, AwsError>,
    ) -> Vec<(&'static str, Result<String, String>)> {
        let sns = Sns {
            answer,
            batches: Mutex::default(),
        };
        let batch = vec![("a", msg(10)), ("b", msg(10)), ("c", msg(10))];
        let out = publish_batch(&sns, batch).await;
        assert_eq!(*sns.batches.lock().unwrap(), [3], "one call for the three");
        out.into_iter()
            .map(|(t, r)| (t, r.map_err(|e| e.to_string())))
            .collect()
    }

    #[tokio::test]
    async fn each_entry_keeps_its_own_result() {
        let out = send(Ok(vec![
            Ok("m-1".into()),
            Err(refused("KMSDisabled")),
            Ok("m-3".into()),
        ]))
        .await;
        assert_eq!(out[0], ("a", Ok("m-1".into())));
        assert_eq!(out[2], ("c", Ok("m-3".into())));
        let (tag, err) = &out[1];
        assert_eq!(*tag, "b");
        let err = err.as_ref().unwrap_err();
        assert!(err.contains("could not publish the finding report to arn:aws:sns:us-west-2:123456789012:findings"), "{err}");
        assert!(err.contains("KMSDisabled"), "{err}");
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_entry() {
        let out = send(Err(refused("AuthorizationError"))).await;
        assert!(
            out.iter()
                .all(|(_, r)| r.as_ref().is_err_and(|e| e.contains("AuthorizationError")))
        );
    }

    #[tokio::test]
    async fn results_that_do_not_match_the_entries_fail_every_entry() {
        let out = send(Ok(vec![Ok("m-1".into())])).await;
        assert!(
            out.iter().all(|(_, r)| r
                .as_ref()
                .is_err_and(|e| e.contains("1 results for 3 messages"))),
            "{out:?}"
        );
    }
}
