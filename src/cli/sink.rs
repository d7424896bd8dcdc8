//! The command line's sink: it keeps every report it is given, to print,
//! and hands it on to another sink (SNS for `replay --publish`; the
//! in-memory one otherwise).

use std::sync::Mutex;

use replica_auditor::report::Report;
use replica_auditor::sinks::{Delivery, ReportSink, SinkError};

pub struct Kept<S> {
    kept: Mutex<Vec<Report>>,
    inner: S,
}

impl<S> Kept<S> {
    pub fn new(inner: S) -> Self {
        Kept {
            kept: Mutex::default(),
            inner,
        }
    }

    /// The reports so far, in the order they were given, taken out.
    pub fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *self.kept.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn keep(&self, report: &Report) {
        self.kept
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(report.clone());
    }
}

impl<S: ReportSink> ReportSink for Kept<S> {
    type Queue = S::Queue;

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        self.keep(report);
        self.inner.accept(report).await
    }

    fn queue(&self, queue: &mut S::Queue, report: &Report) -> Vec<Delivery<'_>> {
        self.keep(report);
        self.inner.queue(queue, report)
    }

    fn flush(&self, queue: &mut S::Queue) -> Vec<Delivery<'_>> {
        self.inner.flush(queue)
    }
}
