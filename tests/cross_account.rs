//! Cross-account replicas (issue 26) end to end, against moto and the test
//! proxy: moto has none of the new DescribeSecret members, so the proxy
//! adds `CrossAccountPrimary` / `CrossAccountReplicas` to moto's answers per
//! scenario, shaped as Secrets Manager's model (botocore 1.44.8) says, and
//! the auditor reads them through its SDK interceptor
//! (src/aws/cross_account.rs). Two accounts: the auditor's own
//! (123456789012) and a member (222233334444, tests/moto/member.py), both
//! in ACCOUNT_IDS; 999988887777 and 210987654321 are outside every trust.
//! Every new finding code is produced here.

mod support;

use serde_json::{Value, json};
use support::fault_proxy::FaultProxy;
use support::{World, codes, event, finding};

const OWN: &str = "123456789012";
const MEMBER: &str = "222233334444";
const STRANGER: &str = "999988887777";
const SCOPE: (&str, &str) = ("ACCOUNT_IDS", "123456789012,222233334444");
const TRUSTED: (&str, &str) = ("TRUSTED_ACCOUNT_IDS", "222233334444");

/// The member's secret `member/Healthy` (us-west-2, customer keys): the
/// cross-account replica of the own `production/DBWest` in these tests.
fn member_healthy(w: &World) -> String {
    let member = support::seed_member(w, MEMBER);
    member["secrets"]["member/Healthy"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The world, a proxy in front of its moto, the auditor through the proxy,
/// and the two secrets: the own primary and the member's replica.
async fn setup() -> (World, FaultProxy, App, String, String) {
    setup_with(&[]).await
}

type App = replica_auditor::engine::App<replica_auditor::aws::AwsClients>;

/// [`setup`], with `vars` in the auditor's environment too.
async fn setup_with(vars: &[(&str, &str)]) -> (World, FaultProxy, App, String, String) {
    let w = World::start();
    let replica = member_healthy(&w);
    let primary = w.secrets["production/DBWest"].clone();
    let proxy = FaultProxy::start(&w.moto.endpoint, vec![]).await;
    let mut env = vec![("REMEDIATION", "off"), SCOPE, TRUSTED];
    env.extend_from_slice(vars);
    let app = w.app_with_sdk(&env, support::sdk_config(&proxy.endpoint).await);
    (w, proxy, app, primary, replica)
}

/// `CrossAccountReplicas`, as the model shapes it (one entry).
fn replicas_member(
    replica: &str,
    role: Option<&str>,
    status: &str,
    message: Option<&str>,
) -> Value {
    let mut entry = json!({"ReplicaSecretARN": replica, "ReplicationStatus": status});
    if let Some(r) = role {
        entry["ReplicationRoleARN"] = json!(r);
    }
    if let Some(m) = message {
        entry["StatusMessage"] = json!(m);
    }
    json!({"CrossAccountReplicas": [entry]})
}

/// `CrossAccountPrimary`, as the model shapes it.
fn primary_member(primary: &str, status: &str) -> Value {
    json!({"CrossAccountPrimary": {"PrimarySecretARN": primary, "ReplicationStatus": status}})
}

/// The sample AssociateCrossAccountReplica (or Disassociate) event, naming
/// `primary` and `replica`.
fn link_event(sample: &str, primary: &str, replica: &str) -> Value {
    let mut ev = event(sample);
    ev["detail"]["requestParameters"]["secretId"] = json!(primary);
    ev["detail"]["requestParameters"]["crossAccountReplicaARN"] = json!(replica);
    ev["detail"]["responseElements"]["aRN"] = json!(primary);
    ev["detail"]["responseElements"]["crossAccountReplicaARN"] = json!(replica);
    ev
}

/// `report` holds a `code` finding of `severity` whose message contains `text`.
fn says(report: &Value, code: &str, severity: &str, text: &str) {
    let f = finding(report, code);
    assert_eq!(f["severity"], severity, "{f:#}");
    let message = f["message"].as_str().unwrap();
    assert!(message.contains(text), "{code}: {message:?} lacks {text:?}");
}

fn cross_codes(report: &Value) -> Vec<String> {
    codes(report)
        .into_iter()
        .map(|(c, _)| c)
        .filter(|c| {
            c.starts_with("CROSS_ACCOUNT") || c == "REPLICA_DETACHED" || c == "KEY_AWS_MANAGED"
        })
        .collect()
}

async fn run(app: &App, ev: &Value) -> Value {
    support::run(app, ev).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_in_sync_and_naming_each_other_report_nothing_new() {
    let (_w, proxy, app, primary, replica) = setup().await;
    // Without a cross-account member, nothing enters the member account.
    let plain = run(&app, &event("create-secret.json")).await;
    assert!(plain.get("cross_account").is_none(), "{plain:#}");
    assert!(proxy.assume_role_calls(MEMBER).is_empty());

    proxy.add_describe_members(
        &primary,
        replicas_member(
            &replica,
            Some("arn:aws:iam::123456789012:role/secrets-replication"),
            "InSync",
            None,
        ),
    );
    proxy.add_describe_members(&replica, primary_member(&primary, "InSync"));
    let report = run(
        &app,
        &link_event("associate-cross-account-replica.json", &primary, &replica),
    )
    .await;
    assert_eq!(cross_codes(&report), Vec::<String>::new(), "{report:#}");
    assert_eq!(
        report["cross_account"]["replicas"][0]["replica_arn"],
        replica
    );
    assert_eq!(report["cross_account"]["replicas"][0]["status"], "InSync");
    // The replica was described in the member's own account.
    assert_eq!(proxy.assume_role_calls(MEMBER).len(), 1);
    let in_member = proxy
        .requests("secretsmanager", "DescribeSecret")
        .into_iter()
        .filter(|c| c.account.as_deref() == Some(MEMBER))
        .count();
    assert_eq!(in_member, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_link_with_a_foreign_role_that_the_replica_does_not_name_back() {
    let (_w, proxy, app, primary, replica) = setup().await;
    let role = format!("arn:aws:iam::{STRANGER}:role/replicator");
    proxy.add_describe_members(
        &primary,
        replicas_member(
            &replica,
            Some(&role),
            "Failed",
            Some("Access denied to the KMS key of the replica"),
        ),
    );
    // The member's secret is no cross-account replica at all.
    let report = run(
        &app,
        &link_event("associate-cross-account-replica.json", &primary, &replica),
    )
    .await;
    let mut got = cross_codes(&report);
    got.sort();
    assert_eq!(
        got,
        vec![
            "CROSS_ACCOUNT_MISMATCH",
            "CROSS_ACCOUNT_REPLICA_FAILED",
            "CROSS_ACCOUNT_ROLE_OUTSIDE_PRIMARY_ACCOUNT"
        ],
        "{report:#}"
    );
    // The report, with its cross_account links, matches its schema.
    support::schema::validate(&[("report.schema.json", &report)]).expect("valid report");
    says(
        &report,
        "CROSS_ACCOUNT_REPLICA_FAILED",
        "HIGH",
        "Access denied to the KMS key of the replica",
    );
    says(
        &report,
        "CROSS_ACCOUNT_ROLE_OUTSIDE_PRIMARY_ACCOUNT",
        "HIGH",
        STRANGER,
    );
    says(
        &report,
        "CROSS_ACCOUNT_MISMATCH",
        "HIGH",
        "is not a cross-account replica",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_in_an_untrusted_account_is_reported_and_not_entered() {
    let (_w, proxy, app, primary, _) = setup().await;
    let stranger =
        format!("arn:aws:secretsmanager:us-west-2:{STRANGER}:secret:production/DBWest-StRaNg");
    proxy.add_describe_members(&primary, replicas_member(&stranger, None, "InSync", None));
    let report = run(
        &app,
        &link_event("associate-cross-account-replica.json", &primary, &stranger),
    )
    .await;
    assert_eq!(
        cross_codes(&report),
        vec!["CROSS_ACCOUNT_REPLICA_OUTSIDE_TRUST"],
        "{report:#}"
    );
    says(
        &report,
        "CROSS_ACCOUNT_REPLICA_OUTSIDE_TRUST",
        "HIGH",
        STRANGER,
    );
    // Out of the auditor's scope: not cross-checked, and not an error.
    assert!(proxy.assume_role_calls(STRANGER).is_empty());
    assert!(
        codes(&report).iter().all(|(c, _)| c != "AUDIT_INCOMPLETE"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_detached_replica_names_who_detached_it() {
    let (_w, proxy, app, primary, replica) = setup().await;
    proxy.add_describe_members(&primary, replicas_member(&replica, None, "Detached", None));
    proxy.add_describe_members(&replica, primary_member(&primary, "Detached"));
    let report = run(
        &app,
        &link_event(
            "disassociate-cross-account-replica.json",
            &primary,
            &replica,
        ),
    )
    .await;
    assert_eq!(cross_codes(&report), vec!["REPLICA_DETACHED"], "{report:#}");
    says(
        &report,
        "REPLICA_DETACHED",
        "MEDIUM",
        "arn:aws:iam::123456789012:user/alice",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replicas_side_stalled_and_fed_from_outside_trust() {
    let (_w, proxy, app, _, replica) = setup().await;
    let stranger = format!("arn:aws:secretsmanager:us-west-2:{STRANGER}:secret:feed-PrImArY");
    let two_hours_ago = time::OffsetDateTime::now_utc().unix_timestamp() - 7200;
    let mut members = primary_member(&stranger, "Pending");
    members["LastChangedDate"] = json!(two_hours_ago);
    proxy.add_describe_members(&replica, members);
    // The replica's owner (the member) created it as a replica of the
    // stranger's primary: its CloudTrail event, forwarded.
    let mut ev = event("create-secret-cross-account-replica.json");
    ev["account"] = json!(MEMBER);
    ev["detail"]["recipientAccountId"] = json!(MEMBER);
    ev["detail"]["requestParameters"]["name"] = json!("member/Healthy");
    ev["detail"]["requestParameters"]["crossAccountPrimaryARN"] = json!(stranger);
    ev["detail"]["responseElements"]["aRN"] = json!(replica);
    let report = run(&app, &ev).await;
    assert_eq!(report["secret"]["account"], MEMBER);
    let mut got = cross_codes(&report);
    got.sort();
    assert_eq!(
        got,
        vec![
            "CROSS_ACCOUNT_PRIMARY_OUTSIDE_TRUST",
            "CROSS_ACCOUNT_REPLICA_STALLED"
        ],
        "{report:#}"
    );
    says(
        &report,
        "CROSS_ACCOUNT_REPLICA_STALLED",
        "MEDIUM",
        "Pending for at least 120 minutes",
    );
    assert_eq!(report["cross_account"]["primary"]["primary_arn"], stranger);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cross_account_replica_on_the_aws_managed_key() {
    let (w, proxy, app, _, _) = setup().await;
    let sm = aws_sdk_secretsmanager::Client::new(&w.sdk().await);
    let arn = sm
        .create_secret()
        .name("partner/Feed")
        .secret_string("replicated-value-never-read")
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let primary = "arn:aws:secretsmanager:us-west-2:210987654321:secret:partner/Feed-Pr1m4R";
    proxy.add_describe_members(&arn, primary_member(primary, "InSync"));
    let mut ev = event("create-secret-cross-account-replica.json");
    ev["detail"]["responseElements"]["aRN"] = json!(arn);
    let report = run(&app, &ev).await;
    assert_eq!(report["secret"]["account"], OWN);
    let mut got = cross_codes(&report);
    got.sort();
    assert_eq!(
        got,
        vec!["CROSS_ACCOUNT_PRIMARY_OUTSIDE_TRUST", "KEY_AWS_MANAGED"],
        "{report:#}"
    );
    says(
        &report,
        "KEY_AWS_MANAGED",
        "MEDIUM",
        "cross-account replica",
    );
    // Reported, never remediated: no write reached moto.
    assert!(
        proxy
            .requests("secretsmanager", "RemoveRegionsFromReplication")
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_hub_and_the_topic_carry_the_cross_account_findings() {
    let (w, proxy, app, primary, replica) = setup_with(&[("SECURITY_HUB", "on")]).await;
    let hub = aws_sdk_securityhub::Client::new(&w.sdk().await);
    Box::pin(hub.enable_security_hub().send())
        .await
        .expect("EnableSecurityHub");
    proxy.add_describe_members(
        &primary,
        replicas_member(&replica, None, "Failed", Some("KMS access denied")),
    );
    run(
        &app,
        &link_event("associate-cross-account-replica.json", &primary, &replica),
    )
    .await;

    let held = support::security_hub::findings(&w.sdk().await, "us-west-2").await;
    let failed = held
        .iter()
        .find(|f| f.generator_id() == Some("CROSS_ACCOUNT_REPLICA_FAILED"))
        .unwrap_or_else(|| panic!("no CROSS_ACCOUNT_REPLICA_FAILED in Security Hub: {held:#?}"));
    assert_eq!(
        failed.types(),
        [
            "Software and Configuration Checks/AWS Security Best Practices/Secrets Manager Cross-Account Replication"
        ]
    );
    assert!(
        held.iter()
            .any(|f| f.generator_id() == Some("CROSS_ACCOUNT_MISMATCH"))
    );

    let published = w.published().await;
    assert_eq!(published.len(), 1);
    let codes = published[0].attributes["codes"]["Value"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        codes.contains("CROSS_ACCOUNT_REPLICA_FAILED") && codes.contains("CROSS_ACCOUNT_MISMATCH"),
        "{codes}"
    );
    assert!(
        published[0].subject.starts_with("[HIGH]"),
        "{}",
        published[0].subject
    );
}

/// `Pending` and `Detached` are `StatusType` values shared with Region
/// replicas (the shim reports them as a Region replica's status).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn region_replicas_pending_and_detached_are_classified() {
    for (status, code, severity) in [
        ("Pending", "REPLICA_IN_PROGRESS", "LOW"),
        ("Detached", "REPLICA_DETACHED", "MEDIUM"),
    ] {
        let w = World::start_with(&[("SHIM_REPLICA_STATUS", status)]);
        let report = run(
            &w.app(&[("REMEDIATION", "off")]).await,
            &event("create-secret.json"),
        )
        .await;
        assert_eq!(
            codes(&report),
            vec![(code.to_string(), Some("us-east-1".to_string()))],
            "{status}: {report:#}"
        );
        says(&report, code, severity, status);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_counts_cross_account_replicas_by_status_and_audits_the_link() {
    let (_w, proxy, app, primary, replica) = setup().await;
    proxy.add_describe_members(
        &primary,
        replicas_member(
            &replica,
            Some("arn:aws:iam::123456789012:role/secrets-replication"),
            "Failed",
            Some("The replica's KMS key is disabled."),
        ),
    );
    proxy.add_describe_members(&replica, primary_member(&primary, "Failed"));
    let scheduled = json!({
        "version": "0", "id": "sweep-cross-account", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": OWN, "time": "2026-12-04T00:00:00Z",
        "region": "us-west-2", "resources": [], "detail": {}
    });
    let summary = run(&app, &scheduled).await;
    // One cross-account replica, Failed, counted from its primary's side.
    assert_eq!(
        summary["sweep"]["cross_account_replicas"],
        json!({"Failed": 1}),
        "{summary:#}"
    );
    // The link was audited as an event's would be: its own finding.
    let published = _w.published().await;
    let dbwest = published
        .iter()
        .find(|p| p.report["secret"]["arn"] == primary.as_str())
        .expect("production/DBWest's report");
    says(
        &dbwest.report,
        "CROSS_ACCOUNT_REPLICA_FAILED",
        "HIGH",
        "The replica's KMS key is disabled.",
    );
}
