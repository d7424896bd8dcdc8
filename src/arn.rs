//! Amazon Resource Names: parsing and formatting the ARNs the auditor
//! reads and writes, and the checks on their Region and account fields.
//! Pure: no AWS SDK.

/// A parsed secrets manager ARN.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretArn {
    pub partition: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

/// Parse `arn:PARTITION:secretsmanager:REGION:ACCOUNT:secret:NAME`.
pub fn parse_secret_arn(s: &str) -> Option<SecretArn> {
    let mut parts = s.splitn(7, ':');
    let (arn, partition, service, region, account, kind, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    if arn != "arn" || service != "secretsmanager" || kind != "secret" || resource.is_empty() {
        return None;
    }
    if !is_region_name(region) || !is_account_id(account) {
        return None;
    }
    Some(SecretArn {
        partition: partition.to_string(),
        region: region.to_string(),
        account: account.to_string(),
        resource: resource.to_string(),
    })
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

/// The Region in an SNS topic ARN.
pub fn topic_region(arn: &str) -> Option<&str> {
    arn.split(':').nth(3).filter(|r| is_region_name(r))
}

/// `arn:PARTITION:sns:REGION:ACCOUNT:NAME`.
pub fn is_sns_topic_arn(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts[0] == "arn"
        && !parts[1].is_empty()
        && parts[2] == "sns"
        && is_region_name(parts[3])
        && is_account_id(parts[4])
        && !parts[5].is_empty()
        && parts[5]
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}
