//! The command line's sink: it keeps every report with findings or
//! actions (and a sweep's summary), to print, and hands each report on to
//! another sink when that one wants it (SNS for `replay --publish`,
//! Security Hub with `--security-hub`; the in-memory one otherwise).

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

/// What the command line prints: what SNS would be sent.
fn printed(report: &Report) -> bool {
    report.is_worth_sending() || report.sweep.is_some()
}

impl<S: ReportSink> ReportSink for Kept<S> {
    type Queue = S::Queue;

    fn wants(&self, report: &Report) -> bool {
        printed(report) || self.inner.wants(report)
    }

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        if printed(report) {
            self.keep(report);
        }
        match self.inner.wants(report) {
            true => self.inner.accept(report).await,
            false => Ok(String::new()),
        }
    }

    fn queue(&self, queue: &mut S::Queue, report: &Report) -> Vec<Delivery<'_>> {
        if printed(report) {
            self.keep(report);
        }
        match self.inner.wants(report) {
            true => self.inner.queue(queue, report),
            false => Vec::new(),
        }
    }

    fn flush(&self, queue: &mut S::Queue) -> Vec<Delivery<'_>> {
        self.inner.flush(queue)
    }
}
