//! The command line's arguments (clap derive). The audit rules are the
//! Lambda's settings: each flag also reads the Lambda's variable, and
//! every value is validated by `config::Settings`, the Lambda's own code.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use super::output::Format;
use replica_auditor::model::Severity;

const ABOUT: &str = "Audit AWS Secrets Manager multi-Region replication from a terminal: \
the checks the replica-auditor Lambda makes, against the account your AWS configuration names. \
Never reads a secret value.";

const EXIT_STATUS: &str = "Exit status: 0 no finding at or above --fail-on, 1 some, \
2 a usage, configuration or credential error.";

#[derive(Debug, Parser)]
#[command(name = "replica-auditor", version, about = ABOUT, after_help = EXIT_STATUS)]
pub struct Cli {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub output: OutputArgs,
    #[command(flatten)]
    pub rules: RuleArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Inspect and audit secrets now, as a CloudTrail event naming them would.
    #[command(
        after_help = "Example:\n  replica-auditor --region us-west-2 audit production/db \\\n    arn:aws:secretsmanager:eu-west-1:123456789012:secret:billing/api-AbCdEf --format table"
    )]
    Audit {
        /// Secret names (looked up in --region) or ARNs.
        #[arg(required = true, value_name = "SECRET")]
        secrets: Vec<String>,
        #[command(flatten)]
        remediation: RemediationArgs,
    },
    /// Audit every replicated secret of some Regions, then print the sweep's summary.
    #[command(
        after_help = "Example:\n  replica-auditor --region us-west-2 sweep --regions us-west-2,eu-west-1 --format json > sweep.jsonl"
    )]
    Sweep {
        /// Regions whose secrets are listed (default: --region).
        #[arg(long, env = "SWEEP_REGIONS", value_name = "REGION,...")]
        regions: Option<String>,
        /// The most secrets audited at once (1 to 256; fewer when the
        /// observed latency asks for fewer).
        #[arg(long, env = "SWEEP_CONCURRENCY", value_name = "N")]
        concurrency: Option<String>,
        /// With --state-table: read each resource policy only when it may
        /// have changed, every policy once in N sweeps (the Lambda's
        /// SWEEP_POLICY_REFRESH). The default, 1, reads every policy.
        #[arg(long, value_name = "N", default_value = "1")]
        policy_refresh: String,
        #[command(flatten)]
        remediation: RemediationArgs,
    },
    /// Run sample EventBridge events through the Lambda's own handler, with no emulator.
    #[command(
        after_help = "Example:\n  replica-auditor --region us-west-2 replay events/*.json --format csv"
    )]
    Replay {
        /// Event files (EventBridge JSON, as in events/).
        #[arg(required = true, value_name = "EVENT_FILE")]
        files: Vec<PathBuf>,
        /// Also publish the reports to SNS, as the Lambda does.
        #[arg(long, requires = "findings_topic_arn")]
        publish: bool,
        /// The SNS topic --publish sends to.
        #[arg(long, env = "FINDINGS_TOPIC_ARN", value_name = "ARN")]
        findings_topic_arn: Option<String>,
        /// A second topic for Amazon Q Developer in chat applications (with --publish).
        #[arg(long, env = "CHAT_TOPIC_ARN", value_name = "ARN")]
        chat_topic_arn: Option<String>,
        #[command(flatten)]
        remediation: RemediationArgs,
    },
}

/// Where AWS is: the standard chain (environment, profile, SSO, instance
/// role), with these on top.
#[derive(Debug, Args)]
pub struct AwsArgs {
    /// A named profile of ~/.aws/config (also AWS_PROFILE).
    #[arg(long, global = true, value_name = "NAME")]
    pub profile: Option<String>,
    /// The Region secret names are looked up in and the sweep's default
    /// (also AWS_REGION).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Send every AWS call to this endpoint (also AWS_ENDPOINT_URL), e.g. a local emulator.
    #[arg(long, global = true, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// Assume this IAM role first, with the credentials found.
    #[arg(long, global = true, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// Stop starting AWS calls after this many seconds; what was not
    /// checked is AUDIT_INCOMPLETE.
    #[arg(long, global = true, default_value_t = 900, value_name = "SECONDS")]
    pub timeout: u64,
}

#[derive(Debug, Args)]
pub struct OutputArgs {
    /// table, json (JSON Lines, one report per line), csv (one row per
    /// finding), asff (a JSON array of Security Hub findings) or ocsf (a
    /// JSON array of OCSF Detection Findings). Default: table on a
    /// terminal, json otherwise.
    #[arg(long, global = true, value_enum)]
    pub format: Option<Format>,
    /// Write the output to this file instead of stdout.
    #[arg(long, short = 'o', global = true, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with status 1 when a finding is at or above this severity.
    #[arg(long, global = true, default_value = "LOW", value_parser = parse_severity, value_name = "SEVERITY")]
    pub fail_on: Severity,
    /// Write the Lambda's CloudWatch EMF metric lines (one per audit and
    /// per sweep) to stderr. Never to stdout, which holds the output.
    #[arg(long, global = true)]
    pub metrics: bool,
}

fn parse_severity(s: &str) -> Result<Severity, String> {
    s.parse()
}

/// The audit rules: the Lambda's variables, as flags.
#[derive(Debug, Args)]
pub struct RuleArgs {
    /// Regions a secret's primary and replicas may be in (comma-separated).
    #[arg(
        long,
        global = true,
        env = "ALLOWED_REGIONS",
        value_name = "REGION,..."
    )]
    pub allowed_regions: Option<String>,
    /// Regions every audited secret must have a replica in.
    #[arg(
        long,
        global = true,
        env = "REQUIRED_REGIONS",
        value_name = "REGION,..."
    )]
    pub required_regions: Option<String>,
    /// The AWS-managed aws/secretsmanager key is a finding.
    #[arg(long, global = true, env = "REQUIRE_CUSTOMER_MANAGED_KEY", num_args = 0..=1,
          default_missing_value = "true", value_name = "true|false")]
    pub require_customer_managed_key: Option<String>,
    /// Accounts key and secret policies may grant besides the secret's own.
    #[arg(
        long,
        global = true,
        env = "TRUSTED_ACCOUNT_IDS",
        value_name = "ACCOUNT,..."
    )]
    pub trusted_account_ids: Option<String>,
    /// Organisations key and secret policies may grant besides your own.
    #[arg(long, global = true, env = "TRUSTED_ORG_IDS", value_name = "ORG,...")]
    pub trusted_org_ids: Option<String>,
    /// Findings below this severity are left out of the reports.
    #[arg(long, global = true, env = "MIN_SEVERITY", value_name = "SEVERITY")]
    pub min_severity: Option<String>,
}

/// Remediation: off unless asked for.
#[derive(Debug, Args)]
pub struct RemediationArgs {
    /// Retry failed replication where a retry can fix it (needs --state-table).
    #[arg(long, conflicts_with = "dry_run")]
    pub remediate: bool,
    /// Report what remediation would do, without doing it.
    #[arg(long)]
    pub dry_run: bool,
    /// The DynamoDB table of remediation leases and of the Security Hub
    /// findings each secret holds active (a name or a table ARN).
    #[arg(long, env = "STATE_TABLE", value_name = "TABLE")]
    pub state_table: Option<String>,
    /// Also import the findings into AWS Security Hub, in each finding's
    /// own account and Region, and resolve the ones no longer found
    /// (needs --state-table).
    #[arg(long)]
    pub security_hub: bool,
    /// Retry a name clash by overwriting the other secret (destroys it).
    #[arg(long, env = "ALLOW_FORCE_OVERWRITE", num_args = 0..=1,
          default_missing_value = "true", value_name = "true|false")]
    pub allow_force_overwrite: Option<String>,
    /// Retries per Region (0 to 5).
    #[arg(long, env = "RETRY_MAX_ATTEMPTS", value_name = "N")]
    pub retry_max_attempts: Option<String>,
    /// How long to watch a retried replica (0 to 600 seconds).
    #[arg(long, env = "RETRY_VERIFY_SECONDS", value_name = "SECONDS")]
    pub retry_verify_seconds: Option<String>,
    /// Replication writes per second (1 to 25).
    #[arg(long, env = "REMEDIATION_WRITES_PER_SECOND", value_name = "N")]
    pub remediation_writes_per_second: Option<String>,
}

/// Each setting's variable and its flag: configuration errors name both.
pub const FLAGS: [(&str, &str); 18] = [
    ("ALLOWED_REGIONS", "--allowed-regions"),
    ("REQUIRED_REGIONS", "--required-regions"),
    (
        "REQUIRE_CUSTOMER_MANAGED_KEY",
        "--require-customer-managed-key",
    ),
    ("TRUSTED_ACCOUNT_IDS", "--trusted-account-ids"),
    ("TRUSTED_ORG_IDS", "--trusted-org-ids"),
    ("MIN_SEVERITY", "--min-severity"),
    ("REMEDIATION", "--remediate"),
    ("STATE_TABLE", "--state-table"),
    ("SECURITY_HUB", "--security-hub"),
    ("ALLOW_FORCE_OVERWRITE", "--allow-force-overwrite"),
    ("RETRY_MAX_ATTEMPTS", "--retry-max-attempts"),
    ("RETRY_VERIFY_SECONDS", "--retry-verify-seconds"),
    (
        "REMEDIATION_WRITES_PER_SECOND",
        "--remediation-writes-per-second",
    ),
    ("SWEEP_REGIONS", "--regions"),
    ("SWEEP_CONCURRENCY", "--concurrency"),
    ("SWEEP_POLICY_REFRESH", "--policy-refresh"),
    ("FINDINGS_TOPIC_ARN", "--findings-topic-arn"),
    ("CHAT_TOPIC_ARN", "--chat-topic-arn"),
];

impl Cli {
    /// The settings as the Lambda's variables (flag, else the variable),
    /// for `config`'s parsing. REMEDIATION comes from --remediate and
    /// --dry-run only: off by default, whatever the environment says.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let r = &self.rules;
        let (remediation, sweep) = match &self.command {
            Command::Audit { remediation, .. } | Command::Replay { remediation, .. } => {
                (remediation, None)
            }
            Command::Sweep {
                regions,
                concurrency,
                policy_refresh,
                remediation,
            } => (remediation, Some((regions, concurrency, policy_refresh))),
        };
        let mode = if remediation.remediate {
            "on"
        } else if remediation.dry_run {
            "dry-run"
        } else {
            "off"
        };
        let mut vars: Vec<(&'static str, Option<&String>)> = vec![
            ("ALLOWED_REGIONS", r.allowed_regions.as_ref()),
            ("REQUIRED_REGIONS", r.required_regions.as_ref()),
            (
                "REQUIRE_CUSTOMER_MANAGED_KEY",
                r.require_customer_managed_key.as_ref(),
            ),
            ("TRUSTED_ACCOUNT_IDS", r.trusted_account_ids.as_ref()),
            ("TRUSTED_ORG_IDS", r.trusted_org_ids.as_ref()),
            ("MIN_SEVERITY", r.min_severity.as_ref()),
            ("STATE_TABLE", remediation.state_table.as_ref()),
            (
                "ALLOW_FORCE_OVERWRITE",
                remediation.allow_force_overwrite.as_ref(),
            ),
            (
                "RETRY_MAX_ATTEMPTS",
                remediation.retry_max_attempts.as_ref(),
            ),
            (
                "RETRY_VERIFY_SECONDS",
                remediation.retry_verify_seconds.as_ref(),
            ),
            (
                "REMEDIATION_WRITES_PER_SECOND",
                remediation.remediation_writes_per_second.as_ref(),
            ),
        ];
        if let Some((regions, concurrency, policy_refresh)) = sweep {
            vars.push(("SWEEP_REGIONS", regions.as_ref()));
            vars.push(("SWEEP_CONCURRENCY", concurrency.as_ref()));
            vars.push(("SWEEP_POLICY_REFRESH", Some(policy_refresh)));
        }
        if let Command::Replay {
            findings_topic_arn,
            chat_topic_arn,
            ..
        } = &self.command
        {
            vars.push(("FINDINGS_TOPIC_ARN", findings_topic_arn.as_ref()));
            vars.push(("CHAT_TOPIC_ARN", chat_topic_arn.as_ref()));
        }
        let mut out: Vec<(&'static str, String)> = vars
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (k, v.clone())))
            .collect();
        out.push(("REMEDIATION", mode.to_string()));
        // Security Hub only when asked for, whatever the environment says.
        let hub = if remediation.security_hub {
            "on"
        } else {
            "off"
        };
        out.push(("SECURITY_HUB", hub.to_string()));
        // The command line's stdout is its output (tables, JSON Lines,
        // CSV): never an EMF line there.
        out.push(("METRICS", "off".to_string()));
        out
    }
}

/// How a configuration error names a setting: its flag and its variable.
pub fn flag_and_variable(var: &str) -> String {
    match FLAGS.iter().find(|(v, _)| *v == var) {
        Some((v, flag)) => format!("{flag} ({v})"),
        None => var.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn var(cli: &Cli, name: &str) -> Option<String> {
        cli.variables()
            .into_iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn remediation_is_off_unless_asked_for() {
        let cli = Cli::try_parse_from(["replica-auditor", "audit", "s"]).unwrap();
        assert_eq!(var(&cli, "REMEDIATION").as_deref(), Some("off"));
        let cli = Cli::try_parse_from(["replica-auditor", "audit", "s", "--dry-run"]).unwrap();
        assert_eq!(var(&cli, "REMEDIATION").as_deref(), Some("dry-run"));
        let cli = Cli::try_parse_from([
            "replica-auditor",
            "audit",
            "s",
            "--remediate",
            "--state-table",
            "t1",
        ])
        .unwrap();
        assert_eq!(var(&cli, "REMEDIATION").as_deref(), Some("on"));
        assert_eq!(var(&cli, "STATE_TABLE").as_deref(), Some("t1"));
        let both =
            Cli::try_parse_from(["replica-auditor", "audit", "s", "--remediate", "--dry-run"]);
        assert_eq!(both.unwrap_err().exit_code(), 2);
    }

    #[test]
    fn security_hub_is_off_unless_asked_for() {
        let cli = Cli::try_parse_from(["replica-auditor", "sweep"]).unwrap();
        assert_eq!(var(&cli, "SECURITY_HUB").as_deref(), Some("off"));
        let cli = Cli::try_parse_from([
            "replica-auditor",
            "audit",
            "s",
            "--security-hub",
            "--state-table",
            "t1",
        ])
        .unwrap();
        assert_eq!(var(&cli, "SECURITY_HUB").as_deref(), Some("on"));
    }

    #[test]
    fn rule_flags_become_the_lambdas_variables_anywhere_on_the_line() {
        let cli = Cli::try_parse_from([
            "replica-auditor",
            "--allowed-regions",
            "us-east-1,us-west-2",
            "sweep",
            "--regions",
            "us-west-2",
            "--require-customer-managed-key",
            "--min-severity",
            "high",
        ])
        .unwrap();
        assert_eq!(
            var(&cli, "ALLOWED_REGIONS").as_deref(),
            Some("us-east-1,us-west-2")
        );
        assert_eq!(var(&cli, "SWEEP_REGIONS").as_deref(), Some("us-west-2"));
        assert_eq!(
            var(&cli, "REQUIRE_CUSTOMER_MANAGED_KEY").as_deref(),
            Some("true")
        );
        assert_eq!(var(&cli, "MIN_SEVERITY").as_deref(), Some("high"));
        assert_eq!(var(&cli, "FINDINGS_TOPIC_ARN"), None);
    }

    #[test]
    fn errors_name_the_flag_and_the_variable() {
        assert_eq!(
            flag_and_variable("TRUSTED_ORG_IDS"),
            "--trusted-org-ids (TRUSTED_ORG_IDS)"
        );
        for (var, _) in FLAGS {
            assert!(flag_and_variable(var).contains(var));
        }
    }

    #[test]
    fn every_subcommand_has_an_example() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            let help = sub
                .get_after_help()
                .map(|h| h.to_string())
                .unwrap_or_default();
            assert!(
                help.contains("Example:") && help.contains(" replica-auditor "),
                "{}: {help}",
                sub.get_name()
            );
        }
    }
}
