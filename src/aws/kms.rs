//! KMS adapter: DescribeKey and GetKeyPolicy.

use aws_sdk_kms::types::KeyManagerType;
use replica_auditor_core::model::GapKind;

use super::{AwsClients, AwsError, KeyMeta, KeysApi};

fn not_found(err: AwsError) -> Result<(), AwsError> {
    match err.kind() {
        GapKind::NotFound => Ok(()),
        _ => Err(err),
    }
}

impl KeysApi for AwsClients {
    async fn describe_key(&self, region: &str, key_id: &str) -> Result<Option<KeyMeta>, AwsError> {
        let client = self.region(region).kms;
        match super::boxed(client.describe_key().key_id(key_id).send()).await {
            Ok(out) => Ok(out.key_metadata().map(|m| KeyMeta {
                key_id: m.key_id().to_string(),
                arn: m.arn().unwrap_or(m.key_id()).to_string(),
                state: m
                    .key_state()
                    .map(|s| s.as_str().to_string())
                    .unwrap_or_else(|| "Unknown".into()),
                aws_managed: m.key_manager() == Some(&KeyManagerType::Aws),
            })),
            Err(e) => not_found(AwsError::from_sdk("kms:DescribeKey", region, e)).map(|()| None),
        }
    }

    async fn get_key_policy(&self, region: &str, key_id: &str) -> Result<Option<String>, AwsError> {
        let client = self.region(region).kms;
        let call = client
            .get_key_policy()
            .key_id(key_id)
            .policy_name("default")
            .send();
        match super::boxed(call).await {
            Ok(out) => Ok(out.policy().map(str::to_string)),
            Err(e) => not_found(AwsError::from_sdk("kms:GetKeyPolicy", region, e)).map(|()| None),
        }
    }
}
