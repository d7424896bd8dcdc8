//! The email text and the chat notification of a report, against fixtures
//! (`tests/fixtures/notifications/`), and their bounds on hostile input.
//! `UPDATE_FIXTURES=1 cargo test --test notifications` rewrites the
//! expected files after a deliberate change of wording; review the diff.

mod support;

use std::path::PathBuf;

use replica_auditor::aws::AwsClients;
use replica_auditor::engine::App;
use replica_auditor::model::{Code, Finding};
use replica_auditor::notify::{self, MAX_CHAT_DESCRIPTION_CHARS, MAX_EMAIL_BYTES};
use replica_auditor::report::Report;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/notifications")
        .join(name)
}

/// The report the fixtures are made from, made by the code: the demo's
/// ReplicateSecretToRegions event (`events/`) parsed, the state AWS would
/// describe for it (us-east-1 Failed on a name clash with another secret
/// still there, eu-west-1 InSync on the AWS-managed key while the primary
/// has a customer-managed key), the audit, the remediation plan and
/// `report::build`. Only the report's id and time are fixed. Nothing here
/// is written by hand but that state: `report.json` is compared with it
/// (and rewritten by `UPDATE_FIXTURES=1`), and the email text and chat
/// notification are made from it.
fn report() -> Report {
    use replica_auditor::event::{Incoming, parse_bytes};
    use replica_auditor::model::{
        Action, ActionOutcome, KeyCheck, KeyDetails, KeyInfo, KeyRole, Lookup, Remediation,
        RemediationMode, ReplicaCheck, ReplicaStatus, ReplicationState, Rules, SecretState,
        Severity, Snapshot,
    };
    use replica_auditor::plan::{Decision, plan};
    let raw =
        std::fs::read(support::root().join("events/replicate-secret-to-regions.json")).unwrap();
    let Ok(Incoming::ApiCall(trigger)) = parse_bytes(&raw) else {
        panic!("the sample event is an audited call")
    };
    let arn = "arn:aws:secretsmanager:us-west-2:123456789012:secret:production/Clash-AbCdEf";
    let key = |region: &str, id: &str| {
        KeyDetails {
        key_id: id.into(),
        arn: format!("arn:aws:kms:{region}:123456789012:key/{id}"),
        state: "Enabled".into(),
        aws_managed: false,
        policy: Some(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Enable IAM User Permissions","Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"kms:*","Resource":"*"}]}"#.into(),
        ),
    }
    };
    let west = key("us-west-2", "0b2d7c3e-51f4-4a9e-8c61-2f7d9e4a1b03");
    let east = key("us-east-1", "5416b884-729f-4736-a019-dcf61d4b821c");
    let failed = ReplicaStatus {
        region: "us-east-1".into(),
        kms_key_id: Some(east.arn.clone()),
        status: Some(ReplicationState::Failed),
        status_message: Some(
            "Replication failed: Secret name production/Clash already exists in region us-east-1."
                .into(),
        ),
    };
    let weak = ReplicaStatus {
        region: "eu-west-1".into(),
        // As DescribeSecret names the AWS-managed key in ReplicationStatus.
        kms_key_id: Some("alias/aws/secretsmanager".into()),
        status: Some(ReplicationState::InSync),
        status_message: Some("Replication succeeded".into()),
    };
    let primary = SecretState {
        arn: arn.into(),
        name: "production/Clash".into(),
        region: "us-west-2".into(),
        primary_region: Some("us-west-2".into()),
        kms_key_id: Some(west.arn.clone()),
        replication: vec![failed.clone(), weak.clone()],
        ..Default::default()
    };
    let clashing = SecretState {
        arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:production/Clash-XyZ123".into(),
        name: "production/Clash".into(),
        region: "us-east-1".into(),
        ..Default::default()
    };
    let replica = SecretState {
        arn: arn.replace("us-west-2", "eu-west-1"),
        name: "production/Clash".into(),
        region: "eu-west-1".into(),
        primary_region: Some("us-west-2".into()),
        ..Default::default()
    };
    let mut snapshot = Snapshot::empty("production/Clash");
    snapshot.account = Some("123456789012".into());
    snapshot.primary = Lookup::Found(primary);
    snapshot.replicas = vec![
        ReplicaCheck {
            status: failed,
            presence: Lookup::Found(clashing),
        },
        ReplicaCheck {
            status: weak,
            presence: Lookup::Found(replica),
        },
    ];
    snapshot.keys = vec![
        KeyCheck {
            region: "us-west-2".into(),
            role: KeyRole::Primary,
            key_ref: Some(west.arn.clone()),
            info: KeyInfo::Described(west),
        },
        KeyCheck {
            region: "us-east-1".into(),
            role: KeyRole::Replica,
            key_ref: Some(east.arn.clone()),
            info: KeyInfo::Described(east),
        },
        KeyCheck {
            region: "eu-west-1".into(),
            role: KeyRole::Replica,
            key_ref: None,
            info: KeyInfo::AwsManagedDefault,
        },
    ];
    snapshot.secret_policy_read = true;
    let findings = replica_auditor::audit::audit(&snapshot, Some(&trigger), &Rules::default());
    let settings = Remediation {
        mode: RemediationMode::On,
        ..Remediation::default()
    };
    let actions = plan(&snapshot, &findings, &settings, false)
        .into_iter()
        .map(|d| match d {
            Decision::Skip { region, detail } => Action {
                action: "retry_replication".into(),
                region,
                outcome: ActionOutcome::Skipped,
                detail,
            },
            other => panic!("a clash with the other secret still there is skipped: {other:?}"),
        })
        .collect();
    let report = replica_auditor::report::build(
        replica_auditor::report::TriggerInfo::from_cloudtrail(&trigger),
        &snapshot,
        findings,
        actions,
        Severity::Low,
        "f672ca40-8d74-4dec-80a5-0c40f020a075".into(),
        "2026-11-23T20:54:24.788513241Z".into(),
    );
    matches_fixture(
        "report.json",
        &(serde_json::to_string_pretty(&report).unwrap() + "\n"),
    );
    report
}

fn matches_fixture(name: &str, got: &str) {
    let path = fixture(name);
    if std::env::var_os("UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap();
    assert_eq!(got, want, "{name} differs from the fixture");
}

#[test]
fn email_text_matches_its_fixture() {
    let text = notify::email_text(&report());
    matches_fixture("email.txt", &text);
    // What a person needs to act, whatever the wording.
    for needed in [
        "[HIGH] replica-auditor: production/Clash: 2 findings",
        "production/Clash",
        "Account: 123456789012",
        "HIGH REPLICA_FAILED in us-east-1",
        "MEDIUM REPLICA_KEY_WEAKER_THAN_PRIMARY in eu-west-1",
        "What to do: A different secret named production/Clash already exists",
        "retry_replication us-east-1: skipped",
        "f672ca40-8d74-4dec-80a5-0c40f020a075",
    ] {
        assert!(text.contains(needed), "email lacks {needed:?}:\n{text}");
    }
}

#[test]
fn chat_message_matches_its_fixture_and_the_custom_notification_schema() {
    let chat = notify::chat_message(&report());
    matches_fixture(
        "chat.json",
        &(serde_json::to_string_pretty(&chat).unwrap() + "\n"),
    );
    assert_eq!(chat["version"], "1.0");
    assert_eq!(chat["source"], "custom");
    let content = &chat["content"];
    assert_eq!(content["textType"], "client-markdown");
    assert!(
        content["title"]
            .as_str()
            .unwrap()
            .contains("production/Clash")
    );
    let description = content["description"].as_str().unwrap();
    assert!(
        description.contains("*HIGH* `REPLICA_FAILED` in us-east-1"),
        "{description}"
    );
    let steps: Vec<&str> = content["nextSteps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    assert_eq!(steps.len(), 2, "one step per distinct remediation");
    assert_eq!(
        chat["metadata"]["threadId"],
        "arn:aws:secretsmanager:us-west-2:123456789012:secret:production/Clash-AbCdEf"
    );
}

#[test]
fn outside_text_cannot_mention_everyone_or_forge_lines_in_chat_or_email() {
    let mut r = report();
    r.secret.name = "<!channel> ping `x` @here\nFORGED: line".into();
    r.findings[0].message = "see <https://evil.example|your bank> & <@U123>\r\nFORGED".into();
    let chat = notify::chat_message(&r);
    let description = chat["content"]["description"].as_str().unwrap();
    for bad in [
        "<!channel>",
        "<https://",
        "<@U123>",
        "\n\nFORGED",
        "\nFORGED",
    ] {
        assert!(!description.contains(bad), "{bad:?} in {description}");
    }
    assert!(description.contains("&lt;!channel&gt;"), "{description}");
    let email = notify::email_text(&r);
    assert!(!email.contains("\nFORGED"), "{email}");
}

#[test]
fn huge_reports_stay_within_the_bounds() {
    let mut r = report();
    r.findings = (0..500)
        .map(|i| Finding {
            id: format!("id-{i}"),
            code: Code::AuditIncomplete,
            severity: Code::AuditIncomplete.severity(),
            region: Some("us-east-1".into()),
            message: format!("{i}: {}", "m".repeat(1900)),
            remediation: format!("fix {i} {}", "r".repeat(400)),
            cause: None,
            gap_kind: None,
        })
        .collect();
    r.summary.count = 500;
    let email = notify::email_text(&r);
    assert!(email.len() <= MAX_EMAIL_BYTES, "{}", email.len());
    assert!(
        email.contains("more: see the JSON report"),
        "the cut is said"
    );
    let chat = notify::chat_message(&r);
    let description = chat["content"]["description"].as_str().unwrap();
    assert!(description.chars().count() <= MAX_CHAT_DESCRIPTION_CHARS);
    assert!(description.contains("more in report"), "{description}");
    assert!(chat["content"]["nextSteps"].as_array().unwrap().len() <= notify::MAX_CHAT_NEXT_STEPS);
    let v: Value = serde_json::from_str(&chat.to_string()).unwrap();
    assert_eq!(v, chat);
}

/// A chat topic in the world's moto with an SQS queue subscribed, and the
/// auditor publishing to it (remediation off): the SQS client, the queue
/// URL and the auditor.
async fn with_chat_topic(w: &support::World) -> (aws_sdk_sqs::Client, String, App<AwsClients>) {
    let sdk = w.sdk().await;
    let sns = aws_sdk_sns::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let chat_topic = sns
        .create_topic()
        .name("chatops")
        .send()
        .await
        .unwrap()
        .topic_arn
        .unwrap();
    let queue = sqs
        .create_queue()
        .queue_name("chat-subscriber")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&aws_sdk_sqs::types::QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&chat_topic)
        .protocol("sqs")
        .endpoint(&queue_arn)
        .send()
        .await
        .unwrap();
    let app = w
        .app(&[
            ("CHAT_TOPIC_ARN", chat_topic.as_str()),
            ("REMEDIATION", "off"),
        ])
        .await;
    (sqs, queue, app)
}

/// The chat notifications an SQS subscriber received.
async fn chat_received(sqs: &aws_sdk_sqs::Client, queue: &str) -> Vec<Value> {
    support::drain(sqs, queue)
        .await
        .iter()
        .map(|body| {
            let envelope: Value = serde_json::from_str(body).unwrap();
            serde_json::from_str(envelope["Message"].as_str().unwrap()).unwrap()
        })
        .collect()
}

/// Against moto: with CHAT_TOPIC_ARN set, the findings topic's SQS
/// subscriber still gets exactly the v1 report the handler returned (the
/// `default` of the per-protocol message), and the chat topic's subscriber
/// gets the custom notification for the same report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqs_gets_the_v1_report_unchanged_and_the_chat_topic_gets_the_notification() {
    let w = support::World::start();
    let (sqs, queue, app) = with_chat_topic(&w).await;
    let returned = support::run(&app, &support::event("replicate-secret-to-regions.json")).await;
    assert!(
        returned["summary"]["count"].as_u64().unwrap() > 0,
        "{returned:#}"
    );

    let published = w.published().await;
    assert_eq!(published.len(), 1);
    assert_eq!(
        published[0].report, returned,
        "the SQS subscriber's report is the v1 report"
    );
    assert_eq!(published[0].report["schema"], "replica-auditor.report/v1");

    let chat = chat_received(&sqs, &queue).await;
    assert_eq!(chat.len(), 1, "{chat:#?}");
    assert_eq!(chat[0]["version"], "1.0");
    assert_eq!(chat[0]["source"], "custom");
    assert_eq!(chat[0]["id"], returned["report_id"]);
    assert_eq!(chat[0]["content"]["textType"], "client-markdown");
    let title = chat[0]["content"]["title"].as_str().unwrap();
    assert!(
        title.contains(returned["secret"]["name"].as_str().unwrap()),
        "{title}"
    );
}

#[test]
fn a_sweep_summary_reads_as_a_sweep() {
    let mut v: Value = serde_json::to_value(report()).unwrap();
    v["secret"] = serde_json::json!({"arn": null, "name": "sweep", "primary_region": null});
    v["findings"] = serde_json::json!([]);
    v["actions"] = serde_json::json!([]);
    v["summary"] = serde_json::json!({"highest_severity": null, "count": 0});
    v["sweep"] = serde_json::json!({
        "regions": ["us-west-2", "us-east-1"], "secrets_seen": 212, "secrets_audited": 211,
        "secrets_with_findings": 10, "by_code": {"KEY_DISABLED": 2, "REPLICA_FAILED": 8},
        "reports_published": 10, "not_reached": 0, "kms_cache_hits": 828, "kms_calls": 13,
        "replicas_from_listing": 208, "replica_listing_calls": 4, "duration_ms": 989
    });
    let r: Report = serde_json::from_value(v).unwrap();
    let email = notify::email_text(&r);
    assert!(
        email.starts_with("[INFO] replica-auditor: sweep of 212 secrets: 10 with findings\n"),
        "{email}"
    );
    assert!(
        email.contains(
            "Sweep of 212 secrets in us-west-2, us-east-1: 211 audited, 10 with findings"
        ),
        "{email}"
    );
    assert!(
        email.contains("Findings by code: KEY_DISABLED 2, REPLICA_FAILED 8."),
        "{email}"
    );
    assert!(!email.contains("Secret:"), "{email}");
    let chat = notify::chat_message(&r);
    let d = chat["content"]["description"].as_str().unwrap();
    assert!(
        d.starts_with("Sweep of 212 secrets in us-west-2, us-east-1: *10* with findings"),
        "{d}"
    );
    assert_eq!(chat["metadata"]["relatedResources"], serde_json::json!([]));
}

/// A sweep sends each per-secret report and its summary to both topics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_sends_every_report_to_the_chat_topic_too() {
    let w = support::World::start();
    let (sqs, queue, app) = with_chat_topic(&w).await;
    let summary = support::run(&app, &support::event("scheduled-sweep.json")).await;
    let published = summary["sweep"]["reports_published"].as_u64().unwrap() as usize;
    assert!(published > 2, "{summary:#}");
    let reports = w.published().await;
    assert_eq!(
        reports.len(),
        published + 1,
        "per-secret reports and the summary"
    );
    let chat = chat_received(&sqs, &queue).await;
    assert_eq!(
        chat.len(),
        reports.len(),
        "one chat notification per report"
    );
    let mut want: Vec<&str> = reports
        .iter()
        .map(|p| p.report["report_id"].as_str().unwrap())
        .collect();
    let mut got: Vec<&str> = chat.iter().map(|c| c["id"].as_str().unwrap()).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "the same reports, as chat notifications");
}
