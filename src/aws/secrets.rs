//! Secrets Manager adapter: ListSecrets, DescribeSecret, GetResourcePolicy
//! and the two replication writes. The auditor never reads a secret value.

use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::types::{
    Filter, FilterNameStringType, ReplicaRegionType, SecretListEntry, Tag,
};

use super::{AwsClients, AwsError, ReplicationApi, SecretsApi};
use crate::cross_account::Links;
use crate::model::{GapKind, ReplicaStatus, SecretState};

impl SecretsApi for AwsClients {
    async fn list_secrets(
        &self,
        region: &str,
        primary_region: Option<&str>,
        next_token: Option<String>,
    ) -> Result<(Vec<SecretState>, Option<String>), AwsError> {
        let filter = primary_region.map(|p| {
            Filter::builder()
                .key(FilterNameStringType::PrimaryRegion)
                .values(p)
                .build()
        });
        let call = self
            .region(region)
            .secrets
            .list_secrets()
            .max_results(100)
            .include_planned_deletion(false)
            .set_filters(filter.map(|f| vec![f]))
            .set_next_token(next_token)
            .send();
        let out = super::boxed(call)
            .await
            .map_err(|e| AwsError::from_sdk("secretsmanager:ListSecrets", region, e))?;
        let listed = out
            .secret_list()
            .iter()
            .filter(|e| e.deleted_date().is_none())
            .filter_map(|e| listed_state(region, e))
            .collect();
        Ok((listed, out.next_token().map(str::to_string)))
    }

    async fn describe_secret(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<SecretState>, AwsError> {
        let linked = self.describe_linked(region, secret_id).await?;
        Ok(linked.map(|(state, _)| state))
    }

    async fn describe_linked(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<(SecretState, Links)>, AwsError> {
        let client = self.region(region).secrets;
        match super::cross_account::describe(&client, region, secret_id).await {
            Ok((out, _)) if out.deleted_date().is_some() => Ok(None),
            Ok((out, links)) => Ok(Some((to_state(region, out), links))),
            Err(e) => absent(e),
        }
    }

    async fn get_resource_policy(
        &self,
        region: &str,
        secret_id: &str,
    ) -> Result<Option<String>, AwsError> {
        let client = self.region(region).secrets;
        match super::boxed(client.get_resource_policy().secret_id(secret_id).send()).await {
            Ok(out) => Ok(out.resource_policy().map(str::to_string)),
            Err(e) => absent(AwsError::from_sdk(
                "secretsmanager:GetResourcePolicy",
                region,
                e,
            )),
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
        let call = self
            .region(region)
            .secrets
            .remove_regions_from_replication()
            .secret_id(secret_id)
            .remove_replica_regions(replica_region)
            .send();
        super::boxed(call).await.map(|_| ()).map_err(|e| {
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
        let call = self
            .region(region)
            .secrets
            .replicate_secret_to_regions()
            .secret_id(secret_id)
            .add_replica_regions(replica)
            .force_overwrite_replica_secret(force_overwrite)
            .send();
        super::boxed(call)
            .await
            .map(|_| ())
            .map_err(|e| AwsError::from_sdk("secretsmanager:ReplicateSecretToRegions", region, e))
    }
}

/// `Ok(None)` when the secret does not exist, else the error.
fn absent<T>(err: AwsError) -> Result<Option<T>, AwsError> {
    match err.kind() {
        GapKind::NotFound => Ok(None),
        _ => Err(err),
    }
}

/// A ListSecrets entry as the audit sees a secret; `None` without an ARN.
fn listed_state(region: &str, e: &SecretListEntry) -> Option<SecretState> {
    Some(SecretState {
        arn: e.arn()?.to_string(),
        name: e.name().unwrap_or_default().to_string(),
        region: region.to_string(),
        primary_region: e.primary_region().map(str::to_string),
        kms_key_id: e.kms_key_id().map(str::to_string),
        rotation_enabled: e.rotation_enabled().unwrap_or(false),
        tags: tag_map(e.tags()),
        replication: Vec::new(),
        last_changed: e.last_changed_date().map(|d| d.secs()),
        versions: stage_map(e.secret_versions_to_stages()),
    })
}

fn tag_map(tags: &[Tag]) -> std::collections::BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

/// VersionIdsToStages as the core keeps it: version id to its labels.
fn stage_map(
    m: Option<&std::collections::HashMap<String, Vec<String>>>,
) -> std::collections::BTreeMap<String, Vec<String>> {
    m.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn to_state(region: &str, out: DescribeSecretOutput) -> SecretState {
    SecretState {
        arn: out.arn().unwrap_or_default().to_string(),
        name: out.name().unwrap_or_default().to_string(),
        region: region.to_string(),
        primary_region: out.primary_region().map(str::to_string),
        kms_key_id: out.kms_key_id().map(str::to_string),
        rotation_enabled: out.rotation_enabled().unwrap_or(false),
        tags: tag_map(out.tags()),
        last_changed: out.last_changed_date().map(|d| d.secs()),
        versions: stage_map(out.version_ids_to_stages()),
        replication: out
            .replication_status()
            .iter()
            .map(|r| ReplicaStatus {
                region: r.region().unwrap_or_default().to_string(),
                kms_key_id: r.kms_key_id().map(str::to_string),
                status: r.status().map(|s| s.as_str().into()),
                status_message: r.status_message().map(str::to_string),
            })
            .collect(),
    }
}
