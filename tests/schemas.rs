//! Real outputs against the JSON Schemas of docs/schemas/ (issue 23): the
//! Lambda's reports and sweep summary as it returns and publishes them,
//! the command line's `--format json` lines, and an org sweep's cell
//! messages and summary; and every JSON sample in the docs that is such a
//! document, or a part of one.

mod support;

use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use support::org::{OrgWorld, budget, invoke};
use support::schema::assert_valid;
use support::*;

/// Which schema a report is: a sweep's summary, the org sweep's, or a report.
fn schema_of(report: &Value) -> &'static str {
    match report.get("sweep") {
        Some(s) if s.get("scope").is_some() => "org-summary.schema.json",
        Some(_) => "sweep-summary.schema.json",
        None => "report.schema.json",
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_lambdas_reports_and_sweep_summary_match_their_schemas() {
    let w = World::start();
    let app = w.app(&[("REMEDIATION", "dry-run")]).await;
    let mut returned = Vec::new();
    let mut dir: Vec<_> = std::fs::read_dir(root().join("events"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dir.sort();
    for path in dir {
        let event: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let result = run(&app, &event).await;
        if result.get("schema").is_some() {
            returned.push(result);
        }
    }
    let published: Vec<Value> = w.published().await.into_iter().map(|p| p.report).collect();
    let sweeps = published
        .iter()
        .filter(|r| r.get("sweep").is_some())
        .count();
    assert_eq!(sweeps, 1, "the sweep's summary was published");
    assert!(returned.len() >= 10 && published.len() >= 15);
    let docs: Vec<(&str, &Value)> = returned
        .iter()
        .chain(&published)
        .map(|r| (schema_of(r), r))
        .collect();
    assert_valid(&docs);
    // A document the schema refuses is refused: the validation is live.
    let mut broken = published[0].clone();
    broken["findings"] = json!([{"code": "NOT_A_CODE"}]);
    assert!(support::schema::validate(&[("report.schema.json", &broken)]).is_err());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_command_lines_json_lines_match_their_schemas() {
    let w = World::start();
    let cli = |args: &[&str]| -> Vec<Value> {
        let out = Command::new(env!("CARGO_BIN_EXE_replica-auditor"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_REGION", "us-west-2")
            .env("AWS_ENDPOINT_URL", &w.moto.endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .output()
            .unwrap();
        assert!(
            matches!(out.status.code(), Some(0 | 1)),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect()
    };
    let audit = cli(&[
        "audit",
        "production/Clash",
        "production/DoomedKey",
        "production/NoSuchSecret",
        "--format",
        "json",
    ]);
    let sweep = cli(&["sweep", "--format", "json"]);
    assert_eq!(audit.len(), 3);
    assert!(sweep.last().unwrap().get("sweep").is_some());
    let docs: Vec<(&str, &Value)> = audit
        .iter()
        .chain(&sweep)
        .map(|r| (schema_of(r), r))
        .collect();
    assert_valid(&docs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_org_sweeps_cells_and_summary_match_their_schemas() {
    let org = OrgWorld::start(1, 1, None);
    let world = &org.world;
    let sweep_queue = org.sweep_queue.as_str();
    let app = org.app(&world.moto.endpoint, &[]).await;
    let scheduled = json!({
        "version": "0", "id": "0b9d6f3e-schema-check", "detail-type": "Scheduled Event",
        "source": "aws.events", "account": MOTO_ACCOUNT, "time": "2026-11-23T12:00:00Z",
        "region": "us-west-2", "resources": [], "detail": {}
    });
    app.handle_invocation(&bytes(&scheduled), budget(60.0), "plan")
        .await
        .expect("the sweep is planned");
    let sqs = aws_sdk_sqs::Client::new(&world.sdk().await);
    let esm = esm::EventSourceMapping::new(sqs, sweep_queue).await;
    let deliveries = esm
        .run(2, Duration::from_secs(90), |_, event| {
            invoke(&app, event, 60.0)
        })
        .await;
    assert!(
        deliveries.len() >= 3,
        "one planning message, then one cell per account: {deliveries:?}"
    );
    assert!(
        deliveries
            .iter()
            .any(|d| d.body["schema"] == "replica-auditor.plan/v1"),
        "{deliveries:?}"
    );
    let published: Vec<Value> = world
        .published()
        .await
        .into_iter()
        .map(|p| p.report)
        .collect();
    let summaries: Vec<&Value> = published
        .iter()
        .filter(|r| r["sweep"]["scope"] == "organization")
        .collect();
    assert_eq!(summaries.len(), 1, "one org summary");
    let mut docs: Vec<(&str, &Value)> = deliveries
        .iter()
        .map(|d| match d.body["schema"].as_str() {
            Some("replica-auditor.plan/v1") => ("plan.schema.json", &d.body),
            _ => ("cell.schema.json", &d.body),
        })
        .collect();
    docs.extend(published.iter().map(|r| (schema_of(r), r)));
    assert_valid(&docs);
}

/// The ```json blocks of a Markdown file.
fn json_blocks(path: &str) -> Vec<String> {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    let mut out = Vec::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find("```json\n") {
        let body = &rest[i + "```json\n".len()..];
        let end = body.find("```").unwrap();
        out.push(body[..end].to_string());
        rest = &body[end..];
    }
    out
}

#[test]
fn the_docs_json_samples_are_what_the_code_writes() {
    // The report sample: the fixture the tests make with the code
    // (tests/notifications.rs), abridged (its second finding and replica
    // left out) but otherwise the same document.
    let fixture: Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/notifications/report.json")).unwrap(),
    )
    .unwrap();
    let samples = json_blocks("docs/report-format.md");
    let report: Value = serde_json::from_str(&samples[0]).expect("the report sample parses");
    for key in [
        "schema",
        "report_id",
        "generated_at",
        "trigger",
        "secret",
        "actions",
    ] {
        assert_eq!(
            report[key], fixture[key],
            "docs/report-format.md's sample: {key}"
        );
    }
    assert_eq!(report["findings"][0], fixture["findings"][0]);
    assert_eq!(report["replicas"][0], fixture["replicas"][0]);
    let mut docs = vec![("report.schema.json", &report)];
    // The sweep objects of the docs (report-format.md, organisations.md),
    // the action of remediation.md: each inside a report that is otherwise
    // the fixture's.
    let mut wrapped = Vec::new();
    for file in [
        "docs/report-format.md",
        "docs/organisations.md",
        "docs/remediation.md",
    ] {
        for block in json_blocks(file) {
            let b = block.trim();
            let v: Value = if let Some(inner) = b.strip_prefix("\"sweep\":") {
                let mut r = fixture.clone();
                r["trigger"]["source"] = "schedule".into();
                r["secret"]["name"] = "sweep".into();
                r["sweep"] = serde_json::from_str(inner.replace(", \"...\": 1", "").as_str())
                    .unwrap_or_else(|e| panic!("{file}: a sweep sample: {e}"));
                r
            } else if b.contains("\"action\"") && !b.contains("\"schema\"") {
                let mut r = fixture.clone();
                r["actions"] = json!([serde_json::from_str::<Value>(&b.replace(
                    "arn:aws:kms:...",
                    "arn:aws:kms:us-east-1:123456789012:key/k"
                ))
                .unwrap_or_else(|e| panic!("{file}: an action sample: {e}"))]);
                r
            } else {
                continue;
            };
            wrapped.push((file, v));
        }
    }
    assert!(
        wrapped.len() >= 3,
        "the sweep and action samples were found"
    );
    for (_, v) in &wrapped {
        docs.push((schema_of(v), v));
    }
    assert_valid(&docs);
}
