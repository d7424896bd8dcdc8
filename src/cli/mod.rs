//! The command line, `replica-auditor`: the engine the Lambda runs, from a
//! terminal. `src/bin/replica-auditor.rs` runs it; it is compiled into
//! that binary only, so clap, indicatif and csv never reach the Lambda's.

pub mod args;
pub mod output;
pub mod progress;
pub mod sink;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use replica_auditor::arn::Arn;
use replica_auditor::aws::AwsClients;
use replica_auditor::config::{Config, ConfigError, Settings, topic_region};
use replica_auditor::engine::{App, Budget, HandlerError};
use replica_auditor::event::{Scheduled, SecretRef};
use replica_auditor::model::now_rfc3339;
use replica_auditor::report::{Report, TriggerInfo};
use replica_auditor::sinks::collect::Collect;
use replica_auditor::sinks::{Both, ReportSink, SecurityHubSink, SnsSink};

use args::{Cli, Command, flag_and_variable};
use output::Format;
use sink::Kept;

/// The exit statuses.
pub const EXIT_CLEAN: u8 = 0;
pub const EXIT_FINDINGS: u8 = 1;
pub const EXIT_ERROR: u8 = 2;

/// A usage, configuration or credential error: one line, exit status 2.
#[derive(Debug, PartialEq)]
pub struct CliError(pub String);

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        CliError(format!(
            "configuration error in {}: {}",
            flag_and_variable(e.var),
            e.message
        ))
    }
}

/// Run the command; its exit status. Errors are printed as one line on stderr.
pub async fn run(cli: Cli) -> u8 {
    match execute(&cli).await {
        Ok(status) => status,
        Err(CliError(message)) => {
            eprintln!("replica-auditor: {message}");
            EXIT_ERROR
        }
    }
}

async fn execute(cli: &Cli) -> Result<u8, CliError> {
    let lookup = |vars: &[(&'static str, String)], k: &str| {
        vars.iter().find(|(v, _)| *v == k).map(|(_, x)| x.clone())
    };
    let vars = cli.variables();
    let mut settings = settings(&vars).map_err(|e| match e.var {
        // The Lambda's message speaks of REMEDIATION; here it is a flag.
        "STATE_TABLE" if e.message.starts_with("is required when REMEDIATION") => CliError(
            "--remediate needs --state-table or STATE_TABLE: the DynamoDB table that holds the remediation leases (one retry per secret and Region at a time); or use --dry-run".into(),
        ),
        "STATE_TABLE" if e.message.starts_with("is required when SECURITY_HUB") => CliError(
            "--security-hub needs --state-table or STATE_TABLE: the DynamoDB table that keeps each secret's active Security Hub findings, so that fixed problems are resolved".into(),
        ),
        _ => e.into(),
    })?;
    if cli.output.metrics {
        settings.metrics = replica_auditor::config::MetricsOut::Stderr;
    }
    // Open the output first: a path that cannot be written fails before any AWS call.
    let (mut out, to_terminal): (Box<dyn Write>, bool) = match &cli.output.output {
        Some(path) => (Box::new(create(path)?), false),
        None => (
            Box::new(std::io::stdout().lock()),
            std::io::stdout().is_terminal(),
        ),
    };
    let format = cli
        .output
        .format
        .unwrap_or_else(|| Format::default_for(to_terminal));
    let colour = to_terminal && std::env::var_os("NO_COLOR").is_none();

    let sdk = sdk_config(&cli.aws).await?;
    let home_region = sdk.region().map(|r| r.to_string()).ok_or_else(|| {
        CliError("no AWS Region: give --region, or set AWS_REGION or a profile's region".into())
    })?;
    let budget = {
        let total = Duration::from_secs(cli.aws.timeout);
        Budget::until(Instant::now() + total, Budget::reserve_for(total))
    };
    let request_id = format!("cli-{}", uuid::Uuid::new_v4());
    // --security-hub: the findings go to Security Hub too.
    let hub_on = settings.security_hub;
    let hub = |c: &AwsClients| hub_on.then(|| SecurityHubSink::new(c.clone()));
    let own_account: Option<String>;

    let reports = match &cli.command {
        Command::Audit { secrets, .. } => {
            let (app, me) = app(sdk, None, settings, &home_region, |c: &AwsClients| Both {
                first: Collect::default(),
                second: hub(c),
            })
            .await?;
            own_account = account_of(&me);
            let info = TriggerInfo {
                source: "cli".into(),
                event_name: "audit".into(),
                event_id: None,
                event_time: Some(now_rfc3339()),
                region: Some(home_region.clone()),
                account: Arn::parse(&me).map(|a| a.account.to_string()),
                actor: Some(me),
                error_code: None,
            };
            let secrets: Vec<SecretRef> = secrets.iter().map(|s| SecretRef::parse(s)).collect();
            let audits = secrets
                .iter()
                .map(|s| app.audit_secret(s, info.clone(), &budget, &request_id));
            let reports = futures::future::join_all(audits)
                .await
                .into_iter()
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| CliError(e.to_string()))?;
            if hub_on {
                for r in &reports {
                    app.publish_if_needed(r)
                        .await
                        .map_err(|e| CliError(e.to_string()))?;
                }
            }
            reports
        }
        Command::Sweep { .. } => {
            let (app, me) = app(sdk, None, settings, &home_region, |c: &AwsClients| Both {
                first: Collect::default(),
                second: hub(c),
            })
            .await?;
            own_account = account_of(&me);
            let scheduled = Scheduled {
                event_id: None,
                time: Some(now_rfc3339()),
                region: Some(home_region.clone()),
                account: Arn::parse(&me).map(|a| a.account.to_string()),
            };
            let bar = progress::Bar::new(std::io::stderr().is_terminal());
            let swept = app
                .sweep_with_progress(&scheduled, &budget, &request_id, &bar)
                .await;
            bar.finish();
            swept.map_err(failed)?;
            app.sink.take()
        }
        Command::Replay {
            files,
            publish: true,
            ..
        } => {
            let config = Config::from_lookup(|k| lookup(&vars, k))?;
            let topic = topic_region(&config.findings_topic_arn).map(str::to_string);
            let (app, me) = app(
                sdk,
                topic.as_deref(),
                settings,
                &home_region,
                |c: &AwsClients| Both {
                    first: SnsSink::new(
                        c.clone(),
                        config.findings_topic_arn.clone(),
                        config.chat_topic_arn.clone(),
                    ),
                    second: hub(c),
                },
            )
            .await?;
            own_account = account_of(&me);
            replay(&app, files, &budget, &request_id).await?
        }
        Command::Replay { files, .. } => {
            let (app, me) = app(sdk, None, settings, &home_region, |c: &AwsClients| Both {
                first: Collect::default(),
                second: hub(c),
            })
            .await?;
            own_account = account_of(&me);
            replay(&app, files, &budget, &request_id).await?
        }
    };
    let ctx = replica_auditor::asff::Context {
        own_account: own_account.as_deref(),
        home_region: &home_region,
    };
    output::write(&mut out, &reports, format, colour, &ctx)
        .and_then(|()| out.flush())
        .map_err(|e| CliError(format!("could not write the output: {e}")))?;
    Ok(if output::has_findings_at(&reports, cli.output.fail_on) {
        EXIT_FINDINGS
    } else {
        EXIT_CLEAN
    })
}

/// The account of a principal ARN (the caller's, from STS).
fn account_of(principal: &str) -> Option<String> {
    Arn::parse(principal).and_then(|a| a.account().map(str::to_string))
}

fn create(path: &Path) -> Result<std::fs::File, CliError> {
    std::fs::File::create(path)
        .map_err(|e| CliError(format!("cannot write --output {}: {e}", path.display())))
}

/// A report that could not be sent, or an event that is not one.
fn failed(e: HandlerError) -> CliError {
    CliError(e.to_string())
}

/// The AWS configuration: the standard chain, the flags on top, then the
/// role to assume.
async fn sdk_config(a: &args::AwsArgs) -> Result<SdkConfig, CliError> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(replica_auditor::aws::http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(p) = &a.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &a.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(e) = &a.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let base = loader.load().await;
    let Some(role) = &a.role_arn else {
        return Ok(base);
    };
    if Arn::parse(role).is_none() {
        return Err(CliError(format!(
            "--role-arn {role:?} is not an IAM role ARN"
        )));
    }
    let provider = AssumeRoleProvider::builder(role.clone())
        .configure(&base)
        .session_name("replica-auditor-cli")
        .build()
        .await;
    Ok(base
        .into_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build())
}

/// The settings, read and validated by the Lambda's own configuration
/// code. FINDINGS_TOPIC_ARN is not among them: only `replay --publish`
/// reads it, through the Lambda's `Config`.
fn settings(vars: &[(&'static str, String)]) -> Result<Settings, ConfigError> {
    Settings::from_lookup(|k| vars.iter().find(|(v, _)| *v == k).map(|(_, x)| x.clone()))
}

/// The engine with these settings, its reports kept for printing, and who
/// we are: STS GetCallerIdentity, which proves the credentials before any
/// audit (a credential problem is exit 2, never a report of gaps) and is
/// the loop guard's identity when remediating.
async fn app<S: ReportSink>(
    sdk: SdkConfig,
    topic_region: Option<&str>,
    settings: Settings,
    home_region: &str,
    make_sink: impl FnOnce(&AwsClients) -> S,
) -> Result<(App<AwsClients, Kept<S>>, String), CliError> {
    let clients = AwsClients::from_config(sdk, topic_region)
        .with_state_table(settings.remediation.state_table.as_ref())
        .with_member_role(&settings.accounts.member_role_name);
    let me = clients
        .caller_arn()
        .await
        .map_err(|e| CliError(format!("credential error: {e}")))?;
    let sink = Kept::new(make_sink(&clients));
    let app = App::with_sink(clients, sink, settings, home_region.to_string())
        .with_identity(Some(me.clone()));
    Ok((app, me))
}

/// Every event through the Lambda's own handler; the reports it returns
/// (and a sweep's per-secret reports, first), in file order.
async fn replay<S: ReportSink>(
    app: &App<AwsClients, Kept<S>>,
    files: &[std::path::PathBuf],
    budget: &Budget,
    request_id: &str,
) -> Result<Vec<Report>, CliError> {
    let mut reports = Vec::new();
    for file in files {
        let raw = std::fs::read(file)
            .map_err(|e| CliError(format!("cannot read {}: {e}", file.display())))?;
        let returned = app
            .handle_invocation(&raw, *budget, request_id)
            .await
            .map_err(|e| CliError(format!("{}: {e}", file.display())))?;
        let sent = app.sink.take();
        match serde_json::from_value::<Report>(returned.clone()) {
            Ok(report) => {
                reports.extend(sent.into_iter().filter(|r| r.report_id != report.report_id));
                reports.push(report);
            }
            // Not a report: an event the auditor does not act on.
            Err(_) => eprintln!(
                "replica-auditor: {}: {} is not an event the auditor acts on: {returned}",
                file.display(),
                returned["event_name"].as_str().unwrap_or("the event"),
            ),
        }
    }
    Ok(reports)
}
