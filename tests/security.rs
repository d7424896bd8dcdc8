//! The function's own security: it never reads a secret value, its IAM
//! policy holds exactly what the code calls, and its logs can neither leak
//! key policies or secret values nor be forged with line breaks.

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use replica_auditor::aws::{
    EVENT_SOURCE_ACTIONS, IAM_ACTIONS, IMPLIED_KMS_ACTIONS, MEMBER_ROLE_ACTIONS, ORG_SWEEP_ACTIONS,
    POLICY_LEDGER_ACTIONS, SECURITY_HUB_ACTIONS, STATE_TABLE_ACTIONS, UNSCOPED_ACTIONS,
    WRITE_ACTIONS,
};
use replica_auditor::engine::Budget;
use serde_json::{Value, json};
use support::*;

fn source_files() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut dirs = vec![root.join("src"), root.join("crates")];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push((
                    p.display().to_string(),
                    std::fs::read_to_string(&p).unwrap(),
                ));
            }
        }
    }
    assert!(out.len() >= 10, "found the sources");
    out
}

fn template() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("template.yaml")).unwrap()
}

#[test]
fn no_secret_value_is_ever_read() {
    let mut scanned = source_files();
    scanned.push(("template.yaml".into(), template()));
    for (name, text) in scanned {
        let lower = text.to_ascii_lowercase();
        for forbidden in [
            "getsecretvalue",
            "get_secret_value",
            "batchgetsecretvalue",
            "batch_get_secret_value",
            "secret_string",
        ] {
            assert!(!lower.contains(forbidden), "{name} mentions {forbidden}");
        }
    }
}

/// One granted action: (action, resource, condition, the template
/// condition it is granted under: `RemediationOn`, `SecurityHubOn` or none).
type Grant = (String, Value, Value, Option<String>);

/// Every IAM action granted to the function in template.yaml.
fn template_actions() -> Vec<Grant> {
    let doc = support::template::parsed();
    let mut out = Vec::new();
    for (_, res) in doc["Resources"].as_object().unwrap() {
        for policy in res["Properties"]["Policies"]
            .as_array()
            .into_iter()
            .flatten()
        {
            for st in policy["Statement"].as_array().unwrap() {
                let (st, when) = support::template::granted_when(st);
                let actions = match &st["Action"] {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => a.iter().map(|x| x.as_str().unwrap().to_string()).collect(),
                    other => panic!("Action {other}"),
                };
                for a in actions {
                    out.push((
                        a,
                        st["Resource"].clone(),
                        st["Condition"].clone(),
                        when.map(str::to_string),
                    ));
                }
            }
        }
    }
    out
}

#[test]
fn iam_policy_is_exactly_what_the_code_calls() {
    let granted = template_actions();
    let mut names: Vec<&str> = granted.iter().map(|(a, ..)| a.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    let mut expected: Vec<&str> = IAM_ACTIONS
        .iter()
        .chain(IMPLIED_KMS_ACTIONS.iter())
        .chain(EVENT_SOURCE_ACTIONS.iter())
        .copied()
        .collect();
    expected.sort_unstable();
    expected.dedup();
    assert_eq!(names, expected);
    for (action, resource, condition, when) in &granted {
        let when = when.as_deref();
        // The org sweep's calls, and only they, are granted only when it is on.
        let org_only = ORG_SWEEP_ACTIONS.contains(&action.as_str())
            || EVENT_SOURCE_ACTIONS.contains(&action.as_str());
        assert_eq!(
            when == Some("OrgSweepOn"),
            org_only,
            "{action}: granted only when the org sweep is on, and only the org sweep's calls are"
        );
        if action.starts_with("sqs:") {
            assert_eq!(
                resource,
                &json!({"!GetAtt": "SweepQueue.Arn"}),
                "{action} only on the sweep queue"
            );
        }
        assert!(!action.contains('*'), "wildcard action {action}");
        if !UNSCOPED_ACTIONS.contains(&action.as_str()) {
            assert_ne!(resource, &json!("*"), "{action} on every resource");
        }
        if WRITE_ACTIONS.contains(&action.as_str()) {
            assert!(
                when == Some("RemediationOn")
                    || (when == Some("SecurityHubOn")
                        && SECURITY_HUB_ACTIONS.contains(&action.as_str())),
                "{action} must be granted only when remediation (or, for the state table, Security Hub) is on"
            );
        }
        if SECURITY_HUB_ACTIONS.contains(&action.as_str())
            && !WRITE_ACTIONS.contains(&action.as_str())
        {
            assert_eq!(
                when,
                Some("SecurityHubOn"),
                "{action} only when Security Hub is on"
            );
        }
        if action == "securityhub:BatchImportFindings" {
            assert_eq!(
                resource,
                &json!({"!Sub": "arn:${AWS::Partition}:securityhub:*:${AWS::AccountId}:product/${AWS::AccountId}/default"}),
                "imports only into the account's own default product"
            );
        }
        if action == "dynamodb:PutItem" {
            assert!(
                when.is_some(),
                "PutItem only when remediation or Security Hub is on"
            );
        }
        if IMPLIED_KMS_ACTIONS.contains(&action.as_str()) {
            // The findings topic's key: this stack's, or the central topic's.
            let findings_key = resource
                == &json!({"!If": ["ExternalTopicKey", {"!Ref": "FindingsTopicKeyArn"}, {"!GetAtt": "FindingsKey.Arn"}]});
            let via_secrets_manager =
                condition["StringLike"]["kms:ViaService"] == "secretsmanager.*.amazonaws.com";
            assert!(
                findings_key || (via_secrets_manager && when == Some("RemediationOn")),
                "{action}: only on the findings key, or through Secrets Manager when remediation is on"
            );
        }
        if STATE_TABLE_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                resource,
                &json!({"!If": ["OwnStateTable", {"!GetAtt": "StateTable.Arn"}, {"!Ref": "StateTableArn"}]}),
                "{action} only on the state table"
            );
        }
        if POLICY_LEDGER_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                when, None,
                "{action}: every sweep and event keeps the policy ledger"
            );
            assert!(STATE_TABLE_ACTIONS.contains(&action.as_str()));
        }
        if action.starts_with("dynamodb:") {
            assert!(
                STATE_TABLE_ACTIONS.contains(&action.as_str()),
                "{action}: the only DynamoDB calls are on the state table"
            );
        }
        if MEMBER_ROLE_ACTIONS.contains(&action.as_str()) {
            assert_eq!(
                resource,
                &json!({"!Sub": "arn:${AWS::Partition}:iam::*:role/${MemberRoleName}"}),
                "{action} only on the member role"
            );
        }
        if action == "sns:Publish" {
            assert_eq!(
                resource,
                &json!([
                    {"!If": ["OwnTopic", {"!Ref": "FindingsTopic"}, {"!Ref": "FindingsTopicArn"}]},
                    {"!If": ["ChatNotifications", {"!Ref": "ChatTopicArn"}, {"!Ref": "AWS::NoValue"}]}
                ]),
                "sns:Publish only on the findings topic, and the chat topic when one is given"
            );
        }
    }
}

#[test]
fn log_statements_never_carry_policies_or_values() {
    for (name, text) in source_files() {
        for mac in ["info!(", "warn!(", "error!(", "debug!(", "trace!("] {
            let mut rest = text.as_str();
            while let Some(i) = rest.find(mac) {
                let call = &rest[i..];
                let end = call.find(");").unwrap_or(call.len());
                let body = &call[..end];
                for forbidden in ["policy", "doc", "secret_value", "SecretString"] {
                    assert!(
                        !body.contains(forbidden),
                        "{name}: a log statement mentions {forbidden}: {body}"
                    );
                }
                rest = &call[mac.len()..];
            }
        }
    }
}

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn logs_cannot_be_forged_and_leak_nothing() {
    let w = World::start();
    let app = w.app(&[]).await;
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = replica_auditor::logging::subscriber(
        move || writer.clone(),
        replica_auditor::logging::filter("info").unwrap(),
    );
    let _guard = tracing::subscriber::set_default(subscriber);

    // A public key policy (its document must not reach the logs) and an
    // event whose outside text tries to start a log line of its own.
    app.handle(
        &bytes(&event("create-secret-public-key.json")),
        Budget::unlimited(),
    )
    .await
    .unwrap();
    let mut forged = event("replicate-secret-to-regions.json");
    forged["detail"]["eventID"] =
        json!("x\n{\"level\":\"ERROR\",\"fields\":{\"message\":\"forged\"}}");
    app.handle(&bytes(&forged), Budget::unlimited())
        .await
        .unwrap();
    let mut malformed = event("create-secret.json");
    malformed["detail"]["eventTime"] = json!(["\n{\"level\":\"ERROR\"}"]);
    app.handle(&bytes(&malformed), Budget::unlimited())
        .await
        .unwrap_err();

    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))
        })
        .collect();
    let summaries: Vec<&Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "audit summary")
        .collect();
    assert_eq!(
        summaries.len(),
        2,
        "one summary line per audited event: {text}"
    );
    assert!(
        lines.iter().all(|l| l["level"] != "ERROR"),
        "no forged ERROR line: {text}"
    );
    assert_eq!(
        summaries[1]["fields"]["event_id"],
        "x\n{\"level\":\"ERROR\",\"fields\":{\"message\":\"forged\"}}"
    );
    assert_eq!(summaries[0]["fields"]["codes"], "KEY_POLICY_PUBLIC");
    for leak in [
        "kms:Decrypt",
        "Principal",
        "OpenToAll",
        "demo-value-never-read-by-the-auditor",
        "Statement",
    ] {
        assert!(!text.contains(leak), "logs contain {leak}: {text}");
    }
    assert_eq!(
        lines
            .iter()
            .filter(|l| l["fields"]["outcome"] == "rejected")
            .count(),
        1
    );
}
