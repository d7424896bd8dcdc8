//! Security Hub against moto: a broken secret's findings imported ACTIVE
//! and FAILED with every required ASFF field, resolved (ARCHIVED, PASSED)
//! once fixed; a healthy secret creates nothing; a check that could not
//! be made resolves nothing; a refused import fails the invocation.
//!
//! moto keeps imported findings per account and Region and answers
//! GetFindings with all of them (it reads no filter), and updates a
//! finding imported again with the same Id: enough to read back what
//! Security Hub would hold. It does not check that the hub is enabled or
//! that the caller is the findings' account (these tests read
//! the account from the ProductArn and AwsAccountId instead).

mod support;

use aws_sdk_securityhub::types::AwsSecurityFinding;
use replica_auditor::engine::Budget;
use serde_json::{Value, json};
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::security_hub;
use support::*;

const ON: [(&str, &str); 2] = [("SECURITY_HUB", "on"), ("REMEDIATION", "off")];
const ACCOUNT: &str = "123456789012";

async fn hub(w: &World, region: &str) -> aws_sdk_securityhub::Client {
    let conf = aws_sdk_securityhub::config::Builder::from(&w.sdk().await)
        .region(aws_config::Region::new(region.to_string()))
        .build();
    aws_sdk_securityhub::Client::from_conf(conf)
}

/// Security Hub on in every Region the world uses, as an operator would.
async fn enable(w: &World) {
    for region in ["us-west-2", "us-east-1", "eu-west-1"] {
        Box::pin(hub(w, region).await.enable_security_hub().send())
            .await
            .expect("EnableSecurityHub");
    }
}

async fn held(w: &World, region: &str) -> Vec<AwsSecurityFinding> {
    security_hub::findings(&w.sdk().await, region).await
}

/// A CreateSecret event for the world's secret `name`.
fn created(w: &World, name: &str) -> Value {
    let mut e = event("create-secret.json");
    e["detail"]["requestParameters"]["name"] = json!(name);
    e["detail"]["responseElements"]["aRN"] = json!(w.secrets[name]);
    e
}

fn arn_in(w: &World, name: &str, region: &str) -> String {
    w.secrets[name].replace(":us-west-2:", &format!(":{region}:"))
}

/// The finding about `name` with `code`, in `region`'s Security Hub.
async fn one(w: &World, region: &str, name: &str, code: &str) -> AwsSecurityFinding {
    let resource = arn_in(w, name, region);
    let all = held(w, region).await;
    let mine: Vec<&AwsSecurityFinding> = all
        .iter()
        .filter(|f| f.generator_id() == Some(code))
        .filter(|f| f.resources().iter().any(|r| r.id() == Some(&resource)))
        .collect();
    assert_eq!(mine.len(), 1, "one {code} for {name} in {region}: {all:#?}");
    mine[0].clone()
}

fn status(f: &AwsSecurityFinding) -> (String, String) {
    (
        f.record_state()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
        f.compliance()
            .and_then(|c| c.status())
            .map(|s| s.as_str().to_string())
            .unwrap_or_default(),
    )
}

async fn set_key(w: &World, region: &str, alias: &str, enabled: bool) {
    let kms = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::config::Builder::from(&w.sdk().await)
            .region(aws_config::Region::new(region.to_string()))
            .build(),
    );
    // moto's EnableKey takes the key id, not the ARN.
    let arn = &w.keys[&format!("{region}/{alias}")];
    let key = arn.rsplit('/').next().unwrap().to_string();
    if enabled {
        Box::pin(kms.enable_key().key_id(key).send()).await.unwrap();
    } else {
        Box::pin(kms.disable_key().key_id(key).send())
            .await
            .unwrap();
    }
}

/// The state table's item for a secret, as JSON-ish text (None: no item).
async fn state_item(w: &World, name: &str) -> Option<String> {
    let ddb = aws_sdk_dynamodb::Client::new(&w.sdk().await);
    let key = format!("shub#{ACCOUNT}#us-west-2#{}", w.secrets[name]);
    let get = ddb
        .get_item()
        .table_name(&w.state_table)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(key))
        .consistent_read(true)
        .send();
    Box::pin(get)
        .await
        .unwrap()
        .item()
        .map(|i| format!("{i:?}"))
}

#[tokio::test]
async fn a_broken_secret_is_active_and_failed_then_archived_and_passed_once_fixed() {
    let w = World::start();
    enable(&w).await;
    let app = w.app(&ON).await;
    let name = "production/DisabledKey";

    let report = run(&app, &created(&w, name)).await;
    assert_eq!(finding(&report, "KEY_DISABLED")["region"], "us-east-1");
    let f = one(&w, "us-east-1", name, "KEY_DISABLED").await;
    // Every required ASFF attribute, from the report.
    assert_eq!(f.schema_version(), Some("2018-10-08"));
    let id = f.id().unwrap().to_string();
    assert!(
        id.starts_with(&format!(
            "replica-auditor/{ACCOUNT}/us-east-1/KEY_DISABLED/"
        )),
        "{id}"
    );
    assert!(id.ends_with(finding(&report, "KEY_DISABLED")["id"].as_str().unwrap()));
    assert_eq!(
        f.product_arn(),
        Some(format!("arn:aws:securityhub:us-east-1:{ACCOUNT}:product/{ACCOUNT}/default").as_str())
    );
    assert_eq!(f.aws_account_id(), Some(ACCOUNT));
    assert_eq!(f.generator_id(), Some("KEY_DISABLED"));
    assert_eq!(
        f.types(),
        ["Software and Configuration Checks/AWS Security Best Practices/KMS Key"]
    );
    assert_eq!(
        f.severity().and_then(|s| s.label()).map(|l| l.as_str()),
        Some("HIGH")
    );
    assert_eq!(
        f.title(),
        Some("KEY_DISABLED: production/DisabledKey in us-east-1")
    );
    assert_eq!(
        f.description(),
        finding(&report, "KEY_DISABLED")["message"].as_str()
    );
    assert_eq!(
        f.remediation()
            .and_then(|r| r.recommendation())
            .and_then(|r| r.text()),
        finding(&report, "KEY_DISABLED")["remediation"].as_str()
    );
    let resource = &f.resources()[0];
    assert_eq!(resource.r#type(), Some("AwsSecretsManagerSecret"));
    assert_eq!(resource.id(), Some(arn_in(&w, name, "us-east-1").as_str()));
    assert_eq!(resource.region(), Some("us-east-1"));
    assert!(f.created_at().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(f.created_at(), f.updated_at());
    let fields = f.product_fields().unwrap();
    assert_eq!(
        fields.get("replica-auditor/ReportId").map(String::as_str),
        report["report_id"].as_str()
    );
    let event_id = created(&w, name)["detail"]["eventID"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        fields.get("replica-auditor/Trigger"),
        Some(&format!("cloudtrail CreateSecret ({event_id})"))
    );
    assert_eq!(status(&f), ("ACTIVE".into(), "FAILED".into()));
    let created_at = f.created_at().unwrap().to_string();
    // Nothing for the primary's Region: its checks passed.
    assert!(held(&w, "us-west-2").await.is_empty());

    // The same event again: unchanged, not imported again.
    run(&app, &created(&w, name)).await;
    let again = one(&w, "us-east-1", name, "KEY_DISABLED").await;
    assert_eq!(again.updated_at(), f.updated_at(), "not re-imported");

    // Fixed, and audited again: the same finding, resolved.
    set_key(&w, "us-east-1", "disabled-east", true).await;
    let report = run(&app, &created(&w, name)).await;
    assert!(
        report["findings"].as_array().unwrap().is_empty(),
        "{report:#}"
    );
    let resolved = one(&w, "us-east-1", name, "KEY_DISABLED").await;
    assert_eq!(resolved.id(), Some(id.as_str()), "the same Id");
    assert_eq!(status(&resolved), ("ARCHIVED".into(), "PASSED".into()));
    assert_eq!(resolved.created_at(), Some(created_at.as_str()));
    assert!(resolved.updated_at() > Some(created_at.as_str()));
    assert_eq!(
        held(&w, "us-east-1").await.len(),
        1,
        "updated, not a second one"
    );
    let item = state_item(&w, name).await.expect("the emptied item");
    assert!(item.contains("\"active\": M({})"), "{item}");
    assert!(
        item.contains("expires_at"),
        "TTL tidies an emptied item: {item}"
    );

    // Healthy from now on: nothing more is imported.
    run(&app, &created(&w, name)).await;
    let later = one(&w, "us-east-1", name, "KEY_DISABLED").await;
    assert_eq!(later.updated_at(), resolved.updated_at());
}

#[tokio::test]
async fn a_healthy_secret_creates_nothing() {
    let w = World::start();
    enable(&w).await;
    let app = w.app(&ON).await;
    let report = run(&app, &created(&w, "production/DBWest")).await;
    assert!(report["findings"].as_array().unwrap().is_empty());
    for region in ["us-west-2", "us-east-1", "eu-west-1"] {
        assert!(held(&w, region).await.is_empty(), "{region}");
    }
    assert_eq!(state_item(&w, "production/DBWest").await, None, "no write");
    assert!(w.published().await.is_empty(), "and no SNS report");
}

#[tokio::test]
async fn a_check_that_could_not_be_made_resolves_nothing_there() {
    let w = World::start();
    enable(&w).await;
    let name = "production/DisabledKey";
    run(&w.app(&ON).await, &created(&w, name)).await;
    assert_eq!(
        status(&one(&w, "us-east-1", name, "KEY_DISABLED").await),
        ("ACTIVE".into(), "FAILED".into())
    );

    // Fixed, but KMS in us-east-1 refuses the auditor this time.
    set_key(&w, "us-east-1", "disabled-east", true).await;
    let proxy = FaultProxy::start(
        &w.moto.endpoint,
        vec![Rule::new(
            Some("kms"),
            Some("us-east-1"),
            Fault::AccessDenied,
        )],
    )
    .await;
    let app = w.app_with_sdk(&ON, sdk_config(&proxy.endpoint).await);
    let report = run(&app, &created(&w, name)).await;
    assert_eq!(finding(&report, "AUDIT_INCOMPLETE")["region"], "us-east-1");
    assert_eq!(
        status(&one(&w, "us-east-1", name, "KEY_DISABLED").await),
        ("ACTIVE".into(), "FAILED".into()),
        "not resolved: the key could not be checked"
    );
    let incomplete = one(&w, "us-east-1", name, "AUDIT_INCOMPLETE").await;
    assert_eq!(
        status(&incomplete),
        ("ACTIVE".into(), "NOT_AVAILABLE".into())
    );

    // KMS answers again: both resolved.
    run(&w.app(&ON).await, &created(&w, name)).await;
    for code in ["KEY_DISABLED", "AUDIT_INCOMPLETE"] {
        assert_eq!(
            status(&one(&w, "us-east-1", name, code).await),
            ("ARCHIVED".into(), "PASSED".into()),
            "{code}"
        );
    }
}

#[tokio::test]
async fn a_refused_import_fails_the_invocation_and_the_state_waits() {
    let w = World::start();
    enable(&w).await;
    let name = "production/DisabledKey";
    let proxy = FaultProxy::start(
        &w.moto.endpoint,
        vec![Rule::new(Some("securityhub"), None, Fault::ServerError)],
    )
    .await;
    let app = w.app_with_sdk(&ON, sdk_config(&proxy.endpoint).await);
    let e = app
        .handle(&bytes(&created(&w, name)), Budget::unlimited())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("Security Hub: 1 of 1 findings of production/DisabledKey were not imported")
            && e.contains("securityhub:BatchImportFindings in us-east-1"),
        "{e}"
    );
    assert_eq!(
        proxy.seen("securityhub", "us-east-1"),
        3,
        "the SDK's 3 attempts"
    );
    assert_eq!(
        state_item(&w, name).await,
        None,
        "nothing held before an import"
    );
    // The SNS report still went out beside it.
    assert_eq!(w.published().await.len(), 1);

    // Lambda retries the event; Security Hub answers now.
    proxy.set_rules(Vec::new());
    run(&app, &created(&w, name)).await;
    assert_eq!(
        status(&one(&w, "us-east-1", name, "KEY_DISABLED").await),
        ("ACTIVE".into(), "FAILED".into())
    );
    assert!(state_item(&w, name).await.is_some());
}

#[tokio::test]
async fn a_sweep_imports_every_broken_secret_but_not_its_summary() {
    let w = World::start();
    enable(&w).await;
    let app = w.app(&ON).await;
    let summary = run(&app, &event("scheduled-sweep.json")).await;
    let swept = summary["sweep"]["secrets_with_findings"].as_u64().unwrap();
    assert!(swept >= 8, "{summary:#}");
    let mut all = held(&w, "us-east-1").await;
    all.extend(held(&w, "us-west-2").await);
    all.extend(held(&w, "eu-west-1").await);
    let ids: std::collections::BTreeSet<&str> = all.iter().filter_map(|f| f.id()).collect();
    assert_eq!(ids.len(), all.len(), "one finding per Id");
    let secrets: std::collections::BTreeSet<String> = all
        .iter()
        .filter_map(|f| f.product_fields())
        .filter_map(|p| p.get("replica-auditor/SecretName").cloned())
        .collect();
    assert_eq!(
        secrets.len() as u64,
        swept,
        "every secret with findings: {secrets:?}"
    );
    assert!(!secrets.contains("sweep") && !secrets.contains("production/DBWest"));
    assert!(all.iter().all(|f| status(f).0 == "ACTIVE"));
    assert_eq!(
        summary["sweep"]["reports_published"], swept,
        "Security Hub deliveries are not counted as published reports"
    );
}
