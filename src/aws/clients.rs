//! SDK clients, built once per cold start from one shared configuration
//! and cached per Region: an invocation never builds a client that an
//! earlier one already built.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;

use super::members::{DEFAULT_MEMBER_ROLE_NAME, MemberCredentials};

/// The HTTPS client every AWS client of the process shares: rustls on
/// ring. One client, so the trusted certificates (SSL_CERT_FILE or the
/// system's) are loaded once and its connectors are built once per
/// timeout setting, not once per service client and Region. Ring, because
/// the SDK's default TLS provider, aws-lc, seeds its random generator from
/// CPU jitter entropy at the first handshake: measured with perf at about
/// 35 ms of CPU in a cold start over TLS, three quarters of it, which at
/// 128 MB's CPU share is half a second (`make bench-share`, figure 8).
pub fn http_client() -> aws_sdk_sts::config::SharedHttpClient {
    use aws_smithy_http_client::tls;
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(
            tls::rustls_provider::CryptoMode::Ring,
        ))
        .build_https()
}

/// The clients for one Region.
#[derive(Clone, Debug)]
pub struct RegionClients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub kms: aws_sdk_kms::Client,
}

/// Whose credentials a pooled client uses.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// The function's own credentials (its execution role).
    Own,
    /// A member account (12 digits), through its member role.
    Member(String),
}

/// All AWS clients of the function.
#[derive(Clone, Debug)]
pub struct AwsClients {
    base: SdkConfig,
    /// The account these clients' Secrets Manager, KMS and replication
    /// calls act in ([`AwsClients::in_account`] gives the others). SNS,
    /// Organizations and the state table always use the own credentials.
    acting: Account,
    /// The member roles' credentials, per account, shared by every clone.
    members: Arc<Mutex<HashMap<String, MemberCredentials>>>,
    /// MEMBER_ROLE_NAME: the role assumed in a member account.
    member_role_name: String,
    /// The function's own account, once known (from its identity at cold
    /// start, else asked of STS on the first event from any account).
    own_account: Arc<tokio::sync::OnceCell<String>>,
    /// Secrets Manager and KMS clients, per account and Region.
    regions: Arc<Mutex<HashMap<(Account, String), RegionClients>>>,
    sns: aws_sdk_sns::Client,
    /// STATE_TABLE: (table name, its Region), and its client once built.
    state_table: Option<(String, String)>,
    dynamodb: Arc<Mutex<Option<aws_sdk_dynamodb::Client>>>,
    organizations: aws_sdk_organizations::Client,
}

/// Where AWS is, on top of the standard chain (environment, profile,
/// SSO, instance or function role): what the command line's `--profile`,
/// `--region`, `--endpoint-url` and `--role-arn` say. The Lambda gives
/// none of them.
#[derive(Debug, Clone, Default)]
pub struct Connection {
    /// A named profile of ~/.aws/config.
    pub profile: Option<String>,
    /// The own Region (else AWS_REGION or the profile's).
    pub region: Option<String>,
    /// One endpoint for every AWS call (e.g. a local emulator).
    pub endpoint_url: Option<String>,
    /// A role assumed first, with the credentials found.
    pub role_arn: Option<String>,
}

/// The one SDK configuration of the process: the standard chain
/// (environment, profile, `AWS_ENDPOINT_URL` and
/// `AWS_ENDPOINT_URL_<SERVICE>`, credentials) with `conn` on top, the
/// shared HTTPS client and the SDK's standard retry mode; then the role to
/// assume, if any.
async fn sdk_config(conn: &Connection) -> SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .http_client(http_client())
        .retry_config(RetryConfig::standard().with_max_attempts(3));
    if let Some(p) = &conn.profile {
        loader = loader.profile_name(p);
    }
    if let Some(r) = &conn.region {
        loader = loader.region(aws_config::Region::new(r.clone()));
    }
    if let Some(e) = &conn.endpoint_url {
        loader = loader.endpoint_url(e);
    }
    let base = loader.load().await;
    let Some(role) = &conn.role_arn else {
        return base;
    };
    let provider = aws_config::sts::AssumeRoleProvider::builder(role.clone())
        .configure(&base)
        .session_name("replica-auditor-cli")
        .build()
        .await;
    base.into_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            provider,
        ))
        .build()
}

impl AwsClients {
    /// The clients of both binaries: the SDK configuration `conn` gives
    /// ([`Connection::default`]: the standard chain alone). The SNS client
    /// talks to `topic_region` (the findings topic's own Region), which
    /// may differ from the function's.
    pub async fn connect(conn: &Connection, topic_region: Option<&str>) -> AwsClients {
        Self::from_config(sdk_config(conn).await, topic_region)
    }

    pub fn from_config(base: SdkConfig, topic_region: Option<&str>) -> AwsClients {
        let mut sns_conf = aws_sdk_sns::config::Builder::from(&base);
        if let Some(r) = topic_region {
            sns_conf = sns_conf.region(aws_config::Region::new(r.to_string()));
        }
        let sns = aws_sdk_sns::Client::from_conf(sns_conf.build());
        // Built here, but it makes no call until the first invocation asks.
        let organizations = aws_sdk_organizations::Client::new(&base);
        AwsClients {
            base,
            acting: Account::Own,
            members: Arc::default(),
            member_role_name: DEFAULT_MEMBER_ROLE_NAME.to_string(),
            own_account: Arc::default(),
            regions: Arc::default(),
            sns,
            state_table: None,
            dynamodb: Arc::default(),
            organizations,
        }
    }

    /// Assume `role_name` (MEMBER_ROLE_NAME) in the member accounts.
    pub fn with_member_role(mut self, role_name: &str) -> AwsClients {
        self.member_role_name = role_name.to_string();
        self
    }

    /// The function's own account, when already known (its identity's).
    pub fn with_own_account(self, account: Option<&str>) -> AwsClients {
        if let Some(a) = account {
            let _ = self.own_account.set(a.to_string());
        }
        self
    }

    /// The account these clients act in.
    pub fn acting(&self) -> &Account {
        &self.acting
    }

    /// Use `table` (STATE_TABLE) for the remediation leases; a table named
    /// without a Region is in the function's own.
    pub fn with_state_table(mut self, table: Option<&crate::model::StateTable>) -> AwsClients {
        self.state_table = table.map(|t| {
            let region = t.region.clone().or_else(|| self.home_region());
            (t.name.clone(), region.unwrap_or_default())
        });
        self
    }

    /// The state table's name and Region, when configured.
    pub(super) fn state_table_ref(&self) -> Option<(&str, String)> {
        self.state_table
            .as_ref()
            .map(|(name, region)| (name.as_str(), region.clone()))
    }

    /// The DynamoDB client for the state table's Region, built on first use.
    pub(super) fn dynamodb(&self, region: &str) -> aws_sdk_dynamodb::Client {
        let mut client = self.dynamodb.lock().unwrap_or_else(|p| p.into_inner());
        client
            .get_or_insert_with(|| {
                aws_sdk_dynamodb::Client::from_conf(
                    aws_sdk_dynamodb::config::Builder::from(&self.base)
                        .region(aws_config::Region::new(region.to_string()))
                        .build(),
                )
            })
            .clone()
    }

    /// The shared configuration with the acting account's credentials,
    /// for a client built per use.
    pub(super) fn acting_config(&self) -> SdkConfig {
        match &self.acting {
            Account::Own => self.base.clone(),
            Account::Member(id) => self
                .base
                .clone()
                .into_builder()
                .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
                    self.member_credentials(id),
                ))
                .build(),
        }
    }

    /// The configuration every client is built from (the own credentials).
    pub(super) fn base(&self) -> &SdkConfig {
        &self.base
    }

    /// The function's own Region, when configured.
    pub fn home_region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// The acting account's clients for `region`, built on first use and kept.
    pub fn region(&self, region: &str) -> RegionClients {
        self.clients(&self.acting, region)
    }

    /// The clients of `account` in `region`, built on first use and kept.
    pub fn clients(&self, account: &Account, region: &str) -> RegionClients {
        let mut map = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((account.clone(), region.to_string()))
            .or_insert_with(|| {
                let r = aws_config::Region::new(region.to_string());
                let mut secrets =
                    aws_sdk_secretsmanager::config::Builder::from(&self.base).region(r.clone());
                let mut kms = aws_sdk_kms::config::Builder::from(&self.base).region(r);
                if let Account::Member(id) = account {
                    let creds = self.member_credentials(id);
                    secrets = secrets.credentials_provider(creds.clone());
                    kms = kms.credentials_provider(creds);
                }
                RegionClients {
                    secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
                    kms: aws_sdk_kms::Client::from_conf(kms.build()),
                }
            })
            .clone()
    }

    /// The member role's credentials in `account`, one cache per account
    /// for the container's life.
    fn member_credentials(&self, account: &str) -> MemberCredentials {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        members
            .entry(account.to_string())
            .or_insert_with(|| {
                let region = self.home_region().unwrap_or_default();
                let partition = crate::arn::partition_of_region(&region);
                MemberCredentials::new(
                    self.sts(),
                    crate::arn::role_arn(partition, account, &self.member_role_name),
                    region,
                )
            })
            .clone()
    }

    /// An STS client in the function's own Region: the SDK uses the
    /// Regional STS endpoint, so assuming a role does not depend on
    /// us-east-1.
    fn sts(&self) -> aws_sdk_sts::Client {
        aws_sdk_sts::Client::new(&self.base)
    }

    /// The function's own account: known at cold start, or asked of STS
    /// (GetCallerIdentity) once.
    async fn own_account_id(&self) -> Result<&str, super::AwsError> {
        self.own_account
            .get_or_try_init(|| async {
                let arn = self.caller_arn().await?;
                Ok(crate::arn::Arn::parse(&arn)
                    .map(|a| a.account.to_string())
                    .unwrap_or_default())
            })
            .await
            .map(String::as_str)
    }

    /// The function's own principal ARN (STS GetCallerIdentity, which
    /// needs no IAM permission), for the remediation loop guard.
    pub async fn caller_arn(&self) -> Result<String, super::AwsError> {
        let region = self.home_region().unwrap_or_default();
        aws_sdk_sts::Client::new(&self.base)
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| super::AwsError::from_sdk("sts:GetCallerIdentity", &region, e))
            .map(|out| out.arn().unwrap_or_default().to_string())
    }

    /// How many (account, Region) pairs have clients (for tests and logs).
    pub fn cached_regions(&self) -> usize {
        self.regions.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn sns(&self) -> &aws_sdk_sns::Client {
        &self.sns
    }

    pub fn organizations(&self) -> &aws_sdk_organizations::Client {
        &self.organizations
    }
}

impl super::AccountsApi for AwsClients {
    async fn own_account(&self) -> Result<String, super::AwsError> {
        self.own_account_id().await.map(str::to_string)
    }

    async fn acting_in(&self, account: &str) -> Result<AwsClients, super::AwsError> {
        let own = self.own_account_id().await?;
        let acting = if account == own {
            Account::Own
        } else {
            self.member_credentials(account).ensure().await?;
            Account::Member(account.to_string())
        };
        Ok(AwsClients {
            acting,
            ..self.clone()
        })
    }
}
