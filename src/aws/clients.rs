//! SDK clients, built once per cold start from one shared configuration
//! and cached per Region: an invocation never builds a client that an
//! earlier one already built.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;

/// The clients for one Region.
#[derive(Clone, Debug)]
pub struct RegionClients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub kms: aws_sdk_kms::Client,
}

/// Whose credentials a pooled client uses. Today only the function's own;
/// an organisation-wide audit adds the member accounts it assumes a role
/// in, each with its own clients per Region.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// The function's own credentials (its execution role).
    Own,
}

/// All AWS clients of the function.
#[derive(Clone, Debug)]
pub struct AwsClients {
    base: SdkConfig,
    /// Secrets Manager and KMS clients, per account and Region.
    regions: Arc<Mutex<HashMap<(Account, String), RegionClients>>>,
    sns: aws_sdk_sns::Client,
    /// STATE_TABLE: (table name, its Region), and its client once built.
    state_table: Option<(String, String)>,
    dynamodb: Arc<Mutex<Option<aws_sdk_dynamodb::Client>>>,
    organizations: aws_sdk_organizations::Client,
}

impl AwsClients {
    /// Load the standard AWS configuration (environment, profile,
    /// `AWS_ENDPOINT_URL` and `AWS_ENDPOINT_URL_<SERVICE>`, credentials),
    /// with the SDK's standard retry mode.
    /// The SNS client talks to `topic_region` (the findings topic's own
    /// Region), which may differ from the function's.
    pub async fn from_env(topic_region: Option<&str>) -> AwsClients {
        let base = aws_config::from_env()
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .load()
            .await;
        Self::from_config(base, topic_region)
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
            regions: Arc::default(),
            sns,
            state_table: None,
            dynamodb: Arc::default(),
            organizations,
        }
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

    /// The shared SDK configuration (the own credentials), for adapters
    /// that build their clients per call (Security Hub).
    pub(super) fn sdk_config(&self) -> &SdkConfig {
        &self.base
    }

    /// The function's own Region, when configured.
    pub fn home_region(&self) -> Option<String> {
        self.base.region().map(|r| r.to_string())
    }

    /// The own account's clients for `region`, built on first use and kept.
    pub fn region(&self, region: &str) -> RegionClients {
        self.clients(&Account::Own, region)
    }

    /// The clients of `account` in `region`, built on first use and kept.
    pub fn clients(&self, account: &Account, region: &str) -> RegionClients {
        let mut map = self.regions.lock().unwrap_or_else(|p| p.into_inner());
        map.entry((account.clone(), region.to_string()))
            .or_insert_with(|| {
                let r = aws_config::Region::new(region.to_string());
                RegionClients {
                    secrets: aws_sdk_secretsmanager::Client::from_conf(
                        aws_sdk_secretsmanager::config::Builder::from(&self.base)
                            .region(r.clone())
                            .build(),
                    ),
                    kms: aws_sdk_kms::Client::from_conf(
                        aws_sdk_kms::config::Builder::from(&self.base)
                            .region(r)
                            .build(),
                    ),
                }
            })
            .clone()
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
