//! Secrets Manager adapter: DescribeSecret only. The auditor never reads a
//! secret value.

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;

use aws_sdk_secretsmanager::types::ReplicaRegionType;

use super::{AwsClients, AwsError, Listed, ReplicationApi, SecretsApi};
use crate::model::{ReplicaStatus, SecretState};

impl SecretsApi for AwsClients {
    async fn list_secrets(
        &self,
        region: &str,
        next_token: Option<String>,
    ) -> Result<(Vec<Listed>, Option<String>), AwsError> {
        let out = self
            .region(region)
            .secrets
            .list_secrets()
            .max_results(100)
            .include_planned_deletion(false)
            .set_next_token(next_token)
            .send()
            .await
            .map_err(|e| AwsError::from_sdk("secretsmanager:ListSecrets", region, e))?;
        let listed = out
            .secret_list()
            .iter()
            .filter_map(|e| {
                Some(Listed {
                    arn: e.arn()?.to_string(),
                    name: e.name().unwrap_or_default().to_string(),
                    primary_region: e.primary_region().map(str::to_string),
                })
            })
            .collect();
        Ok((listed, out.next_token().map(str::to_string)))
    }

    async fn describe_secret(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<SecretState>, AwsError> {
        let client = self.region(region).secrets;
        match client.describe_secret().secret_id(secret_id).send().await {
            Ok(out) if out.deleted_date().is_some() => Ok(None),
            Ok(out) => Ok(Some(to_state(region, out))),
            Err(e) => {
                let err = AwsError::from_sdk("secretsmanager:DescribeSecret", region, e);
                match &err {
                    AwsError::Service { code, .. } if code == "ResourceNotFoundException" => {
                        Ok(None)
                    }
                    _ => Err(err),
                }
            }
        }
    }
}

impl ReplicationApi for AwsClients {
    async fn remove_regions(
        &self,
        region: &str,
        secret_id: &str,
        replica_region: &str,
    ) -> Result<(), AwsError> {
        self.region(region)
            .secrets
            .remove_regions_from_replication()
            .secret_id(secret_id)
            .remove_replica_regions(replica_region)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                AwsError::from_sdk("secretsmanager:RemoveRegionsFromReplication", region, e)
            })
    }

    async fn replicate_to(
        &self,
        region: &str,
        secret_id: &str,
        replica_region: &str,
        kms_key_id: Option<&str>,
        force_overwrite: bool,
    ) -> Result<(), AwsError> {
        let replica = ReplicaRegionType::builder()
            .region(replica_region)
            .set_kms_key_id(kms_key_id.map(str::to_string))
            .build();
        self.region(region)
            .secrets
            .replicate_secret_to_regions()
            .secret_id(secret_id)
            .add_replica_regions(replica)
            .force_overwrite_replica_secret(force_overwrite)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("secretsmanager:ReplicateSecretToRegions", region, e))
    }
}

fn to_state(region: &str, out: DescribeSecretOutput) -> SecretState {
    SecretState {
        arn: out.arn().unwrap_or_default().to_string(),
        name: out.name().unwrap_or_default().to_string(),
        region: region.to_string(),
        primary_region: out.primary_region().map(str::to_string),
        kms_key_id: out.kms_key_id().map(str::to_string),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        tags: out
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_string(),
                    t.value().unwrap_or_default().to_string(),
                ))
            })
            .collect(),
        replication: out
            .replication_status()
            .iter()
            .map(|r| ReplicaStatus {
                region: r.region().unwrap_or_default().to_string(),
                kms_key_id: r.kms_key_id().map(str::to_string),
                status: r.status().map(|s| s.as_str().to_string()),
                status_message: r.status_message().map(str::to_string),
            })
            .collect(),
    }
}
