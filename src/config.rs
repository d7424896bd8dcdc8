//! Configuration from the environment, validated once at cold start.
//! A bad value is a start-up error that names the variable.

use std::collections::BTreeSet;

pub use crate::arn::topic_region;
use crate::arn::{Arn, TableArn, is_account_id, is_region_name, is_sns_topic_arn, parse_table_arn};
use crate::model::Severity;
pub use crate::model::{
    DEFAULT_WRITES_PER_SECOND, Remediation, RemediationMode, Rules, StateTable,
    WRITES_PER_SECOND_RANGE, split_list,
};

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("configuration error in {var}: {message}")]
pub struct ConfigError {
    pub var: &'static str,
    pub message: String,
}

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

/// The org sweep's queue.
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

    /// Read the configuration through `get` (tests pass a map).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let err = |var: &'static str, message: String| ConfigError { var, message };
        let topic = get("FINDINGS_TOPIC_ARN")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                err(
                    "FINDINGS_TOPIC_ARN",
                    "is required (the SNS topic that receives finding reports)".into(),
                )
            })?;
        if !is_sns_topic_arn(&topic) {
            return Err(err(
                "FINDINGS_TOPIC_ARN",
                format!(
                    "{topic:?} is not an SNS topic ARN (arn:PARTITION:sns:REGION:ACCOUNT:NAME)"
                ),
            ));
        }
        let chat_topic_arn = match get("CHAT_TOPIC_ARN")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
        {
            None => None,
            Some(t) if is_sns_topic_arn(&t) && !t.ends_with(".fifo") => Some(t),
            Some(t) => {
                return Err(err(
                    "CHAT_TOPIC_ARN",
                    format!(
                        "{t:?} is not a standard SNS topic ARN (Amazon Q Developer in chat applications does not read FIFO topics)"
                    ),
                ));
            }
        };
        Ok(Config {
            findings_topic_arn: topic,
            chat_topic_arn,
            settings: Settings::from_lookup(get)?,
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
        let err = |var: &'static str, message: String| ConfigError { var, message };
        let mut notes = Vec::new();
        let min_severity = match get("MIN_SEVERITY").filter(|s| !s.trim().is_empty()) {
            None => Severity::Low,
            Some(s) => s.parse().map_err(|m| err("MIN_SEVERITY", m))?,
        };
        let require_customer_managed_key = boolean(&get, "REQUIRE_CUSTOMER_MANAGED_KEY")?;
        let regions = |var: &'static str| -> Result<BTreeSet<String>, ConfigError> {
            let list = split_list(get(var));
            match list.iter().find(|r| !is_region_name(r)) {
                Some(bad) => Err(err(
                    var,
                    format!("{bad:?} is not a Region name like us-east-1"),
                )),
                None => Ok(list.into_iter().collect()),
            }
        };
        let allowed_regions = regions("ALLOWED_REGIONS")?;
        let required_regions = regions("REQUIRED_REGIONS")?;
        if let Some(r) = required_regions
            .iter()
            .find(|r| !allowed_regions.is_empty() && !allowed_regions.contains(*r))
        {
            return Err(err(
                "REQUIRED_REGIONS",
                format!("{r} is required but not in ALLOWED_REGIONS"),
            ));
        }
        let trusted_account_ids = split_list(get("TRUSTED_ACCOUNT_IDS"));
        if let Some(bad) = trusted_account_ids.iter().find(|a| !is_account_id(a)) {
            return Err(err(
                "TRUSTED_ACCOUNT_IDS",
                format!("{bad:?} is not a 12-digit account id"),
            ));
        }
        let trusted_org_ids = split_list(get("TRUSTED_ORG_IDS"));
        if let Some(bad) = trusted_org_ids
            .iter()
            .find(|o| !crate::policy::is_org_id(o))
        {
            return Err(err(
                "TRUSTED_ORG_IDS",
                format!(
                    "{bad:?} is not an organisation id (o- and 10 to 32 lower-case letters or digits)"
                ),
            ));
        }
        let remediation = Remediation {
            mode: match get("REMEDIATION")
                .map(|s| s.trim().to_ascii_lowercase())
                .as_deref()
            {
                Some("on") => RemediationMode::On,
                // Unset: on when remediation has what it needs (the
                // state table of its leases), else report only. The
                // template sets both; the bare binary is safe without them.
                None | Some("") => match get("STATE_TABLE").filter(|t| !t.trim().is_empty()) {
                    Some(_) => RemediationMode::On,
                    None => {
                        notes.push(REMEDIATION_OFF_NOTE.to_string());
                        RemediationMode::Off
                    }
                },
                Some("dry-run") => RemediationMode::DryRun,
                Some("off") => RemediationMode::Off,
                Some(other) => {
                    return Err(err(
                        "REMEDIATION",
                        format!("{other:?} is not on, dry-run or off"),
                    ));
                }
            },
            verify: std::time::Duration::from_secs(number(
                &get,
                "RETRY_VERIFY_SECONDS",
                20,
                0..=600,
            )?),
            allow_force_overwrite: boolean(&get, "ALLOW_FORCE_OVERWRITE")?,
            max_attempts: number(&get, "RETRY_MAX_ATTEMPTS", 1, 0..=5)? as u32,
            auditor_role_arn: match get("AUDITOR_ROLE_ARN")
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
            {
                None => None,
                Some(a) if Arn::parse(&a).is_some() => Some(a),
                Some(a) => return Err(err("AUDITOR_ROLE_ARN", format!("{a:?} is not an IAM ARN"))),
            },
            state_table: state_table(get("STATE_TABLE"))?,
            writes_per_second: number(
                &get,
                "REMEDIATION_WRITES_PER_SECOND",
                DEFAULT_WRITES_PER_SECOND,
                WRITES_PER_SECOND_RANGE,
            )? as u32,
        };
        if remediation.mode == RemediationMode::On && remediation.state_table.is_none() {
            return Err(err(
                "STATE_TABLE",
                "is required when REMEDIATION is on (the DynamoDB table that holds the remediation leases, so that one retry per secret and Region runs at a time); set it, or set REMEDIATION to dry-run or off".into(),
            ));
        }
        let security_hub = match get("SECURITY_HUB")
            .map(|s| s.trim().to_ascii_lowercase())
            .as_deref()
        {
            None | Some("") | Some("off") => false,
            Some("on") => true,
            Some(other) => {
                return Err(err("SECURITY_HUB", format!("{other:?} is not on or off")));
            }
        };
        if security_hub && remediation.state_table.is_none() {
            return Err(err(
                "STATE_TABLE",
                "is required when SECURITY_HUB is on (the DynamoDB table that keeps each secret's active Security Hub findings, so that fixed problems are resolved there); set it, or set SECURITY_HUB to off".into(),
            ));
        }
        if get("SWEEP_QUEUE_URL").is_some_and(|u| !u.trim().is_empty())
            && remediation.state_table.is_none()
        {
            return Err(err(
                "STATE_TABLE",
                "is required when SWEEP_QUEUE_URL is set (the org sweep counts its cells there, so that one summary is published when the last is done)".into(),
            ));
        }
        Ok(Settings {
            notes,
            security_hub,
            min_severity,
            rules: Rules {
                allowed_regions,
                required_regions,
                require_customer_managed_key,
                trusted_account_ids,
                trusted_org_ids,
            },
            remediation,
            sweep: Sweep {
                regions: {
                    let list = split_list(get("SWEEP_REGIONS"));
                    if let Some(bad) = list.iter().find(|r| !is_region_name(r)) {
                        return Err(err(
                            "SWEEP_REGIONS",
                            format!("{bad:?} is not a Region name like us-east-1"),
                        ));
                    }
                    list
                },
                concurrency: number(
                    &get,
                    "SWEEP_CONCURRENCY",
                    DEFAULT_SWEEP_CONCURRENCY,
                    1..=256,
                )? as usize,
                queue: sweep_queue(get("SWEEP_QUEUE_URL"))?,
                // SQS allows a maxReceiveCount of 1 to 1,000.
                max_receive_count: number(
                    &get,
                    "SWEEP_MAX_RECEIVE_COUNT",
                    DEFAULT_MAX_RECEIVE_COUNT,
                    1..=1000,
                )? as u32,
                policy_refresh: number(
                    &get,
                    "SWEEP_POLICY_REFRESH",
                    DEFAULT_POLICY_REFRESH,
                    1..=1000,
                )? as u32,
            },
            accounts: Accounts {
                member_role_name: match get("MEMBER_ROLE_NAME")
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                {
                    None => crate::aws::DEFAULT_MEMBER_ROLE_NAME.to_string(),
                    Some(name) if is_role_name(&name) => name,
                    Some(name) => {
                        return Err(err(
                            "MEMBER_ROLE_NAME",
                            format!(
                                "{name:?} is not an IAM role name (1 to 64 of a-z, A-Z, 0-9 and +=,.@_-)"
                            ),
                        ));
                    }
                },
                only: {
                    let list = split_list(get("ACCOUNT_IDS"));
                    if let Some(bad) = list.iter().find(|a| !is_account_id(a)) {
                        return Err(err(
                            "ACCOUNT_IDS",
                            format!("{bad:?} is not a 12-digit account id"),
                        ));
                    }
                    list
                },
            },
            metrics: match get("METRICS")
                .map(|s| s.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("") | Some("on") => MetricsOut::Stdout,
                Some("off") => MetricsOut::Off,
                Some(other) => return Err(err("METRICS", format!("{other:?} is not on or off"))),
            },
        })
    }
}

/// STATE_TABLE: a DynamoDB table name, or a table ARN
/// (`arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME`); absent or empty is none.
fn state_table(raw: Option<String>) -> Result<Option<StateTable>, ConfigError> {
    let Some(raw) = raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = |why: &str| ConfigError {
        var: "STATE_TABLE",
        message: format!("{raw:?} {why}"),
    };
    let (name, region) = match raw.strip_prefix("arn:") {
        Some(_) => match parse_table_arn(&raw) {
            Some(TableArn::Table { region, name }) => (name.to_string(), Some(region.to_string())),
            Some(TableArn::NotATable) => return Err(bad("is not a DynamoDB table ARN")),
            None => {
                return Err(bad(
                    "is not a DynamoDB table ARN (arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME)",
                ));
            }
        },
        None => (raw.clone(), None),
    };
    // DynamoDB table names: 3 to 255 of a-z A-Z 0-9 _ - .
    let valid = (3..=255).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.');
    if !valid {
        return Err(bad(
            "is not a DynamoDB table name (3 to 255 of a-z, A-Z, 0-9, _, - and .) or table ARN",
        ));
    }
    Ok(Some(StateTable { name, region }))
}

/// SWEEP_QUEUE_URL: an SQS queue URL (`https://sqs.REGION.amazonaws.com/ACCOUNT/NAME`,
/// or another endpoint's `http(s)://HOST/ACCOUNT/NAME`); absent or empty is none.
fn sweep_queue(raw: Option<String>) -> Result<Option<SweepQueue>, ConfigError> {
    let Some(url) = raw.map(|s| s.trim().to_string()).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let bad = || ConfigError {
        var: "SWEEP_QUEUE_URL",
        message: format!(
            "{url:?} is not an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME)"
        ),
    };
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(bad)?;
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
            Ok(Some(SweepQueue {
                url: url.clone(),
                region,
            }))
        }
        _ => Err(bad()),
    }
}

/// An IAM role name: 1 to 64 of letters, digits and `+=,.@_-`.
fn is_role_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
}

/// A `true`/`false` variable; absent or empty is false.
fn boolean(get: &impl Fn(&str) -> Option<String>, var: &'static str) -> Result<bool, ConfigError> {
    match get(var).map(|s| s.trim().to_ascii_lowercase()).as_deref() {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(other) => Err(ConfigError {
            var,
            message: format!("{other:?} is not true or false"),
        }),
    }
}

/// A whole number within `range`; absent or empty is `default`.
fn number(
    get: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    range: std::ops::RangeInclusive<u64>,
) -> Result<u64, ConfigError> {
    let Some(raw) = get(var)
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
    else {
        return Ok(default);
    };
    match raw.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(n),
        _ => Err(ConfigError {
            var,
            message: format!(
                "{raw:?} is not a whole number from {} to {}",
                range.start(),
                range.end()
            ),
        }),
    }
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
        assert_eq!(bad.unwrap_err().var, "MIN_SEVERITY");
        assert_eq!(
            load(&[("REMEDIATION", "off")]).unwrap_err().var,
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
        assert_eq!(c.settings.rules, Rules::default());
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
        assert_eq!(m(&[("METRICS", "yes")]).unwrap_err().var, "METRICS");
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
                a(&[("MEMBER_ROLE_NAME", bad)]).unwrap_err().var,
                "MEMBER_ROLE_NAME"
            );
        }
        assert_eq!(
            a(&[("ACCOUNT_IDS", "1111")]).unwrap_err().var,
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
            assert_eq!(e.var, "CHAT_TOPIC_ARN", "{bad}");
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
        assert_eq!(e.var, "STATE_TABLE");
        assert!(
            e.message.starts_with("is required when SECURITY_HUB is on"),
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
        assert_eq!(bad.var, "SECURITY_HUB");
    }

    #[test]
    fn the_state_table_is_required_only_when_remediation_is_on() {
        // REMEDIATION=on asked for without its table: a start-up error.
        {
            let e = load(&[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "on")]).unwrap_err();
            assert_eq!(e.var, "STATE_TABLE", "{e}");
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
        let cases: [(&[(&str, &str)], &str); 20] = [
            (
                &[("FINDINGS_TOPIC_ARN", TOPIC), ("STATE_TABLE", "a b")],
                "STATE_TABLE",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("STATE_TABLE", "arn:aws:s3:::bucket"),
                ],
                "STATE_TABLE",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("STATE_TABLE", "t1"),
                    ("REMEDIATION", "dry-run"),
                ],
                "STATE_TABLE",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("STATE_TABLE", "state"),
                    ("REMEDIATION_WRITES_PER_SECOND", "0"),
                ],
                "REMEDIATION_WRITES_PER_SECOND",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("STATE_TABLE", "state"),
                    ("REMEDIATION_WRITES_PER_SECOND", "50"),
                ],
                "REMEDIATION_WRITES_PER_SECOND",
            ),
            (&[], "FINDINGS_TOPIC_ARN"),
            (
                &[("FINDINGS_TOPIC_ARN", "arn:aws:sqs:us-east-1:111122223333:q")],
                "FINDINGS_TOPIC_ARN",
            ),
            (
                &[("FINDINGS_TOPIC_ARN", TOPIC), ("MIN_SEVERITY", "urgent")],
                "MIN_SEVERITY",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("REQUIRE_CUSTOMER_MANAGED_KEY", "yes"),
                ],
                "REQUIRE_CUSTOMER_MANAGED_KEY",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("ALLOWED_REGIONS", "us-east-1,Mars"),
                ],
                "ALLOWED_REGIONS",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("REQUIRED_REGIONS", "us_east_1"),
                ],
                "REQUIRED_REGIONS",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("ALLOWED_REGIONS", "us-east-1"),
                    ("REQUIRED_REGIONS", "eu-west-1"),
                ],
                "REQUIRED_REGIONS",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("TRUSTED_ACCOUNT_IDS", "12345"),
                ],
                "TRUSTED_ACCOUNT_IDS",
            ),
            (
                &[("FINDINGS_TOPIC_ARN", TOPIC), ("TRUSTED_ORG_IDS", "o-abc")],
                "TRUSTED_ORG_IDS",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("TRUSTED_ORG_IDS", "o-A1B2C3D4E5"),
                ],
                "TRUSTED_ORG_IDS",
            ),
            (
                &[("FINDINGS_TOPIC_ARN", TOPIC), ("REMEDIATION", "maybe")],
                "REMEDIATION",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("RETRY_VERIFY_SECONDS", "soon"),
                ],
                "RETRY_VERIFY_SECONDS",
            ),
            (
                &[("FINDINGS_TOPIC_ARN", TOPIC), ("RETRY_MAX_ATTEMPTS", "9")],
                "RETRY_MAX_ATTEMPTS",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("ALLOW_FORCE_OVERWRITE", "yes"),
                ],
                "ALLOW_FORCE_OVERWRITE",
            ),
            (
                &[
                    ("FINDINGS_TOPIC_ARN", TOPIC),
                    ("AUDITOR_ROLE_ARN", "auditor"),
                ],
                "AUDITOR_ROLE_ARN",
            ),
        ];
        for (vars, var) in cases {
            let e = load(vars).unwrap_err();
            assert_eq!(e.var, var, "{e}");
            assert!(e.to_string().contains(var));
        }
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
        assert_eq!(e.var, "STATE_TABLE", "{e}");
        assert!(e.message.contains("SWEEP_QUEUE_URL"), "{e}");
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
            assert_eq!(e.var, "SWEEP_QUEUE_URL", "{bad}: {e}");
        }
        for bad in ["0", "1001", "x"] {
            let e = load(&[off[0], off[1], ("SWEEP_MAX_RECEIVE_COUNT", bad)]).unwrap_err();
            assert_eq!(e.var, "SWEEP_MAX_RECEIVE_COUNT");
        }
    }
}
