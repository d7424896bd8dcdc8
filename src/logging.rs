//! JSON logs through `tracing`, one object per line. Outside text (secret
//! names, error messages) is escaped by the JSON formatter, so a line break
//! in it cannot start a forged log line.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The subscriber the function logs with, writing to `writer`.
pub fn subscriber<W>(writer: W, filter: EnvFilter) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_current_span(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
}

/// `RUST_LOG`, else `info` (SDK internals at `warn`).
pub fn filter_from_env() -> EnvFilter {
    EnvFilter::try_from_env("RUST_LOG")
        .unwrap_or_else(|_| EnvFilter::new("info,aws_config=warn,aws_smithy_runtime=warn"))
}
