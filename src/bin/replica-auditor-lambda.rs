//! Lambda entry point: configuration and clients are built once per cold
//! start and borrowed by every invocation.

use lambda_runtime::{Error, LambdaEvent, Runtime, service_fn};

use replica_auditor::aws::{AwsClients, Connection};
use replica_auditor::config::{Config, topic_region};
use replica_auditor::engine::App;
use replica_auditor::engine::handler::budget_for_deadline;
use replica_auditor::logging;
use replica_auditor::runtime::RawBodyLayer;
use replica_auditor::sinks;

// One thread: at 128 MB Lambda gives the function a small share of one vCPU,
// and the work is waiting on AWS, run concurrently within the one task.
// Measured by `make bench`: about a quarter less CPU than tokio's
// multi-thread runtime for the same sweep, with the same wall time.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    tracing::subscriber::set_global_default(logging::subscriber(
        std::io::stdout,
        logging::filter_from_env(),
    ))?;

    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "start-up failed"))?;
    // A default chosen for want of a setting (REMEDIATION without STATE_TABLE).
    for note in &config.settings.notes {
        tracing::warn!(note = %note, "start-up note");
    }
    let clients = AwsClients::connect(
        &Connection::default(),
        topic_region(&config.findings_topic_arn),
    )
    .await
    .with_state_table(config.settings.remediation.state_table.as_ref())
    .with_member_role(&config.settings.accounts.member_role_name);
    let home_region = clients.home_region().ok_or_else(|| {
        tracing::error!("start-up failed: AWS_REGION is not set");
        "configuration error in AWS_REGION: is required (the function's own Region)"
    })?;
    // The loop guard: the auditor's own principal, named or asked of STS.
    let identity = match config.settings.remediation.auditor_role_arn.clone() {
        Some(arn) => Some(arn),
        None => match clients.caller_arn().await {
            Ok(arn) => Some(arn),
            Err(e) => {
                tracing::error!(error = %e, "could not learn the auditor's own identity; remediation will run as dry-run");
                None
            }
        },
    };
    // The own account is the identity's: events from any other are audited
    // through the member role.
    let own_account = identity
        .as_deref()
        .and_then(replica_auditor::arn::Arn::parse)
        .and_then(|a| a.account().map(str::to_string));
    let clients = clients.with_own_account(own_account.as_deref());
    let sink = sinks::configured(&clients, &config);
    let app = App::with_sink(clients, sink, config.settings, home_region).with_identity(identity);
    let app = &app;
    let handler = service_fn(move |event: LambdaEvent<String>| async move {
        let budget = budget_for_deadline(event.context.deadline);
        app.handle_invocation(event.payload.as_bytes(), budget, &event.context.request_id)
            .await
    });
    Runtime::new(handler)
        .layer(RawBodyLayer)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
}
