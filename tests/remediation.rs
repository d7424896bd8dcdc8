//! Remediation against moto: retries that are safe, verified, and never
//! loop; FIFO deduplication of redelivered events.

mod support;

use serde_json::{Value, json};
use support::*;
use support::{fault_proxy, lambda};

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

// --- At-least-once delivery: one remediation per secret and Region at a time.

fn sweep_event() -> Value {
    event("scheduled-sweep.json")
}

/// The Regions named by RemoveRegionsFromReplication requests at the proxy.
fn removed_regions(proxy: &fault_proxy::FaultProxy) -> Vec<String> {
    proxy
        .calls("RemoveRegionsFromReplication")
        .iter()
        .flat_map(|c| {
            let body: Value = serde_json::from_str(&c.body).unwrap();
            body["RemoveReplicaRegions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The retry actions about production/Clash in what was published.
async fn clash_actions(w: &World) -> Vec<Value> {
    w.published()
        .await
        .into_iter()
        .filter(|p| p.report["secret"]["name"] == "production/Clash")
        .map(|p| only_action(&p.report).clone())
        .collect()
}

/// One action made the retry (InSync), the other skipped because the
/// first held the lease, naming it.
fn one_retried_one_skipped(actions: &[Value], owners: [&str; 2]) {
    assert_eq!(actions.len(), 2, "{actions:#?}");
    let retried: Vec<&Value> = actions
        .iter()
        .filter(|a| a["outcome"] == "InSync")
        .collect();
    let skipped: Vec<&Value> = actions
        .iter()
        .filter(|a| a["outcome"] == "skipped")
        .collect();
    assert_eq!((retried.len(), skipped.len()), (1, 1), "{actions:#?}");
    let detail = skipped[0]["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("another remediation of us-east-1 is in progress since 20"),
        "{detail}"
    );
    assert!(
        owners.iter().any(|o| detail.contains(&format!("({o})"))),
        "names the holder: {detail}"
    );
}

/// Two function processes (two Lambda environments) given one event each
/// at the same moment, every AWS call taking 150 ms, the clash cleared:
/// both responses, after asserting both succeeded and the proxy saw exactly
/// one RemoveRegionsFromReplication, of us-east-1.
///
/// The two invocations overlap for certain: each reaches the lease after
/// two to five calls of 150 ms, and the retry holds it for about 3 s (four
/// calls, a 200 ms write token, and verification polls while the new
/// replica is InProgress for 1.5 s, as replication is asynchronous in AWS),
/// so a loaded machine may start one process seconds after the other.
async fn two_environments_at_once(
    w: &World,
    first: (&Value, &str),
    second: (&Value, &str),
) -> (fault_proxy::FaultProxy, Value, Value, [String; 2]) {
    delete_in(w, "us-east-1", "production/Clash").await;
    let proxy = w.latency_proxy(150).await;
    let env = w.function_env(&proxy.endpoint, &[]);
    let mut a = lambda::Environment::start(&env, first.0, first.1).await;
    let mut b = lambda::Environment::start(&env, second.0, second.1).await;
    let (ra, rb) = (a.result().await, b.result().await);
    let stdout = [a.stdout().await, b.stdout().await];
    assert_eq!(
        (ra.0.as_str(), rb.0.as_str()),
        ("response", "response"),
        "{ra:?} {rb:?}"
    );
    assert_eq!(
        removed_regions(&proxy),
        vec!["us-east-1"],
        "exactly one removal"
    );
    assert_eq!(proxy.calls("ReplicateSecretToRegions").len(), 1);
    assert_eq!(
        status_in(w, "production/Clash", "us-east-1").await,
        vec!["InSync"],
        "listed once, InSync"
    );
    (proxy, ra.1, rb.1, stdout)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_environments_fed_the_same_event_remove_the_region_once() {
    let w = World::start_with(&[("SHIM_REPLICATION_SECONDS", "1.5")]);
    let ev = clash_event();
    let (proxy, ra, rb, stdout) =
        two_environments_at_once(&w, (&ev, "request-a"), (&ev, "request-b")).await;
    // The metrics say the same: one retry in sync, one skipped.
    let lines: Vec<Value> = stdout
        .iter()
        .flat_map(|out| support::emf::emf_lines(out))
        .collect();
    assert_eq!(lines.len(), 2, "{stdout:?}");
    let total = |name: &str| -> u64 { lines.iter().map(|l| l[name].as_u64().unwrap()).sum() };
    assert_eq!(
        (total("RemediationInSync"), total("RemediationSkipped")),
        (1, 1),
        "{lines:?}"
    );
    one_retried_one_skipped(
        &[only_action(&ra).clone(), only_action(&rb).clone()],
        ["request-a", "request-b"],
    );
    // Both reports went out, and the lease was given back.
    assert_eq!(clash_actions(&w).await.len(), 2);
    assert_eq!(proxy.calls("DeleteItem").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_and_a_sweep_at_once_remove_the_region_once() {
    let w = World::start_with(&[("SHIM_REPLICATION_SECONDS", "1.5")]);
    let (ev, sweep) = (clash_event(), sweep_event());
    let (_proxy, _, summary, _) =
        two_environments_at_once(&w, (&ev, "request-event"), (&sweep, "request-sweep")).await;
    assert!(
        summary["sweep"]["secrets_audited"].as_u64().unwrap() > 5,
        "{summary}"
    );
    // The event's report and the sweep's report about the secret.
    one_retried_one_skipped(&clash_actions(&w).await, ["request-event", "request-sweep"]);
}

async fn state_table(w: &World) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(&w.sdk().await)
}

fn lease_pk(w: &World) -> String {
    format!("lease#{}#us-east-1", w.secrets["production/Clash"])
}

fn epoch_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A lease left by an invocation that crashed: `expires_at` from now.
async fn crashed_lease(w: &World, expires_in: i64) {
    use aws_sdk_dynamodb::types::AttributeValue::{N, S};
    state_table(w)
        .await
        .put_item()
        .table_name(&w.state_table)
        .item("pk", S(lease_pk(w)))
        .item("owner", S("crashed-request".into()))
        .item("since", S("2026-11-25T09:00:00Z".into()))
        .item("expires_at", N((epoch_now() + expires_in).to_string()))
        .send()
        .await
        .unwrap();
}

async fn lease_item(
    w: &World,
) -> Option<std::collections::HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    state_table(w)
        .await
        .get_item()
        .table_name(&w.state_table)
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S(lease_pk(w)),
        )
        .send()
        .await
        .unwrap()
        .item
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_holders_lease_blocks_until_it_expires_then_the_next_audit_retries() {
    let w = World::start();
    delete_in(&w, "us-east-1", "production/Clash").await;
    let app = w.app(&[]).await;
    // Held, and not expired (TTL has not deleted it either): skipped.
    crashed_lease(&w, 60).await;
    let a = only_action(&run(&app, &clash_event()).await).clone();
    assert_eq!(a["outcome"], "skipped", "{a}");
    assert!(
        a["detail"].as_str().unwrap().starts_with(
            "another remediation of us-east-1 is in progress since 2026-11-25T09:00:00Z (crashed-request)"
        ),
        "{a}"
    );
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["Failed"]
    );
    // Expired a second ago, still in the table (TTL deletes lazily): retried.
    crashed_lease(&w, -1).await;
    assert!(lease_item(&w).await.is_some());
    let a = only_action(&run(&app, &clash_event()).await).clone();
    assert_eq!(a["outcome"], "InSync", "{a}");
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["InSync"]
    );
    assert_eq!(lease_item(&w).await, None, "released after the retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_that_turned_in_sync_before_the_removal_is_not_removed() {
    let w = World::start();
    delete_in(&w, "us-east-1", "production/Clash").await;
    // The lease request is held 1.5 s: the snapshot (Failed) is taken, and
    // someone else's retry fixes the Region before the auditor goes on.
    let proxy = fault_proxy::FaultProxy::start(
        &w.moto.endpoint,
        vec![
            fault_proxy::Rule::new(
                Some("dynamodb"),
                None,
                fault_proxy::Fault::Delay(std::time::Duration::from_millis(1500)),
            )
            .action("PutItem"),
        ],
    )
    .await;
    let app = w.app_with_sdk(&[], sdk_config(&proxy.endpoint).await);
    let fix = async {
        poll_until(
            std::time::Duration::from_secs(30),
            "the lease's PutItem reached the proxy",
            || !proxy.calls("PutItem").is_empty(),
        )
        .await;
        let sm = secrets_in(&w, "us-west-2").await;
        sm.remove_regions_from_replication()
            .secret_id("production/Clash")
            .remove_replica_regions("us-east-1")
            .send()
            .await
            .unwrap();
        sm.replicate_secret_to_regions()
            .secret_id("production/Clash")
            .add_replica_regions(
                aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                    .region("us-east-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    };
    let ev = clash_event();
    let (report, ()) = tokio::join!(run(&app, &ev), fix);
    // The snapshot saw Failed (the finding), the re-check InSync.
    assert!(
        codes(&report).contains(&("REPLICA_FAILED".to_string(), Some("us-east-1".to_string())))
    );
    let a = only_action(&report);
    assert_eq!(a["outcome"], "skipped", "{a}");
    assert!(
        a["detail"].as_str().unwrap().contains(
            "us-east-1 is now InSync (re-checked just before RemoveRegionsFromReplication), not Failed: not removed"
        ),
        "{a}"
    );
    assert_eq!(removed_regions(&proxy), Vec::<String>::new());
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["InSync"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_table_errors_skip_the_retry_or_are_reported_and_the_report_still_goes_out() {
    let w = World::start();
    delete_in(&w, "us-east-1", "production/Clash").await;
    let denied = |action| {
        fault_proxy::Rule::new(Some("dynamodb"), None, fault_proxy::Fault::AccessDenied)
            .action(action)
    };
    // The lease cannot be taken: no retry, the report still goes out.
    let proxy = fault_proxy::FaultProxy::start(&w.moto.endpoint, vec![denied("PutItem")]).await;
    let app = w.app_with_sdk(&[], sdk_config(&proxy.endpoint).await);
    let a = only_action(&run(&app, &clash_event()).await).clone();
    assert_eq!(a["outcome"], "skipped");
    assert!(
        a["detail"].as_str().unwrap().starts_with(
            "could not take the remediation lease (dynamodb:PutItem in us-west-2: access denied"
        ),
        "{a}"
    );
    assert_eq!(removed_regions(&proxy), Vec::<String>::new());
    assert_eq!(clash_actions(&w).await, vec![a]);
    // The lease cannot be released: the retry is made, and the action says
    // when the lease frees itself.
    proxy.set_rules(vec![denied("DeleteItem")]);
    let a = only_action(&run(&app, &clash_event()).await).clone();
    assert_eq!(a["outcome"], "InSync", "{a}");
    let detail = a["detail"].as_str().unwrap();
    assert!(
        detail.contains(
            "; the lease could not be released (dynamodb:DeleteItem in us-west-2: access denied"
        ) && detail.contains("it is free for the next remediation at 20"),
        "{detail}"
    );
    let left = lease_item(&w).await.expect("the lease is still there");
    let expires: i64 = left["expires_at"].as_n().unwrap().parse().unwrap();
    assert!(
        expires > epoch_now() && expires <= epoch_now() + 120,
        "{expires}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_write_budget_holds_in_a_sweep_with_many_failed_replicas() {
    let w = World::start();
    // 15 more secrets whose us-east-1 replica failed on a name clash.
    let (west, east) = (
        secrets_in(&w, "us-west-2").await,
        secrets_in(&w, "us-east-1").await,
    );
    for i in 0..15 {
        let name = format!("budget/clash-{i:02}");
        east.create_secret()
            .name(&name)
            .secret_string("someone else's")
            .send()
            .await
            .unwrap();
        west.create_secret()
            .name(&name)
            .secret_string("v")
            .add_replica_regions(
                aws_sdk_secretsmanager::types::ReplicaRegionType::builder()
                    .region("us-east-1")
                    .build(),
            )
            .send()
            .await
            .unwrap();
    }
    let proxy = fault_proxy::FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let rate = 8;
    let app = w.app_with_sdk(
        &[
            ("ALLOW_FORCE_OVERWRITE", "true"),
            ("REMEDIATION_WRITES_PER_SECOND", "8"),
        ],
        sdk_config(&proxy.endpoint).await,
    );
    run(&app, &sweep_event()).await;
    let retried = w
        .published()
        .await
        .iter()
        .flat_map(|p| p.report["actions"].as_array().unwrap().clone())
        .filter(|a| a["outcome"] == "InSync")
        .count();
    // The 15 and production/Clash, all retried (none dropped).
    assert_eq!(retried, 16);
    // The pace, from the requests themselves: every take of the shared
    // replication bucket (the primaries' account and Region) carries its
    // `:now` (microseconds since the epoch) and moves the bucket's `tat`
    // by k intervals. A write waits for its token, whose time is at least
    // the first take's `now` plus one interval per token before it, so the
    // i-th write to arrive comes at least i intervals after that `now`.
    // Delays on a loaded machine only make writes later: no clock race.
    let mut writes: Vec<u64> = ["RemoveRegionsFromReplication", "ReplicateSecretToRegions"]
        .iter()
        .flat_map(|a| proxy.calls(a))
        .map(|c| c.wall_us())
        .collect();
    writes.sort();
    assert_eq!(writes.len(), 32);
    let takes = proxy.assert_paced("pace#replication#", 1_000_000 / rate, &writes);
    // Without the pace the 32 writes come within a second or so (with 25
    // a second instead of 8, write 2 came 119 ms early): with it, the last
    // comes at least 31 intervals after the first take.
    let span = (writes[31] - writes[0]) as f64 / 1e6;
    println!(
        "writes: {} in {span:.2}s, {:.2}/s on average; {} takes",
        writes.len(),
        31.0 / span,
        takes
    );
}

/// The codes and Regions of every published report of `name`.
fn published_codes(published: &[Published], name: &str) -> Vec<Vec<(String, Option<String>)>> {
    published
        .iter()
        .filter(|p| p.report["secret"]["name"] == name)
        .map(|p| p.codes())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_removed_and_never_replicated_again_is_reported_until_restored() {
    let w = World::start();
    // The clash is gone: a retry can succeed once its Replicate lands.
    delete_in(&w, "us-east-1", "production/Clash").await;
    // Every ReplicateSecretToRegions is held past the SDK's patience and
    // dropped (never applied); the Remove before it goes through.
    let proxy = fault_proxy::FaultProxy::start(
        &w.moto.endpoint,
        vec![
            fault_proxy::Rule::new(
                Some("secretsmanager"),
                Some("us-west-2"),
                fault_proxy::Fault::HoldThenDrop(std::time::Duration::from_millis(300)),
            )
            .action("ReplicateSecretToRegions"),
        ],
    )
    .await;
    let app = w.app_with_sdk(
        &[("RETRY_MAX_ATTEMPTS", "2"), ("RETRY_VERIFY_SECONDS", "1")],
        sdk_config(&proxy.endpoint).await,
    );
    let report = run(&app, &clash_event()).await;
    let a = only_action(&report);
    assert_eq!(a["outcome"], "skipped", "{a}");
    let detail = a["detail"].as_str().unwrap();
    // Both attempts, in order: the second does not hide the first's removal.
    assert!(
        detail.starts_with(
            "attempt 1: RemoveRegionsFromReplication then ReplicateSecretToRegions us-east-1"
        ) && detail.contains(": ReplicateSecretToRegions failed: "),
        "{detail}"
    );
    assert!(
        detail.contains("; attempt 2: us-east-1 is no longer listed: nothing removed"),
        "{detail}"
    );
    assert!(
        status_in(&w, "production/Clash", "us-east-1")
            .await
            .is_empty(),
        "the Region is gone from the replication"
    );

    // The same event again (Lambda's retry) and the sweep: the Region is
    // reported while it is not back, with what the attempts said.
    let removed = (
        "REPLICA_REMOVED_BY_REMEDIATION".to_string(),
        Some("us-east-1".to_string()),
    );
    let again = run(&app, &clash_event()).await;
    assert!(codes(&again).contains(&removed), "{again:#}");
    let finding = again["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "REPLICA_REMOVED_BY_REMEDIATION")
        .unwrap();
    assert_eq!(finding["severity"], "HIGH");
    let message = finding["message"].as_str().unwrap();
    for part in [
        "removed us-east-1 from the replication of production/Clash",
        "is not in its replication any more",
        "attempt 1: RemoveRegionsFromReplication then ReplicateSecretToRegions us-east-1",
        "ReplicateSecretToRegions failed",
        "attempt 2: us-east-1 is no longer listed",
    ] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    // Its restore was tried (and dropped again).
    let restore = only_action(&again);
    assert!(
        restore["detail"].as_str().unwrap().contains(
            "restore (it was removed by an earlier remediation): ReplicateSecretToRegions us-east-1"
        ),
        "{restore}"
    );
    // The sweep reads the journal's index once for its account and Region,
    // and the journal of the one primary the index lists, not one journal
    // per audited secret.
    let journal_reads = |prefix: &str| {
        proxy
            .calls("GetItem")
            .iter()
            .filter(|c| c.body.contains(&format!("\"S\":\"{prefix}")))
            .count()
    };
    let (index_before, journals_before) =
        (journal_reads("journal-index#"), journal_reads("journal#"));
    app.handle(
        &bytes(&event("scheduled-sweep.json")),
        replica_auditor::engine::Budget::unlimited(),
    )
    .await
    .unwrap();
    assert_eq!(journal_reads("journal-index#") - index_before, 1);
    assert_eq!(
        journal_reads("journal#") - journals_before,
        1,
        "Clash's only"
    );
    let published = w.published().await;
    let clash = published_codes(&published, "production/Clash");
    assert_eq!(clash.len(), 3, "two events and the sweep: {clash:?}");
    assert!(
        !clash[0].contains(&removed),
        "the first audit saw it Failed"
    );
    assert!(clash[1..].iter().all(|c| c.contains(&removed)), "{clash:?}");

    // Replication works again: the next audit restores the Region ...
    proxy.set_rules(vec![]);
    let restored = run(&app, &clash_event()).await;
    assert_eq!(only_action(&restored)["outcome"], "InSync", "{restored:#}");
    assert_eq!(
        status_in(&w, "production/Clash", "us-east-1").await,
        vec!["InSync"]
    );
    // ... and the one after it has nothing to say: the entry is cleared.
    let settled = run(&app, &clash_event()).await;
    assert_eq!(settled["findings"], json!([]), "{settled:#}");
    assert_eq!(settled["actions"], json!([]), "{settled:#}");
}
