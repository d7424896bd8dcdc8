//! The auditor when AWS misbehaves: a fault-injecting proxy between the
//! SDK and moto refuses, fails, throttles, resets and stalls requests per
//! service and Region.

mod support;

use std::time::{Duration, Instant};

use replica_auditor::engine::Budget;
use serde_json::json;
use support::fault_proxy::{Fault, FaultProxy, Rule};
use support::*;

async fn through(
    w: &World,
    rules: Vec<Rule>,
) -> (
    FaultProxy,
    replica_auditor::engine::App<replica_auditor::aws::AwsClients>,
) {
    let proxy = FaultProxy::start(&w.moto.endpoint, rules).await;
    let app = w.app_with_sdk(&[], sdk_config(&proxy.endpoint).await);
    (proxy, app)
}

/// The report's one finding is AUDIT_INCOMPLETE in `region`, saying `says`.
fn only_incomplete(report: &serde_json::Value, region: &str, says: &str) {
    assert_eq!(
        codes(report),
        vec![("AUDIT_INCOMPLETE".to_string(), Some(region.to_string()))]
    );
    let m = finding(report, "AUDIT_INCOMPLETE")["message"]
        .as_str()
        .unwrap();
    assert!(m.contains(says), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_and_the_audit_completes() {
    let w = World::start();
    let (proxy, app) = through(
        &w,
        vec![
            Rule::new(Some("kms"), Some("us-east-1"), Fault::Throttle).times(2),
            Rule::new(
                Some("secretsmanager"),
                Some("us-west-2"),
                Fault::ServerError,
            )
            .times(2),
        ],
    )
    .await;
    let report = app
        .handle(
            &bytes(&event("replicate-secret-to-regions-doomed-key.json")),
            Budget::unlimited(),
        )
        .await
        .unwrap();
    // The same findings as without faults: nothing incomplete.
    assert_eq!(
        codes(&report),
        vec![(
            "KEY_PENDING_DELETION".to_string(),
            Some("us-east-1".to_string())
        )]
    );
    assert_eq!(proxy.injected("kms", "us-east-1"), 2);
    assert_eq!(proxy.injected("secretsmanager", "us-west-2"), 2);
    assert!(
        proxy.seen("kms", "us-east-1") >= 3,
        "throttled DescribeKey was retried"
    );
    assert_eq!(w.published().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_region_is_audit_incomplete_and_the_rest_is_audited() {
    let w = World::start();
    let (proxy, app) = through(&w, vec![Rule::new(None, Some("eu-west-1"), Fault::Refuse)]).await;
    let app_rules = w.app_with_sdk(
        &[("ALLOWED_REGIONS", "us-west-2,us-east-1")],
        sdk_config(&proxy.endpoint).await,
    );
    drop(app);
    let report = app_rules
        .handle(
            &bytes(&event("remove-regions-from-replication.json")),
            Budget::unlimited(),
        )
        .await
        .unwrap();
    let c = codes(&report);
    assert!(
        c.contains(&("AUDIT_INCOMPLETE".into(), Some("eu-west-1".into()))),
        "{c:?}"
    );
    // What could be judged without eu-west-1 still is.
    assert!(
        c.contains(&("REGION_NOT_ALLOWED".into(), Some("eu-west-1".into()))),
        "{c:?}"
    );
    assert!(
        c.contains(&("REQUIRED_REGION_MISSING".into(), Some("us-east-1".into()))),
        "{c:?}"
    );
    let incomplete = finding(&report, "AUDIT_INCOMPLETE")["message"]
        .as_str()
        .unwrap();
    assert!(
        incomplete.contains("secretsmanager:DescribeSecret in eu-west-1"),
        "{incomplete}"
    );
    assert!(
        proxy.seen("secretsmanager", "eu-west-1") >= 2,
        "refused connections are retried before giving up"
    );
    let published = w.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(published[0].report, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_mid_response_is_retried() {
    let w = World::start();
    let (proxy, app) = through(
        &w,
        vec![
            Rule::new(
                Some("secretsmanager"),
                Some("us-east-1"),
                Fault::ResetMidResponse,
            )
            .times(1),
        ],
    )
    .await;
    let report = app
        .handle(&bytes(&event("create-secret.json")), Budget::unlimited())
        .await
        .unwrap();
    assert_eq!(
        report["findings"],
        json!([]),
        "the retry got a whole answer"
    );
    assert_eq!(proxy.injected("secretsmanager", "us-east-1"), 1);
    assert!(proxy.seen("secretsmanager", "us-east-1") >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_failing_fails_the_invocation_and_says_what_failed() {
    let w = World::start();
    let (proxy, app) = through(&w, vec![Rule::new(Some("sns"), None, Fault::ServerError)]).await;
    let err = app
        .handle(
            &bytes(&event("replicate-secret-to-regions.json")),
            Budget::unlimited(),
        )
        .await
        .expect_err("an unpublished report fails the invocation");
    let msg = err.to_string();
    assert!(msg.contains("could not publish the finding report to arn:aws:sns:us-west-2:123456789012:replica-auditor-findings"), "{msg}");
    assert!(msg.contains("sns:Publish in us-west-2"), "{msg}");
    assert_eq!(
        proxy.seen("sns", "us-west-2"),
        3,
        "the SDK's standard mode tries 3 times"
    );
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "PublishFailed");
    assert!(w.published().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweep_reports_sns_refused_fail_the_invocation_after_the_summary() {
    let w = World::start();
    // The ten reports go out in one PublishBatch; SNS fails it (all three
    // attempts), then takes the summary.
    let rules = vec![Rule::new(Some("sns"), None, Fault::ServerError).times(3)];
    let (proxy, app) = through(&w, rules).await;
    let err = app
        .handle(&bytes(&event("scheduled-sweep.json")), Budget::unlimited())
        .await
        .expect_err("unpublished sweep reports fail the invocation");
    let msg = err.to_string();
    assert!(
        msg.starts_with("10 of 10 sweep reports could not be published"),
        "{msg}"
    );
    assert!(msg.contains("sns:PublishBatch in us-west-2"), "{msg}");
    assert_eq!(
        proxy.seen("sns", "us-west-2"),
        4,
        "3 attempts, then the summary"
    );
    let diag: lambda_runtime::Diagnostic = err.into();
    assert_eq!(diag.error_type, "PublishFailed");
    let published = w.published().await;
    assert_eq!(published.len(), 1, "only the summary got through");
    assert_eq!(published[0].report["sweep"]["reports_published"], 0);
    assert_eq!(published[0].report["sweep"]["secrets_with_findings"], 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_never_answering_still_publishes_before_the_deadline() {
    let w = World::start();
    let (proxy, app) = through(&w, vec![Rule::new(Some("kms"), None, Fault::Hang)]).await;
    let total = Duration::from_secs(4);
    let started = Instant::now();
    let budget = Budget::until(started + total, Budget::reserve_for(total));
    let report = app
        .handle(&bytes(&event("create-secret.json")), budget)
        .await
        .unwrap();
    let took = started.elapsed();
    assert!(
        took < total,
        "finished in {took:?}, inside the {total:?} deadline"
    );
    assert!(
        took >= total - Budget::reserve_for(total) - Duration::from_millis(200),
        "waited for KMS as long as it could: {took:?}"
    );
    assert_eq!(
        codes(&report),
        vec![
            (
                "AUDIT_INCOMPLETE".to_string(),
                Some("us-east-1".to_string())
            ),
            (
                "AUDIT_INCOMPLETE".to_string(),
                Some("us-west-2".to_string())
            )
        ]
    );
    let m = finding(&report, "AUDIT_INCOMPLETE")["message"]
        .as_str()
        .unwrap();
    assert!(
        m.contains("kms:DescribeKey") && m.contains("no answer within"),
        "{m}"
    );
    assert!(proxy.seen("kms", "us-east-1") >= 1);
    // Secrets Manager still answered: the replica was checked.
    assert_eq!(report["replicas"][0]["status"], "InSync");
    assert_eq!(w.published().await[0].report, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_denied_on_a_check_is_audit_incomplete_and_published() {
    let w = World::start();
    let (proxy, app) = through(
        &w,
        vec![Rule::new(
            Some("kms"),
            Some("us-east-1"),
            Fault::AccessDenied,
        )],
    )
    .await;
    let report = app
        .handle(&bytes(&event("create-secret.json")), Budget::unlimited())
        .await
        .unwrap();
    only_incomplete(
        &report,
        "us-east-1",
        "kms:DescribeKey in us-east-1: access denied",
    );
    // Access denied is not retried: one attempt each of DescribeKey and
    // GetKeyPolicy (sent together, the key being named by ARN).
    assert_eq!(proxy.seen("kms", "us-east-1"), 2);
    assert_eq!(w.published().await[0].report, report);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_resource_policy_read_is_audit_incomplete_naming_the_call() {
    let w = World::start();
    let (proxy, app) = through(
        &w,
        vec![
            Rule::new(
                Some("secretsmanager"),
                Some("us-west-2"),
                Fault::AccessDenied,
            )
            .action("GetResourcePolicy"),
        ],
    )
    .await;
    let report = app
        .handle(&bytes(&event("create-secret.json")), Budget::unlimited())
        .await
        .unwrap();
    // Only the policy read is missing: the healthy secret is otherwise clean.
    only_incomplete(
        &report,
        "us-west-2",
        "secretsmanager:GetResourcePolicy in us-west-2: access denied",
    );
    assert_eq!(
        proxy.injected("secretsmanager", "us-west-2"),
        1,
        "not retried"
    );
    assert_eq!(w.published().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_describe_organization_is_logged_not_a_finding_and_asked_once() {
    let w = World::start();
    let (proxy, app) = through(
        &w,
        vec![Rule::new(Some("organizations"), None, Fault::AccessDenied)],
    )
    .await;
    for _ in 0..2 {
        let report = app
            .handle(&bytes(&event("create-secret.json")), Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(
            report["findings"],
            json!([]),
            "neither a finding nor a failure"
        );
    }
    let asked: usize = ["us-east-1", "us-west-2"]
        .iter()
        .map(|r| proxy.seen("organizations", r))
        .sum();
    assert_eq!(asked, 1, "once per cold start, denied or not");
    assert!(w.published().await.is_empty());
}

/// The first invocation after a cold start learns the own organisation and
/// reads the resource policy without a sequential round trip of its own:
/// with every AWS call held 300 ms, a healthy primary-Region secret (nothing
/// to publish) costs 2 round trips (describe; then replica, keys, key
/// policies, resource policy and DescribeOrganization at once), not 3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_policy_read_and_the_organisation_add_no_round_trip() {
    let w = World::start();
    let rtt = Duration::from_millis(300);
    let (proxy, app) = through(&w, vec![Rule::new(None, None, Fault::Delay(rtt))]).await;
    let started = Instant::now();
    let report = app
        .handle(&bytes(&event("create-secret.json")), Budget::unlimited())
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(report["findings"], json!([]));
    let asked: usize = ["us-east-1", "us-west-2"]
        .iter()
        .map(|r| proxy.seen("organizations", r))
        .sum();
    assert_eq!(asked, 1, "the organisation was asked in this invocation");
    assert!(took >= 2 * rtt && took < 3 * rtt, "{took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transient_describe_organization_failure_is_asked_again_next_time() {
    let w = World::start();
    let (proxy, app) = through(
        &w,
        // Every attempt of the first invocation's call (the SDK makes 3).
        vec![Rule::new(Some("organizations"), None, Fault::ServerError).times(3)],
    )
    .await;
    let asked = || -> usize {
        ["us-east-1", "us-west-2"]
            .iter()
            .map(|r| proxy.seen("organizations", r))
            .sum()
    };
    for expected in [3, 4, 4] {
        let report = app
            .handle(&bytes(&event("create-secret.json")), Budget::unlimited())
            .await
            .unwrap();
        assert_eq!(
            report["findings"],
            json!([]),
            "neither a finding nor a failure"
        );
        assert_eq!(asked(), expected, "asked again only until it answers");
    }
}
