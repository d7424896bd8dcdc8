//! Amazon Resource Names: the one place that reads and writes them. The
//! auditor meets secret ARNs (events, ListSecrets, reports), KMS key and
//! alias ARNs, IAM role and user ARNs and STS assumed-role sessions (the
//! loop guard, policies), SNS topic ARNs and DynamoDB table ARNs
//! (configuration). Pure: no AWS SDK.
//!
//! `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, where the resource may
//! itself hold colons (`secret:NAME`, whose NAME may too).

use std::fmt;

/// The six fields of an ARN, borrowed from the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    pub region: &'a str,
    pub account: &'a str,
    /// Everything after the account, colons included.
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// `arn:` and at least five more fields; nothing else is checked.
    pub fn parse(s: &'a str) -> Option<Arn<'a>> {
        match Arn::fields(s)? {
            ("arn", arn) => Some(arn),
            _ => None,
        }
    }

    /// The fields of anything shaped like an ARN (six colon-separated
    /// fields), with its first field whatever it is: a policy's condition
    /// value is judged as written, not as an ARN must be.
    pub fn fields(s: &'a str) -> Option<(&'a str, Arn<'a>)> {
        let mut parts = s.splitn(6, ':');
        let scheme = parts.next()?;
        let arn = Arn {
            partition: parts.next()?,
            service: parts.next()?,
            region: parts.next()?,
            account: parts.next()?,
            resource: parts.next()?,
        };
        Some((scheme, arn))
    }

    /// The Region field, when it is a Region name.
    pub fn region(&self) -> Option<&'a str> {
        Some(self.region).filter(|r| is_region_name(r))
    }

    /// The account field, when it is a 12-digit account id.
    pub fn account(&self) -> Option<&'a str> {
        Some(self.account).filter(|a| is_account_id(a))
    }
}

/// The partition a Region belongs to (`aws`, `aws-cn`, `aws-us-gov`).
pub fn partition_of_region(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

/// The IAM role `role_name` (no path) in `account`.
pub fn role_arn(partition: &str, account: &str, role_name: &str) -> String {
    format!("arn:{partition}:iam::{account}:role/{role_name}")
}

/// Whether `arn` is the role `role_name` (any path) in any account, or a
/// session of it (`arn:…:sts::ACCOUNT:assumed-role/ROLE/SESSION`).
pub fn is_role_or_its_session(arn: &str, role_name: &str) -> bool {
    let Some(a) = Arn::parse(arn) else {
        return false;
    };
    is_role_named(&a, role_name)
}

/// Is `arn` the role `role_name` in `account`, or a session of it? The
/// loop guard's test: a same-named role in another account is not it.
pub fn is_account_role_or_its_session(arn: &str, account: &str, role_name: &str) -> bool {
    Arn::parse(arn).is_some_and(|a| a.account == account && is_role_named(&a, role_name))
}

fn is_role_named(a: &Arn<'_>, role_name: &str) -> bool {
    match a.service {
        "iam" => a
            .resource
            .strip_prefix("role/")
            .and_then(|path_and_name| path_and_name.rsplit('/').next())
            .is_some_and(|name| name == role_name),
        "sts" => a
            .resource
            .strip_prefix("assumed-role/")
            .and_then(|rest| rest.split('/').next())
            .is_some_and(|name| name == role_name),
        _ => false,
    }
}

/// The ARN of the SQS queue at `url` in `region`: the URL's last two path
/// segments are the owning account and the queue's name
/// (`https://sqs.<Region>.amazonaws.com/<account>/<name>`, and any other
/// endpoint of the same shape).
pub fn queue_arn(url: &str, region: &str) -> Option<String> {
    let mut path = url.trim_end_matches('/').rsplit('/');
    let name = path.next().filter(|n| !n.is_empty())?;
    let account = path.next().filter(|a| is_account_id(a))?;
    Some(format!(
        "arn:{}:sqs:{region}:{account}:{name}",
        partition_of_region(region)
    ))
}

/// A parsed secrets manager ARN.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    /// The secret's name and its six-character suffix (`NAME-AbCdEf`).
    pub resource: String,
}

impl SecretArn {
    /// The same secret in another Region: replicas share the partition,
    /// account, name and suffix.
    pub fn in_region(&self, region: &str) -> SecretArn {
        SecretArn {
            region: region.to_string(),
            ..self.clone()
        }
    }
}

impl fmt::Display for SecretArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:secretsmanager:{}:{}:secret:{}",
            self.partition, self.region, self.account, self.resource
        )
    }
}

/// Parse `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`.
pub fn parse_secret_arn(s: &str) -> Option<SecretArn> {
    let arn = Arn::parse(s)?;
    let name = arn.resource.strip_prefix("secret:")?;
    if arn.service != "secretsmanager" || name.is_empty() {
        return None;
    }
    Some(SecretArn {
        partition: arn.partition.to_string(),
        region: arn.region()?.to_string(),
        account: arn.account()?.to_string(),
        resource: name.to_string(),
    })
}

/// The same secret ARN in another Region; `None` for what is not a secret ARN.
pub fn secret_arn_in_region(arn: &str, region: &str) -> Option<String> {
    Some(parse_secret_arn(arn)?.in_region(region).to_string())
}

pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// Loose Region-name check: lowercase letters, digits and dashes, e.g. `us-east-1`.
pub fn is_region_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.contains('-')
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// The Region of an SNS topic ARN.
pub fn topic_region(arn: &str) -> Option<&str> {
    Arn::parse(arn)?.region()
}

/// `arn:PARTITION:sns:REGION:ACCOUNT:NAME`, NAME of letters, digits, `-`,
/// `_` and `.` (a FIFO topic's `.fifo`).
pub fn is_sns_topic_arn(s: &str) -> bool {
    Arn::parse(s).is_some_and(|a| {
        !a.partition.is_empty()
            && a.service == "sns"
            && a.region().is_some()
            && a.account().is_some()
            && !a.resource.is_empty()
            && a.resource
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    })
}

/// A DynamoDB table ARN, `arn:PARTITION:dynamodb:REGION:ACCOUNT:table/NAME`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableArn<'a> {
    Table {
        region: &'a str,
        name: &'a str,
    },
    /// A DynamoDB ARN for something other than a table (an index, a stream).
    NotATable,
}

/// Read a DynamoDB ARN; `None` when it is not one.
pub fn parse_table_arn(s: &str) -> Option<TableArn<'_>> {
    let arn = Arn::parse(s)?;
    if arn.partition.is_empty() || arn.service != "dynamodb" {
        return None;
    }
    let region = arn.region()?;
    arn.account()?;
    Some(match arn.resource.strip_prefix("table/") {
        Some(name) => TableArn::Table { region, name },
        None => TableArn::NotATable,
    })
}

/// Who an IAM or STS ARN names, for telling whether two ARNs are the same
/// principal: an assumed-role session (`arn:aws:sts::A:assumed-role/R/S`)
/// is its role (`arn:aws:iam::A:role/path/R`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal<'a> {
    Role {
        account: &'a str,
        name: &'a str,
    },
    User {
        account: &'a str,
        name: &'a str,
    },
    /// Any other ARN (or text), compared whole.
    Other(&'a str),
}

pub fn principal(s: &str) -> Principal<'_> {
    if let Some(arn) = Arn::parse(s) {
        let account = arn.account;
        let mut segs = arn.resource.split('/');
        match (arn.service, segs.next()) {
            ("sts", Some("assumed-role")) => {
                if let Some(name) = segs.next() {
                    return Principal::Role { account, name };
                }
            }
            ("iam", Some(kind @ ("role" | "user"))) => {
                if let Some(name) = arn.resource.rsplit('/').next() {
                    return match kind {
                        "role" => Principal::Role { account, name },
                        _ => Principal::User { account, name },
                    };
                }
            }
            _ => {}
        }
    }
    Principal::Other(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_url_names_its_arn() {
        for (url, region, arn) in [
            (
                "https://sqs.eu-west-1.amazonaws.com/123456789012/sweep",
                "eu-west-1",
                Some("arn:aws:sqs:eu-west-1:123456789012:sweep"),
            ),
            (
                "http://127.0.0.1:5000/123456789012/q/",
                "us-east-1",
                Some("arn:aws:sqs:us-east-1:123456789012:q"),
            ),
            (
                "https://sqs.cn-north-1.amazonaws.com.cn/123456789012/q",
                "cn-north-1",
                Some("arn:aws-cn:sqs:cn-north-1:123456789012:q"),
            ),
            (
                "https://sqs.eu-west-1.amazonaws.com/sweep",
                "eu-west-1",
                None,
            ),
        ] {
            assert_eq!(queue_arn(url, region).as_deref(), arn, "{url}");
        }
    }

    #[test]
    fn fields_keep_the_resource_whole() {
        let a = Arn::parse("arn:aws:secretsmanager:us-east-1:111122223333:secret:a:b").unwrap();
        assert_eq!(
            (a.partition, a.service, a.region, a.account, a.resource),
            (
                "aws",
                "secretsmanager",
                "us-east-1",
                "111122223333",
                "secret:a:b"
            )
        );
        assert_eq!(Arn::parse("arn:aws:sns:us-east-1:111122223333"), None);
        assert_eq!(Arn::parse("urn:aws:sns:us-east-1:111122223333:t"), None);
        assert_eq!(
            Arn::fields("urn:aws:sns:us-east-1:111122223333:t").map(|(s, a)| (s, a.account)),
            Some(("urn", "111122223333"))
        );
    }

    #[test]
    fn secret_arns_round_trip_and_move_between_regions() {
        let s = "arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:app/db-AbCdEf";
        let a = parse_secret_arn(s).unwrap();
        assert_eq!(a.to_string(), s);
        assert_eq!(
            secret_arn_in_region(s, "cn-northwest-1").as_deref(),
            Some("arn:aws-cn:secretsmanager:cn-northwest-1:111122223333:secret:app/db-AbCdEf")
        );
        assert_eq!(secret_arn_in_region("app/db", "us-east-1"), None);
        assert!(
            parse_secret_arn("arn:aws:secretsmanager:us-east-1:111122223333:secret:").is_none()
        );
        assert!(parse_secret_arn("arn:aws:secretsmanager:us-east-1:1111:secret:a").is_none());
    }

    #[test]
    fn topics_and_tables() {
        let t = "arn:aws:sns:eu-west-1:111122223333:findings.fifo";
        assert!(is_sns_topic_arn(t));
        assert_eq!(topic_region(t), Some("eu-west-1"));
        assert!(!is_sns_topic_arn("arn:aws:sns:eu-west-1:111122223333:a:b"));
        assert!(!is_sns_topic_arn("arn::sns:eu-west-1:111122223333:t"));
        assert_eq!(
            parse_table_arn("arn:aws:dynamodb:us-east-1:111122223333:table/state"),
            Some(TableArn::Table {
                region: "us-east-1",
                name: "state"
            })
        );
        assert_eq!(
            parse_table_arn("arn:aws:dynamodb:us-east-1:111122223333:table/state/index/i"),
            Some(TableArn::Table {
                region: "us-east-1",
                name: "state/index/i"
            })
        );
        assert_eq!(
            parse_table_arn("arn:aws:dynamodb:us-east-1:111122223333:global-table/x"),
            Some(TableArn::NotATable)
        );
        assert_eq!(
            parse_table_arn("arn:aws:sns:us-east-1:111122223333:table/x"),
            None
        );
    }

    #[test]
    fn sessions_are_their_roles() {
        let role = principal("arn:aws:iam::111122223333:role/path/auditor");
        assert_eq!(
            role,
            Principal::Role {
                account: "111122223333",
                name: "auditor"
            }
        );
        assert_eq!(
            principal("arn:aws:sts::111122223333:assumed-role/auditor/i-123"),
            role
        );
        assert_eq!(
            principal("arn:aws:iam::111122223333:user/ops/alice"),
            Principal::User {
                account: "111122223333",
                name: "alice"
            }
        );
        assert_eq!(
            principal("arn:aws:sts::111122223333:assumed-role"),
            Principal::Other("arn:aws:sts::111122223333:assumed-role")
        );
    }
}
