//! The cargo-lambda deploy path (docs/deploy.md, "The other path:
//! cargo-lambda"), checked offline: the Lambda binary started with exactly
//! the environment `deploy/cargo-lambda.env` gives it (the account and
//! Region put in) and what Lambda adds, against moto; and the role policy
//! `deploy/cargo-lambda-policy.json` against the calls the code makes in
//! that configuration. `scripts/test.sh` builds the binary with
//! `cargo lambda build --bin replica-auditor-lambda`.

mod support;

use std::collections::BTreeSet;

use replica_auditor::aws::{
    IAM_ACTIONS, MEMBER_ROLE_ACTIONS, ORG_SWEEP_ACTIONS, SECURITY_HUB_ACTIONS, STATE_TABLE_ACTIONS,
    WRITE_ACTIONS,
};
use replica_auditor::config::REMEDIATION_OFF_NOTE;
use serde_json::Value;
use support::*;

/// The documented environment, for `account` and `region`.
fn documented_env(account: &str, region: &str) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("deploy/cargo-lambda.env")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let (k, v) = l.split_once('=').expect("KEY=VALUE");
            let v = v
                .replace("111122223333", account)
                .replace("us-east-1", region);
            (k.to_string(), v)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bare_binary_starts_with_the_documented_environment_and_only_reports() {
    let w = World::start();
    let mut env = documented_env(MOTO_ACCOUNT, "us-west-2");
    let names: BTreeSet<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.contains("STATE_TABLE") && !names.contains("REMEDIATION"),
        "the documented path has no state table and leaves REMEDIATION unset"
    );
    let topic = env.iter().find(|(k, _)| k == "FINDINGS_TOPIC_ARN").unwrap();
    assert_eq!(
        topic.1, w.topic_arn,
        "the documented topic name is the one made"
    );
    // What Lambda gives every function (the Runtime API's variables are
    // set by support::lambda); the endpoint stands in for AWS.
    for (k, v) in [
        ("AWS_REGION", "us-west-2"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ENDPOINT_URL", w.moto.endpoint.as_str()),
    ] {
        env.push((k.into(), v.into()));
    }
    let event = event("replicate-secret-to-regions.json");
    // The bootstrap `cargo lambda build` made (scripts/test.sh), else the
    // same binary as cargo builds it.
    let binary = std::env::var_os("REPLICA_AUDITOR_BOOTSTRAP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_replica-auditor-lambda").into());
    let mut function = lambda::Environment::start_binary(&binary, &env, &event, "bare").await;
    let (outcome, report) = function.result().await;
    assert_eq!(
        outcome, "response",
        "the function started and answered: {report}"
    );
    let stdout = function.stdout().await;
    assert!(
        stdout.contains("start-up note") && stdout.contains(&REMEDIATION_OFF_NOTE[..40]),
        "start-up logs that remediation is off: {stdout}"
    );
    assert_eq!(codes(&report)[0].0, "REPLICA_FAILED", "{report}");
    assert_eq!(
        report["actions"],
        Value::Array(vec![]),
        "nothing was changed"
    );
    support::schema::assert_valid(&[("report.schema.json", &report)]);
    let published = w.published().await;
    assert_eq!(published.len(), 1, "the report was published");
}

#[test]
fn the_documented_role_grants_the_reads_the_code_makes_and_no_write() {
    let policy: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("deploy/cargo-lambda-policy.json")).unwrap(),
    )
    .unwrap();
    let mut granted = BTreeSet::new();
    for st in policy["Statement"].as_array().unwrap() {
        assert_eq!(st["Effect"], "Allow");
        let actions = match &st["Action"] {
            Value::String(a) => vec![a.clone()],
            Value::Array(a) => a.iter().map(|a| a.as_str().unwrap().to_string()).collect(),
            other => panic!("{other}"),
        };
        granted.extend(actions);
    }
    // Without STATE_TABLE, Security Hub or the org sweep, and with
    // remediation off: the code's actions less the writes, the state
    // table's, Security Hub's, the org sweep's and the member role's.
    let not_needed: BTreeSet<&str> = WRITE_ACTIONS
        .iter()
        .chain(&STATE_TABLE_ACTIONS)
        .chain(&SECURITY_HUB_ACTIONS)
        .chain(&ORG_SWEEP_ACTIONS)
        .chain(&MEMBER_ROLE_ACTIONS)
        .copied()
        .collect();
    let mut want: BTreeSet<String> = IAM_ACTIONS
        .iter()
        .filter(|a| !not_needed.contains(*a))
        .map(|a| a.to_string())
        .collect();
    // Lambda's own logging (what AWSLambdaBasicExecutionRole grants).
    want.extend(
        [
            "logs:CreateLogGroup",
            "logs:CreateLogStream",
            "logs:PutLogEvents",
        ]
        .map(String::from),
    );
    assert_eq!(granted, want);
    let text = serde_json::to_string(&policy).unwrap();
    assert!(!text.contains("GetSecretValue") && !text.contains("\"*:*\""));
}
