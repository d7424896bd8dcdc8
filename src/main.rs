//! Lambda entry point: configuration and clients are built once per cold
//! start and borrowed by every invocation.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::value::RawValue;

use replica_auditor::aws::AwsClients;
use replica_auditor::config::{Config, topic_region};
use replica_auditor::handler::{App, budget_for_deadline};

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("RUST_LOG")
                .unwrap_or_else(|_| "info,aws_config=warn".into()),
        )
        .with_current_span(false)
        .with_target(false)
        .init();

    let config =
        Config::from_env().inspect_err(|e| tracing::error!(error = %e, "start-up failed"))?;
    let clients = AwsClients::from_env(topic_region(&config.findings_topic_arn)).await;
    let home_region = clients.home_region().ok_or_else(|| {
        tracing::error!("start-up failed: AWS_REGION is not set");
        "configuration error in AWS_REGION: is required (the function's own Region)"
    })?;
    let app = App::new(clients, config, home_region);
    let app = &app;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<Box<RawValue>>| async move {
            let budget = budget_for_deadline(event.context.deadline);
            app.handle(event.payload.get().as_bytes(), budget).await
        },
    ))
    .await
}
