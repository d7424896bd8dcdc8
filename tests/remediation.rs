//! Remediation against moto: retries that are safe, verified, and never
//! loop; FIFO deduplication of redelivered events.

mod support;

use serde_json::{Value, json};
use support::*;

/// A Secrets Manager client for `region` of the world's moto.
async fn secrets_in(w: &World, region: &str) -> aws_sdk_secretsmanager::Client {
    let sdk = w.sdk().await;
    let conf = aws_sdk_secretsmanager::config::Builder::from(&sdk)
        .region(aws_config::Region::new(region.to_string()))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(conf)
}

async fn describe(
    w: &World,
    region: &str,
    id: &str,
) -> aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput {
    secrets_in(w, region)
        .await
        .describe_secret()
        .secret_id(id)
        .send()
        .await
        .unwrap()
}

/// The replication status moto reports for `region` of the clash secret.
async fn status_in(w: &World, name: &str, region: &str) -> Vec<String> {
    describe(w, "us-west-2", name)
        .await
        .replication_status()
        .iter()
        .filter(|r| r.region() == Some(region))
        .map(|r| r.status().unwrap().as_str().to_string())
        .collect()
}

async fn delete_in(w: &World, region: &str, id: &str) {
    secrets_in(w, region)
        .await
        .delete_secret()
        .secret_id(id)
        .force_delete_without_recovery(true)
        .send()
        .await
        .unwrap();
}

fn clash_event() -> Value {
    event("replicate-secret-to-regions.json")
}

fn only_action(report: &Value) -> &Value {
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{report:#}");
    assert_eq!(actions[0]["action"], "retry_replication");
    &actions[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_identity_moto_reports_is_the_tests_auditor_identity() {
    let w = World::start();
    let clients = replica_auditor::aws::AwsClients::from_config(w.sdk().await, None);
    assert_eq!(clients.caller_arn().await.unwrap(), MOTO_CALLER_ARN);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_succeeds_once_the_clash_is_cleared() {
    let w = World::start();
    // The other team deletes its same-named secret in us-east-1.
    delete_in(&w, "us-east-1", "production/Clash").await;
    let report = run(&w.app(&[]).await, &clash_event()).await;
    let a = only_action(&report);
    assert_eq!(a["region"], "us-east-1");
    assert_eq!(a["outcome"], "InSync", "{a}");
    let detail = a["detail"].as_str().unwrap();
    assert!(
        detail.contains("RemoveRegionsFromReplication then ReplicateSecretToRegions us-east-1"),
        "{detail}"
    );
    assert!(!detail.contains("ForceOverwrite"), "{detail}");
    // One entry for the Region, InSync: the failed one was removed first.
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["InSync"]
    );
    let replica = describe(&w, "us-east-1", "production/Clash").await;
    assert_eq!(replica.primary_region(), Some("us-west-2"));
    // The finding is reported with the action that fixed it.
    let p = &w.published().await[0];
    assert_eq!(
        p.codes(),
        vec![("REPLICA_FAILED".to_string(), Some("us-east-1".to_string()))]
    );
    assert_eq!(p.report["actions"], report["actions"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clash_is_overwritten_only_when_allowed() {
    let w = World::start();
    // Not allowed: no call, the finding says what an operator must decide.
    let report = run(&w.app(&[]).await, &clash_event()).await;
    let a = only_action(&report);
    assert_eq!(a["outcome"], "skipped");
    let detail = a["detail"].as_str().unwrap();
    assert!(
        detail.contains("An operator must decide") && detail.contains("ALLOW_FORCE_OVERWRITE=true"),
        "{detail}"
    );
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["Failed"]
    );
    let other = describe(&w, "us-east-1", "production/Clash").await;
    assert_eq!(
        other.primary_region(),
        None,
        "the other team's secret is untouched"
    );

    // Allowed: overwritten, verified InSync.
    let report = run(
        &w.app(&[("ALLOW_FORCE_OVERWRITE", "true")]).await,
        &clash_event(),
    )
    .await;
    let a = only_action(&report);
    assert_eq!(a["outcome"], "InSync", "{a}");
    assert!(
        a["detail"]
            .as_str()
            .unwrap()
            .contains("ForceOverwriteReplicaSecret")
    );
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["InSync"]
    );
    assert_eq!(
        describe(&w, "us-east-1", "production/Clash")
            .await
            .primary_region(),
        Some("us-west-2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_and_changes_nothing() {
    let w = World::start();
    let report = run(
        &w.app(&[
            ("REMEDIATION", "dry-run"),
            ("ALLOW_FORCE_OVERWRITE", "true"),
        ])
        .await,
        &clash_event(),
    )
    .await;
    let a = only_action(&report);
    assert_eq!(a["outcome"], "dry_run");
    assert!(a["detail"].as_str().unwrap().starts_with(
        "would call RemoveRegionsFromReplication then ReplicateSecretToRegions us-east-1"
    ));
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["Failed"]
    );
    // Off: no actions at all.
    let report = run(
        &w.app(&[("REMEDIATION", "off"), ("ALLOW_FORCE_OVERWRITE", "true")])
            .await,
        &clash_event(),
    )
    .await;
    assert_eq!(report["actions"], json!([]));
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["Failed"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_problem_is_not_retried() {
    let w = World::start();
    let mut ev = clash_event();
    ev["detail"]["requestParameters"]["secretId"] = json!("production/ClashOnDisabledKey");
    ev["detail"]["responseElements"]["arn"] = json!(w.secrets["production/ClashOnDisabledKey"]);
    let report = run(&w.app(&[("ALLOW_FORCE_OVERWRITE", "true")]).await, &ev).await;
    let a = only_action(&report);
    assert_eq!(a["outcome"], "skipped");
    assert!(
        a["detail"]
            .as_str()
            .unwrap()
            .contains("is not usable: not retried until it is"),
        "{a}"
    );
    assert_eq!(
        status_in(&w, "production/ClashOnDisabledKey", "us-east-1").await,
        vec!["Failed"]
    );
    assert!(codes(&report).contains(&("KEY_DISABLED".to_string(), Some("us-east-1".to_string()))));
}

/// The CloudTrail event AWS records for the auditor's own retry.
fn own_retry_event(w: &World, user_identity: Value) -> Value {
    let mut ev = clash_event();
    ev["detail"]["userIdentity"] = user_identity;
    ev["detail"]["requestParameters"] = json!({
        "secretId": w.secrets["production/Clash"],
        "addReplicaRegions": [{"region": "us-east-1", "kmsKeyId": w.keys["us-east-1/app-east"]}],
        "forceOverwriteReplicaSecret": true
    });
    ev["detail"]["userAgent"] =
        json!("aws-sdk-rust/1.3.x os/linux lang/rust/1.95.0 replica-auditor");
    ev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auditors_own_event_is_audited_but_not_remediated() {
    let w = World::start();
    // Identity learned from STS (moto's caller).
    let ev = own_retry_event(
        &w,
        json!({"type": "IAMUser", "arn": MOTO_CALLER_ARN, "accountId": "123456789012"}),
    );
    let app = w.app(&[("ALLOW_FORCE_OVERWRITE", "true")]).await;
    let report = run(&app, &ev).await;
    let a = only_action(&report);
    assert_eq!(a["outcome"], "skipped");
    assert!(a["detail"].as_str().unwrap().contains("loop guard"), "{a}");
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["Failed"],
        "no retry was made"
    );
    // It is still audited and reported.
    assert_eq!(
        w.published().await[0].codes(),
        vec![("REPLICA_FAILED".to_string(), Some("us-east-1".to_string()))]
    );

    // Identity named by AUDITOR_ROLE_ARN; the event comes from a session of that role.
    let role =
        "arn:aws:iam::123456789012:role/service-role/replica-auditor-AuditorFunctionRole-1A2B3C";
    let session = json!({
        "type": "AssumedRole",
        "arn": "arn:aws:sts::123456789012:assumed-role/replica-auditor-AuditorFunctionRole-1A2B3C/replica-auditor",
        "sessionContext": {"sessionIssuer": {"type": "Role", "arn": role}}
    });
    let app = w
        .app(&[
            ("ALLOW_FORCE_OVERWRITE", "true"),
            ("AUDITOR_ROLE_ARN", role),
        ])
        .await
        .with_identity(Some(role.into()));
    let report = run(&app, &own_retry_event(&w, session)).await;
    assert_eq!(only_action(&report)["outcome"], "skipped");
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["Failed"]
    );

    // The same event from someone else is remediated.
    let report = run(
        &app,
        &own_retry_event(
            &w,
            json!({"type": "IAMUser", "arn": "arn:aws:iam::123456789012:user/alice"}),
        ),
    )
    .await;
    assert_eq!(only_action(&report)["outcome"], "InSync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifo_topic_redelivery_is_published_once() {
    let w = World::start();
    let sdk = w.sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let topic = sns
        .create_topic()
        .name("findings.fifo")
        .attributes("FifoTopic", "true")
        .send()
        .await
        .unwrap()
        .topic_arn()
        .unwrap()
        .to_string();
    let queue = sqs
        .create_queue()
        .queue_name("inbox.fifo")
        .attributes(aws_sdk_sqs::types::QueueAttributeName::FifoQueue, "true")
        .send()
        .await
        .unwrap()
        .queue_url()
        .unwrap()
        .to_string();
    let queue_arn = queue_arn(&sqs, &queue).await;
    sns.subscribe()
        .topic_arn(&topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();

    let app = w.app(&[("FINDINGS_TOPIC_ARN", &topic)]).await;
    let first = run(&app, &clash_event()).await;
    let again = run(&app, &clash_event()).await; // EventBridge delivers again
    assert_ne!(first["report_id"], again["report_id"]);
    let received = drain(&sqs, &queue).await;
    assert_eq!(
        received.len(),
        1,
        "the redelivered event did not alert twice"
    );
    // A different event about the same secret is a new message.
    let mut other = clash_event();
    other["detail"]["eventID"] = json!("another-event-id");
    run(&app, &other).await;
    assert_eq!(drain(&sqs, &queue).await.len(), 1);
}

async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> String {
    sqs.get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes()
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone()
}
