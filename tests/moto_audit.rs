//! The handler end to end against moto: real sample events in, reports
//! read back from the SNS topic's SQS subscription.

mod support;

use replica_auditor::aws::AwsClients;
use replica_auditor::engine::App;
use replica_auditor::engine::Budget;
use serde_json::{Value, json};
use support::*;

fn e(code: &str, region: &str) -> (String, Option<String>) {
    (code.to_string(), Some(region.to_string()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthy_multi_region_secret_publishes_nothing() {
    let w = World::start();
    let app = w
        .app(&[
            ("REQUIRE_CUSTOMER_MANAGED_KEY", "true"),
            ("REQUIRED_REGIONS", "us-east-1"),
        ])
        .await;
    let report = run(&app, &event("create-secret.json")).await;
    assert_eq!(report["findings"], json!([]));
    assert_eq!(report["secret"]["arn"], w.secrets["production/DBWest"]);
    assert_eq!(report["secret"]["primary_region"], "us-west-2");
    assert_eq!(report["replicas"][0]["region"], "us-east-1");
    assert_eq!(report["replicas"][0]["status"], "InSync");
    assert_eq!(
        report["replicas"][0]["kms_key_id"],
        w.keys["us-east-1/app-east"]
    );
    assert!(w.published().await.is_empty());
    // Clients are cached per Region: the primary's and the replica's.
    assert_eq!(app.clients.cached_regions(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_clash_is_published_with_attributes() {
    let w = World::start();
    let app = w.app(&[]).await;
    run(&app, &event("replicate-secret-to-regions.json")).await;
    let published = w.published().await;
    assert_eq!(published.len(), 1, "exactly one publish per audited event");
    let p = &published[0];
    assert_eq!(p.codes(), vec![e("REPLICA_FAILED", "us-east-1")]);
    let f = finding(&p.report, "REPLICA_FAILED");
    assert_eq!(f["cause"], "name_conflict");
    assert_eq!(f["severity"], "HIGH");
    assert!(
        f["message"]
            .as_str()
            .unwrap()
            .contains("already exists in region us-east-1")
    );
    assert_eq!(
        p.subject,
        "[HIGH] replica-auditor: production/Clash: 1 finding"
    );
    assert_eq!(p.attribute("severity").as_deref(), Some("HIGH"));
    assert_eq!(
        p.attribute("secret_name").as_deref(),
        Some("production/Clash")
    );
    assert_eq!(
        p.attribute("event_name").as_deref(),
        Some("ReplicateSecretToRegions")
    );
    assert_eq!(p.attributes["codes"]["Type"], "String.Array");
    assert_eq!(
        p.attribute("codes").as_deref(),
        Some("[\"REPLICA_FAILED\"]")
    );
    let r = &p.report;
    assert_eq!(r["schema"], "replica-auditor.report/v1");
    assert_eq!(r["trigger"]["source"], "cloudtrail");
    assert_eq!(
        r["trigger"]["event_id"],
        "5d1e2f3a-4b5c-4d6e-8f70-81929a0b1c26"
    );
    assert_eq!(
        r["trigger"]["actor"],
        "arn:aws:sts::123456789012:assumed-role/platform-deployer/deploy-pipeline"
    );
    assert_eq!(r["trigger"]["error_code"], Value::Null);
    // Remediation (on by default) leaves a name clash to an operator.
    assert_eq!(r["actions"].as_array().unwrap().len(), 1);
    assert_eq!(r["actions"][0]["outcome"], "skipped");
    assert_eq!(r["actions"][0]["region"], "us-east-1");
    assert_eq!(
        r["summary"],
        json!({"highest_severity": "HIGH", "count": 1})
    );
    // Finding ids are stable: the same event audited again gives the same id.
    run(&app, &event("replicate-secret-to-regions.json")).await;
    let again = w.published().await;
    assert_eq!(again[0].report["findings"][0]["id"], f["id"]);
    assert_ne!(again[0].report["report_id"], r["report_id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_call_and_disabled_key() {
    let w = World::start();
    let app = w.app(&[]).await;
    run(&app, &event("failed-call.json")).await;
    let p = &w.published().await[0];
    assert_eq!(
        p.codes(),
        vec![
            e("API_CALL_FAILED", "us-west-2"),
            e("KEY_DISABLED", "us-east-1")
        ]
    );
    assert_eq!(p.report["trigger"]["error_code"], "AccessDeniedException");
    assert!(
        finding(&p.report, "KEY_DISABLED")["message"]
            .as_str()
            .unwrap()
            .contains(&w.keys["us-east-1/disabled-east"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_pending_deletion_and_missing_key() {
    let w = World::start();
    let app = w.app(&[]).await;
    run(&app, &event("replicate-secret-to-regions-doomed-key.json")).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("KEY_PENDING_DELETION", "us-east-1")]);
    assert_eq!(p.attribute("severity").as_deref(), Some("CRITICAL"));
    assert!(
        p.subject
            .starts_with("[CRITICAL] replica-auditor: production/DoomedKey")
    );

    let mut lost = event("create-secret.json");
    lost["detail"]["responseElements"]["aRN"] = json!(w.secrets["production/LostKey"]);
    run(&app, &lost).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("KEY_NOT_FOUND", "us-east-1")]);
    assert!(
        finding(&p.report, "KEY_NOT_FOUND")["message"]
            .as_str()
            .unwrap()
            .contains("alias/deleted-east")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_policies_public_and_untrusted() {
    let w = World::start();
    let app = w.app(&[]).await;
    run(&app, &event("create-secret-public-key.json")).await;
    run(&app, &event("create-secret-partner-key.json")).await;
    let published = w.published().await;
    assert_eq!(published.len(), 2);
    let public = published
        .iter()
        .find(|p| p.report["secret"]["name"] == "production/PublicKey")
        .unwrap();
    assert_eq!(public.codes(), vec![e("KEY_POLICY_PUBLIC", "us-west-2")]);
    assert!(
        finding(&public.report, "KEY_POLICY_PUBLIC")["message"]
            .as_str()
            .unwrap()
            .contains("\"OpenToAll\"")
    );
    assert_eq!(
        public.report["trigger"]["actor"],
        "cloudformation.amazonaws.com"
    );
    let partner = published
        .iter()
        .find(|p| p.report["secret"]["name"] == "production/PartnerKey")
        .unwrap();
    assert_eq!(
        partner.codes(),
        vec![e("KEY_POLICY_UNTRUSTED_ACCOUNT", "us-west-2")]
    );
    assert!(
        finding(&partner.report, "KEY_POLICY_UNTRUSTED_ACCOUNT")["message"]
            .as_str()
            .unwrap()
            .contains("999988887777")
    );

    // Trusting the vendor's account clears it.
    let trusting = w.app(&[("TRUSTED_ACCOUNT_IDS", "999988887777")]).await;
    let report = run(&trusting, &event("create-secret-partner-key.json")).await;
    assert_eq!(report["findings"], json!([]));
    assert!(w.published().await.is_empty());
}

/// PutResourcePolicy on a secret, as its owner would (BlockPublicPolicy off).
async fn put_secret_policy(w: &World, secret: &str, statement: Value) {
    let sm = aws_sdk_secretsmanager::Client::new(&w.sdk().await);
    sm.put_resource_policy()
        .secret_id(&w.secrets[secret])
        .resource_policy(json!({"Version": "2012-10-17", "Statement": [statement]}).to_string())
        .block_public_policy(false)
        .send()
        .await
        .expect("PutResourcePolicy");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_resource_policies_public_and_untrusted() {
    let w = World::start();
    let app = w.app(&[]).await;
    // No policy at all is no finding (the healthy secret).
    run(&app, &event("create-secret.json")).await;
    assert!(w.published().await.is_empty());

    put_secret_policy(
        &w,
        "production/DBWest",
        json!({"Sid": "AnyoneMayRead", "Effect": "Allow", "Principal": {"AWS": "*"},
               "Action": "secretsmanager:*", "Resource": "*"}),
    )
    .await;
    run(&app, &event("create-secret.json")).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("SECRET_POLICY_PUBLIC", "us-west-2")]);
    assert_eq!(p.attribute("severity").as_deref(), Some("CRITICAL"));
    let f = finding(&p.report, "SECRET_POLICY_PUBLIC");
    let m = f["message"].as_str().unwrap();
    assert!(m.contains("\"AnyoneMayRead\""), "{m}");
    assert!(m.contains(&w.secrets["production/DBWest"]), "{m}");
    // The finding names the Sid; the policy text stays out of the report.
    let body = p.report.to_string();
    assert!(
        !body.contains("Effect") && !body.contains("secretsmanager:*"),
        "{body}"
    );

    // Pinned to an organisation nobody trusts: untrusted, naming it.
    put_secret_policy(
        &w,
        "production/DBWest",
        json!({"Sid": "VendorOrg", "Effect": "Allow", "Principal": "*", "Action": "secretsmanager:DescribeSecret",
               "Resource": "*", "Condition": {"StringEquals": {"aws:PrincipalOrgID": "o-f0r31gn0rg1"}}}),
    )
    .await;
    only_finding_says(
        &w,
        &app,
        "SECRET_POLICY_UNTRUSTED_ACCOUNT",
        &["o-f0r31gn0rg1", "VendorOrg"],
    )
    .await;

    // Shared with a stranger's account: untrusted until it is trusted.
    put_secret_policy(
        &w,
        "production/DBWest",
        json!({"Sid": "Vendor", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::999988887777:root"},
               "Action": "secretsmanager:DescribeSecret", "Resource": "*"}),
    )
    .await;
    only_finding_says(
        &w,
        &app,
        "SECRET_POLICY_UNTRUSTED_ACCOUNT",
        &["999988887777"],
    )
    .await;
    let trusting = w.app(&[("TRUSTED_ACCOUNT_IDS", "999988887777")]).await;
    let report = run(&trusting, &event("create-secret.json")).await;
    assert_eq!(report["findings"], json!([]));
}

/// CreateSecret's event through `app`: one report published, its only
/// finding `code` in us-west-2, with a message naming each of `words`.
async fn only_finding_says(w: &World, app: &App<AwsClients>, code: &str, words: &[&str]) {
    run(app, &event("create-secret.json")).await;
    let published = w.published().await;
    assert_eq!(published.len(), 1);
    let p = &published[0];
    assert_eq!(p.codes(), vec![e(code, "us-west-2")]);
    let m = finding(&p.report, code)["message"].as_str().unwrap();
    for word in words {
        assert!(m.contains(word), "{word} not in {m}");
    }
}

/// PutKeyPolicy: the account's root plus `statement`.
async fn put_key_policy(w: &World, key: &str, statement: Value) {
    let kms = aws_sdk_kms::Client::new(&w.sdk().await);
    let root = json!({"Sid": "Enable IAM User Permissions", "Effect": "Allow",
                      "Principal": {"AWS": "arn:aws:iam::123456789012:root"}, "Action": "kms:*", "Resource": "*"});
    kms.put_key_policy()
        .key_id(&w.keys[key])
        .policy_name("default")
        .policy(json!({"Version": "2012-10-17", "Statement": [root, statement]}).to_string())
        .send()
        .await
        .expect("PutKeyPolicy");
}

/// Open to every principal of the organisation paths `paths`, the form the
/// IAM User Guide documents for aws:PrincipalOrgPaths.
fn org_paths_grant(sid: &str, action: &str, paths: &str) -> Value {
    json!({"Sid": sid, "Effect": "Allow", "Principal": {"AWS": "*"}, "Action": action, "Resource": "*",
           "Condition": {"ForAnyValue:StringLike": {"aws:PrincipalOrgPaths": [paths]}}})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_own_organisation_is_trusted_and_a_foreign_one_is_not() {
    let w = World::start();
    let orgs = aws_sdk_organizations::Client::new(&w.sdk().await);
    let org = orgs
        .create_organization()
        .feature_set(aws_sdk_organizations::types::OrganizationFeatureSet::All)
        .send()
        .await
        .expect("CreateOrganization");
    let org_id = org.organization().unwrap().id().unwrap().to_string();
    let roots = orgs.list_roots().send().await.expect("ListRoots");
    let root_id = roots.roots()[0].id().unwrap().to_string();
    let own_paths = format!("{org_id}/{root_id}/*");

    // Pinned to the own organisation, on the key and on the secret: the
    // auditor learns its organisation (DescribeOrganization) and trusts it.
    put_key_policy(
        &w,
        "us-west-2/app-west",
        org_paths_grant("OrgUse", "kms:Decrypt", &own_paths),
    )
    .await;
    put_secret_policy(
        &w,
        "production/DBWest",
        org_paths_grant("OrgRead", "secretsmanager:DescribeSecret", &own_paths),
    )
    .await;
    let app = w.app(&[]).await;
    let report = run(&app, &event("create-secret.json")).await;
    assert_eq!(report["findings"], json!([]));
    assert!(w.published().await.is_empty());

    // The same policies with the organisation unknown: both grants go to
    // an organisation nobody trusts, until TRUSTED_ORG_IDS names it.
    let unknown = w.app(&[]).await.with_own_org(None);
    let report = run(&unknown, &event("create-secret.json")).await;
    assert_eq!(
        codes(&report),
        vec![
            e("KEY_POLICY_UNTRUSTED_ACCOUNT", "us-west-2"),
            e("SECRET_POLICY_UNTRUSTED_ACCOUNT", "us-west-2")
        ]
    );
    assert!(report.to_string().contains(&org_id));
    w.published().await;
    let configured = w
        .app(&[("TRUSTED_ORG_IDS", org_id.as_str())])
        .await
        .with_own_org(None);
    let report = run(&configured, &event("create-secret.json")).await;
    assert_eq!(report["findings"], json!([]));

    // A foreign organisation's paths: KEY_POLICY_UNTRUSTED_ACCOUNT naming it.
    put_key_policy(
        &w,
        "us-west-2/app-west",
        org_paths_grant("VendorOrg", "kms:Decrypt", "o-f0r31gn0rg1/r-ab12/*"),
    )
    .await;
    only_finding_says(
        &w,
        &app,
        "KEY_POLICY_UNTRUSTED_ACCOUNT",
        &["o-f0r31gn0rg1", "\"VendorOrg\""],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_rules_and_removal_of_a_required_region() {
    let w = World::start();
    let app = w.app(&[("ALLOWED_REGIONS", "us-west-2,us-east-1")]).await;
    run(&app, &event("remove-regions-from-replication.json")).await;
    let p = &w.published().await[0];
    assert_eq!(
        p.codes(),
        vec![
            e("REGION_NOT_ALLOWED", "eu-west-1"),
            // Its eu-west-1 replica is on the AWS-managed key; the primary is not.
            e("REPLICA_KEY_WEAKER_THAN_PRIMARY", "eu-west-1"),
            e("REQUIRED_REGION_MISSING", "us-east-1"),
        ]
    );
    let missing = finding(&p.report, "REQUIRED_REGION_MISSING")["message"]
        .as_str()
        .unwrap();
    assert!(
        missing.contains("replica-auditor:required-regions"),
        "{missing}"
    );
    assert!(
        missing.contains("removed by arn:aws:iam::123456789012:user/alice"),
        "{missing}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weaker_replica_key_and_customer_key_rule() {
    let w = World::start();
    run(&w.app(&[]).await, &event("create-secret-weak-replica.json")).await;
    assert_eq!(
        w.published().await[0].codes(),
        vec![e("REPLICA_KEY_WEAKER_THAN_PRIMARY", "us-east-1")]
    );
    run(
        &w.app(&[("REQUIRE_CUSTOMER_MANAGED_KEY", "true")]).await,
        &event("create-secret-weak-replica.json"),
    )
    .await;
    assert_eq!(
        w.published().await[0].codes(),
        vec![
            e("KEY_AWS_MANAGED", "us-east-1"),
            e("REPLICA_KEY_WEAKER_THAN_PRIMARY", "us-east-1")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_secret_and_min_severity() {
    let w = World::start();
    run(
        &w.app(&[("MIN_SEVERITY", "MEDIUM")]).await,
        &event("create-secret-retired.json"),
    )
    .await;
    assert!(
        w.published().await.is_empty(),
        "LOW finding below MIN_SEVERITY=MEDIUM is not published"
    );
    run(&w.app(&[]).await, &event("create-secret-retired.json")).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("SECRET_NOT_FOUND", "us-west-2")]);
    assert_eq!(p.report["secret"]["arn"], Value::Null);
    assert_eq!(p.report["secret"]["name"], "production/Retired-AbCdEf");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promotion_from_the_replica_region() {
    let w = World::start();
    run(
        &w.app(&[]).await,
        &event("stop-replication-to-replica.json"),
    )
    .await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("REPLICA_PROMOTED", "us-east-1")]);
    let m = finding(&p.report, "REPLICA_PROMOTED")["message"]
        .as_str()
        .unwrap();
    assert!(
        m.contains(&w.secrets["production/Promoted@us-east-1"]),
        "{m}"
    );
    assert!(m.contains("Rotation is OFF"), "{m}");
    assert!(
        m.contains(&format!(
            "former primary is {} in us-west-2",
            w.secrets["production/Promoted"]
        )),
        "{m}"
    );
    assert_eq!(p.report["secret"]["primary_region"], "us-east-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_missing_when_another_primary_owns_the_region() {
    let w = World::start();
    let mut ev = event("create-secret.json");
    ev["detail"]["responseElements"]["aRN"] = json!(w.secrets["production/Hijacked"]);
    run(&w.app(&[]).await, &ev).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("REPLICA_MISSING", "us-east-1")]);
    assert!(
        finding(&p.report, "REPLICA_MISSING")["message"]
            .as_str()
            .unwrap()
            .contains("eu-west-1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replication_still_in_progress() {
    let w = World::start_with(&[("SHIM_REPLICATION_SECONDS", "600")]);
    run(&w.app(&[]).await, &event("create-secret.json")).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("REPLICA_IN_PROGRESS", "us-east-1")]);
    assert_eq!(p.attribute("severity").as_deref(), Some("LOW"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_replica_status() {
    let w = World::start_with(&[("SHIM_REPLICA_STATUS", "Paused")]);
    run(&w.app(&[]).await, &event("create-secret.json")).await;
    let p = &w.published().await[0];
    assert_eq!(p.codes(), vec![e("REPLICA_STATUS_UNKNOWN", "us-east-1")]);
    assert!(
        finding(&p.report, "REPLICA_STATUS_UNKNOWN")["message"]
            .as_str()
            .unwrap()
            .contains("\"Paused\"")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_unreachable_is_audit_incomplete_and_still_published() {
    let w = World::start();
    // Secrets Manager and SNS answer; KMS points at a closed port.
    let closed = format!("http://127.0.0.1:{}", free_port());
    let sdk = w.sdk().await;
    let kms_down = aws_config::SdkConfig::builder()
        .http_client(replica_auditor::aws::http_client())
        .region(sdk.region().cloned())
        .credentials_provider(sdk.credentials_provider().unwrap())
        .behavior_version(aws_config::BehaviorVersion::latest())
        .sleep_impl(sdk.sleep_impl().unwrap())
        .time_source(sdk.time_source().unwrap())
        .endpoint_url(&w.moto.endpoint)
        .service_config(ServiceEndpoints { kms: closed })
        .build();
    let report = run(&w.app_with_sdk(&[], kms_down), &event("create-secret.json")).await;
    let p = &w.published().await[0];
    assert_eq!(p.report["findings"], report["findings"]);
    assert_eq!(
        p.codes(),
        vec![
            e("AUDIT_INCOMPLETE", "us-east-1"),
            e("AUDIT_INCOMPLETE", "us-west-2")
        ]
    );
    let m = finding(&p.report, "AUDIT_INCOMPLETE")["message"]
        .as_str()
        .unwrap();
    assert!(m.contains("kms:DescribeKey"), "{m}");
    // The replica itself was still checked (it is InSync and present).
    assert_eq!(p.report["replicas"][0]["status"], "InSync");
}

/// Routes only KMS to another endpoint, as AWS_ENDPOINT_URL_KMS would.
#[derive(Debug)]
struct ServiceEndpoints {
    kms: String,
}

impl aws_types::service_config::LoadServiceConfig for ServiceEndpoints {
    fn load_config(&self, key: aws_types::service_config::ServiceConfigKey<'_>) -> Option<String> {
        (key.service_id() == "KMS" && key.env() == "AWS_ENDPOINT_URL").then(|| self.kms.clone())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_running_out_is_audit_incomplete() {
    let w = World::start();
    let app = w.app(&[]).await;
    // A deadline already inside the publish reserve: no AWS call may start.
    let budget = Budget::until(
        std::time::Instant::now() + std::time::Duration::from_secs(2),
        std::time::Duration::from_secs(2),
    );
    let report = app
        .handle(&bytes(&event("create-secret.json")), budget)
        .await
        .unwrap();
    let p = &w.published().await[0];
    assert_eq!(p.report, report);
    assert_eq!(p.codes(), vec![e("AUDIT_INCOMPLETE", "us-west-2")]);
    assert!(
        finding(&report, "AUDIT_INCOMPLETE")["message"]
            .as_str()
            .unwrap()
            .contains("time was running out")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_failure_fails_the_invocation() {
    let w = World::start();
    let app = w
        .app(&[(
            "FINDINGS_TOPIC_ARN",
            "arn:aws:sns:us-west-2:123456789012:no-such-topic",
        )])
        .await;
    let err = app
        .handle(
            &bytes(&event("replicate-secret-to-regions.json")),
            Budget::unlimited(),
        )
        .await
        .expect_err("a report that cannot be published fails the invocation");
    let msg = err.to_string();
    assert!(msg.contains("could not publish the finding report to arn:aws:sns:us-west-2:123456789012:no-such-topic"), "{msg}");
    assert!(msg.contains("sns:Publish"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_event_then_good_one() {
    let w = World::start();
    let app = w.app(&[]).await;
    let mut bad = event("replicate-secret-to-regions.json");
    bad["detail"]
        .as_object_mut()
        .unwrap()
        .remove("requestParameters");
    bad["detail"]
        .as_object_mut()
        .unwrap()
        .remove("responseElements");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"this is not json".to_vec(), "not valid JSON"),
        (
            bytes(
                &json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail"}),
            ),
            "`detail`",
        ),
        (
            bytes(
                &json!({"source": "aws.secretsmanager", "detail-type": "AWS API Call via CloudTrail", "detail": {"eventName": ["x"]}}),
            ),
            "detail.eventName",
        ),
        (bytes(&bad), "does not identify a secret"),
    ];
    for (raw, expected) in cases {
        let err = app
            .handle(&raw, Budget::unlimited())
            .await
            .expect_err("malformed");
        assert!(err.to_string().starts_with("malformed event: "), "{err}");
        assert!(
            err.to_string().contains(expected),
            "{err} should mention {expected}"
        );
    }
    // The next event is served normally.
    run(&app, &event("replicate-secret-to-regions.json")).await;
    assert_eq!(w.published().await.len(), 1);
    // A well-formed event the auditor does not act on succeeds quietly.
    assert_eq!(
        run(&app, &event("tag-resource-ignored.json")).await,
        json!({"status": "ignored", "event_name": "TagResource"})
    );
    assert!(w.published().await.is_empty());
}

// Freshness (issue 25, docs/freshness.md): scenes from support::freshness.

use support::freshness::{V_NEW, V_OLD, V_OLDER, versions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_without_the_primarys_current_version_are_stale() {
    let w = World::start();
    let proxy = support::fault_proxy::FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let app = w.app_with_sdk(&[], support::sdk_config(&proxy.endpoint).await);
    let primary = w.secrets["production/DBWest"].clone();
    let stale = |report: &Value| {
        codes(report)
            .into_iter()
            .filter(|(c, _)| c == "REPLICA_STALE")
            .collect::<Vec<_>>()
    };

    // Fresh: the replica holds the primary's current version.
    versions(&proxy, &primary, V_NEW, "InSync", "Replication succeeded");
    let report = run(&app, &event("create-secret.json")).await;
    assert_eq!(stale(&report), vec![], "{report:#}");

    // InSync, yet holding the old version two hours on: reported.
    versions(&proxy, &primary, V_OLD, "InSync", "Replication succeeded");
    let report = run(&app, &event("create-secret.json")).await;
    assert_eq!(stale(&report), vec![e("REPLICA_STALE", "us-east-1")]);
    let f = finding(&report, "REPLICA_STALE");
    assert_eq!(f["severity"], "HIGH");
    let message = f["message"].as_str().unwrap();
    for part in [
        V_NEW,
        V_OLD,
        "InSync",
        "Replication succeeded",
        "us-east-1",
        "not trusted",
    ] {
        assert!(message.contains(part), "{part:?} missing: {message}");
    }

    // Stuck InProgress past the limit: reported with its status and message.
    versions(
        &proxy,
        &primary,
        V_OLD,
        "InProgress",
        "Replication in progress",
    );
    let report = run(&app, &event("create-secret.json")).await;
    let message = finding(&report, "REPLICA_STALE")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.contains("InProgress (Replication in progress)"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_making_a_new_current_version_is_audited() {
    let w = World::start();
    let app = w.app(&[]).await;
    for (sample, name) in [
        ("put-secret-value.json", "PutSecretValue"),
        ("update-secret.json", "UpdateSecret"),
        (
            "update-secret-version-stage.json",
            "UpdateSecretVersionStage",
        ),
        ("rotate-secret.json", "RotateSecret"),
    ] {
        let report = run(&app, &event(sample)).await;
        assert_eq!(
            report["trigger"]["event_name"], name,
            "{sample}: {report:#}"
        );
        assert_eq!(
            report["secret"]["arn"], w.secrets["production/DBWest"],
            "{sample}"
        );
        // moto's replicas share the primary's versions: fresh.
        assert!(
            !codes(&report).iter().any(|(c, _)| c == "REPLICA_STALE"),
            "{sample}: {report:#}"
        );
    }
}

// Secrets Manager's rotation service events (issue 25): the samples are
// written from the docs, not recorded (docs/freshness.md).

/// The version production/DBWest's primary holds as AWSCURRENT in moto.
async fn moto_current_version(w: &World) -> String {
    let sm = aws_sdk_secretsmanager::Client::new(&w.sdk().await);
    let out = sm
        .describe_secret()
        .secret_id(&w.secrets["production/DBWest"])
        .send()
        .await
        .unwrap();
    out.version_ids_to_stages()
        .unwrap()
        .iter()
        .find(|(_, stages)| stages.iter().any(|s| s == "AWSCURRENT"))
        .map(|(id, _)| id.clone())
        .expect("moto names the current version")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rotation_service_event_is_audited() {
    let w = World::start();
    let app = w.app(&[]).await;
    let arn = w.secrets["production/DBWest"].clone();
    // moto keeps one version, current in the primary and in its replica.
    let current = moto_current_version(&w).await;
    for (sample, name) in [
        ("rotation-succeeded.json", "RotationSucceeded"),
        ("rotation-failed.json", "RotationFailed"),
        ("rotation-abandoned.json", "RotationAbandoned"),
    ] {
        let report = run(&app, &event(sample)).await;
        assert_eq!(report["trigger"]["event_name"], name, "{report:#}");
        assert_eq!(report["trigger"]["actor"], "secretsmanager.amazonaws.com");
        assert_eq!(report["secret"]["arn"], arn, "{sample}");
        assert_eq!(report["current_version"], current.as_str());
        assert_eq!(report["replicas"][0]["region"], "us-east-1");
        assert_eq!(report["replicas"][0]["current_version"], current.as_str());
        assert_eq!(
            report["replicas"][0]["freshness"],
            json!({"state": "current"})
        );
        let expected = match name {
            "RotationSucceeded" => vec![],
            _ => vec![e("ROTATION_FAILED_WITH_REPLICAS", "us-west-2")],
        };
        assert_eq!(codes(&report), expected, "{sample}: {report:#}");
    }
    let report = run(&app, &event("rotation-failed.json")).await;
    assert_eq!(
        finding(&report, "ROTATION_FAILED_WITH_REPLICAS")["message"],
        format!(
            "Rotation of production/DBWest at 2026-11-20T10:21:07Z failed (RotationFailed). The primary in us-west-2 holds AWSCURRENT {current} and no AWSPENDING version apart from it. Replicas: us-east-1 InSync, AWSCURRENT {current} (the primary's)."
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rotation_reports_each_replicas_state() {
    let w = World::start();
    let proxy = support::fault_proxy::FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let app = w.app_with_sdk(&[], support::sdk_config(&proxy.endpoint).await);
    let primary = w.secrets["production/DBWest"].clone();
    let replica = primary.replace("us-west-2", "us-east-1");
    // The rotation stopped after its first step: the primary holds V_NEW
    // as AWSPENDING beside its AWSCURRENT V_OLD; the replica, InSync,
    // holds V_OLD only.
    let key = w.keys["us-east-1/app-east"].clone();
    let status = |status: &str, message: &str| json!([{"Region": "us-east-1", "KmsKeyId": key, "Status": status, "StatusMessage": message}]);
    proxy.add_describe_members(
        &primary,
        json!({
            "VersionIdsToStages": {V_OLD: ["AWSCURRENT"], V_NEW: ["AWSPENDING"]},
            "ReplicationStatus": status("InSync", "Replication succeeded"),
        }),
    );
    proxy.add_describe_members(
        &replica,
        json!({"VersionIdsToStages": {V_OLD: ["AWSCURRENT"]}}),
    );
    let report = run(&app, &event("rotation-failed.json")).await;
    assert_eq!(
        codes(&report),
        vec![e("ROTATION_FAILED_WITH_REPLICAS", "us-west-2")]
    );
    let f = finding(&report, "ROTATION_FAILED_WITH_REPLICAS");
    assert_eq!(f["severity"], "MEDIUM");
    assert_eq!(
        f["message"],
        format!(
            "Rotation of production/DBWest at 2026-11-20T10:21:07Z failed (RotationFailed). The primary in us-west-2 holds AWSCURRENT {V_OLD} and AWSPENDING {V_NEW}: a half-finished rotation. Replicas: us-east-1 InSync, AWSCURRENT {V_OLD} (the primary's), lacks AWSPENDING. Replicas without the primary's AWSPENDING version {V_NEW}: 1 of 1."
        )
    );
    assert!(
        f["remediation"]
            .as_str()
            .unwrap()
            .contains(&format!("--remove-from-version-id {V_NEW}")),
        "{f:#}"
    );
    let published = w.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].subject,
        "[MEDIUM] replica-auditor: production/DBWest: 1 finding"
    );

    // Abandoned, with the replica still replicating an older version and
    // holding the pending one: said as it is.
    proxy.add_describe_members(
        &primary,
        json!({
            "VersionIdsToStages": {V_OLD: ["AWSCURRENT"], V_NEW: ["AWSPENDING"]},
            "ReplicationStatus": status("InProgress", "Replication in progress"),
        }),
    );
    proxy.add_describe_members(
        &replica,
        json!({"VersionIdsToStages": {V_OLDER: ["AWSCURRENT"], V_NEW: ["AWSPENDING"]}}),
    );
    let report = run(&app, &event("rotation-abandoned.json")).await;
    let message = finding(&report, "ROTATION_FAILED_WITH_REPLICAS")["message"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        message.ends_with(&format!(
            "Replicas: us-east-1 InProgress, AWSCURRENT {V_OLDER} (not the primary's), holds AWSPENDING {V_NEW}. Replicas without the primary's AWSPENDING version {V_NEW}: 0 of 1."
        )),
        "{message}"
    );
    assert!(message.contains("was abandoned"), "{message}");
    assert_eq!(report["replicas"][0]["current_version"], V_OLDER);
    assert_eq!(report["replicas"][0]["freshness"]["state"], "behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_rotation_of_a_secret_without_replicas_is_not_that_finding() {
    let w = World::start();
    let app = w.app(&[]).await;
    let sm = aws_sdk_secretsmanager::Client::new(&w.sdk().await);
    let solo = sm
        .create_secret()
        .name("production/Solo")
        .secret_string("demo-value-never-read-by-the-auditor")
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let mut failed = event("rotation-failed.json");
    failed["detail"]["additionalEventData"]["SecretId"] = json!(solo);
    let report = run(&app, &failed).await;
    assert_eq!(report["trigger"]["event_name"], "RotationFailed");
    assert_eq!(report["secret"]["arn"], solo.as_str());
    assert_eq!(report["replicas"], json!([]));
    assert_eq!(codes(&report), vec![], "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_event_from_an_account_outside_the_scope_is_refused() {
    let w = World::start();
    let app = w.app(&[("ACCOUNT_IDS", "123456789012")]).await;
    let mut other = event("rotation-failed.json");
    other["account"] = json!("222233334444");
    other["detail"]["recipientAccountId"] = json!("222233334444");
    other["detail"]["userIdentity"]["accountId"] = json!("222233334444");
    other["detail"]["additionalEventData"]["SecretId"] =
        json!("arn:aws:secretsmanager:us-west-2:222233334444:secret:production/DBWest-AbCdEf");
    assert_eq!(
        run(&app, &other).await,
        json!({
            "status": "refused",
            "event_name": "RotationFailed",
            "reason": "account 222233334444 is not in ACCOUNT_IDS",
        })
    );
    assert!(w.published().await.is_empty());
}
