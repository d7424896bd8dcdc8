//! A sink that keeps every report it is given, in order: for tests, and
//! for a command line that prints the reports itself.

use std::sync::Mutex;

use super::{Delivered, Delivery, ReportSink, SinkError, report_key};
use crate::report::Report;

#[derive(Debug, Default)]
pub struct Collect {
    reports: Mutex<Vec<Report>>,
}

impl Collect {
    /// The reports so far, taken out.
    pub fn take(&self) -> Vec<Report> {
        std::mem::take(&mut *self.reports.lock().expect("not poisoned"))
    }

    fn keep(&self, report: &Report) {
        self.reports
            .lock()
            .expect("not poisoned")
            .push(report.clone());
    }
}

impl ReportSink for Collect {
    type Queue = ();

    async fn accept(&self, report: &Report) -> Result<String, SinkError> {
        self.keep(report);
        Ok(report.report_id.clone())
    }

    fn queue(&self, _: &mut (), report: &Report) -> Vec<Delivery<'_>> {
        self.keep(report);
        let done = Delivered {
            secret: report_key(report),
            main: true,
            result: Ok(()),
        };
        vec![Box::pin(async move { vec![done] })]
    }

    fn flush(&self, _: &mut ()) -> Vec<Delivery<'_>> {
        Vec::new()
    }
}
