//! The CloudWatch EMF lines the Lambda binary writes to stdout, captured
//! from real runs against moto and checked against the EMF specification
//! (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html):
//! an event with findings, a healthy one, a sweep, and an AUDIT_INCOMPLETE
//! (the validator: tests/support/emf.rs; the command line's: tests/cli.rs).

mod support;

use serde_json::Value;
use support::emf::{emf_lines, validate};
use support::{World, event, free_port, lambda};

use replica_auditor::metrics;

/// The stdout of one Lambda invocation of `event` with `vars`.
async fn run(w: &World, vars: &[(&str, &str)], event: &Value, id: &str) -> String {
    let mut vars = vars.to_vec();
    vars.extend([("REMEDIATION", "off"), ("RUST_LOG", "info")]);
    let env = w.function_env(&w.moto.endpoint, &vars);
    let mut function = lambda::Environment::start(&env, event, id).await;
    let (outcome, body) = function.result().await;
    assert_eq!(outcome, "response", "{body}");
    function.stdout().await
}

fn one_line(stdout: &str) -> Value {
    let lines = emf_lines(stdout);
    assert_eq!(lines.len(), 1, "one EMF line per invocation: {stdout}");
    let line = lines.into_iter().next().unwrap();
    validate(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    line
}

#[test]
fn the_validator_rejects_what_the_spec_forbids() {
    let good: Value = serde_json::json!({
        "_aws": {"Timestamp": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64,
                 "CloudWatchMetrics": [{"Namespace": "ReplicaAuditor", "Dimensions": [["Region"]],
                                        "Metrics": [{"Name": "Audits", "Unit": "Count"}]}]},
        "Region": "us-east-1", "Audits": 1
    });
    assert_eq!(validate(&good), Ok(()));
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        validate(&v).expect_err(&v.to_string())
    };
    broken(&|v| {
        v.as_object_mut()
            .unwrap()
            .remove("Audits")
            .map(|_| ())
            .unwrap()
    });
    broken(&|v| v["Audits"] = "1".into());
    broken(&|v| v["_aws"]["Timestamp"] = "now".into());
    broken(&|v| v["_aws"]["CloudWatchMetrics"][0]["Namespace"] = "Replica Auditor".into());
    broken(&|v| {
        v["_aws"]
            .as_object_mut()
            .unwrap()
            .remove("CloudWatchMetrics")
            .map(|_| ())
            .unwrap()
    });
    broken(&|v| {
        v["_aws"]["CloudWatchMetrics"][0]["Dimensions"] = serde_json::json!([["secret"]]);
        v["secret"] = "prod/db".into();
    });
    broken(&|v| {
        let many: Vec<Value> = (0..101)
            .map(|i| serde_json::json!({"Name": format!("M{i}")}))
            .collect();
        for i in 0..101 {
            v[format!("M{i}")] = 1.into();
        }
        v["_aws"]["CloudWatchMetrics"][0]["Metrics"] = many.into();
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_with_findings_and_a_healthy_one() {
    let w = World::start();
    let weak = run(&w, &[], &event("create-secret-weak-replica.json"), "weak").await;
    let line = one_line(&weak);
    // A real line for the README: `cargo test --test metrics -- --nocapture`.
    println!("{line}");
    assert_eq!(line["Trigger"], "cloudtrail");
    assert_eq!(line["Region"], "us-west-2");
    assert_eq!(line["Audits"], 1);
    // WeakReplica's one finding: REPLICA_KEY_WEAKER_THAN_PRIMARY (MEDIUM).
    assert_counts(
        &line,
        &[
            ("FindingsCritical", 0),
            ("FindingsHigh", 0),
            ("FindingsMedium", 1),
            ("FindingsLow", 0),
            ("FindingsInfo", 0),
        ],
    );
    assert!(line["AuditDuration"].as_u64().is_some());
    assert!(line.get("SecretsSwept").is_none());
    // The tracing summary is its own line; the EMF line is not inside it.
    let summary = weak
        .lines()
        .find(|l| l.contains("\"audit summary\""))
        .expect("the audit summary log line");
    assert!(!summary.contains("_aws"), "{summary}");

    let healthy = run(
        &w,
        &[
            ("REQUIRE_CUSTOMER_MANAGED_KEY", "true"),
            ("REQUIRED_REGIONS", "us-east-1"),
        ],
        &event("create-secret.json"),
        "healthy",
    )
    .await;
    let line = one_line(&healthy);
    assert_eq!(line["Audits"], 1);
    let names = metrics::FINDINGS
        .iter()
        .map(|(_, n)| *n)
        .chain(metrics::AWS_CALL_ERRORS.iter().map(|(_, n)| *n));
    for n in names {
        assert_eq!(line[n], 0, "{n}: {line}");
    }
    assert_eq!(line["secret"], "production/DBWest", "a property");

    let off = run(
        &w,
        &[("METRICS", "off")],
        &event("create-secret.json"),
        "off",
    )
    .await;
    assert!(emf_lines(&off).is_empty(), "{off}");
    assert!(off.contains("\"audit summary\""), "{off}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_has_one_line_with_secrets_swept() {
    let w = World::start();
    let out = run(&w, &[], &event("scheduled-sweep.json"), "sweep").await;
    let line = one_line(&out);
    assert_eq!(line["Trigger"], "schedule");
    // The world (tests/moto/world.py) lists 12 secrets in us-west-2
    // (Retired is deleted); Promoted has no replicas left, so 11 audited.
    // Its 10 broken secrets have 12 findings (tests/sweep.rs):
    // CRITICAL: DoomedKey's KEY_PENDING_DELETION, PublicKey's KEY_POLICY_PUBLIC;
    // HIGH: KEY_DISABLED x2 (DisabledKey, ClashOnDisabledKey), LostKey's
    //   KEY_NOT_FOUND, PartnerKey's KEY_POLICY_UNTRUSTED_ACCOUNT,
    //   REPLICA_FAILED x2 (the two clashes), Hijacked's REPLICA_MISSING,
    //   EuReplica's REQUIRED_REGION_MISSING;
    // MEDIUM: REPLICA_KEY_WEAKER_THAN_PRIMARY x2 (WeakReplica, EuReplica).
    assert_counts(
        &line,
        &[
            ("SecretsSwept", 12),
            ("Audits", 11),
            ("FindingsCritical", 2),
            ("FindingsHigh", 8),
            ("FindingsMedium", 2),
            ("FindingsLow", 0),
            ("FindingsInfo", 0),
        ],
    );
}

/// Each named metric of `line` has exactly the value given.
fn assert_counts(line: &Value, expected: &[(&str, u64)]) {
    let got: Vec<(&str, Option<u64>)> = expected
        .iter()
        .map(|(n, _)| (*n, line[*n].as_u64()))
        .collect();
    let want: Vec<(&str, Option<u64>)> = expected.iter().map(|(n, v)| (*n, Some(*v))).collect();
    assert_eq!(got, want, "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_incomplete_counts_as_an_aws_call_error() {
    let w = World::start();
    // KMS at a closed port: every key check is AUDIT_INCOMPLETE (transport).
    let closed = format!("http://127.0.0.1:{}", free_port());
    let out = run(
        &w,
        &[("AWS_ENDPOINT_URL_KMS", &closed)],
        &event("create-secret.json"),
        "kms-down",
    )
    .await;
    let line = one_line(&out);
    // DBWest has two keys (app-west in us-west-2, app-east in us-east-1):
    // one AUDIT_INCOMPLETE (MEDIUM) each, both for a transport error.
    assert_counts(
        &line,
        &[
            ("AwsCallErrorsTransport", 2),
            ("AwsCallErrorsAccessDenied", 0),
            ("AwsCallErrorsThrottled", 0),
            ("AwsCallErrorsService", 0),
            ("AwsCallErrorsTimeout", 0),
            ("FindingsCritical", 0),
            ("FindingsHigh", 0),
            ("FindingsMedium", 2),
            ("FindingsLow", 0),
        ],
    );
}
