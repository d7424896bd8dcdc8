//! DescribeSecret's cross-account members, read around the SDK (issue 26).
//!
//! Secrets Manager's service model (botocore 1.44.2 and later; read from
//! botocore 1.44.8's `secretsmanager/2017-10-17/service-2.json`) adds
//! `CrossAccountPrimary` (`PrimarySecretARN`, `ReplicationStatus`,
//! `StatusMessage`) and `CrossAccountReplicas[]` (`ReplicaSecretARN`,
//! `ReplicationRoleARN`, `ReplicationStatus`, `StatusMessage`) to
//! DescribeSecret's answer. aws-sdk-secretsmanager 1.125.0 has neither, so
//! its deserialiser drops them. An interceptor on each DescribeSecret call
//! reads them from the loaded response body after deserialisation (the
//! body of a non-streaming operation is buffered), parses only those two
//! members into core types, and hands them back beside the SDK's output.
//!
//! EXIT PLAN: when the SDK gains `cross_account_primary()` and
//! `cross_account_replicas()` on `DescribeSecretOutput`, map those fields in
//! [`describe`] and delete the interceptor (this file shrinks to the
//! mapping; docs/cross-account.md). Named resource policies
//! (ListResourcePolicies, `PolicyName`) are not read: a new operation cannot
//! be made through an interceptor on an existing one without rewriting the
//! request, so they wait for the SDK.

use std::sync::{Arc, Mutex};

use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::config::interceptors::AfterDeserializationInterceptorContextRef;
use aws_sdk_secretsmanager::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use serde::Deserialize;

use super::AwsError;
use crate::cross_account::{Links, PrimaryLink, ReplicaLink};

/// DescribeSecret of `secret_id` in `region`, with its cross-account links.
pub(super) async fn describe(
    client: &Client,
    region: &str,
    secret_id: &str,
) -> Result<(DescribeSecretOutput, Links), AwsError> {
    let slot = Slot::default();
    let call = client
        .describe_secret()
        .secret_id(secret_id)
        .customize()
        .interceptor(ReadLinks(slot.clone()))
        .send();
    let out = super::boxed(call)
        .await
        .map_err(|e| AwsError::from_sdk("secretsmanager:DescribeSecret", region, e))?;
    let links = slot.0.lock().map(|mut l| l.take()).unwrap_or_default();
    Ok((out, links.unwrap_or_default()))
}

/// Where one call's interceptor leaves what it read (the last attempt's).
#[derive(Debug, Default, Clone)]
struct Slot(Arc<Mutex<Option<Links>>>);

/// Reads the cross-account members of a successful DescribeSecret answer.
#[derive(Debug)]
struct ReadLinks(Slot);

impl Intercept for ReadLinks {
    fn name(&self) -> &'static str {
        "ReadCrossAccountMembers"
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_secretsmanager::error::BoxError> {
        if context.output_or_error().is_err() {
            return Ok(());
        }
        let links = match context.response().body().bytes() {
            Some(body) => parse(body),
            None => Links {
                unreadable: Some("the response body was not loaded".into()),
                ..Links::default()
            },
        };
        if let Ok(mut slot) = self.0.0.lock() {
            *slot = Some(links);
        }
        Ok(())
    }
}

/// The two members, as the model names them; everything else is ignored.
#[derive(Deserialize)]
struct Members {
    #[serde(rename = "CrossAccountPrimary")]
    primary: Option<WirePrimary>,
    #[serde(rename = "CrossAccountReplicas")]
    replicas: Option<Vec<WireReplica>>,
}

#[derive(Deserialize)]
struct WirePrimary {
    #[serde(rename = "PrimarySecretARN")]
    primary_secret_arn: Option<String>,
    #[serde(rename = "ReplicationStatus")]
    replication_status: Option<String>,
    #[serde(rename = "StatusMessage")]
    status_message: Option<String>,
}

#[derive(Deserialize)]
struct WireReplica {
    #[serde(rename = "ReplicaSecretARN")]
    replica_secret_arn: Option<String>,
    #[serde(rename = "ReplicationRoleARN")]
    replication_role_arn: Option<String>,
    #[serde(rename = "ReplicationStatus")]
    replication_status: Option<String>,
    #[serde(rename = "StatusMessage")]
    status_message: Option<String>,
}

/// The links in a DescribeSecret body; members out of the model's shape
/// (a wrong type, an entry without its ARN) make it `unreadable`.
fn parse(body: &[u8]) -> Links {
    let unreadable = |why: String| Links {
        unreadable: Some(why),
        ..Links::default()
    };
    let members: Members = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return unreadable(format!("DescribeSecret's cross-account members: {e}")),
    };
    let primary = match members.primary {
        None => None,
        Some(WirePrimary {
            primary_secret_arn: None,
            ..
        }) => return unreadable("CrossAccountPrimary has no PrimarySecretARN".into()),
        Some(p) => Some(PrimaryLink {
            primary_arn: p.primary_secret_arn.unwrap_or_default(),
            status: p.replication_status.map(Into::into),
            status_message: p.status_message,
        }),
    };
    let mut replicas = Vec::new();
    for r in members.replicas.unwrap_or_default() {
        let Some(arn) = r.replica_secret_arn else {
            return unreadable("a CrossAccountReplicas entry has no ReplicaSecretARN".into());
        };
        replicas.push(ReplicaLink {
            replica_arn: arn,
            role_arn: r.replication_role_arn,
            status: r.replication_status.map(Into::into),
            status_message: r.status_message,
        });
    }
    Links {
        primary,
        replicas,
        unreadable: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ReplicationState;

    #[test]
    fn the_members_are_read_as_the_model_shapes_them() {
        let body = br#"{"ARN": "arn:aws:secretsmanager:us-west-2:111122223333:secret:app-AbCdEf",
            "ReplicationStatus": [],
            "CrossAccountReplicas": [{"ReplicaSecretARN": "arn:aws:secretsmanager:us-west-2:444455556666:secret:app-XyZ123",
              "ReplicationRoleARN": "arn:aws:iam::111122223333:role/replicator",
              "ReplicationStatus": "Pending"}]}"#;
        let links = parse(body);
        assert_eq!(links.unreadable, None);
        assert_eq!(links.primary, None);
        assert_eq!(
            links.replicas,
            vec![ReplicaLink {
                replica_arn: "arn:aws:secretsmanager:us-west-2:444455556666:secret:app-XyZ123"
                    .into(),
                role_arn: Some("arn:aws:iam::111122223333:role/replicator".into()),
                status: Some(ReplicationState::Pending),
                status_message: None,
            }]
        );
        let body = br#"{"CrossAccountPrimary": {"PrimarySecretARN": "arn:aws:secretsmanager:us-west-2:111122223333:secret:app-AbCdEf", "ReplicationStatus": "Detached", "StatusMessage": "stopped"}}"#;
        let p = parse(body).primary.expect("a primary");
        assert_eq!(p.status, Some(ReplicationState::Detached));
        assert_eq!(p.status_message.as_deref(), Some("stopped"));
        assert!(parse(br#"{"ARN": "x"}"#).is_empty());
    }

    #[test]
    fn members_out_of_shape_are_unreadable_not_dropped() {
        for body in [
            &br#"{"CrossAccountReplicas": {"ReplicaSecretARN": "x"}}"#[..],
            br#"{"CrossAccountPrimary": {"ReplicationStatus": "InSync"}}"#,
            br#"{"CrossAccountReplicas": [{"ReplicationStatus": 3}]}"#,
        ] {
            let links = parse(body);
            assert!(
                links.unreadable.is_some(),
                "{}",
                String::from_utf8_lossy(body)
            );
            assert!(!links.is_empty());
        }
    }
}
