//! Where reports go, behind one trait: [`ReportSink`]. The engine hands
//! every report its sink wants to it and knows nothing of the sink's
//! limits. [`sns::SnsSink`] is the Lambda's (SNS's size, subject and
//! batching limits live there); [`securityhub::SecurityHubSink`] imports
//! the findings into Security Hub and resolves them (with
//! `SECURITY_HUB=on`, beside SNS: [`Both`]); [`collect::Collect`] keeps
//! reports in memory (tests, and a command line that prints them).

pub mod collect;
pub mod securityhub;
pub mod sns;

use std::future::Future;
use std::pin::Pin;

use crate::config::Config;
use crate::report::Report;

pub use securityhub::SecurityHubSink;
pub use sns::{PublishError, SnsSink};

/// Why a report did not reach its sink.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SinkError {
    /// SNS refused or could not be reached; names the topic.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// A local sink could not write.
    #[error("could not write the report: {0}")]
    Write(String),
    /// Security Hub refused findings, or the state table could not be
    /// read or written; names the call and Region.
    #[error("Security Hub: {0}")]
    SecurityHub(String),
}

/// One report's delivery within a run of many: which report (its secret's
/// ARN, else its name), whether this was its main destination (SNS: the
/// findings topic rather than the chat topic), and how it went.
#[derive(Debug)]
pub struct Delivered {
    pub secret: String,
    pub main: bool,
    pub result: Result<(), SinkError>,
}

/// Sending that is due: the caller drives it beside its own work.
pub type Delivery<'a> = Pin<Box<dyn Future<Output = Vec<Delivered>> + Send + 'a>>;

/// A destination for reports.
pub trait ReportSink: Send + Sync {
    /// What a run of many reports keeps between [`ReportSink::queue`]
    /// calls (SNS: the PublishBatch batches being filled).
    type Queue: Default + Send;

    /// Whether this sink takes `report`. By default: a report with
    /// findings or actions, and a sweep's summary (always sent). Security
    /// Hub also takes a healthy report: it may resolve what was held.
    fn wants(&self, report: &Report) -> bool {
        report.is_worth_sending() || report.sweep.is_some()
    }

    /// Deliver one report now; a receipt (SNS: the findings topic's
    /// MessageId).
    fn accept(&self, report: &Report) -> impl Future<Output = Result<String, SinkError>> + Send;

    /// Take one report of many (a sweep). What is now due to be sent comes
    /// back, so the sending overlaps the caller's work.
    fn queue(&self, queue: &mut Self::Queue, report: &Report) -> Vec<Delivery<'_>>;

    /// Everything still queued.
    fn flush(&self, queue: &mut Self::Queue) -> Vec<Delivery<'_>>;
}

/// The key a run's deliveries name a report by.
pub fn report_key(report: &Report) -> String {
    report
        .secret
        .arn
        .clone()
        .unwrap_or_else(|| report.secret.name.clone())
}

/// The Lambda's sinks: the configured SNS topics, and Security Hub when it
/// is on.
pub type Configured<C> = Both<SnsSink<C>, Option<SecurityHubSink<C>>>;

/// [`Configured`], publishing and importing with `clients` as `config` says.
pub fn configured<C: Clone>(clients: &C, config: &Config) -> Configured<C> {
    Both {
        first: SnsSink::new(
            clients.clone(),
            config.findings_topic_arn.clone(),
            config.chat_topic_arn.clone(),
        ),
        second: config
            .settings
            .security_hub
            .then(|| SecurityHubSink::new(clients.clone())),
    }
}

/// Two sinks, each given the reports it wants (the Lambda: SNS, and
/// Security Hub when it is on). Delivering to both happens at once; either
/// failing fails the delivery. The receipt is the first sink's when it
/// took the report.
#[derive(Debug, Default)]
pub struct Both<A, B> {
    pub first: A,
    pub second: B,
}

impl<A: ReportSink, B: ReportSink> ReportSink for Both<A, B> {
    type Queue = (A::Queue, B::Queue);

    fn wants(&self, report: &Report) -> bool {
        self.first.wants(report) || self.second.wants(report)
    }

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        let first = async {
            match self.first.wants(report) {
                true => Some(self.first.accept(report).await),
                false => None,
            }
        };
        let second = async {
            match self.second.wants(report) {
                true => Some(self.second.accept(report).await),
                false => None,
            }
        };
        match futures::join!(first, second) {
            (Some(Err(e)), _) | (_, Some(Err(e))) => Err(e),
            (Some(Ok(receipt)), _) | (None, Some(Ok(receipt))) => Ok(receipt),
            (None, None) => Ok(String::new()),
        }
    }

    fn queue(&self, (a, b): &mut Self::Queue, report: &Report) -> Vec<Delivery<'_>> {
        let mut due = Vec::new();
        if self.first.wants(report) {
            due.extend(self.first.queue(a, report));
        }
        if self.second.wants(report) {
            due.extend(self.second.queue(b, report));
        }
        due
    }

    fn flush(&self, (a, b): &mut Self::Queue) -> Vec<Delivery<'_>> {
        let mut due = self.first.flush(a);
        due.extend(self.second.flush(b));
        due
    }
}

/// A sink that may be off (Security Hub with `SECURITY_HUB=off`): off, it
/// wants nothing.
impl<S: ReportSink> ReportSink for Option<S> {
    type Queue = S::Queue;

    fn wants(&self, report: &Report) -> bool {
        self.as_ref().is_some_and(|s| s.wants(report))
    }

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        match self {
            Some(s) => s.accept(report).await,
            None => Ok(String::new()),
        }
    }

    fn queue(&self, queue: &mut S::Queue, report: &Report) -> Vec<Delivery<'_>> {
        match self {
            Some(s) => s.queue(queue, report),
            None => Vec::new(),
        }
    }

    fn flush(&self, queue: &mut S::Queue) -> Vec<Delivery<'_>> {
        match self {
            Some(s) => s.flush(queue),
            None => Vec::new(),
        }
    }
}
