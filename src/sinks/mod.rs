//! Where reports go, behind one trait: [`ReportSink`]. The engine hands
//! every report it makes to its sink and knows nothing of the sink's
//! limits. [`sns::SnsSink`] is the Lambda's (SNS's size, subject and
//! batching limits live there); [`collect::Collect`] keeps reports in
//! memory (tests, and a command line that prints them).

pub mod collect;
pub mod sns;

use std::future::Future;
use std::pin::Pin;

use crate::report::Report;

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
