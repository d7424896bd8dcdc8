//! The sweep's progress bar: on stderr, and only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use replica_auditor::engine::sweep::SweepProgress;

pub struct Bar(ProgressBar);

impl Bar {
    /// A bar on stderr when it is a terminal; hidden (draws nothing) otherwise.
    pub fn new(stderr_is_terminal: bool) -> Bar {
        let target = if stderr_is_terminal {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        bar.set_style(
            ProgressStyle::with_template("{spinner} listing secrets... {pos}")
                .expect("a valid template"),
        );
        Bar(bar)
    }

    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

impl SweepProgress for Bar {
    fn listed(&self, secrets: usize) {
        self.0.inc_length(secrets as u64);
        self.0.set_style(
            ProgressStyle::with_template("{bar:40} {pos}/{len} secrets audited ({elapsed})")
                .expect("a valid template"),
        );
    }

    fn done(&self) {
        self.0.inc(1);
    }
}
