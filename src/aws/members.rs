//! Credentials in the member accounts: the member role (MEMBER_ROLE_NAME),
//! assumed through the Regional STS endpoint of the function's own Region
//! and kept per account until shortly before it expires, so a warm
//! container assumes each member role about once an hour, not once per
//! event.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{self, ProvideCredentials, error::CredentialsError};

use super::AwsError;

/// The member role's name when MEMBER_ROLE_NAME is not set (member.yaml's default).
pub const DEFAULT_MEMBER_ROLE_NAME: &str = "ReplicaAuditorMember";

/// The session name every member-role session carries: CloudTrail shows
/// it in `userIdentity.arn` (the loop guard reads the role, not this).
pub const SESSION_NAME: &str = "replica-auditor";

/// Credentials are renewed this long before they expire, so no call is
/// signed with credentials that lapse in flight (the SDK's own lazy cache
/// uses a similar buffer).
const RENEW_BEFORE: Duration = Duration::from_secs(5 * 60);

/// The member role of one account, and its cached credentials.
#[derive(Clone, Debug)]
pub struct MemberCredentials {
    sts: aws_sdk_sts::Client,
    role_arn: String,
    /// The STS client's Region (errors name it).
    region: String,
    cached: Arc<tokio::sync::Mutex<Option<Credentials>>>,
}

impl MemberCredentials {
    pub fn new(sts: aws_sdk_sts::Client, role_arn: String, region: String) -> MemberCredentials {
        MemberCredentials {
            sts,
            role_arn,
            region,
            cached: Arc::default(),
        }
    }

    /// Credentials valid for at least [`RENEW_BEFORE`]: the cached ones, or
    /// a new AssumeRole. Concurrent callers wait for one AssumeRole.
    pub async fn ensure(&self) -> Result<Credentials, AwsError> {
        let mut cached = self.cached.lock().await;
        if let Some(c) = cached.as_ref().filter(|c| fresh(c, SystemTime::now())) {
            return Ok(c.clone());
        }
        let out = super::boxed(
            self.sts
                .assume_role()
                .role_arn(&self.role_arn)
                .role_session_name(SESSION_NAME)
                .send(),
        )
        .await
        .map_err(|e| AwsError::from_sdk("sts:AssumeRole", &self.region, e).about(&self.role_arn))?;
        let Some(c) = out.credentials() else {
            return Err(AwsError::Service {
                call: "sts:AssumeRole",
                region: self.region.clone(),
                code: "NoCredentials".into(),
                message: format!("{} returned no credentials", self.role_arn),
            });
        };
        let creds = Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            SystemTime::try_from(*c.expiration()).ok(),
            "ReplicaAuditorMember",
        );
        *cached = Some(creds.clone());
        Ok(creds)
    }
}

/// Whether `c` stays valid for [`RENEW_BEFORE`] from `now`.
fn fresh(c: &Credentials, now: SystemTime) -> bool {
    c.expiry().is_none_or(|at| at > now + RENEW_BEFORE)
}

impl ProvideCredentials for MemberCredentials {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            self.ensure()
                .await
                .map_err(CredentialsError::provider_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_renewed_five_minutes_before_they_expire() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let expiring = |in_s: u64| {
            Credentials::new(
                "AKID",
                "secret",
                None,
                Some(now + Duration::from_secs(in_s)),
                "t",
            )
        };
        assert!(fresh(&expiring(3600), now));
        assert!(fresh(&expiring(301), now));
        assert!(!fresh(&expiring(300), now));
        assert!(!fresh(&expiring(10), now));
        assert!(fresh(&Credentials::new("A", "s", None, None, "t"), now));
    }
}
