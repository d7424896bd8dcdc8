//! The settings table: one entry per setting, the way ripgrep's `Flag`
//! trait defines each of its flags once (crates/core/flags/defs.rs). An
//! entry gives the environment variable, the template parameter (or why
//! none), the command-line flag (or why none), the default, the accepted
//! values and the parser that stores the value. `Config::from_lookup`
//! reads the variables through it, the command line builds its flags
//! from it (`src/cli/args.rs`), and docs/configuration.md's rows are
//! [`Setting::markdown_row`] (checked by tests/docs.rs).
//!
//! Adding a setting is adding one entry to [`SETTINGS`] (and its field).

use std::collections::BTreeSet;

use super::{
    ConfigError, MetricsOut, RemediationMode, Settings, is_role_name, split_list, state_table,
    sweep_queue,
};
use crate::arn::{Arn, is_account_id, is_region_name, is_sns_topic_arn};

/// One setting (see the module doc).
#[derive(Debug)]
pub struct Setting {
    /// The Lambda's environment variable.
    pub var: &'static str,
    /// Which of the configuration's parts reads it.
    pub part: Part,
    /// The SAM template parameter that sets the variable.
    pub parameter: Parameter,
    /// The command line's flag.
    pub flag: Flag,
    /// What an unset (or empty) variable means.
    pub unset: Unset,
    /// The accepted values and how a value is stored.
    pub parse: Parse,
    /// What it does: docs/configuration.md's last column (Markdown).
    pub doc: &'static str,
}

/// Which part of the configuration a setting belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    /// The report topics: read by `Config` only (the Lambda, `replay --publish`).
    Topics,
    /// What the engine audits and does: read by `Settings`.
    Settings,
}

/// The template parameter of a setting.
#[derive(Debug, Clone, Copy)]
pub enum Parameter {
    /// This parameter sets the variable.
    Is(&'static str),
    /// This parameter, with a note on its value.
    Noted(&'static str, &'static str),
    /// None, and why.
    None(&'static str),
}

/// Where a flag is given on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum On {
    /// Anywhere on the line (before or after the subcommand).
    Global,
    /// After every subcommand.
    Every,
    /// After `sweep`.
    Sweep,
    /// After `replay`.
    Replay,
}

/// A flag that takes a value.
#[derive(Debug, Clone, Copy)]
pub struct FlagSpec {
    /// The long name, without `--`.
    pub long: &'static str,
    pub on: On,
    pub value_name: &'static str,
    /// The one-line `--help` text.
    pub help: &'static str,
}

/// One switch of a [`Flag::Choice`].
#[derive(Debug, Clone, Copy)]
pub struct Choice {
    pub long: &'static str,
    /// The variable's value when the switch is given.
    pub value: &'static str,
    pub help: &'static str,
}

/// How the command line sets a setting.
#[derive(Debug, Clone, Copy)]
pub enum Flag {
    /// `--long VALUE`, else the variable.
    Value(FlagSpec),
    /// `--long [VALUE]`: alone, `true`; else the variable.
    Toggle(FlagSpec),
    /// `--long VALUE`, else this value: the variable is not read.
    ValueOr(FlagSpec, &'static str),
    /// Switches (mutually exclusive), each choosing a value; none given,
    /// `otherwise`. The variable is not read.
    Choice {
        on: On,
        switches: &'static [Choice],
        otherwise: &'static str,
    },
    /// No flag: the command line uses this value, whatever the
    /// environment says (and why).
    Fixed {
        value: &'static str,
        why: &'static str,
    },
    /// No flag: the command line leaves the setting at its default (why;
    /// empty for no reason given).
    None(&'static str),
}

/// What an unset or empty variable means.
#[derive(Debug, Clone, Copy)]
pub enum Unset {
    /// This value, parsed as if given.
    Value(&'static str),
    /// This number, parsed as if given.
    Number(u64),
    /// Chosen from the other settings after all are read (the text says how).
    Derived(&'static str),
    /// Nothing (the text says what that means: none, empty, ...).
    Empty(&'static str),
    /// A start-up error: the variable is required (what it is).
    Required(&'static str),
}

/// The items of a comma-separated list: what each must be.
#[derive(Debug)]
pub struct Item {
    pub valid: fn(&str) -> bool,
    /// The error's text after the bad item: `"x" is not ...`.
    pub expected: &'static str,
}

/// A Region name (Region lists).
pub static REGION: Item = Item {
    valid: is_region_name,
    expected: "is not a Region name like us-east-1",
};

/// A 12-digit AWS account id.
pub static ACCOUNT_ID: Item = Item {
    valid: is_account_id,
    expected: "is not a 12-digit account id",
};

/// An AWS Organizations id.
pub static ORG_ID: Item = Item {
    valid: crate::policy::is_org_id,
    expected: "is not an organisation id (o- and 10 to 32 lower-case letters or digits)",
};

/// An on/off switch's two documented spellings.
pub const TRUE_FALSE: [&str; 2] = ["true", "false"];
pub const ON_OFF: [&str; 2] = ["on", "off"];

/// The accepted values, and how a value (trimmed, not empty) is stored.
#[derive(Debug, Clone, Copy)]
pub enum Parse {
    /// A whole number from `min` to `max`.
    Number {
        min: u64,
        max: u64,
        set: fn(&mut Draft, u64),
    },
    /// An on/off switch: [`switch`]'s vocabulary, documented as `spelling`.
    Switch {
        spelling: [&'static str; 2],
        set: fn(&mut Draft, bool),
    },
    /// One of `values`, in any case; `set` gets the listed spelling.
    OneOf {
        values: &'static [&'static str],
        set: fn(&mut Draft, &'static str),
    },
    /// Comma-separated items, each checked by `item`; `range` documents it.
    List {
        item: &'static Item,
        range: &'static str,
        set: fn(&mut Draft, Vec<String>),
    },
    /// Anything else: `set` checks it, else says what it is not.
    Text {
        range: &'static str,
        set: fn(&mut Draft, &str) -> Result<(), &'static str>,
    },
}

/// The one on/off vocabulary of every switch: `on` or `true`, `off` or
/// `false`, in any case. (METRICS and SECURITY_HUB were documented as
/// on/off, the two others as true/false; each accepts all four.)
pub fn switch(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "on" | "true" => Some(true),
        "off" | "false" => Some(false),
        _ => None,
    }
}

/// The configuration as it is read: the settings, then what is chosen
/// from them (REMEDIATION's default, the rules between settings).
#[derive(Debug)]
pub struct Draft {
    pub(super) findings_topic_arn: Option<String>,
    pub(super) chat_topic_arn: Option<String>,
    pub(super) settings: Settings,
    /// REMEDIATION was given (not left to its default).
    pub(super) remediation_given: bool,
}

/// Every setting, in docs/configuration.md's order.
pub static SETTINGS: &[Setting] = &[
    Setting {
        var: "FINDINGS_TOPIC_ARN",
        part: Part::Topics,
        parameter: Parameter::Noted("FindingsTopicArn", "empty: the stack makes the topic"),
        flag: Flag::Value(FlagSpec {
            long: "findings-topic-arn",
            on: On::Replay,
            value_name: "ARN",
            help: "The SNS topic --publish sends to.",
        }),
        unset: Unset::Required("the SNS topic that receives finding reports"),
        parse: Parse::Text {
            range: "an SNS topic ARN",
            set: |d, v| {
                if !is_sns_topic_arn(v) {
                    return Err("is not an SNS topic ARN (arn:PARTITION:sns:REGION:ACCOUNT:NAME)");
                }
                d.findings_topic_arn = Some(v.to_string());
                Ok(())
            },
        },
        doc: "the topic that receives the reports; its Region is the one Publish goes to. The command line needs it only for `replay --publish`",
    },
    Setting {
        var: "CHAT_TOPIC_ARN",
        part: Part::Topics,
        parameter: Parameter::Is("ChatTopicArn"),
        flag: Flag::Value(FlagSpec {
            long: "chat-topic-arn",
            on: On::Replay,
            value_name: "ARN",
            help: "A second topic for Amazon Q Developer in chat applications (with --publish).",
        }),
        unset: Unset::Empty("none"),
        parse: Parse::Text {
            range: "a standard (not FIFO) SNS topic ARN",
            set: |d, v| {
                if !is_sns_topic_arn(v) || v.ends_with(".fifo") {
                    return Err(
                        "is not a standard SNS topic ARN (Amazon Q Developer in chat applications does not read FIFO topics)",
                    );
                }
                d.chat_topic_arn = Some(v.to_string());
                Ok(())
            },
        },
        doc: "a second topic, for Amazon Q Developer in chat applications: the same reports as chat notifications ([alerts](alerts.md))",
    },
    Setting {
        var: "ALLOWED_REGIONS",
        part: Part::Settings,
        parameter: Parameter::Is("AllowedRegions"),
        flag: Flag::Value(FlagSpec {
            long: "allowed-regions",
            on: On::Global,
            value_name: "REGION,...",
            help: "Regions a secret's primary and replicas may be in (comma-separated).",
        }),
        unset: Unset::Empty("empty (any)"),
        parse: Parse::List {
            item: &REGION,
            range: "Region names, comma-separated",
            set: |d, l| d.settings.rules.allowed_regions = l.into_iter().collect(),
        },
        doc: "Regions a secret's primary and replicas may be in; with it, IAM also lets remediation replicate only there ([IAM](iam.md))",
    },
    Setting {
        var: "REQUIRED_REGIONS",
        part: Part::Settings,
        parameter: Parameter::Is("RequiredRegions"),
        flag: Flag::Value(FlagSpec {
            long: "required-regions",
            on: On::Global,
            value_name: "REGION,...",
            help: "Regions every audited secret must have a replica in.",
        }),
        unset: Unset::Empty("empty (none)"),
        parse: Parse::List {
            item: &REGION,
            range: "Region names within `ALLOWED_REGIONS`",
            set: |d, l| d.settings.rules.required_regions = l.into_iter().collect(),
        },
        doc: "Regions every audited secret must have a replica in (also per secret: the tag `replica-auditor:required-regions`)",
    },
    Setting {
        var: "REQUIRE_CUSTOMER_MANAGED_KEY",
        part: Part::Settings,
        parameter: Parameter::Is("RequireCustomerManagedKey"),
        flag: Flag::Toggle(FlagSpec {
            long: "require-customer-managed-key",
            on: On::Global,
            value_name: "true|false",
            help: "The AWS-managed aws/secretsmanager key is a finding.",
        }),
        unset: Unset::Value("false"),
        parse: Parse::Switch {
            spelling: TRUE_FALSE,
            set: |d, b| d.settings.rules.require_customer_managed_key = b,
        },
        doc: "the AWS-managed `aws/secretsmanager` key is a finding (`KEY_AWS_MANAGED`)",
    },
    Setting {
        var: "REPLICA_LAG_SECONDS",
        part: Part::Settings,
        parameter: Parameter::Is("ReplicaLagSeconds"),
        flag: Flag::Value(FlagSpec {
            long: "replica-lag-seconds",
            on: On::Global,
            value_name: "SECONDS",
            help: "How old the primary's current version may be before a replica without it is REPLICA_STALE (60 to 86400).",
        }),
        unset: Unset::Number(900),
        parse: Parse::Number {
            min: 60,
            max: 86_400,
            set: |d, n| d.settings.rules.replica_lag_seconds = n,
        },
        doc: "how old the primary's current version (by its LastChangedDate) may be before a replica without it is `REPLICA_STALE` (docs/freshness.md)",
    },
    Setting {
        var: "FOLLOW_UP_QUEUE_URL",
        part: Part::Settings,
        parameter: Parameter::None("the template sets the stack's follow-up queue"),
        flag: Flag::None("the command line looks once"),
        unset: Unset::Empty("empty: no follow-up after a new version"),
        parse: Parse::Text {
            range: "an SQS queue URL",
            set: |d, v| {
                d.settings.follow_up = Some(sweep_queue(v)?);
                Ok(())
            },
        },
        doc: "the follow-up chain's queue: after a new current version, delayed messages to this function look again until every replica holds it or `REPLICA_LAG_SECONDS` have passed ([freshness](freshness.md#the-follow-up-chain)); needs `STATE_TABLE`",
    },
    Setting {
        var: "TRUSTED_ACCOUNT_IDS",
        part: Part::Settings,
        parameter: Parameter::Is("TrustedAccountIds"),
        flag: Flag::Value(FlagSpec {
            long: "trusted-account-ids",
            on: On::Global,
            value_name: "ACCOUNT,...",
            help: "Accounts key and secret policies may grant besides the secret's own.",
        }),
        unset: Unset::Empty("empty"),
        parse: Parse::List {
            item: &ACCOUNT_ID,
            range: "12-digit account ids",
            set: |d, l| d.settings.rules.trusted_account_ids = l,
        },
        doc: "accounts key and secret policies may grant besides the secret's own",
    },
    Setting {
        var: "TRUSTED_ORG_IDS",
        part: Part::Settings,
        parameter: Parameter::Is("TrustedOrgIds"),
        flag: Flag::Value(FlagSpec {
            long: "trusted-org-ids",
            on: On::Global,
            value_name: "ORG,...",
            help: "Organisations key and secret policies may grant besides your own.",
        }),
        unset: Unset::Empty("empty"),
        parse: Parse::List {
            item: &ORG_ID,
            range: "`o-` and 10 to 32 lower-case letters or digits",
            set: |d, l| d.settings.rules.trusted_org_ids = l,
        },
        doc: "organisations key and secret policies may grant besides the auditor's own (learned with DescribeOrganization at the first invocation)",
    },
    Setting {
        var: "MIN_SEVERITY",
        part: Part::Settings,
        parameter: Parameter::Is("MinSeverity"),
        flag: Flag::Value(FlagSpec {
            long: "min-severity",
            on: On::Global,
            value_name: "SEVERITY",
            help: "Findings below this severity are left out of the reports.",
        }),
        unset: Unset::Value("LOW"),
        parse: Parse::OneOf {
            values: &["INFO", "LOW", "MEDIUM", "HIGH", "CRITICAL"],
            set: |d, v| {
                if let Ok(s) = v.parse() {
                    d.settings.min_severity = s;
                }
            },
        },
        doc: "findings below it are left out; a report with no finding and no action is not published",
    },
    Setting {
        var: "REMEDIATION",
        part: Part::Settings,
        parameter: Parameter::Is("Remediation"),
        flag: Flag::Choice {
            on: On::Every,
            switches: &[
                Choice {
                    long: "remediate",
                    value: "on",
                    help: "Retry failed replication where a retry can fix it (needs --state-table).",
                },
                Choice {
                    long: "dry-run",
                    value: "dry-run",
                    help: "Report what remediation would do, without doing it.",
                },
            ],
            otherwise: "off",
        },
        unset: Unset::Derived("`on` with `STATE_TABLE`, else `off` (logged at start-up)"),
        parse: Parse::OneOf {
            values: &["on", "dry-run", "off"],
            set: |d, v| {
                d.remediation_given = true;
                d.settings.remediation.mode = match v {
                    "on" => RemediationMode::On,
                    "dry-run" => RemediationMode::DryRun,
                    _ => RemediationMode::Off,
                };
            },
        },
        doc: "retry failed replication where a retry can fix it; `dry-run` reports what it would do ([remediation](remediation.md)). `on` without `STATE_TABLE` stops start-up. The command line: `--remediate` or `--dry-run`, off otherwise",
    },
    Setting {
        var: "STATE_TABLE",
        part: Part::Settings,
        parameter: Parameter::Noted("StateTableArn", "empty: the stack makes the table"),
        flag: Flag::Value(FlagSpec {
            long: "state-table",
            on: On::Every,
            value_name: "TABLE",
            help: "The DynamoDB table of remediation leases and of the Security Hub findings each secret holds active (a name or a table ARN).",
        }),
        unset: Unset::Empty("none"),
        parse: Parse::Text {
            range: "a table name, or a table ARN for a table in another Region",
            set: |d, v| {
                d.settings.remediation.state_table = Some(state_table(v)?);
                Ok(())
            },
        },
        doc: "the DynamoDB table (partition key `pk`, String; TTL `expires_at`) of the remediation leases, the Security Hub findings held, the policy ledgers and the org sweep's bookkeeping. Needed by `REMEDIATION=on`, `SECURITY_HUB=on` and `SWEEP_QUEUE_URL`",
    },
    Setting {
        var: "ALLOW_FORCE_OVERWRITE",
        part: Part::Settings,
        parameter: Parameter::Is("AllowForceOverwrite"),
        flag: Flag::Toggle(FlagSpec {
            long: "allow-force-overwrite",
            on: On::Every,
            value_name: "true|false",
            help: "Retry a name clash by overwriting the other secret (destroys it).",
        }),
        unset: Unset::Value("false"),
        parse: Parse::Switch {
            spelling: TRUE_FALSE,
            set: |d, b| d.settings.remediation.allow_force_overwrite = b,
        },
        doc: "a name clash is retried with `ForceOverwriteReplicaSecret`, which **destroys** the other secret. Without it, IAM denies the overwrite too",
    },
    Setting {
        var: "RETRY_MAX_ATTEMPTS",
        part: Part::Settings,
        parameter: Parameter::Is("RetryMaxAttempts"),
        flag: Flag::Value(FlagSpec {
            long: "retry-max-attempts",
            on: On::Every,
            value_name: "N",
            help: "Retries per Region (0 to 5).",
        }),
        unset: Unset::Number(1),
        parse: Parse::Number {
            min: 0,
            max: 5,
            set: |d, n| d.settings.remediation.max_attempts = n as u32,
        },
        doc: "retries per Region per invocation",
    },
    Setting {
        var: "RETRY_VERIFY_SECONDS",
        part: Part::Settings,
        parameter: Parameter::Is("RetryVerifySeconds"),
        flag: Flag::Value(FlagSpec {
            long: "retry-verify-seconds",
            on: On::Every,
            value_name: "SECONDS",
            help: "How long to watch a retried replica (0 to 600 seconds).",
        }),
        unset: Unset::Number(20),
        parse: Parse::Number {
            min: 0,
            max: 600,
            set: |d, n| d.settings.remediation.verify = std::time::Duration::from_secs(n),
        },
        doc: "how long a retry polls DescribeSecret for the outcome, always within the invocation's time",
    },
    Setting {
        var: "REMEDIATION_WRITES_PER_SECOND",
        part: Part::Settings,
        parameter: Parameter::Is("RemediationWritesPerSecond"),
        flag: Flag::Value(FlagSpec {
            long: "remediation-writes-per-second",
            on: On::Every,
            value_name: "N",
            help: "Replication writes per second (1 to 25).",
        }),
        unset: Unset::Number(super::DEFAULT_WRITES_PER_SECOND),
        parse: Parse::Number {
            min: *super::WRITES_PER_SECOND_RANGE.start(),
            max: *super::WRITES_PER_SECOND_RANGE.end(),
            set: |d, n| d.settings.remediation.writes_per_second = n as u32,
        },
        doc: "replication writes per second per account and Region, for every instance of the function together ([Shared paces](quotas.md); AWS allows 50, shared with your own writes)",
    },
    Setting {
        var: "SECURITY_HUB",
        part: Part::Settings,
        parameter: Parameter::Is("SecurityHub"),
        flag: Flag::Choice {
            on: On::Every,
            switches: &[Choice {
                long: "security-hub",
                value: "on",
                help: "Also import the findings into AWS Security Hub, in each finding's own account and Region, and resolve the ones no longer found (needs --state-table).",
            }],
            otherwise: "off",
        },
        unset: Unset::Value("off"),
        parse: Parse::Switch {
            spelling: ON_OFF,
            set: |d, b| d.settings.security_hub = b,
        },
        doc: "import the findings into Security Hub and resolve them there once fixed ([Security Hub](security-hub.md)); needs `STATE_TABLE`",
    },
    Setting {
        var: "AUDITOR_ROLE_ARN",
        part: Part::Settings,
        parameter: Parameter::None("the template sets the function's own role"),
        flag: Flag::None(""),
        unset: Unset::Empty("none: asked of STS at cold start"),
        parse: Parse::Text {
            range: "an IAM ARN",
            set: |d, v| {
                if Arn::parse(v).is_none() {
                    return Err("is not an IAM ARN");
                }
                d.settings.remediation.auditor_role_arn = Some(v.to_string());
                Ok(())
            },
        },
        doc: "the auditor's own principal, for the loop guard ([remediation](remediation.md#the-loop-guard))",
    },
    Setting {
        var: "MEMBER_ROLE_NAME",
        part: Part::Settings,
        parameter: Parameter::Is("MemberRoleName"),
        flag: Flag::None("the command line enters accounts with `--role-arn`"),
        unset: Unset::Value(crate::aws::DEFAULT_MEMBER_ROLE_NAME),
        parse: Parse::Text {
            range: "an IAM role name",
            set: |d, v| {
                if !is_role_name(v) {
                    return Err("is not an IAM role name (1 to 64 of a-z, A-Z, 0-9 and +=,.@_-)");
                }
                d.settings.accounts.member_role_name = v.to_string();
                Ok(())
            },
        },
        doc: "the role assumed in another account ([organisations](organisations.md)); member.yaml's `MemberRoleName` must be the same",
    },
    Setting {
        var: "ACCOUNT_IDS",
        part: Part::Settings,
        parameter: Parameter::Is("AccountIds"),
        flag: Flag::None("the command line audits the account its credentials name"),
        unset: Unset::Empty("empty: the organisation's ACTIVE accounts"),
        parse: Parse::List {
            item: &ACCOUNT_ID,
            range: "12-digit account ids",
            set: |d, l| d.settings.accounts.only = l,
        },
        doc: "the accounts the auditor may enter besides its own; an event from any other is refused ([security](security.md))",
    },
    Setting {
        var: "SWEEP_REGIONS",
        part: Part::Settings,
        parameter: Parameter::Is("SweepRegions"),
        flag: Flag::Value(FlagSpec {
            long: "regions",
            on: On::Sweep,
            value_name: "REGION,...",
            help: "Regions whose secrets are listed (default: --region).",
        }),
        unset: Unset::Empty("empty: the function's Region"),
        parse: Parse::List {
            item: &REGION,
            range: "Region names",
            set: |d, l| d.settings.sweep.regions = l,
        },
        doc: "the Regions whose secrets the sweep lists ([sweep](sweep.md))",
    },
    Setting {
        var: "SWEEP_CONCURRENCY",
        part: Part::Settings,
        parameter: Parameter::Is("SweepConcurrency"),
        flag: Flag::Value(FlagSpec {
            long: "concurrency",
            on: On::Sweep,
            value_name: "N",
            help: "The most secrets audited at once (1 to 256; fewer when the observed latency asks for fewer).",
        }),
        unset: Unset::Number(super::DEFAULT_SWEEP_CONCURRENCY),
        parse: Parse::Number {
            min: 1,
            max: 256,
            set: |d, n| d.settings.sweep.concurrency = n as usize,
        },
        doc: "the most secrets a sweep audits at once; within it, the observed latency decides ([sweep](sweep.md#sweep-concurrency))",
    },
    Setting {
        var: "SWEEP_POLICY_REFRESH",
        part: Part::Settings,
        parameter: Parameter::Is("SweepPolicyRefresh"),
        flag: Flag::ValueOr(
            FlagSpec {
                long: "policy-refresh",
                on: On::Sweep,
                value_name: "N",
                help: "With --state-table: read each resource policy only when it may have changed, every policy once in N sweeps (the Lambda's SWEEP_POLICY_REFRESH). The default, 1, reads every policy.",
            },
            "1",
        ),
        unset: Unset::Number(super::DEFAULT_POLICY_REFRESH),
        parse: Parse::Number {
            min: 1,
            max: 1000,
            set: |d, n| d.settings.sweep.policy_refresh = n as u32,
        },
        doc: "every resource policy is read by at least one of this many consecutive sweeps; in between, only those of changed or flagged secrets ([sweep](sweep.md#resource-policies-between-sweeps))",
    },
    Setting {
        var: "SWEEP_QUEUE_URL",
        part: Part::Settings,
        parameter: Parameter::Noted("OrgSweep", "`on`: the stack's sweep queue"),
        flag: Flag::None("the command line sweeps one account"),
        unset: Unset::Empty("empty: the sweep covers the own account"),
        parse: Parse::Text {
            range: "an SQS queue URL",
            set: |d, v| {
                d.settings.sweep.queue = Some(sweep_queue(v)?);
                Ok(())
            },
        },
        doc: "the org sweep's queue: the scheduled event plans one message per account and Region there ([organisations](organisations.md#the-org-sweep))",
    },
    Setting {
        var: "SWEEP_MAX_RECEIVE_COUNT",
        part: Part::Settings,
        parameter: Parameter::Is("SweepMaxReceiveCount"),
        flag: Flag::None("no queue on the command line"),
        unset: Unset::Number(super::DEFAULT_MAX_RECEIVE_COUNT),
        // SQS allows a maxReceiveCount of 1 to 1,000.
        parse: Parse::Number {
            min: 1,
            max: 1000,
            set: |d, n| d.settings.sweep.max_receive_count = n as u32,
        },
        doc: "the sweep queue's `maxReceiveCount`: a cell failing on this delivery is counted failed",
    },
    Setting {
        var: "ORG_LIST_ACCOUNTS_PER_SECOND",
        part: Part::Settings,
        parameter: Parameter::None("the default fits every organisation size"),
        flag: Flag::None(""),
        unset: Unset::Number(super::DEFAULT_LIST_ACCOUNTS_PER_SECOND),
        // At least 3: 10,000 accounts (500 pages) are listed within 167 s
        // of the function's 300 s (docs/organisations.md).
        parse: Parse::Number {
            min: 3,
            max: 20,
            set: |d, n| d.settings.accounts.list_per_second = n as u32,
        },
        doc: "Organizations ListAccounts calls per second per function instance (AWS documents no rate: [organisations](organisations.md#planning-that-fans-out))",
    },
    Setting {
        var: "METRICS",
        part: Part::Settings,
        parameter: Parameter::Is("Metrics"),
        flag: Flag::Fixed {
            value: "off",
            why: "the command line has `--metrics` (stderr)",
        },
        unset: Unset::Value("on"),
        parse: Parse::Switch {
            spelling: ON_OFF,
            set: |d, b| {
                d.settings.metrics = if b {
                    MetricsOut::Stdout
                } else {
                    MetricsOut::Off
                }
            },
        },
        doc: "one CloudWatch EMF line per audit and per sweep on stdout ([observability](observability.md#metrics))",
    },
];

/// The entry of `var`, if it is a setting.
pub fn setting(var: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|s| s.var == var)
}

/// `a, b or c`.
fn either(values: &[&str]) -> String {
    match values.split_last() {
        Some((last, [])) => last.to_string(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
        None => String::new(),
    }
}

/// `` `a`, `b` ``.
fn backticked(values: &[&str]) -> String {
    let quoted: Vec<String> = values.iter().map(|v| format!("`{v}`")).collect();
    quoted.join(", ")
}

impl Setting {
    /// Check `value` (trimmed, not empty) and store it in `draft`.
    fn apply(&self, draft: &mut Draft, value: &str) -> Result<(), ConfigError> {
        let invalid = |value: &str, expected: String| ConfigError::Invalid {
            var: self.var,
            value: value.to_string(),
            expected,
        };
        match self.parse {
            Parse::Number { min, max, set } => match value.parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => set(draft, n),
                _ => {
                    let expected = format!("is not a whole number from {min} to {max}");
                    return Err(invalid(value, expected));
                }
            },
            Parse::Switch { spelling, set } => match switch(value) {
                Some(on) => set(draft, on),
                None => return Err(invalid(value, format!("is not {}", either(&spelling)))),
            },
            Parse::OneOf { values, set } => {
                match values.iter().find(|v| v.eq_ignore_ascii_case(value)) {
                    Some(v) => set(draft, v),
                    None => return Err(invalid(value, format!("is not {}", either(values)))),
                }
            }
            Parse::List { item, set, .. } => {
                let list = split_list(Some(value.to_string()));
                if let Some(bad) = list.iter().find(|i| !(item.valid)(i)) {
                    return Err(invalid(bad, item.expected.to_string()));
                }
                set(draft, list);
            }
            Parse::Text { set, .. } => {
                set(draft, value).map_err(|expected| invalid(value, expected.to_string()))?
            }
        }
        Ok(())
    }

    /// The value an unset variable is read as, if any.
    pub fn default_value(&self) -> Option<String> {
        match self.unset {
            Unset::Value(v) => Some(v.to_string()),
            Unset::Number(n) => Some(n.to_string()),
            Unset::Derived(_) | Unset::Empty(_) | Unset::Required(_) => None,
        }
    }

    /// The accepted values, as docs/configuration.md's "range" column says them.
    pub fn range(&self) -> String {
        match self.parse {
            Parse::Number { min, max, .. } => format!("{min} to {max}"),
            Parse::Switch { spelling, .. } => backticked(&spelling),
            Parse::OneOf { values, .. } => backticked(values),
            Parse::List { range, .. } | Parse::Text { range, .. } => range.to_string(),
        }
    }

    /// docs/configuration.md's row for this setting.
    pub fn markdown_row(&self) -> String {
        let parameter = match self.parameter {
            Parameter::Is(p) => format!("`{p}`"),
            Parameter::Noted(p, note) => format!("`{p}` ({note})"),
            Parameter::None(why) => format!("— {why}"),
        };
        let flag = match (self.flag.long(), self.flag) {
            (Some(long), _) => format!("`--{long}`"),
            (None, Flag::Fixed { why, .. } | Flag::None(why)) if !why.is_empty() => {
                format!("— {why}")
            }
            (None, _) => "—".to_string(),
        };
        let default = match self.unset {
            Unset::Required(_) => "(required)".to_string(),
            Unset::Derived(text) | Unset::Empty(text) => text.to_string(),
            Unset::Value(_) | Unset::Number(_) => {
                format!("`{}`", self.default_value().unwrap_or_default())
            }
        };
        format!(
            "| `{}` | {parameter} | {flag} | {default} | {} | {} |",
            self.var,
            self.range(),
            self.doc
        )
    }
}

impl Flag {
    /// The flag's long name (the first switch's, for a choice); `None`
    /// when the command line has no flag for the setting.
    pub fn long(&self) -> Option<&'static str> {
        match self {
            Flag::Value(f) | Flag::Toggle(f) | Flag::ValueOr(f, _) => Some(f.long),
            Flag::Choice { switches, .. } => switches.first().map(|c| c.long),
            Flag::Fixed { .. } | Flag::None(_) => None,
        }
    }

    /// Where on the command line the flag is given.
    pub fn on(&self) -> Option<On> {
        match self {
            Flag::Value(f) | Flag::Toggle(f) | Flag::ValueOr(f, _) => Some(f.on),
            Flag::Choice { on, .. } => Some(*on),
            Flag::Fixed { .. } | Flag::None(_) => None,
        }
    }
}

impl Draft {
    /// Nothing read yet: every setting's default is then read into it.
    pub(super) fn new() -> Draft {
        Draft {
            findings_topic_arn: None,
            chat_topic_arn: None,
            settings: Settings {
                min_severity: crate::model::Severity::Low,
                rules: super::Rules::default(),
                remediation: super::Remediation::default(),
                sweep: super::Sweep {
                    regions: Vec::new(),
                    concurrency: 0,
                    queue: None,
                    max_receive_count: 0,
                    policy_refresh: 0,
                },
                follow_up: None,
                metrics: MetricsOut::Stdout,
                security_hub: false,
                accounts: super::Accounts {
                    member_role_name: String::new(),
                    list_per_second: 0,
                    only: Vec::new(),
                },
                notes: Vec::new(),
            },
            remediation_given: false,
        }
    }

    /// Read the settings of `part` through `get`, in the table's order:
    /// the first bad value is the error.
    pub(super) fn read(
        &mut self,
        part: Part,
        get: &impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        for s in SETTINGS.iter().filter(|s| s.part == part) {
            let given = get(s.var)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty());
            match (given, s.unset) {
                (Some(v), _) => s.apply(self, &v)?,
                (None, Unset::Required(purpose)) => {
                    return Err(ConfigError::Missing {
                        var: s.var,
                        purpose,
                    });
                }
                (None, _) => {
                    if let Some(v) = s.default_value() {
                        s.apply(self, &v)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// The Regions every secret must have, when not all allowed.
    pub(super) fn required_not_allowed(&self) -> Option<&String> {
        let rules = &self.settings.rules;
        let allowed: &BTreeSet<String> = &rules.allowed_regions;
        rules
            .required_regions
            .iter()
            .find(|r| !allowed.is_empty() && !allowed.contains(*r))
    }
}

#[cfg(test)]
mod tests;
