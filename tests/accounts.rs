//! Events from the organisation's member accounts, against moto: each is
//! audited in the account its `account` field names, through the member
//! role (moto's AssumeRole gives credentials that act in that account, with
//! its own secrets); a member role that cannot be assumed is
//! AUDIT_INCOMPLETE naming it, and the report is still published; the
//! member role's own retries are not remediated again; ACCOUNT_IDS limits
//! the accounts audited.

mod support;

use serde_json::{Value, json};
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::{World, codes, event, run, seed_member};

const MEMBER: &str = "222233334444";
const MEMBER_ROLE: &str = "arn:aws:iam::222233334444:role/ReplicaAuditorMember";
/// Another member account, whose secrets a principal of MEMBER names.
const OTHER: &str = "333344445555";
/// The accounts the auditor may act in: its own and the members'.
const SCOPE: (&str, &str) = ("ACCOUNT_IDS", "123456789012,222233334444,333344445555");

/// ReplicateSecretToRegions on `arn` in us-west-2, as the member account's
/// CloudTrail records it and its forwarding rule delivers it to the
/// central bus: `account` is the member's.
fn member_event(arn: &str, user_identity: Value) -> Value {
    let mut ev = event("replicate-secret-to-regions.json");
    ev["account"] = json!(MEMBER);
    ev["detail"]["recipientAccountId"] = json!(MEMBER);
    ev["detail"]["userIdentity"] = user_identity;
    ev["detail"]["requestParameters"] = json!({
        "secretId": arn,
        "addReplicaRegions": [{"region": "us-east-1"}],
        "forceOverwriteReplicaSecret": false
    });
    ev["detail"]["responseElements"] = json!({"arn": arn});
    ev
}

fn member_user() -> Value {
    json!({"type": "IAMUser", "arn": format!("arn:aws:iam::{MEMBER}:user/bob"), "accountId": MEMBER})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_from_a_member_account_is_audited_in_that_account() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let clash = member["secrets"]["member/Clash"].as_str().unwrap();
    assert!(clash.contains(&format!(":{MEMBER}:secret:")), "{clash}");
    // Named by name only, as CreateSecret's requestParameters would: the
    // account comes from the event, not from an ARN.
    let mut ev = member_event(clash, member_user());
    ev["detail"]["requestParameters"]["secretId"] = json!("member/Clash");
    ev["detail"]["responseElements"] = Value::Null;

    let app = w.app(&[("REMEDIATION", "off"), SCOPE]).await;
    let report = run(&app, &ev).await;
    assert_eq!(report["secret"]["account"], MEMBER, "{report:#}");
    assert_eq!(report["secret"]["arn"], clash);
    assert_eq!(report["trigger"]["account"], MEMBER);
    assert_eq!(
        codes(&report),
        vec![("REPLICA_FAILED".to_string(), Some("us-east-1".to_string()))],
        "the member's own secret, seen with the member's credentials: {report:#}"
    );
    let published = w.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].report["secret"]["account"], MEMBER);

    // The own account has no secret of that name: had the audit used the
    // own credentials it would have found nothing.
    let own = run(&app, &event("replicate-secret-to-regions.json")).await;
    assert_eq!(own["secret"]["account"], "123456789012");
    assert!(
        own["secret"]["arn"]
            .as_str()
            .unwrap()
            .contains(":123456789012:")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_role_that_cannot_be_assumed_is_audit_incomplete_and_still_published() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let clash = member["secrets"]["member/Clash"].as_str().unwrap();
    let proxy = FaultProxy::start(
        &w.moto.endpoint,
        vec![Rule::new(Some("sts"), None, Fault::AccessDenied)],
    )
    .await;
    let app = w.app_with_sdk(
        &[("REMEDIATION", "off"), SCOPE],
        support::sdk_config(&proxy.endpoint).await,
    );
    let report = run(&app, &member_event(clash, member_user())).await;
    assert_eq!(report["secret"]["account"], MEMBER, "{report:#}");
    let incomplete: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["code"] == "AUDIT_INCOMPLETE")
        .collect();
    assert_eq!(incomplete.len(), 1, "{report:#}");
    let message = incomplete[0]["message"].as_str().unwrap();
    for part in ["sts:AssumeRole", MEMBER_ROLE, "access denied"] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(proxy.injected("sts", "us-west-2") >= 1);
    assert_eq!(
        proxy.seen("secretsmanager", "us-west-2"),
        0,
        "nothing was asked of any account with the wrong credentials"
    );
    let published = w.published().await;
    assert_eq!(published.len(), 1, "the report is still published");
    assert_eq!(published[0].codes()[0].0, "AUDIT_INCOMPLETE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_credentials_are_assumed_once_and_kept_for_later_events() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let healthy = member["secrets"]["member/Healthy"].as_str().unwrap();
    // A proxy that passes everything, to count the calls.
    let proxy = FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let app = w.app_with_sdk(
        &[("REMEDIATION", "off"), SCOPE],
        support::sdk_config(&proxy.endpoint).await,
    );
    for _ in 0..3 {
        let report = run(&app, &member_event(healthy, member_user())).await;
        assert_eq!(report["findings"], json!([]), "{report:#}");
        assert_eq!(report["secret"]["account"], MEMBER);
    }
    assert_eq!(
        proxy.seen("sts", "us-west-2"),
        1,
        "one AssumeRole for three events (the own account is known from the identity)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_member_roles_own_retry_is_audited_but_not_remediated_again() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let clash = member["secrets"]["member/Clash"].as_str().unwrap();
    // The retry the auditor made in the member account, through the member
    // role, as that account's CloudTrail records it.
    let own_retry = member_event(
        clash,
        json!({
            "type": "AssumedRole",
            "arn": format!("arn:aws:sts::{MEMBER}:assumed-role/ReplicaAuditorMember/replica-auditor"),
            "accountId": MEMBER,
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": MEMBER_ROLE, "accountId": MEMBER}}
        }),
    );
    let app = w.app(&[("ALLOW_FORCE_OVERWRITE", "true"), SCOPE]).await;
    let report = run(&app, &own_retry).await;
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{report:#}");
    assert_eq!(actions[0]["outcome"], "skipped");
    assert!(
        actions[0]["detail"]
            .as_str()
            .unwrap()
            .contains("loop guard"),
        "{report:#}"
    );
    assert_eq!(codes(&report)[0].0, "REPLICA_FAILED");

    // The same failure after a person's call is retried, in the member
    // account: the loop guard, not a broken remediation, held it back.
    let report = run(&app, &member_event(clash, member_user())).await;
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{report:#}");
    assert_ne!(actions[0]["outcome"], "skipped", "{report:#}");
    assert_eq!(actions[0]["region"], "us-east-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn account_ids_limits_the_accounts_audited() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let clash = member["secrets"]["member/Clash"].as_str().unwrap();
    let app = w
        .app(&[("REMEDIATION", "off"), ("ACCOUNT_IDS", "123456789012")])
        .await;
    let out = run(&app, &member_event(clash, member_user())).await;
    assert_eq!(out["status"], "refused", "{out:#}");
    assert_eq!(
        out["reason"],
        format!("account {MEMBER} is not in ACCOUNT_IDS"),
        "{out:#}"
    );
    assert!(w.published().await.is_empty());
    // The own account is still audited.
    let own = run(&app, &event("replicate-secret-to-regions.json")).await;
    assert_eq!(own["secret"]["account"], "123456789012");
}

/// The configuration of a test reading the member account as itself:
/// its member role, assumed here as the auditor assumes it.
async fn member_sdk(w: &World) -> aws_config::SdkConfig {
    let sdk = w.sdk().await;
    let out = aws_sdk_sts::Client::new(&sdk)
        .assume_role()
        .role_arn(MEMBER_ROLE)
        .role_session_name("test-reader")
        .send()
        .await
        .expect("AssumeRole");
    let c = out.credentials().unwrap();
    sdk.into_builder()
        .credentials_provider(aws_sdk_sts::config::SharedCredentialsProvider::new(
            aws_sdk_sts::config::Credentials::new(
                c.access_key_id(),
                c.secret_access_key(),
                Some(c.session_token().to_string()),
                None,
                "member",
            ),
        ))
        .build()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_secrets_security_hub_findings_are_imported_as_the_member_account() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let clash = member["secrets"]["member/Clash"].as_str().unwrap();
    let app = w
        .app(&[("SECURITY_HUB", "on"), ("REMEDIATION", "off"), SCOPE])
        .await;
    let report = run(&app, &member_event(clash, member_user())).await;
    assert_eq!(codes(&report)[0].0, "REPLICA_FAILED", "{report:#}");

    // moto keeps findings per calling account: the member's Security Hub
    // holds the finding, imported with the member role's credentials ...
    let theirs = support::security_hub::findings(&member_sdk(&w).await, "us-east-1").await;
    assert_eq!(theirs.len(), 1, "{theirs:#?}");
    let f = &theirs[0];
    assert_eq!(f.aws_account_id(), Some(MEMBER));
    assert_eq!(f.generator_id(), Some("REPLICA_FAILED"));
    assert_eq!(
        f.product_arn(),
        Some(format!("arn:aws:securityhub:us-east-1:{MEMBER}:product/{MEMBER}/default").as_str())
    );
    assert_eq!(
        f.resources()[0].id(),
        Some(clash.replace(":us-west-2:", ":us-east-1:").as_str())
    );
    // ... and the central account's holds nothing of it.
    assert!(
        support::security_hub::findings(&w.sdk().await, "us-east-1")
            .await
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_naming_another_accounts_secret_is_reported_from_the_event_alone() {
    let w = World::start();
    let other = seed_member(&w, OTHER);
    // OTHER's secret with a Failed replica: had the auditor entered OTHER,
    // it would have found (and retried) it.
    let theirs = other["secrets"]["member/Clash"].as_str().unwrap();
    assert!(theirs.contains(&format!(":{OTHER}:secret:")), "{theirs}");
    let proxy = FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let app = w.app_with_sdk(
        &[("ALLOW_FORCE_OVERWRITE", "true"), SCOPE],
        support::sdk_config(&proxy.endpoint).await,
    );
    // MEMBER's CloudTrail copy of bob's call on OTHER's secret, denied.
    let mut ev = member_event(theirs, member_user());
    ev["detail"]["errorCode"] = json!("AccessDeniedException");
    ev["detail"]["errorMessage"] = json!("User: bob is not authorized <@here>");
    ev["detail"]["responseElements"] = Value::Null;
    let report = run(&app, &ev).await;
    assert_eq!(
        codes(&report),
        vec![
            ("API_CALL_FAILED".to_string(), Some("us-west-2".to_string())),
            (
                "CROSS_ACCOUNT_CALL".to_string(),
                Some("us-west-2".to_string())
            ),
        ],
        "{report:#}"
    );
    assert_eq!(report["trigger"]["account"], MEMBER);
    assert_eq!(report["secret"]["account"], OTHER);
    assert_eq!(
        report["secret"]["arn"],
        Value::Null,
        "nothing was described"
    );
    assert_eq!(report["actions"], json!([]), "nothing was remediated");
    let cross = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "CROSS_ACCOUNT_CALL")
        .unwrap();
    let message = cross["message"].as_str().unwrap();
    for part in [MEMBER, OTHER, "failed with AccessDeniedException"] {
        assert!(message.contains(part), "{part:?} not in {message:?}");
    }
    assert!(
        proxy.assume_role_calls(OTHER).is_empty(),
        "no AssumeRole into {OTHER}"
    );
    assert!(
        proxy.requests("sts", "AssumeRole").is_empty(),
        "nor into {MEMBER}: nothing to inspect there"
    );
    for region in ["us-west-2", "us-east-1", "eu-west-1"] {
        assert_eq!(proxy.seen("secretsmanager", region), 0, "{region}");
    }
    assert_eq!(w.published().await.len(), 1, "the report is published");

    // OTHER's own copy of a call on its own secret is audited in OTHER.
    let mut owners = member_event(theirs, member_user());
    owners["account"] = json!(OTHER);
    let report = run(&app, &owners).await;
    assert_eq!(report["secret"]["arn"], theirs, "{report:#}");
    assert_eq!(codes(&report)[0].0, "REPLICA_FAILED");
    assert_eq!(
        proxy.assume_role_calls(OTHER).len(),
        1,
        "one AssumeRole, into {OTHER}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_same_named_role_in_another_account_is_not_the_auditors_own() {
    let w = World::start();
    let member = seed_member(&w, MEMBER);
    let clash = member["secrets"]["member/Clash"].as_str().unwrap();
    // A role named like the member role, in an account outside the scope,
    // admitted by the secret's resource policy.
    let stranger_role = "arn:aws:iam::999988887777:role/ReplicaAuditorMember";
    let ev = member_event(
        clash,
        json!({
            "type": "AssumedRole",
            "arn": "arn:aws:sts::999988887777:assumed-role/ReplicaAuditorMember/replica-auditor",
            "accountId": "999988887777",
            "sessionContext": {"sessionIssuer": {"type": "Role", "arn": stranger_role, "accountId": "999988887777"}}
        }),
    );
    let app = w.app(&[("ALLOW_FORCE_OVERWRITE", "true"), SCOPE]).await;
    let report = run(&app, &ev).await;
    let actions = report["actions"].as_array().unwrap();
    assert_eq!(actions.len(), 1, "{report:#}");
    assert_ne!(
        actions[0]["outcome"], "skipped",
        "not held back by the loop guard: {report:#}"
    );
    assert_eq!(actions[0]["region"], "us-east-1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_whose_account_is_not_twelve_digits_is_malformed() {
    let w = World::start();
    let app = w.app(&[("REMEDIATION", "off"), SCOPE]).await;
    for account in [json!("12345678901"), json!("1234567890123"), json!(null)] {
        let mut ev = event("replicate-secret-to-regions.json");
        ev["account"] = account.clone();
        let out = app
            .handle(
                &support::bytes(&ev),
                replica_auditor::engine::Budget::unlimited(),
            )
            .await;
        match out {
            Err(replica_auditor::engine::HandlerError::Event(e)) => {
                assert!(e.to_string().contains("`account`"), "{account}: {e}")
            }
            other => panic!("{account}: expected a malformed event, got {other:?}"),
        }
    }
    assert!(w.published().await.is_empty());
}
