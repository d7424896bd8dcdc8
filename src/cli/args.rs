//! The command line's arguments (clap derive). The settings' flags are
//! made from the settings table (`config::table::SETTINGS`): each entry
//! names its flag, where it goes and whether it also reads the Lambda's
//! variable, and every value is validated by `config::Settings`, the
//! Lambda's own code.

use std::marker::PhantomData;
use std::path::PathBuf;

use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, Parser, Subcommand};

use super::output::Format;
use replica_auditor::config::table::{Flag, FlagSpec, On, SETTINGS, Setting, setting};
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
    /// The audit rules, anywhere on the line.
    #[command(flatten)]
    pub rules: SettingArgs<Anywhere>,
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
        settings: SettingArgs<AfterAudit>,
    },
    /// Audit every replicated secret of some Regions, then print the sweep's summary.
    #[command(
        after_help = "Example:\n  replica-auditor --region us-west-2 sweep --regions us-west-2,eu-west-1 --format json > sweep.jsonl"
    )]
    Sweep {
        #[command(flatten)]
        settings: SettingArgs<AfterSweep>,
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
        #[arg(long, requires = "FINDINGS_TOPIC_ARN")]
        publish: bool,
        #[command(flatten)]
        settings: SettingArgs<AfterReplay>,
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

/// Where a group of setting flags sits: the table's [`On`]s it takes.
pub trait Place: std::fmt::Debug {
    const TAKES: &'static [On];
}

/// Before or after the subcommand.
#[derive(Debug)]
pub struct Anywhere;
/// After `audit`.
#[derive(Debug)]
pub struct AfterAudit;
/// After `sweep`.
#[derive(Debug)]
pub struct AfterSweep;
/// After `replay`.
#[derive(Debug)]
pub struct AfterReplay;

impl Place for Anywhere {
    const TAKES: &'static [On] = &[On::Global];
}
impl Place for AfterAudit {
    const TAKES: &'static [On] = &[On::Every];
}
impl Place for AfterSweep {
    const TAKES: &'static [On] = &[On::Every, On::Sweep];
}
impl Place for AfterReplay {
    const TAKES: &'static [On] = &[On::Every, On::Replay];
}

/// The flags of the settings the table places at `P`, and what they
/// gave: each setting's value as the Lambda's variable.
#[derive(Debug)]
pub struct SettingArgs<P: Place> {
    pub given: Vec<(&'static str, String)>,
    place: PhantomData<P>,
}

impl<P: Place> SettingArgs<P> {
    fn settings() -> impl Iterator<Item = &'static Setting> {
        SETTINGS
            .iter()
            .filter(|s| s.flag.on().is_some_and(|on| P::TAKES.contains(&on)))
    }
}

/// A help line as clap derive writes a doc comment: no final period.
fn help(text: &'static str) -> &'static str {
    text.strip_suffix('.').unwrap_or(text)
}

/// A flag with a value, its id the variable.
fn value_arg(var: &'static str, f: &FlagSpec) -> Arg {
    Arg::new(var)
        .long(f.long)
        .value_name(f.value_name)
        .help(help(f.help))
        .global(f.on == On::Global)
}

/// The clap arguments of one setting.
fn clap_args(s: &'static Setting) -> Vec<Arg> {
    match &s.flag {
        Flag::Value(f) => vec![value_arg(s.var, f).env(s.var)],
        Flag::Toggle(f) => vec![
            value_arg(s.var, f)
                .env(s.var)
                .num_args(0..=1)
                .default_missing_value("true"),
        ],
        Flag::ValueOr(f, default) => vec![value_arg(s.var, f).default_value(*default)],
        Flag::Choice { on, switches, .. } => switches
            .iter()
            .map(|c| {
                let others = switches.iter().filter(|o| o.long != c.long);
                Arg::new(c.long)
                    .long(c.long)
                    .help(help(c.help))
                    .action(ArgAction::SetTrue)
                    .global(*on == On::Global)
                    .conflicts_with_all(others.map(|o| o.long))
            })
            .collect(),
        Flag::Fixed { .. } | Flag::None(_) => Vec::new(),
    }
}

impl<P: Place> Args for SettingArgs<P> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        cmd.args(Self::settings().flat_map(clap_args))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

impl<P: Place> FromArgMatches for SettingArgs<P> {
    fn from_arg_matches(m: &ArgMatches) -> Result<Self, clap::Error> {
        let value = |id: &str| m.try_get_one::<String>(id).ok().flatten().cloned();
        let on = |id: &str| m.try_get_one::<bool>(id).ok().flatten() == Some(&true);
        let given = Self::settings()
            .filter_map(|s| match &s.flag {
                Flag::Value(_) | Flag::Toggle(_) | Flag::ValueOr(..) => {
                    value(s.var).map(|v| (s.var, v))
                }
                Flag::Choice {
                    switches,
                    otherwise,
                    ..
                } => {
                    let chosen = switches.iter().find(|c| on(c.long));
                    Some((s.var, chosen.map_or(*otherwise, |c| c.value).to_string()))
                }
                Flag::Fixed { .. } | Flag::None(_) => None,
            })
            .collect();
        Ok(SettingArgs {
            given,
            place: PhantomData,
        })
    }
    fn update_from_arg_matches(&mut self, m: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(m)?;
        Ok(())
    }
}

impl Cli {
    /// The settings as the Lambda's variables, for `config`'s parsing:
    /// what the flags gave (a flag, else its variable, per the table),
    /// and the values the command line fixes whatever the environment
    /// says (METRICS off: its stdout is its output). A setting without a
    /// flag keeps its default.
    pub fn variables(&self) -> Vec<(&'static str, String)> {
        let after = match &self.command {
            Command::Audit { settings, .. } => &settings.given,
            Command::Sweep { settings } => &settings.given,
            Command::Replay { settings, .. } => &settings.given,
        };
        let fixed = SETTINGS.iter().filter_map(|s| match s.flag {
            Flag::Fixed { value, .. } => Some((s.var, value.to_string())),
            _ => None,
        });
        self.rules
            .given
            .iter()
            .chain(after)
            .cloned()
            .chain(fixed)
            .collect()
    }
}

/// How a configuration error names a setting: its flag and its variable.
pub fn flag_and_variable(var: &str) -> String {
    match setting(var).and_then(|s| s.flag.long()) {
        Some(long) => format!("--{long} ({var})"),
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
        assert_eq!(
            flag_and_variable("REMEDIATION"),
            "--remediate (REMEDIATION)"
        );
        assert_eq!(flag_and_variable("MEMBER_ROLE_NAME"), "MEMBER_ROLE_NAME");
        for s in SETTINGS {
            assert!(flag_and_variable(s.var).contains(s.var));
        }
    }

    /// Every argument of every (sub)command, by long name: its env variable.
    fn clap_flags() -> Vec<(String, String, Option<String>)> {
        let cmd = Cli::command();
        let mut out = Vec::new();
        for c in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
            for a in c.get_arguments() {
                if let Some(long) = a.get_long() {
                    let env = a.get_env().map(|e| e.to_string_lossy().into_owned());
                    out.push((c.get_name().to_string(), long.to_string(), env));
                }
            }
        }
        out
    }

    #[test]
    fn clap_flags_and_their_variables_are_the_tables() {
        let flags = clap_flags();
        let has = |sub: &str, long: &str| flags.iter().find(|(c, l, _)| c == sub && l == long);
        let mut checked = 0;
        for s in SETTINGS {
            let longs: Vec<&str> = match s.flag {
                Flag::Choice { switches, .. } => switches.iter().map(|c| c.long).collect(),
                _ => s.flag.long().into_iter().collect(),
            };
            let subs: &[&str] = match s.flag.on() {
                None => &[],
                Some(On::Global) => &["replica-auditor", "audit", "sweep", "replay"],
                Some(On::Every) => &["audit", "sweep", "replay"],
                Some(On::Sweep) => &["sweep"],
                Some(On::Replay) => &["replay"],
            };
            for long in longs {
                for sub in ["replica-auditor", "audit", "sweep", "replay"] {
                    // Global arguments are listed where they are defined only.
                    let expected = subs.contains(&sub)
                        && !(s.flag.on() == Some(On::Global) && sub != "replica-auditor");
                    let found = has(sub, long);
                    assert_eq!(found.is_some(), expected, "--{long} on {sub}");
                    if let Some((_, _, env)) = found {
                        let reads = matches!(s.flag, Flag::Value(_) | Flag::Toggle(_));
                        assert_eq!(env.as_deref(), reads.then_some(s.var), "--{long}");
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked >= 20, "{checked} flags checked");
        // Every flag with a variable is a setting's.
        for (sub, long, env) in &flags {
            if let Some(var) = env {
                assert_eq!(
                    setting(var).and_then(|s| s.flag.long()),
                    Some(long.as_str()),
                    "{sub} --{long}"
                );
            }
        }
    }

    #[test]
    fn the_command_line_fixes_metrics_off_and_passes_no_flagless_setting() {
        let cli = Cli::try_parse_from(["replica-auditor", "sweep"]).unwrap();
        assert_eq!(var(&cli, "METRICS").as_deref(), Some("off"));
        assert_eq!(var(&cli, "SWEEP_POLICY_REFRESH").as_deref(), Some("1"));
        for none in [
            "MEMBER_ROLE_NAME",
            "ACCOUNT_IDS",
            "SWEEP_QUEUE_URL",
            "AUDITOR_ROLE_ARN",
        ] {
            assert_eq!(var(&cli, none), None, "{none}");
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
