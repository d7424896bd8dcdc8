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

use replica_auditor::arn::Arn;
use replica_auditor::aws::{AwsClients, Connection};
use replica_auditor::config::table::{Flag, setting};
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
    /// The Lambda's error, in the command line's words: flags with their
    /// variables. A setting that needs another is said with their flags
    /// (`--remediate needs --state-table or STATE_TABLE: ...`).
    fn from(e: ConfigError) -> Self {
        if let ConfigError::Requires { var, because } = &e
            && let Some(by) = setting(because.by)
            && let Some(needing) = by.flag.long()
        {
            let needed = setting(var)
                .and_then(|s| s.flag.long())
                .map_or_else(String::new, |long| format!("--{long} or "));
            // The other switches of a choice (--dry-run) need nothing.
            let instead: Vec<String> = match by.flag {
                Flag::Choice { switches, .. } => switches
                    .iter()
                    .filter(|c| c.long != needing)
                    .map(|c| format!("--{}", c.long))
                    .collect(),
                _ => Vec::new(),
            };
            let instead = match instead.is_empty() {
                true => String::new(),
                false => format!("; or use {}", instead.join(" or ")),
            };
            return CliError(format!(
                "--{needing} needs {needed}{var}: {}{instead}",
                because.purpose
            ));
        }
        CliError(format!(
            "configuration error in {}: {}",
            flag_and_variable(e.var()),
            e.message()
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

/// What every command needs: the settings, the clients, who and where we
/// are, and the time left.
struct Run {
    settings: Settings,
    /// `replay --publish`: the topics.
    topics: Option<Config>,
    clients: AwsClients,
    home_region: String,
    budget: Budget,
    request_id: String,
}

async fn execute(cli: &Cli) -> Result<u8, CliError> {
    let vars = cli.variables();
    let lookup = |k: &str| vars.iter().find(|(v, _)| *v == k).map(|(_, x)| x.clone());
    let mut settings = Settings::from_lookup(lookup)?;
    if cli.output.metrics {
        settings.metrics = replica_auditor::config::MetricsOut::Stderr;
    }
    let topics = match &cli.command {
        Command::Replay { publish: true, .. } => Some(Config::from_lookup(lookup)?),
        _ => None,
    };
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

    let topic = topics
        .as_ref()
        .and_then(|c| topic_region(&c.findings_topic_arn));
    let clients = AwsClients::connect(&connection(&cli.aws)?, topic).await;
    let home_region = clients.home_region().ok_or_else(|| {
        CliError("no AWS Region: give --region, or set AWS_REGION or a profile's region".into())
    })?;
    let budget = {
        let total = Duration::from_secs(cli.aws.timeout);
        Budget::until(Instant::now() + total, Budget::reserve_for(total))
    };
    let run = Run {
        settings,
        topics,
        clients,
        home_region,
        budget,
        request_id: format!("cli-{}", uuid::Uuid::new_v4()),
    };
    let home_region = run.home_region.clone();
    let (reports, own_account) = command(&cli.command, run).await?;
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

/// The command's reports, and the own account (the caller's).
async fn command(cmd: &Command, run: Run) -> Result<(Vec<Report>, Option<String>), CliError> {
    // --security-hub: the findings go to Security Hub too.
    let hub_on = run.settings.security_hub;
    let hub = |c: &AwsClients| hub_on.then(|| SecurityHubSink::new(c.clone()));
    let collect = |c: &AwsClients| Both {
        first: Collect::default(),
        second: hub(c),
    };
    let Run {
        settings,
        topics,
        clients,
        home_region,
        budget,
        request_id,
    } = run;
    let request_id = request_id.as_str();
    match cmd {
        Command::Audit { secrets, .. } => {
            let (app, me) = app(clients, settings, &home_region, collect).await?;
            let reports = audit(&app, secrets, &me, &home_region, &budget, request_id).await?;
            if hub_on {
                for r in &reports {
                    app.publish_if_needed(r)
                        .await
                        .map_err(|e| CliError(e.to_string()))?;
                }
            }
            Ok((reports, account_of(&me)))
        }
        Command::Sweep { .. } => {
            let (app, me) = app(clients, settings, &home_region, collect).await?;
            let scheduled = Scheduled {
                event_id: None,
                time: Some(now_rfc3339()),
                region: Some(home_region.clone()),
                account: Arn::parse(&me).map(|a| a.account.to_string()),
            };
            let bar = progress::Bar::new(std::io::stderr().is_terminal());
            let swept = app
                .sweep_with_progress(&scheduled, &budget, request_id, &bar)
                .await;
            bar.finish();
            swept.map_err(failed)?;
            Ok((app.sink.take(), account_of(&me)))
        }
        Command::Replay { files, .. } => match topics {
            Some(config) => {
                let publish = |c: &AwsClients| Both {
                    first: SnsSink::new(
                        c.clone(),
                        config.findings_topic_arn.clone(),
                        config.chat_topic_arn.clone(),
                    ),
                    second: hub(c),
                };
                let (app, me) = app(clients, settings, &home_region, publish).await?;
                Ok((
                    replay(&app, files, &budget, request_id).await?,
                    account_of(&me),
                ))
            }
            None => {
                let (app, me) = app(clients, settings, &home_region, collect).await?;
                Ok((
                    replay(&app, files, &budget, request_id).await?,
                    account_of(&me),
                ))
            }
        },
    }
}

/// Every secret audited at once, as a CloudTrail event naming them would.
async fn audit<S: ReportSink>(
    app: &App<AwsClients, Kept<S>>,
    secrets: &[String],
    me: &str,
    home_region: &str,
    budget: &Budget,
    request_id: &str,
) -> Result<Vec<Report>, CliError> {
    let info = TriggerInfo {
        source: "cli".into(),
        event_name: "audit".into(),
        event_id: None,
        event_time: Some(now_rfc3339()),
        region: Some(home_region.to_string()),
        account: Arn::parse(me).map(|a| a.account.to_string()),
        actor: Some(me.to_string()),
        error_code: None,
    };
    let secrets: Vec<SecretRef> = secrets.iter().map(|s| SecretRef::parse(s)).collect();
    let audits = secrets
        .iter()
        .map(|s| app.audit_secret(s, info.clone(), budget, request_id));
    futures::future::join_all(audits)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CliError(e.to_string()))
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

/// Where AWS is: the standard chain, with the flags on top (the clients
/// are built in `aws`, the only module that touches the SDK).
fn connection(a: &args::AwsArgs) -> Result<Connection, CliError> {
    if let Some(role) = &a.role_arn
        && Arn::parse(role).is_none()
    {
        return Err(CliError(format!(
            "--role-arn {role:?} is not an IAM role ARN"
        )));
    }
    Ok(Connection {
        profile: a.profile.clone(),
        region: a.region.clone(),
        endpoint_url: a.endpoint_url.clone(),
        role_arn: a.role_arn.clone(),
    })
}

/// The engine with these settings, its reports kept for printing, and who
/// we are: STS GetCallerIdentity, which proves the credentials before any
/// audit (a credential problem is exit 2, never a report of gaps) and is
/// the loop guard's identity when remediating.
async fn app<S: ReportSink>(
    clients: AwsClients,
    settings: Settings,
    home_region: &str,
    make_sink: impl FnOnce(&AwsClients) -> S,
) -> Result<(App<AwsClients, Kept<S>>, String), CliError> {
    let clients = clients
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
            // Not a report: an event the auditor does not act on, or a
            // task's answer (the account list's refresh).
            Err(_) if returned["status"] == "ignored" => eprintln!(
                "replica-auditor: {}: {} is not an event the auditor acts on: {returned}",
                file.display(),
                returned["event_name"].as_str().unwrap_or("the event"),
            ),
            Err(_) => eprintln!("replica-auditor: {}: no report: {returned}", file.display()),
        }
    }
    Ok(reports)
}
