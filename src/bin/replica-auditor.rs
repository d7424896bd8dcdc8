//! The command line: `replica-auditor audit | sweep | replay`. Thin: the
//! arguments, formats and exit statuses are in `src/cli/`, compiled into
//! this binary only (the Lambda binary links none of clap, indicatif, csv).

#[path = "../cli/mod.rs"]
mod cli;

use std::process::ExitCode;

use clap::Parser;
use replica_auditor::logging;

fn main() -> ExitCode {
    // clap's own usage errors exit 2 and print usage; --help and --version exit 0.
    let args = cli::args::Cli::parse();
    // Logs go to stderr only, so stdout stays machine-readable; quiet
    // unless RUST_LOG asks for more.
    let filter = logging::filter_from_env_or("warn");
    if tracing::subscriber::set_global_default(logging::subscriber(std::io::stderr, filter))
        .is_err()
    {
        eprintln!("replica-auditor: could not set up logging");
        return ExitCode::from(cli::EXIT_ERROR);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("replica-auditor: could not start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_ERROR);
        }
    };
    ExitCode::from(runtime.block_on(cli::run(args)))
}
