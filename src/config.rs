//! Configuration from the environment, validated once at cold start.
//! A bad value is a start-up error that names the variable. Every setting
//! is one entry of [`table::SETTINGS`], which the command line's flags and
//! docs/configuration.md are made from too.

pub mod table;

pub use crate::arn::topic_region;
use crate::arn::{TableArn, is_account_id, is_region_name, parse_table_arn};
use crate::model::Severity;
pub use crate::model::{
    DEFAULT_WRITES_PER_SECOND, Remediation, RemediationMode, Rules, StateTable,
    WRITES_PER_SECOND_RANGE, split_list,
};

/// A start-up error: which setting, and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfigError {
    /// A required variable is unset (what it is for).
    Missing {
        var: &'static str,
        purpose: &'static str,
    },
    /// A value (or a list's item) that is not accepted.
    Invalid {
        var: &'static str,
        value: String,
        /// After the value: `"x" is not ...`.
        expected: String,
    },
    /// A list's item outside another setting's list.
    NotWithin {
        var: &'static str,
        value: String,
        within: &'static str,
    },
    /// `var` is unset although another setting needs it.
    Requires {
        var: &'static str,
        because: &'static Requirement,
    },
}

impl ConfigError {
    /// The variable the error is about.
    pub fn var(&self) -> &'static str {
        match self {
            ConfigError::Missing { var, .. }
            | ConfigError::Invalid { var, .. }
            | ConfigError::NotWithin { var, .. }
            | ConfigError::Requires { var, .. } => var,
        }
    }

    /// What is wrong, after the variable's name.
    pub fn message(&self) -> String {
        match self {
            ConfigError::Missing { purpose, .. } => format!("is required ({purpose})"),
            ConfigError::Invalid {
                value, expected, ..
            } => format!("{value:?} {expected}"),
            ConfigError::NotWithin { value, within, .. } => {
                format!("{value} is required but not in {within}")
            }
            ConfigError::Requires { because: r, .. } => {
                format!(
                    "is required when {} {} ({}){}",
                    r.by, r.when, r.purpose, r.fix
                )
            }
        }
    }
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "configuration error in {}: {}",
            self.var(),
            self.message()
        )
    }
}

impl std::error::Error for ConfigError {}

/// A setting another one needs: the rule is checked once, for every
/// setting in [`REQUIREMENTS`].
#[derive(Debug)]
pub struct Requirement {
    /// The variable needed.
    pub var: &'static str,
    /// The variable that needs it.
    pub by: &'static str,
    /// When it needs it: `is on`, `is set`.
    pub when: &'static str,
    /// What the needed setting is for.
    pub purpose: &'static str,
    /// After the purpose, for the Lambda: how else to start.
    pub fix: &'static str,
    /// Whether `by` needs it in these settings.
    applies: fn(&Settings) -> bool,
    /// Whether these settings have it.
    met: fn(&Settings) -> bool,
}

impl PartialEq for Requirement {
    fn eq(&self, other: &Self) -> bool {
        (self.var, self.by) == (other.var, other.by)
    }
}

/// Who needs STATE_TABLE, and why.
pub static REQUIREMENTS: [Requirement; 4] = [
    Requirement {
        var: "STATE_TABLE",
        by: "REMEDIATION",
        when: "is on",
        purpose: "the DynamoDB table that holds the remediation leases, so that one retry per secret and Region runs at a time",
        fix: "; set it, or set REMEDIATION to dry-run or off",
        applies: |s| s.remediation.mode == RemediationMode::On,
        met: |s| s.remediation.state_table.is_some(),
    },
    Requirement {
        var: "STATE_TABLE",
        by: "SECURITY_HUB",
        when: "is on",
        purpose: "the DynamoDB table that keeps each secret's active Security Hub findings, so that fixed problems are resolved there",
        fix: "; set it, or set SECURITY_HUB to off",
        applies: |s| s.security_hub,
        met: |s| s.remediation.state_table.is_some(),
    },
    Requirement {
        var: "STATE_TABLE",
        by: "SWEEP_QUEUE_URL",
        when: "is set",
        purpose: "the org sweep counts its cells there, so that one summary is published when the last is done",
        fix: "",
        applies: |s| s.sweep.queue.is_some(),
        met: |s| s.remediation.state_table.is_some(),
    },
    Requirement {
        var: "STATE_TABLE",
        by: "FOLLOW_UP_QUEUE_URL",
        when: "is set",
        purpose: "each follow-up chain is kept there, so that a redelivered or duplicate event or message starts or runs no second chain",
        fix: "",
        applies: |s| s.follow_up.is_some(),
        met: |s| s.remediation.state_table.is_some(),
    },
];

/// The Lambda's configuration: where reports go, and the audit settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub findings_topic_arn: String,
    /// CHAT_TOPIC_ARN: a second topic for Amazon Q Developer in chat
    /// applications, sent the same reports as chat notifications.
    pub chat_topic_arn: Option<String>,
    pub settings: Settings,
}

/// What the engine audits and does, whatever the reports' sink: every
/// variable but the topics. A front door without SNS (a command line)
/// reads only these.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub min_severity: Severity,
    pub rules: Rules,
    pub remediation: Remediation,
    pub sweep: Sweep,
    /// FOLLOW_UP_QUEUE_URL: the follow-up chain's queue
    /// (docs/freshness.md#the-follow-up-chain); `None`: no chain.
    pub follow_up: Option<SweepQueue>,
    /// METRICS: where one CloudWatch EMF line per audit and per sweep
    /// goes (README "Metrics"). The command line never uses stdout.
    pub metrics: MetricsOut,
    /// SECURITY_HUB=on: every audited secret's findings are imported into
    /// Security Hub, and resolved there once fixed (README "Security Hub").
    /// Needs STATE_TABLE, which keeps each secret's active findings.
    pub security_hub: bool,
    /// Which accounts are audited, and how the member ones are entered.
    pub accounts: Accounts,
    /// What start-up should log about a default it chose: the Lambda
    /// binary logs each at `warn` (docs/configuration.md).
    pub notes: Vec<String>,
}

/// The accounts of an organisation-wide audit.
#[derive(Debug, Clone, PartialEq)]
pub struct Accounts {
    /// MEMBER_ROLE_NAME: the role assumed in a member account.
    pub member_role_name: String,
    /// ACCOUNT_IDS: the only accounts audited; empty means every account
    /// whose events reach the function.
    pub only: Vec<String>,
    /// ORG_LIST_ACCOUNTS_PER_SECOND: the pace of ListAccounts calls.
    pub list_per_second: u32,
}

impl Accounts {
    /// Whether events and secrets of `account` are audited.
    pub fn audits(&self, account: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|a| a == account)
    }
}

/// Where the EMF lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsOut {
    /// METRICS=off: nowhere.
    Off,
    /// METRICS=on: the Lambda's stdout, which CloudWatch Logs reads.
    Stdout,
    /// The command line's `--metrics`: stderr, its stdout being its output.
    Stderr,
}

/// The scheduled sweep's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Sweep {
    /// Regions whose secrets are listed; empty means the function's own.
    pub regions: Vec<String>,
    /// SWEEP_CONCURRENCY: the most secrets audited at once (the sweep
    /// keeps fewer in flight when the latency it observes asks for fewer).
    pub concurrency: usize,
    /// SWEEP_QUEUE_URL: the org sweep's queue. Set, the scheduled event
    /// plans one message per (account, Region) cell and the function
    /// consumes them; unset, the sweep is the single invocation it always was.
    pub queue: Option<SweepQueue>,
    /// SWEEP_MAX_RECEIVE_COUNT: the queue's redrive `maxReceiveCount`. A
    /// cell failing on this delivery is counted failed (then the
    /// dead-letter queue takes it), so the org summary still comes.
    pub max_receive_count: u32,
    /// SWEEP_POLICY_REFRESH: every resource policy is read at least once
    /// in this many sweeps; in between, only those of changed or flagged
    /// secrets (the policy ledger, needs STATE_TABLE). 1: every sweep
    /// reads every policy.
    pub policy_refresh: u32,
}

/// An SQS queue of the function's: the org sweep's, the follow-up chain's.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepQueue {
    pub url: String,
    /// The queue's Region (from an `https://sqs.<Region>.amazonaws.com/...`
    /// URL); `None`: the function's own.
    pub region: Option<String>,
}

/// Logged at start-up when REMEDIATION is unset and there is no
/// STATE_TABLE: the default is then off, not on.
pub const REMEDIATION_OFF_NOTE: &str = "REMEDIATION is unset and there is no STATE_TABLE: remediation is off (report only); set STATE_TABLE (the DynamoDB table of the remediation leases) and REMEDIATION=on to retry failed replication";

/// The default SWEEP_MAX_RECEIVE_COUNT (the template's default redrive policy).
pub const DEFAULT_MAX_RECEIVE_COUNT: u64 = 3;

/// The default ORG_LIST_ACCOUNTS_PER_SECOND: Organizations documents no
/// rate for ListAccounts; 4 a second lists 10,000 accounts (500 pages of
/// 20) in 125 s, well within the function's 300 s (docs/organisations.md).
pub const DEFAULT_LIST_ACCOUNTS_PER_SECOND: u64 = 4;

/// The default SWEEP_POLICY_REFRESH: with the template's default schedule
/// (every 6 hours), every resource policy is read at least once a day.
pub const DEFAULT_POLICY_REFRESH: u64 = 4;

/// The default SWEEP_CONCURRENCY: the most audits a sweep keeps in
/// flight; within it, the sweep follows the latency it observes (README
/// "Sweep concurrency").
pub const DEFAULT_SWEEP_CONCURRENCY: u64 = 64;

impl Config {
    /// Read the configuration from the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the configuration through `get` (tests pass a map): the
    /// topics, then the settings.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let mut draft = table::Draft::new();
        draft.read(table::Part::Topics, &get)?;
        draft.read(table::Part::Settings, &get)?;
        let (topic, chat) = (draft.findings_topic_arn.take(), draft.chat_topic_arn.take());
        let settings = draft.finish()?;
        Ok(Config {
            // Never empty: the table makes it required.
            findings_topic_arn: topic.unwrap_or_default(),
            chat_topic_arn: chat,
            settings,
        })
    }
}

impl Settings {
    /// Read the settings from the process environment.
    pub fn from_env() -> Result<Settings, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Read the settings through `get`; FINDINGS_TOPIC_ARN and
    /// CHAT_TOPIC_ARN are not read.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Settings, ConfigError> {
        let mut draft = table::Draft::new();
        draft.read(table::Part::Settings, &get)?;
        draft.finish()
    }
}

impl table::Draft {
    /// What is chosen once every setting is read: REMEDIATION's default,
    /// then the rules between settings.
    fn finish(mut self) -> Result<Settings, ConfigError> {
        if !self.remediation_given {
            // Unset: on when remediation has what it needs (the state
            // table of its leases), else report only. The template sets
            // both; the bare binary is safe without them.
            let s = &mut self.settings;
            s.remediation.mode = if s.remediation.state_table.is_some() {
                RemediationMode::On
            } else {
                s.notes.push(REMEDIATION_OFF_NOTE.to_string());
                RemediationMode::Off
            };
        }
        if let Some(r) = self.required_not_allowed() {
            return Err(ConfigError::NotWithin {
                var: "REQUIRED_REGIONS",
                value: r.clone(),
                within: "ALLOWED_REGIONS",
            });
        }
        if let Some(r) = REQUIREMENTS
            .iter()
            .find(|r| (r.applies)(&self.settings) && !(r.met)(&self.settings))
        {
            return Err(ConfigError::Requires {
                var: r.var,
                because: r,
            });
        }
        Ok(self.settings)
    }
}

/// STATE_TABLE: a DynamoDB table name, or a table ARN
/// (`arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME`).
fn state_table(raw: &str) -> Result<StateTable, &'static str> {
    let (name, region) = match raw.strip_prefix("arn:") {
        Some(_) => match parse_table_arn(raw) {
            Some(TableArn::Table { region, name }) => (name.to_string(), Some(region.to_string())),
            Some(TableArn::NotATable) => return Err("is not a DynamoDB table ARN"),
            None => {
                return Err(
                    "is not a DynamoDB table ARN (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME)",
                );
            }
        },
        None => (raw.to_string(), None),
    };
    // DynamoDB table names: 3 to 255 of a-z A-Z 0-9 _ - .
    let valid = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        return Err(
            "is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _, - and .) or table ARN",
        );
    }
    Ok(StateTable { name, region })
}

/// SWEEP_QUEUE_URL: an SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`,
/// or another endpoint's `http(s)://HOST/ACCOUNT/NAME`).
fn sweep_queue(url: &str) -> Result<SweepQueue, &'static str> {
    let bad = "is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)";
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or(bad)?;
    let mut parts = rest.split('/');
    let (host, account, name) = (parts.next(), parts.next(), parts.next());
    let name_ok = |n: &str| {
        (1..=80).contains(&n.len())
            && n.strip_suffix(".fifo")
                .unwrap_or(n)
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    match (host, account, name, parts.next()) {
        (Some(host), Some(account), Some(name), None)
            if !host.is_empty() && is_account_id(account) && name_ok(name) =>
        {
            let region = host
                .strip_prefix("sqs.")
                .and_then(|h| h.split('.').next())
                .filter(|r| is_region_name(r))
                .map(str::to_string);
            Ok(SweepQueue {
                url: url.to_string(),
                region,
            })
        }
        _ => Err(bad),
    }
}

/// An IAM role name: 1 to 64 of letters, digits and `+=,.@_-`.
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const TOPIC: &str = "arn:aws:sns:us-east-1:111122223333:replica-findings";

    fn load(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn the_settings_need_no_topic_but_the_lambda_does() {
        let get = |vars: &'static [(&str, &str)]| {
            move |k: &str| {
                vars.iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        let s = Settings::from_lookup(get(&[("REMEDIATION", "off"), ("MIN_SEVERITY", "high")]))
            .expect("no FINDINGS_TOPIC_ARN needed");
        assert_eq!(s.remediation.mode, RemediationMode::Off);
        assert_eq!(s.min_severity, Severity::High);
        let bad = Settings::from_lookup(get(&[("REMEDIATION", "off"), ("MIN_SEVERITY", "LOUD")]));
        assert_eq!(bad.unwrap_err().var(), "MIN_SEVERITY");
        assert_eq!(
            load(&[("REMEDIATION", "off")]).unwrap_err().var(),
            "FINDINGS_TOPIC_ARN"
        );
        let c = load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "off")]).unwrap();
        assert_eq!(
            c.settings,
            Settings {
                min_severity: Severity::Low,
                ..s
            },
            "the Lambda reads the same settings"
        );
    }

    #[test]
    fn defaults() {
        let c = load(&[
            ("FINDINGS_TOPIC_ARN", TOPIC),
            ("STATE_TABLE", "auditor-state"),
        ])
        .unwrap();
        assert_eq!(c.settings.min_severity, Severity::Low);
        assert_eq!(
            c.settings.rules,
            Rules {
                replica_lag_seconds: 900,
                ..Rules::default()
            }
        );
        assert_eq!(
            c.settings.remediation,
            Remediation {
                state_table: Some(StateTable {
                    name: "auditor-state".into(),
                    region: None
                }),
                ..Remediation::default()
            }
        );
        assert_eq!(c.settings.remediation.writes_per_second, 5);
        assert_eq!(c.settings.remediation.mode, RemediationMode::On);
        assert_eq!(c.settings.remediation.verify.as_secs(), 20);
        assert_eq!(c.settings.remediation.max_attempts, 1);
        assert!(!c.settings.remediation.allow_force_overwrite);
    }

    #[test]
    fn metrics_are_on_unless_turned_off() {
        let m = |v: &[(&str, &str)]| {
            let mut all = vec![("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "off")];
            all.extend_from_slice(v);
            load(&all).map(|c| c.settings.metrics)
        };
        assert_eq!(m(&[]).unwrap(), MetricsOut::Stdout);
        assert_eq!(m(&[("METRICS", "ON")]).unwrap(), MetricsOut::Stdout);
        assert_eq!(m(&[("METRICS", "off")]).unwrap(), MetricsOut::Off);
        assert_eq!(m(&[("METRICS", "yes")]).unwrap_err().var(), "METRICS");
    }

    #[test]
    fn member_role_and_account_ids() {
        let a = |v: &[(&str, &str)]| {
            let mut all = vec![("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "off")];
            all.extend_from_slice(v);
            load(&all).map(|c| c.settings.accounts)
        };
        let default = a(&[]).unwrap();
        assert_eq!(default.member_role_name, "ReplicaAuditorMember");
        assert!(
            default.audits("111122223333"),
            "no ACCOUNT_IDS: every account"
        );
        let named = a(&[
            ("MEMBER_ROLE_NAME", "audit-reader@org"),
            ("ACCOUNT_IDS", "111122223333, 444455556666"),
        ])
        .unwrap();
        assert_eq!(named.member_role_name, "audit-reader@org");
        assert!(named.audits("444455556666"));
        assert!(!named.audits("777788889999"));
        for bad in ["role/with/path", "has space", &"x".repeat(65)] {
            assert_eq!(
                a(&[("MEMBER_ROLE_NAME", bad)]).unwrap_err().var(),
                "MEMBER_ROLE_NAME"
            );
        }
        assert_eq!(
            a(&[("ACCOUNT_IDS", "1111")]).unwrap_err().var(),
            "ACCOUNT_IDS"
        );
    }

    #[test]
    fn chat_topic_is_optional_and_must_be_a_standard_topic() {
        assert_eq!(
            load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "off")])
                .unwrap()
                .chat_topic_arn,
            None
        );
        let chat = "arn:aws:sns:us-east-1:111122223333:chatops";
        let c = load(&[
            ("FINDINGS_TOPIC_ARN", TOPIC),
            ("REMEDIATION", "off"),
            ("CHAT_TOPIC_ARN", chat),
        ])
        .unwrap();
        assert_eq!(c.chat_topic_arn.as_deref(), Some(chat));
        assert_eq!(c.findings_topic_arn, TOPIC);
        for bad in [
            "arn:aws:sqs:us-east-1:111122223333:q",
            "arn:aws:sns:us-east-1:111122223333:chat.fifo",
        ] {
            let e = load(&[
                ("FINDINGS_TOPIC_ARN", TOPIC),
                ("REMEDIATION", "off"),
                ("CHAT_TOPIC_ARN", bad),
            ])
            .unwrap_err();
            assert_eq!(e.var(), "CHAT_TOPIC_ARN", "{bad}");
        }
    }

    #[test]
    fn full_configuration() {
        let c = load(&[
            (
                "FINDINGS_TOPIC_ARN",
                "arn:aws:sns:us-east-1:111122223333:findings.fifo",
            ),
            ("ALLOWED_REGIONS", "us-east-1, us-west-2,eu-west-1"),
            ("REQUIRED_REGIONS", "us-west-2"),
            ("REQUIRE_CUSTOMER_MANAGED_KEY", "TRUE"),
            ("TRUSTED_ACCOUNT_IDS", "444455556666"),
            ("TRUSTED_ORG_IDS", "o-a1b2c3d4e5, o-0123456789abcdef"),
            ("MIN_SEVERITY", "high"),
            ("STATE_TABLE", "replica-auditor-state"),
        ])
        .unwrap();
        assert_eq!(c.settings.min_severity, Severity::High);
        assert_eq!(c.settings.rules.allowed_regions.len(), 3);
        assert!(c.settings.rules.require_customer_managed_key);
        assert_eq!(
            c.settings.rules.trusted_account_ids,
            vec!["444455556666".to_string()]
        );
        assert_eq!(
            c.settings.rules.trusted_org_ids,
            vec!["o-a1b2c3d4e5".to_string(), "o-0123456789abcdef".to_string()]
        );
    }

    #[test]
    fn security_hub_is_off_by_default_and_needs_the_state_table() {
        let off = load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "off")]).unwrap();
        assert!(!off.settings.security_hub);
        let e = load(&[
            ("FINDINGS_TOPIC_ARN", TOPIC),
            ("REMEDIATION", "off"),
            ("SECURITY_HUB", "on"),
        ])
        .unwrap_err();
        assert_eq!(e.var(), "STATE_TABLE");
        assert!(
            e.message()
                .starts_with("is required when SECURITY_HUB is on"),
            "{e}"
        );
        let on = load(&[
            ("FINDINGS_TOPIC_ARN", TOPIC),
            ("REMEDIATION", "off"),
            ("SECURITY_HUB", "ON"),
            ("STATE_TABLE", "replica-auditor-state"),
        ])
        .unwrap();
        assert!(on.settings.security_hub);
        let bad = load(&[
            ("FINDINGS_TOPIC_ARN", TOPIC),
            ("REMEDIATION", "off"),
            ("SECURITY_HUB", "yes"),
        ])
        .unwrap_err();
        assert_eq!(bad.var(), "SECURITY_HUB");
    }

    #[test]
    fn the_state_table_is_required_only_when_remediation_is_on() {
        // REMEDIATION=on asked for without its table: a start-up error.
        {
            let e = load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "on")]).unwrap_err();
            assert_eq!(e.var(), "STATE_TABLE", "{e}");
            assert!(
                e.to_string().starts_with(
                    "configuration error in STATE_TABLE: is required when REMEDIATION is on"
                ),
                "{e}"
            );
        }
        // Unset without a table (the bare binary, cargo-lambda's deploy):
        // report only, with a note for the logs; unset with a table: on.
        for unset in [&[][..], &[("REMEDIATION", " ")][..]] {
            let mut vars = vec![("FINDINGS_TOPIC_ARN", TOPIC)];
            vars.extend_from_slice(unset);
            let c = load(&vars).unwrap();
            assert_eq!(c.settings.remediation.mode, RemediationMode::Off);
            assert_eq!(c.settings.notes, vec![REMEDIATION_OFF_NOTE.to_string()]);
        }
        let c = load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("STATE_TABLE", "t-1")]).unwrap();
        assert_eq!(c.settings.remediation.mode, RemediationMode::On);
        assert!(c.settings.notes.is_empty());
        for mode in ["dry-run", "off"] {
            let c = load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", mode)]).unwrap();
            assert_eq!(c.settings.remediation.state_table, None);
        }
        // A table ARN: a table shared by the stacks of several Regions.
        let c = load(&[
            ("FINDINGS_TOPIC_ARN", TOPIC),
            (
                "STATE_TABLE",
                "arn:aws:dynamodb:us-west-2:111122223333:table/replica-auditor-state",
            ),
            ("REMEDIATION_WRITES_PER_SECOND", "25"),
        ])
        .unwrap();
        assert_eq!(
            c.settings.remediation.state_table,
            Some(StateTable {
                name: "replica-auditor-state".into(),
                region: Some("us-west-2".into())
            })
        );
        assert_eq!(c.settings.remediation.writes_per_second, 25);
    }

    #[test]
    fn bad_values_name_the_variable() {
        // (variables besides the topic, the variable named); None: no topic.
        let cases: [(&[(&str, &str)], &str); 20] = [
            (&[("STATE_TABLE", "a b")], "STATE_TABLE"),
            (&[("STATE_TABLE", "arn:aws:s3:::bucket")], "STATE_TABLE"),
            (
                &[("STATE_TABLE", "t1"), ("REMEDIATION", "dry-run")],
                "STATE_TABLE",
            ),
            (
                &[
                    ("STATE_TABLE", "state"),
                    ("REMEDIATION_WRITES_PER_SECOND", "0"),
                ],
                "REMEDIATION_WRITES_PER_SECOND",
            ),
            (
                &[
                    ("STATE_TABLE", "state"),
                    ("REMEDIATION_WRITES_PER_SECOND", "50"),
                ],
                "REMEDIATION_WRITES_PER_SECOND",
            ),
            (&[("FINDINGS_TOPIC_ARN", "")], "FINDINGS_TOPIC_ARN"),
            (
                &[("FINDINGS_TOPIC_ARN", "arn:aws:sqs:us-east-1:111122223333:q")],
                "FINDINGS_TOPIC_ARN",
            ),
            (&[("MIN_SEVERITY", "urgent")], "MIN_SEVERITY"),
            (
                &[("REQUIRE_CUSTOMER_MANAGED_KEY", "yes")],
                "REQUIRE_CUSTOMER_MANAGED_KEY",
            ),
            (&[("ALLOWED_REGIONS", "us-east-1,Mars")], "ALLOWED_REGIONS"),
            (&[("REQUIRED_REGIONS", "us_east_1")], "REQUIRED_REGIONS"),
            (
                &[
                    ("ALLOWED_REGIONS", "us-east-1"),
                    ("REQUIRED_REGIONS", "eu-west-1"),
                ],
                "REQUIRED_REGIONS",
            ),
            (&[("TRUSTED_ACCOUNT_IDS", "12345")], "TRUSTED_ACCOUNT_IDS"),
            (&[("TRUSTED_ORG_IDS", "o-abc")], "TRUSTED_ORG_IDS"),
            (&[("TRUSTED_ORG_IDS", "o-A1B2C3D4E5")], "TRUSTED_ORG_IDS"),
            (&[("REMEDIATION", "maybe")], "REMEDIATION"),
            (&[("RETRY_VERIFY_SECONDS", "soon")], "RETRY_VERIFY_SECONDS"),
            (&[("RETRY_MAX_ATTEMPTS", "9")], "RETRY_MAX_ATTEMPTS"),
            (&[("ALLOW_FORCE_OVERWRITE", "yes")], "ALLOW_FORCE_OVERWRITE"),
            (&[("AUDITOR_ROLE_ARN", "auditor")], "AUDITOR_ROLE_ARN"),
        ];
        for (vars, var) in cases {
            let mut all = vec![("FINDINGS_TOPIC_ARN", TOPIC)];
            all.extend_from_slice(vars);
            let e = load(&all).unwrap_err();
            assert_eq!(e.var(), var, "{e}");
            assert!(e.to_string().contains(var));
        }
        assert_eq!(
            load(&[
                ("ALLOWED_REGIONS", "us-east-1"),
                ("REQUIRED_REGIONS", "eu-west-1"),
                ("FINDINGS_TOPIC_ARN", TOPIC)
            ])
            .unwrap_err()
            .to_string(),
            "configuration error in REQUIRED_REGIONS: eu-west-1 is required but not in ALLOWED_REGIONS"
        );
    }

    #[test]
    fn the_org_sweep_needs_its_queue_and_the_state_table() {
        let off = [("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "off")];
        let s = load(&off).unwrap().settings.sweep;
        assert_eq!(
            (s.queue, s.max_receive_count),
            (None, 3),
            "no queue: today's sweep"
        );
        let url = "https://sqs.eu-west-1.amazonaws.com/111122223333/replica-auditor-sweep";
        let e = load(&[off[0], off[1], ("SWEEP_QUEUE_URL", url)]).unwrap_err();
        assert_eq!(e.var(), "STATE_TABLE", "{e}");
        assert!(e.message().contains("SWEEP_QUEUE_URL"), "{e}");
        let c = load(&[
            off[0],
            off[1],
            ("SWEEP_QUEUE_URL", url),
            ("STATE_TABLE", "replica-auditor-state"),
            ("SWEEP_MAX_RECEIVE_COUNT", "5"),
        ])
        .unwrap();
        let q = c.settings.sweep.queue.unwrap();
        assert_eq!(
            (q.url.as_str(), q.region.as_deref()),
            (url, Some("eu-west-1"))
        );
        assert_eq!(c.settings.sweep.max_receive_count, 5);
        // Another endpoint's URL (an emulator's) has no Region: the function's.
        let local = "http://127.0.0.1:5000/123456789012/sweep";
        let c = load(&[off[0], ("SWEEP_QUEUE_URL", local), ("STATE_TABLE", "t-1")]).unwrap();
        assert_eq!(c.settings.sweep.queue.unwrap().region, None);
        for bad in [
            "sqs.us-east-1.amazonaws.com/111122223333/q",
            "https://sqs.us-east-1.amazonaws.com/1111/q",
            "https://sqs.us-east-1.amazonaws.com/111122223333/q/extra",
            "https://sqs.us-east-1.amazonaws.com/111122223333/bad name",
        ] {
            let e = load(&[off[0], ("SWEEP_QUEUE_URL", bad), ("STATE_TABLE", "t-1")]).unwrap_err();
            assert_eq!(e.var(), "SWEEP_QUEUE_URL", "{bad}: {e}");
        }
        for bad in ["0", "1001", "x"] {
            let e = load(&[off[0], off[1], ("SWEEP_MAX_RECEIVE_COUNT", bad)]).unwrap_err();
            assert_eq!(e.var(), "SWEEP_MAX_RECEIVE_COUNT");
        }
    }
}
