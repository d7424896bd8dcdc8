//! JSON logs through `tracing`, one object per line. Outside text (secret
//! names, error messages) is escaped by the JSON formatter, so a line break
//! in it cannot start a forged log line.
//!
//! `RUST_LOG` is read as `tracing_subscriber`'s `Targets` (`info`,
//! `warn,replica_auditor=debug`: a default level and `target=level` pairs),
//! not as an `EnvFilter`: EnvFilter's span and field directives pull in the
//! regex engine, about 0.4 MB of the Lambda binary (`cargo bloat --crates`:
//! regex_automata and regex_syntax, 233 KiB of code alone).

use std::str::FromStr;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt;

/// What is logged when `RUST_LOG` is unset or unreadable: `info`, with
/// the SDK's internals at `warn`.
pub const DEFAULT_FILTER: &str = "info,aws_config=warn,aws_smithy_runtime=warn";

/// The subscriber the function logs with, writing to `writer`.
pub fn subscriber<W>(writer: W, filter: Targets) -> impl tracing::Subscriber + Send + Sync
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    tracing_subscriber::fmt()
        .json()
        .with_current_span(false)
        .with_target(false)
        .with_writer(writer)
        .finish()
        .with(filter)
}

/// A filter from its text (`info`, `warn,replica_auditor=debug`); `None`
/// when it cannot be read.
pub fn filter(directives: &str) -> Option<Targets> {
    Targets::from_str(directives).ok()
}

/// `RUST_LOG`, else [`DEFAULT_FILTER`].
pub fn filter_from_env() -> Targets {
    filter_from_env_or(DEFAULT_FILTER)
}

/// `RUST_LOG`, else `default` (which must parse). An empty `RUST_LOG` is
/// unset: `Targets` would read it as "log nothing".
pub fn filter_from_env_or(default: &str) -> Targets {
    std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .and_then(|v| filter(&v))
        .unwrap_or_else(|| filter(default).expect("the default filter parses"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing::Level;
    use tracing_subscriber::filter::LevelFilter;

    #[test]
    fn rust_log_directives_are_read() {
        let f = filter(DEFAULT_FILTER).unwrap();
        assert!(f.would_enable("replica_auditor::handler", &Level::INFO));
        assert!(!f.would_enable("replica_auditor::handler", &Level::DEBUG));
        assert!(!f.would_enable("aws_smithy_runtime::client", &Level::INFO));
        assert!(f.would_enable("aws_smithy_runtime::client", &Level::WARN));
        let f = filter("warn,replica_auditor=debug").unwrap();
        assert!(f.would_enable("replica_auditor::sweep", &Level::DEBUG));
        assert!(!f.would_enable("hyper", &Level::INFO));
        assert_eq!(
            filter("off").unwrap().default_level(),
            Some(LevelFilter::OFF)
        );
        assert!(filter("info,=bogus=").is_none());
    }
}
